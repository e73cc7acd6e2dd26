#include "config.h"

#include "dns.h"
#include "str.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct dns_resolver {
	bool custom;
	struct sockaddr_in server;
	unsigned int timeout;
	pthread_key_t key;
};

static void free_state(void *p)
{
	res_state st = p;
	res_nclose(st);
	free(st);
}

int dns_resolver_new(const char *server, unsigned int timeout_secs, struct dns_resolver **res_r,
                     char **error_r)
{
	struct dns_resolver *res = xcalloc(1, sizeof(*res));
	res->timeout = timeout_secs ? timeout_secs : 1;
	if (server != NULL && *server != '\0') {
		char host[64];
		const char *colon = strrchr(server, ':');
		size_t hl = colon ? (size_t)(colon - server) : strlen(server);
		unsigned long port = 53;
		if (colon != NULL) {
			char *end;
			port = strtoul(colon + 1, &end, 10);
			if (*end != '\0' || port == 0 || port > 65535)
				hl = sizeof(host);
		}
		if (hl >= sizeof(host)) {
			*error_r = xstrdup("global.dns_server: expected IPV4[:PORT]");
			free(res);
			return -1;
		}
		memcpy(host, server, hl);
		host[hl] = '\0';
		res->server.sin_family = AF_INET;
		res->server.sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &res->server.sin_addr) != 1) {
			struct str e = STR_INIT;
			str_printf(&e, "global.dns_server = '%s': expected an IPv4 address[:PORT]",
			           server);
			*error_r = str_steal(&e);
			free(res);
			return -1;
		}
		res->custom = true;
	}
	if (pthread_key_create(&res->key, free_state) != 0) {
		*error_r = xstrdup("pthread_key_create failed");
		free(res);
		return -1;
	}
	*res_r = res;
	return 0;
}

void dns_resolver_free(struct dns_resolver **resp)
{
	struct dns_resolver *res = *resp;
	if (res == NULL)
		return;
	res_state st = pthread_getspecific(res->key);
	if (st != NULL) {
		pthread_setspecific(res->key, NULL);
		free_state(st);
	}
	pthread_key_delete(res->key);
	x_free(resp);
}

static res_state thread_state(struct dns_resolver *res)
{
	res_state st = pthread_getspecific(res->key);
	if (st != NULL)
		return st;
	st = xcalloc(1, sizeof(*st));
	if (res_ninit(st) != 0 && !res->custom) {
		free(st);
		return NULL;
	}
	if (res->custom) {
		st->nscount = 1;
		st->nsaddr_list[0] = res->server;
	}
	st->retrans = (int)res->timeout;
	st->retry = 2;
	/* No search list: queried names are always absolute. */
	st->options &= ~(unsigned long)(RES_DEFNAMES | RES_DNSRCH);
	pthread_setspecific(res->key, st);
	return st;
}

int dns_query(struct dns_resolver *res, const char *name, int type, unsigned char *answer,
              int anslen, int *herrno_r)
{
	res_state st = thread_state(res);
	if (st == NULL) {
		*herrno_r = NO_RECOVERY;
		return -1;
	}
	int n = res_nquery(st, name, ns_c_in, type, answer, anslen);
	if (n < 0) {
		*herrno_r = st->res_h_errno == 0 ? TRY_AGAIN : st->res_h_errno;
		return -1;
	}
	return n < anslen ? n : anslen;
}

int dns_list_lookup(struct dns_resolver *res, const char *zone, const char *ip)
{
	struct str name = STR_INIT;
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1) {
		str_printf(&name, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 15; i >= 0; i--)
			str_printf(&name, "%c.%c.", hex[a[i] & 15], hex[a[i] >> 4]);
		str_appends(&name, zone);
	} else {
		return -1;
	}
	unsigned char ans[512];
	int herr = 0;
	int n = dns_query(res, name.s, ns_t_a, ans, sizeof(ans), &herr);
	str_free(&name);
	if (n < 0)
		return herr == HOST_NOT_FOUND || herr == NO_DATA ? 0 : -1;
	ns_msg msg;
	if (ns_initparse(ans, n, &msg) < 0)
		return -1;
	/* Listed: an A record in 127.0.0.0/8 (other answers are errors that
	 * some lists return for refused queries, not listings). */
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_type(rr) == ns_t_a && ns_rr_rdlen(rr) == 4 && ns_rr_rdata(rr)[0] == 127)
			return 1;
	}
	return 0;
}
