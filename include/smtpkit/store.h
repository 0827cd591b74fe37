/*
 * store.h - where accepted messages go: one interface (begin / append /
 * commit / abort) over typed destinations. A message is written once into
 * the store's spool; commit makes it durable in every destination it names,
 * whatever their kind:
 *
 *   SK_DEST_MAILDIR  a local Maildir (store/maildir.c): hard link into new/
 *   SK_DEST_QUEUE    the outbound queue (store/queue_kind.c): the message
 *                    file and an envelope record naming its recipients,
 *                    for the delivery agent (queue/queue_dir.h)
 *   SK_DEST_LMTP     an LMTP server (RFC 2033, store/lmtp_kind.c): the
 *                    message handed over during the commit, before the
 *                    reply to the sender; it answers per recipient, and
 *                    the commit outcome (store_result.h) carries those
 *                    answers.
 *
 * One commit is atomic from the sender's point of view: it returns
 * SK_STORE_OK only when the copy in every destination is durable (file and
 * directory entries fsynced); if any destination fails, what the others
 * made is removed again (at worst, after a crash, a duplicate: never a 250
 * without durability, never a partial message). Destinations are
 * de-duplicated here: the same Maildir (by device and inode) or the same
 * queued address named twice gets one copy.
 *
 * Threading: begin/append/abort run on the event loop and must not block
 * long (plain write(2) to a spool file, no fsync). commit is the durable
 * step and runs on a worker thread through sk_commit_queue (group commit:
 * commits that finish together share their directory fsyncs), never on
 * the event loop. docs/STORE.md describes the layout and the sequence.
 */
#ifndef SMTPKIT_STORE_H
#define SMTPKIT_STORE_H

#include <stddef.h>

#include "smtpkit/store_result.h"

typedef struct sk_store sk_store;
typedef struct sk_store_msg sk_store_msg;

/* Destination kinds. */
typedef enum sk_dest_kind {
    SK_DEST_MAILDIR = 0, /* target: the Maildir directory (tmp/ new/ cur/) */
    SK_DEST_QUEUE = 1,   /* target: the address to deliver to (outbound queue) */
    SK_DEST_LMTP = 2,    /* target: the mailbox address the LMTP server delivers to */
    SK_DEST_KINDS
} sk_dest_kind;

/* One destination of one envelope recipient. */
typedef struct sk_store_dest {
    sk_dest_kind kind;
    const char *target; /* Maildir path, or the mailbox to deliver to */
    size_t rcpt;        /* the envelope recipient it serves (index < env->nrcpts) */
    const char *orcpt;  /* QUEUE: RFC 3461 ORCPT as given, or NULL */
    const char *notify; /* QUEUE: RFC 3461 NOTIFY as given, or NULL */
} sk_store_dest;

/* Body types (RFC 6152 8BITMIME, RFC 3030 BINARYMIME). */
typedef enum sk_store_body {
    SK_STORE_BODY_7BIT = 0,
    SK_STORE_BODY_8BITMIME,
    SK_STORE_BODY_BINARYMIME,
} sk_store_body;

/* What the transaction said about the message, for destinations that keep
 * an envelope (the queue). NULL strings mean "not given". */
typedef struct sk_store_envelope {
    const char *sender; /* reverse-path without <>, "" for the null sender */
    const char *envid;  /* RFC 3461 ENVID */
    const char *ret;    /* RFC 3461 RET: "FULL" or "HDRS" */
    sk_store_body body;
    int smtputf8;      /* RFC 6531 */
    long long arrival; /* Unix seconds; 0: now */
    size_t nrcpts;     /* envelope recipients (the outcome has one entry each) */
} sk_store_envelope;

/* Open a store. `spool_dir` is where messages are written before commit,
 * on the same filesystem as the Maildirs and the queue for hard links
 * (created if missing; stale files in it are removed). `queue_dir` is the
 * outbound queue's root (relay_queue), or NULL for a store without one
 * (SK_DEST_QUEUE destinations then fail). NULL with a message in err. */
sk_store *sk_store_open(const char *spool_dir, const char *queue_dir, char *err, size_t errlen);
/* The outbound queue of a store opened with one (for the delivery agent
 * and `smtpkit queue`), or NULL. Valid until sk_store_close. */
struct sk_queue_dir;
struct sk_queue_dir *sk_store_queue_dir(sk_store *st);
/* The same without an outbound queue. */
sk_store *sk_store_maildir_open(const char *spool_dir, char *err, size_t errlen);
/* Every message begun must be committed or aborted before this. */
void sk_store_close(sk_store *st);

/* Hand SK_DEST_LMTP destinations to an LMTP server: `target` is
 * "unix:/path/to/socket", "host:port" or "[ipv6]:port"; at most
 * `max_conns` connections at once (idle ones kept for reuse, RSET between
 * messages; 0: 10); `lhlo` the name for LHLO. 0, or -1 with a message in
 * err (a malformed target). Call before the first commit. */
int sk_store_set_lmtp(sk_store *st, const char *target, unsigned max_conns, const char *lhlo,
                      char *err, size_t errlen);
/* LMTP connections opened since sk_store_set_lmtp, and the most open at
 * once (never more than max_conns). 0, or -1 without LMTP. */
int sk_store_lmtp_stats(sk_store *st, unsigned long long *opened, unsigned *peak);
/* Checks an LMTP target's form (as sk_store_set_lmtp), for the config. */
int sk_store_lmtp_target_ok(const char *target, char *err, size_t errlen);

/* Remove files in maildir/tmp/ not read or written for 36 hours (what the
 * Maildir convention allows a delivery agent to assume is abandoned). The
 * shell may call it at start for each mailbox. Returns the number removed,
 * 0 if there is no tmp/, -1 if it cannot be read. */
int sk_store_maildir_clean_tmp(const char *maildir);

/* Start a message; fills id with its message id (store/message_id.h: 20
 * characters, the string of the 250 reply, the log, the Received header and
 * the file names). NULL with *res set on failure, and errno saying why.
 * begin is thread-safe; one message is used by one thread at a time. */
sk_store_msg *sk_store_begin(sk_store *st, char id[32], sk_store_result *res);
/* The spool directory of st (as given to sk_store_open). */
const char *sk_store_spool_dir(const sk_store *st);
/* Buffered write; an error is sticky (later appends and commit return it). */
sk_store_result sk_store_append(sk_store_msg *m, const char *p, size_t n);
/* The first failed step of m so far (see sk_store_error), or NULL. */
const sk_store_error *sk_store_msg_error(const sk_store_msg *m);
/* Durable delivery into every destination (at least one). On SK_STORE_OK
 * every copy is durable; on any failure nothing is left visible in any
 * destination and the result says why. LMTP destinations stage last:
 * what an LMTP server took cannot be taken back, so when it refuses or
 * defers the Maildir and queue copies are removed; the only case that can
 * leave a copy behind a failure is a directory fsync failing after the
 * LMTP server took the message (the sender retries: a duplicate, never a
 * loss). When out is given it is filled
 * (out->rcpts allocated with env->nrcpts entries; free with
 * sk_store_outcome_free). env may be NULL when no destination is queued.
 * Frees m. Blocking: call from a worker thread. */
sk_store_result sk_store_commit(sk_store_msg *m, const sk_store_envelope *env,
                                const sk_store_dest *dests, size_t ndests, sk_store_outcome *out);
/* Shorthand: commit to Maildirs only. */
sk_store_result sk_store_commit_maildirs(sk_store_msg *m, const char *const *dirs, size_t ndirs);
/* Discard the message. Frees m. */
void sk_store_abort(sk_store_msg *m);
/* Before the commit (store/spool_rewrite.c): read back what was appended
 * (pread semantics: bytes read, 0 at the end, -1 on error), its size, and
 * replace the message's text by `with`'s (a message begun on the same
 * store, fully appended): m keeps its id, `with` is consumed either way. */
long sk_store_msg_read(sk_store_msg *m, unsigned long long off, char *buf, size_t n);
unsigned long long sk_store_msg_size(const sk_store_msg *m);
sk_store_result sk_store_msg_replace(sk_store_msg *m, sk_store_msg *with);
void sk_store_outcome_free(sk_store_outcome *o);

/*
 * A commit queue: worker thread(s) that run commits off the event loop,
 * batching the directory fsyncs of commits that finish together (group
 * commit). Completion is signalled on an eventfd the loop watches; the
 * loop then calls sk_commit_queue_drain() to run the callbacks on its own
 * thread.
 */
typedef struct sk_commit_queue sk_commit_queue;
/* The outcome is valid during the call only. */
typedef void (*sk_commit_cb)(void *arg, const sk_store_outcome *out);

/* 1 to SK_COMMIT_QUEUE_MAX_THREADS worker threads; NULL on failure. */
#define SK_COMMIT_QUEUE_MAX_THREADS 64
sk_commit_queue *sk_commit_queue_new(int nthreads);
/* The fd to watch for readability. */
int sk_commit_queue_fd(const sk_commit_queue *q);
/* Queue a commit; env and dests (with their strings) are copied. cb (may
 * be NULL) runs later from drain() with the outcome. 0, or -1 (bad
 * arguments, out of memory, queue shutting down) and m still belongs to
 * the caller. Thread-safe. */
int sk_commit_queue_submit(sk_commit_queue *q, sk_store_msg *m, const sk_store_envelope *env,
                           const sk_store_dest *dests, size_t ndests, sk_commit_cb cb, void *arg);
/* Shorthand: commit to Maildirs only. */
int sk_commit_queue_submit_maildirs(sk_commit_queue *q, sk_store_msg *m, const char *const *dirs,
                                    size_t ndirs, sk_commit_cb cb, void *arg);
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
