/*
 * test_address.c - the envelope address parser (RFC 5321 4.1.2, 4.5.3.1,
 * RFC 6531): every address form, valid and invalid, and the length limits
 * at their edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpkit/address.h"

typedef struct path_case {
    const char *in;
    unsigned flags;
    sk_addr_status st;
    const char *mailbox; /* expected mailbox when OK */
} path_case;

#define NUL SK_ADDR_ALLOW_NULL
#define U8 SK_ADDR_UTF8
#define PM SK_ADDR_POSTMASTER

static const path_case valid[] = {
    {"<a@example.com>", 0, SK_ADDR_OK, "a@example.com"},
    {"<first.last@sub.example.com>", 0, SK_ADDR_OK, "first.last@sub.example.com"},
    {"<!#$%&'*+-/=?^_`{|}~@example.com>", 0, SK_ADDR_OK, "!#$%&'*+-/=?^_`{|}~@example.com"},
    {"<\"john doe\"@example.com>", 0, SK_ADDR_OK, "\"john doe\"@example.com"},
    {"<\"a\\\"b\\\\c\"@example.com>", 0, SK_ADDR_OK, "\"a\\\"b\\\\c\"@example.com"},
    {"<\"\"@example.com>", 0, SK_ADDR_OK, "\"\"@example.com"},
    {"<\"a@b\"@example.com>", 0, SK_ADDR_OK, "\"a@b\"@example.com"},
    {"<\"a>b\"@example.com>", 0, SK_ADDR_OK, "\"a>b\"@example.com"},
    {"<a@localhost>", 0, SK_ADDR_OK, "a@localhost"},
    {"<a@123.example>", 0, SK_ADDR_OK, "a@123.example"},
    {"<a@x-y.example>", 0, SK_ADDR_OK, "a@x-y.example"},
    {"<a@xn--bcher-kva.example>", 0, SK_ADDR_OK, "a@xn--bcher-kva.example"},
    {"<a@[192.0.2.1]>", 0, SK_ADDR_OK, "a@[192.0.2.1]"},
    {"<a@[0.0.0.0]>", 0, SK_ADDR_OK, "a@[0.0.0.0]"},
    {"<a@[255.255.255.255]>", 0, SK_ADDR_OK, "a@[255.255.255.255]"},
    {"<a@[IPv6:2001:db8::1]>", 0, SK_ADDR_OK, "a@[IPv6:2001:db8::1]"},
    {"<a@[ipv6:2001:DB8:0:0:0:0:0:1]>", 0, SK_ADDR_OK, "a@[ipv6:2001:DB8:0:0:0:0:0:1]"},
    {"<a@[IPv6:::ffff:192.0.2.1]>", 0, SK_ADDR_OK, "a@[IPv6:::ffff:192.0.2.1]"},
    {"<a@[IPv6:::]>", 0, SK_ADDR_OK, "a@[IPv6:::]"},
    {"<@relay.example:a@example.com>", 0, SK_ADDR_OK, "a@example.com"},
    {"<@r1.example,@r2.example,@r3.example:a@example.com>", 0, SK_ADDR_OK, "a@example.com"},
    {"<>", NUL, SK_ADDR_OK, ""},
    {"<postmaster>", PM, SK_ADDR_OK, "postmaster"},
    {"<PostMaster>", PM, SK_ADDR_OK, "postmaster"},
    {"<postmaster@example.com>", PM, SK_ADDR_OK, "postmaster@example.com"},
    {"<j\xc3\xb6rg@example.com>", U8, SK_ADDR_OK, "j\xc3\xb6rg@example.com"},
    {"<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", U8, SK_ADDR_OK,
     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a"},
    {"<\"\xc3\xa9 x\"@example.com>", U8, SK_ADDR_OK, "\"\xc3\xa9 x\"@example.com"},
    {"<\xf0\x9f\x98\x80@example.com>", U8, SK_ADDR_OK, "\xf0\x9f\x98\x80@example.com"},
};

static const path_case invalid[] = {
    {"", 0, SK_ADDR_E_SYNTAX, NULL},
    {"a@example.com", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@example.com", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@example.com ", 0, SK_ADDR_E_SYNTAX, NULL},
    {"< a@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@example.com >", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<>", PM, SK_ADDR_E_SYNTAX, NULL},
    {"<postmaster>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<@relay.example:postmaster>", PM, SK_ADDR_E_SYNTAX, NULL},
    {"<a>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<.a@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a.@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a..b@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a b@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a(c)@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a,b@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@b@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@.example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@example..com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@example.com.>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@-example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@example-.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@exa_mple.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[192.0.2]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[192.0.2.256]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[192.0.2.1.5]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[1922.0.2.1]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[192.0.2.1>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[IPv6:2001:db8::g]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[IPv6:192.0.2.1]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[x400:c=us]>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<a@[1.2.3.4]x>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<\"unterminated@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<\"a\x01\"@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<\"a\\\x01\"@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<\"a\"b@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<@relay.example a@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<@relay.example,a@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<@:a@example.com>", 0, SK_ADDR_E_SYNTAX, NULL},
    {"<j\xc3\xb6rg@example.com>", 0, SK_ADDR_E_NEEDS_UTF8, NULL},
    {"<a@\xc3\xa9xample.com>", 0, SK_ADDR_E_NEEDS_UTF8, NULL},
    {"<j\xc3(rg@example.com>", U8, SK_ADDR_E_SYNTAX, NULL},          /* truncated sequence */
    {"<j\xc0\xafrg@example.com>", U8, SK_ADDR_E_SYNTAX, NULL},       /* overlong */
    {"<j\xe0\x80\xafrg@example.com>", U8, SK_ADDR_E_SYNTAX, NULL},   /* overlong */
    {"<j\xed\xa0\x80rg@example.com>", U8, SK_ADDR_E_SYNTAX, NULL},   /* surrogate */
    {"<j\xf4\x90\x80\x80@example.com>", U8, SK_ADDR_E_SYNTAX, NULL}, /* > U+10FFFF */
    {"<j\xff@example.com>", U8, SK_ADDR_E_SYNTAX, NULL},
    {"<j\xc3@example.com>", 0, SK_ADDR_E_SYNTAX, NULL}, /* malformed, no SMTPUTF8 */
};

static void check(const path_case *c)
{
    sk_address a;
    size_t used = 99;
    const char *err = NULL;
    size_t len = strlen(c->in);
    sk_addr_status st = sk_path_parse(c->in, len, c->flags, &a, &used, &err);
    if (st != c->st)
        fail_msg("'%s' flags %u: status %d, expected %d (%s)", c->in, c->flags, st, c->st,
                 err ? err : "");
    if (st == SK_ADDR_OK) {
        assert_int_equal(used, len);
        assert_string_equal(a.mailbox, c->mailbox);
        assert_null(err);
    } else {
        assert_non_null(err);
        assert_true(strlen(err) > 5);
        assert_string_equal(a.mailbox, "");
    }
}

static void test_valid_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        check(&valid[i]);
}

static void test_invalid_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        check(&invalid[i]);
}

static void test_parts_and_flags(void **state)
{
    (void)state;
    sk_address a;
    size_t used;
    const char *err;
    const char *in = "<\"x y\"@[IPv6:2001:db8::1]> SIZE=10";
    assert_int_equal(sk_path_parse(in, strlen(in), 0, &a, &used, &err), SK_ADDR_OK);
    assert_int_equal(used, strlen("<\"x y\"@[IPv6:2001:db8::1]>"));
    assert_int_equal(a.local_len, 5);
    assert_string_equal(a.mailbox + a.domain_off, "[IPv6:2001:db8::1]");
    assert_true(a.quoted_local);
    assert_true(a.literal);
    assert_false(a.utf8);
    assert_false(a.null_path);

    in = "<>";
    assert_int_equal(sk_path_parse(in, 2, NUL, &a, &used, &err), SK_ADDR_OK);
    assert_true(a.null_path);
    assert_int_equal(used, 2);

    in = "<postmaster>";
    assert_int_equal(sk_path_parse(in, strlen(in), PM, &a, &used, &err), SK_ADDR_OK);
    assert_true(a.postmaster);
    assert_string_equal(a.mailbox + a.domain_off, "");

    in = "<\xc3\xa9@example.com>";
    assert_int_equal(sk_path_parse(in, strlen(in), U8, &a, &used, &err), SK_ADDR_OK);
    assert_true(a.utf8);

    /* a NUL byte is never part of an address (the length says where it ends) */
    const char nul[] = "<a\0b@example.com>";
    assert_int_equal(sk_path_parse(nul, sizeof nul - 1, 0, &a, &used, &err), SK_ADDR_E_SYNTAX);
    /* only the given length is read */
    assert_int_equal(sk_path_parse("<a@example.com>", 10, 0, &a, &used, &err), SK_ADDR_E_SYNTAX);
}

static void test_error_messages(void **state)
{
    (void)state;
    sk_address a;
    size_t used;
    const char *err;
    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"a@b", "enclosed in <>"},
        {"<a@example.com", "missing closing '>'"},
        {"<a>", "missing '@domain'"},
        {"<a..b@example.com>", "doubled dot"},
        {"<a@example-.com>", "ends with '-'"},
        {"<a@[192.0.2.256]>", "IPv4"},
        {"<a@[IPv6:zz]>", "IPv6"},
        {"<\xc3\xa9@example.com>", "SMTPUTF8"},
        {"<>", "null address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_path_parse(cases[i].in, strlen(cases[i].in), 0, &a, &used, &err);
        if (!err || !strstr(err, cases[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].in, err ? err : "(null)",
                     cases[i].msg);
    }
}

/* Build "<" local "@" domain ">" with the given lengths. */
static size_t make_path(char *buf, size_t local, size_t domain)
{
    size_t n = 0;
    buf[n++] = '<';
    memset(buf + n, 'l', local);
    n += local;
    buf[n++] = '@';
    /* labels of up to 63 octets separated by dots, never a trailing dot */
    size_t d = 0;
    while (d < domain) {
        size_t rest = domain - d;
        size_t label = rest > 63 ? 63 : rest;
        if (rest > 63 && rest - 63 == 1)
            label = 62;
        memset(buf + n, 'd', label);
        n += label;
        d += label;
        if (d < domain) {
            buf[n++] = '.';
            d++;
        }
    }
    buf[n++] = '>';
    buf[n] = '\0';
    return n;
}

static void test_length_limits(void **state)
{
    (void)state;
    char buf[600];
    sk_address a;
    size_t used;
    const char *err;
    /* local part: 64 octets fine, 65 too long (RFC 5321 4.5.3.1.1) */
    size_t n = make_path(buf, 64, 20);
    assert_int_equal(sk_path_parse(buf, n, 0, &a, &used, &err), SK_ADDR_OK);
    assert_int_equal(a.local_len, 64);
    n = make_path(buf, 65, 20);
    assert_int_equal(sk_path_parse(buf, n, 0, &a, &used, &err), SK_ADDR_E_TOO_LONG);
    assert_non_null(strstr(err, "64"));
    /* path: 256 octets with the brackets fine, 257 too long (4.5.3.1.3) */
    n = make_path(buf, 64, 189);
    assert_int_equal(n, 256);
    assert_int_equal(sk_path_parse(buf, n, 0, &a, &used, &err), SK_ADDR_OK);
    assert_int_equal(strlen(a.mailbox), 254);
    n = make_path(buf, 64, 190);
    assert_int_equal(n, 257);
    assert_int_equal(sk_path_parse(buf, n, 0, &a, &used, &err), SK_ADDR_E_TOO_LONG);
    assert_non_null(strstr(err, "256"));
    /* a source route counts towards the path */
    char routed[600];
    n = make_path(buf, 60, 180);
    assert_int_equal(sk_path_parse(buf, n, 0, &a, &used, &err), SK_ADDR_OK);
    int k = snprintf(routed, sizeof routed, "<@relay.example:%s", buf + 1);
    assert_true(k > 256);
    assert_int_equal(sk_path_parse(routed, (size_t)k, 0, &a, &used, &err), SK_ADDR_E_TOO_LONG);
    /* a label of 63 octets is fine, 64 is not (RFC 1035) */
    memset(buf, 'x', 64);
    memcpy(buf + 64, ".example", 9);
    assert_false(sk_domain_valid(buf, 72, 0));
    assert_true(sk_domain_valid(buf + 1, 71, 0));
    /* domain: 255 octets fine, 256 too long (4.5.3.1.2) */
    char dom[300];
    memset(dom, 'a', sizeof dom);
    dom[63] = dom[127] = dom[191] = dom[253] = '.'; /* labels 63.63.63.61.1 */
    assert_true(sk_domain_valid(dom, 255, 0));
    dom[253] = 'a';
    dom[254] = '.'; /* labels 63.63.63.62.1: 256 octets */
    assert_false(sk_domain_valid(dom, 256, 0));
    assert_false(sk_domain_valid(dom, 255, 0)); /* trailing dot */
}

static void test_mailbox_and_helpers(void **state)
{
    (void)state;
    sk_address a;
    const char *err;
    assert_int_equal(sk_mailbox_parse("a@example.com", 13, 0, &a, &err), SK_ADDR_OK);
    assert_string_equal(a.mailbox, "a@example.com");
    assert_int_equal(sk_mailbox_parse("a@example.com>", 14, 0, &a, &err), SK_ADDR_E_SYNTAX);
    assert_int_equal(sk_mailbox_parse("Some Name", 9, 0, &a, &err), SK_ADDR_E_SYNTAX);
    assert_int_equal(sk_mailbox_parse("", 0, 0, &a, &err), SK_ADDR_E_SYNTAX);

    assert_true(sk_domain_valid("example.com", 11, 0));
    assert_false(sk_domain_valid("example.com.", 12, 0));
    assert_false(sk_domain_valid("", 0, 0));
    assert_false(sk_domain_valid("\xc3\xa9.example", 10, 0));
    assert_true(sk_domain_valid("\xc3\xa9.example", 10, 1));
    assert_true(sk_address_literal_valid("[192.0.2.1]", 11));
    assert_true(sk_address_literal_valid("[IPv6:::1]", 10));
    assert_false(sk_address_literal_valid("192.0.2.1", 9));
    assert_false(sk_address_literal_valid("[192.0.2.1]x", 12));

    static const struct {
        const char *s;
        size_t len, seq;
    } u[] = {
        {"\xc2\x80", 2, 2},
        {"\xdf\xbf", 2, 2},
        {"\xe0\xa0\x80", 3, 3},
        {"\xef\xbf\xbf", 3, 3},
        {"\xf0\x90\x80\x80", 4, 4},
        {"\xf4\x8f\xbf\xbf", 4, 4},
        {"\xc1\xbf", 2, 0},
        {"\xe0\x9f\xbf", 3, 0},
        {"\xed\xa0\x80", 3, 0},
        {"\xf0\x8f\xbf\xbf", 4, 0},
        {"\xf4\x90\x80\x80", 4, 0},
        {"\xf5\x80\x80\x80", 4, 0},
        {"\x80", 1, 0},
        {"\xe2\x82", 2, 0},
        {"\xe2\x28\xa1", 3, 0},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        size_t got = sk_utf8_seq_len((const unsigned char *)u[i].s, u[i].len);
        if (got != u[i].seq)
            fail_msg("utf8 case %zu: got %zu, expected %zu", i, got, u[i].seq);
    }
    assert_true(sk_utf8_valid("plain ascii", 11));
    assert_true(sk_utf8_valid("gr\xc3\xbc\xc3\x9f", 6));
    assert_false(sk_utf8_valid("gr\xc3", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_paths),     cmocka_unit_test(test_invalid_paths),
        cmocka_unit_test(test_parts_and_flags), cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_length_limits),   cmocka_unit_test(test_mailbox_and_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
