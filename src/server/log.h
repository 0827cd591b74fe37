/*
 * log.h - the server's log: one line per event, stable key=value fields,
 * to stderr or a file (with a UTC timestamp), syslog(3), or journald (one
 * journal field per key=value).
 */
#ifndef SMTPKIT_SERVER_LOG_H
#define SMTPKIT_SERVER_LOG_H

#include <stddef.h>
#include <syslog.h>

#include "smtpkit/config.h"
#include "util/text_mask.h"

/* Choose the destination (stderr until called). */
void sk_log_open(sk_log_target target, int facility);
/* SK_LOG_FILE: open path for appending (created 0640 if missing). 0, or -1
 * with the reason in err. */
int sk_log_open_file(const char *path, char *err, size_t errlen);

/* SIGUSR1: reopen the log file under its name (after logrotate moved it).
 * 1 reopened, 0 nothing to reopen (not a file), -1 failed (err says why;
 * the old file stays in use). */
int sk_log_reopen(char *err, size_t errlen);

/* Log one line at `prio` (LOG_ERR, LOG_WARNING, LOG_INFO). Control bytes in
 * the text are replaced by '?', so no logged value can forge a line. */
void sk_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
