/*
 * test_username_format.c - auth_username_format (server/username_format.c)
 * expands as Dovecot's does: %u, %n, %d, the L/U modifiers, %%, literal
 * text; bad templates are refused with a reason; results that do not fit
 * are refused, never cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "server/username_format.h"

static void expect(const char *fmt, const char *user, const char *want)
{
    char out[64];
    if (sk_username_format(fmt, user, out, sizeof out) != 0)
        fail_msg("%s on %s failed", fmt ? fmt : "(null)", user);
    if (strcmp(out, want) != 0)
        fail_msg("%s on %s: want \"%s\", got \"%s\"", fmt ? fmt : "(null)", user, want, out);
}

static void test_expansions(void **state)
{
    (void)state;
    expect(NULL, "Alice@Example.ORG", "Alice@Example.ORG");
    expect("%u", "Alice@Example.ORG", "Alice@Example.ORG");
    expect("%Lu", "Alice@Example.ORG", "alice@example.org");
    expect("%Uu", "alice", "ALICE");
    expect("%n", "Alice@Example.ORG", "Alice");
    expect("%Ln", "Alice@Example.ORG", "alice");
    expect("%d", "Alice@Example.ORG", "Example.ORG");
    expect("%Ld", "Alice@Example.ORG", "example.org");
    expect("%Ln@%Ld", "Alice@Example.ORG", "alice@example.org");
    expect("%n", "bob", "bob");
    expect("%d", "bob", "");
    expect("%n@example.org", "bob", "bob@example.org");
    expect("100%%-%u", "x", "100%-x");
    /* The last '@' is not special: the first one splits, as in Dovecot. */
    expect("%n|%d", "a@b@c", "a|b@c");
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *bad[] = {"", "%", "%x", "%L", "%Lx", "%L%", "a b%u", "%u:x", "plain", "%%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[16];
        if (!sk_username_format_check(bad[i]))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(sk_username_format(bad[i], "u", out, sizeof out), -1);
    }
    assert_null(sk_username_format_check("%Lu"));
    char small[5];
    assert_int_equal(sk_username_format("%u", "alice", small, sizeof small), -1);
    assert_int_equal(sk_username_format("%u", "alic", small, sizeof small), 0);
    assert_string_equal(small, "alic");
    assert_int_equal(sk_username_format("%u", NULL, small, sizeof small), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expansions),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
