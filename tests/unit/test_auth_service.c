/*
 * test_auth_service.c - one AUTH attempt judged (server/auth_service.c):
 * real password-file lookups behind the address and connection budgets,
 * the reply delay, reload keeping the old file on error, and the
 * sender_must_match_login rule (RFC 6409 6.1).
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

#include "server/auth_service.h"

static char dir[64], path[128];

static void write_passwd(const char *user, const char *password)
{
    char hash[256], err[256];
    assert_int_equal(
        sk_passwd_hash(SK_PASSWD_SHA512_CRYPT, 1000, password, hash, sizeof hash, err, sizeof err),
        0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# test\n%s:%s\n", user, hash);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-authsvc-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/passwd", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static sk_auth_service *service(unsigned max_failures, unsigned per_conn)
{
    sk_auth_limit_config lc = {.max_failures = max_failures,
                               .window_seconds = 900,
                               .max_conn_failures = per_conn,
                               .fail_delay_ms = 700};
    char err[256];
    sk_auth_service *svc = sk_auth_service_new(path, &lc, err, sizeof err);
    if (!svc)
        fail_msg("%s", err);
    return svc;
}

static void test_success_and_failure(void **state)
{
    (void)state;
    write_passwd("alice", "wonderland");
    sk_auth_service *svc = service(10, 3);
    assert_int_equal(sk_auth_service_users(svc), 1);
    sk_auth_conn c = {0};
    sk_auth_verdict v = sk_auth_service_check(svc, "192.0.2.1", &c, "alice", "wonderland", 1);
    assert_int_equal(v.result, 1);
    assert_int_equal(v.delay_ms, 0);
    assert_false(v.close);
    assert_string_equal(v.why, "ok");
    assert_int_equal(c.failures, 0);

    v = sk_auth_service_check(svc, "192.0.2.1", &c, "alice", "wrong", 1);
    assert_int_equal(v.result, 0);
    assert_int_equal(v.delay_ms, 700);
    assert_string_equal(v.why, "bad-credentials");
    v = sk_auth_service_check(svc, "192.0.2.1", &c, "nobody", "wonderland", 1);
    assert_int_equal(v.result, 0);
    assert_false(v.close);
    /* Third failure on this connection: close it. */
    v = sk_auth_service_check(svc, "192.0.2.1", &c, "alice", "again", 1);
    assert_int_equal(v.result, 0);
    assert_true(v.close);
    sk_auth_service_free(svc);
}

static void test_blocked_address_is_not_checked(void **state)
{
    (void)state;
    write_passwd("alice", "wonderland");
    sk_auth_service *svc = service(2, 100);
    sk_auth_conn c = {0};
    sk_auth_service_check(svc, "198.51.100.4", &c, "alice", "x", 10);
    sk_auth_service_check(svc, "198.51.100.4", &c, "alice", "y", 10);
    /* Budget spent: even the right password gets 454, not 235. */
    sk_auth_verdict v = sk_auth_service_check(svc, "198.51.100.4", &c, "alice", "wonderland", 10);
    assert_int_equal(v.result, -1);
    assert_string_equal(v.why, "address-blocked");
    assert_int_equal(v.delay_ms, 700);
    assert_int_equal(c.failures, 3);
    /* Another address is unaffected. */
    sk_auth_conn c2 = {0};
    v = sk_auth_service_check(svc, "198.51.100.5", &c2, "alice", "wonderland", 10);
    assert_int_equal(v.result, 1);
    /* After one drain interval (900 s / 2) the right password works again. */
    v = sk_auth_service_check(svc, "198.51.100.4", &c, "alice", "wonderland", 10 + 450);
    assert_int_equal(v.result, 1);
    sk_auth_service_free(svc);
}

static void test_reload_keeps_old_file_on_error(void **state)
{
    (void)state;
    write_passwd("alice", "wonderland");
    sk_auth_service *svc = service(10, 3);
    char err[256];
    write_passwd("bob", "builder");
    assert_int_equal(sk_auth_service_reload(svc, path, err, sizeof err), 0);
    sk_auth_conn c = {0};
    assert_int_equal(sk_auth_service_check(svc, "::1", &c, "bob", "builder", 1).result, 1);
    assert_int_equal(sk_auth_service_check(svc, "::1", &c, "alice", "wonderland", 1).result, 0);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("bob {PLAIN}builder\n", f);
    fclose(f);
    assert_int_equal(sk_auth_service_reload(svc, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: no ':' between user name and password hash"));
    sk_auth_conn c2 = {0};
    assert_int_equal(sk_auth_service_check(svc, "::2", &c2, "bob", "builder", 1).result, 1);
    sk_auth_service_free(svc);

    assert_null(sk_auth_service_new(path, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no ':' between user name and password hash"));
}

/* auth_username_format: "%Lu" finds a lowercase entry whatever case the
 * client typed; the default matches exactly. */
static void test_username_format(void **state)
{
    (void)state;
    write_passwd("alice@example.org", "wonderland");
    sk_auth_service *svc = service(100, 100);
    sk_auth_conn c = {0};
    assert_int_equal(
        sk_auth_service_check(svc, "::1", &c, "Alice@Example.ORG", "wonderland", 1).result, 0);
    assert_int_equal(sk_auth_service_set_username_format(svc, "%Lu"), 0);
    assert_int_equal(
        sk_auth_service_check(svc, "::1", &c, "Alice@Example.ORG", "wonderland", 1).result, 1);
    assert_int_equal(
        sk_auth_service_check(svc, "::1", &c, "Alice@Example.ORG", "Wonderland", 1).result, 0);
    assert_int_equal(sk_auth_service_set_username_format(svc, "%Ln@example.org"), 0);
    assert_int_equal(sk_auth_service_check(svc, "::1", &c, "ALICE", "wonderland", 1).result, 1);
    assert_int_equal(sk_auth_service_set_username_format(svc, NULL), 0);
    assert_int_equal(sk_auth_service_check(svc, "::1", &c, "ALICE", "wonderland", 1).result, 0);
    sk_auth_service_free(svc);
}

/* Without a password file (Dovecot checks): the budgets alone. */
static void test_budgets_without_a_file(void **state)
{
    (void)state;
    sk_auth_limit_config lc = {
        .max_failures = 2, .window_seconds = 900, .max_conn_failures = 5, .fail_delay_ms = 300};
    char err[256];
    sk_auth_service *svc = sk_auth_service_new(NULL, &lc, err, sizeof err);
    assert_non_null(svc);
    assert_null(sk_auth_service_passwd(svc));
    sk_auth_conn c = {0};
    sk_auth_verdict v;
    assert_int_equal(sk_auth_service_blocked(svc, "::1", &c, 1, &v), 0);
    v = sk_auth_service_finish(svc, "::1", &c, 0, 1);
    assert_int_equal(v.result, 0);
    assert_int_equal(v.delay_ms, 300);
    v = sk_auth_service_finish(svc, "::1", &c, 0, 1);
    assert_int_equal(sk_auth_service_blocked(svc, "::1", &c, 1, &v), 1);
    assert_int_equal(v.result, -1);
    assert_string_equal(v.why, "address-blocked");
    assert_int_equal(c.failures, 3);
    sk_auth_service_free(svc);
}

static void test_sender_allowed(void **state)
{
    (void)state;
    char *domains[] = {"example.test", "Example.ORG"};
    /* user names with a domain: the exact address */
    assert_true(sk_auth_sender_allowed("alice@example.test", "alice@example.test", domains, 2));
    assert_true(sk_auth_sender_allowed("alice@example.test", "alice@EXAMPLE.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice@example.test", "Alice@example.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice@example.test", "bob@example.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice@example.test", "alice@example.org", domains, 2));
    assert_false(sk_auth_sender_allowed("alice@example.test", "alice", domains, 2));
    /* bare user names: that local part at any local domain */
    assert_true(sk_auth_sender_allowed("alice", "alice@example.test", domains, 2));
    assert_true(sk_auth_sender_allowed("alice", "alice@example.org", domains, 2));
    assert_false(sk_auth_sender_allowed("alice", "alice@elsewhere.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice", "alicex@example.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice", "ali@example.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice", "@example.test", domains, 2));
    assert_false(sk_auth_sender_allowed("alice", "alice@example.test", domains, 0));
    /* the null reverse-path is allowed */
    assert_true(sk_auth_sender_allowed("alice", "", domains, 2));
    assert_false(sk_auth_sender_allowed(NULL, "alice@example.test", domains, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_and_failure),
        cmocka_unit_test(test_blocked_address_is_not_checked),
        cmocka_unit_test(test_reload_keeps_old_file_on_error),
        cmocka_unit_test(test_username_format),
        cmocka_unit_test(test_budgets_without_a_file),
        cmocka_unit_test(test_sender_allowed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
