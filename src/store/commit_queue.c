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
#include "store/store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct commit_job *pend, **pend_tail; /* submitted, not yet taken */
    struct commit_job *done, **done_tail; /* finished, callback not yet run */
    int stopping;
    int held;
    int efd;
    int nthreads;
    pthread_t *threads;
    sk_commit_queue_stats stats;
};

/* One distinct directory of a batch. */
struct batch_dir {
    const char *path;
    dev_t dev;
    ino_t ino;
    sk_store_result res;
};

static void notify(int efd)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter is near overflow: the fd is readable then. */
    while (write(efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

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
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stopping && (!q->pend || q->held))
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->pend)
            break; /* stopping and nothing left */
        struct commit_job *batch = q->pend;
        q->pend = NULL;
        q->pend_tail = &q->pend;
        pthread_mutex_unlock(&q->mu);

        unsigned long long fsyncs = run_batch(batch);
        unsigned long long n = 0;
        struct commit_job *last = batch;
        for (struct commit_job *j = batch; j; j = j->next, n++)
            last = j;

        pthread_mutex_lock(&q->mu);
        *q->done_tail = batch;
        q->done_tail = &last->next;
        q->stats.commits += n;
        q->stats.batches++;
        q->stats.dir_fsyncs += fsyncs;
        notify(q->efd);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void stop_and_join(sk_commit_queue *q, int n)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    q->held = 0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < n; i++)
        pthread_join(q->threads[i], NULL);
}

static void destroy(sk_commit_queue *q)
{
    if (q->efd >= 0)
        close(q->efd);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->threads);
    free(q);
}

sk_commit_queue *sk_commit_queue_new(int nthreads)
{
    if (nthreads < 1 || nthreads > SK_COMMIT_QUEUE_MAX_THREADS)
        return NULL;
    sk_commit_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->threads = calloc((size_t)nthreads, sizeof *q->threads);
    q->pend_tail = &q->pend;
    q->done_tail = &q->done;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
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

int sk_commit_queue_fd(const sk_commit_queue *q)
{
    return q ? q->efd : -1;
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

    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return -1;
    }
    *q->pend_tail = j;
    q->pend_tail = &j->next;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void sk_commit_queue_drain(sk_commit_queue *q)
{
    if (!q)
        return;
    /* Read the eventfd before taking the list: a commit finishing in between
     * leaves the fd readable, so it is never missed. */
    uint64_t v;
    while (read(q->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&q->mu);
    struct commit_job *list = q->done;
    q->done = NULL;
    q->done_tail = &q->done;
    pthread_mutex_unlock(&q->mu);
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
    pthread_mutex_lock(&q->mu);
    q->held = hold != 0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void sk_commit_queue_stats_get(sk_commit_queue *q, sk_commit_queue_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    pthread_mutex_unlock(&q->mu);
}

void sk_commit_queue_free(sk_commit_queue *q)
{
    if (!q)
        return;
    stop_and_join(q, q->nthreads);
    sk_commit_queue_drain(q);
    destroy(q);
}
