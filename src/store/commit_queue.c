/*
 * commit_queue.c - runs store commits on worker threads, off the event
 * loop, with group commit (the durability RFC 5321 6.1 asks for before
 * the 250 reply to the end of data, without one directory fsync per message).
 *
 * A worker takes every pending commit at once, fsyncs each message and has
 * every destination kind stage its copy (store_commit.c), then fsyncs each
 * distinct directory the kinds named (Maildir new/, the queue's msg/ and
 * env/) once for the whole batch, finishes each message and signals an
 * eventfd. The loop thread reads the eventfd and runs the callbacks in
 * sk_commit_queue_drain(). The queue knows one thing about destinations:
 * a commit with an LMTP destination waits on another server (seconds, not
 * milliseconds), so it is taken alone, and the other workers go on with
 * the rest (the server runs at least lmtp_connections workers then).
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
    sk_store_envelope env; /* strings point into the same allocation */
    int has_env;
    sk_store_dest *dests; /* the same allocation as the job */
    size_t ndests;
    sk_commit_cb cb;
    void *arg;
    sk_store_result res;
    sk_store_outcome out;
    int slow; /* it waits on another server (LMTP): a batch of its own */
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
    int errnum; /* of a failed fsync */
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
            dirs[n].errnum = 0;
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
        j->res = sk_store_commit_stage(j->m, j->has_env ? &j->env : NULL, j->dests, j->ndests);

    struct batch_dir *dirs = NULL;
    size_t ndirs = collect_dirs(batch, &dirs);
    if (ndirs != (size_t)-1) {
        for (size_t k = 0; k < ndirs; k++, fsyncs++)
            dirs[k].res = sk_store_fsync_dir(dirs[k].path, &dirs[k].errnum);
    }
    for (struct commit_job *j = batch; j; j = j->next) {
        sk_store_result d = SK_STORE_OK;
        for (size_t i = 0; j->res == SK_STORE_OK && i < sk_store_msg_ndirs(j->m); i++) {
            dev_t dev;
            ino_t ino;
            const char *path = sk_store_msg_dir(j->m, i, &dev, &ino);
            sk_store_result r = SK_STORE_OK;
            int e = 0;
            if (ndirs == (size_t)-1) {
                r = sk_store_fsync_dir(path, &e); /* no memory to share: one by one */
                fsyncs++;
            } else {
                for (size_t k = 0; k < ndirs; k++) {
                    if (dirs[k].dev == dev && dirs[k].ino == ino) {
                        r = dirs[k].res;
                        e = dirs[k].errnum;
                    }
                }
            }
            if (r != SK_STORE_OK && d == SK_STORE_OK) {
                d = r;
                sk_store_msg_note(j->m, "dir-fsync", path, NULL, e);
            }
        }
        j->res = sk_store_commit_finish(j->m, d, j->has_env ? j->env.nrcpts : 0, &j->out);
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
        /* Every pending commit, up to the first slow one; a slow one at
         * the head goes alone. What is left wakes the next worker. */
        struct commit_job *batch = q->pend, **cut = &batch->next;
        if (!batch->slow)
            while (*cut && !(*cut)->slow)
                cut = &(*cut)->next;
        q->pend = *cut;
        *cut = NULL;
        if (q->pend)
            pthread_cond_signal(&q->pool.cv);
        else
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

/* Bytes to copy string s (0 for NULL), added to *total; -1 on overflow. */
static int add_len(size_t *total, const char *s)
{
    size_t len = s ? strlen(s) + 1 : 0;
    if (len > SIZE_MAX - *total)
        return -1;
    *total += len;
    return 0;
}

static const char *copy_str(char **pool, const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s) + 1;
    memcpy(*pool, s, len);
    const char *r = *pool;
    *pool += len;
    return r;
}

int sk_commit_queue_submit(sk_commit_queue *q, sk_store_msg *m, const sk_store_envelope *env,
                           const sk_store_dest *dests, size_t ndests, sk_commit_cb cb, void *arg)
{
    if (!q || !m || !dests || ndests == 0 || ndests > SIZE_MAX / sizeof *dests / 2)
        return -1;
    /* One allocation: the job, the destinations, the strings. */
    size_t total = sizeof(struct commit_job);
    size_t arr = ndests * sizeof *dests;
    if (arr > SIZE_MAX - total)
        return -1;
    total += arr;
    if (env &&
        (add_len(&total, env->sender) || add_len(&total, env->envid) || add_len(&total, env->ret)))
        return -1;
    for (size_t i = 0; i < ndests; i++) {
        if (!dests[i].target || add_len(&total, dests[i].target) ||
            add_len(&total, dests[i].orcpt) || add_len(&total, dests[i].notify))
            return -1;
    }
    struct commit_job *j = malloc(total);
    if (!j)
        return -1;
    memset(j, 0, sizeof *j);
    j->dests = (sk_store_dest *)(void *)(j + 1);
    char *pool = (char *)(j->dests + ndests);
    if (env) {
        j->env = *env;
        j->has_env = 1;
        j->env.sender = copy_str(&pool, env->sender);
        j->env.envid = copy_str(&pool, env->envid);
        j->env.ret = copy_str(&pool, env->ret);
    }
    for (size_t i = 0; i < ndests; i++) {
        j->dests[i] = dests[i];
        j->dests[i].target = copy_str(&pool, dests[i].target);
        j->dests[i].orcpt = copy_str(&pool, dests[i].orcpt);
        j->dests[i].notify = copy_str(&pool, dests[i].notify);
        if (dests[i].kind == SK_DEST_LMTP)
            j->slow = 1;
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

int sk_commit_queue_submit_maildirs(sk_commit_queue *q, sk_store_msg *m, const char *const *dirs,
                                    size_t ndirs, sk_commit_cb cb, void *arg)
{
    if (!dirs || ndirs == 0 || ndirs > SIZE_MAX / sizeof(sk_store_dest))
        return -1;
    sk_store_dest *d = calloc(ndirs, sizeof *d);
    if (!d)
        return -1;
    for (size_t i = 0; i < ndirs; i++) {
        if (!dirs[i]) {
            free(d);
            return -1;
        }
        d[i] = (sk_store_dest){.kind = SK_DEST_MAILDIR, .target = dirs[i]};
    }
    int rc = sk_commit_queue_submit(q, m, NULL, d, ndirs, cb, arg);
    free(d);
    return rc;
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
            list->cb(list->arg, &list->out);
        sk_store_outcome_free(&list->out);
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
