/*
 * test_sasl.c - strict base64 (RFC 4648 4 test vectors and the forms it
 * must refuse) and the PLAIN (RFC 4616) / LOGIN exchanges (RFC 4954 4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/sasl.h"

static void test_b64_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *b64;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char out[16];
        ssize_t n = sk_sasl_b64_decode(v[i].b64, strlen(v[i].b64), out, sizeof out);
        assert_int_equal(n, (ssize_t)strlen(v[i].plain));
        assert_memory_equal(out, v[i].plain, (size_t)n);
        char enc[16];
        size_t m = sk_sasl_b64_encode((const unsigned char *)v[i].plain, strlen(v[i].plain), enc,
                                      sizeof enc);
        assert_int_equal(m, strlen(v[i].b64));
        assert_string_equal(enc, v[i].b64);
    }
    /* every byte value round-trips */
    unsigned char all[256], back[256];
    char enc[400];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    size_t m = sk_sasl_b64_encode(all, 256, enc, sizeof enc);
    assert_int_equal(m, 344);
    assert_int_equal(sk_sasl_b64_decode(enc, m, back, sizeof back), 256);
    assert_memory_equal(all, back, 256);
    /* encoder refuses a too small buffer */
    assert_int_equal(sk_sasl_b64_encode(all, 3, enc, 4), 0);
}

static void test_b64_strict(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",       /* no padding */
        "Zg=",      /* short padding */
        "Zh==",     /* non-zero bits under the padding */
        "Zm9=",     /* same, one pad */
        "Zm9v\r\n", /* whitespace */
        "Zm 9v",    /* space */
        "Zm9vY===", /* three pads */
        "====",     /* only padding */
        "Z===",     /* one data char */
        "Zg==Zm9v", /* data after padding */
        "Zm=v",     /* pad in the middle */
        "Zm9v!A==", /* bad character */
        "Zm9v-_==", /* base64url alphabet */
        "*",
    };
    unsigned char out[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssize_t n = sk_sasl_b64_decode(bad[i], strlen(bad[i]), out, sizeof out);
        if (n != -1)
            fail_msg("'%s' decoded to %zd bytes", bad[i], n);
    }
    /* output limit */
    assert_int_equal(sk_sasl_b64_decode("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(sk_sasl_b64_decode("Zm9vYmFy", 8, out, 6), 6);
}

static void test_mechs(void **state)
{
    (void)state;
    assert_int_equal(sk_sasl_mech_lookup("PLAIN", 5), SK_SASL_PLAIN);
    assert_int_equal(sk_sasl_mech_lookup("plain", 5), SK_SASL_PLAIN);
    assert_int_equal(sk_sasl_mech_lookup("LoGiN", 5), SK_SASL_LOGIN);
    assert_int_equal(sk_sasl_mech_lookup("CRAM-MD5", 8), SK_SASL_NONE);
    assert_int_equal(sk_sasl_mech_lookup("PLAINX", 6), SK_SASL_NONE);
    assert_string_equal(sk_sasl_mech_name(SK_SASL_LOGIN), "LOGIN");
}

static void test_plain(void **state)
{
    (void)state;
    sk_sasl x;
    const char *ch;
    /* \0user\0secret */
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, "AHVzZXIAc2VjcmV0", 16, &ch), SK_SASL_DONE);
    assert_string_equal(x.user, "user");
    assert_string_equal(x.pass, "secret");
    sk_sasl_clear(&x);
    assert_string_equal(x.pass, "");
    /* no initial response: empty challenge, then the response */
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, NULL, 0, &ch), SK_SASL_CONTINUE);
    assert_string_equal(ch, "");
    assert_int_equal(sk_sasl_step(&x, "AHVzZXIAc2VjcmV0", 16, &ch), SK_SASL_DONE);
    assert_string_equal(x.user, "user");
    /* authzid equal to authcid: fine; different: refused */
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, "dXNlcgB1c2VyAHNlY3JldA==", 24, &ch),
                     SK_SASL_DONE);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, "YWRtaW4AdXNlcgBzZWNyZXQ=", 24, &ch),
                     SK_SASL_AUTHZ);
    assert_string_equal(x.pass, ""); /* wiped */
    /* malformed messages */
    static const char *const bad[] = {
        "dXNlcg==", /* "user": no NUL */
        "AHVzZXI=", /* "\0user": no password */
        "AAA=",     /* "\0\0": empty user and password */
        "AHVzZXIA", /* "\0user\0": empty password */
        "AAB4",     /* "\0\0x": empty user */
        "AHXDAHg=", /* "\0u\xc3\0x": bad UTF-8 in user */
        "=",        /* empty initial response */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sk_sasl_status st = sk_sasl_start(&x, SK_SASL_PLAIN, bad[i], strlen(bad[i]), &ch);
        if (st != SK_SASL_BAD_MSG)
            fail_msg("'%s': status %d", bad[i], st);
    }
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, "AHVz!", 5, &ch), SK_SASL_BAD_B64);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, NULL, 0, &ch), SK_SASL_CONTINUE);
    assert_int_equal(sk_sasl_step(&x, "*", 1, &ch), SK_SASL_CANCEL);
    /* a password of 256 octets is too long (RFC 4616: 255) */
    unsigned char msg[300];
    char b64[500];
    msg[0] = 0;
    memcpy(msg + 1, "user", 4);
    msg[5] = 0;
    memset(msg + 6, 'p', 256);
    size_t m = sk_sasl_b64_encode(msg, 262, b64, sizeof b64);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, b64, m, &ch), SK_SASL_BAD_MSG);
    m = sk_sasl_b64_encode(msg, 261, b64, sizeof b64);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_PLAIN, b64, m, &ch), SK_SASL_DONE);
    assert_int_equal(strlen(x.pass), 255);
    sk_sasl_clear(&x);
}

static void test_login(void **state)
{
    (void)state;
    sk_sasl x;
    const char *ch;
    assert_int_equal(sk_sasl_start(&x, SK_SASL_LOGIN, NULL, 0, &ch), SK_SASL_CONTINUE);
    assert_string_equal(ch, "VXNlcm5hbWU6"); /* "Username:" */
    assert_int_equal(sk_sasl_step(&x, "dXNlcg==", 8, &ch), SK_SASL_CONTINUE);
    assert_string_equal(ch, "UGFzc3dvcmQ6"); /* "Password:" */
    assert_int_equal(sk_sasl_step(&x, "c2VjcmV0", 8, &ch), SK_SASL_DONE);
    assert_string_equal(x.user, "user");
    assert_string_equal(x.pass, "secret");
    /* initial response carries the user name */
    assert_int_equal(sk_sasl_start(&x, SK_SASL_LOGIN, "dXNlcg==", 8, &ch), SK_SASL_CONTINUE);
    assert_string_equal(ch, "UGFzc3dvcmQ6");
    assert_int_equal(sk_sasl_step(&x, "*", 1, &ch), SK_SASL_CANCEL);
    /* empty user name or password */
    assert_int_equal(sk_sasl_start(&x, SK_SASL_LOGIN, NULL, 0, &ch), SK_SASL_CONTINUE);
    assert_int_equal(sk_sasl_step(&x, "", 0, &ch), SK_SASL_BAD_MSG);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_LOGIN, "dXNlcg==", 8, &ch), SK_SASL_CONTINUE);
    assert_int_equal(sk_sasl_step(&x, "", 0, &ch), SK_SASL_BAD_MSG);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_LOGIN, "=", 1, &ch), SK_SASL_BAD_MSG);
    /* NUL inside a LOGIN field */
    assert_int_equal(sk_sasl_start(&x, SK_SASL_LOGIN, "dQB4", 4, &ch), SK_SASL_BAD_MSG);
    assert_int_equal(sk_sasl_start(&x, SK_SASL_NONE, NULL, 0, &ch), SK_SASL_BAD_MSG);
    sk_sasl_clear(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors), cmocka_unit_test(test_b64_strict),
        cmocka_unit_test(test_mechs),       cmocka_unit_test(test_plain),
        cmocka_unit_test(test_login),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
