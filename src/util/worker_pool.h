/*
 * worker_pool.h - the threads behind the queues that keep slow work off the
 * event loop (the commit queue in src/store, the work queue in src/server):
 * a lock and condition the owner's workers share, an eventfd that wakes the
 * loop when a worker finished something, and starting and joining the
 * threads with every signal blocked (signals belong to the loop thread).
 */
#ifndef SMTPKIT_UTIL_WORKER_POOL_H
#define SMTPKIT_UTIL_WORKER_POOL_H

#include <pthread.h>

typedef struct sk_worker_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* under mu: the workers finish what is queued and return */
    int efd;      /* eventfd, readable when a worker finished something */
    int nthreads;
    pthread_t *threads;
} sk_worker_pool;

/* Set up the lock, condition and eventfd, then start nthreads threads
 * running fn(arg). 0, or -1 with everything released. */
int sk_worker_pool_start(sk_worker_pool *p, int nthreads, void *(*fn)(void *), void *arg);
/* Set stopping, wake every worker and join them. */
void sk_worker_pool_stop(sk_worker_pool *p);
/* Release what start set up (after stop). */
void sk_worker_pool_destroy(sk_worker_pool *p);
/* Wake the loop (a worker calls it after finishing a job). */
void sk_worker_pool_notify(sk_worker_pool *p);
/* Reset the eventfd (the loop calls it before it takes the finished jobs). */
void sk_worker_pool_clear(sk_worker_pool *p);

#endif
