/*
 * bounce_scan.c - find the SMTP replies quoted in a pasted bounce (see
 * smtpkit/bounce.h).
 *
 * Three passes over untrusted text, each bounded by the input size:
 *  1. MIME: part headers are read for Content-Type and
 *     Content-Transfer-Encoding (RFC 2045); quoted-printable bodies are
 *     decoded here (RFC 2045 6.7: "=XX" and soft line breaks, anything
 *     else kept as it is, which is what a lenient reader must do with
 *     pasted text), base64 bodies by OpenSSL's EVP_Decode*; HTML parts are
 *     skipped (their text part says the same) and scanning stops at the
 *     returned message (message/rfc822, text/rfc822-headers); the "copy
 *     of the message" lines of Exim, qmail, Gmail and Microsoft end the
 *     part they are in.
 *  2. Unfolding: a line that starts with white space continues the one
 *     before (RFC 5322 2.2.3 for header fields; Postfix, Exim and
 *     Diagnostic-Code wrap long replies the same way).
 *  3. Each logical line is searched for the phrases that introduce a reply
 *     ("smtp;", "said:", "Remote Server returned", "SMTP error from remote
 *     mail server after", "The response from the remote server was:") and
 *     for lines that are replies themselves (RFC 5321 4.2: "550-" lines
 *     followed by a "550 " line). The command comes from "(in reply to
 *     RCPT TO command)" (Postfix) or "after RCPT TO:<...>" (Exim).
 */
#include "smtpkit/bounce.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpkit/buf.h"
#include "smtpkit/known_reply.h"

/* ---- small helpers --------------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive search in s[0..n) (s need not be NUL-terminated). */
static const char *find_ci(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (!strncasecmp(s + i, needle, k))
            return s + i;
    return NULL;
}

/* "Name: value" with a token name (RFC 5322 2.2)? */
static int header_like(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_'))
        i++;
    return i > 0 && i < n && s[i] == ':';
}

/* Value of header field `name` if line s[0..n) is that field, else NULL. */
static const char *header_value(const char *s, size_t n, const char *name, size_t *vlen)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(s, name, k) || s[k] != ':')
        return NULL;
    size_t i = k + 1;
    while (i < n && is_ws(s[i]))
        i++;
    *vlen = n - i;
    return s + i;
}

/* ---- pass 1: MIME parts and transfer encodings --------------------------- */

enum cte { CTE_NONE, CTE_QP, CTE_B64 };

typedef struct part_state {
    enum cte cte;
    int skip; /* text/html: leave out */
    int stop; /* the returned message starts here */
    int multipart;
} part_state;

static void note_header(part_state *ps, const char *s, size_t n)
{
    size_t vl;
    const char *v = header_value(s, n, "Content-Transfer-Encoding", &vl);
    if (v) {
        if (find_ci(v, vl, "quoted-printable"))
            ps->cte = CTE_QP;
        else if (find_ci(v, vl, "base64"))
            ps->cte = CTE_B64;
        return;
    }
    v = header_value(s, n, "Content-Type", &vl);
    if (v) {
        if (find_ci(v, vl, "message/rfc822") || find_ci(v, vl, "rfc822-headers"))
            ps->stop = 1;
        else if (find_ci(v, vl, "text/html"))
            ps->skip = 1;
        else if (find_ci(v, vl, "multipart/"))
            ps->multipart = 1;
    }
}

/* A line that marks the start of the returned original message. */
static int original_follows(const char *s, size_t n)
{
    return find_ci(s, n, "This is a copy of the message") != NULL ||
           find_ci(s, n, "Below this line is a copy of the message") != NULL ||
           find_ci(s, n, "----- Original message -----") != NULL ||
           find_ci(s, n, "----- Message truncated -----") != NULL ||
           find_ci(s, n, "Original message headers:") != NULL;
}

/* A MIME boundary line: "--" and at least one more character, no blanks. */
static int boundary_like(const char *s, size_t n)
{
    if (n < 3 || s[0] != '-' || s[1] != '-')
        return 0;
    for (size_t i = 2; i < n; i++)
        if (is_ws(s[i]))
            return 0;
    return 1;
}

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

/* RFC 2045 6.7 decoding of body[0..n) (lines end in LF) into out. */
static int decode_qp(const char *s, size_t n, sk_buf *out)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '=' && i + 1 < n && s[i + 1] == '\n') {
            i += 2; /* soft line break */
            continue;
        }
        if (c == '=' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            char b = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            if (b == '\0' || b == '\r')
                b = ' ';
            if (sk_buf_append(out, &b, 1) < 0)
                return -1;
            i += 3;
            continue;
        }
        if (c == '=' && i + 1 < n) {
            /* "=" then blanks before the line end is a soft break too. */
            size_t j = i + 1;
            while (j < n && is_ws(s[j]))
                j++;
            if (j < n && s[j] == '\n') {
                i = j + 1;
                continue;
            }
        }
        if (sk_buf_append(out, &c, 1) < 0)
            return -1;
        i++;
    }
    return sk_buf_append(out, "\n", 1);
}

/* Base64 (RFC 2045 6.8) through OpenSSL; on bad input keep the text as is. */
static int decode_b64(const char *s, size_t n, sk_buf *out)
{
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    unsigned char *tmp = malloc(n / 4 * 3 + 80);
    if (!ctx || !tmp) {
        EVP_ENCODE_CTX_free(ctx);
        free(tmp);
        return -1;
    }
    int total = 0, got = 0, ok = 1;
    EVP_DecodeInit(ctx);
    size_t off = 0;
    while (off < n && ok) {
        int chunk = n - off > 65536 ? 65536 : (int)(n - off);
        if (EVP_DecodeUpdate(ctx, tmp + total, &got, (const unsigned char *)s + off, chunk) < 0)
            ok = 0;
        total += got;
        off += (size_t)chunk;
    }
    if (ok && EVP_DecodeFinal(ctx, tmp + total, &got) < 0)
        ok = 0;
    if (ok)
        total += got;
    EVP_ENCODE_CTX_free(ctx);
    int rc;
    if (ok) {
        for (int i = 0; i < total; i++)
            if (tmp[i] == '\0' || tmp[i] == '\r')
                tmp[i] = tmp[i] == '\r' ? '\n' : ' ';
        rc = sk_buf_append(out, tmp, (size_t)total);
        if (rc == 0)
            rc = sk_buf_append(out, "\n", 1);
    } else {
        rc = sk_buf_append(out, s, n);
    }
    free(tmp);
    return rc;
}

/* Append body[0..n) of a part, decoded. */
static int flush_body(const part_state *ps, const char *s, size_t n, sk_buf *out)
{
    if (n == 0 || ps->skip)
        return 0;
    if (ps->cte == CTE_QP)
        return decode_qp(s, n, out);
    if (ps->cte == CTE_B64)
        return decode_b64(s, n, out);
    return sk_buf_append(out, s, n);
}

/*
 * Walk the lines of msg (LF line ends) and write the text to scan into out:
 * headers and bodies, decoded, without HTML parts or the returned message.
 */
static int mime_text(const char *msg, size_t len, sk_buf *out)
{
    part_state ps = {CTE_NONE, 0, 0, 0};
    size_t pos = 0;
    /* The input starts with headers only if its first line looks like one. */
    size_t first_end = strcspn(msg, "\n");
    int in_headers = header_like(msg, first_end);
    size_t body_start = 0;
    int in_body = !in_headers;

    while (pos < len) {
        const char *line = msg + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        size_t next = pos + n + (nl ? 1 : 0);

        if (in_headers) {
            if (n == 0) {
                in_headers = 0;
                in_body = 1;
                body_start = next;
                if (ps.stop)
                    return 0;
            } else if (is_ws(line[0]) || header_like(line, n)) {
                if (!is_ws(line[0])) {
                    /* Unfold for the fields we read (RFC 5322 2.2.3). */
                    size_t end = n;
                    size_t q = next;
                    char field[512];
                    size_t fl = 0;
                    memcpy(field, line, fl = end < sizeof field - 1 ? end : sizeof field - 1);
                    while (q < len && is_ws(msg[q])) {
                        const char *nl2 = memchr(msg + q, '\n', len - q);
                        size_t n2 = nl2 ? (size_t)(nl2 - (msg + q)) : len - q;
                        size_t take = n2 < sizeof field - 1 - fl ? n2 : sizeof field - 1 - fl;
                        memcpy(field + fl, msg + q, take);
                        fl += take;
                        q += n2 + (nl2 ? 1 : 0);
                    }
                    field[fl] = '\0';
                    note_header(&ps, field, fl);
                }
                if (sk_buf_append(out, line, n) < 0 || sk_buf_append(out, "\n", 1) < 0)
                    return -1;
            } else {
                /* Not a header after all: the body starts here. */
                in_headers = 0;
                in_body = 1;
                body_start = pos;
                if (ps.stop)
                    return 0;
                continue;
            }
            pos = next;
            continue;
        }

        if (in_body && !ps.skip && original_follows(line, n)) {
            /* The rest of this part quotes the original message (Microsoft
             * puts its headers in the text part, before the DSN part). */
            if (flush_body(&ps, msg + body_start, pos - body_start, out) < 0)
                return -1;
            ps.skip = 1;
            pos = next;
            continue;
        }
        if (in_body && boundary_like(line, n)) {
            if (flush_body(&ps, msg + body_start, pos - body_start, out) < 0)
                return -1;
            /* A new part begins, with its own headers (possibly none). */
            ps.cte = CTE_NONE;
            ps.skip = ps.stop = ps.multipart = 0;
            size_t nn = 0;
            const char *after = msg + next;
            if (next < len) {
                const char *nl2 = memchr(after, '\n', len - next);
                nn = nl2 ? (size_t)(nl2 - after) : len - next;
            }
            if (next < len && header_like(after, nn)) {
                in_headers = 1;
                in_body = 0;
            } else {
                body_start = next;
            }
            pos = next;
            continue;
        }
        pos = next;
    }
    if (in_body)
        return flush_body(&ps, msg + body_start, len - body_start, out);
    return 0;
}

/* ---- pass 3: replies in one logical line ------------------------------------ */

typedef struct scan_ctx {
    sk_bounce *b;
    char recipient[256]; /* from Final-Recipient / Original-Recipient */
    int expect_reply;    /* the line before ended with "was:" and the like */
    int oom;
} scan_ctx;

/* At s: a reply code followed by ' ', '-' or the end, first digit 2-5? */
static int code_at(const char *s)
{
    return s[0] >= '2' && s[0] <= '5' && isdigit((unsigned char)s[1]) &&
           isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || s[3] == '\0') &&
           !isdigit((unsigned char)s[3]);
}

/* The command a line says the reply answered, or "". */
static const char *command_in(const char *s)
{
    static const struct {
        const char *phrase, *cmd;
    } map[] = {
        {"in reply to RCPT TO command", "RCPT"},
        {"in reply to MAIL FROM command", "MAIL"},
        {"in reply to end of DATA command", "DATA-END"},
        {"in reply to DATA command", "DATA"},
        {"in reply to EHLO command", "EHLO"},
        {"in reply to HELO command", "EHLO"},
        {"in reply to STARTTLS command", "STARTTLS"},
        {"in reply to AUTH", "AUTH"},
        {"refused to talk to me", "CONNECT"},
        {"after RCPT TO", "RCPT"},
        {"after pipelined RCPT TO", "RCPT"},
        {"after MAIL FROM", "MAIL"},
        {"after pipelined MAIL FROM", "MAIL"},
        {"after end of data", "DATA-END"},
        {"after pipelined end of data", "DATA-END"},
        {"after DATA", "DATA"},
        {"after pipelined DATA", "DATA"},
        {"after initial connection", "CONNECT"},
        {"after EHLO", "EHLO"},
        {"after HELO", "EHLO"},
        {"after STARTTLS", "STARTTLS"},
        {"after AUTH", "AUTH"},
        {"for RCPT TO command", "RCPT"},
        {"for MAIL FROM command", "MAIL"},
        {"for DATA command", "DATA"},
        {"[RCPT_TO]", "RCPT"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasestr(s, map[i].phrase))
            return map[i].cmd;
    return "";
}

/* Lower-case, blank-collapsed copy for comparisons. */
static char *norm_key(const char *s)
{
    size_t n = strlen(s);
    char *k = malloc(n + 1);
    if (!k)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            if (o && k[o - 1] != ' ')
                k[o++] = ' ';
            continue;
        }
        k[o++] = (char)tolower(c);
    }
    while (o && (k[o - 1] == ' ' || k[o - 1] == '.'))
        o--;
    k[o] = '\0';
    return k;
}

static int same_reply(const sk_bounce_reply *r, int code, int has_enh, const sk_enhanced *e,
                      const char *text)
{
    if (r->code != code)
        return 0;
    if (r->has_enhanced && has_enh && memcmp(&r->enhanced, e, sizeof *e) != 0)
        return 0;
    /* Equal texts, or one inside the other when the shorter one is long
     * enough to say the same ("user 1" is not "user 10"). */
    char *a = norm_key(r->text), *b = norm_key(text);
    int same = 0;
    if (a && b) {
        size_t la = strlen(a), lb = strlen(b);
        const char *lo = la <= lb ? a : b, *hi = la <= lb ? b : a;
        size_t ll = la <= lb ? la : lb, lh = la <= lb ? lb : la;
        same = !strcmp(a, b) || (ll >= 20 && ll * 2 >= lh && strstr(hi, lo) != NULL);
    }
    free(a);
    free(b);
    return same;
}

/* Record the reply in cand (its code at the start) found by `how`. */
static void add_reply(scan_ctx *c, const char *cand, const char *how, const char *cmd,
                      const char *rcpt)
{
    size_t n = strlen(cand) + 1;
    char *text = malloc(n);
    if (!text) {
        c->oom = 1;
        return;
    }
    int code, has_enh;
    sk_enhanced e;
    memset(&e, 0, sizeof e);
    if (sk_reply_line_split(cand, &code, &has_enh, &e, text, n) < 0) {
        free(text);
        return;
    }
    sk_bounce *b = c->b;
    for (size_t i = 0; i < b->n; i++) {
        sk_bounce_reply *r = &b->replies[i];
        if (!same_reply(r, code, has_enh, &e, text))
            continue;
        /* The same reply again: keep the longer text and what was missing. */
        if (strlen(text) > strlen(r->text)) {
            free(r->text);
            r->text = text;
            text = NULL;
        }
        if (!r->has_enhanced && has_enh) {
            r->has_enhanced = 1;
            r->enhanced = e;
        }
        if (!r->command[0] && cmd[0])
            snprintf(r->command, sizeof r->command, "%s", cmd);
        if (!r->recipient[0] && rcpt && rcpt[0])
            snprintf(r->recipient, sizeof r->recipient, "%s", rcpt);
        free(text);
        free(r->line);
        size_t ln = strlen(r->text) + 32;
        r->line = malloc(ln);
        if (!r->line) {
            c->oom = 1;
            return;
        }
        if (r->has_enhanced)
            snprintf(r->line, ln, "%d %d.%d.%d %s", r->code, r->enhanced.cls, r->enhanced.subject,
                     r->enhanced.detail, r->text);
        else
            snprintf(r->line, ln, "%d %s", r->code, r->text);
        return;
    }
    if (b->n == SK_BOUNCE_MAX_REPLIES) {
        b->truncated = 1;
        free(text);
        return;
    }
    sk_bounce_reply *r = &b->replies[b->n];
    memset(r, 0, sizeof *r);
    r->code = code;
    r->has_enhanced = has_enh;
    r->enhanced = e;
    r->text = text;
    r->found_by = how;
    snprintf(r->command, sizeof r->command, "%s", cmd);
    if (rcpt)
        snprintf(r->recipient, sizeof r->recipient, "%s", rcpt);
    size_t ln = strlen(text) + 32;
    r->line = malloc(ln);
    if (!r->line) {
        free(text);
        c->oom = 1;
        return;
    }
    if (has_enh)
        snprintf(r->line, ln, "%d %d.%d.%d %s", code, e.cls, e.subject, e.detail, text);
    else
        snprintf(r->line, ln, "%d %s", code, text);
    b->n++;
}

/* Longest reply text kept: RFC 5321 4.5.3.1.5 allows 512 octets a line;
 * a multi-line reply quoted on one line is longer, but not without end. */
#define MAX_REPLY_TEXT 4096

/* Copy s[0..n) into a new string, cutting a trailing "(in reply to ...)". */
static char *candidate(const char *s, size_t n)
{
    if (n > MAX_REPLY_TEXT)
        n = MAX_REPLY_TEXT;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    char *cut = strcasestr(out, "(in reply to ");
    if (cut)
        *cut = '\0';
    size_t k = strlen(out);
    while (k && (is_ws(out[k - 1]) || out[k - 1] == '\''))
        out[--k] = '\0';
    return out;
}

/* Where a reply starts at or after p (before end): right away after blanks,
 * quotes and "smtp;", or - when `search` - the first code further on that
 * is not inside <...> or [...]. NULL if none. */
static const char *reply_start(const char *p, const char *end, int search)
{
    while (p < end && (is_ws(*p) || *p == '\'' || *p == '"' || *p == '<' || *p == '#'))
        p++;
    if (end - p >= 5 && !strncasecmp(p, "smtp;", 5)) {
        p += 5;
        while (p < end && is_ws(*p))
            p++;
    }
    if (p + 3 <= end && code_at(p))
        return p;
    if (!search)
        return NULL;
    int angle = 0, square = 0;
    for (const char *q = p; q < end && q - p < 1000; q++) {
        if (*q == '<')
            angle++;
        else if (*q == '>' && angle)
            angle--;
        else if (*q == '[')
            square++;
        else if (*q == ']' && square)
            square--;
        else if (!angle && !square && q > p && (is_ws(q[-1]) || q[-1] == ':') && code_at(q))
            return q;
    }
    return NULL;
}

/* Anchors that introduce a reply, and how to find it after them. */
static const struct anchor {
    const char *phrase;
    const char *how;
    int search; /* the reply may come after more words (Exim's "after ...:") */
    int quoted; /* the reply ends at the last single quote of the line */
} anchors[] = {
    {"Diagnostic-Code:", "Diagnostic-Code", 0, 0},
    {"Remote Server returned", "Remote Server returned", 0, 1},
    {"SMTP error from remote mail server after", "SMTP error", 1, 0},
    {"SMTP error from remote server", "SMTP error", 1, 0},
    {"said:", "said:", 0, 0},
    {"refused to talk to me:", "refused to talk to me:", 0, 0},
    {"The response from the remote server was:", "response was", 0, 0},
    {"The response was:", "response was", 0, 0},
    {"the other server returned was:", "response was", 0, 0},
    {"server replied:", "server replied:", 0, 0},
    {"reason:", "reason:", 0, 0},
    {"smtp;", "smtp;", 0, 0},
};

/* 1 if the line ends with a phrase after which the reply comes on the next
 * lines ("The response from the remote server was:"). */
static int ends_with_anchor(const char *s)
{
    size_t n = strlen(s);
    while (n && is_ws(s[n - 1]))
        n--;
    static const char *const tails[] = {
        "was:", "said:", "returned:", "replied:", "reason:", "error:"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t k = strlen(tails[i]);
        if (n >= k && !strncasecmp(s + n - k, tails[i], k))
            return 1;
    }
    return 0;
}

/* A recipient address at the start of a line: "<a@b>: ..." (Postfix,
 * qmail), or "a@b host ..." (Exim's list of failed addresses). */
static void leading_recipient(const char *s, char *out, size_t outlen)
{
    out[0] = '\0';
    if (s[0] == '<') {
        const char *gt = strchr(s, '>');
        if (!gt || gt[1] != ':' || !memchr(s, '@', (size_t)(gt - s)))
            return;
        snprintf(out, outlen, "%.*s", (int)(gt - s - 1), s + 1);
        return;
    }
    size_t w = strcspn(s, " \t");
    if (w && s[w] && memchr(s, '@', w) && !memchr(s, ':', w) && !memchr(s, '<', w) &&
        strcasestr(s, "SMTP error from"))
        snprintf(out, outlen, "%.*s", (int)w, s);
}

static void scan_line(scan_ctx *c, const char *s)
{
    size_t vl;
    const char *v = header_value(s, strlen(s), "Final-Recipient", &vl);
    if (!v)
        v = header_value(s, strlen(s), "Original-Recipient", &vl);
    if (v) {
        const char *semi = memchr(v, ';', vl);
        if (semi) {
            vl -= (size_t)(semi + 1 - v);
            v = semi + 1;
            while (vl && is_ws(*v))
                v++, vl--;
        }
        snprintf(c->recipient, sizeof c->recipient, "%.*s", (int)(vl < 255 ? vl : 255), v);
        return;
    }
    const char *cmd = command_in(s);
    char lead[256];
    leading_recipient(s, lead, sizeof lead);
    if (lead[0] && s[0] == '<' && strchr(s, '>')[2] == '\0') {
        /* "<a@b>:" alone: the lines after it concern a@b (qmail). */
        snprintf(c->recipient, sizeof c->recipient, "%s", lead);
        c->expect_reply = 0;
        return;
    }
    const char *rcpt = lead[0] ? lead : c->recipient;
    const char *end = s + strlen(s);
    int found = 0;

    for (size_t a = 0; a < sizeof anchors / sizeof anchors[0] && !found; a++) {
        const char *hit = strcasestr(s, anchors[a].phrase);
        int hits = 0;
        while (hit && hits++ < SK_BOUNCE_MAX_REPLIES) {
            const char *after = hit + strlen(anchors[a].phrase);
            const char *stop = end;
            if (anchors[a].quoted) {
                const char *q = strrchr(after, '\'');
                if (q && q > after)
                    stop = q;
            }
            const char *r = reply_start(after, stop, anchors[a].search);
            if (r) {
                char *cand = candidate(r, (size_t)(stop - r));
                if (!cand) {
                    c->oom = 1;
                    return;
                }
                add_reply(c, cand, anchors[a].how, cmd, rcpt);
                free(cand);
                found = 1;
            }
            hit = strcasestr(after, anchors[a].phrase);
        }
    }
    if (!found && code_at(s)) {
        /* A reply on a line of its own: trust it after an anchor line, or
         * when it carries an enhanced code of its class (RFC 2034). */
        int code, has_enh;
        sk_enhanced e;
        char tmp[8];
        int ok = c->expect_reply;
        if (!ok && sk_reply_line_split(s, &code, &has_enh, &e, tmp, sizeof tmp) == 0 && has_enh)
            ok = 1;
        if (ok) {
            char *cand = candidate(s, strlen(s));
            if (!cand) {
                c->oom = 1;
                return;
            }
            add_reply(c, cand, "reply line", cmd, rcpt);
            free(cand);
            found = 1;
        }
    }
    c->expect_reply = found ? 0 : ends_with_anchor(s);
}

/* ---- pass 2 and the driver ---------------------------------------------- */

/* Is this logical line a "ddd-" continuation of a multi-line reply? */
static int continues_reply(const char *s)
{
    return code_at(s) && s[3] == '-';
}

int sk_bounce_scan(const char *msg, size_t len, sk_bounce *b)
{
    memset(b, 0, sizeof *b);
    if (len > SK_BOUNCE_MAX_INPUT)
        len = SK_BOUNCE_MAX_INPUT;

    /* LF line ends, no NUL bytes. */
    char *norm = malloc(len + 1);
    if (!norm)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = msg[i];
        if (ch == '\r') {
            if (i + 1 < len && msg[i + 1] == '\n')
                continue;
            ch = '\n';
        }
        norm[n++] = ch == '\0' ? ' ' : ch;
    }
    norm[n] = '\0';

    sk_buf text;
    sk_buf_init(&text, 0);
    int rc = mime_text(norm, n, &text);
    free(norm);
    if (rc < 0) {
        sk_buf_free(&text);
        return -1;
    }

    /* Pass 2: logical lines. Continuation lines (leading white space) join
     * the line before; "ddd-" lines join the reply they begin. */
    scan_ctx c;
    memset(&c, 0, sizeof c);
    c.b = b;
    sk_buf logical;
    sk_buf_init(&logical, 0);
    const char *t = text.data ? text.data : "";
    size_t tl = text.len, pos = 0;
    int in_reply = 0;  /* the logical line is a multi-line reply so far */
    size_t indent = 0; /* indentation of the logical line's first line */
    int paragraph = 0; /* after "said:", lines join up to a blank line (qmail) */
    while (pos <= tl && !c.oom) {
        const char *line = t + pos;
        const char *nl = pos < tl ? memchr(line, '\n', tl - pos) : NULL;
        size_t ll = nl ? (size_t)(nl - line) : tl - pos;
        int last = pos >= tl;
        size_t k = 0;
        while (k < ll && is_ws(line[k]))
            k++;
        int blank = k == ll;
        /* A line indented deeper than the logical line's first one
         * continues it (Exim indents addresses by 2, their details by 4). */
        int cont = !last && !blank && logical.len > 0 && !in_reply && (k > indent || paragraph);
        int reply_cont = !last && !blank && k == 0 && in_reply && code_at(line);
        if (cont || reply_cont) {
            if (sk_buf_append(&logical, " ", 1) < 0 ||
                sk_buf_append(&logical, line + k, ll - k) < 0)
                c.oom = 1;
            if (reply_cont)
                in_reply = continues_reply(line);
            if (!paragraph && strcasestr(logical.data, "said:"))
                paragraph = 1;
        } else {
            if (logical.len) {
                scan_line(&c, logical.data);
                sk_buf_clear(&logical);
            }
            paragraph = 0;
            if (!last && !blank) {
                if (sk_buf_append(&logical, line + k, ll - k) < 0)
                    c.oom = 1;
                in_reply = continues_reply(line + k);
                indent = k;
                paragraph = strcasestr(logical.data, "said:") != NULL;
            } else {
                in_reply = 0;
            }
        }
        if (last)
            break;
        pos += ll + 1;
    }
    sk_buf_free(&logical);
    sk_buf_free(&text);
    if (c.oom) {
        sk_bounce_free(b);
        return -1;
    }
    return (int)b->n;
}

void sk_bounce_free(sk_bounce *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->replies[i].text);
        free(b->replies[i].line);
    }
    b->n = 0;
}
