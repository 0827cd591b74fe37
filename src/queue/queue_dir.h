/*
 * queue_dir.h - the outbound queue on disk, under the `relay_queue`
 * directory (RFC 5321 6.1: what a 250 promised is kept until delivered or
 * reported). docs/STORE.md describes the layout and the crash rules:
 *
 *     <relay_queue>/msg/<id>    the message, written once, never changed
 *     <relay_queue>/env/<id>    its envelope record (envelope.h), replaced
 *                               atomically on every update
 *     <relay_queue>/tmp/        temporary files, same filesystem
 *
 * <id> is the message id (the 250 reply, the log lines, the Received
 * header). A message is in the queue exactly when env/<id> exists: the
 * store links msg/<id> first and renames the envelope into env/ last, and
 * fsyncs both directories before the 250; removal goes the other way
 * (envelope first). So a crash can leave a msg/<id> without an envelope
 * (a message never acknowledged, removed by sk_queue_dir_clean) but never
 * an envelope whose message is missing, unless the directory writes reached
 * the disk out of order before a 250 was sent: sk_queue_dir_scan reports
 * such a record as broken instead of delivering it.
 *
 * For the delivery agent and `smtpkit queue`: open the directory, scan it
 * (every record, in id order, which is arrival order), load one record,
 * update it atomically after a delivery attempt, remove a finished
 * message. Every function is safe against a crash at any point; two
 * processes updating one record at once are not coordinated here (the
 * last rename wins): the caller serialises updates of one id.
 */
#ifndef SMTPKIT_QUEUE_DIR_H
#define SMTPKIT_QUEUE_DIR_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "queue/envelope.h"

typedef struct sk_queue_dir sk_queue_dir;

/* Open the queue rooted at `root`, creating it and msg/ env/ tmp/ (0700)
 * when missing (each new directory fsynced into its parent). NULL with a
 * message in err on failure. */
sk_queue_dir *sk_queue_dir_open(const char *root, char *err, size_t errlen);
void sk_queue_dir_close(sk_queue_dir *q);

const char *sk_queue_dir_root(const sk_queue_dir *q);
/* Directory fds (valid until close) and identities, for the store. */
int sk_queue_dir_msg_fd(const sk_queue_dir *q);
int sk_queue_dir_env_fd(const sk_queue_dir *q);
int sk_queue_dir_tmp_fd(const sk_queue_dir *q);
/* "<root>/msg" and "<root>/env", with device and inode. */
const char *sk_queue_dir_msg_dir(const sk_queue_dir *q, dev_t *dev, ino_t *ino);
const char *sk_queue_dir_env_dir(const sk_queue_dir *q, dev_t *dev, ino_t *ino);

/* The path of a message file ("<root>/msg/<id>") into out. 0 or -1. */
int sk_queue_dir_msg_path(const sk_queue_dir *q, const char *id, char *out, size_t cap);

/* 1 if `id` can name a queue file (1-31 letters and digits). */
int sk_queue_id_valid(const char *id);

/* Read the record of `id`. 0, or -1 with errno (ENOENT: not queued;
 * EINVAL: corrupt, err says why). */
int sk_queue_dir_load(sk_queue_dir *q, const char *id, sk_envelope *out, char *err, size_t errlen);
/* Replace the record of e->id durably and atomically (temp file, fsync,
 * rename, fsync env/). The message must be queued. 0 or -1 with errno. */
int sk_queue_dir_update(sk_queue_dir *q, const sk_envelope *e);
/* Take a message out of the queue: its envelope (then env/ fsynced), then
 * its message file (then msg/ fsynced). 0 or -1 with errno (ENOENT: not
 * queued). */
int sk_queue_dir_remove(sk_queue_dir *q, const char *id);
/* Take a delivered message out of the queue (every recipient final): as
 * sk_queue_dir_remove, envelope first, but without the directory fsyncs.
 * A crash may undo the removal and the message is delivered again, which
 * at-least-once allows (docs/STORE.md). 0 or -1 with errno. */
int sk_queue_dir_retire(sk_queue_dir *q, const char *id);

/* What identifies one version of a record: a record is only ever replaced
 * by a rename, so a record whose stamp is unchanged is the one read. */
typedef struct sk_queue_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
} sk_queue_stamp;
/* The stamp of env/<id> now. 0 or -1 with errno (ENOENT: not queued). */
int sk_queue_dir_stamp(sk_queue_dir *q, const char *id, sk_queue_stamp *out);
/* 1 when a and b are the same version of a record. */
int sk_queue_stamp_same(const sk_queue_stamp *a, const sk_queue_stamp *b);

/* One record met by a scan: env is NULL when the record could not be read
 * or parsed, or its message file is missing; err then says why. Return 0
 * to go on, anything else to stop the scan (that value is returned). */
typedef int (*sk_queue_scan_cb)(void *arg, const char *id, const sk_envelope *env, const char *err);
/* Call cb for every record in env/, in id (arrival) order. Files whose
 * names are not ids are skipped. Returns 0, cb's non-zero value, or -1
 * with errno when env/ cannot be read. */
int sk_queue_dir_scan(sk_queue_dir *q, sk_queue_scan_cb cb, void *arg);

/* Serialise read-modify-write of records between the delivery agent and
 * `smtpkit queue` (other processes) and between threads of one process:
 * flock() on <root>/lock plus a mutex. Hold it only around load, change,
 * update or remove of records, never across network I/O. Every process
 * touching the queue runs as the server's user, so the lock file (created
 * by open, 0600) stays usable by all of them. */
void sk_queue_dir_lock(sk_queue_dir *q);
void sk_queue_dir_unlock(sk_queue_dir *q);

/* Remove what a crash left: files in tmp/ and message files without an
 * envelope, when not modified for max_age seconds (a message being
 * committed right now has no envelope yet). Returns the number removed. */
int sk_queue_dir_clean(sk_queue_dir *q, time_t max_age);

#endif
