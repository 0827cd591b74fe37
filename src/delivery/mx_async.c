/*
 * mx_async.c - MX and address look-ups with c-ares driven by libevent
 * (RFC 5321 5.1: MX in preference order, each address of each host, the
 * implicit MX; RFC 7505 null MX). See mx_async.h.
 *
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB);
 * each gets a persistent libevent event that calls ares_process_fd(), and
 * one timer follows ares_timeout() for retransmissions and give-ups. A
 * look-up holds a count of c-ares queries in flight; it is freed when the
 * last one has called back, whether it was cancelled or not, so no c-ares
 * callback ever sees freed memory. The user's callback is deferred to a
 * zero-delay timer so it never runs inside sk_mx_async_lookup().
 */
#include "smtpkit/mx_async.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/mx_internal.h"

#define MAX_SOCKS 32

struct sock_watch {
    ares_socket_t fd;
    struct event *ev;
};

struct sk_mx_async {
    struct event_base *base;
    ares_channel ch;
    struct event *timer;
    struct sock_watch socks[MAX_SOCKS];
    size_t pending; /* look-ups whose callback has not run */
    int destroying;
    struct sk_mx_lookup *all; /* every look-up not yet freed */
};

struct sk_mx_lookup {
    sk_mx_async *r;
    struct sk_mx_lookup *next, **prevp; /* in r->all */
    sk_mx_done_fn done;
    void *arg;
    int port, flags;
    int cancelled;
    int delivered;
    unsigned inflight;    /* c-ares queries not yet called back */
    struct event *finish; /* zero-delay timer that runs the user's callback */
    sk_mx_route route;
};

struct host_q {
    sk_mx_lookup *l;
    size_t index;
};

static void rearm(sk_mx_async *r)
{
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (tvp)
        evtimer_add(r->timer, tvp);
    else
        evtimer_del(r->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_mx_async *r = arg;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(r);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    sk_mx_async *r = arg;
    ares_process_fd(r->ch, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
    rearm(r);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    sk_mx_async *r = data;
    struct sock_watch *w = NULL, *free_slot = NULL;
    for (size_t i = 0; i < MAX_SOCKS; i++) {
        if (r->socks[i].ev && r->socks[i].fd == fd)
            w = &r->socks[i];
        else if (!r->socks[i].ev && !free_slot)
            free_slot = &r->socks[i];
    }
    if (w) {
        event_free(w->ev);
        w->ev = NULL;
    }
    if (!readable && !writable)
        return;
    if (!w)
        w = free_slot;
    if (!w)
        return; /* more sockets than c-ares uses with our options; its timeouts still run */
    short ev = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    w->fd = fd;
    w->ev = event_new(r->base, fd, ev, on_sock, r);
    if (w->ev)
        event_add(w->ev, NULL);
}

sk_mx_async *sk_mx_async_new(struct event_base *base, const char *servers, int timeout_ms,
                             char *err, size_t errlen)
{
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS library: %s", ares_strerror(rc));
        return NULL;
    }
    sk_mx_async *r = calloc(1, sizeof *r);
    if (!r || !(r->timer = evtimer_new(base, on_timer, r))) {
        snprintf(err, errlen, "out of memory");
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    r->base = base;
    if (sk_ares_channel_new(&r->ch, servers, timeout_ms, sock_state, r, err, errlen) < 0) {
        event_free(r->timer);
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    return r;
}

static void lookup_free(sk_mx_lookup *l)
{
    *l->prevp = l->next;
    if (l->next)
        l->next->prevp = l->prevp;
    if (l->finish)
        event_free(l->finish);
    free(l);
}

/* The last c-ares callback of a look-up came: hand the route over (on a
 * zero-delay timer), or free it when cancelled. */
static void maybe_finish(sk_mx_lookup *l)
{
    if (l->inflight)
        return;
    sk_mx_async *r = l->r;
    if (l->cancelled || r->destroying) {
        lookup_free(l);
        return;
    }
    struct timeval zero = {0, 0};
    evtimer_add(l->finish, &zero);
}

static void on_finish(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_mx_lookup *l = arg;
    if (!l->cancelled) {
        l->delivered = 1;
        l->r->pending--;
        l->done(l->arg, &l->route);
    }
    lookup_free(l);
}

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct host_q *hq = arg;
    sk_mx_lookup *l = hq->l;
    sk_mx_route_host *h = &l->route.hosts[hq->index];
    free(hq);
    h->addr_status = sk_dns_from_ares(status);
    if (status == ARES_SUCCESS && res)
        for (struct ares_addrinfo_node *nd = res->nodes; nd; nd = nd->ai_next)
            sk_addr_list_add(h->addrs, SK_ADDRS_MAX, &h->naddrs, nd->ai_addr,
                             (socklen_t)nd->ai_addrlen, l->port);
    if (res)
        ares_freeaddrinfo(res);
    if (h->addr_status == SK_DNS_OK && !h->naddrs)
        h->addr_status = SK_DNS_NODATA;
    l->inflight--;
    maybe_finish(l);
}

static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    sk_mx_lookup *l = arg;
    sk_mx_route *rt = &l->route;
    sk_mx_list *mx = malloc(sizeof *mx);
    if (!mx) {
        rt->status = SK_DNS_ERROR;
    } else if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED || l->cancelled) {
        rt->status = SK_DNS_TIMEOUT;
        mx->n = 0;
    } else {
        rt->status = sk_mx_from_answer(status, abuf, alen, rt->domain, l->flags, mx);
        rt->implicit = mx->implicit;
    }
    /* One A/AAAA look-up per host, all at once; the guard keeps the
     * look-up alive while they are started (a callback may run at once). */
    l->inflight++;
    if (mx && rt->status == SK_DNS_OK && !l->cancelled && !l->r->destroying) {
        for (size_t i = 0; i < mx->n; i++) {
            sk_mx_route_host *h = &rt->hosts[rt->n++];
            memcpy(h->name, mx->hosts[i].name, sizeof h->name);
            h->preference = mx->hosts[i].preference;
            h->addr_status = SK_DNS_ERROR;
            if (sk_addr_from_literal(h->name, l->port, &h->addrs[0])) {
                h->naddrs = 1;
                h->addr_status = SK_DNS_OK;
                continue;
            }
            struct host_q *hq = malloc(sizeof *hq);
            if (!hq)
                continue;
            hq->l = l;
            hq->index = i;
            struct ares_addrinfo_hints hints;
            memset(&hints, 0, sizeof hints);
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_flags = ARES_AI_NOSORT;
            l->inflight++;
            ares_getaddrinfo(l->r->ch, h->name, NULL, &hints, addr_cb, hq);
        }
    }
    free(mx);
    l->inflight--; /* the MX query's own count */
    l->inflight--; /* the guard */
    maybe_finish(l);
}

sk_mx_lookup *sk_mx_async_lookup(sk_mx_async *r, const char *domain, int port, int flags,
                                 sk_mx_done_fn done, void *arg)
{
    size_t dl = domain ? strlen(domain) : 0;
    if (dl == 0 || dl > 253 || !done)
        return NULL;
    sk_mx_lookup *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->finish = evtimer_new(r->base, on_finish, l);
    if (!l->finish) {
        free(l);
        return NULL;
    }
    l->r = r;
    l->next = r->all;
    if (r->all)
        r->all->prevp = &l->next;
    r->all = l;
    l->prevp = &r->all;
    l->done = done;
    l->arg = arg;
    l->port = port;
    l->flags = flags;
    memcpy(l->route.domain, domain, dl + 1);
    l->inflight = 1;
    r->pending++;
    ares_query(r->ch, domain, SK_DNS_CLASS_IN, SK_MX_QTYPE, mx_cb, l);
    rearm(r);
    return l;
}

void sk_mx_async_cancel(sk_mx_lookup *l)
{
    if (!l || l->cancelled || l->delivered)
        return;
    l->cancelled = 1;
    l->r->pending--;
    /* Still waiting for c-ares: freed by its last callback. Already handed
     * to the zero-delay timer: on_finish frees it without calling back. */
}

size_t sk_mx_async_pending(const sk_mx_async *r)
{
    return r->pending;
}

void sk_mx_async_free(sk_mx_async *r)
{
    if (!r)
        return;
    r->destroying = 1;
    ares_destroy(r->ch); /* every outstanding callback runs (ARES_EDESTRUCTION) */
    while (r->all)       /* those already waiting for their zero-delay timer */
        lookup_free(r->all);
    for (size_t i = 0; i < MAX_SOCKS; i++)
        if (r->socks[i].ev)
            event_free(r->socks[i].ev);
    event_free(r->timer);
    free(r);
    ares_library_cleanup();
}
