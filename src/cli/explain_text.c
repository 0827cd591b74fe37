/*
 * explain_text.c - `smtpkit explain` output for people: compact blocks with
 * labels on the left and text wrapped at 78 columns. Reply text from a
 * server is printed through sk_explain_put_clean, so it cannot carry
 * terminal escape sequences.
 */
#include <stdio.h>
#include <string.h>

#include "cli/explain.h"

#define WIDTH 78
#define LABEL_COLS 12 /* "  returned  " */

size_t sk_explain_char_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0)
        return 0;
    unsigned char c = u[0];
    if (c < 0x80)
        return c >= 0x20 && c != 0x7f ? 1 : 0;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (c == 0xc2)
        lo = 0xa0; /* U+0080..U+009F are the C1 controls */
    else if (c == 0xe0)
        lo = 0xa0; /* no overlong forms */
    else if (c == 0xed)
        hi = 0x9f; /* no surrogates */
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f; /* nothing above U+10FFFF */
    if (n < len || u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (u[i] < 0x80 || u[i] > 0xbf)
            return 0;
    return len;
}

void sk_explain_put_clean(FILE *f, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = sk_explain_char_len(s + i, n - i);
        if (k) {
            fwrite(s + i, 1, k, f);
            i += k;
        } else {
            fputc(s[i] == '\t' ? '\t' : '?', f);
            i++;
        }
    }
}

/* Print `label` then `text`, wrapped at WIDTH with a hanging indent. */
static void field(FILE *f, const char *label, const char *text)
{
    fprintf(f, "  %-*s", LABEL_COLS - 2, label);
    size_t col = LABEL_COLS;
    const char *p = text;
    int first = 1;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t w = strcspn(p, " ");
        if (!first && col + 1 + w > WIDTH) {
            fprintf(f, "\n%*s", LABEL_COLS, "");
            col = LABEL_COLS;
        } else if (!first) {
            fputc(' ', f);
            col++;
        }
        sk_explain_put_clean(f, p, w);
        col += w;
        p += w;
        first = 0;
    }
    fputc('\n', f);
}

void sk_explain_field(FILE *f, const char *label, const char *text)
{
    field(f, label, text);
}

/* "CONNECT (greeting), DATA-END (after the final dot), any command" */
static void commands_text(const char *list, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    const char *p = list;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (!w)
            break;
        char word[32];
        snprintf(word, sizeof word, "%.*s", (int)w, p);
        const char *shown = word;
        if (!strcmp(word, "ANY"))
            shown = "any command";
        else if (!strcmp(word, "CONNECT"))
            shown = "CONNECT (greeting)";
        else if (!strcmp(word, "DATA-END"))
            shown = "DATA-END (after the final dot)";
        int k = snprintf(out + o, outsz - o, "%s%s", o ? ", " : "", shown);
        if (k < 0 || (size_t)k >= outsz - o)
            break;
        o += (size_t)k;
        p += w;
    }
}

static void print_digits(FILE *f, int code)
{
    int d[3] = {code / 100, code / 10 % 10, code % 10};
    static const char *const rule[] = {"2-5", "0-5", "0-9"};
    char buf[512];

    fprintf(f, "%d:", code);
    int named = 0;
    for (int i = 0; i < 2; i++) {
        const char *name = sk_digit_name(i, d[i]);
        if (name) {
            fprintf(f, "%s %s", named ? "," : "", name);
            named = 1;
        }
    }
    if (!sk_code_is_valid(code))
        fprintf(f, "%s outside RFC 5321's reply-code grammar", named ? ";" : "");
    fputc('\n', f);
    for (int i = 0; i < 3; i++) {
        char label[8];
        snprintf(label, sizeof label, i == 0 ? "%dyz" : i == 1 ? "x%dz" : "xy%d", d[i]);
        const char *meaning = sk_digit_meaning(i, d[i]);
        const char *category = sk_digit_name(1, d[1]);
        if (i == 2 && category)
            snprintf(buf, sizeof buf, "Detail within \"%s\"; the third digit has no fixed meaning.",
                     category);
        else if (i == 2)
            snprintf(buf, sizeof buf, "Detail; the third digit has no fixed meaning.");
        else if (meaning)
            snprintf(buf, sizeof buf, "%s", meaning);
        else
            snprintf(buf, sizeof buf, "Not a valid %s digit: RFC 5321 4.2 allows %s.",
                     i == 0 ? "first" : "second", rule[i]);
        field(f, label, buf);
    }
}

static void print_row(FILE *f, const sk_code_entry *e)
{
    char buf[640];
    const char *text = e->text && *e->text ? e->text : "(base64 challenge)";
    if (e->context)
        fprintf(f, "%d (%s) ", e->code, e->context);
    else
        fprintf(f, "%d ", e->code);
    sk_explain_put_clean(f, text, strlen(text));
    fputc('\n', f);
    field(f, "meaning", e->meaning);
    snprintf(buf, sizeof buf, "%s, %s", sk_code_status_name(e->status), e->rfc);
    field(f, "status", buf);
    if (e->status_note)
        field(f, "note", e->status_note);
    commands_text(e->commands, buf, sizeof buf);
    field(f, "returned", buf);
    if (e->enhanced) {
        sk_enhanced en;
        const sk_enhanced_entry *d = NULL;
        if (sk_enhanced_parse(e->enhanced, strlen(e->enhanced), &en) == 0)
            d = sk_enhanced_lookup(en.subject, en.detail);
        snprintf(buf, sizeof buf, "usually %s%s%s%s", e->enhanced, d ? " (" : "", d ? d->name : "",
                 d ? ")" : "");
        field(f, "enhanced", buf);
    }
    snprintf(buf, sizeof buf, "%s - %s", sk_advice_name(e->advice), sk_advice_meaning(e->advice));
    field(f, "advice", buf);
}

static void print_enhanced(FILE *f, const sk_enhanced *en, const char *text)
{
    char label[24], buf[640];
    const sk_enhanced_entry *s = sk_enhanced_subject(en->subject);
    const sk_enhanced_entry *d = sk_enhanced_lookup(en->subject, en->detail);

    fprintf(f, "%d.%d.%d: ", en->cls, en->subject, en->detail);
    if (d)
        fprintf(f, "%s\n", d->name);
    else if (s)
        fprintf(f, "unregistered detail of \"%s\"\n", s->name);
    else
        fprintf(f, "unregistered subject\n");
    if (text && *text)
        field(f, "text", text);
    snprintf(label, sizeof label, "%d.x.x", en->cls);
    snprintf(buf, sizeof buf, "%s: %s", sk_enhanced_class_name(en->cls),
             sk_enhanced_class_meaning(en->cls));
    field(f, label, buf);
    snprintf(label, sizeof label, "x.%d.x", en->subject);
    if (s)
        snprintf(buf, sizeof buf, "%s: %s (%s)", s->name, s->meaning, s->rfc);
    else
        snprintf(buf, sizeof buf, "unregistered subject: not in the IANA registry");
    field(f, label, buf);
    snprintf(label, sizeof label, "x.x.%d", en->detail);
    if (d)
        snprintf(buf, sizeof buf, "%s: %s (%s)", d->name, d->meaning, d->rfc);
    else
        snprintf(buf, sizeof buf,
                 "unregistered detail: X.%d.%d is not in the IANA registry; the class and "
                 "subject still apply",
                 en->subject, en->detail);
    field(f, label, buf);

    /* Which standard replies the registry pairs with exactly this code. */
    char code_s[24];
    snprintf(code_s, sizeof code_s, "%d.%d.%d", en->cls, en->subject, en->detail);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        if (!e->enhanced || strcmp(e->enhanced, code_s) != 0 || e->status != SK_CODE_STANDARD)
            continue;
        int k =
            snprintf(buf + o, sizeof buf - o, "%s%d%s%s%s", o ? ", " : "", e->code,
                     e->context ? " (" : "", e->context ? e->context : "", e->context ? ")" : "");
        if (k < 0 || (size_t)k >= sizeof buf - o)
            break;
        o += (size_t)k;
    }
    if (o)
        field(f, "goes with", buf);
}

/* The meaning for the command given (and the enhanced code, if any). */
static void print_picked(FILE *f, const sk_explanation *x)
{
    const sk_reply_meaning *m = &x->picked;
    char buf[640];
    fputc('\n', f);
    if (x->has_enhanced)
        fprintf(f, "as a reply to %s, with %d.%d.%d:\n", x->context, x->enhanced.cls,
                x->enhanced.subject, x->enhanced.detail);
    else
        fprintf(f, "as a reply to %s:\n", x->context);
    field(f, "meaning",
          m->meaning ? m->meaning
                     : "none registered for this command: the digits above are what it says");
    static const char *const how[] = {
        [SK_MEANING_NONE] = "no registered meaning applies",
        [SK_MEANING_GENERAL] = "the code's general meaning",
        [SK_MEANING_COMMAND] = "the code's meaning for this command",
        [SK_MEANING_COMMAND_ENHANCED] = "the meaning of this command with this enhanced code",
        [SK_MEANING_ENHANCED] = "the enhanced code's meaning (the code has none for this command)",
    };
    snprintf(buf, sizeof buf, "%s%s%s", how[m->source], m->rfc ? "; " : "", m->rfc ? m->rfc : "");
    field(f, "from", buf);
    snprintf(buf, sizeof buf, "%s - %s", sk_advice_name(m->advice), sk_advice_meaning(m->advice));
    field(f, "advice", buf);
}

void sk_explain_print_text(FILE *f, const sk_explanation *x)
{
    if (x->kind == SK_EXPLAIN_REPLY && x->reply) {
        const sk_reply *r = x->reply;
        fprintf(f, "reply: %d", r->code);
        if (r->has_enhanced)
            fprintf(f, " %d.%d.%d", r->enhanced.cls, r->enhanced.subject, r->enhanced.detail);
        fprintf(f, ", %zu line%s\n", r->nlines, r->nlines == 1 ? "" : "s");
        for (size_t i = 0; i < r->nlines; i++) {
            fputs("  | ", f);
            sk_explain_put_clean(f, r->lines[i], strlen(r->lines[i]));
            fputc('\n', f);
        }
        fputc('\n', f);
        sk_explain_known_text(f, &x->known);
        fputc('\n', f);
    }
    if (x->kind != SK_EXPLAIN_ENHANCED) {
        print_digits(f, x->code);
        if (x->has_picked)
            print_picked(f, x);
        if (x->nrows == 0 && sk_registry_find(x->code, NULL, 0)) {
            char buf[160];
            snprintf(buf, sizeof buf,
                     "registered, but only as a reply to other commands: none of its rows "
                     "applies to %s.",
                     x->context ? x->context : "this command");
            field(f, "status", buf);
        } else if (x->nrows == 0) {
            field(f, "status",
                  "unregistered: no RFC or known vendor assigns this code; the digits above "
                  "are all it says.");
        }
        for (size_t i = 0; i < x->nrows; i++) {
            fputc('\n', f);
            print_row(f, x->rows[i]);
        }
    }
    if (x->has_enhanced) {
        if (x->kind != SK_EXPLAIN_ENHANCED)
            fputc('\n', f);
        print_enhanced(f, &x->enhanced, x->enhanced_text);
    }
    if (x->kind != SK_EXPLAIN_REPLY) {
        fputc('\n', f);
        sk_explain_known_text(f, &x->known);
    }
    if (x->nnotes)
        fputc('\n', f);
    for (size_t i = 0; i < x->nnotes; i++)
        field(f, "note", x->notes[i]);
}

void sk_explain_list_text(FILE *f)
{
    fprintf(f, "Basic reply codes (%zu rows)\n", sk_registry_size());
    fprintf(f, "%-4s %-9s %-13s %-16s %-7s %s\n", "CODE", "CONTEXT", "STATUS", "ADVICE", "ENH",
            "TEXT");
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        fprintf(f, "%-4d %-9s %-13s %-16s %-7s %s\n", e->code, e->context ? e->context : "-",
                sk_code_status_name(e->status), sk_advice_name(e->advice),
                e->enhanced ? e->enhanced : "-", e->text && *e->text ? e->text : "(challenge)");
    }
    fprintf(f, "\nEnhanced status codes (class 2 success, 4 persistent transient failure, "
               "5 permanent failure)\n");
    for (size_t i = 0; i < sk_enhanced_size(); i++) {
        const sk_enhanced_entry *e = sk_enhanced_entry_at(i);
        char code[16];
        if (e->detail < 0)
            snprintf(code, sizeof code, "X.%d.XXX", e->subject);
        else
            snprintf(code, sizeof code, "X.%d.%d", e->subject, e->detail);
        fprintf(f, "%s%-8s %s (%s)\n", e->detail < 0 ? "" : "  ", code, e->name, e->rfc);
    }
}
