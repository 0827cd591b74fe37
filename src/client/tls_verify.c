/*
 * tls_verify.c - why a server's certificate cannot be trusted.
 *
 * OpenSSL's chain verification (with the host name check that
 * SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc adds, RFC 6125) stops at
 * its first error. The callback here records every error with its chain
 * depth and lets verification go on, so one handshake tells all the
 * reasons at once: a self-signed certificate, an unknown CA, an expired
 * (or not yet valid) certificate, a name that does not match. The handshake
 * itself never fails on them; tls.c judges afterwards (RFC 3207 4.1 leaves
 * that decision to the client: opportunistic TLS on port 25 delivers
 * anyway, a verifying client refuses).
 */
#include "client/client_int.h"

#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Names of the X509_V_ERR_* codes a mail server's certificate commonly
 * trips (OpenSSL has the texts but not the names). */
static const struct {
    int code;
    const char *name;
    unsigned problem;
} errors[] = {
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT",
     SK_CERT_UNKNOWN_CA},
    {X509_V_ERR_CERT_SIGNATURE_FAILURE, "X509_V_ERR_CERT_SIGNATURE_FAILURE", SK_CERT_OTHER},
    {X509_V_ERR_CERT_NOT_YET_VALID, "X509_V_ERR_CERT_NOT_YET_VALID", SK_CERT_NOT_YET_VALID},
    {X509_V_ERR_CERT_HAS_EXPIRED, "X509_V_ERR_CERT_HAS_EXPIRED", SK_CERT_EXPIRED},
    {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT",
     SK_CERT_SELF_SIGNED},
    {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN",
     SK_CERT_UNKNOWN_CA},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
     SK_CERT_UNKNOWN_CA},
    {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE",
     SK_CERT_UNKNOWN_CA},
    {X509_V_ERR_CERT_CHAIN_TOO_LONG, "X509_V_ERR_CERT_CHAIN_TOO_LONG", SK_CERT_OTHER},
    {X509_V_ERR_CERT_REVOKED, "X509_V_ERR_CERT_REVOKED", SK_CERT_OTHER},
    {X509_V_ERR_INVALID_CA, "X509_V_ERR_INVALID_CA", SK_CERT_OTHER},
    {X509_V_ERR_INVALID_PURPOSE, "X509_V_ERR_INVALID_PURPOSE", SK_CERT_OTHER},
    {X509_V_ERR_CERT_UNTRUSTED, "X509_V_ERR_CERT_UNTRUSTED", SK_CERT_UNKNOWN_CA},
    {X509_V_ERR_CERT_REJECTED, "X509_V_ERR_CERT_REJECTED", SK_CERT_UNKNOWN_CA},
    {X509_V_ERR_HOSTNAME_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH", SK_CERT_NAME_MISMATCH},
    {X509_V_ERR_EMAIL_MISMATCH, "X509_V_ERR_EMAIL_MISMATCH", SK_CERT_NAME_MISMATCH},
    {X509_V_ERR_IP_ADDRESS_MISMATCH, "X509_V_ERR_IP_ADDRESS_MISMATCH", SK_CERT_NAME_MISMATCH},
    {X509_V_ERR_EE_KEY_TOO_SMALL, "X509_V_ERR_EE_KEY_TOO_SMALL", SK_CERT_OTHER},
    {X509_V_ERR_CA_KEY_TOO_SMALL, "X509_V_ERR_CA_KEY_TOO_SMALL", SK_CERT_OTHER},
    {X509_V_ERR_CA_MD_TOO_WEAK, "X509_V_ERR_CA_MD_TOO_WEAK", SK_CERT_OTHER},
};

#define NERRORS (sizeof errors / sizeof errors[0])

const char *sk_x509_error_name(int code)
{
    for (size_t i = 0; i < NERRORS; i++)
        if (errors[i].code == code)
            return errors[i].name;
    return NULL;
}

unsigned sk_x509_error_problem(int code)
{
    for (size_t i = 0; i < NERRORS; i++)
        if (errors[i].code == code)
            return errors[i].problem;
    return SK_CERT_OTHER;
}

const char *sk_cert_problem_name(unsigned bit)
{
    switch (bit) {
    case SK_CERT_NO_CERT:
        return "no-certificate";
    case SK_CERT_SELF_SIGNED:
        return "self-signed";
    case SK_CERT_UNKNOWN_CA:
        return "unknown-ca";
    case SK_CERT_EXPIRED:
        return "expired";
    case SK_CERT_NOT_YET_VALID:
        return "not-yet-valid";
    case SK_CERT_NAME_MISMATCH:
        return "name-mismatch";
    case SK_CERT_OTHER:
        return "other";
    }
    return NULL;
}

/* Record one verification error (each code and depth once). */
static void note_error(sk_tls_info *t, int code, int depth)
{
    t->problems |= sk_x509_error_problem(code);
    for (size_t i = 0; i < t->nerrors; i++)
        if (t->errors[i].code == code && t->errors[i].depth == depth)
            return;
    if (t->nerrors < SK_TLS_MAX_ERRORS) {
        t->errors[t->nerrors].code = code;
        t->errors[t->nerrors].depth = depth;
        t->nerrors++;
    }
}

/* OpenSSL's verify callback: note the error, carry on (return 1) so the
 * next problem is found too. The verdict is given after the handshake. */
static int verify_cb(int ok, X509_STORE_CTX *st)
{
    if (ok)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx());
    sk_client *c = ssl ? SSL_get_app_data(ssl) : NULL;
    if (c)
        note_error(&c->tls, X509_STORE_CTX_get_error(st), X509_STORE_CTX_get_error_depth(st));
    return 1;
}

void sk_client_tls_verify_setup(sk_client *c)
{
    c->tls.problems = 0;
    c->tls.nerrors = 0;
    SSL_set_app_data(c->ssl, c);
    SSL_set_verify(c->ssl, SSL_VERIFY_NONE, verify_cb);
}

static void add(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Append "; " and the formatted text to out (NUL-terminated, size n). */
static void add(char *out, size_t n, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 3 >= n)
        return;
    if (used) {
        memcpy(out + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, n - used, fmt, ap);
    va_end(ap);
}

void sk_client_tls_verify_finish(sk_client *c, int have_cert, const char *name)
{
    sk_tls_info *t = &c->tls;
    if (!have_cert)
        t->problems |= SK_CERT_NO_CERT;
    if (have_cert && !t->name_match)
        t->problems |= SK_CERT_NAME_MISMATCH;
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK && !t->nerrors && have_cert)
        note_error(t, (int)vr, 0); /* a failure the callback did not see */
    t->verified = have_cert && t->nerrors == 0 && vr == X509_V_OK;
    t->verify_error[0] = '\0';
    char *e = t->verify_error;
    size_t n = sizeof t->verify_error;
    if (t->problems & SK_CERT_NO_CERT)
        add(e, n, "the server sent no certificate");
    if (t->problems & SK_CERT_SELF_SIGNED)
        add(e, n, "self-signed certificate: no CA vouches for it");
    if (t->problems & SK_CERT_UNKNOWN_CA)
        add(e, n, "issued by a CA that is not trusted here (issuer %s)", t->issuer);
    if (t->problems & SK_CERT_EXPIRED)
        add(e, n, "expired: valid until %s", t->not_after);
    if (t->problems & SK_CERT_NOT_YET_VALID)
        add(e, n, "not yet valid: valid from %s", t->not_before);
    if (t->problems & SK_CERT_NAME_MISMATCH)
        add(e, n, "certificate is not valid for %s (it names %s)", name,
            t->names[0] ? t->names : t->subject);
    if (t->problems & SK_CERT_OTHER)
        for (size_t i = 0; i < t->nerrors; i++)
            if (sk_x509_error_problem(t->errors[i].code) == SK_CERT_OTHER)
                add(e, n, "%s", X509_verify_cert_error_string(t->errors[i].code));
}
