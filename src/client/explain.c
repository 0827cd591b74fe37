/*
 * explain.c - what a reply means, for people: the registry's meaning for
 * (code, command), the first digit's class (RFC 5321 4.2.1), the enhanced
 * code's name (RFC 3463), and whether the RFCs list the code for that
 * command at all.
 */
#include "smtpkit/client.h"

#include <string.h>

#include "smtpkit/registry.h"

void sk_reply_explain(const sk_reply *r, const char *context, sk_reply_explanation *ex)
{
    memset(ex, 0, sizeof *ex);
    /* The registry keys extension meanings by the command's name. */
    const char *regctx = NULL;
    if (context &&
        (!strcmp(context, "STARTTLS") || !strcmp(context, "AUTH") || !strcmp(context, "BDAT") ||
         !strcmp(context, "ETRN") || !strcmp(context, "ATRN")))
        regctx = context;
    const sk_code_entry *e = sk_registry_lookup(r->code, regctx);
    if (e) {
        ex->meaning = e->meaning;
        ex->rfc = e->rfc;
        ex->status = sk_code_status_name(e->status);
        ex->status_note = e->status_note;
        ex->advice = sk_advice_name(e->advice);
        if (context && !sk_registry_allows(r->code, context))
            ex->unexpected = 1;
    }
    ex->class_text = sk_digit_meaning(0, r->code / 100);
    ex->class_name = sk_digit_name(0, r->code / 100);
    if (!ex->advice) {
        int d = r->code / 100;
        ex->advice = sk_advice_name(d == 2   ? SK_ADVICE_DONE
                                    : d == 3 ? SK_ADVICE_CONTINUE
                                    : d == 4 ? SK_ADVICE_RETRY
                                             : SK_ADVICE_GIVE_UP);
    }
    if (r->has_enhanced) {
        const sk_enhanced_entry *en = sk_enhanced_lookup(r->enhanced.subject, r->enhanced.detail);
        if (!en)
            en = sk_enhanced_subject(r->enhanced.subject);
        if (en) {
            ex->enhanced_name = en->name;
            ex->enhanced_meaning = en->meaning;
        }
    }
}
