/* Outbound delivery cores: the SMTP client fed scripted server replies
 * (each script whole and one byte at a time, with the same transcript),
 * reply parsing, the TLS policy table, the retry schedule, the queue
 * record's outbound fields, attempt results and DSNs (RFC 3464). */
#include "config.h"

#include <check.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dane.h"
#include "dns-resolver.h"
#include "dsn.h"
#include "mta-sts.h"
#include "outbound-client.h"
#include "outbound-sched.h"
#include "queue-record.h"
#include "str.h"
#include "tls-policy.h"
#include "xalloc.h"

/* ---- the client, scripted ---- */

/* Steps: "S:" server bytes, "C:" the client's expected output since the
 * last check, "TLS" / "TLS-UNVERIFIED" the handshake finishing, "EOF" the
 * connection closing. */
static struct smtpc *run_script(const struct smtpc_params *p, const char *const *steps,
				bool bytewise)
{
	struct smtpc *c = smtpc_new(p);
	struct str got = STR_INIT;
	for (size_t i = 0; steps[i] != NULL; i++) {
		const char *st = steps[i];
		if (strncmp(st, "S:", 2) == 0) {
			const char *d = st + 2;
			size_t len = strlen(d), off = 0;
			while (off < len && !smtpc_done(c)) {
				size_t n = bytewise ? 1 : len - off, used;
				enum smtpc_event ev = smtpc_feed(c, d + off, n, &used);
				off += used;
				ck_assert(used <= n);
				if (ev == SMTPC_EV_STARTTLS || ev == SMTPC_EV_DONE)
					break;
			}
		} else if (strncmp(st, "TLS", 3) == 0) {
			smtpc_tls_ready(c, strcmp(st, "TLS") == 0);
		} else if (strcmp(st, "EOF") == 0) {
			smtpc_abort(c, "connection closed");
		} else if (strncmp(st, "C:", 2) == 0) {
			while (smtpc_produce(c, 7))
				;
			str_append(&got, smtpc_output(c)->s, smtpc_output(c)->len);
			str_truncate(smtpc_output(c), 0);
			ck_assert_msg(strcmp(got.s ? got.s : "", st + 2) == 0,
				      "step %zu: expected [%s] got [%s]", i, st + 2, got.s ? got.s : "");
			str_truncate(&got, 0);
		}
		while (smtpc_produce(c, 7))
			;
		str_append(&got, smtpc_output(c)->s, smtpc_output(c)->len);
		str_truncate(smtpc_output(c), 0);
	}
	ck_assert_msg(got.len == 0, "unchecked output [%s]", got.s);
	str_free(&got);
	return c;
}

static const struct smtpc_rcpt rcpts3[] = {
	{ "a@example.org", 0, NULL },
	{ "b@example.org", 4 | 8, "rfc822;b@old.example.org" },
	{ "c@example.org", 0, NULL },
};

static struct smtpc_params base_params(void)
{
	static const char msg[] = "Subject: hi\r\n\r\n.dot line\r\nbody\r\n";
	struct smtpc_params p = {
		.helo_name = "mail.lamdong.gov.vn",
		.mail_from = "sender@lamdong.gov.vn",
		.rcpts = rcpts3,
		.n_rcpts = 3,
		.data = msg,
		.size = sizeof(msg) - 1,
		.starttls = true,
	};
	return p;
}

static void check_both(const struct smtpc_params *p, const char *const *steps,
		       void (*check)(struct smtpc *c))
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct smtpc *c = run_script(p, steps, bytewise);
		check(c);
		smtpc_free(&c);
	}
}

static void expect_result(struct smtpc *c, size_t i, enum smtpc_result want, const char *status)
{
	const char *diag, *st;
	enum smtpc_result r = smtpc_rcpt_result(c, i, &diag, &st);
	ck_assert_msg(r == want, "rcpt %zu: result %d, want %d (%s)", i, r, want, diag);
	if (status != NULL)
		ck_assert_str_eq(st, status);
}

static void check_pipelined(struct smtpc *c)
{
	ck_assert(smtpc_done(c));
	ck_assert_ptr_null(smtpc_session_error(c, NULL));
	expect_result(c, 0, SMTPC_R_OK, "2.0.0");
	expect_result(c, 1, SMTPC_R_PERM, "5.1.1");
	expect_result(c, 2, SMTPC_R_OK, "2.0.0");
	const char *diag, *st;
	smtpc_rcpt_result(c, 1, &diag, &st);
	ck_assert_str_eq(diag, "550 5.1.1 <b@example.org>: no such user");
	ck_assert(smtpc_used_tls(c));
	ck_assert(smtpc_offered_dsn(c));
}

START_TEST(test_client_pipelining_tls_dsn)
{
	struct smtpc_params p = base_params();
	p.envid = "env 1+";
	p.ret = 2;
	const char *const steps[] = {
		"S:220-mx.example.org ESMTP\r\n220 welcome\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 1000000\r\n",
		"C:STARTTLS\r\n",
		"S:220 2.0.0 go ahead\r\n",
		"TLS",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-DSN\r\n"
		"250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn> SIZE=32 RET=HDRS ENVID=env+201+2B\r\n"
		"RCPT TO:<a@example.org>\r\n"
		"RCPT TO:<b@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@old.example.org\r\n"
		"RCPT TO:<c@example.org>\r\n",
		"S:250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 <b@example.org>: no such user\r\n"
		"250 2.1.5 ok\r\n",
		"C:DATA\r\n",
		"S:354 go\r\n",
		"C:Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n",
		"S:250 2.0.0 queued as X\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_pipelined);
}
END_TEST

static void check_all_ok(struct smtpc *c)
{
	ck_assert(smtpc_done(c));
	for (size_t i = 0; i < 3; i++)
		expect_result(c, i, SMTPC_R_OK, "2.6.0");
	ck_assert(!smtpc_used_tls(c));
	ck_assert(smtpc_data_sent(c));
}

START_TEST(test_client_no_pipelining_bdat)
{
	struct smtpc_params p = base_params();
	p.body_8bit = true;
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250-CHUNKING\r\n250 8BITMIME\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn> BODY=8BITMIME\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<a@example.org>\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<b@example.org>\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<c@example.org>\r\n",
		"S:250 ok\r\n",
		"C:BDAT 32 LAST\r\nSubject: hi\r\n\r\n.dot line\r\nbody\r\n",
		"S:250 2.6.0 accepted\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_all_ok);
}
END_TEST

static void check_tls_required(struct smtpc *c)
{
	ck_assert(smtpc_done(c));
	bool perm = true;
	const char *e = smtpc_session_error(c, &perm);
	ck_assert_ptr_nonnull(e);
	ck_assert(!perm);
	ck_assert_str_eq(e, "TLS required but STARTTLS not offered");
	expect_result(c, 0, SMTPC_R_NONE, NULL);
	ck_assert(!smtpc_data_sent(c));
}

START_TEST(test_client_tls_required)
{
	struct smtpc_params p = base_params();
	p.tls_required = true;
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250 PIPELINING\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_tls_required);
}
END_TEST

static void check_unverified(struct smtpc *c)
{
	const char *e = smtpc_session_error(c, NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(strstr(e, "did not verify"));
}

START_TEST(test_client_tls_verify_fails)
{
	struct smtpc_params p = base_params();
	p.tls_required = p.tls_verify = true;
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250 STARTTLS\r\n",
		"C:STARTTLS\r\n",
		"S:220 go\r\n",
		"TLS-UNVERIFIED",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_unverified);
}
END_TEST

static void check_helo_fallback(struct smtpc *c)
{
	expect_result(c, 0, SMTPC_R_TEMP, "4.0.0");
	expect_result(c, 1, SMTPC_R_TEMP, "4.0.0");
	expect_result(c, 2, SMTPC_R_TEMP, "4.0.0");
	const char *diag, *st;
	smtpc_rcpt_result(c, 2, &diag, &st);
	ck_assert_str_eq(diag, "451 try later");
}

START_TEST(test_client_helo_and_data_failure)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = {
		"S:220 old mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:502 what\r\n",
		"C:HELO mail.lamdong.gov.vn\r\n",
		"S:250 hello\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn>\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<a@example.org>\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<b@example.org>\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<c@example.org>\r\n",
		"S:250 ok\r\n",
		"C:DATA\r\n",
		"S:354 go\r\n",
		"C:Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n",
		"S:451 try later\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_helo_fallback);
}
END_TEST

static void check_mail_refused(struct smtpc *c)
{
	for (size_t i = 0; i < 3; i++)
		expect_result(c, i, SMTPC_R_PERM, "5.7.1");
	ck_assert(!smtpc_data_sent(c));
}

START_TEST(test_client_mail_refused_pipelined)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250 PIPELINING\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn>\r\nRCPT TO:<a@example.org>\r\n"
		"RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n",
		"S:554 5.7.1 you are not welcome\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_mail_refused);
}
END_TEST

static void check_greeting(struct smtpc *c)
{
	bool perm = false;
	const char *e = smtpc_session_error(c, &perm);
	ck_assert_str_eq(e, "greeting: 554 5.3.2 no service");
	ck_assert(perm);
}

START_TEST(test_client_greeting_refused)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = {
		"S:554 5.3.2 no service\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_greeting);
}
END_TEST

static void check_cut(struct smtpc *c)
{
	expect_result(c, 0, SMTPC_R_TEMP, "4.4.2");
	expect_result(c, 1, SMTPC_R_PERM, "5.1.1");
	expect_result(c, 2, SMTPC_R_TEMP, "4.4.2");
	ck_assert(smtpc_data_sent(c));
}

START_TEST(test_client_connection_lost)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250 PIPELINING\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn>\r\nRCPT TO:<a@example.org>\r\n"
		"RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n",
		"S:250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n",
		"C:DATA\r\n",
		"S:354 go\r\n",
		"C:Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n",
		"EOF",
		NULL,
	};
	check_both(&p, steps, check_cut);
}
END_TEST

static void check_limits(struct smtpc *c)
{
	expect_result(c, 0, SMTPC_R_PERM, "5.3.4");
	ck_assert(!smtpc_data_sent(c));
}

START_TEST(test_client_size_and_utf8)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250 SIZE 10\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_limits);

	p.smtputf8 = true;
	const char *const steps2[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n250 8BITMIME\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	struct smtpc *c = run_script(&p, steps2, false);
	expect_result(c, 2, SMTPC_R_PERM, "5.6.7");
	smtpc_free(&c);
}
END_TEST

static void check_garbage(struct smtpc *c)
{
	const char *e = smtpc_session_error(c, NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(strstr(e, "protocol error"));
}

START_TEST(test_client_garbage)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = { "S:HTTP/1.1 400 Bad Request\r\n", NULL };
	check_both(&p, steps, check_garbage);
	const char *const steps2[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-mx\r\n251 changed\r\n",
		NULL,
	};
	check_both(&p, steps2, check_garbage);
	/* an endless line */
	struct smtpc *c = smtpc_new(&p);
	char junk[512];
	memset(junk, '2', sizeof(junk));
	size_t used = 0;
	enum smtpc_event ev = SMTPC_EV_CONTINUE;
	for (int i = 0; i < 100 && ev == SMTPC_EV_CONTINUE; i++)
		ev = smtpc_feed(c, junk, sizeof(junk), &used);
	ck_assert_int_eq(ev, SMTPC_EV_DONE);
	check_garbage(c);
	smtpc_free(&c);
}
END_TEST

START_TEST(test_client_dot_stuffing)
{
	static const char msg[] = ".\r\n..\r\nx\r\n.y";
	struct smtpc_params p = base_params();
	p.data = msg;
	p.size = sizeof(msg) - 1;
	p.n_rcpts = 1;
	const char *const steps[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250 mx\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn>\r\n",
		"S:250 ok\r\n",
		"C:RCPT TO:<a@example.org>\r\n",
		"S:250 ok\r\n",
		"C:DATA\r\n",
		"S:354 go\r\n",
		"C:..\r\n...\r\nx\r\n..y\r\n.\r\n",
		"S:250 ok\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	struct smtpc *c = run_script(&p, steps, true);
	expect_result(c, 0, SMTPC_R_OK, NULL);
	smtpc_free(&c);
}
END_TEST

static void check_loop(struct smtpc *c)
{
	expect_result(c, 0, SMTPC_R_PERM, "5.4.6");
	ck_assert(!smtpc_data_sent(c));
}

START_TEST(test_client_loops)
{
	struct smtpc_params p = base_params();
	const char *const steps[] = {
		"S:220 mail.lamdong.gov.vn ESMTP\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250-MAIL.lamdong.gov.vn\r\n250 PIPELINING\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps, check_loop);

	/* 51 Received: fields, from a loop elsewhere */
	struct str m = STR_INIT;
	for (int i = 0; i <= SMTPC_MAX_HOPS; i++)
		str_printf(&m, "Received: from hop%d\r\n", i);
	str_appends(&m, "Subject: x\r\n\r\nReceived: in the body does not count\r\n");
	p = base_params();
	p.data = m.s;
	p.size = m.len;
	const char *const steps2[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250 mx\r\n",
		"C:QUIT\r\n",
		NULL,
	};
	check_both(&p, steps2, check_loop);
	/* 50 are fine */
	str_truncate(&m, 0);
	for (int i = 0; i < SMTPC_MAX_HOPS; i++)
		str_printf(&m, "Received: from hop%d\r\n", i);
	str_appends(&m, "\r\nReceived: x\r\n");
	p.data = m.s;
	p.size = m.len;
	const char *const steps3[] = {
		"S:220 mx\r\n",
		"C:EHLO mail.lamdong.gov.vn\r\n",
		"S:250 mx\r\n",
		"C:MAIL FROM:<sender@lamdong.gov.vn>\r\n",
		NULL,
	};
	struct smtpc *c = run_script(&p, steps3, false);
	smtpc_free(&c);
	str_free(&m);
}
END_TEST

/* ---- replies ---- */

START_TEST(test_reply_parser)
{
	struct smtp_reply_parser rp = { 0 };
	const char *why;
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "250-first", 9, &why), 0);
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "250 last", 8, &why), 1);
	ck_assert_uint_eq(rp.reply.code, 250);
	ck_assert_uint_eq(rp.reply.n_lines, 2);
	ck_assert_str_eq(rp.reply.text.s, "first\nlast\n");
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "550 5.1.1 no", 12, &why), 1);
	ck_assert_str_eq(rp.reply.enhanced, "5.1.1");
	char buf[12];
	ck_assert_str_eq(smtp_reply_status(&rp.reply, buf), "5.1.1");
	/* class mismatch: not an enhanced code */
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "550 4.1.1 no", 12, &why), 1);
	ck_assert_str_eq(rp.reply.enhanced, "");
	ck_assert_str_eq(smtp_reply_status(&rp.reply, buf), "5.0.0");
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "250", 3, &why), 1);
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "25", 2, &why), -1);
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "650 x", 5, &why), -1);
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "250x", 4, &why), -1);
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "2a0 x", 5, &why), -1);
	/* too many lines */
	struct smtp_reply_parser rp2 = { 0 };
	int r = 0;
	for (int i = 0; i <= SMTPC_REPLY_LINES && r == 0; i++)
		r = smtp_reply_parse_line(&rp2, "250-x", 5, &why);
	ck_assert_int_eq(r, -1);
	smtp_reply_parser_free(&rp2);
	/* summary is sanitised and bounded */
	ck_assert_int_eq(smtp_reply_parse_line(&rp, "451 4.3.0 a\x01z", 13, &why), 1);
	struct str s = STR_INIT;
	smtp_reply_summary(&rp.reply, &s);
	ck_assert_str_eq(s.s, "451 4.3.0 a?z");
	str_free(&s);
	smtp_reply_parser_free(&rp);
	struct str x = STR_INIT;
	smtp_xtext_encode(&x, "a+b=c d\xc3\xa9");
	ck_assert_str_eq(x.s, "a+2Bb+3Dc+20d+C3+A9");
	str_free(&x);
}
END_TEST

/* ---- TLS policy ---- */

START_TEST(test_tls_policy)
{
	struct tls_policy *pol;
	char *err = NULL;
	ck_assert_int_eq(tls_policy_parse("*.gov.vn:verify, bad.gov.vn:may,"
					  " *.hcm.gov.vn:encrypt example.org:encrypt",
					  &pol, &err), 0);
	ck_assert_int_eq(tls_policy_lookup(pol, "quangninh.gov.vn"), TLS_POLICY_VERIFY);
	ck_assert_int_eq(tls_policy_lookup(pol, "A.B.GOV.VN."), TLS_POLICY_VERIFY);
	ck_assert_int_eq(tls_policy_lookup(pol, "gov.vn"), TLS_POLICY_MAY);
	ck_assert_int_eq(tls_policy_lookup(pol, "notgov.vn"), TLS_POLICY_MAY);
	ck_assert_int_eq(tls_policy_lookup(pol, "bad.gov.vn"), TLS_POLICY_MAY);
	ck_assert_int_eq(tls_policy_lookup(pol, "x.hcm.gov.vn"), TLS_POLICY_ENCRYPT);
	ck_assert_int_eq(tls_policy_lookup(pol, "example.org"), TLS_POLICY_ENCRYPT);
	ck_assert_int_eq(tls_policy_lookup(pol, "sub.example.org"), TLS_POLICY_MAY);
	tls_policy_free(&pol);
	ck_assert_int_eq(tls_policy_parse("*:encrypt x.org:none", &pol, &err), 0);
	ck_assert_int_eq(tls_policy_lookup(pol, "any.where"), TLS_POLICY_ENCRYPT);
	ck_assert_int_eq(tls_policy_lookup(pol, "x.org"), TLS_POLICY_NONE);
	tls_policy_free(&pol);
	ck_assert_int_eq(tls_policy_parse("", &pol, &err), 0);
	ck_assert_int_eq(tls_policy_lookup(pol, "x.org"), TLS_POLICY_MAY);
	tls_policy_free(&pol);
	const char *bad[] = { "x.org", "x.org:strict", "*.:verify", "a..b:may", ":may", NULL };
	for (size_t i = 0; bad[i]; i++) {
		ck_assert_int_eq(tls_policy_parse(bad[i], &pol, &err), -1);
		ck_assert_ptr_nonnull(strstr(err, "smtpd.tls_policy"));
		free(err);
	}
}
END_TEST

/* ---- schedule, records, DSNs ---- */

START_TEST(test_retry_schedule)
{
	ck_assert_int_eq(outbound_retry_at(1000, 1, 300, 3600), 1300);
	ck_assert_int_eq(outbound_retry_at(1000, 2, 300, 3600), 1600);
	ck_assert_int_eq(outbound_retry_at(1000, 4, 300, 3600), 3400);
	ck_assert_int_eq(outbound_retry_at(1000, 5, 300, 3600), 4600);
	ck_assert_int_eq(outbound_retry_at(1000, 4000000000u, 300, 3600), 4600);
}
END_TEST

static void make_record(struct queue_record *r)
{
	memset(r, 0, sizeof(*r));
	r->from = xstrdup("sender@lamdong.gov.vn");
	r->created = 1000;
	r->next_attempt = 1000;
	queue_record_add_rcpt(r, "a@Example.org", 0, NULL);
	queue_record_add_rcpt(r, "b@other.net", 4, "rfc822;b@other.net");
	queue_record_add_rcpt(r, "c@example.org", 2, NULL);
}

START_TEST(test_record_outbound_fields)
{
	struct queue_record r;
	make_record(&r);
	r.warned = true;
	queue_record_rcpt_info(&r.rcpts[1], "5.1.1", "mx.other.net", "550 5.1.1 no such user");
	r.rcpts[1].reported = true;
	queue_record_rcpt_info(&r.rcpts[2], "-", NULL, NULL);
	struct str enc = STR_INIT;
	queue_record_encode(&r, &enc);
	struct queue_record d;
	const char *why;
	ck_assert_int_eq(queue_record_decode(enc.s, enc.len, &d, &why), 0);
	ck_assert(d.warned);
	ck_assert_str_eq(d.rcpts[1].diag, "550 5.1.1 no such user");
	ck_assert_str_eq(d.rcpts[1].mta, "mx.other.net");
	ck_assert_str_eq(d.rcpts[1].dsn_status, "5.1.1");
	ck_assert(d.rcpts[1].reported);
	ck_assert_ptr_null(d.rcpts[0].diag);
	ck_assert_str_eq(d.rcpts[2].dsn_status, "-");
	ck_assert_ptr_null(d.rcpts[2].mta);
	queue_record_free(&d);
	/* a bad rinfo index is an error */
	struct str bad = STR_INIT;
	str_append(&bad, enc.s, enc.len);
	str_appends(&bad, "rinfo 7 0 - - -\n");
	ck_assert_int_eq(queue_record_decode(bad.s, bad.len, &d, &why), -1);
	str_free(&bad);
	str_free(&enc);
	queue_record_free(&r);
}
END_TEST

START_TEST(test_attempt_results)
{
	struct queue_record r;
	make_record(&r);
	struct outbound_group *g;
	size_t n = outbound_group_pending(&r, 50, &g);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(g[0].domain, "example.org");
	ck_assert_uint_eq(g[0].n, 2);
	ck_assert_uint_eq(g[0].idx[1], 2);
	ck_assert_str_eq(g[1].domain, "other.net");
	outbound_groups_free(&g, n);
	/* one recipient per transaction: example.org splits in two */
	n = outbound_group_pending(&r, 1, &g);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(g[0].domain, "example.org");
	ck_assert_str_eq(g[2].domain, "example.org");
	ck_assert_uint_eq(g[2].idx[0], 2);
	outbound_groups_free(&g, n);

	struct outbound_result res[] = {
		{ 0, "a@Example.org", SMTPC_R_OK, "2.0.0", "250 ok", false },
		{ 2, "c@example.org", SMTPC_R_OK, "2.0.0", "250 ok", false },
		{ 1, "b@other.net", SMTPC_R_TEMP, "4.2.0", "451 4.2.0 later", false },
		{ 1, "someone@else", SMTPC_R_PERM, "5.0.0", "550 ignored", false },
	};
	outbound_apply(&r, "mx.example.org", res, 4);
	ck_assert_int_eq(r.rcpts[0].status, QRCPT_SENT);
	ck_assert(r.rcpts[0].reported);     /* no SUCCESS asked */
	ck_assert(!r.rcpts[2].reported);    /* SUCCESS asked, server without DSN */
	ck_assert_int_eq(r.rcpts[1].status, QRCPT_PENDING);
	ck_assert_str_eq(r.last_error, "451 4.2.0 later");

	struct outbound_timing t = { 5 * 86400, 4 * 3600, 300, 3600 };
	struct outbound_notices nt;
	outbound_finish_attempt(&r, 1100, &t, &nt);
	ck_assert_uint_eq(r.attempts, 1);
	ck_assert_int_eq(r.next_attempt, 1400);
	ck_assert(!nt.done);
	ck_assert_uint_eq(nt.n_relayed, 1);
	ck_assert_str_eq(nt.relayed[0].addr, "c@example.org");
	ck_assert_uint_eq(nt.n_failed + nt.n_delayed, 0);
	outbound_notices_free(&nt);

	/* after 4 hours: one delay notice, only once */
	outbound_finish_attempt(&r, 1000 + 4 * 3600, &t, &nt);
	ck_assert_uint_eq(nt.n_delayed, 0); /* NOTIFY=FAILURE only */
	ck_assert(r.warned);
	outbound_notices_free(&nt);
	r.rcpts[1].notify = 0;
	r.warned = false;
	outbound_finish_attempt(&r, 1000 + 5 * 3600, &t, &nt);
	ck_assert_uint_eq(nt.n_delayed, 1);
	outbound_notices_free(&nt);
	outbound_finish_attempt(&r, 1000 + 6 * 3600, &t, &nt);
	ck_assert_uint_eq(nt.n_delayed, 0);
	outbound_notices_free(&nt);

	/* the next attempt never goes past the deadline */
	outbound_finish_attempt(&r, 1000 + 5 * 86400 - 60, &t, &nt);
	ck_assert_int_eq(r.next_attempt, 1000 + 5 * 86400);
	outbound_notices_free(&nt);
	/* expiry: failed with 4.4.7 and the last error */
	outbound_finish_attempt(&r, 1000 + 5 * 86400, &t, &nt);
	ck_assert(nt.done);
	ck_assert_uint_eq(nt.n_failed, 1);
	ck_assert_str_eq(nt.failed[0].status, "4.4.7");
	ck_assert_ptr_nonnull(strstr(nt.failed[0].reason, "451 4.2.0 later"));
	outbound_notices_free(&nt);
	/* nothing is reported twice */
	outbound_finish_attempt(&r, 1000 + 6 * 86400, &t, &nt);
	ck_assert_uint_eq(nt.n_failed + nt.n_relayed + nt.n_delayed, 0);
	outbound_notices_free(&nt);
	queue_record_free(&r);
}
END_TEST

START_TEST(test_null_sender_no_dsn)
{
	struct queue_record r;
	make_record(&r);
	free(r.from);
	r.from = xstrdup("");
	struct outbound_result res[] = {
		{ 0, "a@Example.org", SMTPC_R_PERM, "5.1.1", "550 5.1.1 no", false },
		{ 1, "b@other.net", SMTPC_R_PERM, "5.1.1", "550 5.1.1 no", false },
		{ 2, "c@example.org", SMTPC_R_PERM, "5.1.1", "550 5.1.1 no", false },
	};
	outbound_apply(&r, "mx", res, 3);
	struct outbound_timing t = { 5 * 86400, 4 * 3600, 300, 3600 };
	struct outbound_notices nt;
	outbound_finish_attempt(&r, 2000, &t, &nt);
	ck_assert(nt.done);
	ck_assert_uint_eq(nt.n_failed, 0);
	outbound_notices_free(&nt);
	queue_record_free(&r);
}
END_TEST

/* The fields of one part's header, for structure checks. */
static const char *find_after(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);
	ck_assert_msg(p != NULL, "missing [%s]", needle);
	return p + strlen(needle);
}

START_TEST(test_dsn_structure)
{
	static const char msg[] = "From: s@lamdong.gov.vn\r\nSubject: report\r\n\r\nbody line\r\n";
	struct dsn_rcpt rc[] = {
		{ "x@example.org", "rfc822;X@example.org", DSN_FAILED, "5.1.1", "mx.example.org",
		  "550 5.1.1 no such user", NULL, 5000 },
		{ "y@example.org", NULL, DSN_FAILED, "4.4.7", NULL, NULL,
		  "delivery time expired", 5000 },
	};
	struct dsn_params p = {
		.reporting_mta = "mail.lamdong.gov.vn", .sender = "s@lamdong.gov.vn",
		.envid = "E1", .arrival = 1000, .now = 5000, .queue_id = 42,
		.rcpts = rc, .n_rcpts = 2, .message = msg, .message_len = sizeof(msg) - 1,
	};
	struct str out = STR_INIT;
	dsn_build(&p, &out);
	const char *s = out.s;
	/* every line ends in CRLF */
	for (size_t i = 0; i < out.len; i++)
		if (s[i] == '\n')
			ck_assert(i > 0 && s[i - 1] == '\r');
	ck_assert_ptr_nonnull(strstr(s, "\r\nAuto-Submitted: auto-replied\r\n"));
	ck_assert_ptr_nonnull(strstr(s, "To: <s@lamdong.gov.vn>\r\n"));
	const char *ct = find_after(s, "Content-Type: multipart/report; report-type=delivery-status;");
	const char *b = find_after(ct, "boundary=\"");
	size_t blen = strcspn(b, "\"");
	char boundary[128];
	snprintf(boundary, sizeof(boundary), "\r\n--%.*s", (int)blen, b);
	/* three parts in order, then the closing delimiter */
	const char *p1 = find_after(s, boundary);
	ck_assert_ptr_nonnull(strstr(p1, "Content-Type: text/plain; charset=utf-8"));
	const char *p2 = find_after(p1, boundary);
	ck_assert(strncmp(p2, "\r\nContent-Description: Delivery report\r\n"
			      "Content-Type: message/delivery-status\r\n\r\n", 80) == 0);
	const char *p3 = find_after(p2, boundary);
	ck_assert_ptr_nonnull(strstr(p3, "Content-Type: message/rfc822\r\n"));
	ck_assert_ptr_nonnull(strstr(p3, "body line\r\n"));
	char closing[140];
	snprintf(closing, sizeof(closing), "%s--\r\n", boundary);
	ck_assert_ptr_nonnull(strstr(p3, closing));
	/* the per-message and per-recipient fields (RFC 3464 2.2, 2.3) */
	const char *report = p2;
	ck_assert_ptr_nonnull(strstr(report, "\r\n\r\nReporting-MTA: dns; mail.lamdong.gov.vn\r\n"
					     "Original-Envelope-Id: E1\r\n"
					     "Arrival-Date: Thu, 01 Jan 1970 00:16:40 +0000\r\n\r\n"
					     "Original-Recipient: rfc822;X@example.org\r\n"
					     "Final-Recipient: rfc822; x@example.org\r\n"
					     "Action: failed\r\nStatus: 5.1.1\r\n"
					     "Remote-MTA: dns; mx.example.org\r\n"
					     "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
					     "Last-Attempt-Date: "));
	ck_assert_ptr_nonnull(strstr(report, "Final-Recipient: rfc822; y@example.org\r\n"
					     "Action: failed\r\nStatus: 4.4.7\r\n"));
	str_free(&out);

	/* RET=HDRS and a delay notice */
	rc[0].action = DSN_DELAYED;
	rc[0].status = "4.2.0";
	p.n_rcpts = 1;
	p.ret = 2;
	p.will_retry_until = 1000 + 5 * 86400;
	dsn_build(&p, &out);
	ck_assert_ptr_nonnull(strstr(out.s, "Content-Type: text/rfc822-headers\r\n"));
	ck_assert_ptr_null(strstr(out.s, "body line"));
	ck_assert_ptr_nonnull(strstr(out.s, "Action: delayed\r\n"));
	ck_assert_ptr_nonnull(strstr(out.s, "Will-Retry-Until: Tue, 06 Jan 1970 00:16:40 +0000\r\n"));
	str_free(&out);

	/* an internationalised recipient: global-delivery-status, utf-8 type */
	rc[0].addr = "ng\xc6\xb0\xe1\xbb\x9di@v\xc3\xad.vn";
	rc[0].orcpt = NULL;
	dsn_build(&p, &out);
	ck_assert_ptr_nonnull(strstr(out.s, "Content-Type: message/global-delivery-status\r\n"));
	ck_assert_ptr_nonnull(strstr(out.s, "Final-Recipient: utf-8; ng"));
	str_free(&out);

	ck_assert(dsn_wanted(0, DSN_FAILED));
	ck_assert(dsn_wanted(0, DSN_DELAYED));
	ck_assert(!dsn_wanted(0, DSN_RELAYED));
	ck_assert(!dsn_wanted(1, DSN_FAILED));
	ck_assert(!dsn_wanted(2, DSN_FAILED));
	ck_assert(dsn_wanted(2, DSN_RELAYED));
}
END_TEST

START_TEST(test_mta_sts)
{
	char id[33];
	const char *t1 = "v=STSv1; id=20260101T000000;";
	ck_assert_int_eq(mta_sts_parse_txt(t1, strlen(t1), id), 1);
	ck_assert_str_eq(id, "20260101T000000");
	ck_assert_int_eq(mta_sts_parse_txt("v=spf1 -all", 11, id), 0);
	ck_assert_int_eq(mta_sts_parse_txt("v=STSv1;", 8, id), -1);
	ck_assert_int_eq(mta_sts_parse_txt("v=STSv1; id=a-b", 15, id), -1);
	const char *t2 = "v=STSv1;ext=1; id=abc  ";
	ck_assert_int_eq(mta_sts_parse_txt(t2, strlen(t2), id), 1);
	ck_assert_str_eq(id, "abc");

	const char *pol = "version: STSv1\r\nmode: enforce\r\nmx: mail.Example.com\r\n"
			  "mx: *.example.net\r\nmax_age: 86400\r\nfuture: x\r\n";
	struct mta_sts_policy p;
	const char *why;
	ck_assert_int_eq(mta_sts_parse_policy(pol, strlen(pol), &p, &why), 0);
	ck_assert_int_eq(p.mode, MTA_STS_ENFORCE);
	ck_assert_uint_eq(p.max_age, 86400);
	ck_assert_uint_eq(p.n_mx, 2);
	ck_assert(mta_sts_mx_match(&p, "mail.example.com"));
	ck_assert(mta_sts_mx_match(&p, "MAIL.EXAMPLE.COM."));
	ck_assert(mta_sts_mx_match(&p, "mx1.example.net"));
	ck_assert(!mta_sts_mx_match(&p, "a.b.example.net"));
	ck_assert(!mta_sts_mx_match(&p, "example.net"));
	ck_assert(!mta_sts_mx_match(&p, "mail.example.org"));
	mta_sts_policy_free(&p);
	const char *bad[] = {
		"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\n",
		"version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n",
		NULL,
	};
	for (size_t i = 0; bad[i]; i++)
		ck_assert_int_eq(mta_sts_parse_policy(bad[i], strlen(bad[i]), &p, &why), -1);

	const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			   "Content-Length: 5\r\n\r\nhello world";
	const char *body;
	size_t blen;
	ck_assert_int_eq(mta_sts_http_response(resp, 40, false, &body, &blen, &why), 0);
	ck_assert_int_eq(mta_sts_http_response(resp, strlen(resp), false, &body, &blen, &why), 1);
	ck_assert_uint_eq(blen, 5);
	ck_assert(memcmp(body, "hello", 5) == 0);
	const char *r2 = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nabc";
	ck_assert_int_eq(mta_sts_http_response(r2, strlen(r2), false, &body, &blen, &why), 0);
	ck_assert_int_eq(mta_sts_http_response(r2, strlen(r2), true, &body, &blen, &why), 1);
	ck_assert_uint_eq(blen, 3);
	const char *r3 = "HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n";
	ck_assert_int_eq(mta_sts_http_response(r3, strlen(r3), true, &body, &blen, &why), -1);
	const char *r4 = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nx";
	ck_assert_int_eq(mta_sts_http_response(r4, strlen(r4), true, &body, &blen, &why), -1);
}
END_TEST

START_TEST(test_dns_rdata)
{
	char name[256];
	size_t used;
	static const unsigned char mx[] = "\x02mx\x09quangninh\x03gov\x02vn\x00";
	ck_assert_int_eq(dnsr_name_from_wire(mx, sizeof(mx) - 1, name, sizeof(name), &used), 0);
	ck_assert_str_eq(name, "mx.quangninh.gov.vn");
	ck_assert_uint_eq(used, sizeof(mx) - 1);
	static const unsigned char root[] = "\x00";
	ck_assert_int_eq(dnsr_name_from_wire(root, 1, name, sizeof(name), &used), 0);
	ck_assert_str_eq(name, "");
	static const unsigned char bad1[] = "\x05" "ab";     /* label past the end */
	static const unsigned char bad2[] = "\x02" "a b\x00"; /* a space */
	static const unsigned char bad3[] = "\x02" "ab";     /* no root label */
	static const unsigned char bad4[] = "\x40";         /* label over 63 */
	ck_assert_int_eq(dnsr_name_from_wire(bad1, 3, name, sizeof(name), &used), -1);
	ck_assert_int_eq(dnsr_name_from_wire(bad2, 4, name, sizeof(name), &used), -1);
	ck_assert_int_eq(dnsr_name_from_wire(bad3, 3, name, sizeof(name), &used), -1);
	ck_assert_int_eq(dnsr_name_from_wire(bad4, 1, name, sizeof(name), &used), -1);
	ck_assert_int_eq(dnsr_name_from_wire(mx, sizeof(mx) - 1, name, 8, &used), -1);

	struct str t = STR_INIT;
	static const unsigned char txt[] = "\x07v=STSv1\x06; id=1";
	ck_assert_int_eq(dnsr_txt_from_rdata(txt, sizeof(txt) - 1, &t), 0);
	ck_assert_str_eq(t.s, "v=STSv1; id=1");
	str_truncate(&t, 0);
	ck_assert_int_eq(dnsr_txt_from_rdata((const unsigned char *)"\x05" "abc", 4, &t), -1);
	ck_assert_int_eq(dnsr_txt_from_rdata((const unsigned char *)"\x02" "a\x00", 3, &t), -1);
	str_free(&t);
}
END_TEST

static int unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (int)n;
}

START_TEST(test_dane)
{
	static const char pem[] =
		"-----BEGIN CERTIFICATE-----\n"
		"MIIBiDCCAS2gAwIBAgIUBqmVd9Q/rr/b0LT/rNGLH8rlLdkwCgYIKoZIzj0EAwIw\n"
		"GTEXMBUGA1UEAwwObXguZXhhbXBsZS5vcmcwHhcNMjYxMTI3MTE0NjM1WhcNMzYx\n"
		"MTI0MTE0NjM1WjAZMRcwFQYDVQQDDA5teC5leGFtcGxlLm9yZzBZMBMGByqGSM49\n"
		"AgEGCCqGSM49AwEHA0IABJtT7eg2DNqpexeJo/N83BeBMotpgA/CsohdjDByEQqC\n"
		"7gKxAJ+AOAhw65zEsHIkr5kUNYz7TunvHqL/D1RGzR2jUzBRMB0GA1UdDgQWBBS2\n"
		"Y/tST3MZbMs06ttTOr84iL/IADAfBgNVHSMEGDAWgBS2Y/tST3MZbMs06ttTOr84\n"
		"iL/IADAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQD73joybU/I\n"
		"QtIQeFYupz+97bb3Al6D5kn87Qozk4cL7gIhAPwH9Kgp8Mn7HYv0AmtoILLWOCIe\n"
		"oqfqfVO6yizge6jd\n"
		"-----END CERTIFICATE-----\n";
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ck_assert_ptr_nonnull(x);
	unsigned char *der = NULL;
	int der_len = i2d_X509(x, &der);
	X509_free(x);
	ck_assert_int_gt(der_len, 0);

	/* 3 1 1: SHA-256 of the public key; 3 0 1: of the whole certificate */
	uint8_t rd[4 + 64];
	rd[0] = 3;
	rd[1] = 1;
	rd[2] = 1;
	ck_assert_int_eq(unhex("b6fff0b30c7136eff5b6baab7b38e940e2acca5c15ec576f9cc47b3ec47810cb",
			       rd + 3), 32);
	struct dane_tlsa t[3];
	ck_assert_int_eq(dane_parse_rdata(rd, 35, &t[0]), 0);
	ck_assert(dane_usable(&t[0]));
	ck_assert_int_eq(dane_match(t, 1, der, (size_t)der_len), 1);
	rd[1] = 0;
	unhex("2c90aacc4b33f3435401f111f8f0053942a1245f5049b4d9efbac2d5fd5d4ce1", rd + 3);
	ck_assert_int_eq(dane_parse_rdata(rd, 35, &t[1]), 0);
	ck_assert_int_eq(dane_match(&t[1], 1, der, (size_t)der_len), 1);
	/* a wrong digest, then the right one among others */
	t[1].data[0] ^= 1;
	ck_assert_int_eq(dane_match(&t[1], 1, der, (size_t)der_len), 0);
	ck_assert_int_eq(dane_match(t, 2, der, (size_t)der_len), 1);
	/* 3 0 0: the certificate itself */
	t[2].usage = 3;
	t[2].selector = 0;
	t[2].mtype = 0;
	t[2].len = (size_t)der_len;
	memcpy(t[2].data, der, (size_t)der_len);
	ck_assert_int_eq(dane_match(&t[2], 1, der, (size_t)der_len), 1);
	/* unusable: usage 2 (DANE-TA), a wrong length, an unknown type */
	t[0].usage = 2;
	ck_assert(!dane_usable(&t[0]));
	ck_assert_int_eq(dane_match(t, 1, der, (size_t)der_len), 0);
	t[0].usage = 3;
	t[0].len = 31;
	ck_assert(!dane_usable(&t[0]));
	t[0].len = 32;
	t[0].mtype = 3;
	ck_assert(!dane_usable(&t[0]));
	ck_assert_int_eq(dane_parse_rdata(rd, 3, &t[0]), -1);
	ck_assert_int_eq(dane_match(t, 1, "junk", 4), -1);
	OPENSSL_free(der);
}
END_TEST

static Suite *outbound_suite(void)
{
	Suite *s = suite_create("outbound");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_client_pipelining_tls_dsn);
	tcase_add_test(tc, test_client_no_pipelining_bdat);
	tcase_add_test(tc, test_client_tls_required);
	tcase_add_test(tc, test_client_tls_verify_fails);
	tcase_add_test(tc, test_client_helo_and_data_failure);
	tcase_add_test(tc, test_client_mail_refused_pipelined);
	tcase_add_test(tc, test_client_greeting_refused);
	tcase_add_test(tc, test_client_connection_lost);
	tcase_add_test(tc, test_client_size_and_utf8);
	tcase_add_test(tc, test_client_garbage);
	tcase_add_test(tc, test_client_dot_stuffing);
	tcase_add_test(tc, test_client_loops);
	tcase_add_test(tc, test_reply_parser);
	tcase_add_test(tc, test_tls_policy);
	tcase_add_test(tc, test_retry_schedule);
	tcase_add_test(tc, test_record_outbound_fields);
	tcase_add_test(tc, test_attempt_results);
	tcase_add_test(tc, test_null_sender_no_dsn);
	tcase_add_test(tc, test_dsn_structure);
	tcase_add_test(tc, test_mta_sts);
	tcase_add_test(tc, test_dns_rdata);
	tcase_add_test(tc, test_dane);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(outbound_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
