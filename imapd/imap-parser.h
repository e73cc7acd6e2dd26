/* The IMAP command reader and parser (RFC 3501 9, RFC 9051 9, RFC 7888).
 *
 * Two layers, both without I/O (STYLE 13):
 *  - the reader takes bytes as they arrive, in pieces of any size, and
 *    gathers one whole command: its lines and the literals between them.
 *    It says when to send a continuation ("+ ") for a synchronising
 *    literal, and checks every size before buffering: line length, literal
 *    size (APPEND may send up to the APPENDLIMIT, other commands no more
 *    than a line), total command size.
 *  - the parser turns a gathered command into a tag, a command name and a
 *    tree of arguments (atoms, quoted strings, literals, parenthesised
 *    lists), bounded in nesting depth and argument count.
 *
 * Arguments live in the reader's per-command memory and stay valid until
 * the next imap_reader_feed() after the command was taken. */
#ifndef CONGVU_IMAP_PARSER_H
#define CONGVU_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX 64
#define IMAP_COMMAND_NAME_MAX 32

enum imap_arg_type {
	IMAP_ARG_ATOM,    /* includes NIL, numbers, flags, BODY[...]<...> */
	IMAP_ARG_QUOTED,  /* "..." with escapes removed */
	IMAP_ARG_LITERAL, /* {N} / {N+} / ~{N} */
	IMAP_ARG_LIST,    /* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal8;          /* ~{N}: may hold NUL (RFC 3516) */
	size_t len;             /* bytes of str, or number of list items */
	const char *str;        /* NUL-terminated (literals may also hold NULs) */
	struct imap_arg *list;  /* IMAP_ARG_LIST: len items */
};

struct imap_limits {
	size_t max_line;        /* one line of a command, without CRLF */
	uint64_t max_literal;   /* literal of APPEND (APPENDLIMIT) */
	size_t max_small_literal; /* literal of any other command */
	uint64_t max_command;   /* all lines and literals of one command */
	unsigned max_depth;     /* nesting of ( ) */
	unsigned max_args;      /* arguments in all, lists included */
};

enum imap_read_result {
	IMAP_READ_MORE,     /* all input consumed; feed more */
	IMAP_READ_COMMAND,  /* a whole command: imap_reader_parse() it */
	IMAP_READ_CONTINUE, /* send "+ ..." for a synchronising literal, then feed on */
	IMAP_READ_ERROR,    /* a bad command was skipped: reply "TAG BAD/NO text" */
	IMAP_READ_FATAL,    /* the stream cannot be resynchronised: "* BYE text", close */
};

struct imap_reader;

struct imap_reader *imap_reader_new(const struct imap_limits *limits);
void imap_reader_free(struct imap_reader **r);
/* Changes the APPEND literal limit (the APPENDLIMIT may depend on the account). */
void imap_reader_set_max_literal(struct imap_reader *r, uint64_t max_literal);
/* Changes the bound on all lines and literals of one command (smaller
 * before login, when no command needs more than a few lines). */
void imap_reader_set_max_command(struct imap_reader *r, uint64_t max_command);

/* Consumes bytes of data up to the next event and returns how many. With
 * IMAP_READ_MORE every byte was consumed. With IMAP_READ_ERROR/FATAL,
 * imap_reader_error() tells the tag ("*" when unknown), whether to answer NO
 * rather than BAD, and the text. The previous command is forgotten here. */
size_t imap_reader_feed(struct imap_reader *r, const void *data, size_t len,
			enum imap_read_result *result_r);
void imap_reader_error(const struct imap_reader *r, const char **tag_r, bool *no_r,
		       const char **text_r);
/* The tag and name of the command being read (known once its first line
 * has been read up to the command name); "" before. */
const char *imap_reader_tag(const struct imap_reader *r);
/* Bytes of the current command gathered so far. */
size_t imap_reader_buffered(const struct imap_reader *r);

struct imap_command {
	const char *tag;
	const char *name;       /* as sent; compare case-insensitively */
	struct imap_arg *args;  /* the arguments after the name */
	size_t n_args;
};

/* Parses the gathered command. 0 and *cmd_r, or -1 with *error_r (static)
 * for a syntax error (reply "TAG BAD error"); *cmd_r->tag is valid then
 * too when the tag was readable, else "*". */
int imap_reader_parse(struct imap_reader *r, struct imap_command *cmd_r, const char **error_r);

/* Parses one line without literals (an AUTHENTICATE response, "DONE"):
 * returns the line without CRLF, or NULL while incomplete. Lines longer
 * than the limit give IMAP_READ_ERROR. For use between commands only. */
size_t imap_reader_feed_line(struct imap_reader *r, const void *data, size_t len,
			     enum imap_read_result *result_r, const char **line_r,
			     size_t *line_len_r);

/* ---- argument helpers ---- */

bool imap_arg_is_atom(const struct imap_arg *arg, const char *word); /* case-insensitive */
bool imap_arg_is_nil(const struct imap_arg *arg);
/* astring: atom, quoted or literal without NUL; NULL otherwise. */
const char *imap_arg_astring(const struct imap_arg *arg);
/* string: quoted or literal without NUL. */
const char *imap_arg_string(const struct imap_arg *arg);
/* A number (RFC 3501 number / number64 when max > 2^32). */
bool imap_arg_number(const struct imap_arg *arg, uint64_t max, uint64_t *num_r);
bool imap_parse_number(const char *s, size_t len, uint64_t max, uint64_t *num_r);

#endif
