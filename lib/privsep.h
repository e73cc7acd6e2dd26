/* Privilege separation helpers (STYLE 1): a daemon started as root binds
 * its ports and reads its keys, then its children drop to global.user. */
#ifndef CONGVU_PRIVSEP_H
#define CONGVU_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>

/* Looks the user up: 0 with *uid_r and *gid_r, -1 with *error_r (caller frees)
 * "global.user: no such user 'NAME'". */
int privsep_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, char **error_r);
/* When running as root: sets supplementary groups, gid and uid to user's and
 * checks that root cannot be regained. A no-op (0) when not root. Returns 0,
 * or -1 with *error_r (caller frees). */
int privsep_drop(const char *user, char **error_r);
/* True when the process runs as root. */
bool privsep_is_root(void);

#endif
