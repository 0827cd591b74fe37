/*
 * explain_json.c - `smtpkit explain --json`: the same content as the text
 * output, as one JSON object (RFC 8259). Strings are escaped and any byte
 * that is not valid UTF-8 becomes U+FFFD, so the output always parses.
 */
#include <string.h>

#include "cli/explain.h"

static void jstr_n(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '\t':
                fputs("\\t", f);
                break;
            default:
                fprintf(f, "\\u%04x", c);
            }
            i++;
        } else {
            size_t k = sk_explain_char_len(s + i, n - i);
            if (k) {
                fwrite(s + i, 1, k, f);
                i += k;
            } else {
                fputs("\\ufffd", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

static void jstr(FILE *f, const char *s)
{
    if (s)
        jstr_n(f, s, strlen(s));
    else
        fputs("null", f);
}

static void jkey(FILE *f, int *first, const char *key)
{
    fputs(*first ? "" : ",", f);
    *first = 0;
    jstr(f, key);
    fputc(':', f);
}

static void commands_array(FILE *f, const char *list)
{
    fputc('[', f);
    int first = 1;
    const char *p = list;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (!w)
            break;
        fputs(first ? "" : ",", f);
        first = 0;
        jstr_n(f, p, w);
        p += w;
    }
    fputc(']', f);
}

static void row_object(FILE *f, const sk_code_entry *e)
{
    int first = 1;
    fputc('{', f);
    jkey(f, &first, "code");
    fprintf(f, "%d", e->code);
    jkey(f, &first, "context");
    jstr(f, e->context);
    jkey(f, &first, "text");
    jstr(f, e->text);
    jkey(f, &first, "meaning");
    jstr(f, e->meaning);
    jkey(f, &first, "status");
    jstr(f, sk_code_status_name(e->status));
    jkey(f, &first, "status_note");
    jstr(f, e->status_note);
    jkey(f, &first, "rfc");
    jstr(f, e->rfc);
    jkey(f, &first, "commands");
    commands_array(f, e->commands);
    jkey(f, &first, "enhanced");
    jstr(f, e->enhanced);
    jkey(f, &first, "advice");
    jstr(f, sk_advice_name(e->advice));
    jkey(f, &first, "advice_meaning");
    jstr(f, sk_advice_meaning(e->advice));
    fputc('}', f);
}

static void code_object(FILE *f, const sk_explanation *x)
{
    int d[3] = {x->code / 100, x->code / 10 % 10, x->code % 10};
    int first = 1;
    fputc('{', f);
    jkey(f, &first, "code");
    fprintf(f, "%d", x->code);
    jkey(f, &first, "valid_syntax");
    fputs(sk_code_is_valid(x->code) ? "true" : "false", f);
    jkey(f, &first, "registered");
    fputs(sk_registry_find(x->code, NULL, 0) ? "true" : "false", f);
    jkey(f, &first, "class");
    fprintf(f, "{\"digit\":%d,\"name\":", d[0]);
    jstr(f, sk_digit_name(0, d[0]));
    fputs(",\"meaning\":", f);
    jstr(f, sk_digit_meaning(0, d[0]));
    fputc('}', f);
    jkey(f, &first, "digits");
    fputc('[', f);
    for (int i = 0; i < 3; i++) {
        fprintf(f, "%s{\"position\":%d,\"digit\":%d,\"valid\":%s,\"name\":", i ? "," : "", i + 1,
                d[i], sk_digit_meaning(i, d[i]) ? "true" : "false");
        jstr(f, sk_digit_name(i, d[i]));
        fputs(",\"meaning\":", f);
        jstr(f, sk_digit_meaning(i, d[i]));
        fputc('}', f);
    }
    fputc(']', f);
    jkey(f, &first, "meanings");
    fputc('[', f);
    for (size_t i = 0; i < x->nrows; i++) {
        fputs(i ? "," : "", f);
        row_object(f, x->rows[i]);
    }
    fputc(']', f);
    fputc('}', f);
}

static void enhanced_entry_object(FILE *f, int number, const sk_enhanced_entry *e)
{
    fprintf(f, "{\"number\":%d,\"registered\":%s,\"name\":", number, e ? "true" : "false");
    jstr(f, e ? e->name : NULL);
    fputs(",\"meaning\":", f);
    jstr(f, e ? e->meaning : NULL);
    fputs(",\"rfc\":", f);
    jstr(f, e ? e->rfc : NULL);
    fputc('}', f);
}

static void enhanced_object(FILE *f, const sk_explanation *x)
{
    const sk_enhanced *en = &x->enhanced;
    char code[24];
    snprintf(code, sizeof code, "%d.%d.%d", en->cls, en->subject, en->detail);
    int first = 1;
    fputc('{', f);
    jkey(f, &first, "code");
    jstr(f, code);
    jkey(f, &first, "class");
    fprintf(f, "{\"digit\":%d,\"name\":", en->cls);
    jstr(f, sk_enhanced_class_name(en->cls));
    fputs(",\"meaning\":", f);
    jstr(f, sk_enhanced_class_meaning(en->cls));
    fputc('}', f);
    jkey(f, &first, "subject");
    enhanced_entry_object(f, en->subject, sk_enhanced_subject(en->subject));
    jkey(f, &first, "detail");
    enhanced_entry_object(f, en->detail, sk_enhanced_lookup(en->subject, en->detail));
    jkey(f, &first, "text");
    jstr(f, x->enhanced_text);
    fputc('}', f);
}

/* The meaning for the command given (sk_reply_meaning_select). */
static void picked_object(FILE *f, const sk_explanation *x)
{
    const sk_reply_meaning *m = &x->picked;
    int first = 1;
    fputc('{', f);
    jkey(f, &first, "command");
    jstr(f, x->context);
    jkey(f, &first, "meaning");
    jstr(f, m->meaning);
    jkey(f, &first, "source");
    jstr(f, sk_meaning_source_name(m->source));
    jkey(f, &first, "rfc");
    jstr(f, m->rfc);
    jkey(f, &first, "advice");
    jstr(f, sk_advice_name(m->advice));
    jkey(f, &first, "listed_for_command");
    fputs(m->listed ? "true" : "false", f);
    jkey(f, &first, "elsewhere");
    fputc('[', f);
    for (size_t i = 0; i < m->nelsewhere; i++) {
        fputs(i ? "," : "", f);
        fputs("{\"command\":", f);
        jstr(f, m->elsewhere[i]->context);
        fputs(",\"meaning\":", f);
        jstr(f, m->elsewhere[i]->meaning);
        fputc('}', f);
    }
    fputs("]}", f);
}

void sk_explain_print_json(FILE *f, const sk_explanation *x)
{
    static const char *const kinds[] = {"code", "enhanced", "reply"};
    int first = 1;
    fputc('{', f);
    jkey(f, &first, "input");
    jstr(f, x->input);
    jkey(f, &first, "kind");
    jstr(f, kinds[x->kind]);
    jkey(f, &first, "context");
    jstr(f, x->context);
    jkey(f, &first, "reply");
    if (x->kind == SK_EXPLAIN_REPLY && x->reply) {
        const sk_reply *r = x->reply;
        fprintf(f, "{\"code\":%d,\"enhanced\":", r->code);
        if (r->has_enhanced)
            fprintf(f, "\"%d.%d.%d\"", r->enhanced.cls, r->enhanced.subject, r->enhanced.detail);
        else
            fputs("null", f);
        fputs(",\"lines\":[", f);
        for (size_t i = 0; i < r->nlines; i++) {
            fputs(i ? "," : "", f);
            jstr(f, r->lines[i]);
        }
        fputs("]}", f);
    } else {
        fputs("null", f);
    }
    jkey(f, &first, "code");
    if (x->kind != SK_EXPLAIN_ENHANCED)
        code_object(f, x);
    else
        fputs("null", f);
    jkey(f, &first, "enhanced");
    if (x->has_enhanced)
        enhanced_object(f, x);
    else
        fputs("null", f);
    jkey(f, &first, "picked");
    if (x->has_picked && x->kind != SK_EXPLAIN_ENHANCED)
        picked_object(f, x);
    else
        fputs("null", f);
    jkey(f, &first, "known");
    sk_explain_known_json(f, &x->known);
    jkey(f, &first, "notes");
    fputc('[', f);
    for (size_t i = 0; i < x->nnotes; i++) {
        fputs(i ? "," : "", f);
        jstr(f, x->notes[i]);
    }
    fputs("]}\n", f);
}

void sk_explain_list_json(FILE *f)
{
    fputs("{\"codes\":[", f);
    for (size_t i = 0; i < sk_registry_size(); i++) {
        fputs(i ? "," : "", f);
        row_object(f, sk_registry_entry(i));
    }
    fputs("],\"enhanced_classes\":[", f);
    static const int classes[] = {2, 4, 5};
    for (size_t i = 0; i < 3; i++) {
        fprintf(f, "%s{\"class\":%d,\"name\":", i ? "," : "", classes[i]);
        jstr(f, sk_enhanced_class_name(classes[i]));
        fputs(",\"meaning\":", f);
        jstr(f, sk_enhanced_class_meaning(classes[i]));
        fputc('}', f);
    }
    fputs("],\"enhanced\":[", f);
    for (size_t i = 0; i < sk_enhanced_size(); i++) {
        const sk_enhanced_entry *e = sk_enhanced_entry_at(i);
        char code[16];
        if (e->detail < 0)
            snprintf(code, sizeof code, "X.%d.XXX", e->subject);
        else
            snprintf(code, sizeof code, "X.%d.%d", e->subject, e->detail);
        fprintf(f, "%s{\"code\":", i ? "," : "");
        jstr(f, code);
        fprintf(f, ",\"subject\":%d,\"detail\":", e->subject);
        if (e->detail < 0)
            fputs("null", f);
        else
            fprintf(f, "%d", e->detail);
        fputs(",\"name\":", f);
        jstr(f, e->name);
        fputs(",\"meaning\":", f);
        jstr(f, e->meaning);
        fputs(",\"rfc\":", f);
        jstr(f, e->rfc);
        fputc('}', f);
    }
    fputs("]}\n", f);
}
