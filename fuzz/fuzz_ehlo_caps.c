/*
 * fuzz_ehlo_caps.c - libFuzzer target for the client's EHLO capability
 * parser (RFC 5321 4.1.1.1): the input is split into lines as a server's
 * EHLO reply would be, every line is parsed into one sk_caps, and every
 * recorded capability is explained. Checks the parser's own invariants.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sk_caps c;
    sk_caps_clear(&c);
    size_t i = 0;
    while (i < size) {
        size_t s = i;
        while (i < size && data[i] != '\n')
            i++;
        size_t e = i;
        if (e > s && data[e - 1] == '\r')
            e--;
        /* Pass an exact-length copy so reads past the line are caught. */
        char *line = malloc(e - s ? e - s : 1);
        if (!line)
            return 0;
        memcpy(line, data + s, e - s);
        (void)sk_caps_parse_line(&c, line, e - s);
        free(line);
        if (i < size)
            i++;
    }
    if (c.ncaps > SK_CAPS_MAX)
        abort();
    if (strlen(c.auth_list) >= sizeof c.auth_list)
        abort();
    for (size_t k = 0; k < c.ncaps; k++) {
        char out[300];
        if (strlen(c.caps[k].keyword) >= sizeof c.caps[k].keyword ||
            strlen(c.caps[k].params) >= sizeof c.caps[k].params)
            abort();
        for (const char *p = c.caps[k].params; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort(); /* control bytes must never reach a terminal */
        sk_cap_explain(&c.caps[k], out, sizeof out);
        if (strlen(out) >= sizeof out)
            abort();
    }
    char sz[32];
    sk_format_size(c.size, sz, sizeof sz);
    return 0;
}
