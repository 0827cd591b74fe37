/*
 * cidr.h - IPv4 and IPv6 networks in CIDR notation ("192.0.2.0/24",
 * "2001:db8::/32", a bare address meaning one host), and matching a
 * numeric address against them. IPv4-mapped IPv6 addresses
 * (::ffff:192.0.2.1, RFC 4291 2.5.5.2) match IPv4 networks.
 */
#ifndef SMTPKIT_SERVER_CIDR_H
#define SMTPKIT_SERVER_CIDR_H

typedef struct sk_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address, host bits cleared */
    unsigned prefix;        /* 0..32 or 0..128 */
} sk_cidr;

/* Parse `s`. 0, or -1 with a static reason in *why. Host bits set below the
 * prefix ("192.0.2.1/24") are refused: it is usually a typo. */
int sk_cidr_parse(const char *s, sk_cidr *out, const char **why);

/* 1 if numeric address `addr` lies in `net`. */
int sk_cidr_match(const sk_cidr *net, const char *addr);

#endif
