/*
 * test_bench.c - the load generator's pieces that need no server: nearest-
 * rank percentiles, the option limits (concurrency, messages, addresses that
 * could inject commands or header lines), and a run against a closed
 * loopback port (stops at once, everything counted as not sent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtpkit/bench.h"

static void test_percentiles_nearest_rank(void **state)
{
    (void)state;
    float v[100];
    /* 100..1 in reverse order: the function sorts */
    for (int i = 0; i < 100; i++)
        v[i] = (float)(100 - i);
    sk_bench_latency l;
    sk_bench_percentiles(v, 100, &l);
    assert_int_equal(l.n, 100);
    assert_true(l.min == 1.0 && l.max == 100.0);
    assert_true(l.p50 == 50.0 && l.p90 == 90.0 && l.p99 == 99.0);
    assert_true(l.mean > 50.49 && l.mean < 50.51);

    float one[1] = {7.5f};
    sk_bench_percentiles(one, 1, &l);
    assert_true(l.p50 == 7.5 && l.p99 == 7.5 && l.max == 7.5 && l.min == 7.5);

    float ten[10] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    sk_bench_percentiles(ten, 10, &l);
    assert_true(l.p50 == 5.0 && l.p90 == 9.0 && l.p99 == 10.0);

    sk_bench_percentiles(NULL, 0, &l);
    assert_int_equal(l.n, 0);
    assert_true(l.max == 0.0);
}

static const char *good_to[] = {"alice@example.test"};

static void base_opts(sk_bench_opts *o)
{
    sk_bench_defaults(o);
    o->host = "127.0.0.1";
    o->port = 2525;
    o->to = good_to;
    o->nto = 1;
}

static void expect_bad(const sk_bench_opts *o, const char *needle)
{
    char err[256] = "";
    assert_int_equal(sk_bench_check(o, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("'%s' does not mention '%s'", err, needle);
}

static void test_defaults_and_limits(void **state)
{
    (void)state;
    sk_bench_opts o;
    base_opts(&o);
    char err[256];
    assert_int_equal(sk_bench_check(&o, err, sizeof err), 0);
    assert_int_equal(o.concurrency, 10);
    assert_int_equal(o.messages, 1000);
    assert_int_equal(o.per_connection, 1);
    assert_int_equal(o.size, 1024);
    assert_true(o.duration_s == 60.0);

    o.concurrency = SK_BENCH_MAX_CONCURRENCY;
    assert_int_equal(sk_bench_check(&o, err, sizeof err), 0);
    o.concurrency = SK_BENCH_MAX_CONCURRENCY + 1;
    expect_bad(&o, "concurrency 10001");
    o.concurrency = 0;
    expect_bad(&o, "concurrency 0");

    base_opts(&o);
    o.messages = SK_BENCH_MAX_MESSAGES;
    assert_int_equal(sk_bench_check(&o, err, sizeof err), 0);
    o.messages = SK_BENCH_MAX_MESSAGES + 1;
    expect_bad(&o, "messages 10000001");

    base_opts(&o);
    o.duration_s = 0;
    expect_bad(&o, "duration");
    base_opts(&o);
    o.timeout_s = -1;
    expect_bad(&o, "timeout");
    base_opts(&o);
    o.starttls = o.tls = 1;
    expect_bad(&o, "exclude");
    base_opts(&o);
    o.size = SK_BENCH_MAX_SIZE + 1;
    expect_bad(&o, "size");
    base_opts(&o);
    o.nto = 0;
    expect_bad(&o, "no recipient");
}

static void test_addresses_cannot_inject(void **state)
{
    (void)state;
    sk_bench_opts o;
    static const char *crlf[] = {"a@b.test>\r\nRSET"};
    static const char *space[] = {"a b@c.test"};
    static const char *angle[] = {"<a@b.test>"};
    static const char *empty[] = {""};
    base_opts(&o);
    o.to = crlf;
    expect_bad(&o, "recipient address");
    o.to = space;
    expect_bad(&o, "recipient address");
    o.to = angle;
    expect_bad(&o, "recipient address");
    o.to = empty;
    expect_bad(&o, "recipient address");
    base_opts(&o);
    o.from = "x@y.test\nDATA";
    expect_bad(&o, "sender address");
    o.from = ""; /* the null reverse-path is fine for MAIL */
    char err[256];
    assert_int_equal(sk_bench_check(&o, err, sizeof err), 0);
    o.helo = "bad name";
    expect_bad(&o, "EHLO name");
}

static void test_run_refuses_bad_options(void **state)
{
    (void)state;
    sk_bench_opts o;
    base_opts(&o);
    o.concurrency = 20000;
    sk_bench_result r;
    char err[256] = "";
    assert_int_equal(sk_bench_run(&o, &r, err, sizeof err), -1);
    assert_int_equal(r.abort_kind, SK_CLIENT_ERR_USAGE);
    assert_non_null(strstr(err, "concurrency"));
    assert_int_equal(r.sent, 0);
}

/* A port nobody listens on: bind one, note it, close it. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_run_against_closed_port(void **state)
{
    (void)state;
    sk_bench_opts o;
    base_opts(&o);
    o.port = closed_port();
    o.concurrency = 4;
    o.messages = 100;
    o.timeout_s = 5;
    o.duration_s = 10;
    sk_bench_result r;
    char err[256] = "";
    assert_int_equal(sk_bench_run(&o, &r, err, sizeof err), 0);
    assert_int_equal(r.aborted, 1);
    assert_int_equal(r.abort_kind, SK_CLIENT_ERR_CONNECT);
    /* each session tried once, then the run stopped */
    assert_int_equal(r.conn_attempted, 4);
    assert_int_equal(r.conn_failed, 4);
    assert_int_equal(r.conn_established, 0);
    assert_int_equal(r.sent, 0);
    assert_int_equal(r.not_sent, 100);
    assert_int_equal(r.requested, 100);
    assert_non_null(strstr(r.first_error, "cannot connect"));
    assert_int_equal(sk_client_exit_status(r.abort_kind), SK_EXIT_CONNECT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles_nearest_rank),
        cmocka_unit_test(test_defaults_and_limits),
        cmocka_unit_test(test_addresses_cannot_inject),
        cmocka_unit_test(test_run_refuses_bad_options),
        cmocka_unit_test(test_run_against_closed_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
