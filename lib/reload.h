/* The reload frame: on SIGHUP a daemon's root parent reads the configuration
 * file, the certificate and the key, and hands them to its unprivileged
 * children, which could not read a key only root may read. */
#ifndef CONGVU_RELOAD_H
#define CONGVU_RELOAD_H

#include <stddef.h>

#include "str.h"

struct settings;

/* Largest configuration text, certificate or key carried. */
#define RELOAD_PART_MAX (4 * 1024 * 1024)
/* Largest payload: what a child's frame channel must accept. */
#define RELOAD_FRAME_MAX (3 * RELOAD_PART_MAX + 64)

/* Parent: reads the configuration (as -c and -o gave it) and, when tls.cert is
 * set, loads the certificate and key once to check them, then encodes all
 * three into payload. Returns 0 with *set_r (the new configuration), or -1
 * with *error_r (caller frees) and the old configuration to be kept. The
 * payload holds the key: explicit_bzero it before freeing. */
int reload_build(const char *conf_path, char *const *overrides, int n_overrides,
		 struct settings **set_r, struct str *payload, char **error_r);

struct reload {
	struct settings *set;     /* the new configuration (the caller's to free) */
	const void *cert, *key;   /* PEM, pointing into the frame; empty: no TLS */
	size_t cert_len, key_len;
};

/* Child: -1 when the payload is malformed (a broken parent: the caller
 * exits); 0 with r->set NULL and *error_r (caller frees) when the text is
 * not a configuration; 0 with r filled otherwise. */
int reload_parse(const void *data, size_t len, struct reload *r, char **error_r);

#endif
