/* libFuzzer target: the INI configuration parser and -o overrides. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings *set = settings_new();
	char *error = NULL;
	FILE *f = fmemopen((void *)data, size, "r");
	if (f != NULL) {
		if (settings_load_stream(set, f, "fuzz.conf", &error) < 0)
			free(error);
		fclose(f);
	}
	/* the same bytes as a -o assignment */
	char *s = xstrndup((const char *)data, size);
	error = NULL;
	if (settings_override(set, s, &error) < 0)
		free(error);
	free(s);
	settings_free(&set);
	return 0;
}
