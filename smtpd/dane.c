/* DANE TLSA matching; see dane.h. */
#include "config.h"
#include "dane.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>

int dane_parse_rdata(const uint8_t *d, size_t len, struct dane_tlsa *t)
{
	if (len < 4 || len - 3 > DANE_DATA_MAX)
		return -1;
	t->usage = d[0];
	t->selector = d[1];
	t->mtype = d[2];
	t->len = len - 3;
	memcpy(t->data, d + 3, t->len);
	return 0;
}

bool dane_usable(const struct dane_tlsa *t)
{
	if (t->usage != 3 || t->selector > 1)
		return false;
	switch (t->mtype) {
	case 0:
		return t->len > 0;
	case 1:
		return t->len == 32;
	case 2:
		return t->len == 64;
	}
	return false;
}

/* The bytes a record with this selector and matching type compares. */
static bool digest_of(const uint8_t *in, size_t in_len, uint8_t mtype, uint8_t *out,
		      size_t *out_len)
{
	if (mtype == 0) {
		if (in_len > DANE_DATA_MAX)
			return false;
		memcpy(out, in, in_len);
		*out_len = in_len;
		return true;
	}
	unsigned int n = 0;
	if (EVP_Digest(in, in_len, out, &n, mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL) != 1)
		return false;
	*out_len = n;
	return true;
}

int dane_match(const struct dane_tlsa *recs, size_t n, const void *cert_der, size_t cert_len)
{
	const unsigned char *p = cert_der;
	X509 *x = d2i_X509(NULL, &p, (long)cert_len);
	if (x == NULL || p != (const unsigned char *)cert_der + cert_len) {
		X509_free(x);
		return -1;
	}
	unsigned char *spki = NULL;
	int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
	X509_free(x);
	if (spki_len <= 0) {
		OPENSSL_free(spki);
		return -1;
	}
	int found = 0;
	uint8_t buf[DANE_DATA_MAX];
	for (size_t i = 0; i < n && !found; i++) {
		const struct dane_tlsa *t = &recs[i];
		if (!dane_usable(t))
			continue;
		const uint8_t *in = t->selector == 0 ? cert_der : spki;
		size_t in_len = t->selector == 0 ? cert_len : (size_t)spki_len;
		size_t len;
		if (digest_of(in, in_len, t->mtype, buf, &len) && len == t->len &&
		    CRYPTO_memcmp(buf, t->data, len) == 0)
			found = 1;
	}
	OPENSSL_free(spki);
	return found;
}
