/*
 * explain.h - what `smtpkit explain` found out about its input, and the two
 * ways of printing it (for people, and as JSON).
 */
#ifndef SMTPKIT_CLI_EXPLAIN_H
#define SMTPKIT_CLI_EXPLAIN_H

#include <stdio.h>

#include "smtpkit/known_reply.h"
#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

#define SK_EXPLAIN_MAX_ROWS 16
#define SK_EXPLAIN_MAX_NOTES 6

typedef enum sk_explain_kind {
    SK_EXPLAIN_CODE,     /* "550" */
    SK_EXPLAIN_ENHANCED, /* "5.7.1", possibly followed by text */
    SK_EXPLAIN_REPLY,    /* "550 5.7.1 Relay access denied", or several lines */
} sk_explain_kind;

typedef struct sk_explanation {
    const char *input; /* what was given, for the JSON output */
    sk_explain_kind kind;
    int code; /* basic code; 0 for SK_EXPLAIN_ENHANCED */
    const sk_code_entry *rows[SK_EXPLAIN_MAX_ROWS];
    size_t nrows;        /* registry rows shown (all, or the one that applies to the command) */
    const char *context; /* the command (--command, --context or the first word), upper-cased */
    int has_enhanced;
    sk_enhanced enhanced;
    const char *enhanced_text; /* text after a bare enhanced code, or NULL */
    const sk_reply *reply;     /* SK_EXPLAIN_REPLY only */
    int has_picked;            /* a command was given: picked is its meaning */
    sk_reply_meaning picked;   /* for (code, command, enhanced code) */
    char notes[SK_EXPLAIN_MAX_NOTES][256];
    size_t nnotes;
    sk_known_match known; /* the known-replies row, filled by sk_explain_known_fill */
} sk_explanation;

void sk_explain_print_text(FILE *f, const sk_explanation *x);
/* `label` then `text` wrapped at 78 columns, as every block of the text output. */
void sk_explain_field(FILE *f, const char *label, const char *text);

/* Known replies (explain_known.c): match x's command, codes and text
 * against the table of real-world replies; print what was found. */
int sk_explain_known_fill(sk_explanation *x);
void sk_explain_known_text(FILE *f, const sk_known_match *m);
void sk_explain_known_json(FILE *f, const sk_known_match *m);
struct sk_json;
void sk_explain_known_object(struct sk_json *j, const sk_known_match *m);

/* `smtpkit explain --bounce`: every reply in a pasted bounce (explain_bounce.c). */
int sk_explain_bounce(const char *text, size_t len, int json);
void sk_explain_print_json(FILE *f, const sk_explanation *x);
void sk_explain_list_text(FILE *f);
void sk_explain_list_json(FILE *f);

/* Length (1-4) of the printable UTF-8 character at s[0..n), or 0 if s starts
 * with a control character (C0, DEL, C1) or bytes that are not valid UTF-8. */
size_t sk_explain_char_len(const char *s, size_t n);
/* Write s[0..n) for a terminal: anything sk_explain_char_len refuses, except
 * TAB, becomes '?', so no reply text can send escape sequences. */
void sk_explain_put_clean(FILE *f, const char *s, size_t n);

#endif
