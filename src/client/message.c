/*
 * message.c - builds the test message `smtpkit send` transmits: an RFC 5322
 * message (3.3 Date, 3.6.4 Message-ID, 3.6.2/3.6.3 From/To/Cc, Subject),
 * MIME (RFC 2045 4 MIME-Version, 5 Content-Type, 6 Content-Transfer-Encoding;
 * RFC 2046 5.1 multipart/mixed; RFC 2183 Content-Disposition; RFC 2231
 * non-ASCII file names), RFC 2047 encoded-words for non-ASCII header text.
 *
 * Body encoding: 7-bit text with lines within 998 octets goes as it is;
 * 8-bit text goes as 8bit when the server offered 8BITMIME (RFC 6152) and
 * its lines fit, otherwise quoted-printable; attachments are base64.
 * Bcc recipients never appear in the header (they are envelope-only).
 */
#include "smtpkit/client.h"

#include "core/received.h"   /* sk_rfc5322_date */
#include "smtpkit/address.h" /* sk_utf8_valid */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 998 /* RFC 5322 2.1.1 */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int sk_address_extract(const char *s, char *out, size_t outlen)
{
    for (const char *q = s; *q; q++) /* no control bytes, in the name either */
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
            return -1;
    const char *lt = strchr(s, '<');
    const char *b, *e;
    if (lt) {
        const char *gt = strchr(lt + 1, '>');
        if (!gt || strchr(lt + 1, '<') || strchr(gt + 1, '<') || strchr(gt + 1, '>'))
            return -1;
        for (const char *q = gt + 1; *q; q++)
            if (*q != ' ' && *q != '\t')
                return -1; /* text after the address */
        b = lt + 1;
        e = gt;
    } else {
        b = s;
        while (*b == ' ' || *b == '\t')
            b++;
        e = b + strlen(b);
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
    }
    size_t n = (size_t)(e - b);
    if (n >= outlen || n > 254)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
            return -1;
    }
    memcpy(out, b, n);
    out[n] = '\0';
    /* The null reverse-path "<>" is allowed; otherwise local@domain. */
    if (n && (!strchr(out, '@') || out[0] == '@' || out[n - 1] == '@'))
        return -1;
    return 0;
}

static int has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* "Display Name <addr>" for a header: the name as an RFC 2047 phrase. */
static int append_mailbox(sk_buf *out, const char *spec, const char *addr)
{
    const char *lt = strchr(spec, '<');
    if (!lt)
        return sk_buf_append_str(out, addr);
    const char *b = spec, *e = lt;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e > b && b[0] == '"' && e - b >= 2 && e[-1] == '"') {
        b++; /* a name the user quoted: re-quote it ourselves */
        e--;
    }
    if (e == b)
        return sk_buf_printf(out, "<%s>", addr);
    size_t nl = (size_t)(e - b);
    char *name = malloc(nl + 1);
    if (!name)
        return -1;
    memcpy(name, b, nl);
    name[nl] = '\0';
    int rc = sk_mime_phrase(out, name) < 0 || sk_buf_printf(out, " <%s>", addr) < 0 ? -1 : 0;
    free(name);
    return rc;
}

/* An address header: mailboxes separated by ", " and folded between them. */
static int address_header(sk_buf *out, const char *hname, const char *const *list, size_t n,
                          sk_message_info *info, char *err, size_t errlen)
{
    size_t mark = out->len;
    if (sk_buf_printf(out, "%s: ", hname) < 0)
        return fail(err, errlen, "message too large");
    size_t linestart = mark;
    for (size_t i = 0; i < n; i++) {
        char addr[256];
        if (sk_address_extract(list[i], addr, sizeof addr) < 0 || !addr[0])
            return fail(err, errlen, "bad address in %s: '%s'", hname, list[i]);
        if (has_8bit(addr, strlen(addr)))
            info->utf8_addr = 1;
        if (!sk_utf8_valid(list[i], strlen(list[i])))
            return fail(err, errlen, "%s address '%s' is not valid UTF-8", hname, list[i]);
        sk_buf one;
        sk_buf_init(&one, 4096);
        if (append_mailbox(&one, list[i], addr) < 0) {
            sk_buf_free(&one);
            return fail(err, errlen, "address too long in %s", hname);
        }
        int bad = 0;
        if (i) {
            bad = sk_buf_append(out, ",", 1) < 0;
            /* Fold before a mailbox that would pass the 78-character line. */
            if (!bad && out->len - linestart + 1 + one.len > 78) {
                bad = sk_buf_append(out, "\r\n", 2) < 0;
                linestart = out->len;
            }
            bad = bad || sk_buf_append(out, " ", 1) < 0;
        }
        bad = bad || sk_buf_append(out, one.data, one.len) < 0;
        sk_buf_free(&one);
        if (bad)
            return fail(err, errlen, "message too large");
    }
    if (sk_buf_append(out, "\r\n", 2) < 0)
        return fail(err, errlen, "message too large");
    return 0;
}

static int user_has(const sk_message_spec *m, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < m->nheaders; i++)
        if (!strncasecmp(m->headers[i], name, nl) && m->headers[i][nl] == ':')
            return 1;
    return 0;
}

static int valid_field_name(const char *s, size_t n)
{
    if (n == 0 || n > 76)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == ':') /* RFC 5322 3.6.8 ftext */
            return 0;
    }
    return 1;
}

/* How a text part goes on the wire. */
typedef struct text_plan {
    const char *cte;     /* NULL (7bit), "8bit" or "quoted-printable" */
    const char *charset; /* "us-ascii", "utf-8" or "unknown-8bit" */
    int eightbit;
} text_plan;

static text_plan plan_text(const char *p, size_t n, int allow_8bit)
{
    text_plan t = {NULL, "us-ascii", 0};
    size_t col = 0, longest = 0;
    int eight = 0, nul = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') {
            col = 0;
            continue;
        }
        if (c != '\r' && ++col > longest)
            longest = col;
        if (c >= 0x80)
            eight = 1;
        if (c == 0)
            nul = 1;
    }
    if (eight)
        t.charset = sk_utf8_valid(p, n) ? "utf-8" : "unknown-8bit";
    if (!eight && longest <= MAX_LINE && !nul)
        return t;
    if (eight && allow_8bit && longest <= MAX_LINE && !nul) {
        t.cte = "8bit";
        t.eightbit = 1;
        return t;
    }
    t.cte = "quoted-printable";
    return t;
}

static int append_text_body(sk_buf *out, const char *p, size_t n, const text_plan *tp)
{
    if (tp->cte && !strcmp(tp->cte, "quoted-printable"))
        return sk_mime_qp(p, n, out);
    return sk_buf_append(out, p, n);
}

/* RFC 2231 filename*=utf-8''%XX... for names that are not plain ASCII
 * tokens; a quoted filename= otherwise. */
static int append_filename(sk_buf *out, const char *param, const char *name)
{
    size_t n = strlen(name);
    int plain = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            plain = 0;
    }
    if (plain && n < 60)
        return sk_buf_printf(out, "; %s=\"%s\"", param, name);
    if (sk_buf_printf(out, ";\r\n %s*=utf-8''", param) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        int keep = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                   (c && strchr("!#$&+-.^_`|~", c));
        if (keep ? sk_buf_append(out, name + i, 1) < 0 : sk_buf_printf(out, "%%%02X", c) < 0)
            return -1;
    }
    return 0;
}

static void make_message_id(const char *from_addr, char *out, size_t outlen)
{
    unsigned char r[10];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0x5a, sizeof r);
    char hex[21];
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    const char *at = strrchr(from_addr, '@');
    const char *dom = at && at[1] ? at + 1 : "localhost";
    snprintf(out, outlen, "<%lld.%s@%s>", (long long)time(NULL), hex, dom);
}

int sk_message_build(const sk_message_spec *m, sk_buf *out, sk_message_info *info, char *err,
                     size_t errlen)
{
    memset(info, 0, sizeof *info);
    char from_addr[256];
    if (!m->from || sk_address_extract(m->from, from_addr, sizeof from_addr) < 0 || !from_addr[0])
        return fail(err, errlen, "bad From address '%s'", m->from ? m->from : "");
    if (!sk_utf8_valid(m->from, strlen(m->from)))
        return fail(err, errlen, "From '%s' is not valid UTF-8", m->from);
    if (has_8bit(from_addr, strlen(from_addr)))
        info->utf8_addr = 1;
    if (m->subject && !sk_utf8_valid(m->subject, strlen(m->subject)))
        return fail(err, errlen, "the subject is not valid UTF-8");
    for (size_t i = 0; i < m->nheaders; i++) {
        const char *h = m->headers[i];
        const char *colon = strchr(h, ':');
        if (!colon || !valid_field_name(h, (size_t)(colon - h)))
            return fail(err, errlen, "bad header '%s' (expected \"Name: value\")", h);
        if (strchr(h, '\r') || strchr(h, '\n'))
            return fail(err, errlen, "header '%.40s' contains a line break", h);
        if (!strncasecmp(h, "Content-", 8) || !strncasecmp(h, "MIME-Version:", 13))
            return fail(err, errlen, "header '%.*s' is set by smtpkit from the body",
                        (int)(colon - h), h);
        if (!sk_utf8_valid(h, strlen(h)))
            return fail(err, errlen, "header '%.40s' is not valid UTF-8", h);
    }

    /* The body with CRLF line ends. */
    sk_buf body;
    sk_buf_init(&body, 0);
    if (m->body && sk_crlf_normalise(m->body, m->bodylen, &body) < 0) {
        sk_buf_free(&body);
        return fail(err, errlen, "out of memory");
    }
    const char *bp = body.data ? body.data : "";
    text_plan tp = plan_text(bp, body.len, m->allow_8bit);
    info->body_8bit = tp.eightbit;

    int rc = -1;
    char tmp[512];
    /* Header block (RFC 5322 3.6 recommends this order). */
    if (!user_has(m, "Date")) {
        if (sk_rfc5322_date(tmp, sizeof tmp, m->date ? (time_t)m->date : time(NULL)) < 0 ||
            sk_mime_header(out, "Date", tmp) < 0)
            goto oom;
    }
    {
        sk_buf one;
        sk_buf_init(&one, 4096);
        if (append_mailbox(&one, m->from, from_addr) < 0) {
            sk_buf_free(&one);
            goto oom;
        }
        int bad = sk_buf_printf(out, "From: %s\r\n", one.data) < 0;
        sk_buf_free(&one);
        if (bad)
            goto oom;
    }
    if (m->nto && !user_has(m, "To") &&
        address_header(out, "To", m->to, m->nto, info, err, errlen) < 0)
        goto out;
    if (m->ncc && !user_has(m, "Cc") &&
        address_header(out, "Cc", m->cc, m->ncc, info, err, errlen) < 0)
        goto out;
    if (m->subject && !user_has(m, "Subject") && sk_mime_header(out, "Subject", m->subject) < 0)
        goto oom;
    if (!user_has(m, "Message-ID")) {
        if (m->message_id)
            snprintf(tmp, sizeof tmp, "%s", m->message_id);
        else
            make_message_id(from_addr, tmp, sizeof tmp);
        if (sk_mime_header(out, "Message-ID", tmp) < 0)
            goto oom;
    }
    for (size_t i = 0; i < m->nheaders; i++) {
        const char *h = m->headers[i];
        const char *colon = strchr(h, ':');
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)(colon - h), h);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (sk_mime_header(out, name, v) < 0)
            goto oom;
    }

    if (m->natt == 0) {
        /* A single text part: MIME headers only when the body needs them. */
        if (tp.cte || strcmp(tp.charset, "us-ascii")) {
            if (sk_buf_printf(out, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=%s\r\n",
                              tp.charset) < 0 ||
                (tp.cte && sk_buf_printf(out, "Content-Transfer-Encoding: %s\r\n", tp.cte) < 0))
                goto oom;
        }
        if (sk_buf_append(out, "\r\n", 2) < 0 || append_text_body(out, bp, body.len, &tp) < 0)
            goto oom;
        rc = 0;
        goto out;
    }

    /* multipart/mixed: the text, then each attachment in base64. */
    char boundary[48];
    int tries = 0;
    do {
        sk_mime_boundary(boundary, sizeof boundary);
    } while (body.len && memmem(bp, body.len, boundary, strlen(boundary)) && ++tries < 8);
    if (sk_buf_printf(out,
                      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n"
                      " boundary=\"%s\"\r\n\r\nThis is a multi-part message in MIME format.\r\n"
                      "\r\n--%s\r\nContent-Type: text/plain; charset=%s\r\n",
                      boundary, boundary, tp.charset) < 0 ||
        (tp.cte && sk_buf_printf(out, "Content-Transfer-Encoding: %s\r\n", tp.cte) < 0) ||
        sk_buf_append(out, "\r\n", 2) < 0 || append_text_body(out, bp, body.len, &tp) < 0)
        goto oom;
    for (size_t i = 0; i < m->natt; i++) {
        const sk_attachment *a = &m->att[i];
        const char *type = a->type ? a->type : sk_mime_type_for(a->name);
        if (!sk_utf8_valid(a->name, strlen(a->name))) {
            fail(err, errlen, "attachment name '%s' is not valid UTF-8", a->name);
            goto out;
        }
        /* The body part ends with CRLF, so the delimiter starts its own line. */
        if ((out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2)) &&
            sk_buf_append(out, "\r\n", 2) < 0)
            goto oom;
        if (sk_buf_printf(out, "--%s\r\nContent-Type: %s", boundary, type) < 0 ||
            append_filename(out, "name", a->name) < 0 ||
            sk_buf_append_str(out, "\r\nContent-Disposition: attachment") < 0 ||
            append_filename(out, "filename", a->name) < 0 ||
            sk_buf_append_str(out, "\r\nContent-Transfer-Encoding: base64\r\n\r\n") < 0 ||
            sk_mime_base64(a->data, a->len, out) < 0)
            goto oom;
    }
    if ((out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2)) &&
        sk_buf_append(out, "\r\n", 2) < 0)
        goto oom;
    if (sk_buf_printf(out, "--%s--\r\n", boundary) < 0)
        goto oom;
    rc = 0;
    goto out;
oom:
    fail(err, errlen, "message too large or out of memory");
out:
    sk_buf_free(&body);
    return rc;
}
