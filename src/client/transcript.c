/*
 * transcript.c - the record of a client dialogue: who said what, when.
 *
 * Lines are stored as shown to the user: control bytes become '?', so a
 * hostile server cannot drive the terminal. Credentials never reach here;
 * the AUTH code records "<redacted>" instead of the data it sends.
 */
#include "smtpkit/client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_SHOWN_MAX 2048 /* longer lines are cut, with "..." */

double sk_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sk_transcript_init(sk_transcript *t, size_t max)
{
    memset(t, 0, sizeof *t);
    t->max = max ? max : 10000;
    t->t0 = sk_monotonic();
}

void sk_transcript_free(sk_transcript *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].line);
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

double sk_transcript_now(const sk_transcript *t)
{
    return (sk_monotonic() - t->t0) * 1000.0;
}

void sk_transcript_add(sk_transcript *t, sk_dir dir, const char *line, size_t len)
{
    size_t shown = len > LINE_SHOWN_MAX ? LINE_SHOWN_MAX : len;
    char *s = malloc(shown + 4);
    if (!s)
        return;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)line[i];
        s[i] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    if (shown < len) {
        memcpy(s + shown, "...", 3);
        shown += 3;
    }
    s[shown] = '\0';
    sk_transcript_entry e = {dir, sk_transcript_now(t), s};
    if (t->on_entry)
        t->on_entry(&e, t->on_entry_arg);
    if (t->n >= t->max) {
        t->dropped++;
        free(s);
        return;
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 32;
        sk_transcript_entry *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv) {
            free(s);
            return;
        }
        t->v = nv;
        t->cap = nc;
    }
    t->v[t->n++] = e;
}

void sk_transcript_addf(sk_transcript *t, sk_dir dir, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sk_transcript_add(t, dir, tmp, strlen(tmp));
}
