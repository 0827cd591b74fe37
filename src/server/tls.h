/*
 * tls.h - server-side TLS for STARTTLS (RFC 3207) and implicit TLS
 * submission (RFC 8314): loading and checking the certificate and key,
 * the SSL_CTX policy (TLS 1.2 minimum, server cipher preference, no
 * compression, no renegotiation), a self-signed pair for first runs, and
 * reloading on SIGHUP without disturbing connections already open.
 *
 * Every failure is reported as one line in a caller-supplied buffer, such as
 * "certificate var/tls/cert.pem expired on 2025-01-31 12:00:00 UTC"; no
 * function here prints or aborts.
 */
#ifndef SMTPKIT_SERVER_TLS_H
#define SMTPKIT_SERVER_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* TLS 1.2 ciphers: Mozilla's "intermediate" profile (forward secrecy and
 * AEAD only). TLS 1.3 uses OpenSSL's default suites. */
#define SK_TLS_DEFAULT_CIPHERS                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

typedef struct sk_tls_settings {
    const char *cert_file;    /* PEM: the server certificate, then any intermediates */
    const char *key_file;     /* PEM private key, not passphrase-protected */
    const char *ciphers;      /* TLS 1.2 cipher list; NULL: SK_TLS_DEFAULT_CIPHERS */
    const char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL's default */
    int min_version;          /* 0 or TLS1_2_VERSION: TLS 1.2; TLS1_3_VERSION */
} sk_tls_settings;

/*
 * Build a server SSL_CTX from the settings. Checks, each with its own
 * message: file missing or unreadable, no PEM certificate / key in the
 * file, passphrase-protected key, key not matching the certificate, any
 * certificate of the chain expired or not yet valid, a bad cipher list.
 * Returns the context, or NULL with err filled.
 */
SSL_CTX *sk_tls_ctx_new(const sk_tls_settings *st, char *err, size_t errlen);

/* One line about the certificate of ctx for the start-up log:
 * "subject CN=mx.example.org, expires 2027-11-22 08:00:00 UTC (365 days)". */
void sk_tls_ctx_summary(SSL_CTX *ctx, char *out, size_t outlen);

/*
 * The server's current context. New connections take it with
 * sk_tls_server_new_ssl(); a reload builds a complete new context first and
 * swaps it in only when that succeeded, so a bad certificate on SIGHUP
 * leaves the old one serving. Connections already open keep the context
 * they started with (each SSL holds a reference). Safe to use from several
 * threads.
 */
typedef struct sk_tls_server sk_tls_server;

sk_tls_server *sk_tls_server_new(const sk_tls_settings *st, char *err, size_t errlen);
/* 0 on success (new context in use), -1 with err filled (old one kept). */
int sk_tls_server_reload(sk_tls_server *srv, const sk_tls_settings *st, char *err, size_t errlen);
/* A new server-side SSL for one connection, or NULL (out of memory). */
SSL *sk_tls_server_new_ssl(sk_tls_server *srv);
/* The current context with a reference the caller must SSL_CTX_free. */
SSL_CTX *sk_tls_server_get_ctx(sk_tls_server *srv);
/* How many times a reload has replaced the context (for logs and tests). */
unsigned sk_tls_server_generation(sk_tls_server *srv);
void sk_tls_server_free(sk_tls_server *srv);

typedef enum sk_tls_keytype {
    SK_TLS_KEY_EC_P256,
    SK_TLS_KEY_RSA_2048,
} sk_tls_keytype;

/* What a generated certificate looks like. Validity is relative to now. */
typedef struct sk_tls_certspec {
    const char *hostname; /* CN and subjectAltName DNS (or IP if a literal) */
    sk_tls_keytype keytype;
    long not_before_offset; /* seconds relative to now (usually slightly < 0) */
    long not_after_offset;  /* seconds relative to now */
} sk_tls_certspec;

/*
 * Write a self-signed certificate and its key as PEM. The key is created
 * with mode 0600 and the certificate 0644, each through a temporary file
 * renamed into place, so a crash never leaves half a file. Missing parent
 * directories are created (0755, the last one 0700). Existing files are
 * replaced.
 * subjectAltName: DNS:hostname (or IP:hostname), IP:127.0.0.1, IP:::1.
 * Returns 0, or -1 with err filled.
 */
int sk_tls_write_self_signed(const sk_tls_certspec *spec, const char *cert_file,
                             const char *key_file, char *err, size_t errlen);

/* The usual case: an EC P-256 pair valid for one year. */
int sk_tls_generate_self_signed(const char *hostname, const char *cert_file, const char *key_file,
                                char *err, size_t errlen);

/*
 * For `tls_generate_if_missing`: when neither file exists and generate is
 * set, write a self-signed pair for hostname. Returns 1 if generated, 0 if
 * the files were already there (they are checked later by
 * sk_tls_ctx_new), -1 with err filled: only one of the two exists (never
 * overwrite a half-present pair), or generating failed.
 */
int sk_tls_ensure_files(const sk_tls_settings *st, const char *hostname, int generate, char *err,
                        size_t errlen);

/* Protocol version ("TLSv1.3") and cipher ("TLS_AES_256_GCM_SHA384") of an
 * established connection, for sk_session_tls_started() and logs. The
 * strings are static. */
void sk_tls_describe(const SSL *ssl, const char **version, const char **cipher);

/* The OpenSSL error queue as one line (then cleared); "unknown error" if
 * the queue is empty. For handshake failures in logs. */
void sk_tls_error_string(char *out, size_t outlen);

#endif
