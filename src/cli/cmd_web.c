/*
 * cmd_web.c - `smtpkit web [--listen ADDR:PORT]`: the seed's online SMTP
 * checker as a local web page, served with libevent's evhttp. The form
 * takes a host or domain, the "Advanced Output" box and a Check or an
 * Audit button; the result is the probe-style dialogue with every reply
 * explained (src/client/web_check.c) or the audit report (smtpkit-audit(1)).
 *
 * Never an open proxy: it listens on loopback unless --allow-remote is
 * given, connects only to ports 25, 465 and 587 unless --allow-port adds
 * one, allows each client address a few runs per minute, runs at most
 * --max-jobs at once, and bounds every run in time (each wait, the whole
 * run, and a hard kill of the process that runs it). Each run happens in a
 * child process, so the blocking client never stalls the page server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "client/web_check.h"
#include "smtpkit/audit.h"
#include "smtpkit/client.h"

#define WEB_EXIT_USAGE 2
#define PORTS_MAX 32
#define CLIENTS_MAX 256
#define OUTPUT_MAX (8u * 1024 * 1024)

static const char *usage_text =
    "usage: smtpkit web [OPTIONS]\n"
    "\n"
    "Serves the online SMTP checker as a local web page: a host or domain, an\n"
    "\"Advanced Output\" box, Check (the dialogue, every reply explained) and Audit\n"
    "(smtpkit audit's report).\n"
    "\n"
    "      --listen ADDR:PORT  where to listen (default 127.0.0.1:8025)\n"
    "      --allow-remote      allow a --listen address other than loopback\n"
    "      --allow-port N      also allow checks of port N (default: 25, 465, 587)\n"
    "      --per-client N      runs per minute per client address (default 6)\n"
    "      --max-jobs N        runs at the same time (default 4)\n"
    "      --audit-rate N      connections per second of an audit (default 2)\n"
    "  -t, --timeout SECS      limit for each wait of a run (default 10)\n"
    "      --max-time SECS     limit for a whole run (default 60)\n"
    "      --helo NAME         name sent with EHLO (default: this host's name)\n"
    "  -h, --help              this text\n";

typedef struct client_budget {
    char addr[64];
    double tokens, last;
} client_budget;

typedef struct web_ctx {
    struct event_base *base;
    int ports[PORTS_MAX];
    size_t nports;
    double per_client; /* runs per minute */
    int max_jobs, jobs;
    int timeout_ms;
    double max_time;
    double audit_rate;
    const char *helo;
    client_budget clients[CLIENTS_MAX];
} web_ctx;

typedef struct job {
    web_ctx *ctx;
    pid_t pid;
    int fd;
    struct event *ev, *timer;
    struct evhttp_request *req;
    sk_buf out;
    char host[300];
    int advanced;
    int timed_out;
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Leaky bucket per client address: `per_client` runs a minute, bursts of
 * that many. The table is fixed; the stalest entry makes room. */
static int take_token(web_ctx *w, const char *addr, double *wait)
{
    double t = now_s();
    client_budget *b = NULL, *oldest = &w->clients[0];
    for (size_t i = 0; i < CLIENTS_MAX; i++) {
        if (!strcmp(w->clients[i].addr, addr)) {
            b = &w->clients[i];
            break;
        }
        if (w->clients[i].last < oldest->last)
            oldest = &w->clients[i];
    }
    if (!b) {
        b = oldest;
        snprintf(b->addr, sizeof b->addr, "%s", addr);
        b->tokens = w->per_client;
        b->last = t;
    }
    b->tokens += (t - b->last) * w->per_client / 60.0;
    if (b->tokens > w->per_client)
        b->tokens = w->per_client;
    b->last = t;
    if (b->tokens < 1.0) {
        *wait = (1.0 - b->tokens) * 60.0 / w->per_client;
        return -1;
    }
    b->tokens -= 1.0;
    return 0;
}

static void send_page(struct evhttp_request *req, int status, const char *reason, const char *host,
                      int advanced, const char *result)
{
    sk_buf page;
    sk_buf_init(&page, 0);
    sk_web_page(&page, host, advanced, result);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add(b, page.data ? page.data : "", page.len);
        evhttp_send_reply(req, status, reason, b);
        evbuffer_free(b);
    } else {
        evhttp_send_error(req, 500, "out of memory");
    }
    sk_buf_free(&page);
}

static void message_page(struct evhttp_request *req, int status, const char *reason,
                         const char *host, int advanced, const char *msg)
{
    sk_buf r;
    sk_buf_init(&r, 0);
    sk_buf_append_str(&r, "<div id=\"result\"><p class=\"error\" id=\"error\">");
    sk_html_escape(&r, msg);
    sk_buf_append_str(&r, "</p></div>\n");
    send_page(req, status, reason, host, advanced, r.data);
    sk_buf_free(&r);
}

static void peer_of(struct evhttp_request *req, char *out, size_t n)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    snprintf(out, n, "?");
    if (c) {
        evhttp_connection_get_peer(c, &addr, &port);
        if (addr)
            snprintf(out, n, "%s", addr);
    }
}

/* ---- runs in a child process ------------------------------------------ */

static void job_free(job *j)
{
    if (j->ev)
        event_free(j->ev);
    if (j->timer)
        event_free(j->timer);
    if (j->fd >= 0)
        close(j->fd);
    sk_buf_free(&j->out);
    j->ctx->jobs--;
    free(j);
}

static void job_finish(job *j)
{
    if (j->pid > 0) {
        kill(j->pid, SIGKILL); /* gone already after EOF; else too slow */
        waitpid(j->pid, NULL, 0);
        j->pid = -1;
    }
    if (j->req) {
        struct evhttp_connection *c = evhttp_request_get_connection(j->req);
        if (c)
            evhttp_connection_set_closecb(c, NULL, NULL);
        if (j->timed_out)
            sk_buf_append_str(&j->out, "<p class=\"error\" id=\"error\">The run took longer than "
                                       "its time limit and was stopped.</p>\n");
        send_page(j->req, 200, "OK", j->host, j->advanced, j->out.data ? j->out.data : "");
    }
    job_free(j);
}

static void on_job_output(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    (void)what;
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (j->out.len + (size_t)n <= OUTPUT_MAX)
                sk_buf_append(&j->out, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EINTR))
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* EOF or error: the run is over */
    }
    job_finish(j);
}

static void on_job_timeout(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    (void)fd;
    (void)what;
    j->timed_out = 1;
    job_finish(j);
}

static void on_conn_close(struct evhttp_connection *c, void *arg)
{
    job *j = arg;
    (void)c;
    j->req = NULL; /* the browser left: finish the run quietly */
}

static void run_in_child(web_ctx *w, int fd, const char *host, int advanced, int audit)
{
    alarm((unsigned)w->max_time + 15); /* a last resort: the parent kills sooner */
    sk_buf out;
    sk_buf_init(&out, OUTPUT_MAX);
    if (!audit) {
        sk_web_check_opts o = {host, advanced, w->timeout_ms, w->helo};
        sk_web_check_html(&o, &out);
    } else {
        char h[256], portstr[16];
        int port;
        sk_target_parse(host, h, sizeof h, &port);
        if (port < 0)
            port = 25;
        snprintf(portstr, sizeof portstr, "%d", port);
        sk_audit_opts o;
        memset(&o, 0, sizeof o);
        o.host = h;
        o.port = portstr;
        o.tls = port == 465 ? SK_AUDIT_TLS_IMPLICIT : SK_AUDIT_TLS_NONE;
        o.timeout_ms = w->timeout_ms;
        o.max_seconds = w->max_time;
        o.rate = w->audit_rate;
        o.helo = w->helo;
        o.from = "";
        o.rcpt = "postmaster";
        o.relay = "relay-test@example.net";
        o.max_stream = 0;
        sk_audit_report rep;
        sk_buf_append_str(&out, "<div id=\"result\">\n");
        if (sk_audit_run(&o, &rep) == 0)
            sk_audit_write_html(&rep, 1, &out);
        else
            sk_buf_append_str(&out, "<p class=\"error\">The audit could not start.</p>");
        sk_buf_append_str(&out, "</div>\n");
        sk_audit_report_free(&rep);
    }
    size_t off = 0;
    while (off < out.len) {
        ssize_t n = write(fd, out.data + off, out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    _exit(0);
}

static int start_job(web_ctx *w, struct evhttp_request *req, const char *host, int advanced,
                     int audit)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    j->ctx = w;
    j->fd = p[0];
    j->req = req;
    j->advanced = advanced;
    snprintf(j->host, sizeof j->host, "%s", host);
    sk_buf_init(&j->out, OUTPUT_MAX);
    w->jobs++;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[1]);
        j->req = NULL;
        job_free(j);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        signal(SIGPIPE, SIG_IGN);
        run_in_child(w, p[1], host, advanced, audit);
    }
    close(p[1]);
    j->pid = pid;
    evutil_make_socket_nonblocking(j->fd);
    j->ev = event_new(w->base, j->fd, EV_READ | EV_PERSIST, on_job_output, j);
    j->timer = evtimer_new(w->base, on_job_timeout, j);
    struct timeval tv = {(time_t)w->max_time + 10, 0};
    if (!j->ev || !j->timer || event_add(j->ev, NULL) < 0 || evtimer_add(j->timer, &tv) < 0) {
        j->req = NULL;
        job_finish(j);
        return -1;
    }
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (c)
        evhttp_connection_set_closecb(c, on_conn_close, j);
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

static int port_allowed(const web_ctx *w, int port)
{
    for (size_t i = 0; i < w->nports; i++)
        if (w->ports[i] == port)
            return 1;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    web_ctx *w = arg;
    char peer[64];
    peer_of(req, peer, sizeof peer);
    const char *uri = evhttp_request_get_uri(req);
    struct evhttp_uri *u = evhttp_uri_parse(uri);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || !*path)
        path = "/";
    if (!strcmp(path, "/")) {
        send_page(req, 200, "OK", "", 0, NULL);
        fprintf(stderr, "smtpkit web: %s GET / 200\n", peer);
        evhttp_uri_free(u);
        return;
    }
    if (strcmp(path, "/run") != 0) {
        evhttp_send_error(req, 404, "Not Found");
        evhttp_uri_free(u);
        return;
    }
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(u);
    if (query)
        evhttp_parse_query_str(query, &q);
    const char *host = evhttp_find_header(&q, "host");
    const char *adv = evhttp_find_header(&q, "advanced");
    const char *action = evhttp_find_header(&q, "action");
    int advanced = adv && *adv && strcmp(adv, "0") != 0;
    int audit = action && !strcmp(action, "audit");
    char h[256];
    int port = -1;
    char hostcopy[300];
    snprintf(hostcopy, sizeof hostcopy, "%s", host ? host : "");
    /* trim the spaces people paste around a name */
    char *hs = hostcopy;
    while (*hs == ' ')
        hs++;
    size_t hl = strlen(hs);
    while (hl && hs[hl - 1] == ' ')
        hs[--hl] = '\0';
    int status = 200;
    if (!*hs || strlen(hs) > 255 || sk_target_parse(hs, h, sizeof h, &port) < 0) {
        status = 400;
        message_page(req, 400, "Bad Request", hs, advanced,
                     "Enter a host name, an IP address, host:port or a mail domain.");
    } else if (!port_allowed(w, port < 0 ? 25 : port)) {
        status = 403;
        char msg[200];
        snprintf(msg, sizeof msg,
                 "Port %d is not allowed here: only the mail ports 25, 465 and 587 (and those "
                 "given with --allow-port).",
                 port);
        message_page(req, 403, "Forbidden", hs, advanced, msg);
    } else {
        double wait = 0;
        if (w->jobs >= w->max_jobs) {
            status = 503;
            message_page(req, 503, "Service Unavailable", hs, advanced,
                         "Too many checks are running; try again in a moment.");
        } else if (take_token(w, peer, &wait) < 0) {
            status = 429;
            char msg[200];
            snprintf(msg, sizeof msg, "Too many runs from your address; try again in %.0f s.",
                     wait + 0.5);
            message_page(req, 429, "Too Many Requests", hs, advanced, msg);
        } else if (start_job(w, req, hs, advanced, audit) < 0) {
            status = 500;
            message_page(req, 500, "Internal Server Error", hs, advanced,
                         "Could not start the run.");
        }
    }
    fprintf(stderr, "smtpkit web: %s GET /run host=%.100s action=%s advanced=%d -> %d\n", peer, hs,
            audit ? "audit" : "check", advanced, status);
    evhttp_clear_headers(&q);
    evhttp_uri_free(u);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static int parse_num(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return !strcmp(addr, "localhost");
}

int sk_cmd_web(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_REMOTE, O_PORT, O_PER, O_JOBS, O_MAXTIME, O_HELO, O_ARATE };
    static const struct option lo[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"allow-remote", no_argument, 0, O_REMOTE},
        {"allow-port", required_argument, 0, O_PORT},
        {"per-client", required_argument, 0, O_PER},
        {"max-jobs", required_argument, 0, O_JOBS},
        {"timeout", required_argument, 0, 't'},
        {"max-time", required_argument, 0, O_MAXTIME},
        {"helo", required_argument, 0, O_HELO},
        {"audit-rate", required_argument, 0, O_ARATE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static web_ctx w;
    memset(&w, 0, sizeof w);
    w.ports[0] = 25;
    w.ports[1] = 465;
    w.ports[2] = 587;
    w.nports = 3;
    w.per_client = 6;
    w.max_jobs = 4;
    w.timeout_ms = 10000;
    w.max_time = 60;
    w.audit_rate = 2;
    char helo[256];
    if (gethostname(helo, sizeof helo) != 0 || !helo[0])
        snprintf(helo, sizeof helo, "localhost");
    helo[sizeof helo - 1] = '\0';
    w.helo = helo;
    const char *listen = "127.0.0.1:8025";
    int allow_remote = 0;
    optind = 1;
    opterr = 0;
    int ch;
    double v;
    while ((ch = getopt_long(argc, argv, ":t:h", lo, NULL)) != -1) {
        switch (ch) {
        case O_LISTEN:
            listen = optarg;
            break;
        case O_REMOTE:
            allow_remote = 1;
            break;
        case O_PORT:
            if (parse_num(optarg, 1, 65535, &v) < 0 || w.nports >= PORTS_MAX) {
                fprintf(stderr, "smtpkit web: bad --allow-port '%s'\n", optarg);
                return WEB_EXIT_USAGE;
            }
            w.ports[w.nports++] = (int)v;
            break;
        case O_PER:
            if (parse_num(optarg, 1, 10000, &w.per_client) < 0) {
                fprintf(stderr, "smtpkit web: bad --per-client '%s'\n", optarg);
                return WEB_EXIT_USAGE;
            }
            break;
        case O_JOBS:
            if (parse_num(optarg, 1, 64, &v) < 0) {
                fprintf(stderr, "smtpkit web: bad --max-jobs '%s' (1-64)\n", optarg);
                return WEB_EXIT_USAGE;
            }
            w.max_jobs = (int)v;
            break;
        case 't':
            if (parse_num(optarg, 0.001, 3600, &v) < 0) {
                fprintf(stderr, "smtpkit web: bad --timeout '%s'\n", optarg);
                return WEB_EXIT_USAGE;
            }
            w.timeout_ms = (int)(v * 1000.0) > 0 ? (int)(v * 1000.0) : 1;
            break;
        case O_MAXTIME:
            if (parse_num(optarg, 1, 3600, &w.max_time) < 0) {
                fprintf(stderr, "smtpkit web: bad --max-time '%s'\n", optarg);
                return WEB_EXIT_USAGE;
            }
            break;
        case O_HELO:
            w.helo = optarg;
            break;
        case O_ARATE:
            if (parse_num(optarg, 0.01, 1000, &w.audit_rate) < 0) {
                fprintf(stderr, "smtpkit web: bad --audit-rate '%s'\n", optarg);
                return WEB_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            fprintf(stderr, "smtpkit web: option '%s' needs a value\n", argv[optind - 1]);
            return WEB_EXIT_USAGE;
        default:
            fprintf(stderr, "smtpkit web: unknown option '%s'\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return WEB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage_text, stderr);
        return WEB_EXIT_USAGE;
    }
    char addr[256];
    int port;
    if (sk_target_parse(listen, addr, sizeof addr, &port) < 0 || port < 0) {
        fprintf(stderr, "smtpkit web: bad --listen '%s' (ADDR:PORT)\n", listen);
        return WEB_EXIT_USAGE;
    }
    if (!is_loopback(addr) && !allow_remote) {
        fprintf(stderr,
                "smtpkit web: %s is not a loopback address; the page makes connections for "
                "whoever reaches it: add --allow-remote to listen there\n",
                addr);
        return WEB_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    w.base = event_base_new();
    struct evhttp *http = w.base ? evhttp_new(w.base) : NULL;
    if (!http) {
        fprintf(stderr, "smtpkit web: cannot create the HTTP server\n");
        return 1;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(http, 16384);
    evhttp_set_max_body_size(http, 0);
    evhttp_set_timeout(http, (int)w.max_time + 30);
    evhttp_set_gencb(http, on_request, &w);
    if (!evhttp_bind_socket_with_handle(http, addr, (ev_uint16_t)port)) {
        fprintf(stderr, "smtpkit web: cannot listen on %s: %s\n", listen, strerror(errno));
        evhttp_free(http);
        event_base_free(w.base);
        return 1;
    }
    struct event *sigint = evsignal_new(w.base, SIGINT, on_signal, w.base);
    struct event *sigterm = evsignal_new(w.base, SIGTERM, on_signal, w.base);
    if (sigint)
        event_add(sigint, NULL);
    if (sigterm)
        event_add(sigterm, NULL);
    fprintf(stderr, "smtpkit web: listening on http://%s%s%s:%d/\n", strchr(addr, ':') ? "[" : "",
            addr, strchr(addr, ':') ? "]" : "", port);
    event_base_dispatch(w.base);
    fprintf(stderr, "smtpkit web: stopping\n");
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    evhttp_free(http);
    event_base_free(w.base);
    return 0;
}
