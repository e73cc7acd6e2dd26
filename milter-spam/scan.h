/* The scoring core of congvu-milter-spam: one function that scores a whole
 * message with what is known of its envelope, used by the libmilter glue
 * and by the offline `score` and `train` commands alike, so both give the
 * same verdict (STYLE 13: no libmilter in here).
 *
 * Every check adds its weight (from the configuration) to one score and its
 * name to the test list:
 *   SPF_PASS SPF_FAIL SPF_SOFTFAIL SPF_FAIL_LOCAL  envelope sender (libspf2)
 *   LOCAL_FROM_OUTSIDE  From: in a local domain, not authenticated, not
 *                       from trusted_networks, no SPF pass for a local sender
 *   LOOKALIKE_DOMAIN    From:/Reply-To:/envelope domain imitating a local one
 *   DISPLAY_NAME_SPOOF  From: display name showing a local address over an
 *                       outside one (not for trusted or authenticated mail)
 *   DNSBL_<zone> DNSWL_<zone>
 *   BAYES_NN            classifier probability NN% (points linear from 50%)
 *   EXECUTABLE_ATTACHMENT MISSING_DATE MISSING_MESSAGE_ID MISSING_FROM
 *   MISSING_SUBJECT BAD_MIME
 *   ALLOW_NETWORK ALLOW_SENDER  the allow-lists
 *   RATELIMIT           outbound limit of an authenticated sender
 * Network checks need the client address; without one (offline scoring
 * without --client) they are skipped. */
#ifndef CONGVU_MILTER_SCAN_H
#define CONGVU_MILTER_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "str.h"

struct scanner;

/* What the MTA told about the message. Any field may be NULL (unknown). */
struct scan_envelope {
	const char *client_ip; /* NULL: no network checks */
	const char *helo;
	const char *mail_from;    /* address without <>; "" for the null sender */
	const char *auth_user;    /* SASL login ({auth_authen}); NULL: none */
	const char *const *rcpts; /* addresses without <> */
	size_t rcpt_count;
};

enum scan_action {
	SCAN_ACCEPT,   /* deliver with the headers */
	SCAN_REJECT,   /* 550 5.7.1 */
	SCAN_TEMPFAIL, /* 451 4.7.1 (rate limit) */
};

struct scan_result {
	double score; /* rounded to one decimal */
	bool spam;    /* score >= junk_threshold */
	enum scan_action action;
	double bayes_prob;       /* < 0 when the classifier was not used */
	struct str tests;        /* "BAYES_99,MISSING_DATE" (may be empty) */
	struct str received_spf; /* Received-SPF: value, empty when not checked */
	struct str reply;        /* text after "550 5.7.1 " for REJECT/TEMPFAIL */
};

/* Builds a scanner from the configuration: parses the score settings,
 * opens the token database under global.data_dir/spam (creating it) and
 * the DNS resolver. Returns 0, or -1 with *error_r naming the setting or
 * path. */
int scanner_new(const struct settings *set, struct scanner **sc_r, char **error_r);
void scanner_free(struct scanner **sc);
/* Applies a re-read configuration (weights, thresholds, lists) to later
 * scans; the token database, DNS server and rate-limit sizes stay as they
 * were at start. Returns 0 or -1 with *error_r (nothing changed). */
int scanner_reload(struct scanner *sc, const struct settings *set, char **error_r);
/* Whether the token database is open (milter-spam.bayes was on at start). */
bool scanner_has_classifier(const struct scanner *sc);

/* Scores data (a whole RFC 5322 message, any line ends). Thread-safe.
 * Returns 0, or -1 with *error_r when the token database failed (the
 * caller answers TEMPFAIL); the result is then meaningless. */
int scan_message(struct scanner *sc, const struct scan_envelope *env, const char *data, size_t len,
                 struct scan_result *res, char **error_r);
void scan_result_init(struct scan_result *res);
void scan_result_free(struct scan_result *res);
/* "Yes, score=7.3 tests=BAYES_99,MISSING_DATE bayes=0.998" */
void scan_result_status(const struct scan_result *res, struct str *out);

/* Training: a batch of messages in one transaction. */
struct scan_training;
struct scan_training *scanner_train_begin(struct scanner *sc);
/* Adds one message as spam or ham (delta +1), or forgets it (delta -1). */
void scanner_train_message(struct scan_training *tr, bool spam, int delta, const char *data,
                           size_t len);
int scanner_train_commit(struct scan_training **tr, char **error_r);

/* The distinct token keys of a message (for tests and the fuzzer): the
 * caller frees *keys_r. */
size_t scanner_message_keys(const char *data, size_t len, uint64_t **keys_r);

#endif
