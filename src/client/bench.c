/*
 * bench.c - the load generator behind `smtpkit bench`: N concurrent SMTP
 * client sessions against one server, each running mail transactions
 * (RFC 5321 3.3: MAIL, RCPT..., DATA, the 250 after the data), pipelined
 * when asked and offered (RFC 2920), over STARTTLS (RFC 3207) or implicit
 * TLS (RFC 8314) when asked, with SIZE= when offered (RFC 1870).
 *
 * Design: one libevent loop drives every session as a non-blocking state
 * machine (the same loop library the server uses), rather than N threads
 * each running the blocking client. On a 2-core machine the server needs
 * one core for its own loop and fsync workers; one client thread leaves it
 * that core, costs no context switch per reply, and scales to 10000
 * sessions without 10000 stacks. Per message the client does a handful of
 * small writes and reads, builds a few hundred header octets and points at
 * one shared body (evbuffer_add_reference, no copy), so it stays far below
 * the server's cost (a file, an fsync, a link and a directory fsync).
 *
 * The SMTP dialogue itself is the library's sans-I/O client core
 * (client_core.c): this file only moves bytes between it and the socket,
 * runs the TLS handshakes it asks for, keeps its timers and counts its
 * events. Replies are read by the core's validating parser and matched to
 * the commands they answer in order (RFC 2920 3.1).
 *
 * Bounds: messages are handed out in advance to connections (at most
 * per_connection each), so there are at most `messages` connections; every
 * step (connect, each reply) has the timeout; the whole run has duration_s,
 * after which every session is closed; if every session's first connection
 * fails and none ever worked, the run stops at once.
 */
#include "smtpkit/bench.h"

#include "smtpkit/client_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define RBUF_HIGH (128 * 1024) /* stop reading beyond this much unfed input */
#define HDR_MAX 768            /* the generated header block of one message */
#define ADDR_MAX 254           /* RFC 5321 4.5.3.1.3: path of 256 octets incl. <> */
#define FD_RESERVE 32          /* descriptors besides the sessions' sockets */
#define BODY_LINE 76           /* characters per body line before CRLF */

typedef struct bench_run bench_run;

typedef struct bsess {
    bench_run *run;
    int fd;                  /* socket while the TCP connect is in progress */
    struct event *conn_ev;   /* waits for the TCP connect */
    struct bufferevent *bev; /* the connection once TCP is up */
    struct event *timer;     /* the step timeout */
    sk_client_core *core;    /* the SMTP dialogue of this connection */
    unsigned long wait_seq;  /* the core's wait the timer was armed for */
    unsigned reserved;       /* transactions still to start on this connection */
    int established;         /* greeting and EHLO done */
    int greeted;             /* the 220 greeting came */
    int tls;                 /* TLS is up on this connection */
    int in_handshake;        /* STARTTLS handshake in progress */
    int done;                /* no more work for this session */
    int parked;              /* failed before any connection worked; waits */
    /* the current transaction */
    int txn_open; /* started, no verdict yet */
    sk_cc_rcpt *rcpts;
    sk_cc_message msg;
    int last_rcpt_code; /* the last refused RCPT's reply, for the summary */
    char last_rcpt_line[200];
    unsigned long long msg_no;
    double t_conn, t_mail;
    char hdr[HDR_MAX];
    size_t hdrlen;
} bsess;

struct bench_run {
    const sk_bench_opts *o;
    sk_bench_result *r;
    struct event_base *base;
    const struct timeval *step_tv; /* common timeout: O(1) re-arming */
    struct event *deadline_ev;
    SSL_CTX *ctx;
    struct sockaddr_storage sa;
    socklen_t salen;
    sk_client_core_config ccfg; /* every connection's SMTP dialogue */
    char *body;                 /* the body, shared by every message */
    size_t bodylen, body_octets;
    char date[64];
    unsigned long long unclaimed; /* messages not yet handed to a connection */
    unsigned long long next_no;   /* number of the next transaction */
    bsess *sess;
    unsigned nsess, active;  /* sessions, and those not done yet */
    unsigned nparked;        /* sessions waiting for a first success */
    sk_client_err last_fail; /* why the last connection failed */
    float *lat, *clat;       /* milliseconds */
    size_t nlat, caplat, nclat, capclat;
    double t0, t_end;
    int stopping;
};

/* ---- small helpers ------------------------------------------------------- */

static int push_ms(float **v, size_t *n, size_t *cap, unsigned long long limit, double ms)
{
    if (*n == *cap) {
        if (*cap >= limit)
            return -1; /* cannot happen: one sample per message or connection */
        size_t nc = *cap ? *cap * 2 : 1024;
        if (nc > limit)
            nc = (size_t)limit;
        float *nv = realloc(*v, nc * sizeof **v);
        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = (float)ms;
    return 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void sk_bench_percentiles(float *v, size_t n, sk_bench_latency *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_float);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    out->n = n;
    out->min = v[0];
    out->max = v[n - 1];
    out->mean = sum / (double)n;
    /* nearest rank: the smallest value with at least p% of values <= it */
    const double ps[3] = {50, 90, 99};
    double *dst[3] = {&out->p50, &out->p90, &out->p99};
    for (int i = 0; i < 3; i++) {
        size_t rank = (size_t)((ps[i] / 100.0) * (double)n + 0.999999);
        if (rank < 1)
            rank = 1;
        if (rank > n)
            rank = n;
        *dst[i] = v[rank - 1];
    }
}

void sk_bench_defaults(sk_bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->port = 25;
    o->concurrency = 10;
    o->messages = 1000;
    o->per_connection = 1;
    o->size = 1024;
    o->rcpts = 1;
    o->from = "bench@localhost";
    o->duration_s = 60;
    o->timeout_s = 30;
}

/* An address we put in MAIL/RCPT and in header fields: printable ASCII
 * without spaces, angle brackets or controls (no command or header
 * injection), at most ADDR_MAX octets. The empty reverse-path is allowed
 * for MAIL only. */
static int address_ok(const char *a, int allow_empty)
{
    size_t n = strlen(a);
    if (n == 0)
        return allow_empty;
    if (n > ADDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)a[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>')
            return 0;
    }
    return 1;
}

int sk_bench_check(const sk_bench_opts *o, char *err, size_t errlen)
{
#define BAD(...) return (snprintf(err, errlen, __VA_ARGS__), -1)
    if (!o->host || !*o->host)
        BAD("no server given");
    if (o->port < 1 || o->port > 65535)
        BAD("port %d is not 1-65535", o->port);
    if (o->concurrency < 1 || o->concurrency > SK_BENCH_MAX_CONCURRENCY)
        BAD("concurrency %u: must be 1-%u", o->concurrency, SK_BENCH_MAX_CONCURRENCY);
    if (o->messages < 1 || o->messages > SK_BENCH_MAX_MESSAGES)
        BAD("messages %llu: must be 1-%llu", o->messages, SK_BENCH_MAX_MESSAGES);
    if (o->per_connection < 1 || o->per_connection > SK_BENCH_MAX_PER_CONNECTION)
        BAD("per-connection %u: must be 1-%u", o->per_connection, SK_BENCH_MAX_PER_CONNECTION);
    if (o->size > SK_BENCH_MAX_SIZE)
        BAD("size %zu: at most %u octets", o->size, SK_BENCH_MAX_SIZE);
    if (o->rcpts < 1 || o->rcpts > SK_BENCH_MAX_RCPTS)
        BAD("rcpts %u: must be 1-%u", o->rcpts, SK_BENCH_MAX_RCPTS);
    if (!o->from || !address_ok(o->from, 1))
        BAD("sender address '%s' is not usable (printable ASCII, no spaces or <>, at most %d "
            "octets)",
            o->from ? o->from : "", ADDR_MAX);
    if (o->nto < 1 || !o->to)
        BAD("no recipient given");
    if (o->nto > SK_BENCH_MAX_TO)
        BAD("%zu recipient addresses: at most %u", o->nto, SK_BENCH_MAX_TO);
    for (size_t i = 0; i < o->nto; i++)
        if (!o->to[i] || !address_ok(o->to[i], 0))
            BAD("recipient address '%s' is not usable (printable ASCII, no spaces or <>, at "
                "most %d octets)",
                o->to[i] ? o->to[i] : "", ADDR_MAX);
    if (o->helo) {
        size_t hl = strlen(o->helo);
        if (hl == 0 || hl > 255)
            BAD("EHLO name must be 1-255 octets");
        for (size_t i = 0; i < hl; i++)
            if ((unsigned char)o->helo[i] <= 0x20 || (unsigned char)o->helo[i] >= 0x7f)
                BAD("EHLO name '%s' holds a space or a control byte", o->helo);
    }
    if (o->starttls && o->tls)
        BAD("STARTTLS and implicit TLS exclude each other");
    if (!(o->duration_s > 0) || o->duration_s > SK_BENCH_MAX_DURATION)
        BAD("duration %g s: must be more than 0 and at most %g", o->duration_s,
            SK_BENCH_MAX_DURATION);
    if (!(o->timeout_s > 0) || o->timeout_s > SK_BENCH_MAX_TIMEOUT)
        BAD("timeout %g s: must be more than 0 and at most %g", o->timeout_s, SK_BENCH_MAX_TIMEOUT);
    return 0;
#undef BAD
}

/* ---- result bookkeeping -------------------------------------------------- */

static void note_error(bench_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(bench_run *run, const char *fmt, ...)
{
    if (run->r->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->r->first_error, sizeof run->r->first_error, fmt, ap);
    va_end(ap);
}

static void count_code(sk_bench_result *r, int code)
{
    for (size_t i = 0; i < r->ncodes; i++)
        if (r->codes[i].code == code) {
            r->codes[i].count++;
            return;
        }
    if (r->ncodes < SK_BENCH_CODES) {
        r->codes[r->ncodes].code = code;
        r->codes[r->ncodes].count = 1;
        r->ncodes++;
    }
}

/* The transaction in progress got its verdict: refused by this reply. */
static void txn_refused(bsess *s, int code, const char *line, const char *cmd)
{
    sk_bench_result *r = s->run->r;
    if (!s->txn_open)
        return;
    s->txn_open = 0;
    r->refused++;
    if (code >= 400 && code < 500)
        r->refused_4xx++;
    else
        r->refused_5xx++;
    if (code)
        count_code(r, code);
    if (!r->first_refusal[0])
        snprintf(r->first_refusal, sizeof r->first_refusal, "%s: %s", cmd, line);
}

/* ---- session plumbing ---------------------------------------------------- */

static void sess_next_conn(bsess *s);
static void stop_all(bench_run *run);

static void arm_timer(bsess *s)
{
    evtimer_add(s->timer, s->run->step_tv);
}

/* Release the connection's resources; the session object stays. */
static void conn_release(bsess *s)
{
    if (s->conn_ev) {
        event_free(s->conn_ev);
        s->conn_ev = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->bev) {
        bufferevent_free(s->bev); /* closes the socket and frees the SSL */
        s->bev = NULL;
    }
    if (s->core) {
        sk_client_core_free(s->core);
        s->core = NULL;
    }
    evtimer_del(s->timer);
    s->txn_open = 0; /* a transaction without a verdict is counted as failed */
    s->reserved = 0; /* messages not started are counted as not sent */
    s->tls = s->in_handshake = s->greeted = 0;
}

/* A connection failed before any connection of the run ever worked. The
 * session waits (parked) instead of trying again at once: if another
 * session gets through, the parked ones start again; if every session
 * failed, the server is down or refuses us and more attempts would say the
 * same, so the run stops. Returns 1 when the session must not go on now. */
static void abort_if_stuck(bench_run *run)
{
    /* every session still running is parked: nothing can ever succeed */
    if (!run->stopping && run->active > 0 && run->nparked >= run->active &&
        run->r->conn_established == 0) {
        run->r->aborted = 1;
        run->r->abort_kind = run->last_fail;
        stop_all(run);
    }
}

static int park_or_abort(bsess *s, sk_client_err kind)
{
    bench_run *run = s->run;
    run->last_fail = kind;
    if (run->r->conn_established > 0 || run->stopping)
        return run->stopping;
    s->parked = 1;
    run->nparked++;
    abort_if_stuck(run);
    return 1;
}

/* The one error funnel: the connection broke, timed out, was refused or
 * spoke garbage. Count it, close it, go on with the next connection. */
static void conn_fail(bsess *s, sk_client_err kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(bsess *s, sk_client_err kind, const char *fmt, ...)
{
    bench_run *run = s->run;
    sk_bench_result *r = run->r;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    note_error(run, "%s", msg);
    r->conn_errors++;
    int before = !s->established;
    if (before)
        r->conn_failed++;
    conn_release(s);
    s->established = 0;
    if (before && park_or_abort(s, kind))
        return;
    sess_next_conn(s);
}

static void conn_done(bsess *s)
{
    conn_release(s);
    s->established = 0;
    sess_next_conn(s);
}

/* ---- messages ------------------------------------------------------------ */

/* Build the header block of message number n (RFC 5322 3.6). */
static void build_header(bsess *s)
{
    bench_run *run = s->run;
    const sk_bench_opts *o = run->o;
    const char *to = o->to[(s->msg_no * o->rcpts) % o->nto];
    int n = snprintf(s->hdr, sizeof s->hdr,
                     "From: <%s>\r\nTo: <%s>\r\nSubject: smtpkit bench message %llu\r\n"
                     "Date: %s\r\nMessage-ID: <bench.%ld.%ld.%llu@smtpkit.invalid>\r\n\r\n",
                     *o->from ? o->from : "bench@localhost", to, s->msg_no + 1, run->date,
                     (long)run->t0, (long)getpid(), s->msg_no + 1);
    s->hdrlen = n < 0 ? 0 : (size_t)n >= sizeof s->hdr ? sizeof s->hdr - 1 : (size_t)n;
}

/* Hand the next message to the core: MAIL, the RCPTs (and DATA, pipelined)
 * go out as it sees fit; SIZE= when the server offered SIZE. */
static void start_txn(bsess *s)
{
    bench_run *run = s->run;
    const sk_bench_opts *o = run->o;
    s->reserved--;
    s->msg_no = run->next_no++;
    s->txn_open = 1;
    s->last_rcpt_code = 0;
    s->last_rcpt_line[0] = '\0';
    build_header(s);
    for (unsigned i = 0; i < o->rcpts; i++)
        s->rcpts[i].addr = o->to[(s->msg_no * o->rcpts + i) % o->nto];
    memset(&s->msg, 0, sizeof s->msg);
    s->msg.mail_from = o->from;
    s->msg.rcpts = s->rcpts;
    s->msg.nrcpts = o->rcpts;
    s->msg.size = (unsigned long long)s->hdrlen + run->body_octets;
    run->r->sent++;
    s->t_mail = sk_monotonic();
    if (sk_client_core_submit(s->core, &s->msg) < 0)
        conn_fail(s, SK_CLIENT_ERR_PROTOCOL, "the client core refused a message");
}

/* ---- TLS ----------------------------------------------------------------- */

static SSL *new_ssl(bsess *s)
{
    const char *host = s->run->o->host;
    SSL *ssl = SSL_new(s->run->ctx);
    if (!ssl)
        return NULL;
    if (!s->run->o->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (sk_is_ip_literal(host))
            X509_VERIFY_PARAM_set1_ip_asc(vp, host);
        else
            SSL_set1_host(ssl, host);
    }
    if (!sk_is_ip_literal(host))
        SSL_set_tlsext_host_name(ssl, host); /* SNI: names only (RFC 6066 3) */
    return ssl;
}

static void tls_errtext(bsess *s, char *out, size_t n)
{
    unsigned long e, last = 0;
    while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
        last = e;
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(out, n, "certificate not accepted: %s", X509_verify_cert_error_string(vr));
    else if (last)
        snprintf(out, n, "%s",
                 ERR_reason_error_string(last) ? ERR_reason_error_string(last) : "TLS error");
    else
        snprintf(out, n, "handshake failed");
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* STARTTLS got its 220: put a TLS filter under the session (RFC 3207 4). */
static int start_tls_filter(bsess *s)
{
    /* Bytes after the 220 were sent before TLS: never read them as if they
     * came over TLS (STARTTLS response injection). */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    SSL *ssl = new_ssl(s);
    if (!ssl)
        return -1;
    struct bufferevent *tb = bufferevent_openssl_filter_new(
        s->run->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!tb) {
        SSL_free(ssl);
        return -1;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    s->bev = tb;
    s->in_handshake = 1;
    bufferevent_setcb(tb, on_read, NULL, on_event, s);
    bufferevent_setwatermark(tb, EV_READ, 0, RBUF_HIGH);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    arm_timer(s);
    return 0;
}

static void tls_up(bsess *s)
{
    sk_bench_result *r = s->run->r;
    s->tls = 1;
    s->in_handshake = 0;
    r->tls_used = 1;
    if (!r->tls_version[0]) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        if (ssl) {
            snprintf(r->tls_version, sizeof r->tls_version, "%s", SSL_get_version(ssl));
            snprintf(r->tls_cipher, sizeof r->tls_cipher, "%s", SSL_get_cipher_name(ssl));
        }
    }
}

/* ---- the core's events --------------------------------------------------- */

static void established(bsess *s)
{
    bench_run *run = s->run;
    s->established = 1;
    if (run->r->conn_established++ == 0 && run->nparked > 0) {
        /* the first connection that worked: the parked sessions go on */
        for (unsigned i = 0; i < run->nsess && !run->stopping; i++) {
            bsess *p = &run->sess[i];
            if (p->parked) {
                p->parked = 0;
                run->nparked--;
                sess_next_conn(p);
            }
        }
    }
    if (sk_client_core_pipelining(s->core))
        s->run->r->pipelining_used = 1;
}

static const char *refusal_cmd(sk_cc_phase p)
{
    switch (p) {
    case SK_CC_PHASE_MAIL:
        return "MAIL";
    case SK_CC_PHASE_DATA:
        return "DATA";
    case SK_CC_PHASE_BDAT:
        return "BDAT";
    default:
        return "end of data";
    }
}

static void message_done(bsess *s, const sk_cc_event *ev)
{
    bench_run *run = s->run;
    sk_bench_result *r = run->r;
    char line[200];
    switch (ev->status) {
    case SK_CC_MSG_SENT:
        if (!s->txn_open)
            break;
        s->txn_open = 0;
        r->accepted++;
        if (push_ms(&run->lat, &run->nlat, &run->caplat, r->requested,
                    (sk_monotonic() - s->t_mail) * 1000.0) < 0)
            conn_fail(s, SK_CLIENT_ERR_NOMEM, "out of memory");
        break;
    case SK_CC_MSG_REFUSED:
        sk_reply_oneline(ev->reply, line, sizeof line);
        txn_refused(s, ev->reply->code, line, refusal_cmd(ev->phase));
        break;
    case SK_CC_MSG_NO_RECIPIENTS:
        /* no recipient left: the last refusal decides */
        txn_refused(s, s->last_rcpt_code, s->last_rcpt_line, "RCPT");
        break;
    case SK_CC_MSG_LOCAL:
        txn_refused(s, 0, ev->text ? ev->text : "", "not sent");
        break;
    case SK_CC_MSG_ABORTED:
    case SK_CC_MSG_ENVELOPE: /* never asked for here */
        break;               /* counted as failed: no verdict */
    }
}

/* Handle one event. Returns 1 when the connection is gone. */
static int on_core_event(bsess *s, const sk_cc_event *ev)
{
    sk_bench_result *r = s->run->r;
    switch (ev->type) {
    case SK_CC_EV_READY:
        if (!s->established)
            established(s);
        if (s->reserved > 0 && !s->run->stopping)
            start_txn(s);
        else
            sk_client_core_quit(s->core);
        break;
    case SK_CC_EV_START_TLS:
        if (start_tls_filter(s) < 0) {
            conn_fail(s, SK_CLIENT_ERR_TLS, "cannot start TLS");
            return 1;
        }
        break;
    case SK_CC_EV_SEND_BODY:
        if (sk_client_core_body(s->core, s->hdr, s->hdrlen, 0) < 0 ||
            sk_client_core_body(s->core, s->run->body, s->run->bodylen, 1) < 0) {
            conn_fail(s, SK_CLIENT_ERR_NOMEM, "out of memory");
            return 1;
        }
        break;
    case SK_CC_EV_RCPT:
        if (ev->verdict == SK_CC_OK) {
            r->rcpts_accepted++;
        } else {
            r->rcpts_refused++;
            s->last_rcpt_code = ev->reply->code;
            sk_reply_oneline(ev->reply, s->last_rcpt_line, sizeof s->last_rcpt_line);
        }
        break;
    case SK_CC_EV_MESSAGE_DONE:
        message_done(s, ev);
        break;
    case SK_CC_EV_FAILED:
        conn_fail(s, ev->kind, "%s", ev->text ? ev->text : "failed");
        return 1;
    default:
        break;
    }
    return s->core == NULL;
}

/* Move the core's output to the socket, act on its events, keep its timer.
 * Returns 1 when the connection is gone (closed, failed or replaced). */
static int drive(bsess *s)
{
    struct bufferevent *bev = s->bev;
    for (;;) {
        sk_buf *o = sk_client_core_output(s->core);
        if (o->len) {
            if (evbuffer_add(bufferevent_get_output(s->bev), o->data, o->len) < 0) {
                conn_fail(s, SK_CLIENT_ERR_NOMEM, "out of memory");
                return 1;
            }
            sk_buf_consume(o, o->len);
        }
        sk_cc_event ev;
        if (!sk_client_core_next_event(s->core, &ev))
            break;
        if (on_core_event(s, &ev))
            return 1;
    }
    if (!s->greeted) {
        sk_cc_wait w;
        sk_client_core_wait(s->core, &w);
        if (w.phase != SK_CC_PHASE_GREETING) {
            s->greeted = 1; /* the 220 came and EHLO went out */
            if (push_ms(&s->run->clat, &s->run->nclat, &s->run->capclat, s->run->r->requested,
                        (sk_monotonic() - s->t_conn) * 1000.0) < 0) {
                conn_fail(s, SK_CLIENT_ERR_NOMEM, "out of memory");
                return 1;
            }
        }
    }
    if (sk_client_core_wants(s->core) & SK_CC_WANT_CLOSE) {
        conn_done(s); /* QUIT answered (a failure ended in conn_fail above) */
        return 1;
    }
    if (s->in_handshake)
        return s->bev != bev; /* the handshake has its own timer */
    sk_cc_wait w;
    sk_client_core_wait(s->core, &w);
    if (w.seq != s->wait_seq) {
        /* a new wait: every step has the same limit, so the common timeout */
        s->wait_seq = w.seq;
        if (w.ms >= 0)
            arm_timer(s);
        else
            evtimer_del(s->timer);
    }
    return s->bev != bev;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    bsess *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    /* Bounded: each pass feeds and drains one chunk of the input. */
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        sk_client_core_feed(s->core, v.iov_base, v.iov_len);
        evbuffer_drain(in, v.iov_len);
        if (drive(s))
            return; /* closed, failed or wrapped in TLS: this buffer is gone */
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    bsess *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* only TLS bufferevents report this: the handshake is done */
        int starttls = s->in_handshake;
        tls_up(s);
        if (starttls) { /* EHLO again (RFC 3207 4.2) */
            sk_client_core_tls_done(s->core, 1);
            drive(s);
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        if (bufferevent_openssl_get_ssl(s->bev) && (!s->tls || s->in_handshake)) {
            char t[160];
            tls_errtext(s, t, sizeof t);
            conn_fail(s, SK_CLIENT_ERR_TLS, "TLS: %s", t);
            return;
        }
        int e = EVUTIL_SOCKET_ERROR();
        sk_client_core_lost(s->core, e ? strerror(e) : "I/O error");
        drive(s);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        sk_client_core_lost(s->core, NULL);
        drive(s);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bsess *s = arg;
    double t = s->run->o->timeout_s;
    if (s->conn_ev) {
        conn_fail(s, SK_CLIENT_ERR_CONNECT, "connect timed out after %g s", t);
        return;
    }
    if (s->in_handshake || (s->bev && bufferevent_openssl_get_ssl(s->bev) && !s->tls)) {
        conn_fail(s, SK_CLIENT_ERR_TLS, "TLS handshake timed out after %g s", t);
        return;
    }
    sk_client_core_timeout(s->core);
    drive(s);
}

/* ---- connecting ---------------------------------------------------------- */

static int attach_bev(bsess *s, int fd)
{
    bench_run *run = s->run;
    struct bufferevent *bev;
    if (run->o->tls) {
        SSL *ssl = new_ssl(s);
        if (!ssl)
            return -1;
        bev = bufferevent_openssl_socket_new(run->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            SSL_free(ssl);
            return -1;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(run->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
            return -1;
    }
    s->bev = bev;
    s->fd = -1; /* owned by the bufferevent now */
    bufferevent_setcb(bev, on_read, NULL, on_event, s);
    bufferevent_setwatermark(bev, EV_READ, 0, RBUF_HIGH);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return 0;
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    bsess *s = arg;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    event_free(s->conn_ev);
    s->conn_ev = NULL;
    if (soerr) {
        conn_fail(s, SK_CLIENT_ERR_CONNECT, "cannot connect to %s: %s", s->run->r->address,
                  strerror(soerr));
        return;
    }
    if (attach_bev(s, (int)fd) < 0) {
        conn_fail(s, SK_CLIENT_ERR_NOMEM, "cannot set up the connection");
        return;
    }
    s->core = sk_client_core_new(&s->run->ccfg);
    if (!s->core) {
        conn_fail(s, SK_CLIENT_ERR_NOMEM, "out of memory");
        return;
    }
    sk_cc_wait w;
    sk_client_core_wait(s->core, &w);
    s->wait_seq = w.seq;
    arm_timer(s); /* the greeting (and with implicit TLS the handshake) */
}

/* Start one TCP connect. 0 when under way, -1 with errno when it failed at
 * once. */
static int conn_start(bsess *s)
{
    bench_run *run = s->run;
    int fd = socket(run->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    /* commands are small and each waits for its reply: no Nagle delay */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->t_conn = sk_monotonic();
    if (connect(fd, (const struct sockaddr *)&run->sa, run->salen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    s->fd = fd;
    s->conn_ev = event_new(run->base, fd, EV_WRITE, on_connected, s);
    if (!s->conn_ev) {
        close(fd);
        s->fd = -1;
        errno = ENOMEM;
        return -1;
    }
    event_add(s->conn_ev, NULL);
    arm_timer(s);
    return 0;
}

/* Give the session its next connection, or finish it. Bounded: each pass
 * takes at least one message from the pool. */
static void sess_next_conn(bsess *s)
{
    bench_run *run = s->run;
    sk_bench_result *r = run->r;
    while (!run->stopping && run->unclaimed > 0) {
        unsigned k = run->o->per_connection;
        if (run->unclaimed < k)
            k = (unsigned)run->unclaimed;
        run->unclaimed -= k;
        s->reserved = k;
        r->conn_attempted++;
        if (conn_start(s) == 0)
            return;
        int e = errno;
        note_error(run, "cannot connect to %s: %s", r->address, strerror(e));
        r->conn_errors++;
        r->conn_failed++;
        s->reserved = 0;
        if (park_or_abort(s, SK_CLIENT_ERR_CONNECT))
            return;
    }
    if (!s->done) {
        s->done = 1;
        run->active--;
        if (run->active == 0) {
            run->t_end = sk_monotonic();
            event_base_loopbreak(run->base);
        } else {
            abort_if_stuck(run);
        }
    }
}

/* End the run now: close every session; transactions in flight count as
 * failed, messages not started as not sent. */
static void stop_all(bench_run *run)
{
    if (run->stopping)
        return;
    run->stopping = 1;
    run->t_end = sk_monotonic();
    for (unsigned i = 0; i < run->nsess; i++) {
        bsess *s = &run->sess[i];
        if ((s->conn_ev || s->bev) && !s->established)
            run->r->conn_failed++; /* cut off before it was established */
        conn_release(&run->sess[i]);
        run->sess[i].established = 0;
        run->sess[i].done = 1;
    }
    run->active = 0;
    event_base_loopbreak(run->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bench_run *run = arg;
    run->r->time_limit_reached = 1;
    stop_all(run);
}

/* ---- set-up -------------------------------------------------------------- */

/* The body: lines of BODY_LINE printable characters (never starting with
 * '.', so dot-stuffing changes nothing), exactly `size` octets. The core
 * adds the CRLF that ends the last line when it is missing and the
 * end-of-data marker (RFC 5321 4.1.1.4). */
static int build_body(bench_run *run, size_t size)
{
    char *b = malloc(size ? size : 1);
    if (!b)
        return -1;
    static const char pattern[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t i = 0, col = 0;
    while (i < size) {
        if (col == BODY_LINE && size - i >= 2) {
            b[i++] = '\r';
            b[i++] = '\n';
            col = 0;
            continue;
        }
        /* end on CRLF when the size allows it */
        if (size - i == 2 && col > 0) {
            b[i++] = '\r';
            b[i++] = '\n';
            break;
        }
        b[i++] = pattern[col % (sizeof pattern - 1)];
        col++;
    }
    run->bodylen = size;
    run->body_octets = size;
    if (size > 0 && !(size >= 2 && b[size - 2] == '\r' && b[size - 1] == '\n'))
        run->body_octets = size + 2; /* the CRLF ending the last line is message data */
    run->body = b;
    return 0;
}

static int resolve(bench_run *run, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%d", run->o->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int rc = getaddrinfo(run->o->host, port, &hints, &res);
    if (rc != 0 && sk_is_ip_literal(run->o->host)) {
        hints.ai_flags = AI_NUMERICHOST; /* ::1 on a host without a global v6 address */
        rc = getaddrinfo(run->o->host, port, &hints, &res);
    }
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve %s: %s", run->o->host,
                 rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    /* the first address only, so every session measures the same path */
    memcpy(&run->sa, res->ai_addr, res->ai_addrlen);
    run->salen = res->ai_addrlen;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (res->ai_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, ip, sizeof ip);
        snprintf(run->r->address, sizeof run->r->address, "[%s]:%d", ip, run->o->port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
        snprintf(run->r->address, sizeof run->r->address, "%s:%d", ip, run->o->port);
    }
    freeaddrinfo(res);
    return 0;
}

/* One descriptor per session plus a few: raise the soft limit if needed. */
static int ensure_fds(unsigned nsess, char *err, size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    rlim_t need = (rlim_t)nsess + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || want < need) {
            snprintf(err, errlen,
                     "%u sessions need %llu file descriptors; the limit is %llu (ulimit -n)", nsess,
                     (unsigned long long)need, (unsigned long long)rl.rlim_max);
            return -1;
        }
    }
    return 0;
}

static int make_ctx(bench_run *run, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        ERR_clear_error();
    if (run->o->cafile && SSL_CTX_load_verify_locations(ctx, run->o->cafile, NULL) != 1) {
        snprintf(err, errlen, "cannot load CA file %s", run->o->cafile);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_set_verify(ctx, run->o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    run->ctx = ctx;
    return 0;
}

static void fill_date(char *out, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
        snprintf(out, n, "Thu, 01 Jan 1970 00:00:00 +0000");
}

int sk_bench_run(const sk_bench_opts *o, sk_bench_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->requested = o->messages;
    if (sk_bench_check(o, err, errlen) < 0) {
        r->abort_kind = SK_CLIENT_ERR_USAGE;
        return -1;
    }
    bench_run run;
    memset(&run, 0, sizeof run);
    run.o = o;
    run.r = r;
    run.unclaimed = o->messages;
    run.nsess = o->concurrency;
    if ((unsigned long long)run.nsess > o->messages)
        run.nsess = (unsigned)o->messages; /* a session needs at least one message */
    int rc = -1;
    struct sigaction ign, old_pipe;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);

    if (resolve(&run, err, errlen) < 0) {
        r->abort_kind = SK_CLIENT_ERR_DNS;
        goto out;
    }
    if (ensure_fds(run.nsess, err, errlen) < 0) {
        r->abort_kind = SK_CLIENT_ERR_USAGE;
        goto out;
    }
    if ((o->starttls || o->tls) && make_ctx(&run, err, errlen) < 0) {
        r->abort_kind = SK_CLIENT_ERR_TLS;
        goto out;
    }
    r->abort_kind = SK_CLIENT_ERR_NOMEM;
    if (build_body(&run, o->size) < 0) {
        snprintf(err, errlen, "out of memory for a %zu-octet body", o->size);
        goto out;
    }
    fill_date(run.date, sizeof run.date);
    /* every wait has the one step limit; DATA, not BDAT, as the figures
     * always measured; pipelining only when asked */
    unsigned step_ms = (unsigned)(o->timeout_s * 1000.0 + 0.5);
    if (step_ms == 0)
        step_ms = 1;
    run.ccfg.helo = o->helo ? o->helo : "localhost";
    run.ccfg.tls = o->starttls ? SK_CC_TLS_REQUIRED : SK_CC_TLS_OFF;
    run.ccfg.implicit_tls = o->tls;
    run.ccfg.no_pipelining = !o->pipelining;
    run.ccfg.no_chunking = 1;
    run.ccfg.timeouts =
        (sk_cc_timeouts){step_ms, step_ms, step_ms, step_ms, step_ms, step_ms, step_ms};
    struct event_config *cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK); /* one thread */
        run.base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!run.base) {
        snprintf(err, errlen, "cannot create an event loop");
        goto out;
    }
    struct timeval step = {(time_t)o->timeout_s,
                           (suseconds_t)((o->timeout_s - (double)(time_t)o->timeout_s) * 1e6)};
    run.step_tv = event_base_init_common_timeout(run.base, &step);
    struct timeval dl = {(time_t)o->duration_s,
                         (suseconds_t)((o->duration_s - (double)(time_t)o->duration_s) * 1e6)};
    run.deadline_ev = evtimer_new(run.base, on_deadline, &run);
    run.sess = calloc(run.nsess, sizeof *run.sess);
    if (!run.deadline_ev || !run.sess || !run.step_tv) {
        snprintf(err, errlen, "out of memory for %u sessions", run.nsess);
        goto out;
    }
    for (unsigned i = 0; i < run.nsess; i++) {
        bsess *s = &run.sess[i];
        s->run = &run;
        s->fd = -1;
        s->rcpts = calloc(o->rcpts, sizeof *s->rcpts);
        s->timer = evtimer_new(run.base, on_timeout, s);
        if (!s->rcpts || !s->timer) {
            snprintf(err, errlen, "out of memory for %u sessions", run.nsess);
            goto out;
        }
    }
    r->abort_kind = SK_CLIENT_OK;

    run.t0 = sk_monotonic();
    evtimer_add(run.deadline_ev, &dl);
    run.active = run.nsess;
    for (unsigned i = 0; i < run.nsess && !run.stopping; i++)
        sess_next_conn(&run.sess[i]);
    if (!run.stopping && run.active > 0)
        event_base_dispatch(run.base);
    if (run.t_end == 0)
        run.t_end = sk_monotonic();
    stop_all(&run); /* nothing is left open whatever ended the loop */

    r->elapsed_s = run.t_end - run.t0;
    r->failed = r->sent - r->accepted - r->refused;
    r->not_sent = r->requested - r->sent;
    if (r->elapsed_s > 0) {
        r->msgs_per_s = (double)r->accepted / r->elapsed_s;
        r->conns_per_s = (double)r->conn_established / r->elapsed_s;
    }
    sk_bench_percentiles(run.lat, run.nlat, &r->latency);
    sk_bench_percentiles(run.clat, run.nclat, &r->connect);
    rc = 0;

out:
    if (run.sess) {
        for (unsigned i = 0; i < run.nsess; i++) {
            if (run.sess[i].timer) {
                conn_release(&run.sess[i]);
                event_free(run.sess[i].timer);
            }
            free(run.sess[i].rcpts);
        }
        free(run.sess);
    }
    if (run.deadline_ev)
        event_free(run.deadline_ev);
    if (run.base)
        event_base_free(run.base);
    if (run.ctx)
        SSL_CTX_free(run.ctx);
    free(run.body);
    free(run.lat);
    free(run.clat);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc;
}
