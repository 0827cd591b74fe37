/*
 * test_policy.c - unit tests for the recipient tables and relay rule
 * (policy.c) and CIDR matching (cidr.c): local domains, mailboxes, aliases,
 * catch-all, postmaster (RFC 5321 4.5.1), case rules (2.4), relaying only
 * for trusted or authenticated clients, and configuration errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/cidr.h"
#include "smtpkit/config.h"
#include "smtpkit/policy.h"

static char dir[64];
static char path[128];
static char err[1024];
static sk_config *cfg;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-test-policy-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/smtpkit.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sk_config_free(cfg);
    cfg = NULL;
    unlink(path);
    rmdir(dir);
    return 0;
}

#define HEAD                                                                                       \
    "mail_root = \"/m\";\n"                                                                        \
    "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"

/* Load `text` and build its policy (NULL with err set on failure). */
static sk_policy *build(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    sk_config_free(cfg);
    cfg = sk_config_load(path, err, sizeof err);
    if (!cfg)
        fail_msg("config did not load: %s", err);
    return sk_policy_new(cfg, err, sizeof err);
}

static const char *STD =
    HEAD "domains = [ \"example.test\", \"Other.Test\" ];\n"
         "mailboxes = ( { address = \"alice@example.test\"; maildir = \"alice\"; },\n"
         "              { address = \"bob@example.test\"; maildir = \"bob\"; },\n"
         "              { address = \"carol@other.test\"; maildir = \"carol\"; } );\n"
         "aliases = ( { address = \"team@example.test\"; to = [ \"alice@example.test\", "
         "\"bob@example.test\", \"Alice@Example.Test\" ]; },\n"
         "            { address = \"all@example.test\"; to = [ \"team@example.test\", "
         "\"carol@other.test\" ]; } );\n"
         "catch_all = ( { domain = \"other.test\"; to = \"carol@other.test\"; } );\n"
         "trusted_networks = [ \"192.0.2.0/24\", \"2001:db8::/32\" ];\n";

/* Expect `verdict` for addr and, when accepted, exactly the Maildirs given
 * (NULL-terminated, relative to /m). */
static void expect(sk_policy *p, const char *addr, int may_relay, sk_rcpt_verdict verdict, ...)
{
    sk_delivery *d = (sk_delivery *)0x1;
    sk_rcpt_verdict v = sk_policy_rcpt(p, addr, may_relay, &d);
    if (v != verdict)
        fail_msg("%s: verdict %d, want %d", addr, v, verdict);
    if (v != SK_RCPT_ACCEPT && v != SK_RCPT_FORWARD) {
        assert_null(d);
        return;
    }
    assert_non_null(d);
    va_list ap;
    va_start(ap, verdict);
    size_t n = 0, nq = 0;
    const char *want;
    while ((want = va_arg(ap, const char *))) {
        if (!strncmp(want, "queue:", 6)) {
            /* an address for the outbound queue */
            if (nq >= d->nremote)
                fail_msg("%s: only %zu queued addresses, want %s", addr, d->nremote, want + 6);
            assert_string_equal(d->remote[nq], want + 6);
            nq++;
            continue;
        }
        char full[256];
        snprintf(full, sizeof full, want[0] == '/' ? "%s" : "/m/%s", want);
        if (n >= d->nmaildirs)
            fail_msg("%s: only %zu maildirs, want %s", addr, d->nmaildirs, full);
        assert_string_equal(d->maildirs[n], full);
        n++;
    }
    va_end(ap);
    assert_int_equal(d->nmaildirs, n);
    assert_int_equal(d->nremote, nq);
    assert_int_equal(d->queued, nq > 0);
    sk_delivery_free(d);
}

static void test_local_mailboxes(void **state)
{
    (void)state;
    sk_policy *p = build(STD);
    if (!p)
        fail_msg("%s", err);
    expect(p, "alice@example.test", 0, SK_RCPT_ACCEPT, "alice", NULL);
    /* domain and (by default) local part ignore case */
    expect(p, "ALICE@EXAMPLE.TEST", 0, SK_RCPT_ACCEPT, "alice", NULL);
    expect(p, "\"alice\"@example.test", 0, SK_RCPT_ACCEPT, "alice", NULL);
    expect(p, "nobody@example.test", 0, SK_RCPT_UNKNOWN);
    expect(p, "alice@example.test.evil", 0, SK_RCPT_RELAY_DENIED);
    assert_int_equal(sk_policy_ndomains(p), 2);
    assert_int_equal(sk_policy_nmailboxes(p), 3);
    assert_int_equal(sk_policy_naliases(p), 2);
    assert_true(sk_policy_is_local_domain(p, "OTHER.test"));
    assert_false(sk_policy_is_local_domain(p, "test"));
    sk_policy_free(p);
}

static void test_aliases_expand_without_duplicates(void **state)
{
    (void)state;
    sk_policy *p = build(STD);
    if (!p)
        fail_msg("%s", err);
    expect(p, "team@example.test", 0, SK_RCPT_ACCEPT, "alice", "bob", NULL);
    expect(p, "all@example.test", 0, SK_RCPT_ACCEPT, "alice", "bob", "carol", NULL);
    sk_policy_free(p);
}

static void test_catch_all(void **state)
{
    (void)state;
    sk_policy *p = build(STD);
    if (!p)
        fail_msg("%s", err);
    expect(p, "anything@other.test", 0, SK_RCPT_ACCEPT, "carol", NULL);
    expect(p, "anything@example.test", 0, SK_RCPT_UNKNOWN);
    sk_policy_free(p);
}

static void test_postmaster(void **state)
{
    (void)state;
    sk_policy *p = build(STD);
    if (!p)
        fail_msg("%s", err);
    /* default postmaster: the first mailbox */
    expect(p, "postmaster", 0, SK_RCPT_ACCEPT, "alice", NULL);
    expect(p, "PostMaster", 0, SK_RCPT_ACCEPT, "alice", NULL);
    expect(p, "postmaster@example.test", 0, SK_RCPT_ACCEPT, "alice", NULL);
    expect(p, "POSTMASTER@other.test", 0, SK_RCPT_ACCEPT, "alice", NULL);
    expect(p, "postmaster@elsewhere.test", 0, SK_RCPT_RELAY_DENIED);
    expect(p, "alice", 0, SK_RCPT_UNKNOWN); /* only postmaster goes without domain */
    sk_policy_free(p);

    /* configured postmaster, and an explicit postmaster alias wins */
    p = build(HEAD "domains = [ \"a.test\", \"b.test\" ];\n"
                   "mailboxes = ( { address = \"x@a.test\"; maildir = \"x\"; },\n"
                   "              { address = \"y@a.test\"; maildir = \"y\"; } );\n"
                   "aliases = ( { address = \"postmaster@b.test\"; to = \"x@a.test\"; } );\n"
                   "postmaster = \"y@a.test\";\n");
    if (!p)
        fail_msg("%s", err);
    expect(p, "postmaster", 0, SK_RCPT_ACCEPT, "y", NULL);
    expect(p, "postmaster@a.test", 0, SK_RCPT_ACCEPT, "y", NULL);
    expect(p, "postmaster@b.test", 0, SK_RCPT_ACCEPT, "x", NULL);
    sk_policy_free(p);
}

static void test_case_sensitive_local_parts(void **state)
{
    (void)state;
    sk_policy *p =
        build(HEAD "local_part_case_sensitive = true;\n"
                   "domains = [ \"a.test\" ];\n"
                   "mailboxes = ( { address = \"Bob@a.test\"; maildir = \"bob\"; } );\n");
    if (!p)
        fail_msg("%s", err);
    expect(p, "Bob@A.TEST", 0, SK_RCPT_ACCEPT, "bob", NULL);
    expect(p, "bob@a.test", 0, SK_RCPT_UNKNOWN);
    /* postmaster stays case-insensitive (RFC 5321 4.5.1) */
    expect(p, "POSTMASTER@a.test", 0, SK_RCPT_ACCEPT, "bob", NULL);
    sk_policy_free(p);
}

static void test_relay_rule(void **state)
{
    (void)state;
    sk_policy *p = build(STD);
    if (!p)
        fail_msg("%s", err);
    /* without a relay queue nobody relays, trusted or not */
    expect(p, "x@remote.test", 0, SK_RCPT_RELAY_DENIED);
    expect(p, "x@remote.test", 1, SK_RCPT_RELAY_DENIED);
    assert_true(sk_policy_trusted(p, "192.0.2.77"));
    assert_true(sk_policy_trusted(p, "::ffff:192.0.2.1"));
    assert_true(sk_policy_trusted(p, "2001:db8:ffff::1"));
    assert_false(sk_policy_trusted(p, "192.0.3.1"));
    assert_false(sk_policy_trusted(p, "2001:db9::1"));
    assert_false(sk_policy_trusted(p, "not-an-address"));
    sk_policy_free(p);

    p = build(HEAD "relay_queue = \"/q\";\n"
                   "domains = [ \"a.test\" ];\n"
                   "mailboxes = ( { address = \"x@a.test\"; maildir = \"x\"; } );\n");
    if (!p)
        fail_msg("%s", err);
    expect(p, "someone@remote.test", 0, SK_RCPT_RELAY_DENIED);
    /* relayed: the address itself goes to the outbound queue, as written */
    expect(p, "someone@remote.test", 1, SK_RCPT_ACCEPT, "queue:someone@remote.test", NULL);
    expect(p, "Someone@Remote.Test", 1, SK_RCPT_ACCEPT, "queue:Someone@Remote.Test", NULL);
    /* the queue is not a Maildir to create */
    assert_int_equal(sk_policy_nmaildirs(p), 1);
    assert_string_equal(sk_policy_maildir(p, 0), "/m/x");
    expect(p, "nobody@a.test", 1, SK_RCPT_UNKNOWN); /* relay rights do not invent users */
    sk_policy_free(p);
}

static void test_forwarding_alias(void **state)
{
    (void)state;
    /* without a relay queue, forwarding elsewhere is a configuration error */
    assert_null(build(HEAD
                      "domains = [ \"a.test\" ];\n"
                      "mailboxes = ( { address = \"x@a.test\"; maildir = \"x\"; } );\n"
                      "aliases = (\n { address = \"f@a.test\"; to = \"f@remote.test\"; } );\n"));
    assert_non_null(strstr(err, ":6: alias f@a.test forwards to f@remote.test"));
    assert_non_null(strstr(err, "relay_queue"));

#define FWD_CONF(extra)                                                                            \
    HEAD "relay_queue = \"/q\";\n" extra "domains = [ \"a.test\" ];\n"                             \
         "mailboxes = ( { address = \"x@a.test\"; maildir = \"x\"; } );\n"                         \
         "aliases = ( { address = \"f@a.test\"; to = [ \"x@a.test\", \"f@remote.test\" ]; } );\n"
    char text[1024];
    snprintf(text, sizeof text, "%s", FWD_CONF(""));
    sk_policy *p = build(text);
    if (!p)
        fail_msg("%s", err);
    expect(p, "f@a.test", 0, SK_RCPT_ACCEPT, "x", "queue:f@remote.test", NULL);
    sk_policy_free(p);

    snprintf(text, sizeof text, "%s", FWD_CONF("forward_notify = true;\n"));
    p = build(text);
    if (!p)
        fail_msg("%s", err);
    expect(p, "f@a.test", 0, SK_RCPT_FORWARD, "x", "queue:f@remote.test", NULL);
    sk_delivery *d;
    assert_int_equal(sk_policy_rcpt(p, "f@a.test", 0, &d), SK_RCPT_FORWARD);
    assert_string_equal(d->forward_to, "f@remote.test");
    assert_true(d->queued);
    sk_delivery_free(d);
    sk_policy_free(p);

    /* an alias to two remote addresses (and through another alias), and a
     * catch-all that forwards: every remote address is named, once */
    p = build(
        HEAD "relay_queue = \"/q\";\n"
             "domains = [ \"a.test\", \"b.test\" ];\n"
             "mailboxes = ( { address = \"x@a.test\"; maildir = \"x\"; } );\n"
             "aliases = ( { address = \"two@a.test\"; to = [ \"p@far.test\", \"q@far.test\" ]; },\n"
             " { address = \"both@a.test\"; to = [ \"two@a.test\", \"p@far.test\", \"x@a.test\" ]; "
             "} );\n"
             "catch_all = ( { domain = \"b.test\"; to = \"r@far.test\"; } );\n");
    if (!p)
        fail_msg("%s", err);
    expect(p, "two@a.test", 0, SK_RCPT_ACCEPT, "queue:p@far.test", "queue:q@far.test", NULL);
    expect(p, "both@a.test", 0, SK_RCPT_ACCEPT, "x", "queue:p@far.test", "queue:q@far.test", NULL);
    expect(p, "anyone@b.test", 0, SK_RCPT_ACCEPT, "queue:r@far.test", NULL);
    sk_policy_free(p);
}

static void test_config_errors(void **state)
{
    (void)state;
    assert_null(build(HEAD "domains = [ \"a.test\" ];\n"
                           "mailboxes = ( { address = \"x@a.test\"; } );\n"
                           "aliases = (\n { address = \"l1@a.test\"; to = \"l2@a.test\"; },\n"
                           "            { address = \"l2@a.test\"; to = \"l1@a.test\"; } );\n"));
    assert_non_null(strstr(err, "alias loop"));

    assert_null(build(HEAD
                      "domains = [ \"a.test\" ];\n"
                      "mailboxes = ( { address = \"x@a.test\"; } );\n"
                      "aliases = (\n { address = \"l1@a.test\"; to = \"ghost@a.test\"; } );\n"));
    assert_non_null(strstr(err, ":6: alias l1@a.test: 'ghost@a.test' is not a configured"));

    assert_null(build(HEAD "domains = [ \"a.test\" ];\n"
                           "mailboxes = ( { address = \"x@a.test\"; },\n"
                           " { address = \"X@a.test\"; } );\n"));
    assert_non_null(strstr(err, ":5: x@a.test is defined twice (lines 4 and 5)"));

    assert_null(build(HEAD "domains = [ \"a.test\" ];\n"));
    assert_non_null(strstr(err, "postmaster"));

    assert_null(build(HEAD "domains = [ \"a.test\" ];\n"
                           "mailboxes = ( { address = \"x@a.test\"; } );\n"
                           "trusted_networks = [ \"10.0.0.1/8\" ];\n"));
    assert_non_null(strstr(err, ":5: trusted_networks: '10.0.0.1/8': address has bits set"));
}

static void test_cidr(void **state)
{
    (void)state;
    sk_cidr n;
    const char *why;
    assert_int_equal(sk_cidr_parse("10.0.0.0/8", &n, &why), 0);
    assert_true(sk_cidr_match(&n, "10.255.1.2"));
    assert_false(sk_cidr_match(&n, "11.0.0.0"));
    assert_false(sk_cidr_match(&n, "::1"));
    assert_int_equal(sk_cidr_parse("127.0.0.1", &n, &why), 0);
    assert_int_equal(n.prefix, 32);
    assert_true(sk_cidr_match(&n, "127.0.0.1"));
    assert_false(sk_cidr_match(&n, "127.0.0.2"));
    assert_int_equal(sk_cidr_parse("0.0.0.0/0", &n, &why), 0);
    assert_true(sk_cidr_match(&n, "203.0.113.9"));
    assert_int_equal(sk_cidr_parse("::1", &n, &why), 0);
    assert_true(sk_cidr_match(&n, "::1"));
    assert_false(sk_cidr_match(&n, "::2"));
    assert_int_equal(sk_cidr_parse("2001:db8:8000::/33", &n, &why), 0);
    assert_true(sk_cidr_match(&n, "2001:db8:ffff::1"));
    assert_false(sk_cidr_match(&n, "2001:db8:7fff::1"));
    assert_int_equal(sk_cidr_parse("10.0.0.0/33", &n, &why), -1);
    assert_int_equal(sk_cidr_parse("10.0.0.0/", &n, &why), -1);
    assert_int_equal(sk_cidr_parse("10.0.0.0/x", &n, &why), -1);
    assert_int_equal(sk_cidr_parse("example.test", &n, &why), -1);
    assert_int_equal(sk_cidr_parse("::/129", &n, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_mailboxes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliases_expand_without_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postmaster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_case_sensitive_local_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forwarding_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
