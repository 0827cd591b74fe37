/*
 * sasl.c - AUTH PLAIN / LOGIN exchange decoder and strict base64.
 *
 * RFC 4954 4 (AUTH command, 334 challenges, "*" cancels, "=" is an empty
 * initial response), RFC 4616 2 (PLAIN message: [authzid] NUL authcid NUL
 * passwd, each 1..255 octets of UTF-8 without NUL), draft-murchison-sasl-
 * login (LOGIN: "Username:" then "Password:" challenges), RFC 4648 4
 * (base64; we accept only the canonical padded form, as RFC 4954 asks the
 * server to refuse what it cannot decode).
 */
#include "smtpkit/sasl.h"

#include <string.h>
#include <strings.h>

#include "smtpkit/address.h" /* sk_utf8_valid */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

ssize_t sk_sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outmax)
{
    if (len % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=') {
                /* padding only in the last quantum, only at its end */
                if (i + 4 != len || k < 2)
                    return -1;
                pad++;
                v[k] = 0;
            } else {
                if (pad) /* data after '=' */
                    return -1;
                v[k] = b64val(c);
                if (v[k] < 0)
                    return -1;
            }
        }
        size_t nbytes = 3 - (size_t)pad;
        /* canonical: the bits dropped by the padding must be zero */
        if (pad == 2 && (v[1] & 0x0f))
            return -1;
        if (pad == 1 && (v[2] & 0x03))
            return -1;
        if (o > outmax || outmax - o < nbytes)
            return -1;
        unsigned long q = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                          ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        out[o++] = (unsigned char)(q >> 16);
        if (nbytes > 1)
            out[o++] = (unsigned char)(q >> 8);
        if (nbytes > 2)
            out[o++] = (unsigned char)q;
    }
    return (ssize_t)o;
}

size_t sk_sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outmax)
{
    size_t need = (len + 2) / 3 * 4;
    if (len > ((size_t)-1) / 2 || outmax < need + 1)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned long q = (unsigned long)in[i] << 16;
        if (i + 1 < len)
            q |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < len)
            q |= in[i + 2];
        out[o++] = b64chars[(q >> 18) & 63];
        out[o++] = b64chars[(q >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(q >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[q & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

sk_sasl_mech sk_sasl_mech_lookup(const char *name, size_t len)
{
    if (len == 5 && strncasecmp(name, "PLAIN", 5) == 0)
        return SK_SASL_PLAIN;
    if (len == 5 && strncasecmp(name, "LOGIN", 5) == 0)
        return SK_SASL_LOGIN;
    return SK_SASL_NONE;
}

const char *sk_sasl_mech_name(sk_sasl_mech m)
{
    switch (m) {
    case SK_SASL_PLAIN:
        return "PLAIN";
    case SK_SASL_LOGIN:
        return "LOGIN";
    default:
        return "NONE";
    }
}

void sk_sasl_clear(sk_sasl *x)
{
    explicit_bzero(x, sizeof *x);
}

/* Decoded messages are never longer than this; a line is at most 12288
 * octets of base64. */
#define DECODED_MAX (SK_SASL_LINE_MAX / 4 * 3)

/* Copy one field, 1..255 octets of UTF-8 without NUL. */
static int take_field(char *dst, const unsigned char *p, size_t n)
{
    if (n == 0 || n > SK_SASL_FIELD_MAX || memchr(p, 0, n) || !sk_utf8_valid((const char *)p, n))
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

/* RFC 4616: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static sk_sasl_status plain_message(sk_sasl *x, const unsigned char *m, size_t n)
{
    const unsigned char *nul1 = memchr(m, 0, n);
    if (!nul1)
        return SK_SASL_BAD_MSG;
    size_t zlen = (size_t)(nul1 - m);
    const unsigned char *c = nul1 + 1;
    size_t rest = n - zlen - 1;
    const unsigned char *nul2 = memchr(c, 0, rest);
    if (!nul2)
        return SK_SASL_BAD_MSG;
    size_t clen = (size_t)(nul2 - c);
    const unsigned char *pw = nul2 + 1;
    size_t plen = rest - clen - 1;
    if (zlen > SK_SASL_FIELD_MAX || take_field(x->user, c, clen) < 0 ||
        take_field(x->pass, pw, plen) < 0) {
        sk_sasl_clear(x);
        return SK_SASL_BAD_MSG;
    }
    /* No proxy authorisation: an authzid, if given, must equal authcid. */
    if (zlen && (zlen != clen || memcmp(m, c, clen) != 0)) {
        sk_sasl_clear(x);
        return SK_SASL_AUTHZ;
    }
    return SK_SASL_DONE;
}

static sk_sasl_status decode_line(const char *line, size_t len, unsigned char *buf, size_t *outlen)
{
    if (len == 1 && line[0] == '*')
        return SK_SASL_CANCEL;
    ssize_t n = sk_sasl_b64_decode(line, len, buf, DECODED_MAX);
    if (n < 0)
        return SK_SASL_BAD_B64;
    *outlen = (size_t)n;
    return SK_SASL_DONE;
}

/* Process a decoded client response. */
static sk_sasl_status process(sk_sasl *x, const unsigned char *m, size_t n, const char **challenge)
{
    switch (x->mech) {
    case SK_SASL_PLAIN:
        x->step = 1;
        return plain_message(x, m, n);
    case SK_SASL_LOGIN:
        if (x->step == 0) {
            if (take_field(x->user, m, n) < 0)
                return SK_SASL_BAD_MSG;
            x->step = 1;
            *challenge = "UGFzc3dvcmQ6"; /* "Password:" */
            return SK_SASL_CONTINUE;
        }
        if (take_field(x->pass, m, n) < 0)
            return SK_SASL_BAD_MSG;
        x->step = 2;
        return SK_SASL_DONE;
    default:
        return SK_SASL_BAD_MSG;
    }
}

sk_sasl_status sk_sasl_start(sk_sasl *x, sk_sasl_mech mech, const char *initial, size_t len,
                             const char **challenge)
{
    sk_sasl_clear(x);
    x->mech = mech;
    *challenge = NULL;
    if (mech != SK_SASL_PLAIN && mech != SK_SASL_LOGIN)
        return SK_SASL_BAD_MSG;
    if (!initial) {
        *challenge = mech == SK_SASL_PLAIN ? "" : "VXNlcm5hbWU6"; /* "Username:" */
        return SK_SASL_CONTINUE;
    }
    unsigned char buf[DECODED_MAX];
    size_t n = 0;
    sk_sasl_status st;
    if (len == 1 && initial[0] == '=') /* RFC 4954 4: empty initial response */
        st = SK_SASL_DONE;
    else if (len == 1 && initial[0] == '*')
        st = SK_SASL_BAD_B64; /* "*" is not base64 and cancels nothing yet */
    else
        st = decode_line(initial, len, buf, &n);
    if (st != SK_SASL_DONE)
        return st;
    st = process(x, buf, n, challenge);
    explicit_bzero(buf, sizeof buf);
    return st;
}

sk_sasl_status sk_sasl_step(sk_sasl *x, const char *line, size_t len, const char **challenge)
{
    unsigned char buf[DECODED_MAX];
    size_t n = 0;
    *challenge = NULL;
    sk_sasl_status st = decode_line(line, len, buf, &n);
    if (st == SK_SASL_DONE)
        st = process(x, buf, n, challenge);
    explicit_bzero(buf, sizeof buf);
    return st;
}
