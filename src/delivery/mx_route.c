/*
 * mx_route.c - the verdict on an MX route and the "is this MX myself?"
 * check (RFC 5321 5.1: an SMTP client that finds itself among the MX hosts
 * MUST drop that host and all less preferred; RFC 7505 null MX; RFC 3463
 * X.1.2, X.1.10, X.4.3, X.4.4, X.4.6). See mx_route.h.
 */
#include "smtpkit/mx_route.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>

#include "client/mx_internal.h"

static int temporary(sk_dns_status s)
{
    return s == SK_DNS_SERVFAIL || s == SK_DNS_TIMEOUT || s == SK_DNS_ERROR;
}

sk_route_verdict sk_mx_route_verdict(const sk_mx_route *r)
{
    sk_route_verdict v = {SK_ROUTE_DELIVER, "2.0.0", "resolved"};
    switch (r->status) {
    case SK_DNS_NULLMX:
        return (sk_route_verdict){SK_ROUTE_BOUNCE, "5.1.10",
                                  "the domain accepts no mail (null MX, RFC 7505)"};
    case SK_DNS_NXDOMAIN:
        return (sk_route_verdict){SK_ROUTE_BOUNCE, "5.1.2", "the domain does not exist (NXDOMAIN)"};
    case SK_DNS_OK:
        break;
    case SK_DNS_NODATA: /* not returned for MX (implicit MX), but be safe */
        return (sk_route_verdict){SK_ROUTE_BOUNCE, "5.1.2",
                                  "the domain has no MX and no address record"};
    default:
        return (sk_route_verdict){SK_ROUTE_DEFER, "4.4.3",
                                  "the DNS look-up of the MX records failed for now"};
    }
    if (r->n == 0)
        return (sk_route_verdict){SK_ROUTE_BOUNCE, "5.4.6",
                                  "mail for the domain loops back to this server (it is its own "
                                  "best MX)"};
    int temp = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->hosts[i].naddrs)
            return v;
        temp |= temporary(r->hosts[i].addr_status);
    }
    if (temp)
        return (sk_route_verdict){SK_ROUTE_DEFER, "4.4.3",
                                  "the DNS look-up of the MX hosts' addresses failed for now"};
    if (r->implicit)
        return (sk_route_verdict){SK_ROUTE_BOUNCE, "5.1.2",
                                  "the domain has no MX and no address record"};
    return (sk_route_verdict){SK_ROUTE_BOUNCE, "5.4.4", "no MX host of the domain has an address"};
}

/* Family, 16 address octets (IPv4 as ::ffff:a.b.c.d) and port. */
static int norm(const sk_addr *a, unsigned char ip[16], unsigned *port)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
    if (sa->sa_family == AF_INET && a->len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        memcpy(ip, mapped, 12);
        memcpy(ip + 12, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6 && a->len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        memcpy(ip, &s6->sin6_addr, 16);
        *port = ntohs(s6->sin6_port);
        return memcmp(ip, mapped, 12) == 0 ? AF_INET : AF_INET6;
    }
    return 0;
}

static int is_any(int fam, const unsigned char ip[16])
{
    static const unsigned char zero[16] = {0};
    return fam == AF_INET ? memcmp(ip + 12, zero, 4) == 0 : memcmp(ip, zero, 16) == 0;
}

static int is_loopback(int fam, const unsigned char ip[16])
{
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return fam == AF_INET ? ip[12] == 127 : memcmp(ip, one, 16) == 0;
}

int sk_addr_is_self(const sk_addr *a, const sk_addr *listeners, size_t nlisteners,
                    const sk_addr *local, size_t nlocal)
{
    unsigned char ip[16], lip[16];
    unsigned port, lport;
    int fam = norm(a, ip, &port);
    if (!fam)
        return 0;
    int local_ip = is_loopback(fam, ip);
    for (size_t i = 0; i < nlocal && !local_ip; i++) {
        unsigned p;
        unsigned char x[16];
        if (norm(&local[i], x, &p) == fam && memcmp(x, ip, 16) == 0)
            local_ip = 1;
    }
    for (size_t i = 0; i < nlisteners; i++) {
        int lf = norm(&listeners[i], lip, &lport);
        if (lf != fam || lport != port)
            continue;
        if (memcmp(lip, ip, 16) == 0)
            return 1;
        if (is_any(lf, lip) && local_ip)
            return 1;
    }
    return 0;
}

int sk_mx_route_strip_self(sk_mx_route *r, const sk_addr *listeners, size_t nlisteners,
                           const sk_addr *local, size_t nlocal)
{
    for (size_t i = 0; i < r->n; i++) {
        const sk_mx_route_host *h = &r->hosts[i];
        for (size_t k = 0; k < h->naddrs; k++) {
            if (!sk_addr_is_self(&h->addrs[k], listeners, nlisteners, local, nlocal))
                continue;
            /* drop this host and every host not more preferred (the list
             * is sorted, so: the first of its preference onwards) */
            size_t cut = i;
            while (cut > 0 && r->hosts[cut - 1].preference >= h->preference)
                cut--;
            r->n = cut;
            return cut == 0;
        }
    }
    return 0;
}

size_t sk_local_addrs(sk_addr *out, size_t max)
{
    struct ifaddrs *ifa = NULL;
    size_t n = 0;
    if (getifaddrs(&ifa) != 0)
        return 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        socklen_t len = i->ifa_addr->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
                        : i->ifa_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : 0;
        if (len)
            sk_addr_list_add(out, max, &n, i->ifa_addr, len, 0);
    }
    freeifaddrs(ifa);
    return n;
}
