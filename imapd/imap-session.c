/* The session: reading commands from the connection, running them one at a
 * time through the command table (STYLE 6), writing replies, and reporting
 * changes of the selected mailbox (RFC 9051 7.5.1, RFC 7162 3.2.10). */
#include "config.h"
#include "conn.h"
#include "imap-pool.h"
#include "imap-seqset.h"
#include "imap-session.h"
#include "imap-utf7.h"
#include "imap-write.h"
#include "ioloop.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Output above this stops reading commands until the client reads. */
#define OUTPUT_HIGH_WATER (256 * 1024)

static void session_input(struct imap_session *s);
static void session_free(struct imap_session *s);

bool session_utf8(const struct imap_session *s)
{
	return (s->enabled & ENABLED_UTF8) != 0;
}

bool session_login_allowed(const struct imap_session *s)
{
	return s->trusted || conn_tls_active(s->conn);
}

void session_capabilities(const struct imap_session *s, struct str *out)
{
	str_appends(out, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE");
	if (s->state == IMAP_NOT_AUTH) {
		if (s->d->tls != NULL && !conn_tls_active(s->conn))
			str_appends(out, " STARTTLS");
		if (session_login_allowed(s))
			str_appends(out, " AUTH=PLAIN AUTH=LOGIN");
		else
			str_appends(out, " LOGINDISABLED");
		return;
	}
	str_appends(out, " NAMESPACE UNSELECT CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS"
			 " UIDPLUS MOVE QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE CONDSTORE"
			 " QRESYNC ESEARCH BINARY STATUS=SIZE UTF8=ACCEPT");
	str_printf(out, " APPENDLIMIT=%llu", (unsigned long long)s->d->appendlimit);
}

void session_flush(struct imap_session *s)
{
	if (s->out.len == 0 || s->conn == NULL)
		return;
	conn_write(s->conn, s->out.s, s->out.len);
	s->bytes_out += s->out.len;
	str_free(&s->out); /* idle sessions hold no buffers */
}

/* The tagged reply waits in s->tagged so that the responses the command's
 * end brings (session_sync) go before it. */
static void tagged(struct imap_cmd *cmd, const char *status, const char *fmt, va_list ap)
{
	struct imap_session *s = cmd->s;
	str_truncate(&s->tagged, 0);
	str_printf(&s->tagged, "%s %s ", cmd->tag, status);
	str_vprintf(&s->tagged, fmt, ap);
	str_append(&s->tagged, "\r\n", 2);
}

enum cmd_result cmd_ok(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged(cmd, "OK", fmt, ap);
	va_end(ap);
	cmd->s->bad_in_row = 0;
	return CMD_DONE;
}

enum cmd_result cmd_no(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged(cmd, "NO", fmt, ap);
	va_end(ap);
	cmd->s->bad_in_row = 0;
	return CMD_DONE;
}

enum cmd_result cmd_bad(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged(cmd, "BAD", fmt, ap);
	va_end(ap);
	cmd->s->bad_in_row++;
	return CMD_DONE;
}

enum cmd_result cmd_store_error(struct imap_cmd *cmd, const char *what, const char *error)
{
	if (error == STORE_ERR_OVER_QUOTA)
		return cmd_no(cmd, "[OVERQUOTA] Quota exceeded (mailbox is full)");
	if (error == STORE_ERR_NO_MAILBOX)
		return cmd_no(cmd, "[NONEXISTENT] Mailbox does not exist");
	if (error == STORE_ERR_EXISTS)
		return cmd_no(cmd, "[ALREADYEXISTS] Mailbox already exists");
	log_err("session=%u user=%s command=%s error=\"%s: %s\"", cmd->s->id, cmd->s->user,
		cmd->def ? cmd->def->name : "?", what, error);
	return cmd_no(cmd, "[SERVERBUG] Internal error; try again later");
}

const char *session_mailbox_name(struct imap_session *s, const struct imap_arg *arg,
				 struct pool *pool, const char **error_r)
{
	const char *raw = imap_arg_astring(arg);
	if (raw == NULL) {
		*error_r = "Invalid mailbox name";
		return NULL;
	}
	if (session_utf8(s)) {
		if (!imap_utf8_valid(raw, strlen(raw))) {
			*error_r = "Mailbox name is not valid UTF-8";
			return NULL;
		}
		return raw;
	}
	struct str dec = STR_INIT;
	if (imap_utf7_to_utf8(raw, &dec) < 0) {
		str_free(&dec);
		/* RFC 6855 3: 8-bit names are accepted as UTF-8 also without
		 * ENABLE (as Dovecot does), when they are valid. */
		for (const char *q = raw; *q; q++) {
			if ((unsigned char)*q >= 0x80) {
				if (imap_utf8_valid(raw, strlen(raw)) && strchr(raw, '&') == NULL)
					return raw;
				break;
			}
		}
		*error_r = "Mailbox name is not valid modified UTF-7";
		return NULL;
	}
	const char *ret = p_strndup(pool, dec.s ? dec.s : "", dec.len);
	str_free(&dec);
	return ret;
}

/* ---- commands ---- */

static void cmd_free(struct imap_cmd **cmdp)
{
	struct imap_cmd *cmd = *cmdp;
	if (cmd == NULL)
		return;
	struct pool *pool = cmd->pool;
	*cmdp = NULL;
	if (cmd->cleanup != NULL)
		cmd->cleanup(cmd);
	pool_free(&pool);
}

/* The command has written its tagged reply: report changes, send both,
 * forget the command. */
static void cmd_finished(struct imap_session *s)
{
	struct imap_cmd *cmd = s->cmd;
	bool allow_expunge = cmd == NULL || cmd->def == NULL ||
			     !((cmd->def->flags & CMDF_NO_EXPUNGE) && !cmd->uid);
	cmd_free(&s->cmd);
	timeout_remove(&s->yield_timer);
	s->mode = MODE_COMMANDS;
	if (s->state == IMAP_SELECTED && !s->closing)
		session_sync(s, allow_expunge);
	str_append(&s->out, s->tagged.s ? s->tagged.s : "", s->tagged.len);
	str_truncate(&s->tagged, 0);
	session_flush(s);
}

void session_cmd_done(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	cmd_finished(s);
	conn_input_pause(s->conn, false);
	if (s->state == IMAP_LOGOUT || s->closing)
		return;
	session_input(s);
}

static void run_command(struct imap_session *s, struct imap_cmd *cmd, bool first);

static void yield_cb(void *ctx)
{
	struct imap_session *s = ctx;
	timeout_remove(&s->yield_timer);
	if (s->closing || s->cmd == NULL || !s->cmd->yielding)
		return;
	s->cmd->yielding = false;
	s->in_callback = true;
	run_command(s, s->cmd, false);
	if (s->cmd == NULL && !s->closing)
		session_input(s);
	s->in_callback = false;
}

static void run_command(struct imap_session *s, struct imap_cmd *cmd, bool first)
{
	enum cmd_result res;
	if (!first && cmd->resume != NULL)
		res = cmd->resume(cmd);
	else
		res = cmd->def->fn(cmd);
	if (s->closing)
		return;
	if (res == CMD_DONE) {
		cmd_finished(s);
		return;
	}
	session_flush(s); /* CMD_MORE: resumed on CONN_EV_DRAINED */
	if (res == CMD_YIELD) {
		cmd->yielding = true;
		if (s->yield_timer == NULL)
			s->yield_timer = timeout_add(s->d->loop, 0, yield_cb, s);
	}
}

static void dispatch(struct imap_session *s, struct imap_command *parsed)
{
	struct pool *pool = pool_new(1024);
	struct imap_cmd *cmd = p_malloc(pool, sizeof(*cmd));
	cmd->s = s;
	cmd->pool = pool;
	cmd->tag = p_strdup(pool, parsed->tag);
	cmd->name = parsed->name;
	cmd->args = parsed->args;
	cmd->n_args = parsed->n_args;
	s->cmd = cmd;
	s->n_commands++;

	const struct imap_cmd_def *def = imap_command_find(parsed->name);
	if (def != NULL && def->fn == cmd_uid) {
		if (cmd->n_args == 0 || cmd->args[0].type != IMAP_ARG_ATOM) {
			cmd_bad(cmd, "UID needs a command");
			goto done;
		}
		const struct imap_cmd_def *sub = imap_command_find(cmd->args[0].str);
		if (sub == NULL || !(sub->flags & CMDF_UID)) {
			cmd_bad(cmd, "Unknown UID command");
			goto done;
		}
		def = sub;
		cmd->uid = true;
		cmd->name = cmd->args[0].str;
		cmd->args++;
		cmd->n_args--;
	}
	if (def == NULL) {
		cmd_bad(cmd, "Unknown command");
		goto done;
	}
	cmd->def = def;
	unsigned need = s->state == IMAP_NOT_AUTH ? CMDF_NOT_AUTH
			: s->state == IMAP_AUTH	  ? CMDF_AUTH
						  : CMDF_SELECTED;
	if (!(def->flags & need)) {
		if (s->state == IMAP_NOT_AUTH)
			cmd_bad(cmd, "Log in first");
		else if (s->state == IMAP_AUTH && (def->flags & CMDF_SELECTED))
			cmd_bad(cmd, "No mailbox selected");
		else
			cmd_bad(cmd, "Command not allowed now");
		goto done;
	}
	run_command(s, cmd, true);
	return;
done:
	cmd_finished(s);
}

/* Reads and runs commands while input is buffered and no command waits. */
static void session_input(struct imap_session *s)
{
	while (!s->closing && s->conn != NULL) {
		if (s->cmd != NULL && s->mode != MODE_LINE)
			return;
		if (conn_output_size(s->conn) + s->out.len > OUTPUT_HIGH_WATER) {
			session_flush(s);
			return; /* resumed on CONN_EV_DRAINED */
		}
		const void *data;
		size_t len;
		conn_input(s->conn, &data, &len);
		if (len == 0)
			return;
		enum imap_read_result res;
		size_t used;
		if (s->mode == MODE_LINE) {
			const char *line;
			size_t line_len;
			used = imap_reader_feed_line(s->reader, data, len, &res, &line, &line_len);
			conn_consume(s->conn, used);
			s->bytes_in += used;
			if (res == IMAP_READ_COMMAND) {
				s->line_fn(s->cmd, line, line_len);
			} else if (res == IMAP_READ_ERROR) {
				s->line_fn(s->cmd, NULL, 0);
			}
			continue;
		}
		used = imap_reader_feed(s->reader, data, len, &res);
		conn_consume(s->conn, used);
		s->bytes_in += used;
		const char *tag, *text;
		bool no;
		switch (res) {
		case IMAP_READ_MORE:
			break;
		case IMAP_READ_CONTINUE:
			str_appends(&s->out, "+ OK\r\n");
			session_flush(s);
			break;
		case IMAP_READ_ERROR:
			imap_reader_error(s->reader, &tag, &no, &text);
			str_printf(&s->out, "%s %s %s\r\n", tag, no ? "NO" : "BAD", text);
			if (!no)
				s->bad_in_row++;
			session_flush(s);
			break;
		case IMAP_READ_FATAL:
			imap_reader_error(s->reader, &tag, &no, &text);
			str_printf(&s->out, "* BYE %s\r\n", text);
			session_close(s, text);
			return;
		case IMAP_READ_COMMAND: {
			struct imap_command parsed;
			const char *err;
			if (imap_reader_parse(s->reader, &parsed, &err) < 0) {
				str_printf(&s->out, "%s BAD %s\r\n", parsed.tag, err);
				s->bad_in_row++;
				session_flush(s);
				break;
			}
			dispatch(s, &parsed);
			break;
		}
		}
		if (s->d->max_bad > 0 && s->bad_in_row >= s->d->max_bad) {
			str_appends(&s->out, "* BYE Too many invalid commands\r\n");
			session_close(s, "too many invalid commands");
			return;
		}
	}
}

void session_read_lines(struct imap_session *s, session_line_fn *fn)
{
	s->mode = MODE_LINE;
	s->line_fn = fn;
}

void session_read_commands(struct imap_session *s)
{
	s->mode = MODE_COMMANDS;
	s->line_fn = NULL;
}

static void free_cb(void *ctx)
{
	session_free(ctx);
}

/* Frees on the next loop iteration, never inside a call chain that may
 * still use the session. */
static void schedule_free(struct imap_session *s)
{
	if (s->free_timer == NULL)
		s->free_timer = timeout_add(s->d->loop, 0, free_cb, s);
}

void session_close(struct imap_session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	log_info("session=%u ip=%s user=%s event=disconnect reason=\"%s\" commands=%u in=%llu out=%llu",
		 s->id, s->ip, s->user[0] ? s->user : "-", reason, s->n_commands,
		 (unsigned long long)s->bytes_in, (unsigned long long)(s->bytes_out + s->out.len));
	session_flush(s);
	conn_input_pause(s->conn, true);
	if (conn_output_size(s->conn) > 0 && conn_flush(s->conn) == 0 &&
	    conn_output_size(s->conn) > 0) {
		/* the rest on CONN_EV_DRAINED, bounded by a short timeout */
		conn_set_timeout(s->conn, 5000);
		return;
	}
	schedule_free(s);
}

static void idle_unlink(struct imap_session *s)
{
	if (!s->idling)
		return;
	if (s->idle_prev)
		s->idle_prev->idle_next = s->idle_next;
	else
		s->d->idlers = s->idle_next;
	if (s->idle_next)
		s->idle_next->idle_prev = s->idle_prev;
	s->idle_next = s->idle_prev = NULL;
	s->idling = false;
}

static void session_free(struct imap_session *s)
{
	idle_unlink(s);
	if (s->all_prev)
		s->all_prev->all_next = s->all_next;
	else
		s->d->sessions = s->all_next;
	if (s->all_next)
		s->all_next->all_prev = s->all_prev;
	auth_verify_cancel(s);
	cmd_free(&s->cmd);
	timeout_remove(&s->timer);
	timeout_remove(&s->free_timer);
	timeout_remove(&s->yield_timer);
	conn_free(&s->conn);
	imap_reader_free(&s->reader);
	view_free(&s->view);
	str_free(&s->out);
	str_free(&s->tagged);
	s->d->n_sessions--;
	free(s);
}

static void conn_event(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct imap_session *s = ctx;
	(void)conn;
	if (s->closing) {
		if (ev != CONN_EV_DATA_IN)
			schedule_free(s);
		return;
	}
	s->in_callback = true;
	switch (ev) {
	case CONN_EV_DATA_IN:
		session_input(s);
		break;
	case CONN_EV_DRAINED:
		if (s->cmd != NULL && s->cmd->resume != NULL && !s->cmd->yielding &&
		    s->mode == MODE_COMMANDS)
			run_command(s, s->cmd, false);
		if (s->cmd == NULL && !s->closing)
			session_input(s);
		break;
	case CONN_EV_TLS_READY:
		log_info("session=%u ip=%s event=tls version=%s cipher=%s", s->id, s->ip,
			 conn_tls_version(s->conn), conn_tls_cipher(s->conn));
		if (s->implicit_tls && s->n_commands == 0) {
			str_printf(&s->out, "* OK [CAPABILITY ");
			session_capabilities(s, &s->out);
			str_appends(&s->out, "] congvu IMAP ready\r\n");
			session_flush(s);
		}
		session_input(s);
		break;
	case CONN_EV_TIMEOUT:
		str_appends(&s->out, "* BYE Idle timeout\r\n");
		session_close(s, "idle timeout");
		break;
	case CONN_EV_EOF:
		session_close(s, "client closed");
		break;
	case CONN_EV_ERROR:
		session_close(s, conn_error(s->conn));
		break;
	}
	s->in_callback = false;
}

void session_create(struct imapd *d, int fd, const struct net_addr *peer, bool implicit_tls)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	s->d = d;
	s->id = ++d->next_session_id;
	d->n_sessions++;
	net_addr_str(peer, s->ip, sizeof(s->ip));
	s->ip_hash = net_addr_hash(peer, true);
	s->trusted = net_list_match(d->trusted, peer);
	s->implicit_tls = implicit_tls;
	s->all_next = d->sessions;
	if (d->sessions)
		d->sessions->all_prev = s;
	d->sessions = s;
	s->conn = conn_new(d->loop, fd, conn_event, s);
	conn_set_timeout(s->conn, d->login_timeout_ms);
	s->reader = imap_reader_new(&d->limits);
	/* No literal larger than a line before login, and no command larger
	 * than a few lines: LOGIN's two literals fit, a pile of small
	 * literals from an unauthenticated client does not. */
	imap_reader_set_max_literal(s->reader, d->limits.max_small_literal);
	imap_reader_set_max_command(s->reader, 4 * (uint64_t)d->limits.max_line);
	log_info("session=%u ip=%s event=connect tls=%s", s->id, s->ip,
		 implicit_tls ? "implicit" : "no");
	if (d->shutting_down || (d->max_connections > 0 && d->n_sessions > d->max_connections)) {
		str_appends(&s->out, "* BYE Too many connections, try again later\r\n");
		session_close(s, "too many connections");
		return;
	}
	if (implicit_tls) {
		const char *err;
		if (conn_starttls(s->conn, d->tls, NULL, &err) < 0) {
			session_close(s, err);
			return;
		}
		return; /* greeting on CONN_EV_TLS_READY */
	}
	str_printf(&s->out, "* OK [CAPABILITY ");
	session_capabilities(s, &s->out);
	str_appends(&s->out, "] congvu IMAP ready\r\n");
	session_flush(s);
}

/* ---- the selected mailbox: reporting changes ---- */

struct sync_ctx {
	struct imap_session *s;
	struct store_txn *txn;
	uint32_t *expunged;
	size_t n_expunged, cap_expunged;
	uint32_t *flagged;
	size_t n_flagged, cap_flagged;
	uint64_t *flag_modseqs;
	bool any_new;
	uint64_t max_modseq;
};

static int sync_change(uint64_t modseq, uint32_t uid, enum store_change_kind kind, void *ctx)
{
	struct sync_ctx *c = ctx;
	if (modseq > c->max_modseq)
		c->max_modseq = modseq;
	switch (kind) {
	case CHANGE_NEW:
		c->any_new = true;
		break;
	case CHANGE_EXPUNGE:
		if (c->n_expunged == c->cap_expunged) {
			c->cap_expunged = c->cap_expunged ? c->cap_expunged * 2 : 16;
			c->expunged = xreallocarray(c->expunged, c->cap_expunged, sizeof(uint32_t));
		}
		c->expunged[c->n_expunged++] = uid;
		break;
	case CHANGE_FLAGS:
		if (c->n_flagged == c->cap_flagged) {
			c->cap_flagged = c->cap_flagged ? c->cap_flagged * 2 : 16;
			c->flagged = xreallocarray(c->flagged, c->cap_flagged, sizeof(uint32_t));
			c->flag_modseqs =
				xreallocarray(c->flag_modseqs, c->cap_flagged, sizeof(uint64_t));
		}
		c->flag_modseqs[c->n_flagged] = modseq;
		c->flagged[c->n_flagged++] = uid;
		break;
	}
	return 0;
}

static int new_message(const struct store_message *msg, void *ctx)
{
	struct sync_ctx *c = ctx;
	struct imap_view *v = c->s->view;
	if (v->n == 0 || msg->uid > v->uids[v->n - 1])
		view_append(v, msg->uid);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void session_sync(struct imap_session *s, bool allow_expunge)
{
	struct imap_view *v = s->view;
	if (v == NULL)
		return;
	struct store_txn *txn;
	const char *err;
	if (store_read_begin(s->d->store, &txn, &err) < 0) {
		log_err("session=%u error=\"store: %s\"", s->id, err);
		return;
	}
	struct store_mailbox *mbox = xmalloc(sizeof(*mbox));
	int ret = store_txn_mailbox_get_id(txn, v->mailbox_id, mbox, &err);
	if (ret <= 0) {
		store_read_end(&txn);
		free(mbox);
		if (ret == 0) {
			/* deleted under us (RFC 9051 7.1: BYE is allowed) */
			str_appends(&s->out, "* BYE Selected mailbox was deleted\r\n");
			session_close(s, "mailbox deleted");
		}
		return;
	}
	if (mbox->highestmodseq <= v->highestmodseq && mbox->uidnext == v->uidnext) {
		store_read_end(&txn);
		free(mbox);
		return;
	}
	struct sync_ctx c = { .s = s, .txn = txn, .max_modseq = v->highestmodseq };
	if (store_txn_changes(txn, v->mailbox_id, v->highestmodseq, sync_change, &c, &err) < 0) {
		log_err("session=%u error=\"store changes: %s\"", s->id, err);
		goto out;
	}
	bool qresync = (s->enabled & ENABLED_QRESYNC) != 0;
	bool condstore = (s->enabled & (ENABLED_CONDSTORE | ENABLED_QRESYNC)) != 0;
	bool expunges_left = false;
	/* expunges */
	if (c.n_expunged > 0) {
		if (!allow_expunge) {
			expunges_left = true;
		} else {
			qsort(c.expunged, c.n_expunged, sizeof(uint32_t), cmp_u32);
			uint32_t *gone = xcalloc(c.n_expunged, sizeof(uint32_t));
			size_t n_gone = 0;
			/* EXPUNGE n: highest first, so the numbers stay right */
			for (size_t i = c.n_expunged; i-- > 0;) {
				long idx = view_find(v, c.expunged[i]);
				if (idx < 0)
					continue;
				gone[n_gone++] = c.expunged[i];
				if (!qresync)
					str_printf(&s->out, "* %ld EXPUNGE\r\n", idx + 1);
				view_remove_at(v, (size_t)idx);
			}
			if (qresync && n_gone > 0) {
				qsort(gone, n_gone, sizeof(uint32_t), cmp_u32);
				str_appends(&s->out, "* VANISHED ");
				seqset_write_sorted(&s->out, gone, n_gone);
				str_appends(&s->out, "\r\n");
			}
			free(gone);
		}
	}
	/* new messages */
	if (c.any_new || mbox->uidnext != v->uidnext) {
		uint32_t from = v->n ? v->uids[v->n - 1] + 1 : 1;
		size_t before = v->n;
		if (store_txn_message_foreach(txn, v->mailbox_id, from, UINT32_MAX, new_message, &c,
					      &err) < 0)
			log_err("session=%u error=\"store: %s\"", s->id, err);
		if (view_set_keywords(v, mbox)) {
			str_appends(&s->out, "* FLAGS ");
			view_write_flags(v, &s->out, false);
			str_appends(&s->out, "\r\n");
		}
		if (v->n != before || expunges_left == false)
			str_printf(&s->out, "* %zu EXISTS\r\n", v->n);
		v->uidnext = mbox->uidnext;
	} else if (view_set_keywords(v, mbox)) {
		str_appends(&s->out, "* FLAGS ");
		view_write_flags(v, &s->out, false);
		str_appends(&s->out, "\r\n");
	}
	/* flag changes (each message once, with its current flags) */
	if (c.n_flagged > 0) {
		qsort(c.flagged, c.n_flagged, sizeof(uint32_t), cmp_u32);
		for (size_t i = 0; i < c.n_flagged; i++) {
			if (i > 0 && c.flagged[i] == c.flagged[i - 1])
				continue;
			long idx = view_find(v, c.flagged[i]);
			if (idx < 0)
				continue;
			struct store_message msg;
			if (store_txn_message_get(txn, v->mailbox_id, c.flagged[i], &msg, &err) <= 0)
				continue;
			bool own = false;
			for (size_t k = 0; k < v->n_own; k++)
				if (v->own_modseqs[k] == msg.modseq)
					own = true;
			if (own)
				continue;
			str_printf(&s->out, "* %ld FETCH (", idx + 1);
			str_appends(&s->out, "FLAGS ");
			view_write_msg_flags(v, &msg, &s->out);
			if (condstore)
				str_printf(&s->out, " MODSEQ (%llu)", (unsigned long long)msg.modseq);
			if (qresync || condstore)
				str_printf(&s->out, " UID %u", msg.uid);
			str_appends(&s->out, ")\r\n");
		}
	}
	v->n_own = 0;
	if (!expunges_left)
		v->highestmodseq = mbox->highestmodseq;
out:
	store_read_end(&txn);
	free(mbox);
	free(c.expunged);
	free(c.flagged);
	free(c.flag_modseqs);
}

void imapd_wake_idlers(struct imapd *d)
{
	struct imap_session *s = d->idlers, *next;
	for (; s != NULL; s = next) {
		next = s->idle_next;
		/* a client that does not read gets no more until it does: the
		 * changes wait in the store, not in our buffers */
		if (s->closing || conn_output_size(s->conn) > OUTPUT_HIGH_WATER)
			continue;
		session_sync(s, true);
		session_flush(s);
	}
}

/* IDLE (RFC 2177): updates as they happen until "DONE". */
static void idle_line(struct imap_cmd *cmd, const char *line, size_t len)
{
	struct imap_session *s = cmd->s;
	idle_unlink(s);
	session_read_commands(s);
	if (line != NULL && len == 4 && strncasecmp(line, "DONE", 4) == 0)
		cmd_ok(cmd, "IDLE terminated");
	else
		cmd_bad(cmd, "Expected DONE");
	session_cmd_done(cmd);
}

enum cmd_result cmd_idle(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (cmd->n_args != 0)
		return cmd_bad(cmd, "IDLE takes no arguments");
	if (s->state == IMAP_SELECTED)
		session_sync(s, true);
	str_appends(&s->out, "+ idling\r\n");
	s->idling = true;
	s->idle_next = s->d->idlers;
	s->idle_prev = NULL;
	if (s->d->idlers)
		s->d->idlers->idle_prev = s;
	s->d->idlers = s;
	session_read_lines(s, idle_line);
	return CMD_WAIT;
}

void session_close_all(struct imapd *d, const char *bye)
{
	struct imap_session *s, *next;
	for (s = d->sessions; s != NULL; s = next) {
		next = s->all_next;
		if (bye == NULL) {
			session_free(s);
			continue;
		}
		if (!s->closing) {
			str_appends(&s->out, bye);
			session_close(s, "shutdown");
		}
	}
}
