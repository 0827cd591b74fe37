/*
 * fuzz_dovecot_auth.c - libFuzzer target for the Dovecot auth client
 * protocol parser (server/dovecot_auth_proto.c): the input is fed as the
 * auth server's bytes, in chunks whose sizes come from the first byte, so
 * lines split anywhere. Every record's strings must lie in the parser's
 * line buffer and be NUL-terminated; the parser must consume all input or
 * fail; a formatted AUTH line must contain exactly one LF (escaping works)
 * and parse back with its fields intact.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/dovecot_auth_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_line(const sk_dauth_parser *p, const char *s)
{
    return !s || (s >= p->line && s <= p->line + SK_DAUTH_LINE_MAX &&
                  memchr(s, '\0', (size_t)(p->line + SK_DAUTH_LINE_MAX + 1 - s)));
}

static sk_dauth_parser parser;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4 * SK_DAUTH_LINE_MAX)
        return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    sk_dauth_parser_init(&parser);
    int failed = 0;
    while (n && !failed) {
        size_t take = n < chunk ? n : chunk;
        const char *p = in;
        size_t left = take;
        while (left) {
            sk_dauth_record rec;
            const char *why = NULL;
            int r = sk_dauth_parse(&parser, &p, &left, &rec, &why);
            if (r < 0) {
                if (!why)
                    abort();
                failed = 1;
                break;
            }
            if (r == 0 && left)
                abort(); /* "need more" only with all input used */
            if (r == 1) {
                if (!in_line(&parser, rec.command) || !in_line(&parser, rec.mech) ||
                    !in_line(&parser, rec.data) || !in_line(&parser, rec.user) ||
                    !in_line(&parser, rec.reason) || rec.nargs > SK_DAUTH_MAX_ARGS)
                    abort();
                for (size_t i = 0; i < rec.nargs; i++)
                    if (!in_line(&parser, rec.args[i]))
                        abort();
                if ((rec.type == SK_DAUTH_OK || rec.type == SK_DAUTH_FAIL ||
                     rec.type == SK_DAUTH_CONT) &&
                    rec.id == 0)
                    abort();
            }
        }
        in += take;
        n -= take;
    }

    /* Format an AUTH line with the input as the values: one LF at the end,
     * and it parses back to the same fields. */
    char val[256];
    size_t vl = size - 1 < sizeof val - 1 ? size - 1 : sizeof val - 1;
    memcpy(val, data + 1, vl);
    val[vl] = '\0';
    vl = strlen(val);
    static char out[4096];
    sk_dauth_auth a = {.id = 7, .mech = "PLAIN", .service = "smtp", .rip = val, .resp = val};
    size_t len = sk_dauth_format_auth(out, sizeof out, &a);
    if (!len)
        abort();
    if (out[len - 1] != '\n' || memchr(out, '\n', len - 1))
        abort();
    sk_dauth_parser_init(&parser);
    const char *p = out;
    size_t left = len;
    sk_dauth_record rec;
    const char *why;
    if (sk_dauth_parse(&parser, &p, &left, &rec, &why) != 1 || rec.type != SK_DAUTH_OTHER ||
        rec.nargs < 5 || strcmp(rec.args[0], "7") || strcmp(rec.args[1], "PLAIN") ||
        strncmp(rec.args[rec.nargs - 1], "resp=", 5) || strcmp(rec.args[rec.nargs - 1] + 5, val))
        abort();
    return 0;
}
