/*
 * server_security.c - the server's TLS context (RFC 3207, RFC 8314) and
 * AUTH backend (RFC 4954: the password file, or Dovecot's auth socket
 * with the same failure budgets) over the server's life: made at start (a
 * self-signed pair first when tls_generate_if_missing asks and none
 * exists, handed to the unprivileged user so a reload can read it),
 * refused at start (and by --check) when that user could not read it
 * for a reload, and rebuilt on SIGHUP, where a broken certificate or
 * password file keeps the previous one serving and the log says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/auth_service.h"
#include "server/dovecot_auth.h"
#include "server/log.h"
#include "server/server_internal.h"
#include "server/server_security.h"
#include "server/tls.h"

/* One log line per line of the password file that was disabled or
 * accepted with a note (clear text, a weak method). */
static void log_passwd_warnings(const sk_auth_service *auth, const char *file)
{
    const sk_passwd *pw = sk_auth_service_passwd(auth);
    for (size_t i = 0; i < sk_passwd_warning_count(pw); i++) {
        /* Readable as written; only what could break the quoting changes. */
        char clean[1024];
        const char *w = sk_passwd_warning(pw, i);
        size_t k = 0;
        for (; w[k] && k + 1 < sizeof clean; k++)
            clean[k] = (w[k] == '"' || w[k] == '\\' || (unsigned char)w[k] < 0x20) ? '?' : w[k];
        clean[k] = '\0';
        sk_log(LOG_WARNING, "event=passwd-warning warning=\"%s\"", clean);
    }
    if (sk_passwd_warnings_dropped(pw))
        sk_log(LOG_WARNING, "event=passwd-warning passwd_file=%s more=%zu", file,
               sk_passwd_warnings_dropped(pw));
}

/* The directory part of path in out ("." if none). */
static void parent_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, outlen, ".");
    else if (slash == path)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Hand a file we just generated (and its directory, if we made that too)
 * to the account the server will run as, so a SIGHUP reload can read it.
 * O_NOFOLLOW: never chown what a symlink points at. */
static int give_to_runas(const sk_runas *r, const char *path, int is_directory, char *err,
                         size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (is_directory ? O_DIRECTORY : 0));
    if (fd < 0 || fchown(fd, r->uid, r->gid) != 0) {
        snprintf(err, errlen, "cannot hand %s to %s: %s", path, r->name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static sk_tls_settings tls_settings(const sk_config *cfg)
{
    sk_tls_settings st = {
        .cert_file = cfg->tls_certificate,
        .key_file = cfg->tls_key,
        .ciphers = cfg->tls_ciphers,
        .ciphersuites = cfg->tls_ciphersuites,
        .min_version = cfg->tls_min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION,
    };
    return st;
}

int sk_server_security_init(sk_server *srv, char *err, size_t errlen)
{
    const sk_config *cfg = srv->cfg;
    if (cfg->tls_certificate) {
        sk_tls_settings st = tls_settings(cfg);
        char why[512], cert_dir[PATH_MAX], key_dir[PATH_MAX];
        parent_of(cfg->tls_certificate, cert_dir, sizeof cert_dir);
        parent_of(cfg->tls_key, key_dir, sizeof key_dir);
        int had_cert_dir = is_dir(cert_dir), had_key_dir = is_dir(key_dir);
        int g = sk_tls_ensure_files(&st, cfg->server_name, cfg->tls_generate_if_missing, why,
                                    sizeof why);
        if (g < 0) {
            snprintf(err, errlen, "%s: %s", cfg->path, why);
            return -1;
        }
        if (g > 0 && srv->runas.change &&
            (give_to_runas(&srv->runas, cfg->tls_key, 0, why, sizeof why) != 0 ||
             give_to_runas(&srv->runas, cfg->tls_certificate, 0, why, sizeof why) != 0 ||
             (!had_key_dir && give_to_runas(&srv->runas, key_dir, 1, why, sizeof why) != 0) ||
             (!had_cert_dir && strcmp(cert_dir, key_dir) != 0 &&
              give_to_runas(&srv->runas, cert_dir, 1, why, sizeof why) != 0))) {
            snprintf(err, errlen, "%s: %s", cfg->path, why);
            return -1;
        }
        if (g > 0)
            sk_log(LOG_WARNING,
                   "event=tls-generated cert=%s key=%s name=%s note=\"self-signed, valid one "
                   "year: replace it with a certificate clients can verify\"",
                   cfg->tls_certificate, cfg->tls_key, cfg->server_name);
        srv->tls = sk_tls_server_new(&st, why, sizeof why);
        if (!srv->tls) {
            snprintf(err, errlen, "%s: TLS: %s", cfg->path, why);
            return -1;
        }
        SSL_CTX *ctx = sk_tls_server_get_ctx(srv->tls);
        sk_tls_ctx_summary(ctx, why, sizeof why);
        SSL_CTX_free(ctx);
        sk_log(LOG_INFO, "event=tls-ready cert=%s %s", cfg->tls_certificate, why);
    }
    if (cfg->passwd_file || cfg->dovecot_auth) {
        sk_auth_limit_config lim = {
            .max_failures = cfg->auth_failures,
            .window_seconds = cfg->auth_failure_window,
            .max_conn_failures = cfg->auth_failures_per_connection,
            .fail_delay_ms = cfg->auth_failure_delay_ms,
        };
        char why[512];
        srv->auth = sk_auth_service_new(cfg->passwd_file, &lim, why, sizeof why);
        if (!srv->auth ||
            sk_auth_service_set_username_format(srv->auth, cfg->auth_username_format) != 0) {
            snprintf(err, errlen, "passwd_file: %s", srv->auth ? "out of memory" : why);
            return -1;
        }
        if (cfg->passwd_file) {
            log_passwd_warnings(srv->auth, cfg->passwd_file);
            sk_log(LOG_INFO, "event=auth-ready passwd_file=%s users=%zu", cfg->passwd_file,
                   sk_auth_service_users(srv->auth));
        }
    }
    return 0;
}

int sk_server_security_check_files(const sk_config *cfg, const sk_runas *r, int with_tls, char *err,
                                   size_t errlen)
{
    const char *what[3] = {"certificate", "key", "passwd_file"};
    const char *files[3] = {with_tls ? cfg->tls_certificate : NULL,
                            with_tls && cfg->tls_certificate ? cfg->tls_key : NULL,
                            cfg->passwd_file};
    for (size_t i = 0; i < 3; i++) {
        if (!files[i])
            continue;
        int e = sk_runas_can_read(r, files[i], err, errlen);
        if (e < 0)
            return -1;
        if (e > 0) {
            snprintf(err, errlen,
                     "%s %s: not readable by user %s: %s (the server runs as %s and re-reads "
                     "it on SIGHUP)",
                     what[i], files[i], r->name, strerror(e), r->name);
            return -1;
        }
    }
    return 0;
}

void sk_server_security_reload(sk_server *srv, const sk_config *nc)
{
    char why[512];
    if (srv->tls && nc->tls_certificate) {
        sk_tls_settings st = tls_settings(nc);
        if (sk_tls_server_reload(srv->tls, &st, why, sizeof why) != 0) {
            sk_log(LOG_ERR, "event=tls-reload-failed error=\"%s\" keeping=previous-certificate",
                   why);
        } else {
            SSL_CTX *ctx = sk_tls_server_get_ctx(srv->tls);
            sk_tls_ctx_summary(ctx, why, sizeof why);
            SSL_CTX_free(ctx);
            sk_log(LOG_INFO, "event=tls-reload generation=%u cert=%s %s",
                   sk_tls_server_generation(srv->tls), nc->tls_certificate, why);
        }
    }
    if (srv->auth && nc->passwd_file) {
        if (sk_auth_service_reload(srv->auth, nc->passwd_file, why, sizeof why) != 0)
            sk_log(LOG_ERR, "event=auth-reload-failed error=\"%s\" keeping=previous-passwd-file",
                   why);
        else {
            log_passwd_warnings(srv->auth, nc->passwd_file);
            sk_log(LOG_INFO, "event=auth-reload passwd_file=%s users=%zu", nc->passwd_file,
                   sk_auth_service_users(srv->auth));
        }
        if (sk_auth_service_set_username_format(srv->auth, nc->auth_username_format) != 0)
            sk_log(LOG_ERR, "event=auth-reload-failed error=\"out of memory\"");
    }
}

int sk_server_security_start(sk_server *srv, char *err, size_t errlen)
{
    const sk_config *cfg = srv->cfg;
    if (!cfg->dovecot_auth)
        return 0;
    srv->dovecot = sk_dovecot_auth_new(srv->base, cfg->dovecot_auth);
    if (!srv->dovecot) {
        snprintf(err, errlen, "dovecot_auth: out of memory");
        return -1;
    }
    /* Unreachable now is no reason not to start: AUTH answers 454 until
     * Dovecot is back, and the client keeps trying. */
    sk_log(LOG_INFO, "event=auth-ready dovecot_auth=%s", cfg->dovecot_auth);
    sk_dovecot_auth_start(srv->dovecot);
    return 0;
}

void sk_server_security_stop(sk_server *srv)
{
    sk_dovecot_auth_free(srv->dovecot);
    srv->dovecot = NULL;
}

void sk_server_security_free(sk_server *srv)
{
    sk_tls_server_free(srv->tls);
    srv->tls = NULL;
    sk_auth_service_free(srv->auth);
    srv->auth = NULL;
}
