/* Outbound delivery: a companion process of congvu-smtpd (doc/outbound.md)
 * that takes mail from the queue in the store, finds the destination's MX
 * hosts (or uses smtpd.relay_host), delivers one copy per destination
 * domain with the SMTP client core, and records every result, retry,
 * expiry and notification in a store transaction. */
#ifndef CONGVU_OUTBOUND_H
#define CONGVU_OUTBOUND_H

#include "settings.h"

struct outbound_args {
	const struct settings *set;
	int parent_fd;   /* DF_RELOAD frames from the parent (dproto.h), or -1 */
};

/* Runs in the child after fork and privilege drop until SIGTERM; returns
 * the exit code. */
int outbound_main(const struct outbound_args *args);

#endif
