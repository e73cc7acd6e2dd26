/* The SMTP/LMTP session state machine: a testable core with no I/O
 * (STYLE 13). It is fed the client's bytes in any slicing, writes replies
 * through a callback, and asks its owner at each stage that needs outside
 * knowledge (recipient look-up, password check, milters, delivery) through
 * the stage callback; it then waits, consuming no input, until the owner
 * calls smtp_session_resume() - at once or from a later event.
 *
 * Protocols: ESMTP (RFC 5321) with PIPELINING, SIZE (1870), 8BITMIME
 * (6152), SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034/3463), STARTTLS
 * (3207), AUTH PLAIN/LOGIN with SASL-IR (4954, 4616), CHUNKING/BDAT (3030),
 * DSN parameters (3461, kept for outbound); LMTP (2033) with one reply per
 * recipient after the data.
 *
 * Input rules: lines end in CRLF only; a bare CR or LF is refused, never
 * taken as a line end (SMTP smuggling), in commands and in data; lines over
 * 1000 octets (with CRLF) are refused; the data ends only at CRLF.CRLF. */
#ifndef CONGVU_SMTP_SESSION_H
#define CONGVU_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define SMTP_LINE_MAX 1000 /* octets with CRLF (RFC 5321 4.5.3.1.6) */
#define SMTP_PATH_MAX 256  /* RFC 5321 4.5.3.1.3 */
#define SMTP_DOMAIN_MAX 255
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500

enum smtp_service {
	SMTP_SERVICE_MX,         /* port 25: STARTTLS offered */
	SMTP_SERVICE_SUBMISSION, /* 587: STARTTLS, then AUTH required */
	SMTP_SERVICE_SMTPS,      /* 465: implicit TLS, AUTH required */
	SMTP_SERVICE_LMTP,       /* LMTP from an edge MTA */
};

/* DSN NOTIFY bits (RFC 3461 4.1); 0 when not given. */
enum {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

enum smtp_body { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_rcpt {
	char *path;       /* forward-path without <>; local part as sent */
	char *orcpt;      /* ORCPT=, decoded xtext ("rfc822;addr"), or NULL */
	unsigned notify;  /* SMTP_NOTIFY_* */
	/* set by the owner at SMTP_STAGE_RCPT */
	bool local;       /* for a local account (else: to the outbound queue) */
	char *account;    /* local: the normalised account address */
};

/* The current mail transaction, readable by the owner. */
struct smtp_tx {
	char *mail_from;           /* reverse-path without <> ("" for null sender) */
	uint64_t size_param;       /* SIZE=, 0 when not given */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char *envid;               /* ENVID= decoded, or NULL */
	struct smtp_rcpt *rcpts;   /* accepted recipients */
	size_t n_rcpts;
	struct smtp_rcpt pending;  /* the recipient being checked at SMTP_STAGE_RCPT */
	/* the message: a Received: header, then the data as received
	 * (dot-unstuffed, CRLF line ends) */
	struct str data;
	size_t received_len;       /* bytes of the Received: header at the start */
};

enum smtp_stage {
	SMTP_STAGE_CONNECT, /* before the greeting (milter connect) */
	SMTP_STAGE_HELO,    /* after HELO/EHLO/LHLO syntax checks */
	SMTP_STAGE_AUTH,    /* credentials complete: smtp_session_auth_creds() */
	SMTP_STAGE_MAIL,    /* MAIL FROM parsed into tx */
	SMTP_STAGE_RCPT,    /* tx->pending parsed; owner sets local/account */
	SMTP_STAGE_DATA,    /* DATA/first BDAT accepted, before "354" */
	SMTP_STAGE_EOM,     /* the whole message is in tx->data */
};

/* Fixed for the session's lifetime by the owner. */
struct smtp_session_config {
	enum smtp_service service;
	const char *hostname;        /* greeting and Received: */
	uint64_t max_message_size;   /* SIZE, bytes of data */
	unsigned max_recipients;
	unsigned max_errors;         /* then 421 and close */
	bool starttls_available;     /* a certificate is loaded */
	bool tls_active;             /* SMTPS: TLS before the greeting */
	const char *client_addr;     /* for Received: "[192.0.2.1]" */
	const char *client_name;     /* verified reverse name or NULL */
	const char *session_id;      /* for Received: and logs */
};

struct smtp_session;

struct smtp_session_hooks {
	/* Writes reply bytes to the client. */
	void (*write)(void *ctx, const void *data, size_t len);
	/* Called at a stage; the session waits for smtp_session_resume(). */
	void (*stage)(void *ctx, enum smtp_stage stage);
	/* After "220 Ready to start TLS": start TLS on the connection and
	 * call smtp_session_tls_started() when it is up. */
	void (*starttls)(void *ctx);
	/* The session is over (QUIT, 421): flush the replies and close. */
	void (*close)(void *ctx);
	/* Optional: one line for the log (key=value fields, no client bytes
	 * unsanitised), e.g. a refused recipient. */
	void (*log)(void *ctx, const char *line);
};

struct smtp_session *smtp_session_new(const struct smtp_session_config *config,
				      const struct smtp_session_hooks *hooks, void *ctx);
void smtp_session_free(struct smtp_session **s);

/* Starts the session: CONNECT stage, then the greeting. */
void smtp_session_start(struct smtp_session *s);

/* Feeds input. Returns how many bytes were consumed; the rest must be
 * given again (with more) later. Consumes nothing while waiting at a stage
 * or after the session closed. */
size_t smtp_session_input(struct smtp_session *s, const void *data, size_t len);
/* The client closed or the connection failed: ends the session (no reply). */
void smtp_session_disconnected(struct smtp_session *s);
/* No input for the command or data timeout: 421 and close. */
void smtp_session_timeout(struct smtp_session *s);
/* Whether the session is reading message data (for the data timeout). */
bool smtp_session_in_data(const struct smtp_session *s);
/* Whether it waits at a stage (input must not be offered then). */
bool smtp_session_waiting(const struct smtp_session *s);
bool smtp_session_closed(const struct smtp_session *s);

/* Ends a stage. reply NULL: proceed with the normal reply. Otherwise the
 * full reply line without CRLF, e.g. "550 5.1.1 <x>: no such user" (a
 * multi-line reply has its lines separated by "\r\n"); a 4xx/5xx reply
 * refuses what the stage was about (the recipient is dropped, the message
 * refused...), a 421 reply also closes the session.
 * At SMTP_STAGE_EOM in LMTP, use smtp_session_resume_lmtp() instead. */
void smtp_session_resume(struct smtp_session *s, const char *reply);
/* LMTP end of data: one reply per accepted recipient, in order. */
void smtp_session_resume_lmtp(struct smtp_session *s, const char *const *replies, size_t n);

/* After STARTTLS: the new TLS layer is up; the session starts afresh
 * (RFC 3207 4.2: forget HELO and the transaction). */
void smtp_session_tls_started(struct smtp_session *s, const char *version, const char *cipher);

struct smtp_tx *smtp_session_tx(struct smtp_session *s);
/* The HELO/EHLO/LHLO argument ("" before). */
const char *smtp_session_helo(const struct smtp_session *s);
bool smtp_session_esmtp(const struct smtp_session *s);
bool smtp_session_tls(const struct smtp_session *s);
/* The authenticated user (normalised) or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *s);
/* At SMTP_STAGE_AUTH: the login name and password the client sent. */
void smtp_session_auth_creds(const struct smtp_session *s, const char **user_r,
			     const char **password_r);
/* After a successful SMTP_STAGE_AUTH the owner names the account. */
void smtp_session_set_auth_user(struct smtp_session *s, const char *account);
/* The client's verified name (Received: "from HELO (NAME [ADDR])"), or
 * NULL for "unknown"; before the greeting (smtp_session_start). */
void smtp_session_set_client_name(struct smtp_session *s, const char *name);
/* Messages accepted so far, for the log. */
unsigned smtp_session_messages(const struct smtp_session *s);

/* ---- parsers, exposed for tests and fuzzing ---- */

/* Parses "<path> [PARAM[=VALUE]]..." after "MAIL FROM:" or "RCPT TO:".
 * path_r gets the path without brackets (caller frees); *params_r points
 * to the rest (within arg). Returns 0, or -1 with *error_r (a reply). */
int smtp_parse_path(const char *arg, bool allow_empty, bool smtputf8_ok, char **path_r,
		    const char **params_r, const char **error_r);
/* Decodes RFC 3461 xtext into out (size out_size). 0 or -1. */
int smtp_xtext_decode(const char *in, char *out, size_t out_size);

#endif
