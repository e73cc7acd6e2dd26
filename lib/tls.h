/* TLS contexts (OpenSSL 3) for lib/conn: one per role and set of settings.
 *
 * A server context is built from tls.cert, tls.key and a minimum protocol
 * version (tls.min_version, or smtpd.smtp_tls_min_version for port 25).
 * tls_ctx_reload() (SIGHUP) swaps in a new certificate atomically:
 * handshakes started afterwards use it, established connections keep theirs
 * (each SSL holds a reference to the SSL_CTX it was made from). On a failed
 * reload the old certificate stays in use.
 *
 * Errors are returned as strings the caller frees, naming the setting or
 * path and OpenSSL's reason; nothing here logs. */
#ifndef CONGVU_TLS_H
#define CONGVU_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_ctx;

/* min_version: "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" or "" (TLSv1.2).
 * Checks that the key matches the certificate. Returns 0 and *ctx_r, or -1
 * with *error_r (caller frees), e.g. "tls.cert: /path: No such file". */
int tls_ctx_server_new(const char *cert_path, const char *key_path, const char *min_version,
		       struct tls_ctx **ctx_r, char **error_r);
/* Client context. verify: load the system trust store and verify the peer
 * chain and host name (conn_starttls_client's servername); otherwise the
 * handshake succeeds with any certificate (opportunistic TLS) and
 * conn_tls_verified() still reports whether it would have verified.
 * ca_file may be NULL (the system's default). */
int tls_ctx_client_new(const char *min_version, bool verify, const char *ca_file,
		       struct tls_ctx **ctx_r, char **error_r);
/* Loads the certificate, key and version again (from the same or new
 * paths); on error the context is unchanged. */
int tls_ctx_reload(struct tls_ctx *ctx, const char *cert_path, const char *key_path,
		   const char *min_version, char **error_r);
/* The same from PEM text in memory (an unprivileged process that cannot
 * read the key file gets it from its parent). */
int tls_ctx_reload_mem(struct tls_ctx *ctx, const void *cert_pem, size_t cert_len,
		       const void *key_pem, size_t key_len, const char *min_version,
		       char **error_r);
void tls_ctx_free(struct tls_ctx **ctx);

/* Whether min_version is one of the accepted names (or ""). */
bool tls_version_valid(const char *min_version);

/* For lib/conn only: the current SSL_CTX (an SSL_CTX *), and whether this is
 * a server context. */
void *tls_ctx_ssl_ctx(struct tls_ctx *ctx);
bool tls_ctx_is_server(const struct tls_ctx *ctx);

#endif
