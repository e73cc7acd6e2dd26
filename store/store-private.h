/* The store's internals: the LMDB environment, its databases, keys and
 * record encodings. Only the store/ sources include this (and <lmdb.h>). */
#ifndef CONGVU_STORE_PRIVATE_H
#define CONGVU_STORE_PRIVATE_H

#include <lmdb.h>
#include <pthread.h>
#include <string.h>

#include "store.h"

/* Schema version kept in meta; a store of another version is refused.
 * 2: mailbox records live in `messages`, after their messages. */
#define STORE_SCHEMA_VERSION 2
/* Blobs larger than this go into chunks of this size, so that LMDB never
 * needs long runs of free pages for one value. */
#define BLOB_CHUNK_SIZE (64 * 1024)
#define CHUNK_PARSED UINT32_MAX

enum store_dbi {
	DBI_META,          /* "version", "next_account", ... -> u64 */
	DBI_ACCOUNTS,      /* u32be id -> account record */
	DBI_ACCOUNT_NAMES, /* address -> u32be id */
	DBI_MAILBOX_NAMES, /* u32be account id . name -> u32be mailbox id */
	DBI_MESSAGES,      /* u32be mailbox id . u32be uid -> message record;
			    * u32be mailbox id . MAILBOX_REC_UID -> mailbox record */
	DBI_CHANGES,       /* u32be mailbox id . u64be modseq . u32be uid -> u8 kind
			    * (flag changes and expunges; arrivals are not logged) */
	DBI_BLOBS,         /* sha256 -> blob record (seq, refcount, size, chunks, parse length) */
	DBI_CHUNKS,        /* u64be blob seq . u32be index -> bytes; CHUNK_PARSED: the parse */
	DBI_QUEUE,         /* u64be id -> blob id . record */
	DBI_COUNT
};

struct store {
	MDB_env *env;
	/* Held shared by every transaction of this process, exclusively to
	 * resize the map, which LMDB allows only with no transaction open in
	 * the process: a program may read in one thread while another
	 * writes. */
	pthread_rwlock_t resize_lock;
	MDB_dbi dbi[DBI_COUNT];
	char *dir;      /* DIR/store */
	char *datafile; /* DIR/store/data.mdb */
	char *notifyfile; /* DIR/store/notify: written after every commit */
	int notify_write_fd;
	bool read_only;
	bool compress; /* zstd at rest (global.store_compression) */
	uint64_t map_size;
	int notify_fd;
	unsigned warn_percents[8];
	unsigned n_warn_percents;
};

struct store_txn {
	struct store *store;
	MDB_txn *txn;
	bool write;
	int mdb_err; /* the last LMDB error, to tell MDB_MAP_FULL apart */
};

/* ---- byte order ---- */
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ---- a record codec: fixed-width little-endian fields and
 * length-prefixed strings; reading past the end marks the reader bad. ---- */
struct rec_writer {
	uint8_t *buf;
	size_t len, cap;
};
struct rec_reader {
	const uint8_t *p;
	size_t left;
	bool bad;
};
void rw_u8(struct rec_writer *w, uint8_t v);
void rw_u32(struct rec_writer *w, uint32_t v);
void rw_u64(struct rec_writer *w, uint64_t v);
void rw_bytes(struct rec_writer *w, const void *p, size_t n);
void rw_str(struct rec_writer *w, const char *s);
void rw_free(struct rec_writer *w);
uint8_t rr_u8(struct rec_reader *r);
uint32_t rr_u32(struct rec_reader *r);
uint64_t rr_u64(struct rec_reader *r);
void rr_bytes(struct rec_reader *r, void *out, size_t n);
/* Copies a string into out (size outsize), marking the reader bad when it
 * does not fit. */
void rr_str(struct rec_reader *r, char *out, size_t outsize);

/* ---- LMDB helpers: each sets txn->mdb_err and *error_r on failure ---- */
/* 1 found, 0 not found, -1 error. */
int db_get(struct store_txn *t, enum store_dbi dbi, const void *key, size_t klen, MDB_val *val,
	   const char **error_r);
int db_put(struct store_txn *t, enum store_dbi dbi, const void *key, size_t klen, const void *val,
	   size_t vlen, unsigned flags, const char **error_r);
/* 1 deleted, 0 not found, -1 error. */
int db_del(struct store_txn *t, enum store_dbi dbi, const void *key, size_t klen,
	   const char **error_r);
int db_fail(struct store_txn *t, int rc, const char **error_r);
int meta_get(struct store_txn *t, const char *name, uint64_t *v_r, const char **error_r);
int meta_put(struct store_txn *t, const char *name, uint64_t v, const char **error_r);
/* Returns the next value of the counter (starting at 1) and stores it. */
int meta_next(struct store_txn *t, const char *name, uint64_t *v_r, const char **error_r);

/* ---- records ---- */
int account_load(struct store_txn *t, uint32_t id, struct store_account *a, const char **error_r);
int account_save(struct store_txn *t, const struct store_account *a, const char **error_r);
int mailbox_load(struct store_txn *t, uint32_t id, struct store_mailbox *m, const char **error_r);
int mailbox_save(struct store_txn *t, const struct store_mailbox *m, const char **error_r);
void message_key(uint8_t key[8], uint32_t mailbox_id, uint32_t uid);
/* The mailbox record is keyed right after the mailbox's messages (UIDs stop
 * below it), so a delivery's new message and the mailbox's new UIDNEXT and
 * counts land on the same B-tree page: one page written, not two. */
#define MAILBOX_REC_UID UINT32_MAX
#define MESSAGE_REC_LEN 88
void message_encode(const struct store_message *m, uint8_t out[MESSAGE_REC_LEN]);
int message_decode(const void *data, size_t len, uint32_t uid, struct store_message *m);
int message_save(struct store_txn *t, uint32_t mailbox_id, const struct store_message *m,
		 const char **error_r);
int change_log(struct store_txn *t, uint32_t mailbox_id, uint64_t modseq, uint32_t uid,
	       enum store_change_kind kind, const char **error_r);
/* Drops the log entry of msg's last flag change (a later change or its
 * expunge supersedes it: readers want each message's latest change only),
 * so the log keeps at most one flag entry per message. */
int change_unlog_flags(struct store_txn *t, uint32_t mailbox_id, const struct store_message *msg,
		       const char **error_r);

/* ---- blobs (store/blobs.c) ----
 * Message bytes are cut into chunks of BLOB_CHUNK_SIZE; each chunk value is a
 * format byte (CHUNK_RAW or CHUNK_ZSTD) and the bytes, compressed with zstd
 * when that saves at least 1/16. The cached parse is kept raw, so a pointer
 * to it stays valid for the transaction. */
enum { CHUNK_RAW = 0, CHUNK_ZSTD = 1 };
/* Chunks smaller than this are never compressed. */
#define CHUNK_COMPRESS_MIN 256
#define CHUNK_KEY_LEN 12
/* u64be storage number . u32be chunk index (or CHUNK_PARSED) */
void chunk_key(uint8_t key[CHUNK_KEY_LEN], uint64_t seq, uint32_t idx);
/* A chunk value: format byte + bytes, compressed (when compress) if that
 * saves at least 1/16; *out_r is malloc'd. */
void blob_encode_chunk(const uint8_t *data, size_t n, bool compress, uint8_t **out_r,
		       size_t *len_r);

/* A message's bytes made ready for storing (hashed, cut, compressed) outside
 * the write transaction, which other processes wait on. */
struct blob_prep {
	uint8_t id[STORE_BLOB_ID_LEN];
	uint64_t size;
	uint32_t n_chunks;
	uint8_t **chunk;     /* encoded chunk values */
	size_t *chunk_len;
	uint8_t *parsed;     /* encoded parse, or NULL */
	size_t parsed_len;
	bool hashed;         /* id holds the content hash */
	bool borrowed;       /* a copy of a store_prepared's: not freed here */
};
/* hash: compute the content id (not needed for a unique delivery) */
void blob_prepare(struct blob_prep *p, const void *data, size_t size, const void *parsed,
		  size_t parsed_size, bool compress, bool hash);
void blob_prep_free(struct blob_prep *p);
/* store_prepare()'s result */
struct store_prepared {
	struct blob_prep blob;
};
/* Adds refs references to the blob, storing its chunks when it is new;
 * *id_r gets its id: the content hash, or with unique (bytes known to be
 * unlike any other, such as a delivery with its own Received: field) an id
 * made of a new storage number, never looked up by content. */
int blob_ref_prepared(struct store_txn *t, const struct blob_prep *p, uint64_t refs, bool unique,
		      uint8_t id_r[STORE_BLOB_ID_LEN], const char **error_r);

void blob_hash(const void *data, size_t len, uint8_t out[STORE_BLOB_ID_LEN]);
/* blob_prepare + blob_ref_prepared, inside the transaction; *id_r gets the
 * blob id. */
int blob_ref(struct store_txn *t, const void *data, size_t size, const void *parsed,
	     size_t parsed_size, uint64_t refs, bool unique, uint8_t id_r[STORE_BLOB_ID_LEN],
	     const char **error_r);
/* The message size recorded in a blob record value (for statistics). */
uint64_t blob_record_size(const void *rec, size_t len);
/* Drops one reference, freeing the bytes with the last. */
int blob_unref(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN], const char **error_r);
/* Adds one reference to an existing blob. */
int blob_addref(struct store_txn *t, const uint8_t id[STORE_BLOB_ID_LEN], const char **error_r);

/* ---- usage and quota warnings ---- */
/* Adds (or with negative deltas removes) usage of an account, and inserts a
 * quota warning into the INBOX when a threshold is crossed upwards. */
int usage_change(struct store_txn *t, uint32_t account_id, int64_t dbytes, int64_t dmessages,
		 const char **error_r);
/* Appends one message to a mailbox (blob already referenced): new UID,
 * modseq, counts, change log. Does not touch account usage. */
int mailbox_append(struct store_txn *t, struct store_mailbox *m, uint32_t flags,
		   uint64_t keywords, int64_t internal_date, uint64_t size,
		   const uint8_t blob[STORE_BLOB_ID_LEN], uint32_t *uid_r, const char **error_r);
/* Removes one message record (blob unreferenced, counts and change log
 * updated). Does not touch account usage. */
int mailbox_remove(struct store_txn *t, struct store_mailbox *m, const struct store_message *msg,
		   const char **error_r);

#endif
