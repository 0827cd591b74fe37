/*
 * auth_service.h - the server's answer to one AUTH attempt (RFC 4954
 * section 4 and 6): the password file (passwd.h) behind the failure
 * budgets (auth_limit.h), and the sender-ownership rule for submission
 * (RFC 6409 section 6.1: the server may check that the envelope sender
 * belongs to the authenticated user).
 */
#ifndef SMTPKIT_SERVER_AUTH_SERVICE_H
#define SMTPKIT_SERVER_AUTH_SERVICE_H

#include <stddef.h>
#include <time.h>

#include "server/auth_limit.h"
#include "server/passwd.h"

typedef struct sk_auth_service sk_auth_service;

/* Load the password file; NULL with err ("FILE:LINE: message") on error.
 * passwd_file NULL: budgets only, for another backend (Dovecot SASL) that
 * uses blocked() and finish() around its own check. */
sk_auth_service *sk_auth_service_new(const char *passwd_file, const sk_auth_limit_config *limits,
                                     char *err, size_t errlen);
/* Re-read the password file (SIGHUP). On error the previous file stays in
 * use and -1 is returned with err set; failure budgets are kept either way. */
int sk_auth_service_reload(sk_auth_service *svc, const char *passwd_file, char *err, size_t errlen);
void sk_auth_service_free(sk_auth_service *svc);
size_t sk_auth_service_users(const sk_auth_service *svc);
/* The loaded file (its warnings), NULL without one. */
const sk_passwd *sk_auth_service_passwd(const sk_auth_service *svc);
/* auth_username_format (username_format.h) applied before each lookup;
 * NULL or "%u": the name as given. 0, or -1 when out of memory. */
int sk_auth_service_set_username_format(sk_auth_service *svc, const char *fmt);
const sk_auth_limit_config *sk_auth_service_limits(const sk_auth_service *svc);

typedef struct sk_auth_verdict {
    int result;        /* for ops->auth_check: 1 valid, 0 invalid (535), -1 blocked (454) */
    int close;         /* this connection has failed too often: 421 4.7.0 and close */
    unsigned delay_ms; /* hold the reply this long (0 after a success) */
    const char *why;   /* "ok", "bad-credentials", "address-blocked", "internal" (logs) */
} sk_auth_verdict;

/*
 * One attempt from client address addr on a connection whose counter is
 * conn. While addr is over its budget the password is not even checked
 * (result -1). Every non-success counts against the connection.
 * now: monotonic seconds.
 */
sk_auth_verdict sk_auth_service_check(sk_auth_service *svc, const char *addr, sk_auth_conn *conn,
                                      const char *user, const char *password, time_t now);

/*
 * Is addr over its budget? 1 with *v the verdict (454, charged to the
 * connection), else 0: the first step of every attempt.
 */
int sk_auth_service_blocked(sk_auth_service *svc, const char *addr, sk_auth_conn *conn, time_t now,
                            sk_auth_verdict *v);

/*
 * The same attempt in three steps, so the hash runs off the event loop:
 * begin (loop thread) returns 1 with *v the verdict when no hash is needed
 * (address blocked, out of memory), else 0 with *hash (malloc'd, the
 * caller frees it) and *known for sk_passwd_check_hash() on a worker;
 * finish (loop thread) turns that result (1, 0, -1) into the verdict and
 * charges the failure budgets.
 */
int sk_auth_service_begin(sk_auth_service *svc, const char *addr, sk_auth_conn *conn,
                          const char *user, time_t now, sk_auth_verdict *v, char **hash,
                          int *known);
sk_auth_verdict sk_auth_service_finish(sk_auth_service *svc, const char *addr, sk_auth_conn *conn,
                                       int ok, time_t now);

/*
 * sender_must_match_login: may `user` send with reverse-path `from` (as in
 * MAIL FROM, without <>)? A user name with '@' must equal the address (the
 * domain compared without regard to case); a bare user name must be the
 * local part of an address in one of `domains`. The null reverse-path ""
 * is allowed (delivery status notifications). 1 allowed, 0 not.
 */
int sk_auth_sender_allowed(const char *user, const char *from, char *const *domains,
                           size_t ndomains);

#endif
