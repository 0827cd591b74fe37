/*
 * test_reply_meaning.c - the meaning of a reply depends on the command it
 * answers and on its enhanced code (src/core/reply_meaning.c), and what
 * the client's explanation (sk_reply_explain) makes of it: a 250 to EHLO
 * is not a 250 to RSET, Postfix's "454 4.7.1 Relay access denied" after
 * RCPT is not an AUTH failure, and a code RFC 5321 4.3.2 does not list for
 * the command is said to be so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "smtpkit/client.h"
#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

/* Parse one reply from its wire form. */
static void parse(const char *wire, sk_reply *r)
{
    const char *err = NULL;
    ssize_t n = sk_reply_parse(wire, strlen(wire), SK_REPLY_ALLOW_ANY, r, &err);
    if (n != (ssize_t)strlen(wire))
        fail_msg("cannot parse %s: %s", wire, err ? err : "incomplete");
}

static void explain(const char *wire, const char *cmd, sk_reply_explanation *ex)
{
    sk_reply r;
    parse(wire, &r);
    sk_reply_explain(&r, cmd, ex);
    sk_reply_free(&r);
}

/* Every 250 the client reads got the same text ("after MAIL the sender is
 * accepted..."), whatever it answered. */
static void test_250_depends_on_the_command(void **state)
{
    (void)state;
    static const char *const cmds[] = {"EHLO", "HELO",     "MAIL", "RCPT",
                                       "RSET", "DATA-END", "NOOP", "VRFY"};
    const char *seen[sizeof cmds / sizeof cmds[0]];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        sk_reply_explanation ex;
        explain("250 2.0.0 OK\r\n", cmds[i], &ex);
        assert_non_null(ex.meaning);
        assert_false(ex.unexpected);
        assert_string_equal(ex.advice, "done");
        assert_string_equal(ex.source, "command");
        for (size_t k = 0; k < i; k++)
            if (!strcmp(seen[k], ex.meaning))
                fail_msg("250 to %s and to %s explained alike: %s", cmds[k], cmds[i], ex.meaning);
        seen[i] = ex.meaning;
    }
    sk_reply_explanation ex;
    explain("250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "EHLO", &ex);
    assert_non_null(strstr(ex.meaning, "extension"));
    assert_null(strstr(ex.meaning, "sender"));
    explain("250 2.0.0 Reset\r\n", "RSET", &ex);
    assert_non_null(strstr(ex.meaning, "reset"));
    assert_null(strstr(ex.meaning, "after MAIL"));
    explain("250 2.1.0 Sender OK\r\n", "MAIL", &ex);
    assert_non_null(strstr(ex.meaning, "sender"));
    explain("250 2.0.0 Ok: queued as 1234\r\n", "DATA-END", &ex);
    assert_non_null(strstr(ex.meaning, "responsibility"));
    /* Extension meanings still win for their commands. */
    explain("250 2.0.0 OK, queuing for node x started\r\n", "ETRN", &ex);
    assert_non_null(strstr(ex.meaning, "ETRN"));
    explain("250 2.0.0 1000 octets received\r\n", "BDAT", &ex);
    assert_non_null(strstr(ex.meaning, "BDAT"));
}

/* Postfix's everyday relay refusal was explained as an AUTH failure. */
static void test_postfix_relay_denied_454_after_rcpt(void **state)
{
    (void)state;
    sk_reply_explanation ex;
    explain("454 4.7.1 <x@example.org>: Relay access denied\r\n", "RCPT", &ex);
    assert_non_null(ex.meaning);
    assert_null(strcasestr(ex.meaning, "authentication failure"));
    assert_null(strcasestr(ex.meaning, "AUTH could not"));
    assert_non_null(strcasestr(ex.meaning, "relay"));
    assert_string_equal(ex.source, "command+enhanced");
    assert_true(ex.unexpected); /* RFC 5321 4.3.2 lists no 454 for RCPT */
    assert_string_equal(ex.enhanced_name, "Delivery not authorized, message refused");
    /* The meanings 454 has elsewhere are named, not used. */
    assert_int_equal(ex.picked.nelsewhere, 2);
    assert_string_equal(ex.picked.elsewhere[0]->context, "AUTH");
    assert_string_equal(ex.picked.elsewhere[1]->context, "STARTTLS");
    /* After AUTH and STARTTLS 454 keeps its RFC meanings. */
    explain("454 4.7.0 Temporary authentication failure\r\n", "AUTH", &ex);
    assert_non_null(strstr(ex.meaning, "AUTH"));
    assert_false(ex.unexpected);
    assert_int_equal(ex.picked.nelsewhere, 1);
    explain("454 4.7.0 TLS not available\r\n", "STARTTLS", &ex);
    assert_non_null(strstr(ex.meaning, "STARTTLS"));
    assert_false(ex.unexpected);
    /* Postfix's hard form (reject_unauth_destination): 554 is not in RFC
     * 5321 4.3.2's list for RCPT either. */
    explain("554 5.7.1 <x@example.org>: Relay access denied\r\n", "RCPT", &ex);
    assert_non_null(strcasestr(ex.meaning, "relay"));
    assert_true(ex.unexpected);
    explain("550 5.7.1 Relaying denied\r\n", "RCPT", &ex);
    assert_non_null(strcasestr(ex.meaning, "relay"));
}

/* The enhanced code is the more specific signal. */
static void test_enhanced_code_picks(void **state)
{
    (void)state;
    sk_reply_explanation ex;
    explain("550 5.1.1 No such user\r\n", "RCPT", &ex);
    assert_non_null(strcasestr(ex.meaning, "no such mailbox"));
    assert_string_equal(ex.advice, "give up");
    explain("452 4.5.3 Too many recipients\r\n", "RCPT", &ex);
    assert_non_null(strcasestr(ex.meaning, "too many recipients"));
    assert_string_equal(ex.advice, "retry later");
    /* A code with no meaning for the command: the enhanced code explains it. */
    explain("454 4.4.3 Directory lookup failed\r\n", "RCPT", &ex);
    assert_string_equal(ex.source, "enhanced");
    assert_non_null(ex.meaning);
    const sk_enhanced_entry *e = sk_enhanced_lookup(4, 3);
    assert_string_equal(ex.meaning, e->meaning);
    assert_string_equal(ex.advice, "retry later");
    assert_true(ex.unexpected);
    /* Neither: nothing is made up, the other meanings are named. */
    explain("454 Relay access denied\r\n", "RCPT", &ex);
    assert_null(ex.meaning);
    assert_string_equal(ex.source, "none");
    assert_string_equal(ex.advice, "retry later");
    assert_int_equal(ex.picked.nelsewhere, 2);
    /* Without an enhanced code the command's meaning still applies. */
    explain("250 Ok\r\n", "RSET", &ex);
    assert_non_null(strstr(ex.meaning, "reset"));
}

static void test_unlisted_code_is_a_note_not_an_error(void **state)
{
    (void)state;
    sk_reply_explanation ex;
    /* 550 is in RFC 5321 4.3.2's list for RCPT; 354 is not in EHLO's. */
    explain("550 5.1.1 No such user\r\n", "RCPT", &ex);
    assert_false(ex.unexpected);
    explain("354 go on\r\n", "EHLO", &ex);
    assert_true(ex.unexpected);
    assert_non_null(ex.meaning); /* the general meaning is still shown */
    assert_string_equal(ex.source, "general");
    /* The greeting has no command list problem. */
    explain("220 mx.example.org ESMTP\r\n", "CONNECT", &ex);
    assert_false(ex.unexpected);
    assert_non_null(strstr(ex.meaning, "greeting"));
    /* Without a command nothing is unexpected. */
    explain("454 4.7.1 Relay access denied\r\n", NULL, &ex);
    assert_false(ex.unexpected);
}

static void test_select_without_command(void **state)
{
    (void)state;
    sk_reply_meaning m;
    sk_reply_meaning_select(250, NULL, NULL, &m);
    assert_ptr_equal(m.entry, sk_registry_lookup(250, NULL));
    assert_int_equal(m.source, SK_MEANING_GENERAL);
    assert_true(m.listed);
    sk_reply_meaning_select(299, "RCPT", NULL, &m);
    assert_int_equal(m.source, SK_MEANING_NONE);
    assert_null(m.meaning);
    assert_null(m.entry);
    assert_int_equal(m.advice, SK_ADVICE_DONE);
    /* An enhanced code of the wrong class is ignored (RFC 2034 3). */
    sk_enhanced en = {5, 7, 1};
    sk_reply_meaning_select(454, "RCPT", &en, &m);
    assert_int_equal(m.source, SK_MEANING_NONE);
    /* An empty command is no command. */
    sk_reply_meaning_select(250, "", NULL, &m);
    assert_int_equal(m.source, SK_MEANING_GENERAL);
    assert_string_equal(sk_meaning_source_name(SK_MEANING_COMMAND_ENHANCED), "command+enhanced");
}

/* Every row of the command table is well formed. */
static void test_command_table_rows(void **state)
{
    (void)state;
    static const char *const commands[] = {"CONNECT",  "HELO", "EHLO", "MAIL",     "RCPT", "DATA",
                                           "DATA-END", "BDAT", "RSET", "VRFY",     "EXPN", "HELP",
                                           "NOOP",     "QUIT", "AUTH", "STARTTLS", "ETRN", "ATRN"};
    assert_true(sk_command_meaning_size() > 10);
    assert_null(sk_command_meaning_at(sk_command_meaning_size()));
    for (size_t i = 0; i < sk_command_meaning_size(); i++) {
        const sk_command_meaning *m = sk_command_meaning_at(i);
        int known = 0;
        for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
            known |= !strcmp(commands[k], m->command);
        if (!known)
            fail_msg("%d: unknown command %s", m->code, m->command);
        assert_true(strlen(m->meaning) > 20);
        assert_non_null(m->rfc);
        assert_true(sk_code_is_valid(m->code));
        if (m->enhanced) {
            sk_enhanced en;
            if (sk_enhanced_parse(m->enhanced, strlen(m->enhanced), &en) < 0 ||
                en.cls != m->code / 100 || !sk_enhanced_lookup(en.subject, en.detail))
                fail_msg("%d %s: bad enhanced code %s", m->code, m->command, m->enhanced);
        }
        int c = m->code / 100;
        int fits = (c == 2 && m->advice == SK_ADVICE_DONE) ||
                   (c == 4 && (m->advice == SK_ADVICE_RETRY || m->advice == SK_ADVICE_FIX)) ||
                   (c == 5 && (m->advice == SK_ADVICE_FIX || m->advice == SK_ADVICE_GIVE_UP));
        if (!fits)
            fail_msg("%d %s: advice does not fit the class", m->code, m->command);
        /* No duplicate (code, command, enhanced). */
        for (size_t k = 0; k < i; k++) {
            const sk_command_meaning *o = sk_command_meaning_at(k);
            if (o->code == m->code && !strcmp(o->command, m->command) &&
                ((!o->enhanced && !m->enhanced) ||
                 (o->enhanced && m->enhanced && !strcmp(o->enhanced, m->enhanced))))
                fail_msg("duplicate row %d %s", m->code, m->command);
        }
        /* A row chosen for its own reply, never shadowed by another. */
        sk_enhanced en, *pe = NULL;
        if (m->enhanced && sk_enhanced_parse(m->enhanced, strlen(m->enhanced), &en) == 0)
            pe = &en;
        sk_reply_meaning got;
        sk_reply_meaning_select(m->code, m->command, pe, &got);
        assert_ptr_equal(got.meaning, m->meaning);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_250_depends_on_the_command),
        cmocka_unit_test(test_postfix_relay_denied_454_after_rcpt),
        cmocka_unit_test(test_enhanced_code_picks),
        cmocka_unit_test(test_unlisted_code_is_a_note_not_an_error),
        cmocka_unit_test(test_select_without_command),
        cmocka_unit_test(test_command_table_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
