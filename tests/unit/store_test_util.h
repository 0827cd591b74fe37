/*
 * store_test_util.h - helpers shared by the store tests: temporary
 * directories, counting and reading the files a delivery left, small tmpfs
 * mounts for the full-disk cases.
 */
#ifndef SMTPKIT_STORE_TEST_UTIL_H
#define SMTPKIT_STORE_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory under /tmp; the caller frees the string. */
static inline char *tu_mkdtemp(void)
{
    char tmpl[] = "/tmp/smtpkit-store-XXXXXX";
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

static inline int tu_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* rm -rf that never crosses into a mounted filesystem. */
static inline void tu_rm_rf(const char *path)
{
    if (path)
        nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* snprintf into a PATH_MAX buffer, aborting the test run on truncation. */
static inline const char *tu_path(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline const char *tu_path(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX)
        abort();
    return buf;
}

/* Entries in dir other than . and ..; -1 if it cannot be opened. If first
 * is given, the name of one entry is copied there (NAME_MAX + 1 bytes). */
static inline int tu_count(const char *dir, char *first)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (first && n == 0)
            snprintf(first, NAME_MAX + 1, "%s", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* The whole file; *len set; NULL if it cannot be read. */
static inline char *tu_read(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        close(fd);
        return NULL;
    }
    char *p = malloc((size_t)sb.st_size + 1);
    size_t got = 0;
    while (p && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, p + got, (size_t)sb.st_size - got);
        if (r <= 0) {
            free(p);
            p = NULL;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (p)
        p[got] = '\0';
    *len = got;
    return p;
}

/* Mount a tmpfs with the given options on dir (which must exist). */
static inline int tu_mount_tmpfs(const char *dir, const char *opts)
{
    return mount("tmpfs", dir, "tmpfs", 0, opts);
}

static inline void tu_umount(const char *dir)
{
    if (umount(dir) < 0)
        umount2(dir, MNT_DETACH);
}

#endif
