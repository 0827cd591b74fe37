/*
 * server_security.h - the part of server_security.c that `smtpkit serve
 * --check` shares with the start: the files a SIGHUP re-reads as the
 * unprivileged user (TLS certificate and key, RFC 3207 / RFC 8314; the
 * AUTH password file, RFC 4954) must be readable by that user.
 */
#ifndef SMTPKIT_SERVER_SECURITY_H
#define SMTPKIT_SERVER_SECURITY_H

#include <stddef.h>

#include "server/runas.h"
#include "smtpkit/config.h"

/* 0 when user r can read the certificate and key (when with_tls and cfg
 * has them) and the password file (when cfg has one); else -1 with one
 * line naming the first file that user cannot read, the user and why. */
int sk_server_security_check_files(const sk_config *cfg, const sk_runas *r, int with_tls, char *err,
                                   size_t errlen);

#endif
