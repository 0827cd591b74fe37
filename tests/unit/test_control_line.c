/*
 * test_control_line.c - the queue control socket's line protocol
 * (queue/control_line.c): every command parsed, malformed, too long and
 * unknown lines refused with a reason, requests formatted back, answers
 * parsed; and the server's answer to a line with no delivery agent
 * (server/queue_control.c, sk_queue_control_answer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "queue/control_line.h"
#include "server/queue_control.h"

static int parse(const char *s, sk_control_cmd *c, char *err)
{
    return sk_control_parse(s, strlen(s), c, err, 128);
}

static void test_commands(void **state)
{
    (void)state;
    sk_control_cmd c;
    char err[128];
    assert_int_equal(parse("FLUSH\n", &c, err), 0);
    assert_int_equal(c.verb, SK_CONTROL_FLUSH);
    assert_string_equal(c.arg, "");
    assert_int_equal(parse("FLUSH 0QJ2K5O1A3B4C00E1F00\r\n", &c, err), 0);
    assert_string_equal(c.arg, "0QJ2K5O1A3B4C00E1F00");
    assert_int_equal(parse("flush Example.NET", &c, err), 0); /* no line end: EOF */
    assert_int_equal(c.verb, SK_CONTROL_FLUSH);
    assert_string_equal(c.arg, "Example.NET");
    assert_int_equal(parse("FLUSH [192.0.2.1]\n", &c, err), 0);
    assert_string_equal(c.arg, "[192.0.2.1]");
    assert_int_equal(parse("KICK 0QJ2K5O1A3B4C00E1F00\n", &c, err), 0);
    assert_int_equal(c.verb, SK_CONTROL_KICK);
    assert_int_equal(parse("Bounce abc123\n", &c, err), 0);
    assert_int_equal(c.verb, SK_CONTROL_BOUNCE);
    assert_string_equal(c.arg, "abc123");
}

static void expect_refused(const char *line, size_t len, const char *why)
{
    sk_control_cmd c;
    char err[128] = "";
    assert_int_equal(sk_control_parse(line, len, &c, err, sizeof err), -1);
    if (!strstr(err, why))
        fail_msg("%s: '%s' does not say '%s'", line, err, why);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_refused("", 0, "empty");
    expect_refused("\r\n", 2, "empty");
    expect_refused("HELLO\n", 6, "unknown command");
    expect_refused("FLUSHALL\n", 9, "unknown command");
    expect_refused(" FLUSH\n", 7, "unknown command");
    expect_refused("KICK\n", 5, "queue id is required");
    expect_refused("BOUNCE\n", 7, "queue id is required");
    expect_refused("KICK \n", 6, "empty argument");
    expect_refused("KICK a b\n", 9, "one argument");
    expect_refused("KICK  abc\n", 10, "one argument");
    expect_refused("KICK ../etc/passwd\n", 19, "malformed queue id");
    expect_refused("KICK example.net\n", 17, "malformed queue id"); /* a domain is no id */
    expect_refused("BOUNCE 0QJ2K5O1A3B4C00E1F00AAAAAAAAAAAAAAAAAAA\n", 47, "malformed queue id");
    expect_refused("FLUSH a..b\n", 11, "malformed queue id or domain");
    expect_refused("FLUSH .example\n", 15, "malformed");
    expect_refused("FLUSH example.\n", 15, "malformed");
    expect_refused("FLUSH [\n", 8, "malformed");
    expect_refused("FLUSH a/b.c\n", 12, "malformed");
    expect_refused("KICK abc\rdef\n", 13, "control byte");
    expect_refused("KICK abc\ndef\n", 13, "control byte"); /* a second line */
    expect_refused("KICK ab\0c\n", 10, "control byte");
    expect_refused("KICK \x7f\n", 7, "control byte");
}

static void test_too_long(void **state)
{
    (void)state;
    char line[SK_CONTROL_LINE_MAX + 2];
    memset(line, 'a', sizeof line);
    memcpy(line, "FLUSH ", 6);
    expect_refused(line, sizeof line, "line too long");
    /* at the limit the length is fine, the argument is not */
    line[SK_CONTROL_LINE_MAX - 1] = '\n';
    expect_refused(line, SK_CONTROL_LINE_MAX, "argument too long");
    /* a domain label of 64 octets, a name of 254 */
    char dom[300];
    memset(dom, 'a', 64);
    strcpy(dom + 64, ".example");
    assert_false(sk_control_domain_valid(dom));
    memset(dom, 'a', 63);
    strcpy(dom + 63, ".example");
    assert_true(sk_control_domain_valid(dom));
    memset(dom, 'a', 254);
    for (int i = 60; i < 254; i += 61)
        dom[i] = '.';
    dom[254] = '\0';
    assert_false(sk_control_domain_valid(dom));
    dom[253] = '\0';
    assert_true(sk_control_domain_valid(dom));
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char line[SK_CONTROL_LINE_MAX + 1];
    sk_control_cmd c = {.verb = SK_CONTROL_FLUSH};
    assert_int_equal(sk_control_format(&c, line, sizeof line), 6);
    assert_string_equal(line, "FLUSH\n");
    snprintf(c.arg, sizeof c.arg, "mail.example.org");
    assert_int_equal(sk_control_format(&c, line, sizeof line), 23);
    assert_string_equal(line, "FLUSH mail.example.org\n");
    c.verb = SK_CONTROL_BOUNCE;
    snprintf(c.arg, sizeof c.arg, "0QJ2K5O1A3B4C00E1F00");
    assert_true(sk_control_format(&c, line, sizeof line) > 0);
    assert_string_equal(line, "BOUNCE 0QJ2K5O1A3B4C00E1F00\n");
    /* what would not parse back is refused */
    c.verb = SK_CONTROL_KICK;
    snprintf(c.arg, sizeof c.arg, "bad id");
    assert_int_equal(sk_control_format(&c, line, sizeof line), -1);
    c.arg[0] = '\0';
    assert_int_equal(sk_control_format(&c, line, sizeof line), -1); /* KICK needs an id */
    snprintf(c.arg, sizeof c.arg, "abc");
    assert_int_equal(sk_control_format(&c, line, 6), -1); /* does not fit */
}

static void test_reply_parse(void **state)
{
    (void)state;
    const char *t;
    size_t n;
    assert_int_equal(sk_control_reply_parse("OK flushed 3\n", 13, &t, &n), 1);
    assert_int_equal(n, 9);
    assert_memory_equal(t, "flushed 3", 9);
    assert_int_equal(sk_control_reply_parse("ERR no such message\r\n", 21, &t, &n), 0);
    assert_int_equal(n, 15);
    assert_int_equal(sk_control_reply_parse("OK", 2, &t, &n), 1);
    assert_int_equal(n, 0);
    assert_int_equal(sk_control_reply_parse("OKAY\n", 5, &t, &n), -1);
    assert_int_equal(sk_control_reply_parse("250 ok\n", 7, &t, &n), -1);
    assert_int_equal(sk_control_reply_parse("", 0, &t, &n), -1);
}

/* With no delivery agent the server still answers every line. */
static void test_answer_without_agent(void **state)
{
    (void)state;
    char r[SK_CONTROL_LINE_MAX];
    sk_queue_control_answer(NULL, "KICK abc\n", 9, r, sizeof r);
    assert_true(strncmp(r, "OK ", 3) == 0);
    sk_queue_control_answer(NULL, "FLUSH\n", 6, r, sizeof r);
    assert_string_equal(r, "ERR no delivery agent running");
    sk_queue_control_answer(NULL, "BOUNCE abc\n", 11, r, sizeof r);
    assert_string_equal(r, "ERR no delivery agent running");
    sk_queue_control_answer(NULL, "DELETE abc\n", 11, r, sizeof r);
    assert_string_equal(r, "ERR unknown command");
    char big[SK_CONTROL_LINE_MAX + 10];
    memset(big, 'K', sizeof big);
    sk_queue_control_answer(NULL, big, sizeof big, r, sizeof r);
    assert_string_equal(r, "ERR line too long");
    /* a small reply buffer truncates, never overflows */
    char small[8];
    sk_queue_control_answer(NULL, "FLUSH\n", 6, small, sizeof small);
    assert_string_equal(small, "ERR no ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_too_long),    cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_reply_parse), cmocka_unit_test(test_answer_without_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
