/* Asynchronous DNS for outbound delivery (MX, A, AAAA, TXT, TLSA) and the
 * session workers' reverse look-ups (PTR) through libunbound,
 * forwarding to global.dns_server or to the servers of /etc/resolv.conf.
 * The owner watches dnsr_fd() for reading in its event loop and calls
 * dnsr_process(); callbacks run from there. Why libunbound: doc/outbound.md.
 * Nothing here logs. */
#ifndef CONGVU_DNS_RESOLVER_H
#define CONGVU_DNS_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>

#include "dane.h"
#include "net.h"
#include "str.h"

struct dnsr;

enum dnsr_status {
	DNSR_OK,        /* records found */
	DNSR_NODATA,    /* the name exists without records of the type */
	DNSR_NXDOMAIN,  /* the name does not exist */
	DNSR_TEMPFAIL,  /* timeout, SERVFAIL, DNSSEC failure: try later */
};

struct dnsr_mx {
	unsigned pref;
	char host[256];  /* without the trailing dot; "" for the null MX "." */
};

/* server: "" (resolv.conf) or IP[:PORT]; a server given also answers for
 * the loopback reverse zones, and the private ones (RFC 1918...) are asked
 * of the server in both cases instead of being NXDOMAIN in libunbound.
 * trust_anchor: "" (no DNSSEC validation: every answer is insecure) or a
 * file of DS/DNSKEY records (e.g. /usr/share/dns/root.key). Returns 0
 * and *r, or -1 with *error_r (caller frees) naming the setting. */
int dnsr_new(const char *server, const char *trust_anchor, struct dnsr **r, char **error_r);
void dnsr_free(struct dnsr **r);
int dnsr_fd(struct dnsr *r);
void dnsr_process(struct dnsr *r);

/* Results are valid during the callback only; secure: DNSSEC-validated
 * (data or its absence); error is the reason of a DNSR_TEMPFAIL ("" otherwise;
 * a DNSSEC validation failure is a DNSR_TEMPFAIL). */
typedef void dnsr_mx_fn(void *ctx, enum dnsr_status st, const struct dnsr_mx *mx, size_t n,
			bool secure, const char *error);
typedef void dnsr_addr_fn(void *ctx, enum dnsr_status st, const struct net_addr *addrs, size_t n,
			  bool secure, const char *error);
typedef void dnsr_tlsa_fn(void *ctx, enum dnsr_status st, const struct dane_tlsa *recs, size_t n,
			  bool secure, const char *error);

/* MX records sorted by preference (stable). Returns a query id for
 * dnsr_cancel, or -1 with *error_r (static). */
int dnsr_lookup_mx(struct dnsr *r, const char *domain, dnsr_mx_fn *cb, void *ctx,
		   const char **error_r);
/* A then AAAA records (IPv4 first), port filled in. DNSR_OK when either has
 * data; DNSR_TEMPFAIL when one failed and the other had none. */
int dnsr_lookup_addr(struct dnsr *r, const char *host, unsigned port, dnsr_addr_fn *cb, void *ctx,
		     const char **error_r);
/* TXT records, each one's strings joined (RFC 7208 3.3, RFC 8461 3.1);
 * records holding a NUL byte are left out. */
typedef void dnsr_txt_fn(void *ctx, enum dnsr_status st, char *const *txts, size_t n,
			 const char *error);
int dnsr_lookup_txt(struct dnsr *r, const char *name, dnsr_txt_fn *cb, void *ctx,
		    const char **error_r);
/* TLSA records of name ("_25._tcp.mx.example.org"); malformed ones left out. */
int dnsr_lookup_tlsa(struct dnsr *r, const char *name, dnsr_tlsa_fn *cb, void *ctx,
		     const char **error_r);
/* Address records of host for one family: AF_INET (A), AF_INET6 (AAAA),
 * or AF_UNSPEC (both, as dnsr_lookup_addr); ports 0. */
int dnsr_lookup_addr_family(struct dnsr *r, const char *host, int family, dnsr_addr_fn *cb,
			    void *ctx, const char **error_r);

/* Reverse look-up: the PTR names of addr (IPv4, IPv6, a mapped IPv4
 * address as IPv4), in answer order, at most DNSR_PTR_MAX, without the
 * trailing dot; malformed records left out (DNSR_TEMPFAIL when none is
 * left). The names are not checked (dnsr_hostname_valid) nor confirmed by
 * a forward look-up: that is the caller's part. */
#define DNSR_PTR_MAX 8
typedef void dnsr_ptr_fn(void *ctx, enum dnsr_status st, const char *const *names, size_t n,
			 const char *error);
int dnsr_lookup_ptr(struct dnsr *r, const struct net_addr *addr, dnsr_ptr_fn *cb, void *ctx,
		    const char **error_r);

/* The callback of query id is not called. */
void dnsr_cancel(struct dnsr *r, int id);

/* Wire-format domain name at data[0..len) (uncompressed, as libunbound
 * gives rdata) into text without the trailing dot; host name bytes only.
 * 0 with *used_r, or -1. */
int dnsr_name_from_wire(const unsigned char *data, size_t len, char *out, size_t out_size,
			size_t *used_r);
/* The name of addr's PTR records: "4.3.2.1.in-addr.arpa" for 1.2.3.4
 * (also when mapped into IPv6), 32 nibbles then ".ip6.arpa" for IPv6
 * (RFC 3596 2.5). 0, or -1 when addr is no IP address or out_size is too
 * small (DNSR_PTR_NAME_MAX always fits). */
#define DNSR_PTR_NAME_MAX 73
int dnsr_ptr_name(const struct net_addr *addr, char *out, size_t out_size);
/* Whether name (without the trailing dot) is a host name: labels of 1..63
 * letters, digits and inner hyphens, 253 octets at most, a top label that is
 * not all digits (an address is no name). Only such names go into Received:
 * headers and milter macros. */
bool dnsr_hostname_valid(const char *name);
/* Whether a and b hold the same IP address; ports are ignored and a mapped
 * IPv4 address equals the IPv4 address. */
bool dnsr_addr_equal(const struct net_addr *a, const struct net_addr *b);

/* TXT rdata (length-prefixed strings) joined into out. 0, or -1 when
 * malformed or holding a NUL byte. */
int dnsr_txt_from_rdata(const unsigned char *data, size_t len, struct str *out);

#endif
