/*
 * test_mx_async.c - the asynchronous MX resolver (mx_async.h) against a
 * real DNS server on loopback, inside a libevent loop. The server is the
 * private dnsmasq that tests/e2e/delivery/test_mx_async.py starts with the
 * zone below and names in SK_TEST_DNS ("127.0.0.1:PORT"); SK_TEST_SILENT_DNS
 * names a UDP socket that never answers. Without them (`make unit`) the
 * tests are skipped.
 *
 * The zone (kept in step with the pytest file):
 *   order.test      MX 20 mx2.order.test (127.0.0.3), MX 10 mx1.order.test
 *                   (127.0.0.2 and ::1)
 *   equal.test      MX 5 a/b/c.equal.test (127.0.0.11/12/13)
 *   amx.test        no MX, A 127.0.0.20 (implicit MX)
 *   nullmx.test     MX 0 "." (RFC 7505)
 *   nodata.test     a TXT record only
 *   dangling.test   MX 10 nowhere.dangling.test (no such name)
 *   self.test       MX 10 127.0.0.1 (mx.self.test), MX 20 mx2.self.test (127.0.0.4)
 *   backup.test     MX 10 mx.backup.test (127.0.0.5), MX 20 mx.self.test
 *   anything else under .test: NXDOMAIN
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/mx_async.h"

typedef struct result {
    int calls;
    sk_mx_route route;
} result;

static void done(void *arg, const sk_mx_route *route)
{
    result *r = arg;
    r->calls++;
    r->route = *route;
}

static struct event_base *base;
static sk_mx_async *res;

static int setup(void **state)
{
    (void)state;
    const char *dns = getenv("SK_TEST_DNS");
    if (!dns)
        return 0;
    base = event_base_new();
    char err[256];
    res = sk_mx_async_new(base, dns, 1000, err, sizeof err);
    if (!res)
        fail_msg("resolver: %s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sk_mx_async_free(res);
    res = NULL;
    if (base)
        event_base_free(base);
    base = NULL;
    return 0;
}

/* Run the loop until every look-up called back; bounded to 10 s. */
static void run(void)
{
    struct timeval limit = {10, 0};
    event_base_loopexit(base, &limit);
    while (sk_mx_async_pending(res) && !event_base_got_exit(base))
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(sk_mx_async_pending(res), 0);
}

static void resolve(const char *domain, result *r)
{
    memset(r, 0, sizeof *r);
    assert_non_null(sk_mx_async_lookup(res, domain, 2525, 0, done, r));
    assert_int_equal(r->calls, 0); /* never from inside the call */
    run();
    assert_int_equal(r->calls, 1);
}

#define NEED_DNS()                                                                                 \
    do {                                                                                           \
        if (!res)                                                                                  \
            skip();                                                                                \
    } while (0)

static void test_order_and_addresses(void **state)
{
    (void)state;
    NEED_DNS();
    result r;
    resolve("order.test", &r);
    assert_int_equal(r.route.status, SK_DNS_OK);
    assert_false(r.route.implicit);
    assert_int_equal(r.route.n, 2);
    assert_string_equal(r.route.hosts[0].name, "mx1.order.test");
    assert_int_equal(r.route.hosts[0].preference, 10);
    assert_string_equal(r.route.hosts[1].name, "mx2.order.test");
    /* each address of the host, IPv6 and IPv4, with the port */
    assert_int_equal(r.route.hosts[0].naddrs, 2);
    int v4 = 0, v6 = 0;
    for (size_t i = 0; i < 2; i++) {
        v4 |= !strcmp(r.route.hosts[0].addrs[i].text, "127.0.0.2");
        v6 |= !strcmp(r.route.hosts[0].addrs[i].text, "::1");
    }
    assert_true(v4 && v6);
    assert_int_equal(r.route.hosts[1].naddrs, 1);
    assert_string_equal(r.route.hosts[1].addrs[0].text, "127.0.0.3");
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&r.route.hosts[1].addrs[0].ss;
    assert_int_equal(ntohs(s4->sin_port), 2525);
    assert_int_equal(sk_mx_route_verdict(&r.route).action, SK_ROUTE_DELIVER);
}

static void test_equal_preferences_shuffled(void **state)
{
    (void)state;
    NEED_DNS();
    /* several look-ups at once in one loop; each sees all three hosts, and
     * the first host varies */
    enum { N = 24 };
    static result r[N];
    for (int i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof r[i]);
        assert_non_null(sk_mx_async_lookup(res, "equal.test", 25, SK_MX_SHUFFLE, done, &r[i]));
    }
    run();
    int first[3] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].route.n, 3);
        for (size_t k = 0; k < 3; k++)
            assert_int_equal(r[i].route.hosts[k].naddrs, 1);
        first[r[i].route.hosts[0].name[0] - 'a']++;
    }
    assert_true((first[0] > 0) + (first[1] > 0) + (first[2] > 0) >= 2);
}

static void test_implicit_mx(void **state)
{
    (void)state;
    NEED_DNS();
    result r;
    resolve("amx.test", &r);
    assert_int_equal(r.route.status, SK_DNS_OK);
    assert_true(r.route.implicit);
    assert_int_equal(r.route.n, 1);
    assert_string_equal(r.route.hosts[0].name, "amx.test");
    assert_int_equal(r.route.hosts[0].preference, -1);
    assert_string_equal(r.route.hosts[0].addrs[0].text, "127.0.0.20");
}

static void expect_verdict(const char *domain, sk_route_action action, const char *status)
{
    result r;
    resolve(domain, &r);
    sk_route_verdict v = sk_mx_route_verdict(&r.route);
    if (v.action != action || strcmp(v.status, status) != 0)
        fail_msg("%s: verdict %d %s (%s), want %d %s", domain, v.action, v.status, v.why, action,
                 status);
}

static void test_failures(void **state)
{
    (void)state;
    NEED_DNS();
    expect_verdict("nullmx.test", SK_ROUTE_BOUNCE, "5.1.10");
    expect_verdict("no-such-domain.test", SK_ROUTE_BOUNCE, "5.1.2");
    expect_verdict("nodata.test", SK_ROUTE_BOUNCE, "5.1.2");
    expect_verdict("dangling.test", SK_ROUTE_BOUNCE, "5.4.4");
}

static void test_own_address_is_a_loop(void **state)
{
    (void)state;
    NEED_DNS();
    sk_addr listener;
    memset(&listener, 0, sizeof listener);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&listener.ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(2525);
    s4->sin_addr.s_addr = htonl(0x7f000001);
    listener.len = sizeof *s4;
    result r;
    resolve("self.test", &r);
    assert_int_equal(sk_mx_route_strip_self(&r.route, &listener, 1, NULL, 0), 1);
    sk_route_verdict v = sk_mx_route_verdict(&r.route);
    assert_int_equal(v.action, SK_ROUTE_BOUNCE);
    assert_string_equal(v.status, "5.4.6");
    /* we are only the backup MX: the better one stays */
    resolve("backup.test", &r);
    assert_int_equal(sk_mx_route_strip_self(&r.route, &listener, 1, NULL, 0), 0);
    assert_int_equal(r.route.n, 1);
    assert_string_equal(r.route.hosts[0].name, "mx.backup.test");
    /* a wildcard listener 0.0.0.0:2525 covers 127.0.0.1 too */
    s4->sin_addr.s_addr = 0;
    resolve("self.test", &r);
    assert_int_equal(sk_mx_route_strip_self(&r.route, &listener, 1, NULL, 0), 1);
}

static void test_cancel(void **state)
{
    (void)state;
    NEED_DNS();
    result a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    sk_mx_lookup *la = sk_mx_async_lookup(res, "order.test", 25, 0, done, &a);
    assert_non_null(sk_mx_async_lookup(res, "amx.test", 25, 0, done, &b));
    sk_mx_async_cancel(la);
    run();
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    /* freeing the resolver with look-ups in flight calls nothing back */
    assert_non_null(sk_mx_async_lookup(res, "order.test", 25, 0, done, &a));
    sk_mx_async_free(res);
    res = NULL;
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(a.calls, 0);
}

static void test_silent_server_defers(void **state)
{
    (void)state;
    const char *silent = getenv("SK_TEST_SILENT_DNS");
    if (!silent)
        skip();
    struct event_base *b = event_base_new();
    char err[256];
    sk_mx_async *r = sk_mx_async_new(b, silent, 200, err, sizeof err);
    assert_non_null(r);
    result x;
    memset(&x, 0, sizeof x);
    assert_non_null(sk_mx_async_lookup(r, "order.test", 25, 0, done, &x));
    struct timeval limit = {10, 0};
    event_base_loopexit(b, &limit);
    while (sk_mx_async_pending(r) && !event_base_got_exit(b))
        event_base_loop(b, EVLOOP_ONCE);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.route.status, SK_DNS_TIMEOUT);
    sk_route_verdict v = sk_mx_route_verdict(&x.route);
    assert_int_equal(v.action, SK_ROUTE_DEFER);
    assert_string_equal(v.status, "4.4.3");
    sk_mx_async_free(r);
    event_base_free(b);
}

static void test_bad_server_setting(void **state)
{
    (void)state;
    struct event_base *b = event_base_new();
    char err[256] = "";
    assert_null(sk_mx_async_new(b, "not-an-ip", 100, err, sizeof err));
    assert_non_null(strstr(err, "not-an-ip"));
    event_base_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal_preferences_shuffled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_implicit_mx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_address_is_a_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test(test_silent_server_defers),
        cmocka_unit_test(test_bad_server_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
