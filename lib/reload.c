#include "config.h"
#include "reload.h"
#include "frame.h"
#include "settings.h"
#include "tls.h"
#include "xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int reload_build(const char *conf_path, char *const *overrides, int n_overrides,
		 struct settings **set_r, struct str *payload, char **error_r)
{
	struct settings *set = settings_from_cli(conf_path, overrides, n_overrides, error_r);
	if (set == NULL)
		return -1;
	struct str cert = STR_INIT, key = STR_INIT;
	const char *cp = settings_str(set, S_TLS_CERT), *kp = settings_str(set, S_TLS_KEY);
	if (kp[0] == '\0')
		kp = cp;
	if (cp[0] != '\0') {
		struct tls_ctx *check;
		if (tls_ctx_server_new(cp, kp, settings_str(set, S_TLS_MIN_VERSION), &check,
				       error_r) < 0) {
			settings_free(&set);
			return -1;
		}
		tls_ctx_free(&check);
		if (str_read_file(&cert, cp, RELOAD_PART_MAX) < 0 ||
		    str_read_file(&key, kp, RELOAD_PART_MAX) < 0) {
			struct str e = STR_INIT;
			str_printf(&e, "tls: %s", strerror(errno));
			*error_r = str_steal(&e);
			if (key.s != NULL)
				explicit_bzero(key.s, key.len);
			str_free(&cert);
			str_free(&key);
			settings_free(&set);
			return -1;
		}
	}
	char *text = settings_to_text(set);
	frame_put_str(payload, text);
	frame_put_bytes(payload, cert.s, cert.len);
	frame_put_bytes(payload, key.s, key.len);
	if (key.s != NULL)
		explicit_bzero(key.s, key.len);
	str_free(&cert);
	str_free(&key);
	free(text);
	*set_r = set;
	return 0;
}

int reload_parse(const void *data, size_t len, struct reload *r, char **error_r)
{
	struct frame_reader fr;
	memset(r, 0, sizeof(*r));
	frame_reader_init(&fr, data, len);
	const char *text = frame_get_str(&fr, RELOAD_PART_MAX);
	r->cert = frame_get_bytes(&fr, RELOAD_PART_MAX, &r->cert_len);
	r->key = frame_get_bytes(&fr, RELOAD_PART_MAX, &r->key_len);
	if (!frame_reader_ok(&fr))
		return -1;
	r->set = settings_from_text(text, error_r);
	return 0;
}
