/*
 * fuzz_bounce_scan.c - libFuzzer target for the bounce scanner
 * (src/client/bounce_scan.c): MIME parts, quoted-printable and base64
 * bodies (RFC 2045), unfolding (RFC 5322 2.2.3), DSN fields (RFC 3464) and
 * the reply phrases of common MTAs, all on untrusted text. Checks the
 * scanner's promises: at most SK_BOUNCE_MAX_REPLIES replies, each with a
 * valid code, an enhanced code of the same class (RFC 2034), a text on one
 * line, and a "line" that starts with the code; the same input gives the
 * same answer twice; every reply can be matched against the known-replies
 * table.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/bounce.h"
#include "smtpkit/known_reply.h"

static void check(const sk_bounce *b)
{
    if (b->n > SK_BOUNCE_MAX_REPLIES)
        abort();
    for (size_t i = 0; i < b->n; i++) {
        const sk_bounce_reply *r = &b->replies[i];
        if (r->code < 200 || r->code > 599 || !r->text || !r->line || !r->found_by)
            abort();
        if (r->has_enhanced && r->enhanced.cls != r->code / 100)
            abort();
        if (strpbrk(r->text, "\r\n") || strpbrk(r->line, "\r\n"))
            abort();
        if (r->line[0] - '0' != r->code / 100)
            abort();
        if (memchr(r->command, '\0', sizeof r->command) == NULL ||
            memchr(r->recipient, '\0', sizeof r->recipient) == NULL)
            abort();
        sk_known_match m;
        if (sk_known_reply_match(r->command[0] ? r->command : NULL, r->code,
                                 r->has_enhanced ? &r->enhanced : NULL, r->text, &m) < 0)
            abort();
        if (!m.certainty)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    static sk_bounce a, b;
    int na = sk_bounce_scan(buf, size, &a);
    int nb = sk_bounce_scan(buf, size, &b);
    if (na != nb || na < -1)
        abort();
    if (na > 0) {
        check(&a);
        for (size_t i = 0; i < a.n; i++)
            if (strcmp(a.replies[i].line, b.replies[i].line))
                abort();
    }
    sk_bounce_free(&a);
    sk_bounce_free(&b);
    free(buf);
    return 0;
}
