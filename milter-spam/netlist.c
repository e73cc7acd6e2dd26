#include "config.h"

#include "netlist.h"
#include "str.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned int bits;
};

struct netlist {
	struct net *nets;
	size_t n;
};

static int parse_net(const char *item, struct net *net)
{
	char buf[INET6_ADDRSTRLEN + 8];
	if (strlen(item) >= sizeof(buf))
		return -1;
	strcpy(buf, item);
	char *slash = strchr(buf, '/');
	if (slash != NULL)
		*slash++ = '\0';
	memset(net, 0, sizeof(*net));
	unsigned int max;
	if (inet_pton(AF_INET, buf, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	net->bits = max;
	if (slash != NULL) {
		if (*slash == '\0' || strlen(slash) > 3 ||
		    strspn(slash, "0123456789") != strlen(slash))
			return -1;
		unsigned long b = strtoul(slash, NULL, 10);
		if (b > max)
			return -1;
		net->bits = (unsigned int)b;
	}
	return 0;
}

struct netlist *netlist_parse(const char *spec, char **error_r)
{
	struct netlist *list = xcalloc(1, sizeof(*list));
	char *copy = xstrdup(spec);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		struct net net;
		if (parse_net(tok, &net) < 0) {
			struct str e = STR_INIT;
			str_printf(&e, "bad network '%s': expected ADDRESS[/BITS]", tok);
			*error_r = str_steal(&e);
			free(copy);
			netlist_free(&list);
			return NULL;
		}
		list->nets = xreallocarray(list->nets, list->n + 1, sizeof(*list->nets));
		list->nets[list->n++] = net;
	}
	free(copy);
	return list;
}

void netlist_free(struct netlist **listp)
{
	struct netlist *list = *listp;
	if (list == NULL)
		return;
	free(list->nets);
	x_free(listp);
}

static bool prefix_match(const unsigned char *a, const unsigned char *b, unsigned int bits)
{
	unsigned int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool match_raw(const struct netlist *list, int family, const unsigned char *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	/* An IPv4-mapped IPv6 client is matched as IPv4. */
	if (family == AF_INET6 && memcmp(addr, mapped, 12) == 0) {
		family = AF_INET;
		addr += 12;
	}
	for (size_t i = 0; i < list->n; i++)
		if (list->nets[i].family == family &&
		    prefix_match(list->nets[i].addr, addr, list->nets[i].bits))
			return true;
	return false;
}

bool netlist_match_str(const struct netlist *list, const char *addr)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET, addr, buf) == 1)
		return match_raw(list, AF_INET, buf);
	if (inet_pton(AF_INET6, addr, buf) == 1)
		return match_raw(list, AF_INET6, buf);
	return false;
}

bool netlist_match_sa(const struct netlist *list, const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		return match_raw(list, AF_INET, (const unsigned char *)&sin->sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		return match_raw(list, AF_INET6, (const unsigned char *)&sin6->sin6_addr);
	}
	return false;
}

bool domain_pattern_match(const char *patterns, const char *domain)
{
	size_t dlen = strlen(domain);
	if (dlen == 0)
		return false;
	const char *p = patterns;
	while (*p != '\0') {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (n > 2 && p[0] == '*' && p[1] == '.') {
			/* "*.gov.vn": a proper subdomain, ".gov.vn" at the end. */
			size_t sl = n - 1;
			if (dlen > sl && strncasecmp(domain + dlen - sl, p + 1, sl) == 0)
				return true;
		} else if (n == dlen && strncasecmp(domain, p, n) == 0) {
			return true;
		}
		p += n;
	}
	return false;
}
