/*
 * test_known_reply.c - the table of real-world replies
 * (src/core/known_replies.def) and its matcher: every row is well formed,
 * every reply of the corpus tests/data/known_replies.tsv (taken from the
 * public documentation the table names) gets the provider, actor, category
 * and source the corpus expects, and the rules of "the most specific match
 * wins" (text over enhanced code over basic code, command constraints,
 * class checks) hold. RFC 5321 4.2 and RFC 3463 for the reply syntax.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/known_reply.h"

#define CORPUS "tests/data/known_replies.tsv"

static const char *const categories[] = {
    "mailbox-unknown",
    "mailbox-disabled",
    "mailbox-full",
    "recipient-rate",
    "domain-unknown",
    "address-syntax",
    "relay-denied",
    "authentication",
    "smtp-auth",
    "reverse-dns",
    "helo",
    "sender-domain",
    "reputation",
    "blocklist",
    "rate-limit",
    "spam-content",
    "message-format",
    "message-size",
    "policy",
    "tls",
    "greylisting",
    "server-busy",
    "protocol",
    "loop",
    "sending-quota",
    "account-blocked",
    "recipient-restricted",
};

static int known_category(const char *c)
{
    for (size_t i = 0; i < sizeof categories / sizeof categories[0]; i++)
        if (!strcmp(categories[i], c))
            return 1;
    return 0;
}

static void table_is_well_formed(void **state)
{
    (void)state;
    char why[256] = "";
    int rc = sk_known_reply_check_table(why, sizeof why);
    if (rc != 0)
        fail_msg("%s", why);
    assert_true(sk_known_reply_count() >= 150);
    for (size_t i = 0; i < sk_known_reply_count(); i++) {
        const sk_known_reply *r = sk_known_reply_at(i);
        if (!known_category(r->category))
            fail_msg("row %s: unknown category '%s'", r->id, r->category);
    }
    assert_null(sk_known_reply_at(sk_known_reply_count()));
}

/* The providers the table must cover (issue: Gmail, Microsoft 365, Exchange
 * on-premises, Yahoo/AOL, iCloud, Postfix, postgrey, Exim, the DNSBLs and
 * SPF/DKIM/DMARC). */
static void table_covers_the_providers(void **state)
{
    (void)state;
    static const char *const providers[] = {"Gmail / Google Workspace",
                                            "Microsoft 365 / Exchange Online",
                                            "Exchange on-premises",
                                            "Yahoo / AOL",
                                            "Apple iCloud Mail",
                                            "Postfix",
                                            "postgrey",
                                            "Exim",
                                            "Spamhaus",
                                            "Barracuda",
                                            "SpamCop",
                                            "SPF/DKIM/DMARC (any receiver)"};
    for (size_t p = 0; p < sizeof providers / sizeof providers[0]; p++) {
        size_t n = 0;
        for (size_t i = 0; i < sk_known_reply_count(); i++)
            n += !strcmp(sk_known_reply_at(i)->provider, providers[p]);
        if (n == 0)
            fail_msg("no row for %s", providers[p]);
    }
    /* The Microsoft 365 codes the issue names, bare. */
    static const char *const ms[] = {"5.7.606", "5.7.625", "5.7.649", "5.7.708",
                                     "5.7.750", "4.7.500", "4.7.699", "5.1.10"};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        sk_enhanced e;
        assert_int_equal(sk_enhanced_parse(ms[i], strlen(ms[i]), &e), 0);
        sk_known_match m;
        assert_int_equal(sk_known_reply_match(NULL, 0, &e, NULL, &m), 1);
        if (strcmp(m.row->provider, "Microsoft 365 / Exchange Online"))
            fail_msg("%s matched %s", ms[i], m.row->id);
        assert_int_equal(m.basis, SK_KNOWN_BY_ENHANCED);
    }
}

/* Split a corpus line into its six fields (in place). */
static int split(char *line, char *f[6])
{
    int n = 0;
    char *p = line;
    while (n < 6) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
    }
    char *nl = strpbrk(f[n - 1], "\r\n");
    if (nl)
        *nl = '\0';
    return n;
}

static void corpus_matches(void **state)
{
    (void)state;
    FILE *fp = fopen(CORPUS, "r");
    if (!fp)
        fail_msg("cannot open %s (run from the source tree)", CORPUS);
    char line[4096];
    int n = 0, bad = 0, lineno = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *f[6];
        if (split(line, f) != 6) {
            print_error("%s:%d: expected 6 tab-separated fields\n", CORPUS, lineno);
            bad++;
            continue;
        }
        const char *cmd = strcmp(f[0], "-") ? f[0] : NULL;
        sk_known_match m;
        int rc = sk_known_reply_match_line(cmd, f[1], &m);
        n++;
        if (rc != 1) {
            print_error("%s:%d: no row matched: %s\n", CORPUS, lineno, f[1]);
            bad++;
            continue;
        }
        if (strcmp(m.row->provider, f[2]) || strcmp(sk_actor_name(m.row->actor), f[3]) ||
            strcmp(m.row->category, f[4]) || strcmp(m.row->source, f[5])) {
            print_error("%s:%d: got %s / %s / %s / %s (row %s), want %s / %s / %s / %s: %s\n",
                        CORPUS, lineno, m.row->provider, sk_actor_name(m.row->actor),
                        m.row->category, m.row->source, m.row->id, f[2], f[3], f[4], f[5], f[1]);
            bad++;
        }
        if (!sk_known_source_find(f[5])) {
            print_error("%s:%d: unknown source %s\n", CORPUS, lineno, f[5]);
            bad++;
        }
    }
    fclose(fp);
    assert_true(n >= 150);
    assert_int_equal(bad, 0);
}

static void text_outweighs_codes(void **state)
{
    (void)state;
    sk_known_match m;
    /* Gmail's text with its codes: high certainty, all three used. */
    assert_int_equal(sk_known_reply_match_line("DATA-END",
                                               "550 5.7.26 This mail has been blocked because "
                                               "the sender is unauthenticated.",
                                               &m),
                     1);
    assert_string_equal(m.row->id, "gmail-unauthenticated");
    assert_int_equal(m.basis, SK_KNOWN_BY_TEXT);
    assert_string_equal(m.certainty, "high");
    assert_true(m.used_code && m.used_enhanced);
    /* The enhanced code alone: the generic RFC 7372 row, medium. */
    assert_int_equal(sk_known_reply_match_line(NULL, "550 5.7.26 Go away", &m), 1);
    assert_string_equal(m.row->id, "enh-multiple-auth");
    assert_int_equal(m.basis, SK_KNOWN_BY_ENHANCED);
    assert_string_equal(m.certainty, "medium");
    /* Nothing known: the basis says what is left. */
    assert_int_equal(sk_known_reply_match_line(NULL, "550 5.1.1 nope", &m), 0);
    assert_null(m.row);
    assert_int_equal(m.basis, SK_KNOWN_BY_ENHANCED);
    assert_string_equal(m.certainty, "medium");
    assert_int_equal(sk_known_reply_match_line(NULL, "550 nope", &m), 0);
    assert_int_equal(m.basis, SK_KNOWN_BY_CODE);
    assert_string_equal(m.certainty, "low");
    assert_int_equal(sk_known_reply_match_line(NULL, "hello", &m), 0);
    assert_int_equal(m.basis, SK_KNOWN_BY_NOTHING);
}

static void codes_constrain_text(void **state)
{
    (void)state;
    sk_known_match m;
    /* Same words, other class: Gmail's 5.7.26 row wants 550, its 4.7.26 rate
     * limit row wants 421. */
    assert_int_equal(sk_known_reply_match_line(NULL,
                                               "421 4.7.26 This email has been rate limited "
                                               "because it is unauthenticated.",
                                               &m),
                     1);
    assert_string_equal(m.row->id, "gmail-unauth-ratelimit");
    assert_int_equal(m.row->actor, SK_ACTOR_SENDER_ADMIN);
    /* A 4xx SPF text is a temporary DNS problem, a 5xx one a failure. */
    assert_int_equal(sk_known_reply_match_line(NULL, "451 4.4.3 SPF lookup timed out", &m), 1);
    assert_string_equal(m.row->id, "auth-spf-temp");
    assert_int_equal(m.row->actor, SK_ACTOR_NOBODY);
    assert_int_equal(sk_known_reply_match_line(NULL, "550 SPF fail", &m), 1);
    assert_string_equal(m.row->id, "auth-spf");
    /* Relay access denied is a RCPT reply: with another command it is not
     * Postfix's row. */
    assert_int_equal(sk_known_reply_match_line("RCPT", "554 5.7.1 <a@b>: Relay access denied", &m),
                     1);
    assert_string_equal(m.row->id, "postfix-relay-denied");
    assert_true(m.used_command);
    assert_int_equal(sk_known_reply_match_line("MAIL", "554 5.7.1 <a@b>: Relay access denied", &m),
                     0);
    /* Without a command the row still applies, without the command's weight. */
    assert_int_equal(sk_known_reply_match_line(NULL, "554 5.7.1 <a@b>: Relay access denied", &m),
                     1);
    assert_false(m.used_command);
    /* HELO counts as EHLO, BDAT as DATA-END. */
    assert_int_equal(sk_known_reply_match_line("HELO",
                                               "501 5.5.4 HELO/EHLO argument x invalid, closing "
                                               "connection.",
                                               &m),
                     1);
    assert_string_equal(m.row->id, "gmail-helo-invalid");
    /* An enhanced code whose class differs from the code is not one. */
    sk_enhanced e = {4, 7, 708};
    assert_int_equal(sk_known_reply_match(NULL, 550, &e, "x", &m), 0);
    assert_int_equal(m.basis, SK_KNOWN_BY_CODE);
}

static void detail_ranges(void **state)
{
    (void)state;
    sk_known_match m;
    sk_enhanced e = {5, 7, 605};
    assert_int_equal(sk_known_reply_match(NULL, 550, &e, NULL, &m), 0);
    e.detail = 606;
    assert_int_equal(sk_known_reply_match(NULL, 550, &e, NULL, &m), 1);
    assert_string_equal(m.row->id, "m365-banned-ip");
    e.detail = 649;
    assert_int_equal(sk_known_reply_match(NULL, 550, &e, NULL, &m), 1);
    e.detail = 650;
    assert_int_equal(sk_known_reply_match(NULL, 550, &e, NULL, &m), 0);
    /* The row wants 550: a 421 with 5.x.x is refused by the class check,
     * a 554 with 5.7.606 by the code. */
    e.detail = 606;
    assert_int_equal(sk_known_reply_match(NULL, 554, &e, NULL, &m), 0);
}

static void line_split(void **state)
{
    (void)state;
    int code, he;
    sk_enhanced e;
    char t[256];
    assert_int_equal(sk_reply_line_split("550-5.1.1 The email account  that you tried 550-5.1.1 "
                                         "double-checking 550 5.1.1 https://x - gsmtp",
                                         &code, &he, &e, t, sizeof t),
                     0);
    assert_int_equal(code, 550);
    assert_true(he);
    assert_int_equal(e.detail, 1);
    assert_string_equal(t, "The email account that you tried double-checking https://x - gsmtp");
    /* sk_reply_oneline()'s way of joining lines. */
    assert_int_equal(sk_reply_line_split("550 5.7.26 This mail has been blocked because the "
                                         "sender is / 550 5.7.26 unauthenticated. a/b",
                                         &code, &he, &e, t, sizeof t),
                     0);
    assert_string_equal(t, "This mail has been blocked because the sender is unauthenticated. a/b");
    /* No enhanced code; a class mismatch is text. */
    assert_int_equal(sk_reply_line_split("421 5.7.1 odd", &code, &he, &e, t, sizeof t), 0);
    assert_false(he);
    assert_string_equal(t, "5.7.1 odd");
    /* Not replies. */
    assert_int_equal(sk_reply_line_split("650 x", &code, &he, &e, t, sizeof t), -1);
    assert_int_equal(sk_reply_line_split("5500 x", &code, &he, &e, t, sizeof t), -1);
    assert_int_equal(sk_reply_line_split("55", &code, &he, &e, t, sizeof t), -1);
    /* A text ending right after a blank, or in the first digits of a code
     * (the repeated-prefix check must not read past the end; found by
     * fuzz_bounce_scan under ASan). */
    char *tail = strdup("550 5.1.1 aet 5");
    assert_int_equal(sk_reply_line_split(tail, &code, &he, &e, t, sizeof t), 0);
    assert_string_equal(t, "aet 5");
    free(tail);
    tail = strdup("550 x ");
    assert_int_equal(sk_reply_line_split(tail, &code, &he, &e, t, sizeof t), 0);
    assert_string_equal(t, "x");
    free(tail);
    /* Truncation keeps a NUL. */
    assert_int_equal(sk_reply_line_split("550 abcdefgh", &code, &he, &e, t, 4), 0);
    assert_string_equal(t, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_is_well_formed), cmocka_unit_test(table_covers_the_providers),
        cmocka_unit_test(corpus_matches),       cmocka_unit_test(text_outweighs_codes),
        cmocka_unit_test(codes_constrain_text), cmocka_unit_test(detail_ranges),
        cmocka_unit_test(line_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
