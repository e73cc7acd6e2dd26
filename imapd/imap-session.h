/* One IMAP connection: its state (RFC 9051 3), the command being run, the
 * selected mailbox's view, and what the command files share. Internal to
 * congvu-imapd. */
#ifndef CONGVU_IMAP_SESSION_H
#define CONGVU_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"
#include "imap-parser.h"
#include "net.h"
#include "str.h"
#include "store/store.h"

struct conn;
struct ioloop;
struct pool;
struct tls_ctx;
struct timeout;
struct net_list;
struct settings;

/* What a worker process shares between its sessions. */
struct imapd {
	struct ioloop *loop;
	struct store *store;
	const struct settings *set;
	struct tls_ctx *tls;          /* NULL: no TLS (no STARTTLS offered) */
	struct net_list *trusted;
	const char *hostname;
	struct imap_limits limits;
	uint64_t appendlimit;
	unsigned idle_timeout_ms;     /* after login (RFC 9051 5.4: at least 30 min) */
	unsigned login_timeout_ms;    /* before login */
	unsigned max_bad;             /* BAD replies in a row before disconnecting */
	unsigned max_connections;     /* per worker */
	unsigned n_sessions;
	unsigned next_session_id;
	struct imap_session *idlers;  /* sessions in IDLE, woken on store changes */
	struct imap_session *sessions; /* all of them */
	bool shutting_down;
};

enum imap_state { IMAP_NOT_AUTH, IMAP_AUTH, IMAP_SELECTED, IMAP_LOGOUT };

enum {
	ENABLED_CONDSTORE = 1 << 0,
	ENABLED_QRESYNC = 1 << 1,
	ENABLED_UTF8 = 1 << 2,
	ENABLED_REV2 = 1 << 3,
};

/* The selected mailbox as this session knows it: the UIDs in sequence order
 * (sequence number = index + 1) and what was last reported. */
struct imap_view {
	uint32_t mailbox_id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;       /* changes up to here have been reported */
	bool read_only;
	char *name;                   /* UTF-8 */
	uint32_t *uids;
	size_t n, cap;
	unsigned n_keywords;          /* keywords announced in FLAGS */
	char **keywords;
	/* modseqs of flag changes this session made and already reported */
	uint64_t *own_modseqs;
	size_t n_own, cap_own;
};

struct imap_cmd;
enum cmd_result {
	CMD_DONE,  /* the tagged reply was written */
	CMD_MORE,  /* call the handler again when the output has drained */
	CMD_WAIT,  /* the handler finishes later by itself (session_cmd_done) */
	CMD_YIELD, /* call the handler again on the next loop iteration (long work
		    * in slices, so the worker's other sessions are served) */
};
typedef enum cmd_result imap_cmd_fn(struct imap_cmd *cmd);

enum {
	CMDF_NOT_AUTH = 1 << 0,  /* allowed in the not-authenticated state */
	CMDF_AUTH = 1 << 1,      /* ... authenticated */
	CMDF_SELECTED = 1 << 2,  /* ... selected */
	CMDF_UID = 1 << 3,       /* may follow UID */
	CMDF_NO_EXPUNGE = 1 << 4, /* no EXPUNGE responses after it (RFC 9051 7.5.1):
				   * FETCH, STORE, SEARCH by sequence number */
	CMDF_ANY = CMDF_NOT_AUTH | CMDF_AUTH | CMDF_SELECTED,
};

struct imap_cmd_def {
	const char *name;
	imap_cmd_fn *fn;
	unsigned flags;
};

struct imap_cmd {
	struct imap_session *s;
	const struct imap_cmd_def *def;
	const char *tag;
	const char *name;
	const struct imap_arg *args;
	size_t n_args;
	bool uid;                     /* UID FETCH/STORE/... */
	struct pool *pool;            /* freed when the command ends */
	void *state;                  /* a handler's own, in pool */
	enum cmd_result (*resume)(struct imap_cmd *cmd); /* CMD_MORE: called instead of def->fn */
	void (*cleanup)(struct imap_cmd *cmd); /* frees what is not in pool */
	bool yielding;                /* CMD_YIELD: resumed by the timer only */
};

enum session_mode {
	MODE_COMMANDS,    /* reading commands */
	MODE_LINE,        /* a handler reads lines (AUTHENTICATE, IDLE) */
};

typedef void session_line_fn(struct imap_cmd *cmd, const char *line, size_t len);

struct imap_session {
	struct imapd *d;
	struct conn *conn;
	unsigned id;
	char ip[NET_ADDR_STR_MAX];
	uint64_t ip_hash;
	bool trusted;                 /* from imapd.trusted_networks */
	bool implicit_tls;
	enum imap_state state;
	unsigned enabled;
	struct imap_reader *reader;
	struct str out;               /* responses being built, flushed to conn */
	struct str tagged;            /* the running command's tagged reply */
	/* after login */
	uint32_t account_id;
	char user[ADDRESS_MAX_LEN + 1];
	struct imap_view *view;
	/* the command in progress */
	struct imap_cmd *cmd;
	enum session_mode mode;
	session_line_fn *line_fn;
	struct timeout *timer;        /* login delay and similar */
	struct verify_job *verify;    /* its password check in the verifying thread */
	struct timeout *free_timer;
	struct timeout *yield_timer;
	unsigned bad_in_row;
	bool closing;
	bool in_callback;
	struct imap_session *all_next, *all_prev;
	/* IDLE */
	struct imap_session *idle_next, *idle_prev;
	bool idling;
	/* counters for the log line at the end */
	uint64_t bytes_in, bytes_out;
	unsigned n_commands;
};

/* ---- session.c ---- */
void session_create(struct imapd *d, int fd, const struct net_addr *peer, bool implicit_tls);
/* Writes s->out to the connection. */
void session_flush(struct imap_session *s);
/* Ends a CMD_WAIT command (its tagged reply written): sync, next command. */
void session_cmd_done(struct imap_cmd *cmd);
/* Closes after the output is written. */
void session_close(struct imap_session *s, const char *reason);
/* Switches to reading lines for the command (AUTHENTICATE, IDLE). */
void session_read_lines(struct imap_session *s, session_line_fn *fn);
void session_read_commands(struct imap_session *s);
/* Reports changes of the selected mailbox made elsewhere (EXISTS, EXPUNGE
 * or VANISHED, FETCH FLAGS). allow_expunge: false during commands that use
 * sequence numbers (RFC 9051 7.5.1). */
void session_sync(struct imap_session *s, bool allow_expunge);
void imapd_wake_idlers(struct imapd *d);
/* Closes every session, writing bye first when not NULL. */
void session_close_all(struct imapd *d, const char *bye);
bool session_utf8(const struct imap_session *s);
/* Whether LOGIN/AUTHENTICATE are allowed now (TLS or a trusted network). */
bool session_login_allowed(const struct imap_session *s);
/* The CAPABILITY list for the session's state (without "* CAPABILITY "). */
void session_capabilities(const struct imap_session *s, struct str *out);

/* Tagged replies: write "TAG OK text\r\n" (text may hold a [CODE]). */
enum cmd_result cmd_ok(struct imap_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum cmd_result cmd_no(struct imap_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum cmd_result cmd_bad(struct imap_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NO for a store error: [OVERQUOTA], [NONEXISTENT], [ALREADYEXISTS] or
 * [SERVERBUG] with the error logged. */
enum cmd_result cmd_store_error(struct imap_cmd *cmd, const char *what, const char *error);

/* ---- imap-view.c ---- */
void view_free(struct imap_view **view);
/* Index (0-based) of uid in the view, or -1. */
long view_find(const struct imap_view *view, uint32_t uid);
void view_remove_at(struct imap_view *view, size_t index);
void view_append(struct imap_view *view, uint32_t uid);
void view_note_own_modseq(struct imap_view *view, uint64_t modseq);
/* Copies the mailbox's keywords into the view; true when they changed. */
bool view_set_keywords(struct imap_view *view, const struct store_mailbox *mbox);
/* The "FLAGS (...)" line's contents for the view. */
void view_write_flags(const struct imap_view *view, struct str *out, bool permanent);
/* Writes "(\Seen \Answered kw1 ...)" for a message. */
void view_write_msg_flags(const struct imap_view *view, const struct store_message *msg,
			  struct str *out);
/* Parses a flag list ("\Seen", "$Junk") into system flags and keyword names. */
struct flag_list {
	uint32_t flags;
	const char **keywords;
	size_t n_keywords;
};
int parse_flag_list(const struct imap_arg *arg, struct pool *pool, struct flag_list *list_r,
		    const char **error_r);
/* Resolves sequence/UID set text to UIDs of the view; uid: the text is UIDs. */
int view_resolve_set(const struct imap_view *view, const char *text, bool uid, struct pool *pool,
		     uint32_t **uids_r, size_t *n_r, const char **error_r);

/* ---- the command table: imap-commands.c ---- */
const struct imap_cmd_def *imap_command_find(const char *name);

/* Handlers, by file. */
/* Makes the failed-login counters (per client IP) one table shared by the
 * processes forked afterwards (the master calls it before the workers).
 * -1 when the memory cannot be mapped (each worker then counts alone). */
int auth_fail_table_share(void);
/* The session goes away: a password check it waits for is forgotten. */
void auth_verify_cancel(struct imap_session *s);

imap_cmd_fn cmd_capability, cmd_noop, cmd_logout, cmd_starttls, cmd_login, cmd_authenticate,
	cmd_id, cmd_enable, cmd_namespace;
imap_cmd_fn cmd_select, cmd_examine, cmd_create, cmd_delete, cmd_rename, cmd_subscribe,
	cmd_unsubscribe, cmd_list, cmd_lsub, cmd_status, cmd_append, cmd_getquota,
	cmd_getquotaroot, cmd_setquota;
imap_cmd_fn cmd_check, cmd_close, cmd_unselect, cmd_expunge, cmd_fetch, cmd_store, cmd_copy,
	cmd_move, cmd_search, cmd_idle, cmd_uid;

/* Mailbox names from the client (astring, modified UTF-7 unless UTF-8 is
 * enabled) to the store's UTF-8 form; NULL with *error_r when invalid. */
const char *session_mailbox_name(struct imap_session *s, const struct imap_arg *arg,
				 struct pool *pool, const char **error_r);

#endif
