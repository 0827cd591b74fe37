/*
 * target.c - pieces the command-line tools share: parsing HOST[:PORT]
 * targets (RFC 3986 3.2.2 bracket form for IPv6) and mapping client errors
 * to exit statuses.
 */
#include "smtpkit/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, int *port)
{
    if (!*s || strlen(s) > 5)
        return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int sk_target_parse(const char *s, char *host, size_t hostlen, int *port)
{
    *port = -1;
    size_t n = strlen(s);
    const char *hb, *he;
    if (n && s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb)
            return -1;
        hb = s + 1;
        he = rb;
        if (rb[1] == ':') {
            if (parse_port(rb + 2, port) < 0)
                return -1;
        } else if (rb[1] != '\0') {
            return -1;
        }
    } else {
        const char *c1 = strchr(s, ':');
        const char *cl = strrchr(s, ':');
        hb = s;
        if (c1 && c1 == cl) { /* one colon: host:port */
            he = c1;
            if (parse_port(c1 + 1, port) < 0)
                return -1;
        } else {
            he = s + n; /* no colon, or an IPv6 literal without a port */
        }
    }
    size_t hl = (size_t)(he - hb);
    if (hl == 0 || hl >= hostlen)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)hb[i] <= 0x20 || hb[i] == '/' || hb[i] == '[' || hb[i] == ']')
            return -1;
    memcpy(host, hb, hl);
    host[hl] = '\0';
    return 0;
}

int sk_client_exit_status(sk_client_err e)
{
    switch (e) {
    case SK_CLIENT_OK:
        return SK_EXIT_OK;
    case SK_CLIENT_ERR_USAGE:
        return SK_EXIT_USAGE;
    case SK_CLIENT_ERR_DNS:
        return SK_EXIT_DNS;
    case SK_CLIENT_ERR_CONNECT:
    case SK_CLIENT_ERR_TIMEOUT:
    case SK_CLIENT_ERR_CLOSED:
        return SK_EXIT_CONNECT;
    case SK_CLIENT_ERR_TLS:
        return SK_EXIT_TLS;
    case SK_CLIENT_ERR_PROTOCOL:
        return SK_EXIT_PROTOCOL;
    case SK_CLIENT_ERR_REFUSED:
    case SK_CLIENT_ERR_NOMEM:
        break;
    }
    return SK_EXIT_REFUSED;
}

int sk_is_ip_literal(const char *s)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}
