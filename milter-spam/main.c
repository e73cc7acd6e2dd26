/* congvu-milter-spam: the anti-spam milter, and its offline commands
 *   congvu-milter-spam [-c FILE] [-o S.K=V]... [-n] [-d]        the daemon
 *   congvu-milter-spam [...] train spam|ham [--forget] FILE...   teach the classifier
 *   congvu-milter-spam [...] score [--client IP] [--helo NAME] [--from ADDR]
 *                                  [--auth USER] [--rcpt ADDR]... [--verbose] FILE...
 * `score` prints PATH<TAB>SCORE<TAB>ham|spam per file (--verbose: also the
 * X-Spam-Status line on standard error): the scanner of the
 * daemon, with the envelope given by the options (none: no network checks).
 * FILE "-" is standard input. */
#include "config.h"
#include "cli.h"
#include "log.h"
#include "milter.h"
#include "scan.h"
#include "settings.h"
#include "str.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "congvu-milter-spam"
/* Messages per training transaction. */
#define TRAIN_BATCH 1000

static const char *conf_path;
static char **overrides;
static int n_overrides;
static struct scanner *the_scanner;

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " [-c FILE] [-o SECTION.KEY=VALUE]... [-n] [-d]\n"
	                "       " PROG " [-c FILE] [-o ...] train spam|ham [--forget] FILE...\n"
	                "       " PROG
	                " [-c FILE] [-o ...] score [--client IP] [--helo NAME] [--from ADDR]\n"
	                "                 [--auth USER] [--rcpt ADDR]... [--verbose] FILE...\n");
	exit(2);
}

/* Reads a whole file (or stdin for "-"), keeping at most max bytes, as the
 * milter keeps at most max bytes of a message. On error, says so on stderr,
 * frees out and returns -1. */
static int read_file(const char *path, size_t max, struct str *out)
{
	int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		str_free(out);
		return -1;
	}
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
			str_free(out);
			if (fd != 0)
				close(fd);
			return -1;
		}
		if (n == 0)
			break;
		size_t room = max - out->len;
		str_append(out, buf, (size_t)n < room ? (size_t)n : room);
		if (out->len >= max)
			break;
	}
	if (fd != 0)
		close(fd);
	return 0;
}

static struct settings *load_settings(char **error_r)
{
	return settings_from_cli(conf_path, overrides, n_overrides, error_r);
}

static int cmd_train(const struct settings *set, struct scanner *sc, int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "spam") != 0 && strcmp(argv[1], "ham") != 0))
		usage();
	if (!scanner_has_classifier(sc)) {
		fprintf(stderr, PROG ": train: the classifier is off (milter-spam.bayes = no)\n");
		return 1;
	}
	bool spam = strcmp(argv[1], "spam") == 0;
	int delta = 1, i = 2;
	if (i < argc && strcmp(argv[i], "--forget") == 0) {
		delta = -1;
		i++;
	}
	if (i >= argc)
		usage();
	size_t max = (size_t)settings_num(set, S_MILTER_MAX_SCAN_SIZE);
	struct scan_training *tr = NULL;
	int status = 0, batch = 0, done = 0;
	for (; i < argc; i++) {
		struct str data = STR_INIT;
		if (read_file(argv[i], max, &data) < 0) {
			status = 1;
			continue;
		}
		char *error = NULL;
		if (tr == NULL)
			tr = scanner_train_begin(sc);
		scanner_train_message(tr, spam, delta, data.s ? data.s : "", data.len);
		str_free(&data);
		done++;
		if (++batch == TRAIN_BATCH) {
			if (scanner_train_commit(&tr, &error) < 0) {
				fprintf(stderr, PROG ": %s\n", error);
				free(error);
				return 1;
			}
			batch = 0;
		}
	}
	if (tr != NULL) {
		char *error = NULL;
		if (scanner_train_commit(&tr, &error) < 0) {
			fprintf(stderr, PROG ": %s\n", error);
			free(error);
			return 1;
		}
	}
	fprintf(stderr, PROG ": %s %d message(s) as %s\n", delta > 0 ? "learnt" : "forgot", done,
	        spam ? "spam" : "ham");
	return status;
}

static int cmd_score(const struct settings *set, struct scanner *sc, int argc, char **argv)
{
	struct scan_envelope env = {0};
	const char **rcpts = xcalloc((size_t)argc, sizeof(*rcpts));
	bool verbose = false;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--") == 0) {
			i--;
			break;
		}
		if (strcmp(argv[i], "--verbose") == 0) {
			verbose = true;
			i--;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--client") == 0)
			env.client_ip = argv[i + 1];
		else if (strcmp(argv[i], "--helo") == 0)
			env.helo = argv[i + 1];
		else if (strcmp(argv[i], "--from") == 0)
			env.mail_from = argv[i + 1];
		else if (strcmp(argv[i], "--auth") == 0)
			env.auth_user = argv[i + 1];
		else if (strcmp(argv[i], "--rcpt") == 0)
			rcpts[env.rcpt_count++] = argv[i + 1];
		else
			usage();
	}
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc)
		usage();
	env.rcpts = rcpts;
	size_t max = (size_t)settings_num(set, S_MILTER_MAX_SCAN_SIZE);
	int status = 0;
	for (; i < argc; i++) {
		struct str data = STR_INIT;
		if (read_file(argv[i], max, &data) < 0) {
			status = 1;
			continue;
		}
		char *error = NULL;
		struct scan_result res;
		scan_result_init(&res);
		if (scan_message(sc, &env, data.s ? data.s : "", data.len, &res, &error) < 0) {
			fprintf(stderr, PROG ": %s: %s\n", argv[i], error);
			free(error);
			status = 1;
		} else {
			printf("%s\t%.1f\t%s\n", argv[i], res.score, res.spam ? "spam" : "ham");
			if (verbose) {
				struct str st = STR_INIT;
				scan_result_status(&res, &st);
				fprintf(stderr, "%s: %s\n", argv[i], st.s);
				str_free(&st);
			}
		}
		scan_result_free(&res);
		str_free(&data);
	}
	free(rcpts);
	if (fflush(stdout) != 0)
		status = 1;
	return status;
}

static int reload(char **error_r)
{
	struct settings *set = load_settings(error_r);
	if (set == NULL)
		return -1;
	int ret = scanner_reload(the_scanner, set, error_r);
	settings_free(&set);
	return ret;
}

int main(int argc, char **argv)
{
	struct cli_opts cli;
	if (cli_parse(argc, argv, "nd", &cli) < 0)
		usage();
	conf_path = cli.conf_path;
	overrides = cli.overrides;
	n_overrides = cli.n_overrides;
	bool check_only = cli.dump, debug = cli.debug;
	argc -= cli.next;
	argv += cli.next;
	char *error = NULL;
	int status = 1;
	struct settings *set = load_settings(&error);
	if (set == NULL) {
		fprintf(stderr, PROG ": %s\n", error);
		goto out;
	}
	if (check_only) {
		settings_dump(set, stdout);
		status = 0;
		goto out;
	}
	const char *cmd = argc > 0 ? argv[0] : NULL;
	if (cmd != NULL && strcmp(cmd, "train") != 0 && strcmp(cmd, "score") != 0)
		usage();
	const char *spec = settings_str(set, S_MILTER_LISTEN);
	const char *why;
	if (cmd == NULL && milter_check_spec(spec, &why) < 0) {
		fprintf(stderr, PROG ": milter-spam.listen = '%s': %s\n", spec, why);
		goto out;
	}
	if (scanner_new(set, &the_scanner, &error) < 0) {
		fprintf(stderr, PROG ": %s\n", error);
		goto out;
	}
	if (cmd != NULL && strcmp(cmd, "train") == 0) {
		status = cmd_train(set, the_scanner, argc, argv);
	} else if (cmd != NULL) {
		status = cmd_score(set, the_scanner, argc, argv);
	} else {
		log_init(PROG, settings_num(set, S_GLOBAL_LOG) == 1);
		log_set_debug(debug);
		status =
		    milter_run(the_scanner, spec, (unsigned int)settings_num(set, S_MILTER_TIMEOUT),
		               (size_t)settings_num(set, S_MILTER_MAX_SCAN_SIZE), reload);
	}
out:
	scanner_free(&the_scanner);
	settings_free(&set);
	free(error);
	free(overrides);
	return status;
}
