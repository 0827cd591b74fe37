/*
 * test_hop_count.c - the Received: field counter (RFC 5321 6.3): only
 * fields of the header section count, any split of the input gives the same
 * count, names are matched exactly (case-insensitive, WSP before ':').
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/hop_count.h"

static unsigned count_split(const char *msg, size_t step, int *body)
{
    sk_hop_count h;
    sk_hop_count_init(&h);
    size_t n = strlen(msg);
    for (size_t i = 0; i < n; i += step)
        sk_hop_count_feed(&h, msg + i, n - i < step ? n - i : step);
    *body = sk_hop_count_body_reached(&h);
    return h.count;
}

static void check(const char *msg, unsigned want, int want_body)
{
    for (size_t step = 1; step <= strlen(msg) + 1; step++) {
        int body;
        unsigned got = count_split(msg, step, &body);
        if (got != want || body != want_body)
            fail_msg("step %zu: count %u body %d, want %u %d for \"%s\"", step, got, body, want,
                     want_body, msg);
    }
}

static void test_counts_header_fields(void **state)
{
    (void)state;
    check("Received: a\r\nreceived: b\r\nRECEIVED:c\r\nSubject: x\r\n\r\nbody\r\n", 3, 1);
    check("Received : obsolete WSP before the colon\r\nReceived\t:x\r\n\r\n", 2, 1);
    /* folded continuation lines belong to the field before them */
    check("Received: from a\r\n by b\r\n Received: not a field\r\n\tReceived: nor this\r\n\r\n", 1,
          1);
    check("", 0, 0);
    check("Received: only headers, no body\r\n", 1, 0);
}

static void test_other_names_do_not_count(void **state)
{
    (void)state;
    check("Received-SPF: pass\r\nX-Received: x\r\nReceivedx: y\r\nReceive: z\r\n"
          "Received\r\nReceived x: y\r\n\r\n",
          0, 1);
    check("Subject: Received: in a value\r\n\r\n", 0, 1);
}

static void test_body_never_counts(void **state)
{
    (void)state;
    check("Subject: x\r\n\r\nReceived: in the body\r\nReceived: again\r\n", 0, 1);
    check("\r\nReceived: no header section at all\r\n", 0, 1);
    /* an attached message's header section is body too */
    check("Received: a\r\nContent-Type: message/rfc822\r\n\r\nReceived: b\r\n\r\nReceived: c\r\n",
          1, 1);
}

static void test_bare_line_ends(void **state)
{
    (void)state;
    /* the data framer normalises bare CR/LF; the counter still never runs
     * past a line end it cannot see */
    check("Received: a\nReceived: b\n\nReceived: body\n", 2, 1);
    check("Received: a\r\rReceived: b\r\n\r\n", 1, 1);
}

static void test_saturates(void **state)
{
    (void)state;
    sk_hop_count h;
    sk_hop_count_init(&h);
    h.count = UINT32_MAX;
    sk_hop_count_feed(&h, "Received: x\r\n", 13);
    assert_int_equal(h.count, UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_header_fields),
        cmocka_unit_test(test_other_names_do_not_count),
        cmocka_unit_test(test_body_never_counts),
        cmocka_unit_test(test_bare_line_ends),
        cmocka_unit_test(test_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
