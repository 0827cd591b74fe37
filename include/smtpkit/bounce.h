/*
 * bounce.h - find the SMTP replies quoted in a bounce message: an RFC 3464
 * delivery status notification (Diagnostic-Code fields), the human-readable
 * parts written by Postfix ("said: ... (in reply to RCPT TO command)"),
 * Exim ("SMTP error from remote mail server after RCPT TO:<...>:"),
 * qmail ("Remote host said:"), Microsoft 365 / Exchange ("Remote Server
 * returned '...'") and Gmail ("The response from the remote server was:"),
 * pasted whole or in part.
 *
 * The input is untrusted text: header lines are unfolded (RFC 5322 2.2.3),
 * MIME parts in quoted-printable or base64 (RFC 2045 6.7, 6.8) are decoded,
 * and scanning stops at the returned original message.
 */
#ifndef SMTPKIT_BOUNCE_H
#define SMTPKIT_BOUNCE_H

#include <stddef.h>

#include "smtpkit/reply.h"

#define SK_BOUNCE_MAX_REPLIES 64
#define SK_BOUNCE_MAX_INPUT (4u * 1024u * 1024u)

typedef struct sk_bounce_reply {
    int code;
    int has_enhanced;
    sk_enhanced enhanced;
    char command[16];     /* the command it answered ("RCPT", "MAIL",
                             "DATA-END", "DATA", "CONNECT", "EHLO",
                             "STARTTLS") when the bounce says, else "" */
    const char *found_by; /* where it was found: "Diagnostic-Code", "said:",
                             "Remote Server returned", "response was",
                             "SMTP error", "reply line", ... */
    char recipient[256];  /* the recipient it concerns when the bounce says, else "" */
    char *text;           /* the reply text without code and enhanced code,
                             white space collapsed */
    char *line;           /* "550 5.1.1 text" */
} sk_bounce_reply;

typedef struct sk_bounce {
    sk_bounce_reply replies[SK_BOUNCE_MAX_REPLIES];
    size_t n;
    int truncated; /* more distinct replies than SK_BOUNCE_MAX_REPLIES */
} sk_bounce;

/*
 * Scan msg[0..len) (at most SK_BOUNCE_MAX_INPUT bytes are read) and fill
 * *b with every distinct reply, in order of first appearance. Replies that
 * say the same (same codes, one text containing the other, as in the
 * human-readable part and the Diagnostic-Code of one bounce) are one entry.
 * Returns the number found (0 if none), or -1 if out of memory (*b is then
 * empty). Free with sk_bounce_free.
 */
int sk_bounce_scan(const char *msg, size_t len, sk_bounce *b);
void sk_bounce_free(sk_bounce *b);

#endif
