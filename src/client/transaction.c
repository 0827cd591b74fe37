/*
 * transaction.c - one mail transaction of the blocking client: MAIL,
 * RCPT..., then DATA (RFC 5321 3.3, 4.5.2) or BDAT (RFC 3030), pipelined
 * when the server offered PIPELINING (RFC 2920).
 *
 * A thin wrapper over the client core (client_core.c), which decides what
 * to send and what each reply means: this file starts a core on the
 * connection the blocking client has already greeted (after_ehlo), writes
 * its output, feeds it what the socket gives (one step timeout per wait),
 * records the transcript and fills the sk_txn results from its events.
 */
#include "client/client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/client_core.h"

#define BDAT_CHUNK (64 * 1024)

static void keep(const sk_reply *r, int *code, char *text, size_t n)
{
    *code = r->code;
    sk_reply_oneline(r, text, n);
}

static int is2xx(int code)
{
    return code >= 200 && code < 300;
}

/* Record what the message data looks like without flooding the transcript:
 * the header lines, then one line summing up the body. */
static void record_message(sk_client *c, const char *m, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && m[i] != '\n')
            i++;
        size_t e = i > s && m[i - 1] == '\r' ? i - 1 : i;
        if (i < n)
            i++;
        if (e == s) { /* the empty line: the body follows */
            sk_transcript_add(&c->tr, SK_DIR_CLIENT, "", 0);
            break;
        }
        sk_transcript_add(&c->tr, SK_DIR_CLIENT, m + s, e - s);
    }
    if (i < n)
        sk_transcript_addf(&c->tr, SK_DIR_INFO, "(message body: %zu bytes not shown)", n - i);
}

typedef struct run {
    sk_client *c;
    sk_txn *t;
    sk_client_core *core;
    size_t body_off;
    int recorded; /* the message's headers are in the transcript */
    int done;     /* MESSAGE_DONE came */
} run;

/* Act on one event. 0 go on, 1 the transaction is over, -1 failed. */
static int on_event(run *x, const sk_cc_event *ev)
{
    sk_client *c = x->c;
    sk_txn *t = x->t;
    switch (ev->type) {
    case SK_CC_EV_SENT:
        if (ev->phase == SK_CC_PHASE_DATA_END && !x->recorded)
            /* RFC 2920 3.1: a 354 though MAIL or every RCPT failed */
            sk_transcript_addf(&c->tr, SK_DIR_INFO, "nothing to deliver: ending DATA empty");
        sk_transcript_add(&c->tr, SK_DIR_CLIENT, ev->text, strlen(ev->text));
        if (ev->phase == SK_CC_PHASE_BDAT && !x->recorded) {
            record_message(c, t->msg, t->msglen);
            x->recorded = 1;
        }
        return 0;
    case SK_CC_EV_REPLY: {
        const sk_reply *r = ev->reply;
        if (c->o.on_reply)
            c->o.on_reply(r, sk_cc_phase_name(ev->phase), c->o.on_reply_arg);
        switch (ev->phase) {
        case SK_CC_PHASE_MAIL:
            keep(r, &t->mail_code, t->mail_text, sizeof t->mail_text);
            break;
        case SK_CC_PHASE_RCPT:
            if (ev->rcpt < t->nrcpts) {
                sk_rcpt_result *res = &t->results[ev->rcpt];
                keep(r, &res->code, res->text, sizeof res->text);
                if (is2xx(r->code))
                    t->accepted++;
            }
            break;
        case SK_CC_PHASE_DATA:
        case SK_CC_PHASE_BDAT:
            t->data_code = r->code;
            break;
        default:
            break;
        }
        return 0;
    }
    case SK_CC_EV_SEND_BODY:
        if (!t->use_bdat) {
            if (!x->recorded) {
                record_message(c, t->msg, t->msglen);
                x->recorded = 1;
            }
            /* the core normalises line ends, dot-stuffs and adds "." */
            return sk_client_core_body(x->core, t->msg, t->msglen, 1) < 0 ? -1 : 0;
        }
        return 0; /* BDAT chunks: see supply_bdat */
    case SK_CC_EV_MESSAGE_DONE:
        x->done = 1;
        if (ev->reply &&
            (ev->status == SK_CC_MSG_SENT || ev->status == SK_CC_MSG_REFUSED ||
             ev->status == SK_CC_MSG_ABORTED) &&
            (ev->phase == SK_CC_PHASE_DATA || ev->phase == SK_CC_PHASE_DATA_END ||
             ev->phase == SK_CC_PHASE_BDAT))
            keep(ev->reply, &t->final_code, t->final_text, sizeof t->final_text);
        if (ev->status == SK_CC_MSG_LOCAL) {
            sk_client_set_error(c, SK_CLIENT_ERR_USAGE, "%s", ev->text ? ev->text : "not sent");
            return -1;
        }
        return 0;
    case SK_CC_EV_READY:
        return x->done ? 1 : 0;
    case SK_CC_EV_FAILED:
        if (ev->reply && ev->reply->code == 421)
            return 1; /* the server is closing: the results hold its 421 */
        if (ev->kind == SK_CLIENT_ERR_PROTOCOL)
            sk_client_set_error(c, ev->kind, "%s does not speak SMTP: %s", c->peer,
                                ev->text ? ev->text : "bad reply");
        else
            sk_client_set_error(c, ev->kind, "%s: %s", c->peer, ev->text ? ev->text : "failed");
        return -1;
    default:
        return 0;
    }
}

/* BDAT: one chunk of at most BDAT_CHUNK octets per body call. */
static int supply_bdat(run *x)
{
    sk_txn *t = x->t;
    while (sk_client_core_wants(x->core) & SK_CC_WANT_BODY) {
        size_t n = t->msglen - x->body_off;
        if (n > BDAT_CHUNK)
            n = BDAT_CHUNK;
        int last = x->body_off + n == t->msglen;
        if (sk_client_core_body(x->core, t->msg + x->body_off, n, last) < 0)
            return -1;
        x->body_off += n;
    }
    return 0;
}

/* Record the whole lines at the start of rbuf in the transcript and drop
 * them (they were fed already); a partial line waits for its end. */
static void record_fed_lines(sk_client *c, size_t *fed)
{
    const char *nl = c->rbuf.len ? memrchr(c->rbuf.data, '\n', c->rbuf.len) : NULL;
    size_t n = nl ? (size_t)(nl - c->rbuf.data) + 1 : 0;
    if (n == 0 && c->rbuf.len >= c->rbuf.max)
        n = c->rbuf.len;
    if (n > *fed)
        n = *fed;
    if (n == 0)
        return;
    sk_client_record_lines(c, SK_DIR_SERVER, c->rbuf.data, n);
    sk_buf_consume(&c->rbuf, n);
    *fed -= n;
}

static int drive(run *x)
{
    sk_client *c = x->c;
    unsigned long seq = (unsigned long)-1;
    double deadline = 0;
    size_t fed = 0; /* bytes at the start of rbuf the core has seen */
    for (;;) {
        sk_buf *o = sk_client_core_output(x->core);
        if (o->len) {
            if (sk_client_send_raw(c, o->data, o->len, 0) < 0)
                return -1;
            sk_buf_consume(o, o->len);
        }
        sk_cc_event ev;
        if (sk_client_core_next_event(x->core, &ev)) {
            if (ev.type == SK_CC_EV_FAILED && c->rbuf.len)
                /* show what it was, as the reply reader does */
                sk_client_record_lines(c, SK_DIR_SERVER, c->rbuf.data,
                                       c->rbuf.len > 200 ? 200 : c->rbuf.len);
            int rc = on_event(x, &ev);
            if (rc != 0)
                return rc > 0 ? 0 : -1;
            continue;
        }
        if (x->t->use_bdat && (sk_client_core_wants(x->core) & SK_CC_WANT_BODY)) {
            if (supply_bdat(x) < 0) {
                sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
                return -1;
            }
            continue;
        }
        if (sk_client_core_wants(x->core) & SK_CC_WANT_CLOSE) {
            sk_client_set_error(c, SK_CLIENT_ERR_PROTOCOL, "%s: the dialogue ended", c->peer);
            return -1;
        }
        /* A reply must arrive whole within one step of the timeout. */
        sk_cc_wait w;
        sk_client_core_wait(x->core, &w);
        if (w.seq != seq) {
            seq = w.seq;
            deadline = sk_client_deadline(c);
        }
        if (fed == c->rbuf.len) {
            if (c->rbuf.len >= c->rbuf.max)
                sk_buf_clear(&c->rbuf), fed = 0; /* the core holds it; nothing to show */
            int n = sk_client_read_some(c, deadline);
            if (n < 0)
                return -1; /* timeout or I/O error, already in words */
            if (n == 0) {
                sk_client_core_lost(x->core, NULL);
                continue;
            }
        }
        /* Everything read goes to the core at once (garbage is refused as
         * soon as it arrives); whole lines go to the transcript. */
        sk_client_core_feed(x->core, c->rbuf.data + fed, c->rbuf.len - fed);
        fed = c->rbuf.len;
        record_fed_lines(c, &fed);
    }
}

int sk_client_transaction(sk_client *c, sk_txn *t)
{
    t->mail_code = t->data_code = t->final_code = 0;
    t->mail_text[0] = t->final_text[0] = '\0';
    t->accepted = 0;
    for (size_t i = 0; i < t->nrcpts; i++) {
        t->results[i].addr = t->rcpts[i];
        t->results[i].code = 0;
        t->results[i].text[0] = '\0';
    }
    if (t->use_bdat && !c->caps.chunking) {
        sk_client_set_error(c, SK_CLIENT_ERR_USAGE,
                            "%s does not offer CHUNKING, so BDAT cannot be used", c->peer);
        return -1;
    }
    if (t->nrcpts == 0 || t->nrcpts > 100000) {
        sk_client_set_error(c, SK_CLIENT_ERR_USAGE, "%s recipients", t->nrcpts ? "too many" : "no");
        return -1;
    }
    const char *fields[2] = {t->mail_from, t->mail_params};
    for (size_t i = 0; i < 2 + t->nrcpts; i++) {
        const char *f = i < 2 ? fields[i] : t->rcpts[i - 2];
        if (f && strpbrk(f, "\r\n")) {
            sk_client_set_error(c, SK_CLIENT_ERR_USAGE, "an address contains a line break");
            return -1;
        }
    }

    sk_cc_rcpt *rcpts = calloc(t->nrcpts, sizeof *rcpts);
    if (!rcpts) {
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < t->nrcpts; i++)
        rcpts[i].addr = t->rcpts[i];
    /* the parameters go as the caller wrote them (SIZE=, BODY=...) */
    sk_cc_message m = {0};
    m.mail_from = t->mail_from;
    m.rcpts = rcpts;
    m.nrcpts = t->nrcpts;
    m.extra_params = t->mail_params;
    m.envelope_only = t->no_data;

    unsigned ms = (unsigned)c->o.timeout_ms;
    sk_client_core_config cfg = {0};
    cfg.after_ehlo = &c->caps;
    cfg.implicit_tls = c->ssl != NULL;
    cfg.no_chunking = !t->use_bdat;
    cfg.report_replies = cfg.report_commands = 1;
    cfg.timeouts = (sk_cc_timeouts){ms, ms, ms, ms, ms, ms, ms};
    run x = {c, t, sk_client_core_new(&cfg), 0, 0, 0};
    if (!x.core) {
        free(rcpts);
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    sk_cc_event ev;
    int rc = sk_client_core_next_event(x.core, &ev) && ev.type == SK_CC_EV_READY &&
                     sk_client_core_submit(x.core, &m) == 0
                 ? drive(&x)
                 : -1;
    if (rc < 0 && sk_client_error(c) == SK_CLIENT_OK)
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
    sk_client_core_free(x.core);
    free(rcpts);
    return rc;
}
