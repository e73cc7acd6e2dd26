/* Lists of IP networks (ADDRESS[/BITS], IPv4 and IPv6) and of domains with
 * optional "*." wildcards, for trusted networks and allow-lists. */
#ifndef CONGVU_MILTER_NETLIST_H
#define CONGVU_MILTER_NETLIST_H

#include <stdbool.h>
#include <sys/socket.h>

struct netlist;

/* Parses a list separated by commas and/or whitespace. Returns NULL with
 * *error_r (caller frees) naming the bad item. An empty list is valid. */
struct netlist *netlist_parse(const char *spec, char **error_r);
void netlist_free(struct netlist **list);
/* Whether the textual address (IPv4, IPv6, or IPv4-mapped IPv6) is in the list. */
bool netlist_match_str(const struct netlist *list, const char *addr);
bool netlist_match_sa(const struct netlist *list, const struct sockaddr *sa);

/* Whether domain (any case) matches one of the space/comma-separated
 * patterns: "example.org" matches itself; "*.gov.vn" matches every
 * subdomain of gov.vn. */
bool domain_pattern_match(const char *patterns, const char *domain);

#endif
