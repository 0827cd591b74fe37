/*
 * test_mx_route.c - the pure parts of MX routing: preference order and the
 * shuffle among equal preferences (shared by the synchronous and the
 * asynchronous resolver), the verdict per DNS outcome (null MX 5.1.10,
 * NXDOMAIN 5.1.2, SERVFAIL/timeout 4.4.3, no address 5.4.4) and the
 * "this MX is myself" loop check (RFC 5321 5.1, 5.4.6) with exact and
 * wildcard listeners.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "client/mx_internal.h"
#include "smtpkit/mx_route.h"

static sk_addr addr(const char *ip, int port)
{
    sk_addr a;
    memset(&a, 0, sizeof a);
    assert_true(sk_addr_from_literal(ip, port, &a));
    return a;
}

static uint32_t seq_rnd(void *arg)
{
    uint32_t *x = arg;
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}

static void test_order_and_shuffle(void **state)
{
    (void)state;
    sk_mx_list l;
    memset(&l, 0, sizeof l);
    const char *names[] = {"c.test", "b.test", "z.test", "a.test", "y.test"};
    int prefs[] = {10, 10, 5, 10, 20};
    for (int i = 0; i < 5; i++) {
        strcpy(l.hosts[i].name, names[i]);
        l.hosts[i].preference = prefs[i];
    }
    l.n = 5;
    sk_mx_order(&l, 0, NULL, NULL);
    const char *want[] = {"z.test", "a.test", "b.test", "c.test", "y.test"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(l.hosts[i].name, want[i]);
    /* shuffled: preferences stay in order; the three 10s take every order */
    int seen[6] = {0};
    uint32_t x = 1;
    for (int round = 0; round < 300; round++) {
        sk_mx_order(&l, 1, seq_rnd, &x);
        assert_string_equal(l.hosts[0].name, "z.test");
        assert_string_equal(l.hosts[4].name, "y.test");
        for (int i = 1; i < 4; i++)
            assert_int_equal(l.hosts[i].preference, 10);
        int perm = (l.hosts[1].name[0] - 'a') * 3 + (l.hosts[2].name[0] - 'a');
        static const int index_of[] = {-1, 0, 1, 2, -1, 3, 4, 5, -1};
        assert_true(perm >= 0 && perm < 9 && index_of[perm] >= 0);
        seen[index_of[perm]]++;
    }
    for (int i = 0; i < 6; i++)
        assert_true(seen[i] > 10); /* every order of the three, roughly evenly */
}

static sk_mx_route route_with(size_t n, const size_t *naddrs, const sk_dns_status *st)
{
    sk_mx_route r;
    memset(&r, 0, sizeof r);
    r.status = SK_DNS_OK;
    r.n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(r.hosts[i].name, sizeof r.hosts[i].name, "mx%zu.test", i);
        r.hosts[i].preference = (int)(10 * (i + 1));
        r.hosts[i].naddrs = naddrs[i];
        r.hosts[i].addr_status = st[i];
        for (size_t k = 0; k < naddrs[i]; k++) {
            char ip[32];
            snprintf(ip, sizeof ip, "127.0.%zu.%zu", i + 1, k + 1);
            r.hosts[i].addrs[k] = addr(ip, 25);
        }
    }
    return r;
}

static void test_verdicts(void **state)
{
    (void)state;
    sk_mx_route r;
    memset(&r, 0, sizeof r);
    static const struct {
        sk_dns_status st;
        sk_route_action action;
        const char *status;
    } mx_cases[] = {
        {SK_DNS_NULLMX, SK_ROUTE_BOUNCE, "5.1.10"}, {SK_DNS_NXDOMAIN, SK_ROUTE_BOUNCE, "5.1.2"},
        {SK_DNS_SERVFAIL, SK_ROUTE_DEFER, "4.4.3"}, {SK_DNS_TIMEOUT, SK_ROUTE_DEFER, "4.4.3"},
        {SK_DNS_ERROR, SK_ROUTE_DEFER, "4.4.3"},    {SK_DNS_NODATA, SK_ROUTE_BOUNCE, "5.1.2"},
    };
    for (size_t i = 0; i < sizeof mx_cases / sizeof mx_cases[0]; i++) {
        r.status = mx_cases[i].st;
        sk_route_verdict v = sk_mx_route_verdict(&r);
        assert_int_equal(v.action, mx_cases[i].action);
        assert_string_equal(v.status, mx_cases[i].status);
        assert_non_null(v.why);
    }
    size_t two[] = {0, 2};
    sk_dns_status ok2[] = {SK_DNS_NXDOMAIN, SK_DNS_OK};
    r = route_with(2, two, ok2);
    assert_int_equal(sk_mx_route_verdict(&r).action, SK_ROUTE_DELIVER);
    size_t none[] = {0, 0};
    sk_dns_status temp[] = {SK_DNS_NXDOMAIN, SK_DNS_TIMEOUT};
    r = route_with(2, none, temp);
    assert_string_equal(sk_mx_route_verdict(&r).status, "4.4.3");
    sk_dns_status hard[] = {SK_DNS_NXDOMAIN, SK_DNS_NODATA};
    r = route_with(2, none, hard);
    assert_int_equal(sk_mx_route_verdict(&r).action, SK_ROUTE_BOUNCE);
    assert_string_equal(sk_mx_route_verdict(&r).status, "5.4.4");
    r = route_with(1, none, hard + 1);
    r.implicit = 1; /* no MX, no A/AAAA: no data for the domain at all */
    assert_string_equal(sk_mx_route_verdict(&r).status, "5.1.2");
    r.n = 0; /* everything stripped as ourselves */
    assert_string_equal(sk_mx_route_verdict(&r).status, "5.4.6");
}

static void test_is_self(void **state)
{
    (void)state;
    sk_addr listeners[] = {addr("127.0.0.1", 25), addr("::1", 25), addr("192.0.2.10", 587)};
    sk_addr local[] = {addr("192.0.2.10", 0), addr("2001:db8::10", 0)};
    assert_true(sk_addr_is_self(&listeners[0], listeners, 3, local, 2));
    sk_addr a = addr("127.0.0.1", 2525); /* other port: not us */
    assert_false(sk_addr_is_self(&a, listeners, 3, local, 2));
    a = addr("127.0.0.2", 25); /* another loopback address, no wildcard */
    assert_false(sk_addr_is_self(&a, listeners, 3, local, 2));
    a = addr("::ffff:127.0.0.1", 25); /* IPv4-mapped */
    assert_true(sk_addr_is_self(&a, listeners, 3, local, 2));
    a = addr("192.0.2.10", 25);
    assert_false(sk_addr_is_self(&a, listeners, 3, local, 2));
    a = addr("192.0.2.10", 587);
    assert_true(sk_addr_is_self(&a, listeners, 3, local, 2));

    /* wildcard listeners: every local address of the family, that port */
    sk_addr any[] = {addr("0.0.0.0", 25), addr("::", 25)};
    a = addr("192.0.2.10", 25);
    assert_true(sk_addr_is_self(&a, any, 2, local, 2));
    a = addr("127.0.0.9", 25); /* all of 127/8 is local */
    assert_true(sk_addr_is_self(&a, any, 2, local, 2));
    a = addr("2001:db8::10", 25);
    assert_true(sk_addr_is_self(&a, any, 2, local, 2));
    a = addr("::1", 25);
    assert_true(sk_addr_is_self(&a, any, 2, local, 2));
    a = addr("198.51.100.7", 25); /* not an address of this host */
    assert_false(sk_addr_is_self(&a, any, 2, local, 2));
    a = addr("2001:db8::11", 25);
    assert_false(sk_addr_is_self(&a, any, 2, local, 2));
    a = addr("192.0.2.10", 26);
    assert_false(sk_addr_is_self(&a, any, 2, local, 2));
    /* only an IPv4 wildcard: an IPv6 local address is not us */
    a = addr("2001:db8::10", 25);
    assert_false(sk_addr_is_self(&a, any, 1, local, 2));
}

static void test_strip_self(void **state)
{
    (void)state;
    size_t one[] = {1, 1, 1, 1};
    sk_dns_status ok[] = {SK_DNS_OK, SK_DNS_OK, SK_DNS_OK, SK_DNS_OK};
    sk_mx_route r = route_with(4, one, ok); /* 127.0.1.1 .. 127.0.4.1, pref 10..40 */
    r.hosts[2].preference = 20;             /* hosts 1 and 2 share preference 20 */
    sk_addr me = addr("127.0.3.1", 25);     /* host 2 is us */
    assert_int_equal(sk_mx_route_strip_self(&r, &me, 1, NULL, 0), 0);
    assert_int_equal(r.n, 1); /* host 1 (same preference) and 3 (worse) dropped too */
    assert_string_equal(r.hosts[0].name, "mx0.test");

    r = route_with(4, one, ok);
    me = addr("127.0.1.1", 25); /* the best MX is us: nowhere to go */
    assert_int_equal(sk_mx_route_strip_self(&r, &me, 1, NULL, 0), 1);
    assert_int_equal(r.n, 0);
    assert_string_equal(sk_mx_route_verdict(&r).status, "5.4.6");
    assert_int_equal(sk_mx_route_verdict(&r).action, SK_ROUTE_BOUNCE);

    r = route_with(4, one, ok);
    me = addr("127.0.9.9", 25); /* not among them */
    assert_int_equal(sk_mx_route_strip_self(&r, &me, 1, NULL, 0), 0);
    assert_int_equal(r.n, 4);
}

static void test_local_addrs(void **state)
{
    (void)state;
    sk_addr out[64];
    size_t n = sk_local_addrs(out, 64);
    int lo = 0;
    for (size_t i = 0; i < n; i++)
        lo |= !strcmp(out[i].text, "127.0.0.1");
    assert_true(lo); /* the loopback interface is always there */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_shuffle), cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_is_self),           cmocka_unit_test(test_strip_self),
        cmocka_unit_test(test_local_addrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
