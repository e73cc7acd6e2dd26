/* A bump allocator for one unit of work (an IMAP command, STYLE 3): many
 * small allocations, freed together by pool_clear(). Allocation succeeds
 * or the process ends (STYLE 2). */
#ifndef CONGVU_IMAP_POOL_H
#define CONGVU_IMAP_POOL_H

#include <stddef.h>

struct pool;

struct pool *pool_new(size_t first_chunk);
void pool_free(struct pool **pool);
/* Frees everything allocated since pool_new() except the first chunk. */
void pool_clear(struct pool *pool);

void *p_malloc(struct pool *pool, size_t size);  /* zeroed, aligned for any type */
void *p_array(struct pool *pool, size_t nmemb, size_t size); /* overflow-checked */
char *p_strndup(struct pool *pool, const void *s, size_t len);
char *p_strdup(struct pool *pool, const char *s);
char *p_printf(struct pool *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
