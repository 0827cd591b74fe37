/*
 * caps.c - EHLO capability parsing and plain-words explanations.
 *
 * RFC 5321 4.1.1.1 (ehlo-line = ehlo-keyword *( SP ehlo-param )), RFC 1870
 * (SIZE), RFC 4954 (AUTH), RFC 2920 (PIPELINING), RFC 3207 (STARTTLS),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3030 (CHUNKING,
 * BINARYMIME), RFC 2034 (ENHANCEDSTATUSCODES), RFC 3461 (DSN), RFC 8689
 * (REQUIRETLS), RFC 2852 (DELIVERBY), RFC 1985 (ETRN), RFC 2645 (ATRN).
 *
 * The parser reads untrusted bytes: every field is copied with its length
 * checked, numbers are parsed with overflow checks, and a malformed line is
 * still recorded (flagged invalid) rather than dropped.
 */
#include "smtpkit/client.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void sk_caps_clear(sk_caps *c)
{
    memset(c, 0, sizeof *c);
}

static int is_keyword_char(unsigned char ch, int first)
{
    /* ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
    return isascii(ch) && (isalnum(ch) || (!first && ch == '-'));
}

/* Parse a decimal number of at most 20 digits without overflow. */
static int parse_ull(const char *p, size_t n, unsigned long long *out)
{
    if (n == 0 || n > 20)
        return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int has_word(const char *list, const char *w, size_t l)
{
    const char *s = list;
    while (*s) {
        size_t n = strcspn(s, " ");
        if (n == l && !strncasecmp(s, w, l))
            return 1;
        s += n;
        while (*s == ' ')
            s++;
    }
    return 0;
}

static void add_auth_mechs(sk_caps *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == ' ')
            i++;
        size_t s = i;
        while (i < n && p[i] != ' ')
            i++;
        size_t l = i - s;
        if (!l)
            continue;
        const char *m = p + s;
        if (l == 5 && !strncasecmp(m, "PLAIN", 5))
            c->auth |= SK_AUTH_PLAIN;
        else if (l == 5 && !strncasecmp(m, "LOGIN", 5))
            c->auth |= SK_AUTH_LOGIN;
        else if (l == 8 && !strncasecmp(m, "CRAM-MD5", 8))
            c->auth |= SK_AUTH_CRAM_MD5;
        else if (l == 7 && !strncasecmp(m, "XOAUTH2", 7))
            c->auth |= SK_AUTH_XOAUTH2;
        else if (l == 11 && !strncasecmp(m, "OAUTHBEARER", 11))
            c->auth |= SK_AUTH_OAUTHBEARER;
        else if (l > 6 && !strncasecmp(m, "SCRAM-", 6))
            c->auth |= SK_AUTH_SCRAM;
        else
            c->auth |= SK_AUTH_OTHER;
        /* Keep the list as offered, each mechanism once ("AUTH=" lines of
         * old servers repeat the "AUTH" line). */
        size_t have = strlen(c->auth_list);
        if (!has_word(c->auth_list, m, l) && have + l + 2 < sizeof c->auth_list) {
            if (have)
                c->auth_list[have++] = ' ';
            for (size_t k = 0; k < l; k++)
                c->auth_list[have + k] = (char)toupper((unsigned char)m[k]);
            c->auth_list[have + l] = '\0';
        }
    }
}

int sk_caps_parse_line(sk_caps *c, const char *line, size_t len)
{
    /* Keyword. */
    size_t k = 0;
    while (k < len && is_keyword_char((unsigned char)line[k], k == 0))
        k++;
    int valid = k > 0 && (k == len || line[k] == ' ');
    /* The AUTH=LOGIN form of old servers: keyword with '=' (not in the grammar). */
    int auth_eq = k == 4 && k < len && line[k] == '=' && !strncasecmp(line, "AUTH", 4);

    if (c->ncaps < SK_CAPS_MAX) {
        sk_cap *cap = &c->caps[c->ncaps++];
        size_t kl = k && k < sizeof cap->keyword ? k : 0;
        if (!k) { /* invalid: record the first word as it is */
            while (kl < len && kl + 1 < sizeof cap->keyword && line[kl] != ' ')
                kl++;
        }
        for (size_t i = 0; i < kl; i++) {
            unsigned char ch = (unsigned char)line[i];
            cap->keyword[i] = ch < 0x21 || ch > 0x7e ? '?' : (char)toupper(ch);
        }
        cap->keyword[kl] = '\0';
        size_t ps = kl;
        while (ps < len && (line[ps] == ' ' || line[ps] == '='))
            ps++;
        size_t pl = len - ps;
        if (pl >= sizeof cap->params)
            pl = sizeof cap->params - 1;
        for (size_t i = 0; i < pl; i++) {
            unsigned char ch = (unsigned char)line[ps + i];
            cap->params[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
        cap->params[pl] = '\0';
    }
    if (!valid && !auth_eq)
        return -1;

    const char *p = k < len ? line + k + 1 : line + len; /* after the space or '=' */
    size_t pn = k < len ? len - k - 1 : 0;
#define KW(s) (k == sizeof(s) - 1 && !strncasecmp(line, s, k))
    if (KW("AUTH")) {
        add_auth_mechs(c, p, pn);
    } else if (KW("SIZE")) {
        c->has_size = 1;
        unsigned long long v = 0;
        size_t e = 0;
        while (e < pn && p[e] != ' ')
            e++;
        if (pn && parse_ull(p, e, &v) < 0)
            return -1;
        c->size = v;
    } else if (KW("PIPELINING")) {
        c->pipelining = 1;
    } else if (KW("STARTTLS")) {
        c->starttls = 1;
    } else if (KW("8BITMIME")) {
        c->eightbitmime = 1;
    } else if (KW("SMTPUTF8")) {
        c->smtputf8 = 1;
    } else if (KW("CHUNKING")) {
        c->chunking = 1;
    } else if (KW("BINARYMIME")) {
        c->binarymime = 1;
    } else if (KW("ENHANCEDSTATUSCODES")) {
        c->enhancedstatuscodes = 1;
    } else if (KW("DSN")) {
        c->dsn = 1;
    } else if (KW("REQUIRETLS")) {
        c->requiretls = 1;
    } else if (KW("DELIVERBY")) {
        c->deliverby = 1;
    } else if (KW("ETRN")) {
        c->etrn = 1;
    } else if (KW("ATRN")) {
        c->atrn = 1;
    } else if (KW("VRFY")) {
        c->vrfy = 1;
    } else if (KW("HELP")) {
        c->help = 1;
    }
#undef KW
    return 0;
}

void sk_caps_parse_reply(sk_caps *c, const sk_reply *r)
{
    sk_caps_clear(c);
    c->esmtp = 1;
    for (size_t i = 1; i < r->nlines; i++)
        (void)sk_caps_parse_line(c, r->lines[i], strlen(r->lines[i]));
}

void sk_format_size(unsigned long long n, char *out, size_t outlen)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(out, outlen, "%llu byte%s", n, n == 1 ? "" : "s");
        return;
    }
    double v = (double)n;
    size_t u = 0;
    v /= 1024.0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (v == (double)(unsigned long long)v)
        snprintf(out, outlen, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}

static const struct {
    const char *kw;
    const char *text;
} known[] = {
    {"PIPELINING", "several commands may be sent without waiting for each reply (RFC 2920)"},
    {"STARTTLS", "the connection can be upgraded to TLS with STARTTLS (RFC 3207)"},
    {"8BITMIME", "message bodies may contain 8-bit bytes (BODY=8BITMIME, RFC 6152)"},
    {"SMTPUTF8", "UTF-8 addresses and headers are accepted (RFC 6531)"},
    {"CHUNKING", "the message may be sent in BDAT chunks instead of DATA (RFC 3030)"},
    {"BINARYMIME", "binary MIME bodies may be sent with BDAT (RFC 3030)"},
    {"ENHANCEDSTATUSCODES", "replies carry enhanced status codes such as 2.1.5 (RFC 2034)"},
    {"DSN", "delivery status notifications can be requested (NOTIFY=, RET=, RFC 3461)"},
    {"REQUIRETLS", "messages may demand TLS on every hop (RFC 8689)"},
    {"DELIVERBY", "a delivery deadline may be set (BY=, RFC 2852)"},
    {"ETRN", "queued mail for a domain can be requested with ETRN (RFC 1985)"},
    {"ATRN", "authenticated turn: the roles can be reversed (RFC 2645)"},
    {"VRFY", "VRFY may answer whether an address exists (RFC 5321 3.5)"},
    {"EXPN", "EXPN may expand mailing lists (RFC 5321 3.5)"},
    {"HELP", "HELP gives information (RFC 5321 4.1.1.8)"},
    {"NO-SOLICITING", "no solicitations wanted (RFC 3865)"},
    {"MT-PRIORITY", "message priorities are supported (RFC 6710)"},
    {"FUTURERELEASE", "messages may be held for later release (RFC 4865)"},
    {"BURL", "the message may be fetched from an IMAP URL (RFC 4468)"},
    {"XCLIENT", "Postfix extension: a trusted proxy may pass the real client's details"},
    {"XFORWARD", "Postfix extension: a trusted proxy may forward client details"},
    {"LIMITS", "the server states its limits (RFC 9422)"},
    {"VERB", "Sendmail extension: verbose mode"},
    {"ONEX", "Sendmail extension: one message per session"},
    {"TURN", "the roles can be reversed (RFC 821, obsolete and unsafe)"},
};

void sk_cap_explain(const sk_cap *cap, char *out, size_t outlen)
{
    if (!strcmp(cap->keyword, "SIZE")) {
        unsigned long long v = 0;
        size_t e = strcspn(cap->params, " ");
        if (!cap->params[0] || (parse_ull(cap->params, e, &v) == 0 && v == 0)) {
            snprintf(out, outlen,
                     "message size is announced with SIZE=; no fixed limit given "
                     "(RFC 1870)");
        } else if (parse_ull(cap->params, e, &v) == 0) {
            char h[32];
            sk_format_size(v, h, sizeof h);
            snprintf(out, outlen, "largest message accepted: %s (%llu bytes, RFC 1870)", h, v);
        } else {
            snprintf(out, outlen, "SIZE with a malformed limit '%s' (RFC 1870 wants a number)",
                     cap->params);
        }
        return;
    }
    if (!strcmp(cap->keyword, "AUTH")) {
        if (!cap->params[0]) {
            snprintf(out, outlen, "AUTH offered without mechanisms (malformed, RFC 4954)");
            return;
        }
        snprintf(out, outlen, "login possible with SASL mechanisms: %s (RFC 4954)", cap->params);
        return;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (!strcmp(cap->keyword, known[i].kw)) {
            snprintf(out, outlen, "%s", known[i].text);
            return;
        }
    }
    if (cap->keyword[0] == 'X')
        snprintf(out, outlen, "private extension (not registered)");
    else
        snprintf(out, outlen, "extension not known to smtpkit");
}
