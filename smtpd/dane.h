/* DANE for SMTP (RFC 7672, RFC 6698): TLSA records of a DNSSEC-validated
 * MX host, and the check of the server's certificate against them.
 *
 * Supported: usage 3 (DANE-EE: the server's own certificate or public key,
 * names and dates not checked, RFC 7672 3.1.1) with selector 0 (whole
 * certificate) or 1 (SubjectPublicKeyInfo) and matching type 0 (exact),
 * 1 (SHA-256) or 2 (SHA-512). Other records are "unusable": when every
 * record is, TLS is still required but not authenticated (RFC 7672 2.2). */
#ifndef CONGVU_DANE_H
#define CONGVU_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DANE_DATA_MAX 4096 /* bytes of association data kept (a whole certificate) */

struct dane_tlsa {
	uint8_t usage, selector, mtype;
	size_t len;
	uint8_t data[DANE_DATA_MAX];
};

/* TLSA rdata: 0, or -1 when shorter than 4 bytes or over DANE_DATA_MAX. */
int dane_parse_rdata(const uint8_t *rdata, size_t len, struct dane_tlsa *tlsa_r);
bool dane_usable(const struct dane_tlsa *tlsa);
/* Whether one usable record matches the certificate (DER): 1 yes, 0 no,
 * -1 when the certificate does not parse. */
int dane_match(const struct dane_tlsa *recs, size_t n, const void *cert_der, size_t cert_len);

#endif
