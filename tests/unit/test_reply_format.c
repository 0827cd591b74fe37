/*
 * test_reply_format.c - the server's reply formatter (RFC 5321 4.2, 4.2.1;
 * RFC 2034): single and multi-line replies, the enhanced code on every
 * line, control characters neutralised, all-or-nothing on overflow, and
 * round trips through the reply parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/buf.h"
#include "smtpkit/reply.h"

static void expect_format(int code, const char *enh, const char *text, const char *want)
{
    sk_buf b;
    sk_buf_init(&b, 65536);
    assert_int_equal(sk_reply_format(&b, code, enh, text), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    sk_buf_free(&b);
}

static void test_single_line(void **state)
{
    (void)state;
    expect_format(250, NULL, "OK", "250 OK\r\n");
    expect_format(221, "2.0.0", "Bye", "221 2.0.0 Bye\r\n");
    expect_format(354, NULL, "End data with <CR><LF>.<CR><LF>",
                  "354 End data with <CR><LF>.<CR><LF>\r\n");
    expect_format(250, NULL, "", "250 \r\n");
    expect_format(250, NULL, NULL, "250 \r\n");
    expect_format(250, "2.0.0", "", "250 2.0.0\r\n");
    expect_format(250, "", "OK", "250 OK\r\n"); /* an empty enhanced code is none */
}

static void test_multi_line(void **state)
{
    (void)state;
    expect_format(250, NULL, "mx.example.com\nPIPELINING\nSIZE 1000",
                  "250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
    /* CRLF inside the text separates lines just like LF. */
    expect_format(214, NULL, "a\r\nb", "214-a\r\n214 b\r\n");
    /* A trailing newline makes an empty last line. */
    expect_format(250, NULL, "a\n", "250-a\r\n250 \r\n");
}

static void test_enhanced_on_every_line(void **state)
{
    (void)state;
    expect_format(550, "5.1.1", "No such user\nTry again",
                  "550-5.1.1 No such user\r\n550 5.1.1 Try again\r\n");
    expect_format(452, "4.5.3", "Too many recipients\n\nsend the rest later",
                  "452-4.5.3 Too many recipients\r\n452-4.5.3\r\n452 4.5.3 send the rest "
                  "later\r\n");
}

static void test_control_characters_sanitised(void **state)
{
    (void)state;
    /* A lone CR, ESC, BEL, NUL-free C0 and DEL become '?': no text can start
     * a new reply line or drive a terminal. TAB stays. */
    expect_format(250, NULL, "a\rb", "250 a?b\r\n");
    expect_format(550, NULL, "x\x1b[31mred\x07", "550 x?[31mred?\r\n");
    expect_format(250, NULL, "del\x7f tab\tok", "250 del? tab\tok\r\n");
    expect_format(250, NULL, "\x01\x1f", "250 ??\r\n");
    /* Injection attempt: the CR before LF is dropped, the LF makes a proper
     * continuation line with the same code, never a new "354" reply. */
    expect_format(250, NULL, "ok\r\n354 go ahead", "250-ok\r\n250 354 go ahead\r\n");
    /* 8-bit text (SMTPUTF8) passes unchanged. */
    expect_format(250, NULL, "h\xc3\xa9llo", "250 h\xc3\xa9llo\r\n");
}

static void test_bad_code_and_overflow(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 64);
    assert_int_equal(sk_buf_append_str(&b, "XY"), 0);
    assert_int_equal(sk_reply_format(&b, 99, NULL, "x"), -1);
    assert_int_equal(sk_reply_format(&b, 1000, NULL, "x"), -1);
    assert_int_equal(b.len, 2);
    /* Too long for the buffer's maximum: nothing of it is left behind. */
    assert_int_equal(sk_reply_format(&b, 250, NULL,
                                     "first line\nsecond line is much longer "
                                     "than the space that is left"),
                     -1);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "XY");
    /* It still works afterwards. */
    assert_int_equal(sk_reply_format(&b, 250, NULL, "OK"), 0);
    assert_string_equal(b.data, "XY250 OK\r\n");
    sk_buf_free(&b);
}

static void test_formatf(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 1024);
    assert_int_equal(
        sk_reply_formatf(&b, 552, "5.3.4", "Message size exceeds %zu octets", (size_t)10485760), 0);
    assert_string_equal(b.data, "552 5.3.4 Message size exceeds 10485760 octets\r\n");
    sk_buf_free(&b);
}

/* What the formatter writes, the parser reads back unchanged. */
static void test_round_trip(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *enh;
        const char *text;
        size_t nlines;
    } cases[] = {
        {250, NULL, "mx.example.com\nPIPELINING\nSIZE 1000", 3},
        {550, "5.1.1", "No such user\nhere", 2},
        {221, "2.0.0", "Bye", 1},
        {452, "4.5.3", "Too many recipients", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_buf b;
        sk_buf_init(&b, 4096);
        assert_int_equal(sk_reply_format(&b, cases[i].code, cases[i].enh, cases[i].text), 0);
        sk_reply r;
        assert_int_equal(sk_reply_parse(b.data, b.len, 0, &r, NULL), (ssize_t)b.len);
        assert_int_equal(r.code, cases[i].code);
        assert_int_equal(r.nlines, cases[i].nlines);
        assert_int_equal(r.has_enhanced, cases[i].enh != NULL);
        if (cases[i].enh) {
            char e[16];
            snprintf(e, sizeof e, "%d.%d.%d", r.enhanced.cls, r.enhanced.subject,
                     r.enhanced.detail);
            assert_string_equal(e, cases[i].enh);
        }
        /* Rejoin the lines and compare with the text given. */
        char joined[256] = "";
        for (size_t k = 0; k < r.nlines; k++) {
            if (k)
                strcat(joined, "\n");
            strcat(joined, r.lines[k]);
        }
        assert_string_equal(joined, cases[i].text);
        sk_reply_free(&r);
        sk_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_enhanced_on_every_line),
        cmocka_unit_test(test_control_characters_sanitised),
        cmocka_unit_test(test_bad_code_and_overflow),
        cmocka_unit_test(test_formatf),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
