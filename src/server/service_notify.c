/*
 * service_notify.c - the sd_notify(3) protocol (systemd's documented
 * NOTIFY_SOCKET interface): newline-separated VAR=VALUE assignments in one
 * datagram to an AF_UNIX socket, a path or, with a leading '@', an
 * abstract name.
 *
 * The socket is connected once at start-up, before the privilege drop:
 * permission to send to a Unix socket is checked at connect, so the
 * unprivileged server can still say RELOADING=1 and STOPPING=1 later,
 * whatever the socket file's mode (libsystemd's sd_notify() reconnects for
 * every message, which the dropped user might not be allowed to do).
 */
#include "server/service_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int notify_fd = -1;

int sk_notify_open(char *err, unsigned long errlen)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || n >= sizeof sa.sun_path) {
        snprintf(err, errlen, "NOTIFY_SOCKET=%s: not an absolute path or @abstract name", name);
        unsetenv("NOTIFY_SOCKET");
        return -1;
    }
    memcpy(sa.sun_path, name, n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) != 0) {
        snprintf(err, errlen, "NOTIFY_SOCKET=%s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        unsetenv("NOTIFY_SOCKET");
        return -1;
    }
    unsetenv("NOTIFY_SOCKET");
    notify_fd = fd;
    return 0;
}

void sk_notify(const char *fmt, ...)
{
    if (notify_fd < 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof msg)
        return;
    /* a full or vanished manager socket must never stall the loop */
    ssize_t w = send(notify_fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
}

void sk_notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}
