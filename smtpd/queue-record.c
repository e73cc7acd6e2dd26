/* The outbound queue record; see queue-record.h. */
#include "config.h"
#include "queue-record.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "congvu-queue 1"

static void put_escaped(struct str *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x21 || *p == 0x7f || *p == '%')
			str_printf(out, "%%%02X", *p);
		else
			str_appendc(out, (char)*p);
	}
}

/* An optional token: "-" when absent. */
static void put_token(struct str *out, const char *s)
{
	if (s == NULL)
		str_appendc(out, '-');
	else if (strcmp(s, "-") == 0)
		str_appends(out, "%2D");
	else
		put_escaped(out, s);
}

static void put_field(struct str *out, const char *key, const char *value)
{
	if (value == NULL)
		return;
	str_appends(out, key);
	str_appendc(out, ' ');
	put_escaped(out, value);
	str_appendc(out, '\n');
}

void queue_record_encode(const struct queue_record *r, struct str *out)
{
	str_appends(out, MAGIC "\n");
	put_field(out, "from", r->from ? r->from : "");
	put_field(out, "envid", r->envid);
	if (r->ret == 1)
		str_appends(out, "ret FULL\n");
	else if (r->ret == 2)
		str_appends(out, "ret HDRS\n");
	str_printf(out, "body %s\n", r->body == 1 ? "8BITMIME" : "7BIT");
	str_printf(out, "smtputf8 %d\n", r->smtputf8 ? 1 : 0);
	put_field(out, "auth", r->auth);
	put_field(out, "client", r->client);
	str_printf(out, "created %" PRId64 "\nnext %" PRId64 "\nattempts %" PRIu32 "\n", r->created,
		   r->next_attempt, r->attempts);
	put_field(out, "error", r->last_error);
	if (r->warned)
		str_appends(out, "warned 1\n");
	static const char *const st[] = { "pending", "sent", "failed" };
	for (size_t i = 0; i < r->n_rcpts; i++) {
		const struct queue_rcpt *q = &r->rcpts[i];
		str_appends(out, "rcpt ");
		put_escaped(out, q->addr);
		str_printf(out, " %u ", q->notify);
		if (q->orcpt != NULL && q->orcpt[0] != '\0')
			put_escaped(out, q->orcpt);
		else
			str_appendc(out, '-');
		str_printf(out, " %s\n", st[q->status]);
		if (q->dsn_status != NULL || q->mta != NULL || q->diag != NULL || q->reported) {
			str_printf(out, "rinfo %zu %d ", i, q->reported ? 1 : 0);
			put_token(out, q->dsn_status);
			str_appendc(out, ' ');
			put_token(out, q->mta);
			str_appendc(out, ' ');
			put_token(out, q->diag);
			str_appendc(out, '\n');
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes a %XX-escaped token of length len; NULL when malformed. */
static char *unescape(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			out[n++] = s[i];
			continue;
		}
		if (i + 2 >= len) {
			free(out);
			return NULL;
		}
		int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[n++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[n] = '\0';
	return out;
}

static int parse_i64(const char *s, size_t len, int64_t *v_r)
{
	if (len == 0 || len > 18)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*v_r = v;
	return 0;
}

void queue_record_add_rcpt(struct queue_record *r, const char *addr, unsigned notify,
			   const char *orcpt)
{
	r->rcpts = xreallocarray(r->rcpts, r->n_rcpts + 1, sizeof(*r->rcpts));
	struct queue_rcpt *q = &r->rcpts[r->n_rcpts++];
	q->addr = xstrdup(addr);
	q->notify = notify;
	q->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	q->status = QRCPT_PENDING;
	q->dsn_status = q->mta = q->diag = NULL;
	q->reported = false;
}

/* Splits v at single spaces into exactly n fields; -1 when there are more
 * or fewer. */
static int split_fields(const char *v, size_t len, const char **f, size_t *fl, size_t n)
{
	size_t i = 0;
	const char *p = v, *end = v + len;
	while (p < end && i < n) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *e = sp ? sp : end;
		f[i] = p;
		fl[i] = (size_t)(e - p);
		i++;
		p = sp ? sp + 1 : end;
	}
	return i == n && p == end ? 0 : -1;
}

static int parse_rcpt(struct queue_record *r, const char *v, size_t len)
{
	const char *f[4];
	size_t fl[4];
	if (split_fields(v, len, f, fl, 4) < 0 || r->n_rcpts >= QUEUE_RECORD_MAX_RCPTS)
		return -1;
	int64_t notify;
	if (parse_i64(f[1], fl[1], &notify) < 0 || notify > 15)
		return -1;
	enum queue_rcpt_status st;
	if (fl[3] == 7 && memcmp(f[3], "pending", 7) == 0)
		st = QRCPT_PENDING;
	else if (fl[3] == 4 && memcmp(f[3], "sent", 4) == 0)
		st = QRCPT_SENT;
	else if (fl[3] == 6 && memcmp(f[3], "failed", 6) == 0)
		st = QRCPT_FAILED;
	else
		return -1;
	char *addr = unescape(f[0], fl[0]);
	char *orcpt = (fl[2] == 1 && f[2][0] == '-') ? NULL : unescape(f[2], fl[2]);
	if (addr == NULL || addr[0] == '\0' || (orcpt == NULL && !(fl[2] == 1 && f[2][0] == '-'))) {
		free(addr);
		free(orcpt);
		return -1;
	}
	queue_record_add_rcpt(r, addr, (unsigned)notify, orcpt);
	r->rcpts[r->n_rcpts - 1].status = st;
	free(addr);
	free(orcpt);
	return 0;
}

static int parse_rinfo(struct queue_record *r, const char *v, size_t len)
{
	const char *f[5];
	size_t fl[5];
	int64_t idx;
	if (split_fields(v, len, f, fl, 5) < 0 || parse_i64(f[0], fl[0], &idx) < 0 ||
	    (uint64_t)idx >= r->n_rcpts || fl[1] != 1 || (f[1][0] != '0' && f[1][0] != '1'))
		return -1;
	struct queue_rcpt *q = &r->rcpts[idx];
	char *tok[3] = { NULL, NULL, NULL };
	for (size_t i = 0; i < 3; i++) {
		if (fl[i + 2] == 1 && f[i + 2][0] == '-')
			continue;
		tok[i] = unescape(f[i + 2], fl[i + 2]);
		if (tok[i] == NULL) {
			free(tok[0]);
			free(tok[1]);
			return -1;
		}
	}
	free(q->dsn_status);
	free(q->mta);
	free(q->diag);
	q->dsn_status = tok[0];
	q->mta = tok[1];
	q->diag = tok[2];
	q->reported = f[1][0] == '1';
	return 0;
}

void queue_record_rcpt_info(struct queue_rcpt *q, const char *dsn_status, const char *mta,
			    const char *diag)
{
	free(q->dsn_status);
	free(q->mta);
	free(q->diag);
	q->dsn_status = dsn_status ? xstrdup(dsn_status) : NULL;
	q->mta = mta ? xstrdup(mta) : NULL;
	q->diag = diag ? xstrdup(diag) : NULL;
}

static int set_str(char **dst, const char *v, size_t len)
{
	if (*dst != NULL)
		return -1; /* duplicate field */
	*dst = unescape(v, len);
	return *dst != NULL ? 0 : -1;
}

int queue_record_decode(const void *data, size_t len, struct queue_record *r,
			const char **error_r)
{
	memset(r, 0, sizeof(*r));
	const char *p = data, *end = p + len;
	size_t mlen = strlen(MAGIC);
	if (len < mlen + 1 || memcmp(p, MAGIC "\n", mlen + 1) != 0) {
		*error_r = "not a queue record";
		return -1;
	}
	p += mlen + 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			*error_r = "truncated queue record";
			goto fail;
		}
		const char *sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == NULL) {
			*error_r = "malformed queue record line";
			goto fail;
		}
		size_t klen = (size_t)(sp - p);
		const char *v = sp + 1;
		size_t vlen = (size_t)(nl - v);
		int ok = 0;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(p, k, klen) == 0)
		if (KEY("from")) {
			ok = set_str(&r->from, v, vlen);
		} else if (KEY("envid")) {
			ok = set_str(&r->envid, v, vlen);
		} else if (KEY("auth")) {
			ok = set_str(&r->auth, v, vlen);
		} else if (KEY("client")) {
			ok = set_str(&r->client, v, vlen);
		} else if (KEY("error")) {
			ok = set_str(&r->last_error, v, vlen);
		} else if (KEY("ret")) {
			if (vlen == 4 && memcmp(v, "FULL", 4) == 0)
				r->ret = 1;
			else if (vlen == 4 && memcmp(v, "HDRS", 4) == 0)
				r->ret = 2;
			else
				ok = -1;
		} else if (KEY("body")) {
			if (vlen == 8 && memcmp(v, "8BITMIME", 8) == 0)
				r->body = 1;
			else if (vlen == 4 && memcmp(v, "7BIT", 4) == 0)
				r->body = 0;
			else
				ok = -1;
		} else if (KEY("smtputf8")) {
			if (vlen == 1 && (v[0] == '0' || v[0] == '1'))
				r->smtputf8 = v[0] == '1';
			else
				ok = -1;
		} else if (KEY("created")) {
			ok = parse_i64(v, vlen, &r->created);
		} else if (KEY("next")) {
			ok = parse_i64(v, vlen, &r->next_attempt);
		} else if (KEY("attempts")) {
			int64_t a = 0;
			ok = parse_i64(v, vlen, &a);
			if (ok == 0 && a > UINT32_MAX)
				ok = -1;
			r->attempts = (uint32_t)a;
		} else if (KEY("rcpt")) {
			ok = parse_rcpt(r, v, vlen);
		} else if (KEY("rinfo")) {
			ok = parse_rinfo(r, v, vlen);
		} else if (KEY("warned")) {
			if (vlen == 1 && (v[0] == '0' || v[0] == '1'))
				r->warned = v[0] == '1';
			else
				ok = -1;
		}
#undef KEY
		if (ok < 0) {
			*error_r = "bad value in queue record";
			goto fail;
		}
		p = nl + 1;
	}
	if (r->from == NULL || r->n_rcpts == 0) {
		*error_r = "queue record without sender or recipients";
		goto fail;
	}
	return 0;
fail:
	queue_record_free(r);
	return -1;
}

void queue_record_free(struct queue_record *r)
{
	free(r->from);
	free(r->envid);
	free(r->auth);
	free(r->client);
	free(r->last_error);
	for (size_t i = 0; i < r->n_rcpts; i++) {
		free(r->rcpts[i].addr);
		free(r->rcpts[i].orcpt);
		free(r->rcpts[i].dsn_status);
		free(r->rcpts[i].mta);
		free(r->rcpts[i].diag);
	}
	free(r->rcpts);
	memset(r, 0, sizeof(*r));
}

const char *queue_record_status(const struct queue_record *r)
{
	size_t pending = 0, failed = 0;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		if (r->rcpts[i].status == QRCPT_PENDING)
			pending++;
		else if (r->rcpts[i].status == QRCPT_FAILED)
			failed++;
	}
	if (pending > 0)
		return r->attempts == 0 ? "queued" : "deferred";
	return failed > 0 ? "failed" : "done";
}
