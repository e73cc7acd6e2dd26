#include "config.h"
#include "settings.h"
#include "str.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct setting_def {
	const char *section;
	const char *key;
	enum setting_type type;
	const char *def;
	const char *check;
	const char *help;
};

static const struct setting_def defs[SETTING_COUNT] = {
#define SETTING(id, section, key, type, def, check, help) [id] = { section, key, type, def, check, help },
#include "lib/settings-table.def"
#undef SETTING
};

struct settings {
	char *value[SETTING_COUNT];
	uint64_t num[SETTING_COUNT];
	bool is_set[SETTING_COUNT];
};

#define MAX_LINE 8192

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	struct str s = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&s, fmt, ap);
	va_end(ap);
	return str_steal(&s);
}

/* ---- value parsers ---- */

static int parse_number_suffix(const char *s, uint64_t *r, const char *suffixes,
			       const uint64_t *mult)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	uint64_t m = 1;
	if (*end != '\0') {
		const char *p = strchr(suffixes, toupper((unsigned char)*end));
		if (p == NULL || *p == '\0')
			return -1;
		m = mult[p - suffixes];
		end++;
		/* Accept "KB", "MB"... as well as "K", "M". */
		if ((*end == 'B' || *end == 'b') && m > 1 && strchr("KMGT", toupper((unsigned char)end[-1])))
			end++;
		if (*end != '\0')
			return -1;
	}
	if (v > UINT64_MAX / m)
		return -1;
	*r = (uint64_t)v * m;
	return 0;
}

int parse_size(const char *s, uint64_t *bytes_r)
{
	static const uint64_t mult[] = { 1ULL << 10, 1ULL << 20, 1ULL << 30, 1ULL << 40, 1 };
	return parse_number_suffix(s, bytes_r, "KMGTB", mult);
}

int parse_duration(const char *s, uint64_t *seconds_r)
{
	static const uint64_t mult[] = { 1, 60, 3600, 86400, 604800 };
	return parse_number_suffix(s, seconds_r, "SMHDW", mult);
}

static bool valid_hostname(const char *s, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return false;
	}
	return s[0] != '.' && s[0] != '-';
}

static bool valid_port(const char *s)
{
	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	long v = strtol(s, NULL, 10);
	return v >= 1 && v <= 65535;
}

static bool valid_ip(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

/* HOST[:PORT], [IPV6][:PORT]; port_required for listeners. */
static bool valid_hostport(const char *s, bool port_required)
{
	const char *port = NULL;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || !valid_ip(s + 1, (size_t)(close - s - 1)))
			return false;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return false;
	} else {
		const char *colon = strrchr(s, ':');
		size_t hostlen = colon ? (size_t)(colon - s) : strlen(s);
		if (colon && memchr(s, ':', hostlen) != NULL)
			return false; /* bare IPv6 needs brackets */
		if (!(hostlen == 1 && s[0] == '*') && !valid_hostname(s, hostlen))
			return false;
		if (colon)
			port = colon + 1;
	}
	if (port == NULL)
		return !port_required;
	return valid_port(port);
}

static bool valid_net(const char *s)
{
	const char *slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	if (!valid_ip(s, iplen))
		return false;
	if (slash == NULL)
		return true;
	bool v6 = memchr(s, ':', iplen) != NULL;
	const char *p = slash + 1;
	if (*p == '\0' || strlen(p) > 3)
		return false;
	for (const char *q = p; *q; q++)
		if (!isdigit((unsigned char)*q))
			return false;
	long bits = strtol(p, NULL, 10);
	return bits <= (v6 ? 128 : 32);
}

static bool valid_unix_path(const char *s)
{
	return strncmp(s, "unix:", 5) == 0 && s[5] == '/' && strlen(s + 5) < 108;
}

/* Splits at commas and whitespace; calls fn on each item; false if any is bad. */
static bool each_item(const char *value, bool (*fn)(const char *item, const void *ctx),
		      const void *ctx, char **bad_r)
{
	char *copy = xstrdup(value);
	char *save = NULL;
	bool ok = true;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (!fn(tok, ctx)) {
			*bad_r = xstrdup(tok);
			ok = false;
			break;
		}
	}
	free(copy);
	return ok;
}

static bool item_listen(const char *item, const void *ctx)
{
	(void)ctx;
	if (strncmp(item, "unix:", 5) == 0)
		return valid_unix_path(item);
	return valid_hostport(item, true);
}

static bool item_net(const char *item, const void *ctx)
{
	(void)ctx;
	return valid_net(item);
}

static bool item_domain(const char *item, const void *ctx)
{
	(void)ctx;
	return valid_hostname(item, strlen(item)) && strchr(item, '.') != NULL;
}

static bool item_milter(const char *item, const void *ctx)
{
	(void)ctx;
	if (strncmp(item, "unix:", 5) == 0)
		return valid_unix_path(item);
	if (strncmp(item, "inet:", 5) == 0 || strncmp(item, "inet6:", 6) == 0) {
		const char *p = strchr(item, ':') + 1;
		const char *at = strchr(p, '@');
		if (at == NULL)
			return false;
		char port[8];
		size_t n = (size_t)(at - p);
		if (n == 0 || n >= sizeof(port))
			return false;
		memcpy(port, p, n);
		port[n] = '\0';
		return valid_port(port) && (valid_hostname(at + 1, strlen(at + 1)) ||
					    valid_ip(at + 1, strlen(at + 1)));
	}
	return false;
}

static bool item_tlspolicy(const char *item, const void *ctx)
{
	(void)ctx;
	const char *colon = strrchr(item, ':');
	if (colon == NULL || colon == item)
		return false;
	const char *pol = colon + 1;
	if (strcmp(pol, "may") != 0 && strcmp(pol, "encrypt") != 0 && strcmp(pol, "verify") != 0 &&
	    strcmp(pol, "none") != 0)
		return false;
	const char *dom = item;
	size_t len = (size_t)(colon - item);
	if (len == 1 && dom[0] == '*')
		return true;
	if (len > 2 && dom[0] == '*' && dom[1] == '.') {
		dom += 2;
		len -= 2;
	}
	return valid_hostname(dom, len);
}

static bool item_percent(const char *item, const void *ctx)
{
	(void)ctx;
	size_t n = strlen(item);
	if (n == 0 || n > 3 || strspn(item, "0123456789") != n)
		return false;
	long v = strtol(item, NULL, 10);
	return v >= 1 && v <= 100;
}

static int check_range(const struct setting_def *d, uint64_t v, char **why_r)
{
	const char *dots = strstr(d->check, "..");
	if (dots == NULL)
		return 0;
	char lo[32], hi[32];
	size_t n = (size_t)(dots - d->check);
	if (n >= sizeof(lo) || strlen(dots + 2) >= sizeof(hi))
		return 0;
	memcpy(lo, d->check, n);
	lo[n] = '\0';
	strcpy(hi, dots + 2);
	uint64_t min = 0, max = UINT64_MAX;
	int (*parse)(const char *, uint64_t *) = d->type == ST_DURATION ? parse_duration : parse_size;
	if (parse(lo, &min) < 0 || parse(hi, &max) < 0)
		return 0;
	if (v < min || v > max) {
		*why_r = xasprintf("must be between %s and %s", lo, hi);
		return -1;
	}
	return 0;
}

/* Checks value against d; stores the number in *num_r. On error *why_r. */
static int check_value(const struct setting_def *d, const char *value, uint64_t *num_r, char **why_r)
{
	char *bad = NULL;
	*num_r = 0;
	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			*why_r = xstrdup("control character in value");
			return -1;
		}
	}
	switch (d->type) {
	case ST_STRING:
	case ST_PATH:
		return 0;
	case ST_SIZE:
		if (parse_size(value, num_r) < 0) {
			*why_r = xstrdup("expected a size such as 512K, 50M or 4G");
			return -1;
		}
		return check_range(d, *num_r, why_r);
	case ST_UINT: {
		size_t n = strlen(value);
		if (n == 0 || n > 19 || strspn(value, "0123456789") != n) {
			*why_r = xstrdup("expected a whole number");
			return -1;
		}
		*num_r = strtoull(value, NULL, 10);
		return check_range(d, *num_r, why_r);
	}
	case ST_DURATION:
		if (parse_duration(value, num_r) < 0) {
			*why_r = xstrdup("expected a duration such as 30s, 5m, 4h or 5d");
			return -1;
		}
		return check_range(d, *num_r, why_r);
	case ST_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") ||
		    !strcmp(value, "1")) {
			*num_r = 1;
			return 0;
		}
		if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") ||
		    !strcmp(value, "0"))
			return 0;
		*why_r = xstrdup("expected yes or no");
		return -1;
	case ST_ENUM: {
		size_t vlen = strlen(value);
		uint64_t idx = 0;
		for (const char *p = d->check; *p; idx++) {
			const char *bar = strchr(p, '|');
			size_t n = bar ? (size_t)(bar - p) : strlen(p);
			if (n == vlen && memcmp(p, value, n) == 0) {
				*num_r = idx;
				return 0;
			}
			if (bar == NULL)
				break;
			p = bar + 1;
		}
		*why_r = xasprintf("expected one of %s", d->check);
		return -1;
	}
	case ST_TLSVER:
		if (*value == '\0' || !strcmp(value, "TLSv1") || !strcmp(value, "TLSv1.1") ||
		    !strcmp(value, "TLSv1.2") || !strcmp(value, "TLSv1.3"))
			return 0;
		*why_r = xstrdup("expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3");
		return -1;
	case ST_HOSTPORT:
		if (*value == '\0' || valid_hostport(value, false))
			return 0;
		*why_r = xstrdup("expected HOST[:PORT] or [IPV6]:PORT");
		return -1;
	case ST_LISTEN:
		if (each_item(value, item_listen, NULL, &bad))
			return 0;
		*why_r = xasprintf("bad listener '%s': expected HOST:PORT, [IPV6]:PORT or unix:/PATH", bad);
		break;
	case ST_NETS:
		if (each_item(value, item_net, NULL, &bad))
			return 0;
		*why_r = xasprintf("bad network '%s': expected ADDRESS[/BITS]", bad);
		break;
	case ST_DOMAINS:
		if (each_item(value, item_domain, NULL, &bad))
			return 0;
		*why_r = xasprintf("bad domain '%s'", bad);
		break;
	case ST_MILTERS:
		if (each_item(value, item_milter, NULL, &bad))
			return 0;
		*why_r = xasprintf("bad milter '%s': expected unix:/PATH or inet:PORT@HOST", bad);
		break;
	case ST_TLSPOLICY:
		if (each_item(value, item_tlspolicy, NULL, &bad))
			return 0;
		*why_r = xasprintf("bad policy '%s': expected DOMAIN:may|encrypt|verify", bad);
		break;
	case ST_PERCENTS:
		if (each_item(value, item_percent, NULL, &bad))
			return 0;
		*why_r = xasprintf("bad percentage '%s': expected whole numbers 1 to 100", bad);
		break;
	}
	free(bad);
	return -1;
}

/* ---- the table ---- */

static int find_setting(const char *section, const char *key)
{
	for (int i = 0; i < SETTING_COUNT; i++)
		if (strcmp(defs[i].section, section) == 0 && strcmp(defs[i].key, key) == 0)
			return i;
	return -1;
}

static bool known_section(const char *section)
{
	for (int i = 0; i < SETTING_COUNT; i++)
		if (strcmp(defs[i].section, section) == 0)
			return true;
	return false;
}

static void set_value(struct settings *set, int i, const char *value, uint64_t num, bool user)
{
	free(set->value[i]);
	set->value[i] = xstrdup(value);
	set->num[i] = num;
	set->is_set[i] = user;
}

struct settings *settings_new(void)
{
	struct settings *set = xcalloc(1, sizeof(*set));
	for (int i = 0; i < SETTING_COUNT; i++) {
		uint64_t num;
		char *why = NULL;
		if (check_value(&defs[i], defs[i].def, &num, &why) < 0) {
			fprintf(stderr, "bug: default of %s.%s: %s\n", defs[i].section, defs[i].key, why);
			abort();
		}
		set_value(set, i, defs[i].def, num, false);
	}
	return set;
}

void settings_free(struct settings **setp)
{
	struct settings *set = *setp;
	if (set == NULL)
		return;
	for (int i = 0; i < SETTING_COUNT; i++)
		free(set->value[i]);
	x_free(setp);
}

int settings_set(struct settings *set, const char *section, const char *key, const char *value,
		 char **error_r)
{
	int i = find_setting(section, key);
	if (i < 0) {
		*error_r = known_section(section) ? xasprintf("unknown key '%s.%s'", section, key)
						  : xasprintf("unknown section '%s' (key '%s.%s')",
							      section, section, key);
		return -1;
	}
	uint64_t num;
	char *why = NULL;
	if (check_value(&defs[i], value, &num, &why) < 0) {
		*error_r = xasprintf("%s.%s = '%s': %s", section, key, value, why);
		free(why);
		return -1;
	}
	set_value(set, i, value, num, true);
	return 0;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

int settings_load_file(struct settings *set, const char *path, bool missing_ok, char **error_r)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT && missing_ok)
			return 0;
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	int ret = settings_load_stream(set, f, path, error_r);
	fclose(f);
	return ret;
}

int settings_load_stream(struct settings *set, FILE *f, const char *path, char **error_r)
{
	char *line = xmalloc(MAX_LINE + 2);
	char section[64] = "";
	unsigned lineno = 0;
	int ret = 0;
	while (fgets(line, MAX_LINE + 2, f) != NULL) {
		lineno++;
		size_t len = strlen(line);
		if (len > MAX_LINE && line[len - 1] != '\n') {
			*error_r = xasprintf("%s:%u: line longer than %d bytes", path, lineno, MAX_LINE);
			ret = -1;
			break;
		}
		if (memchr(line, '\0', len) != NULL && strlen(line) != len) {
			*error_r = xasprintf("%s:%u: NUL byte in line", path, lineno);
			ret = -1;
			break;
		}
		/* A comment is '#' at the start or after whitespace. */
		for (char *p = line; *p; p++) {
			if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
				*p = '\0';
				break;
			}
		}
		char *s = trim(line);
		if (*s == '\0')
			continue;
		if (*s == '[') {
			size_t n = strlen(s);
			if (s[n - 1] != ']' || n < 3 || n - 2 >= sizeof(section)) {
				*error_r = xasprintf("%s:%u: bad section header", path, lineno);
				ret = -1;
				break;
			}
			s[n - 1] = '\0';
			char *name = trim(s + 1);
			if (!known_section(name)) {
				*error_r = xasprintf("%s:%u: unknown section [%s]", path, lineno, name);
				ret = -1;
				break;
			}
			strcpy(section, name);
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			*error_r = xasprintf("%s:%u: expected 'key = value'", path, lineno);
			ret = -1;
			break;
		}
		*eq = '\0';
		char *key = trim(s);
		char *value = trim(eq + 1);
		if (section[0] == '\0') {
			*error_r = xasprintf("%s:%u: key '%s' outside any [section]", path, lineno, key);
			ret = -1;
			break;
		}
		char *why = NULL;
		if (settings_set(set, section, key, value, &why) < 0) {
			*error_r = xasprintf("%s:%u: %s", path, lineno, why);
			free(why);
			ret = -1;
			break;
		}
	}
	if (ret == 0 && ferror(f)) {
		*error_r = xasprintf("%s: read error", path);
		ret = -1;
	}
	free(line);
	return ret;
}

int settings_override(struct settings *set, const char *assignment, char **error_r)
{
	const char *eq = strchr(assignment, '=');
	const char *dot = strchr(assignment, '.');
	if (eq == NULL || dot == NULL || dot > eq || dot == assignment || dot + 1 == eq) {
		*error_r = xasprintf("-o %s: expected SECTION.KEY=VALUE", assignment);
		return -1;
	}
	char *section = xstrndup(assignment, (size_t)(dot - assignment));
	char *key = xstrndup(dot + 1, (size_t)(eq - dot - 1));
	char *value = xstrdup(eq + 1);
	char *why = NULL;
	int ret = settings_set(set, trim(section), trim(key), trim(value), &why);
	if (ret < 0) {
		*error_r = xasprintf("-o: %s", why);
		free(why);
	}
	free(section);
	free(key);
	free(value);
	return ret;
}

const char *settings_default_path(void)
{
	return SYSCONFDIR "/congvu/congvu.conf";
}

struct settings *settings_from_cli(const char *conf_path, char *const *overrides, int n_overrides,
				   char **error_r)
{
	struct settings *set = settings_new();
	bool missing_ok = conf_path == NULL;
	if (conf_path == NULL)
		conf_path = settings_default_path();
	if (settings_load_file(set, conf_path, missing_ok, error_r) < 0)
		goto fail;
	for (int i = 0; i < n_overrides; i++)
		if (settings_override(set, overrides[i], error_r) < 0)
			goto fail;
	if (settings_str(set, S_GLOBAL_HOSTNAME)[0] == '\0') {
		char host[256];
		if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		set_value(set, S_GLOBAL_HOSTNAME, host, 0, false);
	}
	if (settings_str(set, S_SMTPD_SMTP_TLS_MIN_VERSION)[0] == '\0')
		set_value(set, S_SMTPD_SMTP_TLS_MIN_VERSION, settings_str(set, S_TLS_MIN_VERSION), 0,
			  false);
	return set;
fail:
	settings_free(&set);
	return NULL;
}

const char *settings_str(const struct settings *set, enum setting_id id)
{
	return set->value[id];
}

uint64_t settings_num(const struct settings *set, enum setting_id id)
{
	return set->num[id];
}

bool settings_bool(const struct settings *set, enum setting_id id)
{
	return set->num[id] != 0;
}

bool settings_is_set(const struct settings *set, enum setting_id id)
{
	return set->is_set[id];
}

char **settings_list(const struct settings *set, enum setting_id id, int *count_r)
{
	char *copy = xstrdup(set->value[id]);
	size_t n = 0, cap = 4;
	char **list = xcalloc(cap, sizeof(*list));
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (n + 2 > cap) {
			cap *= 2;
			list = xreallocarray(list, cap, sizeof(*list));
		}
		list[n++] = xstrdup(tok);
	}
	list[n] = NULL;
	free(copy);
	if (count_r != NULL)
		*count_r = (int)n;
	return list;
}

void settings_list_free(char ***listp)
{
	char **list = *listp;
	if (list == NULL)
		return;
	for (char **p = list; *p; p++)
		free(*p);
	x_free(listp);
}

void settings_dump(const struct settings *set, FILE *out)
{
	const char *section = "";
	for (int i = 0; i < SETTING_COUNT; i++) {
		if (strcmp(section, defs[i].section) != 0) {
			section = defs[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		fprintf(out, "%s = %s\n", defs[i].key, set->value[i]);
	}
}

static const char *type_name(enum setting_type t)
{
	static const char *names[] = {
		[ST_STRING] = "string", [ST_PATH] = "path", [ST_SIZE] = "size",
		[ST_UINT] = "number", [ST_BOOL] = "yes/no", [ST_DURATION] = "duration",
		[ST_ENUM] = "choice", [ST_LISTEN] = "listeners", [ST_NETS] = "networks",
		[ST_DOMAINS] = "domains", [ST_HOSTPORT] = "host[:port]", [ST_MILTERS] = "milters",
		[ST_TLSVER] = "TLS version", [ST_TLSPOLICY] = "TLS policy", [ST_PERCENTS] = "percentages",
	};
	return names[t];
}

/* Prints s with the configured LOCALSTATEDIR shown as $(localstatedir), so
 * the generated pages do not depend on the build's prefix; with pipes, '|'
 * escaped for a markdown table. */
static void put_symbolic(FILE *out, const char *s, bool pipes)
{
	size_t n = strlen(LOCALSTATEDIR);
	while (*s) {
		if (n > 0 && strncmp(s, LOCALSTATEDIR, n) == 0) {
			fputs("$(localstatedir)", out);
			s += n;
		} else {
			if (pipes && *s == '|')
				fputc('\\', out);
			fputc(*s++, out);
		}
	}
}

void settings_reference(FILE *out)
{
	fprintf(out, "| key | type | default | meaning |\n|---|---|---|---|\n");
	for (int i = 0; i < SETTING_COUNT; i++) {
		fprintf(out, "| %s.%s | %s%s", defs[i].section, defs[i].key, type_name(defs[i].type),
			defs[i].check[0] ? " " : "");
		put_symbolic(out, defs[i].check, true);
		fputs(" | `", out);
		put_symbolic(out, defs[i].def, true);
		fputs("` | ", out);
		put_symbolic(out, defs[i].help, true);
		fputs(" |\n", out);
	}
}

void settings_sample(FILE *out)
{
	const char *section = "";
	fprintf(out, "# congvu.conf: every setting at its built-in default.\n"
		     "# Sizes take K/M/G/T (powers of 1024); durations s/m/h/d/w.\n");
	for (int i = 0; i < SETTING_COUNT; i++) {
		if (strcmp(section, defs[i].section) != 0) {
			section = defs[i].section;
			fprintf(out, "\n[%s]\n", section);
		}
		fprintf(out, "# %s\n#%s = ", defs[i].help, defs[i].key);
		put_symbolic(out, defs[i].def, false);
		fputc('\n', out);
	}
}

/* ---- the configuration as text, for a parent to hand to its children ---- */

char *settings_to_text(const struct settings *set)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		abort();
	settings_dump(set, f);
	fclose(f);
	return buf;
}

struct settings *settings_from_text(const char *text, char **error_r)
{
	struct settings *set = settings_new();
	char *copy = xstrdup(text);
	char section[64] = "";
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '[') {
			char *end = strchr(line, ']');
			if (end == NULL || (size_t)(end - line) >= sizeof(section)) {
				*error_r = xstrdup("bad section line");
				goto fail;
			}
			*end = '\0';
			snprintf(section, sizeof(section), "%s", line + 1);
			continue;
		}
		char *eq = strstr(line, " = ");
		if (eq == NULL) {
			*error_r = xstrdup("bad setting line");
			goto fail;
		}
		*eq = '\0';
		if (settings_set(set, section, line, eq + 3, error_r) < 0)
			goto fail;
	}
	free(copy);
	return set;
fail:
	free(copy);
	settings_free(&set);
	return NULL;
}
