#include "config.h"
#include "imap-utf7.h"
#include "base64.h"

#include <stdint.h>
#include <string.h>

/* Decodes one UTF-8 sequence; returns its length, 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

bool imap_utf8_valid(const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t i = 0;
	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

bool imap_utf7_needed(const char *s)
{
	for (; *s; s++)
		if (*s == '&' || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return true;
	return false;
}

static void append_utf8(struct str *out, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	str_append(out, b, n);
}

int imap_utf7_to_utf8(const char *in, struct str *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t start_len = out->len;
	while (*s) {
		if (*s < 0x20 || *s >= 0x7f)
			goto bad;
		if (*s != '&') {
			str_appendc(out, (char)*s++);
			continue;
		}
		s++;
		if (*s == '-') {
			str_appendc(out, '&');
			s++;
			continue;
		}
		/* base64 of UTF-16BE up to '-' */
		uint32_t bits = 0;
		unsigned nbits = 0;
		uint32_t high = 0; /* a pending high surrogate */
		size_t units = 0;
		while (*s != '-') {
			int v = base64_char_value(*s, BASE64_IMAP);
			if (v < 0)
				goto bad;
			s++;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits >= 16) {
				nbits -= 16;
				uint32_t u = (bits >> nbits) & 0xffff;
				bits &= (1u << nbits) - 1;
				units++;
				if (high != 0) {
					if (u < 0xdc00 || u > 0xdfff)
						goto bad;
					append_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					goto bad;
				} else {
					/* printable ASCII must not be encoded */
					if (u >= 0x20 && u < 0x7f)
						goto bad;
					append_utf8(out, u);
				}
			}
		}
		s++; /* '-' */
		if (units == 0 || high != 0 || nbits >= 6 || bits != 0)
			goto bad;
		/* "&...-&...-": two encoded runs back to back are not canonical */
		if (*s == '&' && s[1] != '-')
			goto bad;
	}
	return 0;
bad:
	str_truncate(out, start_len);
	return -1;
}

struct b64_enc {
	bool open;
	uint32_t bits;
	unsigned nbits;
};

static void enc_unit(struct str *out, struct b64_enc *e, uint16_t u)
{
	if (!e->open) {
		str_appendc(out, '&');
		e->open = true;
	}
	e->bits = (e->bits << 16) | u;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		str_appendc(out, base64_imap_chars[(e->bits >> e->nbits) & 0x3f]);
	}
	e->bits &= (1u << e->nbits) - 1;
}

static void enc_close(struct str *out, struct b64_enc *e)
{
	if (!e->open)
		return;
	if (e->nbits > 0)
		str_appendc(out, base64_imap_chars[(e->bits << (6 - e->nbits)) & 0x3f]);
	str_appendc(out, '-');
	e->open = false;
	e->bits = 0;
	e->nbits = 0;
}

int imap_utf8_to_utf7(const char *in, struct str *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t len = strlen(in), i = 0;
	size_t start_len = out->len;
	struct b64_enc e = { false, 0, 0 };
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			str_truncate(out, start_len);
			return -1;
		}
		i += n;
		if (cp >= 0x20 && cp < 0x7f) {
			enc_close(out, &e);
			if (cp == '&')
				str_append(out, "&-", 2);
			else
				str_appendc(out, (char)cp);
		} else if (cp >= 0x10000) {
			cp -= 0x10000;
			enc_unit(out, &e, (uint16_t)(0xd800 + (cp >> 10)));
			enc_unit(out, &e, (uint16_t)(0xdc00 + (cp & 0x3ff)));
		} else {
			enc_unit(out, &e, (uint16_t)cp);
		}
	}
	enc_close(out, &e);
	return 0;
}
