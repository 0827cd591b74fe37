/*
 * explain.c - what a reply means, for people: the meaning picked for
 * (code, command, enhanced code) (src/core/reply_meaning.c), the first
 * digit's class (RFC 5321 4.2.1), the enhanced code's name (RFC 3463), and
 * whether RFC 5321 4.3.2 (or the extension's RFC) lists the code for that
 * command at all.
 */
#include "smtpkit/client.h"

#include <string.h>

#include "smtpkit/registry.h"

void sk_reply_explain(const sk_reply *r, const char *context, sk_reply_explanation *ex)
{
    memset(ex, 0, sizeof *ex);
    sk_reply_meaning_select(r->code, context, r->has_enhanced ? &r->enhanced : NULL, &ex->picked);
    const sk_reply_meaning *m = &ex->picked;
    ex->meaning = m->meaning;
    ex->rfc = m->rfc;
    ex->advice = sk_advice_name(m->advice);
    ex->source = sk_meaning_source_name(m->source);
    if (m->entry) {
        ex->status = sk_code_status_name(m->entry->status);
        ex->status_note = m->entry->status_note;
    }
    ex->unexpected = context && *context && !m->listed;
    ex->class_text = sk_digit_meaning(0, r->code / 100);
    ex->class_name = sk_digit_name(0, r->code / 100);
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
