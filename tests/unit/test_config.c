/*
 * test_config.c - unit tests for the configuration loader (config.c):
 * defaults, path resolution, the RFC 5321 minima, and "FILE:LINE: message"
 * errors for bad files.
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

#define BASE                                                                                       \
    "server_name = \"mx.example.test\";\n"                                                         \
    "mail_root = \"../var/mail\";\n"                                                               \
    "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"

static void test_minimal_defaults(void **state)
{
    (void)state;
    sk_config *c = load_text(BASE);
    if (!c)
        fail_msg("load failed: %s", err);
    assert_string_equal(c->server_name, "mx.example.test");
    assert_int_equal(c->max_message_size, 10 * 1024 * 1024);
    assert_int_equal(c->max_recipients, 100);
    assert_int_equal(c->max_line, 512);
    assert_int_equal(c->max_errors, 20); /* Postfix hard_error_limit: unknown users count */
    assert_int_equal(c->command_timeout, 300);
    assert_int_equal(c->data_timeout, 180);
    assert_int_equal(c->command_deadline, 300);
    assert_int_equal(c->message_deadline, 3600);
    assert_int_equal(c->bare_policy, SK_BARE_REJECT);
    assert_int_equal(c->log_target, SK_LOG_STDERR);
    assert_null(c->user);
    assert_null(c->relay_queue);
    assert_int_equal(c->nlisteners, 1);
    assert_string_equal(c->listeners[0].address, "127.0.0.1");
    assert_int_equal(c->listeners[0].port, 2525);
    /* limits are copied into each listener's session settings */
    assert_string_equal(c->listeners[0].session.hostname, "mx.example.test");
    assert_int_equal(c->listeners[0].session.max_recipients, 100);
    assert_int_equal(c->listeners[0].session.starttls_offered, 0);
    assert_int_equal(c->listeners[0].session.auth_requires_tls, 1);

    /* "../var/mail" is taken against the file's directory and normalised */
    char want[256];
    const char *slash = strrchr(dir, '/');
    snprintf(want, sizeof want, "%.*s/var/mail", (int)(slash - dir), dir);
    assert_string_equal(c->mail_root, want);
    char spool[300];
    snprintf(spool, sizeof spool, "%s/.spool", want);
    assert_string_equal(c->spool_dir, spool);
    sk_config_free(c);
}

static void test_full_file(void **state)
{
    (void)state;
    sk_config *c =
        load_text("server_name = \"MX.Example.test\";\n"
                  "user = \"nobody\";\n"
                  "mail_root = \"/srv/mail\";\n"
                  "relay_queue = \"queue\";\n"
                  "log = \"syslog\";\n"
                  "bare_lf = \"normalise\";\n"
                  "limits = { message_size = 1048576; recipients = 250; line_length = 1000;\n"
                  "           errors = 3; connections = 5; connections_per_ip = 2;\n"
                  "           command_timeout = 7; data_timeout = 8;\n"
                  "           command_deadline = 0; message_deadline = 9; };\n"
                  "listeners = ( { address = \"127.0.0.1\"; port = 25; },\n"
                  "              { address = \"[::1]\"; port = 25; } );\n"
                  "domains = [ \"Example.TEST\", \"other.test\" ];\n"
                  "mailboxes = ( { address = \"Alice@EXAMPLE.test\"; maildir = \"alice\"; },\n"
                  "              { address = \"bob@other.test\"; } );\n"
                  "aliases = ( { address = \"info@example.test\"; to = \"alice@example.test\"; },\n"
                  "            { address = \"team@example.test\"; to = [ \"alice@example.test\", "
                  "\"bob@other.test\" ]; } );\n"
                  "catch_all = ( { domain = \"other.test\"; to = \"bob@other.test\"; } );\n"
                  "trusted_networks = [ \"10.0.0.0/8\", \"2001:db8::/32\" ];\n");
    if (!c)
        fail_msg("load failed: %s", err);
    assert_string_equal(c->user, "nobody");
    assert_string_equal(c->mail_root, "/srv/mail");
    char q[256];
    snprintf(q, sizeof q, "%s/queue", dir);
    assert_string_equal(c->relay_queue, q);
    assert_int_equal(c->log_target, SK_LOG_SYSLOG);
    assert_int_equal(c->bare_policy, SK_BARE_NORMALISE);
    assert_int_equal(c->max_message_size, 1048576);
    assert_int_equal(c->max_recipients, 250);
    assert_int_equal(c->listeners[1].session.max_line, 1000);
    assert_int_equal(c->max_connections_per_ip, 2);
    assert_int_equal(c->command_timeout, 7);
    assert_int_equal(c->command_deadline, 0); /* 0: off */
    assert_int_equal(c->message_deadline, 9);
    assert_string_equal(c->listeners[1].address, "::1");
    assert_int_equal(c->ndomains, 2);
    assert_string_equal(c->domains[0], "example.test"); /* lower-cased */
    assert_int_equal(c->nmailboxes, 2);
    assert_string_equal(c->mailboxes[0].maildir, "/srv/mail/alice");
    assert_string_equal(c->mailboxes[1].maildir, "/srv/mail/other.test/bob");
    assert_int_equal(c->mailboxes[0].line, 14);
    assert_int_equal(c->naliases, 2);
    assert_int_equal(c->aliases[0].ntargets, 1);
    assert_int_equal(c->aliases[1].ntargets, 2);
    assert_string_equal(c->aliases[1].targets[1], "bob@other.test");
    assert_int_equal(c->ncatchalls, 1);
    assert_int_equal(c->ntrusted, 2);
    sk_config_free(c);
}

static void test_lmtp_settings(void **state)
{
    (void)state;
    sk_config *c = load_text(BASE);
    assert_non_null(c);
    assert_null(c->lmtp); /* Maildirs */
    assert_int_equal(c->lmtp_connections, 10);
    sk_config_free(c);
    c = load_text(BASE "lmtp = \"unix:/run/dovecot/lmtp\";\nlmtp_connections = 3;\n");
    if (!c)
        fail_msg("load failed: %s", err);
    assert_string_equal(c->lmtp, "unix:/run/dovecot/lmtp");
    assert_int_equal(c->lmtp_connections, 3);
    sk_config_free(c);
    c = load_text(BASE "lmtp = \"[::1]:24\";\n");
    assert_non_null(c);
    sk_config_free(c);
    assert_null(load_text(BASE "lmtp = \"127.0.0.1\";\n"));
    assert_error_at(4, "LMTP target \"127.0.0.1\"");
    assert_null(load_text(BASE "lmtp = \"unix:run/lmtp\";\n"));
    assert_error_at(4, "absolute socket path");
    assert_null(load_text(BASE "lmtp_connections = 0;\n"));
    assert_error_at(4, "'lmtp_connections' = 0 is out of range (1..");
}

static void test_syntax_error_has_line(void **state)
{
    (void)state;
    assert_null(load_text(BASE "domains = [ \"a.test\" \n\nmailboxes = 3;\n"));
    /* libconfig reports the line where it noticed the problem */
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:", path);
    assert_true(!strncmp(err, prefix, strlen(prefix)));
    assert_true(strstr(err, ":6:") != NULL || strstr(err, ":4:") != NULL);
}

static void test_unknown_setting(void **state)
{
    (void)state;
    assert_null(load_text(BASE "max_recipient = 100;\n"));
    assert_error_at(4, "unknown setting 'max_recipient'");
    assert_null(load_text(BASE "limits = {\n  recipient = 100;\n};\n"));
    assert_error_at(5, "unknown setting 'recipient' in limits");
}

static void test_rfc_minima(void **state)
{
    (void)state;
    assert_null(load_text(BASE "limits = { recipients = 99; };\n"));
    assert_error_at(4, "'recipients' = 99 is out of range (100..");
    assert_null(load_text(BASE "limits = {\n line_length = 511; };\n"));
    assert_error_at(5, "'line_length' = 511 is out of range (512..");
}

static void test_wrong_types(void **state)
{
    (void)state;
    assert_null(load_text("mail_root = \"m\";\nlisteners = ( { address = \"127.0.0.1\"; "
                          "port = \"25\"; } );\n"));
    assert_error_at(2, "'port' must be an integer, not a string");
    assert_null(load_text(BASE "forward_notify = \"yes\";\n"));
    assert_error_at(4, "'forward_notify' must be true or false");
    assert_null(load_text(BASE "log = \"file\";\n"));
    assert_error_at(4, "use \"stderr\" or \"syslog\"");
}

static void test_required(void **state)
{
    (void)state;
    assert_null(load_text("listeners = ( { address = \"127.0.0.1\"; port = 25; } );\n"));
    assert_non_null(strstr(err, "'mail_root' is required"));
    assert_null(load_text("mail_root = \"m\";\n"));
    assert_non_null(strstr(err, "'listeners' is required"));
    assert_null(load_text("mail_root = \"m\";\nlisteners = ();\n"));
    assert_error_at(2, "nothing to listen on");
}

static void test_listener_errors(void **state)
{
    (void)state;
    assert_null(load_text("mail_root = \"m\";\nlisteners = (\n { address = \"localhost\"; port "
                          "= 25; } );\n"));
    assert_error_at(3, "not a numeric IPv4 or IPv6 address");
    assert_null(load_text("mail_root = \"m\";\nlisteners = (\n { address = \"::1\"; port = 25; "
                          "},\n { address = \"[::1]\"; port = 25; } );\n"));
    assert_error_at(4, "defined twice (first on line 3)");
    assert_null(load_text("mail_root = \"m\";\nlisteners = (\n { address = \"::1\"; port = "
                          "70000; } );\n"));
    assert_error_at(3, "out of range (1..65535)");
    assert_null(load_text("mail_root = \"m\";\nlisteners = (\n { address = \"::1\"; port = 25; "
                          "starttls = true; } );\n"));
    assert_error_at(3, "TLS");
    assert_null(load_text("mail_root = \"m\";\nlisteners = (\n { address = \"::1\"; port = 587; "
                          "mail_requires_auth = true; } );\n"));
    assert_error_at(3, "AUTH");
}

static void test_table_errors(void **state)
{
    (void)state;
    assert_null(load_text(BASE "domains = [ \"example.test\" ];\nmailboxes = (\n { address = "
                               "\"a@other.test\"; } );\n"));
    assert_error_at(6, "domain 'other.test' is not in 'domains'");
    assert_null(load_text(BASE "domains = [ \"exa mple.test\" ];\n"));
    assert_error_at(4, "not a valid domain name");
    assert_null(load_text(BASE "domains = [ \"example.test\" ];\naliases = (\n { address = "
                               "\"a@example.test\"; to = [ \"nope\" ]; } );\n"));
    assert_error_at(6, "target 'nope' is not local@domain");
    assert_null(load_text(BASE "domains = [ \"example.test\" ];\nmailboxes = (\n { address = "
                               "\"a@example.test\"; maildir = 5; } );\n"));
    assert_error_at(6, "'maildir' must be a string");
}

static void test_received_headers(void **state)
{
    (void)state;
    sk_config *c = load_text(BASE);
    assert_non_null(c);
    assert_int_equal(c->max_received_headers, 50);
    assert_int_equal(c->listeners[0].session.max_received_headers, 50);
    sk_config_free(c);
    c = load_text(BASE "limits = { received_headers = 120; };\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].session.max_received_headers, 120);
    sk_config_free(c);
    assert_null(load_text(BASE "limits = { received_headers = 0; };\n"));
    assert_error_at(4, "'received_headers' = 0 is out of range (1..");
}

static void test_delivery_defaults(void **state)
{
    (void)state;
    sk_config *c = load_text(BASE);
    assert_non_null(c);
    const sk_delivery_config *d = &c->delivery;
    assert_int_equal(d->retry.min, 300);
    assert_int_equal(d->retry.max, 4000);
    assert_int_equal(d->retry.lifetime, 5 * 86400);
    assert_int_equal(d->retry.delay_warning, 4 * 3600);
    assert_int_equal(d->connections_per_destination, 20);
    assert_int_equal(d->recipients_per_transaction, 50);
    assert_int_equal(d->tls_policy, SK_TLS_MAY);
    assert_int_equal(d->timeout_greeting, 300);
    assert_int_equal(d->timeout_mail, 300);
    assert_int_equal(d->timeout_rcpt, 300);
    assert_int_equal(d->timeout_data, 120);
    assert_int_equal(d->timeout_data_block, 180);
    assert_int_equal(d->timeout_final_dot, 600);
    assert_null(d->dns_servers);
    assert_int_equal(d->smtp_port, 25);
    assert_int_equal(d->enabled, 1);
    sk_config_free(c);
}

static void test_delivery_full(void **state)
{
    (void)state;
    sk_config *c = load_text(BASE "delivery = {\n"
                                  "  retry_min = 60; retry_max = 600; max_queue_lifetime = 3600;\n"
                                  "  delay_warning = 0; connections_per_destination = 2;\n"
                                  "  max_connections = 10; messages_per_connection = 5;\n"
                                  "  recipients_per_transaction = 100; tls_policy = \"verify\";\n"
                                  "  timeout_greeting = 1; timeout_mail = 2; timeout_rcpt = 3;\n"
                                  "  timeout_data = 4; timeout_data_block = 5;\n"
                                  "  timeout_final_dot = 6; smtp_port = 2525;\n"
                                  "  dns_servers = [ \"127.0.0.1:5353\", \"[::1]:53\", \"::1\" ];\n"
                                  "};\n");
    if (!c)
        fail_msg("load failed: %s", err);
    const sk_delivery_config *d = &c->delivery;
    assert_int_equal(d->retry.min, 60);
    assert_int_equal(d->retry.max, 600);
    assert_int_equal(d->retry.lifetime, 3600);
    assert_int_equal(d->retry.delay_warning, 0);
    assert_int_equal(d->connections_per_destination, 2);
    assert_int_equal(d->max_connections, 10);
    assert_int_equal(d->messages_per_connection, 5);
    assert_int_equal(d->recipients_per_transaction, 100);
    assert_int_equal(d->tls_policy, SK_TLS_VERIFY);
    assert_int_equal(d->timeout_greeting + d->timeout_mail + d->timeout_rcpt + d->timeout_data +
                         d->timeout_data_block + d->timeout_final_dot,
                     21);
    assert_int_equal(d->smtp_port, 2525);
    assert_string_equal(d->dns_servers, "127.0.0.1:5353,[::1]:53,::1");
    sk_config_free(c);
    c = load_text(BASE "delivery = { dns_servers = \"127.0.0.2\"; tls_policy = \"encrypt\"; };\n");
    assert_non_null(c);
    assert_string_equal(c->delivery.dns_servers, "127.0.0.2");
    assert_int_equal(c->delivery.tls_policy, SK_TLS_ENCRYPT);
    assert_int_equal(c->delivery.enabled, 1);
    sk_config_free(c);
    c = load_text(BASE "delivery = { enabled = false; };\n");
    assert_non_null(c);
    assert_int_equal(c->delivery.enabled, 0);
    sk_config_free(c);
}

static void test_delivery_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"delivery = { retry_mni = 5; };", "unknown setting 'retry_mni' in delivery"},
        {"delivery = { retry_min = 0; };", "'retry_min' = 0 is out of range"},
        {"delivery = { retry_min = 5000; };", "retry_min (5000) must not exceed retry_max (4000)"},
        {"delivery = { retry_max = 100000; max_queue_lifetime = 86400; };",
         "retry_max (100000) must not exceed max_queue_lifetime (86400)"},
        {"delivery = { delay_warning = 432000; };",
         "delay_warning (432000) must be shorter than max_queue_lifetime"},
        {"delivery = { connections_per_destination = 500; };",
         "connections_per_destination (500) must not exceed max_connections (100)"},
        {"delivery = { tls_policy = \"dane\"; };", "use \"may\", \"encrypt\" or \"verify\""},
        {"delivery = { smtp_port = 0; };", "'smtp_port' = 0 is out of range"},
        {"delivery = { smtp_port = 70000; };", "'smtp_port' = 70000 is out of range"},
        {"delivery = { timeout_rcpt = 0; };", "'timeout_rcpt' = 0 is out of range"},
        {"delivery = { dns_servers = \"dns.example\"; };",
         "'dns.example' is not IP, IP:PORT or [IPv6]:PORT"},
        {"delivery = { dns_servers = [ \"127.0.0.1:99999\" ]; };", "'127.0.0.1:99999' is not IP"},
        {"delivery = { dns_servers = [ \"[::1]x\" ]; };", "'[::1]x' is not IP"},
        {"delivery = { dns_servers = [ \"127.0.0.1:\" ]; };", "'127.0.0.1:' is not IP"},
        {"delivery = { dns_servers = [ ]; };", "dns_servers must name at least one server"},
        {"delivery = { recipients_per_transaction = \"50\"; };",
         "'recipients_per_transaction' must be an integer"},
        {"delivery = 5;", "'delivery' must be a group"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, BASE "%s\n", bad[i].text);
        sk_config *c = load_text(text);
        if (c)
            fail_msg("accepted: %s", bad[i].text);
        assert_error_at(4, bad[i].needle);
    }
}

static void test_delivery_tls_policies(void **state)
{
    (void)state;
    sk_config *c = load_text(BASE "delivery = { tls_policy = \"encrypt\"; tls_policies = (\n"
                                  "  { domain = \"Example.ORG\"; policy = \"verify\"; },\n"
                                  "  { domain = \".example.net\"; policy = \"may\"; },\n"
                                  "  { domain = \".mx.example.net\"; policy = \"verify\"; },\n"
                                  "  { domain = \"example.net\"; policy = \"encrypt\"; } ); };\n");
    assert_non_null(c);
    const sk_delivery_config *d = &c->delivery;
    assert_int_equal(d->ntls_policies, 4);
    assert_string_equal(d->tls_policies[0].domain, "example.org");
    /* exact domain only for an entry without the dot */
    assert_int_equal(sk_delivery_tls_policy(d, "example.org"), SK_TLS_VERIFY);
    assert_int_equal(sk_delivery_tls_policy(d, "EXAMPLE.org"), SK_TLS_VERIFY);
    assert_int_equal(sk_delivery_tls_policy(d, "sub.example.org"), SK_TLS_ENCRYPT);
    /* ".example.net" covers subdomains, not example.net itself */
    assert_int_equal(sk_delivery_tls_policy(d, "a.example.net"), SK_TLS_MAY);
    assert_int_equal(sk_delivery_tls_policy(d, "example.net"), SK_TLS_ENCRYPT);
    /* the longest suffix wins */
    assert_int_equal(sk_delivery_tls_policy(d, "x.mx.example.net"), SK_TLS_VERIFY);
    assert_int_equal(sk_delivery_tls_policy(d, "mx.example.net"), SK_TLS_MAY);
    /* no entry: the global default */
    assert_int_equal(sk_delivery_tls_policy(d, "example.com"), SK_TLS_ENCRYPT);
    assert_int_equal(sk_delivery_tls_policy(d, "badexample.net"), SK_TLS_ENCRYPT);
    sk_config_free(c);

    c = load_text(BASE "delivery = { };\n");
    assert_non_null(c);
    assert_int_equal(c->delivery.ntls_policies, 0);
    assert_int_equal(sk_delivery_tls_policy(&c->delivery, "example.org"), SK_TLS_MAY);
    sk_config_free(c);

    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"delivery = { tls_policies = ( { domain = \"example.org\"; policy = \"dane\"; } ); };",
         "policy = \"dane\": use \"may\", \"encrypt\" or \"verify\""},
        {"delivery = { tls_policies = ( { domain = \"exa mple.org\"; policy = \"may\"; } ); };",
         "'exa mple.org' is not a domain"},
        {"delivery = { tls_policies = ( { domain = \"..org\"; policy = \"may\"; } ); };",
         "'..org' is not a domain"},
        {"delivery = { tls_policies = ( { policy = \"may\"; } ); };",
         "tls_policies entry without 'domain'"},
        {"delivery = { tls_policies = ( { domain = \"a.org\"; } ); };",
         "tls_policies entry a.org without 'policy'"},
        {"delivery = { tls_policies = ( { domain = \"a.org\"; policy = \"may\"; mode = 1; } ); };",
         "unknown setting 'mode' in a tls_policies entry"},
        {"delivery = { tls_policies = ( { domain = \"a.org\"; policy = \"may\"; }, "
         "{ domain = \"A.org\"; policy = \"verify\"; } ); };",
         "'a.org' is listed twice"},
        {"delivery = { tls_policies = \"a.org\"; };", "'tls_policies' must be a list"},
        {"delivery = { tls_policies = ( \"a.org\" ); };", "must be a group"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, BASE "%s\n", bad[i].text);
        c = load_text(text);
        if (c)
            fail_msg("accepted: %s", bad[i].text);
        assert_error_at(4, bad[i].needle);
    }
    /* the line of the offending entry, not of the group */
    c = load_text(BASE "delivery = {\n tls_policies = (\n"
                       "  { domain = \"a.org\"; policy = \"may\"; },\n"
                       "  { domain = \"b.org\"; policy = \"often\"; } ); };\n");
    assert_null(c);
    assert_error_at(7, "policy = \"often\"");
}

static void test_missing_file(void **state)
{
    (void)state;
    char missing[200];
    snprintf(missing, sizeof missing, "%s/nope.conf", dir);
    assert_null(sk_config_load(missing, err, sizeof err));
    assert_non_null(strstr(err, "nope.conf: cannot read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_minimal_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error_has_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lmtp_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rfc_minima, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_received_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_tls_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
