/* The outbound TLS policy table (smtpd.tls_policy): comma- or space-separated
 * DOMAIN:POLICY items. DOMAIN is a domain name (that domain only), `*.SUFFIX`
 * (every subdomain of SUFFIX at any depth, not SUFFIX itself) or `*` (every
 * destination). The most specific item wins: an exact name, then the
 * longest wildcard suffix, then `*`; domains not listed get `may`.
 *   none     never STARTTLS (for a peer whose TLS is known broken)
 *   may      STARTTLS whenever offered, else clear text (opportunistic)
 *   encrypt  TLS required; without it the mail waits in the queue
 *   verify   TLS required with a certificate that verifies for the MX name
 *            (or the smart host's name) */
#ifndef CONGVU_TLS_POLICY_H
#define CONGVU_TLS_POLICY_H

enum tls_policy_level { TLS_POLICY_NONE, TLS_POLICY_MAY, TLS_POLICY_ENCRYPT, TLS_POLICY_VERIFY };

struct tls_policy;

/* Returns 0 and *policy_r (an empty text gives an empty table), or -1 with
 * *error_r (caller frees) naming the bad item. */
int tls_policy_parse(const char *text, struct tls_policy **policy_r, char **error_r);
void tls_policy_free(struct tls_policy **policy);
/* The level for a destination domain (any case, trailing dot allowed). */
enum tls_policy_level tls_policy_lookup(const struct tls_policy *policy, const char *domain);
const char *tls_policy_name(enum tls_policy_level level);

#endif
