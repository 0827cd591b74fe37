/*
 * audit_text.c - the text report of `smtpkit audit`: one line per check
 * (PASS / FAIL / SKIP, severity, name, RFC), then each failure with the
 * rule, what the server did, what the RFC allows and the dialogue that shows
 * it, then the score per severity.
 */
#include <stdio.h>
#include <string.h>

#include "smtpkit/audit.h"

static const char *sev_short(sk_audit_severity s)
{
    return s == SK_AUDIT_MUST ? "MUST" : s == SK_AUDIT_SHOULD ? "SHOULD" : "BEST";
}

static int summary_line(const sk_audit_report *rep, sk_buf *out)
{
    int rc = sk_buf_printf(out, "Summary:\n");
    for (int s = 0; s < SK_AUDIT_NSEVERITY; s++) {
        int score = sk_audit_score(rep, (sk_audit_severity)s);
        char sc[16];
        if (score < 0)
            snprintf(sc, sizeof sc, "-");
        else
            snprintf(sc, sizeof sc, "%d%%", score);
        rc |= sk_buf_printf(out, "  %-14s %2d passed, %2d failed, %2d skipped  score %s\n",
                            sk_audit_severity_name((sk_audit_severity)s), rep->pass[s],
                            rep->fail[s], rep->skip[s], sc);
    }
    return rc;
}

int sk_audit_write_text(const sk_audit_report *rep, sk_buf *out)
{
    int rc = 0;
    rc |= sk_buf_printf(out, "smtpkit audit of %s%s%s (TLS: %s), %s, %.1f s\n", rep->target,
                        rep->peer[0] ? " at " : "", rep->peer, rep->tls_mode, rep->started,
                        rep->seconds);
    if (rep->greeting[0])
        rc |= sk_buf_printf(out, "greeting: %s\n", rep->greeting);
    if (rep->could_not_run)
        rc |= sk_buf_printf(out, "COULD NOT RUN: %s\n", rep->error);
    if (rep->delivered)
        rc |= sk_buf_printf(out, "note: %d check%s delivered a test message (--deliver-to)\n",
                            rep->delivered, rep->delivered == 1 ? "" : "s");
    if (rep->time_limit_hit)
        rc |= sk_buf_printf(out, "note: the run's time limit was reached; later checks were "
                                 "skipped\n");
    rc |= sk_buf_printf(out, "\n");
    for (size_t i = 0; i < rep->nresults; i++) {
        const sk_audit_result *r = &rep->results[i];
        rc |= sk_buf_printf(out, "%s  %-6s  %-24s %-28s %s", sk_audit_outcome_name(r->outcome),
                            sev_short(r->check->severity), r->check->name, r->check->rfc,
                            r->check->title);
        if (r->outcome == SK_AUDIT_SKIP && r->reason[0])
            rc |= sk_buf_printf(out, " (%s)", r->reason);
        rc |= sk_buf_printf(out, "\n");
    }
    int nfail = 0;
    for (size_t i = 0; i < rep->nresults; i++) {
        const sk_audit_result *r = &rep->results[i];
        if (r->outcome != SK_AUDIT_FAIL)
            continue;
        if (!nfail++)
            rc |= sk_buf_printf(out, "\nFailures:\n");
        rc |= sk_buf_printf(out, "\nFAIL %s %s (%s): %s\n", sev_short(r->check->severity),
                            r->check->name, r->check->rfc, r->check->title);
        rc |= sk_buf_printf(out, "  rule:     %s\n", r->check->rule);
        rc |= sk_buf_printf(out, "  found:    %s\n", r->reason);
        if (r->allowed[0])
            rc |= sk_buf_printf(out, "  allowed:  %s\n", r->allowed);
        if (r->ndialogue)
            rc |= sk_buf_printf(out, "  dialogue:\n");
        for (size_t k = 0; k < r->ndialogue; k++)
            rc |= sk_buf_printf(out, "    %s %s\n",
                                r->dialogue[k].dir == 'C'   ? "C:"
                                : r->dialogue[k].dir == 'S' ? "S:"
                                                            : " *",
                                r->dialogue[k].text);
    }
    rc |= sk_buf_printf(out, "\n");
    rc |= summary_line(rep, out);
    int ex = sk_audit_exit_status(rep);
    rc |= sk_buf_printf(out, "Result: %s\n",
                        ex == 0   ? "no MUST or SHOULD failure"
                        : ex == 1 ? "SHOULD failures (exit 1)"
                        : ex == 2 ? "MUST failures (exit 2)"
                                  : "the audit could not run");
    return rc ? -1 : 0;
}
