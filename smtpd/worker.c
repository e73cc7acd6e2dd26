/* A session worker: accepts connections on the inherited listeners, runs
 * the SMTP/LMTP sessions (smtp-session.c) over lib/conn with TLS, applies
 * the policy (relay, sender ownership, limits), calls the milters, and asks
 * the delivery process for everything that needs the store. It never opens
 * the store and runs without privileges. */
#include "config.h"
#include "reload.h"
#include "address.h"
#include "conn.h"
#include "dns-resolver.h"
#include "dproto.h"
#include "frame.h"
#include "iplimits.h"
#include "ioloop.h"
#include "log.h"
#include "mime.h"
#include "milter.h"
#include "net.h"
#include "queue-record.h"
#include "smtp-session.h"
#include "smtpd.h"
#include "store/store.h"
#include "tls.h"
#include "xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Replies buffered for a client before its input is no longer read. */
#define OUTPUT_HIGH_WATER (64 * 1024)

struct wconfig {
	char *hostname;
	char *domains;
	char *first_domain;
	struct net_list *trusted;
	uint64_t max_message_size;
	unsigned max_recipients, max_errors, max_per_ip;
	unsigned command_timeout_ms, data_timeout_ms;
	unsigned auth_delay_ms;
	bool over_quota_permanent;
	bool reverse_dns;
	unsigned reverse_dns_timeout_ms;
	char *sender_aliases;       /* ",user=a|b," normalised lower case */
	struct milter_config milters;
};

struct client;

struct worker {
	struct ioloop *loop;
	unsigned id;
	struct wconfig cfg;
	struct settings *set;
	struct io **lios;
	struct listen_fd *listeners;
	size_t n_listeners;
	struct timeout *accept_pause;
	struct frame_chan *delivery;
	struct frame_chan *parent;
	struct tls_ctx *tls_mx, *tls_sub;
	struct iplimits *limits;
	unsigned max_connections;
	/* client names: the resolver, on global.dns_server as at start */
	struct dnsr *dns;
	struct io *dns_io;
	char *dns_server;
	/* clients by slot; requests carry (generation << 32 | slot) */
	struct client **slots;
	uint32_t *gens;
	size_t n_slots;
	uint32_t *free_slots;
	size_t n_free;
	size_t n_clients;
	uint64_t counter;
	bool stopping;
};

enum pending_req { REQ_NONE, REQ_RCPT, REQ_AUTH, REQ_DELIVER };

struct rdns;

struct client {
	struct worker *w;
	uint32_t slot;
	struct conn *conn;
	struct smtp_session *s;
	struct milter_session *milter;
	unsigned service;
	struct net_addr peer;
	char ip[NET_ADDR_STR_MAX];
	char id[24];
	uint64_t iphash;
	bool counted_ip, counted_total;
	bool trusted;
	bool closing;
	bool tls_pending_greeting; /* SMTPS: greet after the handshake */
	struct rdns *rdns;         /* the name look-up the greeting waits for */
	char *name;                /* verified client name, or NULL: "unknown" */
	bool in_input;             /* inside smtp_session_input() */
	bool starttls_pending;     /* start TLS once the command is consumed */
	enum pending_req req;
	enum smtp_stage stage;
	unsigned timeout_ms;
	struct timeout *delay;
	char *delay_reply;
	/* end of message */
	struct str msg;
	bool junk, discard;
	size_t *rcpt_map;   /* tx recipient -> index in the DF_DELIVER list */
	char **local_addrs;
	size_t n_local;
	bool has_relay;
	unsigned n_msgs;
};

static struct worker *the_worker;

static void client_free(struct client *c);
static void client_pump(struct client *c);
static void after_policy(struct client *c, const char *reply);

static uint64_t req_id(const struct client *c)
{
	return (uint64_t)c->w->gens[c->slot] << 32 | c->slot;
}

static struct client *client_by_req(struct worker *w, uint64_t req)
{
	uint32_t slot = (uint32_t)req;
	if (slot >= w->n_slots || w->gens[slot] != (uint32_t)(req >> 32))
		return NULL;
	return w->slots[slot];
}

/* ---- configuration ---- */

static void wconfig_free(struct wconfig *c)
{
	free(c->hostname);
	free(c->domains);
	free(c->first_domain);
	free(c->sender_aliases);
	net_list_free(&c->trusted);
	for (size_t i = 0; i < c->milters.n_specs; i++)
		free(c->milters.specs[i]);
	free(c->milters.specs);
	memset(c, 0, sizeof(*c));
}

static int wconfig_load(struct wconfig *c, const struct settings *set, char **error_r)
{
	memset(c, 0, sizeof(*c));
	const char *h = settings_str(set, S_GLOBAL_HOSTNAME);
	char host[256];
	if (*h == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		h = host;
	}
	c->hostname = xstrdup(h);
	c->domains = xstrdup(settings_str(set, S_GLOBAL_DOMAINS));
	size_t n = strcspn(c->domains, " ,\t");
	c->first_domain = xstrndup(c->domains, n);
	if (net_list_parse(settings_str(set, S_SMTPD_TRUSTED_NETWORKS), &c->trusted, error_r) < 0)
		return -1;
	c->max_message_size = settings_num(set, S_SMTPD_MAX_MESSAGE_SIZE);
	c->max_recipients = (unsigned)settings_num(set, S_SMTPD_MAX_RECIPIENTS);
	c->max_errors = (unsigned)settings_num(set, S_SMTPD_MAX_ERRORS);
	c->max_per_ip = (unsigned)settings_num(set, S_SMTPD_MAX_SESSIONS_PER_IP);
	c->command_timeout_ms = (unsigned)settings_num(set, S_SMTPD_COMMAND_TIMEOUT) * 1000;
	c->data_timeout_ms = (unsigned)settings_num(set, S_SMTPD_DATA_TIMEOUT) * 1000;
	c->auth_delay_ms = (unsigned)settings_num(set, S_SMTPD_AUTH_FAILURE_DELAY) * 1000;
	c->over_quota_permanent = settings_num(set, S_QUOTA_OVER_QUOTA) == 1;
	c->reverse_dns = settings_num(set, S_SMTPD_REVERSE_DNS) != 0;
	c->reverse_dns_timeout_ms = (unsigned)settings_num(set, S_SMTPD_REVERSE_DNS_TIMEOUT) * 1000;
	/* sender_aliases "user=a|b, user2=c": kept as ",user=a|b,user2=c," */
	struct str al = STR_INIT;
	str_appendc(&al, ',');
	for (const char *p = settings_str(set, S_SMTPD_SENDER_ALIASES); *p; p++)
		if (*p != ' ' && *p != '\t')
			str_appendc(&al, (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p));
	str_appendc(&al, ',');
	c->sender_aliases = str_steal(&al);
	int nm = 0;
	char **list = settings_list(set, S_SMTPD_MILTERS, &nm);
	c->milters.specs = xcalloc((size_t)nm + 1, sizeof(char *));
	for (int i = 0; i < nm; i++)
		c->milters.specs[i] = xstrdup(list[i]);
	c->milters.n_specs = (size_t)nm;
	settings_list_free(&list);
	c->milters.timeout_ms = (unsigned)settings_num(set, S_SMTPD_MILTER_TIMEOUT) * 1000;
	c->milters.default_action = (enum milter_default)settings_num(set, S_SMTPD_MILTER_DEFAULT_ACTION);
	return 0;
}

/* ---- replies from the delivery process ---- */

static const char *rcpt_status_reply(struct client *c, enum store_rcpt_status st, char *buf,
				     size_t size, const char *addr)
{
	switch (st) {
	case RCPT_OK:
		return NULL;
	case RCPT_NO_ACCOUNT:
	case RCPT_NO_MAILBOX:
		snprintf(buf, size, "550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
		break;
	case RCPT_OVER_QUOTA:
		snprintf(buf, size, c->w->cfg.over_quota_permanent
					    ? "552 5.2.2 <%s>: Mailbox full"
					    : "452 4.2.2 <%s>: Mailbox full",
			 addr);
		break;
	case RCPT_TOO_BIG:
		snprintf(buf, size, "552 5.2.2 <%s>: Message larger than the mailbox quota", addr);
		break;
	default:
		snprintf(buf, size, "451 4.3.0 <%s>: Temporary local problem, try again later", addr);
		break;
	}
	return buf;
}

static void milter_then(struct client *c, enum smtp_stage stage);

static void rcpt_reply(struct worker *w, struct frame_reader *r)
{
	uint64_t req = frame_get_u64(r);
	uint32_t st = frame_get_u32(r);
	if (!frame_reader_ok(r) || st > RCPT_ERROR)
		fatal("malformed frame from the delivery process");
	struct client *c = client_by_req(w, req);
	if (c == NULL || c->req != REQ_RCPT)
		return;
	c->req = REQ_NONE;
	struct smtp_tx *tx = smtp_session_tx(c->s);
	char buf[400];
	const char *rep = rcpt_status_reply(c, st, buf, sizeof(buf), tx->pending.account);
	if (rep != NULL) {
		log_info("event=rcpt_refused session=%s status=%u", c->id, st);
		after_policy(c, rep);
		return;
	}
	tx->pending.local = true;
	after_policy(c, NULL);
}

static void auth_resume(void *ctx)
{
	struct client *c = ctx;
	timeout_remove(&c->delay);
	smtp_session_resume(c->s, NULL);
	client_pump(c);
}

static void auth_reply(struct worker *w, struct frame_reader *r)
{
	uint64_t req = frame_get_u64(r);
	uint8_t ok = frame_get_u8(r);
	const char *account = frame_get_str(r, ADDRESS_MAX_LEN);
	if (!frame_reader_ok(r))
		fatal("malformed frame from the delivery process");
	struct client *c = client_by_req(w, req);
	if (c == NULL || c->req != REQ_AUTH)
		return;
	c->req = REQ_NONE;
	const char *user, *pass;
	smtp_session_auth_creds(c->s, &user, &pass);
	char safe[128];
	log_sanitize(safe, sizeof(safe), user, strlen(user));
	if (ok) {
		smtp_session_set_auth_user(c->s, account);
		log_info("event=auth session=%s ip=%s user=%s", c->id, c->ip, account);
		if (c->milter != NULL) {
			struct milter_macros m = { .auth_authen = account };
			milter_set_macros(c->milter, &m);
		}
		smtp_session_resume(c->s, NULL);
		client_pump(c);
		return;
	}
	unsigned n = iplimits_auth_failed(w->limits, c->iphash, (int64_t)time(NULL));
	/* The line fail2ban matches: "event=auth_failed ... ip=ADDR" */
	log_warn("event=auth_failed session=%s ip=%s user=\"%s\" failures=%u", c->id, c->ip, safe, n);
	unsigned factor = n < 8 ? n : 8;
	uint64_t delay = (uint64_t)w->cfg.auth_delay_ms * factor;
	if (delay == 0) {
		auth_resume(c);
		return;
	}
	c->delay = timeout_add(w->loop, delay, auth_resume, c);
}

static void eom_reply(struct worker *w, struct frame_reader *r);

static void delivery_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct worker *w = ctx;
	struct frame_reader r;
	frame_reader_init(&r, data, len);
	switch (type) {
	case DF_RCPT_REPLY:
		rcpt_reply(w, &r);
		break;
	case DF_AUTH_REPLY:
		auth_reply(w, &r);
		break;
	case DF_DELIVER_REPLY:
		eom_reply(w, &r);
		break;
	default:
		fatal("malformed frame from the delivery process");
	}
}

static void delivery_gone(void *ctx, const char *error)
{
	struct worker *w = ctx;
	if (w->stopping) {
		/* Sessions waiting for an answer would wait forever (the
		 * parent stops us when the delivery process died; its SIGTERM
		 * can come before this). Their clients see the connection
		 * drop, as below, and send again. */
		bool waiting = false;
		for (size_t i = 0; i < w->n_slots && !waiting; i++)
			waiting = w->slots[i] != NULL && w->slots[i]->req != REQ_NONE;
		if (!waiting)
			return;
	}
	fatal("delivery process channel: %s", error);
}

/* ---- stages ---- */

/* Whether an authenticated user may use from as the sender. */
static bool sender_allowed(struct worker *w, const char *user, const char *from)
{
	char norm[ADDRESS_MAX_LEN + 1];
	const char *why;
	if (address_normalize(from, norm, &why) < 0)
		return false;
	if (strcmp(norm, user) == 0)
		return true;
	/* ",user=a|b," */
	size_t ul = strlen(user);
	for (const char *p = w->cfg.sender_aliases; (p = strstr(p, user)) != NULL; p += ul) {
		if (p[-1] != ',' || p[ul] != '=')
			continue;
		const char *q = p + ul + 1;
		size_t nl = strlen(norm);
		for (;;) {
			size_t len = strcspn(q, "|,");
			if (len == nl && memcmp(q, norm, nl) == 0)
				return true;
			if (q[len] != '|')
				break;
			q += len + 1;
		}
	}
	return false;
}

static void stage_rcpt(struct client *c)
{
	struct worker *w = c->w;
	struct smtp_tx *tx = smtp_session_tx(c->s);
	struct smtp_rcpt *r = &tx->pending;
	char norm[ADDRESS_MAX_LEN + 1];
	const char *why;
	char buf[400];
	const char *path = r->path;
	char pm[ADDRESS_MAX_LEN + 1];
	if (strchr(path, '@') == NULL) { /* "Postmaster" (RFC 5321 4.5.1) */
		snprintf(pm, sizeof(pm), "postmaster@%s", w->cfg.first_domain);
		path = pm;
	}
	const char *at = strrchr(path, '@');
	bool local = domain_is_local(at + 1, w->cfg.domains);
	if (local) {
		if (address_normalize(path, norm, &why) < 0) {
			snprintf(buf, sizeof(buf), "550 5.1.1 Recipient address rejected: %s", why);
			after_policy(c, buf);
			return;
		}
		r->account = xstrdup(norm);
		struct str f = STR_INIT;
		frame_put_u64(&f, req_id(c));
		frame_put_str(&f, norm);
		frame_put_u64(&f, tx->size_param);
		c->req = REQ_RCPT;
		frame_send(w->delivery, DF_RCPT, f.s, f.len);
		str_free(&f);
		return;
	}
	if (c->service == LISTEN_LMTP) {
		after_policy(c, "550 5.1.1 Recipient address rejected: not a local domain");
		return;
	}
	if (smtp_session_auth_user(c->s) == NULL && !c->trusted) {
		char safe[128];
		log_sanitize(safe, sizeof(safe), r->path, strlen(r->path));
		log_info("event=relay_denied session=%s ip=%s rcpt=\"%s\"", c->id, c->ip, safe);
		after_policy(c, "554 5.7.1 Relay access denied");
		return;
	}
	r->local = false;
	after_policy(c, NULL);
}

static void stage_mail(struct client *c)
{
	const char *user = smtp_session_auth_user(c->s);
	struct smtp_tx *tx = smtp_session_tx(c->s);
	if (user != NULL && !sender_allowed(c->w, user, tx->mail_from)) {
		char safe[128];
		log_sanitize(safe, sizeof(safe), tx->mail_from, strlen(tx->mail_from));
		log_warn("event=sender_refused session=%s user=%s from=\"%s\"", c->id, user, safe);
		char buf[400];
		snprintf(buf, sizeof(buf), "553 5.7.1 Sender address rejected: not owned by user %s",
			 user);
		after_policy(c, buf);
		return;
	}
	after_policy(c, NULL);
}

static void stage_auth(struct client *c)
{
	const char *user, *pass;
	smtp_session_auth_creds(c->s, &user, &pass);
	struct str f = STR_INIT;
	frame_put_u64(&f, req_id(c));
	frame_put_str(&f, user);
	frame_put_str(&f, pass);
	c->req = REQ_AUTH;
	frame_send(c->w->delivery, DF_AUTH, f.s, f.len);
	explicit_bzero(f.s, f.len);
	str_free(&f);
}

static void start_eom(struct client *c);

static void h_stage(void *ctx, enum smtp_stage stage)
{
	struct client *c = ctx;
	c->stage = stage;
	switch (stage) {
	case SMTP_STAGE_AUTH:
		stage_auth(c);
		break;
	case SMTP_STAGE_MAIL:
		if (c->milter != NULL)
			milter_abort(c->milter);
		stage_mail(c);
		break;
	case SMTP_STAGE_RCPT:
		stage_rcpt(c);
		break;
	case SMTP_STAGE_EOM:
		start_eom(c);
		break;
	default:
		after_policy(c, NULL);
		break;
	}
}

/* ---- milters ---- */

static void milter_done(void *ctx, enum milter_action action, const char *reply)
{
	struct client *c = ctx;
	const char *rep = NULL;
	char buf[512];
	switch (action) {
	case MILTER_CONTINUE:
	case MILTER_QUARANTINE:
	case MILTER_DISCARD:
		break;
	case MILTER_REJECT:
		rep = reply ? reply : "550 5.7.1 Command rejected";
		break;
	case MILTER_TEMPFAIL:
		rep = reply ? reply : "451 4.7.1 Service unavailable - try again later";
		break;
	}
	if (rep != NULL) {
		snprintf(buf, sizeof(buf), "%s", rep);
		log_info("event=milter_refused session=%s stage=%d reply=\"%.60s\"", c->id,
			 (int)c->stage, buf);
		rep = buf;
	}
	if (c->stage == SMTP_STAGE_CONNECT && rep == NULL)
		smtp_session_resume(c->s, NULL);
	else
		smtp_session_resume(c->s, rep);
	client_pump(c);
}

static void milter_then(struct client *c, enum smtp_stage stage)
{
	struct smtp_tx *tx = smtp_session_tx(c->s);
	switch (stage) {
	case SMTP_STAGE_CONNECT: {
		/* as Postfix: an unknown name is "[ADDR]" in the connect
		 * step (Sendmail's form), "unknown" in {client_name} */
		char host[256]; /* a host name (253) or "[ADDR]" */
		if (c->name != NULL)
			snprintf(host, sizeof(host), "%s", c->name);
		else if (net_addr_is_ip(&c->peer))
			snprintf(host, sizeof(host), "[%s]", c->ip);
		else
			snprintf(host, sizeof(host), "unknown");
		milter_connect(c->milter, host, c->ip, net_addr_port(&c->peer),
			       c->peer.ss.ss_family == AF_INET6, milter_done, c);
		return;
	}
	case SMTP_STAGE_HELO:
		milter_helo(c->milter, smtp_session_helo(c->s), milter_done, c);
		return;
	case SMTP_STAGE_MAIL: {
		char addr[SMTP_PATH_MAX + 3];
		snprintf(addr, sizeof(addr), "<%s>", tx->mail_from);
		struct milter_macros m = { .mail_addr = tx->mail_from };
		milter_set_macros(c->milter, &m);
		const char *args[] = { addr, NULL };
		milter_envfrom(c->milter, args, milter_done, c);
		return;
	}
	case SMTP_STAGE_RCPT: {
		char addr[SMTP_PATH_MAX + 3];
		snprintf(addr, sizeof(addr), "<%s>", tx->pending.path);
		struct milter_macros m = { .rcpt_addr = tx->pending.path };
		milter_set_macros(c->milter, &m);
		const char *args[] = { addr, NULL };
		milter_envrcpt(c->milter, args, milter_done, c);
		return;
	}
	case SMTP_STAGE_DATA:
		milter_data(c->milter, milter_done, c);
		return;
	default:
		smtp_session_resume(c->s, NULL);
		client_pump(c);
		return;
	}
}

/* The worker's own checks are done: reply (refused), or on to the milters,
 * then resume the session. */
static void after_policy(struct client *c, const char *reply)
{
	if (reply != NULL || c->milter == NULL || c->stage == SMTP_STAGE_AUTH) {
		smtp_session_resume(c->s, reply);
		client_pump(c);
		return;
	}
	milter_then(c, c->stage);
}

/* ---- end of message ---- */

static bool header_says_spam(const char *msg, size_t len)
{
	/* the header section only: up to the first empty line */
	const char *end = NULL;
	for (const char *p = msg; p + 3 < msg + len; p++) {
		if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
			end = p + 2;
			break;
		}
	}
	if (end == NULL)
		end = msg + len;
	for (const char *p = msg; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
		if (n > 15 && strncasecmp(p, "X-Spam-Status:", 14) == 0) {
			const char *v = p + 14;
			while (*v == ' ' || *v == '\t')
				v++;
			if (strncasecmp(v, "Yes", 3) == 0)
				return true;
		}
		p += n + 1;
	}
	return false;
}

static void send_delivery(struct client *c);

static void eom_milter_done(void *ctx, enum milter_action action, const char *reply)
{
	struct client *c = ctx;
	if (action == MILTER_REJECT || action == MILTER_TEMPFAIL) {
		char buf[512];
		snprintf(buf, sizeof(buf), "%s",
			 reply ? reply
			       : (action == MILTER_REJECT ? "550 5.7.1 Message content rejected"
							  : "451 4.7.1 Service unavailable - try again later"));
		log_info("event=milter_refused session=%s stage=eom reply=\"%.60s\"", c->id, buf);
		str_free(&c->msg);
		if (c->service == LISTEN_LMTP) {
			size_t n = smtp_session_tx(c->s)->n_rcpts;
			const char **reps = xcalloc(n ? n : 1, sizeof(char *));
			for (size_t i = 0; i < n; i++)
				reps[i] = buf;
			smtp_session_resume_lmtp(c->s, reps, n);
			free(reps);
		} else {
			smtp_session_resume(c->s, buf);
		}
		client_pump(c);
		return;
	}
	if (action == MILTER_QUARANTINE)
		c->junk = true;
	if (action == MILTER_DISCARD)
		c->discard = true;
	send_delivery(c);
}

static void start_eom(struct client *c)
{
	struct smtp_tx *tx = smtp_session_tx(c->s);
	str_free(&c->msg);
	/* the message takes over the session's buffer */
	c->msg = tx->data;
	memset(&tx->data, 0, sizeof(tx->data));
	c->junk = false;
	c->discard = false;
	if (c->milter != NULL) {
		milter_eom(c->milter, &c->msg, eom_milter_done, c);
		return;
	}
	send_delivery(c);
}

static void free_locals(struct client *c)
{
	for (size_t i = 0; i < c->n_local; i++)
		free(c->local_addrs[i]);
	x_free(&c->local_addrs);
	x_free(&c->rcpt_map);
	c->n_local = 0;
}

static void send_delivery(struct client *c)
{
	struct worker *w = c->w;
	struct smtp_tx *tx = smtp_session_tx(c->s);
	if (c->discard) {
		log_info("event=discarded session=%s", c->id);
		str_free(&c->msg);
		if (c->service == LISTEN_LMTP) {
			const char **reps = xcalloc(tx->n_rcpts ? tx->n_rcpts : 1, sizeof(char *));
			for (size_t i = 0; i < tx->n_rcpts; i++)
				reps[i] = "250 2.0.0 Ok: discarded";
			smtp_session_resume_lmtp(c->s, reps, tx->n_rcpts);
			free(reps);
		} else {
			smtp_session_resume(c->s, "250 2.0.0 Ok: discarded");
		}
		client_pump(c);
		return;
	}
	if (header_says_spam(c->msg.s, c->msg.len))
		c->junk = true;
	/* local recipients, each account once */
	free_locals(c);
	c->rcpt_map = xcalloc(tx->n_rcpts ? tx->n_rcpts : 1, sizeof(size_t));
	c->local_addrs = xcalloc(tx->n_rcpts ? tx->n_rcpts : 1, sizeof(char *));
	struct queue_record q;
	memset(&q, 0, sizeof(q));
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		struct smtp_rcpt *r = &tx->rcpts[i];
		if (!r->local) {
			queue_record_add_rcpt(&q, r->path, r->notify, r->orcpt);
			c->rcpt_map[i] = SIZE_MAX;
			continue;
		}
		size_t j;
		for (j = 0; j < c->n_local; j++)
			if (strcmp(c->local_addrs[j], r->account) == 0)
				break;
		if (j == c->n_local)
			c->local_addrs[c->n_local++] = xstrdup(r->account);
		c->rcpt_map[i] = j;
	}
	c->has_relay = q.n_rcpts > 0;
	/* Return-Path for local copies (RFC 5321 4.4) */
	struct str data = STR_INIT;
	str_printf(&data, "Return-Path: <%s>\r\n", tx->mail_from);
	size_t rp_len = data.len;
	str_append(&data, c->msg.s, c->msg.len);
	str_free(&c->msg);
	struct str parsed = STR_INIT;
	if (c->n_local > 0)
		mime_cache_from_message(data.s, data.len, &parsed);
	struct str qrec = STR_INIT;
	if (c->has_relay) {
		q.from = xstrdup(tx->mail_from);
		q.envid = tx->envid ? xstrdup(tx->envid) : NULL;
		q.ret = (int)tx->ret;
		q.body = (int)tx->body;
		q.smtputf8 = tx->smtputf8;
		q.auth = smtp_session_auth_user(c->s) ? xstrdup(smtp_session_auth_user(c->s)) : NULL;
		q.client = xstrdup(c->ip);
		q.created = (int64_t)time(NULL);
		q.next_attempt = q.created;
		queue_record_encode(&q, &qrec);
	}
	queue_record_free(&q);
	struct str f = STR_INIT;
	frame_put_u64(&f, req_id(c));
	frame_put_u8(&f, c->service == LISTEN_LMTP ? 0 : 1);
	frame_put_u32(&f, (uint32_t)rp_len);
	frame_put_bytes(&f, data.s, data.len);
	frame_put_bytes(&f, parsed.s, parsed.len);
	frame_put_u32(&f, (uint32_t)c->n_local);
	for (size_t i = 0; i < c->n_local; i++) {
		frame_put_str(&f, c->local_addrs[i]);
		frame_put_u32(&f, c->junk ? MBOX_SPECIAL_JUNK : 0);
	}
	frame_put_bytes(&f, qrec.s, qrec.len);
	c->req = REQ_DELIVER;
	frame_send(w->delivery, DF_DELIVER, f.s, f.len);
	log_debug("event=deliver session=%s size=%zu local=%zu relay=%d", c->id, data.len,
		  c->n_local, c->has_relay);
	str_free(&f);
	str_free(&data);
	str_free(&parsed);
	str_free(&qrec);
}

static void eom_reply(struct worker *w, struct frame_reader *r)
{
	uint64_t req = frame_get_u64(r);
	uint32_t n = frame_get_u32(r);
	if (n > DFRAME_RCPTS_MAX)
		fatal("malformed frame from the delivery process");
	uint32_t *st = xcalloc(n ? n : 1, sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++)
		st[i] = frame_get_u32(r);
	uint32_t queued = frame_get_u32(r);
	uint64_t qid = frame_get_u64(r);
	if (!frame_reader_ok(r))
		fatal("malformed frame from the delivery process");
	struct client *c = client_by_req(w, req);
	if (c == NULL || c->req != REQ_DELIVER || n != c->n_local) {
		free(st);
		return;
	}
	c->req = REQ_NONE;
	struct smtp_tx *tx = smtp_session_tx(c->s);
	char buf[400];
	char ok[128];
	c->n_msgs++;
	snprintf(ok, sizeof(ok), "250 2.0.0 Ok: queued as %s.%u", c->id, c->n_msgs);
	if (c->service == LISTEN_LMTP) {
		char **reps = xcalloc(tx->n_rcpts ? tx->n_rcpts : 1, sizeof(char *));
		unsigned delivered = 0;
		for (size_t i = 0; i < tx->n_rcpts; i++) {
			size_t j = c->rcpt_map[i];
			const char *rep = rcpt_status_reply(c, st[j], buf, sizeof(buf),
							    c->local_addrs[j]);
			reps[i] = xstrdup(rep ? rep : ok);
			if (rep == NULL)
				delivered++;
		}
		log_info("event=delivered session=%s proto=lmtp rcpts=%zu delivered=%u junk=%d", c->id,
			 tx->n_rcpts, delivered, c->junk);
		smtp_session_resume_lmtp(c->s, (const char *const *)reps, tx->n_rcpts);
		for (size_t i = 0; i < tx->n_rcpts; i++)
			free(reps[i]);
		free(reps);
	} else {
		const char *rep = NULL;
		for (uint32_t j = 0; j < n && rep == NULL; j++)
			rep = rcpt_status_reply(c, st[j], buf, sizeof(buf), c->local_addrs[j]);
		if (rep == NULL && c->has_relay && queued != DQ_QUEUED)
			rep = "451 4.3.0 Temporary local problem, try again later";
		if (rep == NULL)
			log_info("event=delivered session=%s local=%zu queued=%" PRIu64 " junk=%d",
				 c->id, c->n_local, c->has_relay ? qid : 0, c->junk);
		else
			log_info("event=refused_at_eom session=%s reply=\"%.60s\"", c->id, rep);
		smtp_session_resume(c->s, rep ? rep : ok);
	}
	free(st);
	free_locals(c);
	if (c->milter != NULL)
		milter_abort(c->milter);
	client_pump(c);
}

/* ---- session hooks ---- */

static void h_write(void *ctx, const void *data, size_t len)
{
	struct client *c = ctx;
	conn_write(c->conn, data, len);
}

static void h_starttls(void *ctx)
{
	/* The STARTTLS line is still in the input buffer: start TLS after
	 * it is consumed, so only what followed it is discarded. */
	((struct client *)ctx)->starttls_pending = true;
}

static void start_tls(struct client *c)
{
	c->starttls_pending = false;
	struct tls_ctx *t = c->service == LISTEN_SMTP ? c->w->tls_mx : c->w->tls_sub;
	size_t discarded = 0;
	const char *err;
	if (t == NULL || conn_starttls(c->conn, t, &discarded, &err) < 0) {
		c->closing = true;
		return;
	}
	if (discarded > 0)
		log_warn("event=starttls_injection session=%s ip=%s discarded=%zu", c->id, c->ip,
			 discarded);
}

static void h_close(void *ctx)
{
	((struct client *)ctx)->closing = true;
}

static void h_log(void *ctx, const char *line)
{
	struct client *c = ctx;
	log_info("%s session=%s ip=%s", line, c->id, c->ip);
}

static const struct smtp_session_hooks session_hooks = {
	.write = h_write, .stage = h_stage, .starttls = h_starttls, .close = h_close, .log = h_log,
};

/* ---- the client's name (reverse DNS) ----
 *
 * As Postfix: the PTR names of the client's address, each (at most
 * RDNS_MAX_NAMES) looked up for addresses of the client's family; the first
 * name, in answer order, one of whose addresses is the client's is its
 * verified name. Anything else (no PTR, a malformed name, no matching
 * address, a DNS failure, no answer within smtpd.reverse_dns_timeout) is
 * "unknown". The greeting waits for it. */

#define RDNS_MAX_NAMES 5

struct rdns_fwd {
	struct rdns *r;
	int id;             /* the pending forward query, or 0 */
	bool done, matched, failed;
	char name[256];
};

struct rdns {
	struct client *c;
	int ptr_id;         /* the pending PTR query, or 0 */
	struct timeout *timer;
	struct rdns_fwd fwd[RDNS_MAX_NAMES];
	size_t n;
	char ptr[256];      /* the first PTR name (for the log) */
};

static void rdns_free(struct rdns **rp)
{
	struct rdns *r = *rp;
	if (r == NULL)
		return;
	struct dnsr *dns = r->c->w->dns;
	if (r->ptr_id > 0)
		dnsr_cancel(dns, r->ptr_id);
	for (size_t i = 0; i < r->n; i++)
		if (r->fwd[i].id > 0)
			dnsr_cancel(dns, r->fwd[i].id);
	timeout_remove(&r->timer);
	free(r);
	*rp = NULL;
}

static void client_set_name(struct client *c, const char *name)
{
	free(c->name);
	c->name = xstrdup(name);
	smtp_session_set_client_name(c->s, name);
	if (c->milter != NULL) {
		struct milter_macros m = { .client_name = name };
		milter_set_macros(c->milter, &m);
	}
}

/* The look-up is over: name verified, or NULL with why not. */
static void rdns_finish(struct rdns *r, const char *name, const char *reason)
{
	struct client *c = r->c;
	if (name != NULL) {
		client_set_name(c, name);
		log_info("event=client_name session=%s ip=%s name=%s verified=yes", c->id, c->ip,
			 name);
	} else if (r->ptr[0] != '\0') {
		char safe[300];
		log_sanitize(safe, sizeof(safe), r->ptr, strlen(r->ptr));
		log_info("event=client_name session=%s ip=%s name=unknown verified=no ptr=\"%s\" "
			 "reason=%s", c->id, c->ip, safe, reason);
	} else {
		log_info("event=client_name session=%s ip=%s name=unknown verified=no reason=%s",
			 c->id, c->ip, reason);
	}
	c->rdns = NULL;
	rdns_free(&r);
	if (!c->closing && !c->tls_pending_greeting)
		smtp_session_start(c->s);
	client_pump(c);
}

/* Decides once every name before the first confirmed one is answered. */
static void rdns_check(struct rdns *r)
{
	bool failed = false;
	for (size_t i = 0; i < r->n; i++) {
		if (r->fwd[i].matched) {
			rdns_finish(r, r->fwd[i].name, NULL);
			return;
		}
		if (!r->fwd[i].done)
			return;
		failed |= r->fwd[i].failed;
	}
	rdns_finish(r, NULL, r->n == 0 ? "malformed_name" : failed ? "forward_tempfail"
								   : "forward_mismatch");
}

static void rdns_timeout(void *ctx)
{
	struct rdns *r = ctx;
	for (size_t i = 0; i < r->n; i++) {
		if (r->fwd[i].matched) {
			rdns_finish(r, r->fwd[i].name, NULL);
			return;
		}
	}
	rdns_finish(r, NULL, "timeout");
}

static void rdns_fwd_cb(void *ctx, enum dnsr_status st, const struct net_addr *addrs, size_t n,
			bool secure, const char *error)
{
	struct rdns_fwd *f = ctx;
	(void)secure;
	(void)error;
	f->id = 0;
	f->done = true;
	f->failed = st == DNSR_TEMPFAIL;
	for (size_t i = 0; i < n && !f->matched; i++)
		f->matched = dnsr_addr_equal(&addrs[i], &f->r->c->peer);
	rdns_check(f->r);
}

/* The address family of the client's address (a mapped IPv4 one: AF_INET). */
static int peer_family(const struct net_addr *a)
{
	if (a->ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr))
		return AF_INET;
	return a->ss.ss_family;
}

static void rdns_ptr_cb(void *ctx, enum dnsr_status st, const char *const *names, size_t n,
			const char *error)
{
	struct rdns *r = ctx;
	struct client *c = r->c;
	(void)error;
	r->ptr_id = 0;
	if (st != DNSR_OK) {
		rdns_finish(r, NULL, st == DNSR_TEMPFAIL ? "ptr_tempfail" : "no_ptr");
		return;
	}
	snprintf(r->ptr, sizeof(r->ptr), "%s", names[0]);
	int family = peer_family(&c->peer);
	for (size_t i = 0; i < n && r->n < RDNS_MAX_NAMES; i++) {
		if (!dnsr_hostname_valid(names[i]))
			continue;
		struct rdns_fwd *f = &r->fwd[r->n++];
		f->r = r;
		snprintf(f->name, sizeof(f->name), "%s", names[i]);
		const char *why;
		int id = dnsr_lookup_addr_family(c->w->dns, f->name, family, rdns_fwd_cb, f, &why);
		if (id < 0) {
			f->done = true;
			f->failed = true;
		} else {
			f->id = id;
		}
	}
	rdns_check(r);
}

static bool is_loopback(const struct net_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ((const uint8_t *)&((const struct sockaddr_in *)&a->ss)->sin_addr)[0] == 127;
	if (a->ss.ss_family != AF_INET6)
		return false;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

/* For a TCP client: names it at once, or starts the look-up the greeting
 * waits for (c->rdns). */
static void rdns_start(struct client *c)
{
	struct worker *w = c->w;
	if (!w->cfg.reverse_dns)
		return;
	if (*w->dns_server == '\0' && is_loopback(&c->peer)) {
		client_set_name(c, "localhost");
		return;
	}
	if (w->dns == NULL)
		return;
	struct rdns *r = xcalloc(1, sizeof(*r));
	r->c = c;
	const char *why;
	int id = dnsr_lookup_ptr(w->dns, &c->peer, rdns_ptr_cb, r, &why);
	if (id < 0) {
		log_warn("event=client_name_failed session=%s ip=%s error=\"%s\"", c->id, c->ip,
			 why);
		free(r);
		return;
	}
	r->ptr_id = id;
	r->timer = timeout_add(w->loop, w->cfg.reverse_dns_timeout_ms, rdns_timeout, r);
	c->rdns = r;
}

static void dns_io(void *ctx, unsigned revents)
{
	struct worker *w = ctx;
	(void)revents;
	dnsr_process(w->dns);
}

/* The resolver, made when smtpd.reverse_dns is on (at start or by a reload).
 * 0, or -1 with *error_r. */
static int worker_dns_open(struct worker *w, char **error_r)
{
	if (w->dns != NULL || !w->cfg.reverse_dns)
		return 0;
	if (dnsr_new(w->dns_server, "", &w->dns, error_r) < 0)
		return -1;
	w->dns_io = io_add(w->loop, dnsr_fd(w->dns), IO_READ, dns_io, w);
	return 0;
}

/* ---- connections ---- */

static void maybe_finish(struct client *c)
{
	if (c->closing && conn_output_size(c->conn) == 0 && c->req == REQ_NONE)
		client_free(c);
}

static void client_pump(struct client *c)
{
	if (c->in_input)
		return; /* a stage answered at once: the outer call goes on */
	if (c->w->stopping && !c->closing && c->req == REQ_NONE) {
		/* shutting down: the delivery this session waited for is done */
		conn_printf(c->conn, "421 4.3.2 %s Service shutting down\r\n", c->w->cfg.hostname);
		smtp_session_disconnected(c->s);
		c->closing = true;
		conn_input_pause(c->conn, true);
		conn_set_timeout(c->conn, 2000);
		return;
	}
	if (c->closing || smtp_session_closed(c->s)) {
		c->closing = true;
		if (conn_output_size(c->conn) == 0)
			client_free(c);
		return;
	}
	/* Before the greeting, input waits (unpaused: a client that leaves
	 * is seen and its look-up cancelled). */
	if (c->rdns != NULL)
		return;
	const void *data;
	size_t len;
	conn_input(c->conn, &data, &len);
	/* A client that sends commands without reading the replies is not
	 * read from until they are written (CONN_EV_DRAINED pumps again). */
	bool backlog = conn_output_size(c->conn) > OUTPUT_HIGH_WATER;
	if (len > 0 && !smtp_session_waiting(c->s) && !backlog) {
		c->in_input = true;
		size_t used = smtp_session_input(c->s, data, len);
		c->in_input = false;
		conn_consume(c->conn, used);
	}
	if (c->starttls_pending)
		start_tls(c);
	if (c->closing || smtp_session_closed(c->s)) {
		c->closing = true;
		conn_input_pause(c->conn, true);
		return;
	}
	conn_input_pause(c->conn, smtp_session_waiting(c->s) ||
					  conn_output_size(c->conn) > OUTPUT_HIGH_WATER);
	unsigned t = smtp_session_in_data(c->s) ? c->w->cfg.data_timeout_ms
						  : c->w->cfg.command_timeout_ms;
	if (t != c->timeout_ms) {
		c->timeout_ms = t;
		conn_set_timeout(c->conn, t);
	}
}

static void conn_event(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct client *c = ctx;
	(void)conn;
	switch (ev) {
	case CONN_EV_DATA_IN:
		client_pump(c);
		break;
	case CONN_EV_DRAINED:
		if (c->closing)
			maybe_finish(c);
		else
			client_pump(c);
		break;
	case CONN_EV_TLS_READY:
		smtp_session_tls_started(c->s, conn_tls_version(c->conn), conn_tls_cipher(c->conn));
		if (c->milter != NULL) {
			struct milter_macros m = { .tls_version = conn_tls_version(c->conn),
						   .cipher = conn_tls_cipher(c->conn) };
			milter_set_macros(c->milter, &m);
		}
		if (c->tls_pending_greeting) {
			c->tls_pending_greeting = false;
			if (c->rdns == NULL)
				smtp_session_start(c->s);
		}
		client_pump(c);
		break;
	case CONN_EV_TIMEOUT:
		if (c->closing) {
			client_free(c);
			break;
		}
		log_info("event=timeout session=%s ip=%s", c->id, c->ip);
		smtp_session_timeout(c->s);
		c->closing = true;
		break;
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
		if (ev == CONN_EV_ERROR && !c->closing)
			log_info("event=connection_error session=%s ip=%s error=\"%s\"", c->id, c->ip,
				 conn_error(c->conn));
		smtp_session_disconnected(c->s);
		c->closing = true;
		if (c->req == REQ_NONE)
			client_free(c);
		else
			conn_input_pause(c->conn, true); /* freed when the answer comes */
		break;
	}
}

static uint32_t alloc_slot(struct worker *w)
{
	if (w->n_free > 0)
		return w->free_slots[--w->n_free];
	size_t n = w->n_slots ? w->n_slots * 2 : 256;
	w->slots = xreallocarray(w->slots, n, sizeof(*w->slots));
	w->gens = xreallocarray(w->gens, n, sizeof(*w->gens));
	w->free_slots = xreallocarray(w->free_slots, n, sizeof(*w->free_slots));
	for (size_t i = w->n_slots; i < n; i++) {
		w->slots[i] = NULL;
		w->gens[i] = 1;
	}
	for (size_t i = n; i > w->n_slots + 1; i--)
		w->free_slots[w->n_free++] = (uint32_t)(i - 1);
	uint32_t s = (uint32_t)w->n_slots;
	w->n_slots = n;
	return s;
}

static void client_free(struct client *c)
{
	struct worker *w = c->w;
	if (c->s != NULL)
		log_info("event=disconnect session=%s ip=%s messages=%u", c->id, c->ip,
			 smtp_session_messages(c->s));
	/* the counters first: once the client sees the close, it may connect
	 * again (possibly to another worker) and must find its slot free */
	if (c->counted_ip)
		iplimits_session_end(w->limits, c->iphash);
	if (c->counted_total)
		iplimits_total_end(w->limits);
	rdns_free(&c->rdns);
	free(c->name);
	smtp_session_free(&c->s);
	milter_session_free(&c->milter);
	conn_free(&c->conn);
	timeout_remove(&c->delay);
	str_free(&c->msg);
	free_locals(c);
	w->slots[c->slot] = NULL;
	w->gens[c->slot]++;
	w->free_slots[w->n_free++] = c->slot;
	w->n_clients--;
	free(c);
	if (w->stopping && w->n_clients == 0)
		ioloop_stop(w->loop);
}

static const char *service_name(unsigned s)
{
	static const char *const names[] = { "smtp", "submission", "smtps", "lmtp" };
	return s < 4 ? names[s] : "?";
}

static void new_client(struct worker *w, int fd, const struct net_addr *peer, unsigned service)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->w = w;
	c->slot = alloc_slot(w);
	w->slots[c->slot] = c;
	w->n_clients++;
	c->service = service;
	c->peer = *peer;
	net_addr_str(peer, c->ip, sizeof(c->ip));
	snprintf(c->id, sizeof(c->id), "%08" PRIx64 "%02x%06" PRIx64, (uint64_t)time(NULL) & 0xffffffff,
		 w->id & 0xff, ++w->counter & 0xffffff);
	c->conn = conn_new(w->loop, fd, conn_event, c);
	c->iphash = net_addr_hash(peer, true);
	bool is_unix = !net_addr_is_ip(peer);
	c->trusted = is_unix || net_list_match(w->cfg.trusted, peer);
	if (!iplimits_total_begin(w->limits, w->max_connections)) {
		log_warn("event=refused reason=max_connections ip=%s", c->ip);
		conn_printf(c->conn, "421 4.7.0 %s Error: too many connections\r\n", w->cfg.hostname);
		c->closing = true;
		return;
	}
	c->counted_total = true;
	if (!is_unix) {
		if (!iplimits_session_begin(w->limits, c->iphash, w->cfg.max_per_ip)) {
			log_warn("event=refused reason=max_sessions_per_ip ip=%s", c->ip);
			conn_printf(c->conn,
				    "421 4.7.0 %s Error: too many connections from your address\r\n",
				    w->cfg.hostname);
			c->closing = true;
			return;
		}
		c->counted_ip = true;
	}
	struct smtp_session_config sc = {
		.service = service == LISTEN_SMTP	  ? SMTP_SERVICE_MX
			   : service == LISTEN_SUBMISSION ? SMTP_SERVICE_SUBMISSION
			   : service == LISTEN_SMTPS	  ? SMTP_SERVICE_SMTPS
							  : SMTP_SERVICE_LMTP,
		.hostname = w->cfg.hostname,
		.max_message_size = w->cfg.max_message_size,
		.max_recipients = w->cfg.max_recipients,
		.max_errors = w->cfg.max_errors,
		.starttls_available = (service == LISTEN_SMTP ? w->tls_mx : w->tls_sub) != NULL,
		.tls_active = service == LISTEN_SMTPS,
		.client_addr = is_unix ? "127.0.0.1" : c->ip,
		.session_id = c->id,
	};
	c->s = smtp_session_new(&sc, &session_hooks, c);
	log_info("event=connect session=%s ip=%s port=%u service=%s", c->id, c->ip,
		 net_addr_port(peer), service_name(service));
	if (w->cfg.milters.n_specs > 0) {
		c->milter = milter_session_new(w->loop, &w->cfg.milters);
		char port[8];
		snprintf(port, sizeof(port), "%u", net_addr_port(peer));
		struct milter_macros m = {
			.j = w->cfg.hostname, .i = c->id, .client_addr = c->ip,
			.client_name = "unknown", .client_port = port,
			.daemon_name = service_name(service),
		};
		milter_set_macros(c->milter, &m);
	}
	c->timeout_ms = w->cfg.command_timeout_ms;
	conn_set_timeout(c->conn, c->timeout_ms);
	if (!is_unix)
		rdns_start(c);
	if (service == LISTEN_SMTPS) {
		/* the handshake and the look-up go on together */
		const char *err;
		c->tls_pending_greeting = true;
		if (w->tls_sub == NULL || conn_starttls(c->conn, w->tls_sub, NULL, &err) < 0)
			c->closing = true;
		return;
	}
	if (c->rdns == NULL)
		smtp_session_start(c->s);
	client_pump(c);
}

static void accept_resume(void *ctx);

static void on_accept(void *ctx, unsigned revents)
{
	struct listen_fd *l = ctx;
	struct worker *w = the_worker;
	(void)revents;
	for (int i = 0; i < 64 && !w->stopping; i++) {
		int fd;
		struct net_addr peer;
		const char *err;
		int r = listen_accept(l->fd, &fd, &peer, &err);
		if (r == 0)
			return;
		if (r < 0) {
			log_err("event=accept_failed listener=%s error=\"%s\"", l->name, err);
			/* out of descriptors: stop accepting for a moment */
			for (size_t k = 0; k < w->n_listeners; k++)
				if (w->lios[k] != NULL)
					io_set_events(w->lios[k], 0);
			if (w->accept_pause == NULL)
				w->accept_pause = timeout_add(w->loop, 500, accept_resume, w);
			else
				timeout_reset(w->accept_pause, 500);
			return;
		}
		new_client(w, fd, &peer, l->tag);
	}
}

static void accept_resume(void *ctx)
{
	struct worker *w = ctx;
	for (size_t k = 0; k < w->n_listeners; k++)
		if (w->lios[k] != NULL)
			io_set_events(w->lios[k], IO_READ | IO_EXCLUSIVE);
}

/* ---- signals and reload ---- */

static void stop_listening(struct worker *w)
{
	for (size_t i = 0; i < w->n_listeners; i++) {
		io_remove(&w->lios[i]);
		if (w->listeners[i].fd >= 0)
			close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
}

static void on_term(void *ctx, int signo)
{
	struct worker *w = ctx;
	(void)signo;
	if (w->stopping)
		return;
	w->stopping = true;
	stop_listening(w);
	/* Sessions in the middle of a delivery finish it; the others get 421. */
	for (size_t i = 0; i < w->n_slots; i++) {
		struct client *c = w->slots[i];
		if (c == NULL || c->closing)
			continue;
		if (c->req != REQ_NONE)
			continue;
		conn_printf(c->conn, "421 4.3.2 %s Service shutting down\r\n", w->cfg.hostname);
		smtp_session_disconnected(c->s);
		c->closing = true;
		conn_input_pause(c->conn, true);
		conn_set_timeout(c->conn, 2000);
	}
	if (w->n_clients == 0)
		ioloop_stop(w->loop);
}

static void parent_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct worker *w = ctx;
	struct reload rl;
	char *error = NULL;
	if (type != DF_RELOAD || reload_parse(data, len, &rl, &error) < 0)
		fatal("malformed frame from the parent");
	struct settings *set = rl.set;
	const char *cert = rl.cert, *key = rl.key;
	size_t clen = rl.cert_len, klen = rl.key_len;
	struct wconfig cfg;
	if (set == NULL || wconfig_load(&cfg, set, &error) < 0) {
		log_err("event=reload_failed worker=%u error=\"%s\"", w->id, error ? error : "?");
		free(error);
		settings_free(&set);
		return;
	}
	if (clen > 0) {
		const char *v = settings_str(set, S_TLS_MIN_VERSION);
		const char *v25 = settings_str(set, S_SMTPD_SMTP_TLS_MIN_VERSION);
		if (*v25 == '\0')
			v25 = v;
		if ((w->tls_sub != NULL &&
		     tls_ctx_reload_mem(w->tls_sub, cert, clen, key, klen, v, &error) < 0) ||
		    (w->tls_mx != NULL &&
		     tls_ctx_reload_mem(w->tls_mx, cert, clen, key, klen, v25, &error) < 0)) {
			log_err("event=reload_failed worker=%u error=\"%s\"", w->id, error);
			free(error);
		}
	}
	wconfig_free(&w->cfg);
	w->cfg = cfg;
	settings_free(&w->set);
	w->set = set;
	if (worker_dns_open(w, &error) < 0) {
		log_err("event=reload_failed worker=%u error=\"%s\"", w->id, error);
		free(error);
		w->cfg.reverse_dns = false;
	}
	log_info("event=reloaded process=worker worker=%u", w->id);
}

static void parent_gone(void *ctx, const char *error)
{
	struct worker *w = ctx;
	(void)error;
	frame_chan_free(&w->parent);
	on_term(w, SIGTERM);
}

int worker_main(const struct worker_args *a)
{
	struct worker w;
	memset(&w, 0, sizeof(w));
	the_worker = &w;
	w.loop = ioloop_create();
	w.id = a->id;
	char *text = settings_to_text(a->set);
	char *error = NULL;
	w.set = settings_from_text(text, &error);
	free(text);
	if (w.set == NULL || wconfig_load(&w.cfg, w.set, &error) < 0)
		fatal("configuration: %s", error);
	/* global.dns_server changes at restart only (as for outbound delivery) */
	w.dns_server = xstrdup(settings_str(w.set, S_GLOBAL_DNS_SERVER));
	if (worker_dns_open(&w, &error) < 0)
		fatal("%s", error);
	w.tls_mx = a->tls_mx;
	w.tls_sub = a->tls_sub;
	w.limits = a->limits;
	w.max_connections = a->max_connections;
	w.listeners = a->listeners;
	w.n_listeners = a->n_listeners;
	w.lios = xcalloc(w.n_listeners ? w.n_listeners : 1, sizeof(*w.lios));
	for (size_t i = 0; i < w.n_listeners; i++) {
		struct listen_fd *l = &w.listeners[i];
		if (l->copy != LISTEN_SHARED && l->copy != w.id) {
			/* another worker's copy of a SO_REUSEPORT listener */
			close(l->fd);
			l->fd = -1;
			continue;
		}
		w.lios[i] = io_add(w.loop, l->fd, IO_READ | IO_EXCLUSIVE, on_accept, l);
	}
	w.delivery = frame_chan_new(w.loop, a->delivery_fd, DFRAME_SMALL_MAX, delivery_frame,
				    delivery_gone, &w);
	if (a->parent_fd >= 0)
		w.parent = frame_chan_new(w.loop, a->parent_fd, RELOAD_FRAME_MAX, parent_frame,
					  parent_gone, &w);
	const char *why;
	ioloop_signal_add(w.loop, SIGTERM, on_term, &w, &why);
	ioloop_signal_add(w.loop, SIGINT, on_term, &w, &why);
	log_info("event=started process=worker worker=%u", w.id);
	ioloop_run(w.loop);
	/* let the delivery process see our last frames */
	frame_chan_flush_blocking(w.delivery);
	w.stopping = true;
	frame_chan_free(&w.delivery);
	frame_chan_free(&w.parent);
	stop_listening(&w);
	timeout_remove(&w.accept_pause);
	io_remove(&w.dns_io);
	dnsr_free(&w.dns);
	free(w.dns_server);
	free(w.lios);
	free(w.slots);
	free(w.gens);
	free(w.free_slots);
	wconfig_free(&w.cfg);
	settings_free(&w.set);
	ioloop_destroy(&w.loop);
	log_info("event=stopped process=worker worker=%u", a->id);
	return 0;
}
