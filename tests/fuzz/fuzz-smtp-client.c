/* libFuzzer target: the outbound SMTP client fed arbitrary server bytes.
 * The first input byte picks the session's options and how the rest is
 * sliced; a NUL byte in the input stands for "the TLS handshake finished".
 * The same bytes then go through the TLS policy and MTA-STS parsers. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dane.h"
#include "dns-resolver.h"
#include "mta-sts.h"
#include "outbound-client.h"
#include "tls-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const char msg[] = "Subject: x\r\n\r\n.line\r\nend";
	static const struct smtpc_rcpt rcpts[] = {
		{ "a@example.org", 0, NULL },
		{ "b@example.org", 6, "rfc822;b@example.org" },
	};
	uint8_t opt = data[0];
	struct smtpc_params p = {
		.helo_name = "mx.test", .mail_from = "s@lamdong.gov.vn",
		.smtputf8 = opt & 1, .body_8bit = opt & 2, .ret = (opt >> 2) & 3,
		.envid = (opt & 16) ? "id+1" : NULL, .rcpts = rcpts, .n_rcpts = 2,
		.data = msg, .size = sizeof(msg) - 1, .starttls = true,
		.tls_required = opt & 32, .tls_verify = opt & 64,
	};
	size_t step = (opt & 128) ? 1 : size;
	struct smtpc *c = smtpc_new(&p);
	size_t off = 1;
	while (off < size && !smtpc_done(c)) {
		if (data[off] == 0) {
			smtpc_tls_ready(c, off & 1);
			off++;
			continue;
		}
		const uint8_t *nul = memchr(data + off, 0, size - off);
		size_t end = nul ? (size_t)(nul - data) : size;
		size_t n = end - off < step ? end - off : step;
		size_t used;
		smtpc_feed(c, data + off, n, &used);
		if (used == 0)
			used = n; /* after STARTTLS the rest is dropped */
		off += used;
		while (smtpc_produce(c, 100))
			;
		struct str *out = smtpc_output(c);
		str_truncate(out, 0);
	}
	if (!smtpc_done(c))
		smtpc_abort(c, "end of input");
	for (size_t i = 0; i < 2; i++) {
		const char *diag, *status;
		smtpc_rcpt_result(c, i, &diag, &status);
		if (strlen(diag) > SMTPC_DIAG_MAX + 16)
			abort();
	}
	smtpc_free(&c);
	/* the TLS policy parser with the same bytes */
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	struct tls_policy *pol;
	char *error;
	if (tls_policy_parse(text, &pol, &error) == 0) {
		tls_policy_lookup(pol, "a.b.gov.vn");
		tls_policy_free(&pol);
	} else {
		free(error);
	}
	/* DNS rdata: a name, TXT strings */
	char name[256];
	size_t used;
	if (dnsr_name_from_wire(data, size, name, sizeof(name), &used) == 0 &&
	    (used > size || strlen(name) > 253 + 1))
		abort();
	struct str txt = STR_INIT;
	dnsr_txt_from_rdata(data, size, &txt);
	str_free(&txt);
	struct dane_tlsa *tlsa = malloc(sizeof(*tlsa));
	if (dane_parse_rdata(data, size, tlsa) == 0 && dane_usable(tlsa) && tlsa->len > DANE_DATA_MAX)
		abort();
	free(tlsa);
	/* the MTA-STS parsers with the same bytes */
	char id[33];
	mta_sts_parse_txt((const char *)data, size, id);
	struct mta_sts_policy sp;
	const char *why;
	if (mta_sts_parse_policy((const char *)data, size, &sp, &why) == 0) {
		mta_sts_mx_match(&sp, "mx1.example.net");
		mta_sts_policy_free(&sp);
	}
	const char *body;
	size_t blen;
	if (mta_sts_http_response((const char *)data, size, opt & 1, &body, &blen, &why) == 1 &&
	    (body < (const char *)data || body + blen > (const char *)data + size))
		abort();
	free(text);
	return 0;
}
