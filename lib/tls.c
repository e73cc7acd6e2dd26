/* TLS contexts; see tls.h. */
#include "config.h"
#include "tls.h"
#include "xalloc.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	bool server;
};

static char *errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *errorf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return xstrdup(buf);
}

/* The reason of the most recent OpenSSL error, then clears the queue. */
static const char *ssl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	if (e == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

static int version_number(const char *v)
{
	if (v == NULL || *v == '\0' || strcmp(v, "TLSv1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(v, "TLSv1.3") == 0)
		return TLS1_3_VERSION;
	if (strcmp(v, "TLSv1.1") == 0)
		return TLS1_1_VERSION;
	if (strcmp(v, "TLSv1") == 0)
		return TLS1_VERSION;
	return -1;
}

bool tls_version_valid(const char *min_version)
{
	return version_number(min_version) > 0;
}

static SSL_CTX *new_ssl_ctx(bool server, const char *min_version, char **error_r)
{
	int ver = version_number(min_version);
	if (ver < 0) {
		*error_r = errorf("bad TLS version '%s'", min_version);
		return NULL;
	}
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (c == NULL) {
		char why[256];
		*error_r = errorf("SSL_CTX_new: %s", ssl_reason(why, sizeof(why)));
		return NULL;
	}
	if (ver < TLS1_2_VERSION) {
		/* Old protocols need the legacy ciphers of security level 0. */
		SSL_CTX_set_security_level(c, 0);
	}
	SSL_CTX_set_min_proto_version(c, ver);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				       SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (server) {
		/* Session tickets keep no per-session state on the server. */
		SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(c, 1);
	}
	return c;
}

static SSL_CTX *new_server(const char *cert, const char *key, const char *min_version,
			   char **error_r)
{
	char why[256];
	if (cert == NULL || *cert == '\0') {
		*error_r = xstrdup("tls.cert: not set (TLS listeners need a certificate)");
		return NULL;
	}
	if (key == NULL || *key == '\0')
		key = cert;
	FILE *f = fopen(cert, "r");
	if (f == NULL) {
		*error_r = errorf("tls.cert: %s: %s", cert, strerror(errno));
		return NULL;
	}
	fclose(f);
	f = fopen(key, "r");
	if (f == NULL) {
		*error_r = errorf("tls.key: %s: %s", key, strerror(errno));
		return NULL;
	}
	fclose(f);
	SSL_CTX *c = new_ssl_ctx(true, min_version, error_r);
	if (c == NULL)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
		*error_r = errorf("tls.cert: %s: %s", cert, ssl_reason(why, sizeof(why)));
		SSL_CTX_free(c);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
		*error_r = errorf("tls.key: %s: %s", key, ssl_reason(why, sizeof(why)));
		SSL_CTX_free(c);
		return NULL;
	}
	if (SSL_CTX_check_private_key(c) != 1) {
		*error_r = errorf("tls.key: %s does not match the certificate %s", key, cert);
		ERR_clear_error();
		SSL_CTX_free(c);
		return NULL;
	}
	return c;
}

int tls_ctx_server_new(const char *cert_path, const char *key_path, const char *min_version,
		       struct tls_ctx **ctx_r, char **error_r)
{
	SSL_CTX *c = new_server(cert_path, key_path, min_version, error_r);
	if (c == NULL)
		return -1;
	struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = c;
	ctx->server = true;
	*ctx_r = ctx;
	return 0;
}

int tls_ctx_client_new(const char *min_version, bool verify, const char *ca_file,
		       struct tls_ctx **ctx_r, char **error_r)
{
	SSL_CTX *c = new_ssl_ctx(false, min_version, error_r);
	if (c == NULL)
		return -1;
	int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(c, ca_file, NULL)
				 : SSL_CTX_set_default_verify_paths(c);
	if (ok != 1 && verify) {
		char why[256];
		*error_r = errorf("trust store %s: %s", ca_file ? ca_file : "(system)",
				  ssl_reason(why, sizeof(why)));
		SSL_CTX_free(c);
		return -1;
	}
	ERR_clear_error();
	SSL_CTX_set_verify(c, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = c;
	ctx->server = false;
	*ctx_r = ctx;
	return 0;
}

int tls_ctx_reload(struct tls_ctx *ctx, const char *cert_path, const char *key_path,
		   const char *min_version, char **error_r)
{
	if (!ctx->server) {
		SSL_CTX *c = new_ssl_ctx(false, min_version, error_r);
		if (c == NULL)
			return -1;
		SSL_CTX_set_verify(c, SSL_CTX_get_verify_mode(ctx->ssl_ctx), NULL);
		SSL_CTX_set_default_verify_paths(c);
		SSL_CTX_free(ctx->ssl_ctx);
		ctx->ssl_ctx = c;
		return 0;
	}
	SSL_CTX *c = new_server(cert_path, key_path, min_version, error_r);
	if (c == NULL)
		return -1;
	/* Connections made from the old SSL_CTX hold references to it. */
	SSL_CTX_free(ctx->ssl_ctx);
	ctx->ssl_ctx = c;
	return 0;
}

int tls_ctx_reload_mem(struct tls_ctx *ctx, const void *cert_pem, size_t cert_len,
		       const void *key_pem, size_t key_len, const char *min_version,
		       char **error_r)
{
	char why[256];
	if (!ctx->server || cert_len > INT32_MAX || key_len > INT32_MAX) {
		*error_r = xstrdup("tls: not a server context");
		return -1;
	}
	SSL_CTX *c = new_ssl_ctx(true, min_version, error_r);
	if (c == NULL)
		return -1;
	BIO *b = BIO_new_mem_buf(cert_pem, (int)cert_len);
	X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
	bool ok = x != NULL && SSL_CTX_use_certificate(c, x) == 1;
	X509_free(x);
	/* the rest of the chain */
	while (ok) {
		X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (ca == NULL)
			break;
		if (SSL_CTX_add0_chain_cert(c, ca) != 1) {
			X509_free(ca);
			ok = false;
		}
	}
	BIO_free(b);
	ERR_clear_error();
	if (!ok) {
		*error_r = errorf("tls.cert: %s", ssl_reason(why, sizeof(why)));
		SSL_CTX_free(c);
		return -1;
	}
	b = BIO_new_mem_buf(key_pem, (int)key_len);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (k == NULL || SSL_CTX_use_PrivateKey(c, k) != 1 || SSL_CTX_check_private_key(c) != 1) {
		*error_r = errorf("tls.key: %s", ssl_reason(why, sizeof(why)));
		EVP_PKEY_free(k);
		SSL_CTX_free(c);
		return -1;
	}
	EVP_PKEY_free(k);
	SSL_CTX_free(ctx->ssl_ctx);
	ctx->ssl_ctx = c;
	return 0;
}

void tls_ctx_free(struct tls_ctx **ctxp)
{
	struct tls_ctx *ctx = *ctxp;
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
	*ctxp = NULL;
}

void *tls_ctx_ssl_ctx(struct tls_ctx *ctx)
{
	return ctx->ssl_ctx;
}

bool tls_ctx_is_server(const struct tls_ctx *ctx)
{
	return ctx->server;
}
