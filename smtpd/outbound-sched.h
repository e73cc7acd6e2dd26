/* Outbound queue decisions with no I/O (STYLE 13): which recipients go
 * together, what one delivery attempt's results do to a queue record, when
 * the next attempt is, when mail expires, and which notifications (RFC 3464)
 * are due. The delivery process applies them inside store transactions. */
#ifndef CONGVU_OUTBOUND_SCHED_H
#define CONGVU_OUTBOUND_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsn.h"
#include "outbound-client.h"
#include "queue-record.h"

/* The pending recipients of one destination domain (lower case). */
struct outbound_group {
	char *domain;
	size_t *idx;     /* indexes into the record's rcpts */
	size_t n;
};

/* Recipients per SMTP transaction at most (Postfix's
 * smtp_destination_recipient_limit): servers refuse more (452 4.5.3). */
#define OUTBOUND_RCPTS_PER_TRANSACTION 50

/* Groups the record's pending recipients by domain, in order of first
 * appearance, at most max_rcpts per group (a domain with more gets several
 * groups). Returns the number of groups; free with outbound_groups_free. */
size_t outbound_group_pending(const struct queue_record *r, size_t max_rcpts,
			      struct outbound_group **groups_r);
void outbound_groups_free(struct outbound_group **groups, size_t n);

/* When attempt number attempts+1 is due after attempts failed ones: min
 * doubled per failure, at most max (seconds). */
int64_t outbound_retry_at(int64_t now, uint32_t attempts, uint64_t min_backoff,
			  uint64_t max_backoff);

/* The result of one recipient in one attempt. */
struct outbound_result {
	size_t index;             /* into the record's rcpts */
	const char *addr;         /* checked against the record's recipient */
	enum smtpc_result result; /* NONE: not tried (the reason is in diag) */
	const char *status;       /* "5.1.1"; NULL: the class default */
	const char *diag;         /* reply or reason */
	bool remote_dsn;          /* the server took over DSN duties (offered DSN) */
};

/* Applies results to the record: OK makes a recipient sent (a "relayed" DSN
 * is then owed only when it asked for SUCCESS and the server does not do
 * DSN), PERM failed, TEMP and NONE leave it pending with the reason kept.
 * mta: the host that answered, or NULL. Sets last_error from the last
 * temporary reason. Results whose index or address do not match are
 * ignored (the record changed meanwhile). */
void outbound_apply(struct queue_record *r, const char *mta, const struct outbound_result *res,
		    size_t n);

struct outbound_timing {
	uint64_t lifetime;     /* smtpd.queue_lifetime */
	uint64_t warn_after;   /* smtpd.delay_warning (0: never) */
	uint64_t min_backoff, max_backoff;
};

/* The notifications an attempt's end calls for; the dsn_rcpt fields point
 * into the record. */
struct outbound_notices {
	struct dsn_rcpt *failed;   /* failed and expired recipients */
	size_t n_failed;
	struct dsn_rcpt *delayed;
	size_t n_delayed;
	struct dsn_rcpt *relayed;
	size_t n_relayed;
	bool done;                 /* no recipient is pending: remove the entry */
};

/* Ends an attempt: counts it, expires pending recipients older than the
 * lifetime (failed, 4.4.7), collects the DSNs owed (none for the null
 * sender) and marks them reported, the delay notice once after warn_after,
 * and schedules the next attempt. */
void outbound_finish_attempt(struct queue_record *r, int64_t now, const struct outbound_timing *t,
			     struct outbound_notices *notices_r);
void outbound_notices_free(struct outbound_notices *n);

#endif
