/*
 * proxy_accept.c - the PROXY protocol on a listener with proxy_protocol
 * (HAProxy's proxy-protocol.txt): before the greeting, and before the TLS
 * handshake on an implicit-TLS listener, the connection must come from a
 * trusted proxy (proxy_networks) and start with a v1 or v2 header. The
 * client address it carries then replaces the socket's peer everywhere:
 * logs, Received, per-address limits, trusted networks, AUTH budgets.
 *
 * Reading: the core parser (src/core/proxy_header.c) says how many octets
 * a valid header still has; exactly that many are read with recv(2), so
 * not one octet of what follows (the client's ClientHello, say) leaves the
 * kernel before the session or OpenSSL takes the socket over.
 *
 * Refused, with one log line (event=proxy-refused) and no greeting: a
 * connection from outside proxy_networks, bytes that are no PROXY header
 * (missing), a malformed header, a header not complete within
 * proxy_timeout seconds of the connection (a deadline, not an idle
 * timeout: trickling octets does not extend it), a connection closed
 * before the end of the header. A v2 LOCAL header (the proxy's own health
 * check) and a v1 UNKNOWN keep the proxy's address, as 2.1 and 2.2 say.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "core/proxy_header.h"
#include "server/cidr.h"
#include "server/conn.h"
#include "server/log.h"

struct sk_proxy_wait {
    sk_conn *c;
    evutil_socket_t fd;
    struct event *read_ev;
    struct event *timer;
    sk_proxy_parser parser;
};

int sk_proxy_networks_set(sk_server *srv, const sk_config *cfg)
{
    sk_cidr *nets = NULL;
    size_t n = 0;
    if (cfg->nproxy_networks) {
        nets = calloc(cfg->nproxy_networks, sizeof *nets);
        if (!nets)
            return -1;
        for (size_t i = 0; i < cfg->nproxy_networks; i++) {
            const char *why;
            if (sk_cidr_parse(cfg->proxy_networks[i], &nets[n], &why) == 0)
                n++; /* the loader refused bad ones already */
        }
    }
    free(srv->proxy_nets);
    srv->proxy_nets = nets;
    srv->nproxy_nets = n;
    return 0;
}

void sk_proxy_networks_free(sk_server *srv)
{
    free(srv->proxy_nets);
    srv->proxy_nets = NULL;
    srv->nproxy_nets = 0;
}

static int from_proxy(const sk_server *srv, const char *addr)
{
    for (size_t i = 0; i < srv->nproxy_nets; i++)
        if (sk_cidr_match(&srv->proxy_nets[i], addr))
            return 1;
    return 0;
}

/* Free the wait state; the socket stays open unless close_fd. */
static void wait_free(sk_conn *c, int close_fd)
{
    struct sk_proxy_wait *w = c->proxy;
    if (!w)
        return;
    if (w->read_ev)
        event_free(w->read_ev);
    if (w->timer)
        event_free(w->timer);
    if (close_fd && w->fd >= 0)
        evutil_closesocket(w->fd);
    free(w);
    c->proxy = NULL;
}

/* Refuse: one log line, close, no greeting. */
static void proxy_refuse(sk_conn *c, evutil_socket_t fd, const char *reason, const char *detail)
{
    static const struct {
        const char *reason;
        sk_refusal metric;
    } metric[] = {{"untrusted", SK_REFUSED_PROXY_UNTRUSTED},
                  {"missing", SK_REFUSED_PROXY_MISSING},
                  {"malformed", SK_REFUSED_PROXY_MALFORMED},
                  {"timeout", SK_REFUSED_PROXY_TIMEOUT},
                  {"eof", SK_REFUSED_PROXY_EOF},
                  {"io-error", SK_REFUSED_PROXY_EOF}};
    for (size_t i = 0; i < sizeof metric / sizeof metric[0]; i++)
        if (!strcmp(reason, metric[i].reason))
            sk_metrics_refused(&c->srv->metrics, metric[i].metric);
    sk_log(LOG_NOTICE, "event=proxy-refused conn=%llu peer=%s port=%u listener=%s reason=%s%s%s%s",
           c->id, c->addr, c->port, c->lst->label, reason, detail ? " error=\"" : "",
           detail ? detail : "", detail ? "\"" : "");
    if (c->proxy)
        wait_free(c, 1);
    else
        evutil_closesocket(fd);
    sk_conn_discard(c);
}

void sk_proxy_accept_cancel(sk_conn *c, const char *reason)
{
    proxy_refuse(c, c->proxy ? c->proxy->fd : -1, reason, NULL);
}

/* The header is complete: take the client's address from it and start the
 * session on the socket as if the client had connected directly. */
static void proxy_done(sk_conn *c, const sk_proxy_info *in)
{
    evutil_socket_t fd = c->proxy->fd;
    if (!in->local && in->transport != 1) {
        proxy_refuse(c, fd, "malformed", "not a stream (TCP) connection");
        return;
    }
    snprintf(c->via, sizeof c->via, "%s", c->addr);
    if (!in->local)
        sk_conn_set_peer(c, in->family, in->src, in->src_port);
    sk_log(LOG_INFO, "event=proxy-header conn=%llu peer=%s port=%u proxy=%s version=%d command=%s",
           c->id, c->addr, c->port, c->via, in->version, in->local ? "local" : "proxy");
    wait_free(c, 0);
    sk_conn_begin(c, fd);
}

static void proxy_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sk_conn *c = arg;
    struct sk_proxy_wait *w = c->proxy;
    for (;;) {
        unsigned char buf[512];
        size_t want = sk_proxy_want(&w->parser);
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t n = recv(fd, buf, want, 0);
        if (n == 0) {
            proxy_refuse(c, fd, "eof", "connection closed before the PROXY header ended");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            proxy_refuse(c, fd, "io-error", strerror(errno));
            return;
        }
        size_t used = 0;
        sk_proxy_status st = sk_proxy_feed(&w->parser, buf, (size_t)n, &used);
        if (st == SK_PROXY_ERROR) {
            proxy_refuse(c, fd, sk_proxy_error_is_missing(&w->parser) ? "missing" : "malformed",
                         sk_proxy_error(&w->parser));
            return;
        }
        if (st == SK_PROXY_DONE) {
            proxy_done(c, sk_proxy_result(&w->parser));
            return;
        }
    }
}

static void proxy_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_conn *c = arg;
    proxy_refuse(c, c->proxy->fd, "timeout", "no complete PROXY header in time");
}

void sk_proxy_accept_start(sk_conn *c, int fd)
{
    sk_server *srv = c->srv;
    if (!from_proxy(srv, c->addr)) {
        proxy_refuse(c, fd, "untrusted", "not in proxy_networks");
        return;
    }
    struct sk_proxy_wait *w = calloc(1, sizeof *w);
    if (!w) {
        proxy_refuse(c, fd, "internal-error", "out of memory");
        return;
    }
    w->c = c;
    w->fd = fd;
    sk_proxy_init(&w->parser);
    c->proxy = w;
    w->read_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, proxy_read_cb, c);
    w->timer = evtimer_new(srv->base, proxy_timeout_cb, c);
    struct timeval tv = {.tv_sec = srv->cfg->proxy_timeout};
    if (!w->read_ev || !w->timer || event_add(w->read_ev, NULL) != 0 ||
        evtimer_add(w->timer, &tv) != 0) {
        proxy_refuse(c, fd, "internal-error", "cannot register events");
        return;
    }
}
