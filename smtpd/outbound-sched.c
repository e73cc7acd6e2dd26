/* Outbound queue decisions; see outbound-sched.h. */
#include "config.h"
#include "outbound-sched.h"
#include "address.h"
#include "xalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *d = xstrdup(at ? at + 1 : "");
	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

size_t outbound_group_pending(const struct queue_record *r, size_t max_rcpts,
			      struct outbound_group **groups_r)
{
	struct outbound_group *g = NULL;
	size_t n = 0;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		if (r->rcpts[i].status != QRCPT_PENDING)
			continue;
		char *d = domain_of(r->rcpts[i].addr);
		size_t k;
		for (k = 0; k < n; k++)
			if (g[k].n < max_rcpts && strcmp(g[k].domain, d) == 0)
				break;
		if (k == n) {
			g = xreallocarray(g, n + 1, sizeof(*g));
			g[n].domain = d;
			g[n].idx = NULL;
			g[n].n = 0;
			n++;
		} else {
			free(d);
		}
		g[k].idx = xreallocarray(g[k].idx, g[k].n + 1, sizeof(size_t));
		g[k].idx[g[k].n++] = i;
	}
	*groups_r = g;
	return n;
}

void outbound_groups_free(struct outbound_group **gp, size_t n)
{
	struct outbound_group *g = *gp;
	if (g == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(g[i].domain);
		free(g[i].idx);
	}
	free(g);
	*gp = NULL;
}

int64_t outbound_retry_at(int64_t now, uint32_t attempts, uint64_t min_backoff,
			  uint64_t max_backoff)
{
	uint64_t d = min_backoff;
	for (uint32_t i = 1; i < attempts && d < max_backoff; i++)
		d *= 2;
	if (d > max_backoff)
		d = max_backoff;
	return now + (int64_t)d;
}

void outbound_apply(struct queue_record *r, const char *mta, const struct outbound_result *res,
		    size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct outbound_result *x = &res[k];
		if (x->index >= r->n_rcpts || strcmp(r->rcpts[x->index].addr, x->addr) != 0)
			continue;
		struct queue_rcpt *q = &r->rcpts[x->index];
		if (q->status != QRCPT_PENDING)
			continue;
		const char *st = x->status;
		switch (x->result) {
		case SMTPC_R_OK:
			q->status = QRCPT_SENT;
			queue_record_rcpt_info(q, st ? st : "2.0.0", mta, x->diag);
			q->reported = x->remote_dsn || !dsn_wanted(q->notify, DSN_RELAYED);
			break;
		case SMTPC_R_PERM:
			q->status = QRCPT_FAILED;
			queue_record_rcpt_info(q, st ? st : "5.0.0", mta, x->diag);
			q->reported = false;
			break;
		case SMTPC_R_TEMP:
		case SMTPC_R_NONE:
			queue_record_rcpt_info(q, st ? st : "4.0.0", mta, x->diag);
			if (x->diag != NULL) {
				free(r->last_error);
				r->last_error = xstrdup(x->diag);
			}
			break;
		}
	}
}

static void add_notice(struct dsn_rcpt **list, size_t *n, const struct queue_rcpt *q,
		       enum dsn_action action, int64_t now)
{
	*list = xreallocarray(*list, *n + 1, sizeof(**list));
	struct dsn_rcpt *d = &(*list)[(*n)++];
	memset(d, 0, sizeof(*d));
	d->addr = q->addr;
	d->orcpt = q->orcpt;
	d->action = action;
	d->status = q->dsn_status;
	d->remote_mta = q->mta;
	/* a reply from a server is a Diagnostic-Code; our own reasons are not */
	bool reply = q->diag != NULL && q->diag[0] >= '2' && q->diag[0] <= '5' &&
		     q->diag[1] >= '0' && q->diag[1] <= '9' && q->mta != NULL;
	d->diag = reply ? q->diag : NULL;
	d->reason = reply ? NULL : q->diag;
	d->last_attempt = now;
}

void outbound_finish_attempt(struct queue_record *r, int64_t now, const struct outbound_timing *t,
			     struct outbound_notices *n)
{
	memset(n, 0, sizeof(*n));
	r->attempts++;
	bool expired = now - r->created >= (int64_t)t->lifetime;
	bool null_sender = r->from == NULL || r->from[0] == '\0';
	size_t pending = 0;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		struct queue_rcpt *q = &r->rcpts[i];
		if (q->status == QRCPT_PENDING && expired) {
			struct str d = STR_INIT;
			str_appends(&d, "delivery time expired");
			if (q->diag != NULL) {
				str_appends(&d, "; last error: ");
				str_appends(&d, q->diag);
			}
			char *mta = q->mta ? xstrdup(q->mta) : NULL;
			queue_record_rcpt_info(q, "4.4.7", mta, d.s);
			free(mta);
			str_free(&d);
			q->status = QRCPT_FAILED;
			q->reported = false;
		}
		if (q->status == QRCPT_PENDING) {
			pending++;
			continue;
		}
		if (q->reported)
			continue;
		q->reported = true;
		if (null_sender)
			continue;
		if (q->status == QRCPT_FAILED && dsn_wanted(q->notify, DSN_FAILED))
			add_notice(&n->failed, &n->n_failed, q, DSN_FAILED, now);
		else if (q->status == QRCPT_SENT && dsn_wanted(q->notify, DSN_RELAYED))
			add_notice(&n->relayed, &n->n_relayed, q, DSN_RELAYED, now);
	}
	if (pending > 0 && !r->warned && t->warn_after > 0 &&
	    now - r->created >= (int64_t)t->warn_after) {
		r->warned = true;
		for (size_t i = 0; i < r->n_rcpts && !null_sender; i++) {
			const struct queue_rcpt *q = &r->rcpts[i];
			if (q->status == QRCPT_PENDING && dsn_wanted(q->notify, DSN_DELAYED))
				add_notice(&n->delayed, &n->n_delayed, q, DSN_DELAYED, now);
		}
	}
	n->done = pending == 0;
	r->next_attempt = n->done ? now
				  : outbound_retry_at(now, r->attempts, t->min_backoff,
						      t->max_backoff);
	/* never past the expiry: the last attempt happens at the deadline */
	int64_t deadline = r->created + (int64_t)t->lifetime;
	if (!n->done && r->next_attempt > deadline && deadline > now)
		r->next_attempt = deadline;
}

void outbound_notices_free(struct outbound_notices *n)
{
	free(n->failed);
	free(n->delayed);
	free(n->relayed);
	memset(n, 0, sizeof(*n));
}
