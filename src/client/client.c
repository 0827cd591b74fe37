/*
 * client.c - the client connection: connect with a timeout, bounded reads of
 * SMTP replies (RFC 5321 4.2) through the resumable reply parser, writes,
 * error reporting in plain words, and the transcript of each line.
 *
 * The socket is non-blocking; every wait goes through poll(2) with the
 * per-step timeout, so a silent or trickling peer is cut off, never waited
 * on forever. The read buffer has a hard maximum, so a peer that never ends
 * a reply cannot make it grow without bound.
 */
#include "client/client_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <unistd.h>

sk_client *sk_client_new(const sk_client_opts *o)
{
    sk_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (o)
        c->o = *o;
    if (c->o.timeout_ms <= 0)
        c->o.timeout_ms = 10000;
    c->fd = -1;
    sk_buf_init(&c->rbuf, SK_CLIENT_RBUF_MAX);
    sk_transcript_init(&c->tr, c->o.transcript_max);
    return c;
}

void sk_client_close(sk_client *c)
{
    sk_client_tls_end(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    sk_buf_clear(&c->rbuf);
    c->pend_head = c->pend_n = 0;
}

void sk_client_free(sk_client *c)
{
    if (!c)
        return;
    sk_client_close(c);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    sk_buf_free(&c->rbuf);
    sk_transcript_free(&c->tr);
    free(c);
}

/* ---- errors and accessors ---------------------------------------------- */

void sk_client_set_error(sk_client *c, sk_client_err e, const char *fmt, ...)
{
    if (c->err != SK_CLIENT_OK)
        return; /* the first error is the cause; later ones are consequences */
    c->err = e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "error: %s", c->errmsg);
}

void sk_client_clear_error(sk_client *c)
{
    c->err = SK_CLIENT_OK;
    c->errmsg[0] = '\0';
}

sk_client_err sk_client_error(const sk_client *c)
{
    return c->err;
}
const char *sk_client_errmsg(const sk_client *c)
{
    return c->errmsg;
}
sk_transcript *sk_client_transcript(sk_client *c)
{
    return &c->tr;
}
const sk_caps *sk_client_caps(const sk_client *c)
{
    return &c->caps;
}
const sk_tls_info *sk_client_tls(const sk_client *c)
{
    return &c->tls;
}
int sk_client_is_tls(const sk_client *c)
{
    return c->ssl != NULL && c->tls.active;
}
const char *sk_client_peer(const sk_client *c)
{
    return c->peer;
}
double sk_client_connect_ms(const sk_client *c)
{
    return c->connect_ms;
}
double sk_client_greeting_ms(const sk_client *c)
{
    return c->greeting_ms;
}

double sk_client_deadline(const sk_client *c)
{
    return sk_monotonic() + (double)c->o.timeout_ms / 1000.0;
}

int sk_client_wait(sk_client *c, short events, double deadline)
{
    for (;;) {
        double left = deadline - sk_monotonic();
        if (left <= 0)
            return 0;
        struct pollfd p = {c->fd, events, 0};
        int r = poll(&p, 1, (int)(left * 1000.0) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            continue; /* re-check the clock: poll may wake a little early */
        return 1;
    }
}

/* strerror in lower case, as the end of a sentence. */
static void errtext(int e, char *out, size_t n)
{
    snprintf(out, n, "%s", strerror(e));
    if (out[0] && isupper((unsigned char)out[0]) && !(out[1] && isupper((unsigned char)out[1])))
        out[0] = (char)tolower((unsigned char)out[0]);
}

/* ---- connect ------------------------------------------------------------ */

static void format_peer(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(out, n, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, port);
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
        snprintf(out, n, "unix:%.*s", (int)sizeof su->sun_path, su->sun_path);
    } else {
        snprintf(out, n, "?");
    }
}

int sk_client_connect_addr(sk_client *c, const struct sockaddr *sa, socklen_t salen,
                           const char *name)
{
    sk_client_close(c);
    sk_caps_clear(&c->caps);
    memset(&c->tls, 0, sizeof c->tls);
    snprintf(c->host, sizeof c->host, "%s", name ? name : "");
    format_peer(sa, c->peer, sizeof c->peer);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "connecting to %s (%s)", c->peer, c->host);
    double start = sk_monotonic();

    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        char e[128];
        errtext(errno, e, sizeof e);
        sk_client_set_error(c, SK_CLIENT_ERR_CONNECT, "could not connect to %s: %s", c->peer, e);
        return -1;
    }
    c->fd = fd;
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
        char e[128];
        errtext(errno, e, sizeof e);
        sk_client_set_error(c, SK_CLIENT_ERR_CONNECT, "could not connect to %s: %s", c->peer, e);
        sk_client_close(c);
        return -1;
    }
    int w = sk_client_wait(c, POLLOUT, sk_client_deadline(c));
    if (w == 0) {
        sk_client_set_error(c, SK_CLIENT_ERR_CONNECT,
                            "could not connect to %s: no answer within %d s (connect timeout)",
                            c->peer, (c->o.timeout_ms + 999) / 1000);
        sk_client_close(c);
        return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
        char e[128];
        errtext(soerr ? soerr : errno, e, sizeof e);
        sk_client_set_error(c, SK_CLIENT_ERR_CONNECT, "could not connect to %s: %s", c->peer, e);
        sk_client_close(c);
        return -1;
    }
    c->t_connected = sk_monotonic();
    c->connect_ms = (c->t_connected - start) * 1000.0;
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "connected to %s in %.0f ms", c->peer, c->connect_ms);
    c->greeting_ms = 0;
    return 0;
}

int sk_client_connect(sk_client *c, const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    if (sk_is_ip_literal(host))
        hints.ai_flags = AI_NUMERICHOST;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        sk_client_err e = SK_CLIENT_ERR_DNS;
        if (rc == EAI_SERVICE)
            e = SK_CLIENT_ERR_USAGE;
        sk_client_set_error(c, e, "could not resolve %s: %s", host,
                            rc == EAI_NONAME ? "no such host" : gai_strerror(rc));
        return -1;
    }
    int ok = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        sk_client_clear_error(c);
        if (sk_client_connect_addr(c, ai->ai_addr, ai->ai_addrlen, host) == 0) {
            ok = 0;
            break;
        }
    }
    freeaddrinfo(res);
    return ok;
}

/* ---- reading and writing ------------------------------------------------ */

/* Read what is available into rbuf (at most until its max). >0 bytes read,
 * 0 end of file, -1 error or timeout (error set). */
int sk_client_read_some(sk_client *c, double deadline)
{
    char tmp[4096];
    size_t room = c->rbuf.max - c->rbuf.len;
    if (room > sizeof tmp)
        room = sizeof tmp;
    if (room == 0)
        return -1;
    if (c->ssl) {
        int n = sk_client_tls_read(c, tmp, room, deadline);
        if (n > 0 && sk_buf_append(&c->rbuf, tmp, (size_t)n) < 0)
            return -1;
        return n;
    }
    for (;;) {
        ssize_t n = recv(c->fd, tmp, room, 0);
        if (n > 0) {
            if (sk_buf_append(&c->rbuf, tmp, (size_t)n) < 0)
                return -1;
            return (int)n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            char e[128];
            errtext(errno, e, sizeof e);
            sk_client_set_error(c,
                                errno == ECONNRESET ? SK_CLIENT_ERR_CLOSED : SK_CLIENT_ERR_CONNECT,
                                "connection to %s failed: %s", c->peer, e);
            return -1;
        }
        int w = sk_client_wait(c, POLLIN, deadline);
        if (w <= 0) {
            if (w == 0)
                sk_client_set_error(c, SK_CLIENT_ERR_TIMEOUT,
                                    "%s did not answer within %d s (timeout)", c->peer,
                                    (c->o.timeout_ms + 999) / 1000);
            else
                sk_client_set_error(c, SK_CLIENT_ERR_CONNECT, "waiting for %s failed", c->peer);
            return -1;
        }
    }
}

void sk_client_expect(sk_client *c, const char *cmd)
{
    if (c->pend_n >= SK_CLIENT_PENDING_MAX)
        return;
    size_t i = (c->pend_head + c->pend_n) % SK_CLIENT_PENDING_MAX;
    snprintf(c->pending[i], sizeof c->pending[i], "%s", cmd);
    c->pend_n++;
}

/* The command the next reply answers: "CONNECT" before anything was sent. */
static void take_expected(sk_client *c, char *out, size_t n)
{
    if (!c->pend_n) {
        snprintf(out, n, "CONNECT");
        return;
    }
    snprintf(out, n, "%s", c->pending[c->pend_head]);
    c->pend_head = (c->pend_head + 1) % SK_CLIENT_PENDING_MAX;
    c->pend_n--;
}

/* The verb of a command line, for sk_client_expect: "MAIL", "RCPT", "."
 * (the lone end-of-data line) as "DATA-END". */
static void expect_line(sk_client *c, const char *p, size_t n)
{
    char verb[12];
    size_t k = 0;
    while (k < n && k + 1 < sizeof verb && p[k] != ' ' && p[k] != '\r' && p[k] != '\n') {
        char ch = p[k];
        verb[k++] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    verb[k] = '\0';
    sk_client_expect(c, !strcmp(verb, ".") ? "DATA-END" : verb);
}

/* Record the lines of bytes p[0..n) in the transcript. */
void sk_client_record_lines(sk_client *c, sk_dir dir, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && p[i] != '\n')
            i++;
        size_t e = i;
        if (e > s && p[e - 1] == '\r')
            e--;
        sk_transcript_add(&c->tr, dir, p + s, e - s);
        if (i < n)
            i++;
    }
}

/* Does the start of the buffer look like a reply line at all? Used to call
 * garbage "not SMTP" at once instead of waiting for a line end. */
static int looks_like_reply(const char *p, size_t n)
{
    for (size_t i = 0; i < n && i < 3; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    if (n >= 4 && p[3] != ' ' && p[3] != '-' && p[3] != '\r' && p[3] != '\n')
        return 0;
    return 1;
}

static void not_smtp(sk_client *c, const char *why)
{
    size_t n = c->rbuf.len;
    const char *nl = memchr(c->rbuf.data, '\n', n);
    if (nl)
        n = (size_t)(nl - c->rbuf.data) + 1;
    sk_client_record_lines(c, SK_DIR_SERVER, c->rbuf.data, n > 200 ? 200 : n);
    sk_client_set_error(c, SK_CLIENT_ERR_PROTOCOL, "%s does not speak SMTP: %s", c->peer, why);
}

int sk_client_read_reply(sk_client *c, sk_reply *r)
{
    memset(r, 0, sizeof *r);
    if (c->fd < 0) {
        sk_client_set_error(c, SK_CLIENT_ERR_CLOSED, "not connected");
        return -1;
    }
    double deadline = sk_client_deadline(c);
    for (;;) {
        if (c->rbuf.len) {
            if (!looks_like_reply(c->rbuf.data, c->rbuf.len)) {
                not_smtp(c, "its reply does not start with a 3-digit code");
                return -1;
            }
            const char *err = NULL;
            ssize_t used = sk_reply_parse(c->rbuf.data, c->rbuf.len, SK_REPLY_ALLOW_ANY, r, &err);
            if (used > 0) {
                sk_client_record_lines(c, SK_DIR_SERVER, c->rbuf.data, (size_t)used);
                sk_buf_consume(&c->rbuf, (size_t)used);
                char cmd[12];
                take_expected(c, cmd, sizeof cmd);
                if (c->o.on_reply)
                    c->o.on_reply(r, cmd, c->o.on_reply_arg);
                return 0;
            }
            if (used < 0) {
                char why[200];
                snprintf(why, sizeof why, "malformed reply (%s)", err ? err : "bad syntax");
                not_smtp(c, why);
                return -1;
            }
            if (c->rbuf.len >= c->rbuf.max) {
                not_smtp(c, "reply longer than 64 KiB");
                return -1;
            }
        }
        int n = sk_client_read_some(c, deadline);
        if (n > 0)
            continue;
        if (n == 0) {
            if (c->rbuf.len) {
                sk_client_record_lines(c, SK_DIR_SERVER, c->rbuf.data,
                                       c->rbuf.len > 200 ? 200 : c->rbuf.len);
                sk_client_set_error(c, SK_CLIENT_ERR_CLOSED,
                                    "%s closed the connection in the middle of a reply", c->peer);
            } else {
                sk_client_set_error(c, SK_CLIENT_ERR_CLOSED,
                                    "%s closed the connection without a reply", c->peer);
            }
        }
        return -1;
    }
}

int sk_client_send_raw(sk_client *c, const char *p, size_t n, int record)
{
    if (c->fd < 0) {
        sk_client_set_error(c, SK_CLIENT_ERR_CLOSED, "not connected");
        return -1;
    }
    if (record) {
        sk_client_record_lines(c, SK_DIR_CLIENT, p, n);
        for (size_t i = 0; i < n;) { /* one expected reply per command line */
            expect_line(c, p + i, n - i);
            const char *nl = memchr(p + i, '\n', n - i);
            i = nl ? (size_t)(nl - p) + 1 : n;
        }
    }
    if (c->ssl)
        return sk_client_tls_write(c, p, n, sk_client_deadline(c));
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, p + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Each wait is one step: progress restarts the clock. */
            int r = sk_client_wait(c, POLLOUT, sk_client_deadline(c));
            if (r == 0) {
                sk_client_set_error(c, SK_CLIENT_ERR_TIMEOUT,
                                    "%s stopped reading for %d s (timeout)", c->peer,
                                    (c->o.timeout_ms + 999) / 1000);
                return -1;
            }
            if (r > 0)
                continue;
        }
        char e[128];
        errtext(errno, e, sizeof e);
        sk_client_set_error(c, SK_CLIENT_ERR_CLOSED, "sending to %s failed: %s", c->peer, e);
        return -1;
    }
    return 0;
}

int sk_client_send_line(sk_client *c, const char *line, const char *shown)
{
    size_t n = strlen(line);
    if (memchr(line, '\r', n) || memchr(line, '\n', n)) {
        sk_client_set_error(c, SK_CLIENT_ERR_USAGE, "refusing to send a command with a line break");
        return -1;
    }
    if (shown) {
        sk_transcript_add(&c->tr, SK_DIR_CLIENT, shown, strlen(shown));
        sk_client_expect(c, "AUTH"); /* only AUTH data is ever shown differently */
    } else {
        sk_transcript_add(&c->tr, SK_DIR_CLIENT, line, n);
        expect_line(c, line, n);
    }
    char *buf = malloc(n + 3);
    if (!buf) {
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    memcpy(buf, line, n);
    memcpy(buf + n, "\r\n", 3);
    int rc = sk_client_send_raw(c, buf, n + 2, 0);
    /* The line may hold credentials (AUTH): wipe before freeing. */
    explicit_bzero(buf, n + 2);
    free(buf);
    return rc;
}

int sk_client_command(sk_client *c, const char *line, sk_reply *r)
{
    memset(r, 0, sizeof *r);
    if (sk_client_send_line(c, line, NULL) < 0)
        return -1;
    return sk_client_read_reply(c, r);
}

void sk_reply_oneline(const sk_reply *r, char *out, size_t outlen)
{
    size_t used = 0;
    if (!outlen)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < r->nlines && used + 1 < outlen; i++) {
        int n;
        if (r->has_enhanced)
            n = snprintf(out + used, outlen - used, "%s%d %d.%d.%d %s", i ? " / " : "", r->code,
                         r->enhanced.cls, r->enhanced.subject, r->enhanced.detail, r->lines[i]);
        else
            n = snprintf(out + used, outlen - used, "%s%d %s", i ? " / " : "", r->code,
                         r->lines[i]);
        if (n < 0)
            break;
        used += (size_t)n;
        if (used >= outlen)
            used = outlen - 1;
    }
    if (r->nlines == 0)
        snprintf(out, outlen, "%d", r->code);
}
