/* libFuzzer target: the spam tokenizer and the message rules over any
 * input (the MIME parser underneath has its own target, fuzz-mime). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter-spam/rules.h"
#include "milter-spam/scan.h"
#include "milter-spam/tokenize.h"
#include "mime.h"

static void sink(void *context, const char *tok, size_t len)
{
	size_t *n = context;
	if (len > 0 && tok[len - 1] != '\0')
		(*n)++;
}

static bool zip_cb(void *context, const char *name, size_t len)
{
	(void)name;
	*(size_t *)context += len;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mime_message *m = mime_parse(msg, size);
	size_t n = 0;
	tokenize_message(msg, size, m, sink, &n);
	struct rule_facts facts;
	rules_examine(msg, size, m, "exe scr js vbs bat", &facts);
	(void)rules_display_name_spoof(&facts, "lamdong.gov.vn sotttt.lamdong.gov.vn");
	mime_message_free(&m);
	uint64_t *keys;
	n = scanner_message_keys(msg, size, &keys);
	free(keys);
	rules_zip_names(data, size, zip_cb, &n);
	if (size < 300) {
		char dom[301];
		for (size_t i = 0; i < size; i++)
			dom[i] = data[i] ? (char)data[i] : 'x';
		dom[size] = '\0';
		(void)rules_lookalike(dom, "lamdong.gov.vn sotttt.lamdong.gov.vn");
		/* The same bytes as a punycode label. */
		char idn[320] = "xn--";
		memcpy(idn + 4, dom, size + 1);
		(void)rules_lookalike(idn, "lamdong.gov.vn");
	}
	return 0;
}
