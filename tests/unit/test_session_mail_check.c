/*
 * test_session_mail_check.c - the session's optional mail_check hook
 * (RFC 6409 6.1: a submission server may refuse an envelope sender the
 * authenticated user does not own): 553 5.7.1, the transaction stays
 * closed, the hook sees the authenticated identity and the bare path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fake_shell.h"

static char seen_user[64], seen_path[300];
static int checks;

/* Allow only "<user>@example.com" and the null path. */
static int own_address_only(void *ctx, const sk_session_info *info, const char *path)
{
    (void)ctx;
    checks++;
    snprintf(seen_user, sizeof seen_user, "%s", info->auth_user ? info->auth_user : "(none)");
    snprintf(seen_path, sizeof seen_path, "%s", path);
    if (!*path)
        return 1;
    char want[128];
    snprintf(want, sizeof want, "%s@example.com", info->auth_user ? info->auth_user : "");
    return info->auth_user && !strcmp(path, want);
}

static fake_reply *next(fake *f, int code, const char *enh)
{
    fake_reply *r = fake_pop(f);
    if (r->code != code || strcmp(r->enhanced, enh) != 0)
        fail_msg("want %d %s, got %d %s \"%s\"", code, enh, r->code, r->enhanced, r->text);
    return r;
}

static void test_mail_check(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.ops.mail_check = own_address_only;
    fake_start(&f);
    sk_session_greet(f.s);
    fake_send(&f, "EHLO c.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    next(&f, 220, "");
    next(&f, 250, "");
    next(&f, 235, "2.7.0");

    checks = 0;
    fake_send(&f, "MAIL FROM:<boss@example.com>\r\nRCPT TO:<b@example.com>\r\n");
    fake_reply *r = next(&f, 553, "5.7.1");
    assert_non_null(strstr(r->text, "not owned by the authenticated user"));
    next(&f, 503, "5.5.1"); /* no transaction was opened */
    assert_int_equal(checks, 1);
    assert_string_equal(seen_user, "user");
    assert_string_equal(seen_path, "boss@example.com");

    fake_send(&f, "MAIL FROM:<user@example.com> SIZE=10\r\nRCPT TO:<b@example.com>\r\n"
                  "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    next(&f, 250, "2.1.0");
    next(&f, 250, "2.1.5");
    next(&f, 354, "");
    next(&f, 250, "2.0.0");
    assert_string_equal(seen_path, "user@example.com");

    fake_sendf(&f, "MAIL FROM:<%s>\r\n", "");
    next(&f, 250, "2.1.0");
    assert_string_equal(seen_path, "");
    assert_int_equal(checks, 3);

    /* A syntax error is answered before the hook is asked. */
    fake_send(&f, "RSET\r\nMAIL FROM:<user@@example.com>\r\n");
    next(&f, 250, "2.0.0");
    next(&f, 501, "5.1.7");
    assert_int_equal(checks, 3);
    assert_int_equal(fake_pending(&f), 0);
    fake_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
