/*
 * store.h - where accepted messages go. An interface (begin / append /
 * commit / abort) so Maildir, a relay queue or LMTP delivery can sit behind
 * the same calls. The first implementation is Maildir (store/maildir.c).
 *
 * Threading: begin/append/abort run on the event loop and must not block
 * long (plain write(2) to a tmp file, no fsync). commit is the durable step
 * (fsync of file and directories) and runs on a worker thread through
 * sk_commit_queue, never on the event loop.
 */
#ifndef SMTPKIT_STORE_H
#define SMTPKIT_STORE_H

#include <stddef.h>

#include "smtpkit/session.h" /* sk_store_result */

typedef struct sk_store sk_store;
typedef struct sk_store_msg sk_store_msg;

/* Open a Maildir store. `tmp_root` is a directory on the same filesystem as
 * the mailboxes, where messages are written before they are linked into each
 * recipient's Maildir (created if missing; stale files in it are removed).
 * Returns NULL with a message in err (errlen bytes) on failure. */
sk_store *sk_store_maildir_open(const char *tmp_root, char *err, size_t errlen);
/* Every message begun must be committed or aborted before this. */
void sk_store_close(sk_store *st);

/* Remove files in maildir/tmp/ not read or written for 36 hours (what the
 * Maildir convention allows a delivery agent to assume is abandoned). The
 * shell may call it at start for each mailbox. Returns the number removed,
 * 0 if there is no tmp/, -1 if it cannot be read. */
int sk_store_maildir_clean_tmp(const char *maildir);

/* Start a message; fills id (a unique message id, at most 31 chars). NULL
 * with *res set on failure. begin is thread-safe; one message is used by one
 * thread at a time. */
sk_store_msg *sk_store_begin(sk_store *st, char id[32], sk_store_result *res);
/* Buffered write; an error is sticky (later appends and commit return it). */
sk_store_result sk_store_append(sk_store_msg *m, const char *p, size_t n);
/* Durable delivery into each Maildir in dests (directories holding
 * tmp/ new/ cur/, created if missing): the message is fsynced, linked into
 * every dests[i]/new/ and the directories fsynced before this returns
 * SK_STORE_OK. On any failure nothing is left visible in any new/ and the
 * result says why. Frees m. Blocking: call from a worker thread. */
sk_store_result sk_store_commit(sk_store_msg *m, const char *const *dests, size_t ndests);
/* Discard the message. Frees m. */
void sk_store_abort(sk_store_msg *m);

/*
 * A commit queue: worker thread(s) that run sk_store_commit off the event
 * loop, batching the directory fsyncs of commits that finish together
 * (group commit). Completion is signalled on an eventfd the loop watches;
 * the loop then calls sk_commit_queue_drain() to run the callbacks on its
 * own thread.
 */
typedef struct sk_commit_queue sk_commit_queue;
typedef void (*sk_commit_cb)(void *arg, sk_store_result r);

/* 1 to SK_COMMIT_QUEUE_MAX_THREADS worker threads; NULL on failure. */
#define SK_COMMIT_QUEUE_MAX_THREADS 64
sk_commit_queue *sk_commit_queue_new(int nthreads);
/* The fd to watch for readability. */
int sk_commit_queue_fd(const sk_commit_queue *q);
/* Queue a commit; dests are copied. cb (may be NULL) runs later from drain()
 * with the result of sk_store_commit. 0, or -1 (bad arguments, out of
 * memory, queue shutting down) and m still belongs to the caller.
 * Thread-safe. */
int sk_commit_queue_submit(sk_commit_queue *q, sk_store_msg *m, const char *const *dests,
                           size_t ndests, sk_commit_cb cb, void *arg);
/* Run callbacks of finished commits (call on the loop thread). */
void sk_commit_queue_drain(sk_commit_queue *q);
/* Wait for all queued commits, run their callbacks, stop the threads. */
void sk_commit_queue_free(sk_commit_queue *q);

/* Counters since creation, for logs and benchmarks: messages committed,
 * batches the workers took, directory fsyncs done (fewer than commits when
 * group commit shares them). */
typedef struct sk_commit_queue_stats {
    unsigned long long commits;
    unsigned long long batches;
    unsigned long long dir_fsyncs;
} sk_commit_queue_stats;
void sk_commit_queue_stats_get(sk_commit_queue *q, sk_commit_queue_stats *out);

#endif
