/*
 * server.h - `smtpkit serve`: the ESMTP server shell around the protocol
 * core. It owns the sockets (libevent), timers, connection limits, the
 * commit queue that makes messages durable off the event loop, privilege
 * dropping, signals (SIGTERM/SIGINT: graceful stop; SIGHUP: reload the
 * recipient tables) and logging. See smtpkit-serve(1).
 */
#ifndef SMTPKIT_SERVER_H
#define SMTPKIT_SERVER_H

#include <stddef.h>

#include "smtpkit/config.h"

typedef struct sk_server sk_server;

/* Prepare everything up to serving: log destination, recipient tables, mail
 * directories, listening sockets, privilege drop, store and commit queue.
 * Takes ownership of cfg (also on failure). NULL with a message in err. */
sk_server *sk_server_new(sk_config *cfg, char *err, size_t errlen);

/* Serve until SIGTERM or SIGINT and a graceful stop. Returns the process
 * exit status (0 after a clean stop). */
int sk_server_run(sk_server *srv);

void sk_server_free(sk_server *srv);

#endif
