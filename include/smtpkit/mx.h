/*
 * mx.h - where to deliver mail for a domain (RFC 5321 5.1), with c-ares.
 *
 * MX records sorted by preference (lowest first). Hosts of equal preference
 * keep a stable order (by name) unless SK_MX_SHUFFLE is given, in which case
 * they are shuffled as RFC 5321 5.1 asks of senders. No MX record at all
 * (the name exists, no MX data) means the domain itself is the one host
 * (the "implicit MX"). A single MX "." of preference 0 is a null MX
 * (RFC 7505): the domain accepts no mail.
 */
#ifndef SMTPKIT_MX_H
#define SMTPKIT_MX_H

#include <stddef.h>
#include <sys/socket.h>

typedef enum sk_dns_status {
    SK_DNS_OK = 0,
    SK_DNS_NXDOMAIN, /* the name does not exist */
    SK_DNS_NODATA,   /* the name exists but has no record of that type */
    SK_DNS_SERVFAIL, /* the server failed or refused */
    SK_DNS_TIMEOUT,  /* no answer in time */
    SK_DNS_NULLMX,   /* RFC 7505 null MX: accepts no mail */
    SK_DNS_ERROR,    /* anything else (bad name, no memory, bad reply...) */
} sk_dns_status;

typedef struct sk_mx_host {
    char name[256];
    int preference; /* -1 for the implicit MX (A/AAAA fallback) */
} sk_mx_host;

#define SK_MX_MAX 32
#define SK_ADDRS_MAX 16

typedef struct sk_mx_list {
    size_t n;
    sk_mx_host hosts[SK_MX_MAX];
    int implicit; /* no MX record: the domain itself (hosts[0]) */
} sk_mx_list;

typedef struct sk_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* "192.0.2.1" or "2001:db8::1" */
} sk_addr;

typedef struct sk_resolver sk_resolver;

#define SK_MX_SHUFFLE 0x1

/* A resolver. `servers` is NULL (system configuration) or a list
 * "IP[:PORT][,IP[:PORT]...]" ("[::1]:5353" for IPv6 with a port).
 * timeout_ms <= 0 means 5000 per try. NULL with err filled on failure. */
sk_resolver *sk_resolver_new(const char *servers, int timeout_ms, char *err, size_t errlen);
void sk_resolver_free(sk_resolver *r);

/* MX hosts of `domain`. On SK_DNS_NODATA for MX the list holds the implicit
 * MX (the domain itself, preference -1, implicit = 1) and SK_DNS_OK is
 * returned. */
sk_dns_status sk_mx_resolve(sk_resolver *r, const char *domain, int flags, sk_mx_list *out);
/* A and AAAA addresses of `host`, in the order the resolver gives them,
 * duplicates removed; `port` is put into each. An IP literal is returned
 * as it is, without a query. */
sk_dns_status sk_host_resolve(sk_resolver *r, const char *host, int port, sk_addr *out, size_t max,
                              size_t *n);

/* Addresses of `host` through the system resolver (getaddrinfo: honours
 * /etc/hosts and nsswitch). NXDOMAIN-like failures map to SK_DNS_NXDOMAIN,
 * temporary ones to SK_DNS_SERVFAIL. */
sk_dns_status sk_system_resolve(const char *host, int port, sk_addr *out, size_t max, size_t *n);

/* Plain words: "the domain does not exist (NXDOMAIN)". */
const char *sk_dns_status_text(sk_dns_status s);

#endif
