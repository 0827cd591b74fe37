/*
 * mx.c - MX and address resolution with c-ares (RFC 5321 5.1, RFC 7505).
 *
 * One synchronous call per question: the query is started, then the c-ares
 * sockets are polled until the answer arrives or the deadline passes, so a
 * dead DNS server costs at most the configured timeout times the tries.
 * DNS outcomes are kept apart (NXDOMAIN, no data, SERVFAIL/refused, timeout)
 * because a user fixes each one differently.
 */
#include "smtpkit/mx.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <ares.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define MX_TYPE 15 /* RFC 1035 3.2.2 */
#define CLASS_IN 1
#define TRIES 2

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
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.timeout = r->timeout_ms;
    o.tries = TRIES;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (servers) {
        /* Ask only the given server(s): no /etc/hosts, no search list. */
        o.lookups = (char *)"b";
        o.ndomains = 0;
        o.domains = NULL;
        mask |= ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS;
    }
    rc = ares_init_options(&r->ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS resolver: %s", ares_strerror(rc));
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    if (servers) {
        rc = ares_set_servers_ports_csv(r->ch, servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "bad DNS server '%s' (expected IP[:PORT]): %s", servers,
                     ares_strerror(rc));
            sk_resolver_free(r);
            return NULL;
        }
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
    double deadline = now_s() + (double)r->timeout_ms * (TRIES + 1) / 1000.0 + 1.0;
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

static sk_dns_status map_status(int st)
{
    switch (st) {
    case ARES_SUCCESS:
        return SK_DNS_OK;
    case ARES_ENOTFOUND:
        return SK_DNS_NXDOMAIN;
    case ARES_ENODATA:
        return SK_DNS_NODATA;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED:
        return SK_DNS_SERVFAIL;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
        return SK_DNS_TIMEOUT;
    default:
        return SK_DNS_ERROR;
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
    int status;
    sk_mx_list *out;
    int nullmx;
    int overflow;
};

static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct mx_q *q = arg;
    q->done = 1;
    q->status = status;
    if (status != ARES_SUCCESS)
        return;
    struct ares_mx_reply *mx = NULL;
    int rc = ares_parse_mx_reply(abuf, alen, &mx);
    if (rc != ARES_SUCCESS) {
        q->status = rc;
        return;
    }
    size_t total = 0;
    for (struct ares_mx_reply *m = mx; m; m = m->next) {
        total++;
        /* RFC 7505: the null MX is a single record with an empty target. */
        if (m->host[0] == '\0' || !strcmp(m->host, "."))
            q->nullmx = 1;
        if (q->out->n >= SK_MX_MAX) {
            q->overflow = 1;
            continue;
        }
        sk_mx_host *h = &q->out->hosts[q->out->n];
        size_t hl = strlen(m->host);
        if (hl >= sizeof h->name)
            continue; /* longer than any legal DNS name: ignore */
        memcpy(h->name, m->host, hl + 1);
        if (hl && h->name[hl - 1] == '.')
            h->name[hl - 1] = '\0';
        h->preference = m->priority;
        q->out->n++;
    }
    if (q->nullmx && total != 1)
        q->nullmx = 0; /* "." among real hosts is a broken record, not a null MX */
    ares_free_data(mx);
}

static int cmp_mx(const void *a, const void *b)
{
    const sk_mx_host *x = a, *y = b;
    if (x->preference != y->preference)
        return x->preference < y->preference ? -1 : 1;
    return strcasecmp(x->name, y->name);
}

static unsigned rnd(unsigned bound)
{
    unsigned v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (unsigned)time(NULL);
    return bound ? v % bound : 0;
}

sk_dns_status sk_mx_resolve(sk_resolver *r, const char *domain, int flags, sk_mx_list *out)
{
    memset(out, 0, sizeof *out);
    size_t dl = strlen(domain);
    if (dl == 0 || dl > 253)
        return SK_DNS_ERROR;
    struct mx_q q = {0, 0, out, 0, 0};
    ares_query(r->ch, domain, CLASS_IN, MX_TYPE, mx_cb, &q);
    wait_done(r, &q.done);
    if (!q.done)
        return SK_DNS_TIMEOUT;
    sk_dns_status st = map_status(q.status);
    if (st == SK_DNS_NODATA || (st == SK_DNS_OK && out->n == 0 && !q.nullmx)) {
        /* RFC 5321 5.1: no MX records: the domain is its own mail host. */
        memset(out, 0, sizeof *out);
        snprintf(out->hosts[0].name, sizeof out->hosts[0].name, "%s", domain);
        out->hosts[0].preference = -1;
        out->n = 1;
        out->implicit = 1;
        return SK_DNS_OK;
    }
    if (st != SK_DNS_OK)
        return st;
    if (q.nullmx) {
        out->n = 0;
        return SK_DNS_NULLMX;
    }
    qsort(out->hosts, out->n, sizeof out->hosts[0], cmp_mx);
    if (flags & SK_MX_SHUFFLE) {
        /* Fisher-Yates within each run of equal preference. */
        size_t i = 0;
        while (i < out->n) {
            size_t j = i;
            while (j < out->n && out->hosts[j].preference == out->hosts[i].preference)
                j++;
            for (size_t k = j - 1; k > i; k--) {
                size_t m = i + rnd((unsigned)(k - i + 1));
                sk_mx_host t = out->hosts[k];
                out->hosts[k] = out->hosts[m];
                out->hosts[m] = t;
            }
            i = j;
        }
    }
    return SK_DNS_OK;
}

/* ---- addresses ---------------------------------------------------------- */

struct addr_q {
    int done;
    int status;
    sk_addr *out;
    size_t max, n;
    int port;
};

static int same_addr(const sk_addr *a, const sk_addr *b)
{
    return a->len == b->len && !strcmp(a->text, b->text);
}

static void put_addr(struct addr_q *q, const struct sockaddr *sa, socklen_t len)
{
    if (q->n >= q->max || len > (socklen_t)sizeof(struct sockaddr_storage))
        return;
    sk_addr *a = &q->out[q->n];
    memset(a, 0, sizeof *a);
    memcpy(&a->ss, sa, len);
    a->len = len;
    const void *ip;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
        s4->sin_port = htons((uint16_t)q->port);
        ip = &s4->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
        s6->sin6_port = htons((uint16_t)q->port);
        ip = &s6->sin6_addr;
    } else {
        return;
    }
    if (!inet_ntop(sa->sa_family, ip, a->text, sizeof a->text))
        return;
    for (size_t i = 0; i < q->n; i++)
        if (same_addr(&q->out[i], a))
            return;
    q->n++;
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
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    memset(&s4, 0, sizeof s4);
    memset(&s6, 0, sizeof s6);
    if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        put_addr(&q, (struct sockaddr *)&s4, sizeof s4);
        *n = q.n;
        return SK_DNS_OK;
    }
    if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        put_addr(&q, (struct sockaddr *)&s6, sizeof s6);
        *n = q.n;
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
    sk_dns_status st = map_status(q.status);
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
