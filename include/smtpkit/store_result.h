/*
 * store_result.h - what storing a message came to: one result for the
 * message, and one per envelope recipient (an LMTP destination answers each
 * recipient on its own, RFC 2033 4.2). Shared by the store and the session,
 * so neither includes the other.
 */
#ifndef SMTPKIT_STORE_RESULT_H
#define SMTPKIT_STORE_RESULT_H

#include <stddef.h>

typedef enum sk_store_result {
    SK_STORE_OK = 0,
    SK_STORE_NOSPACE = 1, /* 452 4.3.1 insufficient system storage */
    SK_STORE_IOERR = 2,   /* 451 4.3.0 local error in processing */
    /* A destination that answers (LMTP) did not take the message: */
    SK_STORE_DEFERRED = 3, /* a temporary failure (its 4xx, or 451 4.3.0
                              when it could not be reached or answered
                              nothing valid): the sender retries */
    SK_STORE_REFUSED = 4,  /* every failure was permanent (its 5xx) */
} sk_store_result;

/* The outcome for one envelope recipient. code 0: the destination gave no
 * reply of its own (Maildir, queue); `result` says it all. A destination
 * that answers per recipient (LMTP) puts its reply here. */
typedef struct sk_store_rcpt_outcome {
    sk_store_result result;
    int code;          /* 0, or the destination's reply code */
    char enhanced[12]; /* its enhanced code, or "" */
    char text[128];    /* its reply text, or "" */
} sk_store_rcpt_outcome;

/* Where a failed store step left off, for the operator's log: the step
 * (a fixed name: "begin", "append", "spool-fsync", "maildir-create",
 * "link", "copy", "dir-fsync", "queue-msg", "queue-envelope", "lmtp",
 * "memory", "submit", "arguments"), the path it worked on (for "lmtp" the
 * LMTP server, as configured: "unix:/run/dovecot/lmtp"), and errno (0 when
 * the failure was no system call's). detail says in words what errno
 * cannot: for "lmtp" the server's reply that decided the result
 * ("<bob@example.org> 452 4.2.2 Mailbox is full"), or what went wrong
 * talking to it ("LMTP server unix:/run/lmtp: Connection refused");
 * "" otherwise. step is NULL when nothing failed. */
#define SK_STORE_ERROR_PATH_CAP 1024
#define SK_STORE_ERROR_DETAIL_CAP 256
typedef struct sk_store_error {
    const char *step;
    int errnum;
    char path[SK_STORE_ERROR_PATH_CAP];
    char detail[SK_STORE_ERROR_DETAIL_CAP];
} sk_store_error;

/* The outcome of one commit: `result` is SK_STORE_OK only when every
 * destination of every recipient is durable. rcpts[i] is the envelope
 * recipient i's (nrcpts of them, may be 0 when the caller gave none).
 * error says which step failed first when result is not SK_STORE_OK. */
typedef struct sk_store_outcome {
    sk_store_result result;
    size_t nrcpts;
    sk_store_rcpt_outcome *rcpts;
    /* DEFERRED, REFUSED: the reply for the sender, from the destination
     * (a valid code of the result's class, an enhanced code of the same
     * class, one line of text); code 0: the default reply of the result */
    int code;
    char enhanced[12];
    char text[128];
    sk_store_error error;
} sk_store_outcome;

#endif
