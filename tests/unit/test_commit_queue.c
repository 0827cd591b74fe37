/*
 * test_commit_queue.c - commits on worker threads: every submitted message
 * gets exactly one callback on the draining thread and lands on disk; a
 * batch shares its directory fsyncs (group commit); a failing message in a
 * batch fails alone; shutdown finishes queued work and runs its callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "smtpkit/store.h"
#include "store/store_internal.h"
#include "store_test_util.h"

struct fx {
    char *dir;
    char root[PATH_MAX];
    char mb[3][PATH_MAX]; /* three recipient Maildirs */
    sk_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    assert_non_null(f->dir);
    tu_path(f->root, "%s/spool", f->dir);
    for (int i = 0; i < 3; i++)
        tu_path(f->mb[i], "%s/mb%d", f->dir, i);
    char err[256];
    f->st = sk_store_maildir_open(f->root, err, sizeof err);
    assert_non_null(f->st);
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

/* What the callbacks record; touched only on the draining thread. */
struct tally {
    pthread_t loop; /* the thread that must run every callback */
    int calls, ok, nospace, ioerr, wrong_thread;
    int *seen; /* per message number: callbacks received */
    int nseen;
};

struct cb_arg {
    struct tally *t;
    int n;
};

static void on_commit(void *arg, const sk_store_outcome *out)
{
    sk_store_result r = out->result;
    struct cb_arg *a = arg;
    struct tally *t = a->t;
    t->calls++;
    if (!pthread_equal(pthread_self(), t->loop))
        t->wrong_thread++;
    if (r == SK_STORE_OK)
        t->ok++;
    else if (r == SK_STORE_NOSPACE)
        t->nospace++;
    else
        t->ioerr++;
    if (a->n >= 0 && a->n < t->nseen)
        t->seen[a->n]++;
    free(a);
}

/* Begin a message "msg <n>\r\n" and submit it to dests. */
static int submit_numbered(sk_commit_queue *q, sk_store *st, struct tally *t, int n,
                           const char *const *dests, size_t ndests)
{
    char id[32], body[64];
    sk_store_result r;
    sk_store_msg *m = sk_store_begin(st, id, &r);
    if (!m)
        return -1;
    int len = snprintf(body, sizeof body, "msg %d\r\n", n);
    if (sk_store_append(m, body, (size_t)len) != SK_STORE_OK) {
        sk_store_abort(m);
        return -1;
    }
    struct cb_arg *a = malloc(sizeof *a);
    if (!a) {
        sk_store_abort(m);
        return -1;
    }
    a->t = t;
    a->n = n;
    if (sk_commit_queue_submit_maildirs(q, m, dests, ndests, on_commit, a) < 0) {
        free(a);
        sk_store_abort(m);
        return -1;
    }
    return 0;
}

/* Poll the queue's fd and drain until `want` callbacks ran or 30 s pass. */
static void wait_calls(sk_commit_queue *q, struct tally *t, int want)
{
    struct pollfd pfd = {.fd = sk_commit_queue_fd(q), .events = POLLIN};
    for (int rounds = 0; t->calls < want && rounds < 3000; rounds++) {
        if (poll(&pfd, 1, 10) > 0)
            sk_commit_queue_drain(q);
    }
    assert_int_equal(t->calls, want);
}

struct submitter {
    sk_commit_queue *q;
    sk_store *st;
    struct tally *t;
    struct fx *f;
    int first, count, failures;
};

/* Message n goes to mb[n % 3], and every fifth also to mb[(n + 1) % 3]. */
static void *submit_thread(void *p)
{
    struct submitter *s = p;
    for (int n = s->first; n < s->first + s->count; n++) {
        const char *dests[2] = {s->f->mb[n % 3], s->f->mb[(n + 1) % 3]};
        if (submit_numbered(s->q, s->st, s->t, n, dests, n % 5 == 0 ? 2 : 1) < 0)
            s->failures++;
    }
    return NULL;
}

/* Routing of run_many: mb[n % 3], and every fifth also mb[(n + 1) % 3]. */
static int routed_many(int n, int which)
{
    return n % 3 == which || (n % 5 == 0 && (n + 1) % 3 == which);
}

/* Routing of the group commit test: mb[n % 2]. */
static int routed_two(int n, int which)
{
    return n % 2 == which;
}

/* Checks every file in mb[which]/new is exactly "msg <n>\n" (sent as "msg <n>\r\n"), each n once,
 * and (if given) that n was routed there. Returns the number of files. */
static int check_maildir(struct fx *f, int which, int total, int (*routed)(int, int))
{
    char newdir[PATH_MAX], p[PATH_MAX];
    tu_path(newdir, "%s/new", f->mb[which]);
    int *seen = calloc((size_t)total, sizeof *seen);
    assert_non_null(seen);
    DIR *d = opendir(newdir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        char *c = tu_read(tu_path(p, "%s/%s", newdir, de->d_name), &len);
        assert_non_null(c);
        int n = -1;
        assert_int_equal(sscanf(c, "msg %d\n", &n), 1);
        assert_true(n >= 0 && n < total);
        char expect[64];
        assert_int_equal(len, (size_t)snprintf(expect, sizeof expect, "msg %d\n", n));
        assert_memory_equal(c, expect, len);
        if (routed)
            assert_true(routed(n, which));
        assert_int_equal(seen[n], 0);
        seen[n] = 1;
        free(c);
        files++;
    }
    closedir(d);
    free(seen);
    return files;
}

static void run_many(struct fx *f, int nthreads)
{
    enum { TOTAL = 200, SUBMITTERS = 4 };
    sk_commit_queue *q = sk_commit_queue_new(nthreads);
    assert_non_null(q);
    assert_true(sk_commit_queue_fd(q) >= 0);
    struct tally t = {.loop = pthread_self(), .nseen = TOTAL};
    t.seen = calloc(TOTAL, sizeof *t.seen);
    assert_non_null(t.seen);

    struct submitter s[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        s[i] = (struct submitter){q, f->st, &t, f, i * (TOTAL / SUBMITTERS), TOTAL / SUBMITTERS, 0};
        assert_int_equal(pthread_create(&th[i], NULL, submit_thread, &s[i]), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].failures, 0);
    }
    wait_calls(q, &t, TOTAL);
    assert_int_equal(t.ok, TOTAL);
    assert_int_equal(t.wrong_thread, 0);
    for (int n = 0; n < TOTAL; n++)
        assert_int_equal(t.seen[n], 1);

    sk_commit_queue_stats stats;
    sk_commit_queue_stats_get(q, &stats);
    assert_int_equal(stats.commits, TOTAL);
    assert_true(stats.batches >= 1 && stats.batches <= TOTAL);
    assert_true(stats.dir_fsyncs >= stats.batches);
    sk_commit_queue_free(q);
    assert_int_equal(t.calls, TOTAL); /* nothing run twice at shutdown */

    /* 200 messages, 40 of them to two Maildirs: 240 files. */
    int files = 0;
    for (int i = 0; i < 3; i++)
        files += check_maildir(f, i, TOTAL, routed_many);
    assert_int_equal(files, TOTAL + TOTAL / 5);
    assert_int_equal(tu_count(f->root, NULL), 0);
    free(t.seen);
}

static void test_200_messages_one_thread(void **state)
{
    run_many(*state, 1);
}

static void test_200_messages_two_threads(void **state)
{
    run_many(*state, 2);
}

static void test_group_commit_one_batch(void **state)
{
    struct fx *f = *state;
    enum { N = 50 };
    sk_commit_queue *q = sk_commit_queue_new(2);
    assert_non_null(q);
    struct tally t = {.loop = pthread_self()};
    sk_commit_queue_hold(q, 1);
    for (int n = 0; n < N; n++) {
        const char *dests[] = {f->mb[n % 2]};
        assert_int_equal(submit_numbered(q, f->st, &t, n, dests, 1), 0);
    }
    /* Held: nothing may complete. */
    struct pollfd pfd = {.fd = sk_commit_queue_fd(q), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 100), 0);
    sk_commit_queue_drain(q);
    assert_int_equal(t.calls, 0);
    char newdir[PATH_MAX];
    assert_true(tu_count(tu_path(newdir, "%s/new", f->mb[0]), NULL) <= 0);

    sk_commit_queue_hold(q, 0);
    wait_calls(q, &t, N);
    assert_int_equal(t.ok, N);
    sk_commit_queue_stats stats;
    sk_commit_queue_stats_get(q, &stats);
    assert_int_equal(stats.commits, N);
    assert_int_equal(stats.batches, 1);
    assert_int_equal(stats.dir_fsyncs, 2); /* one per distinct new/, not 50 */
    sk_commit_queue_free(q);
    assert_int_equal(check_maildir(f, 0, N, routed_two), N / 2);
    assert_int_equal(check_maildir(f, 1, N, routed_two), N / 2);
}

static void test_failure_in_batch_is_isolated(void **state)
{
    struct fx *f = *state;
    char bad[PATH_MAX], p[PATH_MAX];
    tu_path(bad, "%s/bad", f->dir);
    assert_int_equal(mkdir(bad, 0700), 0);
    int fd = open(tu_path(p, "%s/new", bad), O_CREAT | O_WRONLY, 0600); /* not a dir */
    assert_true(fd >= 0);
    close(fd);

    sk_commit_queue *q = sk_commit_queue_new(1);
    assert_non_null(q);
    struct tally t = {.loop = pthread_self(), .nseen = 10};
    t.seen = calloc(10, sizeof *t.seen);
    assert_non_null(t.seen);
    sk_commit_queue_hold(q, 1);
    for (int n = 0; n < 10; n++) {
        /* message 3 goes to mb0 and the broken Maildir */
        const char *dests[] = {f->mb[0], bad};
        assert_int_equal(submit_numbered(q, f->st, &t, n, dests, n == 3 ? 2 : 1), 0);
    }
    sk_commit_queue_hold(q, 0);
    wait_calls(q, &t, 10);
    assert_int_equal(t.ok, 9);
    assert_int_equal(t.ioerr, 1);
    sk_commit_queue_stats stats;
    sk_commit_queue_stats_get(q, &stats);
    assert_int_equal(stats.batches, 1);
    sk_commit_queue_free(q);

    /* mb0 holds the nine good ones; message 3 is nowhere. */
    char newdir[PATH_MAX];
    tu_path(newdir, "%s/new", f->mb[0]);
    assert_int_equal(tu_count(newdir, NULL), 9);
    DIR *d = opendir(newdir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        char *c = tu_read(tu_path(p, "%s/%s", newdir, de->d_name), &len);
        assert_non_null(c);
        assert_string_not_equal(c, "msg 3\n");
        free(c);
    }
    closedir(d);
    assert_int_equal(tu_count(f->root, NULL), 0);
    free(t.seen);
}

static void test_free_finishes_queued_work(void **state)
{
    struct fx *f = *state;
    enum { N = 30 };
    sk_commit_queue *q = sk_commit_queue_new(2);
    assert_non_null(q);
    struct tally t = {.loop = pthread_self()};
    sk_commit_queue_hold(q, 1); /* still queued when free starts */
    for (int n = 0; n < N; n++) {
        const char *dests[] = {f->mb[2]};
        assert_int_equal(submit_numbered(q, f->st, &t, n, dests, 1), 0);
    }
    sk_commit_queue_free(q);
    assert_int_equal(t.calls, N);
    assert_int_equal(t.ok, N);
    assert_int_equal(t.wrong_thread, 0);
    char newdir[PATH_MAX];
    assert_int_equal(tu_count(tu_path(newdir, "%s/new", f->mb[2]), NULL), N);
}

static void test_bad_arguments(void **state)
{
    struct fx *f = *state;
    assert_null(sk_commit_queue_new(0));
    assert_null(sk_commit_queue_new(-1));
    assert_null(sk_commit_queue_new(SK_COMMIT_QUEUE_MAX_THREADS + 1));
    assert_int_equal(sk_commit_queue_fd(NULL), -1);
    sk_commit_queue_drain(NULL);
    sk_commit_queue_free(NULL);

    sk_commit_queue *q = sk_commit_queue_new(1);
    assert_non_null(q);
    char id[32];
    sk_store_result r;
    sk_store_msg *m = sk_store_begin(f->st, id, &r);
    assert_non_null(m);
    const char *dests[] = {f->mb[0], NULL};
    assert_int_equal(sk_commit_queue_submit_maildirs(NULL, m, dests, 1, NULL, NULL), -1);
    assert_int_equal(sk_commit_queue_submit_maildirs(q, NULL, dests, 1, NULL, NULL), -1);
    assert_int_equal(sk_commit_queue_submit_maildirs(q, m, NULL, 1, NULL, NULL), -1);
    assert_int_equal(sk_commit_queue_submit_maildirs(q, m, dests, 0, NULL, NULL), -1);
    assert_int_equal(sk_commit_queue_submit_maildirs(q, m, dests, 2, NULL, NULL), -1);
    /* Refused: m is still ours, and still usable. A NULL callback is fine. */
    assert_int_equal(sk_store_append(m, "msg 0\r\n", 7), SK_STORE_OK);
    assert_int_equal(sk_commit_queue_submit_maildirs(q, m, dests, 1, NULL, NULL), 0);
    sk_commit_queue_free(q);
    assert_int_equal(check_maildir(f, 0, 1, NULL), 1);

    sk_commit_queue_stats stats = {1, 1, 1};
    sk_commit_queue_stats_get(NULL, &stats);
    assert_int_equal(stats.commits, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_200_messages_one_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_200_messages_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_in_batch_is_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_finishes_queued_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests_name("commit_queue", tests, NULL, NULL);
}
