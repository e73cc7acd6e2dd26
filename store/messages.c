/* Messages by (mailbox, UID), the change log, and the content-addressed,
 * reference-counted message bytes (blobs). */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"

#include <stdlib.h>
#include <strings.h>

#define MESSAGE_REC_VERSION 1

/* ---- message records ---- */

void message_key(uint8_t key[8], uint32_t mailbox_id, uint32_t uid)
{
	put_be32(key, mailbox_id);
	put_be32(key + 4, uid);
}

/* Fixed layout: version, 3 spare bytes, flags, keywords, modseq, internal
 * date, save date, size, blob id, append modseq. */
void message_encode(const struct store_message *m, uint8_t out[MESSAGE_REC_LEN])
{
	memset(out, 0, MESSAGE_REC_LEN);
	out[0] = MESSAGE_REC_VERSION;
	put_le32(out + 4, m->flags);
	put_le64(out + 8, m->keywords);
	put_le64(out + 16, m->modseq);
	put_le64(out + 24, (uint64_t)m->internal_date);
	put_le64(out + 32, (uint64_t)m->save_date);
	put_le64(out + 40, m->size);
	memcpy(out + 48, m->blob, STORE_BLOB_ID_LEN);
	put_le64(out + 80, m->append_modseq);
}

int message_decode(const void *data, size_t len, uint32_t uid, struct store_message *m)
{
	const uint8_t *p = data;
	if (len != MESSAGE_REC_LEN || p[0] != MESSAGE_REC_VERSION)
		return -1;
	m->uid = uid;
	m->flags = get_le32(p + 4);
	m->keywords = get_le64(p + 8);
	m->modseq = get_le64(p + 16);
	m->internal_date = (int64_t)get_le64(p + 24);
	m->save_date = (int64_t)get_le64(p + 32);
	m->size = get_le64(p + 40);
	memcpy(m->blob, p + 48, STORE_BLOB_ID_LEN);
	m->append_modseq = get_le64(p + 80);
	return 0;
}

int message_save(struct store_txn *t, uint32_t mailbox_id, const struct store_message *m,
		 const char **error_r)
{
	uint8_t key[8], rec[MESSAGE_REC_LEN];
	message_key(key, mailbox_id, m->uid);
	message_encode(m, rec);
	return db_put(t, DBI_MESSAGES, key, 8, rec, MESSAGE_REC_LEN, 0, error_r);
}

int change_log(struct store_txn *t, uint32_t mailbox_id, uint64_t modseq, uint32_t uid,
	       enum store_change_kind kind, const char **error_r)
{
	uint8_t key[16], val = (uint8_t)kind;
	put_be32(key, mailbox_id);
	put_be64(key + 4, modseq);
	put_be32(key + 12, uid);
	return db_put(t, DBI_CHANGES, key, 16, &val, 1, 0, error_r);
}

int change_unlog_flags(struct store_txn *t, uint32_t mailbox_id, const struct store_message *msg,
		       const char **error_r)
{
	if (msg->modseq == msg->append_modseq)
		return 0; /* its last change is its arrival, which is not logged */
	uint8_t key[16];
	put_be32(key, mailbox_id);
	put_be64(key + 4, msg->modseq);
	put_be32(key + 12, msg->uid);
	return db_del(t, DBI_CHANGES, key, 16, error_r) < 0 ? -1 : 0;
}

int store_txn_message_get(struct store_txn *t, uint32_t mailbox_id, uint32_t uid,
			  struct store_message *msg_r, const char **error_r)
{
	uint8_t key[8];
	MDB_val v;
	if (uid == MAILBOX_REC_UID)
		return 0; /* the mailbox's record, not a message */
	message_key(key, mailbox_id, uid);
	int ret = db_get(t, DBI_MESSAGES, key, 8, &v, error_r);
	if (ret <= 0)
		return ret;
	if (message_decode(v.mv_data, v.mv_size, uid, msg_r) < 0) {
		*error_r = "corrupt message record";
		return -1;
	}
	return 1;
}

int store_txn_message_foreach(struct store_txn *t, uint32_t mailbox_id, uint32_t uid_first,
			      uint32_t uid_last,
			      int (*fn)(const struct store_message *msg, void *ctx), void *ctx,
			      const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_MESSAGES], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	uint8_t key[8];
	message_key(key, mailbox_id, uid_first);
	MDB_val k = { 8, key }, v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || get_be32(k.mv_data) != mailbox_id)
			break;
		uint32_t uid = get_be32((uint8_t *)k.mv_data + 4);
		if (uid > uid_last || uid == MAILBOX_REC_UID)
			break;
		struct store_message msg;
		if (message_decode(v.mv_data, v.mv_size, uid, &msg) < 0) {
			*error_r = "corrupt message record";
			ret = -1;
			break;
		}
		if (fn(&msg, ctx) != 0)
			break;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	return ret;
}

struct arrival {
	uint64_t modseq;
	uint32_t uid;
};

/* Messages that arrived after since: a suffix of the UIDs, since appends
 * take increasing UIDs and modseqs. Scans backwards from the last UID. */
static int arrivals_since(struct store_txn *t, uint32_t mailbox_id, uint64_t since,
			  struct arrival **list_r, size_t *n_r, const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_MESSAGES], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	uint8_t key[8];
	size_t n = 0, cap = 0;
	struct arrival *list = NULL;
	/* position after the mailbox's last message, then walk back */
	message_key(key, mailbox_id + 1, 0);
	MDB_val k = { 8, key }, v;
	rc = mailbox_id == UINT32_MAX ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	rc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
	int ret = 0;
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
		if (k.mv_size != 8 || get_be32(k.mv_data) != mailbox_id)
			break;
		if (get_be32((uint8_t *)k.mv_data + 4) == MAILBOX_REC_UID)
			continue; /* the mailbox's record */
		struct store_message msg;
		if (message_decode(v.mv_data, v.mv_size, get_be32((uint8_t *)k.mv_data + 4), &msg) <
		    0) {
			*error_r = "corrupt message record";
			ret = -1;
			break;
		}
		if (msg.append_modseq <= since)
			break;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xreallocarray(list, cap, sizeof(*list));
		}
		list[n++] = (struct arrival){ msg.append_modseq, msg.uid };
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	if (ret < 0) {
		free(list);
		return -1;
	}
	/* ascending order */
	for (size_t i = 0; i < n / 2; i++) {
		struct arrival tmp = list[i];
		list[i] = list[n - 1 - i];
		list[n - 1 - i] = tmp;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

int store_txn_changes(struct store_txn *t, uint32_t mailbox_id, uint64_t since,
		      int (*fn)(uint64_t modseq, uint32_t uid, enum store_change_kind kind,
				void *ctx),
		      void *ctx, const char **error_r)
{
	struct arrival *arr = NULL;
	size_t n_arr = 0, a = 0;
	if (arrivals_since(t, mailbox_id, since, &arr, &n_arr, error_r) < 0)
		return -1;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_CHANGES], &cur);
	if (rc != 0) {
		free(arr);
		return db_fail(t, rc, error_r);
	}
	uint8_t key[16];
	put_be32(key, mailbox_id);
	put_be64(key + 4, since == UINT64_MAX ? since : since + 1);
	put_be32(key + 12, 0);
	MDB_val k = { 16, key }, v;
	int ret = 0;
	bool stop = false;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && !stop;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;
		if (k.mv_size != 16 || get_be32(kp) != mailbox_id)
			break;
		if (v.mv_size != 1) {
			*error_r = "corrupt change record";
			ret = -1;
			break;
		}
		uint64_t modseq = get_be64(kp + 4);
		/* merge the arrivals in modseq order */
		for (; a < n_arr && arr[a].modseq < modseq && !stop; a++)
			stop = fn(arr[a].modseq, arr[a].uid, CHANGE_NEW, ctx) != 0;
		if (!stop)
			stop = fn(modseq, get_be32(kp + 12),
				  (enum store_change_kind) * (uint8_t *)v.mv_data, ctx) != 0;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	for (; ret == 0 && a < n_arr && !stop; a++)
		stop = fn(arr[a].modseq, arr[a].uid, CHANGE_NEW, ctx) != 0;
	free(arr);
	return ret;
}

/* ---- flags, expunge, copy ---- */

static struct store_mailbox *mailbox_must(struct store_txn *t, uint32_t id, const char **error_r)
{
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = mailbox_load(t, id, m, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = STORE_ERR_NO_MAILBOX;
		free(m);
		return NULL;
	}
	return m;
}

int store_txn_message_flags(struct store_txn *t, uint32_t mailbox_id, uint32_t uid,
			    enum store_flag_mode mode, uint32_t flags, uint64_t keywords,
			    uint64_t unchangedsince, struct store_message *msg_r,
			    const char **error_r)
{
	int ret = store_txn_message_get(t, mailbox_id, uid, msg_r, error_r);
	if (ret < 0)
		return -1;
	if (ret == 0) {
		memset(msg_r, 0, sizeof(*msg_r));
		return 0;
	}
	if (unchangedsince != STORE_NO_UNCHANGEDSINCE && msg_r->modseq > unchangedsince)
		return 1;
	flags &= MSG_SYSTEM_FLAGS;
	uint32_t nf = msg_r->flags;
	uint64_t nk = msg_r->keywords;
	switch (mode) {
	case FLAGS_SET:
		nf = flags;
		nk = keywords;
		break;
	case FLAGS_ADD:
		nf |= flags;
		nk |= keywords;
		break;
	case FLAGS_REMOVE:
		nf &= ~flags;
		nk &= ~keywords;
		break;
	}
	if (nf == msg_r->flags && nk == msg_r->keywords)
		return 0;
	struct store_mailbox *m = mailbox_must(t, mailbox_id, error_r);
	if (m == NULL)
		return -1;
	if ((msg_r->flags ^ nf) & MSG_SEEN)
		m->unseen += (nf & MSG_SEEN) ? (uint32_t)-1 : 1;
	if ((msg_r->flags ^ nf) & MSG_DELETED)
		m->deleted += (nf & MSG_DELETED) ? 1 : (uint32_t)-1;
	/* the message's previous change is superseded by this one */
	ret = change_unlog_flags(t, mailbox_id, msg_r, error_r);
	msg_r->flags = nf;
	msg_r->keywords = nk;
	msg_r->modseq = ++m->highestmodseq;
	if (ret == 0)
		ret = message_save(t, mailbox_id, msg_r, error_r);
	if (ret == 0)
		ret = change_log(t, mailbox_id, msg_r->modseq, uid, CHANGE_FLAGS, error_r);
	if (ret == 0)
		ret = mailbox_save(t, m, error_r);
	free(m);
	return ret;
}

int store_txn_expunge(struct store_txn *t, uint32_t mailbox_id, const uint32_t *uids, size_t n,
		      const char **error_r)
{
	struct store_mailbox *m = mailbox_must(t, mailbox_id, error_r);
	if (m == NULL)
		return -1;
	uint64_t bytes = 0, count = 0;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct store_message msg;
		int r = store_txn_message_get(t, mailbox_id, uids[i], &msg, error_r);
		if (r < 0)
			ret = -1;
		else if (r == 1) {
			ret = mailbox_remove(t, m, &msg, error_r);
			bytes += msg.size;
			count++;
		}
	}
	if (ret == 0 && count > 0)
		ret = usage_change(t, m->account_id, -(int64_t)bytes, -(int64_t)count, error_r);
	free(m);
	return ret;
}

/* The keyword bits of src translated into dst's keyword table. */
static int remap_keywords(const struct store_mailbox *src,
			  struct store_mailbox *dst, uint64_t kw, uint64_t *out_r,
			  const char **error_r)
{
	*out_r = 0;
	if (src->id == dst->id) {
		*out_r = kw;
		return 0;
	}
	for (unsigned i = 0; i < src->n_keywords; i++) {
		if (!(kw & (1ULL << i)))
			continue;
		int idx = -1;
		for (unsigned j = 0; j < dst->n_keywords; j++)
			if (strcasecmp(dst->keywords[j], src->keywords[i]) == 0)
				idx = (int)j;
		if (idx < 0) {
			if (dst->n_keywords >= STORE_KEYWORDS_MAX) {
				*error_r = "too many keywords";
				return -1;
			}
			idx = (int)dst->n_keywords++;
			strcpy(dst->keywords[idx], src->keywords[i]);
		}
		*out_r |= 1ULL << idx;
	}
	return 0;
}

struct uid_index {
	uint32_t uid;
	size_t index;
};

static int by_uid(const void *a, const void *b)
{
	const struct uid_index *x = a, *y = b;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

int store_txn_copy(struct store_txn *t, uint32_t src_mailbox_id, const uint32_t *uids, size_t n,
		   uint32_t dst_mailbox_id, bool move, uint32_t *new_uids_r, const char **error_r)
{
	struct store_mailbox *src = mailbox_must(t, src_mailbox_id, error_r);
	if (src == NULL)
		return -1;
	struct store_mailbox *dst = mailbox_must(t, dst_mailbox_id, error_r);
	struct store_message *msgs = xcalloc(n ? n : 1, sizeof(*msgs));
	int ret = dst == NULL ? -1 : 0;
	uint64_t bytes = 0, count = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		int r = store_txn_message_get(t, src_mailbox_id, uids[i], &msgs[i], error_r);
		if (r < 0)
			ret = -1;
		else if (r == 0)
			msgs[i].uid = 0;
		else {
			bytes += msgs[i].size;
			count++;
		}
	}
	/* A UID given twice is copied once: the later ones get no new UID. */
	if (ret == 0 && n > 1) {
		struct uid_index *order = xcalloc(n, sizeof(*order));
		for (size_t i = 0; i < n; i++)
			order[i] = (struct uid_index){ uids[i], i };
		qsort(order, n, sizeof(*order), by_uid);
		for (size_t i = 1; i < n; i++) {
			struct store_message *dup = &msgs[order[i].index];
			if (order[i].uid == order[i - 1].uid && dup->uid != 0) {
				bytes -= dup->size;
				count--;
				dup->uid = 0;
			}
		}
		free(order);
	}
	bool same_account = dst != NULL && src->account_id == dst->account_id;
	/* Quota first, so an over-quota copy changes nothing. A move inside one
	 * account does not change its usage. */
	if (ret == 0 && !(move && same_account)) {
		struct store_account a;
		int r = account_load(t, dst->account_id, &a, error_r);
		if (r <= 0) {
			if (r == 0)
				*error_r = STORE_ERR_NO_ACCOUNT;
			ret = -1;
		} else if ((a.quota_bytes && a.used_bytes + bytes > a.quota_bytes) ||
			   (a.quota_messages && a.used_messages + count > a.quota_messages)) {
			*error_r = STORE_ERR_OVER_QUOTA;
			ret = -1;
		}
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		new_uids_r[i] = 0;
		if (msgs[i].uid == 0)
			continue;
		uint64_t kw;
		if (remap_keywords(src, dst, msgs[i].keywords, &kw, error_r) < 0 ||
		    blob_addref(t, msgs[i].blob, error_r) < 0 ||
		    mailbox_append(t, dst, msgs[i].flags, kw, msgs[i].internal_date, msgs[i].size,
				   msgs[i].blob, &new_uids_r[i], error_r) < 0) {
			ret = -1;
			break;
		}
		if (move) {
			/* dst and src may be the same mailbox record: reload src. */
			if (src->id == dst->id)
				*src = *dst;
			if (mailbox_remove(t, src, &msgs[i], error_r) < 0)
				ret = -1;
			if (src->id == dst->id)
				*dst = *src;
		}
	}
	if (ret == 0 && count > 0 && !(move && same_account)) {
		ret = usage_change(t, dst->account_id, (int64_t)bytes, (int64_t)count, error_r);
		if (ret == 0 && move)
			ret = usage_change(t, src->account_id, -(int64_t)bytes, -(int64_t)count,
					   error_r);
	}
	free(msgs);
	free(src);
	free(dst);
	return ret;
}
