/* Password hashes (libxcrypt): new hashes are yescrypt ("$y$"); verification
 * takes any hash crypt(3) knows, so accounts imported from other servers
 * keep their $6$ (SHA-512), $5$ (SHA-256) and $2b$ (bcrypt) hashes. */
#ifndef CONGVU_PASSWORD_H
#define CONGVU_PASSWORD_H

#include <stdbool.h>

/* Hashes password with a fresh salt. Returns 0 and *hash_r (caller frees),
 * or -1 and *error_r (static). */
int password_hash(const char *password, char **hash_r, const char **error_r);
/* True when password matches hash. Compares in constant time. */
bool password_verify(const char *password, const char *hash);
/* Longest password accepted anywhere (SASL, LOGIN, congvu-quota). */
#define PASSWORD_MAX_LEN 1024
/* A yescrypt hash no password matches in practice: an unknown user's
 * password is verified against it, so the time taken tells nothing. */
#define PASSWORD_DUMMY_HASH \
	"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"

#endif
