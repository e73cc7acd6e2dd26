/* The mailbox store on a real LMDB environment in a temporary directory. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store-private.h" /* to make usage drift for recalc */
#include "str.h"
#include "xalloc.h"

static char dir[64];
static struct store *st;
static const char *err;

static void rm_rf(const char *path)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	ck_assert_int_eq(system(cmd), 0);
}

static struct store *open_with(uint64_t map_size, unsigned n_warn, const unsigned *warn)
{
	struct store_options o = { .map_size = map_size, .create = true };
	for (unsigned i = 0; i < n_warn; i++)
		o.warn_percents[i] = warn[i];
	o.n_warn_percents = n_warn;
	struct store *s;
	if (store_open(dir, &o, &s, &err) < 0)
		ck_abort_msg("store_open: %s", err);
	return s;
}

static void setup(void)
{
	strcpy(dir, "/tmp/congvu-test-store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	st = open_with(0, 0, NULL);
}

static void teardown(void)
{
	store_close(&st);
	rm_rf(dir);
}

static void add_account(const char *addr, uint64_t quota)
{
	if (store_account_add(st, addr, ACCOUNT_PERSONAL, quota, "$y$x", &err) < 0)
		ck_abort_msg("account_add %s: %s", addr, err);
}

static struct store_account get_account(const char *addr)
{
	struct store_account a;
	ck_assert_int_eq(store_account_get(st, addr, &a, &err), 1);
	return a;
}

static char *make_message(size_t size, unsigned seed)
{
	char *m = xmalloc(size);
	int n = snprintf(m, size, "Subject: test %u\r\n\r\n", seed);
	for (size_t i = (size_t)n; i < size; i++)
		m[i] = (char)('a' + (i * 7 + seed) % 26);
	if (size >= 2) {
		m[size - 2] = '\r';
		m[size - 1] = '\n';
	}
	return m;
}

/* A message of incompressible bytes (xorshift), so it takes its full size
 * on disk whatever the compression. */
static char *make_random_message(size_t size, unsigned seed)
{
	char *m = make_message(size, seed);
	uint64_t x = 88172645463325252ULL ^ seed;
	for (size_t i = 40; i + 2 < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		m[i] = (char)(x & 0xff);
	}
	return m;
}

/* Delivers one message to rcpts (INBOX); returns the statuses in out. */
static void deliver(const char *msg, size_t size, const char **rcpts, size_t n,
		    struct store_rcpt *out)
{
	memset(out, 0, n * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i].address = rcpts[i];
	struct store_delivery d = { .data = msg, .size = size, .rcpts = out, .n_rcpts = n };
	if (store_deliver(st, &d, 1, &err) < 0)
		ck_abort_msg("deliver: %s", err);
}

static struct store_mailbox get_mailbox(uint32_t account_id, const char *name)
{
	struct store_txn *t;
	struct store_mailbox *m = xmalloc(sizeof(*m));
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_mailbox_get(t, account_id, name, m, &err), 1);
	store_read_end(&t);
	struct store_mailbox copy = *m;
	free(m);
	return copy;
}

START_TEST(test_account_defaults)
{
	add_account("a@lamdong.gov.vn", 4ULL << 30);
	struct store_account a = get_account("a@lamdong.gov.vn");
	ck_assert_uint_eq(a.quota_bytes, 4ULL << 30);
	ck_assert_uint_eq(a.used_bytes, 0);
	ck_assert_str_eq(a.password_hash, "$y$x");
	ck_assert_int_eq(store_account_add(st, "a@lamdong.gov.vn", ACCOUNT_PERSONAL, 1, "h", &err),
			 -1);
	ck_assert_ptr_eq(err, STORE_ERR_EXISTS);
	static const struct {
		const char *name;
		unsigned special;
	} expect[] = { { "INBOX", 0 },
		       { "Sent", MBOX_SPECIAL_SENT },
		       { "Drafts", MBOX_SPECIAL_DRAFTS },
		       { "Trash", MBOX_SPECIAL_TRASH },
		       { "Junk", MBOX_SPECIAL_JUNK } };
	uint32_t validity = 0;
	for (size_t i = 0; i < 5; i++) {
		struct store_mailbox m = get_mailbox(a.id, expect[i].name);
		ck_assert_uint_eq(m.special_use, expect[i].special);
		ck_assert(m.subscribed);
		ck_assert_uint_eq(m.uidnext, 1);
		ck_assert_uint_gt(m.uidvalidity, validity); /* strictly increasing */
		validity = m.uidvalidity;
	}
	/* "inbox" in any case is INBOX */
	struct store_mailbox m = get_mailbox(a.id, "iNbOx");
	ck_assert_str_eq(m.name, "INBOX");
}
END_TEST

START_TEST(test_deliver_many_recipients_stored_once)
{
	const char *rcpts[20];
	char names[20][40];
	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "u%d@lamdong.gov.vn", i);
		add_account(names[i], 1ULL << 30);
		rcpts[i] = names[i];
	}
	char *msg = make_message(200000, 1); /* several chunks */
	struct store_rcpt r[20];
	deliver(msg, 200000, rcpts, 20, r);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(r[i].status, RCPT_OK);
		ck_assert_uint_eq(r[i].uid, 1);
		ck_assert_uint_eq(get_account(names[i]).used_bytes, 200000);
	}
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 1);
	ck_assert_uint_eq(s.blob_bytes, 200000);
	ck_assert_uint_eq(s.messages, 20);
	ck_assert_uint_eq(s.chunks, 4); /* 200000 bytes in 64 KiB chunks */

	/* The bytes read back exactly, across chunk borders. */
	struct store_txn *t;
	struct store_message m;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_message_get(t, r[7].mailbox_id_out, 1, &m, &err), 1);
	ck_assert_uint_eq(m.size, 200000);
	char *back = xmalloc(200000);
	ck_assert_int_eq(store_txn_blob_read(t, m.blob, 0, back, 200000, &err), 0);
	ck_assert(memcmp(back, msg, 200000) == 0);
	ck_assert_int_eq(store_txn_blob_read(t, m.blob, 65530, back, 20, &err), 0);
	ck_assert(memcmp(back, msg + 65530, 20) == 0);
	ck_assert_int_eq(store_txn_blob_read(t, m.blob, 199990, back, 11, &err), -1);
	store_read_end(&t);
	free(back);

	/* The same content delivered again is still stored once. */
	deliver(msg, 200000, rcpts, 2, r);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 1);
	ck_assert_uint_eq(s.messages, 22);
	free(msg);
}
END_TEST

static uint32_t inbox_id(const char *addr)
{
	return get_mailbox(get_account(addr).id, "INBOX").id;
}

struct expunge_ctx {
	uint32_t mailbox;
	uint32_t *uids;
	size_t n;
	bool move;
	uint32_t dst;
	uint32_t *new_uids;
};

static int expunge_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct expunge_ctx *c = ctx;
	return store_txn_expunge(t, c->mailbox, c->uids, c->n, error_r);
}

static int copy_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct expunge_ctx *c = ctx;
	return store_txn_copy(t, c->mailbox, c->uids, c->n, c->dst, c->move, c->new_uids, error_r);
}

START_TEST(test_expunge_last_reference_frees)
{
	add_account("a@lamdong.gov.vn", 0);
	add_account("b@lamdong.gov.vn", 0);
	const char *rcpts[] = { "a@lamdong.gov.vn", "b@lamdong.gov.vn" };
	char *msg = make_message(100000, 2);
	struct store_rcpt r[2];
	deliver(msg, 100000, rcpts, 2, r);
	uint32_t uid = 1;
	struct expunge_ctx c = { .mailbox = inbox_id("a@lamdong.gov.vn"), .uids = &uid, .n = 1 };
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 1); /* b still has it */
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_bytes, 0);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_messages, 0);
	c.mailbox = inbox_id("b@lamdong.gov.vn");
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 0);
	ck_assert_uint_eq(s.chunks, 0);
	ck_assert_uint_eq(s.blob_bytes, 0);
	/* The change log records the expunge with a higher modseq. */
	struct store_mailbox m = get_mailbox(get_account("b@lamdong.gov.vn").id, "INBOX");
	ck_assert_uint_eq(m.messages, 0);
	ck_assert_uint_eq(m.highestmodseq, 3);
	free(msg);
}
END_TEST

/* Unique deliveries (SMTP): one blob for all recipients of a delivery, a
 * new one for the next delivery even of the same bytes, found by no
 * content look-up; freed with the last reference; an empty message twice
 * (same storage number, same content) shares its record safely. */
static void deliver_unique(const char *msg, size_t size, const char **rcpts, size_t n,
			   struct store_rcpt *out)
{
	memset(out, 0, n * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i].address = rcpts[i];
	struct store_delivery d = {
		.data = msg, .size = size, .rcpts = out, .n_rcpts = n, .unique = true
	};
	if (store_deliver(st, &d, 1, &err) < 0)
		ck_abort_msg("deliver: %s", err);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(out[i].status, RCPT_OK);
}

static struct store_message get_message(const struct store_rcpt *r)
{
	struct store_txn *t;
	struct store_message m;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_message_get(t, r->mailbox_id_out, r->uid, &m, &err), 1);
	store_read_end(&t);
	return m;
}

START_TEST(test_unique_delivery)
{
	add_account("a@lamdong.gov.vn", 0);
	add_account("b@lamdong.gov.vn", 0);
	const char *rcpts[] = { "a@lamdong.gov.vn", "b@lamdong.gov.vn" };
	const size_t size = 70000; /* two chunks */
	char *msg = make_message(size, 41);
	struct store_rcpt r1[2], r2[2], r3[1], e1[1], e2[1];
	deliver_unique(msg, size, rcpts, 2, r1);
	struct store_message a1 = get_message(&r1[0]), b1 = get_message(&r1[1]);
	ck_assert(memcmp(a1.blob, b1.blob, STORE_BLOB_ID_LEN) == 0);
	deliver_unique(msg, size, rcpts, 2, r2);
	struct store_message a2 = get_message(&r2[0]);
	ck_assert(memcmp(a1.blob, a2.blob, STORE_BLOB_ID_LEN) != 0);
	/* a content-addressed delivery of the same bytes is a third blob, not
	 * confused with the unique ones */
	deliver(msg, size, rcpts, 1, r3);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 3);
	ck_assert_uint_eq(s.blob_bytes, 3 * size);
	char *back = xmalloc(size);
	struct store_txn *t;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_blob_read(t, a2.blob, 0, back, size, &err), 0);
	ck_assert(memcmp(back, msg, size) == 0);
	ck_assert_int_eq(store_txn_blob_read(t, b1.blob, 65000, back, size - 65000, &err), 0);
	ck_assert(memcmp(back, msg + 65000, size - 65000) == 0);
	store_read_end(&t);

	deliver_unique("", 0, rcpts, 1, e1);
	deliver_unique("", 0, rcpts, 1, e2);
	struct store_message m1 = get_message(&e1[0]), m2 = get_message(&e2[0]);
	ck_assert_uint_eq(m1.size, 0);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	/* storage numbers are never reused: two empty messages, two blobs */
	ck_assert(memcmp(m1.blob, m2.blob, STORE_BLOB_ID_LEN) != 0);
	ck_assert_uint_eq(s.blobs, 5);

	/* bytes prepared for a unique delivery have no content id: delivering
	 * them by content fails cleanly, nothing stored */
	struct store_prepared *prep = store_prepare_as(st, msg, size, NULL, 0, STORE_PREP_UNIQUE);
	struct store_rcpt bad = { .address = rcpts[0] };
	struct store_delivery d = { .data = msg, .size = size, .prepared = prep, .rcpts = &bad,
				    .n_rcpts = 1 };
	ck_assert_int_eq(store_deliver(st, &d, 1, &err), -1);
	ck_assert_int_eq(bad.status, RCPT_ERROR);
	d.unique = true;
	ck_assert_int_eq(store_deliver(st, &d, 1, &err), 0);
	ck_assert_int_eq(bad.status, RCPT_OK);
	store_prepared_free(&prep);
	uint32_t extra[] = { bad.uid };
	struct expunge_ctx x = { .mailbox = bad.mailbox_id_out, .uids = extra, .n = 1 };
	ck_assert_int_eq(store_write(st, expunge_fn, &x, &err), 0);

	/* expunging everything of a frees a1's blob only once b lets go too */
	uint32_t uids[] = { 1, 2, 3, 4, 5 };
	struct expunge_ctx c = { .mailbox = inbox_id("a@lamdong.gov.vn"), .uids = uids, .n = 5 };
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 2); /* b's two unique copies */
	c.mailbox = inbox_id("b@lamdong.gov.vn");
	c.n = 2;
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 0);
	ck_assert_uint_eq(s.chunks, 0);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_bytes, 0);
	free(back);
	free(msg);
}
END_TEST

/* Bytes stored uncompressed under load (store_prepare_as) are compressed
 * later by store_compact, a few chunks per call, and read back the same;
 * a chunk freed between the read and the write is left alone; a store
 * without compression has nothing to compact. */
START_TEST(test_compact)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	enum { N = 5 };
	const size_t size = 100000; /* two chunks each */
	char *msgs[N];
	struct store_rcpt r[N];
	for (int i = 0; i < N; i++) {
		msgs[i] = make_message(size, 50 + (unsigned)i);
		struct store_prepared *prep =
			store_prepare_as(st, msgs[i], size, "parse", 5, STORE_PREP_NO_COMPRESS);
		memset(&r[i], 0, sizeof(r[i]));
		r[i].address = rc[0];
		struct store_delivery d = { .data = msgs[i], .size = size, .parsed = "parse",
					    .parsed_size = 5, .prepared = prep, .rcpts = &r[i],
					    .n_rcpts = 1, .unique = true };
		ck_assert_int_eq(store_deliver(st, &d, 1, &err), 0);
		ck_assert_int_eq(r[i].status, RCPT_OK);
		store_prepared_free(&prep);
	}
	/* and a small one, never worth compressing */
	struct store_rcpt small;
	deliver("Subject: x\r\n\r\nhi\r\n", 19, rc, 1, &small);
	struct store_stats s0, s1;
	ck_assert_int_eq(store_stats(st, &s0, &err), 0);
	ck_assert_uint_eq(s0.uncompressed_chunks, 2 * N);

	size_t done, total = 0;
	bool more = true;
	int calls = 0;
	while (more) {
		ck_assert_int_eq(store_compact(st, 3, &done, &more, &err), 0);
		ck_assert_uint_le(done, 3);
		total += done;
		ck_assert_int_lt(++calls, 20);
	}
	ck_assert_uint_eq(total, 2 * N);
	ck_assert_int_ge(calls, 4);
	ck_assert_int_eq(store_stats(st, &s1, &err), 0);
	ck_assert_uint_eq(s1.uncompressed_chunks, 0);
	/* nothing left: no work, no commit */
	ck_assert_int_eq(store_compact(st, 3, &done, &more, &err), 0);
	ck_assert_uint_eq(done, 0);
	ck_assert(!more);

	char *back = xmalloc(size);
	struct store_txn *t;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	for (int i = 0; i < N; i++) {
		struct store_message m;
		ck_assert_int_eq(store_txn_message_get(t, r[i].mailbox_id_out, r[i].uid, &m, &err), 1);
		ck_assert_int_eq(store_txn_blob_read(t, m.blob, 0, back, size, &err), 0);
		ck_assert(memcmp(back, msgs[i], size) == 0);
		const void *parsed;
		size_t plen;
		ck_assert_int_eq(store_txn_blob_parsed(t, m.blob, &parsed, &plen, &err), 1);
		ck_assert_uint_eq(plen, 5);
		ck_assert(memcmp(parsed, "parse", 5) == 0);
	}
	store_read_end(&t);

	/* new raw bytes after the mark are found; bytes expunged before the
	 * compaction are not resurrected */
	struct store_prepared *prep =
		store_prepare_as(st, msgs[0], size, NULL, 0, STORE_PREP_NO_COMPRESS | STORE_PREP_UNIQUE);
	struct store_rcpt r2 = { .address = rc[0] };
	struct store_delivery d = { .data = msgs[0], .size = size, .prepared = prep, .rcpts = &r2,
				    .n_rcpts = 1, .unique = true };
	ck_assert_int_eq(store_deliver(st, &d, 1, &err), 0);
	store_prepared_free(&prep);
	ck_assert_int_eq(store_compact(st, 100, &done, &more, &err), 0);
	ck_assert_uint_eq(done, 2);
	uint32_t uids[] = { r2.uid };
	struct expunge_ctx c = { .mailbox = r2.mailbox_id_out, .uids = uids, .n = 1 };
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	ck_assert_int_eq(store_compact(st, 100, &done, &more, &err), 0);
	ck_assert_uint_eq(done, 0);
	ck_assert_int_eq(store_stats(st, &s1, &err), 0);
	ck_assert_uint_eq(s1.blobs, N + 1);

	/* a message of many chunks that do not compress (stored as they are
	 * however often they are tried): examined once, the calls end */
	const size_t big = 5 * 65536 + 100;
	char *noise = make_random_message(big, 9);
	prep = store_prepare_as(st, noise, big, NULL, 0, STORE_PREP_NO_COMPRESS | STORE_PREP_UNIQUE);
	struct store_rcpt r3 = { .address = rc[0] };
	struct store_delivery d3 = { .data = noise, .size = big, .prepared = prep, .rcpts = &r3,
				     .n_rcpts = 1, .unique = true };
	ck_assert_int_eq(store_deliver(st, &d3, 1, &err), 0);
	store_prepared_free(&prep);
	calls = 0;
	more = true;
	while (more) {
		ck_assert_int_eq(store_compact(st, 2, &done, &more, &err), 0);
		ck_assert_uint_eq(done, 0);
		ck_assert_int_lt(++calls, 10);
	}
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	struct store_message mn;
	char *nback = xmalloc(big);
	ck_assert_int_eq(store_txn_message_get(t, r3.mailbox_id_out, r3.uid, &mn, &err), 1);
	ck_assert_int_eq(store_txn_blob_read(t, mn.blob, 0, nback, big, &err), 0);
	ck_assert(memcmp(nback, noise, big) == 0);
	store_read_end(&t);
	free(nback);
	free(noise);

	for (int i = 0; i < N; i++)
		free(msgs[i]);
	free(back);
}
END_TEST

START_TEST(test_compact_without_compression)
{
	store_close(&st);
	struct store_options o = { .map_size = 64ULL << 20, .create = true, .no_compression = true };
	ck_assert_int_eq(store_open(dir, &o, &st, &err), 0);
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	char *msg = make_message(10000, 3);
	struct store_rcpt r;
	deliver(msg, 10000, rc, 1, &r);
	size_t done;
	bool more = true;
	ck_assert_int_eq(store_compact(st, 10, &done, &more, &err), 0);
	ck_assert_uint_eq(done, 0);
	ck_assert(!more);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.uncompressed_chunks, 1);
	free(msg);
}
END_TEST

/* The mailbox record sits in the messages tree after the messages (key
 * UID 4294967295): it is never seen as a message, by a look-up, a walk,
 * an expunge or a deletion. */
static int del_account_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	return store_txn_account_del(t, ctx, error_r);
}

static int count_msg(const struct store_message *m, void *ctx)
{
	(void)m;
	(*(int *)ctx)++;
	return 0;
}

START_TEST(test_mailbox_record_beside_messages)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	deliver("Subject: 1\r\n\r\nx\r\n", 18, rc, 1, r);
	deliver("Subject: 2\r\n\r\ny\r\n", 18, rc, 1, r);
	uint32_t inbox = inbox_id("a@lamdong.gov.vn");
	struct store_txn *t;
	struct store_message m;
	int n = 0;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_message_get(t, inbox, UINT32_MAX, &m, &err), 0);
	ck_assert_int_eq(store_txn_message_foreach(t, inbox, 1, UINT32_MAX, count_msg, &n, &err), 0);
	store_read_end(&t);
	ck_assert_int_eq(n, 2);
	uint32_t uids[] = { UINT32_MAX, 1 };
	struct expunge_ctx c = { .mailbox = inbox, .uids = uids, .n = 2 };
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	struct store_mailbox mb = get_mailbox(get_account("a@lamdong.gov.vn").id, "INBOX");
	ck_assert_uint_eq(mb.messages, 1);
	ck_assert_uint_eq(mb.uidnext, 3);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.messages, 1);
	ck_assert_uint_eq(s.mailboxes, 5);
	/* deleting the account removes records and messages alike */
	if (store_write(st, del_account_fn, (void *)"a@lamdong.gov.vn", &err) < 0)
		ck_abort_msg("account delete: %s", err);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.messages, 0);
	ck_assert_uint_eq(s.mailboxes, 0);
	ck_assert_uint_eq(s.blobs, 0);
}
END_TEST

/* A store of another layout is refused with a message that says which
 * way (schema version in meta). */
static int set_version_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	return meta_put(t, "version", *(const uint64_t *)ctx, error_r);
}

START_TEST(test_schema_version_checked)
{
	for (uint64_t v = STORE_SCHEMA_VERSION - 1; v <= STORE_SCHEMA_VERSION + 1; v += 2) {
		if (st == NULL)
			st = open_with(0, 0, NULL);
		ck_assert_int_eq(store_write(st, set_version_fn, &v, &err), 0);
		store_close(&st);
		struct store_options o = { .create = true };
		ck_assert_int_eq(store_open(dir, &o, &st, &err), -1);
		ck_assert_ptr_null(st);
		ck_assert_msg(strstr(err, v < STORE_SCHEMA_VERSION ? "older congvu" : "newer congvu") !=
				      NULL,
			      "version %llu: %s", (unsigned long long)v, err);
		/* a fresh store for the next round */
		rm_rf(dir);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
	}
}
END_TEST

/* Random deliver/copy/move/expunge/delete sequences keep usage exact. */
START_TEST(test_quota_exact_random)
{
	const char *addrs[] = { "a@lamdong.gov.vn", "b@lamdong.gov.vn", "c@lamdong.gov.vn" };
	for (int i = 0; i < 3; i++)
		add_account(addrs[i], 0);
	srand(12345);
	for (int step = 0; step < 400; step++) {
		int op = rand() % 4;
		const char *who = addrs[rand() % 3];
		struct store_account a = get_account(who);
		if (op == 0 || a.used_messages == 0) {
			size_t size = 100 + (size_t)(rand() % 5000);
			char *msg = make_message(size, (unsigned)(rand() % 50));
			const char *rc[] = { addrs[0], addrs[1], addrs[2] };
			size_t n = 1 + (size_t)(rand() % 3);
			struct store_rcpt r[3];
			deliver(msg, size, rc, n, r);
			free(msg);
			continue;
		}
		uint32_t src = get_mailbox(a.id, rand() % 2 ? "INBOX" : "Trash").id;
		uint32_t uids[8];
		size_t n = 0;
		for (int k = 0; k < 8; k++)
			uids[n++] = 1 + (uint32_t)(rand() % 60);
		uint32_t new_uids[8];
		struct expunge_ctx c = { .mailbox = src, .uids = uids, .n = n, .new_uids = new_uids };
		if (op == 1) {
			ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
		} else {
			c.move = op == 3;
			const char *dst_owner = addrs[rand() % 3];
			c.dst = get_mailbox(get_account(dst_owner).id, rand() % 2 ? "INBOX" : "Trash")
					.id;
			ck_assert_int_eq(store_write(st, copy_fn, &c, &err), 0);
		}
	}
	for (int i = 0; i < 3; i++) {
		struct store_txn *t;
		struct store_account before, after;
		ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
		int differ = store_txn_account_recalc(t, addrs[i], false, &before, &after, &err);
		store_read_end(&t);
		ck_assert_int_eq(differ, 0);
		ck_assert_uint_eq(before.used_bytes, after.used_bytes);
		ck_assert_uint_eq(before.used_messages, after.used_messages);
	}
}
END_TEST

START_TEST(test_over_quota)
{
	add_account("a@lamdong.gov.vn", 10000);
	enum store_rcpt_status status;
	ck_assert_int_eq(store_quota_check(st, "a@lamdong.gov.vn", 20000, &status, &err), 0);
	ck_assert_int_eq(status, RCPT_TOO_BIG);
	ck_assert_int_eq(store_quota_check(st, "a@lamdong.gov.vn", 6000, &status, &err), 0);
	ck_assert_int_eq(status, RCPT_OK);
	ck_assert_int_eq(store_quota_check(st, "nobody@lamdong.gov.vn", 1, &status, &err), 0);
	ck_assert_int_eq(status, RCPT_NO_ACCOUNT);
	const char *rc[] = { "a@lamdong.gov.vn", "nobody@lamdong.gov.vn" };
	struct store_rcpt r[2];
	char *msg = make_message(6000, 3);
	deliver(msg, 6000, rc, 2, r);
	ck_assert_int_eq(r[0].status, RCPT_OK);
	ck_assert_int_eq(r[1].status, RCPT_NO_ACCOUNT);
	deliver(msg, 6000, rc, 1, r);
	ck_assert_int_eq(r[0].status, RCPT_OVER_QUOTA); /* 12000 > 10000: refused whole */
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_bytes, 6000);
	ck_assert_int_eq(store_quota_check(st, "a@lamdong.gov.vn", 4000, &status, &err), 0);
	ck_assert_int_eq(status, RCPT_OK); /* exactly full is allowed */
	ck_assert_int_eq(store_quota_check(st, "a@lamdong.gov.vn", 4001, &status, &err), 0);
	ck_assert_int_eq(status, RCPT_OVER_QUOTA);
	/* A copy over quota changes nothing. */
	uint32_t uid = 1, new_uid = 0;
	struct expunge_ctx c = { .mailbox = inbox_id("a@lamdong.gov.vn"), .uids = &uid, .n = 1,
				 .new_uids = &new_uid };
	c.dst = get_mailbox(get_account("a@lamdong.gov.vn").id, "Trash").id;
	ck_assert_int_eq(store_write(st, copy_fn, &c, &err), -1);
	ck_assert_ptr_eq(err, STORE_ERR_OVER_QUOTA);
	ck_assert_uint_eq(get_mailbox(get_account("a@lamdong.gov.vn").id, "Trash").messages, 0);
	/* A move inside the account does not need room. */
	c.move = true;
	ck_assert_int_eq(store_write(st, copy_fn, &c, &err), 0);
	ck_assert_uint_eq(new_uid, 1);
	ck_assert_uint_eq(get_mailbox(get_account("a@lamdong.gov.vn").id, "Trash").messages, 1);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_bytes, 6000);
	free(msg);
}
END_TEST

static size_t count_inbox_subjects(const char *addr, const char *needle)
{
	struct store_txn *t;
	uint32_t mbox = inbox_id(addr);
	size_t found = 0;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	for (uint32_t uid = 1; uid < 100; uid++) {
		struct store_message m;
		if (store_txn_message_get(t, mbox, uid, &m, &err) != 1)
			continue;
		char *buf = xmalloc(m.size + 1);
		ck_assert_int_eq(store_txn_blob_read(t, m.blob, 0, buf, m.size, &err), 0);
		buf[m.size] = '\0';
		if (strstr(buf, needle) != NULL)
			found++;
		free(buf);
	}
	store_read_end(&t);
	return found;
}

START_TEST(test_quota_warnings_once_per_crossing)
{
	store_close(&st);
	unsigned warn[] = { 80, 95 };
	st = open_with(0, 2, warn);
	add_account("a@lamdong.gov.vn", 100000);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *msg = make_message(41000, 4);
	deliver(msg, 41000, rc, 1, r); /* 41% */
	ck_assert_uint_eq(count_inbox_subjects("a@lamdong.gov.vn", "Mailbox almost full"), 0);
	free(msg);
	msg = make_message(41000, 5);
	deliver(msg, 41000, rc, 1, r); /* 82%: one notice */
	ck_assert_uint_eq(count_inbox_subjects("a@lamdong.gov.vn", "Mailbox almost full (80%)"), 1);
	ck_assert_uint_eq(count_inbox_subjects("a@lamdong.gov.vn", "dung lượng"), 1);
	free(msg);
	msg = make_message(1000, 6);
	deliver(msg, 1000, rc, 1, r); /* still above 80: no new notice */
	ck_assert_uint_eq(count_inbox_subjects("a@lamdong.gov.vn", "Mailbox almost full"), 1);
	/* drop below 80 (expunge the 41000 of uid 2), then cross again */
	uint32_t uid = 2;
	struct expunge_ctx c = { .mailbox = inbox_id("a@lamdong.gov.vn"), .uids = &uid, .n = 1 };
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	free(msg);
	msg = make_message(41000, 7);
	deliver(msg, 41000, rc, 1, r);
	ck_assert_uint_eq(count_inbox_subjects("a@lamdong.gov.vn", "Mailbox almost full (80%)"), 2);
	free(msg);
	/* usage counts the notices too, exactly */
	struct store_txn *t;
	struct store_account before, after;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_account_recalc(t, "a@lamdong.gov.vn", false, &before, &after, &err),
			 0);
	store_read_end(&t);
}
END_TEST

struct flags_ctx {
	uint32_t mailbox, uid;
	enum store_flag_mode mode;
	uint32_t flags;
	uint64_t unchangedsince;
	struct store_message out;
	int ret;
};

static int flags_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct flags_ctx *c = ctx;
	c->ret = store_txn_message_flags(t, c->mailbox, c->uid, c->mode, c->flags, 0,
					 c->unchangedsince, &c->out, error_r);
	return c->ret < 0 ? -1 : 0;
}

struct change_list {
	uint64_t modseq[16];
	uint32_t uid[16];
	int kind[16];
	int n;
};

static int change_fn(uint64_t modseq, uint32_t uid, enum store_change_kind kind, void *ctx)
{
	struct change_list *l = ctx;
	if (l->n < 16) {
		l->modseq[l->n] = modseq;
		l->uid[l->n] = uid;
		l->kind[l->n] = (int)kind;
		l->n++;
	}
	return 0;
}

START_TEST(test_flags_modseq_changes)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *msg = make_message(500, 8);
	deliver(msg, 500, rc, 1, r);
	deliver(msg, 500, rc, 1, r);
	uint32_t mbox = inbox_id("a@lamdong.gov.vn");
	struct store_mailbox m = get_mailbox(get_account("a@lamdong.gov.vn").id, "INBOX");
	ck_assert_uint_eq(m.unseen, 2);
	ck_assert_uint_eq(m.highestmodseq, 3);
	struct flags_ctx f = { .mailbox = mbox, .uid = 1, .mode = FLAGS_ADD, .flags = MSG_SEEN,
			       .unchangedsince = STORE_NO_UNCHANGEDSINCE };
	ck_assert_int_eq(store_write(st, flags_fn, &f, &err), 0);
	ck_assert_uint_eq(f.out.modseq, 4);
	ck_assert_uint_eq(f.out.flags, MSG_SEEN);
	/* no change: no new modseq */
	ck_assert_int_eq(store_write(st, flags_fn, &f, &err), 0);
	ck_assert_uint_eq(f.out.modseq, 4);
	/* UNCHANGEDSINCE older than the message: refused, reported */
	f.mode = FLAGS_SET;
	f.flags = MSG_FLAGGED;
	f.unchangedsince = 3;
	ck_assert_int_eq(store_write(st, flags_fn, &f, &err), 0);
	ck_assert_int_eq(f.ret, 1);
	f.unchangedsince = 0; /* RFC 7162: fails for every existing message */
	ck_assert_int_eq(store_write(st, flags_fn, &f, &err), 0);
	ck_assert_int_eq(f.ret, 1);
	f.unchangedsince = 4;
	ck_assert_int_eq(store_write(st, flags_fn, &f, &err), 0);
	ck_assert_int_eq(f.ret, 0);
	ck_assert_uint_eq(f.out.flags, MSG_FLAGGED);
	m = get_mailbox(get_account("a@lamdong.gov.vn").id, "INBOX");
	ck_assert_uint_eq(m.unseen, 2);
	ck_assert_uint_eq(m.highestmodseq, 5);
	struct change_list l = { .n = 0 };
	struct store_txn *t;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_changes(t, mbox, 3, change_fn, &l, &err), 0);
	store_read_end(&t);
	/* each message's latest change only: the later one superseded the
	 * first (which a reader would have collapsed anyway) */
	ck_assert_int_eq(l.n, 1);
	ck_assert_int_eq(l.kind[0], CHANGE_FLAGS);
	ck_assert_uint_eq(l.modseq[0], 5);
	ck_assert_uint_eq(l.uid[0], 1);
	/* arrivals come in modseq order, merged with the logged changes */
	l.n = 0;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_changes(t, mbox, 0, change_fn, &l, &err), 0);
	store_read_end(&t);
	ck_assert_int_eq(l.n, 3);
	ck_assert_int_eq(l.kind[0], CHANGE_NEW);
	ck_assert_uint_eq(l.uid[0], 1);
	ck_assert_uint_eq(l.modseq[0], 2);
	ck_assert_int_eq(l.kind[1], CHANGE_NEW);
	ck_assert_uint_eq(l.uid[1], 2);
	ck_assert_uint_eq(l.modseq[1], 3);
	ck_assert_int_eq(l.kind[2], CHANGE_FLAGS);
	ck_assert_uint_eq(l.modseq[2], 5);
	/* many changes of one message keep one log entry */
	for (int i = 0; i < 20; i++) {
		f.mode = i % 2 ? FLAGS_ADD : FLAGS_REMOVE;
		f.flags = MSG_ANSWERED;
		f.unchangedsince = STORE_NO_UNCHANGEDSINCE;
		ck_assert_int_eq(store_write(st, flags_fn, &f, &err), 0);
	}
	struct store_stats ss;
	ck_assert_int_eq(store_stats(st, &ss, &err), 0);
	ck_assert_uint_eq(ss.changes, 1);
	/* an expunge is logged and replaces its message's flag entry; the
	 * expunged arrival is gone */
	uint32_t uid1 = 1, uid2 = 2;
	struct expunge_ctx c = { .mailbox = mbox, .uids = &uid2, .n = 1 };
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	c.uids = &uid1;
	ck_assert_int_eq(store_write(st, expunge_fn, &c, &err), 0);
	ck_assert_int_eq(store_stats(st, &ss, &err), 0);
	ck_assert_uint_eq(ss.changes, 2);
	l.n = 0;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_changes(t, mbox, 2, change_fn, &l, &err), 0);
	store_read_end(&t);
	ck_assert_int_eq(l.n, 2);
	ck_assert_int_eq(l.kind[0], CHANGE_EXPUNGE);
	ck_assert_uint_eq(l.uid[0], 2);
	ck_assert_uint_eq(l.modseq[0], 25); /* 19 of the 20 were changes */
	ck_assert_int_eq(l.kind[1], CHANGE_EXPUNGE);
	ck_assert_uint_eq(l.uid[1], 1);
	ck_assert_uint_eq(l.modseq[1], 26);
	free(msg);
}
END_TEST

struct mbox_ctx {
	uint32_t account, id;
	const char *name, *new_name;
	int op;
};

static int mbox_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct mbox_ctx *c = ctx;
	switch (c->op) {
	case 0:
		return store_txn_mailbox_create(t, c->account, c->name, 0, &c->id, error_r);
	case 1:
		return store_txn_mailbox_rename(t, c->id, c->new_name, error_r);
	default:
		return store_txn_mailbox_delete(t, c->id, error_r);
	}
}

START_TEST(test_mailbox_create_rename_delete)
{
	add_account("a@lamdong.gov.vn", 0);
	uint32_t acct = get_account("a@lamdong.gov.vn").id;
	struct mbox_ctx c = { .account = acct, .name = "Công văn", .op = 0 };
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), 0);
	uint32_t parent = c.id;
	c.name = "Công văn/2026";
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), 0);
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), -1);
	ck_assert_ptr_eq(err, STORE_ERR_EXISTS);
	c.name = "bad//name";
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), -1);
	c.op = 1;
	c.id = parent;
	c.new_name = "Văn bản";
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), 0);
	struct store_mailbox m = get_mailbox(acct, "Văn bản/2026");
	ck_assert_str_eq(m.name, "Văn bản/2026");
	/* INBOX renamed: messages move, INBOX stays, empty */
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *msg = make_message(300, 9);
	deliver(msg, 300, rc, 1, r);
	c.id = inbox_id("a@lamdong.gov.vn");
	c.new_name = "Old inbox";
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), 0);
	ck_assert_uint_eq(get_mailbox(acct, "INBOX").messages, 0);
	ck_assert_uint_eq(get_mailbox(acct, "Old inbox").messages, 1);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_bytes, 300);
	c.op = 2;
	c.id = get_mailbox(acct, "Old inbox").id;
	ck_assert_int_eq(store_write(st, mbox_fn, &c, &err), 0);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_bytes, 0);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 0);
	free(msg);
}
END_TEST

START_TEST(test_reader_snapshot)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *msg = make_message(1000, 10);
	deliver(msg, 1000, rc, 1, r);
	struct store_txn *t;
	struct store_account a;
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	/* A write commits while the reader is open (another store handle, as
	 * another process would have). */
	struct store *other = open_with(0, 0, NULL);
	struct store *saved = st;
	st = other;
	deliver(msg, 1000, rc, 1, r);
	st = saved;
	store_close(&other);
	ck_assert_int_eq(store_txn_account_get(t, "a@lamdong.gov.vn", &a, &err), 1);
	ck_assert_uint_eq(a.used_messages, 1);
	struct store_mailbox *m = xmalloc(sizeof(*m));
	ck_assert_int_eq(store_txn_mailbox_get(t, a.id, "INBOX", m, &err), 1);
	ck_assert_uint_eq(m->messages, 1);
	ck_assert_uint_eq(m->uidnext, 2);
	free(m);
	store_read_end(&t);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_messages, 2);
	free(msg);
}
END_TEST

/* Two processes deliver at the same time; nothing is lost, UIDs unique. */
START_TEST(test_two_processes_writing)
{
	add_account("a@lamdong.gov.vn", 0);
	store_close(&st);
	pid_t pids[2];
	for (int p = 0; p < 2; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0) {
			st = open_with(0, 0, NULL);
			const char *rc[] = { "a@lamdong.gov.vn" };
			for (int i = 0; i < 100; i++) {
				char *msg = make_message(2000, (unsigned)(p * 1000 + i));
				struct store_rcpt r[1];
				memset(r, 0, sizeof(r));
				r[0].address = rc[0];
				struct store_delivery d = { .data = msg, .size = 2000, .rcpts = r,
							    .n_rcpts = 1 };
				if (store_deliver(st, &d, 1, &err) < 0 || r[0].status != RCPT_OK)
					_exit(1);
				free(msg);
			}
			store_close(&st);
			_exit(0);
		}
	}
	for (int p = 0; p < 2; p++) {
		int status;
		ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	st = open_with(0, 0, NULL);
	struct store_account a = get_account("a@lamdong.gov.vn");
	ck_assert_uint_eq(a.used_messages, 200);
	ck_assert_uint_eq(a.used_bytes, 400000);
	struct store_mailbox m = get_mailbox(a.id, "INBOX");
	ck_assert_uint_eq(m.messages, 200);
	ck_assert_uint_eq(m.uidnext, 201);
}
END_TEST

/* A small map fills up; the store grows it and the write goes through. */
START_TEST(test_map_full_grows)
{
	store_close(&st);
	st = open_with(1 << 20, 0, NULL);
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	for (int i = 0; i < 60; i++) {
		char *msg = make_random_message(100000, (unsigned)i);
		struct store_rcpt r[1];
		deliver(msg, 100000, rc, 1, r);
		ck_assert_int_eq(r[0].status, RCPT_OK);
		free(msg);
	}
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_gt(s.map_size, 4 << 20);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_messages, 60);
	/* Another handle opened with the small size adopts the grown map. */
	struct store *other = open_with(1 << 20, 0, NULL);
	struct store_account a;
	ck_assert_int_eq(store_account_get(other, "a@lamdong.gov.vn", &a, &err), 1);
	ck_assert_uint_eq(a.used_messages, 60);
	store_close(&other);
}
END_TEST

/* Reads in one thread while another writes and the map grows (congvu-smtpd's
 * delivery process answers look-ups beside its commit thread): every read
 * sees a consistent account, nothing fails. */
static volatile int reader_stop;
static int reader_errors, reader_reads;

static void *reader_thread(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&reader_stop, __ATOMIC_ACQUIRE)) {
		enum store_rcpt_status status;
		const char *e;
		if (store_quota_check(st, "a@lamdong.gov.vn", 1000, &status, &e) < 0 ||
		    status != RCPT_OK)
			__atomic_add_fetch(&reader_errors, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&reader_reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

START_TEST(test_read_beside_write_while_map_grows)
{
	store_close(&st);
	st = open_with(1 << 20, 0, NULL);
	add_account("a@lamdong.gov.vn", 0);
	reader_stop = 0;
	reader_errors = reader_reads = 0;
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_thread, NULL), 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	for (int i = 0; i < 60; i++) {
		char *msg = make_random_message(100000, (unsigned)i + 100);
		struct store_rcpt r[1];
		deliver(msg, 100000, rc, 1, r);
		ck_assert_int_eq(r[0].status, RCPT_OK);
		free(msg);
	}
	__atomic_store_n(&reader_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_gt(s.map_size, 4 << 20);
	ck_assert_int_eq(reader_errors, 0);
	ck_assert_int_gt(reader_reads, 0);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_messages, 60);
}
END_TEST

/* A full disk (simulated with RLIMIT_FSIZE) fails the write cleanly and
 * damages nothing already committed. */
START_TEST(test_disk_full_clean_error)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *small = make_message(1000, 11);
	deliver(small, 1000, rc, 1, r);
	store_close(&st);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		st = open_with(0, 0, NULL);
		struct store_stats s;
		if (store_stats(st, &s, &err) < 0)
			_exit(2);
		struct rlimit rl = { s.file_size + 8192, s.file_size + 8192 };
		setrlimit(RLIMIT_FSIZE, &rl);
		char *big = make_random_message(2000000, 12);
		memset(r, 0, sizeof(r));
		r[0].address = rc[0];
		struct store_delivery d = { .data = big, .size = 2000000, .rcpts = r, .n_rcpts = 1 };
		int ret = store_deliver(st, &d, 1, &err);
		/* must fail, with every recipient marked as an error */
		_exit(ret == -1 && r[0].status == RCPT_ERROR ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	st = open_with(0, 0, NULL);
	struct store_account a = get_account("a@lamdong.gov.vn");
	ck_assert_uint_eq(a.used_messages, 1);
	ck_assert_uint_eq(a.used_bytes, 1000);
	/* and the store still takes mail */
	deliver(small, 1000, rc, 1, r);
	ck_assert_int_eq(r[0].status, RCPT_OK);
	ck_assert_uint_eq(r[0].uid, 2);
	free(small);
}
END_TEST

struct queue_ctx {
	uint64_t id;
	int n;
};

static int queue_add_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct queue_ctx *c = ctx;
	return store_txn_queue_add(t, "rec", 3, "message", 7, &c->id, error_r);
}

static struct store_prepared *queue_prep;

static int queue_add_prepared_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct queue_ctx *c = ctx;
	return store_txn_queue_add_prepared(t, "rec2", 4, queue_prep, &c->id, error_r);
}

static int queue_count(uint64_t id, const void *rec, size_t len, const uint8_t *blob, void *ctx)
{
	(void)id;
	(void)rec;
	(void)len;
	(void)blob;
	((struct queue_ctx *)ctx)->n++;
	return 0;
}

static int queue_del_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct queue_ctx *c = ctx;
	return store_txn_queue_del(t, c->id, error_r) == 1 ? 0 : -1;
}

START_TEST(test_queue)
{
	struct queue_ctx c = { 0 };
	ck_assert_int_eq(store_write(st, queue_add_fn, &c, &err), 0);
	uint64_t first = c.id;
	ck_assert_int_eq(store_write(st, queue_add_fn, &c, &err), 0);
	ck_assert_uint_gt(c.id, first);
	struct store_txn *t;
	const void *rec;
	size_t len;
	uint8_t blob[STORE_BLOB_ID_LEN];
	char buf[8];
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_queue_get(t, first, &rec, &len, blob, &err), 1);
	ck_assert_uint_eq(len, 3);
	ck_assert(memcmp(rec, "rec", 3) == 0);
	ck_assert_int_eq(store_txn_blob_read(t, blob, 0, buf, 7, &err), 0);
	ck_assert(memcmp(buf, "message", 7) == 0);
	ck_assert_int_eq(store_txn_queue_foreach(t, queue_count, &c, &err), 0);
	store_read_end(&t);
	ck_assert_int_eq(c.n, 2);
	ck_assert_int_eq(store_write(st, queue_del_fn, &c, &err), 0);
	c.id = first;
	ck_assert_int_eq(store_write(st, queue_del_fn, &c, &err), 0);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.queued, 0);
	ck_assert_uint_eq(s.blobs, 0);

	/* bytes prepared outside the transaction (the delivery process's way),
	 * 3 chunks, compressed */
	const size_t size = 150000;
	char *msg = make_message(size, 77), *back = xmalloc(size);
	queue_prep = store_prepare(st, msg, size, NULL, 0);
	ck_assert_int_eq(store_write(st, queue_add_prepared_fn, &c, &err), 0);
	store_prepared_free(&queue_prep);
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_queue_get(t, c.id, &rec, &len, blob, &err), 1);
	ck_assert_uint_eq(len, 4);
	ck_assert(memcmp(rec, "rec2", 4) == 0);
	ck_assert_int_eq(store_txn_blob_read(t, blob, 0, back, size, &err), 0);
	ck_assert(memcmp(back, msg, size) == 0);
	store_read_end(&t);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.chunks, 3);
	ck_assert_uint_eq(s.uncompressed_chunks, 0);
	ck_assert_int_eq(store_write(st, queue_del_fn, &c, &err), 0);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 0);
	free(msg);
	free(back);
}
END_TEST

static int del(struct store_txn *t, void *ctx, const char **error_r)
{
	return store_txn_account_del(t, ctx, error_r);
}

START_TEST(test_account_delete_frees_everything)
{
	add_account("a@lamdong.gov.vn", 0);
	add_account("b@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn", "b@lamdong.gov.vn" };
	struct store_rcpt r[2];
	char *msg = make_message(5000, 13);
	deliver(msg, 5000, rc, 2, r);
	char *msg2 = make_message(5000, 14);
	deliver(msg2, 5000, rc, 1, r);
	struct store_stats s;
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 2);
	ck_assert_uint_eq(s.mailboxes, 10);
	ck_assert_int_eq(store_write(st, del, (void *)"a@lamdong.gov.vn", &err), 0);
	ck_assert_int_eq(store_stats(st, &s, &err), 0);
	ck_assert_uint_eq(s.blobs, 1); /* b's copy of the first stays */
	ck_assert_uint_eq(s.mailboxes, 5);
	ck_assert_uint_eq(s.accounts, 1);
	struct store_account gone;
	ck_assert_int_eq(store_account_get(st, "a@lamdong.gov.vn", &gone, &err), 0);
	ck_assert_int_eq(store_write(st, del, (void *)"a@lamdong.gov.vn", &err), -1);
	ck_assert_ptr_eq(err, STORE_ERR_NO_ACCOUNT);
	free(msg);
	free(msg2);
}
END_TEST

static int drift_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	(void)ctx;
	struct store_account a;
	if (store_txn_account_get(t, "a@lamdong.gov.vn", &a, error_r) != 1)
		return -1;
	a.used_bytes += 777;
	a.used_messages = 0;
	return account_save(t, &a, error_r);
}

static int recalc_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct store_account *ba = ctx;
	return store_txn_account_recalc(t, "a@lamdong.gov.vn", true, &ba[0], &ba[1], error_r) < 0
		       ? -1
		       : 0;
}

START_TEST(test_recalc_repairs_drift)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *msg = make_message(3000, 15);
	deliver(msg, 3000, rc, 1, r);
	ck_assert_int_eq(store_write(st, drift_fn, NULL, &err), 0);
	struct store_account ba[2];
	ck_assert_int_eq(store_write(st, recalc_fn, ba, &err), 0);
	ck_assert_uint_eq(ba[0].used_bytes, 3777);
	ck_assert_uint_eq(ba[1].used_bytes, 3000);
	ck_assert_uint_eq(ba[1].used_messages, 1);
	struct store_account a = get_account("a@lamdong.gov.vn");
	ck_assert_uint_eq(a.used_bytes, 3000);
	ck_assert_uint_eq(a.used_messages, 1);
	free(msg);
}
END_TEST

/* Text is compressed at rest and reads back exactly; random bytes are kept
 * raw. */
START_TEST(test_compression_round_trip)
{
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *text = make_message(300000, 16);
	char *noise = make_random_message(300000, 17);
	struct store_stats before, after_text, after_noise;
	ck_assert_int_eq(store_stats(st, &before, &err), 0);
	deliver(text, 300000, rc, 1, r);
	ck_assert_int_eq(store_stats(st, &after_text, &err), 0);
	deliver(noise, 300000, rc, 1, r);
	ck_assert_int_eq(store_stats(st, &after_noise, &err), 0);
	uint64_t text_pages = after_text.pages_used - before.pages_used;
	uint64_t noise_pages = after_noise.pages_used - after_text.pages_used;
	ck_assert_uint_lt(text_pages * 4, noise_pages);
	ck_assert_uint_ge(noise_pages * 4096, 300000);
	struct store_txn *t;
	struct store_message m;
	uint32_t mbox = r[0].mailbox_id_out;
	char *back = xmalloc(300000);
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	for (uint32_t uid = 1; uid <= 2; uid++) {
		const char *orig = uid == 1 ? text : noise;
		ck_assert_int_eq(store_txn_message_get(t, mbox, uid, &m, &err), 1);
		ck_assert_int_eq(store_txn_blob_read(t, m.blob, 0, back, 300000, &err), 0);
		ck_assert(memcmp(back, orig, 300000) == 0);
		/* a prefix (decompressed only as far as needed) */
		ck_assert_int_eq(store_txn_blob_read(t, m.blob, 0, back, 100, &err), 0);
		ck_assert(memcmp(back, orig, 100) == 0);
		/* a range across the second chunk border */
		ck_assert_int_eq(store_txn_blob_read(t, m.blob, 131000, back, 2000, &err), 0);
		ck_assert(memcmp(back, orig + 131000, 2000) == 0);
	}
	store_read_end(&t);
	free(back);
	free(text);
	free(noise);
}
END_TEST

/* A message prepared ahead (store_prepare, as congvu-smtpd's delivery
 * process does while the previous commit is written) is stored as it would
 * be otherwise: same blob, same bytes. */
START_TEST(test_prepared_delivery)
{
	add_account("a@lamdong.gov.vn", 0);
	const size_t size = 150000; /* three chunks */
	char *text = make_message(size, 31);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_prepared *prep = store_prepare(st, text, size, NULL, 0);
	struct store_rcpt r[1] = { { .address = rc[0] } };
	struct store_delivery d = { .data = text, .size = size, .prepared = prep, .rcpts = r,
				    .n_rcpts = 1 };
	ck_assert_int_eq(store_deliver(st, &d, 1, &err), 0);
	ck_assert_int_eq(r[0].status, RCPT_OK);
	/* the prepared blob stays usable until freed */
	struct store_rcpt r2[1] = { { .address = rc[0] } };
	d.rcpts = r2;
	ck_assert_int_eq(store_deliver(st, &d, 1, &err), 0);
	store_prepared_free(&prep);
	ck_assert_ptr_null(prep);
	store_prepared_free(&prep);
	struct store_rcpt r3[1];
	deliver(text, size, rc, 1, r3);
	struct store_stats stats;
	ck_assert_int_eq(store_stats(st, &stats, &err), 0);
	ck_assert_uint_eq(stats.blobs, 1);
	struct store_txn *t;
	struct store_message m1, m3;
	char *back = xmalloc(size);
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_message_get(t, r[0].mailbox_id_out, r[0].uid, &m1, &err), 1);
	ck_assert_int_eq(store_txn_message_get(t, r3[0].mailbox_id_out, r3[0].uid, &m3, &err), 1);
	ck_assert(memcmp(m1.blob, m3.blob, STORE_BLOB_ID_LEN) == 0);
	ck_assert_int_eq(store_txn_blob_read(t, m1.blob, 0, back, size, &err), 0);
	ck_assert(memcmp(back, text, size) == 0);
	store_read_end(&t);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_messages, 3);
	free(back);
	free(text);
}
END_TEST

/* A read-only handle (queue list beside a running daemon) reads everything. */
START_TEST(test_read_only_open)
{
	add_account("a@lamdong.gov.vn", 0);
	struct queue_ctx c = { 0 };
	ck_assert_int_eq(store_write(st, queue_add_fn, &c, &err), 0);
	struct store_options o = { .read_only = true };
	struct store *ro;
	ck_assert_int_eq(store_open(dir, &o, &ro, &err), 0);
	struct store_txn *t;
	struct store_account a;
	ck_assert_int_eq(store_read_begin(ro, &t, &err), 0);
	c.n = 0;
	ck_assert_int_eq(store_txn_queue_foreach(t, queue_count, &c, &err), 0);
	ck_assert_int_eq(c.n, 1);
	ck_assert_int_eq(store_txn_account_get(t, "a@lamdong.gov.vn", &a, &err), 1);
	store_read_end(&t);
	ck_assert_int_eq(store_account_add(ro, "b@lamdong.gov.vn", ACCOUNT_PERSONAL, 0, "x", &err),
			 -1);
	store_close(&ro);
}
END_TEST

/* The notify fd wakes a reader only once the commit is visible to it. */
START_TEST(test_notify_after_commit)
{
	add_account("a@lamdong.gov.vn", 0);
	int fd = store_notify_fd(st);
	ck_assert_int_ge(fd, 0);
	store_notify_drain(st);
	struct pollfd pfd = { fd, POLLIN, 0 };
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	uint64_t before, after;
	ck_assert_int_eq(store_change_counter(st, &before, &err), 0);
	struct store *writer = open_with(0, 0, NULL);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store *saved = st;
	st = writer;
	struct store_rcpt r[1];
	char *msg = make_message(500, 18);
	deliver(msg, 500, rc, 1, r);
	st = saved;
	store_close(&writer);
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	store_notify_drain(st);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	ck_assert_int_eq(store_change_counter(st, &after, &err), 0);
	ck_assert_uint_gt(after, before);
	ck_assert_uint_eq(get_account("a@lamdong.gov.vn").used_messages, 1);
	free(msg);
}
END_TEST

/* global.store_compression = none keeps the bytes as they are. */
START_TEST(test_no_compression)
{
	store_close(&st);
	struct store_options o = { .create = true, .no_compression = true };
	ck_assert_int_eq(store_open(dir, &o, &st, &err), 0);
	add_account("a@lamdong.gov.vn", 0);
	const char *rc[] = { "a@lamdong.gov.vn" };
	struct store_rcpt r[1];
	char *text = make_message(300000, 19);
	struct store_stats before, after;
	ck_assert_int_eq(store_stats(st, &before, &err), 0);
	deliver(text, 300000, rc, 1, r);
	ck_assert_int_eq(store_stats(st, &after, &err), 0);
	ck_assert_uint_ge((after.pages_used - before.pages_used) * 4096, 300000);
	struct store_txn *t;
	struct store_message m;
	char *back = xmalloc(300000);
	ck_assert_int_eq(store_read_begin(st, &t, &err), 0);
	ck_assert_int_eq(store_txn_message_get(t, r[0].mailbox_id_out, 1, &m, &err), 1);
	ck_assert_int_eq(store_txn_blob_read(t, m.blob, 0, back, 300000, &err), 0);
	ck_assert(memcmp(back, text, 300000) == 0);
	store_read_end(&t);
	free(back);
	free(text);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_account_defaults);
	tcase_add_test(tc, test_deliver_many_recipients_stored_once);
	tcase_add_test(tc, test_expunge_last_reference_frees);
	tcase_add_test(tc, test_quota_exact_random);
	tcase_add_test(tc, test_over_quota);
	tcase_add_test(tc, test_quota_warnings_once_per_crossing);
	tcase_add_test(tc, test_flags_modseq_changes);
	tcase_add_test(tc, test_mailbox_create_rename_delete);
	tcase_add_test(tc, test_reader_snapshot);
	tcase_add_test(tc, test_two_processes_writing);
	tcase_add_test(tc, test_map_full_grows);
	tcase_add_test(tc, test_read_beside_write_while_map_grows);
	tcase_add_test(tc, test_disk_full_clean_error);
	tcase_add_test(tc, test_queue);
	tcase_add_test(tc, test_account_delete_frees_everything);
	tcase_add_test(tc, test_recalc_repairs_drift);
	tcase_add_test(tc, test_compression_round_trip);
	tcase_add_test(tc, test_prepared_delivery);
	tcase_add_test(tc, test_unique_delivery);
	tcase_add_test(tc, test_mailbox_record_beside_messages);
	tcase_add_test(tc, test_schema_version_checked);
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_compact_without_compression);
	tcase_add_test(tc, test_read_only_open);
	tcase_add_test(tc, test_notify_after_commit);
	tcase_add_test(tc, test_no_compression);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
