/*
 * attempt.h - one delivery attempt: one message to the recipients of one
 * domain. Resolves the domain's MX hosts (mx_async.h), then tries each
 * host, each of its addresses in turn, with the client core
 * (client_core.h) over a libevent connection, until every recipient is
 * decided or no address is left (RFC 5321 5.1; reply semantics of
 * docs/DELIVERY.md 2, rcpt_result.h). Opportunistic STARTTLS (RFC 3207):
 * an unverifiable certificate still encrypts; a failed handshake is tried
 * again once in plaintext on the same address under tls_policy "may".
 *
 * The attempt changes nothing on disk: its results (one per recipient)
 * are applied to the envelope record by the agent afterwards.
 */
#ifndef SMTPKIT_DELIVERY_ATTEMPT_H
#define SMTPKIT_DELIVERY_ATTEMPT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "delivery/rcpt_result.h"
#include "smtpkit/config.h"
#include "smtpkit/mx_async.h"

struct event_base;
typedef struct sk_attempt sk_attempt;

/* Idle connections kept for the next message to the same domain (several
 * messages share a connection, RSET between, at most
 * messages_per_connection each; Postfix's connection cache). A connection
 * is parked only when its attempt ended with every recipient decided; an
 * idle one is closed after `idle_s` seconds or when the server speaks or
 * closes. */
typedef struct sk_conn_cache sk_conn_cache;
sk_conn_cache *sk_conn_cache_new(struct event_base *base, unsigned idle_s, unsigned per_domain);
/* Closes every idle connection. NULL is ignored. */
void sk_conn_cache_free(sk_conn_cache *c);
/* Idle connections now (for tests and logs). */
size_t sk_conn_cache_size(const sk_conn_cache *c);

/* What every attempt of an agent shares (kept alive by the agent). */
typedef struct sk_attempt_env {
    struct event_base *base;
    sk_mx_async *resolver;
    SSL_CTX *tls; /* client context; NULL: no STARTTLS */
    const sk_delivery_config *cfg;
    const char *helo; /* our name for EHLO */
    const sk_addr *listeners;
    size_t nlisteners;
    const sk_addr *local;
    size_t nlocal;
    sk_conn_cache *cache; /* NULL: one connection per attempt */
} sk_attempt_env;

/* The message to send: the agent keeps every pointer alive until the
 * attempt is done. */
typedef struct sk_attempt_msg {
    const char *sender; /* "" for <> */
    const char *data;   /* the message as queued (CRLF or LF lines: LF goes
                           out as CRLF) */
    size_t len;
    unsigned long long size; /* SIZE= (RFC 1870): octets with CRLF line ends */
    int body_8bit;
    int smtputf8;
} sk_attempt_msg;

/* Called once, from the loop, when the attempt has finished; the callback
 * reads the results and frees the attempt. */
typedef void (*sk_attempt_done_fn)(void *arg, sk_attempt *a);

/* Start an attempt for `domain` with n recipients (results[] filled with
 * index and addr, state OPEN; copied). NULL when out of memory. */
sk_attempt *sk_attempt_start(const sk_attempt_env *env, const char *domain,
                             const sk_attempt_msg *msg, const sk_dlv_rcpt_result *rcpts, size_t n,
                             sk_attempt_done_fn done, void *arg);
/* Stop at once (shutdown): the connection is closed, the callback never
 * runs; frees a. */
void sk_attempt_abort(sk_attempt *a);
void sk_attempt_free(sk_attempt *a);

const char *sk_attempt_domain(const sk_attempt *a);
/* Recipient results of the finished attempts of this process (the loop
 * thread's), by state: [SK_DLV_SENT], [SK_DLV_DEFER], [SK_DLV_BOUNCE]. */
void sk_attempt_totals(unsigned long long out[4]);
sk_dlv_rcpt_result *sk_attempt_results(sk_attempt *a, size_t *n);
/* 1 when no MX host could be talked to at all (no session reached the
 * point where a message could be sent): the destination's back-off. */
int sk_attempt_all_mx_failed(const sk_attempt *a);
/* 1 when the last session used TLS. */
int sk_attempt_tls(const sk_attempt *a);
/* 1 when the attempt began on a cached connection. */
int sk_attempt_reused(const sk_attempt *a);

#endif
