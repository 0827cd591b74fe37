/*
 * control_socket.c - the client side of the queue control socket
 * (control_socket.h): a blocking Unix stream connection with timeouts,
 * one request line out, one answer line in.
 */
#include "queue/control_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/control_line.h"

int sk_control_sockaddr(const char *dir, int dirfd, const char *name, struct sockaddr_un *sa,
                        socklen_t *salen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
        if (dirfd < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dirfd, name);
        if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
            errno = ENAMETOOLONG;
            return -1;
        }
    }
    *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    return 0;
}

/* A connected socket, or -1 with errno. */
static int connect_control(const char *root, int timeout_ms)
{
    int dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -1;
    struct sockaddr_un sa;
    socklen_t salen;
    int fd = -1;
    if (sk_control_sockaddr(root, dirfd, SK_CONTROL_SOCKET_NAME, &sa, &salen) == 0)
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            fd = -1;
        }
    }
    int e = errno;
    close(dirfd);
    errno = e;
    return fd;
}

int sk_control_probe(const char *root)
{
    int fd = connect_control(root, 1000);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    return errno == ENOENT || errno == ECONNREFUSED ? 0 : -1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sk_control_request(const char *root, const char *line, char *reply, size_t cap, int timeout_ms)
{
    if (!reply || cap == 0)
        return -2;
    reply[0] = '\0';
    int fd = connect_control(root, timeout_ms);
    if (fd < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            return -1;
        snprintf(reply, cap, "control socket %s/%s: %s", root, SK_CONTROL_SOCKET_NAME,
                 strerror(errno));
        return -2;
    }
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(reply, cap, "control socket: cannot send: %s", strerror(errno));
            close(fd);
            return -2;
        }
        off += (size_t)w;
    }
    /* The answer: one line, then the server closes. */
    char in[SK_CONTROL_LINE_MAX + 1];
    size_t got = 0;
    long long deadline = now_ms() + timeout_ms;
    int rc = -2;
    snprintf(reply, cap, "control socket: no answer");
    for (;;) {
        long long left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            snprintf(reply, cap, "control socket: no answer within %d ms", timeout_ms);
            break;
        }
        ssize_t r = recv(fd, in + got, sizeof in - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(reply, cap, "control socket: %s", strerror(errno));
            break;
        }
        got += (size_t)r;
        char *nl = memchr(in, '\n', got);
        if (nl || r == 0 || got == sizeof in - 1) {
            size_t n = nl ? (size_t)(nl - in) : got;
            const char *text;
            size_t tlen;
            int ok = n ? sk_control_reply_parse(in, n, &text, &tlen) : -1;
            if (ok < 0) {
                snprintf(reply, cap, "control socket: %s",
                         r == 0 && !got ? "closed without an answer" : "garbled answer");
                break;
            }
            snprintf(reply, cap, "%.*s", (int)tlen, text);
            rc = ok;
            break;
        }
    }
    close(fd);
    return rc;
}
