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
#define TYPE_PTR 12
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
	dnsr_ptr_fn *ptr_cb;
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
		/* The configured server answers for the loopback addresses too
		 * (libunbound would answer "localhost" itself; a transparent zone
		 * of ours without data replaces its default one): see
		 * smtpd.reverse_dns. */
		if (err == 0)
			err = ub_ctx_set_option(ub, "local-zone:", "127.in-addr.arpa. transparent");
		if (err == 0)
			err = ub_ctx_set_option(ub, "local-zone:",
						"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
						"0.0.0.0.ip6.arpa. transparent");
	} else {
		err = ub_ctx_resolvconf(ub, NULL);
	}
	/* Reverse look-ups of private addresses (RFC 1918, RFC 4193...) go to
	 * the server, which may know the site's own zones, instead of an
	 * NXDOMAIN made up by libunbound. */
	if (err == 0)
		err = ub_ctx_set_option(ub, "unblock-lan-zones:", "yes");
	if (err == 0)
		err = ub_ctx_set_option(ub, "insecure-lan-zones:", "yes");
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

int dnsr_ptr_name(const struct net_addr *addr, char *out, size_t out_size)
{
	const uint8_t *b;
	bool v4;
	if (addr->ss.ss_family == AF_INET) {
		b = (const uint8_t *)&((const struct sockaddr_in *)&addr->ss)->sin_addr;
		v4 = true;
	} else if (addr->ss.ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
		v4 = IN6_IS_ADDR_V4MAPPED(a6);
		b = v4 ? a6->s6_addr + 12 : a6->s6_addr;
	} else {
		return -1;
	}
	int n;
	if (v4) {
		n = snprintf(out, out_size, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
	} else {
		static const char hex[] = "0123456789abcdef";
		if (out_size < DNSR_PTR_NAME_MAX)
			return -1;
		char *o = out;
		for (int i = 15; i >= 0; i--) {
			*o++ = hex[b[i] & 0x0f];
			*o++ = '.';
			*o++ = hex[b[i] >> 4];
			*o++ = '.';
		}
		n = (int)(o - out) + snprintf(o, out_size - (size_t)(o - out), "ip6.arpa");
	}
	return n > 0 && (size_t)n < out_size ? 0 : -1;
}

bool dnsr_hostname_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 253)
		return false;
	size_t label = 0;
	bool digits_only = true; /* of the last label */
	for (size_t i = 0; i <= len; i++) {
		char ch = name[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			if (ch == '\0')
				break;
			label = 0;
			digits_only = true;
			continue;
		}
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		bool digit = ch >= '0' && ch <= '9';
		if (!alpha && !digit && ch != '-')
			return false;
		if (label == 0 && ch == '-')
			return false;
		if (!digit)
			digits_only = false;
		label++;
	}
	/* no top-level domain is numeric: "192.0.2.1" is an address, not a name */
	return !digits_only;
}

/* The address bytes, a mapped IPv4 address unwrapped: 4, 16, or 0. */
static size_t addr_bytes(const struct net_addr *a, const uint8_t **b)
{
	if (a->ss.ss_family == AF_INET) {
		*b = (const uint8_t *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
		return 4;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			*b = a6->s6_addr + 12;
			return 4;
		}
		*b = a6->s6_addr;
		return 16;
	}
	return 0;
}

bool dnsr_addr_equal(const struct net_addr *a, const struct net_addr *b)
{
	const uint8_t *ba = NULL, *bb = NULL;
	size_t la = addr_bytes(a, &ba), lb = addr_bytes(b, &bb);
	return la != 0 && la == lb && memcmp(ba, bb, la) == 0;
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

static void ptr_done(void *data, int err, struct ub_result *res)
{
	struct dnsr_query *q = data;
	q->pending[0] = false;
	enum dnsr_status st = result_status(err, res, q->error, sizeof(q->error));
	char names[DNSR_PTR_MAX][256];
	const char *list[DNSR_PTR_MAX];
	size_t n = 0;
	if (st == DNSR_OK) {
		for (size_t i = 0; res->data[i] != NULL && n < DNSR_PTR_MAX; i++) {
			size_t used;
			if (dnsr_name_from_wire((const unsigned char *)res->data[i],
						(size_t)res->len[i], names[n], sizeof(names[n]),
						&used) < 0 ||
			    used != (size_t)res->len[i])
				continue;
			list[n] = names[n];
			n++;
		}
		if (n == 0) {
			st = DNSR_TEMPFAIL;
			snprintf(q->error, sizeof(q->error), "malformed PTR records");
		}
	}
	if (res != NULL)
		ub_resolve_free(res);
	char error[128];
	snprintf(error, sizeof(error), "%s", q->error);
	dnsr_ptr_fn *cb = q->ptr_cb;
	void *ctx = q->ctx;
	query_unlink(q);
	cb(ctx, st, list, n, error);
}

int dnsr_lookup_ptr(struct dnsr *r, const struct net_addr *addr, dnsr_ptr_fn *cb, void *ctx,
		    const char **error_r)
{
	char name[DNSR_PTR_NAME_MAX];
	if (dnsr_ptr_name(addr, name, sizeof(name)) < 0) {
		*error_r = "not an IP address";
		return -1;
	}
	struct dnsr_query *q = query_new(r, ctx);
	q->ptr_cb = cb;
	q->pending[0] = true;
	int err = ub_resolve_async(r->ub, name, TYPE_PTR, 1, q, ptr_done, &q->ub_ids[0]);
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

/* want[0]: A, want[1]: AAAA; a type not wanted counts as answered with no data. */
static int lookup_addr(struct dnsr *r, const char *host, unsigned port, const bool want[2],
		       dnsr_addr_fn *cb, void *ctx, const char **error_r)
{
	struct dnsr_query *q = query_new(r, ctx);
	q->addr_cb = cb;
	q->port = port;
	int id = q->id;
	static ub_callback_type const done[2] = { a_done, aaaa_done };
	static const int types[2] = { TYPE_A, TYPE_AAAA };
	for (int i = 0; i < 2; i++) {
		q->pending[i] = want[i];
		if (!want[i]) {
			q->st[i] = DNSR_NODATA;
			q->secure[i] = true;
		}
	}
	bool started = false;
	for (int i = 0; i < 2; i++) {
		if (!want[i])
			continue;
		int err = ub_resolve_async(r->ub, host, types[i], 1, q, done[i], &q->ub_ids[i]);
		if (err == 0) {
			started = true;
			continue;
		}
		if (!started) {
			*error_r = ub_strerror(err);
			query_unlink(q);
			return -1;
		}
		/* the A answer alone decides */
		q->pending[i] = false;
		q->st[i] = DNSR_NODATA;
		q->secure[i] = true;
	}
	return id;
}

int dnsr_lookup_addr(struct dnsr *r, const char *host, unsigned port, dnsr_addr_fn *cb, void *ctx,
		     const char **error_r)
{
	static const bool both[2] = { true, true };
	return lookup_addr(r, host, port, both, cb, ctx, error_r);
}

int dnsr_lookup_addr_family(struct dnsr *r, const char *host, int family, dnsr_addr_fn *cb,
			    void *ctx, const char **error_r)
{
	const bool want[2] = { family != AF_INET6, family != AF_INET };
	return lookup_addr(r, host, 0, want, cb, ctx, error_r);
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
