/*
 * test_store_lmtp.c - the LMTP destination kind (RFC 2033) against a
 * scripted LMTP server on a Unix socket (a thread): the message goes out
 * in its RFC 822 form without our Return-Path, dot-stuffed; each recipient
 * gets the server's reply after the data; one temporary failure defers the
 * whole commit and removes the Maildir and queue copies (all or nothing);
 * only permanent failures refuse it; a server that is not there defers it
 * with no reply of its own; connections are reused with RSET.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "smtpkit/store.h"
#include "store_test_util.h"

/* ---- the scripted server -------------------------------------------------- */

typedef struct fake_lmtp {
    int lfd;
    pthread_t th;
    char path[PATH_MAX];
    pthread_mutex_t mu;
    int connections, rsets, messages;
    char body[4096]; /* the last message's data, as received */
    size_t bodylen;
} fake_lmtp;

/* The reply to RCPT and the one after the data, by the local part's start:
 * perm* 550 at RCPT, temp* 450 at RCPT, full* 452 after the data, bad* 552
 * after the data, anything else 250 twice. */
static const char *rcpt_reply(const char *a)
{
    if (!strncmp(a, "perm", 4))
        return "550 5.1.1 <perm> User doesn't exist";
    if (!strncmp(a, "temp", 4))
        return "450 4.2.1 <temp> try later";
    return "250 2.1.5 OK";
}

static const char *final_reply(const char *a)
{
    if (!strncmp(a, "full", 4))
        return "452 4.2.2 <full> Quota exceeded";
    if (!strncmp(a, "bad", 3))
        return "552 5.2.2 <bad> Mailbox full";
    return "250 2.0.0 <ok> Saved";
}

static int get_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r <= 0)
            return -1;
        buf[n++] = ch;
        if (ch == '\n')
            break;
    }
    buf[n] = '\0';
    return (int)n;
}

static void say(int fd, const char *s)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s\r\n", s);
    (void)!write(fd, line, (size_t)n);
}

static void serve_one(fake_lmtp *fl, int fd)
{
    say(fd, "220 fake LMTP");
    char line[1024], accepted[8][64];
    int nacc = 0;
    for (;;) {
        if (get_line(fd, line, sizeof line) < 0)
            return;
        if (!strncmp(line, "LHLO ", 5)) {
            say(fd, "250-fake\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME");
        } else if (!strncmp(line, "MAIL FROM:", 10)) {
            nacc = 0;
            say(fd, "250 2.1.0 OK");
        } else if (!strncmp(line, "RCPT TO:<", 9)) {
            const char *a = line + 9, *r = rcpt_reply(a);
            if (r[0] == '2' && nacc < 8)
                snprintf(accepted[nacc++], sizeof accepted[0], "%.*s", (int)strcspn(a, ">"), a);
            say(fd, r);
        } else if (!strncmp(line, "DATA", 4)) {
            if (nacc == 0) {
                say(fd, "503 5.5.1 No valid recipients");
                continue;
            }
            say(fd, "354 OK");
            pthread_mutex_lock(&fl->mu);
            fl->bodylen = 0;
            pthread_mutex_unlock(&fl->mu);
            for (;;) {
                int n = get_line(fd, line, sizeof line);
                if (n < 0)
                    return;
                if (!strcmp(line, ".\r\n"))
                    break;
                pthread_mutex_lock(&fl->mu);
                if (fl->bodylen + (size_t)n < sizeof fl->body) {
                    memcpy(fl->body + fl->bodylen, line, (size_t)n);
                    fl->bodylen += (size_t)n;
                }
                pthread_mutex_unlock(&fl->mu);
            }
            pthread_mutex_lock(&fl->mu);
            fl->messages++;
            pthread_mutex_unlock(&fl->mu);
            for (int i = 0; i < nacc; i++) {
                if (!strncmp(accepted[i], "drop", 4))
                    return; /* gone before answering */
                say(fd, final_reply(accepted[i]));
            }
        } else if (!strncmp(line, "RSET", 4)) {
            pthread_mutex_lock(&fl->mu);
            fl->rsets++;
            pthread_mutex_unlock(&fl->mu);
            say(fd, "250 2.0.0 OK");
        } else if (!strncmp(line, "QUIT", 4)) {
            say(fd, "221 2.0.0 Bye");
            return;
        } else {
            say(fd, "500 5.5.2 what");
        }
    }
}

static void *fake_main(void *arg)
{
    fake_lmtp *fl = arg;
    for (;;) {
        int fd = accept(fl->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_mutex_lock(&fl->mu);
        fl->connections++;
        pthread_mutex_unlock(&fl->mu);
        serve_one(fl, fd);
        close(fd);
    }
}

static void fake_start(fake_lmtp *fl, const char *dir)
{
    memset(fl, 0, sizeof *fl);
    pthread_mutex_init(&fl->mu, NULL);
    tu_path(fl->path, "%s/lmtp.sock", dir);
    fl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fl->lfd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    assert_true(strlen(fl->path) < sizeof sun.sun_path);
    memcpy(sun.sun_path, fl->path, strlen(fl->path) + 1);
    assert_int_equal(bind(fl->lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(fl->lfd, 8), 0);
    assert_int_equal(pthread_create(&fl->th, NULL, fake_main, fl), 0);
}

static void fake_stop(fake_lmtp *fl)
{
    shutdown(fl->lfd, SHUT_RDWR);
    close(fl->lfd);
    pthread_cancel(fl->th);
    pthread_join(fl->th, NULL);
    pthread_mutex_destroy(&fl->mu);
}

/* ---- fixture ---------------------------------------------------------------- */

struct fx {
    char *dir;
    char root[PATH_MAX], queue[PATH_MAX], mb[PATH_MAX];
    sk_store *st;
    fake_lmtp fl;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    assert_non_null(f->dir);
    tu_path(f->root, "%s/spool", f->dir);
    tu_path(f->queue, "%s/queue", f->dir);
    tu_path(f->mb, "%s/mb", f->dir);
    char err[256], target[PATH_MAX + 8];
    f->st = sk_store_open(f->root, f->queue, err, sizeof err);
    assert_non_null(f->st);
    fake_start(&f->fl, f->dir);
    snprintf(target, sizeof target, "unix:%s", f->fl.path);
    assert_int_equal(sk_store_set_lmtp(f->st, target, 2, "mx.test", err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sk_store_close(f->st);
    fake_stop(&f->fl);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static const char MSG[] = "Return-Path: <s@a.test>\r\nReceived: from x by y; now\r\n"
                          "Subject: t\r\n\r\n.dot\r\nend\r\n";

static sk_store_result commit(struct fx *f, const sk_store_dest *d, size_t n, size_t nrcpts,
                              sk_store_outcome *out)
{
    char id[32];
    sk_store_result r;
    sk_store_msg *m = sk_store_begin(f->st, id, &r);
    assert_non_null(m);
    assert_int_equal(sk_store_append(m, MSG, sizeof MSG - 1), SK_STORE_OK);
    sk_store_envelope env = {.sender = "s@a.test", .nrcpts = nrcpts};
    return sk_store_commit(m, &env, d, n, out);
}

static int files_in(struct fx *f, const char *sub)
{
    char p[PATH_MAX];
    return tu_count(tu_path(p, "%s/%s", sub[0] == 'n' ? f->mb : f->queue, sub), NULL);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_all_accepted_rfc822_form_without_return_path(void **state)
{
    struct fx *f = *state;
    sk_store_dest d[] = {
        {.kind = SK_DEST_LMTP, .target = "a@example.test", .rcpt = 0},
        {.kind = SK_DEST_LMTP, .target = "b@example.test", .rcpt = 1},
        {.kind = SK_DEST_LMTP, .target = "a@example.test", .rcpt = 2}, /* alice twice */
    };
    sk_store_outcome out;
    assert_int_equal(commit(f, d, 3, 3, &out), SK_STORE_OK);
    assert_int_equal(out.result, SK_STORE_OK);
    assert_int_equal(out.nrcpts, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out.rcpts[i].result, SK_STORE_OK);
        assert_int_equal(out.rcpts[i].code, 250);
        assert_string_equal(out.rcpts[i].enhanced, "2.0.0");
    }
    sk_store_outcome_free(&out);
    static const char want[] = "Received: from x by y; now\r\nSubject: t\r\n\r\n..dot\r\nend\r\n";
    assert_int_equal(f->fl.bodylen, sizeof want - 1);
    assert_memory_equal(f->fl.body, want, sizeof want - 1);
    assert_int_equal(f->fl.messages, 1);
    assert_int_equal(tu_count(f->root, NULL), 0); /* nothing left in the spool */

    /* the next message reuses the connection (RSET proved it alive) */
    assert_int_equal(commit(f, d, 1, 1, NULL), SK_STORE_OK);
    assert_int_equal(f->fl.connections, 1);
    assert_int_equal(f->fl.rsets, 2);
}

static void test_one_temporary_failure_defers_and_rolls_back(void **state)
{
    struct fx *f = *state;
    sk_store_dest d[] = {
        {.kind = SK_DEST_MAILDIR, .target = f->mb, .rcpt = 0},
        {.kind = SK_DEST_QUEUE, .target = "x@remote.test", .rcpt = 1},
        {.kind = SK_DEST_LMTP, .target = "ok@example.test", .rcpt = 2},
        {.kind = SK_DEST_LMTP, .target = "full@example.test", .rcpt = 3},
        {.kind = SK_DEST_LMTP, .target = "perm@example.test", .rcpt = 4},
    };
    sk_store_outcome out;
    assert_int_equal(commit(f, d, 5, 5, &out), SK_STORE_DEFERRED);
    /* the first temporary failure is the message's reply */
    assert_int_equal(out.code, 452);
    assert_string_equal(out.enhanced, "4.2.2");
    assert_string_equal(out.text, "<full> Quota exceeded");
    /* per recipient: what each destination said */
    assert_int_equal(out.rcpts[0].result, SK_STORE_DEFERRED);
    assert_int_equal(out.rcpts[0].code, 0);
    assert_int_equal(out.rcpts[2].result, SK_STORE_OK);
    assert_int_equal(out.rcpts[2].code, 250);
    assert_int_equal(out.rcpts[3].result, SK_STORE_DEFERRED);
    assert_int_equal(out.rcpts[3].code, 452);
    assert_int_equal(out.rcpts[4].result, SK_STORE_REFUSED);
    assert_int_equal(out.rcpts[4].code, 550);
    sk_store_outcome_free(&out);
    /* all or nothing: the Maildir and queue copies are gone */
    assert_true(files_in(f, "new") <= 0);
    assert_int_equal(files_in(f, "msg"), 0);
    assert_int_equal(files_in(f, "env"), 0);
    assert_int_equal(tu_count(f->root, NULL), 0);
}

static void test_only_permanent_failures_refuse(void **state)
{
    struct fx *f = *state;
    sk_store_dest d[] = {
        {.kind = SK_DEST_LMTP, .target = "perm@example.test", .rcpt = 0},
        {.kind = SK_DEST_LMTP, .target = "bad@example.test", .rcpt = 1},
        {.kind = SK_DEST_LMTP, .target = "ok@example.test", .rcpt = 1},
    };
    sk_store_outcome out;
    assert_int_equal(commit(f, d, 3, 2, &out), SK_STORE_REFUSED);
    assert_int_equal(out.code, 550);
    assert_string_equal(out.enhanced, "5.1.1");
    /* the log's store-error line: step lmtp, the server, the reply that
     * decided (no system call failed) */
    assert_string_equal(out.error.step, "lmtp");
    assert_int_equal(out.error.errnum, 0);
    assert_non_null(strstr(out.error.detail, "<perm@example.test> 550 5.1.1"));
    /* recipient 1 has two mailboxes: one refused (552), one took it */
    assert_int_equal(out.rcpts[1].result, SK_STORE_REFUSED);
    assert_int_equal(out.rcpts[1].code, 552);
    sk_store_outcome_free(&out);
    /* every recipient refused at RCPT: no data is sent */
    int before = f->fl.messages;
    assert_int_equal(commit(f, d, 1, 1, &out), SK_STORE_REFUSED);
    assert_int_equal(f->fl.messages, before);
    sk_store_outcome_free(&out);
}

static void test_server_gone_or_missing_defers_without_a_reply(void **state)
{
    struct fx *f = *state;
    sk_store_dest d[] = {
        {.kind = SK_DEST_QUEUE, .target = "x@remote.test", .rcpt = 0},
        {.kind = SK_DEST_LMTP, .target = "drop@example.test", .rcpt = 1},
    };
    sk_store_outcome out;
    /* the server closes after the data, before its reply */
    assert_int_equal(commit(f, d, 2, 2, &out), SK_STORE_DEFERRED);
    assert_int_equal(out.code, 0);
    assert_string_equal(out.error.step, "lmtp");
    assert_non_null(strstr(out.error.detail, "LMTP server"));
    assert_int_equal(files_in(f, "msg"), 0);
    assert_int_equal(files_in(f, "env"), 0);
    sk_store_outcome_free(&out);
    /* no server at all */
    char err[256];
    assert_int_equal(
        sk_store_set_lmtp(f->st, "unix:/nonexistent/lmtp.sock", 1, "mx.test", err, sizeof err), 0);
    assert_int_equal(commit(f, d, 2, 2, &out), SK_STORE_DEFERRED);
    assert_int_equal(out.code, 0);
    assert_string_equal(out.error.step, "lmtp");
    assert_string_equal(out.error.path, "unix:/nonexistent/lmtp.sock");
    assert_int_equal(out.error.errnum, ENOENT);
    assert_non_null(strstr(out.error.detail, "unix:/nonexistent/lmtp.sock"));
    assert_int_equal(files_in(f, "msg"), 0);
    sk_store_outcome_free(&out);
}

static void test_targets(void **state)
{
    (void)state;
    char err[256];
    static const char *const good[] = {"unix:/run/dovecot/lmtp", "127.0.0.1:24", "[::1]:24",
                                       "lmtp.example.org:2424"};
    static const char *const bad[] = {"",         "unix:relative", "127.0.0.1", "::1:24",
                                      "host:0",   "host:65536",    "host:+24",  "[::1]24",
                                      "host:24x", "host:\t24",     "host: 24"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(sk_store_lmtp_target_ok(good[i], err, sizeof err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(sk_store_lmtp_target_ok(bad[i], err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_accepted_rfc822_form_without_return_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_temporary_failure_defers_and_rolls_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_only_permanent_failures_refuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_gone_or_missing_defers_without_a_reply, setup,
                                        teardown),
        cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests_name("store_lmtp", tests, NULL, NULL);
}
