/* The outbound delivery process; see outbound.h and doc/outbound.md. The
 * MTA-STS lookups are in outbound-sts.c.
 *
 * Units of work: a message (queue entry) in flight has one job per
 * destination domain with pending recipients. A job resolves its route
 * (smart host, or MX then A/AAAA), connects to each address in turn until a
 * server takes the transaction, and ends with one store transaction that
 * records its recipients' results; the message's last job also ends the
 * attempt (retry time, expiry, DSNs, removal) in that same transaction. */
#include "config.h"
#include "reload.h"
#include "outbound.h"
#include "outbound-private.h"
#include "address.h"
#include "conn.h"
#include "dns-resolver.h"
#include "dproto.h"
#include "dsn.h"
#include "frame.h"
#include "ioloop.h"
#include "log.h"
#include "net.h"
#include "outbound-client.h"
#include "outbound-sched.h"
#include "queue-record.h"
#include "smtpd.h"
#include "store/store.h"
#include "str.h"
#include "tls-policy.h"
#include "tls.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUTPUT_HIGH_WATER (256 * 1024)
#define PRODUCE_CHUNK (64 * 1024)
#define SCAN_MAX_INTERVAL_MS 60000
#define SCAN_COALESCE_MS 100

static void job_try_addr(struct ob_job *job);
static void job_next_host(struct ob_job *job);
static void scan_soon(struct ob *ob, uint64_t ms);

int64_t outbound_now(void)
{
	return (int64_t)time(NULL);
}

void outbound_cfg_unref(struct ob_cfg **cp)
{
	struct ob_cfg *cfg = *cp;
	*cp = NULL;
	if (cfg == NULL || --cfg->refs > 0)
		return;
	tls_policy_free(&cfg->policy);
	tls_ctx_free(&cfg->tls_may);
	tls_ctx_free(&cfg->tls_verify);
	free(cfg->hostname);
	free(cfg->domains);
	free(cfg->relay_host);
	free(cfg);
}

/* ---- destinations and concurrency ---- */

static struct ob_dest *dest_get(struct ob *ob, const char *name)
{
	for (struct ob_dest *d = ob->dests; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	struct ob_dest *d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	d->next = ob->dests;
	ob->dests = d;
	return d;
}

static void dest_release(struct ob *ob, struct ob_dest *d)
{
	if (d->active > 0 || d->wait_head != NULL)
		return;
	for (struct ob_dest **pp = &ob->dests; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	free(d->name);
	free(d->down_error);
	free(d);
}

/* ---- ending a job: the store transaction ---- */

/* A finished job's results, waiting for the next batched commit: the jobs
 * that end in one loop iteration share one durable transaction. */
struct commit {
	struct ob_msg *msg;
	char *mta;                /* or NULL */
	struct outbound_result *res; /* strings owned */
	size_t n_res;
	bool finish;              /* the message's last job: end the attempt */
	int64_t now;
	/* outputs, reset at the start of each run (store_write may rerun) */
	bool found, removed;
	struct str log;
	struct commit *next;
};

static void notice_deliver(struct ob *ob, struct store_txn *txn, struct commit *cm,
			   const struct queue_record *r, const struct dsn_rcpt *rcpts, size_t n,
			   int64_t retry_until, const char **error_r, int *ret_r)
{
	const struct ob_msg *msg = cm->msg;
	struct dsn_params p = {
		.reporting_mta = ob->cfg->hostname, .sender = r->from, .envid = r->envid,
		.ret = r->ret, .arrival = r->created, .will_retry_until = retry_until,
		.now = cm->now, .queue_id = msg->id, .rcpts = rcpts, .n_rcpts = n,
		.message = msg->data, .message_len = msg->size,
	};
	struct str m = STR_INIT;
	dsn_build(&p, &m);
	static const char *const kinds[] = { "failed", "delayed", "delivered", "relayed" };
	const char *kind = kinds[rcpts[0].action];
	char norm[ADDRESS_MAX_LEN + 1];
	const char *why;
	bool local = address_normalize(r->from, norm, &why) == 0 &&
		     domain_is_local(address_domain(norm), ob->cfg->domains);
	bool queue_it = !local;
	if (local) {
		struct store_rcpt sr;
		memset(&sr, 0, sizeof(sr));
		sr.address = norm;
		struct store_delivery d = { .data = m.s,
					     .size = m.len,
					     .rcpts = &sr,
					     .n_rcpts = 1,
					     .unique = true }; /* its own Message-ID */
		if (store_txn_deliver(txn, &d, 1, error_r) < 0) {
			*ret_r = -1;
		} else if (sr.status == RCPT_OVER_QUOTA) {
			/* a full mailbox may empty: the notification waits in the
			 * queue, delivered locally when there is room */
			queue_it = true;
		} else if (sr.status != RCPT_OK) {
			str_printf(&cm->log,
				   "event=dsn_dropped queue_id=%" PRIu64 " kind=%s to=<%s> reason=%s\n",
				   msg->id, kind, norm,
				   sr.status == RCPT_NO_ACCOUNT ? "no_account" : "mailbox_refused");
		} else {
			str_printf(&cm->log,
				   "event=dsn queue_id=%" PRIu64 " kind=%s to=<%s> delivery=local"
				   " uid=%" PRIu32 "\n", msg->id, kind, norm, sr.uid);
		}
	}
	if (queue_it && *ret_r == 0) {
		struct queue_record b;
		memset(&b, 0, sizeof(b));
		b.from = xstrdup("");
		b.body = 1;
		b.smtputf8 = false;
		for (const char *s = r->from; *s; s++)
			if ((unsigned char)*s >= 0x80)
				b.smtputf8 = true;
		b.created = b.next_attempt = cm->now;
		queue_record_add_rcpt(&b, r->from, 1 /* NOTIFY=NEVER */, NULL);
		struct str enc = STR_INIT;
		queue_record_encode(&b, &enc);
		uint64_t bid;
		if (store_txn_queue_add(txn, enc.s, enc.len, m.s, m.len, &bid, error_r) < 0)
			*ret_r = -1;
		else
			str_printf(&cm->log,
				   "event=dsn queue_id=%" PRIu64 " kind=%s to=<%s> delivery=queued"
				   " dsn_queue_id=%" PRIu64 "%s\n", msg->id, kind, r->from, bid,
				   local ? " reason=mailbox_full" : "");
		str_free(&enc);
		queue_record_free(&b);
	}
	str_free(&m);
}

static int commit_one(struct ob *ob, struct store_txn *txn, struct commit *cm,
		      const char **error_r)
{
	uint64_t id = cm->msg->id;
	cm->found = cm->removed = false;
	str_truncate(&cm->log, 0);
	const void *rec;
	size_t len;
	uint8_t blob[STORE_BLOB_ID_LEN];
	int ret = store_txn_queue_get(txn, id, &rec, &len, blob, error_r);
	if (ret <= 0)
		return ret; /* deleted meanwhile (queue delete): nothing to record */
	struct queue_record r;
	const char *why;
	if (queue_record_decode(rec, len, &r, &why) < 0) {
		/* changed into something unreadable meanwhile: leave it alone
		 * rather than fail the other jobs' results in this transaction */
		str_printf(&cm->log, "event=queue_record_unreadable queue_id=%" PRIu64
				     " error=\"%s\"\n", id, why);
		return 0;
	}
	cm->found = true;
	outbound_apply(&r, cm->mta, cm->res, cm->n_res);
	ret = 0;
	if (cm->finish) {
		struct outbound_notices nt;
		outbound_finish_attempt(&r, cm->now, &ob->cfg->timing, &nt);
		if (nt.n_failed > 0)
			notice_deliver(ob, txn, cm, &r, nt.failed, nt.n_failed, 0, error_r, &ret);
		if (ret == 0 && nt.n_delayed > 0)
			notice_deliver(ob, txn, cm, &r, nt.delayed, nt.n_delayed,
				       r.created + (int64_t)ob->cfg->timing.lifetime, error_r, &ret);
		if (ret == 0 && nt.n_relayed > 0)
			notice_deliver(ob, txn, cm, &r, nt.relayed, nt.n_relayed, 0, error_r, &ret);
		if (ret == 0 && nt.done) {
			ret = store_txn_queue_del(txn, id, error_r) < 0 ? -1 : 0;
			cm->removed = true;
		}
		if (ret == 0 && !nt.done) {
			char when[64];
			dsn_format_date(r.next_attempt, when, sizeof(when));
			str_printf(&cm->log,
				   "event=deferred queue_id=%" PRIu64 " attempts=%" PRIu32
				   " next_attempt=\"%s\"\n", id, r.attempts, when);
		}
		outbound_notices_free(&nt);
	}
	if (ret == 0 && !cm->removed) {
		struct str enc = STR_INIT;
		queue_record_encode(&r, &enc);
		ret = store_txn_queue_update(txn, id, enc.s, enc.len, error_r);
		str_free(&enc);
	}
	queue_record_free(&r);
	return ret;
}

static int commit_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct ob *ob = ctx;
	for (struct commit *cm = ob->commits; cm != NULL; cm = cm->next)
		if (commit_one(ob, txn, cm, error_r) < 0)
			return -1;
	return 0;
}

static void log_lines(const struct str *s)
{
	const char *p = s->s;
	if (p == NULL)
		return;
	while (*p) {
		size_t n = strcspn(p, "\n");
		log_info("%.*s", (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
}

static void msg_free(struct ob *ob, struct ob_msg *m)
{
	for (struct ob_msg **pp = &ob->msgs; *pp; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	ob->n_msgs--;
	queue_record_free(&m->rec);
	free(m->data);
	free(m);
}

static void job_close(struct ob_job *job)
{
	io_remove(&job->cio);
	timeout_remove(&job->cto);
	if (job->fd >= 0) {
		close(job->fd);
		job->fd = -1;
	}
	if (job->conn != NULL) {
		conn_flush(job->conn);
		conn_free(&job->conn);
	}
	smtpc_free(&job->c);
	job->tls_started = false;
	job->tls[0] = '\0';
}

static void job_free(struct ob_job *job)
{
	struct ob *ob = job->ob;
	job_close(job);
	if (job->dns_id > 0)
		dnsr_cancel(ob->dns, job->dns_id);
	for (struct ob_job **pp = &ob->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == job) {
			*pp = job->next;
			break;
		}
	}
	free(job->domain);
	free(job->idx);
	free(job->rcpts);
	free(job->hosts);
	free(job->addrs);
	free(job->tlsa);
	free(job->last_error);
	outbound_sts_job_gone(job);
	mta_sts_policy_free(&job->sts);
	outbound_cfg_unref(&job->cfg);
	free(job);
}

static void job_start(struct ob_job *job);

/* Commits the results of every job finished in this loop iteration in one
 * durable transaction, then logs what it did and frees what it can. */
static void commit_all(void *ctx)
{
	struct ob *ob = ctx;
	if (ob->commits == NULL)
		return;
	int64_t now = outbound_now();
	for (struct commit *cm = ob->commits; cm != NULL; cm = cm->next)
		cm->now = now;
	const char *error;
	bool ok = store_write(ob->store, commit_fn, ob, &error) == 0;
	struct commit *cm = ob->commits;
	ob->commits = ob->commits_tail = NULL;
	while (cm != NULL) {
		struct commit *next = cm->next;
		struct ob_msg *msg = cm->msg;
		if (!ok)
			log_err("event=queue_update_failed queue_id=%" PRIu64 " error=\"%s\"", msg->id,
				error);
		else
			log_lines(&cm->log);
		if (ok && cm->removed)
			log_info("event=removed queue_id=%" PRIu64, msg->id);
		else if (ok && !cm->found)
			log_info("event=gone queue_id=%" PRIu64 " reason=deleted_meanwhile", msg->id);
		str_free(&cm->log);
		for (size_t i = 0; i < cm->n_res; i++) {
			free((char *)cm->res[i].addr);
			free((char *)cm->res[i].status);
			free((char *)cm->res[i].diag);
		}
		free(cm->res);
		free(cm->mta);
		free(cm);
		if (--msg->commits_left == 0 && msg->jobs_left == 0)
			msg_free(ob, msg);
		cm = next;
	}
	scan_soon(ob, 0);
}

/* The job's results are in: record them, end the attempt when it is the
 * message's last job, and let the next waiting job of the destination go. */
static void job_complete(struct ob_job *job, const struct outbound_result *res, size_t n)
{
	struct ob *ob = job->ob;
	struct ob_msg *msg = job->msg;
	const struct queue_record *r = &msg->rec;
	for (size_t i = 0; i < n; i++) {
		static const char *const names[] = { "deferred", "sent", "deferred", "bounced" };
		char buf[SMTPC_DIAG_MAX + 8];
		const char *diag = res[i].diag ? res[i].diag : "";
		log_info("event=outbound queue_id=%" PRIu64 " from=<%s> to=<%s> relay=%s "
			 "status=%s dsn=%s tls=%s reply=\"%s\"",
			 msg->id, r->from, res[i].addr, job->mta[0] ? job->mta : "none",
			 names[res[i].result], res[i].status ? res[i].status : "-",
			 job->tls[0] ? job->tls : "no",
			 log_sanitize(buf, sizeof(buf), diag, strlen(diag)));
	}
	struct commit *cm = xcalloc(1, sizeof(*cm));
	cm->msg = msg;
	cm->mta = job->mta[0] ? xstrdup(job->mta) : NULL;
	cm->res = xcalloc(n ? n : 1, sizeof(*cm->res));
	for (size_t i = 0; i < n; i++) {
		cm->res[i] = res[i];
		cm->res[i].addr = xstrdup(res[i].addr);
		cm->res[i].status = res[i].status ? xstrdup(res[i].status) : NULL;
		cm->res[i].diag = res[i].diag ? xstrdup(res[i].diag) : NULL;
	}
	cm->n_res = n;
	cm->finish = msg->jobs_left == 1;
	if (ob->commits_tail != NULL)
		ob->commits_tail->next = cm;
	else
		ob->commits = cm;
	ob->commits_tail = cm;
	msg->commits_left++;
	defer_schedule(ob->commit_defer);

	struct ob_dest *d = job->dest;
	d->active--;
	job_free(job);
	msg->jobs_left--;
	if (d->wait_head != NULL)
		defer_schedule(ob->wake_defer);
	else
		dest_release(ob, d);
}

/* Starts the jobs waiting for a destination slot, from the loop rather than
 * from job_complete, so that jobs failing at once do not recurse. */
static void wake_waiting(void *ctx)
{
	struct ob *ob = ctx;
	if (ob->stopping)
		return;
	struct ob_dest *d = ob->dests;
	while (d != NULL) {
		/* held (active + 1) so that a job ending at once cannot free it */
		d->active++;
		while (d->wait_head != NULL && d->active - 1 < ob->cfg->dest_concurrency) {
			struct ob_job *job = d->wait_head;
			d->wait_head = job->next_wait;
			if (d->wait_head == NULL)
				d->wait_tail = NULL;
			job_start(job);
		}
		d->active--;
		struct ob_dest *next_d = d->next;
		dest_release(ob, d);
		d = next_d;
	}
}

/* Every recipient of the job gets the same outcome (routing failures). */
static void job_fail_all(struct ob_job *job, enum smtpc_result result, const char *status,
			 const char *diag)
{
	/* diag may be the job's own last_error, freed with the job */
	char *d = xstrdup(diag);
	struct outbound_result *res = xcalloc(job->n, sizeof(*res));
	for (size_t i = 0; i < job->n; i++) {
		res[i].index = job->idx[i];
		res[i].addr = job->rcpts[i].addr;
		res[i].result = result;
		res[i].status = status;
		res[i].diag = d;
	}
	job_close(job);
	job_complete(job, res, job->n);
	free(d);
	free(res);
}

static void job_set_error(struct ob_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void job_set_error(struct ob_job *job, const char *fmt, ...)
{
	struct str s = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&s, fmt, ap);
	va_end(ap);
	free(job->last_error);
	job->last_error = str_steal(&s);
}

/* ---- the SMTP session ---- */

static void session_end(struct ob_job *job)
{
	bool perm = false;
	const char *serr = smtpc_session_error(job->c, &perm);
	if (serr != NULL) {
		/* nothing was tried: another address or host may do better */
		job_set_error(job, "%s: %s", job->mta, serr);
		if (strncmp(serr, "TLS required", 12) == 0)
			job->tls_refused = true;
		if (perm)
			job->last_perm = true;
		else
			job->any_temp = true;
		log_info("event=outbound_session queue_id=%" PRIu64 " domain=%s relay=%s error=\"%s\"",
			 job->msg->id, job->domain, job->mta, serr);
		job_close(job);
		job->addr_i++;
		job_try_addr(job);
		return;
	}
	struct outbound_result *res = xcalloc(job->n, sizeof(*res));
	bool dsn = smtpc_offered_dsn(job->c);
	for (size_t i = 0; i < job->n; i++) {
		const char *diag, *status;
		res[i].index = job->idx[i];
		res[i].addr = job->rcpts[i].addr;
		res[i].result = smtpc_rcpt_result(job->c, i, &diag, &status);
		res[i].status = status[0] ? status : NULL;
		res[i].diag = diag;
		res[i].remote_dsn = dsn;
	}
	/* the strings live in the client until job_free: complete first */
	struct smtpc *c = job->c;
	job->c = NULL;
	if (job->conn != NULL) {
		conn_flush(job->conn);
		conn_free(&job->conn);
	}
	job_complete(job, res, job->n);
	smtpc_free(&c);
	free(res);
}

static void pump(struct ob_job *job)
{
	struct str *out = smtpc_output(job->c);
	for (;;) {
		if (out->len > 0) {
			conn_write(job->conn, out->s, out->len);
			str_truncate(out, 0);
		}
		if (conn_output_size(job->conn) >= OUTPUT_HIGH_WATER)
			break;
		if (!smtpc_produce(job->c, PRODUCE_CHUNK) && out->len == 0)
			break;
	}
}

static void handle_event(struct ob_job *job, enum smtpc_event ev)
{
	pump(job);
	if (ev == SMTPC_EV_DONE) {
		session_end(job);
	} else if (ev == SMTPC_EV_STARTTLS) {
		const void *d;
		size_t len;
		conn_input(job->conn, &d, &len);
		conn_consume(job->conn, len); /* RFC 3207 5: nothing read before TLS counts */
		const char *why;
		struct tls_ctx *ctx = job->level == TLS_POLICY_VERIFY && job->dane == DANE_OFF
					      ? job->cfg->tls_verify
					      : job->cfg->tls_may;
		const char *sni = job->hosts[job->host_i].host;
		job->tls_started = true;
		if (conn_starttls_client(job->conn, ctx, sni, &why) < 0) {
			smtpc_abort(job->c, why);
			session_end(job);
		}
	}
}

/* The server's certificate against the host's TLSA records. */
static bool dane_check(struct ob_job *job, struct conn *conn)
{
	SSL *ssl = conn_tls_ssl(conn);
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	unsigned char *der = NULL;
	int len = cert ? i2d_X509(cert, &der) : -1;
	bool ok = len > 0 && dane_match(job->tlsa, job->n_tlsa, der, (size_t)len) == 1;
	OPENSSL_free(der);
	return ok;
}

static void conn_cb(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct ob_job *job = ctx;
	switch (ev) {
	case CONN_EV_DATA_IN: {
		const void *d;
		size_t len, used;
		conn_input(conn, &d, &len);
		enum smtpc_event e = smtpc_feed(job->c, d, len, &used);
		conn_consume(conn, used);
		handle_event(job, e);
		return;
	}
	case CONN_EV_DRAINED:
		/* the server takes the message: progress, though it says nothing
		 * until the end (the idle timer counts only input) */
		conn_set_timeout(conn, job->cfg->timeout_ms);
		pump(job);
		return;
	case CONN_EV_TLS_READY: {
		bool verified = job->dane == DANE_VERIFY ? dane_check(job, conn)
							  : conn_tls_verified(conn);
		snprintf(job->tls, sizeof(job->tls), "%s", conn_tls_version(conn));
		log_info("event=outbound_tls queue_id=%" PRIu64 " relay=%s version=%s cipher=%s "
			 "verified=%s dane=%s", job->msg->id, job->mta, conn_tls_version(conn),
			 conn_tls_cipher(conn), verified ? "yes" : "no",
			 job->dane == DANE_VERIFY ? "tlsa" : job->dane == DANE_ENCRYPT ? "unusable" : "no");
		handle_event(job, smtpc_tls_ready(job->c, verified));
		return;
	}
	case CONN_EV_TIMEOUT:
	case CONN_EV_EOF:
	case CONN_EV_ERROR: {
		const char *why = ev == CONN_EV_TIMEOUT ? "timeout waiting for the server"
				  : ev == CONN_EV_EOF	 ? "connection closed by the server"
							 : conn_error(conn);
		if (job->tls_started && !conn_tls_active(conn) && job->level == TLS_POLICY_MAY &&
		    job->dane == DANE_OFF && !job->no_starttls) {
			/* opportunistic TLS that fails: once more in clear, as Postfix does */
			log_info("event=outbound_tls_failed queue_id=%" PRIu64 " relay=%s error=\"%s\" "
				 "retry=clear", job->msg->id, job->mta, why);
			job->no_starttls = true;
			job_close(job);
			job_try_addr(job);
			return;
		}
		smtpc_abort(job->c, why);
		session_end(job);
		return;
	}
	}
}

static void connected(struct ob_job *job)
{
	io_remove(&job->cio);
	timeout_remove(&job->cto);
	struct ob *ob = job->ob;
	job->conn = conn_new(ob->loop, job->fd, conn_cb, job);
	job->fd = -1;
	conn_set_timeout(job->conn, job->cfg->timeout_ms);
	job->params.starttls = job->level != TLS_POLICY_NONE && !job->no_starttls;
	job->params.tls_required = job->level >= TLS_POLICY_ENCRYPT;
	job->params.tls_verify = job->level == TLS_POLICY_VERIFY;
	if (job->dane != DANE_OFF) {
		/* TLSA records make TLS mandatory; usable ones replace the
		 * certificate authorities (RFC 7672 2.2) */
		job->params.starttls = job->params.tls_required = true;
		job->params.tls_verify = job->dane == DANE_VERIFY || job->level == TLS_POLICY_VERIFY;
	}
	job->c = smtpc_new(&job->params);
}

static void connect_failed(struct ob_job *job, const char *why)
{
	job_set_error(job, "connect to %s: %s", job->mta, why);
	job->any_temp = true;
	log_info("event=outbound_connect queue_id=%" PRIu64 " relay=%s error=\"%s\"", job->msg->id,
		 job->mta, why);
	job_close(job);
	job->addr_i++;
	job_try_addr(job);
}

static void connect_io(void *ctx, unsigned revents)
{
	struct ob_job *job = ctx;
	(void)revents;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(job->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		connect_failed(job, strerror(err));
		return;
	}
	connected(job);
}

static void connect_timeout(void *ctx)
{
	connect_failed(ctx, "connection timed out");
}

static void job_try_addr(struct ob_job *job)
{
	struct ob *ob = job->ob;
	if (job->addr_i >= job->n_addrs) {
		job->host_i++;
		job_next_host(job);
		return;
	}
	const struct net_addr *a = &job->addrs[job->addr_i];
	char ip[NET_ADDR_STR_MAX];
	net_addr_str(a, ip, sizeof(ip));
	snprintf(job->mta, sizeof(job->mta), "%s[%s]:%u", job->hosts[job->host_i].host, ip,
		 net_addr_port(a));
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		connect_failed(job, strerror(errno));
		return;
	}
	job->fd = fd;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
		connected(job);
		return;
	}
	if (errno != EINPROGRESS) {
		connect_failed(job, strerror(errno));
		return;
	}
	job->cio = io_add(ob->loop, fd, IO_WRITE, connect_io, job);
	job->cto = timeout_add(ob->loop, job->cfg->connect_timeout_ms, connect_timeout, job);
}

static void tlsa_cb(void *ctx, enum dnsr_status st, const struct dane_tlsa *recs, size_t n,
		    bool secure, const char *error)
{
	struct ob_job *job = ctx;
	job->dns_id = 0;
	const char *host = job->hosts[job->host_i].host;
	if (st == DNSR_TEMPFAIL) {
		/* RFC 7672 2.2.2: a failed TLSA lookup rules the host out */
		job_set_error(job, "host %s: TLSA lookup failed: %s", host,
			      *error ? error : "timeout");
		job->any_temp = true;
		job->host_i++;
		job_next_host(job);
		return;
	}
	if (st == DNSR_OK && secure && n > 0) {
		size_t usable = 0;
		for (size_t i = 0; i < n; i++)
			if (dane_usable(&recs[i]))
				usable++;
		job->tlsa = xmemdup(recs, n * sizeof(*recs));
		job->n_tlsa = n;
		job->dane = usable > 0 ? DANE_VERIFY : DANE_ENCRYPT;
		log_info("event=dane queue_id=%" PRIu64 " host=%s tlsa=%zu usable=%zu", job->msg->id,
			 host, n, usable);
	}
	job_try_addr(job);
}

static void addr_cb(void *ctx, enum dnsr_status st, const struct net_addr *addrs, size_t n,
		    bool secure, const char *error)
{
	struct ob_job *job = ctx;
	job->dns_id = 0;
	const char *host = job->hosts[job->host_i].host;
	if (st != DNSR_OK) {
		job_set_error(job, "host %s: %s", host,
			      st == DNSR_TEMPFAIL ? (*error ? error : "lookup failed")
						  : "no address (A/AAAA) found");
		if (st == DNSR_TEMPFAIL)
			job->any_temp = true;
		job->host_i++;
		job_next_host(job);
		return;
	}
	free(job->addrs);
	job->addrs = xmemdup(addrs, n * sizeof(*addrs));
	job->n_addrs = n;
	job->addr_i = 0;
	if (job->cfg->dane && job->mx_secure && secure) {
		/* RFC 7672 2.2: TLSA records only for a host found securely */
		struct str name = STR_INIT;
		str_printf(&name, "_%u._tcp.%s", job->port, host);
		const char *why;
		int id = dnsr_lookup_tlsa(job->ob->dns, name.s, tlsa_cb, job, &why);
		str_free(&name);
		if (id >= 0) {
			job->dns_id = id;
			return;
		}
		tlsa_cb(job, DNSR_TEMPFAIL, NULL, 0, false, why);
		return;
	}
	job_try_addr(job);
}

static void job_next_host(struct ob_job *job)
{
	struct ob *ob = job->ob;
	if (job->host_i >= job->n_hosts) {
		/* every host failed before a transaction: temporary unless each
		 * one refused us outright and none failed for a passing reason */
		bool perm = job->last_perm && !job->any_temp;
		if (!perm && !job->tls_refused && job->dest->down_error == NULL)
			job->dest->down_error = xstrdup(job->last_error ? job->last_error
									: "no server reachable");
		/* RFC 3463: 4.7.4 security features not supported (as Postfix) */
		job_fail_all(job, perm ? SMTPC_R_PERM : SMTPC_R_TEMP,
			     perm ? "5.4.0" : job->tls_refused ? "4.7.4" : "4.4.1",
			     job->last_error ? job->last_error : "no server reachable");
		return;
	}
	const char *host = job->hosts[job->host_i].host;
	struct net_addr a;
	free(job->addrs);
	job->addrs = NULL;
	job->n_addrs = job->addr_i = 0;
	x_free(&job->tlsa);
	job->n_tlsa = 0;
	job->dane = DANE_OFF;
	if (net_addr_parse(host, &a) == 0) {
		if (a.ss.ss_family == AF_INET)
			((struct sockaddr_in *)&a.ss)->sin_port = htons((uint16_t)job->port);
		else
			((struct sockaddr_in6 *)&a.ss)->sin6_port = htons((uint16_t)job->port);
		addr_cb(job, DNSR_OK, &a, 1, false, "");
		return;
	}
	const char *why;
	int id = dnsr_lookup_addr(ob->dns, host, job->port, addr_cb, job, &why);
	if (id < 0) {
		job_set_error(job, "host %s: %s", host, why);
		job->any_temp = true;
		job->host_i++;
		job_next_host(job);
		return;
	}
	job->dns_id = id;
}

static void mx_cb(void *ctx, enum dnsr_status st, const struct dnsr_mx *mx, size_t n,
		  bool secure, const char *error)
{
	struct ob_job *job = ctx;
	job->dns_id = 0;
	job->mx_secure = secure;
	switch (st) {
	case DNSR_NXDOMAIN:
		job_fail_all(job, SMTPC_R_PERM, "5.1.2", "domain not found (NXDOMAIN)");
		return;
	case DNSR_TEMPFAIL: {
		struct str e = STR_INIT;
		str_printf(&e, "MX lookup of %s failed: %s", job->domain, *error ? error : "timeout");
		job_fail_all(job, SMTPC_R_TEMP, "4.4.3", e.s);
		str_free(&e);
		return;
	}
	case DNSR_NODATA:
		/* no MX: the domain itself (RFC 5321 5.1) */
		job->hosts = xcalloc(1, sizeof(*job->hosts));
		snprintf(job->hosts[0].host, sizeof(job->hosts[0].host), "%s", job->domain);
		job->n_hosts = 1;
		break;
	case DNSR_OK:
		if (n == 1 && mx[0].host[0] == '\0') {
			/* RFC 7505 null MX: the domain takes no mail */
			job_fail_all(job, SMTPC_R_PERM, "5.1.10",
				     "the domain accepts no mail (null MX)");
			return;
		}
		job->hosts = xmemdup(mx, n * sizeof(*mx));
		job->n_hosts = n;
		break;
	}
	if (job->sts_enforce || job->sts_testing) {
		/* RFC 8461 4.1: only MX hosts the policy names */
		size_t kept = 0;
		for (size_t i = 0; i < job->n_hosts; i++) {
			if (mta_sts_mx_match(&job->sts, job->hosts[i].host)) {
				job->hosts[kept++] = job->hosts[i];
				continue;
			}
			log_info("event=mta_sts_mx_mismatch queue_id=%" PRIu64 " domain=%s mx=%s mode=%s",
				 job->msg->id, job->domain, job->hosts[i].host,
				 job->sts_enforce ? "enforce" : "testing");
		}
		if (job->sts_enforce) {
			job->n_hosts = kept;
			if (kept == 0) {
				job_fail_all(job, SMTPC_R_TEMP, "4.7.4",
					     "no MX host matches the domain's MTA-STS policy");
				return;
			}
		}
	}
	job->host_i = 0;
	job_next_host(job);
}

/* By MX (after the MTA-STS policy, when it applies). */
void outbound_job_route_mx(struct ob_job *job)
{
	struct ob *ob = job->ob;
	job->port = job->cfg->port;
	const char *why;
	int id = dnsr_lookup_mx(ob->dns, job->domain, mx_cb, job, &why);
	if (id < 0) {
		job_fail_all(job, SMTPC_R_TEMP, "4.4.3", why);
		return;
	}
	job->dns_id = id;
}

/* Recipients of a local domain (notifications that found a full mailbox)
 * go straight into the store. */
static void job_deliver_local(struct ob_job *job)
{
	struct ob *ob = job->ob;
	const struct ob_msg *msg = job->msg;
	snprintf(job->mta, sizeof(job->mta), "local");
	struct store_rcpt *sr = xcalloc(job->n, sizeof(*sr));
	char (*norm)[ADDRESS_MAX_LEN + 1] = xcalloc(job->n, sizeof(*norm));
	struct outbound_result *res = xcalloc(job->n, sizeof(*res));
	size_t k = 0;
	const char *why;
	for (size_t i = 0; i < job->n; i++) {
		res[i].index = job->idx[i];
		res[i].addr = job->rcpts[i].addr;
		if (address_normalize(job->rcpts[i].addr, norm[i], &why) < 0) {
			res[i].result = SMTPC_R_PERM;
			res[i].status = "5.1.3";
			res[i].diag = "bad local address";
			continue;
		}
		sr[k].address = norm[i];
		k++;
	}
	/* local copies start with the envelope sender (RFC 5321 4.4) */
	struct str data = STR_INIT;
	str_printf(&data, "Return-Path: <%s>\r\n", msg->rec.from);
	str_append(&data, msg->data, msg->size);
	/* unique: the bytes carry our Received: field */
	struct store_delivery d = {
		.data = data.s, .size = data.len, .rcpts = sr, .n_rcpts = k, .unique = true
	};
	const char *error = NULL;
	int ret = k > 0 ? store_deliver(ob->store, &d, 1, &error) : 0;
	k = 0;
	for (size_t i = 0; i < job->n; i++) {
		if (res[i].result == SMTPC_R_PERM)
			continue;
		switch (ret < 0 ? RCPT_ERROR : sr[k].status) {
		case RCPT_OK:
			res[i].result = SMTPC_R_OK;
			res[i].status = "2.0.0";
			res[i].diag = "delivered to the mailbox";
			res[i].remote_dsn = true;
			break;
		case RCPT_OVER_QUOTA:
			res[i].result = SMTPC_R_TEMP;
			res[i].status = "4.2.2";
			res[i].diag = "mailbox full";
			break;
		case RCPT_NO_ACCOUNT:
		case RCPT_NO_MAILBOX:
			res[i].result = SMTPC_R_PERM;
			res[i].status = "5.1.1";
			res[i].diag = "no such account";
			break;
		case RCPT_TOO_BIG:
			res[i].result = SMTPC_R_PERM;
			res[i].status = "5.2.2";
			res[i].diag = "message larger than the mailbox quota";
			break;
		case RCPT_ERROR:
			res[i].result = SMTPC_R_TEMP;
			res[i].status = "4.3.0";
			res[i].diag = "store error";
			break;
		}
		k++;
	}
	if (ret < 0)
		log_err("event=local_delivery_failed queue_id=%" PRIu64 " error=\"%s\"", msg->id,
			error);
	job_complete(job, res, job->n);
	str_free(&data);
	free(res);
	free(norm);
	free(sr);
}

static void job_start(struct ob_job *job)
{
	job->dest->active++;
	job->host_i = 0;
	if (domain_is_local(job->domain, job->cfg->domains)) {
		job_deliver_local(job);
		return;
	}
	if (job->dest->down_error != NULL) {
		/* its other messages just failed to reach any server (Postfix's
		 * dead destination, for one round) */
		struct str e = STR_INIT;
		str_printf(&e, "destination not tried, unreachable just now: %s",
			   job->dest->down_error);
		job_fail_all(job, SMTPC_R_TEMP, "4.4.1", e.s);
		str_free(&e);
		return;
	}
	if (job->cfg->relay_host[0] != '\0') {
		/* the smart host is ours: no MX and no MTA-STS */
		job->hosts = xcalloc(1, sizeof(*job->hosts));
		snprintf(job->hosts[0].host, sizeof(job->hosts[0].host), "%s", job->cfg->relay_host);
		job->n_hosts = 1;
		job->port = job->cfg->relay_port;
		job_next_host(job);
		return;
	}
	if (job->cfg->mta_sts)
		outbound_sts_get(job);
	else
		outbound_job_route_mx(job);
}

/* ---- picking up queued mail ---- */

static bool in_flight(const struct ob *ob, uint64_t id)
{
	for (const struct ob_msg *m = ob->msgs; m != NULL; m = m->next)
		if (m->id == id)
			return true;
	return false;
}

struct scan {
	struct ob *ob;
	int64_t now;
	uint64_t *due;
	size_t n_due;
	size_t room;
	int64_t next;   /* the earliest future attempt, 0: none */
};

static int scan_one(uint64_t id, const void *rec, size_t len, const uint8_t blob[STORE_BLOB_ID_LEN],
		    void *ctx)
{
	struct scan *sc = ctx;
	(void)blob;
	if (in_flight(sc->ob, id))
		return 0;
	struct queue_record r;
	const char *why;
	if (queue_record_decode(rec, len, &r, &why) < 0)
		return 0;
	int64_t next = r.next_attempt;
	queue_record_free(&r);
	if (next > sc->now) {
		if (sc->next == 0 || next < sc->next)
			sc->next = next;
		return 0;
	}
	if (sc->n_due >= sc->room)
		return 1;
	sc->due[sc->n_due++] = id;
	return 0;
}

static void msg_start(struct ob *ob, uint64_t id)
{
	struct store_txn *txn;
	const char *error;
	if (store_read_begin(ob->store, &txn, &error) < 0) {
		log_err("event=store_error error=\"%s\"", error);
		return;
	}
	const void *rec;
	size_t len;
	uint8_t blob[STORE_BLOB_ID_LEN];
	uint64_t size = 0;
	struct ob_msg *m = xcalloc(1, sizeof(*m));
	int ret = store_txn_queue_get(txn, id, &rec, &len, blob, &error);
	if (ret > 0 && queue_record_decode(rec, len, &m->rec, &error) < 0)
		ret = -1;
	if (ret > 0 && store_txn_blob_size(txn, blob, &size, &error) < 0)
		ret = -1;
	if (ret > 0 && size > SIZE_MAX / 2)
		ret = -1;
	if (ret > 0) {
		m->data = xmalloc(size ? size : 1);
		m->size = size;
		if (size > 0 && store_txn_blob_read(txn, blob, 0, m->data, size, &error) < 0)
			ret = -1;
	}
	store_read_end(&txn);
	if (ret <= 0) {
		if (ret < 0)
			log_err("event=queue_read_failed queue_id=%" PRIu64 " error=\"%s\"", id, error);
		queue_record_free(&m->rec);
		free(m->data);
		free(m);
		return;
	}
	m->ob = ob;
	m->id = id;
	m->next = ob->msgs;
	ob->msgs = m;
	ob->n_msgs++;
	struct outbound_group *g;
	size_t ng = outbound_group_pending(&m->rec, OUTBOUND_RCPTS_PER_TRANSACTION, &g);
	const struct queue_record *r = &m->rec;
	log_info("event=attempt queue_id=%" PRIu64 " from=<%s> rcpts=%zu domains=%zu attempt=%" PRIu32
		 " size=%zu", id, r->from, r->n_rcpts, ng, r->attempts + 1, m->size);
	if (ng == 0) {
		/* every recipient is final already (a crash before the attempt's
		 * end): run the end of the attempt alone */
		m->jobs_left = 1;
		struct ob_job *job = xcalloc(1, sizeof(*job));
		job->ob = ob;
		job->msg = m;
		job->fd = -1;
		job->domain = xstrdup("-");
		job->cfg = ob->cfg;
		job->cfg->refs++;
		job->dest = dest_get(ob, "-");
		job->dest->active++;
		job->next = ob->jobs;
		ob->jobs = job;
		job_complete(job, NULL, 0);
		return;
	}
	m->jobs_left = ng;
	struct ob_job **list = xcalloc(ng, sizeof(*list));
	for (size_t k = 0; k < ng; k++) {
		struct ob_job *job = xcalloc(1, sizeof(*job));
		list[k] = job;
		job->ob = ob;
		job->msg = m;
		job->fd = -1;
		job->domain = g[k].domain;
		g[k].domain = NULL;
		job->idx = g[k].idx;
		g[k].idx = NULL;
		job->n = g[k].n;
		job->rcpts = xcalloc(job->n, sizeof(*job->rcpts));
		for (size_t i = 0; i < job->n; i++) {
			const struct queue_rcpt *q = &r->rcpts[job->idx[i]];
			job->rcpts[i].addr = q->addr;
			job->rcpts[i].notify = q->notify;
			job->rcpts[i].orcpt = q->orcpt;
		}
		job->cfg = ob->cfg;
		job->cfg->refs++;
		job->level = tls_policy_lookup(job->cfg->policy, job->domain);
		struct smtpc_params *p = &job->params;
		p->helo_name = job->cfg->hostname;
		p->mail_from = r->from;
		p->smtputf8 = r->smtputf8;
		p->body_8bit = r->body == 1;
		p->ret = r->ret;
		p->envid = r->envid;
		p->rcpts = job->rcpts;
		p->n_rcpts = job->n;
		p->data = m->data;
		p->size = m->size;
		job->dest = dest_get(ob, job->cfg->relay_host[0] ? job->cfg->relay_host : job->domain);
		job->next = ob->jobs;
		ob->jobs = job;
		if (job->level >= TLS_POLICY_ENCRYPT)
			log_info("event=tls_policy queue_id=%" PRIu64 " domain=%s policy=%s", id,
				 job->domain, tls_policy_name(job->level));
	}
	outbound_groups_free(&g, ng);
	/* start after all jobs exist (a job may complete at once); a
	 * destination over its limit makes its jobs wait in line */
	for (size_t i = 0; i < ng; i++) {
		struct ob_job *job = list[i];
		struct ob_dest *d = job->dest;
		if (d->active >= ob->cfg->dest_concurrency) {
			if (d->wait_tail != NULL)
				d->wait_tail->next_wait = job;
			else
				d->wait_head = job;
			d->wait_tail = job;
			continue;
		}
		job_start(job);
	}
	free(list);
}

static void scan(void *ctx)
{
	struct ob *ob = ctx;
	ob->scan_due_ms = 0;
	if (ob->stopping)
		return;
	struct scan sc = { .ob = ob, .now = outbound_now() };
	sc.room = ob->n_msgs < ob->cfg->concurrency ? ob->cfg->concurrency - ob->n_msgs : 0;
	sc.due = xcalloc(sc.room ? sc.room : 1, sizeof(uint64_t));
	struct store_txn *txn = NULL;
	const char *error;
	if (sc.room > 0) {
		if (store_read_begin(ob->store, &txn, &error) < 0 ||
		    store_txn_queue_foreach(txn, scan_one, &sc, &error) < 0) {
			log_err("event=store_error error=\"%s\"", error);
			sc.next = sc.now + 5;
		}
		if (txn != NULL)
			store_read_end(&txn);
	}
	for (size_t i = 0; i < sc.n_due; i++)
		msg_start(ob, sc.due[i]);
	free(sc.due);
	uint64_t wait = SCAN_MAX_INTERVAL_MS;
	if (sc.next > 0 && (uint64_t)(sc.next - sc.now) * 1000 < wait)
		wait = (uint64_t)(sc.next - sc.now) * 1000;
	scan_soon(ob, wait);
}

/* Arms the scan timer for ms from now unless it fires sooner already. */
static void scan_soon(struct ob *ob, uint64_t ms)
{
	uint64_t due = ioloop_now_ms(ob->loop) + ms;
	if (ob->scan_due_ms != 0 && ob->scan_due_ms <= due)
		return;
	ob->scan_due_ms = due;
	timeout_reset(ob->scan_to, ms);
}

static void notify_io(void *ctx, unsigned revents)
{
	struct ob *ob = ctx;
	(void)revents;
	store_notify_drain(ob->store);
	scan_soon(ob, SCAN_COALESCE_MS);
}

static void dns_io(void *ctx, unsigned revents)
{
	struct ob *ob = ctx;
	(void)revents;
	dnsr_process(ob->dns);
}

static void on_signal(void *ctx, int signo)
{
	struct ob *ob = ctx;
	(void)signo;
	ob->stopping = true;
	ioloop_stop(ob->loop);
}

/* ---- set-up ---- */

/* A configuration from settings; NULL and *error_r (caller frees) when the
 * TLS policy or a TLS context cannot be made. Copies what it keeps. */
static struct ob_cfg *cfg_new(const struct settings *set, char **error_r)
{
	struct ob_cfg *cfg = xcalloc(1, sizeof(*cfg));
	cfg->refs = 1;
	char host[256];
	const char *h = settings_str(set, S_GLOBAL_HOSTNAME);
	if (*h == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		h = host;
	}
	cfg->hostname = xstrdup(h);
	cfg->domains = xstrdup(settings_str(set, S_GLOBAL_DOMAINS));
	const char *relay = settings_str(set, S_SMTPD_RELAY_HOST);
	cfg->relay_port = 25;
	if (relay[0] == '[') {
		const char *close = strchr(relay, ']');
		cfg->relay_host = xstrndup(relay + 1, close ? (size_t)(close - relay - 1) : 0);
		if (close != NULL && close[1] == ':')
			cfg->relay_port = (unsigned)strtoul(close + 2, NULL, 10);
	} else {
		const char *colon = strrchr(relay, ':');
		if (colon != NULL && strchr(relay, ':') == colon) {
			cfg->relay_host = xstrndup(relay, (size_t)(colon - relay));
			cfg->relay_port = (unsigned)strtoul(colon + 1, NULL, 10);
		} else {
			cfg->relay_host = xstrdup(relay);
		}
	}
	cfg->port = (unsigned)settings_num(set, S_SMTPD_OUTBOUND_PORT);
	cfg->concurrency = (unsigned)settings_num(set, S_SMTPD_OUTBOUND_CONCURRENCY);
	cfg->dest_concurrency = (unsigned)settings_num(set, S_SMTPD_OUTBOUND_DEST_CONCURRENCY);
	cfg->connect_timeout_ms =
		(unsigned)settings_num(set, S_SMTPD_OUTBOUND_CONNECT_TIMEOUT) * 1000;
	cfg->timeout_ms = (unsigned)settings_num(set, S_SMTPD_OUTBOUND_TIMEOUT) * 1000;
	cfg->timing.lifetime = settings_num(set, S_SMTPD_QUEUE_LIFETIME);
	cfg->timing.warn_after = settings_num(set, S_SMTPD_DELAY_WARNING);
	cfg->timing.min_backoff = settings_num(set, S_SMTPD_RETRY_MIN_BACKOFF);
	cfg->timing.max_backoff = settings_num(set, S_SMTPD_RETRY_MAX_BACKOFF);
	cfg->mta_sts = settings_bool(set, S_SMTPD_MTA_STS);
	cfg->mta_sts_port = (unsigned)settings_num(set, S_SMTPD_MTA_STS_PORT);
	cfg->dane = settings_bool(set, S_SMTPD_DANE);
	const char *minv = settings_str(set, S_TLS_MIN_VERSION);
	const char *ca = settings_str(set, S_SMTPD_OUTBOUND_CA_FILE);
	if (tls_policy_parse(settings_str(set, S_SMTPD_TLS_POLICY), &cfg->policy, error_r) < 0 ||
	    tls_ctx_client_new(minv, false, NULL, &cfg->tls_may, error_r) < 0 ||
	    tls_ctx_client_new(minv, true, *ca ? ca : NULL, &cfg->tls_verify, error_r) < 0) {
		outbound_cfg_unref(&cfg);
		return NULL;
	}
	return cfg;
}

static void on_parent_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct ob *ob = ctx;
	struct reload rl;
	char *error = NULL;
	if (type != DF_RELOAD || reload_parse(data, len, &rl, &error) < 0)
		fatal("malformed frame from the parent");
	struct settings *set = rl.set;
	struct ob_cfg *cfg = set ? cfg_new(set, &error) : NULL;
	settings_free(&set);
	if (cfg == NULL) {
		log_err("event=reload_failed process=outbound error=\"%s\"", error);
		free(error);
		return;
	}
	outbound_cfg_unref(&ob->cfg);
	ob->cfg = cfg;
	log_info("event=reloaded process=outbound relay_host=%s",
		 cfg->relay_host[0] ? cfg->relay_host : "-");
	scan_soon(ob, 0);
}

static void on_parent_gone(void *ctx, const char *error)
{
	struct ob *ob = ctx;
	(void)error;
	frame_chan_free(&ob->parent);
	ob->stopping = true;
	ioloop_stop(ob->loop);
}

int outbound_main(const struct outbound_args *args)
{
	struct ob ob;
	memset(&ob, 0, sizeof(ob));
	ob.set = args->set;
	ob.loop = ioloop_create();
	char *error;
	ob.cfg = cfg_new(ob.set, &error);
	if (ob.cfg == NULL)
		fatal("%s", error);
	if (dnsr_new(settings_str(ob.set, S_GLOBAL_DNS_SERVER),
		     settings_str(ob.set, S_SMTPD_DNSSEC_TRUST_ANCHOR), &ob.dns, &error) < 0)
		fatal("%s", error);
	struct store_options so;
	store_options_init(&so, ob.set, true);
	const char *why;
	if (store_open(settings_str(ob.set, S_GLOBAL_DATA_DIR), &so, &ob.store, &why) < 0)
		fatal("global.data_dir: %s: %s", settings_str(ob.set, S_GLOBAL_DATA_DIR), why);
	struct str cache = STR_INIT;
	str_printf(&cache, "%s/mta-sts.cache", settings_str(ob.set, S_GLOBAL_DATA_DIR));
	ob.sts_cache_path = str_steal(&cache);
	outbound_sts_load(&ob);
	ob.dns_io = io_add(ob.loop, dnsr_fd(ob.dns), IO_READ, dns_io, &ob);
	int nfd = store_notify_fd(ob.store);
	if (nfd >= 0)
		ob.notify_io = io_add(ob.loop, nfd, IO_READ, notify_io, &ob);
	ob.scan_to = timeout_add(ob.loop, 0, scan, &ob);
	ob.commit_defer = defer_new(ob.loop, commit_all, &ob);
	ob.wake_defer = defer_new(ob.loop, wake_waiting, &ob);
	if (args->parent_fd >= 0)
		ob.parent = frame_chan_new(ob.loop, args->parent_fd, RELOAD_FRAME_MAX,
					   on_parent_frame, on_parent_gone, &ob);
	ob.scan_due_ms = ioloop_now_ms(ob.loop);
	int sigs[] = { SIGTERM, SIGINT };
	for (size_t i = 0; i < 2; i++)
		if (ioloop_signal_add(ob.loop, sigs[i], on_signal, &ob, &why) < 0)
			fatal("signals: %s", why);
	signal(SIGHUP, SIG_IGN);
	log_info("event=started process=outbound relay_host=%s port=%u concurrency=%u",
		 ob.cfg->relay_host[0] ? ob.cfg->relay_host : "-", ob.cfg->port, ob.cfg->concurrency);
	ioloop_run(ob.loop);

	/* Results already in are committed; sessions in progress end here and
	 * their recipients stay pending, to be tried again at the next start. */
	commit_all(&ob);
	while (ob.jobs != NULL) {
		struct ob_job *job = ob.jobs;
		struct ob_msg *m = job->msg;
		job_free(job);
		if (--m->jobs_left == 0 && m->commits_left == 0)
			msg_free(&ob, m);
	}
	while (ob.msgs != NULL)
		msg_free(&ob, ob.msgs);
	outbound_sts_free_all(&ob);
	free(ob.sts_cache_path);
	while (ob.dests != NULL) {
		struct ob_dest *d = ob.dests;
		ob.dests = d->next;
		free(d->name);
		free(d->down_error);
		free(d);
	}
	log_info("event=stopped process=outbound");
	for (size_t i = 0; i < 2; i++)
		ioloop_signal_remove(ob.loop, sigs[i]);
	io_remove(&ob.dns_io);
	io_remove(&ob.notify_io);
	timeout_remove(&ob.scan_to);
	defer_free(&ob.commit_defer);
	defer_free(&ob.wake_defer);
	dnsr_free(&ob.dns);
	store_close(&ob.store);
	frame_chan_free(&ob.parent);
	outbound_cfg_unref(&ob.cfg);
	ioloop_destroy(&ob.loop);
	return 0;
}
