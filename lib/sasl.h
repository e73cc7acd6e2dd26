/* Server side of the SASL mechanisms PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login), independent of the protocol: SMTP AUTH
 * (RFC 4954) and IMAP AUTHENTICATE (RFC 3501 6.2.2) feed it the client's
 * base64 lines and send its challenges. Checking the password is the
 * caller's (lib/password.h against the store). Credentials are wiped when
 * the exchange is freed. */
#ifndef CONGVU_SASL_H
#define CONGVU_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"
#include "base64.h" /* SASL exchanges are base64 */
#include "password.h"

enum sasl_mech { SASL_MECH_PLAIN, SASL_MECH_LOGIN };

/* Mechanism by name, case-insensitively. 0, or -1 when unknown. */
int sasl_mech_parse(const char *name, enum sasl_mech *mech_r);

struct sasl_creds {
	char authzid[ADDRESS_MAX_LEN + 1]; /* "" when absent (PLAIN only) */
	char authcid[ADDRESS_MAX_LEN + 1]; /* the login name as sent */
	char password[PASSWORD_MAX_LEN + 1];
};

struct sasl_server;

struct sasl_server *sasl_server_new(enum sasl_mech mech);
/* Wipes the credentials and frees; sets *s to NULL. NULL is ok. */
void sasl_server_free(struct sasl_server **s);

/* The first step. initial: the initial response (SASL-IR, RFC 4954's
 * "AUTH PLAIN <b64>"; "=" means an empty one) or NULL when the client sent
 * none. Then each client line goes to sasl_server_input().
 * Both return:
 *   1  credentials complete: sasl_server_creds();
 *   0  send *challenge_r (base64, possibly "", static) and wait for a line;
 *  -1  *error_r (static): "cancelled" (the client sent "*"), "bad base64",
 *      "malformed", "too long" - the exchange is over. */
int sasl_server_start(struct sasl_server *s, const char *initial, size_t len,
		      const char **challenge_r, const char **error_r);
int sasl_server_input(struct sasl_server *s, const char *line, size_t len,
		      const char **challenge_r, const char **error_r);
const struct sasl_creds *sasl_server_creds(const struct sasl_server *s);

#endif
