/*
 * test_password_scheme.c - Dovecot password schemes (server/
 * password_scheme.c): every value Dovecot's own `doveadm pw` made
 * (dovecot_pw_vectors.h) verifies with its password and no other, the
 * ones smtpkit cannot verify are refused at load time with a reason,
 * malformed values of known schemes are refused, weak and clear-text ones
 * carry a note.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "dovecot_pw_vectors.h"
#include "server/password_scheme.h"

static void test_every_doveadm_scheme_verifies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dovecot_pw_vectors / sizeof dovecot_pw_vectors[0]; i++) {
        const char *st = dovecot_pw_vectors[i].stored, *why = NULL, *note = NULL;
        if (sk_pwscheme_check(st, strlen(st), &why, &note) != 0)
            fail_msg("%s refused: %s", dovecot_pw_vectors[i].scheme, why);
        if (sk_pwscheme_verify(st, DOVECOT_PW_PASSWORD) != 1)
            fail_msg("%s: right password not verified", dovecot_pw_vectors[i].scheme);
        if (sk_pwscheme_verify(st, "C0rrect horse:béta") != 0)
            fail_msg("%s: wrong password verified", dovecot_pw_vectors[i].scheme);
        /* DES-crypt reads only the first 8 bytes: its weakness, reported by a note. */
        int des = !strcmp(dovecot_pw_vectors[i].scheme, "DES-CRYPT");
        if (!des && sk_pwscheme_verify(st, DOVECOT_PW_PASSWORD "x") != 0)
            fail_msg("%s: longer password verified", dovecot_pw_vectors[i].scheme);
        if (!des && sk_pwscheme_verify(st, "c0rrect horse:bEta") != 0)
            fail_msg("%s: wrong password verified", dovecot_pw_vectors[i].scheme);
        if (sk_pwscheme_verify(st, "") != 0)
            fail_msg("%s: empty password verified", dovecot_pw_vectors[i].scheme);
    }
}

static void test_scheme_names_are_case_insensitive(void **state)
{
    (void)state;
    static const char v[] =
        "{ssha256.hex}"
        "e7272b429f309f019df06a59a699ee0792cc126dca89f4f79a27582f97f68355602c87f2";
    const char *why, *note;
    assert_int_equal(sk_pwscheme_check(v, strlen(v), &why, &note), 0);
    assert_int_equal(sk_pwscheme_verify(v, "pw"), 1);
    assert_int_equal(sk_pwscheme_verify(v, "pW"), 0);
    /* Hex or base64 of an unsalted digest, told apart by length as Dovecot does. */
    static const char hex[] =
        "{SHA256}30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4";
    assert_int_equal(sk_pwscheme_verify(hex, "pw"), 1);
    static const char md5b64[] = "{PLAIN-MD5}j+TBFFEoHAlKZXjm3b9e7Q==";
    assert_int_equal(sk_pwscheme_check(md5b64, strlen(md5b64), &why, &note), 0);
    assert_int_equal(sk_pwscheme_verify(md5b64, "pw"), 1);
}

typedef struct refusal {
    const char *stored;
    const char *why;
} refusal;

static void test_unverifiable_values_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const refusal cases[] = {
        {"{CRAM-MD5}fa2d3d534d81cb25feff8f504d6cf4eff07b86f1e0fc86c258693a4cd16e0cdf",
         "password scheme not supported by smtpkit"},
        {"{DIGEST-MD5}0ca8889e340a6fb679ccb9e481ca11f2", "password scheme not supported"},
        {"{PLAIN-MD4}a8d1f20d9ceef04bba334fdc553a65f6", "password scheme not supported"},
        {"{NOSUCH}abc", "unknown password scheme"},
        {"{SHA256.ROT13}abc", "unknown password scheme"},
        {"{CRYPT$6$x", "'{' of a scheme prefix without '}'"},
        {"{SHA512-CRYPT}$y$j9T$abc$def", "hash does not belong to its {SCHEME} prefix"},
        {"{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$kEyX+FosIQLBkqQQtYiYdw$l+AT9dxfyModK3r",
         "hash does not belong to its {SCHEME} prefix"},
        {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$salt", "incomplete Argon2 hash"},
        {"{ARGON2ID}$argon2id$v=19$m=99999999,t=3,p=1$c2FsdHNhbHQ$aGFzaA",
         "Argon2 memory cost over 1 GiB"},
        {"{SHA256}notbase64!", "password value is not valid base64 or hex"},
        {"{SHA256}VwEbjz9twaDJsrXYVdko17KGrQ8=", "password digest has the wrong length"},
        {"{SSHA256}fFcGla/roPAlUEX+ml0B+ReZp/1D9pGbTPtBDx1eJgs=",
         "password digest has the wrong length"},
        {"{PBKDF2}$1$salt$5000$abc", "PBKDF2 value is not $1$salt$rounds$hex"},
        {"{PBKDF2}$1$salt$0$1a92020bdd38c10580615a9c0fff342be26f5b27", "PBKDF2 value is not"},
        {"{SCRAM-SHA-256}4096,IJsADOIluhhl8gvc7bGeew==,abc", "SCRAM value is not"},
        {"{PLAIN}", "empty password"},
        {"", "empty password hash"},
        {"wonderland", "not a crypt(3) hash"},
        {"$6$salt$*bad*", "password hash contains a character crypt(3) never produces"},
        {"$9$abc$def", "unknown or disabled crypt(3) hash method"},
        {"$6$saltonly", "incomplete password hash"},
        {"$y$j9T$abc", "incomplete yescrypt hash"},
        {"$6$saltstring$tooShort", "SHA-512-crypt hash has the wrong length"},
        {"$2b$04$tooShort", "bcrypt hash has the wrong length"},
        {"$1$salt$hash", "MD5-crypt hash has the wrong length"},
        {"{SHA256-CRYPT}$5$salt$short", "SHA-256-crypt hash has the wrong length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL, *note = NULL;
        const char *st = cases[i].stored;
        if (sk_pwscheme_check(st, strlen(st), &why, &note) != -1)
            fail_msg("\"%s\" accepted", st);
        if (!why || strncmp(why, cases[i].why, strlen(cases[i].why)) != 0)
            fail_msg("\"%s\": want \"%s...\", got \"%s\"", st, cases[i].why, why ? why : "");
        assert_null(note);
        assert_int_equal(sk_pwscheme_verify(st, "pw"), 0);
    }
}

static void test_notes_for_weak_and_clear_text(void **state)
{
    (void)state;
    const char *why, *note;
    static const char plain[] = "{PLAIN}secret";
    assert_int_equal(sk_pwscheme_check(plain, strlen(plain), &why, &note), 0);
    assert_non_null(strstr(note, "plain-text password"));
    static const char md5[] = "{MD5-CRYPT}$1$z58DQp0N$5Y3bgTuy0/z3AAiJoH8Nv.";
    assert_int_equal(sk_pwscheme_check(md5, strlen(md5), &why, &note), 0);
    assert_non_null(strstr(note, "weak hash method"));
    static const char y[] =
        "$y$j9T$PaFT3ICkWCPnYBkeFwq8D0$JZkVX6Oe5lU7l2N4aqNmXJpzX7hvVKrnbHYdmBq1WE/";
    assert_int_equal(sk_pwscheme_check(y, strlen(y), &why, &note), 0);
    assert_null(note);
    assert_true(sk_pwscheme_is_slow(y));
    assert_true(sk_pwscheme_is_slow(dovecot_pw_vectors[0].stored));
    assert_false(sk_pwscheme_is_slow(plain));
    assert_false(sk_pwscheme_is_slow("{SSHA512}abc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_doveadm_scheme_verifies),
        cmocka_unit_test(test_scheme_names_are_case_insensitive),
        cmocka_unit_test(test_unverifiable_values_are_refused_with_a_reason),
        cmocka_unit_test(test_notes_for_weak_and_clear_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
