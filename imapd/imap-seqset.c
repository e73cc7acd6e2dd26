#include "config.h"
#include "imap-seqset.h"
#include "imap-pool.h"
#include "imap-parser.h"

#include <stdlib.h>
#include <string.h>

static int cmp_range(const void *a, const void *b)
{
	const struct seq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static const char *parse_num(const char *s, uint32_t star, uint32_t *n_r, bool *is_star_r)
{
	*is_star_r = false;
	if (*s == '*') {
		*n_r = star;
		*is_star_r = true;
		return s + 1;
	}
	const char *start = s;
	while (*s >= '0' && *s <= '9')
		s++;
	uint64_t n;
	if (s == start || *start == '0' || !imap_parse_number(start, (size_t)(s - start), UINT32_MAX, &n))
		return NULL;
	*n_r = (uint32_t)n;
	return s;
}

int seqset_parse(const char *s, uint32_t star, struct pool *pool, struct seqset *set_r,
		 const char **error_r)
{
	size_t count = 1;
	for (const char *q = s; *q; q++)
		if (*q == ',')
			count++;
	struct seq_range *r = p_array(pool, count, sizeof(*r));
	size_t n = 0;
	const char *p = s;
	for (;;) {
		uint32_t a, b;
		bool star_a, star_b;
		p = parse_num(p, star, &a, &star_a);
		if (p == NULL)
			goto bad;
		b = a;
		star_b = star_a;
		if (*p == ':') {
			p = parse_num(p + 1, star, &b, &star_b);
			if (p == NULL)
				goto bad;
		}
		if (a > b) {
			uint32_t t = a;
			a = b;
			b = t;
		}
		/* In an empty mailbox "*" is nothing: 1:* matches nothing too. */
		if (!(star == 0 && (star_a || star_b))) {
			if (a == 0)
				a = 1;
			if (b != 0) {
				r[n].lo = a;
				r[n].hi = b;
				n++;
			}
		}
		if (*p == '\0')
			break;
		if (*p != ',')
			goto bad;
		p++;
	}
	qsort(r, n, sizeof(*r), cmp_range);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && (uint64_t)r[i].lo <= (uint64_t)r[m - 1].hi + 1) {
			if (r[i].hi > r[m - 1].hi)
				r[m - 1].hi = r[i].hi;
		} else {
			r[m++] = r[i];
		}
	}
	set_r->ranges = r;
	set_r->n = m;
	return 0;
bad:
	*error_r = "Invalid sequence set";
	return -1;
}

bool seqset_contains(const struct seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n < set->ranges[mid].lo)
			hi = mid;
		else if (n > set->ranges[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t seqset_count(const struct seqset *set)
{
	uint64_t c = 0;
	for (size_t i = 0; i < set->n; i++)
		c += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
	return c;
}

uint32_t seqset_max(const struct seqset *set)
{
	return set->n ? set->ranges[set->n - 1].hi : 0;
}

static void write_range(struct str *out, uint32_t lo, uint32_t hi, bool *first)
{
	if (!*first)
		str_appendc(out, ',');
	*first = false;
	if (lo == hi)
		str_printf(out, "%u", lo);
	else
		str_printf(out, "%u:%u", lo, hi);
}

void seqset_write_sorted(struct str *out, const uint32_t *nums, size_t n)
{
	bool first = true;
	size_t i = 0;
	while (i < n) {
		uint32_t lo = nums[i], hi = lo;
		i++;
		while (i < n && (nums[i] == hi || (hi != UINT32_MAX && nums[i] == hi + 1)))
			hi = nums[i++];
		write_range(out, lo, hi, &first);
	}
}

void seqset_write_ordered(struct str *out, const uint32_t *nums, size_t n)
{
	bool first = true;
	size_t i = 0;
	while (i < n) {
		uint32_t lo = nums[i], hi = lo;
		i++;
		while (i < n && hi != UINT32_MAX && nums[i] == hi + 1)
			hi = nums[i++];
		write_range(out, lo, hi, &first);
	}
}

void seqset_write(struct str *out, const struct seqset *set)
{
	bool first = true;
	for (size_t i = 0; i < set->n; i++)
		write_range(out, set->ranges[i].lo, set->ranges[i].hi, &first);
}
