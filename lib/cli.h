/* The command-line options the daemons share: -c FILE (the configuration),
 * -o SECTION.KEY=VALUE (repeatable overrides), -n (print the settings and
 * exit) and -d (debug log), the last two where a program offers them.
 * Parsing stops at the first operand (a command such as `queue`). */
#ifndef CONGVU_CLI_H
#define CONGVU_CLI_H

#include <stdbool.h>

struct cli_opts {
	const char *conf_path; /* NULL: the default path */
	char **overrides;      /* n_overrides of them, owned (cli_free) */
	int n_overrides;
	bool dump;             /* -n */
	bool debug;            /* -d */
	int next;              /* argv index of the first operand */
};

/* flags: which of "n" and "d" the program takes (e.g. "nd"). Returns 0, or
 * -1 on an unknown option or a missing argument (the caller prints its
 * usage and exits 2). */
int cli_parse(int argc, char **argv, const char *flags, struct cli_opts *o);
void cli_free(struct cli_opts *o);

#endif
