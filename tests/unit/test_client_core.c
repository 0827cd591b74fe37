/*
 * test_client_core.c - the sans-I/O SMTP client core against scripted
 * servers: each script is a list of server turns (the bytes a server sends
 * after the client's last flight), fed once whole and once byte by byte;
 * both runs must give the exact same client bytes and the exact same events.
 * Covers EHLO/HELO fallback, PIPELINING batches, one-at-a-time dialogue,
 * per-recipient replies (250/251/452/550/551/552), 421 anywhere, multi-line
 * and malformed replies (garbage, bare LF, long lines, a code changing mid
 * reply, short lines: the OpenSMTPD CVE-2020-8794 class), STARTTLS (with
 * injected plaintext), AUTH PLAIN and LOGIN, RSET between messages, BDAT,
 * DSN parameters, SIZE, timeouts per RFC 5321 4.5.3.2; the LMTP mode
 * (RFC 2033: LHLO, one reply per accepted recipient after the data).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpkit/client_core.h"

typedef struct script {
    sk_client_core_config cfg;
    const sk_cc_message *msgs; /* submitted in turn at each READY; then QUIT */
    size_t nmsgs;
    const char *body; /* the body of every message */
    size_t chunk;     /* body call size; 0: all in one call */
    int tls_fails;    /* the driver's handshake fails */
    const char *turns[16];
    int lost_at_end; /* the server closes after the last turn */
    const char *want_out;
    const char *want_events;
} script;

typedef struct drv {
    const script *s;
    sk_client_core *c;
    sk_buf out, log;
    size_t next_msg, body_pos;
    int tls_started; /* the rest of this turn was read before the handshake */
} drv;

static const char *const st_names[] = {"SENT",  "REFUSED", "NO_RECIPIENTS",
                                       "LOCAL", "ABORTED", "ENVELOPE"};
static const char *const v_names[] = {"OK", "TEMP", "PERM"};

static const char *kind_name(sk_client_err k)
{
    switch (k) {
    case SK_CLIENT_ERR_REFUSED:
        return "refused";
    case SK_CLIENT_ERR_TLS:
        return "tls";
    case SK_CLIENT_ERR_TIMEOUT:
        return "timeout";
    case SK_CLIENT_ERR_CLOSED:
        return "closed";
    case SK_CLIENT_ERR_PROTOCOL:
        return "protocol";
    case SK_CLIENT_ERR_USAGE:
        return "usage";
    default:
        return "other";
    }
}

static void log_event(drv *d, const sk_cc_event *ev)
{
    sk_buf *l = &d->log;
    int code = ev->reply ? ev->reply->code : 0;
    switch (ev->type) {
    case SK_CC_EV_REPLY:
        sk_buf_printf(l, "REPLY %s %d\n", sk_cc_phase_name(ev->phase), code);
        break;
    case SK_CC_EV_SENT:
        sk_buf_printf(l, "SENT %s\n", ev->text);
        break;
    case SK_CC_EV_START_TLS:
        sk_buf_printf(l, "START_TLS\n");
        break;
    case SK_CC_EV_READY:
        sk_buf_printf(l, "READY\n");
        break;
    case SK_CC_EV_SEND_BODY:
        sk_buf_printf(l, "SEND_BODY\n");
        break;
    case SK_CC_EV_RCPT:
        sk_buf_printf(l, "RCPT %zu %d %s\n", ev->rcpt, code, v_names[ev->verdict]);
        break;
    case SK_CC_EV_MESSAGE_DONE:
        sk_buf_printf(l, "DONE %s %s %d %s acc=%zu%s%s\n", st_names[ev->status],
                      sk_cc_phase_name(ev->phase), code, v_names[ev->verdict], ev->accepted,
                      ev->text ? " " : "", ev->text ? ev->text : "");
        break;
    case SK_CC_EV_FAILED:
        sk_buf_printf(l, "FAILED %s %d %s: %s\n", sk_cc_phase_name(ev->phase), code,
                      kind_name(ev->kind), ev->text ? ev->text : "");
        break;
    default:
        sk_buf_printf(l, "?\n");
    }
}

static void pump(drv *d)
{
    const script *s = d->s;
    for (;;) {
        sk_buf *o = sk_client_core_output(d->c);
        if (o->len) {
            sk_buf_append(&d->out, o->data, o->len);
            sk_buf_consume(o, o->len);
        }
        sk_cc_event ev;
        if (!sk_client_core_next_event(d->c, &ev)) {
            if (sk_client_core_wants(d->c) & SK_CC_WANT_BODY) {
                size_t len = s->body ? strlen(s->body) : 0;
                size_t n = len - d->body_pos;
                if (s->chunk && n > s->chunk)
                    n = s->chunk;
                int last = d->body_pos + n == len;
                assert_int_equal(
                    sk_client_core_body(d->c, s->body ? s->body + d->body_pos : "", n, last), 0);
                d->body_pos += n;
                continue;
            }
            return;
        }
        log_event(d, &ev);
        switch (ev.type) {
        case SK_CC_EV_READY:
            if (d->next_msg < s->nmsgs) {
                d->body_pos = 0;
                assert_int_equal(sk_client_core_submit(d->c, &s->msgs[d->next_msg++]), 0);
            } else {
                sk_client_core_quit(d->c);
            }
            break;
        case SK_CC_EV_START_TLS:
            d->tls_started = 1;
            sk_client_core_tls_done(d->c, !s->tls_fails);
            break;
        default:
            break;
        }
    }
}

static void run_mode(const script *s, int bytewise)
{
    drv d;
    memset(&d, 0, sizeof d);
    d.s = s;
    sk_buf_init(&d.out, 0);
    sk_buf_init(&d.log, 0);
    d.c = sk_client_core_new(&s->cfg);
    assert_non_null(d.c);
    pump(&d);
    for (size_t t = 0; t < 16 && s->turns[t]; t++) {
        const char *p = s->turns[t];
        size_t n = strlen(p);
        d.tls_started = 0;
        if (bytewise) {
            for (size_t i = 0; i < n && !d.tls_started; i++) {
                sk_client_core_feed(d.c, p + i, 1);
                pump(&d);
            }
        } else {
            sk_client_core_feed(d.c, p, n);
            pump(&d);
        }
    }
    if (s->lost_at_end) {
        sk_client_core_lost(d.c, NULL);
        pump(&d);
    }
    if (s->want_events) {
        if (strcmp(d.log.data ? d.log.data : "", s->want_events) != 0)
            print_error("mode %s, events:\n%s\n", bytewise ? "bytes" : "whole",
                        d.log.data ? d.log.data : "");
        assert_string_equal(d.log.data ? d.log.data : "", s->want_events);
    }
    if (s->want_out) {
        if (strcmp(d.out.data ? d.out.data : "", s->want_out) != 0)
            print_error("mode %s, output:\n%s\n", bytewise ? "bytes" : "whole",
                        d.out.data ? d.out.data : "");
        assert_string_equal(d.out.data ? d.out.data : "", s->want_out);
    }
    sk_client_core_free(d.c);
    sk_buf_free(&d.out);
    sk_buf_free(&d.log);
}

static void run(const script *s)
{
    run_mode(s, 0);
    run_mode(s, 1);
}

#define GREET "220 mx.test ESMTP\r\n"
#define EHLO_PLAIN "250-mx.test\r\n250 8BITMIME\r\n"
#define EHLO_PIPE "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"

static const sk_cc_rcpt one_rcpt[] = {{"bob@example.test", 0, NULL}};

/* ---- the basic dialogue ------------------------------------------------- */

static void test_one_message_one_at_a_time(void **state)
{
    (void)state;
    static const sk_cc_message m = {"alice@example.org", one_rcpt, 1,    42, 0, 0,
                                    SK_CC_RET_NONE,      NULL,     NULL, 0};
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "Subject: x\r\n\r\n.hello\r\n..two\r\nbye",
        .turns = {GREET, "250-mx.test\r\n250 SIZE 1000\r\n", "250 2.1.0 ok\r\n", "250 2.1.5 ok\r\n",
                  "354 go\r\n", "250 2.0.0 queued as X\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\n"
                    "MAIL FROM:<alice@example.org> SIZE=42\r\n"
                    "RCPT TO:<bob@example.test>\r\n"
                    "DATA\r\n"
                    "Subject: x\r\n\r\n..hello\r\n...two\r\nbye\r\n.\r\n"
                    "QUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nSEND_BODY\nDONE SENT DATA-END 250 OK acc=1\n"
                       "READY\n",
    };
    run(&s);
}

static void test_ehlo_refused_falls_back_to_helo(void **state)
{
    (void)state;
    /* an 8-bit message to a HELO-only server cannot go: 5.6.3 locally; the
     * next one goes without SIZE= (no extensions after HELO) */
    static const sk_cc_message m[] = {
        {"a@example.org", one_rcpt, 1, 10, 1, 0, SK_CC_RET_NONE, NULL, NULL, 0},
        {"a@example.org", one_rcpt, 1, 10, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
    };
    script s = {
        .cfg = {.helo = "client.example.org"},
        .msgs = m,
        .nmsgs = 2,
        .body = "hi\r\n",
        .turns = {GREET, "502 5.5.1 EHLO not implemented\r\n", "250 mx.test\r\n", "250 ok\r\n",
                  "250 ok\r\n", "354 go\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO client.example.org\r\nHELO client.example.org\r\n"
                    "MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                    "hi\r\n.\r\nQUIT\r\n",
        .want_events = "READY\nDONE LOCAL IDLE 0 PERM acc=0 the message has 8-bit content and "
                       "the server does not offer 8BITMIME\nREADY\nRCPT 0 250 OK\nSEND_BODY\n"
                       "DONE SENT DATA-END 250 OK acc=1\nREADY\n",
    };
    run(&s);
    /* any 5xx to EHLO (550 too) gets HELO; a refused HELO ends it with QUIT */
    script s2 = {
        .turns = {GREET, "550 no EHLO here\r\n", "501 who are you\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nHELO localhost\r\nQUIT\r\n",
        .want_events = "FAILED HELO 501 refused: HELO refused: 501 who are you\n",
    };
    run(&s2);
    /* a 4xx to EHLO is no reason to try HELO */
    script s3 = {
        .turns = {GREET, "451 try later\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "FAILED EHLO 451 refused: EHLO refused: 451 try later\n",
    };
    run(&s3);
}

static void test_greeting_554_quits_421_closes(void **state)
{
    (void)state;
    script s = {
        .turns = {"554 5.7.1 go away\r\n", "221 bye\r\n"},
        .want_out = "QUIT\r\n",
        .want_events = "FAILED CONNECT 554 refused: greeting refused: 554 5.7.1 go away\n",
    };
    run(&s);
    /* garbage in answer to the QUIT that follows: closed, no second FAILED */
    script s1 = {
        .turns = {"554 5.7.1 go away\r\n", "221 bye\x01\r\n"},
        .want_out = "QUIT\r\n",
        .want_events = "FAILED CONNECT 554 refused: greeting refused: 554 5.7.1 go away\n",
    };
    run(&s1);
    script s2 = {
        .turns = {"421 4.3.2 shutting down\r\n"},
        .want_out = "",
        .want_events = "FAILED CONNECT 421 refused: the greeting answered 421: 421 4.3.2 "
                       "shutting down\n",
    };
    run(&s2);
    sk_client_core_config cfg = {0};
    sk_client_core *c = sk_client_core_new(&cfg);
    sk_client_core_feed(c, "421 bye\r\n", 9);
    assert_int_equal(sk_client_core_wants(c), SK_CC_WANT_CLOSE);
    sk_client_core_free(c);
}

/* ---- PIPELINING and recipients ----------------------------------------- */

static const sk_cc_rcpt five_rcpts[] = {
    {"r0@example.test", 0, NULL}, {"r1@example.test", 0, NULL}, {"r2@example.test", 0, NULL},
    {"r3@example.test", 0, NULL}, {"r4@example.test", 0, NULL},
};

static void test_pipelined_batch_per_recipient_replies(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 5,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "x\r\n",
        .turns = {GREET, EHLO_PIPE,
                  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n"
                  "452 4.5.3 too many\r\n251 2.1.5 will forward to <x@y>\r\n"
                  "551 5.1.6 try <r4@elsewhere.test>\r\n354 go\r\n",
                  "250 2.0.0 queued\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<r0@example.test>\r\n"
                    "RCPT TO:<r1@example.test>\r\nRCPT TO:<r2@example.test>\r\n"
                    "RCPT TO:<r3@example.test>\r\nRCPT TO:<r4@example.test>\r\nDATA\r\n"
                    "x\r\n.\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nRCPT 1 550 PERM\nRCPT 2 452 TEMP\n"
                       "RCPT 3 251 OK\nRCPT 4 551 PERM\nSEND_BODY\n"
                       "DONE SENT DATA-END 250 OK acc=2\nREADY\n",
    };
    run(&s);
}

static void test_one_at_a_time_without_pipelining(void **state)
{
    (void)state;
    /* PIPELINING offered, but the config says no: each command waits */
    static const sk_cc_message m = {"s@example.org", five_rcpts, 2,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s = {
        .cfg = {.no_pipelining = 1},
        .msgs = &m,
        .nmsgs = 1,
        .body = "",
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n", "552 5.5.3 too many recipients\r\n", "250 ok\r\n",
                  "354 go\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\nDATA\r\n"
                    ".\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 552 TEMP\nRCPT 1 250 OK\nSEND_BODY\n"
                       "DONE SENT DATA-END 250 OK acc=1\nREADY\n",
    };
    run(&s);
}

static void test_all_recipients_refused_then_rset_next_message(void **state)
{
    (void)state;
    static const sk_cc_message m[] = {
        {"s@example.org", five_rcpts, 2, 0, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
        {"s@example.org", five_rcpts + 2, 1, 0, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
    };
    /* one at a time: no DATA after the refusals, RSET, then the next message;
     * max_messages 2: QUIT comes by itself */
    script s = {
        .cfg = {.max_messages = 2},
        .msgs = m,
        .nmsgs = 2,
        .body = "b\r\n",
        .turns = {GREET, EHLO_PLAIN, "250 ok\r\n", "550 no\r\n", "450 later\r\n", "250 reset\r\n",
                  "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\nRSET\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<r2@example.test>\r\nDATA\r\n"
                    "b\r\n.\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 550 PERM\nRCPT 1 450 TEMP\n"
                       "DONE NO_RECIPIENTS RCPT 0 TEMP acc=0\nREADY\nRCPT 0 250 OK\nSEND_BODY\n"
                       "DONE SENT DATA-END 250 OK acc=1\n",
    };
    run(&s);
    /* pipelined: DATA went with the batch and got 354 though nobody is left:
     * it ends empty (RFC 2920 3.1), then RSET */
    script s2 = {
        .msgs = m,
        .nmsgs = 1,
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n550 no\r\n550 no\r\n354 go\r\n", "250 ok\r\n",
                  "250 reset\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\nDATA\r\n"
                    ".\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 550 PERM\nRCPT 1 550 PERM\n"
                       "DONE NO_RECIPIENTS RCPT 0 PERM acc=0\nREADY\n",
    };
    run(&s2);
}

static void test_rset_between_messages(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    const sk_cc_message two[] = {m, m};
    /* two messages, each delivered: RSET between when asked; the cap of two
     * per connection sends QUIT after the second RSET */
    script s = {
        .cfg = {.rset_between = 1, .max_messages = 2},
        .msgs = two,
        .nmsgs = 2,
        .body = "x\r\n",
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n354 go\r\n", "250 one\r\n",
                  "250 reset\r\n", "250 ok\r\n250 ok\r\n354 go\r\n", "250 two\r\n", "250 reset\r\n",
                  "221 bye\r\n"},
        .want_out = "EHLO localhost\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<r0@example.test>\r\nDATA\r\nx\r\n.\r\n"
                    "RSET\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<r0@example.test>\r\nDATA\r\nx\r\n.\r\n"
                    "RSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nSEND_BODY\nDONE SENT DATA-END 250 OK acc=1\nREADY\n"
                       "RCPT 0 250 OK\nSEND_BODY\nDONE SENT DATA-END 250 OK acc=1\n",
    };
    run(&s);
}

static void test_mail_refused_pipelined_and_not(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .turns = {GREET, EHLO_PIPE, "550 5.7.1 sender refused\r\n503 5.5.1 no MAIL\r\n503 no\r\n",
                  "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nDATA\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nDONE REFUSED MAIL 550 PERM acc=0\nREADY\n",
    };
    run(&s);
    script s2 = {
        .msgs = &m,
        .nmsgs = 1,
        .turns = {GREET, EHLO_PLAIN, "451 4.3.0 later\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nDONE REFUSED MAIL 451 TEMP acc=0\nREADY\n",
    };
    run(&s2);
}

static void test_data_and_end_of_data_refused(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n554 5.5.1 no valid recipients\r\n",
                  "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nDATA\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nDONE REFUSED DATA 554 PERM acc=1\nREADY\n",
    };
    run(&s);
    script s2 = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "x",
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n354 go\r\n", "451 4.3.0 disk\r\n",
                  "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nDATA\r\nx\r\n.\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nSEND_BODY\nDONE REFUSED DATA-END 451 TEMP acc=1\n"
                       "READY\n",
    };
    run(&s2);
}

static void test_421_mid_transaction_closes(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 3,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    /* after one recipient: the message is aborted (temporary), no QUIT */
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n421 4.3.2 going down\r\n250 late\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\n"
                    "RCPT TO:<r2@example.test>\r\nDATA\r\n",
        .want_events = "READY\nRCPT 0 250 OK\n"
                       "DONE ABORTED RCPT 421 TEMP acc=1 RCPT answered 421: 421 4.3.2 going down\n"
                       "FAILED RCPT 421 closed: RCPT answered 421: 421 4.3.2 going down\n",
    };
    run(&s);
    /* 421 after the data */
    script s2 = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "x\r\n",
        .cfg = {.no_pipelining = 1},
        .turns = {GREET, EHLO_PLAIN, "250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "250 ok\r\n",
                  "354 go\r\n", "421 4.4.2 timeout\r\n"},
        .want_events = "READY\nRCPT 0 250 OK\nRCPT 1 250 OK\nRCPT 2 250 OK\nSEND_BODY\n"
                       "DONE ABORTED DATA-END 421 TEMP acc=3 the message data answered 421: "
                       "421 4.4.2 timeout\n"
                       "FAILED DATA-END 421 closed: the message data answered 421: 421 4.4.2 "
                       "timeout\n",
    };
    run(&s2);
    /* 421 while idle between messages */
    script s3 = {
        .turns = {GREET, EHLO_PLAIN},
        .want_events = "READY\n",
    };
    s3.nmsgs = 0;
    sk_client_core_config cfg = {0};
    sk_client_core *c = sk_client_core_new(&cfg);
    const char *in = GREET EHLO_PLAIN;
    sk_client_core_feed(c, in, strlen(GREET));
    sk_client_core_feed(c, in + strlen(GREET), strlen(EHLO_PLAIN));
    sk_cc_event ev;
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_READY);
    sk_client_core_feed(c, "421 idle too long\r\n", 19);
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_FAILED);
    assert_int_equal(ev.phase, SK_CC_PHASE_IDLE);
    assert_int_equal(ev.reply->code, 421);
    assert_int_equal(sk_client_core_wants(c), SK_CC_WANT_CLOSE);
    sk_client_core_free(c);
    (void)s3;
}

/* ---- reply parsing --------------------------------------------------------- */

static void test_multiline_replies(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s = {
        .cfg = {.report_replies = 1},
        .msgs = &m,
        .nmsgs = 1,
        .turns = {"220-mx.test first\r\n220-second\r\n220 third\r\n",
                  "250-mx.test\r\n250-SIZE\r\n250 PIPELINING\r\n",
                  "250 ok\r\n550-5.1.1 no such\r\n550-5.1.1 user here\r\n550 5.1.1 at all\r\n"
                  "554 5.5.1 no valid recipients\r\n",
                  "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nDATA\r\nRSET\r\nQUIT\r\n",
        .want_events = "REPLY CONNECT 220\nREPLY EHLO 250\nREADY\nREPLY MAIL 250\nREPLY RCPT 550\n"
                       "RCPT 0 550 PERM\nREPLY DATA 554\nDONE NO_RECIPIENTS RCPT 0 PERM acc=0\n"
                       "REPLY RSET 250\nREADY\nREPLY QUIT 221\n",
    };
    run(&s);
    /* capabilities come from every line of the EHLO reply */
    sk_client_core_config cfg = {0};
    sk_client_core *c = sk_client_core_new(&cfg);
    const char *in = GREET "250-mx.test\r\n250-SIZE 2048\r\n250-DSN\r\n250 CHUNKING\r\n";
    sk_client_core_feed(c, in, strlen(in));
    const sk_caps *caps = sk_client_core_caps(c);
    assert_true(caps->esmtp && caps->has_size && caps->dsn && caps->chunking);
    assert_int_equal(caps->size, 2048);
    assert_true(sk_client_core_chunking(c));
    assert_false(sk_client_core_pipelining(c));
    sk_client_core_free(c);
}

/* Feed `in` after `prefix` in one run and byte by byte: the connection fails
 * with a protocol error in `phase` and nothing more is sent. */
static void expect_protocol_error(const char *prefix, const char *in, size_t inlen,
                                  sk_cc_phase phase, const char *needle)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        sk_client_core_config cfg = {0};
        sk_client_core *c = sk_client_core_new(&cfg);
        assert_non_null(c);
        sk_client_core_feed(c, prefix, strlen(prefix));
        sk_cc_event ev;
        while (sk_client_core_next_event(c, &ev))
            ;
        sk_buf *o = sk_client_core_output(c);
        sk_buf_consume(o, o->len);
        if (bytewise)
            for (size_t i = 0; i < inlen; i++)
                sk_client_core_feed(c, in + i, 1);
        else
            sk_client_core_feed(c, in, inlen);
        if (sk_client_core_wants(c) != SK_CC_WANT_CLOSE)
            print_error("not closed after %.20s (%s)\n", in, bytewise ? "bytes" : "whole");
        assert_int_equal(sk_client_core_wants(c), SK_CC_WANT_CLOSE);
        assert_int_equal(sk_client_core_next_event(c, &ev), 1);
        assert_int_equal(ev.type, SK_CC_EV_FAILED);
        assert_int_equal(ev.kind, SK_CLIENT_ERR_PROTOCOL);
        assert_int_equal(ev.phase, phase);
        if (!strstr(ev.text, needle))
            print_error("text: %s\n", ev.text);
        assert_non_null(strstr(ev.text, needle));
        assert_int_equal(sk_client_core_next_event(c, &ev), 0);
        assert_int_equal(o->len, 0);
        sk_client_core_free(c);
    }
}

static void test_malformed_replies(void **state)
{
    (void)state;
    const char *g = "";
    const char *e = GREET;
#define BAD(prefix, s, phase, needle) expect_protocol_error(prefix, s, sizeof(s) - 1, phase, needle)
    BAD(g, "HTTP/1.1 400 Bad Request\r\n", SK_CC_PHASE_GREETING, "3-digit code");
    BAD(g, "SSH-2.0-OpenSSH", SK_CC_PHASE_GREETING, "3-digit code");
    BAD(g, "220 hello\n", SK_CC_PHASE_GREETING, "bare LF");
    BAD(g, "220 hel\rlo\r\n", SK_CC_PHASE_GREETING, "bare CR");
    BAD(g, "220 a\0b\r\n", SK_CC_PHASE_GREETING, "NUL");
    BAD(e, "250-mx.test\r\n251 SIZE\r\n", SK_CC_PHASE_EHLO, "differs");
    /* short lines: nothing is read past their end (CVE-2020-8794) */
    BAD(e, "25\r\n", SK_CC_PHASE_EHLO, "too short");
    BAD(e, "2\r\n", SK_CC_PHASE_EHLO, "too short");
    BAD(e, "\r\n", SK_CC_PHASE_EHLO, "empty line");
    BAD(e, "250-mx.test\r\n25\r\n", SK_CC_PHASE_EHLO, "too short");
    BAD(e, "250x\r\n", SK_CC_PHASE_EHLO, "expected ' ' or '-'");
    BAD(e, "650 what\r\n", SK_CC_PHASE_EHLO, "makes no sense");
    BAD(e, "150 what\r\n", SK_CC_PHASE_EHLO, "makes no sense");
    /* a line that never ends, and a reply that never ends */
    static char longline[5000];
    memset(longline, 'a', sizeof longline);
    memcpy(longline, "250 ", 4);
    expect_protocol_error(e, longline, sizeof longline, SK_CC_PHASE_EHLO, "longer than");
    static char many[70000];
    size_t n = 0;
    while (n + 12 < sizeof many) {
        memcpy(many + n, "250-aaaaaa\r\n", 12);
        n += 12;
    }
    expect_protocol_error(e, many, n, SK_CC_PHASE_EHLO, "more than 128 lines");
    /* a reply nobody asked for */
    expect_protocol_error(GREET EHLO_PLAIN, "250 surprise\r\n", 14, SK_CC_PHASE_IDLE,
                          "nobody asked for");
#undef BAD
}

static void test_long_but_bounded_lines_are_read(void **state)
{
    (void)state;
    /* RFC 5321 4.5.3.1.5 says 512; real servers send more: 600 is read */
    char line[700];
    memset(line, 'x', sizeof line);
    memcpy(line, "220 ", 4);
    memcpy(line + 604, "\r\n", 3);
    sk_client_core_config cfg = {.report_replies = 1};
    sk_client_core *c = sk_client_core_new(&cfg);
    sk_client_core_feed(c, line, 606);
    sk_cc_event ev;
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_REPLY);
    assert_int_equal(ev.reply->code, 220);
    assert_int_equal(strlen(ev.reply->lines[0]), 600);
    sk_buf *o = sk_client_core_output(c);
    assert_int_equal(o->len, strlen("EHLO localhost\r\n"));
    /* "250" alone (no text) is a whole reply */
    sk_client_core_feed(c, "250\r\n", 5);
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_REPLY);
    assert_int_equal(ev.reply->code, 250);
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_READY);
    sk_client_core_free(c);
}

static void test_connection_lost_and_partial_reply(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "x",
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n354 go\r\n", "250 2.0.0 que"},
        .lost_at_end = 1,
        .want_events = "READY\nRCPT 0 250 OK\nSEND_BODY\n"
                       "DONE ABORTED DATA-END 0 TEMP acc=1 the server closed the connection "
                       "(waiting for the message data)\n"
                       "FAILED DATA-END 0 closed: the server closed the connection (waiting for "
                       "the message data)\n",
    };
    run(&s);
    /* closing instead of answering QUIT is fine */
    script s2 = {
        .turns = {GREET, EHLO_PLAIN},
        .lost_at_end = 1,
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "READY\n",
    };
    run(&s2);
}

/* ---- STARTTLS and AUTH --------------------------------------------------- */

static void test_starttls_flow(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    /* the plaintext after the 220 (an injected reply) is never read */
    script s = {
        .cfg = {.tls = SK_CC_TLS_OPPORTUNISTIC},
        .msgs = &m,
        .nmsgs = 1,
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n",
                  "220 2.0.0 go ahead\r\n250-injected\r\n250 PIPELINING\r\n",
                  "250-mx.test\r\n250 SIZE 100\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n",
                  "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nSTARTTLS\r\nEHLO localhost\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<r0@example.test>\r\nDATA\r\n"
                    ".\r\nQUIT\r\n",
        .want_events = "START_TLS\nREADY\nRCPT 0 250 OK\nSEND_BODY\n"
                       "DONE SENT DATA-END 250 OK acc=1\nREADY\n",
    };
    run(&s);
    /* required, not offered: QUIT */
    script s2 = {
        .cfg = {.tls = SK_CC_TLS_REQUIRED},
        .turns = {GREET, EHLO_PLAIN, "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "FAILED STARTTLS 0 tls: the server does not offer STARTTLS\n",
    };
    run(&s2);
    /* required, refused */
    script s3 = {
        .cfg = {.tls = SK_CC_TLS_REQUIRED},
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n", "454 4.7.0 not now\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nSTARTTLS\r\nQUIT\r\n",
        .want_events = "FAILED STARTTLS 454 tls: STARTTLS refused: 454 4.7.0 not now\n",
    };
    run(&s3);
    /* opportunistic, refused: on in plaintext */
    script s4 = {
        .cfg = {.tls = SK_CC_TLS_OPPORTUNISTIC},
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n", "454 4.7.0 not now\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nSTARTTLS\r\nQUIT\r\n",
        .want_events = "READY\n",
    };
    run(&s4);
    /* handshake failure: close, no QUIT (the stream is unusable) */
    script s5 = {
        .cfg = {.tls = SK_CC_TLS_OPPORTUNISTIC},
        .tls_fails = 1,
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n", "220 go\r\n"},
        .want_out = "EHLO localhost\r\nSTARTTLS\r\n",
        .want_events = "START_TLS\nFAILED TLS 0 tls: the TLS handshake failed\n",
    };
    run(&s5);
    /* STARTTLS off: not used even when offered */
    script s6 = {
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "READY\n",
    };
    run(&s6);
    /* the wait while the driver runs the handshake */
    sk_client_core_config cfg = {.tls = SK_CC_TLS_REQUIRED, .timeouts = {.command = 7000}};
    sk_client_core *c = sk_client_core_new(&cfg);
    const char *in = GREET "250-mx.test\r\n250 STARTTLS\r\n";
    sk_client_core_feed(c, in, strlen(in));
    sk_client_core_feed(c, "220 go\r\n", 8);
    assert_true(sk_client_core_wants(c) & SK_CC_WANT_TLS);
    sk_cc_wait w;
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_TLS);
    assert_int_equal(w.ms, 7000);
    sk_client_core_feed(c, "250 ignored\r\n", 13); /* dropped while TLS starts */
    sk_client_core_timeout(c);
    sk_cc_event ev;
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_START_TLS);
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_FAILED);
    assert_string_equal(ev.text, "TLS handshake timed out after 7 s");
    sk_client_core_free(c);
}

static void test_implicit_tls_and_caps_forgotten(void **state)
{
    (void)state;
    /* implicit TLS: no STARTTLS even when required and offered */
    script s = {
        .cfg = {.tls = SK_CC_TLS_REQUIRED, .implicit_tls = 1},
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "READY\n",
    };
    run(&s);
    /* after STARTTLS the pre-TLS capabilities are gone until the new EHLO */
    sk_client_core_config cfg = {.tls = SK_CC_TLS_REQUIRED};
    sk_client_core *c = sk_client_core_new(&cfg);
    const char *in = GREET "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
    sk_client_core_feed(c, in, strlen(in));
    assert_true(sk_client_core_caps(c)->pipelining);
    sk_client_core_feed(c, "220 go\r\n", 8);
    sk_client_core_tls_done(c, 1);
    assert_true(sk_client_core_tls(c));
    assert_false(sk_client_core_caps(c)->pipelining);
    assert_false(sk_client_core_pipelining(c));
    sk_client_core_free(c);
}

static void test_auth_plain_and_login(void **state)
{
    (void)state;
    /* PLAIN with the initial response; secrets shown redacted */
    script s = {
        .cfg = {.auth_user = "alice",
                .auth_pass = "secret",
                .tls = SK_CC_TLS_REQUIRED,
                .report_commands = 1},
        .turns = {GREET, "250-mx.test\r\n250 STARTTLS\r\n", "220 go\r\n",
                  "250-mx.test\r\n250 AUTH LOGIN PLAIN\r\n", "235 2.7.0 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nSTARTTLS\r\nEHLO localhost\r\n"
                    "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nQUIT\r\n",
        .want_events = "SENT EHLO localhost\nSENT STARTTLS\nSTART_TLS\nSENT EHLO localhost\n"
                       "SENT AUTH PLAIN <redacted>\nREADY\nSENT QUIT\n",
    };
    run(&s);
    /* LOGIN: user and password as answers to the 334 challenges */
    script s2 = {
        .cfg = {.auth_user = "alice", .auth_pass = "secret", .implicit_tls = 1},
        .turns = {GREET, "250-mx.test\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n",
                  "334 UGFzc3dvcmQ6\r\n", "235 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nQUIT\r\n",
        .want_events = "READY\n",
    };
    run(&s2);
    /* refused: FAILED and QUIT */
    script s3 = {
        .cfg = {.auth_user = "alice", .auth_pass = "secret", .implicit_tls = 1},
        .turns = {GREET, "250-mx.test\r\n250 AUTH PLAIN\r\n", "535 5.7.8 authentication failed\r\n",
                  "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nQUIT\r\n",
        .want_events = "FAILED AUTH 535 refused: authentication as alice failed: 535 5.7.8 "
                       "authentication failed\n",
    };
    run(&s3);
    /* a third challenge: "*" cancels (RFC 4954 4) */
    script s4 = {
        .cfg = {.auth_user = "alice", .auth_pass = "secret", .implicit_tls = 1},
        .turns = {GREET, "250-mx.test\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n",
                  "334 UGFzc3dvcmQ6\r\n", "334 more\r\n", "501 cancelled\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n*\r\nQUIT\r\n",
        .want_events = "FAILED AUTH 501 protocol: authentication as alice failed: the server "
                       "asked for more than the mechanism needs\n",
    };
    run(&s4);
    /* no TLS: no AUTH unless allowed */
    script s5 = {
        .cfg = {.auth_user = "alice", .auth_pass = "secret"},
        .turns = {GREET, "250-mx.test\r\n250 AUTH PLAIN\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "FAILED AUTH 0 usage: AUTH refused without TLS (the password would "
                       "travel in the clear)\n",
    };
    run(&s5);
    /* no mechanism we know */
    script s6 = {
        .cfg = {.auth_user = "alice", .auth_pass = "secret", .auth_allow_plaintext = 1},
        .turns = {GREET, "250-mx.test\r\n250 AUTH CRAM-MD5\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "FAILED AUTH 0 usage: the server offers no AUTH mechanism smtpkit can "
                       "use (PLAIN or LOGIN); it offers: CRAM-MD5\n",
    };
    run(&s6);
}

/* ---- BDAT, parameters, limits ------------------------------------------- */

static void test_bdat_pipelined_and_not(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 2,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    /* pipelined: MAIL and RCPTs in one batch (no DATA), then the chunks
     * without waiting; bare LF becomes CRLF, a leading dot is not stuffed */
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .body = ".a\nbc\r\nd\re",
        .chunk = 6,
        .turns = {GREET, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
                  "250 ok\r\n250 ok\r\n550 no\r\n", "250 ok\r\n250 ok 2\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\n"
                    "BDAT 6\r\n.a\r\nbc"
                    "BDAT 6 LAST\r\n\r\nd\r\ne"
                    "QUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nRCPT 1 550 PERM\nSEND_BODY\n"
                       "DONE SENT BDAT 250 OK acc=1\nREADY\n",
    };
    run(&s);
    /* not pipelined: each chunk waits for its 250; a refused chunk ends it */
    script s2 = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "0123456789",
        .chunk = 4,
        .turns = {GREET, "250-mx.test\r\n250 CHUNKING\r\n", "250 ok\r\n", "250 ok\r\n",
                  "250 ok\r\n", "250 chunk\r\n", "552 5.3.4 too big\r\n", "250 reset\r\n",
                  "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\n"
                    "BDAT 4\r\n0123BDAT 4\r\n4567RSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nRCPT 1 250 OK\nSEND_BODY\nSEND_BODY\n"
                       "DONE REFUSED BDAT 552 PERM acc=2\nREADY\n",
    };
    run(&s2);
    /* an empty body: BDAT 0 LAST */
    script s3 = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "",
        .turns = {GREET, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
                  "250 ok\r\n250 ok\r\n250 ok\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\n"
                    "BDAT 0 LAST\r\nQUIT\r\n",
    };
    run(&s3);
    /* no_chunking: DATA even when CHUNKING is offered */
    script s4 = {
        .cfg = {.no_chunking = 1},
        .msgs = &m,
        .nmsgs = 1,
        .body = "a\nb",
        .turns = {GREET, "250-mx.test\r\n250 CHUNKING\r\n", "250 ok\r\n", "250 ok\r\n",
                  "250 ok\r\n", "354 go\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\nDATA\r\n"
                    "a\r\nb\r\n.\r\nQUIT\r\n",
    };
    run(&s4);
}

static void test_dot_stuffing_across_chunks(void **state)
{
    (void)state;
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    /* chunks of one byte: a dot after a line end, a CR split from its LF,
     * and the smuggling sequence "\n.\r\n" all come out as stuffed CRLF text */
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "a\r\n.b\n.\r\n..\rc\r",
        .chunk = 1,
        .turns = {GREET, EHLO_PLAIN, "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n",
                  "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<s@example.org>\r\n"
                    "RCPT TO:<r0@example.test>\r\nDATA\r\n"
                    "a\r\n..b\r\n..\r\n...\r\nc\r\n.\r\nQUIT\r\n",
    };
    run(&s);
}

static void test_esmtp_and_dsn_parameters(void **state)
{
    (void)state;
    static const sk_cc_rcpt r[] = {
        {"b@example.test", SK_CC_NOTIFY_SUCCESS | SK_CC_NOTIFY_FAILURE, "rfc822;b=c@example.test"},
        {"c@example.test", SK_CC_NOTIFY_NEVER, NULL},
        {"d@example.test", SK_CC_NOTIFY_DELAY, "bogus-no-semicolon"},
    };
    static const sk_cc_message m = {"a@example.org", r,        3,    500, 1, 1,
                                    SK_CC_RET_HDRS,  "id+1 x", NULL, 0};
    script s = {
        .msgs = &m,
        .nmsgs = 1,
        .body = "x\r\n",
        .turns = {GREET,
                  "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
                  "250-SMTPUTF8\r\n250 DSN\r\n",
                  "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "250 ok\r\n",
                  "221 bye\r\n"},
        .want_out =
            "EHLO localhost\r\n"
            "MAIL FROM:<a@example.org> SIZE=500 BODY=8BITMIME SMTPUTF8 RET=HDRS "
            "ENVID=id+2B1+20x\r\n"
            "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+3Dc@example.test"
            "\r\n"
            "RCPT TO:<c@example.test> NOTIFY=NEVER\r\n"
            "RCPT TO:<d@example.test> NOTIFY=DELAY\r\n"
            "DATA\r\nx\r\n.\r\nQUIT\r\n",
    };
    run(&s);
    /* without DSN offered, no DSN parameter goes out */
    static const sk_cc_message m2 = {"a@example.org", r, 1, 0, 0, 0, SK_CC_RET_FULL, "id", NULL, 0};
    script s2 = {
        .msgs = &m2,
        .nmsgs = 1,
        .turns = {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n354 go\r\n", "250 ok\r\n", "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                    "DATA\r\n.\r\nQUIT\r\n",
    };
    run(&s2);
}

static void test_local_refusals(void **state)
{
    (void)state;
    static const sk_cc_rcpt bad_rcpt[] = {{"b@example.test\r\nRSET", 0, NULL}};
    static const sk_cc_message m[] = {
        {"a@example.org", one_rcpt, 1, 1001, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
        {"a@example.org", one_rcpt, 1, 10, 0, 1, SK_CC_RET_NONE, NULL, NULL, 0},
        {"a@example.org", bad_rcpt, 1, 10, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
    };
    script s = {
        .msgs = m,
        .nmsgs = 3,
        .turns = {GREET, EHLO_PIPE, "221 bye\r\n"},
        .want_out = "EHLO localhost\r\nQUIT\r\n",
        .want_events = "READY\nDONE LOCAL IDLE 0 PERM acc=0 message of 1001 octets is over the "
                       "server's limit of 1000\nREADY\n"
                       "DONE LOCAL IDLE 0 PERM acc=0 the message needs SMTPUTF8 and the server "
                       "does not offer it\nREADY\n"
                       "DONE LOCAL IDLE 0 PERM acc=0 an address or DSN parameter holds a "
                       "control character\nREADY\n",
    };
    run(&s);
}

static void test_after_ehlo_envelope_only_extra_params(void **state)
{
    (void)state;
    /* a connection whose EHLO someone else did: READY at once, the given
     * capabilities apply (PIPELINING: one batch, without DATA since only
     * the envelope is asked for), then RSET */
    sk_caps caps;
    sk_caps_clear(&caps);
    caps.esmtp = caps.pipelining = 1;
    static const sk_cc_message m = {
        "s@example.org", five_rcpts, 2, 0, 0, 0, SK_CC_RET_NONE, NULL, "BODY=8BITMIME X-FOO=1", 1};
    script s = {
        .cfg = {.after_ehlo = &caps},
        .msgs = &m,
        .nmsgs = 1,
        .turns = {"250 ok\r\n550 no\r\n250 ok\r\n", "250 reset\r\n", "221 bye\r\n"},
        .want_out = "MAIL FROM:<s@example.org> BODY=8BITMIME X-FOO=1\r\n"
                    "RCPT TO:<r0@example.test>\r\nRCPT TO:<r1@example.test>\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 550 PERM\nRCPT 1 250 OK\nDONE ENVELOPE RCPT 0 OK acc=1\n"
                       "READY\n",
    };
    run(&s);
    /* one at a time, MAIL refused: no RCPT at all */
    caps.pipelining = 0;
    script s2 = {
        .cfg = {.after_ehlo = &caps},
        .msgs = &m,
        .nmsgs = 1,
        .turns = {"553 5.7.1 not you\r\n", "250 reset\r\n", "221 bye\r\n"},
        .want_out = "MAIL FROM:<s@example.org> BODY=8BITMIME X-FOO=1\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nDONE REFUSED MAIL 553 PERM acc=0\nREADY\n",
    };
    run(&s2);
}

static void test_timeouts_per_phase(void **state)
{
    (void)state;
    sk_client_core_config cfg = {0};
    sk_client_core *c = sk_client_core_new(&cfg);
    sk_cc_wait w, w2;
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_GREETING);
    assert_int_equal(w.ms, 5 * 60 * 1000);
    /* a trickling reply does not start a new wait */
    sk_client_core_feed(c, "22", 2);
    sk_client_core_wait(c, &w2);
    assert_int_equal(w2.seq, w.seq);
    sk_client_core_feed(c, "0 hi\r\n", 6);
    sk_client_core_wait(c, &w2);
    assert_int_equal(w2.phase, SK_CC_PHASE_EHLO);
    assert_true(w2.seq != w.seq);
    sk_client_core_feed(c, EHLO_PLAIN, strlen(EHLO_PLAIN));
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_IDLE);
    assert_int_equal(w.ms, -1);
    static const sk_cc_message m = {"s@example.org", five_rcpts, 1,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    sk_cc_event ev;
    while (sk_client_core_next_event(c, &ev))
        ;
    assert_int_equal(sk_client_core_submit(c, &m), 0);
    assert_int_equal(sk_client_core_submit(c, &m), -1); /* one at a time */
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_MAIL);
    assert_int_equal(w.ms, 5 * 60 * 1000);
    sk_client_core_feed(c, "250 ok\r\n", 8);
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_RCPT);
    sk_client_core_feed(c, "250 ok\r\n", 8);
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_DATA);
    assert_int_equal(w.ms, 2 * 60 * 1000);
    sk_client_core_feed(c, "354 go\r\n", 8);
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_BODY);
    assert_int_equal(w.ms, 3 * 60 * 1000);
    assert_int_equal(sk_client_core_body(c, "abc", 3, 0), 0);
    sk_client_core_wait(c, &w2);
    assert_int_equal(w2.phase, SK_CC_PHASE_BODY);
    assert_true(w2.seq != w.seq); /* each block restarts the timer */
    assert_int_equal(sk_client_core_body(c, "", 0, 1), 0);
    assert_int_equal(sk_client_core_body(c, "x", 1, 1), -1); /* not wanted any more */
    sk_client_core_wait(c, &w);
    assert_int_equal(w.phase, SK_CC_PHASE_DATA_END);
    assert_int_equal(w.ms, 10 * 60 * 1000);
    sk_client_core_timeout(c);
    while (sk_client_core_next_event(c, &ev) && ev.type != SK_CC_EV_MESSAGE_DONE)
        ;
    assert_int_equal(ev.type, SK_CC_EV_MESSAGE_DONE);
    assert_int_equal(ev.status, SK_CC_MSG_ABORTED);
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_int_equal(ev.type, SK_CC_EV_FAILED);
    assert_int_equal(ev.kind, SK_CLIENT_ERR_TIMEOUT);
    assert_string_equal(ev.text, "no reply to the message data within 600 s");
    assert_int_equal(sk_client_core_wants(c), SK_CC_WANT_CLOSE);
    sk_client_core_free(c);

    /* configured values are reported as they are */
    sk_client_core_config cfg2 = {.timeouts = {.greeting = 1000}};
    c = sk_client_core_new(&cfg2);
    sk_client_core_wait(c, &w);
    assert_int_equal(w.ms, 1000);
    sk_client_core_timeout(c);
    assert_int_equal(sk_client_core_next_event(c, &ev), 1);
    assert_string_equal(ev.text, "no reply to the greeting within 1 s");
    assert_int_equal(ev.phase, SK_CC_PHASE_GREETING);
    sk_client_core_free(c);
}

static void test_verdicts(void **state)
{
    (void)state;
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_RCPT, 250), SK_CC_OK);
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_RCPT, 251), SK_CC_OK);
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_RCPT, 452), SK_CC_TEMP);
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_RCPT, 552), SK_CC_TEMP);
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_DATA_END, 552), SK_CC_PERM);
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_RCPT, 551), SK_CC_PERM);
    assert_int_equal(sk_cc_verdict_of(SK_CC_PHASE_RCPT, 571), SK_CC_PERM);
    assert_string_equal(sk_cc_phase_name(SK_CC_PHASE_GREETING), "CONNECT");
    assert_string_equal(sk_cc_phase_name(SK_CC_PHASE_DATA_END), "DATA-END");
}

/* ---- LMTP (RFC 2033) --------------------------------------------------- */

#define LHLO_PIPE                                                                                  \
    "250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 "           \
    "8BITMIME\r\n"

static const sk_cc_rcpt four_rcpts[] = {
    {"u0@example.test", 0, NULL},
    {"u1@example.test", 0, NULL},
    {"u2@example.test", 0, NULL},
    {"u3@example.test", 0, NULL},
};

static void test_lmtp_per_recipient_replies_after_data(void **state)
{
    (void)state;
    /* u1 is refused at RCPT; the three others are answered after the dot,
     * in RCPT order, by their own replies; CHUNKING is offered but LMTP
     * sends DATA; RSET between messages proves a pooled connection alive. */
    static const sk_cc_message m[] = {
        {"s@example.org", four_rcpts, 4, 0, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
        {"s@example.org", four_rcpts, 1, 0, 0, 0, SK_CC_RET_NONE, NULL, NULL, 0},
    };
    script s = {
        .cfg = {.helo = "mx.example.org", .lmtp = 1, .rset_between = 1},
        .msgs = m,
        .nmsgs = 2,
        .body = "Subject: x\n\n.dot\n",
        .turns = {"220 lmtp.test LMTP ready\r\n", LHLO_PIPE,
                  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 <u1@example.test> User doesn't "
                  "exist\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n",
                  "250 2.0.0 <u0@example.test> Saved\r\n452 4.2.2 <u2@example.test> Quota "
                  "exceeded\r\n",
                  "552 5.2.2 <u3@example.test> Mailbox full\r\n", "250 2.0.0 ok\r\n",
                  "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n",
                  "250 2.0.0 <u0@example.test> Saved\r\n", "250 2.0.0 ok\r\n", "221 bye\r\n"},
        .want_out = "LHLO mx.example.org\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<u0@example.test>\r\n"
                    "RCPT TO:<u1@example.test>\r\nRCPT TO:<u2@example.test>\r\n"
                    "RCPT TO:<u3@example.test>\r\nDATA\r\n"
                    "Subject: x\r\n\r\n..dot\r\n.\r\nRSET\r\n"
                    "MAIL FROM:<s@example.org>\r\nRCPT TO:<u0@example.test>\r\nDATA\r\n"
                    "Subject: x\r\n\r\n..dot\r\n.\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nRCPT 1 550 PERM\nRCPT 2 250 OK\nRCPT 3 250 OK\n"
                       "SEND_BODY\nRCPT 0 250 OK\nRCPT 2 452 TEMP\nRCPT 3 552 PERM\n"
                       "DONE REFUSED DATA-END 452 TEMP acc=3\nREADY\n"
                       "RCPT 0 250 OK\nSEND_BODY\nRCPT 0 250 OK\n"
                       "DONE SENT DATA-END 250 OK acc=1\nREADY\n",
    };
    run(&s);
}

static void test_lmtp_lhlo_refused_and_421_between_replies(void **state)
{
    (void)state;
    /* a refused LHLO is not followed by HELO (LMTP has none) */
    script s = {
        .cfg = {.lmtp = 1},
        .turns = {"220 lmtp.test\r\n", "500 5.5.1 unknown command\r\n", "221 bye\r\n"},
        .want_out = "LHLO localhost\r\nQUIT\r\n",
        .want_events = "FAILED EHLO 500 refused: LHLO refused: 500 5.5.1 unknown command\n",
    };
    run(&s);
    /* the server goes away after answering one of two recipients: the
     * message is aborted, the first recipient's 250 was reported */
    static const sk_cc_message m = {"s@example.org", four_rcpts, 2,    0, 0, 0,
                                    SK_CC_RET_NONE,  NULL,       NULL, 0};
    script s2 = {
        .cfg = {.lmtp = 1},
        .msgs = &m,
        .nmsgs = 1,
        .body = "x\r\n",
        .turns = {"220 lmtp.test\r\n", "250-lmtp.test\r\n250 PIPELINING\r\n",
                  "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
                  "250 2.0.0 saved\r\n421 4.3.2 shutting down\r\n"},
        .want_out = "LHLO localhost\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u0@example.test>\r\n"
                    "RCPT TO:<u1@example.test>\r\nDATA\r\nx\r\n.\r\n",
        .want_events = "READY\nRCPT 0 250 OK\nRCPT 1 250 OK\nSEND_BODY\nRCPT 0 250 OK\n"
                       "DONE ABORTED DATA-END 421 TEMP acc=2 the message data answered 421: 421 "
                       "4.3.2 shutting down\n"
                       "FAILED DATA-END 421 closed: the message data answered 421: 421 4.3.2 "
                       "shutting down\n",
    };
    run(&s2);
    /* every recipient refused: DATA (pipelined) gets 503, no data is sent */
    script s3 = {
        .cfg = {.lmtp = 1},
        .msgs = &m,
        .nmsgs = 1,
        .body = "x\r\n",
        .turns = {"220 lmtp.test\r\n", "250-lmtp.test\r\n250 PIPELINING\r\n",
                  "250 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n503 5.5.1 No valid recipients\r\n",
                  "250 ok\r\n", "221 bye\r\n"},
        .want_out = "LHLO localhost\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u0@example.test>\r\n"
                    "RCPT TO:<u1@example.test>\r\nDATA\r\nRSET\r\nQUIT\r\n",
        .want_events = "READY\nRCPT 0 550 PERM\nRCPT 1 450 TEMP\n"
                       "DONE NO_RECIPIENTS RCPT 0 TEMP acc=0\nREADY\n",
    };
    run(&s3);
    /* a 354 without any accepted recipient breaks RFC 2033 4.2: fail */
    script s4 = {
        .cfg = {.lmtp = 1},
        .msgs = &m,
        .nmsgs = 1,
        .body = "x\r\n",
        .turns = {"220 lmtp.test\r\n", "250-lmtp.test\r\n250 PIPELINING\r\n",
                  "250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n354 go\r\n"},
        .want_out = "LHLO localhost\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u0@example.test>\r\n"
                    "RCPT TO:<u1@example.test>\r\nDATA\r\n",
        .want_events = "READY\nRCPT 0 550 PERM\nRCPT 1 550 PERM\n"
                       "DONE ABORTED DATA 354 TEMP acc=0 the LMTP server took DATA without a "
                       "recipient\n"
                       "FAILED DATA 354 protocol: the LMTP server took DATA without a recipient\n",
    };
    run(&s4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_message_one_at_a_time),
        cmocka_unit_test(test_ehlo_refused_falls_back_to_helo),
        cmocka_unit_test(test_greeting_554_quits_421_closes),
        cmocka_unit_test(test_pipelined_batch_per_recipient_replies),
        cmocka_unit_test(test_one_at_a_time_without_pipelining),
        cmocka_unit_test(test_all_recipients_refused_then_rset_next_message),
        cmocka_unit_test(test_rset_between_messages),
        cmocka_unit_test(test_mail_refused_pipelined_and_not),
        cmocka_unit_test(test_data_and_end_of_data_refused),
        cmocka_unit_test(test_421_mid_transaction_closes),
        cmocka_unit_test(test_multiline_replies),
        cmocka_unit_test(test_malformed_replies),
        cmocka_unit_test(test_long_but_bounded_lines_are_read),
        cmocka_unit_test(test_connection_lost_and_partial_reply),
        cmocka_unit_test(test_starttls_flow),
        cmocka_unit_test(test_implicit_tls_and_caps_forgotten),
        cmocka_unit_test(test_auth_plain_and_login),
        cmocka_unit_test(test_bdat_pipelined_and_not),
        cmocka_unit_test(test_dot_stuffing_across_chunks),
        cmocka_unit_test(test_esmtp_and_dsn_parameters),
        cmocka_unit_test(test_local_refusals),
        cmocka_unit_test(test_after_ehlo_envelope_only_extra_params),
        cmocka_unit_test(test_timeouts_per_phase),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_lmtp_per_recipient_replies_after_data),
        cmocka_unit_test(test_lmtp_lhlo_refused_and_421_between_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
