#include "config.h"

#include "ratelimit.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Senders tracked at most; beyond it the idlest are forgotten. */
#define MAX_SENDERS 65536

struct rcpt {
	uint64_t hash;
	time_t last;
};

struct sender {
	char *user;
	struct sender *next; /* hash chain */
	time_t *msg_times;   /* ring of the last max_messages times */
	size_t msg_head, msg_count, msg_cap;
	struct rcpt *rcpts;
	size_t nrcpt, rcpt_cap;
	time_t last_seen;
};

struct ratelimit {
	pthread_mutex_t lock;
	uint64_t window;
	unsigned int max_messages, max_recipients;
	struct sender **buckets;
	size_t nbuckets, nsenders;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct ratelimit *ratelimit_new(uint64_t window_secs, unsigned int max_messages,
                                unsigned int max_recipients)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	pthread_mutex_init(&rl->lock, NULL);
	rl->window = window_secs;
	rl->max_messages = max_messages;
	rl->max_recipients = max_recipients;
	rl->nbuckets = 1024;
	rl->buckets = xcalloc(rl->nbuckets, sizeof(*rl->buckets));
	return rl;
}

static void sender_free(struct sender *s)
{
	free(s->user);
	free(s->msg_times);
	free(s->rcpts);
	free(s);
}

void ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	for (size_t i = 0; i < rl->nbuckets; i++) {
		struct sender *s = rl->buckets[i], *next;
		for (; s != NULL; s = next) {
			next = s->next;
			sender_free(s);
		}
	}
	free(rl->buckets);
	pthread_mutex_destroy(&rl->lock);
	x_free(rlp);
}

/* Forgets senders idle for a whole window (called when the table is full). */
static void expire_senders(struct ratelimit *rl, time_t now)
{
	for (size_t i = 0; i < rl->nbuckets; i++) {
		struct sender **pp = &rl->buckets[i];
		while (*pp != NULL) {
			struct sender *s = *pp;
			if ((uint64_t)(now - s->last_seen) >= rl->window ||
			    rl->nsenders >= MAX_SENDERS) {
				*pp = s->next;
				sender_free(s);
				rl->nsenders--;
			} else {
				pp = &s->next;
			}
		}
	}
}

static struct sender *get_sender(struct ratelimit *rl, const char *user, time_t now)
{
	size_t b = (size_t)(hash_str(user) % rl->nbuckets);
	for (struct sender *s = rl->buckets[b]; s != NULL; s = s->next)
		if (strcmp(s->user, user) == 0)
			return s;
	if (rl->nsenders >= MAX_SENDERS)
		expire_senders(rl, now);
	struct sender *s = xcalloc(1, sizeof(*s));
	s->user = xstrdup(user);
	s->msg_cap = rl->max_messages ? rl->max_messages : 1;
	s->msg_times = xcalloc(s->msg_cap, sizeof(*s->msg_times));
	s->next = rl->buckets[b];
	rl->buckets[b] = s;
	rl->nsenders++;
	return s;
}

static void prune(struct ratelimit *rl, struct sender *s, time_t now)
{
	time_t horizon = now - (time_t)rl->window;
	while (s->msg_count > 0 && s->msg_times[s->msg_head] <= horizon) {
		s->msg_head = (s->msg_head + 1) % s->msg_cap;
		s->msg_count--;
	}
	size_t k = 0;
	for (size_t i = 0; i < s->nrcpt; i++)
		if (s->rcpts[i].last > horizon)
			s->rcpts[k++] = s->rcpts[i];
	s->nrcpt = k;
}

static struct rcpt *find_rcpt(struct sender *s, uint64_t h)
{
	for (size_t i = 0; i < s->nrcpt; i++)
		if (s->rcpts[i].hash == h)
			return &s->rcpts[i];
	return NULL;
}

enum ratelimit_verdict ratelimit_check(struct ratelimit *rl, const char *user,
                                       const char *const *rcpts, size_t n, time_t now,
                                       unsigned int *messages_r, unsigned int *recipients_r)
{
	pthread_mutex_lock(&rl->lock);
	struct sender *s = get_sender(rl, user, now);
	s->last_seen = now;
	prune(rl, s, now);
	size_t fresh = 0;
	uint64_t *hashes = xcalloc(n ? n : 1, sizeof(*hashes));
	for (size_t i = 0; i < n; i++) {
		hashes[i] = hash_str(rcpts[i]);
		bool dup = find_rcpt(s, hashes[i]) != NULL;
		for (size_t j = 0; j < i && !dup; j++)
			dup = hashes[j] == hashes[i];
		if (!dup)
			fresh++;
	}
	unsigned int msgs = (unsigned int)s->msg_count + 1;
	unsigned int recips = (unsigned int)(s->nrcpt + fresh);
	enum ratelimit_verdict v = RATELIMIT_OK;
	if (rl->max_messages != 0 && msgs > rl->max_messages)
		v = RATELIMIT_MESSAGES;
	else if (rl->max_recipients != 0 && recips > rl->max_recipients)
		v = RATELIMIT_RECIPIENTS;
	if (v == RATELIMIT_OK) {
		if (rl->max_messages != 0) {
			s->msg_times[(s->msg_head + s->msg_count) % s->msg_cap] = now;
			s->msg_count++;
		}
		for (size_t i = 0; rl->max_recipients != 0 && i < n; i++) {
			struct rcpt *r = find_rcpt(s, hashes[i]);
			if (r != NULL) {
				r->last = now;
				continue;
			}
			if (s->nrcpt == s->rcpt_cap) {
				s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 16;
				s->rcpts = xreallocarray(s->rcpts, s->rcpt_cap, sizeof(*s->rcpts));
			}
			s->rcpts[s->nrcpt].hash = hashes[i];
			s->rcpts[s->nrcpt].last = now;
			s->nrcpt++;
		}
	}
	free(hashes);
	pthread_mutex_unlock(&rl->lock);
	*messages_r = msgs;
	*recipients_r = recips;
	return v;
}
