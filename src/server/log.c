/*
 * log.c - one line per event, to stderr, a file, syslog or journald. Each
 * stderr or file line is written with a single write(2) (O_APPEND for a
 * file), so lines from one process never interleave.
 *
 * A log file is reopened on SIGUSR1, the convention of nginx and
 * OpenSMTPD-era tools for logrotate: the new descriptor is dup2()ed over
 * the old one, so the descriptor number never changes and no line is
 * written to a closed or reused descriptor.
 */
#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "server/log_journal.h"

static sk_log_target log_target = SK_LOG_STDERR;
static int log_fd = STDERR_FILENO;
static char log_path[4096];

static int open_log(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        snprintf(err, errlen, "log file %s: %s", path, strerror(errno));
    return fd;
}

int sk_log_open_file(const char *path, char *err, size_t errlen)
{
    if (strlen(path) >= sizeof log_path) {
        snprintf(err, errlen, "log file %s: path too long", path);
        return -1;
    }
    int fd = open_log(path, err, errlen);
    if (fd < 0)
        return -1;
    snprintf(log_path, sizeof log_path, "%s", path);
    log_fd = fd;
    log_target = SK_LOG_FILE;
    return 0;
}

int sk_log_reopen(char *err, size_t errlen)
{
    if (log_target != SK_LOG_FILE)
        return 0;
    int fd = open_log(log_path, err, errlen);
    if (fd < 0)
        return -1;
    if (fd != log_fd) {
        if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
            snprintf(err, errlen, "log file %s: %s", log_path, strerror(errno));
            close(fd);
            return -1;
        }
        close(fd);
    }
    return 1;
}

void sk_log_open(sk_log_target target, int facility)
{
    log_target = target;
    if (target == SK_LOG_SYSLOG)
        openlog("smtpkit", LOG_PID | LOG_NDELAY, facility);
}

static const char *level_name(int prio)
{
    switch (prio) {
    case LOG_EMERG:
    case LOG_ALERT:
    case LOG_CRIT:
    case LOG_ERR:
        return "error";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
        return "notice";
    default:
        return "info";
    }
}

void sk_log(int prio, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (log_target == SK_LOG_SYSLOG) {
        syslog(prio, "%s", msg);
        return;
    }
    if (log_target == SK_LOG_JOURNAL) {
        sk_log_journal(prio, msg);
        return;
    }
    char line[2200];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int len =
        snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ smtpkit[%ld] %s %s\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), (long)getpid(), level_name(prio), msg);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof line) {
        len = (int)sizeof line - 1;
        line[len - 1] = '\n';
    }
    ssize_t w = write(log_fd, line, (size_t)len);
    (void)w;
}
