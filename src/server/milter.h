/*
 * milter.h - the milters of one client connection (Sendmail's mail filter
 * protocol as Postfix speaks it; packets in src/core/milter_codec.c): one
 * non-blocking connection per configured milter on the event loop, opened
 * when the client connects, asked at connect, HELO/EHLO, MAIL, RCPT and
 * end of message (header, body), closed with the client.
 *
 * Each step runs the listener's milters in order; the first refusal
 * (reject, tempfail, a REPLYCODE) ends the step; discard marks the
 * message; at the end of message a milter's header changes (add, insert,
 * change, delete), body replacement and quarantine mark are applied to
 * the spooled message before the next milter reads it and before the
 * commit. A milter that cannot be reached, times out or answers garbage
 * gets its default action (tempfail or accept), with one log line.
 */
#ifndef SMTPKIT_SERVER_MILTER_H
#define SMTPKIT_SERVER_MILTER_H

#include <stddef.h>
#include <sys/socket.h>

#include "smtpkit/session.h"

typedef struct sk_conn sk_conn;
typedef struct sk_milters sk_milters;

/* "inet:HOST:PORT", "inet:PORT@HOST", "inet6:[HOST]:PORT", "inet6:PORT@HOST",
 * "unix:/path" or "local:/path", HOST numeric. 0, or -1 with why. */
int sk_milter_parse_socket(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *why,
                           size_t whylen);

/* The listener's milters for c, connecting now; NULL when it has none. */
sk_milters *sk_milters_new(sk_conn *c);
/* Close every milter connection (QUIT); no callback follows. */
void sk_milters_free(sk_milters *m);

/* The client connected: the connect step. The verdict comes through
 * sk_conn_milter_connected(c, v), never from inside this call. */
void sk_milters_connect(sk_milters *m);
/* A session step (SK_POLICY_HELO, ...; policy_check's arguments). 0: no
 * milter has anything to say (go on now); 1: the verdict comes through
 * sk_conn_policy_done(c, v), never from inside this call. */
int sk_milters_step(sk_milters *m, int step, const sk_session_info *info, const char *arg);

/* conn.c */
void sk_conn_milter_connected(sk_conn *c, const sk_policy_verdict *v);
void sk_conn_policy_done(sk_conn *c, const sk_policy_verdict *v);

#endif
