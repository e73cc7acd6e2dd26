/* The milter client (Sendmail milter protocol version 6, as libmilter 8.14+
 * and Postfix speak it): every configured milter gets its own connection
 * per SMTP session, option negotiation, the standard macros, all stages
 * (connect, helo, envfrom, envrcpt, data, headers, body, end of message)
 * and the modifications of the end of message (add/change/insert/delete
 * header, replace body, add/delete recipient, change sender are applied to
 * the message as far as this server can; see doc/smtpd.md). Everything is
 * asynchronous on the worker's event loop: each call answers through the
 * callback, never blocking, and each milter step has a timeout after which
 * smtpd.milter_default_action applies. */
#ifndef CONGVU_SMTPD_MILTER_H
#define CONGVU_SMTPD_MILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

struct ioloop;
struct milter_session;

enum milter_action {
	MILTER_CONTINUE,   /* go on (also: every milter accepted) */
	MILTER_REJECT,     /* 5xx: reply is the milter's or a default */
	MILTER_TEMPFAIL,   /* 4xx */
	MILTER_DISCARD,    /* accept the message, deliver nothing */
	MILTER_QUARANTINE, /* deliver, but into Junk (the reason is logged) */
};

enum milter_default { MILTER_DEFAULT_ACCEPT, MILTER_DEFAULT_TEMPFAIL, MILTER_DEFAULT_REJECT };

struct milter_config {
	char **specs;       /* "unix:/path" or "inet:port@host" */
	size_t n_specs;
	unsigned timeout_ms;
	enum milter_default default_action;
};

/* reply: the SMTP reply to send for REJECT/TEMPFAIL ("550 5.7.1 ..."), or
 * NULL for the default; valid during the call only. */
typedef void milter_done_fn(void *ctx, enum milter_action action, const char *reply);

/* Macros the milters may ask for; strings are copied. Any may be NULL. */
struct milter_macros {
	const char *j;            /* our host name */
	const char *i;            /* queue id */
	const char *client_addr;
	const char *client_name;
	const char *client_port;
	const char *daemon_name;
	const char *auth_authen;  /* the authenticated user */
	const char *auth_type;
	const char *tls_version;
	const char *cipher;
	const char *mail_addr;
	const char *rcpt_addr;
};

struct milter_session *milter_session_new(struct ioloop *loop, const struct milter_config *cfg);
void milter_session_free(struct milter_session **ms);
/* Updates macro values (a NULL field keeps the previous value). */
void milter_set_macros(struct milter_session *ms, const struct milter_macros *m);

void milter_connect(struct milter_session *ms, const char *hostname, const char *addr,
		    unsigned port, bool is_ipv6, milter_done_fn *done, void *ctx);
void milter_helo(struct milter_session *ms, const char *helo, milter_done_fn *done, void *ctx);
/* args: the address in <> then the ESMTP parameters, NULL-terminated. */
void milter_envfrom(struct milter_session *ms, const char *const *args, milter_done_fn *done,
		    void *ctx);
void milter_envrcpt(struct milter_session *ms, const char *const *args, milter_done_fn *done,
		    void *ctx);
void milter_data(struct milter_session *ms, milter_done_fn *done, void *ctx);
/* Sends the message (headers, body) and the end of message; applies the
 * header and body modifications to *message (CRLF text) before calling
 * done. skip: bytes at the start of *message not shown to the milters
 * (our Received: header is shown; Return-Path is not added yet). */
void milter_eom(struct milter_session *ms, struct str *message, milter_done_fn *done, void *ctx);
/* The transaction ended (RSET, end of message): forget per-message state. */
void milter_abort(struct milter_session *ms);

#endif
