/*
 * fuzz_proxy_header.c - libFuzzer target for the PROXY protocol parser
 * (HAProxy's proxy-protocol.txt 2.1, 2.2). The input is fed whole, octet
 * by octet, and in the sizes sk_proxy_want() allows; all three must agree,
 * nothing past the header may be consumed, and a result must be coherent
 * (v1 at most 107 octets, v2 exactly 16 + its announced length).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/proxy_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 70000)
        return 0;
    sk_proxy_parser whole, bytes, wanted;
    sk_proxy_init(&whole);
    sk_proxy_init(&bytes);
    sk_proxy_init(&wanted);

    size_t used = 0;
    sk_proxy_status st = sk_proxy_feed(&whole, data, size, &used);
    if (used > size)
        abort();

    size_t off = 0;
    sk_proxy_status sb = SK_PROXY_MORE;
    while (sb == SK_PROXY_MORE && off < size) {
        size_t u = 0;
        sb = sk_proxy_feed(&bytes, data + off, 1, &u);
        if (u > 1)
            abort();
        off += u;
    }
    if (sb != st || (st == SK_PROXY_DONE && off != used))
        abort();

    size_t off2 = 0;
    sk_proxy_status sw = SK_PROXY_MORE;
    while (sw == SK_PROXY_MORE && off2 < size) {
        size_t w = sk_proxy_want(&wanted);
        if (w == 0)
            abort(); /* MORE always wants something */
        if (w > size - off2)
            w = size - off2;
        size_t u = 0;
        sw = sk_proxy_feed(&wanted, data + off2, w, &u);
        if (u > w || (sw == SK_PROXY_DONE && u != w))
            abort(); /* want() must never reach past a valid header */
        off2 += u;
    }
    if (sw != st || (st == SK_PROXY_DONE && off2 != used))
        abort();

    if (st == SK_PROXY_DONE) {
        const sk_proxy_info *in = sk_proxy_result(&whole);
        if (!in || in->header_size != used || memcmp(in, sk_proxy_result(&bytes), sizeof *in) != 0)
            abort();
        if (in->version == 1 && (used > SK_PROXY_V1_MAX || data[used - 1] != '\n'))
            abort();
        if (in->version == 2 && (used < SK_PROXY_V2_HEAD ||
                                 used != SK_PROXY_V2_HEAD + ((size_t)data[14] << 8 | data[15])))
            abort();
        if (!in->local && in->src_port > 65535)
            abort();
        if (sk_proxy_error(&whole))
            abort();
    } else if (st == SK_PROXY_ERROR) {
        if (!sk_proxy_error(&whole) || sk_proxy_result(&whole))
            abort();
    }
    return 0;
}
