/* Accounts: address -> id, id -> record (kind, password hash, quota, usage). */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"

#include <stdlib.h>
#include <time.h>

#define ACCOUNT_REC_VERSION 1

/* The mailboxes every account starts with (RFC 6154). */
static const struct {
	const char *name;
	unsigned special;
} default_mailboxes[] = {
	{ "INBOX", MBOX_SPECIAL_NONE }, { "Sent", MBOX_SPECIAL_SENT },
	{ "Drafts", MBOX_SPECIAL_DRAFTS }, { "Trash", MBOX_SPECIAL_TRASH },
	{ "Junk", MBOX_SPECIAL_JUNK },
};

static void account_key(uint8_t key[4], uint32_t id)
{
	put_be32(key, id);
}

int account_load(struct store_txn *t, uint32_t id, struct store_account *a, const char **error_r)
{
	uint8_t key[4];
	MDB_val v;
	account_key(key, id);
	int ret = db_get(t, DBI_ACCOUNTS, key, 4, &v, error_r);
	if (ret <= 0)
		return ret;
	struct rec_reader r = { v.mv_data, v.mv_size, false };
	memset(a, 0, sizeof(*a));
	if (rr_u8(&r) != ACCOUNT_REC_VERSION) {
		*error_r = "corrupt account record (version)";
		return -1;
	}
	a->id = rr_u32(&r);
	a->kind = rr_u8(&r) ? ACCOUNT_ORGANIZATION : ACCOUNT_PERSONAL;
	rr_str(&r, a->address, sizeof(a->address));
	rr_str(&r, a->password_hash, sizeof(a->password_hash));
	a->quota_bytes = rr_u64(&r);
	a->quota_messages = rr_u64(&r);
	a->used_bytes = rr_u64(&r);
	a->used_messages = rr_u64(&r);
	a->warn_level = rr_u8(&r);
	a->created = (int64_t)rr_u64(&r);
	if (r.bad || a->id != id) {
		*error_r = "corrupt account record";
		return -1;
	}
	return 1;
}

int account_save(struct store_txn *t, const struct store_account *a, const char **error_r)
{
	struct rec_writer w = { 0 };
	rw_u8(&w, ACCOUNT_REC_VERSION);
	rw_u32(&w, a->id);
	rw_u8(&w, a->kind == ACCOUNT_ORGANIZATION);
	rw_str(&w, a->address);
	rw_str(&w, a->password_hash);
	rw_u64(&w, a->quota_bytes);
	rw_u64(&w, a->quota_messages);
	rw_u64(&w, a->used_bytes);
	rw_u64(&w, a->used_messages);
	rw_u8(&w, (uint8_t)a->warn_level);
	rw_u64(&w, (uint64_t)a->created);
	uint8_t key[4];
	account_key(key, a->id);
	int ret = db_put(t, DBI_ACCOUNTS, key, 4, w.buf, w.len, 0, error_r);
	rw_free(&w);
	return ret;
}

static int account_id_of(struct store_txn *t, const char *address, uint32_t *id_r,
			 const char **error_r)
{
	MDB_val v;
	int ret = db_get(t, DBI_ACCOUNT_NAMES, address, strlen(address), &v, error_r);
	if (ret <= 0)
		return ret;
	if (v.mv_size != 4) {
		*error_r = "corrupt account name index";
		return -1;
	}
	*id_r = get_be32(v.mv_data);
	return 1;
}

int store_txn_account_get(struct store_txn *t, const char *address, struct store_account *acct_r,
			  const char **error_r)
{
	uint32_t id;
	int ret = account_id_of(t, address, &id, error_r);
	if (ret <= 0)
		return ret;
	ret = account_load(t, id, acct_r, error_r);
	if (ret == 0) {
		*error_r = "account name index points nowhere";
		return -1;
	}
	return ret;
}

int store_txn_account_get_id(struct store_txn *t, uint32_t id, struct store_account *acct_r,
			     const char **error_r)
{
	return account_load(t, id, acct_r, error_r);
}

int store_txn_account_add(struct store_txn *t, const char *address, enum account_kind kind,
			  uint64_t quota_bytes, const char *password_hash, const char **error_r)
{
	uint32_t id;
	int ret = account_id_of(t, address, &id, error_r);
	if (ret < 0)
		return -1;
	if (ret == 1) {
		*error_r = STORE_ERR_EXISTS;
		return -1;
	}
	if (strlen(address) > ADDRESS_MAX_LEN || strlen(password_hash) > STORE_HASH_MAX) {
		*error_r = "address or password hash too long";
		return -1;
	}
	uint64_t next;
	if (meta_next(t, "next_account", &next, error_r) < 0)
		return -1;
	if (next > UINT32_MAX) {
		*error_r = "account ids exhausted";
		return -1;
	}
	struct store_account a = { 0 };
	a.id = (uint32_t)next;
	a.kind = kind;
	strcpy(a.address, address);
	strcpy(a.password_hash, password_hash);
	a.quota_bytes = quota_bytes;
	a.created = (int64_t)time(NULL);
	uint8_t idbuf[4];
	put_be32(idbuf, a.id);
	if (account_save(t, &a, error_r) < 0 ||
	    db_put(t, DBI_ACCOUNT_NAMES, address, strlen(address), idbuf, 4, 0, error_r) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		uint32_t mid;
		if (store_txn_mailbox_create(t, a.id, default_mailboxes[i].name,
					     default_mailboxes[i].special, &mid, error_r) < 0)
			return -1;
		if (store_txn_mailbox_subscribe(t, mid, true, error_r) < 0)
			return -1;
	}
	return 0;
}

struct collect_ids {
	uint32_t *ids;
	size_t n, cap;
};

static int collect_mailbox(const struct store_mailbox *m, void *ctx)
{
	struct collect_ids *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->ids = xreallocarray(c->ids, c->cap, sizeof(*c->ids));
	}
	c->ids[c->n++] = m->id;
	return 0;
}

int store_txn_account_del(struct store_txn *t, const char *address, const char **error_r)
{
	struct store_account a;
	int ret = store_txn_account_get(t, address, &a, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = STORE_ERR_NO_ACCOUNT;
		return -1;
	}
	struct collect_ids c = { 0 };
	ret = store_txn_mailbox_foreach(t, a.id, collect_mailbox, &c, error_r);
	for (size_t i = 0; ret == 0 && i < c.n; i++)
		ret = store_txn_mailbox_delete(t, c.ids[i], error_r);
	free(c.ids);
	if (ret < 0)
		return -1;
	uint8_t key[4];
	account_key(key, a.id);
	if (db_del(t, DBI_ACCOUNTS, key, 4, error_r) < 0 ||
	    db_del(t, DBI_ACCOUNT_NAMES, address, strlen(address), error_r) < 0)
		return -1;
	return 0;
}

int store_txn_account_set_password(struct store_txn *t, const char *address,
				   const char *password_hash, const char **error_r)
{
	struct store_account a;
	int ret = store_txn_account_get(t, address, &a, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = STORE_ERR_NO_ACCOUNT;
		return -1;
	}
	if (strlen(password_hash) > STORE_HASH_MAX) {
		*error_r = "password hash too long";
		return -1;
	}
	strcpy(a.password_hash, password_hash);
	return account_save(t, &a, error_r);
}

int store_txn_account_set_quota(struct store_txn *t, const char *address, uint64_t quota_bytes,
				const char **error_r)
{
	struct store_account a;
	int ret = store_txn_account_get(t, address, &a, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = STORE_ERR_NO_ACCOUNT;
		return -1;
	}
	a.quota_bytes = quota_bytes;
	/* A new limit re-arms the warnings from the current usage: a raised limit
	 * warns again when the new thresholds are crossed. */
	a.warn_level = 0;
	for (unsigned i = 0; i < t->store->n_warn_percents && quota_bytes > 0; i++)
		if (a.used_bytes * 100 >= (uint64_t)t->store->warn_percents[i] * quota_bytes)
			a.warn_level = i + 1;
	return account_save(t, &a, error_r);
}

int store_txn_account_foreach(struct store_txn *t,
			      int (*fn)(const struct store_account *acct, void *ctx), void *ctx,
			      const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_ACCOUNT_NAMES], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	MDB_val k, v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_account a;
		if (v.mv_size != 4) {
			*error_r = "corrupt account name index";
			ret = -1;
			break;
		}
		if (account_load(t, get_be32(v.mv_data), &a, error_r) <= 0) {
			*error_r = "account name index points nowhere";
			ret = -1;
			break;
		}
		if (fn(&a, ctx) != 0)
			break;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	return ret;
}

struct recalc_ctx {
	struct store_txn *t;
	uint64_t bytes, messages;
	int ret;
	const char **error_r;
};

static int recalc_message(const struct store_message *msg, void *ctx)
{
	struct recalc_ctx *rc = ctx;
	rc->bytes += msg->size;
	rc->messages++;
	return 0;
}

static int recalc_mailbox(const struct store_mailbox *m, void *ctx)
{
	struct recalc_ctx *rc = ctx;
	if (store_txn_message_foreach(rc->t, m->id, 1, UINT32_MAX, recalc_message, rc,
				      rc->error_r) < 0)
		rc->ret = -1;
	return rc->ret;
}

int store_txn_account_recalc(struct store_txn *t, const char *address, bool repair,
			     struct store_account *before_r, struct store_account *after_r,
			     const char **error_r)
{
	int ret = store_txn_account_get(t, address, before_r, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = STORE_ERR_NO_ACCOUNT;
		return -1;
	}
	struct recalc_ctx rc = { .t = t, .error_r = error_r };
	if (store_txn_mailbox_foreach(t, before_r->id, recalc_mailbox, &rc, error_r) < 0 ||
	    rc.ret < 0)
		return -1;
	*after_r = *before_r;
	after_r->used_bytes = rc.bytes;
	after_r->used_messages = rc.messages;
	bool differ = rc.bytes != before_r->used_bytes || rc.messages != before_r->used_messages;
	if (differ && repair && account_save(t, after_r, error_r) < 0)
		return -1;
	return differ ? 1 : 0;
}

struct add_ctx {
	const char *address;
	enum account_kind kind;
	uint64_t quota;
	const char *hash;
};

static int add_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct add_ctx *c = ctx;
	return store_txn_account_add(t, c->address, c->kind, c->quota, c->hash, error_r);
}

int store_account_add(struct store *s, const char *address, enum account_kind kind,
		      uint64_t quota_bytes, const char *password_hash, const char **error_r)
{
	struct add_ctx c = { address, kind, quota_bytes, password_hash };
	return store_write(s, add_fn, &c, error_r);
}

int store_account_get(struct store *s, const char *address, struct store_account *acct_r,
		      const char **error_r)
{
	struct store_txn *t;
	if (store_read_begin(s, &t, error_r) < 0)
		return -1;
	int ret = store_txn_account_get(t, address, acct_r, error_r);
	store_read_end(&t);
	return ret;
}
