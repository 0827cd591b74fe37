/*
 * store_internal.h - the phases of a Maildir commit, split apart so the
 * commit queue can share the directory fsyncs of many messages (group
 * commit). sk_store_commit() is link + fsync of each directory + finish.
 * Not part of the public library interface.
 */
#ifndef SMTPKIT_STORE_INTERNAL_H
#define SMTPKIT_STORE_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "smtpkit/store.h"

/* Optional phase 0 for a batch: write out the buffered tail and start the
 * kernel's writeback of the file without waiting. Doing this for every
 * message of a batch before the first fsync lets the filesystem allocate all
 * their blocks in one journal transaction, so the fsyncs that follow mostly
 * find their work done. Errors are remembered in m like append's. */
void sk_store_commit_start(sk_store_msg *m);

/* Phase 1: flush and fsync the message file, create missing Maildir
 * directories, link the file into every dests[i]/new/. On failure every link
 * made is removed again and the error is remembered in m. m stays valid:
 * pass it to sk_store_commit_finish() in every case. */
sk_store_result sk_store_commit_link(sk_store_msg *m, const char *const *dests, size_t ndests);

/* The new/ directories m was linked into by phase 1 (none after a failure),
 * with device and inode so callers can tell two spellings of one directory
 * apart. Valid until sk_store_commit_finish(). */
size_t sk_store_msg_ndirs(const sk_store_msg *m);
const char *sk_store_msg_dir(const sk_store_msg *m, size_t i, dev_t *dev, ino_t *ino);

/* Phase 2: make the entries of one directory durable. */
sk_store_result sk_store_fsync_dir(const char *path);

/* Phase 3: `dirs` is SK_STORE_OK if every directory m lives in was fsynced,
 * else the error. On any error the links are removed; the tmp file is
 * removed in every case; m is freed. Returns the final result. */
sk_store_result sk_store_commit_finish(sk_store_msg *m, sk_store_result dirs);

/* Hold (1) or release (0) the workers: while held they take no new work.
 * For tests that need one deterministic batch. */
void sk_commit_queue_hold(sk_commit_queue *q, int hold);

#endif
