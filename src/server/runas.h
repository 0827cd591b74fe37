/*
 * runas.h - least privilege: when started as root, the server binds its
 * sockets, prepares the mail directories for the configured user, and then
 * becomes that user for good (supplementary groups, gid, uid), before it
 * reads a single byte from the network.
 */
#ifndef SMTPKIT_SERVER_RUNAS_H
#define SMTPKIT_SERVER_RUNAS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct sk_runas {
    int change; /* 1: started as root, will switch to uid/gid */
    uid_t uid;
    gid_t gid;
    char name[64];  /* the account name, for logs */
    char note[256]; /* a warning to log (user ignored when not root), or "" */
} sk_runas;

/* Decide who to run as. `user` is the configured account or NULL. Fails when
 * started as root without a user, or when the user is root itself or does
 * not exist. 0, or -1 with a message in err. */
int sk_runas_resolve(const char *user, sk_runas *out, char *err, size_t errlen);

/* Create `dir` (mkdir -p) and, when `maildir`, its tmp/ new/ cur/; when
 * r->change, hand them to the user. Directories are opened with O_NOFOLLOW
 * below `trusted_base` (when dir lies under it), so a symlink planted by
 * the unprivileged user cannot redirect the chown. 0 or -1 with err. */
int sk_runas_prepare_dir(const sk_runas *r, const char *trusted_base, const char *dir, int maildir,
                         char *err, size_t errlen);

/* Switch to r->uid/r->gid for good and verify that root cannot be regained.
 * No-op unless r->change. 0 or -1 with err. */
int sk_runas_drop(const sk_runas *r, char *err, size_t errlen);

/* Whether the account the server runs as can open `path` for reading:
 * 0 yes; >0 no, the errno of the refused open() (EACCES, ENOENT...);
 * -1 the check itself could not run (err says why). When r->change (we
 * are root and will become r->uid), a child process asks the kernel as
 * that user (see runas.c); otherwise we already are that user. Call it
 * before threads exist (start-up, --check). */
int sk_runas_can_read(const sk_runas *r, const char *path, char *err, size_t errlen);

#endif
