/*
 * buf.h - length-carrying byte buffers with an explicit maximum.
 *
 * Every buffer that holds bytes from the network has a hard cap (`max`), so
 * a slow or hostile peer can never make one grow without bound. All size
 * arithmetic is overflow-checked.
 */
#ifndef SMTPKIT_BUF_H
#define SMTPKIT_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sk_buf {
    char *data; /* always NUL-terminated after data[len] when data != NULL */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated (excluding the NUL) */
    size_t max; /* hard limit on len; 0 means SIZE_MAX - 1 */
} sk_buf;

/* Initialise an empty buffer that may hold at most `max` bytes. */
void sk_buf_init(sk_buf *b, size_t max);
/* Release memory; the buffer is empty and reusable afterwards. */
void sk_buf_free(sk_buf *b);
/* Forget the contents, keeping the allocation. */
void sk_buf_clear(sk_buf *b);
/* Append n bytes. Returns 0, or -1 (contents unchanged) if the result would
 * exceed max or memory is exhausted. */
int sk_buf_append(sk_buf *b, const void *p, size_t n);
int sk_buf_append_str(sk_buf *b, const char *s);
/* printf-style append; -1 on overflow of max or on allocation failure. */
int sk_buf_printf(sk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sk_buf_vprintf(sk_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n > len drops everything). */
void sk_buf_consume(sk_buf *b, size_t n);

#endif
