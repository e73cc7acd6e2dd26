/* Listening sockets from the listen lists of the configuration:
 * comma/space-separated HOST:PORT, [IPV6]:PORT, *:PORT, PORT alone (all
 * addresses) or unix:/PATH. The parent binds them (as root for ports below
 * 1024) before starting children, which inherit the fds and accept. */
#ifndef CONGVU_LISTEN_H
#define CONGVU_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"

struct listen_spec {
	bool is_unix;
	char host[256]; /* numeric address or name; "" for all addresses */
	unsigned port;
	char path[108]; /* unix socket path (sun_path size) */
};

/* Parses one listener item. Returns 0, or -1 with *error_r (static). */
int listen_parse(const char *item, struct listen_spec *spec_r, const char **error_r);

struct listen_fd {
	int fd;
	char *name;     /* the item as written, for logs */
	unsigned tag;   /* the caller's (e.g. which service: smtp, submission...) */
	unsigned copy;  /* listen_open_list_copies(): which copy, or LISTEN_SHARED */
};

#define LISTEN_SHARED (~0u)

/* Binds and listens on every item of list (non-blocking, close-on-exec,
 * SO_REUSEADDR; IPv6 sockets are IPV6_V6ONLY so "0.0.0.0:25, [::]:25" works;
 * a stale unix socket file is removed first and the new one made mode
 * 0666). Host names are resolved and every address bound. Appends to
 * *fds (a growing array of *n_fds entries, caller frees with
 * listen_close_all). Returns 0, or -1 with *error_r (caller frees) naming
 * the item and the reason ("0.0.0.0:25: Address already in use"). */
int listen_open_list(const char *list, unsigned tag, int backlog, struct listen_fd **fds,
		     size_t *n_fds, char **error_r);
/* The same, but every TCP item is bound `copies` times with SO_REUSEPORT
 * (entries with copy 0..copies-1), so that each of several processes
 * accepts on its own socket and the kernel spreads the connections among
 * them. Unix sockets cannot be shared that way: they are bound once, with
 * copy LISTEN_SHARED. */
int listen_open_list_copies(const char *list, unsigned tag, int backlog, unsigned copies,
			    struct listen_fd **fds, size_t *n_fds, char **error_r);
/* Closes every fd (and unlinks unix socket paths when unlink_unix) and
 * frees the array. */
void listen_close_all(struct listen_fd **fds, size_t *n_fds, bool unlink_unix);

/* Accepts one connection: returns 1 with *fd_r (non-blocking,
 * close-on-exec) and *peer_r, 0 when none is waiting (EAGAIN, or one the
 * peer aborted), -1 with *error_r (static strerror) on EMFILE and the like,
 * after which the caller should pause accepting for a moment. */
int listen_accept(int listen_fd, int *fd_r, struct net_addr *peer_r, const char **error_r);

#endif
