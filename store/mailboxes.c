/* Mailboxes: (account, name) -> id, id -> record with UIDVALIDITY, UIDNEXT,
 * HIGHESTMODSEQ, counts, special-use, subscription and the keyword table. */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"

#include <stdlib.h>
#include <strings.h>
#include <time.h>

#define MAILBOX_REC_VERSION 1

/* key = be32 account . name; returns its length. */
static size_t name_key(uint8_t *key, uint32_t account_id, const char *name)
{
	size_t n = strlen(name);
	put_be32(key, account_id);
	memcpy(key + 4, name, n);
	return 4 + n;
}

/* "inbox" in any case is INBOX (RFC 3501 5.1). */
static const char *canonical_name(const char *name)
{
	return strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > STORE_MAILBOX_NAME_MAX || name[0] == STORE_MAILBOX_SEP ||
	    name[n - 1] == STORE_MAILBOX_SEP)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == STORE_MAILBOX_SEP && name[i + 1] == STORE_MAILBOX_SEP)
			return false;
	}
	return true;
}

int mailbox_load(struct store_txn *t, uint32_t id, struct store_mailbox *m, const char **error_r)
{
	uint8_t key[8];
	MDB_val v;
	message_key(key, id, MAILBOX_REC_UID);
	int ret = db_get(t, DBI_MESSAGES, key, 8, &v, error_r);
	if (ret <= 0)
		return ret;
	struct rec_reader r = { v.mv_data, v.mv_size, false };
	if (rr_u8(&r) != MAILBOX_REC_VERSION) {
		*error_r = "corrupt mailbox record (version)";
		return -1;
	}
	m->id = rr_u32(&r);
	m->account_id = rr_u32(&r);
	rr_str(&r, m->name, sizeof(m->name));
	m->uidvalidity = rr_u32(&r);
	m->uidnext = rr_u32(&r);
	m->highestmodseq = rr_u64(&r);
	m->messages = rr_u32(&r);
	m->unseen = rr_u32(&r);
	m->deleted = rr_u32(&r);
	m->bytes = rr_u64(&r);
	m->special_use = rr_u32(&r);
	m->subscribed = rr_u8(&r) != 0;
	m->n_keywords = rr_u8(&r);
	if (m->n_keywords > STORE_KEYWORDS_MAX)
		r.bad = true;
	for (unsigned i = 0; i < m->n_keywords && !r.bad; i++)
		rr_str(&r, m->keywords[i], sizeof(m->keywords[i]));
	if (r.bad || m->id != id) {
		*error_r = "corrupt mailbox record";
		return -1;
	}
	return 1;
}

/* mailbox_load, where a missing mailbox is an error (STORE_ERR_NO_MAILBOX):
 * 1 loaded, -1 otherwise. */
static int mailbox_must(struct store_txn *t, uint32_t id, struct store_mailbox *m,
			const char **error_r)
{
	int ret = mailbox_load(t, id, m, error_r);
	if (ret == 0) {
		*error_r = STORE_ERR_NO_MAILBOX;
		ret = -1;
	}
	return ret;
}

int mailbox_save(struct store_txn *t, const struct store_mailbox *m, const char **error_r)
{
	struct rec_writer w = { 0 };
	rw_u8(&w, MAILBOX_REC_VERSION);
	rw_u32(&w, m->id);
	rw_u32(&w, m->account_id);
	rw_str(&w, m->name);
	rw_u32(&w, m->uidvalidity);
	rw_u32(&w, m->uidnext);
	rw_u64(&w, m->highestmodseq);
	rw_u32(&w, m->messages);
	rw_u32(&w, m->unseen);
	rw_u32(&w, m->deleted);
	rw_u64(&w, m->bytes);
	rw_u32(&w, m->special_use);
	rw_u8(&w, m->subscribed);
	rw_u8(&w, (uint8_t)m->n_keywords);
	for (unsigned i = 0; i < m->n_keywords; i++)
		rw_str(&w, m->keywords[i]);
	uint8_t key[8];
	message_key(key, m->id, MAILBOX_REC_UID);
	int ret = db_put(t, DBI_MESSAGES, key, 8, w.buf, w.len, 0, error_r);
	rw_free(&w);
	return ret;
}

int store_txn_mailbox_get_id(struct store_txn *t, uint32_t mailbox_id,
			     struct store_mailbox *mbox_r, const char **error_r)
{
	return mailbox_load(t, mailbox_id, mbox_r, error_r);
}

int store_txn_mailbox_get(struct store_txn *t, uint32_t account_id, const char *name,
			  struct store_mailbox *mbox_r, const char **error_r)
{
	name = canonical_name(name);
	if (strlen(name) > STORE_MAILBOX_NAME_MAX)
		return 0;
	uint8_t key[4 + STORE_MAILBOX_NAME_MAX];
	size_t klen = name_key(key, account_id, name);
	MDB_val v;
	int ret = db_get(t, DBI_MAILBOX_NAMES, key, klen, &v, error_r);
	if (ret <= 0)
		return ret;
	if (v.mv_size != 4) {
		*error_r = "corrupt mailbox name index";
		return -1;
	}
	ret = mailbox_load(t, get_be32(v.mv_data), mbox_r, error_r);
	if (ret == 0) {
		*error_r = "mailbox name index points nowhere";
		return -1;
	}
	return ret;
}

int store_txn_mailbox_foreach(struct store_txn *t, uint32_t account_id,
			      int (*fn)(const struct store_mailbox *mbox, void *ctx), void *ctx,
			      const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_MAILBOX_NAMES], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	uint8_t key[4];
	put_be32(key, account_id);
	MDB_val k = { 4, key }, v;
	int ret = 0;
	struct store_mailbox *m = xmalloc(sizeof(*m));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 4 || get_be32(k.mv_data) != account_id)
			break;
		if (v.mv_size != 4 || mailbox_load(t, get_be32(v.mv_data), m, error_r) <= 0) {
			*error_r = "corrupt mailbox name index";
			ret = -1;
			break;
		}
		if (fn(m, ctx) != 0)
			break;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	free(m);
	mdb_cursor_close(cur);
	return ret;
}

struct special_ctx {
	unsigned special;
	struct store_mailbox *out;
	bool found;
};

static int special_fn(const struct store_mailbox *m, void *ctx)
{
	struct special_ctx *c = ctx;
	if ((m->special_use & c->special) != 0) {
		*c->out = *m;
		c->found = true;
		return 1;
	}
	return 0;
}

int store_txn_mailbox_by_special(struct store_txn *t, uint32_t account_id, unsigned special_use,
				 struct store_mailbox *mbox_r, const char **error_r)
{
	struct special_ctx c = { special_use, mbox_r, false };
	if (store_txn_mailbox_foreach(t, account_id, special_fn, &c, error_r) < 0)
		return -1;
	return c.found ? 1 : 0;
}

int store_txn_mailbox_create(struct store_txn *t, uint32_t account_id, const char *name,
			     unsigned special_use, uint32_t *mailbox_id_r, const char **error_r)
{
	name = canonical_name(name);
	if (!valid_name(name)) {
		*error_r = "invalid mailbox name";
		return -1;
	}
	uint8_t key[4 + STORE_MAILBOX_NAME_MAX];
	size_t klen = name_key(key, account_id, name);
	MDB_val v;
	int ret = db_get(t, DBI_MAILBOX_NAMES, key, klen, &v, error_r);
	if (ret < 0)
		return -1;
	if (ret == 1) {
		*error_r = STORE_ERR_EXISTS;
		return -1;
	}
	uint64_t id, last_validity;
	if (meta_next(t, "next_mailbox", &id, error_r) < 0 ||
	    meta_get(t, "uidvalidity", &last_validity, error_r) < 0)
		return -1;
	if (id > UINT32_MAX) {
		*error_r = "mailbox ids exhausted";
		return -1;
	}
	/* UIDVALIDITY: the creation time, but strictly increasing in the store,
	 * so a mailbox deleted and created again never reuses one. */
	uint64_t validity = (uint64_t)time(NULL);
	if (validity <= last_validity)
		validity = last_validity + 1;
	if (validity > UINT32_MAX)
		validity = 1;
	struct store_mailbox *m = xcalloc(1, sizeof(*m));
	m->id = (uint32_t)id;
	m->account_id = account_id;
	strcpy(m->name, name);
	m->uidvalidity = (uint32_t)validity;
	m->uidnext = 1;
	m->highestmodseq = 1;
	m->special_use = special_use;
	uint8_t idbuf[4];
	put_be32(idbuf, m->id);
	ret = meta_put(t, "uidvalidity", validity, error_r);
	if (ret == 0)
		ret = mailbox_save(t, m, error_r);
	if (ret == 0)
		ret = db_put(t, DBI_MAILBOX_NAMES, key, klen, idbuf, 4, 0, error_r);
	if (ret == 0 && mailbox_id_r != NULL)
		*mailbox_id_r = m->id;
	free(m);
	return ret;
}

/* Removes every message record and change of the mailbox. */
static int mailbox_clear(struct store_txn *t, struct store_mailbox *m, bool drop_usage,
			 const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_MESSAGES], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	uint8_t key[8];
	message_key(key, m->id, 0);
	MDB_val k = { 8, key }, v;
	int ret = 0;
	uint64_t bytes = 0, count = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) {
		if (k.mv_size != 8 || get_be32(k.mv_data) != m->id ||
		    get_be32((uint8_t *)k.mv_data + 4) == MAILBOX_REC_UID)
			break;
		struct store_message msg;
		if (message_decode(v.mv_data, v.mv_size, get_be32((uint8_t *)k.mv_data + 4), &msg) <
		    0) {
			*error_r = "corrupt message record";
			ret = -1;
			break;
		}
		bytes += msg.size;
		count++;
		if (blob_unref(t, msg.blob, error_r) < 0) {
			ret = -1;
			break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0) {
			ret = db_fail(t, rc, error_r);
			break;
		}
		message_key(key, m->id, msg.uid + 1);
		k.mv_size = 8;
		k.mv_data = key;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	if (ret < 0)
		return -1;
	/* The change log of a deleted mailbox goes with it. */
	rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_CHANGES], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	uint8_t ckey[4];
	put_be32(ckey, m->id);
	k.mv_size = 4;
	k.mv_data = ckey;
	/* Seek again after each delete: a cursor on a deleted last entry has
	 * no current entry (MDB_GET_CURRENT then fails with EINVAL). */
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) {
		if (k.mv_size < 4 || get_be32(k.mv_data) != m->id)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			break;
		k.mv_size = 4;
		k.mv_data = ckey;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return db_fail(t, rc, error_r);
	if (drop_usage && count > 0 &&
	    usage_change(t, m->account_id, -(int64_t)bytes, -(int64_t)count, error_r) < 0)
		return -1;
	return 0;
}

int store_txn_mailbox_delete(struct store_txn *t, uint32_t mailbox_id, const char **error_r)
{
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = mailbox_must(t, mailbox_id, m, error_r);
	if (ret > 0)
		ret = mailbox_clear(t, m, true, error_r);
	if (ret == 0) {
		uint8_t key[4 + STORE_MAILBOX_NAME_MAX], reck[8];
		size_t klen = name_key(key, m->account_id, m->name);
		message_key(reck, m->id, MAILBOX_REC_UID);
		if (db_del(t, DBI_MAILBOX_NAMES, key, klen, error_r) < 0 ||
		    db_del(t, DBI_MESSAGES, reck, 8, error_r) < 0)
			ret = -1;
	}
	free(m);
	return ret < 0 ? -1 : 0;
}

int store_txn_mailbox_subscribe(struct store_txn *t, uint32_t mailbox_id, bool subscribed,
				const char **error_r)
{
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = mailbox_must(t, mailbox_id, m, error_r);
	if (ret > 0) {
		m->subscribed = subscribed;
		ret = mailbox_save(t, m, error_r);
	}
	free(m);
	return ret < 0 ? -1 : 0;
}

/* Renames one mailbox record and its name index entry. */
static int rename_one(struct store_txn *t, struct store_mailbox *m, const char *new_name,
		      const char **error_r)
{
	uint8_t key[4 + STORE_MAILBOX_NAME_MAX], idbuf[4];
	size_t klen = name_key(key, m->account_id, m->name);
	if (db_del(t, DBI_MAILBOX_NAMES, key, klen, error_r) < 0)
		return -1;
	strcpy(m->name, new_name);
	klen = name_key(key, m->account_id, m->name);
	put_be32(idbuf, m->id);
	if (db_put(t, DBI_MAILBOX_NAMES, key, klen, idbuf, 4, MDB_NOOVERWRITE, error_r) < 0) {
		if (t->mdb_err == MDB_KEYEXIST)
			*error_r = STORE_ERR_EXISTS;
		return -1;
	}
	return mailbox_save(t, m, error_r);
}

struct children_ctx {
	const char *prefix;
	size_t prefix_len;
	struct collect {
		uint32_t *ids;
		size_t n, cap;
	} c;
};

static int children_fn(const struct store_mailbox *m, void *ctx)
{
	struct children_ctx *cc = ctx;
	if (strncmp(m->name, cc->prefix, cc->prefix_len) == 0 &&
	    m->name[cc->prefix_len] == STORE_MAILBOX_SEP) {
		if (cc->c.n == cc->c.cap) {
			cc->c.cap = cc->c.cap ? cc->c.cap * 2 : 8;
			cc->c.ids = xreallocarray(cc->c.ids, cc->c.cap, sizeof(uint32_t));
		}
		cc->c.ids[cc->c.n++] = m->id;
	}
	return 0;
}

static int collect_uid(const struct store_message *msg, void *ctx)
{
	struct collect *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->ids = xreallocarray(c->ids, c->cap, sizeof(uint32_t));
	}
	c->ids[c->n++] = msg->uid;
	return 0;
}

static int rename_inbox(struct store_txn *t, struct store_mailbox *inbox, const char *new_name,
			const char **error_r)
{
	uint32_t new_id;
	if (store_txn_mailbox_create(t, inbox->account_id, new_name, MBOX_SPECIAL_NONE, &new_id,
				     error_r) < 0)
		return -1;
	/* Move every message: collect UIDs first, then move them. */
	struct collect c = { 0 };
	int ret = store_txn_message_foreach(t, inbox->id, 1, UINT32_MAX, collect_uid, &c, error_r);
	if (ret == 0 && c.n > 0) {
		uint32_t *new_uids = xcalloc(c.n, sizeof(uint32_t));
		ret = store_txn_copy(t, inbox->id, c.ids, c.n, new_id, true, new_uids, error_r);
		free(new_uids);
	}
	free(c.ids);
	return ret;
}

int store_txn_mailbox_rename(struct store_txn *t, uint32_t mailbox_id, const char *new_name,
			     const char **error_r)
{
	new_name = canonical_name(new_name);
	if (!valid_name(new_name) || strcmp(new_name, "INBOX") == 0) {
		*error_r = "invalid mailbox name";
		return -1;
	}
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = mailbox_must(t, mailbox_id, m, error_r);
	if (ret < 0)
		goto out;
	if (strcmp(m->name, "INBOX") == 0) {
		ret = rename_inbox(t, m, new_name, error_r);
		goto out;
	}
	size_t old_len = strlen(m->name);
	if (strncmp(new_name, m->name, old_len) == 0 && new_name[old_len] == STORE_MAILBOX_SEP) {
		*error_r = "cannot rename a mailbox into itself";
		ret = -1;
		goto out;
	}
	struct children_ctx cc = { m->name, old_len, { 0 } };
	char *old_name = xstrdup(m->name);
	cc.prefix = old_name;
	ret = store_txn_mailbox_foreach(t, m->account_id, children_fn, &cc, error_r);
	if (ret == 0)
		ret = rename_one(t, m, new_name, error_r);
	struct store_mailbox *child = xmalloc(sizeof(*child));
	for (size_t i = 0; ret == 0 && i < cc.c.n; i++) {
		if (mailbox_load(t, cc.c.ids[i], child, error_r) <= 0) {
			ret = -1;
			break;
		}
		size_t nlen = strlen(new_name) + strlen(child->name) - old_len;
		if (nlen > STORE_MAILBOX_NAME_MAX) {
			*error_r = "mailbox name too long";
			ret = -1;
			break;
		}
		char *name = xmalloc(nlen + 1);
		strcpy(name, new_name);
		strcat(name, child->name + old_len);
		ret = rename_one(t, child, name, error_r);
		free(name);
	}
	free(child);
	free(cc.c.ids);
	free(old_name);
out:
	free(m);
	return ret < 0 ? -1 : 0;
}

int store_txn_keyword_index(struct store_txn *t, uint32_t mailbox_id, const char *keyword,
			    bool add, const char **error_r)
{
	if (keyword[0] == '\0' || strlen(keyword) > STORE_KEYWORD_MAX_LEN) {
		*error_r = "invalid keyword";
		return -1;
	}
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = mailbox_must(t, mailbox_id, m, error_r);
	if (ret < 0)
		goto out;
	ret = -1;
	/* Keywords are case-insensitive (RFC 3501 2.3.2). */
	for (unsigned i = 0; i < m->n_keywords; i++) {
		if (strcasecmp(m->keywords[i], keyword) == 0) {
			ret = (int)i;
			goto out;
		}
	}
	if (!add) {
		*error_r = "no such keyword";
		goto out;
	}
	if (m->n_keywords >= STORE_KEYWORDS_MAX) {
		*error_r = "too many keywords";
		goto out;
	}
	strcpy(m->keywords[m->n_keywords], keyword);
	m->n_keywords++;
	ret = mailbox_save(t, m, error_r) == 0 ? (int)m->n_keywords - 1 : -1;
out:
	free(m);
	return ret;
}

int mailbox_append(struct store_txn *t, struct store_mailbox *m, uint32_t flags,
		   uint64_t keywords, int64_t internal_date, uint64_t size,
		   const uint8_t blob[STORE_BLOB_ID_LEN], uint32_t *uid_r, const char **error_r)
{
	if (m->uidnext == UINT32_MAX) {
		*error_r = "mailbox UIDs exhausted";
		return -1;
	}
	struct store_message msg = { 0 };
	msg.uid = m->uidnext++;
	msg.flags = flags & MSG_SYSTEM_FLAGS;
	msg.keywords = keywords;
	msg.modseq = ++m->highestmodseq;
	msg.append_modseq = msg.modseq;
	msg.internal_date = internal_date;
	msg.save_date = (int64_t)time(NULL);
	msg.size = size;
	memcpy(msg.blob, blob, STORE_BLOB_ID_LEN);
	m->messages++;
	if (!(msg.flags & MSG_SEEN))
		m->unseen++;
	if (msg.flags & MSG_DELETED)
		m->deleted++;
	m->bytes += size;
	if (message_save(t, m->id, &msg, error_r) < 0 || mailbox_save(t, m, error_r) < 0)
		return -1;
	*uid_r = msg.uid;
	return 0;
}

int mailbox_remove(struct store_txn *t, struct store_mailbox *m, const struct store_message *msg,
		   const char **error_r)
{
	uint8_t key[8];
	message_key(key, m->id, msg->uid);
	int ret = db_del(t, DBI_MESSAGES, key, 8, error_r);
	if (ret == 0)
		*error_r = "message to remove is missing";
	if (ret <= 0 || blob_unref(t, msg->blob, error_r) < 0)
		return -1;
	m->messages--;
	if (!(msg->flags & MSG_SEEN))
		m->unseen--;
	if (msg->flags & MSG_DELETED)
		m->deleted--;
	m->bytes -= msg->size;
	m->highestmodseq++;
	return change_unlog_flags(t, m->id, msg, error_r) < 0 ||
			       change_log(t, m->id, m->highestmodseq, msg->uid, CHANGE_EXPUNGE,
					  error_r) < 0 ||
			       mailbox_save(t, m, error_r) < 0
		       ? -1
		       : 0;
}
