/*
 * control_socket.h - where the queue control socket lives
 * (<relay_queue>/control) and the client side of its one-line protocol
 * (control_line.h): connect, send one request, read one answer. Used by
 * `smtpkit queue`; the server side is server/queue_control.c.
 */
#ifndef SMTPKIT_QUEUE_CONTROL_SOCKET_H
#define SMTPKIT_QUEUE_CONTROL_SOCKET_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SK_CONTROL_SOCKET_NAME "control"
#define SK_CONTROL_TIMEOUT_MS 10000 /* a request's whole exchange, each side */

/* The address of `name` in the directory `dir`: "<dir>/<name>" when it
 * fits in sun_path, else "/proc/self/fd/<dirfd>/<name>" (Linux resolves
 * it through the open directory), which needs dirfd >= 0. 0 or -1
 * (ENAMETOOLONG). */
int sk_control_sockaddr(const char *dir, int dirfd, const char *name, struct sockaddr_un *sa,
                        socklen_t *salen);

/* Send `line` (a request, LF ended) to the control socket under the queue
 * directory `root` and read the answer into reply (without its line end).
 * Returns 1 for "OK", 0 for "ERR" (reply holds the text after the word);
 * -1 when no server listens (errno ENOENT: no socket; ECONNREFUSED: a
 * socket left by a server that is gone); -2 on any other failure (reply
 * says why: permission, timeout, a garbled answer). */
int sk_control_request(const char *root, const char *line, char *reply, size_t cap, int timeout_ms);

/* Whether a server listens on the control socket under root: 1 yes, 0 no
 * (no socket, or refused), -1 cannot tell (errno: EACCES...). Connects
 * and closes without a request. */
int sk_control_probe(const char *root);

#endif
