/* Store options from the shared settings. */
#include "config.h"
#include "store.h"
#include "settings.h"

#include <stdlib.h>
#include <string.h>

void store_options_init(struct store_options *o, const struct settings *set, bool create)
{
	memset(o, 0, sizeof(*o));
	o->map_size = settings_num(set, S_GLOBAL_STORE_MAP_SIZE);
	o->create = create;
	o->no_compression = settings_num(set, S_GLOBAL_STORE_COMPRESSION) == 1;
	int n;
	char **pcts = settings_list(set, S_QUOTA_WARN, &n);
	for (int i = 0; i < n && o->n_warn_percents < 8; i++) {
		unsigned v = (unsigned)strtoul(pcts[i], NULL, 10);
		unsigned j = o->n_warn_percents;
		while (j > 0 && o->warn_percents[j - 1] > v) {
			o->warn_percents[j] = o->warn_percents[j - 1];
			j--;
		}
		o->warn_percents[j] = v;
		o->n_warn_percents++;
	}
	settings_list_free(&pcts);
}
