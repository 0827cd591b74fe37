/*
 * audit_json.c - the JSON report of `smtpkit audit --json` (RFC 8259): the
 * same content as the text report, through the project's JSON writer, so
 * whatever a server sent the output is valid JSON.
 */
#include <stdio.h>
#include <string.h>

#include "client/json_writer.h"
#include "smtpkit/audit.h"

static const char *sev_key(int s)
{
    return s == SK_AUDIT_MUST ? "must" : s == SK_AUDIT_SHOULD ? "should" : "best_practice";
}

int sk_audit_write_json(const sk_audit_report *rep, sk_buf *out)
{
    sk_json j;
    sk_json_init(&j, out);
    sk_json_begin_object(&j);
    sk_json_kv_string(&j, "target", rep->target);
    sk_json_kv_string(&j, "address", rep->peer[0] ? rep->peer : NULL);
    sk_json_kv_string(&j, "tls", rep->tls_mode);
    sk_json_kv_string(&j, "started", rep->started);
    sk_json_key(&j, "seconds");
    sk_json_double(&j, rep->seconds, 2);
    sk_json_kv_string(&j, "greeting", rep->greeting[0] ? rep->greeting : NULL);
    sk_json_key(&j, "capabilities");
    sk_json_begin_array(&j);
    for (const char *p = rep->caps; *p;) {
        size_t n = strcspn(p, "\n");
        sk_json_stringn(&j, p, n);
        p += n;
        if (*p)
            p++;
    }
    sk_json_end_array(&j);
    sk_json_kv_bool(&j, "could_not_run", rep->could_not_run != 0);
    sk_json_kv_string(&j, "error", rep->error[0] ? rep->error : NULL);
    sk_json_kv_bool(&j, "time_limit_reached", rep->time_limit_hit);
    sk_json_kv_int(&j, "delivered", rep->delivered);
    sk_json_key(&j, "checks");
    sk_json_begin_array(&j);
    for (size_t i = 0; i < rep->nresults; i++) {
        const sk_audit_result *r = &rep->results[i];
        sk_json_begin_object(&j);
        sk_json_kv_string(&j, "name", r->check->name);
        sk_json_kv_string(&j, "title", r->check->title);
        sk_json_kv_string(&j, "rfc", r->check->rfc);
        sk_json_kv_string(&j, "severity", sk_audit_severity_name(r->check->severity));
        sk_json_kv_string(&j, "outcome", sk_audit_outcome_name(r->outcome));
        sk_json_kv_string(&j, "rule", r->check->rule);
        sk_json_kv_string(&j, "reason", r->reason[0] ? r->reason : NULL);
        sk_json_kv_string(&j, "allowed", r->allowed[0] ? r->allowed : NULL);
        sk_json_key(&j, "dialogue");
        sk_json_begin_array(&j);
        if (r->outcome == SK_AUDIT_FAIL)
            for (size_t k = 0; k < r->ndialogue; k++) {
                char d[2] = {r->dialogue[k].dir, 0};
                sk_json_begin_object(&j);
                sk_json_kv_string(&j, "dir", d);
                sk_json_kv_string(&j, "line", r->dialogue[k].text);
                sk_json_end_object(&j);
            }
        sk_json_end_array(&j);
        sk_json_end_object(&j);
    }
    sk_json_end_array(&j);
    sk_json_key(&j, "summary");
    sk_json_begin_object(&j);
    for (int s = 0; s < SK_AUDIT_NSEVERITY; s++) {
        sk_json_key(&j, sev_key(s));
        sk_json_begin_object(&j);
        sk_json_kv_int(&j, "pass", rep->pass[s]);
        sk_json_kv_int(&j, "fail", rep->fail[s]);
        sk_json_kv_int(&j, "skip", rep->skip[s]);
        int score = sk_audit_score(rep, (sk_audit_severity)s);
        sk_json_key(&j, "score");
        if (score < 0)
            sk_json_null(&j);
        else
            sk_json_int(&j, score);
        sk_json_end_object(&j);
    }
    sk_json_end_object(&j);
    sk_json_kv_int(&j, "exit", sk_audit_exit_status(rep));
    sk_json_end_object(&j);
    if (j.failed || sk_buf_append(out, "\n", 1) < 0)
        return -1;
    return 0;
}
