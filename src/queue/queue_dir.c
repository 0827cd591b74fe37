/*
 * queue_dir.c - the outbound queue's directory: msg/ (message files), env/
 * (envelope records), tmp/ (see queue_dir.h and docs/STORE.md). RFC 5321
 * 6.1: what a 250 promised survives a crash; every change here is a rename
 * or an unlink followed by an fsync of the directory.
 */
#include "queue/queue_dir.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"

struct sk_queue_dir {
    char *root;
    char msg_path[PATH_MAX], env_path[PATH_MAX];
    int msg_fd, env_fd, tmp_fd;
    int lock_fd;          /* <root>/lock, flock()ed by sk_queue_dir_lock */
    pthread_mutex_t lock; /* flock does not order threads sharing lock_fd */
    dev_t msg_dev, env_dev;
    ino_t msg_ino, env_ino;
};

int sk_queue_id_valid(const char *id)
{
    if (!id)
        return 0;
    size_t n = strnlen(id, 32);
    if (n == 0 || n >= 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

static int open_sub(const char *root, const char *sub, char *path, size_t cap, char *err,
                    size_t errlen)
{
    if (sk_fs_join(path, cap, root, sub) < 0 || sk_fs_ensure_dir(path) < 0) {
        snprintf(err, errlen, "queue directory %s/%s: %s", root, sub, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        snprintf(err, errlen, "queue directory %s: %s", path, strerror(errno));
    return fd;
}

sk_queue_dir *sk_queue_dir_open(const char *root, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!root || !*root) {
        snprintf(err, errlen, "queue directory not set");
        return NULL;
    }
    sk_queue_dir *q = calloc(1, sizeof *q);
    if (!q || !(q->root = strdup(root))) {
        free(q);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->msg_fd = q->env_fd = q->tmp_fd = q->lock_fd = -1;
    pthread_mutex_init(&q->lock, NULL);
    char tmp_path[PATH_MAX];
    struct stat sb;
    if (sk_fs_ensure_dir(root) < 0) {
        snprintf(err, errlen, "queue directory %s: %s", root, strerror(errno));
        goto fail;
    }
    if ((q->msg_fd = open_sub(root, "msg", q->msg_path, sizeof q->msg_path, err, errlen)) < 0 ||
        (q->env_fd = open_sub(root, "env", q->env_path, sizeof q->env_path, err, errlen)) < 0 ||
        (q->tmp_fd = open_sub(root, "tmp", tmp_path, sizeof tmp_path, err, errlen)) < 0)
        goto fail;
    if (fstat(q->msg_fd, &sb) < 0)
        goto fail_errno;
    q->msg_dev = sb.st_dev;
    q->msg_ino = sb.st_ino;
    if (fstat(q->env_fd, &sb) < 0)
        goto fail_errno;
    q->env_dev = sb.st_dev;
    q->env_ino = sb.st_ino;
    q->lock_fd = openat(q->env_fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q->lock_fd >= 0) {
        int dfd = q->lock_fd;
        q->lock_fd = openat(dfd, "lock", O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        close(dfd);
    }
    if (q->lock_fd < 0)
        goto fail_errno;
    return q;
fail_errno:
    snprintf(err, errlen, "queue directory %s: %s", root, strerror(errno));
fail:
    sk_queue_dir_close(q);
    return NULL;
}

void sk_queue_dir_close(sk_queue_dir *q)
{
    if (!q)
        return;
    if (q->msg_fd >= 0)
        close(q->msg_fd);
    if (q->env_fd >= 0)
        close(q->env_fd);
    if (q->tmp_fd >= 0)
        close(q->tmp_fd);
    if (q->lock_fd >= 0)
        close(q->lock_fd);
    pthread_mutex_destroy(&q->lock);
    free(q->root);
    free(q);
}

const char *sk_queue_dir_root(const sk_queue_dir *q)
{
    return q ? q->root : NULL;
}

int sk_queue_dir_msg_fd(const sk_queue_dir *q)
{
    return q ? q->msg_fd : -1;
}

int sk_queue_dir_env_fd(const sk_queue_dir *q)
{
    return q ? q->env_fd : -1;
}

int sk_queue_dir_tmp_fd(const sk_queue_dir *q)
{
    return q ? q->tmp_fd : -1;
}

const char *sk_queue_dir_msg_dir(const sk_queue_dir *q, dev_t *dev, ino_t *ino)
{
    if (dev)
        *dev = q->msg_dev;
    if (ino)
        *ino = q->msg_ino;
    return q->msg_path;
}

const char *sk_queue_dir_env_dir(const sk_queue_dir *q, dev_t *dev, ino_t *ino)
{
    if (dev)
        *dev = q->env_dev;
    if (ino)
        *ino = q->env_ino;
    return q->env_path;
}

int sk_queue_dir_msg_path(const sk_queue_dir *q, const char *id, char *out, size_t cap)
{
    if (!q || !sk_queue_id_valid(id))
        return -1;
    return sk_fs_join(out, cap, q->msg_path, id);
}

int sk_queue_dir_load(sk_queue_dir *q, const char *id, sk_envelope *out, char *err, size_t errlen)
{
    sk_envelope_init(out);
    if (!q || !sk_queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    if (sk_envelope_load(q->env_fd, id, out, err, errlen) < 0)
        return -1;
    if (strcmp(out->id, id) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "record names id %s, not %s", out->id, id);
        sk_envelope_clear(out);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int sk_queue_dir_update(sk_queue_dir *q, const sk_envelope *e)
{
    if (!q || !e || !sk_queue_id_valid(e->id)) {
        errno = EINVAL;
        return -1;
    }
    struct stat sb;
    if (fstatat(q->env_fd, e->id, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return -1; /* not queued (any more): an update never re-creates */
    return sk_envelope_save(q->env_fd, e->id, q->tmp_fd, e, 1);
}

int sk_queue_dir_remove(sk_queue_dir *q, const char *id)
{
    if (!q || !sk_queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    if (unlinkat(q->env_fd, id, 0) < 0)
        return -1;
    if (fsync(q->env_fd) < 0)
        return -1;
    if (unlinkat(q->msg_fd, id, 0) < 0 && errno != ENOENT)
        return -1;
    return fsync(q->msg_fd);
}

int sk_queue_dir_retire(sk_queue_dir *q, const char *id)
{
    if (!q || !sk_queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    if (unlinkat(q->env_fd, id, 0) < 0)
        return -1;
    if (unlinkat(q->msg_fd, id, 0) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

int sk_queue_dir_stamp(sk_queue_dir *q, const char *id, sk_queue_stamp *out)
{
    memset(out, 0, sizeof *out);
    if (!q || !sk_queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    struct stat sb;
    if (fstatat(q->env_fd, id, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    out->dev = sb.st_dev;
    out->ino = sb.st_ino;
    out->size = sb.st_size;
    out->mtim = sb.st_mtim;
    out->ctim = sb.st_ctim;
    return 0;
}

int sk_queue_stamp_same(const sk_queue_stamp *a, const sk_queue_stamp *b)
{
    return a->ino != 0 && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* The names in a directory that are ids, sorted. NULL on error. */
static char **list_ids(int dirfd, size_t *count)
{
    int fd2 = dup(dirfd);
    if (fd2 < 0)
        return NULL;
    DIR *d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return NULL;
    }
    rewinddir(d);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int failed = 0;
    while (!failed && (de = readdir(d)) != NULL) {
        if (!sk_queue_id_valid(de->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                failed = 1;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if (!(v[n] = strdup(de->d_name)))
            failed = 1;
        else
            n++;
    }
    closedir(d);
    if (failed) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        errno = ENOMEM;
        return NULL;
    }
    *count = n;
    return v ? v : calloc(1, sizeof *v);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_ids(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int sk_queue_dir_scan(sk_queue_dir *q, sk_queue_scan_cb cb, void *arg)
{
    if (!q || !cb) {
        errno = EINVAL;
        return -1;
    }
    size_t n = 0;
    char **ids = list_ids(q->env_fd, &n);
    if (!ids)
        return -1;
    qsort(ids, n, sizeof *ids, cmp_name);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char err[256];
        sk_envelope e;
        struct stat sb;
        if (sk_queue_dir_load(q, ids[i], &e, err, sizeof err) < 0) {
            if (errno == ENOENT)
                continue; /* removed since the listing */
            if (!err[0])
                snprintf(err, sizeof err, "%s", strerror(errno));
            rc = cb(arg, ids[i], NULL, err);
        } else if (fstatat(q->msg_fd, ids[i], &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
                   !S_ISREG(sb.st_mode)) {
            snprintf(err, sizeof err, "message file msg/%s is missing", ids[i]);
            sk_envelope_clear(&e);
            rc = cb(arg, ids[i], NULL, err);
        } else {
            rc = cb(arg, ids[i], &e, NULL);
            sk_envelope_clear(&e);
        }
    }
    free_ids(ids, n);
    return rc;
}

/* Remove regular files in dirfd older than max_age; with envfd >= 0 only
 * those without a namesake there. */
static int clean_dir(int dirfd, int envfd, time_t max_age)
{
    int fd2 = dup(dirfd);
    if (fd2 < 0)
        return 0;
    DIR *d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return 0;
    }
    rewinddir(d);
    time_t now = time(NULL);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) ||
            now - sb.st_mtime < max_age)
            continue;
        if (envfd >= 0 && fstatat(envfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            continue; /* queued */
        if (unlinkat(dirfd, de->d_name, 0) == 0 && removed < INT_MAX)
            removed++;
    }
    closedir(d);
    if (removed)
        (void)fsync(dirfd);
    return removed;
}

int sk_queue_dir_clean(sk_queue_dir *q, time_t max_age)
{
    if (!q)
        return 0;
    int n = clean_dir(q->tmp_fd, -1, max_age);
    int m = clean_dir(q->msg_fd, q->env_fd, max_age);
    return n > INT_MAX - m ? INT_MAX : n + m;
}

void sk_queue_dir_lock(sk_queue_dir *q)
{
    pthread_mutex_lock(&q->lock);
    while (flock(q->lock_fd, LOCK_EX) < 0 && errno == EINTR)
        ;
}

void sk_queue_dir_unlock(sk_queue_dir *q)
{
    (void)flock(q->lock_fd, LOCK_UN);
    pthread_mutex_unlock(&q->lock);
}
