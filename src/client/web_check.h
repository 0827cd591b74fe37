/*
 * web_check.h - the checker behind `smtpkit web`: the seed's "online SMTP
 * response" test as an HTML fragment. Internal to smtpkit (not installed).
 */
#ifndef SMTPKIT_CLIENT_WEB_CHECK_H
#define SMTPKIT_CLIENT_WEB_CHECK_H

#include "smtpkit/buf.h"

typedef struct sk_web_check_opts {
    const char *target; /* "host", "host:port" or a domain (MX looked up) */
    int advanced;       /* the whole dialogue, not only the greeting */
    int timeout_ms;     /* each wait */
    const char *helo;
} sk_web_check_opts;

/* Run the check and append the result as an HTML fragment (everything from
 * the server escaped). Returns 0 when the server answered 220, 1 when it
 * answered otherwise or could not be reached (the fragment says why). */
int sk_web_check_html(const sk_web_check_opts *o, sk_buf *out);

/* The page around a result: the seed's form (host or domain, the "Advanced
 * Output" box, Check and Audit buttons), `result_html` (may be NULL), and
 * the reply codes table from the registry. `host` refills the form. */
int sk_web_page(sk_buf *out, const char *host, int advanced, const char *result_html);

#endif
