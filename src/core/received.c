/*
 * received.c - Return-Path and Received trace headers.
 *
 * RFC 5321 4.4 (Trace information: Return-Path-line, Time-stamp-line,
 * Extended-Domain, TCP-info, With, ID, For; "for" only with exactly one
 * recipient, so Bcc recipients are not disclosed), RFC 5322 3.3 (date-time),
 * RFC 3848 and RFC 6531 3.7.3 (protocol names).
 *
 * Everything the client chose (HELO name) is validated before it is put in
 * a structured position; when it is not a domain or address literal it
 * appears only as a sanitised comment.
 */
#include "core/received.h"

#include <stdio.h>
#include <string.h>

#include "smtpkit/address.h"

const char *sk_received_protocol(int esmtp, int tls, int authenticated, int smtputf8)
{
    static const char *const esmtp_names[2][2] = {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}};
    static const char *const utf8_names[2][2] = {{"UTF8SMTP", "UTF8SMTPA"},
                                                 {"UTF8SMTPS", "UTF8SMTPSA"}};
    if (!esmtp)
        return "SMTP";
    tls = !!tls;
    authenticated = !!authenticated;
    return smtputf8 ? utf8_names[tls][authenticated] : esmtp_names[tls][authenticated];
}

int sk_rfc5322_date(char *buf, size_t n, time_t t)
{
    static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!localtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        return -1;
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int r = snprintf(buf, n, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sign, off / 60, off % 60);
    return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* Append s, replacing anything that is not comment text (RFC 5322 ctext)
 * by '?'. */
static int append_ctext(sk_buf *out, const char *s, size_t max)
{
    for (size_t i = 0; i < max && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        char ch = (c < 33 || c > 126 || c == '(' || c == ')' || c == '\\') ? '?' : (char)c;
        if (sk_buf_append(out, &ch, 1) < 0)
            return -1;
    }
    return 0;
}

/* The client's address as an address literal: "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]"; "" when unknown or not a literal. */
static void peer_literal(const char *addr, char *lit, size_t n)
{
    lit[0] = '\0';
    if (!addr || !*addr)
        return;
    snprintf(lit, n, strchr(addr, ':') ? "[IPv6:%s]" : "[%s]", addr);
    if (!sk_address_literal_valid(lit, strlen(lit)))
        lit[0] = '\0';
}

static int is_atext_id(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

int sk_received_write(sk_buf *out, const sk_received_info *ri)
{
    size_t mark = out->len;
    char lit[80], date[64];
    peer_literal(ri->peer_addr, lit, sizeof lit);
    if (sk_rfc5322_date(date, sizeof date, ri->now) < 0)
        goto fail;

    const char *from = ri->mail_from ? ri->mail_from : "";
    /* the mailbox came through the address parser, so it holds no CR/LF;
     * check anyway rather than trust */
    if (strpbrk(from, "\r\n") || (ri->rcpt && strpbrk(ri->rcpt, "\r\n")))
        goto fail;
    if (sk_buf_printf(out, "Return-Path: <%s>\r\n", from) < 0)
        goto fail;

    const char *helo = ri->helo;
    int helo_ok =
        helo && *helo &&
        (sk_domain_valid(helo, strlen(helo), 0) || sk_address_literal_valid(helo, strlen(helo)));
    const char *rdns = ri->peer_rdns;
    int rdns_ok = rdns && *rdns && sk_domain_valid(rdns, strlen(rdns), 0);

    /* From-domain = "FROM" FWS Extended-Domain */
    if (sk_buf_append_str(out, "Received: from ") < 0 ||
        sk_buf_append_str(out, helo_ok ? helo : (*lit ? lit : "unknown")) < 0)
        goto fail;
    if (*lit) { /* "(" TCP-info ")" */
        if (sk_buf_printf(out, " (%s%s%s)", rdns_ok ? rdns : "", rdns_ok ? " " : "", lit) < 0)
            goto fail;
    }
    if (helo && *helo && !helo_ok) {
        if (sk_buf_append_str(out, " (helo=") < 0 || append_ctext(out, helo, 255) < 0 ||
            sk_buf_append_str(out, ")") < 0)
            goto fail;
    }
    /* By-domain, With */
    if (sk_buf_printf(out, "\r\n\tby %s (smtpkit) with %s", ri->hostname, ri->protocol) < 0)
        goto fail;
    if (ri->tls_version) {
        if (sk_buf_append_str(out, " (") < 0 || append_ctext(out, ri->tls_version, 64) < 0 ||
            (ri->tls_cipher &&
             (sk_buf_append_str(out, " ") < 0 || append_ctext(out, ri->tls_cipher, 128) < 0)) ||
            sk_buf_append_str(out, ")") < 0)
            goto fail;
    }
    /* ID = CFWS "ID" FWS Atom */
    if (ri->id && *ri->id) {
        if (sk_buf_append_str(out, " id ") < 0)
            goto fail;
        for (size_t i = 0; i < 64 && ri->id[i]; i++) {
            char ch = is_atext_id((unsigned char)ri->id[i]) ? ri->id[i] : '?';
            if (sk_buf_append(out, &ch, 1) < 0)
                goto fail;
        }
    }
    /* For = CFWS "FOR" FWS ( Path / Mailbox ) */
    if (ri->rcpt && sk_buf_printf(out, "\r\n\tfor <%s>", ri->rcpt) < 0)
        goto fail;
    if (sk_buf_printf(out, ";\r\n\t%s\r\n", date) < 0)
        goto fail;
    return 0;
fail:
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    return -1;
}
