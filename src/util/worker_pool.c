/*
 * worker_pool.c - worker threads, their lock and the eventfd that wakes the
 * event loop.
 */
#include "util/worker_pool.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void join_started(sk_worker_pool *p, int started)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++)
        pthread_join(p->threads[i], NULL);
}

int sk_worker_pool_start(sk_worker_pool *p, int nthreads, void *(*fn)(void *), void *arg)
{
    p->stopping = 0;
    p->nthreads = 0;
    p->threads = NULL;
    p->efd = -1;
    if (nthreads < 1)
        return -1;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        return -1;
    }
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (p->efd < 0 || !p->threads) {
        sk_worker_pool_destroy(p);
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = 0;
    while (started < nthreads && pthread_create(&p->threads[started], NULL, fn, arg) == 0)
        started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < nthreads) {
        join_started(p, started);
        sk_worker_pool_destroy(p);
        return -1;
    }
    p->nthreads = nthreads;
    return 0;
}

void sk_worker_pool_stop(sk_worker_pool *p)
{
    join_started(p, p->nthreads);
    p->nthreads = 0;
}

void sk_worker_pool_destroy(sk_worker_pool *p)
{
    if (p->efd >= 0)
        close(p->efd);
    p->efd = -1;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    p->threads = NULL;
}

void sk_worker_pool_notify(sk_worker_pool *p)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter is near overflow: the fd is readable then. */
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

void sk_worker_pool_clear(sk_worker_pool *p)
{
    uint64_t v;
    while (read(p->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}
