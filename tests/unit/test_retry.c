/*
 * test_retry.c - the retry schedule (retry.h): doubling from min to max,
 * bounded jitter, give-up after the queue lifetime (4.4.7), the one delay
 * warning, and per-destination back-off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtpkit/retry.h"

static sk_retry_policy defaults(void)
{
    sk_retry_policy p;
    sk_retry_policy_default(&p);
    return p;
}

static void test_defaults(void **state)
{
    (void)state;
    sk_retry_policy p = defaults();
    assert_int_equal(p.min, 300);
    assert_int_equal(p.max, 4000);
    assert_int_equal(p.lifetime, 432000);
    assert_int_equal(p.delay_warning, 14400);
    assert_int_equal(p.jitter_pct, 10);
}

static void test_doubling_to_max(void **state)
{
    (void)state;
    sk_retry_policy p = defaults();
    static const unsigned want[] = {300, 300, 600, 1200, 2400, 4000, 4000, 4000};
    for (unsigned a = 0; a < 8; a++)
        assert_int_equal(sk_retry_backoff(&p, a), want[a]);
    /* huge attempt counts do not overflow */
    assert_int_equal(sk_retry_backoff(&p, UINT32_MAX), 4000);
    p.max = 7 * 86400;
    assert_int_equal(sk_retry_backoff(&p, 1000000), 7 * 86400);
    /* max below min: min wins */
    p.min = 500;
    p.max = 100;
    assert_int_equal(sk_retry_backoff(&p, 3), 500);
}

static void test_jitter_bounded_and_spread(void **state)
{
    (void)state;
    sk_retry_policy p = defaults();
    unsigned lo = UINT32_MAX, hi = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 10000; i++) {
        x = x * 1103515245u + 12345u;
        unsigned w = sk_retry_backoff_jittered(&p, 1, x);
        assert_in_range(w, 270, 330); /* 300 +- 10% */
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_true(lo <= 275); /* really spread over the range */
    assert_true(hi >= 325);
    assert_int_equal(sk_retry_backoff_jittered(&p, 1, 0), 270);
    assert_int_equal(sk_retry_backoff_jittered(&p, 1, 60000), 330);
    for (uint32_t r = 0; r < 100; r++)
        assert_in_range(sk_retry_backoff_jittered(&p, 9, r * 40000000u), 3600, 4400);
    p.jitter_pct = 0;
    assert_int_equal(sk_retry_backoff_jittered(&p, 2, 999), 600);
    p.jitter_pct = 200; /* clamped to 50% */
    p.min = p.max = 1;
    for (uint32_t r = 0; r < 1000; r++)
        assert_true(sk_retry_backoff_jittered(&p, 1, r) >= 1);
}

static void test_after_failure(void **state)
{
    (void)state;
    sk_retry_policy p = defaults();
    p.jitter_pct = 0;
    time_t arrival = 1000000;
    sk_retry_decision d = sk_retry_after_failure(&p, arrival, arrival + 10, 1, 0, 0);
    assert_false(d.give_up);
    assert_int_equal(d.next, arrival + 10 + 300);
    assert_false(d.warn);
    assert_int_equal(d.retry_until, arrival + 432000);

    /* after 4 hours: one warning */
    d = sk_retry_after_failure(&p, arrival, arrival + 14400, 6, 0, 0);
    assert_true(d.warn);
    assert_int_equal(d.next, arrival + 14400 + 4000);
    d = sk_retry_after_failure(&p, arrival, arrival + 20000, 7, 1, 0);
    assert_false(d.warn);

    /* the last wait is cut at the end of the lifetime: one more try then */
    d = sk_retry_after_failure(&p, arrival, arrival + 432000 - 100, 50, 1, 0);
    assert_false(d.give_up);
    assert_int_equal(d.next, arrival + 432000);
    /* at or past the lifetime: give up (4.4.7) */
    d = sk_retry_after_failure(&p, arrival, arrival + 432000, 51, 1, 0);
    assert_true(d.give_up);
    d = sk_retry_after_failure(&p, arrival, arrival + 10 * 86400, 51, 1, 0);
    assert_true(d.give_up);

    /* delay_warning 0: never */
    p.delay_warning = 0;
    d = sk_retry_after_failure(&p, arrival, arrival + 86400, 9, 0, 0);
    assert_false(d.warn);
    assert_false(sk_retry_warning_due(&p, arrival, arrival + 86400, 0));
    p.delay_warning = 14400;
    assert_false(sk_retry_warning_due(&p, arrival, arrival + 14399, 0));
    assert_true(sk_retry_warning_due(&p, arrival, arrival + 14400, 0));
    assert_false(sk_retry_warning_due(&p, arrival, arrival + 14400, 1));
}

static void test_schedule_over_a_lifetime(void **state)
{
    (void)state;
    /* a message that always fails: bounded attempts, increasing times, one
     * warning, and a give-up right at the end of its lifetime */
    sk_retry_policy p = defaults();
    time_t arrival = 5000, now = arrival;
    int warned = 0, warnings = 0;
    unsigned attempts = 0;
    uint32_t x = 7;
    for (;;) {
        attempts++;
        x = x * 1664525u + 1013904223u;
        sk_retry_decision d = sk_retry_after_failure(&p, arrival, now, attempts, warned, x);
        if (d.give_up)
            break;
        if (d.warn) {
            warnings++;
            warned = 1;
        }
        assert_true(d.next > now);
        assert_true(d.next <= arrival + (time_t)p.lifetime);
        now = d.next;
        assert_true(attempts < 1000);
    }
    assert_int_equal(warnings, 1);
    assert_int_equal(now, arrival + (time_t)p.lifetime);
    /* 5 days at about 4000 s: about 110 attempts */
    assert_in_range(attempts, 100, 130);
}

static void test_destination_backoff(void **state)
{
    (void)state;
    sk_retry_policy p = defaults();
    p.jitter_pct = 0;
    sk_dest_backoff d = {0, 0};
    assert_false(sk_dest_backoff_blocked(&d, 100));
    sk_dest_backoff_failed(&d, &p, 100, 0);
    assert_true(sk_dest_backoff_blocked(&d, 100));
    assert_true(sk_dest_backoff_blocked(&d, 399));
    assert_false(sk_dest_backoff_blocked(&d, 400));
    sk_dest_backoff_failed(&d, &p, 400, 0);
    assert_int_equal(d.until, 400 + 600);
    for (int i = 0; i < 100; i++)
        sk_dest_backoff_failed(&d, &p, 2000, 0);
    assert_int_equal(d.until, 2000 + 4000);
    sk_dest_backoff_succeeded(&d);
    assert_false(sk_dest_backoff_blocked(&d, 2001));
    assert_int_equal(d.failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_doubling_to_max),
        cmocka_unit_test(test_jitter_bounded_and_spread),
        cmocka_unit_test(test_after_failure),
        cmocka_unit_test(test_schedule_over_a_lifetime),
        cmocka_unit_test(test_destination_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
