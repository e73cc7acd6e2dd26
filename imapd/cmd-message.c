/* Commands of the selected state: STORE (UNCHANGEDSINCE), COPY/MOVE
 * (UIDPLUS), EXPUNGE/UID EXPUNGE, CLOSE, UNSELECT, SEARCH (ESEARCH). FETCH
 * is in imap-fetch.c. */
#include "config.h"
#include "imap-pool.h"
#include "imap-search.h"
#include "imap-seqset.h"
#include "imap-session.h"
#include "imap-write.h"
#include "log.h"
#include "mime.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Removes uids (sorted) from the view, writing EXPUNGE or VANISHED. */
static void report_expunged(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct imap_view *v = s->view;
	bool qresync = (s->enabled & ENABLED_QRESYNC) != 0;
	uint32_t *gone = xcalloc(n ? n : 1, sizeof(uint32_t));
	size_t n_gone = 0;
	for (size_t i = n; i-- > 0;) {
		long idx = view_find(v, uids[i]);
		if (idx < 0)
			continue;
		if (!qresync)
			str_printf(&s->out, "* %ld EXPUNGE\r\n", idx + 1);
		view_remove_at(v, (size_t)idx);
		gone[n_gone++] = uids[i];
	}
	if (qresync && n_gone > 0) {
		qsort(gone, n_gone, sizeof(uint32_t), cmp_u32);
		str_appends(&s->out, "* VANISHED ");
		seqset_write_sorted(&s->out, gone, n_gone);
		str_appends(&s->out, "\r\n");
	}
	free(gone);
}

/* ---- STORE ---- */

struct store_ctx {
	uint32_t mailbox_id;
	const uint32_t *uids;
	size_t n;
	enum store_flag_mode mode;
	struct flag_list fl;
	uint64_t unchangedsince;
	/* out */
	struct store_message *after;  /* n entries; uid 0 when missing */
	bool *modified;               /* UNCHANGEDSINCE failed */
	bool *changed;
};

static int store_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct store_ctx *c = ctx;
	uint64_t kw = 0;
	for (size_t i = 0; i < c->fl.n_keywords; i++) {
		int idx = store_txn_keyword_index(txn, c->mailbox_id, c->fl.keywords[i],
						  c->mode != FLAGS_REMOVE, error_r);
		if (idx < 0) {
			if (c->mode == FLAGS_REMOVE)
				continue; /* not in the mailbox: nothing to remove */
			return -1;
		}
		kw |= (uint64_t)1 << idx;
	}
	for (size_t i = 0; i < c->n; i++) {
		struct store_message before;
		int r = store_txn_message_get(txn, c->mailbox_id, c->uids[i], &before, error_r);
		if (r < 0)
			return -1;
		c->changed[i] = false;
		c->modified[i] = false;
		if (r == 0) {
			c->after[i].uid = 0;
			continue;
		}
		r = store_txn_message_flags(txn, c->mailbox_id, c->uids[i], c->mode, c->fl.flags, kw,
					    c->unchangedsince, &c->after[i], error_r);
		if (r < 0)
			return -1;
		if (r == 1)
			c->modified[i] = true;
		else
			c->changed[i] = c->after[i].modseq != before.modseq;
	}
	return 0;
}

enum cmd_result cmd_store(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_view *v = s->view;
	const char *err;
	size_t i = 0;
	if (cmd->n_args < 3 || cmd->args[0].type != IMAP_ARG_ATOM)
		return cmd_bad(cmd, "STORE expects a sequence set, an action and flags");
	struct store_ctx c = { .mailbox_id = v->mailbox_id,
			       .unchangedsince = STORE_NO_UNCHANGEDSINCE };
	const char *set = cmd->args[i++].str;
	if (cmd->args[i].type == IMAP_ARG_LIST) {
		const struct imap_arg *m = &cmd->args[i++];
		if (m->len != 2 || !imap_arg_is_atom(&m->list[0], "UNCHANGEDSINCE") ||
		    !imap_arg_number(&m->list[1], UINT64_MAX / 2, &c.unchangedsince))
			return cmd_bad(cmd, "Invalid STORE modifier");
		s->enabled |= ENABLED_CONDSTORE;
	}
	if (i + 2 != cmd->n_args || cmd->args[i].type != IMAP_ARG_ATOM)
		return cmd_bad(cmd, "STORE expects an action and flags");
	const char *act = cmd->args[i].str;
	bool silent = false;
	size_t alen = strlen(act);
	if (alen > 7 && strcasecmp(act + alen - 7, ".SILENT") == 0) {
		silent = true;
		alen -= 7;
	}
	if (alen == 5 && strncasecmp(act, "FLAGS", 5) == 0)
		c.mode = FLAGS_SET;
	else if (alen == 6 && strncasecmp(act, "+FLAGS", 6) == 0)
		c.mode = FLAGS_ADD;
	else if (alen == 6 && strncasecmp(act, "-FLAGS", 6) == 0)
		c.mode = FLAGS_REMOVE;
	else
		return cmd_bad(cmd, "Invalid STORE action");
	if (parse_flag_list(&cmd->args[i + 1], cmd->pool, &c.fl, &err) < 0)
		return cmd_bad(cmd, "%s", err);
	uint32_t *uids;
	size_t n;
	if (view_resolve_set(v, set, cmd->uid, cmd->pool, &uids, &n, &err) < 0)
		return cmd_bad(cmd, "%s", err);
	if (v->read_only)
		return cmd_no(cmd, "[READ-ONLY] Mailbox is read-only");
	qsort(uids, n, sizeof(uint32_t), cmp_u32);
	c.uids = uids;
	c.n = n;
	c.after = p_array(cmd->pool, n ? n : 1, sizeof(*c.after));
	c.modified = p_array(cmd->pool, n ? n : 1, sizeof(bool));
	c.changed = p_array(cmd->pool, n ? n : 1, sizeof(bool));
	if (n > 0 && store_write(s->d->store, store_fn, &c, &err) < 0) {
		if (strcmp(err, "too many keywords") == 0)
			return cmd_no(cmd, "[LIMIT] Too many keywords in this mailbox");
		return cmd_store_error(cmd, "store", err);
	}
	/* new keywords: announce them before the FETCH responses use them */
	if (c.fl.n_keywords > 0 && c.mode != FLAGS_REMOVE) {
		struct store_txn *txn;
		struct store_mailbox *mb = xmalloc(sizeof(*mb));
		if (store_read_begin(s->d->store, &txn, &err) == 0) {
			if (store_txn_mailbox_get_id(txn, v->mailbox_id, mb, &err) == 1 &&
			    view_set_keywords(v, mb)) {
				str_appends(&s->out, "* FLAGS ");
				view_write_flags(v, &s->out, false);
				str_appends(&s->out, "\r\n* OK [PERMANENTFLAGS ");
				view_write_flags(v, &s->out, true);
				str_appends(&s->out, "] Flags permitted\r\n");
			}
			store_read_end(&txn);
		}
		free(mb);
	}
	bool condstore = (s->enabled & ENABLED_CONDSTORE) != 0;
	struct str modified = STR_INIT;
	uint32_t *mod_nums = p_array(cmd->pool, n ? n : 1, sizeof(uint32_t));
	size_t n_mod = 0;
	for (size_t k = 0; k < n; k++) {
		const struct store_message *m = &c.after[k];
		if (m->uid == 0)
			continue;
		long idx = view_find(v, m->uid);
		if (c.modified[k]) {
			mod_nums[n_mod++] = cmd->uid ? m->uid : (uint32_t)(idx + 1);
			continue;
		}
		if (c.changed[k])
			view_note_own_modseq(v, m->modseq);
		/* RFC 7162 3.2: with UNCHANGEDSINCE, .SILENT still reports MODSEQ */
		if (silent && !(c.unchangedsince != STORE_NO_UNCHANGEDSINCE && c.changed[k]))
			continue;
		str_printf(&s->out, "* %ld FETCH (", idx + 1);
		if (!silent) {
			str_appends(&s->out, "FLAGS ");
			view_write_msg_flags(v, m, &s->out);
		}
		if (cmd->uid)
			str_printf(&s->out, "%sUID %u", silent ? "" : " ", m->uid);
		if (condstore)
			str_printf(&s->out, "%sMODSEQ (%llu)", silent && !cmd->uid ? "" : " ",
				   (unsigned long long)m->modseq);
		str_appends(&s->out, ")\r\n");
	}
	if (n_mod > 0) {
		qsort(mod_nums, n_mod, sizeof(uint32_t), cmp_u32);
		seqset_write_sorted(&modified, mod_nums, n_mod);
		cmd_ok(cmd, "[MODIFIED %s] Conditional STORE failed", modified.s);
		str_free(&modified);
		return CMD_DONE;
	}
	return cmd_ok(cmd, "%sSTORE completed", cmd->uid ? "UID " : "");
}

/* ---- COPY / MOVE ---- */

struct copy_ctx {
	uint32_t src, dst;
	const uint32_t *uids;
	size_t n;
	bool move;
	uint32_t *new_uids;
};

static int copy_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct copy_ctx *c = ctx;
	return store_txn_copy(txn, c->src, c->uids, c->n, c->dst, c->move, c->new_uids, error_r);
}

static enum cmd_result do_copy(struct imap_cmd *cmd, bool move)
{
	struct imap_session *s = cmd->s;
	struct imap_view *v = s->view;
	const char *err;
	if (cmd->n_args != 2 || cmd->args[0].type != IMAP_ARG_ATOM)
		return cmd_bad(cmd, "Expected a sequence set and a mailbox");
	const char *name = session_mailbox_name(s, &cmd->args[1], cmd->pool, &err);
	if (name == NULL)
		return cmd_bad(cmd, "%s", err);
	uint32_t *uids;
	size_t n;
	if (view_resolve_set(v, cmd->args[0].str, cmd->uid, cmd->pool, &uids, &n, &err) < 0)
		return cmd_bad(cmd, "%s", err);
	if (move && v->read_only)
		return cmd_no(cmd, "[READ-ONLY] Mailbox is read-only");
	qsort(uids, n, sizeof(uint32_t), cmp_u32);
	struct store_txn *txn;
	struct store_mailbox *mb = xmalloc(sizeof(*mb));
	int ret = store_read_begin(s->d->store, &txn, &err);
	if (ret == 0) {
		ret = store_txn_mailbox_get(txn, s->account_id, name, mb, &err);
		store_read_end(&txn);
	}
	uint32_t dst = mb->id, dst_validity = mb->uidvalidity;
	free(mb);
	if (ret < 0)
		return cmd_store_error(cmd, move ? "move" : "copy", err);
	if (ret == 0)
		return cmd_no(cmd, "[TRYCREATE] Mailbox does not exist");
	if (n == 0)
		return cmd_ok(cmd, "%s%s completed (nothing to do)", cmd->uid ? "UID " : "",
			      move ? "MOVE" : "COPY");
	struct copy_ctx c = { .src = v->mailbox_id, .dst = dst, .uids = uids, .n = n, .move = move,
			      .new_uids = p_array(cmd->pool, n, sizeof(uint32_t)) };
	if (store_write(s->d->store, copy_fn, &c, &err) < 0)
		return cmd_store_error(cmd, move ? "move" : "copy", err);
	/* COPYUID: the pairs that were copied */
	uint32_t *src_ok = p_array(cmd->pool, n, sizeof(uint32_t));
	uint32_t *dst_ok = p_array(cmd->pool, n, sizeof(uint32_t));
	size_t n_ok = 0;
	for (size_t k = 0; k < n; k++) {
		if (c.new_uids[k] == 0)
			continue;
		src_ok[n_ok] = uids[k];
		dst_ok[n_ok++] = c.new_uids[k];
	}
	struct str code = STR_INIT;
	if (n_ok > 0) {
		str_printf(&code, "[COPYUID %u ", dst_validity);
		seqset_write_ordered(&code, src_ok, n_ok);
		str_appendc(&code, ' ');
		seqset_write_ordered(&code, dst_ok, n_ok);
		str_appends(&code, "] ");
	}
	if (move) {
		/* RFC 6851 4.3: COPYUID untagged before the expunges */
		if (code.len > 0)
			str_printf(&s->out, "* OK %sMoved\r\n", code.s);
		report_expunged(s, src_ok, n_ok);
		str_free(&code);
		return cmd_ok(cmd, "%sMOVE completed", cmd->uid ? "UID " : "");
	}
	cmd_ok(cmd, "%s%sCOPY completed", code.len ? code.s : "", cmd->uid ? "UID " : "");
	str_free(&code);
	return CMD_DONE;
}

enum cmd_result cmd_copy(struct imap_cmd *cmd)
{
	return do_copy(cmd, false);
}

enum cmd_result cmd_move(struct imap_cmd *cmd)
{
	return do_copy(cmd, true);
}

/* ---- EXPUNGE / CLOSE / UNSELECT ---- */

struct expunge_ctx {
	uint32_t mailbox_id;
	const struct seqset *only;    /* UID EXPUNGE set, or NULL */
	uint32_t *uids;
	size_t n, cap;
};

static int deleted_msg(const struct store_message *msg, void *ctx)
{
	struct expunge_ctx *c = ctx;
	if (!(msg->flags & MSG_DELETED))
		return 0;
	if (c->only != NULL && !seqset_contains(c->only, msg->uid))
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->uids = xreallocarray(c->uids, c->cap, sizeof(uint32_t));
	}
	c->uids[c->n++] = msg->uid;
	return 0;
}

static int expunge_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct expunge_ctx *c = ctx;
	/* collected inside the write transaction, so a flag changed since
	 * counts */
	c->n = 0;
	if (store_txn_message_foreach(txn, c->mailbox_id, 1, UINT32_MAX, deleted_msg, c, error_r) < 0)
		return -1;
	return c->n ? store_txn_expunge(txn, c->mailbox_id, c->uids, c->n, error_r) : 0;
}

static int do_expunge(struct imap_cmd *cmd, const struct seqset *only, bool report,
		      const char **error_r)
{
	struct imap_session *s = cmd->s;
	struct expunge_ctx c = { .mailbox_id = s->view->mailbox_id, .only = only };
	int ret = store_write(s->d->store, expunge_fn, &c, error_r);
	if (ret == 0 && report)
		report_expunged(s, c.uids, c.n);
	free(c.uids);
	return ret;
}

enum cmd_result cmd_expunge(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	struct seqset set, *only = NULL;
	if (cmd->uid) {
		if (cmd->n_args != 1 || cmd->args[0].type != IMAP_ARG_ATOM ||
		    seqset_parse(cmd->args[0].str, s->view->n ? s->view->uids[s->view->n - 1] : 0,
				 cmd->pool, &set, &err) < 0)
			return cmd_bad(cmd, "UID EXPUNGE expects a UID set");
		only = &set;
	} else if (cmd->n_args != 0) {
		return cmd_bad(cmd, "EXPUNGE takes no arguments");
	}
	if (s->view->read_only)
		return cmd_no(cmd, "[READ-ONLY] Mailbox is read-only");
	if (do_expunge(cmd, only, true, &err) < 0)
		return cmd_store_error(cmd, "expunge", err);
	return cmd_ok(cmd, "%sEXPUNGE completed", cmd->uid ? "UID " : "");
}

enum cmd_result cmd_close(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args != 0)
		return cmd_bad(cmd, "CLOSE takes no arguments");
	if (!s->view->read_only && do_expunge(cmd, NULL, false, &err) < 0)
		return cmd_store_error(cmd, "close", err);
	view_free(&s->view);
	s->state = IMAP_AUTH;
	return cmd_ok(cmd, "CLOSE completed");
}

enum cmd_result cmd_unselect(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (cmd->n_args != 0)
		return cmd_bad(cmd, "UNSELECT takes no arguments");
	view_free(&s->view);
	s->state = IMAP_AUTH;
	return cmd_ok(cmd, "UNSELECT completed");
}

/* ---- SEARCH ---- */

struct load_ctx {
	struct store_txn *txn;
	struct str buf;
	struct mime_message *mime;   /* the current message's cached parse */
	uint32_t mime_uid;
	bool mime_tried;
};

static const struct mime_envelope *search_envelope(struct search_msg *m, void *ctx)
{
	struct load_ctx *c = ctx;
	if (!c->mime_tried || c->mime_uid != m->rec->uid) {
		mime_message_free(&c->mime);
		c->mime_tried = true;
		c->mime_uid = m->rec->uid;
		const void *cache;
		size_t len;
		const char *err;
		if (store_txn_blob_parsed(c->txn, m->rec->blob, &cache, &len, &err) == 1 &&
		    (mime_cache_load(cache, len, &c->mime, &err) < 0 ||
		     mime_message_size(c->mime) != m->rec->size))
			mime_message_free(&c->mime);
	}
	return c->mime != NULL ? mime_message_root(c->mime)->envelope : NULL;
}

static int search_load(struct search_msg *m, bool want_body, void *ctx)
{
	struct load_ctx *c = ctx;
	const char *err;
	uint64_t size = m->rec->size;
	if (size > (uint64_t)SIZE_MAX / 2)
		return -1;
	size_t want = (size_t)size;
	if (!want_body && want > 4096)
		want = 4096;
	for (;;) {
		str_truncate(&c->buf, 0);
		str_reserve(&c->buf, want);
		if (store_txn_blob_read(c->txn, m->rec->blob, 0, c->buf.s, want, &err) < 0)
			return -1;
		c->buf.len = want;
		c->buf.s[want] = '\0';
		if (want == size)
			break;
		/* header only: enough when the header ends inside */
		if (memmem(c->buf.s, want, "\r\n\r\n", 4) != NULL || memmem(c->buf.s, want, "\n\n", 2))
			break;
		want = want * 4 < size ? want * 4 : (size_t)size;
	}
	m->data = c->buf.s;
	m->len = c->buf.len;
	m->have_body = want == size;
	return 0;
}

struct search_run {
	struct imap_session *s;
	struct search_program prog;
	struct store_txn *txn;
	struct load_ctx lc;
	uint32_t *hits;
	size_t n_hits;
	uint64_t max_modseq;
	bool uid;
	uint32_t next_uid;            /* where the next slice starts */
	uint64_t deadline_ns;
	unsigned since_check;
	bool out_of_time;
};

#define SEARCH_SLICE_NS (20 * 1000 * 1000)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int search_msg_fn(const struct store_message *rec, void *ctx)
{
	struct search_run *r = ctx;
	if (++r->since_check >= 8) {
		r->since_check = 0;
		if (now_ns() > r->deadline_ns) {
			r->out_of_time = true;
			r->next_uid = rec->uid;
			return 1; /* this one in the next slice */
		}
	}
	long idx = view_find(r->s->view, rec->uid);
	if (idx < 0)
		return 0; /* arrived after the view: not visible yet */
	struct search_msg m = { .seq = (uint32_t)idx + 1, .rec = rec, .load = search_load,
				.load_ctx = &r->lc, .envelope = search_envelope };
	if (search_eval(&r->prog, &m)) {
		r->hits[r->n_hits++] = r->uid ? rec->uid : (uint32_t)idx + 1;
		if (rec->modseq > r->max_modseq)
			r->max_modseq = rec->modseq;
	}
	search_msg_clear(&m);
	return 0;
}

static void search_cleanup(struct imap_cmd *cmd)
{
	struct search_run *r = cmd->state;
	free(r->hits);
	str_free(&r->lc.buf);
	mime_message_free(&r->lc.mime);
}

static enum cmd_result search_reply(struct imap_cmd *cmd, struct search_run *r)
{
	struct imap_session *s = cmd->s;
	if (!r->uid)
		qsort(r->hits, r->n_hits, sizeof(uint32_t), cmp_u32);
	struct str *o = &s->out;
	bool esearch = r->prog.esearch || (s->enabled & ENABLED_REV2);
	if (esearch) {
		unsigned ret_opts = r->prog.esearch ? r->prog.ret : SEARCH_RET_ALL;
		str_appends(o, "* ESEARCH (TAG ");
		imap_write_string(o, cmd->tag, strlen(cmd->tag), false);
		str_appendc(o, ')');
		if (cmd->uid)
			str_appends(o, " UID");
		if (r->n_hits > 0) {
			if (ret_opts & SEARCH_RET_MIN)
				str_printf(o, " MIN %u", r->hits[0]);
			if (ret_opts & SEARCH_RET_MAX)
				str_printf(o, " MAX %u", r->hits[r->n_hits - 1]);
			if (ret_opts & SEARCH_RET_ALL) {
				str_appends(o, " ALL ");
				seqset_write_sorted(o, r->hits, r->n_hits);
			}
		}
		if (ret_opts & SEARCH_RET_COUNT)
			str_printf(o, " COUNT %zu", r->n_hits);
		if (r->prog.uses_modseq && r->n_hits > 0)
			str_printf(o, " MODSEQ %llu", (unsigned long long)r->max_modseq);
		str_appends(o, "\r\n");
	} else {
		str_appends(o, "* SEARCH");
		for (size_t i = 0; i < r->n_hits; i++)
			str_printf(o, " %u", r->hits[i]);
		if (r->prog.uses_modseq && r->n_hits > 0)
			str_printf(o, " (MODSEQ %llu)", (unsigned long long)r->max_modseq);
		str_appends(o, "\r\n");
	}
	return cmd_ok(cmd, "%sSEARCH completed", cmd->uid ? "UID " : "");
}

/* One slice of at most SEARCH_SLICE_NS in its own read transaction; the
 * next on the following loop iteration, so that a long text search does
 * not stop the worker's other sessions. */
static enum cmd_result search_slice(struct imap_cmd *cmd)
{
	struct search_run *r = cmd->state;
	struct imap_view *v = cmd->s->view;
	const char *err;
	if (v->n == 0 || r->next_uid > v->uids[v->n - 1])
		return search_reply(cmd, r);
	if (store_read_begin(cmd->s->d->store, &r->txn, &err) < 0)
		return cmd_store_error(cmd, "search", err);
	r->lc.txn = r->txn;
	r->out_of_time = false;
	r->deadline_ns = now_ns() + SEARCH_SLICE_NS;
	int ret = store_txn_message_foreach(r->txn, v->mailbox_id, r->next_uid, v->uids[v->n - 1],
					    search_msg_fn, r, &err);
	store_read_end(&r->txn);
	mime_message_free(&r->lc.mime);
	r->lc.mime_tried = false;
	if (ret < 0)
		return cmd_store_error(cmd, "search", err);
	if (r->out_of_time) {
		cmd->resume = search_slice;
		return CMD_YIELD;
	}
	return search_reply(cmd, r);
}

enum cmd_result cmd_search(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_view *v = s->view;
	const char *err;
	struct search_parse_ctx pc = {
		.pool = cmd->pool,
		.n_messages = (uint32_t)v->n,
		.max_uid = v->n ? v->uids[v->n - 1] : 0,
		.keywords = (const char *const *)v->keywords,
		.n_keywords = v->n_keywords,
		.max_depth = 64,
	};
	struct search_run *r = p_malloc(cmd->pool, sizeof(*r));
	bool badcharset;
	if (search_parse(cmd->args, cmd->n_args, &pc, &r->prog, &badcharset, &err) < 0) {
		if (badcharset)
			return cmd_no(cmd, "%s", err);
		return cmd_bad(cmd, "%s", err);
	}
	if (r->prog.uses_modseq)
		s->enabled |= ENABLED_CONDSTORE;
	r->s = s;
	r->uid = cmd->uid;
	r->hits = xcalloc(v->n ? v->n : 1, sizeof(uint32_t));
	r->next_uid = v->n ? v->uids[0] : 1;
	cmd->state = r;
	cmd->cleanup = search_cleanup;
	return search_slice(cmd);
}
