/* Sequence sets and UID sets (RFC 9051 9: sequence-set), parsed into
 * sorted, merged ranges, and written back in their shortest form. */
#ifndef CONGVU_IMAP_SEQSET_H
#define CONGVU_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct pool;

struct seq_range {
	uint32_t lo, hi; /* inclusive, lo <= hi */
};

struct seqset {
	struct seq_range *ranges; /* sorted, neither overlapping nor adjacent */
	size_t n;
};

/* Parses s ("1,3:5,7:*"). '*' stands for star (the largest number in use;
 * 0 in an empty mailbox, where "*" then matches nothing). Numbers are
 * 1..2^32-1. Returns 0, or -1 with *error_r (static). */
int seqset_parse(const char *s, uint32_t star, struct pool *pool, struct seqset *set_r,
		 const char **error_r);
bool seqset_contains(const struct seqset *set, uint32_t n);
/* How many numbers the set holds (saturating at UINT64_MAX). */
uint64_t seqset_count(const struct seqset *set);
/* The largest number in the set, 0 when empty. */
uint32_t seqset_max(const struct seqset *set);

/* Writes sorted numbers (duplicates allowed) as "1:3,5,8:9". Nothing when n is 0. */
void seqset_write_sorted(struct str *out, const uint32_t *nums, size_t n);
/* Writes numbers in their given order with runs compressed ("5:7,2"): for
 * COPYUID, whose two sets must correspond element by element. */
void seqset_write_ordered(struct str *out, const uint32_t *nums, size_t n);
void seqset_write(struct str *out, const struct seqset *set);

#endif
