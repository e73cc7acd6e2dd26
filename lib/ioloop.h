/* The event loop: epoll for file descriptors, a binary heap of timers,
 * signals through signalfd, and deferred calls that run once before the
 * loop next waits. Single-threaded; one loop per process. Why our own loop
 * rather than libevent: doc/io.md.
 *
 * Callbacks may add and remove any io, timeout or defer, including the one
 * being called. Removing an io inside a callback guarantees that it is not
 * called again, even when its event is already in the current batch. */
#ifndef CONGVU_IOLOOP_H
#define CONGVU_IOLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ioloop;
struct io;
struct timeout;
struct defer;

/* Event bits for io_add() and the callback's revents. */
enum {
	IO_READ = 1 << 0,  /* readable, or the peer closed (EOF/HUP) */
	IO_WRITE = 1 << 1, /* writable */
	IO_ERROR = 1 << 2, /* revents only: error or hang-up on the fd */
	IO_EDGE = 1 << 3,  /* edge-triggered: the callback is called once per change of
			    * readiness, so it must read/write until EAGAIN or remember
			    * that the fd is still ready (what lib/conn does) */
	IO_EXCLUSIVE = 1 << 4, /* EPOLLEXCLUSIVE: for a listening socket shared by
				* several processes, only one of them is woken */
};

typedef void io_callback_fn(void *ctx, unsigned revents);
typedef void ioloop_fn(void *ctx);
typedef void signal_callback_fn(void *ctx, int signo);

/* A new loop. Aborts when epoll cannot be created (a broken environment). */
struct ioloop *ioloop_create(void);
/* Frees the loop; every io, timeout, defer and signal must be removed first
 * (it asserts that in debug builds and frees stragglers otherwise). */
void ioloop_destroy(struct ioloop **loop);

/* Runs until ioloop_stop(). Returns 0, or -1 when epoll_wait fails for a
 * reason other than EINTR. */
int ioloop_run(struct ioloop *loop);
/* Makes ioloop_run() return after the current batch of callbacks. */
void ioloop_stop(struct ioloop *loop);
/* Runs one iteration: waits at most max_wait_ms (-1: until an event) for
 * events, dispatches them, the due timeouts and the deferred calls. For
 * tests and for loops driven from outside. */
int ioloop_run_once(struct ioloop *loop, int max_wait_ms);

/* Monotonic milliseconds, cached at the start of each iteration. */
uint64_t ioloop_now_ms(const struct ioloop *loop);

/* ---- file descriptors ---- */

/* Watches fd for events (IO_READ/IO_WRITE, optionally IO_EDGE); fd must be
 * non-blocking. One io per fd. Aborts on an epoll failure other than a bad
 * fd, for which it returns NULL. */
struct io *io_add(struct ioloop *loop, int fd, unsigned events, io_callback_fn *cb, void *ctx);
/* Changes the watched events (no system call when unchanged). */
void io_set_events(struct io *io, unsigned events);
/* Stops watching (does not close the fd) and sets *io to NULL. NULL is ok. */
void io_remove(struct io **io);

/* ---- timers ---- */

/* Calls cb(ctx) once, msecs from now (0: on the next iteration, after the
 * ready fds). The timeout stays allocated after it fires: timeout_reset()
 * re-arms it, timeout_remove() frees it. */
struct timeout *timeout_add(struct ioloop *loop, uint64_t msecs, ioloop_fn *cb, void *ctx);
/* Re-arms for msecs from now, whether or not it has fired. Cheap when the
 * new deadline is later than the old one (the usual case of an idle timer
 * pushed back on every read): no heap operation until it comes due. */
void timeout_reset(struct timeout *to, uint64_t msecs);
/* Disarms without freeing. */
void timeout_stop(struct timeout *to);
void timeout_remove(struct timeout **to);

/* ---- deferred calls ---- */

/* A call to run once, after the current batch of callbacks and before the
 * loop waits again. Used to coalesce work (lib/conn flushes each
 * connection's output once per iteration, so pipelined replies go out in one
 * write). */
struct defer *defer_new(struct ioloop *loop, ioloop_fn *cb, void *ctx);
/* Queues the call; a no-op when already queued. */
void defer_schedule(struct defer *d);
void defer_cancel(struct defer *d);
void defer_free(struct defer **d);

/* ---- signals ---- */

/* Delivers signo through a signalfd: the signal is blocked for the process
 * and cb(ctx, signo) is called from the loop, never from a handler. Returns
 * 0, or -1 with *error_r (static) when the signalfd cannot be made. A child
 * that should receive the signal normally after fork must call
 * ioloop_signals_reset() (or exec). */
int ioloop_signal_add(struct ioloop *loop, int signo, signal_callback_fn *cb, void *ctx,
		      const char **error_r);
void ioloop_signal_remove(struct ioloop *loop, int signo);
/* Unblocks every signal this process blocked through ioloop_signal_add(). */
void ioloop_signals_reset(void);

#endif
