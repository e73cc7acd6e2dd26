/* Sequence sets, modified UTF-7 mailbox names and response strings. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap-pool.h"
#include "imapd/imap-seqset.h"
#include "imapd/imap-utf7.h"
#include "imapd/imap-write.h"
#include "str.h"

static char *set_str(const char *in, uint32_t star)
{
	struct pool *p = pool_new(0);
	struct seqset set;
	const char *err;
	struct str out = STR_INIT;
	if (seqset_parse(in, star, p, &set, &err) < 0)
		str_appends(&out, "ERR");
	else
		seqset_write(&out, &set);
	pool_free(&p);
	return str_steal(&out);
}

#define SET_EQ(in, star, expect)                         \
	do {                                             \
		char *g_ = set_str(in, star);            \
		ck_assert_str_eq(g_, expect);            \
		free(g_);                                \
	} while (0)

START_TEST(seqsets)
{
	SET_EQ("1", 10, "1");
	SET_EQ("1:3,5,4", 10, "1:5");
	SET_EQ("7:2", 10, "2:7");
	SET_EQ("1:*", 10, "1:10");
	SET_EQ("*", 10, "10");
	SET_EQ("20:*", 10, "10:20");
	SET_EQ("*", 0, "");
	SET_EQ("1:*", 0, "");
	SET_EQ("4294967295", 1, "4294967295");
	SET_EQ("4294967296", 1, "ERR");
	SET_EQ("0", 10, "ERR");
	SET_EQ("1,", 10, "ERR");
	SET_EQ("", 10, "ERR");
	SET_EQ("1:2:3", 10, "ERR");
	SET_EQ("a", 10, "ERR");
	SET_EQ("3,1,2,9:8,100", 10, "1:3,8:9,100");

	struct pool *p = pool_new(0);
	struct seqset set;
	const char *err;
	ck_assert_int_eq(seqset_parse("2:4,10,20:30", 50, p, &set, &err), 0);
	ck_assert(seqset_contains(&set, 2));
	ck_assert(seqset_contains(&set, 4));
	ck_assert(!seqset_contains(&set, 5));
	ck_assert(seqset_contains(&set, 10));
	ck_assert(seqset_contains(&set, 25));
	ck_assert(!seqset_contains(&set, 31));
	ck_assert_uint_eq(seqset_count(&set), 3 + 1 + 11);
	ck_assert_uint_eq(seqset_max(&set), 30);
	pool_free(&p);

	struct str out = STR_INIT;
	uint32_t nums[] = { 1, 2, 3, 5, 5, 7, 8 };
	seqset_write_sorted(&out, nums, 7);
	ck_assert_str_eq(out.s, "1:3,5,7:8");
	str_truncate(&out, 0);
	uint32_t ord[] = { 9, 10, 2, 3, 7 };
	seqset_write_ordered(&out, ord, 5);
	ck_assert_str_eq(out.s, "9:10,2:3,7");
	str_free(&out);
}
END_TEST

static void utf7_pair(const char *utf8, const char *utf7)
{
	struct str out = STR_INIT;
	ck_assert_int_eq(imap_utf8_to_utf7(utf8, &out), 0);
	ck_assert_str_eq(out.s, utf7);
	str_truncate(&out, 0);
	ck_assert_int_eq(imap_utf7_to_utf8(utf7, &out), 0);
	ck_assert_str_eq(out.s, utf8);
	str_free(&out);
}

static void utf7_bad(const char *utf7)
{
	struct str out = STR_INIT;
	ck_assert_msg(imap_utf7_to_utf8(utf7, &out) < 0, "%s accepted", utf7);
	str_free(&out);
}

START_TEST(utf7)
{
	utf7_pair("INBOX", "INBOX");
	utf7_pair("a&b", "a&-b");
	/* RFC 3501 5.1.3 */
	utf7_pair("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		  "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* Vietnamese */
	utf7_pair("Th\xc6\xb0 \xc4\x91\xc3\xa3 g\xe1\xbb\xad\x69", "Th&AbA- &AREA4w- g&Hu0-i");
	utf7_pair("Quy\xe1\xba\xbft \xc4\x91\xe1\xbb\x8bnh", "Quy&Hr8-t &AREeyw-nh");
	/* outside the BMP: a surrogate pair */
	utf7_pair("\xf0\x9f\x93\xa7", "&2D3c5w-");
	utf7_bad("&Jjo");        /* unterminated */
	utf7_bad("&AGE-");       /* encoded ASCII 'a' */
	utf7_bad("&2D0-");       /* lone high surrogate */
	utf7_bad("&-&");         /* '&' at the end */
	utf7_bad("&U,BTFw-&ZeVnLIqe-"); /* two runs back to back */
	utf7_bad("a\xc3\xa9");   /* raw 8-bit */
	utf7_bad("&U,BTFx-");    /* non-zero padding bits */
	utf7_bad("&*-");
	struct str out = STR_INIT;
	ck_assert_int_lt(imap_utf8_to_utf7("\xc3\x28", &out), 0);
	ck_assert_int_lt(imap_utf8_to_utf7("\xed\xa0\x80", &out), 0); /* surrogate */
	ck_assert_int_lt(imap_utf8_to_utf7("\xc0\xaf", &out), 0);     /* overlong */
	str_free(&out);
	ck_assert(imap_utf8_valid("\xe1\xbb\x8b", 3));
	ck_assert(!imap_utf8_valid("\xe1\xbb", 2));
	ck_assert(!imap_utf8_valid("\xff", 1));
}
END_TEST

START_TEST(writer)
{
	struct str out = STR_INIT;
	imap_write_astring(&out, "abc", 3, false);
	str_appendc(&out, ' ');
	imap_write_astring(&out, "nil", 3, false);
	str_appendc(&out, ' ');
	imap_write_astring(&out, "a b\"\\", 5, false);
	str_appendc(&out, ' ');
	imap_write_string(&out, "a\r\nb", 4, false);
	str_appendc(&out, ' ');
	imap_write_nstring(&out, NULL, 0, false);
	str_appendc(&out, ' ');
	imap_write_string(&out, "\xc4\x91", 2, false);
	str_appendc(&out, ' ');
	imap_write_string(&out, "\xc4\x91", 2, true);
	str_appendc(&out, ' ');
	imap_write_string(&out, "\xc4", 1, true);
	ck_assert_str_eq(out.s, "abc \"nil\" \"a b\\\"\\\\\" {4}\r\na\r\nb NIL {2}\r\n\xc4\x91 "
				"\"\xc4\x91\" {1}\r\n\xc4");
	str_truncate(&out, 0);
	imap_write_mailbox(&out, "Th\xc6\xb0 r\xc3\xa1" "c", false);
	str_appendc(&out, ' ');
	imap_write_mailbox(&out, "Th\xc6\xb0 r\xc3\xa1" "c", true);
	ck_assert_str_eq(out.s, "\"Th&AbA- r&AOE-c\" \"Th\xc6\xb0 r\xc3\xa1" "c\"");
	str_free(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imap-util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, seqsets);
	tcase_add_test(tc, utf7);
	tcase_add_test(tc, writer);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
