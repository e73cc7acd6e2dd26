/* The token database of the spam classifier (see tokendb.h).
 * Layout: one unnamed LMDB database (MDB_INTEGERKEY); key = 8-byte token
 * hash in host order,
 * value = two uint32 counts (spam, ham). Key 0 holds the message totals. */
#include "config.h"

#include "str.h"
#include "tokendb.h"
#include "xalloc.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct tokendb {
	MDB_env *env;
	MDB_dbi dbi;
	uint64_t map_size;
	/* Readers hold it shared for the life of their snapshot; changing the
	 * map size needs it exclusive (LMDB forbids that with live
	 * transactions in the process). */
	pthread_rwlock_t resize_lock;
};

struct tokendb_reader {
	struct tokendb *db;
	MDB_txn *txn;
};

struct delta {
	uint64_t key; /* 0: empty slot */
	int64_t spam;
	int64_t ham;
};

struct tokendb_writer {
	struct tokendb *db;
	struct delta *slots;
	size_t cap, used;
	int64_t total_spam, total_ham;
};

static char *errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *errorf(const char *fmt, ...)
{
	struct str s = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&s, fmt, ap);
	va_end(ap);
	return str_steal(&s);
}

static int mkdir_p(const char *dir)
{
	char *copy = xstrdup(dir);
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0750) < 0 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	int ret = mkdir(copy, 0750) < 0 && errno != EEXIST ? -1 : 0;
	free(copy);
	return ret;
}

int tokendb_open(const char *dir, uint64_t map_size, bool create, struct tokendb **db_r,
                 char **error_r)
{
	if (create && mkdir_p(dir) < 0) {
		*error_r = errorf("token database %s: %s", dir, strerror(errno));
		return -1;
	}
	struct tokendb *db = xcalloc(1, sizeof(*db));
	pthread_rwlock_init(&db->resize_lock, NULL);
	int rc = mdb_env_create(&db->env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(db->env, (size_t)map_size);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(db->env, 510);
	/* MDB_NOTLS: libmilter threads may start and end read snapshots. */
	if (rc == 0)
		rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0640);
	if (rc != 0) {
		*error_r = errorf("token database %s: %s", dir, mdb_strerror(rc));
		if (db->env != NULL)
			mdb_env_close(db->env);
		pthread_rwlock_destroy(&db->resize_lock);
		free(db);
		return -1;
	}
	int dead = 0;
	(void)mdb_reader_check(db->env, &dead);
	MDB_txn *txn;
	rc = mdb_txn_begin(db->env, NULL, 0, &txn);
	if (rc == 0) {
		/* 8-byte native keys: LMDB compares them as integers. */
		rc = mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, &db->dbi);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		*error_r = errorf("token database %s: %s", dir, mdb_strerror(rc));
		mdb_env_close(db->env);
		pthread_rwlock_destroy(&db->resize_lock);
		free(db);
		return -1;
	}
	MDB_envinfo info;
	mdb_env_info(db->env, &info);
	db->map_size = info.me_mapsize;
	*db_r = db;
	return 0;
}

void tokendb_close(struct tokendb **dbp)
{
	struct tokendb *db = *dbp;
	if (db == NULL)
		return;
	mdb_env_close(db->env);
	pthread_rwlock_destroy(&db->resize_lock);
	x_free(dbp);
}

uint64_t tokendb_key(const void *token, size_t len)
{
	const unsigned char *p = token;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/* Final avalanche so that keys spread over the B-tree evenly. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h == 0 ? 1 : h;
}

int tokendb_read_begin(struct tokendb *db, struct tokendb_reader **reader_r, char **error_r)
{
	MDB_txn *txn;
	pthread_rwlock_rdlock(&db->resize_lock);
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size. */
		pthread_rwlock_unlock(&db->resize_lock);
		pthread_rwlock_wrlock(&db->resize_lock);
		rc = mdb_env_set_mapsize(db->env, 0);
		pthread_rwlock_unlock(&db->resize_lock);
		pthread_rwlock_rdlock(&db->resize_lock);
		if (rc == 0)
			rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	}
	if (rc == MDB_READERS_FULL) {
		int dead = 0;
		(void)mdb_reader_check(db->env, &dead);
		rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&db->resize_lock);
		*error_r = errorf("token database: %s", mdb_strerror(rc));
		return -1;
	}
	struct tokendb_reader *r = xmalloc(sizeof(*r));
	r->db = db;
	r->txn = txn;
	*reader_r = r;
	return 0;
}

static void get_counts(const MDB_val *v, struct tokendb_counts *c)
{
	if (v->mv_size == sizeof(*c)) {
		memcpy(c, v->mv_data, sizeof(*c));
	} else {
		c->spam = 0;
		c->ham = 0;
	}
}

static int lookup_one(MDB_txn *txn, MDB_dbi dbi, uint64_t key, struct tokendb_counts *c,
                      char **error_r)
{
	MDB_val k = {sizeof(key), &key}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		c->spam = 0;
		c->ham = 0;
		return 0;
	}
	if (rc != 0) {
		*error_r = errorf("token database: %s", mdb_strerror(rc));
		return -1;
	}
	get_counts(&v, c);
	return 0;
}

int tokendb_read_totals(struct tokendb_reader *r, struct tokendb_counts *totals_r, char **error_r)
{
	return lookup_one(r->txn, r->db->dbi, 0, totals_r, error_r);
}

int tokendb_lookup(struct tokendb_reader *r, const uint64_t *keys, size_t n,
                   struct tokendb_counts *counts_r, char **error_r)
{
	for (size_t i = 0; i < n; i++)
		if (lookup_one(r->txn, r->db->dbi, keys[i], &counts_r[i], error_r) < 0)
			return -1;
	return 0;
}

void tokendb_read_end(struct tokendb_reader **rp)
{
	struct tokendb_reader *r = *rp;
	if (r == NULL)
		return;
	mdb_txn_abort(r->txn);
	pthread_rwlock_unlock(&r->db->resize_lock);
	x_free(rp);
}

/* ---- writer: changes gathered in an open-addressing table ---- */

struct tokendb_writer *tokendb_write_begin(struct tokendb *db)
{
	struct tokendb_writer *w = xcalloc(1, sizeof(*w));
	w->db = db;
	w->cap = 1024;
	w->slots = xcalloc(w->cap, sizeof(*w->slots));
	return w;
}

static struct delta *slot_for(struct tokendb_writer *w, uint64_t key)
{
	if ((w->used + 1) * 4 > w->cap * 3) {
		size_t ncap = xmul(w->cap, 2);
		struct delta *ns = xcalloc(ncap, sizeof(*ns));
		for (size_t i = 0; i < w->cap; i++) {
			if (w->slots[i].key == 0)
				continue;
			size_t j = (size_t)w->slots[i].key & (ncap - 1);
			while (ns[j].key != 0)
				j = (j + 1) & (ncap - 1);
			ns[j] = w->slots[i];
		}
		free(w->slots);
		w->slots = ns;
		w->cap = ncap;
	}
	size_t j = (size_t)key & (w->cap - 1);
	while (w->slots[j].key != 0 && w->slots[j].key != key)
		j = (j + 1) & (w->cap - 1);
	if (w->slots[j].key == 0) {
		w->slots[j].key = key;
		w->used++;
	}
	return &w->slots[j];
}

void tokendb_write_message(struct tokendb_writer *w, bool spam, int delta, const uint64_t *keys,
                           size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (keys[i] == 0)
			continue;
		struct delta *d = slot_for(w, keys[i]);
		if (spam)
			d->spam += delta;
		else
			d->ham += delta;
	}
	if (spam)
		w->total_spam += delta;
	else
		w->total_ham += delta;
}

static uint32_t apply(uint32_t v, int64_t d)
{
	int64_t r = (int64_t)v + d;
	if (r < 0)
		return 0;
	if (r > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)r;
}

static int put_delta(MDB_txn *txn, MDB_dbi dbi, uint64_t key, int64_t dspam, int64_t dham)
{
	MDB_val k = {sizeof(key), &key}, v;
	struct tokendb_counts c = {0, 0};
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0)
		get_counts(&v, &c);
	else if (rc != MDB_NOTFOUND)
		return rc;
	c.spam = apply(c.spam, dspam);
	c.ham = apply(c.ham, dham);
	if (c.spam == 0 && c.ham == 0 && key != 0) {
		rc = mdb_del(txn, dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	v.mv_size = sizeof(c);
	v.mv_data = &c;
	return mdb_put(txn, dbi, &k, &v, 0);
}

static int cmp_delta(const void *a, const void *b)
{
	uint64_t x = ((const struct delta *)a)->key, y = ((const struct delta *)b)->key;
	return x < y ? -1 : x > y;
}

int tokendb_write_commit(struct tokendb_writer **wp, char **error_r)
{
	struct tokendb_writer *w = *wp;
	struct tokendb *db = w->db;
	/* Compact and sort: LMDB writes in key order touch fewer pages. */
	size_t n = 0;
	for (size_t i = 0; i < w->cap; i++)
		if (w->slots[i].key != 0 && (w->slots[i].spam != 0 || w->slots[i].ham != 0))
			w->slots[n++] = w->slots[i];
	qsort(w->slots, n, sizeof(*w->slots), cmp_delta);
	int rc;
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn;
		rc = mdb_txn_begin(db->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			pthread_rwlock_wrlock(&db->resize_lock);
			rc = mdb_env_set_mapsize(db->env, 0);
			pthread_rwlock_unlock(&db->resize_lock);
			if (rc == 0)
				rc = mdb_txn_begin(db->env, NULL, 0, &txn);
		}
		if (rc != 0)
			break;
		rc = put_delta(txn, db->dbi, 0, w->total_spam, w->total_ham);
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = put_delta(txn, db->dbi, w->slots[i].key, w->slots[i].spam,
			               w->slots[i].ham);
		if (rc == 0) {
			rc = mdb_txn_commit(txn);
		} else {
			mdb_txn_abort(txn);
		}
		if (rc != MDB_MAP_FULL || attempt >= 8)
			break;
		/* Map full: double it and apply everything again. */
		MDB_envinfo info;
		mdb_env_info(db->env, &info);
		pthread_rwlock_wrlock(&db->resize_lock);
		rc = mdb_env_set_mapsize(db->env, info.me_mapsize * 2);
		pthread_rwlock_unlock(&db->resize_lock);
		if (rc != 0)
			break;
		db->map_size = info.me_mapsize * 2;
	}
	free(w->slots);
	x_free(wp);
	if (rc != 0) {
		*error_r = errorf("token database: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

void tokendb_write_abort(struct tokendb_writer **wp)
{
	struct tokendb_writer *w = *wp;
	if (w == NULL)
		return;
	free(w->slots);
	x_free(wp);
}
