/* Compaction: message bytes stored as they are, because the delivering
 * process had no CPU to spare for compression at that moment
 * (store_prepare_as), are compressed later, a little at a time, in short
 * write transactions that never hold the writers up for long. */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"

#include <stdlib.h>

#define COMPACT_SCAN_MAX 4096 /* chunks examined per call */
/* The mark: the chunk key (storage number, index) from which the next call
 * examines; everything before it was examined. */
#define META_COMPACT_MARK "compact_mark"
#define META_COMPACT_MARK_IDX "compact_mark_idx"

struct candidate {
	uint8_t key[CHUNK_KEY_LEN];
	uint8_t *raw; /* the value as read: format byte + bytes */
	size_t raw_len;
	uint8_t *enc; /* its compressed value, or NULL when not worth it */
	size_t enc_len;
};

struct compact_ctx {
	struct candidate *c;
	size_t n;
	uint64_t mark, mark_idx, next_mark, next_idx;
	size_t rewritten;
};

/* Reads up to max uncompressed chunks from the mark on. */
static int collect(struct store *s, struct compact_ctx *cc, size_t max, bool *more_r,
		   const char **error_r)
{
	struct store_txn *t;
	if (store_read_begin(s, &t, error_r) < 0)
		return -1;
	uint64_t mark, mark_idx;
	MDB_cursor *cur = NULL;
	int ret = meta_get(t, META_COMPACT_MARK, &mark, error_r) < 0 ||
			  meta_get(t, META_COMPACT_MARK_IDX, &mark_idx, error_r) < 0
		  ? -1
		  : 0;
	if (ret == 0) {
		int rc = mdb_cursor_open(t->txn, s->dbi[DBI_CHUNKS], &cur);
		if (rc != 0)
			ret = db_fail(t, rc, error_r);
	}
	if (ret < 0) {
		store_read_end(&t);
		return -1;
	}
	uint8_t start[CHUNK_KEY_LEN];
	chunk_key(start, mark, (uint32_t)mark_idx);
	MDB_val k = { sizeof(start), start }, v;
	size_t scanned = 0;
	cc->mark = cc->next_mark = mark;
	cc->mark_idx = cc->next_idx = mark_idx;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != CHUNK_KEY_LEN) {
			*error_r = "corrupt chunk key";
			ret = -1;
			break;
		}
		uint64_t seq = get_be64(k.mv_data);
		uint32_t idx = get_be32((const uint8_t *)k.mv_data + 8);
		if (cc->n == max || scanned == COMPACT_SCAN_MAX) {
			/* the next call starts at this very chunk (a message of
			 * many chunks that do not compress is not read again) */
			cc->next_mark = seq;
			cc->next_idx = idx;
			*more_r = true;
			break;
		}
		scanned++;
		const uint8_t *p = v.mv_data;
		if (idx != CHUNK_PARSED && v.mv_size > CHUNK_COMPRESS_MIN && p[0] == CHUNK_RAW) {
			struct candidate *c = &cc->c[cc->n++];
			memcpy(c->key, k.mv_data, CHUNK_KEY_LEN);
			c->raw = xmemdup(p, v.mv_size);
			c->raw_len = v.mv_size;
		}
		if (idx == CHUNK_PARSED) { /* the last key of a storage number */
			cc->next_mark = seq + 1;
			cc->next_idx = 0;
		} else {
			cc->next_mark = seq;
			cc->next_idx = (uint64_t)idx + 1;
		}
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_fail(t, rc, error_r);
	mdb_cursor_close(cur);
	store_read_end(&t);
	return ret;
}

/* Writes back the chunks still as they were read, and the new mark. */
static int compact_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct compact_ctx *cc = ctx;
	cc->rewritten = 0; /* store_write may run this again after growing the map */
	for (size_t i = 0; i < cc->n; i++) {
		struct candidate *c = &cc->c[i];
		if (c->enc == NULL)
			continue;
		MDB_val v;
		int ret = db_get(t, DBI_CHUNKS, c->key, CHUNK_KEY_LEN, &v, error_r);
		if (ret < 0)
			return -1;
		/* freed, or freed and its storage number reused, meanwhile */
		if (ret == 0 || v.mv_size != c->raw_len || memcmp(v.mv_data, c->raw, c->raw_len) != 0)
			continue;
		if (db_put(t, DBI_CHUNKS, c->key, CHUNK_KEY_LEN, c->enc, c->enc_len, 0, error_r) < 0)
			return -1;
		cc->rewritten++;
	}
	uint64_t mark, mark_idx;
	if (meta_get(t, META_COMPACT_MARK, &mark, error_r) < 0 ||
	    meta_get(t, META_COMPACT_MARK_IDX, &mark_idx, error_r) < 0)
		return -1;
	if (cc->next_mark < mark || (cc->next_mark == mark && cc->next_idx <= mark_idx))
		return 0; /* another call went further meanwhile */
	return meta_put(t, META_COMPACT_MARK, cc->next_mark, error_r) < 0 ||
			       meta_put(t, META_COMPACT_MARK_IDX, cc->next_idx, error_r) < 0
		       ? -1
		       : 0;
}

int store_compact(struct store *s, size_t max_chunks, size_t *compacted_r, bool *more_r,
		  const char **error_r)
{
	*compacted_r = 0;
	*more_r = false;
	if (!s->compress || s->read_only || max_chunks == 0)
		return 0;
	struct compact_ctx cc = { .c = xcalloc(max_chunks, sizeof(*cc.c)) };
	int ret = collect(s, &cc, max_chunks, more_r, error_r);
	bool any = false;
	for (size_t i = 0; ret == 0 && i < cc.n; i++) {
		struct candidate *c = &cc.c[i];
		blob_encode_chunk(c->raw + 1, c->raw_len - 1, true, &c->enc, &c->enc_len);
		if (c->enc[0] != CHUNK_ZSTD)
			x_free(&c->enc); /* incompressible: stays as it is */
		else
			any = true;
	}
	/* Nothing to rewrite: only the mark moves, if it does. */
	if (ret == 0 && (any || cc.next_mark != cc.mark || cc.next_idx != cc.mark_idx))
		ret = store_write(s, compact_fn, &cc, error_r);
	if (ret == 0)
		*compacted_r = cc.rewritten;
	for (size_t i = 0; i < cc.n; i++) {
		free(cc.c[i].raw);
		free(cc.c[i].enc);
	}
	free(cc.c);
	return ret;
}
