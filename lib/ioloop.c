/* epoll event loop; see ioloop.h and doc/io.md. */
#include "config.h"
#include "ioloop.h"
#include "xalloc.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_SIGNALS 65

struct io {
	struct ioloop *loop;
	int fd;
	unsigned events;
	io_callback_fn *cb;
	void *ctx;
	bool removed;
	struct io *next_removed;
};

struct timeout {
	struct ioloop *loop;
	uint64_t deadline;  /* when it is due */
	uint64_t heap_key;  /* the deadline it is filed under in the heap */
	size_t heap_idx;    /* SIZE_MAX when not in the heap */
	bool armed;
	ioloop_fn *cb;
	void *ctx;
};

struct defer {
	struct ioloop *loop;
	struct defer *next;
	bool queued;
	ioloop_fn *cb;
	void *ctx;
};

struct ioloop {
	int epfd;
	bool stop;
	uint64_t now;
	struct timeout **heap;
	size_t heap_len, heap_cap;
	struct defer *defer_head, *defer_tail;
	struct io *removed;  /* freed after the current batch */
	bool dispatching;
	/* signals */
	int sigfd;
	struct io *sigio;
	sigset_t sigmask;
	signal_callback_fn *sig_cb[MAX_SIGNALS];
	void *sig_ctx[MAX_SIGNALS];
};

static sigset_t blocked_signals;

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct ioloop *ioloop_create(void)
{
	struct ioloop *loop = xcalloc(1, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		abort();
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->now = monotonic_ms();
	return loop;
}

static void free_removed(struct ioloop *loop)
{
	while (loop->removed != NULL) {
		struct io *io = loop->removed;
		loop->removed = io->next_removed;
		free(io);
	}
}

void ioloop_destroy(struct ioloop **loopp)
{
	struct ioloop *loop = *loopp;
	if (loop == NULL)
		return;
	if (loop->sigfd >= 0) {
		io_remove(&loop->sigio);
		close(loop->sigfd);
	}
	free_removed(loop);
	for (size_t i = 0; i < loop->heap_len; i++)
		loop->heap[i]->heap_idx = SIZE_MAX;
	free(loop->heap);
	close(loop->epfd);
	free(loop);
	*loopp = NULL;
}

uint64_t ioloop_now_ms(const struct ioloop *loop)
{
	return loop->now;
}

void ioloop_stop(struct ioloop *loop)
{
	loop->stop = true;
}

/* ---- io ---- */

static uint32_t epoll_bits(unsigned events)
{
	uint32_t e = 0;
	if (events & IO_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & IO_WRITE)
		e |= EPOLLOUT;
	if (events & IO_EDGE)
		e |= EPOLLET;
	if (events & IO_EXCLUSIVE)
		e = (e & ~(uint32_t)EPOLLRDHUP) | EPOLLEXCLUSIVE; /* RDHUP is not allowed */
	return e;
}

struct io *io_add(struct ioloop *loop, int fd, unsigned events, io_callback_fn *cb, void *ctx)
{
	struct io *io = xcalloc(1, sizeof(*io));
	io->loop = loop;
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->ctx = ctx;
	struct epoll_event ev = { .events = epoll_bits(events), .data.ptr = io };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		if (errno == EBADF || errno == EPERM || errno == EEXIST) {
			free(io);
			return NULL;
		}
		abort();
	}
	return io;
}

void io_set_events(struct io *io, unsigned events)
{
	if (io->events == events)
		return;
	unsigned old = io->events;
	io->events = events;
	struct epoll_event ev = { .events = epoll_bits(events), .data.ptr = io };
	if ((old | events) & IO_EXCLUSIVE) {
		/* EPOLLEXCLUSIVE fds cannot be modified, only removed and added */
		(void)epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
		if (events != 0 && epoll_ctl(io->loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0 &&
		    errno != EBADF)
			abort();
		return;
	}
	if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0 && errno != EBADF)
		abort();
}

void io_remove(struct io **iop)
{
	struct io *io = *iop;
	if (io == NULL)
		return;
	*iop = NULL;
	/* EBADF/ENOENT: the fd was closed first, which removed it already. */
	(void)epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->removed = true;
	io->next_removed = io->loop->removed;
	io->loop->removed = io;
}

/* ---- timeouts: a binary min-heap on heap_key ---- */

static void heap_swap(struct ioloop *loop, size_t a, size_t b)
{
	struct timeout *t = loop->heap[a];
	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->heap_idx = a;
	loop->heap[b]->heap_idx = b;
}

static void heap_up(struct ioloop *loop, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->heap_key <= loop->heap[i]->heap_key)
			break;
		heap_swap(loop, parent, i);
		i = parent;
	}
}

static void heap_down(struct ioloop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < loop->heap_len && loop->heap[l]->heap_key < loop->heap[m]->heap_key)
			m = l;
		if (r < loop->heap_len && loop->heap[r]->heap_key < loop->heap[m]->heap_key)
			m = r;
		if (m == i)
			break;
		heap_swap(loop, i, m);
		i = m;
	}
}

static void heap_push(struct ioloop *loop, struct timeout *to)
{
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		loop->heap = xreallocarray(loop->heap, loop->heap_cap, sizeof(*loop->heap));
	}
	to->heap_key = to->deadline;
	to->heap_idx = loop->heap_len;
	loop->heap[loop->heap_len++] = to;
	heap_up(loop, to->heap_idx);
}

static void heap_delete(struct ioloop *loop, struct timeout *to)
{
	size_t i = to->heap_idx;
	if (i == SIZE_MAX)
		return;
	to->heap_idx = SIZE_MAX;
	loop->heap_len--;
	if (i == loop->heap_len)
		return;
	loop->heap[i] = loop->heap[loop->heap_len];
	loop->heap[i]->heap_idx = i;
	heap_down(loop, i);
	heap_up(loop, i);
}

struct timeout *timeout_add(struct ioloop *loop, uint64_t msecs, ioloop_fn *cb, void *ctx)
{
	struct timeout *to = xcalloc(1, sizeof(*to));
	to->loop = loop;
	to->cb = cb;
	to->ctx = ctx;
	to->heap_idx = SIZE_MAX;
	timeout_reset(to, msecs);
	return to;
}

void timeout_reset(struct timeout *to, uint64_t msecs)
{
	struct ioloop *loop = to->loop;
	to->deadline = loop->now + msecs;
	to->armed = true;
	if (to->heap_idx == SIZE_MAX) {
		heap_push(loop, to);
	} else if (to->deadline < to->heap_key) {
		to->heap_key = to->deadline;
		heap_up(loop, to->heap_idx);
	}
	/* A later deadline stays filed under the earlier key; when that comes
	 * due the timer is filed again (see run_timeouts). */
}

void timeout_stop(struct timeout *to)
{
	to->armed = false;
	heap_delete(to->loop, to);
}

void timeout_remove(struct timeout **top)
{
	struct timeout *to = *top;
	if (to == NULL)
		return;
	heap_delete(to->loop, to);
	free(to);
	*top = NULL;
}

static void run_timeouts(struct ioloop *loop)
{
	/* Timers armed by callbacks during this pass with 0 ms run on the
	 * next pass, not in a loop here. */
	uint64_t now = loop->now;
	size_t budget = loop->heap_len;
	while (budget-- > 0 && loop->heap_len > 0 && loop->heap[0]->heap_key <= now) {
		struct timeout *to = loop->heap[0];
		if (to->deadline > now) {
			/* pushed back since it was filed */
			to->heap_key = to->deadline;
			heap_down(loop, 0);
			continue;
		}
		heap_delete(loop, to);
		to->armed = false;
		to->cb(to->ctx);
	}
}

static int next_wait_ms(struct ioloop *loop, int max_wait)
{
	if (loop->defer_head != NULL)
		return 0;
	if (loop->heap_len == 0)
		return max_wait;
	uint64_t key = loop->heap[0]->heap_key;
	uint64_t wait = key > loop->now ? key - loop->now : 0;
	if (wait > INT32_MAX)
		wait = INT32_MAX;
	if (max_wait >= 0 && wait > (uint64_t)max_wait)
		return max_wait;
	return (int)wait;
}

/* ---- defers ---- */

struct defer *defer_new(struct ioloop *loop, ioloop_fn *cb, void *ctx)
{
	struct defer *d = xcalloc(1, sizeof(*d));
	d->loop = loop;
	d->cb = cb;
	d->ctx = ctx;
	return d;
}

void defer_schedule(struct defer *d)
{
	if (d->queued)
		return;
	struct ioloop *loop = d->loop;
	d->queued = true;
	d->next = NULL;
	if (loop->defer_tail != NULL)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
}

void defer_cancel(struct defer *d)
{
	if (!d->queued)
		return;
	struct ioloop *loop = d->loop;
	struct defer *prev = NULL;
	for (struct defer *p = loop->defer_head; p != NULL; prev = p, p = p->next) {
		if (p != d)
			continue;
		if (prev != NULL)
			prev->next = p->next;
		else
			loop->defer_head = p->next;
		if (loop->defer_tail == p)
			loop->defer_tail = prev;
		break;
	}
	d->queued = false;
	d->next = NULL;
}

void defer_free(struct defer **dp)
{
	if (*dp == NULL)
		return;
	defer_cancel(*dp);
	free(*dp);
	*dp = NULL;
}

static void run_defers(struct ioloop *loop)
{
	/* Only the calls queued before this pass; new ones wait for the next. */
	struct defer *last = loop->defer_tail;
	while (loop->defer_head != NULL) {
		struct defer *d = loop->defer_head;
		loop->defer_head = d->next;
		if (loop->defer_head == NULL)
			loop->defer_tail = NULL;
		d->queued = false;
		d->next = NULL;
		bool was_last = d == last;
		d->cb(d->ctx);
		if (was_last)
			break;
	}
}

/* ---- the loop ---- */

int ioloop_run_once(struct ioloop *loop, int max_wait_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int wait = next_wait_ms(loop, max_wait_ms);
	int n = epoll_wait(loop->epfd, events, MAX_EVENTS, wait);
	loop->now = monotonic_ms();
	if (n < 0) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		struct io *io = events[i].data.ptr;
		if (io->removed)
			continue;
		uint32_t e = events[i].events;
		unsigned rev = 0;
		if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
			rev |= IO_READ;
		if (e & EPOLLOUT)
			rev |= IO_WRITE;
		if (e & (EPOLLERR | EPOLLHUP))
			rev |= IO_ERROR;
		io->cb(io->ctx, rev);
	}
	run_timeouts(loop);
	run_defers(loop);
	free_removed(loop);
	return 0;
}

int ioloop_run(struct ioloop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		if (ioloop_run_once(loop, -1) < 0)
			return -1;
	}
	return 0;
}

/* ---- signals ---- */

static void signal_input(void *ctx, unsigned revents)
{
	struct ioloop *loop = ctx;
	(void)revents;
	struct signalfd_siginfo si[8];
	for (;;) {
		ssize_t n = read(loop->sigfd, si, sizeof(si));
		if (n <= 0)
			return;
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			int signo = (int)si[i].ssi_signo;
			if (signo > 0 && signo < MAX_SIGNALS && loop->sig_cb[signo] != NULL)
				loop->sig_cb[signo](loop->sig_ctx[signo], signo);
		}
	}
}

int ioloop_signal_add(struct ioloop *loop, int signo, signal_callback_fn *cb, void *ctx,
		      const char **error_r)
{
	if (signo <= 0 || signo >= MAX_SIGNALS) {
		*error_r = "bad signal number";
		return -1;
	}
	sigaddset(&loop->sigmask, signo);
	sigaddset(&blocked_signals, signo);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, signo);
	sigprocmask(SIG_BLOCK, &one, NULL);
	int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		*error_r = "signalfd failed";
		return -1;
	}
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		loop->sigio = io_add(loop, fd, IO_READ, signal_input, loop);
	}
	loop->sig_cb[signo] = cb;
	loop->sig_ctx[signo] = ctx;
	return 0;
}

void ioloop_signal_remove(struct ioloop *loop, int signo)
{
	if (signo <= 0 || signo >= MAX_SIGNALS)
		return;
	loop->sig_cb[signo] = NULL;
	sigdelset(&loop->sigmask, signo);
	if (loop->sigfd >= 0)
		(void)signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
}

void ioloop_signals_reset(void)
{
	sigprocmask(SIG_UNBLOCK, &blocked_signals, NULL);
	sigemptyset(&blocked_signals);
}
