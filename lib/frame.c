/* Frames between processes; see frame.h. */
#include "config.h"
#include "frame.h"
#include "ioloop.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)

struct frame_chan {
	struct ioloop *loop;
	int fd;
	struct io *io;
	struct defer *defer;
	size_t max_payload;
	frame_handler_fn *handler;
	frame_error_fn *on_error;
	void *ctx;
	/* input */
	uint8_t *in;
	size_t in_len, in_cap;
	/* output */
	struct str out;
	size_t out_off;
	bool paused, dead, writable;
	int depth;
	bool freed;
};

static void le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void chan_io(void *ctx, unsigned revents);
static void chan_deferred(void *ctx);

struct frame_chan *frame_chan_new(struct ioloop *loop, int fd, size_t max_payload,
				  frame_handler_fn *handler, frame_error_fn *on_error, void *ctx)
{
	struct frame_chan *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->max_payload = max_payload;
	c->handler = handler;
	c->on_error = on_error;
	c->ctx = ctx;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	c->io = io_add(loop, fd, IO_READ | IO_WRITE | IO_EDGE, chan_io, c);
	c->defer = defer_new(loop, chan_deferred, c);
	return c;
}

static void chan_release(struct frame_chan *c)
{
	io_remove(&c->io);
	defer_free(&c->defer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	x_free(&c->in);
	str_free(&c->out);
}

void frame_chan_free(struct frame_chan **chanp)
{
	struct frame_chan *c = *chanp;
	if (c == NULL)
		return;
	*chanp = NULL;
	if (c->freed)
		return;
	c->freed = true;
	chan_release(c);
	if (c->depth == 0)
		free(c);
}

/* Returns false when the channel was freed by the callback. */
static bool leave(struct frame_chan *c)
{
	c->depth--;
	if (c->freed) {
		if (c->depth == 0)
			free(c);
		return false;
	}
	return true;
}

static bool die(struct frame_chan *c, const char *why)
{
	if (c->dead)
		return true;
	c->dead = true;
	io_remove(&c->io);
	c->depth++;
	c->on_error(c->ctx, why);
	return leave(c);
}

static int write_out(struct frame_chan *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			c->writable = false;
			return 0;
		}
		return -1;
	}
	if (c->out.cap > 65536)
		str_free(&c->out);
	else
		str_truncate(&c->out, 0);
	c->out_off = 0;
	return 1;
}

/* Handles complete frames in the buffer. */
static bool dispatch(struct frame_chan *c)
{
	size_t off = 0;
	while (!c->paused && c->in_len - off >= FRAME_HEADER_SIZE) {
		uint32_t type = get_le32(c->in + off);
		uint32_t len = get_le32(c->in + off + 4);
		if (len > c->max_payload)
			return die(c, "oversized frame");
		if (c->in_len - off - FRAME_HEADER_SIZE < len)
			break;
		const uint8_t *payload = c->in + off + FRAME_HEADER_SIZE;
		off += FRAME_HEADER_SIZE + len;
		c->depth++;
		c->handler(c->ctx, type, payload, len);
		if (!leave(c))
			return false;
		if (c->dead)
			return true;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == 0 && c->in_cap > READ_CHUNK * 2) {
		x_free(&c->in);
		c->in_cap = 0;
	}
	return true;
}

static void chan_run(struct frame_chan *c)
{
	if (c->dead)
		return;
	if (c->out_off < c->out.len && c->writable) {
		if (write_out(c) < 0 && !die(c, "write error"))
			return;
		if (c->dead)
			return;
	}
	if (!dispatch(c) || c->dead)
		return;
	while (!c->paused) {
		/* room for the rest of the current frame, at least a chunk */
		size_t want = READ_CHUNK;
		if (c->in_len >= FRAME_HEADER_SIZE) {
			size_t need = FRAME_HEADER_SIZE + (size_t)get_le32(c->in + 4);
			if (need > c->in_len && need - c->in_len > want)
				want = need - c->in_len;
		}
		if (c->in_cap - c->in_len < want) {
			c->in_cap = xadd(c->in_len, want);
			c->in = xrealloc(c->in, c->in_cap);
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			if (!dispatch(c) || c->dead)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		(void)die(c, n == 0 ? (c->in_len > 0 ? "truncated frame" : "peer closed")
				    : "read error");
		return;
	}
}

static void chan_io(void *ctx, unsigned revents)
{
	struct frame_chan *c = ctx;
	if (revents & (IO_WRITE | IO_ERROR))
		c->writable = true;
	chan_run(c);
}

static void chan_deferred(void *ctx)
{
	chan_run(ctx);
}

void frame_send(struct frame_chan *c, uint32_t type, const void *data, size_t len)
{
	if (c->dead || c->freed)
		return;
	if (len > UINT32_MAX)
		abort();
	uint8_t hdr[FRAME_HEADER_SIZE];
	le32(hdr, type);
	le32(hdr + 4, (uint32_t)len);
	str_append(&c->out, hdr, sizeof(hdr));
	str_append(&c->out, data, len);
	if (c->defer != NULL)
		defer_schedule(c->defer);
}

size_t frame_chan_pending(const struct frame_chan *c)
{
	return c->out.len - c->out_off;
}

int frame_chan_flush_blocking(struct frame_chan *c)
{
	while (c->out_off < c->out.len && !c->dead) {
		int r = write_out(c);
		if (r < 0)
			return -1;
		if (r == 0) {
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };
			if (poll(&p, 1, 5000) <= 0)
				return -1;
			c->writable = true;
		}
	}
	return 0;
}

void frame_chan_pause(struct frame_chan *c, bool paused)
{
	c->paused = paused;
	if (!paused && c->defer != NULL)
		defer_schedule(c->defer);
}

/* ---- encoding ---- */

void frame_put_u8(struct str *buf, uint8_t v)
{
	str_append(buf, &v, 1);
}

void frame_put_u32(struct str *buf, uint32_t v)
{
	uint8_t b[4];
	le32(b, v);
	str_append(buf, b, 4);
}

void frame_put_u64(struct str *buf, uint64_t v)
{
	frame_put_u32(buf, (uint32_t)v);
	frame_put_u32(buf, (uint32_t)(v >> 32));
}

void frame_put_bytes(struct str *buf, const void *data, size_t len)
{
	if (len > UINT32_MAX)
		abort();
	frame_put_u32(buf, (uint32_t)len);
	str_append(buf, data, len);
}

void frame_put_str(struct str *buf, const char *s)
{
	if (s == NULL)
		s = "";
	size_t len = strlen(s);
	frame_put_bytes(buf, s, len + 1);
}

void frame_reader_init(struct frame_reader *r, const void *data, size_t len)
{
	r->p = data;
	r->left = len;
	r->bad = false;
}

static const uint8_t *take(struct frame_reader *r, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t frame_get_u8(struct frame_reader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? p[0] : 0;
}

uint32_t frame_get_u32(struct frame_reader *r)
{
	const uint8_t *p = take(r, 4);
	return p ? get_le32(p) : 0;
}

uint64_t frame_get_u64(struct frame_reader *r)
{
	uint64_t lo = frame_get_u32(r);
	uint64_t hi = frame_get_u32(r);
	return lo | hi << 32;
}

const void *frame_get_bytes(struct frame_reader *r, size_t max, size_t *len_r)
{
	uint32_t len = frame_get_u32(r);
	*len_r = 0;
	if (r->bad || len > max) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = take(r, len);
	if (p != NULL)
		*len_r = len;
	return p;
}

const char *frame_get_str(struct frame_reader *r, size_t max)
{
	size_t len;
	const char *p = frame_get_bytes(r, max + 1, &len);
	if (p == NULL || len == 0 || p[len - 1] != '\0' || memchr(p, '\0', len - 1) != NULL) {
		r->bad = true;
		return "";
	}
	return p;
}

bool frame_reader_ok(const struct frame_reader *r)
{
	return !r->bad && r->left == 0;
}
