/* congvu-smtpd: the parent process and the command line.
 *
 *   congvu-smtpd [-c FILE] [-o SECTION.KEY=VALUE]... [-n] [-d]
 *   congvu-smtpd [-c FILE] [-o ...] queue list|show ID|flush|delete ID
 *
 * The parent binds the listeners and loads the certificates (as root when
 * the ports need it), starts the delivery process and waits until it has
 * opened the store, then starts the session workers; children drop to
 * global.user. It forwards SIGTERM (clean exit 0) and turns SIGHUP into a
 * DF_RELOAD of the configuration and certificates for every child. */
#include "config.h"
#include "cli.h"
#include "dproto.h"
#include "frame.h"
#include "iplimits.h"
#include "ioloop.h"
#include "listen.h"
#include "log.h"
#include "outbound.h"
#include "privsep.h"
#include "queue-record.h"
#include "reload.h"
#include "smtpd.h"
#include "store/store.h"
#include "str.h"
#include "tls.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct parent {
	struct ioloop *loop;
	const char *conf_path;
	char **overrides;
	int n_overrides;
	struct settings *set;
	pid_t delivery_pid;
	pid_t outbound_pid;        /* outbound delivery (issue 6) */
	pid_t *worker_pids;
	size_t n_workers;
	struct frame_chan **chans; /* to the workers, then the delivery process */
	size_t n_chans;
	size_t alive;
	bool stopping;
	int exit_code;
};

static void usage(void)
{
	fprintf(stderr, "usage: congvu-smtpd [-c FILE] [-o SECTION.KEY=VALUE]... [-n] [-d]\n"
			"       congvu-smtpd [-c FILE] [-o ...] queue list|show ID|flush|delete ID\n");
	exit(2);
}

/* ---- queue commands ---- */

struct list_ctx {
	int count;
};

static void print_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void sanitize_field(struct str *out, const char *s)
{
	for (const char *p = s; *p; p++)
		str_appendc(out, (*p == '\t' || *p == '\n' || *p == '\r') ? ' ' : *p);
}

static int list_one(uint64_t id, const void *record, size_t len, const uint8_t blob[STORE_BLOB_ID_LEN],
		    void *ctx)
{
	struct list_ctx *c = ctx;
	(void)blob;
	struct queue_record r;
	const char *error;
	if (queue_record_decode(record, len, &r, &error) < 0) {
		printf("%" PRIu64 "\t?\t?\tcorrupt\t-\t%s\n", id, error);
		return 0;
	}
	struct str line = STR_INIT;
	str_printf(&line, "%" PRIu64 "\t", id);
	sanitize_field(&line, r.from);
	str_appendc(&line, '\t');
	for (size_t i = 0; i < r.n_rcpts; i++) {
		if (i > 0)
			str_appendc(&line, ',');
		sanitize_field(&line, r.rcpts[i].addr);
	}
	char when[32];
	print_time(r.next_attempt, when, sizeof(when));
	str_printf(&line, "\t%s\t%s\t", queue_record_status(&r), when);
	sanitize_field(&line, r.last_error ? r.last_error : "-");
	puts(line.s);
	str_free(&line);
	queue_record_free(&r);
	c->count++;
	return 0;
}

struct qop {
	uint64_t id;
	int found;
	uint64_t count;
};

static int flush_one(uint64_t id, const void *record, size_t len, const uint8_t blob[STORE_BLOB_ID_LEN],
		     void *ctx)
{
	(void)blob;
	uint64_t **ids = ctx;
	struct queue_record r;
	const char *error;
	if (queue_record_decode(record, len, &r, &error) < 0)
		return 0;
	queue_record_free(&r);
	uint64_t n = ids[1][0]++;
	ids[0] = xreallocarray(ids[0], n + 1, sizeof(uint64_t));
	ids[0][n] = id;
	return 0;
}

static int flush_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct qop *op = ctx;
	uint64_t *ids = NULL, n = 0;
	uint64_t *pair[2] = { ids, &n };
	if (store_txn_queue_foreach(t, flush_one, pair, error_r) < 0) {
		free(pair[0]);
		return -1;
	}
	ids = pair[0];
	op->count = 0;
	for (uint64_t i = 0; i < n; i++) {
		const void *rec;
		size_t len;
		uint8_t blob[STORE_BLOB_ID_LEN];
		if (store_txn_queue_get(t, ids[i], &rec, &len, blob, error_r) <= 0)
			continue;
		struct queue_record r;
		const char *error;
		if (queue_record_decode(rec, len, &r, &error) < 0)
			continue;
		r.next_attempt = 0;
		struct str enc = STR_INIT;
		queue_record_encode(&r, &enc);
		queue_record_free(&r);
		int ret = store_txn_queue_update(t, ids[i], enc.s, enc.len, error_r);
		str_free(&enc);
		if (ret < 0) {
			free(ids);
			return -1;
		}
		op->count++;
	}
	free(ids);
	return 0;
}

static int delete_fn(struct store_txn *t, void *ctx, const char **error_r)
{
	struct qop *op = ctx;
	op->found = store_txn_queue_del(t, op->id, error_r);
	return op->found < 0 ? -1 : 0;
}

static int parse_id(const char *s, uint64_t *id_r)
{
	size_t n = strlen(s);
	if (n == 0 || n > 19 || strspn(s, "0123456789") != n)
		return -1;
	*id_r = strtoull(s, NULL, 10);
	return 0;
}

static int queue_main(struct settings *set, int argc, char **argv)
{
	if (argc < 1)
		usage();
	const char *cmd = argv[0];
	bool ro = strcmp(cmd, "list") == 0 || strcmp(cmd, "show") == 0;
	struct store_options o;
	store_options_init(&o, set, false);
	o.read_only = ro;
	struct store *store;
	const char *error;
	const char *dir = settings_str(set, S_GLOBAL_DATA_DIR);
	if (store_open(dir, &o, &store, &error) < 0) {
		fprintf(stderr, "congvu-smtpd: global.data_dir: %s: %s\n", dir, error);
		return 1;
	}
	int ret = 0;
	if (strcmp(cmd, "list") == 0 && argc == 1) {
		struct store_txn *t;
		struct list_ctx c = { 0 };
		if (store_read_begin(store, &t, &error) < 0 ||
		    store_txn_queue_foreach(t, list_one, &c, &error) < 0) {
			fprintf(stderr, "congvu-smtpd: queue list: %s\n", error);
			ret = 1;
		}
		store_read_end(&t);
	} else if (strcmp(cmd, "show") == 0 && argc == 2) {
		uint64_t id;
		struct store_txn *t = NULL;
		const void *rec;
		size_t len;
		uint8_t blob[STORE_BLOB_ID_LEN];
		if (parse_id(argv[1], &id) < 0) {
			fprintf(stderr, "congvu-smtpd: queue show: bad id '%s'\n", argv[1]);
			ret = 1;
		} else if (store_read_begin(store, &t, &error) < 0 ||
			   (ret = store_txn_queue_get(t, id, &rec, &len, blob, &error)) < 0) {
			fprintf(stderr, "congvu-smtpd: queue show: %s\n", error);
			ret = 1;
		} else if (ret == 0) {
			fprintf(stderr, "congvu-smtpd: queue show: no message %s\n", argv[1]);
			ret = 1;
		} else {
			ret = 0;
			fwrite(rec, 1, len, stdout);
			uint64_t size = 0;
			if (store_txn_blob_size(t, blob, &size, &error) == 0) {
				printf("\n");
				char buf[65536];
				for (uint64_t off = 0; off < size;) {
					size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
					if (store_txn_blob_read(t, blob, off, buf, n, &error) < 0)
						break;
					fwrite(buf, 1, n, stdout);
					off += n;
				}
			}
		}
		store_read_end(&t);
	} else if (strcmp(cmd, "flush") == 0 && argc == 1) {
		struct qop op = { 0, 0, 0 };
		if (store_write(store, flush_fn, &op, &error) < 0) {
			fprintf(stderr, "congvu-smtpd: queue flush: %s\n", error);
			ret = 1;
		} else {
			printf("%" PRIu64 " messages due now\n", op.count);
		}
	} else if (strcmp(cmd, "delete") == 0 && argc == 2) {
		struct qop op = { 0, 0, 0 };
		if (parse_id(argv[1], &op.id) < 0) {
			fprintf(stderr, "congvu-smtpd: queue delete: bad id '%s'\n", argv[1]);
			ret = 1;
		} else if (store_write(store, delete_fn, &op, &error) < 0) {
			fprintf(stderr, "congvu-smtpd: queue delete: %s\n", error);
			ret = 1;
		} else if (op.found == 0) {
			fprintf(stderr, "congvu-smtpd: queue delete: no message %s\n", argv[1]);
			ret = 1;
		}
	} else {
		store_close(&store);
		usage();
	}
	store_close(&store);
	return ret;
}

/* ---- start-up ---- */

static struct tls_ctx *load_tls(const struct settings *set, bool for_mx)
{
	const char *cert = settings_str(set, S_TLS_CERT);
	const char *v = settings_str(set, S_TLS_MIN_VERSION);
	if (for_mx && *settings_str(set, S_SMTPD_SMTP_TLS_MIN_VERSION) != '\0')
		v = settings_str(set, S_SMTPD_SMTP_TLS_MIN_VERSION);
	if (*cert == '\0')
		return NULL;
	struct tls_ctx *ctx;
	char *error;
	if (tls_ctx_server_new(cert, settings_str(set, S_TLS_KEY), v, &ctx, &error) < 0)
		fatal("%s", error);
	return ctx;
}

/* Each TCP listener once per worker (SO_REUSEPORT: the kernel spreads the
 * connections; one shared socket woke mostly the same worker). */
static void open_listeners(const struct settings *set, unsigned copies, struct listen_fd **fds,
			   size_t *n)
{
	static const struct {
		enum setting_id id;
		unsigned tag;
		const char *name;
	} l[] = {
		{ S_SMTPD_SMTP_LISTEN, LISTEN_SMTP, "smtpd.smtp_listen" },
		{ S_SMTPD_SUBMISSION_LISTEN, LISTEN_SUBMISSION, "smtpd.submission_listen" },
		{ S_SMTPD_SMTPS_LISTEN, LISTEN_SMTPS, "smtpd.smtps_listen" },
		{ S_SMTPD_LMTP_LISTEN, LISTEN_LMTP, "smtpd.lmtp_listen" },
	};
	for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++) {
		char *error;
		if (listen_open_list_copies(settings_str(set, l[i].id), l[i].tag, 1024, copies, fds, n,
					    &error) < 0)
			fatal("%s: %s", l[i].name, error);
	}
	if (*n == 0)
		fatal("smtpd: no listeners configured");
}

/* Started as root: the delivery process runs as global.user and must be
 * able to write the store, which congvu-quota may have created as root. */
static void own_data_dir(const char *dir, uid_t uid, gid_t gid)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		fatal("global.data_dir: %s: %s", dir, strerror(errno));
	if (chown(dir, uid, gid) < 0)
		fatal("global.data_dir: %s: %s", dir, strerror(errno));
	char path[4096];
	snprintf(path, sizeof(path), "%s/store", dir);
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	if (chown(path, uid, gid) < 0)
		fatal("global.data_dir: %s: %s", path, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char file[4096 + 256];
		snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
		if (chown(file, uid, gid) < 0)
			fatal("global.data_dir: %s: %s", file, strerror(errno));
	}
	closedir(d);
}

static void child_setup(const struct settings *set, pid_t parent)
{
	ioloop_signals_reset();
	signal(SIGPIPE, SIG_IGN);
	char *error;
	if (privsep_drop(settings_str(set, S_GLOBAL_USER), &error) < 0)
		fatal("%s", error);
	/* After the drop, which clears it: a child never outlives the parent
	 * (a restarted daemon must find the ports free) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
}

/* ---- the parent's loop ---- */

static void send_reload(struct parent *p)
{
	char *error = NULL;
	struct settings *set;
	struct str f = STR_INIT;
	if (reload_build(p->conf_path, p->overrides, p->n_overrides, &set, &f, &error) < 0) {
		log_err("event=reload_failed error=\"%s\"", error);
		free(error);
		return;
	}
	for (size_t i = 0; i < p->n_chans; i++)
		if (p->chans[i] != NULL)
			frame_send(p->chans[i], DF_RELOAD, f.s, f.len);
	explicit_bzero(f.s, f.len);
	str_free(&f);
	settings_free(&p->set);
	p->set = set;
	log_info("event=reload");
}

static void on_signal(void *ctx, int signo)
{
	struct parent *p = ctx;
	if (signo == SIGHUP) {
		send_reload(p);
		return;
	}
	if (signo == SIGCHLD) {
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			p->alive--;
			bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
			if (!p->stopping || !clean)
				log_err("event=child_exited pid=%d status=%d signal=%d", (int)pid,
					WIFEXITED(status) ? WEXITSTATUS(status) : -1,
					WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			if (!p->stopping) {
				/* a child died: stop everything (the service manager restarts us) */
				p->exit_code = 1;
				p->stopping = true;
				for (size_t i = 0; i < p->n_workers; i++)
					kill(p->worker_pids[i], SIGTERM);
				kill(p->delivery_pid, SIGTERM);
				kill(p->outbound_pid, SIGTERM);
			}
		}
		if (p->alive == 0)
			ioloop_stop(p->loop);
		return;
	}
	/* SIGTERM, SIGINT: the workers first; the delivery process stops when
	 * they have closed their channels */
	if (!p->stopping) {
		log_info("event=stopping");
		p->stopping = true;
		for (size_t i = 0; i < p->n_workers; i++)
			kill(p->worker_pids[i], SIGTERM);
		kill(p->outbound_pid, SIGTERM);
	}
}

static void chan_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	(void)ctx;
	(void)type;
	(void)data;
	(void)len;
	fatal("unexpected frame from a child");
}

static void chan_gone(void *ctx, const char *error)
{
	struct frame_chan **slot = ctx;
	(void)error;
	frame_chan_free(slot);
}

int main(int argc, char **argv)
{
	struct cli_opts cli;
	if (cli_parse(argc, argv, "nd", &cli) < 0)
		usage();
	const char *conf_path = cli.conf_path;
	char **overrides = cli.overrides;
	int n_overrides = cli.n_overrides;
	bool check_only = cli.dump, debug = cli.debug;
	optind = cli.next;
	char *error = NULL;
	struct settings *set = settings_from_cli(conf_path, overrides, n_overrides, &error);
	if (set == NULL) {
		fprintf(stderr, "congvu-smtpd: %s\n", error);
		free(error);
		free(overrides);
		return 1;
	}
	if (optind < argc) {
		if (strcmp(argv[optind], "queue") != 0)
			usage();
		int ret = queue_main(set, argc - optind - 1, argv + optind + 1);
		settings_free(&set);
		free(overrides);
		return ret;
	}
	log_init("congvu-smtpd", settings_num(set, S_GLOBAL_LOG) == 1);
	log_set_debug(debug);
	struct net_list *nets;
	if (net_list_parse(settings_str(set, S_SMTPD_TRUSTED_NETWORKS), &nets, &error) < 0)
		fatal("smtpd.trusted_networks: %s", error);
	net_list_free(&nets);
	bool need_tls = *settings_str(set, S_SMTPD_SUBMISSION_LISTEN) != '\0' ||
			*settings_str(set, S_SMTPD_SMTPS_LISTEN) != '\0';
	if (need_tls && *settings_str(set, S_TLS_CERT) == '\0')
		fatal("tls.cert: not set (smtpd.submission_listen and smtpd.smtps_listen need TLS)");
	struct tls_ctx *tls_sub = load_tls(set, false);
	struct tls_ctx *tls_mx = load_tls(set, true);
	if (check_only) {
		settings_dump(set, stdout);
		tls_ctx_free(&tls_sub);
		tls_ctx_free(&tls_mx);
		settings_free(&set);
		free(overrides);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* every session is a descriptor: use all the hard limit allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (privsep_is_root()) {
		uid_t uid;
		gid_t gid;
		if (privsep_lookup(settings_str(set, S_GLOBAL_USER), &uid, &gid, &error) < 0)
			fatal("%s", error);
		own_data_dir(settings_str(set, S_GLOBAL_DATA_DIR), uid, gid);
	}
	struct listen_fd *lfds = NULL;
	size_t n_lfds = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n_workers = settings_num(set, S_SMTPD_WORKERS);
	if (n_workers == 0)
		n_workers = cpus > 0 ? (size_t)cpus : 1;
	open_listeners(set, (unsigned)n_workers, &lfds, &n_lfds);
	unsigned max_conn = (unsigned)settings_num(set, S_SMTPD_MAX_CONNECTIONS);
	struct iplimits *limits = iplimits_create();

	struct parent p;
	memset(&p, 0, sizeof(p));
	p.conf_path = conf_path;
	p.overrides = overrides;
	p.n_overrides = n_overrides;
	p.set = set;
	p.n_workers = n_workers;
	p.worker_pids = xcalloc(n_workers, sizeof(pid_t));
	p.n_chans = n_workers + 2; /* the workers, the delivery and the outbound process */
	p.chans = xcalloc(p.n_chans, sizeof(*p.chans));
	int *dfds = xcalloc(n_workers, sizeof(int));  /* delivery ends */
	int *wfds = xcalloc(n_workers, sizeof(int));  /* worker ends */
	int *cpar = xcalloc(n_workers + 1, sizeof(int));
	int *cchild = xcalloc(n_workers + 1, sizeof(int));
	for (size_t i = 0; i < n_workers; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			fatal("socketpair: %s", strerror(errno));
		dfds[i] = sv[0];
		wfds[i] = sv[1];
	}
	for (size_t i = 0; i <= n_workers; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			fatal("socketpair: %s", strerror(errno));
		cpar[i] = sv[0];
		cchild[i] = sv[1];
	}
	pid_t parent_pid = getpid();
	/* The delivery process first: it opens the store and says so. */
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		fatal("pipe: %s", strerror(errno));
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(set, parent_pid);
		close(ready[0]);
		listen_close_all(&lfds, &n_lfds, false);
		for (size_t i = 0; i < n_workers; i++)
			close(wfds[i]);
		for (size_t i = 0; i <= n_workers; i++) {
			close(cpar[i]);
			if (i < n_workers)
				close(cchild[i]);
		}
		tls_ctx_free(&tls_sub);
		tls_ctx_free(&tls_mx);
		/* fatal() in delivery_main before "ready" reaches the parent's
		 * stderr; the pipe then closes without the byte */
		struct delivery_args da = { set, dfds, n_workers, cchild[n_workers], ready[1] };
		_exit(delivery_main(&da));
	}
	p.delivery_pid = pid;
	close(ready[1]);
	char byte;
	ssize_t rn;
	do
		rn = read(ready[0], &byte, 1);
	while (rn < 0 && errno == EINTR);
	close(ready[0]);
	if (rn != 1) {
		int status;
		waitpid(pid, &status, 0);
		/* the delivery process printed the reason */
		exit(1);
	}
	for (size_t i = 0; i < n_workers; i++)
		close(dfds[i]);
	close(cchild[n_workers]);
	for (size_t i = 0; i < n_workers; i++) {
		fflush(stderr);
		pid = fork();
		if (pid < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0) {
			child_setup(set, parent_pid);
			for (size_t k = 0; k < n_workers; k++)
				if (k != i)
					close(wfds[k]);
			for (size_t k = 0; k <= n_workers; k++) {
				close(cpar[k]);
				if (k != i && k < n_workers)
					close(cchild[k]);
			}
			struct worker_args wa = {
				.id = (unsigned)i, .set = set, .listeners = lfds,
				.n_listeners = n_lfds, .delivery_fd = wfds[i],
				.parent_fd = cchild[i], .tls_mx = tls_mx, .tls_sub = tls_sub,
				.limits = limits, .max_connections = max_conn,
			};
			_exit(worker_main(&wa));
		}
		p.worker_pids[i] = pid;
	}
	/* outbound delivery (issue 6): a process of its own, on the store */
	int osv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, osv) < 0)
		fatal("socketpair: %s", strerror(errno));
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(set, parent_pid);
		for (size_t k = 0; k < n_workers; k++) {
			close(wfds[k]);
			close(cchild[k]);
		}
		for (size_t k = 0; k <= n_workers; k++)
			close(cpar[k]);
		listen_close_all(&lfds, &n_lfds, false);
		tls_ctx_free(&tls_sub);
		tls_ctx_free(&tls_mx);
		close(osv[0]);
		struct outbound_args oa = { .set = set, .parent_fd = osv[1] };
		_exit(outbound_main(&oa));
	}
	p.outbound_pid = pid;
	close(osv[1]);
	for (size_t i = 0; i < n_workers; i++) {
		close(wfds[i]);
		close(cchild[i]);
	}
	/* the workers accept; the parent keeps the names to remove unix sockets */
	for (size_t i = 0; i < n_lfds; i++) {
		close(lfds[i].fd);
		lfds[i].fd = -1;
	}
	p.alive = n_workers + 2;
	p.loop = ioloop_create();
	for (size_t i = 0; i <= n_workers; i++)
		p.chans[i] = frame_chan_new(p.loop, cpar[i], 1024, chan_frame, chan_gone, &p.chans[i]);
	p.chans[n_workers + 1] = frame_chan_new(p.loop, osv[0], 1024, chan_frame, chan_gone,
						&p.chans[n_workers + 1]);
	const char *why;
	int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (ioloop_signal_add(p.loop, sigs[i], on_signal, &p, &why) < 0)
			fatal("signals: %s", why);
	/* a child may have ended before SIGCHLD was blocked */
	on_signal(&p, SIGCHLD);
	log_info("event=started process=parent workers=%zu", n_workers);
	if (p.alive > 0)
		ioloop_run(p.loop);
	for (size_t i = 0; i < p.n_chans; i++)
		frame_chan_free(&p.chans[i]);
	listen_close_all(&lfds, &n_lfds, true);
	log_info("event=stopped process=parent exit=%d", p.exit_code);
	tls_ctx_free(&tls_sub);
	tls_ctx_free(&tls_mx);
	iplimits_destroy(&limits);
	ioloop_destroy(&p.loop);
	settings_free(&p.set);
	free(p.worker_pids);
	free(p.chans);
	free(dfds);
	free(wfds);
	free(cpar);
	free(cchild);
	free(overrides);
	return p.exit_code;
}
