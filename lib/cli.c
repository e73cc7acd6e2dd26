#include "config.h"

#include "cli.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_parse(int argc, char **argv, const char *flags, struct cli_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->overrides = xcalloc((size_t)argc + 1, sizeof(*o->overrides));
	char optstring[16] = "+c:o:";
	if (strchr(flags, 'n') != NULL)
		strcat(optstring, "n");
	if (strchr(flags, 'd') != NULL)
		strcat(optstring, "d");
	optind = 0; /* glibc: start afresh (a program or test may parse twice) */
	int opt;
	while ((opt = getopt(argc, argv, optstring)) != -1) {
		switch (opt) {
		case 'c':
			o->conf_path = optarg;
			break;
		case 'o':
			o->overrides[o->n_overrides++] = optarg;
			break;
		case 'n':
			o->dump = true;
			break;
		case 'd':
			o->debug = true;
			break;
		default:
			return -1;
		}
	}
	o->next = optind;
	return 0;
}

void cli_free(struct cli_opts *o)
{
	free(o->overrides);
	o->overrides = NULL;
	o->n_overrides = 0;
}
