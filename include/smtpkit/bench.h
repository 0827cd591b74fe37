/*
 * bench.h - the SMTP load generator behind `smtpkit bench` (in the spirit
 * of Postfix smtp-source): many concurrent client sessions against one
 * server, each sending mail transactions (RFC 5321 3.3) with optional
 * PIPELINING (RFC 2920), STARTTLS (RFC 3207) or implicit TLS (RFC 8314),
 * and a result with message counts, throughput and latency percentiles.
 *
 * sk_bench_run() runs one benchmark to the end and returns. It is bounded
 * in count (at most `messages` transactions, at most one connection per
 * message) and in time (`duration_s`, after which every session is cut
 * off), so it always stops by itself.
 */
#ifndef SMTPKIT_BENCH_H
#define SMTPKIT_BENCH_H

#include <stddef.h>

#include "smtpkit/client.h"

#define SK_BENCH_MAX_CONCURRENCY 10000u
#define SK_BENCH_MAX_MESSAGES 10000000ull
#define SK_BENCH_MAX_PER_CONNECTION 1000000u
#define SK_BENCH_MAX_RCPTS 1000u
#define SK_BENCH_MAX_SIZE (64u * 1024 * 1024) /* body octets */
#define SK_BENCH_MAX_TO 1000u                 /* distinct recipient addresses */
#define SK_BENCH_MAX_DURATION 86400.0         /* seconds */
#define SK_BENCH_MAX_TIMEOUT 3600.0           /* seconds */

typedef struct sk_bench_opts {
    const char *host;            /* host name or IP literal (resolved once) */
    int port;                    /* 1..65535 */
    unsigned concurrency;        /* sessions at once, 1..SK_BENCH_MAX_CONCURRENCY */
    unsigned long long messages; /* total transactions, 1..SK_BENCH_MAX_MESSAGES */
    unsigned per_connection;     /* transactions per connection before QUIT, >= 1 */
    size_t size;                 /* body octets per message (headers come on top) */
    unsigned rcpts;              /* recipients per message, 1..SK_BENCH_MAX_RCPTS */
    const char *from;            /* reverse-path (without <>) */
    const char *const *to;       /* recipient addresses, used round-robin */
    size_t nto;                  /* 1..SK_BENCH_MAX_TO */
    const char *helo;            /* EHLO name; NULL: "localhost" */
    int pipelining;              /* pipeline MAIL/RCPT/DATA when PIPELINING is offered */
    int starttls;                /* STARTTLS after EHLO (required: no TLS, no mail) */
    int tls;                     /* implicit TLS from the first byte */
    int insecure;                /* accept a certificate that does not verify */
    const char *cafile;          /* extra CA bundle (PEM), or NULL */
    double duration_s;           /* upper bound on the whole run, > 0 */
    double timeout_s;            /* each step: connect, each reply; > 0 */
} sk_bench_opts;

/* Fill `o` with the defaults (10 sessions, 1000 messages, 1 per connection,
 * 1024 octets, 1 recipient, 60 s, 30 s per step); host, port and to must
 * still be set. */
void sk_bench_defaults(sk_bench_opts *o);

/* Check the options against the limits above. 0, or -1 with a plain-words
 * reason in err. */
int sk_bench_check(const sk_bench_opts *o, char *err, size_t errlen);

/* Percentiles of a set of durations, in milliseconds (nearest rank). */
typedef struct sk_bench_latency {
    unsigned long long n;
    double min, mean, p50, p90, p99, max;
} sk_bench_latency;

#define SK_BENCH_CODES 8 /* distinct refusal codes kept */

typedef struct sk_bench_result {
    /* Messages: every requested message is exactly one of accepted,
     * refused, failed (a transaction started, no verdict: the connection
     * broke, a step timed out or the time limit cut it off) or not sent
     * (never started: its connection failed, or the time ran out). */
    unsigned long long requested, sent, accepted, refused, failed, not_sent;
    unsigned long long refused_4xx, refused_5xx;
    unsigned long long rcpts_accepted, rcpts_refused;
    /* Connections: attempted = established (greeting and EHLO done) +
     * failed (could not connect, greeting or EHLO refused, TLS failure,
     * or cut off by the time limit before it was established). */
    unsigned long long conn_attempted, conn_established, conn_failed;
    unsigned long long conn_errors; /* connections that ended in an error at any point */
    double elapsed_s;               /* first connect to the last session's end */
    double msgs_per_s;              /* accepted / elapsed */
    double conns_per_s;             /* established / elapsed */
    sk_bench_latency latency;       /* accepted messages: MAIL sent to the final 2xx */
    sk_bench_latency connect;       /* connect() started to the 220 greeting */
    int time_limit_reached;         /* duration_s ended the run */
    int aborted;                    /* no connection ever worked: the run stopped */
    sk_client_err abort_kind;       /* why, when aborted */
    int pipelining_used;            /* some session pipelined */
    int tls_used;                   /* sessions ran over TLS */
    char tls_version[32], tls_cipher[96];
    char address[128]; /* "127.0.0.1:2525": where we connected */
    struct {
        int code;
        unsigned long long count;
    } codes[SK_BENCH_CODES]; /* reply codes that decided refusals */
    size_t ncodes;
    char first_refusal[256]; /* the first refusal, as one line */
    char first_error[256];   /* the first connection error, in words */
} sk_bench_result;

/*
 * Run the benchmark. Returns 0 when it ran (look at the result; an
 * aborted run is one whose connections all failed), or -1 with err set
 * when it could not start (bad options, name not resolved, no descriptors,
 * TLS set-up); then r->abort_kind says which (SK_CLIENT_ERR_USAGE,
 * SK_CLIENT_ERR_DNS, SK_CLIENT_ERR_TLS, SK_CLIENT_ERR_NOMEM).
 * SIGPIPE is ignored while it runs and restored afterwards.
 */
int sk_bench_run(const sk_bench_opts *o, sk_bench_result *r, char *err, size_t errlen);

/* Percentiles of n durations (ms); sorts v in place. */
void sk_bench_percentiles(float *v, size_t n, sk_bench_latency *out);

#endif
