/*
 * cidr.c - CIDR network parsing and matching for trusted networks
 * (RFC 4632 notation for IPv4, RFC 4291 2.3 for IPv6).
 */
#include "server/cidr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Parse a numeric address; IPv4-mapped IPv6 becomes IPv4. */
static int parse_addr(const char *s, int *family, unsigned char out[16])
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, s, buf) == 1) {
        *family = AF_INET;
        memcpy(out, buf, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, s, buf) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(buf, mapped, 12)) {
            *family = AF_INET;
            memcpy(out, buf + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(out, buf, 16);
        }
        return 0;
    }
    return -1;
}

/* 1 if the first `prefix` bits of a and b are equal. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full))
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

int sk_cidr_parse(const char *s, sk_cidr *out, const char **why)
{
    char tmp[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof tmp) {
        *why = "not a network address";
        return -1;
    }
    memcpy(tmp, s, n + 1);
    char *slash = strchr(tmp, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        const char *digits = slash + 1;
        if (*digits < '0' || *digits > '9') {
            *why = "the prefix length after '/' must be a number";
            return -1;
        }
        prefix = strtol(digits, &end, 10);
        if (*end || prefix > 128) {
            *why = "the prefix length after '/' must be a number";
            return -1;
        }
    }
    memset(out, 0, sizeof *out);
    unsigned char buf[16];
    if (inet_pton(AF_INET, tmp, buf) == 1) {
        out->family = AF_INET;
        memcpy(out->addr, buf, 4);
        if (prefix > 32) {
            *why = "an IPv4 prefix length is at most 32";
            return -1;
        }
        out->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, tmp, buf) == 1) {
        out->family = AF_INET6;
        memcpy(out->addr, buf, 16);
        out->prefix = prefix < 0 ? 128 : (unsigned)prefix;
    } else {
        *why = "not a numeric IPv4 or IPv6 address";
        return -1;
    }
    /* host bits must be zero */
    unsigned char zero[16] = {0};
    unsigned char host[16];
    unsigned bits = out->family == AF_INET ? 32 : 128;
    memcpy(host, out->addr, 16);
    for (unsigned i = 0; i < out->prefix; i++)
        host[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
    if (!prefix_equal(host, zero, bits)) {
        *why = "address has bits set after the prefix length (did you mean the network "
               "address?)";
        return -1;
    }
    return 0;
}

int sk_cidr_match(const sk_cidr *net, const char *addr)
{
    int family;
    unsigned char a[16] = {0};
    if (parse_addr(addr, &family, a) != 0 || family != net->family)
        return 0;
    return prefix_equal(a, net->addr, net->prefix);
}
