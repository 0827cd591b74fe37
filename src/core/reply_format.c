/*
 * reply_format.c - emit SMTP replies (RFC 5321 4.2, 4.2.1; RFC 2034).
 *
 * One function builds every reply the server sends, so single and multi-line
 * replies share one code path and no caller can emit a malformed line.
 */
#include "smtpkit/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int append_line(sk_buf *out, int code, char sep, const char *enh, const char *p, size_t n)
{
    if (sk_buf_printf(out, "%03d%c", code, sep) < 0)
        return -1;
    if (enh && *enh && (sk_buf_append_str(out, enh) < 0 || (n && sk_buf_append(out, " ", 1) < 0)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char ch = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
        if (sk_buf_append(out, &ch, 1) < 0)
            return -1;
    }
    return sk_buf_append(out, "\r\n", 2);
}

int sk_reply_format(sk_buf *out, int code, const char *enhanced, const char *text)
{
    if (code < 100 || code > 999)
        return -1;
    size_t mark = out->len;
    const char *p = text ? text : "";
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[n - 1] == '\r')
            n--;
        if (append_line(out, code, nl ? '-' : ' ', enhanced, p, n) < 0) {
            out->len = mark; /* never leave half a reply behind */
            if (out->data)
                out->data[mark] = '\0';
            return -1;
        }
        if (!nl)
            return 0;
        p = nl + 1;
    }
}

int sk_reply_formatf(sk_buf *out, int code, const char *enhanced, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return sk_reply_format(out, code, enhanced, text);
}
