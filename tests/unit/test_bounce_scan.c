/*
 * test_bounce_scan.c - the bounce scanner (src/client/bounce_scan.c) on
 * small hand-made inputs: quoted-printable soft breaks and escapes (RFC 2045
 * 6.7), base64 parts and bad base64 (6.8), folded DSN fields (RFC 3464,
 * RFC 5322 2.2.3), de-duplication, the command phrases of Postfix and Exim,
 * and the bounds (64 replies, long lines, NUL bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/bounce.h"

static sk_bounce b;

static int scan(const char *s)
{
    return sk_bounce_scan(s, strlen(s), &b);
}

static void quoted_printable(void **state)
{
    (void)state;
    assert_int_equal(scan("Content-Type: text/plain\n"
                          "Content-Transfer-Encoding: quoted-printable\n"
                          "\n"
                          "<a@example.org>: host x[192.0.2.1] said: 550 5.1.1 User unkn=\n"
                          "own =3D gone=20\n"
                          "    (in reply to RCPT TO command)\n"),
                     1);
    assert_int_equal(b.replies[0].code, 550);
    assert_string_equal(b.replies[0].text, "User unknown = gone");
    assert_string_equal(b.replies[0].command, "RCPT");
    assert_string_equal(b.replies[0].recipient, "a@example.org");
    sk_bounce_free(&b);
    /* A stray "=" and bad escapes stay as they are. */
    assert_int_equal(scan("Content-Transfer-Encoding: quoted-printable\n\n"
                          "Remote Server returned '550 5.7.1 a=ZZ b= c'\n"),
                     1);
    assert_string_equal(b.replies[0].text, "a=ZZ b= c");
    sk_bounce_free(&b);
}

static void base64_parts(void **state)
{
    (void)state;
    /* "said: 554 5.7.1 nope\n" */
    assert_int_equal(scan("Content-Type: multipart/report; boundary=\"B\"\n\n"
                          "--B\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
                          "c2FpZDogNTU0IDUuNy4xIG5v\ncGUK\n"
                          "--B--\n"),
                     1);
    assert_string_equal(b.replies[0].line, "554 5.7.1 nope");
    sk_bounce_free(&b);
    /* Not base64 after all: the text is scanned as it is. */
    assert_int_equal(scan("Content-Transfer-Encoding: base64\n\nsaid: 451 4.3.0 try later!\n"), 1);
    assert_int_equal(b.replies[0].code, 451);
    sk_bounce_free(&b);
}

static void dsn_fields_and_duplicates(void **state)
{
    (void)state;
    assert_int_equal(scan("<c@example.com>: host y[192.0.2.2] said: 552 5.2.2 Mailbox\n"
                          "    full (in reply to end of DATA command)\n"
                          "\n"
                          "Final-Recipient: rfc822; c@example.com\n"
                          "Action: failed\n"
                          "Diagnostic-Code: smtp; 552 5.2.2\n"
                          "    Mailbox full\n"
                          "\n"
                          "Final-Recipient: rfc822; d@example.com\n"
                          "Diagnostic-Code: X-Postfix; Host or domain name not found\n"
                          "Diagnostic-Code: smtp; 550 5.1.1 d is gone\n"),
                     2);
    assert_string_equal(b.replies[0].line, "552 5.2.2 Mailbox full");
    assert_string_equal(b.replies[0].command, "DATA-END");
    assert_string_equal(b.replies[0].found_by, "said:");
    assert_string_equal(b.replies[1].recipient, "d@example.com");
    assert_string_equal(b.replies[1].found_by, "Diagnostic-Code");
    assert_string_equal(b.replies[1].command, "");
    sk_bounce_free(&b);
}

static void exim_and_reply_lines(void **state)
{
    (void)state;
    assert_int_equal(scan("  e@example.net\n"
                          "    host mx.example.net [192.0.2.3]\n"
                          "    SMTP error from remote mail server after pipelined MAIL "
                          "FROM:<f@example.org> SIZE=1234:\n"
                          "    550 5.7.1 Sender rejected\n"
                          "The response from the remote server was:\n"
                          "421-4.7.0 first\n"
                          "421 4.7.0 second\n"
                          "250 2.0.0 a line of its own with an enhanced code\n"
                          "250 no enhanced code and no anchor: not a reply\n"),
                     3);
    assert_string_equal(b.replies[0].command, "MAIL");
    assert_string_equal(b.replies[0].recipient, "e@example.net");
    assert_string_equal(b.replies[1].line, "421 4.7.0 first second");
    assert_int_equal(b.replies[2].code, 250);
    sk_bounce_free(&b);
}

static void bounds(void **state)
{
    (void)state;
    /* 70 different replies: 64 kept, truncated. */
    size_t cap = 70 * 40 + 1, o = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (int i = 0; i < 70; i++)
        o += (size_t)snprintf(s + o, cap - o, "said: 550 5.1.1 user %d\n\n", i);
    assert_int_equal(sk_bounce_scan(s, o, &b), SK_BOUNCE_MAX_REPLIES);
    assert_true(b.truncated);
    sk_bounce_free(&b);
    free(s);
    /* One very long line with many anchors: bounded work, bounded text. */
    size_t n = 200000;
    s = malloc(n);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = "said: 550 x "[i % 12];
    assert_int_equal(sk_bounce_scan(s, n, &b), 1);
    assert_true(strlen(b.replies[0].text) <= 4096);
    sk_bounce_free(&b);
    /* NUL bytes and CR line ends are plain text. */
    static const char nul[] = "said: 550 5.1.1 a\0b\r\n";
    assert_int_equal(sk_bounce_scan(nul, sizeof nul - 1, &b), 1);
    assert_string_equal(b.replies[0].text, "a b");
    sk_bounce_free(&b);
    free(s);
    assert_int_equal(sk_bounce_scan("", 0, &b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quoted_printable),
        cmocka_unit_test(base64_parts),
        cmocka_unit_test(dsn_fields_and_duplicates),
        cmocka_unit_test(exim_and_reply_lines),
        cmocka_unit_test(bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
