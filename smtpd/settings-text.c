/* The configuration sent to the children on reload: settings_dump() text
 * applied again with settings_set(). */
#include "config.h"
#include "smtpd.h"
#include "str.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *settings_to_text(const struct settings *set)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		abort();
	settings_dump(set, f);
	fclose(f);
	return buf;
}

struct settings *settings_from_text(const char *text, char **error_r)
{
	struct settings *set = settings_new();
	char *copy = xstrdup(text);
	char section[64] = "";
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '[') {
			char *end = strchr(line, ']');
			if (end == NULL || (size_t)(end - line) >= sizeof(section)) {
				*error_r = xstrdup("bad section line");
				goto fail;
			}
			*end = '\0';
			snprintf(section, sizeof(section), "%s", line + 1);
			continue;
		}
		char *eq = strstr(line, " = ");
		if (eq == NULL) {
			*error_r = xstrdup("bad setting line");
			goto fail;
		}
		*eq = '\0';
		if (settings_set(set, section, line, eq + 3, error_r) < 0)
			goto fail;
	}
	free(copy);
	return set;
fail:
	free(copy);
	settings_free(&set);
	return NULL;
}
