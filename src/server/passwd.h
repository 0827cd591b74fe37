/*
 * passwd.h - the password file behind AUTH PLAIN/LOGIN (RFC 4954,
 * RFC 4616), in Dovecot's passwd-file format so one file serves Dovecot's
 * passdb and userdb and smtpkit, and making hashes for `smtpkit passwd`.
 *
 * Format, one account a line (the short forms stop after any field):
 *
 *     user:password[:uid:gid:gecos:home:shell:extra_fields]
 *
 * where password is "{SCHEME}value" in any scheme of password_scheme.h
 * (Dovecot's names: {ARGON2ID}, {SHA512-CRYPT}, {BLF-CRYPT}, {SSHA512},
 * {PBKDF2}, {PLAIN}...) or, without a prefix, a crypt(3) string.
 * Empty lines and lines starting with '#' are ignored; a CRLF line end is
 * accepted. User names are compared exactly (auth_username_format, applied
 * by the caller, may lowercase them first).
 *
 * A line whose password cannot be verified here (an unknown or unsupported
 * scheme, a malformed hash) disables that user only, with one warning
 * naming the file and line; weak or clear-text passwords work with a
 * warning. A line that is not a passwd-file line at all (no ':', an empty
 * user name, a NUL byte, a duplicate user) refuses the file.
 */
#ifndef SMTPKIT_SERVER_PASSWD_H
#define SMTPKIT_SERVER_PASSWD_H

#include <stddef.h>

#define SK_PASSWD_LINE_MAX 4096 /* bytes per line, newline excluded */
#define SK_PASSWD_USER_MAX 255  /* bytes in a user name */
/* Longer passwords never match: libxcrypt's limit (CRYPT_MAX_PASSPHRASE_SIZE
 * less the NUL), which also bounds SHA-512-crypt's length-dependent work. */
#define SK_PASSWD_PASSWORD_MAX 511

/* One line of the file, split in place (pointers into the caller's line). */
typedef struct sk_passwd_line {
    int blank;        /* empty or comment: nothing else is set */
    const char *user; /* not NUL-terminated */
    size_t user_len;
    const char *hash; /* the password field, "{SCHEME}value" or a crypt(3) string */
    size_t hash_len;
    const char *uid, *gid, *home; /* userdb fields, empty when absent */
    size_t uid_len, gid_len, home_len;
    const char *extra; /* extra_fields: the rest after the shell field */
    size_t extra_len;
    const char *rest; /* everything after the password's ':' (uid:gid:...) */
    size_t rest_len;
} sk_passwd_line;

/* Warnings kept per file (disabled users, clear-text passwords). */
#define SK_PASSWD_WARNINGS_MAX 100

/* Split one line of n bytes (no newline; a trailing CR is dropped) into
 * its fields; the password is not judged here (password_scheme.h).
 * Returns 0, or -1 with *err a static message such as
 * "no ':' between user name and password hash". Never reads past n. */
int sk_passwd_parse_line(const char *p, size_t n, sk_passwd_line *out, const char **err);

typedef struct sk_passwd sk_passwd;

/* Load a file. On error returns NULL with err set to one line naming the
 * file and line: "etc/passwd:3: duplicate user 'alice' (first on line 1)".
 * Lines it had to disable or accepted with a note are the warnings:
 * "etc/passwd:4: user 'bob' disabled: password scheme not supported...". */
sk_passwd *sk_passwd_load(const char *path, char *err, size_t errlen);
size_t sk_passwd_warning_count(const sk_passwd *pw);
const char *sk_passwd_warning(const sk_passwd *pw, size_t i);
/* Warnings past SK_PASSWD_WARNINGS_MAX, counted only. */
size_t sk_passwd_warnings_dropped(const sk_passwd *pw);
/* 1 when the user exists and its password can be verified. */
int sk_passwd_user_enabled(const sk_passwd *pw, const char *user);

/* A user's userdb fields (pointers into pw; "" when absent); 0 or -1. */
typedef struct sk_passwd_userdb {
    const char *uid, *gid, *home, *extra;
} sk_passwd_userdb;
int sk_passwd_userdb_of(const sk_passwd *pw, const char *user, sk_passwd_userdb *out);
void sk_passwd_free(sk_passwd *pw);
size_t sk_passwd_count(const sk_passwd *pw);
/* Whether the user exists (for tests and tooling; AUTH uses verify). */
int sk_passwd_has_user(const sk_passwd *pw, const char *user);

/*
 * Check a password: 1 valid, 0 wrong user or password, -1 internal error
 * (out of memory: answer 454 4.7.0). An unknown user costs a hash
 * computation like a known one, and the comparison is constant-time, so
 * the reply time does not tell which user names exist.
 */
int sk_passwd_verify(const sk_passwd *pw, const char *user, const char *password);

/*
 * sk_passwd_verify in two steps, so the slow one can run on a worker
 * thread while the file may be reloaded: lookup copies the hash to check
 * against (a dummy one for an unknown user, *known then 0; NULL when out of
 * memory), check_hash hashes (1, 0 or -1 as above; touches no shared state).
 */
char *sk_passwd_lookup_hash(const sk_passwd *pw, const char *user, int *known);
int sk_passwd_check_hash(const char *hash, int known, const char *password);

typedef enum sk_passwd_scheme {
    SK_PASSWD_YESCRYPT,     /* $y$, libxcrypt's preferred method ({CRYPT} for Dovecot) */
    SK_PASSWD_SHA512_CRYPT, /* $6$ with rounds= ({SHA512-CRYPT}) */
    SK_PASSWD_ARGON2ID,     /* $argon2id$ by libargon2 ({ARGON2ID}, Dovecot's choice) */
} sk_passwd_scheme;

/* The Dovecot scheme prefix of a hash made by sk_passwd_hash, "{CRYPT}". */
const char *sk_passwd_scheme_prefix(sk_passwd_scheme scheme);

/* Default costs: yescrypt cost 5 (libxcrypt's default), SHA-512-crypt
 * 100000 rounds; both take some tens of milliseconds. */
#define SK_PASSWD_SHA512_ROUNDS_DEFAULT 100000UL

/* "yescrypt", "sha512-crypt" or "argon2id" (case-insensitive). 0 or -1. */
int sk_passwd_scheme_parse(const char *name, sk_passwd_scheme *out);

/* Hash a password with a fresh random salt. cost 0 means the default
 * (yescrypt: 1..11, SHA-512-crypt: rounds 1000..999999999, Argon2id: time
 * cost 1..100, default 3, with 64 MiB as Dovecot uses). Returns 0 with
 * out holding the crypt string, or -1 with err set. */
int sk_passwd_hash(sk_passwd_scheme scheme, unsigned long cost, const char *password, char *out,
                   size_t outlen, char *err, size_t errlen);

#endif
