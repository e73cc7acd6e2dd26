/* The outbound process's shared state, between outbound.c (queue, jobs,
 * SMTP sessions, store transactions) and outbound-sts.c (MTA-STS). Private
 * to those two files. */
#ifndef CONGVU_OUTBOUND_PRIVATE_H
#define CONGVU_OUTBOUND_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dane.h"
#include "dns-resolver.h"
#include "mta-sts.h"
#include "outbound-client.h"
#include "outbound-sched.h"
#include "queue-record.h"
#include "settings.h"
#include "tls-policy.h"

struct conn;
struct defer;
struct frame_chan;
struct io;
struct ioloop;
struct store;
struct sts_entry;
struct timeout;
struct tls_ctx;

struct ob;
struct ob_job;

/* What the settings say, shared by reference: a reload (SIGHUP in the
 * parent, DF_RELOAD here) makes a new one while jobs finish with theirs. */
struct ob_cfg {
	unsigned refs;
	struct tls_ctx *tls_may, *tls_verify;
	struct tls_policy *policy;
	char *hostname;
	char *domains;
	char *relay_host;         /* "" or HOST */
	unsigned relay_port;
	unsigned port;
	unsigned concurrency, dest_concurrency;
	unsigned connect_timeout_ms, timeout_ms;
	struct outbound_timing timing;
	bool mta_sts;
	unsigned mta_sts_port;
	bool dane;
};

/* DANE for the server being tried (RFC 7672), from its TLSA records. */
enum job_dane { DANE_OFF, DANE_ENCRYPT /* only unusable records */, DANE_VERIFY };

struct ob_msg {
	struct ob *ob;
	uint64_t id;
	struct queue_record rec; /* as read when the attempt started */
	char *data;
	size_t size;
	size_t jobs_left;         /* jobs not finished */
	size_t commits_left;      /* finished jobs whose results are not committed */
	struct ob_msg *next;
};

struct ob_dest {
	char *name;               /* destination domain, or the smart host */
	unsigned active;
	struct ob_job *wait_head, *wait_tail;
	/* no server of the destination could be reached: the jobs still
	 * waiting for it in this round are deferred without trying */
	char *down_error;
	struct ob_dest *next;
};

struct ob_job {
	struct ob *ob;
	struct ob_cfg *cfg;
	struct ob_msg *msg;
	struct ob_dest *dest;
	char *domain;
	size_t *idx;
	size_t n;
	struct smtpc_rcpt *rcpts;
	struct smtpc_params params;
	enum tls_policy_level level;

	struct dnsr_mx *hosts;
	size_t n_hosts, host_i;
	unsigned port;
	struct net_addr *addrs;
	size_t n_addrs, addr_i;
	int dns_id;

	int fd;
	struct io *cio;
	struct timeout *cto;
	struct conn *conn;
	struct smtpc *c;
	bool tls_started, no_starttls;
	char mta[320];            /* "host[ip]:port" of the current server */
	char tls[24];             /* the TLS version of the session, or "no" */
	char *last_error;
	bool last_perm;           /* every host refused us with 5xx */
	bool any_temp;
	bool tls_refused;         /* a server failed the TLS policy (4.7.4) */
	struct ob_job *next_wait;
	struct ob_job *next;      /* all jobs */
	bool mx_secure;           /* the MX answer was DNSSEC-validated */
	enum job_dane dane;
	struct dane_tlsa *tlsa;
	size_t n_tlsa;
	/* MTA-STS: the destination's policy when it has one (copied) */
	struct mta_sts_policy sts;
	bool sts_enforce, sts_testing;
	struct sts_entry *sts_wait;   /* the entry this job waits on, or NULL */
	struct ob_job *next_sts_wait;
};

struct ob {
	struct ioloop *loop;
	const struct settings *set;
	struct store *store;
	struct dnsr *dns;
	struct io *dns_io, *notify_io;
	struct timeout *scan_to;
	uint64_t scan_due_ms;     /* when scan_to fires (0: not armed) */
	struct ob_cfg *cfg;       /* the current settings; jobs hold their own */
	struct frame_chan *parent;
	struct ob_msg *msgs;
	size_t n_msgs;
	struct ob_dest *dests;
	struct ob_job *jobs;
	struct commit *commits, *commits_tail;
	struct defer *commit_defer;
	struct defer *wake_defer; /* starts jobs waiting for a destination slot */
	struct sts_entry *sts;
	char *sts_cache_path;     /* global.data_dir/mta-sts.cache */
	bool stopping;
};

/* outbound.c */
int64_t outbound_now(void);
void outbound_cfg_unref(struct ob_cfg **cfg);
/* Looks up the MX hosts of the job's domain and delivers (after MTA-STS). */
void outbound_job_route_mx(struct ob_job *job);

/* outbound-sts.c */
/* Applies the domain's MTA-STS policy to the job (fetching it first when
 * needed), then calls outbound_job_route_mx(). */
void outbound_sts_get(struct ob_job *job);
/* The job is being freed: it no longer waits for a policy. */
void outbound_sts_job_gone(struct ob_job *job);
void outbound_sts_free_all(struct ob *ob);
/* Reads the policies saved by an earlier run (RFC 8461 5.1: a cache that
 * outlives restarts, so a policy host kept unreachable cannot downgrade). */
void outbound_sts_load(struct ob *ob);

#endif
