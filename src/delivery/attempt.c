/*
 * attempt.c - one delivery attempt (attempt.h): MX resolution, then the
 * hosts and their addresses in order, each a libevent connection driven
 * by the sans-I/O client core the way `smtpkit bench` drives it (bytes to
 * and from the socket, the TLS filter on START_TLS, one timer re-armed per
 * wait). RFC 5321 5.1 (MX order, every address), 4.2.1 and 4.5.3.1.10
 * (reply classes), 4.5.3.2 (client timeouts), RFC 3207 (STARTTLS), RFC
 * 7505 (null MX).
 */
#include "delivery/attempt.h"

#include "client/cc_bev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define RBUF_HIGH (128 * 1024)

struct sk_attempt {
    sk_attempt_env env;
    sk_attempt_msg msg;
    char domain[256];
    sk_tls_policy tls_policy; /* for this domain (delivery.tls_policies) */
    sk_dlv_rcpt_result *res;
    size_t n;
    sk_attempt_done_fn done;
    void *arg;

    sk_mx_lookup *lookup;
    sk_mx_route *route;
    size_t host_i, addr_i;
    int plaintext; /* this address again without STARTTLS (failed handshake) */
    int started;   /* a connection was tried: the next step moves on */
    struct event *step;

    /* the current connection */
    struct bufferevent *bev;
    sk_client_core *core;
    struct event *timer;
    unsigned long wait_seq;
    int in_handshake;
    int tls;
    int tls_failed; /* this session's handshake failed */
    char relay[320];
    /* the submitted message: core rcpt i -> res[map[i]] */
    sk_cc_rcpt *cc;
    size_t *map;
    size_t ncc;
    sk_cc_message ccmsg;

    int reached;   /* some session got as far as a message */
    int last_perm; /* the last connection failure was permanent (5xx greeting) */
    int used_tls;  /* the last session that reached a message had TLS */
    int reused;    /* began on a cached connection */
    int resolved;  /* the MX look-up was started */
    int msg_done;  /* a message ended on the current connection */
    char last_why[512];
    int last_code;
    char last_enh[16];
};

static void next_step(sk_attempt *a);
static void on_route(void *arg, const sk_mx_route *route);

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    next_step(arg);
}

/* Run next_step from the loop, not from inside the current callback. */
static void schedule_step(sk_attempt *a)
{
    event_active(a->step, EV_TIMEOUT, 0);
}

static void conn_close(sk_attempt *a)
{
    if (a->bev) {
        bufferevent_free(a->bev);
        a->bev = NULL;
    }
    if (a->core) {
        sk_client_core_free(a->core);
        a->core = NULL;
    }
    if (a->timer)
        evtimer_del(a->timer);
    a->in_handshake = 0;
}

static size_t open_count(const sk_attempt *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->res[i].state == SK_DLV_OPEN)
            k++;
    return k;
}

static void reply_text(const sk_reply *r, char *out, size_t n)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; r && i < r->nlines && off + 1 < n; i++) {
        int w = snprintf(out + off, n - off, "%s%s", i ? " " : "", r->lines[i]);
        if (w < 0)
            break;
        off += (size_t)w >= n - off ? n - off - 1 : (size_t)w;
    }
}

static void reply_enh(const sk_reply *r, char *out, size_t n)
{
    out[0] = '\0';
    if (r && r->has_enhanced)
        snprintf(out, n, "%d.%d.%d", r->enhanced.cls, r->enhanced.subject, r->enhanced.detail);
}

/* A decision for res[k] from a reply (or only a text). */
static void decide(sk_attempt *a, size_t k, sk_dlv_state st, const sk_reply *r, const char *why,
                   const char *enh)
{
    char t[512], e[16];
    if (r) {
        reply_text(r, t, sizeof t);
        reply_enh(r, e, sizeof e);
    } else {
        snprintf(t, sizeof t, "%s", why ? why : "");
        snprintf(e, sizeof e, "%s", enh ? enh : "");
    }
    sk_dlv_set(&a->res[k], st, r ? r->code : 0, e, a->relay, t);
    snprintf(a->res[k].reply_enh, sizeof a->res[k].reply_enh, "%s", r ? e : "");
}

/* A temporary failure for an open recipient: remembered, the recipient
 * stays open for the next MX (smtp_trouble.c: soft errors before the last
 * server). */
static void soft(sk_attempt *a, size_t k, const sk_reply *r, const char *why)
{
    decide(a, k, SK_DLV_OPEN, r, why, "4.4.1");
}

/* Results of finished attempts by state (the loop thread only). */
static unsigned long long result_totals[4];

void sk_attempt_totals(unsigned long long out[4])
{
    memcpy(out, result_totals, sizeof result_totals);
}

static void finish(sk_attempt *a)
{
    for (size_t i = 0; i < a->n; i++) {
        sk_dlv_rcpt_result *r = &a->res[i];
        if (r->state != SK_DLV_OPEN)
            continue;
        if (r->code || r->text[0]) {
            /* only temporary failures leave a recipient open with a reply
             * (soft()): a 552 to RCPT among them, deferred as a 452 with
             * a 4.X.X status (RFC 5321 4.5.3.1.10, as smtp_trouble.c) */
            r->state = SK_DLV_DEFER;
            if (r->enhanced[0] == '5')
                r->enhanced[0] = '4';
        } else if (a->last_why[0]) {
            sk_dlv_set(r, a->last_perm ? SK_DLV_BOUNCE : SK_DLV_DEFER, a->last_code,
                       a->last_enh[0] ? a->last_enh : (a->last_perm ? "5.4.1" : "4.4.1"), a->relay,
                       a->last_why);
        } else {
            sk_dlv_set(r, SK_DLV_DEFER, 0, "4.4.1", a->relay, "no MX host could be reached");
        }
    }
    for (size_t i = 0; i < a->n; i++)
        if ((unsigned)a->res[i].state < 4)
            result_totals[a->res[i].state]++;
    a->done(a->arg, a);
}

/* ---- the connection cache ----------------------------------------------- */

typedef struct cached_conn {
    sk_conn_cache *cache;
    char domain[256];
    char relay[320];
    int tls;
    int quitting; /* QUIT sent: closed once written */
    struct bufferevent *bev;
    sk_client_core *core;
    struct event *timer;
    struct cached_conn *next;
} cached_conn;

struct sk_conn_cache {
    struct event_base *base;
    unsigned idle_s;
    unsigned per_domain;
    cached_conn *list;
    size_t n;
};

sk_conn_cache *sk_conn_cache_new(struct event_base *base, unsigned idle_s, unsigned per_domain)
{
    sk_conn_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->idle_s = idle_s ? idle_s : 2;
    c->per_domain = per_domain ? per_domain : 1;
    return c;
}

static void cached_unlink(cached_conn *cc)
{
    sk_conn_cache *c = cc->cache;
    for (cached_conn **pp = &c->list; *pp; pp = &(*pp)->next) {
        if (*pp == cc) {
            *pp = cc->next;
            c->n--;
            break;
        }
    }
}

static void cached_free(cached_conn *cc, int close_conn)
{
    cached_unlink(cc);
    if (close_conn) {
        if (cc->bev)
            bufferevent_free(cc->bev);
        sk_client_core_free(cc->core);
    }
    if (cc->timer)
        event_free(cc->timer);
    free(cc);
}

void sk_conn_cache_free(sk_conn_cache *c)
{
    if (!c)
        return;
    while (c->list)
        cached_free(c->list, 1);
    free(c);
}

size_t sk_conn_cache_size(const sk_conn_cache *c)
{
    return c ? c->n : 0;
}

/* An idle connection spoke, closed or timed out: it is no use any more. */
static void cached_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cached_free(arg, 1);
}

static void cached_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    cached_free(arg, 1);
}

static void cached_drained(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cached_free(arg, 1);
}

/* Idle too long: QUIT (RFC 5321 4.1.1.10), then close once it is written
 * (or a second later at the latest). */
static void cached_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cached_conn *cc = arg;
    if (cc->quitting) {
        cached_free(cc, 1);
        return;
    }
    cc->quitting = 1;
    sk_client_core_quit(cc->core);
    sk_buf *o = sk_client_core_output(cc->core);
    if (!o->len || bufferevent_write(cc->bev, o->data, o->len) < 0) {
        cached_free(cc, 1);
        return;
    }
    sk_buf_consume(o, o->len);
    bufferevent_setcb(cc->bev, cached_read, cached_drained, cached_event, cc);
    struct timeval one = {.tv_sec = 1};
    evtimer_add(cc->timer, &one);
}

/* Keep a's connection for the next message to its domain. 1 kept. */
static int cache_put(sk_attempt *a)
{
    sk_conn_cache *c = a->env.cache;
    if (!c || !a->bev || !a->core || a->in_handshake)
        return 0;
    size_t same = 0;
    for (cached_conn *x = c->list; x; x = x->next)
        same += strcasecmp(x->domain, a->domain) == 0;
    if (same >= c->per_domain)
        return 0;
    cached_conn *cc = calloc(1, sizeof *cc);
    if (!cc)
        return 0;
    cc->cache = c;
    cc->timer = evtimer_new(c->base, cached_timeout, cc);
    if (!cc->timer) {
        free(cc);
        return 0;
    }
    snprintf(cc->domain, sizeof cc->domain, "%s", a->domain);
    memcpy(cc->relay, a->relay, sizeof cc->relay);
    cc->tls = a->tls;
    cc->bev = a->bev;
    cc->core = a->core;
    a->bev = NULL;
    a->core = NULL;
    evtimer_del(a->timer);
    bufferevent_setcb(cc->bev, cached_read, NULL, cached_event, cc);
    struct timeval tv = {.tv_sec = c->idle_s};
    evtimer_add(cc->timer, &tv);
    cc->next = c->list;
    c->list = cc;
    c->n++;
    return 1;
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* Take an idle connection to a's domain. 1 taken. */
static int cache_take(sk_attempt *a)
{
    sk_conn_cache *c = a->env.cache;
    if (!c)
        return 0;
    for (cached_conn *x = c->list; x; x = x->next) {
        if (x->quitting || strcasecmp(x->domain, a->domain) != 0)
            continue;
        a->bev = x->bev;
        a->core = x->core;
        a->tls = x->tls;
        memcpy(a->relay, x->relay, sizeof a->relay);
        x->bev = NULL;
        x->core = NULL;
        cached_free(x, 0);
        bufferevent_setcb(a->bev, on_read, NULL, on_event, a);
        a->wait_seq = 0;
        a->reused = 1;
        return 1;
    }
    return 0;
}

/* ---- one connection ----------------------------------------------------- */

static void conn_failed(sk_attempt *a, const sk_reply *r, const char *why)
{
    a->last_code = r ? r->code : 0;
    if (r) {
        reply_text(r, a->last_why, sizeof a->last_why);
        reply_enh(r, a->last_enh, sizeof a->last_enh);
    } else {
        snprintf(a->last_why, sizeof a->last_why, "%s", why ? why : "connection failed");
        a->last_enh[0] = '\0';
    }
    a->last_perm = r && r->code >= 500;
    char t[sizeof a->last_why];
    snprintf(t, sizeof t, "%.180s: %.300s", a->relay, a->last_why);
    memcpy(a->last_why, t, sizeof t);
}

/* The system's trust anchors, loaded into the shared client context the
 * first time a destination needs them (a per-destination "verify" under a
 * global "may" or "encrypt"). */
static void load_verify_paths(SSL_CTX *ctx)
{
    static SSL_CTX *loaded;
    if (loaded != ctx && SSL_CTX_set_default_verify_paths(ctx) == 1)
        loaded = ctx;
}

static int start_tls(sk_attempt *a)
{
    SSL *ssl = SSL_new(a->env.tls);
    if (!ssl)
        return -1;
    const char *name = a->route ? a->route->hosts[a->host_i].name : a->domain;
    if (a->tls_policy == SK_TLS_VERIFY) {
        load_verify_paths(a->env.tls);
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        SSL_set1_host(ssl, name);
    }
    SSL_set_tlsext_host_name(ssl, name);
    /* the unread bytes are dropped, the handshake starts (cc_bev.c) */
    struct bufferevent *tb = sk_cc_bev_starttls(a->env.base, a->bev, ssl);
    if (!tb)
        return -1;
    a->bev = tb;
    a->in_handshake = 1;
    bufferevent_setcb(tb, on_read, NULL, on_event, a);
    bufferevent_setwatermark(tb, EV_READ, 0, RBUF_HIGH);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    struct timeval tv = {.tv_sec =
                             a->env.cfg->timeout_greeting ? a->env.cfg->timeout_greeting : 300};
    evtimer_add(a->timer, &tv);
    return 0;
}

static void submit(sk_attempt *a)
{
    a->ncc = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->res[i].state != SK_DLV_OPEN)
            continue;
        a->res[i].accepted = 0;
        a->cc[a->ncc] = (sk_cc_rcpt){.addr = a->res[i].addr};
        a->map[a->ncc++] = i;
    }
    if (!a->ncc) {
        sk_client_core_quit(a->core);
        return;
    }
    a->reached = 1;
    a->used_tls = a->tls;
    a->ccmsg = (sk_cc_message){
        .mail_from = a->msg.sender,
        .rcpts = a->cc,
        .nrcpts = a->ncc,
        .size = a->msg.size ? a->msg.size : a->msg.len,
        .body_8bit = a->msg.body_8bit,
        .smtputf8 = a->msg.smtputf8,
    };
    if (sk_client_core_submit(a->core, &a->ccmsg) < 0)
        sk_client_core_quit(a->core);
}

static void message_done(sk_attempt *a, const sk_cc_event *ev)
{
    for (size_t j = 0; j < a->ncc; j++) {
        size_t k = a->map[j];
        sk_dlv_rcpt_result *r = &a->res[k];
        if (r->state != SK_DLV_OPEN)
            continue;
        switch (ev->status) {
        case SK_CC_MSG_SENT:
            if (r->accepted)
                decide(a, k, SK_DLV_SENT, ev->reply, NULL, NULL);
            break;
        case SK_CC_MSG_REFUSED:
            if (ev->phase != SK_CC_PHASE_MAIL && !r->accepted)
                break;
            if (ev->verdict == SK_CC_PERM)
                decide(a, k, SK_DLV_BOUNCE, ev->reply, NULL, NULL);
            else
                soft(a, k, ev->reply, NULL);
            break;
        case SK_CC_MSG_LOCAL: {
            const char *st = "5.3.0";
            const char *why = ev->text ? ev->text : "the next hop cannot take this message";
            switch (ev->local) {
            case SK_CC_LOCAL_TOO_BIG:
                st = "5.3.4";
                break;
            case SK_CC_LOCAL_NEEDS_8BITMIME:
                st = "5.6.3";
                break;
            case SK_CC_LOCAL_NEEDS_SMTPUTF8:
                st = "5.6.7";
                break;
            case SK_CC_LOCAL_BAD_ADDRESS:
                st = "5.1.3";
                break;
            default:
                break;
            }
            decide(a, k, SK_DLV_BOUNCE, NULL, why, st);
            break;
        }
        case SK_CC_MSG_ABORTED:
            soft(a, k, ev->reply, ev->text ? ev->text : "connection lost");
            if (!ev->reply) {
                char t[sizeof a->res[k].text];
                snprintf(t, sizeof t, "lost connection with %.180s: %.300s", a->relay,
                         a->res[k].text);
                memcpy(a->res[k].text, t, sizeof t);
            }
            break;
        case SK_CC_MSG_NO_RECIPIENTS:
        case SK_CC_MSG_ENVELOPE:
        default:
            break;
        }
    }
}

/* Act on one event. Returns 1 when the connection is gone. */
static int on_core_event(sk_attempt *a, const sk_cc_event *ev)
{
    switch (ev->type) {
    case SK_CC_EV_READY:
        if (a->msg_done) {
            /* the message is done and the connection still good */
            if (!open_count(a) && cache_put(a)) {
                schedule_step(a);
                return 1;
            }
            sk_client_core_quit(a->core);
            break;
        }
        submit(a);
        break;
    case SK_CC_EV_START_TLS:
        if (start_tls(a) < 0) {
            conn_failed(a, NULL, "cannot start TLS");
            conn_close(a);
            schedule_step(a);
            return 1;
        }
        break;
    case SK_CC_EV_SEND_BODY:
        if (sk_client_core_body(a->core, a->msg.data, a->msg.len, 1) < 0) {
            conn_failed(a, NULL, "cannot send the message");
            conn_close(a);
            schedule_step(a);
            return 1;
        }
        break;
    case SK_CC_EV_RCPT:
        if (ev->rcpt < a->ncc) {
            size_t k = a->map[ev->rcpt];
            if (ev->verdict == SK_CC_OK) {
                a->res[k].accepted = 1;
            } else if (ev->verdict == SK_CC_PERM) {
                decide(a, k, SK_DLV_BOUNCE, ev->reply, NULL, NULL);
            } else {
                soft(a, k, ev->reply, NULL);
            }
        }
        break;
    case SK_CC_EV_MESSAGE_DONE:
        message_done(a, ev);
        a->msg_done = 1;
        break;
    case SK_CC_EV_FAILED:
        if (ev->phase == SK_CC_PHASE_TLS)
            a->tls_failed = 1;
        conn_failed(a, ev->reply, ev->text);
        /* RFC 3463 / Postfix: TLS required but not offered 4.7.4, a failed
         * handshake 4.7.5 (a reply's own code stays when it has one) */
        if (!a->last_enh[0] && ev->phase == SK_CC_PHASE_STARTTLS)
            snprintf(a->last_enh, sizeof a->last_enh, "4.7.4");
        else if (!a->last_enh[0] && ev->phase == SK_CC_PHASE_TLS)
            snprintf(a->last_enh, sizeof a->last_enh, "4.7.5");
        break;
    default:
        break;
    }
    return 0;
}

/* Move output, handle events, keep the timer. Returns 1 when the
 * connection is gone. */
static int drive(sk_attempt *a)
{
    for (;;) {
        if (sk_cc_bev_flush(a->core, a->bev) < 0) {
            conn_failed(a, NULL, "out of memory");
            conn_close(a);
            schedule_step(a);
            return 1;
        }
        sk_cc_event ev;
        if (!sk_client_core_next_event(a->core, &ev))
            break;
        if (on_core_event(a, &ev))
            return 1;
    }
    if (sk_client_core_wants(a->core) & SK_CC_WANT_CLOSE) {
        conn_close(a);
        schedule_step(a);
        return 1;
    }
    if (a->in_handshake)
        return 0;
    sk_cc_bev_arm(a->core, a->timer, &a->wait_seq, NULL); /* each wait its own limit */
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    sk_attempt *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (a->bev == bev && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        sk_client_core_feed(a->core, v.iov_base, v.iov_len);
        evbuffer_drain(in, v.iov_len);
        if (drive(a))
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    sk_attempt *a = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (a->in_handshake) {
            a->in_handshake = 0;
            a->tls = 1;
            evtimer_del(a->timer);
            a->wait_seq = 0;
            sk_client_core_tls_done(a->core, 1);
            drive(a);
        }
        return; /* TCP connected: the greeting's timer runs already */
    }
    if (a->in_handshake && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        a->in_handshake = 0;
        sk_client_core_tls_done(a->core, 0);
        drive(a);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        int e = EVUTIL_SOCKET_ERROR();
        sk_client_core_lost(a->core, (what & BEV_EVENT_ERROR) && e ? strerror(e) : NULL);
        drive(a);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_attempt *a = arg;
    if (a->in_handshake) {
        a->in_handshake = 0;
        sk_client_core_tls_done(a->core, 0);
        drive(a);
        return;
    }
    sk_client_core_timeout(a->core);
    drive(a);
}

static unsigned ms_of(unsigned s)
{
    return s ? s * 1000u : 0;
}

/* Connect to the current address. 0 under way, -1 failed at once. */
static int conn_open(sk_attempt *a)
{
    const sk_mx_route_host *h = &a->route->hosts[a->host_i];
    const sk_addr *ad = &h->addrs[a->addr_i];
    const sk_delivery_config *cfg = a->env.cfg;
    unsigned port = cfg->smtp_port ? cfg->smtp_port : 25;
    snprintf(a->relay, sizeof a->relay, "%s[%s]:%u", h->name, ad->text, port);
    sk_client_core_config cc = {
        .helo = a->env.helo,
        .tls = SK_CC_TLS_OFF,
        .max_messages =
            a->env.cache ? (cfg->messages_per_connection ? cfg->messages_per_connection : 100) : 1,
        .rset_between = a->env.cache != NULL, /* proves the connection alive for the next */
        .timeouts =
            {
                .greeting = ms_of(cfg->timeout_greeting),
                .command = ms_of(cfg->timeout_greeting),
                .mail = ms_of(cfg->timeout_mail),
                .rcpt = ms_of(cfg->timeout_rcpt),
                .data = ms_of(cfg->timeout_data),
                .block = ms_of(cfg->timeout_data_block),
                .data_end = ms_of(cfg->timeout_final_dot),
            },
    };
    if (a->env.tls && !a->plaintext)
        cc.tls = a->tls_policy == SK_TLS_MAY ? SK_CC_TLS_OPPORTUNISTIC : SK_CC_TLS_REQUIRED;
    else if (a->tls_policy != SK_TLS_MAY)
        cc.tls = SK_CC_TLS_REQUIRED;
    a->tls = a->tls_failed = 0;
    a->msg_done = 0;
    a->core = sk_client_core_new(&cc);
    a->bev = bufferevent_socket_new(a->env.base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!a->core || !a->bev) {
        conn_failed(a, NULL, "out of memory");
        conn_close(a);
        return -1;
    }
    bufferevent_setcb(a->bev, on_read, NULL, on_event, a);
    bufferevent_setwatermark(a->bev, EV_READ, 0, RBUF_HIGH);
    bufferevent_enable(a->bev, EV_READ | EV_WRITE);
    sk_cc_wait w;
    sk_client_core_wait(a->core, &w);
    a->wait_seq = w.seq;
    long ms = w.ms >= 0 ? w.ms : 300000;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(a->timer, &tv);
    if (bufferevent_socket_connect(a->bev, (const struct sockaddr *)&ad->ss, (int)ad->len) < 0) {
        conn_failed(a, NULL, "cannot connect");
        conn_close(a);
        return -1;
    }
    return 0;
}

/* The last connection is over: the same address in plaintext (a failed
 * handshake under "may"), else the next address, the next host, or done. */
static void next_step(sk_attempt *a)
{
    if (a->bev || a->core)
        return;
    for (;;) {
        if (!open_count(a)) {
            finish(a);
            return;
        }
        if (!a->route) {
            /* a cached connection failed: resolve and go on as usual */
            if (!a->reused || a->lookup || a->resolved) {
                finish(a);
                return;
            }
            a->resolved = 1;
            int port = a->env.cfg->smtp_port ? (int)a->env.cfg->smtp_port : 25;
            a->lookup =
                sk_mx_async_lookup(a->env.resolver, a->domain, port, SK_MX_SHUFFLE, on_route, a);
            if (!a->lookup)
                finish(a);
            return;
        }
        if (a->tls_failed && !a->plaintext && a->tls_policy == SK_TLS_MAY) {
            a->plaintext = 1; /* the same address once more, without TLS */
        } else if (a->started) {
            a->plaintext = 0;
            if (++a->addr_i >= a->route->hosts[a->host_i].naddrs) {
                a->addr_i = 0;
                a->host_i++;
            }
        }
        a->started = 1;
        a->tls_failed = 0;
        while (a->host_i < a->route->n && a->route->hosts[a->host_i].naddrs == 0)
            a->host_i++;
        if (a->host_i >= a->route->n) {
            finish(a);
            return;
        }
        if (conn_open(a) == 0)
            return;
    }
}

/* ---- resolution --------------------------------------------------------- */

static void on_route(void *arg, const sk_mx_route *route)
{
    sk_attempt *a = arg;
    a->lookup = NULL;
    a->route = malloc(sizeof *a->route);
    if (!a->route) {
        snprintf(a->last_why, sizeof a->last_why, "out of memory");
        finish(a);
        return;
    }
    *a->route = *route;
    sk_mx_route_strip_self(a->route, a->env.listeners, a->env.nlisteners, a->env.local,
                           a->env.nlocal);
    sk_route_verdict v = sk_mx_route_verdict(a->route);
    if (v.action != SK_ROUTE_DELIVER) {
        char why[300];
        snprintf(why, sizeof why, "%s: %s", a->domain, v.why ? v.why : "no route");
        for (size_t i = 0; i < a->n; i++)
            sk_dlv_set(&a->res[i], v.action == SK_ROUTE_BOUNCE ? SK_DLV_BOUNCE : SK_DLV_DEFER, 0,
                       v.status, "", why);
        free(a->route);
        a->route = NULL;
        finish(a);
        return;
    }
    a->started = 0;
    next_step(a);
}

/* ---- the attempt -------------------------------------------------------- */

sk_attempt *sk_attempt_start(const sk_attempt_env *env, const char *domain,
                             const sk_attempt_msg *msg, const sk_dlv_rcpt_result *rcpts, size_t n,
                             sk_attempt_done_fn done, void *arg)
{
    sk_attempt *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->env = *env;
    a->msg = *msg;
    snprintf(a->domain, sizeof a->domain, "%s", domain);
    a->tls_policy = sk_delivery_tls_policy(env->cfg, a->domain);
    a->n = n;
    a->done = done;
    a->arg = arg;
    a->res = calloc(n ? n : 1, sizeof *a->res);
    a->cc = calloc(n ? n : 1, sizeof *a->cc);
    a->map = calloc(n ? n : 1, sizeof *a->map);
    a->step = event_new(env->base, -1, 0, step_cb, a);
    a->timer = evtimer_new(env->base, on_timeout, a);
    if (!a->res || !a->cc || !a->map || !a->step || !a->timer) {
        sk_attempt_free(a);
        return NULL;
    }
    memcpy(a->res, rcpts, n * sizeof *a->res);
    if (cache_take(a)) {
        /* an idle connection to this domain: the message goes on it now */
        submit(a);
        drive(a);
        return a;
    }
    a->resolved = 1;
    int port = env->cfg->smtp_port ? (int)env->cfg->smtp_port : 25;
    a->lookup = sk_mx_async_lookup(env->resolver, domain, port, SK_MX_SHUFFLE, on_route, a);
    if (!a->lookup) {
        /* an empty or over-long domain: nowhere to deliver */
        for (size_t i = 0; i < n; i++)
            sk_dlv_set(&a->res[i], SK_DLV_BOUNCE, 0, "5.1.2", "", "bad destination domain");
        snprintf(a->last_why, sizeof a->last_why, "bad destination domain");
        schedule_step(a); /* finish from the loop */
    }
    return a;
}

void sk_attempt_free(sk_attempt *a)
{
    if (!a)
        return;
    if (a->lookup)
        sk_mx_async_cancel(a->lookup);
    conn_close(a);
    if (a->step)
        event_free(a->step);
    if (a->timer)
        event_free(a->timer);
    free(a->route);
    free(a->res);
    free(a->cc);
    free(a->map);
    free(a);
}

void sk_attempt_abort(sk_attempt *a)
{
    sk_attempt_free(a);
}

const char *sk_attempt_domain(const sk_attempt *a)
{
    return a->domain;
}

sk_dlv_rcpt_result *sk_attempt_results(sk_attempt *a, size_t *n)
{
    *n = a->n;
    return a->res;
}

int sk_attempt_all_mx_failed(const sk_attempt *a)
{
    return !a->reached;
}

int sk_attempt_tls(const sk_attempt *a)
{
    return a->used_tls;
}

int sk_attempt_reused(const sk_attempt *a)
{
    return a->reused;
}
