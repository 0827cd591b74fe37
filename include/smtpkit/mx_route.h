/*
 * mx_route.h - where the delivery agent sends mail for one domain: every
 * MX host in the order to try, each with all its addresses (IPv6 and
 * IPv4), and what to do when there is nowhere to go (RFC 5321 5.1,
 * RFC 7505, RFC 3463 codes). Pure functions; the route itself is filled by
 * the asynchronous resolver (mx_async.h) or by hand in tests.
 *
 * Plugging it in (the delivery agent): resolve with sk_mx_async_lookup();
 * in its callback call sk_mx_route_strip_self() with the server's listening
 * addresses (and sk_local_addrs() for wildcard listeners), then
 * sk_mx_route_verdict(): DELIVER means try hosts[0..n) in order and each
 * host's addresses in order, moving on after a 4xx, a timeout, a refused
 * or dropped connection (docs/DELIVERY.md); DEFER and BOUNCE carry the
 * enhanced status code and the words for the DSN / envelope record.
 */
#ifndef SMTPKIT_MX_ROUTE_H
#define SMTPKIT_MX_ROUTE_H

#include <stddef.h>

#include "smtpkit/mx.h"

typedef struct sk_mx_route_host {
    char name[256];
    int preference;            /* -1: the implicit MX (the domain's own A/AAAA) */
    sk_dns_status addr_status; /* of its A/AAAA look-up */
    size_t naddrs;
    sk_addr addrs[SK_ADDRS_MAX]; /* with the SMTP port set */
} sk_mx_route_host;

typedef struct sk_mx_route {
    char domain[256];
    sk_dns_status status; /* of the MX look-up (implicit MX counts as OK) */
    int implicit;         /* no MX record: hosts[0] is the domain itself */
    size_t n;
    sk_mx_route_host hosts[SK_MX_MAX];
} sk_mx_route;

typedef enum sk_route_action {
    SK_ROUTE_DELIVER, /* at least one address to try */
    SK_ROUTE_DEFER,   /* a temporary DNS failure: try again later (4.4.3) */
    SK_ROUTE_BOUNCE,  /* nowhere to deliver, for good */
} sk_route_action;

typedef struct sk_route_verdict {
    sk_route_action action;
    const char *status; /* RFC 3463 code for the DSN and the log: "5.1.10", ... */
    const char *why;    /* plain words, for the DSN's Diagnostic-Code */
} sk_route_verdict;

/* What the route says:
 *   null MX (RFC 7505)                      -> bounce 5.1.10
 *   NXDOMAIN                                -> bounce 5.1.2
 *   SERVFAIL, timeout, other DNS errors     -> defer  4.4.3
 *   no MX and no A/AAAA for the domain      -> bounce 5.1.2
 *   MX hosts, none with an address, at least
 *     one of them for a temporary reason    -> defer  4.4.3
 *   MX hosts, none with any address         -> bounce 5.4.4
 *   no host left after sk_mx_route_strip_self -> bounce 5.4.6 (loop)
 *   otherwise                               -> deliver */
sk_route_verdict sk_mx_route_verdict(const sk_mx_route *r);

/* 1 when `a` (address and port) is one the server listens on: an exact
 * listener, or a wildcard listener (0.0.0.0, ::) of the same port and
 * family while `a` is one of the host's own addresses (`local`, e.g. from
 * sk_local_addrs(); any 127.0.0.0/8 or ::1 address counts as local). An
 * IPv4-mapped IPv6 address (::ffff:192.0.2.1) is compared as IPv4. */
int sk_addr_is_self(const sk_addr *a, const sk_addr *listeners, size_t nlisteners,
                    const sk_addr *local, size_t nlocal);

/* RFC 5321 5.1: when an MX host of the route is this server itself, it and
 * every host of equal or less preference (greater value) are dropped.
 * Returns 1 when that left no host at all (the mail would loop back to
 * us: sk_mx_route_verdict() then bounces with 5.4.6), else 0. */
int sk_mx_route_strip_self(sk_mx_route *r, const sk_addr *listeners, size_t nlisteners,
                           const sk_addr *local, size_t nlocal);

/* The host's interface addresses (getifaddrs), for wildcard listeners.
 * Returns how many were put in out (at most max). */
size_t sk_local_addrs(sk_addr *out, size_t max);

#endif
