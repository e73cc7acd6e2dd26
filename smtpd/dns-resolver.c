/* Asynchronous DNS through libunbound; see dns-resolver.h. */
#include "config.h"
#include "dns-resolver.h"
#include "str.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#define TYPE_A 1
#define TYPE_TXT 16
#define TYPE_MX 15
#define TYPE_AAAA 28
#define TYPE_TLSA 52

struct dnsr_query {
	struct dnsr *r;
	int id;              /* ours, for cancel */
	int ub_ids[2];
	bool pending[2];
	dnsr_mx_fn *mx_cb;
	dnsr_addr_fn *addr_cb;
	dnsr_txt_fn *txt_cb;
	dnsr_tlsa_fn *tlsa_cb;
	bool secure[2];
	void *ctx;
	unsigned port;
	/* address lookups: both answers gathered */
	struct net_addr *addrs;
	size_t n_addrs[2];
	struct net_addr *by_type[2];
	enum dnsr_status st[2];
	char error[128];
	struct dnsr_query *next;
};

struct dnsr {
	struct ub_ctx *ub;
	int next_id;
	struct dnsr_query *queries;
};

int dnsr_new(const char *server, const char *trust_anchor, struct dnsr **rp, char **error_r)
{
	struct ub_ctx *ub = ub_ctx_create();
	if (ub == NULL) {
		*error_r = xstrdup("libunbound: cannot create a context");
		return -1;
	}
	int err;
	if (server != NULL && *server != '\0') {
		/* IP[:PORT] or [IPV6]:PORT -> unbound's IP@PORT */
		char host[64];
		const char *port = NULL;
		size_t hl;
		if (server[0] == '[') {
			const char *close = strchr(server, ']');
			hl = close ? (size_t)(close - server - 1) : sizeof(host);
			if (close != NULL && close[1] == ':')
				port = close + 2;
			server++;
		} else {
			const char *colon = strchr(server, ':');
			if (colon != NULL && strchr(colon + 1, ':') == NULL) {
				hl = (size_t)(colon - server);
				port = colon + 1;
			} else {
				hl = strlen(server);
			}
		}
		struct net_addr tmp;
		char spec[96];
		if (hl >= sizeof(host)) {
			ub_ctx_delete(ub);
			*error_r = xstrdup("global.dns_server: expected IP[:PORT]");
			return -1;
		}
		memcpy(host, server, hl);
		host[hl] = '\0';
		if (net_addr_parse(host, &tmp) < 0) {
			ub_ctx_delete(ub);
			*error_r = xstrdup("global.dns_server: expected an IP address[:PORT]");
			return -1;
		}
		snprintf(spec, sizeof(spec), "%s@%s", host, port ? port : "53");
		err = ub_ctx_set_fwd(ub, spec);
	} else {
		err = ub_ctx_resolvconf(ub, NULL);
	}
	if (err == 0 && trust_anchor != NULL && *trust_anchor != '\0' &&
	    (err = ub_ctx_add_ta_file(ub, trust_anchor)) != 0) {
		struct str e = STR_INIT;
		str_printf(&e, "smtpd.dnssec_trust_anchor: %s: %s", trust_anchor, ub_strerror(err));
		*error_r = str_steal(&e);
		ub_ctx_delete(ub);
		return -1;
	}
	if (err == 0)
		err = ub_ctx_async(ub, 1);
	if (err != 0) {
		struct str e = STR_INIT;
		str_printf(&e, "global.dns_server: %s", ub_strerror(err));
		*error_r = str_steal(&e);
		ub_ctx_delete(ub);
		return -1;
	}
	struct dnsr *r = xcalloc(1, sizeof(*r));
	r->ub = ub;
	*rp = r;
	return 0;
}

static void query_unlink(struct dnsr_query *q)
{
	for (struct dnsr_query **pp = &q->r->queries; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	free(q->by_type[0]);
	free(q->by_type[1]);
	free(q->addrs);
	free(q);
}

void dnsr_free(struct dnsr **rp)
{
	struct dnsr *r = *rp;
	if (r == NULL)
		return;
	while (r->queries != NULL) {
		struct dnsr_query *q = r->queries;
		for (int i = 0; i < 2; i++)
			if (q->pending[i])
				ub_cancel(r->ub, q->ub_ids[i]);
		query_unlink(q);
	}
	ub_ctx_delete(r->ub);
	free(r);
	*rp = NULL;
}

int dnsr_fd(struct dnsr *r)
{
	return ub_fd(r->ub);
}

void dnsr_process(struct dnsr *r)
{
	ub_process(r->ub);
}

int dnsr_name_from_wire(const unsigned char *d, size_t len, char *out, size_t out_size,
			size_t *used_r)
{
	size_t i = 0, o = 0;
	while (i < len) {
		unsigned l = d[i++];
		if (l == 0) {
			out[o] = '\0';
			*used_r = i;
			return 0;
		}
		if (l > 63 || i + l > len || o + l + 2 > out_size)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (unsigned k = 0; k < l; k++) {
			unsigned char ch = d[i + k];
			/* host names only: anything else makes the record unusable */
			if (ch <= 0x20 || ch >= 0x7f)
				return -1;
			out[o++] = (char)ch;
		}
		i += l;
	}
	return -1;
}

static enum dnsr_status result_status(int err, const struct ub_result *res, char *error,
				      size_t esize)
{
	if (err != 0) {
		snprintf(error, esize, "%s", ub_strerror(err));
		return DNSR_TEMPFAIL;
	}
	if (res->bogus) {
		snprintf(error, esize, "DNSSEC validation failed");
		return DNSR_TEMPFAIL;
	}
	if (res->havedata)
		return DNSR_OK;
	if (res->nxdomain)
		return DNSR_NXDOMAIN;
	if (res->rcode != 0) {
		snprintf(error, esize, "DNS rcode %d", res->rcode);
		return DNSR_TEMPFAIL;
	}
	return DNSR_NODATA;
}

static void mx_done(void *data, int err, struct ub_result *res)
{
	struct dnsr_query *q = data;
	q->pending[0] = false;
	enum dnsr_status st = result_status(err, res, q->error, sizeof(q->error));
	bool secure = err == 0 && res->secure;
	struct dnsr_mx *mx = NULL;
	size_t n = 0;
	if (st == DNSR_OK) {
		for (size_t i = 0; res->data[i] != NULL; i++) {
			const unsigned char *d = (const unsigned char *)res->data[i];
			size_t len = (size_t)res->len[i], used;
			if (len < 3)
				continue;
			struct dnsr_mx m;
			m.pref = (unsigned)(d[0] << 8 | d[1]);
			if (dnsr_name_from_wire(d + 2, len - 2, m.host, sizeof(m.host), &used) < 0)
				continue;
			/* insertion keeps equal preferences in answer order */
			mx = xreallocarray(mx, n + 1, sizeof(*mx));
			size_t k = n;
			while (k > 0 && mx[k - 1].pref > m.pref) {
				mx[k] = mx[k - 1];
				k--;
			}
			mx[k] = m;
			n++;
		}
		if (n == 0) {
			st = DNSR_TEMPFAIL;
			snprintf(q->error, sizeof(q->error), "malformed MX records");
		}
	}
	if (res != NULL)
		ub_resolve_free(res);
	char error[128];
	snprintf(error, sizeof(error), "%s", q->error);
	dnsr_mx_fn *cb = q->mx_cb;
	void *ctx = q->ctx;
	query_unlink(q);
	cb(ctx, st, mx, n, secure, error);
	free(mx);
}

int dnsr_txt_from_rdata(const unsigned char *d, size_t len, struct str *out)
{
	for (size_t k = 0; k < len;) {
		size_t l = d[k++];
		if (l > len - k || memchr(d + k, 0, l) != NULL)
			return -1;
		str_append(out, d + k, l);
		k += l;
	}
	return 0;
}

static void txt_done(void *data, int err, struct ub_result *res)
{
	struct dnsr_query *q = data;
	q->pending[0] = false;
	enum dnsr_status st = result_status(err, res, q->error, sizeof(q->error));
	char **txts = NULL;
	size_t n = 0;
	if (st == DNSR_OK) {
		for (size_t i = 0; res->data[i] != NULL; i++) {
			struct str t = STR_INIT;
			if (dnsr_txt_from_rdata((const unsigned char *)res->data[i],
						(size_t)res->len[i], &t) < 0) {
				str_free(&t);
				continue;
			}
			txts = xreallocarray(txts, n + 1, sizeof(*txts));
			txts[n++] = t.s ? str_steal(&t) : xstrdup("");
		}
	}
	if (res != NULL)
		ub_resolve_free(res);
	char error[128];
	snprintf(error, sizeof(error), "%s", q->error);
	dnsr_txt_fn *cb = q->txt_cb;
	void *ctx = q->ctx;
	query_unlink(q);
	cb(ctx, st, txts, n, error);
	for (size_t i = 0; i < n; i++)
		free(txts[i]);
	free(txts);
}

static void addr_done(struct dnsr_query *q, int which, int err, struct ub_result *res)
{
	q->pending[which] = false;
	q->st[which] = result_status(err, res, q->error, sizeof(q->error));
	q->secure[which] = err == 0 && res->secure;
	if (q->st[which] == DNSR_OK) {
		for (size_t i = 0; res->data[i] != NULL; i++) {
			struct net_addr a;
			memset(&a, 0, sizeof(a));
			if (which == 0 && res->len[i] == 4) {
				struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
				sin->sin_family = AF_INET;
				sin->sin_port = htons((uint16_t)q->port);
				memcpy(&sin->sin_addr, res->data[i], 4);
				a.len = sizeof(*sin);
			} else if (which == 1 && res->len[i] == 16) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
				sin6->sin6_family = AF_INET6;
				sin6->sin6_port = htons((uint16_t)q->port);
				memcpy(&sin6->sin6_addr, res->data[i], 16);
				a.len = sizeof(*sin6);
			} else {
				continue;
			}
			q->by_type[which] = xreallocarray(q->by_type[which], q->n_addrs[which] + 1,
							  sizeof(a));
			q->by_type[which][q->n_addrs[which]++] = a;
		}
	}
	if (res != NULL)
		ub_resolve_free(res);
	if (q->pending[0] || q->pending[1])
		return;
	size_t n = q->n_addrs[0] + q->n_addrs[1];
	enum dnsr_status st;
	if (n > 0)
		st = DNSR_OK;
	else if (q->st[0] == DNSR_TEMPFAIL || q->st[1] == DNSR_TEMPFAIL)
		st = DNSR_TEMPFAIL;
	else if (q->st[0] == DNSR_NXDOMAIN)
		st = DNSR_NXDOMAIN;
	else
		st = DNSR_NODATA;
	struct net_addr *all = xcalloc(n ? n : 1, sizeof(*all));
	if (q->n_addrs[0] > 0)
		memcpy(all, q->by_type[0], q->n_addrs[0] * sizeof(*all));
	if (q->n_addrs[1] > 0)
		memcpy(all + q->n_addrs[0], q->by_type[1], q->n_addrs[1] * sizeof(*all));
	char error[128];
	snprintf(error, sizeof(error), "%s", q->error);
	bool q_secure = q->secure[0] && q->secure[1];
	dnsr_addr_fn *cb = q->addr_cb;
	void *ctx = q->ctx;
	query_unlink(q);
	cb(ctx, st, all, n, q_secure, error);
	free(all);
}

static void a_done(void *data, int err, struct ub_result *res)
{
	addr_done(data, 0, err, res);
}

static void aaaa_done(void *data, int err, struct ub_result *res)
{
	addr_done(data, 1, err, res);
}

static struct dnsr_query *query_new(struct dnsr *r, void *ctx)
{
	struct dnsr_query *q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->ctx = ctx;
	q->id = ++r->next_id;
	if (r->next_id == 0x7fffffff)
		r->next_id = 0;
	q->next = r->queries;
	r->queries = q;
	return q;
}

int dnsr_lookup_mx(struct dnsr *r, const char *domain, dnsr_mx_fn *cb, void *ctx,
		   const char **error_r)
{
	struct dnsr_query *q = query_new(r, ctx);
	q->mx_cb = cb;
	q->pending[0] = true;
	int err = ub_resolve_async(r->ub, domain, TYPE_MX, 1, q, mx_done, &q->ub_ids[0]);
	if (err != 0) {
		*error_r = ub_strerror(err);
		query_unlink(q);
		return -1;
	}
	return q->id;
}

static void tlsa_done(void *data, int err, struct ub_result *res)
{
	struct dnsr_query *q = data;
	q->pending[0] = false;
	enum dnsr_status st = result_status(err, res, q->error, sizeof(q->error));
	bool secure = err == 0 && res->secure;
	struct dane_tlsa *recs = NULL;
	size_t n = 0;
	if (st == DNSR_OK) {
		for (size_t i = 0; res->data[i] != NULL; i++) {
			recs = xreallocarray(recs, n + 1, sizeof(*recs));
			if (dane_parse_rdata((const uint8_t *)res->data[i], (size_t)res->len[i],
					     &recs[n]) == 0)
				n++;
		}
	}
	if (res != NULL)
		ub_resolve_free(res);
	char error[128];
	snprintf(error, sizeof(error), "%s", q->error);
	dnsr_tlsa_fn *cb = q->tlsa_cb;
	void *ctx = q->ctx;
	query_unlink(q);
	cb(ctx, st, recs, n, secure, error);
	free(recs);
}

int dnsr_lookup_tlsa(struct dnsr *r, const char *name, dnsr_tlsa_fn *cb, void *ctx,
		     const char **error_r)
{
	struct dnsr_query *q = query_new(r, ctx);
	q->tlsa_cb = cb;
	q->pending[0] = true;
	int err = ub_resolve_async(r->ub, name, TYPE_TLSA, 1, q, tlsa_done, &q->ub_ids[0]);
	if (err != 0) {
		*error_r = ub_strerror(err);
		query_unlink(q);
		return -1;
	}
	return q->id;
}

int dnsr_lookup_txt(struct dnsr *r, const char *name, dnsr_txt_fn *cb, void *ctx,
		    const char **error_r)
{
	struct dnsr_query *q = query_new(r, ctx);
	q->txt_cb = cb;
	q->pending[0] = true;
	int err = ub_resolve_async(r->ub, name, TYPE_TXT, 1, q, txt_done, &q->ub_ids[0]);
	if (err != 0) {
		*error_r = ub_strerror(err);
		query_unlink(q);
		return -1;
	}
	return q->id;
}

int dnsr_lookup_addr(struct dnsr *r, const char *host, unsigned port, dnsr_addr_fn *cb, void *ctx,
		     const char **error_r)
{
	struct dnsr_query *q = query_new(r, ctx);
	q->addr_cb = cb;
	q->port = port;
	int id = q->id;
	q->pending[0] = q->pending[1] = true;
	int err = ub_resolve_async(r->ub, host, TYPE_A, 1, q, a_done, &q->ub_ids[0]);
	if (err != 0) {
		*error_r = ub_strerror(err);
		query_unlink(q);
		return -1;
	}
	err = ub_resolve_async(r->ub, host, TYPE_AAAA, 1, q, aaaa_done, &q->ub_ids[1]);
	if (err != 0) {
		/* the A answer alone decides */
		q->pending[1] = false;
		q->st[1] = DNSR_NODATA;
		q->secure[1] = true;
	}
	return id;
}

void dnsr_cancel(struct dnsr *r, int id)
{
	for (struct dnsr_query *q = r->queries; q != NULL; q = q->next) {
		if (q->id != id)
			continue;
		for (int i = 0; i < 2; i++)
			if (q->pending[i])
				ub_cancel(r->ub, q->ub_ids[i]);
		query_unlink(q);
		return;
	}
}
