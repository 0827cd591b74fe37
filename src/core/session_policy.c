/*
 * session_policy.c - the session's content-policy gate (the shell's
 * milters): once HELO/EHLO, MAIL or RCPT has passed the session's own
 * checks, and once a whole message is in the store, the session asks
 * ops->policy_check and, when the verdict comes later, holds its reply
 * (or the commit) until sk_session_policy_done(), as AUTH does with
 * sk_session_auth_done(). A refusal undoes the step (HELO name forgotten,
 * the transaction not opened, the recipient removed, the message not
 * stored) and answers with the policy's reply when it is valid for the
 * command (RFC 5321 4.2, 4.3.2; enhanced code of the same class, RFC
 * 3463), else with the default: 550 5.7.1 or 451 4.7.1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/session_impl.h"
#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

int sk_sess_policy_gate(sk_session *s, int step, const char *arg, int code, const char *enhanced,
                        const char *text)
{
    if (!s->ops->policy_check ||
        s->ops->policy_check(s->ctx, step, &s->info, arg) != SK_POLICY_PENDING) {
        sk_sess_reply(s, code, enhanced, "%s", text);
        return 0;
    }
    s->policy_step = step;
    s->policy_code = code;
    s->policy_enhanced = enhanced;
    size_t n = strlen(text);
    if (n >= sizeof s->policy_text)
        n = sizeof s->policy_text - 1;
    memcpy(s->policy_text, text, n);
    s->policy_text[n] = '\0';
    s->wants |= SK_WANT_POLICY;
    return 1;
}

/* The command whose codes the registry lists for this step. */
static const char *step_command(const sk_session *s, int step)
{
    switch (step) {
    case SK_POLICY_HELO:
        return s->esmtp ? "EHLO" : "HELO";
    case SK_POLICY_MAIL:
        return "MAIL";
    case SK_POLICY_RCPT:
        return "RCPT";
    default:
        return "DATA-END";
    }
}

/* The reply a refusal sends: the policy's when it fits, else the default. */
static void refusal_reply(sk_session *s, const sk_policy_verdict *v, int step, int *code,
                          const char **enhanced, char enh[16], char *text, size_t cap)
{
    int temp = v->action == SK_POLICY_TEMPFAIL;
    *code = temp ? 451 : 550;
    *enhanced = temp ? "4.7.1" : "5.7.1";
    const char *dflt = temp                     ? "Service unavailable - try again later"
                       : step == SK_POLICY_DATA ? "Message content rejected"
                                                : "Command rejected";
    snprintf(text, cap, "%s", dflt);
    if (v->code / 100 != (temp ? 4 : 5) || !sk_registry_allows(v->code, step_command(s, step)))
        return;
    if (v->enhanced && v->enhanced[0]) {
        sk_enhanced e;
        if (sk_enhanced_parse(v->enhanced, strlen(v->enhanced), &e) != 0 || e.cls != v->code / 100)
            return;
        snprintf(enh, 16, "%d.%d.%d", e.cls, e.subject, e.detail);
        *enhanced = enh;
    }
    *code = v->code;
    if (v->text && v->text[0])
        sk_sess_printable(v->text, text, cap);
}

void sk_session_policy_done(sk_session *s, const sk_policy_verdict *v)
{
    if (!(s->wants & SK_WANT_POLICY))
        return;
    s->wants &= ~(unsigned)SK_WANT_POLICY;
    int step = s->policy_step;
    s->policy_step = 0;
    if (s->mode == SK_MODE_DEAD || (s->wants & SK_WANT_CLOSE))
        return; /* the client left or the session closed: nothing to answer */
    sk_policy_verdict cont = {.action = SK_POLICY_CONTINUE};
    if (!v)
        v = &cont;
    const char *why = v->why ? v->why : "milter";
    if (step == SK_POLICY_DATA) {
        s->verb = s->tx_bdat ? "BDAT" : "DATA-END";
        if (v->action == SK_POLICY_CONTINUE) {
            sk_sess_data_commit(s);
        } else if (v->action == SK_POLICY_DISCARD) {
            /* accepted for the client, stored nowhere; the message line says so */
            char id[40], text[80];
            sk_text_token(s->tx.id, id, sizeof id);
            snprintf(text, sizeof text, "Ok: queued as %s", id);
            sk_sess_end_tx(s, 250, "milter-discard", "2.0.0", text);
        } else {
            int code;
            const char *enh;
            char ebuf[16], text[512];
            refusal_reply(s, v, step, &code, &enh, ebuf, text, sizeof text);
            if (code == 421) {
                s->tx_result = 421;
                s->tx_why = why;
                sk_sess_close_421(s, enh, text, "policy");
                return;
            }
            sk_sess_end_tx(s, code, why, enh, text);
        }
        return;
    }
    if (v->action == SK_POLICY_CONTINUE || v->action == SK_POLICY_DISCARD) {
        /* a discard before the data: the message will be discarded at its
         * end by the same policy; the step itself is accepted */
        sk_sess_reply(s, s->policy_code, s->policy_enhanced, "%s", s->policy_text);
        return;
    }
    int code;
    const char *enh;
    char ebuf[16], text[512];
    refusal_reply(s, v, step, &code, &enh, ebuf, text, sizeof text);
    if (code == 421 || (step == SK_POLICY_HELO && code / 100 == 4)) {
        /* 421 closes (RFC 5321 3.8); and 4.3.2 lists no other 4xx for
         * HELO/EHLO, so a temporary refusal of the name closes too */
        sk_sess_close_421(s, enh, text, "policy");
        return;
    }
    switch (step) {
    case SK_POLICY_HELO:
        free(s->helo);
        s->helo = NULL;
        s->esmtp = 0;
        sk_sess_sync_info(s);
        break;
    case SK_POLICY_MAIL:
        s->in_tx = 0; /* refused: no transaction, so no message line */
        sk_sess_tx_reset(s, NULL);
        break;
    case SK_POLICY_RCPT:
        if (s->tx.nrcpts > 0) {
            sk_rcpt *r = &s->tx.rcpts[--s->tx.nrcpts];
            free(r->addr);
            if (r->dest && s->ops->dest_free)
                s->ops->dest_free(s->ctx, r->dest);
            r->addr = NULL;
            r->dest = NULL;
        }
        s->refused_rcpts++;
        break;
    default:
        break;
    }
    if (code >= 500)
        sk_sess_reject(s, code, enh, "%s", text);
    else
        sk_sess_refuse_temp(s, code, enh, "%s", text);
}
