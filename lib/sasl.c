/* SASL PLAIN and LOGIN, server side; see sasl.h. */
#include "config.h"
#include "sasl.h"
#include "base64.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest client response we decode: PLAIN's authzid, authcid and
 * password with their separators. */
#define RESPONSE_MAX (2 * ADDRESS_MAX_LEN + PASSWORD_MAX_LEN + 2)

enum sasl_step { STEP_START, STEP_PLAIN, STEP_LOGIN_USER, STEP_LOGIN_PASS, STEP_DONE };

struct sasl_server {
	enum sasl_mech mech;
	enum sasl_step step;
	struct sasl_creds creds;
};

int sasl_mech_parse(const char *name, enum sasl_mech *mech_r)
{
	if (strcasecmp(name, "PLAIN") == 0) {
		*mech_r = SASL_MECH_PLAIN;
		return 0;
	}
	if (strcasecmp(name, "LOGIN") == 0) {
		*mech_r = SASL_MECH_LOGIN;
		return 0;
	}
	return -1;
}

struct sasl_server *sasl_server_new(enum sasl_mech mech)
{
	struct sasl_server *s = xcalloc(1, sizeof(*s));
	s->mech = mech;
	return s;
}

void sasl_server_free(struct sasl_server **sp)
{
	struct sasl_server *s = *sp;
	if (s == NULL)
		return;
	explicit_bzero(s, sizeof(*s));
	free(s);
	*sp = NULL;
}

/* Decodes a client response; "=" is an empty one. */
static int decode(const char *in, size_t len, char *buf, size_t *n_r, const char **error_r)
{
	if (len == 1 && in[0] == '*') {
		*error_r = "cancelled";
		return -1;
	}
	if (len == 1 && in[0] == '=') {
		*n_r = 0;
		return 0;
	}
	if (len > 4 * ((RESPONSE_MAX + 2) / 3)) {
		*error_r = "too long";
		return -1;
	}
	if (base64_decode(in, len, buf, RESPONSE_MAX, n_r) < 0) {
		*error_r = "bad base64";
		return -1;
	}
	return 0;
}

/* Copies a field that must hold no NUL and fit size - 1 bytes. */
static int copy_field(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size || memchr(src, '\0', len) != NULL)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

static int plain_response(struct sasl_server *s, const char *buf, size_t n, const char **error_r)
{
	/* authzid NUL authcid NUL passwd (RFC 4616 section 2) */
	const char *nul1 = memchr(buf, '\0', n);
	const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - buf)) : NULL;
	if (nul1 == NULL || nul2 == NULL) {
		*error_r = "malformed";
		return -1;
	}
	size_t zlen = (size_t)(nul1 - buf);
	size_t clen = (size_t)(nul2 - nul1 - 1);
	size_t plen = n - (size_t)(nul2 + 1 - buf);
	if (clen == 0 || plen == 0 ||
	    copy_field(s->creds.authzid, sizeof(s->creds.authzid), buf, zlen) < 0 ||
	    copy_field(s->creds.authcid, sizeof(s->creds.authcid), nul1 + 1, clen) < 0 ||
	    copy_field(s->creds.password, sizeof(s->creds.password), nul2 + 1, plen) < 0) {
		*error_r = clen == 0 || plen == 0 ? "malformed" : "too long";
		return -1;
	}
	s->step = STEP_DONE;
	return 1;
}

int sasl_server_start(struct sasl_server *s, const char *initial, size_t len,
		      const char **challenge_r, const char **error_r)
{
	*challenge_r = "";
	if (s->step != STEP_START) {
		*error_r = "malformed";
		return -1;
	}
	if (s->mech == SASL_MECH_PLAIN) {
		s->step = STEP_PLAIN;
		if (initial == NULL)
			return 0;
		return sasl_server_input(s, initial, len, challenge_r, error_r);
	}
	s->step = STEP_LOGIN_USER;
	if (initial == NULL) {
		*challenge_r = "VXNlcm5hbWU6"; /* "Username:" */
		return 0;
	}
	return sasl_server_input(s, initial, len, challenge_r, error_r);
}

int sasl_server_input(struct sasl_server *s, const char *line, size_t len,
		      const char **challenge_r, const char **error_r)
{
	char buf[RESPONSE_MAX];
	size_t n;
	*challenge_r = "";
	if (s->step == STEP_START || s->step == STEP_DONE) {
		*error_r = "malformed";
		return -1;
	}
	if (decode(line, len, buf, &n, error_r) < 0)
		return -1;
	int ret;
	switch (s->step) {
	case STEP_PLAIN:
		ret = plain_response(s, buf, n, error_r);
		break;
	case STEP_LOGIN_USER:
		if (n == 0 || copy_field(s->creds.authcid, sizeof(s->creds.authcid), buf, n) < 0) {
			*error_r = n == 0 ? "malformed" : "too long";
			ret = -1;
			break;
		}
		s->step = STEP_LOGIN_PASS;
		*challenge_r = "UGFzc3dvcmQ6"; /* "Password:" */
		ret = 0;
		break;
	case STEP_LOGIN_PASS:
		if (n == 0 || copy_field(s->creds.password, sizeof(s->creds.password), buf, n) < 0) {
			*error_r = n == 0 ? "malformed" : "too long";
			ret = -1;
			break;
		}
		s->step = STEP_DONE;
		ret = 1;
		break;
	default:
		*error_r = "malformed";
		ret = -1;
		break;
	}
	explicit_bzero(buf, sizeof(buf));
	if (ret < 0)
		s->step = STEP_DONE;
	return ret;
}

const struct sasl_creds *sasl_server_creds(const struct sasl_server *s)
{
	return &s->creds;
}
