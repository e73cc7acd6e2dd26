/* Mail addresses of accounts: LOCAL@DOMAIN, compared case-insensitively. */
#ifndef CONGVU_ADDRESS_H
#define CONGVU_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_MAX_LEN 254
#define ADDRESS_LOCAL_MAX_LEN 64

/* Checks that in is a plain dot-atom LOCAL@DOMAIN address (RFC 5321 4.1.2,
 * lengths of 4.5.3.1) and writes its lower-case form into out (size
 * ADDRESS_MAX_LEN + 1). Returns 0, or -1 with *error_r (static). UTF-8 local
 * parts (RFC 6531) are accepted as they are. */
int address_normalize(const char *in, char *out, const char **error_r);
/* The domain part of a normalised address (after '@'), or "" when none. */
const char *address_domain(const char *addr);
/* True when domain (any case) is one of the space-separated domains. */
bool domain_is_local(const char *domain, const char *domains);

#endif
