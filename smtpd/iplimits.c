/* Shared per-IP counters; see iplimits.h. */
#include "config.h"
#include "iplimits.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SESSION_SLOTS 65536
#define AUTH_SLOTS 4096
#define AUTH_WINDOW 900

struct auth_slot {
	uint64_t hash;
	uint32_t count;
	uint32_t since; /* low 32 bits of the unix time of the first failure */
};

struct iplimits {
	uint32_t sessions[SESSION_SLOTS];
	struct auth_slot auth[AUTH_SLOTS];
	int lock; /* spinlock for the auth table */
	uint32_t total;
};

struct iplimits *iplimits_create(void)
{
	void *p = mmap(NULL, sizeof(struct iplimits), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		abort();
	memset(p, 0, sizeof(struct iplimits));
	return p;
}

void iplimits_destroy(struct iplimits **l)
{
	if (*l == NULL)
		return;
	munmap(*l, sizeof(struct iplimits));
	*l = NULL;
}

static bool count_up(uint32_t *c, unsigned max)
{
	uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
	do {
		if (v >= max)
			return false;
	} while (!__atomic_compare_exchange_n(c, &v, v + 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return true;
}

static void count_down(uint32_t *c)
{
	uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
	do {
		if (v == 0)
			return;
	} while (!__atomic_compare_exchange_n(c, &v, v - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
}

bool iplimits_total_begin(struct iplimits *l, unsigned max)
{
	return count_up(&l->total, max);
}

void iplimits_total_end(struct iplimits *l)
{
	count_down(&l->total);
}

bool iplimits_session_begin(struct iplimits *l, uint64_t hash, unsigned max)
{
	uint32_t *c = &l->sessions[hash % SESSION_SLOTS];
	uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
	do {
		if (v >= max)
			return false;
	} while (!__atomic_compare_exchange_n(c, &v, v + 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return true;
}

void iplimits_session_end(struct iplimits *l, uint64_t hash)
{
	uint32_t *c = &l->sessions[hash % SESSION_SLOTS];
	uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
	do {
		if (v == 0)
			return;
	} while (!__atomic_compare_exchange_n(c, &v, v - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
}

unsigned iplimits_sessions(struct iplimits *l, uint64_t hash)
{
	return __atomic_load_n(&l->sessions[hash % SESSION_SLOTS], __ATOMIC_RELAXED);
}

unsigned iplimits_auth_failed(struct iplimits *l, uint64_t hash, int64_t now)
{
	while (__atomic_exchange_n(&l->lock, 1, __ATOMIC_ACQUIRE) != 0)
		;
	struct auth_slot *s = &l->auth[hash % AUTH_SLOTS];
	uint32_t t = (uint32_t)now;
	if (s->hash != hash || t - s->since > AUTH_WINDOW) {
		s->hash = hash;
		s->count = 0;
		s->since = t;
	}
	unsigned n = ++s->count;
	__atomic_store_n(&l->lock, 0, __ATOMIC_RELEASE);
	return n;
}
