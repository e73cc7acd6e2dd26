#include "config.h"
#include "charset.h"
#include "html.h"
#include "imap-date.h"
#include "imap-pool.h"
#include "imap-search.h"
#include "imap-seqset.h"
#include "mime.h"
#include "utf8.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { ENV_NONE, ENV_SUBJECT, ENV_FROM, ENV_TO, ENV_CC, ENV_BCC };

enum key_type {
	K_ALL, K_AND, K_OR, K_NOT,
	K_FLAG_SET, K_FLAG_UNSET,             /* flags: MSG_* */
	K_KEYWORD, K_UNKEYWORD,               /* kw_bit; kw_bit -1: unknown keyword */
	K_NONE,                               /* matches nothing (RECENT, NEW) */
	K_SEQSET, K_UIDSET,
	K_LARGER, K_SMALLER,
	K_BEFORE, K_ON, K_SINCE,              /* internal date, by day */
	K_SENTBEFORE, K_SENTON, K_SENTSINCE,  /* Date: header, by day */
	K_SAVEDBEFORE, K_SAVEDON, K_SAVEDSINCE,
	K_OLDER, K_YOUNGER,                   /* RFC 5032 WITHIN: seconds */
	K_MODSEQ,
	K_HEADER,                             /* header name contains text ("" name: any) */
	K_BODY, K_TEXT,
};

struct search_key {
	enum key_type type;
	struct search_key *a, *b;     /* AND: list a, next b; OR: a, b; NOT: a */
	struct search_key *next;      /* in an AND list */
	uint32_t flags;
	int kw_bit;
	struct seqset set;
	uint64_t num;
	int64_t date;
	const char *header;           /* K_HEADER: field name; NULL for the address keys' names */
	const char *text;             /* UTF-8 */
	bool addr;                    /* FROM/TO/CC/BCC: match decoded address text */
	int env_field;                /* ENV_*: answerable from the envelope */
};

struct parser {
	const struct search_parse_ctx *ctx;
	const struct imap_arg *args;
	size_t n, pos;
	const char *charset;          /* NULL: UTF-8 */
	struct search_program *prog;
	const char *error;
	bool badcharset;
};

static struct search_key *new_key(struct parser *p, enum key_type t)
{
	struct search_key *k = p_malloc(p->ctx->pool, sizeof(*k));
	k->type = t;
	return k;
}

static const struct imap_arg *next_arg(struct parser *p)
{
	if (p->pos >= p->n) {
		p->error = "Missing search argument";
		return NULL;
	}
	return &p->args[p->pos++];
}

static const char *text_arg(struct parser *p)
{
	const struct imap_arg *a = next_arg(p);
	if (a == NULL)
		return NULL;
	const char *s = imap_arg_astring(a);
	if (s == NULL) {
		p->error = "Invalid search string";
		return NULL;
	}
	if (p->charset != NULL) {
		struct str out = STR_INIT;
		charset_to_utf8(p->charset, s, strlen(s), &out);
		s = p_strndup(p->ctx->pool, out.s ? out.s : "", out.len);
		str_free(&out);
	} else if (!utf8_is_valid(s, strlen(s))) {
		p->error = "Search string is not valid UTF-8";
		return NULL;
	}
	return s;
}

static bool date_arg(struct parser *p, int64_t *t_r)
{
	const struct imap_arg *a = next_arg(p);
	if (a == NULL)
		return false;
	const char *s = imap_arg_astring(a);
	if (s == NULL || !imap_date_parse(s, t_r)) {
		p->error = "Invalid date";
		return false;
	}
	return true;
}

static bool num_arg(struct parser *p, uint64_t max, uint64_t *n_r)
{
	const struct imap_arg *a = next_arg(p);
	if (a == NULL)
		return false;
	if (!imap_arg_number(a, max, n_r)) {
		p->error = "Invalid number";
		return false;
	}
	return true;
}

static struct search_key *parse_key(struct parser *p, unsigned depth);

/* Keys up to the end of list (or args) as an AND. */
static struct search_key *parse_list(struct parser *p, const struct imap_arg *args, size_t n,
				     unsigned depth)
{
	const struct imap_arg *save_args = p->args;
	size_t save_n = p->n, save_pos = p->pos;
	p->args = args;
	p->n = n;
	p->pos = 0;
	struct search_key *and = new_key(p, K_AND), **tail = &and->a;
	if (n == 0) {
		p->error = "Empty search key list";
		return NULL;
	}
	while (p->pos < p->n) {
		struct search_key *k = parse_key(p, depth);
		if (k == NULL)
			return NULL;
		*tail = k;
		tail = &k->next;
	}
	p->args = save_args;
	p->n = save_n;
	p->pos = save_pos;
	return and;
}

static const struct {
	const char *name;
	enum key_type type;
	uint32_t flags;
} flag_keys[] = {
	{ "ANSWERED", K_FLAG_SET, MSG_ANSWERED }, { "DELETED", K_FLAG_SET, MSG_DELETED },
	{ "DRAFT", K_FLAG_SET, MSG_DRAFT }, { "FLAGGED", K_FLAG_SET, MSG_FLAGGED },
	{ "SEEN", K_FLAG_SET, MSG_SEEN }, { "UNANSWERED", K_FLAG_UNSET, MSG_ANSWERED },
	{ "UNDELETED", K_FLAG_UNSET, MSG_DELETED }, { "UNDRAFT", K_FLAG_UNSET, MSG_DRAFT },
	{ "UNFLAGGED", K_FLAG_UNSET, MSG_FLAGGED }, { "UNSEEN", K_FLAG_UNSET, MSG_SEEN },
	/* \Recent is not kept (IMAP4rev2 dropped it): no message is recent */
	{ "OLD", K_ALL, 0 }, { "NEW", K_NONE, 0 }, { "RECENT", K_NONE, 0 },
	{ "ALL", K_ALL, 0 },
};

static const struct {
	const char *name;
	enum key_type type;
} date_keys[] = {
	{ "BEFORE", K_BEFORE }, { "ON", K_ON }, { "SINCE", K_SINCE },
	{ "SENTBEFORE", K_SENTBEFORE }, { "SENTON", K_SENTON }, { "SENTSINCE", K_SENTSINCE },
	{ "SAVEDBEFORE", K_SAVEDBEFORE }, { "SAVEDON", K_SAVEDON }, { "SAVEDSINCE", K_SAVEDSINCE },
};

static const char *const addr_headers[] = { "FROM", "TO", "CC", "BCC" };

static struct search_key *parse_key(struct parser *p, unsigned depth)
{
	if (depth > p->ctx->max_depth) {
		p->error = "Search keys nested too deeply";
		return NULL;
	}
	const struct imap_arg *a = next_arg(p);
	if (a == NULL)
		return NULL;
	if (a->type == IMAP_ARG_LIST)
		return parse_list(p, a->list, a->len, depth + 1);
	if (a->type != IMAP_ARG_ATOM) {
		p->error = "Invalid search key";
		return NULL;
	}
	const char *w = a->str;
	struct search_key *k;
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
		if (strcasecmp(w, flag_keys[i].name) == 0) {
			k = new_key(p, flag_keys[i].type);
			k->flags = flag_keys[i].flags;
			return k;
		}
	}
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
		if (strcasecmp(w, date_keys[i].name) == 0) {
			k = new_key(p, date_keys[i].type);
			if (date_keys[i].type >= K_SENTBEFORE && date_keys[i].type <= K_SENTSINCE)
				p->prog->needs_header = true;
			return date_arg(p, &k->date) ? k : NULL;
		}
	}
	for (size_t i = 0; i < sizeof(addr_headers) / sizeof(addr_headers[0]); i++) {
		if (strcasecmp(w, addr_headers[i]) == 0) {
			k = new_key(p, K_HEADER);
			k->header = addr_headers[i];
			k->addr = true;
			k->env_field = ENV_FROM + (int)i;
			p->prog->needs_header = true;
			return (k->text = text_arg(p)) ? k : NULL;
		}
	}
	if (strcasecmp(w, "SUBJECT") == 0) {
		k = new_key(p, K_HEADER);
		k->header = "SUBJECT";
		k->env_field = ENV_SUBJECT;
		p->prog->needs_header = true;
		return (k->text = text_arg(p)) ? k : NULL;
	}
	if (strcasecmp(w, "HEADER") == 0) {
		k = new_key(p, K_HEADER);
		const struct imap_arg *h = next_arg(p);
		if (h == NULL || (k->header = imap_arg_astring(h)) == NULL) {
			p->error = p->error ? p->error : "Invalid header name";
			return NULL;
		}
		p->prog->needs_header = true;
		return (k->text = text_arg(p)) ? k : NULL;
	}
	if (strcasecmp(w, "BODY") == 0 || strcasecmp(w, "TEXT") == 0) {
		k = new_key(p, strcasecmp(w, "BODY") == 0 ? K_BODY : K_TEXT);
		p->prog->needs_body = true;
		p->prog->needs_header = true;
		return (k->text = text_arg(p)) ? k : NULL;
	}
	if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
		k = new_key(p, strcasecmp(w, "KEYWORD") == 0 ? K_KEYWORD : K_UNKEYWORD);
		const struct imap_arg *kw = next_arg(p);
		if (kw == NULL || kw->type != IMAP_ARG_ATOM) {
			p->error = p->error ? p->error : "Invalid keyword";
			return NULL;
		}
		k->kw_bit = -1;
		for (unsigned i = 0; i < p->ctx->n_keywords; i++)
			if (strcasecmp(p->ctx->keywords[i], kw->str) == 0)
				k->kw_bit = (int)i;
		/* system flags written as keywords */
		static const struct {
			const char *n;
			uint32_t f;
		} sys[] = { { "\\Seen", MSG_SEEN }, { "\\Answered", MSG_ANSWERED },
			    { "\\Flagged", MSG_FLAGGED }, { "\\Deleted", MSG_DELETED },
			    { "\\Draft", MSG_DRAFT } };
		for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
			if (strcasecmp(kw->str, sys[i].n) == 0) {
				k->type = k->type == K_KEYWORD ? K_FLAG_SET : K_FLAG_UNSET;
				k->flags = sys[i].f;
			}
		}
		return k;
	}
	if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0) {
		k = new_key(p, strcasecmp(w, "LARGER") == 0 ? K_LARGER : K_SMALLER);
		return num_arg(p, UINT64_MAX / 2, &k->num) ? k : NULL;
	}
	if (strcasecmp(w, "OLDER") == 0 || strcasecmp(w, "YOUNGER") == 0) {
		k = new_key(p, strcasecmp(w, "OLDER") == 0 ? K_OLDER : K_YOUNGER);
		return num_arg(p, UINT32_MAX, &k->num) ? k : NULL;
	}
	if (strcasecmp(w, "NOT") == 0) {
		k = new_key(p, K_NOT);
		return (k->a = parse_key(p, depth + 1)) ? k : NULL;
	}
	if (strcasecmp(w, "OR") == 0) {
		k = new_key(p, K_OR);
		if ((k->a = parse_key(p, depth + 1)) == NULL || (k->b = parse_key(p, depth + 1)) == NULL)
			return NULL;
		return k;
	}
	if (strcasecmp(w, "UID") == 0) {
		k = new_key(p, K_UIDSET);
		const struct imap_arg *s = next_arg(p);
		if (s == NULL || s->type != IMAP_ARG_ATOM ||
		    seqset_parse(s->str, p->ctx->max_uid, p->ctx->pool, &k->set, &p->error) < 0) {
			p->error = p->error ? p->error : "Invalid UID set";
			return NULL;
		}
		return k;
	}
	if (strcasecmp(w, "MODSEQ") == 0) {
		k = new_key(p, K_MODSEQ);
		/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
		if (p->pos + 2 < p->n && p->args[p->pos].type == IMAP_ARG_QUOTED)
			p->pos += 2;
		p->prog->uses_modseq = true;
		return num_arg(p, UINT64_MAX / 2, &k->num) ? k : NULL;
	}
	if ((w[0] >= '0' && w[0] <= '9') || w[0] == '*') {
		k = new_key(p, K_SEQSET);
		if (seqset_parse(w, p->ctx->n_messages, p->ctx->pool, &k->set, &p->error) < 0)
			return NULL;
		return k;
	}
	p->error = "Unknown search key";
	return NULL;
}

int search_parse(const struct imap_arg *args, size_t n_args, const struct search_parse_ctx *ctx,
		 struct search_program *prog_r, bool *badcharset_r, const char **error_r)
{
	memset(prog_r, 0, sizeof(*prog_r));
	*badcharset_r = false;
	struct parser p = { .ctx = ctx, .args = args, .n = n_args, .prog = prog_r };
	size_t i = 0;
	if (i < n_args && imap_arg_is_atom(&args[i], "RETURN")) {
		if (i + 1 >= n_args || args[i + 1].type != IMAP_ARG_LIST) {
			*error_r = "Invalid RETURN options";
			return -1;
		}
		prog_r->esearch = true;
		const struct imap_arg *r = &args[i + 1];
		for (size_t k = 0; k < r->len; k++) {
			const struct imap_arg *o = &r->list[k];
			if (imap_arg_is_atom(o, "MIN"))
				prog_r->ret |= SEARCH_RET_MIN;
			else if (imap_arg_is_atom(o, "MAX"))
				prog_r->ret |= SEARCH_RET_MAX;
			else if (imap_arg_is_atom(o, "ALL"))
				prog_r->ret |= SEARCH_RET_ALL;
			else if (imap_arg_is_atom(o, "COUNT"))
				prog_r->ret |= SEARCH_RET_COUNT;
			else if (imap_arg_is_atom(o, "SAVE"))
				prog_r->ret |= SEARCH_RET_SAVE;
			else {
				*error_r = "Unknown RETURN option";
				return -1;
			}
		}
		if (prog_r->ret == 0)
			prog_r->ret = SEARCH_RET_ALL;
		i += 2;
	}
	if (i < n_args && imap_arg_is_atom(&args[i], "CHARSET")) {
		const char *cs = i + 1 < n_args ? imap_arg_astring(&args[i + 1]) : NULL;
		if (cs == NULL) {
			*error_r = "Invalid CHARSET";
			return -1;
		}
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			if (!charset_is_known(cs)) {
				*badcharset_r = true;
				*error_r = "[BADCHARSET (UTF-8 US-ASCII)] Unknown charset";
				return -1;
			}
			p.charset = cs;
		}
		i += 2;
	}
	if (i >= n_args) {
		*error_r = "Missing search keys";
		return -1;
	}
	prog_r->root = parse_list(&p, args + i, n_args - i, 0);
	if (prog_r->root == NULL) {
		*error_r = p.error ? p.error : "Invalid search";
		return -1;
	}
	return 0;
}

/* ---- evaluation ---- */

/* Case-folded with whitespace runs as one space, diacritics kept. */
static void fold_exact(const char *s, size_t len, struct str *out)
{
	struct str t = STR_INIT;
	utf8_casefold(s, len, &t);
	bool sp = false;
	for (size_t i = 0; i < t.len; i++) {
		char c = t.s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!sp)
				str_appendc(out, ' ');
			sp = true;
		} else {
			str_appendc(out, c);
			sp = false;
		}
	}
	str_free(&t);
}

bool search_text_match(const char *text, size_t len, const char *needle)
{
	size_t nlen = strlen(needle);
	if (nlen == 0)
		return true;
	struct str exact = STR_INIT, key = STR_INIT, t = STR_INIT;
	fold_exact(needle, nlen, &exact);
	utf8_search_key(needle, nlen, &key);
	/* the needle has diacritics when stripping them changes it */
	bool with_marks = exact.len != key.len || memcmp(exact.s, key.s, key.len) != 0;
	bool ret;
	if (with_marks) {
		fold_exact(text, len, &t);
		ret = utf8_search_contains(t.s ? t.s : "", t.len, exact.s, exact.len);
	} else {
		utf8_search_key(text, len, &t);
		ret = utf8_search_contains(t.s ? t.s : "", t.len, key.s ? key.s : "", key.len);
	}
	str_free(&exact);
	str_free(&key);
	str_free(&t);
	return ret;
}

/* What the evaluator keeps of one message between keys. */
struct msg_cache {
	size_t header_len;
	bool have_header_len;
	struct mime_message *mime;
	struct str body_text;
	bool have_body_text;
	int64_t sent_date;
	int sent_state; /* 0 unknown, 1 known, -1 none */
};

static struct msg_cache *cache_of(struct search_msg *m)
{
	if (m->cache == NULL)
		m->cache = xcalloc(1, sizeof(struct msg_cache));
	return m->cache;
}

void search_msg_clear(struct search_msg *m)
{
	struct msg_cache *c = m->cache;
	if (c == NULL)
		return;
	mime_message_free(&c->mime);
	str_free(&c->body_text);
	x_free(&m->cache);
}

static bool load(struct search_msg *m, bool want_body)
{
	if (m->data != NULL && (m->have_body || !want_body))
		return true;
	return m->load(m, want_body, m->load_ctx) == 0 && m->data != NULL;
}

static size_t header_len(struct search_msg *m)
{
	struct msg_cache *c = cache_of(m);
	if (!c->have_header_len) {
		const char *p = m->data;
		size_t n = m->len, end = n;
		for (size_t i = 0; i < n; i++) {
			if (p[i] != '\n')
				continue;
			if (i + 1 < n && p[i + 1] == '\n') {
				end = i + 2;
				break;
			}
			if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
				end = i + 3;
				break;
			}
		}
		c->header_len = end;
		c->have_header_len = true;
	}
	return c->header_len;
}

/* " local@domain" of a mailbox address, for matching addresses. */
static void append_mailbox(struct str *out, const struct mime_address *a)
{
	str_appendc(out, ' ');
	if (a->mailbox)
		str_appends(out, a->mailbox);
	str_appendc(out, '@');
	if (a->host)
		str_appends(out, a->host);
}

/* Decoded text of every header field called name (all fields when name is
 * NULL), joined by newlines. */
static void header_text(struct search_msg *m, const char *name, bool addr, struct str *out)
{
	struct mime_header_iter it;
	struct mime_header h;
	mime_header_iter_init(&it, m->data, header_len(m));
	struct str raw = STR_INIT;
	while (mime_header_iter_next(&it, &h)) {
		if (name != NULL && (h.name_len != strlen(name) || strncasecmp(h.name, name, h.name_len) != 0))
			continue;
		str_truncate(&raw, 0);
		mime_header_unfold(h.value, h.value_len, &raw);
		if (name == NULL) {
			str_append(out, h.name, h.name_len);
			str_appends(out, ": ");
		}
		charset_decode_header(raw.s ? raw.s : "", raw.len, out);
		if (addr) {
			/* also the addresses as "local@domain" for matching */
			struct mime_address_list *l = mime_address_parse(raw.s ? raw.s : "", raw.len);
			for (const struct mime_address *a = mime_address_list_first(l); a; a = a->next) {
				if (a->kind == MIME_ADDR_MAILBOX)
					append_mailbox(out, a);
			}
			mime_address_list_free(&l);
		}
		str_appendc(out, '\n');
	}
	str_free(&raw);
}

static void body_text(struct search_msg *m, struct str **out_r)
{
	struct msg_cache *c = cache_of(m);
	*out_r = &c->body_text;
	if (c->have_body_text)
		return;
	c->have_body_text = true;
	if (c->mime == NULL)
		c->mime = mime_parse(m->data, m->len);
	const struct mime_part *root = mime_message_root(c->mime);
	struct str tmp = STR_INIT;
	for (const struct mime_part *part = root; part != NULL; part = mime_part_next(part)) {
		if (part->children != NULL)
			continue;
		if (part != root && part->parent != NULL && mime_part_is_message(part->parent)) {
			/* an embedded message's header: searchable text too */
		}
		if (strcmp(part->type, "text") != 0) {
			continue;
		}
		str_truncate(&tmp, 0);
		mime_part_text_utf8(m->data, m->len, part, &tmp);
		if (strcmp(part->subtype, "html") == 0) {
			html_to_text(tmp.s ? tmp.s : "", tmp.len, &c->body_text, NULL, NULL);
		} else {
			str_append(&c->body_text, tmp.s ? tmp.s : "", tmp.len);
		}
		str_appendc(&c->body_text, '\n');
	}
	str_free(&tmp);
}

static bool sent_date(struct search_msg *m, int64_t *t_r)
{
	struct msg_cache *c = cache_of(m);
	if (c->sent_state == 0) {
		struct mime_header h;
		c->sent_state = -1;
		if (mime_header_find(m->data, header_len(m), "Date", &h)) {
			struct str v = STR_INIT;
			mime_header_unfold(h.value, h.value_len, &v);
			if (rfc5322_date_parse(v.s ? v.s : "", &c->sent_date))
				c->sent_state = 1;
			str_free(&v);
		}
	}
	*t_r = c->sent_date;
	return c->sent_state == 1;
}

static const struct mime_envelope *envelope_of(struct search_msg *m)
{
	return m->envelope != NULL ? m->envelope(m, m->load_ctx) : NULL;
}

/* The decoded text of an envelope field, as header_text() would give. */
static void envelope_text(const struct mime_envelope *env, int field, struct str *out)
{
	if (field == ENV_SUBJECT) {
		if (env->subject != NULL)
			charset_decode_header(env->subject, strlen(env->subject), out);
		return;
	}
	const struct mime_address *a = field == ENV_FROM ? env->from
				       : field == ENV_TO ? env->to
				       : field == ENV_CC ? env->cc
							 : env->bcc;
	for (; a != NULL; a = a->next) {
		if (a->name != NULL)
			charset_decode_header(a->name, strlen(a->name), out);
		if (a->kind != MIME_ADDR_MAILBOX) {
			str_appendc(out, '\n');
			continue;
		}
		append_mailbox(out, a);
		str_appendc(out, '\n');
	}
}

static bool eval(const struct search_key *k, struct search_msg *m)
{
	const struct store_message *r = m->rec;
	int64_t t;
	switch (k->type) {
	case K_ALL:
		return true;
	case K_NONE:
		return false;
	case K_AND:
		for (const struct search_key *c = k->a; c != NULL; c = c->next)
			if (!eval(c, m))
				return false;
		return true;
	case K_OR:
		return eval(k->a, m) || eval(k->b, m);
	case K_NOT:
		return !eval(k->a, m);
	case K_FLAG_SET:
		return (r->flags & k->flags) == k->flags;
	case K_FLAG_UNSET:
		return (r->flags & k->flags) == 0;
	case K_KEYWORD:
		return k->kw_bit >= 0 && (r->keywords & ((uint64_t)1 << k->kw_bit));
	case K_UNKEYWORD:
		return k->kw_bit < 0 || !(r->keywords & ((uint64_t)1 << k->kw_bit));
	case K_SEQSET:
		return seqset_contains(&k->set, m->seq);
	case K_UIDSET:
		return seqset_contains(&k->set, r->uid);
	case K_LARGER:
		return r->size > k->num;
	case K_SMALLER:
		return r->size < k->num;
	case K_BEFORE:
		return day_start(r->internal_date) < k->date;
	case K_ON:
		return day_start(r->internal_date) == k->date;
	case K_SINCE:
		return day_start(r->internal_date) >= k->date;
	case K_SAVEDBEFORE:
		return day_start(r->save_date) < k->date;
	case K_SAVEDON:
		return day_start(r->save_date) == k->date;
	case K_SAVEDSINCE:
		return day_start(r->save_date) >= k->date;
	case K_OLDER:
	case K_YOUNGER: {
		int64_t now = (int64_t)time(NULL);
		int64_t age = now - r->internal_date;
		return k->type == K_OLDER ? age >= (int64_t)k->num : age <= (int64_t)k->num;
	}
	case K_MODSEQ:
		return r->modseq >= k->num;
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE: {
		const struct mime_envelope *env = envelope_of(m);
		if (env != NULL) {
			if (env->date == NULL || !rfc5322_date_parse(env->date, &t))
				t = r->internal_date;
		} else {
			if (!load(m, false))
				return false;
			/* RFC 9051: messages without a usable Date: use the internal date */
			if (!sent_date(m, &t))
				t = r->internal_date;
		}
		t = day_start(t);
		return k->type == K_SENTBEFORE ? t < k->date
		       : k->type == K_SENTON  ? t == k->date
					      : t >= k->date;
	}
	case K_HEADER: {
		const struct mime_envelope *env = k->env_field ? envelope_of(m) : NULL;
		if (env != NULL) {
			struct str v = STR_INIT;
			envelope_text(env, k->env_field, &v);
			bool ret = search_text_match(v.s ? v.s : "", v.len, k->text);
			str_free(&v);
			return ret;
		}
		if (!load(m, false))
			return false;
		struct str v = STR_INIT;
		header_text(m, k->header, k->addr, &v);
		bool present = v.len > 0;
		bool ret = k->text[0] == '\0'
				   ? present || mime_header_find(m->data, header_len(m), k->header,
								 &(struct mime_header){ 0 })
				   : search_text_match(v.s ? v.s : "", v.len, k->text);
		str_free(&v);
		return ret;
	}
	case K_BODY:
	case K_TEXT: {
		if (!load(m, true))
			return false;
		if (k->type == K_TEXT) {
			struct str v = STR_INIT;
			header_text(m, NULL, true, &v);
			bool hit = search_text_match(v.s ? v.s : "", v.len, k->text);
			str_free(&v);
			if (hit)
				return true;
		}
		struct str *b;
		body_text(m, &b);
		return search_text_match(b->s ? b->s : "", b->len, k->text);
	}
	}
	return false;
}

bool search_eval(const struct search_program *prog, struct search_msg *m)
{
	return eval(prog->root, m);
}
