/*
 * fsutil.c - file-system steps shared by the store and the queue (see
 * fsutil.h): the durability of a new directory entry needs an fsync of the
 * directory itself, which these helpers do where they create one.
 */
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Join a and b with '/' into out; -1 (ENAMETOOLONG) if it does not fit. */
int sk_fs_join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int sk_fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* fsync the directory holding `path` (so a new entry in it is durable). */
int sk_fs_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, n + 1);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    while (n > 0 && dir[n - 1] != '/')
        n--;
    if (n == 0)
        return sk_fs_fsync_dir(".");
    while (n > 1 && dir[n - 1] == '/')
        n--;
    dir[n] = '\0';
    return sk_fs_fsync_dir(dir);
}

/* mkdir -p with mode 0700; each directory created has its entry fsynced in
 * its parent, so the mailbox itself survives a crash. 0 or -1 with errno. */
int sk_fs_ensure_dir(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return 0;
        errno = ENOTDIR;
        return -1;
    }
    if (errno != ENOENT)
        return -1;
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue; /* repeated or trailing slash */
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) == 0) {
            if (sk_fs_fsync_parent(buf) < 0)
                return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        buf[i] = c;
    }
    if (stat(path, &sb) < 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Write all n bytes, retrying on EINTR and short writes. */
int sk_fs_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
