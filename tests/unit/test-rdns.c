/* Unit tests of the pure parts of the client name look-up
 * (smtpd/dns-resolver.c): the PTR query name, the host name check and the
 * address comparison that confirms a name. */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "dns-resolver.h"
#include "net.h"

static struct net_addr addr(const char *text)
{
	struct net_addr a;
	ck_assert_int_eq(net_addr_parse(text, &a), 0);
	return a;
}

START_TEST(test_ptr_name_ipv4)
{
	char buf[DNSR_PTR_NAME_MAX];
	struct net_addr a = addr("192.0.2.1");
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "1.2.0.192.in-addr.arpa");
	a = addr("127.0.0.1");
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "1.0.0.127.in-addr.arpa");
	/* a mapped IPv4 address (dual-stack listener) is looked up as IPv4 */
	a = addr("::ffff:198.51.100.25");
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "25.100.51.198.in-addr.arpa");
	/* the longest IPv4 name exactly fits, one byte less does not */
	a = addr("255.255.255.255");
	const char *longest = "255.255.255.255.in-addr.arpa";
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, strlen(longest) + 1), 0);
	ck_assert_str_eq(buf, longest);
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, strlen(longest)), -1);
}
END_TEST

START_TEST(test_ptr_name_ipv6)
{
	char buf[DNSR_PTR_NAME_MAX];
	/* the example of RFC 3596 2.5 */
	struct net_addr a = addr("4321:0:1:2:3:4:567:89ab");
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa");
	ck_assert_uint_eq(strlen(buf) + 1, DNSR_PTR_NAME_MAX);
	a = addr("::1");
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, DNSR_PTR_NAME_MAX - 1), -1);
}
END_TEST

START_TEST(test_ptr_name_not_ip)
{
	char buf[DNSR_PTR_NAME_MAX];
	struct net_addr a;
	memset(&a, 0, sizeof(a));
	a.ss.ss_family = AF_UNIX;
	ck_assert_int_eq(dnsr_ptr_name(&a, buf, sizeof(buf)), -1);
}
END_TEST

START_TEST(test_hostname_valid)
{
	static const char *const good[] = {
		"mx.lamdong.gov.vn", "a", "localhost", "MX-1.Example.ORG", "1.2.3.example",
		"3com.com", "x.y1",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(dnsr_hostname_valid(good[i]), "%s refused", good[i]);
	static const char *const bad[] = {
		"", ".", "a..b", ".a", "a.", "-a.b", "a-.b", "a.b-", "bad_name.example",
		"sp ace.example", "quote\".example", "semi;colon.example", "192.0.2.1", "1.2.3.4.5",
		"example.123", "x/y.example", "a\\.b", "[192.0.2.1]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!dnsr_hostname_valid(bad[i]), "%s accepted", bad[i]);
	/* labels up to 63 octets, names up to 253 */
	char name[300];
	memset(name, 'a', 63);
	strcpy(name + 63, ".vn");
	ck_assert(dnsr_hostname_valid(name));
	memset(name, 'a', 64);
	strcpy(name + 64, ".vn");
	ck_assert(!dnsr_hostname_valid(name));
	/* 4 labels of 61 + "vn": 4 * 62 + 2 = 250; then 253 and 254 */
	size_t o = 0;
	for (int i = 0; i < 4; i++) {
		memset(name + o, 'b', 61);
		o += 61;
		name[o++] = '.';
	}
	strcpy(name + o, "vn");
	ck_assert_uint_eq(strlen(name), 250);
	ck_assert(dnsr_hostname_valid(name));
	strcpy(name + o, "vnabc");
	ck_assert_uint_eq(strlen(name), 253);
	ck_assert(dnsr_hostname_valid(name));
	strcpy(name + o, "vnabcd");
	ck_assert(!dnsr_hostname_valid(name));
}
END_TEST

START_TEST(test_addr_equal)
{
	struct net_addr a = addr("192.0.2.1"), b = addr("192.0.2.1"), c = addr("192.0.2.2");
	/* ports do not matter */
	((struct sockaddr_in *)&b.ss)->sin_port = htons(2525);
	ck_assert(dnsr_addr_equal(&a, &b));
	ck_assert(!dnsr_addr_equal(&a, &c));
	struct net_addr m = addr("::ffff:192.0.2.1");
	ck_assert(dnsr_addr_equal(&a, &m));
	ck_assert(dnsr_addr_equal(&m, &a));
	struct net_addr v6 = addr("2001:db8::1"), v6b = addr("2001:db8:0:0::1"),
			v6c = addr("2001:db8::2");
	ck_assert(dnsr_addr_equal(&v6, &v6b));
	ck_assert(!dnsr_addr_equal(&v6, &v6c));
	ck_assert(!dnsr_addr_equal(&v6, &a));
	/* an IPv4-compatible-looking IPv6 address is not the IPv4 address */
	struct net_addr compat = addr("::192.0.2.1");
	ck_assert(!dnsr_addr_equal(&compat, &a));
	struct net_addr u;
	memset(&u, 0, sizeof(u));
	u.ss.ss_family = AF_UNIX;
	ck_assert(!dnsr_addr_equal(&u, &u));
}
END_TEST

static Suite *rdns_suite(void)
{
	Suite *s = suite_create("rdns");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_ptr_name_ipv4);
	tcase_add_test(tc, test_ptr_name_ipv6);
	tcase_add_test(tc, test_ptr_name_not_ip);
	tcase_add_test(tc, test_hostname_valid);
	tcase_add_test(tc, test_addr_equal);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rdns_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
