/*
 * test_dovecot_auth.c - the client of Dovecot's auth socket
 * (server/dovecot_auth.c) on a real libevent loop against a scripted auth
 * server on a Unix socket: the handshake both ways, the mechanisms taken
 * from MECH lines, two requests multiplexed and answered out of order,
 * FAIL temp, a lost connection and a protocol error answering -1 (never
 * 1), the reconnect, and callbacks never coming from inside the call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "server/dovecot_auth.h"
#include "smtpkit/sasl.h"

static char dir[64], path[96];
static int lfd = -1;

typedef struct answer {
    int n;
    int result[16];
    char user[16][64];
    int tag[16];
} answer;

static answer got;
static int in_call;

static void cb(void *arg, int result, const char *user)
{
    assert_false(in_call); /* never from inside sk_dovecot_auth_check() */
    got.tag[got.n] = (int)(intptr_t)arg;
    got.result[got.n] = result;
    snprintf(got.user[got.n], sizeof got.user[0], "%s", user ? user : "");
    got.n++;
}

static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Read what the client sent within ms (the loop runs meanwhile). */
static size_t server_read(struct event_base *base, int fd, char *buf, size_t max, int ms)
{
    size_t n = 0;
    for (int i = 0; i < ms / 10; i++) {
        run_for(base, 10);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (poll(&p, 1, 0) == 1 && n < max - 1) {
            ssize_t r = read(fd, buf + n, max - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        buf[n] = '\0';
        if (n && buf[n - 1] == '\n')
            break;
    }
    return n;
}

/* Close connections a previous client left in the backlog. */
static void drain_backlog(void)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    while (poll(&p, 1, 0) == 1) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            break;
        close(fd);
    }
}

static int server_accept(struct event_base *base)
{
    for (int i = 0; i < 300; i++) {
        run_for(base, 10);
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1)
            return accept(lfd, NULL, NULL);
    }
    return -1;
}

static void server_write(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-dauth-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/auth-client", dir);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof sun) || listen(lfd, 4))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(lfd);
    unlink(path);
    rmdir(dir);
    return 0;
}

static unsigned long id_of(const char *line)
{
    const char *t = strchr(line, '\t');
    return t ? strtoul(t + 1, NULL, 10) : 0;
}

/* The AUTH line (of several) for user: its id, and its resp= decoded. */
static unsigned long find_auth(const char *lines, const char *user)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", lines);
    for (char *l = strtok(copy, "\n"); l; l = strtok(NULL, "\n")) {
        const char *resp = strstr(l, "\tresp=");
        if (strncmp(l, "AUTH\t", 5) || !resp)
            continue;
        unsigned char dec[256];
        ssize_t n = sk_sasl_b64_decode(resp + 6, strlen(resp + 6), dec, sizeof dec);
        if (n > 0 && dec[0] == 0 && !memcmp(dec + 1, user, strlen(user)))
            return id_of(l);
    }
    return 0;
}

static void check(sk_dovecot_auth *da, const char *user, const char *pw, int tag)
{
    sk_dovecot_conn_info info = {.secured = 1, .rip = "192.0.2.9", .rport = 4000};
    in_call = 1;
    assert_int_equal(sk_dovecot_auth_check(da, user, pw, &info, cb, (void *)(intptr_t)tag), 0);
    in_call = 0;
}

static void handshake(struct event_base *base, int fd, const char *mechs)
{
    char buf[4096];
    server_read(base, fd, buf, sizeof buf, 2000);
    char want[64];
    snprintf(want, sizeof want, "VERSION\t1\t2\nCPID\t%d\n", (int)getpid());
    assert_string_equal(buf, want);
    server_write(fd, "VERSION\t1\t2\n");
    server_write(fd, mechs);
    server_write(fd, "SPID\t1\nCUID\t3\nCOOKIE\t00ff\nDONE\n");
    for (int i = 0; i < 100 && !got.n; i++)
        run_for(base, 10);
}

static void test_requests_by_id(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    sk_dovecot_auth *da = sk_dovecot_auth_new(base, path);
    assert_non_null(da);
    /* before any handshake both mechanisms are offered (AUTH gets 454) */
    assert_int_equal(sk_dovecot_auth_mechs(da), SK_DOVECOT_MECH_PLAIN | SK_DOVECOT_MECH_LOGIN);
    sk_dovecot_auth_start(da);
    int fd = server_accept(base);
    assert_true(fd >= 0);
    memset(&got, 0, sizeof got);
    handshake(base, fd,
              "MECH\tPLAIN\tplaintext\nMECH\tCRAM-MD5\tdictionary\nMECH\tLOGIN\tprivate\n");
    assert_true(sk_dovecot_auth_ready(da));
    assert_int_equal(sk_dovecot_auth_mechs(da), SK_DOVECOT_MECH_PLAIN);

    /* two requests in flight, answered in the other order */
    check(da, "alice", "wonderland", 1);
    check(da, "bob", "builder", 2);
    assert_int_equal(got.n, 0);
    char buf[4096];
    server_read(base, fd, buf, sizeof buf, 2000);
    if (!strstr(buf, "bob"))
        server_read(base, fd, buf + strlen(buf), sizeof buf - strlen(buf), 2000);
    unsigned long ida = find_auth(buf, "alice"), idb = find_auth(buf, "bob");
    assert_true(ida && idb && ida != idb);
    assert_non_null(strstr(buf, "\tPLAIN\tservice=smtp\tnologin\tsecured\trip=192.0.2.9\t"
                                "rport=4000\tresp="));
    char line[128];
    snprintf(line, sizeof line, "OK\t%lu\tuser=bob@example.test\n", idb);
    server_write(fd, line);
    snprintf(line, sizeof line, "FAIL\t%lu\tuser=alice\n", ida);
    server_write(fd, line);
    for (int i = 0; i < 100 && got.n < 2; i++)
        run_for(base, 10);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.tag[0], 2);
    assert_int_equal(got.result[0], 1);
    assert_string_equal(got.user[0], "bob@example.test");
    assert_int_equal(got.tag[1], 1);
    assert_int_equal(got.result[1], 0);

    /* an answer for an id nobody asked about is ignored; FAIL temp is -1 */
    server_write(fd, "OK\t999\tuser=mallory\n");
    check(da, "carol", "x", 3);
    server_read(base, fd, buf, sizeof buf, 2000);
    snprintf(line, sizeof line, "FAIL\t%lu\ttemp\n", find_auth(buf, "carol"));
    server_write(fd, line);
    for (int i = 0; i < 100 && got.n < 3; i++)
        run_for(base, 10);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.tag[2], 3);
    assert_int_equal(got.result[2], -1);

    /* the connection lost with a request in flight: -1, never 1 */
    check(da, "dave", "x", 4);
    server_read(base, fd, buf, sizeof buf, 2000);
    close(fd);
    for (int i = 0; i < 100 && got.n < 4; i++)
        run_for(base, 10);
    assert_int_equal(got.n, 4);
    assert_int_equal(got.result[3], -1);
    assert_false(sk_dovecot_auth_ready(da));
    /* the last mechanisms stay advertised meanwhile */
    assert_int_equal(sk_dovecot_auth_mechs(da), SK_DOVECOT_MECH_PLAIN);

    /* it reconnects by itself; a malformed line fails what is in flight */
    fd = server_accept(base);
    assert_true(fd >= 0);
    got.n = 0;
    handshake(base, fd, "MECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n");
    assert_true(sk_dovecot_auth_ready(da));
    assert_int_equal(sk_dovecot_auth_mechs(da), SK_DOVECOT_MECH_PLAIN | SK_DOVECOT_MECH_LOGIN);
    check(da, "erin", "x", 5);
    server_read(base, fd, buf, sizeof buf, 2000);
    server_write(fd, "OK\t0\n");
    for (int i = 0; i < 100 && got.n < 1; i++)
        run_for(base, 10);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.result[0], -1);
    close(fd);

    /* freeing answers whatever still waits */
    check(da, "frank", "x", 6);
    sk_dovecot_auth_free(da);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.result[1], -1);
    event_base_free(base);
}

/* LOGIN only: the two challenges are answered with user, then password. */
static void test_login_steps(void **state)
{
    (void)state;
    drain_backlog();
    struct event_base *base = event_base_new();
    sk_dovecot_auth *da = sk_dovecot_auth_new(base, path);
    sk_dovecot_auth_start(da);
    int fd = server_accept(base);
    assert_true(fd >= 0);
    memset(&got, 0, sizeof got);
    handshake(base, fd, "MECH\tLOGIN\tplaintext\n");
    assert_int_equal(sk_dovecot_auth_mechs(da), SK_DOVECOT_MECH_LOGIN);
    check(da, "alice", "wonderland", 7);
    char buf[4096], line[128];
    server_read(base, fd, buf, sizeof buf, 2000);
    assert_memory_equal(buf, "AUTH\t", 5);
    assert_non_null(strstr(buf, "\tLOGIN\tservice=smtp\t"));
    assert_null(strstr(buf, "resp="));
    unsigned long id = id_of(buf);
    snprintf(line, sizeof line, "CONT\t%lu\tVXNlcm5hbWU6\n", id);
    server_write(fd, line);
    server_read(base, fd, buf, sizeof buf, 2000);
    snprintf(line, sizeof line, "CONT\t%lu\tYWxpY2U=\n", id); /* "alice" */
    assert_string_equal(buf, line);
    snprintf(line, sizeof line, "CONT\t%lu\tUGFzc3dvcmQ6\n", id);
    server_write(fd, line);
    server_read(base, fd, buf, sizeof buf, 2000);
    snprintf(line, sizeof line, "CONT\t%lu\td29uZGVybGFuZA==\n", id); /* "wonderland" */
    assert_string_equal(buf, line);
    snprintf(line, sizeof line, "OK\t%lu\tuser=alice\n", id);
    server_write(fd, line);
    for (int i = 0; i < 100 && got.n < 1; i++)
        run_for(base, 10);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.result[0], 1);
    close(fd);
    sk_dovecot_auth_free(da);
    event_base_free(base);
}

/* Nothing listening: the check is answered -1 from the loop, not inside. */
static void test_unreachable(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none", dir);
    sk_dovecot_auth *da = sk_dovecot_auth_new(base, missing);
    sk_dovecot_auth_start(da);
    memset(&got, 0, sizeof got);
    check(da, "alice", "wonderland", 8);
    assert_int_equal(got.n, 0);
    for (int i = 0; i < 100 && got.n < 1; i++)
        run_for(base, 10);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.result[0], -1);
    sk_dovecot_auth_free(da);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_by_id),
        cmocka_unit_test(test_login_steps),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
