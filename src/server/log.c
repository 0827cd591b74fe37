/*
 * log.c - one line per event, to stderr or syslog. Each stderr line is
 * written with a single write(2), so lines from one process never
 * interleave.
 */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static sk_log_target log_target = SK_LOG_STDERR;

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

const char *sk_log_clean(const char *src, char *dst, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return "";
    for (; src && src[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x21 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    dst[i] = '\0';
    return dst;
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
    ssize_t w = write(STDERR_FILENO, line, (size_t)len);
    (void)w;
}
