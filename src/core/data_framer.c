/*
 * data_framer.c - resumable DATA / BDAT byte framer.
 *
 * RFC 5321 4.1.1.4 (end of mail data indicator), 4.5.2 (transparency:
 * a leading period is removed), 2.3.8 (only CRLF ends a line; a bare CR or
 * LF never does). RFC 3030 2 (BDAT data is not dot-stuffed).
 *
 * A state machine over single bytes (the nginx mail parser's shape), with
 * one fast path: runs of ordinary bytes inside a line are copied in bulk.
 * The end of data is recognised only as CR LF "." CR LF: every other
 * combination seen in SMTP smuggling (LF.LF, LF.CRLF, CRLF.LF, CR.CR,
 * CRLF.CR, ...) is ordinary message content with a bare CR/LF recorded.
 */
#include "core/data_framer.h"

#include <string.h>

enum {
    ST_BOL,    /* at the start of a line (after CRLF, or at the start) */
    ST_DOT,    /* BOL then "." */
    ST_DOT_CR, /* BOL then "." CR */
    ST_TEXT,   /* inside a line */
    ST_CR,     /* inside a line, a CR is pending */
};

void sk_data_framer_init(sk_data_framer *f, sk_framer_mode mode, sk_framer_sink sink, void *arg)
{
    f->mode = mode;
    f->state = mode == SK_FRAMER_DOTS ? ST_BOL : ST_TEXT;
    f->seen = 0;
    f->sink = sink;
    f->arg = arg;
    f->outlen = 0;
}

static void flush(sk_data_framer *f)
{
    if (f->outlen) {
        f->sink(f->arg, f->out, f->outlen);
        f->outlen = 0;
    }
}

static void emit(sk_data_framer *f, const char *p, size_t n)
{
    while (n) {
        size_t room = sizeof f->out - f->outlen;
        size_t k = n < room ? n : room;
        memcpy(f->out + f->outlen, p, k);
        f->outlen += k;
        p += k;
        n -= k;
        if (f->outlen == sizeof f->out)
            flush(f);
    }
}

/* A bare CR or LF: record it, store a line break in its place. */
static void bare(sk_data_framer *f, unsigned what)
{
    f->seen |= what;
    emit(f, "\r\n", 2);
}

/* Handle one byte in the middle of a line; returns the new state. */
static int text_byte(sk_data_framer *f, char ch)
{
    if (ch == '\r')
        return ST_CR;
    if (ch == '\n') {
        bare(f, SK_FRAMER_SEEN_BARE_LF);
        return ST_TEXT; /* a bare LF does not start a line */
    }
    emit(f, &ch, 1);
    return ST_TEXT;
}

size_t sk_data_framer_feed(sk_data_framer *f, const char *p, size_t n, int *done)
{
    size_t i = 0;
    *done = 0;
    while (i < n) {
        char ch = p[i];
        switch (f->state) {
        case ST_TEXT: {
            /* fast path: copy the run of bytes up to the next CR or LF */
            size_t j = i;
            while (j < n && p[j] != '\r' && p[j] != '\n')
                j++;
            if (j > i) {
                emit(f, p + i, j - i);
                i = j;
                continue;
            }
            f->state = text_byte(f, ch);
            i++;
            break;
        }
        case ST_BOL:
            i++;
            if (ch == '.' && f->mode == SK_FRAMER_DOTS)
                f->state = ST_DOT;
            else
                f->state = text_byte(f, ch);
            break;
        case ST_DOT:
            i++;
            if (ch == '\r')
                f->state = ST_DOT_CR;
            else /* the leading dot is transparency padding: drop it */
                f->state = text_byte(f, ch);
            break;
        case ST_DOT_CR:
            i++;
            if (ch == '\n') { /* CRLF "." CRLF: the end of data */
                f->state = ST_BOL;
                flush(f);
                *done = 1;
                return i;
            }
            /* "." then a bare CR: the dot was padding, the CR is bare */
            bare(f, SK_FRAMER_SEEN_BARE_CR);
            f->state = text_byte(f, ch);
            break;
        case ST_CR:
            i++;
            if (ch == '\n') {
                emit(f, "\r\n", 2);
                f->state = f->mode == SK_FRAMER_DOTS ? ST_BOL : ST_TEXT;
            } else {
                bare(f, SK_FRAMER_SEEN_BARE_CR);
                f->state = text_byte(f, ch);
            }
            break;
        }
    }
    flush(f);
    return i;
}

void sk_data_framer_finish(sk_data_framer *f)
{
    if (f->state == ST_CR || f->state == ST_DOT_CR)
        bare(f, SK_FRAMER_SEEN_BARE_CR);
    f->state = f->mode == SK_FRAMER_DOTS ? ST_BOL : ST_TEXT;
    flush(f);
}
