/* Dropping privileges; see privsep.h. */
#include "config.h"
#include "privsep.h"
#include "xalloc.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *errorf(const char *what, const char *user, const char *why)
{
	size_t n = strlen(what) + strlen(user) + strlen(why) + 32;
	char *s = xmalloc(n);
	snprintf(s, n, "global.user: %s '%s'%s%s", what, user, *why ? ": " : "", why);
	return s;
}

bool privsep_is_root(void)
{
	return geteuid() == 0;
}

int privsep_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, char **error_r)
{
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		*error_r = errorf("no such user", user, errno ? strerror(errno) : "");
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int privsep_drop(const char *user, char **error_r)
{
	if (!privsep_is_root())
		return 0;
	uid_t uid;
	gid_t gid;
	if (privsep_lookup(user, &uid, &gid, error_r) < 0)
		return -1;
	if (uid == 0) {
		*error_r = errorf("refusing to run children as root: user", user, "");
		return -1;
	}
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		*error_r = errorf("cannot switch to", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		*error_r = errorf("could regain root after switching to", user, "");
		return -1;
	}
	return 0;
}
