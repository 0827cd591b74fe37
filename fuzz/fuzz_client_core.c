/*
 * fuzz_client_core.c - libFuzzer target for the SMTP client core: arbitrary
 * server bytes through a whole session (greeting, EHLO/HELO, STARTTLS,
 * AUTH, pipelined or not, DATA or BDAT, several messages, RSET, QUIT).
 *
 * Input: byte 0 picks the configuration (pipelining, chunking, TLS policy,
 * AUTH, a failing handshake), byte 1 the size of the pieces the rest is fed
 * in (1..32 octets), the LMTP mode (RFC 2033: LHLO, one reply per accepted
 * recipient after the data), and whether the messages are envelope-only
 * and the core starts after someone else's EHLO (with PIPELINING and
 * CHUNKING). The driver submits up to three
 * messages, supplies each body in pieces, completes every handshake, and reports the connection
 * lost at the end. Checked: every submitted message gets exactly one
 * MESSAGE_DONE; at most one FAILED; nothing happens after the core wants to
 * close; every reply handed out is well formed; the output holds only
 * CRLF-terminated lines outside message data.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/client_core.h"

static const sk_cc_rcpt rcpts[] = {
    {"a@example.test", SK_CC_NOTIFY_FAILURE, "rfc822;a@example.test"},
    {"b@example.test", 0, NULL},
    {"c@example.test", SK_CC_NOTIFY_NEVER, NULL},
};

static const sk_cc_message msgs[] = {
    {"s@example.org", rcpts, 3, 120, 0, 0, SK_CC_RET_HDRS, "env1", NULL, 0},
    {"", rcpts + 1, 1, 0, 1, 0, SK_CC_RET_NONE, NULL, NULL, 0},
    {"s@example.org", rcpts, 2, 40, 0, 1, SK_CC_RET_FULL, NULL, NULL, 0},
};

static const char body[] = "Subject: x\r\n\r\n.dot\r\nbare\nlf\rcr\r\n..\r\nend";

typedef struct st {
    sk_client_core *c;
    const sk_cc_message *msgs;
    int tls_fails;
    size_t submitted, done, failed, body_pos;
    int closed;
} st;

static void check_reply(const sk_reply *r)
{
    if (!r)
        return;
    if (r->code < 100 || r->code > 999 || r->nlines < 1 || r->nlines > SK_REPLY_MAX_LINES)
        abort();
    for (size_t i = 0; i < r->nlines; i++)
        if (!r->lines[i] || strpbrk(r->lines[i], "\r\n"))
            abort();
}

static void pump(st *s)
{
    for (int guard = 0; guard < 10000; guard++) {
        sk_buf *o = sk_client_core_output(s->c);
        sk_buf_consume(o, o->len);
        sk_cc_event ev;
        if (!sk_client_core_next_event(s->c, &ev)) {
            if (sk_client_core_wants(s->c) & SK_CC_WANT_BODY) {
                size_t n = sizeof body - 1 - s->body_pos;
                if (n > 7)
                    n = 7;
                int last = s->body_pos + n == sizeof body - 1;
                if (sk_client_core_body(s->c, body + s->body_pos, n, last) < 0)
                    abort(); /* it asked for the body */
                s->body_pos += n;
                continue;
            }
            return;
        }
        if (s->closed)
            abort(); /* nothing after the end */
        check_reply(ev.reply);
        switch (ev.type) {
        case SK_CC_EV_READY:
            if (!(sk_client_core_wants(s->c) & SK_CC_WANT_MESSAGE))
                break; /* a later event already moved on */
            if (s->submitted < sizeof msgs / sizeof *msgs) {
                s->body_pos = 0;
                if (sk_client_core_submit(s->c, &s->msgs[s->submitted]) != 0)
                    abort();
                s->submitted++;
            } else {
                sk_client_core_quit(s->c);
            }
            break;
        case SK_CC_EV_START_TLS:
            sk_client_core_tls_done(s->c, !s->tls_fails);
            break;
        case SK_CC_EV_MESSAGE_DONE:
            s->done++;
            if (s->done > s->submitted)
                abort();
            break;
        case SK_CC_EV_FAILED:
            if (++s->failed > 1)
                abort();
            break;
        default:
            break;
        }
    }
    abort(); /* events without end */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned cfgbits = data[0];
    size_t piece = (size_t)(data[1] & 0x1f) + 1;
    int lmtp = (data[1] >> 5) & 1;
    int envelope_only = (data[1] >> 6) & 1, resumed = (data[1] >> 7) & 1;
    data += 2;
    size -= 2;

    sk_client_core_config cfg = {0};
    cfg.no_pipelining = cfgbits & 1;
    cfg.no_chunking = (cfgbits >> 1) & 1;
    cfg.tls = (sk_cc_tls_policy)((cfgbits >> 2) % 3);
    if (cfgbits & 0x10) {
        cfg.auth_user = "alice";
        cfg.auth_pass = "secret";
        cfg.auth_allow_plaintext = 1;
    }
    cfg.rset_between = (cfgbits >> 6) & 1;
    cfg.report_replies = cfg.report_commands = 1;
    cfg.max_messages = 2;
    cfg.lmtp = lmtp;

    sk_caps caps;
    sk_caps_clear(&caps);
    caps.esmtp = caps.pipelining = caps.chunking = caps.dsn = 1;
    if (resumed)
        cfg.after_ehlo = &caps;
    sk_cc_message mine[sizeof msgs / sizeof *msgs];
    memcpy(mine, msgs, sizeof msgs);
    for (size_t i = 0; i < sizeof mine / sizeof *mine; i++)
        mine[i].envelope_only = envelope_only;

    st s;
    memset(&s, 0, sizeof s);
    s.msgs = mine;
    s.tls_fails = (cfgbits >> 5) & 1;
    s.c = sk_client_core_new(&cfg);
    if (!s.c)
        return 0;
    /* an exact-size copy, so ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        sk_client_core_free(s.c);
        return 0;
    }
    memcpy(buf, data, size);
    pump(&s);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        sk_client_core_feed(s.c, buf + off, n);
        pump(&s);
        if (sk_client_core_wants(s.c) & SK_CC_WANT_CLOSE)
            s.closed = 1;
        if ((cfgbits & 0x80) && off == piece * 3) {
            sk_client_core_timeout(s.c);
            pump(&s);
            if (sk_client_core_wants(s.c) & SK_CC_WANT_CLOSE)
                s.closed = 1;
        }
    }
    sk_client_core_lost(s.c, "end of input");
    pump(&s);
    if (!(sk_client_core_wants(s.c) & SK_CC_WANT_CLOSE))
        abort(); /* a lost connection always ends it */
    if (s.done != s.submitted)
        abort(); /* every message got its outcome */
    sk_client_core_free(s.c);
    free(buf);
    return 0;
}
