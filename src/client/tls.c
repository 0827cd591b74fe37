/*
 * tls.c - client TLS with OpenSSL: STARTTLS (RFC 3207) and implicit TLS
 * (RFC 8314) handshakes on the non-blocking socket, certificate checks
 * against the system CA store (plus an optional CA file), the host name
 * check (RFC 6125 via X509_check_host / X509_check_ip_asc), SNI (RFC 6066,
 * never for an IP literal), and the details a user wants to see: version,
 * cipher, subject, issuer, validity dates, names, whether the name matches.
 *
 * The handshake itself does not fail on a bad certificate: every reason is
 * recorded (tls_verify.c) and the verdict read afterwards so it can be
 * shown; the connection is refused then unless the caller set `insecure`
 * (probe does by default: opportunistic TLS, RFC 3207 4.1).
 */
#include "client/client_int.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void ssl_errtext(char *out, size_t n)
{
    unsigned long e = ERR_get_error();
    unsigned long last = e;
    while ((e = ERR_get_error()) != 0)
        last = e; /* the innermost reason is usually the last one queued */
    if (last) {
        const char *reason = ERR_reason_error_string(last);
        snprintf(out, n, "%s", reason ? reason : "TLS error");
    } else {
        snprintf(out, n, "TLS error");
    }
}

static int ensure_ctx(sk_client *c)
{
    if (c->ctx)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        sk_client_set_error(c, SK_CLIENT_ERR_TLS, "cannot create TLS context");
        return -1;
    }
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ERR_clear_error(); /* no system store: verification will say so */
    }
    if (c->o.cafile && SSL_CTX_load_verify_locations(ctx, c->o.cafile, NULL) != 1) {
        char e[160];
        ssl_errtext(e, sizeof e);
        sk_client_set_error(c, SK_CLIENT_ERR_TLS, "cannot load CA file %s: %s", c->o.cafile, e);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* judged after the handshake */
    c->ctx = ctx;
    return 0;
}

static void name_text(X509_NAME *nm, char *out, size_t n)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *p;
    long len = BIO_get_mem_data(b, &p);
    if (len > 0) {
        size_t l = (size_t)len < n - 1 ? (size_t)len : n - 1;
        memcpy(out, p, l);
        out[l] = '\0';
    }
    BIO_free(b);
}

static void time_text(const ASN1_TIME *t, char *out, size_t n)
{
    struct tm tm;
    out[0] = '\0';
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void san_text(X509 *cert, char *out, size_t n)
{
    out[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!gens)
        return;
    size_t used = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char item[128] = "";
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int l = ASN1_STRING_length(g->d.dNSName);
            if (l > 0 && l < (int)sizeof item - 4)
                snprintf(item, sizeof item, "%.*s", l, (const char *)d);
        } else if (g->type == GEN_IPADD) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            int l = ASN1_STRING_length(g->d.iPAddress);
            if (l == 4)
                snprintf(item, sizeof item, "IP:%u.%u.%u.%u", d[0], d[1], d[2], d[3]);
            else if (l == 16) {
                char a[INET6_ADDRSTRLEN];
                if (inet_ntop(AF_INET6, d, a, sizeof a))
                    snprintf(item, sizeof item, "IP:%s", a);
            }
        }
        for (char *q = item; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = '?';
        if (!item[0])
            continue;
        int w = snprintf(out + used, n - used, "%s%s", used ? ", " : "", item);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    GENERAL_NAMES_free(gens);
}

static const char *verify_name(const sk_client *c)
{
    return c->o.tls_name && *c->o.tls_name ? c->o.tls_name : c->host;
}

/* Fill c->tls after a successful handshake and decide whether to go on. */
static int judge(sk_client *c)
{
    sk_tls_info *t = &c->tls;
    t->active = 1;
    snprintf(t->version, sizeof t->version, "%s", SSL_get_version(c->ssl));
    const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
    snprintf(t->cipher, sizeof t->cipher, "%s", ci ? SSL_CIPHER_get_name(ci) : "?");
    t->bits = ci ? SSL_CIPHER_get_bits(ci, NULL) : 0;
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    const char *name = verify_name(c);
    if (cert) {
        name_text(X509_get_subject_name(cert), t->subject, sizeof t->subject);
        name_text(X509_get_issuer_name(cert), t->issuer, sizeof t->issuer);
        time_text(X509_get0_notBefore(cert), t->not_before, sizeof t->not_before);
        time_text(X509_get0_notAfter(cert), t->not_after, sizeof t->not_after);
        san_text(cert, t->names, sizeof t->names);
        if (sk_is_ip_literal(name))
            t->name_match = X509_check_ip_asc(cert, name, 0) == 1;
        else
            t->name_match = X509_check_host(cert, name, 0, 0, NULL) == 1;
        X509_free(cert);
    }
    sk_client_tls_verify_finish(c, cert != NULL, name);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "TLS established: %s, cipher %s (%d bits)", t->version,
                       t->cipher, t->bits);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "certificate subject: %s", t->subject);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "certificate issuer: %s", t->issuer);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "certificate valid from %s until %s", t->not_before,
                       t->not_after);
    if (t->names[0])
        sk_transcript_addf(&c->tr, SK_DIR_INFO, "certificate names: %s", t->names);
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "certificate %s %s; chain %s%s%s",
                       t->name_match ? "matches" : "does NOT match", name,
                       t->verified ? "verified" : "NOT verified", t->verified ? "" : ": ",
                       t->verified ? "" : t->verify_error);
    if (t->problems && !c->o.insecure) {
        sk_client_set_error(c, SK_CLIENT_ERR_TLS,
                            "certificate of %s refused: %s (--insecure shows the dialogue "
                            "anyway)",
                            name, t->verify_error);
        return -1;
    }
    if (t->problems)
        sk_transcript_addf(&c->tr, SK_DIR_INFO, "continuing despite the certificate problem");
    return 0;
}

int sk_client_tls_start(sk_client *c)
{
    if (ensure_ctx(c) < 0)
        return -1;
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        sk_client_set_error(c, SK_CLIENT_ERR_TLS, "cannot set up TLS");
        return -1;
    }
    memset(&c->tls, 0, sizeof c->tls);
    sk_client_tls_verify_setup(c); /* every verification error is recorded */
    const char *name = verify_name(c);
    if (name[0] && !sk_is_ip_literal(name))
        SSL_set_tlsext_host_name(c->ssl, name); /* SNI: names only (RFC 6066 3) */
    /* Let OpenSSL check the name too, so the verify result covers it. */
    if (name[0]) {
        if (sk_is_ip_literal(name))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name);
        else
            SSL_set1_host(c->ssl, name);
    }
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "TLS handshake with %s%s%s", c->peer,
                       name[0] && !sk_is_ip_literal(name) ? ", SNI " : "",
                       name[0] && !sk_is_ip_literal(name) ? name : "");
    double deadline = sk_client_deadline(c);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = sk_client_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w > 0)
                continue;
            sk_client_set_error(c, SK_CLIENT_ERR_TLS,
                                "TLS handshake with %s did not finish within %d s", c->peer,
                                (c->o.timeout_ms + 999) / 1000);
            return -1;
        }
        char why[160];
        if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
            snprintf(why, sizeof why, "the server closed the connection");
        else
            ssl_errtext(why, sizeof why);
        sk_client_set_error(c, SK_CLIENT_ERR_TLS, "TLS handshake with %s failed: %s", c->peer, why);
        return -1;
    }
    return judge(c);
}

int sk_client_tls_read(sk_client *c, char *p, size_t n, double deadline)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = sk_client_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w > 0)
                continue;
            sk_client_set_error(c, SK_CLIENT_ERR_TIMEOUT, "%s did not answer within %d s (timeout)",
                                c->peer, (c->o.timeout_ms + 999) / 1000);
            return -1;
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
            return 0; /* closed without close_notify: treat as end of file */
        char why[160];
        ssl_errtext(why, sizeof why);
        sk_client_set_error(c, SK_CLIENT_ERR_TLS, "TLS read from %s failed: %s", c->peer, why);
        return -1;
    }
}

int sk_client_tls_write(sk_client *c, const char *p, size_t n, double deadline)
{
    size_t off = 0;
    while (off < n) {
        ERR_clear_error();
        size_t chunk = n - off > 65536 ? 65536 : n - off;
        int r = SSL_write(c->ssl, p + off, (int)chunk);
        if (r > 0) {
            off += (size_t)r;
            deadline = sk_client_deadline(c);
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = sk_client_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w > 0)
                continue;
            sk_client_set_error(c, SK_CLIENT_ERR_TIMEOUT, "%s stopped reading for %d s (timeout)",
                                c->peer, (c->o.timeout_ms + 999) / 1000);
            return -1;
        }
        char why[160];
        if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
            snprintf(why, sizeof why, "the server closed the connection");
        else
            ssl_errtext(why, sizeof why);
        sk_client_set_error(c, SK_CLIENT_ERR_CLOSED, "sending to %s over TLS failed: %s", c->peer,
                            why);
        return -1;
    }
    return 0;
}

void sk_client_tls_end(sk_client *c)
{
    if (!c->ssl)
        return;
    if (c->tls.active)
        (void)SSL_shutdown(c->ssl); /* one try, never wait: we are leaving */
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();
}

char *sk_client_b64(const void *p, size_t n)
{
    if (n > (size_t)INT32_MAX / 2)
        return NULL;
    size_t outlen = 4 * ((n + 2) / 3) + 1;
    unsigned char *out = malloc(outlen);
    if (!out)
        return NULL;
    EVP_EncodeBlock(out, p, (int)n);
    return (char *)out;
}
