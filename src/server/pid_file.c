/*
 * pid_file.c - the `pid_file` setting. Written at start-up after the
 * listeners are bound (a second instance that cannot bind never replaces a
 * running one's file) and before the privilege drop (so it may live in a
 * root-owned /run directory); removed at a clean stop when it still holds
 * our pid.
 */
#include "server/pid_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sk_pid_file_write(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) {
        snprintf(err, errlen, "pid_file %s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "pid_file %s: %s", tmp, strerror(errno));
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    int bad = write(fd, buf, (size_t)n) != n || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        snprintf(err, errlen, "pid_file %s: %s", tmp, strerror(e));
        unlink(tmp);
        return -1;
    }
    /* rename(2) replaces a symlink itself, never its target */
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "pid_file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void sk_pid_file_remove(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid) == 1;
    fclose(f);
    if (ok && pid == (long)getpid())
        unlink(path);
}
