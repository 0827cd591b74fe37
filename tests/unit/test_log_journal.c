/*
 * test_log_journal.c - splitting a log line into journal fields
 * (log_journal.c): names SMTPKIT_<KEY>, quoted values without their
 * quotes, words that are not key=value skipped, the field limit kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server/log_journal.h"

static void assert_field(const sk_log_field *f, const char *name, const char *value)
{
    assert_string_equal(f->name, name);
    assert_int_equal(f->len, strlen(value));
    assert_memory_equal(f->value, value, f->len);
}

static void test_plain_and_quoted(void **state)
{
    (void)state;
    sk_log_field f[SK_LOG_FIELDS_MAX];
    const char *line = "event=io-error conn=7 peer=2001:db8::1 error=\"Connection reset by peer\" "
                       "last_reply=221 tls-version=TLSv1.3";
    size_t n = sk_log_fields(line, f, SK_LOG_FIELDS_MAX);
    assert_int_equal(n, 6);
    assert_field(&f[0], "SMTPKIT_EVENT", "io-error");
    assert_field(&f[1], "SMTPKIT_CONN", "7");
    assert_field(&f[2], "SMTPKIT_PEER", "2001:db8::1");
    assert_field(&f[3], "SMTPKIT_ERROR", "Connection reset by peer");
    assert_field(&f[4], "SMTPKIT_LAST_REPLY", "221");
    assert_field(&f[5], "SMTPKIT_TLS_VERSION", "TLSv1.3");
}

static void test_odd_words(void **state)
{
    (void)state;
    sk_log_field f[SK_LOG_FIELDS_MAX];
    /* a quote followed by a space ends a quoted value (log lines do not
     * escape quotes; the rest is a word without '=', skipped); words
     * without '=', upper-case or empty keys, an empty value, an
     * unterminated quote at the end */
    const char *line = "event=x note=\"say \"hi\" now\" junk =v Key=1 a= b=2 c=\"open end";
    size_t n = sk_log_fields(line, f, SK_LOG_FIELDS_MAX);
    assert_int_equal(n, 5);
    assert_field(&f[0], "SMTPKIT_EVENT", "x");
    assert_field(&f[1], "SMTPKIT_NOTE", "say \"hi");
    assert_field(&f[2], "SMTPKIT_A", "");
    assert_field(&f[3], "SMTPKIT_B", "2");
    assert_field(&f[4], "SMTPKIT_C", "open end");
    assert_int_equal(sk_log_fields("", f, SK_LOG_FIELDS_MAX), 0);
    assert_int_equal(sk_log_fields("   ", f, SK_LOG_FIELDS_MAX), 0);
}

static void test_limits(void **state)
{
    (void)state;
    sk_log_field f[SK_LOG_FIELDS_MAX];
    char line[2048] = "";
    for (int i = 0; i < 40; i++) {
        char w[16];
        snprintf(w, sizeof w, "k%d=%d ", i, i);
        strcat(line, w);
    }
    assert_int_equal(sk_log_fields(line, f, SK_LOG_FIELDS_MAX), SK_LOG_FIELDS_MAX);
    assert_field(&f[31], "SMTPKIT_K31", "31");
    assert_int_equal(sk_log_fields(line, f, 2), 2);
    /* a key longer than a journal field name allows is not a field */
    char longkey[64];
    memset(longkey, 'k', 33);
    memcpy(longkey + 33, "=1 z=2", 7);
    assert_int_equal(sk_log_fields(longkey, f, SK_LOG_FIELDS_MAX), 1);
    assert_field(&f[0], "SMTPKIT_Z", "2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_quoted),
        cmocka_unit_test(test_odd_words),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
