/*
 * cmd_serve.c - `smtpkit serve [-c FILE] [--check]`: run the ESMTP server
 * (see smtpkit-serve(1) and smtpkit.conf(5)), or only validate its
 * configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "server/passwd.h"
#include "server/runas.h"
#include "server/server_security.h"
#include "server/tls.h"
#include "smtpkit/config.h"
#include "smtpkit/policy.h"
#include "smtpkit/server.h"

#define DEFAULT_CONFIG "/etc/smtpkit/smtpkit.conf"

static void usage(FILE *f)
{
    fprintf(f, "usage: smtpkit serve [-c FILE] [--check]\n"
               "\n"
               "Runs the ESMTP server: receives mail for the local domains of FILE into\n"
               "Maildir, accepts authenticated submission (STARTTLS, implicit TLS), refuses\n"
               "relaying except for authenticated users and trusted networks.\n"
               "\n"
               "  -c, --config FILE  configuration file (default " DEFAULT_CONFIG ")\n"
               "      --check        validate the configuration and exit (0 if valid)\n"
               "  -h, --help         this text\n"
               "\n"
               "Signals: TERM/INT stop gracefully (421 to idle sessions, messages in\n"
               "progress finish); HUP reloads domains, mailboxes and aliases, the TLS\n"
               "certificate and the password file; USR1 reopens a log file.\n"
               "See smtpkit-serve(1) and smtpkit.conf(5).\n");
}

/* 1 if path does not exist; 0 if it does or cannot be told (EACCES on a
 * directory...: the loader then says why). */
static int absent(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/* The certificate and the password file as the server would load them
 * (nothing is generated here), and readable by the user it runs as (a
 * SIGHUP re-reads them as that user). 0, or 1 with the reason on stderr. */
static int check_tls_auth(const sk_config *cfg, const sk_runas *r)
{
    char err[1024];
    int will_generate = 0;
    if (cfg->tls_certificate) {
        sk_tls_settings st = {.cert_file = cfg->tls_certificate,
                              .key_file = cfg->tls_key,
                              .ciphers = cfg->tls_ciphers,
                              .ciphersuites = cfg->tls_ciphersuites,
                              .min_version =
                                  cfg->tls_min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION};
        /* Only a pair that does not exist at all is generated; a file that
         * exists but cannot be read is an error, never replaced. */
        will_generate =
            cfg->tls_generate_if_missing && absent(cfg->tls_certificate) && absent(cfg->tls_key);
        if (will_generate) {
            printf("TLS: %s and %s will be generated (self-signed) at start\n",
                   cfg->tls_certificate, cfg->tls_key);
        } else {
            SSL_CTX *ctx = sk_tls_ctx_new(&st, err, sizeof err);
            if (!ctx) {
                fprintf(stderr, "smtpkit serve: %s: TLS: %s\n", cfg->path, err);
                return 1;
            }
            sk_tls_ctx_summary(ctx, err, sizeof err);
            printf("TLS: %s\n", err);
            SSL_CTX_free(ctx);
        }
    }
    if (cfg->passwd_file) {
        sk_passwd *pw = sk_passwd_load(cfg->passwd_file, err, sizeof err);
        if (!pw) {
            fprintf(stderr, "smtpkit serve: passwd_file: %s\n", err);
            return 1;
        }
        printf("AUTH: %zu account(s) in %s\n", sk_passwd_count(pw), cfg->passwd_file);
        for (size_t i = 0; i < sk_passwd_warning_count(pw); i++)
            fprintf(stderr, "smtpkit serve: warning: %s\n", sk_passwd_warning(pw, i));
        if (sk_passwd_warnings_dropped(pw))
            fprintf(stderr, "smtpkit serve: warning: %s: %zu more warning(s)\n", cfg->passwd_file,
                    sk_passwd_warnings_dropped(pw));
        sk_passwd_free(pw);
    }
    if (cfg->dovecot_auth) {
        /* Dovecot may start after smtpkit: a missing socket is a warning. */
        struct stat st;
        if (stat(cfg->dovecot_auth, &st) != 0)
            fprintf(stderr,
                    "smtpkit serve: warning: dovecot_auth %s: %s (AUTH answers 454 until "
                    "Dovecot listens there)\n",
                    cfg->dovecot_auth, strerror(errno));
        else if (!S_ISSOCK(st.st_mode))
            fprintf(stderr, "smtpkit serve: warning: dovecot_auth %s is not a socket\n",
                    cfg->dovecot_auth);
        printf("AUTH: checked by Dovecot at %s\n", cfg->dovecot_auth);
    }
    if (sk_server_security_check_files(cfg, r, !will_generate, err, sizeof err) != 0) {
        fprintf(stderr, "smtpkit serve: %s: %s\n", cfg->path, err);
        return 1;
    }
    return 0;
}

static int check(const char *path)
{
    char err[1024];
    sk_config *cfg = sk_config_load(path, err, sizeof err);
    sk_policy *p = cfg ? sk_policy_new(cfg, err, sizeof err) : NULL;
    sk_runas r;
    if (p && sk_runas_resolve(cfg->user, &r, err, sizeof err) != 0) {
        sk_policy_free(p);
        p = NULL;
    }
    if (!p) {
        fprintf(stderr, "smtpkit serve: %s\n", err);
        sk_config_free(cfg);
        return 1;
    }
    int rc = check_tls_auth(cfg, &r);
    if (rc == 0)
        printf("%s: OK: %zu listener(s), %zu domain(s), %zu mailbox(es), %zu alias(es), mail in "
               "%s\n",
               path, cfg->nlisteners, sk_policy_ndomains(p), sk_policy_nmailboxes(p),
               sk_policy_naliases(p), cfg->mail_root);
    sk_policy_free(p);
    sk_config_free(cfg);
    return rc;
}

int sk_cmd_serve(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int check_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--check")) {
            check_only = 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "smtpkit serve: %s needs a file name\n", a);
                return 2;
            }
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        } else {
            fprintf(stderr, "smtpkit serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (check_only)
        return check(path);

    char err[1024];
    sk_config *cfg = sk_config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "smtpkit serve: %s\n", err);
        return 1;
    }
    sk_server *srv = sk_server_new(cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "smtpkit serve: %s\n", err);
        return 1;
    }
    int rc = sk_server_run(srv);
    sk_server_free(srv);
    return rc;
}
