/*
 * test_client_conn.c - the client library against a scripted peer in a
 * child process over loopback TCP: replies split across reads (the
 * resumable parser), multi-line EHLO into capabilities, each reply matched
 * to its command (RFC 2920 order), HELO fallback on 502, a reply that never
 * ends (timeout), garbage, and a close in the middle of a reply; the mail
 * transaction (run by the client core): DATA with dot-stuffing and line
 * ends made CRLF, and a 421 in the middle of a pipelined batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smtpkit/client.h"

typedef struct step {
    const char *expect; /* command line the peer waits for (prefix), or NULL */
    const char *send;   /* bytes to send, in pieces split at '|' with a pause */
} step;

static int listen_any(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 1), 0);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return s;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The child: accept one connection and play the script. */
static void peer(int ls, const step *script, size_t n)
{
    int c = accept(ls, NULL, NULL);
    if (c < 0)
        _exit(1);
    char buf[4096];
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        if (script[i].expect) {
            while (!memchr(buf, '\n', have)) {
                ssize_t r = read(c, buf + have, sizeof buf - have);
                if (r <= 0)
                    _exit(2);
                have += (size_t)r;
            }
            if (strncmp(buf, script[i].expect, strlen(script[i].expect)))
                _exit(3);
            char *nl = memchr(buf, '\n', have);
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        const char *p = script[i].send;
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (write(c, p, len) != (ssize_t)len)
                _exit(4);
            if (!bar)
                break;
            pause_ms(30);
            p = bar + 1;
        }
    }
    pause_ms(1000); /* well past any timeout a test waits for */
    close(c);
    _exit(0);
}

static pid_t start_peer(const step *script, size_t n, int *port)
{
    int ls = listen_any(port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        peer(ls, script, n);
    }
    close(ls);
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct seen {
    char cmds[16][12];
    int codes[16];
    size_t n;
} seen;

static void on_reply(const sk_reply *r, const char *cmd, void *arg)
{
    seen *s = arg;
    if (s->n < 16) {
        snprintf(s->cmds[s->n], sizeof s->cmds[s->n], "%s", cmd);
        s->codes[s->n++] = r->code;
    }
}

static sk_client *client(seen *s, int timeout_ms)
{
    sk_client_opts o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = timeout_ms;
    o.on_reply = on_reply;
    o.on_reply_arg = s;
    return sk_client_new(&o);
}

static void test_split_replies_and_caps(void **state)
{
    (void)state;
    static const step script[] = {
        {NULL, "2|20 split.test ESMTP\r|\n"},
        {"EHLO", "250-split.test\r\n250-PIPE|LINING\r\n250-SIZE 2048\r\n25|0 AUTH PLAIN LOGIN\r\n"},
        {"MAIL", NULL},
        {"RCPT", NULL},
        {"RCPT", "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n"},
        {"RSET", "250 2.0.0 reset\r\n"},
        {"QUIT", "221 2.0.0 bye\r\n"},
    };
    int port;
    pid_t pid = start_peer(script, sizeof script / sizeof script[0], &port);
    seen s = {0};
    sk_client *c = client(&s, 5000);
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(sk_client_connect(c, "127.0.0.1", ps), 0);
    sk_reply r;
    assert_int_equal(sk_client_greeting(c, &r), 0);
    assert_int_equal(r.code, 220);
    assert_string_equal(r.lines[0], "split.test ESMTP");
    sk_reply_free(&r);
    assert_int_equal(sk_client_ehlo(c, "me.test", &r), 0);
    sk_reply_free(&r);
    const sk_caps *caps = sk_client_caps(c);
    assert_true(caps->esmtp && caps->pipelining);
    assert_int_equal(caps->size, 2048);
    assert_int_equal(caps->auth, SK_AUTH_PLAIN | SK_AUTH_LOGIN);

    const char *rcpts[] = {"a@x.test", "b@x.test"};
    sk_rcpt_result res[2];
    sk_txn t;
    memset(&t, 0, sizeof t);
    t.mail_from = "me@me.test";
    t.rcpts = rcpts;
    t.nrcpts = 2;
    t.results = res;
    t.no_data = 1;
    assert_int_equal(sk_client_transaction(c, &t), 0);
    assert_int_equal(t.mail_code, 250);
    assert_int_equal(res[0].code, 250);
    assert_int_equal(res[1].code, 550);
    assert_string_equal(res[1].text, "550 5.1.1 no");
    assert_int_equal(t.accepted, 1);
    sk_client_quit(c);
    assert_int_equal(sk_client_error(c), SK_CLIENT_OK);
    /* Replies matched to their commands, in order. */
    const char *want[] = {"CONNECT", "EHLO", "MAIL", "RCPT", "RCPT", "RSET", "QUIT"};
    assert_int_equal(s.n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(s.cmds[i], want[i]);
    /* The transcript holds each server line once, without CRLF. */
    const sk_transcript *tr = sk_client_transcript(c);
    size_t server_lines = 0;
    for (size_t i = 0; i < tr->n; i++)
        if (tr->v[i].dir == SK_DIR_SERVER) {
            server_lines++;
            assert_null(strchr(tr->v[i].line, '\r'));
        }
    assert_int_equal(server_lines, 1 + 4 + 3 + 1 + 1);
    sk_client_free(c);
    assert_int_equal(reap(pid), 0);
}

static void test_helo_fallback(void **state)
{
    (void)state;
    static const step script[] = {
        {NULL, "220 old.test\r\n"},
        {"EHLO", "502 5.5.1 what?\r\n"},
        {"HELO", "250 old.test\r\n"},
        {"QUIT", "221 bye\r\n"},
    };
    int port;
    pid_t pid = start_peer(script, 4, &port);
    seen s = {0};
    sk_client *c = client(&s, 5000);
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(sk_client_connect(c, "127.0.0.1", ps), 0);
    sk_reply r;
    assert_int_equal(sk_client_greeting(c, &r), 0);
    sk_reply_free(&r);
    assert_int_equal(sk_client_ehlo(c, "me.test", &r), 0);
    assert_int_equal(r.code, 250);
    sk_reply_free(&r);
    assert_false(sk_client_caps(c)->esmtp);
    sk_client_quit(c);
    sk_client_free(c);
    assert_int_equal(reap(pid), 0);
}

static sk_client *greeted(const step *script, size_t n, seen *s, pid_t *pid)
{
    int port;
    *pid = start_peer(script, n, &port);
    sk_client *c = client(s, 5000);
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(sk_client_connect(c, "127.0.0.1", ps), 0);
    sk_reply r;
    assert_int_equal(sk_client_greeting(c, &r), 0);
    sk_reply_free(&r);
    assert_int_equal(sk_client_ehlo(c, "me.test", &r), 0);
    sk_reply_free(&r);
    return c;
}

static void test_transaction_data_one_at_a_time(void **state)
{
    (void)state;
    /* the peer checks each line's start: the dot doubled, the bare LF and
     * the missing last line end made CRLF, then the lone dot */
    static const step script[] = {
        {NULL, "220 t\r\n"},
        {"EHLO", "250 t\r\n"},
        {"MAIL", "250 ok\r\n"},
        {"RCPT", "25|0 ok\r\n"},
        {"DATA", "354 go\r\n"},
        {"Subject: s\r\n", NULL},
        {"\r\n", NULL},
        {"..dot\r\n", NULL},
        {"bare\r\n", NULL},
        {"lf\r\n", NULL},
        {".\r\n", "250 2.0.0 q|ueued\r\n"},
        {"QUIT", "221 bye\r\n"},
    };
    seen s = {0};
    pid_t pid;
    sk_client *c = greeted(script, sizeof script / sizeof script[0], &s, &pid);
    const char *rcpts[] = {"a@x.test"};
    sk_rcpt_result res[1];
    sk_txn t;
    memset(&t, 0, sizeof t);
    t.mail_from = "me@me.test";
    t.rcpts = rcpts;
    t.nrcpts = 1;
    t.results = res;
    t.msg = "Subject: s\r\n\r\n.dot\r\nbare\nlf";
    t.msglen = strlen(t.msg);
    assert_int_equal(sk_client_transaction(c, &t), 0);
    assert_int_equal(t.mail_code, 250);
    assert_int_equal(res[0].code, 250);
    assert_int_equal(t.data_code, 354);
    assert_int_equal(t.final_code, 250);
    assert_string_equal(t.final_text, "250 2.0.0 queued");
    sk_client_quit(c);
    assert_int_equal(sk_client_error(c), SK_CLIENT_OK);
    const char *want[] = {"CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "DATA-END", "QUIT"};
    assert_int_equal(s.n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(s.cmds[i], want[i]);
    sk_client_free(c);
    assert_int_equal(reap(pid), 0);
}

static void test_transaction_421_mid_batch(void **state)
{
    (void)state;
    static const step script[] = {
        {NULL, "220 t\r\n"}, {"EHLO", "250-t\r\n250 PIPELINING\r\n"},        {"MAIL", NULL},
        {"RCPT", NULL},      {"DATA", "250 ok\r\n421 4.3.2 going down\r\n"},
    };
    seen s = {0};
    pid_t pid;
    sk_client *c = greeted(script, sizeof script / sizeof script[0], &s, &pid);
    const char *rcpts[] = {"a@x.test"};
    sk_rcpt_result res[1];
    sk_txn t;
    memset(&t, 0, sizeof t);
    t.mail_from = "me@me.test";
    t.rcpts = rcpts;
    t.nrcpts = 1;
    t.results = res;
    t.msg = "x\r\n";
    t.msglen = 3;
    /* the exchange is over, the 421 is in the results: the caller decides */
    assert_int_equal(sk_client_transaction(c, &t), 0);
    assert_int_equal(t.mail_code, 250);
    assert_int_equal(res[0].code, 421);
    assert_int_equal(t.accepted, 0);
    assert_int_equal(t.final_code, 0);
    sk_client_free(c);
    assert_int_equal(reap(pid), 0);
}

static void expect_failure(const char *greeting, int timeout_ms, sk_client_err want,
                           const char *needle)
{
    step script[] = {{NULL, greeting}};
    int port;
    pid_t pid = start_peer(script, 1, &port);
    seen s = {0};
    sk_client *c = client(&s, timeout_ms);
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(sk_client_connect(c, "127.0.0.1", ps), 0);
    sk_reply r;
    assert_int_equal(sk_client_greeting(c, &r), -1);
    assert_int_equal(sk_client_error(c), want);
    if (!strstr(sk_client_errmsg(c), needle))
        fail_msg("error \"%s\" lacks \"%s\"", sk_client_errmsg(c), needle);
    sk_client_free(c);
    reap(pid);
}

static void test_failures(void **state)
{
    (void)state;
    /* A line that never ends: the timeout, not a hang (the peer closes
     * 1 s after its last write, so the timeout must be shorter). */
    expect_failure("220 never ends", 200, SK_CLIENT_ERR_TIMEOUT, "no greeting within");
    expect_failure("HTTP/1.0 200 OK\r\n", 2000, SK_CLIENT_ERR_PROTOCOL, "does not speak SMTP");
    expect_failure("220-first\r\n221 second\r\n", 2000, SK_CLIENT_ERR_PROTOCOL,
                   "does not speak SMTP");
    expect_failure("220-one line|", 2000, SK_CLIENT_ERR_CLOSED, "in the middle of a reply");
    expect_failure("", 2000, SK_CLIENT_ERR_CLOSED, "before sending a greeting");
}

static void test_connect_refused(void **state)
{
    (void)state;
    int port;
    int ls = listen_any(&port);
    close(ls); /* nothing listens there now */
    sk_client *c = client(NULL, 2000);
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(sk_client_connect(c, "127.0.0.1", ps), -1);
    assert_int_equal(sk_client_error(c), SK_CLIENT_ERR_CONNECT);
    char want[64];
    snprintf(want, sizeof want, "could not connect to 127.0.0.1:%d: connection refused", port);
    assert_string_equal(sk_client_errmsg(c), want);
    sk_client_free(c);
}

static void test_refuses_line_breaks_in_commands(void **state)
{
    (void)state;
    sk_client *c = client(NULL, 1000);
    /* Not connected, but the check comes first: no CR/LF ever goes out. */
    assert_int_equal(sk_client_send_line(c, "MAIL FROM:<a@b>\r\nRCPT TO:<x@y>", NULL), -1);
    assert_int_equal(sk_client_error(c), SK_CLIENT_ERR_USAGE);
    sk_client_free(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_replies_and_caps),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_transaction_data_one_at_a_time),
        cmocka_unit_test(test_transaction_421_mid_batch),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_refuses_line_breaks_in_commands),
    };
    return cmocka_run_group_tests_name("client_conn", tests, NULL, NULL);
}
