/* The outbound queue: u64 id -> blob id . opaque record (smtpd's encoding). */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"

#include <stdlib.h>

static int queue_put(struct store_txn *t, const void *record, size_t record_len,
		     const struct blob_prep *prep, uint64_t *id_r, const char **error_r)
{
	if (record_len > STORE_QUEUE_RECORD_MAX) {
		*error_r = "queue record too large";
		return -1;
	}
	uint64_t id;
	uint8_t blob[STORE_BLOB_ID_LEN], key[8];
	if (meta_next(t, "next_queue", &id, error_r) < 0 ||
	    blob_ref_prepared(t, prep, 1, true, blob, error_r) < 0)
		return -1;
	uint8_t *val = xmalloc(STORE_BLOB_ID_LEN + record_len);
	memcpy(val, blob, STORE_BLOB_ID_LEN);
	if (record_len > 0)
		memcpy(val + STORE_BLOB_ID_LEN, record, record_len);
	put_be64(key, id);
	int ret = db_put(t, DBI_QUEUE, key, 8, val, STORE_BLOB_ID_LEN + record_len, 0, error_r);
	free(val);
	if (ret == 0)
		*id_r = id;
	return ret;
}

int store_txn_queue_add(struct store_txn *t, const void *record, size_t record_len,
			const void *data, size_t size, uint64_t *id_r, const char **error_r)
{
	struct blob_prep p;
	blob_prepare(&p, data, size, NULL, 0, t->store->compress, false);
	int ret = queue_put(t, record, record_len, &p, id_r, error_r);
	blob_prep_free(&p);
	return ret;
}

int store_txn_queue_add_prepared(struct store_txn *t, const void *record, size_t record_len,
				 const struct store_prepared *prepared, uint64_t *id_r,
				 const char **error_r)
{
	return queue_put(t, record, record_len, &prepared->blob, id_r, error_r);
}

int store_txn_queue_get(struct store_txn *t, uint64_t id, const void **record_r,
			size_t *record_len_r, uint8_t blob_r[STORE_BLOB_ID_LEN],
			const char **error_r)
{
	uint8_t key[8];
	MDB_val v;
	put_be64(key, id);
	int ret = db_get(t, DBI_QUEUE, key, 8, &v, error_r);
	if (ret <= 0)
		return ret;
	if (v.mv_size < STORE_BLOB_ID_LEN) {
		*error_r = "corrupt queue record";
		return -1;
	}
	memcpy(blob_r, v.mv_data, STORE_BLOB_ID_LEN);
	*record_r = (uint8_t *)v.mv_data + STORE_BLOB_ID_LEN;
	*record_len_r = v.mv_size - STORE_BLOB_ID_LEN;
	return 1;
}

int store_txn_queue_update(struct store_txn *t, uint64_t id, const void *record,
			   size_t record_len, const char **error_r)
{
	const void *old;
	size_t old_len;
	uint8_t blob[STORE_BLOB_ID_LEN], key[8];
	if (record_len > STORE_QUEUE_RECORD_MAX) {
		*error_r = "queue record too large";
		return -1;
	}
	int ret = store_txn_queue_get(t, id, &old, &old_len, blob, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = "no such queue entry";
		return -1;
	}
	uint8_t *val = xmalloc(STORE_BLOB_ID_LEN + record_len);
	memcpy(val, blob, STORE_BLOB_ID_LEN);
	if (record_len > 0)
		memcpy(val + STORE_BLOB_ID_LEN, record, record_len);
	put_be64(key, id);
	ret = db_put(t, DBI_QUEUE, key, 8, val, STORE_BLOB_ID_LEN + record_len, 0, error_r);
	free(val);
	return ret;
}

int store_txn_queue_del(struct store_txn *t, uint64_t id, const char **error_r)
{
	const void *rec;
	size_t len;
	uint8_t blob[STORE_BLOB_ID_LEN], key[8];
	int ret = store_txn_queue_get(t, id, &rec, &len, blob, error_r);
	if (ret <= 0)
		return ret;
	put_be64(key, id);
	if (db_del(t, DBI_QUEUE, key, 8, error_r) < 0 || blob_unref(t, blob, error_r) < 0)
		return -1;
	return 1;
}

int store_txn_queue_foreach(struct store_txn *t,
			    int (*fn)(uint64_t id, const void *record, size_t record_len,
				      const uint8_t blob[STORE_BLOB_ID_LEN], void *ctx),
			    void *ctx, const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_QUEUE], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	MDB_val k, v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || v.mv_size < STORE_BLOB_ID_LEN) {
			*error_r = "corrupt queue record";
			ret = -1;
			break;
		}
		const uint8_t *p = v.mv_data;
		if (fn(get_be64(k.mv_data), p + STORE_BLOB_ID_LEN, v.mv_size - STORE_BLOB_ID_LEN, p,
		       ctx) != 0)
			break;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	return ret;
}
