/*
 * client_core.c - the SMTP client protocol core (no I/O): one state machine
 * per connection, bytes from the server in, commands and events out. See
 * include/smtpkit/client_core.h for how a driver uses it.
 *
 * RFC 5321 3.1 and 4.3.2 (greeting: 220 goes on, 421 closes, 554 and other
 * refusals get QUIT), 4.1.1.1 and 4.1.4 (EHLO; HELO after a 5xx), 3.3 and
 * 4.5.2 (MAIL, RCPT, DATA, dot-stuffing, only CRLF line ends), 3.8 (421
 * anywhere: the server is closing), 4.5.3.1.10 (552 to RCPT means 452),
 * 4.5.3.2 (a timeout per wait), 4.1.1.5 (RSET after a failed transaction);
 * RFC 2920 (PIPELINING: MAIL, every RCPT and DATA in one batch, replies in
 * order; DATA after refused recipients ends empty, 3.1); RFC 3030 (BDAT:
 * one chunk per body call, pipelined only with PIPELINING); RFC 3207
 * (STARTTLS: unread input is discarded, the capabilities forgotten, EHLO
 * again); RFC 4954 and RFC 4616 (AUTH PLAIN with an initial response,
 * AUTH LOGIN, "*" to cancel); RFC 1870 (SIZE= and the local size check);
 * RFC 6152 (BODY=8BITMIME); RFC 6531 (SMTPUTF8); RFC 3461 4 (RET, ENVID,
 * NOTIFY, ORCPT, xtext, only when DSN is offered); RFC 2033 (LMTP: LHLO,
 * one reply per accepted recipient after the data, 4.2).
 *
 * Every reply goes through sk_reply_parse (bounded, validating: the
 * OpenSMTPD CVE-2020-8794 "line + 4" class cannot happen here), from an
 * input buffer capped at 64 KiB; each reply is matched to the command it
 * answers through a queue of pending commands. A reply nobody asked for is
 * a protocol error, except a 421, which any server may send at any time.
 */
#include "smtpkit/client_core.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/sasl.h"

#define IN_MAX (64 * 1024) /* longest reply waited for */
#define IN_CHECK 8         /* a partial line this short is validated at once */
#define IN_STEP                                                                                    \
    4096 /* and a partial line again each time it grows this much                                  \
            (the parser's longest line) */

/* RFC 5321 4.5.3.2, in milliseconds. */
#define MIN5 (5u * 60 * 1000)
#define MIN2 (2u * 60 * 1000)
#define MIN3 (3u * 60 * 1000)
#define MIN10 (10u * 60 * 1000)

#define PEND_LAST 0x1    /* BDAT ... LAST */
#define PEND_DISCARD 0x2 /* the empty data after a 354 nobody could use */
#define PEND_CANCEL 0x4  /* AUTH "*" */

typedef struct pend {
    unsigned char phase;
    unsigned char flags;
    size_t idx; /* RCPT: recipient index */
} pend;

typedef struct qevent {
    sk_cc_event ev;
    sk_reply reply;
    int has_reply;
    char *text;
} qevent;

typedef enum auth_step {
    AUTH_NONE,
    AUTH_PLAIN,
    AUTH_LOGIN_START, /* "AUTH LOGIN" sent */
    AUTH_LOGIN_USER,  /* user name sent */
    AUTH_LOGIN_PASS,  /* password sent */
    AUTH_DONE,
} auth_step;

typedef struct txn {
    const sk_cc_message *m;
    int active;
    int mail_replied, mail_ok;
    size_t rcpt_next; /* non-pipelined: next RCPT to send */
    size_t rcpt_replies, accepted;
    int any_temp;        /* some RCPT got a temporary refusal */
    size_t *acc;         /* LMTP: the accepted recipients, in RCPT order */
    size_t lmtp_replies; /* LMTP: replies after the data so far */
    int decided;         /* the outcome is known (status, reply, phase below) */
    sk_cc_msg_status status;
    sk_cc_phase phase;
    int has_reply;
    /* the body */
    int body_started, body_last; /* the last chunk went out */
    int at_line_start, held_cr;
    size_t bdat_out; /* BDAT replies outstanding */
    sk_reply reply;  /* the deciding reply; last: its line table is large */
} txn;

struct sk_client_core {
    sk_client_core_config cfg;
    char *helo, *user, *pass;
    sk_buf in, out, scratch;
    pend *pq;
    size_t pq_head, pq_n, pq_cap;
    qevent *eq;
    size_t eq_head, eq_n, eq_cap;
    qevent cur; /* the event handed out last */
    unsigned wants;
    unsigned long seq;
    int tls, starttls_done, quitting;
    int failed; /* FAILED was emitted */
    auth_step auth;
    int pipelining, chunking;
    unsigned nmsgs;
    txn t;
    sk_caps caps; /* last: its line table is not zeroed (see sk_client_core_new) */
};

/* ---- names and verdicts ------------------------------------------------ */

static const char *const phase_names[] = {
    "CONNECT", "EHLO",       "HELO",     "STARTTLS", "TLS",  "AUTH", "MAIL", "RCPT",
    "DATA",    "DATA-BLOCK", "DATA-END", "BDAT",     "RSET", "QUIT", "IDLE",
};

/* How a phase reads in a sentence ("no reply to %s"). */
static const char *const phase_words[] = {
    "the greeting", "EHLO", "HELO",    "STARTTLS",         "the TLS handshake", "AUTH",
    "MAIL",         "RCPT", "DATA",    "the message data", "the message data",  "BDAT",
    "RSET",         "QUIT", "nothing",
};

const char *sk_cc_phase_name(sk_cc_phase p)
{
    return (unsigned)p < sizeof phase_names / sizeof *phase_names ? phase_names[p] : "?";
}

static const char *phase_word(sk_cc_phase p)
{
    return (unsigned)p < sizeof phase_words / sizeof *phase_words ? phase_words[p] : "?";
}

sk_cc_verdict sk_cc_verdict_of(sk_cc_phase phase, int code)
{
    if (code >= 200 && code < 300)
        return SK_CC_OK;
    if (code == 552 && phase == SK_CC_PHASE_RCPT)
        return SK_CC_TEMP; /* RFC 5321 4.5.3.1.10: too many recipients */
    if (code >= 500 && code < 600)
        return SK_CC_PERM;
    return SK_CC_TEMP;
}

static int is2xx(int code)
{
    return code >= 200 && code < 300;
}

/* ---- events -------------------------------------------------------------- */

/* Copy the used part of a reply (the line table is large and mostly empty). */
static void reply_copy(sk_reply *dst, const sk_reply *src)
{
    dst->code = src->code;
    dst->has_enhanced = src->has_enhanced;
    dst->enhanced = src->enhanced;
    dst->nlines = src->nlines;
    for (size_t i = 0; i < src->nlines; i++) {
        dst->lines[i] = strdup(src->lines[i]);
        if (!dst->lines[i]) {
            dst->nlines = i; /* out of memory: keep what was copied */
            break;
        }
    }
}

/* Move src's reply into dst (no line is copied). */
static void reply_move(sk_reply *dst, sk_reply *src)
{
    dst->code = src->code;
    dst->has_enhanced = src->has_enhanced;
    dst->enhanced = src->enhanced;
    dst->nlines = src->nlines;
    memcpy(dst->lines, src->lines, src->nlines * sizeof *src->lines);
    src->nlines = 0;
}

static void reply_release(sk_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    r->nlines = 0;
}

static void qevent_free(qevent *q)
{
    if (q->has_reply)
        reply_release(&q->reply);
    q->has_reply = 0;
    free(q->text);
    q->text = NULL;
}

static qevent *push_event(sk_client_core *c, sk_cc_event_type type, sk_cc_phase phase,
                          const sk_reply *r, const char *text)
{
    if (c->eq_head > 0 && c->eq_head == c->eq_n)
        c->eq_head = c->eq_n = 0;
    if (c->eq_n == c->eq_cap) {
        size_t nc = c->eq_cap ? c->eq_cap * 2 : 16;
        qevent *nq = realloc(c->eq, nc * sizeof *nq);
        if (!nq)
            return NULL; /* out of memory: the event is lost */
        c->eq = nq;
        c->eq_cap = nc;
    }
    qevent *q = &c->eq[c->eq_n++];
    memset(&q->ev, 0, sizeof q->ev);
    q->has_reply = 0;
    q->text = NULL;
    q->ev.type = type;
    q->ev.phase = phase;
    if (r) {
        reply_copy(&q->reply, r);
        q->has_reply = 1;
    }
    if (text)
        q->text = strdup(text);
    return q;
}

int sk_client_core_next_event(sk_client_core *c, sk_cc_event *ev)
{
    qevent_free(&c->cur);
    if (c->eq_head == c->eq_n) {
        c->eq_head = c->eq_n = 0;
        memset(ev, 0, sizeof *ev);
        return 0;
    }
    qevent *q = &c->eq[c->eq_head++];
    c->cur.ev = q->ev;
    c->cur.text = q->text;
    c->cur.has_reply = q->has_reply;
    if (q->has_reply)
        reply_move(&c->cur.reply, &q->reply);
    *ev = c->cur.ev;
    ev->reply = c->cur.has_reply ? &c->cur.reply : NULL;
    ev->text = c->cur.text;
    return 1;
}

/* ---- the pending-command queue ----------------------------------------- */

static int push_pend(sk_client_core *c, sk_cc_phase phase, size_t idx, unsigned flags)
{
    if (c->pq_head > 0 && c->pq_head == c->pq_n)
        c->pq_head = c->pq_n = 0;
    if (c->pq_n == c->pq_cap) {
        size_t nc = c->pq_cap ? c->pq_cap * 2 : 8;
        pend *np = realloc(c->pq, nc * sizeof *np);
        if (!np)
            return -1;
        c->pq = np;
        c->pq_cap = nc;
    }
    if (c->pq_head == c->pq_n)
        c->seq++; /* a new wait begins */
    c->pq[c->pq_n].phase = (unsigned char)phase;
    c->pq[c->pq_n].flags = (unsigned char)flags;
    c->pq[c->pq_n].idx = idx;
    c->pq_n++;
    return 0;
}

static size_t npending(const sk_client_core *c)
{
    return c->pq_n - c->pq_head;
}

/* ---- failures ------------------------------------------------------------ */

static void close_now(sk_client_core *c)
{
    c->wants = SK_CC_WANT_CLOSE;
    c->pq_head = c->pq_n = 0;
    c->seq++;
    sk_buf_clear(&c->in);
}

/* Forget the transaction (the reply's line table is not zeroed: only
 * reply.nlines entries are ever read). */
static void txn_reset(sk_client_core *c)
{
    free(c->t.acc);
    if (c->t.has_reply)
        reply_release(&c->t.reply);
    memset(&c->t, 0, offsetof(txn, reply));
    c->t.reply.nlines = 0;
}

/* The open message, if any, ends without a verdict from the server. */
static void abort_message(sk_client_core *c, sk_cc_phase phase, const sk_reply *r, const char *why)
{
    if (!c->t.active)
        return;
    qevent *q = push_event(c, SK_CC_EV_MESSAGE_DONE, phase, r, why);
    if (q) {
        q->ev.status = SK_CC_MSG_ABORTED;
        q->ev.verdict = SK_CC_TEMP;
        q->ev.accepted = c->t.accepted;
    }
    txn_reset(c);
}

static void fail_event(sk_client_core *c, sk_cc_phase phase, const sk_reply *r, sk_client_err kind,
                       const char *text)
{
    abort_message(c, phase, r, text);
    if (c->failed)
        return; /* one FAILED per connection: what goes wrong during the QUIT
                   that follows a failure only closes it */
    c->failed = 1;
    qevent *q = push_event(c, SK_CC_EV_FAILED, phase, r, text);
    if (q) {
        q->ev.kind = kind;
        q->ev.verdict = r ? sk_cc_verdict_of(phase, r->code) : SK_CC_TEMP;
    }
}

static void fail_close(sk_client_core *c, sk_cc_phase phase, const sk_reply *r, sk_client_err kind,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail_close(sk_client_core *c, sk_cc_phase phase, const sk_reply *r, sk_client_err kind,
                       const char *fmt, ...)
{
    if (c->wants & SK_CC_WANT_CLOSE)
        return;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fail_event(c, phase, r, kind, text);
    close_now(c);
}

static void send_quit(sk_client_core *c);

/* The server is still talking but we cannot go on: say so, QUIT, close. */
static void fail_quit(sk_client_core *c, sk_cc_phase phase, const sk_reply *r, sk_client_err kind,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail_quit(sk_client_core *c, sk_cc_phase phase, const sk_reply *r, sk_client_err kind,
                      const char *fmt, ...)
{
    if (c->wants & SK_CC_WANT_CLOSE)
        return;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fail_event(c, phase, r, kind, text);
    c->wants = 0;
    if (npending(c) > 0)
        close_now(c); /* replies still owed: no clean QUIT possible */
    else
        send_quit(c);
}

/* ---- sending ------------------------------------------------------------- */

/* Append a command line (CRLF added) and expect its reply. `shown` replaces
 * the line in the SENT event (AUTH data). */
static int send_line(sk_client_core *c, sk_cc_phase phase, size_t idx, unsigned flags,
                     const char *line, size_t len, const char *shown)
{
    if (sk_buf_append(&c->out, line, len) < 0 || sk_buf_append(&c->out, "\r\n", 2) < 0 ||
        push_pend(c, phase, idx, flags) < 0) {
        fail_close(c, phase, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    if (c->cfg.report_commands) {
        if (shown) {
            push_event(c, SK_CC_EV_SENT, phase, NULL, shown);
        } else {
            char *s = strndup(line, len);
            push_event(c, SK_CC_EV_SENT, phase, NULL, s ? s : "");
            free(s);
        }
    }
    return 0;
}

static int sendf(sk_client_core *c, sk_cc_phase phase, size_t idx, unsigned flags, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
static int sendf(sk_client_core *c, sk_cc_phase phase, size_t idx, unsigned flags, const char *fmt,
                 ...)
{
    sk_buf_clear(&c->scratch);
    va_list ap;
    va_start(ap, fmt);
    int rc = sk_buf_vprintf(&c->scratch, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        fail_close(c, phase, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    return send_line(c, phase, idx, flags, c->scratch.data, c->scratch.len, NULL);
}

static void send_quit(sk_client_core *c)
{
    c->wants &= ~(SK_CC_WANT_MESSAGE | SK_CC_WANT_BODY);
    c->quitting = 1;
    sendf(c, SK_CC_PHASE_QUIT, 0, 0, "QUIT");
}

static void send_ehlo(sk_client_core *c)
{
    sendf(c, SK_CC_PHASE_EHLO, 0, 0, "%s %s", c->cfg.lmtp ? "LHLO" : "EHLO", c->helo);
}

/* ---- the session before mail ------------------------------------------- */

static void go_idle(sk_client_core *c)
{
    if (c->cfg.max_messages && c->nmsgs >= c->cfg.max_messages) {
        send_quit(c);
        return;
    }
    c->wants |= SK_CC_WANT_MESSAGE;
    c->seq++;
    push_event(c, SK_CC_EV_READY, SK_CC_PHASE_IDLE, NULL, NULL);
}

static void send_secret(sk_client_core *c, const char *prefix, const char *data, size_t n)
{
    size_t pl = strlen(prefix);
    size_t need = pl + 4 * ((n + 2) / 3) + 1;
    char *line = malloc(need);
    if (!line) {
        fail_close(c, SK_CC_PHASE_AUTH, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
        return;
    }
    memcpy(line, prefix, pl);
    size_t bl = n ? sk_sasl_b64_encode((const unsigned char *)data, n, line + pl, need - pl) : 0;
    if (n == 0)
        line[pl] = '\0';
    char shown[48];
    snprintf(shown, sizeof shown, "%s<redacted>", prefix);
    send_line(c, SK_CC_PHASE_AUTH, 0, 0, line, pl + bl, shown);
    explicit_bzero(line, need);
    free(line);
}

static void start_auth(sk_client_core *c)
{
    if (!c->tls && !c->cfg.auth_allow_plaintext) {
        fail_quit(c, SK_CC_PHASE_AUTH, NULL, SK_CLIENT_ERR_USAGE,
                  "AUTH refused without TLS (the password would travel in the clear)");
        return;
    }
    size_t ul = strlen(c->user), pl = strlen(c->pass);
    if (c->caps.auth & SK_AUTH_PLAIN) {
        /* RFC 4616: authzid NUL authcid NUL passwd, as the initial response */
        char msg[2 + 2 * SK_SASL_FIELD_MAX];
        msg[0] = '\0';
        memcpy(msg + 1, c->user, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, c->pass, pl);
        c->auth = AUTH_PLAIN;
        send_secret(c, "AUTH PLAIN ", msg, 2 + ul + pl);
        explicit_bzero(msg, sizeof msg);
    } else if (c->caps.auth & SK_AUTH_LOGIN) {
        c->auth = AUTH_LOGIN_START;
        sendf(c, SK_CC_PHASE_AUTH, 0, 0, "AUTH LOGIN");
    } else {
        fail_quit(c, SK_CC_PHASE_AUTH, NULL, SK_CLIENT_ERR_USAGE,
                  "the server offers no AUTH mechanism smtpkit can use (PLAIN or LOGIN)%s%s",
                  c->caps.auth_list[0] ? "; it offers: " : "", c->caps.auth_list);
    }
}

/* After a 250 to EHLO or HELO: STARTTLS, AUTH, or ready. */
static void after_hello(sk_client_core *c)
{
    c->pipelining = c->caps.pipelining && !c->cfg.no_pipelining;
    c->chunking = c->caps.chunking && !c->cfg.no_chunking && !c->cfg.lmtp;
    if (!c->tls && !c->starttls_done && c->cfg.tls != SK_CC_TLS_OFF) {
        if (c->caps.starttls) {
            sendf(c, SK_CC_PHASE_STARTTLS, 0, 0, "STARTTLS");
            return;
        }
        if (c->cfg.tls == SK_CC_TLS_REQUIRED) {
            fail_quit(c, SK_CC_PHASE_STARTTLS, NULL, SK_CLIENT_ERR_TLS,
                      "the server does not offer STARTTLS");
            return;
        }
    }
    if (c->user && c->auth == AUTH_NONE) {
        start_auth(c);
        return;
    }
    go_idle(c);
}

static void oneline(const sk_reply *r, char *out, size_t n)
{
    sk_reply_oneline(r, out, n);
}

static void on_greeting(sk_client_core *c, const sk_reply *r)
{
    char line[300];
    if (r->code == 220) {
        send_ehlo(c);
        return;
    }
    oneline(r, line, sizeof line);
    /* RFC 5321 3.1: after 554 the client should QUIT and wait for the reply */
    fail_quit(c, SK_CC_PHASE_GREETING, r, SK_CLIENT_ERR_REFUSED, "greeting refused: %s", line);
}

static void on_ehlo(sk_client_core *c, const sk_reply *r)
{
    char line[300];
    if (r->code == 250) {
        sk_caps_parse_reply(&c->caps, r);
        after_hello(c);
        return;
    }
    if (r->code >= 500 && r->code < 600 && !c->cfg.lmtp) {
        /* RFC 5321 4.1.4: a server that does not know EHLO gets HELO */
        sendf(c, SK_CC_PHASE_HELO, 0, 0, "HELO %s", c->helo);
        return;
    }
    oneline(r, line, sizeof line);
    fail_quit(c, SK_CC_PHASE_EHLO, r, SK_CLIENT_ERR_REFUSED, "%s refused: %s",
              c->cfg.lmtp ? "LHLO" : "EHLO", line);
}

static void on_helo(sk_client_core *c, const sk_reply *r)
{
    char line[300];
    if (r->code == 250) {
        sk_caps_clear(&c->caps); /* no extensions without EHLO */
        after_hello(c);
        return;
    }
    oneline(r, line, sizeof line);
    fail_quit(c, SK_CC_PHASE_HELO, r, SK_CLIENT_ERR_REFUSED, "HELO refused: %s", line);
}

static void on_starttls(sk_client_core *c, const sk_reply *r)
{
    char line[300];
    c->starttls_done = 1;
    if (r->code == 220) {
        if (npending(c) > 0) {
            fail_close(c, SK_CC_PHASE_STARTTLS, r, SK_CLIENT_ERR_PROTOCOL,
                       "replies after STARTTLS were not asked for");
            return;
        }
        /* RFC 3207 4.2: nothing read before the handshake counts */
        sk_buf_clear(&c->in);
        c->wants |= SK_CC_WANT_TLS;
        c->seq++;
        push_event(c, SK_CC_EV_START_TLS, SK_CC_PHASE_TLS, r, NULL);
        return;
    }
    oneline(r, line, sizeof line);
    if (c->cfg.tls == SK_CC_TLS_REQUIRED) {
        fail_quit(c, SK_CC_PHASE_STARTTLS, r, SK_CLIENT_ERR_TLS, "STARTTLS refused: %s", line);
        return;
    }
    after_hello(c); /* opportunistic: go on in plaintext */
}

void sk_client_core_tls_done(sk_client_core *c, int ok)
{
    if (!(c->wants & SK_CC_WANT_TLS))
        return;
    c->wants &= ~SK_CC_WANT_TLS;
    sk_buf_clear(&c->in);
    if (!ok) {
        fail_close(c, SK_CC_PHASE_TLS, NULL, SK_CLIENT_ERR_TLS, "the TLS handshake failed");
        return;
    }
    c->tls = 1;
    sk_caps_clear(&c->caps); /* RFC 3207 4.2: forget what was learnt before TLS */
    c->pipelining = c->chunking = 0;
    send_ehlo(c);
}

static void on_auth(sk_client_core *c, const sk_reply *r, unsigned flags)
{
    char line[300];
    if (flags & PEND_CANCEL) {
        fail_quit(c, SK_CC_PHASE_AUTH, r, SK_CLIENT_ERR_PROTOCOL,
                  "authentication as %s failed: the server asked for more than the "
                  "mechanism needs",
                  c->user);
        return;
    }
    if (r->code == 235) {
        c->auth = AUTH_DONE;
        go_idle(c);
        return;
    }
    if (r->code == 334) {
        if (c->auth == AUTH_LOGIN_START) {
            c->auth = AUTH_LOGIN_USER;
            send_secret(c, "", c->user, strlen(c->user));
            return;
        }
        if (c->auth == AUTH_LOGIN_USER) {
            c->auth = AUTH_LOGIN_PASS;
            send_secret(c, "", c->pass, strlen(c->pass));
            return;
        }
        /* RFC 4954 4: a challenge the mechanism has no answer for: cancel */
        sendf(c, SK_CC_PHASE_AUTH, 0, PEND_CANCEL, "*");
        return;
    }
    oneline(r, line, sizeof line);
    fail_quit(c, SK_CC_PHASE_AUTH, r, SK_CLIENT_ERR_REFUSED, "authentication as %s failed: %s",
              c->user, line);
}

/* ---- the mail transaction ---------------------------------------------- */

/* xtext (RFC 3461 4): '+', '=' and bytes outside 33..126 as "+HH". */
static int append_xtext(sk_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int rc = (ch < 33 || ch > 126 || ch == '+' || ch == '=') ? sk_buf_printf(b, "+%02X", ch)
                                                                 : sk_buf_append(b, s, 1);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int has_control(const char *s)
{
    if (!s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            return 1;
    }
    return 0;
}

static int build_mail(sk_client_core *c, const sk_cc_message *m, sk_buf *b)
{
    int bad = sk_buf_printf(b, "MAIL FROM:<%s>", m->mail_from) < 0;
    if (!bad && c->caps.has_size && m->size > 0)
        bad = sk_buf_printf(b, " SIZE=%llu", m->size) < 0;
    if (!bad && m->body_8bit)
        bad = sk_buf_append_str(b, " BODY=8BITMIME") < 0;
    if (!bad && m->smtputf8)
        bad = sk_buf_append_str(b, " SMTPUTF8") < 0;
    if (!bad && c->caps.dsn && m->ret != SK_CC_RET_NONE)
        bad = sk_buf_append_str(b, m->ret == SK_CC_RET_FULL ? " RET=FULL" : " RET=HDRS") < 0;
    if (!bad && c->caps.dsn && m->envid && *m->envid)
        bad = sk_buf_append_str(b, " ENVID=") < 0 || append_xtext(b, m->envid) < 0;
    if (!bad && m->extra_params && *m->extra_params)
        bad = sk_buf_printf(b, " %s", m->extra_params) < 0;
    return bad ? -1 : 0;
}

static int build_rcpt(sk_client_core *c, const sk_cc_rcpt *r, sk_buf *b)
{
    int bad = sk_buf_printf(b, "RCPT TO:<%s>", r->addr) < 0;
    if (!bad && c->caps.dsn && r->notify) {
        if (r->notify & SK_CC_NOTIFY_NEVER) {
            bad = sk_buf_append_str(b, " NOTIFY=NEVER") < 0;
        } else {
            static const struct {
                unsigned bit;
                const char *name;
            } kw[] = {{SK_CC_NOTIFY_SUCCESS, "SUCCESS"},
                      {SK_CC_NOTIFY_FAILURE, "FAILURE"},
                      {SK_CC_NOTIFY_DELAY, "DELAY"}};
            const char *sep = " NOTIFY=";
            for (size_t i = 0; i < 3 && !bad; i++)
                if (r->notify & kw[i].bit) {
                    bad = sk_buf_printf(b, "%s%s", sep, kw[i].name) < 0;
                    sep = ",";
                }
        }
    }
    if (!bad && c->caps.dsn && r->orcpt) {
        const char *semi = strchr(r->orcpt, ';');
        if (semi && semi > r->orcpt && semi[1]) {
            bad = sk_buf_printf(b, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt) < 0 ||
                  append_xtext(b, semi + 1) < 0;
        }
    }
    return bad ? -1 : 0;
}

static int send_built(sk_client_core *c, sk_cc_phase phase, size_t idx, sk_buf *b)
{
    int rc = send_line(c, phase, idx, 0, b->data, b->len, NULL);
    sk_buf_clear(b);
    return rc;
}

static int send_rcpt(sk_client_core *c, size_t i)
{
    sk_buf_clear(&c->scratch);
    if (build_rcpt(c, &c->t.m->rcpts[i], &c->scratch) < 0) {
        fail_close(c, SK_CC_PHASE_RCPT, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    return send_built(c, SK_CC_PHASE_RCPT, i, &c->scratch);
}

static void local_refusal(sk_client_core *c, sk_cc_local why, const char *text)
{
    qevent *q = push_event(c, SK_CC_EV_MESSAGE_DONE, SK_CC_PHASE_IDLE, NULL, text);
    if (q) {
        q->ev.status = SK_CC_MSG_LOCAL;
        q->ev.local = why;
        q->ev.verdict = SK_CC_PERM;
    }
    go_idle(c);
}

int sk_client_core_submit(sk_client_core *c, const sk_cc_message *m)
{
    if (!(c->wants & SK_CC_WANT_MESSAGE) || !m || !m->mail_from || !m->rcpts || m->nrcpts == 0)
        return -1;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (!m->rcpts[i].addr)
            return -1;
    c->wants &= ~SK_CC_WANT_MESSAGE;
    char text[200];

    int bad = has_control(m->mail_from) || has_control(m->envid) || has_control(m->extra_params);
    for (size_t i = 0; i < m->nrcpts && !bad; i++)
        bad = has_control(m->rcpts[i].addr) || has_control(m->rcpts[i].orcpt);
    if (bad) {
        local_refusal(c, SK_CC_LOCAL_BAD_ADDRESS,
                      "an address or DSN parameter holds a control character");
        return 0;
    }
    if (c->caps.has_size && c->caps.size > 0 && m->size > c->caps.size) {
        snprintf(text, sizeof text, "message of %llu octets is over the server's limit of %llu",
                 m->size, c->caps.size);
        local_refusal(c, SK_CC_LOCAL_TOO_BIG, text);
        return 0;
    }
    if (m->body_8bit && !c->caps.eightbitmime) {
        local_refusal(c, SK_CC_LOCAL_NEEDS_8BITMIME,
                      "the message has 8-bit content and the server does not offer 8BITMIME");
        return 0;
    }
    if (m->smtputf8 && !c->caps.smtputf8) {
        local_refusal(c, SK_CC_LOCAL_NEEDS_SMTPUTF8,
                      "the message needs SMTPUTF8 and the server does not offer it");
        return 0;
    }

    txn_reset(c);
    if (c->cfg.lmtp && !(c->t.acc = calloc(m->nrcpts, sizeof *c->t.acc))) {
        fail_close(c, SK_CC_PHASE_MAIL, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
        return 0;
    }
    c->t.m = m;
    c->t.active = 1;
    c->t.at_line_start = 1;
    c->nmsgs++;
    sk_buf_clear(&c->scratch);
    if (build_mail(c, m, &c->scratch) < 0) {
        fail_close(c, SK_CC_PHASE_MAIL, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
        return 0;
    }
    if (send_built(c, SK_CC_PHASE_MAIL, 0, &c->scratch) < 0)
        return 0;
    if (c->pipelining) {
        /* RFC 2920 3.1: MAIL, every RCPT, and DATA last in the group */
        for (size_t i = 0; i < m->nrcpts; i++)
            if (send_rcpt(c, i) < 0)
                return 0;
        c->t.rcpt_next = m->nrcpts;
        if (!c->chunking && !m->envelope_only)
            sendf(c, SK_CC_PHASE_DATA, 0, 0, "DATA");
    }
    return 0;
}

static void set_decided(sk_client_core *c, sk_cc_msg_status st, sk_cc_phase phase,
                        const sk_reply *r)
{
    if (c->t.decided)
        return;
    c->t.decided = 1;
    c->t.status = st;
    c->t.phase = phase;
    if (r) {
        reply_copy(&c->t.reply, r);
        c->t.has_reply = 1;
    }
}

/* The message's outcome is known and no reply of it is outstanding. */
static void finish(sk_client_core *c)
{
    txn *t = &c->t;
    if (!t->decided) {
        if (!t->mail_ok || t->accepted == 0)
            set_decided(c, SK_CC_MSG_NO_RECIPIENTS, SK_CC_PHASE_RCPT, NULL);
    }
    const sk_reply *r = t->has_reply ? &t->reply : NULL;
    qevent *q = push_event(c, SK_CC_EV_MESSAGE_DONE, t->phase, NULL, NULL);
    if (q && r) {
        reply_move(&q->reply, &t->reply);
        q->has_reply = 1;
    }
    if (q) {
        q->ev.status = t->status;
        q->ev.accepted = t->accepted;
        if (t->status == SK_CC_MSG_SENT)
            q->ev.verdict = SK_CC_OK;
        else if (r)
            q->ev.verdict = sk_cc_verdict_of(t->phase, r->code);
        else
            q->ev.verdict = SK_CC_PERM;
        if (t->status == SK_CC_MSG_ENVELOPE)
            q->ev.verdict = t->accepted ? SK_CC_OK : t->any_temp ? SK_CC_TEMP : SK_CC_PERM;
        if (t->status == SK_CC_MSG_NO_RECIPIENTS) /* temporary if any refusal was */
            q->ev.verdict = t->any_temp ? SK_CC_TEMP : SK_CC_PERM;
    }
    int sent = t->status == SK_CC_MSG_SENT;
    txn_reset(c);
    c->wants &= ~SK_CC_WANT_BODY;
    /* After a 2xx to the data the server has reset the transaction (RFC 5321
     * 4.1.1.4); after a failure RSET leaves it clean (4.1.1.5), and
     * rset_between asks for one anyway (it proves a reused connection alive). */
    if (sent && !c->cfg.rset_between)
        go_idle(c);
    else
        sendf(c, SK_CC_PHASE_RSET, 0, 0, "RSET");
}

static void want_body(sk_client_core *c)
{
    c->t.body_started = 1;
    c->wants |= SK_CC_WANT_BODY;
    c->seq++;
    push_event(c, SK_CC_EV_SEND_BODY, SK_CC_PHASE_BODY, NULL, NULL);
}

/* MAIL and RCPT are answered: go on to the data, or end the message. */
static void after_envelope(sk_client_core *c)
{
    if (c->t.m->envelope_only) {
        if (c->t.mail_ok)
            set_decided(c, SK_CC_MSG_ENVELOPE, SK_CC_PHASE_RCPT, NULL);
        finish(c);
        return;
    }
    if (!c->t.mail_ok || c->t.accepted == 0) {
        if (c->pipelining && !c->chunking)
            return; /* the pipelined DATA's reply comes next; it ends the message */
        finish(c);
        return;
    }
    if (c->chunking) {
        want_body(c);
        return;
    }
    if (!c->pipelining)
        sendf(c, SK_CC_PHASE_DATA, 0, 0, "DATA");
}

static void on_mail(sk_client_core *c, const sk_reply *r)
{
    txn *t = &c->t;
    t->mail_replied = 1;
    t->mail_ok = is2xx(r->code);
    if (!t->mail_ok)
        set_decided(c, SK_CC_MSG_REFUSED, SK_CC_PHASE_MAIL, r);
    if (c->pipelining)
        return; /* the RCPT (and DATA) replies follow */
    if (!t->mail_ok) {
        finish(c);
        return;
    }
    t->rcpt_next = 1;
    send_rcpt(c, 0);
}

static void on_rcpt(sk_client_core *c, const sk_reply *r, size_t idx)
{
    txn *t = &c->t;
    t->rcpt_replies++;
    if (t->mail_ok) {
        sk_cc_verdict v = sk_cc_verdict_of(SK_CC_PHASE_RCPT, r->code);
        if (v == SK_CC_OK && t->acc)
            t->acc[t->accepted] = idx; /* LMTP: who answers after the data */
        if (v == SK_CC_OK)
            t->accepted++;
        else if (v == SK_CC_TEMP)
            t->any_temp = 1;
        qevent *q = push_event(c, SK_CC_EV_RCPT, SK_CC_PHASE_RCPT, r, NULL);
        if (q) {
            q->ev.rcpt = idx;
            q->ev.verdict = v;
        }
    }
    if (!c->pipelining && t->mail_ok && t->rcpt_next < t->m->nrcpts) {
        send_rcpt(c, t->rcpt_next++);
        return;
    }
    if (t->rcpt_replies == t->m->nrcpts)
        after_envelope(c);
}

static void on_data(sk_client_core *c, const sk_reply *r)
{
    txn *t = &c->t;
    if (r->code == 354) {
        if (t->mail_ok && t->accepted > 0) {
            want_body(c);
            return;
        }
        if (c->cfg.lmtp) {
            /* RFC 2033 4.2: DATA without a recipient must fail with 503 */
            fail_close(c, SK_CC_PHASE_DATA, r, SK_CLIENT_ERR_PROTOCOL,
                       "the LMTP server took DATA without a recipient");
            return;
        }
        /* RFC 2920 3.1: DATA went out with the batch, but nobody is left
         * to receive the message: end it empty so nothing is delivered. */
        sendf(c, SK_CC_PHASE_DATA_END, 0, PEND_DISCARD, ".");
        return;
    }
    if (t->mail_ok && t->accepted > 0)
        set_decided(c, SK_CC_MSG_REFUSED, SK_CC_PHASE_DATA, r);
    finish(c);
}

/* LMTP (RFC 2033 4.2): one reply per accepted recipient, in RCPT order. */
static void on_lmtp_reply(sk_client_core *c, const sk_reply *r, size_t idx)
{
    txn *t = &c->t;
    sk_cc_verdict v = sk_cc_verdict_of(SK_CC_PHASE_DATA_END, r->code);
    qevent *q = push_event(c, SK_CC_EV_RCPT, SK_CC_PHASE_DATA_END, r, NULL);
    if (q) {
        q->ev.rcpt = idx;
        q->ev.verdict = v;
    }
    if (v != SK_CC_OK)
        set_decided(c, SK_CC_MSG_REFUSED, SK_CC_PHASE_DATA_END, r);
    if (++t->lmtp_replies < t->accepted)
        return; /* more to come */
    set_decided(c, SK_CC_MSG_SENT, SK_CC_PHASE_DATA_END, r);
    finish(c);
}

static void on_data_end(sk_client_core *c, const sk_reply *r, unsigned flags, size_t idx)
{
    if (c->cfg.lmtp && !(flags & PEND_DISCARD)) {
        on_lmtp_reply(c, r, idx);
        return;
    }
    if (!(flags & PEND_DISCARD)) {
        if (is2xx(r->code))
            set_decided(c, SK_CC_MSG_SENT, SK_CC_PHASE_DATA_END, r);
        else
            set_decided(c, SK_CC_MSG_REFUSED, SK_CC_PHASE_DATA_END, r);
    }
    finish(c);
}

static void on_bdat(sk_client_core *c, const sk_reply *r, unsigned flags)
{
    txn *t = &c->t;
    if (t->bdat_out > 0)
        t->bdat_out--;
    if (!is2xx(r->code)) {
        set_decided(c, SK_CC_MSG_REFUSED, SK_CC_PHASE_BDAT, r);
        c->wants &= ~SK_CC_WANT_BODY; /* no more chunks */
        t->body_last = 1;
    } else if (flags & PEND_LAST) {
        set_decided(c, SK_CC_MSG_SENT, SK_CC_PHASE_BDAT, r);
    }
    if (t->body_last) {
        if (t->bdat_out == 0)
            finish(c);
        return;
    }
    if (!c->pipelining) {
        c->wants |= SK_CC_WANT_BODY;
        c->seq++;
        push_event(c, SK_CC_EV_SEND_BODY, SK_CC_PHASE_BODY, NULL, NULL);
    }
}

/* ---- the body ------------------------------------------------------------ */

/* Append text with every line end as CRLF (a bare CR or LF becomes CRLF, so
 * no peer can see an end of data we did not mean, RFC 5321 2.3.8) and, for
 * DATA, a '.' at the start of a line doubled (4.5.2). A CR at the end of a
 * chunk waits for the next one. */
static int put_text(sk_client_core *c, sk_buf *b, const char *p, size_t n, int stuff)
{
    txn *t = &c->t;
    size_t i = 0;
    while (i < n) {
        if (t->held_cr) {
            t->held_cr = 0;
            if (sk_buf_append(b, "\r\n", 2) < 0)
                return -1;
            t->at_line_start = 1;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        char ch = p[i];
        if (ch == '\r') {
            t->held_cr = 1;
            i++;
            continue;
        }
        if (ch == '\n') {
            if (sk_buf_append(b, "\r\n", 2) < 0)
                return -1;
            t->at_line_start = 1;
            i++;
            continue;
        }
        if (t->at_line_start && stuff && ch == '.' && sk_buf_append(b, ".", 1) < 0)
            return -1;
        t->at_line_start = 0;
        /* the rest of the line: up to the next CR or LF (memchr is fast) */
        const char *lf = memchr(p + i, '\n', n - i);
        size_t lim = lf ? (size_t)(lf - p) : n;
        const char *cr = memchr(p + i, '\r', lim - i);
        size_t e = cr ? (size_t)(cr - p) : lim;
        if (sk_buf_append(b, p + i, e - i) < 0)
            return -1;
        i = e;
    }
    return 0;
}

int sk_client_core_body(sk_client_core *c, const char *p, size_t n, int last)
{
    txn *t = &c->t;
    if (!(c->wants & SK_CC_WANT_BODY) || !t->active || (n && !p))
        return -1;
    c->seq++; /* a new data block */
    if (!c->chunking) {
        if (put_text(c, &c->out, p, n, 1) < 0)
            goto nomem;
        if (!last)
            return 0;
        if (t->held_cr || !t->at_line_start) {
            if (sk_buf_append(&c->out, "\r\n", 2) < 0)
                goto nomem;
            t->held_cr = 0;
        }
        c->wants &= ~SK_CC_WANT_BODY;
        t->body_last = 1;
        /* the end-of-data line goes out with the text: 4.1.1.4; LMTP
         * answers it once per accepted recipient (RFC 2033 4.2) */
        if (sk_buf_append(&c->out, ".\r\n", 3) < 0)
            goto nomem;
        size_t replies = c->cfg.lmtp ? t->accepted : 1;
        for (size_t k = 0; k < replies; k++)
            if (push_pend(c, SK_CC_PHASE_DATA_END, c->cfg.lmtp ? t->acc[k] : 0, 0) < 0)
                goto nomem;
        if (c->cfg.report_commands)
            push_event(c, SK_CC_EV_SENT, SK_CC_PHASE_DATA_END, NULL, ".");
        return 0;
    }
    sk_buf_clear(&c->scratch);
    if (put_text(c, &c->scratch, p, n, 0) < 0)
        goto nomem;
    if (last && t->held_cr) {
        if (sk_buf_append(&c->scratch, "\r\n", 2) < 0)
            goto nomem;
        t->held_cr = 0;
    }
    if (!last && c->scratch.len == 0)
        return 0; /* nothing to frame yet */
    char line[64];
    int ll = snprintf(line, sizeof line, "BDAT %zu%s", c->scratch.len, last ? " LAST" : "");
    if (send_line(c, SK_CC_PHASE_BDAT, 0, last ? PEND_LAST : 0, line, (size_t)ll, NULL) < 0)
        return 0;
    if (sk_buf_append(&c->out, c->scratch.data ? c->scratch.data : "", c->scratch.len) < 0)
        goto nomem;
    t->bdat_out++;
    if (last) {
        t->body_last = 1;
        c->wants &= ~SK_CC_WANT_BODY;
    } else if (!c->pipelining) {
        c->wants &= ~SK_CC_WANT_BODY; /* RFC 3030 2: wait for this chunk's reply */
    }
    return 0;
nomem:
    fail_close(c, SK_CC_PHASE_BODY, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
    return -1;
}

/* ---- replies ------------------------------------------------------------- */

static void handle_reply(sk_client_core *c, const sk_reply *r)
{
    if (npending(c) == 0) {
        sk_cc_phase ph = (c->wants & SK_CC_WANT_BODY) ? SK_CC_PHASE_BODY : SK_CC_PHASE_IDLE;
        char line[300];
        oneline(r, line, sizeof line);
        if (c->cfg.report_replies)
            push_event(c, SK_CC_EV_REPLY, ph, r, NULL);
        if (r->code == 421)
            fail_close(c, ph, r, SK_CLIENT_ERR_CLOSED, "the server is closing the connection: %s",
                       line);
        else
            fail_close(c, ph, r, SK_CLIENT_ERR_PROTOCOL, "a reply nobody asked for: %s", line);
        return;
    }
    pend p = c->pq[c->pq_head++];
    c->seq++;
    sk_cc_phase ph = (sk_cc_phase)p.phase;
    if (c->cfg.report_replies) {
        qevent *q = push_event(c, SK_CC_EV_REPLY, ph, r, NULL);
        if (q)
            q->ev.rcpt = p.idx;
    }
    int first = r->code / 100;
    if (first < 2 || first > 5) {
        char line[300];
        oneline(r, line, sizeof line);
        fail_close(c, ph, r, SK_CLIENT_ERR_PROTOCOL, "reply code %d makes no sense here: %s",
                   r->code, line);
        return;
    }
    if (ph == SK_CC_PHASE_QUIT) {
        close_now(c);
        return;
    }
    if (r->code == 421) {
        /* RFC 5321 3.8: the server is going away; nothing more to say */
        char line[300];
        oneline(r, line, sizeof line);
        fail_close(c, ph, r,
                   ph == SK_CC_PHASE_GREETING ? SK_CLIENT_ERR_REFUSED : SK_CLIENT_ERR_CLOSED,
                   "%s answered 421: %s", phase_word(ph), line);
        return;
    }
    if (c->quitting)
        return; /* replies owed before our QUIT's */
    switch (ph) {
    case SK_CC_PHASE_GREETING:
        on_greeting(c, r);
        break;
    case SK_CC_PHASE_EHLO:
        on_ehlo(c, r);
        break;
    case SK_CC_PHASE_HELO:
        on_helo(c, r);
        break;
    case SK_CC_PHASE_STARTTLS:
        on_starttls(c, r);
        break;
    case SK_CC_PHASE_AUTH:
        on_auth(c, r, p.flags);
        break;
    case SK_CC_PHASE_MAIL:
        on_mail(c, r);
        break;
    case SK_CC_PHASE_RCPT:
        on_rcpt(c, r, p.idx);
        break;
    case SK_CC_PHASE_DATA:
        on_data(c, r);
        break;
    case SK_CC_PHASE_DATA_END:
        on_data_end(c, r, p.flags, p.idx);
        break;
    case SK_CC_PHASE_BDAT:
        on_bdat(c, r, p.flags);
        break;
    case SK_CC_PHASE_RSET:
        /* a refused RSET is not fatal: the next MAIL's reply tells */
        go_idle(c);
        break;
    default:
        break;
    }
}

/* Parse and handle every complete reply in the input. */
static void process(sk_client_core *c)
{
    while (c->in.len > 0 && !(c->wants & (SK_CC_WANT_CLOSE | SK_CC_WANT_TLS))) {
        sk_reply r;
        const char *err = NULL;
        ssize_t used = sk_reply_parse(c->in.data, c->in.len, SK_REPLY_ALLOW_ANY, &r, &err);
        sk_cc_wait w = {SK_CC_PHASE_IDLE, -1, 0};
        if (used <= 0)
            sk_client_core_wait(c, &w);
        if (used < 0) {
            fail_close(c, w.phase, NULL, SK_CLIENT_ERR_PROTOCOL, "not an SMTP reply (%s)",
                       err ? err : "malformed");
            return;
        }
        if (used == 0) {
            if (c->in.len >= IN_MAX)
                fail_close(c, w.phase, NULL, SK_CLIENT_ERR_PROTOCOL,
                           "a reply longer than %d octets", IN_MAX);
            return;
        }
        sk_buf_consume(&c->in, (size_t)used);
        handle_reply(c, &r);
        reply_release(&r);
    }
}

void sk_client_core_feed(sk_client_core *c, const char *p, size_t n)
{
    while (n > 0 && !(c->wants & (SK_CC_WANT_CLOSE | SK_CC_WANT_TLS))) {
        size_t room = IN_MAX - c->in.len;
        size_t k = n < room ? n : room;
        size_t before = c->in.len;
        if (sk_buf_append(&c->in, p, k) < 0) {
            fail_close(c, SK_CC_PHASE_IDLE, NULL, SK_CLIENT_ERR_NOMEM, "out of memory");
            return;
        }
        /* The parser starts over at each call: run it when a line may have
         * ended, while the first bytes can still be judged, when a line may
         * have grown too long, or when the buffer is full. */
        if (memchr(p, '\n', k) || before < IN_CHECK || before / IN_STEP != c->in.len / IN_STEP ||
            c->in.len >= IN_MAX)
            process(c);
        p += k;
        n -= k;
    }
}

/* ---- driver calls -------------------------------------------------------- */

static unsigned ms_or(unsigned v, unsigned dflt)
{
    return v ? v : dflt;
}

void sk_client_core_wait(const sk_client_core *c, sk_cc_wait *w)
{
    const sk_cc_timeouts *t = &c->cfg.timeouts;
    w->seq = c->seq;
    w->ms = -1;
    if (c->wants & SK_CC_WANT_CLOSE) {
        w->phase = SK_CC_PHASE_QUIT;
        return;
    }
    if (c->wants & SK_CC_WANT_TLS) {
        w->phase = SK_CC_PHASE_TLS;
        w->ms = ms_or(t->command, MIN5);
        return;
    }
    if (npending(c) == 0) {
        if (c->wants & SK_CC_WANT_BODY) {
            w->phase = SK_CC_PHASE_BODY;
            w->ms = ms_or(t->block, MIN3);
        } else {
            w->phase = SK_CC_PHASE_IDLE;
        }
        return;
    }
    w->phase = (sk_cc_phase)c->pq[c->pq_head].phase;
    switch (w->phase) {
    case SK_CC_PHASE_GREETING:
        w->ms = ms_or(t->greeting, MIN5);
        break;
    case SK_CC_PHASE_MAIL:
        w->ms = ms_or(t->mail, MIN5);
        break;
    case SK_CC_PHASE_RCPT:
        w->ms = ms_or(t->rcpt, MIN5);
        break;
    case SK_CC_PHASE_DATA:
        w->ms = ms_or(t->data, MIN2);
        break;
    case SK_CC_PHASE_DATA_END:
        w->ms = ms_or(t->data_end, MIN10);
        break;
    case SK_CC_PHASE_BDAT:
        w->ms = (c->pq[c->pq_head].flags & PEND_LAST) ? ms_or(t->data_end, MIN10)
                                                      : ms_or(t->block, MIN3);
        break;
    default:
        w->ms = ms_or(t->command, MIN5);
        break;
    }
}

void sk_client_core_timeout(sk_client_core *c)
{
    if (c->wants & SK_CC_WANT_CLOSE)
        return;
    sk_cc_wait w;
    sk_client_core_wait(c, &w);
    if (c->quitting || w.ms < 0) {
        close_now(c); /* QUIT unanswered, or no wait at all: just close */
        return;
    }
    double s = (double)w.ms / 1000.0;
    if (w.phase == SK_CC_PHASE_TLS)
        fail_close(c, w.phase, NULL, SK_CLIENT_ERR_TLS, "TLS handshake timed out after %g s", s);
    else if (w.phase == SK_CC_PHASE_BODY)
        fail_close(c, w.phase, NULL, SK_CLIENT_ERR_TIMEOUT,
                   "the message data did not go out within %g s", s);
    else
        fail_close(c, w.phase, NULL, SK_CLIENT_ERR_TIMEOUT, "no reply to %s within %g s",
                   phase_word(w.phase), s);
}

void sk_client_core_lost(sk_client_core *c, const char *why)
{
    if (c->wants & SK_CC_WANT_CLOSE)
        return;
    if (c->quitting) {
        close_now(c); /* closed instead of the 221: fine */
        return;
    }
    sk_cc_wait w;
    sk_client_core_wait(c, &w);
    fail_close(c, w.phase, NULL, SK_CLIENT_ERR_CLOSED,
               "the server closed the connection (waiting for %s)%s%s", phase_word(w.phase),
               why ? ": " : "", why ? why : "");
}

void sk_client_core_quit(sk_client_core *c)
{
    if ((c->wants & SK_CC_WANT_CLOSE) || c->quitting)
        return;
    if (!(c->wants & SK_CC_WANT_MESSAGE) || npending(c) > 0) {
        /* mid-dialogue: no clean QUIT possible */
        abort_message(c, SK_CC_PHASE_IDLE, NULL, "the connection was closed by this side");
        close_now(c);
        return;
    }
    send_quit(c);
}

sk_client_core *sk_client_core_new(const sk_client_core_config *cfg)
{
    /* The capability table is large and only read up to caps.ncaps: zero
     * everything before it, not the table itself. */
    sk_client_core *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    memset(c, 0, offsetof(sk_client_core, caps) + offsetof(sk_caps, caps));
    c->cfg = *cfg;
    c->helo = strdup(cfg->helo && *cfg->helo ? cfg->helo : "localhost");
    int bad = !c->helo;
    if (cfg->auth_user) {
        c->user = strdup(cfg->auth_user);
        c->pass = strdup(cfg->auth_pass ? cfg->auth_pass : "");
        bad = bad || !c->user || !c->pass || strlen(c->user) > SK_SASL_FIELD_MAX ||
              strlen(c->pass) > SK_SASL_FIELD_MAX;
    }
    if (bad || has_control(c->helo) || strchr(c->helo, ' ')) {
        sk_client_core_free(c);
        return NULL;
    }
    c->cfg.helo = c->helo;
    c->cfg.auth_user = c->user;
    c->cfg.auth_pass = c->pass;
    sk_buf_init(&c->in, IN_MAX);
    sk_buf_init(&c->out, 0);
    sk_buf_init(&c->scratch, 0);
    c->tls = cfg->implicit_tls;
    if (c->tls)
        c->starttls_done = 1;
    if (cfg->after_ehlo) {
        /* the dialogue so far was someone else's: start ready */
        c->caps = *cfg->after_ehlo;
        c->starttls_done = 1;
        c->auth = AUTH_DONE;
        c->pipelining = c->caps.pipelining && !cfg->no_pipelining;
        c->chunking = c->caps.chunking && !cfg->no_chunking && !cfg->lmtp;
        c->cfg.after_ehlo = NULL;
        go_idle(c);
        if (c->eq_n == 0) { /* no memory for the READY event */
            sk_client_core_free(c);
            return NULL;
        }
        return c;
    }
    if (push_pend(c, SK_CC_PHASE_GREETING, 0, 0) < 0) {
        sk_client_core_free(c);
        return NULL;
    }
    return c;
}

void sk_client_core_free(sk_client_core *c)
{
    if (!c)
        return;
    if (c->pass) {
        explicit_bzero(c->pass, strlen(c->pass));
        free(c->pass);
    }
    free(c->user);
    free(c->helo);
    /* the output and scratch held AUTH lines */
    if (c->out.data)
        explicit_bzero(c->out.data, c->out.cap);
    if (c->scratch.data)
        explicit_bzero(c->scratch.data, c->scratch.cap);
    sk_buf_free(&c->in);
    sk_buf_free(&c->out);
    sk_buf_free(&c->scratch);
    free(c->pq);
    while (c->eq_head < c->eq_n)
        qevent_free(&c->eq[c->eq_head++]);
    free(c->eq);
    qevent_free(&c->cur);
    txn_reset(c);
    free(c);
}

sk_buf *sk_client_core_output(sk_client_core *c)
{
    return &c->out;
}

unsigned sk_client_core_wants(const sk_client_core *c)
{
    return c->wants;
}

const sk_caps *sk_client_core_caps(const sk_client_core *c)
{
    return &c->caps;
}

int sk_client_core_tls(const sk_client_core *c)
{
    return c->tls;
}

int sk_client_core_pipelining(const sk_client_core *c)
{
    return c->pipelining;
}

int sk_client_core_chunking(const sk_client_core *c)
{
    return c->chunking;
}

unsigned sk_client_core_messages(const sk_client_core *c)
{
    return c->nmsgs;
}
