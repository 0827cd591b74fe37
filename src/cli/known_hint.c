/*
 * known_hint.c - the known-reply hint under a refusal in `probe` and
 * `send` (see known_hint.h). One function per output, so the commands call
 * one line each.
 */
#include "cli/known_hint.h"

#include <stdlib.h>
#include <string.h>

#include "cli/explain.h"
#include "smtpkit/known_reply.h"

/* Text of r's lines joined by spaces, or NULL. */
static char *joined_text(const sk_reply *r)
{
    size_t n = 1;
    for (size_t i = 0; i < r->nlines; i++)
        n += strlen(r->lines[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < r->nlines; i++) {
        size_t k = strlen(r->lines[i]);
        if (o)
            s[o++] = ' ';
        memcpy(s + o, r->lines[i], k);
        o += k;
    }
    s[o] = '\0';
    return s;
}

static void print(FILE *f, const char *indent, const sk_known_match *m)
{
    const sk_known_reply *k = m->row;
    fprintf(f, "%sknown:  %s (%s, %s certainty): ", indent, k->provider, k->category, m->certainty);
    sk_explain_put_clean(f, k->meaning, strlen(k->meaning));
    fprintf(f, "\n%swho:    %s\n%sto do:  ", indent, sk_actor_meaning(k->actor), indent);
    sk_explain_put_clean(f, k->action, strlen(k->action));
    if (m->source)
        fprintf(f, "\n%ssource: %s", indent, m->source->url);
    fputc('\n', f);
}

void sk_known_hint(FILE *f, const char *indent, const char *command, const sk_reply *r)
{
    if (r->code < 400)
        return;
    char *text = joined_text(r);
    sk_known_match m;
    if (text && sk_known_reply_match(command, r->code, r->has_enhanced ? &r->enhanced : NULL, text,
                                     &m) == 1)
        print(f, indent, &m);
    free(text);
}

void sk_known_hint_line(FILE *f, const char *indent, const char *command, const char *line)
{
    sk_known_match m;
    if (line && line[0] >= '4' && sk_known_reply_match_line(command, line, &m) == 1)
        print(f, indent, &m);
}

void sk_known_hint_json(sk_json *j, const char *command, const sk_reply *r)
{
    sk_json_key(j, "known");
    char *text = r->code >= 400 ? joined_text(r) : NULL;
    sk_known_match m;
    if (text && sk_known_reply_match(command, r->code, r->has_enhanced ? &r->enhanced : NULL, text,
                                     &m) == 1)
        sk_explain_known_object(j, &m);
    else
        sk_json_null(j);
    free(text);
}
