/* Unit tests of the message parsing library: parse tree, header fields,
 * addresses, RFC 2047/2231, transfer and charset decoding, IMAP
 * ENVELOPE/BODY/BODYSTRUCTURE strings, section numbering, broken MIME,
 * limits, the parse cache and HTML to text. Every message is embedded;
 * the SpamAssassin corpus test runs only when the corpus is present. */
#include "config.h"
#include "charset.h"
#include "html.h"
#include "mime-imap.h"
#include "mime.h"
#include "utf8.h"
#include "xalloc.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct mime_message *parse(const char *s)
{
	return mime_parse(s, strlen(s));
}

static char *bodystructure(const struct mime_message *msg, bool ext, unsigned int flags)
{
	struct str out = STR_INIT;
	mime_imap_bodystructure(mime_message_root(msg), ext, flags, &out);
	return str_steal(&out);
}

static char *envelope(const struct mime_part *part, unsigned int flags)
{
	struct str out = STR_INIT;
	mime_imap_envelope(part->envelope, flags, &out);
	return str_steal(&out);
}

#define ck_str(got, want)                                                                          \
	do {                                                                                       \
		char *g_ = (got);                                                                  \
		ck_assert_str_eq(g_, (want));                                                      \
		free(g_);                                                                          \
	} while (0)

/* The message of Dovecot's test-imap-bodystructure.c, with CRLF line ends
 * (its expected sizes are CRLF "virtual" sizes). Our output equals
 * Dovecot's except that names are written in upper case. */
static const char nested_msg[] =
    "From: user@domain.org\r\n"
    "Date: Sat, 24 Mar 2007 23:00:00 +0200\r\n"
    "Mime-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"foo\r\n"
    " bar\"\r\n"
    "\r\n"
    "Root MIME prologue\r\n"
    "\r\n"
    "--foo bar\r\n"
    "Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\r\n"
    "Content-ID: <foo@example.com>\r\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    "Content-Disposition: inline; foo=bar\r\n"
    "Content-Description: hellodescription\r\n"
    "Content-Language: en, fi, se\r\n"
    "Content-Location: http://example.com/test.txt\r\n"
    "\r\n"
    "hello\r\n"
    "\r\n"
    "--foo bar\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: sub@domain.org\r\n"
    "To: sub-to1@domain.org, sub-to2@domain.org\r\n"
    "Date: Sun, 12 Aug 2012 12:34:56 +0300\r\n"
    "Subject: submsg\r\n"
    "Content-Type: multipart/alternative; boundary=\"sub1\"\r\n"
    "\r\n"
    "Sub MIME prologue\r\n"
    "--sub1\r\n"
    "Content-Type: text/html\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "<p>Hello world</p>\r\n"
    "\r\n"
    "--sub1\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Transfer-Encoding: ?invalid\r\n"
    "\r\n"
    "Hello another world\r\n"
    "\r\n"
    "--sub1--\r\n"
    "Sub MIME epilogue\r\n"
    "\r\n"
    "--foo bar--\r\n"
    "Root MIME epilogue\r\n";

static const char nested_sub_env[] =
    "(\"Sun, 12 Aug 2012 12:34:56 +0300\" \"submsg\" ((NIL NIL \"sub\" \"domain.org\")) "
    "((NIL NIL \"sub\" \"domain.org\")) ((NIL NIL \"sub\" \"domain.org\")) "
    "((NIL NIL \"sub-to1\" \"domain.org\")(NIL NIL \"sub-to2\" \"domain.org\")) NIL NIL NIL "
    "NIL)";

static const char nested_bodystructure[] =
    "((\"TEXT\" \"X-MYOWN\" (\"CHARSET\" \"us-ascii\" \"FOO\" \"quoted\\\"string\") "
    "\"<foo@example.com>\" \"hellodescription\" \"7BIT\" 7 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
    "(\"INLINE\" (\"FOO\" \"bar\")) (\"en\" \"fi\" \"se\") \"http://example.com/test.txt\")"
    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 412 "
    "(\"Sun, 12 Aug 2012 12:34:56 +0300\" \"submsg\" ((NIL NIL \"sub\" \"domain.org\")) "
    "((NIL NIL \"sub\" \"domain.org\")) ((NIL NIL \"sub\" \"domain.org\")) "
    "((NIL NIL \"sub-to1\" \"domain.org\")(NIL NIL \"sub-to2\" \"domain.org\")) NIL NIL NIL "
    "NIL) "
    "((\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"8BIT\" 20 1 NIL NIL NIL NIL)"
    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 21 1 NIL NIL NIL NIL) "
    "\"ALTERNATIVE\" (\"BOUNDARY\" \"sub1\") NIL NIL NIL) 21 NIL NIL NIL NIL) "
    "\"MIXED\" (\"BOUNDARY\" \"foo bar\") NIL NIL NIL)";

static const char nested_body[] =
    "((\"TEXT\" \"X-MYOWN\" (\"CHARSET\" \"us-ascii\" \"FOO\" \"quoted\\\"string\") "
    "\"<foo@example.com>\" \"hellodescription\" \"7BIT\" 7 1)"
    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 412 "
    "(\"Sun, 12 Aug 2012 12:34:56 +0300\" \"submsg\" ((NIL NIL \"sub\" \"domain.org\")) "
    "((NIL NIL \"sub\" \"domain.org\")) ((NIL NIL \"sub\" \"domain.org\")) "
    "((NIL NIL \"sub-to1\" \"domain.org\")(NIL NIL \"sub-to2\" \"domain.org\")) NIL NIL NIL "
    "NIL) "
    "((\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"8BIT\" 20 1)"
    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 21 1) \"ALTERNATIVE\") 21) "
    "\"MIXED\")";

START_TEST(test_nested_bodystructure)
{
	struct mime_message *msg = parse(nested_msg);
	const struct mime_part *root = mime_message_root(msg);

	ck_str(bodystructure(msg, true, 0), nested_bodystructure);
	ck_str(bodystructure(msg, false, 0), nested_body);
	ck_assert_uint_eq(mime_message_part_count(msg), 6);
	ck_assert(mime_part_is_multipart(root));
	ck_assert_uint_eq(root->child_count, 2);
	const struct mime_part *p1 = root->children, *p2 = p1->next;
	ck_assert_str_eq(p1->type, "text");
	ck_assert_str_eq(p1->subtype, "x-myown");
	ck_assert_str_eq(mime_part_param(p1, "foo"), "quoted\"string");
	ck_assert_str_eq(p1->disposition, "inline");
	ck_assert_str_eq(p1->language, "en, fi, se");
	ck_assert(mime_part_is_message(p2));
	ck_assert_ptr_nonnull(p2->children->envelope);
	ck_str(envelope(p2->children, 0), nested_sub_env);
	/* offsets: the first part's body is "hello\r\n" */
	ck_assert_uint_eq(p1->body_len, 7);
	ck_assert(memcmp(nested_msg + p1->body_start, "hello\r\n", 7) == 0);
	/* header_len includes the empty line */
	ck_assert(memcmp(nested_msg + p1->header_start + p1->header_len - 4, "\r\n\r\n", 4) == 0);
	/* the html part ends before the CRLF that precedes --sub1 */
	const struct mime_part *html = p2->children->children;
	ck_assert(memcmp(nested_msg + html->body_start, "<p>Hello world</p>\r\n", 20) == 0);
	ck_assert_uint_eq(html->body_len, 20);
	struct str text = STR_INIT;
	ck_assert_int_eq(
	    mime_part_plain_text(nested_msg, strlen(nested_msg), html, &text, NULL, NULL), 0);
	ck_assert_str_eq(text.s, "Hello world");
	str_truncate(&text, 0);
	mime_part_plain_text(nested_msg, strlen(nested_msg), html->next, &text, NULL, NULL);
	ck_assert_str_eq(text.s, "Hello another world\r\n");
	str_truncate(&text, 0);
	ck_assert_int_eq(
	    mime_part_plain_text(nested_msg, strlen(nested_msg), p2, &text, NULL, NULL), 0);
	ck_assert_uint_eq(text.len, 0);
	str_free(&text);
	/* pre-order walk */
	const char *order[] = {"multipart", "text", "message", "multipart", "text", "text"};
	unsigned int i = 0;
	for (const struct mime_part *p = root; p != NULL; p = mime_part_next(p), i++) {
		ck_assert_uint_lt(i, 6);
		ck_assert_str_eq(p->type, order[i]);
	}
	ck_assert_uint_eq(i, 6);
	mime_message_free(&msg);
	ck_assert_ptr_null(msg);
}
END_TEST

START_TEST(test_simple_message)
{
	const char *m = "From: Nguyen Van A <a@lamdong.gov.vn>\r\n"
	                "To: b@example.com\r\n"
	                "Subject: hi\r\n"
	                "\r\n"
	                "Hello\r\n"
	                "World\r\n";
	struct mime_message *msg = parse(m);

	ck_str(bodystructure(msg, true, 0), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL "
	                                    "NIL \"7BIT\" 14 2 NIL NIL NIL NIL)");
	ck_str(bodystructure(msg, false, 0),
	       "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 14 2)");
	ck_str(envelope(mime_message_root(msg), 0),
	       "(NIL \"hi\" ((\"Nguyen Van A\" NIL \"a\" \"lamdong.gov.vn\")) "
	       "((\"Nguyen Van A\" NIL \"a\" \"lamdong.gov.vn\")) "
	       "((\"Nguyen Van A\" NIL \"a\" \"lamdong.gov.vn\")) "
	       "((NIL NIL \"b\" \"example.com\")) NIL NIL NIL NIL)");
	ck_assert_str_eq(mime_part_charset(mime_message_root(msg)), "us-ascii");
	ck_assert_uint_eq(mime_message_size(msg), strlen(m));
	mime_message_free(&msg);

	/* lines are LFs: a last line without one is not counted (as Dovecot) */
	msg = parse("Subject: x\r\n\r\nabc");
	ck_assert_uint_eq(mime_message_root(msg)->body_lines, 0);
	mime_message_free(&msg);
	msg = parse("Subject: x\r\n\r\nabc\r\nd");
	ck_assert_uint_eq(mime_message_root(msg)->body_lines, 1);
	mime_message_free(&msg);
	msg = parse("Subject: x\r\n\r\n");
	ck_assert_uint_eq(mime_message_root(msg)->body_lines, 0);
	ck_assert_uint_eq(mime_message_root(msg)->body_len, 0);
	mime_message_free(&msg);
}
END_TEST

START_TEST(test_envelope_fields)
{
	const char *m = "Date:  Fri, 27 Nov 2026 10:00:00 +0700 \r\n"
	                "Subject: =?UTF-8?B?UXV54bq/dCDEkOG7i25o?=\r\n"
	                "\tso 12\r\n"
	                "From: \"Doe, John\" <john@example.com>\r\n"
	                "Sender: sec@example.com\r\n"
	                "Reply-To: <>\r\n"
	                "To: undisclosed-recipients:;\r\n"
	                "Cc: \r\n"
	                "In-Reply-To: <a@b>\r\n"
	                "Message-ID: <id1@lamdong.gov.vn>\r\n"
	                "Subject: second subject is ignored\r\n"
	                "\r\n"
	                "body\r\n";
	struct mime_message *msg = parse(m);
	const struct mime_envelope *env = mime_message_root(msg)->envelope;

	ck_assert_str_eq(env->date, "Fri, 27 Nov 2026 10:00:00 +0700");
	ck_assert_str_eq(env->subject, "=?UTF-8?B?UXV54bq/dCDEkOG7i25o?=\tso 12");
	ck_assert_ptr_null(env->cc);
	ck_assert_ptr_null(env->bcc);
	ck_str(envelope(mime_message_root(msg), 0),
	       "(\"Fri, 27 Nov 2026 10:00:00 +0700\" \"=?UTF-8?B?UXV54bq/dCDEkOG7i25o?=\tso 12\" "
	       "((\"Doe, John\" NIL \"john\" \"example.com\")) "
	       "((NIL NIL \"sec\" \"example.com\")) "
	       "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) "
	       "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
	       "NIL NIL \"<a@b>\" \"<id1@lamdong.gov.vn>\")");
	struct str dec = STR_INIT;
	ck_assert_int_eq(charset_decode_header(env->subject, strlen(env->subject), &dec), 0);
	ck_assert_str_eq(dec.s, "Quyết Định\tso 12");
	str_free(&dec);
	mime_message_free(&msg);

	/* no header at all: every field NIL */
	msg = parse("\r\nbody only\r\n");
	ck_str(envelope(mime_message_root(msg), 0), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	mime_message_free(&msg);
}
END_TEST

START_TEST(test_envelope_8bit)
{
	/* 8-bit header text: a literal, or a quoted string under UTF8=ACCEPT */
	struct mime_message *msg = parse("Subject: Quyết\r\nFrom: Bé <b@x.vn>\r\n\r\n");
	ck_str(
	    envelope(mime_message_root(msg), 0),
	    "(NIL {7}\r\nQuyết (({3}\r\nBé NIL \"b\" \"x.vn\")) (({3}\r\nBé NIL \"b\" \"x.vn\")) "
	    "(({3}\r\nBé NIL \"b\" \"x.vn\")) NIL NIL NIL NIL NIL)");
	ck_str(envelope(mime_message_root(msg), MIME_IMAP_UTF8),
	       "(NIL \"Quyết\" ((\"Bé\" NIL \"b\" \"x.vn\")) ((\"Bé\" NIL \"b\" \"x.vn\")) "
	       "((\"Bé\" NIL \"b\" \"x.vn\")) NIL NIL NIL NIL NIL)");
	mime_message_free(&msg);

	/* invalid UTF-8 is a literal even under UTF8=ACCEPT */
	struct str out = STR_INIT;
	mime_imap_append_string(&out, "a\xff", 2, MIME_IMAP_UTF8);
	ck_assert_uint_eq(out.len, 7);
	ck_assert(memcmp(out.s, "{2}\r\na\xff", 7) == 0);
	str_truncate(&out, 0);
	mime_imap_append_string(&out, "a\"b\\c", 5, 0);
	ck_assert_str_eq(out.s, "\"a\\\"b\\\\c\"");
	str_truncate(&out, 0);
	mime_imap_append_string(&out, "a\0b", 3, 0);
	ck_assert_str_eq(out.s, "\"ab\"");
	str_truncate(&out, 0);
	mime_imap_append_nstring(&out, NULL, 0);
	ck_assert_str_eq(out.s, "NIL");
	str_free(&out);
}
END_TEST

static char *address_imap(const char *value)
{
	struct mime_address_list *list = mime_address_parse(value, strlen(value));
	struct mime_envelope env;
	struct str out = STR_INIT;

	memset(&env, 0, sizeof(env));
	env.to = (struct mime_address *)mime_address_list_first(list);
	mime_imap_envelope(&env, 0, &out);
	mime_address_list_free(&list);
	ck_assert_ptr_null(list);
	/* keep only the To list: after "(NIL NIL NIL NIL NIL " */
	char *s = str_steal(&out);
	const char *to = s + strlen("(NIL NIL NIL NIL NIL ");
	size_t n = strlen(to) - strlen(" NIL NIL NIL NIL)");
	char *r = xstrndup(to, n);
	free(s);
	return r;
}

START_TEST(test_addresses)
{
	ck_str(
	    address_imap("\"Doe, John\" <john@example.com>, undisclosed-recipients:;, root, "
	                 "\"quoted local\"@example.com, <@route1,@route2:user@host>, "
	                 "Mary (comment) <mary@x.org>, bob@x.org (Bob Smith), "
	                 "=?UTF-8?B?VHLhuqduIFbEg24gQg==?= <b@lamdong.gov.vn>, team: a@x, b@y;"),
	    "((\"Doe, John\" NIL \"john\" \"example.com\")"
	    "(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)"
	    "(NIL NIL \"root\" \"MISSING_DOMAIN\")"
	    "(NIL NIL \"quoted local\" \"example.com\")"
	    "(NIL \"@route1,@route2\" \"user\" \"host\")"
	    "(\"Mary\" NIL \"mary\" \"x.org\")"
	    "(\"Bob Smith\" NIL \"bob\" \"x.org\")"
	    "(\"=?UTF-8?B?VHLhuqduIFbEg24gQg==?=\" NIL \"b\" \"lamdong.gov.vn\")"
	    "(NIL NIL \"team\" NIL)(NIL NIL \"a\" \"x\")(NIL NIL \"b\" \"y\")(NIL NIL NIL NIL))");
	/* folded, with comments and obsolete spaces around the dot-atom */
	ck_str(address_imap("Van\r\n B <v.b@x.vn>,\r\n\t(only comment) ,, c@d"),
	       "((\"Van B\" NIL \"v.b\" \"x.vn\")(NIL NIL \"c\" \"d\"))");
	/* broken: a name without <>, an unclosed <, an unterminated group */
	ck_str(address_imap("John Doe john@x.com"), "((\"John Doe\" NIL \"john\" \"x.com\"))");
	ck_str(address_imap("<a@b"), "((NIL NIL \"a\" \"b\"))");
	ck_str(address_imap("grp: a@b"),
	       "((NIL NIL \"grp\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL))");
	ck_str(address_imap("@"), "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
	ck_str(address_imap(""), "NIL");
	ck_str(address_imap(" , ,"), "NIL");

	struct mime_address_list *list = mime_address_parse("a@b, c", 6);
	const struct mime_address *a = mime_address_list_first(list);
	ck_assert(!a->invalid);
	ck_assert(a->next->invalid);
	ck_assert_ptr_null(a->next->host);
	mime_address_list_free(&list);

	/* a huge list stops at MIME_MAX_ADDRESSES */
	struct str big = STR_INIT;
	for (int i = 0; i < MIME_MAX_ADDRESSES + 50; i++)
		str_appends(&big, "a@b,");
	list = mime_address_parse(big.s, big.len);
	unsigned int n = 0;
	for (a = mime_address_list_first(list); a != NULL; a = a->next)
		n++;
	ck_assert_uint_eq(n, MIME_MAX_ADDRESSES);
	mime_address_list_free(&list);
	str_free(&big);
}
END_TEST

START_TEST(test_encoded_words)
{
	static const struct {
		const char *in, *out;
		int ret;
	} cases[] = {
	    {"=?UTF-8?B?UXV54bq/dCDEkOG7i25o?=", "Quyết Định", 0},
	    {"=?utf-8?q?Hello_World?=", "Hello World", 0},
	    {"=?ISO-8859-1?Q?Caf=E9?= au lait", "Café au lait", 0},
	    {"=?windows-1258?Q?Quy=EA=ECt_=D0i=F2nh?=", "Quyết Định", 0},
	    /* whitespace between encoded words is dropped (RFC 2047 6.2) */
	    {"=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab", 0},
	    {"=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?= c", "ab c", 0},
	    {"=?UTF-8?Q?a?= b", "a b", 0},
	    /* a UTF-8 character split over two words */
	    {"=?UTF-8?B?xA==?= =?UTF-8?B?kA==?=", "Đ", 0},
	    /* RFC 2231 language suffix */
	    {"=?UTF-8*vi?Q?=C4=91?=", "đ", 0},
	    /* inside a word, and unknown encodings kept */
	    {"x=?utf-8?q?y?=z", "xyz", 0},
	    {"=?utf-8?x?abc?=", "=?utf-8?x?abc?=", 0},
	    {"=?utf-8?q?unterminated", "=?utf-8?q?unterminated", 0},
	    /* raw 8-bit: UTF-8 kept, else windows-1252 */
	    {"Tiếng Việt", "Tiếng Việt", 0},
	    {"Caf\xe9", "Café", 1},
	    /* unknown charset: UTF-8 with replacement */
	    {"=?x-nonexistent?B?/w==?=", "\xef\xbf\xbd", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct str out = STR_INIT;
		int r = charset_decode_header(cases[i].in, strlen(cases[i].in), &out);
		ck_assert_msg(strcmp(out.s, cases[i].out) == 0, "case %zu: got [%s]", i, out.s);
		ck_assert_int_eq(r, cases[i].ret);
		str_free(&out);
	}
}
END_TEST

/* charset.c keeps iconv descriptors between calls: a descriptor left in a
 * shift state or with a half-read sequence must not leak into the next
 * conversion, and more charsets than the pool holds still convert. */
START_TEST(test_charset_iconv_reuse)
{
	static const char *const names[] = {
		"iso-8859-1", "iso-8859-2", "iso-8859-5", "iso-8859-7", "iso-8859-15",
		"windows-1250", "windows-1251", "windows-1252", "windows-1258", "koi8-r",
		"koi8-u", "cp437", "cp850", "cp866", "macintosh", "tis-620", "big5",
		"gb2312", "euc-kr", "shift_jis"};
	struct str first[20], again = STR_INIT;
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < 20; i++) {
			struct str *o = round == 0 ? &first[i] : &again;
			if (round == 0)
				first[i] = (struct str)STR_INIT;
			str_truncate(o, 0);
			charset_to_utf8(names[i], "a\xa4\xe9\xb1\xc3z", 6, o);
			if (round > 0)
				ck_assert_str_eq(again.s, first[i].s);
		}
	}
	for (size_t i = 0; i < 20; i++)
		str_free(&first[i]);
	/* ISO-2022-JP left shifted into JIS X 0208, then plain ASCII */
	str_truncate(&again, 0);
	charset_to_utf8("iso-2022-jp", "\x1b$B$3", 5, &again);
	str_truncate(&again, 0);
	ck_assert_int_eq(charset_to_utf8("iso-2022-jp", "$3$s", 4, &again), 0);
	ck_assert_str_eq(again.s, "$3$s");
	str_truncate(&again, 0);
	ck_assert_int_eq(charset_to_utf8("iso-2022-jp", "\x1b$B$3$s\x1b(B!", 12, &again), 0);
	ck_assert_str_eq(again.s, "\xe3\x81\x93\xe3\x82\x93!");
	/* UTF-16 cut in the middle of a unit, then a whole one */
	str_truncate(&again, 0);
	charset_to_utf8("utf-16be", "\x00", 1, &again);
	str_truncate(&again, 0);
	ck_assert_int_eq(charset_to_utf8("utf-16be", "\x00\x41", 2, &again), 0);
	ck_assert_str_eq(again.s, "A");
	str_free(&again);
}
END_TEST

START_TEST(test_transfer_decoding)
{
	struct str out = STR_INIT;

	ck_assert_int_eq(charset_base64_decode("SGVs\r\nbG8=", 10, &out), 0);
	ck_assert_str_eq(out.s, "Hello");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_base64_decode("SGVsbG8", 7, &out), 1);
	ck_assert_str_eq(out.s, "Hello");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_base64_decode("SG!Vs", 5, &out), 1);
	ck_assert_str_eq(out.s, "Hel");
	str_truncate(&out, 0);
	/* two encodings concatenated */
	ck_assert_int_eq(charset_base64_decode("YQ==Yg==", 8, &out), 0);
	ck_assert_str_eq(out.s, "ab");
	str_truncate(&out, 0);

	const char *qp = "caf=C3=A9 =\r\nau  \r\nlait=3d=3D=\nx=ZZ";
	ck_assert_int_eq(charset_qp_decode(qp, strlen(qp), &out), 1);
	ck_assert_str_eq(out.s, "café au\r\nlait==x=ZZ");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_qword_decode("a_b=20c", 7, &out), 0);
	ck_assert_str_eq(out.s, "a b c");
	str_truncate(&out, 0);

	ck_assert_int_eq(charset_rfc2231_decode("utf-8'vi'Quy%E1%BA%BFt", 22, &out), 0);
	ck_assert_str_eq(out.s, "Quyết");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_rfc2231_decode("iso-8859-1''%E9", 15, &out), 0);
	ck_assert_str_eq(out.s, "é");
	str_truncate(&out, 0);

	ck_assert_int_eq(charset_to_utf8("windows-1258", "Vi\xea\xf2t", 5, &out), 0);
	ck_assert_str_eq(out.s, "Việt");
	str_truncate(&out, 0);
	/* us-ascii labels are read as windows-1252 */
	ck_assert_int_eq(charset_to_utf8("us-ascii", "\x93x\x94", 3, &out), 0);
	ck_assert_str_eq(out.s, "\xe2\x80\x9cx\xe2\x80\x9d");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_to_utf8("utf-8", "ok\xc3", 3, &out), 1);
	ck_assert_str_eq(out.s, "ok\xef\xbf\xbd");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_to_utf8("ISO-2022-JP", "\x1b$B$3$s\x1b(B", 10, &out), 0);
	ck_assert_str_eq(out.s, "こん");
	str_truncate(&out, 0);
	/* UTF-16 text made only of ASCII letters still goes through iconv */
	ck_assert_int_eq(charset_to_utf8("UTF-16LE", "h\0i\0", 4, &out), 0);
	ck_assert_str_eq(out.s, "hi");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_to_utf8("utf-16", "\xff\xfeo\0k\0", 6, &out), 0);
	ck_assert_str_eq(out.s, "ok");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_to_utf8("UTF-7", "+AOk-t+AOk-", 11, &out), 0);
	ck_assert_str_eq(out.s, "été");
	str_truncate(&out, 0);
	ck_assert_int_eq(charset_to_utf8("../../etc/x//TRANSLIT", "a\xff", 2, &out), 1);
	ck_assert_str_eq(out.s, "a\xef\xbf\xbd");
	str_free(&out);
	ck_assert(charset_is_known("Windows-1258"));
	ck_assert(charset_is_known("utf8"));
	ck_assert(!charset_is_known("x-nonexistent"));
	ck_assert(!charset_is_known(NULL));
}
END_TEST

static const char attach_msg[] =
    "From: a@b.c\r\n"
    "Subject: =?UTF-8?B?QsOhbyBjw6FvLnBkZg==?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=XX\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Type: text/plain; charset=windows-1258\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Quy=EA=ECt =D0i=F2nh\r\n"
    "--XX\r\n"
    "Content-Type: application/pdf; name=\"=?UTF-8?B?QsOhbyBjw6FvLnBkZg==?=\"\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*0*=utf-8''Quy%E1%BA%BFt;\r\n"
    " filename*1*=%20%C4%91%E1%BB%8Bnh; filename*2=.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Description: =?UTF-8?Q?T=C3=A0i_li=E1=BB=87u?=\r\n"
    "\r\n"
    "JVBERi0xLjQK\r\n"
    "--XX--\r\n";

START_TEST(test_attachment_params)
{
	struct mime_message *msg = parse(attach_msg);
	const struct mime_part *root = mime_message_root(msg);
	const struct mime_part *text = root->children, *pdf = text->next;

	ck_str(
	    bodystructure(msg, true, 0),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"windows-1258\") NIL NIL \"QUOTED-PRINTABLE\" 20 0 "
	    "NIL NIL NIL NIL)"
	    "(\"APPLICATION\" \"PDF\" (\"NAME\" \"=?UTF-8?B?QsOhbyBjw6FvLnBkZg==?=\") NIL "
	    "\"=?UTF-8?Q?T=C3=A0i_li=E1=BB=87u?=\" \"BASE64\" 12 NIL "
	    "(\"ATTACHMENT\" (\"FILENAME*\" \"utf-8''Quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh.pdf\")) NIL "
	    "NIL) \"MIXED\" (\"BOUNDARY\" \"XX\") NIL NIL NIL)");
	/* under UTF8=ACCEPT the decoded name is sent instead */
	char *bs = bodystructure(msg, true, MIME_IMAP_UTF8);
	ck_assert_ptr_nonnull(strstr(bs, "(\"ATTACHMENT\" (\"FILENAME\" \"Quyết định.pdf\"))"));
	free(bs);

	ck_assert_str_eq(mime_part_filename(pdf), "Quyết định.pdf");
	ck_assert_str_eq(mime_part_param(pdf, "name"), "Báo cáo.pdf");
	ck_assert_str_eq(pdf->description_utf8, "Tài liệu");
	ck_assert(mime_part_is_attachment(pdf));
	ck_assert(!mime_part_is_attachment(text));
	ck_assert(pdf->disposition_params[0].extended);
	ck_assert_str_eq(pdf->disposition_params[0].name, "filename");

	struct str out = STR_INIT;
	ck_assert_int_eq(mime_part_decode_body(attach_msg, strlen(attach_msg), pdf, &out), 0);
	ck_assert_str_eq(out.s, "%PDF-1.4\n");
	str_truncate(&out, 0);
	ck_assert_int_eq(mime_part_text_utf8(attach_msg, strlen(attach_msg), text, &out), 0);
	ck_assert_str_eq(out.s, "Quyết Định");
	struct str key = STR_INIT;
	utf8_search_key(out.s, out.len, &key);
	ck_assert_str_eq(key.s, "quyet dinh");
	str_free(&key);
	str_free(&out);
	mime_message_free(&msg);
}
END_TEST

START_TEST(test_params_edge_cases)
{
	const char *m = "Content-Type: Text/HTML ; (comment) CharSet = \"UTF-8\" ; ;junk;"
	                " name=my file.htm ; x*1=b; x*0=a; x*3=gap; charset=second;"
	                " y*=iso-8859-1'en'%E9t%E9\r\n"
	                "Content-Transfer-Encoding: Base64 (comment)\r\n"
	                "Content-Disposition: INLINE\r\n"
	                "Content-Location: http://x.vn/\r\n  a.html\r\n"
	                "\r\n"
	                "PGI+/w==\r\n";
	struct mime_message *msg = parse(m);
	const struct mime_part *p = mime_message_root(msg);

	ck_assert_str_eq(p->type, "text");
	ck_assert_str_eq(p->subtype, "html");
	ck_assert_str_eq(p->encoding, "base64");
	ck_assert_str_eq(mime_part_charset(p), "UTF-8");
	ck_assert_str_eq(mime_part_param(p, "name"), "my file.htm");
	ck_assert_str_eq(mime_part_param(p, "x"), "ab");
	ck_assert_str_eq(mime_part_param(p, "y"), "été");
	ck_assert_str_eq(p->location, "http://x.vn/a.html");
	ck_assert_str_eq(p->disposition, "inline");
	ck_str(bodystructure(msg, true, 0),
	       "(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\" \"NAME\" \"my file.htm\" \"X\" \"ab\" "
	       "\"Y*\" \"iso-8859-1'en'%E9t%E9\") NIL NIL \"BASE64\" 10 1 NIL (\"INLINE\" NIL) NIL "
	       "\"http://x.vn/a.html\")");
	struct str out = STR_INIT;
	/* invalid UTF-8 after decoding is replaced */
	ck_assert_int_eq(mime_part_text_utf8(m, strlen(m), p, &out), 1);
	ck_assert_str_eq(out.s, "<b>\xef\xbf\xbd");
	str_free(&out);
	mime_message_free(&msg);

	/* empty values (once left unterminated: found by fuzzing) */
	msg = parse("Content-Type: a/b; name=\"\"; e=; q*0*=; z=\"\\\"\r\n\r\n");
	p = mime_message_root(msg);
	ck_assert_str_eq(mime_part_param(p, "name"), "");
	ck_assert_str_eq(mime_part_param(p, "e"), "");
	ck_assert_str_eq(mime_part_param(p, "q"), "");
	ck_assert_str_eq(mime_part_param(p, "z"), "\"");
	mime_message_free(&msg);

	/* invalid Content-Type: defaults, flagged */
	const char *bad = "Content-Type: text\r\nContent-Transfer-Encoding: x-uue\r\n\r\nhi\r\n";
	msg = parse(bad);
	p = mime_message_root(msg);
	ck_assert_str_eq(p->type, "text");
	ck_assert_str_eq(p->subtype, "plain");
	ck_assert(p->flags & MIME_PART_F_BAD_CTYPE);
	out = (struct str)STR_INIT;
	ck_assert_int_eq(mime_part_decode_body(bad, strlen(bad), p, &out), -1);
	ck_assert_str_eq(out.s, "hi\r\n");
	str_free(&out);
	mime_message_free(&msg);
}
END_TEST

START_TEST(test_headers)
{
	const char *h = "Received: from a\r\n\tby b\r\n"
	                "X-Bad line without colon\r\n"
	                "Subject : obs space\r\n"
	                "X-Empty:\r\n"
	                "\r\n"
	                "Not-A-Header: body\r\n";
	struct mime_header_iter it;
	struct mime_header hdr;
	struct str out = STR_INIT;

	mime_header_iter_init(&it, h, strlen(h));
	ck_assert(mime_header_iter_next(&it, &hdr));
	ck_assert_uint_eq(hdr.name_len, 8);
	ck_assert(memcmp(hdr.name, "Received", 8) == 0);
	ck_assert_uint_eq(hdr.value_len, strlen(" from a\r\n\tby b"));
	mime_header_unfold(hdr.value, hdr.value_len, &out);
	ck_assert_str_eq(out.s, "from a\tby b");
	ck_assert(mime_header_iter_next(&it, &hdr));
	ck_assert_uint_eq(hdr.name_len, 7);
	ck_assert(memcmp(hdr.name, "Subject", 7) == 0);
	ck_assert(mime_header_iter_next(&it, &hdr));
	ck_assert_uint_eq(hdr.value_len, 0);
	ck_assert(!mime_header_iter_next(&it, &hdr));
	ck_assert(!mime_header_iter_next(&it, &hdr));

	ck_assert(mime_header_find(h, strlen(h), "x-EMPTY", &hdr));
	ck_assert(!mime_header_find(h, strlen(h), "Not-A-Header", &hdr));
	ck_assert(!mime_header_find(h, strlen(h), "X-Bad", &hdr));
	str_free(&out);

	struct mime_message *msg = parse(h);
	ck_assert(mime_message_root(msg)->flags & MIME_PART_F_BAD_HEADER);
	ck_assert(!(mime_message_root(msg)->flags & MIME_PART_F_NO_BODY_SEP));
	mime_message_free(&msg);
}
END_TEST

START_TEST(test_sections)
{
	struct mime_message *msg = parse(nested_msg);
	const struct mime_part *root = mime_message_root(msg), *p;
	size_t used;

	p = mime_imap_section(root, "", 0, &used);
	ck_assert_ptr_eq(p, root);
	ck_assert_uint_eq(used, 0);
	p = mime_imap_section(root, "1", 1, &used);
	ck_assert_ptr_eq(p, root->children);
	ck_assert_uint_eq(used, 1);
	p = mime_imap_section(root, "1.MIME", 6, &used);
	ck_assert_ptr_eq(p, root->children);
	ck_assert_uint_eq(used, 2);
	p = mime_imap_section(root, "2.HEADER", 8, &used);
	ck_assert_ptr_eq(p, root->children->next);
	ck_assert_ptr_eq(mime_imap_section_message(p), p->children);
	ck_assert_ptr_null(mime_imap_section_message(root->children));
	p = mime_imap_section(root, "2.1", 3, &used);
	ck_assert_str_eq(p->subtype, "html");
	p = mime_imap_section(root, "2.2.MIME", 8, &used);
	ck_assert_str_eq(p->subtype, "plain");
	ck_assert_uint_eq(used, 4);
	ck_assert_ptr_null(mime_imap_section(root, "3", 1, &used));
	ck_assert_ptr_null(mime_imap_section(root, "0", 1, &used));
	ck_assert_ptr_null(mime_imap_section(root, "01", 2, &used));
	ck_assert_ptr_null(mime_imap_section(root, "2.1.1", 5, &used));
	ck_assert_ptr_null(mime_imap_section(root, "1x", 2, &used));
	ck_assert_ptr_null(mime_imap_section(root, "99999999999", 11, &used));
	mime_message_free(&msg);

	/* a single-part message has part 1: itself */
	msg = parse("Subject: x\r\n\r\nbody\r\n");
	root = mime_message_root(msg);
	ck_assert_ptr_eq(mime_imap_section(root, "1", 1, &used), root);
	ck_assert_ptr_null(mime_imap_section(root, "2", 1, &used));
	ck_assert_ptr_null(mime_imap_section(root, "1.1", 3, &used));
	mime_message_free(&msg);

	/* message/rfc822 holding a single part: N.1 is its body */
	msg = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	            "Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner\r\n--b--\r\n");
	root = mime_message_root(msg);
	p = mime_imap_section(root, "1.1", 3, &used);
	ck_assert_ptr_eq(p, root->children->children);
	ck_assert_uint_eq(p->body_len, 5);
	mime_message_free(&msg);
}
END_TEST

START_TEST(test_broken_mime)
{
	struct mime_message *msg;
	const struct mime_part *root;

	/* missing close delimiter */
	msg = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\n");
	root = mime_message_root(msg);
	ck_assert(root->flags & MIME_PART_F_NO_END_BOUNDARY);
	ck_str(
	    bodystructure(msg, true, 0),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL) "
	    "\"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL)");
	mime_message_free(&msg);

	/* multipart without boundary: a leaf, shown with an empty part */
	msg = parse("Content-Type: multipart/mixed\r\n\r\nhello\r\n");
	root = mime_message_root(msg);
	ck_assert(root->flags & MIME_PART_F_NO_BOUNDARY);
	ck_assert_ptr_null(root->children);
	ck_str(
	    bodystructure(msg, true, 0),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL) "
	    "\"MIXED\" NIL NIL NIL NIL)");
	ck_str(bodystructure(msg, false, 0),
	       "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) \"MIXED\")");
	mime_message_free(&msg);

	/* boundary never found */
	msg = parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\nhello\r\n");
	ck_assert_ptr_null(mime_message_root(msg)->children);
	mime_message_free(&msg);

	/* no header/body separator */
	msg = parse("Subject: x\r\nFrom: y");
	root = mime_message_root(msg);
	ck_assert(root->flags & MIME_PART_F_NO_BODY_SEP);
	ck_assert_uint_eq(root->header_len, 19);
	ck_assert_uint_eq(root->body_len, 0);
	ck_str(
	    bodystructure(msg, true, 0),
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)");
	mime_message_free(&msg);

	/* a part with no header at all, an empty part, preamble and epilogue,
	 * LF-only line ends, transport padding after the delimiter */
	msg = parse("Content-Type: multipart/mixed; boundary=\"b\"\n\npre\n--b  \nhello\n--b\n"
	            "\n--b\n\n\n--b--\nepilogue\n--b\nnot a part\n");
	root = mime_message_root(msg);
	ck_assert_uint_eq(root->child_count, 3);
	ck_assert(root->flags & MIME_PART_F_BARE_LF);
	const struct mime_part *p = root->children;
	ck_assert_uint_eq(p->header_len, 0);
	ck_assert(p->flags & MIME_PART_F_NO_BODY_SEP);
	ck_assert_uint_eq(p->body_len, 5);
	/* "--b\n\n--b": the line end belongs to the delimiter: nothing left */
	ck_assert_uint_eq(p->next->body_len, 0);
	ck_assert_uint_eq(p->next->header_len, 0);
	ck_assert_uint_eq(p->next->next->header_len, 1);
	ck_assert_uint_eq(p->next->next->body_len, 0);
	ck_assert_uint_eq(p->next->next->body_lines, 0);
	mime_message_free(&msg);

	/* an inner boundary that extends the outer one: the outer level must
	 * not split at the inner delimiters (strict matching first) */
	msg = parse("Content-Type: multipart/related; boundary=\"X\"\r\n\r\n"
	            "--X\r\nContent-Type: multipart/alternative; boundary=\"XAA\"\r\n\r\n"
	            "--XAA\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
	            "--XAA\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n--XAA--\r\n\r\n"
	            "--X\r\nContent-Type: image/gif\r\n\r\nGIF\r\n--X--\r\n");
	root = mime_message_root(msg);
	ck_assert_uint_eq(root->child_count, 2);
	ck_assert_str_eq(root->children->subtype, "alternative");
	ck_assert_uint_eq(root->children->child_count, 2);
	ck_assert_str_eq(root->children->children->next->subtype, "html");
	ck_assert_uint_eq(root->children->children->next->body_len, 11);
	ck_assert_str_eq(root->children->next->subtype, "gif");
	ck_assert(!(root->flags & MIME_PART_F_NO_END_BOUNDARY));
	mime_message_free(&msg);

	/* delimiters followed by junk only: prefix matching as the fallback */
	msg = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b junk\r\n\r\none\r\n"
	            "--b=x\r\n\r\ntwo\r\n--b--junk\r\n");
	root = mime_message_root(msg);
	ck_assert_uint_eq(root->child_count, 2);
	ck_assert_uint_eq(root->children->next->body_len, 3);
	ck_assert(!(root->flags & MIME_PART_F_NO_END_BOUNDARY));
	mime_message_free(&msg);

	/* NUL bytes and 8-bit in the header */
	static const char nul[] = "Subject: a\0b\xe9\r\n\r\nx\0y";
	msg = mime_parse(nul, sizeof(nul) - 1);
	root = mime_message_root(msg);
	ck_assert(root->flags & MIME_PART_F_NUL);
	ck_assert(root->flags & MIME_PART_F_8BIT_HEADER);
	ck_assert_str_eq(root->envelope->subject, "ab\xe9");
	ck_assert_uint_eq(root->body_len, 3);
	mime_message_free(&msg);

	/* base64 message/rfc822: not descended into, still a valid body-type-msg */
	msg = parse("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	            "U3ViamVjdDogeA0KDQp5\r\n");
	ck_assert_ptr_null(mime_message_root(msg)->children);
	ck_str(bodystructure(msg, false, 0),
	       "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"BASE64\" 22 "
	       "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
	       "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) 1)");
	mime_message_free(&msg);

	/* multipart/digest: parts default to message/rfc822 */
	msg = parse(
	    "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\n"
	    "1\r\n--d\r\nContent-Type: text/plain\r\n\r\n2\r\n--d--\r\n");
	root = mime_message_root(msg);
	ck_assert(mime_part_is_message(root->children));
	ck_assert_str_eq(root->children->children->envelope->subject, "one");
	ck_assert_str_eq(root->children->next->type, "text");
	mime_message_free(&msg);

	/* empty input and NULL */
	msg = mime_parse(NULL, 0);
	ck_str(
	    bodystructure(msg, true, 0),
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)");
	mime_message_free(&msg);
}
END_TEST

static unsigned int max_depth(const struct mime_part *p)
{
	unsigned int d = p->depth;
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		unsigned int cd = max_depth(c);
		if (cd > d)
			d = cd;
	}
	return d;
}

/* Parentheses balance outside quoted strings and literals. */
static bool balanced(const char *s)
{
	long depth = 0;
	bool quoted = false;
	for (; *s != '\0'; s++) {
		if (quoted) {
			if (*s == '\\')
				s++;
			else if (*s == '"')
				quoted = false;
		} else if (*s == '"') {
			quoted = true;
		} else if (*s == '{') {
			char *end;
			unsigned long n = strtoul(s + 1, &end, 10);
			if (end[0] != '}' || end[1] != '\r' || end[2] != '\n' ||
			    strlen(end + 3) < n)
				return false;
			s = end + 2 + n;
		} else if (*s == '(') {
			depth++;
		} else if (*s == ')') {
			if (--depth < 0)
				return false;
		}
	}
	return depth == 0 && !quoted;
}

START_TEST(test_limits)
{
	struct str m = STR_INIT;
	struct mime_message *msg;

	/* 40 levels of multipart: parsing stops at MIME_MAX_DEPTH */
	for (int i = 0; i < 40; i++)
		str_printf(&m, "Content-Type: multipart/mixed; boundary=b%dz\r\n\r\n--b%dz\r\n", i,
		           i);
	str_appends(&m, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	msg = mime_parse(m.s, m.len);
	ck_assert_uint_eq(max_depth(mime_message_root(msg)), MIME_MAX_DEPTH);
	const struct mime_part *p = mime_message_root(msg);
	while (p->children != NULL)
		p = p->children;
	ck_assert(p->flags & MIME_PART_F_LIMIT);
	char *bs = bodystructure(msg, true, 0);
	ck_assert(balanced(bs));
	free(bs);
	mime_message_free(&msg);

	/* message/rfc822 nested 40 deep */
	str_truncate(&m, 0);
	for (int i = 0; i < 40; i++)
		str_appends(&m, "Content-Type: message/rfc822\r\n\r\n");
	str_appends(&m, "Subject: core\r\n\r\nx\r\n");
	msg = mime_parse(m.s, m.len);
	ck_assert_uint_eq(max_depth(mime_message_root(msg)), MIME_MAX_DEPTH);
	bs = bodystructure(msg, true, 0);
	ck_assert(balanced(bs));
	free(bs);
	mime_message_free(&msg);

	/* more parts than MIME_MAX_PARTS */
	str_truncate(&m, 0);
	str_appends(&m, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS + 100; i++)
		str_appends(&m, "--p\r\n\r\nx\r\n");
	str_appends(&m, "--p--\r\n");
	msg = mime_parse(m.s, m.len);
	ck_assert_uint_eq(mime_message_part_count(msg), MIME_MAX_PARTS);
	ck_assert(mime_message_root(msg)->flags & MIME_PART_F_LIMIT);
	mime_message_free(&msg);

	/* a 10 MB header line and a 10 MB body line */
	str_truncate(&m, 0);
	str_appends(&m, "Subject: ");
	size_t big = 10 * 1024 * 1024;
	str_reserve(&m, 2 * big + 64);
	memset(m.s + m.len, 'a', big);
	m.len += big;
	str_appends(&m, "\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n");
	memset(m.s + m.len, 'b', big);
	m.len += big;
	m.s[m.len] = '\0';
	msg = mime_parse(m.s, m.len);
	ck_assert_uint_eq(strlen(mime_message_root(msg)->envelope->subject), big);
	ck_assert_uint_eq(mime_message_root(msg)->children->body_len, big);
	ck_assert_uint_eq(mime_message_root(msg)->children->body_lines, 0);
	mime_message_free(&msg);

	/* many lines that almost match the boundary */
	str_truncate(&m, 0);
	str_appends(
	    &m,
	    "Content-Type: multipart/mixed; boundary=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n");
	for (int i = 0; i < 200000; i++)
		str_appends(&m, "--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	msg = mime_parse(m.s, m.len);
	ck_assert_ptr_null(mime_message_root(msg)->children);
	mime_message_free(&msg);

	/* thousands of encoded-word starts and parameters in one header */
	str_truncate(&m, 0);
	str_appends(&m, "Subject: ");
	for (int i = 0; i < 100000; i++)
		str_appends(&m, "=?a?q?");
	str_appends(&m, "\r\nContent-Type: text/plain");
	for (int i = 0; i < 10000; i++)
		str_printf(&m, "; p%d*%d*=x", i, i % 7);
	str_appends(&m, "\r\n\r\n");
	msg = mime_parse(m.s, m.len);
	ck_assert_uint_le(mime_message_root(msg)->param_count, MIME_MAX_PARAMS);
	struct str dec = STR_INIT;
	const char *subj = mime_message_root(msg)->envelope->subject;
	charset_decode_header(subj, strlen(subj), &dec);
	ck_assert_uint_eq(dec.len, strlen(subj));
	str_free(&dec);
	mime_message_free(&msg);
	str_free(&m);
}
END_TEST

/* The parser takes whole messages, not a stream, so instead of feeding
 * bytes one at a time, every prefix of the test messages (a message cut
 * anywhere: inside a header, a boundary, an encoded word) is parsed, and
 * its renderings must stay well-formed. */
START_TEST(test_prefixes)
{
	const char *msgs[] = {nested_msg, attach_msg};
	for (size_t m = 0; m < sizeof(msgs) / sizeof(msgs[0]); m++) {
		size_t len = strlen(msgs[m]);
		for (size_t n = 0; n <= len; n++) {
			char *copy = xmemdup(msgs[m], n);
			struct mime_message *msg = mime_parse(copy, n);
			char *bs = bodystructure(msg, true, 0);
			ck_assert_msg(balanced(bs), "prefix %zu: %s", n, bs);
			free(bs);
			for (const struct mime_part *p = mime_message_root(msg); p != NULL;
			     p = mime_part_next(p)) {
				ck_assert_uint_le(p->body_start + p->body_len, n);
				struct str t = STR_INIT;
				mime_part_plain_text(copy, n, p, &t, NULL, NULL);
				ck_assert(utf8_is_valid(t.s, t.len));
				str_free(&t);
				struct str e = STR_INIT;
				mime_imap_envelope(p->envelope, 0, &e);
				ck_assert(balanced(e.s));
				str_free(&e);
			}
			mime_message_free(&msg);
			free(copy);
		}
	}
}
END_TEST

static char *render_all(const struct mime_message *msg)
{
	struct str out = STR_INIT;
	for (const struct mime_part *p = mime_message_root(msg); p != NULL; p = mime_part_next(p)) {
		mime_imap_bodystructure(p, true, 0, &out);
		mime_imap_envelope(p->envelope, 0, &out);
		str_printf(&out, "|%zu %zu %zu %zu %zu %u|", p->header_start, p->header_len,
		           p->body_start, p->body_len, p->body_lines, p->flags);
	}
	return str_steal(&out);
}

START_TEST(test_cache_roundtrip)
{
	const char *msgs[] = {nested_msg, attach_msg, "", "Subject: x\r\n\r\ny",
	                      "To: g: a@b, \"q\"@c;, <@r:x@y>\r\nCc: (c) d\r\n\r\n"};

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct mime_message *msg = parse(msgs[i]), *loaded;
		struct str cache = STR_INIT, cache2 = STR_INIT;
		const char *error;

		mime_cache_build(msg, &cache);
		mime_cache_from_message(msgs[i], strlen(msgs[i]), &cache2);
		ck_assert_uint_eq(cache.len, cache2.len);
		ck_assert(memcmp(cache.s, cache2.s, cache.len) == 0);
		ck_assert_int_eq(mime_cache_load(cache.s, cache.len, &loaded, &error), 0);
		char *a = render_all(msg), *b = render_all(loaded);
		ck_assert_str_eq(a, b);
		free(a);
		free(b);
		ck_assert_uint_eq(mime_message_part_count(loaded), mime_message_part_count(msg));
		ck_assert_uint_eq(mime_message_size(loaded), strlen(msgs[i]));
		/* body access works from the loaded tree and the message */
		for (const struct mime_part *p = mime_message_root(loaded); p != NULL;
		     p = mime_part_next(p)) {
			struct str t = STR_INIT;
			mime_part_text_utf8(msgs[i], strlen(msgs[i]), p, &t);
			ck_assert(utf8_is_valid(t.s, t.len));
			str_free(&t);
		}
		mime_message_free(&loaded);

		/* every truncation and every changed byte is refused */
		for (size_t n = 0; n < cache.len; n++) {
			ck_assert_int_eq(mime_cache_load(cache.s, n, &loaded, &error), -1);
			ck_assert_ptr_null(loaded);
		}
		for (size_t k = 0; k < cache.len; k++) {
			cache.s[k] ^= 0x20;
			ck_assert_int_eq(mime_cache_load(cache.s, cache.len, &loaded, &error), -1);
			cache.s[k] ^= 0x20;
		}
		/* changed bytes with a valid checksum: loads or is refused, and
		 * whatever loads renders without harm */
		for (size_t k = 5; k + 8 < cache.len; k++) {
			static const unsigned char flips[] = {0x01, 0x80, 0xff};
			for (size_t f = 0; f < sizeof(flips); f++) {
				cache.s[k] ^= (char)flips[f];
				uint64_t h = mime_cache_checksum(cache.s, cache.len - 8);
				for (int j = 0; j < 8; j++)
					cache.s[cache.len - 8 + j] = (char)(h >> (8 * j));
				if (mime_cache_load(cache.s, cache.len, &loaded, &error) == 0) {
					free(render_all(loaded));
					mime_message_free(&loaded);
				} else {
					ck_assert_ptr_nonnull(error);
				}
				cache.s[k] ^= (char)flips[f];
			}
		}
		str_free(&cache);
		str_free(&cache2);
		mime_message_free(&msg);
	}
	struct mime_message *loaded;
	const char *error = NULL;
	ck_assert_int_eq(mime_cache_load("CVMP\x02xxxxxxxxxx", 15, &loaded, &error), -1);
	ck_assert_ptr_nonnull(error);
}
END_TEST

START_TEST(test_crlf_normalize)
{
	struct str out = STR_INIT;
	mime_crlf_normalize("a\nb\r\nc\rd\r", 9, &out);
	ck_assert_str_eq(out.s, "a\r\nb\r\nc\r\nd\r\n");
	str_free(&out);
}
END_TEST

struct links {
	struct str all;
};

static void on_link(void *context, enum html_link_kind kind, const char *url, size_t len)
{
	struct links *l = context;
	ck_assert_uint_eq(strlen(url), len);
	str_printf(&l->all, "%d:%s|", (int)kind, url);
}

START_TEST(test_html)
{
	const char *html =
	    "<html><head><title>T</title><style>p{color:red}</style></head>"
	    "<body><p>Xin&nbsp;ch&agrave;o <a href=\"http://x.vn/?a=1&amp;b=2\">link</a></p>"
	    "<script>var a='<p>';</script><!-- hidden --><img src='i.png' alt='Khuyến mãi'>"
	    "<br>Line&#32;2 &#x1EBF; &bogus; a &lt;b&amp;"
	    "<form action=/post><table background=bg.gif><tr><td>c1<td>c2</table>"
	    "</body></html>";
	struct links l = {STR_INIT};
	struct str out = STR_INIT;

	html_to_text(html, strlen(html), &out, on_link, &l);
	ck_assert_str_eq(out.s, "T\nXin chào link\nKhuyến mãi\nLine 2 ế &bogus; a <b&\nc1 c2");
	ck_assert_str_eq(l.all.s, "0:http://x.vn/?a=1&b=2|1:i.png|2:/post|3:bg.gif|");
	str_free(&out);

	/* unterminated constructs and invalid bytes */
	const char *bad[] = {"<!-- never closed",
	                     "<a href=\"never closed",
	                     "<script>x",
	                     "<",
	                     "&#xFFFFFFFFFF;",
	                     "\xff<p>\xc3",
	                     "<a\0b>t"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		str_truncate(&l.all, 0);
		html_to_text(bad[i], strlen(bad[i]), &out, on_link, &l);
		ck_assert(utf8_is_valid(out.s, out.len));
		str_free(&out);
	}
	/* a NUL inside a URL (found by fuzzing) is dropped */
	str_truncate(&l.all, 0);
	html_to_text("<a href='x\0y'>", 14, &out, on_link, &l);
	ck_assert_str_eq(l.all.s, "0:xy|");
	str_free(&out);
	html_to_text("&#0;&#x110000;", 14, &out, NULL, NULL);
	ck_assert_str_eq(out.s, "\xef\xbf\xbd\xef\xbf\xbd");
	str_free(&out);
	str_free(&l.all);
}
END_TEST

/* The SpamAssassin corpus (see doc/mime.md), when installed: every message
 * parses, renders, round-trips through the cache and decodes to valid
 * UTF-8. Skipped when the directory does not exist. */
START_TEST(test_corpus)
{
	const char *dir = getenv("CONGVU_MIME_CORPUS");
	if (dir == NULL)
		dir = "/tmp/package/data";
	DIR *top = opendir(dir);
	if (top == NULL)
		return;
	struct dirent *d;
	unsigned long files = 0;
	while ((d = readdir(top)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		char sub[4096];
		snprintf(sub, sizeof(sub), "%s/%s", dir, d->d_name);
		DIR *sd = opendir(sub);
		if (sd == NULL)
			continue;
		struct dirent *e;
		while ((e = readdir(sd)) != NULL) {
			size_t nl = strlen(e->d_name);
			if (nl < 4 || strcmp(e->d_name + nl - 4, ".txt") != 0)
				continue;
			char path[8192];
			snprintf(path, sizeof(path), "%s/%s", sub, e->d_name);
			FILE *f = fopen(path, "rb");
			if (f == NULL)
				continue;
			struct str raw = STR_INIT, msg = STR_INIT, cache = STR_INIT, t = STR_INIT;
			char buf[65536];
			size_t n;
			while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
				str_append(&raw, buf, n);
			fclose(f);
			mime_crlf_normalize(raw.s != NULL ? raw.s : "", raw.len, &msg);
			struct mime_message *m = mime_parse(msg.s, msg.len), *loaded;
			const char *error;
			mime_cache_build(m, &cache);
			ck_assert_int_eq(mime_cache_load(cache.s, cache.len, &loaded, &error), 0);
			char *a = render_all(m), *b = render_all(loaded);
			ck_assert_msg(strcmp(a, b) == 0, "%s", path);
			ck_assert_msg(balanced(a), "%s", path);
			free(a);
			free(b);
			for (const struct mime_part *p = mime_message_root(m); p != NULL;
			     p = mime_part_next(p)) {
				str_truncate(&t, 0);
				mime_part_text_utf8(msg.s, msg.len, p, &t);
				ck_assert_msg(utf8_is_valid(t.s, t.len), "%s", path);
				if (strcmp(p->type, "text") == 0 &&
				    strcmp(p->subtype, "html") == 0) {
					struct str h = STR_INIT;
					html_to_text(t.s, t.len, &h, NULL, NULL);
					ck_assert_msg(utf8_is_valid(h.s, h.len), "%s", path);
					str_free(&h);
				}
			}
			mime_message_free(&m);
			mime_message_free(&loaded);
			str_free(&raw);
			str_free(&msg);
			str_free(&cache);
			str_free(&t);
			files++;
		}
		closedir(sd);
	}
	closedir(top);
	fprintf(stderr, "corpus: %lu messages from %s\n", files, dir);
}
END_TEST

static Suite *mime_suite(void)
{
	Suite *s = suite_create("mime");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_nested_bodystructure);
	tcase_add_test(tc, test_simple_message);
	tcase_add_test(tc, test_envelope_fields);
	tcase_add_test(tc, test_envelope_8bit);
	tcase_add_test(tc, test_addresses);
	tcase_add_test(tc, test_encoded_words);
	tcase_add_test(tc, test_transfer_decoding);
	tcase_add_test(tc, test_charset_iconv_reuse);
	tcase_add_test(tc, test_attachment_params);
	tcase_add_test(tc, test_params_edge_cases);
	tcase_add_test(tc, test_headers);
	tcase_add_test(tc, test_sections);
	tcase_add_test(tc, test_broken_mime);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_prefixes);
	tcase_add_test(tc, test_cache_roundtrip);
	tcase_add_test(tc, test_crlf_normalize);
	tcase_add_test(tc, test_html);
	tcase_add_test(tc, test_corpus);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mime_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
