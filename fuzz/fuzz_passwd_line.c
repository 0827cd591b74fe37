/*
 * fuzz_passwd_line.c - libFuzzer target for the password-file line parser
 * (server/passwd.c, sk_passwd_parse_line). The input is copied into a
 * buffer of exactly its size, so any read past the given length trips
 * AddressSanitizer; the returned fields must lie inside the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/passwd.h"

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
            !inside(line, size, pl.hash, pl.hash_len) || pl.hash_len == 0 ||
            !inside(line, size, pl.extra, pl.extra_len) || memchr(pl.user, ':', pl.user_len) ||
            pl.hash[0] != '$')
            abort();
    } else if (rc != 0 && (!err || !*err)) {
        abort(); /* every refusal says why */
    }
    free(line);
    return 0;
}
