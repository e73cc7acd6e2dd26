/* Per-client-IP counters shared by the session workers: concurrent
 * sessions and recent AUTH failures. The table lives in anonymous shared
 * memory made by the parent before it starts the workers; entries are
 * found by hashing the address (an IPv6 client counts by its /64), so two
 * clients that collide share a counter - that only makes their limit
 * stricter, never looser. */
#ifndef CONGVU_SMTPD_IPLIMITS_H
#define CONGVU_SMTPD_IPLIMITS_H

#include <stdbool.h>
#include <stdint.h>

struct iplimits;

/* Maps the shared table (aborts when it cannot). */
struct iplimits *iplimits_create(void);
void iplimits_destroy(struct iplimits **l);

/* Counts a new session for hash unless max are open already: returns true
 * when counted (then call iplimits_session_end() when it ends). */
bool iplimits_session_begin(struct iplimits *l, uint64_t hash, unsigned max);
void iplimits_session_end(struct iplimits *l, uint64_t hash);
unsigned iplimits_sessions(struct iplimits *l, uint64_t hash);

/* The same for all sessions of all workers together (smtpd.max_connections). */
bool iplimits_total_begin(struct iplimits *l, unsigned max);
void iplimits_total_end(struct iplimits *l);

/* Records an AUTH failure at time now (seconds) and returns the number of
 * failures from this client in the last 15 minutes, this one included. */
unsigned iplimits_auth_failed(struct iplimits *l, uint64_t hash, int64_t now);

#endif
