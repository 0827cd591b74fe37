/*
 * passwd.c - Dovecot-style passwd-file of crypt(3) hashes for SMTP AUTH
 * (RFC 4954 section 4: the server checks the credentials of PLAIN/LOGIN),
 * verified with libxcrypt's crypt_rn() and a constant-time comparison, and
 * hashing for `smtpkit passwd` with crypt_gensalt_rn().
 *
 * The loaded file is an immutable sorted table: a reload (SIGHUP) builds a
 * new one and the caller swaps pointers, so a broken file never replaces a
 * working one.
 */
#include "server/passwd.h"
#include "server/errmsg.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

typedef struct passwd_entry {
    char *user;
    char *hash;
    char *extra;
    unsigned line;
} passwd_entry;

struct sk_passwd {
    passwd_entry *entries; /* sorted by user */
    size_t n;
    /* Hashed against for unknown users, so they cost what known ones do. */
    char *dummy_hash;
};

/* ---- one line ---- */

/* Dovecot scheme prefixes that are crypt(3) strings underneath, with the
 * hash prefix each one implies ("" = any). */
static const struct {
    const char *name;
    const char *hash_prefix;
} crypt_schemes[] = {
    {"CRYPT", ""},
    {"YESCRYPT", "$y$"},
    {"SHA512-CRYPT", "$6$"},
    {"BLF-CRYPT", "$2"},
};

static int is_crypt_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/' || c == '$' || c == '=' || c == ',';
}

static size_t count_char(const char *p, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == c;
    return k;
}

/* Length of the part after the last '$' (the checksum of most methods). */
static size_t tail_len(const char *p, size_t n)
{
    size_t i = n;
    while (i > 0 && p[i - 1] != '$')
        i--;
    return n - i;
}

/* Shape checks for a crypt string, hash[0..n). NULL if acceptable. */
static const char *check_hash(const char *h, size_t n)
{
    if (n == 0)
        return "empty password hash";
    if (n >= CRYPT_OUTPUT_SIZE)
        return "password hash too long";
    for (size_t i = 0; i < n; i++)
        if (!is_crypt_char(h[i]))
            return "password hash contains a character crypt(3) never produces";
    if (h[0] != '$')
        return "legacy DES hash (or plain text) refused; make a hash with `smtpkit passwd`";
    char tmp[CRYPT_OUTPUT_SIZE];
    memcpy(tmp, h, n);
    tmp[n] = '\0';
    switch (crypt_checksalt(tmp)) {
    case CRYPT_SALT_OK:
        break;
    case CRYPT_SALT_METHOD_LEGACY:
        return "legacy hash method (MD5, SHA-256-crypt, DES...) refused; make a hash with "
               "`smtpkit passwd`";
    default:
        return "unknown or disabled crypt(3) hash method";
    }
    /* $id$[params$]salt$checksum: at least three '$', a non-empty end. */
    if (count_char(h, n, '$') < 3 || h[n - 1] == '$')
        return "incomplete password hash (a salt without the hash?)";
    if (n > 3 && !memcmp(h, "$y$", 3) && count_char(h, n, '$') < 4)
        return "incomplete yescrypt hash";
    if (n > 3 && !memcmp(h, "$6$", 3) && tail_len(h, n) != 86)
        return "SHA-512-crypt hash has the wrong length";
    if (n > 3 && h[0] == '$' && h[1] == '2' && n != 60)
        return "bcrypt hash has the wrong length";
    return NULL;
}

static int valid_user_byte(unsigned char c)
{
    /* Printable, no spaces (a name with a space is always a typo here). */
    return c > 0x20 && c != 0x7f && c != ':';
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

    const char *h = colon + 1;
    size_t rest = n - ulen - 1;
    const char *end = memchr(h, ':', rest);
    size_t hlen = end ? (size_t)(end - h) : rest;

    if (hlen > 0 && h[0] == '{') {
        const char *close = memchr(h, '}', hlen);
        if (!close) {
            *err = "'{' of a scheme prefix without '}'";
            return -1;
        }
        size_t slen = (size_t)(close - h) - 1;
        const char *want = NULL;
        for (size_t i = 0; i < sizeof crypt_schemes / sizeof crypt_schemes[0]; i++)
            if (strlen(crypt_schemes[i].name) == slen &&
                !strncasecmp(h + 1, crypt_schemes[i].name, slen))
                want = crypt_schemes[i].hash_prefix;
        if (!want) {
            *err = "password scheme not supported: use a crypt(3) hash ({CRYPT}, "
                   "{YESCRYPT}, {SHA512-CRYPT}, {BLF-CRYPT}); see `smtpkit passwd`";
            return -1;
        }
        size_t skip = slen + 2;
        h += skip;
        hlen -= skip;
        size_t wl = strlen(want);
        if (hlen < wl || memcmp(h, want, wl) != 0) {
            *err = "hash does not belong to its {SCHEME} prefix";
            return -1;
        }
    }
    const char *why = check_hash(h, hlen);
    if (why) {
        *err = why;
        return -1;
    }
    out->user = p;
    out->user_len = ulen;
    out->hash = h;
    out->hash_len = hlen;
    if (end) {
        out->extra = end + 1;
        out->extra_len = (size_t)((p + n) - (end + 1));
    } else {
        out->extra = p + n;
        out->extra_len = 0;
    }
    return 0;
}

/* ---- the file ---- */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const passwd_entry *)a)->user, ((const passwd_entry *)b)->user);
}

static void free_entries(passwd_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].user);
        free(e[i].hash);
        free(e[i].extra);
    }
    free(e);
}

void sk_passwd_free(sk_passwd *pw)
{
    if (!pw)
        return;
    free_entries(pw->entries, pw->n);
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
        e->user = dup_n(pl.user, pl.user_len);
        e->hash = dup_n(pl.hash, pl.hash_len);
        e->extra = dup_n(pl.extra, pl.extra_len);
        e->line = lineno;
        pw->n++;
        if (!e->user || !e->hash || !e->extra) {
            sk_errf(err, errlen, "%s: out of memory", path);
            ok = 0;
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
        /* The first entry's hash: an unknown user costs the same method and
         * cost as (at least) one real account. */
        pw->dummy_hash = pw->n ? strdup(pw->entries[0].hash) : default_dummy();
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

char *sk_passwd_lookup_hash(const sk_passwd *pw, const char *user, int *known)
{
    *known = 0;
    if (!pw || !user)
        return NULL;
    const passwd_entry *e = find(pw, user);
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
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -1;
    const char *out = crypt_rn(password, hash, cd, (int)sizeof *cd);
    int match = 0;
    if (out) {
        size_t ol = strlen(out), hl = strlen(hash);
        /* The length is public (it is fixed per method); the bytes are not. */
        match = ol == hl && CRYPTO_memcmp(out, hash, hl) == 0;
    }
    /* crypt_data may hold password-derived state. */
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return known && match;
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
    return -1;
}

int sk_passwd_hash(sk_passwd_scheme scheme, unsigned long cost, const char *password, char *out,
                   size_t outlen, char *err, size_t errlen)
{
    const char *prefix;
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
