/* IMAP renderings of a parse tree (RFC 3501 7.4.2, RFC 9051 7.5.2): ENVELOPE,
 * BODY and BODYSTRUCTURE, string quoting, and BODY[section] part look-up.
 * Output is appended to a struct str ready to be sent (literals included);
 * nothing here does I/O. */
#ifndef CONGVU_MIME_IMAP_H
#define CONGVU_MIME_IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "mime.h"
#include "str.h"

/* Flags for the functions below. */
#define MIME_IMAP_UTF8                                                                             \
	0x1u /* UTF8=ACCEPT enabled (RFC 6855): valid UTF-8 may                                    \
	      * go into quoted strings; otherwise 8-bit forces a                                   \
	      * literal */

/* Appends s as an IMAP string: a quoted string when it is short and holds
 * only safe characters ('"' and '\' escaped), else a literal "{N}\r\n..."
 * (CR, LF, 8-bit without MIME_IMAP_UTF8, over 1024 bytes). NUL bytes, which
 * no IMAP string may hold, are dropped. */
void mime_imap_append_string(struct str *out, const char *s, size_t len, unsigned int flags);
/* As above for a NUL-terminated string, or NIL when s is NULL. */
void mime_imap_append_nstring(struct str *out, const char *s, unsigned int flags);

/* Appends the ENVELOPE list "(date subject from sender reply-to to cc bcc
 * in-reply-to message-id)". Sender and Reply-To default to From (RFC 3501
 * 7.4.2); an absent or empty address list is NIL; a group is written as
 * (NIL NIL "name" NIL) members (NIL NIL NIL NIL); a mailbox with an empty
 * or missing local part or domain ("<>", "To: root") gets "MISSING_MAILBOX"
 * / "MISSING_DOMAIN" (as Dovecot), because NIL there would mean a group.
 * env NULL (not a message) gives an envelope of NILs. */
void mime_imap_envelope(const struct mime_envelope *env, unsigned int flags, struct str *out);

/* Appends the body structure of part (normally the root): with extensions
 * true the BODYSTRUCTURE form (MD5, disposition, language, location for
 * single parts; parameters, disposition, language, location for
 * multiparts), with false the BODY form. Defaults: a part without a valid
 * Content-Type is "TEXT" "PLAIN" ("CHARSET" "US-ASCII"); encoding "7BIT";
 * size and lines are body_len and body_lines; message/rfc822 carries the
 * embedded envelope and body (an envelope of NILs and an empty text/plain
 * body when it was not parsed: encoded, or at a limit); a multipart without
 * children (no boundary, limits) holds one empty text/plain part, as
 * Dovecot writes it, to stay syntactically valid. */
void mime_imap_bodystructure(const struct mime_part *part, bool extensions, unsigned int flags,
                             struct str *out);

/* Resolves the numeric prefix of a BODY[]/BINARY[] section spec (RFC 3501
 * 6.4.5): "" gives root; "1.2.3" walks the part numbers, where a non-
 * multipart message has a single part 1 (itself) and the numbers after a
 * message/rfc822 part index the parts of the embedded message. On success
 * returns the part and *consumed_r = bytes of spec used, including the '.'
 * after the last number (so spec + *consumed_r is "", "MIME", "HEADER",
 * "TEXT", "HEADER.FIELDS ..."). NULL when a number is 0, too large,
 * malformed or names no part. */
const struct mime_part *mime_imap_section(const struct mime_part *root, const char *spec,
                                          size_t len, size_t *consumed_r);
/* For HEADER, HEADER.FIELDS and TEXT after a non-empty part number: the
 * embedded message (its header and body) of a message/rfc822 part, or NULL
 * when part is not one (the section is then invalid). With the empty part
 * number those specifiers refer to the root itself. MIME uses the part's
 * own header and the plain number its body. */
const struct mime_part *mime_imap_section_message(const struct mime_part *part);

#endif
