/* The spam classifier's token database: one LMDB environment of its own
 * (global.data_dir/spam), separate from the mailbox store because the milter
 * may run on another host beside Postfix.
 *
 * Tokens are 64-bit hashes (the caller hashes); each maps to how many trained
 * spam and ham messages contained it. Key 0 is reserved for the message
 * totals, so callers must never pass a zero hash (tokendb_key() avoids it).
 *
 * Readers take a snapshot (many at once, from any thread: the environment is
 * opened with MDB_NOTLS); a writer gathers changes in memory and applies them
 * in one transaction at commit, growing the map when it is full.
 * Functions return 0 or -1 with *error_r (caller frees), and never log. */
#ifndef CONGVU_TOKENDB_H
#define CONGVU_TOKENDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tokendb;
struct tokendb_reader;
struct tokendb_writer;

struct tokendb_counts {
	uint32_t spam;
	uint32_t ham;
};

/* Opens (creating dir and the database when create) the environment in dir.
 * map_size: the initial map size in bytes. */
int tokendb_open(const char *dir, uint64_t map_size, bool create, struct tokendb **db_r,
                 char **error_r);
void tokendb_close(struct tokendb **db);

/* A non-zero key for a token of len bytes (FNV-1a 64, 0 mapped to 1). */
uint64_t tokendb_key(const void *token, size_t len);

int tokendb_read_begin(struct tokendb *db, struct tokendb_reader **reader_r, char **error_r);
/* Trained message totals: counts->spam and counts->ham. */
int tokendb_read_totals(struct tokendb_reader *reader, struct tokendb_counts *totals_r,
                        char **error_r);
/* Looks up n keys; counts_r[i] is zero for an unknown key. */
int tokendb_lookup(struct tokendb_reader *reader, const uint64_t *keys, size_t n,
                   struct tokendb_counts *counts_r, char **error_r);
void tokendb_read_end(struct tokendb_reader **reader);

/* Only one writer at a time per process (LMDB serialises across processes). */
struct tokendb_writer *tokendb_write_begin(struct tokendb *db);
/* Adds (delta +1) or removes (delta -1) one message of the given class with
 * its distinct keys. Counts never go below zero. */
void tokendb_write_message(struct tokendb_writer *w, bool spam, int delta, const uint64_t *keys,
                           size_t n);
/* Applies everything in one durable transaction and frees the writer. */
int tokendb_write_commit(struct tokendb_writer **w, char **error_r);
void tokendb_write_abort(struct tokendb_writer **w);

#endif
