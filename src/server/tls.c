/*
 * tls.c - server TLS contexts with OpenSSL 3 for STARTTLS (RFC 3207) and
 * implicit TLS (RFC 8314 section 3.3): certificate and key loading with
 * precise one-line errors, the context policy, self-signed pairs for a
 * first run, and the reload-and-swap used on SIGHUP.
 *
 * The certificate and key are parsed here rather than with
 * SSL_CTX_use_certificate_chain_file(), so that each kind of mistake (no
 * such file, a key where the certificate should be, an expired
 * intermediate, a passphrase on the key) gets its own message at start-up
 * instead of a handshake failure later.
 */
#include "server/tls.h"
#include "server/errmsg.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A certificate or key file larger than this is a mistake (a mailbox, a
 * log file), not PEM we should try to parse. */
#define PEM_FILE_MAX (1024 * 1024)
/* Certificates in one chain file, leaf included. */
#define CHAIN_MAX 16
/* Bounded server-side session cache (tickets carry most resumption). */
#define SESSION_CACHE_MAX 1024

void sk_tls_error_string(char *out, size_t outlen)
{
    if (!out || !outlen)
        return;
    out[0] = '\0';
    size_t used = 0;
    unsigned n = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (n++ >= 3 || used + 3 >= outlen)
            continue; /* keep draining the queue */
        char one[256];
        const char *reason = ERR_reason_error_string(e);
        if (reason)
            snprintf(one, sizeof one, "%s", reason);
        else
            ERR_error_string_n(e, one, sizeof one);
        int w = snprintf(out + used, outlen - used, "%s%s", used ? "; " : "", one);
        if (w < 0)
            break;
        used += (size_t)w < outlen - used ? (size_t)w : outlen - used - 1;
    }
    if (!out[0])
        snprintf(out, outlen, "unknown error");
}

/* "2025-01-31 12:00:00 UTC" */
static void format_time(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, outlen, "(unreadable time)");
}

static void subject_cn(X509 *x, char *out, size_t outlen)
{
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)outlen) < 0)
        snprintf(out, outlen, "(no CN)");
}

/* Read a whole PEM file into a memory BIO, with errors that name the file.
 * *has_key tells whether any "PRIVATE KEY-----" armour is present (OpenSSL
 * 3's decoders report a file without one as "unsupported", which would
 * be a confusing message). */
static BIO *open_pem(const char *what, const char *path, int *has_key, char *err, size_t errlen)
{
    if (!path || !*path) {
        sk_errf(err, errlen, "no %s file configured", what);
        return NULL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        sk_errf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        sk_errf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        fclose(f);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        sk_errf(err, errlen, "%s %s: not a regular file", what, path);
        fclose(f);
        return NULL;
    }
    if (st.st_size > PEM_FILE_MAX) {
        sk_errf(err, errlen, "%s %s: too large for a PEM file (%lld bytes)", what, path,
                (long long)st.st_size);
        fclose(f);
        return NULL;
    }
    char *data = malloc(PEM_FILE_MAX + 1);
    if (!data) {
        sk_errf(err, errlen, "%s %s: out of memory", what, path);
        fclose(f);
        return NULL;
    }
    size_t n = fread(data, 1, PEM_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || n > PEM_FILE_MAX) {
        sk_errf(err, errlen, "%s %s: %s", what, path, rerr ? "read error" : "too large");
        free(data);
        return NULL;
    }
    if (has_key)
        *has_key = memmem(data, n, "PRIVATE KEY-----", 16) != NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || BIO_write(b, data, (int)n) != (int)n) {
        sk_errf(err, errlen, "%s %s: out of memory", what, path);
        BIO_free(b);
        b = NULL;
    }
    OPENSSL_cleanse(data, n); /* may hold a private key */
    free(data);
    return b;
}

/* True when the last PEM read failed only because no further PEM block
 * of the wanted type follows (the normal end of a chain file). */
static int pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

static void free_chain(X509 **chain, int n)
{
    for (int i = 0; i < n; i++)
        X509_free(chain[i]);
}

/* Read the leaf and its intermediates. Returns the count (>= 1) or -1. */
static int read_chain(const char *path, X509 **chain, char *err, size_t errlen)
{
    BIO *b = open_pem("certificate", path, NULL, err, errlen);
    if (!b)
        return -1;
    ERR_clear_error();
    int n = 0;
    chain[n] = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (!chain[n]) {
        if (pem_at_end())
            sk_errf(err, errlen, "certificate %s: no PEM certificate found", path);
        else {
            char why[256];
            sk_tls_error_string(why, sizeof why);
            sk_errf(err, errlen, "certificate %s: malformed PEM certificate: %s", path, why);
        }
        ERR_clear_error();
        BIO_free(b);
        return -1;
    }
    n++;
    for (;;) {
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x) {
            if (pem_at_end())
                break;
            char why[256];
            sk_tls_error_string(why, sizeof why);
            sk_errf(err, errlen, "certificate %s: certificate #%d is malformed: %s", path, n + 1,
                    why);
            free_chain(chain, n);
            BIO_free(b);
            return -1;
        }
        if (n == CHAIN_MAX) {
            X509_free(x);
            sk_errf(err, errlen, "certificate %s: more than %d certificates in the chain", path,
                    CHAIN_MAX);
            free_chain(chain, n);
            BIO_free(b);
            return -1;
        }
        chain[n++] = x;
    }
    ERR_clear_error();
    BIO_free(b);
    return n;
}

/* Called by OpenSSL only when the key is encrypted: note it and refuse. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)u = 1;
    return -1;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t errlen)
{
    int has_key = 0;
    BIO *b = open_pem("private key", path, &has_key, err, errlen);
    if (!b)
        return NULL;
    if (!has_key) {
        sk_errf(err, errlen, "private key %s: no PEM private key found", path);
        BIO_free(b);
        return NULL;
    }
    ERR_clear_error();
    int asked = 0;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, &asked);
    if (!k) {
        if (asked)
            sk_errf(err, errlen,
                    "private key %s is protected by a passphrase; give the server an "
                    "unencrypted key readable only by it (mode 0600)",
                    path);
        else {
            char why[256];
            sk_tls_error_string(why, sizeof why);
            sk_errf(err, errlen, "private key %s: malformed PEM private key: %s", path, why);
        }
    }
    ERR_clear_error();
    BIO_free(b);
    return k;
}

static int check_validity(X509 *x, const char *path, int index, char *err, size_t errlen)
{
    char cn[128], when[64], which[160];
    subject_cn(x, cn, sizeof cn);
    if (index == 0)
        snprintf(which, sizeof which, "certificate %s (CN=%s)", path, cn);
    else
        snprintf(which, sizeof which, "certificate #%d in %s (CN=%s)", index + 1, path, cn);

    const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
    int c = X509_cmp_current_time(na);
    if (c == 0) {
        sk_errf(err, errlen, "%s has an unreadable notAfter time", which);
        return -1;
    }
    if (c < 0) {
        format_time(na, when, sizeof when);
        sk_errf(err, errlen, "%s expired on %s", which, when);
        return -1;
    }
    c = X509_cmp_current_time(nb);
    if (c == 0) {
        sk_errf(err, errlen, "%s has an unreadable notBefore time", which);
        return -1;
    }
    if (c > 0) {
        format_time(nb, when, sizeof when);
        sk_errf(err, errlen, "%s is not valid before %s", which, when);
        return -1;
    }
    return 0;
}

SSL_CTX *sk_tls_ctx_new(const sk_tls_settings *st, char *err, size_t errlen)
{
    if (!st) {
        sk_errf(err, errlen, "no TLS settings");
        return NULL;
    }
    int min = st->min_version ? st->min_version : TLS1_2_VERSION;
    if (min != TLS1_2_VERSION && min != TLS1_3_VERSION) {
        sk_errf(err, errlen, "TLS minimum version must be TLSv1.2 or TLSv1.3");
        return NULL;
    }

    X509 *chain[CHAIN_MAX];
    int n = read_chain(st->cert_file, chain, err, errlen);
    if (n < 0)
        return NULL;
    SSL_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    for (int i = 0; i < n; i++)
        if (check_validity(chain[i], st->cert_file, i, err, errlen) < 0)
            goto fail;
    key = read_key(st->key_file, err, errlen);
    if (!key)
        goto fail;

    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        sk_errf(err, errlen, "cannot create a TLS context: out of memory");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, min)) {
        sk_errf(err, errlen, "cannot set the TLS minimum version");
        goto fail;
    }
    uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_NO_RENEGOTIATION
    opts |= SSL_OP_NO_RENEGOTIATION;
#endif
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
    opts |= SSL_OP_NO_CLIENT_RENEGOTIATION;
#endif
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A peer closing without close_notify is an ordinary end of stream for
     * SMTP: its data carries its own end (CRLF.CRLF, BDAT LAST), so there
     * is no truncation to detect. */
    opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    SSL_CTX_set_options(ctx, opts);
    /* Idle connections give their read/write buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"smtpkit", 7);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_MAX);
    SSL_CTX_set_dh_auto(ctx, 1);

    const char *ciphers = st->ciphers ? st->ciphers : SK_TLS_DEFAULT_CIPHERS;
    if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
        sk_errf(err, errlen, "TLS 1.2 cipher list \"%s\" selects no usable cipher", ciphers);
        goto fail;
    }
    if (st->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, st->ciphersuites)) {
        sk_errf(err, errlen, "TLS 1.3 cipher suites \"%s\" are not valid", st->ciphersuites);
        goto fail;
    }

    ERR_clear_error();
    if (!SSL_CTX_use_certificate(ctx, chain[0])) {
        char why[256];
        sk_tls_error_string(why, sizeof why);
        sk_errf(err, errlen, "certificate %s refused: %s", st->cert_file, why);
        goto fail;
    }
    for (int i = 1; i < n; i++)
        if (!SSL_CTX_add1_chain_cert(ctx, chain[i])) {
            char why[256];
            sk_tls_error_string(why, sizeof why);
            sk_errf(err, errlen, "certificate #%d in %s refused: %s", i + 1, st->cert_file, why);
            goto fail;
        }
    if (!SSL_CTX_use_PrivateKey(ctx, key)) {
        char why[256];
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
            ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH) {
            ERR_clear_error();
            sk_errf(err, errlen, "private key %s does not match certificate %s", st->key_file,
                    st->cert_file);
        } else {
            sk_tls_error_string(why, sizeof why);
            sk_errf(err, errlen, "private key %s refused: %s", st->key_file, why);
        }
        goto fail;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        ERR_clear_error();
        sk_errf(err, errlen, "private key %s does not match certificate %s", st->key_file,
                st->cert_file);
        goto fail;
    }
    EVP_PKEY_free(key);
    free_chain(chain, n);
    ERR_clear_error();
    return ctx;

fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    EVP_PKEY_free(key);
    free_chain(chain, n);
    return NULL;
}

void sk_tls_ctx_summary(SSL_CTX *ctx, char *out, size_t outlen)
{
    X509 *x = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
    if (!x) {
        snprintf(out, outlen, "no certificate");
        return;
    }
    char cn[128], when[64];
    subject_cn(x, cn, sizeof cn);
    format_time(X509_get0_notAfter(x), when, sizeof when);
    int days = 0, secs = 0;
    if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
        days = 0;
    else if (secs >= 12 * 3600)
        days++; /* nearest whole day */
    else if (secs <= -12 * 3600)
        days--;
    int self = X509_check_issued(x, x) == X509_V_OK;
    snprintf(out, outlen, "subject CN=%s, expires %s (%d days)%s", cn, when, days,
             self ? ", self-signed" : "");
}

/* ---- the swappable server context ---- */

struct sk_tls_server {
    pthread_mutex_t lock;
    SSL_CTX *ctx;
    unsigned generation;
};

sk_tls_server *sk_tls_server_new(const sk_tls_settings *st, char *err, size_t errlen)
{
    SSL_CTX *ctx = sk_tls_ctx_new(st, err, errlen);
    if (!ctx)
        return NULL;
    sk_tls_server *srv = calloc(1, sizeof *srv);
    if (!srv || pthread_mutex_init(&srv->lock, NULL) != 0) {
        free(srv);
        SSL_CTX_free(ctx);
        sk_errf(err, errlen, "out of memory");
        return NULL;
    }
    srv->ctx = ctx;
    return srv;
}

int sk_tls_server_reload(sk_tls_server *srv, const sk_tls_settings *st, char *err, size_t errlen)
{
    SSL_CTX *fresh = sk_tls_ctx_new(st, err, errlen);
    if (!fresh)
        return -1;
    pthread_mutex_lock(&srv->lock);
    SSL_CTX *old = srv->ctx;
    srv->ctx = fresh;
    srv->generation++;
    pthread_mutex_unlock(&srv->lock);
    /* Drops only our reference: open connections hold their own. */
    SSL_CTX_free(old);
    return 0;
}

SSL *sk_tls_server_new_ssl(sk_tls_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    SSL *ssl = SSL_new(srv->ctx); /* takes its own reference on the context */
    pthread_mutex_unlock(&srv->lock);
    return ssl;
}

SSL_CTX *sk_tls_server_get_ctx(sk_tls_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    SSL_CTX *ctx = srv->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&srv->lock);
    return ctx;
}

unsigned sk_tls_server_generation(sk_tls_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    unsigned g = srv->generation;
    pthread_mutex_unlock(&srv->lock);
    return g;
}

void sk_tls_server_free(sk_tls_server *srv)
{
    if (!srv)
        return;
    SSL_CTX_free(srv->ctx);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

void sk_tls_describe(const SSL *ssl, const char **version, const char **cipher)
{
    const char *v = ssl ? SSL_get_version(ssl) : NULL;
    const SSL_CIPHER *c = ssl ? SSL_get_current_cipher(ssl) : NULL;
    if (version)
        *version = v ? v : "unknown";
    if (cipher)
        *cipher = c ? SSL_CIPHER_get_name(c) : "unknown";
}

/* ---- self-signed certificates ---- */

/* mkdir -p for the parent directory of path: new intermediate directories
 * mode 0755 (others may need to pass through, e.g. to a mail directory
 * beside it), the one holding the files 0700. */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof dir) {
        sk_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    memcpy(dir, path, len + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            sk_errf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sk_errf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

typedef int (*pem_writer)(BIO *b, void *obj);

static int write_key_pem(BIO *b, void *obj)
{
    return PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL);
}

static int write_cert_pem(BIO *b, void *obj)
{
    return PEM_write_bio_X509(b, obj);
}

/* Write through a temporary file in the same directory, fsync, rename. */
static int write_atomic(const char *what, const char *path, mode_t mode, pem_writer writer,
                        void *obj, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= sizeof tmp) {
        sk_errf(err, errlen, "%s %s: path too long", what, path);
        return -1;
    }
    int fd = mkstemp(tmp); /* created with mode 0600 */
    if (fd < 0) {
        sk_errf(err, errlen, "%s %s: cannot create: %s", what, path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) != 0) {
        sk_errf(err, errlen, "%s %s: chmod: %s", what, path, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    BIO *b = BIO_new_fd(fd, BIO_NOCLOSE);
    int ok = b && writer(b, obj) && BIO_flush(b) == 1;
    BIO_free(b);
    if (!ok) {
        ERR_clear_error();
        sk_errf(err, errlen, "%s %s: cannot write", what, path);
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        sk_errf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        sk_errf(err, errlen, "%s %s: rename: %s", what, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int add_ip_name(GENERAL_NAMES *gens, const char *ip)
{
    ASN1_OCTET_STRING *os = a2i_IPADDRESS(ip);
    if (!os)
        return 0;
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (!g) {
        ASN1_OCTET_STRING_free(os);
        return 0;
    }
    GENERAL_NAME_set0_value(g, GEN_IPADD, os);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return 0;
    }
    return 1;
}

static int add_dns_name(GENERAL_NAMES *gens, const char *name)
{
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    if (!s || !ASN1_STRING_set(s, name, -1)) {
        ASN1_IA5STRING_free(s);
        return 0;
    }
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (!g) {
        ASN1_IA5STRING_free(s);
        return 0;
    }
    GENERAL_NAME_set0_value(g, GEN_DNS, s);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return 0;
    }
    return 1;
}

/* A DNS name we are willing to put in a certificate: LDH labels and dots. */
static int valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int add_ext_conf(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    if (!ext)
        return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static X509 *make_cert(const sk_tls_certspec *spec, EVP_PKEY *key)
{
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = x && serial && gens;

    ok = ok && X509_set_version(x, X509_VERSION_3);
    /* 127-bit random serial, positive (RFC 5280 4.1.2.2). */
    ok = ok && BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
         BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x));
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), spec->not_before_offset) &&
         X509_gmtime_adj(X509_getm_notAfter(x), spec->not_after_offset);

    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    /* A CN holds at most 64 characters; a longer name lives in the SAN only. */
    const char *cn = strlen(spec->hostname) <= 64 ? spec->hostname : "smtpkit";
    ok = ok && name &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) &&
         X509_set_issuer_name(x, name) && X509_set_pubkey(x, key);

    ASN1_OCTET_STRING *ip = ok ? a2i_IPADDRESS(spec->hostname) : NULL;
    if (ip) {
        ASN1_OCTET_STRING_free(ip);
        ok = add_ip_name(gens, spec->hostname);
    } else {
        ok = ok && add_dns_name(gens, spec->hostname);
    }
    if (ok && strcmp(spec->hostname, "127.0.0.1") != 0)
        ok = add_ip_name(gens, "127.0.0.1");
    if (ok && strcmp(spec->hostname, "::1") != 0)
        ok = add_ip_name(gens, "::1");
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;

    X509V3_CTX v3;
    if (ok) {
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        ok = add_ext_conf(x, &v3, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext_conf(x, &v3, NID_key_usage,
                          spec->keytype == SK_TLS_KEY_RSA_2048
                              ? "critical,digitalSignature,keyEncipherment"
                              : "critical,digitalSignature") &&
             add_ext_conf(x, &v3, NID_ext_key_usage, "serverAuth") &&
             add_ext_conf(x, &v3, NID_subject_key_identifier, "hash") &&
             add_ext_conf(x, &v3, NID_authority_key_identifier, "keyid:always");
    }
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;

    BN_free(serial);
    GENERAL_NAMES_free(gens);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

int sk_tls_write_self_signed(const sk_tls_certspec *spec, const char *cert_file,
                             const char *key_file, char *err, size_t errlen)
{
    if (!spec || !spec->hostname || !cert_file || !key_file) {
        sk_errf(err, errlen, "self-signed certificate: missing hostname or file name");
        return -1;
    }
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(spec->hostname);
    if (ip)
        ASN1_OCTET_STRING_free(ip);
    else if (!valid_hostname(spec->hostname)) {
        sk_errf(err, errlen, "self-signed certificate: \"%s\" is not a valid host name",
                spec->hostname);
        return -1;
    }
    ERR_clear_error();
    EVP_PKEY *key = spec->keytype == SK_TLS_KEY_RSA_2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (!key) {
        char why[256];
        sk_tls_error_string(why, sizeof why);
        sk_errf(err, errlen, "self-signed certificate: key generation failed: %s", why);
        return -1;
    }
    X509 *x = make_cert(spec, key);
    if (!x) {
        char why[256];
        sk_tls_error_string(why, sizeof why);
        sk_errf(err, errlen, "self-signed certificate: cannot build certificate: %s", why);
        EVP_PKEY_free(key);
        return -1;
    }
    int rc = -1;
    /* The key first: a certificate on disk always has its key beside it. */
    if (make_parent_dirs(key_file, err, errlen) == 0 &&
        make_parent_dirs(cert_file, err, errlen) == 0 &&
        write_atomic("private key", key_file, 0600, write_key_pem, key, err, errlen) == 0 &&
        write_atomic("certificate", cert_file, 0644, write_cert_pem, x, err, errlen) == 0)
        rc = 0;
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

int sk_tls_generate_self_signed(const char *hostname, const char *cert_file, const char *key_file,
                                char *err, size_t errlen)
{
    sk_tls_certspec spec = {
        .hostname = hostname,
        .keytype = SK_TLS_KEY_EC_P256,
        .not_before_offset = -300, /* tolerate a little clock skew */
        .not_after_offset = 365L * 24 * 3600,
    };
    return sk_tls_write_self_signed(&spec, cert_file, key_file, err, errlen);
}

/* 1 exists, 0 does not, -1 cannot tell (reported by the loader later). */
static int file_exists(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return 1;
    return errno == ENOENT ? 0 : -1;
}

int sk_tls_ensure_files(const sk_tls_settings *st, const char *hostname, int generate, char *err,
                        size_t errlen)
{
    if (!st || !st->cert_file || !*st->cert_file || !st->key_file || !*st->key_file) {
        sk_errf(err, errlen, "TLS needs both a certificate file and a key file");
        return -1;
    }
    int c = file_exists(st->cert_file), k = file_exists(st->key_file);
    /* Both present, or something odd (EACCES...) the loader will name. */
    if (!generate || (c != 0 && k != 0) || c < 0 || k < 0)
        return 0;
    if (c == 0 && k == 0) {
        if (sk_tls_generate_self_signed(hostname, st->cert_file, st->key_file, err, errlen) < 0)
            return -1;
        return 1;
    }
    if (c == 0)
        sk_errf(err, errlen,
                "certificate %s is missing but key %s exists; not generating over half a pair",
                st->cert_file, st->key_file);
    else
        sk_errf(err, errlen,
                "key %s is missing but certificate %s exists; not generating over half a pair",
                st->key_file, st->cert_file);
    return -1;
}
