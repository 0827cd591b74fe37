/*
 * test_queue_control.c - the server's queue control socket
 * (server/queue_control.c) over a real Unix socket and a real event loop,
 * with no delivery agent: KICK answered OK, FLUSH and BOUNCE refused,
 * garbage and over-long lines refused, a line ended by EOF answered, the
 * connection cap, mode 0600, a stale socket replaced, a live one refused,
 * the file removed at the end. The client side is queue/control_socket.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>

#include <event2/event.h>

#include "queue/control_line.h"
#include "queue/control_socket.h"
#include "queue/queue_dir.h"
#include "server/queue_control.h"
#include "store_test_util.h"

typedef struct fixture {
    char *root;
    struct event_base *base;
    sk_queue_control *qc;
    atomic_int done;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->root = tu_mkdtemp();
    char err[256];
    sk_queue_dir *q = sk_queue_dir_open(f->root, err, sizeof err); /* msg/ env/ tmp/ */
    assert_non_null(q);
    sk_queue_dir_close(q);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->qc = sk_queue_control_start(f->base, f->root, NULL, err, sizeof err);
    if (!f->qc)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sk_queue_control_free(f->qc);
    event_base_free(f->base);
    tu_rm_rf(f->root);
    free(f->root);
    free(f);
    return 0;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fixture *f = arg;
    if (atomic_load(&f->done))
        event_base_loopbreak(f->base);
}

/* Run the loop while fn runs as a client on another thread. */
static void with_loop(fixture *f, void *(*fn)(void *))
{
    atomic_store(&f->done, 0);
    struct event *t = event_new(f->base, -1, EV_PERSIST, tick, f);
    struct timeval tv = {0, 10000};
    event_add(t, &tv);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, f), 0);
    event_base_dispatch(f->base);
    pthread_join(th, NULL);
    event_free(t);
}

static int raw_connect(const char *root)
{
    struct sockaddr_un sa;
    socklen_t len;
    if (sk_control_sockaddr(root, -1, SK_CONTROL_SOCKET_NAME, &sa, &len) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Everything the server writes until it closes (at most cap-1 octets). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    return got;
}

typedef struct results {
    int rc[8];
    char reply[8][SK_CONTROL_LINE_MAX + 64];
    char raw[4][SK_CONTROL_LINE_MAX + 64];
} results;
static results R;

static void *client_requests(void *arg)
{
    fixture *f = arg;
    const char *lines[] = {
        "KICK 0QJ2K5O1A3B4C00E1F00\n",   "FLUSH\n",          "FLUSH example.net\n",
        "BOUNCE 0QJ2K5O1A3B4C00E1F00\n", "GET / HTTP/1.0\n", "KICK ../x\n"};
    for (size_t i = 0; i < 6; i++)
        R.rc[i] = sk_control_request(f->root, lines[i], R.reply[i], sizeof R.reply[i], 5000);

    /* a line too long, with no line end: refused as soon as it is too long */
    int fd = raw_connect(f->root);
    char big[SK_CONTROL_LINE_MAX + 100];
    memset(big, 'A', sizeof big);
    if (fd >= 0) {
        ssize_t w = write(fd, big, sizeof big);
        (void)w;
        read_all(fd, R.raw[0], sizeof R.raw[0]);
        close(fd);
    }
    /* a line ended by EOF (shutdown) instead of LF */
    if ((fd = raw_connect(f->root)) >= 0) {
        ssize_t w = write(fd, "KICK abc", 8);
        (void)w;
        shutdown(fd, SHUT_WR);
        read_all(fd, R.raw[1], sizeof R.raw[1]);
        close(fd);
    }
    /* two lines at once: only the first is answered, then the server closes */
    if ((fd = raw_connect(f->root)) >= 0) {
        ssize_t w = write(fd, "KICK abc\nFLUSH\n", 15);
        (void)w;
        read_all(fd, R.raw[2], sizeof R.raw[2]);
        close(fd);
    }
    atomic_store(&f->done, 1);
    return NULL;
}

static void test_requests_without_agent(void **state)
{
    fixture *f = *state;
    memset(&R, 0, sizeof R);
    with_loop(f, client_requests);
    assert_int_equal(R.rc[0], 1);
    assert_non_null(strstr(R.reply[0], "no delivery agent running"));
    assert_int_equal(R.rc[1], 0);
    assert_string_equal(R.reply[1], "no delivery agent running");
    assert_int_equal(R.rc[2], 0);
    assert_int_equal(R.rc[3], 0);
    assert_string_equal(R.reply[3], "no delivery agent running");
    assert_int_equal(R.rc[4], 0);
    assert_string_equal(R.reply[4], "unknown command");
    assert_int_equal(R.rc[5], 0);
    assert_string_equal(R.reply[5], "malformed queue id");
    assert_string_equal(R.raw[0], "ERR line too long\n");
    assert_true(strncmp(R.raw[1], "OK abc: ", 8) == 0);
    assert_true(strncmp(R.raw[2], "OK abc: ", 8) == 0);
    assert_null(strstr(R.raw[2], "ERR")); /* the FLUSH was never answered */
}

static void *client_cap(void *arg)
{
    fixture *f = arg;
    int fds[SK_QUEUE_CONTROL_CONNS];
    for (int i = 0; i < SK_QUEUE_CONTROL_CONNS; i++)
        fds[i] = raw_connect(f->root); /* idle: they hold every slot */
    usleep(200000);
    int extra = raw_connect(f->root);
    if (extra >= 0) {
        read_all(extra, R.raw[0], sizeof R.raw[0]);
        close(extra);
    }
    for (int i = 0; i < SK_QUEUE_CONTROL_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    usleep(200000);
    /* slots free again */
    R.rc[0] = sk_control_request(f->root, "KICK abc\n", R.reply[0], sizeof R.reply[0], 5000);
    atomic_store(&f->done, 1);
    return NULL;
}

static void test_connection_cap(void **state)
{
    fixture *f = *state;
    memset(&R, 0, sizeof R);
    with_loop(f, client_cap);
    assert_string_equal(R.raw[0], "ERR busy\n");
    assert_int_equal(R.rc[0], 1);
}

static void test_socket_file(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    tu_path(path, "%s/control", f->root);
    struct stat sb;
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(tu_count(tu_path(path, "%s/tmp", f->root), NULL), 0);
    /* a second server on the same queue is refused while this one listens */
    char err[256];
    struct event_base *b2 = event_base_new();
    assert_null(sk_queue_control_start(b2, f->root, NULL, err, sizeof err));
    assert_non_null(strstr(err, "another server"));
    /* gone: the file is removed; a socket left by a dead server is replaced */
    sk_queue_control_free(f->qc);
    f->qc = NULL;
    tu_path(path, "%s/control", f->root);
    assert_int_equal(lstat(path, &sb), -1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    socklen_t salen;
    assert_int_equal(sk_control_sockaddr(f->root, -1, "control", &sa, &salen), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
    close(fd); /* bound, never listening: connect is refused */
    assert_int_equal(sk_control_probe(f->root), 0);
    char reply[64];
    assert_int_equal(sk_control_request(f->root, "KICK a\n", reply, sizeof reply, 1000), -1);
    f->qc = sk_queue_control_start(b2, f->root, NULL, err, sizeof err);
    assert_non_null(f->qc);
    sk_queue_control_free(f->qc);
    f->qc = NULL;
    event_base_free(b2);
    assert_int_equal(sk_control_probe(f->root), 0);
}

/* A queue directory whose path does not fit in sun_path still works
 * (through /proc/self/fd). */
static void *client_kick(void *arg)
{
    fixture *f = arg;
    R.rc[0] = sk_control_request(f->root, "KICK abc\n", R.reply[0], sizeof R.reply[0], 5000);
    atomic_store(&f->done, 1);
    return NULL;
}

static void test_long_path(void **state)
{
    fixture *f = *state;
    sk_queue_control_free(f->qc);
    f->qc = NULL;
    char deep[PATH_MAX];
    tu_path(deep, "%s/%0120d", f->root, 7);
    assert_int_equal(mkdir(deep, 0700), 0);
    char err[256];
    sk_queue_dir *q = sk_queue_dir_open(deep, err, sizeof err);
    assert_non_null(q);
    sk_queue_dir_close(q);
    char *saved = f->root;
    f->root = deep;
    f->qc = sk_queue_control_start(f->base, deep, NULL, err, sizeof err);
    if (!f->qc)
        fail_msg("%s", err);
    memset(&R, 0, sizeof R);
    with_loop(f, client_kick);
    f->root = saved;
    assert_int_equal(R.rc[0], 1);
}

/* Out of descriptors: accept() fails with EMFILE while a client waits.
 * The server pauses accepting instead of spinning on the readable socket,
 * and serves the client once descriptors are back. */
typedef struct emfile_state {
    fixture *f;
    pid_t child;
    int status;
    long long t0;
    int restored;
    struct rlimit saved;
    double cpu_in_window;
} emfile_state;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double cpu0;

static void emfile_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    emfile_state *s = arg;
    if (!s->restored && mono_ms() - s->t0 >= 700) {
        s->cpu_in_window = cpu_s() - cpu0;
        setrlimit(RLIMIT_NOFILE, &s->saved);
        s->restored = 1;
    }
    if (s->restored && waitpid(s->child, &s->status, WNOHANG) == s->child) {
        s->child = 0;
        event_base_loopbreak(s->f->base);
    }
    if (mono_ms() - s->t0 > 10000)
        event_base_loopbreak(s->f->base);
}

static void test_out_of_descriptors(void **state)
{
    fixture *f = *state;
    emfile_state s = {.f = f};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usleep(100000);
        char reply[256];
        int rc = sk_control_request(f->root, "KICK abc\n", reply, sizeof reply, 5000);
        _exit(rc == 1 ? 0 : 1);
    }
    s.child = pid;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &s.saved), 0);
    int next = dup(0); /* the lowest free descriptor: allow none from here */
    close(next);
    struct rlimit low = s.saved;
    low.rlim_cur = (rlim_t)next;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct event *t = event_new(f->base, -1, EV_PERSIST, emfile_tick, &s);
    struct timeval tv = {0, 20000};
    event_add(t, &tv);
    s.t0 = mono_ms();
    cpu0 = cpu_s();
    event_base_dispatch(f->base);
    event_free(t);
    if (!s.restored)
        setrlimit(RLIMIT_NOFILE, &s.saved);
    if (s.child) {
        kill(s.child, SIGKILL);
        waitpid(s.child, &s.status, 0);
        fail_msg("the client was never served");
    }
    assert_true(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0);
    /* 700 ms with a pending connection it could not accept: no spinning */
    if (s.cpu_in_window > 0.3)
        fail_msg("%.2f s of CPU while out of descriptors", s.cpu_in_window);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_without_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_descriptors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
