/* DNS queries through the configured server (global.dns_server), or the
 * system resolver when none is set: res_nquery() on one resolver state per
 * thread, so any libmilter thread may query. */
#ifndef CONGVU_MILTER_DNS_H
#define CONGVU_MILTER_DNS_H

#include <stddef.h>

struct dns_resolver;

/* server: "" (the system resolver, /etc/resolv.conf) or IPV4[:PORT].
 * timeout_secs: per query attempt. Returns 0 or -1 with *error_r. */
int dns_resolver_new(const char *server, unsigned int timeout_secs, struct dns_resolver **res_r,
                     char **error_r);
void dns_resolver_free(struct dns_resolver **res);

/* Sends a query of class IN. Returns the answer length (at most anslen), or
 * -1 with *herrno_r set to HOST_NOT_FOUND (NXDOMAIN), NO_DATA, TRY_AGAIN
 * (timeout, SERVFAIL) or NO_RECOVERY. */
int dns_query(struct dns_resolver *res, const char *name, int type, unsigned char *answer,
              int anslen, int *herrno_r);

/* Whether ip (IPv4 or IPv6 text) is listed in the DNS list zone (an A
 * record for the reversed address under zone): 1 listed, 0 not, -1 when the
 * lookup failed. */
int dns_list_lookup(struct dns_resolver *res, const char *zone, const char *ip);

#endif
