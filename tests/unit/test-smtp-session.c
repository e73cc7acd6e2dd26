/* The SMTP/LMTP session core fed scripted conversations, each whole, one
 * byte at a time, and with the owner answering stages later instead of at
 * once; the replies must be the same every way. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"
#include "smtp-session.h"
#include "str.h"
#include "xalloc.h"

struct harness {
	struct smtp_session *s;
	struct str out;
	struct str messages;  /* each accepted message, then "\n----\n" */
	struct str rcpts;     /* accepted recipients "path;" with DSN info */
	bool closed, starttls;
	bool deferred;        /* answer stages from the driver, not at once */
	bool lmtp;
	int pending;          /* stage waiting for an answer, or -1 */
	int stages[SMTP_STAGE_EOM + 1];
};

/* The owner's decisions, as the daemon's policy would make them. */
static const char *decide(struct harness *h, enum smtp_stage stage)
{
	struct smtp_tx *tx = smtp_session_tx(h->s);
	switch (stage) {
	case SMTP_STAGE_RCPT:
		if (strncmp(tx->pending.path, "unknown@", 8) == 0)
			return "550 5.1.1 <unknown@lamdong.gov.vn>: Recipient address rejected";
		if (strncmp(tx->pending.path, "full@", 5) == 0)
			return "452 4.2.2 Mailbox full";
		str_printf(&h->rcpts, "%s", tx->pending.path);
		if (tx->pending.notify)
			str_printf(&h->rcpts, " notify=%u", tx->pending.notify);
		if (tx->pending.orcpt)
			str_printf(&h->rcpts, " orcpt=%s", tx->pending.orcpt);
		str_appends(&h->rcpts, ";");
		return NULL;
	case SMTP_STAGE_AUTH: {
		const char *user, *pass;
		smtp_session_auth_creds(h->s, &user, &pass);
		if (strcmp(user, "demo@lamdong.gov.vn") == 0 && strcmp(pass, "secret") == 0) {
			smtp_session_set_auth_user(h->s, user);
			return NULL;
		}
		return "535 5.7.8 Authentication credentials invalid";
	}
	case SMTP_STAGE_EOM:
		/* skip the Received: header, which holds a date */
		str_append(&h->messages, tx->data.s + tx->received_len,
			   tx->data.len - tx->received_len);
		str_appends(&h->messages, "\n----\n");
		if (strncmp(tx->data.s, "Received: from ", 15) != 0)
			return "554 5.0.0 no Received header";
		return NULL;
	default:
		return NULL;
	}
}

static void answer(struct harness *h, enum smtp_stage stage)
{
	if (stage == SMTP_STAGE_EOM && h->lmtp) {
		const char *reps[8];
		size_t n = smtp_session_tx(h->s)->n_rcpts;
		decide(h, stage);
		for (size_t i = 0; i < n && i < 8; i++)
			reps[i] = strncmp(smtp_session_tx(h->s)->rcpts[i].path, "quota", 5) == 0
					  ? "452 4.2.2 Mailbox full"
					  : "250 2.0.0 Ok";
		smtp_session_resume_lmtp(h->s, reps, n);
		return;
	}
	smtp_session_resume(h->s, decide(h, stage));
}

static void h_write(void *ctx, const void *data, size_t len)
{
	str_append(&((struct harness *)ctx)->out, data, len);
}

static void h_stage(void *ctx, enum smtp_stage stage)
{
	struct harness *h = ctx;
	h->stages[stage]++;
	if (h->deferred)
		h->pending = (int)stage;
	else
		answer(h, stage);
}

static void h_starttls(void *ctx)
{
	((struct harness *)ctx)->starttls = true;
}

static void h_close(void *ctx)
{
	((struct harness *)ctx)->closed = true;
}

static const struct smtp_session_hooks hooks = {
	.write = h_write, .stage = h_stage, .starttls = h_starttls, .close = h_close,
};

static struct smtp_session_config base_config(enum smtp_service service)
{
	struct smtp_session_config c = {
		.service = service,
		.hostname = "mx.lamdong.gov.vn",
		.max_message_size = 4096,
		.max_recipients = 3,
		.max_errors = 5,
		.starttls_available = true,
		.client_addr = "192.0.2.1",
		.session_id = "abc123",
	};
	return c;
}

/* Feeds input in slices of step bytes (0: all at once). */
static void feed(struct harness *h, const char *input, size_t len, size_t step)
{
	struct str buf = STR_INIT;
	size_t given = 0;
	for (int guard = 0; guard < 1000000; guard++) {
		if (h->pending >= 0) {
			int st = h->pending;
			h->pending = -1;
			answer(h, (enum smtp_stage)st);
		}
		if (smtp_session_closed(h->s) || h->starttls)
			break;
		if (given < len && (buf.len == 0 || step > 0)) {
			size_t n = step == 0 ? len - given : (len - given < step ? len - given : step);
			str_append(&buf, input + given, n);
			given += n;
		}
		size_t used = smtp_session_input(h->s, buf.s ? buf.s : "", buf.len);
		memmove(buf.s, buf.s + used, buf.len - used);
		buf.len -= used;
		if (given == len && used == 0 && h->pending < 0)
			break;
	}
	str_free(&buf);
}

static void harness_init(struct harness *h, const struct smtp_session_config *c, bool deferred)
{
	memset(h, 0, sizeof(*h));
	h->pending = -1;
	h->deferred = deferred;
	h->lmtp = c->service == SMTP_SERVICE_LMTP;
	h->s = smtp_session_new(c, &hooks, h);
	smtp_session_start(h->s);
}

static void harness_free(struct harness *h)
{
	smtp_session_free(&h->s);
	str_free(&h->out);
	str_free(&h->messages);
	str_free(&h->rcpts);
}

/* Runs a script three ways; checks they agree and returns the output of
 * the first (caller frees), and the messages in *msgs_r (may be NULL). */
static char *run3(const struct smtp_session_config *c, const char *script, char **msgs_r,
		  char **rcpts_r)
{
	char *first = NULL, *first_msgs = NULL, *first_rcpts = NULL;
	size_t len = strlen(script);
	struct { size_t step; bool deferred; } ways[] = { { 0, false }, { 1, false }, { 7, true } };
	for (size_t w = 0; w < 3; w++) {
		struct harness h;
		harness_init(&h, c, ways[w].deferred);
		if (h.pending >= 0) {
			h.pending = -1;
			answer(&h, SMTP_STAGE_CONNECT);
		}
		feed(&h, script, len, ways[w].step);
		char *o = xstrdup(h.out.s ? h.out.s : "");
		char *m = xstrdup(h.messages.s ? h.messages.s : "");
		char *r = xstrdup(h.rcpts.s ? h.rcpts.s : "");
		if (first == NULL) {
			first = o;
			first_msgs = m;
			first_rcpts = r;
		} else {
			ck_assert_str_eq(o, first);
			ck_assert_str_eq(m, first_msgs);
			ck_assert_str_eq(r, first_rcpts);
			free(o);
			free(m);
			free(r);
		}
		harness_free(&h);
	}
	if (msgs_r != NULL)
		*msgs_r = first_msgs;
	else
		free(first_msgs);
	if (rcpts_r != NULL)
		*rcpts_r = first_rcpts;
	else
		free(first_rcpts);
	return first;
}

/* Whether the replies contain these codes in this order (one per line). */
static void expect_codes(const char *out, const char *codes)
{
	struct str got = STR_INIT;
	for (const char *p = out; *p;) {
		const char *eol = strstr(p, "\r\n");
		ck_assert_ptr_nonnull(eol);
		if (eol - p >= 4 && p[3] == ' ') {
			str_append(&got, p, 3);
			str_appendc(&got, ' ');
		}
		p = eol + 2;
	}
	if (got.len > 0)
		got.s[--got.len] = '\0';
	ck_assert_msg(strcmp(got.s ? got.s : "", codes) == 0, "codes '%s', expected '%s'\n%s",
		      got.s ? got.s : "", codes, out);
	str_free(&got);
}

START_TEST(test_basic)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	char *msgs;
	char *out = run3(&c,
			 "EHLO client.example\r\n"
			 "MAIL FROM:<a@example.com> SIZE=100 BODY=8BITMIME\r\n"
			 "RCPT TO:<demo@lamdong.gov.vn>\r\n"
			 "DATA\r\n"
			 "Subject: hi\r\n\r\n..dotted\r\n.\r\n"
			 "QUIT\r\n",
			 &msgs, NULL);
	expect_codes(out, "220 250 250 250 354 250 221");
	ck_assert_ptr_nonnull(strstr(out, "250-PIPELINING\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "250-SIZE 4096\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "250-STARTTLS\r\n"));
	ck_assert_ptr_null(strstr(out, "AUTH")); /* not before TLS */
	ck_assert_ptr_nonnull(strstr(out, "250 CHUNKING\r\n"));
	ck_assert_str_eq(msgs, "Subject: hi\r\n\r\n.dotted\r\n\n----\n");
	free(out);
	free(msgs);
}
END_TEST

START_TEST(test_sequence_errors)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	c.max_errors = 20;
	char *out = run3(&c,
			 "MAIL FROM:<a@b.c>\r\n"        /* 503: no HELO */
			 "HELO x\r\n"
			 "RCPT TO:<demo@lamdong.gov.vn>\r\n" /* 503 need MAIL */
			 "DATA\r\n"                     /* 503 */
			 "MAIL FROM:<a@b.c>\r\n"
			 "MAIL FROM:<a@b.c>\r\n"        /* 503 nested */
			 "DATA\r\n"                     /* 554 no valid recipients */
			 "FOO\r\n"                      /* 502 */
			 "MAIL FROM:a@b.c\r\n"          /* 503 nested (checked first) */
			 "RSET\r\n"
			 "MAIL FROM:a@b.c\r\n"          /* 501 brackets */
			 "MAIL FROM:<a@@b>\r\n"         /* 501 */
			 "MAIL FROM:<a@b.c> FOO=1\r\n"  /* 555 */
			 "MAIL FROM:<a@b.c> SIZE=99999\r\n" /* 552 */
			 "NOOP\r\nVRFY x\r\nEXPN x\r\n"
			 "STARTTLS now\r\n"              /* 501 */
			 "AUTH PLAIN\r\n"               /* 503 needs EHLO */
			 "QUIT\r\n",
			 NULL, NULL);
	expect_codes(out, "220 503 250 503 503 250 503 554 502 503 250 501 501 555 552 250 252 "
			  "502 501 503 221");
	free(out);
}
END_TEST

START_TEST(test_recipients)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	c.max_errors = 20;
	char *rcpts;
	char *out = run3(&c,
			 "EHLO x\r\nMAIL FROM:<>\r\n"
			 "RCPT TO:<unknown@lamdong.gov.vn>\r\n"
			 "RCPT TO:<full@lamdong.gov.vn>\r\n"
			 "RCPT TO:<a@lamdong.gov.vn> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@x.vn\r\n"
			 "RCPT TO:<Postmaster>\r\n"
			 "RCPT TO:<@relay.example:c@lamdong.gov.vn>\r\n"
			 "RCPT TO:<d@lamdong.gov.vn>\r\n" /* 452 4.5.3 too many */
			 "RCPT TO:<e@lamdong.gov.vn> NOTIFY=NEVER,DELAY\r\n" /* 501 */
			 "RCPT TO:<f@lamdong.gov.vn> BOGUS\r\n"
			 "RCPT TO:<sp ace@lamdong.gov.vn>\r\n"
			 "RCPT TO:<\"quoted local\"@lamdong.gov.vn>\r\n"
			 "RCPT TO:<ü@lamdong.gov.vn>\r\n"
			 "QUIT\r\n",
			 NULL, &rcpts);
	expect_codes(out, "220 250 250 550 452 250 250 250 452 452 452 452 452 452 221");
	ck_assert_ptr_nonnull(strstr(out, "452 4.5.3"));
	ck_assert_str_eq(rcpts, "a@lamdong.gov.vn notify=6 orcpt=rfc822;a+b@x.vn;Postmaster;"
				"c@lamdong.gov.vn;");
	free(out);
	free(rcpts);
	/* the syntax checks, below the recipient limit */
	c.max_recipients = 100;
	out = run3(&c,
		   "EHLO x\r\nMAIL FROM:<>\r\n"
		   "RCPT TO:<e@lamdong.gov.vn> NOTIFY=NEVER,DELAY\r\n"
		   "RCPT TO:<f@lamdong.gov.vn> BOGUS\r\n"
		   "RCPT TO:<sp ace@lamdong.gov.vn>\r\n"
		   "RCPT TO:<\"quoted local\"@lamdong.gov.vn>\r\n"
		   "RCPT TO:<\xc3\xbc@lamdong.gov.vn>\r\n" /* UTF-8 without SMTPUTF8 */
		   "RCPT TO:<>\r\n"
		   "RCPT TO:<a@-bad.vn>\r\n"
		   "QUIT\r\n",
		   NULL, NULL);
	expect_codes(out, "220 250 250 501 555 501 250 501 501 501 221");
	free(out);
	out = run3(&c,
		   "EHLO x\r\nMAIL FROM:<\xc3\xa1@x.vn> SMTPUTF8\r\n"
		   "RCPT TO:<\xc3\xbc@lamdong.gov.vn>\r\nQUIT\r\n",
		   NULL, NULL);
	expect_codes(out, "220 250 250 250 221");
	free(out);
}
END_TEST

START_TEST(test_smuggling)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	char *msgs;
	/* "\n.\n" and "\r\n.\r" do not end the data: the smuggled MAIL is
	 * message text, and the message is refused for its bare LF/CR */
	char *out = run3(&c,
			 "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\nDATA\r\n"
			 "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@b.c>\r\n"
			 "RCPT TO:<victim@lamdong.gov.vn>\r\nDATA\r\n.\r\n"
			 "QUIT\r\n",
			 &msgs, NULL);
	expect_codes(out, "220 250 250 250 354 550 221");
	ck_assert_ptr_nonnull(strstr(out, "550 5.6.0 Message refused: bare CR or LF"));
	ck_assert_str_eq(msgs, "");
	free(out);
	free(msgs);
	out = run3(&c,
		   "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\nDATA\r\n"
		   "a\r\n.\rb\r\n.\r\nQUIT\r\n",
		   &msgs, NULL);
	expect_codes(out, "220 250 250 250 354 550 221");
	free(out);
	free(msgs);
	/* bare LF and bare CR in commands */
	out = run3(&c, "EHLO x\nNOOP\rNOOP\r\nHELO y\r\nQUIT\r\n", NULL, NULL);
	expect_codes(out, "220 500 500 250 221");
	free(out);
}
END_TEST

START_TEST(test_long_lines)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	c.max_message_size = 100000;
	struct str script = STR_INIT;
	str_appends(&script, "EHLO x\r\nNOOP ");
	for (int i = 0; i < 1500; i++)
		str_appendc(&script, 'a');
	str_appends(&script, "\r\nNOOP ");
	for (int i = 0; i < 993; i++) /* exactly 1000 with "NOOP " and CRLF */
		str_appendc(&script, 'b');
	str_appends(&script, "\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\nDATA\r\n");
	for (int i = 0; i < 1001; i++)
		str_appendc(&script, 'c');
	str_appends(&script, "\r\n.\r\nQUIT\r\n");
	char *out = run3(&c, script.s, NULL, NULL);
	expect_codes(out, "220 250 500 250 250 250 354 550 221");
	ck_assert_ptr_nonnull(strstr(out, "500 5.5.2 Error: line too long"));
	ck_assert_ptr_nonnull(strstr(out, "longer than 1000"));
	free(out);
	str_free(&script);
}
END_TEST

START_TEST(test_size_limit)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	struct str script = STR_INIT;
	str_appends(&script, "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\nDATA\r\n");
	for (int i = 0; i < 100; i++)
		str_appends(&script, "0123456789012345678901234567890123456789012345678901234567890\r\n");
	str_appends(&script, ".\r\nMAIL FROM:<a@b.c>\r\nQUIT\r\n");
	char *out = run3(&c, script.s, NULL, NULL);
	expect_codes(out, "220 250 250 250 354 552 250 221");
	free(out);
	str_free(&script);
}
END_TEST

START_TEST(test_error_limit)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	char *out = run3(&c, "A\r\nB\r\nC\r\nD\r\nE\r\nNOOP\r\n", NULL, NULL);
	expect_codes(out, "220 502 502 502 502 502 421");
	free(out);
}
END_TEST

START_TEST(test_auth)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_SUBMISSION);
	c.max_errors = 20;
	/* before TLS: no AUTH, mail refused */
	char *out = run3(&c,
			 "EHLO x\r\nAUTH PLAIN AGRlbW9AbGFtZG9uZy5nb3Yudm4Ac2VjcmV0\r\n"
			 "MAIL FROM:<demo@lamdong.gov.vn>\r\nSTARTTLS\r\nNOOP\r\n",
			 NULL, NULL);
	expect_codes(out, "220 250 538 530 220");
	free(out);
	/* after TLS */
	struct harness h;
	harness_init(&h, &c, false);
	const char *pre = "EHLO x\r\nSTARTTLS\r\nEHLO injected\r\n";
	feed(&h, pre, strlen(pre), 0);
	ck_assert(h.starttls);
	smtp_session_tls_started(h.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
	h.starttls = false;
	char plain[128], user[64], pass[64], bad[128], other[128];
	base64_encode("\0demo@lamdong.gov.vn\0secret", 27, plain);
	/* right password, but asking to act as another user */
	base64_encode("ceo@lamdong.gov.vn\0demo@lamdong.gov.vn\0secret", 45, other);
	base64_encode("demo@lamdong.gov.vn", 19, user);
	base64_encode("secret", 6, pass);
	base64_encode("\0demo@lamdong.gov.vn\0wrong", 26, bad);
	struct str s2 = STR_INIT;
	str_truncate(&h.out, 0);
	str_printf(&s2,
		   "MAIL FROM:<x@y.z>\r\n" /* 503: EHLO again first */
		   "EHLO x\r\n"
		   "MAIL FROM:<x@y.z>\r\n" /* 530 */
		   "AUTH PLAIN %s\r\n"     /* 535 */
		   "AUTH LOGIN\r\n%s\r\n*\r\n" /* 334 334 501 cancelled */
		   "AUTH CRAM-MD5\r\n"     /* 504 */
		   "AUTH PLAIN %s\r\n"     /* 535: authzid of another user */
		   "AUTH LOGIN\r\n%s\r\n%s\r\n" /* 334 334 235 */
		   "AUTH PLAIN %s\r\n"     /* 503 already */
		   "MAIL FROM:<demo@lamdong.gov.vn>\r\nRCPT TO:<a@lamdong.gov.vn>\r\n"
		   "DATA\r\nx\r\n.\r\nQUIT\r\n",
		   bad, user, other, user, pass, plain);
	feed(&h, s2.s, s2.len, 3);
	expect_codes(h.out.s,
		     "503 250 530 535 334 334 501 504 535 334 334 235 503 250 250 354 250 221");
	ck_assert_ptr_nonnull(strstr(h.out.s, "250-AUTH PLAIN LOGIN\r\n"));
	ck_assert_ptr_null(strstr(h.out.s, "STARTTLS"));
	ck_assert_str_eq(smtp_session_auth_user(h.s), "demo@lamdong.gov.vn");
	ck_assert_ptr_nonnull(strstr(h.messages.s, "x\r\n"));
	harness_free(&h);
	str_free(&s2);
}
END_TEST

START_TEST(test_lmtp)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_LMTP);
	char *out = run3(&c,
			 "EHLO x\r\nLHLO edge\r\nMAIL FROM:<a@b.c>\r\n"
			 "RCPT TO:<lmtp1@lamdong.gov.vn>\r\nRCPT TO:<quota@lamdong.gov.vn>\r\n"
			 "RCPT TO:<unknown@lamdong.gov.vn>\r\n"
			 "DATA\r\nSubject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n",
			 NULL, NULL);
	expect_codes(out, "220 502 250 250 250 250 550 354 250 452 221");
	ck_assert_ptr_nonnull(strstr(out, "220 mx.lamdong.gov.vn LMTP"));
	ck_assert_ptr_null(strstr(out, "STARTTLS"));
	free(out);
}
END_TEST

START_TEST(test_bdat)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	c.max_errors = 20;
	char *msgs;
	char *out = run3(&c,
			 "EHLO x\r\n"
			 "BDAT 5\r\nhello"             /* 503 after the chunk */
			 "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\n"
			 "BDAT 9\r\nSubject: "
			 "BDAT 4\r\nx\r\n\r"
			 "BDAT 7 LAST\r\n\n.body!"        /* no final CRLF: added */
			 "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\n"
			 "BDAT 0 LAST\r\n"
			 "BDAT x\r\n",
			 &msgs, NULL);
	expect_codes(out, "220 250 503 250 250 250 250 250 250 250 250 501 421");
	ck_assert_str_eq(msgs, "Subject: x\r\n\r\n.body!\r\n\n----\n\n----\n");
	free(out);
	free(msgs);
}
END_TEST

/* "BDAT 0 [LAST]" as the last bytes the client sends: the reply comes at
 * once, as the client waits for it before sending anything more. */
START_TEST(test_bdat_zero_at_end)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	c.max_errors = 20;
	char *msgs;
	char *out = run3(&c,
			 "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\n"
			 "BDAT 0 LAST\r\n",
			 &msgs, NULL);
	expect_codes(out, "220 250 250 250 250");
	ck_assert_str_eq(msgs, "\n----\n");
	free(out);
	free(msgs);
	out = run3(&c,
		   "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\n"
		   "BDAT 4\r\nhi\r\nBDAT 0\r\n",
		   NULL, NULL);
	expect_codes(out, "220 250 250 250 250 250");
	free(out);
	out = run3(&c, "EHLO x\r\nBDAT 0 LAST\r\n", NULL, NULL);
	expect_codes(out, "220 250 503");
	free(out);
	out = run3(&c,
		   "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\n"
		   "BDAT 4\r\nhi\r\nBDAT 0 LAST\r\n",
		   &msgs, NULL);
	expect_codes(out, "220 250 250 250 250 250");
	ck_assert_str_eq(msgs, "hi\r\n\n----\n");
	free(out);
	free(msgs);
}
END_TEST

START_TEST(test_parsers)
{
	char *path;
	const char *params, *err;
	ck_assert_int_eq(smtp_parse_path("<a.b@c.d> SIZE=1", false, false, &path, &params, &err), 0);
	ck_assert_str_eq(path, "a.b@c.d");
	ck_assert_str_eq(params, "SIZE=1");
	free(path);
	ck_assert_int_eq(smtp_parse_path("<>", true, false, &path, &params, &err), 0);
	ck_assert_str_eq(path, "");
	free(path);
	ck_assert_int_eq(smtp_parse_path("<>", false, false, &path, &params, &err), -1);
	ck_assert_int_eq(smtp_parse_path("<a..b@c.d>", false, false, &path, &params, &err), -1);
	ck_assert_int_eq(smtp_parse_path("<.a@c.d>", false, false, &path, &params, &err), -1);
	ck_assert_int_eq(smtp_parse_path("<a@[192.0.2.1]>", false, false, &path, &params, &err), 0);
	free(path);
	ck_assert_int_eq(smtp_parse_path("<a@c.d>x", false, false, &path, &params, &err), -1);
	ck_assert_int_eq(smtp_parse_path("<a@c.d", false, false, &path, &params, &err), -1);
	char longp[400];
	memset(longp, 'a', sizeof(longp));
	longp[0] = '<';
	memcpy(longp + 300, "@c.d>", 6);
	ck_assert_int_eq(smtp_parse_path(longp, false, false, &path, &params, &err), -1);
	char x[32];
	ck_assert_int_eq(smtp_xtext_decode("a+2Bb+3D", x, sizeof(x)), 0);
	ck_assert_str_eq(x, "a+b=");
	ck_assert_int_eq(smtp_xtext_decode("a+2b", x, sizeof(x)), -1);
	ck_assert_int_eq(smtp_xtext_decode("a=b", x, sizeof(x)), -1);
	ck_assert_int_eq(smtp_xtext_decode("abcdef", x, 4), -1);
}
END_TEST

START_TEST(test_starttls_pipelining)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	struct harness h;
	harness_init(&h, &c, false);
	/* the session stops consuming at STARTTLS: the rest is the
	 * connection's to discard */
	const char *in = "EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b.c>\r\n";
	size_t used = smtp_session_input(h.s, in, strlen(in));
	ck_assert(h.starttls);
	ck_assert_uint_eq(used, strlen("EHLO x\r\nSTARTTLS\r\n"));
	ck_assert_uint_eq(smtp_session_input(h.s, in + used, strlen(in + used)), 0);
	smtp_session_tls_started(h.s, "TLSv1.3", "X");
	h.starttls = false;
	expect_codes(h.out.s, "220 250 220");
	str_truncate(&h.out, 0);
	const char *in2 = "EHLO y\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@lamdong.gov.vn>\r\nDATA\r\nz\r\n.\r\n";
	feed(&h, in2, strlen(in2), 0);
	expect_codes(h.out.s, "250 250 250 354 250");
	ck_assert_ptr_nonnull(strstr(h.messages.s, "z\r\n"));
	harness_free(&h);
}
END_TEST

START_TEST(test_timeout_and_disconnect)
{
	struct smtp_session_config c = base_config(SMTP_SERVICE_MX);
	struct harness h;
	harness_init(&h, &c, false);
	smtp_session_timeout(h.s);
	ck_assert(h.closed);
	ck_assert_ptr_nonnull(strstr(h.out.s, "421 4.4.2"));
	ck_assert_uint_eq(smtp_session_input(h.s, "NOOP\r\n", 6), 0);
	harness_free(&h);
}
END_TEST

static Suite *smtp_suite(void)
{
	Suite *s = suite_create("smtp-session");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_sequence_errors);
	tcase_add_test(tc, test_recipients);
	tcase_add_test(tc, test_smuggling);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_error_limit);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_lmtp);
	tcase_add_test(tc, test_bdat);
	tcase_add_test(tc, test_bdat_zero_at_end);
	tcase_add_test(tc, test_parsers);
	tcase_add_test(tc, test_starttls_pipelining);
	tcase_add_test(tc, test_timeout_and_disconnect);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smtp_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
