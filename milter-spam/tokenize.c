/* The tokenizer (see tokenize.h). Every feature is "prefix:word" so that
 * the same word in Subject and in the body count separately, as in
 * SpamBayes. */
#include "config.h"

#include "charset.h"
#include "html.h"
#include "tokenize.h"
#include "utf8.h"
#include "xalloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Words shorter than this (in code points) carry no signal; non-ASCII
 * words (Vietnamese syllables such as "là", "về") count from 2. */
#define MIN_WORD_ASCII 3
#define MIN_WORD_OTHER 2
#define MAX_WORD 20
#define MAX_URL_PIECES 8
#define MAX_ADDRESSES_PER_HEADER 8
#define MAX_RECEIVED 8

struct tk {
	tokenize_callback *cb;
	void *ctx;
	size_t text_budget;
	struct str fold; /* scratch for case folding */
	struct str tmp;  /* scratch for decoding */
	struct str tmp2;
};

static void emit2(struct tk *t, const char *prefix, const char *word, size_t wlen)
{
	char buf[TOKENIZE_MAX_TOKEN + 32];
	size_t pl = strlen(prefix);
	if (pl > 31)
		pl = 31;
	if (wlen > TOKENIZE_MAX_TOKEN)
		wlen = TOKENIZE_MAX_TOKEN;
	memcpy(buf, prefix, pl);
	memcpy(buf + pl, word, wlen);
	t->cb(t->ctx, buf, pl + wlen);
}

static void emit_lower(struct tk *t, const char *prefix, const char *word, size_t wlen)
{
	char buf[TOKENIZE_MAX_TOKEN];
	if (wlen > sizeof(buf))
		wlen = sizeof(buf);
	for (size_t i = 0; i < wlen; i++) {
		unsigned char c = (unsigned char)word[i];
		buf[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	emit2(t, prefix, buf, wlen);
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v' || c == 0;
}

static bool is_trim(unsigned char c)
{
	switch (c) {
	case '.':
	case ',':
	case ';':
	case ':':
	case '"':
	case '\'':
	case '(':
	case ')':
	case '[':
	case ']':
	case '{':
	case '}':
	case '<':
	case '>':
	case '*':
	case '`':
	case '|':
		return true;
	default:
		return false;
	}
}

static void url_features(struct tk *t, const char *url, size_t len);

static bool is_cjk(uint32_t cp)
{
	return (cp >= 0x3040 && cp <= 0x30ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
	       (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7af) ||
	       (cp >= 0xf900 && cp <= 0xfaff);
}

/* Chinese, Japanese and Korean text has no spaces between words: it is
 * counted as overlapping pairs of characters, the usual way of indexing
 * it. Returns false when the word has no CJK character. */
static bool cjk_pairs(struct tk *t, const char *w, size_t n)
{
	size_t i = 0, prev_start = 0, prev_len = 0;
	int pairs = 0;
	bool any = false;
	while (i < n && pairs < 200) {
		uint32_t cp;
		size_t l = utf8_decode(w + i, n - i, &cp);
		if (is_cjk(cp)) {
			any = true;
			if (prev_len > 0) {
				emit2(t, "cjk:", w + prev_start, prev_len + l);
				pairs++;
			}
			prev_start = i;
			prev_len = l;
		} else {
			prev_len = 0;
		}
		i += l;
	}
	return any;
}

/* One whitespace-separated word. */
static void word(struct tk *t, const char *prefix, const char *w, size_t n)
{
	while (n > 0 && is_trim((unsigned char)w[0])) {
		w++;
		n--;
	}
	while (n > 0 && is_trim((unsigned char)w[n - 1]))
		n--;
	if (n == 0)
		return;
	if ((n > 7 && strncasecmp(w, "http://", 7) == 0) ||
	    (n > 8 && strncasecmp(w, "https://", 8) == 0) ||
	    (n > 4 && strncasecmp(w, "www.", 4) == 0)) {
		url_features(t, w, n);
		return;
	}
	bool ascii = true;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)w[i] >= 0x80) {
			ascii = false;
			break;
		}
	}
	size_t cps;
	const char *f;
	size_t flen;
	if (ascii) {
		cps = n;
		if (cps < MIN_WORD_ASCII)
			return;
		if (cps > MAX_WORD)
			goto skip;
		emit_lower(t, prefix, w, n);
		return;
	}
	if (cjk_pairs(t, w, n))
		return;
	str_truncate(&t->fold, 0);
	utf8_casefold(w, n, &t->fold);
	f = t->fold.s;
	flen = t->fold.len;
	cps = 0;
	for (size_t i = 0; i < flen; i++)
		if (((unsigned char)f[i] & 0xc0) != 0x80)
			cps++;
	if (cps < MIN_WORD_OTHER)
		return;
	if (cps > MAX_WORD || flen > TOKENIZE_MAX_TOKEN)
		goto skip;
	emit2(t, prefix, f, flen);
	return;
skip : {
	/* SpamBayes' "skip" feature: long runs (base64 junk, CJK text
	 * without spaces) by first byte and length in tens. */
	char buf[48];
	int k = snprintf(buf, sizeof(buf), "skip:%c %zu", w[0] & 0x7f ? w[0] : '?', (n / 10) * 10);
	if (k > 0 && (size_t)k < sizeof(buf))
		t->cb(t->ctx, buf, (size_t)k);
}
}

/* Splits text into words at whitespace (ASCII and U+00A0). */
static void words(struct tk *t, const char *prefix, const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (is_space((unsigned char)s[i]) ||
		                   ((unsigned char)s[i] == 0xc2 && i + 1 < len &&
		                    (unsigned char)s[i + 1] == 0xa0))) {
			i += (unsigned char)s[i] == 0xc2 ? 2 : 1;
		}
		size_t start = i;
		while (i < len && !is_space((unsigned char)s[i]) &&
		       !((unsigned char)s[i] == 0xc2 && i + 1 < len &&
		         (unsigned char)s[i + 1] == 0xa0))
			i++;
		if (i > start)
			word(t, prefix, s + start, i - start);
	}
}

static bool all_digits_dots(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '.' || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return n > 0;
}

/* "url:" features of a link: scheme, each domain suffix of its host, and
 * the pieces of its path. */
static void url_features(struct tk *t, const char *url, size_t len)
{
	const char *p = url, *end = url + len;
	const char *colon = memchr(p, ':', len > 12 ? 12 : len);
	if (colon != NULL && colon + 2 < end && colon[1] == '/' && colon[2] == '/') {
		emit_lower(t, "proto:", p, (size_t)(colon - p));
		p = colon + 3;
	} else if (len >= 7 && strncasecmp(p, "mailto:", 7) == 0) {
		emit2(t, "proto:", "mailto", 6);
		return;
	} else if (colon != NULL) {
		emit_lower(t, "proto:", p, (size_t)(colon - p));
		return;
	}
	const char *host = p;
	while (p < end && *p != '/' && *p != '?' && *p != '#' && *p != ':')
		p++;
	size_t hl = (size_t)(p - host);
	const char *at = memchr(host, '@', hl);
	if (at != NULL) {
		emit2(t, "url:", "userinfo", 8);
		hl -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	if (hl == 0)
		return;
	if (all_digits_dots(host, hl)) {
		emit2(t, "url:", "ip", 2);
	} else {
		/* Suffixes with at least two labels: a.b.example.com gives
		 * a.b.example.com, b.example.com, example.com. */
		const char *h = host;
		size_t n = hl;
		for (int i = 0; i < 6 && n > 0; i++) {
			const char *dot = memchr(h, '.', n);
			if (dot == NULL)
				break;
			emit_lower(t, "url:", h, n);
			n -= (size_t)(dot + 1 - h);
			h = dot + 1;
			if (memchr(h, '.', n) == NULL)
				break;
		}
	}
	int pieces = 0;
	while (p < end && pieces < MAX_URL_PIECES) {
		while (p < end && strchr("/?#&=.:-_%+~", *p) != NULL)
			p++;
		const char *s = p;
		while (p < end && strchr("/?#&=.:-_%+~", *p) == NULL)
			p++;
		size_t n = (size_t)(p - s);
		if (n >= 3 && n <= MAX_WORD) {
			emit_lower(t, "url:", s, n);
			pieces++;
		}
	}
}

static void link_cb(void *context, enum html_link_kind kind, const char *url, size_t len)
{
	struct tk *t = context;
	if (kind == HTML_LINK_SRC)
		emit2(t, "html:", "src", 3);
	else if (kind == HTML_LINK_ACTION)
		emit2(t, "html:", "form", 4);
	url_features(t, url, len);
}

/* ---- headers ---- */

static void addresses(struct tk *t, const char *prefix, const char *value, size_t len)
{
	struct mime_address_list *list = mime_address_parse(value, len);
	int n = 0;
	char pre[40];
	for (const struct mime_address *a = mime_address_list_first(list);
	     a != NULL && n < MAX_ADDRESSES_PER_HEADER; a = a->next) {
		if (a->kind != MIME_ADDR_MAILBOX)
			continue;
		n++;
		if (a->host != NULL) {
			snprintf(pre, sizeof(pre), "%sdom:", prefix);
			emit_lower(t, pre, a->host, strlen(a->host));
		} else {
			snprintf(pre, sizeof(pre), "%s", prefix);
			emit2(t, pre, "nodomain", 8);
		}
		if (a->invalid) {
			snprintf(pre, sizeof(pre), "%s", prefix);
			emit2(t, pre, "invalid", 7);
		}
		if (a->name != NULL && prefix[0] == 'f') {
			str_truncate(&t->tmp2, 0);
			charset_decode_header(a->name, strlen(a->name), &t->tmp2);
			snprintf(pre, sizeof(pre), "%sname:", prefix);
			words(t, pre, t->tmp2.s, t->tmp2.len);
		}
		if (a->mailbox != NULL && prefix[0] == 'f') {
			snprintf(pre, sizeof(pre), "%suser:", prefix);
			emit_lower(t, pre, a->mailbox, strlen(a->mailbox));
		}
	}
	if (prefix[0] == 't' || prefix[0] == 'c') {
		int count = 0;
		for (const struct mime_address *a = mime_address_list_first(list); a != NULL;
		     a = a->next)
			if (a->kind == MIME_ADDR_MAILBOX)
				count++;
		char buf[32];
		int k = snprintf(buf, sizeof(buf), "%d", count > 10 ? 10 : count);
		snprintf(pre, sizeof(pre), "%scount:", prefix);
		emit2(t, pre, buf, (size_t)k);
	}
	mime_address_list_free(&list);
}

static void received(struct tk *t, const char *v, size_t len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && strchr(" \t\r\n()[];,=", v[i]) != NULL)
			i++;
		size_t s = i;
		while (i < len && strchr(" \t\r\n()[];,=", v[i]) == NULL)
			i++;
		size_t n = i - s;
		if (n < 4 || n > 60 || memchr(v + s, '.', n) == NULL)
			continue;
		if (all_digits_dots(v + s, n)) {
			/* The /24 of an address: the sender's network. */
			const char *last = v + s + n;
			while (last > v + s && last[-1] != '.')
				last--;
			if (last > v + s + 1)
				emit2(t, "received:", v + s, (size_t)(last - 1 - (v + s)));
		} else if (memchr(v + s, '@', n) == NULL) {
			/* Host names: the last two labels. */
			const char *e = v + s + n, *q = e;
			int dots = 0;
			while (q > v + s) {
				if (q[-1] == '.' && ++dots == 2)
					break;
				q--;
			}
			emit_lower(t, "received:", q, (size_t)(e - q));
		}
	}
}

static void header_features(struct tk *t, const char *hdr, size_t hlen)
{
	struct mime_header_iter it;
	struct mime_header h;
	int n_received = 0;
	mime_header_iter_init(&it, hdr, hlen);
	while (mime_header_iter_next(&it, &h)) {
		if (h.name_len == 0 || h.name_len > 40)
			continue;
		emit_lower(t, "hdr:", h.name, h.name_len);
		str_truncate(&t->tmp, 0);
#define IS(x) (h.name_len == sizeof(x) - 1 && strncasecmp(h.name, x, h.name_len) == 0)
		if (IS("subject")) {
			mime_header_unfold(h.value, h.value_len, &t->tmp);
			str_truncate(&t->tmp2, 0);
			charset_decode_header(t->tmp.s, t->tmp.len, &t->tmp2);
			/* Spam shouts: keep the "!!!" and "$" runs whole. */
			words(t, "subject:", t->tmp2.s, t->tmp2.len);
		} else if (IS("from")) {
			addresses(t, "from:", h.value, h.value_len);
		} else if (IS("reply-to")) {
			addresses(t, "reply-to:", h.value, h.value_len);
		} else if (IS("to")) {
			addresses(t, "to:", h.value, h.value_len);
		} else if (IS("cc")) {
			addresses(t, "cc:", h.value, h.value_len);
		} else if (IS("x-mailer") || IS("user-agent")) {
			mime_header_unfold(h.value, h.value_len, &t->tmp);
			emit_lower(t, "mailer:", t->tmp.s, t->tmp.len > 40 ? 40 : t->tmp.len);
		} else if (IS("message-id")) {
			mime_header_unfold(h.value, h.value_len, &t->tmp);
			const char *at = memchr(t->tmp.s, '@', t->tmp.len);
			if (at == NULL) {
				emit2(t, "msgid:", "noat", 4);
			} else {
				size_t n = t->tmp.len - (size_t)(at + 1 - t->tmp.s);
				if (n > 0 && at[n] == '>')
					n--;
				emit_lower(t, "msgid:", at + 1, n);
			}
		} else if (IS("date")) {
			/* The zone of the sender's clock, and whether the form is the
			 * usual one (spamware writes odd dates). */
			mime_header_unfold(h.value, h.value_len, &t->tmp);
			const char *v = t->tmp.s;
			size_t n = t->tmp.len;
			size_t k = n;
			while (k > 0 && v[k - 1] != ' ')
				k--;
			emit2(t, "date:tz:", v + k, n - k > 12 ? 12 : n - k);
			char shape[40];
			size_t sl = 0;
			for (size_t i = 0; i < n && sl + 1 < sizeof(shape); i++) {
				char c = v[i];
				char cls = c >= '0' && c <= '9'                               ? '9'
				           : (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? 'a'
				                                                              : c;
				if (sl == 0 || shape[sl - 1] != cls)
					shape[sl++] = cls;
			}
			emit2(t, "date:shape:", shape, sl);
		} else if (IS("received")) {
			if (n_received++ < MAX_RECEIVED)
				received(t, h.value, h.value_len);
		}
#undef IS
	}
}

/* ---- parts ---- */

static void part_features(struct tk *t, const char *data, size_t len, const struct mime_part *p)
{
	char buf[80];
	int k = snprintf(buf, sizeof(buf), "%s/%s", p->type, p->subtype);
	if (k > 0)
		emit2(t, "ctype:", buf, (size_t)k < sizeof(buf) ? (size_t)k : sizeof(buf) - 1);
	const char *cs = mime_part_param(p, "charset");
	if (cs != NULL)
		emit_lower(t, "charset:", cs, strlen(cs));
	if (p->encoding != NULL)
		emit2(t, "cte:", p->encoding, strlen(p->encoding));
	static const struct {
		uint32_t flag;
		const char *name;
	} flags[] = {
	    {MIME_PART_F_NO_END_BOUNDARY, "noendboundary"},
	    {MIME_PART_F_NO_BOUNDARY, "noboundary"},
	    {MIME_PART_F_BAD_HEADER, "badheader"},
	    {MIME_PART_F_NO_BODY_SEP, "nobodysep"},
	    {MIME_PART_F_8BIT_HEADER, "8bitheader"},
	    {MIME_PART_F_NUL, "nul"},
	    {MIME_PART_F_BAD_CTYPE, "badctype"},
	    {MIME_PART_F_LIMIT, "limit"},
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (p->flags & flags[i].flag)
			emit2(t, "mime:", flags[i].name, strlen(flags[i].name));
	if (p->children != NULL)
		return;
	if (mime_part_is_attachment(p)) {
		const char *fn = mime_part_filename(p);
		const char *dot = fn ? strrchr(fn, '.') : NULL;
		if (dot != NULL && strlen(dot + 1) <= 8)
			emit_lower(t, "filename:", dot + 1, strlen(dot + 1));
		else
			emit2(t, "filename:", "none", 4);
		return;
	}
	if (strcmp(p->type, "text") != 0 || t->text_budget == 0)
		return;
	str_truncate(&t->tmp, 0);
	mime_part_text_utf8(data, len, p, &t->tmp);
	size_t n = t->tmp.len < t->text_budget ? t->tmp.len : t->text_budget;
	t->text_budget -= n;
	if (strcmp(p->subtype, "html") == 0) {
		str_truncate(&t->tmp2, 0);
		html_to_text(t->tmp.s, n, &t->tmp2, link_cb, t);
		words(t, "", t->tmp2.s, t->tmp2.len);
	} else {
		words(t, "", t->tmp.s, n);
	}
}

void tokenize_message(const char *data, size_t len, const struct mime_message *msg,
                      tokenize_callback *cb, void *context)
{
	struct tk t = {.cb = cb, .ctx = context, .text_budget = TOKENIZE_MAX_TEXT};
	const struct mime_part *root = mime_message_root(msg);
	size_t hs = root->header_start, hl = root->header_len;
	if (hs <= len && hl <= len - hs)
		header_features(&t, data + hs, hl);
	for (const struct mime_part *p = root; p != NULL; p = mime_part_next(p))
		part_features(&t, data, len, p);
	str_free(&t.fold);
	str_free(&t.tmp);
	str_free(&t.tmp2);
}
