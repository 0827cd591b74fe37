/*
 * fuzz_lmtp_target.c - libFuzzer target for the parser of the `lmtp`
 * setting (store/lmtp_pool.c, sk_lmtp_target_parse): "unix:/path",
 * "host:port", "[address]:port". The input is a NUL-terminated copy of
 * exactly its size. Checked: a target that parses has an absolute socket
 * path (unix) or a non-empty host and a canonical port 1..65535, every
 * output NUL-terminated within its buffer; a refusal always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/lmtp_pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char host[256], port[108], err[300];
    int is_unix = -1;
    err[0] = '\0';
    int rc =
        sk_lmtp_target_parse(copy, host, sizeof host, port, sizeof port, &is_unix, err, sizeof err);
    if (rc == 0) {
        if (!memchr(host, '\0', sizeof host) || !memchr(port, '\0', sizeof port))
            abort();
        if (is_unix) {
            if (port[0] != '/' || strcmp(port, copy + 5) != 0)
                abort();
        } else {
            char *end;
            unsigned long p = strtoul(port, &end, 10);
            if (!host[0] || *end || p < 1 || p > 65535 || port[0] == '0')
                abort();
        }
    } else if (rc != -1 || !err[0]) {
        abort();
    }
    free(copy);
    return 0;
}
