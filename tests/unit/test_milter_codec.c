/*
 * test_milter_codec.c - the milter protocol packets (src/core/milter_codec.c):
 * the exact bytes of the MTA's commands, the decoding of every reply the
 * client acts on, the bounds on every length (a packet cut anywhere asks
 * for more, never reads past its end), and REPLYCODE text checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/milter_codec.h"

static void expect_bytes(const sk_buf *b, const char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_encoders(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 1 << 20);
    assert_int_equal(sk_milter_enc_optneg(&b, 6, 0x33, 0x1ff), 0);
    expect_bytes(&b, "\0\0\0\x0dO\0\0\0\x06\0\0\0\x33\0\0\x01\xff", 17);
    sk_buf_clear(&b);

    assert_int_equal(sk_milter_enc_connect(&b, "[192.0.2.1]", '4', 2525, "192.0.2.1"), 0);
    expect_bytes(&b,
                 "\0\0\0\x1a"
                 "C[192.0.2.1]\0"
                 "4\x09\xdd"
                 "192.0.2.1\0",
                 30);
    sk_buf_clear(&b);

    assert_int_equal(sk_milter_enc_helo(&b, "client.example"), 0);
    expect_bytes(&b, "\0\0\0\x10Hclient.example\0", 20);
    sk_buf_clear(&b);

    const char *args[] = {"<a@b.example>", "SIZE=10"};
    assert_int_equal(sk_milter_enc_args(&b, SMFIC_MAIL, args, 2), 0);
    expect_bytes(&b, "\0\0\0\x17M<a@b.example>\0SIZE=10\0", 27);
    sk_buf_clear(&b);

    assert_int_equal(sk_milter_enc_header(&b, "Subject", "hi"), 0);
    expect_bytes(&b, "\0\0\0\x0cLSubject\0hi\0", 16);
    sk_buf_clear(&b);

    const char *names[] = {"i", "{auth_authen}"};
    const char *values[] = {"ID1", NULL};
    assert_int_equal(sk_milter_enc_macros(&b, SMFIC_MAIL, names, values, 2), 0);
    expect_bytes(&b,
                 "\0\0\0\x17"
                 "DMi\0ID1\0{auth_authen}\0\0",
                 27);
    sk_buf_clear(&b);

    /* a body in chunks of at most 65535 octets */
    static char body[65535 * 2 + 10];
    memset(body, 'x', sizeof body);
    assert_int_equal(sk_milter_enc_body(&b, body, sizeof body), 0);
    assert_int_equal(b.len, 3 * 5 + sizeof body);
    assert_memory_equal(b.data, "\0\x01\0\0B", 5);
    assert_memory_equal(b.data + 5 + 65535, "\0\x01\0\0B", 5);
    assert_memory_equal(b.data + 10 + 2 * 65535,
                        "\0\0\0\x0b"
                        "B",
                        5);
    sk_buf_free(&b);

    /* too long for one packet, or for the buffer: nothing half written */
    sk_buf small;
    sk_buf_init(&small, 20);
    assert_int_equal(sk_milter_enc_helo(&small, "a-name-that-does-not-fit.example"), -1);
    assert_int_equal(small.len, 0);
    sk_buf_free(&small);
}

/* Decode p whole; also check every shorter prefix asks for more. */
static sk_milter_status decode_all(const char *p, size_t n, sk_milter_reply *r)
{
    size_t used, need;
    for (size_t k = 0; k < n; k++) {
        sk_milter_status st = sk_milter_decode(p, k, &used, &need, r);
        if (st == SK_MILTER_ERROR)
            return st; /* a bad length is known from the first 4 octets */
        assert_int_equal(st, SK_MILTER_MORE);
        assert_true(need > k);
    }
    sk_milter_status st = sk_milter_decode(p, n, &used, &need, r);
    if (st == SK_MILTER_PACKET)
        assert_int_equal(used, n);
    return st;
}

static void test_decode_replies(void **state)
{
    (void)state;
    sk_milter_reply r;
    assert_int_equal(decode_all("\0\0\0\x0dO\0\0\0\x06\0\0\0\x13\0\0\0\x40", 17, &r),
                     SK_MILTER_PACKET);
    assert_int_equal(r.cmd, SMFIC_OPTNEG);
    assert_int_equal(r.version, 6);
    assert_int_equal(r.actions, 0x13);
    assert_int_equal(r.steps, 0x40);

    const char verdicts[] = "acdrtps";
    for (size_t i = 0; i < strlen(verdicts); i++) {
        char p[5] = {0, 0, 0, 1, verdicts[i]};
        assert_int_equal(decode_all(p, 5, &r), SK_MILTER_PACKET);
        assert_int_equal(r.cmd, verdicts[i]);
    }

    assert_int_equal(decode_all("\0\0\0\x13y550 5.7.1 Denied.\0", 23, &r), SK_MILTER_PACKET);
    assert_string_equal(r.text, "550 5.7.1 Denied.");

    assert_int_equal(decode_all("\0\0\0\x0bhX-Tag\0yes\0", 15, &r), SK_MILTER_PACKET);
    assert_string_equal(r.name, "X-Tag");
    assert_string_equal(r.value, "yes");

    assert_int_equal(decode_all("\0\0\0\x0fi\0\0\0\x02X-Tag\0yes\0", 19, &r), SK_MILTER_PACKET);
    assert_int_equal(r.index, 2);
    assert_string_equal(r.name, "X-Tag");

    assert_int_equal(decode_all("\0\0\0\x0em\0\0\0\x01Subject\0\0", 18, &r), SK_MILTER_PACKET);
    assert_int_equal(r.cmd, SMFIR_CHGHEADER);
    assert_string_equal(r.value, ""); /* deletes the field */

    assert_int_equal(decode_all("\0\0\0\x05"
                                "bnew\n",
                                9, &r),
                     SK_MILTER_PACKET);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.data, "new\n", 4);

    assert_int_equal(decode_all("\0\0\0\x06qspam\0", 10, &r), SK_MILTER_PACKET);
    assert_string_equal(r.text, "spam");

    /* two packets back to back: one at a time */
    size_t used, need;
    assert_int_equal(sk_milter_decode("\0\0\0\x01"
                                      "c\0\0\0\x01"
                                      "a",
                                      10, &used, &need, &r),
                     SK_MILTER_PACKET);
    assert_int_equal(used, 5);
    assert_int_equal(r.cmd, 'c');
}

static void test_decode_errors(void **state)
{
    (void)state;
    sk_milter_reply r;
    size_t used, need;
    /* lengths */
    assert_int_equal(sk_milter_decode("\0\0\0\0", 4, &used, &need, &r), SK_MILTER_ERROR);
    assert_int_equal(sk_milter_decode("\0\x10\0\0", 4, &used, &need, &r), SK_MILTER_ERROR);
    assert_int_equal(sk_milter_decode("\xff\xff\xff\xff", 4, &used, &need, &r), SK_MILTER_ERROR);
    /* a verdict with data, a short OPTNEG, an unknown command */
    assert_int_equal(decode_all("\0\0\0\x02"
                                "cX",
                                6, &r),
                     SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x05O\0\0\0\x06", 9, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x01Z", 5, &r), SK_MILTER_ERROR);
    /* strings must end inside the packet, and nothing may follow them */
    assert_int_equal(decode_all("\0\0\0\x04ytext", 8, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x06yte\0xt", 10, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x07hName\0v", 11, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x04i\0\0\0", 8, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x08i\0\0\0\0a\0b", 12, &r), SK_MILTER_ERROR);
    /* a header name that would make another field or line */
    assert_int_equal(decode_all("\0\0\0\x0bhA: B\0yes\0", 15, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x0bhA\r\nB\0yes\0", 15, &r), SK_MILTER_ERROR);
    assert_int_equal(decode_all("\0\0\0\x06h\0yes\0", 10, &r), SK_MILTER_ERROR);
    assert_non_null(r.error);
}

static void test_replycode(void **state)
{
    (void)state;
    int code;
    char enh[16], text[64];
    assert_int_equal(sk_milter_parse_replycode("550 5.7.1 Go away", &code, enh, text, sizeof text),
                     0);
    assert_int_equal(code, 550);
    assert_string_equal(enh, "5.7.1");
    assert_string_equal(text, "Go away");
    assert_int_equal(sk_milter_parse_replycode("451 Try later", &code, enh, text, sizeof text), 0);
    assert_string_equal(enh, "");
    assert_string_equal(text, "Try later");
    /* multi-line: the first line's text */
    assert_int_equal(
        sk_milter_parse_replycode("550-5.7.1 one\r\n550 5.7.1 two", &code, enh, text, sizeof text),
        0);
    assert_string_equal(text, "one");
    /* controls masked */
    assert_int_equal(sk_milter_parse_replycode("550 5.7.1 a\x01"
                                               "b\x7f",
                                               &code, enh, text, sizeof text),
                     0);
    assert_string_equal(text, "a?b?");
    /* refused: not 4xx/5xx, class mismatch, malformed */
    const char *bad[] = {"250 2.0.0 ok", "550 4.7.1 mismatch", "55",          "5x0 text",
                         "550x",         "650 text",           "599 5.7.1 x", "550 5.7. x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (sk_milter_parse_replycode(bad[i], &code, enh, text, sizeof text) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_decode_replies),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_replycode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
