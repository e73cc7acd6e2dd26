/* Network addresses and lists of networks (CIDR), for trusted_networks and
 * per-client limits. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
 * treated as the IPv4 address they carry, so a dual-stack socket matches
 * 127.0.0.0/8. */
#ifndef CONGVU_NET_H
#define CONGVU_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A peer or local address as accept(2) and getsockname(2) return it. */
struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Longest text net_addr_str() writes, with the NUL (INET6_ADDRSTRLEN). */
#define NET_ADDR_STR_MAX 46

/* The address as text without the port: "192.0.2.1", "2001:db8::1" (mapped
 * IPv4 shown as IPv4), or "unix" for a unix socket peer. Returns buf. */
const char *net_addr_str(const struct net_addr *addr, char *buf, size_t size);
/* The port, or 0 for a unix socket. */
unsigned net_addr_port(const struct net_addr *addr);
/* True for AF_INET/AF_INET6 peers, false for unix sockets. */
bool net_addr_is_ip(const struct net_addr *addr);
/* Parses a literal IPv4 or IPv6 address (no port, no brackets). 0 or -1. */
int net_addr_parse(const char *s, struct net_addr *addr_r);
/* A 64-bit hash of the IP (for IPv6, of its /64 network when by_prefix:
 * one client usually owns a whole /64), for per-client counters. 0 for unix. */
uint64_t net_addr_hash(const struct net_addr *addr, bool by_prefix);

struct net_list;

/* Parses a list of ADDRESS[/BITS] items separated by commas and/or spaces
 * (an address without /BITS is one host). An empty list matches nothing.
 * Returns 0 and *list_r, or -1 and *error_r (caller frees) naming the bad
 * item. */
int net_list_parse(const char *text, struct net_list **list_r, char **error_r);
/* Whether addr is inside one of the networks (never for unix peers: callers
 * decide themselves whether a local socket is trusted). */
bool net_list_match(const struct net_list *list, const struct net_addr *addr);
void net_list_free(struct net_list **list);

#endif
