/*
 * test_client_dotstuff.c - CRLF normalisation (RFC 5321 2.3.8) and
 * dot-stuffing with the end-of-data marker (RFC 5321 4.5.2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtpkit/client.h"

#define NORM(in, want) norm_is(in, sizeof(in) - 1, want, sizeof(want) - 1)
#define STUFF(in, want) stuff_is(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void norm_is(const char *in, size_t n, const char *want, size_t wn)
{
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_crlf_normalise(in, n, &b), 0);
    assert_int_equal(b.len, wn);
    if (b.len)
        assert_memory_equal(b.data, want, b.len);
    sk_buf_free(&b);
}

static void stuff_is(const char *in, size_t n, const char *want, size_t wn)
{
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_dot_stuff(in, n, &b), 0);
    assert_int_equal(b.len, wn);
    assert_memory_equal(b.data, want, b.len);
    sk_buf_free(&b);
}

static void test_normalise(void **state)
{
    (void)state;
    NORM("", "");
    NORM("a", "a\r\n");
    NORM("a\nb", "a\r\nb\r\n");
    NORM("a\rb\r\n", "a\r\nb\r\n");
    NORM("a\r\n\r\nb\n", "a\r\n\r\nb\r\n");
    NORM("\n\n", "\r\n\r\n");
    NORM("x\r", "x\r\n");
    NORM("x\n\r", "x\r\n\r\n"); /* LF then a bare CR: two line ends */
    NORM("a\0b\n", "a\0b\r\n"); /* NUL passes; the MIME layer encodes it */
}

static void test_normalise_limit(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 8);
    assert_int_equal(sk_crlf_normalise("1234567\n", 8, &b), -1);
    sk_buf_free(&b);
}

static void test_stuff(void **state)
{
    (void)state;
    STUFF("", ".\r\n");
    STUFF("a\r\n", "a\r\n.\r\n");
    STUFF("a", "a\r\n.\r\n");
    STUFF(".\r\n", "..\r\n.\r\n");
    STUFF(".a\r\nb\r\n..c\r\n", "..a\r\nb\r\n...c\r\n.\r\n");
    STUFF("a.b\r\n.", "a.b\r\n..\r\n.\r\n");
    /* A bare LF still starts a line here: no "\n.\r\n" reaches a lenient server. */
    STUFF("x\n.\r\n", "x\n..\r\n.\r\n");
    STUFF("x\r.y", "x\r..y\r\n.\r\n");
}

static void test_stuff_never_ends_early(void **state)
{
    (void)state;
    /* Whatever the text, the only CRLF.CRLF in the output is the last one. */
    const char *inputs[] = {".\r\n.\r\n", "\r\n.\r\n", "a\r\n.\r\nb", "..\r\n.", "\n.\n"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        sk_buf n, s;
        sk_buf_init(&n, 0);
        sk_buf_init(&s, 0);
        assert_int_equal(sk_crlf_normalise(inputs[i], strlen(inputs[i]), &n), 0);
        assert_int_equal(sk_dot_stuff(n.data ? n.data : "", n.len, &s), 0);
        char *first = memmem(s.data, s.len, "\r\n.\r\n", 5);
        if (s.len == 3)
            assert_memory_equal(s.data, ".\r\n", 3);
        else
            assert_ptr_equal(first, s.data + s.len - 5);
        sk_buf_free(&n);
        sk_buf_free(&s);
    }
}

static void test_stuff_limit(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 5);
    assert_int_equal(sk_dot_stuff("abc\r\n", 5, &b), -1);
    sk_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalise),   cmocka_unit_test(test_normalise_limit),
        cmocka_unit_test(test_stuff),       cmocka_unit_test(test_stuff_never_ends_early),
        cmocka_unit_test(test_stuff_limit),
    };
    return cmocka_run_group_tests_name("client_dotstuff", tests, NULL, NULL);
}
