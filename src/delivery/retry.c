/*
 * retry.c - exponential back-off with jitter, queue lifetime and delay
 * warnings for the outbound queue (RFC 5321 4.5.4.1: retry intervals of at
 * least 30 minutes are advised, give-up time of at least 4-5 days; RFC 3464
 * 2.3.3 action "delayed" and 2.3.4 status 4.4.7 for the warnings and
 * bounces decided here). See retry.h.
 *
 * All arithmetic is in 64 bits and clamped, so no setting, attempt count
 * or clock value can overflow into a wait in the past.
 */
#include "smtpkit/retry.h"

void sk_retry_policy_default(sk_retry_policy *p)
{
    p->min = 300;
    p->max = 4000;
    p->lifetime = 5 * 86400;
    p->delay_warning = 4 * 3600;
    p->jitter_pct = 10;
}

unsigned sk_retry_backoff(const sk_retry_policy *p, unsigned attempts)
{
    uint64_t wait = p->min ? p->min : 1;
    uint64_t cap = p->max > wait ? p->max : wait;
    for (unsigned i = 1; i < attempts && wait < cap; i++)
        wait *= 2;
    return (unsigned)(wait < cap ? wait : cap);
}

unsigned sk_retry_backoff_jittered(const sk_retry_policy *p, unsigned attempts, uint32_t rnd)
{
    uint64_t base = sk_retry_backoff(p, attempts);
    unsigned pct = p->jitter_pct > 50 ? 50 : p->jitter_pct;
    if (!pct)
        return (unsigned)base;
    /* an offset in [-span, +span], span = base * pct / 100, in 1/1000 s
     * steps so short waits are spread too */
    uint64_t span = base * 1000 * pct / 100;
    uint64_t off = span ? (uint64_t)rnd % (2 * span + 1) : 0;
    int64_t ms = (int64_t)(base * 1000) + (int64_t)off - (int64_t)span;
    int64_t s = (ms + 500) / 1000;
    return s < 1 ? 1u : (unsigned)s;
}

int sk_retry_warning_due(const sk_retry_policy *p, time_t arrival, time_t now, int warned)
{
    if (warned || !p->delay_warning || p->delay_warning >= p->lifetime)
        return 0;
    return (int64_t)now - (int64_t)arrival >= (int64_t)p->delay_warning;
}

sk_retry_decision sk_retry_after_failure(const sk_retry_policy *p, time_t arrival, time_t now,
                                         unsigned attempts, int warned, uint32_t rnd)
{
    sk_retry_decision d = {0, 0, 0, 0};
    int64_t end = (int64_t)arrival + p->lifetime;
    d.retry_until = (time_t)end;
    if ((int64_t)now >= end) {
        d.give_up = 1;
        return d;
    }
    int64_t next = (int64_t)now + sk_retry_backoff_jittered(p, attempts, rnd);
    d.next = (time_t)(next < end ? next : end);
    d.warn = sk_retry_warning_due(p, arrival, now, warned);
    return d;
}

void sk_dest_backoff_failed(sk_dest_backoff *d, const sk_retry_policy *p, time_t now, uint32_t rnd)
{
    if (d->failures < 64)
        d->failures++;
    d->until = (time_t)((int64_t)now + sk_retry_backoff_jittered(p, d->failures, rnd));
}

void sk_dest_backoff_succeeded(sk_dest_backoff *d)
{
    d->failures = 0;
    d->until = 0;
}

int sk_dest_backoff_blocked(const sk_dest_backoff *d, time_t now)
{
    return d->until && now < d->until;
}
