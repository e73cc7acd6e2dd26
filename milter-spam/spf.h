/* SPF (RFC 7208) through libspf2, its DNS queries sent to the configured
 * server by a DNS layer of our own (libspf2's resolv layer only knows
 * /etc/resolv.conf). */
#ifndef CONGVU_MILTER_SPF_H
#define CONGVU_MILTER_SPF_H

#include "dns.h"
#include "str.h"

enum spf_result {
	SPF_RES_NONE,
	SPF_RES_NEUTRAL,
	SPF_RES_PASS,
	SPF_RES_FAIL,
	SPF_RES_SOFTFAIL,
	SPF_RES_TEMPERROR,
	SPF_RES_PERMERROR,
};

/* Once at start-up, before threads: silences libspf2's own messages. */
void spf_init(void);

/* The lower-case name of a result ("pass", "softfail"...). */
const char *spf_result_name(enum spf_result r);

/* Checks the MAIL FROM identity (or, when sender is empty, the HELO name)
 * of client ip. Appends the Received-SPF: header value (without the name)
 * to received_spf. Thread-safe; never fails: lookup problems are temperror. */
enum spf_result spf_check(struct dns_resolver *res, const char *ip, const char *helo,
                          const char *sender, const char *receiver, struct str *received_spf);

#endif
