/*
 * fuzz_passwd_line.c - libFuzzer target for the password-file line parser
 * (server/passwd.c, sk_passwd_parse_line) and the load-time check of the
 * password field (server/password_scheme.c, sk_pwscheme_check). The input
 * is copied into a buffer of exactly its size, so any read past the given
 * length trips AddressSanitizer; the returned fields must lie inside the
 * line; a refused password always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/passwd.h"
#include "server/password_scheme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const char *base, size_t n, const char *p, size_t len)
{
    return p >= base && p <= base + n && len <= (size_t)(base + n - p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    sk_passwd_line pl;
    const char *err = NULL;
    int rc = sk_passwd_parse_line(line, size, &pl, &err);
    if (rc == 0 && !pl.blank) {
        if (!inside(line, size, pl.user, pl.user_len) || pl.user_len == 0 ||
            !inside(line, size, pl.hash, pl.hash_len) || !inside(line, size, pl.uid, pl.uid_len) ||
            !inside(line, size, pl.gid, pl.gid_len) || !inside(line, size, pl.home, pl.home_len) ||
            !inside(line, size, pl.extra, pl.extra_len) ||
            !inside(line, size, pl.rest, pl.rest_len) || memchr(pl.user, ':', pl.user_len) ||
            memchr(pl.hash, ':', pl.hash_len))
            abort();
        const char *why = NULL, *note = NULL;
        int ok = sk_pwscheme_check(pl.hash, pl.hash_len, &why, &note);
        if ((ok < 0 && (!why || !*why || note)) || (ok == 0 && why))
            abort();
    } else if (rc != 0 && (!err || !*err)) {
        abort(); /* every refusal says why */
    }
    free(line);
    return 0;
}
