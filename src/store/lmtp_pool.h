/*
 * lmtp_pool.h - the LMTP client of the store (RFC 2033): a small pool of
 * connections to one LMTP server, each driven by the client core
 * (client_core.h, LMTP mode) over a blocking socket with poll() timeouts.
 * Runs on the commit worker threads, which may block; never on the event
 * loop. Not part of the public library interface.
 */
#ifndef SMTPKIT_STORE_LMTP_POOL_H
#define SMTPKIT_STORE_LMTP_POOL_H

#include <stddef.h>

#include "smtpkit/client_core.h"

typedef struct sk_lmtp_pool sk_lmtp_pool;

/* One LMTP recipient: addr in, the rest filled by sk_lmtp_deliver. */
typedef struct sk_lmtp_rcpt {
    const char *addr;
    sk_cc_verdict verdict; /* the server's verdict; TEMP when it gave none */
    int code;              /* its reply code, 0: no reply */
    char enhanced[12];     /* its enhanced code, or "" */
    char text[128];        /* its first reply line's text, or "" */
} sk_lmtp_rcpt;

/* One message to hand over. */
typedef struct sk_lmtp_msg {
    const char *sender;      /* reverse-path without <>, "" for the null one */
    int fd;                  /* the spool file (LF line ends), read with pread */
    unsigned long long off;  /* where the message to send starts in it */
    unsigned long long size; /* where it ends (the file's octets) */
    unsigned long long wire; /* the RFC 822 size, for SIZE= */
    int body_8bit;
    int smtputf8;
} sk_lmtp_msg;

/* Timeouts (milliseconds). */
#define SK_LMTP_CONNECT_MS 10000   /* connect() */
#define SK_LMTP_REPLY_MS 60000     /* each reply, each data block */
#define SK_LMTP_DATA_END_MS 300000 /* the replies after the data (delivery, Sieve) */
#define SK_LMTP_SLOT_MS 60000      /* waiting for a free connection */
#define SK_LMTP_IDLE_MAX 30        /* seconds an idle connection is kept */

/* Parse a target: "unix:/path", "host:port", "[v6addr]:port". 0 or -1. */
int sk_lmtp_target_parse(const char *target, char *host, size_t hostcap, char *port, size_t portcap,
                         int *is_unix, char *err, size_t errlen);

/* NULL with a message in err. max_conns 0 means 10. */
sk_lmtp_pool *sk_lmtp_pool_new(const char *target, unsigned max_conns, const char *lhlo, char *err,
                               size_t errlen);
void sk_lmtp_pool_free(sk_lmtp_pool *p);

/* Hand one message to the server for rcpts[0..n) (distinct addresses).
 * Every recipient gets a verdict: the server's (RCPT refusal, or its reply
 * after the data), or TEMP without a reply when the server could not be
 * reached, failed, or timed out (then `why` says what happened, and
 * *errnum, when given, is the errno of the system call that failed first,
 * or 0 when none did). Returns 0 when every recipient has the server's
 * verdict, -1 otherwise. Blocking. */
int sk_lmtp_deliver(sk_lmtp_pool *p, const sk_lmtp_msg *m, sk_lmtp_rcpt *rcpts, size_t n, char *why,
                    size_t whylen, int *errnum);
/* The target as configured ("unix:/run/dovecot/lmtp"), for the log. */
const char *sk_lmtp_pool_target(const sk_lmtp_pool *p);

/* Counters: connections opened, and the most open at once. */
void sk_lmtp_pool_stats(sk_lmtp_pool *p, unsigned long long *opened, unsigned *peak);

#endif
