/*
 * milter.c - the client side of Sendmail's mail filter protocol (milter
 * version 6, as Sendmail's libmilter and Postfix's milter8 speak it), one
 * non-blocking libevent connection per configured milter per client
 * connection. See milter.h for the shape; the packets are
 * src/core/milter_codec.c's.
 *
 * Per client connection: every milter is connected when the client
 * connects and negotiates (OPTNEG: protocol 6, the actions smtpkit
 * carries out, the steps a filter may skip or leave unanswered); then
 * macros and CONNECT, HELO, MAIL, RCPT, and at the end of the message
 * DATA, each header, EOH, the body in chunks of at most 64 KiB, BODYEOB;
 * ABORT before the next MAIL when a message did not reach its end; QUIT
 * when the client leaves. One step asks the milters in turn; each
 * exchange waits for one reply per packet that has one, bounded by the
 * milter's timeout. Replies are checked (lengths, the step they may come
 * in, the actions negotiated); anything else, a timeout or a closed
 * connection makes that milter failed for the rest of the client
 * connection, logged once, and its default action applies: tempfail
 * (451 4.7.1 to MAIL, RCPT and the end of data; HELO and the greeting go
 * on) or accept (the milter is skipped).
 *
 * End of message: the header section (at most 256 KiB) and the body are
 * read back from the spool file (sk_store_msg_read); a milter's header
 * changes and body replacement are applied by writing the new message to
 * a second spool file that replaces the first (sk_store_msg_replace), so
 * the next milter and the commit see the changed message; a quarantine
 * adds an X-Smtpkit-Quarantine header field and an event=milter-quarantine
 * line, and the message is stored as usual.
 */
#include "server/milter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/milter_codec.h"
#include "server/conn.h"
#include "server/log.h"

#define HEADER_MAX (256 * 1024) /* the header section a milter is shown */
#define OUT_HIGH (256 * 1024)   /* unsent packets before we wait for the milter to read */
#define STEP_CONNECT 100        /* besides the session's SK_POLICY_* steps */

enum { MS_CONNECTING, MS_OPTNEG, MS_READY, MS_FAILED, MS_DONE };
/* the phases of one end-of-message exchange */
enum { P_DATA, P_HEADERS, P_EOH, P_BODY, P_EOB, P_END };

typedef struct mod {
    char type; /* SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER */
    uint32_t index;
    char *name, *value;
    struct mod *next;
} mod;

typedef struct mclient {
    sk_milters *owner;
    const sk_milter_config *cfg;
    struct bufferevent *bev;
    int state;
    uint32_t steps, actions;
    int in_msg;       /* MAIL sent, the message not ended: ABORT before the next */
    int msg_accepted; /* ACCEPT for this message: not asked again until the next MAIL */
    int tempfail;     /* default action */
    unsigned timeout;
} mclient;

struct sk_milters {
    sk_conn *c;
    mclient *v;
    size_t n;
    struct event *done_ev;
    sk_buf out; /* one packet being built */

    /* the step in progress */
    int step; /* 0: none */
    size_t cur;
    int phase;
    int waiting;       /* for a reply */
    int waiting_write; /* for the milter to read what we sent */
    const char *why;   /* why exchange() failed */
    int finished;      /* verdict ready, done_ev active */
    char *arg;
    char auth_user[256];
    sk_policy_verdict verdict;
    char vtext[512], venh[16];
    int msg_discard; /* a DISCARD before the end of the message */

    /* the end of message, for the milter being asked */
    char *hdr; /* the header section, with its blank line if any */
    size_t hdrlen, hdrpos;
    size_t rplen; /* our Return-Path field at its top: never shown, kept first */
    unsigned long long body_off, body_pos, size; /* in the spool file */
    int body_cr;                                 /* the body read so far ended with CR */
    int skip_body;
    mod *mods, **mods_tail;
    sk_buf repl;
    int has_repl;
    char quarantine[256];
};

static void run(sk_milters *m);

/* ---- the socket ---------------------------------------------------------- */

int sk_milter_parse_socket(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *why,
                           size_t whylen)
{
    memset(ss, 0, sizeof *ss);
    const char *p;
    if (!strncmp(spec, "unix:", 5) || !strncmp(spec, "local:", 6)) {
        p = strchr(spec, ':') + 1;
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        if (p[0] != '/' || strlen(p) >= sizeof su->sun_path) {
            snprintf(why, whylen, "a unix socket needs an absolute path under %zu octets",
                     sizeof su->sun_path);
            return -1;
        }
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, p, strlen(p) + 1);
        *len = (socklen_t)sizeof *su;
        return 0;
    }
    int v6 = !strncmp(spec, "inet6:", 6);
    if (!v6 && strncmp(spec, "inet:", 5)) {
        snprintf(why, whylen, "use inet:HOST:PORT, inet:PORT@HOST, inet6:... or unix:/path");
        return -1;
    }
    p = spec + (v6 ? 6 : 5);
    char host[80], port[16];
    const char *at = strchr(p, '@');
    if (at) { /* Sendmail's PORT@HOST */
        if ((size_t)(at - p) >= sizeof port || strlen(at + 1) >= sizeof host)
            goto bad;
        memcpy(port, p, (size_t)(at - p));
        port[at - p] = '\0';
        snprintf(host, sizeof host, "%s", at + 1);
    } else { /* Postfix's HOST:PORT, [v6]:PORT */
        const char *colon = strrchr(p, ':');
        if (!colon || (size_t)(colon - p) >= sizeof host || strlen(colon + 1) >= sizeof port)
            goto bad;
        memcpy(host, p, (size_t)(colon - p));
        host[colon - p] = '\0';
        snprintf(port, sizeof port, "%s", colon + 1);
    }
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end = NULL;
    unsigned long pn = strtoul(port, &end, 10);
    if (!port[0] || *end || pn == 0 || pn > 65535)
        goto bad;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)pn);
        *len = (socklen_t)sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)pn);
        *len = (socklen_t)sizeof *s6;
        return 0;
    }
bad:
    snprintf(why, whylen, "expected a numeric address and a port 1-65535");
    return -1;
}

/* ---- helpers ------------------------------------------------------------- */

static void mods_clear(sk_milters *m)
{
    for (mod *d = m->mods, *nx; d; d = nx) {
        nx = d->next;
        free(d->name);
        free(d->value);
        free(d);
    }
    m->mods = NULL;
    m->mods_tail = &m->mods;
    sk_buf_clear(&m->repl);
    m->has_repl = 0;
    m->quarantine[0] = '\0';
}

static const char *step_name(int step)
{
    switch (step) {
    case STEP_CONNECT:
        return "connect";
    case SK_POLICY_HELO:
        return "helo";
    case SK_POLICY_MAIL:
        return "mail";
    case SK_POLICY_RCPT:
        return "rcpt";
    case SK_POLICY_DATA:
        return "data";
    default:
        return "-";
    }
}

/* A milter's text for a quoted log value: controls, '"' and '\\' become '?'. */
static const char *quoted_clean(const char *src, char *dst, size_t n)
{
    size_t k = 0;
    for (; *src && k + 1 < n; src++) {
        unsigned char ch = (unsigned char)*src;
        dst[k++] = (ch < 32 || ch >= 127 || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    dst[k] = '\0';
    return dst;
}

static void finish(sk_milters *m, sk_policy_action a)
{
    if (m->finished)
        return;
    m->verdict.action = a;
    m->finished = 1;
    m->waiting = m->waiting_write = 0;
    event_active(m->done_ev, EV_TIMEOUT, 1); /* never from inside the caller */
}

static void close_client(mclient *mc, int say_quit)
{
    if (!mc->bev)
        return;
    if (say_quit && mc->state != MS_CONNECTING &&
        evbuffer_get_length(bufferevent_get_output(mc->bev)) == 0) {
        /* QUIT straight to the socket: the bufferevent goes now */
        static const char quit[5] = {0, 0, 0, 1, SMFIC_QUIT};
        evutil_socket_t fd = bufferevent_getfd(mc->bev);
        if (fd >= 0)
            (void)send(fd, quit, sizeof quit, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    bufferevent_free(mc->bev);
    mc->bev = NULL;
}

/* This milter is out for the rest of the connection: log, default action. */
static void milter_failed(sk_milters *m, mclient *mc, const char *why)
{
    sk_conn *c = m->c;
    char w[160];
    sk_log(LOG_WARNING,
           "event=milter-error conn=%llu peer=%s milter=%s step=%s error=\"%s\" default=%s", c->id,
           c->addr, mc->cfg->socket, step_name(m->step), quoted_clean(why, w, sizeof w),
           mc->tempfail ? "tempfail" : "accept");
    close_client(mc, 0);
    mc->state = MS_FAILED;
    if (m->step && m->cur < m->n && &m->v[m->cur] == mc) {
        m->waiting = m->waiting_write = 0;
        mods_clear(m);
        run(m); /* the default action applies to this step */
    }
}

static int send_packet(sk_milters *m, mclient *mc)
{
    int rc = bufferevent_write(mc->bev, m->out.data, m->out.len);
    sk_buf_clear(&m->out);
    return rc;
}

static void expect_reply(sk_milters *m, mclient *mc)
{
    m->waiting = 1;
    bufferevent_enable(mc->bev, EV_READ);
}

/* Macros for the command `cmd` (names and values, n pairs). */
static int send_macros(sk_milters *m, mclient *mc, char cmd, const char *const *names,
                       const char *const *values, size_t n)
{
    if (sk_milter_enc_macros(&m->out, cmd, names, values, n) != 0)
        return -1;
    return send_packet(m, mc);
}

/* ---- connect and negotiate ------------------------------------------------ */

static void mc_read(struct bufferevent *bev, void *arg);
static void mc_write(struct bufferevent *bev, void *arg);
static void mc_event(struct bufferevent *bev, short what, void *arg);

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_milters *m = arg;
    int step = m->step;
    m->step = 0;
    m->finished = 0;
    free(m->arg);
    m->arg = NULL;
    free(m->hdr);
    m->hdr = NULL;
    mods_clear(m);
    sk_policy_verdict v = m->verdict;
    if (step == SK_POLICY_DATA)
        m->msg_discard = 0; /* the message has ended */
    if (step == STEP_CONNECT)
        sk_conn_milter_connected(m->c, &v);
    else
        sk_conn_policy_done(m->c, &v);
}

sk_milters *sk_milters_new(sk_conn *c)
{
    const sk_listener_config *lc = c->lst->cfg;
    const sk_config *cfg = c->srv->cfg;
    if (!lc->nmilters)
        return NULL;
    sk_milters *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->v = calloc(lc->nmilters, sizeof *m->v);
    m->done_ev = event_new(c->srv->base, -1, 0, done_cb, m);
    if (!m->v || !m->done_ev) {
        if (m->done_ev)
            event_free(m->done_ev);
        free(m->v);
        free(m);
        return NULL;
    }
    m->c = c;
    m->n = lc->nmilters;
    m->mods_tail = &m->mods;
    sk_buf_init(&m->out, SK_MILTER_MAX_PACKET + 16);
    sk_buf_init(&m->repl, cfg->max_message_size + 4096);
    for (size_t i = 0; i < m->n; i++) {
        mclient *mc = &m->v[i];
        mc->owner = m;
        mc->cfg = &lc->milters[i];
        mc->tempfail = mc->cfg->default_tempfail >= 0 ? mc->cfg->default_tempfail
                                                      : cfg->milter_default_tempfail;
        mc->timeout = mc->cfg->timeout ? mc->cfg->timeout : cfg->milter_timeout;
        mc->state = MS_CONNECTING;
        struct sockaddr_storage ss;
        socklen_t sl = 0;
        char why[160];
        if (sk_milter_parse_socket(mc->cfg->socket, &ss, &sl, why, sizeof why) != 0) {
            milter_failed(m, mc, why);
            continue;
        }
        mc->bev = bufferevent_socket_new(c->srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!mc->bev) {
            milter_failed(m, mc, "out of memory");
            continue;
        }
        bufferevent_setcb(mc->bev, mc_read, mc_write, mc_event, mc);
        struct timeval tv = {.tv_sec = mc->timeout};
        bufferevent_set_timeouts(mc->bev, &tv, &tv);
        bufferevent_setwatermark(mc->bev, EV_READ, 0, SK_MILTER_MAX_PACKET + 8);
        if (bufferevent_socket_connect(mc->bev, (struct sockaddr *)&ss, (int)sl) != 0) {
            milter_failed(m, mc, strerror(errno));
            continue;
        }
    }
    return m;
}

void sk_milters_free(sk_milters *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        close_client(&m->v[i], 1);
    event_free(m->done_ev);
    mods_clear(m);
    sk_buf_free(&m->out);
    sk_buf_free(&m->repl);
    free(m->arg);
    free(m->hdr);
    free(m->v);
    free(m);
}

/* ---- the steps ------------------------------------------------------------ */

/* May this milter's exchange of the current step be skipped? */
static int skip_milter(const sk_milters *m, const mclient *mc)
{
    if (mc->state == MS_DONE)
        return 1;
    if (mc->msg_accepted && (m->step == SK_POLICY_RCPT || m->step == SK_POLICY_DATA))
        return 1;
    uint32_t s = mc->steps;
    switch (m->step) {
    case STEP_CONNECT:
        return (s & SMFIP_NOCONNECT) != 0;
    case SK_POLICY_HELO:
        return (s & SMFIP_NOHELO) != 0 && !mc->in_msg;
    case SK_POLICY_RCPT:
        return (s & SMFIP_NORCPT) != 0;
    default:
        return 0;
    }
}

/* Append p[0..n) to b with every bare LF made CRLF; *cr says whether the
 * octet before p was a CR (the spool may hold CRLF or, as a Maildir file,
 * LF line ends: milters and the store's append both take CRLF). */
static int append_crlf(sk_buf *b, const char *p, size_t n, int *cr)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && !(i > 0 ? p[i - 1] == '\r' : *cr)) {
            if (sk_buf_append(b, p + start, i - start) != 0 || sk_buf_append(b, "\r\n", 2) != 0)
                return -1;
            start = i + 1;
        }
    }
    if (n)
        *cr = p[n - 1] == '\r';
    return sk_buf_append(b, p + start, n - start);
}

/* Read the header section of the spooled message (for the milter about to
 * be asked: an earlier one may have changed it) into m->hdr with CRLF line
 * ends, and where the body starts in the file. 0 or -1. */
static int load_header(sk_milters *m)
{
    free(m->hdr);
    m->hdr = NULL;
    m->hdrlen = m->hdrpos = 0;
    sk_store_msg *msg = m->c->msg;
    if (!msg)
        return -1;
    m->size = sk_store_msg_size(msg);
    size_t cap = m->size < HEADER_MAX ? (size_t)m->size : HEADER_MAX;
    char *raw = malloc(cap + 1);
    if (!raw)
        return -1;
    long r = cap ? sk_store_msg_read(msg, 0, raw, cap) : 0;
    if (r < 0 || (size_t)r != cap) {
        free(raw);
        return -1;
    }
    /* the header section ends at the first empty line (or the message's end) */
    size_t end = cap, body = cap, pos = 0;
    int found = 0;
    while (pos < cap) {
        const char *nl = memchr(raw + pos, '\n', cap - pos);
        size_t len = nl ? (size_t)(nl - (raw + pos)) : cap - pos;
        if (len == 0 || (len == 1 && raw[pos] == '\r')) {
            end = pos;
            body = nl ? (size_t)(nl - raw) + 1 : cap;
            found = 1;
            break;
        }
        if (!nl)
            break;
        pos += len + 1;
    }
    if (!found && m->size > HEADER_MAX) {
        free(raw);
        return -1; /* a header section larger than we show a milter */
    }
    sk_buf h;
    sk_buf_init(&h, 2 * HEADER_MAX + 8);
    int cr = 0;
    if (append_crlf(&h, raw, end, &cr) != 0 || sk_buf_append(&h, "", 1) != 0) {
        sk_buf_free(&h);
        free(raw);
        return -1;
    }
    free(raw);
    m->hdr = h.data; /* sk_buf's storage is malloc'ed: freed with free() */
    m->hdrlen = h.len - 1;
    /* The Return-Path field the session writes belongs to the delivery
     * (RFC 5321 4.4); Postfix adds it only then, so a milter never sees
     * it and "index 0" means the first field after it. */
    m->rplen = 0;
    if (m->hdrlen > 12 && !strncasecmp(m->hdr, "Return-Path:", 12)) {
        char *nl = memmem(m->hdr, m->hdrlen, "\r\n", 2);
        if (nl)
            m->rplen = (size_t)(nl - m->hdr) + 2;
    }
    m->hdrpos = m->rplen;
    m->body_off = body; /* past the blank line, in the file */
    m->body_pos = m->body_off;
    m->body_cr = 0;
    return 0;
}

/* The next header field of m->hdr as name and value (unfolded lines kept
 * as "\n" line breaks, the leading space dropped, as Sendmail passes
 * them). 1, or 0 at the end. */
static int next_header(sk_milters *m, char **name, char **value)
{
    while (m->hdrpos < m->hdrlen) {
        const char *p = m->hdr + m->hdrpos;
        size_t left = m->hdrlen - m->hdrpos;
        /* the field: up to a CRLF not followed by SP or HT */
        size_t len = 0;
        for (;;) {
            const char *nl = memmem(p + len, left - len, "\r\n", 2);
            if (!nl) {
                len = left;
                break;
            }
            len = (size_t)(nl - p) + 2;
            if (len >= left || (p[len] != ' ' && p[len] != '\t'))
                break;
        }
        m->hdrpos += len;
        const char *colon = memchr(p, ':', len);
        if (!colon || colon == p)
            continue; /* not a field (cannot happen after our own Received) */
        *name = strndup(p, (size_t)(colon - p));
        const char *v = colon + 1;
        size_t vl = len - (size_t)(v - p);
        if (vl >= 2 && v[vl - 2] == '\r')
            vl -= 2;
        if (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        char *val = malloc(vl + 1);
        if (!*name || !val) {
            free(*name);
            free(val);
            return -1;
        }
        size_t k = 0;
        for (size_t i = 0; i < vl; i++)
            if (!(v[i] == '\r' && i + 1 < vl && v[i + 1] == '\n'))
                val[k++] = v[i];
        val[k] = '\0';
        *value = val;
        return 1;
    }
    return 0;
}

/* Send the next packet(s) of this milter's exchange. 1: a packet that
 * awaits a reply was sent (or we wait for the output to drain); 0: the
 * exchange is over; -1: failure. */
static int exchange(sk_milters *m, mclient *mc)
{
    sk_conn *c = m->c;
    const sk_config *cfg = c->srv->cfg;
    uint32_t s = mc->steps;
    if (evbuffer_get_length(bufferevent_get_output(mc->bev)) > OUT_HIGH) {
        m->waiting_write = 1;
        return 1;
    }
    switch (m->step) {
    case STEP_CONNECT: {
        if (m->phase++ > 0)
            return 0;
        const char *names[] = {"j", "{daemon_name}", "{client_addr}", "_"};
        char underscore[300];
        snprintf(underscore, sizeof underscore, "[%s]", c->addr);
        const char *values[] = {cfg->server_name, "smtpkit", c->addr, underscore};
        int fam = strchr(c->addr, ':') ? '6' : '4';
        if (send_macros(m, mc, SMFIC_CONNECT, names, values, 4) != 0 ||
            sk_milter_enc_connect(&m->out, underscore, (char)fam, c->port, c->addr) != 0 ||
            send_packet(m, mc) != 0)
            return -1;
        if (s & SMFIP_NR_CONN)
            return 0;
        expect_reply(m, mc);
        return 1;
    }
    case SK_POLICY_HELO:
        if (m->phase++ > 0)
            return 0;
        if (mc->in_msg) {
            if (sk_milter_enc_packet(&m->out, SMFIC_ABORT, NULL, 0) != 0 || send_packet(m, mc))
                return -1;
            mc->in_msg = 0;
        }
        if (s & SMFIP_NOHELO)
            return 0;
        if (sk_milter_enc_helo(&m->out, m->arg ? m->arg : "") != 0 || send_packet(m, mc) != 0)
            return -1;
        if (s & SMFIP_NR_HELO)
            return 0;
        expect_reply(m, mc);
        return 1;
    case SK_POLICY_MAIL:
    case SK_POLICY_RCPT: {
        if (m->phase++ > 0)
            return 0;
        int mail = m->step == SK_POLICY_MAIL;
        if (mail) {
            if (mc->in_msg &&
                (sk_milter_enc_packet(&m->out, SMFIC_ABORT, NULL, 0) != 0 || send_packet(m, mc)))
                return -1;
            mc->in_msg = 1;
            mc->msg_accepted = 0;
        }
        if (s & (mail ? SMFIP_NOMAIL : SMFIP_NORCPT))
            return 0;
        char path[600];
        snprintf(path, sizeof path, "<%s>", m->arg ? m->arg : "");
        const char *args[] = {path};
        if (mail) {
            const char *names[] = {"{mail_addr}", "{auth_type}", "{auth_authen}"};
            const char *values[] = {m->arg ? m->arg : "", "PLAIN", m->auth_user};
            if (send_macros(m, mc, SMFIC_MAIL, names, values, m->auth_user[0] ? 3 : 1) != 0)
                return -1;
        } else {
            const char *names[] = {"{rcpt_addr}"};
            const char *values[] = {m->arg ? m->arg : ""};
            if (send_macros(m, mc, SMFIC_RCPT, names, values, 1) != 0)
                return -1;
        }
        if (sk_milter_enc_args(&m->out, mail ? SMFIC_MAIL : SMFIC_RCPT, args, 1) != 0 ||
            send_packet(m, mc) != 0)
            return -1;
        if (s & (mail ? SMFIP_NR_MAIL : SMFIP_NR_RCPT))
            return 0;
        expect_reply(m, mc);
        return 1;
    }
    case SK_POLICY_DATA:
        for (;;) {
            switch (m->phase) {
            case P_DATA: {
                m->phase = P_HEADERS;
                if (load_header(m) != 0) {
                    m->why = "header section unreadable or over 256 KiB";
                    return -1;
                }
                m->skip_body = 0;
                const char *names[] = {"i"};
                const char *values[] = {c->msg_id};
                if (send_macros(m, mc, SMFIC_DATA, names, values, 1) != 0)
                    return -1;
                if (s & SMFIP_NODATA)
                    continue;
                if (sk_milter_enc_packet(&m->out, SMFIC_DATA, NULL, 0) != 0 ||
                    send_packet(m, mc) != 0)
                    return -1;
                if (s & SMFIP_NR_DATA)
                    continue;
                expect_reply(m, mc);
                return 1;
            }
            case P_HEADERS: {
                char *name = NULL, *value = NULL;
                int r = (s & SMFIP_NOHDRS) ? 0 : next_header(m, &name, &value);
                if (r < 0)
                    return -1;
                if (r == 0) {
                    m->phase = P_EOH;
                    continue;
                }
                int e = sk_milter_enc_header(&m->out, name, value);
                free(name);
                free(value);
                if (e != 0 || send_packet(m, mc) != 0)
                    return -1;
                if (s & SMFIP_NR_HDR)
                    return exchange(m, mc); /* no reply: on to the next (bounded by OUT_HIGH) */
                expect_reply(m, mc);
                return 1;
            }
            case P_EOH:
                m->phase = P_BODY;
                if (s & SMFIP_NOEOH)
                    continue;
                if (sk_milter_enc_packet(&m->out, SMFIC_EOH, NULL, 0) != 0 ||
                    send_packet(m, mc) != 0)
                    return -1;
                if (s & SMFIP_NR_EOH)
                    continue;
                expect_reply(m, mc);
                return 1;
            case P_BODY: {
                if ((s & SMFIP_NOBODY) || m->skip_body || m->body_pos >= m->size) {
                    m->phase = P_EOB;
                    continue;
                }
                /* half a chunk from the file: with its LFs made CRLF it
                 * still fits one packet */
                char chunk[SK_MILTER_CHUNK / 2];
                unsigned long long left = m->size - m->body_pos;
                size_t k = left < sizeof chunk ? (size_t)left : sizeof chunk;
                long r = sk_store_msg_read(c->msg, m->body_pos, chunk, k);
                if (r <= 0) {
                    m->why = "cannot read the spooled message";
                    return -1;
                }
                m->body_pos += (unsigned long long)r;
                sk_buf crlf;
                sk_buf_init(&crlf, SK_MILTER_CHUNK);
                int e = append_crlf(&crlf, chunk, (size_t)r, &m->body_cr) != 0 ||
                        sk_milter_enc_packet(&m->out, SMFIC_BODY, crlf.data, crlf.len) != 0;
                sk_buf_free(&crlf);
                if (e || send_packet(m, mc) != 0)
                    return -1;
                if (s & SMFIP_NR_BODY)
                    return exchange(m, mc);
                expect_reply(m, mc);
                return 1;
            }
            case P_EOB: {
                m->phase = P_END;
                const char *names[] = {"i"};
                const char *values[] = {c->msg_id};
                if (send_macros(m, mc, SMFIC_BODYEOB, names, values, 1) != 0 ||
                    sk_milter_enc_packet(&m->out, SMFIC_BODYEOB, NULL, 0) != 0 ||
                    send_packet(m, mc) != 0)
                    return -1;
                expect_reply(m, mc);
                return 1;
            }
            default:
                return 0;
            }
        }
    default:
        return 0;
    }
}

/* ---- applying a milter's changes to the spooled message ------------------- */

typedef struct hfield {
    char *text; /* "Name: value\r\n" with its folding */
    size_t len;
} hfield;

/* "Name: value" from a milter: its "\n" (or "\r\n") line breaks become
 * CRLF, and a continuation line that does not start with white space gets
 * one (so no value can add a field of its own or end the header). */
static char *field_text(const char *name, const char *value, size_t *len)
{
    sk_buf b;
    sk_buf_init(&b, strlen(name) + 3 * strlen(value) + 8);
    sk_buf_printf(&b, "%s: ", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\r')
            continue;
        if (*p == '\n') {
            sk_buf_append(&b, "\r\n", 2);
            if (p[1] != ' ' && p[1] != '\t')
                sk_buf_append(&b, "\t", 1);
            continue;
        }
        sk_buf_append(&b, p, 1);
    }
    if (sk_buf_append(&b, "\r\n", 2) != 0) {
        sk_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data; /* sk_buf's storage is malloc'ed: the caller frees it */
}

static int field_is(const hfield *f, const char *name)
{
    size_t n = strlen(name);
    return f->len > n && f->text[n] == ':' && !strncasecmp(f->text, name, n);
}

/* Write the changed message into a new spool file that replaces the old
 * one. Logs what changed. 0 or -1. */
static int apply_changes(sk_milters *m, mclient *mc)
{
    if (!m->mods && !m->has_repl && !m->quarantine[0])
        return 0;
    sk_conn *c = m->c;
    if (load_header(m) != 0)
        return -1;
    /* the fields as they are */
    size_t nf = 0, capf = 16;
    hfield *f = malloc(capf * sizeof *f);
    int rc = -1;
    unsigned added = 0, changed = 0, deleted = 0;
    if (!f)
        return -1;
    size_t pos = m->rplen;
    while (pos < m->hdrlen) {
        size_t len = 0, left = m->hdrlen - pos;
        const char *p = m->hdr + pos;
        for (;;) {
            const char *nl = memmem(p + len, left - len, "\r\n", 2);
            len = nl ? (size_t)(nl - p) + 2 : left;
            if (!nl || len >= left || (p[len] != ' ' && p[len] != '\t'))
                break;
        }
        if (nf == capf) {
            hfield *g = realloc(f, (capf *= 2) * sizeof *f);
            if (!g)
                goto out;
            f = g;
        }
        f[nf].text = strndup(p, len);
        f[nf].len = len;
        if (!f[nf].text)
            goto out;
        nf++;
        pos += len;
    }
    if (m->quarantine[0]) {
        mod *q = calloc(1, sizeof *q);
        if (!q)
            goto out;
        q->type = SMFIR_ADDHEADER;
        q->name = strdup("X-Smtpkit-Quarantine");
        q->value = strdup(m->quarantine);
        *m->mods_tail = q;
        m->mods_tail = &q->next;
        if (!q->name || !q->value)
            goto out;
    }
    for (mod *d = m->mods; d; d = d->next) {
        size_t at = nf;
        if (d->type == SMFIR_CHGHEADER) {
            uint32_t want = d->index ? d->index : 1, seen = 0;
            for (size_t i = 0; i < nf; i++)
                if (field_is(&f[i], d->name) && ++seen == want) {
                    at = i;
                    break;
                }
            if (at < nf && !d->value[0]) { /* an empty value deletes the field */
                free(f[at].text);
                memmove(f + at, f + at + 1, (nf - at - 1) * sizeof *f);
                nf--;
                deleted++;
                continue;
            }
            if (at < nf) {
                size_t len;
                char *t = field_text(d->name, d->value, &len);
                if (!t)
                    goto out;
                free(f[at].text);
                f[at].text = t;
                f[at].len = len;
                changed++;
                continue;
            }
            if (!d->value[0])
                continue; /* deleting a field that is not there */
            at = nf;      /* Sendmail adds a field that is not there */
        } else if (d->type == SMFIR_INSHEADER) {
            at = d->index < nf ? d->index : nf;
        }
        if (nf == capf) {
            hfield *g = realloc(f, (capf *= 2) * sizeof *f);
            if (!g)
                goto out;
            f = g;
        }
        size_t len;
        char *t = field_text(d->name, d->value, &len);
        if (!t)
            goto out;
        memmove(f + at + 1, f + at, (nf - at) * sizeof *f);
        f[at].text = t;
        f[at].len = len;
        nf++;
        added++;
    }
    /* the new message: fields, the blank line, the body (kept or replaced) */
    char id[32];
    sk_store_result res = SK_STORE_IOERR;
    sk_store_msg *nm = sk_store_begin(c->srv->store, id, &res);
    if (!nm)
        goto out;
    sk_store_append(nm, m->hdr, m->rplen);
    for (size_t i = 0; i < nf; i++)
        sk_store_append(nm, f[i].text, f[i].len);
    sk_store_append(nm, "\r\n", 2);
    if (m->has_repl) {
        /* a replacement body's bare LFs become CRLF, as everything we store */
        const char *p = m->repl.data ? m->repl.data : "";
        size_t n = m->repl.len, start = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
                sk_store_append(nm, p + start, i - start);
                sk_store_append(nm, "\r\n", 2);
                start = i + 1;
            }
        }
        sk_store_append(nm, p + start, n - start);
    } else {
        char buf[32768];
        sk_buf crlf;
        sk_buf_init(&crlf, 2 * sizeof buf);
        unsigned long long off = m->body_off;
        int cr = 0;
        while (off < m->size) {
            unsigned long long left = m->size - off;
            long r =
                sk_store_msg_read(c->msg, off, buf, left < sizeof buf ? (size_t)left : sizeof buf);
            sk_buf_clear(&crlf);
            if (r <= 0 || append_crlf(&crlf, buf, (size_t)r, &cr) != 0) {
                sk_buf_free(&crlf);
                sk_store_abort(nm);
                goto out;
            }
            sk_store_append(nm, crlf.data, crlf.len);
            off += (unsigned long long)r;
        }
        sk_buf_free(&crlf);
    }
    if (sk_store_msg_replace(c->msg, nm) != SK_STORE_OK)
        goto out;
    if (m->quarantine[0]) {
        char q[300];
        sk_log(LOG_NOTICE,
               "event=milter-quarantine conn=%llu peer=%s id=%s milter=%s reason=\"%s\"", c->id,
               c->addr, c->msg_id, mc->cfg->socket, quoted_clean(m->quarantine, q, sizeof q));
    }
    sk_log(LOG_INFO,
           "event=milter-changes conn=%llu peer=%s id=%s milter=%s added=%u changed=%u "
           "deleted=%u body=%s",
           c->id, c->addr, c->msg_id, mc->cfg->socket, added, changed, deleted,
           m->has_repl ? "replaced" : "kept");
    rc = 0;
out:
    for (size_t i = 0; i < nf; i++)
        free(f[i].text);
    free(f);
    mods_clear(m);
    return rc;
}

/* ---- the driver ------------------------------------------------------------ */

/* This milter's exchange is over (continue or accept): on to the next. */
static void next_milter(sk_milters *m)
{
    mclient *mc = &m->v[m->cur];
    if (m->step == SK_POLICY_DATA) {
        mc->in_msg = 0;
        if (apply_changes(m, mc) != 0) {
            sk_log(LOG_ERR,
                   "event=milter-error conn=%llu peer=%s milter=%s step=data "
                   "error=\"cannot rewrite the spooled message\"",
                   m->c->id, m->c->addr, mc->cfg->socket);
            finish(m, SK_POLICY_TEMPFAIL);
            return;
        }
    }
    m->cur++;
    m->phase = 0;
}

static void run(sk_milters *m)
{
    while (m->step && !m->finished && !m->waiting && !m->waiting_write) {
        if (m->cur >= m->n) {
            finish(m, m->step == SK_POLICY_DATA && m->msg_discard ? SK_POLICY_DISCARD
                                                                  : SK_POLICY_CONTINUE);
            return;
        }
        mclient *mc = &m->v[m->cur];
        if (mc->state == MS_CONNECTING || mc->state == MS_OPTNEG)
            return; /* its negotiation brings us back */
        if (mc->state == MS_FAILED) {
            if (mc->tempfail && m->step != STEP_CONNECT && m->step != SK_POLICY_HELO) {
                finish(m, SK_POLICY_TEMPFAIL);
                return;
            }
            m->cur++;
            m->phase = 0;
            continue;
        }
        if (m->phase == 0 && skip_milter(m, mc)) {
            m->cur++;
            continue;
        }
        m->why = NULL;
        int r = exchange(m, mc);
        if (r < 0) {
            milter_failed(m, mc, m->why ? m->why : "cannot send");
            return;
        }
        if (r == 0)
            next_milter(m);
    }
}

/* Start a step: 1 if a verdict will come. */
static int start(sk_milters *m, int step, const char *arg)
{
    if (m->step)
        return 0; /* one step at a time; cannot happen */
    m->step = step;
    m->cur = 0;
    m->phase = 0;
    m->waiting = m->waiting_write = m->finished = 0;
    m->verdict = (sk_policy_verdict){.action = SK_POLICY_CONTINUE, .why = "milter"};
    free(m->arg);
    m->arg = arg ? strdup(arg) : NULL;
    mods_clear(m);
    if (step == SK_POLICY_DATA && m->msg_discard) {
        /* discarded before its end: nobody need read it (the milters that
         * saw its MAIL get ABORT before the next one) */
        finish(m, SK_POLICY_DISCARD);
        return 1;
    }
    run(m);
    return 1;
}

void sk_milters_connect(sk_milters *m)
{
    start(m, STEP_CONNECT, NULL);
}

int sk_milters_step(sk_milters *m, int step, const sk_session_info *info, const char *arg)
{
    if (!m)
        return 0;
    snprintf(m->auth_user, sizeof m->auth_user, "%s",
             info && info->auth_user ? info->auth_user : "");
    if (step == SK_POLICY_MAIL)
        m->msg_discard = 0;
    /* nothing to ask: every milter failed with accept, or is done */
    int any = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].state != MS_DONE && !(m->v[i].state == MS_FAILED && !m->v[i].tempfail))
            any = 1;
    if (!any && !(step == SK_POLICY_DATA && m->msg_discard))
        return 0;
    return start(m, step, arg);
}

/* ---- replies ---------------------------------------------------------------- */

static void refusal(sk_milters *m, const sk_milter_reply *r)
{
    m->verdict.code = 0;
    m->verdict.enhanced = NULL;
    m->verdict.text = NULL;
    if (r->cmd == SMFIR_REPLYCODE) {
        int code;
        if (sk_milter_parse_replycode(r->text, &code, m->venh, m->vtext, sizeof m->vtext) == 0) {
            m->verdict.code = code;
            m->verdict.enhanced = m->venh[0] ? m->venh : NULL;
            m->verdict.text = m->vtext;
        }
        finish(m, r->text[0] == '4' ? SK_POLICY_TEMPFAIL : SK_POLICY_REJECT);
        return;
    }
    finish(m, r->cmd == SMFIR_TEMPFAIL ? SK_POLICY_TEMPFAIL : SK_POLICY_REJECT);
}

/* One reply from mc. 0, or -1 with *why (the milter has failed). */
static int handle_reply(sk_milters *m, mclient *mc, const sk_milter_reply *r, const char **why)
{
    if (mc->state == MS_OPTNEG) {
        if (r->cmd != SMFIC_OPTNEG || r->version < 2 || r->version > SK_MILTER_VERSION) {
            *why = "bad option negotiation";
            return -1;
        }
        mc->actions = r->actions & SK_MILTER_ACTIONS;
        mc->steps = r->steps & SK_MILTER_STEPS;
        mc->state = MS_READY;
        bufferevent_disable(mc->bev, EV_READ);
        run(m);
        return 0;
    }
    int is_eob = m->step == SK_POLICY_DATA && m->phase == P_END;
    if (!m->waiting || m->cur >= m->n || &m->v[m->cur] != mc) {
        *why = "reply without a question";
        return -1;
    }
    switch (r->cmd) {
    case SMFIR_PROGRESS:
        return 0; /* still working: the timeout restarts */
    case SMFIR_CONTINUE:
        break;
    case SMFIR_SKIP:
        if (m->step == SK_POLICY_DATA && m->phase == P_BODY)
            m->skip_body = 1;
        break;
    case SMFIR_ACCEPT:
        if (m->step == STEP_CONNECT || m->step == SK_POLICY_HELO)
            mc->state = MS_DONE; /* nothing more for this connection */
        else
            mc->msg_accepted = 1;
        if (m->step != SK_POLICY_DATA)
            m->phase = 99; /* the exchange is over */
        else
            m->phase = P_END;
        break;
    case SMFIR_REJECT:
    case SMFIR_TEMPFAIL:
    case SMFIR_REPLYCODE:
        if (m->step == SK_POLICY_DATA)
            mc->in_msg = 0;
        m->waiting = 0;
        bufferevent_disable(mc->bev, EV_READ);
        mods_clear(m);
        refusal(m, r);
        return 0;
    case SMFIR_DISCARD:
        m->msg_discard = 1;
        m->waiting = 0;
        bufferevent_disable(mc->bev, EV_READ);
        if (m->step == SK_POLICY_DATA) {
            mc->in_msg = 0;
            mods_clear(m);
            finish(m, SK_POLICY_DISCARD);
        } else {
            /* the message will be discarded at its end; nobody else need look */
            finish(m, SK_POLICY_CONTINUE);
        }
        return 0;
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER: {
        uint32_t need = r->cmd == SMFIR_CHGHEADER ? SMFIF_CHGHDRS : SMFIF_ADDHDRS;
        if (!is_eob || !(mc->actions & need)) {
            *why = "header change not allowed here";
            return -1;
        }
        mod *d = calloc(1, sizeof *d);
        if (!d || !(d->name = strdup(r->name)) || !(d->value = strdup(r->value))) {
            if (d) {
                free(d->name);
                free(d);
            }
            *why = "out of memory";
            return -1;
        }
        d->type = r->cmd;
        d->index = r->index;
        *m->mods_tail = d;
        m->mods_tail = &d->next;
        return 0; /* more replies follow, then the verdict */
    }
    case SMFIR_REPLBODY:
        if (!is_eob || !(mc->actions & SMFIF_CHGBODY)) {
            *why = "body replacement not allowed here";
            return -1;
        }
        if (!m->has_repl)
            sk_buf_clear(&m->repl);
        m->has_repl = 1;
        if (r->len && sk_buf_append(&m->repl, r->data, r->len) != 0) {
            *why = "replacement body larger than message_size";
            return -1;
        }
        return 0;
    case SMFIR_QUARANTINE:
        if (!is_eob || !(mc->actions & SMFIF_QUARANTINE)) {
            *why = "quarantine not allowed here";
            return -1;
        }
        snprintf(m->quarantine, sizeof m->quarantine, "%s", r->text[0] ? r->text : "milter");
        return 0;
    default:
        /* recipient and sender changes are not offered (OPTNEG) */
        *why = "unsupported reply";
        return -1;
    }
    /* continue / accept / skip: on with the exchange */
    m->waiting = 0;
    bufferevent_disable(mc->bev, EV_READ);
    if (m->phase == 99 || (m->step == SK_POLICY_DATA && m->phase == P_END)) {
        next_milter(m);
        if (m->finished)
            return 0;
    }
    run(m);
    return 0;
}

static void mc_read(struct bufferevent *bev, void *arg)
{
    mclient *mc = arg;
    sk_milters *m = mc->owner;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (mc->bev && evbuffer_get_length(in) > 0) {
        size_t avail = evbuffer_get_length(in), used = 0, need = 0;
        size_t look = avail < 4 ? avail : 4;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
        sk_milter_reply r;
        sk_milter_status st = sk_milter_decode(p, look, &used, &need, &r);
        if (st == SK_MILTER_MORE && need <= avail) {
            p = (const char *)evbuffer_pullup(in, (ev_ssize_t)need);
            st = sk_milter_decode(p, need, &used, &need, &r);
        }
        if (st == SK_MILTER_MORE)
            return;
        if (st == SK_MILTER_ERROR) {
            milter_failed(m, mc, r.error);
            return;
        }
        const char *why = NULL;
        int rc = handle_reply(m, mc, &r, &why);
        if (mc->bev)
            evbuffer_drain(in, used);
        if (rc != 0) {
            milter_failed(m, mc, why);
            return;
        }
    }
}

static void mc_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    mclient *mc = arg;
    sk_milters *m = mc->owner;
    if (m->waiting_write && m->cur < m->n && &m->v[m->cur] == mc) {
        m->waiting_write = 0;
        run(m);
    }
}

static void mc_event(struct bufferevent *bev, short what, void *arg)
{
    mclient *mc = arg;
    sk_milters *m = mc->owner;
    if (what & BEV_EVENT_CONNECTED) {
        mc->state = MS_OPTNEG;
        sk_buf_clear(&m->out);
        if (sk_milter_enc_optneg(&m->out, SK_MILTER_VERSION, SK_MILTER_ACTIONS | SMFIF_SETSYMLIST,
                                 SK_MILTER_STEPS) != 0 ||
            bufferevent_write(bev, m->out.data, m->out.len) != 0) {
            sk_buf_clear(&m->out);
            milter_failed(m, mc, "cannot send");
            return;
        }
        sk_buf_clear(&m->out);
        bufferevent_enable(bev, EV_READ);
        return;
    }
    const char *why = (what & BEV_EVENT_TIMEOUT) ? "timeout"
                      : (what & BEV_EVENT_EOF)   ? "connection closed by the milter"
                                                 : NULL;
    char buf[160];
    if (!why) {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(buf, sizeof buf, "%s", e ? evutil_socket_error_to_string(e) : "error");
        why = buf;
    }
    milter_failed(m, mc, why);
}
