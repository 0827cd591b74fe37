/*
 * proxy_header.c - the PROXY protocol header, versions 1 and 2 (HAProxy's
 * proxy-protocol.txt: 2.1 the text line, 2.2 the binary form with its TLVs,
 * 2.2.1 the TLV walk). Sans I/O, resumable byte by byte; see the header
 * file for the contract.
 *
 * What is refused (each with its reason): bytes that do not start with
 * either signature ("missing"); a v1 line over 107 octets, with a bare CR
 * or LF, a control octet, fields not separated by single spaces, an
 * unknown protocol, an address not of its family in canonical numeric
 * form, a port outside 0..65535 or with leading zeros; a v2 header with a
 * version other than 2, a command other than LOCAL/PROXY, an unknown
 * family or transport, a length too short for the family's address block,
 * or a TLV that runs past the announced length.
 */
#include "core/proxy_header.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

enum { ST_START, ST_V1, ST_V2_HEAD, ST_V2_ADDR, ST_V2_TLV, ST_V2_SKIP, ST_DONE, ST_ERROR };

static const char v1_sig[] = "PROXY ";
static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define V1_MIN 15 /* "PROXY UNKNOWN\r\n", the shortest header of either version */

void sk_proxy_init(sk_proxy_parser *p)
{
    memset(p, 0, sizeof *p);
    p->state = ST_START;
}

static sk_proxy_status refuse(sk_proxy_parser *p, const char *why, int missing)
{
    p->state = ST_ERROR;
    p->error = why;
    p->missing = missing;
    return SK_PROXY_ERROR;
}

static sk_proxy_status finish(sk_proxy_parser *p)
{
    p->state = ST_DONE;
    p->info.header_size = p->have;
    return SK_PROXY_DONE;
}

/* A decimal port: 0..65535, no sign, no leading zero. */
static int parse_port(const char *s, unsigned *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = v;
    return 0;
}

/* The complete v1 line (CRLF included) is in p->buf. */
static sk_proxy_status v1_parse(sk_proxy_parser *p)
{
    char line[SK_PROXY_V1_MAX + 1];
    size_t n = p->have - 2; /* without CRLF */
    memcpy(line, p->buf, n);
    line[n] = '\0';
    char *field[7];
    size_t nf = 0;
    char *s = line;
    for (;;) {
        char *sp = strchr(s, ' ');
        if (nf == 7)
            return refuse(p, "v1: too many fields", 0);
        field[nf++] = s;
        if (!sp)
            break;
        *sp = '\0';
        s = sp + 1;
        if (nf == 2 && !strcmp(field[1], "UNKNOWN"))
            break; /* 2.1: the rest of an UNKNOWN line is ignored */
    }
    p->info.version = 1;
    p->info.transport = 1;
    if (nf >= 2 && !strcmp(field[1], "UNKNOWN")) {
        p->info.local = 1;
        p->info.family = AF_UNSPEC;
        return finish(p);
    }
    for (size_t i = 0; i < nf; i++)
        if (!*field[i])
            return refuse(p, "v1: fields must be separated by single spaces", 0);
    if (nf < 2)
        return refuse(p, "v1: no protocol", 0);
    int fam;
    if (!strcmp(field[1], "TCP4"))
        fam = AF_INET;
    else if (!strcmp(field[1], "TCP6"))
        fam = AF_INET6;
    else
        return refuse(p, "v1: unknown protocol (TCP4, TCP6 or UNKNOWN)", 0);
    if (nf != 6)
        return refuse(p, "v1: TCP4/TCP6 need source, destination and two ports", 0);
    if (inet_pton(fam, field[2], p->info.src) != 1 || inet_pton(fam, field[3], p->info.dst) != 1)
        return refuse(p, "v1: address not of the protocol's family", 0);
    if (parse_port(field[4], &p->info.src_port) != 0 ||
        parse_port(field[5], &p->info.dst_port) != 0)
        return refuse(p, "v1: bad port (0..65535, no leading zeros)", 0);
    p->info.family = fam;
    return finish(p);
}

static sk_proxy_status v1_byte(sk_proxy_parser *p, unsigned char ch)
{
    size_t i = p->have; /* index of ch */
    if (i < sizeof v1_sig - 1) {
        if (ch != (unsigned char)v1_sig[i])
            return refuse(p, "no PROXY header", 1);
    } else if (i > 0 && p->buf[i - 1] == '\r' && ch != '\n') {
        return refuse(p, "v1: CR not followed by LF", 0);
    } else if (ch == '\n' && p->buf[i - 1] != '\r') {
        return refuse(p, "v1: LF without CR", 0);
    } else if ((ch < 0x20 && ch != '\r' && ch != '\n') || ch >= 0x7f) {
        return refuse(p, "v1: control or non-ASCII octet", 0);
    }
    p->buf[p->have++] = ch;
    if (ch == '\n')
        return v1_parse(p);
    if (p->have >= SK_PROXY_V1_MAX)
        return refuse(p, "v1: no CRLF within 107 octets", 0);
    return SK_PROXY_MORE;
}

/* The 16 fixed octets are in p->buf. */
static sk_proxy_status v2_head(sk_proxy_parser *p)
{
    unsigned ver = p->buf[12] >> 4, cmd = p->buf[12] & 0x0f;
    unsigned fam = p->buf[13] >> 4, proto = p->buf[13] & 0x0f;
    size_t len = (size_t)p->buf[14] << 8 | p->buf[15];
    if (ver != 2)
        return refuse(p, "v2: unsupported version", 0);
    if (cmd > 1)
        return refuse(p, "v2: unknown command", 0);
    if (fam > 3)
        return refuse(p, "v2: unknown address family", 0);
    if (proto > 2)
        return refuse(p, "v2: unknown transport protocol", 0);
    static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX};
    static const size_t block[] = {0, 12, 36, 216};
    p->info.version = 2;
    p->info.family = families[fam];
    p->info.transport = (int)proto;
    p->total = SK_PROXY_V2_HEAD + len;
    if (cmd == 0 || fam == 0) {
        /* LOCAL: the proxy speaking for itself; UNSPEC: unknown origin.
         * Either way the block is skipped and the connection's own
         * addresses apply (2.2). */
        p->info.local = 1;
        p->state = ST_V2_SKIP;
    } else {
        if (len < block[fam])
            return refuse(p, "v2: length too short for the address family", 0);
        p->addr_len = block[fam];
        p->info.local = fam == 3; /* a UNIX socket path is no client address */
        p->state = ST_V2_ADDR;
    }
    return p->have == p->total ? finish(p) : SK_PROXY_MORE;
}

static void v2_addresses(sk_proxy_parser *p)
{
    const unsigned char *b = p->buf + SK_PROXY_V2_HEAD;
    size_t alen = p->info.family == AF_INET ? 4 : p->info.family == AF_INET6 ? 16 : 0;
    if (!alen)
        return;
    memcpy(p->info.src, b, alen);
    memcpy(p->info.dst, b + alen, alen);
    p->info.src_port = (unsigned)b[2 * alen] << 8 | b[2 * alen + 1];
    p->info.dst_port = (unsigned)b[2 * alen + 2] << 8 | b[2 * alen + 3];
}

sk_proxy_status sk_proxy_feed(sk_proxy_parser *p, const void *data, size_t len, size_t *consumed)
{
    const unsigned char *d = data;
    size_t i = 0;
    sk_proxy_status st = p->state == ST_DONE    ? SK_PROXY_DONE
                         : p->state == ST_ERROR ? SK_PROXY_ERROR
                                                : SK_PROXY_MORE;
    while (st == SK_PROXY_MORE && i < len) {
        switch (p->state) {
        case ST_START:
            if (d[i] == 'P')
                p->state = ST_V1;
            else if (d[i] == v2_sig[0])
                p->state = ST_V2_HEAD;
            else {
                st = refuse(p, "no PROXY header", 1);
                break;
            }
            continue; /* the same octet, in its version's state */
        case ST_V1:
            st = v1_byte(p, d[i++]);
            break;
        case ST_V2_HEAD:
            if (p->have < sizeof v2_sig && d[i] != v2_sig[p->have]) {
                st = refuse(p, "no PROXY header", 1);
                break;
            }
            p->buf[p->have++] = d[i++];
            if (p->have == SK_PROXY_V2_HEAD)
                st = v2_head(p);
            break;
        case ST_V2_ADDR:
            p->buf[p->have++] = d[i++];
            if (p->have == SK_PROXY_V2_HEAD + p->addr_len) {
                v2_addresses(p);
                if (p->have == p->total)
                    st = finish(p);
                else
                    p->state = ST_V2_TLV;
            }
            break;
        case ST_V2_TLV:
            if (p->tlv_left) {
                size_t n = len - i < p->tlv_left ? len - i : p->tlv_left;
                p->tlv_left -= n;
                p->have += n;
                i += n;
            } else {
                p->tlv_head[p->tlv_head_have++] = d[i++];
                p->have++;
                if (p->tlv_head_have == 3) {
                    p->tlv_head_have = 0;
                    p->info.ntlv++;
                    p->tlv_left = (size_t)p->tlv_head[1] << 8 | p->tlv_head[2];
                    if (p->have + p->tlv_left > p->total) {
                        st = refuse(p, "v2: a TLV runs past the header's length", 0);
                        break;
                    }
                }
            }
            if (p->have == p->total) {
                if (p->tlv_head_have)
                    st = refuse(p, "v2: a TLV is cut short by the header's length", 0);
                else
                    st = finish(p);
            }
            break;
        case ST_V2_SKIP: {
            size_t n = len - i < p->total - p->have ? len - i : p->total - p->have;
            p->have += n;
            i += n;
            if (p->have == p->total)
                st = finish(p);
            break;
        }
        default:
            st = SK_PROXY_ERROR;
            break;
        }
    }
    if (consumed)
        *consumed = i;
    return st;
}

size_t sk_proxy_want(const sk_proxy_parser *p)
{
    switch (p->state) {
    case ST_START:
        return V1_MIN;
    case ST_V1: {
        if (p->have < V1_MIN)
            return V1_MIN - p->have;
        size_t w = p->buf[p->have - 1] == '\r' ? 1 : 2;
        size_t room = SK_PROXY_V1_MAX - p->have;
        return w < room ? w : room;
    }
    case ST_V2_HEAD:
        return SK_PROXY_V2_HEAD - p->have;
    case ST_V2_ADDR:
    case ST_V2_TLV:
    case ST_V2_SKIP:
        return p->total - p->have;
    default:
        return 0;
    }
}

const sk_proxy_info *sk_proxy_result(const sk_proxy_parser *p)
{
    return p->state == ST_DONE ? &p->info : NULL;
}

const char *sk_proxy_error(const sk_proxy_parser *p)
{
    return p->state == ST_ERROR ? p->error : NULL;
}

int sk_proxy_error_is_missing(const sk_proxy_parser *p)
{
    return p->state == ST_ERROR && p->missing;
}
