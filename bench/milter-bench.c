/* milter-bench: the MTA side of the milter protocol (version 6), driving any
 * milter with the messages given, from several connections at once, and
 * printing throughput and per-message latency.
 *
 *   milter-bench -s inet:PORT@HOST|unix:/PATH [-c CONNECTIONS] [-m PER_CONN]
 *                [-n MESSAGES] [-l LABEL] FILE...
 *
 * Each connection sends connect, HELO, then per message MAIL, RCPT, the
 * header fields, end of header, the body in 64 KB chunks and end of message;
 * the latency of a message is from MAIL to the final reply. Files are read
 * into memory first; with -n larger than the number of files they repeat.
 * Output: one line "LABEL messages=N seconds=S msgs_per_s=R p50_ms=A
 * p99_ms=B max_ms=C accepted=X rejected=Y tempfailed=Z errors=E". */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct msg {
	char *data;
	size_t len;
};

static struct msg *msgs;
static size_t n_msgs, total;
static const char *spec;
static size_t per_conn = 10;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t next_msg;
static double *latencies;
static size_t n_lat, accepted, rejected, tempfailed, errors;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_spec(void)
{
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", spec + 5);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		return -1;
	}
	const char *p = strchr(spec, ':');
	const char *at = strchr(spec, '@');
	if (p == NULL || at == NULL)
		return -1;
	char port[16], host[256];
	snprintf(port, sizeof(port), "%.*s", (int)(at - p - 1), p + 1);
	snprintf(host, sizeof(host), "%s", at + 1);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One packet: length (command included), command, data. */
static int send_cmd(int fd, char cmd, const void *data, size_t len)
{
	unsigned char hdr[5];
	uint32_t l = htonl((uint32_t)len + 1);
	memcpy(hdr, &l, 4);
	hdr[4] = (unsigned char)cmd;
	if (len == 0)
		return write_all(fd, hdr, 5);
	/* Small packets in one write: fewer segments on loopback. */
	if (len < 4096) {
		char buf[4096 + 5];
		memcpy(buf, hdr, 5);
		memcpy(buf + 5, data, len);
		return write_all(fd, buf, len + 5);
	}
	if (write_all(fd, hdr, 5) < 0)
		return -1;
	return write_all(fd, data, len);
}

/* Reads one reply; returns its command letter, or -1. */
static int read_reply(int fd, char *buf, size_t size, size_t *len_r)
{
	uint32_t l;
	if (read_all(fd, &l, 4) < 0)
		return -1;
	l = ntohl(l);
	if (l == 0 || l > 1024 * 1024)
		return -1;
	char cmd;
	if (read_all(fd, &cmd, 1) < 0)
		return -1;
	size_t n = l - 1;
	size_t keep = n < size ? n : size;
	if (read_all(fd, buf, keep) < 0)
		return -1;
	for (size_t rest = n - keep; rest > 0;) {
		char junk[4096];
		size_t k = rest < sizeof(junk) ? rest : sizeof(junk);
		if (read_all(fd, junk, k) < 0)
			return -1;
		rest -= k;
	}
	*len_r = keep;
	return (unsigned char)cmd;
}

/* Sends a command and waits for the milter's answer to it: 'c' to go on,
 * a final verdict, or an error. End-of-message replies are preceded by
 * header changes, which are skipped. */
static int step(int fd, char cmd, const void *data, size_t len)
{
	if (send_cmd(fd, cmd, data, len) < 0)
		return -1;
	char buf[1024];
	size_t n;
	for (;;) {
		int r = read_reply(fd, buf, sizeof(buf), &n);
		if (r < 0)
			return -1;
		if (strchr("hmib+-2eqp", r) != NULL)
			continue;          /* modification actions, progress */
		return r == 's' ? 'c' : r; /* skip: the rest of the body is not wanted */
	}
}

/* Protocol steps the milter answers without a reply (SMFIP_NR_*). */
#define NR_CONN 0x1000u
#define NR_HELO 0x2000u
#define NR_MAIL 0x4000u
#define NR_RCPT 0x8000u
#define NR_HDR 0x80u
#define NR_EOH 0x40000u
#define NR_BODY 0x80000u
#define NR_ALL (NR_CONN | NR_HELO | NR_MAIL | NR_RCPT | NR_HDR | NR_EOH | NR_BODY)
static __thread uint32_t no_reply;

/* step(), or only the send when the milter asked for no reply. */
static int step_nr(int fd, char cmd, const void *data, size_t len, uint32_t nr_flag)
{
	if (no_reply & nr_flag)
		return send_cmd(fd, cmd, data, len) < 0 ? -1 : 'c';
	return step(fd, cmd, data, len);
}

static void append(char **p, size_t *len, size_t *cap, const void *data, size_t n)
{
	if (*len + n > *cap) {
		*cap = (*len + n) * 2;
		*p = realloc(*p, *cap);
		if (*p == NULL)
			abort();
	}
	memcpy(*p + *len, data, n);
	*len += n;
}

/* Splits the header block into fields (name, value without the leading
 * space, folded lines kept) and sends them; returns the body offset. */
static int send_headers(int fd, const char *d, size_t len, size_t *body_r)
{
	size_t i = 0;
	/* An mbox "From " line is not a header field. */
	if (len > 5 && memcmp(d, "From ", 5) == 0) {
		const char *nl = memchr(d, '\n', len);
		i = nl ? (size_t)(nl - d) + 1 : len;
	}
	char *buf = NULL;
	size_t bl = 0, bc = 0;
	while (i < len) {
		if (d[i] == '\n' || (d[i] == '\r' && i + 1 < len && d[i + 1] == '\n')) {
			i += d[i] == '\r' ? 2 : 1;
			break;
		}
		size_t start = i;
		/* the field ends at a line end not followed by whitespace */
		size_t end = i;
		for (;;) {
			const char *nl = memchr(d + end, '\n', len - end);
			size_t e = nl ? (size_t)(nl - d) : len;
			end = e + 1;
			if (end >= len || (d[end] != ' ' && d[end] != '\t'))
				break;
		}
		size_t flen = (end > len ? len : end) - start;
		i = end > len ? len : end;
		const char *colon = memchr(d + start, ':', flen);
		if (colon == NULL)
			continue;
		size_t nlen = (size_t)(colon - (d + start));
		const char *v = colon + 1;
		size_t vlen = flen - nlen - 1;
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == '\n' || v[vlen - 1] == '\r'))
			vlen--;
		bl = 0;
		append(&buf, &bl, &bc, d + start, nlen);
		append(&buf, &bl, &bc, "", 1);
		append(&buf, &bl, &bc, v, vlen);
		append(&buf, &bl, &bc, "", 1);
		if (step_nr(fd, 'L', buf, bl, NR_HDR) != 'c') {
			free(buf);
			return -1;
		}
	}
	free(buf);
	*body_r = i;
	return 0;
}

static int one_message(int fd, const struct msg *m, double *lat_r, int *verdict_r)
{
	double t0 = now();
	static const char macro_mail[] = "Mi\0QUEUEID\0";
	if (send_cmd(fd, 'D', macro_mail, sizeof(macro_mail) - 1) < 0)
		return -1;
	static const char from[] = "<sender@example.net>";
	if (step_nr(fd, 'M', from, sizeof(from), NR_MAIL) != 'c')
		return -1;
	static const char rcpt[] = "<staff@lamdong.gov.vn>";
	if (step_nr(fd, 'R', rcpt, sizeof(rcpt), NR_RCPT) != 'c')
		return -1;
	size_t body;
	if (send_headers(fd, m->data, m->len, &body) < 0)
		return -1;
	if (step_nr(fd, 'N', NULL, 0, NR_EOH) != 'c')
		return -1;
	for (size_t off = body; off < m->len; off += 65535) {
		size_t n = m->len - off < 65535 ? m->len - off : 65535;
		int r = step_nr(fd, 'B', m->data + off, n, NR_BODY);
		if (r != 'c')
			return r < 0 ? -1 : (*verdict_r = r, *lat_r = now() - t0, 1);
	}
	int r = step(fd, 'E', NULL, 0);
	if (r < 0)
		return -1;
	*verdict_r = r;
	*lat_r = now() - t0;
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		size_t first = next_msg;
		size_t n = total - first < per_conn ? total - first : per_conn;
		next_msg += n;
		pthread_mutex_unlock(&lock);
		if (n == 0)
			return NULL;
		int fd = connect_spec();
		bool ok = fd >= 0;
		if (ok) {
			/* version 6, all actions, no protocol steps skipped */
			uint32_t neg[3] = {htonl(6), htonl(0x1ff), htonl(0)};
			char buf[256];
			size_t len;
			ok = send_cmd(fd, 'O', neg, sizeof(neg)) == 0 &&
			     read_reply(fd, buf, sizeof(buf), &len) == 'O';
			static const char conn[] = "client.example\0"
			                           "4\0\0"
			                           "127.0.0.1";
			char c[sizeof(conn)];
			memcpy(c, conn, sizeof(conn));
			uint16_t port = htons(25);
			memcpy(c + 16, &port, 2);
			ok = ok && step_nr(fd, 'C', c, sizeof(c), NR_CONN) == 'c';
			static const char helo[] = "client.example";
			ok = ok && step_nr(fd, 'H', helo, sizeof(helo), NR_HELO) == 'c';
		}
		for (size_t i = 0; i < n; i++) {
			double lat = 0;
			int verdict = 0;
			int r =
			    ok ? one_message(fd, &msgs[(first + i) % n_msgs], &lat, &verdict) : -1;
			pthread_mutex_lock(&lock);
			if (r < 0) {
				errors++;
				ok = false;
			} else {
				latencies[n_lat++] = lat;
				if (verdict == 'c' || verdict == 'a')
					accepted++;
				else if (verdict == 't')
					tempfailed++;
				else
					rejected++; /* 'r', 'y' (a reply code), 'd' */
			}
			pthread_mutex_unlock(&lock);
			/* After a reject the transaction is over; reset for the next. */
			if (ok && r == 1)
				ok = send_cmd(fd, 'A', NULL, 0) == 0;
		}
		if (fd >= 0) {
			send_cmd(fd, 'Q', NULL, 0);
			close(fd);
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void load(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "milter-bench: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	struct msg m = {malloc((size_t)st.st_size + 1), (size_t)st.st_size};
	if (m.data == NULL || read_all(fd, m.data, m.len) < 0) {
		fprintf(stderr, "milter-bench: %s: read error\n", path);
		exit(1);
	}
	close(fd);
	msgs = realloc(msgs, (n_msgs + 1) * sizeof(*msgs));
	if (msgs == NULL)
		abort();
	msgs[n_msgs++] = m;
}

int main(int argc, char **argv)
{
	int conns = 4, opt;
	const char *label = "milter";
	while ((opt = getopt(argc, argv, "s:c:m:n:l:")) != -1) {
		switch (opt) {
		case 's':
			spec = optarg;
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 'm':
			per_conn = (size_t)atol(optarg);
			break;
		case 'n':
			total = (size_t)atol(optarg);
			break;
		case 'l':
			label = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (spec == NULL || optind >= argc || conns < 1 || conns > 1000 || per_conn < 1)
		goto usage;
	for (int i = optind; i < argc; i++)
		load(argv[i]);
	if (total == 0)
		total = n_msgs;
	latencies = calloc(total, sizeof(*latencies));
	pthread_t *tids = calloc((size_t)conns, sizeof(*tids));
	if (latencies == NULL || tids == NULL)
		abort();
	double t0 = now();
	for (int i = 0; i < conns; i++)
		pthread_create(&tids[i], NULL, worker, NULL);
	for (int i = 0; i < conns; i++)
		pthread_join(tids[i], NULL);
	double secs = now() - t0;
	qsort(latencies, n_lat, sizeof(*latencies), cmp_double);
	double p50 = n_lat ? latencies[n_lat / 2] : 0,
	       p99 = n_lat ? latencies[n_lat * 99 / 100] : 0;
	double mx = n_lat ? latencies[n_lat - 1] : 0;
	printf("%s messages=%zu seconds=%.3f msgs_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "accepted=%zu rejected=%zu tempfailed=%zu errors=%zu\n",
	       label, n_lat, secs, secs > 0 ? (double)n_lat / secs : 0, p50 * 1000, p99 * 1000,
	       mx * 1000, accepted, rejected, tempfailed, errors);
	return errors == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: milter-bench -s SPEC [-c CONNECTIONS] [-m PER_CONN] [-n MESSAGES] "
	                "[-l LABEL] FILE...\n");
	return 2;
}
