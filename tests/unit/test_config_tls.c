/*
 * test_config_tls.c - the TLS and AUTH settings of smtpkit.conf
 * (config.c): defaults, relative paths, per-listener policies (MX with
 * STARTTLS, submission with STARTTLS + AUTH, implicit TLS per RFC 8314),
 * and the combinations refused with "FILE:LINE: message".
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

#include "config_fixture.h"

#define HEAD "mail_root = \"m\";\n"
#define TLS_FILES "tls_certificate = \"tls/cert.pem\";\ntls_key = \"tls/key.pem\";\n"

static void test_defaults_without_tls(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n");
    if (!c)
        fail_msg("%s", err);
    assert_null(c->tls_certificate);
    assert_null(c->passwd_file);
    assert_int_equal(c->tls_min_version, 12);
    assert_false(c->tls_generate_if_missing);
    assert_false(c->sender_must_match_login);
    assert_int_equal(c->auth_failures, 10);
    assert_int_equal(c->auth_failure_window, 900);
    assert_int_equal(c->auth_failures_per_connection, 3);
    assert_int_equal(c->auth_failure_delay_ms, 1000);
    sk_config_free(c);
}

static void test_three_listener_policies(void **state)
{
    (void)state;
    sk_config *c = load_text(
        HEAD TLS_FILES "tls_generate_if_missing = true;\n"
                       "tls_min_version = \"TLSv1.3\";\n"
                       "passwd_file = \"passwd\";\n"
                       "sender_must_match_login = true;\n"
                       "limits = { auth_failures = 5; auth_failure_window = 60; "
                       "auth_failures_per_connection = 2; auth_failure_delay_ms = 0; };\n"
                       "listeners = (\n"
                       " { address = \"127.0.0.1\"; port = 2525; starttls = true; auth = true; },\n"
                       " { address = \"127.0.0.1\"; port = 2587; starttls = true; auth = true; "
                       "mail_requires_auth = true; },\n"
                       " { address = \"127.0.0.1\"; port = 2465; implicit_tls = true; auth = true; "
                       "mail_requires_auth = true; } );\n");
    if (!c)
        fail_msg("%s", err);
    char want[256];
    snprintf(want, sizeof want, "%s/tls/cert.pem", dir);
    assert_string_equal(c->tls_certificate, want);
    snprintf(want, sizeof want, "%s/tls/key.pem", dir);
    assert_string_equal(c->tls_key, want);
    snprintf(want, sizeof want, "%s/passwd", dir);
    assert_string_equal(c->passwd_file, want);
    assert_true(c->tls_generate_if_missing);
    assert_int_equal(c->tls_min_version, 13);
    assert_true(c->sender_must_match_login);
    assert_int_equal(c->auth_failures, 5);
    assert_int_equal(c->auth_failure_window, 60);
    assert_int_equal(c->auth_failures_per_connection, 2);
    assert_int_equal(c->auth_failure_delay_ms, 0);
    assert_int_equal(c->nlisteners, 3);
    const sk_session_config *mx = &c->listeners[0].session, *sub = &c->listeners[1].session,
                            *smtps = &c->listeners[2].session;
    assert_true(mx->starttls_offered && mx->auth_offered && mx->auth_requires_tls);
    assert_false(mx->mail_requires_auth || mx->implicit_tls);
    assert_true(sub->starttls_offered && sub->mail_requires_auth && sub->auth_requires_tls);
    assert_true(smtps->implicit_tls && smtps->mail_requires_auth);
    assert_false(smtps->starttls_offered);
    sk_config_free(c);
}

static void test_refused_combinations(void **state)
{
    (void)state;
    assert_null(load_text(HEAD "listeners = (\n { address = \"::1\"; port = 25; starttls = true; "
                               "} );\n"));
    assert_error_at(3, "uses TLS but tls_certificate and tls_key are not set");

    assert_null(load_text(HEAD TLS_FILES "listeners = (\n { address = \"::1\"; port = 25; "
                                         "starttls = true; auth = true; } );\n"));
    assert_error_at(5, "offers AUTH but neither passwd_file nor dovecot_auth is set");

    assert_null(load_text(HEAD TLS_FILES "listeners = (\n { address = \"::1\"; port = 465; "
                                         "starttls = true; implicit_tls = true; } );\n"));
    assert_error_at(5, "exclude each other");

    assert_null(load_text(HEAD "passwd_file = \"p\";\nlisteners = (\n { address = \"::1\"; "
                               "port = 587; auth = true; } );\n"));
    assert_error_at(4, "offers neither starttls nor implicit_tls");

    /* AUTH over plain text only when asked for explicitly. */
    sk_config *c = load_text(HEAD "passwd_file = \"p\";\nlisteners = (\n { address = \"::1\"; "
                                  "port = 587; auth = true; auth_requires_tls = false; } );\n");
    if (!c)
        fail_msg("%s", err);
    sk_config_free(c);

    assert_null(load_text(HEAD "tls_certificate = \"c.pem\";\nlisteners = ( { address = "
                               "\"::1\"; port = 25; } );\n"));
    assert_error_at(2, "tls_certificate and tls_key go together");

    assert_null(load_text(HEAD TLS_FILES "tls_min_version = \"TLSv1.1\";\nlisteners = ( { "
                                         "address = \"::1\"; port = 25; } );\n"));
    assert_error_at(4, "use \"TLSv1.2\" or \"TLSv1.3\"");

    assert_null(load_text(HEAD "limits = { auth_failures = 0; };\nlisteners = ( { address = "
                               "\"::1\"; port = 25; } );\n"));
    assert_error_at(2, "auth_failures");

    assert_null(load_text(HEAD "tls_cert = \"x\";\nlisteners = ( { address = \"::1\"; port = "
                               "25; } );\n"));
    assert_error_at(2, "unknown setting 'tls_cert'");
}

/* dovecot_auth instead of passwd_file, never both; auth_username_format
 * checked at load. */
static void test_dovecot_auth_and_username_format(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD TLS_FILES "dovecot_auth = \"/run/dovecot/auth-client\";\n"
                                            "listeners = (\n { address = \"::1\"; port = 587; "
                                            "starttls = true; auth = true; } );\n");
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->dovecot_auth, "/run/dovecot/auth-client");
    assert_null(c->passwd_file);
    assert_null(c->auth_username_format);
    sk_config_free(c);

    assert_null(load_text(HEAD "passwd_file = \"p\";\ndovecot_auth = \"/run/a\";\n"
                               "listeners = ( { address = \"::1\"; port = 25; } );\n"));
    assert_error_at(3, "passwd_file and dovecot_auth both set");

    c = load_text(HEAD "passwd_file = \"p\";\nauth_username_format = \"%Ln@%Ld\";\n"
                       "listeners = ( { address = \"::1\"; port = 25; } );\n");
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->auth_username_format, "%Ln@%Ld");
    sk_config_free(c);

    assert_null(load_text(HEAD "passwd_file = \"p\";\nauth_username_format = \"%x\";\n"
                               "listeners = ( { address = \"::1\"; port = 25; } );\n"));
    assert_error_at(3, "auth_username_format: use %u, %n, %d");

    assert_null(load_text(HEAD "dovecot_auth = \"/run/a\";\nauth_username_format = \"%Lu\";\n"
                               "listeners = ( { address = \"::1\"; port = 25; } );\n"));
    assert_error_at(3, "auth_username_format is for passwd_file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_tls),
        cmocka_unit_test(test_three_listener_policies),
        cmocka_unit_test(test_refused_combinations),
        cmocka_unit_test(test_dovecot_auth_and_username_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
