/*
 * test_tls_config.c - server TLS set-up (server/tls.c): certificate and key
 * checks with their messages, self-signed generation, the context policy
 * seen through real in-memory handshakes (RFC 8446 / RFC 5246 versions,
 * server cipher preference, no renegotiation), and reload-and-swap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "server/tls.h"

#define DAY (24L * 3600)

typedef struct fixture {
    char dir[64];
    char cert[128], key[128];   /* pair A (EC, CN=mx.example.test) */
    char cert2[128], key2[128]; /* pair B (RSA, CN=other.example.test) */
    char err[512];
} fixture;

static void path_in(const fixture *f, char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", f->dir, name);
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

static void concat_files(const char *out, const char *a, const char *b)
{
    FILE *o = fopen(out, "w");
    assert_non_null(o);
    const char *in[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        FILE *fp = fopen(in[i], "r");
        assert_non_null(fp);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
            assert_int_equal(fwrite(buf, 1, n, o), n);
        fclose(fp);
    }
    assert_int_equal(fclose(o), 0);
}

static int group_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sk-tls-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    path_in(f, f->cert, sizeof f->cert, "a.crt");
    path_in(f, f->key, sizeof f->key, "a.key");
    path_in(f, f->cert2, sizeof f->cert2, "b.crt");
    path_in(f, f->key2, sizeof f->key2, "b.key");
    sk_tls_certspec a = {"mx.example.test", SK_TLS_KEY_EC_P256, -60, 30 * DAY};
    sk_tls_certspec b = {"other.example.test", SK_TLS_KEY_RSA_2048, -60, 30 * DAY};
    assert_int_equal(sk_tls_write_self_signed(&a, f->cert, f->key, f->err, sizeof f->err), 0);
    assert_int_equal(sk_tls_write_self_signed(&b, f->cert2, f->key2, f->err, sizeof f->err), 0);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Load and expect failure with `needle` in the message. */
static void expect_error(fixture *f, const char *cert, const char *key, const char *needle)
{
    sk_tls_settings st = {.cert_file = cert, .key_file = key};
    f->err[0] = '\0';
    SSL_CTX *ctx = sk_tls_ctx_new(&st, f->err, sizeof f->err);
    if (ctx || !strstr(f->err, needle))
        fail_msg("expected error containing \"%s\", got ctx=%p err=\"%s\"", needle, (void *)ctx,
                 f->err);
    assert_null(strchr(f->err, '\n'));     /* one line */
    assert_int_equal(ERR_peek_error(), 0); /* nothing left on OpenSSL's queue */
}

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

/* ---- loading ---- */

static void test_good_pairs_load(void **state)
{
    fixture *f = *state;
    sk_tls_settings st = {.cert_file = f->cert, .key_file = f->key};
    SSL_CTX *ctx = sk_tls_ctx_new(&st, f->err, sizeof f->err);
    assert_non_null(ctx);
    char sum[256];
    sk_tls_ctx_summary(ctx, sum, sizeof sum);
    assert_non_null(strstr(sum, "CN=mx.example.test"));
    /* 30 days minus the seconds since set-up, to the nearest day */
    assert_non_null(strstr(sum, "(30 days)"));
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    uint64_t o = SSL_CTX_get_options(ctx);
    assert_true(o & SSL_OP_NO_COMPRESSION);
    assert_true(o & SSL_OP_CIPHER_SERVER_PREFERENCE);
    assert_true(o & SSL_OP_NO_RENEGOTIATION);
    assert_true(o & SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_free(ctx);

    st = (sk_tls_settings){.cert_file = f->cert2, .key_file = f->key2};
    ctx = sk_tls_ctx_new(&st, f->err, sizeof f->err);
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
}

static void test_cert_and_key_in_one_file(void **state)
{
    fixture *f = *state;
    char both[128];
    path_in(f, both, sizeof both, "both.pem");
    concat_files(both, f->key, f->cert);
    sk_tls_settings st = {.cert_file = both, .key_file = both};
    SSL_CTX *ctx = sk_tls_ctx_new(&st, f->err, sizeof f->err);
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
}

static void test_mismatched_key(void **state)
{
    fixture *f = *state;
    expect_error(f, f->cert, f->key2, "does not match certificate");
    assert_non_null(strstr(f->err, f->key2));
    expect_error(f, f->cert2, f->key, "does not match certificate");
}

static void test_expired_certificate(void **state)
{
    fixture *f = *state;
    char c[128], k[128];
    path_in(f, c, sizeof c, "old.crt");
    path_in(f, k, sizeof k, "old.key");
    sk_tls_certspec spec = {"old.example.test", SK_TLS_KEY_EC_P256, -400 * DAY, -35 * DAY};
    assert_int_equal(sk_tls_write_self_signed(&spec, c, k, f->err, sizeof f->err), 0);
    expect_error(f, c, k, "expired on ");
    assert_non_null(strstr(f->err, "CN=old.example.test"));
    assert_non_null(strstr(f->err, " UTC"));
}

static void test_not_yet_valid_certificate(void **state)
{
    fixture *f = *state;
    char c[128], k[128];
    path_in(f, c, sizeof c, "future.crt");
    path_in(f, k, sizeof k, "future.key");
    sk_tls_certspec spec = {"future.example.test", SK_TLS_KEY_EC_P256, 3 * DAY, 30 * DAY};
    assert_int_equal(sk_tls_write_self_signed(&spec, c, k, f->err, sizeof f->err), 0);
    expect_error(f, c, k, "is not valid before ");
}

static void test_expired_intermediate(void **state)
{
    fixture *f = *state;
    char c[128], k[128], chain[128];
    path_in(f, c, sizeof c, "old2.crt");
    path_in(f, k, sizeof k, "old2.key");
    path_in(f, chain, sizeof chain, "chain.crt");
    sk_tls_certspec spec = {"old-ca.example.test", SK_TLS_KEY_EC_P256, -400 * DAY, -1 * DAY};
    assert_int_equal(sk_tls_write_self_signed(&spec, c, k, f->err, sizeof f->err), 0);
    concat_files(chain, f->cert, c);
    expect_error(f, chain, f->key, "certificate #2 in ");
    assert_non_null(strstr(f->err, "expired"));
}

static void test_garbage_files(void **state)
{
    fixture *f = *state;
    char g[128];
    path_in(f, g, sizeof g, "garbage.pem");
    write_file(g, "this is not PEM at all\n\x01\x02\x03\n");
    expect_error(f, g, f->key, "no PEM certificate found");
    expect_error(f, f->cert, g, "no PEM private key found");
    /* Swapped: the key where the certificate belongs and vice versa. */
    expect_error(f, f->key, f->cert, "no PEM certificate found");
    expect_error(f, f->cert, f->cert, "no PEM private key found");
    /* A PEM header with a broken body. */
    write_file(g, "-----BEGIN CERTIFICATE-----\nnot*base64*\n-----END CERTIFICATE-----\n");
    expect_error(f, g, f->key, "malformed PEM certificate");
    write_file(g, "");
    expect_error(f, g, f->key, "no PEM certificate found");
}

static void test_missing_and_unusable_files(void **state)
{
    fixture *f = *state;
    char m[128];
    path_in(f, m, sizeof m, "nope.pem");
    expect_error(f, m, f->key, "No such file or directory");
    assert_non_null(strstr(f->err, m));
    expect_error(f, f->cert, m, "private key ");
    assert_non_null(strstr(f->err, "No such file or directory"));
    expect_error(f, f->dir, f->key, "not a regular file");
    expect_error(f, NULL, f->key, "no certificate file configured");
    expect_error(f, f->cert, "", "no private key file configured");
}

static void test_passphrase_key_refused(void **state)
{
    fixture *f = *state;
    char k[128];
    path_in(f, k, sizeof k, "enc.key");
    FILE *in = fopen(f->key, "r");
    assert_non_null(in);
    EVP_PKEY *pk = PEM_read_PrivateKey(in, NULL, NULL, NULL);
    fclose(in);
    assert_non_null(pk);
    FILE *out = fopen(k, "w");
    assert_non_null(out);
    assert_int_equal(PEM_write_PrivateKey(out, pk, EVP_aes_128_cbc(),
                                          (const unsigned char *)"secret", 6, NULL, NULL),
                     1);
    fclose(out);
    EVP_PKEY_free(pk);
    expect_error(f, f->cert, k, "protected by a passphrase");
}

static void test_bad_cipher_settings(void **state)
{
    fixture *f = *state;
    sk_tls_settings st = {.cert_file = f->cert, .key_file = f->key, .ciphers = "NO-SUCH-CIPHER"};
    assert_null(sk_tls_ctx_new(&st, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "selects no usable cipher"));
    st = (sk_tls_settings){
        .cert_file = f->cert, .key_file = f->key, .ciphersuites = "TLS_NOT_A_SUITE"};
    assert_null(sk_tls_ctx_new(&st, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "TLS 1.3 cipher suites"));
    st = (sk_tls_settings){.cert_file = f->cert, .key_file = f->key, .min_version = TLS1_VERSION};
    assert_null(sk_tls_ctx_new(&st, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "minimum version"));
}

/* ---- generation ---- */

static void test_self_signed_contents(void **state)
{
    fixture *f = *state;
    char c[128], k[128];
    path_in(f, c, sizeof c, "new/sub/gen.crt");
    path_in(f, k, sizeof k, "new/sub/gen.key");
    assert_int_equal(sk_tls_generate_self_signed("mail.example.test", c, k, f->err, sizeof f->err),
                     0);
    struct stat st;
    assert_int_equal(stat(k, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char d[128];
    mode_t um = umask(0);
    umask(um);
    path_in(f, d, sizeof d, "new");
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755 & ~um);
    path_in(f, d, sizeof d, "new/sub");
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700 & ~um);
    assert_int_equal(stat(c, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    X509 *x = read_cert(c);
    assert_int_equal(X509_check_host(x, "mail.example.test", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.example.test", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "mail.example.test");
    /* About one year of validity. */
    int days = 0, secs = 0;
    assert_true(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)));
    assert_in_range(days, 364, 365);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
    /* The signature verifies with its own key: really self-signed. */
    assert_int_equal(X509_verify(x, pub), 1);
    X509_free(x);

    sk_tls_settings s = {.cert_file = c, .key_file = k};
    SSL_CTX *ctx = sk_tls_ctx_new(&s, f->err, sizeof f->err);
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
}

static void test_self_signed_rejects_bad_hostname(void **state)
{
    fixture *f = *state;
    char c[128], k[128];
    path_in(f, c, sizeof c, "bad.crt");
    path_in(f, k, sizeof k, "bad.key");
    assert_int_equal(
        sk_tls_generate_self_signed("mx.example,IP:10.0.0.1", c, k, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "not a valid host name"));
    assert_int_equal(access(c, F_OK), -1);
    assert_int_equal(access(k, F_OK), -1);
    /* An address literal becomes an IP SAN. */
    assert_int_equal(sk_tls_generate_self_signed("192.0.2.7", c, k, f->err, sizeof f->err), 0);
    X509 *x = read_cert(c);
    assert_int_equal(X509_check_ip_asc(x, "192.0.2.7", 0), 1);
    X509_free(x);
}

static void test_ensure_files(void **state)
{
    fixture *f = *state;
    char c[128], k[128];
    path_in(f, c, sizeof c, "tls/ens.crt");
    path_in(f, k, sizeof k, "tls/ens.key");
    sk_tls_settings st = {.cert_file = c, .key_file = k};
    /* Not asked to generate: nothing happens; the loader reports. */
    assert_int_equal(sk_tls_ensure_files(&st, "mx.example.test", 0, f->err, sizeof f->err), 0);
    assert_int_equal(access(c, F_OK), -1);
    assert_int_equal(sk_tls_ensure_files(&st, "mx.example.test", 1, f->err, sizeof f->err), 1);
    assert_int_equal(access(c, R_OK), 0);
    assert_int_equal(access(k, R_OK), 0);
    X509 *before = read_cert(c);
    /* Second run: keeps the pair it made. */
    assert_int_equal(sk_tls_ensure_files(&st, "mx.example.test", 1, f->err, sizeof f->err), 0);
    X509 *after = read_cert(c);
    assert_int_equal(X509_cmp(before, after), 0);
    X509_free(before);
    X509_free(after);
    /* Half a pair: refuse rather than overwrite. */
    assert_int_equal(unlink(k), 0);
    assert_int_equal(sk_tls_ensure_files(&st, "mx.example.test", 1, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "half a pair"));
    assert_int_equal(access(k, F_OK), -1);
}

/* ---- handshakes in memory ---- */

/* Drive a client and a server SSL over a BIO pair. 1 done, 0 failed. */
static int handshake(SSL *client, SSL *server)
{
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 200 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(client);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
        if (!sdone) {
            int r = SSL_do_handshake(server);
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
    }
    return cdone && sdone;
}

static void connect_pair(SSL *client, SSL *server)
{
    BIO *cb, *sb;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(client, cb, cb);
    SSL_set_bio(server, sb, sb);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
}

static SSL_CTX *client_ctx(int max_version)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    assert_non_null(c);
    SSL_CTX_set_security_level(c, 0); /* let the client offer old versions */
    SSL_CTX_set_min_proto_version(c, 0);
    if (max_version)
        SSL_CTX_set_max_proto_version(c, max_version);
    return c;
}

static void test_handshake_versions_and_ciphers(void **state)
{
    fixture *f = *state;
    sk_tls_settings st = {.cert_file = f->cert, .key_file = f->key};
    sk_tls_server *srv = sk_tls_server_new(&st, f->err, sizeof f->err);
    assert_non_null(srv);

    /* TLS 1.3 by default. */
    SSL_CTX *cc = client_ctx(0);
    SSL *c = SSL_new(cc), *s = sk_tls_server_new_ssl(srv);
    connect_pair(c, s);
    assert_true(handshake(c, s));
    const char *ver, *cipher;
    sk_tls_describe(s, &ver, &cipher);
    assert_string_equal(ver, "TLSv1.3");
    assert_non_null(strstr(cipher, "TLS_"));
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cc);

    /* TLS 1.2: the server's order wins over the client's. */
    cc = client_ctx(TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_set_cipher_list(cc, "ECDHE-ECDSA-CHACHA20-POLY1305:"
                                                 "ECDHE-ECDSA-AES128-GCM-SHA256"),
                     1);
    c = SSL_new(cc);
    s = sk_tls_server_new_ssl(srv);
    connect_pair(c, s);
    assert_true(handshake(c, s));
    sk_tls_describe(s, &ver, &cipher);
    assert_string_equal(ver, "TLSv1.2");
    assert_string_equal(cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");

    /* No renegotiation: the client's attempt gets nowhere. */
    assert_int_equal(SSL_renegotiate(c), 1);
    int ok = 1;
    for (int i = 0; i < 20; i++) {
        char buf[16];
        int r = SSL_do_handshake(c);
        if (r <= 0 && SSL_get_error(c, r) != SSL_ERROR_WANT_READ) {
            ok = 0;
            break;
        }
        r = SSL_read(s, buf, sizeof buf);
        if (r <= 0 && SSL_get_error(s, r) != SSL_ERROR_WANT_READ) {
            ok = 0;
            break;
        }
    }
    assert_false(ok);
    assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_NO_RENEGOTIATION);
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cc);

    /* TLS 1.1 and a weak-only TLS 1.2 cipher are refused. */
    cc = client_ctx(TLS1_1_VERSION);
    c = SSL_new(cc);
    s = sk_tls_server_new_ssl(srv);
    connect_pair(c, s);
    assert_false(handshake(c, s));
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cc);

    cc = client_ctx(TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_set_cipher_list(cc, "AES128-SHA"), 1);
    c = SSL_new(cc);
    s = sk_tls_server_new_ssl(srv);
    connect_pair(c, s);
    assert_false(handshake(c, s));
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cc);

    sk_tls_server_free(srv);
}

static X509 *peer_cert_after_handshake(sk_tls_server *srv, SSL **server_out)
{
    SSL_CTX *cc = client_ctx(0);
    SSL *c = SSL_new(cc), *s = sk_tls_server_new_ssl(srv);
    connect_pair(c, s);
    assert_true(handshake(c, s));
    X509 *peer = SSL_get1_peer_certificate(c);
    assert_non_null(peer);
    SSL_free(c);
    SSL_CTX_free(cc);
    if (server_out)
        *server_out = s;
    else
        SSL_free(s);
    return peer;
}

static void test_reload_swaps_and_keeps_old_on_failure(void **state)
{
    fixture *f = *state;
    sk_tls_settings a = {.cert_file = f->cert, .key_file = f->key};
    sk_tls_settings b = {.cert_file = f->cert2, .key_file = f->key2};
    sk_tls_settings broken = {.cert_file = f->cert, .key_file = f->key2};
    X509 *ca = read_cert(f->cert), *cb = read_cert(f->cert2);

    sk_tls_server *srv = sk_tls_server_new(&a, f->err, sizeof f->err);
    assert_non_null(srv);
    assert_int_equal(sk_tls_server_generation(srv), 0);
    SSL *open_before = NULL;
    X509 *p = peer_cert_after_handshake(srv, &open_before);
    assert_int_equal(X509_cmp(p, ca), 0);
    X509_free(p);

    assert_int_equal(sk_tls_server_reload(srv, &b, f->err, sizeof f->err), 0);
    assert_int_equal(sk_tls_server_generation(srv), 1);
    p = peer_cert_after_handshake(srv, NULL);
    assert_int_equal(X509_cmp(p, cb), 0);
    X509_free(p);
    /* The connection opened before the reload still has its context. */
    assert_int_equal(X509_cmp(SSL_get_certificate(open_before), ca), 0);
    SSL_free(open_before);

    f->err[0] = '\0';
    assert_int_equal(sk_tls_server_reload(srv, &broken, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "does not match"));
    assert_int_equal(sk_tls_server_generation(srv), 1);
    p = peer_cert_after_handshake(srv, NULL);
    assert_int_equal(X509_cmp(p, cb), 0);
    X509_free(p);

    X509_free(ca);
    X509_free(cb);
    sk_tls_server_free(srv);
}

static void test_error_string(void **state)
{
    (void)state;
    char buf[128];
    ERR_clear_error();
    sk_tls_error_string(buf, sizeof buf);
    assert_string_equal(buf, "unknown error");
    ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
    sk_tls_error_string(buf, sizeof buf);
    assert_string_equal(buf, "wrong version number");
    assert_int_equal(ERR_peek_error(), 0);
    char tiny[4];
    ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
    sk_tls_error_string(tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_pairs_load),
        cmocka_unit_test(test_cert_and_key_in_one_file),
        cmocka_unit_test(test_mismatched_key),
        cmocka_unit_test(test_expired_certificate),
        cmocka_unit_test(test_not_yet_valid_certificate),
        cmocka_unit_test(test_expired_intermediate),
        cmocka_unit_test(test_garbage_files),
        cmocka_unit_test(test_missing_and_unusable_files),
        cmocka_unit_test(test_passphrase_key_refused),
        cmocka_unit_test(test_bad_cipher_settings),
        cmocka_unit_test(test_self_signed_contents),
        cmocka_unit_test(test_self_signed_rejects_bad_hostname),
        cmocka_unit_test(test_ensure_files),
        cmocka_unit_test(test_handshake_versions_and_ciphers),
        cmocka_unit_test(test_reload_swaps_and_keeps_old_on_failure),
        cmocka_unit_test(test_error_string),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
