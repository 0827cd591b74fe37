/*
 * json_writer.c - streaming JSON writer (RFC 8259 7: string escaping).
 */
#include "client/json_writer.h"

#include <stdio.h>
#include <string.h>

void sk_json_init(sk_json *j, sk_buf *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
    j->first[0] = 1;
}

static void put(sk_json *j, const char *s, size_t n)
{
    if (!j->failed && sk_buf_append(j->out, s, n) < 0)
        j->failed = 1;
}

/* Separator before a value or a key. */
static void sep(sk_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->first[j->depth])
        put(j, ",", 1);
    j->first[j->depth] = 0;
}

static void open_(sk_json *j, const char *c)
{
    sep(j);
    put(j, c, 1);
    if (j->depth + 1 >= SK_JSON_DEPTH) {
        j->failed = 1;
        return;
    }
    j->depth++;
    j->first[j->depth] = 1;
}

static void close_(sk_json *j, const char *c)
{
    if (j->depth > 0)
        j->depth--;
    put(j, c, 1);
}

void sk_json_begin_object(sk_json *j)
{
    open_(j, "{");
}
void sk_json_end_object(sk_json *j)
{
    close_(j, "}");
}
void sk_json_begin_array(sk_json *j)
{
    open_(j, "[");
}
void sk_json_end_array(sk_json *j)
{
    close_(j, "]");
}

/* Length of a valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void raw_string(sk_json *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    put(j, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(j, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            put(j, e, 6);
            i++;
        } else if (c < 0x80) {
            put(j, s + i, 1);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                put(j, s + i, l);
                i += l;
            } else {
                put(j, "\\ufffd", 6);
                i++;
            }
        }
    }
    put(j, "\"", 1);
}

void sk_json_key(sk_json *j, const char *k)
{
    sep(j);
    raw_string(j, k, strlen(k));
    put(j, ":", 1);
    j->after_key = 1;
}

void sk_json_stringn(sk_json *j, const char *s, size_t n)
{
    sep(j);
    raw_string(j, s, n);
}

void sk_json_string(sk_json *j, const char *s)
{
    if (!s) {
        sk_json_null(j);
        return;
    }
    sk_json_stringn(j, s, strlen(s));
}

void sk_json_int(sk_json *j, long long v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", v);
    sep(j);
    put(j, b, (size_t)n);
}

void sk_json_double(sk_json *j, double v, int decimals)
{
    char b[64];
    if (v != v || v > 1e300 || v < -1e300) {
        sk_json_null(j); /* NaN / infinity are not JSON */
        return;
    }
    int n = snprintf(b, sizeof b, "%.*f", decimals, v);
    sep(j);
    put(j, b, (size_t)n);
}

void sk_json_bool(sk_json *j, int v)
{
    sep(j);
    put(j, v ? "true" : "false", v ? 4 : 5);
}

void sk_json_null(sk_json *j)
{
    sep(j);
    put(j, "null", 4);
}

void sk_json_kv_string(sk_json *j, const char *k, const char *v)
{
    sk_json_key(j, k);
    sk_json_string(j, v);
}

void sk_json_kv_int(sk_json *j, const char *k, long long v)
{
    sk_json_key(j, k);
    sk_json_int(j, v);
}

void sk_json_kv_bool(sk_json *j, const char *k, int v)
{
    sk_json_key(j, k);
    sk_json_bool(j, v);
}
