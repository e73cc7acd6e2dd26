/* Mailbox commands: SELECT/EXAMINE (CONDSTORE, QRESYNC), CREATE, DELETE,
 * RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST/LSUB (LIST-EXTENDED, LIST-STATUS,
 * SPECIAL-USE, CHILDREN), STATUS (SIZE, DELETED, HIGHESTMODSEQ), APPEND
 * (UIDPLUS, APPENDLIMIT), GETQUOTA/GETQUOTAROOT (RFC 9208). */
#include "config.h"
#include "imap-date.h"
#include "imap-pool.h"
#include "imap-seqset.h"
#include "imap-session.h"
#include "imap-utf7.h"
#include "imap-write.h"
#include "log.h"
#include "mime.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What LIST and STATUS need of a mailbox (struct store_mailbox is large). */
struct mbox_info {
	char *name;
	uint32_t id;
	bool exists;   /* false: a parent implied by a child's name */
	bool subscribed;
	bool has_children;
	unsigned special_use;
	uint32_t messages, unseen, deleted, uidnext, uidvalidity;
	uint64_t bytes, highestmodseq;
};

static void info_from(struct mbox_info *i, const struct store_mailbox *m, struct pool *pool)
{
	i->name = p_strdup(pool, m->name);
	i->id = m->id;
	i->exists = true;
	i->subscribed = m->subscribed;
	i->special_use = m->special_use;
	i->messages = m->messages;
	i->unseen = m->unseen;
	i->deleted = m->deleted;
	i->uidnext = m->uidnext;
	i->uidvalidity = m->uidvalidity;
	i->bytes = m->bytes;
	i->highestmodseq = m->highestmodseq;
}

struct mbox_list {
	struct mbox_info *items;
	size_t n, cap;
	struct pool *pool;
};

static int collect_mbox(const struct store_mailbox *m, void *ctx)
{
	struct mbox_list *l = ctx;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 32;
		struct mbox_info *n = p_array(l->pool, ncap, sizeof(*n));
		if (l->n)
			memcpy(n, l->items, l->n * sizeof(*n));
		l->items = n;
		l->cap = ncap;
	}
	info_from(&l->items[l->n++], m, l->pool);
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	const struct mbox_info *x = a, *y = b;
	/* INBOX first, then by name */
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* All mailboxes of the account with implied parents added and the
 * children flags set, sorted. */
static int load_mailboxes(struct imap_session *s, struct pool *pool, struct mbox_list *l,
			  const char **error_r)
{
	memset(l, 0, sizeof(*l));
	l->pool = pool;
	struct store_txn *txn;
	if (store_read_begin(s->d->store, &txn, error_r) < 0)
		return -1;
	int ret = store_txn_mailbox_foreach(txn, s->account_id, collect_mbox, l, error_r);
	store_read_end(&txn);
	if (ret < 0)
		return -1;
	qsort(l->items, l->n, sizeof(*l->items), cmp_info);
	/* implied parents */
	size_t n0 = l->n;
	for (size_t i = 0; i < n0; i++) {
		const char *name = l->items[i].name;
		for (const char *sep = strchr(name, '/'); sep != NULL; sep = strchr(sep + 1, '/')) {
			char *parent = p_strndup(pool, name, (size_t)(sep - name));
			bool found = false;
			for (size_t k = 0; k < l->n && !found; k++)
				found = strcmp(l->items[k].name, parent) == 0;
			if (!found) {
				struct store_mailbox dummy;
				memset(&dummy, 0, sizeof(dummy));
				collect_mbox(&dummy, l);
				l->items[l->n - 1].name = parent;
				l->items[l->n - 1].exists = false;
			}
		}
	}
	if (l->n != n0)
		qsort(l->items, l->n, sizeof(*l->items), cmp_info);
	for (size_t i = 0; i < l->n; i++) {
		size_t len = strlen(l->items[i].name);
		/* sorted: children follow their parent ("a" < "a/b"), though
		 * names like "a-b" may sort between: scan forward */
		for (size_t k = i + 1; k < l->n; k++) {
			const char *o = l->items[k].name;
			if (strncmp(o, l->items[i].name, len) != 0)
				break;
			if (o[len] == '/') {
				l->items[i].has_children = true;
				break;
			}
		}
	}
	return 0;
}

/* RFC 9051 6.3.9: '*' matches anything, '%' anything but the separator. */
static bool pattern_match(const char *pat, const char *name)
{
	size_t pl = strlen(pat), nl = strlen(name);
	/* dp[j]: pat[0..i) matches name[0..j) */
	bool *dp = xcalloc(nl + 1, sizeof(bool)), *nx = xcalloc(nl + 1, sizeof(bool));
	dp[0] = true;
	for (size_t i = 0; i < pl; i++) {
		char c = pat[i];
		memset(nx, 0, nl + 1);
		if (c == '*' || c == '%') {
			/* some k <= j with dp[k], and for '%' no '/' in name[k..j) */
			bool run = false;
			for (size_t j = 0; j <= nl; j++) {
				if (c == '%' && j > 0 && name[j - 1] == '/')
					run = false;
				if (dp[j])
					run = true;
				nx[j] = run;
			}
		} else {
			for (size_t j = 0; j < nl; j++)
				nx[j + 1] = dp[j] && name[j] == c;
		}
		bool *t = dp;
		dp = nx;
		nx = t;
	}
	bool ret = dp[nl];
	free(dp);
	free(nx);
	return ret;
}

static bool mailbox_matches(const char *ref, const char *pat, const char *name)
{
	struct str full = STR_INIT;
	str_appends(&full, ref);
	str_appends(&full, pat);
	/* INBOX is case-insensitive */
	if (full.len >= 5 && strncasecmp(full.s, "INBOX", 5) == 0 &&
	    (full.s[5] == '\0' || full.s[5] == '/' || full.s[5] == '*' || full.s[5] == '%'))
		memcpy(full.s, "INBOX", 5);
	bool ret = pattern_match(full.s, name);
	str_free(&full);
	return ret;
}

static void write_special(struct str *out, unsigned su)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ MBOX_SPECIAL_SENT, "\\Sent" }, { MBOX_SPECIAL_DRAFTS, "\\Drafts" },
		{ MBOX_SPECIAL_TRASH, "\\Trash" }, { MBOX_SPECIAL_JUNK, "\\Junk" },
		{ MBOX_SPECIAL_ARCHIVE, "\\Archive" }, { MBOX_SPECIAL_ALL, "\\All" },
		{ MBOX_SPECIAL_FLAGGED, "\\Flagged" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (su & names[i].bit) {
			str_appendc(out, ' ');
			str_appends(out, names[i].name);
		}
	}
}

/* ---- STATUS ---- */

enum {
	STATUS_MESSAGES = 1 << 0,
	STATUS_UIDNEXT = 1 << 1,
	STATUS_UIDVALIDITY = 1 << 2,
	STATUS_UNSEEN = 1 << 3,
	STATUS_DELETED = 1 << 4,
	STATUS_SIZE = 1 << 5,
	STATUS_RECENT = 1 << 6,
	STATUS_HIGHESTMODSEQ = 1 << 7,
	STATUS_APPENDLIMIT = 1 << 8,
};

static int parse_status_items(const struct imap_arg *arg, unsigned *items_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{ "MESSAGES", STATUS_MESSAGES }, { "UIDNEXT", STATUS_UIDNEXT },
		{ "UIDVALIDITY", STATUS_UIDVALIDITY }, { "UNSEEN", STATUS_UNSEEN },
		{ "DELETED", STATUS_DELETED }, { "SIZE", STATUS_SIZE }, { "RECENT", STATUS_RECENT },
		{ "HIGHESTMODSEQ", STATUS_HIGHESTMODSEQ }, { "APPENDLIMIT", STATUS_APPENDLIMIT },
	};
	if (arg->type != IMAP_ARG_LIST || arg->len == 0)
		return -1;
	unsigned items = 0;
	for (size_t i = 0; i < arg->len; i++) {
		size_t k;
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (imap_arg_is_atom(&arg->list[i], names[k].name))
				break;
		if (k == sizeof(names) / sizeof(names[0]))
			return -1;
		items |= names[k].bit;
	}
	*items_r = items;
	return 0;
}

static void write_status(struct imap_session *s, const struct mbox_info *m, unsigned items)
{
	struct str *o = &s->out;
	str_appends(o, "* STATUS ");
	imap_write_mailbox(o, m->name, session_utf8(s));
	str_appends(o, " (");
	const char *sp = "";
#define ITEM(bit, fmt, val)                                        \
	if (items & (bit)) {                                       \
		str_printf(o, "%s" fmt, sp, val);                  \
		sp = " ";                                          \
	}
	ITEM(STATUS_MESSAGES, "MESSAGES %u", m->messages);
	ITEM(STATUS_UIDNEXT, "UIDNEXT %u", m->uidnext);
	ITEM(STATUS_UIDVALIDITY, "UIDVALIDITY %u", m->uidvalidity);
	ITEM(STATUS_UNSEEN, "UNSEEN %u", m->unseen);
	ITEM(STATUS_DELETED, "DELETED %u", m->deleted);
	ITEM(STATUS_SIZE, "SIZE %llu", (unsigned long long)m->bytes);
	ITEM(STATUS_RECENT, "RECENT %u", 0u);
	ITEM(STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu",
	     (unsigned long long)(m->highestmodseq ? m->highestmodseq : 1));
	ITEM(STATUS_APPENDLIMIT, "APPENDLIMIT %llu", (unsigned long long)s->d->appendlimit);
#undef ITEM
	str_appends(o, ")\r\n");
}

/* Looks a mailbox up by the client's name: 1 found, 0 not, -1 error. */
static int lookup(struct imap_session *s, const char *name, struct mbox_info *info_r,
		  struct pool *pool, const char **error_r)
{
	struct store_txn *txn;
	if (store_read_begin(s->d->store, &txn, error_r) < 0)
		return -1;
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = store_txn_mailbox_get(txn, s->account_id, name, m, error_r);
	store_read_end(&txn);
	if (ret == 1)
		info_from(info_r, m, pool);
	free(m);
	return ret;
}

enum cmd_result cmd_status(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args != 2)
		return cmd_bad(cmd, "STATUS expects a mailbox and items");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	unsigned items;
	if (parse_status_items(&cmd->args[1], &items) < 0)
		return cmd_bad(cmd, "Invalid status items");
	struct mbox_info info;
	int ret = lookup(s, name, &info, cmd->pool, &err);
	if (ret < 0)
		return cmd_store_error(cmd, "status", err);
	if (ret == 0)
		return cmd_no(cmd, "[NONEXISTENT] Mailbox does not exist");
	/* the selected mailbox: counts as this session knows them are the
	 * store's, which is what STATUS reports */
	write_status(s, &info, items);
	return cmd_ok(cmd, "STATUS completed");
}

/* ---- LIST ---- */

enum {
	SEL_SUBSCRIBED = 1 << 0,
	SEL_RECURSIVEMATCH = 1 << 1,
	SEL_SPECIAL_USE = 1 << 2,
	RET_SUBSCRIBED = 1 << 3,
	RET_CHILDREN = 1 << 4,
	RET_SPECIAL_USE = 1 << 5,
	RET_STATUS = 1 << 6,
};

static enum cmd_result do_list(struct imap_cmd *cmd, bool lsub)
{
	struct imap_session *s = cmd->s;
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->n_args, i = 0;
	unsigned opts = 0, status_items = 0;
	const char *err;
	if (!lsub && n > 0 && args[0].type == IMAP_ARG_LIST) {
		for (size_t k = 0; k < args[0].len; k++) {
			const struct imap_arg *o = &args[0].list[k];
			if (imap_arg_is_atom(o, "SUBSCRIBED"))
				opts |= SEL_SUBSCRIBED | RET_SUBSCRIBED;
			else if (imap_arg_is_atom(o, "REMOTE"))
				;
			else if (imap_arg_is_atom(o, "RECURSIVEMATCH"))
				opts |= SEL_RECURSIVEMATCH;
			else if (imap_arg_is_atom(o, "SPECIAL-USE"))
				opts |= SEL_SPECIAL_USE | RET_SPECIAL_USE;
			else
				return cmd_bad(cmd, "Unknown LIST selection option");
		}
		if ((opts & SEL_RECURSIVEMATCH) && !(opts & (SEL_SUBSCRIBED | SEL_SPECIAL_USE)))
			return cmd_bad(cmd, "RECURSIVEMATCH needs another selection option");
		i++;
	}
	if (n - i < 2)
		return cmd_bad(cmd, "LIST expects a reference and a mailbox pattern");
	const char *ref = imap_arg_astring(&args[i]);
	if (ref == NULL)
		return cmd_bad(cmd, "Invalid reference");
	/* patterns: list-mailbox (atom with wildcards allowed) or a list */
	const struct imap_arg *pats = &args[i + 1];
	size_t n_pats = 1;
	if (pats->type == IMAP_ARG_LIST) {
		if (lsub)
			return cmd_bad(cmd, "Invalid pattern");
		n_pats = pats->len;
		pats = pats->list;
	}
	i += 2;
	if (i < n) {
		if (lsub || !imap_arg_is_atom(&args[i], "RETURN") || i + 1 >= n ||
		    args[i + 1].type != IMAP_ARG_LIST || i + 2 != n)
			return cmd_bad(cmd, "Invalid LIST return options");
		const struct imap_arg *r = &args[i + 1];
		for (size_t k = 0; k < r->len; k++) {
			const struct imap_arg *o = &r->list[k];
			if (imap_arg_is_atom(o, "SUBSCRIBED"))
				opts |= RET_SUBSCRIBED;
			else if (imap_arg_is_atom(o, "CHILDREN"))
				opts |= RET_CHILDREN;
			else if (imap_arg_is_atom(o, "SPECIAL-USE"))
				opts |= RET_SPECIAL_USE;
			else if (imap_arg_is_atom(o, "STATUS") && k + 1 < r->len &&
				 parse_status_items(&r->list[k + 1], &status_items) == 0) {
				opts |= RET_STATUS;
				k++;
			} else {
				return cmd_bad(cmd, "Unknown LIST return option");
			}
		}
	}
	/* decode reference and patterns */
	struct str tmp = STR_INIT;
	const char *ref8 = ref;
	if (!session_utf8(s) && imap_utf7_to_utf8(ref, &tmp) == 0) {
		ref8 = p_strndup(cmd->pool, tmp.s ? tmp.s : "", tmp.len);
	}
	const char **pat8 = p_array(cmd->pool, n_pats ? n_pats : 1, sizeof(char *));
	for (size_t k = 0; k < n_pats; k++) {
		const struct imap_arg *p = &pats[k];
		const char *raw = p->type == IMAP_ARG_ATOM ? p->str : imap_arg_string(p);
		if (raw == NULL) {
			str_free(&tmp);
			return cmd_bad(cmd, "Invalid mailbox pattern");
		}
		str_truncate(&tmp, 0);
		if (!session_utf8(s) && imap_utf7_to_utf8(raw, &tmp) == 0)
			pat8[k] = p_strndup(cmd->pool, tmp.s ? tmp.s : "", tmp.len);
		else
			pat8[k] = raw;
	}
	str_free(&tmp);

	const char *cmdname = lsub ? "LSUB" : "LIST";
	/* LIST "" "": the hierarchy separator */
	if (n_pats == 1 && pat8[0][0] == '\0') {
		str_printf(&s->out, "* %s (\\Noselect) \"/\" \"\"\r\n", cmdname);
		return cmd_ok(cmd, "%s completed", cmdname);
	}
	struct mbox_list l;
	if (load_mailboxes(s, cmd->pool, &l, &err) < 0)
		return cmd_store_error(cmd, "list", err);
	/* a reference that names a mailbox: a trailing separator is part of it */
	for (size_t k = 0; k < l.n; k++) {
		const struct mbox_info *m = &l.items[k];
		bool match = false;
		for (size_t p = 0; p < n_pats && !match; p++)
			match = mailbox_matches(ref8, pat8[p], m->name);
		bool subscribed = m->exists && m->subscribed;
		bool child_subscribed = false;
		if (lsub || (opts & SEL_SUBSCRIBED)) {
			if (!subscribed) {
				/* RECURSIVEMATCH / LSUB '%': a parent of subscribed children */
				size_t len = strlen(m->name);
				for (size_t c = 0; c < l.n; c++)
					if (l.items[c].subscribed &&
					    strncmp(l.items[c].name, m->name, len) == 0 &&
					    l.items[c].name[len] == '/')
						child_subscribed = true;
				if (!(child_subscribed && (opts & SEL_RECURSIVEMATCH)) &&
				    !(lsub && child_subscribed && strchr(pat8[0], '%')))
					continue;
			}
		}
		if ((opts & SEL_SPECIAL_USE) && m->special_use == 0)
			continue;
		if (!match)
			continue;
		struct str *o = &s->out;
		str_printf(o, "* %s (", cmdname);
		size_t start = o->len;
		if (!m->exists)
			str_appends(o, " \\Noselect");
		if (!lsub)
			str_appends(o, m->has_children ? " \\HasChildren" : " \\HasNoChildren");
		if (!lsub && (opts & RET_SUBSCRIBED) && subscribed)
			str_appends(o, " \\Subscribed");
		if (!lsub && (opts & SEL_SUBSCRIBED) && !subscribed && !m->exists)
			str_appends(o, " \\NonExistent");
		if (!lsub)
			write_special(o, m->special_use);
		/* drop the leading space */
		if (o->len > start) {
			memmove(o->s + start, o->s + start + 1, o->len - start - 1);
			str_truncate(o, o->len - 1);
		}
		str_appends(o, ") \"/\" ");
		imap_write_mailbox(o, m->name, session_utf8(s));
		if (child_subscribed && (opts & SEL_RECURSIVEMATCH))
			str_appends(o, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		str_appends(o, "\r\n");
		if ((opts & RET_STATUS) && m->exists)
			write_status(s, m, status_items);
	}
	return cmd_ok(cmd, "%s completed", cmdname);
}

enum cmd_result cmd_list(struct imap_cmd *cmd)
{
	return do_list(cmd, false);
}

enum cmd_result cmd_lsub(struct imap_cmd *cmd)
{
	return do_list(cmd, true);
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE ---- */

struct mbox_op {
	uint32_t account_id;
	const char *name, *name2;
	uint32_t id;
	bool flag;
	unsigned special_use;
};

/* Creates the missing parents of name ("a" and "a/b" for "a/b/c"), as
 * CREATE and RENAME must (RFC 9051 6.3.4, 6.3.6). */
static int create_parents(struct store_txn *txn, uint32_t account_id, const char *name,
			  const char **error_r)
{
	struct str parent = STR_INIT;
	int ret = 0;
	for (const char *sep = strchr(name, '/'); sep != NULL; sep = strchr(sep + 1, '/')) {
		str_truncate(&parent, 0);
		str_append(&parent, name, (size_t)(sep - name));
		struct store_mailbox *m = xmalloc(sizeof(*m));
		int r = store_txn_mailbox_get(txn, account_id, parent.s, m, error_r);
		free(m);
		uint32_t id;
		if (r < 0 || (r == 0 && store_txn_mailbox_create(txn, account_id, parent.s, 0, &id,
								 error_r) < 0)) {
			ret = -1;
			break;
		}
	}
	str_free(&parent);
	return ret;
}

static int create_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct mbox_op *op = ctx;
	/* parents first (RFC 9051 6.3.4) */
	if (create_parents(txn, op->account_id, op->name, error_r) < 0)
		return -1;
	return store_txn_mailbox_create(txn, op->account_id, op->name, op->special_use, &op->id,
					error_r);
}

static bool valid_new_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > STORE_MAILBOX_NAME_MAX || name[0] == '/' || strstr(name, "//"))
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '*' || *p == '%')
			return false;
	return true;
}

enum cmd_result cmd_create(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args < 1 || cmd->n_args > 2)
		return cmd_bad(cmd, "CREATE expects a mailbox name");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	char *n = p_strdup(cmd->pool, name);
	size_t len = strlen(n);
	while (len > 0 && n[len - 1] == '/')
		n[--len] = '\0';
	if (!valid_new_name(n))
		return cmd_no(cmd, "[CANNOT] Invalid mailbox name");
	if (strcasecmp(n, "INBOX") == 0)
		return cmd_no(cmd, "[ALREADYEXISTS] INBOX always exists");
	struct mbox_op op = { .account_id = s->account_id, .name = n };
	/* CREATE-SPECIAL-USE (RFC 6154 3): (USE (\Sent)) */
	if (cmd->n_args == 2) {
		const struct imap_arg *a = &cmd->args[1];
		if (a->type != IMAP_ARG_LIST || a->len != 2 || !imap_arg_is_atom(&a->list[0], "USE") ||
		    a->list[1].type != IMAP_ARG_LIST)
			return cmd_bad(cmd, "Invalid CREATE parameters");
		static const struct {
			const char *name;
			unsigned bit;
		} su[] = { { "\\Sent", MBOX_SPECIAL_SENT }, { "\\Drafts", MBOX_SPECIAL_DRAFTS },
			   { "\\Trash", MBOX_SPECIAL_TRASH }, { "\\Junk", MBOX_SPECIAL_JUNK },
			   { "\\Archive", MBOX_SPECIAL_ARCHIVE }, { "\\All", MBOX_SPECIAL_ALL },
			   { "\\Flagged", MBOX_SPECIAL_FLAGGED } };
		for (size_t k = 0; k < a->list[1].len; k++) {
			size_t j;
			for (j = 0; j < sizeof(su) / sizeof(su[0]); j++)
				if (imap_arg_is_atom(&a->list[1].list[k], su[j].name))
					break;
			if (j == sizeof(su) / sizeof(su[0]))
				return cmd_no(cmd, "[USEATTR] Unsupported special-use attribute");
			op.special_use |= su[j].bit;
		}
	}
	if (store_write(s->d->store, create_fn, &op, &err) < 0) {
		if (err == STORE_ERR_EXISTS)
			return cmd_no(cmd, "[ALREADYEXISTS] Mailbox already exists");
		if (strcmp(err, "invalid mailbox name") == 0)
			return cmd_no(cmd, "[CANNOT] Invalid mailbox name");
		return cmd_store_error(cmd, "create", err);
	}
	return cmd_ok(cmd, "CREATE completed");
}

static int by_name_fn(struct store_txn *txn, struct mbox_op *op, const char *name,
		      const char **error_r)
{
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int r = store_txn_mailbox_get(txn, op->account_id, name, m, error_r);
	op->id = m->id;
	free(m);
	if (r == 0)
		*error_r = STORE_ERR_NO_MAILBOX;
	return r <= 0 ? -1 : 0;
}

static int delete_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct mbox_op *op = ctx;
	if (by_name_fn(txn, op, op->name, error_r) < 0)
		return -1;
	return store_txn_mailbox_delete(txn, op->id, error_r);
}

enum cmd_result cmd_delete(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args != 1)
		return cmd_bad(cmd, "DELETE expects a mailbox name");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	if (strcasecmp(name, "INBOX") == 0)
		return cmd_no(cmd, "[CANNOT] INBOX cannot be deleted");
	struct mbox_op op = { .account_id = s->account_id, .name = name };
	if (store_write(s->d->store, delete_fn, &op, &err) < 0)
		return cmd_store_error(cmd, "delete", err);
	if (s->view != NULL && s->view->mailbox_id == op.id) {
		/* our own selected mailbox: back to authenticated */
		view_free(&s->view);
		s->state = IMAP_AUTH;
	}
	return cmd_ok(cmd, "DELETE completed");
}

static int rename_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct mbox_op *op = ctx;
	if (by_name_fn(txn, op, op->name, error_r) < 0)
		return -1;
	/* parents of the new name */
	if (create_parents(txn, op->account_id, op->name2, error_r) < 0)
		return -1;
	return store_txn_mailbox_rename(txn, op->id, op->name2, error_r);
}

enum cmd_result cmd_rename(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args != 2)
		return cmd_bad(cmd, "RENAME expects two mailbox names");
	const char *from = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (from == NULL)
		return cmd_bad(cmd, "%s", err);
	const char *to = session_mailbox_name(s, &cmd->args[1], cmd->pool, &err);
	if (to == NULL)
		return cmd_bad(cmd, "%s", err);
	char *t = p_strdup(cmd->pool, to);
	size_t len = strlen(t);
	while (len > 0 && t[len - 1] == '/')
		t[--len] = '\0';
	if (!valid_new_name(t) || strcasecmp(t, "INBOX") == 0)
		return cmd_no(cmd, "[CANNOT] Invalid new mailbox name");
	struct mbox_op op = { .account_id = s->account_id, .name = from, .name2 = t };
	if (store_write(s->d->store, rename_fn, &op, &err) < 0) {
		if (err == STORE_ERR_EXISTS)
			return cmd_no(cmd, "[ALREADYEXISTS] Target mailbox already exists");
		return cmd_store_error(cmd, "rename", err);
	}
	return cmd_ok(cmd, "RENAME completed");
}

static int subscribe_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct mbox_op *op = ctx;
	if (by_name_fn(txn, op, op->name, error_r) < 0)
		return -1;
	return store_txn_mailbox_subscribe(txn, op->id, op->flag, error_r);
}

static enum cmd_result do_subscribe(struct imap_cmd *cmd, bool on)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args != 1)
		return cmd_bad(cmd, "Expected a mailbox name");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	struct mbox_op op = { .account_id = s->account_id, .name = name, .flag = on };
	if (store_write(s->d->store, subscribe_fn, &op, &err) < 0) {
		if (err == STORE_ERR_NO_MAILBOX && !on)
			return cmd_ok(cmd, "UNSUBSCRIBE completed");
		return cmd_store_error(cmd, on ? "subscribe" : "unsubscribe", err);
	}
	return cmd_ok(cmd, "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

enum cmd_result cmd_subscribe(struct imap_cmd *cmd)
{
	return do_subscribe(cmd, true);
}

enum cmd_result cmd_unsubscribe(struct imap_cmd *cmd)
{
	return do_subscribe(cmd, false);
}

/* ---- SELECT / EXAMINE ---- */

struct select_ctx {
	struct imap_view *v;
	uint32_t first_unseen;
	uint64_t changed_since;       /* QRESYNC/CONDSTORE: report FETCH for modseq > this */
	uint32_t *changed;
	size_t n_changed, cap_changed;
};

static int select_msg(const struct store_message *msg, void *ctx)
{
	struct select_ctx *c = ctx;
	view_append(c->v, msg->uid);
	if (c->first_unseen == 0 && !(msg->flags & MSG_SEEN))
		c->first_unseen = (uint32_t)c->v->n;
	if (c->changed_since > 0 && msg->modseq > c->changed_since) {
		if (c->n_changed == c->cap_changed) {
			c->cap_changed = c->cap_changed ? c->cap_changed * 2 : 64;
			c->changed = xreallocarray(c->changed, c->cap_changed, sizeof(uint32_t));
		}
		c->changed[c->n_changed++] = msg->uid;
	}
	return 0;
}

struct vanished_ctx {
	uint32_t *uids;
	size_t n, cap;
};

static int vanished_change(uint64_t modseq, uint32_t uid, enum store_change_kind kind, void *ctx)
{
	struct vanished_ctx *c = ctx;
	(void)modseq;
	if (kind != CHANGE_EXPUNGE)
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->uids = xreallocarray(c->uids, c->cap, sizeof(uint32_t));
	}
	c->uids[c->n++] = uid;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static enum cmd_result do_select(struct imap_cmd *cmd, bool read_only)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args < 1 || cmd->n_args > 2)
		return cmd_bad(cmd, "Expected a mailbox name");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	bool condstore = false, qresync = false;
	uint64_t q_validity = 0, q_modseq = 0;
	const char *q_known = NULL;
	if (cmd->n_args == 2) {
		const struct imap_arg *p = &cmd->args[1];
		if (p->type != IMAP_ARG_LIST)
			return cmd_bad(cmd, "Invalid SELECT parameters");
		for (size_t k = 0; k < p->len; k++) {
			if (imap_arg_is_atom(&p->list[k], "CONDSTORE")) {
				condstore = true;
			} else if (imap_arg_is_atom(&p->list[k], "QRESYNC") && k + 1 < p->len &&
				   p->list[k + 1].type == IMAP_ARG_LIST) {
				if (!(s->enabled & ENABLED_QRESYNC))
					return cmd_bad(cmd, "QRESYNC is not enabled");
				const struct imap_arg *q = &p->list[k + 1];
				if (q->len < 2 || !imap_arg_number(&q->list[0], UINT32_MAX, &q_validity) ||
				    !imap_arg_number(&q->list[1], UINT64_MAX / 2, &q_modseq) ||
				    q_validity == 0 || q_modseq == 0)
					return cmd_bad(cmd, "Invalid QRESYNC parameters");
				if (q->len >= 3) {
					if (q->list[2].type != IMAP_ARG_ATOM)
						return cmd_bad(cmd, "Invalid known UIDs");
					q_known = q->list[2].str;
				}
				qresync = true;
				k++;
			} else {
				return cmd_bad(cmd, "Unknown SELECT parameter");
			}
		}
	}
	/* leaving the previous mailbox (RFC 7162 3.2.11: [CLOSED]) */
	if (s->view != NULL) {
		view_free(&s->view);
		s->state = IMAP_AUTH;
		if (s->enabled & ENABLED_QRESYNC)
			str_appends(&s->out, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	if (condstore)
		s->enabled |= ENABLED_CONDSTORE;

	struct store_txn *txn;
	if (store_read_begin(s->d->store, &txn, &err) < 0)
		return cmd_store_error(cmd, "select", err);
	struct store_mailbox *m = xmalloc(sizeof(*m));
	int ret = store_txn_mailbox_get(txn, s->account_id, name, m, &err);
	if (ret <= 0) {
		store_read_end(&txn);
		free(m);
		if (ret == 0)
			return cmd_no(cmd, "[NONEXISTENT] Mailbox does not exist");
		return cmd_store_error(cmd, "select", err);
	}
	struct imap_view *v = xcalloc(1, sizeof(*v));
	v->mailbox_id = m->id;
	v->uidvalidity = m->uidvalidity;
	v->uidnext = m->uidnext;
	v->highestmodseq = m->highestmodseq;
	v->read_only = read_only;
	v->name = xstrdup(m->name);
	view_set_keywords(v, m);
	struct select_ctx sc = { .v = v };
	bool resync = qresync && q_validity == m->uidvalidity;
	if (resync)
		sc.changed_since = q_modseq;
	if (store_txn_message_foreach(txn, m->id, 1, UINT32_MAX, select_msg, &sc, &err) < 0) {
		store_read_end(&txn);
		free(m);
		view_free(&v);
		free(sc.changed);
		return cmd_store_error(cmd, "select", err);
	}
	struct str *o = &s->out;
	bool rev2 = (s->enabled & ENABLED_REV2) != 0;
	str_appends(o, "* FLAGS ");
	view_write_flags(v, o, false);
	str_printf(o, "\r\n* OK [PERMANENTFLAGS ");
	if (read_only)
		str_appends(o, "()");
	else
		view_write_flags(v, o, true);
	str_printf(o, "] Flags permitted\r\n* %zu EXISTS\r\n", v->n);
	if (!rev2) {
		str_appends(o, "* 0 RECENT\r\n");
		if (sc.first_unseen)
			str_printf(o, "* OK [UNSEEN %u] First unseen\r\n", sc.first_unseen);
	}
	str_printf(o, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
		   v->uidvalidity, v->uidnext);
	str_printf(o, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		   (unsigned long long)(v->highestmodseq ? v->highestmodseq : 1));
	if (rev2) {
		str_appends(o, "* LIST () \"/\" ");
		imap_write_mailbox(o, v->name, session_utf8(s));
		str_appends(o, "\r\n");
	}
	if (resync) {
		/* VANISHED (EARLIER): known UIDs that are gone, or the log's expunges */
		struct vanished_ctx vc = { 0 };
		if (q_known != NULL) {
			struct seqset known;
			if (seqset_parse(q_known, UINT32_MAX, cmd->pool, &known, &err) == 0) {
				for (size_t r = 0; r < known.n; r++) {
					uint64_t hi = known.ranges[r].hi;
					if (hi >= v->uidnext)
						hi = v->uidnext ? v->uidnext - 1 : 0;
					/* bounded by the mailbox's UID range */
					for (uint64_t u = known.ranges[r].lo; u <= hi; u++) {
						if (view_find(v, (uint32_t)u) >= 0)
							continue;
						vanished_change(0, (uint32_t)u, CHANGE_EXPUNGE, &vc);
						if (vc.n > 1000000)
							break;
					}
				}
			}
		} else if (store_txn_changes(txn, m->id, q_modseq, vanished_change, &vc, &err) < 0) {
			log_err("session=%u error=\"store changes: %s\"", s->id, err);
		}
		if (vc.n > 0) {
			qsort(vc.uids, vc.n, sizeof(uint32_t), cmp_u32);
			str_appends(o, "* VANISHED (EARLIER) ");
			seqset_write_sorted(o, vc.uids, vc.n);
			str_appends(o, "\r\n");
		}
		free(vc.uids);
		for (size_t k = 0; k < sc.n_changed; k++) {
			struct store_message msg;
			if (store_txn_message_get(txn, m->id, sc.changed[k], &msg, &err) <= 0)
				continue;
			str_printf(o, "* %ld FETCH (UID %u FLAGS ", view_find(v, msg.uid) + 1, msg.uid);
			view_write_msg_flags(v, &msg, o);
			str_printf(o, " MODSEQ (%llu))\r\n", (unsigned long long)msg.modseq);
		}
	}
	store_read_end(&txn);
	free(sc.changed);
	free(m);
	s->view = v;
	s->state = IMAP_SELECTED;
	return cmd_ok(cmd, "[%s] %s completed", read_only ? "READ-ONLY" : "READ-WRITE",
		      read_only ? "EXAMINE" : "SELECT");
}

enum cmd_result cmd_select(struct imap_cmd *cmd)
{
	return do_select(cmd, false);
}

enum cmd_result cmd_examine(struct imap_cmd *cmd)
{
	return do_select(cmd, true);
}

/* ---- APPEND ---- */

enum cmd_result cmd_append(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args < 2 || cmd->n_args > 4)
		return cmd_bad(cmd, "APPEND expects a mailbox, optional flags and date, and a message");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	size_t i = 1;
	struct flag_list fl = { 0 };
	if (cmd->args[i].type == IMAP_ARG_LIST) {
		if (parse_flag_list(&cmd->args[i], cmd->pool, &fl, &err) < 0)
			return cmd_bad(cmd, "%s", err);
		i++;
	}
	int64_t date = 0;
	if (i < cmd->n_args && cmd->args[i].type == IMAP_ARG_QUOTED) {
		if (!imap_datetime_parse(cmd->args[i].str, &date))
			return cmd_bad(cmd, "Invalid date-time");
		i++;
	}
	/* UTF8 (RFC 6855 4): UTF8 (~{N}) */
	const struct imap_arg *msg = i < cmd->n_args ? &cmd->args[i] : NULL;
	if (msg != NULL && imap_arg_is_atom(msg, "UTF8") && i + 1 < cmd->n_args &&
	    cmd->args[i + 1].type == IMAP_ARG_LIST && cmd->args[i + 1].len == 1) {
		msg = &cmd->args[i + 1].list[0];
		i++;
	}
	if (msg == NULL || msg->type != IMAP_ARG_LITERAL || i + 1 != cmd->n_args)
		return cmd_bad(cmd, "APPEND expects the message as a literal");
	if (msg->len == 0)
		return cmd_no(cmd, "Empty message");
	if (msg->len > s->d->appendlimit)
		return cmd_no(cmd, "[TOOBIG] Message too large");
	if (!msg->literal8 && memchr(msg->str, '\0', msg->len) != NULL)
		return cmd_no(cmd, "Message contains NUL; use a literal8 (~{N})");

	/* the store keeps CRLF line ends (what RFC822.SIZE counts) */
	struct str norm = STR_INIT;
	const char *data = msg->str;
	size_t len = msg->len;
	for (size_t k = 0; k < len; k++) {
		if (data[k] == '\n' ? (k == 0 || data[k - 1] != '\r')
				    : (data[k] == '\r' && (k + 1 == len || data[k + 1] != '\n'))) {
			mime_crlf_normalize(data, len, &norm);
			data = norm.s;
			len = norm.len;
			break;
		}
	}
	struct str cache = STR_INIT;
	mime_cache_from_message(data, len, &cache);
	if (fl.keywords != NULL)
		fl.keywords[fl.n_keywords] = NULL; /* parse_flag_list left room */

	struct store_mailbox *mb = xmalloc(sizeof(*mb));
	struct store_txn *txn;
	int ret = store_read_begin(s->d->store, &txn, &err);
	if (ret == 0) {
		ret = store_txn_mailbox_get(txn, s->account_id, name, mb, &err);
		store_read_end(&txn);
	}
	uint32_t mbox_id = mb->id;
	free(mb);
	if (ret <= 0) {
		str_free(&norm);
		str_free(&cache);
		if (ret == 0)
			return cmd_no(cmd, "[TRYCREATE] Mailbox does not exist");
		return cmd_store_error(cmd, "append", err);
	}
	struct store_rcpt rcpt = {
		.address = s->user,
		.mailbox_id = mbox_id,
		.flags = fl.flags,
		.keywords = fl.keywords,
	};
	struct store_delivery dl = {
		.data = data, .size = len, .parsed = cache.s, .parsed_size = cache.len,
		.internal_date = date, .rcpts = &rcpt, .n_rcpts = 1,
	};
	ret = store_deliver(s->d->store, &dl, 1, &err);
	str_free(&norm);
	str_free(&cache);
	if (ret < 0)
		return cmd_store_error(cmd, "append", err);
	switch (rcpt.status) {
	case RCPT_OK:
		break;
	case RCPT_OVER_QUOTA:
	case RCPT_TOO_BIG:
		return cmd_no(cmd, "[OVERQUOTA] Quota exceeded (mailbox is full)");
	case RCPT_NO_MAILBOX:
		return cmd_no(cmd, "[TRYCREATE] Mailbox does not exist");
	case RCPT_NO_ACCOUNT:
	case RCPT_ERROR:
		return cmd_store_error(cmd, "append", "delivery failed");
	}
	return cmd_ok(cmd, "[APPENDUID %u %u] APPEND completed", rcpt.uidvalidity, rcpt.uid);
}

/* ---- QUOTA (RFC 9208) ---- */

static enum cmd_result write_quota(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	struct store_account *a = xmalloc(sizeof(*a));
	int ret = store_account_get(s->d->store, s->user, a, &err);
	if (ret <= 0) {
		free(a);
		return cmd_store_error(cmd, "quota", ret == 0 ? "account vanished" : err);
	}
	str_appends(&s->out, "* QUOTA \"\" (");
	const char *sp = "";
	if (a->quota_bytes > 0) {
		str_printf(&s->out, "STORAGE %llu %llu", (unsigned long long)((a->used_bytes + 1023) / 1024),
			   (unsigned long long)(a->quota_bytes / 1024));
		sp = " ";
	}
	if (a->quota_messages > 0)
		str_printf(&s->out, "%sMESSAGE %llu %llu", sp, (unsigned long long)a->used_messages,
			   (unsigned long long)a->quota_messages);
	str_appends(&s->out, ")\r\n");
	free(a);
	return CMD_DONE;
}

enum cmd_result cmd_getquotaroot(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args != 1)
		return cmd_bad(cmd, "GETQUOTAROOT expects a mailbox name");
	const char *name = session_mailbox_name(s, &cmd->args[0], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	struct mbox_info info;
	int ret = lookup(s, name, &info, cmd->pool, &err);
	if (ret < 0)
		return cmd_store_error(cmd, "getquotaroot", err);
	if (ret == 0)
		return cmd_no(cmd, "[NONEXISTENT] Mailbox does not exist");
	str_appends(&s->out, "* QUOTAROOT ");
	imap_write_mailbox(&s->out, info.name, session_utf8(s));
	str_appends(&s->out, " \"\"\r\n");
	write_quota(cmd);
	if (s->tagged.len > 0)
		return CMD_DONE; /* an error was written */
	return cmd_ok(cmd, "GETQUOTAROOT completed");
}

enum cmd_result cmd_getquota(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (cmd->n_args != 1)
		return cmd_bad(cmd, "GETQUOTA expects a quota root");
	const char *root = imap_arg_astring(&cmd->args[0]);
	if (root == NULL || root[0] != '\0')
		return cmd_no(cmd, "[NONEXISTENT] No such quota root");
	write_quota(cmd);
	if (s->tagged.len > 0)
		return CMD_DONE;
	return cmd_ok(cmd, "GETQUOTA completed");
}

enum cmd_result cmd_setquota(struct imap_cmd *cmd)
{
	return cmd_no(cmd, "[NOPERM] Quotas are set by the administrators");
}
