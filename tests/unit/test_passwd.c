/*
 * test_passwd.c - the AUTH password file (server/passwd.c): hashes made
 * like `smtpkit passwd` makes them verify, wrong passwords and unknown
 * users fail (and cost a hash), Dovecot scheme prefixes and extra fields,
 * and every malformed line is reported with its line number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/passwd.h"

static char dir[64];
static char path[128];

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-passwd-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/passwd", dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void write_passwd(const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
}

static sk_passwd *load_ok(const char *content)
{
    char err[256] = "";
    write_passwd(content);
    sk_passwd *pw = sk_passwd_load(path, err, sizeof err);
    if (!pw)
        fail_msg("load failed: %s", err);
    return pw;
}

static void make_hash(sk_passwd_scheme scheme, unsigned long cost, const char *password, char *out,
                      size_t outlen)
{
    char err[256];
    if (sk_passwd_hash(scheme, cost, password, out, outlen, err, sizeof err) != 0)
        fail_msg("hash failed: %s", err);
}

static void test_yescrypt_and_sha512_verify(void **state)
{
    (void)state;
    char y[256], s[256], content[1024];
    make_hash(SK_PASSWD_YESCRYPT, 0, "wonderland", y, sizeof y);
    make_hash(SK_PASSWD_SHA512_CRYPT, 6000, "looking-glass", s, sizeof s);
    assert_memory_equal(y, "$y$", 3);
    assert_memory_equal(s, "$6$rounds=6000$", 15);
    snprintf(content, sizeof content, "alice:%s\nbob:%s\n", y, s);
    sk_passwd *pw = load_ok(content);
    assert_int_equal(sk_passwd_count(pw), 2);
    assert_int_equal(sk_passwd_verify(pw, "alice", "wonderland"), 1);
    assert_int_equal(sk_passwd_verify(pw, "bob", "looking-glass"), 1);
    assert_int_equal(sk_passwd_verify(pw, "alice", "Wonderland"), 0);
    assert_int_equal(sk_passwd_verify(pw, "alice", "wonderland "), 0);
    assert_int_equal(sk_passwd_verify(pw, "alice", ""), 0);
    assert_int_equal(sk_passwd_verify(pw, "bob", "wonderland"), 0);
    /* Another user's password does not open this account. */
    assert_int_equal(sk_passwd_verify(pw, "alice", "looking-glass"), 0);
    /* User names are exact. */
    assert_int_equal(sk_passwd_verify(pw, "Alice", "wonderland"), 0);
    assert_int_equal(sk_passwd_verify(pw, "carol", "wonderland"), 0);
    assert_int_equal(sk_passwd_verify(pw, "", "wonderland"), 0);
    assert_int_equal(sk_passwd_verify(pw, NULL, "wonderland"), 0);
    assert_int_equal(sk_passwd_verify(pw, "alice", NULL), 0);
    sk_passwd_free(pw);
}

static void test_hash_defaults_and_salts(void **state)
{
    (void)state;
    char a[256], b[256], err[256];
    make_hash(SK_PASSWD_YESCRYPT, 0, "same", a, sizeof a);
    make_hash(SK_PASSWD_YESCRYPT, 0, "same", b, sizeof b);
    assert_string_not_equal(a, b);        /* fresh salt each time */
    assert_memory_equal(a, "$y$j9T$", 7); /* libxcrypt's default cost 5 */
    make_hash(SK_PASSWD_SHA512_CRYPT, 0, "same", a, sizeof a);
    assert_memory_equal(a, "$6$rounds=100000$", 17);

    assert_int_equal(sk_passwd_hash(SK_PASSWD_YESCRYPT, 12, "x", a, sizeof a, err, sizeof err), -1);
    assert_non_null(strstr(err, "cost"));
    assert_int_equal(sk_passwd_hash(SK_PASSWD_SHA512_CRYPT, 999, "x", a, sizeof a, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "rounds"));
    assert_int_equal(sk_passwd_hash(SK_PASSWD_YESCRYPT, 0, "", a, sizeof a, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(sk_passwd_hash(SK_PASSWD_YESCRYPT, 0, "x", a, 10, err, sizeof err), -1);

    sk_passwd_scheme sc;
    assert_int_equal(sk_passwd_scheme_parse("yescrypt", &sc), 0);
    assert_int_equal(sc, SK_PASSWD_YESCRYPT);
    assert_int_equal(sk_passwd_scheme_parse("SHA512-CRYPT", &sc), 0);
    assert_int_equal(sc, SK_PASSWD_SHA512_CRYPT);
    assert_int_equal(sk_passwd_scheme_parse("md5", &sc), -1);
}

/* Hashes from elsewhere: the SHA-crypt specification's own vectors, and a
 * bcrypt hash made by libxcrypt directly, behind Dovecot prefixes. */
static void test_dovecot_lines_and_known_vectors(void **state)
{
    (void)state;
    char bf_setting[CRYPT_GENSALT_OUTPUT_SIZE], content[2048];
    assert_non_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, bf_setting, sizeof bf_setting));
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *bf = crypt_rn("blowfish!", bf_setting, &cd, sizeof cd);
    assert_non_null(bf);
    snprintf(content, sizeof content,
             "# accounts\r\n"
             "\r\n"
             "spec1:{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
             "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1:1000:1000::/home/spec1::"
             "userdb_quota_rule=*:storage=1G\r\n"
             "spec2:{sha512-crypt}$6$rounds=10000$saltstringsaltst$OW1/"
             "O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/"
             "y3RnOaw5v.\n"
             "carol@example.org:{BLF-CRYPT}%s::::::\n"
             "#disabled:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
             "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n",
             bf);
    sk_passwd *pw = load_ok(content);
    assert_int_equal(sk_passwd_count(pw), 3);
    assert_int_equal(sk_passwd_verify(pw, "spec1", "Hello world!"), 1);
    assert_int_equal(sk_passwd_verify(pw, "spec1", "Hello world"), 0);
    assert_int_equal(sk_passwd_verify(pw, "spec2", "Hello world!"), 1);
    assert_int_equal(sk_passwd_verify(pw, "carol@example.org", "blowfish!"), 1);
    assert_int_equal(sk_passwd_verify(pw, "carol@example.org", "blowfish?"), 0);
    assert_false(sk_passwd_has_user(pw, "#disabled"));
    assert_false(sk_passwd_has_user(pw, "disabled"));
    sk_passwd_free(pw);
}

static void test_parse_line_fields(void **state)
{
    (void)state;
    static const char line[] =
        "dave:{CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
        "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1:1:2:G:/h:/s:x=y q=a:b\r";
    sk_passwd_line pl;
    const char *err;
    assert_int_equal(sk_passwd_parse_line(line, strlen(line), &pl, &err), 0);
    assert_false(pl.blank);
    assert_int_equal(pl.user_len, 4);
    assert_memory_equal(pl.user, "dave", 4);
    assert_int_equal(pl.hash_len, strlen("{CRYPT}$6$saltstring$") + 86);
    assert_memory_equal(pl.hash, "{CRYPT}$6$saltstring$", 21);
    assert_int_equal(pl.uid_len, 1);
    assert_memory_equal(pl.uid, "1", 1);
    assert_memory_equal(pl.gid, "2", 1);
    assert_int_equal(pl.home_len, 2);
    assert_memory_equal(pl.home, "/h", 2);
    assert_int_equal(pl.extra_len, strlen("x=y q=a:b"));
    assert_memory_equal(pl.extra, "x=y q=a:b", pl.extra_len);
    assert_int_equal(pl.rest_len, strlen("1:2:G:/h:/s:x=y q=a:b"));
    assert_memory_equal(pl.rest, "1:2:G:/h:/s:x=y q=a:b", pl.rest_len);

    /* The short forms of Dovecot's passwd-file. */
    static const char s2[] = "erin:{PLAIN}pw";
    assert_int_equal(sk_passwd_parse_line(s2, strlen(s2), &pl, &err), 0);
    assert_int_equal(pl.hash_len, 9);
    assert_int_equal(pl.uid_len + pl.gid_len + pl.home_len + pl.extra_len, 0);
    static const char s3[] = "erin:{PLAIN}pw:1000:1000::/home/erin";
    assert_int_equal(sk_passwd_parse_line(s3, strlen(s3), &pl, &err), 0);
    assert_memory_equal(pl.home, "/home/erin", pl.home_len);
    assert_int_equal(pl.extra_len, 0);

    assert_int_equal(sk_passwd_parse_line("", 0, &pl, &err), 0);
    assert_true(pl.blank);
    assert_int_equal(sk_passwd_parse_line("# x:y", 5, &pl, &err), 0);
    assert_true(pl.blank);
    /* Length is honoured: the bytes after n are not looked at. */
    assert_int_equal(sk_passwd_parse_line("alice:$6$x", 5, &pl, &err), -1);
    assert_string_equal(err, "no ':' between user name and password hash");
}

typedef struct bad_case {
    const char *line;
    const char *message;
} bad_case;

static void test_malformed_lines_report_line_numbers(void **state)
{
    (void)state;
    static const char good[] = "ok:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
                               "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    static const bad_case cases[] = {
        {"nocolon", "no ':' between user name and password hash"},
        {":$y$j9T$abc$def", "empty user name"},
        {"a b:$y$j9T$abc$def", "user name contains a space or control character"},
        {"a\tb:$y$j9T$abc$def", "user name contains a space or control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char content[1024], err[512] = "", want[512];
        snprintf(content, sizeof content, "%s\n# comment\n%s\n%s\n", good, cases[i].line, good);
        write_passwd(content);
        assert_null(sk_passwd_load(path, err, sizeof err));
        snprintf(want, sizeof want, "%s:3: %s", path, cases[i].message);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("line \"%s\": want \"%s...\", got \"%s\"", cases[i].line, want, err);
    }

    /* A line over the limit, and a NUL byte. */
    char *big = malloc(SK_PASSWD_LINE_MAX + 64);
    assert_non_null(big);
    memset(big, 'a', SK_PASSWD_LINE_MAX + 10);
    big[SK_PASSWD_LINE_MAX + 10] = '\0';
    char err[512];
    write_passwd(big);
    free(big);
    assert_null(sk_passwd_load(path, err, sizeof err));
    assert_non_null(strstr(err, ":1: line too long"));

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite("#c\n\nab\0c:$6$x\n", 1, 14, f);
    fclose(f);
    assert_null(sk_passwd_load(path, err, sizeof err));
    assert_non_null(strstr(err, ":3: NUL byte in line"));
}

/* A password smtpkit cannot verify disables its user only, with one
 * warning naming the file and line; the other users go on working. (Before,
 * one {ARGON2ID} line made the whole file refused.) */
static void test_unverifiable_line_disables_only_its_user(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"bad:", "empty password hash"},
        {"bad::1000:1000", "empty password hash"},
        {"bad:{CRAM-MD5}fa2d3d534d81cb25feff8f504d6cf4eff07b86f1e0fc86c258693a4cd16e0cdf",
         "password scheme not supported by smtpkit"},
        {"bad:{NOSUCH}abcdef==", "unknown password scheme"},
        {"bad:{CRYPT$6$x", "'{' of a scheme prefix without '}'"},
        {"bad:{SHA512-CRYPT}$y$j9T$abc$def", "hash does not belong to its {SCHEME} prefix"},
        {"bad:wonderland", "not a crypt(3) hash"},
        {"bad:$6$salt$*bad*", "password hash contains a character crypt(3) never produces"},
        {"bad:$9$abc$def", "unknown or disabled crypt(3) hash method"},
        {"bad:$6$saltonly", "incomplete password hash"},
        {"bad:$y$j9T$abc", "incomplete yescrypt hash"},
        {"bad:$6$saltstring$tooShort", "SHA-512-crypt hash has the wrong length"},
        {"bad:$2b$04$tooShort", "bcrypt hash has the wrong length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char content[2048], want[512];
        snprintf(
            content, sizeof content,
            "argon:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$vMSlPPgTXsfeW4tk28YmrQ$"
            "PJu4qPCvcWdJpCzUxgg99M2A9Dc7Ld2TdPF6TdLvir8\n"
            "# comment\n%s\n"
            "sha:{SHA512-CRYPT}$6$wXj8gSGnSWWbHPc1$J2.2qOQYoc015q43PSmuagDQ9Wb65CuGmVzjqXNDjtG/"
            "dYBShlXbhrcfHDpMUAJsLiLCbX4bxsH8SVnysSWaU0:1000:1000::/home/sha::\n",
            cases[i].line);
        sk_passwd *pw = load_ok(content);
        assert_int_equal(sk_passwd_count(pw), 3);
        assert_int_equal(sk_passwd_warning_count(pw), 1);
        snprintf(want, sizeof want, "%s:3: user 'bad' disabled: %s", path, cases[i].message);
        const char *w = sk_passwd_warning(pw, 0);
        if (strncmp(w, want, strlen(want)) != 0)
            fail_msg("line \"%s\": want \"%s...\", got \"%s\"", cases[i].line, want, w);
        assert_true(sk_passwd_has_user(pw, "bad"));
        assert_false(sk_passwd_user_enabled(pw, "bad"));
        assert_int_equal(sk_passwd_verify(pw, "bad", "wonderland"), 0);
        assert_int_equal(sk_passwd_verify(pw, "bad", ""), 0);
        if (i == 0) { /* the slow checks once */
            assert_int_equal(sk_passwd_verify(pw, "argon", "c0rrect horse:b\xc3\xa9ta"), 1);
            assert_int_equal(sk_passwd_verify(pw, "argon", "c0rrect horse:beta"), 0);
            assert_int_equal(sk_passwd_verify(pw, "sha", "c0rrect horse:b\xc3\xa9ta"), 1);
            assert_int_equal(sk_passwd_verify(pw, "sha", "wrong"), 0);
        }
        sk_passwd_userdb u;
        assert_int_equal(sk_passwd_userdb_of(pw, "sha", &u), 0);
        assert_string_equal(u.uid, "1000");
        assert_string_equal(u.gid, "1000");
        assert_string_equal(u.home, "/home/sha");
        assert_string_equal(u.extra, "");
        assert_int_equal(sk_passwd_userdb_of(pw, "nobody-here", &u), -1);
        sk_passwd_free(pw);
    }
}

/* Clear text and weak methods work, each with one warning. */
static void test_plain_and_weak_work_with_a_warning(void **state)
{
    (void)state;
    char want[512];
    sk_passwd *pw = load_ok("p:{PLAIN}wonderland::::::\n"
                            "c:{CLEAR}looking-glass\n"
                            "m:{MD5-CRYPT}$1$z58DQp0N$5Y3bgTuy0/z3AAiJoH8Nv.\n");
    assert_int_equal(sk_passwd_warning_count(pw), 3);
    snprintf(want, sizeof want, "%s:1: user 'p' accepted: plain-text password", path);
    assert_memory_equal(sk_passwd_warning(pw, 0), want, strlen(want));
    snprintf(want, sizeof want, "%s:3: user 'm' accepted: weak hash method", path);
    assert_memory_equal(sk_passwd_warning(pw, 2), want, strlen(want));
    assert_int_equal(sk_passwd_verify(pw, "p", "wonderland"), 1);
    assert_int_equal(sk_passwd_verify(pw, "p", "wonderlanD"), 0);
    assert_int_equal(sk_passwd_verify(pw, "c", "looking-glass"), 1);
    assert_int_equal(sk_passwd_verify(pw, "m", "c0rrect horse:b\xc3\xa9ta"), 1);
    sk_passwd_free(pw);
}

/* Warnings are bounded: past SK_PASSWD_WARNINGS_MAX only counted. */
static void test_warnings_are_bounded(void **state)
{
    (void)state;
    size_t n = SK_PASSWD_WARNINGS_MAX + 20;
    char *content = malloc(n * 40);
    assert_non_null(content);
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(content + off, "u%zu:{OTP}x\n", i);
    sk_passwd *pw = load_ok(content);
    free(content);
    assert_int_equal(sk_passwd_count(pw), n);
    assert_int_equal(sk_passwd_warning_count(pw), SK_PASSWD_WARNINGS_MAX);
    assert_int_equal(sk_passwd_warnings_dropped(pw), 20);
    assert_int_equal(sk_passwd_verify(pw, "u0", "x"), 0);
    sk_passwd_free(pw);
}

static void test_duplicate_user(void **state)
{
    (void)state;
    char y[256], content[1024], err[512], want[512];
    make_hash(SK_PASSWD_YESCRYPT, 1, "one", y, sizeof y);
    snprintf(content, sizeof content, "alice:%s\nbob:%s\n\nalice:%s\n", y, y, y);
    write_passwd(content);
    assert_null(sk_passwd_load(path, err, sizeof err));
    snprintf(want, sizeof want, "%s:4: duplicate user 'alice' (first on line 1)", path);
    assert_string_equal(err, want);
}

static void test_missing_and_empty_files(void **state)
{
    (void)state;
    char err[512], missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    assert_null(sk_passwd_load(missing, err, sizeof err));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_non_null(strstr(err, missing));

    sk_passwd *pw = load_ok("# nobody yet\n\n");
    assert_int_equal(sk_passwd_count(pw), 0);
    assert_int_equal(sk_passwd_verify(pw, "alice", "wonderland"), 0);
    sk_passwd_free(pw);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double fastest_of(int n, const sk_passwd *pw, const char *user, const char *password)
{
    double best = 1e9;
    for (int i = 0; i < n; i++) {
        double t0 = seconds_now();
        (void)sk_passwd_verify(pw, user, password);
        double t = seconds_now() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

/* An unknown user is answered no faster than a known one: it still costs a
 * yescrypt computation (tens of milliseconds, not microseconds). */
static void test_unknown_user_costs_a_hash(void **state)
{
    (void)state;
    char y[256], content[512];
    make_hash(SK_PASSWD_YESCRYPT, 0, "wonderland", y, sizeof y);
    snprintf(content, sizeof content, "alice:%s\n", y);
    sk_passwd *pw = load_ok(content);
    double known = fastest_of(3, pw, "alice", "wrong");
    double unknown = fastest_of(3, pw, "mallory", "wrong");
    assert_true(known > 0.001); /* a real hash ran */
    if (unknown < known * 0.5)
        fail_msg("unknown user took %.4fs, known %.4fs", unknown, known);
    sk_passwd_free(pw);
}

static void test_overlong_password_refused_cheaply(void **state)
{
    (void)state;
    char s[256], content[512];
    make_hash(SK_PASSWD_SHA512_CRYPT, 1000, "pw", s, sizeof s);
    snprintf(content, sizeof content, "alice:%s\n", s);
    sk_passwd *pw = load_ok(content);
    char *huge = malloc(SK_PASSWD_PASSWORD_MAX + 2);
    assert_non_null(huge);
    memset(huge, 'p', SK_PASSWD_PASSWORD_MAX + 1);
    huge[SK_PASSWD_PASSWORD_MAX + 1] = '\0';
    assert_int_equal(sk_passwd_verify(pw, "alice", huge), 0);
    /* Exactly at the limit is still checked normally. */
    huge[SK_PASSWD_PASSWORD_MAX] = '\0';
    char h2[256];
    make_hash(SK_PASSWD_SHA512_CRYPT, 1000, huge, h2, sizeof h2);
    snprintf(content, sizeof content, "max:%s\n", h2);
    sk_passwd_free(pw);
    pw = load_ok(content);
    assert_int_equal(sk_passwd_verify(pw, "max", huge), 1);
    free(huge);
    sk_passwd_free(pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yescrypt_and_sha512_verify),
        cmocka_unit_test(test_hash_defaults_and_salts),
        cmocka_unit_test(test_dovecot_lines_and_known_vectors),
        cmocka_unit_test(test_parse_line_fields),
        cmocka_unit_test(test_malformed_lines_report_line_numbers),
        cmocka_unit_test(test_duplicate_user),
        cmocka_unit_test(test_missing_and_empty_files),
        cmocka_unit_test(test_unknown_user_costs_a_hash),
        cmocka_unit_test(test_overlong_password_refused_cheaply),
        cmocka_unit_test(test_unverifiable_line_disables_only_its_user),
        cmocka_unit_test(test_plain_and_weak_work_with_a_warning),
        cmocka_unit_test(test_warnings_are_bounded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
