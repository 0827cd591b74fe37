/*
 * pathutil.c - lexical path joining for configuration paths, and mkdir -p.
 */
#include "server/pathutil.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Normalise an absolute path in place: collapse "//", drop ".", resolve "..". */
static void normalise(char *s)
{
    char *out = s; /* s[0] == '/' */
    const char *p = s;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 1 && p[0] == '.') {
            /* skip */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (out > s && *--out != '/')
                ;
        } else {
            *out++ = '/';
            memmove(out, p, n);
            out += n;
        }
        p += n;
    }
    if (out == s)
        *out++ = '/';
    *out = '\0';
}

char *sk_path_join(const char *base, const char *p)
{
    size_t bl = p[0] == '/' ? 0 : strlen(base);
    size_t pl = strlen(p);
    if (bl > PATH_MAX || pl > PATH_MAX || bl + pl + 2 > PATH_MAX)
        return NULL;
    char *r = malloc(bl + pl + 3);
    if (!r)
        return NULL;
    if (bl) {
        memcpy(r, "/", 1);
        memcpy(r + 1, base, bl);
        r[bl + 1] = '/';
        memcpy(r + bl + 2, p, pl + 1);
    } else {
        r[0] = '/';
        memcpy(r + 1, p, pl + 1);
    }
    normalise(r);
    return r;
}

char *sk_path_dir_abs(const char *path)
{
    char cwd[PATH_MAX];
    const char *base = "/";
    if (path[0] != '/') {
        if (!getcwd(cwd, sizeof cwd))
            return NULL;
        base = cwd;
    }
    char *full = sk_path_join(base, path);
    if (!full) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    char *slash = strrchr(full, '/');
    if (slash == full)
        full[1] = '\0';
    else
        *slash = '\0';
    return full;
}

int sk_path_mkdirs(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return -1;
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
