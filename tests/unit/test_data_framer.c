/*
 * test_data_framer.c - the DATA/BDAT byte framer: end of data only at
 * CRLF.CRLF (RFC 5321 4.1.1.4, 2.3.8), every SMTP smuggling variant,
 * dot-unstuffing (4.5.2), and identical output for any split of the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/data_framer.h"
#include "smtpkit/buf.h"

typedef struct sink {
    sk_buf out;
    size_t calls, largest;
} sink;

static void sink_fn(void *arg, const char *p, size_t n)
{
    sink *k = arg;
    k->calls++;
    if (n > k->largest)
        k->largest = n;
    assert_true(n > 0);
    assert_int_equal(sk_buf_append(&k->out, p, n), 0);
}

typedef struct result {
    sk_buf out;
    size_t consumed;
    int done;
    unsigned seen;
} result;

/* Feed `in` in pieces: split at `at` (0 = one piece) or byte by byte. */
static void run(sk_framer_mode mode, const char *in, size_t n, size_t at, int bytewise, result *r)
{
    sink k = {0};
    sk_buf_init(&k.out, 0);
    sk_data_framer f;
    sk_data_framer_init(&f, mode, sink_fn, &k);
    size_t pos = 0;
    int done = 0;
    while (pos < n && !done) {
        size_t len = bytewise ? 1 : (at && pos < at ? at - pos : n - pos);
        size_t used = sk_data_framer_feed(&f, in + pos, len, &done);
        if (!done)
            assert_int_equal(used, len); /* all consumed unless the end was found */
        pos += used;
    }
    r->out = k.out;
    r->consumed = pos;
    r->done = done;
    r->seen = f.seen;
}

typedef struct end_case {
    const char *in;
    size_t len; /* 0: strlen */
    int done;
    size_t consumed; /* when done */
    const char *out;
    unsigned seen;
    size_t outlen; /* 0: strlen(out) */
} end_case;

#define LF SK_FRAMER_SEEN_BARE_LF
#define CR SK_FRAMER_SEEN_BARE_CR

static const end_case dot_cases[] = {
    /* real ends */
    {".\r\n", 0, 1, 3, "", 0, 0},
    {"a\r\n.\r\n", 0, 1, 6, "a\r\n", 0, 0},
    {"a\r\n.\r\nMAIL FROM:<x@y>\r\n", 0, 1, 6, "a\r\n", 0, 0},
    {"\r\n.\r\n", 0, 1, 5, "\r\n", 0, 0},
    {"a\r\nb\r\n\r\n.\r\n", 0, 1, 11, "a\r\nb\r\n\r\n", 0, 0},
    /* dot-stuffing (RFC 5321 4.5.2) */
    {"..a\r\n.\r\n", 0, 1, 8, ".a\r\n", 0, 0},
    {"...\r\n.\r\n", 0, 1, 8, "..\r\n", 0, 0},
    {"..\r\n.\r\n", 0, 1, 7, ".\r\n", 0, 0},
    {"a.\r\n.\r\n", 0, 1, 7, "a.\r\n", 0, 0},
    {". x\r\n.\r\n", 0, 1, 8, " x\r\n", 0, 0},
    {"a\r\n..\r\n.\r\n", 0, 1, 10, "a\r\n.\r\n", 0, 0},
    /* SMTP smuggling: none of these is an end */
    {"a\n.\nb", 0, 0, 0, "a\r\n.\r\nb", LF, 0},
    {"a\n.\r\nb", 0, 0, 0, "a\r\n.\r\nb", LF, 0},
    {"a\r\n.\nb", 0, 0, 0, "a\r\n\r\nb", LF, 0},
    {"a\r.\rb", 0, 0, 0, "a\r\n.\r\nb", CR, 0},
    {"a\r\n.\rb", 0, 0, 0, "a\r\n\r\nb", CR, 0},
    {"a\n.\r\r\nb", 0, 0, 0, "a\r\n.\r\n\r\nb", LF | CR, 0},
    {"a\r.\r\nb", 0, 0, 0, "a\r\n.\r\nb", CR, 0},
    {"a\r\n.\r\r\n", 0, 0, 0, "a\r\n\r\n\r\n", CR, 0},
    {"a\r\n\n.\n", 0, 0, 0, "a\r\n\r\n.\r\n", LF, 0},
    {"\n.\r\n", 0, 0, 0, "\r\n.\r\n", LF, 0},
    {"a\r\n. \r\n", 0, 0, 0, "a\r\n \r\n", 0, 0},
    {"a\r\n.\x00\r\n", 7, 0, 0, "a\r\n\x00\r\n", 0, 6},
    /* ... and the real end after them still works */
    {"a\n.\nb\r\n.\r\n", 0, 1, 10, "a\r\n.\r\nb\r\n", LF, 0},
    {"a\r.\rb\r\n.\r\n", 0, 1, 10, "a\r\n.\r\nb\r\n", CR, 0},
};

static void check_case(const end_case *c, size_t at, int bytewise)
{
    size_t n = c->len ? c->len : strlen(c->in);
    size_t outlen = c->outlen ? c->outlen : strlen(c->out);
    result r;
    run(SK_FRAMER_DOTS, c->in, n, at, bytewise, &r);
    if (r.done != c->done || (c->done && r.consumed != c->consumed) ||
        (!c->done && r.consumed != n) || r.out.len != outlen ||
        (outlen && memcmp(r.out.data, c->out, outlen) != 0) || r.seen != c->seen)
        fail_msg("case '%s' split %zu bytewise %d: done %d consumed %zu seen %u out(%zu) "
                 "'%.*s'",
                 c->in, at, bytewise, r.done, r.consumed, r.seen, r.out.len, (int)r.out.len,
                 r.out.data ? r.out.data : "");
    sk_buf_free(&r.out);
}

static void test_end_of_data_and_smuggling(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dot_cases / sizeof dot_cases[0]; i++)
        check_case(&dot_cases[i], 0, 0);
}

static void test_every_split_point(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dot_cases / sizeof dot_cases[0]; i++) {
        const end_case *c = &dot_cases[i];
        size_t n = c->len ? c->len : strlen(c->in);
        for (size_t at = 1; at < n; at++)
            check_case(c, at, 0);
        check_case(c, 0, 1);
    }
}

static void test_long_message_splits(void **state)
{
    (void)state;
    /* a message mixing everything, fed whole, byte by byte and at every split */
    sk_buf in;
    sk_buf_init(&in, 0);
    for (int i = 0; i < 300; i++)
        sk_buf_printf(&in, "%sline %d\r\n%s", i % 7 == 0 ? "." : "", i,
                      i % 11 == 0 ? "..\r\n" : "");
    sk_buf_append_str(&in, "x\n.\ny\r.\r\n.\r\nTRAILER");
    result whole;
    run(SK_FRAMER_DOTS, in.data, in.len, 0, 0, &whole);
    assert_true(whole.done);
    assert_int_equal(whole.consumed, in.len - strlen("TRAILER"));
    assert_int_equal(whole.seen, LF | CR);
    result one;
    run(SK_FRAMER_DOTS, in.data, in.len, 0, 1, &one);
    assert_int_equal(one.out.len, whole.out.len);
    assert_memory_equal(one.out.data, whole.out.data, whole.out.len);
    assert_int_equal(one.consumed, whole.consumed);
    for (size_t at = 1; at < in.len; at += 37) {
        result r;
        run(SK_FRAMER_DOTS, in.data, in.len, at, 0, &r);
        assert_int_equal(r.out.len, whole.out.len);
        assert_memory_equal(r.out.data, whole.out.data, whole.out.len);
        assert_int_equal(r.consumed, whole.consumed);
        sk_buf_free(&r.out);
    }
    /* unstuffed: no line of the output starts with "." unless it was ".." */
    assert_non_null(strstr(whole.out.data, "\r\nline 7\r\n"));
    assert_non_null(strstr(whole.out.data, "\r\n.\r\nline 12\r\n"));
    sk_buf_free(&in);
    sk_buf_free(&whole.out);
    sk_buf_free(&one.out);
}

static void test_output_chunks(void **state)
{
    (void)state;
    sk_buf in;
    sk_buf_init(&in, 0);
    for (int i = 0; i < 1000; i++)
        sk_buf_append_str(&in, "0123456789012345678901234567890123456789\r\n");
    sk_buf_append_str(&in, ".\r\n");
    sink k = {0};
    sk_buf_init(&k.out, 0);
    sk_data_framer f;
    sk_data_framer_init(&f, SK_FRAMER_DOTS, sink_fn, &k);
    int done = 0;
    size_t used = sk_data_framer_feed(&f, in.data, in.len, &done);
    assert_true(done);
    assert_int_equal(used, in.len);
    assert_int_equal(k.out.len, in.len - 3); /* everything delivered before returning */
    assert_true(k.largest <= SK_FRAMER_CHUNK);
    assert_true(k.calls >= in.len / SK_FRAMER_CHUNK);
    sk_buf_free(&in);
    sk_buf_free(&k.out);
}

static void test_raw_mode(void **state)
{
    (void)state;
    result r;
    const char *in = ".\r\n..x\r\n.\r\n";
    run(SK_FRAMER_RAW, in, strlen(in), 0, 0, &r);
    assert_false(r.done);
    assert_int_equal(r.consumed, strlen(in));
    assert_int_equal(r.out.len, strlen(in));
    assert_memory_equal(r.out.data, in, strlen(in)); /* no unstuffing, no end */
    assert_int_equal(r.seen, 0);
    sk_buf_free(&r.out);

    /* CR at the end of one call and LF at the start of the next: a CRLF */
    sink k = {0};
    sk_buf_init(&k.out, 0);
    sk_data_framer f;
    int done;
    sk_data_framer_init(&f, SK_FRAMER_RAW, sink_fn, &k);
    sk_data_framer_feed(&f, "a\r", 2, &done);
    sk_data_framer_feed(&f, "\nb\nc\r", 5, &done);
    assert_int_equal(f.seen, LF);
    sk_data_framer_finish(&f); /* the final CR is bare */
    assert_int_equal(f.seen, LF | CR);
    assert_int_equal(k.out.len, 9);
    assert_memory_equal(k.out.data, "a\r\nb\r\nc\r\n", 9);
    sk_buf_free(&k.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_of_data_and_smuggling),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_long_message_splits),
        cmocka_unit_test(test_output_chunks),
        cmocka_unit_test(test_raw_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
