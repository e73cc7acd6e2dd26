/* The IMAP command reader and parser, fed each case whole and one byte at
 * a time (STYLE 13). */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap-parser.h"
#include "str.h"

static const struct imap_limits limits = {
	.max_line = 200,
	.max_literal = 1000,
	.max_small_literal = 100,
	.max_command = 4000,
	.max_depth = 4,
	.max_args = 50,
};

/* Feeds input in pieces of step bytes (0: whole) and records the events:
 * "C" continuation, "E:TAG:NO|BAD:text", "F:text", and for each command
 * "TAG NAME args..." with args rendered back (lists in parentheses,
 * strings in <>, literals in {}), or "P:TAG:error" for a parse error. */
static void render(struct str *out, const struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			str_appendc(out, ' ');
		switch (args[i].type) {
		case IMAP_ARG_ATOM:
			str_append(out, args[i].str, args[i].len);
			break;
		case IMAP_ARG_QUOTED:
			str_appendc(out, '<');
			str_append(out, args[i].str, args[i].len);
			str_appendc(out, '>');
			break;
		case IMAP_ARG_LITERAL:
			str_appends(out, args[i].literal8 ? "~{" : "{");
			str_append(out, args[i].str, args[i].len);
			str_appendc(out, '}');
			break;
		case IMAP_ARG_LIST:
			str_appendc(out, '(');
			render(out, args[i].list, args[i].len);
			str_appendc(out, ')');
			break;
		}
	}
}

static char *run(const char *input, size_t step)
{
	struct imap_reader *r = imap_reader_new(&limits);
	struct str out = STR_INIT;
	size_t len = strlen(input), pos = 0;
	bool stop = false;
	while (pos < len && !stop) {
		size_t n = step == 0 ? len - pos : (len - pos < step ? len - pos : step);
		size_t off = 0;
		while (off < n && !stop) {
			enum imap_read_result res;
			size_t used = imap_reader_feed(r, input + pos + off, n - off, &res);
			ck_assert_uint_le(used, n - off);
			off += used;
			const char *tag, *text;
			bool no;
			switch (res) {
			case IMAP_READ_MORE:
				ck_assert_uint_eq(off, n);
				break;
			case IMAP_READ_CONTINUE:
				str_appends(&out, "C|");
				break;
			case IMAP_READ_ERROR:
				imap_reader_error(r, &tag, &no, &text);
				str_printf(&out, "E:%s:%s:%s|", tag, no ? "NO" : "BAD", text);
				break;
			case IMAP_READ_FATAL:
				imap_reader_error(r, &tag, &no, &text);
				str_printf(&out, "F:%s|", text);
				stop = true;
				break;
			case IMAP_READ_COMMAND: {
				struct imap_command cmd;
				const char *err;
				if (imap_reader_parse(r, &cmd, &err) < 0) {
					str_printf(&out, "P:%s:%s|", cmd.tag, err);
				} else {
					str_printf(&out, "%s %s", cmd.tag, cmd.name);
					if (cmd.n_args > 0)
						str_appendc(&out, ' ');
					render(&out, cmd.args, cmd.n_args);
					str_appendc(&out, '|');
				}
				break;
			}
			}
		}
		pos += n;
	}
	imap_reader_free(&r);
	return str_steal(&out);
}

static void check_case(const char *input, const char *expect)
{
	for (size_t step = 0; step <= 3; step++) {
		char *got = run(input, step);
		ck_assert_msg(strcmp(got, expect) == 0, "input %s step %zu: got '%s' expected '%s'",
			      input, step, got, expect);
		free(got);
	}
}

START_TEST(simple)
{
	check_case("a1 NOOP\r\n", "a1 NOOP|");
	check_case("a1 noop\n", "a1 noop|");
	check_case("\r\na2 CAPABILITY\r\n", "a2 CAPABILITY|");
	check_case("a LOGIN user \"pa ss\\\"w\\\\\"\r\n", "a LOGIN user <pa ss\"w\\>|");
	check_case("a SELECT INBOX\r\nb NOOP\r\n", "a SELECT INBOX|b NOOP|");
	check_case("t1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)\r\n",
		   "t1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)|");
	check_case("t STORE 1 +FLAGS (\\Seen \\Deleted)\r\n", "t STORE 1 +FLAGS (\\Seen \\Deleted)|");
	check_case("t LIST \"\" %\r\n", "t LIST <> %|");
	check_case("t SEARCH (OR (FROM a) (TO b)) ()\r\n", "t SEARCH (OR (FROM a) (TO b)) ()|");
}
END_TEST

START_TEST(literals)
{
	check_case("a LOGIN {4}\r\nuser {4}\r\npass\r\n", "C|C|a LOGIN {user} {pass}|");
	check_case("a LOGIN {4+}\r\nuser {4-}\r\npass\r\n", "a LOGIN {user} {pass}|");
	check_case("a LOGIN {0}\r\n \"x\"\r\n", "C|a LOGIN {} <x>|");
	check_case("a APPEND INBOX (\\Seen) ~{3+}\r\nabc\r\n", "a APPEND INBOX (\\Seen) ~{abc}|");
	/* a literal inside a list and a quoted string that looks like one */
	check_case("a X (a {2}\r\nbc) \"{3}\"\r\n", "C|a X (a {bc}) <{3}>|");
	check_case("a X \"ab {3}\r\n", "P:a:Unterminated quoted string|");
}
END_TEST

START_TEST(limits_)
{
	/* a synchronising literal too large: refused, the client sends nothing */
	check_case("a LOGIN {101}\r\nb NOOP\r\n", "E:a:BAD:Literal too large|b NOOP|");
	check_case("a APPEND INBOX {1001}\r\nb NOOP\r\n",
		   "E:a:NO:[TOOBIG] Message too large|b NOOP|");
	check_case("a APPEND INBOX {4294967296}\r\nb NOOP\r\n",
		   "E:a:NO:[TOOBIG] Message too large|b NOOP|");
	check_case("a APPEND INBOX {99999999999999999999999}\r\nb NOOP\r\n",
		   "E:a:NO:[TOOBIG] Message too large|b NOOP|");
	/* a non-synchronising one cannot be skipped safely */
	check_case("a APPEND INBOX {1001+}\r\nxxx", "F:[TOOBIG] Message too large|");
	/* APPEND may send up to max_literal */
	char big[1200];
	strcpy(big, "a APPEND INBOX {500+}\r\n");
	size_t l = strlen(big);
	memset(big + l, 'x', 500);
	strcpy(big + l + 500, "\r\nb NOOP\r\n");
	char *got = run(big, 0);
	ck_assert_str_eq(got + strlen(got) - 7, "b NOOP|");
	ck_assert_int_eq(strncmp(got, "a APPEND INBOX {xxx", 19), 0);
	free(got);
	/* an overlong line */
	char line[700];
	strcpy(line, "t1 NOOP ");
	memset(line + 8, 'a', 600);
	strcpy(line + 608, "\r\nt2 NOOP\r\n");
	check_case(line, "E:t1:BAD:Line too long|t2 NOOP|");
	/* an overlong line announcing a non-synchronising literal */
	strcpy(line + 608, " {5+}\r\n");
	check_case(line, "F:Line too long|");
	/* nesting and argument count */
	check_case("a X ((((a))))\r\n", "a X ((((a))))|");
	check_case("a X (((((a)))))\r\n", "P:a:Too deeply nested|");
	struct str many = STR_INIT;
	str_appends(&many, "a X");
	for (int i = 0; i < 51; i++)
		str_appends(&many, " x");
	str_appends(&many, "\r\n");
	check_case(many.s, "P:a:Too many arguments|");
	str_free(&many);
}
END_TEST

START_TEST(syntax)
{
	check_case("NOOP\r\n", "P:NOOP:Missing command|");
	check_case("+a NOOP\r\n", "P:*:Invalid tag|");
	check_case("a NO\"OP\r\n", "P:a:Invalid command name|");
	check_case("a X (a\r\n", "P:a:Missing )|");
	check_case("a X a)\r\n", "P:a:Unexpected )|");
	check_case("a X \"a\\b\"\r\n", "P:a:Invalid escape in quoted string|");
	check_case("a X \"a\"b\r\n", "P:a:Missing space between arguments|");
	check_case("a X BODY[HEADER\r\n", "P:a:Missing ]|");
	check_case("a X {3} a\r\n", "P:a:Literal not at the end of a line|");
	check_case("a X a{3}\r\n", "P:a:Missing space between arguments|");
}
END_TEST

START_TEST(helpers)
{
	struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = "123", .len = 3 };
	uint64_t n;
	ck_assert(imap_arg_number(&a, 1000, &n));
	ck_assert_uint_eq(n, 123);
	ck_assert(!imap_arg_number(&a, 100, &n));
	a.str = "nil";
	ck_assert(imap_arg_is_nil(&a));
	ck_assert_ptr_nonnull(imap_arg_astring(&a));
	a.str = "a*";
	a.len = 2;
	ck_assert_ptr_null(imap_arg_astring(&a));
	struct imap_arg l = { .type = IMAP_ARG_LITERAL, .str = "a\0b", .len = 3 };
	ck_assert_ptr_null(imap_arg_string(&l));
	ck_assert(!imap_parse_number("18446744073709551616", 20, UINT64_MAX, &n));
	ck_assert(imap_parse_number("18446744073709551615", 20, UINT64_MAX, &n));
}
END_TEST

START_TEST(feed_line)
{
	struct imap_reader *r = imap_reader_new(&limits);
	enum imap_read_result res;
	const char *line;
	size_t len;
	const char *in = "dXNlcgB1c2VyAHBhc3M=\r\nDONE\r\n";
	size_t used = imap_reader_feed_line(r, in, 5, &res, &line, &len);
	ck_assert_uint_eq(used, 5);
	ck_assert_int_eq(res, IMAP_READ_MORE);
	used = imap_reader_feed_line(r, in + 5, strlen(in) - 5, &res, &line, &len);
	ck_assert_int_eq(res, IMAP_READ_COMMAND);
	ck_assert_uint_eq(len, 20);
	ck_assert_int_eq(memcmp(line, "dXNlcgB1c2VyAHBhc3M=", 20), 0);
	used = imap_reader_feed_line(r, in + 5 + used, strlen(in) - 5 - used, &res, &line, &len);
	ck_assert_int_eq(res, IMAP_READ_COMMAND);
	ck_assert_str_eq(line, "DONE");
	imap_reader_free(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imap-parser");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, simple);
	tcase_add_test(tc, literals);
	tcase_add_test(tc, limits_);
	tcase_add_test(tc, syntax);
	tcase_add_test(tc, helpers);
	tcase_add_test(tc, feed_line);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
