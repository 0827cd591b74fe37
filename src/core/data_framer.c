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
 * CRLF.CR, ...) is message content with a bare CR/LF recorded, and a line
 * holding only "." next to a bare CR/LF is recorded apart (SEEN_LONE_DOT).
 *
 * A bare CR or LF is stored as CRLF (what the "normalise" policy keeps) and
 * in DATA starts a new line, so a leading dot after it is transparency
 * padding and removed like after CRLF: normalising means treating the bare
 * line end as CRLF everywhere except for the end of data.
 */
#include "core/data_framer.h"

#include <string.h>

enum {
    ST_BOL,         /* at the start of a line (after CRLF, or at the start) */
    ST_DOT,         /* BOL then "." */
    ST_DOT_CR,      /* BOL then "." CR */
    ST_TEXT,        /* inside a line */
    ST_CR,          /* inside a line, a CR is pending */
    ST_BOL_BARE,    /* DOTS: at the start of a line begun by a bare CR or LF */
    ST_DOT_BARE,    /* BOL_BARE then "." */
    ST_DOT_BARE_CR, /* BOL_BARE then "." CR */
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

/* The state after a bare line break: in DATA a new (normalised) line starts,
 * so transparency applies to it, but it can never end the data. */
static int after_bare(const sk_data_framer *f)
{
    return f->mode == SK_FRAMER_DOTS ? ST_BOL_BARE : ST_TEXT;
}

/* Handle one byte in the middle of a line; returns the new state. */
static int text_byte(sk_data_framer *f, char ch)
{
    if (ch == '\r')
        return ST_CR;
    if (ch == '\n') {
        bare(f, SK_FRAMER_SEEN_BARE_LF);
        return after_bare(f);
    }
    emit(f, &ch, 1);
    return ST_TEXT;
}

/* The first byte of a line; `bare_start` when a bare CR/LF began it. */
static int line_start(sk_data_framer *f, char ch, int bare_start)
{
    if (ch == '.' && f->mode == SK_FRAMER_DOTS)
        return bare_start ? ST_DOT_BARE : ST_DOT;
    return text_byte(f, ch);
}

/* A line holding only "." with a bare CR/LF on either side: one of the
 * SMTP smuggling shapes. Never an end; the caller refuses the message. */
static void lone_dot(sk_data_framer *f)
{
    f->seen |= SK_FRAMER_SEEN_LONE_DOT;
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
        case ST_BOL_BARE:
            i++;
            f->state = line_start(f, ch, f->state == ST_BOL_BARE);
            break;
        case ST_DOT:
        case ST_DOT_BARE:
            i++;
            if (ch == '\r') {
                f->state = f->state == ST_DOT ? ST_DOT_CR : ST_DOT_BARE_CR;
            } else {
                if (ch == '\n')
                    lone_dot(f); /* "." ended by a bare LF */
                /* the leading dot is transparency padding: drop it */
                f->state = text_byte(f, ch);
            }
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
            lone_dot(f);
            bare(f, SK_FRAMER_SEEN_BARE_CR);
            f->state = line_start(f, ch, 1);
            break;
        case ST_DOT_BARE_CR:
            i++;
            lone_dot(f); /* a bare line break "." CR...: never an end */
            if (ch == '\n') {
                emit(f, "\r\n", 2);
                f->state = ST_BOL;
            } else {
                bare(f, SK_FRAMER_SEEN_BARE_CR);
                f->state = line_start(f, ch, 1);
            }
            break;
        case ST_CR:
            i++;
            if (ch == '\n') {
                emit(f, "\r\n", 2);
                f->state = f->mode == SK_FRAMER_DOTS ? ST_BOL : ST_TEXT;
            } else {
                bare(f, SK_FRAMER_SEEN_BARE_CR);
                f->state = f->mode == SK_FRAMER_DOTS ? line_start(f, ch, 1) : text_byte(f, ch);
            }
            break;
        }
    }
    flush(f);
    return i;
}

void sk_data_framer_finish(sk_data_framer *f)
{
    if (f->state == ST_DOT_CR || f->state == ST_DOT_BARE_CR)
        lone_dot(f);
    if (f->state == ST_CR || f->state == ST_DOT_CR || f->state == ST_DOT_BARE_CR)
        bare(f, SK_FRAMER_SEEN_BARE_CR);
    f->state = f->mode == SK_FRAMER_DOTS ? ST_BOL : ST_TEXT;
    flush(f);
}
