/* lib/: strings, addresses, password hashes, log sanitising. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "base64.h"
#include "cli.h"
#include "log.h"
#include "password.h"
#include "str.h"
#include "xalloc.h"

START_TEST(test_str)
{
	struct str s = STR_INIT;
	str_appends(&s, "abc");
	str_append(&s, "\0def", 4);
	ck_assert_uint_eq(s.len, 7);
	ck_assert(memcmp(s.s, "abc\0def", 8) == 0);
	for (int i = 0; i < 1000; i++)
		str_printf(&s, "%d,", i);
	ck_assert(strstr(s.s + 7, "999,") != NULL);
	str_truncate(&s, 3);
	ck_assert_str_eq(s.s, "abc");
	/* a long printf goes through the slow path */
	char big[600];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	str_printf(&s, "<%s>", big);
	ck_assert_uint_eq(s.len, 3 + 2 + 599);
	char *owned = str_steal(&s);
	ck_assert_uint_eq(s.len, 0);
	ck_assert_ptr_null(s.s);
	free(owned);
	str_append_sanitized(&s, "a\r\nb\x80", 5, 3);
	ck_assert_str_eq(s.s, "a??...");
	str_free(&s);
}
END_TEST

START_TEST(test_address)
{
	char out[ADDRESS_MAX_LEN + 1];
	const char *err;
	ck_assert_int_eq(address_normalize("Nguyen.Van.A@LamDong.Gov.VN", out, &err), 0);
	ck_assert_str_eq(out, "nguyen.van.a@lamdong.gov.vn");
	ck_assert_str_eq(address_domain(out), "lamdong.gov.vn");
	ck_assert_int_eq(address_normalize("a+tag@lamdong.gov.vn", out, &err), 0);
	const char *bad[] = { "", "noat", "@lamdong.gov.vn", "a@", "a..b@x.vn", ".a@x.vn",
			      "a.@x.vn", "a b@x.vn", "a@localhost", "a@x..vn", "a@-x.vn",
			      "a\"b@x.vn", "a@x_y.vn" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(address_normalize(bad[i], out, &err) == -1, "accepted %s", bad[i]);
	char local[80];
	memset(local, 'a', 65);
	strcpy(local + 65, "@x.vn");
	ck_assert_int_eq(address_normalize(local, out, &err), -1);
	ck_assert(domain_is_local("LamDong.gov.vn", "lamdong.gov.vn dalat.lamdong.gov.vn"));
	ck_assert(domain_is_local("dalat.lamdong.gov.vn", "lamdong.gov.vn dalat.lamdong.gov.vn"));
	ck_assert(!domain_is_local("lamdong.gov", "lamdong.gov.vn"));
	ck_assert(!domain_is_local("x.lamdong.gov.vn", "lamdong.gov.vn"));
}
END_TEST

START_TEST(test_password)
{
	char *hash;
	const char *err;
	ck_assert_int_eq(password_hash("Mật khẩu 123", &hash, &err), 0);
	ck_assert(strncmp(hash, "$y$", 3) == 0);
	ck_assert(password_verify("Mật khẩu 123", hash));
	ck_assert(!password_verify("mật khẩu 123", hash));
	ck_assert(!password_verify("", hash));
	char *hash2;
	ck_assert_int_eq(password_hash("Mật khẩu 123", &hash2, &err), 0);
	ck_assert_str_ne(hash, hash2); /* fresh salt */
	free(hash);
	free(hash2);
	/* hashes imported from other servers */
	const char *prefixes[] = { "$6$", "$5$", "$2b$" };
	for (int i = 0; i < 3; i++) {
		char salt[CRYPT_GENSALT_OUTPUT_SIZE];
		ck_assert_ptr_nonnull(crypt_gensalt_rn(prefixes[i], 0, NULL, 0, salt, sizeof(salt)));
		struct crypt_data *cd = xcalloc(1, sizeof(*cd));
		const char *h = crypt_r("imported", salt, cd);
		ck_assert_ptr_nonnull(h);
		ck_assert(strncmp(h, prefixes[i], strlen(prefixes[i])) == 0);
		ck_assert(password_verify("imported", h));
		ck_assert(!password_verify("imported!", h));
		free(cd);
	}
	ck_assert(!password_verify("x", ""));
	ck_assert(!password_verify("x", "!locked"));
	ck_assert(!password_verify("x", "*"));
	char *longpw = xmalloc(PASSWORD_MAX_LEN + 2);
	memset(longpw, 'p', PASSWORD_MAX_LEN + 1);
	longpw[PASSWORD_MAX_LEN + 1] = '\0';
	ck_assert_int_eq(password_hash(longpw, &hash, &err), -1);
	free(longpw);
}
END_TEST

START_TEST(test_log_sanitize)
{
	char buf[16];
	ck_assert_str_eq(log_sanitize(buf, sizeof(buf), "a\"b\r\n", 5), "a\\\"b??");
	ck_assert_uint_le(strlen(log_sanitize(buf, sizeof(buf), "0123456789abcdefghij", 20)), 15);
}
END_TEST

START_TEST(test_xalloc_overflow)
{
	ck_assert_uint_eq(xmul(1000, 1000), 1000000);
	ck_assert_uint_eq(xadd(1, 2), 3);
}
END_TEST

START_TEST(test_xmul_overflow_aborts)
{
	xmul(SIZE_MAX / 2, 3);
}
END_TEST

START_TEST(test_cli)
{
	struct cli_opts o;
	char *a1[] = { "prog", "-c", "/etc/x.conf", "-o", "a.b=1", "-d", "-o", "c.d=2", "-n",
		       "queue", "-o", "not.mine=3", NULL };
	ck_assert_int_eq(cli_parse(12, a1, "nd", &o), 0);
	ck_assert_str_eq(o.conf_path, "/etc/x.conf");
	ck_assert_int_eq(o.n_overrides, 2);
	ck_assert_str_eq(o.overrides[0], "a.b=1");
	ck_assert_str_eq(o.overrides[1], "c.d=2");
	ck_assert(o.dump && o.debug);
	ck_assert_int_eq(o.next, 9); /* stops at the operand "queue" */
	cli_free(&o);
	/* an option the program does not take, a missing argument */
	char *a2[] = { "prog", "-d", NULL };
	ck_assert_int_eq(cli_parse(2, a2, "n", &o), -1);
	cli_free(&o);
	char *a3[] = { "prog", "-c", NULL };
	ck_assert_int_eq(cli_parse(2, a3, "nd", &o), -1);
	cli_free(&o);
	char *a4[] = { "prog", NULL };
	ck_assert_int_eq(cli_parse(1, a4, "", &o), 0);
	ck_assert_ptr_null(o.conf_path);
	ck_assert_int_eq(o.n_overrides, 0);
	ck_assert_int_eq(o.next, 1);
	cli_free(&o);
}
END_TEST

START_TEST(test_base64)
{
	/* RFC 4648 section 10 vectors, both directions */
	static const char *const vec[][2] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	char enc[16];
	unsigned char dec[8];
	size_t n;
	struct str out = STR_INIT;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		size_t len = strlen(vec[i][0]);
		ck_assert_uint_eq(base64_encode(vec[i][0], len, enc), strlen(vec[i][1]));
		ck_assert_str_eq(enc, vec[i][1]);
		ck_assert_int_eq(base64_decode(vec[i][1], strlen(vec[i][1]), dec, sizeof(dec), &n), 0);
		ck_assert_uint_eq(n, len);
		ck_assert_mem_eq(dec, vec[i][0], len);
		str_truncate(&out, 0);
		ck_assert_int_eq(base64_decode_lenient(vec[i][1], strlen(vec[i][1]), &out), 0);
		ck_assert_uint_eq(out.len, len);
		ck_assert_mem_eq(out.s, vec[i][0], len);
	}
	/* all 256 byte values survive a round trip */
	unsigned char all[256], back[256];
	char all_enc[4 * 86 + 1];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	size_t elen = base64_encode(all, sizeof(all), all_enc);
	ck_assert_int_eq(base64_decode(all_enc, elen, back, sizeof(back), &n), 0);
	ck_assert_uint_eq(n, 256);
	ck_assert_mem_eq(back, all, 256);

	/* strict: no whitespace, no missing or misplaced padding, no room */
	ck_assert_int_eq(base64_decode("Zm9v\r\n", 6, dec, sizeof(dec), &n), -1);
	ck_assert_int_eq(base64_decode("Zm8", 3, dec, sizeof(dec), &n), -1);
	ck_assert_int_eq(base64_decode("Zm=v", 4, dec, sizeof(dec), &n), -1);
	ck_assert_int_eq(base64_decode("Zm9,", 4, dec, sizeof(dec), &n), -1);
	ck_assert_int_eq(base64_decode("Zm9vYmFy", 8, dec, 5, &n), -1);

	/* lenient: whitespace is fine, junk and short quanta are reported */
	str_truncate(&out, 0);
	ck_assert_int_eq(base64_decode_lenient("Zm9v\r\n YmFy\t", 12, &out), 0);
	ck_assert_uint_eq(out.len, 6);
	ck_assert_mem_eq(out.s, "foobar", 6);
	str_truncate(&out, 0);
	ck_assert_int_eq(base64_decode_lenient("Zm9vYg", 6, &out), 1);
	ck_assert_uint_eq(out.len, 4);
	ck_assert_mem_eq(out.s, "foob", 4);
	str_truncate(&out, 0);
	ck_assert_int_eq(base64_decode_lenient("Zm9v*", 5, &out), 1);
	ck_assert_uint_eq(out.len, 3);
	str_free(&out);

	/* the two alphabets differ in value 63 only */
	ck_assert_int_eq(base64_char_value('/', BASE64_STD), 63);
	ck_assert_int_eq(base64_char_value(',', BASE64_STD), -1);
	ck_assert_int_eq(base64_char_value(',', BASE64_IMAP), 63);
	ck_assert_int_eq(base64_char_value('/', BASE64_IMAP), -1);
	ck_assert_int_eq(base64_char_value('=', BASE64_STD), -1);
	ck_assert_int_eq(base64_char_value('\0', BASE64_IMAP), -1);
	for (int v = 0; v < 64; v++) {
		ck_assert_int_eq(base64_char_value((unsigned char)base64_std_chars[v], BASE64_STD), v);
		ck_assert_int_eq(base64_char_value((unsigned char)base64_imap_chars[v], BASE64_IMAP), v);
	}
}
END_TEST

static Suite *lib_suite(void)
{
	Suite *s = suite_create("lib");
	TCase *tc = tcase_create("lib");
	tcase_add_test(tc, test_str);
	tcase_add_test(tc, test_address);
	tcase_add_test(tc, test_password);
	tcase_add_test(tc, test_log_sanitize);
	tcase_add_test(tc, test_xalloc_overflow);
	tcase_add_test(tc, test_base64);
	tcase_add_test(tc, test_cli);
	tcase_add_test_raise_signal(tc, test_xmul_overflow_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lib_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
