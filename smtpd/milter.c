/* The milter client; see milter.h. The protocol is Sendmail's milter
 * protocol version 6 (libmilter's mfdef.h): packets of a 4-byte length
 * (network order, counting the command byte), a command byte and data. */
#include "config.h"
#include "milter.h"
#include "conn.h"
#include "ioloop.h"
#include "log.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* commands (MTA to milter) */
#define C_ABORT 'A'
#define C_BODY 'B'
#define C_CONNECT 'C'
#define C_MACRO 'D'
#define C_BODYEOB 'E'
#define C_HELO 'H'
#define C_HEADER 'L'
#define C_MAIL 'M'
#define C_EOH 'N'
#define C_OPTNEG 'O'
#define C_QUIT 'Q'
#define C_RCPT 'R'
#define C_DATA 'T'
/* replies */
#define R_ACCEPT 'a'
#define R_REPLBODY 'b'
#define R_CONTINUE 'c'
#define R_DISCARD 'd'
#define R_ADDHEADER 'h'
#define R_INSHEADER 'i'
#define R_CHGHEADER 'm'
#define R_PROGRESS 'p'
#define R_QUARANTINE 'q'
#define R_REJECT 'r'
#define R_SKIP 's'
#define R_TEMPFAIL 't'
#define R_REPLYCODE 'y'
#define R_OPTNEG 'O'
/* actions we let milters take */
#define F_ADDHDRS 0x01
#define F_CHGBODY 0x02
#define F_CHGHDRS 0x10
#define F_QUARANTINE 0x20
#define F_SETSYMLIST 0x100
#define OUR_ACTIONS (F_ADDHDRS | F_CHGBODY | F_CHGHDRS | F_QUARANTINE | F_SETSYMLIST)
/* protocol steps */
#define P_NOCONNECT 0x1
#define P_NOHELO 0x2
#define P_NOMAIL 0x4
#define P_NORCPT 0x8
#define P_NOBODY 0x10
#define P_NOHDRS 0x20
#define P_NOEOH 0x40
#define P_NR_HDR 0x80
#define P_NODATA 0x200
#define P_SKIP 0x400
#define P_NR_CONN 0x1000
#define P_NR_HELO 0x2000
#define P_NR_MAIL 0x4000
#define P_NR_RCPT 0x8000
#define P_NR_DATA 0x10000
#define P_NR_EOH 0x40000
#define P_NR_BODY 0x80000
/* every step flag we honour: all NO* and NR_* (we never send UNKNOWN, so
 * those two hold trivially) and SKIP; not RCPT_REJ, HDR_LEADSPC, MDS_* */
#define OUR_PROTO 0x000FF7FF

#define CHUNK 65535
#define PACKET_MAX (CHUNK + 1024)
/* What the end-of-message modifications of one milter may add to a message:
 * octets of headers, octets of a replaced body beyond the original body's
 * size (each), and header changes (each one costs a pass over the headers) */
#define MOD_SLACK (4 * 1024 * 1024)
#define MOD_HDRS_MAX 1000
#define MILTER_VERSION 6

enum mstate { M_CONNECTING, M_NEGOTIATING, M_READY, M_DEAD, M_SESSION_ACCEPTED };
enum op { OP_NONE, OP_CONNECT, OP_HELO, OP_MAIL, OP_RCPT, OP_DATA, OP_EOM };
enum eom_phase { E_HEADERS, E_EOH, E_BODY, E_EOB, E_WAIT_FINAL };

struct hdr {
	char *name;
	char *value; /* folded lines joined by "\n", no leading space */
};

struct mconn {
	struct milter_session *ms;
	size_t idx;
	char *spec;
	int fd;
	struct io *cio;
	struct conn *conn;
	struct timeout *timer;
	enum mstate state;
	bool skip_msg;     /* accepted: nothing more for this message */
	bool awaiting;
	uint32_t actions, proto;
};

struct milter_session {
	struct ioloop *loop;
	struct milter_config cfg;
	struct mconn *m;
	size_t n;
	/* macros, by name */
	char *mac[12];
	/* the operation in progress */
	enum op op;
	size_t cur;
	milter_done_fn *done;
	void *ctx;
	struct defer *kick;
	char *conn_host, *conn_addr;
	unsigned conn_port;
	bool conn_v6;
	char *helo;
	struct str args;   /* NUL-separated command arguments */
	/* end of message */
	struct str *message;
	struct hdr *hdrs;
	size_t n_hdrs;
	size_t body_off;   /* offset of the body in *message */
	enum eom_phase phase;
	size_t hidx, boff;
	struct str newbody;
	size_t mod_bytes, mod_hdrs; /* header octets and changes added so far */
	bool replbody, quarantine, discard;
	bool in_msg;       /* between MAIL and the end of message or abort */
	/* the verdict, delivered from the loop (never from inside a callback
	 * of our own connections, so the owner may free the session) */
	enum milter_action result;
	char result_reply[512];
	bool has_reply;
};

static const char *const macro_names[12] = {
	"j", "i", "{client_addr}", "{client_name}", "{client_port}", "{daemon_name}",
	"{auth_authen}", "{auth_type}", "{tls_version}", "{cipher}", "{mail_addr}", "{rcpt_addr}",
};

static void step(struct milter_session *ms);
static void mconn_fail(struct mconn *m, const char *why);
static void on_timeout_cb(void *ctx);
static void parse_headers(struct milter_session *ms);

/* ---- packets ---- */

static void send_packet(struct mconn *m, char cmd, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)(len + 1));
	conn_write(m->conn, &n, 4);
	conn_write(m->conn, &cmd, 1);
	if (len > 0)
		conn_write(m->conn, data, len);
}

/* A macro packet for cmd with the given macro indexes. */
static void send_macros(struct mconn *m, char cmd, const int *idx, size_t n)
{
	struct milter_session *ms = m->ms;
	struct str buf = STR_INIT;
	str_appendc(&buf, cmd);
	for (size_t i = 0; i < n; i++) {
		const char *v = ms->mac[idx[i]];
		if (v == NULL || *v == '\0')
			continue;
		str_append(&buf, macro_names[idx[i]], strlen(macro_names[idx[i]]) + 1);
		str_append(&buf, v, strlen(v) + 1);
	}
	if (buf.len > 1)
		send_packet(m, C_MACRO, buf.s, buf.len);
	str_free(&buf);
}

static void arm(struct mconn *m)
{
	m->awaiting = true;
	if (m->timer == NULL)
		m->timer = timeout_add(m->ms->loop, m->ms->cfg.timeout_ms, on_timeout_cb, m);
	timeout_reset(m->timer, m->ms->cfg.timeout_ms);
}

/* ---- finishing an operation ---- */

static void finish(struct milter_session *ms, enum milter_action a, const char *reply)
{
	if (ms->op == OP_EOM)
		ms->in_msg = false;
	ms->op = OP_NONE;
	ms->result = a;
	ms->has_reply = reply != NULL;
	if (reply != NULL)
		snprintf(ms->result_reply, sizeof(ms->result_reply), "%s", reply);
	defer_schedule(ms->kick);
}

static void deliver_result(void *ctx)
{
	struct milter_session *ms = ctx;
	milter_done_fn *done = ms->done;
	void *dctx = ms->ctx;
	ms->done = NULL;
	if (done != NULL)
		done(dctx, ms->result, ms->has_reply ? ms->result_reply : NULL);
}

/* On to the next milter of the current operation. */
static void next_milter(struct milter_session *ms)
{
	ms->cur++;
	if (ms->op == OP_EOM) {
		parse_headers(ms);
		ms->phase = E_HEADERS;
		ms->hidx = ms->boff = 0;
	}
}

/* The default action when a milter cannot be used. Returns true when the
 * operation may go on without it. */
static bool default_action(struct milter_session *ms)
{
	switch (ms->cfg.default_action) {
	case MILTER_DEFAULT_ACCEPT:
		return true;
	case MILTER_DEFAULT_REJECT:
		finish(ms, MILTER_REJECT, "550 5.7.1 Service unavailable (filter)");
		return false;
	default:
		finish(ms, MILTER_TEMPFAIL, "451 4.7.1 Service unavailable (filter), try again later");
		return false;
	}
}

static void mconn_close(struct mconn *m)
{
	if (m->conn != NULL && m->state == M_READY)
		send_packet(m, C_QUIT, NULL, 0);
	if (m->conn != NULL)
		conn_flush(m->conn);
	conn_free(&m->conn);
	io_remove(&m->cio);
	if (m->fd >= 0 && m->conn == NULL)
		close(m->fd);
	m->fd = -1;
	timeout_remove(&m->timer);
}

static void mconn_fail(struct mconn *m, const char *why)
{
	struct milter_session *ms = m->ms;
	log_warn("event=milter_failed milter=%s error=\"%s\"", m->spec, why);
	bool was_current = ms->op != OP_NONE && ms->cur == m->idx;
	m->state = M_DEAD;
	m->awaiting = false;
	mconn_close(m);
	if (!was_current)
		return;
	if (default_action(ms)) {
		next_milter(ms);
		step(ms);
	}
}

/* ---- end of message: headers ---- */

static void free_hdrs(struct milter_session *ms)
{
	for (size_t i = 0; i < ms->n_hdrs; i++) {
		free(ms->hdrs[i].name);
		free(ms->hdrs[i].value);
	}
	x_free(&ms->hdrs);
	ms->n_hdrs = 0;
}

static void add_hdr_at(struct milter_session *ms, size_t pos, const char *name, const char *value)
{
	ms->hdrs = xreallocarray(ms->hdrs, ms->n_hdrs + 1, sizeof(*ms->hdrs));
	if (pos > ms->n_hdrs)
		pos = ms->n_hdrs;
	memmove(ms->hdrs + pos + 1, ms->hdrs + pos, (ms->n_hdrs - pos) * sizeof(*ms->hdrs));
	ms->hdrs[pos].name = xstrdup(name);
	ms->hdrs[pos].value = xstrdup(value);
	ms->n_hdrs++;
}

/* Splits *message into headers and the body offset. */
static void parse_headers(struct milter_session *ms)
{
	free_hdrs(ms);
	ms->mod_bytes = ms->mod_hdrs = 0;
	const char *s = ms->message->s ? ms->message->s : "";
	size_t len = ms->message->len, p = 0;
	while (p < len) {
		if (len - p >= 2 && s[p] == '\r' && s[p + 1] == '\n') {
			p += 2;
			break;
		}
		/* one field: up to a CRLF not followed by WSP */
		size_t start = p;
		size_t end = p;
		for (;;) {
			const char *crlf = memchr(s + end, '\n', len - end);
			if (crlf == NULL) {
				end = len;
				break;
			}
			end = (size_t)(crlf - s) + 1;
			if (end >= len || (s[end] != ' ' && s[end] != '\t'))
				break;
		}
		const char *colon = memchr(s + start, ':', end - start);
		if (colon == NULL) {
			/* not a header: the body starts here */
			p = start;
			break;
		}
		char *name = xstrndup(s + start, (size_t)(colon - (s + start)));
		const char *v = colon + 1;
		if (v < s + end && *v == ' ')
			v++;
		size_t vlen = (size_t)(s + end - v);
		struct str val = STR_INIT;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] == '\r' && i + 1 < vlen && v[i + 1] == '\n')
				continue; /* CRLF inside becomes LF, the final one goes */
			str_appendc(&val, v[i]);
		}
		while (val.len > 0 && val.s[val.len - 1] == '\n')
			val.s[--val.len] = '\0';
		ms->hdrs = xreallocarray(ms->hdrs, ms->n_hdrs + 1, sizeof(*ms->hdrs));
		ms->hdrs[ms->n_hdrs].name = name;
		ms->hdrs[ms->n_hdrs].value = val.s ? str_steal(&val) : xstrdup("");
		ms->n_hdrs++;
		p = end;
	}
	ms->body_off = p;
}

/* Rebuilds *message from the headers and the (possibly replaced) body. */
static void rebuild(struct milter_session *ms)
{
	struct str out = STR_INIT;
	for (size_t i = 0; i < ms->n_hdrs; i++) {
		str_appends(&out, ms->hdrs[i].name);
		str_appends(&out, ": ");
		for (const char *p = ms->hdrs[i].value; *p; p++) {
			if (*p == '\n')
				str_appendc(&out, '\r');
			if (*p != '\r')
				str_appendc(&out, *p);
		}
		str_appends(&out, "\r\n");
	}
	str_appends(&out, "\r\n");
	if (ms->replbody)
		str_append(&out, ms->newbody.s ? ms->newbody.s : "", ms->newbody.len);
	else
		str_append(&out, ms->message->s + ms->body_off, ms->message->len - ms->body_off);
	str_free(ms->message);
	*ms->message = out;
	ms->replbody = false;
	str_free(&ms->newbody);
}

/* ---- the state machine ---- */

/* Sends what the current operation needs from milter m; returns true when
 * a reply is awaited, false when m is done with this operation. */
static bool send_op(struct mconn *m)
{
	struct milter_session *ms = m->ms;
	switch (ms->op) {
	case OP_CONNECT: {
		if (m->proto & P_NOCONNECT)
			return false;
		static const int idx[] = { 0, 2, 3, 4, 5 };
		send_macros(m, C_CONNECT, idx, 5);
		struct str d = STR_INIT;
		const char *host = ms->conn_host ? ms->conn_host : ms->conn_addr;
		str_append(&d, host, strlen(host) + 1);
		str_appendc(&d, ms->conn_v6 ? '6' : '4');
		uint16_t port = htons((uint16_t)ms->conn_port);
		str_append(&d, &port, 2);
		str_append(&d, ms->conn_addr, strlen(ms->conn_addr) + 1);
		send_packet(m, C_CONNECT, d.s, d.len);
		str_free(&d);
		return !(m->proto & P_NR_CONN);
	}
	case OP_HELO: {
		if (m->proto & P_NOHELO)
			return false;
		static const int idx[] = { 8, 9 };
		send_macros(m, C_HELO, idx, 2);
		send_packet(m, C_HELO, ms->helo, strlen(ms->helo) + 1);
		return !(m->proto & P_NR_HELO);
	}
	case OP_MAIL: {
		if (m->proto & P_NOMAIL)
			return false;
		static const int idx[] = { 1, 6, 7, 10 };
		send_macros(m, C_MAIL, idx, 4);
		send_packet(m, C_MAIL, ms->args.s, ms->args.len);
		return !(m->proto & P_NR_MAIL);
	}
	case OP_RCPT: {
		if (m->proto & P_NORCPT)
			return false;
		static const int idx[] = { 11 };
		send_macros(m, C_RCPT, idx, 1);
		send_packet(m, C_RCPT, ms->args.s, ms->args.len);
		return !(m->proto & P_NR_RCPT);
	}
	case OP_DATA:
		if (m->proto & P_NODATA)
			return false;
		send_packet(m, C_DATA, NULL, 0);
		return !(m->proto & P_NR_DATA);
	case OP_EOM:
		for (;;) {
			switch (ms->phase) {
			case E_HEADERS:
				if ((m->proto & P_NOHDRS) || ms->hidx >= ms->n_hdrs) {
					ms->phase = E_EOH;
					continue;
				}
				{
					struct hdr *h = &ms->hdrs[ms->hidx++];
					struct str d = STR_INIT;
					str_append(&d, h->name, strlen(h->name) + 1);
					str_append(&d, h->value, strlen(h->value) + 1);
					send_packet(m, C_HEADER, d.s, d.len);
					str_free(&d);
				}
				if (!(m->proto & P_NR_HDR))
					return true;
				continue;
			case E_EOH:
				ms->phase = E_BODY;
				if (m->proto & P_NOEOH)
					continue;
				send_packet(m, C_EOH, NULL, 0);
				if (!(m->proto & P_NR_EOH))
					return true;
				continue;
			case E_BODY: {
				size_t blen = ms->message->len - ms->body_off;
				if ((m->proto & P_NOBODY) || ms->boff >= blen) {
					ms->phase = E_EOB;
					continue;
				}
				size_t n = blen - ms->boff < CHUNK ? blen - ms->boff : CHUNK;
				send_packet(m, C_BODY, ms->message->s + ms->body_off + ms->boff, n);
				ms->boff += n;
				if (!(m->proto & P_NR_BODY))
					return true;
				continue;
			}
			case E_EOB: {
				static const int idx[] = { 1 };
				send_macros(m, C_BODYEOB, idx, 1);
				send_packet(m, C_BODYEOB, NULL, 0);
				ms->phase = E_WAIT_FINAL;
				return true;
			}
			case E_WAIT_FINAL:
				return true;
			}
		}
	case OP_NONE:
		break;
	}
	return false;
}

static bool msg_op(enum op op)
{
	return op == OP_MAIL || op == OP_RCPT || op == OP_DATA || op == OP_EOM;
}

static void step(struct milter_session *ms)
{
	while (ms->op != OP_NONE && ms->cur < ms->n) {
		struct mconn *m = &ms->m[ms->cur];
		if (m->state == M_DEAD || m->state == M_SESSION_ACCEPTED ||
		    (m->skip_msg && msg_op(ms->op))) {
			next_milter(ms);
			continue;
		}
		if (m->state != M_READY)
			return; /* connecting or negotiating: continues when ready */
		if (send_op(m)) {
			arm(m);
			return;
		}
		next_milter(ms);
	}
	if (ms->op == OP_NONE)
		return;
	enum milter_action a = MILTER_CONTINUE;
	if (ms->op == OP_EOM) {
		if (ms->discard)
			a = MILTER_DISCARD;
		else if (ms->quarantine)
			a = MILTER_QUARANTINE;
		free_hdrs(ms);
	}
	finish(ms, a, NULL);
}

/* The milter has answered the current step with a final verdict. */
static void verdict(struct mconn *m, char cmd, const char *data, size_t len)
{
	struct milter_session *ms = m->ms;
	m->awaiting = false;
	timeout_stop(m->timer);
	switch (cmd) {
	case R_CONTINUE:
		if (ms->op == OP_EOM && ms->phase != E_WAIT_FINAL) {
			step(ms);
			return;
		}
		break;
	case R_SKIP:
		if (ms->op == OP_EOM && ms->phase == E_BODY) {
			ms->phase = E_EOB;
			step(ms);
			return;
		}
		break;
	case R_ACCEPT:
		if (ms->op == OP_CONNECT || ms->op == OP_HELO)
			m->state = M_SESSION_ACCEPTED;
		else
			m->skip_msg = true;
		break;
	case R_DISCARD:
		if (msg_op(ms->op)) {
			ms->discard = true;
			m->skip_msg = true;
			if (ms->op == OP_EOM) {
				rebuild(ms);
				free_hdrs(ms);
			}
			finish(ms, MILTER_DISCARD, NULL);
			return;
		}
		break;
	case R_REJECT:
	case R_TEMPFAIL:
		if (ms->op == OP_EOM)
			free_hdrs(ms);
		finish(ms, cmd == R_REJECT ? MILTER_REJECT : MILTER_TEMPFAIL, NULL);
		return;
	case R_REPLYCODE: {
		char reply[512];
		size_t n = len < sizeof(reply) - 1 ? len : sizeof(reply) - 1;
		memcpy(reply, data, n);
		reply[n] = '\0';
		/* Only the first line of a multi-line reply (smfi_setmlreply) is
		 * passed on, as a final one: a "550-" line sent alone would leave
		 * the client waiting for the rest. */
		reply[strcspn(reply, "\r\n")] = '\0';
		for (char *p = reply; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		bool temp = reply[0] == '4';
		bool valid = (reply[0] == '4' || reply[0] == '5') && reply[1] >= '0' &&
			     reply[1] <= '9' && reply[2] >= '0' && reply[2] <= '9' &&
			     (reply[3] == ' ' || reply[3] == '-' || reply[3] == '\0');
		if (valid && reply[3] == '-')
			reply[3] = ' ';
		if (ms->op == OP_EOM)
			free_hdrs(ms);
		finish(ms, temp ? MILTER_TEMPFAIL : MILTER_REJECT, valid ? reply : NULL);
		return;
	}
	default:
		mconn_fail(m, "unexpected reply");
		return;
	}
	/* on to the next milter */
	if (ms->op == OP_EOM)
		rebuild(ms);
	next_milter(ms);
	step(ms);
}

static const char *cstr(const char *data, size_t len, size_t *used_r)
{
	const char *nul = memchr(data, '\0', len);
	if (nul == NULL)
		return NULL;
	*used_r = (size_t)(nul - data) + 1;
	return data;
}

/* End-of-message modifications. Returns -1 on a malformed one. */
static int modification(struct mconn *m, char cmd, const char *data, size_t len)
{
	struct milter_session *ms = m->ms;
	if (ms->op != OP_EOM || ms->phase != E_WAIT_FINAL)
		return -1;
	/* a milter is not trusted to bound its own output */
	if (cmd == R_REPLBODY) {
		size_t body_len = ms->message->len - ms->body_off;
		size_t have = ms->replbody ? ms->newbody.len : 0;
		if (len > body_len + MOD_SLACK - have || have > body_len + MOD_SLACK)
			return -1;
	} else if (cmd != R_QUARANTINE) {
		ms->mod_bytes += len;
		if (ms->mod_bytes > MOD_SLACK || ++ms->mod_hdrs > MOD_HDRS_MAX)
			return -1;
	}
	size_t u1, u2;
	switch (cmd) {
	case R_ADDHEADER: {
		const char *name = cstr(data, len, &u1);
		const char *value = name ? cstr(data + u1, len - u1, &u2) : NULL;
		if (value == NULL || !(m->actions & F_ADDHDRS))
			return -1;
		add_hdr_at(ms, ms->n_hdrs, name, value);
		return 0;
	}
	case R_INSHEADER:
	case R_CHGHEADER: {
		if (len < 4 || !(m->actions & (cmd == R_INSHEADER ? F_ADDHDRS : F_CHGHDRS)))
			return -1;
		uint32_t idx;
		memcpy(&idx, data, 4);
		idx = ntohl(idx);
		const char *name = cstr(data + 4, len - 4, &u1);
		const char *value = name ? cstr(data + 4 + u1, len - 4 - u1, &u2) : NULL;
		if (value == NULL)
			return -1;
		if (cmd == R_INSHEADER) {
			add_hdr_at(ms, idx, name, value);
			return 0;
		}
		/* the idx-th (from 1) header of that name; an empty value deletes */
		uint32_t seen = 0;
		for (size_t i = 0; i < ms->n_hdrs; i++) {
			if (strcasecmp(ms->hdrs[i].name, name) != 0 || ++seen != (idx ? idx : 1))
				continue;
			if (*value == '\0') {
				free(ms->hdrs[i].name);
				free(ms->hdrs[i].value);
				memmove(ms->hdrs + i, ms->hdrs + i + 1,
					(ms->n_hdrs - i - 1) * sizeof(*ms->hdrs));
				ms->n_hdrs--;
			} else {
				free(ms->hdrs[i].value);
				ms->hdrs[i].value = xstrdup(value);
			}
			return 0;
		}
		if (*value != '\0')
			add_hdr_at(ms, ms->n_hdrs, name, value);
		return 0;
	}
	case R_REPLBODY:
		if (!(m->actions & F_CHGBODY))
			return -1;
		if (!ms->replbody)
			str_truncate(&ms->newbody, 0);
		ms->replbody = true;
		str_append(&ms->newbody, data, len);
		return 0;
	case R_QUARANTINE: {
		char why[128];
		log_sanitize(why, sizeof(why), data, len ? len - 1 : 0);
		log_info("event=milter_quarantine milter=%s reason=\"%s\"", m->spec, why);
		ms->quarantine = true;
		return 0;
	}
	default:
		/* recipients and sender changes were not offered */
		return -1;
	}
}

static void negotiated(struct mconn *m, const char *data, size_t len)
{
	if (len < 12) {
		mconn_fail(m, "short option negotiation");
		return;
	}
	uint32_t v[3];
	memcpy(v, data, 12);
	uint32_t version = ntohl(v[0]);
	m->actions = ntohl(v[1]);
	m->proto = ntohl(v[2]);
	if (version < 2 || (m->actions & ~(uint32_t)OUR_ACTIONS) != 0 ||
	    (m->proto & ~(uint32_t)OUR_PROTO & 0x0fffffff) != 0) {
		mconn_fail(m, "milter wants actions or steps not offered");
		return;
	}
	m->state = M_READY;
	m->awaiting = false;
	timeout_stop(m->timer);
	struct milter_session *ms = m->ms;
	if (ms->op != OP_NONE && ms->cur == m->idx)
		step(ms);
}

static void packet(struct mconn *m, char cmd, const char *data, size_t len)
{
	if (m->state == M_NEGOTIATING) {
		if (cmd != R_OPTNEG) {
			mconn_fail(m, "bad option negotiation");
			return;
		}
		negotiated(m, data, len);
		return;
	}
	if (cmd == R_PROGRESS) {
		arm(m);
		return;
	}
	if (!m->awaiting) {
		mconn_fail(m, "unexpected packet");
		return;
	}
	switch (cmd) {
	case R_ADDHEADER:
	case R_INSHEADER:
	case R_CHGHEADER:
	case R_REPLBODY:
	case R_QUARANTINE:
		if (modification(m, cmd, data, len) < 0)
			mconn_fail(m, "bad or unnegotiated modification");
		return;
	default:
		verdict(m, cmd, data, len);
	}
}

static void mconn_event(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct mconn *m = ctx;
	switch (ev) {
	case CONN_EV_DATA_IN:
		for (;;) {
			const void *d;
			size_t len;
			conn_input(conn, &d, &len);
			if (len < 5)
				return;
			uint32_t n;
			memcpy(&n, d, 4);
			n = ntohl(n);
			if (n == 0 || n > PACKET_MAX) {
				mconn_fail(m, "bad packet length");
				return;
			}
			if (len < 4 + (size_t)n)
				return;
			const char *p = d;
			/* the packet stays valid: nothing reads the socket meanwhile */
			packet(m, p[4], p + 5, n - 1);
			if (m->conn == NULL || m->state == M_DEAD)
				return;
			conn_consume(conn, 4 + (size_t)n);
		}
	case CONN_EV_DRAINED:
	case CONN_EV_TLS_READY:
		return;
	case CONN_EV_TIMEOUT:
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
		mconn_fail(m, ev == CONN_EV_EOF ? "connection closed" : conn_error(conn));
		return;
	}
}

static void on_timeout_cb(void *ctx)
{
	struct mconn *m = ctx;
	if (m->awaiting || m->state == M_CONNECTING || m->state == M_NEGOTIATING)
		mconn_fail(m, "timeout");
}

static void start_negotiation(struct mconn *m)
{
	m->conn = conn_new(m->ms->loop, m->fd, mconn_event, m);
	conn_set_input_limit(m->conn, PACKET_MAX + 16);
	m->state = M_NEGOTIATING;
	uint32_t v[3] = { htonl(MILTER_VERSION), htonl(OUR_ACTIONS), htonl(OUR_PROTO) };
	send_packet(m, C_OPTNEG, v, sizeof(v));
	arm(m);
}

static void connected(void *ctx, unsigned revents)
{
	struct mconn *m = ctx;
	(void)revents;
	int err = 0;
	socklen_t len = sizeof(err);
	io_remove(&m->cio);
	if (getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		mconn_fail(m, strerror(err));
		return;
	}
	start_negotiation(m);
}

static void mconn_open(struct mconn *m)
{
	const char *spec = m->spec;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	memset(&ss, 0, sizeof(ss));
	if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') {
		const char *path = spec[0] == '/' ? spec : spec + 5;
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		if (strlen(path) >= sizeof(sun->sun_path)) {
			mconn_fail(m, "socket path too long");
			return;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, path, strlen(path) + 1);
		sl = sizeof(*sun);
	} else {
		const char *p = strchr(spec, ':');
		const char *at = p ? strchr(p, '@') : NULL;
		if (at == NULL) {
			mconn_fail(m, "bad milter address");
			return;
		}
		char port[8];
		size_t n = (size_t)(at - p - 1);
		if (n == 0 || n >= sizeof(port)) {
			mconn_fail(m, "bad milter port");
			return;
		}
		memcpy(port, p + 1, n);
		port[n] = '\0';
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_family = strncmp(spec, "inet6:", 6) == 0 ? AF_INET6 : AF_UNSPEC;
		if (getaddrinfo(at + 1, port, &hints, &res) != 0 || res == NULL) {
			mconn_fail(m, "cannot resolve the milter host");
			return;
		}
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		sl = res->ai_addrlen;
		freeaddrinfo(res);
	}
	m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd < 0) {
		mconn_fail(m, strerror(errno));
		return;
	}
	m->state = M_CONNECTING;
	m->timer = timeout_add(m->ms->loop, m->ms->cfg.timeout_ms, on_timeout_cb, m);
	if (connect(m->fd, (struct sockaddr *)&ss, sl) == 0) {
		start_negotiation(m);
		return;
	}
	if (errno != EINPROGRESS && errno != EAGAIN) {
		mconn_fail(m, strerror(errno));
		return;
	}
	m->cio = io_add(m->ms->loop, m->fd, IO_WRITE, connected, m);
}

/* ---- the API ---- */

struct milter_session *milter_session_new(struct ioloop *loop, const struct milter_config *cfg)
{
	struct milter_session *ms = xcalloc(1, sizeof(*ms));
	ms->loop = loop;
	ms->kick = defer_new(loop, deliver_result, ms);
	ms->cfg = *cfg;
	ms->n = cfg->n_specs;
	ms->m = xcalloc(ms->n ? ms->n : 1, sizeof(*ms->m));
	for (size_t i = 0; i < ms->n; i++) {
		ms->m[i].ms = ms;
		ms->m[i].idx = i;
		ms->m[i].fd = -1;
		ms->m[i].spec = xstrdup(cfg->specs[i]);
		ms->m[i].state = M_DEAD;
	}
	ms->cfg.specs = NULL;
	return ms;
}

void milter_session_free(struct milter_session **msp)
{
	struct milter_session *ms = *msp;
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++) {
		mconn_close(&ms->m[i]);
		free(ms->m[i].spec);
	}
	free(ms->m);
	defer_free(&ms->kick);
	for (size_t i = 0; i < 12; i++)
		free(ms->mac[i]);
	free(ms->conn_host);
	free(ms->conn_addr);
	free(ms->helo);
	str_free(&ms->args);
	str_free(&ms->newbody);
	free_hdrs(ms);
	free(ms);
	*msp = NULL;
}

void milter_set_macros(struct milter_session *ms, const struct milter_macros *m)
{
	const char *v[12] = { m->j, m->i, m->client_addr, m->client_name, m->client_port,
			      m->daemon_name, m->auth_authen, m->auth_type, m->tls_version,
			      m->cipher, m->mail_addr, m->rcpt_addr };
	for (size_t i = 0; i < 12; i++) {
		if (v[i] == NULL)
			continue;
		free(ms->mac[i]);
		ms->mac[i] = xstrdup(v[i]);
	}
}

static void begin(struct milter_session *ms, enum op op, milter_done_fn *done, void *ctx)
{
	ms->op = op;
	ms->cur = 0;
	ms->done = done;
	ms->ctx = ctx;
	step(ms);
}

void milter_connect(struct milter_session *ms, const char *hostname, const char *addr,
		    unsigned port, bool is_ipv6, milter_done_fn *done, void *ctx)
{
	free(ms->conn_host);
	free(ms->conn_addr);
	ms->conn_host = xstrdup(hostname ? hostname : "unknown");
	ms->conn_addr = xstrdup(addr);
	ms->conn_port = port;
	ms->conn_v6 = is_ipv6;
	ms->op = OP_CONNECT;
	ms->cur = 0;
	ms->done = done;
	ms->ctx = ctx;
	for (size_t i = 0; i < ms->n; i++) {
		ms->m[i].state = M_CONNECTING;
		mconn_open(&ms->m[i]);
		if (ms->op == OP_NONE)
			return; /* refused by the default action */
	}
	step(ms);
}

void milter_helo(struct milter_session *ms, const char *helo, milter_done_fn *done, void *ctx)
{
	free(ms->helo);
	ms->helo = xstrdup(helo);
	begin(ms, OP_HELO, done, ctx);
}

static void set_args(struct milter_session *ms, const char *const *args)
{
	str_truncate(&ms->args, 0);
	for (size_t i = 0; args[i] != NULL; i++)
		str_append(&ms->args, args[i], strlen(args[i]) + 1);
}

void milter_envfrom(struct milter_session *ms, const char *const *args, milter_done_fn *done,
		    void *ctx)
{
	for (size_t i = 0; i < ms->n; i++)
		ms->m[i].skip_msg = false;
	ms->quarantine = ms->discard = false;
	ms->in_msg = true;
	set_args(ms, args);
	begin(ms, OP_MAIL, done, ctx);
}

void milter_envrcpt(struct milter_session *ms, const char *const *args, milter_done_fn *done,
		    void *ctx)
{
	set_args(ms, args);
	begin(ms, OP_RCPT, done, ctx);
}

void milter_data(struct milter_session *ms, milter_done_fn *done, void *ctx)
{
	begin(ms, OP_DATA, done, ctx);
}

void milter_eom(struct milter_session *ms, struct str *message, milter_done_fn *done, void *ctx)
{
	ms->message = message;
	parse_headers(ms);
	ms->phase = E_HEADERS;
	ms->hidx = ms->boff = 0;
	ms->replbody = false;
	begin(ms, OP_EOM, done, ctx);
}

void milter_abort(struct milter_session *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		struct mconn *m = &ms->m[i];
		if (ms->in_msg && m->state == M_READY && !m->skip_msg && !m->awaiting)
			send_packet(m, C_ABORT, NULL, 0);
		m->skip_msg = false;
	}
	ms->quarantine = ms->discard = false;
	ms->in_msg = false;
	ms->message = NULL;
	free_hdrs(ms);
}
