/*
 * audit_html.c - the HTML report of `smtpkit audit --html FILE` (and the
 * page `smtpkit web` shows): self-contained (inline style, no script, no
 * external resource), a summary table with the score per severity, one row
 * per check coloured by outcome and severity, and each failure with the
 * rule, what the server did, what the RFC allows and the dialogue.
 * Everything that comes from the server or the command line is escaped.
 */
#include <stdio.h>
#include <string.h>

#include "smtpkit/audit.h"

int sk_html_escape(sk_buf *out, const char *s)
{
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '&':
            rc |= sk_buf_append_str(out, "&amp;");
            break;
        case '<':
            rc |= sk_buf_append_str(out, "&lt;");
            break;
        case '>':
            rc |= sk_buf_append_str(out, "&gt;");
            break;
        case '"':
            rc |= sk_buf_append_str(out, "&quot;");
            break;
        case '\'':
            rc |= sk_buf_append_str(out, "&#39;");
            break;
        default:
            if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
                rc |= sk_buf_append_str(out, "?");
            else
                rc |= sk_buf_append(out, p, 1);
        }
    }
    return rc ? -1 : 0;
}

static const char style[] =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:75em}"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}"
    "tr.PASS td.outcome{background:#dff0d8;color:#1d5e1d}"
    "tr.FAIL td.outcome{background:#f2dede;color:#8a1f1f;font-weight:bold}"
    "tr.SKIP td.outcome{background:#f5f5f5;color:#777}"
    ".sev{display:inline-block;padding:0 .4em;border-radius:.3em;color:#fff;font-size:.85em}"
    ".sev-MUST{background:#c9302c}.sev-SHOULD{background:#ec971f}.sev-best{background:#5bc0de}"
    "pre{background:#f8f8f8;border:1px solid #ddd;padding:.6em;overflow-x:auto}"
    ".C{color:#0b5394}.S{color:#38761d}.I{color:#888}"
    ".failure{border-left:4px solid #c9302c;padding-left:1em;margin:1.5em 0}"
    ".failure.SHOULD{border-left-color:#ec971f}.failure.best{border-left-color:#5bc0de}"
    ".note{color:#555}";

static const char *sev_class(sk_audit_severity s)
{
    return s == SK_AUDIT_MUST ? "MUST" : s == SK_AUDIT_SHOULD ? "SHOULD" : "best";
}

static int esc(sk_buf *o, const char *s)
{
    return sk_html_escape(o, s ? s : "");
}

static int badge(sk_buf *o, sk_audit_severity s)
{
    int rc = sk_buf_printf(o, "<span class=\"sev sev-%s\">", sev_class(s));
    rc |= esc(o, sk_audit_severity_name(s));
    rc |= sk_buf_append_str(o, "</span>");
    return rc;
}

int sk_audit_write_html(const sk_audit_report *rep, int body_only, sk_buf *o)
{
    int rc = 0;
    if (!body_only) {
        rc |= sk_buf_append_str(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
                                   "charset=\"utf-8\"><title>smtpkit audit of ");
        rc |= esc(o, rep->target);
        rc |= sk_buf_printf(o, "</title><style>%s</style></head><body>\n", style);
    } else {
        rc |= sk_buf_printf(o, "<style>%s</style>\n", style);
    }
    rc |= sk_buf_append_str(o, "<div id=\"audit-report\"><h1>smtpkit audit of ");
    rc |= esc(o, rep->target);
    rc |= sk_buf_append_str(o, "</h1>\n<p class=\"note\">");
    if (rep->peer[0]) {
        rc |= sk_buf_append_str(o, "Address ");
        rc |= esc(o, rep->peer);
        rc |= sk_buf_append_str(o, ", ");
    }
    rc |= sk_buf_append_str(o, "TLS: ");
    rc |= esc(o, rep->tls_mode);
    rc |= sk_buf_append_str(o, ", started ");
    rc |= esc(o, rep->started);
    rc |= sk_buf_printf(o, ", %.1f s.</p>\n", rep->seconds);
    if (rep->greeting[0]) {
        rc |= sk_buf_append_str(o, "<p>Greeting: <code id=\"greeting\">");
        rc |= esc(o, rep->greeting);
        rc |= sk_buf_append_str(o, "</code></p>\n");
    }
    if (rep->could_not_run) {
        rc |= sk_buf_append_str(o, "<p id=\"could-not-run\"><strong>The audit could not run: ");
        rc |= esc(o, rep->error);
        rc |= sk_buf_append_str(o, "</strong></p>\n");
    }
    if (rep->delivered)
        rc |= sk_buf_printf(o,
                            "<p class=\"note\">%d check%s delivered a test message "
                            "(--deliver-to).</p>\n",
                            rep->delivered, rep->delivered == 1 ? "" : "s");
    if (rep->time_limit_hit)
        rc |= sk_buf_append_str(o, "<p class=\"note\">The run's time limit was reached; later "
                                   "checks were skipped.</p>\n");

    int ex = sk_audit_exit_status(rep);
    rc |= sk_buf_append_str(o, "<h2>Summary</h2>\n<p id=\"verdict\">");
    rc |= esc(o, ex == 0   ? "No MUST or SHOULD failure."
                 : ex == 1 ? "SHOULD failures, no MUST failure."
                 : ex == 2 ? "MUST failures."
                           : "The audit could not run.");
    rc |= sk_buf_append_str(o, "</p>\n<table id=\"summary\"><tr><th>severity</th><th>passed</th>"
                               "<th>failed</th><th>skipped</th><th>score</th></tr>\n");
    for (int s = 0; s < SK_AUDIT_NSEVERITY; s++) {
        int score = sk_audit_score(rep, (sk_audit_severity)s);
        rc |= sk_buf_append_str(o, "<tr><td>");
        rc |= badge(o, (sk_audit_severity)s);
        rc |= sk_buf_printf(o, "</td><td>%d</td><td>%d</td><td>%d</td><td>", rep->pass[s],
                            rep->fail[s], rep->skip[s]);
        if (score < 0)
            rc |= sk_buf_append_str(o, "-");
        else
            rc |= sk_buf_printf(o, "%d%%", score);
        rc |= sk_buf_append_str(o, "</td></tr>\n");
    }
    rc |= sk_buf_append_str(o, "</table>\n");

    if (rep->caps[0]) {
        rc |= sk_buf_append_str(o, "<h2>Extensions offered</h2>\n<pre id=\"caps\">");
        rc |= esc(o, rep->caps);
        rc |= sk_buf_append_str(o, "</pre>\n");
    }

    rc |= sk_buf_append_str(o, "<h2>Checks</h2>\n<table id=\"checks\"><tr><th>result</th>"
                               "<th>severity</th><th>check</th><th>RFC</th><th>what</th></tr>\n");
    for (size_t i = 0; i < rep->nresults; i++) {
        const sk_audit_result *r = &rep->results[i];
        const char *oc = sk_audit_outcome_name(r->outcome);
        rc |= sk_buf_printf(o, "<tr class=\"%s\" id=\"check-%s\"><td class=\"outcome\">%s</td><td>",
                            oc, r->check->name, oc);
        rc |= badge(o, r->check->severity);
        rc |= sk_buf_append_str(o, "</td><td>");
        if (r->outcome == SK_AUDIT_FAIL)
            rc |= sk_buf_printf(o, "<a href=\"#fail-%s\">%s</a>", r->check->name, r->check->name);
        else
            rc |= esc(o, r->check->name);
        rc |= sk_buf_append_str(o, "</td><td>");
        rc |= esc(o, r->check->rfc);
        rc |= sk_buf_append_str(o, "</td><td>");
        rc |= esc(o, r->check->title);
        if (r->outcome == SK_AUDIT_SKIP && r->reason[0]) {
            rc |= sk_buf_append_str(o, " <span class=\"note\">(");
            rc |= esc(o, r->reason);
            rc |= sk_buf_append_str(o, ")</span>");
        }
        rc |= sk_buf_append_str(o, "</td></tr>\n");
    }
    rc |= sk_buf_append_str(o, "</table>\n");

    int nfail = 0;
    for (size_t i = 0; i < rep->nresults; i++) {
        const sk_audit_result *r = &rep->results[i];
        if (r->outcome != SK_AUDIT_FAIL)
            continue;
        if (!nfail++)
            rc |= sk_buf_append_str(o, "<h2>Failures</h2>\n");
        rc |= sk_buf_printf(o, "<div class=\"failure %s\" id=\"fail-%s\"><h3>",
                            sev_class(r->check->severity), r->check->name);
        rc |= badge(o, r->check->severity);
        rc |= sk_buf_append_str(o, " ");
        rc |= esc(o, r->check->name);
        rc |= sk_buf_append_str(o, " (");
        rc |= esc(o, r->check->rfc);
        rc |= sk_buf_append_str(o, "): ");
        rc |= esc(o, r->check->title);
        rc |= sk_buf_append_str(o, "</h3>\n<p><strong>Rule:</strong> ");
        rc |= esc(o, r->check->rule);
        rc |= sk_buf_append_str(o, "</p>\n<p><strong>Found:</strong> <span class=\"found\">");
        rc |= esc(o, r->reason);
        rc |= sk_buf_append_str(o, "</span></p>\n");
        if (r->allowed[0]) {
            rc |= sk_buf_append_str(o, "<p><strong>Allowed:</strong> ");
            rc |= esc(o, r->allowed);
            rc |= sk_buf_append_str(o, "</p>\n");
        }
        if (r->ndialogue) {
            rc |= sk_buf_append_str(o, "<pre class=\"dialogue\">");
            for (size_t k = 0; k < r->ndialogue; k++) {
                char d = r->dialogue[k].dir;
                rc |= sk_buf_printf(o, "<span class=\"%s\">%s ",
                                    d == 'C'   ? "C"
                                    : d == 'S' ? "S"
                                               : "I",
                                    d == 'C'   ? "C:"
                                    : d == 'S' ? "S:"
                                               : " *");
                rc |= esc(o, r->dialogue[k].text);
                rc |= sk_buf_append_str(o, "</span>\n");
            }
            rc |= sk_buf_append_str(o, "</pre>\n");
        }
        rc |= sk_buf_append_str(o, "</div>\n");
    }
    rc |= sk_buf_append_str(o, "</div>\n");
    if (!body_only)
        rc |= sk_buf_append_str(o, "</body></html>\n");
    return rc ? -1 : 0;
}
