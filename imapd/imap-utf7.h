/* Mailbox names on the wire (RFC 3501 5.1.3): modified UTF-7 for clients
 * that did not ENABLE UTF8=ACCEPT or IMAP4rev2, UTF-8 for the others and
 * in the store. */
#ifndef CONGVU_IMAP_UTF7_H
#define CONGVU_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

/* Appends the UTF-8 form of modified UTF-7 in. Returns 0, or -1 when in is
 * not valid modified UTF-7 (bad base64, bad padding, an encoded printable
 * ASCII character, a lone surrogate, a raw 8-bit byte). */
int imap_utf7_to_utf8(const char *in, struct str *out);
/* Appends the modified UTF-7 form of UTF-8 in; -1 when in is not UTF-8. */
int imap_utf8_to_utf7(const char *in, struct str *out);
/* Whether the len bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool imap_utf8_valid(const void *data, size_t len);
/* Whether s needs encoding (holds '&' or a byte outside printable ASCII). */
bool imap_utf7_needed(const char *s);

#endif
