/*
 * test_client_tls_verify.c - how the client names the reasons a server
 * certificate cannot be trusted (src/client/tls_verify.c): each OpenSSL
 * X509_V_ERR_* code a mail server's certificate commonly trips maps to one
 * problem (self-signed, unknown CA, expired, not yet valid, name mismatch),
 * with its macro name; anything else is "other".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/x509_vfy.h>

#include "smtpkit/client.h"

static void test_codes_map_to_problems(void **state)
{
    (void)state;
    static const struct {
        int code;
        unsigned problem;
        const char *name;
    } cases[] = {
        {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, SK_CERT_SELF_SIGNED,
         "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"},
        {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, SK_CERT_UNKNOWN_CA,
         "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN"},
        {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, SK_CERT_UNKNOWN_CA,
         "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"},
        {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, SK_CERT_UNKNOWN_CA,
         "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
        {X509_V_ERR_CERT_HAS_EXPIRED, SK_CERT_EXPIRED, "X509_V_ERR_CERT_HAS_EXPIRED"},
        {X509_V_ERR_CERT_NOT_YET_VALID, SK_CERT_NOT_YET_VALID, "X509_V_ERR_CERT_NOT_YET_VALID"},
        {X509_V_ERR_HOSTNAME_MISMATCH, SK_CERT_NAME_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH"},
        {X509_V_ERR_IP_ADDRESS_MISMATCH, SK_CERT_NAME_MISMATCH, "X509_V_ERR_IP_ADDRESS_MISMATCH"},
        {X509_V_ERR_CERT_REVOKED, SK_CERT_OTHER, "X509_V_ERR_CERT_REVOKED"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(sk_x509_error_problem(cases[i].code), cases[i].problem);
        assert_string_equal(sk_x509_error_name(cases[i].code), cases[i].name);
    }
    /* A code the client has no name for is still an error: "other". */
    assert_null(sk_x509_error_name(X509_V_ERR_PATH_LENGTH_EXCEEDED));
    assert_int_equal(sk_x509_error_problem(X509_V_ERR_PATH_LENGTH_EXCEEDED), SK_CERT_OTHER);
    assert_int_equal(sk_x509_error_problem(X509_V_OK), SK_CERT_OTHER);
}

static void test_problem_names(void **state)
{
    (void)state;
    static const unsigned bits[] = {SK_CERT_NO_CERT, SK_CERT_SELF_SIGNED,   SK_CERT_UNKNOWN_CA,
                                    SK_CERT_EXPIRED, SK_CERT_NOT_YET_VALID, SK_CERT_NAME_MISMATCH,
                                    SK_CERT_OTHER};
    unsigned all = 0;
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        assert_int_equal(bits[i] & (bits[i] - 1), 0); /* one bit each */
        assert_int_equal(all & bits[i], 0);           /* all different */
        all |= bits[i];
        const char *n = sk_cert_problem_name(bits[i]);
        assert_non_null(n);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(n, sk_cert_problem_name(bits[k]));
    }
    assert_string_equal(sk_cert_problem_name(SK_CERT_SELF_SIGNED), "self-signed");
    assert_string_equal(sk_cert_problem_name(SK_CERT_UNKNOWN_CA), "unknown-ca");
    assert_string_equal(sk_cert_problem_name(SK_CERT_NAME_MISMATCH), "name-mismatch");
    assert_null(sk_cert_problem_name(0));
    assert_null(sk_cert_problem_name(SK_CERT_EXPIRED | SK_CERT_OTHER));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_map_to_problems),
        cmocka_unit_test(test_problem_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
