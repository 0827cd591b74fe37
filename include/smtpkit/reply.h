/*
 * reply.h - SMTP replies: parsing (client side, `explain`) and formatting
 * (server side). RFC 5321 4.2 (reply syntax), RFC 2034/3463 (enhanced codes).
 */
#ifndef SMTPKIT_REPLY_H
#define SMTPKIT_REPLY_H

#include <stddef.h>
#include <sys/types.h>

#include "smtpkit/buf.h"

/* An enhanced status code class.subject.detail (RFC 3463). */
typedef struct sk_enhanced {
    int cls;     /* 2, 4 or 5 */
    int subject; /* 0..999 */
    int detail;  /* 0..999 */
} sk_enhanced;

/* Parse "5.7.1" (exactly; no trailing bytes). Returns 0 or -1. */
int sk_enhanced_parse(const char *s, size_t len, sk_enhanced *out);

#define SK_REPLY_MAX_LINES 128

/* A parsed reply: one code, one or more lines. */
typedef struct sk_reply {
    int code;         /* 100..599, validated digits */
    int has_enhanced; /* every line carried the same enhanced code */
    sk_enhanced enhanced;
    size_t nlines;
    char *lines[SK_REPLY_MAX_LINES]; /* each line's text after code, separator
                                        and (if has_enhanced) the enhanced code;
                                        NUL-terminated, owned by the reply */
} sk_reply;

/* Parsing flags. */
#define SK_REPLY_LENIENT_EOL 0x1 /* accept a bare LF as end of line (pasted text) */
#define SK_REPLY_ALLOW_ANY                                                                         \
    0x2 /* accept first digit 1..9 / second digit 0..9                                             \
           (vendor codes such as 571) */

/*
 * Parse one complete reply from buf[0..len).
 * Returns the number of bytes consumed (> 0) with *r filled (free with
 * sk_reply_free), 0 if the input holds only part of a reply (call again with
 * more), or -1 on malformed input with *err set to a static message such as
 * "line 2: code 251 differs from 250 on line 1".
 */
ssize_t sk_reply_parse(const char *buf, size_t len, int flags, sk_reply *r, const char **err);
void sk_reply_free(sk_reply *r);

/*
 * Append a formatted reply to out. `enhanced` ("5.1.1") may be NULL. `text`
 * may contain '\n' to make a multi-line reply ("250-..." continuation lines,
 * last line "250 ..."). CR, LF and other control bytes inside a line are
 * replaced by '?', so no text can inject a reply line. Returns 0 or -1.
 */
int sk_reply_format(sk_buf *out, int code, const char *enhanced, const char *text);
int sk_reply_formatf(sk_buf *out, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
