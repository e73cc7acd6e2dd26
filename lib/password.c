#include "config.h"
#include "password.h"
#include "xalloc.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

int password_hash(const char *password, char **hash_r, const char **error_r)
{
	if (strlen(password) > PASSWORD_MAX_LEN) {
		*error_r = "password too long";
		return -1;
	}
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL) {
		*error_r = "cannot make a yescrypt salt";
		return -1;
	}
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *h = crypt_r(password, salt, data);
	if (h == NULL || h[0] == '*') {
		free(data);
		*error_r = "yescrypt failed";
		return -1;
	}
	*hash_r = xstrdup(h);
	OPENSSL_cleanse(data, sizeof(*data));
	free(data);
	return 0;
}

bool password_verify(const char *password, const char *hash)
{
	if (hash == NULL || hash[0] == '\0' || hash[0] == '*' || hash[0] == '!' ||
	    strlen(password) > PASSWORD_MAX_LEN)
		return false;
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *h = crypt_r(password, hash, data);
	bool ok = false;
	if (h != NULL && h[0] != '*') {
		size_t n = strlen(hash);
		ok = strlen(h) == n && CRYPTO_memcmp(h, hash, n) == 0;
	}
	OPENSSL_cleanse(data, sizeof(*data));
	free(data);
	return ok;
}
