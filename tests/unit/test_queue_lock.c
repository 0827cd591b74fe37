/*
 * test_queue_lock.c - the queue lock (sk_queue_dir_lock: flock on
 * <relay_queue>/lock plus a mutex) that serialises read-modify-write of
 * envelope records between the delivery agent and `smtpkit queue`: a lock
 * held by another process or another thread blocks until released, and
 * concurrent load-increment-update cycles lose no update.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "queue/envelope.h"
#include "queue/queue_dir.h"
#include "store_test_util.h"

#define ID "0QJ2K5O1A3B4C00E1F00"
#define HOLD_MS 300

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

typedef struct fixture {
    char *root;
    sk_queue_dir *q;
} fixture;

/* A queue with one message whose recipient has 0 attempts. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->root = tu_mkdtemp();
    assert_non_null(f->root);
    char err[256];
    f->q = sk_queue_dir_open(f->root, err, sizeof err);
    assert_non_null(f->q);
    sk_envelope e;
    sk_envelope_init(&e);
    snprintf(e.id, sizeof e.id, ID);
    e.arrival = 1764670000;
    assert_int_equal(sk_envelope_set(&e.sender, "alice@example.test"), 0);
    assert_int_equal(sk_envelope_add_rcpt(&e, "bob@example.net", NULL, NULL, 1764670000), 0);
    int fd = openat(sk_queue_dir_msg_fd(f->q), ID, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(
        sk_envelope_save(sk_queue_dir_env_fd(f->q), ID, sk_queue_dir_tmp_fd(f->q), &e, 1), 0);
    sk_envelope_clear(&e);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sk_queue_dir_close(f->q);
    tu_rm_rf(f->root);
    free(f->root);
    free(f);
    return 0;
}

static unsigned attempts(sk_queue_dir *q)
{
    sk_envelope e;
    char err[256];
    if (sk_queue_dir_load(q, ID, &e, err, sizeof err) != 0)
        return 0;
    unsigned n = e.rcpts[0].attempts;
    sk_envelope_clear(&e);
    return n;
}

/* One read-modify-write cycle: attempts + 1, under the lock. 0 or -1. */
static int increment(sk_queue_dir *q)
{
    sk_envelope e;
    char err[256];
    sk_queue_dir_lock(q);
    int rc = sk_queue_dir_load(q, ID, &e, err, sizeof err);
    if (rc == 0) {
        e.rcpts[0].attempts++;
        rc = sk_queue_dir_update(q, &e);
        sk_envelope_clear(&e);
    }
    sk_queue_dir_unlock(q);
    return rc;
}

/* A child process holds the lock for HOLD_MS, changes the record and lets
 * go: the parent's lock waits for it and then sees the change. */
static void test_other_process_blocks(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char err[256];
        sk_queue_dir *q = sk_queue_dir_open(f->root, err, sizeof err);
        if (!q)
            _exit(2);
        sk_queue_dir_lock(q);
        if (write(p[1], "L", 1) != 1)
            _exit(3);
        sleep_ms(HOLD_MS);
        sk_envelope e;
        if (sk_queue_dir_load(q, ID, &e, err, sizeof err) != 0)
            _exit(4);
        e.rcpts[0].state = SK_ENV_HELD;
        if (sk_queue_dir_update(q, &e) != 0)
            _exit(5);
        sk_envelope_clear(&e);
        sk_queue_dir_unlock(q);
        sk_queue_dir_close(q);
        _exit(0);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1); /* the child holds the lock now */
    close(p[0]);
    long long t0 = now_ms();
    sk_queue_dir_lock(f->q);
    long long waited = now_ms() - t0;
    sk_envelope e;
    char err[256];
    assert_int_equal(sk_queue_dir_load(f->q, ID, &e, err, sizeof err), 0);
    sk_queue_dir_unlock(f->q);
    assert_int_equal(e.rcpts[0].state, SK_ENV_HELD); /* the child's update is there */
    sk_envelope_clear(&e);
    assert_true(waited >= HOLD_MS - 50);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* released: taking it again is immediate */
    t0 = now_ms();
    sk_queue_dir_lock(f->q);
    sk_queue_dir_unlock(f->q);
    assert_true(now_ms() - t0 < HOLD_MS / 2);
}

/* A process that dies holding the lock releases it (flock goes with the
 * file descriptions): a crashed `smtpkit queue` never wedges the agent. */
static void test_dead_holder_releases(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char err[256];
        sk_queue_dir *q = sk_queue_dir_open(f->root, err, sizeof err);
        if (!q)
            _exit(2);
        sk_queue_dir_lock(q);
        if (write(p[1], "L", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    long long t0 = now_ms();
    sk_queue_dir_lock(f->q);
    sk_queue_dir_unlock(f->q);
    assert_true(now_ms() - t0 < 1000);
}

/* Two processes, each 40 read-modify-write cycles of one record: none
 * lost. */
static void test_processes_lose_no_update(void **state)
{
    fixture *f = *state;
    enum { N = 40 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        sk_queue_dir *q = sk_queue_dir_open(f->root, err, sizeof err);
        if (!q)
            _exit(2);
        for (int i = 0; i < N; i++)
            if (increment(q) != 0)
                _exit(3);
        sk_queue_dir_close(q);
        _exit(0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(increment(f->q), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(attempts(f->q), 2 * N);
}

typedef struct holder {
    sk_queue_dir *q;
    int fd; /* write end: "locked" */
} holder;

static void *hold_thread(void *arg)
{
    holder *h = arg;
    sk_queue_dir_lock(h->q);
    if (write(h->fd, "L", 1) != 1)
        abort();
    sleep_ms(HOLD_MS);
    sk_queue_dir_unlock(h->q);
    return NULL;
}

/* Threads of one process share the lock file's description, where flock
 * alone would not exclude them: the mutex does. */
static void test_other_thread_blocks(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    holder h = {f->q, p[1]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_thread, &h), 0);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    long long t0 = now_ms();
    sk_queue_dir_lock(f->q);
    long long waited = now_ms() - t0;
    sk_queue_dir_unlock(f->q);
    pthread_join(t, NULL);
    close(p[0]);
    close(p[1]);
    assert_true(waited >= HOLD_MS - 50);
}

static void *increment_thread(void *arg)
{
    for (int i = 0; i < 20; i++)
        if (increment(arg) != 0)
            abort();
    return NULL;
}

static void test_threads_lose_no_update(void **state)
{
    fixture *f = *state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, increment_thread, f->q), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(attempts(f->q), 80);
}

/* The stamp that lets the agent keep a record in memory between its read
 * and its update: unchanged while the record is, changed by every update
 * (two in a row too, whatever inode the second gets). */
static void test_stamp_follows_every_update(void **state)
{
    fixture *f = *state;
    sk_queue_stamp a, b, c;
    assert_int_equal(sk_queue_dir_stamp(f->q, ID, &a), 0);
    assert_int_equal(sk_queue_dir_stamp(f->q, ID, &b), 0);
    assert_true(sk_queue_stamp_same(&a, &b));
    assert_int_equal(increment(f->q), 0);
    assert_int_equal(sk_queue_dir_stamp(f->q, ID, &b), 0);
    assert_false(sk_queue_stamp_same(&a, &b));
    assert_int_equal(increment(f->q), 0);
    assert_int_equal(sk_queue_dir_stamp(f->q, ID, &c), 0);
    assert_false(sk_queue_stamp_same(&a, &c));
    assert_false(sk_queue_stamp_same(&b, &c));
    assert_int_equal(sk_queue_dir_stamp(f->q, "0QJ2K5O1A3B4C00E1F99", &c), -1);
    assert_int_equal(errno, ENOENT);
}

/* A delivered message leaves the queue: the record and the message file. */
static void test_retire_removes_both(void **state)
{
    fixture *f = *state;
    assert_int_equal(sk_queue_dir_retire(f->q, ID), 0);
    struct stat sb;
    assert_int_equal(fstatat(sk_queue_dir_env_fd(f->q), ID, &sb, 0), -1);
    assert_int_equal(fstatat(sk_queue_dir_msg_fd(f->q), ID, &sb, 0), -1);
    assert_int_equal(sk_queue_dir_retire(f->q, ID), -1);
    assert_int_equal(errno, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_other_process_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_holder_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_lose_no_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_thread_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_lose_no_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp_follows_every_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_removes_both, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
