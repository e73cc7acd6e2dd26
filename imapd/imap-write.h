/* Writing IMAP data items (RFC 9051 4.3): the shortest safe form of a
 * string (atom, quoted or literal), mailbox names in the form the client
 * asked for. Output goes to a struct str; large message bodies are not
 * written here but streamed by the session (imap-session.h). */
#ifndef CONGVU_IMAP_WRITE_H
#define CONGVU_IMAP_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

/* "..." when every byte may be quoted (8-bit only when utf8), else a literal. */
void imap_write_string(struct str *out, const void *s, size_t len, bool utf8);
/* An atom when s is a plain atom other than NIL, else like imap_write_string. */
void imap_write_astring(struct str *out, const void *s, size_t len, bool utf8);
/* NIL for NULL. */
void imap_write_nstring(struct str *out, const void *s, size_t len, bool utf8);
/* Always a literal {N}\r\n (for message bytes). literal8: ~{N}. */
void imap_write_literal(struct str *out, const void *s, size_t len, bool literal8);
/* A mailbox name stored as UTF-8, in modified UTF-7 unless utf8. */
void imap_write_mailbox(struct str *out, const char *name, bool utf8);

#endif
