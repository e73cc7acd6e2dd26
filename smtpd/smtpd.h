/* congvu-smtpd's processes (OpenSMTPD's model, see doc/smtpd.md): the
 * parent binds the listeners and loads the certificates, then starts the
 * delivery process (the only one here that opens the store) and one session
 * worker per core, which never open it. */
#ifndef CONGVU_SMTPD_H
#define CONGVU_SMTPD_H

#include <stddef.h>
#include <stdint.h>

#include "listen.h"
#include "settings.h"

struct tls_ctx;
struct iplimits;

/* Which service a listening socket serves (listen_fd.tag). */
enum { LISTEN_SMTP, LISTEN_SUBMISSION, LISTEN_SMTPS, LISTEN_LMTP };

struct worker_args {
	unsigned id;
	const struct settings *set;
	struct listen_fd *listeners;
	size_t n_listeners;
	int delivery_fd;            /* frames to the delivery process */
	int parent_fd;              /* DF_RELOAD from the parent */
	struct tls_ctx *tls_mx;     /* port 25 (smtpd.smtp_tls_min_version); may be NULL */
	struct tls_ctx *tls_sub;    /* submission and smtps; may be NULL */
	struct iplimits *limits;    /* shared between the workers */
	unsigned max_connections;   /* of all workers together (iplimits_total_begin) */
};

/* Run in the child after fork and privilege drop; return the exit code. */
int worker_main(const struct worker_args *args);

struct delivery_args {
	const struct settings *set;
	int *worker_fds;
	size_t n_workers;
	int parent_fd;
	int ready_fd;   /* one byte is written here once the store is open */
};

int delivery_main(const struct delivery_args *args);

/* The configuration as settings_dump() text, and back (DF_RELOAD). */

#endif
