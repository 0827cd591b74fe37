/*
 * mx_async.h - non-blocking MX resolution for the delivery agent, which
 * runs inside the server's libevent loop: c-ares' sockets and timeouts are
 * driven by libevent events, so a slow or dead DNS server never stalls the
 * loop. One look-up resolves a domain's MX records (RFC 5321 5.1, RFC 7505)
 * and then the A and AAAA records of every MX host at once, and hands back
 * one sk_mx_route (mx_route.h): hosts in preference order (random order
 * among equal preferences), each with all its addresses.
 *
 * The answer processing is the synchronous resolver's (mx.c, used by
 * `probe` and `send`): both call the same code in src/client/mx_answer.c.
 *
 * Plugging it in: one sk_mx_async per event loop, made with the
 * `delivery.dns_servers` setting (NULL: /etc/resolv.conf) and freed after
 * the loop stops; for a destination call sk_mx_async_lookup() and act in
 * the callback (sk_mx_route_strip_self, sk_mx_route_verdict). A look-up
 * can be cancelled (the callback then never runs).
 */
#ifndef SMTPKIT_MX_ASYNC_H
#define SMTPKIT_MX_ASYNC_H

#include <stddef.h>

#include "smtpkit/mx_route.h"

struct event_base;
typedef struct sk_mx_async sk_mx_async;
typedef struct sk_mx_lookup sk_mx_lookup;

/* The route is valid only during the call (copy what you keep). The
 * callback must not free the resolver. */
typedef void (*sk_mx_done_fn)(void *arg, const sk_mx_route *route);

/* A resolver on `base`. servers: NULL for the system resolver, or
 * "IP[:PORT],..." (tests: a private dnsmasq). timeout_ms per try (<= 0:
 * 5000), two tries. NULL with err filled on failure. */
sk_mx_async *sk_mx_async_new(struct event_base *base, const char *servers, int timeout_ms,
                             char *err, size_t errlen);
/* Cancels every look-up still running (their callbacks never run). */
void sk_mx_async_free(sk_mx_async *r);

/* Resolve `domain`; `port` is put into every address (delivery.smtp_port,
 * 25); flags: SK_MX_SHUFFLE (random order among equal preferences, what a
 * sender should do). The callback runs later, from the event loop (never
 * from inside this call). NULL when out of memory or the name is empty or
 * longer than 253 octets. */
sk_mx_lookup *sk_mx_async_lookup(sk_mx_async *r, const char *domain, int port, int flags,
                                 sk_mx_done_fn done, void *arg);
/* Forget a look-up: its callback will not run. */
void sk_mx_async_cancel(sk_mx_lookup *l);
/* Look-ups whose callback has not run yet (for tests and shutdown). */
size_t sk_mx_async_pending(const sk_mx_async *r);

#endif
