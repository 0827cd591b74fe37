/*
 * metrics.h - the server's counters and their Prometheus text exposition
 * (format 0.0.4): connections open, accepted and refused by reason,
 * sessions by TLS version, transactions and recipients by reply code,
 * AUTH results, bytes received, the commit latency histogram, and the
 * outbound queue by state with delivery results (the delivery agent's). Updated
 * on the loop thread only; rendered by the `metrics` HTTP endpoint
 * (metrics_http.c).
 */
#ifndef SMTPKIT_SERVER_METRICS_H
#define SMTPKIT_SERVER_METRICS_H

#include <stddef.h>

#include "delivery/agent.h"
#include "smtpkit/buf.h"

/* Why a connection was closed before its session could start. */
typedef enum sk_refusal {
    SK_REFUSED_CONNECTIONS,        /* limits.connections (421 4.7.0) */
    SK_REFUSED_CONNECTIONS_PER_IP, /* limits.connections_per_ip (421 4.7.0) */
    SK_REFUSED_MEMORY,             /* no memory to count the address (421) */
    SK_REFUSED_PROXY_UNTRUSTED,    /* PROXY protocol: not from proxy_networks */
    SK_REFUSED_PROXY_MISSING,      /* ... no header */
    SK_REFUSED_PROXY_MALFORMED,    /* ... a malformed header */
    SK_REFUSED_PROXY_TIMEOUT,      /* ... not complete within proxy_timeout */
    SK_REFUSED_PROXY_EOF,          /* ... closed (or failed) before its end */
    SK_REFUSED_N
} sk_refusal;

#define SK_METRICS_CODES 600 /* reply codes 0..599 */
#define SK_METRICS_BUCKETS 12

typedef struct sk_metrics {
    unsigned long long connections_total;
    unsigned long long refused[SK_REFUSED_N];
    /* ended sessions: [0] without TLS, then by version name */
    unsigned long long sessions_plain;
    struct {
        const char *version; /* OpenSSL's static name, "TLSv1.3" */
        unsigned long long n;
    } sessions_tls[4];
    unsigned long long transactions[SK_METRICS_CODES]; /* by the reply to the data */
    unsigned long long recipients[SK_METRICS_CODES];   /* by the reply to RCPT */
    unsigned long long auth[SK_METRICS_CODES];         /* by the AUTH result */
    unsigned long long bytes_received;
    /* commit latency: cumulative counts per upper bound, and sum/count */
    unsigned long long commit_buckets[SK_METRICS_BUCKETS];
    unsigned long long commit_count;
    double commit_sum;
} sk_metrics;

/* The buckets' upper bounds in seconds (the +Inf bucket is commit_count). */
extern const double sk_metrics_bucket_bounds[SK_METRICS_BUCKETS];

void sk_metrics_refused(sk_metrics *m, sk_refusal why);
/* A session has ended, with TLS version `tls` (NULL: none). */
void sk_metrics_session(sk_metrics *m, const char *tls);
void sk_metrics_transaction(sk_metrics *m, int code);
void sk_metrics_recipient(sk_metrics *m, int code);
void sk_metrics_auth(sk_metrics *m, int code);
void sk_metrics_commit(sk_metrics *m, double seconds);

/* Count what a session log line reports: the reply to a transaction's
 * data ("event=message ... result=250"), an AUTH result ("event=auth ...
 * result=235"). Other lines are ignored. */
void sk_metrics_log_line(sk_metrics *m, const char *line);

/* Render the exposition text into out; open is the gauge of open
 * connections. 0, or -1 when out is full. */
int sk_metrics_render(const sk_metrics *m, unsigned open, sk_buf *out);

/* Append the outbound queue's families (the delivery agent's view at
 * `now`, Unix seconds): smtpkit_queue_messages, smtpkit_queue_recipients
 * and smtpkit_queue_oldest_age_seconds by state (gauges),
 * smtpkit_queue_unreadable (gauge) and smtpkit_deliveries_total by result
 * (counter). 0, or -1 when out is full. */
int sk_metrics_render_queue(const sk_agent_queue_stats *q, long long now, sk_buf *out);

#endif
