/* RFC 5322 / MIME (RFC 2045-2047, 2231) message parsing: a testable core with
 * no I/O. mime_parse() turns a message held in memory into a tree of parts
 * whose positions are offsets into that buffer and whose header fields
 * (Content-*, envelope) are copied into the tree, so the tree outlives the
 * buffer and can be serialised as the store's "cached parse" (mime_cache_*),
 * from which FETCH ENVELOPE/BODYSTRUCTURE are answered without the message.
 *
 * Offsets and sizes are those of the bytes given. IMAP sizes must match what
 * FETCH BODY[] sends, so the store parses the message exactly as it keeps it
 * (normally CRLF-terminated; see mime_crlf_normalize()).
 *
 * Rendering for IMAP lives in mime-imap.h, transfer/charset decoding in
 * charset.h, HTML to text in html.h, folding and search keys in utf8.h. */
#ifndef CONGVU_MIME_H
#define CONGVU_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "html.h"
#include "str.h"

/* Parts nested deeper than this (multipart or message/rfc822 levels) are not
 * parsed further: the part at the limit becomes a leaf (MIME_PART_F_LIMIT). */
#define MIME_MAX_DEPTH 32
/* At most this many parts per message (counted in pre-order); the rest of
 * a multipart that reaches it is not split into parts (MIME_PART_F_LIMIT on
 * that multipart): those bytes stay only in its body. */
#define MIME_MAX_PARTS 10000
/* At most this many parameters kept per Content-Type/Content-Disposition
 * header, and at most this many addresses per address header. */
#define MIME_MAX_PARAMS 64
#define MIME_MAX_ADDRESSES 10000

/* Bits of mime_part.flags: what the parser had to tolerate (useful as spam
 * signals; none of them stops the parse). */
#define MIME_PART_F_NO_END_BOUNDARY 0x0001u /* multipart without --boundary-- */
#define MIME_PART_F_NO_BOUNDARY 0x0002u     /* multipart/ without boundary= (made a leaf) */
#define MIME_PART_F_BAD_HEADER 0x0004u      /* header line without ':' or bad name */
#define MIME_PART_F_NO_BODY_SEP 0x0008u     /* headers not ended by an empty line */
#define MIME_PART_F_8BIT_HEADER 0x0010u     /* raw 8-bit bytes in the header block */
#define MIME_PART_F_NUL 0x0020u             /* NUL byte in the header or body */
#define MIME_PART_F_BAD_CTYPE 0x0040u       /* Content-Type present but unparsable */
#define MIME_PART_F_LIMIT 0x0080u           /* depth or part-count limit reached here */
#define MIME_PART_F_BARE_LF 0x0100u         /* LF not preceded by CR somewhere */
#define MIME_PART_F_8BIT_BODY 0x0200u       /* 8-bit bytes in the body of this leaf */

/* A Content-Type or Content-Disposition parameter. */
struct mime_param {
	/* Lower-case attribute, without the RFC 2231 "*N" / "*" suffixes. */
	const char *name;
	/* The value as UTF-8: quotes and escapes removed, RFC 2231
	 * continuations joined and charset-decoded; RFC 2047 encoded words
	 * (used by some mailers for name= and filename=) decoded as well. */
	const char *value;
	/* The value as sent, for IMAP BODYSTRUCTURE: quotes removed,
	 * continuations joined; for an RFC 2231 extended parameter the joined
	 * "charset'language'%XX" form (then extended is true and IMAP shows the
	 * attribute as "name*"). */
	const char *raw_value;
	bool extended;
};

/* One address of an address-list header, in IMAP ENVELOPE form (RFC 3501
 * 7.4.2). A group appears as a GROUP_START entry (mailbox = group name), its
 * members, then a GROUP_END entry. Strings are raw header text: encoded words
 * in name are not decoded (use charset_decode_header()). */
enum mime_address_kind {
	MIME_ADDR_MAILBOX,
	MIME_ADDR_GROUP_START,
	MIME_ADDR_GROUP_END,
};
struct mime_address {
	enum mime_address_kind kind;
	const char *name;    /* phrase (unquoted) or the comment; NULL if none */
	const char *route;   /* obsolete source route "@a,@b"; NULL if none */
	const char *mailbox; /* local part (unquoted); NULL if missing, "" for "<>" */
	const char *host;    /* domain; NULL if missing ("To: root"), "" for "<>" */
	/* true when the parser had to guess (missing '@', junk, no '>') */
	bool invalid;
	struct mime_address *next;
};

/* The ENVELOPE fields of a message (RFC 3501 7.4.2). Unstructured fields are
 * the first such header, unfolded (CRLF removed), leading/trailing
 * whitespace trimmed, encoded words left as they are; NULL when the header
 * is absent. Address lists are NULL when the header is absent or empty.
 * Sender and Reply-To are as in the message: the IMAP renderer applies the
 * default to From. */
struct mime_envelope {
	const char *date;
	const char *subject;
	struct mime_address *from;
	struct mime_address *sender;
	struct mime_address *reply_to;
	struct mime_address *to;
	struct mime_address *cc;
	struct mime_address *bcc;
	const char *in_reply_to;
	const char *message_id;
};

/* One part of the tree. All fields are read-only for users. A message (the
 * root, and the body of each message/rfc822 part) is itself a part whose
 * header is the message header. */
struct mime_part {
	struct mime_part *parent;   /* NULL for the root */
	struct mime_part *children; /* first child, NULL for a leaf */
	struct mime_part *next;     /* next sibling */
	unsigned int child_count;
	unsigned int depth; /* 0 for the root */

	/* The header block, including the empty line that ends it (when
	 * present); the body follows at once: body_start = header_start +
	 * header_len. For a part of a multipart, the body ends before the CRLF
	 * that precedes the next boundary (RFC 2046 5.1.1). */
	size_t header_start, header_len;
	size_t body_start, body_len;
	/* Lines in the body (IMAP body-fld-lines): the number of LF. A last
	 * line without LF (a part "hello" before its boundary) is not
	 * counted, as Dovecot counts, so that both servers agree. */
	size_t body_lines;
	uint32_t flags; /* MIME_PART_F_* */

	/* Content-Type, lower-case; "text"/"plain" when absent or invalid
	 * (RFC 2045 5.2), "message"/"rfc822" inside multipart/digest. */
	const char *type;
	const char *subtype;
	struct mime_param *params; /* array of param_count */
	unsigned int param_count;
	/* Content-Transfer-Encoding token, lower-case; NULL when absent or
	 * not a token (then 7bit is meant). */
	const char *encoding;
	/* Raw unfolded values (trimmed); NULL when absent. */
	const char *id;               /* Content-ID */
	const char *description;      /* Content-Description as sent */
	const char *description_utf8; /* the same, RFC 2047-decoded */
	const char *md5;              /* Content-MD5 */
	const char *disposition;      /* Content-Disposition type, lower-case */
	struct mime_param *disposition_params;
	unsigned int disposition_param_count;
	const char *language; /* Content-Language, raw: "en, vi" */
	const char *location; /* Content-Location, unfolded, spaces removed */

	/* For a message root (the root part, the child of message/rfc822):
	 * its envelope. NULL for other parts. */
	struct mime_envelope *envelope;
};

/* Opaque: the root part and the arena that owns every part and string. */
struct mime_message;

/* Parses data (len bytes, any content: NULs, 8-bit, broken MIME, no header
 * end, lines of any length) and always returns a tree: best effort, linear
 * time, bounded by MIME_MAX_DEPTH and MIME_MAX_PARTS. data need not be
 * NUL-terminated and is not referenced after the call. */
struct mime_message *mime_parse(const char *data, size_t len);
void mime_message_free(struct mime_message **msg);

const struct mime_part *mime_message_root(const struct mime_message *msg);
/* Number of parts in the tree (root included). */
unsigned int mime_message_part_count(const struct mime_message *msg);
/* Length of the message that was parsed (or that the cache describes). */
size_t mime_message_size(const struct mime_message *msg);

/* Depth-first, pre-order walk: returns the part after part, or NULL at the
 * end. Start with mime_message_root(). */
const struct mime_part *mime_part_next(const struct mime_part *part);

/* True for type "multipart" that has children. */
bool mime_part_is_multipart(const struct mime_part *part);
/* True for message/rfc822 (and message/global) with its message child. */
bool mime_part_is_message(const struct mime_part *part);
/* The value (UTF-8) of the first parameter called name (lower-case) of
 * Content-Type, or NULL. */
const char *mime_part_param(const struct mime_part *part, const char *name);
/* The same for Content-Disposition. */
const char *mime_part_disposition_param(const struct mime_part *part, const char *name);
/* The charset for decoding text: the charset parameter as sent (compare
 * it case-insensitively), or "us-ascii" when none. */
const char *mime_part_charset(const struct mime_part *part);
/* Attachment file name (UTF-8): disposition filename, else Content-Type
 * name; NULL if neither. */
const char *mime_part_filename(const struct mime_part *part);
/* True when the part is an attachment rather than body text: disposition
 * "attachment", or a file name on a non-text part. */
bool mime_part_is_attachment(const struct mime_part *part);

/* --- Header fields, over raw bytes (the message buffer) --- */

/* One header field as found in a header block. name/value point into the
 * buffer; value is everything after the ':' up to the line end, folding
 * included, without the final line end. */
struct mime_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};
struct mime_header_iter {
	const char *p, *end;
};

/* Iterates the header fields of a header block, e.g. data +
 * part->header_start for part->header_len bytes. Lines without a ':' are
 * skipped; the iteration stops at the empty line or the end. */
void mime_header_iter_init(struct mime_header_iter *it, const char *hdr, size_t len);
/* Returns true and fills *hdr_r with the next field, false at the end. */
bool mime_header_iter_next(struct mime_header_iter *it, struct mime_header *hdr_r);
/* Finds the first field called name (case-insensitive) in a header block. */
bool mime_header_find(const char *hdr, size_t len, const char *name, struct mime_header *hdr_r);
/* Appends value unfolded: CR and LF removed (RFC 5322 2.2.3), leading and
 * trailing whitespace trimmed. */
void mime_header_unfold(const char *value, size_t len, struct str *out);

/* RFC 5322 address-list parsing (groups, quoted local parts, comments,
 * obsolete routes; broken input is tolerated and flagged invalid). The
 * result lives in a separate arena; free with mime_address_list_free(). At
 * most MIME_MAX_ADDRESSES are returned. */
struct mime_address_list;
struct mime_address_list *mime_address_parse(const char *value, size_t len);
const struct mime_address *mime_address_list_first(const struct mime_address_list *list);
void mime_address_list_free(struct mime_address_list **list);

/* --- Body access (data is the message the tree was parsed from) --- */

/* Appends the transfer-decoded body of a leaf part (base64,
 * quoted-printable; 7bit/8bit/binary and unknown encodings copied as they
 * are). Returns 0, 1 when the encoding was broken and decoding was best
 * effort, or -1 when the encoding is unknown (IMAP BINARY's UNKNOWN-CTE;
 * the raw body is appended anyway). data/len must be the parsed message. */
int mime_part_decode_body(const char *data, size_t len, const struct mime_part *part,
                          struct str *out);
/* Appends the body of a text part as valid UTF-8: transfer decoding, then
 * the part's charset converted (unknown charsets and invalid sequences
 * become U+FFFD; never fails). Returns 0, or 1 when anything had to be
 * guessed (broken or unknown transfer encoding, replaced bytes, unknown
 * charset). Works for any part but is meant for type "text". */
int mime_part_text_utf8(const char *data, size_t len, const struct mime_part *part,
                        struct str *out);

/* Appends the readable text of a leaf part as UTF-8, for the spam
 * tokenizer and SEARCH BODY/TEXT: text/html reduced by html_to_text() (link
 * called for each URL; may be NULL), any other text type as by
 * mime_part_text_utf8(); nothing for non-text parts, multiparts and
 * messages (walk their children instead).
 * Returns 0, or 1 when decoding was best effort. */
int mime_part_plain_text(const char *data, size_t len, const struct mime_part *part,
                         struct str *out, html_link_callback *link, void *context);

/* Appends in to out with every bare LF and bare CR turned into CRLF, the
 * form the store keeps and IMAP sizes count. */
void mime_crlf_normalize(const char *in, size_t len, struct str *out);

/* --- The cached parse --- */

/* Appends a compact, versioned, self-checking binary form of the tree
 * (offsets, lines, Content-* fields, envelopes) to out. */
void mime_cache_build(const struct mime_message *msg, struct str *out);
/* Parses data and appends its cache: mime_cache_build(mime_parse()). */
void mime_cache_from_message(const char *data, size_t len, struct str *out);
/* Rebuilds the tree from a cache made by mime_cache_build(), without the
 * message. Returns 0 and *msg_r, or -1 with *error_r (static string) for a
 * truncated, corrupt or unknown-version cache; never crashes on any input.
 * The caller then re-parses the message (the cache is only an optimisation).
 * Offsets are only checked against the size recorded in the cache: compare
 * mime_message_size() with the message before using them on its bytes. */
int mime_cache_load(const void *cache, size_t len, struct mime_message **msg_r,
                    const char **error_r);
/* The checksum that ends a cache (FNV-1a 64 of everything before the last
 * 8 bytes, stored little-endian); for tests and the fuzzer, which build
 * caches that pass it. */
uint64_t mime_cache_checksum(const void *data, size_t len);

#endif
