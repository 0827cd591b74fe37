/*
 * test_config_ops.c - the loader's settings for running in production:
 * the PROXY protocol (listener proxy_protocol, proxy_networks,
 * proxy_timeout), the pid file, the log targets, with their FILE:LINE
 * errors.
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

#define HEAD "server_name = \"mx.example.test\";\nmail_root = \"m\";\n"

static void test_proxy_defaults_off(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].proxy_protocol, 0);
    assert_int_equal(c->nproxy_networks, 0);
    assert_int_equal(c->proxy_timeout, 10);
    sk_config_free(c);
}

static void test_proxy_settings(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = (\n"
                                  " { address = \"127.0.0.1\"; port = 2525; },\n"
                                  " { address = \"::1\"; port = 2526; proxy_protocol = true; }\n"
                                  ");\n"
                                  "proxy_networks = [ \"127.0.0.0/8\", \"2001:db8::/32\" ];\n"
                                  "proxy_timeout = 3;\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].proxy_protocol, 0);
    assert_int_equal(c->listeners[1].proxy_protocol, 1);
    assert_int_equal(c->nproxy_networks, 2);
    assert_string_equal(c->proxy_networks[1], "2001:db8::/32");
    assert_int_equal(c->proxy_timeout, 3);
    sk_config_free(c);
}

static void test_proxy_errors(void **state)
{
    (void)state;
    /* a proxy listener without trusted proxies would trust nobody */
    assert_null(load_text(HEAD "listeners = (\n"
                               " { address = \"127.0.0.1\"; port = 2525; proxy_protocol = true; }\n"
                               ");\n"));
    assert_error_at(4, "proxy_protocol needs proxy_networks");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "proxy_networks = [ \"127.0.0.1/24\" ];\n"));
    assert_error_at(4, "proxy_networks: '127.0.0.1/24'");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "proxy_networks = [ \"haproxy.local\" ];\n"));
    assert_error_at(4, "proxy_networks: 'haproxy.local'");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "proxy_timeout = 0;\n"));
    assert_error_at(4, "proxy_timeout");
    assert_null(load_text(HEAD
                          "listeners = ( { address = \"127.0.0.1\"; port = 2525; "
                          "proxy_protocol = \"yes\"; } );\nproxy_networks = \"127.0.0.1\";\n"));
    assert_error_at(3, "'proxy_protocol' must be true or false");
}

static void test_pid_file(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n");
    assert_non_null(c);
    assert_null(c->pid_file);
    sk_config_free(c);
    /* relative to the file's directory, like every path */
    c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                       "pid_file = \"run/smtpkit.pid\";\n");
    assert_non_null(c);
    char want[256];
    snprintf(want, sizeof want, "%s/run/smtpkit.pid", dir);
    assert_string_equal(c->pid_file, want);
    sk_config_free(c);
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "pid_file = 1;\n"));
    assert_error_at(4, "'pid_file' must be a string");
}

static void test_log_targets(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                                  "log = \"./logs/smtpkit.log\";\n");
    assert_non_null(c);
    assert_int_equal(c->log_target, SK_LOG_FILE);
    char want[256];
    snprintf(want, sizeof want, "%s/logs/smtpkit.log", dir);
    assert_string_equal(c->log_file, want);
    sk_config_free(c);
    c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                       "log = \"/var/log/smtpkit.log\";\n");
    assert_non_null(c);
    assert_string_equal(c->log_file, "/var/log/smtpkit.log");
    sk_config_free(c);
    c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                       "log = \"journal\";\n");
#ifdef SK_HAVE_LIBSYSTEMD
    assert_non_null(c);
    assert_int_equal(c->log_target, SK_LOG_JOURNAL);
    assert_null(c->log_file);
    sk_config_free(c);
#else
    assert_null(c);
    assert_error_at(4, "built without libsystemd");
#endif
    /* a bare word is neither a target nor (to catch typos) a path */
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "log = \"jounral\";\n"));
    assert_error_at(4, "use \"stderr\" or \"syslog\" (or \"journal\", or a file path");
}

static void test_metrics_address(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n");
    assert_non_null(c);
    assert_null(c->metrics_address); /* off unless set */
    sk_config_free(c);
    c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                       "metrics = \"127.0.0.1:9325\";\n");
    assert_non_null(c);
    assert_string_equal(c->metrics_address, "127.0.0.1");
    assert_int_equal(c->metrics_port, 9325);
    sk_config_free(c);
    c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                       "metrics = \"[::1]:9325\";\n");
    assert_non_null(c);
    assert_string_equal(c->metrics_address, "::1");
    sk_config_free(c);
    static const char *const bad[] = {
        "localhost:9325",  "127.0.0.1",     "127.0.0.1:", "127.0.0.1:0",
        "127.0.0.1:65536", "127.0.0.1:93x", "::1:9325",   "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                      "metrics = \"%s\";\n",
                 bad[i]);
        assert_null(load_text(text));
        assert_error_at(4, "metrics: use \"ADDRESS:PORT\"");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proxy_defaults_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pid_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_address, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
