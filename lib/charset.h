/* Transfer decoding (RFC 2045 6.7, 6.8), RFC 2047 encoded words, RFC 2231
 * parameter values and charset -> UTF-8 conversion through glibc iconv.
 * Every function here is best effort on broken input: it never fails, it
 * appends what it could decode and reports (return 1) that it had to guess.
 * Output is always appended to out. */
#ifndef CONGVU_CHARSET_H
#define CONGVU_CHARSET_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

/* Base64 (RFC 2045 6.8): characters outside the alphabet (line ends,
 * spaces, junk) are skipped; decoding stops at the first '=' padding of a
 * complete quantum and resumes if more data follows. Returns 0, or 1 when
 * junk was skipped or the last quantum was incomplete. */
int charset_base64_decode(const char *in, size_t len, struct str *out);
/* Quoted-printable (RFC 2045 6.7): "=XX" (either case), soft line breaks
 * "=" CRLF / "=" LF removed; trailing whitespace of each line deleted (rule
 * 3: transport may have added it); line ends kept as sent; a malformed "="
 * is kept literally. Returns 0, or 1 when something was malformed. */
int charset_qp_decode(const char *in, size_t len, struct str *out);
/* The "Q" encoding of RFC 2047 4.2: as QP, plus '_' = space. */
int charset_qword_decode(const char *in, size_t len, struct str *out);

/* Converts len bytes in charset (any name iconv knows, case-insensitive,
 * with common aliases and mislabels handled: us-ascii and iso-8859-1 are
 * read as windows-1252, ks_c_5601-1987 as CP949, "utf8" as UTF-8, ...) to
 * valid UTF-8. Invalid or unconvertible input becomes U+FFFD; an unknown or
 * NULL charset is read as UTF-8 with invalid bytes replaced. Returns 0, or
 * 1 when anything was replaced or the charset was unknown. */
int charset_to_utf8(const char *charset, const char *in, size_t len, struct str *out);
/* True when charset is known to iconv (after the alias mapping above). */
bool charset_is_known(const char *charset);

/* Decodes an unstructured header value (Subject, a display name, a
 * Content-Description) to UTF-8 (RFC 2047): encoded words in either
 * encoding, whitespace between adjacent encoded words dropped (6.2), an
 * encoded word split inside a multibyte character across words joined
 * first, encoded words inside other text accepted (common breakage),
 * language suffix "*lang" (RFC 2231 5) ignored. Raw 8-bit text is kept when
 * it is valid UTF-8, otherwise read as windows-1252. CR/LF are dropped
 * (unfold first for exactness). Returns 0, or 1 if anything was broken. */
int charset_decode_header(const char *in, size_t len, struct str *out);

/* Decodes an RFC 2231 extended value "charset'language'%XX..." to UTF-8.
 * Missing quotes: the whole value is percent-decoded and read as UTF-8.
 * Returns 0 or 1 as above. */
int charset_rfc2231_decode(const char *in, size_t len, struct str *out);

#endif
