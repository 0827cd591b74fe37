/*
 * test_session.c - the SMTP session state machine against a fake shell:
 * every command in every state (exact code and enhanced code), pipelining,
 * arbitrary input splits, STARTTLS injection, DATA/BDAT, AUTH, limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fake_shell.h"
#include "smtpkit/registry.h"
#include "smtpkit/sasl.h"

/* Cross-check every reply against the reply registry (which commands may
 * return which code, RFC 5321 4.3.2 and the ESMTP RFCs). */
#ifndef CHECK_REGISTRY
#define CHECK_REGISTRY 1
#endif

static fake_reply *expect_at(fake *f, int code, const char *enh, int line)
{
    fake_reply *r = fake_pop(f);
    if (r->code != code || strcmp(r->enhanced, enh) != 0)
        fail_msg("line %d: expected %d %s, got %d %s \"%s\"", line, code, enh, r->code, r->enhanced,
                 r->text);
    return r;
}
#define EXPECT(f, code, enh) expect_at((f), (code), (enh), __LINE__)

static void expect_none_at(fake *f, int line)
{
    if (fake_pending(f)) {
        fake_reply *r = fake_pop(f);
        fail_msg("line %d: unexpected reply %d %s \"%s\"", line, r->code, r->enhanced, r->text);
    }
}
#define EXPECT_NONE(f) expect_none_at((f), __LINE__)

/* Assert the registry lets `cmd` answer `code` (no-op without it). */
static void registry_ok_at(int code, const char *cmd, int line)
{
#if CHECK_REGISTRY
    if (!sk_registry_allows(code, cmd))
        fail_msg("line %d: reply %d not allowed for %s by the registry", line, code, cmd);
#else
    (void)code;
    (void)cmd;
    (void)line;
#endif
}
#define REGISTRY_OK(code, cmd) registry_ok_at((code), (cmd), __LINE__)

static void start_greeted(fake *f)
{
    fake_start(f);
    sk_session_greet(f->s);
    fake_collect(f);
    EXPECT(f, 220, "");
}

static void drain(fake *f)
{
    f->next = f->nreplies;
}

/* ---- greeting, HELO, EHLO ----------------------------------------------- */

static void test_greeting(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    fake_start(&f);
    sk_session_greet(f.s);
    fake_collect(&f);
    fake_reply *r = EXPECT(&f, 220, "");
    assert_string_equal(r->text, "mx.example.com ESMTP smtpkit");
    fake_finish(&f);
}

static void test_helo_is_one_plain_line(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "HELO client.example\r\n");
    fake_reply *r = EXPECT(&f, 250, "");
    assert_int_equal(r->nlines, 1);
    assert_string_equal(r->text, "mx.example.com");
    /* RFC 2034 4: enhanced codes "regardless of whether or not EHLO is
     * employed by the client", so after HELO too */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<unknown@example.com>\r\n");
    r = EXPECT(&f, 250, "2.1.0");
    assert_string_equal(r->text, "Ok");
    EXPECT(&f, 550, "5.1.1");
    assert_string_equal(sk_session_get_info(f.s)->helo, "client.example");
    assert_int_equal(sk_session_get_info(f.s)->esmtp, 0);
    fake_finish(&f);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static void test_ehlo_keywords(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_message_size = 12345;
    f.cfg.auth_requires_tls = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO client.example\r\n");
    fake_reply *r = EXPECT(&f, 250, "");
    assert_int_equal(r->nlines, 9);
    assert_true(has_line(r->text, "mx.example.com"));
    assert_true(has_line(r->text, "PIPELINING"));
    assert_true(has_line(r->text, "SIZE 12345"));
    assert_true(has_line(r->text, "8BITMIME"));
    assert_true(has_line(r->text, "ENHANCEDSTATUSCODES"));
    assert_true(has_line(r->text, "SMTPUTF8"));
    assert_true(has_line(r->text, "CHUNKING"));
    assert_true(has_line(r->text, "HELP"));
    assert_true(has_line(r->text, "STARTTLS"));
    assert_false(has_line(r->text, "AUTH PLAIN LOGIN")); /* needs TLS first */
    /* AUTH refused without TLS: 538 (RFC 4954 6) */
    fake_send(&f, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 538, "5.7.11");
    REGISTRY_OK(538, "AUTH");
    fake_send(&f, "STARTTLS\r\n");
    EXPECT(&f, 220, "2.0.0");
    assert_int_equal(f.tls_started, 1);
    fake_send(&f, "EHLO client.example\r\n");
    r = EXPECT(&f, 250, "");
    assert_false(has_line(r->text, "STARTTLS"));
    assert_true(has_line(r->text, "AUTH PLAIN LOGIN"));
    fake_send(&f, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 235, "2.7.0");
    fake_finish(&f);
}

/* The shell's backend chooses the mechanisms (Dovecot offers its own):
 * EHLO lists only those, AUTH with another one is 504, none at all hides
 * AUTH. */
static unsigned mech_mask;
static unsigned fake_auth_mechanisms(void *ctx)
{
    (void)ctx;
    return mech_mask;
}

static void test_auth_mechanisms_from_the_shell(void **state)
{
    (void)state;
    static const struct {
        unsigned mask;
        const char *line; /* the AUTH keyword line, NULL: none */
        int plain, login; /* first reply to AUTH PLAIN / AUTH LOGIN */
    } cases[] = {
        {(1u << SK_SASL_PLAIN) | (1u << SK_SASL_LOGIN), "AUTH PLAIN LOGIN", 235, 334},
        {1u << SK_SASL_PLAIN, "AUTH PLAIN", 235, 504},
        {1u << SK_SASL_LOGIN, "AUTH LOGIN", 504, 334},
        {0, NULL, 504, 504},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        fake_defaults(&f);
        f.ops.auth_mechanisms = fake_auth_mechanisms;
        mech_mask = cases[i].mask;
        start_greeted(&f);
        fake_send(&f, "EHLO client.example\r\n");
        fake_reply *r = EXPECT(&f, 250, "");
        assert_int_equal(strstr(r->text, "AUTH") != NULL, cases[i].line != NULL);
        if (cases[i].line)
            assert_true(has_line(r->text, cases[i].line));
        fake_send(&f, "AUTH LOGIN\r\n");
        EXPECT(&f, cases[i].login, cases[i].login == 504 ? "5.5.4" : "");
        if (cases[i].login == 334)
            fake_send(&f, "*\r\n"), EXPECT(&f, 501, "5.7.0");
        fake_send(&f, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
        EXPECT(&f, cases[i].plain, cases[i].plain == 504 ? "5.5.4" : "2.7.0");
        fake_finish(&f);
    }
}

static void test_ehlo_without_starttls_or_auth(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.starttls_offered = 0;
    f.cfg.auth_offered = 0;
    start_greeted(&f);
    fake_send(&f, "EHLO client.example\r\n");
    fake_reply *r = EXPECT(&f, 250, "");
    assert_int_equal(r->nlines, 8);
    assert_false(has_line(r->text, "STARTTLS"));
    assert_false(has_line(r->text, "AUTH PLAIN LOGIN"));
    fake_send(&f, "STARTTLS\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 502, "5.5.1");
    EXPECT(&f, 502, "5.5.1");
    fake_finish(&f);
}

static void test_helo_ehlo_arguments(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    REGISTRY_OK(501, "EHLO");
    REGISTRY_OK(501, "HELO");
    fake_send(&f, "EHLO\r\nHELO\r\nEHLO   \r\nEHLO two words\r\n");
    EXPECT(&f, 501, "");
    EXPECT(&f, 501, "");
    EXPECT(&f, 501, "");
    EXPECT(&f, 501, "");
    /* names that are not domains are accepted (RFC 5321 4.1.4) */
    fake_send(&f, "EHLO my_pc\r\nEHLO [192.0.2.7]\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "");
    /* RFC 2034 3: no enhanced code on any response to HELO or EHLO, a
     * refusal after an earlier EHLO included */
    fake_send(&f, "EHLO\r\nHELO two words\r\nNOOP\r\n");
    EXPECT(&f, 501, "");
    EXPECT(&f, 501, "");
    EXPECT(&f, 250, "2.0.0");
    fake_finish(&f);
}

/* RFC 2034 4: "Servers supporting this extension must attach enhanced
 * status codes to their responses regardless of whether or not EHLO is
 * employed by the client." Byte for byte: NOOP, RSET, VRFY, HELP (every line
 * of the multi-line reply), EXPN and refusals before any HELO/EHLO; after
 * HELO the whole dialogue, QUIT included. Only the greeting, the reply to
 * HELO and the 3xx (354) are plain. */
static void test_enhanced_codes_without_ehlo(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "NOOP\r\nRSET\r\nVRFY alice\r\nHELP\r\nHELP data\r\nEXPN staff\r\nFROB\r\n"
                  "MAIL FROM:<a@example.org>\r\n");
    fake_send(&f, "HELO client.example\r\n");
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                  "RCPT TO:<unknown@example.com>\r\nDATA\r\n");
    fake_send(&f, "hello\r\n.\r\n");
    fake_send(&f, "NOOP\r\nRSET\r\nVRFY b@example.com\r\nQUIT\r\n");
    const char *want =
        "220 mx.example.com ESMTP smtpkit\r\n"
        "250 2.0.0 Ok\r\n"
        "250 2.0.0 Ok\r\n"
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        "214-2.0.0 smtpkit commands:\r\n"
        "214-2.0.0   HELO EHLO MAIL RCPT DATA BDAT RSET\r\n"
        "214-2.0.0   VRFY EXPN HELP NOOP QUIT STARTTLS AUTH\r\n"
        "214-2.0.0 HELP <command> shows its syntax. See RFC 5321.\r\n"
        "214 2.0.0 End of HELP info\r\n"
        "214 2.0.0 Syntax: DATA\r\n"
        "502 5.5.1 Error: EXPN is not implemented here\r\n"
        "500 5.5.2 Syntax error, command unrecognized\r\n"
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
        "250 mx.example.com\r\n"
        "250 2.1.0 Ok\r\n"
        "250 2.1.5 Ok\r\n"
        "550 5.1.1 <unknown@example.com>: Recipient address rejected: User unknown\r\n"
        "354 End data with <CR><LF>.<CR><LF>\r\n"
        "250 2.0.0 Ok: queued as ID0001\r\n"
        "250 2.0.0 Ok\r\n"
        "250 2.0.0 Ok\r\n"
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        "221 2.0.0 mx.example.com closing connection\r\n";
    assert_string_equal(f.wire.data, want);
    assert_int_equal(sk_session_get_info(f.s)->esmtp, 0);
    assert_int_equal(f.commits, 1);
    fake_finish(&f);
}

/* The 421 that closes a session is no reply to HELO/EHLO, even right after
 * a refused HELO, and carries its code whether or not EHLO was used. */
static void test_closing_421_carries_code_without_ehlo(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_errors = 2;
    start_greeted(&f);
    fake_send(&f, "FROB\r\nHELO\r\nNOOP\r\n");
    EXPECT(&f, 500, "5.5.2");
    EXPECT(&f, 501, ""); /* a response to HELO: none (RFC 2034 3) */
    fake_reply *r = EXPECT(&f, 421, "4.7.0");
    assert_string_equal(r->text, "mx.example.com Error: too many errors");
    EXPECT_NONE(&f);
    fake_finish(&f);

    /* after HELO: the idle timeout and the shutdown */
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "HELO client.example\r\n");
    EXPECT(&f, 250, "");
    sk_session_shutdown(f.s);
    fake_collect(&f);
    EXPECT(&f, 421, "4.3.2");
    fake_finish(&f);
}

/* RFC 5321 2.3.8: only CRLF ends a command line. A bare LF inside it does
 * not: "NOOP<LF>NOOP<CRLF>" is one bad line with one reply, and what
 * follows the LF never runs as a command, however the input is split. */
static void test_command_bare_lf_does_not_end_line(void **state)
{
    (void)state;
    static const char *const inputs[][3] = {
        {"NOOP\nNOOP\r\n", NULL, NULL},
        {"NOOP\n", "QUIT\r\n", NULL},
        {"NOOP\r", "\n", NULL}, /* a CRLF split over two feeds is a line end */
        {"RSET\nMAIL FROM:<a@example.org>\n", "QUIT", "\r\n"},
        {"\nQUIT\r\n", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        fake f;
        fake_defaults(&f);
        start_greeted(&f);
        fake_send(&f, "EHLO client.example\r\n");
        drain(&f);
        for (int k = 0; k < 3 && inputs[i][k]; k++)
            fake_send(&f, inputs[i][k]);
        if (i == 2) {
            EXPECT(&f, 250, "2.0.0");
        } else {
            fake_reply *r = EXPECT(&f, 500, "5.5.2");
            assert_non_null(strstr(r->text, "bare <LF>"));
        }
        EXPECT_NONE(&f);
        /* the session goes on: nothing was run, nothing closed */
        fake_send(&f, "MAIL FROM:<a@example.org>\r\n");
        EXPECT(&f, 250, "2.1.0");
        fake_finish(&f);
    }
}

static void test_ehlo_resets_transaction(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                  "EHLO c.example\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 250, "");
    EXPECT(&f, 503, "5.5.1");
    EXPECT(&f, 503, "5.5.1");
    assert_int_equal(f.dest_frees, f.dests_made);
    fake_finish(&f);
}

/* ---- every command in every state --------------------------------------- */

enum {
    ST_FRESH,
    ST_HELO,
    ST_EHLO,
    ST_MAIL,
    ST_RCPT,
    ST_REFUSED,
    ST_AUTHX,
    ST_TLS,
    ST_TLS_NO_EHLO,
    ST_AUTHED,
    ST_COUNT
};
static const char *const state_names[ST_COUNT] = {"fresh",
                                                  "after HELO",
                                                  "after EHLO",
                                                  "in MAIL",
                                                  "after RCPT",
                                                  "all RCPT refused",
                                                  "in AUTH exchange",
                                                  "TLS + EHLO",
                                                  "TLS, no EHLO yet",
                                                  "authenticated"};

static void enter_state(fake *f, int st)
{
    switch (st) {
    case ST_FRESH:
        break;
    case ST_HELO:
        fake_send(f, "HELO client.example\r\n");
        EXPECT(f, 250, "");
        break;
    case ST_EHLO:
    case ST_MAIL:
    case ST_RCPT:
    case ST_REFUSED:
    case ST_AUTHX:
    case ST_TLS:
    case ST_TLS_NO_EHLO:
    case ST_AUTHED:
        fake_send(f, "EHLO client.example\r\n");
        EXPECT(f, 250, "");
        break;
    }
    if (st == ST_MAIL || st == ST_RCPT || st == ST_REFUSED) {
        fake_send(f, "MAIL FROM:<a@example.org>\r\n");
        EXPECT(f, 250, "2.1.0");
    }
    if (st == ST_RCPT) {
        fake_send(f, "RCPT TO:<b@example.com>\r\n");
        EXPECT(f, 250, "2.1.5");
    }
    if (st == ST_REFUSED) {
        fake_send(f, "RCPT TO:<unknown@example.com>\r\n");
        EXPECT(f, 550, "5.1.1");
    }
    if (st == ST_AUTHX) {
        fake_send(f, "AUTH PLAIN\r\n");
        EXPECT(f, 334, "");
    }
    if (st == ST_TLS || st == ST_TLS_NO_EHLO) {
        fake_send(f, "STARTTLS\r\n");
        EXPECT(f, 220, "2.0.0");
        assert_int_equal(f->tls_started, 1);
    }
    if (st == ST_TLS) {
        fake_send(f, "EHLO client.example\r\n");
        EXPECT(f, 250, "");
    }
    if (st == ST_AUTHED) {
        fake_send(f, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
        EXPECT(f, 235, "2.7.0");
    }
    EXPECT_NONE(f);
}

typedef struct expect_cell {
    int code;
    const char *enh;
} expect_cell;

typedef struct verb_case {
    const char *input;
    const char *registry_cmd; /* NULL: not a command the registry knows */
    expect_cell exp[ST_COUNT];
} verb_case;

/* Every 2xx/4xx/5xx reply carries its enhanced code in every state, before
 * any HELO/EHLO, after HELO and after STARTTLS included (RFC 2034 4:
 * "regardless of whether or not EHLO is employed by the client"); only the
 * replies to HELO/EHLO (RFC 2034 3) and 3xx replies carry none.
 * Shorthands: E = with enhanced code, P = plain (none). */
#define P(c)                                                                                       \
    {                                                                                              \
        c, ""                                                                                      \
    }
#define E(c, e)                                                                                    \
    {                                                                                              \
        c, e                                                                                       \
    }
#define AX E(501, "5.5.2") /* any line in a PLAIN exchange that is not a valid response */

static const verb_case verb_cases[] = {
    {"HELO client.example\r\n",
     "HELO",
     {P(250), P(250), P(250), P(250), P(250), P(250), AX, P(250), P(250), P(250)}},
    {"EHLO client.example\r\n",
     "EHLO",
     {P(250), P(250), P(250), P(250), P(250), P(250), AX, P(250), P(250), P(250)}},
    {"MAIL FROM:<x@example.org>\r\n",
     "MAIL",
     {E(503, "5.5.1"), E(250, "2.1.0"), E(250, "2.1.0"), E(503, "5.5.1"), E(503, "5.5.1"),
      E(503, "5.5.1"), AX, E(250, "2.1.0"), E(503, "5.5.1"), E(250, "2.1.0")}},
    {"mail from:<x@example.org>\r\n",
     "MAIL",
     {E(503, "5.5.1"), E(250, "2.1.0"), E(250, "2.1.0"), E(503, "5.5.1"), E(503, "5.5.1"),
      E(503, "5.5.1"), AX, E(250, "2.1.0"), E(503, "5.5.1"), E(250, "2.1.0")}},
    {"RCPT TO:<y@example.com>\r\n",
     "RCPT",
     {E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1"), E(250, "2.1.5"), E(250, "2.1.5"),
      E(250, "2.1.5"), AX, E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1")}},
    {"DATA\r\n",
     "DATA",
     {E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1"), P(354), E(554, "5.5.1"),
      AX, E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1")}},
    {"BDAT 3\r\nabc",
     "BDAT",
     {E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1"), E(250, "2.0.0"),
      E(554, "5.5.1"), AX, E(503, "5.5.1"), E(503, "5.5.1"), E(503, "5.5.1")}},
    {"RSET\r\n",
     "RSET",
     {E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0"),
      E(250, "2.0.0"), AX, E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0")}},
    {"VRFY x@example.com\r\n",
     "VRFY",
     {E(252, "2.5.0"), E(252, "2.5.0"), E(252, "2.5.0"), E(252, "2.5.0"), E(252, "2.5.0"),
      E(252, "2.5.0"), AX, E(252, "2.5.0"), E(252, "2.5.0"), E(252, "2.5.0")}},
    {"EXPN list\r\n",
     "EXPN",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"HELP\r\n",
     "HELP",
     {E(214, "2.0.0"), E(214, "2.0.0"), E(214, "2.0.0"), E(214, "2.0.0"), E(214, "2.0.0"),
      E(214, "2.0.0"), AX, E(214, "2.0.0"), E(214, "2.0.0"), E(214, "2.0.0")}},
    {"NOOP\r\n",
     "NOOP",
     {E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0"),
      E(250, "2.0.0"), AX, E(250, "2.0.0"), E(250, "2.0.0"), E(250, "2.0.0")}},
    {"QUIT\r\n",
     "QUIT",
     {E(221, "2.0.0"), E(221, "2.0.0"), E(221, "2.0.0"), E(221, "2.0.0"), E(221, "2.0.0"),
      E(221, "2.0.0"), AX, E(221, "2.0.0"), E(221, "2.0.0"), E(221, "2.0.0")}},
    {"STARTTLS\r\n",
     "STARTTLS",
     {E(503, "5.5.1"), E(220, "2.0.0"), E(220, "2.0.0"), E(503, "5.5.1"), E(503, "5.5.1"),
      E(503, "5.5.1"), AX, E(503, "5.5.1"), E(503, "5.5.1"), E(220, "2.0.0")}},
    {"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n",
     "AUTH",
     {E(503, "5.5.1"), E(503, "5.5.1"), E(235, "2.7.0"), E(503, "5.5.1"), E(503, "5.5.1"),
      E(503, "5.5.1"), AX, E(235, "2.7.0"), E(503, "5.5.1"), E(503, "5.5.1")}},
    {"SEND FROM:<x@example.org>\r\n",
     "SEND",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"SOML FROM:<x@example.org>\r\n",
     "SOML",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"SAML FROM:<x@example.org>\r\n",
     "SAML",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"TURN\r\n",
     "TURN",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"ETRN example.com\r\n",
     "ETRN",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"ATRN\r\n",
     "ATRN",
     {E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1"),
      E(502, "5.5.1"), AX, E(502, "5.5.1"), E(502, "5.5.1"), E(502, "5.5.1")}},
    {"XYZZY\r\n",
     NULL,
     {E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2"),
      E(500, "5.5.2"), AX, E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2")}},
    {"\r\n",
     NULL,
     {E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2"),
      E(500, "5.5.2"), AX, E(500, "5.5.2"), E(500, "5.5.2"), E(500, "5.5.2")}},
};

static void test_every_command_in_every_state(void **state)
{
    (void)state;
    int cells = 0, registry_misses = 0;
    for (size_t v = 0; v < sizeof verb_cases / sizeof verb_cases[0]; v++) {
        const verb_case *vc = &verb_cases[v];
        for (int st = 0; st < ST_COUNT; st++) {
            fake f;
            fake_defaults(&f);
            start_greeted(&f);
            enter_state(&f, st);
            fake_send(&f, vc->input);
            fake_reply *r = fake_pop(&f);
            const expect_cell *e = &vc->exp[st];
            int vlen = (int)strcspn(vc->input, "\r\n");
            if (r->code != e->code || strcmp(r->enhanced, e->enh) != 0)
                fail_msg("%.*s in state '%s': expected %d %s, got %d %s \"%s\"", vlen, vc->input,
                         state_names[st], e->code, e->enh, r->code, r->enhanced, r->text);
            /* exactly one reply per command (RFC 5321 4.2) */
            if (fake_pending(&f))
                fail_msg("%.*s in state '%s': %d extra replies", vlen, vc->input, state_names[st],
                         fake_pending(&f));
#if CHECK_REGISTRY
            const char *cmd = st == ST_AUTHX ? "AUTH" : vc->registry_cmd;
            if (cmd && !sk_registry_allows(r->code, cmd)) {
                print_message("%.*s in state '%s': reply %d not allowed for %s by the registry\n",
                              vlen, vc->input, state_names[st], r->code, cmd);
                registry_misses++;
            }
#else
            (void)vc->registry_cmd;
#endif
            cells++;
            fake_finish(&f);
        }
    }
    assert_int_equal(cells, (int)(sizeof verb_cases / sizeof verb_cases[0]) * ST_COUNT);
    assert_int_equal(registry_misses, 0);
}

/* ---- a whole message ---------------------------------------------------- */

static void test_transaction_and_trace_headers(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO client.example\r\n");
    EXPECT(&f, 250, "");
    fake_send(&f, "MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME\r\n");
    EXPECT(&f, 250, "2.1.0");
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    EXPECT(&f, 250, "2.1.5");
    fake_send(&f, "DATA\r\n");
    fake_reply *r = EXPECT(&f, 354, "");
    assert_string_equal(r->text, "End data with <CR><LF>.<CR><LF>");
    assert_true(sk_session_wants(f.s) & SK_IN_DATA);
    fake_send(&f, "Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n");
    r = EXPECT(&f, 250, "2.0.0");
    assert_string_equal(r->text, "Ok: queued as ID0001");
    assert_false(sk_session_wants(f.s) & SK_IN_DATA);
    assert_int_equal(f.commits, 1);
    assert_int_equal(f.aborts, 0);
    const char *m = f.committed.data;
    assert_non_null(m);
    assert_true(strncmp(m,
                        "Return-Path: <a@example.org>\r\nReceived: from client.example "
                        "(client.example.org [192.0.2.7])\r\n\tby mx.example.com (smtpkit) "
                        "with ESMTP id ID0001\r\n\tfor <b@example.com>;\r\n\t",
                        strlen("Return-Path: <a@example.org>\r\nReceived: from client.example "
                               "(client.example.org [192.0.2.7])\r\n\tby mx.example.com "
                               "(smtpkit) with ESMTP id ID0001\r\n\tfor <b@example.com>;\r\n\t")) ==
                0);
    const char *body = strstr(m, "Subject: hi\r\n");
    assert_non_null(body);
    assert_string_equal(body, "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n");
    /* the transaction is over: RCPT needs a new MAIL */
    fake_send(&f, "RCPT TO:<b@example.com>\r\n");
    EXPECT(&f, 503, "5.5.1");
    assert_non_null(strstr(f.log.data, "event=message id=ID0001 from=<a@example.org> nrcpts=1 "
                                       "rcpts=<b@example.com> size="));
    assert_non_null(strstr(f.log.data, "result=250\n"));
    assert_int_equal(f.dest_frees, f.dests_made);
    fake_finish(&f);
}

static void test_empty_message_and_null_sender(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    /* the CRLF of DATA is the first CRLF of the end marker (RFC 5321 4.1.1.4) */
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@ex"
                  "ample.com>\r\nDATA\r\n.\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    EXPECT(&f, 250, "2.0.0");
    const char *m = f.committed.data;
    assert_true(strncmp(m, "Return-Path: <>\r\n", 17) == 0);
    assert_null(strstr(m, "\tfor ")); /* two recipients: none named */
    /* the message is exactly the two trace headers */
    const char *end = strstr(m, "\r\n\t");
    assert_non_null(end);
    size_t len = strlen(m);
    assert_true(len > 4 && strcmp(m + len - 2, "\r\n") == 0);
    assert_int_equal(f.commits, 1);
    fake_finish(&f);
}

static const char pipeline_script[] = "EHLO client.example\r\n"
                                      "MAIL FROM:<a@example.org>\r\n"
                                      "RCPT TO:<b@example.com>\r\n"
                                      "RCPT TO:<unknown@example.com>\r\n"
                                      "RCPT TO:<c@example.com>\r\n"
                                      "DATA\r\n"
                                      "Subject: one\r\n\r\nhello\r\n..dot\r\n.\r\n"
                                      "MAIL FROM:<a2@example.org>\r\n"
                                      "RCPT TO:<d@example.com>\r\n"
                                      "DATA\r\n"
                                      "Subject: two\r\n\r\nsecond\r\n.\r\n"
                                      "BOGUS\r\n"
                                      "MAIL FROM:<a3@example.org>\r\n"
                                      "RCPT TO:<e@example.com>\r\n"
                                      "BDAT 16\r\n"
                                      "Subject: three\r\n"
                                      "BDAT 9 LAST\r\n"
                                      "\r\nthird\r\n"
                                      "QUIT\r\n";

static void test_pipelining_one_feed(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    size_t used = fake_send(&f, pipeline_script);
    assert_int_equal(used, strlen(pipeline_script));
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 550, "5.1.1");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 500, "5.5.2");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 250, "2.0.0");
    fake_reply *r = EXPECT(&f, 250, "2.0.0");
    assert_string_equal(r->text, "Ok: queued as ID0003");
    EXPECT(&f, 221, "2.0.0");
    EXPECT_NONE(&f);
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    assert_int_equal(f.commits, 3);
    assert_string_equal(strstr(f.committed.data, "Subject: three"),
                        "Subject: three\r\n\r\nthird\r\n");
    assert_non_null(strstr(f.log.data, "event=pipelining_violation cmd=EHLO"));
    fake_finish(&f);
}

/* Run the pipeline script fed in pieces given by next_len; return the
 * replies as one string and the last committed body. */
static void run_split(size_t (*next_len)(size_t pos, void *arg), void *arg, sk_buf *replies,
                      sk_buf *bodies)
{
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    size_t n = strlen(pipeline_script), pos = 0;
    while (pos < n) {
        size_t k = next_len(pos, arg);
        if (k > n - pos)
            k = n - pos;
        assert_int_equal(fake_feed(&f, pipeline_script + pos, k), k);
        pos += k;
    }
    for (int i = 0; i < f.nreplies; i++)
        sk_buf_printf(replies, "%d %s %s|", f.replies[i].code, f.replies[i].enhanced,
                      f.replies[i].text);
    sk_buf_append(bodies, f.bodies.data ? f.bodies.data : "", f.bodies.len);
    fake_finish(&f);
}

static size_t len_all(size_t pos, void *arg)
{
    (void)pos;
    (void)arg;
    return SIZE_MAX;
}

static size_t len_one(size_t pos, void *arg)
{
    (void)pos;
    (void)arg;
    return 1;
}

static size_t len_random(size_t pos, void *arg)
{
    uint32_t *seed = arg;
    (void)pos;
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 23;
}

static void test_any_split_same_replies(void **state)
{
    (void)state;
    sk_buf whole, whole_bodies;
    sk_buf_init(&whole, 0);
    sk_buf_init(&whole_bodies, 0);
    run_split(len_all, NULL, &whole, &whole_bodies);
    assert_non_null(strstr(whole.data, "221 2.0.0"));
    assert_non_null(strstr(whole_bodies.data, "Subject: one\r\n\r\nhello\r\n.dot\r\n"));

    sk_buf one, one_bodies;
    sk_buf_init(&one, 0);
    sk_buf_init(&one_bodies, 0);
    run_split(len_one, NULL, &one, &one_bodies);
    assert_string_equal(whole.data, one.data);
    assert_string_equal(whole_bodies.data, one_bodies.data);

    for (uint32_t seed = 1; seed <= 50; seed++) {
        sk_buf r, b;
        sk_buf_init(&r, 0);
        sk_buf_init(&b, 0);
        uint32_t st = seed;
        run_split(len_random, &st, &r, &b);
        assert_string_equal(whole.data, r.data);
        sk_buf_free(&r);
        sk_buf_free(&b);
    }
    sk_buf_free(&whole);
    sk_buf_free(&whole_bodies);
    sk_buf_free(&one);
    sk_buf_free(&one_bodies);
}

static void test_commit_is_asynchronous(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.manual_commit = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    drain(&f);
    const char *rest = "DATA\r\nhello\r\n.\r\nNOOP\r\n";
    size_t used = sk_session_feed(f.s, rest, strlen(rest));
    assert_int_equal(used, strlen("DATA\r\nhello\r\n.\r\n"));
    assert_true(sk_session_wants(f.s) & SK_WANT_COMMIT);
    fake_collect(&f);
    EXPECT(&f, 354, "");
    EXPECT_NONE(&f); /* no 250 before the message is durable */
    assert_int_equal(sk_session_feed(f.s, rest + used, strlen(rest + used)), 0);
    sk_session_commit_done(f.s, SK_STORE_OK);
    fake_collect(&f);
    EXPECT(&f, 250, "2.0.0");
    assert_false(sk_session_wants(f.s) & SK_WANT_COMMIT);
    fake_send(&f, rest + used);
    EXPECT(&f, 250, "2.0.0");
    fake_finish(&f);
}

static void test_commit_failures(void **state)
{
    (void)state;
    static const struct {
        sk_store_result r;
        int code;
        const char *enh;
    } cases[] = {{SK_STORE_NOSPACE, 452, "4.3.1"}, {SK_STORE_IOERR, 451, "4.3.0"}};
    for (size_t i = 0; i < 2; i++) {
        fake f;
        fake_defaults(&f);
        f.commit_result = cases[i].r;
        start_greeted(&f);
        fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>"
                      "\r\nDATA\r\nx\r\n.\r\nRCPT TO:<b@example.com>\r\n");
        drain(&f);
        f.next = f.nreplies - 2;
        EXPECT(&f, cases[i].code, cases[i].enh);
        REGISTRY_OK(cases[i].code, "DATA-END");
        EXPECT(&f, 503, "5.5.1"); /* transaction reset */
        fake_finish(&f);
    }
}

/* A destination that answers (LMTP) gives the reply to the end of data:
 * its code, enhanced code and text when they are of the result's class,
 * one line, control bytes masked; else the store's own reply. */
static void test_commit_outcome_from_destination(void **state)
{
    (void)state;
    static const struct {
        sk_store_result r;
        int code;
        const char *enh, *text;
        int want;
        const char *want_enh, *want_text;
    } cases[] = {
        {SK_STORE_DEFERRED, 452, "4.2.2",
         "<b@example.com> Quota\x01"
         "exceeded",
         452, "4.2.2", "<b@example.com> Quota?exceeded"},
        {SK_STORE_REFUSED, 550, "5.1.1", "<b@example.com> User doesn't exist\r\n250 ok", 550,
         "5.1.1", "<b@example.com> User doesn't exist  250 ok"},
        {SK_STORE_DEFERRED, 0, "", "", 451, "4.3.0", "Error: local error in processing"},
        {SK_STORE_DEFERRED, 550, "5.1.1", "wrong class", 451, "4.3.0",
         "Error: local error in processing"},
        {SK_STORE_DEFERRED, 451, "5.1.1", "enhanced of another class", 451, "4.3.0",
         "Error: local error in processing"},
        {SK_STORE_DEFERRED, 491, "4.3.0", "second digit over 5", 451, "4.3.0",
         "Error: local error in processing"},
        {SK_STORE_REFUSED, 0, "", "", 554, "5.0.0", "Error: transaction failed"},
        /* not a reply to the data (RFC 5321 4.3.2): the class's own code */
        {SK_STORE_REFUSED, 553, "5.1.3", "bad address syntax", 554, "5.1.3", "bad address syntax"},
        {SK_STORE_OK, 550, "5.1.1", "ignored on success", 250, "2.0.0", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        fake_defaults(&f);
        f.manual_commit = 1;
        start_greeted(&f);
        fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                      "DATA\r\nhello\r\n.\r\n");
        drain(&f);
        assert_true(sk_session_wants(f.s) & SK_WANT_COMMIT);
        sk_store_outcome out = {.result = cases[i].r, .code = cases[i].code};
        snprintf(out.enhanced, sizeof out.enhanced, "%s", cases[i].enh);
        snprintf(out.text, sizeof out.text, "%s", cases[i].text);
        sk_session_commit_outcome(f.s, &out);
        fake_collect(&f);
        fake_reply *r = fake_pop(&f);
        assert_non_null(r);
        assert_int_equal(r->code, cases[i].want);
        assert_string_equal(r->enhanced, cases[i].want_enh);
        assert_int_equal(r->nlines, 1);
        if (cases[i].want_text)
            assert_string_equal(r->text, cases[i].want_text);
        REGISTRY_OK(cases[i].want, "DATA-END");
        assert_false(sk_session_wants(f.s) & SK_WANT_COMMIT);
        fake_send(&f, "RCPT TO:<b@example.com>\r\n");
        EXPECT(&f, 503, "5.5.1"); /* the transaction is over either way */
        fake_finish(&f);
    }
}

/* ---- DATA problems ------------------------------------------------------ */

static void begin_data(fake *f)
{
    start_greeted(f);
    fake_send(f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                 "DATA\r\n");
    drain(f);
}

static void test_data_store_begin_fails(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.begin_result = SK_STORE_NOSPACE;
    begin_data(&f);
    f.next = f.nreplies - 1;
    fake_reply *r = EXPECT(&f, 451, "4.3.1");
    assert_string_equal(r->text, "Error: insufficient system storage");
    REGISTRY_OK(451, "DATA");
    assert_false(sk_session_wants(f.s) & SK_IN_DATA);
    fake_send(&f, "NOOP\r\n");
    EXPECT(&f, 250, "2.0.0");
    fake_finish(&f);

    fake_defaults(&f);
    f.begin_result = SK_STORE_IOERR;
    begin_data(&f);
    f.next = f.nreplies - 1;
    EXPECT(&f, 451, "4.3.0");
    REGISTRY_OK(451, "DATA");
    fake_finish(&f);
}

static void test_data_append_fails_midway(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.append_fail_after = 1000;
    begin_data(&f);
    char line[100];
    memset(line, 'x', 98);
    line[98] = '\r';
    line[99] = '\n';
    for (int i = 0; i < 50; i++)
        fake_feed(&f, line, sizeof line);
    EXPECT_NONE(&f); /* still reading to the end */
    fake_send(&f, ".\r\nNOOP\r\n");
    EXPECT(&f, 452, "4.3.1");
    REGISTRY_OK(452, "DATA-END");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.aborts, 1);
    fake_finish(&f);
}

static void test_data_too_big_while_streaming(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_message_size = 5000;
    begin_data(&f);
    char line[100];
    memset(line, 'y', 98);
    line[98] = '\r';
    line[99] = '\n';
    for (int i = 0; i < 200; i++)
        fake_feed(&f, line, sizeof line);
    EXPECT_NONE(&f);
    assert_true(f.msg.len <= 5000 + 1024); /* never stored past the limit (+ headers) */
    fake_send(&f, ".\r\nNOOP\r\n");
    fake_reply *r = EXPECT(&f, 552, "5.3.4");
    REGISTRY_OK(552, "DATA-END");
    assert_non_null(strstr(r->text, "5000"));
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.aborts, 1);
    fake_finish(&f);
}

static void test_data_streams_in_chunks(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_data(&f);
    sk_buf big;
    sk_buf_init(&big, 0);
    for (int i = 0; i < 2000; i++)
        sk_buf_printf(&big, "line %04d of a long message, padded to a fair length.....\r\n", i);
    sk_buf_append_str(&big, ".\r\n");
    fake_feed(&f, big.data, big.len);
    EXPECT(&f, 250, "2.0.0");
    assert_true(f.max_append <= 4096); /* streamed, never the whole message at once */
    assert_true(f.appends > 20);
    assert_int_equal(strlen(strstr(f.committed.data, "line 0000")), big.len - 3);
    sk_buf_free(&big);
    fake_finish(&f);
}

/* ---- loops: Received fields (RFC 5321 6.3) ------------------------------ */

/* A message with `hops` Received fields (mixed case, one folded, one with
 * white space before the colon) in its header section, and a body that
 * holds as many more Received lines as `body_lines`. */
static void loop_message(sk_buf *m, unsigned hops, unsigned body_lines)
{
    for (unsigned i = 0; i < hops; i++) {
        if (i % 3 == 0)
            sk_buf_printf(m,
                          "Received: from h%u.example by h%u.example;\r\n\tTue, 1 Dec 2026 "
                          "10:00:00 +0000\r\n",
                          i, i + 1);
        else if (i % 3 == 1)
            sk_buf_printf(m, "RECEIVED: from h%u.example; Tue, 1 Dec 2026 10:00:00 +0000\r\n", i);
        else
            sk_buf_printf(m, "received : from h%u.example; Tue, 1 Dec 2026 10:00:00 +0000\r\n", i);
    }
    sk_buf_append_str(m, "Received-SPF: pass\r\nX-Received: by x.example\r\n");
    sk_buf_append_str(m, "Subject: loop\r\n\r\n");
    for (unsigned i = 0; i < body_lines; i++)
        sk_buf_append_str(m, "Received: from body.example (not a header)\r\n");
    sk_buf_append_str(m, ".\r\n");
}

static void test_data_loop_refused(void **state)
{
    (void)state;
    for (int split = 0; split < 2; split++) {
        fake f;
        fake_defaults(&f);
        f.cfg.max_received_headers = 50;
        begin_data(&f);
        sk_buf m;
        sk_buf_init(&m, 0);
        loop_message(&m, 51, 0);
        if (split) /* byte by byte: the count survives any split */
            for (size_t i = 0; i < m.len; i++)
                fake_feed(&f, m.data + i, 1);
        else
            fake_feed(&f, m.data, m.len);
        fake_reply *r = EXPECT(&f, 554, "5.4.6");
        REGISTRY_OK(554, "DATA-END");
        assert_non_null(strstr(r->text, "Routing loop detected"));
        assert_non_null(strstr(r->text, "50 Received"));
        assert_int_equal(f.commits, 0);
        assert_int_equal(f.aborts, 1);
        fake_send(&f, "NOOP\r\n");
        EXPECT(&f, 250, "2.0.0");
        assert_non_null(strstr(f.log.data, "result=554"));
        sk_buf_free(&m);
        fake_finish(&f);
    }
}

static void test_data_loop_limit_and_body(void **state)
{
    (void)state;
    /* exactly the limit is accepted; Received lines in the body, and
     * Received-SPF / X-Received fields, never count */
    fake f;
    fake_defaults(&f);
    f.cfg.max_received_headers = 50;
    begin_data(&f);
    sk_buf m;
    sk_buf_init(&m, 0);
    loop_message(&m, 50, 100);
    fake_feed(&f, m.data, m.len);
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 1);
    sk_buf_free(&m);
    fake_finish(&f);

    /* 0: no limit */
    fake_defaults(&f);
    begin_data(&f);
    sk_buf_init(&m, 0);
    loop_message(&m, 200, 0);
    fake_feed(&f, m.data, m.len);
    EXPECT(&f, 250, "2.0.0");
    sk_buf_free(&m);
    fake_finish(&f);
}

static void test_data_loop_stops_storing(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_received_headers = 3;
    begin_data(&f);
    sk_buf m;
    sk_buf_init(&m, 0);
    loop_message(&m, 4, 0);
    m.len -= 3; /* no end of data yet */
    for (int i = 0; i < 500; i++)
        sk_buf_append_str(&m, "a long body line that is never stored...................\r\n");
    sk_buf_append_str(&m, ".\r\n");
    fake_feed(&f, m.data, m.len);
    EXPECT(&f, 554, "5.4.6");
    assert_true(f.msg.len < 4096); /* the rest was read and dropped */
    sk_buf_free(&m);
    fake_finish(&f);
}

static void test_data_bare_lf_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *body, *problem;
    } cases[] = {
        {"a\nb\r\n.\r\n", "bare <LF>"},      {"a\rb\r\n.\r\n", "bare <CR>"},
        {"a\r\n.\n.\r\n.\r\n", "bare <LF>"}, /* CRLF . LF: not an end */
        {"a\n.\r\n.\r\n", "bare <LF>"},      /* LF . CRLF: not an end */
        {"a\r\n.\r.\r\n.\r\n", "bare <CR>"}, /* CRLF . CR: not an end */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        fake_defaults(&f);
        begin_data(&f);
        fake_send(&f, cases[i].body);
        fake_reply *r = EXPECT(&f, 550, "5.6.0");
        REGISTRY_OK(550, "DATA-END");
        assert_non_null(strstr(r->text, "RFC 5321 2.3.8"));
        assert_non_null(strstr(r->text, cases[i].problem));
        EXPECT_NONE(&f);
        assert_int_equal(f.commits, 0);
        assert_int_equal(f.aborts, 1);
        fake_send(&f, "NOOP\r\n");
        EXPECT(&f, 250, "2.0.0");
        fake_finish(&f);
    }
}

static void test_data_bare_lf_normalised(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.bare_policy = SK_BARE_NORMALISE;
    begin_data(&f);
    /* a bare CR or LF is stored as CRLF and starts a line, so the dot of a
     * stuffed line after it is padding, as after CRLF (RFC 5321 4.5.2) */
    fake_send(&f, "Subject: x\r\n\r\na\nb\rc\r\n..d\n..e\r..\nf.\r\n");
    EXPECT_NONE(&f);
    fake_send(&f, ".\r\n");
    EXPECT(&f, 250, "2.0.0");
    assert_string_equal(strstr(f.committed.data, "Subject: x"),
                        "Subject: x\r\n\r\na\r\nb\r\nc\r\n.d\r\n.e\r\n.\r\nf.\r\n");
    /* A line holding only "." next to a bare line end is neither an end
     * nor stored: it used to be stored as a "." line, which the next MTA
     * may read as the end of data. */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
                  "Subject: y\r\n\r\na.\n.\nb\r\n.\r\n");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    fake_reply *r = EXPECT(&f, 550, "5.6.0");
    assert_non_null(strstr(r->text, "a line holding only \".\""));
    assert_int_equal(f.commits, 1);
    fake_finish(&f);
}

/* SMTP smuggling: a fake end of data followed by a second transaction. */
static void test_data_smuggling_not_an_end(void **state)
{
    (void)state;
    static const char *const fake_ends[] = {"\n.\n",   "\n.\r\n",   "\r\n.\n", "\r.\r",
                                            "\r\n.\r", "\n.\r\r\n", "\r.\r\n"};
    for (size_t i = 0; i < sizeof fake_ends / sizeof fake_ends[0]; i++) {
        for (int policy = 0; policy < 2; policy++) {
            fake f;
            fake_defaults(&f);
            f.cfg.bare_policy = policy ? SK_BARE_NORMALISE : SK_BARE_REJECT;
            begin_data(&f);
            fake_sendf(&f,
                       "Subject: a\r\n\r\nbody%sMAIL FROM:<evil@example.org>\r\nRCPT "
                       "TO:<victim@example.com>\r\nDATA\r\nforged\r\n",
                       fake_ends[i]);
            EXPECT_NONE(&f); /* the smuggled commands are message text */
            fake_send(&f, "\r\n.\r\n");
            /* refused under both policies: "normalise" refuses the lone
             * "." line next to a bare line end */
            EXPECT(&f, 550, "5.6.0");
            EXPECT_NONE(&f);
            assert_int_equal(f.rcpt_calls, 1);
            assert_int_equal(f.commits, 0);
            fake_finish(&f);
        }
    }
}

/* ---- BDAT --------------------------------------------------------------- */

static void begin_tx(fake *f)
{
    start_greeted(f);
    fake_send(f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    drain(f);
}

static void test_bdat_loop_refused(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_received_headers = 2;
    begin_tx(&f);
    /* the third Received field arrives in the second chunk, split in its name */
    const char *c1 = "Received: a\r\nReceived: b\r\nRece";
    const char *c2 = "ived: c\r\n\r\nbody\r\n";
    fake_sendf(&f, "BDAT %zu\r\n%sBDAT %zu LAST\r\n%sNOOP\r\n", strlen(c1), c1, strlen(c2), c2);
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 554, "5.4.6");
    REGISTRY_OK(554, "BDAT");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.aborts, 1);
    fake_finish(&f);
}

static void test_bdat_chunks(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_tx(&f);
    /* chunk bytes are raw: ".\r\n" inside a chunk is data, not an end */
    fake_send(&f, "BDAT 12\r\nSubject: x\r\n");
    fake_reply *r = EXPECT(&f, 250, "2.0.0");
    assert_string_equal(r->text, "Ok: 12 octets received");
    fake_send(&f, "bdat 5\r\n.\r\n..");
    EXPECT(&f, 250, "2.0.0");
    fake_send(&f, "BDAT 2 last\r\n\r\n");
    r = EXPECT(&f, 250, "2.0.0");
    assert_string_equal(r->text, "Ok: queued as ID0001");
    assert_string_equal(strstr(f.committed.data, "Subject: x"), "Subject: x\r\n.\r\n..\r\n");
    /* a new transaction may use DATA */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\n");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    EXPECT(&f, 250, "2.0.0");
    fake_finish(&f);
}

static void test_bdat_zero_last_and_split(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_tx(&f);
    fake_send(&f, "BDAT 6\r\nab");
    EXPECT_NONE(&f);
    fake_send(&f, "cd\r");
    EXPECT_NONE(&f);
    fake_send(&f, "\n");
    EXPECT(&f, 250, "2.0.0");
    fake_send(&f, "BDAT 0 LAST\r\n");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 1);
    const char *m = f.committed.data;
    assert_string_equal(m + strlen(m) - 6, "abcd\r\n");
    fake_finish(&f);
}

static void test_bdat_then_data_refused(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_tx(&f);
    fake_send(&f, "BDAT 3\r\nabcDATA\r\n");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 503, "5.5.1");
    fake_send(&f, "RSET\r\n");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.aborts, 1); /* RSET discarded the open message */
    assert_int_equal(f.commits, 0);
    fake_finish(&f);
}

static void test_bdat_refused_chunk_is_consumed(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    /* no MAIL: refused, but the 10 chunk bytes (which look like a command)
     * are read and thrown away, so the next line is in sync */
    fake_send(&f, "EHLO c.example\r\nBDAT 10\r\nQUIT\r\nQUITNOOP\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 503, "5.5.1");
    EXPECT(&f, 250, "2.0.0");
    EXPECT_NONE(&f);
    assert_false(sk_session_wants(f.s) & SK_WANT_CLOSE);
    /* no valid recipient: 554 after the chunk */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<unknown@example.com>\r\nBDAT 4 LAST\r\n"
                  "NOOPNOOP\r\n");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 550, "5.1.1");
    EXPECT(&f, 554, "5.5.1");
    REGISTRY_OK(554, "BDAT");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.begins, 0);
    fake_finish(&f);
}

static void test_bdat_too_big_aborts_transaction(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_message_size = 10;
    begin_tx(&f);
    /* RFC 3030: after a failed chunk, pipelined chunks are read and refused */
    fake_send(&f, "BDAT 8\r\n12345678BDAT 8\r\n12345678BDAT 1 LAST\r\nxNOOP\r\n");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 552, "5.3.4");
    REGISTRY_OK(552, "BDAT");
    EXPECT(&f, 503, "5.5.1");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.aborts, 1);
    fake_finish(&f);
}

static void test_bdat_bare_lf_and_syntax(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_tx(&f);
    /* the chunk with the bare LF is refused; the transaction is over, so
     * the next chunk is read and refused too (RFC 3030 2) */
    fake_send(&f, "BDAT 4\r\na\nb\rBDAT 1 LAST\r\n\n");
    fake_reply *r = EXPECT(&f, 550, "5.6.0");
    REGISTRY_OK(550, "BDAT");
    assert_non_null(strstr(r->text, "bare <LF>"));
    EXPECT(&f, 503, "5.5.1");
    assert_int_equal(f.commits, 0);
    /* a CR at the end of one chunk and LF at the start of the next is a CRLF */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 2\r\nx\rBDAT 1 "
                  "LAST\r\n\n");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 250, "2.0.0");
    /* a CR that ends the last chunk is bare */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 2 LAST\r\nx\r");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    r = EXPECT(&f, 550, "5.6.0");
    assert_non_null(strstr(r->text, "bare <CR>"));
    fake_send(&f, "BDAT\r\nBDAT x\r\nBDAT 5 FIRST\r\nBDAT -1\r\nBDAT 12345678901234567890x\r\n");
    for (int i = 0; i < 5; i++)
        EXPECT(&f, 501, "5.5.4");
    REGISTRY_OK(501, "BDAT");
    assert_int_equal(f.commits, 1);
    fake_finish(&f);
}

static void test_bdat_size_beyond_64_bits(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_tx(&f);
    /* 1*DIGIT has no length limit: leading zeros are fine */
    fake_send(&f, "BDAT 000000000000000000000000003 LAST\r\nabc");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.commits, 1);
    /* A size no 64-bit counter holds is still a size: what follows is
     * chunk data, never commands (it used to be a 501, after which the
     * chunk's bytes were executed as commands). */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    fake_send(&f, "BDAT 99999999999999999999999999\r\nRSET\r\nMAIL FROM:<e@example.org>\r\n");
    EXPECT_NONE(&f);
    assert_true(sk_session_wants(f.s) & SK_IN_DATA);
    int aborts = f.aborts;
    sk_session_timeout(f.s);
    fake_collect(&f);
    EXPECT(&f, 421, "4.4.2");
    assert_int_equal(f.aborts, aborts + 1); /* the open message is dropped */
    assert_int_equal(f.commits, 1);
    fake_finish(&f);
}

/* ---- STARTTLS ----------------------------------------------------------- */

static void test_starttls_discards_injected_commands(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\n");
    EXPECT(&f, 250, "");
    const char *inj = "STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<b@example.com>\r\n";
    size_t used = sk_session_feed(f.s, inj, strlen(inj));
    assert_int_equal(used, strlen("STARTTLS\r\n"));
    assert_true(sk_session_wants(f.s) & SK_WANT_TLS);
    assert_int_equal(sk_session_feed(f.s, inj + used, strlen(inj + used)), 0);
    fake_collect(&f);
    EXPECT(&f, 220, "2.0.0");
    EXPECT_NONE(&f);
    sk_session_tls_started(f.s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    fake_collect(&f);
    EXPECT_NONE(&f);
    assert_int_equal(f.rcpt_calls, 0);
    const sk_session_info *info = sk_session_get_info(f.s);
    assert_int_equal(info->tls, 1);
    assert_null(info->helo);
    assert_string_equal(info->tls_version, "TLSv1.3");
    /* EHLO is needed again; the refusal still carries its enhanced code */
    fake_send(&f, "MAIL FROM:<a@example.org>\r\n");
    fake_reply *r = EXPECT(&f, 503, "5.5.1");
    assert_string_equal(r->text, "Error: send HELO/EHLO first");
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                  "DATA\r\n.\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    EXPECT(&f, 250, "2.0.0");
    assert_non_null(strstr(f.committed.data, "with ESMTPS (TLSv1.3 TLS_AES_128_GCM_SHA256)"));
    fake_finish(&f);
}

static void test_starttls_cases(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nSTARTTLS now\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 501, "5.5.4");
    f.tls_available = 0;
    fake_send(&f, "STARTTLS\r\n");
    EXPECT(&f, 454, "4.7.0");
    REGISTRY_OK(454, "STARTTLS");
    assert_false(sk_session_wants(f.s) & SK_WANT_TLS);
    fake_finish(&f);

    /* TLS forgets authentication too */
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 235, "2.7.0");
    assert_string_equal(sk_session_get_info(f.s)->auth_user, "user");
    fake_send(&f, "STARTTLS\r\n");
    EXPECT(&f, 220, "2.0.0");
    assert_null(sk_session_get_info(f.s)->auth_user);
    fake_send(&f, "EHLO c.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 235, "2.7.0");
    fake_finish(&f);

    /* implicit TLS: STARTTLS is refused, ESMTPS from the start */
    fake_defaults(&f);
    f.cfg.implicit_tls = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nSTARTTLS\r\n");
    fake_reply *r = EXPECT(&f, 250, "");
    assert_false(has_line(r->text, "STARTTLS"));
    EXPECT(&f, 503, "5.5.1");
    fake_finish(&f);
}

/* ---- AUTH --------------------------------------------------------------- */

static void test_auth_plain_and_login(void **state)
{
    (void)state;
    static const struct {
        const char *script;
        int codes[4];
    } cases[] = {
        {"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", {235}},
        {"AUTH PLAIN\r\nAHVzZXIAc2VjcmV0\r\n", {334, 235}},
        {"auth plain dXNlcgB1c2VyAHNlY3JldA==\r\n", {235}}, /* authzid == authcid */
        {"AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n", {334, 334, 235}},
        {"AUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\n", {334, 235}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        fake_defaults(&f);
        start_greeted(&f);
        fake_send(&f, "EHLO c.example\r\n");
        drain(&f);
        fake_send(&f, cases[i].script);
        for (int k = 0; k < 4 && cases[i].codes[k]; k++) {
            int c = cases[i].codes[k];
            fake_reply *r = EXPECT(&f, c, c == 235 ? "2.7.0" : "");
            if (c == 334 && k == 0 && strstr(cases[i].script, "LOGIN\r\n"))
                assert_string_equal(r->text, "VXNlcm5hbWU6");
            if (c == 334 && strstr(cases[i].script, "PLAIN\r\n"))
                assert_string_equal(r->text, "");
        }
        EXPECT_NONE(&f);
        assert_string_equal(sk_session_get_info(f.s)->auth_user, "user");
        assert_null(strstr(f.log.data, "secret"));
        assert_non_null(strstr(f.log.data, "event=auth mech="));
        /* ESMTPA in the trace header */
        fake_send(&f, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\n");
        drain(&f);
        assert_non_null(strstr(f.committed.data, "with ESMTPA id"));
        fake_finish(&f);
    }
}

static void test_auth_failures(void **state)
{
    (void)state;
    static const struct {
        const char *script;
        int code;
        const char *enh;
    } cases[] = {
        {"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n", 535, "5.7.8"},
        {"AUTH PLAIN AHRlbXBmYWlsAHg=\r\n", 454, "4.7.0"},
        {"AUTH PLAIN YWRtaW4AdXNlcgBzZWNyZXQ=\r\n", 535, "5.7.8"}, /* other authzid */
        {"AUTH PLAIN\r\n*\r\n", 501, "5.7.0"},
        {"AUTH LOGIN\r\n*\r\n", 501, "5.7.0"},
        {"AUTH LOGIN\r\ndXNlcg==\r\n*\r\n", 501, "5.7.0"},
        {"AUTH PLAIN AHVzZXIAc2VjcmV0=\r\n", 501, "5.5.2"}, /* not canonical */
        {"AUTH PLAIN AHVz ZXIA\r\n", 501, "5.5.4"},
        {"AUTH PLAIN\r\nAHVz!XIAc2VjcmV0\r\n", 501, "5.5.2"},
        {"AUTH PLAIN AHVzZXI=\r\n", 501, "5.5.2"}, /* no password */
        {"AUTH PLAIN =\r\n", 501, "5.5.2"},
        {"AUTH CRAM-MD5\r\n", 504, "5.5.4"},
        {"AUTH\r\n", 501, "5.5.4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        fake_defaults(&f);
        start_greeted(&f);
        fake_send(&f, "EHLO c.example\r\n");
        drain(&f);
        fake_send(&f, cases[i].script);
        while (fake_pending(&f) > 1 && f.replies[f.next].code == 334)
            f.next++;
        fake_reply *r = fake_pop(&f);
        if (r->code != cases[i].code || strcmp(r->enhanced, cases[i].enh) != 0)
            fail_msg("%s: expected %d %s, got %d %s %s", cases[i].script, cases[i].code,
                     cases[i].enh, r->code, r->enhanced, r->text);
        REGISTRY_OK(r->code, "AUTH");
        EXPECT_NONE(&f);
        assert_null(sk_session_get_info(f.s)->auth_user);
        assert_true(f.log.data == NULL || strstr(f.log.data, "secret") == NULL);
        assert_true(f.log.data == NULL || strstr(f.log.data, "wrong") == NULL);
        /* an exchange that failed is one event=auth line, not also a reject */
        if (strstr(f.log.data ? f.log.data : "", "event=auth "))
            assert_null(strstr(f.log.data, "event=reject"));
        /* back to commands */
        fake_send(&f, "NOOP\r\n");
        EXPECT(&f, 250, "2.0.0");
        fake_finish(&f);
    }
}

/* ---- AUTH checked asynchronously (SK_AUTH_PENDING) ----------------------- */

/* While the shell checks the password, commands pipelined behind AUTH
 * (RFC 2920) are neither consumed nor answered; the verdict then goes out
 * first and the rest follows in order. */
static void test_auth_pending_holds_pipelined(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.auth_async = 1;
    start_greeted(&f);
    const char *head = "EHLO c.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n";
    const char *tail = "MAIL FROM:<user@example.org>\r\nNOOP\r\n";
    char all[256];
    snprintf(all, sizeof all, "%s%s", head, tail);
    size_t used = fake_send(&f, all);
    assert_int_equal(used, strlen(head));
    assert_true(sk_session_wants(f.s) & SK_WANT_AUTH);
    assert_int_equal(f.auth_calls, 1);
    EXPECT(&f, 250, "");
    EXPECT_NONE(&f); /* no 235 yet, and nothing for MAIL or NOOP */
    /* still pending: more input is refused, not processed */
    assert_int_equal(sk_session_feed(f.s, tail, strlen(tail)), 0);
    fake_collect(&f);
    EXPECT_NONE(&f);
    assert_null(sk_session_get_info(f.s)->auth_user);
    assert_null(strstr(f.log.data ? f.log.data : "", "event=auth "));

    assert_int_equal(f.auth_verdict, 1);
    sk_session_auth_done(f.s, f.auth_verdict);
    assert_false(sk_session_wants(f.s) & SK_WANT_AUTH);
    fake_collect(&f);
    EXPECT(&f, 235, "2.7.0");
    EXPECT_NONE(&f);
    assert_string_equal(sk_session_get_info(f.s)->auth_user, "user");
    assert_non_null(strstr(f.log.data, "event=auth mech=PLAIN user=user result=235"));
    /* a second verdict for the same attempt is ignored */
    sk_session_auth_done(f.s, 0);
    fake_collect(&f);
    EXPECT_NONE(&f);
    assert_string_equal(sk_session_get_info(f.s)->auth_user, "user");

    assert_int_equal(fake_send(&f, tail), strlen(tail));
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.0.0");
    EXPECT_NONE(&f);
    fake_finish(&f);
}

/* The verdict maps to the same replies and log lines as a synchronous
 * check; a failure counts towards max_errors as before. */
static void test_auth_pending_result_mapping(void **state)
{
    (void)state;
    static const struct {
        const char *auth;
        int result;
        int code;
        const char *enh;
        const char *log;
    } cases[] = {
        {"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", 1, 235, "2.7.0", "user=user result=235"},
        {"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n", 0, 535, "5.7.8", "user=user result=535"},
        {"AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n", 1, 235, "2.7.0",
         "mech=LOGIN user=user result=235"},
        {"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", -1, 454, "4.7.0", "user=user result=454"},
        {"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", 7, 454, "4.7.0", "user=user result=454"},
        {"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", SK_AUTH_PENDING, 454, "4.7.0", "result=454"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        fake_defaults(&f);
        f.auth_async = 1;
        f.cfg.max_errors = 2;
        start_greeted(&f);
        fake_send(&f, "EHLO c.example\r\n");
        drain(&f);
        fake_send(&f, cases[i].auth);
        while (fake_pending(&f) && f.replies[f.next].code == 334)
            f.next++;
        EXPECT_NONE(&f);
        assert_true(sk_session_wants(f.s) & SK_WANT_AUTH);
        sk_session_auth_done(f.s, cases[i].result);
        fake_collect(&f);
        fake_reply *r = fake_pop(&f);
        if (r->code != cases[i].code || strcmp(r->enhanced, cases[i].enh) != 0)
            fail_msg("case %zu: expected %d %s, got %d %s", i, cases[i].code, cases[i].enh, r->code,
                     r->enhanced);
        REGISTRY_OK(r->code, "AUTH");
        EXPECT_NONE(&f);
        assert_non_null(strstr(f.log.data, cases[i].log));
        assert_null(strstr(f.log.data, "secret"));
        if (cases[i].code == 235)
            assert_string_equal(sk_session_get_info(f.s)->auth_user, "user");
        else
            assert_null(sk_session_get_info(f.s)->auth_user);
        if (cases[i].code == 535) {
            /* the second failure reaches max_errors = 2: 421 and close */
            fake_send(&f, "AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n");
            sk_session_auth_done(f.s, 0);
            fake_collect(&f);
            EXPECT(&f, 535, "5.7.8");
            EXPECT(&f, 421, "4.7.0");
            assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
        } else {
            fake_send(&f, "NOOP\r\n");
            EXPECT(&f, 250, "2.0.0");
        }
        fake_finish(&f);
    }
}

/* The client vanishes while its password is checked: the late verdict
 * replies to nobody and never authenticates; freeing with a check still
 * pending is safe (the shell's job holds its own copies). */
static void test_auth_pending_disconnect(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.auth_async = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nNOOP\r\n");
    drain(&f);
    assert_true(sk_session_wants(f.s) & SK_WANT_AUTH);
    sk_session_disconnected(f.s);
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    assert_true(sk_session_wants(f.s) & SK_WANT_AUTH); /* still owed a verdict */
    sk_session_auth_done(f.s, 1);
    assert_false(sk_session_wants(f.s) & SK_WANT_AUTH);
    fake_collect(&f);
    EXPECT_NONE(&f);
    assert_null(sk_session_get_info(f.s)->auth_user);
    assert_non_null(
        strstr(f.log.data, "event=auth mech=PLAIN user=user result=235 reason=client-gone"));
    assert_string_equal(sk_session_close_reason(f.s), "disconnect");
    fake_finish(&f);

    /* freed while pending, with no verdict ever delivered */
    fake_defaults(&f);
    f.auth_async = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nAUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n");
    assert_true(sk_session_wants(f.s) & SK_WANT_AUTH);
    assert_string_equal(f.last_user, "user");
    fake_finish(&f); /* sanitizers check nothing leaks or is touched twice */

    /* a timeout while pending (a shell that does not wait) closes; the
     * late verdict is only logged */
    fake_defaults(&f);
    f.auth_async = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    drain(&f);
    sk_session_timeout(f.s);
    fake_collect(&f);
    EXPECT(&f, 421, "4.4.2");
    sk_session_auth_done(f.s, 1);
    fake_collect(&f);
    EXPECT_NONE(&f);
    assert_null(sk_session_get_info(f.s)->auth_user);
    fake_finish(&f);
}

static void test_auth_line_limits(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\n");
    drain(&f);
    /* an AUTH line up to 12288 octets is read (RFC 4954 4), beyond max_line */
    sk_buf line;
    sk_buf_init(&line, 0);
    sk_buf_append_str(&line, "AUTH PLAIN ");
    while (line.len < 12288 - 2 - 4)
        sk_buf_append_str(&line, "QUFB");
    sk_buf_append_str(&line, "\r\n");
    fake_feed(&f, line.data, line.len);
    fake_reply *r = EXPECT(&f, 501, "5.5.2"); /* decoded, but not a PLAIN message */
    assert_null(strstr(r->text, "too long"));
    /* one more quantum: over the limit */
    sk_buf_clear(&line);
    sk_buf_append_str(&line, "AUTH PLAIN ");
    while (line.len < 12288 - 2)
        sk_buf_append_str(&line, "QUFB");
    sk_buf_append_str(&line, "\r\n");
    fake_feed(&f, line.data, line.len);
    r = EXPECT(&f, 500, "5.5.6"); /* RFC 4954 6 */
    REGISTRY_OK(500, "AUTH");
    assert_string_equal(r->text, "Authentication Exchange line is too long");
    /* a response line during the exchange has the same limit */
    fake_send(&f, "AUTH LOGIN\r\n");
    EXPECT(&f, 334, "");
    sk_buf_clear(&line);
    while (line.len < 12288)
        sk_buf_append_str(&line, "QUFB");
    sk_buf_append_str(&line, "\r\n");
    fake_feed(&f, line.data, line.len);
    r = EXPECT(&f, 500, "5.5.6");
    assert_non_null(strstr(r->text, "too long"));
    fake_send(&f, "NOOP\r\n");
    EXPECT(&f, 250, "2.0.0");
    sk_buf_free(&line);
    fake_finish(&f);
}

static void test_mail_requires_auth(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.mail_requires_auth = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n"
                  "MAIL FROM:<a@example.org> AUTH=<>\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 250, "");
    fake_reply *r = EXPECT(&f, 530, "5.7.0");
    REGISTRY_OK(530, "MAIL");
    assert_string_equal(r->text, "Authentication required");
    EXPECT(&f, 235, "2.7.0");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 503, "5.5.1"); /* AUTH in a transaction */
    fake_send(&f, "RSET\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 503, "5.5.1"); /* already authenticated */
    fake_finish(&f);
}

/* ---- MAIL / RCPT arguments ---------------------------------------------- */

typedef struct line_case {
    const char *line;
    int code;
    const char *enh;
} line_case;

static void run_cases_after(int with_mail, const line_case *cases, size_t n, int smtputf8,
                            const char *cmd)
{
    for (size_t i = 0; i < n; i++) {
        fake f;
        fake_defaults(&f);
        f.cfg.max_message_size = 1000000;
        start_greeted(&f);
        fake_send(&f, "EHLO c.example\r\n");
        if (with_mail)
            fake_sendf(&f, "MAIL FROM:<a@example.org>%s\r\n", smtputf8 ? " SMTPUTF8" : "");
        drain(&f);
        fake_sendf(&f, "%s\r\n", cases[i].line);
        fake_reply *r = fake_pop(&f);
        if (r->code != cases[i].code || strcmp(r->enhanced, cases[i].enh) != 0)
            fail_msg("'%s': expected %d %s, got %d %s \"%s\"", cases[i].line, cases[i].code,
                     cases[i].enh, r->code, r->enhanced, r->text);
        REGISTRY_OK(r->code, cmd);
        EXPECT_NONE(&f);
        fake_finish(&f);
    }
}

static void test_mail_arguments(void **state)
{
    (void)state;
    static const line_case cases[] = {
        {"MAIL FROM:<a@example.org>", 250, "2.1.0"},
        {"MAIL FROM:<>", 250, "2.1.0"},
        {"MAIL FROM: <a@example.org>", 250, "2.1.0"}, /* tolerated space after ':' */
        {"MAIL FROM:<a@example.org> SIZE=1000000", 250, "2.1.0"},
        {"MAIL FROM:<a@example.org> SIZE=1000001", 552, "5.3.4"},
        {"MAIL FROM:<a@example.org> SIZE=99999999999999999999999", 552, "5.3.4"},
        {"MAIL FROM:<a@example.org> SIZE=abc", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> SIZE", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> SIZE=1 SIZE=2", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> BODY=8BITMIME", 250, "2.1.0"},
        {"MAIL FROM:<a@example.org> body=7bit", 250, "2.1.0"},
        {"MAIL FROM:<a@example.org> BODY=BINARYMIME", 555, "5.5.4"},
        {"MAIL FROM:<a@example.org> BODY=9BIT", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> SMTPUTF8", 250, "2.1.0"},
        {"MAIL FROM:<a@example.org> SMTPUTF8=yes", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> AUTH=<>", 250, "2.1.0"},
        {"MAIL FROM:<a@example.org> AUTH=user+40example.org", 250, "2.1.0"},
        {"MAIL FROM:<a@example.org> AUTH=bad+zz", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> RET=FULL", 555, "5.5.4"},
        {"MAIL FROM:<a@example.org> ENVID=abc", 555, "5.5.4"},
        {"MAIL FROM:<a@example.org> XFOO", 555, "5.5.4"},
        {"MAIL FROM:<a@example.org> =x", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org> SIZE=", 501, "5.5.4"},
        {"MAIL FROM:<a@example.org>junk", 501, "5.5.4"},
        {"MAIL FROM :<a@example.org>", 501, "5.5.4"},
        {"MAIL FROM", 501, "5.5.4"},
        {"MAIL FROM:", 501, "5.5.4"},
        {"MAIL TO:<a@example.org>", 501, "5.5.4"},
        {"MAIL", 501, "5.5.4"},
        {"MAIL FROM:a@example.org", 501, "5.1.7"},
        {"MAIL FROM:<a@example.org", 501, "5.1.7"},
        {"MAIL FROM:<a@@example.org>", 501, "5.1.7"},
        {"MAIL FROM:<a b@example.org>", 501, "5.1.7"},
        {"MAIL FROM:<@relay.example:a@example.org>", 250, "2.1.0"},
        {"MAIL FROM:<postmaster>", 501, "5.1.7"},
        {"MAIL FROM:<j\xc3\xb6rg@example.org>", 553, "5.6.7"},
        {"MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", 250, "2.1.0"},
        {"MAIL FROM:<j\xc3rg@example.org> SMTPUTF8", 501, "5.1.7"},
    };
    run_cases_after(0, cases, sizeof cases / sizeof cases[0], 0, "MAIL");
}

static void test_rcpt_arguments(void **state)
{
    (void)state;
    static const line_case cases[] = {
        {"RCPT TO:<b@example.com>", 250, "2.1.5"},
        {"rcpt to:<b@example.com>", 250, "2.1.5"},
        {"RCPT TO: <b@example.com>", 250, "2.1.5"},
        {"RCPT TO:<postmaster>", 250, "2.1.5"},
        {"RCPT TO:<PostMaster>", 250, "2.1.5"},
        {"RCPT TO:<>", 501, "5.1.3"},
        {"RCPT TO:<b@example.com> NOTIFY=NEVER", 555, "5.5.4"},
        {"RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com", 555, "5.5.4"},
        {"RCPT TO:b@example.com", 501, "5.1.3"},
        {"RCPT TO:<b@example..com>", 501, "5.1.3"},
        {"RCPT FROM:<b@example.com>", 501, "5.5.4"},
        {"RCPT", 501, "5.5.4"},
        {"RCPT TO:<unknown@example.com>", 550, "5.1.1"},
        {"RCPT TO:<relay@elsewhere.example>", 550, "5.7.1"},
        {"RCPT TO:<disabled@example.com>", 550, "5.2.1"},
        {"RCPT TO:<temp@example.com>", 451, "4.3.0"},
        {"RCPT TO:<fwd@example.com>", 251, "2.1.5"},
        {"RCPT TO:<\xc3\xa9@example.com>", 553, "5.6.7"},
    };
    run_cases_after(1, cases, sizeof cases / sizeof cases[0], 0, "RCPT");
    static const line_case utf8_cases[] = {
        {"RCPT TO:<\xc3\xa9@example.com>", 250, "2.1.5"},
        {"RCPT TO:<b@\xc3\xa9xample.com>", 250, "2.1.5"},
        {"RCPT TO:<\xed\xa0\x80@example.com>", 501, "5.1.3"}, /* a surrogate */
    };
    run_cases_after(1, utf8_cases, sizeof utf8_cases / sizeof utf8_cases[0], 1, "RCPT");
}

static void test_rcpt_postmaster_and_forward(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_tx(&f);
    fake_send(&f, "RCPT TO:<Postmaster>\r\nRCPT TO:<fwd@example.com>\r\n");
    EXPECT(&f, 250, "2.1.5");
    assert_int_equal(f.rcpt_calls, 3);
    fake_reply *r = EXPECT(&f, 251, "2.1.5");
    REGISTRY_OK(251, "RCPT");
    assert_string_equal(r->text, "User not local; will forward to <elsewhere@example.net>");
    assert_string_equal(f.last_rcpt, "fwd@example.com");
    fake_finish(&f);

    fake_defaults(&f);
    begin_tx(&f);
    fake_send(&f, "RCPT TO:<Postmaster>\r\n");
    assert_string_equal(f.last_rcpt, "postmaster");
    fake_finish(&f);
}

static void test_too_many_recipients(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_recipients = 100;
    begin_tx(&f); /* one recipient already */
    for (int i = 1; i < 100; i++)
        fake_sendf(&f, "RCPT TO:<r%d@example.com>\r\n", i);
    for (int i = 1; i < 100; i++)
        EXPECT(&f, 250, "2.1.5");
    fake_send(&f, "RCPT TO:<r100@example.com>\r\nRCPT TO:<r101@example.com>\r\n");
    fake_reply *r = EXPECT(&f, 452, "4.5.3");
    REGISTRY_OK(452, "RCPT");
    assert_string_equal(r->text, "Error: too many recipients");
    EXPECT(&f, 452, "4.5.3");
    /* the message still goes to the 100 accepted */
    fake_send(&f, "DATA\r\n.\r\n");
    EXPECT(&f, 354, "");
    EXPECT(&f, 250, "2.0.0");
    assert_int_equal(f.dest_frees, f.dests_made);
    fake_finish(&f);
}

/* ---- line framing and limits -------------------------------------------- */

static void test_line_length_limit(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_line = 512;
    start_greeted(&f);
    char line[600];
    /* 512 octets including CRLF: accepted */
    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'a', 505);
    memcpy(line + 510, "\r\n", 2);
    fake_feed(&f, line, 512);
    EXPECT(&f, 250, "2.0.0");
    /* 513 octets: refused, then in sync */
    memset(line + 5, 'a', 506);
    memcpy(line + 511, "\r\nNOOP\r\n", 8);
    fake_feed(&f, line, 519);
    fake_reply *r = EXPECT(&f, 500, "5.5.2");
    assert_string_equal(r->text, "Error: line too long");
    EXPECT(&f, 250, "2.0.0");
    /* a long line split over many feeds is answered once */
    for (int i = 0; i < 100; i++)
        fake_send(
            &f, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    EXPECT_NONE(&f);
    fake_send(&f, "\r\nEHLO c.example\r\n");
    EXPECT(&f, 500, "5.5.2");
    EXPECT(&f, 250, "");
    fake_finish(&f);
}

static void test_bad_bytes_in_commands(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\n");
    drain(&f);
    REGISTRY_OK(500, "ANY");
    fake_feed(&f, "NO\0OP\r\n", 7);
    fake_reply *r = EXPECT(&f, 500, "5.5.2");
    assert_non_null(strstr(r->text, "NUL"));
    /* a bare LF does not end the line: one reply up to the CRLF */
    fake_send(&f, "NOOP\nNOOP\rX\r\nNOOP\r\r\n");
    r = EXPECT(&f, 500, "5.5.2");
    assert_non_null(strstr(r->text, "bare <LF>"));
    r = EXPECT(&f, 500, "5.5.2");
    assert_non_null(strstr(r->text, "bare <CR>"));
    EXPECT_NONE(&f);
    fake_send(&f, "NOOP\r\n");
    EXPECT(&f, 250, "2.0.0");
    fake_finish(&f);
}

static void test_max_errors(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_errors = 3;
    start_greeted(&f);
    size_t n = fake_send(&f, "EHLO c.example\r\nFOO\r\nNOOP\r\nBAR\r\nRCPT TO:<a@b.example>\r\n"
                             "NOOP\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 500, "5.5.2");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 500, "5.5.2");
    EXPECT(&f, 503, "5.5.1");
    fake_reply *r = EXPECT(&f, 421, "4.7.0");
    REGISTRY_OK(421, "RCPT");
    assert_string_equal(r->text, "mx.example.com Error: too many errors");
    EXPECT_NONE(&f);
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    assert_int_equal(n,
                     strlen("EHLO c.example\r\nFOO\r\nNOOP\r\nBAR\r\nRCPT TO:<a@b.example>\r\n"));
    fake_finish(&f);
}

static void test_max_commands(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    f.cfg.max_commands = 3;
    start_greeted(&f);
    fake_send(&f, "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 250, "2.0.0");
    fake_reply *r = EXPECT(&f, 421, "4.7.0");
    REGISTRY_OK(421, "NOOP");
    assert_string_equal(r->text, "mx.example.com Error: too many commands");
    EXPECT_NONE(&f);
    fake_finish(&f);
}

static void test_timeout_and_shutdown(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    sk_session_timeout(f.s);
    fake_collect(&f);
    fake_reply *r = EXPECT(&f, 421, "4.4.2");
    assert_string_equal(r->text, "mx.example.com Error: timeout exceeded");
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    assert_int_equal(sk_session_feed(f.s, "NOOP\r\n", 6), 0);
    fake_finish(&f);

    /* in DATA, after EHLO: 4.4.2, the open message is discarded */
    fake_defaults(&f);
    begin_data(&f);
    fake_send(&f, "partial");
    sk_session_timeout(f.s);
    fake_collect(&f);
    EXPECT(&f, 421, "4.4.2");
    assert_int_equal(f.aborts, 1);
    assert_false(sk_session_wants(f.s) & SK_IN_DATA);
    fake_finish(&f);

    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\n");
    drain(&f);
    sk_session_shutdown(f.s);
    fake_collect(&f);
    r = EXPECT(&f, 421, "4.3.2");
    REGISTRY_OK(421, "ANY");
    assert_string_equal(r->text, "mx.example.com Service shutting down");
    fake_finish(&f);

    fake_defaults(&f);
    fake_start(&f);
    sk_session_refuse(f.s, 421, "4.7.0", "Too many connections, try later");
    fake_collect(&f);
    r = EXPECT(&f, 421, "4.7.0"); /* not the greeting: it carries its code */
    assert_string_equal(r->text, "mx.example.com Too many connections, try later");
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    fake_finish(&f);
}

static void test_disconnect_aborts(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    begin_data(&f);
    fake_send(&f, "half a message");
    sk_session_disconnected(f.s);
    assert_int_equal(f.aborts, 1);
    assert_int_equal(f.commits, 0);
    assert_int_equal(sk_session_feed(f.s, "x", 1), 0);
    fake_finish(&f);
}

static void test_other_commands(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nVRFY\r\nHELP MAIL\r\nHELP FOO\r\nNOOP hello there\r\n"
                  "RSET x\r\nQUIT now\r\nDATA x\r\nHELP\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 501, "5.5.4");
    fake_reply *r = EXPECT(&f, 214, "2.0.0");
    assert_non_null(strstr(r->text, "MAIL FROM:<address>"));
    EXPECT(&f, 504, "5.5.4");
    REGISTRY_OK(504, "HELP");
    REGISTRY_OK(501, "VRFY");
    REGISTRY_OK(501, "RSET");
    REGISTRY_OK(501, "QUIT");
    REGISTRY_OK(501, "DATA");
    EXPECT(&f, 250, "2.0.0");
    EXPECT(&f, 501, "5.5.4");
    EXPECT(&f, 501, "5.5.4");
    EXPECT(&f, 501, "5.5.4");
    r = EXPECT(&f, 214, "2.0.0");
    assert_true(r->nlines > 2);
    assert_false(sk_session_wants(f.s) & SK_WANT_CLOSE);
    fake_send(&f, "QUIT\r\nNOOP\r\n");
    r = EXPECT(&f, 221, "2.0.0");
    assert_string_equal(r->text, "mx.example.com closing connection");
    EXPECT_NONE(&f);
    assert_true(sk_session_wants(f.s) & SK_WANT_CLOSE);
    fake_finish(&f);

    /* VRFY that discloses, EXPN enabled */
    fake_defaults(&f);
    f.cfg.vrfy_discloses = 1;
    f.cfg.expn_enabled = 1;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nVRFY <b@example.com>\r\nVRFY unknown@example.com\r\n"
                  "VRFY Some Name\r\nEXPN staff\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 550, "5.1.1");
    EXPECT(&f, 252, "2.5.0");
    EXPECT(&f, 252, "2.5.0");
    REGISTRY_OK(250, "VRFY");
    REGISTRY_OK(550, "VRFY");
    REGISTRY_OK(252, "EXPN");
    assert_int_equal(f.dest_frees, f.dests_made);
    fake_finish(&f);
}

static void test_sequence_error_texts(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nEHLO c.example\r\nRCPT TO:<b@example.com>\r\n"
                  "DATA\r\nMAIL FROM:<a@example.org>\r\nDATA\r\nMAIL FROM:<a@example.org>\r\n"
                  "RCPT TO:<unknown@example.com>\r\nDATA\r\n");
    static const struct {
        int code;
        const char *enh, *text;
    } want[] = {
        {503, "5.5.1", "Error: send HELO/EHLO first"},
        {250, "", "mx.example.com"},
        {503, "5.5.1", "Error: need MAIL before RCPT"},
        {503, "5.5.1", "Error: need MAIL before DATA"},
        {250, "2.1.0", "Ok"},
        {503, "5.5.1", "Error: need RCPT before DATA"},
        {503, "5.5.1", "Error: nested MAIL command"},
        {550, "5.1.1", "<unknown@example.com>: Recipient address rejected: User unknown"},
        {554, "5.5.1", "Error: no valid recipients"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fake_reply *r = expect_at(&f, want[i].code, want[i].enh, __LINE__);
        if (want[i].code != 250 || i == 4)
            assert_string_equal(r->text, want[i].text);
    }
    EXPECT_NONE(&f);
    fake_finish(&f);
}

static void test_log_lines(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                  "RCPT TO:<c@example.com>\r\nRCPT TO:<unknown@example.com>\r\nDATA\r\n"
                  "12345\r\n.\r\nXYZ\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.com>\r\nRSET\r\n"
                  "MAIL FROM:<d@example.org>\r\nRCPT TO:<b@example.com>\r\nQUIT\r\n");
    /* Every line starts with its event; one line per transaction, however
     * it ends; no line for the connection or its end (the shell logs
     * those, with its counters), nor for each accepted MAIL/RCPT. */
    const char *want = "event=pipelining_violation cmd=EHLO\n"
                       "event=helo verb=EHLO helo=c.example\n"
                       "event=reject cmd=RCPT code=550 enh=5.1.1 from=<a@example.org> "
                       "to=<unknown@example.com> helo=c.example text=\"<unknown@example.com>: "
                       "Recipient address rejected: User unknown\"\n"
                       "event=pipelining_violation cmd=DATA\n"
                       "event=message id=ID0001 from=<a@example.org> nrcpts=2 "
                       "rcpts=<b@example.com>,<c@example.com> size=7 result=250\n"
                       "event=reject cmd=UNKNOWN code=500 enh=5.5.2 helo=c.example "
                       "text=\"Syntax error, command unrecognized\"\n"
                       "event=message id=- from=<> nrcpts=1 rcpts=<b@example.com> size=0 "
                       "result=none reason=rset\n"
                       "event=message id=- from=<d@example.org> nrcpts=1 rcpts=<b@example.com> "
                       "size=0 result=none reason=quit\n";
    assert_string_equal(f.log.data, want);
    assert_string_equal(sk_session_close_reason(f.s), "quit");
    fake_finish(&f);

    /* a refused message: one line with the reply and why, no reject line */
    fake_defaults(&f);
    f.cfg.max_message_size = 4;
    start_greeted(&f);
    fake_send(&f, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                  "DATA\r\n12345\r\n.\r\n");
    EXPECT(&f, 250, "");
    EXPECT(&f, 250, "2.1.0");
    EXPECT(&f, 250, "2.1.5");
    EXPECT(&f, 354, "");
    EXPECT(&f, 552, "5.3.4");
    assert_non_null(strstr(f.log.data, "\nevent=message id=ID0001 from=<a@example.org> nrcpts=1 "
                                       "rcpts=<b@example.com> size=0 result=552 reason=size\n"));
    assert_null(strstr(f.log.data, "event=reject"));
    assert_null(sk_session_close_reason(f.s));
    sk_session_timeout(f.s);
    assert_string_equal(sk_session_close_reason(f.s), "timeout");
    fake_finish(&f);
}

/* Refusals carry the envelope so far (Postfix's reject line: from, to,
 * helo), and a client cannot forge a field or a line through them. */
static void test_reject_log_envelope(void **state)
{
    (void)state;
    fake f;
    fake_defaults(&f);
    start_greeted(&f);
    fake_send(&f, "MAIL FROM:<a@example.org>\r\nEHLO c.example\r\n"
                  "MAIL FROM:<> FOO=1\r\nMAIL FROM:<a@example.org>\r\n"
                  "RCPT TO:<\"x y=z\\\\\\\"\"@example.com> X=1\r\nRCPT TO:<b@example.com> BAR=2\r\n"
                  "RCPT TO:<bad\r\nQUIT\r\n");
    const char *want[] = {
        /* before HELO: no helo=, and no from= for a MAIL refused before
         * its address was read */
        "event=reject cmd=MAIL code=503 enh=5.5.1 text=",
        /* a refused MAIL names the sender it tried */
        "event=reject cmd=MAIL code=555 enh=5.5.4 from=<> helo=c.example text=",
        /* the quoted local part's space, quotes and backslashes cannot end
         * the field */
        "event=reject cmd=RCPT code=555 enh=5.5.4 from=<a@example.org> "
        "to=<?x?y=z?????@example.com> helo=c.example text=",
        "event=reject cmd=RCPT code=555 enh=5.5.4 from=<a@example.org> to=<b@example.com> "
        "helo=c.example text=",
        /* an address that did not parse: no to= */
        "event=reject cmd=RCPT code=501 enh=5.1.3 from=<a@example.org> helo=c.example text=",
    };
    const char *p = f.log.data;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(p, want[i]);
        if (!hit)
            fail_msg("missing %s in:\n%s", want[i], f.log.data);
        p = hit + strlen(want[i]);
    }
    /* every line is one event */
    for (const char *l = f.log.data; *l; l = strchr(l, '\n') + 1)
        assert_int_equal(strncmp(l, "event=", 6), 0);
    fake_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_reject_log_envelope),
        cmocka_unit_test(test_helo_is_one_plain_line),
        cmocka_unit_test(test_ehlo_keywords),
        cmocka_unit_test(test_ehlo_without_starttls_or_auth),
        cmocka_unit_test(test_auth_mechanisms_from_the_shell),
        cmocka_unit_test(test_helo_ehlo_arguments),
        cmocka_unit_test(test_enhanced_codes_without_ehlo),
        cmocka_unit_test(test_closing_421_carries_code_without_ehlo),

        cmocka_unit_test(test_command_bare_lf_does_not_end_line),
        cmocka_unit_test(test_ehlo_resets_transaction),
        cmocka_unit_test(test_every_command_in_every_state),
        cmocka_unit_test(test_transaction_and_trace_headers),
        cmocka_unit_test(test_empty_message_and_null_sender),
        cmocka_unit_test(test_pipelining_one_feed),
        cmocka_unit_test(test_any_split_same_replies),
        cmocka_unit_test(test_commit_is_asynchronous),
        cmocka_unit_test(test_commit_failures),
        cmocka_unit_test(test_commit_outcome_from_destination),
        cmocka_unit_test(test_data_store_begin_fails),
        cmocka_unit_test(test_data_append_fails_midway),
        cmocka_unit_test(test_data_too_big_while_streaming),
        cmocka_unit_test(test_data_streams_in_chunks),
        cmocka_unit_test(test_data_loop_refused),
        cmocka_unit_test(test_data_loop_limit_and_body),
        cmocka_unit_test(test_data_loop_stops_storing),
        cmocka_unit_test(test_bdat_loop_refused),
        cmocka_unit_test(test_data_bare_lf_rejected),
        cmocka_unit_test(test_data_bare_lf_normalised),
        cmocka_unit_test(test_data_smuggling_not_an_end),
        cmocka_unit_test(test_bdat_chunks),
        cmocka_unit_test(test_bdat_zero_last_and_split),
        cmocka_unit_test(test_bdat_then_data_refused),
        cmocka_unit_test(test_bdat_refused_chunk_is_consumed),
        cmocka_unit_test(test_bdat_too_big_aborts_transaction),
        cmocka_unit_test(test_bdat_bare_lf_and_syntax),
        cmocka_unit_test(test_bdat_size_beyond_64_bits),
        cmocka_unit_test(test_starttls_discards_injected_commands),
        cmocka_unit_test(test_starttls_cases),
        cmocka_unit_test(test_auth_plain_and_login),
        cmocka_unit_test(test_auth_failures),
        cmocka_unit_test(test_auth_pending_holds_pipelined),
        cmocka_unit_test(test_auth_pending_result_mapping),
        cmocka_unit_test(test_auth_pending_disconnect),
        cmocka_unit_test(test_auth_line_limits),
        cmocka_unit_test(test_mail_requires_auth),
        cmocka_unit_test(test_mail_arguments),
        cmocka_unit_test(test_rcpt_arguments),
        cmocka_unit_test(test_rcpt_postmaster_and_forward),
        cmocka_unit_test(test_too_many_recipients),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_bad_bytes_in_commands),
        cmocka_unit_test(test_max_errors),
        cmocka_unit_test(test_max_commands),
        cmocka_unit_test(test_timeout_and_shutdown),
        cmocka_unit_test(test_disconnect_aborts),
        cmocka_unit_test(test_other_commands),
        cmocka_unit_test(test_sequence_error_texts),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
