/* libFuzzer target: the SMTP/LMTP session core (commands, paths and
 * parameters, DATA and BDAT parsing, SASL PLAIN/LOGIN decoding) fed
 * arbitrary client bytes, whole and split at a point the input chooses.
 * The owner accepts every stage at once (authenticating anyone), so every
 * state is reachable. */
#include "config.h"
#include "smtp-session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct owner {
	struct smtp_session *s;
	size_t out;
	bool tls;
};

static void f_write(void *ctx, const void *data, size_t len)
{
	(void)data;
	((struct owner *)ctx)->out += len;
}

static void f_stage(void *ctx, enum smtp_stage stage)
{
	struct owner *o = ctx;
	if (stage == SMTP_STAGE_AUTH) {
		const char *u, *p;
		smtp_session_auth_creds(o->s, &u, &p);
		if (strlen(u) % 2 == 0)
			smtp_session_set_auth_user(o->s, "user@lamdong.gov.vn");
	}
	if (stage == SMTP_STAGE_RCPT)
		smtp_session_tx(o->s)->pending.local = true;
	if (stage == SMTP_STAGE_EOM && smtp_session_tx(o->s)->n_rcpts > 1) {
		const char *reps[2] = { "250 2.0.0 Ok", "452 4.2.2 full" };
		size_t n = smtp_session_tx(o->s)->n_rcpts;
		const char **all = calloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			all[i] = reps[i % 2];
		smtp_session_resume_lmtp(o->s, all, n); /* ignored unless LMTP */
		free(all);
		if (!smtp_session_waiting(o->s))
			return;
	}
	smtp_session_resume(o->s, NULL);
}

static void f_starttls(void *ctx)
{
	((struct owner *)ctx)->tls = true;
}

static void f_close(void *ctx)
{
	(void)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	size_t split = size > 2 ? data[1] % (size - 1) : 0;
	data += 2;
	size -= 2;
	struct owner o = { 0 };
	struct smtp_session_hooks h = { f_write, f_stage, f_starttls, f_close, NULL };
	struct smtp_session_config c = {
		.service = (enum smtp_service)(mode % 4),
		.hostname = "mx.test",
		.max_message_size = 4096,
		.max_recipients = 5,
		.max_errors = 50,
		.starttls_available = true,
		.tls_active = (mode & 4) != 0,
		.client_addr = "192.0.2.1",
		.session_id = "fuzz",
	};
	o.s = smtp_session_new(&c, &h, &o);
	smtp_session_start(o.s);
	size_t off = 0, have = split ? split : size;
	for (int guard = 0; guard < 100000 && off < size && !smtp_session_closed(o.s); guard++) {
		size_t used = smtp_session_input(o.s, data + off, have - off);
		if (o.tls) {
			o.tls = false;
			smtp_session_tls_started(o.s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
		}
		off += used;
		if (used == 0) {
			if (have == size)
				break;
			have = size; /* the rest of a partial line arrives */
		}
	}
	smtp_session_free(&o.s);
	return 0;
}
