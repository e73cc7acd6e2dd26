/* Addresses and CIDR lists; see net.h. */
#include "config.h"
#include "net.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net_entry {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

struct net_list {
	struct net_entry *entries;
	size_t n;
};

/* The address bytes, with mapped IPv4 unwrapped. Returns the family, or 0. */
static int addr_bytes(const struct net_addr *addr, uint8_t out[16])
{
	if (addr->ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
		memcpy(out, &in->sin_addr, 4);
		return AF_INET;
	}
	if (addr->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->ss;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(out, in6->sin6_addr.s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(out, in6->sin6_addr.s6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

const char *net_addr_str(const struct net_addr *addr, char *buf, size_t size)
{
	uint8_t b[16];
	int fam = addr_bytes(addr, b);
	if (fam == 0 || inet_ntop(fam, b, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "unix");
	return buf;
}

unsigned net_addr_port(const struct net_addr *addr)
{
	if (addr->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
	if (addr->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
	return 0;
}

bool net_addr_is_ip(const struct net_addr *addr)
{
	return addr->ss.ss_family == AF_INET || addr->ss.ss_family == AF_INET6;
}

int net_addr_parse(const char *s, struct net_addr *addr_r)
{
	memset(addr_r, 0, sizeof(*addr_r));
	struct sockaddr_in *in = (struct sockaddr_in *)&addr_r->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr_r->ss;
	if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		addr_r->len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		addr_r->len = sizeof(*in6);
		return 0;
	}
	return -1;
}

uint64_t net_addr_hash(const struct net_addr *addr, bool by_prefix)
{
	uint8_t b[16];
	int fam = addr_bytes(addr, b);
	if (fam == 0)
		return 0;
	size_t n = fam == AF_INET ? 4 : (by_prefix ? 8 : 16);
	/* FNV-1a, seeded by family */
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)fam;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

static int parse_entry(const char *item, struct net_entry *e)
{
	char host[64];
	const char *slash = strchr(item, '/');
	size_t hlen = slash ? (size_t)(slash - item) : strlen(item);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, item, hlen);
	host[hlen] = '\0';
	struct net_addr a;
	if (net_addr_parse(host, &a) < 0)
		return -1;
	memset(e, 0, sizeof(*e));
	e->family = addr_bytes(&a, e->addr);
	unsigned max = e->family == AF_INET ? 32 : 128;
	/* "::ffff:10.0.0.0/104" is an IPv4 network written as IPv6 */
	unsigned mapped_shift = 0;
	if (e->family == AF_INET && a.ss.ss_family == AF_INET6)
		mapped_shift = 96;
	e->bits = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t n = strlen(p);
		if (n == 0 || n > 3 || strspn(p, "0123456789") != n)
			return -1;
		unsigned long bits = strtoul(p, NULL, 10);
		if (bits < mapped_shift || bits - mapped_shift > max)
			return -1;
		e->bits = (unsigned)bits - mapped_shift;
	}
	return 0;
}

int net_list_parse(const char *text, struct net_list **list_r, char **error_r)
{
	struct net_list *list = xcalloc(1, sizeof(*list));
	char *copy = xstrdup(text != NULL ? text : "");
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		struct net_entry e;
		if (parse_entry(tok, &e) < 0) {
			size_t sz = strlen(tok) + 64;
			*error_r = xmalloc(sz);
			snprintf(*error_r, sz, "bad network '%s': expected ADDRESS[/BITS]", tok);
			free(copy);
			net_list_free(&list);
			return -1;
		}
		list->entries = xreallocarray(list->entries, list->n + 1, sizeof(e));
		list->entries[list->n++] = e;
	}
	free(copy);
	*list_r = list;
	return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

bool net_list_match(const struct net_list *list, const struct net_addr *addr)
{
	uint8_t b[16];
	int fam = addr_bytes(addr, b);
	if (fam == 0 || list == NULL)
		return false;
	for (size_t i = 0; i < list->n; i++) {
		const struct net_entry *e = &list->entries[i];
		if (e->family == fam && prefix_match(e->addr, b, e->bits))
			return true;
	}
	return false;
}

void net_list_free(struct net_list **listp)
{
	struct net_list *list = *listp;
	if (list == NULL)
		return;
	free(list->entries);
	free(list);
	*listp = NULL;
}
