/* The libmilter glue of congvu-milter-spam: collects the envelope and the
 * message through the callbacks and hands them to the scoring core. */
#ifndef CONGVU_MILTER_MILTER_H
#define CONGVU_MILTER_MILTER_H

#include <stddef.h>

#include "scan.h"

/* Runs the milter on spec (libmilter form: unix:/PATH, local:/PATH,
 * inet:PORT@HOST, inet6:PORT@HOST) until SIGTERM/SIGINT; SIGHUP re-reads
 * the configuration through reload(). max_scan: bytes of a message kept
 * for scanning. Returns the exit status. */
typedef int milter_reload_fn(char **error_r);
int milter_run(struct scanner *sc, const char *spec, unsigned int timeout_secs, size_t max_scan,
               milter_reload_fn *reload);

/* Checks a libmilter connection spec; 0, or -1 with *error_r (static). */
int milter_check_spec(const char *spec, const char **error_r);

#endif
