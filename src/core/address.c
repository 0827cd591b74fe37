/*
 * address.c - SMTP envelope address parser.
 *
 * RFC 5321 4.1.2 (Path, Mailbox, Local-part, Domain, address-literal),
 * 4.1.3 (address literals), 4.5.3.1.1-3 (length limits), 4.1.1.3 and
 * appendix C (source routes: accepted, ignored), 4.5.1 (bare postmaster);
 * RFC 6531 3.3 (UTF-8 in atext, qtextSMTP and sub-domain under SMTPUTF8);
 * RFC 3629 (well-formed UTF-8).
 *
 * A hand-written recursive-descent parser over an explicit (pointer, length)
 * cursor: every read is bounds-checked, nothing depends on NUL termination,
 * and every branch validates before any special case (the lesson of
 * OpenSMTPD CVE-2020-7247).
 */
#include "smtpkit/address.h"

#include <arpa/inet.h>
#include <string.h>

typedef struct cursor {
    const unsigned char *s;
    size_t len;
    size_t i;
    unsigned flags;
    int utf8_seen;
    sk_addr_status st;
    const char *err;
} cursor;

static int fail(cursor *c, sk_addr_status st, const char *msg)
{
    c->st = st;
    c->err = msg;
    return 0;
}

static int is_alpha(unsigned ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_digit(unsigned ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_letdig(unsigned ch)
{
    return is_alpha(ch) || is_digit(ch);
}

/* RFC 5322 3.2.3 atext (ASCII part). */
static int is_atext(unsigned ch)
{
    if (is_letdig(ch))
        return 1;
    return ch && strchr("!#$%&'*+-/=?^_`{|}~", (int)ch) != NULL;
}

size_t sk_utf8_seq_len(const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c0 = p[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c0 >= 0xc2 && c0 <= 0xdf) {
        need = 2;
    } else if (c0 >= 0xe0 && c0 <= 0xef) {
        need = 3;
        if (c0 == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c0 == 0xed)
            hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c0 >= 0xf0 && c0 <= 0xf4) {
        need = 4;
        if (c0 == 0xf0)
            lo = 0x90;
        else if (c0 == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++)
        if (p[k] < 0x80 || p[k] > 0xbf)
            return 0;
    return need;
}

int sk_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = sk_utf8_seq_len(p + i, len - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* Consume one non-ASCII character at the cursor, if policy allows it. */
static int take_utf8(cursor *c)
{
    size_t k = sk_utf8_seq_len(c->s + c->i, c->len - c->i);
    if (!k)
        return fail(c, SK_ADDR_E_SYNTAX, "malformed UTF-8");
    if (!(c->flags & SK_ADDR_UTF8))
        return fail(c, SK_ADDR_E_NEEDS_UTF8, "non-ASCII address requires SMTPUTF8");
    c->i += k;
    c->utf8_seen = 1;
    return 1;
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]. */
static int parse_domain(cursor *c)
{
    size_t start = c->i;
    for (;;) {
        size_t label = c->i;
        int ascii_only = 1, last_hyphen = 0;
        if (c->i >= c->len)
            return fail(c, SK_ADDR_E_SYNTAX,
                        c->i == start ? "missing domain" : "empty domain label");
        unsigned ch = c->s[c->i];
        if (is_letdig(ch)) {
            c->i++;
        } else if (ch >= 0x80) {
            if (!take_utf8(c))
                return 0;
            ascii_only = 0;
        } else {
            return fail(c, SK_ADDR_E_SYNTAX,
                        c->i == start ? "missing or invalid domain" : "empty domain label");
        }
        while (c->i < c->len) {
            ch = c->s[c->i];
            if (is_letdig(ch)) {
                c->i++;
                last_hyphen = 0;
            } else if (ch == '-') {
                c->i++;
                last_hyphen = 1;
            } else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return 0;
                ascii_only = 0;
                last_hyphen = 0;
            } else {
                break;
            }
        }
        if (last_hyphen)
            return fail(c, SK_ADDR_E_SYNTAX, "domain label ends with '-'");
        if (ascii_only && c->i - label > 63) /* RFC 1035 2.3.4 */
            return fail(c, SK_ADDR_E_TOO_LONG, "domain label longer than 63 octets");
        if (c->i < c->len && c->s[c->i] == '.') {
            c->i++;
            continue;
        }
        break;
    }
    if (c->i - start > SK_ADDR_DOMAIN_MAX)
        return fail(c, SK_ADDR_E_TOO_LONG, "domain longer than 255 octets");
    return 1;
}

/* IPv4-address-literal = Snum 3("." Snum); Snum = 1*3DIGIT, 0..255. */
static int ipv4_literal_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t digits = 0;
        while (i < n && is_digit(p[i]) && digits < 3) {
            v = v * 10 + (p[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || v > 255)
            return 0;
        if (part < 3) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    return i == n;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6-addr / General ) "]".
 * General-address-literal needs a standardised tag; none but IPv6 exists,
 * so anything else is refused. */
static int parse_literal(cursor *c)
{
    size_t start = c->i; /* at '[' */
    size_t j = start + 1;
    while (j < c->len && c->s[j] != ']') {
        unsigned ch = c->s[j];
        /* dcontent = %d33-90 / %d94-126 */
        if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
            return fail(c, SK_ADDR_E_SYNTAX, "invalid character in address literal");
        j++;
    }
    if (j >= c->len)
        return fail(c, SK_ADDR_E_SYNTAX, "unterminated address literal");
    const unsigned char *in = c->s + start + 1;
    size_t n = j - start - 1;
    if (n >= 5 && strncasecmp((const char *)in, "IPv6:", 5) == 0) {
        char tmp[64];
        struct in6_addr a6;
        if (n - 5 >= sizeof tmp)
            return fail(c, SK_ADDR_E_SYNTAX, "invalid IPv6 address literal");
        memcpy(tmp, in + 5, n - 5);
        tmp[n - 5] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return fail(c, SK_ADDR_E_SYNTAX, "invalid IPv6 address literal");
    } else if (memchr(in, ':', n)) {
        return fail(c, SK_ADDR_E_SYNTAX, "unsupported address literal tag");
    } else if (!ipv4_literal_valid(in, n)) {
        return fail(c, SK_ADDR_E_SYNTAX, "invalid IPv4 address literal");
    }
    c->i = j + 1;
    return 1;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE */
static int parse_quoted(cursor *c)
{
    c->i++; /* opening quote */
    while (c->i < c->len) {
        unsigned ch = c->s[c->i];
        if (ch == '"') {
            c->i++;
            return 1;
        }
        if (ch == '\\') { /* quoted-pairSMTP = "\" %d32-126 */
            c->i++;
            if (c->i >= c->len || c->s[c->i] < 32 || c->s[c->i] > 126)
                return fail(c, SK_ADDR_E_SYNTAX, "invalid quoted pair in local part");
            c->i++;
        } else if (ch >= 32 && ch <= 126) {
            c->i++;
        } else if (ch >= 0x80) {
            if (!take_utf8(c))
                return 0;
        } else {
            return fail(c, SK_ADDR_E_SYNTAX, "control character in quoted local part");
        }
    }
    return fail(c, SK_ADDR_E_SYNTAX, "unterminated quoted local part");
}

/* Dot-string = Atom *("." Atom) */
static int parse_dot_string(cursor *c)
{
    size_t start = c->i;
    for (;;) {
        size_t atom = c->i;
        while (c->i < c->len) {
            unsigned ch = c->s[c->i];
            if (is_atext(ch)) {
                c->i++;
            } else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return 0;
            } else {
                break;
            }
        }
        if (c->i == atom) {
            int at_end = c->i >= c->len;
            unsigned ch = at_end ? 0 : c->s[c->i];
            if (atom != start)
                return fail(c, SK_ADDR_E_SYNTAX,
                            "empty atom in local part (trailing or doubled dot)");
            if (ch == '.')
                return fail(c, SK_ADDR_E_SYNTAX, "local part starts with a dot");
            if (at_end || ch == '@' || ch == '>')
                return fail(c, SK_ADDR_E_SYNTAX, "empty local part");
            return fail(c, SK_ADDR_E_SYNTAX, "invalid character in local part");
        }
        if (c->i < c->len && c->s[c->i] == '.') {
            c->i++;
            continue;
        }
        return 1;
    }
}

/* Mailbox = Local-part "@" ( Domain / address-literal ); fills out. */
static int parse_mailbox(cursor *c, sk_address *out)
{
    size_t start = c->i;
    if (c->i >= c->len)
        return fail(c, SK_ADDR_E_SYNTAX, "empty address");
    int quoted = c->s[c->i] == '"';
    if (!(quoted ? parse_quoted(c) : parse_dot_string(c)))
        return 0;
    size_t local_len = c->i - start;
    if (c->i >= c->len || c->s[c->i] != '@') {
        if (c->i < c->len && c->s[c->i] != '>')
            return fail(c, SK_ADDR_E_SYNTAX, "invalid character in local part");
        return fail(c, SK_ADDR_E_SYNTAX, "missing '@domain'");
    }
    if (local_len > SK_ADDR_LOCAL_MAX)
        return fail(c, SK_ADDR_E_TOO_LONG, "local part longer than 64 octets");
    c->i++; /* '@' */
    int literal = c->i < c->len && c->s[c->i] == '[';
    if (!(literal ? parse_literal(c) : parse_domain(c)))
        return 0;
    size_t n = c->i - start;
    if (n > SK_ADDR_PATH_MAX - 2)
        return fail(c, SK_ADDR_E_TOO_LONG, "path longer than 256 octets");
    memcpy(out->mailbox, c->s + start, n);
    out->mailbox[n] = '\0';
    out->local_len = local_len;
    out->domain_off = local_len + 1;
    out->quoted_local = quoted;
    out->literal = literal;
    return 1;
}

static void address_clear(sk_address *out)
{
    memset(out, 0, sizeof *out);
    out->domain_off = 0;
}

sk_addr_status sk_path_parse(const char *s, size_t len, unsigned flags, sk_address *out,
                             size_t *consumed, const char **err)
{
    cursor c = {(const unsigned char *)s, len, 0, flags, 0, SK_ADDR_OK, NULL};
    address_clear(out);
    *consumed = 0;
    *err = NULL;
    if (len == 0 || s[0] != '<') {
        *err = "address must be enclosed in <>";
        return SK_ADDR_E_SYNTAX;
    }
    c.i = 1;
    int routed = 0;
    if (c.i < len && s[c.i] == '@') { /* A-d-l ":" : obsolete source route, ignored */
        routed = 1;
        for (;;) {
            c.i++; /* '@' */
            if (!parse_domain(&c))
                goto bad;
            if (c.i < len && s[c.i] == ',') {
                c.i++;
                if (c.i >= len || s[c.i] != '@') {
                    fail(&c, SK_ADDR_E_SYNTAX, "invalid source route");
                    goto bad;
                }
                continue;
            }
            if (c.i < len && s[c.i] == ':') {
                c.i++;
                break;
            }
            fail(&c, SK_ADDR_E_SYNTAX, "invalid source route");
            goto bad;
        }
    }
    if (!routed && c.i < len && s[c.i] == '>') {
        if (!(flags & SK_ADDR_ALLOW_NULL)) {
            fail(&c, SK_ADDR_E_SYNTAX, "null address <> not allowed here");
            goto bad;
        }
        out->null_path = 1;
        *consumed = 2;
        return SK_ADDR_OK;
    }
    if (!routed && (flags & SK_ADDR_POSTMASTER) && len - c.i >= 11 &&
        strncasecmp(s + c.i, "postmaster>", 11) == 0) {
        out->postmaster = 1;
        memcpy(out->mailbox, "postmaster", 11);
        out->local_len = 10;
        out->domain_off = 10; /* empty domain: the NUL after the local part */
        *consumed = c.i + 11;
        return SK_ADDR_OK;
    }
    if (!parse_mailbox(&c, out))
        goto bad;
    if (c.i >= len || s[c.i] != '>') {
        fail(&c, SK_ADDR_E_SYNTAX,
             c.i >= len ? "missing closing '>'" : "invalid character after domain");
        goto bad;
    }
    c.i++;
    if (c.i > SK_ADDR_PATH_MAX) {
        fail(&c, SK_ADDR_E_TOO_LONG, "path longer than 256 octets");
        goto bad;
    }
    out->utf8 = c.utf8_seen;
    *consumed = c.i;
    return SK_ADDR_OK;
bad:
    address_clear(out);
    *err = c.err;
    return c.st;
}

sk_addr_status sk_mailbox_parse(const char *s, size_t len, unsigned flags, sk_address *out,
                                const char **err)
{
    cursor c = {(const unsigned char *)s, len, 0, flags, 0, SK_ADDR_OK, NULL};
    address_clear(out);
    *err = NULL;
    if (!parse_mailbox(&c, out))
        goto bad;
    if (c.i != len) {
        fail(&c, SK_ADDR_E_SYNTAX, "invalid character after domain");
        goto bad;
    }
    out->utf8 = c.utf8_seen;
    return SK_ADDR_OK;
bad:
    address_clear(out);
    *err = c.err;
    return c.st;
}

int sk_domain_valid(const char *s, size_t len, int utf8)
{
    cursor c = {(const unsigned char *)s, len, 0, utf8 ? SK_ADDR_UTF8 : 0, 0, SK_ADDR_OK, NULL};
    return parse_domain(&c) && c.i == len;
}

int sk_address_literal_valid(const char *s, size_t len)
{
    cursor c = {(const unsigned char *)s, len, 0, 0, 0, SK_ADDR_OK, NULL};
    return len > 0 && s[0] == '[' && parse_literal(&c) && c.i == len;
}
