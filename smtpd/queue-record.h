/* The outbound queue record: what congvu-smtpd stores with each queued
 * message (store_txn_queue_add) and what the delivery agent (issue 6) and
 * `congvu-smtpd queue` read and update.
 *
 * Encoding: UTF-8 text, one "KEY VALUE" field per line, first line
 * "congvu-queue 1". Values have bytes below 0x21, 0x7f and '%' written as
 * %XX. Keys: from, envid, ret (FULL|HDRS), body (7BIT|8BITMIME), smtputf8
 * (0|1), auth (the submitting user), client (address), created, next (unix
 * seconds), attempts, error (last error text), and one "rcpt ADDR NOTIFY
 * ORCPT STATUS" line per recipient (NOTIFY: the SMTP_NOTIFY_* bits in
 * decimal; ORCPT or "-"; STATUS pending|sent|failed). Outbound delivery
 * (issue 6) adds "warned 1" (a delay notice was sent) and, after a
 * recipient's line, "rinfo INDEX REPORTED DSN-STATUS MTA DIAG" (REPORTED
 * 0|1; the others escaped, "-" when absent). Unknown keys are
 * kept out of the decoded form but are not an error, so newer writers can
 * add fields. */
#ifndef CONGVU_QUEUE_RECORD_H
#define CONGVU_QUEUE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

enum queue_rcpt_status { QRCPT_PENDING, QRCPT_SENT, QRCPT_FAILED };

struct queue_rcpt {
	char *addr;
	unsigned notify;   /* SMTP_NOTIFY_* */
	char *orcpt;       /* or NULL */
	enum queue_rcpt_status status;
	/* outbound delivery (issue 6): the last result, for logs and DSNs */
	char *dsn_status;  /* "5.1.1", or NULL */
	char *mta;         /* the remote host that gave it, or NULL */
	char *diag;        /* the remote's reply or our reason, or NULL */
	bool reported;     /* the DSN its final status calls for was sent */
};

struct queue_record {
	char *from;        /* "" for the null sender */
	char *envid;       /* or NULL */
	int ret;           /* enum smtp_ret */
	int body;          /* enum smtp_body */
	bool smtputf8;
	char *auth;        /* or NULL */
	char *client;      /* or NULL */
	int64_t created;
	int64_t next_attempt;
	uint32_t attempts;
	char *last_error;  /* or NULL */
	bool warned;       /* a delay notice was sent (issue 6) */
	struct queue_rcpt *rcpts;
	size_t n_rcpts;
};

#define QUEUE_RECORD_MAX_RCPTS 100000

void queue_record_encode(const struct queue_record *r, struct str *out);
/* Returns 0 and fills *r (free with queue_record_free), or -1 with *error_r
 * (static). */
int queue_record_decode(const void *data, size_t len, struct queue_record *r,
			const char **error_r);
void queue_record_free(struct queue_record *r);
/* Appends a recipient (copies). */
void queue_record_add_rcpt(struct queue_record *r, const char *addr, unsigned notify,
			   const char *orcpt);
/* Sets a recipient's last result (copies; NULL clears a field). */
void queue_record_rcpt_info(struct queue_rcpt *q, const char *dsn_status, const char *mta,
			    const char *diag);
/* "queued" (never tried), "deferred" (tried, pending recipients left),
 * "done" or "failed". */
const char *queue_record_status(const struct queue_record *r);

#endif
