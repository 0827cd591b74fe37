/*
 * work_queue.c - worker threads for jobs too slow for the event loop
 * (password hashing for AUTH, RFC 4954). Jobs are taken in order by
 * whichever worker is free; a finished job goes to the done list and an
 * eventfd wakes the loop, which runs the completions in
 * sk_work_queue_drain(). The same hand-over as the commit queue
 * (src/store/commit_queue.c), without its batching.
 */
#include "server/work_queue.h"
#include "util/worker_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct work_job {
    struct work_job *next;
    sk_work_fn work;
    sk_work_done_fn done;
    void *arg;
};

struct sk_work_queue {
    sk_worker_pool pool;                /* threads, lock, condition, eventfd */
    struct work_job *pend, **pend_tail; /* submitted, not yet taken */
    struct work_job *done, **done_tail; /* worked, completion not yet run */
    unsigned outstanding;               /* submitted, completion not yet run */
};

static void *worker(void *arg)
{
    sk_work_queue *q = arg;
    pthread_mutex_lock(&q->pool.mu);
    for (;;) {
        while (!q->pool.stopping && !q->pend)
            pthread_cond_wait(&q->pool.cv, &q->pool.mu);
        if (!q->pend)
            break; /* stopping and nothing left */
        struct work_job *j = q->pend;
        q->pend = j->next;
        if (!q->pend)
            q->pend_tail = &q->pend;
        j->next = NULL;
        pthread_mutex_unlock(&q->pool.mu);

        if (j->work)
            j->work(j->arg);

        pthread_mutex_lock(&q->pool.mu);
        *q->done_tail = j;
        q->done_tail = &j->next;
        sk_worker_pool_notify(&q->pool);
    }
    pthread_mutex_unlock(&q->pool.mu);
    return NULL;
}

sk_work_queue *sk_work_queue_new(int nthreads)
{
    if (nthreads < 1 || nthreads > SK_WORK_QUEUE_MAX_THREADS)
        return NULL;
    sk_work_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->pend_tail = &q->pend;
    q->done_tail = &q->done;

    if (sk_worker_pool_start(&q->pool, nthreads, worker, q) < 0) {
        free(q);
        return NULL;
    }
    return q;
}

int sk_work_queue_fd(const sk_work_queue *q)
{
    return q ? q->pool.efd : -1;
}

int sk_work_queue_submit(sk_work_queue *q, sk_work_fn work, sk_work_done_fn done, void *arg)
{
    if (!q)
        return -1;
    struct work_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&q->pool.mu);
    if (q->pool.stopping) {
        pthread_mutex_unlock(&q->pool.mu);
        free(j);
        return -1;
    }
    *q->pend_tail = j;
    q->pend_tail = &j->next;
    q->outstanding++;
    pthread_cond_signal(&q->pool.cv);
    pthread_mutex_unlock(&q->pool.mu);
    return 0;
}

void sk_work_queue_drain(sk_work_queue *q)
{
    if (!q)
        return;
    /* Read the eventfd before taking the list: a job finishing in between
     * leaves the fd readable, so it is never missed. */
    sk_worker_pool_clear(&q->pool);
    pthread_mutex_lock(&q->pool.mu);
    struct work_job *list = q->done;
    q->done = NULL;
    q->done_tail = &q->done;
    pthread_mutex_unlock(&q->pool.mu);
    while (list) {
        struct work_job *next = list->next;
        pthread_mutex_lock(&q->pool.mu);
        q->outstanding--;
        pthread_mutex_unlock(&q->pool.mu);
        if (list->done)
            list->done(list->arg);
        free(list);
        list = next;
    }
}

unsigned sk_work_queue_pending(sk_work_queue *q)
{
    if (!q)
        return 0;
    pthread_mutex_lock(&q->pool.mu);
    unsigned n = q->outstanding;
    pthread_mutex_unlock(&q->pool.mu);
    return n;
}

void sk_work_queue_free(sk_work_queue *q)
{
    if (!q)
        return;
    sk_worker_pool_stop(&q->pool);
    sk_work_queue_drain(q);
    sk_worker_pool_destroy(&q->pool);
    free(q);
}
