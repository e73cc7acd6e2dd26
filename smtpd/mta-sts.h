/* SMTP MTA Strict Transport Security (RFC 8461): the parts with no I/O.
 * A domain publishes "_mta-sts.DOMAIN TXT v=STSv1; id=..." and a policy at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt:
 *     version: STSv1
 *     mode: enforce | testing | none
 *     mx: mail.example.com
 *     mx: *.example.net
 *     max_age: 604800
 * In enforce mode mail goes only to MX hosts matching an mx pattern, over TLS
 * with a certificate valid for the MX name; in testing mode failures are only
 * reported. The policy itself must come over HTTPS with a valid certificate. */
#ifndef CONGVU_MTA_STS_H
#define CONGVU_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTA_STS_POLICY_MAX 65536   /* bytes of a policy (RFC 8461 3.3: 64 KiB) */
#define MTA_STS_MX_MAX 32
#define MTA_STS_MAX_AGE 31557600   /* one year (RFC 8461 3.2) */

enum mta_sts_mode { MTA_STS_NONE, MTA_STS_TESTING, MTA_STS_ENFORCE };

struct mta_sts_policy {
	enum mta_sts_mode mode;
	uint32_t max_age;
	char *mx[MTA_STS_MX_MAX];
	size_t n_mx;
};

/* The TXT record: 1 and its id (at most 32 alphanumerics, into id of size
 * 33) when it is a "v=STSv1" record, 0 when it is another TXT record, -1
 * when it claims STSv1 but is malformed. */
int mta_sts_parse_txt(const char *txt, size_t len, char id[33]);
/* The policy file. 0, or -1 with *error_r (static). */
int mta_sts_parse_policy(const char *text, size_t len, struct mta_sts_policy *policy_r,
			 const char **error_r);
void mta_sts_policy_free(struct mta_sts_policy *policy);
/* Whether host (an MX name) matches one of the policy's mx patterns
 * (RFC 8461 4.1: "*." covers exactly one leftmost label). */
bool mta_sts_mx_match(const struct mta_sts_policy *policy, const char *host);

/* An HTTP/1.0 response read to EOF: 1 with *body_r and *body_len_r (pointing
 * into data) for a complete "200" response of type text/plain, 0 when more
 * input is needed, -1 with *error_r (static) otherwise. */
int mta_sts_http_response(const char *data, size_t len, bool eof, const char **body_r,
			  size_t *body_len_r, const char **error_r);

#endif
