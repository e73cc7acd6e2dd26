/* Policy rules over a parsed message: missing headers, broken MIME,
 * executable attachments (also inside zip archives), and look-alike
 * domains of the local domains. Pure functions of the message. */
#ifndef CONGVU_MILTER_RULES_H
#define CONGVU_MILTER_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "mime.h"

#define RULES_NAME_MAX 128

struct rule_facts {
	bool has_date, has_message_id, has_subject;
	/* A From: header with at least one address that has a domain. */
	bool has_from;
	/* The domain of the first From: address, lower-case ("" if none). */
	char from_domain[256];
	/* The display name of that address, RFC 2047 decoded, lower-case
	 * ASCII, truncated ("" if none). */
	char from_name[RULES_NAME_MAX];
	/* The domain of the first Reply-To: address, lower-case ("" if none). */
	char reply_to_domain[256];
	/* Structure the parser had to repair (no boundary, bad Content-Type,
	 * NUL bytes, unterminated multipart). */
	bool bad_mime;
	/* The first executable attachment name found, e.g. "invoice.pdf.exe"
	 * or "photos.zip:setup.scr" ("" if none). */
	char executable[RULES_NAME_MAX];
};

/* exe_extensions: space-separated extensions without dots, e.g. "exe scr". */
void rules_examine(const char *data, size_t len, const struct mime_message *msg,
                   const char *exe_extensions, struct rule_facts *facts_r);

/* Whether file name ends in one of the extensions (case-insensitive). */
bool rules_name_is_executable(const char *name, size_t len, const char *exe_extensions);

/* Calls cb for each file name in the central directory (or, when that is
 * missing, the local headers) of a zip archive; at most 1000 names.
 * Returns the number of names. */
typedef bool rules_zip_callback(void *context, const char *name, size_t len);
int rules_zip_names(const unsigned char *zip, size_t len, rules_zip_callback *cb, void *context);

/* Whether a From: display name shows an address or a domain of
 * local_domains while the real address is elsewhere ("vanthu@lamdong.gov.vn"
 * <x@example.com>), a common phishing disguise. */
bool rules_display_name_spoof(const struct rule_facts *facts, const char *local_domains);

/* Whether domain imitates one of the space-separated local domains
 * without being one or a subdomain of one: the same letters once '-' and
 * '.' are ignored (lamdong-gov.vn), one letter changed, added, dropped or
 * two swapped (lamdomg.gov.vn), digit and "rn" look-alikes (1amdong.gov.vn),
 * or a local domain followed by more labels (lamdong.gov.vn.example.com).
 * Returns the imitated domain's index among local_domains + 1, or 0. */
int rules_lookalike(const char *domain, const char *local_domains);

#endif
