/*
 * test_auth_limit.c - failed-AUTH budgets (server/auth_limit.c): the
 * per-address leaky bucket (block at the limit, one more try after a
 * drain interval, bounded block for a saturated address), address keying
 * (IPv6 /64, IPv4-mapped), the fixed-size table and its eviction order,
 * and the per-connection limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "server/auth_limit.h"

static sk_auth_limit *make(unsigned max, unsigned window, unsigned slots)
{
    sk_auth_limit_config cfg = {
        .max_failures = max, .window_seconds = window, .table_slots = slots};
    sk_auth_limit *al = sk_auth_limit_new(&cfg);
    assert_non_null(al);
    return al;
}

static void test_defaults(void **state)
{
    (void)state;
    sk_auth_limit_config zero = {0};
    sk_auth_limit *al = sk_auth_limit_new(&zero);
    assert_non_null(al);
    const sk_auth_limit_config *c = sk_auth_limit_get_config(al);
    assert_int_equal(c->max_failures, 10);
    assert_int_equal(c->window_seconds, 900);
    assert_int_equal(c->table_slots, 4096);
    assert_int_equal(c->max_conn_failures, 3);
    assert_int_equal(c->fail_delay_ms, 0); /* explicit 0 kept: no delay */
    sk_auth_limit_free(al);

    al = sk_auth_limit_new(NULL);
    assert_non_null(al);
    assert_int_equal(sk_auth_limit_get_config(al)->fail_delay_ms, 1000);
    sk_auth_limit_free(al);

    al = make(10, 900, 10); /* rounded up to whole 8-way sets */
    assert_int_equal(sk_auth_limit_get_config(al)->table_slots, 16);
    sk_auth_limit_free(al);
}

static void test_blocks_at_the_limit(void **state)
{
    (void)state;
    sk_auth_limit *al = make(10, 900, 256);
    time_t t = 1000;
    assert_false(sk_auth_limit_blocked(al, "192.0.2.1", t));
    for (int i = 0; i < 9; i++)
        sk_auth_limit_failure(al, "192.0.2.1", t);
    assert_int_equal(sk_auth_limit_level(al, "192.0.2.1", t), 9);
    assert_false(sk_auth_limit_blocked(al, "192.0.2.1", t));
    sk_auth_limit_failure(al, "192.0.2.1", t);
    assert_true(sk_auth_limit_blocked(al, "192.0.2.1", t));
    /* Others are not affected. */
    assert_false(sk_auth_limit_blocked(al, "192.0.2.2", t));
    assert_int_equal(sk_auth_limit_level(al, "192.0.2.2", t), 0);
    sk_auth_limit_free(al);
}

static void test_drains_over_the_window(void **state)
{
    (void)state;
    sk_auth_limit *al = make(10, 900, 256);
    time_t t = 5000;
    for (int i = 0; i < 10; i++)
        sk_auth_limit_failure(al, "198.51.100.9", t);
    /* One failure drains every 900/10 = 90 s. */
    assert_true(sk_auth_limit_blocked(al, "198.51.100.9", t + 89));
    assert_false(sk_auth_limit_blocked(al, "198.51.100.9", t + 90));
    sk_auth_limit_failure(al, "198.51.100.9", t + 90);
    assert_true(sk_auth_limit_blocked(al, "198.51.100.9", t + 90));
    /* A whole window later everything has drained. */
    assert_int_equal(sk_auth_limit_level(al, "198.51.100.9", t + 90 + 900), 0);
    assert_false(sk_auth_limit_blocked(al, "198.51.100.9", t + 90 + 900));
    sk_auth_limit_free(al);
}

static void test_saturated_block_is_bounded(void **state)
{
    (void)state;
    sk_auth_limit *al = make(10, 900, 256);
    time_t t = 100;
    for (int i = 0; i < 1000; i++)
        sk_auth_limit_failure(al, "203.0.113.5", t);
    assert_int_equal(sk_auth_limit_level(al, "203.0.113.5", t), 20);
    assert_true(sk_auth_limit_blocked(al, "203.0.113.5", t + 900));
    assert_false(sk_auth_limit_blocked(al, "203.0.113.5", t + 990));
    sk_auth_limit_free(al);
}

static void test_clock_going_back(void **state)
{
    (void)state;
    sk_auth_limit *al = make(3, 60, 64);
    for (int i = 0; i < 3; i++)
        sk_auth_limit_failure(al, "192.0.2.77", 1000);
    assert_true(sk_auth_limit_blocked(al, "192.0.2.77", 10));
    assert_int_equal(sk_auth_limit_level(al, "192.0.2.77", 10), 3);
    assert_false(sk_auth_limit_blocked(al, "192.0.2.77", 10 + 60));
    sk_auth_limit_free(al);
}

static void test_address_keys(void **state)
{
    (void)state;
    sk_auth_limit *al = make(2, 900, 256);
    time_t t = 1;
    /* One IPv6 host owns its /64: addresses inside it share a bucket. */
    sk_auth_limit_failure(al, "2001:db8:1:2::1", t);
    sk_auth_limit_failure(al, "2001:db8:1:2:ffff::9", t);
    assert_true(sk_auth_limit_blocked(al, "2001:db8:1:2::1234", t));
    assert_false(sk_auth_limit_blocked(al, "2001:db8:1:3::1", t));
    /* IPv4 and the same address IPv4-mapped are one client. */
    sk_auth_limit_failure(al, "192.0.2.10", t);
    sk_auth_limit_failure(al, "::ffff:192.0.2.10", t);
    assert_true(sk_auth_limit_blocked(al, "192.0.2.10", t));
    assert_false(sk_auth_limit_blocked(al, "::ffff:192.0.2.11", t));
    /* IPv4 is keyed whole (no /24 grouping). */
    assert_false(sk_auth_limit_blocked(al, "192.0.2.11", t));
    /* Whatever is not an address shares one bucket. */
    sk_auth_limit_failure(al, "unix:/run/x", t);
    sk_auth_limit_failure(al, NULL, t);
    assert_true(sk_auth_limit_blocked(al, "not-an-address", t));
    sk_auth_limit_free(al);
}

static void test_table_is_bounded_and_keeps_attackers(void **state)
{
    (void)state;
    sk_auth_limit *al = make(10, 900, 64);
    time_t t = 42;
    for (int i = 0; i < 10; i++)
        sk_auth_limit_failure(al, "192.0.2.66", t);
    assert_true(sk_auth_limit_blocked(al, "192.0.2.66", t));
    /* Ten thousand other addresses with one failure each. */
    char addr[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        sk_auth_limit_failure(al, addr, t);
        assert_true(sk_auth_limit_tracked(al) <= 64);
    }
    assert_int_equal(sk_auth_limit_tracked(al), 64);
    /* The blocked address was never the least-loaded one: still blocked. */
    assert_true(sk_auth_limit_blocked(al, "192.0.2.66", t));
    sk_auth_limit_free(al);
}

static void test_per_connection_limit(void **state)
{
    (void)state;
    sk_auth_limit_config cfg = {.max_conn_failures = 3};
    sk_auth_limit *al = sk_auth_limit_new(&cfg);
    assert_non_null(al);
    sk_auth_conn c = {0};
    assert_false(sk_auth_conn_failed(al, &c));
    assert_false(sk_auth_conn_failed(al, &c));
    assert_true(sk_auth_conn_failed(al, &c));
    assert_int_equal(c.failures, 3);
    sk_auth_conn other = {0};
    assert_false(sk_auth_conn_failed(al, &other));
    sk_auth_limit_free(al);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_blocks_at_the_limit),
        cmocka_unit_test(test_drains_over_the_window),
        cmocka_unit_test(test_saturated_block_is_bounded),
        cmocka_unit_test(test_clock_going_back),
        cmocka_unit_test(test_address_keys),
        cmocka_unit_test(test_table_is_bounded_and_keeps_attackers),
        cmocka_unit_test(test_per_connection_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
