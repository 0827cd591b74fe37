/*
 * auth_service.c - one AUTH attempt judged (RFC 4954 section 4: 235 / 535
 * 5.7.8 / 454 4.7.0, and 421 4.7.0 for a connection that keeps failing):
 * the address budget is consulted before any password is hashed, the
 * password file answers (after auth_username_format) or, with Dovecot
 * SASL, the shell asks Dovecot between blocked() and finish(); every
 * failure is charged to both the address and the connection. Also the RFC 6409 6.1 sender check for
 * submission.
 */
#include "server/auth_service.h"
#include "server/username_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sk_auth_service {
    sk_passwd *pw; /* NULL when another backend (Dovecot) checks passwords */
    sk_auth_limit *limit;
    char *username_format; /* auth_username_format, NULL: "%u" */
};

sk_auth_service *sk_auth_service_new(const char *passwd_file, const sk_auth_limit_config *limits,
                                     char *err, size_t errlen)
{
    sk_auth_service *svc = calloc(1, sizeof *svc);
    if (!svc) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    svc->pw = passwd_file ? sk_passwd_load(passwd_file, err, errlen) : NULL;
    svc->limit = svc->pw || !passwd_file ? sk_auth_limit_new(limits) : NULL;
    if ((passwd_file && !svc->pw) || !svc->limit) {
        if ((svc->pw || !passwd_file) && err && errlen)
            snprintf(err, errlen, "out of memory");
        sk_passwd_free(svc->pw);
        free(svc);
        return NULL;
    }
    return svc;
}

int sk_auth_service_reload(sk_auth_service *svc, const char *passwd_file, char *err, size_t errlen)
{
    if (!passwd_file)
        return 0;
    sk_passwd *fresh = sk_passwd_load(passwd_file, err, errlen);
    if (!fresh)
        return -1;
    sk_passwd_free(svc->pw);
    svc->pw = fresh;
    return 0;
}

void sk_auth_service_free(sk_auth_service *svc)
{
    if (!svc)
        return;
    sk_passwd_free(svc->pw);
    sk_auth_limit_free(svc->limit);
    free(svc->username_format);
    free(svc);
}

int sk_auth_service_set_username_format(sk_auth_service *svc, const char *fmt)
{
    char *copy = NULL;
    if (fmt && strcmp(fmt, "%u") != 0 && !(copy = strdup(fmt)))
        return -1;
    free(svc->username_format);
    svc->username_format = copy;
    return 0;
}

const sk_passwd *sk_auth_service_passwd(const sk_auth_service *svc)
{
    return svc->pw;
}

int sk_auth_service_blocked(sk_auth_service *svc, const char *addr, sk_auth_conn *conn, time_t now,
                            sk_auth_verdict *v)
{
    if (!sk_auth_limit_blocked(svc->limit, addr, now))
        return 0;
    /* Not checked at all: a correct guess would not be revealed. */
    const sk_auth_limit_config *lc = sk_auth_limit_get_config(svc->limit);
    v->result = -1;
    v->delay_ms = lc->fail_delay_ms;
    v->why = "address-blocked";
    v->close = sk_auth_conn_failed(svc->limit, conn);
    return 1;
}

size_t sk_auth_service_users(const sk_auth_service *svc)
{
    return sk_passwd_count(svc->pw);
}

const sk_auth_limit_config *sk_auth_service_limits(const sk_auth_service *svc)
{
    return sk_auth_limit_get_config(svc->limit);
}

int sk_auth_service_begin(sk_auth_service *svc, const char *addr, sk_auth_conn *conn,
                          const char *user, time_t now, sk_auth_verdict *v, char **hash, int *known)
{
    *hash = NULL;
    *known = 0;
    if (sk_auth_service_blocked(svc, addr, conn, now, v))
        return 1;
    /* auth_username_format: the name looked up, as Dovecot would. A name
     * that does not fit is looked up as given (and fails like any). */
    char name[SK_PASSWD_USER_MAX + 2];
    if (svc->username_format &&
        sk_username_format(svc->username_format, user, name, sizeof name) == 0)
        user = name;
    *hash = sk_passwd_lookup_hash(svc->pw, user, known);
    if (!*hash) {
        *v = sk_auth_service_finish(svc, addr, conn, -1, now);
        return 1;
    }
    return 0;
}

sk_auth_verdict sk_auth_service_finish(sk_auth_service *svc, const char *addr, sk_auth_conn *conn,
                                       int ok, time_t now)
{
    const sk_auth_limit_config *lc = sk_auth_limit_get_config(svc->limit);
    sk_auth_verdict v = {.result = 0, .close = 0, .delay_ms = lc->fail_delay_ms, .why = NULL};
    if (ok == 1) {
        v.result = 1;
        v.delay_ms = 0;
        v.why = "ok";
        return v;
    }
    if (ok < 0) {
        v.result = -1;
        v.why = "internal";
    } else {
        v.why = "bad-credentials";
        sk_auth_limit_failure(svc->limit, addr, now);
    }
    v.close = sk_auth_conn_failed(svc->limit, conn);
    return v;
}

sk_auth_verdict sk_auth_service_check(sk_auth_service *svc, const char *addr, sk_auth_conn *conn,
                                      const char *user, const char *password, time_t now)
{
    sk_auth_verdict v;
    char *hash;
    int known;
    if (sk_auth_service_begin(svc, addr, conn, user, now, &v, &hash, &known))
        return v;
    int ok = sk_passwd_check_hash(hash, known, password);
    free(hash);
    return sk_auth_service_finish(svc, addr, conn, ok, now);
}

int sk_auth_sender_allowed(const char *user, const char *from, char *const *domains,
                           size_t ndomains)
{
    if (!user || !from)
        return 0;
    if (!*from)
        return 1; /* the null reverse-path */
    const char *fat = strrchr(from, '@');
    if (!fat || fat == from)
        return 0;
    size_t flocal = (size_t)(fat - from);
    const char *uat = strrchr(user, '@');
    if (uat) {
        size_t ulocal = (size_t)(uat - user);
        return ulocal == flocal && !memcmp(user, from, flocal) && !strcasecmp(uat + 1, fat + 1);
    }
    if (strlen(user) != flocal || memcmp(user, from, flocal) != 0)
        return 0;
    for (size_t i = 0; i < ndomains; i++)
        if (domains[i] && !strcasecmp(domains[i], fat + 1))
            return 1;
    return 0;
}
