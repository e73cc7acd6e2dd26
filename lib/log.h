/* Logging for the daemons: one line per event of key=value fields (STYLE 10),
 * to stderr (the default, for running in the foreground or under systemd) or
 * to syslog. Library code does not log; it returns errors to its caller.
 * Never pass passwords, message bodies or unsanitised client bytes: use
 * str_append_sanitized() or log_sanitize() first. */
#ifndef CONGVU_LOG_H
#define CONGVU_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERR };

/* ident: the program name. to_syslog: use syslog(3) instead of stderr. */
void log_init(const char *ident, bool to_syslog);
void log_set_debug(bool on);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)

/* Prints "IDENT: fatal: MESSAGE" and exits 1: for start-up errors and a
 * broken environment (STYLE 9). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Copies at most max bytes of data into buf (size bufsize) with control and
 * non-ASCII bytes replaced by '?', quotes and backslashes escaped; returns buf. */
const char *log_sanitize(char *buf, size_t bufsize, const void *data, size_t len);

#endif
