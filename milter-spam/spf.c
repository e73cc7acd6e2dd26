#include "config.h"

#include "spf.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spf2/spf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void quiet_handler(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	(void)msg;
}

void spf_init(void)
{
	/* libspf2 prints warnings to stderr; the daemon logs results itself. */
	SPF_warning_handler = quiet_handler;
	SPF_info_handler = quiet_handler;
	SPF_debug_handler = quiet_handler;
}

const char *spf_result_name(enum spf_result r)
{
	static const char *names[] = {
	    [SPF_RES_NONE] = "none",           [SPF_RES_NEUTRAL] = "neutral",
	    [SPF_RES_PASS] = "pass",           [SPF_RES_FAIL] = "fail",
	    [SPF_RES_SOFTFAIL] = "softfail",   [SPF_RES_TEMPERROR] = "temperror",
	    [SPF_RES_PERMERROR] = "permerror",
	};
	return names[r];
}

#define SPF_ANSWER_MAX 65536

/* The DNS layer: one query through dns_query(), the answer section turned
 * into libspf2's resource-record form (as its resolv layer does). */
static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *server, const char *domain, ns_type type,
                                  int should_cache)
{
	(void)should_cache;
	struct dns_resolver *res = server->hook;
	unsigned char *ans = xmalloc(SPF_ANSWER_MAX);
	int herr = 0;
	int len = dns_query(res, domain, type, ans, SPF_ANSWER_MAX, &herr);
	if (len < 0) {
		free(ans);
		if (herr != HOST_NOT_FOUND && herr != NO_DATA && herr != TRY_AGAIN)
			herr = NO_RECOVERY;
		return SPF_dns_rr_new_init(server, domain, type, 0, herr);
	}
	ns_msg msg;
	if (ns_initparse(ans, len, &msg) < 0) {
		free(ans);
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_RECOVERY);
	}
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(server, domain, type, 0, NETDB_SUCCESS);
	if (rr == NULL) {
		free(ans);
		return NULL;
	}
	int n = 0;
	int count = ns_msg_count(msg, ns_s_an);
	for (int i = 0; i < count; i++) {
		ns_rr r;
		if (ns_parserr(&msg, ns_s_an, i, &r) < 0)
			break;
		if (ns_rr_type(r) != type)
			continue; /* CNAMEs on the way */
		const unsigned char *rd = ns_rr_rdata(r);
		size_t rdlen = ns_rr_rdlen(r);
		char name[NS_MAXDNAME];
		switch (type) {
		case ns_t_a:
			if (rdlen != 4 ||
			    SPF_dns_rr_buf_realloc(rr, n, sizeof(struct in_addr)) != SPF_E_SUCCESS)
				continue;
			memcpy(&rr->rr[n]->a, rd, 4);
			n++;
			break;
		case ns_t_aaaa:
			if (rdlen != 16 ||
			    SPF_dns_rr_buf_realloc(rr, n, sizeof(struct in6_addr)) != SPF_E_SUCCESS)
				continue;
			memcpy(&rr->rr[n]->aaaa, rd, 16);
			n++;
			break;
		case ns_t_mx:
		case ns_t_ptr: {
			const unsigned char *p = rd;
			if (type == ns_t_mx) {
				if (rdlen < 3)
					continue;
				p += 2; /* preference */
			}
			if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), p, name,
			                       sizeof(name)) < 0)
				continue;
			size_t nl = strlen(name);
			if (SPF_dns_rr_buf_realloc(rr, n, nl + 1) != SPF_E_SUCCESS)
				continue;
			memcpy(type == ns_t_mx ? rr->rr[n]->mx : rr->rr[n]->ptr, name, nl + 1);
			n++;
			break;
		}
		case ns_t_txt: {
			/* Character-strings joined without separator (RFC 7208 3.3). */
			if (SPF_dns_rr_buf_realloc(rr, n, rdlen + 1) != SPF_E_SUCCESS)
				continue;
			char *out = rr->rr[n]->txt;
			size_t o = 0, k = 0;
			while (k < rdlen) {
				size_t sl = rd[k++];
				if (sl > rdlen - k)
					sl = rdlen - k;
				memcpy(out + o, rd + k, sl);
				o += sl;
				k += sl;
			}
			out[o] = '\0';
			n++;
			break;
		}
		default:
			break;
		}
	}
	free(ans);
	rr->num_rr = n;
	if (n == 0)
		rr->herrno = NO_DATA;
	return rr;
}

static void layer_destroy(SPF_dns_server_t *server)
{
	free(server);
}

static SPF_dns_server_t *layer_new(struct dns_resolver *res)
{
	SPF_dns_server_t *s = xcalloc(1, sizeof(*s));
	s->destroy = layer_destroy;
	s->lookup = layer_lookup;
	s->get_spf = NULL;
	s->get_exp = NULL;
	s->add_cache = NULL;
	s->layer_below = NULL;
	s->name = "congvu";
	s->hook = res;
	return s;
}

static enum spf_result map_result(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return SPF_RES_PASS;
	case SPF_RESULT_FAIL:
		return SPF_RES_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_RES_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return SPF_RES_NEUTRAL;
	case SPF_RESULT_TEMPERROR:
		return SPF_RES_TEMPERROR;
	case SPF_RESULT_PERMERROR:
		return SPF_RES_PERMERROR;
	default:
		return SPF_RES_NONE;
	}
}

enum spf_result spf_check(struct dns_resolver *res, const char *ip, const char *helo,
                          const char *sender, const char *receiver, struct str *received_spf)
{
	/* A server per check: libspf2 servers are cheap, and this keeps the
	 * library's internal state out of reach of other threads. */
	SPF_dns_server_t *layer = layer_new(res);
	SPF_server_t *server = SPF_server_new_dns(layer, 0);
	enum spf_result result = SPF_RES_TEMPERROR;
	if (server == NULL) {
		free(layer);
		str_appends(received_spf, "temperror (out of memory)");
		return result;
	}
	if (receiver != NULL && *receiver != '\0')
		SPF_server_set_rec_dom(server, receiver);
	SPF_request_t *req = SPF_request_new(server);
	SPF_response_t *resp = NULL;
	bool ok = req != NULL;
	if (ok) {
		if (strchr(ip, ':') != NULL)
			ok = SPF_request_set_ipv6_str(req, ip) == SPF_E_SUCCESS;
		else
			ok = SPF_request_set_ipv4_str(req, ip) == SPF_E_SUCCESS;
	}
	if (ok && helo != NULL && *helo != '\0')
		SPF_request_set_helo_dom(req, helo);
	/* The null sender is checked as postmaster@HELO (RFC 7208 2.4). */
	const char *identity = sender != NULL && *sender != '\0' ? sender : helo;
	if (ok && identity != NULL && *identity != '\0' &&
	    SPF_request_set_env_from(req, identity) == 0)
		SPF_request_query_mailfrom(req, &resp);
	if (resp != NULL) {
		result = map_result(SPF_response_result(resp));
		const char *value = SPF_response_get_received_spf_value(resp);
		if (value != NULL)
			str_appends(received_spf, value);
		else
			str_appends(received_spf, spf_result_name(result));
		SPF_response_free(resp);
	} else {
		result = SPF_RES_NONE;
		str_appends(received_spf, "none (no identity to check)");
	}
	if (req != NULL)
		SPF_request_free(req);
	SPF_server_free(server);
	free(layer);
	return result;
}
