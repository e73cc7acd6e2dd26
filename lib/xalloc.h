/* Allocation that succeeds or ends the process (STYLE 2).
 * Every size multiplication goes through xmul() or the array helpers, which
 * abort on overflow instead of wrapping. */
#ifndef CONGVU_XALLOC_H
#define CONGVU_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* xreallocarray: realloc for nmemb * size, overflow-checked. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
/* Returns a * b; aborts when it does not fit a size_t. */
size_t xmul(size_t a, size_t b);
size_t xadd(size_t a, size_t b);

/* Frees *pp and sets it to NULL: one place frees each unit (STYLE 3). */
#define x_free(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

#endif
