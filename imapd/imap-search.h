/* SEARCH (RFC 9051 6.4.4, RFC 4731 ESEARCH, RFC 7162 MODSEQ): parsing the
 * search keys into a program, and evaluating it on one message.
 *
 * Text keys (FROM, SUBJECT, BODY, TEXT, HEADER...) compare decoded text
 * (RFC 2047 words, base64, quoted-printable, charsets converted to UTF-8)
 * case-insensitively with Unicode case folding. A key typed without
 * diacritics also matches text with them ('quyet dinh' finds 'Quyết định'),
 * as Vietnamese users expect; a key typed with diacritics matches them
 * exactly, in any letter case ('ĐỊNH' finds 'định' but not 'dinh').
 *
 * No I/O: the caller gives each message's record and a loader for its
 * bytes. */
#ifndef CONGVU_IMAP_SEARCH_H
#define CONGVU_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap-parser.h"
#include "store/store.h"

struct pool;
struct search_key;
struct mime_envelope;

enum {
	SEARCH_RET_MIN = 1 << 0,
	SEARCH_RET_MAX = 1 << 1,
	SEARCH_RET_ALL = 1 << 2,
	SEARCH_RET_COUNT = 1 << 3,
	SEARCH_RET_SAVE = 1 << 4,
};

struct search_program {
	struct search_key *root;
	bool esearch;            /* RETURN (...) was given */
	unsigned ret;            /* SEARCH_RET_* (ALL when RETURN () is empty) */
	bool uses_modseq;        /* a MODSEQ key: report (MODSEQ n) */
	bool needs_header;       /* some key reads the header */
	bool needs_body;         /* some key reads the body */
};

/* Context for parsing: what sequence numbers and "*" mean now. */
struct search_parse_ctx {
	struct pool *pool;
	uint32_t n_messages;     /* "*" as a sequence number */
	uint32_t max_uid;        /* "*" as a UID */
	const char *const *keywords; /* the mailbox's keywords, index = bit */
	unsigned n_keywords;
	unsigned max_depth;
};

/* Parses args (after "SEARCH" or "UID SEARCH"): [RETURN (...)] [CHARSET x]
 * keys. 0, or -1 with *error_r (static) and *badcharset_r when the charset
 * is unknown (reply NO [BADCHARSET]). */
int search_parse(const struct imap_arg *args, size_t n_args, const struct search_parse_ctx *ctx,
		 struct search_program *prog_r, bool *badcharset_r, const char **error_r);

/* One message as the evaluator sees it. load() fills data/len with the
 * message (with body when want_body, else at least the whole header);
 * returns 0 or -1 (the message is then treated as not matching). */
struct search_msg {
	uint32_t seq;
	const struct store_message *rec;
	const char *data;
	size_t len;
	bool have_body;
	int (*load)(struct search_msg *m, bool want_body, void *ctx);
	void *load_ctx;
	/* optional: the message's envelope from the parse cached in the store,
	 * which answers SUBJECT, FROM, TO, CC, BCC and SENT* without reading
	 * the message; NULL when there is none */
	const struct mime_envelope *(*envelope)(struct search_msg *m, void *ctx);
	/* evaluator's caches, freed by search_msg_clear() */
	void *cache;
};

bool search_eval(const struct search_program *prog, struct search_msg *m);
void search_msg_clear(struct search_msg *m);

/* Whether needle (UTF-8) occurs in text (UTF-8) under the rules above. */
bool search_text_match(const char *text, size_t len, const char *needle);

#endif
