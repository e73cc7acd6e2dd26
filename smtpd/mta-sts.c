/* MTA-STS cores; see mta-sts.h. */
#include "config.h"
#include "mta-sts.h"
#include "xalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

int mta_sts_parse_txt(const char *txt, size_t len, char id[33])
{
	const char *p = txt, *end = txt + len;
	if (len < 7 || memcmp(p, "v=STSv1", 7) != 0)
		return 0;
	p += 7;
	id[0] = '\0';
	/* sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim] */
	while (p < end) {
		p = skip_ws(p, end);
		if (p >= end)
			break;
		if (*p != ';')
			return -1;
		p = skip_ws(p + 1, end);
		if (p >= end)
			break;
		const char *eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL)
			return -1;
		const char *v = eq + 1, *ve = v;
		while (ve < end && *ve != ';' && *ve != ' ' && *ve != '\t')
			ve++;
		if ((size_t)(eq - p) == 2 && memcmp(p, "id", 2) == 0) {
			size_t n = (size_t)(ve - v);
			if (n == 0 || n > 32)
				return -1;
			for (size_t i = 0; i < n; i++)
				if (!isalnum((unsigned char)v[i]))
					return -1;
			memcpy(id, v, n);
			id[n] = '\0';
		}
		p = ve;
	}
	return id[0] != '\0' ? 1 : -1;
}

static bool valid_pattern(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	if (*s == '\0' || *s == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
			return false;
	return true;
}

int mta_sts_parse_policy(const char *text, size_t len, struct mta_sts_policy *pol,
			 const char **error_r)
{
	memset(pol, 0, sizeof(*pol));
	bool version = false, mode = false, age = false;
	if (len > MTA_STS_POLICY_MAX) {
		*error_r = "policy too large";
		return -1;
	}
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *ke = le;
		if (ke > p && ke[-1] == '\r')
			ke--;
		const char *colon = memchr(p, ':', (size_t)(ke - p));
		if (colon != NULL) {
			size_t kl = (size_t)(colon - p);
			const char *v = skip_ws(colon + 1, ke);
			const char *vend = ke;
			while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			size_t vl = (size_t)(vend - v);
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(p, k, kl) == 0)
#define VAL(x) (vl == sizeof(x) - 1 && memcmp(v, x, vl) == 0)
			if (KEY("version")) {
				if (!VAL("STSv1")) {
					*error_r = "unknown policy version";
					goto fail;
				}
				version = true;
			} else if (KEY("mode")) {
				if (VAL("enforce"))
					pol->mode = MTA_STS_ENFORCE;
				else if (VAL("testing"))
					pol->mode = MTA_STS_TESTING;
				else if (VAL("none"))
					pol->mode = MTA_STS_NONE;
				else {
					*error_r = "bad mode";
					goto fail;
				}
				mode = true;
			} else if (KEY("max_age")) {
				uint64_t a = 0;
				if (vl == 0 || vl > 10) {
					*error_r = "bad max_age";
					goto fail;
				}
				for (size_t i = 0; i < vl; i++) {
					if (!isdigit((unsigned char)v[i])) {
						*error_r = "bad max_age";
						goto fail;
					}
					a = a * 10 + (uint64_t)(v[i] - '0');
				}
				pol->max_age = a > MTA_STS_MAX_AGE ? MTA_STS_MAX_AGE : (uint32_t)a;
				age = true;
			} else if (KEY("mx")) {
				char *m = xstrndup(v, vl);
				for (char *q = m; *q; q++)
					*q = (char)tolower((unsigned char)*q);
				if (!valid_pattern(m) || pol->n_mx >= MTA_STS_MX_MAX) {
					free(m);
					*error_r = "bad or too many mx patterns";
					goto fail;
				}
				pol->mx[pol->n_mx++] = m;
			}
			/* other keys: ignored (RFC 8461 3.2, extensions) */
#undef KEY
#undef VAL
		}
		p = nl ? nl + 1 : end;
	}
	if (!version || !mode || !age || (pol->mode != MTA_STS_NONE && pol->n_mx == 0)) {
		*error_r = "policy lacks version, mode, max_age or mx";
		goto fail;
	}
	return 0;
fail:
	mta_sts_policy_free(pol);
	return -1;
}

void mta_sts_policy_free(struct mta_sts_policy *pol)
{
	for (size_t i = 0; i < pol->n_mx; i++)
		free(pol->mx[i]);
	memset(pol, 0, sizeof(*pol));
}

bool mta_sts_mx_match(const struct mta_sts_policy *pol, const char *host)
{
	size_t hl = strlen(host);
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	for (size_t i = 0; i < pol->n_mx; i++) {
		const char *m = pol->mx[i];
		if (strncmp(m, "*.", 2) == 0) {
			/* exactly one label before the suffix */
			const char *suffix = m + 1; /* ".example.net" */
			size_t sl = strlen(suffix);
			if (hl <= sl || strncasecmp(host + hl - sl, suffix, sl) != 0)
				continue;
			const char *label = host;
			size_t ll = hl - sl;
			if (ll > 0 && memchr(label, '.', ll) == NULL)
				return true;
		} else if (strlen(m) == hl && strncasecmp(m, host, hl) == 0) {
			return true;
		}
	}
	return false;
}

int mta_sts_http_response(const char *data, size_t len, bool eof, const char **body_r,
			  size_t *body_len_r, const char **error_r)
{
	const char *hend = NULL;
	for (size_t i = 0; i + 3 < len; i++) {
		if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
			hend = data + i;
			break;
		}
	}
	if (hend == NULL) {
		if (len > 16384) {
			*error_r = "HTTP header too long";
			return -1;
		}
		if (eof) {
			*error_r = "truncated HTTP response";
			return -1;
		}
		return 0;
	}
	/* RFC 8461 3.3: 200 only, no redirects */
	if (len < 12 || memcmp(data, "HTTP/1.", 7) != 0 || memcmp(data + 8, " 200", 4) != 0) {
		*error_r = "HTTP status is not 200";
		return -1;
	}
	bool text_plain = false;
	long clen = -1;
	const char *p = memchr(data, '\n', (size_t)(hend - data));
	while (p != NULL && p < hend) {
		const char *line = p + 1;
		const char *nl = memchr(line, '\n', (size_t)(hend + 2 - line));
		size_t ll = (size_t)((nl ? nl : hend) - line);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
			const char *v = skip_ws(line + 13, line + ll);
			text_plain = (size_t)(line + ll - v) >= 10 && strncasecmp(v, "text/plain", 10) == 0;
		} else if (ll > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
			clen = strtol(line + 15, NULL, 10);
		} else if (ll > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			*error_r = "HTTP transfer encodings are not supported";
			return -1;
		}
		p = nl;
	}
	if (!text_plain) {
		*error_r = "policy is not text/plain";
		return -1;
	}
	const char *body = hend + 4;
	size_t blen = len - (size_t)(body - data);
	if (blen > MTA_STS_POLICY_MAX || (clen > MTA_STS_POLICY_MAX)) {
		*error_r = "policy too large";
		return -1;
	}
	if (clen >= 0 && blen >= (size_t)clen) {
		*body_r = body;
		*body_len_r = (size_t)clen;
		return 1;
	}
	if (!eof)
		return 0;
	if (clen >= 0) {
		*error_r = "truncated HTTP body";
		return -1;
	}
	*body_r = body;
	*body_len_r = blen;
	return 1;
}
