/* libmilter callbacks (thin glue: all decisions are in scan.c).
 *
 * libmilter calls the callbacks of one connection from one thread at a
 * time, and of different connections concurrently; everything per
 * connection lives in its private data, and the scanner is thread-safe.
 *
 * Signals: libmilter's own signal thread stops the milter on SIGHUP, which
 * the contract wants as "reload". So the main thread waits for SIGHUP,
 * SIGTERM and SIGINT itself (Linux delivers a process-directed signal to
 * the thread group leader first when it is waiting for it) while
 * smfi_main() runs in a second thread. */
#include "config.h"

#include "log.h"
#include "milter.h"
#include "str.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RCPTS 10000
#define MAX_ADDR 512

static struct scanner *scanner;
static size_t max_scan_size;

struct conn {
	char ip[INET6_ADDRSTRLEN];
	char *helo;
	/* the current transaction */
	char *mail_from;
	char *auth;
	char **rcpts;
	size_t nrcpt;
	struct str msg;
	bool truncated;
	bool out_of_memory;
	unsigned int old_status, old_score; /* X-Spam-* already present */
	unsigned long serial;
	/* The SMFIP_NR_* steps the MTA agreed to send without waiting for
	 * our reply (fewer round trips: most steps only continue). */
	unsigned long no_reply;
};

static unsigned long next_serial;
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;

static void tx_reset(struct conn *c)
{
	x_free(&c->mail_from);
	x_free(&c->auth);
	for (size_t i = 0; i < c->nrcpt; i++)
		free(c->rcpts[i]);
	x_free(&c->rcpts);
	c->nrcpt = 0;
	str_free(&c->msg);
	c->truncated = false;
	c->out_of_memory = false;
	c->old_status = c->old_score = 0;
}

static struct conn *get_conn(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

/* "Go on" for a step: no reply at all when that was negotiated. */
static sfsistat go_on(const struct conn *c, unsigned long nr_flag)
{
	return (c->no_reply & nr_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

#define NO_REPLY_STEPS                                                                             \
	(SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR |            \
	 SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_DATA | SMFIP_NR_UNKN)

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	struct conn *c = xcalloc(1, sizeof(*c));
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS);
	/* Only what the MTA offers: no replies where we always go on, and
	 * neither unknown commands nor DATA (we act at end of message). */
	c->no_reply = f1 & NO_REPLY_STEPS;
	*pf1 = c->no_reply | (f1 & (SMFIP_NOUNKNOWN | SMFIP_NODATA));
	*pf2 = 0;
	*pf3 = 0;
	smfi_setpriv(ctx, c);
	return SMFIS_CONTINUE;
}

/* "<user@example.org>" -> "user@example.org", bounded, lower-cased domain
 * left as sent (SPF and look-ups fold case themselves). */
static char *strip_brackets(const char *arg)
{
	size_t n = strnlen(arg, MAX_ADDR);
	while (n > 0 && (arg[0] == '<' || arg[0] == ' ')) {
		arg++;
		n--;
	}
	while (n > 0 && (arg[n - 1] == '>' || arg[n - 1] == ' '))
		n--;
	char *s = xstrndup(arg, n);
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	return s;
}

static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	(void)hostname;
	struct conn *c = get_conn(ctx);
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		smfi_setpriv(ctx, c);
	}
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, c->ip, sizeof(c->ip));
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, c->ip, sizeof(c->ip));
		if (strncmp(c->ip, "::ffff:", 7) == 0 && strchr(c->ip + 7, ':') == NULL)
			memmove(c->ip, c->ip + 7, strlen(c->ip + 7) + 1);
	}
	pthread_mutex_lock(&serial_lock);
	c->serial = ++next_serial;
	pthread_mutex_unlock(&serial_lock);
	return go_on(c, SMFIP_NR_CONN);
}

static sfsistat cb_helo(SMFICTX *ctx, char *helo)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	free(c->helo);
	c->helo = strip_brackets(helo);
	return go_on(c, SMFIP_NR_HELO);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	tx_reset(c);
	c->mail_from = strip_brackets(argv[0] ? argv[0] : "");
	const char *auth = smfi_getsymval(ctx, "{auth_authen}");
	if (auth != NULL && *auth != '\0')
		c->auth = strip_brackets(auth);
	return go_on(c, SMFIP_NR_MAIL);
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (c->nrcpt < MAX_RCPTS && argv[0] != NULL) {
		c->rcpts = xreallocarray(c->rcpts, c->nrcpt + 1, sizeof(*c->rcpts));
		c->rcpts[c->nrcpt++] = strip_brackets(argv[0]);
	}
	return go_on(c, SMFIP_NR_RCPT);
}

static void msg_append(struct conn *c, const void *data, size_t len)
{
	if (c->msg.len >= max_scan_size) {
		c->truncated = true;
		return;
	}
	if (len > max_scan_size - c->msg.len) {
		len = max_scan_size - c->msg.len;
		c->truncated = true;
	}
	/* The message buffer is the one big allocation: grow it without
	 * xrealloc, so that a shortage becomes a TEMPFAIL at end of message
	 * rather than the end of the daemon (STYLE 2). */
	if (c->out_of_memory)
		return;
	if (c->msg.cap - c->msg.len <= len) {
		size_t cap = c->msg.cap ? c->msg.cap : 16384;
		while (cap - c->msg.len <= len)
			cap *= 2;
		char *p = realloc(c->msg.s, cap);
		if (p == NULL) {
			c->out_of_memory = true;
			return;
		}
		c->msg.s = p;
		c->msg.cap = cap;
	}
	str_append(&c->msg, data, len);
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (strcasecmp(name, "X-Spam-Status") == 0)
		c->old_status++;
	else if (strcasecmp(name, "X-Spam-Score") == 0)
		c->old_score++;
	msg_append(c, name, strlen(name));
	msg_append(c, ":", 1);
	if (value[0] != ' ' && value[0] != '\t')
		msg_append(c, " ", 1);
	msg_append(c, value, strlen(value));
	msg_append(c, "\r\n", 2);
	return go_on(c, SMFIP_NR_HDR);
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	msg_append(c, "\r\n", 2);
	return go_on(c, SMFIP_NR_EOH);
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	msg_append(c, chunk, len);
	return go_on(c, SMFIP_NR_BODY);
}

/* Reply text for smfi_setreply: no CR/LF, no '%' (libmilter formats it). */
static void set_reply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	char buf[400];
	size_t n = 0;
	for (const char *p = text; *p && n + 1 < sizeof(buf); p++)
		buf[n++] = (*p == '%' || (unsigned char)*p < 0x20) ? ' ' : *p;
	buf[n] = '\0';
	smfi_setreply(ctx, (char *)rcode, (char *)xcode, buf);
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	struct conn *c = get_conn(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	struct scan_envelope env = {
	    .client_ip = c->ip[0] ? c->ip : NULL,
	    .helo = c->helo,
	    .mail_from = c->mail_from,
	    .auth_user = c->auth,
	    .rcpts = (const char *const *)c->rcpts,
	    .rcpt_count = c->nrcpt,
	};
	struct scan_result res;
	scan_result_init(&res);
	char *error = NULL;
	const char *qid = smfi_getsymval(ctx, "i");
	char qbuf[64], frombuf[128];
	log_sanitize(qbuf, sizeof(qbuf), qid ? qid : "-", qid ? strlen(qid) : 1);
	log_sanitize(frombuf, sizeof(frombuf), c->mail_from ? c->mail_from : "",
	             c->mail_from ? strlen(c->mail_from) : 0);
	if (c->out_of_memory) {
		log_err("conn=%lu qid=%s event=out-of-memory size=%zu", c->serial, qbuf,
		        c->msg.len);
		scan_result_free(&res);
		tx_reset(c);
		set_reply(ctx, "451", "4.3.0", "Temporary failure of the spam filter");
		return SMFIS_TEMPFAIL;
	}
	if (scan_message(scanner, &env, c->msg.s ? c->msg.s : "", c->msg.len, &res, &error) < 0) {
		log_err("conn=%lu qid=%s event=scan-error error=\"%s\"", c->serial, qbuf, error);
		free(error);
		scan_result_free(&res);
		tx_reset(c);
		set_reply(ctx, "451", "4.3.0", "Temporary failure of the spam filter");
		return SMFIS_TEMPFAIL;
	}
	sfsistat ret = SMFIS_CONTINUE;
	const char *action = "accept";
	if (res.action == SCAN_REJECT) {
		set_reply(ctx, "550", "5.7.1", res.reply.s);
		ret = SMFIS_REJECT;
		action = "reject";
	} else if (res.action == SCAN_TEMPFAIL) {
		set_reply(ctx, "451", "4.7.1", res.reply.s);
		ret = SMFIS_TEMPFAIL;
		action = "tempfail";
	} else {
		/* Headers claiming a verdict that did not come from us go. */
		for (unsigned int i = c->old_status; i > 0; i--)
			smfi_chgheader(ctx, "X-Spam-Status", (int)i, NULL);
		for (unsigned int i = c->old_score; i > 0; i--)
			smfi_chgheader(ctx, "X-Spam-Score", (int)i, NULL);
		if (res.received_spf.len > 0)
			smfi_insheader(ctx, 0, "Received-SPF", res.received_spf.s);
		char score[32];
		snprintf(score, sizeof(score), "%.1f", res.score);
		struct str status = STR_INIT;
		scan_result_status(&res, &status);
		smfi_addheader(ctx, "X-Spam-Score", score);
		smfi_addheader(ctx, "X-Spam-Status", status.s);
		str_free(&status);
	}
	log_info("conn=%lu qid=%s client=%s from=<%s> auth=%s rcpts=%zu size=%zu%s score=%.1f "
	         "spam=%s tests=%s action=%s",
	         c->serial, qbuf, c->ip[0] ? c->ip : "local", frombuf, c->auth ? "yes" : "no",
	         c->nrcpt, c->msg.len, c->truncated ? "+" : "", res.score, res.spam ? "yes" : "no",
	         res.tests.len ? res.tests.s : "none", action);
	scan_result_free(&res);
	tx_reset(c);
	return ret;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct conn *c = get_conn(ctx);
	if (c != NULL)
		tx_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	struct conn *c = get_conn(ctx);
	if (c != NULL) {
		tx_reset(c);
		free(c->helo);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "congvu-milter-spam",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .xxfi_connect = cb_connect,
    .xxfi_helo = cb_helo,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = cb_eoh,
    .xxfi_body = cb_body,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_negotiate = cb_negotiate,
};

int milter_check_spec(const char *spec, const char **error_r)
{
	if (strncmp(spec, "unix:/", 6) == 0 || strncmp(spec, "local:/", 7) == 0) {
		const char *path = strchr(spec, ':') + 1;
		if (strlen(path) >= 108) {
			*error_r = "unix socket path too long";
			return -1;
		}
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
		const char *p = strchr(spec, ':') + 1;
		char *end;
		long port = strtol(p, &end, 10);
		if (end == p || port < 1 || port > 65535 || (*end != '\0' && *end != '@')) {
			*error_r = "expected inet:PORT@HOST";
			return -1;
		}
		return 0;
	}
	*error_r = "expected unix:/PATH, inet:PORT@HOST or inet6:PORT@HOST";
	return -1;
}

struct runner {
	int status;
};

static void *run_main(void *arg)
{
	struct runner *r = arg;
	r->status = smfi_main() == MI_SUCCESS ? 0 : 1;
	/* Wake the main thread if libmilter stopped on its own. */
	kill(getpid(), SIGTERM);
	return NULL;
}

static void make_socket_dir(const char *spec)
{
	if (strncmp(spec, "unix:", 5) != 0 && strncmp(spec, "local:", 6) != 0)
		return;
	char *path = xstrdup(strchr(spec, ':') + 1);
	char *slash = strrchr(path, '/');
	if (slash != NULL && slash != path) {
		*slash = '\0';
		for (char *p = path + 1; *p; p++) {
			if (*p == '/') {
				*p = '\0';
				(void)mkdir(path, 0755);
				*p = '/';
			}
		}
		(void)mkdir(path, 0755);
	}
	free(path);
}

int milter_run(struct scanner *sc, const char *spec, unsigned int timeout_secs, size_t max_scan,
               milter_reload_fn *reload)
{
	scanner = sc;
	max_scan_size = max_scan;
	make_socket_dir(spec);
	if (smfi_setconn((char *)spec) != MI_SUCCESS)
		fatal("milter-spam.listen = '%s': libmilter refused the connection spec", spec);
	smfi_settimeout((int)timeout_secs);
	if (smfi_register(desc) != MI_SUCCESS)
		fatal("smfi_register failed");
	/* The MTA (postfix, another user) must reach a unix socket: group
	 * access, as the directory's permissions decide the rest. */
	mode_t old = umask(0007);
	int rc = smfi_opensocket(true);
	umask(old);
	if (rc != MI_SUCCESS)
		fatal("milter-spam.listen = '%s': cannot listen (in use, or no permission)", spec);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct runner r = {0};
	pthread_t tid;
	if (pthread_create(&tid, NULL, run_main, &r) != 0)
		fatal("pthread_create: %s", strerror(errno));
	log_info("event=start listen=%s", spec);
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			char *error = NULL;
			if (reload(&error) < 0) {
				log_err("event=reload-failed error=\"%s\"", error);
				free(error);
			} else {
				log_info("event=reload");
			}
			continue;
		}
		break;
	}
	log_info("event=stop");
	smfi_stop();
	pthread_join(tid, NULL);
	return r.status;
}
