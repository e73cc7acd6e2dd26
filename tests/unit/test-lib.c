/* lib/: strings, addresses, password hashes, log sanitising. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
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

static Suite *lib_suite(void)
{
	Suite *s = suite_create("lib");
	TCase *tc = tcase_create("lib");
	tcase_add_test(tc, test_str);
	tcase_add_test(tc, test_address);
	tcase_add_test(tc, test_password);
	tcase_add_test(tc, test_log_sanitize);
	tcase_add_test(tc, test_xalloc_overflow);
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
