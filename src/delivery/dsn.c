/*
 * dsn.c - RFC 3464 delivery status notifications, built in memory.
 *
 * RFC 3464 2 (message/delivery-status: per-message fields 2.2, per-recipient
 * fields 2.3: Original-Recipient 2.3.1, Final-Recipient 2.3.2, Action
 * 2.3.3, Status 2.3.4, Remote-MTA 2.3.5, Diagnostic-Code 2.3.6,
 * Last-Attempt-Date 2.3.7, Will-Retry-Until 2.3.9), RFC 6522 (the
 * multipart/report container), RFC 3461 4.3 (RET=HDRS/FULL), RFC 3463
 * (status codes), RFC 3834 5 (Auto-Submitted: auto-replied), RFC 5322 2.1.1
 * (998-octet lines, 78 recommended), RFC 2046 5.1.1 (a boundary that does
 * not occur in the content), RFC 5321 4.5.5 (reports go from <> and are
 * never sent about a message from <>). See dsn.h.
 */
#include "smtpkit/dsn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/received.h"
#include "smtpkit/registry.h"

#define FOLD_AT 78
#define HARD_MAX 998
#define WORD_CUT 900 /* a longer run without a space is broken here */

const char *sk_dsn_action_name(sk_dsn_action a)
{
    switch (a) {
    case SK_DSN_FAILED:
        return "failed";
    case SK_DSN_DELAYED:
        return "delayed";
    case SK_DSN_DELIVERED:
        return "delivered";
    case SK_DSN_RELAYED:
        return "relayed";
    case SK_DSN_EXPANDED:
        return "expanded";
    }
    return "failed";
}

/* "X.Y.Z" with X in 2, 4, 5 and Y, Z of 1-3 digits (RFC 3463 2). */
static int valid_status(const char *s, int *cls, int *subject, int *detail)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    const char *p = s + 2;
    int v[2];
    for (int k = 0; k < 2; k++) {
        int n = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 4) {
            n = n * 10 + (*p++ - '0');
            digits++;
        }
        if (digits < 1 || digits > 3 || *p != (k == 0 ? '.' : '\0'))
            return 0;
        if (k == 0)
            p++;
        v[k] = n;
    }
    *cls = s[0] - '0';
    *subject = v[0];
    *detail = v[1];
    return 1;
}

/* Copy src into out as one line of text: CR, LF and other controls become
 * a space (so a multi-line reply reads as one), runs of white space one
 * space. For ASCII-only fields (`ascii`) an octet >= 0x80 becomes "+HH"
 * (RFC 3461 xtext style). */
static int clean(sk_buf *out, const char *src, int ascii, int *eight)
{
    int space = 0;
    int any = 0;
    for (const unsigned char *p = (const unsigned char *)src; p && *p; p++) {
        unsigned char c = *p;
        if (c < 0x20 || c == 0x7f) {
            space = any;
            continue;
        }
        if (c == ' ') {
            space = any;
            continue;
        }
        if (space && sk_buf_append(out, " ", 1) < 0)
            return -1;
        space = 0;
        any = 1;
        if (c >= 0x80 && ascii) {
            if (sk_buf_printf(out, "+%02X", c) < 0)
                return -1;
            continue;
        }
        if (c >= 0x80 && eight)
            *eight = 1;
        if (sk_buf_append(out, &c, 1) < 0)
            return -1;
    }
    return 0;
}

/* Append text (no CR/LF in it) broken at spaces into lines of at most
 * `width` octets, each ended by CRLF; continuation lines start with
 * `indent`. A run longer than WORD_CUT without a space is cut. */
static int wrap(sk_buf *out, const char *text, size_t width, const char *indent, size_t col)
{
    const char *p = text;
    size_t ind = strlen(indent);
    while (*p) {
        size_t room = width > col ? width - col : 1;
        size_t len = strlen(p);
        size_t take = len;
        if (len > room) {
            /* the last space within room, else the first space after it */
            size_t cut = 0;
            for (size_t i = 1; i <= room && i < len; i++)
                if (p[i] == ' ')
                    cut = i;
            if (!cut) {
                const char *sp = memchr(p, ' ', len);
                cut = sp ? (size_t)(sp - p) : len;
            }
            take = cut;
        }
        if (take > WORD_CUT)
            take = WORD_CUT;
        if (sk_buf_append(out, p, take) < 0 || sk_buf_append(out, "\r\n", 2) < 0)
            return -1;
        p += take;
        while (*p == ' ')
            p++;
        if (*p) {
            if (sk_buf_append(out, indent, ind) < 0)
                return -1;
            col = ind;
        }
    }
    return 0;
}

/* "Name: value" folded at spaces near FOLD_AT; value cleaned. */
static int field(sk_buf *out, const char *name, const char *value, int ascii, int *eight)
{
    sk_buf v;
    sk_buf_init(&v, 0);
    int rc = clean(&v, value, ascii, eight);
    if (rc == 0 && sk_buf_printf(out, "%s: ", name) < 0)
        rc = -1;
    if (rc == 0 && !v.len && sk_buf_append(out, "\r\n", 2) < 0)
        rc = -1;
    if (rc == 0 && v.len)
        rc = wrap(out, v.data, FOLD_AT, " ", strlen(name) + 2);
    sk_buf_free(&v);
    return rc;
}

static int date_field(sk_buf *out, const char *name, time_t t)
{
    char d[64];
    if (sk_rfc5322_date(d, sizeof d, t) < 0)
        return -1;
    return sk_buf_printf(out, "%s: %s\r\n", name, d) < 0 ? -1 : 0;
}

/* A paragraph of the human-readable part; every line of it starts with
 * `indent`. */
static int para_at(sk_buf *out, const char *text, const char *indent, int *eight)
{
    sk_buf v;
    sk_buf_init(&v, 0);
    int rc = clean(&v, text, 0, eight);
    if (rc == 0 && v.len && sk_buf_append_str(out, indent) < 0)
        rc = -1;
    if (rc == 0 && v.len)
        rc = wrap(out, v.data, 76, indent, strlen(indent));
    if (rc == 0 && sk_buf_append(out, "\r\n", 2) < 0)
        rc = -1;
    sk_buf_free(&v);
    return rc;
}

static int para(sk_buf *out, const char *text, int *eight)
{
    return para_at(out, text, "", eight);
}

/* A paragraph about one recipient: indented, so nothing taken from the
 * network starts a line of the part. */
static int rcpt_para(sk_buf *out, const char *text, int *eight)
{
    return para_at(out, text, "    ", eight);
}

/* The remote reply's code (0 if it does not start with one). */
static int reply_code(const char *reply)
{
    if (!reply || reply[0] < '2' || reply[0] > '5' || reply[1] < '0' || reply[1] > '9' ||
        reply[2] < '0' || reply[2] > '9')
        return 0;
    return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

static int human_part(sk_buf *out, const sk_dsn_input *in, int *eight)
{
    char line[1200];
    int failed = 0, delayed = 0;
    for (size_t i = 0; i < in->nrcpts; i++) {
        failed += in->rcpts[i].action == SK_DSN_FAILED;
        delayed += in->rcpts[i].action == SK_DSN_DELAYED;
    }
    snprintf(line, sizeof line, "This is the mail system at host %s.", in->reporting_mta);
    if (para(out, line, eight) < 0)
        return -1;
    const char *intro =
        failed    ? "Your message could not be delivered to one or more recipients. It is "
                    "attached below. The mail system gave up on them for good: sending the "
                    "same message again will not help unless the problem below is fixed."
        : delayed ? "Your message has not been delivered yet to one or more recipients. "
                    "This is only a warning: the mail system keeps trying, and you need "
                    "not send it again."
                  : "This is a report on the delivery of your message.";
    if (para(out, intro, eight) < 0)
        return -1;
    for (size_t i = 0; i < in->nrcpts; i++) {
        const sk_dsn_rcpt *r = &in->rcpts[i];
        int cls = 0, subject = 0, detail = 0;
        valid_status(r->status, &cls, &subject, &detail);
        const char *what = "";
        switch (r->action) {
        case SK_DSN_FAILED:
            what = "delivery failed; the mail system gave up";
            break;
        case SK_DSN_DELAYED:
            what = "not delivered yet; the mail system will try again";
            break;
        case SK_DSN_DELIVERED:
            what = "delivered";
            break;
        case SK_DSN_RELAYED:
            what = "handed on to a system that sends no delivery reports";
            break;
        case SK_DSN_EXPANDED:
            what = "delivered to a list or alias, which passes it on to its members";
            break;
        }
        snprintf(line, sizeof line, "<%s>: %s.", r->final_recipient, what);
        if (para(out, line, eight) < 0)
            return -1;
        int code = reply_code(r->reply);
        if (r->reply) {
            sk_buf tmp;
            sk_buf_init(&tmp, 0);
            if (clean(&tmp, r->reply, 0, eight) < 0) {
                sk_buf_free(&tmp);
                return -1;
            }
            snprintf(line, sizeof line, "The mail server %s answered: %.900s",
                     r->remote_mta ? r->remote_mta : "of the recipient", tmp.data ? tmp.data : "");
            sk_buf_free(&tmp);
            if (rcpt_para(out, line, eight) < 0)
                return -1;
        } else if (r->diagnostic) {
            snprintf(line, sizeof line, "What happened: %.900s", r->diagnostic);
            if (rcpt_para(out, line, eight) < 0)
                return -1;
        }
        const sk_code_entry *ce = code ? sk_registry_lookup(code, NULL) : NULL;
        if (ce) {
            snprintf(line, sizeof line, "What %d means: %s", code, ce->meaning);
            if (rcpt_para(out, line, eight) < 0)
                return -1;
        }
        const sk_enhanced_entry *ee = sk_enhanced_lookup(subject, detail);
        if (!ee)
            ee = sk_enhanced_subject(subject);
        snprintf(line, sizeof line, "Status %s: %s%s%s.", r->status,
                 sk_enhanced_class_name(cls) ? sk_enhanced_class_name(cls) : "", ee ? ", " : "",
                 ee ? ee->name : "");
        if (rcpt_para(out, line, eight) < 0)
            return -1;
        if (r->action == SK_DSN_DELAYED && r->will_retry_until) {
            char d[64];
            if (sk_rfc5322_date(d, sizeof d, r->will_retry_until) == 0) {
                snprintf(line, sizeof line, "The mail system keeps trying until %s.", d);
                if (rcpt_para(out, line, eight) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int status_part(sk_buf *out, const sk_dsn_input *in)
{
    char v[600];
    snprintf(v, sizeof v, "dns; %s", in->reporting_mta);
    if (field(out, "Reporting-MTA", v, 1, NULL) < 0)
        return -1;
    if (in->envid && *in->envid && field(out, "Original-Envelope-Id", in->envid, 1, NULL) < 0)
        return -1;
    if (in->arrival && date_field(out, "Arrival-Date", in->arrival) < 0)
        return -1;
    for (size_t i = 0; i < in->nrcpts; i++) {
        const sk_dsn_rcpt *r = &in->rcpts[i];
        if (sk_buf_append(out, "\r\n", 2) < 0) /* each recipient block after a blank line */
            return -1;
        if (r->original_recipient && *r->original_recipient) {
            /* ORCPT is "addr-type;xtext" already (RFC 3461 4.2) */
            const char *semi = strchr(r->original_recipient, ';');
            if (semi)
                snprintf(v, sizeof v, "%.*s; %.500s", (int)(semi - r->original_recipient),
                         r->original_recipient, semi + 1);
            else
                snprintf(v, sizeof v, "rfc822; %.500s", r->original_recipient);
            if (field(out, "Original-Recipient", v, 1, NULL) < 0)
                return -1;
        }
        snprintf(v, sizeof v, "rfc822; %.500s", r->final_recipient);
        if (field(out, "Final-Recipient", v, 1, NULL) < 0 ||
            sk_buf_printf(out, "Action: %s\r\nStatus: %s\r\n", sk_dsn_action_name(r->action),
                          r->status) < 0)
            return -1;
        if (r->remote_mta && *r->remote_mta) {
            snprintf(v, sizeof v, "dns; %.500s", r->remote_mta);
            if (field(out, "Remote-MTA", v, 1, NULL) < 0)
                return -1;
        }
        if (r->reply && *r->reply) {
            sk_buf d;
            sk_buf_init(&d, 0);
            int rc = sk_buf_append_str(&d, "smtp; ");
            if (rc == 0)
                rc = sk_buf_append_str(&d, r->reply);
            if (rc == 0)
                rc = field(out, "Diagnostic-Code", d.data, 1, NULL);
            sk_buf_free(&d);
            if (rc < 0)
                return -1;
        } else if (r->diagnostic && *r->diagnostic) {
            snprintf(v, sizeof v, "X-smtpkit; %.500s", r->diagnostic);
            if (field(out, "Diagnostic-Code", v, 1, NULL) < 0)
                return -1;
        }
        if (r->last_attempt && date_field(out, "Last-Attempt-Date", r->last_attempt) < 0)
            return -1;
        if (r->action == SK_DSN_DELAYED && r->will_retry_until &&
            date_field(out, "Will-Retry-Until", r->will_retry_until) < 0)
            return -1;
    }
    return 0;
}

/* The length of the header section, its final CRLF included, the empty
 * line not (the whole message when it has no body). */
static size_t header_len(const char *m, size_t n)
{
    if (n >= 2 && m[0] == '\r' && m[1] == '\n')
        return 0;
    for (size_t i = 0; i + 3 < n; i++)
        if (m[i] == '\r' && m[i + 1] == '\n' && m[i + 2] == '\r' && m[i + 3] == '\n')
            return i + 2;
    for (size_t i = 0; i + 1 < n; i++) /* bare LF line ends */
        if (m[i] == '\n' && m[i + 1] == '\n')
            return i + 1;
    return n;
}

/* Copy message lines with CRLF ends; a lone CR becomes a space; a line
 * longer than HARD_MAX is cut when `cut`, else -2 is returned. */
static int copy_lines(sk_buf *out, const char *p, size_t n, int cut, int *eight)
{
    size_t start = 0;
    while (start < n) {
        const char *lf = memchr(p + start, '\n', n - start);
        size_t end = lf ? (size_t)(lf - p) : n;
        size_t len = end - start;
        if (len && p[start + len - 1] == '\r')
            len--;
        if (len > HARD_MAX) {
            if (!cut)
                return -2;
            len = HARD_MAX;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[start + i];
            char ch = c == '\r' || c == '\0' ? ' ' : (char)c;
            if (c >= 0x80)
                *eight = 1;
            if (sk_buf_append(out, &ch, 1) < 0)
                return -1;
        }
        if (sk_buf_append(out, "\r\n", 2) < 0)
            return -1;
        start = end + 1;
    }
    return 0;
}

/* Part 3; *full says what was included. */
static int original_part(sk_buf *out, const sk_dsn_input *in, int *full, int *eight)
{
    *full = 0;
    if (!in->message || !in->message_len)
        return 0;
    if (in->ret == SK_DSN_RET_FULL && in->message_len <= in->full_max) {
        sk_buf body;
        sk_buf_init(&body, 0);
        int e8 = 0;
        int rc = copy_lines(&body, in->message, in->message_len, 0, &e8);
        if (rc == 0) {
            rc = sk_buf_append(out, body.data, body.len);
            *full = 1;
            if (e8)
                *eight = 1;
        }
        sk_buf_free(&body);
        if (rc != -2)
            return rc; /* -2: a line too long to send as it is: headers only */
    }
    return copy_lines(out, in->message, header_len(in->message, in->message_len), 1, eight);
}

static void token(const char *src, char *dst, size_t n)
{
    size_t k = 0;
    for (const char *p = src ? src : ""; *p && k + 1 < n; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
            dst[k++] = *p;
    if (!k && n > 1)
        dst[k++] = '0';
    dst[k] = '\0';
}

static int contains(const sk_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (!b->data || b->len < n)
        return 0;
    for (size_t i = 0; i + n <= b->len; i++)
        if (b->data[i] == s[0] && memcmp(b->data + i, s, n) == 0)
            return 1;
    return 0;
}

static int build(const sk_dsn_input *in, sk_buf *out, int *eight)
{
    sk_buf human, status, orig;
    sk_buf_init(&human, 0);
    sk_buf_init(&status, 0);
    sk_buf_init(&orig, 0);
    int full = 0, e_human = 0, e_orig = 0, e_head = 0;
    int rc = -1;
    if (human_part(&human, in, &e_human) < 0 || status_part(&status, in) < 0 ||
        original_part(&orig, in, &full, &e_orig) < 0)
        goto out;

    char tok[64], boundary[128];
    token(in->unique, tok, sizeof tok);
    for (unsigned n = 0;; n++) {
        if (n > 1000)
            goto out; /* cannot happen with real content; bounded anyway */
        snprintf(boundary, sizeof boundary, "=_smtpkit_%s_%u", tok, n);
        if (!contains(&human, boundary) && !contains(&status, boundary) &&
            !contains(&orig, boundary))
            break;
    }

    int failed = 0, delayed = 0;
    for (size_t i = 0; i < in->nrcpts; i++) {
        failed += in->rcpts[i].action == SK_DSN_FAILED;
        delayed += in->rcpts[i].action == SK_DSN_DELAYED;
    }
    const char *subject = failed    ? "Undelivered Mail Returned to Sender"
                          : delayed ? "Delayed Mail (still being retried)"
                                    : "Successful Mail Delivery Report";
    char from[400], to[1100], msgid[400];
    snprintf(from, sizeof from, "Mail Delivery System <MAILER-DAEMON@%.300s>", in->reporting_mta);
    snprintf(to, sizeof to, "<%.1000s>", in->sender);
    snprintf(msgid, sizeof msgid, "<%s.dsn@%.300s>", tok, in->reporting_mta);
    int any8 = e_human || e_orig;
    if (field(out, "From", from, 1, NULL) < 0 || field(out, "To", to, 0, &e_head) < 0 ||
        field(out, "Subject", subject, 1, NULL) < 0 || date_field(out, "Date", in->now) < 0 ||
        field(out, "Message-ID", msgid, 1, NULL) < 0 ||
        sk_buf_append_str(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n") < 0 ||
        sk_buf_printf(out,
                      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                      "\tboundary=\"%s\"\r\n"
                      "Content-Transfer-Encoding: %s\r\n\r\n"
                      "This is a MIME-encapsulated message.\r\n\r\n",
                      boundary, any8 || e_head ? "8bit" : "7bit") < 0)
        goto out;
    if (sk_buf_printf(out,
                      "--%s\r\nContent-Description: Notification\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: %s\r\n\r\n",
                      boundary, e_human ? "8bit" : "7bit") < 0 ||
        sk_buf_append(out, human.data, human.len) < 0 ||
        sk_buf_printf(out,
                      "\r\n--%s\r\nContent-Description: Delivery report\r\n"
                      "Content-Type: message/delivery-status\r\n\r\n",
                      boundary) < 0 ||
        sk_buf_append(out, status.data, status.len) < 0)
        goto out;
    if (orig.len) {
        if (sk_buf_printf(out,
                          "\r\n--%s\r\nContent-Description: %s\r\n"
                          "Content-Type: %s\r\n%s\r\n",
                          boundary, full ? "Undelivered Message" : "Undelivered Message Headers",
                          full ? "message/rfc822" : "text/rfc822-headers",
                          e_orig ? "Content-Transfer-Encoding: 8bit\r\n" : "") < 0 ||
            sk_buf_append(out, orig.data, orig.len) < 0)
            goto out;
    }
    if (sk_buf_printf(out, "\r\n--%s--\r\n", boundary) < 0)
        goto out;
    if (eight)
        *eight = any8 || e_head;
    rc = 0;
out:
    sk_buf_free(&human);
    sk_buf_free(&status);
    sk_buf_free(&orig);
    return rc;
}

int sk_dsn_build(const sk_dsn_input *in, sk_buf *out, int *eight_bit)
{
    if (eight_bit)
        *eight_bit = 0;
    if (!in || !out || !in->sender)
        return SK_DSN_INVALID;
    if (!in->sender[0])
        return SK_DSN_NULL_SENDER;
    if (!in->reporting_mta || !*in->reporting_mta || !in->rcpts || !in->nrcpts)
        return SK_DSN_INVALID;
    /* the report goes to this address: it must be one (the session's
     * parser never lets a control character or a bracket into a path) */
    for (const unsigned char *p = (const unsigned char *)in->sender; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == '<' || *p == '>')
            return SK_DSN_INVALID;
    for (size_t i = 0; i < in->nrcpts; i++) {
        int c, s, d;
        if (!in->rcpts[i].final_recipient || !*in->rcpts[i].final_recipient ||
            !valid_status(in->rcpts[i].status, &c, &s, &d) ||
            (unsigned)in->rcpts[i].action > SK_DSN_EXPANDED)
            return SK_DSN_INVALID;
    }
    size_t start = out->len;
    if (build(in, out, eight_bit) < 0) {
        out->len = start; /* nothing of it stays */
        if (out->data)
            out->data[start] = '\0';
        return SK_DSN_NOMEM;
    }
    return SK_DSN_OK;
}
