/*
 * cmd_explain.c - `smtpkit explain`: say what a reply code ("550"), an
 * enhanced status code ("5.7.1") or a whole pasted reply means.
 *
 * Basic codes: RFC 5321 4.2 (grammar), 4.2.1 (digits), 4.2.2/4.2.3, 4.3.2 and
 * the ESMTP RFCs, all through the reply registry. Enhanced codes: RFC 3463
 * and the IANA registry. Replies are parsed by the library's reply parser
 * (RFC 5321 4.2; RFC 2034 for the enhanced code on each line), leniently
 * about line ends because people paste them.
 *
 * Exit status: 0 when the input was explained (an unregistered but
 * well-formed code is explained by its digits and marked unregistered),
 * 2 for bad input or usage, with the reason on stderr.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/explain.h"
#include "smtpkit/bounce.h"

#define MAX_INPUT (1024 * 1024) /* a pasted reply is far smaller */

/* Commands and phases --context accepts (registry.h's vocabulary). */
static const char *const known_contexts[] = {
    "CONNECT", "HELO", "EHLO", "MAIL", "RCPT", "DATA",     "DATA-END", "BDAT",
    "RSET",    "VRFY", "EXPN", "HELP", "NOOP", "QUIT",     "SEND",     "SOML",
    "SAML",    "TURN", "ETRN", "ATRN", "AUTH", "STARTTLS",
};

static void usage(FILE *f)
{
    fputs("usage: smtpkit explain [--json] [--command CMD] CODE | ENHANCED-CODE | REPLY...\n"
          "       smtpkit explain [--json] CMD CODE | REPLY...\n"
          "       smtpkit explain [--json] [--command CMD] [-]    (reply on standard input)\n"
          "       smtpkit explain --list [--json]\n"
          "       smtpkit explain --bounce [--json] < BOUNCE    (every reply in a bounce)\n"
          "\n"
          "Explains an SMTP reply code (550), an enhanced status code (5.7.1) or a whole\n"
          "reply (\"550 5.7.1 Relay access denied\", or several lines on standard input):\n"
          "its class, what each digit says, the enhanced code's class/subject/detail,\n"
          "whether the code is standard, which commands return it, whether a sender\n"
          "should retry, and the RFC. Codes with several meanings (250 after EHLO or\n"
          "RSET, 454 after RCPT, AUTH or STARTTLS) show each one, or with the command the\n"
          "reply answered, the one meant: \"explain RCPT 454 4.7.1 Relay access denied\".\n"
          "Replies from the large mail providers, the common MTAs and the block lists\n"
          "are recognised by their text: who must act, what to do, and the provider\n"
          "documentation it is based on.\n"
          "\n"
          "  --json           the same content as one JSON object\n"
          "  --list           the whole registry (basic and enhanced codes)\n"
          "  --bounce         read a whole bounce message (DSN, Postfix, Exim, Microsoft,\n"
          "                   Gmail) on standard input and explain every reply in it\n"
          "  --command CMD    the command the reply answers (also --context, or CMD as\n"
          "                   the first word): MAIL, RCPT, EHLO, RSET, AUTH, STARTTLS...,\n"
          "                   CONNECT for the greeting, DATA-END for the reply after the\n"
          "                   final dot. With the enhanced code it picks the meaning, and\n"
          "                   a code RFC 5321 4.3.2 does not list for CMD gets a note\n"
          "  -h, --help       this text\n"
          "\n"
          "Exit status: 0 explained, 2 bad input or usage (a reply cut off before its\n"
          "last line included).\n",
          f);
}

static int bad_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Say why the input cannot be explained; returns the exit status 2. */
static int bad_input(const char *fmt, ...)
{
    va_list ap;
    fputs("smtpkit explain: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* Read all of standard input, at most `max` bytes (a power of two times
 * 4096); with `cut`, a longer input is cut at `max` instead of refused (a
 * bounce's replies come before the returned message). NULL on error. */
static char *read_stdin(size_t *len, const char **why, size_t max, int cut)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        *why = "out of memory";
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max && cut)
                break;
            if (cap >= max) {
                free(buf);
                *why = "input longer than 1 MiB";
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                *why = "out of memory";
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(buf);
                *why = "cannot read standard input";
                return NULL;
            }
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/*
 * Tidy pasted text in place: drop leading blanks on each line (bounce
 * messages indent replies), trailing blank lines and trailing spaces.
 * Line ends stay as they were; the parser checks them.
 */
static size_t tidy(char *s, size_t n)
{
    size_t o = 0, i = 0;
    int at_line_start = 1;
    while (i < n) {
        char c = s[i++];
        if (at_line_start && (c == ' ' || c == '\t'))
            continue;
        at_line_start = c == '\n';
        s[o++] = c;
    }
    while (o > 0 && (s[o - 1] == '\n' || s[o - 1] == '\r' || s[o - 1] == ' ' || s[o - 1] == '\t'))
        o--;
    s[o] = '\0';
    return o;
}

static void add_note(sk_explanation *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_note(sk_explanation *x, const char *fmt, ...)
{
    va_list ap;
    if (x->nnotes >= SK_EXPLAIN_MAX_NOTES)
        return;
    va_start(ap, fmt);
    vsnprintf(x->notes[x->nnotes++], sizeof x->notes[0], fmt, ap);
    va_end(ap);
}

/* Fill the registry rows for x->code: all of them, or with a command the
 * meaning picked for (code, command, enhanced code) and the row behind it. */
static void pick_rows(sk_explanation *x)
{
    if (x->context) {
        sk_reply_meaning_select(x->code, x->context, x->has_enhanced ? &x->enhanced : NULL,
                                &x->picked);
        x->has_picked = 1;
        x->nrows = 0;
        if (x->picked.entry)
            x->rows[x->nrows++] = x->picked.entry;
        if (!x->picked.listed)
            add_note(x,
                     "%d is not listed as a reply to %s in RFC 5321 4.3.2 or the extension's "
                     "RFC: the server chose its own code (common, and not an error; the first "
                     "digit still says what to do)",
                     x->code, x->context);
        if (x->picked.source == SK_MEANING_NONE || x->picked.source == SK_MEANING_ENHANCED)
            for (size_t i = 0; i < x->picked.nelsewhere; i++)
                add_note(x, "after %s, %d means \"%s\"; that does not apply to %s",
                         x->picked.elsewhere[i]->context, x->code, x->picked.elsewhere[i]->text,
                         x->context);
    } else {
        x->nrows = sk_registry_find(x->code, x->rows, SK_EXPLAIN_MAX_ROWS);
        if (x->nrows > SK_EXPLAIN_MAX_ROWS)
            x->nrows = SK_EXPLAIN_MAX_ROWS;
        if (x->nrows > 1)
            add_note(x,
                     "%d means different things after different commands: give the command "
                     "for the one that applies (smtpkit explain RCPT %d ..., or --command)",
                     x->code, x->code);
    }
}

/* Why a 3-digit code is refused, or NULL if it may be explained. */
static const char *code_problem(int code)
{
    static char why[96];
    if (sk_code_is_valid(code) || sk_registry_find(code, NULL, 0))
        return NULL;
    int d0 = code / 100, d1 = code / 10 % 10;
    if (d0 < 2 || d0 > 5)
        snprintf(why, sizeof why, "the first digit must be 2-5 (RFC 5321 4.2), not %d", d0);
    else
        snprintf(why, sizeof why, "the second digit must be 0-5 (RFC 5321 4.2), not %d", d1);
    return why;
}

/* 1 if s[0..n) looks like a dotted enhanced code attempt: digits and dots. */
static int looks_enhanced(const char *s, size_t n)
{
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.')
            dots++;
        else if (!isdigit((unsigned char)s[i]))
            return 0;
    }
    return dots > 0 && n > 0 && isdigit((unsigned char)s[0]);
}

/* Point out an enhanced code the parser did not accept for the whole reply. */
static void note_enhanced_near_miss(sk_explanation *x, const sk_reply *r)
{
    const char *t = r->lines[0];
    size_t k = strcspn(t, " ");
    sk_enhanced e;
    if (sk_enhanced_parse(t, k, &e) < 0)
        return;
    char tok[24];
    snprintf(tok, sizeof tok, "%.*s", (int)(k < 20 ? k : 20), t);
    if (e.cls != r->code / 100)
        add_note(x,
                 "'%s' looks like an enhanced code, but its class %d differs from the reply's "
                 "first digit %d (RFC 2034 requires them to match); it is treated as text",
                 tok, e.cls, r->code / 100);
    else
        add_note(x,
                 "'%s' on line 1 is not repeated on every line, so the reply carries no "
                 "enhanced code (RFC 2034 puts it on each line); it is treated as text",
                 tok);
}

static int explain_enhanced(sk_explanation *x, const char *tok, size_t toklen, const char *rest)
{
    if (sk_enhanced_parse(tok, toklen, &x->enhanced) < 0) {
        char shown[64];
        snprintf(shown, sizeof shown, "%.*s", (int)(toklen < 60 ? toklen : 60), tok);
        const char *why = isdigit((unsigned char)tok[0]) && tok[0] != '2' && tok[0] != '4' &&
                                  tok[0] != '5' && toklen > 1 && tok[1] == '.'
                              ? "the class must be 2, 4 or 5 (RFC 3463 2)"
                              : "expected class.subject.detail, e.g. 5.7.1, with 1-3 digits "
                                "for subject and detail (RFC 3463 2)";
        return bad_input("'%s' is not an enhanced status code: %s", shown, why);
    }
    x->kind = SK_EXPLAIN_ENHANCED;
    x->has_enhanced = 1;
    x->enhanced_text = rest && *rest ? rest : NULL;
    return 0;
}

/*
 * Work out what `text` is and fill x. `from_stdin` only changes messages.
 * Returns 0, or 2 after printing why the input cannot be explained.
 * *reply is filled for replies (free with sk_reply_free).
 */
static int classify(sk_explanation *x, char *text, size_t len, int from_stdin, sk_reply *reply)
{
    len = tidy(text, len);
    const char *where = from_stdin ? "standard input" : "input";
    if (len == 0)
        return bad_input("empty %s: give a reply code (550), an enhanced code (5.7.1) or a "
                         "reply line",
                         where);

    size_t tok = strcspn(text, " \t\r\n");
    int one_token = tok == len;
    int all_digits = 1;
    for (size_t i = 0; i < tok; i++)
        if (!isdigit((unsigned char)text[i]))
            all_digits = 0;

    if (one_token && all_digits) {
        if (tok != 3)
            return bad_input("'%s' is not a reply code: %s", text,
                             "a basic code has exactly 3 digits (RFC 5321 4.2)");
        int code = atoi(text);
        const char *why = code_problem(code);
        if (why)
            return bad_input("'%s' is not a reply code: %s", text, why);
        x->kind = SK_EXPLAIN_CODE;
        x->code = code;
        pick_rows(x);
        return 0;
    }
    if (looks_enhanced(text, tok) && !memchr(text, '\n', len)) {
        const char *rest = text + tok;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        return explain_enhanced(x, text, tok, rest);
    }

    /* A reply: give its last line an end, then parse it. */
    char *buf = malloc(len + 3);
    if (!buf)
        return bad_input("out of memory");
    memcpy(buf, text, len);
    memcpy(buf + len, "\r\n", 3);
    size_t blen = len + 2;
    const char *err = NULL;
    int flags = SK_REPLY_LENIENT_EOL | SK_REPLY_ALLOW_ANY;
    ssize_t used = sk_reply_parse(buf, blen, flags, reply, &err);
    if (used == 0) {
        /* Only "ddd-" lines, a lone one too: a cut-off reply, whose last
         * line might have carried another code (RFC 5321 4.2.1). */
        free(buf);
        if (!memchr(text, '\n', len))
            return bad_input("%s: incomplete reply: '%.4s' is a continuation line; the reply's "
                             "last line ('%.3s text') is missing",
                             where, text, text);
        return bad_input("%s: %s", where,
                         "incomplete reply: every line is a continuation ('ddd-'); the "
                         "last line ('ddd text') is missing");
    }
    if (used < 0) {
        free(buf);
        char shown[80];
        snprintf(shown, sizeof shown, "%s", from_stdin ? "standard input" : text);
        if (!from_stdin && strlen(text) > 60)
            snprintf(shown, sizeof shown, "%.57s...", text);
        if (from_stdin)
            return bad_input("%s: %s", shown, err ? err : "malformed reply");
        return bad_input("cannot explain '%s': %s", shown, err ? err : "malformed reply");
    }
    if ((size_t)used < blen) {
        sk_reply_free(reply);
        free(buf);
        return bad_input("%s: %s", where,
                         "more than one reply (text after the reply's last line); explain "
                         "them one at a time");
    }
    free(buf);

    const char *why = code_problem(reply->code);
    if (why) {
        char shown[8];
        snprintf(shown, sizeof shown, "%d", reply->code);
        sk_reply_free(reply);
        return bad_input("'%s' is not a reply code: %s", shown, why);
    }
    x->kind = SK_EXPLAIN_REPLY;
    x->code = reply->code;
    x->reply = reply;
    if (reply->has_enhanced) {
        x->has_enhanced = 1;
        x->enhanced = reply->enhanced;
    } else {
        note_enhanced_near_miss(x, reply);
    }
    pick_rows(x);
    return 0;
}

static int run(char **pos, int npos, int json, int list, int bounce, const char *context,
               char *ctx_upper);

int sk_cmd_explain(int argc, char **argv)
{
    int json = 0, list = 0, bounce = 0, npos = 0, only_positional = 0;
    const char *context = NULL;
    char ctx_upper[16];
    char **pos = calloc((size_t)argc + 1, sizeof *pos); /* positional arguments */
    if (!pos)
        return bad_input("out of memory");

    /* Options may come before or after the code; "--" ends them. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || !strcmp(a, "-")) {
            pos[npos++] = argv[i];
        } else if (!strcmp(a, "--")) {
            only_positional = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(pos);
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else if (!strcmp(a, "--bounce")) {
            bounce = 1;
        } else if (!strcmp(a, "--context") || !strncmp(a, "--context=", 10) ||
                   !strcmp(a, "--command") || !strncmp(a, "--command=", 10)) {
            if (a[9] == '=') {
                context = a + 10;
            } else if (i + 1 < argc) {
                context = argv[++i];
            } else {
                free(pos);
                return bad_input("%s needs a command name, e.g. %s RCPT", a, a);
            }
        } else {
            free(pos);
            fprintf(stderr, "smtpkit explain: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    int rc = run(pos, npos, json, list, bounce, context, ctx_upper);
    free(pos);
    return rc;
}

/* Everything after option parsing. */
/* The index in known_contexts of a command name, or -1. */
static int known_context(const char *s)
{
    if (strlen(s) >= 16)
        return -1;
    for (size_t k = 0; k < sizeof known_contexts / sizeof known_contexts[0]; k++)
        if (!strcasecmp(s, known_contexts[k]))
            return (int)k;
    return -1;
}

static int run(char **pos, int npos, int json, int list, int bounce, const char *context,
               char *ctx_upper)
{
    if (bounce && (list || npos > 1 || (npos == 1 && strcmp(pos[0], "-")) || context))
        return bad_input("--bounce reads a bounce message on standard input and takes no code, "
                         "--list or --command");
    /* "explain RCPT 454 4.7.1 ...": a leading command name (a reply or code
     * always starts with a digit) is the command the reply answers. */
    if (!context && npos >= 1 && known_context(pos[0]) >= 0) {
        context = pos[0];
        pos++;
        npos--;
    }
    if (context) {
        int k = known_context(context);
        if (k < 0)
            return bad_input("unknown context '%s': %s", context,
                             "use a command (HELO EHLO MAIL RCPT DATA BDAT RSET VRFY EXPN HELP "
                             "NOOP QUIT ETRN ATRN AUTH STARTTLS...), CONNECT or DATA-END");
        snprintf(ctx_upper, 16, "%s", known_contexts[k]);
        context = ctx_upper;
    }

    if (list) {
        if (npos || context)
            return bad_input("--list takes no code and no command");
        if (json)
            sk_explain_list_json(stdout);
        else
            sk_explain_list_text(stdout);
        return 0;
    }

    /* The input: the arguments joined by spaces, or standard input. */
    char *text = NULL;
    size_t len = 0;
    int from_stdin = 0;
    if (npos == 0 || (npos == 1 && !strcmp(pos[0], "-"))) {
        if (npos == 0 && isatty(STDIN_FILENO)) {
            usage(stderr);
            return 2;
        }
        const char *why = NULL;
        text = read_stdin(&len, &why, bounce ? SK_BOUNCE_MAX_INPUT : MAX_INPUT, bounce);
        if (!text)
            return bad_input("standard input: %s", why);
        if (memchr(text, '\0', len)) {
            free(text);
            return bad_input("standard input: NUL byte in the input");
        }
        from_stdin = 1;
    } else {
        for (int i = 0; i < npos; i++)
            len += strlen(pos[i]) + 1;
        text = malloc(len + 1);
        if (!text)
            return bad_input("out of memory");
        len = 0;
        for (int i = 0; i < npos; i++) {
            size_t n = strlen(pos[i]);
            if (i > 0)
                text[len++] = ' ';
            memcpy(text + len, pos[i], n);
            len += n;
        }
        text[len] = '\0';
    }

    char *input_copy = strdup(text);
    if (!input_copy) {
        free(text);
        return bad_input("out of memory");
    }
    sk_explanation x;
    memset(&x, 0, sizeof x);
    x.input = input_copy;
    x.context = context;
    sk_reply reply;
    memset(&reply, 0, sizeof reply);

    int rc =
        bounce ? sk_explain_bounce(text, len, json) : classify(&x, text, len, from_stdin, &reply);
    if (rc == 0 && !bounce && sk_explain_known_fill(&x) < 0)
        rc = bad_input("out of memory");
    if (rc == 0 && !bounce) {
        if (json)
            sk_explain_print_json(stdout, &x);
        else
            sk_explain_print_text(stdout, &x);
        if (fflush(stdout) != 0) {
            perror("smtpkit explain: stdout");
            rc = 1;
        }
    }
    sk_reply_free(&reply);
    free(text);
    free(input_copy);
    return rc;
}
