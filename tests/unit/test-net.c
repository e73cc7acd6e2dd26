/* Unit tests of the networking layer: event loop, timers, connections over
 * socketpairs in clear and over real TLS (a self-signed certificate made
 * with the openssl command), CIDR lists, listeners, SASL, frames. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "frame.h"
#include "ioloop.h"
#include "listen.h"
#include "net.h"
#include "reload.h"
#include "sasl.h"
#include "settings.h"
#include "str.h"
#include "tls.h"
#include "xalloc.h"

/* ---- ioloop ---- */

static int fired[4];

static void on_timer(void *ctx)
{
	fired[(long)ctx]++;
}

START_TEST(test_timeouts)
{
	struct ioloop *loop = ioloop_create();
	memset(fired, 0, sizeof(fired));
	struct timeout *a = timeout_add(loop, 30, on_timer, (void *)0L);
	struct timeout *b = timeout_add(loop, 10, on_timer, (void *)1L);
	struct timeout *c = timeout_add(loop, 0, on_timer, (void *)2L);
	struct timeout *d = timeout_add(loop, 5, on_timer, (void *)3L);
	timeout_stop(d);
	timeout_reset(b, 60); /* pushed back: fires after a */
	while (fired[0] == 0)
		ck_assert_int_eq(ioloop_run_once(loop, 1000), 0);
	ck_assert_int_eq(fired[2], 1);
	ck_assert_int_eq(fired[1], 0);
	while (fired[1] == 0)
		ck_assert_int_eq(ioloop_run_once(loop, 1000), 0);
	ck_assert_int_eq(fired[0], 1);
	ck_assert_int_eq(fired[3], 0);
	/* re-arming after firing */
	timeout_reset(a, 0);
	ck_assert_int_eq(ioloop_run_once(loop, 1000), 0);
	ck_assert_int_eq(fired[0], 2);
	timeout_remove(&a);
	timeout_remove(&b);
	timeout_remove(&c);
	timeout_remove(&d);
	ck_assert_ptr_null(a);
	ioloop_destroy(&loop);
}
END_TEST

static int defer_count;
static struct defer *self_defer;

static void on_defer(void *ctx)
{
	(void)ctx;
	/* scheduling itself again runs on the next pass, not forever now */
	if (++defer_count < 3)
		defer_schedule(self_defer);
}

START_TEST(test_defer)
{
	struct ioloop *loop = ioloop_create();
	defer_count = 0;
	self_defer = defer_new(loop, on_defer, NULL);
	defer_schedule(self_defer);
	defer_schedule(self_defer);
	ck_assert_int_eq(ioloop_run_once(loop, 0), 0);
	ck_assert_int_eq(defer_count, 1);
	ck_assert_int_eq(ioloop_run_once(loop, 0), 0);
	ck_assert_int_eq(ioloop_run_once(loop, 0), 0);
	ck_assert_int_eq(defer_count, 3);
	ck_assert_int_eq(ioloop_run_once(loop, 0), 0);
	ck_assert_int_eq(defer_count, 3);
	defer_schedule(self_defer);
	defer_cancel(self_defer);
	ck_assert_int_eq(ioloop_run_once(loop, 0), 0);
	ck_assert_int_eq(defer_count, 3);
	defer_free(&self_defer);
	ioloop_destroy(&loop);
}
END_TEST

static int got_signal;

static void on_signal(void *ctx, int signo)
{
	(void)ctx;
	got_signal = signo;
}

START_TEST(test_signal)
{
	struct ioloop *loop = ioloop_create();
	const char *error;
	got_signal = 0;
	ck_assert_int_eq(ioloop_signal_add(loop, SIGUSR1, on_signal, NULL, &error), 0);
	kill(getpid(), SIGUSR1);
	for (int i = 0; i < 100 && got_signal == 0; i++)
		ioloop_run_once(loop, 100);
	ck_assert_int_eq(got_signal, SIGUSR1);
	ioloop_signal_remove(loop, SIGUSR1);
	ioloop_signals_reset();
	ioloop_destroy(&loop);
}
END_TEST

/* ---- connections ---- */

struct peer {
	struct conn *conn;
	struct str in;
	int events[CONN_EV_ERROR + 1];
	bool consume;   /* take all input on DATA_IN */
	bool free_on_eof;
	size_t discarded;
};

static void peer_cb(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct peer *p = ctx;
	p->events[ev]++;
	if (ev == CONN_EV_DATA_IN && p->consume) {
		const void *data;
		size_t len;
		conn_input(conn, &data, &len);
		str_append(&p->in, data, len);
		conn_consume(conn, len);
	}
	if ((ev == CONN_EV_EOF || ev == CONN_EV_ERROR) && p->free_on_eof)
		conn_free(&p->conn);
}

static void make_pair(struct ioloop *loop, struct peer *a, struct peer *b)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	a->consume = b->consume = true;
	a->conn = conn_new(loop, sv[0], peer_cb, a);
	b->conn = conn_new(loop, sv[1], peer_cb, b);
}

static void spin(struct ioloop *loop, bool (*done)(void *), void *ctx)
{
	for (int i = 0; i < 5000 && !done(ctx); i++)
		ck_assert_int_eq(ioloop_run_once(loop, 100), 0);
	ck_assert(done(ctx));
}

static size_t want_len;
static bool have_len(void *ctx)
{
	return ((struct peer *)ctx)->in.len >= want_len;
}

START_TEST(test_conn_plain)
{
	struct ioloop *loop = ioloop_create();
	struct peer a, b;
	make_pair(loop, &a, &b);
	conn_writes(a.conn, "hello ");
	conn_printf(b.conn, "x=%d\r\n", 42);
	conn_writes(a.conn, "world\r\n");
	ck_assert_uint_eq(conn_output_size(a.conn), 13);
	want_len = 13;
	spin(loop, have_len, &b);
	ck_assert_str_eq(b.in.s, "hello world\r\n");
	want_len = 6;
	spin(loop, have_len, &a);
	ck_assert_str_eq(a.in.s, "x=42\r\n");
	ck_assert_int_ge(a.events[CONN_EV_DRAINED], 1);
	ck_assert_uint_eq(conn_output_size(a.conn), 0);
	/* EOF reaches the other side after the data */
	b.free_on_eof = true;
	conn_writes(a.conn, "bye");
	ck_assert_int_eq(conn_flush(a.conn), 0);
	conn_free(&a.conn);
	for (int i = 0; i < 100 && b.conn != NULL; i++)
		ioloop_run_once(loop, 100);
	ck_assert_ptr_null(b.conn);
	ck_assert_int_eq(b.events[CONN_EV_EOF], 1);
	ck_assert_str_eq(b.in.s + 13, "bye");
	str_free(&a.in);
	str_free(&b.in);
	ioloop_destroy(&loop);
}
END_TEST

/* A line reader that leaves partial lines in the buffer. */
struct liner {
	struct conn *conn;
	struct str lines;
	int too_long;
	bool discarding;
};

static void liner_cb(struct conn *conn, enum conn_event ev, void *ctx)
{
	struct liner *l = ctx;
	if (ev != CONN_EV_DATA_IN)
		return;
	const char *line;
	size_t len;
	int r;
	while ((r = conn_read_line(conn, 16, &line, &len)) != 0) {
		if (r < 0) {
			/* drop what is buffered, then the rest of the line */
			if (!l->discarding)
				l->too_long++;
			l->discarding = true;
			conn_consume(conn, 16);
			continue;
		}
		if (l->discarding) {
			l->discarding = false;
			conn_consume(conn, len);
			continue;
		}
		str_append(&l->lines, line, len);
		str_appendc(&l->lines, '|');
		conn_consume(conn, len);
	}
}

static bool have_lines(void *ctx)
{
	return ((struct liner *)ctx)->lines.len >= want_len;
}

START_TEST(test_conn_lines_bytewise)
{
	struct ioloop *loop = ioloop_create();
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct liner l;
	memset(&l, 0, sizeof(l));
	l.conn = conn_new(loop, sv[1], liner_cb, &l);
	const char *text = "one\r\ntwo\nthree\r\n";
	for (const char *p = text; *p; p++) {
		ck_assert_int_eq(write(sv[0], p, 1), 1);
		ioloop_run_once(loop, 10);
	}
	want_len = strlen(text) + 3;
	spin(loop, have_lines, &l);
	ck_assert_str_eq(l.lines.s, "one\r\n|two\n|three\r\n|");
	/* a line over the limit */
	str_truncate(&l.lines, 0);
	ck_assert_int_eq(write(sv[0], "0123456789abcdefghij\nok\n", 24), 24);
	want_len = 4;
	spin(loop, have_lines, &l);
	ck_assert_int_eq(l.too_long, 1);
	ck_assert_str_eq(l.lines.s, "ok\n|");
	conn_free(&l.conn);
	close(sv[0]);
	str_free(&l.lines);
	ioloop_destroy(&loop);
}
END_TEST

/* Back-pressure: the reader does not consume while paused; the writer's
 * output grows, then everything arrives intact once reading resumes. */
START_TEST(test_conn_backpressure)
{
	struct ioloop *loop = ioloop_create();
	struct peer a, b;
	make_pair(loop, &a, &b);
	conn_input_pause(b.conn, true);
	size_t total = 4 * 1024 * 1024;
	char *chunk = xmalloc(65536);
	for (size_t i = 0; i < 65536; i++)
		chunk[i] = (char)('a' + i % 26);
	for (size_t off = 0; off < total; off += 65536)
		conn_write(a.conn, chunk, 65536);
	for (int i = 0; i < 20; i++)
		ioloop_run_once(loop, 10);
	ck_assert_uint_gt(conn_output_size(a.conn), 0);
	ck_assert_uint_eq(b.in.len, 0);
	conn_input_pause(b.conn, false);
	want_len = total;
	spin(loop, have_len, &b);
	ck_assert_uint_eq(b.in.len, total);
	for (size_t off = 0; off < total; off += 65536)
		ck_assert(memcmp(b.in.s + off, chunk, 65536) == 0);
	ck_assert_int_ge(a.events[CONN_EV_DRAINED], 1);
	free(chunk);
	conn_free(&a.conn);
	conn_free(&b.conn);
	str_free(&a.in);
	str_free(&b.in);
	ioloop_destroy(&loop);
}
END_TEST

static bool timed_out(void *ctx)
{
	return ((struct peer *)ctx)->events[CONN_EV_TIMEOUT] > 0;
}

START_TEST(test_conn_timeout)
{
	struct ioloop *loop = ioloop_create();
	struct peer a, b;
	make_pair(loop, &a, &b);
	conn_set_timeout(b.conn, 50);
	spin(loop, timed_out, &b);
	ck_assert_int_eq(a.events[CONN_EV_TIMEOUT], 0);
	conn_free(&a.conn);
	conn_free(&b.conn);
	ioloop_destroy(&loop);
}
END_TEST

/* ---- TLS ---- */

static char tls_dir[] = "/tmp/congvu-test-net-XXXXXX";
static char cert_path[256], key_path[256];

static void make_cert(void)
{
	if (cert_path[0] != '\0')
		return;
	if (mkdtemp(tls_dir) == NULL)
		abort();
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tls_dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", tls_dir);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=mx.lamdong.gov.vn "
		 "-addext subjectAltName=DNS:mx.lamdong.gov.vn >/dev/null 2>&1",
		 key_path, cert_path);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot make a certificate with openssl\n");
		exit(EXIT_FAILURE);
	}
}

static void remove_cert(void)
{
	if (cert_path[0] == '\0')
		return;
	unlink(cert_path);
	unlink(key_path);
	rmdir(tls_dir);
}

static bool both_ready(void *ctx)
{
	struct peer *p = ctx;
	return p[0].events[CONN_EV_TLS_READY] > 0 && p[1].events[CONN_EV_TLS_READY] > 0;
}

START_TEST(test_tls_starttls)
{
	make_cert();
	struct ioloop *loop = ioloop_create();
	struct tls_ctx *server, *client;
	char *error = NULL;
	ck_assert_int_eq(tls_ctx_server_new(cert_path, key_path, "TLSv1.2", &server, &error), 0);
	ck_assert_int_eq(tls_ctx_client_new("TLSv1.2", false, NULL, &client, &error), 0);
	struct peer p[2];
	make_pair(loop, &p[0], &p[1]);
	/* the server reads a command plus injected plaintext, replies in
	 * clear and starts TLS; the injected bytes must be discarded */
	conn_writes(p[0].conn, "STARTTLS\r\nRSET\r\n");
	want_len = 16;
	p[1].consume = false;
	for (int i = 0; i < 100; i++) {
		ioloop_run_once(loop, 10);
		const void *d;
		size_t n;
		conn_input(p[1].conn, &d, &n);
		if (n >= 16)
			break;
	}
	conn_consume(p[1].conn, 10);
	conn_writes(p[1].conn, "220 go ahead\r\n");
	const char *err;
	size_t discarded;
	ck_assert_int_eq(conn_starttls(p[1].conn, server, &discarded, &err), 0);
	ck_assert_uint_eq(discarded, 6);
	ck_assert_int_eq(conn_starttls(p[1].conn, server, &discarded, &err), -1);
	p[1].consume = true;
	want_len = 14;
	spin(loop, have_len, &p[0]);
	ck_assert_str_eq(p[0].in.s, "220 go ahead\r\n");
	ck_assert_int_eq(conn_starttls_client(p[0].conn, client, "mx.lamdong.gov.vn", &err), 0);
	spin(loop, both_ready, p);
	ck_assert(conn_tls_active(p[0].conn));
	ck_assert(conn_tls_active(p[1].conn));
	ck_assert_ptr_nonnull(conn_tls_version(p[1].conn));
	ck_assert_str_eq(conn_tls_version(p[1].conn), "TLSv1.3");
	ck_assert(!conn_tls_verified(p[0].conn)); /* self-signed */
	ck_assert_uint_eq(p[1].in.len, 0);        /* "RSET" was discarded */
	/* data both ways, large enough for several records */
	size_t total = 300 * 1024;
	char *blob = xmalloc(total);
	for (size_t i = 0; i < total; i++)
		blob[i] = (char)(i * 7);
	conn_write(p[0].conn, blob, total);
	conn_writes(p[1].conn, "250 ok\r\n");
	str_truncate(&p[0].in, 0);
	want_len = total;
	spin(loop, have_len, &p[1]);
	ck_assert(memcmp(p[1].in.s, blob, total) == 0);
	want_len = 8;
	spin(loop, have_len, &p[0]);
	ck_assert_str_eq(p[0].in.s, "250 ok\r\n");
	/* idle TLS connections hold few bytes */
	for (int i = 0; i < 10; i++)
		ioloop_run_once(loop, 1);
	ck_assert_uint_lt(conn_memory_usage(p[1].conn), 32 * 1024);
	/* a reload swaps the certificate without touching this session */
	ck_assert_int_eq(tls_ctx_reload(server, cert_path, key_path, "TLSv1.3", &error), 0);
	ck_assert_int_eq(tls_ctx_reload(server, "/nonexistent.pem", key_path, "", &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "tls.cert: /nonexistent.pem"));
	free(error);
	error = NULL;
	conn_writes(p[0].conn, "QUIT\r\n");
	str_truncate(&p[1].in, 0);
	want_len = 6;
	spin(loop, have_len, &p[1]);
	free(blob);
	conn_free(&p[0].conn);
	conn_free(&p[1].conn);
	str_free(&p[0].in);
	str_free(&p[1].in);
	tls_ctx_free(&server);
	tls_ctx_free(&client);
	ioloop_destroy(&loop);
}
END_TEST

static bool failed_either(void *ctx)
{
	struct peer *p = ctx;
	return p[0].events[CONN_EV_ERROR] + p[1].events[CONN_EV_ERROR] > 0;
}

START_TEST(test_tls_garbage)
{
	make_cert();
	struct ioloop *loop = ioloop_create();
	struct tls_ctx *server;
	char *error = NULL;
	ck_assert_int_eq(tls_ctx_server_new(cert_path, key_path, "", &server, &error), 0);
	struct peer p[2];
	make_pair(loop, &p[0], &p[1]);
	const char *err;
	ck_assert_int_eq(conn_starttls(p[1].conn, server, NULL, &err), 0);
	conn_writes(p[0].conn, "EHLO not tls at all\r\n");
	spin(loop, failed_either, p);
	ck_assert_int_eq(p[1].events[CONN_EV_ERROR], 1);
	ck_assert_ptr_nonnull(strstr(conn_error(p[1].conn), "TLS handshake failed"));
	conn_free(&p[0].conn);
	conn_free(&p[1].conn);
	tls_ctx_free(&server);
	ioloop_destroy(&loop);
}
END_TEST

START_TEST(test_tls_errors)
{
	make_cert();
	struct tls_ctx *ctx = NULL;
	char *error = NULL;
	ck_assert_int_eq(tls_ctx_server_new("", "", "", &ctx, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "tls.cert"));
	free(error);
	ck_assert_int_eq(tls_ctx_server_new(cert_path, "/no/key.pem", "", &ctx, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "tls.key: /no/key.pem"));
	free(error);
	/* a key that is not the certificate's */
	ck_assert_int_eq(tls_ctx_server_new(cert_path, cert_path, "", &ctx, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "tls.key"));
	free(error);
	ck_assert_int_eq(tls_ctx_server_new(cert_path, key_path, "SSLv3", &ctx, &error), -1);
	free(error);
	ck_assert(tls_version_valid("TLSv1.3"));
	ck_assert(!tls_version_valid("TLSv9"));
}
END_TEST

/* ---- net ---- */

START_TEST(test_net_lists)
{
	struct net_list *list;
	char *error = NULL;
	ck_assert_int_eq(net_list_parse("127.0.0.0/8 ::1/128, 10.1.2.3 2001:db8::/32 192.168.0.0/23",
					&list, &error), 0);
	struct net_addr a;
	struct { const char *ip; bool in; } cases[] = {
		{ "127.0.0.1", true }, { "127.255.1.1", true }, { "128.0.0.1", false },
		{ "::1", true }, { "::2", false }, { "10.1.2.3", true }, { "10.1.2.4", false },
		{ "2001:db8:ffff::1", true }, { "2001:db9::1", false },
		{ "::ffff:127.0.0.5", true }, { "192.168.1.255", true }, { "192.168.2.0", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(net_addr_parse(cases[i].ip, &a), 0);
		ck_assert_msg(net_list_match(list, &a) == cases[i].in, "%s", cases[i].ip);
	}
	char buf[NET_ADDR_STR_MAX];
	ck_assert_int_eq(net_addr_parse("::ffff:10.0.0.1", &a), 0);
	ck_assert_str_eq(net_addr_str(&a, buf, sizeof(buf)), "10.0.0.1");
	struct net_addr b;
	ck_assert_int_eq(net_addr_parse("10.0.0.1", &b), 0);
	ck_assert(net_addr_hash(&a, true) == net_addr_hash(&b, true));
	ck_assert_int_eq(net_addr_parse("2001:db8::1", &a), 0);
	ck_assert_int_eq(net_addr_parse("2001:db8::2", &b), 0);
	ck_assert(net_addr_hash(&a, true) == net_addr_hash(&b, true));
	ck_assert(net_addr_hash(&a, false) != net_addr_hash(&b, false));
	net_list_free(&list);
	ck_assert_int_eq(net_list_parse("", &list, &error), 0);
	ck_assert(!net_list_match(list, &a));
	net_list_free(&list);
	const char *bad[] = { "10.0.0.0/33", "::/129", "10.0.0.1/", "foo", "1.2.3.4/8x", "/8" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(net_list_parse(bad[i], &list, &error), -1);
		ck_assert_ptr_nonnull(strstr(error, bad[i]));
		free(error);
	}
	ck_assert_int_eq(net_addr_parse("1.2.3", &a), -1);
}
END_TEST

START_TEST(test_listen)
{
	struct listen_spec s;
	const char *why;
	ck_assert_int_eq(listen_parse("127.0.0.1:2525", &s, &why), 0);
	ck_assert_str_eq(s.host, "127.0.0.1");
	ck_assert_uint_eq(s.port, 2525);
	ck_assert_int_eq(listen_parse("[::1]:25", &s, &why), 0);
	ck_assert_str_eq(s.host, "::1");
	ck_assert_int_eq(listen_parse("*:587", &s, &why), 0);
	ck_assert_str_eq(s.host, "");
	ck_assert_int_eq(listen_parse("465", &s, &why), 0);
	ck_assert_uint_eq(s.port, 465);
	ck_assert_int_eq(listen_parse("unix:/run/x.sock", &s, &why), 0);
	ck_assert(s.is_unix);
	ck_assert_str_eq(s.path, "/run/x.sock");
	ck_assert_int_eq(listen_parse("unix:rel.sock", &s, &why), -1);
	ck_assert_int_eq(listen_parse("::1:25", &s, &why), -1);
	ck_assert_int_eq(listen_parse("host:0", &s, &why), -1);
	ck_assert_int_eq(listen_parse("host:65536", &s, &why), -1);
	ck_assert_int_eq(listen_parse("[::1]25", &s, &why), -1);

	/* bind, accept, port in use, unix socket */
	struct listen_fd *fds = NULL;
	size_t n = 0;
	char *error = NULL;
	char dir[] = "/tmp/congvu-listen-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char list[256];
	snprintf(list, sizeof(list), "127.0.0.1:0, unix:%s/s.sock", dir);
	/* port 0 is refused by the parser: pick a free one by binding first */
	ck_assert_int_eq(listen_open_list(list, 1, 16, &fds, &n, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "127.0.0.1:0: bad port"));
	free(error);
	snprintf(list, sizeof(list), "unix:%s/s.sock", dir);
	ck_assert_int_eq(listen_open_list(list, 7, 16, &fds, &n, &error), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(fds[0].tag, 7);
	/* a second listener on the live socket is refused */
	struct listen_fd *fds2 = NULL;
	size_t n2 = 0;
	ck_assert_int_eq(listen_open_list(list, 7, 16, &fds2, &n2, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "Address already in use"));
	free(error);
	listen_close_all(&fds2, &n2, false);
	int fd;
	struct net_addr peer;
	/* the probe of the refused second listener is in the backlog */
	ck_assert_int_eq(listen_accept(fds[0].fd, &fd, &peer, &why), 1);
	ck_assert(!net_addr_is_ip(&peer));
	close(fd);
	ck_assert_int_eq(listen_accept(fds[0].fd, &fd, &peer, &why), 0);
	listen_close_all(&fds, &n, true);
	struct stat st;
	snprintf(list, sizeof(list), "%s/s.sock", dir);
	ck_assert_int_eq(stat(list, &st), -1);
	rmdir(dir);
}
END_TEST

/* ---- SASL ---- */

static int sasl_run(enum sasl_mech mech, const char *initial, const char *const *lines,
		    const struct sasl_creds **creds_r, struct sasl_server **s_r, const char **err_r)
{
	struct sasl_server *s = sasl_server_new(mech);
	const char *ch;
	int r = sasl_server_start(s, initial, initial ? strlen(initial) : 0, &ch, err_r);
	for (size_t i = 0; r == 0 && lines[i] != NULL; i++)
		r = sasl_server_input(s, lines[i], strlen(lines[i]), &ch, err_r);
	*creds_r = sasl_server_creds(s);
	*s_r = s;
	return r;
}

START_TEST(test_sasl)
{
	const struct sasl_creds *c;
	struct sasl_server *s;
	const char *err;
	const char *none[] = { NULL };
	char b64[256];
	/* PLAIN with an initial response */
	base64_encode("\0demo@lamdong.gov.vn\0secret", 27, b64);
	ck_assert_int_eq(sasl_run(SASL_MECH_PLAIN, b64, none, &c, &s, &err), 1);
	ck_assert_str_eq(c->authcid, "demo@lamdong.gov.vn");
	ck_assert_str_eq(c->password, "secret");
	ck_assert_str_eq(c->authzid, "");
	sasl_server_free(&s);
	/* PLAIN without: one empty challenge, then the response */
	const char *plain_lines[] = { b64, NULL };
	ck_assert_int_eq(sasl_run(SASL_MECH_PLAIN, NULL, plain_lines, &c, &s, &err), 1);
	sasl_server_free(&s);
	/* LOGIN */
	char u[64], p[64];
	base64_encode("user@x.vn", 9, u);
	base64_encode("pw", 2, p);
	const char *login_lines[] = { u, p, NULL };
	ck_assert_int_eq(sasl_run(SASL_MECH_LOGIN, NULL, login_lines, &c, &s, &err), 1);
	ck_assert_str_eq(c->authcid, "user@x.vn");
	ck_assert_str_eq(c->password, "pw");
	sasl_server_free(&s);
	/* cancel, bad base64, malformed, empty password, too long */
	const char *cancel[] = { "*", NULL };
	ck_assert_int_eq(sasl_run(SASL_MECH_LOGIN, NULL, cancel, &c, &s, &err), -1);
	ck_assert_str_eq(err, "cancelled");
	sasl_server_free(&s);
	ck_assert_int_eq(sasl_run(SASL_MECH_PLAIN, "!!!!", none, &c, &s, &err), -1);
	ck_assert_str_eq(err, "bad base64");
	sasl_server_free(&s);
	base64_encode("nouser", 6, b64);
	ck_assert_int_eq(sasl_run(SASL_MECH_PLAIN, b64, none, &c, &s, &err), -1);
	ck_assert_str_eq(err, "malformed");
	sasl_server_free(&s);
	base64_encode("\0u\0", 3, b64);
	ck_assert_int_eq(sasl_run(SASL_MECH_PLAIN, b64, none, &c, &s, &err), -1);
	sasl_server_free(&s);
	char *big = xmalloc(8192);
	memset(big, 'A', 8191);
	big[8191] = '\0';
	ck_assert_int_eq(sasl_run(SASL_MECH_PLAIN, big, none, &c, &s, &err), -1);
	ck_assert_str_eq(err, "too long");
	sasl_server_free(&s);
	free(big);
	/* base64 round trips and strictness */
	unsigned char out[16];
	size_t n;
	for (size_t len = 0; len < 8; len++) {
		base64_encode("abcdefgh", len, b64);
		ck_assert_int_eq(base64_decode(b64, strlen(b64), out, sizeof(out), &n), 0);
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(out, "abcdefgh", len) == 0);
	}
	ck_assert_int_eq(base64_decode("YQ=a", 4, out, sizeof(out), &n), -1);
	ck_assert_int_eq(base64_decode("Y===", 4, out, sizeof(out), &n), -1);
	ck_assert_int_eq(base64_decode("YQ==YQ==", 8, out, sizeof(out), &n), -1);
	ck_assert_int_eq(base64_decode("YWJj", 4, out, 2, &n), -1);
	enum sasl_mech m;
	ck_assert_int_eq(sasl_mech_parse("plain", &m), 0);
	ck_assert_int_eq(m, SASL_MECH_PLAIN);
	ck_assert_int_eq(sasl_mech_parse("CRAM-MD5", &m), -1);
}
END_TEST

/* ---- frames ---- */

struct frames {
	int n;
	uint32_t last_type;
	struct str last;
	const char *error;
};

static void frame_handler(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct frames *f = ctx;
	f->n++;
	f->last_type = type;
	str_truncate(&f->last, 0);
	str_append(&f->last, data, len);
}

static void frame_error(void *ctx, const char *error)
{
	((struct frames *)ctx)->error = error;
}

static bool frames_n(void *ctx)
{
	return ((struct frames *)ctx)->n >= (int)want_len;
}

static bool frames_err(void *ctx)
{
	return ((struct frames *)ctx)->error != NULL;
}

START_TEST(test_frames)
{
	struct ioloop *loop = ioloop_create();
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct frames fa, fb;
	memset(&fa, 0, sizeof(fa));
	memset(&fb, 0, sizeof(fb));
	struct frame_chan *a = frame_chan_new(loop, sv[0], 1024, frame_handler, frame_error, &fa);
	struct frame_chan *b =
		frame_chan_new(loop, sv[1], 3 * 1024 * 1024, frame_handler, frame_error, &fb);
	struct str buf = STR_INIT;
	frame_put_u32(&buf, 7);
	frame_put_u64(&buf, 1ULL << 40);
	frame_put_str(&buf, "rcpt@lamdong.gov.vn");
	frame_put_bytes(&buf, "\0\1\2", 3);
	frame_put_u8(&buf, 9);
	frame_send(a, 42, buf.s, buf.len);
	char *big = xcalloc(1, 2 * 1024 * 1024);
	frame_send(a, 43, big, 2 * 1024 * 1024);
	want_len = 2;
	spin(loop, frames_n, &fb);
	ck_assert_uint_eq(fb.last_type, 43);
	ck_assert_uint_eq(fb.last.len, 2 * 1024 * 1024);
	/* decode the first one again */
	struct frame_reader r;
	frame_reader_init(&r, buf.s, buf.len);
	ck_assert_uint_eq(frame_get_u32(&r), 7);
	ck_assert(frame_get_u64(&r) == 1ULL << 40);
	ck_assert_str_eq(frame_get_str(&r, 254), "rcpt@lamdong.gov.vn");
	size_t n;
	const unsigned char *bytes = frame_get_bytes(&r, 3, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(bytes[2], 2);
	ck_assert_uint_eq(frame_get_u8(&r), 9);
	ck_assert(frame_reader_ok(&r));
	frame_get_u8(&r);
	ck_assert(!frame_reader_ok(&r));
	/* a string longer than allowed, one without its NUL */
	frame_reader_init(&r, buf.s + 12, buf.len - 12);
	ck_assert_str_eq(frame_get_str(&r, 5), "");
	ck_assert(r.bad);
	struct str bad = STR_INIT;
	frame_put_bytes(&bad, "abc", 3);
	frame_reader_init(&r, bad.s, bad.len);
	frame_get_str(&r, 100);
	ck_assert(r.bad);
	str_free(&bad);
	/* an oversized frame kills the receiver */
	frame_send(b, 1, big, 2048);
	spin(loop, frames_err, &fa);
	ck_assert_str_eq(fa.error, "oversized frame");
	free(big);
	str_free(&buf);
	str_free(&fa.last);
	str_free(&fb.last);
	frame_chan_free(&a);
	frame_chan_free(&b);
	ioloop_destroy(&loop);
}
END_TEST

/* The reload frame carries the configuration (and the TLS files) from a
 * root parent to its children; a cut frame is refused. */
START_TEST(test_reload_frame)
{
	char path[] = "/tmp/congvu-test-reload-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *conf = "[quota]\npersonal = 3G\n";
	ck_assert_int_eq(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
	close(fd);
	char *over[] = { "global.domains=a.vn" };
	struct settings *set = NULL;
	struct str f = STR_INIT;
	char *error = NULL;
	ck_assert_int_eq(reload_build(path, over, 1, &set, &f, &error), 0);
	struct reload rl;
	ck_assert_int_eq(reload_parse(f.s, f.len, &rl, &error), 0);
	ck_assert_ptr_nonnull(rl.set);
	ck_assert_uint_eq(settings_num(rl.set, S_QUOTA_PERSONAL), 3ULL << 30);
	ck_assert_str_eq(settings_str(rl.set, S_GLOBAL_DOMAINS), "a.vn");
	ck_assert_uint_eq(rl.cert_len, 0);
	ck_assert_uint_eq(rl.key_len, 0);
	settings_free(&rl.set);
	ck_assert_int_eq(reload_parse(f.s, f.len - 1, &rl, &error), -1);
	/* a bad file keeps the old configuration: the build fails */
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "[nowhere]\n", 10), 10);
	close(fd);
	settings_free(&set);
	ck_assert_int_eq(reload_build(path, NULL, 0, &set, &f, &error), -1);
	ck_assert(strstr(error, "nowhere") != NULL);
	free(error);
	str_free(&f);
	unlink(path);
}
END_TEST

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_reload_frame);
	tcase_add_test(tc, test_defer);
	tcase_add_test(tc, test_signal);
	tcase_add_test(tc, test_conn_plain);
	tcase_add_test(tc, test_conn_lines_bytewise);
	tcase_add_test(tc, test_conn_backpressure);
	tcase_add_test(tc, test_conn_timeout);
	tcase_add_test(tc, test_tls_starttls);
	tcase_add_test(tc, test_tls_garbage);
	tcase_add_test(tc, test_tls_errors);
	tcase_add_test(tc, test_net_lists);
	tcase_add_test(tc, test_listen);
	tcase_add_test(tc, test_sasl);
	tcase_add_test(tc, test_frames);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	make_cert();
	SRunner *sr = srunner_create(net_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_cert();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
