/*
 * buf.c - length-carrying byte buffers with an explicit maximum.
 */
#include "smtpkit/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t limit_of(const sk_buf *b)
{
    return b->max ? b->max : SIZE_MAX - 1;
}

void sk_buf_init(sk_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void sk_buf_free(sk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sk_buf_clear(sk_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Make room for `extra` more bytes plus the terminating NUL. */
static int reserve(sk_buf *b, size_t extra)
{
    if (extra > limit_of(b) || b->len > limit_of(b) - extra)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap && b->data)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > limit_of(b))
        ncap = limit_of(b);
    char *p = realloc(b->data, ncap + 1);
    if (!p)
        return -1;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int sk_buf_append(sk_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sk_buf_append_str(sk_buf *b, const char *s)
{
    return sk_buf_append(b, s, strlen(s));
}

int sk_buf_vprintf(sk_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0 || reserve(b, (size_t)n) < 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sk_buf_printf(sk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = sk_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

void sk_buf_consume(sk_buf *b, size_t n)
{
    if (n >= b->len) {
        sk_buf_clear(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
