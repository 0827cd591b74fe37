/*
 * rcpt_result.h - what one delivery attempt did to each recipient, and how
 * that lands in the envelope record (docs/DELIVERY.md 2 and 3). Pure: no
 * I/O, no clock, no randomness of its own.
 *
 * The verdicts follow RFC 5321 4.2.1 and 4.5.3.1.10 the way Postfix's
 * smtp_trouble.c applies them: 2xx delivers (251 too), 4xx (and 552 to
 * RCPT) defers, 5xx bounces. A temporary failure on one MX leaves the
 * recipient open for the next MX; only after the last one is it deferred.
 */
#ifndef SMTPKIT_DELIVERY_RCPT_RESULT_H
#define SMTPKIT_DELIVERY_RCPT_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"
#include "smtpkit/client_core.h"
#include "smtpkit/retry.h"

typedef enum sk_dlv_state {
    SK_DLV_OPEN = 0, /* not decided yet (next address, next MX) */
    SK_DLV_SENT,     /* a 2xx to the end of data after a 2xx to RCPT */
    SK_DLV_DEFER,    /* a temporary failure: try again later */
    SK_DLV_BOUNCE,   /* a permanent failure: tell the sender */
} sk_dlv_state;

typedef struct sk_dlv_rcpt_result {
    size_t index; /* into the envelope's rcpts */
    char addr[512];
    sk_dlv_state state;
    int accepted;       /* RCPT got a 2xx in the current session */
    int code;           /* the reply that decided, or 0 (DNS, connection) */
    char enhanced[16];  /* the status: "5.1.1", or the local one when code is 0 */
    char reply_enh[16]; /* the enhanced code as the reply gave it, or "" */
    char host[320];     /* "mx.example.net[192.0.2.1]:25", or "" */
    char text[512];     /* the reply's text, or the reason in words */
} sk_dlv_rcpt_result;

/* The state a reply code gives in a phase: 2xx SENT (to the end of data;
 * to RCPT it only means accepted), 4xx DEFER, 5xx BOUNCE; a 552 to RCPT is
 * a 452 (RFC 5321 4.5.3.1.10). */
sk_dlv_state sk_dlv_state_of(sk_cc_phase phase, int code);

/* Record a decision for r: state, code, enhanced (or "" for none: then the
 * class of the code gives X.0.0), host and text. */
void sk_dlv_set(sk_dlv_rcpt_result *r, sk_dlv_state state, int code, const char *enhanced,
                const char *host, const char *text);

/* The domain of an address (after the last '@'), "" when none. */
const char *sk_dlv_domain(const char *addr);

/* The next group of recipients to try together: the first recipient that
 * is due (PENDING or DEFERRED with next_attempt <= now, or any of those
 * when force is set) and not yet `taken`, then every later due recipient
 * of the same domain (case-insensitive), at most max (>= 1). Their indexes
 * go to out; returns how many (0: nothing left). */
size_t sk_dlv_next_group(const sk_envelope *e, long long now, int force, const unsigned char *taken,
                         size_t max, size_t *out);

/* The earliest next_attempt of a recipient still to deliver (PENDING or
 * DEFERRED), or -1 when none is left (every recipient is final or held). */
long long sk_dlv_next_due(const sk_envelope *e);

/* Apply an attempt's results to the record as it is now. A result counts
 * only when its recipient (same index and address) is still PENDING or
 * DEFERRED (an operator may have held, bounced or deleted it meanwhile).
 * SENT and BOUNCE are final; DEFER and OPEN count an attempt and take the
 * retry schedule, which may give up (bounce 4.4.7, the message is too old).
 * The indexes of recipients that bounced now go to bounced (room for n).
 * Returns how many bounced. */
size_t sk_dlv_apply(sk_envelope *e, const sk_dlv_rcpt_result *res, size_t n,
                    const sk_retry_policy *p, long long now, uint32_t rnd, size_t *bounced);

/* 1 when no recipient of e is PENDING, DEFERRED or HELD (the message can
 * leave the queue). */
int sk_dlv_all_final(const sk_envelope *e);

#endif
