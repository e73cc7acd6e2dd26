/* Listening sockets; see listen.h. */
#include "config.h"
#include "listen.h"
#include "xalloc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int parse_port(const char *s, unsigned *port_r)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return -1;
	unsigned long p = strtoul(s, NULL, 10);
	if (p == 0 || p > 65535)
		return -1;
	*port_r = (unsigned)p;
	return 0;
}

int listen_parse(const char *item, struct listen_spec *spec_r, const char **error_r)
{
	memset(spec_r, 0, sizeof(*spec_r));
	if (strncmp(item, "unix:", 5) == 0) {
		const char *path = item + 5;
		if (path[0] != '/') {
			*error_r = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(path) >= sizeof(spec_r->path)) {
			*error_r = "unix socket path too long";
			return -1;
		}
		spec_r->is_unix = true;
		memcpy(spec_r->path, path, strlen(path) + 1);
		return 0;
	}
	const char *port;
	size_t hlen;
	const char *host = item;
	if (item[0] == '[') {
		const char *close = strchr(item, ']');
		if (close == NULL || close[1] != ':') {
			*error_r = "expected [IPV6]:PORT";
			return -1;
		}
		host = item + 1;
		hlen = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = strrchr(item, ':');
		if (colon == NULL) {
			hlen = 0;
			port = item;
		} else {
			if (strchr(item, ':') != colon) {
				*error_r = "IPv6 addresses must be written [ADDRESS]:PORT";
				return -1;
			}
			hlen = (size_t)(colon - item);
			port = colon + 1;
		}
	}
	if (hlen >= sizeof(spec_r->host)) {
		*error_r = "host name too long";
		return -1;
	}
	if (parse_port(port, &spec_r->port) < 0) {
		*error_r = "bad port";
		return -1;
	}
	memcpy(spec_r->host, host, hlen);
	spec_r->host[hlen] = '\0';
	if (strcmp(spec_r->host, "*") == 0)
		spec_r->host[0] = '\0';
	return 0;
}

static char *errorf2(const char *item, const char *why)
{
	size_t n = strlen(item) + strlen(why) + 4;
	char *s = xmalloc(n);
	snprintf(s, n, "%s: %s", item, why);
	return s;
}

static void add_fd(struct listen_fd **fds, size_t *n_fds, int fd, const char *item, unsigned tag,
		   unsigned copy)
{
	*fds = xreallocarray(*fds, *n_fds + 1, sizeof(**fds));
	(*fds)[*n_fds].fd = fd;
	(*fds)[*n_fds].name = xstrdup(item);
	(*fds)[*n_fds].tag = tag;
	(*fds)[*n_fds].copy = copy;
	(*n_fds)++;
}

static int open_unix(const struct listen_spec *spec, const char *item, int backlog, int *fd_r,
		     char **error_r)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = errorf2(item, strerror(errno));
		return -1;
	}
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, spec->path, strlen(spec->path) + 1);
	struct stat st;
	if (lstat(spec->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* Remove a stale socket, but not one somebody is listening on. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			close(fd);
			*error_r = errorf2(item, "Address already in use");
			return -1;
		}
		if (probe >= 0)
			close(probe);
		(void)unlink(spec->path);
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(spec->path, 0666) < 0 || listen(fd, backlog) < 0) {
		*error_r = errorf2(item, strerror(errno));
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

static int open_inet(const struct sockaddr *sa, socklen_t salen, const char *item, int backlog,
		     bool reuseport, int *fd_r, char **error_r)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = errorf2(item, strerror(errno));
		return -1;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		*error_r = errorf2(item, strerror(errno));
		close(fd);
		return -1;
	}
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, salen) < 0 || listen(fd, backlog) < 0) {
		*error_r = errorf2(item, strerror(errno));
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

int listen_open_list(const char *list, unsigned tag, int backlog, struct listen_fd **fds,
		     size_t *n_fds, char **error_r)
{
	return listen_open_list_copies(list, tag, backlog, 0, fds, n_fds, error_r);
}

int listen_open_list_copies(const char *list, unsigned tag, int backlog, unsigned copies,
			    struct listen_fd **fds, size_t *n_fds, char **error_r)
{
	char *copy = xstrdup(list != NULL ? list : "");
	char *save = NULL;
	int ret = 0;
	for (char *item = strtok_r(copy, ", \t", &save); item != NULL && ret == 0;
	     item = strtok_r(NULL, ", \t", &save)) {
		struct listen_spec spec;
		const char *why;
		if (listen_parse(item, &spec, &why) < 0) {
			*error_r = errorf2(item, why);
			ret = -1;
			break;
		}
		int fd;
		if (spec.is_unix) {
			if (open_unix(&spec, item, backlog, &fd, error_r) < 0) {
				ret = -1;
				break;
			}
			add_fd(fds, n_fds, fd, item, tag, LISTEN_SHARED);
			continue;
		}
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		char port[8];
		snprintf(port, sizeof(port), "%u", spec.port);
		int gai = getaddrinfo(spec.host[0] ? spec.host : NULL, port, &hints, &res);
		if (gai != 0) {
			*error_r = errorf2(item, gai_strerror(gai));
			ret = -1;
			break;
		}
		for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
			if (spec.host[0] == '\0' && ai->ai_family != AF_INET)
				continue; /* "PORT" alone: IPv4 any; list [::]:PORT for IPv6 */
			for (unsigned k = 0; k < (copies ? copies : 1) && ret == 0; k++) {
				if (open_inet(ai->ai_addr, ai->ai_addrlen, item, backlog, copies > 0,
					      &fd, error_r) < 0) {
					ret = -1;
					break;
				}
				add_fd(fds, n_fds, fd, item, tag, copies ? k : LISTEN_SHARED);
			}
			if (ret < 0)
				break;
		}
		freeaddrinfo(res);
	}
	free(copy);
	return ret;
}

void listen_close_all(struct listen_fd **fds, size_t *n_fds, bool unlink_unix)
{
	for (size_t i = 0; i < *n_fds; i++) {
		struct listen_fd *l = &(*fds)[i];
		if (l->fd >= 0)
			close(l->fd);
		if (unlink_unix && strncmp(l->name, "unix:", 5) == 0)
			(void)unlink(l->name + 5);
		free(l->name);
	}
	free(*fds);
	*fds = NULL;
	*n_fds = 0;
}

int listen_accept(int listen_fd, int *fd_r, struct net_addr *peer_r, const char **error_r)
{
	memset(peer_r, 0, sizeof(*peer_r));
	peer_r->len = sizeof(peer_r->ss);
	int fd = accept4(listen_fd, (struct sockaddr *)&peer_r->ss, &peer_r->len,
			 SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0) {
		*fd_r = fd;
		return 1;
	}
	switch (errno) {
	case EAGAIN: /* == EWOULDBLOCK on Linux */
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
		return 0;
	default:
		*error_r = strerror(errno);
		return -1;
	}
}
