/*
 * commit_queue.c - runs store commits on worker threads, off the event
 * loop, with group commit (the durability RFC 5321 6.1 asks for before
 * the 250 reply to the end of data, without one directory fsync per message).
 *
 * A worker takes every pending commit at once, fsyncs and links each
 * message, then fsyncs each distinct new/ directory once for the whole
 * batch, finishes each message and signals an eventfd. The loop thread
 * reads the eventfd and runs the callbacks in sk_commit_queue_drain().
 */
#include "smtpkit/store.h"
#include "util/worker_pool.h"
#include "store/store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct commit_job {
    struct commit_job *next;
    sk_store_msg *m;
    const char **dests; /* points into the same allocation as the job */
    size_t ndests;
    sk_commit_cb cb;
    void *arg;
    sk_store_result res;
};

struct sk_commit_queue {
    sk_worker_pool pool;                  /* threads, lock, condition, eventfd */
    struct commit_job *pend, **pend_tail; /* submitted, not yet taken */
    struct commit_job *done, **done_tail; /* finished, callback not yet run */
    int held;
    sk_commit_queue_stats stats;
};

/* One distinct directory of a batch. */
struct batch_dir {
    const char *path;
    dev_t dev;
    ino_t ino;
    sk_store_result res;
};

/* Collect the distinct new/ directories of the linked messages. Returns the
 * count, or (size_t)-1 if out of memory. */
static size_t collect_dirs(struct commit_job *batch, struct batch_dir **out)
{
    size_t n = 0, cap = 0;
    struct batch_dir *dirs = NULL;
    for (struct commit_job *j = batch; j; j = j->next) {
        for (size_t i = 0; i < sk_store_msg_ndirs(j->m); i++) {
            dev_t dev;
            ino_t ino;
            const char *path = sk_store_msg_dir(j->m, i, &dev, &ino);
            size_t k = 0;
            while (k < n && !(dirs[k].dev == dev && dirs[k].ino == ino))
                k++;
            if (k < n)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct batch_dir *nd =
                    ncap < SIZE_MAX / sizeof *nd ? realloc(dirs, ncap * sizeof *nd) : NULL;
                if (!nd) {
                    free(dirs);
                    return (size_t)-1;
                }
                dirs = nd;
                cap = ncap;
            }
            dirs[n].path = path;
            dirs[n].dev = dev;
            dirs[n].ino = ino;
            dirs[n].res = SK_STORE_OK;
            n++;
        }
    }
    *out = dirs;
    return n;
}

/* Link every message, fsync each distinct directory once, finish every
 * message. Returns the number of directory fsyncs. */
static unsigned long long run_batch(struct commit_job *batch)
{
    unsigned long long fsyncs = 0;
    if (batch->next) {
        for (struct commit_job *j = batch; j; j = j->next)
            sk_store_commit_start(j->m);
    }
    for (struct commit_job *j = batch; j; j = j->next)
        j->res = sk_store_commit_link(j->m, (const char *const *)j->dests, j->ndests);

    struct batch_dir *dirs = NULL;
    size_t ndirs = collect_dirs(batch, &dirs);
    if (ndirs != (size_t)-1) {
        for (size_t k = 0; k < ndirs; k++, fsyncs++)
            dirs[k].res = sk_store_fsync_dir(dirs[k].path);
    }
    for (struct commit_job *j = batch; j; j = j->next) {
        sk_store_result d = SK_STORE_OK;
        for (size_t i = 0; j->res == SK_STORE_OK && i < sk_store_msg_ndirs(j->m); i++) {
            dev_t dev;
            ino_t ino;
            const char *path = sk_store_msg_dir(j->m, i, &dev, &ino);
            sk_store_result r = SK_STORE_OK;
            if (ndirs == (size_t)-1) {
                r = sk_store_fsync_dir(path); /* no memory to share: one by one */
                fsyncs++;
            } else {
                for (size_t k = 0; k < ndirs; k++) {
                    if (dirs[k].dev == dev && dirs[k].ino == ino)
                        r = dirs[k].res;
                }
            }
            if (r != SK_STORE_OK && d == SK_STORE_OK)
                d = r;
        }
        j->res = sk_store_commit_finish(j->m, d);
        j->m = NULL;
    }
    if (ndirs != (size_t)-1)
        free(dirs);
    return fsyncs;
}

static void *worker(void *arg)
{
    sk_commit_queue *q = arg;
    pthread_mutex_lock(&q->pool.mu);
    for (;;) {
        while (!q->pool.stopping && (!q->pend || q->held))
            pthread_cond_wait(&q->pool.cv, &q->pool.mu);
        if (!q->pend)
            break; /* stopping and nothing left */
        struct commit_job *batch = q->pend;
        q->pend = NULL;
        q->pend_tail = &q->pend;
        pthread_mutex_unlock(&q->pool.mu);

        unsigned long long fsyncs = run_batch(batch);
        unsigned long long n = 0;
        struct commit_job *last = batch;
        for (struct commit_job *j = batch; j; j = j->next, n++)
            last = j;

        pthread_mutex_lock(&q->pool.mu);
        *q->done_tail = batch;
        q->done_tail = &last->next;
        q->stats.commits += n;
        q->stats.batches++;
        q->stats.dir_fsyncs += fsyncs;
        sk_worker_pool_notify(&q->pool);
    }
    pthread_mutex_unlock(&q->pool.mu);
    return NULL;
}

sk_commit_queue *sk_commit_queue_new(int nthreads)
{
    if (nthreads < 1 || nthreads > SK_COMMIT_QUEUE_MAX_THREADS)
        return NULL;
    sk_commit_queue *q = calloc(1, sizeof *q);
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

int sk_commit_queue_fd(const sk_commit_queue *q)
{
    return q ? q->pool.efd : -1;
}

int sk_commit_queue_submit(sk_commit_queue *q, sk_store_msg *m, const char *const *dests,
                           size_t ndests, sk_commit_cb cb, void *arg)
{
    if (!q || !m || !dests || ndests == 0 || ndests > SIZE_MAX / sizeof(char *))
        return -1;
    /* One allocation: the job, the pointer array, the strings. */
    size_t total = sizeof(struct commit_job);
    size_t ptrs = ndests * sizeof(char *);
    if (ptrs > SIZE_MAX - total)
        return -1;
    total += ptrs;
    for (size_t i = 0; i < ndests; i++) {
        if (!dests[i])
            return -1;
        size_t len = strlen(dests[i]);
        if (len >= SIZE_MAX - total)
            return -1;
        total += len + 1;
    }
    struct commit_job *j = malloc(total);
    if (!j)
        return -1;
    memset(j, 0, sizeof *j);
    j->dests = (const char **)(void *)(j + 1);
    char *s = (char *)(j->dests + ndests);
    for (size_t i = 0; i < ndests; i++) {
        size_t len = strlen(dests[i]) + 1;
        memcpy(s, dests[i], len);
        j->dests[i] = s;
        s += len;
    }
    j->m = m;
    j->ndests = ndests;
    j->cb = cb;
    j->arg = arg;

    pthread_mutex_lock(&q->pool.mu);
    if (q->pool.stopping) {
        pthread_mutex_unlock(&q->pool.mu);
        free(j);
        return -1;
    }
    *q->pend_tail = j;
    q->pend_tail = &j->next;
    pthread_cond_signal(&q->pool.cv);
    pthread_mutex_unlock(&q->pool.mu);
    return 0;
}

void sk_commit_queue_drain(sk_commit_queue *q)
{
    if (!q)
        return;
    /* Read the eventfd before taking the list: a commit finishing in between
     * leaves the fd readable, so it is never missed. */
    sk_worker_pool_clear(&q->pool);
    pthread_mutex_lock(&q->pool.mu);
    struct commit_job *list = q->done;
    q->done = NULL;
    q->done_tail = &q->done;
    pthread_mutex_unlock(&q->pool.mu);
    while (list) {
        struct commit_job *next = list->next;
        if (list->cb)
            list->cb(list->arg, list->res);
        free(list);
        list = next;
    }
}

void sk_commit_queue_hold(sk_commit_queue *q, int hold)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->pool.mu);
    q->held = hold != 0;
    pthread_cond_broadcast(&q->pool.cv);
    pthread_mutex_unlock(&q->pool.mu);
}

void sk_commit_queue_stats_get(sk_commit_queue *q, sk_commit_queue_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!q)
        return;
    pthread_mutex_lock(&q->pool.mu);
    *out = q->stats;
    pthread_mutex_unlock(&q->pool.mu);
}

void sk_commit_queue_free(sk_commit_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->pool.mu);
    q->held = 0; /* a held queue still finishes its work when freed */
    pthread_mutex_unlock(&q->pool.mu);
    sk_worker_pool_stop(&q->pool);
    sk_commit_queue_drain(q);
    sk_worker_pool_destroy(&q->pool);
    free(q);
}
