/*
 * cc_bev.c - moving the client core's bytes over a libevent bufferevent,
 * the STARTTLS filter (RFC 3207 4.2) and the per-wait timer (RFC 5321
 * 4.5.3.2), shared by `smtpkit bench` and the delivery agent. See
 * cc_bev.h.
 */
#include "client/cc_bev.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

int sk_cc_bev_flush(sk_client_core *c, struct bufferevent *bev)
{
    sk_buf *o = sk_client_core_output(c);
    if (!o->len)
        return 0;
    if (evbuffer_add(bufferevent_get_output(bev), o->data, o->len) < 0)
        return -1;
    sk_buf_consume(o, o->len);
    return 0;
}

struct bufferevent *sk_cc_bev_starttls(struct event_base *base, struct bufferevent *bev, SSL *ssl)
{
    if (!ssl)
        return NULL;
    /* Bytes after the 220 were sent before TLS: never read them as if they
     * came over TLS (STARTTLS response injection, CVE-2011-0411). */
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct bufferevent *tb = bufferevent_openssl_filter_new(
        base, bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!tb) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    return tb;
}

int sk_cc_bev_arm(const sk_client_core *c, struct event *timer, unsigned long *seq,
                  const struct timeval *fixed)
{
    sk_cc_wait w;
    sk_client_core_wait(c, &w);
    if (w.seq == *seq)
        return 0;
    *seq = w.seq;
    if (w.ms < 0) {
        evtimer_del(timer);
        return 1;
    }
    struct timeval tv = {.tv_sec = w.ms / 1000, .tv_usec = (w.ms % 1000) * 1000};
    evtimer_add(timer, fixed ? fixed : &tv);
    return 1;
}
