/* congvu-imapd: the master binds the IMAP (STARTTLS) and IMAPS listeners
 * and loads the certificate, then forks session workers (one per core by
 * default), each an event loop accepting on the shared listening sockets.
 * Workers open the store after fork and drop privileges when started as
 * root. SIGTERM: workers say BYE to every session and exit; SIGHUP: the
 * certificate is reloaded without dropping connections. */
#include "config.h"
#include "cli.h"
#include "frame.h"
#include "imap-session.h"
#include "ioloop.h"
#include "listen.h"
#include "log.h"
#include "net.h"
#include "privsep.h"
#include "reload.h"
#include "settings.h"
#include "store/store.h"
#include "tls.h"
#include "xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { TAG_IMAP = 0, TAG_IMAPS = 1 };

static struct settings *set;
static struct listen_fd *listeners;
static size_t n_listeners;
static const char *conf_path;
static char **overrides;
static int n_overrides;

static void usage(void)
{
	fprintf(stderr, "usage: congvu-imapd [-c FILE] [-o SECTION.KEY=VALUE]... [-n]\n");
	exit(2);
}

static struct tls_ctx *load_tls(bool required)
{
	const char *cert = settings_str(set, S_TLS_CERT), *key = settings_str(set, S_TLS_KEY);
	if (cert[0] == '\0') {
		if (required)
			fatal("imapd.imaps_listen needs tls.cert and tls.key");
		return NULL;
	}
	struct tls_ctx *tls;
	char *err;
	if (tls_ctx_server_new(cert, key[0] ? key : cert, settings_str(set, S_TLS_MIN_VERSION), &tls,
			       &err) < 0)
		fatal("%s", err);
	return tls;
}

/* ---- worker ---- */

struct worker {
	struct imapd d;
	struct frame_chan *parent; /* reloads from the master */
	struct io **ios;
	struct io *notify_io;
	struct timeout *poll_timer;
	uint64_t last_counter;
	bool stopping;
	struct timeout *stop_timer;
};

static struct worker *W;

/* The values sessions take from the configuration; new sessions see a
 * reloaded configuration, existing ones keep their limits. */
static void apply_settings(struct imapd *d)
{
	d->set = set;
	d->appendlimit = settings_num(set, S_IMAPD_APPEND_LIMIT);
	d->limits.max_line = (size_t)settings_num(set, S_IMAPD_MAX_LINE);
	d->limits.max_literal = d->appendlimit;
	d->limits.max_small_literal = d->limits.max_line;
	d->limits.max_command = d->appendlimit + 4 * d->limits.max_line;
	d->limits.max_depth = 32;
	d->limits.max_args = 10000;
	d->idle_timeout_ms = (unsigned)settings_num(set, S_IMAPD_IDLE_TIMEOUT) * 1000;
	d->login_timeout_ms = (unsigned)settings_num(set, S_IMAPD_LOGIN_TIMEOUT) * 1000;
	d->max_bad = 20;
	d->max_connections = (unsigned)settings_num(set, S_IMAPD_MAX_CONNECTIONS);
}

/* Reload frames: the master (still root) reads the configuration file and
 * the certificate and key on SIGHUP and hands them over; a worker, which
 * runs as global.user, could not read a key that only root may read. */
#define RELOAD_FRAME 1

/* Applies a reload frame: trusted networks, the certificate and the
 * settings new sessions take (listeners and the store stay as they are
 * until a restart). On any error the old configuration stays. */
static void worker_reload(struct worker *w, const void *data, size_t len)
{
	struct reload rl;
	char *err = NULL;
	if (reload_parse(data, len, &rl, &err) < 0)
		fatal("malformed reload frame from the master");
	struct settings *n = rl.set;
	if (n == NULL) {
		log_err("event=reload_failed error=\"%s\"", err);
		free(err);
		return;
	}
	const void *cert = rl.cert, *key = rl.key;
	size_t clen = rl.cert_len, klen = rl.key_len;
	struct net_list *trusted;
	if (net_list_parse(settings_str(n, S_IMAPD_TRUSTED_NETWORKS), &trusted, &err) < 0) {
		log_err("event=reload_failed error=\"imapd.trusted_networks: %s\"", err);
		free(err);
		settings_free(&n);
		return;
	}
	if (w->d.tls != NULL && clen > 0 &&
	    tls_ctx_reload_mem(w->d.tls, cert, clen, key, klen, settings_str(n, S_TLS_MIN_VERSION),
			       &err) < 0) {
		log_err("event=reload_failed error=\"%s\"", err);
		free(err);
		net_list_free(&trusted);
		settings_free(&n);
		return;
	}
	/* sessions look at d->trusted only when they start */
	net_list_free(&w->d.trusted);
	w->d.trusted = trusted;
	settings_free(&set);
	set = n;
	apply_settings(&w->d);
	log_info("event=reload");
}

static void stop_worker(struct worker *w);

static void parent_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	if (type != RELOAD_FRAME)
		fatal("malformed frame from the master");
	worker_reload(ctx, data, len);
}

/* The master is gone: finish like on SIGTERM. */
static void parent_gone(void *ctx, const char *error)
{
	struct worker *w = ctx;
	(void)error;
	frame_chan_free(&w->parent);
	stop_worker(w);
}

static void accept_cb(void *ctx, unsigned revents)
{
	struct listen_fd *l = ctx;
	(void)revents;
	for (int i = 0; i < 64 && !W->stopping; i++) {
		int fd;
		struct net_addr peer;
		const char *err;
		int ret = listen_accept(l->fd, &fd, &peer, &err);
		if (ret == 0)
			return;
		if (ret < 0) {
			log_warn("event=accept_failed listener=%s error=\"%s\"", l->name, err);
			return;
		}
		session_create(&W->d, fd, &peer, l->tag == TAG_IMAPS);
	}
}

/* inotify says a process committed to the store (the store signals after
 * the commit is visible to readers): idling sessions catch up. */
static void notify_cb(void *ctx, unsigned revents)
{
	struct worker *w = ctx;
	(void)revents;
	store_notify_drain(w->d.store);
	if (w->d.idlers == NULL)
		return;
	imapd_wake_idlers(&w->d);
}

/* Without inotify, or as a safety net: look at the change counter. */
static void poll_cb(void *ctx)
{
	struct worker *w = ctx;
	timeout_reset(w->poll_timer, w->notify_io ? 1000 : 200);
	if (w->d.idlers == NULL)
		return;
	uint64_t counter;
	const char *err;
	if (store_change_counter(w->d.store, &counter, &err) == 0 && counter != w->last_counter) {
		w->last_counter = counter;
		imapd_wake_idlers(&w->d);
	}
}

static void stop_now(void *ctx)
{
	struct worker *w = ctx;
	ioloop_stop(w->d.loop);
}

static void stop_worker(struct worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	w->d.shutting_down = true;
	for (size_t i = 0; i < n_listeners; i++)
		io_remove(&w->ios[i]);
	session_close_all(&w->d, "* BYE Server shutting down\r\n");
	/* give the BYEs a moment to leave */
	w->stop_timer = timeout_add(w->d.loop, 200, stop_now, w);
}

static void worker_signal(void *ctx, int signo)
{
	struct worker *w = ctx;
	/* SIGHUP is the master's to handle (it sends a reload frame): a worker
	 * that gets one directly (pkill -HUP) ignores it */
	if (signo == SIGHUP)
		return;
	stop_worker(w);
}

static int worker_main(struct tls_ctx *tls, struct net_list *trusted, int parent_fd)
{
	struct worker w;
	memset(&w, 0, sizeof(w));
	W = &w;
	w.d.loop = ioloop_create();
	w.d.tls = tls;
	w.d.trusted = trusted;
	w.parent = frame_chan_new(w.d.loop, parent_fd, RELOAD_FRAME_MAX, parent_frame, parent_gone, &w);
	apply_settings(&w.d);

	struct store_options opts;
	store_options_init(&opts, set, true);
	const char *err;
	if (store_open(settings_str(set, S_GLOBAL_DATA_DIR), &opts, &w.d.store, &err) < 0) {
		log_err("event=store_open_failed data_dir=%s error=\"%s\"",
			settings_str(set, S_GLOBAL_DATA_DIR), err);
		return 1;
	}
	/* The watch on the store's notify file is taken before dropping
	 * privileges: the file may be readable by root only. */
	int nfd = store_notify_fd(w.d.store);
	if (nfd < 0)
		log_warn("event=notify_unavailable error=\"%s\" effect=\"IDLE polls every 200 ms\"",
			 strerror(errno));
	if (privsep_is_root()) {
		char *perr;
		uid_t uid;
		gid_t gid;
		const char *user = settings_str(set, S_GLOBAL_USER);
		if (privsep_lookup(user, &uid, &gid, &perr) < 0) {
			log_warn("event=privsep error=\"%s\" note=\"workers keep running as root\"", perr);
			free(perr);
		} else if (privsep_drop(user, &perr) < 0) {
			log_err("event=privsep error=\"%s\"", perr);
			free(perr);
			return 1;
		}
	}
	w.ios = xcalloc(n_listeners ? n_listeners : 1, sizeof(*w.ios));
	for (size_t i = 0; i < n_listeners; i++)
		w.ios[i] = io_add(w.d.loop, listeners[i].fd, IO_READ, accept_cb, &listeners[i]);
	if (nfd >= 0)
		w.notify_io = io_add(w.d.loop, nfd, IO_READ, notify_cb, &w);
	w.poll_timer = timeout_add(w.d.loop, 500, poll_cb, &w);
	if (ioloop_signal_add(w.d.loop, SIGTERM, worker_signal, &w, &err) < 0 ||
	    ioloop_signal_add(w.d.loop, SIGINT, worker_signal, &w, &err) < 0 ||
	    ioloop_signal_add(w.d.loop, SIGHUP, worker_signal, &w, &err) < 0) {
		log_err("event=signal error=\"%s\"", err);
		return 1;
	}
	ioloop_run(w.d.loop);
	session_close_all(&w.d, NULL);
	for (size_t i = 0; i < n_listeners; i++)
		io_remove(&w.ios[i]);
	free(w.ios);
	io_remove(&w.notify_io);
	timeout_remove(&w.poll_timer);
	timeout_remove(&w.stop_timer);
	ioloop_signal_remove(w.d.loop, SIGTERM);
	ioloop_signal_remove(w.d.loop, SIGINT);
	ioloop_signal_remove(w.d.loop, SIGHUP);
	store_close(&w.d.store);
	frame_chan_free(&w.parent);
	ioloop_destroy(&w.d.loop);
	net_list_free(&w.d.trusted);
	return 0;
}

/* ---- master ---- */

static pid_t *children;
static struct frame_chan **child_chans; /* the master's end of each reload channel */
static int *child_fds;                  /* their fds, closed in the other workers */
static struct ioloop *master_loop;
static time_t *child_started;
static unsigned n_children;
static unsigned quick_deaths;
static bool master_failed;
static bool master_stopping;
static struct tls_ctx *master_tls;
static struct net_list *master_trusted;

static void child_chan_frame(void *ctx, uint32_t type, const void *data, size_t len)
{
	(void)ctx;
	(void)type;
	(void)data;
	(void)len;
	/* workers send nothing: a frame from one is a broken worker */
	log_err("event=unexpected_frame_from_worker");
}

static void child_chan_gone(void *ctx, const char *error)
{
	unsigned i = (unsigned)(uintptr_t)ctx;
	(void)error;
	frame_chan_free(&child_chans[i]);
	child_fds[i] = -1;
}

static pid_t spawn_worker(unsigned slot)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_err("event=socketpair_failed error=\"%s\"", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_err("event=fork_failed error=\"%s\"", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		ioloop_signals_reset();
		close(sv[0]);
		for (unsigned k = 0; k < n_children; k++)
			if (child_fds[k] >= 0)
				close(child_fds[k]);
		/* the worker owns its list of trusted networks (reloaded on SIGHUP) */
		struct net_list *trusted = master_trusted;
		master_trusted = NULL;
		int ret = worker_main(master_tls, trusted, sv[1]);
		/* the worker's own: frees what the master allocated too, so leak
		 * checkers see a clean exit */
		listen_close_all(&listeners, &n_listeners, false);
		tls_ctx_free(&master_tls);
		net_list_free(&master_trusted);
		free(children);
		free(child_chans);
		free(child_fds);
		free(child_started);
		free(overrides);
		settings_free(&set);
		exit(ret);
	}
	close(sv[1]);
	frame_chan_free(&child_chans[slot]);
	child_chans[slot] = frame_chan_new(master_loop, sv[0], 64, child_chan_frame, child_chan_gone,
					   (void *)(uintptr_t)slot);
	child_fds[slot] = sv[0];
	return pid;
}

/* SIGHUP: read the configuration file, the certificate and the key again
 * (as root) and hand them to every worker; a bad file keeps the old one. */
static void master_reload(void)
{
	char *err;
	struct settings *n;
	struct str f = STR_INIT;
	if (reload_build(conf_path, overrides, n_overrides, &n, &f, &err) < 0) {
		log_err("event=reload_failed error=\"%s\"", err);
		free(err);
		return;
	}
	for (unsigned i = 0; i < n_children; i++)
		if (children[i] > 0 && child_chans[i] != NULL)
			frame_send(child_chans[i], RELOAD_FRAME, f.s, f.len);
	explicit_bzero(f.s, f.len);
	str_free(&f);
	/* workers started later get the new configuration from the start */
	settings_free(&set);
	set = n;
	log_info("event=reload");
}

static void master_signal(void *ctx, int signo)
{
	struct ioloop *loop = ctx;
	if (signo == SIGCHLD) {
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (unsigned i = 0; i < n_children; i++) {
				if (children[i] != pid)
					continue;
				children[i] = 0;
				if (!master_stopping) {
					log_err("event=worker_died pid=%d status=%d", (int)pid, status);
					/* workers that die at once, again and again, will
					 * not get better by being restarted */
					time_t now = time(NULL);
					quick_deaths = now - child_started[i] < 3 ? quick_deaths + 1 : 0;
					if (quick_deaths >= 5) {
						log_err("event=giving_up reason=\"workers keep dying at start\"");
						master_failed = true;
						master_stopping = true;
						for (unsigned k = 0; k < n_children; k++)
							if (children[k] > 0)
								kill(children[k], SIGTERM);
						break;
					}
					sleep(1); /* no fork storm when workers die at once */
					children[i] = spawn_worker(i);
					child_started[i] = time(NULL);
				}
			}
		}
		if (master_stopping) {
			bool any = false;
			for (unsigned i = 0; i < n_children; i++)
				any |= children[i] > 0;
			if (!any)
				ioloop_stop(loop);
		}
		return;
	}
	if (signo == SIGHUP) {
		master_reload();
		return;
	}
	if (master_stopping)
		return;
	master_stopping = true;
	log_info("event=shutdown signal=%d", signo);
	bool any = false;
	for (unsigned i = 0; i < n_children; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGTERM);
			any = true;
		}
	}
	if (!any)
		ioloop_stop(loop);
}

int main(int argc, char **argv)
{
	struct cli_opts cli;
	if (cli_parse(argc, argv, "n", &cli) < 0 || cli.next != argc)
		usage();
	conf_path = cli.conf_path;
	overrides = cli.overrides;
	n_overrides = cli.n_overrides;
	bool dump = cli.dump;
	char *err;
	set = settings_from_cli(conf_path, overrides, n_overrides, &err);
	if (set == NULL) {
		fprintf(stderr, "congvu-imapd: fatal: %s\n", err);
		return 1;
	}
	if (dump) {
		settings_dump(set, stdout);
		return 0;
	}
	log_init("congvu-imapd", strcmp(settings_str(set, S_GLOBAL_LOG), "syslog") == 0);
	signal(SIGPIPE, SIG_IGN);
	/* one fd per connection: allow as many as the hard limit does */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	const char *imap_list = settings_str(set, S_IMAPD_IMAP_LISTEN);
	const char *imaps_list = settings_str(set, S_IMAPD_IMAPS_LISTEN);
	master_tls = load_tls(imaps_list[0] != '\0');
	if (net_list_parse(settings_str(set, S_IMAPD_TRUSTED_NETWORKS), &master_trusted, &err) < 0)
		fatal("imapd.trusted_networks: %s", err);

	/* the store must be usable before anything listens */
	struct store *store;
	const char *serr;
	struct store_options opts;
	store_options_init(&opts, set, true);
	if (store_open(settings_str(set, S_GLOBAL_DATA_DIR), &opts, &store, &serr) < 0)
		fatal("global.data_dir: %s: %s", settings_str(set, S_GLOBAL_DATA_DIR), serr);
	store_close(&store);

	if (listen_open_list(imap_list, TAG_IMAP, 1024, &listeners, &n_listeners, &err) < 0)
		fatal("imapd.imap_listen: %s", err);
	if (listen_open_list(imaps_list, TAG_IMAPS, 1024, &listeners, &n_listeners, &err) < 0)
		fatal("imapd.imaps_listen: %s", err);
	if (n_listeners == 0)
		fatal("imapd.imap_listen and imapd.imaps_listen are both empty");

	n_children = (unsigned)settings_num(set, S_IMAPD_WORKERS);
	if (n_children == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		n_children = n > 0 ? (unsigned)n : 1;
	}
	struct ioloop *loop = ioloop_create();
	const char *e;
	if (ioloop_signal_add(loop, SIGTERM, master_signal, loop, &e) < 0 ||
	    ioloop_signal_add(loop, SIGINT, master_signal, loop, &e) < 0 ||
	    ioloop_signal_add(loop, SIGHUP, master_signal, loop, &e) < 0 ||
	    ioloop_signal_add(loop, SIGCHLD, master_signal, loop, &e) < 0)
		fatal("signals: %s", e);
	master_loop = loop;
	children = xcalloc(n_children, sizeof(pid_t));
	child_chans = xcalloc(n_children, sizeof(*child_chans));
	child_fds = xcalloc(n_children, sizeof(int));
	for (unsigned i = 0; i < n_children; i++)
		child_fds[i] = -1;
	child_started = xcalloc(n_children, sizeof(time_t));
	if (auth_fail_table_share() < 0)
		log_warn("event=shared_memory_failed error=\"%s\" effect=\"failed logins counted per "
			 "worker\"", strerror(errno));
	for (unsigned i = 0; i < n_children; i++) {
		children[i] = spawn_worker(i);
		child_started[i] = time(NULL);
	}
	log_info("event=started workers=%u imap=\"%s\" imaps=\"%s\"", n_children, imap_list,
		 imaps_list);
	ioloop_run(loop);
	log_info("event=stopped");
	ioloop_signal_remove(loop, SIGTERM);
	ioloop_signal_remove(loop, SIGINT);
	ioloop_signal_remove(loop, SIGHUP);
	ioloop_signal_remove(loop, SIGCHLD);
	for (unsigned i = 0; i < n_children; i++)
		frame_chan_free(&child_chans[i]);
	ioloop_destroy(&loop);
	listen_close_all(&listeners, &n_listeners, true);
	tls_ctx_free(&master_tls);
	net_list_free(&master_trusted);
	free(children);
	free(child_chans);
	free(child_fds);
	free(child_started);
	free(overrides);
	settings_free(&set);
	return master_failed ? 1 : 0;
}
