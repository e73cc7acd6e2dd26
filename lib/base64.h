/* Base64 (RFC 4648 section 4) in the three forms the programs need: the
 * strict padded form of SASL (RFC 4954), the forgiving form of MIME bodies
 * and encoded words (RFC 2045 6.8), and the alphabet of IMAP's modified
 * UTF-7 (RFC 3501 5.1.3: ',' instead of '/'), whose framing imap-utf7.c
 * does itself. */
#ifndef CONGVU_BASE64_H
#define CONGVU_BASE64_H

#include <stddef.h>

#include "str.h"

enum base64_alphabet {
	BASE64_STD,  /* "A-Za-z0-9+/" */
	BASE64_IMAP, /* "A-Za-z0-9+," */
};

/* The 64 characters of each alphabet, indexed by value. */
extern const char base64_std_chars[65];
extern const char base64_imap_chars[65];

/* The value 0..63 of c in alphabet a, -1 when c is not in it ('=' and NUL
 * included). */
static inline int base64_char_value(unsigned char c, enum base64_alphabet a)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == (a == BASE64_IMAP ? ',' : '/'))
		return 63;
	return -1;
}

/* Strict (padded, no line breaks): rejects bad characters and bad padding;
 * writes at most out_size bytes and returns -1 when the result would not
 * fit. Returns 0 and *out_len_r. */
int base64_decode(const char *in, size_t in_len, void *out, size_t out_size, size_t *out_len_r);

/* Writes the padded encoding and a NUL into out (size at least
 * 4 * ((in_len + 2) / 3) + 1); returns its length. */
size_t base64_encode(const void *in, size_t in_len, char *out);

/* Forgiving (RFC 2045 6.8), appends to out: characters outside the alphabet
 * (line ends, spaces, junk) are skipped; '=' ends the current quantum and
 * decoding resumes if more data follows (concatenated encodings). Returns
 * 0, or 1 when junk other than whitespace was skipped or a quantum was
 * incomplete (its whole bytes are still appended). */
int base64_decode_lenient(const char *in, size_t len, struct str *out);

#endif
