/*
 * pathutil.h - joining and normalising filesystem paths from the
 * configuration (lexically: no filesystem access, no symlink resolution).
 */
#ifndef SMTPKIT_SERVER_PATHUTIL_H
#define SMTPKIT_SERVER_PATHUTIL_H

/* `p` if absolute, else `base`/`p`; "." and ".." components and repeated
 * slashes are removed. Returns a malloc'd string or NULL (out of memory,
 * longer than PATH_MAX). */
char *sk_path_join(const char *base, const char *p);

/* The absolute, normalised directory holding `path` (a file name); relative
 * names are taken against the current directory. NULL with errno set. */
char *sk_path_dir_abs(const char *path);

/* mkdir -p with `mode` for missing components. 0 or -1 with errno. */
int sk_path_mkdirs(const char *path, unsigned mode);

#endif
