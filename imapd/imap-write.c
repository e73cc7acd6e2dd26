#include "config.h"
#include "imap-write.h"
#include "imap-utf7.h"

#include <string.h>
#include <strings.h>

static bool quotable(const unsigned char *s, size_t len, bool utf8)
{
	if (len > 1024)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return false;
		if (s[i] >= 0x80 && !utf8)
			return false;
	}
	return !utf8 || imap_utf8_valid(s, len);
}

void imap_write_literal(struct str *out, const void *s, size_t len, bool literal8)
{
	str_printf(out, "%s{%zu}\r\n", literal8 ? "~" : "", len);
	str_append(out, s, len);
}

void imap_write_string(struct str *out, const void *s, size_t len, bool utf8)
{
	const unsigned char *p = s;
	if (!quotable(p, len, utf8)) {
		imap_write_literal(out, s, len, false);
		return;
	}
	str_reserve(out, len + 2);
	str_appendc(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			str_appendc(out, '\\');
		str_appendc(out, (char)p[i]);
	}
	str_appendc(out, '"');
}

static bool is_atom(const unsigned char *s, size_t len)
{
	if (len == 0 || len > 256)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' ||
		    c == '*' || c == '"' || c == '\\' || c == ']' || c == '[')
			return false;
	}
	return !(len == 3 && strncasecmp((const char *)s, "NIL", 3) == 0);
}

void imap_write_astring(struct str *out, const void *s, size_t len, bool utf8)
{
	if (is_atom(s, len))
		str_append(out, s, len);
	else
		imap_write_string(out, s, len, utf8);
}

void imap_write_nstring(struct str *out, const void *s, size_t len, bool utf8)
{
	if (s == NULL)
		str_append(out, "NIL", 3);
	else
		imap_write_string(out, s, len, utf8);
}

void imap_write_mailbox(struct str *out, const char *name, bool utf8)
{
	if (utf8 || !imap_utf7_needed(name)) {
		imap_write_string(out, name, strlen(name), utf8);
		return;
	}
	struct str enc = STR_INIT;
	if (imap_utf8_to_utf7(name, &enc) < 0) {
		/* not UTF-8 (cannot come from the store): send the bytes as they are */
		imap_write_string(out, name, strlen(name), false);
	} else {
		imap_write_string(out, enc.s, enc.len, false);
	}
	str_free(&enc);
}
