/*
 * fuzz_sasl.c - libFuzzer target for strict base64 and the AUTH PLAIN /
 * LOGIN decoder (RFC 4648 4, RFC 4616, RFC 4954 4). Lines are separated by
 * LF; the first byte picks the mechanism and whether the first line is an
 * initial response. Decoded base64 must re-encode to the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4 * SK_SASL_LINE_MAX)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;

    /* base64 round trip on the whole input */
    unsigned char *dec = malloc(n + 1);
    char *enc = malloc(n + 8);
    if (!dec || !enc)
        abort();
    ssize_t d = sk_sasl_b64_decode(in, n, dec, n + 1);
    if (d >= 0) {
        size_t e = sk_sasl_b64_encode(dec, (size_t)d, enc, n + 8);
        if (e != n || memcmp(enc, in, n) != 0)
            abort();
    }
    free(dec);
    free(enc);

    sk_sasl x;
    const char *ch = NULL;
    sk_sasl_mech mech = data[0] & 1 ? SK_SASL_LOGIN : SK_SASL_PLAIN;
    const char *p = in, *end = in + n;
    const char *nl = memchr(p, '\n', n);
    size_t first = nl ? (size_t)(nl - p) : n;
    sk_sasl_status st;
    if (data[0] & 2) {
        st = sk_sasl_start(&x, mech, p, first, &ch);
        p += first + (nl ? 1 : 0);
    } else {
        st = sk_sasl_start(&x, mech, NULL, 0, &ch);
    }
    int steps = 0;
    while (st == SK_SASL_CONTINUE && p < end) {
        if (!ch || ++steps > 3)
            abort(); /* PLAIN and LOGIN need at most two responses */
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        st = sk_sasl_step(&x, p, len, &ch);
        p += len + (nl ? 1 : 0);
    }
    if (st == SK_SASL_DONE) {
        size_t ul = strnlen(x.user, sizeof x.user), pl = strnlen(x.pass, sizeof x.pass);
        if (ul == 0 || ul > SK_SASL_FIELD_MAX || pl == 0 || pl > SK_SASL_FIELD_MAX)
            abort();
    }
    sk_sasl_clear(&x);
    return 0;
}
