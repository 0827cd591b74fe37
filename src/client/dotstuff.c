/*
 * dotstuff.c - preparing message text for the wire: CRLF line ends
 * (RFC 5321 2.3.8: only CRLF ends a line; a bare CR or LF must never reach
 * a server, where it could be read as an end of data - SMTP smuggling) and
 * dot-stuffing for DATA (RFC 5321 4.5.2) with the end-of-data marker.
 */
#include "smtpkit/client.h"

int sk_crlf_normalise(const char *p, size_t n, sk_buf *out)
{
    size_t i = 0, run = 0; /* run: start of bytes not yet copied */
    while (i < n) {
        char ch = p[i];
        if (ch == '\r' && i + 1 < n && p[i + 1] == '\n') {
            i += 2;
            continue;
        }
        if (ch == '\r' || ch == '\n') {
            if (sk_buf_append(out, p + run, i - run) < 0 || sk_buf_append(out, "\r\n", 2) < 0)
                return -1;
            i++;
            run = i;
            continue;
        }
        i++;
    }
    if (sk_buf_append(out, p + run, n - run) < 0)
        return -1;
    if (n && !(out->len >= 2 && out->data[out->len - 2] == '\r' && out->data[out->len - 1] == '\n'))
        return sk_buf_append(out, "\r\n", 2);
    return 0;
}

int sk_dot_stuff(const char *p, size_t n, sk_buf *out)
{
    int bol = 1; /* at the beginning of a line */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (bol && p[i] == '.') {
            /* Copy up to and including this dot, then add the stuffed one. */
            if (sk_buf_append(out, p + run, i + 1 - run) < 0 || sk_buf_append(out, ".", 1) < 0)
                return -1;
            run = i + 1;
        }
        /* A bare CR or LF counts as a line end here too: text that was not
         * normalised must still not smuggle an end of data past a lenient
         * server. */
        bol = p[i] == '\n' || p[i] == '\r';
    }
    if (sk_buf_append(out, p + run, n - run) < 0)
        return -1;
    int ends_crlf = n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
    if (n && !ends_crlf && sk_buf_append(out, "\r\n", 2) < 0)
        return -1;
    return sk_buf_append(out, ".\r\n", 3);
}
