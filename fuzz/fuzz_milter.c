/*
 * fuzz_milter.c - libFuzzer target for the milter reply decoder
 * (src/core/milter_codec.c): the input is a stream of reply packets from a
 * filter. Decoded packet by packet, the decoder must never consume more
 * than it was given, must ask for more only when the packet is really
 * incomplete, and every string it returns must end inside its packet.
 * A REPLYCODE's text also goes through the reply-code check, whose text
 * must come out printable.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/milter_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void within(const char *s, const char *lo, const char *hi)
{
    if (!s)
        return;
    if (s < lo || s >= hi)
        abort();
    const char *nul = memchr(s, '\0', (size_t)(hi - s));
    if (!nul)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 300000)
        return 0;
    const char *p = (const char *)data;
    size_t off = 0;
    while (off < size) {
        sk_milter_reply r;
        size_t used = 0, need = 0;
        sk_milter_status st = sk_milter_decode(p + off, size - off, &used, &need, &r);
        if (st == SK_MILTER_ERROR) {
            if (!r.error)
                abort();
            break;
        }
        if (st == SK_MILTER_MORE) {
            if (need <= size - off)
                abort(); /* had enough and still asked for more */
            break;
        }
        if (used < 5 || used > size - off)
            abort();
        const char *lo = p + off + 5, *hi = p + off + used;
        within(r.name, lo, hi);
        within(r.value, lo, hi);
        within(r.text, lo, hi);
        if (r.data && (r.data < lo || r.data + r.len > hi))
            abort();
        if (r.cmd == SMFIR_REPLYCODE) {
            int code;
            char enh[16], text[512];
            if (sk_milter_parse_replycode(r.text, &code, enh, text, sizeof text) == 0) {
                if (code < 400 || code > 599)
                    abort();
                for (const char *t = text; *t; t++)
                    if ((unsigned char)*t < 32 && *t != '\t')
                        abort();
            }
        }
        off += used;
    }
    return 0;
}
