/*
 * test_session_policy.c - the session's policy gate (ops->policy_check,
 * SK_WANT_POLICY, sk_session_policy_done), which the shell's milters
 * drive: the held reply of HELO/EHLO, MAIL, RCPT and the held commit at
 * the end of data; refusals with the policy's reply when the registry
 * allows it for the command (else 550 5.7.1 / 451 4.7.1), the step
 * undone; discard; no input consumed while a verdict is pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fake_shell.h"

static int steps[16], nsteps;
static char last_arg[300];

static int pending_policy(void *ctx, int step, const sk_session_info *info, const char *arg)
{
    (void)ctx;
    (void)info;
    if (nsteps < 16)
        steps[nsteps++] = step;
    snprintf(last_arg, sizeof last_arg, "%s", arg ? arg : "(null)");
    return SK_POLICY_PENDING;
}

static fake_reply *next(fake *f, int code, const char *enh)
{
    fake_reply *r = fake_pop(f);
    if (r->code != code || strcmp(r->enhanced, enh) != 0)
        fail_msg("want %d %s, got %d %s \"%s\"", code, enh, r->code, r->enhanced, r->text);
    return r;
}

static void start(fake *f)
{
    nsteps = 0;
    fake_defaults(f);
    f->ops.policy_check = pending_policy;
    fake_start(f);
    sk_session_greet(f->s);
    fake_collect(f);
    next(f, 220, "");
}

static const sk_policy_verdict cont = {.action = SK_POLICY_CONTINUE};

static void done(fake *f, const sk_policy_verdict *v)
{
    assert_true(sk_session_wants(f->s) & SK_WANT_POLICY);
    sk_session_policy_done(f->s, v);
    assert_false(sk_session_wants(f->s) & SK_WANT_POLICY);
    fake_collect(f);
}

static void test_replies_wait_for_the_verdict(void **state)
{
    (void)state;
    fake f;
    start(&f);
    /* pipelined: only EHLO is consumed while its verdict is pending */
    const char *in = "EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\n";
    size_t used = fake_send(&f, in);
    assert_int_equal(used, strlen("EHLO c.example\r\n"));
    assert_int_equal(fake_pending(&f), 0);
    assert_int_equal(steps[0], SK_POLICY_HELO);
    assert_string_equal(last_arg, "c.example");
    done(&f, &cont);
    fake_reply *r = next(&f, 250, "");
    assert_non_null(strstr(r->text, "PIPELINING"));
    fake_send(&f, in + used);
    assert_int_equal(fake_pending(&f), 0);
    assert_string_equal(last_arg, "a@remote.example");
    done(&f, &cont);
    next(&f, 250, "2.1.0");
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    assert_string_equal(last_arg, "b@example.com");
    done(&f, &cont);
    next(&f, 250, "2.1.5");
    fake_send(&f, "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    next(&f, 354, "");
    assert_int_equal(fake_pending(&f), 0);
    assert_int_equal(steps[nsteps - 1], SK_POLICY_DATA);
    assert_int_equal(f.commits, 0); /* held until the verdict */
    done(&f, &cont);
    fake_collect(&f);
    /* the fake shell commits when SK_WANT_COMMIT: done synchronously here */
    if (sk_session_wants(f.s) & SK_WANT_COMMIT)
        sk_session_commit_done(f.s, SK_STORE_OK);
    fake_collect(&f);
    next(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 1);
    fake_finish(&f);
}

static void test_refusals(void **state)
{
    (void)state;
    fake f;
    start(&f);
    fake_send(&f, "EHLO c.example\r\n");
    done(&f, &cont);
    next(&f, 250, "");

    /* MAIL tempfail: no transaction */
    fake_send(&f, "MAIL FROM:<a@remote.example>\r\n");
    sk_policy_verdict v = {.action = SK_POLICY_TEMPFAIL};
    done(&f, &v);
    fake_reply *r = next(&f, 451, "4.7.1");
    assert_string_equal(r->text, "Service unavailable - try again later");
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    next(&f, 503, "5.5.1");

    fake_send(&f, "MAIL FROM:<a@remote.example>\r\n");
    done(&f, &cont);
    next(&f, 250, "2.1.0");
    /* RCPT: the policy's own valid reply is passed through, the recipient dropped */
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    v = (sk_policy_verdict){.action = SK_POLICY_REJECT,
                            .code = 550,
                            .enhanced = "5.7.1",
                            .text = "Recipient refused\x01 by filter"};
    done(&f, &v);
    r = next(&f, 550, "5.7.1");
    assert_string_equal(r->text, "Recipient refused? by filter");
    /* a code the registry does not list for RCPT (554) gets the default */
    fake_send(&f, "RCPT TO:<c@example.com>\r\n");
    v = (sk_policy_verdict){
        .action = SK_POLICY_REJECT, .code = 554, .enhanced = "5.7.1", .text = "nope"};
    done(&f, &v);
    r = next(&f, 550, "5.7.1");
    assert_string_equal(r->text, "Command rejected");
    /* an enhanced code of another class gets the default too */
    fake_send(&f, "RCPT TO:<c@example.com>\r\n");
    v = (sk_policy_verdict){
        .action = SK_POLICY_REJECT, .code = 550, .enhanced = "4.7.1", .text = "nope"};
    done(&f, &v);
    r = next(&f, 550, "5.7.1");
    assert_string_equal(r->text, "Command rejected");
    /* a 450 the registry lists for RCPT is passed through */
    fake_send(&f, "RCPT TO:<c@example.com>\r\n");
    done(&f,
         &(sk_policy_verdict){
             .action = SK_POLICY_TEMPFAIL, .code = 450, .enhanced = "4.7.1", .text = "greylisted"});
    r = next(&f, 450, "4.7.1");
    assert_string_equal(r->text, "greylisted");
    /* a tempfail's code must be 4xx */
    fake_send(&f, "RCPT TO:<c@example.com>\r\n");
    v = (sk_policy_verdict){.action = SK_POLICY_TEMPFAIL, .code = 550, .text = "nope"};
    done(&f, &v);
    next(&f, 451, "4.7.1");
    /* no recipient was kept: DATA is refused */
    fake_send(&f, "DATA\r\n");
    next(&f, 554, "5.5.1");
    /* a policy's 421 closes the connection (RFC 5321 3.8) */
    fake_send(&f, "RCPT TO:<c@example.com>\r\n");
    sk_policy_verdict v421 = {
        .action = SK_POLICY_TEMPFAIL, .code = 421, .enhanced = "4.7.0", .text = "closing"};
    done(&f, &v421);
    r = next(&f, 421, "4.7.0");
    assert_non_null(strstr(r->text, "closing"));
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    fake_finish(&f);
}

static void test_end_of_data(void **state)
{
    (void)state;
    fake f;
    start(&f);
    fake_send(&f, "HELO c.example\r\n");
    done(&f, &cont);
    next(&f, 250, "");
    const char *tx = "MAIL FROM:<a@remote.example>\r\n";
    /* reject at the end of data: nothing committed, the message aborted */
    fake_send(&f, tx);
    done(&f, &cont);
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    done(&f, &cont);
    fake_send(&f, "DATA\r\nSubject: x\r\n\r\nspam\r\n.\r\n");
    next(&f, 250, "2.1.0");
    next(&f, 250, "2.1.5");
    next(&f, 354, "");
    sk_policy_verdict v = {
        .action = SK_POLICY_REJECT, .code = 554, .enhanced = "5.7.1", .text = "Spam detected"};
    int aborts = f.aborts;
    done(&f, &v);
    fake_reply *r = next(&f, 554, "5.7.1");
    assert_string_equal(r->text, "Spam detected");
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.aborts, aborts + 1);

    /* discard: 250, nothing committed */
    fake_send(&f, tx);
    done(&f, &cont);
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    done(&f, &cont);
    fake_send(&f, "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    next(&f, 250, "2.1.0");
    next(&f, 250, "2.1.5");
    next(&f, 354, "");
    v = (sk_policy_verdict){.action = SK_POLICY_DISCARD};
    done(&f, &v);
    r = next(&f, 250, "2.0.0");
    assert_non_null(strstr(r->text, "Ok: queued as "));
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.aborts, aborts + 2);

    /* BDAT LAST goes through the same gate */
    fake_send(&f, tx);
    done(&f, &cont);
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    done(&f, &cont);
    fake_send(&f, "BDAT 4 LAST\r\nhi\r\n");
    next(&f, 250, "2.1.0");
    next(&f, 250, "2.1.5");
    assert_int_equal(steps[nsteps - 1], SK_POLICY_DATA);
    v = (sk_policy_verdict){.action = SK_POLICY_TEMPFAIL};
    done(&f, &v);
    next(&f, 451, "4.7.1");
    fake_finish(&f);
}

static void test_helo_refused_and_client_gone(void **state)
{
    (void)state;
    fake f;
    start(&f);
    fake_send(&f, "EHLO c.example\r\n");
    sk_policy_verdict v = {.action = SK_POLICY_REJECT, .code = 550, .text = "go away"};
    done(&f, &v);
    fake_reply *r = fake_pop(&f);
    assert_int_equal(r->code, 550);
    assert_string_equal(r->text, "go away");
    assert_null(sk_session_get_info(f.s)->helo);
    /* RFC 5321 lists no 4xx for HELO/EHLO but 421: a temporary refusal closes */
    fake_send(&f, "EHLO c.example\r\n");
    v = (sk_policy_verdict){.action = SK_POLICY_TEMPFAIL};
    done(&f, &v);
    r = fake_pop(&f);
    assert_int_equal(r->code, 421);
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    fake_finish(&f);
    start(&f);

    /* a verdict after the client left is ignored; freeing while pending is safe */
    fake_send(&f, "HELO c.example\r\n");
    sk_session_disconnected(f.s);
    sk_session_policy_done(f.s, &cont);
    fake_collect(&f);
    assert_int_equal(fake_pending(&f), 0);
    fake_send(&f, "");
    fake_finish(&f);

    start(&f);
    fake_sendf(&f, "HELO %s\r\nMAIL FROM:<a@remote.example>\r\n", "c.example");
    assert_true(sk_session_wants(f.s) & SK_WANT_POLICY);
    fake_finish(&f); /* sk_session_free with a verdict pending */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies_wait_for_the_verdict),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_end_of_data),
        cmocka_unit_test(test_helo_refused_and_client_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
