/*
 * explain_known.c - the "known reply" part of `smtpkit explain`: what the
 * table of real-world replies (src/core/known_replies.def) says about the
 * input, which of command, basic code, enhanced code and text it relied on,
 * and how sure it is; for people and as a JSON member.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/explain.h"
#include "client/json_writer.h"
#include "smtpkit/buf.h"

int sk_explain_known_fill(sk_explanation *x)
{
    const char *text = NULL;
    char *joined = NULL;
    if (x->kind == SK_EXPLAIN_REPLY && x->reply) {
        size_t n = 1;
        for (size_t i = 0; i < x->reply->nlines; i++)
            n += strlen(x->reply->lines[i]) + 1;
        joined = malloc(n);
        if (!joined)
            return -1;
        size_t o = 0;
        for (size_t i = 0; i < x->reply->nlines; i++) {
            size_t k = strlen(x->reply->lines[i]);
            if (o)
                joined[o++] = ' ';
            memcpy(joined + o, x->reply->lines[i], k);
            o += k;
        }
        joined[o] = '\0';
        text = joined;
    } else if (x->kind == SK_EXPLAIN_ENHANCED) {
        text = x->enhanced_text;
    }
    int rc = sk_known_reply_match(x->context, x->kind == SK_EXPLAIN_ENHANCED ? 0 : x->code,
                                  x->has_enhanced ? &x->enhanced : NULL, text, &x->known);
    free(joined);
    return rc < 0 ? -1 : 0;
}

/* "provider text pattern ... with basic code 550 and enhanced code 5.7.26" */
static void basis_text(const sk_known_match *m, char *out, size_t outlen)
{
    const sk_known_reply *r = m->row;
    size_t o = 0;
    int k;
    out[0] = '\0';
    if (!r) {
        snprintf(out, outlen, "%s",
                 m->basis == SK_KNOWN_BY_ENHANCED
                     ? "enhanced code only: no known provider text matched, so the meaning "
                       "is the enhanced code's (RFC 3463)"
                 : m->basis == SK_KNOWN_BY_CODE
                     ? "basic code only: no known provider text or enhanced code matched, so "
                       "the meaning is the reply code's (RFC 5321)"
                     : "nothing: no code to go by");
        return;
    }
    if (r->match != SK_TEXT_ANY)
        k = snprintf(out, outlen, "provider text pattern (%s, %s \"%s\")", r->provider,
                     r->match == SK_TEXT_REGEX ? "regular expression" : "text", r->pattern);
    else
        k = snprintf(out, outlen, "enhanced code only (%s, %s)", r->provider, r->enhanced);
    if (k < 0 || (size_t)k >= outlen)
        return;
    o = (size_t)k;
    const char *parts[3];
    char codebuf[40], enhbuf[40], cmdbuf[40];
    int np = 0;
    if (m->used_code) {
        snprintf(codebuf, sizeof codebuf, "basic code %s", r->code);
        parts[np++] = codebuf;
    }
    if (m->used_enhanced && r->match != SK_TEXT_ANY) {
        snprintf(enhbuf, sizeof enhbuf, "enhanced code %s", r->enhanced);
        parts[np++] = enhbuf;
    }
    if (m->used_command) {
        snprintf(cmdbuf, sizeof cmdbuf, "the command %s", r->command);
        parts[np++] = cmdbuf;
    }
    for (int i = 0; i < np; i++) {
        k = snprintf(out + o, outlen - o, "%s%s",
                     i == 0        ? " with "
                     : i == np - 1 ? " and "
                                   : ", ",
                     parts[i]);
        if (k < 0 || (size_t)k >= outlen - o)
            return;
        o += (size_t)k;
    }
}

void sk_explain_known_text(FILE *f, const sk_known_match *m)
{
    char buf[1024];
    const sk_known_reply *r = m->row;
    if (r) {
        fprintf(f, "known reply: %s (%s)\n", r->provider, r->id);
        sk_explain_field(f, "meaning", r->meaning);
        snprintf(buf, sizeof buf, "%s: %s", sk_actor_name(r->actor), sk_actor_meaning(r->actor));
        sk_explain_field(f, "who acts", buf);
        sk_explain_field(f, "to do", r->action);
        sk_explain_field(f, "category", r->category);
        if (m->source) {
            snprintf(buf, sizeof buf, "%s, %s", m->source->name, m->source->url);
            sk_explain_field(f, "source", buf);
        }
    } else {
        fprintf(f, "known reply: none\n");
    }
    char basis[600];
    basis_text(m, basis, sizeof basis);
    snprintf(buf, sizeof buf, "%s; %s certainty", basis, m->certainty ? m->certainty : "low");
    sk_explain_field(f, "matched", buf);
}

void sk_explain_known_object(sk_json *j, const sk_known_match *m)
{
    const sk_known_reply *r = m->row;
    sk_json_begin_object(j);
    sk_json_kv_string(j, "matched_by", sk_known_basis_name(m->basis));
    sk_json_kv_string(j, "certainty", m->certainty);
    sk_json_kv_string(j, "id", r ? r->id : NULL);
    sk_json_kv_string(j, "provider", r ? r->provider : NULL);
    sk_json_kv_string(j, "category", r ? r->category : NULL);
    sk_json_kv_string(j, "actor", r ? sk_actor_name(r->actor) : NULL);
    sk_json_kv_string(j, "actor_meaning", r ? sk_actor_meaning(r->actor) : NULL);
    sk_json_kv_string(j, "meaning", r ? r->meaning : NULL);
    sk_json_kv_string(j, "action", r ? r->action : NULL);
    sk_json_kv_string(j, "pattern", r ? r->pattern : NULL);
    sk_json_kv_string(j, "pattern_kind",
                      !r                           ? NULL
                      : r->match == SK_TEXT_REGEX  ? "regex"
                      : r->match == SK_TEXT_SUBSTR ? "substring"
                                                   : NULL);
    sk_json_kv_bool(j, "used_text", r && r->match != SK_TEXT_ANY);
    sk_json_kv_bool(j, "used_enhanced", m->used_enhanced);
    sk_json_kv_bool(j, "used_code", m->used_code);
    sk_json_kv_bool(j, "used_command", m->used_command);
    sk_json_key(j, "source");
    if (m->source) {
        sk_json_begin_object(j);
        sk_json_kv_string(j, "name", m->source->name);
        sk_json_kv_string(j, "url", m->source->url);
        sk_json_end_object(j);
    } else {
        sk_json_null(j);
    }
    sk_json_end_object(j);
}

void sk_explain_known_json(FILE *f, const sk_known_match *m)
{
    sk_buf out;
    sk_buf_init(&out, 0);
    sk_json j;
    sk_json_init(&j, &out);
    sk_explain_known_object(&j, m);
    if (j.failed || !out.data)
        fputs("null", f);
    else
        fwrite(out.data, 1, out.len, f);
    sk_buf_free(&out);
}
