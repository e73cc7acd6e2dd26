/* The SMTP/LMTP session state machine; see smtp-session.h. */
#include "config.h"
#include "smtp-session.h"
#include "sasl.h"
#include "xalloc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum mode {
	MODE_CMD,          /* reading command lines */
	MODE_AUTH,         /* reading SASL responses */
	MODE_DISCARD_LINE, /* after an overlong line: up to its LF */
	MODE_DATA,         /* DATA: until CRLF.CRLF */
	MODE_BDAT,         /* a BDAT chunk: bdat_left octets */
	MODE_CLOSED,
};

/* Where the data parser stands within a line. */
enum dstate {
	D_BOL,    /* at the start of a line (after CRLF) */
	D_TEXT,   /* inside a line */
	D_CR,     /* after a CR inside a line */
	D_DOT,    /* after a '.' at the start of a line */
	D_DOT_CR, /* after ".\r" at the start of a line */
};

struct smtp_session {
	struct smtp_session_config cfg;
	struct smtp_session_hooks hooks;
	void *ctx;

	enum mode mode;
	int waiting;                /* the stage waited for, or -1 */
	bool helo_done, esmtp, tls, in_tx;
	char *helo;
	char *auth_user;
	struct sasl_server *sasl;
	char tls_version[32], tls_cipher[64];
	unsigned errors;
	unsigned messages;

	struct smtp_tx tx;

	/* data */
	enum dstate dstate;
	size_t line_len;            /* octets of the current data line */
	bool bad_bare, bad_long, too_big;
	uint64_t data_bytes;        /* octets of message data received */
	/* BDAT */
	uint64_t bdat_left;
	bool bdat_last, bdat_started;
	char *bdat_error;           /* reply after reading the chunk (owned) */
};

/* ---- replies ---- */

static void out(struct smtp_session *s, const char *text)
{
	s->hooks.write(s->ctx, text, strlen(text));
}

static void reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = strlen(buf);
	buf[len++] = '\r';
	buf[len++] = '\n';
	s->hooks.write(s->ctx, buf, len);
}

static void slog(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void slog(struct smtp_session *s, const char *fmt, ...)
{
	if (s->hooks.log == NULL)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->hooks.log(s->ctx, buf);
}

static void close_session(struct smtp_session *s)
{
	if (s->mode == MODE_CLOSED)
		return;
	s->mode = MODE_CLOSED;
	s->hooks.close(s->ctx);
}

/* An error reply caused by the client; too many end the session. */
static void reply_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_error(struct smtp_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	reply(s, "%s", buf);
	if (++s->errors >= s->cfg.max_errors) {
		slog(s, "event=too_many_errors errors=%u", s->errors);
		reply(s, "421 4.7.0 %s Error: too many errors", s->cfg.hostname);
		close_session(s);
	}
}

/* Sends an owner-given reply (lines separated by CRLF inside). */
static void reply_raw(struct smtp_session *s, const char *text)
{
	out(s, text);
	out(s, "\r\n");
}

/* ---- the transaction ---- */

static void rcpt_free(struct smtp_rcpt *r)
{
	x_free(&r->path);
	x_free(&r->orcpt);
	x_free(&r->account);
	r->notify = 0;
	r->local = false;
}

static void tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	x_free(&tx->mail_from);
	x_free(&tx->envid);
	for (size_t i = 0; i < tx->n_rcpts; i++)
		rcpt_free(&tx->rcpts[i]);
	x_free(&tx->rcpts);
	tx->n_rcpts = 0;
	rcpt_free(&tx->pending);
	str_free(&tx->data);
	tx->received_len = 0;
	tx->size_param = 0;
	tx->body = SMTP_BODY_7BIT;
	tx->smtputf8 = false;
	tx->ret = SMTP_RET_NONE;
	s->in_tx = false;
	s->bdat_started = false;
	s->bad_bare = s->bad_long = s->too_big = false;
	s->data_bytes = 0;
	s->line_len = 0;
	s->dstate = D_BOL;
}

/* ---- lifecycle ---- */

struct smtp_session *smtp_session_new(const struct smtp_session_config *config,
				      const struct smtp_session_hooks *hooks, void *ctx)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	s->cfg = *config;
	s->cfg.hostname = xstrdup(config->hostname ? config->hostname : "localhost");
	s->cfg.client_addr = xstrdup(config->client_addr ? config->client_addr : "unknown");
	s->cfg.client_name = config->client_name ? xstrdup(config->client_name) : NULL;
	s->cfg.session_id = xstrdup(config->session_id ? config->session_id : "");
	if (s->cfg.max_errors == 0)
		s->cfg.max_errors = 1;
	s->hooks = *hooks;
	s->ctx = ctx;
	s->waiting = -1;
	s->tls = config->tls_active;
	s->mode = MODE_CMD;
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;
	if (s == NULL)
		return;
	tx_reset(s);
	x_free(&s->bdat_error);
	sasl_server_free(&s->sasl);
	free(s->helo);
	free(s->auth_user);
	free((char *)s->cfg.hostname);
	free((char *)s->cfg.client_addr);
	free((char *)s->cfg.client_name);
	free((char *)s->cfg.session_id);
	free(s);
	*sp = NULL;
}

void smtp_session_set_client_name(struct smtp_session *s, const char *name)
{
	free((char *)s->cfg.client_name);
	s->cfg.client_name = name ? xstrdup(name) : NULL;
}

static void wait_stage(struct smtp_session *s, enum smtp_stage stage)
{
	s->waiting = (int)stage;
	s->hooks.stage(s->ctx, stage);
}

void smtp_session_start(struct smtp_session *s)
{
	wait_stage(s, SMTP_STAGE_CONNECT);
}

bool smtp_session_in_data(const struct smtp_session *s)
{
	return s->mode == MODE_DATA || s->mode == MODE_BDAT;
}

bool smtp_session_waiting(const struct smtp_session *s)
{
	return s->waiting >= 0;
}

bool smtp_session_closed(const struct smtp_session *s)
{
	return s->mode == MODE_CLOSED;
}

struct smtp_tx *smtp_session_tx(struct smtp_session *s)
{
	return &s->tx;
}

const char *smtp_session_helo(const struct smtp_session *s)
{
	return s->helo ? s->helo : "";
}

bool smtp_session_esmtp(const struct smtp_session *s)
{
	return s->esmtp;
}

bool smtp_session_tls(const struct smtp_session *s)
{
	return s->tls;
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
	return s->auth_user;
}

void smtp_session_set_auth_user(struct smtp_session *s, const char *account)
{
	free(s->auth_user);
	s->auth_user = xstrdup(account);
}

unsigned smtp_session_messages(const struct smtp_session *s)
{
	return s->messages;
}

void smtp_session_auth_creds(const struct smtp_session *s, const char **user_r,
			     const char **password_r)
{
	if (s->sasl == NULL) {
		*user_r = *password_r = "";
		return;
	}
	const struct sasl_creds *c = sasl_server_creds(s->sasl);
	*user_r = c->authcid;
	*password_r = c->password;
}

void smtp_session_disconnected(struct smtp_session *s)
{
	s->mode = MODE_CLOSED;
}

void smtp_session_timeout(struct smtp_session *s)
{
	if (s->mode == MODE_CLOSED)
		return;
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg.hostname);
	close_session(s);
}

/* ---- path and parameter parsing ---- */

static bool is_atext(unsigned char c, bool utf8)
{
	if (c >= 0x80)
		return utf8;
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Local-part "@" domain (RFC 5321 4.1.2). Returns the end, or NULL. */
static const char *parse_mailbox(const char *p, bool utf8)
{
	/* local part: dot-string or quoted-string */
	if (*p == '"') {
		p++;
		while (*p != '"') {
			unsigned char c = (unsigned char)*p;
			if (c == '\\') {
				p++;
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					return NULL;
				p++;
				continue;
			}
			if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
				return NULL;
			p++;
		}
		p++;
	} else {
		bool need = true;
		while (is_atext((unsigned char)*p, utf8) || (*p == '.' && !need)) {
			need = *p == '.';
			p++;
		}
		if (need)
			return NULL;
	}
	if (*p != '@')
		return NULL;
	p++;
	if (*p == '[') {
		/* address-literal: a checked shape, not a full grammar */
		p++;
		const char *start = p;
		while (*p != ']' && *p != '\0') {
			if (!isalnum((unsigned char)*p) && strchr(".:-", *p) == NULL)
				return NULL;
			p++;
		}
		if (*p != ']' || p == start)
			return NULL;
		return p + 1;
	}
	/* domain: sub-domains of letters, digits, '-' (and UTF-8 with SMTPUTF8) */
	bool any = false;
	for (;;) {
		const char *label = p;
		while (isalnum((unsigned char)*p) || *p == '-' || ((unsigned char)*p >= 0x80 && utf8))
			p++;
		if (p == label || label[0] == '-' || p[-1] == '-')
			return NULL;
		any = true;
		if (*p != '.')
			break;
		p++;
	}
	return any ? p : NULL;
}

int smtp_parse_path(const char *arg, bool allow_empty, bool smtputf8_ok, char **path_r,
		    const char **params_r, const char **error_r)
{
	const char *p = arg;
	while (*p == ' ')
		p++; /* "MAIL FROM: <x>" is common enough to tolerate */
	if (*p != '<') {
		*error_r = "501 5.1.7 Syntax: path must be in angle brackets";
		return -1;
	}
	const char *start = p + 1;
	const char *close = NULL;
	if (allow_empty && start[0] == '>') {
		close = start;
	} else {
		const char *q = start;
		/* obsolete source route "@a,@b:" is skipped (RFC 5321 4.1.2) */
		if (*q == '@') {
			const char *colon = strchr(q, ':');
			const char *gt = strchr(q, '>');
			if (colon == NULL || (gt != NULL && gt < colon)) {
				*error_r = "501 5.1.3 Bad address syntax";
				return -1;
			}
			q = colon + 1;
			start = q;
		}
		const char *end = parse_mailbox(q, smtputf8_ok);
		if (end == NULL && !allow_empty && strncasecmp(q, "postmaster>", 11) == 0)
			end = q + 10; /* RFC 5321 4.5.1 */
		if (end == NULL || *end != '>') {
			*error_r = "501 5.1.3 Bad address syntax";
			return -1;
		}
		close = end;
	}
	size_t len = (size_t)(close - start);
	if (len + 2 > SMTP_PATH_MAX) {
		*error_r = "501 5.1.3 Path too long";
		return -1;
	}
	p = close + 1;
	if (*p != '\0' && *p != ' ') {
		*error_r = "501 5.5.4 Syntax error after path";
		return -1;
	}
	while (*p == ' ')
		p++;
	*path_r = xstrndup(start, len);
	*params_r = p;
	return 0;
}

int smtp_xtext_decode(const char *in, char *out_buf, size_t out_size)
{
	size_t n = 0;
	for (const char *p = in; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 33 || c > 126 || c == '=')
			return -1;
		if (c == '+') {
			if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]) ||
			    islower((unsigned char)p[1]) || islower((unsigned char)p[2]))
				return -1;
			char hex[3] = { p[1], p[2], '\0' };
			c = (unsigned char)strtoul(hex, NULL, 16);
			p += 2;
		}
		if (n + 1 >= out_size)
			return -1;
		out_buf[n++] = (char)c;
	}
	out_buf[n] = '\0';
	return 0;
}

/* Splits the next "KEY[=VALUE]" off *p (space-separated); NUL-terminates
 * inside buf. Returns false at the end. */
static bool next_param(char **p, char **key_r, char **value_r)
{
	char *q = *p;
	while (*q == ' ')
		q++;
	if (*q == '\0')
		return false;
	char *end = strchr(q, ' ');
	if (end != NULL)
		*end++ = '\0';
	else
		end = q + strlen(q);
	*p = end;
	char *eq = strchr(q, '=');
	if (eq != NULL)
		*eq++ = '\0';
	*key_r = q;
	*value_r = eq;
	return true;
}

static int parse_uint64(const char *s, uint64_t *v_r)
{
	size_t n = strlen(s);
	if (n == 0 || n > 19 || strspn(s, "0123456789") != n)
		return -1;
	*v_r = strtoull(s, NULL, 10);
	return 0;
}

/* ---- commands ---- */

static void cmd_helo_common(struct smtp_session *s, const char *arg, bool esmtp)
{
	if (*arg == '\0') {
		reply_error(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	size_t n = strcspn(arg, " ");
	if (n > SMTP_DOMAIN_MAX) {
		reply_error(s, "501 5.5.4 Hostname too long");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c < 0x21 || c > 0x7e) {
			reply_error(s, "501 5.5.4 Bad hostname");
			return;
		}
	}
	free(s->helo);
	s->helo = xstrndup(arg, n);
	s->esmtp = esmtp;
	tx_reset(s);
	wait_stage(s, SMTP_STAGE_HELO);
}

static bool is_lmtp(const struct smtp_session *s)
{
	return s->cfg.service == SMTP_SERVICE_LMTP;
}

static bool auth_offered(const struct smtp_session *s)
{
	return !is_lmtp(s) && s->tls && s->auth_user == NULL;
}

static bool auth_required(const struct smtp_session *s)
{
	return s->cfg.service == SMTP_SERVICE_SUBMISSION || s->cfg.service == SMTP_SERVICE_SMTPS;
}

static void send_ehlo(struct smtp_session *s)
{
	if (!s->esmtp) {
		reply(s, "250 %s", s->cfg.hostname);
		return;
	}
	reply(s, "250-%s", s->cfg.hostname);
	out(s, "250-PIPELINING\r\n");
	reply(s, "250-SIZE %llu", (unsigned long long)s->cfg.max_message_size);
	if (s->cfg.starttls_available && !s->tls && s->cfg.service != SMTP_SERVICE_SMTPS &&
	    !is_lmtp(s))
		out(s, "250-STARTTLS\r\n");
	if (auth_offered(s))
		out(s, "250-AUTH PLAIN LOGIN\r\n");
	out(s, "250-ENHANCEDSTATUSCODES\r\n"
	       "250-8BITMIME\r\n"
	       "250-SMTPUTF8\r\n"
	       "250-DSN\r\n"
	       "250 CHUNKING\r\n");
}

static void cmd_helo(struct smtp_session *s, char *arg)
{
	cmd_helo_common(s, arg, false);
}

static void cmd_ehlo(struct smtp_session *s, char *arg)
{
	cmd_helo_common(s, arg, true);
}

static void cmd_starttls(struct smtp_session *s, char *arg)
{
	if (*arg != '\0') {
		reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls) {
		reply_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (!s->cfg.starttls_available || is_lmtp(s)) {
		reply_error(s, "454 4.7.0 TLS not available");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/* Until TLS is up nothing more is read; what the client pipelined
	 * after STARTTLS is discarded by the connection (RFC 3207 4.2). */
	s->waiting = SMTP_STAGE_HELO;
	s->hooks.starttls(s->ctx);
}

void smtp_session_tls_started(struct smtp_session *s, const char *version, const char *cipher)
{
	s->tls = true;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", version ? version : "TLS");
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", cipher ? cipher : "unknown");
	x_free(&s->helo);
	s->helo_done = false;
	s->esmtp = false;
	tx_reset(s);
	x_free(&s->bdat_error);
	s->waiting = -1;
	s->mode = MODE_CMD;
}

static void auth_step_result(struct smtp_session *s, int r, const char *challenge,
			     const char *error)
{
	if (r == 1) {
		s->mode = MODE_CMD;
		const struct sasl_creds *c = sasl_server_creds(s->sasl);
		if (c->authzid[0] != '\0' && strcasecmp(c->authzid, c->authcid) != 0) {
			/* PLAIN's authzid: acting as another user is not offered,
			 * and ignoring it would authenticate someone else than
			 * the client asked to be (RFC 4616 2) */
			sasl_server_free(&s->sasl);
			reply_error(s, "535 5.7.8 Authentication credentials invalid");
			return;
		}
		wait_stage(s, SMTP_STAGE_AUTH);
		return;
	}
	if (r == 0) {
		s->mode = MODE_AUTH;
		reply(s, "334 %s", challenge);
		return;
	}
	s->mode = MODE_CMD;
	sasl_server_free(&s->sasl);
	if (strcmp(error, "cancelled") == 0)
		reply_error(s, "501 5.0.0 Authentication cancelled");
	else
		reply_error(s, "501 5.5.2 Authentication failed: %s", error);
}

static void cmd_auth(struct smtp_session *s, char *arg)
{
	if (is_lmtp(s)) {
		reply_error(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (!s->esmtp) {
		reply_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (!s->tls) {
		reply_error(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (s->auth_user != NULL) {
		reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_tx) {
		reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	char *initial = strchr(arg, ' ');
	if (initial != NULL) {
		*initial++ = '\0';
		if (strchr(initial, ' ') != NULL) {
			reply_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return;
		}
	}
	enum sasl_mech mech;
	if (sasl_mech_parse(arg, &mech) < 0) {
		reply_error(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	sasl_server_free(&s->sasl);
	s->sasl = sasl_server_new(mech);
	const char *challenge = "", *error = "malformed";
	int r = sasl_server_start(s->sasl, initial, initial ? strlen(initial) : 0, &challenge,
				  &error);
	auth_step_result(s, r, challenge, error);
}

static void auth_line(struct smtp_session *s, const char *line, size_t len)
{
	const char *challenge = "", *error = "malformed";
	int r = sasl_server_input(s->sasl, line, len, &challenge, &error);
	auth_step_result(s, r, challenge, error);
}

static bool check_mail_allowed(struct smtp_session *s)
{
	if (!s->helo_done) {
		reply_error(s, "503 5.5.1 Error: send %s first", is_lmtp(s) ? "LHLO" : "HELO/EHLO");
		return false;
	}
	if (auth_required(s) && s->auth_user == NULL) {
		reply_error(s, "530 5.7.0 Authentication required");
		return false;
	}
	if (s->in_tx) {
		reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return false;
	}
	return true;
}

static void cmd_mail(struct smtp_session *s, char *arg)
{
	if (strncasecmp(arg, "FROM:", 5) != 0) {
		reply_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (!check_mail_allowed(s))
		return;
	/* SMTPUTF8 decides whether UTF-8 is allowed in the path: look first. */
	bool utf8 = false;
	const char *gt = strchr(arg, '>');
	if (gt != NULL) {
		const char *params = gt + 1;
		for (const char *p = params; (p = strcasestr(p, "SMTPUTF8")) != NULL; p += 8) {
			if ((p == params || p[-1] == ' ') && (p[8] == '\0' || p[8] == ' '))
				utf8 = true;
		}
	}
	char *path;
	const char *params_c, *error;
	if (smtp_parse_path(arg + 5, true, utf8, &path, &params_c, &error) < 0) {
		reply_error(s, "%s", error);
		return;
	}
	tx_reset(s);
	s->tx.mail_from = path;
	char *params = xstrdup(params_c);
	char *p = params, *key, *value;
	const char *bad = NULL;
	while (bad == NULL && next_param(&p, &key, &value)) {
		if (strcasecmp(key, "SIZE") == 0) {
			if (value == NULL || parse_uint64(value, &s->tx.size_param) < 0)
				bad = "501 5.5.4 Bad SIZE parameter";
			else if (s->tx.size_param > s->cfg.max_message_size)
				bad = "552 5.3.4 Message size exceeds fixed maximum message size";
		} else if (strcasecmp(key, "BODY") == 0) {
			if (value != NULL && strcasecmp(value, "8BITMIME") == 0)
				s->tx.body = SMTP_BODY_8BITMIME;
			else if (value != NULL && strcasecmp(value, "7BIT") == 0)
				s->tx.body = SMTP_BODY_7BIT;
			else
				bad = "501 5.5.4 Unsupported BODY parameter";
		} else if (strcasecmp(key, "SMTPUTF8") == 0 && value == NULL) {
			s->tx.smtputf8 = true;
		} else if (strcasecmp(key, "RET") == 0 && value != NULL) {
			if (strcasecmp(value, "FULL") == 0)
				s->tx.ret = SMTP_RET_FULL;
			else if (strcasecmp(value, "HDRS") == 0)
				s->tx.ret = SMTP_RET_HDRS;
			else
				bad = "501 5.5.4 Bad RET parameter";
		} else if (strcasecmp(key, "ENVID") == 0 && value != NULL && s->tx.envid == NULL) {
			char buf[SMTP_ENVID_MAX + 1];
			if (smtp_xtext_decode(value, buf, sizeof(buf)) < 0)
				bad = "501 5.5.4 Bad ENVID parameter";
			else
				s->tx.envid = xstrdup(buf);
		} else if (strcasecmp(key, "AUTH") == 0 && value != NULL) {
			/* RFC 4954 5: accepted, not trusted */
		} else {
			bad = "555 5.5.4 Unsupported MAIL parameter";
		}
	}
	free(params);
	if (bad != NULL) {
		tx_reset(s);
		reply_error(s, "%s", bad);
		return;
	}
	if (s->tx.mail_from[0] != '\0' && !s->tx.smtputf8) {
		for (const char *q = s->tx.mail_from; *q; q++) {
			if ((unsigned char)*q >= 0x80) {
				tx_reset(s);
				reply_error(s, "553 5.6.7 UTF-8 address needs SMTPUTF8");
				return;
			}
		}
	}
	s->in_tx = true;
	wait_stage(s, SMTP_STAGE_MAIL);
}

static void cmd_rcpt(struct smtp_session *s, char *arg)
{
	if (strncasecmp(arg, "TO:", 3) != 0) {
		reply_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (!s->in_tx) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx.n_rcpts >= s->cfg.max_recipients) {
		reply_error(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	char *path;
	const char *params_c, *error;
	if (smtp_parse_path(arg + 3, false, s->tx.smtputf8, &path, &params_c, &error) < 0) {
		reply_error(s, "%s", error);
		return;
	}
	struct smtp_rcpt *r = &s->tx.pending;
	rcpt_free(r);
	r->path = path;
	char *params = xstrdup(params_c);
	char *p = params, *key, *value;
	const char *bad = NULL;
	while (bad == NULL && next_param(&p, &key, &value)) {
		if (strcasecmp(key, "NOTIFY") == 0 && value != NULL && r->notify == 0) {
			char *save = NULL;
			for (char *v = strtok_r(value, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
				if (strcasecmp(v, "NEVER") == 0)
					r->notify |= SMTP_NOTIFY_NEVER;
				else if (strcasecmp(v, "SUCCESS") == 0)
					r->notify |= SMTP_NOTIFY_SUCCESS;
				else if (strcasecmp(v, "FAILURE") == 0)
					r->notify |= SMTP_NOTIFY_FAILURE;
				else if (strcasecmp(v, "DELAY") == 0)
					r->notify |= SMTP_NOTIFY_DELAY;
				else
					bad = "501 5.5.4 Bad NOTIFY parameter";
			}
			if (r->notify == 0 ||
			    ((r->notify & SMTP_NOTIFY_NEVER) && r->notify != SMTP_NOTIFY_NEVER))
				bad = "501 5.5.4 Bad NOTIFY parameter";
		} else if (strcasecmp(key, "ORCPT") == 0 && value != NULL && r->orcpt == NULL) {
			char buf[SMTP_ORCPT_MAX + 1];
			if (smtp_xtext_decode(value, buf, sizeof(buf)) < 0 || strchr(buf, ';') == NULL)
				bad = "501 5.5.4 Bad ORCPT parameter";
			else
				r->orcpt = xstrdup(buf);
		} else {
			bad = "555 5.5.4 Unsupported RCPT parameter";
		}
	}
	free(params);
	if (bad != NULL) {
		rcpt_free(r);
		reply_error(s, "%s", bad);
		return;
	}
	wait_stage(s, SMTP_STAGE_RCPT);
}

static void cmd_data(struct smtp_session *s, char *arg)
{
	if (*arg != '\0') {
		reply_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_tx) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx.n_rcpts == 0) {
		reply_error(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (s->bdat_started) {
		reply_error(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	s->bdat_left = 0;
	wait_stage(s, SMTP_STAGE_DATA);
}

static size_t bdat_feed(struct smtp_session *s, const unsigned char *in, size_t len);

/* "BDAT 0": no octet follows, so the chunk is complete now and its reply
 * must not wait for more input (which a client waiting for it never sends). */
static void bdat_finish_empty(struct smtp_session *s)
{
	if (s->mode == MODE_BDAT && s->bdat_left == 0 && s->waiting < 0)
		(void)bdat_feed(s, NULL, 0);
}

static void cmd_bdat(struct smtp_session *s, char *arg)
{
	char *sp = strchr(arg, ' ');
	bool last = false;
	if (sp != NULL) {
		*sp++ = '\0';
		if (strcasecmp(sp, "LAST") != 0) {
			reply_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
			return;
		}
		last = true;
	}
	uint64_t size;
	if (parse_uint64(arg, &size) < 0) {
		/* the chunk size is unknown: nothing can be skipped, so end */
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		reply(s, "421 4.7.0 %s Error: cannot recover from a bad BDAT", s->cfg.hostname);
		close_session(s);
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	s->mode = MODE_BDAT;
	x_free(&s->bdat_error);
	if (!s->in_tx || s->tx.n_rcpts == 0) {
		s->bdat_error = xstrdup(s->in_tx ? "554 5.5.1 Error: no valid recipients"
						 : "503 5.5.1 Error: need MAIL and RCPT first");
		bdat_finish_empty(s);
		return;
	}
	if (!s->bdat_started) {
		s->bdat_started = true;
		wait_stage(s, SMTP_STAGE_DATA);
		return;
	}
	bdat_finish_empty(s);
}

static void cmd_rset(struct smtp_session *s, char *arg)
{
	(void)arg;
	tx_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, char *arg)
{
	(void)arg;
	reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, char *arg)
{
	(void)arg;
	reply(s, "221 2.0.0 Bye");
	close_session(s);
}

static void cmd_vrfy(struct smtp_session *s, char *arg)
{
	(void)arg;
	reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(struct smtp_session *s, char *arg)
{
	(void)arg;
	reply(s, "214 2.0.0 See RFC 5321");
}

enum {
	CMD_NEED_HELO = 1 << 0,
	CMD_SMTP_ONLY = 1 << 1,
	CMD_LMTP_ONLY = 1 << 2,
	CMD_ANY_TIME = 1 << 3, /* allowed before HELO */
};

static const struct {
	const char *name;
	void (*handler)(struct smtp_session *s, char *arg);
	unsigned flags;
} commands[] = {
	{ "HELO", cmd_helo, CMD_SMTP_ONLY | CMD_ANY_TIME },
	{ "EHLO", cmd_ehlo, CMD_SMTP_ONLY | CMD_ANY_TIME },
	{ "LHLO", cmd_ehlo, CMD_LMTP_ONLY | CMD_ANY_TIME },
	{ "STARTTLS", cmd_starttls, CMD_NEED_HELO },
	{ "AUTH", cmd_auth, CMD_SMTP_ONLY },
	{ "MAIL", cmd_mail, 0 },
	{ "RCPT", cmd_rcpt, 0 },
	{ "DATA", cmd_data, 0 },
	{ "BDAT", cmd_bdat, CMD_ANY_TIME },
	{ "RSET", cmd_rset, CMD_ANY_TIME },
	{ "NOOP", cmd_noop, CMD_ANY_TIME },
	{ "QUIT", cmd_quit, CMD_ANY_TIME },
	{ "VRFY", cmd_vrfy, CMD_ANY_TIME },
	{ "HELP", cmd_help, CMD_ANY_TIME },
};

static void command(struct smtp_session *s, char *line)
{
	char *arg = strchr(line, ' ');
	if (arg != NULL)
		*arg++ = '\0';
	else
		arg = line + strlen(line);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcasecmp(line, commands[i].name) != 0)
			continue;
		unsigned f = commands[i].flags;
		if (((f & CMD_SMTP_ONLY) && is_lmtp(s)) || ((f & CMD_LMTP_ONLY) && !is_lmtp(s)))
			break;
		if ((f & CMD_NEED_HELO) && !s->helo_done) {
			reply_error(s, "503 5.5.1 Error: send %s first", is_lmtp(s) ? "LHLO" : "EHLO");
			return;
		}
		commands[i].handler(s, arg);
		return;
	}
	char name[32];
	size_t n = 0;
	for (const char *p = line; *p && n < sizeof(name) - 1 && n < 16; p++)
		name[n++] = isprint((unsigned char)*p) ? *p : '?';
	name[n] = '\0';
	slog(s, "event=unknown_command command=\"%s\"", name);
	reply_error(s, "502 5.5.2 Error: command not recognized");
}

/* ---- data ---- */

static void add_received(struct smtp_session *s)
{
	struct str *d = &s->tx.data;
	char helo[128];
	size_t n = 0;
	for (const char *p = smtp_session_helo(s); *p && n < sizeof(helo) - 1; p++)
		helo[n++] = (*p > 0x20 && *p < 0x7f && *p != '(' && *p != ')') ? *p : '?';
	helo[n] = '\0';
	const char *proto;
	bool a = s->auth_user != NULL;
	if (is_lmtp(s))
		proto = s->tls ? (a ? "LMTPSA" : "LMTPS") : (a ? "LMTPA" : "LMTP");
	else if (!s->esmtp)
		proto = "SMTP";
	else if (s->tx.smtputf8)
		proto = s->tls ? (a ? "UTF8SMTPSA" : "UTF8SMTPS") : (a ? "UTF8SMTPA" : "UTF8SMTP");
	else
		proto = s->tls ? (a ? "ESMTPSA" : "ESMTPS") : (a ? "ESMTPA" : "ESMTP");
	str_printf(d, "Received: from %s (%s [%s])\r\n", helo,
		   s->cfg.client_name ? s->cfg.client_name : "unknown", s->cfg.client_addr);
	if (s->tls)
		str_printf(d, "\t(using %s with cipher %s)\r\n", s->tls_version, s->tls_cipher);
	str_printf(d, "\tby %s (congvu) with %s id %s", s->cfg.hostname, proto,
		   s->cfg.session_id);
	if (s->tx.n_rcpts == 1) {
		const char *r = s->tx.rcpts[0].path;
		bool clean = strlen(r) < 200;
		for (const char *p = r; clean && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				clean = false;
		if (clean)
			str_printf(d, "\r\n\tfor <%s>", r);
	}
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	str_printf(d, ";\r\n\t%s\r\n", date);
	s->tx.received_len = d->len;
}

/* Feeds DATA bytes: dot-unstuffing, the terminator, bare CR/LF and line
 * length checks. Returns bytes consumed; sets mode back to MODE_CMD at the
 * end of the data. */
static size_t data_feed(struct smtp_session *s, const unsigned char *in, size_t len, bool bdat)
{
	struct str *d = &s->tx.data;
	uint64_t max = s->cfg.max_message_size;
	bool keep = !s->too_big;
	if (keep)
		str_reserve(d, len + 2);
	char *o = d->s + d->len;
	size_t i = 0;
#define EMIT(c)                                     \
	do {                                        \
		if (keep)                           \
			*o++ = (char)(c);           \
		s->line_len++;                      \
	} while (0)
	for (; i < len; i++) {
		unsigned char c = in[i];
		switch (s->dstate) {
		case D_DOT:
			if (c == '\r') {
				s->dstate = D_DOT_CR;
				continue;
			}
			/* a stuffed dot: dropped (RFC 5321 4.5.2) */
			s->dstate = D_TEXT;
			break;
		case D_DOT_CR:
			if (c == '\n') {
				i++;
				goto end_of_data;
			}
			/* ".\r" then not LF: a bare CR */
			s->bad_bare = true;
			EMIT('\r');
			s->dstate = D_TEXT;
			break;
		case D_CR:
			if (c == '\n') {
				EMIT('\r');
				EMIT('\n');
				if (s->line_len > SMTP_LINE_MAX)
					s->bad_long = true;
				s->line_len = 0;
				s->dstate = D_BOL;
				continue;
			}
			s->bad_bare = true;
			EMIT('\r');
			s->dstate = D_TEXT;
			break;
		case D_BOL:
			if (c == '.' && !bdat) {
				s->dstate = D_DOT;
				s->line_len++;
				continue;
			}
			s->dstate = D_TEXT;
			break;
		case D_TEXT:
			break;
		}
		/* D_TEXT with c to place */
		if (c == '\r') {
			s->dstate = D_CR;
			continue;
		}
		if (c == '\n')
			s->bad_bare = true; /* bare LF: data, never a line end */
		EMIT(c);
		/* fast path: copy the run of ordinary bytes up to the next CR or LF */
		if (i + 1 < len) {
			const unsigned char *run = in + i + 1;
			size_t left = len - i - 1;
			const unsigned char *cr = memchr(run, '\r', left);
			size_t n = cr != NULL ? (size_t)(cr - run) : left;
			const unsigned char *lf = memchr(run, '\n', n);
			if (lf != NULL)
				n = (size_t)(lf - run);
			if (keep) {
				memcpy(o, run, n);
				o += n;
			}
			s->line_len += n;
			i += n;
		}
	}
	if (keep) {
		d->len = (size_t)(o - d->s);
		d->s[d->len] = '\0';
	}
	s->data_bytes += i;
	if (d->len - s->tx.received_len > max && !s->too_big) {
		s->too_big = true;
		str_truncate(d, s->tx.received_len);
	}
	return i;
end_of_data:
	if (keep) {
		d->len = (size_t)(o - d->s);
		d->s[d->len] = '\0';
	}
	s->data_bytes += i;
	if (d->len - s->tx.received_len > max)
		s->too_big = true;
	s->mode = MODE_CMD;
	s->dstate = D_BOL;
	return i;
#undef EMIT
}

/* The message is complete (DATA terminator or BDAT LAST). */
static void end_of_message(struct smtp_session *s)
{
	s->mode = MODE_CMD;
	const char *err = NULL;
	if (s->dstate == D_TEXT && !s->too_big)
		str_append(&s->tx.data, "\r\n", 2); /* a BDAT message may end without CRLF */
	if (s->too_big)
		err = "552 5.3.4 Message size exceeds fixed maximum message size";
	else if (s->bad_bare)
		err = "550 5.6.0 Message refused: bare CR or LF in message (RFC 5321 2.3.8)";
	else if (s->bad_long)
		err = "550 5.6.0 Message refused: line longer than 1000 octets";
	if (err != NULL) {
		slog(s, "event=message_refused reason=\"%.40s\"", err + 10);
		tx_reset(s);
		reply_error(s, "%s", err);
		return;
	}
	wait_stage(s, SMTP_STAGE_EOM);
}

static size_t bdat_feed(struct smtp_session *s, const unsigned char *in, size_t len)
{
	size_t n = len < s->bdat_left ? len : (size_t)s->bdat_left;
	if (s->bdat_error == NULL && n > 0)
		(void)data_feed(s, in, n, true);
	s->bdat_left -= n;
	if (s->bdat_left > 0)
		return n;
	s->mode = MODE_CMD;
	if (s->bdat_error != NULL) {
		char *e = s->bdat_error;
		s->bdat_error = NULL;
		tx_reset(s);
		reply_error(s, "%s", e);
		free(e);
		return n;
	}
	if (s->bdat_last) {
		if (s->dstate == D_CR)
			s->bad_bare = true;
		end_of_message(s);
	} else {
		reply(s, "250 2.0.0 Ok: %llu octets",
		      (unsigned long long)(s->tx.data.len - s->tx.received_len));
	}
	return n;
}

/* ---- input ---- */

/* One CRLF-terminated line (without the CRLF) in command or auth mode. */
static void line_in(struct smtp_session *s, char *line, size_t len)
{
	if (s->mode == MODE_AUTH) {
		auth_line(s, line, len);
		explicit_bzero(line, len);
		return;
	}
	command(s, line);
}

size_t smtp_session_input(struct smtp_session *s, const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t off = 0;
	while (off < len && s->waiting < 0 && s->mode != MODE_CLOSED) {
		const unsigned char *p = in + off;
		size_t avail = len - off;
		if (s->mode == MODE_DATA) {
			off += data_feed(s, p, avail, false);
			if (s->mode == MODE_CMD)
				end_of_message(s);
			continue;
		}
		if (s->mode == MODE_BDAT) {
			off += bdat_feed(s, p, avail);
			continue;
		}
		size_t scan = avail < SMTP_LINE_MAX ? avail : SMTP_LINE_MAX;
		const unsigned char *lf = memchr(p, '\n', scan);
		if (s->mode == MODE_DISCARD_LINE) {
			if (lf == NULL) {
				off += scan;
				continue;
			}
			off += (size_t)(lf - p) + 1;
			s->mode = MODE_CMD;
			continue;
		}
		if (lf == NULL) {
			if (avail < SMTP_LINE_MAX)
				break; /* wait for the rest of the line */
			off += scan;
			s->mode = MODE_DISCARD_LINE;
			sasl_server_free(&s->sasl);
			reply_error(s, "500 5.5.2 Error: line too long");
			continue;
		}
		size_t llen = (size_t)(lf - p);
		off += llen + 1;
		if (llen == 0 || p[llen - 1] != '\r' || memchr(p, '\r', llen - 1) != NULL ||
		    memchr(p, '\0', llen) != NULL) {
			if (s->mode == MODE_AUTH) {
				s->mode = MODE_CMD;
				sasl_server_free(&s->sasl);
			}
			reply_error(s, "500 5.5.2 Error: bare CR or LF (or NUL) in command refused");
			continue;
		}
		char line[SMTP_LINE_MAX + 1];
		memcpy(line, p, llen - 1);
		line[llen - 1] = '\0';
		line_in(s, line, llen - 1);
	}
	return off;
}

/* ---- resuming stages ---- */

static bool is_error_reply(const char *r)
{
	return r[0] == '4' || r[0] == '5';
}

void smtp_session_resume(struct smtp_session *s, const char *rep)
{
	if (s->waiting < 0 || s->mode == MODE_CLOSED)
		return;
	enum smtp_stage stage = (enum smtp_stage)s->waiting;
	s->waiting = -1;
	if (rep != NULL && strncmp(rep, "421", 3) == 0) {
		reply_raw(s, rep);
		close_session(s);
		return;
	}
	switch (stage) {
	case SMTP_STAGE_CONNECT:
		if (rep != NULL) {
			reply_raw(s, rep);
			close_session(s);
			return;
		}
		reply(s, "220 %s %s congvu", s->cfg.hostname, is_lmtp(s) ? "LMTP" : "ESMTP");
		break;
	case SMTP_STAGE_HELO:
		if (rep != NULL) {
			x_free(&s->helo);
			reply_error(s, "%s", rep);
			return;
		}
		s->helo_done = true;
		send_ehlo(s);
		break;
	case SMTP_STAGE_AUTH:
		if (rep != NULL || s->auth_user == NULL) {
			sasl_server_free(&s->sasl);
			x_free(&s->auth_user);
			reply_error(s, "%s", rep ? rep : "535 5.7.8 Authentication credentials invalid");
			return;
		}
		sasl_server_free(&s->sasl);
		reply(s, "235 2.7.0 Authentication successful");
		break;
	case SMTP_STAGE_MAIL:
		if (rep != NULL) {
			tx_reset(s);
			reply_error(s, "%s", rep);
			return;
		}
		reply(s, "250 2.1.0 Ok");
		break;
	case SMTP_STAGE_RCPT: {
		struct smtp_rcpt *r = &s->tx.pending;
		if (rep != NULL && is_error_reply(rep)) {
			rcpt_free(r);
			reply_error(s, "%s", rep);
			return;
		}
		s->tx.rcpts = xreallocarray(s->tx.rcpts, s->tx.n_rcpts + 1, sizeof(*r));
		s->tx.rcpts[s->tx.n_rcpts++] = *r;
		memset(r, 0, sizeof(*r));
		if (rep != NULL)
			reply_raw(s, rep);
		else
			reply(s, "250 2.1.5 Ok");
		break;
	}
	case SMTP_STAGE_DATA:
		if (rep != NULL && is_error_reply(rep)) {
			if (s->mode == MODE_BDAT) {
				/* the chunk must still be read; the reply follows it */
				x_free(&s->bdat_error);
				s->bdat_error = xstrdup(rep);
				bdat_finish_empty(s);
				return;
			}
			tx_reset(s);
			reply_error(s, "%s", rep);
			return;
		}
		str_free(&s->tx.data);
		add_received(s);
		s->dstate = D_BOL;
		s->line_len = 0;
		if (s->mode != MODE_BDAT) {
			s->mode = MODE_DATA;
			reply(s, "354 End data with <CR><LF>.<CR><LF>");
		} else {
			bdat_finish_empty(s);
		}
		break;
	case SMTP_STAGE_EOM:
		if (rep != NULL && is_error_reply(rep)) {
			reply_error(s, "%s", rep);
		} else {
			s->messages++;
			if (rep != NULL)
				reply_raw(s, rep);
			else
				reply(s, "250 2.0.0 Ok");
		}
		tx_reset(s);
		break;
	}
}

void smtp_session_resume_lmtp(struct smtp_session *s, const char *const *replies, size_t n)
{
	if (s->waiting != SMTP_STAGE_EOM || s->mode == MODE_CLOSED)
		return;
	s->waiting = -1;
	bool any = false;
	for (size_t i = 0; i < s->tx.n_rcpts; i++) {
		const char *r = i < n && replies[i] != NULL ? replies[i]
							  : "451 4.3.0 Error: internal error";
		reply_raw(s, r);
		if (!is_error_reply(r))
			any = true;
	}
	if (any)
		s->messages++;
	tx_reset(s);
}
