/*
 * json_writer.h - a small streaming JSON writer (RFC 8259) for the
 * machine-readable output of `smtpkit probe --json`. Strings are escaped;
 * bytes that are not valid UTF-8 become U+FFFD, so the output is always
 * valid JSON whatever a server sent.
 */
#ifndef SMTPKIT_CLIENT_JSON_WRITER_H
#define SMTPKIT_CLIENT_JSON_WRITER_H

#include <stddef.h>

#include "smtpkit/buf.h"

#define SK_JSON_DEPTH 32

typedef struct sk_json {
    sk_buf *out;
    int depth;
    int first[SK_JSON_DEPTH]; /* no member written yet at this level */
    int after_key;            /* a key was written: the value follows */
    int failed;               /* an append failed or nesting was too deep */
} sk_json;

void sk_json_init(sk_json *j, sk_buf *out);
void sk_json_begin_object(sk_json *j);
void sk_json_end_object(sk_json *j);
void sk_json_begin_array(sk_json *j);
void sk_json_end_array(sk_json *j);
void sk_json_key(sk_json *j, const char *k);
void sk_json_string(sk_json *j, const char *s); /* NULL writes null */
void sk_json_stringn(sk_json *j, const char *s, size_t n);
void sk_json_int(sk_json *j, long long v);
void sk_json_double(sk_json *j, double v, int decimals);
void sk_json_bool(sk_json *j, int v);
void sk_json_null(sk_json *j);
/* key + value shorthands */
void sk_json_kv_string(sk_json *j, const char *k, const char *v);
void sk_json_kv_int(sk_json *j, const char *k, long long v);
void sk_json_kv_bool(sk_json *j, const char *k, int v);

#endif
