/*
 * maildir.c - the Maildir message store (the Maildir convention as described
 * at cr.yp.to/proto/maildir.html; the durability RFC 5321 6.1 asks of a
 * server before its 250 reply to the end of data).
 *
 * A message is written with plain write(2) into a file in the store's
 * tmp_root (same filesystem as the mailboxes). Commit fsyncs the file, hard
 * links it into every recipient's new/, fsyncs each new/ directory and only
 * then removes the tmp name and reports success. A crash before the links
 * leaves only a tmp file, which the next open removes; a failure after some
 * links removes them again, so no recipient ever sees a partial delivery.
 * docs/STORE.md describes the layout and the sequence.
 */
#include "smtpkit/store.h"
#include "store/message_id.h"
#include "util/fsutil.h"
#include "store/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITE_BEHIND (64 * 1024)         /* bytes gathered before one write(2) */
#define NAME_CAP 512                     /* a unique file name, with ,S=<size> */
#define HOST_CAP (4 * HOST_NAME_MAX + 1) /* hostname, escaped */
#define NAME_TRIES 8                     /* fresh names tried on EEXIST */
#define TMP_MAX_AGE (36 * 3600)          /* Maildir: tmp/ files this old are abandoned */
#define PRE_MAX_AGE 3600                 /* a ".name" in tmp_root this old is abandoned */

struct sk_store {
    int tmp_fd; /* tmp_root, opened once */
    char host[HOST_CAP];
};

/* One recipient Maildir the message is linked into. */
struct store_link {
    char *newdir; /* dests[i]/new */
    char *path;   /* dests[i]/new/<name>,S=<size> */
    dev_t dev;    /* of newdir */
    ino_t ino;
};

struct sk_store_msg {
    sk_store *st;
    int fd;              /* the file in tmp_root, read-write */
    char name[NAME_CAP]; /* its name there */
    char *wb;            /* write-behind buffer, WRITE_BEHIND bytes */
    size_t wblen;
    unsigned long long size; /* bytes appended */
    sk_store_result err;     /* first error, sticky */
    struct store_link *links;
    size_t nlinks;
};

static sk_store_result result_of(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? SK_STORE_NOSPACE : SK_STORE_IOERR;
}

static void set_err(char *err, size_t errlen, const char *what, const char *path, int e)
{
    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
}

/* dest/tmp, dest/new, dest/cur. */
static int ensure_maildir(const char *dest)
{
    static const char *const sub[] = {"tmp", "new", "cur"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        if (sk_fs_join(p, sizeof p, dest, sub[i]) < 0 || sk_fs_ensure_dir(p) < 0)
            return -1;
    }
    return 0;
}

/* The Maildir spec: '/' becomes \057 and ':' becomes \072 in the host part.
 * ',' (which starts the ,S= field) and anything unprintable are escaped the
 * same way, so the name stays one plain token. */
static void escape_host(char *out, size_t cap, const char *host)
{
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)host; *s && o + 5 <= cap; s++) {
        if (*s == '/' || *s == ':' || *s == ',' || *s == '\\' || *s <= 0x20 || *s >= 0x7f) {
            snprintf(out + o, cap - o, "\\%03o", (unsigned)*s);
            o += 4;
        } else {
            out[o++] = (char)*s;
        }
    }
    out[o] = '\0';
}

/* <id>.<host>: the message id (message_id.h) is the Maildir "unique" part,
 * so a shell glob on the id in new/ finds the file a log line names. -1 if it
 * does not fit. */
static int make_name(const sk_store *st, char *name, size_t cap, char *id)
{
    char fresh[SK_MESSAGE_ID_LEN + 1];
    if (sk_message_id_make(fresh, sizeof fresh) < 0)
        return -1;
    int n = snprintf(name, cap, "%s.%s", fresh, st->host);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    if (id)
        memcpy(id, fresh, sizeof fresh);
    return 0;
}

/* Remove whatever a crashed or killed process left in tmp_root. A file still
 * open in a running process is locked (create_locked) and kept, so several
 * processes may share one tmp_root. */
static void clean_tmp_root(int dirfd)
{
    int fd2 = dup(dirfd);
    if (fd2 < 0)
        return;
    DIR *d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat sb;
        if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(sb.st_mode))
            continue;
        int fd = -1;
        if (S_ISREG(sb.st_mode)) {
            fd = openat(dirfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
            if (fd < 0)
                continue;
            /* Locked: in use by a live process. A ".name" is a file being
             * created (see create_locked); only an old one is abandoned. */
            if (flock(fd, LOCK_EX | LOCK_NB) < 0 ||
                (de->d_name[0] == '.' && time(NULL) - sb.st_mtime < PRE_MAX_AGE)) {
                close(fd);
                continue;
            }
        }
        unlinkat(dirfd, de->d_name, 0);
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
}

sk_store *sk_store_maildir_open(const char *tmp_root, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!tmp_root || !*tmp_root) {
        if (err && errlen)
            snprintf(err, errlen, "store tmp directory not set");
        return NULL;
    }
    if (sk_fs_ensure_dir(tmp_root) < 0) {
        set_err(err, errlen, "store tmp directory", tmp_root, errno);
        return NULL;
    }
    sk_store *st = calloc(1, sizeof *st);
    if (!st) {
        set_err(err, errlen, "store tmp directory", tmp_root, ENOMEM);
        return NULL;
    }
    st->tmp_fd = open(tmp_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->tmp_fd < 0) {
        set_err(err, errlen, "store tmp directory", tmp_root, errno);
        free(st);
        return NULL;
    }
    char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof host) < 0 || host[0] == '\0')
        snprintf(host, sizeof host, "localhost");
    host[HOST_NAME_MAX] = '\0';
    escape_host(st->host, sizeof st->host, host);
    clean_tmp_root(st->tmp_fd);
    return st;
}

void sk_store_close(sk_store *st)
{
    if (!st)
        return;
    close(st->tmp_fd);
    free(st);
}

int sk_store_maildir_clean_tmp(const char *maildir)
{
    char p[PATH_MAX];
    if (!maildir || !*maildir || sk_fs_join(p, sizeof p, maildir, "tmp") < 0)
        return -1;
    int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -1;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    time_t now = time(NULL);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
            continue;
        time_t last = sb.st_atime > sb.st_mtime ? sb.st_atime : sb.st_mtime;
        if (now - last > TMP_MAX_AGE && unlinkat(dfd, de->d_name, 0) == 0 && removed < INT_MAX)
            removed++;
    }
    closedir(d);
    return removed;
}

/* Create `name` in dirfd, locked before it becomes visible under that name:
 * it is made as ".<name>", flock()ed, then renamed without replacing. So a
 * process cleaning tmp_root never takes a live message for a stale one.
 * Returns the fd, or -1 with errno (EEXIST: pick another name). */
static int create_locked(int dirfd, const char *name)
{
    char pre[NAME_CAP + 1];
    int n = snprintf(pre, sizeof pre, ".%s", name);
    if (n < 0 || (size_t)n >= sizeof pre) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = openat(dirfd, pre, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    /* Fails only where flock is not supported; clean_tmp_root then keeps
     * every file, so nothing is lost either way. */
    (void)flock(fd, LOCK_EX | LOCK_NB);
    int rc = renameat2(dirfd, pre, dirfd, name, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
        rc = linkat(dirfd, pre, dirfd, name, 0); /* no RENAME_NOREPLACE here */
        if (rc == 0)
            unlinkat(dirfd, pre, 0);
    }
    if (rc < 0) {
        int e = errno;
        unlinkat(dirfd, pre, 0);
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

sk_store_msg *sk_store_begin(sk_store *st, char id[32], sk_store_result *res)
{
    sk_store_result dummy;
    if (!res)
        res = &dummy;
    *res = SK_STORE_IOERR;
    if (!st || !id)
        return NULL;
    sk_store_msg *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->wb = malloc(WRITE_BEHIND);
    if (!m->wb) {
        free(m);
        return NULL;
    }
    m->st = st;
    m->fd = -1;
    for (int tries = 0; tries < NAME_TRIES && m->fd < 0; tries++) {
        if (make_name(st, m->name, sizeof m->name, id) < 0)
            break;
        int fd = create_locked(st->tmp_fd, m->name);
        if (fd >= 0)
            m->fd = fd;
        else if (errno != EEXIST) {
            *res = result_of(errno);
            break;
        }
    }
    if (m->fd < 0) {
        free(m->wb);
        free(m);
        return NULL;
    }
    *res = SK_STORE_OK;
    return m;
}

static sk_store_result flush_wb(sk_store_msg *m)
{
    if (m->err == SK_STORE_OK && m->wblen > 0) {
        if (sk_fs_write_all(m->fd, m->wb, m->wblen) < 0)
            m->err = result_of(errno);
        m->wblen = 0;
    }
    return m->err;
}

sk_store_result sk_store_append(sk_store_msg *m, const char *p, size_t n)
{
    if (!m)
        return SK_STORE_IOERR;
    if (m->err != SK_STORE_OK || n == 0)
        return m->err;
    if (!p || n > ULLONG_MAX - m->size) {
        m->err = SK_STORE_IOERR;
        return m->err;
    }
    m->size += n;
    if (n <= WRITE_BEHIND - m->wblen) {
        memcpy(m->wb + m->wblen, p, n);
        m->wblen += n;
        return SK_STORE_OK;
    }
    if (flush_wb(m) != SK_STORE_OK)
        return m->err;
    if (n >= WRITE_BEHIND) {
        if (sk_fs_write_all(m->fd, p, n) < 0)
            m->err = result_of(errno);
        return m->err;
    }
    memcpy(m->wb, p, n);
    m->wblen = n;
    return SK_STORE_OK;
}

/* The destination file name: the tmp name on the first try, then (after a
 * collision, which unique ids make all but impossible) <id>-<n>.<host>, so
 * the name still starts with the id; with ,S=<size> (Maildir++ size hint). */
static int dest_name(sk_store_msg *m, int attempt, char *out, size_t cap)
{
    int n;
    if (attempt == 0) {
        n = snprintf(out, cap, "%s,S=%llu", m->name, m->size);
    } else {
        const char *host = strchr(m->name, '.');
        n = snprintf(out, cap, "%.*s-%d%s,S=%llu", (int)(host ? host - m->name : 0), m->name,
                     attempt, host ? host : "", m->size);
    }
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Cross-filesystem fallback: copy the message into dest/tmp/, fsync it and
 * link it to `target` in dest/new/, then drop the tmp name. */
static int copy_into(sk_store_msg *m, const char *dest, const char *fname, const char *target)
{
    char tmp[PATH_MAX], tname[NAME_CAP + 8];
    int n = snprintf(tname, sizeof tname, "%s.copy", fname);
    if (n < 0 || (size_t)n >= sizeof tname || sk_fs_join(tmp, sizeof tmp, dest, "tmp") < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t dl = strlen(tmp);
    if (dl + 1 + strlen(tname) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    tmp[dl] = '/';
    memcpy(tmp + dl + 1, tname, strlen(tname) + 1);
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        return -1;
    off_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = pread(m->fd, m->wb, WRITE_BEHIND, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && sk_fs_write_all(out, m->wb, (size_t)r) < 0)) {
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        off += r;
    }
    if (rc == 0 && (unsigned long long)off != m->size) {
        errno = EIO;
        rc = -1;
    }
    if (rc == 0 && fsync(out) < 0)
        rc = -1;
    int e = errno;
    close(out);
    if (rc == 0 && link(tmp, target) < 0) {
        e = errno;
        rc = -1;
    }
    unlink(tmp);
    errno = e;
    return rc;
}

/* Link the message into dest's new/ directory (already created) and record
 * the link. 0, 1 if dest is a directory already linked, or -1 with errno. */
static int link_one(sk_store_msg *m, const char *dest)
{
    char newdir[PATH_MAX], target[PATH_MAX], fname[NAME_CAP];
    struct stat sb;
    if (sk_fs_join(newdir, sizeof newdir, dest, "new") < 0 || stat(newdir, &sb) < 0)
        return -1;
    for (size_t i = 0; i < m->nlinks; i++) {
        if (m->links[i].dev == sb.st_dev && m->links[i].ino == sb.st_ino)
            return 1; /* the same Maildir named twice: one delivery */
    }
    /* An earlier link on the same filesystem, if any: the source for a
     * recipient when tmp_root is on another filesystem. */
    const char *same_fs = NULL;
    for (size_t i = 0; i < m->nlinks && !same_fs; i++) {
        if (m->links[i].dev == sb.st_dev)
            same_fs = m->links[i].path;
    }
    int rc = -1;
    for (int attempt = 0; attempt < NAME_TRIES; attempt++) {
        if (dest_name(m, attempt, fname, sizeof fname) < 0 ||
            sk_fs_join(target, sizeof target, newdir, fname) < 0)
            return -1;
        if (same_fs)
            rc = link(same_fs, target);
        if (!same_fs || (rc < 0 && errno != EEXIST))
            rc = linkat(m->st->tmp_fd, m->name, AT_FDCWD, target, 0);
        if (rc < 0 && errno == EXDEV)
            rc = copy_into(m, dest, fname, target);
        if (rc == 0 || errno != EEXIST)
            break;
    }
    if (rc < 0)
        return -1;
    struct store_link *l = &m->links[m->nlinks];
    l->newdir = strdup(newdir);
    l->path = strdup(target);
    l->dev = sb.st_dev;
    l->ino = sb.st_ino;
    if (!l->newdir || !l->path) {
        unlink(target);
        free(l->newdir);
        free(l->path);
        errno = ENOMEM;
        return -1;
    }
    m->nlinks++;
    return 0;
}

/* Remove every link made so far and make the removal durable, so a later
 * crash cannot bring back a message its sender was told failed. */
static void unlink_all(sk_store_msg *m)
{
    for (size_t i = 0; i < m->nlinks; i++)
        unlink(m->links[i].path);
    for (size_t i = 0; i < m->nlinks; i++) {
        (void)sk_fs_fsync_dir(m->links[i].newdir);
        free(m->links[i].newdir);
        free(m->links[i].path);
    }
    m->nlinks = 0;
}

void sk_store_commit_start(sk_store_msg *m)
{
    if (!m || flush_wb(m) != SK_STORE_OK)
        return;
    /* Only a hint: fsync in sk_store_commit_link reports any error. */
    (void)sync_file_range(m->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

sk_store_result sk_store_commit_link(sk_store_msg *m, const char *const *dests, size_t ndests)
{
    if (!m)
        return SK_STORE_IOERR;
    if (m->err != SK_STORE_OK)
        return m->err;
    if (!dests || ndests == 0 || m->links) {
        m->err = SK_STORE_IOERR;
        return m->err;
    }
    if (flush_wb(m) != SK_STORE_OK)
        return m->err;
    if (fsync(m->fd) < 0) {
        m->err = result_of(errno);
        return m->err;
    }
    m->links = calloc(ndests, sizeof *m->links);
    if (!m->links) {
        m->err = SK_STORE_IOERR;
        return m->err;
    }
    for (size_t i = 0; i < ndests; i++) {
        if (!dests[i] || !*dests[i]) {
            errno = EINVAL;
        } else if (ensure_maildir(dests[i]) == 0 && link_one(m, dests[i]) >= 0) {
            continue;
        }
        m->err = result_of(errno);
        unlink_all(m);
        return m->err;
    }
    return SK_STORE_OK;
}

size_t sk_store_msg_ndirs(const sk_store_msg *m)
{
    return m ? m->nlinks : 0;
}

const char *sk_store_msg_dir(const sk_store_msg *m, size_t i, dev_t *dev, ino_t *ino)
{
    if (!m || i >= m->nlinks)
        return NULL;
    if (dev)
        *dev = m->links[i].dev;
    if (ino)
        *ino = m->links[i].ino;
    return m->links[i].newdir;
}

sk_store_result sk_store_fsync_dir(const char *path)
{
    if (!path)
        return SK_STORE_IOERR;
    return sk_fs_fsync_dir(path) < 0 ? result_of(errno) : SK_STORE_OK;
}

sk_store_result sk_store_commit_finish(sk_store_msg *m, sk_store_result dirs)
{
    if (!m)
        return SK_STORE_IOERR;
    sk_store_result r = m->err != SK_STORE_OK ? m->err : dirs;
    if (r != SK_STORE_OK)
        unlink_all(m);
    /* The links are durable (or gone): the tmp name has done its job. If this
     * unlink is lost in a crash, the next open removes the name. */
    unlinkat(m->st->tmp_fd, m->name, 0);
    close(m->fd);
    for (size_t i = 0; i < m->nlinks; i++) {
        free(m->links[i].newdir);
        free(m->links[i].path);
    }
    free(m->links);
    free(m->wb);
    free(m);
    return r;
}

sk_store_result sk_store_commit(sk_store_msg *m, const char *const *dests, size_t ndests)
{
    if (!m)
        return SK_STORE_IOERR;
    sk_store_result dirs = SK_STORE_OK;
    if (sk_store_commit_link(m, dests, ndests) == SK_STORE_OK) {
        for (size_t i = 0; i < m->nlinks && dirs == SK_STORE_OK; i++)
            dirs = sk_store_fsync_dir(m->links[i].newdir);
    }
    return sk_store_commit_finish(m, dirs);
}

void sk_store_abort(sk_store_msg *m)
{
    if (!m)
        return;
    unlinkat(m->st->tmp_fd, m->name, 0);
    close(m->fd);
    free(m->wb);
    free(m);
}
