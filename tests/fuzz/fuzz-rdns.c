/* libFuzzer target: the client name look-up's parsing and checks. The
 * bytes go through dnsr_name_from_wire (PTR rdata) then dnsr_hostname_valid,
 * whose verdict is checked against a plain definition; the first 16 bytes
 * also make an IPv4, mapped IPv4 and IPv6 address whose PTR query name must
 * itself be a valid host name ending in the right zone. Aborts on any
 * broken invariant. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns-resolver.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ldh(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-';
}

/* What dnsr_hostname_valid promises, spelled out differently. */
static void check_name(const char *name)
{
	bool valid = dnsr_hostname_valid(name);
	size_t len = strlen(name);
	if (!valid)
		return;
	if (len == 0 || len > 253 || name[0] == '.' || name[len - 1] == '.' ||
	    name[0] == '-' || name[len - 1] == '-')
		abort();
	bool top_alpha = false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0 || name[i - 1] == '-' || name[i + 1] == '-')
				abort();
			label = 0;
			top_alpha = false;
			continue;
		}
		if (!ldh(name[i]) || ++label > 63)
			abort();
		if (!(name[i] >= '0' && name[i] <= '9'))
			top_alpha = true;
	}
	if (!top_alpha)
		abort();
}

static void check_ptr(const struct net_addr *a, const char *zone)
{
	char name[DNSR_PTR_NAME_MAX];
	if (dnsr_ptr_name(a, name, sizeof(name)) < 0 || !dnsr_hostname_valid(name))
		abort();
	size_t n = strlen(name), z = strlen(zone);
	if (n < z || strcmp(name + n - z, zone) != 0)
		abort();
	if (!dnsr_addr_equal(a, a))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[256];
	size_t used;
	if (dnsr_name_from_wire(data, size, name, sizeof(name), &used) == 0) {
		if (used > size || strlen(name) > 253 + 1)
			abort();
		check_name(name);
	}
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	check_name(text);
	free(text);
	if (size >= 16) {
		struct net_addr v4, m4, v6;
		memset(&v4, 0, sizeof(v4));
		memset(&m4, 0, sizeof(m4));
		memset(&v6, 0, sizeof(v6));
		struct sockaddr_in *sin = (struct sockaddr_in *)&v4.ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, data, 4);
		v4.len = sizeof(*sin);
		struct sockaddr_in6 *m6 = (struct sockaddr_in6 *)&m4.ss;
		m6->sin6_family = AF_INET6;
		m6->sin6_addr.s6_addr[10] = m6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(m6->sin6_addr.s6_addr + 12, data, 4);
		m4.len = sizeof(*m6);
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&v6.ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, data, 16);
		v6.len = sizeof(*s6);
		check_ptr(&v4, ".in-addr.arpa");
		check_ptr(&m4, ".in-addr.arpa");
		check_ptr(&v6, IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ? ".in-addr.arpa" : ".ip6.arpa");
		if (!dnsr_addr_equal(&v4, &m4))
			abort();
	}
	return 0;
}
