/* SEARCH keys: parsing into a program and evaluation on messages held in
 * memory; Vietnamese case and diacritic folding; IMAP and RFC 5322 dates. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap-date.h"
#include "imapd/imap-parser.h"
#include "imapd/imap-pool.h"
#include "imapd/imap-search.h"
#include "mime.h"
#include "str.h"

static const struct imap_limits limits = {
	.max_line = 4096, .max_literal = 4096, .max_small_literal = 4096,
	.max_command = 65536, .max_depth = 16, .max_args = 1000,
};

static const char MSG_VI[] =
	"From: =?utf-8?b?Tmd1eeG7hW4gVsSDbiBBbg==?= <an@lamdong.gov.vn>\r\n"
	"To: demo@lamdong.gov.vn, \"Bob\" <bob@example.com>\r\n"
	"Subject: =?utf-8?q?Quy=E1=BA=BFt_=C4=91=E1=BB=8Bnh_s=E1=BB=91_12?=\r\n"
	"Date: Tue, 1 Feb 2022 23:30:00 -0500\r\n"
	"X-Priority: 1\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/alternative; boundary=\"b\"\r\n"
	"\r\n"
	"--b\r\n"
	"Content-Type: text/plain; charset=windows-1258\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"Ti=EAu =F0=EA=CC\r\n"
	"--b\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"PHA+VsSDbiBi4bqjbiA8Yj524buBPC9iPiB2aeG7h2MgdGnhur9wIG5o4bqtbjwvcD4=\r\n"
	"--b--\r\n";

static const char MSG_EN[] =
	"From: Carol <carol@example.org>\r\n"
	"Subject: Weekly report\r\n"
	"Date: Wed, 02 Feb 2022 08:00:00 +0000\r\n"
	"\r\n"
	"All numbers attached.\r\n";

static int loads;
static bool use_envelope;
static struct mime_message *env_msg;

/* The envelope as the store's cached parse gives it. */
static const struct mime_envelope *envelope_fn(struct search_msg *m, void *ctx)
{
	(void)m;
	mime_message_free(&env_msg);
	env_msg = mime_parse(ctx, strlen(ctx));
	return mime_message_root(env_msg)->envelope;
}

static int load_fn(struct search_msg *m, bool want_body, void *ctx)
{
	(void)want_body;
	const char *text = ctx;
	loads++;
	m->data = text;
	m->len = strlen(text);
	m->have_body = true;
	return 0;
}

/* Parses "SEARCH <keys>" and evaluates it on message 1 (MSG_VI, uid 10,
 * \Seen \Flagged, keyword 1 "$Work") and message 2 (MSG_EN, uid 20, no
 * flags); returns "12", "1", "2", "" or "BAD:<error>". */
static char *run(const char *keys)
{
	struct imap_reader *r = imap_reader_new(&limits);
	struct str in = STR_INIT, out = STR_INIT;
	str_printf(&in, "t SEARCH %s\r\n", keys);
	enum imap_read_result res;
	size_t used = imap_reader_feed(r, in.s, in.len, &res);
	ck_assert_uint_eq(used, in.len);
	ck_assert_int_eq(res, IMAP_READ_COMMAND);
	struct imap_command cmd;
	const char *err;
	ck_assert_int_eq(imap_reader_parse(r, &cmd, &err), 0);
	struct pool *pool = pool_new(0);
	static const char *const kws[] = { "$Junk", "$Work" };
	struct search_parse_ctx ctx = { .pool = pool, .n_messages = 2, .max_uid = 20,
					.keywords = kws, .n_keywords = 2, .max_depth = 8 };
	struct search_program prog;
	bool badcs;
	if (search_parse(cmd.args, cmd.n_args, &ctx, &prog, &badcs, &err) < 0) {
		str_printf(&out, "BAD:%s", err);
	} else {
		struct store_message recs[2] = {
			{ .uid = 10, .flags = MSG_SEEN | MSG_FLAGGED, .keywords = 2, .modseq = 7,
			  .size = sizeof(MSG_VI) - 1, .internal_date = 1643760000 /* 2022-02-02 */,
			  .save_date = 1643760000 },
			{ .uid = 20, .modseq = 3, .size = sizeof(MSG_EN) - 1,
			  .internal_date = 1643673600 /* 2022-02-01 */, .save_date = 1643673600 },
		};
		const char *texts[2] = { MSG_VI, MSG_EN };
		for (int i = 0; i < 2; i++) {
			struct search_msg m = { .seq = (uint32_t)i + 1, .rec = &recs[i],
						.load = load_fn, .load_ctx = (void *)texts[i] };
			if (use_envelope)
				m.envelope = envelope_fn;
			if (search_eval(&prog, &m))
				str_printf(&out, "%d", i + 1);
			search_msg_clear(&m);
		}
	}
	mime_message_free(&env_msg);
	pool_free(&pool);
	imap_reader_free(&r);
	str_free(&in);
	char *ret = str_steal(&out);
	return ret;
}

#define EXPECT(keys, want)                                                              \
	do {                                                                            \
		char *got_ = run(keys);                                                 \
		ck_assert_msg(strcmp(got_, want) == 0, "SEARCH %s: got '%s' expected '%s'", \
			      keys, got_, want);                                        \
		free(got_);                                                             \
	} while (0)

START_TEST(flags_and_sets)
{
	EXPECT("ALL", "12");
	EXPECT("SEEN", "1");
	EXPECT("UNSEEN", "2");
	EXPECT("FLAGGED UNSEEN", "");
	EXPECT("OR FLAGGED UNSEEN", "12");
	EXPECT("NOT FLAGGED", "2");
	EXPECT("KEYWORD $Work", "1");
	EXPECT("UNKEYWORD $Work", "2");
	EXPECT("KEYWORD $Unknown", "");
	EXPECT("UNKEYWORD $Unknown", "12");
	EXPECT("KEYWORD \\Seen", "1");
	EXPECT("NEW", "");
	EXPECT("RECENT", "");
	EXPECT("OLD", "12");
	EXPECT("2", "2");
	EXPECT("1:*", "12");
	EXPECT("UID 20", "2");
	EXPECT("UID 11:*", "2");
	EXPECT("(SEEN) (FLAGGED)", "1");
	EXPECT("LARGER 200", "1");
	EXPECT("SMALLER 200", "2");
	EXPECT("MODSEQ 5", "1");
	EXPECT("MODSEQ \"/flags/\\\\seen\" all 3", "12");
	EXPECT("ANSWERED", "");
	EXPECT("UNDELETED UNDRAFT UNANSWERED", "12");
}
END_TEST

START_TEST(dates)
{
	EXPECT("ON 2-Feb-2022", "1");
	EXPECT("BEFORE 2-Feb-2022", "2");
	EXPECT("SINCE 2-Feb-2022", "1");
	EXPECT("SAVEDON 1-Feb-2022", "2");
	/* Date: Tue, 1 Feb 2022 23:30 -0500 is 2 Feb in UTC */
	EXPECT("SENTON 2-Feb-2022", "12");
	EXPECT("SENTBEFORE 2-Feb-2022", "");
	EXPECT("SENTSINCE 3-Feb-2022", "");
	int64_t t;
	ck_assert(imap_date_parse("1-Feb-1994", &t));
	ck_assert_int_eq(t, 760060800);
	ck_assert(imap_datetime_parse(" 1-Feb-1994 21:52:25 -0800", &t));
	ck_assert_int_eq(t, 760060800 + 21 * 3600 + 52 * 60 + 25 + 8 * 3600);
	ck_assert(!imap_date_parse("30-Feb-1994", &t));
	ck_assert(!imap_date_parse("1-Foo-1994", &t));
	ck_assert(!imap_datetime_parse("01-Feb-1994 24:00:00 +0000", &t));
	ck_assert(rfc5322_date_parse("Tue, 1 Feb 94 21:52:25 PST", &t));
	ck_assert_int_eq(t, 760060800 + 21 * 3600 + 52 * 60 + 25 + 8 * 3600);
	ck_assert(rfc5322_date_parse("1 Feb 1994 21:52 +0000 (UTC)", &t));
	ck_assert(!rfc5322_date_parse("yesterday", &t));
	struct str s = STR_INIT;
	imap_datetime_write(&s, 760060800 + 3723);
	ck_assert_str_eq(s.s, "\"01-Feb-1994 01:02:03 +0000\"");
	str_free(&s);
}
END_TEST

START_TEST(text)
{
	EXPECT("SUBJECT \"quyet dinh\"", "1");
	EXPECT("SUBJECT \"QUYẾT ĐỊNH\"", "1");
	EXPECT("SUBJECT \"đinh\"", "");
	EXPECT("SUBJECT \"DINH\"", "1");
	EXPECT("SUBJECT weekly", "2");
	EXPECT("FROM \"nguyen van an\"", "1");
	EXPECT("FROM an@lamdong.gov.vn", "1");
	EXPECT("TO bob@example.com", "1");
	EXPECT("CC bob", "");
	EXPECT("HEADER X-Priority 1", "1");
	EXPECT("HEADER X-Priority \"\"", "1");
	/* text/plain in windows-1258 with a combining grave accent: "Tiêu đề" */
	EXPECT("BODY \"tieu de\"", "1");
	/* the HTML part: tags removed, "văn bản <b>về</b> việc" */
	EXPECT("BODY \"van ban ve viec\"", "1");
	EXPECT("BODY \"Văn bản về\"", "1");
	EXPECT("TEXT numbers", "2");
	EXPECT("TEXT \"weekly\"", "2");
	EXPECT("BODY weekly", "");
	EXPECT("CHARSET UTF-8 SUBJECT \"số\"", "1");
	EXPECT("CHARSET ISO-8859-1 SUBJECT \"Weekly\"", "2");
	ck_assert(search_text_match("Quyết   định\r\n số", 21, "quyết định"));
	ck_assert(!search_text_match("abc", 3, "abcd"));
	ck_assert(search_text_match("abc", 3, ""));
}
END_TEST

START_TEST(errors)
{
	EXPECT("", "BAD:Missing search keys");
	EXPECT("FOO", "BAD:Unknown search key");
	EXPECT("SUBJECT", "BAD:Missing search argument");
	EXPECT("BEFORE yesterday", "BAD:Invalid date");
	EXPECT("LARGER x", "BAD:Invalid number");
	EXPECT("UID x", "BAD:Invalid sequence set");
	EXPECT("OR SEEN", "BAD:Missing search argument");
	EXPECT("NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT SEEN", "BAD:Search keys nested too deeply");
	EXPECT("CHARSET X-NONE ALL", "BAD:[BADCHARSET (UTF-8 US-ASCII)] Unknown charset");
	EXPECT("RETURN (BOGUS) ALL", "BAD:Unknown RETURN option");
	EXPECT("()", "BAD:Empty search key list");
}
END_TEST

START_TEST(from_envelope)
{
	/* the same answers from the cached envelope, without the message */
	use_envelope = true;
	loads = 0;
	EXPECT("SUBJECT \"quyet dinh\"", "1");
	EXPECT("SUBJECT \"QUYẾT ĐỊNH\"", "1");
	EXPECT("SUBJECT \"đinh\"", "");
	EXPECT("FROM \"nguyen van an\"", "1");
	EXPECT("FROM an@lamdong.gov.vn", "1");
	EXPECT("TO bob@example.com", "1");
	EXPECT("FROM carol", "2");
	EXPECT("SENTON 2-Feb-2022", "12");
	EXPECT("SENTSINCE 3-Feb-2022", "");
	ck_assert_int_eq(loads, 0);
	EXPECT("BODY \"van ban\"", "1");
	ck_assert_int_gt(loads, 0);
	use_envelope = false;
}
END_TEST

START_TEST(lazy_loading)
{
	/* keys on the record alone do not read the message */
	loads = 0;
	free(run("SEEN OR UID 1:5 LARGER 10"));
	ck_assert_int_eq(loads, 0);
	free(run("SUBJECT x"));
	ck_assert_int_eq(loads, 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imap-search");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, flags_and_sets);
	tcase_add_test(tc, dates);
	tcase_add_test(tc, text);
	tcase_add_test(tc, errors);
	tcase_add_test(tc, from_envelope);
	tcase_add_test(tc, lazy_loading);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
