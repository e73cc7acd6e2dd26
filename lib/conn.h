/* A buffered non-blocking connection over a socket, with optional TLS
 * (STYLE 8: protocol code never sees TLS). The protocol gets events and
 * reads and writes plain bytes; conn_starttls() switches the same
 * connection to TLS and reports CONN_EV_TLS_READY when the handshake is done.
 *
 * Memory: an idle connection holds no buffers. Input is read into a buffer
 * shared by the loop and handed to the protocol in CONN_EV_DATA_IN; only
 * what the protocol leaves unconsumed is copied into a private buffer sized
 * to fit. Output is buffered until the end of the loop iteration (so
 * pipelined replies leave in one write) and the buffer is freed once it
 * drains. TLS connections use SSL_MODE_RELEASE_BUFFERS, so OpenSSL frees its
 * record buffers when idle.
 *
 * Flow control:
 *  - input: the connection stops reading from the socket while the protocol
 *    leaves conn_input_limit bytes or more unconsumed, or while paused with
 *    conn_input_pause(); reading resumes by itself once it consumes.
 *  - output: conn_write() always accepts; the protocol checks
 *    conn_output_size() against its own high-water mark, stops producing,
 *    and continues on CONN_EV_DRAINED.
 *
 * Callbacks may call conn_free() on their connection (the free is delayed
 * until the callback returns); after CONN_EV_EOF, CONN_EV_ERROR and
 * CONN_EV_TIMEOUT nothing more happens until the protocol frees it or, for a
 * timeout, writes a reply. */
#ifndef CONGVU_CONN_H
#define CONGVU_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct ioloop;
struct tls_ctx;
struct conn;

enum conn_event {
	CONN_EV_DATA_IN,   /* new input is buffered: conn_input() / conn_read_line() */
	CONN_EV_DRAINED,   /* all buffered output has been written to the kernel */
	CONN_EV_TLS_READY, /* the TLS handshake completed; input starts afresh */
	CONN_EV_TIMEOUT,   /* no input for the idle timeout (conn_set_timeout) */
	CONN_EV_EOF,       /* the peer closed; all its data was delivered before */
	CONN_EV_ERROR,     /* I/O or TLS failure: conn_error() says which */
};

typedef void conn_callback_fn(struct conn *conn, enum conn_event ev, void *ctx);

/* Takes ownership of fd (made non-blocking and close-on-exec here) and
 * watches it. Never fails except by aborting. */
struct conn *conn_new(struct ioloop *loop, int fd, conn_callback_fn *cb, void *ctx);
/* Closes the connection (a TLS close_notify is attempted without waiting),
 * drops unwritten output and sets *conn to NULL. NULL is ok. */
void conn_free(struct conn **conn);
/* Changes the callback context (e.g. when the protocol object is replaced). */
void conn_set_callback(struct conn *conn, conn_callback_fn *cb, void *ctx);
int conn_fd(const struct conn *conn);

/* Idle timeout: CONN_EV_TIMEOUT after msecs with no input (0: none). It is
 * restarted by every read from the peer, also while output is pending. */
void conn_set_timeout(struct conn *conn, unsigned msecs);
/* How many unconsumed input bytes stop reading from the socket (default
 * 64 KiB; at least 1). */
void conn_set_input_limit(struct conn *conn, size_t bytes);

/* ---- input ---- */

/* The buffered, unconsumed input (may be empty). Valid until the next call
 * into conn or the return of the current callback. */
void conn_input(const struct conn *conn, const void **data_r, size_t *len_r);
/* Drops n bytes (n <= what conn_input gave) from the front of the input. */
void conn_consume(struct conn *conn, size_t n);
/* The next line, up to and including its LF, without consuming it:
 * returns 1 with *line_r and *len_r (the caller checks for the CR before the LF
 * and then calls conn_consume(conn, *len_r)); 0 when no LF is buffered yet
 * and fewer than max bytes are; -1 when max bytes or more are buffered
 * without an LF (a line too long: the caller replies and discards with
 * conn_consume, then keeps discarding up to the next LF). */
int conn_read_line(const struct conn *conn, size_t max, const char **line_r, size_t *len_r);
/* While paused, nothing is read and no CONN_EV_DATA_IN is raised (e.g. while
 * the protocol waits for an asynchronous answer). Unpausing raises
 * CONN_EV_DATA_IN on the next iteration when input is buffered or may be
 * readable. */
void conn_input_pause(struct conn *conn, bool paused);

/* ---- output ---- */

void conn_write(struct conn *conn, const void *data, size_t len);
void conn_writes(struct conn *conn, const char *s);
void conn_printf(struct conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conn_vprintf(struct conn *conn, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Bytes written with conn_write() and not yet accepted by the kernel. */
size_t conn_output_size(const struct conn *conn);
/* Tries to write the buffered output now instead of at the end of the loop
 * iteration. Returns 0, or -1 after a write error (CONN_EV_ERROR follows). */
int conn_flush(struct conn *conn);

/* ---- TLS ---- */

/* Starts TLS as the server with ctx's current certificate (a later
 * tls_ctx_reload() affects only new handshakes). Buffered plaintext input is
 * discarded, as RFC 3207 section 4.2 (and the STARTTLS command injection
 * attacks) require; *discarded_r (may be NULL) gets its size so the protocol
 * can log it. Buffered output is written in clear first (the "220 Ready to
 * start TLS" reply). Returns 0, or -1 with *error_r (static) when TLS is
 * already active. CONN_EV_TLS_READY or CONN_EV_ERROR follows. */
int conn_starttls(struct conn *conn, struct tls_ctx *ctx, size_t *discarded_r,
		  const char **error_r);
/* The same as the client side of the handshake, sending servername as SNI
 * (may be NULL). Whether the peer certificate verified: conn_tls_verified(). */
int conn_starttls_client(struct conn *conn, struct tls_ctx *ctx, const char *servername,
			 const char **error_r);
bool conn_tls_active(const struct conn *conn);
/* After CONN_EV_TLS_READY: the protocol version and cipher names, e.g.
 * "TLSv1.3" and "TLS_AES_256_GCM_SHA384" (static strings), for Received:
 * headers and logs. NULL when TLS is not active. */
const char *conn_tls_version(const struct conn *conn);
const char *conn_tls_cipher(const struct conn *conn);
/* Client side: whether the server's certificate chain and name verified. */
bool conn_tls_verified(const struct conn *conn);
/* After CONN_EV_TLS_READY: the OpenSSL SSL * (an SSL *), for checks this
 * layer does not make itself (DANE TLSA matching in outbound delivery);
 * NULL when TLS is not active. */
void *conn_tls_ssl(const struct conn *conn);

/* The reason of the last CONN_EV_ERROR ("connection reset", "TLS handshake
 * failed: ...": static or owned by conn, valid until conn_free). */
const char *conn_error(const struct conn *conn);

/* Bytes of heap this connection holds now (buffers and TLS state, estimated):
 * for the memory tests and the idle-connection targets in doc/io.md. */
size_t conn_memory_usage(const struct conn *conn);

#endif
