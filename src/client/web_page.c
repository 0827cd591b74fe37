/*
 * web_page.c - the page `smtpkit web` serves: the seed's "Online SMTP
 * Response" checker (a host or domain, the "Advanced Output" box, a Check
 * and an Audit button), the result below it, and the reply codes from the
 * registry (RFC 5321 4.2 and the extension RFCs) as the seed lists them.
 * No script, no resource from elsewhere; everything echoed is escaped.
 */
#include <stdio.h>
#include <string.h>

#include "client/web_check.h"
#include "smtpkit/audit.h"
#include "smtpkit/registry.h"

static const char page_style[] =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:75em}"
    "form{background:#f4f6f8;border:1px solid #ccd;padding:1em;margin:1em 0}"
    "input[type=text]{width:24em;padding:.3em}button{padding:.3em 1em;margin-left:.5em}"
    "#dialogue .line{font-family:monospace;white-space:pre-wrap}"
    "#dialogue .C{color:#0b5394}#dialogue .S{color:#38761d}#dialogue .I{color:#888}"
    ".t{color:#aaa}.explain{margin:.2em 0 .6em 9em;font-size:.9em;color:#333}"
    ".meta{color:#777}.warn{color:#a61c00}.error{color:#a61c00;font-weight:bold}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
    "text-align:left;vertical-align:top}.kw{font-family:monospace;white-space:nowrap}"
    "#codes{margin-top:2em}#codes td:first-child{font-family:monospace}";

int sk_web_page(sk_buf *o, const char *host, int advanced, const char *result_html)
{
    int rc = 0;
    rc |= sk_buf_printf(o,
                        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                        "<title>Online SMTP Response - smtpkit</title><style>%s</style>"
                        "</head><body>\n",
                        page_style);
    rc |= sk_buf_append_str(
        o, "<h1>Online SMTP Response</h1>\n"
           "<p>SMTP (Simple Mail Transfer Protocol) is a text-based protocol: a client names "
           "the sender and the recipients, the server answers each command with a three-digit "
           "reply code, then the message text is transferred. Enter a mail server or a domain "
           "(its MX hosts are looked up) to see what it answers, every reply explained.</p>\n"
           "<form id=\"checker\" method=\"get\" action=\"/run\">\n"
           "<label for=\"host\">Host or domain</label> "
           "<input type=\"text\" id=\"host\" name=\"host\" placeholder=\"smtp.gmail.com\" "
           "value=\"");
    rc |= sk_html_escape(o, host ? host : "");
    rc |= sk_buf_printf(o,
                        "\" required>\n"
                        "<label><input type=\"checkbox\" id=\"advanced\" name=\"advanced\" "
                        "value=\"1\"%s> Advanced Output</label>\n"
                        "<button type=\"submit\" id=\"check\" name=\"action\" value=\"check\">"
                        "Check</button>\n"
                        "<button type=\"submit\" id=\"audit\" name=\"action\" value=\"audit\">"
                        "Audit</button>\n"
                        "<p class=\"meta\">Example: smtp.gmail.com. If you select Advanced "
                        "Output, the complete dialogue is shown (EHLO capabilities, STARTTLS "
                        "and the certificate); if not, only the first SMTP response. Audit "
                        "checks every reply against the RFCs (nothing is delivered).</p>\n"
                        "</form>\n",
                        advanced ? " checked" : "");
    if (result_html)
        rc |= sk_buf_append_str(o, result_html);
    rc |= sk_buf_append_str(o, "<h2>SMTP response codes</h2>\n<table id=\"codes\">\n");
    for (size_t i = 0; i < sk_registry_size(); i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        rc |= sk_buf_printf(o, "<tr><td>%d</td><td>", e->code);
        if (e->context) {
            rc |= sk_buf_append_str(o, "[");
            rc |= sk_html_escape(o, e->context);
            rc |= sk_buf_append_str(o, "] ");
        }
        rc |= sk_html_escape(o, e->text);
        rc |= sk_buf_append_str(o, "</td><td>");
        rc |= sk_html_escape(o, sk_code_status_name(e->status));
        rc |= sk_buf_append_str(o, "</td></tr>\n");
    }
    rc |= sk_buf_append_str(o, "</table>\n</body></html>\n");
    return rc ? -1 : 0;
}
