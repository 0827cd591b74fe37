/*
 * test_audit.c - the audit's check table against the reply registry (every
 * code a check names is one the registry lists for that command), the
 * allowed-reply logic, exit statuses and scores, and the reports: text
 * lines, JSON and HTML with everything from the server escaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/audit.h"
#include "smtpkit/registry.h"

static const char *step_cmd(const sk_audit_step *st, char *v, size_t vn)
{
    if (st->cmd)
        return st->cmd;
    size_t k = 0;
    for (const char *p = st->text; *p && *p != ' ' && *p != ':' && k + 1 < vn; p++)
        v[k++] = *p;
    v[k] = '\0';
    return v;
}

static void test_table_is_consistent_with_registry(void **state)
{
    (void)state;
    assert_true(sk_audit_ncheck() >= 40);
    for (size_t i = 0; i < sk_audit_ncheck(); i++) {
        const sk_audit_check *c = sk_audit_check_at(i);
        assert_non_null(c->name);
        assert_true(strncmp(c->rfc, "RFC ", 4) == 0);
        assert_true(strlen(c->rule) > 20);
        assert_true(strlen(c->title) > 10);
        assert_ptr_equal(sk_audit_check_find(c->name), c); /* names are unique */
        if (c->needs & SK_AUDIT_GLOBAL) {
            assert_int_not_equal(c->global, SK_AUDIT_G_NONE);
            continue;
        }
        assert_int_not_equal(c->steps[0].op, SK_AOP_END);
        for (size_t k = 0; k < SK_AUDIT_STEPS_MAX && c->steps[k].op != SK_AOP_END; k++) {
            const sk_audit_step *st = &c->steps[k];
            if (st->op != SK_AOP_CMD && st->op != SK_AOP_SETUP && st->op != SK_AOP_REPLY &&
                st->op != SK_AOP_EHLO)
                continue;
            char v[32];
            const char *cmd = step_cmd(st, v, sizeof v);
            int bad = 0;
            if (sk_audit_allow_unlisted(st->allow, cmd, &bad))
                fail_msg("check %s step %zu: %d is not a reply the registry lists for %s", c->name,
                         k, bad, cmd);
            /* a step admits at least one code */
            char txt[200];
            sk_audit_allowed_text(st->allow, cmd, txt, sizeof txt);
            if (!txt[0])
                fail_msg("check %s step %zu admits no reply to %s", c->name, k, cmd);
        }
    }
    /* the checks that deliver say so, and only they send data */
    for (size_t i = 0; i < sk_audit_ncheck(); i++) {
        const sk_audit_check *c = sk_audit_check_at(i);
        for (size_t k = 0; k < SK_AUDIT_STEPS_MAX; k++)
            if ((c->steps[k].op == SK_AOP_DATA && !c->steps[k].cmd) ||
                c->steps[k].op == SK_AOP_BIGDATA)
                assert_true(c->needs & SK_AUDIT_NEED_DELIVER);
    }
}

static void test_allows(void **state)
{
    (void)state;
    assert_true(sk_audit_allows("503", "RCPT", 503));
    assert_false(sk_audit_allows("503", "RCPT", 250));
    assert_true(sk_audit_allows(NULL, "RCPT", 250));
    assert_false(sk_audit_allows(NULL, "EHLO", 354));  /* the registry: never */
    assert_false(sk_audit_allows("354", "EHLO", 354)); /* a narrowing cannot widen */
    assert_true(sk_audit_allows("-503", "NOOP", 250));
    assert_false(sk_audit_allows("-250", "NOOP", 250));
    assert_true(sk_audit_allows("5xx", "RCPT", 550));
    assert_false(sk_audit_allows("5xx", "RCPT", 250));
    assert_true(sk_audit_allows("4xx 5xx", "RCPT", 450));
    assert_false(sk_audit_allows("4xx 5xx", "RCPT", 454));  /* 454 is no RCPT reply */
    assert_true(sk_audit_allows("* 4xx 5xx", "RCPT", 454)); /* "*": the class alone */
    assert_false(sk_audit_allows("* 4xx 5xx", "RCPT", 250));
    char any[100];
    sk_audit_allowed_text("* 4xx 5xx", "RCPT", any, sizeof any);
    assert_string_equal(any, "any 4xx or 5xx reply");
    assert_false(sk_audit_allows("220 554 421", "CONNECT", 250));
    assert_true(sk_audit_allows("220 554 421", "CONNECT", 554));
    assert_true(sk_audit_allows("501", "AUTH", 501));
    assert_false(sk_audit_allows("501", "AUTH", 535));
    char t[200];
    sk_audit_allowed_text("503 554", "DATA", t, sizeof t);
    assert_string_equal(t, "503 or 554");
    sk_audit_allowed_text("220 214 502", "HELP", t, sizeof t);
    assert_string_equal(t, "214 or 502"); /* 220 is no reply to HELP */
    int bad = 0;
    assert_int_equal(sk_audit_allow_unlisted("220 214 502", "HELP", &bad), 1);
    assert_int_equal(bad, 220);
}

static sk_audit_report *fake_report(void)
{
    static sk_audit_result res[3];
    static sk_audit_line lines[3];
    static sk_audit_report rep;
    memset(&rep, 0, sizeof rep);
    memset(res, 0, sizeof res);
    snprintf(rep.target, sizeof rep.target, "mx.example:25");
    rep.tls_mode = "none";
    snprintf(rep.greeting, sizeof rep.greeting, "220 <script>alert(1)</script> ESMTP");
    snprintf(rep.caps, sizeof rep.caps, "PIPELINING\nSIZE 1000");
    res[0].check = sk_audit_check_find("rcpt-before-mail");
    res[0].outcome = SK_AUDIT_FAIL;
    snprintf(res[0].reason, sizeof res[0].reason, "RCPT: the server answered \"250 <ok> & 'x'\"");
    snprintf(res[0].allowed, sizeof res[0].allowed, "503");
    lines[0].dir = 'C';
    lines[0].text = (char *)"RCPT TO:<postmaster>";
    lines[1].dir = 'S';
    lines[1].text = (char *)"250 \"<img src=x onerror=alert(1)>\"";
    lines[2].dir = '*';
    lines[2].text = (char *)"note";
    res[0].dialogue = lines;
    res[0].ndialogue = 3;
    res[1].check = sk_audit_check_find("noop");
    res[1].outcome = SK_AUDIT_PASS;
    res[2].check = sk_audit_check_find("unknown-command");
    res[2].outcome = SK_AUDIT_SKIP;
    snprintf(res[2].reason, sizeof res[2].reason, "only with <x>");
    rep.results = res;
    rep.nresults = 3;
    rep.fail[SK_AUDIT_MUST] = 1;
    rep.pass[SK_AUDIT_MUST] = 1;
    rep.skip[SK_AUDIT_SHOULD] = 1;
    return &rep;
}

static void test_exit_status_and_score(void **state)
{
    (void)state;
    sk_audit_report *rep = fake_report();
    assert_int_equal(sk_audit_exit_status(rep), 2);
    assert_int_equal(sk_audit_score(rep, SK_AUDIT_MUST), 50);
    assert_int_equal(sk_audit_score(rep, SK_AUDIT_SHOULD), -1);
    rep->fail[SK_AUDIT_MUST] = 0;
    rep->fail[SK_AUDIT_SHOULD] = 2;
    assert_int_equal(sk_audit_exit_status(rep), 1);
    rep->fail[SK_AUDIT_SHOULD] = 0;
    rep->fail[SK_AUDIT_BEST] = 3; /* best practice alone keeps 0 */
    assert_int_equal(sk_audit_exit_status(rep), 0);
    rep->could_not_run = 4;
    assert_int_equal(sk_audit_exit_status(rep), 4);
}

static void test_html_escapes_everything(void **state)
{
    (void)state;
    sk_audit_report *rep = fake_report();
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_audit_write_html(rep, 0, &b), 0);
    assert_null(strstr(b.data, "<script>"));
    assert_null(strstr(b.data, "<img"));
    assert_null(strstr(b.data, "<ok>"));
    assert_non_null(strstr(b.data, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(b.data, "&quot;&lt;img src=x onerror=alert(1)&gt;&quot;"));
    assert_non_null(strstr(b.data, "&lt;ok&gt; &amp; &#39;x&#39;"));
    assert_non_null(strstr(b.data, "<!DOCTYPE html>"));
    assert_non_null(strstr(b.data, "id=\"fail-rcpt-before-mail\""));
    assert_non_null(strstr(b.data, "class=\"FAIL\" id=\"check-rcpt-before-mail\""));
    assert_non_null(strstr(b.data, "only with &lt;x&gt;"));
    assert_null(strstr(b.data, "<script")); /* no script at all: self-contained, inert */
    sk_buf_clear(&b);
    assert_int_equal(sk_html_escape(&b, "a\x01<b\x7f"), 0);
    assert_string_equal(b.data, "a?&lt;b?");
    sk_buf_free(&b);
}

static void test_text_and_json(void **state)
{
    (void)state;
    sk_audit_report *rep = fake_report();
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_audit_write_text(rep, &b), 0);
    assert_non_null(strstr(b.data, "\nFAIL  MUST    rcpt-before-mail         RFC 5321 3.3 "));
    assert_non_null(strstr(b.data, "\nPASS  MUST    noop "));
    assert_non_null(strstr(b.data, "\nSKIP  SHOULD  unknown-command "));
    assert_non_null(strstr(b.data, "  allowed:  503\n"));
    assert_non_null(strstr(b.data, "    C: RCPT TO:<postmaster>\n"));
    assert_non_null(strstr(b.data, "MUST            1 passed,  1 failed,  0 skipped  score 50%"));
    assert_non_null(strstr(b.data, "Result: MUST failures (exit 2)"));
    sk_buf_clear(&b);
    assert_int_equal(sk_audit_write_json(rep, &b), 0);
    assert_non_null(strstr(b.data, "\"name\":\"rcpt-before-mail\""));
    assert_non_null(strstr(b.data, "\"outcome\":\"FAIL\""));
    assert_non_null(strstr(b.data, "\"exit\":2"));
    assert_non_null(strstr(b.data, "\"must\":{\"pass\":1,\"fail\":1,\"skip\":0,\"score\":50}"));
    assert_non_null(strstr(b.data, "\"capabilities\":[\"PIPELINING\",\"SIZE 1000\"]"));
    sk_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent_with_registry),
        cmocka_unit_test(test_allows),
        cmocka_unit_test(test_exit_status_and_score),
        cmocka_unit_test(test_html_escapes_everything),
        cmocka_unit_test(test_text_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
