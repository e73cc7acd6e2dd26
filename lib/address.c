#include "config.h"
#include "address.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool atext(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL || c >= 0x80;
}

int address_normalize(const char *in, char *out, const char **error_r)
{
	size_t len = strlen(in);
	if (len == 0 || len > ADDRESS_MAX_LEN) {
		*error_r = len ? "address too long" : "empty address";
		return -1;
	}
	const char *at = strrchr(in, '@');
	if (at == NULL || at == in || at[1] == '\0') {
		*error_r = "address must be LOCAL@DOMAIN";
		return -1;
	}
	size_t llen = (size_t)(at - in);
	if (llen > ADDRESS_LOCAL_MAX_LEN) {
		*error_r = "local part longer than 64 characters";
		return -1;
	}
	for (size_t i = 0; i < llen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '.') {
			if (i == 0 || i + 1 == llen || in[i - 1] == '.') {
				*error_r = "misplaced dot in local part";
				return -1;
			}
		} else if (!atext(c)) {
			*error_r = "invalid character in local part";
			return -1;
		}
	}
	const char *dom = at + 1;
	size_t dlen = strlen(dom);
	for (size_t i = 0; i < dlen; i++) {
		unsigned char c = (unsigned char)dom[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c >= 0x80)) {
			*error_r = "invalid character in domain";
			return -1;
		}
		if (c == '.' && (i == 0 || i + 1 == dlen || dom[i - 1] == '.')) {
			*error_r = "misplaced dot in domain";
			return -1;
		}
	}
	if (dom[0] == '-' || strchr(dom, '.') == NULL) {
		*error_r = "domain must be a full domain name";
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[len] = '\0';
	return 0;
}

const char *address_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

bool domain_is_local(const char *domain, const char *domains)
{
	size_t n = strlen(domain);
	const char *p = domains;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t m = strcspn(p, " \t,");
		if (m == n && m > 0 && strncasecmp(p, domain, n) == 0)
			return true;
		p += m;
	}
	return false;
}
