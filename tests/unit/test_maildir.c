/*
 * test_maildir.c - the Maildir store on real files: byte-exact delivery,
 * one hard link per recipient, nothing left in tmp, abort, stale-file
 * cleaning, unique names across threads and processes, full disks (small
 * tmpfs mounts) and I/O errors, with nothing partial ever visible in new/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>

#include "smtpkit/store.h"
#include "store_test_util.h"

struct fx {
    char *dir;           /* temp dir for this test */
    char root[PATH_MAX]; /* the store's tmp_root */
    sk_store *st;
    char mnt[PATH_MAX]; /* a tmpfs mounted by the test, or "" */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    assert_non_null(f->dir);
    tu_path(f->root, "%s/spool", f->dir);
    char err[256];
    f->st = sk_store_maildir_open(f->root, err, sizeof err);
    assert_non_null(f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sk_store_close(f->st);
    if (f->mnt[0]) /* a failed assertion skipped the test's own unmount */
        tu_umount(f->mnt);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Pseudo-random bytes covering every octet value (NUL, CR, LF, 8-bit). */
static char *make_data(size_t n, unsigned seed)
{
    char *p = malloc(n);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (char)(x >> 24);
    }
    return p;
}

/* What the file holds for CRLF input: each CRLF as LF (Maildir and mbox
 * keep Unix line ends), every other byte as it is. *outlen set. */
static char *lf_of(const char *p, size_t n, size_t *outlen)
{
    char *o = malloc(n + 1);
    assert_non_null(o);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!(p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))
            o[k++] = p[i];
    *outlen = k;
    return o;
}

static void assert_file_is_lf(const char *path, const char *crlf, size_t len)
{
    size_t n;
    char *want = lf_of(crlf, len, &n);
    size_t got;
    char *p = tu_read(path, &got);
    assert_non_null(p);
    assert_int_equal(got, n);
    assert_memory_equal(p, want, n);
    free(p);
    free(want);
}

/* begin + append in chunks cycling through `chunks` + commit. */
static sk_store_result deliver(sk_store *st, const char *data, size_t len, const size_t *chunks,
                               size_t nchunks, const char *const *dests, size_t ndests, char id[32])
{
    sk_store_result r;
    char idbuf[32];
    sk_store_msg *m = sk_store_begin(st, id ? id : idbuf, &r);
    if (!m)
        return r;
    size_t off = 0, k = 0;
    while (off < len) {
        size_t c = nchunks ? chunks[k++ % nchunks] : len;
        if (c > len - off)
            c = len - off;
        r = sk_store_append(m, data + off, c);
        if (r != SK_STORE_OK)
            break;
        off += c;
    }
    return sk_store_commit_maildirs(m, dests, ndests);
}

static sk_store_result deliver_str(sk_store *st, const char *s, const char *const *dests,
                                   size_t ndests)
{
    return deliver(st, s, strlen(s), NULL, 0, dests, ndests, NULL);
}

/* The only file in maildir/new: its full path into out; fails the test if
 * there is not exactly one. */
static void only_file(const char *maildir, char *out)
{
    char newdir[PATH_MAX], name[NAME_MAX + 1];
    tu_path(newdir, "%s/new", maildir);
    assert_int_equal(tu_count(newdir, name), 1);
    tu_path(out, "%s/%s", newdir, name);
}

static void assert_file_is(const char *path, const char *data, size_t len)
{
    size_t got;
    char *p = tu_read(path, &got);
    assert_non_null(p);
    assert_int_equal(got, len);
    assert_memory_equal(p, data, len);
    free(p);
}

static void test_commit_one_recipient_byte_exact(void **state)
{
    struct fx *f = *state;
    const size_t len = 200000;
    char *data = make_data(len, 1);
    static const size_t chunks[] = {1, 3, 65535, 70000, 512, 65536};
    char dest[PATH_MAX], id[32], file[PATH_MAX], sub[PATH_MAX];
    tu_path(dest, "%s/home/alice/Maildir", f->dir); /* no parent exists yet */
    const char *dests[] = {dest};

    memset(id, 0, sizeof id);
    assert_int_equal(deliver(f->st, data, len, chunks, 6, dests, 1, id), SK_STORE_OK);
    /* The id goes into the Received header's "id" clause (an RFC 5321
     * Atom) and is the file name's unique part: <id>.<host>,S=<size>. */
    assert_int_equal(strlen(id), 20);
    assert_int_equal(strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUV"), 20);

    only_file(dest, file);
    /* the chunks split CRLF pairs too: the file is the same as for one append */
    assert_file_is_lf(file, data, len);
    size_t lflen;
    free(lf_of(data, len, &lflen));
    assert_true(lflen < len); /* the data holds CRLF pairs */
    const char *base = strrchr(file, '/') + 1;
    assert_int_equal(strncmp(base, id, 20), 0);
    assert_int_equal(base[20], '.');
    char sizes[64];
    snprintf(sizes, sizeof sizes, ",S=%zu,W=200000", lflen);
    assert_non_null(strstr(base, sizes));
    assert_null(strchr(base, '/'));

    assert_int_equal(tu_count(f->root, NULL), 0); /* nothing left in tmp_root */
    static const char *const subs[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        assert_int_equal(stat(tu_path(sub, "%s/%s", dest, subs[i]), &sb), 0);
        assert_true(S_ISDIR(sb.st_mode));
        assert_int_equal(sb.st_mode & 0777, 0700);
    }
    assert_int_equal(tu_count(tu_path(sub, "%s/tmp", dest), NULL), 0);
    assert_int_equal(tu_count(tu_path(sub, "%s/cur", dest), NULL), 0);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    free(data);
}

static void test_empty_message(void **state)
{
    struct fx *f = *state;
    char dest[PATH_MAX], file[PATH_MAX];
    tu_path(dest, "%s/m", f->dir);
    const char *dests[] = {dest};
    assert_int_equal(deliver(f->st, "", 0, NULL, 0, dests, 1, NULL), SK_STORE_OK);
    only_file(dest, file);
    assert_file_is(file, "", 0);
    assert_non_null(strstr(file, ",S=0,W=0"));
}

static void test_three_recipients_hard_linked(void **state)
{
    struct fx *f = *state;
    const char *msg = "From: a@example.org\r\nSubject: x\r\n\r\nhello\r\n";
    char d[3][PATH_MAX], file[3][PATH_MAX];
    for (int i = 0; i < 3; i++)
        tu_path(d[i], "%s/users/u%d/Maildir", f->dir, i);
    const char *dests[] = {d[0], d[1], d[2]};
    assert_int_equal(deliver_str(f->st, msg, dests, 3), SK_STORE_OK);
    struct stat sb[3];
    for (int i = 0; i < 3; i++) {
        only_file(d[i], file[i]);
        assert_file_is(file[i], "From: a@example.org\nSubject: x\n\nhello\n", strlen(msg) - 4);
        assert_int_equal(stat(file[i], &sb[i]), 0);
    }
    assert_int_equal(sb[0].st_ino, sb[1].st_ino);
    assert_int_equal(sb[0].st_ino, sb[2].st_ino);
    assert_int_equal(sb[0].st_nlink, 3); /* the tmp name is gone */
    assert_int_equal(tu_count(f->root, NULL), 0);
}

/* CRLF becomes LF whatever the chunks; a CR without LF (in the middle, or
 * last) stays; the name says both sizes as Dovecot does: S= the file, W=
 * the RFC 822 size. */
static void test_lf_line_ends_and_sizes(void **state)
{
    struct fx *f = *state;
    static const char msg[] = "A: b\r\n\r\nx\ry\r\r\nz\r\n\r";
    static const char want[] = "A: b\n\nx\ry\r\nz\n\r";
    char dest[PATH_MAX], file[PATH_MAX];
    tu_path(dest, "%s/m", f->dir);
    const char *dests[] = {dest};
    /* every split point, one byte at a time, and whole */
    static const size_t ones[] = {1};
    for (int way = 0; way < 2; way++) {
        char sub[PATH_MAX];
        tu_path(sub, "%s/%d", dest, way);
        const char *d1[] = {sub};
        assert_int_equal(
            deliver(f->st, msg, sizeof msg - 1, way ? ones : NULL, way ? 1 : 0, d1, 1, NULL),
            SK_STORE_OK);
        only_file(sub, file);
        assert_file_is(file, want, sizeof want - 1);
        char sizes[64];
        snprintf(sizes, sizeof sizes, ",S=%zu,W=%zu", sizeof want - 1, sizeof msg - 1);
        assert_non_null(strstr(strrchr(file, '/'), sizes));
    }
    (void)dests;
}

static void test_same_maildir_twice_delivers_once(void **state)
{
    struct fx *f = *state;
    char d[PATH_MAX], d2[PATH_MAX], file[PATH_MAX];
    tu_path(d, "%s/m", f->dir);
    tu_path(d2, "%s//m/", f->dir);
    const char *dests[] = {d, d2, d};
    assert_int_equal(deliver_str(f->st, "x\r\n", dests, 3), SK_STORE_OK);
    only_file(d, file);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    assert_int_equal(sb.st_nlink, 1);
}

static void test_abort_leaves_nothing(void **state)
{
    struct fx *f = *state;
    char id[32];
    sk_store_result r;
    sk_store_msg *m = sk_store_begin(f->st, id, &r);
    assert_non_null(m);
    assert_int_equal(r, SK_STORE_OK);
    assert_int_equal(tu_count(f->root, NULL), 1); /* the tmp file exists meanwhile */
    char *data = make_data(100000, 2);            /* larger than the write-behind */
    assert_int_equal(sk_store_append(m, data, 100000), SK_STORE_OK);
    sk_store_abort(m);
    assert_int_equal(tu_count(f->root, NULL), 0);
    sk_store_abort(NULL); /* harmless */
    free(data);
}

static void test_stale_tmp_cleaned_at_open(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], err[256];
    sk_store_close(f->st);
    f->st = NULL;
    /* What a killed process leaves: plain files, a half-created ".name",
     * a symlink. A subdirectory is not ours and stays. */
    static const char *const stale[] = {"1700000000.M1P1Q1.host", "junk"};
    for (int i = 0; i < 2; i++) {
        int fd = open(tu_path(p, "%s/%s", f->root, stale[i]), O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "partial", 7), 7);
        close(fd);
    }
    int fd = open(tu_path(p, "%s/.1700000000.M2P1Q2.host", f->root), O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    struct timespec old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    assert_int_equal(symlink("/nonexistent", tu_path(p, "%s/link", f->root)), 0);
    assert_int_equal(mkdir(tu_path(p, "%s/subdir", f->root), 0700), 0);
    /* A file another live process is writing: locked, so it stays. */
    int busy = open(tu_path(p, "%s/busy", f->root), O_CREAT | O_WRONLY, 0600);
    assert_true(busy >= 0);
    assert_int_equal(flock(busy, LOCK_EX), 0);
    /* A ".name" just being created by a live process (recent): stays. */
    int fresh = open(tu_path(p, "%s/.fresh", f->root), O_CREAT | O_WRONLY, 0600);
    assert_true(fresh >= 0);
    close(fresh);
    assert_int_equal(tu_count(f->root, NULL), 7);

    f->st = sk_store_maildir_open(f->root, err, sizeof err);
    assert_non_null(f->st);
    assert_int_equal(tu_count(f->root, NULL), 3);
    struct stat sb;
    assert_int_equal(stat(tu_path(p, "%s/busy", f->root), &sb), 0);
    assert_int_equal(stat(tu_path(p, "%s/subdir", f->root), &sb), 0);
    assert_int_equal(stat(tu_path(p, "%s/.fresh", f->root), &sb), 0);

    close(busy); /* its process "exits": the next open removes it */
    sk_store_close(f->st);
    f->st = sk_store_maildir_open(f->root, err, sizeof err);
    assert_non_null(f->st);
    assert_int_equal(tu_count(f->root, NULL), 2);
    assert_int_equal(stat(tu_path(p, "%s/busy", f->root), &sb), -1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Every file in maildir/new holds "<tag> <n>\r\n" for n < count, each once. */
static void assert_numbered_set(const char *maildir, const char *tag, int count)
{
    char newdir[PATH_MAX], p[PATH_MAX];
    tu_path(newdir, "%s/new", maildir);
    char *seen = calloc((size_t)count, 1);
    assert_non_null(seen);
    DIR *d = opendir(newdir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        char *c = tu_read(tu_path(p, "%s/%s", newdir, de->d_name), &len);
        assert_non_null(c);
        char t[32];
        int n = -1;
        assert_int_equal(sscanf(c, "%31s %d", t, &n), 2);
        assert_string_equal(t, tag);
        assert_true(n >= 0 && n < count);
        assert_int_equal(seen[n], 0);
        seen[n] = 1;
        free(c);
        files++;
    }
    closedir(d);
    assert_int_equal(files, count);
    free(seen);
}

static void test_many_messages_unique_names(void **state)
{
    struct fx *f = *state;
    enum { N = 500 };
    char dest[PATH_MAX], msg[64];
    tu_path(dest, "%s/m", f->dir);
    const char *dests[] = {dest};
    char(*ids)[32] = calloc(N, 32);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof msg, "msg %d\r\n", i);
        assert_int_equal(deliver(f->st, msg, (size_t)n, NULL, 0, dests, 1, ids[i]), SK_STORE_OK);
    }
    assert_numbered_set(dest, "msg", N);
    qsort(ids, N, 32, cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    assert_int_equal(tu_count(f->root, NULL), 0);
    free(ids);
}

struct thr_arg {
    sk_store *st;
    const char *dest;
    int first, count, failures;
};

static void *deliver_thread(void *p)
{
    struct thr_arg *a = p;
    const char *dests[] = {a->dest};
    char msg[64];
    for (int i = a->first; i < a->first + a->count; i++) {
        int n = snprintf(msg, sizeof msg, "par %d\r\n", i);
        if (deliver(a->st, msg, (size_t)n, NULL, 0, dests, 1, NULL) != SK_STORE_OK)
            a->failures++;
    }
    return NULL;
}

static void test_unique_across_threads_and_processes(void **state)
{
    struct fx *f = *state;
    enum { PROCS = 3, THREADS = 4, PER = 60 };
    char dest[PATH_MAX];
    tu_path(dest, "%s/shared", f->dir);
    pid_t kids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            /* Each process opens its own store on the same tmp_root, so the
             * cleaning at open runs while the others deliver. */
            char err[256];
            sk_store *st = sk_store_maildir_open(f->root, err, sizeof err);
            if (!st)
                _exit(100);
            struct thr_arg a[THREADS];
            pthread_t t[THREADS];
            for (int i = 0; i < THREADS; i++) {
                a[i] = (struct thr_arg){st, dest, (k * THREADS + i) * PER, PER, 0};
                if (pthread_create(&t[i], NULL, deliver_thread, &a[i]) != 0)
                    _exit(101);
            }
            int fails = 0;
            for (int i = 0; i < THREADS; i++) {
                pthread_join(t[i], NULL);
                fails += a[i].failures;
            }
            sk_store_close(st);
            _exit(fails > 99 ? 99 : fails);
        }
    }
    /* And threads in this process at the same time. */
    struct thr_arg a[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct thr_arg){f->st, dest, (PROCS * THREADS + i) * PER, PER, 0};
        assert_int_equal(pthread_create(&t[i], NULL, deliver_thread, &a[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    for (int k = 0; k < PROCS; k++) {
        int status;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_numbered_set(dest, "par", (PROCS + 1) * THREADS * PER);
    assert_int_equal(tu_count(f->root, NULL), 0);
}

static void test_hostname_escaped_in_name(void **state)
{
    struct fx *f = *state;
    char dest[PATH_MAX], file[PATH_MAX];
    tu_path(dest, "%s/m", f->dir);
    static const char host[] = "mx/1:a,b";
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        /* A private UTS namespace: the machine's own name is not touched. */
        if (unshare(CLONE_NEWUTS) < 0 || sethostname(host, strlen(host)) < 0)
            _exit(77);
        char err[256];
        sk_store *st = sk_store_maildir_open(f->root, err, sizeof err);
        const char *dests[] = {dest};
        _exit(st && deliver_str(st, "x\r\n", dests, 1) == SK_STORE_OK ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("SKIP: cannot set a hostname in a new UTS namespace: %s\n",
                      "unshare/sethostname refused (needs root)");
        skip();
        return;
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    only_file(dest, file);
    const char *base = strrchr(file, '/') + 1;
    assert_non_null(strstr(base, ".mx\\0571\\072a\\054b,S=2,W=3"));
}

static void test_ioerror_file_where_new_should_be(void **state)
{
    struct fx *f = *state;
    char good[PATH_MAX], bad[PATH_MAX], p[PATH_MAX];
    tu_path(good, "%s/good", f->dir);
    tu_path(bad, "%s/bad", f->dir);
    assert_int_equal(mkdir(bad, 0700), 0);
    int fd = open(tu_path(p, "%s/new", bad), O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    /* good first: its link is made, then must be taken back. */
    const char *dests[] = {good, bad};
    assert_int_equal(deliver_str(f->st, "hello\r\n", dests, 2), SK_STORE_IOERR);
    assert_int_equal(tu_count(tu_path(p, "%s/new", good), NULL), 0);
    assert_int_equal(tu_count(f->root, NULL), 0);
}

static void test_ioerror_parent_is_a_file(void **state)
{
    struct fx *f = *state;
    char file[PATH_MAX], dest[PATH_MAX];
    int fd = open(tu_path(file, "%s/plain", f->dir), O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    const char *dests[] = {tu_path(dest, "%s/plain/user/Maildir", f->dir)};
    assert_int_equal(deliver_str(f->st, "hello\r\n", dests, 1), SK_STORE_IOERR);
    assert_int_equal(tu_count(f->root, NULL), 0);
}

static void test_ioerror_tmp_root_gone(void **state)
{
    struct fx *f = *state;
    char id[32], dest[PATH_MAX];
    sk_store_result r = SK_STORE_OK;
    tu_rm_rf(f->root);
    assert_null(sk_store_begin(f->st, id, &r));
    assert_int_equal(r, SK_STORE_IOERR);
    /* A message begun before the directory vanished fails at commit. */
    assert_int_equal(mkdir(f->root, 0700), 0);
    sk_store_close(f->st);
    char err[256];
    f->st = sk_store_maildir_open(f->root, err, sizeof err);
    assert_non_null(f->st);
    sk_store_msg *m = sk_store_begin(f->st, id, &r);
    assert_non_null(m);
    assert_int_equal(sk_store_append(m, "x\r\n", 3), SK_STORE_OK);
    tu_rm_rf(f->root);
    const char *dests[] = {tu_path(dest, "%s/m", f->dir)};
    assert_int_equal(sk_store_commit_maildirs(m, dests, 1), SK_STORE_IOERR);
    assert_int_equal(tu_count(tu_path(dest, "%s/m/new", f->dir), NULL), 0);
}

static void test_open_errors(void **state)
{
    struct fx *f = *state;
    char err[256], p[PATH_MAX];
    assert_null(sk_store_maildir_open(NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(sk_store_maildir_open("", err, sizeof err));
    int fd = open(tu_path(p, "%s/afile", f->dir), O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    err[0] = '\0';
    assert_null(sk_store_maildir_open(p, err, sizeof err));
    assert_non_null(strstr(err, p));
    assert_non_null(strstr(err, strerror(ENOTDIR)));
    assert_null(sk_store_maildir_open(p, NULL, 0)); /* no message buffer: fine */
}

static void test_bad_arguments(void **state)
{
    struct fx *f = *state;
    char id[32], dest[PATH_MAX];
    sk_store_result r = SK_STORE_OK;
    assert_null(sk_store_begin(NULL, id, &r));
    assert_int_equal(r, SK_STORE_IOERR);
    assert_null(sk_store_begin(f->st, NULL, NULL));
    assert_int_equal(sk_store_append(NULL, "x", 1), SK_STORE_IOERR);
    assert_int_equal(sk_store_commit_maildirs(NULL, NULL, 0), SK_STORE_IOERR);
    tu_path(dest, "%s/m", f->dir);

    /* No recipients, a NULL recipient, an empty path: refused, and the
     * message is gone afterwards (commit frees it in every case). */
    const char *none[] = {NULL};
    const char *empty[] = {""};
    const char *mixed[] = {dest, NULL};
    sk_store_msg *m = sk_store_begin(f->st, id, &r);
    assert_non_null(m);
    assert_int_equal(sk_store_commit_maildirs(m, NULL, 1), SK_STORE_IOERR);
    m = sk_store_begin(f->st, id, &r);
    assert_int_equal(sk_store_commit_maildirs(m, mixed, 0), SK_STORE_IOERR);
    m = sk_store_begin(f->st, id, &r);
    assert_int_equal(sk_store_commit_maildirs(m, none, 1), SK_STORE_IOERR);
    m = sk_store_begin(f->st, id, &r);
    assert_int_equal(sk_store_commit_maildirs(m, empty, 1), SK_STORE_IOERR);
    m = sk_store_begin(f->st, id, &r);
    assert_int_equal(sk_store_commit_maildirs(m, mixed, 2), SK_STORE_IOERR);
    assert_int_equal(tu_count(tu_path(dest, "%s/m/new", f->dir), NULL), 0);
    /* A NULL pointer with a length poisons the message. */
    m = sk_store_begin(f->st, id, &r);
    assert_int_equal(sk_store_append(m, NULL, 5), SK_STORE_IOERR);
    assert_int_equal(sk_store_append(m, "ok", 2), SK_STORE_IOERR);
    assert_int_equal(sk_store_commit_maildirs(m, mixed, 1), SK_STORE_IOERR);
    assert_int_equal(tu_count(tu_path(dest, "%s/m/new", f->dir), NULL), 0);
    assert_int_equal(tu_count(f->root, NULL), 0);
}

static void test_clean_tmp_helper(void **state)
{
    struct fx *f = *state;
    char md[PATH_MAX], p[PATH_MAX];
    tu_path(md, "%s/mb", f->dir);
    assert_int_equal(sk_store_maildir_clean_tmp(md), 0); /* no tmp/ yet */
    const char *dests[] = {md};
    assert_int_equal(deliver_str(f->st, "keep\r\n", dests, 1), SK_STORE_OK);
    static const char *const names[] = {"old1", "old2", "recent", "oldaccess"};
    for (int i = 0; i < 4; i++) {
        int fd = open(tu_path(p, "%s/tmp/%s", md, names[i]), O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    time_t now = time(NULL);
    struct timespec aged[2] = {{now - 37 * 3600, 0}, {now - 37 * 3600, 0}};
    struct timespec young[2] = {{now - 35 * 3600, 0}, {now - 35 * 3600, 0}};
    struct timespec read_lately[2] = {{now - 60, 0}, {now - 40 * 3600, 0}};
    assert_int_equal(utimensat(AT_FDCWD, tu_path(p, "%s/tmp/old1", md), aged, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, tu_path(p, "%s/tmp/old2", md), aged, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, tu_path(p, "%s/tmp/recent", md), young, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, tu_path(p, "%s/tmp/oldaccess", md), read_lately, 0), 0);
    assert_int_equal(sk_store_maildir_clean_tmp(md), 2);
    assert_int_equal(tu_count(tu_path(p, "%s/tmp", md), NULL), 2);
    assert_int_equal(tu_count(tu_path(p, "%s/new", md), NULL), 1); /* new/ untouched */
    assert_int_equal(sk_store_maildir_clean_tmp(NULL), -1);
}

/* A fresh tmpfs of the given options under f->dir/<name>; 0, or the test is
 * skipped when mounting is not possible here. */
static int mount_or_skip(struct fx *f, const char *name, const char *opts, char *mnt)
{
    tu_path(mnt, "%s/%s", f->dir, name);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (tu_mount_tmpfs(mnt, opts) < 0) {
        print_message("SKIP: cannot mount tmpfs (%s) on %s: %s (needs root and mount "
                      "permission)\n",
                      opts, mnt, strerror(errno));
        return -1;
    }
    snprintf(f->mnt, sizeof f->mnt, "%s", mnt);
    return 0;
}

static void unmount_fx(struct fx *f)
{
    tu_umount(f->mnt);
    f->mnt[0] = '\0';
}

static void test_nospace_on_append(void **state)
{
    struct fx *f = *state;
    char mnt[PATH_MAX], root[PATH_MAX], dest[PATH_MAX], p[PATH_MAX], err[256], id[32];
    if (mount_or_skip(f, "full", "size=1m", mnt) < 0) {
        skip();
        return;
    }
    struct statvfs before, after;
    assert_int_equal(statvfs(mnt, &before), 0);
    sk_store *st = sk_store_maildir_open(tu_path(root, "%s/spool", mnt), err, sizeof err);
    assert_non_null(st);
    tu_path(dest, "%s/mb", mnt);
    const char *dests[] = {dest};

    sk_store_result r;
    sk_store_msg *m = sk_store_begin(st, id, &r);
    assert_non_null(m);
    char *chunk = make_data(65536, 3);
    sk_store_result last = SK_STORE_OK;
    for (int i = 0; i < 40 && last == SK_STORE_OK; i++) /* 2.5 MiB into 1 MiB */
        last = sk_store_append(m, chunk, 65536);
    assert_int_equal(last, SK_STORE_NOSPACE);
    assert_int_equal(sk_store_append(m, "x", 1), SK_STORE_NOSPACE); /* sticky */
    assert_int_equal(sk_store_commit_maildirs(m, dests, 1), SK_STORE_NOSPACE);
    int n = tu_count(tu_path(p, "%s/new", dest), NULL);
    assert_true(n <= 0); /* never created, or empty */
    assert_int_equal(tu_count(root, NULL), 0);
    assert_int_equal(statvfs(mnt, &after), 0);
    assert_true(after.f_bfree + 2 >= before.f_bfree); /* the space came back */

    /* A message that fits still goes through on the same filesystem. */
    assert_int_equal(deliver_str(st, "small\r\n", dests, 1), SK_STORE_OK);
    only_file(dest, p);
    assert_file_is(p, "small\n", 6);
    sk_store_close(st);
    free(chunk);
    unmount_fx(f);
}

static void test_nospace_mid_commit_rolls_back(void **state)
{
    struct fx *f = *state;
    char mnt[PATH_MAX], root[PATH_MAX], d1[PATH_MAX], d2[PATH_MAX], p[PATH_MAX], err[256];
    char id[32];
    if (mount_or_skip(f, "inodes", "size=1m,nr_inodes=64", mnt) < 0) {
        skip();
        return;
    }
    sk_store *st = sk_store_maildir_open(tu_path(root, "%s/spool", mnt), err, sizeof err);
    assert_non_null(st);
    tu_path(d1, "%s/one", mnt);
    tu_path(d2, "%s/two", mnt);
    const char *first[] = {d1};
    assert_int_equal(deliver_str(st, "warm\r\n", first, 1), SK_STORE_OK); /* d1 exists */
    only_file(d1, p);
    assert_int_equal(unlink(p), 0);

    sk_store_result r;
    sk_store_msg *m = sk_store_begin(st, id, &r);
    assert_non_null(m);
    assert_int_equal(sk_store_append(m, "body\r\n", 6), SK_STORE_OK);
    /* Use up the inodes, then give one back: enough for the link into d1,
     * not for creating d2's Maildir. */
    int fills = 0;
    for (; fills < 200; fills++) {
        int fd = open(tu_path(p, "%s/fill%d", mnt, fills), O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0) {
            assert_int_equal(errno, ENOSPC);
            break;
        }
        close(fd);
    }
    assert_true(fills > 0 && fills < 200);
    assert_int_equal(unlink(tu_path(p, "%s/fill0", mnt)), 0);

    const char *both[] = {d1, d2};
    assert_int_equal(sk_store_commit_maildirs(m, both, 2), SK_STORE_NOSPACE);
    assert_int_equal(tu_count(tu_path(p, "%s/new", d1), NULL), 0); /* link taken back */
    int n = tu_count(tu_path(p, "%s/new", d2), NULL);
    assert_true(n <= 0);
    assert_int_equal(tu_count(root, NULL), 0);
    sk_store_close(st);
    unmount_fx(f);
}

static void test_cross_filesystem_copies(void **state)
{
    struct fx *f = *state;
    char mnt[PATH_MAX], root[PATH_MAX], d[2][PATH_MAX], file[2][PATH_MAX], p[PATH_MAX];
    char err[256];
    if (mount_or_skip(f, "otherfs", "size=4m", mnt) < 0) {
        skip();
        return;
    }
    /* tmp_root on the tmpfs, the Maildirs on the test directory's fs. */
    sk_store *st = sk_store_maildir_open(tu_path(root, "%s/spool", mnt), err, sizeof err);
    assert_non_null(st);
    const size_t len = 150000;
    char *data = make_data(len, 4);
    static const size_t chunks[] = {4096};
    tu_path(d[0], "%s/x", f->dir);
    tu_path(d[1], "%s/y", f->dir);
    const char *dests[] = {d[0], d[1]};
    assert_int_equal(deliver(st, data, len, chunks, 1, dests, 2, NULL), SK_STORE_OK);
    struct stat sb[2];
    for (int i = 0; i < 2; i++) {
        only_file(d[i], file[i]);
        assert_file_is_lf(file[i], data, len);
        assert_int_equal(stat(file[i], &sb[i]), 0);
        assert_int_equal(tu_count(tu_path(p, "%s/tmp", d[i]), NULL), 0);
    }
    assert_int_equal(sb[0].st_ino, sb[1].st_ino); /* copied once, then linked */
    assert_int_equal(tu_count(root, NULL), 0);
    sk_store_close(st);
    free(data);
    unmount_fx(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_one_recipient_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_recipients_hard_linked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lf_line_ends_and_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_maildir_twice_delivers_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_tmp_cleaned_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_messages_unique_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_across_threads_and_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostname_escaped_in_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioerror_file_where_new_should_be, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioerror_parent_is_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioerror_tmp_root_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_tmp_helper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nospace_on_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nospace_mid_commit_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_filesystem_copies, setup, teardown),
    };
    return cmocka_run_group_tests_name("maildir", tests, NULL, NULL);
}
