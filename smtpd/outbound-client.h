/* The SMTP client of outbound delivery: a testable core with no I/O
 * (STYLE 13). The owner feeds it the server's bytes in any slicing, writes
 * what it puts in its output buffer to the connection, asks it for more of
 * the message while the connection drains, and starts TLS when it says so.
 *
 * One session delivers one message to the recipients of one destination:
 * greeting, EHLO (HELO when EHLO is refused), STARTTLS whenever offered
 * (RFC 3207) unless told not to, EHLO again, MAIL FROM with SIZE (1870),
 * BODY=8BITMIME (6152), SMTPUTF8 (6531) and the DSN parameters (3461) as the
 * server offers them, the recipients (pipelined, RFC 2920, when offered),
 * then BDAT (CHUNKING, 3030) or DATA with dot-stuffing, then QUIT.
 * Loops end in a permanent failure (5.4.6): a server answering EHLO with our
 * own name, or a message with more than SMTPC_MAX_HOPS Received: fields.
 *
 * Replies (RFC 5321 4.2): three digits, then '-' on every line but the last
 * of a multi-line reply; all lines carry the same code; an enhanced status
 * code (RFC 3463) may follow. Bounded: SMTPC_LINE_MAX bytes per line,
 * SMTPC_REPLY_MAX bytes and SMTPC_REPLY_LINES lines per reply; over a bound
 * the session ends as a protocol error. */
#ifndef CONGVU_OUTBOUND_CLIENT_H
#define CONGVU_OUTBOUND_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define SMTPC_LINE_MAX 2048
#define SMTPC_REPLY_MAX 16384
#define SMTPC_REPLY_LINES 128
#define SMTPC_DIAG_MAX 400 /* bytes of a reply kept for logs and DSNs */
#define SMTPC_MAX_HOPS 50  /* Received: fields beyond which a message loops */

/* ---- replies ---- */

struct smtp_reply {
	unsigned code;        /* 200..599 */
	char enhanced[12];    /* "5.1.1", or "" when the server gave none */
	struct str text;      /* the text of every line, each ending in '\n' */
	unsigned n_lines;
};

struct smtp_reply_parser {
	struct smtp_reply reply;
	bool in_progress;
};

/* Feeds one line without its CRLF. Returns 0 when the reply continues, 1
 * when it is complete (parser->reply holds it until the next call), -1 with
 * *error_r (static) on a malformed line or a reply over the bounds. */
int smtp_reply_parse_line(struct smtp_reply_parser *parser, const char *line, size_t len,
			  const char **error_r);
void smtp_reply_parser_free(struct smtp_reply_parser *parser);
/* "550 5.1.1 first line of text", sanitised and at most SMTPC_DIAG_MAX
 * bytes, into out (appended). */
void smtp_reply_summary(const struct smtp_reply *reply, struct str *out);
/* The enhanced status of the reply, or the class default ("4.0.0"). */
const char *smtp_reply_status(const struct smtp_reply *reply, char buf[12]);

/* ---- the session ---- */

struct smtpc_rcpt {
	const char *addr;
	unsigned notify;      /* SMTP_NOTIFY_* (0: not given) */
	const char *orcpt;    /* decoded "rfc822;addr", or NULL */
};

struct smtpc_params {
	const char *helo_name;
	const char *mail_from;          /* "" for the null sender */
	bool smtputf8;                  /* the message needs SMTPUTF8 */
	bool body_8bit;                 /* BODY=8BITMIME was given on submission */
	int ret;                        /* 0 none, 1 FULL, 2 HDRS */
	const char *envid;              /* or NULL */
	const struct smtpc_rcpt *rcpts; /* at least one */
	size_t n_rcpts;
	const void *data;               /* the message, CRLF line ends */
	size_t size;
	bool starttls;                  /* use STARTTLS when offered */
	bool tls_required;              /* policy encrypt/verify: never send in clear */
	bool tls_verify;                /* policy verify: the certificate must verify */
};

enum smtpc_event {
	SMTPC_EV_CONTINUE, /* write the output, feed more input */
	SMTPC_EV_STARTTLS, /* write the output (nothing), drop buffered input, start
			    * TLS, then call smtpc_tls_ready() */
	SMTPC_EV_DONE,     /* finished: write the output (QUIT), then close */
};

enum smtpc_result {
	SMTPC_R_NONE,  /* not attempted (see smtpc_session_error) */
	SMTPC_R_OK,    /* the server took responsibility */
	SMTPC_R_TEMP,  /* 4xx or a failure during the transaction */
	SMTPC_R_PERM,  /* 5xx */
};

struct smtpc;

/* params and everything it points to must stay valid until the session is
 * done; smtpc_free and the result getters do not use them. */
struct smtpc *smtpc_new(const struct smtpc_params *params);
void smtpc_free(struct smtpc **c);

/* Feeds server bytes; *consumed_r gets how many were used (all, except
 * after SMTPC_EV_STARTTLS or SMTPC_EV_DONE, when the rest is to be
 * discarded). */
enum smtpc_event smtpc_feed(struct smtpc *c, const void *data, size_t len, size_t *consumed_r);
/* Output waiting to be written; the owner takes it and truncates the str. */
struct str *smtpc_output(struct smtpc *c);
/* While the message is being sent: appends up to about room bytes of it to
 * the output. Returns true while more remains. */
bool smtpc_produce(struct smtpc *c, size_t room);
/* The TLS handshake finished; verified: whether the certificate chain and
 * name verified. Sends EHLO again (or QUIT when verification was required
 * and failed). */
enum smtpc_event smtpc_tls_ready(struct smtpc *c, bool verified);
/* The connection ended early (EOF, error, timeout, TLS failure): every
 * recipient without a result gets a temporary one, or, before the
 * transaction started, the session error is set. */
void smtpc_abort(struct smtpc *c, const char *reason);

bool smtpc_done(const struct smtpc *c);
/* Non-NULL when the session failed before any recipient was tried (greeting,
 * EHLO, STARTTLS, TLS policy, connection): the owner may try another host.
 * permanent: the server refused us with 5xx. */
const char *smtpc_session_error(const struct smtpc *c, bool *permanent_r);
/* The result of recipient i and the server's reply ("550 5.1.1 ...", or our
 * own reason), with its enhanced status code ("5.1.1"). */
enum smtpc_result smtpc_rcpt_result(const struct smtpc *c, size_t i, const char **diag_r,
				    const char **status_r);
/* What the server offered (after EHLO), for logs and DSN decisions. */
bool smtpc_offered_dsn(const struct smtpc *c);
bool smtpc_used_tls(const struct smtpc *c);
/* Whether the message was handed over at all (the data phase was reached). */
bool smtpc_data_sent(const struct smtpc *c);

/* xtext (RFC 3461 4): appends s with '+', '=' and bytes outside 33..126 as +XX. */
void smtp_xtext_encode(struct str *out, const char *s);

#endif
