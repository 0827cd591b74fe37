/*
 * known_reply.c - the matcher over the table of real-world reply texts
 * (known_replies.def): which row fits a reply best, and on what it relied.
 *
 * Replies follow RFC 5321 4.2 (code, '-' or ' ', text) and RFC 2034/3463
 * (an enhanced code at the start of the text). Text patterns are
 * case-insensitive substrings or POSIX extended regular expressions
 * compiled once with regcomp(3); there is no hand-written regex engine.
 */
#include "smtpkit/known_reply.h"

#include <ctype.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the table ---------------------------------------------------------- */

#define SOURCE(key, name, url) {key, name, url},
#define KNOWN(...)
static const sk_known_source sources[] = {
#include "core/known_replies.def"
};
#undef SOURCE
#undef KNOWN

#define ANY_COMMAND NULL
#define ANY_CODE NULL
#define ANY_ENHANCED NULL
#define NO_TEXT SK_TEXT_ANY, NULL
#define TEXT(s) SK_TEXT_SUBSTR, s
#define REGEX(s) SK_TEXT_REGEX, s
#define SENDER SK_ACTOR_SENDER
#define SENDER_ADMIN SK_ACTOR_SENDER_ADMIN
#define RECIPIENT SK_ACTOR_RECIPIENT
#define RECIPIENT_ADMIN SK_ACTOR_RECIPIENT_ADMIN
#define NOBODY SK_ACTOR_NOBODY
#define SOURCE(key, name, url)
#define KNOWN(id, provider, command, code, enhanced, pattern, category, actor, meaning, action,    \
              source)                                                                              \
    {id, provider, command, code, enhanced, pattern, category, actor, meaning, action, source},
static const sk_known_reply rows[] = {
#include "core/known_replies.def"
};
#undef SOURCE
#undef KNOWN

#define NROWS (sizeof rows / sizeof rows[0])
#define NSOURCES (sizeof sources / sizeof sources[0])

size_t sk_known_reply_count(void)
{
    return NROWS;
}

const sk_known_reply *sk_known_reply_at(size_t i)
{
    return i < NROWS ? &rows[i] : NULL;
}

size_t sk_known_source_count(void)
{
    return NSOURCES;
}

const sk_known_source *sk_known_source_at(size_t i)
{
    return i < NSOURCES ? &sources[i] : NULL;
}

const sk_known_source *sk_known_source_find(const char *key)
{
    for (size_t i = 0; key && i < NSOURCES; i++)
        if (!strcmp(sources[i].key, key))
            return &sources[i];
    return NULL;
}

const char *sk_actor_name(sk_actor a)
{
    static const char *const n[] = {"sender", "sender-admin", "recipient", "recipient-admin",
                                    "nobody"};
    return (unsigned)a < 5 ? n[a] : "?";
}

const char *sk_actor_meaning(sk_actor a)
{
    static const char *const n[] = {
        "the sender (the person who wrote the message)",
        "the sender's mail administrator (DNS, SPF/DKIM/DMARC, sending servers)",
        "the recipient (the person written to)",
        "the recipient's mail administrator (the receiving side's policy)",
        "nobody: a temporary refusal; the sending server retries by itself",
    };
    return (unsigned)a < 5 ? n[a] : "?";
}

const char *sk_known_basis_name(sk_known_basis b)
{
    static const char *const n[] = {"text", "enhanced", "code", "none"};
    return (unsigned)b < 4 ? n[b] : "?";
}

/* ---- compiled regular expressions (once) --------------------------------- */

static regex_t compiled[NROWS];
static int compiled_ok[NROWS];
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static void compile_all(void)
{
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].match == SK_TEXT_REGEX)
            compiled_ok[i] =
                regcomp(&compiled[i], rows[i].pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
}

/* ---- field matching ------------------------------------------------------ */

/* "550", "5xx" or NULL against code (0 = unknown, as for a bare enhanced
 * code). Returns the weight: -1 no match, 0 the row does not care or the
 * code is unknown, 1 class, 2 exact. */
static int code_weight(const char *want, int code)
{
    if (!want || code == 0)
        return 0;
    if (want[1] == 'x')
        return want[0] - '0' == code / 100 ? 1 : -1;
    return atoi(want) == code ? 2 : -1;
}

/* Parse "5.7.26" or "5.7.606-649" into class, subject, low and high detail. */
static int parse_enhanced_spec(const char *s, int *cls, int *subj, int *lo, int *hi)
{
    char tail;
    int n = sscanf(s, "%d.%d.%d-%d%c", cls, subj, lo, hi, &tail);
    if (n == 3) {
        *hi = *lo;
        return 0;
    }
    return n == 4 && *lo <= *hi ? 0 : -1;
}

/* Weight as code_weight: 3 for a detail range, 4 exact. */
static int enhanced_weight(const char *want, const sk_enhanced *e)
{
    int cls, subj, lo, hi;
    if (!want)
        return 0;
    if (!e || parse_enhanced_spec(want, &cls, &subj, &lo, &hi) < 0)
        return -1;
    if (e->cls != cls || e->subject != subj || e->detail < lo || e->detail > hi)
        return -1;
    return lo == hi ? 4 : 3;
}

/* The command a row names against the one given: 1 match, 0 the row does
 * not care or the command is unknown, -1 a different command. */
static int command_weight(const char *want, const char *have)
{
    if (!want || !have || !*have)
        return 0;
    int hello_w = !strcmp(want, "EHLO"),
        hello_h = !strcasecmp(have, "EHLO") || !strcasecmp(have, "HELO");
    if (hello_w && hello_h)
        return 1;
    int end_w = !strcmp(want, "DATA-END"),
        end_h = !strcasecmp(have, "DATA-END") || !strcasecmp(have, "BDAT");
    if (end_w && end_h)
        return 1;
    return strcasecmp(want, have) == 0 ? 1 : -1;
}

/* Copy text with every run of white space made one space, trimmed. */
static char *collapse(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f') {
            space = o > 0;
            continue;
        }
        if (space)
            out[o++] = ' ';
        space = 0;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

static int text_matches(size_t i, const char *text)
{
    switch (rows[i].match) {
    case SK_TEXT_ANY:
        return 1;
    case SK_TEXT_SUBSTR:
        return text && strcasestr(text, rows[i].pattern) != NULL;
    case SK_TEXT_REGEX:
        return text && compiled_ok[i] && regexec(&compiled[i], text, 0, NULL, 0) == 0;
    }
    return 0;
}

int sk_known_reply_match(const char *command, int code, const sk_enhanced *enhanced,
                         const char *text, sk_known_match *m)
{
    memset(m, 0, sizeof *m);
    pthread_once(&compile_once, compile_all);
    char *norm = NULL;
    if (text) {
        norm = collapse(text);
        if (!norm)
            return -1;
    }
    /* An enhanced code whose class differs from the basic code's first digit
     * is not one (RFC 2034); the caller normally checked this already. */
    if (enhanced && code && enhanced->cls != code / 100)
        enhanced = NULL;

    int best = -1;
    size_t best_i = 0;
    int best_cmd = 0, best_code = 0, best_enh = 0;
    for (size_t i = 0; i < NROWS; i++) {
        int wc = code_weight(rows[i].code, code);
        int we = enhanced_weight(rows[i].enhanced, enhanced);
        int wm = command_weight(rows[i].command, command);
        if (wc < 0 || we < 0 || wm < 0)
            continue;
        if (rows[i].match == SK_TEXT_ANY && !rows[i].enhanced)
            continue; /* a row must say something beyond the basic code */
        if (!text_matches(i, norm))
            continue;
        /* Rows for any receiver ("SPF/DKIM/DMARC (any receiver)") rank
         * below every named provider's row with the same kind of match. */
        int generic = strstr(rows[i].provider, "(any") != NULL;
        int score = (rows[i].match != SK_TEXT_ANY ? 16 : 0) + we * 2 + wc * 2 + wm - generic * 5;
        if (score > best) {
            best = score;
            best_i = i;
            best_cmd = wm > 0;
            best_code = wc > 0;
            best_enh = we > 0;
        }
    }
    free(norm);

    if (best < 0) {
        m->basis = enhanced ? SK_KNOWN_BY_ENHANCED : code ? SK_KNOWN_BY_CODE : SK_KNOWN_BY_NOTHING;
        m->certainty = enhanced ? "medium" : "low";
        return 0;
    }
    const sk_known_reply *r = &rows[best_i];
    m->row = r;
    m->source = sk_known_source_find(r->source);
    m->used_command = best_cmd;
    m->used_code = best_code;
    m->used_enhanced = best_enh;
    if (r->match != SK_TEXT_ANY) {
        m->basis = SK_KNOWN_BY_TEXT;
        m->certainty = best_code || best_enh ? "high" : "medium";
    } else {
        m->basis = SK_KNOWN_BY_ENHANCED;
        m->certainty = "medium";
    }
    return 1;
}

/* ---- one flattened reply line -------------------------------------------- */

/* At s: "ddd" + ('-' | ' ' | end) with the first digit 2-5? */
static int code_at(const char *s, int *code)
{
    if (s[0] < '2' || s[0] > '5' || !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
        return 0;
    if (s[3] != '\0' && s[3] != ' ' && s[3] != '-' && s[3] != '\t')
        return 0;
    *code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    return 1;
}

/* Length of an enhanced code at s (followed by white space or the end), or 0. */
static size_t enhanced_at(const char *s, sk_enhanced *e)
{
    size_t k = 0;
    while (s[k] && (isdigit((unsigned char)s[k]) || s[k] == '.') && k < 12)
        k++;
    if (k == 0 || (s[k] && s[k] != ' ' && s[k] != '\t' && s[k] != ';' && s[k] != ','))
        return 0;
    return sk_enhanced_parse(s, k, e) == 0 ? k : 0;
}

int sk_reply_line_split(const char *line, int *code, int *has_enhanced, sk_enhanced *enhanced,
                        char *text, size_t textlen)
{
    while (*line == ' ' || *line == '\t')
        line++;
    if (!code_at(line, code))
        return -1;
    char prefix[4];
    memcpy(prefix, line, 3);
    prefix[3] = '\0';
    const char *p = line + 3;
    if (*p == '-' || *p == ' ' || *p == '\t')
        p++;
    while (*p == ' ' || *p == '\t')
        p++;
    sk_enhanced e;
    size_t k = enhanced_at(p, &e);
    *has_enhanced = k > 0 && e.cls == *code / 100;
    if (*has_enhanced) {
        *enhanced = e;
        p += k;
    }
    /* Copy the text, dropping the code prefix of later lines ("550-5.1.1 ",
     * "550 5.1.1 ") where a multi-line reply was flattened, and collapsing
     * white space. */
    size_t o = 0;
    int space = 0;
    if (textlen == 0)
        return 0;
    while (*p) {
        if ((*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
            space = o > 0;
            p++;
            /* A repeated prefix after white space? */
            const char *q = p;
            while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
                q++;
            if (!strncmp(q, prefix, 3) && (q[3] == '-' || q[3] == ' ')) {
                const char *r = q + 4;
                sk_enhanced e2;
                size_t k2 = *has_enhanced ? enhanced_at(r, &e2) : 0;
                if (*has_enhanced && k2 && !memcmp(&e2, &e, sizeof e)) {
                    p = r + k2;
                    continue;
                }
                if (!*has_enhanced && q[3] == '-') {
                    p = r;
                    continue;
                }
            }
            continue;
        }
        if (space && *p == '/' && p[1] == ' ' && !strncmp(p + 2, prefix, 3)) {
            p++; /* " / 550 5.7.1 " joins lines in sk_reply_oneline() */
            continue;
        }
        if (space && o + 1 < textlen)
            text[o++] = ' ';
        space = 0;
        if (o + 1 < textlen)
            text[o++] = *p;
        p++;
    }
    text[o] = '\0';
    return 0;
}

int sk_known_reply_match_line(const char *command, const char *line, sk_known_match *m)
{
    int code, has_enh;
    sk_enhanced e;
    size_t n = strlen(line) + 1;
    char *text = malloc(n);
    if (!text)
        return -1;
    if (sk_reply_line_split(line, &code, &has_enh, &e, text, n) < 0) {
        free(text);
        memset(m, 0, sizeof *m);
        m->basis = SK_KNOWN_BY_NOTHING;
        m->certainty = "low";
        return 0;
    }
    int rc = sk_known_reply_match(command, code, has_enh ? &e : NULL, text, m);
    free(text);
    return rc;
}

/* ---- table check ----------------------------------------------------------- */

int sk_known_reply_check_table(char *why, size_t whylen)
{
    pthread_once(&compile_once, compile_all);
    for (size_t i = 0; i < NSOURCES; i++) {
        if (strncmp(sources[i].url, "https://", 8) && strncmp(sources[i].url, "http://", 7)) {
            snprintf(why, whylen, "source %s: the URL must start with https://", sources[i].key);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(sources[i].key, sources[j].key)) {
                snprintf(why, whylen, "source %s listed twice", sources[i].key);
                return -1;
            }
    }
    for (size_t i = 0; i < NROWS; i++) {
        const sk_known_reply *r = &rows[i];
        int a, b, c, d;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->id, rows[j].id)) {
                snprintf(why, whylen, "row %s listed twice", r->id);
                return -1;
            }
        if (!sk_known_source_find(r->source)) {
            snprintf(why, whylen, "row %s: unknown source '%s'", r->id, r->source);
            return -1;
        }
        if (r->code && (strlen(r->code) != 3 || r->code[0] < '2' || r->code[0] > '5' ||
                        !(r->code[1] == 'x' ? r->code[2] == 'x'
                                            : isdigit((unsigned char)r->code[1]) &&
                                                  isdigit((unsigned char)r->code[2])))) {
            snprintf(why, whylen, "row %s: code '%s' is not ddd or dxx", r->id, r->code);
            return -1;
        }
        if (r->enhanced && (parse_enhanced_spec(r->enhanced, &a, &b, &c, &d) < 0 ||
                            (a != 2 && a != 4 && a != 5) || (r->code && r->code[0] - '0' != a))) {
            snprintf(why, whylen, "row %s: enhanced code '%s' unparsable or of another class",
                     r->id, r->enhanced);
            return -1;
        }
        if (r->match == SK_TEXT_REGEX && !compiled_ok[i]) {
            snprintf(why, whylen, "row %s: the regular expression does not compile", r->id);
            return -1;
        }
        if ((r->match == SK_TEXT_ANY) != (r->pattern == NULL) ||
            (r->match == SK_TEXT_ANY && !r->enhanced)) {
            snprintf(why, whylen, "row %s: needs a text pattern or an enhanced code", r->id);
            return -1;
        }
        if (!r->provider[0] || !r->category[0] || strlen(r->meaning) < 20 ||
            strlen(r->action) < 10) {
            snprintf(why, whylen, "row %s: provider, category, meaning and action are required",
                     r->id);
            return -1;
        }
        if (r->command && command_weight(r->command, r->command) != 1) {
            snprintf(why, whylen, "row %s: bad command", r->id);
            return -1;
        }
    }
    return 0;
}
