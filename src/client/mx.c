/*
 * mx.c - MX and address resolution with c-ares (RFC 5321 5.1, RFC 7505).
 *
 * One synchronous call per question: the query is started, then the c-ares
 * sockets are polled until the answer arrives or the deadline passes, so a
 * dead DNS server costs at most the configured timeout times the tries.
 * DNS outcomes are kept apart (NXDOMAIN, no data, SERVFAIL/refused, timeout)
 * because a user fixes each one differently. What an answer means (null
 * MX, implicit MX, order) is decided in mx_answer.c, shared with the
 * delivery agent's asynchronous resolver (src/delivery/mx_async.c).
 */
#include "smtpkit/mx.h"

#include "client/mx_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <ares.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct sk_resolver {
    ares_channel ch;
    int timeout_ms;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

sk_resolver *sk_resolver_new(const char *servers, int timeout_ms, char *err, size_t errlen)
{
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS library: %s", ares_strerror(rc));
        return NULL;
    }
    sk_resolver *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        ares_library_cleanup();
        return NULL;
    }
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    if (sk_ares_channel_new(&r->ch, servers, r->timeout_ms, NULL, NULL, err, errlen) < 0) {
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    return r;
}

void sk_resolver_free(sk_resolver *r)
{
    if (!r)
        return;
    ares_destroy(r->ch);
    free(r);
    ares_library_cleanup();
}

/* Drive c-ares until *done is set or the deadline passes. */
static void wait_done(sk_resolver *r, const int *done)
{
    double deadline = now_s() + (double)r->timeout_ms * (SK_DNS_TRIES + 1) / 1000.0 + 1.0;
    while (!*done) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        /* ares_getsock's bit mask, read with unsigned shifts (the library's
         * own macros shift a signed 1 into the sign bit). */
        unsigned bits = (unsigned)ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        nfds_t n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;
            if (bits & (1u << i))
                ev |= POLLIN;
            if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
                ev |= POLLOUT;
            if (!ev)
                continue;
            pfd[n].fd = socks[i];
            pfd[n].events = ev;
            pfd[n].revents = 0;
            n++;
        }
        double left = deadline - now_s();
        if (left <= 0) {
            ares_cancel(r->ch); /* callbacks run with ARES_ECANCELLED */
            return;
        }
        struct timeval tv, *tvp, maxtv = {(time_t)left, (suseconds_t)((left - (long)left) * 1e6)};
        tvp = ares_timeout(r->ch, &maxtv, &tv);
        int ms = (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) + 1;
        int pr = poll(pfd, n, ms);
        if (pr < 0)
            continue; /* EINTR: the deadline still bounds the loop */
        if (pr == 0) {
            ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
            continue;
        }
        for (nfds_t i = 0; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            ares_socket_t rd =
                pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_socket_t wr = pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_process_fd(r->ch, rd, wr);
        }
    }
}

const char *sk_dns_status_text(sk_dns_status s)
{
    switch (s) {
    case SK_DNS_OK:
        return "resolved";
    case SK_DNS_NXDOMAIN:
        return "the domain does not exist (NXDOMAIN)";
    case SK_DNS_NODATA:
        return "the name exists but has no address record";
    case SK_DNS_SERVFAIL:
        return "the DNS server failed or refused to answer (SERVFAIL/REFUSED)";
    case SK_DNS_TIMEOUT:
        return "the DNS server did not answer in time";
    case SK_DNS_NULLMX:
        return "this domain accepts no mail (null MX, RFC 7505)";
    case SK_DNS_ERROR:
        break;
    }
    return "the DNS lookup failed";
}

/* ---- MX --------------------------------------------------------------- */

struct mx_q {
    int done;
    sk_dns_status status;
    const char *domain;
    int flags;
    sk_mx_list *out;
};

static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct mx_q *q = arg;
    q->done = 1;
    q->status = sk_mx_from_answer(status, abuf, alen, q->domain, q->flags, q->out);
}

sk_dns_status sk_mx_resolve(sk_resolver *r, const char *domain, int flags, sk_mx_list *out)
{
    memset(out, 0, sizeof *out);
    size_t dl = strlen(domain);
    if (dl == 0 || dl > 253)
        return SK_DNS_ERROR;
    struct mx_q q = {0, SK_DNS_ERROR, domain, flags, out};
    ares_query(r->ch, domain, SK_DNS_CLASS_IN, SK_MX_QTYPE, mx_cb, &q);
    wait_done(r, &q.done);
    if (!q.done)
        return SK_DNS_TIMEOUT;
    return q.status;
}

/* ---- addresses ---------------------------------------------------------- */

struct addr_q {
    int done;
    int status;
    sk_addr *out;
    size_t max, n;
    int port;
};

static void put_addr(struct addr_q *q, const struct sockaddr *sa, socklen_t len)
{
    sk_addr_list_add(q->out, q->max, &q->n, sa, len, q->port);
}

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct addr_q *q = arg;
    q->done = 1;
    q->status = status;
    if (status != ARES_SUCCESS || !res)
        goto out;
    for (struct ares_addrinfo_node *nd = res->nodes; nd; nd = nd->ai_next)
        put_addr(q, nd->ai_addr, (socklen_t)nd->ai_addrlen);
out:
    if (res)
        ares_freeaddrinfo(res);
}

sk_dns_status sk_host_resolve(sk_resolver *r, const char *host, int port, sk_addr *out, size_t max,
                              size_t *n)
{
    *n = 0;
    struct addr_q q = {0, 0, out, max, 0, port};
    if (max && sk_addr_from_literal(host, port, out)) {
        *n = 1;
        return SK_DNS_OK;
    }
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ARES_AI_NOSORT;
    ares_getaddrinfo(r->ch, host, NULL, &hints, addr_cb, &q);
    wait_done(r, &q.done);
    if (!q.done)
        return SK_DNS_TIMEOUT;
    *n = q.n;
    sk_dns_status st = sk_dns_from_ares(q.status);
    if (st == SK_DNS_OK && q.n == 0)
        return SK_DNS_NODATA;
    return st;
}

sk_dns_status sk_system_resolve(const char *host, int port, sk_addr *out, size_t max, size_t *n)
{
    *n = 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == EAI_NONAME)
        return SK_DNS_NXDOMAIN;
#ifdef EAI_NODATA
    if (rc == EAI_NODATA)
        return SK_DNS_NODATA;
#endif
    if (rc == EAI_AGAIN)
        return SK_DNS_SERVFAIL;
    if (rc != 0)
        return SK_DNS_ERROR;
    struct addr_q q = {1, 0, out, max, 0, port};
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        put_addr(&q, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    *n = q.n;
    return q.n ? SK_DNS_OK : SK_DNS_NODATA;
}
