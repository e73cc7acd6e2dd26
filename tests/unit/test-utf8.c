/* Unit tests of lib/utf8: validation, decoding, case folding, search keys
 * (Vietnamese without diacritics) and substring search. */
#include "config.h"
#include "utf8.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_valid)
{
	static const struct {
		const char *s;
		size_t len;
		bool valid;
	} cases[] = {
	    {"", 0, true},
	    {"ascii", 5, true},
	    {"Tiếng Việt", 14, true},
	    {"a\0b", 3, true},
	    {"\xf0\x9f\x98\x80", 4, true},  /* U+1F600 */
	    {"\xc0\x80", 2, false},         /* overlong NUL */
	    {"\xe0\x80\xaf", 3, false},     /* overlong */
	    {"\xed\xa0\x80", 3, false},     /* surrogate */
	    {"\xf4\x90\x80\x80", 4, false}, /* above U+10FFFF */
	    {"\xc3", 1, false},             /* truncated */
	    {"\x80", 1, false},             /* lone continuation */
	    {"\xe1\xba", 2, false},
	    {"\xff", 1, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(utf8_is_valid(cases[i].s, cases[i].len) == cases[i].valid, "case %zu",
		              i);

	uint32_t cp;
	ck_assert_uint_eq(utf8_decode("\xe1\xba\xbf", 3, &cp), 3);
	ck_assert_uint_eq(cp, 0x1EBF);
	ck_assert_uint_eq(utf8_decode("\xe1\xba", 2, &cp), 1);
	ck_assert_uint_eq(cp, UTF8_REPLACEMENT);

	struct str out = STR_INIT;
	utf8_encode(0x1EBF, &out);
	utf8_encode(0xD800, &out);
	utf8_encode(0x1F600, &out);
	utf8_encode('a', &out);
	ck_assert_str_eq(out.s, "\xe1\xba\xbf\xef\xbf\xbd\xf0\x9f\x98\x80"
	                        "a");
	str_truncate(&out, 0);
	ck_assert_int_eq(utf8_sanitize("ok\xff\xe1\xba!", 7, &out), 1);
	ck_assert_str_eq(out.s, "ok\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
	str_truncate(&out, 0);
	ck_assert_int_eq(utf8_sanitize("ế", 3, &out), 0);
	ck_assert_str_eq(out.s, "ế");
	str_free(&out);
}
END_TEST

START_TEST(test_fold)
{
	ck_assert_uint_eq(utf8_fold('A'), 'a');
	ck_assert_uint_eq(utf8_fold('z'), 'z');
	ck_assert_uint_eq(utf8_fold(0x110), 0x111);     /* Đ -> đ */
	ck_assert_uint_eq(utf8_fold(0x1EBE), 0x1EBF);   /* Ế -> ế */
	ck_assert_uint_eq(utf8_fold(0x1ECA), 0x1ECB);   /* Ị -> ị */
	ck_assert_uint_eq(utf8_fold(0x1A0), 0x1A1);     /* Ơ -> ơ */
	ck_assert_uint_eq(utf8_fold(0x1AF), 0x1B0);     /* Ư -> ư */
	ck_assert_uint_eq(utf8_fold(0x3A3), 0x3C3);     /* Σ -> σ */
	ck_assert_uint_eq(utf8_fold(0x3C2), 0x3C3);     /* ς -> σ */
	ck_assert_uint_eq(utf8_fold(0x416), 0x436);     /* Ж -> ж */
	ck_assert_uint_eq(utf8_fold(0x1E9E), 0xDF);     /* ẞ -> ß (simple) */
	ck_assert_uint_eq(utf8_fold(0x130), 0x130);     /* İ: no simple folding */
	ck_assert_uint_eq(utf8_fold(0xFF21), 0xFF41);   /* fullwidth A */
	ck_assert_uint_eq(utf8_fold(0x10400), 0x10428); /* Deseret */
	ck_assert_uint_eq(utf8_fold(0x4E00), 0x4E00);
	ck_assert_uint_eq(utf8_fold(0x101), 0x101); /* already folded (stride 2 gap) */
	ck_assert_uint_eq(utf8_fold(0x100), 0x101);

	struct str out = STR_INIT;
	utf8_casefold("QUYẾT ĐỊNH Số 12/QĐ-UBND", strlen("QUYẾT ĐỊNH Số 12/QĐ-UBND"), &out);
	ck_assert_str_eq(out.s, "quyết định số 12/qđ-ubnd");
	str_free(&out);
}
END_TEST

static void ck_key(const char *in, const char *want)
{
	struct str out = STR_INIT;
	utf8_search_key(in, strlen(in), &out);
	ck_assert_msg(strcmp(out.s, want) == 0, "key(%s) = [%s], want [%s]", in, out.s, want);
	/* idempotent */
	struct str again = STR_INIT;
	utf8_search_key(out.s, out.len, &again);
	ck_assert_str_eq(again.s, out.s);
	str_free(&again);
	str_free(&out);
}

START_TEST(test_search_key)
{
	ck_key("Quyết Định", "quyet dinh");
	ck_key("ĐỊNH", "dinh");
	ck_key("đ Đ", "d d");
	ck_key("Ủy ban nhân dân tỉnh Lâm Đồng", "uy ban nhan dan tinh lam dong");
	ck_key("TRƯỜNG ĐẠI HỌC", "truong dai hoc");
	ck_key("Nguyễn Thị Ánh Tuyết", "nguyen thi anh tuyet");
	/* decomposed input (combining marks) folds the same */
	ck_key("Vie\xcc\xa3\xcc\x82t", "viet");
	ck_key("Crème Brûlée, Ærø, Łódź, Straße", "creme brulee, æro, lodz, straße");
	ck_key("Ελληνικά ΆΈΉ", "ελληνικα αεη");
	ck_key("Москва ЁЙ", "москва еи");
	ck_key("  a \t\r\n b\xc2\xa0"
	       "c  ",
	       " a b c ");
	ck_key("ＡＢＣ", "abc");
	ck_key("ǿ Ǿ Ƀ", "o o b"); /* the base letter itself has a key */
	ck_key("日本語", "日本語");
	/* invisible characters inside words are dropped */
	ck_key("vi\xc2\xad"
	       "ag\xe2\x80\x8b"
	       "ra \xef\xbb\xbf"
	       "x",
	       "viagra x");
	ck_key("bad\xff", "bad\xef\xbf\xbd");
}
END_TEST

START_TEST(test_search)
{
	ck_assert(utf8_search_match("Về việc ban hành Quyết Định số 5",
	                            strlen("Về việc ban hành Quyết Định số 5"), "quyet dinh", 10));
	ck_assert(utf8_search_match("QUYẾT ĐỊNH", strlen("QUYẾT ĐỊNH"), "định", strlen("định")));
	ck_assert(utf8_search_match("abc", 3, "", 0));
	ck_assert(!utf8_search_match("Quyết", strlen("Quyết"), "quyen", 5));
	ck_assert(!utf8_search_match("ab", 2, "abc", 3));
	ck_assert(utf8_search_match("line one\r\n  line two", 20, "one line", 8));
	ck_assert(utf8_search_contains("xyz", 3, "yz", 2));
	ck_assert(!utf8_search_contains("xyz", 3, "zy", 2));
	/* a long periodic haystack: the search stays linear */
	size_t n = 1 << 20;
	char *hay = malloc(n);
	memset(hay, 'a', n);
	char needle[1000];
	memset(needle, 'a', sizeof(needle));
	needle[sizeof(needle) - 1] = 'b';
	ck_assert(!utf8_search_contains(hay, n, needle, sizeof(needle)));
	hay[n - 1] = 'b';
	ck_assert(utf8_search_contains(hay, n, needle, sizeof(needle)));
	free(hay);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_valid);
	tcase_add_test(tc, test_fold);
	tcase_add_test(tc, test_search_key);
	tcase_add_test(tc, test_search);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
