#include "config.h"
#include "str.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void str_reserve(struct str *str, size_t extra)
{
	size_t need = xadd(xadd(str->len, extra), 1);
	if (need <= str->cap)
		return;
	size_t cap = str->cap ? str->cap : 64;
	while (cap < need)
		cap = xmul(cap, 2);
	str->s = xrealloc(str->s, cap);
	str->cap = cap;
}

void str_append(struct str *str, const void *data, size_t len)
{
	str_reserve(str, len);
	if (len > 0)
		memcpy(str->s + str->len, data, len);
	str->len += len;
	str->s[str->len] = '\0';
}

void str_appends(struct str *str, const char *s)
{
	str_append(str, s, strlen(s));
}

void str_appendc(struct str *str, char c)
{
	str_append(str, &c, 1);
}

void str_vprintf(struct str *str, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return;
	}
	if ((size_t)n < sizeof(tmp)) {
		str_append(str, tmp, (size_t)n);
	} else {
		str_reserve(str, (size_t)n);
		vsnprintf(str->s + str->len, (size_t)n + 1, fmt, ap2);
		str->len += (size_t)n;
	}
	va_end(ap2);
}

void str_printf(struct str *str, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(str, fmt, ap);
	va_end(ap);
}

void str_truncate(struct str *str, size_t len)
{
	if (len < str->len) {
		str->len = len;
		str->s[len] = '\0';
	}
}

char *str_steal(struct str *str)
{
	if (str->s == NULL)
		return xstrdup("");
	char *s = str->s;
	str->s = NULL;
	str->len = str->cap = 0;
	return s;
}

void str_free(struct str *str)
{
	x_free(&str->s);
	str->len = str->cap = 0;
}

void str_append_sanitized(struct str *str, const void *data, size_t len, size_t max)
{
	const unsigned char *p = data;
	size_t n = len < max ? len : max;
	str_reserve(str, n + 3);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		str->s[str->len++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (len > max) {
		memcpy(str->s + str->len, "...", 3);
		str->len += 3;
	}
	str->s[str->len] = '\0';
}

int str_read_file(struct str *str, const char *path, size_t max)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char buf[4096];
	size_t n, total = 0;
	while (total < max && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (n > max - total)
			n = max - total;
		str_append(str, buf, n);
		total += n;
	}
	int err = ferror(f) ? EIO : 0;
	fclose(f);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}
