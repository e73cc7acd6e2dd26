/* Delivery status notifications; see dsn.h. */
#include "config.h"
#include "dsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void dsn_format_date(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

bool dsn_wanted(unsigned notify, enum dsn_action action)
{
	/* bits of smtp-session.h: NEVER 1, SUCCESS 2, FAILURE 4, DELAY 8 */
	if (notify & 1u)
		return false;
	switch (action) {
	case DSN_FAILED:
		return notify == 0 || (notify & 4u);
	case DSN_DELAYED:
		return notify == 0 || (notify & 8u);
	case DSN_DELIVERED:
	case DSN_RELAYED:
		return (notify & 2u) != 0;
	}
	return false;
}

static bool is_ascii(const char *s)
{
	for (; s != NULL && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Header values built from addresses and replies: no CR or LF may pass. */
static void put_clean(struct str *out, const char *s)
{
	for (; *s; s++)
		str_appendc(out, (*s == '\r' || *s == '\n') ? ' ' : *s);
}

static void put_base64(struct str *out, const unsigned char *d, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)d[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)d[i + 1] << 8;
		if (i + 2 < len)
			v |= d[i + 2];
		str_appendc(out, tab[(v >> 18) & 63]);
		str_appendc(out, tab[(v >> 12) & 63]);
		str_appendc(out, i + 1 < len ? tab[(v >> 6) & 63] : '=');
		str_appendc(out, i + 2 < len ? tab[v & 63] : '=');
	}
}

/* An RFC 2047 encoded word of UTF-8 text (short texts only). */
static void put_encoded_word(struct str *out, const char *s)
{
	str_appends(out, "=?UTF-8?B?");
	put_base64(out, (const unsigned char *)s, strlen(s));
	str_appends(out, "?=");
}

static const char *action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	}
	return "failed";
}

static const char *default_status(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "5.0.0";
	case DSN_DELAYED:
		return "4.0.0";
	case DSN_DELIVERED:
	case DSN_RELAYED:
		break;
	}
	return "2.0.0";
}

static void put_addr_field(struct str *out, const char *name, const char *typed_or_addr,
			   bool typed)
{
	str_appends(out, name);
	str_appends(out, ": ");
	if (typed) {
		/* ORCPT as given: "rfc822;addr" */
		put_clean(out, typed_or_addr);
	} else {
		str_appends(out, is_ascii(typed_or_addr) ? "rfc822; " : "utf-8; ");
		put_clean(out, typed_or_addr);
	}
	str_appends(out, "\r\n");
}

static void put_text(struct str *out, const struct dsn_params *p, enum dsn_action action)
{
	char until[64] = "";
	if (p->will_retry_until > 0)
		dsn_format_date(p->will_retry_until, until, sizeof(until));
	str_printf(out, "Đây là thư tự động của hệ thống thư điện tử %s.\r\n\r\n", p->reporting_mta);
	switch (action) {
	case DSN_FAILED:
		str_appends(out, "Rất tiếc, thư của bạn không gửi được tới người nhận dưới đây. "
				 "Thư gốc được gửi kèm.\r\n");
		break;
	case DSN_DELAYED:
		str_printf(out, "Thư của bạn chưa gửi được tới người nhận dưới đây. Hệ thống vẫn "
				"tiếp tục gửi lại cho đến %s; bạn không cần gửi lại.\r\n", until);
		break;
	case DSN_DELIVERED:
	case DSN_RELAYED:
		str_appends(out, "Thư của bạn đã được chuyển tới người nhận dưới đây.\r\n");
		break;
	}
	str_printf(out, "\r\nThis is the mail system at %s.\r\n\r\n", p->reporting_mta);
	switch (action) {
	case DSN_FAILED:
		str_appends(out, "Your message could not be delivered to the recipients below. "
				 "The original message is attached.\r\n");
		break;
	case DSN_DELAYED:
		str_printf(out, "Your message could not be delivered yet to the recipients below. "
				"Delivery will be retried until %s; you do not need to send it "
				"again.\r\n", until);
		break;
	case DSN_DELIVERED:
	case DSN_RELAYED:
		str_appends(out, "Your message was passed on to the recipients below.\r\n");
		break;
	}
	str_appends(out, "\r\n");
	for (size_t i = 0; i < p->n_rcpts; i++) {
		const struct dsn_rcpt *r = &p->rcpts[i];
		str_appends(out, "<");
		put_clean(out, r->addr);
		str_appends(out, ">");
		if (r->remote_mta != NULL) {
			str_appends(out, " (");
			put_clean(out, r->remote_mta);
			str_appends(out, ")");
		}
		str_appends(out, ": ");
		put_clean(out, r->diag ? r->diag : r->reason ? r->reason : action_name(r->action));
		str_appends(out, "\r\n");
	}
}

static size_t header_len(const char *m, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (m[i] == '\r' && m[i + 1] == '\n' && m[i + 2] == '\r' && m[i + 3] == '\n')
			return i + 2;
	return len;
}

void dsn_build(const struct dsn_params *p, struct str *out)
{
	enum dsn_action action = p->n_rcpts > 0 ? p->rcpts[0].action : DSN_FAILED;
	bool global = !is_ascii(p->sender);
	for (size_t i = 0; i < p->n_rcpts; i++)
		if (!is_ascii(p->rcpts[i].addr) || !is_ascii(p->rcpts[i].orcpt))
			global = true;
	char date[64], arrival[64];
	dsn_format_date(p->now, date, sizeof(date));
	dsn_format_date(p->arrival, arrival, sizeof(arrival));
	char boundary[96];
	snprintf(boundary, sizeof(boundary), "=_congvu_dsn_%" PRIu64 "_%" PRId64 "_=", p->queue_id,
		 p->now);

	static const char *const subjects[][2] = {
		[DSN_FAILED] = { "Undelivered Mail Returned to Sender",
				 "Thư không gửi được / Undelivered Mail Returned to Sender" },
		[DSN_DELAYED] = { "Delayed Mail (still being retried)",
				  "Thư bị chậm, đang gửi lại / Delayed Mail (still being retried)" },
		[DSN_DELIVERED] = { "Successful Mail Delivery Report",
				    "Thư đã được chuyển / Successful Mail Delivery Report" },
		[DSN_RELAYED] = { "Successful Mail Delivery Report",
				  "Thư đã được chuyển / Successful Mail Delivery Report" },
	};
	str_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", p->reporting_mta);
	str_appends(out, "To: <");
	put_clean(out, p->sender);
	str_appends(out, ">\r\nSubject: ");
	put_encoded_word(out, subjects[action][1]);
	str_printf(out, "\r\nDate: %s\r\n", date);
	str_printf(out, "Message-ID: <%" PRId64 ".%" PRIu64 ".dsn@%s>\r\n", p->now, p->queue_id,
		   p->reporting_mta);
	str_appends(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	str_printf(out,
		   "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n"
		   "Content-Transfer-Encoding: 8bit\r\n\r\n",
		   global ? "global-delivery-status" : "delivery-status", boundary);
	str_appends(out, "This is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people */
	str_printf(out, "--%s\r\nContent-Description: Notification\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n"
			"Content-Transfer-Encoding: 8bit\r\n\r\n", boundary);
	put_text(out, p, action);
	str_appends(out, "\r\n");

	/* 2: for programs (RFC 3464 2.2, 2.3) */
	str_printf(out, "--%s\r\nContent-Description: Delivery report\r\n"
			"Content-Type: message/%s\r\n\r\n", boundary,
		   global ? "global-delivery-status" : "delivery-status");
	str_appends(out, "Reporting-MTA: dns; ");
	put_clean(out, p->reporting_mta);
	str_appends(out, "\r\n");
	if (p->envid != NULL && p->envid[0] != '\0') {
		str_appends(out, "Original-Envelope-Id: ");
		put_clean(out, p->envid);
		str_appends(out, "\r\n");
	}
	str_printf(out, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < p->n_rcpts; i++) {
		const struct dsn_rcpt *r = &p->rcpts[i];
		str_appends(out, "\r\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL)
			put_addr_field(out, "Original-Recipient", r->orcpt, true);
		put_addr_field(out, "Final-Recipient", r->addr, false);
		str_printf(out, "Action: %s\r\n", action_name(r->action));
		str_appends(out, "Status: ");
		put_clean(out, r->status ? r->status : default_status(r->action));
		str_appends(out, "\r\n");
		if (r->remote_mta != NULL) {
			str_appends(out, "Remote-MTA: dns; ");
			put_clean(out, r->remote_mta);
			str_appends(out, "\r\n");
		}
		if (r->diag != NULL) {
			str_appends(out, "Diagnostic-Code: smtp; ");
			put_clean(out, r->diag);
			str_appends(out, "\r\n");
		} else if (r->reason != NULL) {
			str_appends(out, "X-Congvu-Reason: ");
			put_clean(out, r->reason);
			str_appends(out, "\r\n");
		}
		if (r->last_attempt > 0) {
			char la[64];
			dsn_format_date(r->last_attempt, la, sizeof(la));
			str_printf(out, "Last-Attempt-Date: %s\r\n", la);
		}
		if (r->action == DSN_DELAYED && p->will_retry_until > 0) {
			char wr[64];
			dsn_format_date(p->will_retry_until, wr, sizeof(wr));
			str_printf(out, "Will-Retry-Until: %s\r\n", wr);
		}
	}
	str_appends(out, "\r\n");

	/* 3: the original, whole or its header (RFC 3461 4.3 RET) */
	if (p->message != NULL) {
		const char *m = p->message;
		size_t len = p->message_len;
		bool full = action == DSN_FAILED ? p->ret != 2 : p->ret == 1;
		if (len > DSN_RETURN_MAX)
			full = false;
		if (!full)
			len = header_len(m, len);
		str_printf(out, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n", boundary,
			   full ? "Undelivered Message" : "Message Headers",
			   full ? (global ? "message/global" : "message/rfc822")
				: (global ? "message/global-headers" : "text/rfc822-headers"));
		str_appends(out, "Content-Transfer-Encoding: 8bit\r\n\r\n");
		str_append(out, m, len);
		if (len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n')
			str_appends(out, "\r\n");
		str_appends(out, "\r\n");
	}
	str_printf(out, "--%s--\r\n", boundary);
}
