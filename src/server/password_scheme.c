/*
 * password_scheme.c - Dovecot password schemes checked and verified with
 * well-kept libraries: libxcrypt (crypt(3) strings), libargon2 (Argon2i,
 * Argon2id) and OpenSSL (digests, PBKDF2, SCRAM's stored key, RFC 5802
 * section 3). Every comparison is constant-time (CRYPTO_memcmp); clear-text
 * values are compared as SHA-256 digests so their length is not revealed.
 * See password_scheme.h for the list and Dovecot's documentation of
 * password schemes for the encodings.
 */
#include "server/password_scheme.h"
#include "smtpkit/sasl.h"

#include <argon2.h>
#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

typedef enum scheme_kind {
    K_CRYPT,
    K_ARGON2I,
    K_ARGON2ID,
    K_DIGEST, /* digest(password) */
    K_SALTED, /* digest(password || salt) || salt */
    K_PBKDF2, /* $1$salt$rounds$hex(PBKDF2-HMAC-SHA1, 20 bytes) */
    K_SCRAM,  /* iterations,salt,stored key,server key (base64) */
    K_PLAIN,  /* clear text */
    K_UNSUPP, /* a Dovecot scheme smtpkit cannot verify */
} scheme_kind;

typedef enum encoding { ENC_B64, ENC_HEX } encoding;

typedef struct scheme {
    const char *name;
    scheme_kind kind;
    const char *md;          /* OpenSSL digest name */
    encoding enc;            /* default encoding of the digest forms */
    const char *crypt_start; /* K_CRYPT: the hash must start so ("" any, "-" no '$') */
} scheme;

static const scheme schemes[] = {
    {"CRYPT", K_CRYPT, NULL, ENC_B64, ""},
    {"DES-CRYPT", K_CRYPT, NULL, ENC_B64, "-"},
    {"MD5-CRYPT", K_CRYPT, NULL, ENC_B64, "$1$"},
    {"MD5", K_CRYPT, NULL, ENC_B64, "$1$"},
    {"SHA256-CRYPT", K_CRYPT, NULL, ENC_B64, "$5$"},
    {"SHA512-CRYPT", K_CRYPT, NULL, ENC_B64, "$6$"},
    {"BLF-CRYPT", K_CRYPT, NULL, ENC_B64, "$2"},
    {"YESCRYPT", K_CRYPT, NULL, ENC_B64, "$y$"},
    {"ARGON2I", K_ARGON2I, NULL, ENC_B64, NULL},
    {"ARGON2ID", K_ARGON2ID, NULL, ENC_B64, NULL},
    {"SHA", K_DIGEST, "SHA1", ENC_B64, NULL},
    {"SHA1", K_DIGEST, "SHA1", ENC_B64, NULL},
    {"SHA256", K_DIGEST, "SHA256", ENC_B64, NULL},
    {"SHA512", K_DIGEST, "SHA512", ENC_B64, NULL},
    {"LDAP-MD5", K_DIGEST, "MD5", ENC_B64, NULL},
    {"PLAIN-MD5", K_DIGEST, "MD5", ENC_HEX, NULL},
    {"SSHA", K_SALTED, "SHA1", ENC_B64, NULL},
    {"SSHA256", K_SALTED, "SHA256", ENC_B64, NULL},
    {"SSHA512", K_SALTED, "SHA512", ENC_B64, NULL},
    {"SMD5", K_SALTED, "MD5", ENC_B64, NULL},
    {"PBKDF2", K_PBKDF2, "SHA1", ENC_HEX, NULL},
    {"SCRAM-SHA-1", K_SCRAM, "SHA1", ENC_B64, NULL},
    {"SCRAM-SHA-256", K_SCRAM, "SHA256", ENC_B64, NULL},
    {"PLAIN", K_PLAIN, NULL, ENC_B64, NULL},
    {"CLEAR", K_PLAIN, NULL, ENC_B64, NULL},
    {"CLEARTEXT", K_PLAIN, NULL, ENC_B64, NULL},
    /* Dovecot's, but not verifiable from a password alone here. */
    {"CRAM-MD5", K_UNSUPP, NULL, ENC_B64, NULL},
    {"HMAC-MD5", K_UNSUPP, NULL, ENC_B64, NULL},
    {"DIGEST-MD5", K_UNSUPP, NULL, ENC_B64, NULL},
    {"PLAIN-MD4", K_UNSUPP, NULL, ENC_B64, NULL},
    {"PLAIN-TRUNC", K_UNSUPP, NULL, ENC_B64, NULL},
    {"OTP", K_UNSUPP, NULL, ENC_B64, NULL},
    {"SKEY", K_UNSUPP, NULL, ENC_B64, NULL},
    {"RPA", K_UNSUPP, NULL, ENC_B64, NULL},
    {"LANMAN", K_UNSUPP, NULL, ENC_B64, NULL},
    {"NTLM", K_UNSUPP, NULL, ENC_B64, NULL},
};

#define MAX_RAW 512                      /* decoded digest plus salt */
#define ARGON2_MAX_KIB (1024UL * 1024UL) /* 1 GiB per verification */

/* The split of a stored value. */
typedef struct stored_pw {
    const scheme *s; /* NULL: unknown {NAME} */
    encoding enc;
    int enc_given; /* a .HEX / .B64 suffix named it */
    const char *value;
    size_t value_len;
} stored_pw;

static const scheme crypt_default = {"CRYPT", K_CRYPT, NULL, ENC_B64, ""};

/* 0, or -1 for a '{' without '}' (*why set). */
static int split(const char *p, size_t n, stored_pw *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || p[0] != '{') {
        out->s = &crypt_default;
        out->value = p;
        out->value_len = n;
        return 0;
    }
    const char *close = memchr(p, '}', n);
    if (!close) {
        *why = "'{' of a scheme prefix without '}'";
        return -1;
    }
    size_t nl = (size_t)(close - p) - 1;
    const char *name = p + 1;
    const char *dot = memchr(name, '.', nl);
    size_t base = dot ? (size_t)(dot - name) : nl;
    out->value = close + 1;
    out->value_len = n - nl - 2;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strlen(schemes[i].name) == base && !strncasecmp(name, schemes[i].name, base))
            out->s = &schemes[i];
    if (out->s)
        out->enc = out->s->enc;
    if (out->s && dot) {
        size_t sl = nl - base - 1;
        const char *suf = dot + 1;
        out->enc_given = 1;
        if (sl == 3 && !strncasecmp(suf, "HEX", 3))
            out->enc = ENC_HEX;
        else if ((sl == 3 && !strncasecmp(suf, "B64", 3)) ||
                 (sl == 6 && !strncasecmp(suf, "BASE64", 6)))
            out->enc = ENC_B64;
        else
            out->s = NULL;
    }
    return 0;
}

/* ---- encodings ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static long hex_decode(const char *in, size_t n, unsigned char *out, size_t max)
{
    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int a = hexval(in[i]), b = hexval(in[i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i / 2] = (unsigned char)(a * 16 + b);
    }
    return (long)(n / 2);
}

static long b64_decode(const char *in, size_t n, unsigned char *out, size_t max)
{
    ssize_t r = sk_sasl_b64_decode(in, n, out, max);
    return r < 0 ? -1 : (long)r;
}

/* The raw bytes of a digest form: in the encoding a .HEX/.B64 suffix
 * names; else, for an unsalted digest, hex when the length is exactly the
 * hex length, base64 otherwise (Dovecot guesses so too); else the
 * scheme's default. */
static long decode_value(const stored_pw *sp, size_t digest_len, unsigned char *out, size_t max)
{
    encoding e = sp->enc;
    if (!sp->enc_given && sp->s->kind == K_DIGEST)
        e = sp->value_len == 2 * digest_len ? ENC_HEX : ENC_B64;
    if (e == ENC_HEX)
        return hex_decode(sp->value, sp->value_len, out, max);
    return b64_decode(sp->value, sp->value_len, out, max);
}

/* ---- crypt(3) ---- */

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

static size_t tail_len(const char *p, size_t n)
{
    size_t i = n;
    while (i > 0 && p[i - 1] != '$')
        i--;
    return n - i;
}

static const char *check_crypt(const char *h, size_t n, const char **note)
{
    if (n == 0)
        return "empty password hash";
    if (n >= CRYPT_OUTPUT_SIZE)
        return "password hash too long";
    for (size_t i = 0; i < n; i++)
        if (!is_crypt_char(h[i]))
            return "password hash contains a character crypt(3) never produces";
    char tmp[CRYPT_OUTPUT_SIZE];
    memcpy(tmp, h, n);
    tmp[n] = '\0';
    switch (crypt_checksalt(tmp)) {
    case CRYPT_SALT_OK:
        break;
    case CRYPT_SALT_METHOD_LEGACY:
        *note = "weak hash method (DES, MD5 or SHA-256-crypt): make a new hash with `smtpkit "
                "passwd`";
        break;
    default:
        return "unknown or disabled crypt(3) hash method";
    }
    if (h[0] != '$') {
        if (n != 13)
            return "not a crypt(3) hash (plain text without {PLAIN}?)";
        return NULL;
    }
    /* $id$[params$]salt$checksum: at least three '$', a non-empty end. */
    if (count_char(h, n, '$') < 3 || h[n - 1] == '$')
        return "incomplete password hash (a salt without the hash?)";
    if (n > 3 && !memcmp(h, "$y$", 3) && count_char(h, n, '$') < 4)
        return "incomplete yescrypt hash";
    if (n > 3 && !memcmp(h, "$6$", 3) && tail_len(h, n) != 86)
        return "SHA-512-crypt hash has the wrong length";
    if (n > 3 && !memcmp(h, "$5$", 3) && tail_len(h, n) != 43)
        return "SHA-256-crypt hash has the wrong length";
    if (n > 3 && !memcmp(h, "$1$", 3) && tail_len(h, n) != 22)
        return "MD5-crypt hash has the wrong length";
    if (n > 3 && h[1] == '2' && n != 60)
        return "bcrypt hash has the wrong length";
    return NULL;
}

static int verify_crypt(const char *hash, const char *password)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -1;
    const char *out = crypt_rn(password, hash, cd, (int)sizeof *cd);
    int match = 0;
    if (out) {
        size_t ol = strlen(out), hl = strlen(hash);
        /* The length is public (fixed per method); the bytes are not. */
        match = ol == hl && CRYPTO_memcmp(out, hash, hl) == 0;
    }
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return match;
}

/* ---- Argon2 ---- */

/* $argon2id$v=19$m=65536,t=3,p=1$salt$hash, m bounded. */
static const char *check_argon2(const char *v, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (n < pl || memcmp(v, prefix, pl) != 0)
        return "hash does not belong to its {SCHEME} prefix";
    if (count_char(v, n, '$') != 5 || v[n - 1] == '$')
        return "incomplete Argon2 hash";
    const char *m = NULL;
    for (size_t i = pl; i + 2 < n; i++)
        if (v[i] == 'm' && v[i + 1] == '=' && (v[i - 1] == '$' || v[i - 1] == ',')) {
            m = v + i + 2;
            break;
        }
    if (!m)
        return "Argon2 hash without a memory cost";
    unsigned long kib = 0;
    while (m < v + n && *m >= '0' && *m <= '9' && kib <= ARGON2_MAX_KIB)
        kib = kib * 10 + (unsigned long)(*m++ - '0');
    if (kib == 0 || kib > ARGON2_MAX_KIB)
        return "Argon2 memory cost over 1 GiB (or zero)";
    return NULL;
}

static int verify_argon2(const char *v, argon2_type t, const char *password)
{
    int r = argon2_verify(v, password, strlen(password), t);
    if (r == ARGON2_OK)
        return 1;
    if (r == ARGON2_VERIFY_MISMATCH || r == ARGON2_DECODING_FAIL)
        return 0;
    return r == ARGON2_MEMORY_ALLOCATION_ERROR ? -1 : 0;
}

/* ---- OpenSSL forms ---- */

static const EVP_MD *md_of(const scheme *s)
{
    return EVP_get_digestbyname(s->md);
}

static int digest(const EVP_MD *md, const void *a, size_t an, const void *b, size_t bn,
                  unsigned char *out, unsigned *outlen)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, a, an) &&
             (bn == 0 || EVP_DigestUpdate(c, b, bn)) && EVP_DigestFinal_ex(c, out, outlen);
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

/* $1$salt$rounds$hex: fields of a {PBKDF2} value. */
static int pbkdf2_fields(const stored_pw *sp, const char **salt, size_t *salt_len,
                         unsigned long *rounds, const char **key, size_t *key_len)
{
    const char *v = sp->value, *e = v + sp->value_len;
    if (sp->value_len < 4 || memcmp(v, "$1$", 3) != 0)
        return -1;
    const char *s = v + 3, *d1 = memchr(s, '$', (size_t)(e - s));
    if (!d1 || d1 == s)
        return -1;
    const char *r = d1 + 1, *d2 = memchr(r, '$', (size_t)(e - r));
    if (!d2 || d2 == r)
        return -1;
    unsigned long n = 0;
    for (const char *q = r; q < d2; q++) {
        if (*q < '0' || *q > '9' || n > 100000000UL)
            return -1;
        n = n * 10 + (unsigned long)(*q - '0');
    }
    if (n == 0 || n > 100000000UL)
        return -1;
    *salt = s;
    *salt_len = (size_t)(d1 - s);
    *rounds = n;
    *key = d2 + 1;
    *key_len = (size_t)(e - *key);
    return *key_len == 40 ? 0 : -1;
}

/* iterations,salt,stored,server: fields of a {SCRAM-*} value. */
static int scram_fields(const stored_pw *sp, unsigned long *iter, const char *f[3], size_t fl[3])
{
    const char *v = sp->value, *e = v + sp->value_len;
    const char *c = memchr(v, ',', sp->value_len);
    if (!c || c == v)
        return -1;
    unsigned long n = 0;
    for (const char *q = v; q < c; q++) {
        if (*q < '0' || *q > '9' || n > 100000000UL)
            return -1;
        n = n * 10 + (unsigned long)(*q - '0');
    }
    if (n == 0 || n > 100000000UL)
        return -1;
    *iter = n;
    const char *p = c + 1;
    for (int i = 0; i < 3; i++) {
        const char *nx = i < 2 ? memchr(p, ',', (size_t)(e - p)) : e;
        if (!nx || nx == p)
            return -1;
        f[i] = p;
        fl[i] = (size_t)(nx - p);
        p = nx + 1;
    }
    return 0;
}

/* ---- the interface ---- */

int sk_pwscheme_check(const char *stored, size_t n, const char **why, const char **note)
{
    *why = NULL;
    *note = NULL;
    stored_pw sp;
    if (split(stored, n, &sp, why) < 0)
        return -1;
    if (!sp.s) {
        *why = "unknown password scheme";
        return -1;
    }
    unsigned char raw[MAX_RAW];
    const EVP_MD *md;
    switch (sp.s->kind) {
    case K_CRYPT: {
        const char *st = sp.s->crypt_start;
        if (sp.value_len == 0)
            *why = "empty password hash";
        else if (!strcmp(st, "-")
                     ? sp.value[0] == '$'
                     : (sp.value_len < strlen(st) || memcmp(sp.value, st, strlen(st)) != 0))
            *why = "hash does not belong to its {SCHEME} prefix";
        else
            *why = check_crypt(sp.value, sp.value_len, note);
        break;
    }
    case K_ARGON2I:
        *why = check_argon2(sp.value, sp.value_len, "$argon2i$");
        break;
    case K_ARGON2ID:
        *why = check_argon2(sp.value, sp.value_len, "$argon2id$");
        break;
    case K_DIGEST:
    case K_SALTED: {
        md = md_of(sp.s);
        if (!md) {
            *why = "digest not available in OpenSSL";
            break;
        }
        size_t dl = (size_t)EVP_MD_get_size(md);
        long got = decode_value(&sp, dl, raw, sizeof raw);
        if (got < 0)
            *why = "password value is not valid base64 or hex";
        else if (sp.s->kind == K_DIGEST ? (size_t)got != dl : (size_t)got <= dl)
            *why = "password digest has the wrong length";
        if (!*why)
            *note = "fast unsalted or salted digest: prefer {ARGON2ID} or a crypt(3) scheme";
        break;
    }
    case K_PBKDF2: {
        const char *salt, *key;
        size_t sl, kl;
        unsigned long rounds;
        if (pbkdf2_fields(&sp, &salt, &sl, &rounds, &key, &kl) < 0 ||
            hex_decode(key, kl, raw, sizeof raw) != 20)
            *why = "PBKDF2 value is not $1$salt$rounds$hex";
        break;
    }
    case K_SCRAM: {
        unsigned long iter;
        const char *f[3];
        size_t fl[3];
        md = md_of(sp.s);
        size_t dl = md ? (size_t)EVP_MD_get_size(md) : 0;
        if (!md || scram_fields(&sp, &iter, f, fl) < 0 ||
            b64_decode(f[0], fl[0], raw, sizeof raw) <= 0 ||
            b64_decode(f[1], fl[1], raw, sizeof raw) != (long)dl ||
            b64_decode(f[2], fl[2], raw, sizeof raw) != (long)dl)
            *why = "SCRAM value is not iterations,salt,stored-key,server-key";
        break;
    }
    case K_PLAIN:
        if (sp.value_len == 0)
            *why = "empty password";
        else
            *note = "plain-text password: make a hash with `smtpkit passwd`";
        break;
    case K_UNSUPP:
        *why = "password scheme not supported by smtpkit (it needs more than the password to "
               "verify); use {ARGON2ID}, {SHA512-CRYPT} or `smtpkit passwd`";
        break;
    }
    if (*why)
        *note = NULL;
    return *why ? -1 : 0;
}

int sk_pwscheme_is_slow(const char *stored)
{
    stored_pw sp;
    const char *why;
    if (split(stored, strlen(stored), &sp, &why) < 0 || !sp.s)
        return 0;
    return sp.s->kind == K_CRYPT || sp.s->kind == K_ARGON2I || sp.s->kind == K_ARGON2ID ||
           sp.s->kind == K_PBKDF2 || sp.s->kind == K_SCRAM;
}

int sk_pwscheme_verify(const char *stored, const char *password)
{
    stored_pw sp;
    const char *why, *note;
    /* Only values the load-time check accepts (bounded costs, sane shapes). */
    if (!stored || !password || sk_pwscheme_check(stored, strlen(stored), &why, &note) < 0 ||
        split(stored, strlen(stored), &sp, &why) < 0 || !sp.s)
        return 0;
    /* The value runs to the end of the string (the caller stores it so). */
    unsigned char raw[MAX_RAW], calc[EVP_MAX_MD_SIZE], calc2[EVP_MAX_MD_SIZE];
    unsigned cl = 0, cl2 = 0;
    const EVP_MD *md;
    size_t pwl = strlen(password);
    int r = 0;
    switch (sp.s->kind) {
    case K_CRYPT:
        return verify_crypt(sp.value, password);
    case K_ARGON2I:
        return verify_argon2(sp.value, Argon2_i, password);
    case K_ARGON2ID:
        return verify_argon2(sp.value, Argon2_id, password);
    case K_DIGEST:
    case K_SALTED: {
        md = md_of(sp.s);
        if (!md)
            return 0;
        size_t dl = (size_t)EVP_MD_get_size(md);
        long got = decode_value(&sp, dl, raw, sizeof raw);
        if (got < (long)dl)
            return 0;
        const unsigned char *salt = raw + dl;
        size_t saltl = sp.s->kind == K_SALTED ? (size_t)got - dl : 0;
        if (digest(md, password, pwl, salt, saltl, calc, &cl) < 0)
            return -1;
        r = cl == dl && CRYPTO_memcmp(calc, raw, dl) == 0;
        break;
    }
    case K_PBKDF2: {
        const char *salt, *key;
        size_t sl, kl;
        unsigned long rounds;
        if (pbkdf2_fields(&sp, &salt, &sl, &rounds, &key, &kl) < 0 ||
            hex_decode(key, kl, raw, sizeof raw) != 20)
            return 0;
        if (!PKCS5_PBKDF2_HMAC(password, (int)pwl, (const unsigned char *)salt, (int)sl,
                               (int)rounds, EVP_sha1(), 20, calc))
            return -1;
        r = CRYPTO_memcmp(calc, raw, 20) == 0;
        break;
    }
    case K_SCRAM: {
        /* RFC 5802 3: StoredKey = H(HMAC(SaltedPassword, "Client Key")). */
        unsigned long iter;
        const char *f[3];
        size_t fl[3];
        md = md_of(sp.s);
        if (!md || scram_fields(&sp, &iter, f, fl) < 0)
            return 0;
        size_t dl = (size_t)EVP_MD_get_size(md);
        unsigned char salt[MAX_RAW], stored_key[EVP_MAX_MD_SIZE], salted[EVP_MAX_MD_SIZE];
        long sl = b64_decode(f[0], fl[0], salt, sizeof salt);
        if (sl <= 0 || b64_decode(f[1], fl[1], stored_key, sizeof stored_key) != (long)dl)
            return 0;
        if (!PKCS5_PBKDF2_HMAC(password, (int)pwl, salt, (int)sl, (int)iter, md, (int)dl, salted) ||
            !HMAC(md, salted, (int)dl, (const unsigned char *)"Client Key", 10, calc, &cl) ||
            digest(md, calc, cl, NULL, 0, calc2, &cl2) < 0) {
            OPENSSL_cleanse(salted, sizeof salted);
            return -1;
        }
        OPENSSL_cleanse(salted, sizeof salted);
        r = cl2 == dl && CRYPTO_memcmp(calc2, stored_key, dl) == 0;
        break;
    }
    case K_PLAIN:
        /* Compare digests: equal length, so the stored length stays hidden. */
        if (digest(EVP_sha256(), password, pwl, NULL, 0, calc, &cl) < 0 ||
            digest(EVP_sha256(), sp.value, sp.value_len, NULL, 0, calc2, &cl2) < 0)
            return -1;
        r = cl == cl2 && CRYPTO_memcmp(calc, calc2, cl) == 0;
        break;
    case K_UNSUPP:
        return 0;
    }
    OPENSSL_cleanse(calc, sizeof calc);
    OPENSSL_cleanse(calc2, sizeof calc2);
    return r;
}
