/* The selected mailbox as one session sees it: sequence numbers, keywords,
 * flag lists. */
#include "config.h"
#include "imap-pool.h"
#include "imap-seqset.h"
#include "imap-session.h"
#include "imap-write.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void view_free(struct imap_view **viewp)
{
	struct imap_view *v = *viewp;
	if (v == NULL)
		return;
	for (unsigned i = 0; i < v->n_keywords; i++)
		free(v->keywords[i]);
	free(v->keywords);
	free(v->uids);
	free(v->own_modseqs);
	free(v->name);
	x_free(viewp);
}

long view_find(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else if (v->uids[mid] > uid)
			hi = mid;
		else
			return (long)mid;
	}
	return -1;
}

void view_remove_at(struct imap_view *v, size_t index)
{
	memmove(v->uids + index, v->uids + index + 1, (v->n - index - 1) * sizeof(uint32_t));
	v->n--;
}

void view_append(struct imap_view *v, uint32_t uid)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		v->uids = xreallocarray(v->uids, v->cap, sizeof(uint32_t));
	}
	v->uids[v->n++] = uid;
}

void view_note_own_modseq(struct imap_view *v, uint64_t modseq)
{
	if (v->n_own == v->cap_own) {
		v->cap_own = v->cap_own ? v->cap_own * 2 : 16;
		v->own_modseqs = xreallocarray(v->own_modseqs, v->cap_own, sizeof(uint64_t));
	}
	v->own_modseqs[v->n_own++] = modseq;
}

bool view_set_keywords(struct imap_view *v, const struct store_mailbox *mbox)
{
	bool same = v->keywords != NULL && v->n_keywords == mbox->n_keywords;
	for (unsigned i = 0; same && i < mbox->n_keywords; i++)
		same = strcmp(v->keywords[i], mbox->keywords[i]) == 0;
	if (same)
		return false;
	for (unsigned i = 0; i < v->n_keywords; i++)
		free(v->keywords[i]);
	free(v->keywords);
	v->keywords = xcalloc(mbox->n_keywords + 1, sizeof(char *));
	for (unsigned i = 0; i < mbox->n_keywords; i++)
		v->keywords[i] = xstrdup(mbox->keywords[i]);
	v->n_keywords = mbox->n_keywords;
	return true;
}

void view_write_flags(const struct imap_view *v, struct str *out, bool permanent)
{
	str_appends(out, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (unsigned i = 0; i < v->n_keywords; i++) {
		str_appendc(out, ' ');
		str_appends(out, v->keywords[i]);
	}
	if (permanent && v->n_keywords < STORE_KEYWORDS_MAX)
		str_appends(out, " \\*");
	str_appendc(out, ')');
}

void view_write_msg_flags(const struct imap_view *v, const struct store_message *msg,
			  struct str *out)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} sys[] = {
		{ MSG_SEEN, "\\Seen" }, { MSG_ANSWERED, "\\Answered" }, { MSG_FLAGGED, "\\Flagged" },
		{ MSG_DELETED, "\\Deleted" }, { MSG_DRAFT, "\\Draft" },
	};
	bool first = true;
	str_appendc(out, '(');
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if (msg->flags & sys[i].bit) {
			if (!first)
				str_appendc(out, ' ');
			str_appends(out, sys[i].name);
			first = false;
		}
	}
	for (unsigned i = 0; i < v->n_keywords && i < 64; i++) {
		if (msg->keywords & ((uint64_t)1 << i)) {
			if (!first)
				str_appendc(out, ' ');
			str_appends(out, v->keywords[i]);
			first = false;
		}
	}
	str_appendc(out, ')');
}

static bool valid_keyword(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > STORE_KEYWORD_MAX_LEN)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' ||
		    c == '*' || c == '"' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

static int add_flag(const struct imap_arg *a, struct pool *pool, struct flag_list *l,
		    size_t cap, const char **error_r)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {
		{ "\\Seen", MSG_SEEN }, { "\\Answered", MSG_ANSWERED }, { "\\Flagged", MSG_FLAGGED },
		{ "\\Deleted", MSG_DELETED }, { "\\Draft", MSG_DRAFT },
	};
	if (a->type != IMAP_ARG_ATOM) {
		*error_r = "Invalid flag";
		return -1;
	}
	if (a->str[0] == '\\') {
		for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
			if (strcasecmp(a->str, sys[i].name) == 0) {
				l->flags |= sys[i].bit;
				return 0;
			}
		}
		if (strcasecmp(a->str, "\\Recent") == 0)
			return 0; /* cannot be set; ignored as other servers do */
		*error_r = "Invalid system flag";
		return -1;
	}
	if (!valid_keyword(a->str)) {
		*error_r = "Invalid keyword";
		return -1;
	}
	for (size_t i = 0; i < l->n_keywords; i++)
		if (strcasecmp(l->keywords[i], a->str) == 0)
			return 0;
	if (l->n_keywords < cap)
		l->keywords[l->n_keywords++] = p_strdup(pool, a->str);
	return 0;
}

int parse_flag_list(const struct imap_arg *arg, struct pool *pool, struct flag_list *list_r,
		    const char **error_r)
{
	memset(list_r, 0, sizeof(*list_r));
	size_t n = arg->type == IMAP_ARG_LIST ? arg->len : 1;
	list_r->keywords = p_array(pool, n + 1, sizeof(char *));
	if (arg->type != IMAP_ARG_LIST)
		return add_flag(arg, pool, list_r, n, error_r);
	for (size_t i = 0; i < arg->len; i++)
		if (add_flag(&arg->list[i], pool, list_r, n, error_r) < 0)
			return -1;
	return 0;
}

int view_resolve_set(const struct imap_view *v, const char *text, bool uid, struct pool *pool,
		     uint32_t **uids_r, size_t *n_r, const char **error_r)
{
	struct seqset set;
	if (uid) {
		uint32_t star = v->n ? v->uids[v->n - 1] : 0;
		if (seqset_parse(text, star, pool, &set, error_r) < 0)
			return -1;
		/* walk the view's UIDs (sorted) against the ranges */
		uint32_t *out = p_array(pool, v->n ? v->n : 1, sizeof(uint32_t));
		size_t n = 0;
		for (size_t r = 0; r < set.n; r++) {
			size_t lo = 0, hi = v->n;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (v->uids[mid] < set.ranges[r].lo)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (size_t i = lo; i < v->n && v->uids[i] <= set.ranges[r].hi; i++)
				out[n++] = v->uids[i];
		}
		*uids_r = out;
		*n_r = n;
		return 0;
	}
	if (seqset_parse(text, (uint32_t)v->n, pool, &set, error_r) < 0)
		return -1;
	if (seqset_max(&set) > v->n) {
		*error_r = "Invalid sequence number";
		return -1;
	}
	uint64_t count = seqset_count(&set);
	uint32_t *out = p_array(pool, count ? (size_t)count : 1, sizeof(uint32_t));
	size_t n = 0;
	for (size_t r = 0; r < set.n; r++)
		for (uint64_t q = set.ranges[r].lo; q <= set.ranges[r].hi; q++)
			out[n++] = v->uids[q - 1];
	*uids_r = out;
	*n_r = n;
	return 0;
}
