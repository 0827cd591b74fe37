/*
 * fuzz_reply_parse.c - libFuzzer target for the client-side reply parser
 * (RFC 5321 4.2, RFC 2034). Runs every input in strict and in lenient mode
 * and checks the parser's promises: never reads past len (ASan), consumes
 * no more than it was given, fills a reply whose lines are NUL-terminated
 * and free of CR/LF, and gives the same verdict when fed in two pieces.
 * Every reply parsed is also given to the meaning selection
 * (src/core/reply_meaning.c) for each command, whose promises are checked.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

static const char *const commands[] = {NULL,       "CONNECT", "EHLO", "HELO",     "MAIL",
                                       "RCPT",     "DATA",    "RSET", "DATA-END", "AUTH",
                                       "STARTTLS", "ETRN",    "BDAT", "QUIT",     "NOOP"};

static void check_meaning(const sk_reply *r)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        sk_reply_meaning m;
        sk_reply_meaning_select(r->code, commands[i], r->has_enhanced ? &r->enhanced : NULL, &m);
        if ((m.source == SK_MEANING_NONE) != (m.meaning == NULL))
            abort();
        if (m.nelsewhere > SK_MEANING_MAX_ELSEWHERE)
            abort();
        if (commands[i] && m.listed != sk_registry_allows(r->code, commands[i]))
            abort();
        if (m.entry && m.entry->code != r->code)
            abort();
    }
}

static void check_reply(const sk_reply *r)
{
    if (r->nlines < 1 || r->nlines > SK_REPLY_MAX_LINES)
        abort();
    if (r->code < 100 || r->code > 999)
        abort();
    for (size_t i = 0; i < r->nlines; i++)
        if (!r->lines[i] || strpbrk(r->lines[i], "\r\n"))
            abort();
    if (r->has_enhanced && r->enhanced.cls != r->code / 100)
        abort();
    check_meaning(r);
}

static void one(const uint8_t *data, size_t size, int flags)
{
    /* An exact-size copy, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return;
    if (size)
        memcpy(buf, data, size);

    sk_reply r;
    const char *err = NULL;
    ssize_t n = sk_reply_parse(buf, size, flags, &r, &err);
    if (n > (ssize_t)size || n < -1)
        abort();
    if (n < 0 && !err)
        abort();
    if (n > 0) {
        check_reply(&r);
        /* A reply found in the whole input is also found in any prefix that
         * holds it, and no shorter prefix holds a complete one. */
        sk_reply r2;
        if (sk_reply_parse(buf, (size_t)n, flags, &r2, NULL) != n)
            abort();
        sk_reply_free(&r2);
        if (n > 1 && sk_reply_parse(buf, (size_t)n - 1, flags, &r2, NULL) > 0)
            abort();
    }
    if (n == 0 && r.nlines != 0)
        abort();
    sk_reply_free(&r);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, 0);
    one(data, size, SK_REPLY_LENIENT_EOL | SK_REPLY_ALLOW_ANY);
    one(data, size, SK_REPLY_LENIENT_EOL);
    one(data, size, SK_REPLY_ALLOW_ANY);

    sk_enhanced e;
    size_t k = size < 16 ? size : 16;
    if (sk_enhanced_parse((const char *)data, k, &e) == 0 &&
        (e.cls < 2 || e.cls > 5 || e.subject < 0 || e.subject > 999 || e.detail < 0 ||
         e.detail > 999))
        abort();
    return 0;
}
