/*
 * mime.c - MIME encodings for messages the client builds: base64 and
 * quoted-printable bodies (RFC 2045 6.7, 6.8), header folding (RFC 5322
 * 2.2.3), encoded-words for non-ASCII header text (RFC 2047 2, 5, 6.2),
 * multipart boundaries (RFC 2046 5.1.1).
 */
#include "smtpkit/client.h"

#include "smtpkit/address.h" /* sk_utf8_valid */

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define LINE_SOFT 78 /* RFC 5322 2.1.1: SHOULD */

int sk_mime_base64(const void *p, size_t n, sk_buf *out)
{
    const unsigned char *s = p;
    unsigned char line[80];
    for (size_t off = 0; off < n; off += 57) {
        size_t chunk = n - off > 57 ? 57 : n - off; /* 57 bytes -> 76 characters */
        int w = EVP_EncodeBlock(line, s + off, (int)chunk);
        if (w < 0 || sk_buf_append(out, line, (size_t)w) < 0 || sk_buf_append(out, "\r\n", 2) < 0)
            return -1;
    }
    return 0;
}

static const char hexd[] = "0123456789ABCDEF";

int sk_mime_qp(const char *p, size_t n, sk_buf *out)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r' && i + 1 < n && p[i + 1] == '\n') {
            if (sk_buf_append(out, "\r\n", 2) < 0)
                return -1;
            col = 0;
            i++;
            continue;
        }
        /* White space is literal unless it ends a line (it would be lost). */
        int at_eol = i + 1 == n || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n');
        char tok[3];
        size_t tl;
        if ((ch >= 33 && ch <= 126 && ch != '=') || ((ch == ' ' || ch == '\t') && !at_eol)) {
            tok[0] = (char)ch;
            tl = 1;
        } else {
            tok[0] = '=';
            tok[1] = hexd[ch >> 4];
            tok[2] = hexd[ch & 15];
            tl = 3;
        }
        /* Lines at most 76 characters including the soft break "=". */
        if (col + tl > 75) {
            if (sk_buf_append(out, "=\r\n", 3) < 0)
                return -1;
            col = 0;
        }
        if (sk_buf_append(out, tok, tl) < 0)
            return -1;
        col += tl;
    }
    return 0;
}

static int is_plain_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            if (c != '\t')
                return 0;
    }
    return 1;
}

/* Append encoded-words for s[0..n), the first on a line that already holds
 * `col` characters; words are separated by folding (CRLF SP) when
 * `fold`, else by a single space. */
static int encoded_words(sk_buf *out, const char *s, size_t n, size_t col, int fold)
{
    size_t pos = 0;
    if (n == 0)
        return sk_buf_append_str(out, "=?UTF-8?B?"
                                      "?=");
    while (pos < n) {
        /* "=?UTF-8?B?" + base64 + "?=" within 75 characters and, where
         * possible, the line within 76. */
        size_t room = col + 12 < 76 ? 76 - col - 12 : 0;
        if (room > 63)
            room = 63;
        size_t maxraw = room / 4 * 3;
        size_t end = pos + maxraw < n ? pos + maxraw : n;
        while (end > pos && end < n && ((unsigned char)s[end] & 0xC0) == 0x80)
            end--; /* never split a character between two words */
        if (end == pos) {
            /* Not even one character fits: take one whole character anyway. */
            end = pos + 1;
            while (end < n && ((unsigned char)s[end] & 0xC0) == 0x80)
                end++;
        }
        unsigned char b64[96];
        int w = EVP_EncodeBlock(b64, (const unsigned char *)s + pos, (int)(end - pos));
        if (w < 0 || sk_buf_append_str(out, "=?UTF-8?B?") < 0 ||
            sk_buf_append(out, b64, (size_t)w) < 0 || sk_buf_append_str(out, "?=") < 0)
            return -1;
        pos = end;
        if (pos < n) {
            if (sk_buf_append_str(out, fold ? "\r\n " : " ") < 0)
                return -1;
            col = fold ? 1 : col + 12 + (size_t)w + 1;
        }
    }
    return 0;
}

int sk_mime_header(sk_buf *out, const char *name, const char *value)
{
    size_t vl = strlen(value);
    if (memchr(value, '\r', vl) || memchr(value, '\n', vl))
        return -1;
    size_t mark = out->len;
    if (sk_buf_printf(out, "%s:", name) < 0)
        return -1;
    size_t col = strlen(name) + 1;
    int ascii = is_plain_ascii(value, vl);
    /* A word too long to fold is written as encoded-words, which can be
     * split anywhere between characters. */
    size_t longest = 0, cur = 0;
    for (size_t i = 0; i < vl; i++) {
        cur = value[i] == ' ' ? 0 : cur + 1;
        if (cur > longest)
            longest = cur;
    }
    int rc;
    if (!ascii || longest > 900) {
        rc = sk_buf_append(out, " ", 1) < 0 ? -1 : encoded_words(out, value, vl, col + 1, 1);
    } else {
        rc = 0;
        size_t i = 0;
        int first = 1;
        while (i < vl && rc == 0) {
            size_t s = i;
            while (i < vl && value[i] != ' ')
                i++;
            size_t wl = i - s;
            size_t sp = 1; /* the space before the word */
            if (!first && col + sp + wl > LINE_SOFT) {
                rc = sk_buf_append(out, "\r\n", 2);
                col = 0;
            }
            if (rc == 0)
                rc = sk_buf_append(out, " ", 1) < 0 || sk_buf_append(out, value + s, wl) < 0 ? -1
                                                                                             : 0;
            col += sp + wl;
            first = 0;
            if (i < vl)
                i++; /* skip one space; further spaces become empty words */
        }
    }
    if (rc == 0)
        rc = sk_buf_append(out, "\r\n", 2);
    if (rc < 0)
        out->len = mark;
    if (out->data)
        out->data[out->len] = '\0';
    return rc;
}

int sk_mime_phrase(sk_buf *out, const char *s)
{
    size_t n = strlen(s);
    if (!is_plain_ascii(s, n))
        return encoded_words(out, s, n, 0, 0);
    int special = 0;
    for (size_t i = 0; i < n; i++)
        if (strchr("()<>[]:;@\\,.\"", s[i]))
            special = 1;
    if (!special)
        return sk_buf_append(out, s, n);
    if (sk_buf_append(out, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((s[i] == '"' || s[i] == '\\') && sk_buf_append(out, "\\", 1) < 0)
            return -1;
        if (sk_buf_append(out, s + i, 1) < 0)
            return -1;
    }
    return sk_buf_append(out, "\"", 1);
}

void sk_mime_boundary(char *out, size_t outlen)
{
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        unsigned long long t = (unsigned long long)time(NULL) ^ (unsigned long long)(size_t)out;
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(t >> (i % 8 * 8));
    }
    char hex[25];
    for (size_t i = 0; i < sizeof r; i++) {
        hex[2 * i] = hexd[r[i] >> 4];
        hex[2 * i + 1] = hexd[r[i] & 15];
    }
    hex[24] = '\0';
    snprintf(out, outlen, "=_smtpkit_%s", hex);
}

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"log", "text/plain"},
    {"csv", "text/csv"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"xml", "application/xml"},
    {"json", "application/json"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"webp", "image/webp"},
    {"ics", "text/calendar"},
    {"eml", "message/rfc822"},
    {"md", "text/markdown"},
    {"doc", "application/msword"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
};

const char *sk_mime_type_for(const char *filename)
{
    const char *dot = strrchr(filename, '.');
    if (dot && dot[1])
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}
