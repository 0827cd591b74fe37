/*
 * work_queue.h - a small pool of worker threads for CPU-bound jobs the
 * event loop must not run itself (password hashing for AUTH, RFC 4954):
 * a job's work runs on a worker, its completion on the loop thread.
 *
 * The loop watches sk_work_queue_fd() for reading and then calls
 * sk_work_queue_drain(), which runs the `done` callbacks of finished jobs.
 */
#ifndef SMTPKIT_SERVER_WORK_QUEUE_H
#define SMTPKIT_SERVER_WORK_QUEUE_H

#define SK_WORK_QUEUE_MAX_THREADS 16

typedef struct sk_work_queue sk_work_queue;

/* Runs on a worker thread: must touch nothing the loop thread uses. */
typedef void (*sk_work_fn)(void *arg);
/* Runs on the loop thread, inside sk_work_queue_drain(), exactly once per
 * submitted job. */
typedef void (*sk_work_done_fn)(void *arg);

/* nthreads 1..SK_WORK_QUEUE_MAX_THREADS; NULL on failure. */
sk_work_queue *sk_work_queue_new(int nthreads);
/* An eventfd that becomes readable when jobs have finished. */
int sk_work_queue_fd(const sk_work_queue *q);
/* Queue a job. 0, or -1 (out of memory, stopping): then nothing runs. */
int sk_work_queue_submit(sk_work_queue *q, sk_work_fn work, sk_work_done_fn done, void *arg);
/* Run the completions of every finished job (loop thread). */
void sk_work_queue_drain(sk_work_queue *q);
/* Jobs submitted and not yet completed by drain (for tests and logs). */
unsigned sk_work_queue_pending(sk_work_queue *q);
/* Finish every queued job, join the workers, run the remaining
 * completions, free. NULL is ignored. */
void sk_work_queue_free(sk_work_queue *q);

#endif
