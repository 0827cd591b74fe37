/*
 * reply_parse.c - parse SMTP replies as a client receives them (RFC 5321
 * 4.2, 4.2.1; RFC 2034 and RFC 3463 for enhanced status codes).
 *
 * This parser reads bytes from a server the client does not trust, so every
 * access is bounded by `len` and every line's length is checked before any
 * offset into it is used (OpenSMTPD's CVE-2020-8794 read `line + 4` of a
 * short line). It is resumable: given only part of a reply it returns 0 and
 * the caller calls again with more bytes. It validates what it already has,
 * so garbage is refused as soon as it arrives, not when the line ends.
 *
 * Rules (each refused with a message naming the line):
 *   - a line is "ddd", "ddd text" or "ddd-text" ending in CRLF (a bare LF is
 *     accepted only with SK_REPLY_LENIENT_EOL; a bare CR never);
 *   - digits per RFC 5321 4.2: first 2-5, second 0-5, third 0-9
 *     (SK_REPLY_ALLOW_ANY: 1-9, 0-9, 0-9, for vendor codes such as 571);
 *   - every line of a reply carries the same code;
 *   - no NUL or other control byte except TAB in the text (RFC 5321
 *     textstring); 8-bit bytes are kept (SMTPUTF8, RFC 6531);
 *   - at most SK_REPLY_MAX_LINES lines of at most SK_REPLY_MAX_LINE octets
 *     each, CRLF included. RFC 5321 4.5.3.1.5 makes 512 a MUST for senders;
 *     real servers exceed it, so a larger but fixed limit is accepted.
 *
 * Enhanced codes: a reply has one (has_enhanced) only if every line starts
 * with the same well-formed class.subject.detail followed by a space or the
 * end of the line, and its class equals the basic code's first digit
 * (RFC 2034 3). Otherwise the reply is still valid and the lines keep their
 * full text; callers that want to point out a near miss can look at it.
 */
#include "smtpkit/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest reply line accepted, CRLF included. */
#define SK_REPLY_MAX_LINE 4096

/* Error text with line numbers lives here until the next call in this thread. */
static _Thread_local char err_text[160];

static void fail(const char **err, size_t lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(const char **err, size_t lineno, const char *fmt, ...)
{
    int hl = snprintf(err_text, sizeof err_text, "line %zu: ", lineno);
    if (hl < 0 || (size_t)hl >= sizeof err_text)
        hl = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_text + hl, sizeof err_text - (size_t)hl, fmt, ap);
    va_end(ap);
    *err = err_text;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int sk_enhanced_parse(const char *s, size_t len, sk_enhanced *out)
{
    size_t i = 0;
    int part[3] = {0, 0, 0};
    if (!s)
        return -1;
    for (int k = 0; k < 3; k++) {
        size_t start = i;
        size_t maxd = k == 0 ? 1 : 3; /* class is one digit; subject/detail 1*3digit */
        while (i < len && is_digit(s[i]) && i - start < maxd) {
            part[k] = part[k] * 10 + (s[i] - '0');
            i++;
        }
        if (i == start)
            return -1;
        if (k < 2) {
            if (i >= len || s[i] != '.')
                return -1;
            i++;
        }
    }
    if (i != len)
        return -1;
    if (part[0] != 2 && part[0] != 4 && part[0] != 5)
        return -1;
    if (out) {
        out->cls = part[0];
        out->subject = part[1];
        out->detail = part[2];
    }
    return 0;
}

/* Is c allowed as digit `pos` of a reply code? */
static int digit_ok(int pos, char c, int flags)
{
    if (!is_digit(c))
        return 0;
    if (flags & SK_REPLY_ALLOW_ANY)
        return pos != 0 || c != '0';
    switch (pos) {
    case 0:
        return c >= '2' && c <= '5';
    case 1:
        return c <= '5';
    default:
        return 1;
    }
}

static const char *digit_rule(int pos, int flags)
{
    if (flags & SK_REPLY_ALLOW_ANY)
        return pos == 0 ? "1-9" : "0-9";
    return pos == 0 ? "2-5" : pos == 1 ? "0-5" : "0-9";
}

struct span {
    size_t off; /* start of the text after code and separator */
    size_t len;
};

/*
 * Check the n content bytes of one line (terminator excluded). `complete`
 * says whether the line has ended; a partial line is checked as far as it
 * goes. Sets *sep to ' ', '-' or 0 (not known yet). Returns 0 or -1.
 */
static int check_line(const char *p, size_t n, int complete, size_t lineno, int flags,
                      int first_code, int *code, char *sep, const char **err)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            fail(err, lineno, "bare CR inside the line (only CRLF ends a line)");
            return -1;
        }
        if (c == 0) {
            fail(err, lineno, "NUL byte in the reply");
            return -1;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fail(err, lineno, "control character 0x%02x in the reply", c);
            return -1;
        }
    }
    size_t nd = n < 3 ? n : 3;
    for (size_t i = 0; i < nd; i++) {
        if (!digit_ok((int)i, p[i], flags)) {
            static const char *const pos_name[] = {"first", "second", "third"};
            unsigned char c = (unsigned char)p[i];
            if (is_digit(p[i]))
                fail(err, lineno, "%s digit of the code must be %s, not %c", pos_name[i],
                     digit_rule((int)i, flags), p[i]);
            else if (c >= 0x21 && c < 0x7f)
                fail(err, lineno, "reply must start with a 3-digit code ('%c' at position %zu)",
                     p[i], i + 1);
            else
                fail(err, lineno,
                     "reply must start with a 3-digit code (byte 0x%02x at position %zu)", c,
                     i + 1);
            return -1;
        }
    }
    if (complete && n < 3) {
        if (n == 0)
            fail(err, lineno, "empty line where a reply code was expected");
        else
            fail(err, lineno, "line too short for a reply code");
        return -1;
    }
    *sep = 0;
    if (n >= 3) {
        *code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (first_code && *code != first_code) {
            fail(err, lineno, "code %d differs from %d on line 1", *code, first_code);
            return -1;
        }
        if (n >= 4) {
            if (p[3] != ' ' && p[3] != '-') {
                unsigned char c = (unsigned char)p[3];
                if (c >= 0x21 && c < 0x7f)
                    fail(err, lineno, "expected ' ' or '-' after the code, not '%c'", c);
                else
                    fail(err, lineno, "expected ' ' or '-' after the code, not byte 0x%02x", c);
                return -1;
            }
            *sep = p[3];
        } else if (complete) {
            *sep = ' '; /* "250" alone: a last line without text */
        }
    }
    return 0;
}

/* Find the enhanced code every line starts with, if there is one. */
static int common_enhanced(const char *buf, const struct span *lines, size_t nlines, int code,
                           sk_enhanced *enh, size_t *toklen)
{
    size_t first_len = 0;
    for (size_t i = 0; i < nlines; i++) {
        const char *t = buf + lines[i].off;
        size_t n = lines[i].len;
        size_t k = 0;
        while (k < n && t[k] != ' ')
            k++;
        sk_enhanced e;
        if (sk_enhanced_parse(t, k, &e) < 0)
            return 0;
        if (i == 0) {
            if (e.cls != code / 100)
                return 0;
            *enh = e;
            first_len = k;
        } else if (k != first_len || memcmp(t, buf + lines[0].off, k) != 0) {
            return 0;
        }
    }
    *toklen = first_len;
    return nlines > 0;
}

void sk_reply_free(sk_reply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nlines && i < SK_REPLY_MAX_LINES; i++)
        free(r->lines[i]);
    memset(r, 0, sizeof *r);
}

ssize_t sk_reply_parse(const char *buf, size_t len, int flags, sk_reply *r, const char **err)
{
    const char *unused;
    struct span lines[SK_REPLY_MAX_LINES];
    size_t nlines = 0, pos = 0;
    int code = 0;

    if (!err)
        err = &unused;
    *err = NULL;
    if (r)
        memset(r, 0, sizeof *r);
    if (!buf && len) {
        *err = "no buffer";
        return -1;
    }

    for (;;) {
        size_t lineno = nlines + 1;
        if (pos >= len)
            return 0;
        size_t avail = len - pos;
        size_t scan = avail < SK_REPLY_MAX_LINE ? avail : SK_REPLY_MAX_LINE;
        const char *p = buf + pos;
        const char *lf = memchr(p, '\n', scan);
        size_t n, term = 0;
        int complete = lf != NULL;
        if (complete) {
            n = (size_t)(lf - p);
            if (n > 0 && p[n - 1] == '\r') {
                n--;
                term = 2;
            } else if (flags & SK_REPLY_LENIENT_EOL) {
                term = 1;
            } else {
                fail(err, lineno, "line ends with a bare LF (CRLF required)");
                return -1;
            }
        } else {
            if (avail >= SK_REPLY_MAX_LINE) {
                fail(err, lineno, "line longer than %d octets", SK_REPLY_MAX_LINE);
                return -1;
            }
            n = avail;
            if (n > 0 && p[n - 1] == '\r')
                n--; /* may be the first half of CRLF */
        }

        int this_code = 0;
        char sep = 0;
        if (check_line(p, n, complete, lineno, flags, nlines ? code : 0, &this_code, &sep, err) < 0)
            return -1;
        if (!complete)
            return 0;

        if (nlines == 0)
            code = this_code;
        lines[nlines].off = pos + (n > 3 ? 4 : n);
        lines[nlines].len = n > 3 ? n - 4 : 0;
        nlines++;
        pos += n + term;
        if (sep == ' ')
            break;
        if (nlines == SK_REPLY_MAX_LINES) {
            fail(err, lineno + 1, "reply has more than %d lines", SK_REPLY_MAX_LINES);
            return -1;
        }
    }

    if (!r)
        return (ssize_t)pos;

    sk_enhanced enh = {0, 0, 0};
    size_t toklen = 0;
    int has_enh = common_enhanced(buf, lines, nlines, code, &enh, &toklen);
    for (size_t i = 0; i < nlines; i++) {
        size_t off = lines[i].off, n = lines[i].len;
        if (has_enh) {
            size_t skip = toklen < n ? toklen + 1 : n; /* the code and one space */
            off += skip;
            n -= skip;
        }
        char *s = malloc(n + 1);
        if (!s) {
            r->nlines = i;
            sk_reply_free(r);
            *err = "out of memory";
            return -1;
        }
        memcpy(s, buf + off, n);
        s[n] = '\0';
        r->lines[i] = s;
    }
    r->code = code;
    r->nlines = nlines;
    r->has_enhanced = has_enh;
    if (has_enh)
        r->enhanced = enh;
    return (ssize_t)pos;
}
