/*
 * test_metrics.c - the counters and their Prometheus text exposition
 * (metrics.c): every family with HELP and TYPE, reply codes counted from
 * the session's log lines and labelled by class, sessions by TLS version,
 * the histogram's cumulative buckets, and a full buffer reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server/metrics.h"

static char *render(const sk_metrics *m, unsigned open, sk_buf *b)
{
    sk_buf_init(b, 1 << 20);
    assert_int_equal(sk_metrics_render(m, open, b), 0);
    assert_int_equal(sk_buf_append(b, "", 1), 0); /* NUL for strstr */
    return (char *)b->data;
}

static void assert_line(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void test_empty(void **state)
{
    (void)state;
    sk_metrics m = {0};
    sk_buf b;
    char *t = render(&m, 3, &b);
    assert_true(!strncmp(t, "# HELP smtpkit_connections_open ", 32));
    assert_line(t, "# TYPE smtpkit_connections_open gauge");
    assert_line(t, "smtpkit_connections_open 3");
    assert_line(t, "smtpkit_connections_total 0");
    assert_line(t, "smtpkit_connections_refused_total{reason=\"proxy_timeout\"} 0");
    assert_line(t, "smtpkit_sessions_total{tls=\"none\"} 0");
    assert_line(t, "# TYPE smtpkit_transactions_total counter");
    assert_null(strstr(t, "smtpkit_transactions_total{"));
    assert_line(t, "# TYPE smtpkit_commit_seconds histogram");
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(t, "smtpkit_commit_seconds_count 0");
    /* every line is a comment or "name[{labels}] value" */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || (line[0] >= 'a' && line[0] <= 'z'));
        assert_non_null(memchr(line, ' ', (size_t)(nl - line)));
        line = nl + 1;
    }
    sk_buf_free(&b);
}

static void test_counts(void **state)
{
    (void)state;
    sk_metrics m = {0};
    sk_metrics_log_line(&m, "event=message id=X from=<a@b> nrcpts=1 rcpts=<c@d> size=10 "
                            "result=250");
    sk_metrics_log_line(&m, "event=message id=- from=<a@b> nrcpts=0 rcpts= size=0 result=none "
                            "reason=rset");
    sk_metrics_log_line(&m, "event=message id=Y from=<a@b> nrcpts=1 rcpts=<c@d> size=9 "
                            "result=552 reason=size");
    sk_metrics_log_line(&m, "event=auth mech=PLAIN user=u result=535");
    sk_metrics_log_line(&m, "event=auth mech=PLAIN result=501 reason=base64");
    sk_metrics_log_line(&m, "event=reject cmd=RCPT code=550 enh=5.1.1 text=\"x result=250\"");
    sk_metrics_log_line(&m, "event=message result=2500");
    sk_metrics_recipient(&m, 250);
    sk_metrics_recipient(&m, 250);
    sk_metrics_recipient(&m, 451);
    sk_metrics_recipient(&m, 999); /* not a reply code: ignored */
    sk_metrics_session(&m, NULL);
    sk_metrics_session(&m, "TLSv1.3");
    sk_metrics_session(&m, "TLSv1.3");
    sk_metrics_session(&m, "TLSv1.2");
    sk_metrics_refused(&m, SK_REFUSED_PROXY_MISSING);
    sk_buf b;
    char *t = render(&m, 0, &b);
    assert_line(t, "smtpkit_transactions_total{class=\"2xx\",code=\"250\"} 1");
    assert_line(t, "smtpkit_transactions_total{class=\"5xx\",code=\"552\"} 1");
    assert_null(strstr(t, "code=\"2500\""));
    assert_line(t, "smtpkit_auth_total{class=\"5xx\",code=\"535\"} 1");
    assert_line(t, "smtpkit_auth_total{class=\"5xx\",code=\"501\"} 1");
    assert_line(t, "smtpkit_recipients_total{class=\"2xx\",code=\"250\"} 2");
    assert_line(t, "smtpkit_recipients_total{class=\"4xx\",code=\"451\"} 1");
    assert_null(strstr(t, "code=\"550\"")); /* a reject line is not a transaction */
    assert_line(t, "smtpkit_sessions_total{tls=\"none\"} 1");
    assert_line(t, "smtpkit_sessions_total{tls=\"TLSv1.3\"} 2");
    assert_line(t, "smtpkit_sessions_total{tls=\"TLSv1.2\"} 1");
    assert_line(t, "smtpkit_connections_refused_total{reason=\"proxy_missing\"} 1");
    sk_buf_free(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    sk_metrics m = {0};
    sk_metrics_commit(&m, 0.0007); /* in le=0.001 and above */
    sk_metrics_commit(&m, 0.02);
    sk_metrics_commit(&m, 7.0); /* only in +Inf */
    sk_metrics_commit(&m, -1);  /* a clock step: counted as 0 */
    sk_buf b;
    char *t = render(&m, 0, &b);
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"0.0005\"} 1");
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"0.001\"} 2");
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"0.01\"} 2");
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"0.025\"} 3");
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"2.5\"} 3");
    assert_line(t, "smtpkit_commit_seconds_bucket{le=\"+Inf\"} 4");
    assert_line(t, "smtpkit_commit_seconds_count 4");
    assert_line(t, "smtpkit_commit_seconds_sum 7.020700");
    sk_buf_free(&b);
}

static void test_queue(void **state)
{
    (void)state;
    sk_agent_queue_stats q = {0};
    q.state[SK_AGENT_PENDING].messages = 2;
    q.state[SK_AGENT_PENDING].recipients = 5;
    q.state[SK_AGENT_PENDING].oldest_arrival = 1000;
    q.state[SK_AGENT_DEFERRED].messages = 1;
    q.state[SK_AGENT_DEFERRED].recipients = 1;
    q.state[SK_AGENT_DEFERRED].oldest_arrival = 400;
    q.state[SK_AGENT_HELD].recipients = 3; /* held recipients of messages in other states */
    q.sent = 7;
    q.bounced = 1;
    sk_buf b;
    sk_buf_init(&b, 1 << 20);
    assert_int_equal(sk_buf_append(&b, "\n", 1), 0);
    assert_int_equal(sk_metrics_render_queue(&q, 1060, &b), 0);
    assert_int_equal(sk_buf_append(&b, "", 1), 0);
    const char *t = (const char *)b.data;
    assert_line(t, "# TYPE smtpkit_queue_messages gauge");
    assert_line(t, "smtpkit_queue_messages{state=\"pending\"} 2");
    assert_line(t, "smtpkit_queue_messages{state=\"deferred\"} 1");
    assert_line(t, "smtpkit_queue_messages{state=\"held\"} 0");
    assert_line(t, "smtpkit_queue_recipients{state=\"pending\"} 5");
    assert_line(t, "smtpkit_queue_recipients{state=\"held\"} 3");
    assert_line(t, "# TYPE smtpkit_queue_oldest_age_seconds gauge");
    assert_line(t, "smtpkit_queue_oldest_age_seconds{state=\"pending\"} 60");
    assert_line(t, "smtpkit_queue_oldest_age_seconds{state=\"deferred\"} 660");
    assert_line(t, "smtpkit_queue_oldest_age_seconds{state=\"held\"} 0"); /* no held message */
    assert_line(t, "# TYPE smtpkit_deliveries_total counter");
    assert_line(t, "smtpkit_deliveries_total{result=\"sent\"} 7");
    assert_line(t, "smtpkit_deliveries_total{result=\"deferred\"} 0");
    assert_line(t, "smtpkit_deliveries_total{result=\"bounced\"} 1");
    sk_buf_free(&b);
    /* a clock behind an arrival: never a negative age */
    sk_buf_init(&b, 1 << 20);
    assert_int_equal(sk_buf_append(&b, "\n", 1), 0);
    assert_int_equal(sk_metrics_render_queue(&q, 10, &b), 0);
    assert_int_equal(sk_buf_append(&b, "", 1), 0);
    assert_line((const char *)b.data, "smtpkit_queue_oldest_age_seconds{state=\"pending\"} 0");
    sk_buf_free(&b);
    /* a full buffer is an error */
    sk_buf_init(&b, 64);
    assert_int_equal(sk_metrics_render_queue(&q, 1060, &b), -1);
    sk_buf_free(&b);
}

static void test_full_buffer(void **state)
{
    (void)state;
    sk_metrics m = {0};
    sk_buf b;
    sk_buf_init(&b, 100);
    assert_int_equal(sk_metrics_render(&m, 0, &b), -1);
    sk_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),     cmocka_unit_test(test_counts),
        cmocka_unit_test(test_histogram), cmocka_unit_test(test_full_buffer),
        cmocka_unit_test(test_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
