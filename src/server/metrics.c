/*
 * metrics.c - the server's counters and their Prometheus text exposition
 * (format 0.0.4: "# HELP" and "# TYPE" once per family, one sample per
 * line, label values quoted; counters end in _total; a histogram has
 * cumulative _bucket{le="..."} samples ending with le="+Inf", then _sum and
 * _count). Plain memory and string work: the HTTP side is metrics_http.c.
 */
#include "server/metrics.h"

#include <stdio.h>
#include <string.h>

const double sk_metrics_bucket_bounds[SK_METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

static const char *const refusal_names[SK_REFUSED_N] = {
    "connections",   "connections_per_ip", "memory",        "proxy_untrusted",
    "proxy_missing", "proxy_malformed",    "proxy_timeout", "proxy_eof",
};

void sk_metrics_refused(sk_metrics *m, sk_refusal why)
{
    if ((unsigned)why < SK_REFUSED_N)
        m->refused[why]++;
}

void sk_metrics_session(sk_metrics *m, const char *tls)
{
    if (!tls) {
        m->sessions_plain++;
        return;
    }
    size_t n = sizeof m->sessions_tls / sizeof m->sessions_tls[0];
    for (size_t i = 0; i < n; i++) {
        if (!m->sessions_tls[i].version) {
            m->sessions_tls[i].version = tls;
            m->sessions_tls[i].n = 1;
            return;
        }
        if (!strcmp(m->sessions_tls[i].version, tls)) {
            m->sessions_tls[i].n++;
            return;
        }
    }
    /* more versions than slots cannot happen with TLS 1.2+ only; count the
     * session in the last slot's version rather than lose it */
    m->sessions_tls[n - 1].n++;
}

static void count_code(unsigned long long *by_code, int code)
{
    if (code >= 100 && code < SK_METRICS_CODES)
        by_code[code]++;
}

void sk_metrics_transaction(sk_metrics *m, int code)
{
    count_code(m->transactions, code);
}

void sk_metrics_recipient(sk_metrics *m, int code)
{
    count_code(m->recipients, code);
}

void sk_metrics_auth(sk_metrics *m, int code)
{
    count_code(m->auth, code);
}

void sk_metrics_commit(sk_metrics *m, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    for (size_t i = 0; i < SK_METRICS_BUCKETS; i++)
        if (seconds <= sk_metrics_bucket_bounds[i])
            m->commit_buckets[i]++;
    m->commit_count++;
    m->commit_sum += seconds;
}

/* The numeric value of " result=NNN" in line, or -1. */
static int result_code(const char *line)
{
    const char *r = strstr(line, " result=");
    if (!r)
        return -1;
    r += 8;
    if (r[0] < '1' || r[0] > '5' || r[1] < '0' || r[1] > '9' || r[2] < '0' || r[2] > '9' ||
        (r[3] != '\0' && r[3] != ' '))
        return -1;
    return (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
}

void sk_metrics_log_line(sk_metrics *m, const char *line)
{
    if (!strncmp(line, "event=message ", 14))
        count_code(m->transactions, result_code(line));
    else if (!strncmp(line, "event=auth ", 11))
        count_code(m->auth, result_code(line));
}

static int family(sk_buf *out, const char *name, const char *type, const char *help)
{
    return sk_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family of counters by reply code, labelled class="2xx" and code. */
static int by_code(sk_buf *out, const char *name, const char *help,
                   const unsigned long long *counts)
{
    int r = family(out, name, "counter", help);
    for (int code = 100; code < SK_METRICS_CODES && r == 0; code++)
        if (counts[code])
            r = sk_buf_printf(out, "%s{class=\"%dxx\",code=\"%d\"} %llu\n", name, code / 100, code,
                              counts[code]);
    return r;
}

int sk_metrics_render(const sk_metrics *m, unsigned open, sk_buf *out)
{
    int r = 0;
    r |= family(out, "smtpkit_connections_open", "gauge", "Client connections open now.");
    r |= sk_buf_printf(out, "smtpkit_connections_open %u\n", open);
    r |= family(out, "smtpkit_connections_total", "counter", "Client connections accepted.");
    r |= sk_buf_printf(out, "smtpkit_connections_total %llu\n", m->connections_total);
    r |= family(out, "smtpkit_connections_refused_total", "counter",
                "Connections closed before their session started, by reason.");
    for (int i = 0; i < SK_REFUSED_N; i++)
        r |= sk_buf_printf(out, "smtpkit_connections_refused_total{reason=\"%s\"} %llu\n",
                           refusal_names[i], m->refused[i]);
    r |= family(out, "smtpkit_sessions_total", "counter",
                "Sessions ended, by the TLS version they used (none: plaintext).");
    r |= sk_buf_printf(out, "smtpkit_sessions_total{tls=\"none\"} %llu\n", m->sessions_plain);
    for (size_t i = 0; i < sizeof m->sessions_tls / sizeof m->sessions_tls[0]; i++)
        if (m->sessions_tls[i].version)
            r |= sk_buf_printf(out, "smtpkit_sessions_total{tls=\"%s\"} %llu\n",
                               m->sessions_tls[i].version, m->sessions_tls[i].n);
    r |= by_code(out, "smtpkit_transactions_total",
                 "Mail transactions ended with a reply to their data, by that reply.",
                 m->transactions);
    r |= by_code(out, "smtpkit_recipients_total", "RCPT commands, by the reply.", m->recipients);
    r |= by_code(out, "smtpkit_auth_total", "AUTH exchanges, by the final reply.", m->auth);
    r |= family(out, "smtpkit_received_bytes_total", "counter",
                "Octets received from clients (commands and message data).");
    r |= sk_buf_printf(out, "smtpkit_received_bytes_total %llu\n", m->bytes_received);
    r |= family(out, "smtpkit_commit_seconds", "histogram",
                "Time from the end of a message's data to its commit (fsynced), in seconds.");
    for (size_t i = 0; i < SK_METRICS_BUCKETS; i++)
        r |= sk_buf_printf(out, "smtpkit_commit_seconds_bucket{le=\"%g\"} %llu\n",
                           sk_metrics_bucket_bounds[i], m->commit_buckets[i]);
    r |= sk_buf_printf(out, "smtpkit_commit_seconds_bucket{le=\"+Inf\"} %llu\n", m->commit_count);
    r |= sk_buf_printf(out, "smtpkit_commit_seconds_sum %.6f\n", m->commit_sum);
    r |= sk_buf_printf(out, "smtpkit_commit_seconds_count %llu\n", m->commit_count);
    return r ? -1 : 0;
}

int sk_metrics_render_queue(const sk_agent_queue_stats *q, long long now, sk_buf *out)
{
    static const char *const names[SK_AGENT_STATES] = {"pending", "deferred", "held"};
    int r = 0;
    r |= family(out, "smtpkit_queue_messages", "gauge",
                "Messages in the outbound queue, by state (pending: a recipient never tried; "
                "deferred: waiting for a retry; held: only held recipients left).");
    for (int s = 0; s < SK_AGENT_STATES; s++)
        r |= sk_buf_printf(out, "smtpkit_queue_messages{state=\"%s\"} %llu\n", names[s],
                           q->state[s].messages);
    r |= family(out, "smtpkit_queue_recipients", "gauge",
                "Recipients still to deliver in the outbound queue, by state.");
    for (int s = 0; s < SK_AGENT_STATES; s++)
        r |= sk_buf_printf(out, "smtpkit_queue_recipients{state=\"%s\"} %llu\n", names[s],
                           q->state[s].recipients);
    r |= family(out, "smtpkit_queue_oldest_age_seconds", "gauge",
                "Age of the oldest message in each state (0: none), in seconds since arrival.");
    for (int s = 0; s < SK_AGENT_STATES; s++) {
        long long age = q->state[s].messages ? now - q->state[s].oldest_arrival : 0;
        r |= sk_buf_printf(out, "smtpkit_queue_oldest_age_seconds{state=\"%s\"} %lld\n", names[s],
                           age < 0 ? 0 : age);
    }
    r |= family(out, "smtpkit_queue_unreadable", "gauge",
                "Queue records that could not be read (see event=queue-broken in the log).");
    r |= sk_buf_printf(out, "smtpkit_queue_unreadable %llu\n", q->unreadable);
    r |= family(out, "smtpkit_deliveries_total", "counter",
                "Recipient delivery attempts by result, as the event=delivery log lines.");
    r |= sk_buf_printf(out, "smtpkit_deliveries_total{result=\"sent\"} %llu\n", q->sent);
    r |= sk_buf_printf(out, "smtpkit_deliveries_total{result=\"deferred\"} %llu\n", q->deferred);
    r |= sk_buf_printf(out, "smtpkit_deliveries_total{result=\"bounced\"} %llu\n", q->bounced);
    return r ? -1 : 0;
}
