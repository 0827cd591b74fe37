/*
 * fuzz_data_framer.c - libFuzzer target for the DATA/BDAT framer (RFC 5321
 * 4.1.1.4, 4.5.2, 2.3.8). Differential: the input fed whole and fed in
 * pieces chosen by the input must give the same output and the same end;
 * the end is only ever right after CR LF "." CR LF; the output never holds
 * a bare CR or LF; the lone-dot flag comes only with a bare line end.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/data_framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct out {
    char *p;
    size_t len, cap;
} out;

static void sink(void *arg, const char *p, size_t n)
{
    out *o = arg;
    if (n == 0 || n > SK_FRAMER_CHUNK)
        abort();
    if (o->len + n > o->cap) {
        size_t cap = (o->len + n) * 2;
        char *q = realloc(o->p, cap);
        if (!q)
            abort();
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

static size_t run(sk_framer_mode mode, const char *in, size_t n, const uint8_t *steps,
                  size_t nsteps, out *o, int *done, unsigned *seen)
{
    sk_data_framer f;
    sk_data_framer_init(&f, mode, sink, o);
    size_t pos = 0, k = 0;
    *done = 0;
    while (pos < n && !*done) {
        size_t len = nsteps ? (size_t)steps[k++ % nsteps] + 1 : n - pos;
        if (len > n - pos)
            len = n - pos;
        size_t used = sk_data_framer_feed(&f, in + pos, len, done);
        if (used > len || (!*done && used != len))
            abort();
        pos += used;
    }
    if (mode == SK_FRAMER_RAW)
        sk_data_framer_finish(&f);
    *seen = f.seen;
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    sk_framer_mode mode = data[0] & 1 ? SK_FRAMER_RAW : SK_FRAMER_DOTS;
    size_t nsteps = data[1] % 8;
    if (size < 2 + nsteps)
        return 0;
    const uint8_t *steps = data + 2;
    const char *in = (const char *)data + 2 + nsteps;
    size_t n = size - 2 - nsteps;

    out a = {0}, b = {0};
    int done_a, done_b;
    unsigned seen_a, seen_b;
    size_t pa = run(mode, in, n, NULL, 0, &a, &done_a, &seen_a);
    size_t pb = run(mode, in, n, steps, nsteps, &b, &done_b, &seen_b);
    if (pa != pb || done_a != done_b || a.len != b.len || seen_a != seen_b ||
        (a.len && memcmp(a.p, b.p, a.len) != 0))
        abort();
    if (done_a) {
        if (mode != SK_FRAMER_DOTS || pa < 3 || memcmp(in + pa - 3, ".\r\n", 3) != 0 ||
            (pa > 3 && (pa < 5 || memcmp(in + pa - 5, "\r\n", 2) != 0)))
            abort();
    }
    /* a smuggling-shaped "." line only ever comes with a bare line end,
     * and never in BDAT (no dots there) */
    if ((seen_a & SK_FRAMER_SEEN_LONE_DOT) &&
        (mode == SK_FRAMER_RAW || !(seen_a & (SK_FRAMER_SEEN_BARE_LF | SK_FRAMER_SEEN_BARE_CR))))
        abort();
    for (size_t i = 0; i < a.len; i++) {
        if (a.p[i] == '\n' && (i == 0 || a.p[i - 1] != '\r'))
            abort();
        if (a.p[i] == '\r' && (i + 1 >= a.len || a.p[i + 1] != '\n'))
            abort(); /* a pending CR is held back, never emitted alone */
    }
    free(a.p);
    free(b.p);
    return 0;
}
