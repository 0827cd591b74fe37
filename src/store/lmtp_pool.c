/*
 * lmtp_pool.c - the store's LMTP client (RFC 2033): connections to one LMTP
 * server ("unix:/path" or "host:port"), each driven by the client core in
 * its LMTP mode (LHLO; PIPELINING when offered; DATA; one reply per
 * accepted recipient after the data, 4.2) over a blocking socket, every
 * wait bounded by poll().
 *
 * A pool keeps up to max_conns connections: a delivery takes an idle one
 * (RSET after each message proved it alive; one that has become readable
 * or hung up while idle, or stayed idle longer than SK_LMTP_IDLE_MAX, is
 * closed instead) or opens a new one, and waits when max_conns are busy
 * (Dovecot 2.4 allows 10 concurrent deliveries per user by default). It
 * runs on the commit worker threads only.
 */
#include "store/lmtp_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BODY_CHUNK (64 * 1024)

typedef struct lconn {
    struct lconn *next;
    int fd;
    sk_client_core *core;
    time_t idle_since;
} lconn;

struct sk_lmtp_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lconn *idle;
    unsigned nidle, busy, max, peak;
    unsigned long long opened;
    int is_unix;
    char host[256], port[108];
    char target[400]; /* as configured, for the log */
    char *lhlo;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sk_lmtp_target_parse(const char *target, char *host, size_t hostcap, char *port, size_t portcap,
                         int *is_unix, char *err, size_t errlen)
{
    *is_unix = 0;
    if (!target || !*target) {
        snprintf(err, errlen, "empty LMTP target");
        return -1;
    }
    if (!strncmp(target, "unix:", 5)) {
        const char *path = target + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
            strlen(path) >= portcap) {
            snprintf(err, errlen, "LMTP target \"%s\": unix: needs an absolute socket path",
                     target);
            return -1;
        }
        *is_unix = 1;
        snprintf(port, portcap, "%s", path);
        host[0] = '\0';
        return 0;
    }
    const char *colon, *h = target;
    size_t hl;
    if (target[0] == '[') {
        const char *close = strchr(target, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "LMTP target \"%s\": expected [address]:port", target);
            return -1;
        }
        h = target + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(target, ':');
        if (!colon || strchr(target, ':') != colon) {
            snprintf(err, errlen,
                     "LMTP target \"%s\": expected \"unix:/path\", \"host:port\" or "
                     "\"[address]:port\"",
                     target);
            return -1;
        }
        hl = (size_t)(colon - target);
    }
    char *end = NULL;
    errno = 0;
    unsigned long pn = strtoul(colon + 1, &end, 10);
    if (hl == 0 || hl >= hostcap || colon[1] < '0' || colon[1] > '9' || *end || errno || pn == 0 ||
        pn > 65535) {
        snprintf(err, errlen, "LMTP target \"%s\": bad host or port", target);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portcap, "%lu", pn);
    return 0;
}

sk_lmtp_pool *sk_lmtp_pool_new(const char *target, unsigned max_conns, const char *lhlo, char *err,
                               size_t errlen)
{
    sk_lmtp_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sk_lmtp_target_parse(target, p->host, sizeof p->host, p->port, sizeof p->port, &p->is_unix,
                             err, errlen) < 0) {
        free(p);
        return NULL;
    }
    snprintf(p->target, sizeof p->target, "%s", target);
    p->lhlo = strdup(lhlo && *lhlo ? lhlo : "localhost");
    if (!p->lhlo) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->max = max_conns ? max_conns : 10;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

static void lconn_close(lconn *k)
{
    if (!k)
        return;
    if (k->fd >= 0)
        close(k->fd);
    sk_client_core_free(k->core);
    free(k);
}

void sk_lmtp_pool_free(sk_lmtp_pool *p)
{
    if (!p)
        return;
    while (p->idle) {
        lconn *k = p->idle;
        p->idle = k->next;
        lconn_close(k);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->lhlo);
    free(p);
}

const char *sk_lmtp_pool_target(const sk_lmtp_pool *p)
{
    return p ? p->target : "";
}

void sk_lmtp_pool_stats(sk_lmtp_pool *p, unsigned long long *opened, unsigned *peak)
{
    pthread_mutex_lock(&p->mu);
    if (opened)
        *opened = p->opened;
    if (peak)
        *peak = p->peak;
    pthread_mutex_unlock(&p->mu);
}

/* ---- the socket ---------------------------------------------------------- */

/* The first failed system call's errno is the one reported. */
static void keep_errno(int *dst, int e)
{
    if (dst && !*dst)
        *dst = e;
}

static int wait_fd(int fd, short ev, long ms)
{
    struct pollfd pf = {.fd = fd, .events = ev};
    for (;;) {
        int r = poll(&pf, 1, ms < 0 ? 0 : (int)ms);
        if (r < 0 && errno == EINTR)
            continue;
        return r; /* 1 ready (or error/hang-up), 0 timeout, -1 error */
    }
}

static int connect_one(const sk_lmtp_pool *p, char *why, size_t wl, int *errnum)
{
    struct addrinfo *res = NULL, *ai,
                    hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (p->is_unix) {
        memcpy(sun.sun_path, p->port, strlen(p->port) + 1);
    } else {
        int g = getaddrinfo(p->host, p->port, &hints, &res);
        if (g != 0) {
            snprintf(why, wl, "LMTP server %s: %s", p->host, gai_strerror(g));
            return -1;
        }
    }
    int e = 0;
    struct addrinfo unix_ai = {.ai_family = AF_UNIX,
                               .ai_socktype = SOCK_STREAM,
                               .ai_addr = (struct sockaddr *)&sun,
                               .ai_addrlen = sizeof sun};
    for (ai = p->is_unix ? &unix_ai : res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
            if (wait_fd(fd, POLLOUT, SK_LMTP_CONNECT_MS) == 1) {
                socklen_t sl = sizeof e;
                e = 0;
                rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 && e == 0 ? 0 : -1;
            } else {
                e = ETIMEDOUT;
                rc = -1;
            }
        } else if (rc < 0) {
            e = errno;
        }
        if (rc == 0) {
            if (res)
                freeaddrinfo(res);
            return fd;
        }
        close(fd);
    }
    if (res)
        freeaddrinfo(res);
    keep_errno(errnum, e ? e : ECONNREFUSED);
    if (p->is_unix)
        snprintf(why, wl, "LMTP server unix:%s: %s", p->port, strerror(e ? e : ECONNREFUSED));
    else
        snprintf(why, wl, "LMTP server %s port %s: %s", p->host, p->port,
                 strerror(e ? e : ECONNREFUSED));
    return -1;
}

static int send_all(int fd, const char *d, size_t n, char *why, size_t wl, int *errnum)
{
    while (n > 0) {
        ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, SK_LMTP_REPLY_MS) != 1) {
                snprintf(why, wl, "LMTP server: sending timed out");
                keep_errno(errnum, ETIMEDOUT);
                return -1;
            }
            continue;
        }
        if (w <= 0) {
            int e = w < 0 ? errno : EPIPE;
            snprintf(why, wl, "LMTP server: %s", strerror(e));
            keep_errno(errnum, e);
            return -1;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- one connection's dialogue ------------------------------------------ */

typedef struct run {
    lconn *k;
    const sk_lmtp_msg *m;
    sk_lmtp_rcpt *r;
    size_t n;
    int done;   /* MESSAGE_DONE came */
    int failed; /* the connection failed */
    char *why;
    size_t wl;
    int *errnum; /* the failed system call's errno, or NULL */
} run;

static void keep_reply(sk_lmtp_rcpt *r, const sk_reply *rep, sk_cc_verdict v)
{
    r->verdict = v;
    r->code = rep ? rep->code : 0;
    r->enhanced[0] = r->text[0] = '\0';
    if (!rep)
        return;
    if (rep->has_enhanced)
        snprintf(r->enhanced, sizeof r->enhanced, "%d.%d.%d", rep->enhanced.cls,
                 rep->enhanced.subject, rep->enhanced.detail);
    snprintf(r->text, sizeof r->text, "%s", rep->nlines ? rep->lines[0] : "");
}

static int flush_out(run *x)
{
    sk_buf *o = sk_client_core_output(x->k->core);
    if (o->len == 0)
        return 0;
    int rc = send_all(x->k->fd, o->data, o->len, x->why, x->wl, x->errnum);
    sk_buf_consume(o, o->len);
    if (rc < 0)
        sk_client_core_lost(x->k->core, NULL);
    return rc;
}

/* The body, from the spool file, in chunks (the core makes each LF CRLF
 * and dot-stuffs). */
static int send_body(run *x)
{
    char *buf = malloc(BODY_CHUNK);
    if (!buf) {
        snprintf(x->why, x->wl, "out of memory");
        sk_client_core_lost(x->k->core, "out of memory");
        return -1;
    }
    unsigned long long off = x->m->off;
    int rc = 0;
    do {
        size_t want = x->m->size - off > BODY_CHUNK ? BODY_CHUNK : (size_t)(x->m->size - off);
        ssize_t got = want ? pread(x->m->fd, buf, want, (off_t)off) : 0;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 || (want && got == 0)) {
            keep_errno(x->errnum, got < 0 ? errno : EIO);
            snprintf(x->why, x->wl, "reading the spool file: %s",
                     got < 0 ? strerror(errno) : "short");
            sk_client_core_lost(x->k->core, "spool file unreadable");
            rc = -1;
            break;
        }
        off += (unsigned long long)got;
        if (sk_client_core_body(x->k->core, buf, (size_t)got, off == x->m->size) < 0 ||
            flush_out(x) < 0) {
            rc = -1;
            break;
        }
    } while (off < x->m->size);
    free(buf);
    return rc;
}

/* Act on the core's events. 1: the connection is ready again (READY after
 * the message, or the first READY when no message was submitted yet). */
static int events(run *x, int submitted)
{
    sk_cc_event ev;
    while (sk_client_core_next_event(x->k->core, &ev)) {
        switch (ev.type) {
        case SK_CC_EV_RCPT:
            /* a refusal at RCPT, or the reply after the data; a 250 to
             * RCPT is no delivery yet */
            if (ev.rcpt < x->n && !(ev.phase == SK_CC_PHASE_RCPT && ev.verdict == SK_CC_OK))
                keep_reply(&x->r[ev.rcpt], ev.reply, ev.verdict);
            break;
        case SK_CC_EV_SEND_BODY:
            send_body(x);
            break;
        case SK_CC_EV_MESSAGE_DONE:
            x->done = 1;
            if (ev.status == SK_CC_MSG_LOCAL || ev.status == SK_CC_MSG_ABORTED)
                snprintf(x->why, x->wl, "LMTP server: %s", ev.text ? ev.text : "no answer");
            break;
        case SK_CC_EV_READY:
            if (!submitted || x->done)
                return 1;
            break;
        case SK_CC_EV_FAILED:
            x->failed = 1;
            if (!x->why[0] || !x->done)
                snprintf(x->why, x->wl, "LMTP server: %s", ev.text ? ev.text : "failed");
            break;
        default:
            break;
        }
    }
    return 0;
}

/* Drive the connection until it is ready (1) or dead (-1). */
static int drive(run *x, int submitted)
{
    unsigned long seq = (unsigned long)-1;
    long long deadline = 0;
    char buf[4096];
    for (;;) {
        if (flush_out(x) < 0)
            x->failed = 1;
        if (events(x, submitted))
            return 1;
        if (sk_client_core_output(x->k->core)->len)
            continue;
        if (x->failed || (sk_client_core_wants(x->k->core) & SK_CC_WANT_CLOSE))
            return -1;
        sk_cc_wait w;
        sk_client_core_wait(x->k->core, &w);
        if (w.ms < 0) {
            snprintf(x->why, x->wl, "LMTP client: nothing to wait for");
            return -1;
        }
        if (w.seq != seq) { /* a new wait: its own limit (a reply must come whole) */
            seq = w.seq;
            deadline = now_ms() + w.ms;
        }
        long left = (long)(deadline - now_ms());
        int pr = left > 0 ? wait_fd(x->k->fd, POLLIN, left) : 0;
        if (pr == 0) {
            sk_client_core_timeout(x->k->core);
            continue;
        }
        ssize_t got = recv(x->k->fd, buf, sizeof buf, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0) {
            if (got < 0)
                keep_errno(x->errnum, errno);
            sk_client_core_lost(x->k->core, got < 0 ? strerror(errno) : NULL);
            continue;
        }
        sk_client_core_feed(x->k->core, buf, (size_t)got);
    }
}

/* ---- the pool ------------------------------------------------------------ */

/* A connection that is ready for a message (greeted, LHLO answered), or
 * NULL with why set. */
static lconn *acquire(sk_lmtp_pool *p, char *why, size_t wl, int *errnum)
{
    long long deadline = now_ms() + SK_LMTP_SLOT_MS;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->idle && p->busy >= p->max) {
            long long left = deadline - now_ms();
            if (left <= 0) {
                pthread_mutex_unlock(&p->mu);
                snprintf(why, wl, "all %u LMTP connections stayed busy", p->max);
                return NULL;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
        lconn *k = p->idle;
        if (k) {
            p->idle = k->next;
            p->nidle--;
        }
        p->busy++;
        if (p->busy + p->nidle > p->peak)
            p->peak = p->busy + p->nidle;
        if (!k)
            p->opened++;
        pthread_mutex_unlock(&p->mu);
        if (k) {
            /* idle: alive only if nothing arrived (a 421, EOF) and not stale */
            if (wait_fd(k->fd, POLLIN, 0) == 0 && time(NULL) - k->idle_since <= SK_LMTP_IDLE_MAX)
                return k;
            lconn_close(k);
            pthread_mutex_lock(&p->mu);
            p->busy--;
            continue;
        }
        /* a new connection */
        k = calloc(1, sizeof *k);
        sk_client_core_config cfg = {0};
        cfg.helo = p->lhlo;
        cfg.lmtp = 1;
        cfg.rset_between = 1;
        cfg.tls = SK_CC_TLS_OFF;
        cfg.timeouts = (sk_cc_timeouts){
            .greeting = SK_LMTP_REPLY_MS,
            .command = SK_LMTP_REPLY_MS,
            .mail = SK_LMTP_REPLY_MS,
            .rcpt = SK_LMTP_REPLY_MS,
            .data = SK_LMTP_REPLY_MS,
            .block = SK_LMTP_REPLY_MS,
            .data_end = SK_LMTP_DATA_END_MS,
        };
        if (k) {
            k->fd = -1;
            k->core = sk_client_core_new(&cfg);
        }
        if (!k || !k->core) {
            snprintf(why, wl, "out of memory");
        } else if ((k->fd = connect_one(p, why, wl, errnum)) >= 0) {
            run x = {.k = k, .why = why, .wl = wl, .errnum = errnum};
            why[0] = '\0';
            if (drive(&x, 0) == 1)
                return k;
            if (!why[0])
                snprintf(why, wl, "LMTP server: the greeting or LHLO failed");
        }
        lconn_close(k);
        pthread_mutex_lock(&p->mu);
        p->busy--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
}

static void release(sk_lmtp_pool *p, lconn *k, int reusable)
{
    if (!reusable) {
        lconn_close(k);
        k = NULL;
    }
    pthread_mutex_lock(&p->mu);
    p->busy--;
    if (k) {
        k->idle_since = time(NULL);
        k->next = p->idle;
        p->idle = k;
        p->nidle++;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int sk_lmtp_deliver(sk_lmtp_pool *p, const sk_lmtp_msg *m, sk_lmtp_rcpt *rcpts, size_t n, char *why,
                    size_t whylen, int *errnum)
{
    why[0] = '\0';
    if (errnum)
        *errnum = 0;
    for (size_t i = 0; i < n; i++) {
        rcpts[i].verdict = SK_CC_TEMP;
        rcpts[i].code = 0;
        rcpts[i].enhanced[0] = rcpts[i].text[0] = '\0';
    }
    if (!p || n == 0) {
        snprintf(why, whylen, "no LMTP server or no recipient");
        return -1;
    }
    lconn *k = acquire(p, why, whylen, errnum);
    if (!k)
        return -1;
    sk_cc_rcpt *cr = calloc(n, sizeof *cr);
    if (!cr) {
        release(p, k, 1);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        cr[i].addr = rcpts[i].addr;
    sk_cc_message msg = {0};
    msg.mail_from = m->sender ? m->sender : "";
    msg.rcpts = cr;
    msg.nrcpts = n;
    msg.size = m->wire;
    /* Final delivery into a mailbox: the parameters go when the server
     * offers them (Dovecot 2.3 has no SMTPUTF8); a server without them gets
     * the message as it is rather than a refusal that no retry can cure. */
    const sk_caps *caps = sk_client_core_caps(k->core);
    msg.body_8bit = m->body_8bit && caps->eightbitmime;
    msg.smtputf8 = m->smtputf8 && caps->smtputf8;
    run x = {.k = k, .m = m, .r = rcpts, .n = n, .why = why, .wl = whylen, .errnum = errnum};
    int ready = -1;
    if (sk_client_core_submit(k->core, &msg) == 0)
        ready = drive(&x, 1);
    else
        snprintf(why, whylen, "LMTP client: the connection was not ready");
    free(cr);
    int all = x.done;
    for (size_t i = 0; i < n && all; i++)
        if (rcpts[i].code == 0)
            all = 0;
    release(p, k, ready == 1);
    if (!all && !why[0])
        snprintf(why, whylen, "LMTP server: no answer for every recipient");
    return all ? 0 : -1;
}
