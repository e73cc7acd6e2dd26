/* MIME parse tree: header scanning, Content-* fields, RFC 2231 parameters,
 * RFC 5322 addresses and envelopes, multipart splitting, body access and
 * the cached-parse serialisation.
 *
 * The parser works over the whole message in memory. Every level of
 * multipart nesting scans its own body once for its boundary, so the cost
 * is O(length x depth) with depth <= MIME_MAX_DEPTH: linear. An outer
 * boundary always ends an inner part (the outer level splits first), which
 * is how RFC 2046 5.1.2 says a missing inner close-delimiter is recovered. */
#include "config.h"
#include "mime.h"
#include "charset.h"
#include "utf8.h"
#include "xalloc.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- Arena: everything of one tree lives in one list of chunks --- */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, size;
	alignas(max_align_t) unsigned char data[];
};

struct arena {
	struct arena_chunk *head;
};

#define ARENA_CHUNK_SIZE 8192

static void *arena_alloc(struct arena *a, size_t n)
{
	const size_t align = alignof(max_align_t);
	n = xadd(n, align - 1) & ~(align - 1);
	if (n == 0)
		n = align;
	if (a->head == NULL || a->head->size - a->head->used < n) {
		size_t size = n > ARENA_CHUNK_SIZE ? n : ARENA_CHUNK_SIZE;
		struct arena_chunk *c = xmalloc(xadd(sizeof(*c), size));
		c->size = size;
		c->used = 0;
		if (a->head != NULL && n > ARENA_CHUNK_SIZE) {
			/* a big block: keep the current chunk in front */
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
		c->used = n;
		memset(c->data, 0, n);
		return c->data;
	}
	void *p = a->head->data + a->head->used;
	a->head->used += n;
	memset(p, 0, n);
	return p;
}

static void *arena_array(struct arena *a, size_t nmemb, size_t size)
{
	return arena_alloc(a, xmul(nmemb, size));
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, xadd(n, 1));
	if (n > 0)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void arena_free(struct arena *a)
{
	while (a->head != NULL) {
		struct arena_chunk *c = a->head;
		a->head = c->next;
		free(c);
	}
}

struct mime_message {
	struct arena arena;
	struct mime_part *root;
	unsigned int part_count;
	size_t size;
};

struct mime_address_list {
	struct arena arena;
	struct mime_address *first;
};

/* --- Small helpers --- */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_lwsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void lowercase(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
	}
}

/* Appends value without CR, LF and NUL, trimmed of surrounding
 * whitespace. */
static void unfold_into(const char *value, size_t len, struct str *out)
{
	size_t start = out->len;

	str_reserve(out, len);
	for (size_t i = 0; i < len; i++) {
		char c = value[i];
		if (c == '\r' || c == '\n' || c == '\0')
			continue;
		if (is_wsp(c) && out->len == start)
			continue;
		str_appendc(out, c);
	}
	while (out->len > start && is_wsp(out->s[out->len - 1]))
		out->len--;
	out->s[out->len] = '\0';
}

void mime_header_unfold(const char *value, size_t len, struct str *out)
{
	unfold_into(value, len, out);
}

/* --- Header scanning --- */

/* A header field name: printable ASCII except ':' (RFC 5322 3.6.8),
 * possibly followed by whitespace (obsolete syntax) before the ':'. Returns
 * the offset of the ':' in line, or 0 when the line is not a field. */
static size_t field_colon(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && (unsigned char)line[i] > ' ' && (unsigned char)line[i] < 0x7f &&
	       line[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < len && is_wsp(line[i]))
		i++;
	if (i >= len || line[i] != ':')
		return 0;
	return i;
}

static size_t name_length(const char *line, size_t colon)
{
	size_t n = colon;
	while (n > 0 && is_wsp(line[n - 1]))
		n--;
	return n;
}

/* Reads the next header field from *pp (up to end). Returns 1 with *h set,
 * or 0 at the end of the header: then *pp is after the empty line (or at
 * end when there was none, *eoh_r false). Lines that are not fields are
 * skipped and flagged. */
static int header_next(const char **pp, const char *end, struct mime_header *h, uint32_t *flags,
                       bool *eoh_r)
{
	const char *p = *pp;

	*eoh_r = false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl != NULL ? nl : end;
		size_t line_len = (size_t)(line_end - p);
		if (line_len > 0 && p[line_len - 1] == '\r')
			line_len--;
		if (line_len == 0) {
			/* the empty line ends the header (a lone CR too) */
			*pp = nl != NULL ? nl + 1 : end;
			*eoh_r = nl != NULL;
			return 0;
		}
		size_t colon = is_wsp(p[0]) ? 0 : field_colon(p, line_len);
		if (colon == 0) {
			/* not a field (or a continuation without a field) */
			*flags |= MIME_PART_F_BAD_HEADER;
			p = nl != NULL ? nl + 1 : end;
			continue;
		}
		h->name = p;
		h->name_len = name_length(p, colon);
		h->value = p + colon + 1;
		/* continuation lines start with WSP */
		const char *q = nl != NULL ? nl + 1 : end;
		const char *value_end = p + line_len;
		while (q < end && is_wsp(*q)) {
			const char *nl2 = memchr(q, '\n', (size_t)(end - q));
			const char *le = nl2 != NULL ? nl2 : end;
			value_end = le;
			if (le > q && le[-1] == '\r')
				value_end = le - 1;
			q = nl2 != NULL ? nl2 + 1 : end;
		}
		h->value_len = (size_t)(value_end - h->value);
		*pp = q;
		return 1;
	}
	*pp = end;
	return 0;
}

void mime_header_iter_init(struct mime_header_iter *it, const char *hdr, size_t len)
{
	it->p = hdr;
	it->end = hdr + len;
}

bool mime_header_iter_next(struct mime_header_iter *it, struct mime_header *hdr_r)
{
	uint32_t flags = 0;
	bool eoh;

	if (it->p == NULL || it->p >= it->end)
		return false;
	if (header_next(&it->p, it->end, hdr_r, &flags, &eoh) == 1)
		return true;
	it->p = it->end;
	return false;
}

bool mime_header_find(const char *hdr, size_t len, const char *name, struct mime_header *hdr_r)
{
	struct mime_header_iter it;
	size_t name_len = strlen(name);

	mime_header_iter_init(&it, hdr, len);
	while (mime_header_iter_next(&it, hdr_r)) {
		if (hdr_r->name_len == name_len && strncasecmp(hdr_r->name, name, name_len) == 0)
			return true;
	}
	return false;
}

/* --- Address lists (RFC 5322 3.4, with the obsolete syntax of 4.4) --- */

struct addr_state {
	struct arena *arena;
	struct mime_address *first, **tail;
	unsigned int count;
	bool in_group;
	/* the address being read */
	struct str phrase;  /* words, quoted strings unquoted, one space apart */
	struct str bare;    /* the same without spaces: a bare addr-spec */
	struct str comment; /* first comment, for the name */
	struct str angle;   /* inside <>: addr-spec without CFWS */
	struct str route;
	size_t angle_at;   /* position of the last '@' in angle, or SIZE_MAX */
	size_t last_chunk; /* bare offset of the last space-separated chunk */
	size_t phrase_before_last;
	bool have_comment, have_angle, space, invalid;
};

static void addr_reset(struct addr_state *st)
{
	str_truncate(&st->phrase, 0);
	str_truncate(&st->bare, 0);
	str_truncate(&st->comment, 0);
	str_truncate(&st->angle, 0);
	str_truncate(&st->route, 0);
	st->angle_at = SIZE_MAX;
	st->last_chunk = 0;
	st->phrase_before_last = 0;
	st->have_comment = st->have_angle = st->space = st->invalid = false;
}

static const char *arena_str(struct arena *a, const struct str *s)
{
	return arena_strndup(a, s->s != NULL ? s->s : "", s->len);
}

static struct mime_address *addr_emit(struct addr_state *st, enum mime_address_kind kind)
{
	if (st->count >= MIME_MAX_ADDRESSES)
		return NULL;
	struct mime_address *a = arena_alloc(st->arena, sizeof(*a));
	a->kind = kind;
	*st->tail = a;
	st->tail = &a->next;
	st->count++;
	return a;
}

static const char *trimmed_or_null(struct arena *arena, const struct str *s)
{
	size_t b = 0, e = s->len;
	while (b < e && is_wsp(s->s[b]))
		b++;
	while (e > b && is_wsp(s->s[e - 1]))
		e--;
	if (b == e)
		return NULL;
	return arena_strndup(arena, s->s + b, e - b);
}

static void addr_finish(struct addr_state *st)
{
	struct mime_address *a;

	if (st->have_angle) {
		a = addr_emit(st, MIME_ADDR_MAILBOX);
		if (a == NULL)
			goto out;
		a->name = trimmed_or_null(st->arena, &st->phrase);
		if (a->name == NULL && st->have_comment)
			a->name = trimmed_or_null(st->arena, &st->comment);
		if (st->route.len > 0)
			a->route = arena_str(st->arena, &st->route);
		if (st->angle_at != SIZE_MAX) {
			a->mailbox = arena_strndup(st->arena, st->angle.s, st->angle_at);
			a->host = arena_strndup(st->arena, st->angle.s + st->angle_at + 1,
			                        st->angle.len - st->angle_at - 1);
			if (st->angle_at == 0 || st->angle_at + 1 == st->angle.len)
				st->invalid = true;
		} else if (st->angle.len == 0) {
			/* "<>": the null address */
			a->mailbox = "";
			a->host = "";
		} else {
			a->mailbox = arena_str(st->arena, &st->angle);
			st->invalid = true;
		}
		a->invalid = st->invalid;
		goto out;
	}
	if (st->bare.len == 0)
		goto out; /* an empty list element: skip */
	a = addr_emit(st, MIME_ADDR_MAILBOX);
	if (a == NULL)
		goto out;
	const char *spec = st->bare.s;
	size_t spec_len = st->bare.len;
	if (st->last_chunk > 0 &&
	    memchr(st->bare.s + st->last_chunk, '@', st->bare.len - st->last_chunk) != NULL &&
	    memchr(st->bare.s, '@', st->last_chunk) == NULL && st->bare.s[st->last_chunk] != '@' &&
	    st->bare.s[st->last_chunk] != '.' && st->bare.s[st->last_chunk - 1] != '.') {
		/* "John Doe john@example.com": a name without <> */
		spec = st->bare.s + st->last_chunk;
		spec_len = st->bare.len - st->last_chunk;
		struct str name = STR_INIT;
		str_append(&name, st->phrase.s, st->phrase_before_last);
		a->name = trimmed_or_null(st->arena, &name);
		str_free(&name);
		st->invalid = true;
	} else if (st->have_comment) {
		a->name = trimmed_or_null(st->arena, &st->comment);
	}
	const char *at = NULL;
	for (size_t i = spec_len; i > 0; i--) {
		if (spec[i - 1] == '@') {
			at = spec + i - 1;
			break;
		}
	}
	if (at != NULL) {
		a->mailbox = arena_strndup(st->arena, spec, (size_t)(at - spec));
		a->host = arena_strndup(st->arena, at + 1, spec_len - (size_t)(at - spec) - 1);
		if (at == spec || at + 1 == spec + spec_len)
			st->invalid = true;
	} else {
		a->mailbox = arena_strndup(st->arena, spec, spec_len);
		st->invalid = true;
	}
	a->invalid = st->invalid;
out:
	addr_reset(st);
}

/* Reads a comment starting at *pp ('('), nesting and quoted-pairs included;
 * appends its text to out when out is not NULL. */
static void read_comment(const char **pp, const char *end, struct str *out)
{
	const char *p = *pp + 1;
	unsigned int depth = 1;

	while (p < end) {
		char c = *p++;
		if (c == '\\' && p < end) {
			if (out != NULL)
				str_appendc(out, *p);
			p++;
			continue;
		}
		if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth == 0)
				break;
		}
		if (out != NULL && c != '\r' && c != '\n')
			str_appendc(out, c);
	}
	*pp = p;
}

/* Reads a quoted string starting at *pp ('"'); appends its content
 * unescaped, without CR/LF. */
static void read_quoted(const char **pp, const char *end, struct str *out)
{
	const char *p = *pp + 1;

	while (p < end) {
		char c = *p++;
		if (c == '"')
			break;
		if (c == '\\' && p < end)
			c = *p++;
		if (c == '\r' || c == '\n')
			continue;
		str_appendc(out, c);
	}
	*pp = p;
}

static bool is_addr_special(char c)
{
	return c == '(' || c == ')' || c == '<' || c == '>' || c == ',' || c == ';' || c == ':' ||
	       c == '"' || is_lwsp(c);
}

static void read_angle(struct addr_state *st, const char **pp, const char *end)
{
	const char *p = *pp + 1;
	bool route_done = false, closed = false;

	st->have_angle = true;
	while (p < end) {
		char c = *p;
		if (c == '>') {
			p++;
			closed = true;
			break;
		}
		if (is_lwsp(c)) {
			p++;
		} else if (c == '(') {
			read_comment(&p, end, NULL);
		} else if (c == '"') {
			read_quoted(&p, end, &st->angle);
		} else if (c == '@' && st->angle.len == 0 && !route_done) {
			/* obs-route: "@a,@b:" before the addr-spec */
			while (p < end && *p != ':' && *p != '>') {
				if (!is_lwsp(*p))
					str_appendc(&st->route, *p);
				p++;
			}
			if (p < end && *p == ':')
				p++;
			route_done = true;
		} else {
			if (c == '@')
				st->angle_at = st->angle.len;
			str_appendc(&st->angle, c);
			p++;
		}
		if (!route_done && st->angle.len > 0)
			route_done = true;
	}
	if (!closed)
		st->invalid = true;
	*pp = p;
}

static void addr_word(struct addr_state *st, const char *w, size_t len)
{
	if (st->space && st->bare.len > 0) {
		st->last_chunk = st->bare.len;
		st->phrase_before_last = st->phrase.len;
	}
	if (st->space && st->phrase.len > 0)
		str_appendc(&st->phrase, ' ');
	str_append(&st->phrase, w, len);
	str_append(&st->bare, w, len);
	st->space = false;
}

static struct mime_address *parse_address_list(struct arena *arena, const char *value, size_t len)
{
	struct addr_state st;
	const char *p = value, *end = value + len;
	struct str word = STR_INIT;

	memset(&st, 0, sizeof(st));
	st.arena = arena;
	st.tail = &st.first;
	addr_reset(&st);
	while (p < end && st.count < MIME_MAX_ADDRESSES) {
		char c = *p;
		if (is_lwsp(c) || c == '\0') {
			st.space = true;
			p++;
		} else if (c == '(') {
			struct str *into = st.have_comment ? NULL : &st.comment;
			read_comment(&p, end, into);
			st.have_comment = true;
			st.space = true;
		} else if (c == '"') {
			str_truncate(&word, 0);
			read_quoted(&p, end, &word);
			addr_word(&st, word.s != NULL ? word.s : "", word.len);
		} else if (c == '<') {
			read_angle(&st, &p, end);
		} else if (c == ',') {
			addr_finish(&st);
			p++;
		} else if (c == ':' && !st.in_group && !st.have_angle) {
			struct mime_address *g = addr_emit(&st, MIME_ADDR_GROUP_START);
			if (g != NULL) {
				g->mailbox = st.phrase.len > 0 ? arena_str(arena, &st.phrase) : "";
			}
			addr_reset(&st);
			st.in_group = true;
			p++;
		} else if (c == ';' && st.in_group) {
			addr_finish(&st);
			addr_emit(&st, MIME_ADDR_GROUP_END);
			st.in_group = false;
			p++;
		} else if (c == ';' || c == ':' || c == '>' || c == ')') {
			st.invalid = true; /* stray special */
			p++;
		} else {
			const char *w = p;
			while (p < end && !is_addr_special(*p) && *p != '\0') {
				if (*p == '[') {
					/* domain literal: may hold spaces */
					while (p < end && *p != ']')
						p++;
					if (p < end)
						p++;
					continue;
				}
				p++;
			}
			addr_word(&st, w, (size_t)(p - w));
		}
	}
	addr_finish(&st);
	if (st.in_group)
		addr_emit(&st, MIME_ADDR_GROUP_END);
	str_free(&word);
	str_free(&st.phrase);
	str_free(&st.bare);
	str_free(&st.comment);
	str_free(&st.angle);
	str_free(&st.route);
	return st.first;
}

struct mime_address_list *mime_address_parse(const char *value, size_t len)
{
	struct mime_address_list *list = xcalloc(1, sizeof(*list));
	list->first = parse_address_list(&list->arena, value, len);
	return list;
}

const struct mime_address *mime_address_list_first(const struct mime_address_list *list)
{
	return list->first;
}

void mime_address_list_free(struct mime_address_list **list)
{
	if (*list == NULL)
		return;
	arena_free(&(*list)->arena);
	x_free(list);
}

/* --- Content-Type / Content-Disposition parameters --- */

struct raw_param {
	const char *name;
	size_t name_len; /* without the section and '*' */
	int section;     /* -1: none */
	bool encoded;    /* trailing '*' */
	struct str value;
};

static void skip_cfws(const char **pp, const char *end)
{
	const char *p = *pp;
	while (p < end) {
		if (is_lwsp(*p) || *p == '\0')
			p++;
		else if (*p == '(')
			read_comment(&p, end, NULL);
		else
			break;
	}
	*pp = p;
}

static bool is_token_char(char c)
{
	unsigned char u = (unsigned char)c;
	return u > ' ' && u < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Reads a token (RFC 2045 5.1); 8-bit bytes are tolerated. */
static size_t read_token(const char **pp, const char *end)
{
	const char *p = *pp;
	while (p < end && (is_token_char(*p) || (unsigned char)*p >= 0x80))
		p++;
	size_t n = (size_t)(p - *pp);
	*pp = p;
	return n;
}

/* Parses "; attr=value" pairs up to end into raw (at most max pieces,
 * RFC 2231 sections counted one by one). */
static unsigned int read_params(const char *p, const char *end, struct raw_param *raw,
                                unsigned int max)
{
	unsigned int n = 0;

	while (p < end && n < max) {
		skip_cfws(&p, end);
		if (p >= end)
			break;
		if (*p == ';') {
			p++;
			continue;
		}
		const char *name = p;
		size_t name_len = read_token(&p, end);
		if (name_len == 0) {
			/* junk: skip to the next ';' */
			while (p < end && *p != ';')
				p++;
			continue;
		}
		skip_cfws(&p, end);
		if (p >= end || *p != '=') {
			while (p < end && *p != ';')
				p++;
			continue;
		}
		p++;
		skip_cfws(&p, end);
		struct raw_param *r = &raw[n];
		memset(r, 0, sizeof(*r));
		if (p < end && *p == '"') {
			read_quoted(&p, end, &r->value);
		} else {
			/* a token, tolerantly: up to ';', trimmed (spaces inside
			 * unquoted file names are common) */
			const char *v = p;
			while (p < end && *p != ';')
				p++;
			const char *ve = p;
			while (ve > v && is_lwsp(ve[-1]))
				ve--;
			for (const char *q = v; q < ve; q++) {
				if (*q != '\r' && *q != '\n' && *q != '\0')
					str_appendc(&r->value, *q);
			}
		}
		str_append(&r->value, "", 0);
		/* RFC 2231: name*, name*N, name*N* */
		r->name = name;
		r->name_len = name_len;
		r->section = -1;
		if (name_len > 1 && name[name_len - 1] == '*') {
			r->encoded = true;
			r->name_len--;
		}
		const char *star = memchr(name, '*', r->name_len);
		if (star != NULL) {
			const char *d = star + 1;
			const char *de = name + r->name_len;
			int sec = 0;
			bool ok = d < de && de - d <= 3;
			for (const char *q = d; ok && q < de; q++) {
				if (*q < '0' || *q > '9')
					ok = false;
				else
					sec = sec * 10 + (*q - '0');
			}
			if (ok) {
				r->section = sec;
				r->name_len = (size_t)(star - name);
			}
		}
		n++;
	}
	return n;
}

static void percent_encode(const char *s, size_t len, struct str *out)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == '%' || c == '\'' || c == '*' || c == '"' ||
		    strchr("()<>@,;:\\/[]?=", c) != NULL) {
			str_appendc(out, '%');
			str_appendc(out, hex[c >> 4]);
			str_appendc(out, hex[c & 15]);
		} else {
			str_appendc(out, (char)c);
		}
	}
}

/* Builds the final parameter array: RFC 2231 sections joined in order,
 * values decoded to UTF-8, first occurrence of each name wins. */
static struct mime_param *build_params(struct arena *arena, struct raw_param *raw,
                                       unsigned int nraw, unsigned int *count_r)
{
	struct mime_param *params = arena_array(arena, nraw > 0 ? nraw : 1, sizeof(*params));
	bool *used = xcalloc(nraw > 0 ? nraw : 1, sizeof(bool));
	struct str rawv = STR_INIT, val = STR_INIT;
	unsigned int count = 0;

	for (unsigned int i = 0; i < nraw && count < MIME_MAX_PARAMS; i++) {
		if (used[i])
			continue;
		struct raw_param *r = &raw[i];
		char *name = arena_strndup(arena, r->name, r->name_len);
		lowercase(name);
		bool dup = false;
		for (unsigned int k = 0; k < count; k++) {
			if (strcmp(params[k].name, name) == 0)
				dup = true;
		}
		str_truncate(&rawv, 0);
		str_truncate(&val, 0);
		bool extended = false;
		if (r->section < 0) {
			used[i] = true;
			extended = r->encoded;
			str_append(&rawv, r->value.s, r->value.len);
			if (extended)
				charset_rfc2231_decode(r->value.s, r->value.len, &val);
			else
				charset_decode_header(r->value.s, r->value.len, &val);
		} else {
			/* gather sections 0, 1, 2, ... of this name */
			bool any_encoded = false;
			for (unsigned int k = i; k < nraw; k++) {
				if (!used[k] && raw[k].section >= 0 &&
				    raw[k].name_len == r->name_len &&
				    strncasecmp(raw[k].name, r->name, r->name_len) == 0 &&
				    raw[k].encoded)
					any_encoded = true;
			}
			extended = any_encoded;
			for (int sec = 0;; sec++) {
				unsigned int k;
				for (k = i; k < nraw; k++) {
					if (!used[k] && raw[k].section == sec &&
					    raw[k].name_len == r->name_len &&
					    strncasecmp(raw[k].name, r->name, r->name_len) == 0)
						break;
				}
				if (k == nraw)
					break;
				used[k] = true;
				if (extended && !raw[k].encoded)
					percent_encode(raw[k].value.s, raw[k].value.len, &rawv);
				else
					str_append(&rawv, raw[k].value.s, raw[k].value.len);
			}
			/* sections after a gap (or duplicates) are dropped */
			for (unsigned int k = i; k < nraw; k++) {
				if (raw[k].section >= 0 && raw[k].name_len == r->name_len &&
				    strncasecmp(raw[k].name, r->name, r->name_len) == 0)
					used[k] = true;
			}
			str_append(&rawv, "", 0);
			if (extended)
				charset_rfc2231_decode(rawv.s, rawv.len, &val);
			else
				charset_decode_header(rawv.s, rawv.len, &val);
		}
		if (dup)
			continue;
		str_append(&val, "", 0);
		str_append(&rawv, "", 0);
		struct mime_param *pm = &params[count++];
		pm->name = name;
		pm->value = arena_strndup(arena, val.s, strlen(val.s));
		pm->raw_value = arena_strndup(arena, rawv.s, strlen(rawv.s));
		pm->extended = extended;
	}
	free(used);
	str_free(&rawv);
	str_free(&val);
	*count_r = count;
	return count > 0 ? params : NULL;
}

static struct mime_param *parse_params(struct arena *arena, const char *p, const char *end,
                                       unsigned int *count_r)
{
	struct raw_param raw[MIME_MAX_PARAMS * 2];
	unsigned int n = read_params(p, end, raw, MIME_MAX_PARAMS * 2);
	struct mime_param *params = build_params(arena, raw, n, count_r);
	for (unsigned int i = 0; i < n; i++)
		str_free(&raw[i].value);
	return params;
}

/* --- The parser --- */

enum hdr_id {
	H_CONTENT_TYPE,
	H_CONTENT_TRANSFER_ENCODING,
	H_CONTENT_ID,
	H_CONTENT_DESCRIPTION,
	H_CONTENT_MD5,
	H_CONTENT_DISPOSITION,
	H_CONTENT_LANGUAGE,
	H_CONTENT_LOCATION,
	H_DATE,
	H_SUBJECT,
	H_FROM,
	H_SENDER,
	H_REPLY_TO,
	H_TO,
	H_CC,
	H_BCC,
	H_IN_REPLY_TO,
	H_MESSAGE_ID,
	H_COUNT
};

static const char *const hdr_names[H_COUNT] = {
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "content-md5",
    "content-disposition",
    "content-language",
    "content-location",
    "date",
    "subject",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "in-reply-to",
    "message-id",
};

struct hdr_slot {
	const char *value;
	size_t len;
	bool set;
};

struct parse_ctx {
	struct mime_message *msg;
	const char *data;
	size_t len;
	struct str tmp;
};

struct region {
	size_t start, end;
};

static const char *unfolded(struct parse_ctx *ctx, const struct hdr_slot *s)
{
	if (!s->set)
		return NULL;
	str_truncate(&ctx->tmp, 0);
	unfold_into(s->value, s->len, &ctx->tmp);
	return arena_strndup(&ctx->msg->arena, ctx->tmp.s, ctx->tmp.len);
}

static void parse_content_type(struct parse_ctx *ctx, struct mime_part *part,
                               const struct hdr_slot *s, bool digest)
{
	struct arena *arena = &ctx->msg->arena;

	if (s->set) {
		const char *p = s->value, *end = s->value + s->len;
		skip_cfws(&p, end);
		const char *t = p;
		size_t tl = read_token(&p, end);
		skip_cfws(&p, end);
		if (tl > 0 && p < end && *p == '/') {
			p++;
			skip_cfws(&p, end);
			const char *st = p;
			size_t stl = read_token(&p, end);
			if (stl > 0) {
				char *type = arena_strndup(arena, t, tl);
				char *subtype = arena_strndup(arena, st, stl);
				lowercase(type);
				lowercase(subtype);
				part->type = type;
				part->subtype = subtype;
				while (p < end && *p != ';')
					p++;
				part->params = parse_params(arena, p, end, &part->param_count);
				return;
			}
		}
		part->flags |= MIME_PART_F_BAD_CTYPE;
	}
	/* RFC 2045 5.2 defaults (RFC 2046 5.1.5 inside multipart/digest) */
	part->type = digest ? "message" : "text";
	part->subtype = digest ? "rfc822" : "plain";
}

static void parse_content_fields(struct parse_ctx *ctx, struct mime_part *part,
                                 const struct hdr_slot *slots, bool digest)
{
	struct arena *arena = &ctx->msg->arena;

	parse_content_type(ctx, part, &slots[H_CONTENT_TYPE], digest);
	if (slots[H_CONTENT_TRANSFER_ENCODING].set) {
		const struct hdr_slot *s = &slots[H_CONTENT_TRANSFER_ENCODING];
		const char *p = s->value, *end = s->value + s->len;
		skip_cfws(&p, end);
		const char *t = p;
		size_t tl = read_token(&p, end);
		if (tl > 0) {
			char *enc = arena_strndup(arena, t, tl);
			lowercase(enc);
			part->encoding = enc;
		}
	}
	part->id = unfolded(ctx, &slots[H_CONTENT_ID]);
	part->description = unfolded(ctx, &slots[H_CONTENT_DESCRIPTION]);
	if (part->description != NULL) {
		str_truncate(&ctx->tmp, 0);
		charset_decode_header(part->description, strlen(part->description), &ctx->tmp);
		part->description_utf8 = arena_strndup(arena, ctx->tmp.s, strlen(ctx->tmp.s));
	}
	part->md5 = unfolded(ctx, &slots[H_CONTENT_MD5]);
	if (slots[H_CONTENT_DISPOSITION].set) {
		const struct hdr_slot *s = &slots[H_CONTENT_DISPOSITION];
		const char *p = s->value, *end = s->value + s->len;
		skip_cfws(&p, end);
		const char *t = p;
		size_t tl = read_token(&p, end);
		if (tl > 0) {
			char *disp = arena_strndup(arena, t, tl);
			lowercase(disp);
			part->disposition = disp;
			while (p < end && *p != ';')
				p++;
			part->disposition_params =
			    parse_params(arena, p, end, &part->disposition_param_count);
		}
	}
	part->language = unfolded(ctx, &slots[H_CONTENT_LANGUAGE]);
	if (part->language != NULL && *part->language == '\0')
		part->language = NULL;
	if (slots[H_CONTENT_LOCATION].set) {
		/* a folded URL: whitespace is not part of it (RFC 2557 4.4.1) */
		const struct hdr_slot *s = &slots[H_CONTENT_LOCATION];
		str_truncate(&ctx->tmp, 0);
		for (size_t i = 0; i < s->len; i++) {
			if (!is_lwsp(s->value[i]) && s->value[i] != '\0')
				str_appendc(&ctx->tmp, s->value[i]);
		}
		str_append(&ctx->tmp, "", 0);
		part->location = arena_strndup(arena, ctx->tmp.s, ctx->tmp.len);
	}
}

static struct mime_address *address_field(struct parse_ctx *ctx, const struct hdr_slot *s)
{
	if (!s->set)
		return NULL;
	return parse_address_list(&ctx->msg->arena, s->value, s->len);
}

static void parse_envelope(struct parse_ctx *ctx, struct mime_part *part,
                           const struct hdr_slot *slots)
{
	struct mime_envelope *env = arena_alloc(&ctx->msg->arena, sizeof(*env));

	env->date = unfolded(ctx, &slots[H_DATE]);
	env->subject = unfolded(ctx, &slots[H_SUBJECT]);
	env->from = address_field(ctx, &slots[H_FROM]);
	env->sender = address_field(ctx, &slots[H_SENDER]);
	env->reply_to = address_field(ctx, &slots[H_REPLY_TO]);
	env->to = address_field(ctx, &slots[H_TO]);
	env->cc = address_field(ctx, &slots[H_CC]);
	env->bcc = address_field(ctx, &slots[H_BCC]);
	env->in_reply_to = unfolded(ctx, &slots[H_IN_REPLY_TO]);
	env->message_id = unfolded(ctx, &slots[H_MESSAGE_ID]);
	part->envelope = env;
}

static uint32_t scan_byte(const char *p, size_t i)
{
	unsigned char c = (unsigned char)p[i];
	if (c >= 0x80)
		return MIME_PART_F_8BIT_BODY;
	if (c == '\0')
		return MIME_PART_F_NUL;
	if (c == '\n' && (i == 0 || p[i - 1] != '\r'))
		return MIME_PART_F_BARE_LF;
	return 0;
}

static uint32_t scan_bytes(const char *p, size_t len)
{
	/* Eight bytes at a time: a word with no byte >= 0x80, no NUL and no
	 * LF (most of a text body) is passed with a few operations; the
	 * others are looked at byte by byte. (x - 0x01..) & ~x has the high
	 * bit of a byte set where x has a zero byte (false positives only
	 * above a real one, which sends the word to the slow path anyway). */
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint32_t flags = 0;
	size_t i = 0;
	while (len - i >= 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		uint64_t lf = v ^ (ones * '\n');
		if (((v | ((v - ones) & ~v) | ((lf - ones) & ~lf)) & highs) == 0) {
			i += 8;
			continue;
		}
		for (size_t end = i + 8; i < end; i++)
			flags |= scan_byte(p, i);
	}
	for (; i < len; i++)
		flags |= scan_byte(p, i);
	return flags;
}

static size_t count_lines(const char *p, size_t len)
{
	size_t n = 0;
	const char *end = p + len, *q = p;
	while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		n++;
		q++;
	}
	return n;
}

/* Reads the header of the part spanning [start, end): fills the slots with
 * the first occurrence of each interesting field and returns the offset
 * where the body starts. */
static size_t scan_header(struct parse_ctx *ctx, size_t start, size_t end, bool envelope,
                          struct hdr_slot *slots, uint32_t *flags)
{
	const char *p = ctx->data + start, *e = ctx->data + end;
	struct mime_header h;
	bool eoh = false;

	/* A MIME part that begins with a line that is neither a field nor
	 * empty has no header at all ("--b" then text at once): its body
	 * starts right there. A message keeps such lines (an mbox "From "
	 * line) as bad header lines. */
	if (!envelope && p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t line_len = (size_t)((nl != NULL ? nl : e) - p);
		if (line_len > 0 && p[line_len - 1] == '\r')
			line_len--;
		if (line_len > 0 && (is_wsp(p[0]) || field_colon(p, line_len) == 0)) {
			*flags |= MIME_PART_F_NO_BODY_SEP;
			return start;
		}
	}
	for (;;) {
		const char *before = p;
		int r = header_next(&p, e, &h, flags, &eoh);
		uint32_t f = scan_bytes(before, (size_t)(p - before));
		if (f & MIME_PART_F_8BIT_BODY)
			*flags |= MIME_PART_F_8BIT_HEADER;
		*flags |= f & (MIME_PART_F_NUL | MIME_PART_F_BARE_LF);
		if (r == 0)
			break;
		for (int i = 0; i < H_COUNT; i++) {
			if (i >= H_DATE && !envelope)
				break;
			size_t nl = strlen(hdr_names[i]);
			if (!slots[i].set && h.name_len == nl &&
			    strncasecmp(h.name, hdr_names[i], nl) == 0) {
				slots[i].value = h.value;
				slots[i].len = h.value_len;
				slots[i].set = true;
				break;
			}
		}
	}
	if (!eoh)
		*flags |= MIME_PART_F_NO_BODY_SEP;
	return (size_t)(p - ctx->data);
}

/* Splits [start, end) at lines beginning with "--boundary". Returns the
 * number of parts (regions in *regions_r, caller frees) and sets
 * *closed_r when the close-delimiter was seen. */
/* A delimiter line: "--boundary" at the start of a line, then "--" for
 * the close-delimiter. Strict: only transport padding may follow (RFC 2046
 * 5.1.1 grammar). Loose: anything may follow (the RFC's note allows prefix
 * matching). Strict matching comes first, so an inner boundary that extends
 * the outer one ("X" and "XAA", a common mailer habit) is not taken for the
 * outer delimiter; loose matching is the fallback when no line matched
 * strictly. A close-delimiter is always accepted loosely.
 * Returns 0 (no delimiter), 1 (delimiter) or 2 (close). */
static int delimiter_at(const char *data, size_t pos, size_t end, const char *boundary, size_t blen,
                        bool strict)
{
	if (end - pos < 2 + blen || data[pos] != '-' || data[pos + 1] != '-' ||
	    memcmp(data + pos + 2, boundary, blen) != 0)
		return 0;
	size_t q = pos + 2 + blen;
	bool close = end - q >= 2 && data[q] == '-' && data[q + 1] == '-';
	if (close)
		return 2; /* "--X--</html>": junk after a close is common, and safe */
	if (strict) {
		while (q < end && (data[q] == ' ' || data[q] == '\t'))
			q++;
		if (q < end && data[q] != '\r' && data[q] != '\n')
			return 0;
	}
	return 1;
}

static size_t split_multipart(const char *data, size_t start, size_t end, const char *boundary,
                              size_t blen, bool strict, struct region **regions_r, bool *closed_r)
{
	struct region *regions = NULL;
	size_t n = 0, cap = 0;
	size_t pos = start;
	size_t part_start = SIZE_MAX; /* SIZE_MAX: in the preamble */

	*closed_r = false;
	while (pos < end) {
		int delim = delimiter_at(data, pos, end, boundary, blen, strict);
		if (delim != 0) {
			bool close = delim == 2;
			if (part_start != SIZE_MAX) {
				/* the line end before the delimiter belongs to it */
				size_t pe = pos;
				if (pe > part_start && data[pe - 1] == '\n') {
					pe--;
					if (pe > part_start && data[pe - 1] == '\r')
						pe--;
				}
				if (n == cap) {
					cap = cap == 0 ? 8 : cap * 2;
					regions = xreallocarray(regions, cap, sizeof(*regions));
				}
				regions[n].start = part_start;
				regions[n].end = pe;
				n++;
			}
			const char *nl = memchr(data + pos, '\n', end - pos);
			part_start = nl != NULL ? (size_t)(nl - data) + 1 : end;
			if (close) {
				*closed_r = true;
				part_start = SIZE_MAX;
				break;
			}
			pos = part_start;
			continue;
		}
		const char *nl = memchr(data + pos, '\n', end - pos);
		if (nl == NULL)
			break;
		pos = (size_t)(nl - data) + 1;
	}
	if (part_start != SIZE_MAX) {
		if (n == cap) {
			cap = cap == 0 ? 1 : cap * 2;
			regions = xreallocarray(regions, cap, sizeof(*regions));
		}
		regions[n].start = part_start;
		regions[n].end = end;
		n++;
	}
	*regions_r = regions;
	return n;
}

static bool encoding_is_identity(const char *enc)
{
	return enc == NULL || strcmp(enc, "7bit") == 0 || strcmp(enc, "8bit") == 0 ||
	       strcmp(enc, "binary") == 0;
}

static struct mime_part *parse_part(struct parse_ctx *ctx, struct mime_part *parent, size_t start,
                                    size_t end, unsigned int depth, bool digest, bool message)
{
	struct mime_message *msg = ctx->msg;
	struct mime_part *part = arena_alloc(&msg->arena, sizeof(*part));
	struct hdr_slot slots[H_COUNT];

	msg->part_count++;
	part->parent = parent;
	part->depth = depth;
	memset(slots, 0, sizeof(slots));
	part->header_start = start;
	part->body_start = scan_header(ctx, start, end, message, slots, &part->flags);
	part->header_len = part->body_start - start;
	part->body_len = end - part->body_start;
	part->body_lines = count_lines(ctx->data + part->body_start, part->body_len);
	parse_content_fields(ctx, part, slots, digest);
	if (message)
		parse_envelope(ctx, part, slots);

	const char *body = ctx->data + part->body_start;
	if (strcmp(part->type, "multipart") == 0) {
		const char *boundary = mime_part_param(part, "boundary");
		size_t blen = boundary != NULL ? strlen(boundary) : 0;
		if (blen == 0 || blen > 998) {
			part->flags |= MIME_PART_F_NO_BOUNDARY;
		} else if (depth >= MIME_MAX_DEPTH || msg->part_count >= MIME_MAX_PARTS) {
			part->flags |= MIME_PART_F_LIMIT;
		} else {
			struct region *regions;
			bool closed;
			size_t n = split_multipart(ctx->data, part->body_start, end, boundary, blen,
			                           true, &regions, &closed);
			if (n == 0) {
				free(regions);
				n = split_multipart(ctx->data, part->body_start, end, boundary,
				                    blen, false, &regions, &closed);
			}
			if (!closed)
				part->flags |= MIME_PART_F_NO_END_BOUNDARY;
			bool child_digest = strcmp(part->subtype, "digest") == 0;
			struct mime_part **tail = &part->children;
			for (size_t i = 0; i < n; i++) {
				if (msg->part_count >= MIME_MAX_PARTS) {
					part->flags |= MIME_PART_F_LIMIT;
					break;
				}
				struct mime_part *child =
				    parse_part(ctx, part, regions[i].start, regions[i].end,
				               depth + 1, child_digest, false);
				*tail = child;
				tail = &child->next;
				part->child_count++;
			}
			free(regions);
		}
	} else if (strcmp(part->type, "message") == 0 &&
	           (strcmp(part->subtype, "rfc822") == 0 || strcmp(part->subtype, "global") == 0) &&
	           encoding_is_identity(part->encoding)) {
		if (depth >= MIME_MAX_DEPTH || msg->part_count >= MIME_MAX_PARTS) {
			part->flags |= MIME_PART_F_LIMIT;
		} else {
			part->children =
			    parse_part(ctx, part, part->body_start, end, depth + 1, false, true);
			part->child_count = 1;
		}
	}
	if (part->children == NULL)
		part->flags |= scan_bytes(body, part->body_len);
	return part;
}

struct mime_message *mime_parse(const char *data, size_t len)
{
	struct mime_message *msg = xcalloc(1, sizeof(*msg));
	struct parse_ctx ctx = {.msg = msg, .data = data != NULL ? data : "", .len = len};

	if (data == NULL)
		len = 0;
	msg->size = len;
	msg->root = parse_part(&ctx, NULL, 0, len, 0, false, true);
	str_free(&ctx.tmp);
	return msg;
}

void mime_message_free(struct mime_message **msg)
{
	if (*msg == NULL)
		return;
	arena_free(&(*msg)->arena);
	x_free(msg);
}

const struct mime_part *mime_message_root(const struct mime_message *msg)
{
	return msg->root;
}

unsigned int mime_message_part_count(const struct mime_message *msg)
{
	return msg->part_count;
}

size_t mime_message_size(const struct mime_message *msg)
{
	return msg->size;
}

const struct mime_part *mime_part_next(const struct mime_part *part)
{
	if (part->children != NULL)
		return part->children;
	while (part != NULL) {
		if (part->next != NULL)
			return part->next;
		part = part->parent;
	}
	return NULL;
}

bool mime_part_is_multipart(const struct mime_part *part)
{
	return part->children != NULL && strcmp(part->type, "multipart") == 0;
}

bool mime_part_is_message(const struct mime_part *part)
{
	return part->children != NULL && strcmp(part->type, "message") == 0 &&
	       (strcmp(part->subtype, "rfc822") == 0 || strcmp(part->subtype, "global") == 0);
}

static const char *find_param(const struct mime_param *params, unsigned int count, const char *name)
{
	for (unsigned int i = 0; i < count; i++) {
		if (strcmp(params[i].name, name) == 0)
			return params[i].value;
	}
	return NULL;
}

const char *mime_part_param(const struct mime_part *part, const char *name)
{
	return find_param(part->params, part->param_count, name);
}

const char *mime_part_disposition_param(const struct mime_part *part, const char *name)
{
	return find_param(part->disposition_params, part->disposition_param_count, name);
}

const char *mime_part_charset(const struct mime_part *part)
{
	const char *cs = mime_part_param(part, "charset");
	return cs != NULL && *cs != '\0' ? cs : "us-ascii";
}

const char *mime_part_filename(const struct mime_part *part)
{
	const char *f = mime_part_disposition_param(part, "filename");
	if (f == NULL || *f == '\0')
		f = mime_part_param(part, "name");
	return f != NULL && *f != '\0' ? f : NULL;
}

bool mime_part_is_attachment(const struct mime_part *part)
{
	if (part->disposition != NULL && strcmp(part->disposition, "attachment") == 0)
		return true;
	if (part->disposition != NULL && strcmp(part->disposition, "inline") == 0)
		return false;
	return mime_part_filename(part) != NULL && strcmp(part->type, "text") != 0 &&
	       part->children == NULL;
}

/* --- Body access --- */

static bool body_bytes(const char *data, size_t len, const struct mime_part *part,
                       const char **body_r, size_t *body_len_r)
{
	if (data == NULL || part->body_start > len) {
		*body_r = "";
		*body_len_r = 0;
		return false;
	}
	*body_r = data + part->body_start;
	*body_len_r =
	    part->body_len <= len - part->body_start ? part->body_len : len - part->body_start;
	return *body_len_r == part->body_len;
}

int mime_part_decode_body(const char *data, size_t len, const struct mime_part *part,
                          struct str *out)
{
	const char *body;
	size_t body_len;
	int ret = body_bytes(data, len, part, &body, &body_len) ? 0 : 1;

	str_append(out, "", 0);
	if (part->children != NULL || encoding_is_identity(part->encoding)) {
		str_append(out, body, body_len);
		return ret;
	}
	if (strcmp(part->encoding, "base64") == 0)
		return charset_base64_decode(body, body_len, out) | ret;
	if (strcmp(part->encoding, "quoted-printable") == 0)
		return charset_qp_decode(body, body_len, out) | ret;
	str_append(out, body, body_len);
	return -1;
}

int mime_part_text_utf8(const char *data, size_t len, const struct mime_part *part, struct str *out)
{
	struct str raw = STR_INIT;
	int ret = mime_part_decode_body(data, len, part, &raw);
	int r2 = charset_to_utf8(mime_part_charset(part), raw.s, raw.len, out);
	str_free(&raw);
	return ret != 0 || r2 != 0 ? 1 : 0;
}

int mime_part_plain_text(const char *data, size_t len, const struct mime_part *part,
                         struct str *out, html_link_callback *link, void *context)
{
	str_append(out, "", 0);
	if (part->children != NULL || strcmp(part->type, "text") != 0)
		return 0;
	if (strcmp(part->subtype, "html") != 0)
		return mime_part_text_utf8(data, len, part, out);
	struct str html = STR_INIT;
	int ret = mime_part_text_utf8(data, len, part, &html);
	html_to_text(html.s, html.len, out, link, context);
	str_free(&html);
	return ret;
}

void mime_crlf_normalize(const char *in, size_t len, struct str *out)
{
	str_reserve(out, len + len / 32);
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) {
			str_append(out, in + run, i - run);
			str_append(out, "\r\n", 2);
			run = i + 1;
		} else if (in[i] == '\r' && (i + 1 == len || in[i + 1] != '\n')) {
			str_append(out, in + run, i - run);
			str_append(out, "\r\n", 2);
			run = i + 1;
		}
	}
	str_append(out, in + run, len - run);
}

/* --- The cached parse ---
 * Layout: "CVMP" 0x01, varint size, varint part_count, the parts in
 * pre-order, then an FNV-1a 64 checksum (8 bytes little-endian) of all
 * that precedes it. A part: varints header_start, header_len, body_len,
 * body_lines, flags, child_count; strings type, subtype, encoding, id,
 * description, description_utf8, md5, disposition, language, location;
 * params; disposition params; a byte 0/1 and, if 1, the envelope. A string
 * is varint (length + 1) and the bytes, or varint 0 for NULL. */

#define CACHE_MAGIC "CVMP\x01"
#define CACHE_MAGIC_LEN 5

uint64_t mime_cache_checksum(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void put_varint(struct str *out, uint64_t v)
{
	while (v >= 0x80) {
		str_appendc(out, (char)(v | 0x80));
		v >>= 7;
	}
	str_appendc(out, (char)v);
}

static void put_string(struct str *out, const char *s)
{
	if (s == NULL) {
		put_varint(out, 0);
		return;
	}
	size_t n = strlen(s);
	put_varint(out, (uint64_t)n + 1);
	str_append(out, s, n);
}

static void put_params(struct str *out, const struct mime_param *params, unsigned int count)
{
	put_varint(out, count);
	for (unsigned int i = 0; i < count; i++) {
		put_string(out, params[i].name);
		put_string(out, params[i].value);
		put_string(out, params[i].raw_value);
		str_appendc(out, params[i].extended ? 1 : 0);
	}
}

static void put_addresses(struct str *out, const struct mime_address *a)
{
	uint64_t n = 0;
	for (const struct mime_address *p = a; p != NULL; p = p->next)
		n++;
	put_varint(out, n);
	for (; a != NULL; a = a->next) {
		str_appendc(out, (char)a->kind);
		str_appendc(out, a->invalid ? 1 : 0);
		put_string(out, a->name);
		put_string(out, a->route);
		put_string(out, a->mailbox);
		put_string(out, a->host);
	}
}

static void put_part(struct str *out, const struct mime_part *part)
{
	put_varint(out, part->header_start);
	put_varint(out, part->header_len);
	put_varint(out, part->body_len);
	put_varint(out, part->body_lines);
	put_varint(out, part->flags);
	put_varint(out, part->child_count);
	put_string(out, part->type);
	put_string(out, part->subtype);
	put_string(out, part->encoding);
	put_string(out, part->id);
	put_string(out, part->description);
	put_string(out, part->description_utf8);
	put_string(out, part->md5);
	put_string(out, part->disposition);
	put_string(out, part->language);
	put_string(out, part->location);
	put_params(out, part->params, part->param_count);
	put_params(out, part->disposition_params, part->disposition_param_count);
	const struct mime_envelope *env = part->envelope;
	str_appendc(out, env != NULL ? 1 : 0);
	if (env != NULL) {
		put_string(out, env->date);
		put_string(out, env->subject);
		put_string(out, env->in_reply_to);
		put_string(out, env->message_id);
		put_addresses(out, env->from);
		put_addresses(out, env->sender);
		put_addresses(out, env->reply_to);
		put_addresses(out, env->to);
		put_addresses(out, env->cc);
		put_addresses(out, env->bcc);
	}
	for (const struct mime_part *c = part->children; c != NULL; c = c->next)
		put_part(out, c);
}

void mime_cache_build(const struct mime_message *msg, struct str *out)
{
	size_t start = out->len;

	str_append(out, CACHE_MAGIC, CACHE_MAGIC_LEN);
	put_varint(out, msg->size);
	put_varint(out, msg->part_count);
	put_part(out, msg->root);
	uint64_t h = mime_cache_checksum(out->s + start, out->len - start);
	for (int i = 0; i < 8; i++)
		str_appendc(out, (char)(h >> (8 * i)));
}

void mime_cache_from_message(const char *data, size_t len, struct str *out)
{
	struct mime_message *msg = mime_parse(data, len);
	mime_cache_build(msg, out);
	mime_message_free(&msg);
}

struct cache_reader {
	const unsigned char *p, *end;
	struct mime_message *msg;
	unsigned int parts_left;
	const char *error;
};

static bool get_varint(struct cache_reader *r, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	for (unsigned int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->error = "truncated cache";
			return false;
		}
		unsigned char c = *r->p++;
		if (shift == 63 && (c & 0x7e) != 0)
			break;
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0) {
			if (v > max) {
				r->error = "value out of range in cache";
				return false;
			}
			*v_r = v;
			return true;
		}
	}
	r->error = "bad number in cache";
	return false;
}

static bool get_byte(struct cache_reader *r, unsigned int max, unsigned int *v_r)
{
	if (r->p >= r->end) {
		r->error = "truncated cache";
		return false;
	}
	if (*r->p > max) {
		r->error = "bad flag byte in cache";
		return false;
	}
	*v_r = *r->p++;
	return true;
}

static bool get_string(struct cache_reader *r, bool utf8, const char **s_r)
{
	uint64_t n;
	if (!get_varint(r, (uint64_t)(r->end - r->p) + 1, &n))
		return false;
	if (n == 0) {
		*s_r = NULL;
		return true;
	}
	size_t len = (size_t)(n - 1);
	if (memchr(r->p, '\0', len) != NULL || (utf8 && !utf8_is_valid((const char *)r->p, len))) {
		r->error = "bad string in cache";
		return false;
	}
	*s_r = arena_strndup(&r->msg->arena, (const char *)r->p, len);
	r->p += len;
	return true;
}

static bool get_params(struct cache_reader *r, struct mime_param **params_r, unsigned int *count_r)
{
	uint64_t n;
	if (!get_varint(r, MIME_MAX_PARAMS, &n))
		return false;
	*count_r = (unsigned int)n;
	*params_r = NULL;
	if (n == 0)
		return true;
	struct mime_param *params = arena_array(&r->msg->arena, (size_t)n, sizeof(*params));
	for (uint64_t i = 0; i < n; i++) {
		unsigned int ext;
		if (!get_string(r, false, &params[i].name) ||
		    !get_string(r, true, &params[i].value) ||
		    !get_string(r, false, &params[i].raw_value) || !get_byte(r, 1, &ext))
			return false;
		if (params[i].name == NULL || params[i].value == NULL ||
		    params[i].raw_value == NULL) {
			r->error = "missing parameter in cache";
			return false;
		}
		params[i].extended = ext != 0;
	}
	*params_r = params;
	return true;
}

static bool get_addresses(struct cache_reader *r, struct mime_address **first_r)
{
	uint64_t n;
	struct mime_address **tail = first_r;

	*first_r = NULL;
	if (!get_varint(r, MIME_MAX_ADDRESSES, &n))
		return false;
	for (uint64_t i = 0; i < n; i++) {
		struct mime_address *a = arena_alloc(&r->msg->arena, sizeof(*a));
		unsigned int kind, invalid;
		if (!get_byte(r, MIME_ADDR_GROUP_END, &kind) || !get_byte(r, 1, &invalid) ||
		    !get_string(r, false, &a->name) || !get_string(r, false, &a->route) ||
		    !get_string(r, false, &a->mailbox) || !get_string(r, false, &a->host))
			return false;
		a->kind = (enum mime_address_kind)kind;
		a->invalid = invalid != 0;
		*tail = a;
		tail = &a->next;
	}
	return true;
}

static struct mime_part *get_part(struct cache_reader *r, struct mime_part *parent,
                                  unsigned int depth)
{
	struct mime_part *part = arena_alloc(&r->msg->arena, sizeof(*part));
	uint64_t hs, hl, bl, lines, flags, children;
	size_t size = r->msg->size;

	if (r->parts_left == 0) {
		r->error = "too many parts in cache";
		return NULL;
	}
	r->parts_left--;
	/* a message root is one level below its message/rfc822 part */
	if (depth > MIME_MAX_DEPTH) {
		r->error = "cache nested too deeply";
		return NULL;
	}
	part->parent = parent;
	part->depth = depth;
	if (!get_varint(r, size, &hs) || !get_varint(r, size - hs, &hl) ||
	    !get_varint(r, size - hs - hl, &bl) || !get_varint(r, bl + 1, &lines) ||
	    !get_varint(r, UINT32_MAX, &flags) || !get_varint(r, MIME_MAX_PARTS, &children))
		return NULL;
	part->header_start = (size_t)hs;
	part->header_len = (size_t)hl;
	part->body_start = (size_t)(hs + hl);
	part->body_len = (size_t)bl;
	part->body_lines = (size_t)lines;
	part->flags = (uint32_t)flags;
	part->child_count = (unsigned int)children;
	if (!get_string(r, false, &part->type) || !get_string(r, false, &part->subtype) ||
	    !get_string(r, false, &part->encoding) || !get_string(r, false, &part->id) ||
	    !get_string(r, false, &part->description) ||
	    !get_string(r, true, &part->description_utf8) || !get_string(r, false, &part->md5) ||
	    !get_string(r, false, &part->disposition) || !get_string(r, false, &part->language) ||
	    !get_string(r, false, &part->location))
		return NULL;
	if (part->type == NULL || part->subtype == NULL) {
		r->error = "part without a type in cache";
		return NULL;
	}
	if (!get_params(r, &part->params, &part->param_count) ||
	    !get_params(r, &part->disposition_params, &part->disposition_param_count))
		return NULL;
	unsigned int has_env;
	if (!get_byte(r, 1, &has_env))
		return NULL;
	if (has_env) {
		struct mime_envelope *env = arena_alloc(&r->msg->arena, sizeof(*env));
		if (!get_string(r, false, &env->date) || !get_string(r, false, &env->subject) ||
		    !get_string(r, false, &env->in_reply_to) ||
		    !get_string(r, false, &env->message_id) || !get_addresses(r, &env->from) ||
		    !get_addresses(r, &env->sender) || !get_addresses(r, &env->reply_to) ||
		    !get_addresses(r, &env->to) || !get_addresses(r, &env->cc) ||
		    !get_addresses(r, &env->bcc))
			return NULL;
		part->envelope = env;
	}
	if (children > 0 && strcmp(part->type, "multipart") != 0 &&
	    (strcmp(part->type, "message") != 0 || children != 1)) {
		r->error = "children under a single part in cache";
		return NULL;
	}
	struct mime_part **tail = &part->children;
	for (uint64_t i = 0; i < children; i++) {
		struct mime_part *c = get_part(r, part, depth + 1);
		if (c == NULL)
			return NULL;
		*tail = c;
		tail = &c->next;
	}
	return part;
}

int mime_cache_load(const void *cache, size_t len, struct mime_message **msg_r,
                    const char **error_r)
{
	const unsigned char *p = cache;
	struct cache_reader r;
	uint64_t size, count;

	*msg_r = NULL;
	if (len < CACHE_MAGIC_LEN + 8 || memcmp(p, CACHE_MAGIC, CACHE_MAGIC_LEN) != 0) {
		*error_r = "not a parse cache (or an unknown version)";
		return -1;
	}
	uint64_t want = 0;
	for (int i = 0; i < 8; i++)
		want |= (uint64_t)p[len - 8 + i] << (8 * i);
	if (mime_cache_checksum(p, len - 8) != want) {
		*error_r = "parse cache checksum mismatch";
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.p = p + CACHE_MAGIC_LEN;
	r.end = p + len - 8;
	r.msg = xcalloc(1, sizeof(*r.msg));
	if (!get_varint(&r, SIZE_MAX / 2, &size) || !get_varint(&r, MIME_MAX_PARTS, &count))
		goto fail;
	if (count == 0) {
		r.error = "empty parse cache";
		goto fail;
	}
	r.msg->size = (size_t)size;
	r.msg->part_count = (unsigned int)count;
	r.parts_left = (unsigned int)count;
	r.msg->root = get_part(&r, NULL, 0);
	if (r.msg->root == NULL)
		goto fail;
	if (r.parts_left != 0 || r.p != r.end) {
		r.error = "trailing data in parse cache";
		goto fail;
	}
	*msg_r = r.msg;
	return 0;
fail:
	*error_r = r.error != NULL ? r.error : "corrupt parse cache";
	mime_message_free(&r.msg);
	return -1;
}
