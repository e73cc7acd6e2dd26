#include "config.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "congvu";
static bool log_syslog;
static bool log_debug_on;

void log_init(const char *ident, bool to_syslog)
{
	log_ident = ident;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_debug(bool on)
{
	log_debug_on = on;
}

static const char *level_name[] = { "debug", "info", "warn", "error" };

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level == LOG_LEVEL_DEBUG && !log_debug_on)
		return;
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (log_syslog) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
		syslog(prio[level], "level=%s %s", level_name[level], line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[40];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One write per line so lines of several processes do not interleave. */
	char out[2300];
	int m = snprintf(out, sizeof(out), "%s.%03ldZ %s[%ld]: level=%s %s\n", stamp,
	                 ts.tv_nsec / 1000000, log_ident, (long)getpid(), level_name[level], line);
	if (m < 0)
		return;
	if ((size_t)m >= sizeof(out)) {
		m = sizeof(out) - 1;
		out[m - 1] = '\n';
	}
	(void)!write(STDERR_FILENO, out, (size_t)m);
}

void fatal(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(LOG_CRIT, "level=fatal %s", line);
	fprintf(stderr, "%s: fatal: %s\n", log_ident, line);
	exit(1);
}

const char *log_sanitize(char *buf, size_t bufsize, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t o = 0;
	if (bufsize == 0)
		return buf;
	for (size_t i = 0; i < len && o + 4 < bufsize; i++) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\')
			buf[o++] = '\\';
		buf[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	buf[o] = '\0';
	return buf;
}
