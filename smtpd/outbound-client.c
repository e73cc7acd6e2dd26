/* The SMTP client core of outbound delivery; see outbound-client.h. */
#include "config.h"
#include "outbound-client.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- replies ---- */

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* An enhanced status code "C.SSS.DDD " at the start of text whose class
 * matches the reply's (RFC 3463 2, RFC 2034 4); its length or 0. */
static size_t parse_enhanced(const char *s, size_t len, unsigned code)
{
	if (len < 5 || s[0] != (char)('0' + code / 100) || s[1] != '.')
		return 0;
	size_t i = 2, n = 0;
	while (i < len && is_digit(s[i]) && n < 3) {
		i++;
		n++;
	}
	if (n == 0 || i >= len || s[i] != '.')
		return 0;
	i++;
	n = 0;
	while (i < len && is_digit(s[i]) && n < 3) {
		i++;
		n++;
	}
	if (n == 0 || (i < len && s[i] != ' '))
		return 0;
	return i;
}

int smtp_reply_parse_line(struct smtp_reply_parser *p, const char *line, size_t len,
			  const char **error_r)
{
	struct smtp_reply *r = &p->reply;
	if (!p->in_progress) {
		str_truncate(&r->text, 0);
		r->code = 0;
		r->enhanced[0] = '\0';
		r->n_lines = 0;
	}
	if (len > SMTPC_LINE_MAX) {
		*error_r = "reply line too long";
		return -1;
	}
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !is_digit(line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-')) {
		*error_r = "malformed reply";
		return -1;
	}
	unsigned code = (unsigned)((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
	if (p->in_progress && code != r->code) {
		*error_r = "reply code changes inside a multi-line reply";
		return -1;
	}
	if (r->n_lines >= SMTPC_REPLY_LINES || r->text.len + len > SMTPC_REPLY_MAX) {
		*error_r = "reply too long";
		return -1;
	}
	r->code = code;
	const char *text = len > 4 ? line + 4 : "";
	size_t tlen = len > 4 ? len - 4 : 0;
	if (r->n_lines == 0) {
		size_t e = parse_enhanced(text, tlen, code);
		if (e > 0 && e < sizeof(r->enhanced)) {
			memcpy(r->enhanced, text, e);
			r->enhanced[e] = '\0';
		}
	}
	str_append(&r->text, text, tlen);
	str_appendc(&r->text, '\n');
	r->n_lines++;
	p->in_progress = len > 3 && line[3] == '-';
	return p->in_progress ? 0 : 1;
}

void smtp_reply_parser_free(struct smtp_reply_parser *p)
{
	str_free(&p->reply.text);
	memset(p, 0, sizeof(*p));
}

void smtp_reply_summary(const struct smtp_reply *r, struct str *out)
{
	str_printf(out, "%u", r->code);
	const char *t = r->text.s ? r->text.s : "";
	size_t n = strcspn(t, "\n");
	if (n > 0) {
		str_appendc(out, ' ');
		str_append_sanitized(out, t, n, SMTPC_DIAG_MAX - 4);
	}
}

const char *smtp_reply_status(const struct smtp_reply *r, char buf[12])
{
	if (r->enhanced[0] != '\0') {
		memcpy(buf, r->enhanced, sizeof(r->enhanced));
		return buf;
	}
	buf[0] = (char)('0' + r->code / 100);
	memcpy(buf + 1, ".0.0", 5);
	return buf;
}

void smtp_xtext_encode(struct str *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			str_printf(out, "+%02X", *p);
		else
			str_appendc(out, (char)*p);
	}
}

/* ---- the session ---- */

enum state {
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_TLS,        /* waiting for smtpc_tls_ready */
	S_MAIL,       /* replies to MAIL and RCPT (pipelined or one by one) */
	S_DATA,       /* reply to DATA */
	S_BODY,       /* sending the message; then its final reply */
	S_DONE,
};

struct rcpt_result {
	enum smtpc_result result;
	bool accepted;      /* 2xx to RCPT: the data reply decides */
	char *diag;
	char status[12];
};

struct smtpc {
	const struct smtpc_params *p;
	size_t n_rcpts;             /* of p, kept for smtpc_free after p is gone */
	enum state state;
	struct smtp_reply_parser parser;
	struct str line;            /* a partial line of input */
	bool line_too_long;
	struct str out;

	/* what the server offered */
	bool ehlo_done, pipelining, dsn, smtputf8, eightbit, chunking, starttls, size;
	uint64_t size_limit;
	bool tls_active, tls_tried;
	bool loops;                 /* the server greeted with our own name */

	/* the transaction */
	size_t next_cmd;            /* 0: MAIL, 1..n: RCPT i-1 */
	size_t replies;             /* replies received in S_MAIL */
	bool mail_failed;
	size_t accepted;
	struct rcpt_result *res;
	bool data_sent;
	bool use_bdat;
	size_t body_off;
	bool at_bol;
	bool body_tail_sent;

	char *session_error;
	bool session_perm;
};

struct smtpc *smtpc_new(const struct smtpc_params *p)
{
	struct smtpc *c = xcalloc(1, sizeof(*c));
	c->p = p;
	c->n_rcpts = p->n_rcpts;
	c->res = xcalloc(p->n_rcpts, sizeof(*c->res));
	c->at_bol = true;
	return c;
}

void smtpc_free(struct smtpc **cp)
{
	struct smtpc *c = *cp;
	if (c == NULL)
		return;
	smtp_reply_parser_free(&c->parser);
	str_free(&c->line);
	str_free(&c->out);
	for (size_t i = 0; i < c->n_rcpts; i++)
		free(c->res[i].diag);
	free(c->res);
	free(c->session_error);
	free(c);
	*cp = NULL;
}

struct str *smtpc_output(struct smtpc *c)
{
	return &c->out;
}

bool smtpc_done(const struct smtpc *c)
{
	return c->state == S_DONE;
}

bool smtpc_offered_dsn(const struct smtpc *c)
{
	return c->dsn;
}

bool smtpc_used_tls(const struct smtpc *c)
{
	return c->tls_active;
}

bool smtpc_data_sent(const struct smtpc *c)
{
	return c->data_sent;
}

const char *smtpc_session_error(const struct smtpc *c, bool *permanent_r)
{
	if (permanent_r != NULL)
		*permanent_r = c->session_perm;
	return c->session_error;
}

enum smtpc_result smtpc_rcpt_result(const struct smtpc *c, size_t i, const char **diag_r,
				    const char **status_r)
{
	*diag_r = c->res[i].diag ? c->res[i].diag : "";
	*status_r = c->res[i].status;
	return c->res[i].result;
}

static void set_result(struct smtpc *c, size_t i, enum smtpc_result result, const char *diag,
		       const char *status)
{
	struct rcpt_result *r = &c->res[i];
	r->result = result;
	free(r->diag);
	r->diag = xstrdup(diag);
	snprintf(r->status, sizeof(r->status), "%s", status);
}

static void set_result_reply(struct smtpc *c, size_t i, const struct smtp_reply *reply)
{
	struct str d = STR_INIT;
	smtp_reply_summary(reply, &d);
	char buf[12];
	enum smtpc_result res = reply->code < 300 ? SMTPC_R_OK
				: reply->code < 500 ? SMTPC_R_TEMP
						     : SMTPC_R_PERM;
	set_result(c, i, res, d.s, smtp_reply_status(reply, buf));
	str_free(&d);
}

/* Ends the session after a failure before the transaction. */
static enum smtpc_event session_fail(struct smtpc *c, const char *why, bool perm, bool quit)
{
	if (c->session_error == NULL)
		c->session_error = xstrdup(why);
	c->session_perm = perm;
	if (quit)
		str_appends(&c->out, "QUIT\r\n");
	c->state = S_DONE;
	return SMTPC_EV_DONE;
}

static enum smtpc_event session_fail_reply(struct smtpc *c, const char *stage,
					   const struct smtp_reply *r)
{
	struct str d = STR_INIT;
	str_printf(&d, "%s: ", stage);
	smtp_reply_summary(r, &d);
	enum smtpc_event ev = session_fail(c, d.s, r->code >= 500, true);
	str_free(&d);
	return ev;
}

static void send_ehlo(struct smtpc *c)
{
	str_printf(&c->out, "EHLO %s\r\n", c->p->helo_name);
	c->state = S_EHLO;
}

/* Received: header fields in the message's header section. */
static size_t count_hops(const char *d, size_t len)
{
	size_t hops = 0;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(d + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - d) + 1 : len;
		size_t ll = end - i;
		if (ll <= 2 && (d[i] == '\r' || d[i] == '\n'))
			break; /* the empty line ends the header */
		if (ll >= 9 && strncasecmp(d + i, "Received:", 9) == 0)
			hops++;
		i = end;
	}
	return hops;
}

static void parse_ehlo(struct smtpc *c, const struct smtp_reply *r)
{
	c->pipelining = c->dsn = c->smtputf8 = c->eightbit = c->chunking = c->starttls = false;
	c->size = false;
	c->size_limit = 0;
	const char *t = r->text.s;
	/* the first line is the greeting; keywords follow */
	const char *nl = strchr(t, '\n');
	while (nl != NULL && nl[1] != '\0') {
		const char *kw = nl + 1;
		nl = strchr(kw, '\n');
		size_t n = strcspn(kw, " \n");
#define KW(k) (n == sizeof(k) - 1 && strncasecmp(kw, k, n) == 0)
		if (KW("PIPELINING"))
			c->pipelining = true;
		else if (KW("DSN"))
			c->dsn = true;
		else if (KW("SMTPUTF8"))
			c->smtputf8 = true;
		else if (KW("8BITMIME"))
			c->eightbit = true;
		else if (KW("CHUNKING"))
			c->chunking = true;
		else if (KW("STARTTLS"))
			c->starttls = true;
		else if (KW("SIZE")) {
			c->size = true;
			uint64_t v = 0;
			const char *d = kw + n + 1;
			while (is_digit(*d) && v < UINT64_MAX / 10 - 10)
				v = v * 10 + (uint64_t)(*d++ - '0');
			c->size_limit = v;
		}
#undef KW
	}
	/* the server's name leads the first line: our own name means a loop */
	size_t nl0 = strcspn(t, " \n");
	c->loops = nl0 == strlen(c->p->helo_name) && strncasecmp(t, c->p->helo_name, nl0) == 0;
	c->ehlo_done = true;
}

static void send_cmd(struct smtpc *c, size_t idx)
{
	const struct smtpc_params *p = c->p;
	if (idx == 0) {
		str_printf(&c->out, "MAIL FROM:<%s>", p->mail_from);
		if (c->size)
			str_printf(&c->out, " SIZE=%zu", p->size);
		if (p->body_8bit && c->eightbit)
			str_appends(&c->out, " BODY=8BITMIME");
		if (p->smtputf8 && c->smtputf8)
			str_appends(&c->out, " SMTPUTF8");
		if (c->dsn) {
			if (p->ret == 1)
				str_appends(&c->out, " RET=FULL");
			else if (p->ret == 2)
				str_appends(&c->out, " RET=HDRS");
			if (p->envid != NULL && p->envid[0] != '\0') {
				str_appends(&c->out, " ENVID=");
				smtp_xtext_encode(&c->out, p->envid);
			}
		}
		str_appends(&c->out, "\r\n");
		return;
	}
	const struct smtpc_rcpt *r = &p->rcpts[idx - 1];
	str_printf(&c->out, "RCPT TO:<%s>", r->addr);
	if (c->dsn) {
		if (r->notify != 0) {
			static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
			str_appends(&c->out, " NOTIFY=");
			bool first = true;
			for (unsigned b = 0; b < 4; b++) {
				if (r->notify & (1u << b)) {
					if (!first)
						str_appendc(&c->out, ',');
					str_appends(&c->out, names[b]);
					first = false;
				}
			}
		}
		if (r->orcpt != NULL) {
			/* stored decoded as TYPE;ADDR: the address goes out as xtext */
			const char *semi = strchr(r->orcpt, ';');
			if (semi != NULL && semi != r->orcpt) {
				str_appends(&c->out, " ORCPT=");
				str_append(&c->out, r->orcpt, (size_t)(semi - r->orcpt + 1));
				smtp_xtext_encode(&c->out, semi + 1);
			}
		}
	}
	str_appends(&c->out, "\r\n");
}

/* Sends MAIL and the recipients: all at once with PIPELINING (RFC 2920 3.1
 * allows MAIL and RCPT to be grouped), else the next one. */
static void send_transaction(struct smtpc *c)
{
	size_t total = c->p->n_rcpts + 1;
	if (c->pipelining) {
		while (c->next_cmd < total)
			send_cmd(c, c->next_cmd++);
	} else if (c->next_cmd < total) {
		send_cmd(c, c->next_cmd++);
	}
}

static enum smtpc_event start_transaction(struct smtpc *c)
{
	const struct smtpc_params *p = c->p;
	if (c->loops) {
		/* RFC 5321 5.1: a server that is ourselves; Postfix says the same */
		for (size_t i = 0; i < p->n_rcpts; i++)
			set_result(c, i, SMTPC_R_PERM,
				   "554 5.4.6 mail for this destination loops back to myself", "5.4.6");
		str_appends(&c->out, "QUIT\r\n");
		c->state = S_DONE;
		return SMTPC_EV_DONE;
	}
	if (count_hops(p->data, p->size) > SMTPC_MAX_HOPS) {
		/* RFC 5321 6.3: a loop between other servers */
		for (size_t i = 0; i < p->n_rcpts; i++)
			set_result(c, i, SMTPC_R_PERM, "554 5.4.6 too many hops (Received: fields)",
				   "5.4.6");
		str_appends(&c->out, "QUIT\r\n");
		c->state = S_DONE;
		return SMTPC_EV_DONE;
	}
	if (p->tls_required && !c->tls_active)
		return session_fail(c, c->starttls ? "TLS required: STARTTLS failed"
						   : "TLS required but STARTTLS not offered",
				    false, true);
	if (p->smtputf8 && !c->smtputf8) {
		/* RFC 6531 3.4: no downgrade; a permanent failure */
		for (size_t i = 0; i < p->n_rcpts; i++)
			set_result(c, i, SMTPC_R_PERM,
				   "553 5.6.7 the server does not support SMTPUTF8", "5.6.7");
		str_appends(&c->out, "QUIT\r\n");
		c->state = S_DONE;
		return SMTPC_EV_DONE;
	}
	if (c->size_limit > 0 && p->size > c->size_limit) {
		for (size_t i = 0; i < p->n_rcpts; i++)
			set_result(c, i, SMTPC_R_PERM,
				   "552 5.3.4 message larger than the server's SIZE limit", "5.3.4");
		str_appends(&c->out, "QUIT\r\n");
		c->state = S_DONE;
		return SMTPC_EV_DONE;
	}
	c->state = S_MAIL;
	c->next_cmd = 0;
	c->replies = 0;
	send_transaction(c);
	return SMTPC_EV_CONTINUE;
}

static enum smtpc_event after_ehlo(struct smtpc *c)
{
	if (c->starttls && c->p->starttls && !c->tls_active && !c->tls_tried) {
		c->tls_tried = true;
		str_appends(&c->out, "STARTTLS\r\n");
		c->state = S_STARTTLS;
		return SMTPC_EV_CONTINUE;
	}
	return start_transaction(c);
}

static void send_quit(struct smtpc *c)
{
	str_appends(&c->out, "QUIT\r\n");
	c->state = S_DONE;
}

static enum smtpc_event on_reply(struct smtpc *c, const struct smtp_reply *r)
{
	unsigned cls = r->code / 100;
	switch (c->state) {
	case S_GREETING:
		if (cls != 2)
			return session_fail_reply(c, "greeting", r);
		send_ehlo(c);
		return SMTPC_EV_CONTINUE;
	case S_EHLO:
		if (cls == 2) {
			parse_ehlo(c, r);
			return after_ehlo(c);
		}
		if (cls == 5 && !c->tls_active && !c->p->tls_required) {
			str_printf(&c->out, "HELO %s\r\n", c->p->helo_name);
			c->state = S_HELO;
			return SMTPC_EV_CONTINUE;
		}
		return session_fail_reply(c, "EHLO", r);
	case S_HELO:
		if (cls != 2)
			return session_fail_reply(c, "HELO", r);
		return start_transaction(c);
	case S_STARTTLS:
		if (r->code == 220) {
			c->state = S_TLS;
			return SMTPC_EV_STARTTLS;
		}
		if (c->p->tls_required)
			return session_fail_reply(c, "STARTTLS", r);
		/* refused: the session goes on in clear (RFC 3207 4) */
		return start_transaction(c);
	case S_MAIL: {
		size_t idx = c->replies++;
		if (idx == 0) {
			if (cls != 2) {
				c->mail_failed = true;
				for (size_t i = 0; i < c->p->n_rcpts; i++)
					set_result_reply(c, i, r);
			}
		} else if (!c->mail_failed) {
			if (cls == 2) {
				c->accepted++;
				c->res[idx - 1].accepted = true;
			} else {
				set_result_reply(c, idx - 1, r);
			}
		}
		size_t total = c->p->n_rcpts + 1;
		if (c->mail_failed && !c->pipelining) {
			send_quit(c);
			return SMTPC_EV_DONE;
		}
		if (c->replies < c->next_cmd)
			return SMTPC_EV_CONTINUE; /* more pipelined replies to come */
		if (c->next_cmd < total) {
			send_transaction(c);
			return SMTPC_EV_CONTINUE;
		}
		if (c->mail_failed || c->accepted == 0) {
			send_quit(c);
			return SMTPC_EV_DONE;
		}
		if (c->chunking) {
			/* one chunk: the message is in memory already */
			c->use_bdat = true;
			str_printf(&c->out, "BDAT %zu LAST\r\n", c->p->size);
			c->state = S_BODY;
			c->data_sent = true;
		} else {
			str_appends(&c->out, "DATA\r\n");
			c->state = S_DATA;
		}
		return SMTPC_EV_CONTINUE;
	}
	case S_DATA:
		if (r->code != 354) {
			for (size_t i = 0; i < c->p->n_rcpts; i++) {
				if (!c->res[i].accepted)
					continue;
				if (cls >= 4)
					set_result_reply(c, i, r);
				else
					set_result(c, i, SMTPC_R_TEMP,
						   "451 4.5.0 unexpected reply to DATA", "4.5.0");
			}
			send_quit(c);
			return SMTPC_EV_DONE;
		}
		c->state = S_BODY;
		c->data_sent = true;
		return SMTPC_EV_CONTINUE;
	case S_BODY:
		/* the final reply, for every accepted recipient */
		for (size_t i = 0; i < c->p->n_rcpts; i++)
			if (c->res[i].accepted)
				set_result_reply(c, i, r);
		send_quit(c);
		return SMTPC_EV_DONE;
	case S_TLS:
	case S_DONE:
		break;
	}
	return session_fail(c, "unexpected reply", false, true);
}

enum smtpc_event smtpc_feed(struct smtpc *c, const void *data, size_t len, size_t *consumed_r)
{
	const char *p = data;
	size_t i = 0;
	enum smtpc_event ev = SMTPC_EV_CONTINUE;
	while (i < len && c->state != S_DONE && c->state != S_TLS) {
		/* a reply during S_BODY before the message is all out can only
		 * be an error; it ends the transaction like a final reply */
		const char *nl = memchr(p + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (p + i)) + 1 : len - i;
		if (c->line.len + n > SMTPC_LINE_MAX + 2) {
			i += n;
			smtpc_abort(c, "protocol error: reply line too long");
			ev = SMTPC_EV_DONE;
			break;
		}
		str_append(&c->line, p + i, n);
		i += n;
		if (nl == NULL)
			break;
		size_t ll = c->line.len - 1;
		if (ll > 0 && c->line.s[ll - 1] == '\r')
			ll--;
		const char *why;
		int ret = smtp_reply_parse_line(&c->parser, c->line.s, ll, &why);
		str_truncate(&c->line, 0);
		if (ret < 0) {
			struct str e = STR_INIT;
			str_printf(&e, "protocol error: %s", why);
			smtpc_abort(c, e.s);
			str_free(&e);
			ev = SMTPC_EV_DONE;
			break;
		}
		if (ret == 1) {
			ev = on_reply(c, &c->parser.reply);
			if (ev != SMTPC_EV_CONTINUE)
				break;
		}
	}
	*consumed_r = i;
	if (c->state == S_DONE)
		ev = SMTPC_EV_DONE;
	return ev;
}

bool smtpc_produce(struct smtpc *c, size_t room)
{
	if (c->state != S_BODY || c->body_tail_sent)
		return false;
	const unsigned char *d = c->p->data;
	size_t size = c->p->size;
	if (c->use_bdat) {
		size_t n = size - c->body_off;
		if (n > room)
			n = room;
		str_append(&c->out, d + c->body_off, n);
		c->body_off += n;
		if (c->body_off == size)
			c->body_tail_sent = true;
		return !c->body_tail_sent;
	}
	/* DATA: dot-stuffing (RFC 5321 4.5.2) line by line */
	size_t added = 0;
	while (c->body_off < size && added < room) {
		if (c->at_bol && d[c->body_off] == '.') {
			str_appendc(&c->out, '.');
			added++;
		}
		const unsigned char *nl = memchr(d + c->body_off, '\n', size - c->body_off);
		size_t end = nl ? (size_t)(nl - d) + 1 : size;
		if (end - c->body_off > 65536)
			end = c->body_off + 65536; /* a long line goes out in pieces */
		str_append(&c->out, d + c->body_off, end - c->body_off);
		added += end - c->body_off;
		c->at_bol = d[end - 1] == '\n';
		c->body_off = end;
	}
	if (c->body_off == size) {
		if (size > 0 && !(size >= 2 && d[size - 2] == '\r' && d[size - 1] == '\n'))
			str_appends(&c->out, "\r\n");
		str_appends(&c->out, ".\r\n");
		c->body_tail_sent = true;
	}
	return !c->body_tail_sent;
}

enum smtpc_event smtpc_tls_ready(struct smtpc *c, bool verified)
{
	c->tls_active = true;
	c->ehlo_done = false;
	if (c->p->tls_verify && !verified)
		return session_fail(c, "TLS required: the server certificate did not verify",
				    false, true);
	send_ehlo(c);
	return SMTPC_EV_CONTINUE;
}

void smtpc_abort(struct smtpc *c, const char *reason)
{
	bool started = c->state == S_MAIL || c->state == S_DATA || c->state == S_BODY ||
		       (c->state == S_DONE && c->session_error == NULL);
	if (!started) {
		if (c->session_error == NULL)
			c->session_error = xstrdup(reason);
		c->state = S_DONE;
		return;
	}
	struct str d = STR_INIT;
	str_appends(&d, "451 4.4.2 ");
	str_append_sanitized(&d, reason, strlen(reason), SMTPC_DIAG_MAX - 10);
	for (size_t i = 0; i < c->p->n_rcpts; i++)
		if (c->res[i].result == SMTPC_R_NONE)
			set_result(c, i, SMTPC_R_TEMP, d.s, "4.4.2");
	str_free(&d);
	c->state = S_DONE;
}
