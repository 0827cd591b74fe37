/*
 * rcpt_result.c - per-recipient verdicts of a delivery attempt and their
 * application to the envelope record (RFC 5321 4.2.1, 4.5.3.1.10, 4.5.4.1;
 * the model is Postfix's smtp_trouble.c). See rcpt_result.h.
 */
#include "delivery/rcpt_result.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

sk_dlv_state sk_dlv_state_of(sk_cc_phase phase, int code)
{
    if (code >= 200 && code < 300)
        return SK_DLV_SENT;
    switch (sk_cc_verdict_of(phase, code)) {
    case SK_CC_OK:
        return SK_DLV_SENT;
    case SK_CC_TEMP:
        return SK_DLV_DEFER;
    case SK_CC_PERM:
    default:
        return SK_DLV_BOUNCE;
    }
}

void sk_dlv_set(sk_dlv_rcpt_result *r, sk_dlv_state state, int code, const char *enhanced,
                const char *host, const char *text)
{
    r->state = state;
    r->code = code;
    if (enhanced && *enhanced)
        snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced);
    else
        snprintf(r->enhanced, sizeof r->enhanced, "%d.0.0",
                 state == SK_DLV_SENT     ? 2
                 : state == SK_DLV_BOUNCE ? 5
                                          : 4);
    snprintf(r->host, sizeof r->host, "%s", host ? host : "");
    snprintf(r->text, sizeof r->text, "%s", text ? text : "");
}

const char *sk_dlv_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : "";
}

static int due(const sk_envelope_rcpt *r, long long now, int force)
{
    if (r->state != SK_ENV_PENDING && r->state != SK_ENV_DEFERRED)
        return 0;
    return force || r->next_attempt <= now;
}

size_t sk_dlv_next_group(const sk_envelope *e, long long now, int force, const unsigned char *taken,
                         size_t max, size_t *out)
{
    size_t n = 0;
    const char *dom = NULL;
    if (max == 0)
        max = 1;
    for (size_t i = 0; i < e->nrcpts && n < max; i++) {
        const sk_envelope_rcpt *r = &e->rcpts[i];
        if ((taken && taken[i]) || !due(r, now, force))
            continue;
        const char *d = sk_dlv_domain(r->addr);
        if (!dom)
            dom = d;
        else if (strcasecmp(dom, d) != 0)
            continue;
        out[n++] = i;
    }
    return n;
}

long long sk_dlv_next_due(const sk_envelope *e)
{
    long long best = -1;
    for (size_t i = 0; i < e->nrcpts; i++) {
        const sk_envelope_rcpt *r = &e->rcpts[i];
        if (r->state != SK_ENV_PENDING && r->state != SK_ENV_DEFERRED)
            continue;
        if (best < 0 || r->next_attempt < best)
            best = r->next_attempt;
    }
    return best;
}

int sk_dlv_all_final(const sk_envelope *e)
{
    for (size_t i = 0; i < e->nrcpts; i++) {
        sk_envelope_state s = e->rcpts[i].state;
        if (s == SK_ENV_PENDING || s == SK_ENV_DEFERRED || s == SK_ENV_HELD)
            return 0;
    }
    return 1;
}

static int set_reply(sk_envelope_rcpt *er, const sk_dlv_rcpt_result *r)
{
    er->last.code = r->code;
    if (sk_envelope_set(&er->last.enhanced, r->enhanced) < 0 ||
        sk_envelope_set(&er->last.host, r->host) < 0 ||
        sk_envelope_set(&er->last.text, r->text) < 0)
        return -1;
    return 0;
}

size_t sk_dlv_apply(sk_envelope *e, const sk_dlv_rcpt_result *res, size_t n,
                    const sk_retry_policy *p, long long now, uint32_t rnd, size_t *bounced)
{
    size_t nb = 0;
    for (size_t k = 0; k < n; k++) {
        const sk_dlv_rcpt_result *r = &res[k];
        if (r->index >= e->nrcpts)
            continue;
        sk_envelope_rcpt *er = &e->rcpts[r->index];
        if (strcmp(er->addr, r->addr) != 0 ||
            (er->state != SK_ENV_PENDING && er->state != SK_ENV_DEFERRED))
            continue;
        er->attempts++;
        (void)set_reply(er, r);
        switch (r->state) {
        case SK_DLV_SENT:
            er->state = SK_ENV_SENT;
            break;
        case SK_DLV_BOUNCE:
            er->state = SK_ENV_BOUNCED;
            bounced[nb++] = r->index;
            break;
        case SK_DLV_OPEN:
        case SK_DLV_DEFER:
        default: {
            sk_retry_decision d =
                sk_retry_after_failure(p, (time_t)e->arrival, (time_t)now, er->attempts, 1, rnd);
            if (d.give_up) {
                er->state = SK_ENV_BOUNCED;
                if (sk_envelope_set(&er->last.enhanced, "4.4.7") == 0) {
                    char t[700];
                    snprintf(t, sizeof t, "message expired, last error: %s", r->text);
                    (void)sk_envelope_set(&er->last.text, t);
                }
                bounced[nb++] = r->index;
            } else {
                er->state = SK_ENV_DEFERRED;
                er->next_attempt = (long long)d.next;
            }
            break;
        }
        }
    }
    return nb;
}
