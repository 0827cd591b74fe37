/*
 * test_config_milter.c - the loader's milter settings: a listener's
 * milters (sockets as strings, or groups with their own default_action
 * and timeout), milter_default_action and milter_timeout, with their
 * FILE:LINE errors; and the socket forms milter.c connects to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config_fixture.h"
#include "server/milter.h"

#define HEAD "server_name = \"mx.example.test\";\nmail_root = \"m\";\n"

static void test_milter_defaults(void **state)
{
    (void)state;
    sk_config *c = load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].nmilters, 0);
    assert_int_equal(c->milter_default_tempfail, 1);
    assert_int_equal(c->milter_timeout, 30);
    sk_config_free(c);
}

static void test_milter_settings(void **state)
{
    (void)state;
    sk_config *c =
        load_text(HEAD "listeners = (\n"
                       " { address = \"127.0.0.1\"; port = 2525;\n"
                       "   milters = [ \"inet:127.0.0.1:8891\", \"unix:/run/f.sock\" ]; },\n"
                       " { address = \"::1\"; port = 2526;\n"
                       "   milters = ( \"inet6:[::1]:11332\",\n"
                       "     { socket = \"inet:8891@127.0.0.1\"; default_action = \"accept\"; "
                       "timeout = 5; } ); }\n"
                       ");\n"
                       "milter_default_action = \"accept\";\nmilter_timeout = 7;\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].nmilters, 2);
    assert_string_equal(c->listeners[0].milters[1].socket, "unix:/run/f.sock");
    assert_int_equal(c->listeners[0].milters[0].default_tempfail, -1);
    assert_int_equal(c->listeners[1].nmilters, 2);
    assert_int_equal(c->listeners[1].milters[1].default_tempfail, 0);
    assert_int_equal(c->listeners[1].milters[1].timeout, 5);
    assert_int_equal(c->milter_default_tempfail, 0);
    assert_int_equal(c->milter_timeout, 7);
    sk_config_free(c);
}

static void test_milter_errors(void **state)
{
    (void)state;
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525;\n"
                               " milters = [ \"inet:localhost:8891\" ]; } );\n"));
    assert_error_at(4, "milter 'inet:localhost:8891'");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525;\n"
                               " milters = [ \"tcp:127.0.0.1:1\" ]; } );\n"));
    assert_error_at(4, "inet:HOST:PORT");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525;\n"
                               " milters = ( { socket = \"unix:relative\"; } ); } );\n"));
    assert_error_at(4, "absolute path");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525;\n"
                               " milters = ( { socket = \"inet:127.0.0.1:1\";\n"
                               "   default_action = \"reject\"; } ); } );\n"));
    assert_error_at(5, "\"tempfail\" or \"accept\"");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525;\n"
                               " milters = ( { sock = \"inet:127.0.0.1:1\"; } ); } );\n"));
    assert_error_at(4, "sock");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "milter_timeout = 0;\n"));
    assert_error_at(4, "milter_timeout");
    assert_null(load_text(HEAD "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
                               "milter_default_action = \"discard\";\n"));
    assert_error_at(4, "\"tempfail\" or \"accept\"");
}

static void test_socket_forms(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    char why[160];
    assert_int_equal(sk_milter_parse_socket("inet:127.0.0.1:8891", &ss, &len, why, sizeof why), 0);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(ntohs(s4->sin_port), 8891);
    assert_int_equal(sk_milter_parse_socket("inet:8891@127.0.0.1", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ntohs(s4->sin_port), 8891);
    assert_int_equal(sk_milter_parse_socket("inet6:[::1]:25", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(sk_milter_parse_socket("inet:25@::1", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(sk_milter_parse_socket("unix:/run/x.sock", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ss.ss_family, AF_UNIX);
    assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/run/x.sock");
    assert_int_equal(sk_milter_parse_socket("local:/run/x.sock", &ss, &len, why, sizeof why), 0);
    const char *bad[] = {"inet:127.0.0.1",
                         "inet:127.0.0.1:0",
                         "inet:127.0.0.1:65536",
                         "inet:host:25",
                         "inet::25",
                         "unix:",
                         "inet:1.2.3.4:2x",
                         "8891"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (sk_milter_parse_socket(bad[i], &ss, &len, why, sizeof why) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_milter_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_milter_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_milter_errors, setup, teardown),
        cmocka_unit_test(test_socket_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
