/*
 * test_store_kinds.c - the store over typed destinations (store_commit.c,
 * maildir.c, queue_kind.c): one commit to Maildirs and the outbound queue,
 * de-duplication, per-recipient outcomes, all-or-nothing when one kind
 * fails, and the commit queue sharing the directory fsyncs of both kinds
 * (group commit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <poll.h>

#include "queue/queue_dir.h"
#include "smtpkit/store.h"
#include "store/store_internal.h"
#include "store_test_util.h"

struct fx {
    char *dir;
    char spool[PATH_MAX], queue[PATH_MAX], alice[PATH_MAX], bob[PATH_MAX];
    sk_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    assert_non_null(f->dir);
    tu_path(f->spool, "%s/spool", f->dir);
    tu_path(f->queue, "%s/queue", f->dir);
    tu_path(f->alice, "%s/alice", f->dir);
    tu_path(f->bob, "%s/bob", f->dir);
    char err[256];
    f->st = sk_store_open(f->spool, f->queue, err, sizeof err);
    if (!f->st)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sk_store_close(f->st);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static const char BODY[] = "Subject: t\r\n\r\nhello\r\n";
/* the spool file, and so every copy, keeps LF line ends */
static const char BODY_LF[] = "Subject: t\n\nhello\n";

static sk_store_msg *begin(struct fx *f, char id[32])
{
    sk_store_result r;
    sk_store_msg *m = sk_store_begin(f->st, id, &r);
    assert_non_null(m);
    assert_int_equal(sk_store_append(m, BODY, sizeof BODY - 1), SK_STORE_OK);
    return m;
}

/* Entries in dir/sub (sub may be ""). */
static int count(const char *dir, const char *sub)
{
    char p[PATH_MAX];
    return tu_count(tu_path(p, "%s%s%s", dir, *sub ? "/" : "", sub), NULL);
}

static void test_mixed_commit_lands_in_both(void **state)
{
    struct fx *f = *state;
    char id[32];
    sk_store_msg *m = begin(f, id);
    char bob2[PATH_MAX];
    tu_path(bob2, "%s/./bob", f->dir); /* bob again, spelled otherwise */
    sk_store_dest d[] = {
        {.kind = SK_DEST_MAILDIR, .target = f->alice, .rcpt = 0},
        {.kind = SK_DEST_QUEUE, .target = "x@remote.test", .rcpt = 1, .notify = "SUCCESS"},
        {.kind = SK_DEST_MAILDIR, .target = f->bob, .rcpt = 2},
        {.kind = SK_DEST_QUEUE, .target = "y@other.test", .rcpt = 2, .orcpt = "rfc822;t@a.test"},
        {.kind = SK_DEST_QUEUE, .target = "x@remote.test", .rcpt = 3},
        {.kind = SK_DEST_MAILDIR, .target = bob2, .rcpt = 3},
    };
    sk_store_envelope env = {.sender = "s@a.test",
                             .envid = "E1",
                             .ret = "HDRS",
                             .body = SK_STORE_BODY_8BITMIME,
                             .arrival = 1764670000,
                             .nrcpts = 4};
    sk_store_outcome out;
    assert_int_equal(sk_store_commit(m, &env, d, 6, &out), SK_STORE_OK);
    assert_int_equal(out.result, SK_STORE_OK);
    assert_int_equal(out.nrcpts, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(out.rcpts[i].result, SK_STORE_OK);
    sk_store_outcome_free(&out);

    /* one copy per Maildir, named <id>.<host>,S=<size> */
    char first[NAME_MAX + 1], p[PATH_MAX];
    assert_int_equal(tu_count(tu_path(p, "%s/new", f->alice), first), 1);
    assert_int_equal(strncmp(first, id, strlen(id)), 0);
    assert_int_equal(count(f->bob, "new"), 1);
    /* the queue: msg/<id> with the same bytes, env/<id> with each address once */
    size_t len;
    char *msg = tu_read(tu_path(p, "%s/msg/%s", f->queue, id), &len);
    assert_non_null(msg);
    assert_int_equal(len, sizeof BODY_LF - 1);
    assert_memory_equal(msg, BODY_LF, len);
    free(msg);
    sk_envelope e;
    char err[256];
    int envfd = open(tu_path(p, "%s/env", f->queue), O_RDONLY | O_DIRECTORY);
    assert_true(envfd >= 0);
    assert_int_equal(sk_envelope_load(envfd, id, &e, err, sizeof err), 0);
    close(envfd);
    assert_string_equal(e.id, id);
    assert_string_equal(e.sender, "s@a.test");
    assert_string_equal(e.envid, "E1");
    assert_string_equal(e.ret, "HDRS");
    assert_int_equal(e.body, SK_BODY_8BITMIME);
    /* size: the RFC 822 (CRLF) size, what SIZE= declares */
    assert_true(e.arrival == 1764670000 && e.size == sizeof BODY - 1);
    assert_int_equal(e.nrcpts, 2);
    assert_string_equal(e.rcpts[0].addr, "x@remote.test");
    assert_string_equal(e.rcpts[0].notify, "SUCCESS");
    assert_string_equal(e.rcpts[1].addr, "y@other.test");
    assert_string_equal(e.rcpts[1].orcpt, "rfc822;t@a.test");
    assert_int_equal(e.rcpts[1].state, SK_ENV_PENDING);
    sk_envelope_clear(&e);
    /* nothing left behind */
    assert_int_equal(count(f->spool, ""), 0);
    assert_int_equal(count(f->queue, "tmp"), 0);
}

static void test_queue_failure_removes_the_maildir_copies(void **state)
{
    struct fx *f = *state;
    char id[32], p[PATH_MAX];
    /* env/ cannot take a record: a directory where the record must go */
    sk_store_msg *m = begin(f, id);
    assert_int_equal(mkdir(tu_path(p, "%s/env/%s", f->queue, id), 0700), 0);
    sk_store_dest d[] = {
        {.kind = SK_DEST_MAILDIR, .target = f->alice},
        {.kind = SK_DEST_QUEUE, .target = "x@remote.test", .rcpt = 1},
        {.kind = SK_DEST_MAILDIR, .target = f->bob, .rcpt = 1},
    };
    sk_store_envelope env = {.sender = "", .nrcpts = 2};
    sk_store_outcome out;
    assert_int_equal(sk_store_commit(m, &env, d, 3, &out), SK_STORE_IOERR);
    assert_int_equal(out.nrcpts, 2);
    assert_int_equal(out.rcpts[0].result, SK_STORE_IOERR);
    assert_int_equal(out.rcpts[1].result, SK_STORE_IOERR);
    sk_store_outcome_free(&out);
    assert_int_equal(count(f->alice, "new"), 0);
    assert_int_equal(count(f->bob, "new"), 0);
    assert_int_equal(count(f->queue, "msg"), 0);
    assert_int_equal(count(f->spool, ""), 0);
    rmdir(p);

    /* a queue kind without a queue: refused, nothing delivered */
    char err[256], spool2[PATH_MAX];
    sk_store *noq = sk_store_maildir_open(tu_path(spool2, "%s/spool2", f->dir), err, sizeof err);
    assert_non_null(noq);
    sk_store_result r;
    m = sk_store_begin(noq, id, &r);
    assert_non_null(m);
    assert_int_equal(sk_store_commit(m, &env, d, 3, NULL), SK_STORE_IOERR);
    assert_int_equal(count(f->alice, "new"), 0);
    /* bad destinations are refused before anything is made */
    m = sk_store_begin(noq, id, &r);
    sk_store_dest bad[] = {{.kind = SK_DEST_MAILDIR, .target = f->alice, .rcpt = 5}};
    assert_int_equal(sk_store_commit(m, &env, bad, 1, NULL), SK_STORE_IOERR);
    m = sk_store_begin(noq, id, &r);
    sk_store_dest badkind[] = {{.kind = (sk_dest_kind)7, .target = f->alice}};
    assert_int_equal(sk_store_commit(m, &env, badkind, 1, NULL), SK_STORE_IOERR);
    assert_int_equal(count(f->alice, "new"), 0);
    sk_store_close(noq);
}

struct failed_seen {
    int calls;
    char step[32], path[PATH_MAX];
    int errnum;
};

static void on_failed(void *arg, const sk_store_outcome *out)
{
    struct failed_seen *s = arg;
    s->calls++;
    snprintf(s->step, sizeof s->step, "%s", out->error.step ? out->error.step : "");
    snprintf(s->path, sizeof s->path, "%s", out->error.path);
    s->errnum = out->error.errnum;
}

/* A failed commit says which step failed, on what path, with which errno
 * (the server logs it as event=store-error), the first cause only. */
static void test_failed_step_is_named(void **state)
{
    struct fx *f = *state;
    char id[32], p[PATH_MAX];
    sk_store_outcome out;
    sk_store_envelope env = {.sender = "", .nrcpts = 1};

    /* the queue's record cannot be written: a directory in its place */
    sk_store_msg *m = begin(f, id);
    assert_null(sk_store_msg_error(m));
    assert_int_equal(mkdir(tu_path(p, "%s/env/%s", f->queue, id), 0700), 0);
    sk_store_dest q[] = {{.kind = SK_DEST_QUEUE, .target = "x@remote.test"}};
    assert_int_equal(sk_store_commit(m, &env, q, 1, &out), SK_STORE_IOERR);
    assert_non_null(out.error.step);
    assert_string_equal(out.error.step, "queue-envelope");
    assert_string_equal(out.error.path, p);
    assert_true(out.error.errnum > 0);
    sk_store_outcome_free(&out);
    rmdir(p);

    /* a Maildir whose new/ is a file: the directory step, ENOTDIR */
    char box[PATH_MAX];
    tu_path(box, "%s/broken", f->dir);
    assert_int_equal(mkdir(box, 0700), 0);
    FILE *fp = fopen(tu_path(p, "%s/new", box), "w");
    assert_non_null(fp);
    fclose(fp);
    m = begin(f, id);
    sk_store_dest md[] = {{.kind = SK_DEST_MAILDIR, .target = f->alice},
                          {.kind = SK_DEST_MAILDIR, .target = box}};
    assert_int_equal(sk_store_commit(m, &env, md, 2, &out), SK_STORE_IOERR);
    assert_string_equal(out.error.step, "maildir-create");
    assert_string_equal(out.error.path, p);
    assert_int_equal(out.error.errnum, ENOTDIR);
    sk_store_outcome_free(&out);
    assert_int_equal(count(f->alice, "new"), 0); /* all or nothing still */

    /* through the commit queue: the callback sees the same */
    sk_commit_queue *cq = sk_commit_queue_new(1);
    assert_non_null(cq);
    struct failed_seen seen = {0};
    m = begin(f, id);
    assert_int_equal(sk_commit_queue_submit(cq, m, &env, md + 1, 1, on_failed, &seen), 0);
    struct pollfd pfd = {.fd = sk_commit_queue_fd(cq), .events = POLLIN};
    for (int rounds = 0; !seen.calls && rounds < 3000; rounds++) {
        if (poll(&pfd, 1, 10) > 0)
            sk_commit_queue_drain(cq);
    }
    sk_commit_queue_free(cq);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.step, "maildir-create");
    assert_string_equal(seen.path, p);
    assert_int_equal(seen.errnum, ENOTDIR);

    /* a delivered message has no error */
    m = begin(f, id);
    assert_int_equal(sk_store_commit(m, &env, md, 1, &out), SK_STORE_OK);
    assert_null(out.error.step);
    sk_store_outcome_free(&out);
}

struct tally {
    int calls, ok;
};

static void on_done(void *arg, const sk_store_outcome *out)
{
    struct tally *t = arg;
    t->calls++;
    t->ok += out->result == SK_STORE_OK && out->nrcpts == 2;
}

struct scan {
    int n, bad;
    char last[32];
};

static int on_scan(void *arg, const char *id, const sk_envelope *env, const char *err)
{
    struct scan *s = arg;
    (void)err;
    if (!env || strcmp(id, s->last) <= 0 || env->nrcpts != 1)
        s->bad++;
    snprintf(s->last, sizeof s->last, "%s", id);
    s->n++;
    return 0;
}

static void test_group_commit_shares_both_kinds_fsyncs(void **state)
{
    struct fx *f = *state;
    sk_commit_queue *q = sk_commit_queue_new(1);
    assert_non_null(q);
    sk_commit_queue_hold(q, 1);
    struct tally t = {0};
    const int N = 20;
    for (int i = 0; i < N; i++) {
        char id[32], addr[64];
        sk_store_msg *m = begin(f, id);
        snprintf(addr, sizeof addr, "r%d@remote.test", i);
        sk_store_dest d[] = {
            {.kind = SK_DEST_MAILDIR, .target = i % 2 ? f->alice : f->bob},
            {.kind = SK_DEST_QUEUE, .target = addr, .rcpt = 1},
        };
        sk_store_envelope env = {.sender = "s@a.test", .nrcpts = 2};
        assert_int_equal(sk_commit_queue_submit(q, m, &env, d, 2, on_done, &t), 0);
    }
    sk_commit_queue_hold(q, 0); /* one batch of 20 */
    struct pollfd pfd = {.fd = sk_commit_queue_fd(q), .events = POLLIN};
    for (int rounds = 0; t.calls < N && rounds < 3000; rounds++) {
        if (poll(&pfd, 1, 10) > 0)
            sk_commit_queue_drain(q);
    }
    assert_int_equal(t.calls, N);
    assert_int_equal(t.ok, N);
    sk_commit_queue_stats st;
    sk_commit_queue_stats_get(q, &st);
    assert_true(st.commits == (unsigned long long)N);
    assert_true(st.batches == 1);
    /* alice/new, bob/new, queue msg/ and env/: four fsyncs for 20 messages */
    assert_true(st.dir_fsyncs == 4);
    sk_commit_queue_free(q);
    assert_int_equal(count(f->alice, "new"), N / 2);
    assert_int_equal(count(f->bob, "new"), N / 2);
    assert_int_equal(count(f->queue, "msg"), N);
    assert_int_equal(count(f->queue, "env"), N);
    /* and a scan sees them all, in id (arrival) order, each complete */
    char err[256];
    sk_queue_dir *qd = sk_queue_dir_open(f->queue, err, sizeof err);
    assert_non_null(qd);
    struct scan s = {0};
    assert_int_equal(sk_queue_dir_scan(qd, on_scan, &s), 0);
    assert_int_equal(s.n, N);
    assert_int_equal(s.bad, 0);
    sk_queue_dir_close(qd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mixed_commit_lands_in_both, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_step_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_failure_removes_the_maildir_copies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_shares_both_kinds_fsyncs, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
