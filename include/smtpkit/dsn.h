/*
 * dsn.h - delivery status notifications (RFC 3464) as a pure builder: the
 * bounce, delay warning or success report a queue sends back to a
 * message's envelope sender. No I/O, no clock, no randomness of its own:
 * the caller passes the time and a unique token.
 *
 * Output: one complete RFC 5322 message with CRLF line ends,
 *   From: MAILER-DAEMON@<reporting MTA>, To: <the original sender>,
 *   Date, Message-ID, Auto-Submitted: auto-replied (RFC 3834 5),
 *   Content-Type: multipart/report; report-type=delivery-status (RFC 6522)
 * whose parts are
 *   1. text/plain: what happened to each recipient, in plain words, with
 *      the remote server's reply and what its code means (the reply
 *      registry's meaning of the basic code, the enhanced code's name);
 *   2. message/delivery-status: Reporting-MTA, Original-Envelope-Id,
 *      Arrival-Date, then per recipient Original-Recipient,
 *      Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code
 *      ("smtp; 550 5.1.1 ..."), Last-Attempt-Date, Will-Retry-Until;
 *   3. text/rfc822-headers (the original header section; RET=HDRS, the
 *      default) or message/rfc822 (the whole message: RET=FULL, when it
 *      fits in full_max).
 * Every line is at most 998 octets and header fields are folded near 78;
 * anything taken from the network (reply texts, addresses, ENVID) has its
 * control characters (CR, LF, NUL, ...) replaced, so no input can add a
 * header field or a MIME part. The boundary is checked not to occur in any
 * part.
 *
 * Never for a message whose sender is the null path <>: sk_dsn_build()
 * refuses with SK_DSN_NULL_SENDER (RFC 5321 4.5.5, RFC 3464 2: no
 * notification about a notification). The envelope of the result is
 * MAIL FROM:<> and RCPT TO:<the original sender>.
 *
 * Plugging it in (the delivery agent): when recipients bounce (5xx,
 * null MX, expiry) or a delay warning is due, fill one sk_dsn_rcpt per
 * recipient from its envelope record (address, ORCPT, last reply and the
 * host that gave it), pass the queued message file's bytes, and hand the
 * result to the store like any message from <> (local sender: Maildir;
 * remote: the queue).
 */
#ifndef SMTPKIT_DSN_H
#define SMTPKIT_DSN_H

#include <stddef.h>
#include <time.h>

#include "smtpkit/buf.h"

typedef enum sk_dsn_action { /* RFC 3464 2.3.3 */
                             SK_DSN_FAILED,
                             SK_DSN_DELAYED,
                             SK_DSN_DELIVERED,
                             SK_DSN_RELAYED,
                             SK_DSN_EXPANDED,
} sk_dsn_action;

typedef enum sk_dsn_ret { /* RFC 3461 4.3 */
                          SK_DSN_RET_HDRS,
                          SK_DSN_RET_FULL,
} sk_dsn_ret;

typedef struct sk_dsn_rcpt {
    const char *final_recipient;    /* the address tried, without <> (required) */
    const char *original_recipient; /* ORCPT as given ("rfc822;bob@example.org"), or NULL */
    sk_dsn_action action;
    const char *status;      /* "5.1.1" (RFC 3463; required, class 2, 4 or 5) */
    const char *remote_mta;  /* the MX that answered ("mx.example.org"), or NULL */
    const char *reply;       /* its whole reply, "550 5.1.1 <bob@...>: unknown"; the
                                lines of a multi-line reply separated by LF or CRLF;
                                NULL when there was none (DNS failure, timeout) */
    const char *diagnostic;  /* plain words when there is no reply ("connection
                                refused", "null MX"), or NULL */
    time_t last_attempt;     /* 0: none */
    time_t will_retry_until; /* SK_DSN_DELAYED: when the queue gives up; 0: unknown */
} sk_dsn_rcpt;

typedef struct sk_dsn_input {
    const char *reporting_mta; /* our host name (server_name) */
    const char *sender;        /* the original envelope sender without <>; "" = <> */
    const char *envid;         /* the original ENVID (RFC 3461 4.4), or NULL */
    time_t arrival;            /* when the original arrived */
    time_t now;                /* Date of the report */
    const char *unique;        /* unique token for Message-ID and boundary (the
                                  queue id plus random characters) */
    const sk_dsn_rcpt *rcpts;
    size_t nrcpts;       /* at least 1 */
    const char *message; /* the original message as queued (CRLF lines) */
    size_t message_len;
    sk_dsn_ret ret;
    size_t full_max; /* RET=FULL only up to this many octets, else headers */
} sk_dsn_input;

#define SK_DSN_OK 0
#define SK_DSN_NULL_SENDER (-1) /* the sender is <>: never bounce a bounce */
#define SK_DSN_INVALID                                                                             \
    (-2)                  /* a missing field, a malformed status, a                                \
                             sender with controls, spaces or <> in it */
#define SK_DSN_NOMEM (-3) /* out of memory, or over the buffer's max */

/* Build the report into `out` (appended). Returns SK_DSN_OK or an error
 * (then `out` holds nothing of it). *eight_bit (may be NULL) is set when the
 * result holds 8-bit octets (a UTF-8 address or an 8-bit original sent
 * back in full): send it with BODY=8BITMIME. */
int sk_dsn_build(const sk_dsn_input *in, sk_buf *out, int *eight_bit);

/* "failed", "delayed", ... */
const char *sk_dsn_action_name(sk_dsn_action a);

#endif
