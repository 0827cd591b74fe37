/*
 * test_registry.c - the reply-code registry, digit meanings and the
 * enhanced status code registry are consistent with RFC 5321 4.2/4.3.2,
 * the ESMTP RFCs and RFC 3463 / the IANA registry, row by row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

/* Every code in the seed documents, and the ones the RFCs add. */
static const int seed_codes[] = {200, 211, 214, 220, 221, 250, 251, 252, 253, 354, 355, 421, 432,
                                 450, 451, 452, 453, 454, 458, 459, 500, 501, 502, 503, 504, 505,
                                 521, 530, 534, 538, 550, 551, 552, 553, 554, 571, 572};
static const int rfc_added_codes[] = {235, 334, 455, 535, 555, 556};

/* The vocabulary of sk_code_entry.commands (registry.h). */
static const char *const known_commands[] = {"CONNECT",  "HELO", "EHLO", "MAIL",     "RCPT", "DATA",
                                             "DATA-END", "BDAT", "RSET", "VRFY",     "EXPN", "HELP",
                                             "NOOP",     "QUIT", "SEND", "SOML",     "SAML", "TURN",
                                             "ETRN",     "ATRN", "AUTH", "STARTTLS", "ANY"};
static const char *const known_contexts[] = {"ATRN", "AUTH", "BDAT", "ETRN", "STARTTLS"};

static int in_list(const char *const *list, size_t n, const char *w, size_t wl)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == wl && !strncmp(list[i], w, wl))
            return 1;
    return 0;
}

static int has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == wl && !strncmp(p, word, n))
            return 1;
        p += n;
    }
    return 0;
}

static void test_seed_and_rfc_codes_present(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof seed_codes / sizeof seed_codes[0]; i++) {
        const sk_code_entry *e = sk_registry_lookup(seed_codes[i], NULL);
        if (!e)
            fail_msg("seed code %d missing from the registry", seed_codes[i]);
        assert_int_equal(e->code, seed_codes[i]);
    }
    for (size_t i = 0; i < sizeof rfc_added_codes / sizeof rfc_added_codes[0]; i++)
        if (!sk_registry_lookup(rfc_added_codes[i], NULL))
            fail_msg("RFC code %d missing from the registry", rfc_added_codes[i]);
    assert_null(sk_registry_lookup(299, NULL));
    assert_null(sk_registry_lookup(0, NULL));
    assert_null(sk_registry_lookup(999, "ETRN"));
}

static void test_fields_filled(void **state)
{
    (void)state;
    assert_true(sk_registry_size() > 40);
    assert_null(sk_registry_entry(sk_registry_size()));
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        assert_non_null(e);
        assert_non_null(e->text);
        assert_non_null(e->meaning);
        assert_true(strlen(e->meaning) > 10);
        assert_non_null(e->rfc);
        assert_non_null(e->commands);
        assert_true(strlen(e->commands) > 0);
        assert_true(e->code >= 200 && e->code <= 599);
    }
}

/* Sorted by code, base row first, contexts ascending: implies no duplicate
 * (context, code); the pairwise check says so directly. */
static void test_order_and_no_duplicates(void **state)
{
    (void)state;
    size_t n = sk_registry_size();
    for (size_t i = 1; i < n; i++) {
        const sk_code_entry *a = sk_registry_entry(i - 1), *b = sk_registry_entry(i);
        assert_true(a->code <= b->code);
        if (a->code == b->code) {
            assert_non_null(b->context); /* only one base row, and it comes first */
            if (a->context && strcmp(a->context, b->context) >= 0)
                fail_msg("%d: contexts %s, %s out of order", a->code, a->context, b->context);
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            const sk_code_entry *a = sk_registry_entry(i), *b = sk_registry_entry(j);
            int same_ctx = (!a->context && !b->context) ||
                           (a->context && b->context && !strcmp(a->context, b->context));
            if (a->code == b->code && same_ctx)
                fail_msg("duplicate (%s, %d)", a->context ? a->context : "base", a->code);
        }
}

/* RFC 2034 3: the enhanced code's class matches the reply's first digit;
 * 3xx replies carry none; every enhanced code used is registered. */
static void test_enhanced_class_matches(void **state)
{
    (void)state;
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        if (e->code / 100 == 3) {
            assert_null(e->enhanced);
            continue;
        }
        if (!e->enhanced)
            continue;
        sk_enhanced en;
        if (sk_enhanced_parse(e->enhanced, strlen(e->enhanced), &en) < 0)
            fail_msg("%d: bad enhanced code %s", e->code, e->enhanced);
        if (en.cls != e->code / 100)
            fail_msg("%d: enhanced %s has the wrong class", e->code, e->enhanced);
        if (!sk_enhanced_lookup(en.subject, en.detail))
            fail_msg("%d: enhanced %s is not in the enhanced registry", e->code, e->enhanced);
    }
    /* The greeting carries no enhanced code (RFC 2034). */
    assert_null(sk_registry_lookup(220, NULL)->enhanced);
}

static void test_commands_are_known(void **state)
{
    (void)state;
    size_t nk = sizeof known_commands / sizeof known_commands[0];
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        for (const char *p = e->commands; *p;) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (n && !in_list(known_commands, nk, p, n))
                fail_msg("%d: unknown command '%.*s'", e->code, (int)n, p);
            p += n;
        }
    }
}

static void test_contexts_known_and_used(void **state)
{
    (void)state;
    size_t nc = sizeof known_contexts / sizeof known_contexts[0];
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        if (!e->context)
            continue;
        if (!in_list(known_contexts, nc, e->context, strlen(e->context)))
            fail_msg("%d: unknown context %s", e->code, e->context);
        /* A context row is returned by its own command, or (530) by any. */
        if (!has_word(e->commands, e->context) && !has_word(e->commands, "ANY"))
            fail_msg("%d (%s): commands do not include %s", e->code, e->context, e->context);
    }
}

/* Codes RFC 5321 4.2.3 defines have a base row citing it; every code without
 * a base row is one that only an extension defines. */
static void test_base_row_or_extension_only(void **state)
{
    (void)state;
    static const int rfc5321[] = {211, 214, 220, 221, 250, 251, 252, 354, 421, 450, 451, 452,
                                  455, 500, 501, 502, 503, 504, 550, 551, 552, 553, 554, 555};
    static const int extension_only[] = {235, 253, 334, 432, 453, 454,
                                         458, 459, 530, 534, 535, 538};
    for (size_t i = 0; i < sizeof rfc5321 / sizeof rfc5321[0]; i++) {
        const sk_code_entry *e = sk_registry_lookup(rfc5321[i], NULL);
        assert_non_null(e);
        if (e->context || !strstr(e->rfc, "RFC 5321"))
            fail_msg("%d: no base row citing RFC 5321", rfc5321[i]);
    }
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        const sk_code_entry *rows[16];
        size_t n = sk_registry_find(e->code, rows, 16);
        int has_base = 0;
        for (size_t k = 0; k < n; k++)
            has_base |= rows[k]->context == NULL;
        if (has_base)
            continue;
        int listed = 0;
        for (size_t k = 0; k < sizeof extension_only / sizeof extension_only[0]; k++)
            listed |= extension_only[k] == e->code;
        if (!listed)
            fail_msg("%d has no base row and is not an extension-only code", e->code);
    }
}

static void expect_context(int code, const char *ctx)
{
    const sk_code_entry *e = sk_registry_lookup(code, ctx);
    if (!e || !e->context || strcmp(e->context, ctx) != 0)
        fail_msg("no %s row for %d", ctx, code);
}

static void test_context_meanings(void **state)
{
    (void)state;
    static const int etrn[] = {250, 251, 252, 253, 458, 459};
    static const int atrn[] = {450, 451, 453};
    static const int auth[] = {235, 334, 432, 454, 500, 501, 503, 504, 530, 534, 535, 538};
    static const int starttls[] = {220, 454, 501, 530};
    for (size_t i = 0; i < sizeof etrn / sizeof etrn[0]; i++)
        expect_context(etrn[i], "ETRN");
    for (size_t i = 0; i < sizeof atrn / sizeof atrn[0]; i++)
        expect_context(atrn[i], "ATRN");
    for (size_t i = 0; i < sizeof auth / sizeof auth[0]; i++)
        expect_context(auth[i], "AUTH");
    for (size_t i = 0; i < sizeof starttls / sizeof starttls[0]; i++)
        expect_context(starttls[i], "STARTTLS");
    expect_context(250, "BDAT");
    /* The AUTH codes carry RFC 4954 6's enhanced codes. */
    assert_string_equal(sk_registry_lookup(535, "AUTH")->enhanced, "5.7.8");
    assert_string_equal(sk_registry_lookup(534, "AUTH")->enhanced, "5.7.9");
    assert_string_equal(sk_registry_lookup(538, "AUTH")->enhanced, "5.7.11");
    assert_string_equal(sk_registry_lookup(432, "AUTH")->enhanced, "4.7.12");
    assert_string_equal(sk_registry_lookup(235, "AUTH")->enhanced, "2.7.0");
    assert_string_equal(sk_registry_lookup(500, "AUTH")->enhanced, "5.5.6");
}

static void test_lookup_fallbacks(void **state)
{
    (void)state;
    assert_null(sk_registry_lookup(250, NULL)->context);
    assert_null(sk_registry_lookup(250, "MAIL")->context);          /* a command, not a context */
    assert_null(sk_registry_lookup(250, "NO-SUCH-THING")->context); /* unknown: base */
    assert_string_equal(sk_registry_lookup(250, "etrn")->context, "ETRN"); /* any case */
    /* Extension-only codes fall back to a row allowing the command, else the first. */
    assert_string_equal(sk_registry_lookup(454, "STARTTLS")->context, "STARTTLS");
    assert_string_equal(sk_registry_lookup(454, "AUTH")->context, "AUTH");
    assert_non_null(sk_registry_lookup(454, NULL));
    assert_string_equal(sk_registry_lookup(530, "MAIL")->context, "AUTH");
    assert_string_equal(sk_registry_lookup(530, "STARTTLS")->context, "STARTTLS");

    const sk_code_entry *rows[8];
    assert_int_equal(sk_registry_find(250, rows, 8), 4);
    assert_null(rows[0]->context);
    assert_string_equal(rows[3]->context, "ETRN");
    assert_int_equal(sk_registry_find(250, NULL, 0), 4);
    assert_int_equal(sk_registry_find(250, rows, 1), 4); /* count even when out is short */
    assert_int_equal(sk_registry_find(299, rows, 8), 0);
}

struct pair {
    const char *command;
    int code;
};

/* RFC 5321 4.3.2, the ESMTP RFCs, and the additions ANCHORS.md names. */
static const struct pair must_allow[] = {
    {"CONNECT", 220},  {"CONNECT", 554},  {"CONNECT", 421},  {"CONNECT", 521},  {"EHLO", 250},
    {"EHLO", 504},     {"EHLO", 550},     {"EHLO", 502},     {"HELO", 250},     {"HELO", 504},
    {"HELO", 550},     {"HELO", 502},     {"HELO", 500},     {"HELO", 501},     {"HELO", 421},
    {"MAIL", 250},     {"MAIL", 552},     {"MAIL", 451},     {"MAIL", 452},     {"MAIL", 550},
    {"MAIL", 553},     {"MAIL", 503},     {"MAIL", 455},     {"MAIL", 555},     {"RCPT", 250},
    {"RCPT", 251},     {"RCPT", 550},     {"RCPT", 551},     {"RCPT", 552},     {"RCPT", 553},
    {"RCPT", 450},     {"RCPT", 451},     {"RCPT", 452},     {"RCPT", 503},     {"RCPT", 455},
    {"RCPT", 555},     {"RCPT", 556},     {"DATA", 354},     {"DATA", 503},     {"DATA", 554},
    {"DATA-END", 250}, {"DATA-END", 552}, {"DATA-END", 554}, {"DATA-END", 451}, {"DATA-END", 452},
    {"DATA-END", 450}, {"DATA-END", 550}, {"RSET", 250},     {"VRFY", 250},     {"VRFY", 251},
    {"VRFY", 252},     {"VRFY", 550},     {"VRFY", 551},     {"VRFY", 553},     {"VRFY", 502},
    {"VRFY", 504},     {"EXPN", 250},     {"EXPN", 252},     {"EXPN", 550},     {"EXPN", 500},
    {"EXPN", 502},     {"EXPN", 504},     {"HELP", 211},     {"HELP", 214},     {"HELP", 502},
    {"HELP", 504},     {"NOOP", 250},     {"QUIT", 221},     {"ETRN", 250},     {"ETRN", 251},
    {"ETRN", 252},     {"ETRN", 253},     {"ETRN", 458},     {"ETRN", 459},     {"ATRN", 250},
    {"ATRN", 450},     {"ATRN", 451},     {"ATRN", 453},     {"STARTTLS", 220}, {"STARTTLS", 454},
    {"STARTTLS", 501}, {"AUTH", 235},     {"AUTH", 334},     {"AUTH", 535},     {"AUTH", 538},
    {"AUTH", 454},     {"AUTH", 432},     {"AUTH", 534},     {"AUTH", 500},     {"AUTH", 504},
    {"MAIL", 530},     {"BDAT", 250},     {"TURN", 502},     {"SEND", 250},     {"RSET", 504},
    {"NOOP", 421},
};

static const struct pair must_not_allow[] = {
    {"NOOP", 503},     {"HELP", 503},    {"VRFY", 503},     {"EXPN", 503}, /* RFC 5321 4.1.4 */
    {"RSET", 503},     {"EHLO", 354},    {"CONNECT", 250},  {"CONNECT", 500},
    {"DATA-END", 354}, {"QUIT", 250},    {"MAIL", 235},     {"EHLO", 253},
    {"RCPT", 354},     {"CONNECT", 530}, {"DATA-END", 530}, {NULL, 250},
};

static void test_allows_rfc5321_4_3_2(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof must_allow / sizeof must_allow[0]; i++)
        if (!sk_registry_allows(must_allow[i].code, must_allow[i].command))
            fail_msg("%s must allow %d", must_allow[i].command, must_allow[i].code);
    for (size_t i = 0; i < sizeof must_not_allow / sizeof must_not_allow[0]; i++)
        if (sk_registry_allows(must_not_allow[i].code, must_not_allow[i].command))
            fail_msg("%s must not allow %d",
                     must_not_allow[i].command ? must_not_allow[i].command : "(null)",
                     must_not_allow[i].code);
    assert_true(sk_registry_allows(250, "mail")); /* case-insensitive */
}

static void test_status_and_notes(void **state)
{
    (void)state;
    static const int nonstandard[] = {200, 505, 571, 572};
    for (size_t i = 0; i < sizeof nonstandard / sizeof nonstandard[0]; i++) {
        const sk_code_entry *e = sk_registry_lookup(nonstandard[i], NULL);
        assert_int_equal(e->status, SK_CODE_NONSTANDARD);
        assert_non_null(e->status_note);
    }
    assert_int_equal(sk_registry_lookup(355, NULL)->status, SK_CODE_OBSOLETE);
    assert_non_null(strstr(sk_registry_lookup(571, NULL)->status_note, "Exchange"));
    assert_false(sk_code_is_valid(571));
    assert_false(sk_code_is_valid(572));
    /* Standard rows fit the RFC 5321 grammar. */
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        if (e->status == SK_CODE_STANDARD && !sk_code_is_valid(e->code))
            fail_msg("standard code %d outside the grammar", e->code);
    }
    /* Where the seeds disagree with the RFCs, the note records it. */
    assert_non_null(strstr(sk_registry_lookup(454, "AUTH")->status_note, "538"));
    assert_non_null(strstr(sk_registry_lookup(530, "AUTH")->status_note, "538"));
    assert_non_null(strstr(sk_registry_lookup(502, NULL)->status_note, "550"));
    assert_non_null(strstr(sk_registry_lookup(550, NULL)->status_note, "502"));
    assert_non_null(strstr(sk_registry_lookup(505, NULL)->status_note, "530"));
    assert_non_null(strstr(sk_registry_lookup(530, "STARTTLS")->rfc, "3207"));
    assert_non_null(strstr(sk_registry_lookup(530, "AUTH")->rfc, "4954"));
    assert_non_null(strstr(sk_registry_lookup(556, NULL)->rfc, "7504"));
    assert_non_null(strstr(sk_registry_lookup(521, NULL)->rfc, "7504"));
}

static void test_advice_matches_class(void **state)
{
    (void)state;
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        sk_advice a = e->advice;
        int ok = 0;
        switch (e->code / 100) {
        case 2:
            ok = a == SK_ADVICE_DONE;
            break;
        case 3:
            ok = a == SK_ADVICE_CONTINUE;
            break;
        case 4:
            ok = a == SK_ADVICE_RETRY || a == SK_ADVICE_FIX;
            break;
        case 5:
            ok = a == SK_ADVICE_FIX || a == SK_ADVICE_GIVE_UP;
            break;
        }
        if (!ok)
            fail_msg("%d: advice %s does not fit its class", e->code, sk_advice_name(a));
    }
    assert_int_equal(sk_registry_lookup(421, NULL)->advice, SK_ADVICE_RETRY);
    assert_int_equal(sk_registry_lookup(550, NULL)->advice, SK_ADVICE_GIVE_UP);
    assert_int_equal(sk_registry_lookup(535, "AUTH")->advice, SK_ADVICE_FIX);
    assert_int_equal(sk_registry_lookup(354, NULL)->advice, SK_ADVICE_CONTINUE);

    const char *names[5];
    for (int a = 0; a < 5; a++) {
        names[a] = sk_advice_name((sk_advice)a);
        assert_string_not_equal(names[a], "?");
        assert_string_not_equal(sk_advice_meaning((sk_advice)a), "?");
        for (int b = 0; b < a; b++)
            assert_string_not_equal(names[a], names[b]);
    }
    assert_string_equal(sk_advice_name(SK_ADVICE_RETRY), "retry later");
    assert_string_equal(sk_code_status_name(SK_CODE_STANDARD), "standard");
    assert_string_equal(sk_code_status_name(SK_CODE_OBSOLETE), "obsolete");
    assert_string_equal(sk_code_status_name(SK_CODE_NONSTANDARD), "non-standard");
}

static void test_digit_meanings(void **state)
{
    (void)state;
    for (int d = 0; d <= 9; d++) {
        int first_ok = d >= 2 && d <= 5, second_ok = d <= 5;
        assert_int_equal(sk_digit_meaning(0, d) != NULL, first_ok);
        assert_int_equal(sk_digit_name(0, d) != NULL, first_ok);
        assert_int_equal(sk_digit_meaning(1, d) != NULL, second_ok);
        assert_int_equal(sk_digit_name(1, d) != NULL, second_ok);
        assert_non_null(sk_digit_meaning(2, d));
        assert_non_null(sk_digit_name(2, d));
    }
    assert_null(sk_digit_meaning(0, -1));
    assert_null(sk_digit_meaning(1, 10));
    assert_null(sk_digit_meaning(3, 1));
    assert_null(sk_digit_meaning(-1, 1));
    assert_non_null(strstr(sk_digit_name(0, 4), "transient"));
    assert_non_null(strstr(sk_digit_name(0, 5), "permanent"));
    assert_string_equal(sk_digit_name(1, 0), "syntax");
    assert_string_equal(sk_digit_name(1, 1), "information");
    assert_string_equal(sk_digit_name(1, 2), "connections");
    assert_string_equal(sk_digit_name(1, 5), "mail system");
}

static void test_code_grammar(void **state)
{
    (void)state;
    static const int valid[] = {200, 220, 259, 354, 421, 455, 500, 555, 559, 250};
    static const int invalid[] = {0, -250, 99, 100, 150, 199, 260, 299, 571, 600, 699, 1000};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        assert_true(sk_code_is_valid(valid[i]));
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (sk_code_is_valid(invalid[i]))
            fail_msg("%d must be invalid", invalid[i]);
}

static void test_enhanced_registry(void **state)
{
    (void)state;
    size_t n = sk_enhanced_size();
    assert_true(n > 80);
    assert_null(sk_enhanced_entry_at(n));
    for (size_t i = 0; i < n; i++) {
        const sk_enhanced_entry *e = sk_enhanced_entry_at(i);
        assert_non_null(e->name);
        assert_non_null(e->meaning);
        assert_non_null(e->rfc);
        assert_true(e->subject >= 0 && e->subject <= 7);
        if (e->detail >= 0 && !sk_enhanced_subject(e->subject))
            fail_msg("X.%d.%d has no subject row", e->subject, e->detail);
        if (i > 0) {
            const sk_enhanced_entry *p = sk_enhanced_entry_at(i - 1);
            if (p->subject > e->subject || (p->subject == e->subject && p->detail >= e->detail))
                fail_msg("X.%d.%d out of order or duplicate", e->subject, e->detail);
        }
    }
    for (int s = 0; s <= 7; s++)
        assert_non_null(sk_enhanced_subject(s));
    assert_null(sk_enhanced_subject(8));

    /* Detail ranges of the registry: RFC 3463 plus later registrations. */
    static const int last_detail[8] = {0, 10, 4, 6, 7, 6, 10, 30};
    for (int s = 0; s <= 7; s++) {
        for (int d = 0; d <= last_detail[s]; d++)
            if (!sk_enhanced_lookup(s, d))
                fail_msg("X.%d.%d missing", s, d);
        if (sk_enhanced_lookup(s, last_detail[s] + 1))
            fail_msg("X.%d.%d should not be registered", s, last_detail[s] + 1);
    }
    assert_non_null(strstr(sk_enhanced_lookup(1, 1)->name, "Bad destination mailbox"));
    assert_non_null(strstr(sk_enhanced_lookup(1, 10)->rfc, "7505"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 8)->name, "credentials invalid"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 9)->name, "too weak"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 11)->rfc, "4954"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 13)->name, "disabled"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 23)->name, "SPF"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 27)->name, "null MX"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 30)->name, "REQUIRETLS"));
    assert_non_null(strstr(sk_enhanced_lookup(5, 6)->rfc, "4954"));
    assert_non_null(strstr(sk_enhanced_lookup(6, 7)->rfc, "6531"));
    assert_non_null(strstr(sk_enhanced_lookup(3, 6)->rfc, "6710"));
    assert_non_null(strstr(sk_enhanced_lookup(7, 17)->rfc, "7293"));
    assert_non_null(strstr(sk_enhanced_lookup(1, 9)->rfc, "3886"));
    assert_non_null(strstr(sk_enhanced_lookup(6, 6)->rfc, "4468"));

    assert_non_null(sk_enhanced_class_meaning(2));
    assert_non_null(sk_enhanced_class_meaning(4));
    assert_non_null(sk_enhanced_class_meaning(5));
    assert_null(sk_enhanced_class_meaning(3));
    assert_null(sk_enhanced_class_name(6));
    assert_string_equal(sk_enhanced_class_name(5), "Permanent failure");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_and_rfc_codes_present),
        cmocka_unit_test(test_fields_filled),
        cmocka_unit_test(test_order_and_no_duplicates),
        cmocka_unit_test(test_enhanced_class_matches),
        cmocka_unit_test(test_commands_are_known),
        cmocka_unit_test(test_contexts_known_and_used),
        cmocka_unit_test(test_base_row_or_extension_only),
        cmocka_unit_test(test_context_meanings),
        cmocka_unit_test(test_lookup_fallbacks),
        cmocka_unit_test(test_allows_rfc5321_4_3_2),
        cmocka_unit_test(test_status_and_notes),
        cmocka_unit_test(test_advice_matches_class),
        cmocka_unit_test(test_digit_meanings),
        cmocka_unit_test(test_code_grammar),
        cmocka_unit_test(test_enhanced_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
