/*
 * runas.c - dropping root (the least-privilege rule of Postfix and
 * OpenSMTPD: network-facing code never runs as root) and preparing the
 * directories the unprivileged user must write.
 */
#include "server/runas.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/pathutil.h"

int sk_runas_resolve(const char *user, sk_runas *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (geteuid() != 0) {
        out->uid = geteuid();
        out->gid = getegid();
        struct passwd *me = getpwuid(out->uid);
        snprintf(out->name, sizeof out->name, "%s", me ? me->pw_name : "?");
        if (user && (!me || strcmp(user, me->pw_name) != 0))
            snprintf(out->note, sizeof out->note,
                     "not started as root: 'user = \"%s\"' ignored, running as %s", user,
                     out->name);
        return 0;
    }
    if (!user) {
        snprintf(err, errlen,
                 "started as root, but the configuration sets no 'user': smtpkit does not "
                 "serve mail as root; set user = \"nobody\" (or a dedicated account)");
        return -1;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "user '%s' does not exist%s%s", user, errno ? ": " : "",
                 errno ? strerror(errno) : "");
        return -1;
    }
    if (pw->pw_uid == 0 || pw->pw_gid == 0) {
        snprintf(err, errlen, "user '%s' has uid or gid 0: refusing to serve mail as root", user);
        return -1;
    }
    out->change = 1;
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    snprintf(out->name, sizeof out->name, "%s", user);
    return 0;
}

/* Open directory `name` under dirfd without following a symlink, creating
 * it if missing; chown it when asked. Returns the fd or -1. */
static int open_subdir(int dirfd, const char *name, const sk_runas *r, int do_chown)
{
    if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
        return -1;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (do_chown && r->change && fchown(fd, r->uid, r->gid) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int sk_runas_prepare_dir(const sk_runas *r, const char *trusted_base, const char *dir, int maildir,
                         char *err, size_t errlen)
{
    /* Everything up to the trusted base (or the parent of dir) is the
     * administrator's and may contain symlinks; below it, nothing may. */
    char base[PATH_MAX];
    const char *rest;
    size_t bl = trusted_base ? strlen(trusted_base) : 0;
    if (bl && !strncmp(dir, trusted_base, bl) && (dir[bl] == '/' || dir[bl] == '\0')) {
        snprintf(base, sizeof base, "%s", trusted_base);
        rest = dir + bl;
    } else {
        const char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
            snprintf(base, sizeof base, "/");
            rest = dir + 1;
        } else {
            snprintf(base, sizeof base, "%.*s", (int)(slash - dir), dir);
            rest = slash;
        }
    }
    if (sk_path_mkdirs(base, 0755) != 0) {
        snprintf(err, errlen, "cannot create directory %s: %s", base, strerror(errno));
        return -1;
    }
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open directory %s: %s", base, strerror(errno));
        return -1;
    }
    /* The trusted base itself (the mail root) belongs to the user too, so
     * mailboxes added by a reload can be created without root. */
    if (bl && base[0] && !strcmp(base, trusted_base) && r->change &&
        fchown(fd, r->uid, r->gid) != 0) {
        snprintf(err, errlen, "cannot chown %s to %s: %s", base, r->name, strerror(errno));
        close(fd);
        return -1;
    }
    char comp[NAME_MAX + 1];
    const char *p = rest;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        if (n > NAME_MAX) {
            snprintf(err, errlen, "%s: a path component is too long", dir);
            close(fd);
            return -1;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n;
        int next = open_subdir(fd, comp, r, 1);
        if (next < 0) {
            snprintf(err, errlen, "cannot create or take %s (component '%s'): %s%s", dir, comp,
                     strerror(errno), errno == ELOOP ? " (a symlink is not allowed here)" : "");
            close(fd);
            return -1;
        }
        close(fd);
        fd = next;
    }
    if (maildir) {
        static const char *const subs[] = {"tmp", "new", "cur"};
        for (size_t i = 0; i < 3; i++) {
            int s = open_subdir(fd, subs[i], r, 1);
            if (s < 0) {
                snprintf(err, errlen, "cannot create or take %s/%s: %s", dir, subs[i],
                         strerror(errno));
                close(fd);
                return -1;
            }
            close(s);
        }
    }
    close(fd);
    return 0;
}

int sk_runas_drop(const sk_runas *r, char *err, size_t errlen)
{
    if (!r->change)
        return 0;
    if (setgroups(1, &r->gid) != 0) {
        snprintf(err, errlen, "setgroups: %s", strerror(errno));
        return -1;
    }
    if (setgid(r->gid) != 0) {
        snprintf(err, errlen, "setgid(%lu): %s", (unsigned long)r->gid, strerror(errno));
        return -1;
    }
    if (setuid(r->uid) != 0) {
        snprintf(err, errlen, "setuid(%lu): %s", (unsigned long)r->uid, strerror(errno));
        return -1;
    }
    /* Verify: every id is the user's, and root cannot come back. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != r->uid ||
        eu != r->uid || su != r->uid || rg != r->gid || eg != r->gid || sg != r->gid) {
        snprintf(err, errlen, "privileges not fully dropped to %s", r->name);
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
        snprintf(err, errlen, "could regain root after switching to %s: refusing to run", r->name);
        return -1;
    }
    gid_t groups[4];
    int ng = getgroups(4, groups);
    if (ng != 1 || groups[0] != r->gid) {
        snprintf(err, errlen, "supplementary groups not dropped");
        return -1;
    }
    return 0;
}

/* 0 if path opens for reading, else the errno. O_NONBLOCK: a FIFO put in
 * the file's place must not hang the check; nothing is read. */
static int open_for_reading(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno ? errno : EIO;
    close(fd);
    return 0;
}

int sk_runas_can_read(const sk_runas *r, const char *path, char *err, size_t errlen)
{
    if (!r->change)
        return open_for_reading(path);
    /* We are root and the server will be r. The only exact answer comes
     * from the kernel asked as r: mode bits, ACLs, search permission on
     * every directory on the way, root-squashed NFS, security modules. So
     * a child becomes r with sk_runas_drop() itself (the gid as the only
     * group, gid, uid: exactly the server's identity after its drop, which
     * keeps no supplementary group) and tries open(). setegid()/seteuid() plus
     * faccessat(AT_EACCESS) in this process would also ask the kernel, but
     * it changes the identity of the whole process and must be undone
     * exactly; the child leaves ours alone. It answers with its exit
     * status: the errno (all below 255 on Linux), 0 when readable, 255
     * when it could not become r. */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot check %s as user %s: fork: %s", path, r->name,
                 strerror(errno));
        return -1;
    }
    if (pid == 0) {
        char ignored[64];
        if (sk_runas_drop(r, ignored, sizeof ignored) != 0)
            _exit(255);
        int e = open_for_reading(path);
        _exit(e < 255 ? e : EACCES);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "cannot check %s as user %s: waitpid: %s", path, r->name,
                     strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) {
        snprintf(err, errlen, "cannot check %s as user %s: could not become that user", path,
                 r->name);
        return -1;
    }
    return WEXITSTATUS(status);
}
