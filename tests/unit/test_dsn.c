/*
 * test_dsn.c - the RFC 3464 DSN builder (dsn.h): structure, per-recipient
 * fields, RET=HDRS/FULL with its cap, the null-sender refusal, hostile
 * input (CR/LF in replies, addresses, ENVID), line lengths, the boundary.
 *
 * With SK_DSN_SAMPLES=DIR set, it also writes each sample DSN to
 * DIR/NAME.eml with DIR/NAME.json describing what it should hold, for
 * tests/e2e/delivery/test_dsn_format.py to parse with Python's email
 * package.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/dsn.h"

static const char ORIGINAL[] = "Received: from client.example by mx.example.test\r\n"
                               "From: Carol <carol@example.test>\r\n"
                               "To: bob@remote.example, dave@remote.example\r\n"
                               "Subject: quarterly figures\r\n"
                               "Message-ID: <orig.1@example.test>\r\n"
                               "\r\n"
                               "The body line one.\r\n"
                               "SECRET body line two.\r\n";

static sk_dsn_input base_input(const sk_dsn_rcpt *r, size_t n)
{
    sk_dsn_input in;
    memset(&in, 0, sizeof in);
    in.reporting_mta = "mx.example.test";
    in.sender = "carol@example.test";
    in.envid = "QQ314159";
    in.arrival = 1764660000;
    in.now = 1764663600;
    in.unique = "0001ABCD";
    in.rcpts = r;
    in.nrcpts = n;
    in.message = ORIGINAL;
    in.message_len = sizeof ORIGINAL - 1;
    in.ret = SK_DSN_RET_HDRS;
    in.full_max = 1 << 20;
    return in;
}

/* Every line ends in CRLF, none is longer than 998 octets, no bare CR/LF,
 * no NUL. */
static void assert_lines_ok(const sk_buf *b)
{
    size_t col = 0;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        assert_int_not_equal(c, '\0');
        if (c == '\r') {
            assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
            i++;
            col = 0;
            continue;
        }
        assert_int_not_equal(c, '\n'); /* a LF not after CR */
        col++;
        if (col > 998)
            fail_msg("line longer than 998 octets at offset %zu", i);
    }
    assert_int_equal(col, 0); /* ends with CRLF */
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The header section of the DSN itself. */
static char *top_headers(const sk_buf *b)
{
    const char *end = strstr(b->data, "\r\n\r\n");
    assert_non_null(end);
    return strndup(b->data, (size_t)(end - b->data) + 2);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* With SK_DSN_SAMPLES set: NAME.eml and NAME.json (the inputs that the
 * parsed message must reflect). */
static void save_sample(const char *name, const sk_dsn_input *in, const sk_buf *b)
{
    const char *dir = getenv("SK_DSN_SAMPLES");
    if (!dir || !*dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.eml", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"sender\": ");
    json_str(f, in->sender);
    fprintf(f, ", \"reporting_mta\": ");
    json_str(f, in->reporting_mta);
    fprintf(f, ", \"envid\": ");
    json_str(f, in->envid);
    fprintf(f, ", \"ret\": \"%s\", \"original_subject\": \"quarterly figures\", \"rcpts\": [",
            in->ret == SK_DSN_RET_FULL && in->message_len <= in->full_max ? "full" : "hdrs");
    for (size_t i = 0; i < in->nrcpts; i++) {
        const sk_dsn_rcpt *r = &in->rcpts[i];
        fprintf(f, "%s{\"final_recipient\": ", i ? ", " : "");
        json_str(f, r->final_recipient);
        fprintf(f, ", \"original_recipient\": ");
        json_str(f, r->original_recipient);
        fprintf(f, ", \"action\": \"%s\", \"status\": ", sk_dsn_action_name(r->action));
        json_str(f, r->status);
        fprintf(f, ", \"remote_mta\": ");
        json_str(f, r->remote_mta);
        fprintf(f, ", \"reply\": ");
        json_str(f, r->reply);
        fprintf(f, ", \"diagnostic\": ");
        json_str(f, r->diagnostic);
        fprintf(f, ", \"will_retry\": %s}", r->will_retry_until ? "true" : "false");
    }
    fprintf(f, "]}\n");
    fclose(f);
}

static void test_bounce_two_recipients(void **state)
{
    (void)state;
    sk_dsn_rcpt r[2] = {
        {.final_recipient = "bob@remote.example",
         .original_recipient = "rfc822;Bob@Remote.Example",
         .action = SK_DSN_FAILED,
         .status = "5.1.1",
         .remote_mta = "mx1.remote.example",
         .reply = "550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown",
         .last_attempt = 1764663500},
        {.final_recipient = "dave@remote.example",
         .action = SK_DSN_FAILED,
         .status = "5.2.2",
         .remote_mta = "mx2.remote.example",
         .reply = "552-5.2.2 The email account that you tried to reach is over quota.\r\n"
                  "552 5.2.2 Please direct the recipient to the help page.",
         .last_attempt = 1764663501},
    };
    sk_dsn_input in = base_input(r, 2);
    sk_buf b;
    sk_buf_init(&b, 0);
    int eight = -1;
    assert_int_equal(sk_dsn_build(&in, &b, &eight), SK_DSN_OK);
    assert_int_equal(eight, 0);
    assert_lines_ok(&b);
    char *h = top_headers(&b);
    assert_non_null(strstr(h, "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"));
    assert_non_null(strstr(h, "To: <carol@example.test>\r\n"));
    assert_non_null(strstr(h, "Subject: Undelivered Mail Returned to Sender\r\n"));
    assert_non_null(strstr(h, "Auto-Submitted: auto-replied\r\n"));
    assert_non_null(strstr(h, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(h, "Message-ID: <0001ABCD.dsn@mx.example.test>\r\n"));
    assert_non_null(strstr(h, "Date: "));
    assert_non_null(strstr(h, "Content-Type: multipart/report; report-type=delivery-status;"));
    free(h);
    assert_non_null(strstr(b.data, "Reporting-MTA: dns; mx.example.test\r\n"));
    assert_non_null(strstr(b.data, "Original-Envelope-Id: QQ314159\r\n"));
    assert_non_null(strstr(b.data, "Arrival-Date: "));
    assert_non_null(strstr(b.data, "Original-Recipient: rfc822; Bob@Remote.Example\r\n"));
    assert_non_null(strstr(b.data, "Final-Recipient: rfc822; bob@remote.example\r\n"
                                   "Action: failed\r\nStatus: 5.1.1\r\n"
                                   "Remote-MTA: dns; mx1.remote.example\r\n"
                                   "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.example>:"));
    assert_non_null(strstr(b.data, "Final-Recipient: rfc822; dave@remote.example\r\n"
                                   "Action: failed\r\nStatus: 5.2.2\r\n"));
    /* a multi-line reply is one folded field */
    assert_non_null(strstr(b.data, "Diagnostic-Code: smtp; 552-5.2.2 The email account"));
    assert_non_null(strstr(b.data, "552 5.2.2 Please direct"));
    assert_int_equal(count(b.data, "Last-Attempt-Date: "), 2);
    /* plain words, with the registry's meaning of the reply */
    assert_non_null(strstr(b.data, "<bob@remote.example>: delivery failed"));
    assert_non_null(strstr(b.data, "What 550 means: "));
    assert_non_null(strstr(b.data, "Bad destination mailbox address"));
    /* RET=HDRS: the header section, never the body */
    assert_non_null(strstr(b.data, "Content-Type: text/rfc822-headers\r\n"));
    assert_non_null(strstr(b.data, "Subject: quarterly figures\r\n"));
    assert_null(strstr(b.data, "SECRET"));
    /* three parts and a closing boundary */
    assert_int_equal(count(b.data, "\r\n--=_smtpkit_0001ABCD_0\r\n"), 3);
    assert_int_equal(count(b.data, "\r\n--=_smtpkit_0001ABCD_0--\r\n"), 1);
    save_sample("bounce_two_recipients", &in, &b);
    sk_buf_free(&b);
}

static void test_delay_warning(void **state)
{
    (void)state;
    sk_dsn_rcpt r = {.final_recipient = "bob@remote.example",
                     .action = SK_DSN_DELAYED,
                     .status = "4.4.1",
                     .diagnostic = "connection refused by every MX host",
                     .last_attempt = 1764663500,
                     .will_retry_until = 1764660000 + 432000};
    sk_dsn_input in = base_input(&r, 1);
    in.envid = NULL;
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_OK);
    assert_lines_ok(&b);
    assert_non_null(strstr(b.data, "Subject: Delayed Mail (still being retried)\r\n"));
    assert_non_null(strstr(b.data, "Action: delayed\r\nStatus: 4.4.1\r\n"));
    assert_non_null(strstr(b.data, "Will-Retry-Until: "));
    assert_non_null(strstr(b.data, "Diagnostic-Code: X-smtpkit; connection refused"));
    assert_null(strstr(b.data, "Remote-MTA"));
    assert_null(strstr(b.data, "Original-Envelope-Id"));
    assert_non_null(strstr(b.data, "not been delivered yet"));
    save_sample("delay_warning", &in, &b);
    sk_buf_free(&b);
}

static void test_ret_full_and_cap(void **state)
{
    (void)state;
    sk_dsn_rcpt r = {.final_recipient = "bob@remote.example",
                     .action = SK_DSN_FAILED,
                     .status = "5.7.1",
                     .remote_mta = "mx.remote.example",
                     .reply = "554 5.7.1 Message rejected as spam"};
    sk_dsn_input in = base_input(&r, 1);
    in.ret = SK_DSN_RET_FULL;
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_OK);
    assert_lines_ok(&b);
    assert_non_null(strstr(b.data, "Content-Type: message/rfc822\r\n"));
    assert_non_null(strstr(b.data, "SECRET body line two.\r\n"));
    save_sample("ret_full", &in, &b);
    sk_buf_clear(&b);
    /* over the cap: headers only */
    in.full_max = 20;
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_OK);
    assert_non_null(strstr(b.data, "Content-Type: text/rfc822-headers\r\n"));
    assert_null(strstr(b.data, "SECRET"));
    sk_buf_clear(&b);
    /* a body line longer than 998 octets cannot be returned as it is */
    char *big = malloc(5000);
    size_t hl = strlen("Subject: quarterly figures\r\n\r\n");
    memcpy(big, "Subject: quarterly figures\r\n\r\n", hl);
    memset(big + hl, 'z', 3000);
    memcpy(big + hl + 3000, "\r\n", 2);
    in.message = big;
    in.message_len = hl + 3002;
    in.full_max = 1 << 20;
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_OK);
    assert_lines_ok(&b);
    assert_non_null(strstr(b.data, "Content-Type: text/rfc822-headers\r\n"));
    assert_null(strstr(b.data, "zzzz"));
    free(big);
    sk_buf_free(&b);
}

static void test_null_sender_never_bounced(void **state)
{
    (void)state;
    sk_dsn_rcpt r = {
        .final_recipient = "bob@remote.example", .action = SK_DSN_FAILED, .status = "5.1.1"};
    sk_dsn_input in = base_input(&r, 1);
    in.sender = "";
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_NULL_SENDER);
    assert_int_equal(b.len, 0);
    sk_buf_free(&b);
}

static void test_invalid_input(void **state)
{
    (void)state;
    static const char *const bad_status[] = {"",      "5.1",      "6.1.1", "5.1.1.1", "5..1",
                                             "5.1.x", "5.1000.1", "x",     "5.1.1 ",  NULL};
    sk_buf b;
    sk_buf_init(&b, 0);
    sk_buf_append_str(&b, "kept");
    for (size_t i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
        sk_dsn_rcpt r = {.final_recipient = "bob@remote.example",
                         .action = SK_DSN_FAILED,
                         .status = bad_status[i]};
        sk_dsn_input in = base_input(&r, 1);
        assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_INVALID);
    }
    sk_dsn_rcpt r = {.final_recipient = "", .action = SK_DSN_FAILED, .status = "5.1.1"};
    sk_dsn_input in = base_input(&r, 1);
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_INVALID);
    in = base_input(&r, 0);
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_INVALID);
    assert_string_equal(b.data, "kept"); /* nothing appended on error */
    /* a buffer too small: nothing of the report stays */
    sk_buf small;
    sk_buf_init(&small, 200);
    sk_buf_append_str(&small, "kept");
    r.final_recipient = "bob@remote.example";
    in = base_input(&r, 1);
    assert_int_equal(sk_dsn_build(&in, &small, NULL), SK_DSN_NOMEM);
    assert_int_equal(small.len, 4);
    sk_buf_free(&small);
    sk_buf_free(&b);
}

static void test_hostile_input(void **state)
{
    (void)state;
    /* CR/LF in a reply, an address, ENVID and the remote MTA name must not
     * add a header field, a recipient block or a MIME part */
    sk_dsn_rcpt r = {
        .final_recipient = "bob@remote.example\r\nBcc: victim@example.org",
        .original_recipient = "rfc822;x\r\n\r\n--=_smtpkit_0001ABCD_0\r\nX-Injected: 1",
        .action = SK_DSN_FAILED,
        .status = "5.0.0",
        .remote_mta = "mx.remote.example\r\nAction: delivered",
        .reply = "550 bad\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; forged@example\n\x01\x7f"
                 "end",
    };
    sk_dsn_input in = base_input(&r, 1);
    in.envid = "ID\r\nSubject: forged";
    sk_buf b;
    sk_buf_init(&b, 0);
    /* a sender that is no address gets no report (and nothing is written) */
    static const char *const bad_senders[] = {"carol@example.test\r\nX-Evil: 1", "a b@c",
                                              "<carol@example.test>", "x\x7f@y"};
    for (size_t i = 0; i < sizeof bad_senders / sizeof bad_senders[0]; i++) {
        in.sender = bad_senders[i];
        assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_INVALID);
        assert_int_equal(b.len, 0);
    }
    in.sender = "carol@example.test";
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_OK);
    assert_lines_ok(&b);
    assert_null(strstr(b.data, "\r\nBcc:"));
    assert_null(strstr(b.data, "\r\nX-Injected"));
    assert_null(strstr(b.data, "\r\nSubject: forged"));
    assert_null(strstr(b.data, "\r\nStatus: 2.0.0"));
    assert_null(strstr(b.data, "\r\nAction: delivered"));
    assert_int_equal(count(b.data, "\r\nFinal-Recipient:"), 1);
    assert_int_equal(count(b.data, "\r\nAction: "), 1);
    /* the boundary text the attacker put in ORCPT forces another boundary */
    assert_null(strstr(b.data, "boundary=\"=_smtpkit_0001ABCD_0\""));
    assert_non_null(strstr(b.data, "boundary=\"=_smtpkit_0001ABCD_1\""));
    save_sample("hostile", &in, &b);
    sk_buf_free(&b);
}

static void test_long_reply_is_folded(void **state)
{
    (void)state;
    char reply[6000];
    size_t n = (size_t)snprintf(reply, sizeof reply, "550 5.7.1 ");
    for (int i = 0; i < 400; i++)
        n += (size_t)snprintf(reply + n, sizeof reply - n, "word%d ", i);
    memset(reply + n, 'Q', 2000); /* and one 2000-octet token */
    reply[n + 2000] = '\0';
    sk_dsn_rcpt r = {.final_recipient = "bob@remote.example",
                     .action = SK_DSN_FAILED,
                     .status = "5.7.1",
                     .remote_mta = "mx.remote.example",
                     .reply = reply};
    sk_dsn_input in = base_input(&r, 1);
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_dsn_build(&in, &b, NULL), SK_DSN_OK);
    assert_lines_ok(&b);
    /* folded lines of the field stay near 78 octets until the long token */
    const char *d = strstr(b.data, "Diagnostic-Code: smtp; 550 5.7.1 word0 word1");
    assert_non_null(d);
    const char *eol = strstr(d, "\r\n");
    assert_true(eol - d <= 78);
    assert_true(eol[2] == ' ');
    save_sample("long_reply", &in, &b);
    sk_buf_free(&b);
}

static void test_utf8_and_success(void **state)
{
    (void)state;
    sk_dsn_rcpt r[2] = {{.final_recipient = "jos\xc3\xa9@remote.example",
                         .action = SK_DSN_DELIVERED,
                         .status = "2.0.0",
                         .remote_mta = "mx.remote.example",
                         .reply = "250 2.0.0 Ok: queued as 4F2A"},
                        {.final_recipient = "list@remote.example",
                         .action = SK_DSN_RELAYED,
                         .status = "2.0.0",
                         .remote_mta = "mx.remote.example",
                         .reply = "250 2.1.5 Ok"}};
    sk_dsn_input in = base_input(r, 2);
    sk_buf b;
    sk_buf_init(&b, 0);
    int eight = 0;
    assert_int_equal(sk_dsn_build(&in, &b, &eight), SK_DSN_OK);
    assert_lines_ok(&b);
    assert_non_null(strstr(b.data, "Subject: Successful Mail Delivery Report\r\n"));
    /* the machine-readable part stays ASCII; the text part has the name */
    assert_non_null(strstr(b.data, "Final-Recipient: rfc822; jos+C3+A9@remote.example\r\n"));
    assert_non_null(strstr(b.data, "<jos\xc3\xa9@remote.example>: delivered."));
    assert_int_equal(eight, 1);
    assert_non_null(strstr(b.data, "Action: relayed\r\n"));
    sk_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounce_two_recipients),
        cmocka_unit_test(test_delay_warning),
        cmocka_unit_test(test_ret_full_and_cap),
        cmocka_unit_test(test_null_sender_never_bounced),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_long_reply_is_folded),
        cmocka_unit_test(test_utf8_and_success),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
