/* bench/smtp-load: a lean SMTP load generator. N concurrent sessions on one
 * epoll loop, each a single connection that carries message after message
 * as an MTA with connection reuse does: EHLO once, then per message MAIL,
 * RCPT... and DATA (sent as one group when the server offers PIPELINING,
 * RFC 2920, otherwise one command at a time), the content with the final
 * "." in one write, and the reply to it. Every reply code is checked; a
 * message counts as delivered only when every reply of its transaction was
 * the expected one.
 *
 * Prints one line:
 *   messages=N delivered=N failed=N seconds=S rate=R p50_ms=.. p90_ms=..
 *   p99_ms=.. max_ms=.. pipelining=0|1
 * (latency: from sending MAIL to the reply after the data). Exit status 0
 * when every message was delivered, 1 otherwise, 2 on usage errors.
 *
 * usage: smtp-load [-s sessions] [-m messages] [-r recipients] [-l bytes]
 *                  [-f from] [-t to] [-T timeout_s] HOST:PORT
 * With -r N > 1 the recipients are 1<local>@<domain> .. N<local>@<domain>
 * where -t gives <local>@<domain> (smtp-source's convention). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 1000
#define IN_CAP 8192

enum state {
	ST_GREETING, /* 220 */
	ST_EHLO,     /* 250 (multi-line) */
	ST_ENVELOPE, /* MAIL 250, RCPT 250 x n, DATA 354 */
	ST_DOT,      /* 250 after the content */
	ST_RSET,     /* 250 after a refused envelope */
	ST_QUIT,     /* 221 */
	ST_DONE,
};

struct session {
	int fd;
	enum state st;
	unsigned expect;    /* replies still due in this state */
	unsigned sent_cmds; /* envelope commands sent (no pipelining) */
	bool bad;           /* a reply of the current transaction was wrong */
	bool pipelining;
	bool in_msg; /* a message is in flight */
	uint64_t msg_no;
	struct timespec t0;
	char in[IN_CAP];
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
};

static unsigned n_sessions = 10, n_rcpts = 1;
static uint64_t n_messages = 1000, next_msg, delivered, failed;
static size_t msg_size = 10240;
static const char *from = "bench@example.org", *to = "demo@lamdong.gov.vn";
static char **rcpt_addr;
static char *body; /* the content after the headers, dot-stuffed, ends CRLF */
static size_t body_len;
static double *lat; /* milliseconds, per delivered message */
static uint64_t n_lat;
static int epfd;
static unsigned alive;
static bool any_pipelining;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *msg)
{
	fprintf(stderr, "smtp-load: %s\n", msg);
	exit(2);
}

static void *xrealloc_(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("out of memory");
	return p;
}

static void out_add(struct session *s, const void *data, size_t len)
{
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + len > s->out_cap) {
		s->out_cap = (s->out_len + len) * 2;
		s->out = xrealloc_(s->out, s->out_cap);
	}
	memcpy(s->out + s->out_len, data, len);
	s->out_len += len;
}

static void out_printf(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_printf(struct session *s, const char *fmt, ...)
{
	char buf[LINE_MAX_LEN + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		die("command too long");
	out_add(s, buf, (size_t)n);
}

static void flush_out(struct session *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return; /* EPOLLOUT (edge) resumes */
			return;         /* the read side reports the failure */
		}
		s->out_off += (size_t)n;
	}
}

/* The content: headers unique to the message, the shared body, the end. */
static void add_message(struct session *s)
{
	char hdr[1024];
	int n = snprintf(hdr, sizeof(hdr),
	                 "From: <%s>\r\nTo: <%s>\r\nSubject: smtp-load message %llu\r\n"
	                 "Message-ID: <smtp-load.%d.%llu@bench.test>\r\n"
	                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
	                 from, rcpt_addr[0], (unsigned long long)s->msg_no, (int)getpid(),
	                 (unsigned long long)s->msg_no);
	out_add(s, hdr, (size_t)n);
	out_add(s, body, body_len);
	out_add(s, ".\r\n", 3);
}

static void send_envelope_cmd(struct session *s, unsigned i)
{
	if (i == 0)
		out_printf(s, "MAIL FROM:<%s> SIZE=%zu\r\n", from, msg_size);
	else if (i <= n_rcpts)
		out_printf(s, "RCPT TO:<%s>\r\n", rcpt_addr[i - 1]);
	else
		out_add(s, "DATA\r\n", 6);
}

static void finish_session(struct session *s)
{
	if (s->in_msg) {
		failed++;
		s->in_msg = false;
	}
	if (s->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
		s->fd = -1;
	}
	s->st = ST_DONE;
	alive--;
}

/* The next message, or QUIT when all are taken. */
static void start_message(struct session *s)
{
	if (next_msg >= n_messages) {
		out_add(s, "QUIT\r\n", 6);
		s->st = ST_QUIT;
		s->expect = 1;
		return;
	}
	s->msg_no = next_msg++;
	s->in_msg = true;
	s->bad = false;
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	s->st = ST_ENVELOPE;
	s->expect = n_rcpts + 2;
	if (s->pipelining) {
		for (unsigned i = 0; i < n_rcpts + 2; i++)
			send_envelope_cmd(s, i);
		s->sent_cmds = n_rcpts + 2;
	} else {
		send_envelope_cmd(s, 0);
		s->sent_cmds = 1;
	}
}

static void message_done(struct session *s)
{
	s->in_msg = false;
	if (s->bad) {
		failed++;
		return;
	}
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	lat[n_lat++] =
	    (double)(t.tv_sec - s->t0.tv_sec) * 1e3 + (double)(t.tv_nsec - s->t0.tv_nsec) / 1e6;
	delivered++;
}

/* One complete reply (the code of its last line). Returns false when the
 * session is over. */
static bool on_reply(struct session *s, int code)
{
	switch (s->st) {
	case ST_GREETING:
		if (code != 220)
			return false;
		out_add(s, "EHLO smtp-load.bench.test\r\n", 27);
		s->st = ST_EHLO;
		return true;
	case ST_EHLO:
		if (code != 250)
			return false;
		start_message(s);
		return true;
	case ST_ENVELOPE: {
		unsigned idx = n_rcpts + 2 - s->expect; /* which command this answers */
		s->expect--;
		if (idx == n_rcpts + 1) {
			if (code == 354) {
				add_message(s);
				s->st = ST_DOT;
				s->expect = 1;
			} else {
				s->bad = true;
				out_add(s, "RSET\r\n", 6);
				s->st = ST_RSET;
				s->expect = 1;
			}
			return true;
		}
		if (code != 250)
			s->bad = true;
		if (!s->pipelining) {
			/* one command at a time; a refused MAIL ends the transaction */
			if (idx == 0 && code != 250) {
				out_add(s, "RSET\r\n", 6);
				s->st = ST_RSET;
				s->expect = 1;
				return true;
			}
			send_envelope_cmd(s, s->sent_cmds++);
		}
		return true;
	}
	case ST_DOT:
		if (code != 250)
			s->bad = true;
		message_done(s);
		start_message(s);
		return true;
	case ST_RSET:
		message_done(s);
		if (code != 250)
			return false;
		start_message(s);
		return true;
	case ST_QUIT:
		s->st = ST_DONE;
		return false;
	case ST_DONE:
		return false;
	}
	return false;
}

static void on_readable(struct session *s)
{
	for (;;) {
		ssize_t n = recv(s->fd, s->in + s->in_len, IN_CAP - s->in_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			if (s->st != ST_DONE)
				fprintf(stderr, "smtp-load: connection closed in state %d\n",
				        s->st);
			finish_session(s);
			return;
		}
		s->in_len += (size_t)n;
		size_t off = 0;
		for (;;) {
			char *nl = memchr(s->in + off, '\n', s->in_len - off);
			if (nl == NULL)
				break;
			char *line = s->in + off;
			size_t len = (size_t)(nl - line) + 1;
			off += len;
			if (len < 5 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
			    line[1] > '9' || line[2] < '0' || line[2] > '9' ||
			    (line[3] != ' ' && line[3] != '-' && line[3] != '\r')) {
				fprintf(stderr, "smtp-load: malformed reply line\n");
				finish_session(s);
				return;
			}
			int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
			if (s->st == ST_EHLO && len >= 14 &&
			    strncasecmp(line + 4, "PIPELINING", 10) == 0)
				s->pipelining = any_pipelining = true;
			if (line[3] == '-')
				continue;
			if (code >= 400 && s->st != ST_QUIT) {
				char msg[128];
				size_t m = len < sizeof(msg) ? len : sizeof(msg) - 1;
				memcpy(msg, line, m);
				msg[m] = '\0';
				msg[strcspn(msg, "\r\n")] = '\0';
				fprintf(stderr, "smtp-load: unexpected reply: %s\n", msg);
			}
			if (!on_reply(s, code)) {
				if (s->st != ST_DONE)
					fprintf(stderr, "smtp-load: session ended by reply %d\n",
					        code);
				s->st = ST_DONE;
				finish_session(s);
				return;
			}
		}
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
		if (s->in_len == IN_CAP) {
			fprintf(stderr, "smtp-load: reply line too long\n");
			finish_session(s);
			return;
		}
	}
	flush_out(s);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	if (n_lat == 0)
		return 0;
	size_t i = (size_t)(p * (double)(n_lat - 1) + 0.5);
	return lat[i];
}

static void make_body(void)
{
	/* Text lines of up to 72 columns made of words drawn pseudo-randomly
	 * (fixed seed) from a small vocabulary: it compresses about as well
	 * as mail text (2-3 times with zstd), unlike a repeated sentence. One
	 * line starts with a dot (stuffed here, unstuffed by the server). */
	static const char *const words[] = {
	    "the",        "of",          "and",        "to",       "in",        "is",
	    "for",        "that",        "with",       "on",       "as",        "are",
	    "this",       "be",          "by",         "from",     "at",        "or",
	    "have",       "an",          "was",        "we",       "will",      "can",
	    "not",        "all",         "your",       "has",      "but",       "our",
	    "more",       "which",       "their",      "one",      "would",     "there",
	    "been",       "mail",        "server",     "message",  "report",    "meeting",
	    "province",   "department",  "office",     "schedule", "budget",    "project",
	    "attached",   "please",      "review",     "document", "update",    "request",
	    "approval",   "deadline",    "Monday",     "Tuesday",  "Friday",    "committee",
	    "district",   "citizens",    "services",   "training", "network",   "security",
	    "account",    "password",    "support",    "system",   "quarterly", "annual",
	    "regulation", "decision",    "proposal",   "contract", "invoice",   "payment",
	    "2026",       "Lam",         "Dong",       "Da",       "Lat",       "Bao",
	    "Loc",        "information", "technology", "notice",   "results",   "minutes",
	    "agenda",     "signed",      "copy",       "version",  "final",
	};
	const size_t n_words = sizeof(words) / sizeof(words[0]);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t target = msg_size > 300 ? msg_size - 300 : 64;
	body = xrealloc_(NULL, target + 128);
	body_len = 0;
	unsigned line = 0;
	while (body_len < target) {
		size_t col = 0;
		if (line == 3) {
			body[body_len++] = '.';
			body[body_len++] = '.';
			col = 2;
		}
		for (;;) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			const char *w = words[x % n_words];
			size_t wl = strlen(w);
			if (col + wl + 1 > 72)
				break;
			if (col > 0)
				body[body_len++] = ' ';
			memcpy(body + body_len, w, wl);
			body_len += wl;
			col += wl + (col > 0);
		}
		body[body_len++] = '\r';
		body[body_len++] = '\n';
		line++;
	}
}

int main(int argc, char **argv)
{
	double timeout = 600;
	int opt;
	while ((opt = getopt(argc, argv, "s:m:r:l:f:t:T:")) != -1) {
		switch (opt) {
		case 's':
			n_sessions = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			n_messages = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			n_rcpts = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			msg_size = strtoul(optarg, NULL, 10);
			break;
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'T':
			timeout = strtod(optarg, NULL);
			break;
		default:
			die("usage: smtp-load [-s sessions] [-m messages] [-r rcpts] [-l bytes] "
			    "[-f from] [-t to] [-T timeout] HOST:PORT");
		}
	}
	if (optind + 1 != argc || n_sessions == 0 || n_rcpts == 0 || n_rcpts > 1000 ||
	    n_messages == 0 || msg_size > 100 * 1024 * 1024)
		die("usage: smtp-load [-s sessions] [-m messages] [-r rcpts] [-l bytes] "
		    "[-f from] [-t to] [-T timeout] HOST:PORT");
	char host[256];
	snprintf(host, sizeof(host), "%s", argv[optind]);
	char *colon = strrchr(host, ':');
	if (colon == NULL)
		die("HOST:PORT expected");
	*colon = '\0';
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		die("HOST must be an IPv4 address");
	rcpt_addr = calloc(n_rcpts, sizeof(char *));
	if (rcpt_addr == NULL)
		die("out of memory");
	for (unsigned i = 0; i < n_rcpts; i++) {
		char a[512];
		if (n_rcpts == 1)
			snprintf(a, sizeof(a), "%s", to);
		else
			snprintf(a, sizeof(a), "%u%s", i + 1, to);
		rcpt_addr[i] = strdup(a);
	}
	make_body();
	lat = calloc(n_messages, sizeof(double));
	if (lat == NULL)
		die("out of memory");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	struct session *ss = calloc(n_sessions, sizeof(*ss));
	if (epfd < 0 || ss == NULL)
		die("cannot start");
	double start = now_s();
	for (unsigned i = 0; i < n_sessions; i++) {
		struct session *s = &ss[i];
		s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("smtp-load: connect");
			exit(1);
		}
		int one = 1;
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = s};
		epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
		s->st = ST_GREETING;
		alive++;
	}
	struct epoll_event evs[256];
	while (alive > 0) {
		double left = timeout - (now_s() - start);
		if (left <= 0) {
			fprintf(stderr, "smtp-load: timed out\n");
			break;
		}
		int n = epoll_wait(epfd, evs, 256, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			die("epoll_wait failed");
		for (int i = 0; i < n; i++) {
			struct session *s = evs[i].data.ptr;
			if (s->fd < 0)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(s);
			else if (evs[i].events & EPOLLOUT)
				flush_out(s);
		}
	}
	double elapsed = now_s() - start;
	for (unsigned i = 0; i < n_sessions; i++)
		if (ss[i].st != ST_DONE)
			finish_session(&ss[i]);
	/* messages never started count as failed */
	failed += n_messages - next_msg;
	qsort(lat, n_lat, sizeof(double), cmp_double);
	printf("messages=%llu delivered=%llu failed=%llu seconds=%.3f rate=%.1f p50_ms=%.2f "
	       "p90_ms=%.2f p99_ms=%.2f max_ms=%.2f pipelining=%d\n",
	       (unsigned long long)n_messages, (unsigned long long)delivered,
	       (unsigned long long)failed, elapsed, (double)delivered / elapsed, pct(0.5), pct(0.9),
	       pct(0.99), n_lat ? lat[n_lat - 1] : 0.0, any_pipelining ? 1 : 0);
	return failed == 0 && delivered == n_messages ? 0 : 1;
}
