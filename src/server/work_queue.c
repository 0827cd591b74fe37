/*
 * work_queue.c - worker threads for jobs too slow for the event loop
 * (password hashing for AUTH, RFC 4954). Jobs are taken in order by
 * whichever worker is free; a finished job goes to the done list and an
 * eventfd wakes the loop, which runs the completions in
 * sk_work_queue_drain(). The same hand-over as the commit queue
 * (src/store/commit_queue.c), without its batching.
 */
#include "server/work_queue.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct work_job {
    struct work_job *next;
    sk_work_fn work;
    sk_work_done_fn done;
    void *arg;
};

struct sk_work_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct work_job *pend, **pend_tail; /* submitted, not yet taken */
    struct work_job *done, **done_tail; /* worked, completion not yet run */
    unsigned outstanding;               /* submitted, completion not yet run */
    int stopping;
    int efd;
    int nthreads;
    pthread_t *threads;
};

static void notify(int efd)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter is near overflow: the fd is readable then. */
    while (write(efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void *worker(void *arg)
{
    sk_work_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stopping && !q->pend)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->pend)
            break; /* stopping and nothing left */
        struct work_job *j = q->pend;
        q->pend = j->next;
        if (!q->pend)
            q->pend_tail = &q->pend;
        j->next = NULL;
        pthread_mutex_unlock(&q->mu);

        if (j->work)
            j->work(j->arg);

        pthread_mutex_lock(&q->mu);
        *q->done_tail = j;
        q->done_tail = &j->next;
        notify(q->efd);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void stop_and_join(sk_work_queue *q, int n)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < n; i++)
        pthread_join(q->threads[i], NULL);
}

static void destroy(sk_work_queue *q)
{
    if (q->efd >= 0)
        close(q->efd);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->threads);
    free(q);
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
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    q->threads = calloc((size_t)nthreads, sizeof *q->threads);
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q->threads);
        if (q->efd >= 0)
            close(q->efd);
        free(q);
        return NULL;
    }
    if (pthread_cond_init(&q->cv, NULL) != 0) {
        pthread_mutex_destroy(&q->mu);
        free(q->threads);
        if (q->efd >= 0)
            close(q->efd);
        free(q);
        return NULL;
    }
    if (!q->threads || q->efd < 0) {
        destroy(q);
        return NULL;
    }
    /* Workers block every signal: signals belong to the event loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = 0;
    while (started < nthreads && pthread_create(&q->threads[started], NULL, worker, q) == 0)
        started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < nthreads) {
        stop_and_join(q, started);
        destroy(q);
        return NULL;
    }
    q->nthreads = nthreads;
    return q;
}

int sk_work_queue_fd(const sk_work_queue *q)
{
    return q ? q->efd : -1;
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
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return -1;
    }
    *q->pend_tail = j;
    q->pend_tail = &j->next;
    q->outstanding++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void sk_work_queue_drain(sk_work_queue *q)
{
    if (!q)
        return;
    /* Read the eventfd before taking the list: a job finishing in between
     * leaves the fd readable, so it is never missed. */
    uint64_t v;
    while (read(q->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&q->mu);
    struct work_job *list = q->done;
    q->done = NULL;
    q->done_tail = &q->done;
    pthread_mutex_unlock(&q->mu);
    while (list) {
        struct work_job *next = list->next;
        pthread_mutex_lock(&q->mu);
        q->outstanding--;
        pthread_mutex_unlock(&q->mu);
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
    pthread_mutex_lock(&q->mu);
    unsigned n = q->outstanding;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void sk_work_queue_free(sk_work_queue *q)
{
    if (!q)
        return;
    stop_and_join(q, q->nthreads);
    sk_work_queue_drain(q);
    destroy(q);
}
