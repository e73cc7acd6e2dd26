/* Commands of any state and of the not-authenticated state: CAPABILITY,
 * NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE (RFC 9051 6.1, 6.2;
 * SASL-IR RFC 4959), ENABLE (RFC 5161), NAMESPACE (RFC 2342). */
#include "config.h"
#include "conn.h"
#include "imap-pool.h"
#include "imap-session.h"
#include "ioloop.h"
#include "log.h"
#include "password.h"
#include "sasl.h"
#include "settings.h"
#include "xalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

enum cmd_result cmd_capability(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	str_appends(&s->out, "* CAPABILITY ");
	session_capabilities(s, &s->out);
	str_appends(&s->out, "\r\n");
	return cmd_ok(cmd, "Capability completed");
}

enum cmd_result cmd_noop(struct imap_cmd *cmd)
{
	return cmd_ok(cmd, "NOOP completed");
}

enum cmd_result cmd_check(struct imap_cmd *cmd)
{
	return cmd_ok(cmd, "CHECK completed");
}

enum cmd_result cmd_logout(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	str_appends(&s->out, "* BYE Logging out\r\n");
	cmd_ok(cmd, "Logout completed");
	str_append(&s->out, s->tagged.s, s->tagged.len);
	str_truncate(&s->tagged, 0);
	s->state = IMAP_LOGOUT;
	session_close(s, "logout");
	return CMD_DONE;
}

enum cmd_result cmd_id(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (cmd->n_args != 1 || (cmd->args[0].type != IMAP_ARG_LIST && !imap_arg_is_nil(&cmd->args[0])))
		return cmd_bad(cmd, "ID expects a parameter list or NIL");
	str_appends(&s->out, "* ID (\"name\" \"congvu\" \"version\" \"" PACKAGE_VERSION "\")\r\n");
	return cmd_ok(cmd, "ID completed");
}

enum cmd_result cmd_namespace(struct imap_cmd *cmd)
{
	str_appends(&cmd->s->out, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	return cmd_ok(cmd, "NAMESPACE completed");
}

enum cmd_result cmd_enable(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (cmd->n_args == 0)
		return cmd_bad(cmd, "ENABLE needs capabilities");
	struct str en = STR_INIT;
	for (size_t i = 0; i < cmd->n_args; i++) {
		const struct imap_arg *a = &cmd->args[i];
		if (a->type != IMAP_ARG_ATOM) {
			str_free(&en);
			return cmd_bad(cmd, "Invalid capability");
		}
		unsigned bit = 0;
		if (strcasecmp(a->str, "CONDSTORE") == 0)
			bit = ENABLED_CONDSTORE;
		else if (strcasecmp(a->str, "QRESYNC") == 0)
			bit = ENABLED_QRESYNC | ENABLED_CONDSTORE;
		else if (strcasecmp(a->str, "UTF8=ACCEPT") == 0)
			bit = ENABLED_UTF8;
		else if (strcasecmp(a->str, "IMAP4rev2") == 0)
			bit = ENABLED_REV2 | ENABLED_UTF8;
		if (bit == 0 || (s->enabled & bit) == bit)
			continue; /* unknown or already enabled: not listed (RFC 5161 3.1) */
		s->enabled |= bit;
		str_appendc(&en, ' ');
		str_appends(&en, a->str);
	}
	/* RFC 7162 3.1: CONDSTORE enabled while selected starts now */
	str_appends(&s->out, "* ENABLED");
	if (en.len)
		str_append(&s->out, en.s, en.len);
	str_appends(&s->out, "\r\n");
	str_free(&en);
	return cmd_ok(cmd, "ENABLE completed");
}

enum cmd_result cmd_starttls(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (s->d->tls == NULL)
		return cmd_no(cmd, "TLS is not configured");
	if (conn_tls_active(s->conn))
		return cmd_bad(cmd, "TLS is already active");
	cmd_ok(cmd, "Begin TLS negotiation now");
	/* The reply goes out in clear before the handshake; any pipelined
	 * input is discarded (RFC 9051 6.2.1, command injection). */
	str_append(&s->out, s->tagged.s, s->tagged.len);
	str_truncate(&s->tagged, 0);
	session_flush(s);
	size_t discarded = 0;
	const char *err;
	if (conn_starttls(s->conn, s->d->tls, &discarded, &err) < 0) {
		session_close(s, err);
		return CMD_DONE;
	}
	if (discarded > 0)
		log_info("session=%u ip=%s event=starttls_discard bytes=%zu", s->id, s->ip, discarded);
	return CMD_DONE;
}

/* ---- failed logins, per client IP, shared by the workers ----
 * A table in memory the master maps shared before it forks the workers
 * (auth_fail_table_share), so that a client spreading its guesses over
 * connections that land on different workers is slowed down all the same.
 * Slots are updated with relaxed atomics: two workers counting one failure
 * each at the same instant may count one, which a rate limit can afford.
 * The clock is CLOCK_MONOTONIC (ioloop), the same in every process. */

#define FAIL_SLOTS 4096
#define FAIL_FORGET_MS (15 * 60 * 1000)

struct fail_slot {
	uint64_t ip_hash;
	uint64_t last_ms;
	uint32_t fails;
};

static struct fail_slot fail_private[FAIL_SLOTS];
static struct fail_slot *fail_table = fail_private;

int auth_fail_table_share(void)
{
	void *p = mmap(NULL, sizeof(fail_private), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	fail_table = p;
	return 0;
}

static unsigned fail_count(struct imap_session *s)
{
	struct fail_slot *f = &fail_table[s->ip_hash % FAIL_SLOTS];
	uint64_t now = ioloop_now_ms(s->d->loop);
	if (__atomic_load_n(&f->ip_hash, __ATOMIC_RELAXED) != s->ip_hash ||
	    now - __atomic_load_n(&f->last_ms, __ATOMIC_RELAXED) > FAIL_FORGET_MS)
		return 0;
	return __atomic_load_n(&f->fails, __ATOMIC_RELAXED);
}

static void fail_note(struct imap_session *s, bool failed)
{
	struct fail_slot *f = &fail_table[s->ip_hash % FAIL_SLOTS];
	if (!failed) {
		if (__atomic_load_n(&f->ip_hash, __ATOMIC_RELAXED) == s->ip_hash)
			__atomic_store_n(&f->fails, 0, __ATOMIC_RELAXED);
		return;
	}
	if (fail_count(s) == 0) {
		/* a new client in this slot (or an old one forgiven) */
		__atomic_store_n(&f->fails, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&f->ip_hash, s->ip_hash, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&f->fails, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&f->last_ms, ioloop_now_ms(s->d->loop), __ATOMIC_RELAXED);
}

/* ---- verified passwords (as Dovecot's auth cache) ----
 * yescrypt takes tens of milliseconds by design; clients that reconnect
 * often (phones, mbsync) would pay it every time. A worker remembers, for
 * imapd.auth_cache_ttl, HMAC(secret, address, password) -> SHA-256 of the
 * stored hash; the secret is random per process, so the table is useless
 * outside it, and a changed password (another stored hash) misses. */

#define AUTH_CACHE_SLOTS 4096

static struct {
	unsigned char key[32];
	unsigned char hash_digest[32];
	uint64_t expires_ms;
} auth_cache[AUTH_CACHE_SLOTS];
static unsigned char auth_secret[32];
static bool auth_secret_ready;

static bool auth_key(const char *addr, const char *password, unsigned char key[32])
{
	if (!auth_secret_ready) {
		if (RAND_bytes(auth_secret, sizeof(auth_secret)) != 1)
			return false;
		auth_secret_ready = true;
	}
	struct str in = STR_INIT;
	str_appends(&in, addr);
	str_appendc(&in, '\0');
	str_appends(&in, password);
	size_t out_len = 0;
	bool ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, auth_secret, sizeof(auth_secret),
			    (const unsigned char *)in.s, in.len, key, 32, &out_len) != NULL &&
		  out_len == 32;
	/* the password was in there */
	OPENSSL_cleanse(in.s, in.len);
	str_free(&in);
	return ok;
}

static void hash_digest(const char *hash, unsigned char out[32])
{
	unsigned int n = 0;
	EVP_Digest(hash, strlen(hash), out, &n, EVP_sha256(), NULL);
}

static bool auth_cache_hit(struct imap_session *s, const unsigned char key[32], const char *hash)
{
	if (settings_num(s->d->set, S_IMAPD_AUTH_CACHE_TTL) == 0)
		return false;
	unsigned slot = ((unsigned)key[0] | (unsigned)key[1] << 8) % AUTH_CACHE_SLOTS;
	unsigned char d[32];
	hash_digest(hash, d);
	return auth_cache[slot].expires_ms > ioloop_now_ms(s->d->loop) &&
	       CRYPTO_memcmp(auth_cache[slot].key, key, 32) == 0 &&
	       CRYPTO_memcmp(auth_cache[slot].hash_digest, d, 32) == 0;
}

static void auth_cache_put(struct imap_session *s, const unsigned char key[32], const char *hash)
{
	uint64_t ttl = settings_num(s->d->set, S_IMAPD_AUTH_CACHE_TTL);
	if (ttl == 0)
		return;
	unsigned slot = ((unsigned)key[0] | (unsigned)key[1] << 8) % AUTH_CACHE_SLOTS;
	memcpy(auth_cache[slot].key, key, 32);
	hash_digest(hash, auth_cache[slot].hash_digest);
	auth_cache[slot].expires_ms = ioloop_now_ms(s->d->loop) + ttl * 1000;
}

static void delayed_reply(void *ctx)
{
	struct imap_cmd *cmd = ctx;
	struct imap_session *s = cmd->s;
	timeout_remove(&s->timer);
	session_cmd_done(cmd);
}

/* ---- the verifying thread ----
 * yescrypt takes tens of milliseconds by design: verified in the worker's
 * loop, each LOGIN would stall every other session of the worker (IDLE
 * wake-ups, FETCHes) meanwhile. A thread per worker verifies instead; the
 * loop goes on and finishes the LOGIN when the thread reports. An unknown
 * user is verified against a dummy hash, so the time taken tells nothing. */

struct verify_job {
	struct verify_job *next;
	struct imap_session *s; /* NULL: the session went away (under vmu) */
	struct imap_cmd *cmd;
	char user[200];         /* as given, for the log */
	char addr[ADDRESS_MAX_LEN + 1];
	char password[PASSWORD_MAX_LEN + 1];
	char hash[STORE_HASH_MAX + 1];
	unsigned char key[32];  /* the auth cache's key, when have_key */
	bool have_key, known, ok;
	uint32_t account_id;
	char address[ADDRESS_MAX_LEN + 1];
};

static struct {
	bool started;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct verify_job *jobs, **jobs_tail, *done;
	int efd;
	struct io *io;
} v = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void job_free(struct verify_job *j)
{
	OPENSSL_cleanse(j, sizeof(*j));
	free(j);
}

static void *verify_thread(void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&v.mu);
	for (;;) {
		while (v.jobs == NULL)
			pthread_cond_wait(&v.cv, &v.mu);
		struct verify_job *j = v.jobs;
		v.jobs = j->next;
		if (v.jobs == NULL)
			v.jobs_tail = &v.jobs;
		pthread_mutex_unlock(&v.mu);
		bool ok = password_verify(j->password, j->hash);
		OPENSSL_cleanse(j->password, sizeof(j->password));
		pthread_mutex_lock(&v.mu);
		j->ok = ok && j->known;
		j->next = v.done;
		v.done = j;
		uint64_t one = 1;
		if (write(v.efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice; nothing to do */
		}
	}
	return NULL;
}

static enum cmd_result login_finish(struct imap_cmd *cmd, const struct verify_job *j);

static void verify_done(void *ctx, unsigned revents)
{
	(void)ctx;
	(void)revents;
	uint64_t n;
	if (read(v.efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&v.mu);
	struct verify_job *list = v.done;
	v.done = NULL;
	/* detach from the sessions under the lock (cancel takes it too) */
	for (struct verify_job *j = list; j != NULL; j = j->next)
		if (j->s != NULL)
			j->s->verify = NULL;
	pthread_mutex_unlock(&v.mu);
	while (list != NULL) {
		struct verify_job *j = list;
		list = j->next;
		if (j->s != NULL && !j->s->closing) {
			struct imap_session *s = j->s;
			s->in_callback = true;
			if (login_finish(j->cmd, j) == CMD_DONE)
				session_cmd_done(j->cmd);
			s->in_callback = false;
		}
		job_free(j);
	}
}

void auth_verify_cancel(struct imap_session *s)
{
	if (s->verify == NULL)
		return;
	pthread_mutex_lock(&v.mu);
	if (s->verify != NULL)
		s->verify->s = NULL;
	s->verify = NULL;
	pthread_mutex_unlock(&v.mu);
}

/* Starts the thread in this worker at the first password to verify. */
static bool verify_start(struct imap_session *s)
{
	if (v.started)
		return true;
	v.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v.efd < 0)
		return false;
	v.jobs_tail = &v.jobs;
	if (pthread_create(&v.thread, NULL, verify_thread, NULL) != 0) {
		close(v.efd);
		return false;
	}
	pthread_detach(v.thread);
	v.io = io_add(s->d->loop, v.efd, IO_READ, verify_done, NULL);
	v.started = true;
	return true;
}

/* Logs the user in when the password matches: at once from the auth
 * cache, otherwise after the verifying thread has checked the hash. */
static enum cmd_result do_login(struct imap_cmd *cmd, const char *user, const char *password)
{
	struct imap_session *s = cmd->s;
	const char *err;
	struct store_account *acct = xmalloc(sizeof(*acct));
	struct verify_job *j = xcalloc(1, sizeof(*j));
	int ret = -1;
	const char *login = user;
	char *with_domain = NULL;
	snprintf(j->user, sizeof(j->user), "%s", user);
	if (strchr(user, '@') == NULL) {
		/* a bare local part: the first local domain */
		char **doms = settings_list(s->d->set, S_GLOBAL_DOMAINS, NULL);
		if (doms != NULL && doms[0] != NULL) {
			size_t l = strlen(user) + strlen(doms[0]) + 2;
			with_domain = xmalloc(l);
			snprintf(with_domain, l, "%s@%s", user, doms[0]);
			login = with_domain;
		}
		settings_list_free(&doms);
	}
	bool cached = false;
	if (strlen(password) <= PASSWORD_MAX_LEN && address_normalize(login, j->addr, &err) == 0) {
		ret = store_account_get(s->d->store, j->addr, acct, &err);
		j->have_key = ret == 1 && auth_key(j->addr, password, j->key);
		if (ret < 0) {
			log_err("session=%u error=\"store: %s\"", s->id, err);
		} else if (ret == 1 && acct->password_hash[0] != '\0') {
			j->known = true;
			j->account_id = acct->id;
			memcpy(j->address, acct->address, sizeof(j->address));
			memcpy(j->hash, acct->password_hash, sizeof(j->hash));
			cached = j->have_key && auth_cache_hit(s, j->key, acct->password_hash);
		}
	} else {
		ret = 0; /* malformed: an unknown user */
	}
	free(with_domain);
	OPENSSL_cleanse(acct, sizeof(*acct));
	free(acct);
	if (ret < 0) {
		job_free(j);
		return cmd_no(cmd, "[UNAVAILABLE] Temporary failure, try again later");
	}
	if (cached) {
		j->ok = true;
		enum cmd_result res = login_finish(cmd, j);
		job_free(j);
		return res;
	}
	if (!j->known)
		snprintf(j->hash, sizeof(j->hash), "%s", PASSWORD_DUMMY_HASH);
	snprintf(j->password, sizeof(j->password), "%s", password);
	if (!verify_start(s)) {
		/* no thread: verify here, as before */
		j->ok = password_verify(j->password, j->hash) && j->known;
		enum cmd_result res = login_finish(cmd, j);
		job_free(j);
		return res;
	}
	j->s = s;
	j->cmd = cmd;
	conn_input_pause(s->conn, true);
	pthread_mutex_lock(&v.mu);
	s->verify = j;
	*v.jobs_tail = j;
	v.jobs_tail = &j->next;
	pthread_cond_signal(&v.cv);
	pthread_mutex_unlock(&v.mu);
	return CMD_WAIT;
}

/* The verdict: logged in, or refused (slowed down per failure). */
static enum cmd_result login_finish(struct imap_cmd *cmd, const struct verify_job *j)
{
	struct imap_session *s = cmd->s;
	char buf[128];
	if (j->ok && j->have_key)
		auth_cache_put(s, j->key, j->hash);
	fail_note(s, !j->ok);
	if (!j->ok) {
		log_info("session=%u ip=%s event=login_failed user=\"%s\" fails=%u", s->id, s->ip,
			 log_sanitize(buf, sizeof(buf), j->user, strlen(j->user)), fail_count(s));
		cmd_no(cmd, "[AUTHENTICATIONFAILED] Authentication failed");
		unsigned fails = fail_count(s);
		uint64_t base = settings_num(s->d->set, S_IMAPD_AUTH_FAIL_DELAY) * 1000;
		if (base == 0 || fails == 0)
			return CMD_DONE;
		unsigned shift = fails - 1 > 3 ? 3 : fails - 1;
		conn_input_pause(s->conn, true);
		s->timer = timeout_add(s->d->loop, base << shift, delayed_reply, cmd);
		return CMD_WAIT;
	}
	s->account_id = j->account_id;
	memcpy(s->user, j->address, sizeof(s->user));
	s->state = IMAP_AUTH;
	conn_set_timeout(s->conn, s->d->idle_timeout_ms);
	imap_reader_set_max_literal(s->reader, s->d->appendlimit);
	imap_reader_set_max_command(s->reader, s->d->limits.max_command);
	log_info("session=%u ip=%s event=login user=%s tls=%s", s->id, s->ip, s->user,
		 conn_tls_active(s->conn) ? "yes" : "no");
	struct str caps = STR_INIT;
	session_capabilities(s, &caps);
	cmd_ok(cmd, "[CAPABILITY %s] Logged in", caps.s);
	str_free(&caps);
	return CMD_DONE;
}

enum cmd_result cmd_login(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (!session_login_allowed(s))
		return cmd_no(cmd, "[PRIVACYREQUIRED] Use STARTTLS first (LOGINDISABLED)");
	if (cmd->n_args != 2)
		return cmd_bad(cmd, "LOGIN expects user name and password");
	const char *user = imap_arg_astring(&cmd->args[0]);
	const char *pass = imap_arg_astring(&cmd->args[1]);
	if (user == NULL || pass == NULL)
		return cmd_bad(cmd, "Invalid user name or password");
	return do_login(cmd, user, pass);
}

struct auth_state {
	struct sasl_server *sasl;
};

static void auth_cleanup(struct imap_cmd *cmd)
{
	struct auth_state *st = cmd->state;
	sasl_server_free(&st->sasl);
}

static void auth_finish(struct imap_cmd *cmd, int ret, const char *challenge, const char *err)
{
	struct imap_session *s = cmd->s;
	struct auth_state *st = cmd->state;
	if (ret == 0) {
		str_printf(&s->out, "+ %s\r\n", challenge);
		session_flush(s);
		return;
	}
	session_read_commands(s);
	if (ret < 0) {
		sasl_server_free(&st->sasl);
		if (strcmp(err, "cancelled") == 0)
			cmd_bad(cmd, "Authentication cancelled");
		else
			cmd_bad(cmd, "Invalid SASL response: %s", err);
		session_cmd_done(cmd);
		return;
	}
	const struct sasl_creds *c = sasl_server_creds(st->sasl);
	enum cmd_result res;
	if (c->authzid[0] != '\0' && strcasecmp(c->authzid, c->authcid) != 0) {
		res = cmd_no(cmd, "[AUTHORIZATIONFAILED] Acting as another user is not allowed");
	} else {
		res = do_login(cmd, c->authcid, c->password);
	}
	sasl_server_free(&st->sasl);
	if (res == CMD_DONE)
		session_cmd_done(cmd);
}

static void auth_line(struct imap_cmd *cmd, const char *line, size_t len)
{
	struct auth_state *st = cmd->state;
	const char *challenge = NULL, *err = "too long";
	int ret = line == NULL ? -1 : sasl_server_input(st->sasl, line, len, &challenge, &err);
	auth_finish(cmd, ret, challenge, err);
}

enum cmd_result cmd_authenticate(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	if (cmd->n_args < 1 || cmd->n_args > 2 || cmd->args[0].type != IMAP_ARG_ATOM)
		return cmd_bad(cmd, "AUTHENTICATE expects a mechanism");
	enum sasl_mech mech;
	if (sasl_mech_parse(cmd->args[0].str, &mech) < 0)
		return cmd_no(cmd, "Unsupported authentication mechanism");
	if (!session_login_allowed(s))
		return cmd_no(cmd, "[PRIVACYREQUIRED] Use STARTTLS first");
	const char *initial = NULL;
	size_t initial_len = 0;
	if (cmd->n_args == 2) {
		if (cmd->args[1].type != IMAP_ARG_ATOM)
			return cmd_bad(cmd, "Invalid initial response");
		initial = cmd->args[1].str;
		initial_len = cmd->args[1].len;
	}
	struct auth_state *st = p_malloc(cmd->pool, sizeof(*st));
	cmd->state = st;
	cmd->cleanup = auth_cleanup;
	st->sasl = sasl_server_new(mech);
	const char *challenge = NULL, *err = NULL;
	int ret = sasl_server_start(st->sasl, initial, initial_len, &challenge, &err);
	if (ret == 0) {
		session_read_lines(s, auth_line);
		auth_finish(cmd, ret, challenge, err);
		return CMD_WAIT;
	}
	if (ret < 0) {
		sasl_server_free(&st->sasl);
		return cmd_bad(cmd, "Invalid SASL response: %s", err);
	}
	const struct sasl_creds *c = sasl_server_creds(st->sasl);
	enum cmd_result res;
	if (c->authzid[0] != '\0' && strcasecmp(c->authzid, c->authcid) != 0)
		res = cmd_no(cmd, "[AUTHORIZATIONFAILED] Acting as another user is not allowed");
	else
		res = do_login(cmd, c->authcid, c->password);
	sasl_server_free(&st->sasl);
	return res;
}
