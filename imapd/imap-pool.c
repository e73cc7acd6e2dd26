#include "config.h"
#include "imap-pool.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chunk {
	struct chunk *next;
	size_t size, used;
	alignas(max_align_t) unsigned char data[];
};

struct pool {
	struct chunk *first;  /* kept by pool_clear */
	struct chunk *cur;
	size_t first_size;
};

static struct chunk *chunk_new(size_t size)
{
	struct chunk *c = xmalloc(xadd(sizeof(*c), size));
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct pool *pool_new(size_t first_chunk)
{
	struct pool *p = xmalloc(sizeof(*p));
	p->first_size = first_chunk < 256 ? 256 : first_chunk;
	p->first = p->cur = chunk_new(p->first_size);
	return p;
}

void pool_clear(struct pool *pool)
{
	struct chunk *c = pool->first->next;
	while (c != NULL) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	pool->first->next = NULL;
	pool->first->used = 0;
	pool->cur = pool->first;
}

void pool_free(struct pool **pool)
{
	if (*pool == NULL)
		return;
	pool_clear(*pool);
	free((*pool)->first);
	x_free(pool);
}

void *p_malloc(struct pool *pool, size_t size)
{
	const size_t align = alignof(max_align_t);
	size = xadd(size, align - 1) & ~(align - 1);
	if (size == 0)
		size = align;
	struct chunk *c = pool->cur;
	if (c->size - c->used < size) {
		size_t want = c->size * 2;
		if (want < size)
			want = size;
		struct chunk *n = chunk_new(want);
		c->next = n;
		pool->cur = c = n;
	}
	void *ret = c->data + c->used;
	c->used += size;
	memset(ret, 0, size);
	return ret;
}

void *p_array(struct pool *pool, size_t nmemb, size_t size)
{
	return p_malloc(pool, xmul(nmemb, size));
}

char *p_strndup(struct pool *pool, const void *s, size_t len)
{
	char *d = p_malloc(pool, xadd(len, 1));
	if (len > 0)
		memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *p_strdup(struct pool *pool, const char *s)
{
	return p_strndup(pool, s, strlen(s));
}

char *p_printf(struct pool *pool, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return p_strdup(pool, "");
	char *d = p_malloc(pool, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return d;
}
