/*
 * received.h - the trace headers a final-delivery SMTP server prepends to
 * each message: Return-Path and Received (RFC 5321 4.4; RFC 5322 3.3 date;
 * protocol names from the IANA "Mail Transmission Types" registry:
 * RFC 3848 ESMTPA/ESMTPS/ESMTPSA, RFC 6531 UTF8SMTP*).
 */
#ifndef SMTPKIT_CORE_RECEIVED_H
#define SMTPKIT_CORE_RECEIVED_H

#include <stddef.h>
#include <time.h>

#include "smtpkit/buf.h"

typedef struct sk_received_info {
    const char *hostname;    /* our name, the "by" clause */
    const char *helo;        /* the client's HELO/EHLO argument, or NULL */
    const char *peer_addr;   /* "192.0.2.1" or "2001:db8::1", or NULL */
    const char *peer_rdns;   /* verified reverse name, or NULL */
    const char *protocol;    /* from sk_received_protocol() */
    const char *tls_version; /* NULL without TLS */
    const char *tls_cipher;
    const char *id;        /* the message id */
    const char *rcpt;      /* the recipient when there is exactly one, else NULL */
    const char *mail_from; /* reverse-path without <>; "" for the null path */
    time_t now;
} sk_received_info;

/* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "UTF8SMTP", "UTF8SMTPS",
 * "UTF8SMTPA" or "UTF8SMTPSA". A HELO session is always "SMTP". */
const char *sk_received_protocol(int esmtp, int tls, int authenticated, int smtputf8);

/* RFC 5322 3.3 date-time in local time, e.g. "Tue, 02 Jan 2024 15:04:05 +0100"
 * (English names whatever the locale). Returns 0 or -1. */
int sk_rfc5322_date(char *buf, size_t n, time_t t);

/* Append "Return-Path: <...>" and the "Received: ..." header (folded lines,
 * CRLF line ends). Client-supplied parts that are not valid where they go
 * are replaced or moved into a comment, so no header can be injected.
 * Returns 0 or -1 (out of space). */
int sk_received_write(sk_buf *out, const sk_received_info *ri);

#endif
