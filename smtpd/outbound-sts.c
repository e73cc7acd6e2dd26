/* MTA-STS (RFC 8461) for the outbound process: the TXT record, the policy
 * fetched over verified HTTPS, kept in memory; see doc/outbound.md. */
#include "config.h"
#include "conn.h"
#include "ioloop.h"
#include "log.h"
#include "outbound-private.h"
#include "str.h"
#include "xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A destination domain's MTA-STS state (RFC 8461), kept in memory: the
 * policy until its max_age, the TXT id checked at most hourly. */
struct sts_entry {
	struct ob *ob;
	char *domain;
	bool fetching;
	bool have_policy;
	struct mta_sts_policy policy;
	char id[33];
	int64_t expires;          /* of the policy */
	int64_t checked;          /* when the TXT record was last looked at (0: never) */
	struct ob_job *waiting;   /* jobs waiting for the answer */
	/* the fetch in progress */
	char *host;               /* mta-sts.DOMAIN */
	char new_id[33];
	int dns_id;
	int fd;
	struct io *cio;
	struct conn *conn;
	struct timeout *to;
	struct str resp;
	struct sts_entry *next;
};

#define STS_RECHECK_SECS 3600      /* TXT id looked at again after this */
#define STS_NEGATIVE_SECS 3600     /* "no policy" remembered this long */
#define STS_FETCH_TIMEOUT_MS 30000

static void sts_fetch_end(struct sts_entry *e)
{
	io_remove(&e->cio);
	timeout_remove(&e->to);
	if (e->fd >= 0) {
		close(e->fd);
		e->fd = -1;
	}
	conn_free(&e->conn);
	if (e->dns_id > 0)
		dnsr_cancel(e->ob->dns, e->dns_id);
	e->dns_id = 0;
	str_free(&e->resp);
	x_free(&e->host);
}

static void sts_apply(struct ob_job *job, const struct sts_entry *e)
{
	if (!e->have_policy || e->policy.mode == MTA_STS_NONE)
		return;
	mta_sts_policy_free(&job->sts);
	job->sts.mode = e->policy.mode;
	job->sts.max_age = e->policy.max_age;
	for (size_t i = 0; i < e->policy.n_mx; i++)
		job->sts.mx[i] = xstrdup(e->policy.mx[i]);
	job->sts.n_mx = e->policy.n_mx;
	if (e->policy.mode == MTA_STS_ENFORCE) {
		job->sts_enforce = true;
		if (job->level < TLS_POLICY_VERIFY) {
			job->level = TLS_POLICY_VERIFY;
			log_info("event=tls_policy queue_id=%" PRIu64 " domain=%s policy=verify "
				 "source=mta-sts id=%s", job->msg->id, job->domain, e->id);
		}
	} else {
		job->sts_testing = true;
	}
}

/* The answer is in (policy, none, or the old one kept): the waiting jobs go on. */
static void sts_done(struct sts_entry *e)
{
	sts_fetch_end(e);
	e->fetching = false;
	e->checked = outbound_now();
	struct ob_job *list = e->waiting;
	e->waiting = NULL;
	while (list != NULL) {
		struct ob_job *job = list;
		list = job->next_sts_wait;
		job->next_sts_wait = NULL;
		job->sts_wait = NULL;
		sts_apply(job, e);
		outbound_job_route_mx(job);
	}
}

static void sts_failed(struct sts_entry *e, const char *why)
{
	int64_t now = outbound_now();
	bool keep = e->have_policy && now < e->expires;
	log_info("event=mta_sts_failed domain=%s error=\"%s\" cached_policy=%s", e->domain, why,
		 keep ? "kept" : "none");
	if (!keep) {
		e->have_policy = false;
		mta_sts_policy_free(&e->policy);
		e->expires = now + STS_NEGATIVE_SECS;
	}
	sts_done(e);
}

static void sts_timeout(void *ctx)
{
	sts_failed(ctx, "policy fetch timed out");
}

/* One line per unexpired policy: DOMAIN ID EXPIRES MODE MAX_AGE MX...
 * (every field checked on reading), written to a new file then renamed. */
static void sts_save(struct ob *ob)
{
	struct str tmp = STR_INIT;
	str_printf(&tmp, "%s.tmp", ob->sts_cache_path);
	FILE *f = fopen(tmp.s, "w");
	if (f == NULL) {
		log_warn("event=mta_sts_cache_failed path=%s error=\"%s\"", tmp.s, strerror(errno));
		str_free(&tmp);
		return;
	}
	int64_t now = outbound_now();
	static const char *const modes[] = { "none", "testing", "enforce" };
	for (const struct sts_entry *e = ob->sts; e != NULL; e = e->next) {
		if (!e->have_policy || e->expires <= now)
			continue;
		fprintf(f, "%s %s %" PRId64 " %s %" PRIu32, e->domain, e->id, e->expires,
			modes[e->policy.mode], e->policy.max_age);
		for (size_t i = 0; i < e->policy.n_mx; i++)
			fprintf(f, " %s", e->policy.mx[i]);
		fputc('\n', f);
	}
	bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp.s, ob->sts_cache_path) < 0) {
		log_warn("event=mta_sts_cache_failed path=%s error=\"%s\"", ob->sts_cache_path,
			 strerror(errno));
		unlink(tmp.s);
	}
	str_free(&tmp);
}

void outbound_sts_load(struct ob *ob)
{
	FILE *f = fopen(ob->sts_cache_path, "r");
	if (f == NULL)
		return;
	char line[8192];
	int64_t now = outbound_now();
	size_t loaded = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL;
		char *domain = strtok_r(line, " \n", &save);
		char *id = strtok_r(NULL, " \n", &save);
		char *expires = strtok_r(NULL, " \n", &save);
		char *mode = strtok_r(NULL, " \n", &save);
		char *age = strtok_r(NULL, " \n", &save);
		if (domain == NULL || age == NULL || strlen(id) > 32 || strlen(domain) > 253)
			continue;
		int64_t exp = strtoll(expires, NULL, 10);
		if (exp <= now)
			continue;
		/* the policy goes through the same parser as a fetched one */
		struct str text = STR_INIT;
		str_printf(&text, "version: STSv1\nmode: %s\nmax_age: %s\n", mode, age);
		for (char *mx = strtok_r(NULL, " \n", &save); mx != NULL;
		     mx = strtok_r(NULL, " \n", &save))
			str_printf(&text, "mx: %s\n", mx);
		struct mta_sts_policy pol;
		const char *why;
		char idbuf[33];
		struct str txt = STR_INIT;
		str_printf(&txt, "v=STSv1; id=%s", id);
		if (mta_sts_parse_policy(text.s, text.len, &pol, &why) == 0 &&
		    mta_sts_parse_txt(txt.s, txt.len, idbuf) == 1) {
			struct sts_entry *e = xcalloc(1, sizeof(*e));
			e->ob = ob;
			e->fd = -1;
			e->domain = xstrdup(domain);
			e->have_policy = true;
			e->policy = pol;
			memcpy(e->id, idbuf, sizeof(e->id));
			e->expires = exp;
			e->next = ob->sts;
			ob->sts = e;
			loaded++;
		}
		str_free(&txt);
		str_free(&text);
	}
	fclose(f);
	log_info("event=mta_sts_cache_loaded policies=%zu", loaded);
}

static void sts_conn_cb(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct sts_entry *e = ctx;
	const char *why;
	switch (ev) {
	case CONN_EV_TLS_READY:
		/* RFC 8461 3.3: HTTPS with a certificate valid for mta-sts.DOMAIN */
		if (!conn_tls_verified(conn)) {
			sts_failed(e, "policy host certificate did not verify");
			return;
		}
		conn_printf(conn, "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: %s\r\n"
				  "User-Agent: congvu-smtpd\r\nConnection: close\r\n\r\n", e->host);
		return;
	case CONN_EV_DATA_IN:
	case CONN_EV_EOF: {
		const void *d;
		size_t len;
		conn_input(conn, &d, &len);
		if (e->resp.len + len > MTA_STS_POLICY_MAX + 16384) {
			sts_failed(e, "policy response too large");
			return;
		}
		str_append(&e->resp, d, len);
		conn_consume(conn, len);
		const char *body;
		size_t blen;
		int r = mta_sts_http_response(e->resp.s ? e->resp.s : "", e->resp.len,
					      ev == CONN_EV_EOF, &body, &blen, &why);
		if (r == 0)
			return;
		if (r < 0) {
			sts_failed(e, why);
			return;
		}
		struct mta_sts_policy pol;
		if (mta_sts_parse_policy(body, blen, &pol, &why) < 0) {
			sts_failed(e, why);
			return;
		}
		mta_sts_policy_free(&e->policy);
		e->policy = pol;
		e->have_policy = true;
		memcpy(e->id, e->new_id, sizeof(e->id));
		e->expires = outbound_now() + (int64_t)pol.max_age;
		sts_save(e->ob);
		static const char *const modes[] = { "none", "testing", "enforce" };
		log_info("event=mta_sts domain=%s id=%s mode=%s mx_patterns=%zu max_age=%" PRIu32,
			 e->domain, e->id, modes[pol.mode], pol.n_mx, pol.max_age);
		sts_done(e);
		return;
	}
	case CONN_EV_DRAINED:
		return;
	case CONN_EV_TIMEOUT:
	case CONN_EV_ERROR:
		sts_failed(e, ev == CONN_EV_TIMEOUT ? "timeout" : conn_error(conn));
		return;
	}
}

static void sts_connect_io(void *ctx, unsigned revents)
{
	struct sts_entry *e = ctx;
	(void)revents;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	io_remove(&e->cio);
	if (err != 0) {
		sts_failed(e, strerror(err));
		return;
	}
	e->conn = conn_new(e->ob->loop, e->fd, sts_conn_cb, e);
	e->fd = -1;
	const char *why;
	if (conn_starttls_client(e->conn, e->ob->cfg->tls_verify, e->host, &why) < 0)
		sts_failed(e, why);
}

static void sts_addr_cb(void *ctx, enum dnsr_status st, const struct net_addr *addrs, size_t n,
			bool secure, const char *error)
{
	(void)secure;
	struct sts_entry *e = ctx;
	e->dns_id = 0;
	if (st != DNSR_OK || n == 0) {
		sts_failed(e, st == DNSR_TEMPFAIL && *error ? error : "policy host has no address");
		return;
	}
	int fd = socket(addrs[0].ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sts_failed(e, strerror(errno));
		return;
	}
	e->fd = fd;
	if (connect(fd, (const struct sockaddr *)&addrs[0].ss, addrs[0].len) < 0 &&
	    errno != EINPROGRESS) {
		sts_failed(e, strerror(errno));
		return;
	}
	e->cio = io_add(e->ob->loop, fd, IO_WRITE, sts_connect_io, e);
}

static void sts_txt_cb(void *ctx, enum dnsr_status st, char *const *txts, size_t n,
		       const char *error)
{
	struct sts_entry *e = ctx;
	e->dns_id = 0;
	char id[33] = "";
	size_t found = 0;
	for (size_t i = 0; i < n; i++) {
		char tmp[33];
		int r = mta_sts_parse_txt(txts[i], strlen(txts[i]), tmp);
		if (r != 0)
			found++;
		if (r == 1)
			memcpy(id, tmp, sizeof(id));
	}
	int64_t now = outbound_now();
	if (st == DNSR_TEMPFAIL) {
		sts_failed(e, *error ? error : "TXT lookup failed");
		return;
	}
	if (found != 1 || id[0] == '\0') {
		/* no (valid, single) record: a cached policy stays until it expires
		 * (RFC 8461 5.1), else there is none */
		if (!(e->have_policy && now < e->expires)) {
			e->have_policy = false;
			mta_sts_policy_free(&e->policy);
		}
		sts_done(e);
		return;
	}
	if (e->have_policy && now < e->expires && strcmp(id, e->id) == 0) {
		sts_done(e); /* unchanged */
		return;
	}
	memcpy(e->new_id, id, sizeof(e->new_id));
	struct str h = STR_INIT;
	str_printf(&h, "mta-sts.%s", e->domain);
	e->host = str_steal(&h);
	const char *why;
	int qid = dnsr_lookup_addr(e->ob->dns, e->host, e->ob->cfg->mta_sts_port, sts_addr_cb, e,
				   &why);
	if (qid < 0) {
		sts_failed(e, why);
		return;
	}
	e->dns_id = qid;
}

void outbound_sts_get(struct ob_job *job)
{
	struct ob *ob = job->ob;
	struct sts_entry *e;
	for (e = ob->sts; e != NULL; e = e->next)
		if (strcmp(e->domain, job->domain) == 0)
			break;
	int64_t now = outbound_now();
	if (e != NULL && !e->fetching && e->checked != 0 && now - e->checked < STS_RECHECK_SECS &&
	    (!e->have_policy || now < e->expires)) {
		sts_apply(job, e);
		outbound_job_route_mx(job);
		return;
	}
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->ob = ob;
		e->fd = -1;
		e->domain = xstrdup(job->domain);
		e->next = ob->sts;
		ob->sts = e;
	}
	job->sts_wait = e;
	job->next_sts_wait = e->waiting;
	e->waiting = job;
	if (e->fetching)
		return;
	e->fetching = true;
	e->to = timeout_add(ob->loop, STS_FETCH_TIMEOUT_MS, sts_timeout, e);
	struct str name = STR_INIT;
	str_printf(&name, "_mta-sts.%s", e->domain);
	const char *why;
	int qid = dnsr_lookup_txt(ob->dns, name.s, sts_txt_cb, e, &why);
	str_free(&name);
	if (qid < 0) {
		sts_failed(e, why);
		return;
	}
	e->dns_id = qid;
}

void outbound_sts_job_gone(struct ob_job *job)
{
	if (job->sts_wait == NULL)
		return;
	for (struct ob_job **pp = &job->sts_wait->waiting; *pp; pp = &(*pp)->next_sts_wait) {
		if (*pp == job) {
			*pp = job->next_sts_wait;
			break;
		}
	}
	job->sts_wait = NULL;
}

void outbound_sts_free_all(struct ob *ob)
{
	while (ob->sts != NULL) {
		struct sts_entry *e = ob->sts;
		ob->sts = e->next;
		sts_fetch_end(e);
		mta_sts_policy_free(&e->policy);
		free(e->domain);
		free(e);
	}
}
