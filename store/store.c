/* The store's environment: opening, transactions, the write loop that grows
 * the map, record codecs and LMDB helpers. */
#include "config.h"
#include "store-private.h"
#include "xalloc.h"
#include "str.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char STORE_ERR_OVER_QUOTA[] = "over quota";
const char STORE_ERR_NO_ACCOUNT[] = "no such account";
const char STORE_ERR_NO_MAILBOX[] = "no such mailbox";
const char STORE_ERR_EXISTS[] = "already exists";

static const char *const dbi_names[DBI_COUNT] = {
	[DBI_META] = "meta",
	[DBI_ACCOUNTS] = "accounts",
	[DBI_ACCOUNT_NAMES] = "account_names",
	[DBI_MAILBOX_NAMES] = "mailbox_names",
	[DBI_MESSAGES] = "messages",
	[DBI_CHANGES] = "changes",
	[DBI_BLOBS] = "blobs",
	[DBI_CHUNKS] = "chunks",
	[DBI_QUEUE] = "queue",
};

/* The largest map we grow to: far beyond any disk here, but bounded so a
 * runaway cannot ask for an absurd mapping. */
#define MAP_SIZE_MAX (1ULL << 42)
#define WRITE_RETRIES 12

/* ---- record codec ---- */

static void rw_grow(struct rec_writer *w, size_t n)
{
	if (w->len + n <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n)
		cap = xmul(cap, 2);
	w->buf = xrealloc(w->buf, cap);
	w->cap = cap;
}

void rw_u8(struct rec_writer *w, uint8_t v)
{
	rw_grow(w, 1);
	w->buf[w->len++] = v;
}

void rw_u32(struct rec_writer *w, uint32_t v)
{
	rw_grow(w, 4);
	for (int i = 0; i < 4; i++)
		w->buf[w->len++] = (uint8_t)(v >> (8 * i));
}

void rw_u64(struct rec_writer *w, uint64_t v)
{
	rw_grow(w, 8);
	for (int i = 0; i < 8; i++)
		w->buf[w->len++] = (uint8_t)(v >> (8 * i));
}

void rw_bytes(struct rec_writer *w, const void *p, size_t n)
{
	rw_grow(w, n);
	if (n > 0)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void rw_str(struct rec_writer *w, const char *s)
{
	size_t n = strlen(s);
	rw_u32(w, (uint32_t)n);
	rw_bytes(w, s, n);
}

void rw_free(struct rec_writer *w)
{
	x_free(&w->buf);
	w->len = w->cap = 0;
}

static bool rr_need(struct rec_reader *r, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		return false;
	}
	return true;
}

uint8_t rr_u8(struct rec_reader *r)
{
	if (!rr_need(r, 1))
		return 0;
	r->left--;
	return *r->p++;
}

uint32_t rr_u32(struct rec_reader *r)
{
	if (!rr_need(r, 4))
		return 0;
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)r->p[i] << (8 * i);
	r->p += 4;
	r->left -= 4;
	return v;
}

uint64_t rr_u64(struct rec_reader *r)
{
	if (!rr_need(r, 8))
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	r->left -= 8;
	return v;
}

void rr_bytes(struct rec_reader *r, void *out, size_t n)
{
	if (!rr_need(r, n)) {
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
}

void rr_str(struct rec_reader *r, char *out, size_t outsize)
{
	uint32_t n = rr_u32(r);
	if (r->bad || n >= outsize || !rr_need(r, n)) {
		r->bad = true;
		out[0] = '\0';
		return;
	}
	memcpy(out, r->p, n);
	out[n] = '\0';
	r->p += n;
	r->left -= n;
}

/* ---- LMDB helpers ---- */

int db_fail(struct store_txn *t, int rc, const char **error_r)
{
	t->mdb_err = rc;
	switch (rc) {
	case MDB_MAP_FULL:
		*error_r = "store map full";
		break;
	case ENOSPC:
		*error_r = "disk full";
		break;
	case EFBIG:
		*error_r = "file too large (disk full)";
		break;
	default:
		*error_r = mdb_strerror(rc);
	}
	return -1;
}

int db_get(struct store_txn *t, enum store_dbi dbi, const void *key, size_t klen, MDB_val *val,
	   const char **error_r)
{
	MDB_val k = { klen, (void *)key };
	int rc = mdb_get(t->txn, t->store->dbi[dbi], &k, val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return db_fail(t, rc, error_r);
	return 1;
}

int db_put(struct store_txn *t, enum store_dbi dbi, const void *key, size_t klen, const void *val,
	   size_t vlen, unsigned flags, const char **error_r)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc = mdb_put(t->txn, t->store->dbi[dbi], &k, &v, flags);
	if (rc != 0)
		return db_fail(t, rc, error_r);
	return 0;
}

int db_del(struct store_txn *t, enum store_dbi dbi, const void *key, size_t klen,
	   const char **error_r)
{
	MDB_val k = { klen, (void *)key };
	int rc = mdb_del(t->txn, t->store->dbi[dbi], &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return db_fail(t, rc, error_r);
	return 1;
}

int meta_get(struct store_txn *t, const char *name, uint64_t *v_r, const char **error_r)
{
	MDB_val v;
	int ret = db_get(t, DBI_META, name, strlen(name), &v, error_r);
	*v_r = 0;
	if (ret == 1) {
		if (v.mv_size != 8) {
			*error_r = "corrupt meta record";
			return -1;
		}
		*v_r = get_be64(v.mv_data);
	}
	return ret;
}

int meta_put(struct store_txn *t, const char *name, uint64_t v, const char **error_r)
{
	uint8_t buf[8];
	put_be64(buf, v);
	return db_put(t, DBI_META, name, strlen(name), buf, 8, 0, error_r);
}

int meta_next(struct store_txn *t, const char *name, uint64_t *v_r, const char **error_r)
{
	uint64_t v;
	if (meta_get(t, name, &v, error_r) < 0)
		return -1;
	*v_r = v + 1;
	return meta_put(t, name, v + 1, error_r);
}

/* ---- opening ---- */

static int mkdir_p(const char *path, mode_t mode)
{
	char *copy = xstrdup(path);
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	int ret = mkdir(copy, mode) < 0 && errno != EEXIST ? -1 : 0;
	free(copy);
	return ret;
}

static int open_dbis(struct store *s, const char **error_r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(s->env, 0);
		rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn);
	}
	if (rc != 0) {
		*error_r = mdb_strerror(rc);
		return -1;
	}
	for (int i = 0; i < DBI_COUNT; i++) {
		rc = mdb_dbi_open(txn, dbi_names[i], s->read_only ? 0 : MDB_CREATE, &s->dbi[i]);
		if (rc != 0) {
			mdb_txn_abort(txn);
			*error_r = rc == MDB_NOTFOUND ? "store not initialised" : mdb_strerror(rc);
			return -1;
		}
	}
	/* The schema version: refuse a store of another layout. */
	MDB_val k = { 7, "version" }, v;
	rc = mdb_get(txn, s->dbi[DBI_META], &k, &v);
	if (rc == 0) {
		if (v.mv_size != 8 || get_be64(v.mv_data) != STORE_SCHEMA_VERSION) {
			mdb_txn_abort(txn);
			*error_r = v.mv_size == 8 && get_be64(v.mv_data) < STORE_SCHEMA_VERSION
					   ? "store written by an older congvu (schema version 1): "
					     "create a new one"
					   : "store written by a newer congvu (schema version)";
			return -1;
		}
	} else if (rc == MDB_NOTFOUND && !s->read_only) {
		uint8_t buf[8];
		put_be64(buf, STORE_SCHEMA_VERSION);
		MDB_val nv = { 8, buf };
		rc = mdb_put(txn, s->dbi[DBI_META], &k, &nv, 0);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		*error_r = mdb_strerror(rc);
		return -1;
	}
	/* Committed even when read-only: handles opened in an aborted
	 * transaction are closed with it. */
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		*error_r = mdb_strerror(rc);
		return -1;
	}
	return 0;
}

int store_open(const char *data_dir, const struct store_options *opts, struct store **store_r,
	       const char **error_r)
{
	struct store *s = xcalloc(1, sizeof(*s));
	pthread_rwlock_init(&s->resize_lock, NULL);
	struct str path = STR_INIT;
	str_printf(&path, "%s/store", data_dir);
	s->dir = str_steal(&path);
	str_printf(&path, "%s/data.mdb", s->dir);
	s->datafile = str_steal(&path);
	str_printf(&path, "%s/notify", s->dir);
	s->notifyfile = str_steal(&path);
	s->notify_write_fd = -1;
	s->read_only = opts->read_only;
	s->compress = !opts->no_compression;
	s->notify_fd = -1;
	s->map_size = opts->map_size ? opts->map_size : (1ULL << 30);
	s->n_warn_percents = opts->n_warn_percents > 8 ? 8 : opts->n_warn_percents;
	memcpy(s->warn_percents, opts->warn_percents, sizeof(s->warn_percents));

	struct stat st;
	if (stat(s->dir, &st) < 0) {
		if (errno != ENOENT || !opts->create || mkdir_p(s->dir, 0750) < 0) {
			*error_r = errno == ENOENT ? "store does not exist (create it with congvu-quota)"
						   : "cannot create the store directory";
			goto fail;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		*error_r = "store path is not a directory";
		goto fail;
	}

	int rc = mdb_env_create(&s->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, DBI_COUNT + 2);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(s->env, 4096);
	if (rc == 0)
		rc = mdb_env_set_mapsize(s->env, s->map_size);
	if (rc == 0)
		rc = mdb_env_open(s->env, s->dir,
				  MDB_NOTLS | MDB_NORDAHEAD | (s->read_only ? MDB_RDONLY : 0), 0640);
	if (rc != 0) {
		*error_r = rc == EACCES ? "permission denied on the store" : mdb_strerror(rc);
		goto fail;
	}
	/* Clear reader slots left by crashed processes, so they do not pin
	 * old pages forever. */
	int dead;
	mdb_reader_check(s->env, &dead);
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	s->map_size = info.me_mapsize;
	if (open_dbis(s, error_r) < 0)
		goto fail;
	if (!s->read_only)
		s->notify_write_fd = open(s->notifyfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
	*store_r = s;
	return 0;
fail:
	store_close(&s);
	return -1;
}

void store_close(struct store **sp)
{
	struct store *s = *sp;
	if (s == NULL)
		return;
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->notify_fd >= 0)
		close(s->notify_fd);
	if (s->notify_write_fd >= 0)
		close(s->notify_write_fd);
	free(s->dir);
	free(s->datafile);
	free(s->notifyfile);
	pthread_rwlock_destroy(&s->resize_lock);
	x_free(sp);
}

int store_notify_fd(struct store *s)
{
	if (s->notify_fd >= 0)
		return s->notify_fd;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	/* Every writer rewrites the notify file after its commit returned, so
	 * the event comes when the commit is visible to readers. (Watching
	 * data.mdb would wake readers at the first data page, before the meta
	 * page makes the commit visible, and inotify folds the later events
	 * into that one.) */
	if (inotify_add_watch(fd, s->notifyfile, IN_MODIFY) < 0) {
		close(fd);
		return -1;
	}
	s->notify_fd = fd;
	return fd;
}

void store_notify_drain(struct store *s)
{
	char buf[4096];
	if (s->notify_fd < 0)
		return;
	while (read(s->notify_fd, buf, sizeof(buf)) > 0)
		;
}

/* ---- transactions ---- */

/* Takes the resize lock exclusively (every other transaction of this
 * process has ended), waiting at most 10 s: a thread that resizes while it
 * holds a transaction of its own gets an error instead of a deadlock. */
static int resize_lock(struct store *s, const char **error_r)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_rwlock_timedwrlock(&s->resize_lock, &ts) != 0) {
		*error_r = "store busy: cannot resize the map while transactions are open";
		return -1;
	}
	return 0;
}

/* Begins a transaction holding the resize lock shared; released when it
 * ends (txn_end). */
static int txn_begin(struct store *s, bool write, MDB_txn **txn_r, const char **error_r)
{
	for (int tries = 0; tries < 3; tries++) {
		pthread_rwlock_rdlock(&s->resize_lock);
		int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, txn_r);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&s->resize_lock);
		if (rc != MDB_MAP_RESIZED) {
			*error_r = rc == ENOSPC ? "disk full" : mdb_strerror(rc);
			return -1;
		}
		/* Another process grew the map: adopt its size. */
		if (resize_lock(s, error_r) < 0)
			return -1;
		mdb_env_set_mapsize(s->env, 0);
		MDB_envinfo info;
		mdb_env_info(s->env, &info);
		s->map_size = info.me_mapsize;
		pthread_rwlock_unlock(&s->resize_lock);
	}
	*error_r = "store map keeps changing size";
	return -1;
}

static void txn_end(struct store *s)
{
	pthread_rwlock_unlock(&s->resize_lock);
}

int store_read_begin(struct store *s, struct store_txn **txn_r, const char **error_r)
{
	MDB_txn *txn;
	if (txn_begin(s, false, &txn, error_r) < 0)
		return -1;
	struct store_txn *t = xcalloc(1, sizeof(*t));
	t->store = s;
	t->txn = txn;
	*txn_r = t;
	return 0;
}

void store_read_end(struct store_txn **tp)
{
	struct store_txn *t = *tp;
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	txn_end(t->store);
	x_free(tp);
}

static int grow_map(struct store *s, const char **error_r)
{
	uint64_t size = s->map_size * 2;
	if (size > MAP_SIZE_MAX) {
		*error_r = "store map at its largest size";
		return -1;
	}
	if (resize_lock(s, error_r) < 0)
		return -1;
	int rc = mdb_env_set_mapsize(s->env, size);
	if (rc != 0) {
		pthread_rwlock_unlock(&s->resize_lock);
		*error_r = mdb_strerror(rc);
		return -1;
	}
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	s->map_size = info.me_mapsize;
	pthread_rwlock_unlock(&s->resize_lock);
	return 0;
}

/* Wakes the readers' inotify watches, after the commit is visible. */
static void notify_commit(struct store *s)
{
	static const char byte = '.';
	if (s->notify_write_fd >= 0)
		(void)!pwrite(s->notify_write_fd, &byte, 1, 0);
}

int store_write(struct store *s, store_write_fn *fn, void *ctx, const char **error_r)
{
	if (s->read_only) {
		*error_r = "store opened read-only";
		return -1;
	}
	for (int attempt = 0; attempt < WRITE_RETRIES; attempt++) {
		struct store_txn t = { .store = s, .write = true };
		if (txn_begin(s, true, &t.txn, error_r) < 0)
			return -1;
		int ret = fn(&t, ctx, error_r);
		if (ret == 0) {
			int rc = mdb_txn_commit(t.txn);
			txn_end(s);
			if (rc == 0) {
				notify_commit(s);
				return 0;
			}
			db_fail(&t, rc, error_r);
		} else {
			mdb_txn_abort(t.txn);
			txn_end(s);
		}
		if (t.mdb_err != MDB_MAP_FULL)
			return -1;
		/* No transaction of ours is open now: the map may be resized. */
		if (grow_map(s, error_r) < 0)
			return -1;
	}
	*error_r = "store map full after growing";
	return -1;
}

int store_change_counter(struct store *s, uint64_t *counter_r, const char **error_r)
{
	struct store_txn *t;
	if (store_read_begin(s, &t, error_r) < 0)
		return -1;
	/* LMDB numbers every committed write transaction: that is the counter. */
	*counter_r = (uint64_t)mdb_txn_id(t->txn);
	store_read_end(&t);
	return 0;
}

static uint64_t dbi_entries(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat st;
	return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

int store_stats(struct store *s, struct store_stats *st, const char **error_r)
{
	struct store_txn *t;
	memset(st, 0, sizeof(*st));
	if (store_read_begin(s, &t, error_r) < 0)
		return -1;
	st->accounts = dbi_entries(t->txn, s->dbi[DBI_ACCOUNTS]);
	st->mailboxes = dbi_entries(t->txn, s->dbi[DBI_MAILBOX_NAMES]);
	/* each mailbox's record shares the messages tree */
	st->messages = dbi_entries(t->txn, s->dbi[DBI_MESSAGES]) - st->mailboxes;
	st->blobs = dbi_entries(t->txn, s->dbi[DBI_BLOBS]);
	st->chunks = dbi_entries(t->txn, s->dbi[DBI_CHUNKS]);
	st->changes = dbi_entries(t->txn, s->dbi[DBI_CHANGES]);
	st->queued = dbi_entries(t->txn, s->dbi[DBI_QUEUE]);
	MDB_cursor *cur;
	if (mdb_cursor_open(t->txn, s->dbi[DBI_BLOBS], &cur) == 0) {
		MDB_val k, v;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			st->blob_bytes += blob_record_size(v.mv_data, v.mv_size);
		}
		mdb_cursor_close(cur);
	}
	if (mdb_cursor_open(t->txn, s->dbi[DBI_CHUNKS], &cur) == 0) {
		MDB_val k, v;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size == CHUNK_KEY_LEN &&
			    get_be32((const uint8_t *)k.mv_data + 8) != CHUNK_PARSED &&
			    v.mv_size > CHUNK_COMPRESS_MIN && ((const uint8_t *)v.mv_data)[0] == CHUNK_RAW)
				st->uncompressed_chunks++;
		}
		mdb_cursor_close(cur);
	}
	MDB_envinfo info;
	MDB_stat est;
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &est);
	st->page_size = est.ms_psize;
	st->pages_used = info.me_last_pgno + 1;
	st->map_size = info.me_mapsize;
	store_read_end(&t);
	struct stat fst;
	if (stat(s->datafile, &fst) == 0)
		st->file_size = (uint64_t)fst.st_size;
	return 0;
}
