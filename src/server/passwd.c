/*
 * passwd.c - Dovecot's passwd-file for SMTP AUTH (RFC 4954 section 4: the
 * server checks the credentials of PLAIN/LOGIN): every field of a line
 * (the userdb fields too), each password verified by its Dovecot scheme
 * (password_scheme.c), a line this server cannot verify disabling only its
 * user; and hashing for `smtpkit passwd` (libxcrypt's crypt_gensalt_rn(),
 * libargon2 for Argon2id).
 *
 * The loaded file is an immutable sorted table: a reload (SIGHUP) builds a
 * new one and the caller swaps pointers, so a broken file never replaces a
 * working one.
 */
#include "server/passwd.h"
#include "server/errmsg.h"
#include "server/password_scheme.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

typedef struct passwd_entry {
    char *user;
    char *hash; /* the password field as written ("{SCHEME}value" or crypt) */
    char *uid;  /* userdb fields, "" when absent */
    char *gid;
    char *home;
    char *extra;  /* extra_fields (space-separated key=value) */
    int disabled; /* a password smtpkit cannot verify: never authenticates */
    unsigned line;
} passwd_entry;

struct sk_passwd {
    passwd_entry *entries; /* sorted by user */
    size_t n;
    /* Hashed against for unknown users, so they cost what known ones do. */
    char *dummy_hash;
    char **warnings; /* "FILE:LINE: ...", at most SK_PASSWD_WARNINGS_MAX */
    size_t nwarnings, warnings_dropped;
};

/* ---- one line ---- */

static int valid_user_byte(unsigned char c)
{
    /* Printable, no spaces (a name with a space is always a typo here). */
    return c > 0x20 && c != 0x7f && c != ':';
}

/* The next ':'-separated field of [*p, end): its start and length; *p moves
 * past the ':' (or to end). */
static void next_field(const char **p, const char *end, const char **f, size_t *fl)
{
    const char *c = *p < end ? memchr(*p, ':', (size_t)(end - *p)) : NULL;
    *f = *p;
    *fl = (size_t)((c ? c : end) - *p);
    *p = c ? c + 1 : end;
}

int sk_passwd_parse_line(const char *p, size_t n, sk_passwd_line *out, const char **err)
{
    memset(out, 0, sizeof *out);
    *err = NULL;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (n > SK_PASSWD_LINE_MAX) {
        *err = "line too long";
        return -1;
    }
    if (n == 0 || p[0] == '#') {
        out->blank = 1;
        return 0;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon) {
        *err = "no ':' between user name and password hash";
        return -1;
    }
    size_t ulen = (size_t)(colon - p);
    if (ulen == 0) {
        *err = "empty user name";
        return -1;
    }
    if (ulen > SK_PASSWD_USER_MAX) {
        *err = "user name too long";
        return -1;
    }
    for (size_t i = 0; i < ulen; i++)
        if (!valid_user_byte((unsigned char)p[i])) {
            *err = "user name contains a space or control character";
            return -1;
        }
    const char *end = p + n, *q = colon + 1;
    out->user = p;
    out->user_len = ulen;
    /* user:password:uid:gid:gecos:home:shell:extra_fields (Dovecot's
     * passwd-file; the short forms stop early). */
    next_field(&q, end, &out->hash, &out->hash_len);
    next_field(&q, end, &out->uid, &out->uid_len);
    next_field(&q, end, &out->gid, &out->gid_len);
    const char *gecos, *shell;
    size_t gecos_len, shell_len;
    next_field(&q, end, &gecos, &gecos_len);
    next_field(&q, end, &out->home, &out->home_len);
    next_field(&q, end, &shell, &shell_len);
    out->extra = q;
    out->extra_len = (size_t)(end - q);
    /* Everything after the password, as before (uid:gid:...). */
    out->rest = out->hash + out->hash_len < end ? out->hash + out->hash_len + 1 : end;
    out->rest_len = (size_t)(end - out->rest);
    return 0;
}

/* ---- the file ---- */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const passwd_entry *)a)->user, ((const passwd_entry *)b)->user);
}

static void free_entry(passwd_entry *e)
{
    free(e->user);
    free(e->hash);
    free(e->uid);
    free(e->gid);
    free(e->home);
    free(e->extra);
}

void sk_passwd_free(sk_passwd *pw)
{
    if (!pw)
        return;
    for (size_t i = 0; i < pw->n; i++)
        free_entry(&pw->entries[i]);
    free(pw->entries);
    for (size_t i = 0; i < pw->nwarnings; i++)
        free(pw->warnings[i]);
    free(pw->warnings);
    free(pw->dummy_hash);
    free(pw);
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* A well-formed hash for unknown users when the file has no entries. */
static char *default_dummy(void)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting))
        return NULL;
    return strdup(setting);
}

static void add_warning(sk_passwd *pw, const char *path, unsigned line, const char *user,
                        const char *what, const char *why)
{
    if (pw->nwarnings == SK_PASSWD_WARNINGS_MAX) {
        pw->warnings_dropped++;
        return;
    }
    char buf[768];
    snprintf(buf, sizeof buf, "%s:%u: user '%s' %s: %s", path, line, user, what, why);
    char *w = strdup(buf);
    char **nw = realloc(pw->warnings, (pw->nwarnings + 1) * sizeof *nw);
    if (!w || !nw) {
        free(w);
        if (nw)
            pw->warnings = nw;
        pw->warnings_dropped++;
        return;
    }
    pw->warnings = nw;
    pw->warnings[pw->nwarnings++] = w;
}

sk_passwd *sk_passwd_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sk_errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    sk_passwd *pw = calloc(1, sizeof *pw);
    size_t cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    unsigned lineno = 0;
    int ok = pw != NULL;
    if (!ok)
        sk_errf(err, errlen, "%s: out of memory", path);

    while (ok) {
        errno = 0;
        ssize_t got = getline(&line, &linecap, f);
        if (got < 0) {
            if (errno) {
                sk_errf(err, errlen, "%s: read error: %s", path, strerror(errno));
                ok = 0;
            }
            break;
        }
        lineno++;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (memchr(line, '\0', len)) {
            sk_errf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
            ok = 0;
            break;
        }
        sk_passwd_line pl;
        const char *why;
        if (sk_passwd_parse_line(line, len, &pl, &why) < 0) {
            sk_errf(err, errlen, "%s:%u: %s", path, lineno, why);
            ok = 0;
            break;
        }
        if (pl.blank)
            continue;
        if (pw->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            passwd_entry *ne = ncap > cap ? realloc(pw->entries, ncap * sizeof *ne) : NULL;
            if (!ne) {
                sk_errf(err, errlen, "%s: out of memory", path);
                ok = 0;
                break;
            }
            pw->entries = ne;
            cap = ncap;
        }
        passwd_entry *e = &pw->entries[pw->n];
        memset(e, 0, sizeof *e);
        e->user = dup_n(pl.user, pl.user_len);
        e->hash = dup_n(pl.hash, pl.hash_len);
        e->uid = dup_n(pl.uid, pl.uid_len);
        e->gid = dup_n(pl.gid, pl.gid_len);
        e->home = dup_n(pl.home, pl.home_len);
        e->extra = dup_n(pl.extra, pl.extra_len);
        e->line = lineno;
        pw->n++;
        if (!e->user || !e->hash || !e->uid || !e->gid || !e->home || !e->extra) {
            sk_errf(err, errlen, "%s: out of memory", path);
            ok = 0;
            break;
        }
        /* A password this server cannot verify disables its user only. */
        const char *note;
        if (sk_pwscheme_check(pl.hash, pl.hash_len, &why, &note) < 0) {
            e->disabled = 1;
            add_warning(pw, path, lineno, e->user, "disabled", why);
        } else if (note) {
            add_warning(pw, path, lineno, e->user, "accepted", note);
        }
    }
    free(line);
    fclose(f);

    if (ok && pw->n > 1) {
        qsort(pw->entries, pw->n, sizeof *pw->entries, entry_cmp);
        for (size_t i = 1; i < pw->n; i++)
            if (!strcmp(pw->entries[i - 1].user, pw->entries[i].user)) {
                passwd_entry *a = &pw->entries[i - 1], *b = &pw->entries[i];
                unsigned first = a->line < b->line ? a->line : b->line;
                unsigned again = a->line < b->line ? b->line : a->line;
                sk_errf(err, errlen, "%s:%u: duplicate user '%s' (first on line %u)", path, again,
                        a->user, first);
                ok = 0;
                break;
            }
    }
    if (ok) {
        /* An unknown (or disabled) user costs what a real account costs:
         * the first deliberately slow hash of the file, else the first
         * usable one, else a yescrypt setting. */
        const char *d = NULL;
        for (size_t i = 0; i < pw->n && !d; i++)
            if (!pw->entries[i].disabled && sk_pwscheme_is_slow(pw->entries[i].hash))
                d = pw->entries[i].hash;
        for (size_t i = 0; i < pw->n && !d; i++)
            if (!pw->entries[i].disabled)
                d = pw->entries[i].hash;
        pw->dummy_hash = d ? strdup(d) : default_dummy();
        if (!pw->dummy_hash) {
            sk_errf(err, errlen, "%s: out of memory", path);
            ok = 0;
        }
    }
    if (!ok) {
        sk_passwd_free(pw);
        return NULL;
    }
    return pw;
}

size_t sk_passwd_count(const sk_passwd *pw)
{
    return pw ? pw->n : 0;
}

size_t sk_passwd_warning_count(const sk_passwd *pw)
{
    return pw ? pw->nwarnings : 0;
}

const char *sk_passwd_warning(const sk_passwd *pw, size_t i)
{
    return pw && i < pw->nwarnings ? pw->warnings[i] : NULL;
}

size_t sk_passwd_warnings_dropped(const sk_passwd *pw)
{
    return pw ? pw->warnings_dropped : 0;
}

static const passwd_entry *find(const sk_passwd *pw, const char *user)
{
    if (!pw || !user || !pw->n)
        return NULL;
    passwd_entry key = {.user = (char *)user};
    return bsearch(&key, pw->entries, pw->n, sizeof *pw->entries, entry_cmp);
}

int sk_passwd_has_user(const sk_passwd *pw, const char *user)
{
    return find(pw, user) != NULL;
}

int sk_passwd_user_enabled(const sk_passwd *pw, const char *user)
{
    const passwd_entry *e = find(pw, user);
    return e && !e->disabled;
}

int sk_passwd_userdb_of(const sk_passwd *pw, const char *user, sk_passwd_userdb *out)
{
    const passwd_entry *e = find(pw, user);
    if (!e)
        return -1;
    out->uid = e->uid;
    out->gid = e->gid;
    out->home = e->home;
    out->extra = e->extra;
    return 0;
}

char *sk_passwd_lookup_hash(const sk_passwd *pw, const char *user, int *known)
{
    *known = 0;
    if (!pw || !user)
        return NULL;
    const passwd_entry *e = find(pw, user);
    if (e && e->disabled)
        e = NULL; /* costs the dummy hash and fails, like an unknown user */
    *known = e != NULL;
    return strdup(e ? e->hash : pw->dummy_hash);
}

int sk_passwd_check_hash(const char *hash, int known, const char *password)
{
    if (!hash || !password)
        return 0;
    /* Hashing cost grows with the length for SHA-512-crypt: bound it. The
     * refusal does not depend on the user, so it reveals nothing. */
    if (strlen(password) > SK_PASSWD_PASSWORD_MAX)
        return 0;
    int r = sk_pwscheme_verify(hash, password);
    if (r < 0)
        return -1;
    return known && r == 1;
}

int sk_passwd_verify(const sk_passwd *pw, const char *user, const char *password)
{
    if (!pw || !user || !password)
        return 0;
    int known;
    char *hash = sk_passwd_lookup_hash(pw, user, &known);
    if (!hash)
        return -1;
    int r = sk_passwd_check_hash(hash, known, password);
    free(hash);
    return r;
}

/* ---- hashing ---- */

int sk_passwd_scheme_parse(const char *name, sk_passwd_scheme *out)
{
    if (!name)
        return -1;
    if (!strcasecmp(name, "yescrypt")) {
        *out = SK_PASSWD_YESCRYPT;
        return 0;
    }
    if (!strcasecmp(name, "sha512-crypt")) {
        *out = SK_PASSWD_SHA512_CRYPT;
        return 0;
    }
    if (!strcasecmp(name, "argon2id")) {
        *out = SK_PASSWD_ARGON2ID;
        return 0;
    }
    return -1;
}

const char *sk_passwd_scheme_prefix(sk_passwd_scheme scheme)
{
    switch (scheme) {
    case SK_PASSWD_SHA512_CRYPT:
        return "{SHA512-CRYPT}";
    case SK_PASSWD_ARGON2ID:
        return "{ARGON2ID}";
    default:
        return "{CRYPT}"; /* Dovecot 2.3 verifies $y$ through crypt(3) */
    }
}

/* Argon2id as Dovecot makes it: 64 MiB, one lane, 16 bytes of salt, a
 * 32-byte hash, the PHC string format. */
static int hash_argon2id(unsigned long cost, const char *password, char *out, size_t outlen,
                         char *err, size_t errlen)
{
    if (cost == 0)
        cost = 3;
    if (cost > 100) {
        sk_errf(err, errlen, "Argon2id time cost must be 1 to 100 (default 3)");
        return -1;
    }
    unsigned char salt[16];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        sk_errf(err, errlen, "cannot make a salt");
        return -1;
    }
    size_t need = argon2_encodedlen((uint32_t)cost, 65536, 1, sizeof salt, 32, Argon2_id);
    if (need > outlen) {
        sk_errf(err, errlen, "hash does not fit the output buffer");
        return -1;
    }
    int r = argon2id_hash_encoded((uint32_t)cost, 65536, 1, password, strlen(password), salt,
                                  sizeof salt, 32, out, outlen);
    if (r != ARGON2_OK) {
        sk_errf(err, errlen, "argon2: %s", argon2_error_message(r));
        return -1;
    }
    return 0;
}

int sk_passwd_hash(sk_passwd_scheme scheme, unsigned long cost, const char *password, char *out,
                   size_t outlen, char *err, size_t errlen)
{
    const char *prefix;
    if (scheme == SK_PASSWD_ARGON2ID) {
        if (!password || !*password) {
            sk_errf(err, errlen, "empty password");
            return -1;
        }
        if (strlen(password) > SK_PASSWD_PASSWORD_MAX) {
            sk_errf(err, errlen, "password longer than %d bytes", SK_PASSWD_PASSWORD_MAX);
            return -1;
        }
        return hash_argon2id(cost, password, out, outlen, err, errlen);
    }
    if (scheme == SK_PASSWD_YESCRYPT) {
        prefix = "$y$";
        if (cost > 11) {
            sk_errf(err, errlen, "yescrypt cost must be 1 to 11 (default 5)");
            return -1;
        }
    } else if (scheme == SK_PASSWD_SHA512_CRYPT) {
        prefix = "$6$";
        if (cost == 0)
            cost = SK_PASSWD_SHA512_ROUNDS_DEFAULT;
        if (cost < 1000 || cost > 999999999UL) {
            sk_errf(err, errlen, "SHA-512-crypt rounds must be 1000 to 999999999 (default %lu)",
                    SK_PASSWD_SHA512_ROUNDS_DEFAULT);
            return -1;
        }
    } else {
        sk_errf(err, errlen, "unknown hash scheme");
        return -1;
    }
    if (!password || !*password) {
        sk_errf(err, errlen, "empty password");
        return -1;
    }
    if (strlen(password) > SK_PASSWD_PASSWORD_MAX) {
        sk_errf(err, errlen, "password longer than %d bytes", SK_PASSWD_PASSWORD_MAX);
        return -1;
    }
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    /* NULL random bytes: libxcrypt takes them from the kernel (getrandom). */
    if (!crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof setting)) {
        sk_errf(err, errlen, "cannot make a salt: %s", strerror(errno));
        return -1;
    }
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd) {
        sk_errf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    const char *h = crypt_rn(password, setting, cd, (int)sizeof *cd);
    if (!h)
        sk_errf(err, errlen, "crypt failed: %s", strerror(errno));
    else if (strlen(h) >= outlen)
        sk_errf(err, errlen, "hash does not fit the output buffer");
    else {
        memcpy(out, h, strlen(h) + 1);
        rc = 0;
    }
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return rc;
}
