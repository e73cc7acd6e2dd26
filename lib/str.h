/* Growing byte strings that carry their length (STYLE 4).
 * s is always NUL-terminated after len bytes, so it can be passed to C APIs,
 * but it may hold NULs inside: trust len. */
#ifndef CONGVU_STR_H
#define CONGVU_STR_H

#include <stdarg.h>
#include <stddef.h>

struct str {
	char *s;
	size_t len;
	size_t cap;
};

#define STR_INIT { NULL, 0, 0 }

void str_reserve(struct str *str, size_t extra);
void str_append(struct str *str, const void *data, size_t len);
void str_appends(struct str *str, const char *s);
void str_appendc(struct str *str, char c);
void str_printf(struct str *str, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void str_vprintf(struct str *str, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void str_truncate(struct str *str, size_t len);
/* Returns the buffer (caller frees) and leaves str empty. */
char *str_steal(struct str *str);
void str_free(struct str *str);
/* Appends the contents of the file at path, at most max bytes. Returns 0,
 * or -1 with errno set. */
int str_read_file(struct str *str, const char *path, size_t max);
/* Appends at most max bytes of data with control and non-ASCII bytes
 * replaced by '?', for logging client input (STYLE 10). */
void str_append_sanitized(struct str *str, const void *data, size_t len, size_t max);

#endif
