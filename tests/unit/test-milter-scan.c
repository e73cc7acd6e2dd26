/* congvu-milter-spam's tokenizer, rules over parsed messages and the whole
 * scoring core (the code path of both the milter and `score`), with a token
 * database in a temporary directory and SPF off (the integration tests
 * cover SPF through a real DNS server). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter-spam/rules.h"
#include "milter-spam/scan.h"
#include "milter-spam/tokenize.h"
#include "mime.h"
#include "settings.h"
#include "str.h"
#include "xalloc.h"

/* ---- tokenizer ---- */

static void collect(void *context, const char *tok, size_t len)
{
	struct str *all = context;
	str_append(all, tok, len);
	str_appendc(all, '\n');
}

static bool has_token(const struct str *all, const char *tok)
{
	size_t n = strlen(tok);
	for (const char *p = all->s; p != NULL && p < all->s + all->len;) {
		const char *nl = memchr(p, '\n', (size_t)(all->s + all->len - p));
		if (nl == NULL)
			break;
		if ((size_t)(nl - p) == n && memcmp(p, tok, n) == 0)
			return true;
		p = nl + 1;
	}
	return false;
}

static struct str tokens_of(const char *msg, size_t len)
{
	struct str all = STR_INIT;
	struct mime_message *m = mime_parse(msg, len);
	tokenize_message(msg, len, m, collect, &all);
	mime_message_free(&m);
	return all;
}

/* "Công văn số 12 về họp" as UTF-8 base64 in the Subject; an HTML body in
 * quoted-printable windows-1258-free UTF-8 with a link. */
static const char vn_msg[] =
    "From: =?UTF-8?B?U+G7nyBUaMO0bmcgdGluIHbDoCBUcnV54buBbiB0aMO0bmc=?= <vanthu@lamdong.gov.vn>\r\n"
    "To: a@example.org, b@example.org\r\n"
    "Subject: =?UTF-8?B?Q8O0bmcgdsSDbiBz4buRIDEyIHbhu4EgaOG7jXA=?=\r\n"
    "Date: Mon, 2 Mar 2026 08:00:00 +0700\r\n"
    "Message-ID: <abc@mail.lamdong.gov.vn>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "K=C3=ADnh g=E1=BB=ADi c=C3=A1c =C4=91=C6=A1n v=E1=BB=8B: QUY=E1=BA=BET =C4=90=E1=BB=8ANH.\r\n"
    "--b1\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<html><body><p>Xem <a href=\"https://portal.lamdong.gov.vn/van-ban/12345\">v&#259;n "
    "b&#7843;n</a></p>"
    "<script>var hidden = 'secretword';</script></body></html>\r\n"
    "--b1--\r\n";

START_TEST(test_tokenize_vietnamese)
{
	struct str t = tokens_of(vn_msg, sizeof(vn_msg) - 1);
	/* Decoded subject words, Vietnamese syllables whole and folded. */
	ck_assert_msg(has_token(&t, "subject:công"), "%s", t.s);
	ck_assert(has_token(&t, "subject:văn"));
	ck_assert(has_token(&t, "subject:về"));
	ck_assert(has_token(&t, "subject:họp"));
	/* Quoted-printable body, case-folded with accents kept. */
	ck_assert(has_token(&t, "kính"));
	ck_assert(has_token(&t, "quyết"));
	ck_assert(has_token(&t, "định"));
	ck_assert(has_token(&t, "đơn"));
	/* HTML: text, entities, links; scripts dropped. */
	ck_assert(has_token(&t, "văn"));
	ck_assert(has_token(&t, "bản"));
	ck_assert(has_token(&t, "proto:https"));
	ck_assert(has_token(&t, "url:portal.lamdong.gov.vn"));
	ck_assert(has_token(&t, "url:lamdong.gov.vn"));
	ck_assert(has_token(&t, "url:12345"));
	ck_assert(!has_token(&t, "secretword"));
	ck_assert(!has_token(&t, "'secretword';"));
	/* Headers. */
	ck_assert(has_token(&t, "hdr:message-id"));
	ck_assert(has_token(&t, "from:dom:lamdong.gov.vn"));
	ck_assert(has_token(&t, "from:user:vanthu"));
	ck_assert(has_token(&t, "from:name:thông"));
	ck_assert(has_token(&t, "to:dom:example.org"));
	ck_assert(has_token(&t, "to:count:2"));
	ck_assert(has_token(&t, "msgid:mail.lamdong.gov.vn"));
	ck_assert(has_token(&t, "ctype:multipart/alternative"));
	ck_assert(has_token(&t, "ctype:text/html"));
	ck_assert(has_token(&t, "charset:utf-8"));
	str_free(&t);
}
END_TEST

START_TEST(test_tokenize_long_and_short)
{
	struct str msg = STR_INIT;
	str_appends(&msg, "Subject: hi\r\nDate: Wed, 07 Oct 2020 23:01:36 -1900\r\n"
	                  "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	                  "ab of the FREE!!! money $$$ \xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 ");
	for (int i = 0; i < 100; i++)
		str_appendc(&msg, 'x');
	str_appends(&msg, " end\r\n");
	struct str t = tokens_of(msg.s, msg.len);
	ck_assert(!has_token(&t, "ab"));
	ck_assert(has_token(&t, "the"));
	ck_assert(has_token(&t, "free!!!"));
	ck_assert(has_token(&t, "$$$"));
	ck_assert_msg(has_token(&t, "skip:x 100"), "%s", t.s);
	ck_assert(has_token(&t, "end"));
	/* CJK text in overlapping pairs of characters. */
	ck_assert(has_token(&t, "cjk:\xe4\xb8\xad\xe6\x96\x87"));
	ck_assert(has_token(&t, "cjk:\xe6\x96\x87\xe5\xad\x97"));
	ck_assert(has_token(&t, "date:tz:-1900"));
	ck_assert(has_token(&t, "date:shape:a, 9 a 9 9:9:9 -9"));
	str_free(&t);
	str_free(&msg);
}
END_TEST

/* Broken input: the tokenizer returns, whatever it is given. */
START_TEST(test_tokenize_malformed)
{
	static const char *cases[] = {
	    "",
	    "no header at all",
	    "Content-Type: multipart/mixed\r\n\r\n--x\r\nnot a part\r\n",
	    ("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; "
	     "charset=no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!====@@@\r\n"),
	    "Subject: =?utf-8?q?=FF=FE=?=\r\nContent-Type: text/html\r\n\r\n<a href=\"http://",
	    "Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B\x1b(B\x1b$",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct str t = tokens_of(cases[i], strlen(cases[i]));
		str_free(&t);
	}
	/* NUL bytes. */
	char nul[] = "Subject: a\0b\r\n\r\nbody\0with\0nuls and words\r\n";
	struct str t = tokens_of(nul, sizeof(nul) - 1);
	ck_assert(has_token(&t, "words"));
	str_free(&t);
	/* A 10 MB single line. */
	size_t big = 10 * 1024 * 1024;
	char *line = xmalloc(big);
	memcpy(line, "Subject: x\r\n\r\n", 14);
	for (size_t i = 14; i < big; i++)
		line[i] = (char)('a' + (i % 7 == 0 ? 26 - 'a' + ' ' : (int)(i % 26)));
	t = tokens_of(line, big);
	str_free(&t);
	free(line);
}
END_TEST

/* ---- rules over a message ---- */

static void b64(const unsigned char *in, size_t len, struct str *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		str_appendc(out, tab[(v >> 18) & 63]);
		str_appendc(out, tab[(v >> 12) & 63]);
		str_appendc(out, i + 1 < len ? tab[(v >> 6) & 63] : '=');
		str_appendc(out, i + 2 < len ? tab[v & 63] : '=');
		if ((i / 3) % 19 == 18)
			str_appends(out, "\r\n");
	}
	str_appends(out, "\r\n");
}

/* A zip holding one stored file called name. */
static size_t make_zip(unsigned char *buf, const char *name)
{
	size_t nl = strlen(name), p = 0;
	memset(buf, 0, 30);
	memcpy(buf, "PK\3\4", 4);
	buf[18] = 2;
	buf[26] = (unsigned char)nl;
	memcpy(buf + 30, name, nl);
	p = 30 + nl;
	memcpy(buf + p, "hi", 2);
	p += 2;
	size_t cd = p;
	memset(buf + p, 0, 46);
	memcpy(buf + p, "PK\1\2", 4);
	buf[p + 28] = (unsigned char)nl;
	memcpy(buf + p + 46, name, nl);
	p += 46 + nl;
	memset(buf + p, 0, 22);
	memcpy(buf + p, "PK\5\6", 4);
	buf[p + 10] = 1;
	buf[p + 12] = (unsigned char)(46 + nl);
	buf[p + 16] = (unsigned char)cd;
	return p + 22;
}

static void message_with_attachment(struct str *m, const char *filename, const unsigned char *data,
                                    size_t len, bool headers)
{
	if (headers)
		str_appends(m,
		            "From: Someone <someone@example.org>\r\nDate: Mon, 2 Mar 2026 08:00:00 "
		            "+0700\r\nMessage-ID: <1@example.org>\r\nSubject: files\r\n");
	str_printf(m,
	           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
	           "--zz\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
	           "--zz\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n"
	           "Content-Disposition: attachment; filename=\"%s\"\r\n"
	           "Content-Transfer-Encoding: base64\r\n\r\n",
	           filename, filename);
	b64(data, len, m);
	str_appends(m, "--zz--\r\n");
}

static void examine(const struct str *m, struct rule_facts *f)
{
	struct mime_message *msg = mime_parse(m->s, m->len);
	rules_examine(m->s, m->len, msg, "exe scr js vbs bat", f);
	mime_message_free(&msg);
}

START_TEST(test_rules_attachments)
{
	struct rule_facts f;
	struct str m = STR_INIT;
	message_with_attachment(&m, "Invoice.pdf.exe", (const unsigned char *)"MZ", 2, true);
	examine(&m, &f);
	ck_assert_str_eq(f.executable, "Invoice.pdf.exe");
	ck_assert(f.has_date && f.has_message_id && f.has_from && f.has_subject);
	ck_assert_str_eq(f.from_domain, "example.org");
	ck_assert(!f.bad_mime);

	unsigned char zip[256];
	size_t zl = make_zip(zip, "photos/setup.scr");
	str_truncate(&m, 0);
	message_with_attachment(&m, "photos.zip", zip, zl, false);
	examine(&m, &f);
	ck_assert_str_eq(f.executable, "photos.zip:photos/setup.scr");
	ck_assert(!f.has_date && !f.has_message_id && !f.has_from && !f.has_subject);

	zl = make_zip(zip, "report.pdf");
	str_truncate(&m, 0);
	message_with_attachment(&m, "docs.zip", zip, zl, true);
	examine(&m, &f);
	ck_assert_str_eq(f.executable, "");

	str_truncate(&m, 0);
	str_appends(&m, "From: x@example.org\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n");
	examine(&m, &f);
	ck_assert(f.bad_mime);
	str_free(&m);
}
END_TEST

/* ---- the scoring core ---- */

static char dir[64];
static struct settings *set;
static struct scanner *sc;

static void scan_setup(void)
{
	strcpy(dir, "/tmp/congvu-test-scan.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	set = settings_new();
	char *error = NULL;
	ck_assert_int_eq(settings_set(set, "global", "data_dir", dir, &error), 0);
	ck_assert_int_eq(settings_set(set, "global", "hostname", "mx.lamdong.gov.vn", &error), 0);
	ck_assert_int_eq(settings_set(set, "milter-spam", "spf", "no", &error), 0);
	ck_assert_int_eq(settings_set(set, "milter-spam", "bayes_min_messages", "5", &error), 0);
	ck_assert_int_eq(settings_set(set, "milter-spam", "ratelimit_messages", "3", &error), 0);
	if (scanner_new(set, &sc, &error) < 0)
		ck_abort_msg("scanner_new: %s", error);
}

static void scan_teardown(void)
{
	scanner_free(&sc);
	settings_free(&set);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *spam_words[] = {"cheap", "pills",   "viagra", "casino", "winner",
                                   "bonus", "lottery", "claim",  "prize",  "unsubscribe"};
static const char *ham_words[] = {"meeting",   "agenda",   "report",  "budget", "province",
                                  "committee", "schedule", "minutes", "draft",  "review"};

static void make_msg(struct str *m, const char **words, int seed, const char *from)
{
	str_printf(m,
	           "From: %s\r\nTo: staff@lamdong.gov.vn\r\nSubject: %s %s\r\n"
	           "Date: Mon, 2 Mar 2026 08:00:00 +0700\r\nMessage-ID: <%d@example.org>\r\n\r\n",
	           from, words[seed % 10], words[(seed + 3) % 10], seed);
	for (int i = 0; i < 30; i++)
		str_printf(m, "%s ", words[(seed * 7 + i * 3) % 10]);
	str_appends(m, "\r\n");
}

static void train(void)
{
	struct scan_training *tr = scanner_train_begin(sc);
	for (int i = 0; i < 20; i++) {
		struct str m = STR_INIT;
		make_msg(&m, spam_words, i, "promo@spam.example");
		scanner_train_message(tr, true, 1, m.s, m.len);
		str_truncate(&m, 0);
		make_msg(&m, ham_words, i, "colleague@partner.example");
		scanner_train_message(tr, false, 1, m.s, m.len);
		str_free(&m);
	}
	char *error = NULL;
	if (scanner_train_commit(&tr, &error) < 0)
		ck_abort_msg("train: %s", error);
}

static struct scan_result score(const struct scan_envelope *env, const struct str *m)
{
	struct scan_result res;
	scan_result_init(&res);
	char *error = NULL;
	if (scan_message(sc, env, m->s, m->len, &res, &error) < 0)
		ck_abort_msg("scan: %s", error);
	return res;
}

static bool has_test(const struct scan_result *r, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = r->tests.s; p != NULL && *p;) {
		size_t l = strcspn(p, ",");
		if (l == n && strncmp(p, name, n) == 0)
			return true;
		p += l + (p[l] == ',');
	}
	return false;
}

START_TEST(test_scan_untrained)
{
	struct scan_envelope env = {0};
	struct str m = STR_INIT;
	make_msg(&m, spam_words, 1, "promo@spam.example");
	struct scan_result r = score(&env, &m);
	/* Too little training: the classifier stays out. */
	ck_assert(r.bayes_prob < 0);
	ck_assert(r.score == 0.0);
	ck_assert(!r.spam);
	ck_assert_int_eq(r.action, SCAN_ACCEPT);
	struct str st = STR_INIT;
	scan_result_status(&r, &st);
	ck_assert_str_eq(st.s, "No, score=0.0 tests=none");
	str_free(&st);
	scan_result_free(&r);
	str_free(&m);
}
END_TEST

START_TEST(test_scan_classifier)
{
	train();
	struct scan_envelope env = {0};
	struct str m = STR_INIT;
	make_msg(&m, spam_words, 101, "promo@spam.example");
	struct scan_result r = score(&env, &m);
	ck_assert_msg(r.bayes_prob > 0.95, "spam prob %f", r.bayes_prob);
	ck_assert(has_test(&r, "BAYES_99"));
	ck_assert_msg(r.spam, "score %.1f tests %s", r.score, r.tests.s);
	ck_assert_int_eq(r.action, SCAN_ACCEPT); /* tag and file, no bounce */
	struct str st = STR_INIT;
	scan_result_status(&r, &st);
	ck_assert_msg(strncmp(st.s, "Yes, score=", 11) == 0, "%s", st.s);
	str_free(&st);
	scan_result_free(&r);

	str_truncate(&m, 0);
	make_msg(&m, ham_words, 202, "colleague@partner.example");
	r = score(&env, &m);
	ck_assert_msg(r.bayes_prob < 0.05, "ham prob %f", r.bayes_prob);
	ck_assert(!r.spam);
	ck_assert(r.score < 0);
	scan_result_free(&r);
	str_free(&m);
}
END_TEST

START_TEST(test_scan_rules)
{
	struct scan_envelope env = {0};
	struct str m = STR_INIT;
	message_with_attachment(&m, "scan.js", (const unsigned char *)"alert(1)", 8, false);
	struct scan_result r = score(&env, &m);
	ck_assert(has_test(&r, "EXECUTABLE_ATTACHMENT"));
	ck_assert(has_test(&r, "MISSING_DATE"));
	ck_assert(has_test(&r, "MISSING_MESSAGE_ID"));
	ck_assert(has_test(&r, "MISSING_FROM"));
	ck_assert(has_test(&r, "MISSING_SUBJECT"));
	ck_assert(r.spam);
	ck_assert_int_eq(r.action, SCAN_REJECT);
	ck_assert_ptr_nonnull(strstr(r.reply.s, "EXECUTABLE_ATTACHMENT"));
	scan_result_free(&r);
	str_free(&m);

	/* Replies steered to a look-alike domain. */
	struct str m4 = STR_INIT;
	make_msg(&m4, ham_words, 8, "vanthu@lamdong.gov.vn");
	struct str m5 = STR_INIT;
	str_appends(&m5, "Reply-To: <vanthu@lamdomg.gov.vn>\r\n");
	str_append(&m5, m4.s, m4.len);
	r = score(&env, &m5);
	ck_assert_msg(has_test(&r, "LOOKALIKE_DOMAIN"), "%s", r.tests.s);
	scan_result_free(&r);
	str_free(&m4);
	str_free(&m5);

	/* A local address shown in the display name of an outside address. */
	struct str m3 = STR_INIT;
	make_msg(&m3, ham_words, 6, "\"vanthu@lamdong.gov.vn\" <x@example.com>");
	r = score(&env, &m3);
	ck_assert_msg(has_test(&r, "DISPLAY_NAME_SPOOF"), "%s", r.tests.s);
	scan_result_free(&r);
	str_truncate(&m3, 0);
	make_msg(&m3, ham_words, 6,
	         "=?utf-8?q?S=E1=BB=9F_L=C3=A2m_=C4=90=E1=BB=93ng?= <x@example.com>");
	r = score(&env, &m3);
	ck_assert(!has_test(&r, "DISPLAY_NAME_SPOOF")); /* a name, not our domain */
	scan_result_free(&r);
	str_truncate(&m3, 0);
	make_msg(&m3, ham_words, 6, "\"Van thu (lamdong.gov.vn)\" <vanthu@lamdong.gov.vn>");
	r = score(&env, &m3);
	ck_assert(!has_test(&r, "DISPLAY_NAME_SPOOF")); /* the address is ours */
	scan_result_free(&r);
	str_free(&m3);

	/* Look-alike of the local domain in From:. */
	struct str m2 = STR_INIT;
	make_msg(&m2, ham_words, 5, "\"Van thu\" <vanthu@lamdong-gov.vn>");
	r = score(&env, &m2);
	ck_assert(has_test(&r, "LOOKALIKE_DOMAIN"));
	ck_assert(r.spam);
	ck_assert_int_eq(r.action, SCAN_ACCEPT);
	scan_result_free(&r);
	str_free(&m2);
}
END_TEST

START_TEST(test_scan_origin)
{
	struct str m = STR_INIT;
	make_msg(&m, ham_words, 7, "Giam doc <giamdoc@lamdong.gov.vn>");
	/* From outside, not authenticated: spoofing sign. */
	struct scan_envelope env = {
	    .client_ip = "203.0.113.9", .helo = "mx.example", .mail_from = "bounce@example.net"};
	struct scan_result r = score(&env, &m);
	ck_assert(has_test(&r, "LOCAL_FROM_OUTSIDE"));
	ck_assert(r.spam);
	scan_result_free(&r);
	/* The same from a trusted network, or authenticated: fine. */
	env.client_ip = "127.0.0.1";
	r = score(&env, &m);
	ck_assert(!has_test(&r, "LOCAL_FROM_OUTSIDE"));
	ck_assert(!r.spam);
	scan_result_free(&r);
	env.client_ip = "203.0.113.9";
	env.auth_user = "giamdoc@lamdong.gov.vn";
	r = score(&env, &m);
	ck_assert(!has_test(&r, "LOCAL_FROM_OUTSIDE"));
	scan_result_free(&r);
	/* Offline (no client): no network checks. */
	struct scan_envelope none = {0};
	r = score(&none, &m);
	ck_assert(!has_test(&r, "LOCAL_FROM_OUTSIDE"));
	scan_result_free(&r);
	str_free(&m);
}
END_TEST

START_TEST(test_scan_ratelimit)
{
	struct str m = STR_INIT;
	make_msg(&m, ham_words, 9, "user@lamdong.gov.vn");
	const char *rcpts[] = {"x@example.com", "colleague@lamdong.gov.vn"};
	struct scan_envelope env = {.client_ip = "198.51.100.4",
	                            .auth_user = "user@lamdong.gov.vn",
	                            .mail_from = "user@lamdong.gov.vn",
	                            .rcpts = rcpts,
	                            .rcpt_count = 2};
	for (int i = 0; i < 3; i++) {
		struct scan_result r = score(&env, &m);
		ck_assert_int_eq(r.action, SCAN_ACCEPT);
		scan_result_free(&r);
	}
	struct scan_result r = score(&env, &m);
	ck_assert_int_eq(r.action, SCAN_TEMPFAIL);
	ck_assert(has_test(&r, "RATELIMIT"));
	ck_assert_ptr_nonnull(strstr(r.reply.s, "4 messages"));
	scan_result_free(&r);
	/* Unauthenticated mail is not rate limited by sender. */
	env.auth_user = NULL;
	r = score(&env, &m);
	ck_assert_int_eq(r.action, SCAN_ACCEPT);
	scan_result_free(&r);
	str_free(&m);
}
END_TEST

START_TEST(test_scan_reload)
{
	struct str m = STR_INIT;
	make_msg(&m, ham_words, 9, "x@partner.example");
	struct str noid = STR_INIT;
	/* Drop the Message-ID line. */
	const char *p = strstr(m.s, "Message-ID:");
	const char *e = strstr(p, "\r\n") + 2;
	str_append(&noid, m.s, (size_t)(p - m.s));
	str_appends(&noid, e);
	struct scan_envelope env = {0};
	struct scan_result r = score(&env, &noid);
	ck_assert(r.score == 1.0);
	scan_result_free(&r);
	char *error = NULL;
	ck_assert_int_eq(settings_set(set, "milter-spam", "score_no_message_id", "6.5", &error), 0);
	ck_assert_int_eq(scanner_reload(sc, set, &error), 0);
	r = score(&env, &noid);
	ck_assert(r.score == 6.5);
	ck_assert(r.spam);
	scan_result_free(&r);
	/* A bad value is refused and changes nothing. */
	ck_assert_int_eq(settings_set(set, "milter-spam", "score_no_message_id", "lots", &error),
	                 0);
	ck_assert_int_eq(scanner_reload(sc, set, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "score_no_message_id"));
	free(error);
	r = score(&env, &noid);
	ck_assert(r.score == 6.5);
	scan_result_free(&r);
	str_free(&noid);
	str_free(&m);
}
END_TEST

START_TEST(test_scan_bad_config)
{
	struct settings *s = settings_new();
	char *error = NULL;
	struct scanner *x = NULL;
	ck_assert_int_eq(settings_set(s, "milter-spam", "junk_threshold", "five", &error), 0);
	ck_assert_int_eq(scanner_new(s, &x, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "milter-spam.junk_threshold"));
	free(error);
	ck_assert_int_eq(settings_set(s, "milter-spam", "junk_threshold", "20", &error), 0);
	ck_assert_int_eq(scanner_new(s, &x, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "reject_threshold"));
	free(error);
	ck_assert_int_eq(settings_set(s, "milter-spam", "junk_threshold", "5", &error), 0);
	ck_assert_int_eq(settings_set(s, "milter-spam", "dnsbl_zones", "zen.example=x", &error), 0);
	ck_assert_int_eq(scanner_new(s, &x, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "dnsbl_zones"));
	free(error);
	ck_assert_int_eq(settings_set(s, "milter-spam", "dnsbl_zones", "", &error), 0);
	ck_assert_int_eq(settings_set(s, "global", "dns_server", "dns.example:53", &error), 0);
	ck_assert_int_eq(scanner_new(s, &x, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "global.dns_server"));
	free(error);
	ck_assert_ptr_null(x);
	settings_free(&s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("milter-scan");
	TCase *tc = tcase_create("tokenize");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tokenize_vietnamese);
	tcase_add_test(tc, test_tokenize_long_and_short);
	tcase_add_test(tc, test_tokenize_malformed);
	suite_add_tcase(s, tc);
	tc = tcase_create("rules");
	tcase_add_test(tc, test_rules_attachments);
	suite_add_tcase(s, tc);
	tc = tcase_create("scan");
	tcase_add_checked_fixture(tc, scan_setup, scan_teardown);
	tcase_add_test(tc, test_scan_untrained);
	tcase_add_test(tc, test_scan_classifier);
	tcase_add_test(tc, test_scan_rules);
	tcase_add_test(tc, test_scan_origin);
	tcase_add_test(tc, test_scan_ratelimit);
	tcase_add_test(tc, test_scan_reload);
	tcase_add_test(tc, test_scan_bad_config);
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
