/*
 * session_impl.h - the inside of an SMTP server session, shared by the
 * session state machine (session.c), the command table and its gating
 * (command_table.c) and the command handlers (session_commands.c).
 *
 * Session state (greeting, HELO/EHLO, TLS, AUTH, counters) is kept apart
 * from transaction state (sk_transaction plus the few fields marked "tx"):
 * one reset, sk_sess_tx_reset(), serves RSET, HELO/EHLO, STARTTLS and the
 * end of every message (OpenSMTPD's smtp_tx split).
 */
#ifndef SMTPKIT_CORE_SESSION_IMPL_H
#define SMTPKIT_CORE_SESSION_IMPL_H

#include <stddef.h>

#include "core/data_framer.h"
#include "core/hop_count.h"
#include "smtpkit/command.h"
#include "smtpkit/sasl.h"
#include "smtpkit/session.h"
#include "util/text_mask.h"

typedef enum sk_input_mode {
    SK_MODE_COMMAND, /* reading command lines */
    SK_MODE_AUTH,    /* reading AUTH responses (RFC 4954 4) */
    SK_MODE_DATA,    /* reading DATA until CRLF.CRLF */
    SK_MODE_BDAT,    /* reading bdat_left raw chunk bytes */
    SK_MODE_DEAD,    /* closed: consume nothing more */
} sk_input_mode;

/* Why the message being received will be refused at its end. */
typedef enum sk_data_error {
    SK_DATA_OK = 0,
    SK_DATA_TOO_BIG,  /* 552 5.3.4 */
    SK_DATA_BARE_LF,  /* 550 5.6.0 */
    SK_DATA_BARE_CR,  /* 550 5.6.0 */
    SK_DATA_LONE_DOT, /* 550 5.6.0: "normalise" met a smuggling-shaped "." line */
    SK_DATA_LOOP,     /* 554 5.4.6: more Received fields than max_received_headers */
    SK_DATA_NOSPACE,  /* 452 4.3.1 */
    SK_DATA_IOERR,    /* 451 4.3.0 */
    SK_DATA_DEFERRED, /* BDAT refused at command time: reply kept in bdat_reply */
} sk_data_error;

/* A reply decided now but sent later (BDAT: after the chunk is consumed). */
typedef struct sk_pending_reply {
    int code;
    const char *enhanced;
    char text[160];
} sk_pending_reply;

/* Command-line buffer cap: the AUTH limit plus room for CR LF. */
#define SK_LINE_BUF_MAX (SK_SASL_LINE_MAX + 8)

struct sk_session {
    const sk_session_config *cfg;
    const sk_session_ops *ops;
    void *ctx;
    sk_peer peer; /* strings copied below */
    char *peer_addr;
    char *peer_rdns;
    sk_session_info info; /* the view handed to ops; kept in sync */

    /* session state */
    char *helo;
    int esmtp;
    int tls;
    char *tls_version;
    char *tls_cipher;
    char *auth_user;
    unsigned wants;
    sk_input_mode mode;
    unsigned errors;
    unsigned long commands;
    const char *verb;         /* the command being handled: logs, RFC 2034 3 */
    const char *close_reason; /* set with SK_WANT_CLOSE, see sk_session_close_reason */
    /* MAIL/RCPT being handled: its address (sk_text_token'ed), for the
     * from=/to= of a refusal's log line; cleared before each command */
    char cmd_addr[300];
    int cmd_addr_set;

    /* output */
    sk_buf out;

    /* command line assembly */
    sk_buf line;
    int line_overflow; /* 1: over max_line, 2: over the AUTH limit; discarding */
    int line_bare_lf;  /* a bare LF was inside the line: it goes on to the CRLF */
    size_t feed_left;  /* bytes of the current feed after the current line */

    /* transaction */
    sk_transaction tx;
    int in_tx;              /* tx: MAIL accepted */
    unsigned refused_rcpts; /* tx: RCPTs refused (554 "no valid recipients") */
    int store_open;         /* tx: store_begin succeeded, not yet committed/aborted */
    int tx_bdat;            /* tx: BDAT used (DATA not allowed any more) */
    sk_data_error data_error;
    unsigned long long data_size; /* message octets received (after unstuffing) */
    int tx_result;                /* tx: the reply that ended the message (0: none) */
    const char *tx_why;           /* tx: why it failed or ended without one */
    sk_data_framer framer;
    sk_hop_count hops; /* tx: Received fields in the header section */

    /* BDAT chunk in progress */
    unsigned long long bdat_left;
    unsigned long long bdat_size;
    int bdat_last;
    sk_pending_reply bdat_reply;

    /* AUTH exchange */
    sk_sasl sasl;
    /* while SK_WANT_AUTH: the identity being checked and its mechanism,
     * for the verdict's log line and the authenticated identity */
    char *auth_check_user;
    const char *auth_check_mech;

    /* policy step in flight (SK_WANT_POLICY, session_policy.c): which one,
     * and the reply it holds back until the verdict (HELO/EHLO, MAIL, RCPT) */
    int policy_step;
    int policy_code;
    const char *policy_enhanced;
    char policy_text[600];
};

/* Replies. The enhanced code goes on every 2xx/4xx/5xx reply in every
 * state, EHLO or not (RFC 2034 4), except the replies to HELO/EHLO: give
 * each reply its code; 3xx replies and the greeting pass NULL. */
void sk_sess_reply(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A reply to a client error: as sk_sess_reply, then counts towards
 * max_errors (421 4.7.0 and close when reached) and is logged. */
void sk_sess_reject(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A refusal that is not the client's fault (4xx: too many recipients, a
 * lookup or store failure): replied and logged like a reject, not counted. */
void sk_sess_refuse_temp(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sk_sess_log(sk_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Remember the address of the MAIL/RCPT being handled for its log lines. */
void sk_sess_set_cmd_addr(sk_session *s, const char *addr);
/* Copy a client-supplied string into dst for a reply text (RFC 5321 4.2:
 * textstring is HT, SP and printable ASCII): other bytes become '?', so an
 * address shows as written ("a b"@example.test), quotes included. */
const char *sk_sess_printable(const char *src, char *dst, size_t n);

/* End the transaction: log its one "event=message" line (if MAIL was
 * accepted), abort any open message, free it, back to no transaction.
 * `why` says what ended it when no reply to its data did ("rset", "helo",
 * "quit", "starttls", "disconnect", a close reason). */
void sk_sess_tx_reset(sk_session *s, const char *why);
/* Queue 421 with enhanced code and text, abort what is open, close;
 * `reason` becomes sk_session_close_reason(). */
void sk_sess_close_421(sk_session *s, const char *enhanced, const char *text, const char *reason);
void sk_sess_sync_info(sk_session *s);

/* Message data: open the store and write the trace headers (DATA and the
 * first BDAT). Returns SK_STORE_OK or the failure. */
sk_store_result sk_sess_data_open(sk_session *s);
/* The end of a message (DATA end marker or BDAT LAST): commit or refuse. */
void sk_sess_data_finish(sk_session *s, const char *phase);
/* The policy gate (session_policy.c): the step has been accepted; ask
 * ops->policy_check and send the reply (code, enhanced, text) now or when
 * the verdict comes. Returns 1 while the verdict is pending. */
int sk_sess_policy_gate(sk_session *s, int step, const char *arg, int code, const char *enhanced,
                        const char *text);
/* End of data: the message passed every check; commit it (after the
 * policy's verdict on the whole message, when there is a policy). */
void sk_sess_data_commit(sk_session *s);
/* End of data with a reply instead of a commit (session.c's end_tx). */
void sk_sess_end_tx(sk_session *s, int code, const char *why, const char *enhanced,
                    const char *text);
/* Start/finish an AUTH exchange line. */
void sk_sess_auth_line(sk_session *s, const char *line, size_t len);
void sk_sess_auth_result(sk_session *s, sk_sasl_status st, const char *challenge);
/* The framer's sink: size limit, bare CR/LF policy, store_append. */
void sk_sess_data_sink(void *arg, const char *p, size_t n);
/* BDAT: end of one chunk. */
void sk_sess_bdat_chunk_end(sk_session *s);

#endif
