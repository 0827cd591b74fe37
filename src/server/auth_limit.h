/*
 * auth_limit.h - brute-force defence for SMTP AUTH (RFC 4954 section 4
 * leaves it to the server; section 6 lists 454 4.7.0 for temporary
 * failures, RFC 5321 4.2.2 / RFC 3463 421 4.7.0 for closing).
 *
 * Three layers, all driven by the shell:
 *
 *  1. Per client address (IPv4 /32, IPv6 /64, since one host usually owns a
 *     whole /64): a leaky bucket of failures. Each failed AUTH adds one;
 *     the level drains at max_failures per window. When the level reaches
 *     max_failures, the address is blocked: further AUTH attempts are
 *     answered 454 4.7.0 without checking the password (the shell's
 *     auth_check returns -1), until enough has drained for one more try.
 *     454 rather than 421: it is the reply RFC 4954 gives for "try again
 *     later", honest clients show it to the user, and it keeps the
 *     connection usable for other commands.
 *     The table has a fixed number of slots (memory is bounded whatever the
 *     number of attackers); a full set evicts its least-loaded entry.
 *
 *  2. Per connection: after max_conn_failures failed AUTH the connection is
 *     closed with 421 4.7.0 (sk_auth_conn_failed() says when).
 *
 *  3. Every failed AUTH reply is sent only after fail_delay_ms (the shell
 *     holds the reply with a timer; the event loop never sleeps).
 */
#ifndef SMTPKIT_SERVER_AUTH_LIMIT_H
#define SMTPKIT_SERVER_AUTH_LIMIT_H

#include <stdint.h>
#include <time.h>

typedef struct sk_auth_limit_config {
    unsigned max_failures;      /* per address per window; default 10 */
    unsigned window_seconds;    /* default 900 (15 minutes) */
    unsigned table_slots;       /* addresses tracked at once; default 4096 */
    unsigned max_conn_failures; /* per connection before 421; default 3 */
    unsigned fail_delay_ms;     /* delay of a failure reply; default 1000 */
} sk_auth_limit_config;

/* Fill cfg with the defaults above. */
void sk_auth_limit_defaults(sk_auth_limit_config *cfg);

typedef struct sk_auth_limit sk_auth_limit;

/* Zero fields of cfg take the defaults. NULL on allocation failure. */
sk_auth_limit *sk_auth_limit_new(const sk_auth_limit_config *cfg);
void sk_auth_limit_free(sk_auth_limit *al);
const sk_auth_limit_config *sk_auth_limit_get_config(const sk_auth_limit *al);

/* 1 when the address has spent its budget (answer 454 4.7.0 without
 * checking the password), else 0. addr is a numeric IPv4 or IPv6 address;
 * anything else shares one bucket. now is a monotonic time in seconds. */
int sk_auth_limit_blocked(sk_auth_limit *al, const char *addr, time_t now);
/* Record one failed AUTH from addr. */
void sk_auth_limit_failure(sk_auth_limit *al, const char *addr, time_t now);
/* Failures currently counted against addr (whole units, for logs/tests). */
unsigned sk_auth_limit_level(sk_auth_limit *al, const char *addr, time_t now);
/* Addresses currently in the table (for tests: never above table_slots). */
unsigned sk_auth_limit_tracked(const sk_auth_limit *al);

/* Per-connection counter, kept in the shell's connection object. */
typedef struct sk_auth_conn {
    unsigned failures;
} sk_auth_conn;

/* Record a failure on this connection; 1 when it must now be closed with
 * 421 4.7.0, else 0. */
int sk_auth_conn_failed(const sk_auth_limit *al, sk_auth_conn *c);

#endif
