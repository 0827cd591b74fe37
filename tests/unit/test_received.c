/*
 * test_received.c - Return-Path and Received headers (RFC 5321 4.4),
 * RFC 5322 dates and the protocol names (RFC 3848, RFC 6531).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/received.h"

static void test_protocol_names(void **state)
{
    (void)state;
    assert_string_equal(sk_received_protocol(0, 0, 0, 0), "SMTP");
    assert_string_equal(sk_received_protocol(0, 1, 1, 1), "SMTP");
    assert_string_equal(sk_received_protocol(1, 0, 0, 0), "ESMTP");
    assert_string_equal(sk_received_protocol(1, 1, 0, 0), "ESMTPS");
    assert_string_equal(sk_received_protocol(1, 0, 1, 0), "ESMTPA");
    assert_string_equal(sk_received_protocol(1, 1, 1, 0), "ESMTPSA");
    assert_string_equal(sk_received_protocol(1, 0, 0, 1), "UTF8SMTP");
    assert_string_equal(sk_received_protocol(1, 1, 0, 1), "UTF8SMTPS");
    assert_string_equal(sk_received_protocol(1, 0, 1, 1), "UTF8SMTPA");
    assert_string_equal(sk_received_protocol(1, 1, 1, 1), "UTF8SMTPSA");
}

static void test_dates(void **state)
{
    (void)state;
    char buf[64];
    setenv("TZ", "UTC0", 1);
    tzset();
    assert_int_equal(sk_rfc5322_date(buf, sizeof buf, 0), 0);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_int_equal(sk_rfc5322_date(buf, sizeof buf, 1709251199), 0);
    assert_string_equal(buf, "Thu, 29 Feb 2024 23:59:59 +0000");
    setenv("TZ", "IST-5:30", 1);
    tzset();
    assert_int_equal(sk_rfc5322_date(buf, sizeof buf, 0), 0);
    assert_string_equal(buf, "Thu, 01 Jan 1970 05:30:00 +0530");
    setenv("TZ", "NST3:30", 1);
    tzset();
    assert_int_equal(sk_rfc5322_date(buf, sizeof buf, 0), 0);
    assert_string_equal(buf, "Wed, 31 Dec 1969 20:30:00 -0330");
    assert_int_equal(sk_rfc5322_date(buf, 10, 0), -1);
    setenv("TZ", "UTC0", 1);
    tzset();
}

static char *build(const sk_received_info *ri)
{
    sk_buf b;
    sk_buf_init(&b, 4096);
    assert_int_equal(sk_received_write(&b, ri), 0);
    return b.data;
}

static void test_headers(void **state)
{
    (void)state;
    setenv("TZ", "UTC0", 1);
    tzset();
    sk_received_info ri = {
        .hostname = "mx.example.com",
        .helo = "client.example.org",
        .peer_addr = "192.0.2.7",
        .peer_rdns = "host.example.org",
        .protocol = "ESMTPS",
        .tls_version = "TLSv1.3",
        .tls_cipher = "TLS_AES_256_GCM_SHA384",
        .id = "ABC123",
        .rcpt = "b@example.com",
        .mail_from = "a@example.org",
        .now = 0,
    };
    char *h = build(&ri);
    assert_string_equal(h, "Return-Path: <a@example.org>\r\n"
                           "Received: from client.example.org (host.example.org [192.0.2.7])\r\n"
                           "\tby mx.example.com (smtpkit) with ESMTPS (TLSv1.3 "
                           "TLS_AES_256_GCM_SHA384) id ABC123\r\n"
                           "\tfor <b@example.com>;\r\n"
                           "\tThu, 01 Jan 1970 00:00:00 +0000\r\n");
    free(h);

    /* HELO that is not a domain, no rdns, IPv6 peer, null sender, several
     * recipients, no TLS */
    sk_received_info r2 = {
        .hostname = "mx.example.com",
        .helo = "my_pc(x)",
        .peer_addr = "2001:db8::1",
        .protocol = "SMTP",
        .id = "ID 1",
        .mail_from = "",
        .now = 0,
    };
    h = build(&r2);
    assert_string_equal(h, "Return-Path: <>\r\n"
                           "Received: from [IPv6:2001:db8::1] ([IPv6:2001:db8::1]) "
                           "(helo=my_pc?x?)\r\n"
                           "\tby mx.example.com (smtpkit) with SMTP id ID?1;\r\n"
                           "\tThu, 01 Jan 1970 00:00:00 +0000\r\n");
    free(h);

    /* address literal HELO; unknown peer */
    sk_received_info r3 = {
        .hostname = "mx.example.com",
        .helo = "[192.0.2.9]",
        .protocol = "ESMTP",
        .mail_from = "a@example.org",
        .rcpt = "\"x y\"@example.com",
        .now = 0,
    };
    h = build(&r3);
    assert_string_equal(h, "Return-Path: <a@example.org>\r\n"
                           "Received: from [192.0.2.9]\r\n"
                           "\tby mx.example.com (smtpkit) with ESMTP\r\n"
                           "\tfor <\"x y\"@example.com>;\r\n"
                           "\tThu, 01 Jan 1970 00:00:00 +0000\r\n");
    free(h);

    /* no injection through any field: CR/LF in an address refuses the header */
    sk_received_info r4 = r3;
    r4.mail_from = "a@example.org>\r\nX-Evil: 1";
    sk_buf b;
    sk_buf_init(&b, 4096);
    assert_int_equal(sk_received_write(&b, &r4), -1);
    assert_int_equal(b.len, 0);
    /* a bogus rdns is left out; bad peer address is left out */
    sk_received_info r5 = ri;
    r5.peer_rdns = "bad name\r\n";
    r5.peer_addr = "999.1.1.1";
    r5.helo = "x\r\ny";
    assert_int_equal(sk_received_write(&b, &r5), 0);
    assert_null(strstr(b.data, "bad name"));
    assert_null(strstr(b.data, "999"));
    assert_non_null(strstr(b.data, "Received: from unknown (helo=x??y)\r\n"));
    sk_buf_free(&b);
    /* the output limit is respected and nothing half-written remains */
    sk_buf small;
    sk_buf_init(&small, 40);
    assert_int_equal(sk_received_write(&small, &ri), -1);
    assert_int_equal(small.len, 0);
    sk_buf_free(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_names),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
