/*
 * cc_bev.h - the pieces of driving the sans-I/O client core
 * (client_core.h) over a libevent bufferevent that every driver needs the
 * same way: `smtpkit bench` (bench.c) and the delivery agent
 * (delivery/attempt.c). Moving the core's output to the socket, putting
 * the TLS filter under the session after the 220 to STARTTLS (RFC 3207
 * 4.2: bytes read before the handshake are discarded), and re-arming the
 * timer only when the core starts a new wait (RFC 5321 4.5.3.2: a reply
 * must arrive whole within its timeout, however slowly it trickles).
 */
#ifndef SMTPKIT_CLIENT_CC_BEV_H
#define SMTPKIT_CLIENT_CC_BEV_H

#include <sys/time.h>

#include <openssl/ssl.h>

#include "smtpkit/client_core.h"

struct bufferevent;
struct event;
struct event_base;

/* Append the core's pending output to bev's output buffer. 0, or -1 out
 * of memory (the output stays in the core). */
int sk_cc_bev_flush(sk_client_core *c, struct bufferevent *bev);

/* After START_TLS: drop every byte read but not fed, then wrap bev in a
 * client TLS filter on ssl (taken over, also on failure), closing bev with
 * it and tolerating a peer that closes without close_notify. The caller
 * sets the callbacks and enables the new bufferevent. NULL on failure. */
struct bufferevent *sk_cc_bev_starttls(struct event_base *base, struct bufferevent *bev, SSL *ssl);

/* When the core's wait changed since *seq: remember it and arm timer for
 * `fixed` (when not NULL: one timeout for every step, e.g. a common
 * timeout) or for the wait's own limit; a wait without a limit (idle)
 * disarms it. Returns 1 when the timer was (re)armed or disarmed. */
int sk_cc_bev_arm(const sk_client_core *c, struct event *timer, unsigned long *seq,
                  const struct timeval *fixed);

#endif
