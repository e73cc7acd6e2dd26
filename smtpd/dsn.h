/* Delivery status notifications (RFC 3464, RFC 3461 6): the message that
 * tells a sender what became of some of its recipients. A multipart/report
 * (RFC 6522) with report-type=delivery-status of three parts: a text for
 * people (Vietnamese and English), the machine-readable
 * message/delivery-status (message/global-delivery-status with utf-8
 * address types when an address is not ASCII, RFC 6533), and the original
 * message (message/rfc822) or its header (text/rfc822-headers).
 *
 * The caller decides who gets a DSN (never the null sender: RFC 3461 6.2,
 * RFC 5321 6.1) and which recipients it covers (their NOTIFY). */
#ifndef CONGVU_DSN_H
#define CONGVU_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED };

struct dsn_rcpt {
	const char *addr;          /* the final recipient */
	const char *orcpt;         /* decoded "rfc822;addr" (ORCPT), or NULL */
	enum dsn_action action;
	const char *status;        /* "5.1.1"; NULL: the class default of the action */
	const char *remote_mta;    /* the host that answered, or NULL */
	const char *diag;          /* the remote's reply "550 5.1.1 ...", or NULL */
	const char *reason;        /* our own explanation when there is no reply, or NULL */
	int64_t last_attempt;      /* unix time, 0: none */
};

/* Largest original message returned whole; beyond it only the header. */
#define DSN_RETURN_MAX (10 * 1024 * 1024)

struct dsn_params {
	const char *reporting_mta;   /* our host name */
	const char *sender;          /* the original envelope sender (To:) */
	const char *envid;           /* ENVID, or NULL */
	int ret;                     /* 0 not given, 1 FULL, 2 HDRS */
	int64_t arrival;             /* when the message was accepted */
	int64_t will_retry_until;    /* for delayed recipients, else 0 */
	int64_t now;
	uint64_t queue_id;           /* for the Message-ID and boundary */
	const struct dsn_rcpt *rcpts;
	size_t n_rcpts;
	const void *message;         /* the original message (CRLF), may be NULL */
	size_t message_len;
};

/* Appends the complete notification (header and body, CRLF line ends) to
 * out. Its Subject and text follow the first recipient's action. */
void dsn_build(const struct dsn_params *p, struct str *out);

/* RFC 5322 date-time of t in UTC, e.g. "Fri, 27 Nov 2026 10:50:56 +0000". */
void dsn_format_date(int64_t t, char *buf, size_t size);

/* Whether the recipient's NOTIFY asks for a DSN of this action. NOTIFY not
 * given means FAILURE and DELAY (RFC 3461 4.1 leaves the default to us). */
bool dsn_wanted(unsigned notify, enum dsn_action action);

#endif
