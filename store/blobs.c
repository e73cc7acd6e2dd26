/* Message bytes: content-addressed by SHA-256, reference-counted, stored in
 * chunks under a sequential storage number, compressed with zstd at rest. */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <zstd.h>

#define BLOB_REC_VERSION 1
#define BLOB_REC_LEN 33
/* zstd's fastest level: mail text shrinks 2-4 times at several hundred MB/s;
 * higher levels cost far more CPU for a few percent. */
#define ZSTD_LEVEL 1

struct blob_rec {
	uint64_t seq; /* storage number: chunks are keyed by it, so new bytes
		       * are appended at the end of the chunks B-tree instead of
		       * landing on a random page as a hash key would */
	uint64_t refcount;
	uint64_t size;
	uint32_t chunks;
	uint32_t parsed_len; /* encoded length, 0: none */
};

/* Per thread, so that the store stays usable from threaded programs. */
static __thread ZSTD_CCtx *cctx;
static __thread ZSTD_DCtx *dctx;
static __thread uint8_t *scratch; /* one decompressed chunk */

void blob_hash(const void *data, size_t len, uint8_t out[STORE_BLOB_ID_LEN])
{
	unsigned int n = STORE_BLOB_ID_LEN;
	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != STORE_BLOB_ID_LEN)
		abort(); /* a broken libcrypto: nothing sensible to do */
	/* A leading zero byte marks sequential ids (blob_unique_id). */
	if (out[0] == 0)
		out[0] = 1;
}

/* The id of bytes stored without content addressing: a zero byte, the
 * storage number (56 bits, big-endian; never reused) and zeros. New ids
 * sort after each other in one corner of the blobs B-tree, so a delivery
 * appends to a page already dirty instead of rewriting a random one. */
static void blob_unique_id(uint8_t id[STORE_BLOB_ID_LEN], uint64_t seq)
{
	memset(id, 0, STORE_BLOB_ID_LEN);
	for (int i = 0; i < 7; i++)
		id[1 + i] = (uint8_t)(seq >> (8 * (6 - i)));
}

/* format byte + bytes, compressed when that saves at least 1/16 */
void blob_encode_chunk(const uint8_t *data, size_t n, bool compress, uint8_t **out_r,
			 size_t *len_r)
{
	if (compress && n >= CHUNK_COMPRESS_MIN) {
		if (cctx == NULL && (cctx = ZSTD_createCCtx()) == NULL)
			abort();
		size_t bound = ZSTD_compressBound(n);
		uint8_t *out = xmalloc(xadd(bound, 1));
		size_t z = ZSTD_compressCCtx(cctx, out + 1, bound, data, n, ZSTD_LEVEL);
		if (!ZSTD_isError(z) && z < n - n / 16) {
			out[0] = CHUNK_ZSTD;
			*out_r = xrealloc(out, z + 1);
			*len_r = z + 1;
			return;
		}
		free(out);
	}
	uint8_t *out = xmalloc(xadd(n, 1));
	out[0] = CHUNK_RAW;
	if (n > 0)
		memcpy(out + 1, data, n);
	*out_r = out;
	*len_r = n + 1;
}

void blob_prepare(struct blob_prep *p, const void *data, size_t size, const void *parsed,
		  size_t parsed_size, bool compress, bool hash)
{
	memset(p, 0, sizeof(*p));
	if (hash)
		blob_hash(data, size, p->id);
	p->hashed = hash;
	p->size = size;
	p->n_chunks = (uint32_t)((size + BLOB_CHUNK_SIZE - 1) / BLOB_CHUNK_SIZE);
	p->chunk = xcalloc(p->n_chunks ? p->n_chunks : 1, sizeof(*p->chunk));
	p->chunk_len = xcalloc(p->n_chunks ? p->n_chunks : 1, sizeof(*p->chunk_len));
	const uint8_t *bytes = data;
	for (uint32_t i = 0; i < p->n_chunks; i++) {
		size_t off = (size_t)i * BLOB_CHUNK_SIZE;
		size_t n = size - off < BLOB_CHUNK_SIZE ? size - off : BLOB_CHUNK_SIZE;
		blob_encode_chunk(bytes + off, n, compress, &p->chunk[i], &p->chunk_len[i]);
	}
	if (parsed != NULL && parsed_size > 0 && parsed_size < UINT32_MAX)
		blob_encode_chunk(parsed, parsed_size, false, &p->parsed, &p->parsed_len);
}

struct store_prepared *store_prepare_as(const struct store *s, const void *data, size_t size,
					const void *parsed, size_t parsed_size, unsigned flags)
{
	struct store_prepared *sp = xmalloc(sizeof(*sp));
	blob_prepare(&sp->blob, data, size, parsed, parsed_size,
		     !(flags & STORE_PREP_NO_COMPRESS) && s->compress,
		     !(flags & STORE_PREP_UNIQUE));
	return sp;
}

struct store_prepared *store_prepare(const struct store *s, const void *data, size_t size,
				     const void *parsed, size_t parsed_size)
{
	return store_prepare_as(s, data, size, parsed, parsed_size, 0);
}

void store_prepared_free(struct store_prepared **prep)
{
	if (*prep == NULL)
		return;
	blob_prep_free(&(*prep)->blob);
	x_free(prep);
}

void blob_prep_free(struct blob_prep *p)
{
	for (uint32_t i = 0; i < p->n_chunks; i++)
		free(p->chunk[i]);
	free(p->chunk);
	free(p->chunk_len);
	free(p->parsed);
	memset(p, 0, sizeof(*p));
}

static int blob_load(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN],
		     struct blob_rec *b, const char **error_r)
{
	MDB_val v;
	int ret = db_get(t, DBI_BLOBS, id, STORE_BLOB_ID_LEN, &v, error_r);
	if (ret <= 0)
		return ret;
	const uint8_t *p = v.mv_data;
	if (v.mv_size != BLOB_REC_LEN || p[0] != BLOB_REC_VERSION) {
		*error_r = "corrupt blob record";
		return -1;
	}
	b->refcount = get_le64(p + 1);
	b->size = get_le64(p + 9);
	b->chunks = get_le32(p + 17);
	b->parsed_len = get_le32(p + 21);
	b->seq = get_le64(p + 25);
	return 1;
}

/* blob_load, where a missing blob is an error. */
static int blob_must(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN], struct blob_rec *b,
		     const char **error_r)
{
	int ret = blob_load(t, id, b, error_r);
	if (ret == 0)
		*error_r = "message bytes missing";
	return ret == 1 ? 0 : -1;
}

static int blob_save(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN],
		     const struct blob_rec *b, const char **error_r)
{
	uint8_t rec[BLOB_REC_LEN];
	rec[0] = BLOB_REC_VERSION;
	put_le64(rec + 1, b->refcount);
	put_le64(rec + 9, b->size);
	put_le32(rec + 17, b->chunks);
	put_le32(rec + 21, b->parsed_len);
	put_le64(rec + 25, b->seq);
	return db_put(t, DBI_BLOBS, id, STORE_BLOB_ID_LEN, rec, BLOB_REC_LEN, 0, error_r);
}

void chunk_key(uint8_t key[CHUNK_KEY_LEN], uint64_t seq, uint32_t idx)
{
	put_be64(key, seq);
	put_be32(key + 8, idx);
}

/* One past the last storage number in the chunks tree (read from its
 * rightmost page, which the append touches anyway). */
static int next_chunk_seq(struct store_txn *t, uint64_t *seq_r, const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->store->dbi[DBI_CHUNKS], &cur);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	MDB_val k, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND) {
		*seq_r = 1;
		return 0;
	}
	if (rc != 0)
		return db_fail(t, rc, error_r);
	if (k.mv_size != CHUNK_KEY_LEN) {
		*error_r = "corrupt chunk key";
		return -1;
	}
	*seq_r = get_be64(k.mv_data) + 1;
	return 0;
}

/* A new storage number: never reused (a counter in meta), so that a blob
 * whose bytes take no chunk cannot share its number, and compaction's mark
 * never skips new bytes; and above every chunk key, so chunks append. */
static int new_blob_seq(struct store_txn *t, uint64_t *seq_r, const char **error_r)
{
	uint64_t counter = 0, after_last = 0;
	if (meta_get(t, "next_blob_seq", &counter, error_r) < 0 ||
	    next_chunk_seq(t, &after_last, error_r) < 0)
		return -1;
	*seq_r = counter > after_last ? counter : after_last;
	return meta_put(t, "next_blob_seq", *seq_r + 1, error_r);
}

int blob_ref_prepared(struct store_txn *t, const struct blob_prep *p, uint64_t refs, bool unique,
		      uint8_t id_r[STORE_BLOB_ID_LEN], const char **error_r)
{
	struct blob_rec b;
	uint64_t seq = 0;
	if (unique) {
		if (new_blob_seq(t, &seq, error_r) < 0)
			return -1;
		blob_unique_id(id_r, seq);
	} else if (!p->hashed) {
		*error_r = "bytes prepared for a unique delivery delivered by content";
		return -1;
	} else {
		memcpy(id_r, p->id, STORE_BLOB_ID_LEN);
	}
	/* (a unique id is new by construction: the look-up only guards) */
	int ret = blob_load(t, id_r, &b, error_r);
	if (ret < 0)
		return -1;
	if (ret == 1) {
		b.refcount += refs;
		return blob_save(t, id_r, &b, error_r);
	}
	if (unique)
		b.seq = seq;
	else if (new_blob_seq(t, &b.seq, error_r) < 0)
		return -1;
	b.refcount = refs;
	b.size = p->size;
	b.chunks = p->n_chunks;
	b.parsed_len = (uint32_t)p->parsed_len;
	uint8_t key[CHUNK_KEY_LEN];
	for (uint32_t i = 0; i < p->n_chunks; i++) {
		chunk_key(key, b.seq, i);
		if (db_put(t, DBI_CHUNKS, key, sizeof(key), p->chunk[i], p->chunk_len[i], MDB_APPEND,
			   error_r) < 0)
			return -1;
	}
	if (p->parsed != NULL) {
		chunk_key(key, b.seq, CHUNK_PARSED);
		if (db_put(t, DBI_CHUNKS, key, sizeof(key), p->parsed, p->parsed_len, MDB_APPEND,
			   error_r) < 0)
			return -1;
	}
	return blob_save(t, id_r, &b, error_r);
}

int blob_ref(struct store_txn *t, const void *data, size_t size, const void *parsed,
	     size_t parsed_size, uint64_t refs, bool unique, uint8_t id_r[STORE_BLOB_ID_LEN],
	     const char **error_r)
{
	struct blob_prep p;
	blob_prepare(&p, data, size, parsed, parsed_size, t->store->compress, !unique);
	int ret = blob_ref_prepared(t, &p, refs, unique, id_r, error_r);
	blob_prep_free(&p);
	return ret;
}

int blob_addref(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN], const char **error_r)
{
	struct blob_rec b;
	if (blob_must(t, id, &b, error_r) < 0)
		return -1;
	b.refcount++;
	return blob_save(t, id, &b, error_r);
}

int blob_unref(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN], const char **error_r)
{
	struct blob_rec b;
	if (blob_must(t, id, &b, error_r) < 0)
		return -1;
	if (b.refcount > 1) {
		b.refcount--;
		return blob_save(t, id, &b, error_r);
	}
	uint8_t key[CHUNK_KEY_LEN];
	for (uint32_t i = 0; i < b.chunks; i++) {
		chunk_key(key, b.seq, i);
		if (db_del(t, DBI_CHUNKS, key, sizeof(key), error_r) < 0)
			return -1;
	}
	if (b.parsed_len > 0) {
		chunk_key(key, b.seq, CHUNK_PARSED);
		if (db_del(t, DBI_CHUNKS, key, sizeof(key), error_r) < 0)
			return -1;
	}
	return db_del(t, DBI_BLOBS, id, STORE_BLOB_ID_LEN, error_r) < 0 ? -1 : 0;
}

int store_txn_blob_size(struct store_txn *t, const uint8_t blob[STORE_BLOB_ID_LEN],
			uint64_t *size_r, const char **error_r)
{
	struct blob_rec b;
	if (blob_must(t, blob, &b, error_r) < 0)
		return -1;
	*size_r = b.size;
	return 0;
}

/* The first need bytes of chunk idx (expect: its decoded length): a pointer
 * into the map for a raw chunk, into the thread's scratch buffer for a
 * compressed one, which is decompressed only as far as needed (a FETCH of
 * the header does not pay for the whole first chunk). */
static int chunk_get(struct store_txn *t, const struct blob_rec *b, uint32_t idx, size_t expect,
		     size_t need, const uint8_t **data_r, const char **error_r)
{
	uint8_t key[CHUNK_KEY_LEN];
	MDB_val v;
	chunk_key(key, b->seq, idx);
	int ret = db_get(t, DBI_CHUNKS, key, sizeof(key), &v, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = "message chunk missing";
		return -1;
	}
	const uint8_t *p = v.mv_data;
	if (v.mv_size >= 1 && p[0] == CHUNK_RAW && v.mv_size - 1 == expect) {
		*data_r = p + 1;
		return 0;
	}
	if (v.mv_size >= 1 && p[0] == CHUNK_ZSTD && need <= expect) {
		if (dctx == NULL && (dctx = ZSTD_createDCtx()) == NULL)
			abort();
		if (scratch == NULL)
			scratch = xmalloc(BLOB_CHUNK_SIZE);
		if (need == expect) {
			size_t n = ZSTD_decompressDCtx(dctx, scratch, BLOB_CHUNK_SIZE, p + 1,
						       v.mv_size - 1);
			if (!ZSTD_isError(n) && n == expect) {
				*data_r = scratch;
				return 0;
			}
		} else {
			ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
			ZSTD_inBuffer in = { p + 1, v.mv_size - 1, 0 };
			ZSTD_outBuffer out = { scratch, need, 0 };
			size_t r = 1;
			while (out.pos < need && r != 0 && !ZSTD_isError(r) && in.pos < in.size)
				r = ZSTD_decompressStream(dctx, &out, &in);
			if (!ZSTD_isError(r) && out.pos == need) {
				*data_r = scratch;
				return 0;
			}
		}
	}
	*error_r = "corrupt message chunk";
	return -1;
}

int store_txn_blob_read(struct store_txn *t, const uint8_t blob[STORE_BLOB_ID_LEN],
			uint64_t offset, void *buf, size_t len, const char **error_r)
{
	struct blob_rec b;
	if (blob_must(t, blob, &b, error_r) < 0)
		return -1;
	if (offset > b.size || len > b.size - offset) {
		*error_r = "read beyond the message";
		return -1;
	}
	uint8_t *out = buf;
	while (len > 0) {
		uint32_t idx = (uint32_t)(offset / BLOB_CHUNK_SIZE);
		uint64_t chunk_start = (uint64_t)idx * BLOB_CHUNK_SIZE;
		size_t chunk_len = b.size - chunk_start < BLOB_CHUNK_SIZE
					   ? (size_t)(b.size - chunk_start)
					   : BLOB_CHUNK_SIZE;
		const uint8_t *data;
		size_t in_chunk = (size_t)(offset - chunk_start);
		size_t n = chunk_len - in_chunk;
		if (n > len)
			n = len;
		if (chunk_get(t, &b, idx, chunk_len, in_chunk + n, &data, error_r) < 0)
			return -1;
		memcpy(out, data + in_chunk, n);
		out += n;
		offset += n;
		len -= n;
	}
	return 0;
}

int store_txn_blob_parsed(struct store_txn *t, const uint8_t blob[STORE_BLOB_ID_LEN],
			  const void **data_r, size_t *len_r, const char **error_r)
{
	struct blob_rec b;
	int ret = blob_load(t, blob, &b, error_r);
	if (ret <= 0 || b.parsed_len == 0)
		return ret;
	uint8_t key[CHUNK_KEY_LEN];
	MDB_val v;
	chunk_key(key, b.seq, CHUNK_PARSED);
	ret = db_get(t, DBI_CHUNKS, key, sizeof(key), &v, error_r);
	if (ret <= 0)
		return ret;
	if (v.mv_size < 1 || ((uint8_t *)v.mv_data)[0] != CHUNK_RAW) {
		*error_r = "corrupt cached parse";
		return -1;
	}
	*data_r = (uint8_t *)v.mv_data + 1;
	*len_r = v.mv_size - 1;
	return 1;
}

uint64_t blob_record_size(const void *rec, size_t len)
{
	return len == BLOB_REC_LEN ? get_le64((const uint8_t *)rec + 9) : 0;
}
