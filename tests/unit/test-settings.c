/* The settings table: defaults, the INI parser, -o overrides and every
 * error path, each naming file:line and the key. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"
#include "xalloc.h"

static char path[64];

static void write_conf(const char *text)
{
	strcpy(path, "/tmp/congvu-test-conf.XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Loads text; returns the error (caller frees) or NULL. */
static char *load(const char *text, struct settings **set_r)
{
	write_conf(text);
	struct settings *set = settings_new();
	char *error = NULL;
	int ret = settings_load_file(set, path, false, &error);
	unlink(path);
	if (set_r != NULL && ret == 0)
		*set_r = set;
	else
		settings_free(&set);
	ck_assert(ret == 0 ? error == NULL : error != NULL);
	return error;
}

static void expect_error(const char *text, const char *needle)
{
	char *error = load(text, NULL);
	ck_assert_msg(error != NULL, "no error for: %s", text);
	ck_assert_msg(strstr(error, needle) != NULL, "'%s' not in '%s'", needle, error);
	ck_assert_msg(strstr(error, path) != NULL, "path missing in '%s'", error);
	free(error);
}

START_TEST(test_defaults)
{
	struct settings *set = settings_new();
	ck_assert_str_eq(settings_str(set, S_GLOBAL_DOMAINS), "lamdong.gov.vn");
	ck_assert_uint_eq(settings_num(set, S_QUOTA_PERSONAL), 4ULL << 30);
	ck_assert_uint_eq(settings_num(set, S_QUOTA_ORGANIZATION), 10ULL << 30);
	ck_assert_uint_eq(settings_num(set, S_SMTPD_MAX_MESSAGE_SIZE), 50ULL << 20);
	ck_assert_uint_eq(settings_num(set, S_SMTPD_QUEUE_LIFETIME), 5 * 86400);
	ck_assert_str_eq(settings_str(set, S_TLS_MIN_VERSION), "TLSv1.2");
	ck_assert_str_eq(settings_str(set, S_SMTPD_SMTP_LISTEN), "0.0.0.0:25");
	ck_assert_str_eq(settings_str(set, S_IMAPD_IMAPS_LISTEN), "0.0.0.0:993");
	ck_assert_str_eq(settings_str(set, S_QUOTA_OVER_QUOTA), "temporary");
	ck_assert(!settings_is_set(set, S_QUOTA_PERSONAL));
	settings_free(&set);
	ck_assert_ptr_null(set);
}
END_TEST

START_TEST(test_file_values)
{
	struct settings *set = NULL;
	char *error = load("# comment\n"
			   "[global]\n"
			   "domains = lamdong.gov.vn  dalat.lamdong.gov.vn   # inline comment\n"
			   "data_dir=/srv/congvu\n"
			   "\n"
			   "  [quota]\n"
			   "personal = 512K\n"
			   "organization = 2GB\n"
			   "warn = 50 90\n"
			   "over_quota = permanent\n"
			   "[smtpd]\n"
			   "smtp_listen = 127.0.0.1:2525, [::1]:2525, unix:/run/x.sock\n"
			   "trusted_networks = 10.0.0.0/8 ::1/128 192.168.1.1\n"
			   "queue_lifetime = 4h\n"
			   "milters = unix:/run/milter.sock, inet:8891@127.0.0.1\n"
			   "tls_policy = *.gov.vn:verify, example.org:encrypt\n"
			   "lmtp_listen =\n"
			   "[milter-spam]\n"
			   "listen = inet:9000@127.0.0.1\n",
			   &set);
	ck_assert_ptr_null(error);
	ck_assert_str_eq(settings_str(set, S_GLOBAL_DOMAINS), "lamdong.gov.vn  dalat.lamdong.gov.vn");
	ck_assert_str_eq(settings_str(set, S_GLOBAL_DATA_DIR), "/srv/congvu");
	ck_assert_uint_eq(settings_num(set, S_QUOTA_PERSONAL), 512 * 1024);
	ck_assert_uint_eq(settings_num(set, S_QUOTA_ORGANIZATION), 2ULL << 30);
	ck_assert_uint_eq(settings_num(set, S_QUOTA_OVER_QUOTA), 1);
	ck_assert_uint_eq(settings_num(set, S_SMTPD_QUEUE_LIFETIME), 4 * 3600);
	ck_assert_str_eq(settings_str(set, S_SMTPD_LMTP_LISTEN), "");
	ck_assert(settings_is_set(set, S_QUOTA_PERSONAL));
	int n;
	char **list = settings_list(set, S_SMTPD_SMTP_LISTEN, &n);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(list[1], "[::1]:2525");
	ck_assert_ptr_null(list[3]);
	settings_list_free(&list);
	list = settings_list(set, S_QUOTA_WARN, &n);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(list[0], "50");
	settings_list_free(&list);
	settings_free(&set);
}
END_TEST

START_TEST(test_file_errors)
{
	expect_error("[global]\nnonsense = 1\n", ":2: unknown key 'global.nonsense'");
	expect_error("[nowhere]\n", ":1: unknown section [nowhere]");
	expect_error("domains = x.vn\n", ":1: key 'domains' outside any [section]");
	expect_error("[global]\njust words\n", ":2: expected 'key = value'");
	expect_error("[global\n", ":1: bad section header");
	expect_error("[quota]\npersonal = 4X\n", ":2: quota.personal = '4X': expected a size");
	expect_error("[quota]\npersonal = -1\n", "quota.personal");
	expect_error("[quota]\npersonal = 99999999999999999999999\n", "quota.personal");
	expect_error("[quota]\nover_quota = maybe\n", "expected one of temporary|permanent");
	expect_error("[quota]\nwarn = 80 101\n", "bad percentage '101'");
	expect_error("[smtpd]\nmax_recipients = 0\n", "must be between 1 and 100000");
	expect_error("[smtpd]\nmax_recipients = ten\n", "expected a whole number");
	expect_error("[smtpd]\nmax_message_size = 3G\n", "must be between 1K and 2G");
	expect_error("[smtpd]\nqueue_lifetime = 5x\n", "expected a duration");
	expect_error("[smtpd]\nsmtp_listen = 0.0.0.0\n", "bad listener '0.0.0.0'");
	expect_error("[smtpd]\nsmtp_listen = 0.0.0.0:99999\n", "bad listener");
	expect_error("[smtpd]\nsmtp_listen = ::1:25\n", "bad listener");
	expect_error("[smtpd]\nsmtp_listen = unix:relative\n", "bad listener");
	expect_error("[smtpd]\ntrusted_networks = 10.0.0.0/33\n", "bad network '10.0.0.0/33'");
	expect_error("[smtpd]\ntrusted_networks = foo\n", "bad network 'foo'");
	expect_error("[smtpd]\nmilters = tcp:1@x\n", "bad milter 'tcp:1@x'");
	expect_error("[smtpd]\nmilters = inet:@x\n", "bad milter");
	expect_error("[smtpd]\ntls_policy = gov.vn:always\n", "bad policy 'gov.vn:always'");
	expect_error("[smtpd]\nrelay_host = host name\n", "expected HOST[:PORT]");
	expect_error("[tls]\nmin_version = SSLv3\n", "expected TLSv1");
	expect_error("[global]\ndomains = localhost\n", "bad domain 'localhost'");
	expect_error("[global]\nhostname = a\tb\x01\n", "control character");
	/* an overlong line */
	char *big = xmalloc(10000);
	memset(big, 'a', 9998);
	memcpy(big, "[global]\nx=", 11);
	big[9998] = '\n';
	big[9999] = '\0';
	expect_error(big, ":2: line longer than");
	free(big);
}
END_TEST

START_TEST(test_missing_file)
{
	struct settings *set = settings_new();
	char *error = NULL;
	ck_assert_int_eq(settings_load_file(set, "/nonexistent/congvu.conf", true, &error), 0);
	ck_assert_int_eq(settings_load_file(set, "/nonexistent/congvu.conf", false, &error), -1);
	ck_assert(strstr(error, "/nonexistent/congvu.conf") != NULL);
	free(error);
	settings_free(&set);
}
END_TEST

START_TEST(test_overrides)
{
	struct settings *set = settings_new();
	char *error = NULL;
	ck_assert_int_eq(settings_override(set, "quota.personal=1G", &error), 0);
	ck_assert_uint_eq(settings_num(set, S_QUOTA_PERSONAL), 1ULL << 30);
	ck_assert_int_eq(settings_override(set, "smtpd.lmtp_listen=", &error), 0);
	ck_assert_int_eq(settings_override(set, "quota.personal", &error), -1);
	ck_assert(strstr(error, "expected SECTION.KEY=VALUE") != NULL);
	free(error);
	ck_assert_int_eq(settings_override(set, "personal=1G", &error), -1);
	free(error);
	ck_assert_int_eq(settings_override(set, "quota.nokey=1", &error), -1);
	ck_assert(strstr(error, "unknown key 'quota.nokey'") != NULL);
	free(error);
	ck_assert_int_eq(settings_override(set, "quota.personal=lots", &error), -1);
	ck_assert(strstr(error, "quota.personal") != NULL);
	free(error);
	settings_free(&set);
}
END_TEST

START_TEST(test_cli_override_wins_over_file)
{
	write_conf("[quota]\npersonal = 1G\n[smtpd]\nsmtp_listen = 127.0.0.1:25\n");
	char *over[] = { "quota.personal=2G" };
	char *error = NULL;
	struct settings *set = settings_from_cli(path, over, 1, &error);
	unlink(path);
	ck_assert_ptr_nonnull(set);
	ck_assert_uint_eq(settings_num(set, S_QUOTA_PERSONAL), 2ULL << 30);
	ck_assert_str_eq(settings_str(set, S_SMTPD_SMTP_LISTEN), "127.0.0.1:25");
	ck_assert_str_ne(settings_str(set, S_GLOBAL_HOSTNAME), "");
	/* port 25's TLS floor defaults to tls.min_version */
	ck_assert_str_eq(settings_str(set, S_SMTPD_SMTP_TLS_MIN_VERSION), "TLSv1.2");
	settings_free(&set);
	set = settings_from_cli("/nonexistent/file.conf", NULL, 0, &error);
	ck_assert_ptr_null(set);
	ck_assert(strstr(error, "/nonexistent/file.conf") != NULL);
	free(error);
}
END_TEST

START_TEST(test_size_and_duration)
{
	uint64_t v;
	ck_assert_int_eq(parse_size("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_size("10k", &v), 0);
	ck_assert_uint_eq(v, 10240);
	ck_assert_int_eq(parse_size("3T", &v), 0);
	ck_assert_uint_eq(v, 3ULL << 40);
	ck_assert_int_eq(parse_size("1MB", &v), 0);
	ck_assert_uint_eq(v, 1 << 20);
	ck_assert_int_eq(parse_size("", &v), -1);
	ck_assert_int_eq(parse_size("G", &v), -1);
	ck_assert_int_eq(parse_size("1GG", &v), -1);
	ck_assert_int_eq(parse_size("17179869184T", &v), -1); /* overflows */
	ck_assert_int_eq(parse_duration("90", &v), 0);
	ck_assert_uint_eq(v, 90);
	ck_assert_int_eq(parse_duration("2w", &v), 0);
	ck_assert_uint_eq(v, 14 * 86400);
	ck_assert_int_eq(parse_duration("1.5h", &v), -1);
}
END_TEST

START_TEST(test_dump_and_reference)
{
	struct settings *set = settings_new();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	settings_dump(set, f);
	fclose(f);
	ck_assert(strstr(buf, "[quota]\npersonal = 4G\n") != NULL);
	ck_assert(strstr(buf, "[milter-spam]\n") != NULL);
	free(buf);
	f = open_memstream(&buf, &len);
	settings_reference(f);
	fclose(f);
	ck_assert(strstr(buf, "| smtpd.max_message_size | size 1K..2G | `50M` |") != NULL);
	ck_assert(strstr(buf, "| choice temporary\\|permanent |") != NULL);
	ck_assert(strstr(buf, "`$(localstatedir)/lib/congvu`") != NULL);
	free(buf);
	settings_free(&set);
}
END_TEST

/* What a root parent hands its children on reload comes back the same. */
START_TEST(test_text_round_trip)
{
	struct settings *set = settings_new();
	char *error = NULL;
	ck_assert_int_eq(settings_override(set, "smtpd.lmtp_listen=", &error), 0);
	ck_assert_int_eq(settings_override(set, "global.domains=a.vn b.vn", &error), 0);
	ck_assert_int_eq(settings_override(set, "quota.personal=1G", &error), 0);
	char *text = settings_to_text(set);
	struct settings *back = settings_from_text(text, &error);
	ck_assert_ptr_nonnull(back);
	char *again = settings_to_text(back);
	ck_assert_str_eq(text, again);
	ck_assert_str_eq(settings_str(back, S_GLOBAL_DOMAINS), "a.vn b.vn");
	ck_assert_str_eq(settings_str(back, S_SMTPD_LMTP_LISTEN), "");
	ck_assert_uint_eq(settings_num(back, S_QUOTA_PERSONAL), 1ULL << 30);
	ck_assert_ptr_null(settings_from_text("[quota]\npersonal 1G\n", &error));
	free(error);
	free(text);
	free(again);
	settings_free(&back);
	settings_free(&set);
}
END_TEST

static Suite *settings_suite(void)
{
	Suite *s = suite_create("settings");
	TCase *tc = tcase_create("settings");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_file_values);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_overrides);
	tcase_add_test(tc, test_cli_override_wins_over_file);
	tcase_add_test(tc, test_size_and_duration);
	tcase_add_test(tc, test_dump_and_reference);
	tcase_add_test(tc, test_text_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(settings_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
