/*
 * fsutil.h - small file-system steps shared by the store and the queue:
 * joining paths, fsync of a directory, mkdir -p with every new directory
 * made durable, and writes that survive EINTR and short counts.
 */
#ifndef SMTPKIT_UTIL_FSUTIL_H
#define SMTPKIT_UTIL_FSUTIL_H

#include <stddef.h>

/* a "/" b into out; -1 (errno ENAMETOOLONG) if it does not fit. */
int sk_fs_join(char *out, size_t cap, const char *a, const char *b);
/* fsync the directory `dir`. 0 or -1 with errno. */
int sk_fs_fsync_dir(const char *dir);
/* fsync the directory holding `path`, so a new entry in it is durable. */
int sk_fs_fsync_parent(const char *path);
/* mkdir -p with mode 0700; each directory created has its entry fsynced
 * in its parent. 0 (also when it exists) or -1 with errno (ENOTDIR when
 * something else is in the way). */
int sk_fs_ensure_dir(const char *path);
/* Write all n bytes, retrying on EINTR and short writes. 0 or -1. */
int sk_fs_write_all(int fd, const void *p, size_t n);

#endif
