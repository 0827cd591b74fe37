/*
 * test_command.c - the command line parser: verbs, arguments, and the
 * MAIL/RCPT "FROM:<path> params" grammar (RFC 5321 4.1.1, 4.1.2, 3.3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/command.h"

static void test_verbs(void **state)
{
    (void)state;
    for (int v = SK_VERB_UNKNOWN + 1; v < SK_VERB_COUNT; v++) {
        const char *name = sk_verb_name((sk_verb)v);
        assert_int_equal(sk_verb_lookup(name, strlen(name)), v);
        char lower[16];
        size_t n = strlen(name);
        for (size_t i = 0; i <= n; i++)
            lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        assert_int_equal(sk_verb_lookup(lower, n), v);
    }
    assert_int_equal(sk_verb_lookup("MAILX", 5), SK_VERB_UNKNOWN);
    assert_int_equal(sk_verb_lookup("MAI", 3), SK_VERB_UNKNOWN);
    assert_int_equal(sk_verb_lookup("", 0), SK_VERB_UNKNOWN);
    assert_string_equal(sk_verb_name(SK_VERB_UNKNOWN), "UNKNOWN");
    assert_string_equal(sk_verb_name((sk_verb)999), "UNKNOWN");
    assert_string_equal(sk_verb_name(SK_VERB_STARTTLS), "STARTTLS");
}

static void test_split(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int ret;
        sk_verb verb;
        const char *arg;
    } cases[] = {
        {"NOOP", 0, SK_VERB_NOOP, ""},
        {"noop", 0, SK_VERB_NOOP, ""},
        {"NoOp  ", 0, SK_VERB_NOOP, ""},
        {"NOOP hello world ", 0, SK_VERB_NOOP, "hello world"},
        {"MAIL FROM:<a@b>", 0, SK_VERB_MAIL, "FROM:<a@b>"},
        {"MAIL   FROM:<a@b>\t", 0, SK_VERB_MAIL, "FROM:<a@b>"},
        {"EHLO x", 0, SK_VERB_EHLO, "x"},
        {"NOOP\tx", 0, SK_VERB_UNKNOWN, ""}, /* the verb ends only at SP */
        {"XYZZY a", 0, SK_VERB_UNKNOWN, "a"},
        {"", -1, SK_VERB_UNKNOWN, ""},
        {" NOOP", -1, SK_VERB_UNKNOWN, ""},
        {"STARTTLS", 0, SK_VERB_STARTTLS, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_command c;
        int r = sk_command_split(cases[i].line, strlen(cases[i].line), &c);
        if (r != cases[i].ret || c.verb != cases[i].verb || c.arg_len != strlen(cases[i].arg) ||
            (c.arg_len && memcmp(c.arg, cases[i].arg, c.arg_len) != 0))
            fail_msg("'%s': ret %d verb %d arg '%.*s'", cases[i].line, r, c.verb, (int)c.arg_len,
                     c.arg ? c.arg : "");
    }
}

typedef struct path_case {
    const char *arg;
    const char *prefix;
    unsigned flags;
    sk_path_cmd_status st;
    const char *mailbox;
    size_t nparams;
} path_case;

static void test_parse_path(void **state)
{
    (void)state;
    static const path_case cases[] = {
        {"FROM:<a@example.org>", "FROM:", 0, SK_PATHCMD_OK, "a@example.org", 0},
        {"from:<a@example.org>", "FROM:", 0, SK_PATHCMD_OK, "a@example.org", 0},
        {"FROM: <a@example.org>", "FROM:", 0, SK_PATHCMD_OK, "a@example.org", 0},
        {"FROM:  <a@example.org>", "FROM:", 0, SK_PATHCMD_OK, "a@example.org", 0},
        {"FROM:<>", "FROM:", SK_ADDR_ALLOW_NULL, SK_PATHCMD_OK, "", 0},
        {"FROM:<a@example.org> SIZE=10 BODY=8BITMIME", "FROM:", 0, SK_PATHCMD_OK, "a@example.org",
         2},
        {"FROM:<a@example.org>   SMTPUTF8   ", "FROM:", 0, SK_PATHCMD_OK, "a@example.org", 1},
        {"FROM:<\"a b\"@example.org> X-Y=1", "FROM:", 0, SK_PATHCMD_OK, "\"a b\"@example.org", 1},
        {"TO:<b@example.com>", "TO:", 0, SK_PATHCMD_OK, "b@example.com", 0},
        {"FROM :<a@example.org>", "FROM:", 0, SK_PATHCMD_E_SYNTAX, NULL, 0},
        {"FROM<a@example.org>", "FROM:", 0, SK_PATHCMD_E_SYNTAX, NULL, 0},
        {"FROM:", "FROM:", 0, SK_PATHCMD_E_SYNTAX, NULL, 0},
        {"FROM:   ", "FROM:", 0, SK_PATHCMD_E_SYNTAX, NULL, 0},
        {"TO:<b@example.com>", "FROM:", 0, SK_PATHCMD_E_SYNTAX, NULL, 0},
        {"FROM:<a@example.org>x", "FROM:", 0, SK_PATHCMD_E_SYNTAX, NULL, 0},
        {"FROM:a@example.org", "FROM:", 0, SK_PATHCMD_E_ADDRESS, NULL, 0},
        {"FROM:<a@example..org>", "FROM:", 0, SK_PATHCMD_E_ADDRESS, NULL, 0},
        {"FROM:<>", "FROM:", 0, SK_PATHCMD_E_ADDRESS, NULL, 0},
        {"FROM:<\xc3\xa9@example.org>", "FROM:", 0, SK_PATHCMD_E_NEEDS_UTF8, NULL, 0},
        {"FROM:<\xc3\xa9@example.org>", "FROM:", SK_ADDR_UTF8, SK_PATHCMD_OK,
         "\xc3\xa9@example.org", 0},
        {"FROM:<a@example.org> =1", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
        {"FROM:<a@example.org> -X=1", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
        {"FROM:<a@example.org> X_Y=1", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
        {"FROM:<a@example.org> SIZE=", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
        {"FROM:<a@example.org> A=b=c", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
        {"FROM:<a@example.org> A=b\x01", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
        {"FROM:<a@example.org> A=\xc3\xa9", "FROM:", 0, SK_PATHCMD_E_PARAM, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const path_case *c = &cases[i];
        sk_path_command pc;
        const char *err = NULL;
        sk_path_cmd_status st =
            sk_command_parse_path(c->arg, strlen(c->arg), c->prefix, c->flags, &pc, &err);
        if (st != c->st)
            fail_msg("'%s': status %d, expected %d (%s)", c->arg, st, c->st, err ? err : "");
        if (st == SK_PATHCMD_OK) {
            assert_string_equal(pc.path.mailbox, c->mailbox);
            assert_int_equal(pc.nparams, c->nparams);
        } else {
            assert_non_null(err);
        }
    }
}

static void test_params(void **state)
{
    (void)state;
    sk_path_command pc;
    const char *err;
    const char *arg = "FROM:<a@example.org> SIZE=1000 body=8BITMIME SMTPUTF8 AUTH=<> X-1=a+b";
    assert_int_equal(sk_command_parse_path(arg, strlen(arg), "FROM:", 0, &pc, &err), SK_PATHCMD_OK);
    assert_int_equal(pc.nparams, 5);
    assert_true(sk_esmtp_param_is(&pc.params[0], "SIZE"));
    assert_int_equal(pc.params[0].value_len, 4);
    assert_memory_equal(pc.params[0].value, "1000", 4);
    assert_true(sk_esmtp_param_is(&pc.params[1], "BODY"));
    assert_memory_equal(pc.params[1].value, "8BITMIME", 8);
    assert_true(sk_esmtp_param_is(&pc.params[2], "smtputf8"));
    assert_null(pc.params[2].value);
    assert_false(sk_esmtp_param_is(&pc.params[2], "SMTPUTF"));
    assert_memory_equal(pc.params[3].value, "<>", 2);
    assert_true(sk_esmtp_param_is(&pc.params[4], "X-1"));
    assert_memory_equal(pc.params[4].value, "a+b", 3);

    /* at most SK_MAX_ESMTP_PARAMS */
    char many[512];
    size_t n = (size_t)snprintf(many, sizeof many, "FROM:<a@example.org>");
    for (int i = 0; i < SK_MAX_ESMTP_PARAMS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, " P%d=1", i);
    assert_int_equal(sk_command_parse_path(many, n, "FROM:", 0, &pc, &err), SK_PATHCMD_OK);
    assert_int_equal(pc.nparams, SK_MAX_ESMTP_PARAMS);
    n += (size_t)snprintf(many + n, sizeof many - n, " ONEMORE");
    assert_int_equal(sk_command_parse_path(many, n, "FROM:", 0, &pc, &err), SK_PATHCMD_E_PARAM);
    assert_non_null(strstr(err, "too many"));
}

static void test_xtext(void **state)
{
    (void)state;
    assert_true(sk_xtext_valid("user+40example.org", 18));
    assert_true(sk_xtext_valid("a", 1));
    assert_true(sk_xtext_valid("+2B", 3));
    assert_false(sk_xtext_valid("", 0));
    assert_false(sk_xtext_valid("a+4", 3));
    assert_false(sk_xtext_valid("a+4g", 4));
    assert_false(sk_xtext_valid("a+4a", 4)); /* hex digits are upper case */
    assert_false(sk_xtext_valid("a=b", 3));
    assert_false(sk_xtext_valid("a b", 3));
    assert_false(sk_xtext_valid("a\x7f", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),      cmocka_unit_test(test_split),
        cmocka_unit_test(test_parse_path), cmocka_unit_test(test_params),
        cmocka_unit_test(test_xtext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
