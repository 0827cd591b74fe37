/*
 * fuzz_envelope.c - libFuzzer target for the queue's envelope record parser
 * (queue/envelope.c, sk_envelope_parse). The input is copied into a buffer
 * of exactly its size, so any read past it trips AddressSanitizer. A record
 * that parses must format again, and that text must parse to the same
 * record and format to the same bytes (the writer and the parser agree).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    sk_envelope e;
    char err[256];
    if (sk_envelope_parse(copy, size, &e, err, sizeof err) == 0) {
        sk_buf a, b;
        sk_buf_init(&a, 0);
        sk_buf_init(&b, 0);
        if (sk_envelope_format(&e, &a) < 0)
            abort();
        sk_envelope again;
        if (sk_envelope_parse(a.data, a.len, &again, err, sizeof err) < 0)
            abort();
        if (sk_envelope_format(&again, &b) < 0 || a.len != b.len || memcmp(a.data, b.data, a.len))
            abort();
        if (again.nrcpts != e.nrcpts || strcmp(again.sender, e.sender) != 0)
            abort();
        sk_envelope_clear(&again);
        sk_buf_free(&a);
        sk_buf_free(&b);
        sk_envelope_clear(&e);
    } else if (e.nrcpts != 0 || e.rcpts != NULL) {
        abort(); /* a refused record is left empty */
    }
    free(copy);
    return 0;
}
