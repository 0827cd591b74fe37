/*
 * errmsg.h - filling a caller's error buffer: the convention of the shell's
 * loaders (config, TLS, password file) is (char *err, size_t errlen).
 */
#ifndef SMTPKIT_SERVER_ERRMSG_H
#define SMTPKIT_SERVER_ERRMSG_H

#include <stddef.h>

/* printf into err (errlen bytes); does nothing when err is NULL or errlen 0. */
void sk_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
