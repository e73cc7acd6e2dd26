/* The outbound TLS policy table; see tls-policy.h. */
#include "config.h"
#include "tls-policy.h"
#include "str.h"
#include "xalloc.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tls_policy_item {
	char *domain;   /* lower case; for wildcards the suffix with its dot ".gov.vn" */
	bool wildcard;
	enum tls_policy_level level;
};

struct tls_policy {
	struct tls_policy_item *items;
	size_t n;
	bool has_default;
	enum tls_policy_level default_level;
};

static bool valid_domain(const char *d)
{
	size_t len = strlen(d), label = 0;
	if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.')
		return false;
	for (const char *p = d; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

static int parse_item(struct tls_policy *pol, const char *item, size_t len, char **error_r)
{
	char *s = xstrndup(item, len);
	char *colon = strrchr(s, ':');
	enum tls_policy_level level = TLS_POLICY_MAY;
	bool ok = colon != NULL;
	if (ok) {
		*colon = '\0';
		const char *lv = colon + 1;
		if (strcasecmp(lv, "none") == 0)
			level = TLS_POLICY_NONE;
		else if (strcasecmp(lv, "may") == 0)
			level = TLS_POLICY_MAY;
		else if (strcasecmp(lv, "encrypt") == 0)
			level = TLS_POLICY_ENCRYPT;
		else if (strcasecmp(lv, "verify") == 0)
			level = TLS_POLICY_VERIFY;
		else
			ok = false;
	}
	for (char *p = s; ok && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (ok && strcmp(s, "*") == 0) {
		pol->has_default = true;
		pol->default_level = level;
		free(s);
		return 0;
	}
	bool wildcard = ok && strncmp(s, "*.", 2) == 0;
	const char *name = wildcard ? s + 2 : s;
	if (ok) {
		size_t nl = strlen(name);
		char *trimmed = xstrndup(name, nl > 0 && name[nl - 1] == '.' ? nl - 1 : nl);
		ok = valid_domain(trimmed);
		if (ok) {
			pol->items = xreallocarray(pol->items, pol->n + 1, sizeof(*pol->items));
			struct tls_policy_item *it = &pol->items[pol->n++];
			it->wildcard = wildcard;
			it->level = level;
			if (wildcard) {
				struct str d = STR_INIT;
				str_appendc(&d, '.');
				str_appends(&d, trimmed);
				it->domain = str_steal(&d);
				free(trimmed);
			} else {
				it->domain = trimmed;
			}
		} else {
			free(trimmed);
		}
	}
	if (!ok) {
		struct str e = STR_INIT;
		str_appends(&e, "smtpd.tls_policy: bad item '");
		str_append_sanitized(&e, item, len, 200);
		str_appends(&e, "': expected DOMAIN:none|may|encrypt|verify (DOMAIN may be *.SUFFIX)");
		*error_r = str_steal(&e);
		free(s);
		return -1;
	}
	free(s);
	return 0;
}

int tls_policy_parse(const char *text, struct tls_policy **policy_r, char **error_r)
{
	struct tls_policy *pol = xcalloc(1, sizeof(*pol));
	const char *p = text;
	while (*p) {
		size_t skip = strspn(p, ", \t");
		p += skip;
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (parse_item(pol, p, n, error_r) < 0) {
			tls_policy_free(&pol);
			return -1;
		}
		p += n;
	}
	*policy_r = pol;
	return 0;
}

void tls_policy_free(struct tls_policy **pp)
{
	struct tls_policy *pol = *pp;
	if (pol == NULL)
		return;
	for (size_t i = 0; i < pol->n; i++)
		free(pol->items[i].domain);
	free(pol->items);
	free(pol);
	*pp = NULL;
}

enum tls_policy_level tls_policy_lookup(const struct tls_policy *pol, const char *domain)
{
	size_t dl = strlen(domain);
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	const struct tls_policy_item *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < pol->n; i++) {
		const struct tls_policy_item *it = &pol->items[i];
		size_t il = strlen(it->domain);
		if (!it->wildcard) {
			if (il == dl && strncasecmp(it->domain, domain, dl) == 0)
				return it->level;
			continue;
		}
		/* ".gov.vn" matches "x.gov.vn" and "a.b.gov.vn", not "gov.vn"
		 * nor "xgov.vn" */
		if (dl > il && strncasecmp(domain + dl - il, it->domain, il) == 0 &&
		    (best == NULL || il > best_len)) {
			best = it;
			best_len = il;
		}
	}
	if (best != NULL)
		return best->level;
	return pol->has_default ? pol->default_level : TLS_POLICY_MAY;
}

const char *tls_policy_name(enum tls_policy_level level)
{
	switch (level) {
	case TLS_POLICY_ENCRYPT:
		return "encrypt";
	case TLS_POLICY_VERIFY:
		return "verify";
	case TLS_POLICY_NONE:
		return "none";
	case TLS_POLICY_MAY:
		break;
	}
	return "may";
}
