/*
 * cmd_bench.c - `smtpkit bench`: a load test of one SMTP server (in the
 * spirit of Postfix smtp-source). Parses the options, runs the engine in
 * src/client/bench.c (sk_bench_run) and prints what it measured, for
 * people or as JSON. RFC 5321 (the mail transaction), RFC 2920
 * (PIPELINING), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "client/json_writer.h"
#include "smtpkit/bench.h"

static const char *usage_text =
    "usage: smtpkit bench --server HOST[:PORT] --to ADDR [OPTIONS]\n"
    "\n"
    "Sends many messages over many concurrent sessions to one server and\n"
    "reports throughput and latency. Stops after --messages or --duration,\n"
    "whichever comes first.\n"
    "\n"
    "  -s, --server HOST[:PORT]  server to load (default port 25; 465 with --tls)\n"
    "  -c, --concurrency N       sessions at once (default 10, at most 10000)\n"
    "  -n, --messages N          messages in all (default 1000, at most 10000000)\n"
    "      --per-connection K    messages per connection before QUIT (default 1)\n"
    "      --size BYTES          body octets per message (default 1024)\n"
    "      --rcpts R             recipients per message (default 1)\n"
    "  -f, --from ADDR           sender (default bench@localhost; \"\" for <>)\n"
    "      --to ADDR             recipient (repeatable; messages go round-robin)\n"
    "      --helo NAME           name for EHLO (default: this host's name)\n"
    "      --pipelining          pipeline MAIL, RCPT and DATA when offered\n"
    "      --starttls            STARTTLS on every connection (required)\n"
    "      --tls                 implicit TLS from the first byte\n"
    "  -k, --insecure            accept a certificate that does not verify\n"
    "      --cafile FILE         trust the CA certificates in FILE too\n"
    "  -d, --duration SECS       upper bound on the whole run (default 60)\n"
    "  -t, --timeout SECS        limit for each step: connect, each reply (default 30)\n"
    "      --json                machine-readable output\n"
    "  -h, --help                this text\n"
    "\n"
    "Exit status: 0 every message accepted; 1 some message refused, failed or\n"
    "not sent; 2 usage error; 3 no connection could be made; 4 TLS failure;\n"
    "5 name not resolved; 6 the server does not speak SMTP.\n";

#define MEASURED                                                                                   \
    "latency is per accepted message, from sending MAIL to reading the 2xx reply after the "       \
    "data (a 2xx means the server took responsibility; smtpkit serve sends it after fsync); "      \
    "connect is from connect() to the 220 greeting (TLS handshake included with --tls); "          \
    "rates are accepted messages and established connections per second of wall time, first "      \
    "connect to last session end; the client is one event-loop thread"

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smtpkit bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see smtpkit bench --help)\n");
    va_end(ap);
    return SK_EXIT_USAGE;
}

/* A whole decimal number in 1..max (0..max with allow_zero). */
static int parse_count(const char *opt, const char *s, unsigned long long max, int allow_zero,
                       const char *what, unsigned long long *out)
{
    if (!*s || strlen(s) > 20)
        return usage_error("%s '%s': not a number", opt, s);
    unsigned long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return usage_error("%s '%s': not a whole number", opt, s);
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return usage_error("%s %s: at most %llu %s", opt, s, max, what);
        v = v * 10 + d;
    }
    if (v == 0 && !allow_zero)
        return usage_error("%s 0: at least 1 %s", opt, what);
    *out = v;
    return 0;
}

static int parse_secs(const char *opt, const char *s, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || !(v > 0) || v > max)
        return usage_error("%s '%s': seconds, more than 0 and at most %g", opt, s, max);
    *out = v;
    return 0;
}

static void print_latency(const char *name, const char *what, const sk_bench_latency *l)
{
    printf("%-12s %s (ms):\n", name, what);
    if (l->n == 0) {
        printf("%-12s none measured\n", "");
        return;
    }
    printf("%-12s p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (min %.2f, mean %.2f, n=%llu)\n", "",
           l->p50, l->p90, l->p99, l->max, l->min, l->mean, l->n);
}

static void print_text(const sk_bench_opts *o, const sk_bench_result *r)
{
    printf("smtpkit bench: %s, %u session%s, %llu message%s of %zu body octets, %u per "
           "connection, %u recipient%s each\n",
           r->address, o->concurrency, o->concurrency == 1 ? "" : "s", o->messages,
           o->messages == 1 ? "" : "s", o->size, o->per_connection, o->rcpts,
           o->rcpts == 1 ? "" : "s");
    printf("%-12s %s\n", "pipelining",
           r->pipelining_used ? "used"
           : o->pipelining    ? "asked, not offered"
                              : "off");
    if (r->tls_used)
        printf("%-12s %s %s (%s)\n", "tls", r->tls_version, r->tls_cipher,
               o->tls ? "implicit" : "STARTTLS");
    else
        printf("%-12s %s\n", "tls", o->tls || o->starttls ? "asked, never established" : "none");
    printf("%-12s %llu requested: %llu sent, %llu accepted, %llu refused (%llu 4xx, %llu 5xx), "
           "%llu failed, %llu not sent\n",
           "messages", r->requested, r->sent, r->accepted, r->refused, r->refused_4xx,
           r->refused_5xx, r->failed, r->not_sent);
    printf("%-12s %llu accepted, %llu refused\n", "recipients", r->rcpts_accepted,
           r->rcpts_refused);
    printf("%-12s %llu attempted: %llu established, %llu failed; %llu ended in an error\n",
           "connections", r->conn_attempted, r->conn_established, r->conn_failed, r->conn_errors);
    printf("%-12s %.3f s%s\n", "elapsed", r->elapsed_s,
           r->time_limit_reached ? " (the --duration limit ended the run)" : "");
    printf("%-12s %.1f messages/s, %.1f connections/s\n", "throughput", r->msgs_per_s,
           r->conns_per_s);
    print_latency("latency", "per message, MAIL sent to the 2xx after the data", &r->latency);
    print_latency("connect", "connect() to the 220 greeting", &r->connect);
    if (r->ncodes) {
        printf("%-12s", "refusals");
        for (size_t i = 0; i < r->ncodes; i++)
            printf(" %d x%llu%s", r->codes[i].code, r->codes[i].count,
                   i + 1 < r->ncodes ? "," : "");
        printf("\n%-12s first: %s\n", "", r->first_refusal);
    }
    if (r->first_error[0])
        printf("%-12s first: %s\n", "errors", r->first_error);
    printf("measured: %s.\n", MEASURED);
}

static void json_latency(sk_json *j, const char *key, const sk_bench_latency *l)
{
    sk_json_key(j, key);
    sk_json_begin_object(j);
    sk_json_kv_int(j, "n", (long long)l->n);
    const char *names[] = {"min", "mean", "p50", "p90", "p99", "max"};
    const double vals[] = {l->min, l->mean, l->p50, l->p90, l->p99, l->max};
    for (size_t i = 0; i < 6; i++) {
        sk_json_key(j, names[i]);
        if (l->n)
            sk_json_double(j, vals[i], 3);
        else
            sk_json_null(j);
    }
    sk_json_end_object(j);
}

static int print_json(const sk_bench_opts *o, const sk_bench_result *r, const char *error)
{
    sk_buf b;
    sk_buf_init(&b, 1u << 20);
    sk_json j;
    sk_json_init(&j, &b);
    sk_json_begin_object(&j);
    sk_json_kv_string(&j, "server", r->address[0] ? r->address : o->host);
    sk_json_key(&j, "options");
    sk_json_begin_object(&j);
    sk_json_kv_int(&j, "concurrency", o->concurrency);
    sk_json_kv_int(&j, "messages", (long long)o->messages);
    sk_json_kv_int(&j, "per_connection", o->per_connection);
    sk_json_kv_int(&j, "size", (long long)o->size);
    sk_json_kv_int(&j, "rcpts", o->rcpts);
    sk_json_kv_bool(&j, "pipelining", o->pipelining);
    sk_json_kv_bool(&j, "starttls", o->starttls);
    sk_json_kv_bool(&j, "tls", o->tls);
    sk_json_key(&j, "duration_s");
    sk_json_double(&j, o->duration_s, 3);
    sk_json_key(&j, "timeout_s");
    sk_json_double(&j, o->timeout_s, 3);
    sk_json_end_object(&j);

    sk_json_key(&j, "messages");
    sk_json_begin_object(&j);
    sk_json_kv_int(&j, "requested", (long long)r->requested);
    sk_json_kv_int(&j, "sent", (long long)r->sent);
    sk_json_kv_int(&j, "accepted", (long long)r->accepted);
    sk_json_kv_int(&j, "refused", (long long)r->refused);
    sk_json_kv_int(&j, "refused_4xx", (long long)r->refused_4xx);
    sk_json_kv_int(&j, "refused_5xx", (long long)r->refused_5xx);
    sk_json_kv_int(&j, "failed", (long long)r->failed);
    sk_json_kv_int(&j, "not_sent", (long long)r->not_sent);
    sk_json_end_object(&j);
    sk_json_key(&j, "recipients");
    sk_json_begin_object(&j);
    sk_json_kv_int(&j, "accepted", (long long)r->rcpts_accepted);
    sk_json_kv_int(&j, "refused", (long long)r->rcpts_refused);
    sk_json_end_object(&j);
    sk_json_key(&j, "connections");
    sk_json_begin_object(&j);
    sk_json_kv_int(&j, "attempted", (long long)r->conn_attempted);
    sk_json_kv_int(&j, "established", (long long)r->conn_established);
    sk_json_kv_int(&j, "failed", (long long)r->conn_failed);
    sk_json_kv_int(&j, "errors", (long long)r->conn_errors);
    sk_json_end_object(&j);
    sk_json_key(&j, "elapsed_s");
    sk_json_double(&j, r->elapsed_s, 4);
    sk_json_key(&j, "messages_per_s");
    sk_json_double(&j, r->msgs_per_s, 2);
    sk_json_key(&j, "connections_per_s");
    sk_json_double(&j, r->conns_per_s, 2);
    json_latency(&j, "latency_ms", &r->latency);
    json_latency(&j, "connect_ms", &r->connect);
    sk_json_key(&j, "refusal_codes");
    sk_json_begin_array(&j);
    for (size_t i = 0; i < r->ncodes; i++) {
        sk_json_begin_object(&j);
        sk_json_kv_int(&j, "code", r->codes[i].code);
        sk_json_kv_int(&j, "count", (long long)r->codes[i].count);
        sk_json_end_object(&j);
    }
    sk_json_end_array(&j);
    sk_json_kv_string(&j, "first_refusal", r->first_refusal[0] ? r->first_refusal : NULL);
    sk_json_kv_string(&j, "first_error", r->first_error[0] ? r->first_error : NULL);
    sk_json_kv_bool(&j, "pipelining_used", r->pipelining_used);
    sk_json_key(&j, "tls");
    if (r->tls_used) {
        sk_json_begin_object(&j);
        sk_json_kv_string(&j, "version", r->tls_version);
        sk_json_kv_string(&j, "cipher", r->tls_cipher);
        sk_json_end_object(&j);
    } else {
        sk_json_null(&j);
    }
    sk_json_kv_bool(&j, "time_limit_reached", r->time_limit_reached);
    sk_json_kv_bool(&j, "aborted", r->aborted);
    sk_json_kv_string(&j, "error", error);
    sk_json_kv_string(&j, "measured", MEASURED);
    sk_json_end_object(&j);
    int ok = !j.failed;
    if (ok)
        printf("%s\n", b.data);
    sk_buf_free(&b);
    return ok ? 0 : -1;
}

int sk_cmd_bench(int argc, char **argv)
{
    enum {
        O_PERCONN = 256,
        O_SIZE,
        O_RCPTS,
        O_TO,
        O_HELO,
        O_PIPE,
        O_STARTTLS,
        O_TLS,
        O_CA,
        O_JSON
    };
    static const struct option lo[] = {
        {"server", required_argument, 0, 's'},
        {"concurrency", required_argument, 0, 'c'},
        {"messages", required_argument, 0, 'n'},
        {"per-connection", required_argument, 0, O_PERCONN},
        {"size", required_argument, 0, O_SIZE},
        {"rcpts", required_argument, 0, O_RCPTS},
        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, O_TO},
        {"helo", required_argument, 0, O_HELO},
        {"pipelining", no_argument, 0, O_PIPE},
        {"starttls", no_argument, 0, O_STARTTLS},
        {"tls", no_argument, 0, O_TLS},
        {"insecure", no_argument, 0, 'k'},
        {"cafile", required_argument, 0, O_CA},
        {"duration", required_argument, 0, 'd'},
        {"timeout", required_argument, 0, 't'},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    sk_bench_opts o;
    sk_bench_defaults(&o);
    static const char *to[SK_BENCH_MAX_TO];
    size_t nto = 0;
    const char *server = NULL;
    int json = 0;
    char helo[256];
    if (gethostname(helo, sizeof helo) != 0 || !helo[0])
        snprintf(helo, sizeof helo, "localhost");
    helo[sizeof helo - 1] = '\0';
    o.helo = helo;
    unsigned long long v;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":s:c:n:f:kd:t:h", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            server = optarg;
            break;
        case 'c':
            if (parse_count("--concurrency", optarg, SK_BENCH_MAX_CONCURRENCY, 0,
                            "sessions at once", &v))
                return SK_EXIT_USAGE;
            o.concurrency = (unsigned)v;
            break;
        case 'n':
            if (parse_count("--messages", optarg, SK_BENCH_MAX_MESSAGES, 0, "messages", &v))
                return SK_EXIT_USAGE;
            o.messages = v;
            break;
        case O_PERCONN:
            if (parse_count("--per-connection", optarg, SK_BENCH_MAX_PER_CONNECTION, 0,
                            "messages per connection", &v))
                return SK_EXIT_USAGE;
            o.per_connection = (unsigned)v;
            break;
        case O_SIZE:
            if (parse_count("--size", optarg, SK_BENCH_MAX_SIZE, 1, "octets", &v))
                return SK_EXIT_USAGE;
            o.size = (size_t)v;
            break;
        case O_RCPTS:
            if (parse_count("--rcpts", optarg, SK_BENCH_MAX_RCPTS, 0, "recipients per message", &v))
                return SK_EXIT_USAGE;
            o.rcpts = (unsigned)v;
            break;
        case 'f':
            o.from = optarg;
            break;
        case O_TO:
            if (nto >= SK_BENCH_MAX_TO)
                return usage_error("at most %u --to addresses", SK_BENCH_MAX_TO);
            to[nto++] = optarg;
            break;
        case O_HELO:
            o.helo = optarg;
            break;
        case O_PIPE:
            o.pipelining = 1;
            break;
        case O_STARTTLS:
            o.starttls = 1;
            break;
        case O_TLS:
            o.tls = 1;
            break;
        case 'k':
            o.insecure = 1;
            break;
        case O_CA:
            o.cafile = optarg;
            break;
        case 'd':
            if (parse_secs("--duration", optarg, SK_BENCH_MAX_DURATION, &o.duration_s))
                return SK_EXIT_USAGE;
            break;
        case 't':
            if (parse_secs("--timeout", optarg, SK_BENCH_MAX_TIMEOUT, &o.timeout_s))
                return SK_EXIT_USAGE;
            break;
        case O_JSON:
            json = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SK_EXIT_OK;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!server)
        return usage_error("--server HOST[:PORT] is required");
    if (nto == 0)
        return usage_error("--to ADDR is required (the recipient of the messages)");
    if (o.starttls && o.tls)
        return usage_error("--starttls and --tls exclude each other");
    char host[256];
    int port;
    if (sk_target_parse(server, host, sizeof host, &port) < 0)
        return usage_error("bad server '%s' (HOST, HOST:PORT or [IPv6]:PORT)", server);
    o.host = host;
    o.port = port > 0 ? port : o.tls ? 465 : 25;
    o.to = to;
    o.nto = nto;
    char err[256];
    if (sk_bench_check(&o, err, sizeof err) < 0)
        return usage_error("%s", err);

    sk_bench_result r;
    if (sk_bench_run(&o, &r, err, sizeof err) < 0) {
        fprintf(stderr, "smtpkit bench: %s\n", err);
        if (json)
            print_json(&o, &r, err);
        return sk_client_exit_status(r.abort_kind);
    }
    const char *error = NULL;
    char abort_msg[512];
    if (r.aborted) {
        snprintf(abort_msg, sizeof abort_msg, "no connection to %s worked: %s", r.address,
                 r.first_error[0] ? r.first_error : "unknown error");
        error = abort_msg;
        fprintf(stderr, "smtpkit bench: %s\n", abort_msg);
    }
    if (json) {
        if (print_json(&o, &r, error) < 0) {
            fprintf(stderr, "smtpkit bench: output too large\n");
            return SK_EXIT_REFUSED;
        }
    } else {
        print_text(&o, &r);
    }
    fflush(stdout);
    if (r.aborted)
        return sk_client_exit_status(r.abort_kind);
    return r.accepted == r.requested ? SK_EXIT_OK : SK_EXIT_REFUSED;
}
