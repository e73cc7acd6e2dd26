/* The delivery process: the only process of congvu-smtpd that opens the
 * store. It answers recipient look-ups and password checks for the session
 * workers and commits their accepted messages in batches (group commit):
 * the write transaction and its fsync run in a commit thread, and every
 * DF_DELIVER that arrives meanwhile is hashed and compressed (the costly
 * part of storing a message) by preparing threads, one per CPU, and goes
 * into the next transaction once ready. Compression is done when it is
 * free, while a commit runs: a lone message (nothing else waiting, prepared
 * in the main thread) and, under load, a message that finds more than
 * smtpd.compress_backlog others waiting for the preparing threads are
 * stored uncompressed, so that no reply waits for it (doc/smtpd.md); a
 * compacting thread compresses those bytes once deliveries pause or a
 * backlog has built up.
 * Each session gets its reply only after the transaction holding its
 * message is durable. Look-ups are answered meanwhile from read
 * transactions (the store lets them run beside the write). Password hashes
 * are verified in a helper thread, so a slow hash never holds up commits. */
#include "config.h"
#include "reload.h"
#include "dproto.h"
#include "frame.h"
#include "ioloop.h"
#include "log.h"
#include "password.h"
#include "smtpd.h"
#include "store/store.h"
#include "xalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct dworker {
	struct delivery *d;
	unsigned idx;
	struct frame_chan *chan;
};

struct pending {
	struct dworker *w;
	uint64_t req;
	bool atomic;
	uint32_t rp_len;
	char *data;
	size_t size;
	char *parsed;
	size_t parsed_size;
	struct store_rcpt *rcpts;
	char **addrs;
	size_t n_rcpts;
	char *queue_record;
	size_t queue_record_len;
	struct prep_job *job;            /* its preparation, until taken */
	struct store_prepared *prepared; /* hashed and compressed */
	struct store_prepared *queue_prepared; /* the queue copy's */
	/* results */
	uint32_t queued;
	uint64_t queue_id;
};

/* A message for the preparing threads: its local copy and its queue copy
 * (without Return-Path), as needed; done and the results under pmu. */
struct prep_job {
	struct prep_job *next;
	const void *data;
	size_t size;
	const void *parsed;
	size_t parsed_size;
	const void *qdata;
	size_t qsize;
	bool want_local, want_queue;
	struct store_prepared *result, *qresult;
	bool done;
};

#define PREP_THREADS_MAX 8
#define COMPACT_IDLE_MS 500
#define COMPACT_STEP 64 /* chunks per compaction transaction */
#define COMPACT_BACKLOG 256 /* messages stored uncompressed: compact now */
#define COMPACT_RETRY_MS 60000 /* after a failed pass */
#define COMPACT_BUSY_STEPS 4 /* per second while deliveries arrive */

struct auth_job {
	struct auth_job *next;
	struct dworker *w;
	uint64_t req;
	bool found;
	char hash[STORE_HASH_MAX + 1];
	char password[PASSWORD_MAX_LEN + 1];
	char account[ADDRESS_MAX_LEN + 1];
	bool ok;
};

struct delivery {
	struct ioloop *loop;
	struct settings *set;
	struct store *store;
	struct dworker *workers;
	size_t n_workers;
	size_t n_alive;
	struct frame_chan *parent;
	struct defer *commit;
	struct pending *batch;
	size_t n_batch, cap_batch;
	size_t batch_max;
	bool stopping;
	/* the commit thread: runs store_write() on inflight */
	pthread_t cthread;
	pthread_mutex_t cmu;
	pthread_cond_t ccv;
	struct pending *inflight;
	size_t n_inflight, cap_inflight;
	bool committing; /* inflight belongs to the thread */
	bool cjob, cdone, cstop;
	int cret;
	const char *cerror;
	int cefd;
	struct io *cio;
	/* the preparing threads */
	pthread_t pthreads[PREP_THREADS_MAX];
	size_t n_pthreads;
	pthread_mutex_t pmu;
	pthread_cond_t pcv;      /* a job queued, or stop */
	pthread_cond_t pdone_cv; /* a job done */
	struct prep_job *pjobs, **pjobs_tail;
	size_t n_pjobs;        /* queued, not yet taken by a thread */
	size_t n_busy;         /* being prepared */
	size_t compress_backlog; /* smtpd.compress_backlog; under pmu */
	uint64_t stored_raw;   /* messages left uncompressed (under pmu) */
	bool pstop;
	int pefd;
	struct io *pio;
	/* the compacting thread (store_compact when no message has arrived for
	 * COMPACT_IDLE_MS) */
	pthread_t kthread;
	pthread_mutex_t kmu;
	pthread_cond_t kcv;
	bool kstop;
	uint64_t kseen; /* stored_raw when the last pass found nothing left */
	uint64_t kpause_until_ms; /* after a failed pass (a full disk): wait */
	_Atomic uint64_t last_arrival_ms;
	/* the password thread */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct auth_job *jobs, *done;
	bool thread_stop;
	int efd;
	struct io *eio;
};

static void send_small(struct dworker *w, uint32_t type, struct str *buf)
{
	if (w->chan != NULL)
		frame_send(w->chan, type, buf->s, buf->len);
	str_free(buf);
}

/* A thread wakes the main loop through an eventfd. */
static void efd_signal(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow in practice; nothing to do */
	}
}

static void efd_drain(int fd)
{
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		fatal("eventfd read: %s", strerror(errno));
}

/* ---- the password thread ---- */

static void *auth_thread(void *ctx)
{
	struct delivery *d = ctx;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (d->jobs == NULL && !d->thread_stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->thread_stop)
			break;
		struct auth_job *j = d->jobs;
		d->jobs = j->next;
		pthread_mutex_unlock(&d->mu);
		j->ok = j->found && password_verify(j->password, j->hash);
		explicit_bzero(j->password, sizeof(j->password));
		pthread_mutex_lock(&d->mu);
		j->next = d->done;
		d->done = j;
		efd_signal(d->efd);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

static void auth_done(void *ctx, unsigned revents)
{
	struct delivery *d = ctx;
	(void)revents;
	efd_drain(d->efd);
	pthread_mutex_lock(&d->mu);
	struct auth_job *list = d->done;
	d->done = NULL;
	pthread_mutex_unlock(&d->mu);
	while (list != NULL) {
		struct auth_job *j = list;
		list = j->next;
		struct str buf = STR_INIT;
		frame_put_u64(&buf, j->req);
		frame_put_u8(&buf, j->ok ? 1 : 0);
		frame_put_str(&buf, j->ok ? j->account : "");
		send_small(j->w, DF_AUTH_REPLY, &buf);
		explicit_bzero(j, sizeof(*j));
		free(j);
	}
}

/* ---- the preparing threads ---- */

/* Both copies are delivered unique (our Received: field): no content hash. */
static void prepare_copies(struct store *st, struct prep_job *j, bool compress)
{
	unsigned flags = STORE_PREP_UNIQUE | (compress ? 0 : STORE_PREP_NO_COMPRESS);
	if (j->want_local)
		j->result = store_prepare_as(st, j->data, j->size, j->parsed, j->parsed_size,
					     flags);
	if (j->want_queue)
		j->qresult = store_prepare_as(st, j->qdata, j->qsize, NULL, 0, flags);
}

static void *prep_thread(void *ctx)
{
	struct delivery *d = ctx;
	pthread_mutex_lock(&d->pmu);
	for (;;) {
		while (d->pjobs == NULL && !d->pstop)
			pthread_cond_wait(&d->pcv, &d->pmu);
		if (d->pjobs == NULL)
			break;
		struct prep_job *j = d->pjobs;
		d->pjobs = j->next;
		if (d->pjobs == NULL)
			d->pjobs_tail = &d->pjobs;
		bool compress = d->compress_backlog == 0 || d->n_pjobs <= d->compress_backlog;
		d->n_pjobs--;
		d->n_busy++;
		if (!compress)
			d->stored_raw++;
		pthread_mutex_unlock(&d->pmu);
		/* j is the thread's until done: nothing else reads the results */
		prepare_copies(d->store, j, compress);
		pthread_mutex_lock(&d->pmu);
		j->done = true;
		d->n_busy--;
		pthread_cond_broadcast(&d->pdone_cv);
		efd_signal(d->pefd);
	}
	pthread_mutex_unlock(&d->pmu);
	return NULL;
}

static void prep_queue(struct delivery *d, struct pending *p, const struct prep_job *job)
{
	struct prep_job *j = xmalloc(sizeof(*j));
	*j = *job;
	p->job = j;
	pthread_mutex_lock(&d->pmu);
	*d->pjobs_tail = j;
	d->pjobs_tail = &j->next;
	d->n_pjobs++;
	pthread_cond_signal(&d->pcv);
	pthread_mutex_unlock(&d->pmu);
}

/* No message queued for or being prepared by the threads. */
static bool prep_idle(struct delivery *d)
{
	pthread_mutex_lock(&d->pmu);
	bool idle = d->n_pjobs == 0 && d->n_busy == 0;
	pthread_mutex_unlock(&d->pmu);
	return idle;
}

static bool ready(const struct pending *p)
{
	return p->job == NULL || p->job->done;
}

/* Waits until some waiting message is ready to commit. */
static void prep_wait_any(struct delivery *d)
{
	pthread_mutex_lock(&d->pmu);
	for (;;) {
		bool any = false;
		for (size_t i = 0; i < d->n_batch && !any; i++)
			any = ready(&d->batch[i]);
		if (any || d->n_batch == 0)
			break;
		pthread_cond_wait(&d->pdone_cv, &d->pmu);
	}
	pthread_mutex_unlock(&d->pmu);
}

static void prep_done(void *ctx, unsigned revents)
{
	struct delivery *d = ctx;
	(void)revents;
	efd_drain(d->pefd);
	defer_schedule(d->commit);
}

/* ---- the compacting thread ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool deliveries_idle(struct delivery *d)
{
	return mono_ms() - atomic_load(&d->last_arrival_ms) >= COMPACT_IDLE_MS;
}

static uint64_t stored_raw(struct delivery *d)
{
	pthread_mutex_lock(&d->pmu);
	uint64_t n = d->stored_raw;
	pthread_mutex_unlock(&d->pmu);
	return n;
}

/* Compresses what was stored uncompressed, a step at a time, whenever no
 * message has arrived for a while; a message arriving stops the pass after
 * the current step. Runs once at start for what an earlier run left. */
static void *compact_thread(void *ctx)
{
	struct delivery *d = ctx;
	pthread_mutex_lock(&d->kmu);
	while (!d->kstop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&d->kcv, &d->kmu, &ts);
		uint64_t raw = stored_raw(d);
		/* a backlog is compacted even while mail keeps arriving */
		bool backlog = raw - (d->kseen == UINT64_MAX ? 0 : d->kseen) >= COMPACT_BACKLOG;
		if (d->kstop || raw == d->kseen || (!deliveries_idle(d) && !backlog) ||
		    mono_ms() < d->kpause_until_ms)
			continue;
		pthread_mutex_unlock(&d->kmu);
		size_t total = 0;
		bool more = true, failed = false;
		/* while mail keeps arriving, a few steps a second: ingest first */
		unsigned steps = 0;
		while (more && !failed &&
		       (deliveries_idle(d) || (backlog && steps < COMPACT_BUSY_STEPS))) {
			steps++;
			size_t n;
			const char *error;
			if (store_compact(d->store, COMPACT_STEP, &n, &more, &error) < 0) {
				log_err("event=store_error op=compact error=\"%s\"", error);
				failed = true;
			}
			total += n;
			pthread_mutex_lock(&d->kmu);
			if (d->kstop)
				more = false;
			pthread_mutex_unlock(&d->kmu);
		}
		if (total > 0)
			log_info("event=compacted chunks=%zu", total);
		pthread_mutex_lock(&d->kmu);
		if (!more && !failed)
			d->kseen = raw;
		if (failed) /* one error line a minute, not one a second */
			d->kpause_until_ms = mono_ms() + COMPACT_RETRY_MS;
	}
	pthread_mutex_unlock(&d->kmu);
	return NULL;
}

/* ---- requests ---- */

static void bad_frame(struct dworker *w)
{
	fatal("malformed frame from worker %u", w->idx);
}

static void handle_rcpt(struct dworker *w, struct frame_reader *r)
{
	uint64_t req = frame_get_u64(r);
	const char *addr = frame_get_str(r, ADDRESS_MAX_LEN);
	uint64_t size = frame_get_u64(r);
	if (!frame_reader_ok(r))
		bad_frame(w);
	enum store_rcpt_status st;
	const char *error;
	if (store_quota_check(w->d->store, addr, size, &st, &error) < 0) {
		log_err("event=store_error op=quota_check error=\"%s\"", error);
		st = RCPT_ERROR;
	}
	struct str buf = STR_INIT;
	frame_put_u64(&buf, req);
	frame_put_u32(&buf, (uint32_t)st);
	send_small(w, DF_RCPT_REPLY, &buf);
}

static void handle_auth(struct dworker *w, struct frame_reader *r)
{
	struct delivery *d = w->d;
	uint64_t req = frame_get_u64(r);
	const char *user = frame_get_str(r, 1024);
	const char *pass = frame_get_str(r, PASSWORD_MAX_LEN);
	if (!frame_reader_ok(r))
		bad_frame(w);
	struct auth_job *j = xcalloc(1, sizeof(*j));
	j->w = w;
	j->req = req;
	char norm[ADDRESS_MAX_LEN + 1];
	const char *why;
	if (address_normalize(user, norm, &why) == 0) {
		struct store_account a;
		const char *error;
		int ret = store_account_get(d->store, norm, &a, &error);
		if (ret < 0)
			log_err("event=store_error op=account_get error=\"%s\"", error);
		if (ret > 0 && a.password_hash[0] != '\0') {
			j->found = true;
			memcpy(j->hash, a.password_hash, sizeof(j->hash));
			memcpy(j->account, a.address, sizeof(j->account));
		}
		explicit_bzero(&a, sizeof(a));
	}
	/* Unknown users cost a verification too, so timing tells nothing. */
	if (!j->found)
		snprintf(j->hash, sizeof(j->hash), "%s", PASSWORD_DUMMY_HASH);
	snprintf(j->password, sizeof(j->password), "%s", pass);
	pthread_mutex_lock(&d->mu);
	j->next = d->jobs;
	d->jobs = j;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void handle_deliver(struct dworker *w, struct frame_reader *r)
{
	struct delivery *d = w->d;
	struct pending p;
	memset(&p, 0, sizeof(p));
	p.w = w;
	p.req = frame_get_u64(r);
	p.atomic = frame_get_u8(r) != 0;
	p.rp_len = frame_get_u32(r);
	size_t len;
	const void *data = frame_get_bytes(r, SIZE_MAX, &len);
	size_t plen;
	const void *parsed = frame_get_bytes(r, SIZE_MAX, &plen);
	uint32_t n = frame_get_u32(r);
	if (r->bad || n > DFRAME_RCPTS_MAX || p.rp_len > len)
		bad_frame(w);
	p.data = xmemdup(data, len);
	p.size = len;
	p.parsed = plen ? xmemdup(parsed, plen) : NULL;
	p.parsed_size = plen;
	p.n_rcpts = n;
	p.rcpts = xcalloc(n ? n : 1, sizeof(*p.rcpts));
	p.addrs = xcalloc(n ? n : 1, sizeof(*p.addrs));
	for (uint32_t i = 0; i < n; i++) {
		p.addrs[i] = xstrdup(frame_get_str(r, ADDRESS_MAX_LEN));
		p.rcpts[i].address = p.addrs[i];
		p.rcpts[i].special_use = frame_get_u32(r);
	}
	size_t qlen;
	const void *q = frame_get_bytes(r, STORE_QUEUE_RECORD_MAX, &qlen);
	if (!frame_reader_ok(r))
		bad_frame(w);
	p.queue_record = qlen ? xmemdup(q, qlen) : NULL;
	p.queue_record_len = qlen;
	atomic_store(&d->last_arrival_ms, mono_ms());
	struct prep_job job = {
		.data = p.data,
		.size = p.size,
		.parsed = p.parsed,
		.parsed_size = p.parsed_size,
		.qdata = p.data + p.rp_len,
		.qsize = p.size - p.rp_len,
		.want_local = n > 0,
		.want_queue = p.queue_record != NULL,
	};
	/* Nothing else waiting (a lone session): prepared here, which saves
	 * two thread hand-offs on the way to the commit. */
	if (job.want_local || job.want_queue) {
		if (!d->committing && d->n_batch == 0 && prep_idle(d)) {
			/* stored as it is: its 250 does not wait for compression,
			 * the compacting thread does it in the background */
			pthread_mutex_lock(&d->pmu);
			bool compress = d->compress_backlog == 0;
			if (!compress)
				d->stored_raw++;
			pthread_mutex_unlock(&d->pmu);
			prepare_copies(d->store, &job, compress);
			p.prepared = job.result;
			p.queue_prepared = job.qresult;
		} else {
			prep_queue(d, &p, &job);
		}
	}
	if (d->n_batch == d->cap_batch) {
		d->cap_batch = d->cap_batch ? d->cap_batch * 2 : 64;
		d->batch = xreallocarray(d->batch, d->cap_batch, sizeof(*d->batch));
	}
	d->batch[d->n_batch++] = p;
	defer_schedule(d->commit);
}

static void pending_free(struct pending *p)
{
	for (size_t i = 0; i < p->n_rcpts; i++)
		free(p->addrs[i]);
	free(p->addrs);
	free(p->rcpts);
	free(p->data);
	free(p->parsed);
	free(p->queue_record);
	store_prepared_free(&p->prepared);
	store_prepared_free(&p->queue_prepared);
	/* a job is taken (commit_start) before its message can be freed */
	free(p->job);
}

/* ---- the group commit ---- */

struct commit_ctx {
	struct pending *items;
	size_t n;
};

static enum store_rcpt_status fits(const struct store_account *a, uint64_t size)
{
	if (a->quota_bytes != 0 && size > a->quota_bytes)
		return RCPT_TOO_BIG;
	if (a->quota_bytes != 0 &&
	    (a->used_bytes >= a->quota_bytes || size > a->quota_bytes - a->used_bytes))
		return RCPT_OVER_QUOTA;
	if (a->quota_messages != 0 && a->used_messages >= a->quota_messages)
		return RCPT_OVER_QUOTA;
	return RCPT_OK;
}

/* SMTP has one reply for all recipients: every local recipient must take
 * the message, or none gets it (checked in the same transaction, so the
 * answer cannot change before the commit). */
static int precheck(struct store_txn *t, struct pending *p, bool *ok_r, const char **error_r)
{
	*ok_r = true;
	for (size_t i = 0; i < p->n_rcpts; i++) {
		struct store_account a;
		int ret = store_txn_account_get(t, p->rcpts[i].address, &a, error_r);
		if (ret < 0)
			return -1;
		p->rcpts[i].status = ret == 0 ? RCPT_NO_ACCOUNT : fits(&a, p->size);
		if (p->rcpts[i].status != RCPT_OK)
			*ok_r = false;
	}
	return 0;
}

static int commit_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct commit_ctx *c = ctx;
	for (size_t i = 0; i < c->n; i++) {
		struct pending *p = &c->items[i];
		/* reset: the callback may run again after the map grew */
		p->queued = p->queue_record ? DQ_FAILED : DQ_NONE;
		p->queue_id = 0;
		for (size_t j = 0; j < p->n_rcpts; j++) {
			p->rcpts[j].status = RCPT_ERROR;
			p->rcpts[j].uid = 0;
		}
		bool ok = true;
		if (p->atomic && precheck(t, p, &ok, error_r) < 0)
			return -1;
		if (!ok)
			continue; /* refused as a whole; statuses say why */
		if (p->n_rcpts > 0) {
			struct store_delivery del = {
				.data = p->data,
				.size = p->size,
				.parsed = p->parsed,
				.parsed_size = p->parsed_size,
				.prepared = p->prepared,
				.rcpts = p->rcpts,
				.n_rcpts = p->n_rcpts,
				.unique = true, /* our Received: names the session and time */
			};
			if (store_txn_deliver(t, &del, 1, error_r) < 0)
				return -1;
		}
		if (p->queue_record != NULL) {
			if (store_txn_queue_add_prepared(t, p->queue_record, p->queue_record_len,
							 p->queue_prepared, &p->queue_id,
							 error_r) < 0)
				return -1;
			p->queued = DQ_QUEUED;
		}
	}
	return 0;
}

static void *commit_thread(void *ctx)
{
	struct delivery *d = ctx;
	pthread_mutex_lock(&d->cmu);
	for (;;) {
		while (!d->cjob && !d->cstop)
			pthread_cond_wait(&d->ccv, &d->cmu);
		if (d->cstop)
			break;
		d->cjob = false;
		struct commit_ctx c = { d->inflight, d->n_inflight };
		pthread_mutex_unlock(&d->cmu);
		const char *error = NULL;
		int ret = store_write(d->store, commit_fn, &c, &error);
		pthread_mutex_lock(&d->cmu);
		d->cret = ret;
		d->cerror = error;
		d->cdone = true;
		pthread_cond_signal(&d->ccv);
		efd_signal(d->cefd);
	}
	pthread_mutex_unlock(&d->cmu);
	return NULL;
}

/* Hands up to batch_max waiting messages that are prepared to the commit
 * thread (none ready: a finished preparation calls again). */
static void commit_start(struct delivery *d)
{
	if (d->committing || d->n_batch == 0)
		return;
	size_t max = d->n_batch < d->batch_max ? d->n_batch : d->batch_max;
	if (max > d->cap_inflight) {
		d->cap_inflight = max;
		d->inflight = xreallocarray(d->inflight, max, sizeof(*d->inflight));
	}
	size_t n = 0, keep = 0;
	pthread_mutex_lock(&d->pmu);
	for (size_t i = 0; i < d->n_batch; i++) {
		struct pending *p = &d->batch[i];
		if (n < max && ready(p)) {
			if (p->job != NULL) {
				p->prepared = p->job->result;
				p->queue_prepared = p->job->qresult;
				free(p->job);
				p->job = NULL;
			}
			d->inflight[n++] = *p;
		} else {
			d->batch[keep++] = *p;
		}
	}
	pthread_mutex_unlock(&d->pmu);
	d->n_batch = keep;
	if (n == 0)
		return;
	d->n_inflight = n;
	d->committing = true;
	pthread_mutex_lock(&d->cmu);
	d->cdone = false;
	d->cjob = true;
	pthread_cond_signal(&d->ccv);
	pthread_mutex_unlock(&d->cmu);
}

/* The commit is done (durable or failed): the replies go out and the next
 * batch starts. */
static void commit_finish(struct delivery *d)
{
	size_t n = d->n_inflight;
	if (d->cret < 0) {
		log_err("event=store_error op=deliver messages=%zu error=\"%s\"", n,
			d->cerror ? d->cerror : "unknown");
		for (size_t i = 0; i < n; i++) {
			struct pending *p = &d->inflight[i];
			for (size_t j = 0; j < p->n_rcpts; j++)
				p->rcpts[j].status = RCPT_ERROR;
			p->queued = p->queue_record ? DQ_FAILED : DQ_NONE;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct pending *p = &d->inflight[i];
		struct str buf = STR_INIT;
		frame_put_u64(&buf, p->req);
		frame_put_u32(&buf, (uint32_t)p->n_rcpts);
		for (size_t j = 0; j < p->n_rcpts; j++)
			frame_put_u32(&buf, (uint32_t)p->rcpts[j].status);
		frame_put_u32(&buf, p->queued);
		frame_put_u64(&buf, p->queue_id);
		send_small(p->w, DF_DELIVER_REPLY, &buf);
		pending_free(p);
	}
	pthread_mutex_lock(&d->pmu);
	uint64_t raw = d->stored_raw;
	pthread_mutex_unlock(&d->pmu);
	log_debug("event=commit messages=%zu stored_uncompressed_total=%llu", n,
		  (unsigned long long)raw);
	d->n_inflight = 0;
	d->committing = false;
	commit_start(d);
}

static void commit_wait(struct delivery *d)
{
	if (!d->committing)
		return;
	pthread_mutex_lock(&d->cmu);
	while (!d->cdone)
		pthread_cond_wait(&d->ccv, &d->cmu);
	pthread_mutex_unlock(&d->cmu);
	commit_finish(d);
}

static void commit_done(void *ctx, unsigned revents)
{
	struct delivery *d = ctx;
	(void)revents;
	efd_drain(d->cefd);
	bool done;
	pthread_mutex_lock(&d->cmu);
	done = d->cdone;
	pthread_mutex_unlock(&d->cmu);
	if (d->committing && done)
		commit_finish(d);
}

/* Everything received is committed before this returns. */
static void commit_all(struct delivery *d)
{
	commit_wait(d);
	while (d->n_batch > 0) {
		prep_wait_any(d);
		commit_start(d);
		commit_wait(d);
	}
}

static void commit_batch(void *ctx)
{
	commit_start(ctx);
}

/* ---- channels ---- */

static void worker_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct dworker *w = ctx;
	struct frame_reader r;
	frame_reader_init(&r, data, len);
	switch (type) {
	case DF_RCPT:
		handle_rcpt(w, &r);
		break;
	case DF_AUTH:
		handle_auth(w, &r);
		break;
	case DF_DELIVER:
		handle_deliver(w, &r);
		break;
	default:
		bad_frame(w);
	}
}

static void worker_gone(void *ctx, const char *error)
{
	struct dworker *w = ctx;
	struct delivery *d = w->d;
	if (!d->stopping && strcmp(error, "peer closed") != 0)
		log_err("event=worker_channel_failed worker=%u error=\"%s\"", w->idx, error);
	/* Commit what it sent before its replies are dropped. */
	commit_all(d);
	frame_chan_free(&w->chan);
	if (--d->n_alive == 0)
		ioloop_stop(d->loop);
}

static void parent_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct delivery *d = ctx;
	struct reload rl;
	char *error = NULL;
	if (type != DF_RELOAD || reload_parse(data, len, &rl, &error) < 0)
		fatal("malformed frame from the parent");
	struct settings *set = rl.set;
	if (set == NULL) {
		log_err("event=reload_failed error=\"%s\"", error);
		free(error);
		return;
	}
	settings_free(&d->set);
	d->set = set;
	d->batch_max = settings_num(set, S_SMTPD_BATCH_MAX);
	pthread_mutex_lock(&d->pmu);
	d->compress_backlog = settings_num(set, S_SMTPD_COMPRESS_BACKLOG);
	pthread_mutex_unlock(&d->pmu);
	log_info("event=reloaded process=delivery");
}

static void parent_gone(void *ctx, const char *error)
{
	struct delivery *d = ctx;
	(void)error;
	frame_chan_free(&d->parent);
	/* The workers close their channels as they exit; then we stop. */
}

static void on_term(void *ctx, int signo)
{
	struct delivery *d = ctx;
	if (signo == SIGHUP)
		return; /* the parent sends DF_RELOAD */
	/* Keep serving the workers until they have finished their sessions
	 * and closed their channels. */
	d->stopping = true;
}

int delivery_main(const struct delivery_args *args)
{
	struct delivery d;
	memset(&d, 0, sizeof(d));
	d.loop = ioloop_create();
	char *text = settings_to_text(args->set);
	char *error = NULL;
	d.set = settings_from_text(text, &error);
	free(text);
	if (d.set == NULL)
		fatal("configuration: %s", error);
	d.batch_max = settings_num(d.set, S_SMTPD_BATCH_MAX);
	struct store_options o;
	store_options_init(&o, d.set, true);
	const char *serr;
	const char *dir = settings_str(d.set, S_GLOBAL_DATA_DIR);
	if (store_open(dir, &o, &d.store, &serr) < 0)
		fatal("global.data_dir: %s: %s", dir, serr);
	if (args->ready_fd >= 0) {
		if (write(args->ready_fd, "R", 1) != 1)
			fatal("cannot signal the parent: %s", strerror(errno));
		close(args->ready_fd);
	}
	d.commit = defer_new(d.loop, commit_batch, &d);
	d.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d.efd < 0)
		fatal("eventfd: %s", strerror(errno));
	d.eio = io_add(d.loop, d.efd, IO_READ, auth_done, &d);
	/* signals first: the thread inherits them blocked */
	const char *why;
	ioloop_signal_add(d.loop, SIGTERM, on_term, &d, &why);
	ioloop_signal_add(d.loop, SIGINT, on_term, &d, &why);
	ioloop_signal_add(d.loop, SIGHUP, on_term, &d, &why);
	pthread_mutex_init(&d.mu, NULL);
	pthread_cond_init(&d.cv, NULL);
	if (pthread_create(&d.thread, NULL, auth_thread, &d) != 0)
		fatal("cannot start the password thread");
	d.pefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d.pefd < 0)
		fatal("eventfd: %s", strerror(errno));
	d.pio = io_add(d.loop, d.pefd, IO_READ, prep_done, &d);
	pthread_mutex_init(&d.pmu, NULL);
	pthread_cond_init(&d.pcv, NULL);
	pthread_cond_init(&d.pdone_cv, NULL);
	d.pjobs_tail = &d.pjobs;
	d.compress_backlog = settings_num(d.set, S_SMTPD_COMPRESS_BACKLOG);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	d.n_pthreads = cpus < 1 ? 1 : cpus > PREP_THREADS_MAX ? PREP_THREADS_MAX : (size_t)cpus;
	for (size_t i = 0; i < d.n_pthreads; i++)
		if (pthread_create(&d.pthreads[i], NULL, prep_thread, &d) != 0)
			fatal("cannot start a preparing thread");
	pthread_mutex_init(&d.kmu, NULL);
	pthread_cond_init(&d.kcv, NULL);
	d.kseen = UINT64_MAX; /* a first pass at start */
	if (pthread_create(&d.kthread, NULL, compact_thread, &d) != 0)
		fatal("cannot start the compacting thread");
	d.cefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d.cefd < 0)
		fatal("eventfd: %s", strerror(errno));
	d.cio = io_add(d.loop, d.cefd, IO_READ, commit_done, &d);
	pthread_mutex_init(&d.cmu, NULL);
	pthread_cond_init(&d.ccv, NULL);
	if (pthread_create(&d.cthread, NULL, commit_thread, &d) != 0)
		fatal("cannot start the commit thread");
	/* Each DF_DELIVER may carry the message, its parse and the queue
	 * copy's record. */
	uint64_t max_msg = settings_num(d.set, S_SMTPD_MAX_MESSAGE_SIZE);
	size_t max_frame = (size_t)(max_msg * 3 + 16 * 1024 * 1024);
	d.n_workers = args->n_workers;
	d.n_alive = args->n_workers;
	d.workers = xcalloc(d.n_workers, sizeof(*d.workers));
	for (size_t i = 0; i < d.n_workers; i++) {
		d.workers[i].d = &d;
		d.workers[i].idx = (unsigned)i;
		d.workers[i].chan = frame_chan_new(d.loop, args->worker_fds[i], max_frame,
						   worker_frame, worker_gone, &d.workers[i]);
	}
	if (args->parent_fd >= 0)
		d.parent = frame_chan_new(d.loop, args->parent_fd, RELOAD_FRAME_MAX,
					  parent_frame, parent_gone, &d);
	log_info("event=started process=delivery store=%s", dir);
	if (d.n_workers > 0)
		ioloop_run(d.loop);
	commit_all(&d);
	pthread_mutex_lock(&d.cmu);
	d.cstop = true;
	pthread_cond_signal(&d.ccv);
	pthread_mutex_unlock(&d.cmu);
	pthread_join(d.cthread, NULL);
	free(d.inflight);
	io_remove(&d.cio);
	close(d.cefd);
	pthread_mutex_lock(&d.kmu);
	d.kstop = true;
	pthread_cond_signal(&d.kcv);
	pthread_mutex_unlock(&d.kmu);
	pthread_join(d.kthread, NULL);
	pthread_mutex_lock(&d.pmu);
	d.pstop = true;
	pthread_cond_broadcast(&d.pcv);
	pthread_mutex_unlock(&d.pmu);
	for (size_t i = 0; i < d.n_pthreads; i++)
		pthread_join(d.pthreads[i], NULL);
	io_remove(&d.pio);
	close(d.pefd);
	pthread_mutex_lock(&d.mu);
	d.thread_stop = true;
	pthread_cond_signal(&d.cv);
	pthread_mutex_unlock(&d.mu);
	pthread_join(d.thread, NULL);
	for (size_t i = 0; i < d.n_workers; i++)
		frame_chan_free(&d.workers[i].chan);
	frame_chan_free(&d.parent);
	free(d.workers);
	free(d.batch);
	io_remove(&d.eio);
	close(d.efd);
	defer_free(&d.commit);
	store_close(&d.store);
	settings_free(&d.set);
	ioloop_destroy(&d.loop);
	log_info("event=stopped process=delivery stored_uncompressed=%llu",
		 (unsigned long long)d.stored_raw);
	return 0;
}
