/* Writes conf/settings.md (--markdown) or conf/congvu.conf (--conf) from the
 * settings table, so the reference never drifts from the code. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "settings.h"

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
		printf("# congvu settings reference\n\n"
		       "Generated from the settings table (`lib/settings.def` and each program's\n"
		       "`settings.def`) by `conf/gen-settings --markdown`. Sizes take K/M/G/T suffixes\n"
		       "(powers of 1024), durations s/m/h/d/w.\n\n");
		settings_reference(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--conf") == 0) {
		settings_sample(stdout);
		return 0;
	}
	fprintf(stderr, "usage: gen-settings --markdown|--conf\n");
	return 2;
}
