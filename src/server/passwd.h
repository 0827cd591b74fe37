/*
 * passwd.h - the password file behind AUTH PLAIN/LOGIN (RFC 4954,
 * RFC 4616): Dovecot passwd-file format with crypt(3) hashes (libxcrypt),
 * and making such hashes for `smtpkit passwd`.
 *
 * Format, one account a line:
 *
 *     user:hash[:uid:gid:gecos:home:shell:extra]
 *
 * where hash is a crypt(3) string that libxcrypt counts as strong ($y$
 * yescrypt, $gy$, $7$ scrypt, $6$ SHA-512-crypt, $2b$ bcrypt), optionally
 * behind a Dovecot scheme prefix {CRYPT}, {YESCRYPT}, {SHA512-CRYPT} or
 * {BLF-CRYPT}.
 * Empty lines and lines starting with '#' are ignored; a CRLF line end is
 * accepted. User names are compared exactly (case-sensitive).
 *
 * Legacy DES and MD5 hashes and plain-text schemes are refused at load time
 * with the line number, so a weak entry never silently works.
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
    const char *hash; /* the crypt(3) string, scheme prefix removed */
    size_t hash_len;
    const char *extra; /* everything after the hash's ':' (uid:gid:...), may be empty */
    size_t extra_len;
} sk_passwd_line;

/* Parse one line of n bytes (no newline; a trailing CR is dropped).
 * Returns 0, or -1 with *err a static message such as
 * "no ':' between user name and password hash". Never reads past n. */
int sk_passwd_parse_line(const char *p, size_t n, sk_passwd_line *out, const char **err);

typedef struct sk_passwd sk_passwd;

/* Load a file. On error returns NULL with err set to one line naming the
 * file and line: "etc/passwd:3: legacy DES/MD5 hash refused; ...". */
sk_passwd *sk_passwd_load(const char *path, char *err, size_t errlen);
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
    SK_PASSWD_YESCRYPT,     /* $y$, libxcrypt's preferred method */
    SK_PASSWD_SHA512_CRYPT, /* $6$ with rounds= */
} sk_passwd_scheme;

/* Default costs: yescrypt cost 5 (libxcrypt's default), SHA-512-crypt
 * 100000 rounds; both take some tens of milliseconds. */
#define SK_PASSWD_SHA512_ROUNDS_DEFAULT 100000UL

/* "yescrypt" or "sha512-crypt" (case-insensitive). 0 or -1. */
int sk_passwd_scheme_parse(const char *name, sk_passwd_scheme *out);

/* Hash a password with a fresh random salt. cost 0 means the default
 * (yescrypt: 1..11, SHA-512-crypt: rounds 1000..999999999). Returns 0 with
 * out holding the crypt string, or -1 with err set. */
int sk_passwd_hash(sk_passwd_scheme scheme, unsigned long cost, const char *password, char *out,
                   size_t outlen, char *err, size_t errlen);

#endif
