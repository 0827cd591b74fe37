/*
 * spool.c - the store and its messages before commit: the spool directory
 * (tmp_root), a message's spool file written with plain write(2) through a
 * write-behind buffer, abort, and the cleaning of what a crash left. Commit
 * (store_commit.c) makes the file durable in every destination (RFC 5321
 * 6.1). docs/STORE.md describes the layout and the sequence.
 */
#include "smtpkit/store.h"
#include "store/message_id.h"
#include "store/store_internal.h"
#include "util/fsutil.h"

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

#define NAME_TRIES 8     /* fresh names tried on EEXIST */
#define PRE_MAX_AGE 3600 /* a ".name" in tmp_root this old is abandoned */

sk_store_result sk_store_result_of(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? SK_STORE_NOSPACE : SK_STORE_IOERR;
}

sk_store_result sk_store_msg_note(sk_store_msg *m, const char *step, const char *dir,
                                  const char *name, int e)
{
    if (m && !m->why.step) {
        m->why.step = step;
        m->why.errnum = e;
        snprintf(m->why.path, sizeof m->why.path, "%s%s%s", dir ? dir : "", dir && name ? "/" : "",
                 name ? name : "");
    }
    return e ? sk_store_result_of(e) : SK_STORE_IOERR;
}

const sk_store_error *sk_store_msg_error(const sk_store_msg *m)
{
    return m && m->why.step ? &m->why : NULL;
}

const char *sk_store_spool_dir(const sk_store *st)
{
    return st ? st->tmp_root : NULL;
}

static void set_err(char *err, size_t errlen, const char *what, const char *path, int e)
{
    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
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

sk_store *sk_store_open(const char *tmp_root, const char *queue_dir, char *err, size_t errlen)
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
    if (!(st->tmp_root = strdup(tmp_root))) {
        set_err(err, errlen, "store tmp directory", tmp_root, ENOMEM);
        sk_store_close(st);
        return NULL;
    }
    char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof host) < 0 || host[0] == '\0')
        snprintf(host, sizeof host, "localhost");
    host[HOST_NAME_MAX] = '\0';
    escape_host(st->host, sizeof st->host, host);
    clean_tmp_root(st->tmp_fd);
    if (queue_dir) {
        char why[512];
        st->queue = sk_queue_dir_open(queue_dir, why, sizeof why);
        if (!st->queue) {
            if (err && errlen)
                snprintf(err, errlen, "%s", why);
            sk_store_close(st);
            return NULL;
        }
        /* what a crash left: temp files, messages never acknowledged */
        (void)sk_queue_dir_clean(st->queue, PRE_MAX_AGE);
    }
    return st;
}

struct sk_queue_dir *sk_store_queue_dir(sk_store *st)
{
    return st ? st->queue : NULL;
}

sk_store *sk_store_maildir_open(const char *tmp_root, char *err, size_t errlen)
{
    return sk_store_open(tmp_root, NULL, err, errlen);
}

void sk_store_close(sk_store *st)
{
    if (!st)
        return;
    if (st->tmp_fd >= 0)
        close(st->tmp_fd);
    sk_queue_dir_close(st->queue);
    sk_lmtp_pool_free(st->lmtp);
    free(st->tmp_root);
    free(st);
}

/* Create `name` in dirfd, locked before it becomes visible under that name:
 * it is made as ".<name>", flock()ed, then renamed without replacing. So a
 * process cleaning tmp_root never takes a live message for a stale one.
 * Returns the fd, or -1 with errno (EEXIST: pick another name). */
static int create_locked(int dirfd, const char *name)
{
    char pre[SK_STORE_NAME_CAP + 1];
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
    if (!st || !id) {
        errno = EINVAL;
        return NULL;
    }
    sk_store_msg *m = calloc(1, sizeof *m);
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    m->wb = malloc(SK_STORE_WRITE_BEHIND);
    if (!m->wb) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->st = st;
    m->fd = -1;
    int e = 0;
    for (int tries = 0; tries < NAME_TRIES && m->fd < 0; tries++) {
        if (make_name(st, m->name, sizeof m->name, m->id) < 0) {
            e = ENAMETOOLONG;
            break;
        }
        int fd = create_locked(st->tmp_fd, m->name);
        if (fd >= 0) {
            m->fd = fd;
        } else {
            e = errno;
            if (e != EEXIST) {
                *res = sk_store_result_of(e);
                break;
            }
        }
    }
    if (m->fd < 0) {
        free(m->wb);
        free(m);
        errno = e ? e : EIO;
        return NULL;
    }
    memcpy(id, m->id, sizeof m->id);
    m->begun = time(NULL);
    *res = SK_STORE_OK;
    return m;
}

static sk_store_result put(sk_store_msg *m, const char *p, size_t n);

int sk_store_msg_copy_to(sk_store_msg *m, int out)
{
    off_t off = 0;
    for (;;) {
        ssize_t r = pread(m->fd, m->wb, SK_STORE_WRITE_BEHIND, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && sk_fs_write_all(out, m->wb, (size_t)r) < 0))
            return -1;
        if (r == 0)
            break;
        off += r;
    }
    if ((unsigned long long)off != m->size) {
        errno = EIO;
        return -1;
    }
    return fsync(out);
}

sk_store_result sk_store_msg_flush(sk_store_msg *m)
{
    if (m->err == SK_STORE_OK && m->held_cr) {
        /* the message ended in a CR without its LF: keep it */
        m->held_cr = 0;
        if (put(m, "\r", 1) != SK_STORE_OK)
            return m->err;
    }
    if (m->err == SK_STORE_OK && m->wblen > 0) {
        if (sk_fs_write_all(m->fd, m->wb, m->wblen) < 0)
            m->err = sk_store_msg_note(m, "append", m->st->tmp_root, m->name, errno);
        m->wblen = 0;
    }
    return m->err;
}

/* Buffered write of file bytes. */
static sk_store_result put(sk_store_msg *m, const char *p, size_t n)
{
    if (n == 0)
        return m->err;
    m->size += n;
    if (n <= SK_STORE_WRITE_BEHIND - m->wblen) {
        memcpy(m->wb + m->wblen, p, n);
        m->wblen += n;
        return SK_STORE_OK;
    }
    if (m->wblen > 0) {
        if (sk_fs_write_all(m->fd, m->wb, m->wblen) < 0) {
            m->err = sk_store_msg_note(m, "append", m->st->tmp_root, m->name, errno);
            return m->err;
        }
        m->wblen = 0;
    }
    if (n >= SK_STORE_WRITE_BEHIND) {
        if (sk_fs_write_all(m->fd, p, n) < 0)
            m->err = sk_store_msg_note(m, "append", m->st->tmp_root, m->name, errno);
        return m->err;
    }
    memcpy(m->wb, p, n);
    m->wblen = n;
    return SK_STORE_OK;
}

/* The session hands over CRLF text (RFC 5321 2.3.8); the file keeps the
 * Unix convention of Maildir and mbox (and of Dovecot's own deliveries):
 * each CRLF is written as LF. A CR not followed by LF stays as it is (only
 * BINARYMIME can carry one); a CR at the end of one append waits for the
 * next. `wire` counts the octets as received, the size SMTP speaks of. */
sk_store_result sk_store_append(sk_store_msg *m, const char *p, size_t n)
{
    if (!m)
        return SK_STORE_IOERR;
    if (m->err != SK_STORE_OK || n == 0)
        return m->err;
    if (!p || n > ULLONG_MAX - m->wire) {
        m->err = sk_store_msg_note(m, "arguments", NULL, NULL, 0);
        return m->err;
    }
    m->wire += n;
    size_t i = 0;
    if (m->held_cr) {
        m->held_cr = 0;
        if (p[0] != '\n' && put(m, "\r", 1) != SK_STORE_OK)
            return m->err;
    }
    while (i < n) {
        const char *cr = memchr(p + i, '\r', n - i);
        size_t e = cr ? (size_t)(cr - p) : n;
        if (put(m, p + i, e - i) != SK_STORE_OK)
            return m->err;
        if (!cr)
            break;
        if (e + 1 == n) {
            m->held_cr = 1; /* decided by the next append (or the flush) */
            break;
        }
        if (p[e + 1] != '\n' && put(m, "\r", 1) != SK_STORE_OK)
            return m->err;
        i = e + 1; /* the LF (or whatever follows the bare CR) goes next */
    }
    return SK_STORE_OK;
}

void sk_store_commit_start(sk_store_msg *m)
{
    if (!m || sk_store_msg_flush(m) != SK_STORE_OK)
        return;
    /* Only a hint: the fsync in sk_store_commit_stage reports any error. */
    (void)sync_file_range(m->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

void sk_store_msg_free(sk_store_msg *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    for (size_t i = 0; i < m->ndirs; i++)
        free(m->dirs[i].path);
    free(m->dirs);
    free(m->rcpt_out);
    free(m->rcpt_set);
    free(m->wb);
    free(m);
}

void sk_store_abort(sk_store_msg *m)
{
    if (!m)
        return;
    unlinkat(m->st->tmp_fd, m->name, 0);
    sk_store_msg_free(m);
}
