/*
 * dovecot_auth.c - the client of Dovecot's auth-client socket for SMTP
 * AUTH (RFC 4954; PLAIN RFC 4616, LOGIN): a bufferevent on the Unix socket
 * (never blocking the loop), the handshake (VERSION/CPID out; VERSION,
 * MECH..., DONE in), requests by id (AUTH with service=smtp, nologin,
 * secured, lip/rip, resp=; CONT for LOGIN's steps), each answered once:
 * OK, FAIL, or a temporary failure when the socket is gone, the protocol
 * breaks or Dovecot does not answer in time. A lost connection is retried
 * with a growing pause (0.1 s doubling to 10 s).
 */
#include "server/dovecot_auth.h"
#include "server/dovecot_auth_proto.h"
#include "server/log.h"
#include "smtpkit/sasl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>

/* A request has this long for its answer (Dovecot itself delays a failure
 * by auth_failure_delay, 2 s by default, and more under auth penalty). */
#define REQUEST_TIMEOUT_S 30
/* Requests waiting for the connection or an answer, at most. */
#define MAX_PENDING 4096
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 10000

typedef struct request {
    struct request *prev, *next;
    sk_dovecot_auth *da;
    unsigned long id;
    int sent;
    int login_step; /* LOGIN: challenges answered so far */
    int use_login;
    char *user;
    char *password;
    sk_dovecot_conn_info info;
    char rip[64], lip[64];
    struct event *timer; /* the answer's deadline */
    struct event *later; /* delivers the answer from the loop */
    int later_result;
    int done;          /* answered; waiting for delivery */
    char *answer_user; /* OK's user= */
    sk_dovecot_auth_cb cb;
    void *arg;
} request;

typedef enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_READY } da_state;

struct sk_dovecot_auth {
    struct event_base *base;
    char *path;
    struct bufferevent *bev;
    da_state state;
    sk_dauth_parser parser;
    unsigned offered; /* mechanisms of the current handshake */
    unsigned mechs;   /* of the last complete handshake */
    int ever_ready;
    int version_ok;
    unsigned long next_id;
    request *pending; /* doubly linked */
    size_t npending;
    struct event *retry;
    unsigned retry_ms;
    int started;
};

static void connect_now(sk_dovecot_auth *da);

/* ---- requests ---- */

static void request_free(request *r)
{
    if (r->timer)
        event_free(r->timer);
    if (r->later)
        event_free(r->later);
    if (r->password) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->user);
    free(r->answer_user);
    free(r);
}

static void unlink_request(sk_dovecot_auth *da, request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        da->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    da->npending--;
}

/* Deliver an answer decided earlier (from the loop, never from inside a
 * call of the interface) and forget the request. */
static void deliver(request *r)
{
    sk_dovecot_auth *da = r->da;
    unlink_request(da, r);
    sk_dovecot_auth_cb cb = r->cb;
    void *arg = r->arg;
    int result = r->later_result;
    char *u = r->answer_user;
    r->answer_user = NULL;
    /* the callback may free the SMTP connection: nothing of r after it */
    request_free(r);
    cb(arg, result, u);
    free(u);
}

static void request_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver(arg);
}

/* Decide a request: its answer goes out from the loop's next turn. */
static void finish(request *r, int result, const char *user)
{
    if (r->done)
        return;
    r->done = 1;
    r->later_result = result;
    r->answer_user = user ? strdup(user) : NULL;
    evtimer_del(r->timer);
    struct timeval now = {0, 0};
    if (evtimer_add(r->later, &now) != 0)
        deliver(r); /* cannot defer: answer now */
}

static request *find(sk_dovecot_auth *da, unsigned long id)
{
    for (request *r = da->pending; r; r = r->next)
        if (r->id == id && !r->done)
            return r;
    return NULL;
}

static void fail_all(sk_dovecot_auth *da)
{
    request *r = da->pending;
    while (r) {
        request *next = r->next; /* finish() may deliver (and free) r */
        finish(r, -1, NULL);
        r = next;
    }
}

static void request_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    request *r = arg;
    sk_log(LOG_WARNING, "event=dovecot-auth-timeout socket=%s id=%lu", r->da->path, r->id);
    finish(r, -1, NULL);
}

static int send_line(sk_dovecot_auth *da, const char *line, size_t n)
{
    return da->bev && bufferevent_write(da->bev, line, n) == 0 ? 0 : -1;
}

static void send_auth(sk_dovecot_auth *da, request *r)
{
    r->use_login = !(da->mechs & SK_DOVECOT_MECH_PLAIN);
    if (r->use_login && !(da->mechs & SK_DOVECOT_MECH_LOGIN)) {
        finish(r, -1, NULL); /* Dovecot offers neither any more */
        return;
    }
    char resp[4 * ((2 * SK_SASL_FIELD_MAX + 2 + 2) / 3) + 8];
    resp[0] = '\0';
    if (!r->use_login) {
        /* RFC 4616: [authzid] NUL authcid NUL passwd */
        unsigned char msg[2 * SK_SASL_FIELD_MAX + 2];
        size_t ul = strlen(r->user), pl = strlen(r->password);
        if (ul > SK_SASL_FIELD_MAX || pl > SK_SASL_FIELD_MAX) {
            finish(r, 0, NULL);
            return;
        }
        msg[0] = '\0';
        memcpy(msg + 1, r->user, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, r->password, pl);
        size_t len = sk_sasl_b64_encode(msg, 2 + ul + pl, resp, sizeof resp);
        OPENSSL_cleanse(msg, sizeof msg);
        if (!len) {
            finish(r, -1, NULL);
            return;
        }
    }
    sk_dauth_auth a = {
        .id = r->id,
        .mech = r->use_login ? "LOGIN" : "PLAIN",
        .service = "smtp",
        .secured = r->info.secured,
        .lip = r->info.lip,
        .rip = r->info.rip,
        .lport = r->info.lport,
        .rport = r->info.rport,
        .resp = r->use_login ? NULL : resp,
    };
    char line[1024];
    size_t n = sk_dauth_format_auth(line, sizeof line, &a);
    int ok = n && send_line(da, line, n) == 0;
    OPENSSL_cleanse(line, sizeof line);
    OPENSSL_cleanse(resp, sizeof resp);
    if (!ok) {
        finish(r, -1, NULL);
        return;
    }
    r->sent = 1;
}

static void send_waiting(sk_dovecot_auth *da)
{
    for (request *r = da->pending; r; r = r->next)
        if (!r->sent && !r->done)
            send_auth(da, r);
}

/* LOGIN: Dovecot asks "Username:" then "Password:" (base64). */
static void answer_cont(sk_dovecot_auth *da, request *r)
{
    if (!r->use_login || r->login_step >= 2) {
        finish(r, 0, NULL); /* PLAIN never needs a second step */
        return;
    }
    const char *v = r->login_step == 0 ? r->user : r->password;
    char b64[4 * ((SK_SASL_FIELD_MAX + 2) / 3) + 8], line[512];
    size_t bl = sk_sasl_b64_encode((const unsigned char *)v, strlen(v), b64, sizeof b64);
    size_t n = bl || !*v ? sk_dauth_format_cont(line, sizeof line, r->id, b64) : 0;
    int ok = n && send_line(da, line, n) == 0;
    OPENSSL_cleanse(b64, sizeof b64);
    OPENSSL_cleanse(line, sizeof line);
    if (!ok) {
        finish(r, -1, NULL);
        return;
    }
    r->login_step++;
}

/* ---- the connection ---- */

static void schedule_retry(sk_dovecot_auth *da)
{
    if (!da->retry)
        return;
    struct timeval tv = {.tv_sec = da->retry_ms / 1000, .tv_usec = (da->retry_ms % 1000) * 1000};
    evtimer_add(da->retry, &tv);
    da->retry_ms = da->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : da->retry_ms * 2;
}

static void drop_connection(sk_dovecot_auth *da, const char *why)
{
    if (da->bev) {
        bufferevent_free(da->bev);
        da->bev = NULL;
    }
    if (da->state == ST_READY || da->state == ST_HANDSHAKE)
        sk_log(LOG_WARNING, "event=dovecot-auth-lost socket=%s error=\"%s\"", da->path, why);
    else
        sk_log(LOG_WARNING, "event=dovecot-auth-unreachable socket=%s error=\"%s\"", da->path, why);
    da->state = ST_IDLE;
    fail_all(da); /* 454 for everyone waiting: never an accept */
    schedule_retry(da);
}

static void on_record(sk_dovecot_auth *da, const sk_dauth_record *rec)
{
    switch (rec->type) {
    case SK_DAUTH_VERSION:
        if (rec->major != SK_DAUTH_MAJOR) {
            drop_connection(da, "auth protocol major version is not 1");
            return;
        }
        da->version_ok = 1;
        break;
    case SK_DAUTH_MECH:
        if (rec->mech_flags & SK_DAUTH_MECH_PRIVATE)
            break;
        if (!strcasecmp(rec->mech, "PLAIN"))
            da->offered |= SK_DOVECOT_MECH_PLAIN;
        else if (!strcasecmp(rec->mech, "LOGIN"))
            da->offered |= SK_DOVECOT_MECH_LOGIN;
        break;
    case SK_DAUTH_DONE:
        if (da->state != ST_HANDSHAKE || !da->version_ok) {
            drop_connection(da, "DONE without VERSION from the auth server");
            return;
        }
        da->state = ST_READY;
        da->mechs = da->offered;
        da->ever_ready = 1;
        da->retry_ms = RETRY_MIN_MS;
        sk_log(LOG_INFO, "event=dovecot-auth-ready socket=%s mechs=%s%s%s", da->path,
               da->mechs & SK_DOVECOT_MECH_PLAIN ? "PLAIN" : "",
               da->mechs == (SK_DOVECOT_MECH_PLAIN | SK_DOVECOT_MECH_LOGIN) ? "," : "",
               da->mechs & SK_DOVECOT_MECH_LOGIN ? "LOGIN" : (da->mechs ? "" : "none"));
        send_waiting(da);
        break;
    case SK_DAUTH_OK:
    case SK_DAUTH_FAIL:
    case SK_DAUTH_CONT: {
        request *r = find(da, rec->id);
        if (!r || !r->sent)
            break; /* a request we gave up on (timeout) */
        if (rec->type == SK_DAUTH_OK)
            finish(r, 1, rec->user);
        else if (rec->type == SK_DAUTH_FAIL)
            finish(r, rec->temp ? -1 : 0, NULL);
        else
            answer_cont(da, r);
        break;
    }
    default:
        break; /* SPID, CUID, COOKIE and unknown lines: not needed here */
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    sk_dovecot_auth *da = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n = evbuffer_get_length(in);
        if (!n || da->bev != bev)
            return;
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        const char *p = v.iov_base;
        size_t left = v.iov_len;
        sk_dauth_record rec;
        const char *why;
        int r = sk_dauth_parse(&da->parser, &p, &left, &rec, &why);
        evbuffer_drain(in, v.iov_len - left);
        if (r < 0) {
            drop_connection(da, why);
            return;
        }
        if (r > 0)
            on_record(da, &rec);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    sk_dovecot_auth *da = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        char hs[64];
        size_t n = sk_dauth_format_handshake(hs, sizeof hs, (unsigned long)getpid());
        da->state = ST_HANDSHAKE;
        if (!n || send_line(da, hs, n) != 0)
            drop_connection(da, "cannot send the handshake");
        return;
    }
    char why[128];
    int e = EVUTIL_SOCKET_ERROR();
    snprintf(why, sizeof why, "%s",
             (what & BEV_EVENT_EOF) ? "connection closed by Dovecot"
                                    : (e ? evutil_socket_error_to_string(e) : "socket error"));
    drop_connection(da, why);
}

static void connect_now(sk_dovecot_auth *da)
{
    if (da->state != ST_IDLE)
        return;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(da->path) >= sizeof sun.sun_path) {
        sk_log(LOG_ERR, "event=dovecot-auth-unreachable socket=%s error=\"path too long\"",
               da->path);
        return;
    }
    memcpy(sun.sun_path, da->path, strlen(da->path) + 1);
    da->bev = bufferevent_socket_new(da->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!da->bev) {
        schedule_retry(da);
        return;
    }
    sk_dauth_parser_init(&da->parser);
    da->offered = 0;
    da->version_ok = 0;
    bufferevent_setcb(da->bev, on_read, NULL, on_event, da);
    bufferevent_enable(da->bev, EV_READ | EV_WRITE);
    da->state = ST_CONNECTING;
    if (bufferevent_socket_connect(da->bev, (struct sockaddr *)&sun, (int)sizeof sun) != 0) {
        char why[128];
        snprintf(why, sizeof why, "%s", strerror(errno));
        drop_connection(da, why);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

/* ---- the interface ---- */

sk_dovecot_auth *sk_dovecot_auth_new(struct event_base *base, const char *path)
{
    sk_dovecot_auth *da = calloc(1, sizeof *da);
    if (!da)
        return NULL;
    da->base = base;
    da->path = strdup(path);
    da->retry = evtimer_new(base, retry_cb, da);
    da->retry_ms = RETRY_MIN_MS;
    da->next_id = 1;
    if (!da->path || !da->retry) {
        sk_dovecot_auth_free(da);
        return NULL;
    }
    return da;
}

void sk_dovecot_auth_start(sk_dovecot_auth *da)
{
    da->started = 1;
    connect_now(da);
}

void sk_dovecot_auth_free(sk_dovecot_auth *da)
{
    if (!da)
        return;
    /* Every request is answered, now (the loop is over). */
    while (da->pending) {
        request *r = da->pending;
        if (!r->done) {
            r->done = 1;
            r->later_result = -1;
        }
        deliver(r);
    }
    if (da->bev)
        bufferevent_free(da->bev);
    if (da->retry)
        event_free(da->retry);
    free(da->path);
    free(da);
}

unsigned sk_dovecot_auth_mechs(const sk_dovecot_auth *da)
{
    return da->ever_ready ? da->mechs : SK_DOVECOT_MECH_PLAIN | SK_DOVECOT_MECH_LOGIN;
}

int sk_dovecot_auth_ready(const sk_dovecot_auth *da)
{
    return da->state == ST_READY;
}

int sk_dovecot_auth_check(sk_dovecot_auth *da, const char *user, const char *password,
                          const sk_dovecot_conn_info *info, sk_dovecot_auth_cb cb, void *arg)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->da = da;
    r->cb = cb;
    r->arg = arg;
    r->user = strdup(user);
    r->password = strdup(password);
    r->timer = evtimer_new(da->base, request_timeout, r);
    r->later = evtimer_new(da->base, request_later, r);
    struct timeval tv = {.tv_sec = REQUEST_TIMEOUT_S, .tv_usec = 0};
    if (!r->user || !r->password || !r->timer || !r->later || evtimer_add(r->timer, &tv) != 0) {
        request_free(r);
        return -1;
    }
    r->info = *info;
    if (info->rip) {
        snprintf(r->rip, sizeof r->rip, "%s", info->rip);
        r->info.rip = r->rip;
    }
    if (info->lip) {
        snprintf(r->lip, sizeof r->lip, "%s", info->lip);
        r->info.lip = r->lip;
    }
    r->id = da->next_id++;
    if (da->next_id > 4000000000UL)
        da->next_id = 1;
    r->next = da->pending;
    if (r->next)
        r->next->prev = r;
    da->pending = r;
    da->npending++;
    if (da->npending > MAX_PENDING) {
        finish(r, -1, NULL);
        return 0;
    }
    if (da->state == ST_READY) {
        send_auth(da, r); /* writing only queues; answers come from the loop */
        return 0;
    }
    /* Not connected: wait for the handshake (the timer bounds the wait). */
    if (da->state == ST_IDLE) {
        if (da->retry)
            evtimer_del(da->retry);
        connect_now(da);
    }
    return 0;
}
