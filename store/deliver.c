/* Delivery (SMTP, LMTP, APPEND), quota checks and quota warnings. */
#include "config.h"
#include "store-private.h"
#include "str.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- quota warnings ---- */

static void human_size(char *buf, size_t size, uint64_t bytes)
{
	if (bytes >= (1ULL << 30))
		snprintf(buf, size, "%.2f GB", (double)bytes / (double)(1ULL << 30));
	else
		snprintf(buf, size, "%.1f MB", (double)bytes / (double)(1ULL << 20));
}

/* The notice, in Vietnamese and English. Each is unique (date, Message-ID),
 * so its bytes are never shared. */
static void warning_message(struct str *out, const struct store_account *a, unsigned percent)
{
	char date[64], used[32], limit[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	human_size(used, sizeof(used), a->used_bytes);
	human_size(limit, sizeof(limit), a->quota_bytes);
	const char *domain = address_domain(a->address);
	static unsigned long seq;
	str_printf(out,
		   "Date: %s\r\n"
		   "From: =?UTF-8?B?UXXhuqNuIHRy4buLIHRoxrAgxJFp4buHbiB04butIC8=?= Postmaster"
		   " <postmaster@%s>\r\n"
		   "To: <%s>\r\n"
		   "Subject: =?UTF-8?B?SOG7mXAgdGjGsCBz4bqvcCDEkeG6p3kgLw==?= Mailbox almost"
		   " full (%u%%)\r\n"
		   "Message-ID: <quota.%ld.%lu.%u@%s>\r\n"
		   "Auto-Submitted: auto-generated\r\n"
		   "MIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: 8bit\r\n"
		   "\r\n",
		   date, domain, a->address, percent, (long)now, ++seq, a->id, domain);
	str_printf(out,
		   "Hộp thư %s đã dùng %u%% dung lượng cho phép (%s trên %s).\r\n"
		   "Khi hộp thư đầy, thư gửi đến sẽ bị từ chối. Xin hãy xoá bớt thư cũ,\r\n"
		   "dọn thư mục Thùng rác (Trash) hoặc liên hệ bộ phận CNTT.\r\n"
		   "\r\n"
		   "The mailbox %s has used %u%% of its quota (%s of %s).\r\n"
		   "When it is full, incoming mail will be refused. Please delete old\r\n"
		   "mail, empty the Trash folder, or contact IT support.\r\n",
		   a->address, percent, used, limit, a->address, percent, used, limit);
}

/* Puts the notice into the INBOX and counts it in *a (saved by the caller).
 * The notice is exempt from the limit: it is small and must arrive. */
static int insert_warning(struct store_txn *t, struct store_account *a, unsigned percent,
			  const char **error_r)
{
	struct store_mailbox *inbox = xmalloc(sizeof(*inbox));
	int ret = store_txn_mailbox_get(t, a->id, "INBOX", inbox, error_r);
	if (ret <= 0) {
		free(inbox);
		if (ret == 0)
			*error_r = STORE_ERR_NO_MAILBOX;
		return -1;
	}
	struct str msg = STR_INIT;
	warning_message(&msg, a, percent);
	uint8_t id[STORE_BLOB_ID_LEN];
	uint32_t uid;
	ret = blob_ref(t, msg.s, msg.len, NULL, 0, 1, true, id, error_r);
	if (ret == 0)
		ret = mailbox_append(t, inbox, 0, 0, (int64_t)time(NULL), msg.len, id, &uid, error_r);
	if (ret == 0) {
		a->used_bytes += msg.len;
		a->used_messages++;
	}
	str_free(&msg);
	free(inbox);
	return ret;
}

static unsigned warn_level_of(const struct store *s, uint64_t used, uint64_t quota)
{
	unsigned level = 0;
	if (quota == 0)
		return 0;
	for (unsigned i = 0; i < s->n_warn_percents; i++)
		if (used * 100 >= (uint64_t)s->warn_percents[i] * quota)
			level = i + 1;
	return level;
}

/* usage_change() on an account record already loaded in this transaction. */
static int usage_apply(struct store_txn *t, struct store_account *ap, int64_t dbytes,
		       int64_t dmessages, const char **error_r)
{
	struct store_account a = *ap;
	if ((dbytes < 0 && (uint64_t)-dbytes > a.used_bytes) ||
	    (dmessages < 0 && (uint64_t)-dmessages > a.used_messages)) {
		*error_r = "usage would go below zero (run congvu-quota recalc)";
		return -1;
	}
	a.used_bytes += (uint64_t)dbytes;
	a.used_messages += (uint64_t)dmessages;
	unsigned level = warn_level_of(t->store, a.used_bytes, a.quota_bytes);
	if (level > a.warn_level) {
		/* One notice per crossing, naming the highest threshold crossed. */
		a.warn_level = level;
		if (insert_warning(t, &a, t->store->warn_percents[level - 1], error_r) < 0)
			return -1;
	} else if (level < a.warn_level) {
		/* Dropped below: the threshold is re-armed. */
		a.warn_level = level;
	}
	*ap = a;
	return account_save(t, &a, error_r);
}

int usage_change(struct store_txn *t, uint32_t account_id, int64_t dbytes, int64_t dmessages,
		 const char **error_r)
{
	struct store_account a;
	int ret = account_load(t, account_id, &a, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = STORE_ERR_NO_ACCOUNT;
		return -1;
	}
	return usage_apply(t, &a, dbytes, dmessages, error_r);
}

/* ---- quota ---- */

static enum store_rcpt_status quota_status(const struct store_account *a, uint64_t size)
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

int store_quota_check(struct store *s, const char *address, uint64_t size,
		      enum store_rcpt_status *status_r, const char **error_r)
{
	struct store_account a;
	int ret = store_account_get(s, address, &a, error_r);
	if (ret < 0)
		return -1;
	*status_r = ret == 0 ? RCPT_NO_ACCOUNT : quota_status(&a, size);
	return 0;
}

/* ---- delivery ---- */

static int rcpt_keywords(struct store_txn *t, uint32_t mailbox_id, const char *const *keywords,
			 uint64_t *mask_r, const char **error_r)
{
	*mask_r = 0;
	for (size_t i = 0; keywords != NULL && keywords[i] != NULL; i++) {
		int idx = store_txn_keyword_index(t, mailbox_id, keywords[i], true, error_r);
		if (idx < 0)
			return -1;
		*mask_r |= 1ULL << idx;
	}
	return 0;
}

/* Finds the target mailbox of r in account a: 1 found, 0 not, -1 error. */
static int rcpt_mailbox(struct store_txn *t, const struct store_rcpt *r,
			const struct store_account *a, struct store_mailbox *m,
			const char **error_r)
{
	int ret;
	if (r->mailbox_id != 0) {
		ret = mailbox_load(t, r->mailbox_id, m, error_r);
		return ret == 1 && m->account_id != a->id ? 0 : ret;
	}
	if (r->mailbox_name != NULL)
		return store_txn_mailbox_get(t, a->id, r->mailbox_name, m, error_r);
	if (r->special_use != 0) {
		ret = store_txn_mailbox_by_special(t, a->id, r->special_use, m, error_r);
		if (ret != 0)
			return ret;
	}
	return store_txn_mailbox_get(t, a->id, "INBOX", m, error_r);
}

static int deliver_one(struct store_txn *t, struct store_delivery *d,
		       const struct blob_prep *prep, struct store_mailbox *m, const char **error_r)
{
	bool stored = false;
	uint8_t id[STORE_BLOB_ID_LEN];
	int64_t idate = d->internal_date ? d->internal_date : (int64_t)time(NULL);
	for (size_t i = 0; i < d->n_rcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		struct store_account a;
		r->uid = 0;
		r->uidvalidity = 0;
		r->mailbox_id_out = 0;
		r->account_id = 0;
		int ret = store_txn_account_get(t, r->address, &a, error_r);
		if (ret < 0)
			return -1;
		if (ret == 0) {
			r->status = RCPT_NO_ACCOUNT;
			continue;
		}
		r->account_id = a.id;
		r->status = quota_status(&a, d->size);
		if (r->status != RCPT_OK)
			continue;
		ret = rcpt_mailbox(t, r, &a, m, error_r);
		if (ret < 0)
			return -1;
		if (ret == 0) {
			r->status = RCPT_NO_MAILBOX;
			continue;
		}
		uint64_t kw = 0;
		if (r->keywords != NULL) {
			if (rcpt_keywords(t, m->id, r->keywords, &kw, error_r) < 0)
				return -1;
			/* Adding keywords changed the mailbox record: reload it. */
			if (mailbox_load(t, m->id, m, error_r) <= 0)
				return -1;
		}
		ret = stored ? blob_addref(t, id, error_r)
			     : blob_ref_prepared(t, prep, 1, d->unique, id, error_r);
		if (ret < 0)
			return -1;
		stored = true;
		if (mailbox_append(t, m, r->flags, kw, idate, d->size, id, &r->uid, error_r) <
			    0 ||
		    usage_apply(t, &a, (int64_t)d->size, 1, error_r) < 0)
			return -1;
		r->mailbox_id_out = m->id;
		r->uidvalidity = m->uidvalidity;
	}
	return 0;
}

struct deliver_ctx {
	struct store_delivery *d;
	size_t n;
	struct blob_prep *preps;
};

static int deliver_all(struct store_txn *t, struct store_delivery *d, size_t n,
		       const struct blob_prep *preps, const char **error_r)
{
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = deliver_one(t, &d[i], &preps[i], m, error_r);
	free(m);
	return ret;
}

static int deliver_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct deliver_ctx *c = ctx;
	return deliver_all(t, c->d, c->n, c->preps, error_r);
}

static void fail_all(struct store_delivery *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d[i].n_rcpts; j++) {
			d[i].rcpts[j].status = RCPT_ERROR;
			d[i].rcpts[j].uid = 0;
		}
}

static struct blob_prep *prepare_all(const struct store *s, const struct store_delivery *d,
				     size_t n)
{
	struct blob_prep *preps = xcalloc(n ? n : 1, sizeof(*preps));
	for (size_t i = 0; i < n; i++) {
		if (d[i].prepared != NULL) {
			preps[i] = d[i].prepared->blob;
			preps[i].borrowed = true;
		} else {
			blob_prepare(&preps[i], d[i].data, d[i].size, d[i].parsed, d[i].parsed_size,
				     s->compress, !d[i].unique);
		}
	}
	return preps;
}

static void free_all(struct blob_prep *preps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!preps[i].borrowed)
			blob_prep_free(&preps[i]);
	free(preps);
}

int store_txn_deliver(struct store_txn *t, struct store_delivery *d, size_t n,
		      const char **error_r)
{
	struct blob_prep *preps = prepare_all(t->store, d, n);
	int ret = deliver_all(t, d, n, preps, error_r);
	free_all(preps, n);
	return ret;
}

int store_deliver(struct store *s, struct store_delivery *d, size_t n, const char **error_r)
{
	/* Hash, cut and compress outside the write transaction, which other
	 * processes wait on. */
	struct deliver_ctx c = { d, n, prepare_all(s, d, n) };
	int ret = store_write(s, deliver_fn, &c, error_r);
	free_all(c.preps, n);
	if (ret < 0)
		fail_all(d, n);
	return ret;
}
