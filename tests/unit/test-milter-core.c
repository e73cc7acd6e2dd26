/* congvu-milter-spam's building blocks: the classifier arithmetic, the token
 * database (a real LMDB environment in a temporary directory), network and
 * domain lists, look-alike domains, executable names and zip directories,
 * and the outbound rate limit. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter-spam/bayes.h"
#include "milter-spam/netlist.h"
#include "milter-spam/ratelimit.h"
#include "milter-spam/rules.h"
#include "store/tokendb.h"
#include "str.h"
#include "xalloc.h"

/* ---- bayes ---- */

START_TEST(test_chi2q)
{
	/* chi2Q(0, v) = 1; for v = 2, Q = exp(-x/2). */
	ck_assert(fabs(bayes_chi2q(0, 10) - 1.0) < 1e-12);
	ck_assert(fabs(bayes_chi2q(3.0, 2) - exp(-1.5)) < 1e-12);
	/* Known value: Q(10, 10 dof) = 0.44049 */
	ck_assert(fabs(bayes_chi2q(10.0, 10) - 0.440493) < 1e-5);
	/* Large arguments stay in [0, 1]. */
	double q = bayes_chi2q(5000, 300);
	ck_assert(q >= 0 && q <= 1);
}
END_TEST

START_TEST(test_token_prob)
{
	const struct bayes_params *p = &bayes_default_params;
	/* Unknown token: the prior. */
	ck_assert(fabs(bayes_token_prob(p, 0, 0, 100, 100) - 0.5) < 1e-12);
	/* Seen once in spam only: (s * 0.5 + 1 * 1) / (s + 1) */
	double s = p->unknown_strength;
	ck_assert(fabs(bayes_token_prob(p, 1, 0, 100, 100) - (s * 0.5 + 1) / (s + 1)) < 1e-12);
	struct bayes_params sb = *p;
	sb.unknown_strength = 0.45;
	ck_assert(fabs(bayes_token_prob(&sb, 1, 0, 100, 100) - (0.225 + 1) / 1.45) < 1e-12);
	/* Equal rates: 0.5 whatever the counts. */
	ck_assert(fabs(bayes_token_prob(p, 10, 20, 100, 200) - 0.5) < 1e-12);
	/* More evidence moves further from the prior. */
	ck_assert(bayes_token_prob(p, 50, 0, 100, 100) > bayes_token_prob(p, 2, 0, 100, 100));
	ck_assert(bayes_token_prob(p, 0, 50, 100, 100) < 0.02);
	/* Corrupt counts larger than the totals are clamped. */
	double x = bayes_token_prob(p, 500, 0, 100, 100);
	ck_assert(x <= 1.0 && x > 0.99);
}
END_TEST

START_TEST(test_combine)
{
	const struct bayes_params *p = &bayes_default_params;
	size_t used;
	double none[3] = {0.5, 0.45, 0.55};
	ck_assert(fabs(bayes_combine(p, none, 3, &used) - 0.5) < 1e-12);
	ck_assert_uint_eq(used, 0);
	double spam[20], ham[20], mixed[20];
	for (int i = 0; i < 20; i++) {
		spam[i] = 0.99;
		ham[i] = 0.01;
		mixed[i] = i % 2 ? 0.99 : 0.01;
	}
	ck_assert(bayes_combine(p, spam, 20, &used) > 0.99);
	ck_assert_uint_eq(used, 20);
	ck_assert(bayes_combine(p, ham, 20, &used) < 0.01);
	/* Strong evidence both ways: unsure, near 0.5. */
	double m = bayes_combine(p, mixed, 20, &used);
	ck_assert(m > 0.4 && m < 0.6);
	/* Only the strongest max_discriminators count. */
	double *many = xcalloc(1000, sizeof(*many));
	for (int i = 0; i < 1000; i++)
		many[i] = i < 200 ? 0.999 : 0.3;
	ck_assert(bayes_combine(p, many, 1000, &used) > 0.99);
	ck_assert_uint_eq(used, p->max_discriminators);
	free(many);
	/* Extreme probabilities do not produce NaN. */
	double ext[2] = {0.0, 1.0};
	double e = bayes_combine(p, ext, 2, &used);
	ck_assert(e >= 0 && e <= 1);
}
END_TEST

/* ---- token database ---- */

static char dir[64];

static void db_setup(void)
{
	strcpy(dir, "/tmp/congvu-test-tokendb.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void db_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct tokendb *db_open(uint64_t map_size)
{
	struct tokendb *db;
	char *error = NULL;
	char path[96];
	snprintf(path, sizeof(path), "%s/spam", dir);
	if (tokendb_open(path, map_size, true, &db, &error) < 0)
		ck_abort_msg("tokendb_open: %s", error);
	return db;
}

static struct tokendb_counts lookup(struct tokendb *db, uint64_t key, struct tokendb_counts *totals)
{
	struct tokendb_reader *r;
	char *error = NULL;
	struct tokendb_counts c;
	ck_assert_int_eq(tokendb_read_begin(db, &r, &error), 0);
	ck_assert_int_eq(tokendb_lookup(r, &key, 1, &c, &error), 0);
	if (totals != NULL)
		ck_assert_int_eq(tokendb_read_totals(r, totals, &error), 0);
	tokendb_read_end(&r);
	ck_assert_ptr_null(r);
	return c;
}

START_TEST(test_tokendb_train)
{
	struct tokendb *db = db_open(1 << 20);
	uint64_t a = tokendb_key("viagra", 6), b = tokendb_key("công văn", 10);
	ck_assert(a != 0 && b != 0 && a != b);
	ck_assert(tokendb_key("", 0) != 0);
	struct tokendb_counts t;
	struct tokendb_counts c = lookup(db, a, &t);
	ck_assert_uint_eq(c.spam + c.ham + t.spam + t.ham, 0);

	struct tokendb_writer *w = tokendb_write_begin(db);
	uint64_t spam_keys[] = {a};
	uint64_t ham_keys[] = {b, a};
	tokendb_write_message(w, true, 1, spam_keys, 1);
	tokendb_write_message(w, true, 1, spam_keys, 1);
	tokendb_write_message(w, false, 1, ham_keys, 2);
	char *error = NULL;
	ck_assert_int_eq(tokendb_write_commit(&w, &error), 0);
	ck_assert_ptr_null(w);
	c = lookup(db, a, &t);
	ck_assert_uint_eq(c.spam, 2);
	ck_assert_uint_eq(c.ham, 1);
	ck_assert_uint_eq(t.spam, 2);
	ck_assert_uint_eq(t.ham, 1);

	/* Forgetting more than was learnt stops at zero; a token at zero
	 * both ways disappears. */
	w = tokendb_write_begin(db);
	tokendb_write_message(w, false, -1, ham_keys, 2);
	tokendb_write_message(w, false, -1, ham_keys, 2);
	ck_assert_int_eq(tokendb_write_commit(&w, &error), 0);
	c = lookup(db, b, &t);
	ck_assert_uint_eq(c.spam + c.ham, 0);
	ck_assert_uint_eq(t.ham, 0);
	ck_assert_uint_eq(t.spam, 2);
	c = lookup(db, a, NULL);
	ck_assert_uint_eq(c.spam, 2);
	ck_assert_uint_eq(c.ham, 0);

	/* An aborted writer changes nothing. */
	w = tokendb_write_begin(db);
	tokendb_write_message(w, true, 1, ham_keys, 2);
	tokendb_write_abort(&w);
	ck_assert_ptr_null(w);
	c = lookup(db, b, NULL);
	ck_assert_uint_eq(c.spam, 0);
	tokendb_close(&db);
	ck_assert_ptr_null(db);

	/* Durable across reopen. */
	db = db_open(1 << 20);
	c = lookup(db, a, &t);
	ck_assert_uint_eq(c.spam, 2);
	ck_assert_uint_eq(t.spam, 2);
	tokendb_close(&db);
}
END_TEST

START_TEST(test_tokendb_grows)
{
	/* 200,000 tokens do not fit a 64 KiB map: the commit grows it. */
	struct tokendb *db = db_open(64 * 1024);
	size_t n = 200000;
	uint64_t *keys = xcalloc(n, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		char tok[32];
		int l = snprintf(tok, sizeof(tok), "tok%zu", i);
		keys[i] = tokendb_key(tok, (size_t)l);
	}
	struct tokendb_writer *w = tokendb_write_begin(db);
	tokendb_write_message(w, false, 1, keys, n);
	char *error = NULL;
	if (tokendb_write_commit(&w, &error) < 0)
		ck_abort_msg("commit: %s", error);
	struct tokendb_reader *r;
	ck_assert_int_eq(tokendb_read_begin(db, &r, &error), 0);
	struct tokendb_counts *c = xcalloc(n, sizeof(*c));
	ck_assert_int_eq(tokendb_lookup(r, keys, n, c, &error), 0);
	for (size_t i = 0; i < n; i += 997)
		ck_assert_uint_eq(c[i].ham, 1);
	tokendb_read_end(&r);
	free(c);
	free(keys);
	tokendb_close(&db);
}
END_TEST

START_TEST(test_tokendb_bad_dir)
{
	struct tokendb *db = NULL;
	char *error = NULL;
	ck_assert_int_eq(tokendb_open("/proc/congvu-no/such", 1 << 20, true, &db, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_nonnull(strstr(error, "/proc/congvu-no/such"));
	free(error);
}
END_TEST

/* ---- lists ---- */

START_TEST(test_netlist)
{
	char *error = NULL;
	struct netlist *l =
	    netlist_parse("127.0.0.0/8, 10.1.2.0/23 2001:db8::/32 192.0.2.7", &error);
	ck_assert_ptr_nonnull(l);
	ck_assert(netlist_match_str(l, "127.1.2.3"));
	ck_assert(netlist_match_str(l, "10.1.3.255"));
	ck_assert(!netlist_match_str(l, "10.1.4.0"));
	ck_assert(netlist_match_str(l, "2001:db8:1::5"));
	ck_assert(!netlist_match_str(l, "2001:db9::5"));
	ck_assert(netlist_match_str(l, "192.0.2.7"));
	ck_assert(!netlist_match_str(l, "192.0.2.8"));
	ck_assert(netlist_match_str(l, "::ffff:127.0.0.1"));
	ck_assert(!netlist_match_str(l, "not an address"));
	netlist_free(&l);
	l = netlist_parse("", &error);
	ck_assert_ptr_nonnull(l);
	ck_assert(!netlist_match_str(l, "127.0.0.1"));
	netlist_free(&l);
	ck_assert_ptr_null(netlist_parse("10.0.0.0/33", &error));
	ck_assert_ptr_nonnull(strstr(error, "10.0.0.0/33"));
	free(error);
	ck_assert_ptr_null(netlist_parse("10.0.0.0/8 example.org", &error));
	free(error);
}
END_TEST

START_TEST(test_domain_patterns)
{
	ck_assert(domain_pattern_match("*.gov.vn example.org", "hanoi.gov.vn"));
	ck_assert(domain_pattern_match("*.gov.vn example.org", "SO.HANOI.GOV.VN"));
	ck_assert(!domain_pattern_match("*.gov.vn", "gov.vn"));
	ck_assert(!domain_pattern_match("*.gov.vn", "evilgov.vn"));
	ck_assert(domain_pattern_match("*.gov.vn, example.org", "Example.Org"));
	ck_assert(!domain_pattern_match("example.org", "sub.example.org"));
	ck_assert(!domain_pattern_match("", "example.org"));
	ck_assert(!domain_pattern_match("example.org", ""));
}
END_TEST

/* ---- rules ---- */

START_TEST(test_lookalike)
{
	const char *locals = "lamdong.gov.vn sotttt.lamdong.gov.vn";
	ck_assert_int_eq(rules_lookalike("lamdong-gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("lamdonggov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("lamdomg.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("1amdong.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("lamdnog.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("lamdong.gov.vn.example.com", locals), 1);
	ck_assert_int_eq(rules_lookalike("LAMDONG-GOV.VN", locals), 1);
	/* Internationalised disguises: Vietnamese diacritics ("lâmđồng"),
	 * a Cyrillic "а", as punycode or raw UTF-8. */
	ck_assert_int_eq(rules_lookalike("xn--lmng-boa7zy25p.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("XN--LMDONG-3NF.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("l\xc3\xa2m\xc4\x91\xe1\xbb\x93ng.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("xn--lmng-gov-iza58bf71y.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("mail.xn--lmng-boa7zy25p.gov.vn", locals), 1);
	ck_assert_int_eq(rules_lookalike("xn--bcher-kva.example", locals), 0);
	ck_assert_int_eq(rules_lookalike("xn--invalid-!!.gov.vn", locals), 0);
	ck_assert_int_eq(rules_lookalike("xn--.gov.vn", locals), 0);
	/* Ours, our subdomains, and unrelated domains are not. */
	ck_assert_int_eq(rules_lookalike("lamdong.gov.vn", locals), 0);
	ck_assert_int_eq(rules_lookalike("LamDong.Gov.Vn.", locals), 0);
	ck_assert_int_eq(rules_lookalike("mail.lamdong.gov.vn", locals), 0);
	ck_assert_int_eq(rules_lookalike("hanoi.gov.vn", locals), 0);
	ck_assert_int_eq(rules_lookalike("example.com", locals), 0);
	ck_assert_int_eq(rules_lookalike("gmail.com", locals), 0);
	ck_assert_int_eq(rules_lookalike("", locals), 0);
}
END_TEST

START_TEST(test_executable_names)
{
	const char *exts = "exe scr js vbs bat";
	ck_assert(rules_name_is_executable("setup.exe", 9, exts));
	ck_assert(rules_name_is_executable("Invoice.PDF.ExE", 15, exts));
	ck_assert(rules_name_is_executable("run.bat. ", 9, exts));
	ck_assert(rules_name_is_executable("dir/x.js", 8, exts));
	ck_assert(!rules_name_is_executable("report.pdf", 10, exts));
	ck_assert(!rules_name_is_executable("exe", 3, exts));
	ck_assert(!rules_name_is_executable("a.exe/readme", 12, exts));
	ck_assert(!rules_name_is_executable("x.", 2, exts));
	ck_assert(!rules_name_is_executable("x.jsx", 5, exts));
}
END_TEST

struct names {
	char all[512];
	int n;
};

static bool collect(void *context, const char *name, size_t len)
{
	struct names *nm = context;
	size_t l = strlen(nm->all);
	snprintf(nm->all + l, sizeof(nm->all) - l, "%s%.*s", l ? "," : "", (int)len, name);
	nm->n++;
	return true;
}

/* A stored (uncompressed) zip built by hand: local header, data, central
 * directory entry, end record; for each file name. */
static size_t make_zip(unsigned char *buf, const char *const *names, int n)
{
	size_t p = 0, offsets[8];
	for (int i = 0; i < n; i++) {
		offsets[i] = p;
		size_t nl = strlen(names[i]);
		memset(buf + p, 0, 30);
		memcpy(buf + p, "PK\3\4", 4);
		buf[p + 18] = 2; /* compressed size */
		buf[p + 26] = (unsigned char)nl;
		memcpy(buf + p + 30, names[i], nl);
		p += 30 + nl;
		memcpy(buf + p, "hi", 2);
		p += 2;
	}
	size_t cd = p;
	for (int i = 0; i < n; i++) {
		size_t nl = strlen(names[i]);
		memset(buf + p, 0, 46);
		memcpy(buf + p, "PK\1\2", 4);
		buf[p + 28] = (unsigned char)nl;
		buf[p + 42] = (unsigned char)offsets[i];
		memcpy(buf + p + 46, names[i], nl);
		p += 46 + nl;
	}
	size_t cdsize = p - cd;
	memset(buf + p, 0, 22);
	memcpy(buf + p, "PK\5\6", 4);
	buf[p + 10] = (unsigned char)n;
	buf[p + 12] = (unsigned char)cdsize;
	buf[p + 16] = (unsigned char)cd;
	return p + 22;
}

START_TEST(test_zip_names)
{
	unsigned char buf[1024];
	const char *names[] = {"docs/readme.txt", "setup.scr"};
	size_t len = make_zip(buf, names, 2);
	struct names nm = {"", 0};
	ck_assert_int_eq(rules_zip_names(buf, len, collect, &nm), 2);
	ck_assert_str_eq(nm.all, "docs/readme.txt,setup.scr");
	/* Truncated: the end record is gone, the local headers remain. */
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(rules_zip_names(buf, 47, collect, &nm), 1);
	ck_assert_str_eq(nm.all, "docs/readme.txt");
	/* Every prefix of the archive is handled without reading past it. */
	for (size_t cut = 0; cut <= len; cut++) {
		unsigned char *copy = xmemdup(buf, cut ? cut : 1);
		memset(&nm, 0, sizeof(nm));
		rules_zip_names(copy, cut, collect, &nm);
		free(copy);
	}
	/* A directory offset pointing outside falls back to local headers. */
	buf[len - 22 + 16] = 0xff;
	buf[len - 22 + 17] = 0xff;
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(rules_zip_names(buf, len, collect, &nm), 2);
	/* Garbage. */
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(
	    rules_zip_names((const unsigned char *)"not a zip at all, no", 20, collect, &nm), 0);
}
END_TEST

/* ---- rate limit ---- */

START_TEST(test_ratelimit_circular)
{
	/* One circular to 300 agencies passes; a second to the same 300
	 * adds no new recipients; spraying 300 new ones a few times trips. */
	struct ratelimit *rl = ratelimit_new(3600, 100, 1000);
	char **r = xcalloc(1500, sizeof(*r));
	for (int i = 0; i < 1500; i++) {
		char buf[64];
		snprintf(buf, sizeof(buf), "office%d@agency%d.gov.vn", i, i % 300);
		r[i] = xstrdup(buf);
	}
	unsigned int m, n;
	time_t now = 1000000;
	ck_assert_int_eq(
	    ratelimit_check(rl, "a@lamdong.gov.vn", (const char *const *)r, 300, now, &m, &n),
	    RATELIMIT_OK);
	ck_assert_uint_eq(m, 1);
	ck_assert_uint_eq(n, 300);
	ck_assert_int_eq(
	    ratelimit_check(rl, "a@lamdong.gov.vn", (const char *const *)r, 300, now + 1, &m, &n),
	    RATELIMIT_OK);
	ck_assert_uint_eq(n, 300);
	ck_assert_int_eq(ratelimit_check(rl, "a@lamdong.gov.vn", (const char *const *)r + 300, 600,
	                                 now + 2, &m, &n),
	                 RATELIMIT_OK);
	ck_assert_uint_eq(n, 900);
	ck_assert_int_eq(ratelimit_check(rl, "a@lamdong.gov.vn", (const char *const *)r + 900, 200,
	                                 now + 3, &m, &n),
	                 RATELIMIT_RECIPIENTS);
	ck_assert_uint_eq(n, 1100);
	/* The refused message was not counted: a smaller one still fits. */
	ck_assert_int_eq(ratelimit_check(rl, "a@lamdong.gov.vn", (const char *const *)r + 900, 100,
	                                 now + 4, &m, &n),
	                 RATELIMIT_OK);
	ck_assert_uint_eq(m, 4);
	/* Another sender has its own counters. */
	ck_assert_int_eq(
	    ratelimit_check(rl, "b@lamdong.gov.vn", (const char *const *)r, 1000, now, &m, &n),
	    RATELIMIT_OK);
	/* After the window, everything is forgotten. */
	ck_assert_int_eq(ratelimit_check(rl, "a@lamdong.gov.vn", (const char *const *)r + 1000, 500,
	                                 now + 3605, &m, &n),
	                 RATELIMIT_OK);
	ck_assert_uint_eq(m, 1);
	ck_assert_uint_eq(n, 500);
	for (int i = 0; i < 1500; i++)
		free(r[i]);
	free(r);
	ratelimit_free(&rl);
	ck_assert_ptr_null(rl);
}
END_TEST

START_TEST(test_ratelimit_messages)
{
	struct ratelimit *rl = ratelimit_new(600, 5, 0);
	const char *one[] = {"x@example.com"};
	unsigned int m, n;
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(ratelimit_check(rl, "u", one, 1, 100 + i, &m, &n), RATELIMIT_OK);
	ck_assert_int_eq(ratelimit_check(rl, "u", one, 1, 110, &m, &n), RATELIMIT_MESSAGES);
	ck_assert_uint_eq(m, 6);
	/* The first message leaves the window at 100 + 600. */
	ck_assert_int_eq(ratelimit_check(rl, "u", one, 1, 700, &m, &n), RATELIMIT_OK);
	ck_assert_int_eq(ratelimit_check(rl, "u", one, 1, 701, &m, &n), RATELIMIT_OK);
	ck_assert_int_eq(ratelimit_check(rl, "u", one, 1, 701, &m, &n), RATELIMIT_MESSAGES);
	/* Messages without external recipients count as messages too. */
	ck_assert_int_eq(ratelimit_check(rl, "v", NULL, 0, 100, &m, &n), RATELIMIT_OK);
	ck_assert_uint_eq(n, 0);
	ratelimit_free(&rl);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("milter-core");
	TCase *tc = tcase_create("bayes");
	tcase_add_test(tc, test_chi2q);
	tcase_add_test(tc, test_token_prob);
	tcase_add_test(tc, test_combine);
	suite_add_tcase(s, tc);
	tc = tcase_create("tokendb");
	tcase_add_checked_fixture(tc, db_setup, db_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tokendb_train);
	tcase_add_test(tc, test_tokendb_grows);
	tcase_add_test(tc, test_tokendb_bad_dir);
	suite_add_tcase(s, tc);
	tc = tcase_create("lists");
	tcase_add_test(tc, test_netlist);
	tcase_add_test(tc, test_domain_patterns);
	suite_add_tcase(s, tc);
	tc = tcase_create("rules");
	tcase_add_test(tc, test_lookalike);
	tcase_add_test(tc, test_executable_names);
	tcase_add_test(tc, test_zip_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("ratelimit");
	tcase_add_test(tc, test_ratelimit_circular);
	tcase_add_test(tc, test_ratelimit_messages);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
