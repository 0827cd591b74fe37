/*
 * store_internal.h - the inside of the store, shared by the spool
 * (spool.c), the commit sequence (store_commit.c), the destination kinds
 * (maildir.c, queue_kind.c) and the commit queue (commit_queue.c). Not
 * part of the public library interface.
 *
 * A destination kind is one table of operations. The generic commit
 * (store_commit.c) fsyncs the spool file, then asks each kind with
 * destinations to stage its copy (hard links, an envelope record: durable
 * data, directory entries not yet fsynced), fsyncs every directory the
 * kinds named (once per batch in the commit queue: group commit), then
 * asks each kind to finish: keep its copy, or remove it when any kind or
 * any directory fsync failed.
 */
#ifndef SMTPKIT_STORE_INTERNAL_H
#define SMTPKIT_STORE_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "queue/queue_dir.h"
#include "smtpkit/store.h"
#include "store/lmtp_pool.h"

#define SK_STORE_WRITE_BEHIND (64 * 1024)         /* bytes gathered before one write(2) */
#define SK_STORE_NAME_CAP 512                     /* a unique file name, with ,S=<size> */
#define SK_STORE_HOST_CAP (4 * HOST_NAME_MAX + 1) /* hostname, escaped */

struct sk_store {
    int tmp_fd;     /* the spool directory (tmp_root), opened once */
    char *tmp_root; /* its path, for error reports */
    char host[SK_STORE_HOST_CAP];
    sk_queue_dir *queue; /* the outbound queue, or NULL */
    sk_lmtp_pool *lmtp;  /* the LMTP server's connections, or NULL */
};

/* A directory whose new entries a commit must fsync. */
typedef struct sk_store_dir {
    char *path;
    dev_t dev;
    ino_t ino;
} sk_store_dir;

struct sk_store_msg {
    sk_store *st;
    int fd;                       /* the spool file, read-write */
    char name[SK_STORE_NAME_CAP]; /* its name in the spool: <id>.<host> */
    char id[32];                  /* the message id */
    char *wb;                     /* write-behind buffer, SK_STORE_WRITE_BEHIND bytes */
    size_t wblen;
    unsigned long long size; /* bytes in the spool file (LF line ends) */
    unsigned long long wire; /* bytes appended: the RFC 822 (CRLF) size */
    int held_cr;             /* a CR ended the last append: CRLF or not? */
    sk_store_result err;     /* first error, sticky */
    sk_store_error why;      /* the first failed step, for the log */
    time_t begun;
    /* commit */
    int staged;                  /* stage ran (finish must run) */
    void *kstate[SK_DEST_KINDS]; /* each kind's staged copy, or NULL */
    sk_store_dir *dirs;          /* directories to fsync, distinct */
    size_t ndirs, capdirs;
    /* what a destination that answers (LMTP) said, for the outcome */
    sk_store_rcpt_outcome reply;     /* the message's (DEFERRED, REFUSED) */
    sk_store_rcpt_outcome *rcpt_out; /* per envelope recipient, or NULL */
    unsigned char *rcpt_set;         /* rcpt_out[i] was filled */
    size_t nrcpt_out;
};

/* One destination kind. */
typedef struct sk_store_kind {
    const char *name;
    /* Make this kind's copy of m for dests (n >= 1, all of this kind, as
     * given: duplicates possible) after the spool file's fsync. Name every
     * directory whose new entries must be fsynced with
     * sk_store_msg_add_dir. On failure remove what it made and return the
     * error; on success keep what finish needs in *state. */
    sk_store_result (*stage)(sk_store_msg *m, const sk_store_envelope *env,
                             const sk_store_dest *dests, size_t n, void **state);
    /* keep: the directories are fsynced, the copy stays; else remove it
     * (durably). Frees state. */
    void (*finish)(sk_store_msg *m, void *state, int keep);
} sk_store_kind;

extern const sk_store_kind sk_store_kind_maildir;
extern const sk_store_kind sk_store_kind_queue;
extern const sk_store_kind sk_store_kind_lmtp;

/* errno to a store result: ENOSPC/EDQUOT give SK_STORE_NOSPACE. */
sk_store_result sk_store_result_of(int e);
/* Record that `step` failed on dir[/name] with errno e (0: not a system
 * call), unless an earlier failure is recorded already (the first cause is
 * the one worth reporting). Does not touch m->err. Returns
 * sk_store_result_of(e), or SK_STORE_IOERR when e is 0. */
sk_store_result sk_store_msg_note(sk_store_msg *m, const char *step, const char *dir,
                                  const char *name, int e);
/* Write out the write-behind buffer (errors are sticky in m). */
sk_store_result sk_store_msg_flush(sk_store_msg *m);
/* Copy the whole spool file into out and fsync it (the cross-filesystem
 * fallback of the kinds that link it). 0, or -1 with errno (EIO: a copy of
 * another size than the message). out stays open. */
int sk_store_msg_copy_to(sk_store_msg *m, int out);
/* Record a directory to fsync before the commit is durable (distinct by
 * device and inode). 0 or -1 (out of memory). */
int sk_store_msg_add_dir(sk_store_msg *m, const char *path, dev_t dev, ino_t ino);
/* Close and free m (its spool name must be gone or wanted gone). */
void sk_store_msg_free(sk_store_msg *m);

/* The commit in phases, so the commit queue can share the directory
 * fsyncs of many messages. sk_store_commit() is stage + fsync of each
 * directory + finish. */

/* Optional phase 0 for a batch: write out the buffered tail and start the
 * kernel's writeback of the file without waiting. Doing this for every
 * message of a batch before the first fsync lets the filesystem allocate all
 * their blocks in one journal transaction, so the fsyncs that follow mostly
 * find their work done. Errors are remembered in m like append's. */
void sk_store_commit_start(sk_store_msg *m);

/* Phase 1: flush and fsync the spool file, stage every kind. On failure
 * every kind staged is undone and the error remembered in m. m stays
 * valid: pass it to sk_store_commit_finish() in every case. */
sk_store_result sk_store_commit_stage(sk_store_msg *m, const sk_store_envelope *env,
                                      const sk_store_dest *dests, size_t ndests);

/* The directories to fsync for m after phase 1 (none after a failure),
 * with device and inode so callers can tell two spellings of one directory
 * apart. Valid until sk_store_commit_finish(). */
size_t sk_store_msg_ndirs(const sk_store_msg *m);
const char *sk_store_msg_dir(const sk_store_msg *m, size_t i, dev_t *dev, ino_t *ino);

/* Phase 2: make the entries of one directory durable. On failure *errnum
 * (when given) is the errno, for sk_store_msg_note(). */
sk_store_result sk_store_fsync_dir(const char *path, int *errnum);

/* Phase 3: `dirs` is SK_STORE_OK if every directory m named was fsynced,
 * else the error. Every kind keeps or removes its copy; the spool name is
 * removed in every case; m is freed. Fills out (when given) for nrcpts
 * envelope recipients. Returns the final result. */
sk_store_result sk_store_commit_finish(sk_store_msg *m, sk_store_result dirs, size_t nrcpts,
                                       sk_store_outcome *out);

/* Hold (1) or release (0) the workers: while held they take no new work.
 * For tests that need one deterministic batch. */
void sk_commit_queue_hold(sk_commit_queue *q, int hold);

#endif
