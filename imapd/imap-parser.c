#include "config.h"
#include "imap-parser.h"
#include "imap-pool.h"
#include "str.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The gathered command is kept as the client sent it, normalised: every
 * line end that follows a literal announcement is "\r\n", the literal's
 * bytes follow and a NUL is added after them (so a literal is a C string
 * without copying), and the last line has no line end. */

enum rstate {
	R_LINE,    /* in a line */
	R_LITERAL, /* copying literal bytes */
	R_SKIP,    /* discarding an overlong line up to its end */
};

#define TAIL_MAX 24

struct imap_reader {
	struct imap_limits limits;
	enum rstate state;
	struct str buf;
	size_t line_start;     /* offset of the current line in buf */
	bool in_quote, escape;
	uint64_t literal_left;
	uint64_t literal_total;
	bool have_command;     /* a command was returned; forget it on next feed */
	char tag[IMAP_TAG_MAX + 1];
	char name[IMAP_COMMAND_NAME_MAX + 1];
	bool head_parsed;
	/* error report */
	char err_tag[IMAP_TAG_MAX + 1];
	const char *err_text;
	bool err_no;
	/* R_SKIP: the last bytes of the skipped line, to see a literal announcement */
	char tail[TAIL_MAX];
	size_t tail_len;
	struct pool *pool;
};

struct imap_reader *imap_reader_new(const struct imap_limits *limits)
{
	struct imap_reader *r = xcalloc(1, sizeof(*r));
	r->limits = *limits;
	return r; /* the pool comes with the first command: idle sessions stay small */
}

void imap_reader_free(struct imap_reader **r)
{
	if (*r == NULL)
		return;
	str_free(&(*r)->buf);
	pool_free(&(*r)->pool);
	x_free(r);
}

void imap_reader_set_max_literal(struct imap_reader *r, uint64_t max_literal)
{
	r->limits.max_literal = max_literal;
}

void imap_reader_set_max_command(struct imap_reader *r, uint64_t max_command)
{
	r->limits.max_command = max_command;
}

const char *imap_reader_tag(const struct imap_reader *r)
{
	return r->tag;
}

size_t imap_reader_buffered(const struct imap_reader *r)
{
	return r->buf.len;
}

static void reset_command(struct imap_reader *r)
{
	str_truncate(&r->buf, 0);
	/* Do not keep a large buffer around for an idle session. */
	if (r->buf.cap > 4096)
		str_free(&r->buf);
	r->line_start = 0;
	r->in_quote = r->escape = false;
	r->literal_left = r->literal_total = 0;
	r->tag[0] = r->name[0] = '\0';
	r->head_parsed = false;
	r->state = R_LINE;
	r->tail_len = 0;
	if (r->pool != NULL)
		pool_clear(r->pool);
}

static bool is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' &&
	       c != '*' && c != '"' && c != '\\' && c != '+';
}

/* Takes the tag and command name from the first line once they are there. */
static void parse_head(struct imap_reader *r, bool line_done)
{
	if (r->head_parsed)
		return;
	const char *s = r->buf.s;
	size_t len = r->buf.len, i = 0;
	if (len == 0)
		return;
	while (i < len && is_tag_char((unsigned char)s[i]))
		i++;
	if ((i == len || s[i] == '\r') && !line_done)
		return; /* more to come */
	if (i == len && i > 0 && i <= IMAP_TAG_MAX) {
		memcpy(r->tag, s, i); /* a tag alone: "Missing command" */
		r->tag[i] = '\0';
		r->head_parsed = true;
		return;
	}
	if (i == 0 || i > IMAP_TAG_MAX || s[i] != ' ') {
		r->head_parsed = true;
		return; /* no valid tag: errors go to "*" */
	}
	size_t n0 = i + 1, e = n0;
	while (e < len && s[e] != ' ' && s[e] != '\r' && e - n0 <= IMAP_COMMAND_NAME_MAX)
		e++;
	if (e == len && !line_done)
		return;
	r->head_parsed = true;
	memcpy(r->tag, s, i);
	r->tag[i] = '\0';
	size_t n = e - n0;
	if (n > IMAP_COMMAND_NAME_MAX)
		n = IMAP_COMMAND_NAME_MAX;
	memcpy(r->name, s + n0, n);
	r->name[n] = '\0';
}

static void set_error(struct imap_reader *r, bool no, const char *text)
{
	parse_head(r, true);
	if (r->tag[0] != '\0')
		memcpy(r->err_tag, r->tag, sizeof(r->err_tag));
	else
		strcpy(r->err_tag, "*");
	r->err_no = no;
	r->err_text = text;
}

void imap_reader_error(const struct imap_reader *r, const char **tag_r, bool *no_r,
		       const char **text_r)
{
	*tag_r = r->err_tag;
	*no_r = r->err_no;
	*text_r = r->err_text;
}

/* A literal announcement at the end of the line s[0..len): "{N}", "{N+}",
 * "{N-}" (treated like "{N+}") or "~{N}", after SP or "(" or at the start.
 * Returns 1 with the size and whether it is synchronising, 0 when there is
 * none, -1 when it is malformed (a number too large). */
static int line_literal(const char *s, size_t len, uint64_t *size_r, bool *sync_r)
{
	if (len < 3 || s[len - 1] != '}')
		return 0;
	size_t end = len - 1;
	bool sync = true;
	if (s[end - 1] == '+' || s[end - 1] == '-') {
		sync = false;
		end--;
	}
	*sync_r = sync;
	size_t i = end;
	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i == end || i == 0 || s[i - 1] != '{')
		return 0;
	size_t brace = i - 1;
	size_t before = brace;
	if (before > 0 && s[before - 1] == '~')
		before--;
	if (before > 0 && s[before - 1] != ' ' && s[before - 1] != '(')
		return 0;
	uint64_t n;
	if (!imap_parse_number(s + i, end - i, UINT64_MAX / 2, &n))
		return -1;
	*size_r = n;
	return 1;
}

static bool is_append(const struct imap_reader *r)
{
	return strcasecmp(r->name, "APPEND") == 0;
}

/* The line [line_start, buf.len) is complete (without its line end). */
static enum imap_read_result line_done(struct imap_reader *r)
{
	parse_head(r, true);
	const char *line = r->buf.s + r->line_start;
	size_t len = r->buf.len - r->line_start;
	if (r->line_start == 0 && len == 0)
		return IMAP_READ_MORE; /* empty line between commands: ignored */
	uint64_t lit;
	bool sync;
	int ret = r->in_quote ? 0 : line_literal(line, len, &lit, &sync);
	if (ret == 0) {
		r->have_command = true;
		return IMAP_READ_COMMAND;
	}
	uint64_t max = is_append(r) ? r->limits.max_literal : r->limits.max_small_literal;
	const char *why = NULL;
	bool no = false;
	if (ret < 0 || lit > max) {
		why = is_append(r) ? "[TOOBIG] Message too large" : "Literal too large";
		no = is_append(r);
	} else if (r->literal_total + lit + r->buf.len > r->limits.max_command) {
		why = "[TOOBIG] Command too large";
		no = true;
	}
	if (why != NULL) {
		set_error(r, no, why);
		if (!sync) {
			/* The bytes are on their way and cannot be told from commands. */
			return IMAP_READ_FATAL;
		}
		reset_command(r);
		return IMAP_READ_ERROR;
	}
	str_append(&r->buf, "\r\n", 2);
	r->literal_left = lit;
	r->literal_total += lit;
	r->state = R_LITERAL;
	if (lit == 0) {
		str_appendc(&r->buf, '\0');
		r->state = R_LINE;
		r->line_start = r->buf.len;
	}
	return sync ? IMAP_READ_CONTINUE : IMAP_READ_MORE;
}

static void tail_add(struct imap_reader *r, const char *p, size_t n)
{
	if (n >= TAIL_MAX) {
		memcpy(r->tail, p + n - TAIL_MAX, TAIL_MAX);
		r->tail_len = TAIL_MAX;
		return;
	}
	if (r->tail_len + n > TAIL_MAX) {
		size_t drop = r->tail_len + n - TAIL_MAX;
		memmove(r->tail, r->tail + drop, r->tail_len - drop);
		r->tail_len -= drop;
	}
	memcpy(r->tail + r->tail_len, p, n);
	r->tail_len += n;
}

size_t imap_reader_feed(struct imap_reader *r, const void *data, size_t len,
			enum imap_read_result *result_r)
{
	const char *p = data;
	size_t i = 0;
	if (r->have_command) {
		r->have_command = false;
		reset_command(r);
	}
	while (i < len) {
		switch (r->state) {
		case R_LITERAL: {
			size_t n = len - i;
			if (n > r->literal_left)
				n = (size_t)r->literal_left;
			str_append(&r->buf, p + i, n);
			i += n;
			r->literal_left -= n;
			if (r->literal_left == 0) {
				str_appendc(&r->buf, '\0');
				r->state = R_LINE;
				r->line_start = r->buf.len;
			}
			break;
		}
		case R_SKIP: {
			const char *lf = memchr(p + i, '\n', len - i);
			size_t n = lf ? (size_t)(lf - (p + i)) : len - i;
			tail_add(r, p + i, n);
			i += n;
			if (lf == NULL)
				break;
			i++;
			if (r->tail_len > 0 && r->tail[r->tail_len - 1] == '\r')
				r->tail_len--;
			uint64_t lit;
			bool sync;
			int ret = line_literal(r->tail, r->tail_len, &lit, &sync);
			*result_r = ret != 0 && !sync ? IMAP_READ_FATAL : IMAP_READ_ERROR;
			reset_command(r);
			return i;
		}
		case R_LINE: {
			size_t start = i;
			bool eol = false;
			for (; i < len; i++) {
				char c = p[i];
				if (c == '\n') {
					eol = true;
					break;
				}
				if (r->in_quote) {
					if (r->escape)
						r->escape = false;
					else if (c == '\\')
						r->escape = true;
					else if (c == '"')
						r->in_quote = false;
				} else if (c == '"') {
					r->in_quote = true;
				}
			}
			size_t n = i - start;
			size_t cur = r->buf.len - r->line_start;
			if (cur + n > r->limits.max_line + 1 ||
			    r->buf.len + n > r->limits.max_command) {
				/* +1: the CR that may end the line */
				str_append(&r->buf, p + start, n < 64 ? n : 64);
				set_error(r, false, "Line too long");
				r->state = R_SKIP;
				r->tail_len = 0;
				tail_add(r, p + start, n);
				if (eol) {
					/* the line ended in this piece: let R_SKIP see the LF */
					i = start + n;
				}
				continue;
			}
			str_append(&r->buf, p + start, n);
			parse_head(r, false);
			if (!eol)
				break;
			i++; /* the LF */
			if (r->buf.len > r->line_start && r->buf.s[r->buf.len - 1] == '\r')
				str_truncate(&r->buf, r->buf.len - 1);
			if (r->buf.len - r->line_start > r->limits.max_line) {
				set_error(r, false, "Line too long");
				reset_command(r);
				*result_r = IMAP_READ_ERROR;
				return i;
			}
			enum imap_read_result res = line_done(r);
			r->in_quote = r->escape = false;
			if (res != IMAP_READ_MORE || r->have_command) {
				*result_r = res;
				return i;
			}
			if (r->buf.len == 0)
				reset_command(r);
			break;
		}
		}
	}
	*result_r = IMAP_READ_MORE;
	return i;
}

size_t imap_reader_feed_line(struct imap_reader *r, const void *data, size_t len,
			     enum imap_read_result *result_r, const char **line_r,
			     size_t *line_len_r)
{
	const char *p = data;
	if (r->have_command) {
		r->have_command = false;
		reset_command(r);
	}
	*line_r = NULL;
	*line_len_r = 0;
	if (r->state == R_SKIP) {
		const char *lf = memchr(p, '\n', len);
		if (lf == NULL) {
			*result_r = IMAP_READ_MORE;
			return len;
		}
		reset_command(r);
		set_error(r, false, "Line too long");
		*result_r = IMAP_READ_ERROR;
		return (size_t)(lf - p) + 1;
	}
	const char *lf = memchr(p, '\n', len);
	size_t n = lf ? (size_t)(lf - p) : len;
	if (r->buf.len + n > r->limits.max_line + 1) {
		reset_command(r);
		r->state = R_SKIP;
		if (lf == NULL) {
			*result_r = IMAP_READ_MORE;
			return len;
		}
		reset_command(r);
		set_error(r, false, "Line too long");
		*result_r = IMAP_READ_ERROR;
		return n + 1;
	}
	str_append(&r->buf, p, n);
	if (lf == NULL) {
		*result_r = IMAP_READ_MORE;
		return len;
	}
	if (r->buf.len > 0 && r->buf.s[r->buf.len - 1] == '\r')
		str_truncate(&r->buf, r->buf.len - 1);
	if (r->buf.s == NULL)
		str_reserve(&r->buf, 1);
	r->have_command = true; /* forget the line on the next feed */
	*line_r = r->buf.s;
	*line_len_r = r->buf.len;
	*result_r = IMAP_READ_COMMAND;
	return n + 1;
}

/* ---- parsing a gathered command ---- */

struct parse {
	const char *s;
	size_t len, pos;
	unsigned depth, n_args;
	const struct imap_limits *limits;
	struct pool *pool;
	const char *error;
};

static bool is_atom_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

static bool parse_args(struct parse *ps, bool in_list, struct imap_arg **args_r, size_t *n_r);

static bool parse_literal(struct parse *ps, struct imap_arg *arg)
{
	if (ps->s[ps->pos] == '~') {
		arg->literal8 = true;
		ps->pos++;
	}
	if (ps->pos >= ps->len || ps->s[ps->pos] != '{') {
		ps->error = "Invalid literal";
		return false;
	}
	size_t start = ++ps->pos;
	while (ps->pos < ps->len && ps->s[ps->pos] >= '0' && ps->s[ps->pos] <= '9')
		ps->pos++;
	uint64_t n;
	if (!imap_parse_number(ps->s + start, ps->pos - start, UINT64_MAX / 2, &n)) {
		ps->error = "Invalid literal size";
		return false;
	}
	if (ps->pos < ps->len && (ps->s[ps->pos] == '+' || ps->s[ps->pos] == '-'))
		ps->pos++;
	if (ps->len - ps->pos < 3 || memcmp(ps->s + ps->pos, "}\r\n", 3) != 0) {
		ps->error = "Literal not at the end of a line";
		return false;
	}
	ps->pos += 3;
	if (ps->len - ps->pos < n + 1) {
		ps->error = "Literal shorter than announced";
		return false;
	}
	arg->type = IMAP_ARG_LITERAL;
	arg->str = ps->s + ps->pos;
	arg->len = (size_t)n;
	ps->pos += (size_t)n + 1; /* the NUL the reader added */
	return true;
}

static bool parse_quoted(struct parse *ps, struct imap_arg *arg)
{
	size_t start = ++ps->pos;
	size_t n = 0;
	/* First pass: find the end and the unescaped length. */
	size_t i = start;
	for (;; i++) {
		if (i >= ps->len) {
			ps->error = "Unterminated quoted string";
			return false;
		}
		char c = ps->s[i];
		if (c == '"')
			break;
		if (c == '\r' || c == '\n' || c == '\0') {
			ps->error = "Invalid character in quoted string";
			return false;
		}
		if (c == '\\') {
			i++;
			if (i >= ps->len || (ps->s[i] != '\\' && ps->s[i] != '"')) {
				ps->error = "Invalid escape in quoted string";
				return false;
			}
		}
		n++;
	}
	char *d = p_malloc(ps->pool, n + 1);
	size_t k = 0;
	for (size_t j = start; j < i; j++) {
		if (ps->s[j] == '\\')
			j++;
		d[k++] = ps->s[j];
	}
	d[k] = '\0';
	arg->type = IMAP_ARG_QUOTED;
	arg->str = d;
	arg->len = k;
	ps->pos = i + 1;
	return true;
}

static bool parse_atom(struct parse *ps, struct imap_arg *arg)
{
	size_t start = ps->pos;
	while (ps->pos < ps->len) {
		unsigned char c = (unsigned char)ps->s[ps->pos];
		if (c == '[') {
			/* BODY[HEADER.FIELDS (A B)]: the section is part of the atom. */
			const char *close = memchr(ps->s + ps->pos, ']', ps->len - ps->pos);
			if (close == NULL) {
				ps->error = "Missing ]";
				return false;
			}
			for (const char *q = ps->s + ps->pos; q < close; q++) {
				if ((unsigned char)*q < 0x20 || *q == '{') {
					ps->error = "Invalid character in section";
					return false;
				}
			}
			ps->pos = (size_t)(close - ps->s) + 1;
			continue;
		}
		if (!is_atom_char(c))
			break;
		ps->pos++;
	}
	if (ps->pos == start) {
		ps->error = "Invalid character";
		return false;
	}
	arg->type = IMAP_ARG_ATOM;
	arg->str = p_strndup(ps->pool, ps->s + start, ps->pos - start);
	arg->len = ps->pos - start;
	return true;
}

static bool parse_one(struct parse *ps, struct imap_arg *arg)
{
	if (++ps->n_args > ps->limits->max_args) {
		ps->error = "Too many arguments";
		return false;
	}
	char c = ps->s[ps->pos];
	if (c == '(') {
		if (++ps->depth > ps->limits->max_depth) {
			ps->error = "Too deeply nested";
			return false;
		}
		ps->pos++;
		arg->type = IMAP_ARG_LIST;
		if (!parse_args(ps, true, &arg->list, &arg->len))
			return false;
		ps->depth--;
		if (ps->pos >= ps->len || ps->s[ps->pos] != ')') {
			ps->error = "Missing )";
			return false;
		}
		ps->pos++;
		return true;
	}
	if (c == '"')
		return parse_quoted(ps, arg);
	if (c == '{' || (c == '~' && ps->pos + 1 < ps->len && ps->s[ps->pos + 1] == '{'))
		return parse_literal(ps, arg);
	return parse_atom(ps, arg);
}

static bool parse_args(struct parse *ps, bool in_list, struct imap_arg **args_r, size_t *n_r)
{
	size_t n = 0, cap = 0;
	struct imap_arg *args = NULL;
	for (;;) {
		if (ps->pos >= ps->len)
			break;
		char c = ps->s[ps->pos];
		if (c == ')') {
			if (!in_list) {
				ps->error = "Unexpected )";
				return false;
			}
			break;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct imap_arg *na = p_array(ps->pool, ncap, sizeof(*na));
			if (n > 0)
				memcpy(na, args, n * sizeof(*na));
			args = na;
			cap = ncap;
		}
		if (!parse_one(ps, &args[n]))
			return false;
		n++;
		if (ps->pos >= ps->len)
			break;
		c = ps->s[ps->pos];
		if (c == ' ') {
			ps->pos++;
			/* tolerate a space before ")" or at the end of the line */
			while (ps->pos < ps->len && ps->s[ps->pos] == ' ')
				ps->pos++;
		} else if (c != ')') {
			ps->error = "Missing space between arguments";
			return false;
		}
	}
	*args_r = args;
	*n_r = n;
	return true;
}

int imap_reader_parse(struct imap_reader *r, struct imap_command *cmd_r, const char **error_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));
	parse_head(r, true);
	cmd_r->tag = r->tag[0] ? r->tag : "*";
	cmd_r->name = r->name;
	if (r->tag[0] == '\0') {
		*error_r = "Invalid tag";
		return -1;
	}
	if (r->name[0] == '\0') {
		*error_r = "Missing command";
		return -1;
	}
	if (r->pool == NULL)
		r->pool = pool_new(1024);
	struct parse ps = {
		.s = r->buf.s, .len = r->buf.len, .limits = &r->limits, .pool = r->pool,
	};
	ps.pos = strlen(r->tag) + 1 + strlen(r->name);
	for (const char *q = r->name; *q; q++) {
		unsigned char c = (unsigned char)*q;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_')) {
			*error_r = "Invalid command name";
			return -1;
		}
	}
	if (ps.pos < ps.len) {
		if (ps.s[ps.pos] != ' ') {
			*error_r = "Invalid command name";
			return -1;
		}
		ps.pos++;
	}
	if (!parse_args(&ps, false, &cmd_r->args, &cmd_r->n_args)) {
		*error_r = ps.error;
		return -1;
	}
	return 0;
}

/* ---- helpers ---- */

bool imap_arg_is_atom(const struct imap_arg *arg, const char *word)
{
	return arg->type == IMAP_ARG_ATOM && strcasecmp(arg->str, word) == 0;
}

bool imap_arg_is_nil(const struct imap_arg *arg)
{
	return imap_arg_is_atom(arg, "NIL");
}

const char *imap_arg_string(const struct imap_arg *arg)
{
	if (arg->type != IMAP_ARG_QUOTED && arg->type != IMAP_ARG_LITERAL)
		return NULL;
	if (memchr(arg->str, '\0', arg->len) != NULL)
		return NULL;
	return arg->str;
}

const char *imap_arg_astring(const struct imap_arg *arg)
{
	if (arg->type == IMAP_ARG_ATOM) {
		/* astring atoms exclude list wildcards and '\\'; ']' is allowed */
		for (const char *q = arg->str; *q; q++)
			if (*q == '%' || *q == '*' || *q == '\\' || *q == '[')
				return NULL;
		return arg->str;
	}
	return imap_arg_string(arg);
}

bool imap_parse_number(const char *s, size_t len, uint64_t max, uint64_t *num_r)
{
	if (len == 0 || len > 20)
		return false;
	uint64_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	if (n > max)
		return false;
	*num_r = n;
	return true;
}

bool imap_arg_number(const struct imap_arg *arg, uint64_t max, uint64_t *num_r)
{
	return arg->type == IMAP_ARG_ATOM && imap_parse_number(arg->str, arg->len, max, num_r);
}
