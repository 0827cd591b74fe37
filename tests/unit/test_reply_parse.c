/*
 * test_reply_parse.c - the client-side reply parser (RFC 5321 4.2, RFC 2034):
 * single and multi-line replies, enhanced codes, every error case, resumable
 * parsing at every prefix length, CRLF strictness and the lenient modes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/reply.h"

static ssize_t parse(const char *s, int flags, sk_reply *r, const char **err)
{
    return sk_reply_parse(s, strlen(s), flags, r, err);
}

/* Parse a malformed reply and check the error names the line and the problem. */
static void expect_error(const char *s, size_t len, int flags, const char *want1, const char *want2)
{
    sk_reply r;
    const char *err = NULL;
    ssize_t n = sk_reply_parse(s, len, flags, &r, &err);
    if (n != -1)
        fail_msg("expected -1 for \"%.*s\", got %zd", (int)len, s, n);
    assert_non_null(err);
    if (want1 && !strstr(err, want1))
        fail_msg("error \"%s\" lacks \"%s\"", err, want1);
    if (want2 && !strstr(err, want2))
        fail_msg("error \"%s\" lacks \"%s\"", err, want2);
    assert_int_equal(r.nlines, 0);
    sk_reply_free(&r);
}

static void test_single_line(void **state)
{
    (void)state;
    sk_reply r;
    const char *err = "x";
    assert_int_equal(parse("250 OK\r\n", 0, &r, &err), 8);
    assert_null(err);
    assert_int_equal(r.code, 250);
    assert_int_equal(r.nlines, 1);
    assert_string_equal(r.lines[0], "OK");
    assert_false(r.has_enhanced);
    sk_reply_free(&r);
    assert_int_equal(r.nlines, 0);

    /* The code alone, and the code with an empty text. */
    assert_int_equal(parse("250\r\n", 0, &r, &err), 5);
    assert_string_equal(r.lines[0], "");
    sk_reply_free(&r);
    assert_int_equal(parse("354 \r\n", 0, &r, &err), 6);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.lines[0], "");
    sk_reply_free(&r);

    /* TAB and 8-bit text (SMTPUTF8) are kept as they are. */
    assert_int_equal(parse("250 a\tb \xc3\xa9t\xc3\xa9\r\n", 0, &r, &err), 15);
    assert_string_equal(r.lines[0], "a\tb \xc3\xa9t\xc3\xa9");
    sk_reply_free(&r);
}

static void test_multi_line(void **state)
{
    (void)state;
    const char *s = "250-mx.example.com Hello\r\n250-PIPELINING\r\n250-\r\n250 SIZE 1000\r\n";
    sk_reply r;
    assert_int_equal(parse(s, 0, &r, NULL), (ssize_t)strlen(s));
    assert_int_equal(r.code, 250);
    assert_int_equal(r.nlines, 4);
    assert_string_equal(r.lines[0], "mx.example.com Hello");
    assert_string_equal(r.lines[1], "PIPELINING");
    assert_string_equal(r.lines[2], "");
    assert_string_equal(r.lines[3], "SIZE 1000");
    assert_false(r.has_enhanced);
    sk_reply_free(&r);
}

static void test_only_one_reply_consumed(void **state)
{
    (void)state;
    const char *s = "250 OK\r\n220 next\r\n";
    sk_reply r;
    assert_int_equal(parse(s, 0, &r, NULL), 8);
    assert_string_equal(r.lines[0], "OK");
    sk_reply_free(&r);
    assert_int_equal(parse(s + 8, 0, &r, NULL), 10);
    assert_int_equal(r.code, 220);
    sk_reply_free(&r);
    /* Without a reply struct, only the length is reported. */
    assert_int_equal(sk_reply_parse(s, strlen(s), 0, NULL, NULL), 8);
}

static void test_enhanced_codes(void **state)
{
    (void)state;
    sk_reply r;
    assert_true(parse("550 5.1.1 No such user\r\n", 0, &r, NULL) > 0);
    assert_true(r.has_enhanced);
    assert_int_equal(r.enhanced.cls, 5);
    assert_int_equal(r.enhanced.subject, 1);
    assert_int_equal(r.enhanced.detail, 1);
    assert_string_equal(r.lines[0], "No such user");
    sk_reply_free(&r);

    const char *gmail =
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
        "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
        "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser  a1si123.1 - gsmtp\r\n";
    assert_int_equal(parse(gmail, 0, &r, NULL), (ssize_t)strlen(gmail));
    assert_true(r.has_enhanced);
    assert_int_equal(r.nlines, 3);
    assert_string_equal(r.lines[1], "double-checking the recipient's email address for typos or");
    assert_string_equal(r.lines[2],
                        "https://support.google.com/mail/?p=NoSuchUser  a1si123.1 - gsmtp");
    sk_reply_free(&r);

    /* Only the enhanced code, and three-digit subject/detail. */
    assert_true(parse("250 2.0.0\r\n", 0, &r, NULL) > 0);
    assert_true(r.has_enhanced);
    assert_string_equal(r.lines[0], "");
    sk_reply_free(&r);
    assert_true(parse("432 4.7.12 A password transition is needed\r\n", 0, &r, NULL) > 0);
    assert_true(r.has_enhanced);
    assert_int_equal(r.enhanced.detail, 12);
    sk_reply_free(&r);
}

/* No enhanced code unless every line has the same one with the right class:
 * the reply stays valid and the text is kept whole. */
static void test_enhanced_near_misses_are_text(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *line0;
    } cases[] = {
        {"550 4.1.1 class differs\r\n", "4.1.1 class differs"},
        {"550-5.1.1 a\r\n550 b\r\n", "5.1.1 a"},
        {"550-5.1.1 a\r\n550 5.1.2 b\r\n", "5.1.1 a"},
        {"550-5.1.1 a\r\n550 5.1.10 b\r\n", "5.1.1 a"},
        {"250 2.0.0x\r\n", "2.0.0x"},
        {"250 2.0 ok\r\n", "2.0 ok"},
        {"550 6.0.0 bad class\r\n", "6.0.0 bad class"},
        {"550 5.1234.1 x\r\n", "5.1234.1 x"},
        {"354 3.0.0 go\r\n", "3.0.0 go"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_reply r;
        if (parse(cases[i].in, 0, &r, NULL) <= 0)
            fail_msg("case %zu did not parse", i);
        assert_false(r.has_enhanced);
        assert_string_equal(r.lines[0], cases[i].line0);
        sk_reply_free(&r);
    }
}

static void test_error_cases(void **state)
{
    (void)state;
    expect_error("250-a\r\n251 b\r\n", 14, 0, "line 2", "251 differs from 250");
    expect_error("250xOK\r\n", 8, 0, "line 1", "' ' or '-'");
    expect_error("250-a\r\n250_b\r\n", 14, 0, "line 2", "' ' or '-'");
    expect_error("650 x\r\n", 7, 0, "first digit", "2-5");
    expect_error("150 x\r\n", 7, 0, "first digit", "2-5");
    expect_error("260 x\r\n", 7, 0, "second digit", "0-5");
    expect_error("571 vendor\r\n", 12, 0, "second digit", "7");
    expect_error("2a0 x\r\n", 7, 0, "3-digit code", "position 2");
    expect_error("abc\r\n", 5, 0, "line 1", "3-digit code");
    expect_error("25\r\n", 4, 0, "line 1", "too short");
    expect_error("250-a\r\n\r\n", 9, 0, "line 2", "empty line");
    expect_error("250 OK\n", 7, 0, "line 1", "bare LF");
    expect_error("250-a\r\n250 b\n", 13, 0, "line 2", "bare LF");
    expect_error("250 O\rK\r\n", 9, 0, "bare CR", NULL);
    expect_error("250 O\rK\n", 8, SK_REPLY_LENIENT_EOL, "bare CR", NULL);
    expect_error("250 O\0K\r\n", 9, 0, "NUL", NULL);
    expect_error("250 \x1b[2J\r\n", 10, 0, "control character 0x1b", NULL);
    expect_error("250 a\x7f\r\n", 8, 0, "control character 0x7f", NULL);
    /* ALLOW_ANY widens the digits, but a code never starts with 0. */
    expect_error("050 x\r\n", 7, SK_REPLY_ALLOW_ANY, "first digit", "1-9");
    expect_error("5x0 x\r\n", 7, SK_REPLY_ALLOW_ANY, "3-digit code", NULL);
}

/* Garbage is refused as soon as it arrives, before its line ends. */
static void test_early_rejection(void **state)
{
    (void)state;
    expect_error("6", 1, 0, "first digit", NULL);
    expect_error("25x", 3, 0, "3-digit code", NULL);
    expect_error("250-a\r\n251", 10, 0, "251 differs", NULL);
    expect_error("250+", 4, 0, "' ' or '-'", NULL);
    expect_error("250 a\rb", 7, 0, "bare CR", NULL);
}

static void test_lenient_modes(void **state)
{
    (void)state;
    sk_reply r;
    const char *s = "250-a\n250-b\r\n250 c\n";
    assert_int_equal(parse(s, SK_REPLY_LENIENT_EOL, &r, NULL), (ssize_t)strlen(s));
    assert_int_equal(r.nlines, 3);
    assert_string_equal(r.lines[0], "a");
    assert_string_equal(r.lines[1], "b");
    assert_string_equal(r.lines[2], "c");
    sk_reply_free(&r);

    assert_int_equal(parse("571 5.7.1 Unable to relay\r\n", SK_REPLY_ALLOW_ANY, &r, NULL), 27);
    assert_int_equal(r.code, 571);
    assert_true(r.has_enhanced);
    sk_reply_free(&r);
    assert_true(parse("199 x\r\n", SK_REPLY_ALLOW_ANY, &r, NULL) > 0);
    assert_int_equal(r.code, 199);
    sk_reply_free(&r);
}

/* Every proper prefix of a valid reply is "need more", in both modes; the
 * whole reply parses to the same result however it was split. */
static void test_every_prefix_is_incomplete(void **state)
{
    (void)state;
    static const char *const replies[] = {
        "250-mx.example.com\r\n250-8BITMIME\r\n250 2.0.0 SIZE\r\n",
        ("550-5.1.1 The email account that you tried to reach does not exist.\r\n"
         "550-5.1.1 double-checking\r\n550 5.1.1 gsmtp\r\n"),
        "220\r\n",
    };
    static const int modes[] = {0, SK_REPLY_LENIENT_EOL, SK_REPLY_ALLOW_ANY,
                                SK_REPLY_LENIENT_EOL | SK_REPLY_ALLOW_ANY};
    for (size_t k = 0; k < sizeof replies / sizeof replies[0]; k++) {
        const char *s = replies[k];
        size_t len = strlen(s);
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            for (size_t cut = 0; cut < len; cut++) {
                /* A copy of exactly `cut` bytes: any read past it is caught by ASan. */
                char *part = malloc(cut ? cut : 1);
                assert_non_null(part);
                memcpy(part, s, cut);
                sk_reply r;
                const char *err = NULL;
                ssize_t n = sk_reply_parse(part, cut, modes[m], &r, &err);
                if (n != 0)
                    fail_msg("reply %zu mode %d prefix %zu: got %zd (%s)", k, modes[m], cut, n,
                             err ? err : "");
                assert_int_equal(r.nlines, 0);
                free(part);
            }
            sk_reply r;
            assert_int_equal(sk_reply_parse(s, len, modes[m], &r, NULL), (ssize_t)len);
            sk_reply_free(&r);
        }
    }
}

static void test_line_length_limit(void **state)
{
    (void)state;
    /* 4096 octets including CRLF is accepted; one more is not. */
    char *s = malloc(5000);
    assert_non_null(s);
    memcpy(s, "250 ", 4);
    memset(s + 4, 'a', 4090);
    memcpy(s + 4094, "\r\n", 2);
    sk_reply r;
    assert_int_equal(sk_reply_parse(s, 4096, 0, &r, NULL), 4096);
    assert_int_equal(strlen(r.lines[0]), 4090);
    sk_reply_free(&r);

    memset(s + 4, 'a', 4091);
    memcpy(s + 4095, "\r\n", 2);
    expect_error(s, 4097, 0, "longer than 4096", NULL);
    /* Refused without waiting for an end of line that may never come. */
    memset(s + 4, 'b', 4500);
    expect_error(s, 4504, 0, "longer than 4096", NULL);
    /* 4096 bytes and no LF yet: the LF would be octet 4097, too late. */
    expect_error(s, 4096, 0, "longer than 4096", NULL);
    /* 4095 bytes: the LF may still come as octet 4096. */
    assert_int_equal(sk_reply_parse(s, 4095, 0, &r, NULL), 0);
    free(s);
}

static void test_line_count_limit(void **state)
{
    (void)state;
    size_t max = SK_REPLY_MAX_LINES;
    char *s = malloc(8 * (max + 2));
    assert_non_null(s);
    size_t o = 0;
    for (size_t i = 0; i + 1 < max; i++) {
        memcpy(s + o, "250-x\r\n", 7);
        o += 7;
    }
    memcpy(s + o, "250 y\r\n", 7);
    o += 7;
    sk_reply r;
    assert_int_equal(sk_reply_parse(s, o, 0, &r, NULL), (ssize_t)o);
    assert_int_equal(r.nlines, max);
    assert_string_equal(r.lines[max - 1], "y");
    sk_reply_free(&r);

    /* The last allowed line is a continuation: the reply cannot end in time. */
    memcpy(s + o - 7, "250-y\r\n", 7);
    expect_error(s, o, 0, "more than 128 lines", NULL);
    free(s);
}

static void test_incomplete_then_complete(void **state)
{
    (void)state;
    sk_reply r;
    assert_int_equal(parse("250-a\r\n25", 0, &r, NULL), 0);
    assert_int_equal(parse("250 OK\r", 0, &r, NULL), 0);
    assert_int_equal(parse("250-a\r\n", 0, &r, NULL), 0);
    assert_int_equal(sk_reply_parse("", 0, 0, &r, NULL), 0);
    assert_int_equal(sk_reply_parse(NULL, 0, 0, &r, NULL), 0);
    assert_int_equal(parse("250-a\r\n250 b\r\n", 0, &r, NULL), 14);
    sk_reply_free(&r);
    sk_reply_free(NULL);
}

static void test_enhanced_parse(void **state)
{
    (void)state;
    static const char *const good[] = {"2.0.0", "4.7.12", "5.7.1", "5.123.456", "5.001.01"};
    static const char *const bad[] = {"6.0.0",    "3.0.0",  "5.7",   "5.7.1.2", "5..1",
                                      "5.1234.1", "5.7.1 ", "",      "55.1.1",  ".5.1",
                                      "5.7.",     "5.7.1a", "5.-1.1"};
    sk_enhanced e;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (sk_enhanced_parse(good[i], strlen(good[i]), &e) != 0)
            fail_msg("'%s' must parse", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sk_enhanced_parse(bad[i], strlen(bad[i]), &e) != -1)
            fail_msg("'%s' must not parse", bad[i]);
    assert_int_equal(sk_enhanced_parse("5.123.456", 9, &e), 0);
    assert_int_equal(e.cls, 5);
    assert_int_equal(e.subject, 123);
    assert_int_equal(e.detail, 456);
    /* Only `len` bytes are read: "5.7.1" inside a longer string. */
    assert_int_equal(sk_enhanced_parse("5.7.19", 5, &e), 0);
    assert_int_equal(e.detail, 1);
    assert_int_equal(sk_enhanced_parse(NULL, 0, &e), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_only_one_reply_consumed),
        cmocka_unit_test(test_enhanced_codes),
        cmocka_unit_test(test_enhanced_near_misses_are_text),
        cmocka_unit_test(test_error_cases),
        cmocka_unit_test(test_early_rejection),
        cmocka_unit_test(test_lenient_modes),
        cmocka_unit_test(test_every_prefix_is_incomplete),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_line_count_limit),
        cmocka_unit_test(test_incomplete_then_complete),
        cmocka_unit_test(test_enhanced_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
