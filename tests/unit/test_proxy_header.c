/*
 * test_proxy_header.c - the PROXY protocol parser (HAProxy's
 * proxy-protocol.txt 2.1, 2.2): v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL with
 * every family, TLVs skipped, any split of the input, never a byte past
 * the header consumed, and every malformed form refused with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <sys/socket.h>

#include "core/proxy_header.h"

/* Parse buf in one call, and again one octet at a time and in two halves
 * at every split point (reading only what sk_proxy_want() allows): all
 * must agree. Returns the status; *info and *consumed from the one-call
 * run. */
static sk_proxy_status parse_all(const void *buf, size_t len, sk_proxy_info *info, size_t *consumed,
                                 const char **why)
{
    sk_proxy_parser p;
    sk_proxy_init(&p);
    size_t used = 0;
    sk_proxy_status st = sk_proxy_feed(&p, buf, len, &used);
    if (info && sk_proxy_result(&p))
        *info = *sk_proxy_result(&p);
    if (consumed)
        *consumed = used;
    if (why)
        *why = sk_proxy_error(&p);
    assert_true(used <= len);

    /* octet by octet */
    sk_proxy_parser q;
    sk_proxy_init(&q);
    size_t off = 0;
    sk_proxy_status sq = SK_PROXY_MORE;
    while (sq == SK_PROXY_MORE && off < len) {
        size_t u = 0;
        sq = sk_proxy_feed(&q, (const char *)buf + off, 1, &u);
        off += u;
        if (sq == SK_PROXY_MORE)
            assert_int_equal(u, 1);
    }
    assert_int_equal(sq, st);
    if (st == SK_PROXY_DONE) {
        assert_int_equal(off, used);
        assert_memory_equal(sk_proxy_result(&q), sk_proxy_result(&p), sizeof(sk_proxy_info));
    }

    /* as a shell reads: never more than sk_proxy_want() at a time */
    sk_proxy_parser r;
    sk_proxy_init(&r);
    off = 0;
    sk_proxy_status sr = SK_PROXY_MORE;
    while (sr == SK_PROXY_MORE && off < len) {
        size_t w = sk_proxy_want(&r);
        assert_true(w >= 1);
        if (w > len - off)
            w = len - off;
        size_t u = 0;
        sr = sk_proxy_feed(&r, (const char *)buf + off, w, &u);
        if (sr == SK_PROXY_DONE)
            assert_int_equal(u, w); /* want never overruns a valid header */
        off += u;
    }
    assert_int_equal(sr, st);
    if (st == SK_PROXY_DONE)
        assert_int_equal(off, used);
    return st;
}

static void expect_error(const void *buf, size_t len, const char *reason_part, int missing)
{
    const char *why = NULL;
    assert_int_equal(parse_all(buf, len, NULL, NULL, &why), SK_PROXY_ERROR);
    assert_non_null(why);
    if (!strstr(why, reason_part))
        fail_msg("reason \"%s\" does not mention \"%s\"", why, reason_part);
    sk_proxy_parser p;
    sk_proxy_init(&p);
    sk_proxy_feed(&p, buf, len, NULL);
    assert_int_equal(sk_proxy_error_is_missing(&p), missing);
}

static void expect_more(const void *buf, size_t len)
{
    assert_int_equal(parse_all(buf, len, NULL, NULL, NULL), SK_PROXY_MORE);
}

/* ---- v1 ---------------------------------------------------------------- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 192.0.2.5 198.51.100.1 56324 25\r\nEHLO x\r\n";
    sk_proxy_info in;
    size_t used;
    assert_int_equal(parse_all(h, strlen(h), &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, strlen(h) - strlen("EHLO x\r\n"));
    assert_int_equal(in.version, 1);
    assert_int_equal(in.local, 0);
    assert_int_equal(in.family, AF_INET);
    assert_memory_equal(in.src, "\xc0\x00\x02\x05", 4);
    assert_memory_equal(in.dst, "\xc6\x33\x64\x01", 4);
    assert_int_equal(in.src_port, 56324);
    assert_int_equal(in.dst_port, 25);
    assert_int_equal(in.header_size, used);
}

static void test_v1_tcp6_and_ports(void **state)
{
    (void)state;
    const char *h = "PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 65535\r\n";
    sk_proxy_info in;
    assert_int_equal(parse_all(h, strlen(h), &in, NULL, NULL), SK_PROXY_DONE);
    assert_int_equal(in.family, AF_INET6);
    unsigned char want[16];
    inet_pton(AF_INET6, "2001:db8::1", want);
    assert_memory_equal(in.src, want, 16);
    assert_int_equal(in.src_port, 0);
    assert_int_equal(in.dst_port, 65535);
}

static void test_v1_unknown(void **state)
{
    (void)state;
    sk_proxy_info in;
    size_t used;
    const char *h = "PROXY UNKNOWN\r\n";
    assert_int_equal(parse_all(h, strlen(h), &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, 15);
    assert_int_equal(in.local, 1);
    assert_int_equal(in.family, AF_UNSPEC);
    /* 2.1: whatever follows UNKNOWN on the line is ignored */
    h = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse_all(h, strlen(h), &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, strlen(h));
    assert_int_equal(in.local, 1);
}

static void test_v1_longest_accepted(void **state)
{
    (void)state;
    /* the worst case of 2.1: 107 octets exactly */
    const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(h), 104);
    assert_int_equal(parse_all(h, strlen(h), NULL, NULL, NULL), SK_PROXY_DONE);
    char u[SK_PROXY_V1_MAX + 1];
    memset(u, 'x', sizeof u);
    memcpy(u, "PROXY UNKNOWN ", 14);
    memcpy(u + SK_PROXY_V1_MAX - 2, "\r\n", 2);
    assert_int_equal(parse_all(u, SK_PROXY_V1_MAX, NULL, NULL, NULL), SK_PROXY_DONE);
}

static void test_v1_too_long(void **state)
{
    (void)state;
    char u[200];
    memset(u, 'x', sizeof u);
    memcpy(u, "PROXY UNKNOWN ", 14);
    memcpy(u + SK_PROXY_V1_MAX - 1, "\r\n", 2); /* CRLF ends at octet 108 */
    expect_error(u, SK_PROXY_V1_MAX + 1, "107", 0);
    expect_error(u, sizeof u, "107", 0);
    /* 106 octets without CRLF: still waiting */
    expect_more(u, SK_PROXY_V1_MAX - 1);
}

static void test_v1_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *h, *why;
    } bad[] = {
        {"PROXY TCP4 192.0.2.5 198.51.100.1 56324 25\n", "LF without CR"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 56324 25\rX", "CR not followed by LF"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 56324\t25\r\n", "control"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 56324 2\xc3\xa9\r\n", "control"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 56324 65536\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 056324 25\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 -1 25\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 +1 25\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 1x 25\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 99999 25\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 123456 25\r\n", "bad port"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1  25\r\n", "single spaces"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 1 25 \r\n", "single spaces"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 1 25 7 8\r\n", "too many"},
        {"PROXY TCP4 192.0.2.5 198.51.100.1 25\r\n", "two ports"},
        {"PROXY TCP4 2001:db8::1 2001:db8::2 1 25\r\n", "family"},
        {"PROXY TCP6 192.0.2.5 198.51.100.1 1 25\r\n", "family"},
        {"PROXY TCP4 192.0.2.256 198.51.100.1 1 25\r\n", "family"},
        {"PROXY TCP4 192.000.2.5 198.51.100.1 1 25\r\n", "family"},
        {"PROXY TCP4 example.org 198.51.100.1 1 25\r\n", "family"},
        {"PROXY UDP4 192.0.2.5 198.51.100.1 1 25\r\n", "unknown protocol"},
        {"PROXY tcp4 192.0.2.5 198.51.100.1 1 25\r\n", "unknown protocol"},
        {"PROXY UNKNOWNX\r\n", "unknown protocol"},
        {"PROXY \r\n", "single spaces"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(bad[i].h, strlen(bad[i].h), bad[i].why, 0);
}

static void test_missing(void **state)
{
    (void)state;
    expect_error("EHLO client.example\r\n", 21, "no PROXY header", 1);
    expect_error("PROXZ TCP4", 10, "no PROXY header", 1);
    expect_error("proxy TCP4", 10, "no PROXY header", 1);
    expect_error("PROXY\r\n", 7, "no PROXY header", 1);
    expect_error("\x16\x03\x01\x02\x00", 5, "no PROXY header", 1); /* a TLS ClientHello */
    expect_error("\r\n\r\n\x00\r\nQUIX\n", 12, "no PROXY header", 1);
    expect_error("\r\nQUIT\r\n", 8, "no PROXY header", 1);
    /* a prefix of either signature is not yet an error */
    expect_more("PROX", 4);
    expect_more("\r\n\r\n\x00\r\nQU", 9);
    expect_more("", 0);
}

/* ---- v2 ---------------------------------------------------------------- */

static size_t v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam, const void *body,
                 size_t body_len, size_t announced)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (unsigned char)(announced >> 8);
    out[15] = (unsigned char)announced;
    if (body_len)
        memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

static const unsigned char inet_block[12] = {192, 0, 2, 5, 198, 51, 100, 1, 0xdc, 0x04, 0, 25};

static void test_v2_proxy_inet(void **state)
{
    (void)state;
    unsigned char b[64];
    size_t n = v2(b, 0x21, 0x11, inet_block, 12, 12);
    memcpy(b + n, "EHLO", 4);
    sk_proxy_info in;
    size_t used;
    assert_int_equal(parse_all(b, n + 4, &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, 28);
    assert_int_equal(in.version, 2);
    assert_int_equal(in.local, 0);
    assert_int_equal(in.family, AF_INET);
    assert_int_equal(in.transport, 1);
    assert_memory_equal(in.src, "\xc0\x00\x02\x05", 4);
    assert_int_equal(in.src_port, 56324);
    assert_int_equal(in.dst_port, 25);
}

static void test_v2_proxy_inet6(void **state)
{
    (void)state;
    unsigned char body[36] = {0};
    inet_pton(AF_INET6, "2001:db8::7", body);
    inet_pton(AF_INET6, "2001:db8::25", body + 16);
    body[32] = 0x30;
    body[33] = 0x39; /* 12345 */
    body[35] = 25;
    unsigned char b[64];
    size_t n = v2(b, 0x21, 0x21, body, 36, 36);
    sk_proxy_info in;
    assert_int_equal(parse_all(b, n, &in, NULL, NULL), SK_PROXY_DONE);
    assert_int_equal(in.family, AF_INET6);
    assert_memory_equal(in.src, body, 16);
    assert_int_equal(in.src_port, 12345);
}

static void test_v2_tlvs_skipped(void **state)
{
    (void)state;
    /* ALPN "smtp", AUTHORITY, a NOOP of 0 octets, a 300-octet unique id */
    unsigned char body[12 + 7 + 3 + 14 + 3 + 300 + 3];
    size_t k = 0;
    memcpy(body, inet_block, 12);
    k = 12;
    memcpy(body + k, "\x01\x00\x04smtp", 7);
    k += 7;
    memcpy(body + k, "\x02\x00\x0b", 3);
    memcpy(body + k + 3, "example.org", 11);
    k += 14;
    memcpy(body + k, "\x04\x00\x00", 3);
    k += 3;
    body[k] = 0x05;
    body[k + 1] = 300 >> 8;
    body[k + 2] = 300 & 0xff;
    memset(body + k + 3, 'u', 300);
    k += 303;
    unsigned char b[16 + sizeof body + 8];
    size_t n = v2(b, 0x21, 0x11, body, k, k);
    memcpy(b + n, "QUIT\r\n", 6);
    sk_proxy_info in;
    size_t used;
    assert_int_equal(parse_all(b, n + 6, &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, n);
    assert_int_equal(in.ntlv, 4);
    assert_memory_equal(in.src, "\xc0\x00\x02\x05", 4);
}

static void test_v2_local_and_unspec(void **state)
{
    (void)state;
    unsigned char b[64];
    sk_proxy_info in;
    size_t used;
    /* LOCAL (a health check): no block, connection addresses apply */
    size_t n = v2(b, 0x20, 0x00, NULL, 0, 0);
    assert_int_equal(parse_all(b, n, &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, 16);
    assert_int_equal(in.local, 1);
    /* LOCAL with an INET block: the block is skipped, still local */
    n = v2(b, 0x20, 0x11, inet_block, 12, 12);
    assert_int_equal(parse_all(b, n, &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, 28);
    assert_int_equal(in.local, 1);
    /* PROXY with UNSPEC family: anything in the block is ignored */
    n = v2(b, 0x21, 0x00, "abc", 3, 3);
    assert_int_equal(parse_all(b, n, &in, &used, NULL), SK_PROXY_DONE);
    assert_int_equal(used, 19);
    assert_int_equal(in.local, 1);
    assert_int_equal(in.family, AF_UNSPEC);
}

static void test_v2_unix(void **state)
{
    (void)state;
    unsigned char body[216] = {0};
    memcpy(body, "/run/client.sock", 16);
    unsigned char b[16 + 216];
    size_t n = v2(b, 0x21, 0x31, body, 216, 216);
    sk_proxy_info in;
    assert_int_equal(parse_all(b, n, &in, NULL, NULL), SK_PROXY_DONE);
    assert_int_equal(in.family, AF_UNIX);
    assert_int_equal(in.local, 1);
    n = v2(b, 0x21, 0x31, body, 100, 100);
    expect_error(b, n, "too short", 0);
}

static void test_v2_malformed(void **state)
{
    (void)state;
    unsigned char b[64];
    size_t n;
    n = v2(b, 0x11, 0x11, inet_block, 12, 12);
    expect_error(b, n, "version", 0);
    n = v2(b, 0x31, 0x11, inet_block, 12, 12);
    expect_error(b, n, "version", 0);
    n = v2(b, 0x22, 0x11, inet_block, 12, 12);
    expect_error(b, n, "command", 0);
    n = v2(b, 0x2f, 0x11, inet_block, 12, 12);
    expect_error(b, n, "command", 0);
    n = v2(b, 0x21, 0x41, inet_block, 12, 12);
    expect_error(b, n, "family", 0);
    n = v2(b, 0x21, 0x13, inet_block, 12, 12);
    expect_error(b, n, "transport", 0);
    /* length shorter than the family's address block */
    n = v2(b, 0x21, 0x11, inet_block, 11, 11);
    expect_error(b, n, "too short", 0);
    n = v2(b, 0x21, 0x21, inet_block, 12, 12);
    expect_error(b, n, "too short", 0);
    /* a TLV longer than what is left of the header */
    unsigned char body[12 + 3 + 2];
    memcpy(body, inet_block, 12);
    memcpy(body + 12, "\x01\x00\x05xx", 5);
    n = v2(b, 0x21, 0x11, body, 17, 17);
    expect_error(b, n, "runs past", 0);
    /* length ending inside a TLV's type/length */
    memcpy(body + 12, "\x01\x00", 2);
    n = v2(b, 0x21, 0x11, body, 14, 14);
    expect_error(b, n, "cut short", 0);
    /* TLV length 0xffff: refused at once, without waiting for 64 KiB */
    memcpy(body + 12, "\x01\xff\xff", 3);
    n = v2(b, 0x21, 0x11, body, 15, 20);
    expect_error(b, n, "runs past", 0);
}

static void test_v2_waits_for_announced_length(void **state)
{
    (void)state;
    /* length 65535 (the maximum): the parser waits for it all, keeping
     * no more than the address block, and want() says exactly how much */
    unsigned char b[32];
    size_t n = v2(b, 0x21, 0x11, inet_block, 12, 0xffff);
    sk_proxy_parser p;
    sk_proxy_init(&p);
    size_t used;
    assert_int_equal(sk_proxy_feed(&p, b, n, &used), SK_PROXY_MORE);
    assert_int_equal(used, n);
    /* a NOOP TLV covering the rest */
    size_t rest = 0xffff - 12 - 3;
    unsigned char tlv[3] = {0x04, (unsigned char)(rest >> 8), (unsigned char)rest};
    assert_int_equal(sk_proxy_feed(&p, tlv, 3, &used), SK_PROXY_MORE);
    assert_int_equal(sk_proxy_want(&p), rest);
    static unsigned char zeros[70000];
    assert_int_equal(sk_proxy_feed(&p, zeros, sizeof zeros, &used), SK_PROXY_DONE);
    assert_int_equal(used, rest);
    assert_int_equal(sk_proxy_result(&p)->header_size, 16 + 0xffff);
    /* after DONE nothing more is consumed */
    assert_int_equal(sk_proxy_feed(&p, zeros, 10, &used), SK_PROXY_DONE);
    assert_int_equal(used, 0);
    assert_int_equal(sk_proxy_want(&p), 0);
}

static void test_want_v1(void **state)
{
    (void)state;
    sk_proxy_parser p;
    sk_proxy_init(&p);
    assert_int_equal(sk_proxy_want(&p), 15);
    size_t used;
    assert_int_equal(sk_proxy_feed(&p, "PROXY UNKNOWN", 13, &used), SK_PROXY_MORE);
    assert_int_equal(sk_proxy_want(&p), 2);
    assert_int_equal(sk_proxy_feed(&p, "\r", 1, &used), SK_PROXY_MORE);
    assert_int_equal(sk_proxy_want(&p), 1);
    assert_int_equal(sk_proxy_feed(&p, "\nEHLO", 5, &used), SK_PROXY_DONE);
    assert_int_equal(used, 1);
    assert_null(sk_proxy_error(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6_and_ports),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_longest_accepted),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_v2_proxy_inet),
        cmocka_unit_test(test_v2_proxy_inet6),
        cmocka_unit_test(test_v2_tlvs_skipped),
        cmocka_unit_test(test_v2_local_and_unspec),
        cmocka_unit_test(test_v2_unix),
        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_v2_waits_for_announced_length),
        cmocka_unit_test(test_want_v1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
