/*
 * milter_codec.c - packets of the Sendmail milter protocol (version 6):
 * encoders for the MTA's commands and the decoder of the filter's replies.
 * See milter_codec.h. Every length read off the wire is checked against
 * the packet it is in; strings must end inside their packet.
 */
#include "core/milter_codec.h"

#include <stdio.h>
#include <string.h>

#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | (uint32_t)u[3];
}

int sk_milter_enc_packet(sk_buf *out, char cmd, const void *data, size_t len)
{
    if (len > SK_MILTER_MAX_PACKET - 1)
        return -1;
    unsigned char head[5];
    put32(head, (uint32_t)(len + 1));
    head[4] = (unsigned char)cmd;
    size_t before = out->len;
    if (sk_buf_append(out, head, sizeof head) != 0 || (len && sk_buf_append(out, data, len) != 0)) {
        out->len = before;
        return -1;
    }
    return 0;
}

int sk_milter_enc_optneg(sk_buf *out, uint32_t version, uint32_t actions, uint32_t steps)
{
    unsigned char d[12];
    put32(d, version);
    put32(d + 4, actions);
    put32(d + 8, steps);
    return sk_milter_enc_packet(out, SMFIC_OPTNEG, d, sizeof d);
}

/* Strings joined with their NULs into one packet's data. */
static int enc_strings(sk_buf *out, char cmd, const char *prefix, size_t plen, const char *const *s,
                       size_t n)
{
    size_t len = plen;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(s[i]) + 1;
        if (k > SK_MILTER_MAX_PACKET || len > SK_MILTER_MAX_PACKET - k)
            return -1;
        len += k;
    }
    if (len > SK_MILTER_MAX_PACKET - 1)
        return -1;
    unsigned char head[5];
    put32(head, (uint32_t)(len + 1));
    head[4] = (unsigned char)cmd;
    size_t before = out->len;
    int rc = sk_buf_append(out, head, sizeof head);
    if (rc == 0 && plen)
        rc = sk_buf_append(out, prefix, plen);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = sk_buf_append(out, s[i], strlen(s[i]) + 1);
    if (rc != 0)
        out->len = before;
    return rc;
}

int sk_milter_enc_connect(sk_buf *out, const char *hostname, char family, unsigned port,
                          const char *addr)
{
    /* hostname NUL, family, then (not for 'U') port (2 octets) and address NUL */
    size_t hl = strlen(hostname);
    char d[600];
    if (hl + 1 + 1 + 2 + (addr ? strlen(addr) : 0) + 1 > sizeof d)
        return -1;
    size_t len = 0;
    memcpy(d, hostname, hl + 1);
    len = hl + 1;
    d[len++] = family;
    if (family != 'U') {
        d[len++] = (char)((port >> 8) & 0xff);
        d[len++] = (char)(port & 0xff);
        size_t al = strlen(addr ? addr : "");
        memcpy(d + len, addr ? addr : "", al + 1);
        len += al + 1;
    }
    return sk_milter_enc_packet(out, SMFIC_CONNECT, d, len);
}

int sk_milter_enc_helo(sk_buf *out, const char *helo)
{
    return enc_strings(out, SMFIC_HELO, NULL, 0, &helo, 1);
}

int sk_milter_enc_args(sk_buf *out, char cmd, const char *const *args, size_t nargs)
{
    return enc_strings(out, cmd, NULL, 0, args, nargs);
}

int sk_milter_enc_header(sk_buf *out, const char *name, const char *value)
{
    const char *s[2] = {name, value};
    return enc_strings(out, SMFIC_HEADER, NULL, 0, s, 2);
}

int sk_milter_enc_body(sk_buf *out, const char *p, size_t n)
{
    size_t before = out->len;
    while (n > 0) {
        size_t k = n > SK_MILTER_CHUNK ? SK_MILTER_CHUNK : n;
        if (sk_milter_enc_packet(out, SMFIC_BODY, p, k) != 0) {
            out->len = before;
            return -1;
        }
        p += k;
        n -= k;
    }
    return 0;
}

int sk_milter_enc_macros(sk_buf *out, char for_cmd, const char *const *names,
                         const char *const *values, size_t n)
{
    const char *s[32];
    if (n > 16)
        return -1;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = names[i];
        s[2 * i + 1] = values[i] ? values[i] : "";
    }
    return enc_strings(out, SMFIC_MACRO, &for_cmd, 1, s, 2 * n);
}

/* ---- decoder ---- */

static sk_milter_status fail(sk_milter_reply *r, const char *why)
{
    r->error = why;
    return SK_MILTER_ERROR;
}

/* A NUL-terminated string at d[*off] that ends before d[len]. */
static const char *take_string(const char *d, size_t len, size_t *off)
{
    if (*off >= len)
        return NULL;
    const char *nul = memchr(d + *off, '\0', len - *off);
    if (!nul)
        return NULL;
    const char *s = d + *off;
    *off = (size_t)(nul - d) + 1;
    return s;
}

sk_milter_status sk_milter_decode(const char *p, size_t n, size_t *used, size_t *need,
                                  sk_milter_reply *r)
{
    memset(r, 0, sizeof *r);
    *used = 0;
    *need = 5;
    if (n < 4)
        return SK_MILTER_MORE;
    uint32_t plen = get32(p);
    if (plen == 0)
        return fail(r, "empty packet");
    if (plen > SK_MILTER_MAX_PACKET)
        return fail(r, "packet too long");
    *need = 4 + (size_t)plen;
    if (n < *need)
        return SK_MILTER_MORE;
    r->cmd = p[4];
    const char *d = p + 5;
    size_t len = plen - 1;
    size_t off = 0;
    switch (r->cmd) {
    case SMFIC_OPTNEG: /* the filter's answer to OPTNEG uses the same letter */
        if (len < 12)
            return fail(r, "short option negotiation");
        r->version = get32(d);
        r->actions = get32(d + 4);
        r->steps = get32(d + 8);
        /* what follows (macro lists asked with SETSYMLIST) is not used */
        break;
    case SMFIR_ACCEPT:
    case SMFIR_CONTINUE:
    case SMFIR_DISCARD:
    case SMFIR_REJECT:
    case SMFIR_TEMPFAIL:
    case SMFIR_PROGRESS:
    case SMFIR_SKIP:
    case SMFIR_CONN_FAIL:
    case SMFIR_SHUTDOWN:
        if (len != 0)
            return fail(r, "unexpected data in a verdict");
        break;
    case SMFIR_REPLYCODE:
    case SMFIR_QUARANTINE:
        r->text = take_string(d, len, &off);
        if (!r->text || off != len)
            return fail(r, "unterminated text");
        break;
    case SMFIR_ADDHEADER:
        r->name = take_string(d, len, &off);
        r->value = r->name ? take_string(d, len, &off) : NULL;
        if (!r->value || off != len)
            return fail(r, "malformed header");
        break;
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
        if (len < 4)
            return fail(r, "malformed header");
        r->index = get32(d);
        off = 4;
        r->name = take_string(d, len, &off);
        r->value = r->name ? take_string(d, len, &off) : NULL;
        if (!r->value || off != len)
            return fail(r, "malformed header");
        break;
    case SMFIR_REPLBODY:
        r->data = d;
        r->len = len;
        break;
    case SMFIR_ADDRCPT:
    case SMFIR_DELRCPT:
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_CHGFROM:
    case SMFIR_SETSYMLIST:
        /* recognised but never offered: the caller refuses them */
        r->data = d;
        r->len = len;
        break;
    default:
        return fail(r, "unknown reply");
    }
    if (r->name && (!r->name[0] || strpbrk(r->name, ": \t\r\n")))
        return fail(r, "bad header name");
    *used = 4 + (size_t)plen;
    return SK_MILTER_PACKET;
}

int sk_milter_parse_replycode(const char *s, int *code, char enhanced[16], char *text,
                              size_t textcap)
{
    enhanced[0] = '\0';
    if (textcap)
        text[0] = '\0';
    if (strlen(s) < 3)
        return -1;
    for (int i = 0; i < 3; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    int c = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    if (c < 400 || c > 599 || !sk_code_is_valid(c))
        return -1;
    const char *p = s + 3;
    if (*p != '\0' && *p != ' ' && *p != '-')
        return -1;
    if (*p)
        p++;
    /* an enhanced code, when present, must be well formed and of the same class */
    size_t wl = strcspn(p, " \r\n");
    sk_enhanced e;
    if (wl > 0 && wl < 16 && p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
        if (sk_enhanced_parse(p, wl, &e) != 0 || e.cls != c / 100)
            return -1;
        memcpy(enhanced, p, wl);
        enhanced[wl] = '\0';
        p += wl;
        while (*p == ' ')
            p++;
    }
    size_t k = 0;
    for (; *p && *p != '\r' && *p != '\n' && k + 1 < textcap; p++) {
        unsigned char ch = (unsigned char)*p;
        text[k++] = (ch == '\t' || (ch >= 32 && ch < 127)) ? (char)ch : '?';
    }
    if (textcap)
        text[k] = '\0';
    *code = c;
    return 0;
}
