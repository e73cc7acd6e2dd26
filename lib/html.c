/* HTML to text: a single left-to-right scan. Everything that may run
 * unterminated (comments, quoted attribute values, script bodies) ends at
 * the end of the input, so no position is ever scanned twice by the same
 * construct and the whole pass is linear. */
#include "config.h"
#include "html.h"
#include "utf8.h"

#include <string.h>
#include <strings.h>

#define ENTITY_NAME_MAX 10

struct html_ctx {
	struct str text;
	bool pending_space, pending_newline;
	html_link_callback *link;
	void *context;
	struct str attr;
};

static const struct {
	const char *name;
	uint32_t cp;
} entities[] = {
    {"nbsp", 0xA0},     {"amp", '&'},      {"lt", '<'},        {"gt", '>'},
    {"quot", '"'},      {"apos", '\''},    {"copy", 0xA9},     {"reg", 0xAE},
    {"trade", 0x2122},  {"euro", 0x20AC},  {"pound", 0xA3},    {"yen", 0xA5},
    {"cent", 0xA2},     {"sect", 0xA7},    {"deg", 0xB0},      {"plusmn", 0xB1},
    {"times", 0xD7},    {"divide", 0xF7},  {"middot", 0xB7},   {"laquo", 0xAB},
    {"raquo", 0xBB},    {"ndash", 0x2013}, {"mdash", 0x2014},  {"lsquo", 0x2018},
    {"rsquo", 0x2019},  {"ldquo", 0x201C}, {"rdquo", 0x201D},  {"bull", 0x2022},
    {"hellip", 0x2026}, {"shy", 0xAD},     {"zwnj", 0x200C},   {"zwj", 0x200D},
    {"iexcl", 0xA1},    {"iquest", 0xBF},  {"ordf", 0xAA},     {"ordm", 0xBA},
    {"Agrave", 0xC0},   {"Aacute", 0xC1},  {"Acirc", 0xC2},    {"Atilde", 0xC3},
    {"Auml", 0xC4},     {"Aring", 0xC5},   {"AElig", 0xC6},    {"Ccedil", 0xC7},
    {"Egrave", 0xC8},   {"Eacute", 0xC9},  {"Ecirc", 0xCA},    {"Euml", 0xCB},
    {"Igrave", 0xCC},   {"Iacute", 0xCD},  {"Icirc", 0xCE},    {"Iuml", 0xCF},
    {"ETH", 0xD0},      {"Ntilde", 0xD1},  {"Ograve", 0xD2},   {"Oacute", 0xD3},
    {"Ocirc", 0xD4},    {"Otilde", 0xD5},  {"Ouml", 0xD6},     {"Oslash", 0xD8},
    {"Ugrave", 0xD9},   {"Uacute", 0xDA},  {"Ucirc", 0xDB},    {"Uuml", 0xDC},
    {"Yacute", 0xDD},   {"THORN", 0xDE},   {"szlig", 0xDF},    {"agrave", 0xE0},
    {"aacute", 0xE1},   {"acirc", 0xE2},   {"atilde", 0xE3},   {"auml", 0xE4},
    {"aring", 0xE5},    {"aelig", 0xE6},   {"ccedil", 0xE7},   {"egrave", 0xE8},
    {"eacute", 0xE9},   {"ecirc", 0xEA},   {"euml", 0xEB},     {"igrave", 0xEC},
    {"iacute", 0xED},   {"icirc", 0xEE},   {"iuml", 0xEF},     {"eth", 0xF0},
    {"ntilde", 0xF1},   {"ograve", 0xF2},  {"oacute", 0xF3},   {"ocirc", 0xF4},
    {"otilde", 0xF5},   {"ouml", 0xF6},    {"oslash", 0xF8},   {"ugrave", 0xF9},
    {"uacute", 0xFA},   {"ucirc", 0xFB},   {"uuml", 0xFC},     {"yacute", 0xFD},
    {"thorn", 0xFE},    {"yuml", 0xFF},    {"Dstrok", 0x110},  {"dstrok", 0x111},
    {"OElig", 0x152},   {"oelig", 0x153},  {"Scaron", 0x160},  {"scaron", 0x161},
    {"Yuml", 0x178},    {"ensp", 0x2002},  {"emsp", 0x2003},   {"thinsp", 0x2009},
    {"larr", 0x2190},   {"rarr", 0x2192},  {"uarr", 0x2191},   {"darr", 0x2193},
    {"hearts", 0x2665}, {"check", 0x2713}, {"permil", 0x2030}, {"dagger", 0x2020},
};

/* Decodes the character reference at s ('&'); returns the bytes used and
 * appends the character, or 0 when it is not one (then '&' is literal). */
static size_t decode_entity(const char *s, size_t len, struct str *out)
{
	size_t i = 1;

	if (len >= 3 && s[1] == '#') {
		uint32_t cp = 0;
		bool hex = s[2] == 'x' || s[2] == 'X';
		size_t digits = 0;
		i = hex ? 3 : 2;
		for (; i < len; i++, digits++) {
			char c = s[i];
			int v;
			if (c >= '0' && c <= '9')
				v = c - '0';
			else if (hex && c >= 'a' && c <= 'f')
				v = c - 'a' + 10;
			else if (hex && c >= 'A' && c <= 'F')
				v = c - 'A' + 10;
			else
				break;
			if (cp <= 0x10FFFF)
				cp = cp * (hex ? 16 : 10) + (uint32_t)v;
		}
		if (digits == 0)
			return 0;
		if (i < len && s[i] == ';')
			i++;
		if (cp == 0 || cp > 0x10FFFF)
			cp = UTF8_REPLACEMENT;
		utf8_encode(cp, out);
		return i;
	}
	while (i < len && i <= ENTITY_NAME_MAX &&
	       ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
	        (s[i] >= '0' && s[i] <= '9')))
		i++;
	size_t name_len = i - 1;
	if (name_len == 0)
		return 0;
	for (size_t k = 0; k < sizeof(entities) / sizeof(entities[0]); k++) {
		if (strlen(entities[k].name) == name_len &&
		    memcmp(entities[k].name, s + 1, name_len) == 0) {
			utf8_encode(entities[k].cp, out);
			if (i < len && s[i] == ';')
				i++;
			return i;
		}
	}
	return 0;
}

static void emit_text(struct html_ctx *ctx, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0')
			continue;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
			ctx->pending_space = true;
			continue;
		}
		if (ctx->text.len > 0) {
			if (ctx->pending_newline)
				str_appendc(&ctx->text, '\n');
			else if (ctx->pending_space)
				str_appendc(&ctx->text, ' ');
		}
		ctx->pending_space = ctx->pending_newline = false;
		str_appendc(&ctx->text, (char)c);
	}
}

/* Text with character references decoded. */
static void emit_decoded(struct html_ctx *ctx, const char *s, size_t len)
{
	size_t run = 0;
	struct str ent = STR_INIT;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '&')
			continue;
		str_truncate(&ent, 0);
		size_t n = decode_entity(s + i, len - i, &ent);
		if (n == 0)
			continue;
		emit_text(ctx, s + run, i - run);
		/* a no-break space is still a word separator */
		if (ent.len == 2 && (unsigned char)ent.s[0] == 0xC2 &&
		    (unsigned char)ent.s[1] == 0xA0)
			ctx->pending_space = true;
		else
			emit_text(ctx, ent.s, ent.len);
		i += n - 1;
		run = i + 1;
	}
	emit_text(ctx, s + run, len - run);
	str_free(&ent);
}

static void block_break(struct html_ctx *ctx)
{
	ctx->pending_newline = true;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static bool name_in(const char *name, size_t len, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (name_is(name, len, *list))
			return true;
	}
	return false;
}

static const char *const block_tags[] = {
    "p",     "div",   "br",    "li",      "tr",      "h1",     "h2",     "h3",         "h4",
    "h5",    "h6",    "ul",    "ol",      "dl",      "dt",     "dd",     "table",      "blockquote",
    "pre",   "hr",    "title", "section", "article", "header", "footer", "address",    "center",
    "form",  "body",  "html",  "nav",     "aside",   "main",   "figure", "figcaption", "caption",
    "tbody", "thead", "tfoot", "option",  NULL};
static const char *const skip_tags[] = {"script", "style", "template", "noscript", "xml", NULL};
static const char *const src_tags[] = {"img",   "iframe", "frame", "embed", "script", "source",
                                       "input", "video",  "audio", "track", NULL};

/* Finds "</name" (any case) from s; returns its offset or len. */
static size_t find_end_tag(const char *s, size_t len, const char *name, size_t name_len)
{
	size_t i = 0;
	while (i < len) {
		const char *lt = memchr(s + i, '<', len - i);
		if (lt == NULL)
			return len;
		i = (size_t)(lt - s);
		if (len - i >= 2 + name_len && s[i + 1] == '/' &&
		    strncasecmp(s + i + 2, name, name_len) == 0)
			return i;
		i++;
	}
	return len;
}

static void report_link(struct html_ctx *ctx, enum html_link_kind kind, const char *v, size_t len)
{
	if (ctx->link == NULL)
		return;
	str_truncate(&ctx->attr, 0);
	/* entity-decode the value, drop the whitespace around it */
	while (len > 0 && (unsigned char)v[0] <= ' ') {
		v++;
		len--;
	}
	while (len > 0 && (unsigned char)v[len - 1] <= ' ')
		len--;
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] != '&')
			continue;
		size_t mark = ctx->attr.len;
		str_append(&ctx->attr, v + run, i - run);
		size_t n = decode_entity(v + i, len - i, &ctx->attr);
		if (n == 0) {
			str_truncate(&ctx->attr, mark);
			continue;
		}
		i += n - 1;
		run = i + 1;
	}
	str_append(&ctx->attr, v + run, len - run);
	str_append(&ctx->attr, "", 0);
	/* no URL holds a NUL; keep the string usable as a C string */
	size_t k = 0;
	for (size_t j = 0; j < ctx->attr.len; j++) {
		if (ctx->attr.s[j] != '\0')
			ctx->attr.s[k++] = ctx->attr.s[j];
	}
	str_truncate(&ctx->attr, k);
	ctx->link(ctx->context, kind, ctx->attr.s, ctx->attr.len);
}

/* Parses the tag at s ('<'); returns the bytes it spans. */
static size_t parse_tag(struct html_ctx *ctx, const char *s, size_t len)
{
	size_t i = 1;

	if (len >= 4 && memcmp(s, "<!--", 4) == 0) {
		const char *e = NULL;
		for (size_t k = 4; k + 3 <= len; k++) {
			const char *dash = memchr(s + k, '-', len - k);
			if (dash == NULL)
				break;
			k = (size_t)(dash - s);
			if (k + 3 <= len && dash[1] == '-' && dash[2] == '>') {
				e = dash + 3;
				break;
			}
		}
		return e != NULL ? (size_t)(e - s) : len;
	}
	if (len >= 2 && (s[1] == '!' || s[1] == '?')) {
		const char *gt = memchr(s, '>', len);
		return gt != NULL ? (size_t)(gt - s) + 1 : len;
	}
	bool end_tag = len >= 2 && s[1] == '/';
	if (end_tag)
		i = 2;
	const char *name = s + i;
	while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
	                   (s[i] >= '0' && s[i] <= '9')))
		i++;
	size_t name_len = (size_t)(s + i - name);
	if (name_len == 0 && !end_tag) {
		/* "<" that does not start a tag ("a < b"): plain text */
		emit_text(ctx, "<", 1);
		return 1;
	}
	if (name_in(name, name_len, block_tags))
		block_break(ctx);
	else if (name_is(name, name_len, "td") || name_is(name, name_len, "th"))
		ctx->pending_space = true;
	/* attributes */
	while (i < len && s[i] != '>') {
		if ((unsigned char)s[i] <= ' ' || s[i] == '/') {
			i++;
			continue;
		}
		const char *an = s + i;
		while (i < len && (unsigned char)s[i] > ' ' && s[i] != '=' && s[i] != '>' &&
		       s[i] != '/')
			i++;
		size_t an_len = (size_t)(s + i - an);
		if (an_len == 0) {
			i++;
			continue;
		}
		while (i < len && (unsigned char)s[i] <= ' ')
			i++;
		if (i >= len || s[i] != '=')
			continue;
		i++;
		while (i < len && (unsigned char)s[i] <= ' ')
			i++;
		const char *v;
		size_t v_len;
		if (i < len && (s[i] == '"' || s[i] == '\'')) {
			char q = s[i++];
			v = s + i;
			const char *qe = memchr(s + i, q, len - i);
			v_len = qe != NULL ? (size_t)(qe - v) : len - i;
			i += v_len + (qe != NULL ? 1 : 0);
		} else {
			v = s + i;
			while (i < len && (unsigned char)s[i] > ' ' && s[i] != '>')
				i++;
			v_len = (size_t)(s + i - v);
		}
		if (end_tag)
			continue;
		if (name_is(an, an_len, "href") &&
		    (name_is(name, name_len, "a") || name_is(name, name_len, "area") ||
		     name_is(name, name_len, "link") || name_is(name, name_len, "base")))
			report_link(ctx, HTML_LINK_HREF, v, v_len);
		else if (name_is(an, an_len, "src") && name_in(name, name_len, src_tags))
			report_link(ctx, HTML_LINK_SRC, v, v_len);
		else if (name_is(an, an_len, "action") && name_is(name, name_len, "form"))
			report_link(ctx, HTML_LINK_ACTION, v, v_len);
		else if (name_is(an, an_len, "background"))
			report_link(ctx, HTML_LINK_BACKGROUND, v, v_len);
		else if (name_is(an, an_len, "alt") && name_is(name, name_len, "img")) {
			ctx->pending_space = true;
			emit_decoded(ctx, v, v_len);
			ctx->pending_space = true;
		}
	}
	if (i < len)
		i++; /* '>' */
	if (!end_tag && name_in(name, name_len, skip_tags)) {
		/* raw text elements: skip to their end tag */
		size_t e = find_end_tag(s + i, len - i, name, name_len);
		i += e;
	}
	return i;
}

void html_to_text(const char *html, size_t len, struct str *out, html_link_callback *link,
                  void *context)
{
	struct html_ctx ctx;
	size_t i = 0;

	memset(&ctx, 0, sizeof(ctx));
	ctx.link = link;
	ctx.context = context;
	while (i < len) {
		const char *lt = memchr(html + i, '<', len - i);
		size_t text_end = lt != NULL ? (size_t)(lt - html) : len;
		emit_decoded(&ctx, html + i, text_end - i);
		i = text_end;
		if (i < len)
			i += parse_tag(&ctx, html + i, len - i);
	}
	utf8_sanitize(ctx.text.s != NULL ? ctx.text.s : "", ctx.text.len, out);
	str_append(out, "", 0);
	str_free(&ctx.text);
	str_free(&ctx.attr);
}
