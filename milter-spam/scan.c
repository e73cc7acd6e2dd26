/* The scoring core (see scan.h). */
#include "config.h"

#include "address.h"
#include "bayes.h"
#include "dns.h"
#include "mime.h"
#include "netlist.h"
#include "ratelimit.h"
#include "rules.h"
#include "scan.h"
#include "spf.h"
#include "store/tokendb.h"
#include "tokenize.h"
#include "xalloc.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct zone {
	char *name;
	double score;
};

/* What SIGHUP may change: the weights, thresholds and lists. */
struct scan_config {
	double junk, reject;
	double w_allow, w_spf_fail, w_spf_softfail, w_spf_pass, w_spf_fail_local;
	double w_local_outside, w_lookalike, w_display_spoof, w_exe, w_no_date, w_no_msgid,
	    w_no_from;
	double w_no_subject, w_bad_mime, w_bayes_spam, w_bayes_ham;
	bool spf, bayes;
	unsigned int bayes_min;
	char *local_domains, *exe_exts, *allow_sender_domains;
	struct netlist *trusted, *allow_nets;
	struct zone *dnsbl, *dnswl;
	size_t n_dnsbl, n_dnswl;
	enum { RL_TEMPFAIL, RL_REJECT, RL_TAG } rl_action;
	char *hostname;
	struct bayes_params params;
};

struct scanner {
	/* Held shared by every scan, exclusively to swap cfg on reload. */
	pthread_rwlock_t lock;
	struct scan_config *cfg;
	/* Kept for the life of the process: LMDB forbids opening one
	 * environment twice in a process, and the rate counters must
	 * survive a reload. */
	struct ratelimit *rl;
	struct dns_resolver *dns;
	struct tokendb *db;
};

static char *errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *errorf(const char *fmt, ...)
{
	struct str s = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&s, fmt, ap);
	va_end(ap);
	return str_steal(&s);
}

/* ---- configuration ---- */

static int parse_decimal(const char *s, double *r)
{
	char *end;
	if (*s == '\0')
		return -1;
	double v = strtod(s, &end);
	if (*end != '\0' || !isfinite(v) || v < -1000 || v > 1000)
		return -1;
	*r = v;
	return 0;
}

static int get_score(const struct settings *set, enum setting_id id, const char *key, double *r,
                     char **error_r)
{
	const char *v = settings_str(set, id);
	if (parse_decimal(v, r) < 0) {
		*error_r = errorf("milter-spam.%s = '%s': expected a decimal number between -1000 "
		                  "and 1000",
		                  key, v);
		return -1;
	}
	return 0;
}

static int parse_zones(const char *spec, double def, const char *key, struct zone **zones_r,
                       size_t *n_r, char **error_r)
{
	char *copy = xstrdup(spec);
	char *save = NULL;
	struct zone *zones = NULL;
	size_t n = 0;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		char *eq = strchr(tok, '=');
		double score = def;
		if (eq != NULL) {
			*eq = '\0';
			if (parse_decimal(eq + 1, &score) < 0)
				goto bad;
		}
		size_t l = strlen(tok);
		if (l == 0 || l > 200 || strchr(tok, '.') == NULL)
			goto bad;
		for (char *c = tok; *c; c++)
			if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
				goto bad;
		zones = xreallocarray(zones, n + 1, sizeof(*zones));
		zones[n].name = xstrdup(tok);
		zones[n].score = score;
		n++;
		continue;
	bad:
		*error_r = errorf("milter-spam.%s: bad zone '%s': expected ZONE[=SCORE]", key, tok);
		for (size_t i = 0; i < n; i++)
			free(zones[i].name);
		free(zones);
		free(copy);
		return -1;
	}
	free(copy);
	*zones_r = zones;
	*n_r = n;
	return 0;
}

static void config_free(struct scan_config **cp)
{
	struct scan_config *c = *cp;
	if (c == NULL)
		return;
	free(c->local_domains);
	free(c->exe_exts);
	free(c->allow_sender_domains);
	free(c->hostname);
	netlist_free(&c->trusted);
	netlist_free(&c->allow_nets);
	for (size_t i = 0; i < c->n_dnsbl; i++)
		free(c->dnsbl[i].name);
	for (size_t i = 0; i < c->n_dnswl; i++)
		free(c->dnswl[i].name);
	free(c->dnsbl);
	free(c->dnswl);
	x_free(cp);
}

static int config_load(const struct settings *set, struct scan_config **cfg_r, char **error_r)
{
	struct scan_config *sc = xcalloc(1, sizeof(*sc));
	sc->params = bayes_default_params;
	static const struct {
		enum setting_id id;
		const char *key;
		size_t off;
	} scores[] = {
#define W(id, key, field) {id, key, offsetof(struct scan_config, field)}
	    W(S_MILTER_JUNK_THRESHOLD, "junk_threshold", junk),
	    W(S_MILTER_REJECT_THRESHOLD, "reject_threshold", reject),
	    W(S_MILTER_SCORE_ALLOW, "score_allow", w_allow),
	    W(S_MILTER_SCORE_SPF_FAIL, "score_spf_fail", w_spf_fail),
	    W(S_MILTER_SCORE_SPF_SOFTFAIL, "score_spf_softfail", w_spf_softfail),
	    W(S_MILTER_SCORE_SPF_PASS, "score_spf_pass", w_spf_pass),
	    W(S_MILTER_SCORE_SPF_FAIL_LOCAL, "score_spf_fail_local", w_spf_fail_local),
	    W(S_MILTER_SCORE_LOCAL_FROM_OUTSIDE, "score_local_from_outside", w_local_outside),
	    W(S_MILTER_SCORE_LOOKALIKE, "score_lookalike", w_lookalike),
	    W(S_MILTER_SCORE_DISPLAY_NAME_SPOOF, "score_display_name_spoof", w_display_spoof),
	    W(S_MILTER_SCORE_EXECUTABLE, "score_executable", w_exe),
	    W(S_MILTER_SCORE_NO_DATE, "score_no_date", w_no_date),
	    W(S_MILTER_SCORE_NO_MESSAGE_ID, "score_no_message_id", w_no_msgid),
	    W(S_MILTER_SCORE_NO_FROM, "score_no_from", w_no_from),
	    W(S_MILTER_SCORE_NO_SUBJECT, "score_no_subject", w_no_subject),
	    W(S_MILTER_SCORE_BAD_MIME, "score_bad_mime", w_bad_mime),
	    W(S_MILTER_SCORE_BAYES_SPAM, "score_bayes_spam", w_bayes_spam),
	    W(S_MILTER_SCORE_BAYES_HAM, "score_bayes_ham", w_bayes_ham),
#undef W
	};
	for (size_t i = 0; i < sizeof(scores) / sizeof(scores[0]); i++)
		if (get_score(set, scores[i].id, scores[i].key,
		              (double *)(void *)((char *)sc + scores[i].off), error_r) < 0)
			goto fail;
	if (sc->reject < sc->junk) {
		*error_r = errorf("milter-spam.reject_threshold (%g) is below junk_threshold (%g)",
		                  sc->reject, sc->junk);
		goto fail;
	}
	sc->spf = settings_bool(set, S_MILTER_SPF);
	sc->bayes = settings_bool(set, S_MILTER_BAYES);
	sc->bayes_min = (unsigned int)settings_num(set, S_MILTER_BAYES_MIN_MESSAGES);
	sc->local_domains = xstrdup(settings_str(set, S_GLOBAL_DOMAINS));
	sc->exe_exts = xstrdup(settings_str(set, S_MILTER_EXECUTABLE_EXTENSIONS));
	sc->allow_sender_domains = xstrdup(settings_str(set, S_MILTER_ALLOW_SENDER_DOMAINS));
	sc->hostname = xstrdup(settings_str(set, S_GLOBAL_HOSTNAME));
	char *why = NULL;
	sc->trusted = netlist_parse(settings_str(set, S_MILTER_TRUSTED_NETWORKS), &why);
	if (sc->trusted == NULL) {
		*error_r = errorf("milter-spam.trusted_networks: %s", why);
		free(why);
		goto fail;
	}
	sc->allow_nets = netlist_parse(settings_str(set, S_MILTER_ALLOW_NETWORKS), &why);
	if (sc->allow_nets == NULL) {
		*error_r = errorf("milter-spam.allow_networks: %s", why);
		free(why);
		goto fail;
	}
	if (parse_zones(settings_str(set, S_MILTER_DNSBL_ZONES), 3.0, "dnsbl_zones", &sc->dnsbl,
	                &sc->n_dnsbl, error_r) < 0 ||
	    parse_zones(settings_str(set, S_MILTER_DNSWL_ZONES), -3.0, "dnswl_zones", &sc->dnswl,
	                &sc->n_dnswl, error_r) < 0)
		goto fail;
	sc->rl_action = (int)settings_num(set, S_MILTER_RATELIMIT_ACTION);
	*cfg_r = sc;
	return 0;
fail:
	config_free(&sc);
	return -1;
}

int scanner_new(const struct settings *set, struct scanner **sc_r, char **error_r)
{
	struct scanner *sc = xcalloc(1, sizeof(*sc));
	pthread_rwlock_init(&sc->lock, NULL);
	if (config_load(set, &sc->cfg, error_r) < 0)
		goto fail;
	sc->rl = ratelimit_new(settings_num(set, S_MILTER_RATELIMIT_WINDOW),
	                       (unsigned int)settings_num(set, S_MILTER_RATELIMIT_MESSAGES),
	                       (unsigned int)settings_num(set, S_MILTER_RATELIMIT_RECIPIENTS));
	if (dns_resolver_new(settings_str(set, S_GLOBAL_DNS_SERVER),
	                     (unsigned int)settings_num(set, S_MILTER_DNS_TIMEOUT), &sc->dns,
	                     error_r) < 0)
		goto fail;
	if (settings_bool(set, S_MILTER_BAYES)) {
		struct str dir = STR_INIT;
		str_printf(&dir, "%s/spam", settings_str(set, S_GLOBAL_DATA_DIR));
		int rc = tokendb_open(dir.s, settings_num(set, S_MILTER_TOKENDB_MAP_SIZE), true,
		                      &sc->db, error_r);
		str_free(&dir);
		if (rc < 0)
			goto fail;
	}
	spf_init();
	*sc_r = sc;
	return 0;
fail:
	scanner_free(&sc);
	return -1;
}

int scanner_reload(struct scanner *sc, const struct settings *set, char **error_r)
{
	struct scan_config *cfg;
	if (config_load(set, &cfg, error_r) < 0)
		return -1;
	if (cfg->bayes && sc->db == NULL) {
		*error_r = xstrdup("milter-spam.bayes: turning the classifier on needs a restart");
		config_free(&cfg);
		return -1;
	}
	pthread_rwlock_wrlock(&sc->lock);
	struct scan_config *old = sc->cfg;
	sc->cfg = cfg;
	pthread_rwlock_unlock(&sc->lock);
	config_free(&old);
	return 0;
}

bool scanner_has_classifier(const struct scanner *sc)
{
	return sc->db != NULL;
}

void scanner_free(struct scanner **scp)
{
	struct scanner *sc = *scp;
	if (sc == NULL)
		return;
	config_free(&sc->cfg);
	ratelimit_free(&sc->rl);
	dns_resolver_free(&sc->dns);
	tokendb_close(&sc->db);
	pthread_rwlock_destroy(&sc->lock);
	x_free(scp);
}

/* ---- token sets ---- */

struct keyset {
	uint64_t *slots; /* 0 = empty */
	size_t cap, n;
};

#define KEYSET_MAX 20000

static void keyset_add(void *context, const char *tok, size_t len)
{
	struct keyset *ks = context;
	if (ks->n >= KEYSET_MAX)
		return;
	if ((ks->n + 1) * 2 > ks->cap) {
		size_t ncap = ks->cap ? ks->cap * 2 : 1024;
		uint64_t *ns = xcalloc(ncap, sizeof(*ns));
		for (size_t i = 0; i < ks->cap; i++) {
			if (ks->slots[i] == 0)
				continue;
			size_t j = (size_t)ks->slots[i] & (ncap - 1);
			while (ns[j] != 0)
				j = (j + 1) & (ncap - 1);
			ns[j] = ks->slots[i];
		}
		free(ks->slots);
		ks->slots = ns;
		ks->cap = ncap;
	}
	uint64_t k = tokendb_key(tok, len);
	size_t j = (size_t)k & (ks->cap - 1);
	while (ks->slots[j] != 0) {
		if (ks->slots[j] == k)
			return;
		j = (j + 1) & (ks->cap - 1);
	}
	ks->slots[j] = k;
	ks->n++;
}

/* Compacts the set into an array of its keys (reusing the memory). */
static size_t keyset_take(struct keyset *ks, uint64_t **keys_r)
{
	size_t n = 0;
	for (size_t i = 0; i < ks->cap; i++)
		if (ks->slots[i] != 0)
			ks->slots[n++] = ks->slots[i];
	*keys_r = ks->slots;
	ks->slots = NULL;
	return n;
}

static size_t message_keys(const char *data, size_t len, const struct mime_message *msg,
                           uint64_t **keys_r)
{
	struct keyset ks = {NULL, 0, 0};
	keyset_add(&ks, "*", 1); /* never empty */
	tokenize_message(data, len, msg, keyset_add, &ks);
	return keyset_take(&ks, keys_r);
}

size_t scanner_message_keys(const char *data, size_t len, uint64_t **keys_r)
{
	struct mime_message *msg = mime_parse(data, len);
	size_t n = message_keys(data, len, msg, keys_r);
	mime_message_free(&msg);
	return n;
}

/* ---- scoring ---- */

void scan_result_init(struct scan_result *res)
{
	memset(res, 0, sizeof(*res));
	res->bayes_prob = -1;
}

void scan_result_free(struct scan_result *res)
{
	str_free(&res->tests);
	str_free(&res->received_spf);
	str_free(&res->reply);
}

static void hit(struct scan_result *res, double *score, const char *name, double w)
{
	if (res->tests.len > 0)
		str_appendc(&res->tests, ',');
	str_appends(&res->tests, name);
	*score += w;
}

static const char *domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	return at ? at + 1 : "";
}

static void zone_test_name(struct str *out, const char *prefix, const char *zone)
{
	str_appends(out, prefix);
	for (const char *c = zone; *c; c++)
		str_appendc(out, *c == '.' || *c == '-' ? '_' : (char)toupper((unsigned char)*c));
}

static int bayes_score(struct scanner *sc, const struct scan_config *cfg, const char *data,
                       size_t len, const struct mime_message *msg, double *prob_r, char **error_r)
{
	struct tokendb_reader *r;
	if (tokendb_read_begin(sc->db, &r, error_r) < 0)
		return -1;
	struct tokendb_counts totals;
	if (tokendb_read_totals(r, &totals, error_r) < 0) {
		tokendb_read_end(&r);
		return -1;
	}
	if (totals.spam < cfg->bayes_min || totals.ham < cfg->bayes_min || totals.spam == 0 ||
	    totals.ham == 0) {
		tokendb_read_end(&r);
		*prob_r = -1;
		return 0;
	}
	uint64_t *keys;
	size_t n = message_keys(data, len, msg, &keys);
	struct tokendb_counts *counts = xcalloc(n, sizeof(*counts));
	if (tokendb_lookup(r, keys, n, counts, error_r) < 0) {
		tokendb_read_end(&r);
		free(keys);
		free(counts);
		return -1;
	}
	tokendb_read_end(&r);
	double *probs = xcalloc(n, sizeof(*probs));
	for (size_t i = 0; i < n; i++)
		probs[i] = bayes_token_prob(&cfg->params, counts[i].spam, counts[i].ham,
		                            totals.spam, totals.ham);
	size_t used;
	*prob_r = bayes_combine(&cfg->params, probs, n, &used);
	free(probs);
	free(keys);
	free(counts);
	return 0;
}

static int scan_locked(struct scanner *sc, const struct scan_config *cfg,
                       const struct scan_envelope *env, const char *data, size_t len,
                       struct scan_result *res, char **error_r)
{
	double score = 0;
	bool authenticated = env->auth_user != NULL && env->auth_user[0] != '\0';
	bool network = env->client_ip != NULL && env->client_ip[0] != '\0';
	bool trusted = network && netlist_match_str(cfg->trusted, env->client_ip);
	bool outside = network && !trusted && !authenticated;
	const char *sender_domain = domain_of(env->mail_from);
	bool sender_local = sender_domain[0] && domain_is_local(sender_domain, cfg->local_domains);

	struct mime_message *msg = mime_parse(data, len);
	struct rule_facts facts;
	rules_examine(data, len, msg, cfg->exe_exts, &facts);
	bool from_local =
	    facts.from_domain[0] && domain_is_local(facts.from_domain, cfg->local_domains);

	/* SPF of the envelope sender, for mail from outside. */
	enum spf_result spf = SPF_RES_NONE;
	if (outside && cfg->spf) {
		spf = spf_check(sc->dns, env->client_ip, env->helo, env->mail_from, cfg->hostname,
		                &res->received_spf);
		if (spf == SPF_RES_FAIL && sender_local)
			hit(res, &score, "SPF_FAIL_LOCAL", cfg->w_spf_fail_local);
		else if (spf == SPF_RES_FAIL)
			hit(res, &score, "SPF_FAIL", cfg->w_spf_fail);
		else if (spf == SPF_RES_SOFTFAIL)
			hit(res, &score, "SPF_SOFTFAIL", cfg->w_spf_softfail);
		else if (spf == SPF_RES_PASS)
			hit(res, &score, "SPF_PASS", cfg->w_spf_pass);
	}
	/* A local From: from outside, unless SPF vouches for a local sender
	 * (a site's own services hosted elsewhere). */
	if (outside && from_local && !(sender_local && spf == SPF_RES_PASS))
		hit(res, &score, "LOCAL_FROM_OUTSIDE", cfg->w_local_outside);
	if ((facts.from_domain[0] && rules_lookalike(facts.from_domain, cfg->local_domains)) ||
	    (facts.reply_to_domain[0] &&
	     rules_lookalike(facts.reply_to_domain, cfg->local_domains)) ||
	    (sender_domain[0] && rules_lookalike(sender_domain, cfg->local_domains)))
		hit(res, &score, "LOOKALIKE_DOMAIN", cfg->w_lookalike);
	if (!trusted && !authenticated && rules_display_name_spoof(&facts, cfg->local_domains))
		hit(res, &score, "DISPLAY_NAME_SPOOF", cfg->w_display_spoof);
	/* DNS lists, for mail from outside. */
	for (size_t i = 0; outside && i < cfg->n_dnsbl + cfg->n_dnswl; i++) {
		bool bl = i < cfg->n_dnsbl;
		const struct zone *z = bl ? &cfg->dnsbl[i] : &cfg->dnswl[i - cfg->n_dnsbl];
		if (dns_list_lookup(sc->dns, z->name, env->client_ip) == 1) {
			struct str name = STR_INIT;
			zone_test_name(&name, bl ? "DNSBL_" : "DNSWL_", z->name);
			hit(res, &score, name.s, z->score);
			str_free(&name);
		}
	}
	/* Allow-lists. */
	if (network && netlist_match_str(cfg->allow_nets, env->client_ip))
		hit(res, &score, "ALLOW_NETWORK", cfg->w_allow);
	else if (spf == SPF_RES_PASS && sender_domain[0] &&
	         domain_pattern_match(cfg->allow_sender_domains, sender_domain))
		hit(res, &score, "ALLOW_SENDER", cfg->w_allow);
	/* The message itself. */
	if (facts.executable[0] != '\0')
		hit(res, &score, "EXECUTABLE_ATTACHMENT", cfg->w_exe);
	if (!facts.has_date)
		hit(res, &score, "MISSING_DATE", cfg->w_no_date);
	if (!facts.has_message_id)
		hit(res, &score, "MISSING_MESSAGE_ID", cfg->w_no_msgid);
	if (!facts.has_from)
		hit(res, &score, "MISSING_FROM", cfg->w_no_from);
	if (!facts.has_subject)
		hit(res, &score, "MISSING_SUBJECT", cfg->w_no_subject);
	if (facts.bad_mime)
		hit(res, &score, "BAD_MIME", cfg->w_bad_mime);
	if (cfg->bayes && sc->db != NULL) {
		double p;
		if (bayes_score(sc, cfg, data, len, msg, &p, error_r) < 0) {
			mime_message_free(&msg);
			return -1;
		}
		res->bayes_prob = p;
		if (p >= 0) {
			char name[16];
			int pct = (int)floor(p * 100);
			snprintf(name, sizeof(name), "BAYES_%02d",
			         pct > 99  ? 99
			         : pct < 0 ? 0
			                   : pct);
			double w = p >= 0.5 ? cfg->w_bayes_spam * (2 * p - 1)
			                    : -cfg->w_bayes_ham * (2 * p - 1);
			hit(res, &score, name, w);
		}
	}
	mime_message_free(&msg);

	res->score = round(score * 10) / 10;
	if (res->score == 0)
		res->score = 0; /* no "-0.0" */
	res->spam = res->score >= cfg->junk;
	res->action = SCAN_ACCEPT;
	if (res->score >= cfg->reject) {
		res->action = SCAN_REJECT;
		str_printf(&res->reply, "Message refused as spam (score %.1f: %s)", res->score,
		           res->tests.s);
	}
	/* The outbound limit of an authenticated sender, on messages that
	 * would otherwise go out. */
	if (authenticated && res->action == SCAN_ACCEPT) {
		const char **ext = xcalloc(env->rcpt_count + 1, sizeof(*ext));
		size_t n = 0;
		for (size_t i = 0; i < env->rcpt_count; i++) {
			const char *d = domain_of(env->rcpts[i]);
			if (!domain_is_local(d, cfg->local_domains))
				ext[n++] = env->rcpts[i];
		}
		unsigned int msgs, rcpts;
		enum ratelimit_verdict v =
		    ratelimit_check(sc->rl, env->auth_user, ext, n, time(NULL), &msgs, &rcpts);
		free(ext);
		if (v != RATELIMIT_OK) {
			hit(res, &res->score, "RATELIMIT", 0);
			if (cfg->rl_action != RL_TAG) {
				res->action =
				    cfg->rl_action == RL_REJECT ? SCAN_REJECT : SCAN_TEMPFAIL;
				str_printf(&res->reply,
				           "Sending limit reached (%u %s in the window); contact "
				           "the mail administrators",
				           v == RATELIMIT_MESSAGES ? msgs : rcpts,
				           v == RATELIMIT_MESSAGES ? "messages"
				                                   : "external recipients");
			}
		}
	}
	return 0;
}

int scan_message(struct scanner *sc, const struct scan_envelope *env, const char *data, size_t len,
                 struct scan_result *res, char **error_r)
{
	pthread_rwlock_rdlock(&sc->lock);
	int ret = scan_locked(sc, sc->cfg, env, data, len, res, error_r);
	pthread_rwlock_unlock(&sc->lock);
	return ret;
}

void scan_result_status(const struct scan_result *res, struct str *out)
{
	str_printf(out, "%s, score=%.1f tests=%s", res->spam ? "Yes" : "No", res->score,
	           res->tests.len ? res->tests.s : "none");
	if (res->bayes_prob >= 0)
		str_printf(out, " bayes=%.4f", res->bayes_prob);
}

/* ---- training ---- */

struct scan_training {
	struct tokendb_writer *w;
};

struct scan_training *scanner_train_begin(struct scanner *sc)
{
	struct scan_training *tr = xcalloc(1, sizeof(*tr));
	tr->w = tokendb_write_begin(sc->db);
	return tr;
}

void scanner_train_message(struct scan_training *tr, bool spam, int delta, const char *data,
                           size_t len)
{
	uint64_t *keys;
	size_t n = scanner_message_keys(data, len, &keys);
	tokendb_write_message(tr->w, spam, delta, keys, n);
	free(keys);
}

int scanner_train_commit(struct scan_training **trp, char **error_r)
{
	struct scan_training *tr = *trp;
	int ret = tokendb_write_commit(&tr->w, error_r);
	x_free(trp);
	return ret;
}
