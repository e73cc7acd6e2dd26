/* congvu-quota: accounts, passwords and quotas, for IT staff.
 * Commands and exit codes: CONTRACT.md "congvu-quota". */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "address.h"
#include "password.h"
#include "settings.h"
#include "store/store.h"
#include "str.h"
#include "xalloc.h"

#define PROG "congvu-quota"

static struct settings *set;

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
		"usage: " PROG " [-c FILE] [-o SECTION.KEY=VALUE]... COMMAND\n"
		"  account add ADDRESS [--organization] [--quota SIZE]  (password on stdin)\n"
		"  account del ADDRESS\n"
		"  account passwd ADDRESS                              (password on stdin)\n"
		"  account list\n"
		"  set ADDRESS SIZE\n"
		"  show ADDRESS\n"
		"  report [--json]\n"
		"  recalc [ADDRESS]\n");
	exit(2);
}

static struct store *open_store(bool create)
{
	struct store_options opts;
	store_options_init(&opts, set, create);
	struct store *s;
	const char *error;
	const char *dir = settings_str(set, S_GLOBAL_DATA_DIR);
	if (store_open(dir, &opts, &s, &error) < 0)
		die("store %s/store: %s", dir, error);
	return s;
}

/* A local address, normalised; dies with the reason otherwise. */
static void local_address(const char *in, char out[ADDRESS_MAX_LEN + 1])
{
	const char *error;
	if (address_normalize(in, out, &error) < 0)
		die("bad address '%s': %s", in, error);
	if (!domain_is_local(address_domain(out), settings_str(set, S_GLOBAL_DOMAINS)))
		die("bad address '%s': domain not in global.domains (%s)", in,
		    settings_str(set, S_GLOBAL_DOMAINS));
}

static uint64_t size_arg(const char *s)
{
	uint64_t v;
	if (parse_size(s, &v) < 0)
		die("bad size '%s': expected a number with K, M, G or T (powers of 1024)", s);
	return v;
}

/* The first line of standard input, without its line end. */
static char *read_password(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		die("no password on standard input");
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n == 0) {
		free(line);
		die("empty password");
	}
	if ((size_t)n > PASSWORD_MAX_LEN || memchr(line, '\0', (size_t)n) != NULL) {
		free(line);
		die("password too long or with a NUL byte");
	}
	return line;
}

static char *hash_password(void)
{
	char *pw = read_password();
	char *hash;
	const char *error;
	int ret = password_hash(pw, &hash, &error);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (ret < 0)
		die("%s", error);
	return hash;
}

static double percent_of(const struct store_account *a)
{
	return a->quota_bytes ? 100.0 * (double)a->used_bytes / (double)a->quota_bytes : 0.0;
}

static const char *kind_name(enum account_kind k)
{
	return k == ACCOUNT_ORGANIZATION ? "organization" : "personal";
}

/* ---- commands ---- */

static int cmd_account_add(int argc, char **argv)
{
	if (argc < 1)
		usage();
	char addr[ADDRESS_MAX_LEN + 1];
	local_address(argv[0], addr);
	enum account_kind kind = ACCOUNT_PERSONAL;
	const char *quota_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--organization") == 0 || strcmp(argv[i], "--organisation") == 0)
			kind = ACCOUNT_ORGANIZATION;
		else if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc)
			quota_arg = argv[++i];
		else if (strncmp(argv[i], "--quota=", 8) == 0)
			quota_arg = argv[i] + 8;
		else
			die("unknown option '%s'", argv[i]);
	}
	uint64_t quota = quota_arg ? size_arg(quota_arg)
				   : settings_num(set, kind == ACCOUNT_ORGANIZATION
							       ? S_QUOTA_ORGANIZATION
							       : S_QUOTA_PERSONAL);
	char *hash = hash_password();
	struct store *s = open_store(true);
	const char *error;
	int ret = store_account_add(s, addr, kind, quota, hash, &error);
	free(hash);
	store_close(&s);
	if (ret < 0) {
		if (error == STORE_ERR_EXISTS)
			die("account %s already exists", addr);
		die("cannot add %s: %s", addr, error);
	}
	printf("%s\t%s\t%llu\n", addr, kind_name(kind), (unsigned long long)quota);
	return 0;
}

struct one_addr {
	const char *addr;
	const char *hash;
	uint64_t quota;
};

static int del_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	return store_txn_account_del(t, ((struct one_addr *)ctx)->addr, error_r);
}

static int passwd_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct one_addr *c = ctx;
	return store_txn_account_set_password(t, c->addr, c->hash, error_r);
}

static int quota_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct one_addr *c = ctx;
	return store_txn_account_set_quota(t, c->addr, c->quota, error_r);
}

static void write_or_die(store_write_fn *fn, struct one_addr *c)
{
	struct store *s = open_store(false);
	const char *error;
	int ret = store_write(s, fn, c, &error);
	store_close(&s);
	if (ret < 0) {
		if (error == STORE_ERR_NO_ACCOUNT)
			die("unknown account %s", c->addr);
		die("%s: %s", c->addr, error);
	}
}

static int cmd_account_del(int argc, char **argv)
{
	if (argc != 1)
		usage();
	char addr[ADDRESS_MAX_LEN + 1];
	local_address(argv[0], addr);
	struct one_addr c = { .addr = addr };
	write_or_die(del_fn, &c);
	printf("deleted %s\n", addr);
	return 0;
}

static int cmd_account_passwd(int argc, char **argv)
{
	if (argc != 1)
		usage();
	char addr[ADDRESS_MAX_LEN + 1];
	local_address(argv[0], addr);
	char *hash = hash_password();
	struct one_addr c = { .addr = addr, .hash = hash };
	write_or_die(passwd_fn, &c);
	free(hash);
	printf("password changed for %s\n", addr);
	return 0;
}

static int cmd_set(int argc, char **argv)
{
	if (argc != 2)
		usage();
	char addr[ADDRESS_MAX_LEN + 1];
	local_address(argv[0], addr);
	struct one_addr c = { .addr = addr, .quota = size_arg(argv[1]) };
	write_or_die(quota_fn, &c);
	printf("%s\t%llu\n", addr, (unsigned long long)c.quota);
	return 0;
}

struct acct_list {
	struct store_account *a;
	size_t n, cap;
};

static int collect_fn(const struct store_account *a, void *ctx)
{
	struct acct_list *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->a = xreallocarray(l->a, l->cap, sizeof(*l->a));
	}
	l->a[l->n++] = *a;
	return 0;
}

static void load_accounts(struct acct_list *l)
{
	struct store *s = open_store(false);
	struct store_txn *t;
	const char *error;
	if (store_read_begin(s, &t, &error) < 0 ||
	    store_txn_account_foreach(t, collect_fn, l, &error) < 0)
		die("cannot read accounts: %s", error);
	store_read_end(&t);
	store_close(&s);
}

static int cmd_account_list(int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		usage();
	struct acct_list l = { 0 };
	load_accounts(&l);
	for (size_t i = 0; i < l.n; i++)
		printf("%s\t%s\t%llu\t%llu\n", l.a[i].address, kind_name(l.a[i].kind),
		       (unsigned long long)l.a[i].used_bytes,
		       (unsigned long long)l.a[i].quota_bytes);
	free(l.a);
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	if (argc != 1)
		usage();
	char addr[ADDRESS_MAX_LEN + 1];
	local_address(argv[0], addr);
	struct store *s = open_store(false);
	struct store_account a;
	const char *error;
	int ret = store_account_get(s, addr, &a, &error);
	store_close(&s);
	if (ret < 0)
		die("%s: %s", addr, error);
	if (ret == 0)
		die("unknown account %s", addr);
	printf("address: %s\nkind: %s\nused: %llu\nlimit: %llu\nmessages: %llu\npercent: %.1f\n",
	       a.address, kind_name(a.kind), (unsigned long long)a.used_bytes,
	       (unsigned long long)a.quota_bytes, (unsigned long long)a.used_messages,
	       percent_of(&a));
	return 0;
}

static int by_fullness(const void *x, const void *y)
{
	const struct store_account *a = x, *b = y;
	double pa = percent_of(a), pb = percent_of(b);
	if (pa != pb)
		return pa > pb ? -1 : 1;
	if (a->used_bytes != b->used_bytes)
		return a->used_bytes > b->used_bytes ? -1 : 1;
	return strcmp(a->address, b->address);
}

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int cmd_report(int argc, char **argv)
{
	bool json = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else
			die("unknown option '%s'", argv[i]);
	}
	struct acct_list l = { 0 };
	load_accounts(&l);
	if (l.n > 0)
		qsort(l.a, l.n, sizeof(*l.a), by_fullness);
	if (json) {
		printf("[");
		for (size_t i = 0; i < l.n; i++) {
			printf("%s\n  {\"address\": ", i ? "," : "");
			json_string(l.a[i].address);
			printf(", \"kind\": \"%s\", \"used\": %llu, \"limit\": %llu, "
			       "\"messages\": %llu, \"percent\": %.1f}",
			       kind_name(l.a[i].kind), (unsigned long long)l.a[i].used_bytes,
			       (unsigned long long)l.a[i].quota_bytes,
			       (unsigned long long)l.a[i].used_messages, percent_of(&l.a[i]));
		}
		printf("%s]\n", l.n ? "\n" : "");
	} else {
		printf("%-40s %-12s %14s %14s %9s %7s\n", "ADDRESS", "KIND", "USED", "LIMIT",
		       "MESSAGES", "PERCENT");
		for (size_t i = 0; i < l.n; i++)
			printf("%-40s %-12s %14llu %14llu %9llu %6.1f%%\n", l.a[i].address,
			       kind_name(l.a[i].kind), (unsigned long long)l.a[i].used_bytes,
			       (unsigned long long)l.a[i].quota_bytes,
			       (unsigned long long)l.a[i].used_messages, percent_of(&l.a[i]));
	}
	free(l.a);
	return 0;
}

struct recalc_ctx {
	const char *addr;
	struct store_account before, after;
	int differ;
};

static int recalc_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct recalc_ctx *c = ctx;
	c->differ = store_txn_account_recalc(t, c->addr, true, &c->before, &c->after, error_r);
	return c->differ < 0 ? -1 : 0;
}

static int cmd_recalc(int argc, char **argv)
{
	if (argc > 1)
		usage();
	struct acct_list l = { 0 };
	char addr[ADDRESS_MAX_LEN + 1];
	if (argc == 1) {
		local_address(argv[0], addr);
		l.a = xmalloc(sizeof(*l.a));
		l.n = 1;
		strcpy(l.a[0].address, addr);
	} else {
		load_accounts(&l);
	}
	struct store *s = open_store(false);
	int fixed = 0;
	for (size_t i = 0; i < l.n; i++) {
		struct recalc_ctx c = { .addr = l.a[i].address };
		const char *error;
		if (store_write(s, recalc_fn, &c, &error) < 0) {
			store_close(&s);
			if (error == STORE_ERR_NO_ACCOUNT)
				die("unknown account %s", c.addr);
			die("%s: %s", c.addr, error);
		}
		if (c.differ) {
			fixed++;
			printf("%s\trepaired\tused %llu -> %llu\tmessages %llu -> %llu\n", c.addr,
			       (unsigned long long)c.before.used_bytes,
			       (unsigned long long)c.after.used_bytes,
			       (unsigned long long)c.before.used_messages,
			       (unsigned long long)c.after.used_messages);
		} else {
			printf("%s\tok\tused %llu\tmessages %llu\n", c.addr,
			       (unsigned long long)c.after.used_bytes,
			       (unsigned long long)c.after.used_messages);
		}
	}
	store_close(&s);
	free(l.a);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = NULL;
	char **overrides = xcalloc((size_t)argc + 1, sizeof(char *));
	int n_over = 0;
	int opt;
	while ((opt = getopt(argc, argv, "+c:o:h")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'o':
			overrides[n_over++] = optarg;
			break;
		default:
			usage();
		}
	}
	char *error = NULL;
	set = settings_from_cli(conf, overrides, n_over, &error);
	free(overrides);
	if (set == NULL)
		die("%s", error);
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	int ret;
	if (strcmp(argv[0], "account") == 0 && argc >= 2) {
		if (strcmp(argv[1], "add") == 0)
			ret = cmd_account_add(argc - 2, argv + 2);
		else if (strcmp(argv[1], "del") == 0)
			ret = cmd_account_del(argc - 2, argv + 2);
		else if (strcmp(argv[1], "passwd") == 0)
			ret = cmd_account_passwd(argc - 2, argv + 2);
		else if (strcmp(argv[1], "list") == 0)
			ret = cmd_account_list(argc - 2, argv + 2);
		else
			usage();
	} else if (strcmp(argv[0], "set") == 0) {
		ret = cmd_set(argc - 1, argv + 1);
	} else if (strcmp(argv[0], "show") == 0) {
		ret = cmd_show(argc - 1, argv + 1);
	} else if (strcmp(argv[0], "report") == 0) {
		ret = cmd_report(argc - 1, argv + 1);
	} else if (strcmp(argv[0], "recalc") == 0) {
		ret = cmd_recalc(argc - 1, argv + 1);
	} else {
		usage();
	}
	settings_free(&set);
	if (fflush(stdout) != 0 || ferror(stdout))
		die("write error on standard output: %s", strerror(errno));
	return ret;
}
