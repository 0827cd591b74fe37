/*
 * text_mask.c - masking of client-chosen values for log lines (see
 * text_mask.h).
 */
#include "util/text_mask.h"

static const char *mask(const char *src, char *dst, size_t n, unsigned char lowest)
{
    size_t i = 0;
    if (n == 0)
        return "";
    for (; src && src[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < lowest || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    dst[i] = '\0';
    return dst;
}

const char *sk_text_token(const char *src, char *dst, size_t n)
{
    return mask(src, dst, n, 0x21);
}

const char *sk_text_quoted(const char *src, char *dst, size_t n)
{
    return mask(src, dst, n, 0x20);
}
