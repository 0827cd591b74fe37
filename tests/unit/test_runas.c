/*
 * test_runas.c - sk_runas_can_read (server/runas.c): whether the account
 * the server runs as can read a file, asked of the kernel as that account.
 * As root the cases are built around `nobody`: a file only root can read,
 * one readable through nobody's group, a directory nobody cannot enter, a
 * FIFO (must not hang), a missing file; and the checking process keeps
 * its own identity. Not as root, the current user answers for itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/runas.h"

static char dir[64];

static void path_in(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", dir, name);
}

static void make_file(const char *name, mode_t mode, char *out, size_t outlen)
{
    path_in(out, outlen, name);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(out, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-runas-test-XXXXXX");
    if (!mkdtemp(dir) || chmod(dir, 0755) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Resolve `nobody` as the server would when started as root. */
static void as_nobody(sk_runas *r)
{
    char err[256] = "";
    if (sk_runas_resolve("nobody", r, err, sizeof err) != 0)
        fail_msg("resolve nobody: %s", err);
    assert_int_equal(r->change, 1);
}

static int can_read(const sk_runas *r, const char *path)
{
    char err[256] = "";
    int e = sk_runas_can_read(r, path, err, sizeof err);
    if (e < 0)
        fail_msg("check failed: %s", err);
    return e;
}

static void test_current_user_answers_for_itself(void **state)
{
    (void)state;
    sk_runas r;
    char path[128];
    memset(&r, 0, sizeof r); /* change = 0: the check runs as ourselves */
    snprintf(r.name, sizeof r.name, "me");
    make_file("mine", 0600, path, sizeof path);
    assert_int_equal(can_read(&r, path), 0);
    path_in(path, sizeof path, "absent");
    assert_int_equal(can_read(&r, path), ENOENT);
    if (geteuid() != 0) { /* root reads a mode 000 file */
        make_file("none", 0000, path, sizeof path);
        assert_int_equal(can_read(&r, path), EACCES);
    }
}

static void test_root_asks_as_the_server_user(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    sk_runas r;
    as_nobody(&r);
    char path[128];
    make_file("root-only", 0600, path, sizeof path);
    assert_int_equal(can_read(&r, path), EACCES);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(can_read(&r, path), 0);
    /* the group nobody has after the drop (its own gid) is enough */
    make_file("group", 0640, path, sizeof path);
    assert_int_equal(chown(path, 0, r.gid), 0);
    assert_int_equal(can_read(&r, path), 0);
    path_in(path, sizeof path, "absent");
    assert_int_equal(can_read(&r, path), ENOENT);
    /* we are still root, with every id as before */
    assert_int_equal(geteuid(), 0);
    assert_int_equal(getuid(), 0);
    assert_int_equal(getegid(), 0);
}

static void test_directory_on_the_way_counts(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    sk_runas r;
    as_nobody(&r);
    char sub[128], path[160];
    path_in(sub, sizeof sub, "closed");
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/cert.pem", sub);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(can_read(&r, path), EACCES);
    assert_int_equal(chmod(sub, 0711), 0); /* search is enough */
    assert_int_equal(can_read(&r, path), 0);
}

static void test_fifo_does_not_hang(void **state)
{
    (void)state;
    sk_runas r;
    char path[128];
    if (geteuid() == 0) {
        as_nobody(&r);
    } else {
        memset(&r, 0, sizeof r);
        snprintf(r.name, sizeof r.name, "me");
    }
    path_in(path, sizeof path, "fifo");
    assert_int_equal(mkfifo(path, 0644), 0);
    alarm(20); /* a check that blocks fails the test instead of hanging it */
    assert_int_equal(can_read(&r, path), 0); /* no writer: open would block */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(can_read(&r, path), geteuid() == 0 ? EACCES : 0);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_current_user_answers_for_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_asks_as_the_server_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_on_the_way_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_does_not_hang, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
