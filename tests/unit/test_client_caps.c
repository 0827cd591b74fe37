/*
 * test_client_caps.c - EHLO capability parsing (RFC 5321 4.1.1.1 and the
 * extension RFCs), capability explanations, readable sizes, and target
 * (HOST[:PORT]) parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtpkit/client.h"

static int parse(sk_caps *c, const char *line)
{
    return sk_caps_parse_line(c, line, strlen(line));
}

static void test_size(void **state)
{
    (void)state;
    sk_caps c;
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "SIZE 10485760"), 0);
    assert_true(c.has_size);
    assert_int_equal(c.size, 10485760ULL);
    char ex[300];
    sk_cap_explain(&c.caps[0], ex, sizeof ex);
    assert_non_null(strstr(ex, "10 MiB"));
    assert_non_null(strstr(ex, "10485760"));

    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "SIZE"), 0); /* no fixed limit announced */
    assert_true(c.has_size);
    assert_int_equal(c.size, 0);
    sk_cap_explain(&c.caps[0], ex, sizeof ex);
    assert_non_null(strstr(ex, "no fixed limit"));

    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "SIZE 12abc"), -1);
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "SIZE 99999999999999999999999"), -1); /* overflow */
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "SIZE 18446744073709551615"), 0);
    assert_int_equal(c.size, 18446744073709551615ULL);
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "SIZE 18446744073709551616"), -1);
}

static void test_auth(void **state)
{
    (void)state;
    sk_caps c;
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 GSSAPI"), 0);
    assert_int_equal(c.auth, SK_AUTH_PLAIN | SK_AUTH_LOGIN | SK_AUTH_CRAM_MD5 | SK_AUTH_SCRAM |
                                 SK_AUTH_OTHER);
    assert_string_equal(c.auth_list, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 GSSAPI");
    /* Old servers repeat the list as AUTH=...: no duplicates. */
    assert_int_equal(parse(&c, "AUTH=LOGIN PLAIN XOAUTH2"), 0);
    assert_string_equal(c.auth_list, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 GSSAPI XOAUTH2");
    assert_true(c.auth & SK_AUTH_XOAUTH2);

    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "auth login"), 0); /* keywords are case-insensitive */
    assert_int_equal(c.auth, SK_AUTH_LOGIN);
    assert_string_equal(c.caps[0].keyword, "AUTH");
}

static void test_flags(void **state)
{
    (void)state;
    const char *lines[] = {"PIPELINING",
                           "STARTTLS",
                           "8BITMIME",
                           "smtputf8",
                           "CHUNKING",
                           "BINARYMIME",
                           "ENHANCEDSTATUSCODES",
                           "DSN",
                           "REQUIRETLS",
                           "DELIVERBY 240",
                           "ETRN",
                           "VRFY",
                           "HELP",
                           "X-EXPS GSSAPI"};
    sk_caps c;
    sk_caps_clear(&c);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        assert_int_equal(parse(&c, lines[i]), 0);
    assert_true(c.pipelining && c.starttls && c.eightbitmime && c.smtputf8 && c.chunking);
    assert_true(c.binarymime && c.enhancedstatuscodes && c.dsn && c.requiretls);
    assert_true(c.deliverby && c.etrn && c.vrfy && c.help);
    assert_false(c.atrn);
    assert_int_equal(c.ncaps, sizeof lines / sizeof lines[0]);
    assert_string_equal(c.caps[3].keyword, "SMTPUTF8");
    assert_string_equal(c.caps[9].params, "240");
    char ex[300];
    sk_cap_explain(&c.caps[0], ex, sizeof ex);
    assert_non_null(strstr(ex, "RFC 2920"));
    sk_cap_explain(&c.caps[13], ex, sizeof ex);
    assert_non_null(strstr(ex, "private"));
}

static void test_invalid_lines(void **state)
{
    (void)state;
    sk_caps c;
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "-BAD"), -1);
    assert_int_equal(parse(&c, ""), -1);
    assert_int_equal(parse(&c, "SIZE\x01"
                               "5"),
                     -1);
    assert_int_equal(c.ncaps, 3); /* still recorded for the user to see */
    assert_string_equal(c.caps[0].keyword, "-BAD");
    /* Control bytes in parameters are never copied as they are. */
    sk_caps_clear(&c);
    assert_int_equal(parse(&c, "XFOO a\x1b[31mb"), 0);
    assert_null(strchr(c.caps[0].params, '\x1b'));
    /* A long parameter list is cut, not overflowed. */
    char big[2000];
    memset(big, 'A', sizeof big);
    memcpy(big, "AUTH ", 5);
    for (size_t i = 10; i < sizeof big; i += 10)
        big[i] = ' ';
    sk_caps_clear(&c);
    assert_int_equal(sk_caps_parse_line(&c, big, sizeof big), 0);
    assert_true(strlen(c.caps[0].params) < sizeof c.caps[0].params);
    assert_true(strlen(c.auth_list) < sizeof c.auth_list);
    /* More lines than slots: the extra ones are counted out, flags still set. */
    sk_caps_clear(&c);
    for (int i = 0; i < SK_CAPS_MAX + 10; i++)
        parse(&c, "XSOMETHING");
    assert_int_equal(parse(&c, "PIPELINING"), 0);
    assert_int_equal(c.ncaps, SK_CAPS_MAX);
    assert_true(c.pipelining);
}

static void test_parse_reply(void **state)
{
    (void)state;
    char l0[] = "mx.example.org greets you", l1[] = "PIPELINING", l2[] = "SIZE 1024",
         l3[] = "AUTH PLAIN";
    sk_reply r;
    memset(&r, 0, sizeof r);
    r.code = 250;
    r.nlines = 4;
    r.lines[0] = l0;
    r.lines[1] = l1;
    r.lines[2] = l2;
    r.lines[3] = l3;
    sk_caps c;
    sk_caps_parse_reply(&c, &r);
    assert_true(c.esmtp);
    assert_int_equal(c.ncaps, 3); /* the greeting line is not a capability */
    assert_true(c.pipelining);
    assert_int_equal(c.size, 1024);
    assert_int_equal(c.auth, SK_AUTH_PLAIN);
}

static void test_format_size(void **state)
{
    (void)state;
    char b[32];
    sk_format_size(0, b, sizeof b);
    assert_string_equal(b, "0 bytes");
    sk_format_size(1, b, sizeof b);
    assert_string_equal(b, "1 byte");
    sk_format_size(1023, b, sizeof b);
    assert_string_equal(b, "1023 bytes");
    sk_format_size(1024, b, sizeof b);
    assert_string_equal(b, "1 KiB");
    sk_format_size(1536, b, sizeof b);
    assert_string_equal(b, "1.5 KiB");
    sk_format_size(10485760, b, sizeof b);
    assert_string_equal(b, "10 MiB");
    sk_format_size(35882577, b, sizeof b);
    assert_string_equal(b, "34.2 MiB");
    sk_format_size(5ULL << 30, b, sizeof b);
    assert_string_equal(b, "5 GiB");
}

static void test_target(void **state)
{
    (void)state;
    char h[256];
    int port;
    assert_int_equal(sk_target_parse("mx.example.org", h, sizeof h, &port), 0);
    assert_string_equal(h, "mx.example.org");
    assert_int_equal(port, -1);
    assert_int_equal(sk_target_parse("127.0.0.1:2525", h, sizeof h, &port), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(port, 2525);
    assert_int_equal(sk_target_parse("[::1]:587", h, sizeof h, &port), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(port, 587);
    assert_int_equal(sk_target_parse("2001:db8::25", h, sizeof h, &port), 0);
    assert_string_equal(h, "2001:db8::25");
    assert_int_equal(port, -1);
    assert_int_equal(sk_target_parse("[::1]", h, sizeof h, &port), 0);
    assert_int_equal(port, -1);
    assert_int_equal(sk_target_parse("host:0", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse("host:65536", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse("host:", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse(":25", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse("[::1", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse("[::1]x", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse("a b:25", h, sizeof h, &port), -1);
    assert_int_equal(sk_target_parse("host:25x", h, sizeof h, &port), -1);
    assert_true(sk_is_ip_literal("::1"));
    assert_true(sk_is_ip_literal("192.0.2.1"));
    assert_false(sk_is_ip_literal("example.org"));
    assert_false(sk_is_ip_literal("999.1.1.1"));
}

static void test_exit_status(void **state)
{
    (void)state;
    assert_int_equal(sk_client_exit_status(SK_CLIENT_OK), 0);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_REFUSED), 1);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_USAGE), 2);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_CONNECT), 3);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_TIMEOUT), 3);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_CLOSED), 3);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_TLS), 4);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_DNS), 5);
    assert_int_equal(sk_client_exit_status(SK_CLIENT_ERR_PROTOCOL), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size),        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_flags),       cmocka_unit_test(test_invalid_lines),
        cmocka_unit_test(test_parse_reply), cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_target),      cmocka_unit_test(test_exit_status),
    };
    return cmocka_run_group_tests_name("client_caps", tests, NULL, NULL);
}
