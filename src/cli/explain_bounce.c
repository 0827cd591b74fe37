/*
 * explain_bounce.c - `smtpkit explain --bounce`: find every SMTP reply in a
 * pasted bounce (RFC 3464 DSN, Postfix, Exim, qmail, Microsoft 365 and
 * Gmail styles; see smtpkit/bounce.h) and explain each one: the known
 * reply it is, who must act and what to do, then what its codes mean by
 * the RFCs (RFC 5321 4.2, RFC 3463), for people or as JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/explain.h"
#include "client/json_writer.h"
#include "smtpkit/bounce.h"
#include "smtpkit/buf.h"
#include "smtpkit/client.h"

/* The known-reply match and registry explanation of one found reply. */
static int explain_one(const sk_bounce_reply *br, sk_known_match *m, sk_reply_explanation *ex)
{
    sk_reply r;
    memset(&r, 0, sizeof r);
    r.code = br->code;
    r.has_enhanced = br->has_enhanced;
    r.enhanced = br->enhanced;
    const char *cmd = br->command[0] ? br->command : NULL;
    sk_reply_explain(&r, cmd, ex);
    return sk_known_reply_match(cmd, br->code, br->has_enhanced ? &br->enhanced : NULL, br->text,
                                m);
}

static void print_text(const sk_bounce *b)
{
    printf("bounce: %zu repl%s found%s\n", b->n, b->n == 1 ? "y" : "ies",
           b->truncated ? " (more were left out)" : "");
    for (size_t i = 0; i < b->n; i++) {
        const sk_bounce_reply *br = &b->replies[i];
        sk_known_match m;
        sk_reply_explanation ex;
        char buf[512];
        if (explain_one(br, &m, &ex) < 0) {
            fprintf(stderr, "smtpkit explain: out of memory\n");
            return;
        }
        printf("\n[%zu] ", i + 1);
        sk_explain_put_clean(stdout, br->line, strlen(br->line));
        fputc('\n', stdout);
        if (br->recipient[0])
            sk_explain_field(stdout, "recipient", br->recipient);
        sk_explain_field(stdout, "answers",
                         br->command[0] ? br->command : "not said in the bounce");
        sk_explain_field(stdout, "found by", br->found_by);
        snprintf(buf, sizeof buf, "%d: %s [%s]", br->code,
                 ex.meaning ? ex.meaning : "not a registered reply code", ex.advice);
        sk_explain_field(stdout, "code", buf);
        if (br->has_enhanced) {
            snprintf(buf, sizeof buf, "%d.%d.%d: %s", br->enhanced.cls, br->enhanced.subject,
                     br->enhanced.detail, ex.enhanced_name ? ex.enhanced_name : "not registered");
            sk_explain_field(stdout, "enhanced", buf);
        }
        sk_explain_known_text(stdout, &m);
    }
}

static void print_json(const sk_bounce *b)
{
    sk_buf out;
    sk_buf_init(&out, 0);
    sk_json j;
    sk_json_init(&j, &out);
    sk_json_begin_object(&j);
    sk_json_kv_string(&j, "kind", "bounce");
    sk_json_kv_int(&j, "count", (long long)b->n);
    sk_json_kv_bool(&j, "truncated", b->truncated);
    sk_json_key(&j, "replies");
    sk_json_begin_array(&j);
    for (size_t i = 0; i < b->n; i++) {
        const sk_bounce_reply *br = &b->replies[i];
        sk_known_match m;
        sk_reply_explanation ex;
        if (explain_one(br, &m, &ex) < 0) {
            j.failed = 1;
            break;
        }
        sk_json_begin_object(&j);
        sk_json_kv_string(&j, "line", br->line);
        sk_json_kv_int(&j, "code", br->code);
        char en[32];
        snprintf(en, sizeof en, "%d.%d.%d", br->enhanced.cls, br->enhanced.subject,
                 br->enhanced.detail);
        sk_json_kv_string(&j, "enhanced", br->has_enhanced ? en : NULL);
        sk_json_kv_string(&j, "text", br->text);
        sk_json_kv_string(&j, "command", br->command[0] ? br->command : NULL);
        sk_json_kv_string(&j, "recipient", br->recipient[0] ? br->recipient : NULL);
        sk_json_kv_string(&j, "found_by", br->found_by);
        sk_json_kv_string(&j, "meaning", ex.meaning);
        sk_json_kv_string(&j, "advice", ex.advice);
        sk_json_kv_string(&j, "enhanced_name", ex.enhanced_name);
        sk_json_key(&j, "known");
        sk_explain_known_object(&j, &m);
        sk_json_end_object(&j);
    }
    sk_json_end_array(&j);
    sk_json_end_object(&j);
    if (!j.failed && out.data) {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "smtpkit explain: out of memory\n");
    }
    sk_buf_free(&out);
}

int sk_explain_bounce(const char *text, size_t len, int json)
{
    sk_bounce *b = malloc(sizeof *b);
    if (!b) {
        fprintf(stderr, "smtpkit explain: out of memory\n");
        return 2;
    }
    int n = sk_bounce_scan(text, len, b);
    if (n < 0) {
        free(b);
        fprintf(stderr, "smtpkit explain: out of memory\n");
        return 2;
    }
    if (json)
        print_json(b);
    else if (n > 0)
        print_text(b);
    int rc = 0;
    if (n == 0) {
        fprintf(stderr, "smtpkit explain: no SMTP reply found in the bounce (looked for "
                        "Diagnostic-Code fields, \"said:\", \"Remote Server returned\", "
                        "\"SMTP error from remote mail server\" and reply lines)\n");
        rc = 2;
    }
    sk_bounce_free(b);
    free(b);
    return rc;
}
