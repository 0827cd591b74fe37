/*
 * maildir.c - the Maildir destination kind of the store (the Maildir
 * convention as described at cr.yp.to/proto/maildir.html; the durability
 * RFC 5321 6.1 asks of a server before its 250 reply to the end of data).
 *
 * After the spool file's fsync, stage hard links it into every recipient's
 * new/ (creating tmp/ new/ cur/ when missing) and names each new/ for the
 * shared directory fsyncs; finish removes the links again when the commit
 * failed, so no recipient ever sees a partial delivery. The same Maildir
 * named twice (also by another spelling: same device and inode) gets one
 * copy. docs/STORE.md describes the sequence.
 */
#include "smtpkit/store.h"
#include "store/store_internal.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_TRIES 8            /* fresh names tried on EEXIST */
#define TMP_MAX_AGE (36 * 3600) /* Maildir: tmp/ files this old are abandoned */

/* One recipient Maildir the message is linked into. */
struct store_link {
    char *newdir; /* dests[i]/new */
    char *path;   /* dests[i]/new/<name>,S=<size>,W=<size> */
    dev_t dev;    /* of newdir */
    ino_t ino;
};

/* What stage made, for finish. */
struct maildir_state {
    struct store_link *links;
    size_t nlinks;
};

/* dest/tmp, dest/new, dest/cur. -1 with errno, the failure noted in m. */
static int ensure_maildir(sk_store_msg *m, const char *dest)
{
    static const char *const sub[] = {"tmp", "new", "cur"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        if (sk_fs_join(p, sizeof p, dest, sub[i]) < 0 || sk_fs_ensure_dir(p) < 0) {
            int e = errno;
            sk_store_msg_note(m, "maildir-create", dest, sub[i], e);
            errno = e;
            return -1;
        }
    }
    return 0;
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

/* The destination file name: the tmp name on the first try, then (after a
 * collision, which unique ids make all but impossible) <id>-<n>.<host>, so
 * the name still starts with the id; with ,S=<size> (Maildir++: the file's
 * size) and ,W=<size> (the RFC 822 size, CRLF line ends), as Dovecot names
 * its files, so it need not read the file to know either. */
static int dest_name(sk_store_msg *m, int attempt, char *out, size_t cap)
{
    int n;
    if (attempt == 0) {
        n = snprintf(out, cap, "%s,S=%llu,W=%llu", m->name, m->size, m->wire);
    } else {
        const char *host = strchr(m->name, '.');
        n = snprintf(out, cap, "%.*s-%d%s,S=%llu,W=%llu", (int)(host ? host - m->name : 0), m->name,
                     attempt, host ? host : "", m->size, m->wire);
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
    char tmp[PATH_MAX], tname[SK_STORE_NAME_CAP + 8];
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
    int rc = sk_store_msg_copy_to(m, out);
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
 * the link. 0, 1 if dest is a directory already linked, or -1 with errno
 * (the failed step noted in m). */
static int link_one(sk_store_msg *m, struct maildir_state *ms, const char *dest)
{
    char newdir[PATH_MAX], target[PATH_MAX], fname[SK_STORE_NAME_CAP];
    struct stat sb;
    if (sk_fs_join(newdir, sizeof newdir, dest, "new") < 0 || stat(newdir, &sb) < 0) {
        int e = errno;
        sk_store_msg_note(m, "link", dest, "new", e);
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < ms->nlinks; i++) {
        if (ms->links[i].dev == sb.st_dev && ms->links[i].ino == sb.st_ino)
            return 1; /* the same Maildir named twice: one delivery */
    }
    /* An earlier link on the same filesystem, if any: the source for a
     * recipient when tmp_root is on another filesystem. */
    const char *same_fs = NULL;
    for (size_t i = 0; i < ms->nlinks && !same_fs; i++) {
        if (ms->links[i].dev == sb.st_dev)
            same_fs = ms->links[i].path;
    }
    int rc = -1;
    const char *step = "link";
    for (int attempt = 0; attempt < NAME_TRIES; attempt++) {
        if (dest_name(m, attempt, fname, sizeof fname) < 0 ||
            sk_fs_join(target, sizeof target, newdir, fname) < 0) {
            int e = errno;
            sk_store_msg_note(m, "link", newdir, NULL, e);
            errno = e;
            return -1;
        }
        step = "link";
        if (same_fs)
            rc = link(same_fs, target);
        if (!same_fs || (rc < 0 && errno != EEXIST))
            rc = linkat(m->st->tmp_fd, m->name, AT_FDCWD, target, 0);
        if (rc < 0 && errno == EXDEV) {
            step = "copy";
            rc = copy_into(m, dest, fname, target);
        }
        if (rc == 0 || errno != EEXIST)
            break;
    }
    if (rc < 0) {
        int e = errno;
        sk_store_msg_note(m, step, target, NULL, e);
        errno = e;
        return -1;
    }
    struct store_link *l = &ms->links[ms->nlinks];
    l->newdir = strdup(newdir);
    l->path = strdup(target);
    l->dev = sb.st_dev;
    l->ino = sb.st_ino;
    if (!l->newdir || !l->path || sk_store_msg_add_dir(m, newdir, sb.st_dev, sb.st_ino) < 0) {
        sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
        unlink(target);
        free(l->newdir);
        free(l->path);
        errno = ENOMEM;
        return -1;
    }
    ms->nlinks++;
    return 0;
}

/* Remove every link made (when !keep) and make the removal durable, so a
 * later crash cannot bring back a message its sender was told failed.
 * Frees the state. */
static void maildir_finish(sk_store_msg *m, void *state, int keep)
{
    (void)m;
    struct maildir_state *ms = state;
    if (!ms)
        return;
    if (!keep) {
        for (size_t i = 0; i < ms->nlinks; i++)
            unlink(ms->links[i].path);
        for (size_t i = 0; i < ms->nlinks; i++)
            (void)sk_fs_fsync_dir(ms->links[i].newdir);
    }
    for (size_t i = 0; i < ms->nlinks; i++) {
        free(ms->links[i].newdir);
        free(ms->links[i].path);
    }
    free(ms->links);
    free(ms);
}

static sk_store_result maildir_stage(sk_store_msg *m, const sk_store_envelope *env,
                                     const sk_store_dest *dests, size_t n, void **state)
{
    (void)env;
    struct maildir_state *ms = calloc(1, sizeof *ms);
    if (!ms || !(ms->links = calloc(n, sizeof *ms->links))) {
        free(ms);
        return sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        /* the same spelling twice: skip without a stat */
        size_t k = 0;
        while (k < i && strcmp(dests[k].target, dests[i].target) != 0)
            k++;
        if (k < i)
            continue;
        if (!dests[i].target || !*dests[i].target) {
            sk_store_msg_note(m, "arguments", NULL, NULL, EINVAL);
            errno = EINVAL;
        } else if (ensure_maildir(m, dests[i].target) == 0 &&
                   link_one(m, ms, dests[i].target) >= 0) {
            continue;
        }
        sk_store_result r = sk_store_result_of(errno);
        maildir_finish(m, ms, 0);
        return r;
    }
    *state = ms;
    return SK_STORE_OK;
}

const sk_store_kind sk_store_kind_maildir = {
    .name = "maildir",
    .stage = maildir_stage,
    .finish = maildir_finish,
};
