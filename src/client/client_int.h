/*
 * client_int.h - the client's internal state, shared by the files of
 * src/client (connection, TLS, dialogue, AUTH). Not installed.
 */
#ifndef SMTPKIT_CLIENT_INT_H
#define SMTPKIT_CLIENT_INT_H

#include <openssl/ssl.h>

#include "smtpkit/client.h"

#define SK_CLIENT_PENDING_MAX 256
#define SK_CLIENT_RBUF_MAX (64 * 1024) /* one reply: 128 lines of 512 bytes fit */

struct sk_client {
    sk_client_opts o;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char host[256]; /* name we connected to (TLS name unless o.tls_name) */
    char peer[128]; /* "127.0.0.1:25" */
    sk_buf rbuf;    /* bytes read, not yet parsed */
    sk_transcript tr;
    sk_caps caps;
    sk_tls_info tls;
    sk_client_err err;
    char errmsg[512];
    double connect_ms, greeting_ms;
    double t_connected; /* monotonic time the TCP connection was made */
    /* Commands sent whose replies are not read yet, oldest first: replies
     * come back in order (RFC 2920 3.1), so each is matched to its command. */
    char pending[SK_CLIENT_PENDING_MAX][12];
    size_t pend_head, pend_n;
};

/* Read what is available into rbuf (at most until its max), waiting until
 * `deadline`. >0 bytes read, 0 end of file, -1 error or timeout (error set). */
int sk_client_read_some(sk_client *c, double deadline);
/* Record the lines of bytes p[0..n) in the transcript. */
void sk_client_record_lines(sk_client *c, sk_dir dir, const char *p, size_t n);

/* Note that a reply to `cmd` is now expected. */
void sk_client_expect(sk_client *c, const char *cmd);

/* Wait until the fd is ready for `events` or the deadline (monotonic seconds)
 * passes. 1 ready, 0 timeout, -1 error (errno). */
int sk_client_wait(sk_client *c, short events, double deadline);
double sk_client_deadline(const sk_client *c);

/* tls.c */
int sk_client_tls_start(sk_client *c);
int sk_client_tls_read(sk_client *c, char *p, size_t n, double deadline);        /* >0, 0 EOF, -1 */
int sk_client_tls_write(sk_client *c, const char *p, size_t n, double deadline); /* 0 / -1 */
void sk_client_tls_end(sk_client *c);

/* tls_verify.c: record every verification error of the coming handshake;
 * after it, fill c->tls.problems, .verified and .verify_error (name_match,
 * the names and dates must be filled already). */
void sk_client_tls_verify_setup(sk_client *c);
void sk_client_tls_verify_finish(sk_client *c, int have_cert, const char *name);

/* base64 for AUTH (no line breaks). Returns a malloc'd NUL-terminated string. */
char *sk_client_b64(const void *p, size_t n);

#endif
