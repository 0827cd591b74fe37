/*
 * mx_internal.h - the parts of MX resolution shared by the synchronous
 * resolver (mx.c: `probe`, `send`) and the asynchronous one driven by
 * libevent (src/delivery/mx_async.c: the delivery agent), so the answer
 * processing (null MX, implicit MX, preference order, shuffling among equal
 * preferences, address lists) exists once. RFC 5321 5.1, RFC 7505.
 */
#ifndef SMTPKIT_CLIENT_MX_INTERNAL_H
#define SMTPKIT_CLIENT_MX_INTERNAL_H

#include <ares.h>
#include <stdint.h>

#include "smtpkit/mx.h"

#define SK_MX_QTYPE 15 /* RFC 1035 3.2.2 */
#define SK_DNS_CLASS_IN 1
#define SK_DNS_TRIES 2

/* A c-ares channel for `servers` (NULL: the system's /etc/resolv.conf;
 * else "IP[:PORT],...", then no hosts file and no search list), with a
 * per-try timeout; sock_cb may be NULL (polled use). 0, or -1 with err. */
int sk_ares_channel_new(ares_channel *ch, const char *servers, int timeout_ms,
                        ares_sock_state_cb sock_cb, void *sock_arg, char *err, size_t errlen);

/* A c-ares status as an sk_dns_status. */
sk_dns_status sk_dns_from_ares(int ares_status);

/* The whole MX answer processing: c-ares' status and raw answer for an MX
 * query of `domain` -> the list to try. NXDOMAIN, SERVFAIL and timeouts
 * are returned as they are; no MX data means the implicit MX (the domain
 * itself, preference -1, implicit = 1, SK_DNS_OK); a single "." MX is
 * SK_DNS_NULLMX (RFC 7505); otherwise the hosts sorted by preference, ties
 * by name, or shuffled within each preference with SK_MX_SHUFFLE. */
sk_dns_status sk_mx_from_answer(int ares_status, const unsigned char *abuf, int alen,
                                const char *domain, int flags, sk_mx_list *out);

/* Sort by preference (ties by name); with `shuffle` put each run of equal
 * preference in random order, drawing from rnd(arg) (uniform 32-bit). */
void sk_mx_order(sk_mx_list *l, int shuffle, uint32_t (*rnd)(void *arg), void *arg);

/* Add one socket address to out[*n] (max entries) with `port`, unless it
 * is already there or not IPv4/IPv6. */
void sk_addr_list_add(sk_addr *out, size_t max, size_t *n, const struct sockaddr *sa, socklen_t len,
                      int port);

/* An IP literal as an address with `port`: 1, or 0 when host is a name. */
int sk_addr_from_literal(const char *host, int port, sk_addr *out);

#endif
