/* libFuzzer target: the IMAP command reader and parser, and the helpers
 * that take client text (sequence sets, modified UTF-7, dates, SEARCH). The
 * input is fed in pieces whose sizes come from its first byte. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imapd/imap-date.h"
#include "imapd/imap-parser.h"
#include "imapd/imap-pool.h"
#include "imapd/imap-search.h"
#include "imapd/imap-seqset.h"
#include "imapd/imap-utf7.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const struct imap_command *cmd, struct pool *pool)
{
	for (size_t i = 0; i < cmd->n_args; i++) {
		const struct imap_arg *a = &cmd->args[i];
		const char *s = imap_arg_astring(a);
		if (s == NULL)
			continue;
		struct seqset set;
		const char *err;
		if (seqset_parse(s, 100, pool, &set, &err) == 0) {
			struct str out = STR_INIT;
			seqset_write(&out, &set);
			str_free(&out);
			(void)seqset_contains(&set, 50);
		}
		struct str u = STR_INIT;
		if (imap_utf7_to_utf8(s, &u) == 0) {
			struct str back = STR_INIT;
			imap_utf8_to_utf7(u.s ? u.s : "", &back);
			str_free(&back);
		}
		str_free(&u);
		int64_t t;
		(void)imap_datetime_parse(s, &t);
		(void)rfc5322_date_parse(s, &t);
	}
	static const char *const kws[] = { "$Junk", "work" };
	struct search_parse_ctx ctx = { .pool = pool, .n_messages = 10, .max_uid = 20,
					.keywords = kws, .n_keywords = 2, .max_depth = 16 };
	struct search_program prog;
	bool badcs;
	const char *err;
	if (search_parse(cmd->args, cmd->n_args, &ctx, &prog, &badcs, &err) == 0) {
		struct store_message rec = { .uid = 5, .flags = 1, .size = 100 };
		static const char msg[] = "Subject: =?utf-8?q?Quy=E1=BA=BFt?=\r\nFrom: a@b.c\r\n"
					  "Date: Tue, 1 Feb 2022 10:00:00 +0700\r\n\r\nbody\r\n";
		struct search_msg m = { .seq = 3, .rec = &rec, .data = msg, .len = sizeof(msg) - 1,
					.have_body = true };
		(void)search_eval(&prog, &m);
		search_msg_clear(&m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct imap_limits limits = { .max_line = 512, .max_literal = 4096,
				      .max_small_literal = 256, .max_command = 16384,
				      .max_depth = 8, .max_args = 200 };
	struct imap_reader *r = imap_reader_new(&limits);
	struct pool *pool = pool_new(0);
	size_t step = (size_t)(data[0] % 17) + 1;
	data++;
	size--;
	size_t pos = 0;
	bool stop = false;
	while (pos < size && !stop) {
		size_t n = size - pos < step ? size - pos : step;
		size_t off = 0;
		while (off < n && !stop) {
			enum imap_read_result res;
			off += imap_reader_feed(r, data + pos + off, n - off, &res);
			if (res == IMAP_READ_FATAL)
				stop = true;
			if (res == IMAP_READ_COMMAND) {
				struct imap_command cmd;
				const char *err;
				if (imap_reader_parse(r, &cmd, &err) == 0)
					exercise(&cmd, pool);
				pool_clear(pool);
			}
		}
		pos += n;
	}
	pool_free(&pool);
	imap_reader_free(&r);
	return 0;
}
