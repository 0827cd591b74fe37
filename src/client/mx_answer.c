/*
 * mx_answer.c - MX answer processing shared by the synchronous and the
 * asynchronous resolvers (RFC 5321 5.1: preference order, random order
 * among equal preferences, the implicit MX; RFC 7505: null MX).
 *
 * Everything here is a function of the DNS answer (and a random source for
 * the shuffle); the callers only differ in how they wait for it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "client/mx_internal.h"

int sk_ares_channel_new(ares_channel *ch, const char *servers, int timeout_ms,
                        ares_sock_state_cb sock_cb, void *sock_arg, char *err, size_t errlen)
{
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.timeout = timeout_ms > 0 ? timeout_ms : 5000;
    o.tries = SK_DNS_TRIES;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (servers) {
        /* Ask only the given server(s): no /etc/hosts, no search list. */
        o.lookups = (char *)"b";
        o.ndomains = 0;
        o.domains = NULL;
        mask |= ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS;
    }
    if (sock_cb) {
        o.sock_state_cb = sock_cb;
        o.sock_state_cb_data = sock_arg;
        mask |= ARES_OPT_SOCK_STATE_CB;
    }
    int rc = ares_init_options(ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS resolver: %s", ares_strerror(rc));
        return -1;
    }
    if (servers) {
        rc = ares_set_servers_ports_csv(*ch, servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "bad DNS server '%s' (expected IP[:PORT]): %s", servers,
                     ares_strerror(rc));
            ares_destroy(*ch);
            return -1;
        }
    }
    return 0;
}

sk_dns_status sk_dns_from_ares(int st)
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

static int cmp_mx(const void *a, const void *b)
{
    const sk_mx_host *x = a, *y = b;
    if (x->preference != y->preference)
        return x->preference < y->preference ? -1 : 1;
    return strcasecmp(x->name, y->name);
}

void sk_mx_order(sk_mx_list *l, int shuffle, uint32_t (*rnd)(void *arg), void *arg)
{
    qsort(l->hosts, l->n, sizeof l->hosts[0], cmp_mx);
    if (!shuffle || !rnd)
        return;
    /* Fisher-Yates within each run of equal preference. */
    size_t i = 0;
    while (i < l->n) {
        size_t j = i;
        while (j < l->n && l->hosts[j].preference == l->hosts[i].preference)
            j++;
        for (size_t k = j - 1; k > i; k--) {
            size_t m = i + rnd(arg) % (uint32_t)(k - i + 1);
            sk_mx_host t = l->hosts[k];
            l->hosts[k] = l->hosts[m];
            l->hosts[m] = t;
        }
        i = j;
    }
}

static uint32_t system_random(void *arg)
{
    (void)arg;
    uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint32_t)time(NULL);
    return v;
}

sk_dns_status sk_mx_from_answer(int ares_status, const unsigned char *abuf, int alen,
                                const char *domain, int flags, sk_mx_list *out)
{
    memset(out, 0, sizeof *out);
    int nullmx = 0;
    size_t total = 0;
    sk_dns_status st = sk_dns_from_ares(ares_status);
    if (st == SK_DNS_OK) {
        struct ares_mx_reply *mx = NULL;
        int rc = ares_parse_mx_reply(abuf, alen, &mx);
        if (rc == ARES_ENODATA)
            st = SK_DNS_NODATA;
        else if (rc != ARES_SUCCESS)
            return SK_DNS_ERROR;
        for (struct ares_mx_reply *m = mx; m; m = m->next) {
            total++;
            /* RFC 7505: the null MX is a single record with an empty target. */
            if (m->host[0] == '\0' || !strcmp(m->host, "."))
                nullmx = 1;
            if (out->n >= SK_MX_MAX)
                continue;
            sk_mx_host *h = &out->hosts[out->n];
            size_t hl = strlen(m->host);
            if (hl >= sizeof h->name)
                continue; /* longer than any legal DNS name: ignore */
            memcpy(h->name, m->host, hl + 1);
            if (hl && h->name[hl - 1] == '.')
                h->name[hl - 1] = '\0';
            h->preference = m->priority;
            out->n++;
        }
        if (mx)
            ares_free_data(mx);
        if (nullmx && total != 1)
            nullmx = 0; /* "." among real hosts is a broken record, not a null MX */
    }
    if (st == SK_DNS_NODATA || (st == SK_DNS_OK && out->n == 0 && !nullmx)) {
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
    if (nullmx) {
        out->n = 0;
        return SK_DNS_NULLMX;
    }
    sk_mx_order(out, (flags & SK_MX_SHUFFLE) != 0, system_random, NULL);
    return SK_DNS_OK;
}

void sk_addr_list_add(sk_addr *out, size_t max, size_t *n, const struct sockaddr *sa, socklen_t len,
                      int port)
{
    if (*n >= max || len > (socklen_t)sizeof(struct sockaddr_storage))
        return;
    sk_addr *a = &out[*n];
    memset(a, 0, sizeof *a);
    memcpy(&a->ss, sa, len);
    a->len = len;
    const void *ip;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
        s4->sin_port = htons((uint16_t)port);
        ip = &s4->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
        s6->sin6_port = htons((uint16_t)port);
        ip = &s6->sin6_addr;
    } else {
        return;
    }
    if (!inet_ntop(sa->sa_family, ip, a->text, sizeof a->text))
        return;
    for (size_t i = 0; i < *n; i++)
        if (out[i].len == a->len && !strcmp(out[i].text, a->text))
            return;
    (*n)++;
}

int sk_addr_from_literal(const char *host, int port, sk_addr *out)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    memset(&s4, 0, sizeof s4);
    memset(&s6, 0, sizeof s6);
    size_t n = 0;
    if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        sk_addr_list_add(out, 1, &n, (struct sockaddr *)&s4, sizeof s4, port);
    } else if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        sk_addr_list_add(out, 1, &n, (struct sockaddr *)&s6, sizeof s6, port);
    }
    return n == 1;
}
