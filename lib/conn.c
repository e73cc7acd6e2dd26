/* Buffered non-blocking connections with optional TLS; see conn.h.
 *
 * The fd is watched edge-triggered for both directions once, so no epoll_ctl
 * is needed as interest changes; rd_ready/wr_ready remember whether the
 * socket may still be readable/writable (cleared on EAGAIN or OpenSSL's
 * WANT_READ/WANT_WRITE, set by epoll). Reading happens only from the loop
 * (an fd event or the deferred call), never from inside an API call, so
 * the shared input buffer is never in use by two connections at once. */
#include "config.h"
#include "conn.h"
#include "ioloop.h"
#include "str.h"
#include "tls.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The shared input buffer; conn_set_input_limit() is clamped to it. */
#define SCRATCH_SIZE (128 * 1024)
#define DEFAULT_INPUT_LIMIT (64 * 1024)
/* Output buffers larger than this are freed when they drain. */
#define OUT_KEEP 2048

static char scratch[SCRATCH_SIZE];

enum tls_state { TLS_NONE, TLS_WAIT_FLUSH, TLS_HANDSHAKE, TLS_ACTIVE };

struct conn {
	struct ioloop *loop;
	int fd;
	struct io *io;
	struct defer *defer;
	struct timeout *idle;
	unsigned timeout_ms;
	conn_callback_fn *cb;
	void *ctx;

	/* input: in_data/in_len point into scratch while a DATA_IN callback
	 * runs, else into in_buf (owned) */
	const char *in_data;
	size_t in_len;
	char *in_buf;
	bool in_scratch;
	size_t input_limit;

	struct str out;
	size_t out_off;

	bool rd_ready, wr_ready;
	bool paused, eof, failed;
	bool need_read, need_flush;
	bool read_wants_write; /* TLS: SSL_read returned WANT_WRITE */

	enum tls_state tls;
	SSL *ssl;
	struct tls_ctx *pending_ctx;
	char *servername;
	bool tls_client;

	char *error;
	int depth;
	bool freed;
};

static void conn_io(void *ctx, unsigned revents);
static void conn_deferred(void *ctx);
static void conn_idle(void *ctx);

struct conn *conn_new(struct ioloop *loop, int fd, conn_callback_fn *cb, void *ctx)
{
	struct conn *conn = xcalloc(1, sizeof(*conn));
	conn->loop = loop;
	conn->fd = fd;
	conn->cb = cb;
	conn->ctx = ctx;
	conn->input_limit = DEFAULT_INPUT_LIMIT;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	/* Output is already coalesced per loop iteration, so Nagle can only
	 * hold a reply back until the peer's delayed ACK (40 ms): a stage
	 * answered later than the replies before it in a pipelined group
	 * (RCPT after MAIL) is a second small write. Fails harmlessly on a
	 * Unix socket. */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn->defer = defer_new(loop, conn_deferred, conn);
	conn->io = io_add(loop, fd, IO_READ | IO_WRITE | IO_EDGE, conn_io, conn);
	if (conn->io == NULL) {
		conn->failed = true;
		conn->error = xstrdup("bad file descriptor");
	}
	return conn;
}

/* Releases everything but the struct. */
static void conn_release(struct conn *conn)
{
	io_remove(&conn->io);
	defer_free(&conn->defer);
	timeout_remove(&conn->idle);
	if (conn->ssl != NULL) {
		if (conn->tls == TLS_ACTIVE && !conn->failed)
			(void)SSL_shutdown(conn->ssl);
		SSL_free(conn->ssl);
		conn->ssl = NULL;
		ERR_clear_error();
	}
	if (conn->fd >= 0) {
		close(conn->fd);
		conn->fd = -1;
	}
	x_free(&conn->in_buf);
	conn->in_data = NULL;
	conn->in_len = 0;
	str_free(&conn->out);
	x_free(&conn->servername);
}

void conn_free(struct conn **connp)
{
	struct conn *conn = *connp;
	if (conn == NULL)
		return;
	*connp = NULL;
	if (conn->freed)
		return;
	conn->freed = true;
	conn_release(conn);
	if (conn->depth == 0) {
		free(conn->error);
		free(conn);
	}
}

void conn_set_callback(struct conn *conn, conn_callback_fn *cb, void *ctx)
{
	conn->cb = cb;
	conn->ctx = ctx;
}

int conn_fd(const struct conn *conn)
{
	return conn->fd;
}

/* Calls the protocol; returns false when the connection was freed. */
static bool emit(struct conn *conn, enum conn_event ev)
{
	conn->depth++;
	conn->cb(conn, ev, conn->ctx);
	conn->depth--;
	if (conn->freed) {
		if (conn->depth == 0) {
			free(conn->error);
			free(conn);
		}
		return false;
	}
	return true;
}

static void set_error(struct conn *conn, const char *fmt, const char *detail)
{
	char buf[300];
	snprintf(buf, sizeof(buf), fmt, detail);
	free(conn->error);
	conn->error = xstrdup(buf);
}

/* Marks the connection failed and reports it. */
static bool fail(struct conn *conn, const char *fmt, const char *detail)
{
	if (conn->failed)
		return true;
	conn->failed = true;
	set_error(conn, fmt, detail);
	timeout_remove(&conn->idle);
	return emit(conn, CONN_EV_ERROR);
}

static void schedule(struct conn *conn)
{
	if (conn->defer != NULL)
		defer_schedule(conn->defer);
}

void conn_set_timeout(struct conn *conn, unsigned msecs)
{
	conn->timeout_ms = msecs;
	if (msecs == 0) {
		timeout_remove(&conn->idle);
		return;
	}
	if (conn->freed || conn->failed)
		return;
	if (conn->idle == NULL)
		conn->idle = timeout_add(conn->loop, msecs, conn_idle, conn);
	else
		timeout_reset(conn->idle, msecs);
}

void conn_set_input_limit(struct conn *conn, size_t bytes)
{
	if (bytes == 0)
		bytes = 1;
	if (bytes > SCRATCH_SIZE)
		bytes = SCRATCH_SIZE;
	conn->input_limit = bytes;
	schedule(conn);
}

static void conn_idle(void *ctx)
{
	struct conn *conn = ctx;
	if (conn->failed || conn->eof)
		return;
	(void)emit(conn, CONN_EV_TIMEOUT);
}

/* ---- input ---- */

void conn_input(const struct conn *conn, const void **data_r, size_t *len_r)
{
	*data_r = conn->in_len > 0 ? conn->in_data : "";
	*len_r = conn->in_len;
}

void conn_consume(struct conn *conn, size_t n)
{
	if (n > conn->in_len)
		n = conn->in_len;
	size_t before = conn->in_len;
	conn->in_data += n;
	conn->in_len -= n;
	if (conn->in_len == 0) {
		conn->in_data = NULL;
		if (!conn->in_scratch)
			x_free(&conn->in_buf);
	}
	if (!conn->in_scratch && before >= conn->input_limit && conn->in_len < conn->input_limit)
		schedule(conn); /* reading stopped at the limit: resume */
}

int conn_read_line(const struct conn *conn, size_t max, const char **line_r, size_t *len_r)
{
	size_t scan = conn->in_len < max ? conn->in_len : max;
	const char *lf = scan > 0 ? memchr(conn->in_data, '\n', scan) : NULL;
	if (lf != NULL) {
		*line_r = conn->in_data;
		*len_r = (size_t)(lf - conn->in_data) + 1;
		return 1;
	}
	if (conn->in_len >= max)
		return -1;
	return 0;
}

void conn_input_pause(struct conn *conn, bool paused)
{
	if (conn->paused == paused)
		return;
	conn->paused = paused;
	if (!paused) {
		conn->need_read = true;
		schedule(conn);
	}
}

/* After a DATA_IN callback: keep what the protocol left. */
static void save_leftover(struct conn *conn)
{
	if (!conn->in_scratch)
		return;
	conn->in_scratch = false;
	if (conn->in_len == 0) {
		conn->in_data = NULL;
		return;
	}
	conn->in_buf = xmemdup(conn->in_data, conn->in_len);
	conn->in_data = conn->in_buf;
}

/* One read from the socket or TLS into buf. Returns bytes (> 0), 0 for
 * "nothing now", -1 EOF, -2 error (conn->error set). */
static ssize_t raw_read(struct conn *conn, char *buf, size_t len)
{
	if (conn->tls == TLS_ACTIVE) {
		ERR_clear_error();
		int n = SSL_read(conn->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
		if (n > 0)
			return n;
		int e = SSL_get_error(conn->ssl, n);
		switch (e) {
		case SSL_ERROR_WANT_READ:
			conn->rd_ready = false;
			return 0;
		case SSL_ERROR_WANT_WRITE:
			conn->wr_ready = false;
			conn->read_wants_write = true;
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			return -1;
		case SSL_ERROR_SYSCALL:
			if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
				return -1;
			set_error(conn, "read: %s", strerror(errno));
			return -2;
		default: {
			char why[200];
			unsigned long err = ERR_peek_last_error();
			if (err == 0)
				return -1;
			ERR_error_string_n(err, why, sizeof(why));
			ERR_clear_error();
			set_error(conn, "TLS read: %s", why);
			return -2;
		}
		}
	}
	ssize_t n = recv(conn->fd, buf, len, 0);
	if (n > 0)
		return n;
	if (n == 0)
		return -1;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		if (errno != EINTR)
			conn->rd_ready = false;
		return 0;
	}
	if (errno == ECONNRESET) {
		set_error(conn, "%s", "connection reset by peer");
		return -2;
	}
	set_error(conn, "read: %s", strerror(errno));
	return -2;
}

static bool can_read(const struct conn *conn)
{
	if (conn->freed || conn->failed || conn->eof || conn->paused)
		return false;
	if (conn->tls == TLS_WAIT_FLUSH || conn->tls == TLS_HANDSHAKE)
		return false;
	if (conn->in_len >= conn->input_limit)
		return false;
	if (conn->tls == TLS_ACTIVE && SSL_pending(conn->ssl) > 0)
		return true;
	return conn->rd_ready && !conn->read_wants_write;
}

/* Reads while possible and hands the input to the protocol. Returns false
 * when the connection was freed. */
static bool do_read(struct conn *conn)
{
	bool delivered = false;
	bool want = conn->need_read;
	conn->need_read = false;
	while (can_read(conn)) {
		size_t have = conn->in_len;
		if (have > 0)
			memmove(scratch, conn->in_data, have);
		x_free(&conn->in_buf);
		conn->in_data = scratch;
		conn->in_scratch = true;
		size_t room = conn->input_limit - have;
		ssize_t n = raw_read(conn, scratch + have, room);
		if (n > 0) {
			conn->in_len = have + (size_t)n;
			if (conn->idle != NULL && conn->timeout_ms > 0)
				timeout_reset(conn->idle, conn->timeout_ms);
			delivered = true;
			if (!emit(conn, CONN_EV_DATA_IN))
				return false;
			save_leftover(conn);
			continue;
		}
		save_leftover(conn);
		if (n == 0)
			break;
		if (n == -1) {
			conn->eof = true;
			timeout_remove(&conn->idle);
			return emit(conn, CONN_EV_EOF);
		}
		return fail(conn, "%s", conn->error);
	}
	if (want && !delivered && conn->in_len > 0 && !conn->paused && !conn->failed &&
	    (conn->tls == TLS_NONE || conn->tls == TLS_ACTIVE)) {
		/* unpaused with input already buffered */
		if (!emit(conn, CONN_EV_DATA_IN))
			return false;
	}
	return true;
}

/* ---- output ---- */

void conn_write(struct conn *conn, const void *data, size_t len)
{
	if (conn->freed || conn->failed || len == 0)
		return;
	str_append(&conn->out, data, len);
	conn->need_flush = true;
	schedule(conn);
}

void conn_writes(struct conn *conn, const char *s)
{
	conn_write(conn, s, strlen(s));
}

void conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
{
	if (conn->freed || conn->failed)
		return;
	str_vprintf(&conn->out, fmt, ap);
	conn->need_flush = true;
	schedule(conn);
}

void conn_printf(struct conn *conn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vprintf(conn, fmt, ap);
	va_end(ap);
}

size_t conn_output_size(const struct conn *conn)
{
	return conn->out.len - conn->out_off;
}

/* Writes buffered output. Returns 1 when all is written, 0 when blocked,
 * -1 on error (conn->error set). */
static int write_out(struct conn *conn)
{
	while (conn->out_off < conn->out.len) {
		if (!conn->wr_ready)
			return 0;
		const char *p = conn->out.s + conn->out_off;
		size_t len = conn->out.len - conn->out_off;
		if (conn->tls == TLS_ACTIVE) {
			ERR_clear_error();
			int n = SSL_write(conn->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
			if (n > 0) {
				conn->out_off += (size_t)n;
				continue;
			}
			int e = SSL_get_error(conn->ssl, n);
			if (e == SSL_ERROR_WANT_WRITE) {
				conn->wr_ready = false;
				return 0;
			}
			if (e == SSL_ERROR_WANT_READ) {
				conn->rd_ready = false;
				return 0;
			}
			char why[200];
			unsigned long err = ERR_peek_last_error();
			if (err != 0)
				ERR_error_string_n(err, why, sizeof(why));
			else
				snprintf(why, sizeof(why), "%s", strerror(errno ? errno : EPIPE));
			ERR_clear_error();
			set_error(conn, "TLS write: %s", why);
			return -1;
		}
		ssize_t n = send(conn->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			conn->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn->wr_ready = false;
			return 0;
		}
		set_error(conn, "write: %s", strerror(n < 0 ? errno : EPIPE));
		return -1;
	}
	/* drained */
	if (conn->out.cap > OUT_KEEP)
		str_free(&conn->out);
	else
		str_truncate(&conn->out, 0);
	conn->out_off = 0;
	return 1;
}

static bool start_handshake(struct conn *conn);
static bool continue_handshake(struct conn *conn);

/* Flushes; returns false when the connection was freed. */
static bool do_flush(struct conn *conn)
{
	if (conn->freed || conn->failed)
		return !conn->freed;
	if (conn->tls == TLS_HANDSHAKE)
		return true;
	bool had = conn->out_off < conn->out.len;
	int r = write_out(conn);
	if (r < 0)
		return fail(conn, "%s", conn->error);
	if (r == 0)
		return true;
	conn->need_flush = false;
	if (conn->tls == TLS_WAIT_FLUSH)
		return start_handshake(conn);
	if (had)
		return emit(conn, CONN_EV_DRAINED);
	return true;
}

int conn_flush(struct conn *conn)
{
	if (conn->freed || conn->failed)
		return -1;
	if (conn->tls == TLS_HANDSHAKE || conn->tls == TLS_WAIT_FLUSH)
		return 0;
	int r = write_out(conn);
	if (r < 0) {
		/* report from the loop, not from inside the caller */
		conn->need_flush = true;
		schedule(conn);
		return -1;
	}
	return 0;
}

/* ---- TLS ---- */

static bool start_handshake(struct conn *conn)
{
	SSL_CTX *sc = tls_ctx_ssl_ctx(conn->pending_ctx);
	conn->pending_ctx = NULL;
	conn->ssl = SSL_new(sc);
	if (conn->ssl == NULL || SSL_set_fd(conn->ssl, conn->fd) != 1) {
		ERR_clear_error();
		return fail(conn, "%s", "TLS: cannot create a session");
	}
	if (conn->tls_client) {
		SSL_set_connect_state(conn->ssl);
		if (conn->servername != NULL) {
			SSL_set_tlsext_host_name(conn->ssl, conn->servername);
			SSL_set1_host(conn->ssl, conn->servername);
		}
	} else {
		SSL_set_accept_state(conn->ssl);
	}
	conn->tls = TLS_HANDSHAKE;
	return continue_handshake(conn);
}

static bool continue_handshake(struct conn *conn)
{
	ERR_clear_error();
	int r = SSL_do_handshake(conn->ssl);
	if (r == 1) {
		conn->tls = TLS_ACTIVE;
		if (!emit(conn, CONN_EV_TLS_READY))
			return false;
		/* The client may have sent its first command with the Finished
		 * message; OpenSSL may hold it already. */
		conn->need_read = true;
		conn->need_flush = true;
		schedule(conn);
		return true;
	}
	int e = SSL_get_error(conn->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		conn->rd_ready = false;
		return true;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		conn->wr_ready = false;
		return true;
	}
	char why[200];
	unsigned long err = ERR_peek_last_error();
	if (err != 0)
		ERR_error_string_n(err, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	return fail(conn, "TLS handshake failed: %s", why);
}

static int starttls_common(struct conn *conn, struct tls_ctx *ctx, const char **error_r)
{
	if (conn->tls != TLS_NONE) {
		*error_r = "TLS already active";
		return -1;
	}
	if (conn->freed || conn->failed) {
		*error_r = "connection failed";
		return -1;
	}
	conn->pending_ctx = ctx;
	conn->tls = TLS_WAIT_FLUSH;
	/* Discard plaintext that came after the command (RFC 3207 4.2). */
	conn->in_len = 0;
	conn->in_data = NULL;
	if (!conn->in_scratch)
		x_free(&conn->in_buf);
	conn->need_flush = true;
	schedule(conn);
	return 0;
}

int conn_starttls(struct conn *conn, struct tls_ctx *ctx, size_t *discarded_r,
		  const char **error_r)
{
	size_t pending = conn->in_len;
	if (starttls_common(conn, ctx, error_r) < 0)
		return -1;
	conn->tls_client = false;
	if (discarded_r != NULL)
		*discarded_r = pending;
	return 0;
}

int conn_starttls_client(struct conn *conn, struct tls_ctx *ctx, const char *servername,
			 const char **error_r)
{
	if (starttls_common(conn, ctx, error_r) < 0)
		return -1;
	conn->tls_client = true;
	conn->servername = servername != NULL ? xstrdup(servername) : NULL;
	return 0;
}

bool conn_tls_active(const struct conn *conn)
{
	return conn->tls == TLS_ACTIVE;
}

const char *conn_tls_version(const struct conn *conn)
{
	return conn->tls == TLS_ACTIVE ? SSL_get_version(conn->ssl) : NULL;
}

const char *conn_tls_cipher(const struct conn *conn)
{
	return conn->tls == TLS_ACTIVE ? SSL_get_cipher_name(conn->ssl) : NULL;
}

bool conn_tls_verified(const struct conn *conn)
{
	return conn->tls == TLS_ACTIVE && SSL_get_verify_result(conn->ssl) == X509_V_OK &&
	       SSL_get0_peer_certificate(conn->ssl) != NULL;
}

void *conn_tls_ssl(const struct conn *conn)
{
	return conn->tls == TLS_ACTIVE ? conn->ssl : NULL;
}

const char *conn_error(const struct conn *conn)
{
	return conn->error != NULL ? conn->error : "no error";
}

size_t conn_memory_usage(const struct conn *conn)
{
	size_t n = sizeof(*conn) + 64 /* io */ + 48 /* defer */;
	if (conn->idle != NULL)
		n += 64;
	if (!conn->in_scratch && conn->in_buf != NULL)
		n += conn->in_len;
	n += conn->out.cap;
	if (conn->ssl != NULL)
		n += 18 * 1024; /* an idle TLS 1.3 SSL with released buffers (doc/io.md) */
	return n;
}

/* ---- events ---- */

static void conn_run(struct conn *conn)
{
	if (conn->tls == TLS_HANDSHAKE) {
		if (!continue_handshake(conn))
			return;
		if (conn->tls == TLS_HANDSHAKE || conn->failed)
			return;
	}
	if (conn->need_flush || conn->out_off < conn->out.len) {
		if (!do_flush(conn))
			return;
		if (conn->tls == TLS_HANDSHAKE)
			return;
	}
	(void)do_read(conn);
}

static void conn_io(void *ctx, unsigned revents)
{
	struct conn *conn = ctx;
	if (revents & (IO_READ | IO_ERROR))
		conn->rd_ready = true;
	if (revents & (IO_WRITE | IO_ERROR)) {
		conn->wr_ready = true;
		conn->read_wants_write = false;
	}
	conn_run(conn);
}

static void conn_deferred(void *ctx)
{
	struct conn *conn = ctx;
	conn_run(conn);
}
