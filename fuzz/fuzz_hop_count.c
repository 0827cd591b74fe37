/*
 * fuzz_hop_count.c - libFuzzer target for the Received: field counter
 * (RFC 5321 6.3). Differential: the input fed whole, byte by byte and in
 * pieces chosen by the input must give the same count and the same
 * end-of-header state, and the count can never exceed the number of lines
 * (a naive second implementation over the whole input must agree).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hop_count.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The same rules written the obvious way, over the whole input. */
static unsigned naive(const char *p, size_t n, int *body)
{
    unsigned count = 0;
    size_t i = 0;
    *body = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && p[e] != '\n')
            e++;
        size_t len = e - i;
        if (len && e < n && p[e - 1] == '\r')
            len--;
        if (e < n && (len == 0 || (e - i == 1 && p[i] == '\r'))) {
            *body = 1;
            break;
        }
        if (len >= 9 && strncasecmp(p + i, "received", 8) == 0) {
            size_t k = i + 8;
            while (k < i + len && (p[k] == ' ' || p[k] == '\t'))
                k++;
            if (k < i + len && p[k] == ':')
                count++;
        }
        i = e + 1;
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned step = data[0] % 17 + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    sk_hop_count whole, bytes, pieces;
    sk_hop_count_init(&whole);
    sk_hop_count_init(&bytes);
    sk_hop_count_init(&pieces);
    sk_hop_count_feed(&whole, p, n);
    for (size_t i = 0; i < n; i++)
        sk_hop_count_feed(&bytes, p + i, 1);
    for (size_t i = 0; i < n; i += step)
        sk_hop_count_feed(&pieces, p + i, n - i < step ? n - i : step);
    if (whole.count != bytes.count || whole.count != pieces.count)
        abort();
    if (sk_hop_count_body_reached(&whole) != sk_hop_count_body_reached(&bytes) ||
        sk_hop_count_body_reached(&whole) != sk_hop_count_body_reached(&pieces))
        abort();
    int body;
    if (!memchr(p, '\0', n) && naive(p, n, &body) != whole.count)
        abort();
    return 0;
}
