/*
 * test_dovecot_auth_proto.c - Dovecot's auth client protocol without I/O
 * (server/dovecot_auth_proto.c): a real Dovecot 2.3 handshake parsed in
 * pieces of every size, OK/FAIL/CONT with their parameters, unescaping,
 * protocol errors (long lines, NUL, bad ids) that fail the connection, and
 * the client's lines formatted with escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "server/dovecot_auth_proto.h"

/* As Dovecot 2.3.19 sends it on the auth-client socket. */
static const char handshake[] = "VERSION\t1\t2\n"
                                "MECH\tPLAIN\tplaintext\n"
                                "MECH\tLOGIN\tplaintext\n"
                                "MECH\tSCRAM-SHA-256\tmutual-auth\n"
                                "MECH\tEXTERNAL\tprivate\n"
                                "SPID\t49201\n"
                                "CUID\t7\n"
                                "COOKIE\t5e8a3c1d6f0b2a9e4d7c8b1a0f3e2d1c\n"
                                "DONE\n";

typedef struct seen {
    int n;
    sk_dauth_type types[16];
    char mechs[8][32];
    unsigned flags[8];
    int nmech;
} seen;

/* Feed text in pieces of `piece` bytes; collect what comes out. */
static void feed(sk_dauth_parser *p, const char *text, size_t len, size_t piece, seen *s)
{
    memset(s, 0, sizeof *s);
    for (size_t off = 0; off < len;) {
        size_t take = len - off < piece ? len - off : piece;
        const char *d = text + off;
        size_t left = take;
        while (left) {
            sk_dauth_record r;
            const char *why;
            int rc = sk_dauth_parse(p, &d, &left, &r, &why);
            assert_int_not_equal(rc, -1);
            if (rc == 0) {
                assert_int_equal(left, 0);
                break;
            }
            s->types[s->n++] = r.type;
            if (r.type == SK_DAUTH_MECH) {
                strncpy(s->mechs[s->nmech], r.mech, 31);
                s->flags[s->nmech++] = r.mech_flags;
            }
            if (r.type == SK_DAUTH_VERSION) {
                assert_int_equal(r.major, 1);
                assert_int_equal(r.minor, 2);
            }
        }
        off += take;
    }
}

static void test_handshake_in_every_piece_size(void **state)
{
    (void)state;
    for (size_t piece = 1; piece <= sizeof handshake; piece++) {
        sk_dauth_parser p;
        sk_dauth_parser_init(&p);
        seen s;
        feed(&p, handshake, strlen(handshake), piece, &s);
        assert_int_equal(s.n, 9);
        assert_int_equal(s.types[0], SK_DAUTH_VERSION);
        assert_int_equal(s.types[5], SK_DAUTH_SPID);
        assert_int_equal(s.types[6], SK_DAUTH_CUID);
        assert_int_equal(s.types[7], SK_DAUTH_COOKIE);
        assert_int_equal(s.types[8], SK_DAUTH_DONE);
        assert_int_equal(s.nmech, 4);
        assert_string_equal(s.mechs[0], "PLAIN");
        assert_int_equal(s.flags[0], SK_DAUTH_MECH_PLAINTEXT);
        assert_string_equal(s.mechs[1], "LOGIN");
        assert_int_equal(s.flags[2], 0);
        assert_string_equal(s.mechs[3], "EXTERNAL");
        assert_int_equal(s.flags[3], SK_DAUTH_MECH_PRIVATE);
    }
}

static int one(sk_dauth_parser *p, const char *line, sk_dauth_record *r, const char **why)
{
    const char *d = line;
    size_t n = strlen(line);
    return sk_dauth_parse(p, &d, &n, r, why);
}

static void test_replies(void **state)
{
    (void)state;
    sk_dauth_parser p;
    sk_dauth_parser_init(&p);
    sk_dauth_record r;
    const char *why;
    assert_int_equal(one(&p, "OK\t42\tuser=alice@example.test\toriginal_user=Alice\n", &r, &why),
                     1);
    assert_int_equal(r.type, SK_DAUTH_OK);
    assert_int_equal(r.id, 42);
    assert_string_equal(r.user, "alice@example.test");
    assert_int_equal(r.temp, 0);

    assert_int_equal(one(&p, "FAIL\t43\tuser=bob\n", &r, &why), 1);
    assert_int_equal(r.type, SK_DAUTH_FAIL);
    assert_int_equal(r.id, 43);
    assert_int_equal(r.temp, 0);
    assert_null(r.reason);

    assert_int_equal(one(&p, "FAIL\t44\ttemp\treason=Temporary\001tfailure\n", &r, &why), 1);
    assert_int_equal(r.temp, 1);
    assert_string_equal(r.reason, "Temporary\tfailure"); /* unescaped */

    assert_int_equal(one(&p, "FAIL\t45\tcode=temp_fail\n", &r, &why), 1);
    assert_int_equal(r.temp, 1);

    assert_int_equal(one(&p, "CONT\t46\tVXNlcm5hbWU6\n", &r, &why), 1);
    assert_int_equal(r.type, SK_DAUTH_CONT);
    assert_string_equal(r.data, "VXNlcm5hbWU6");

    /* Empty CONT data is valid (an empty challenge). */
    assert_int_equal(one(&p, "CONT\t47\t\n", &r, &why), 1);
    assert_string_equal(r.data, "");

    /* Unknown commands are passed up as OTHER (ignored by the client). */
    assert_int_equal(one(&p, "NOTIFY\tsomething\n", &r, &why), 1);
    assert_int_equal(r.type, SK_DAUTH_OTHER);
    assert_string_equal(r.command, "NOTIFY");

    /* Escapes: \0011 \001t \001r \001n. */
    assert_int_equal(one(&p, "OK\t48\tuser=a\0011b\001rc\001nd\n", &r, &why), 1);
    assert_string_equal(r.user, "a\001b\rc\nd");
}

static void test_protocol_errors_fail_for_good(void **state)
{
    (void)state;
    static const char *bad[] = {
        "VERSION\t1\n", "VERSION\tx\t2\n", "MECH\n",
        "OK\n",         "OK\t0\n",         "FAIL\tabc\n",
        "CONT\t5\n",    "OK\t-1\n",        "OK\t99999999999999\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sk_dauth_parser p;
        sk_dauth_parser_init(&p);
        sk_dauth_record r;
        const char *why = NULL;
        if (one(&p, bad[i], &r, &why) != -1)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(why);
        /* failed for good: even a valid line is refused now */
        assert_int_equal(one(&p, "DONE\n", &r, &why), -1);
    }
    /* NUL inside a line */
    sk_dauth_parser p;
    sk_dauth_parser_init(&p);
    sk_dauth_record r;
    const char *why;
    const char nul[] = "OK\t1\tuser=a\0b\n";
    const char *d = nul;
    size_t n = sizeof nul - 1;
    assert_int_equal(sk_dauth_parse(&p, &d, &n, &r, &why), -1);
    assert_string_equal(why, "NUL byte in a line from the auth server");

    /* A line longer than the limit, fed in pieces. */
    sk_dauth_parser_init(&p);
    char *big = malloc(SK_DAUTH_LINE_MAX + 100);
    assert_non_null(big);
    memset(big, 'a', SK_DAUTH_LINE_MAX + 100);
    int rc = 0;
    for (size_t off = 0; off < SK_DAUTH_LINE_MAX + 100 && rc == 0; off += 1000) {
        d = big + off;
        n = SK_DAUTH_LINE_MAX + 100 - off < 1000 ? SK_DAUTH_LINE_MAX + 100 - off : 1000;
        rc = sk_dauth_parse(&p, &d, &n, &r, &why);
    }
    free(big);
    assert_int_equal(rc, -1);
    assert_string_equal(why, "line from the auth server too long");

    /* Too many fields. */
    sk_dauth_parser_init(&p);
    char many[512] = "OK\t1";
    for (int i = 0; i < SK_DAUTH_MAX_ARGS + 1; i++)
        strcat(many, "\tx");
    strcat(many, "\n");
    assert_int_equal(one(&p, many, &r, &why), -1);
}

static void test_formatting(void **state)
{
    (void)state;
    char out[1024];
    assert_int_equal(sk_dauth_format_handshake(out, sizeof out, 4321),
                     strlen("VERSION\t1\t2\nCPID\t4321\n"));
    assert_string_equal(out, "VERSION\t1\t2\nCPID\t4321\n");
    assert_int_equal(sk_dauth_format_handshake(out, 5, 4321), 0);

    sk_dauth_auth a = {.id = 9,
                       .mech = "PLAIN",
                       .service = "smtp",
                       .secured = 1,
                       .lip = "127.0.0.1",
                       .rip = "192.0.2.7",
                       .lport = 587,
                       .rport = 40000,
                       .resp = "AGFsaWNlAHdvbmRlcmxhbmQ="};
    size_t n = sk_dauth_format_auth(out, sizeof out, &a);
    static const char want[] =
        "AUTH\t9\tPLAIN\tservice=smtp\tnologin\tsecured\tlip=127.0.0.1\trip=192.0.2.7"
        "\tlport=587\trport=40000\tresp=AGFsaWNlAHdvbmRlcmxhbmQ=\n";
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);

    /* Values are escaped; optional fields left out. */
    sk_dauth_auth b = {.id = 10, .mech = "LOGIN", .service = "smtp", .rip = "a\tb\nc\001"};
    n = sk_dauth_format_auth(out, sizeof out, &b);
    assert_string_equal(out, "AUTH\t10\tLOGIN\tservice=smtp\tnologin\trip=a\001tb\001nc\0011\n");
    /* Does not fit: nothing. */
    assert_int_equal(sk_dauth_format_auth(out, 20, &a), 0);
    sk_dauth_auth c = {.id = 0, .mech = "PLAIN", .service = "smtp"};
    assert_int_equal(sk_dauth_format_auth(out, sizeof out, &c), 0);

    n = sk_dauth_format_cont(out, sizeof out, 11, "d29uZGVybGFuZA==");
    assert_string_equal(out, "CONT\t11\td29uZGVybGFuZA==\n");
    assert_int_equal(n, strlen(out));
    assert_int_equal(sk_dauth_format_cont(out, sizeof out, 0, "x"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_in_every_piece_size),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_protocol_errors_fail_for_good),
        cmocka_unit_test(test_formatting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
