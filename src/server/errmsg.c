/*
 * errmsg.c - filling a caller's error buffer.
 */
#include "server/errmsg.h"

#include <stdarg.h>
#include <stdio.h>

void sk_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
