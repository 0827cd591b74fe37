/*
 * test_work_queue.c - the worker pool behind off-loop password checks:
 * each job's work runs on a worker thread, its completion exactly once on
 * the draining thread and only after the work; the eventfd signals
 * finished jobs; freeing the queue finishes queued jobs and runs their
 * completions; bad arguments are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/work_queue.h"

#define NJOBS 64

struct job {
    pthread_t loop;     /* the thread that submits and drains */
    pthread_t worker;   /* set by the work */
    int worked;         /* set by the work */
    int done;           /* completions seen */
    int worked_at_done; /* the work had run when the completion ran */
};

static void work(void *arg)
{
    struct job *j = arg;
    j->worker = pthread_self();
    struct timespec ts = {0, 1000000}; /* 1 ms: some jobs overlap */
    nanosleep(&ts, NULL);
    j->worked = 1;
}

static void done(void *arg)
{
    struct job *j = arg;
    j->done++;
    j->worked_at_done = j->worked;
    assert_true(pthread_equal(j->loop, pthread_self()));
}

static int all_done(const struct job *jobs, int n)
{
    for (int i = 0; i < n; i++)
        if (!jobs[i].done)
            return 0;
    return 1;
}

static void test_jobs_complete_once_on_the_loop_thread(void **state)
{
    (void)state;
    sk_work_queue *q = sk_work_queue_new(2);
    assert_non_null(q);
    int fd = sk_work_queue_fd(q);
    assert_true(fd >= 0);
    static struct job jobs[NJOBS];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].loop = pthread_self();
        assert_int_equal(sk_work_queue_submit(q, work, done, &jobs[i]), 0);
    }
    assert_true(sk_work_queue_pending(q) > 0);
    /* bounded wait: 64 jobs of 1 ms on 2 threads take well under 10 s */
    for (int round = 0; round < 1000 && !all_done(jobs, NJOBS); round++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) > 0)
            sk_work_queue_drain(q);
    }
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(jobs[i].done, 1);
        assert_int_equal(jobs[i].worked_at_done, 1);
        assert_false(pthread_equal(jobs[i].worker, pthread_self()));
    }
    assert_int_equal(sk_work_queue_pending(q), 0);
    /* nothing more to signal: a drain now runs nothing twice */
    sk_work_queue_drain(q);
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(jobs[i].done, 1);
    sk_work_queue_free(q);
}

static void test_free_finishes_queued_jobs(void **state)
{
    (void)state;
    sk_work_queue *q = sk_work_queue_new(1);
    assert_non_null(q);
    static struct job jobs[16];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 16; i++) {
        jobs[i].loop = pthread_self();
        assert_int_equal(sk_work_queue_submit(q, work, done, &jobs[i]), 0);
    }
    sk_work_queue_free(q); /* never drained: free runs every completion */
    for (int i = 0; i < 16; i++) {
        assert_int_equal(jobs[i].done, 1);
        assert_int_equal(jobs[i].worked_at_done, 1);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(sk_work_queue_new(0));
    assert_null(sk_work_queue_new(SK_WORK_QUEUE_MAX_THREADS + 1));
    assert_int_equal(sk_work_queue_submit(NULL, work, done, NULL), -1);
    assert_int_equal(sk_work_queue_fd(NULL), -1);
    assert_int_equal(sk_work_queue_pending(NULL), 0);
    sk_work_queue_drain(NULL);
    sk_work_queue_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_complete_once_on_the_loop_thread),
        cmocka_unit_test(test_free_finishes_queued_jobs),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
