/*
 * session.h - the SMTP server protocol core (RFC 5321, 1869, 2920, 3030,
 * 6152, 6531, 2034, 3207, 4954). No I/O: bytes in, replies and actions out.
 *
 * The shell (src/server) feeds every byte read from the client into
 * sk_session_feed(), writes out whatever sk_session_output() holds, and
 * follows the flags of sk_session_wants(). The session asks the shell for
 * recipient verdicts, credential checks and storage through sk_session_ops.
 */
#ifndef SMTPKIT_SESSION_H
#define SMTPKIT_SESSION_H

#include <stddef.h>

#include "smtpkit/buf.h"
#include "smtpkit/store_result.h"

typedef struct sk_session sk_session;

typedef enum sk_bare_policy {
    SK_BARE_REJECT,    /* default: a bare CR or LF in DATA/BDAT makes the message
                          refused (550 5.6.0 after end of data), nothing stored */
    SK_BARE_NORMALISE, /* store it as CRLF; it never ends the data */
} sk_bare_policy;

/* Per-listener settings; the shell owns the memory, which outlives the session. */
typedef struct sk_session_config {
    const char *hostname;    /* our name in 220/250/Received */
    size_t max_message_size; /* SIZE limit in octets (RFC 1870), > 0 */
    unsigned max_recipients; /* per transaction, >= 100 (RFC 5321 4.5.3.1.8) */
    size_t max_line;         /* command line limit incl. CRLF, >= 512 */
    unsigned max_errors;     /* errors before 421 4.7.0 and close */
    unsigned max_commands;   /* commands per session before 421 */
    sk_bare_policy bare_policy;
    int vrfy_discloses;     /* 0: VRFY answers 252 (default) */
    int expn_enabled;       /* 0: EXPN answers 502 (default) */
    int starttls_offered;   /* listener can do STARTTLS */
    int auth_offered;       /* AUTH available on this listener at all */
    int auth_requires_tls;  /* AUTH only advertised/accepted under TLS */
    int mail_requires_auth; /* submission: MAIL needs AUTH first (530 5.7.0) */
    int implicit_tls;       /* the connection started in TLS (RFC 8314) */

    /* A message whose header section holds more Received: fields than this
     * is refused after its data with 554 5.4.6 (RFC 5321 6.3: a mail loop);
     * 0: no limit. */
    unsigned max_received_headers;
} sk_session_config;

/* What the shell tells the session about the peer. */
typedef struct sk_peer {
    const char *addr; /* "192.0.2.1" or "2001:db8::1" */
    const char *rdns; /* verified reverse name, or NULL */
    int trusted;      /* in a configured trusted network: may relay */
} sk_peer;

/* Recipient verdicts. */
typedef enum sk_rcpt_verdict {
    SK_RCPT_ACCEPT,       /* 250 2.1.5 */
    SK_RCPT_FORWARD,      /* 251 2.1.5 User not local; will forward to <fwd> */
    SK_RCPT_UNKNOWN,      /* 550 5.1.1 */
    SK_RCPT_RELAY_DENIED, /* 550 5.7.1 relay access denied */
    SK_RCPT_DISABLED,     /* 550 5.2.1 mailbox disabled */
    SK_RCPT_TEMPFAIL,     /* 451 4.3.0 */
} sk_rcpt_verdict;

/* Store results (store_append, sk_session_commit_done): smtpkit/store_result.h. */

/* A recipient accepted into the current transaction. */
typedef struct sk_rcpt {
    char *addr; /* forward-path mailbox as given, without <> */
    void *dest; /* opaque, set by ops->rcpt_check; freed by ops->dest_free */
} sk_rcpt;

/* The transaction (one message): reset by RSET, EHLO/HELO, STARTTLS, and
 * at the end of each message. */
typedef struct sk_transaction {
    char *mail_from;         /* reverse-path without <>; "" for the null path */
    unsigned long long size; /* SIZE= declared, 0 if none */
    int body_8bit;           /* BODY=8BITMIME */
    int smtputf8;            /* SMTPUTF8 */
    sk_rcpt *rcpts;
    size_t nrcpts;
    char id[32]; /* message id, set by ops->store_begin */
} sk_transaction;

/* Read-only view of the session for the ops callbacks. */
typedef struct sk_session_info {
    const sk_peer *peer;
    const char *helo;        /* HELO/EHLO argument, or NULL */
    int esmtp;               /* EHLO was used */
    int tls;                 /* TLS active */
    const char *tls_version; /* "TLSv1.3" or NULL */
    const char *tls_cipher;
    const char *auth_user; /* authenticated identity, or NULL */
} sk_session_info;

typedef struct sk_session_ops {
    /* Decide on one recipient (address without <>). May set *dest.
     * A bare "<postmaster>" (no domain, RFC 5321 4.5.1) arrives as
     * "postmaster": the shell maps it to its postmaster mailbox. Addresses
     * arrive as written (domain case kept; quoted local parts keep quotes). */
    sk_rcpt_verdict (*rcpt_check)(void *ctx, const sk_session_info *info, const char *addr,
                                  void **dest, const char **forward_to);
    void (*dest_free)(void *ctx, void *dest);
    /* 1 valid, 0 invalid, -1 temporary failure (454 4.7.0). May be NULL (no AUTH).
     * Or SK_AUTH_PENDING: the shell checks asynchronously (a password hash
     * takes tens of milliseconds, too long for an event loop). It must copy
     * user and password (they are wiped when this returns); the session sets
     * SK_WANT_AUTH, consumes no input, and the shell later calls
     * sk_session_auth_done() with 1, 0 or -1. */
    int (*auth_check)(void *ctx, const char *user, const char *password);
    /* Open a new message for tx (fills tx->id). SK_STORE_OK or an error. */
    sk_store_result (*store_begin)(void *ctx, sk_transaction *tx);
    /* Append message bytes, already dot-unstuffed, CRLF line ends. */
    sk_store_result (*store_append)(void *ctx, const char *p, size_t n);
    /* Make the message durable for every recipient. Asynchronous: the shell
     * calls sk_session_commit_done() when it is done; meanwhile the session
     * consumes no input. */
    void (*store_commit)(void *ctx, sk_transaction *tx);
    /* Discard the open message (RSET mid-BDAT, refused data, disconnect). */
    void (*store_abort)(void *ctx);
    /* One log event: a stable key=value line without trailing newline that
     * starts with "event=NAME " (the shell adds who the client is). The
     * session logs each HELO/EHLO, refusal, AUTH and TLS step, and one
     * "event=message" line when a transaction ends, whatever ends it. */
    void (*log)(void *ctx, const char *line);
    /* Optional (may be NULL, meaning "yes"): can TLS start right now? 0 makes
     * STARTTLS answer 454 4.7.0 "TLS not available due to temporary reason"
     * (e.g. the certificate could not be loaded) instead of 220. */
    int (*tls_available)(void *ctx);
    /* Optional (may be NULL, meaning "yes"): may this session use this
     * reverse-path (without <>; "" for the null path)? Asked once MAIL is
     * otherwise valid; 0 answers 553 5.7.1 "Sender address rejected: not
     * owned by the authenticated user" (RFC 6409 6.1, submission). */
    int (*mail_check)(void *ctx, const sk_session_info *info, const char *reverse_path);
    /* Optional (may be NULL, meaning PLAIN and LOGIN): the AUTH mechanisms
     * to advertise and accept right now, as bits (1 << SK_SASL_PLAIN) |
     * (1 << SK_SASL_LOGIN) (sasl.h); 0 advertises no AUTH and answers AUTH
     * with 504 5.5.4. The shell's backend decides (Dovecot offers its own
     * list); the rule "AUTH only under TLS" still applies on top. */
    unsigned (*auth_mechanisms)(void *ctx);
    /* Optional (may be NULL): a reply has been queued, with the verb of the
     * command it answers ("RCPT", "DATA"; NULL for the greeting and
     * replies to no command), for counters such as recipients by code. */
    void (*replied)(void *ctx, const char *verb, int code);
    /* Optional (may be NULL): a content policy (milters) on one step that
     * the session has otherwise accepted: the HELO/EHLO name, the MAIL
     * reverse-path, the RCPT forward-path (the recipient is already in
     * tx), and the end of the message (arg NULL: the whole message is in
     * the store, not yet committed). Returns 0 to go on at once, or
     * SK_POLICY_PENDING: the session sets SK_WANT_POLICY, consumes no
     * input and holds its reply until the shell calls
     * sk_session_policy_done() (never from inside this call). */
    int (*policy_check)(void *ctx, int step, const sk_session_info *info, const char *arg);
} sk_session_ops;

/* Flags returned by sk_session_wants(). */
#define SK_WANT_CLOSE 0x1 /* flush output, then close the connection */
#define SK_WANT_TLS                                                                                \
    0x2                     /* flush the 220, discard unread input, start TLS,                     \
                               then call sk_session_tls_started() */
#define SK_WANT_COMMIT 0x4  /* waiting for sk_session_commit_done() */
#define SK_IN_DATA 0x8      /* reading message data (use the data timeout) */
#define SK_WANT_AUTH 0x10   /* waiting for sk_session_auth_done() */
#define SK_WANT_POLICY 0x20 /* waiting for sk_session_policy_done() */

/* policy_check's steps */
#define SK_POLICY_HELO 1
#define SK_POLICY_MAIL 2
#define SK_POLICY_RCPT 3
#define SK_POLICY_DATA 4 /* the end of the message (DATA or BDAT LAST) */
#define SK_POLICY_PENDING 1

/* A policy's verdict on the pending step. */
typedef enum sk_policy_action {
    SK_POLICY_CONTINUE, /* the step's own reply (250 ...), or the commit */
    SK_POLICY_REJECT,   /* 5xx: the given reply if valid for the step, else 550 5.7.1 */
    SK_POLICY_TEMPFAIL, /* 4xx: the given reply if valid for the step, else 451 4.7.1 */
    SK_POLICY_DISCARD,  /* accept but store nothing: 250 to the end of data */
} sk_policy_action;

typedef struct sk_policy_verdict {
    sk_policy_action action;
    /* REJECT/TEMPFAIL: a reply chosen by the policy (0/NULL: the default).
     * It is used only when the code is of the action's class, allowed for
     * the command by the registry, and the enhanced code (if any) is of the
     * same class; the text's control octets are masked. */
    int code;
    const char *enhanced;
    const char *text;
    const char *why; /* for the log line ("milter" if NULL) */
} sk_policy_verdict;

/* ops->auth_check's answer "checking, the verdict comes later". */
#define SK_AUTH_PENDING 2

sk_session *sk_session_new(const sk_session_config *cfg, const sk_session_ops *ops, void *ctx,
                           const sk_peer *peer);
void sk_session_free(sk_session *s);

/* Queue the 220 greeting. */
void sk_session_greet(sk_session *s);
/* Queue `code` (421 or 554) with text and close: used when the shell refuses
 * the connection (too many connections: 421 4.7.0). As with every reply, the
 * enhanced code is sent only once the client has said EHLO (RFC 2034), so at
 * connect time it is dropped. */
void sk_session_refuse(sk_session *s, int code, const char *enhanced, const char *text);

/* Feed bytes from the client. Returns how many were consumed; fewer than n
 * only when the session stops reading (SK_WANT_CLOSE, SK_WANT_TLS,
 * SK_WANT_COMMIT, SK_WANT_AUTH or SK_WANT_POLICY): feed the rest again after the condition clears
 * (except after SK_WANT_TLS, where the rest must be discarded). */
size_t sk_session_feed(sk_session *s, const char *p, size_t n);
/* Output grows only when commands arrive: at most one reply per command
 * (the longest is the HELP/EHLO list, under 512 octets), so a shell that
 * stops reading from a client while sk_session_output() is not drained
 * bounds it. */

/* The bytes to send; the shell consumes from it with sk_buf_consume. */
sk_buf *sk_session_output(sk_session *s);
unsigned sk_session_wants(const sk_session *s);

void sk_session_tls_started(sk_session *s, const char *version, const char *cipher);
void sk_session_commit_done(sk_session *s, sk_store_result r);
/* The same with the store's whole outcome: a destination that answers
 * (LMTP) may have given the reply (code, enhanced code, text), which the
 * sender then gets, through the reply formatter (control bytes masked;
 * a code RFC 5321 does not allow after the data becomes 451 or 554);
 * SK_STORE_DEFERRED without one answers 451 4.3.0, SK_STORE_REFUSED 554
 * 5.0.0. */
void sk_session_commit_outcome(sk_session *s, const sk_store_outcome *out);
/* The verdict of a pending auth_check (SK_WANT_AUTH): 1 valid (235), 0
 * invalid (535 5.7.8), anything else a temporary failure (454 4.7.0), the
 * same replies and log lines as a synchronous check; input is consumed
 * again afterwards. Ignored when no check is pending. After
 * sk_session_disconnected() it only logs (reason=client-gone).
 * The session may be freed while a check is pending (it keeps nothing the
 * shell's check uses); the shell must then not call this any more. */
void sk_session_auth_done(sk_session *s, int result);
/* The verdict of a pending policy_check (SK_WANT_POLICY). Ignored when
 * none is pending; after sk_session_disconnected() it only clears the
 * wait. Input is consumed again afterwards. */
void sk_session_policy_done(sk_session *s, const sk_policy_verdict *v);
/* Idle/command/data timeout: 421 4.4.2 and close. */
void sk_session_timeout(sk_session *s);
/* Server shutting down: 421 4.3.2 and close (only call between transactions
 * or at a timeout; the shell waits for commits and auth checks in flight). */
void sk_session_shutdown(sk_session *s);
/* The client vanished: abort any open message. */
void sk_session_disconnected(sk_session *s);

const sk_session_info *sk_session_get_info(const sk_session *s);

/* Why the session asked to close (SK_WANT_CLOSE), for the shell's one
 * disconnect log line: "quit", "too-many-errors", "too-many-commands",
 * "output-overflow", "timeout", "shutdown", "refused", "disconnect"; NULL
 * while it is open. */
const char *sk_session_close_reason(const sk_session *s);

#endif
