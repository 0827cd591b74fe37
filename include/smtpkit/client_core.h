/*
 * client_core.h - the SMTP client protocol core, sans-I/O: bytes from the
 * server in, command bytes and events out. No sockets, no clock, no TLS
 * library: the driver (the delivery agent, `smtpkit bench`, a test) moves
 * the bytes, runs the TLS handshake and keeps the timers.
 *
 * One state machine for a whole connection: greeting (RFC 5321 3.1, 4.3.2),
 * EHLO with HELO fallback (4.1.1.1, 4.1.4), STARTTLS (RFC 3207), AUTH PLAIN
 * (RFC 4616) and LOGIN (RFC 4954), PIPELINING (RFC 2920), MAIL / RCPT /
 * DATA (3.3, 4.5.2) or BDAT (RFC 3030), SIZE (RFC 1870), BODY=8BITMIME
 * (RFC 6152), SMTPUTF8 (RFC 6531), DSN parameters (RFC 3461), RSET between
 * messages and QUIT; the timeouts of RFC 5321 4.5.3.2 are reported per
 * wait. Replies are read with the library's validating parser
 * (sk_reply_parse), so a hostile server can only make the connection fail.
 *
 * Driving it:
 *   core = sk_client_core_new(&cfg);
 *   loop:
 *     bytes read from the socket  -> sk_client_core_feed()
 *     sk_client_core_output()     -> write to the socket, sk_buf_consume()
 *     sk_client_core_next_event() -> act on each event (below)
 *     sk_client_core_wait()       -> (re)arm the timer when `seq` changed;
 *                                    when it fires: sk_client_core_timeout()
 *     EOF or a socket error       -> sk_client_core_lost()
 *     sk_client_core_wants() & SK_CC_WANT_CLOSE -> flush output, close
 *
 * Events (sk_client_core_next_event):
 *   REPLY       every reply, with the command it answers (config
 *               report_replies; for transcripts and logs)
 *   SENT        every command line sent, AUTH data shown as "<redacted>"
 *               (config report_commands)
 *   START_TLS   the 220 to STARTTLS arrived: send what is in the output,
 *               discard every byte read but not yet fed (RFC 3207 4.2,
 *               CVE-2011-0411), run the handshake, then call
 *               sk_client_core_tls_done(). EHLO is sent again after it.
 *   READY       the connection can take a message: sk_client_core_submit()
 *               or sk_client_core_quit(). Not emitted once max_messages
 *               were sent: the core then sends QUIT by itself.
 *   SEND_BODY   the server waits for the message: call sk_client_core_body()
 *               while SK_CC_WANT_BODY is set, in chunks (the last one with
 *               last = 1). With BDAT and no PIPELINING the flag clears
 *               after each chunk until its 250, then this event comes again.
 *   RCPT        one recipient's reply (index into the message's rcpts);
 *               in LMTP mode also its reply after the data (phase
 *               DATA_END).
 *   MESSAGE_DONE the submitted message's outcome, exactly once per
 *               submitted message, whatever happens to the connection.
 *   FAILED      the connection failed (phase, reply if there was one, the
 *               reason in words); the core then wants to close, after a
 *               QUIT when the server is still talking (554 greeting,
 *               refused EHLO, STARTTLS required but refused...).
 *
 * Event pointers (reply, text) stay valid until the next call of
 * sk_client_core_next_event() or sk_client_core_free().
 */
#ifndef SMTPKIT_CLIENT_CORE_H
#define SMTPKIT_CLIENT_CORE_H

#include <stddef.h>

#include "smtpkit/buf.h"
#include "smtpkit/client.h"
#include "smtpkit/reply.h"

typedef struct sk_client_core sk_client_core;

/* What a reply answers, or what the core is waiting for. The names
 * (sk_cc_phase_name) are the registry's contexts for reply explanations. */
typedef enum sk_cc_phase {
    SK_CC_PHASE_GREETING, /* "CONNECT" */
    SK_CC_PHASE_EHLO,
    SK_CC_PHASE_HELO,
    SK_CC_PHASE_STARTTLS,
    SK_CC_PHASE_TLS, /* the TLS handshake the driver runs */
    SK_CC_PHASE_AUTH,
    SK_CC_PHASE_MAIL,
    SK_CC_PHASE_RCPT,
    SK_CC_PHASE_DATA,     /* the DATA command */
    SK_CC_PHASE_BODY,     /* sending message data (a data block) */
    SK_CC_PHASE_DATA_END, /* the reply after the final dot: "DATA-END" */
    SK_CC_PHASE_BDAT,
    SK_CC_PHASE_RSET,
    SK_CC_PHASE_QUIT,
    SK_CC_PHASE_IDLE, /* between messages: waiting for the driver */
} sk_cc_phase;

/* "CONNECT", "EHLO", ..., "DATA-END", "BDAT", "RSET", "QUIT", "TLS", "IDLE". */
const char *sk_cc_phase_name(sk_cc_phase p);

typedef enum sk_cc_tls_policy {
    SK_CC_TLS_OFF,           /* never STARTTLS */
    SK_CC_TLS_OPPORTUNISTIC, /* STARTTLS when offered; plaintext if not offered or refused */
    SK_CC_TLS_REQUIRED,      /* STARTTLS or nothing: fail (phase STARTTLS) */
} sk_cc_tls_policy;

/* Timeouts in milliseconds per wait; 0 takes RFC 5321 4.5.3.2's value. */
typedef struct sk_cc_timeouts {
    unsigned greeting; /* 5 min */
    unsigned command;  /* EHLO, HELO, STARTTLS, the handshake, AUTH, RSET, QUIT: 5 min */
    unsigned mail;     /* 5 min */
    unsigned rcpt;     /* 5 min */
    unsigned data;     /* DATA initiation: 2 min */
    unsigned block;    /* each data block (each sk_client_core_body call): 3 min */
    unsigned data_end; /* the final dot, or the last BDAT: 10 min */
} sk_cc_timeouts;

typedef struct sk_client_core_config {
    const char *helo;         /* EHLO/HELO name; NULL: "localhost" */
    sk_cc_tls_policy tls;     /* STARTTLS policy */
    int implicit_tls;         /* the driver did a TLS handshake before the greeting */
    const char *auth_user;    /* AUTH after EHLO when set (PLAIN, else LOGIN) */
    const char *auth_pass;    /* its password; both copied */
    int auth_allow_plaintext; /* AUTH without TLS (else: fail, phase AUTH) */
    int no_pipelining;        /* one command at a time even when PIPELINING is offered */
    int no_chunking;          /* DATA even when CHUNKING is offered */
    unsigned max_messages;    /* messages per connection, then QUIT; 0: no cap */
    int rset_between;         /* RSET after every message, not only failed ones */
    int report_replies;       /* emit SK_CC_EV_REPLY */
    int report_commands;      /* emit SK_CC_EV_SENT */
    /* Set when the greeting, EHLO (and any STARTTLS and AUTH) were done by
     * someone else on this connection (the blocking client): the core
     * starts idle with these capabilities and emits READY at once. */
    const sk_caps *after_ehlo;
    sk_cc_timeouts timeouts; /* ms */
    /* LMTP (RFC 2033): LHLO instead of EHLO (no HELO fallback: a refused
     * LHLO fails the connection), DATA only (no BDAT), and after the final
     * dot one reply per accepted recipient, in RCPT order: each comes as an
     * SK_CC_EV_RCPT event with phase SK_CC_PHASE_DATA_END, then
     * MESSAGE_DONE (SENT when every one was 2xx, else REFUSED with the
     * first refusal). The phase of the LHLO reply is SK_CC_PHASE_EHLO. */
    int lmtp;
} sk_client_core_config;

/* DSN NOTIFY= (RFC 3461 4.1); 0 sends none. NEVER excludes the others. */
#define SK_CC_NOTIFY_NEVER 0x1
#define SK_CC_NOTIFY_SUCCESS 0x2
#define SK_CC_NOTIFY_FAILURE 0x4
#define SK_CC_NOTIFY_DELAY 0x8

typedef enum sk_cc_ret {
    SK_CC_RET_NONE,
    SK_CC_RET_FULL,
    SK_CC_RET_HDRS,
} sk_cc_ret;

typedef struct sk_cc_rcpt {
    const char *addr;  /* forward-path without <> */
    unsigned notify;   /* SK_CC_NOTIFY_* (sent only when DSN is offered) */
    const char *orcpt; /* "rfc822;user@example.org" as received (the address
                          part is xtext-encoded here), or NULL */
} sk_cc_rcpt;

/* One message. The driver keeps it (and everything it points to) alive
 * until its SK_CC_EV_MESSAGE_DONE. The body itself is not here: it comes
 * through sk_client_core_body() in chunks, CRLF text (bare CR and LF are
 * sent as CRLF), not dot-stuffed. */
typedef struct sk_cc_message {
    const char *mail_from; /* reverse-path without <>; "" for the null path */
    const sk_cc_rcpt *rcpts;
    size_t nrcpts;            /* >= 1 */
    unsigned long long size;  /* message octets for SIZE=; 0: not declared */
    int body_8bit;            /* needs BODY=8BITMIME */
    int smtputf8;             /* needs SMTPUTF8 */
    sk_cc_ret ret;            /* DSN RET= (only when DSN is offered) */
    const char *envid;        /* DSN ENVID= (xtext-encoded here), or NULL */
    const char *extra_params; /* more MAIL parameters, sent as they are, or NULL */
    int envelope_only;        /* MAIL and RCPT only, then RSET (address checks) */
} sk_cc_message;

typedef enum sk_cc_event_type {
    SK_CC_EV_NONE,
    SK_CC_EV_REPLY,
    SK_CC_EV_SENT,
    SK_CC_EV_START_TLS,
    SK_CC_EV_READY,
    SK_CC_EV_SEND_BODY,
    SK_CC_EV_RCPT,
    SK_CC_EV_MESSAGE_DONE,
    SK_CC_EV_FAILED,
} sk_cc_event_type;

/* What a reply means for the mail it concerns (RFC 5321 4.2.1, 4.5.3.1.10). */
typedef enum sk_cc_verdict {
    SK_CC_OK,   /* 2xx (251 too: the server forwards) */
    SK_CC_TEMP, /* 4xx, a 552 to RCPT (RFC 5321 4.5.3.1.10), a lost connection */
    SK_CC_PERM, /* 5xx (551 too: the text names the forward-path) */
} sk_cc_verdict;

typedef enum sk_cc_msg_status {
    SK_CC_MSG_SENT,          /* the final reply was 2xx: every accepted recipient has it */
    SK_CC_MSG_REFUSED,       /* MAIL, DATA, a BDAT or the end of data was refused:
                                the reply concerns every accepted recipient */
    SK_CC_MSG_NO_RECIPIENTS, /* every RCPT was refused (see each RCPT event) */
    SK_CC_MSG_LOCAL,         /* not sent: the server cannot take it (see `local`) */
    SK_CC_MSG_ABORTED,       /* the connection failed first (421, timeout, closed,
                                garbage); reply is the 421 when there was one */
    SK_CC_MSG_ENVELOPE,      /* envelope_only: MAIL and RCPT answered, no data sent */
} sk_cc_msg_status;

typedef enum sk_cc_local {
    SK_CC_LOCAL_NONE,
    SK_CC_LOCAL_TOO_BIG,        /* over the server's SIZE: 5.3.4 */
    SK_CC_LOCAL_NEEDS_8BITMIME, /* 8-bit body, no 8BITMIME: 5.6.3 */
    SK_CC_LOCAL_NEEDS_SMTPUTF8, /* no SMTPUTF8: 5.6.7 */
    SK_CC_LOCAL_BAD_ADDRESS,    /* a control byte in an address or parameter */
} sk_cc_local;

typedef struct sk_cc_event {
    sk_cc_event_type type;
    sk_cc_phase phase;       /* REPLY, SENT: the command; RCPT: RCPT; MESSAGE_DONE:
                                the command whose reply decided; FAILED: where */
    const sk_reply *reply;   /* REPLY, RCPT, MESSAGE_DONE, FAILED: or NULL */
    size_t rcpt;             /* RCPT: index into the message's rcpts */
    sk_cc_verdict verdict;   /* RCPT, MESSAGE_DONE, FAILED */
    sk_cc_msg_status status; /* MESSAGE_DONE */
    sk_cc_local local;       /* MESSAGE_DONE with SK_CC_MSG_LOCAL */
    size_t accepted;         /* MESSAGE_DONE: recipients the server accepted */
    sk_client_err kind;      /* FAILED: REFUSED, TLS, TIMEOUT, CLOSED, PROTOCOL, USAGE */
    const char *text;        /* SENT: the line; FAILED, MESSAGE_DONE: why, in words */
} sk_cc_event;

/* Flags of sk_client_core_wants(). */
#define SK_CC_WANT_CLOSE 0x1   /* flush the output, then close */
#define SK_CC_WANT_TLS 0x2     /* waiting for sk_client_core_tls_done() */
#define SK_CC_WANT_MESSAGE 0x4 /* idle: sk_client_core_submit() or _quit() */
#define SK_CC_WANT_BODY 0x8    /* waiting for sk_client_core_body() */

/* The current wait: what for, how long, and a number that changes each
 * time a new wait starts (re-arm the timer only then: a reply must arrive
 * whole within its timeout, however slowly it trickles). ms < 0: no
 * server wait (idle, closed, or waiting for the driver's TLS handshake
 * when phase is TLS: then ms is the handshake's limit). */
typedef struct sk_cc_wait {
    sk_cc_phase phase;
    long ms;
    unsigned long seq;
} sk_cc_wait;

/* NULL on allocation failure. The config's strings are copied. */
sk_client_core *sk_client_core_new(const sk_client_core_config *cfg);
/* Wipes the AUTH secrets. */
void sk_client_core_free(sk_client_core *c);

/* Bytes from the server. Everything is taken (replies are kept until they
 * are complete, at most 64 KiB); once the core wants to close or waits for
 * TLS, bytes fed are dropped. */
void sk_client_core_feed(sk_client_core *c, const char *p, size_t n);
/* Bytes to send; consume what was written with sk_buf_consume(). */
sk_buf *sk_client_core_output(sk_client_core *c);
/* The next event, or 0 when there is none. */
int sk_client_core_next_event(sk_client_core *c, sk_cc_event *ev);
unsigned sk_client_core_wants(const sk_client_core *c);
void sk_client_core_wait(const sk_client_core *c, sk_cc_wait *w);

/* The TLS handshake after START_TLS finished: ok = 1 (EHLO again) or 0
 * (FAILED, phase TLS). */
void sk_client_core_tls_done(sk_client_core *c, int ok);
/* Start a message (only while SK_CC_WANT_MESSAGE). 0, or -1 when the core
 * is not ready for one (nothing changes). */
int sk_client_core_submit(sk_client_core *c, const sk_cc_message *m);
/* Message data (only while SK_CC_WANT_BODY). DATA: dot-stuffed, the final
 * ".\r\n" after the last chunk; BDAT: each call one chunk ("BDAT n", or
 * "BDAT n LAST" with last). 0, or -1 when no body is wanted now. */
int sk_client_core_body(sk_client_core *c, const char *p, size_t n, int last);
/* Send QUIT (idle), then close after its reply. */
void sk_client_core_quit(sk_client_core *c);
/* The current wait's timer fired. */
void sk_client_core_timeout(sk_client_core *c);
/* The connection is gone (EOF, reset, TLS error); `why` may be NULL. */
void sk_client_core_lost(sk_client_core *c, const char *why);

/* What the last EHLO said (cleared by STARTTLS, RFC 3207 4.2). */
const sk_caps *sk_client_core_caps(const sk_client_core *c);
int sk_client_core_tls(const sk_client_core *c);           /* TLS is up */
int sk_client_core_pipelining(const sk_client_core *c);    /* pipelining in use */
int sk_client_core_chunking(const sk_client_core *c);      /* BDAT in use */
unsigned sk_client_core_messages(const sk_client_core *c); /* messages submitted */

/* The verdict a reply code gives in a phase (RCPT: 552 counts as 452). */
sk_cc_verdict sk_cc_verdict_of(sk_cc_phase phase, int code);

#endif
