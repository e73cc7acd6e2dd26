/* UTF-8 handling, simple case folding and diacritic-free search keys.
 * The tables below were generated once from the Unicode Character Database
 * (Python's unicodedata): simple case folding as stride-1/stride-2 ranges,
 * and for search keys the first character of each canonical decomposition
 * whose other characters are all combining diacritics (plus đ, ł, ø, ħ, ı,
 * ŧ, ƀ, which Unicode does not decompose). */
#include "config.h"
#include "utf8.h"

#include <string.h>

struct fold_range {
	uint32_t first, last;
	int32_t delta;
	uint32_t stride;
};

struct key_pair {
	uint32_t cp, key;
};

#include "utf8-tables.inc"

bool utf8_is_valid(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (n == 1)
			return false; /* a lone 8-bit byte: invalid (U+FFFD is 3 bytes) */
		i += n;
	}
	return true;
}

size_t utf8_decode(const char *str, size_t len, uint32_t *cp_r)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;

	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		*cp_r = UTF8_REPLACEMENT;
		return 1;
	}
	if (len < n) {
		*cp_r = UTF8_REPLACEMENT;
		return 1;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*cp_r = UTF8_REPLACEMENT;
			return 1;
		}
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
		*cp_r = UTF8_REPLACEMENT;
		return 1;
	}
	*cp_r = cp;
	return n;
}

void utf8_encode(uint32_t cp, struct str *out)
{
	char buf[4];
	size_t n;

	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = UTF8_REPLACEMENT;
	if (cp < 0x80) {
		buf[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		buf[0] = (char)(0xC0 | (cp >> 6));
		buf[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		buf[0] = (char)(0xE0 | (cp >> 12));
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		buf[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		buf[0] = (char)(0xF0 | (cp >> 18));
		buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		buf[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	str_append(out, buf, n);
}

int utf8_sanitize(const char *s, size_t len, struct str *out)
{
	int ret = 0;
	size_t i = 0, run = 0;

	str_reserve(out, len);
	while (i < len) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (n == 1) {
			/* flush the valid run, then the replacement */
			str_append(out, s + run, i - run);
			utf8_encode(UTF8_REPLACEMENT, out);
			ret = 1;
			run = i + 1;
		}
		i += n;
	}
	str_append(out, s + run, len - run);
	return ret;
}

uint32_t utf8_fold(uint32_t cp)
{
	size_t lo = 0, hi = sizeof(fold_ranges) / sizeof(fold_ranges[0]);

	if (cp < 0x41)
		return cp;
	if (cp <= 0x7F)
		return cp <= 'Z' ? cp + 32 : cp;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct fold_range *r = &fold_ranges[mid];
		if (cp < r->first)
			hi = mid;
		else if (cp > r->last)
			lo = mid + 1;
		else {
			if ((cp - r->first) % r->stride != 0)
				return cp;
			return (uint32_t)((int32_t)cp + r->delta);
		}
	}
	return cp;
}

static bool is_drop_mark(uint32_t cp)
{
	return (cp >= 0x300 && cp <= 0x36F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
	       (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
	       (cp >= 0xFE20 && cp <= 0xFE2F);
}

/* Invisible format characters that split words for no reader (and are
 * inserted by spammers to do so): soft hyphen, zero-width space and
 * joiners, word joiner, BOM. */
static bool is_invisible(uint32_t cp)
{
	return cp == 0xAD || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF;
}

static bool is_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t utf8_search_fold(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	if (is_drop_mark(cp) || is_invisible(cp))
		return 0;
	size_t lo = 0, hi = sizeof(key_pairs) / sizeof(key_pairs[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < key_pairs[mid].cp)
			hi = mid;
		else if (cp > key_pairs[mid].cp)
			lo = mid + 1;
		else
			return key_pairs[mid].key;
	}
	return utf8_fold(cp);
}

void utf8_casefold(const char *s, size_t len, struct str *out)
{
	size_t i = 0;

	str_reserve(out, len);
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			str_appendc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
			i++;
			continue;
		}
		uint32_t cp;
		i += utf8_decode(s + i, len - i, &cp);
		utf8_encode(utf8_fold(cp), out);
	}
	str_append(out, "", 0);
}

void utf8_search_key(const char *s, size_t len, struct str *out)
{
	size_t i = 0;
	bool in_space = false;

	str_reserve(out, len);
	while (i < len) {
		uint32_t cp;
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			cp = c;
			i++;
		} else {
			i += utf8_decode(s + i, len - i, &cp);
		}
		if (is_space(cp)) {
			if (!in_space)
				str_appendc(out, ' ');
			in_space = true;
			continue;
		}
		uint32_t k = utf8_search_fold(cp);
		if (k == 0)
			continue; /* a dropped mark does not end a run of spaces */
		in_space = false;
		if (k < 0x80)
			str_appendc(out, (char)k);
		else
			utf8_encode(k, out);
	}
	str_append(out, "", 0);
}

bool utf8_search_contains(const char *haystack, size_t hay_len, const char *needle,
                          size_t needle_len)
{
	if (needle_len == 0)
		return true;
	if (needle_len > hay_len)
		return false;
	/* glibc memmem is the two-way algorithm: linear in the worst case */
	return memmem(haystack, hay_len, needle, needle_len) != NULL;
}

bool utf8_search_match(const char *text, size_t text_len, const char *needle, size_t needle_len)
{
	struct str t = STR_INIT, n = STR_INIT;

	utf8_search_key(text, text_len, &t);
	utf8_search_key(needle, needle_len, &n);
	bool ret = utf8_search_contains(t.s, t.len, n.s, n.len);
	str_free(&t);
	str_free(&n);
	return ret;
}
