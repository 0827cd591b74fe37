/*
 * retry.h - the outbound retry schedule: when to try a deferred message
 * again, when to warn its sender, when to give up (RFC 5321 4.5.4.1;
 * RFC 3464 for the warnings and bounces this decides on). Pure: no clock,
 * no randomness of its own; the caller passes the time and a random value.
 *
 * The model is Postfix's queue manager: after the Nth failed attempt a
 * message waits min * 2^(N-1) seconds, capped at max (300 s doubling to
 * 4000 s by default), spread by a bounded jitter so messages deferred
 * together do not come back together; once it has been queued for
 * `lifetime` seconds (5 days) the next temporary failure bounces it with
 * 4.4.7; a delay warning goes out once after `delay_warning` (4 hours).
 * A destination whose every MX failed is backed off as a whole
 * (sk_dest_backoff), so its queued messages are not tried one by one.
 *
 * Plugging it in (the delivery agent): after a temporary failure call
 * sk_retry_after_failure() with the message's arrival time, the attempts
 * made so far (including this one) and whether a warning was already sent;
 * store `next` in the recipient's envelope record, send a delay DSN when
 * `warn` is set (and remember it), bounce with 4.4.7 when `give_up` is set.
 * The values come from the `delivery` group of smtpkit.conf(5)
 * (sk_config.delivery.retry).
 */
#ifndef SMTPKIT_RETRY_H
#define SMTPKIT_RETRY_H

#include <stdint.h>
#include <time.h>

typedef struct sk_retry_policy {
    unsigned min;           /* seconds before the 2nd attempt (retry_min, 300) */
    unsigned max;           /* cap of the back-off (retry_max, 4000) */
    unsigned lifetime;      /* give up after (max_queue_lifetime, 432000 = 5 days) */
    unsigned delay_warning; /* warn the sender after (delay_warning, 14400); 0: never */
    unsigned jitter_pct;    /* each wait is spread by +- this percent (10), 0..50 */
} sk_retry_policy;

/* The defaults above. */
void sk_retry_policy_default(sk_retry_policy *p);

/* The wait after `attempts` failed attempts (1 for the first failure),
 * before jitter: min * 2^(attempts-1), at most max; 0 attempts count as 1. */
unsigned sk_retry_backoff(const sk_retry_policy *p, unsigned attempts);

/* The same with jitter: `rnd` is a uniformly random 32-bit value (the
 * caller's getrandom() or a fixed value in tests); the result lies within
 * +- jitter_pct percent of sk_retry_backoff() and is at least 1 s. */
unsigned sk_retry_backoff_jittered(const sk_retry_policy *p, unsigned attempts, uint32_t rnd);

typedef struct sk_retry_decision {
    int give_up;        /* bounce the recipient: 4.4.7, the message stayed too long */
    time_t next;        /* when to try again (unset when give_up) */
    int warn;           /* send a delay warning (action=delayed) now */
    time_t retry_until; /* arrival + lifetime: the DSN's Will-Retry-Until */
} sk_retry_decision;

/* The decision after a temporary failure (4xx, timeout, refused or dropped
 * connection, every MX failed) at `now` for a message that arrived at
 * `arrival`, with `attempts` attempts made so far and `warned` set when a
 * delay warning has already gone out. A message older than the lifetime
 * gives up; otherwise the next attempt is now + the jittered back-off, but
 * never later than the end of its lifetime (so it gets a last try then). */
sk_retry_decision sk_retry_after_failure(const sk_retry_policy *p, time_t arrival, time_t now,
                                         unsigned attempts, int warned, uint32_t rnd);

/* Whether a delay warning is due at `now` (for a message that waits without
 * a new failure, e.g. behind a backed-off destination). */
int sk_retry_warning_due(const sk_retry_policy *p, time_t arrival, time_t now, int warned);

/* Per-destination back-off: a destination (a domain, or a relay host)
 * whose every MX failed is not tried again, for any message, before
 * `until`; each such failure in a row doubles the wait as above, and a
 * success clears it. Zero-initialise one per destination. */
typedef struct sk_dest_backoff {
    unsigned failures; /* all-MX failures in a row */
    time_t until;      /* no attempt before this (0: none) */
} sk_dest_backoff;

void sk_dest_backoff_failed(sk_dest_backoff *d, const sk_retry_policy *p, time_t now, uint32_t rnd);
void sk_dest_backoff_succeeded(sk_dest_backoff *d);
/* 1 while the destination must not be tried. */
int sk_dest_backoff_blocked(const sk_dest_backoff *d, time_t now);

#endif
