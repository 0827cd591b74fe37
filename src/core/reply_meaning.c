/*
 * reply_meaning.c - what one reply means as the answer to one command.
 *
 * The registry (reply_registry.c) gives each code its general meaning and
 * its extension meanings (250 after ETRN, 454 after AUTH or STARTTLS). A
 * reply read off the wire says more: the command it answers and, usually,
 * an enhanced status code (RFC 2034, RFC 3463), the more specific signal.
 * This file holds the meanings that depend on them (a 250 to EHLO is not a
 * 250 to RSET; 454 4.7.1 after RCPT is a relay refusal, not an AUTH
 * failure) and the one rule that picks a meaning for (code, command,
 * enhanced code). It also says when a server answers a command with a code
 * that RFC 5321 4.3.2 (or the extension's RFC) does not list for it: common,
 * and worth showing, but not an error.
 */
#include "smtpkit/registry.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DONE SK_ADVICE_DONE
#define RETRY SK_ADVICE_RETRY
#define FIX SK_ADVICE_FIX
#define GIVEUP SK_ADVICE_GIVE_UP

/* Ordered by code, then command, then enhanced (NULL, "any", first). */
static const sk_command_meaning table[] = {
    {250, "DATA-END", NULL,
     "The message is accepted: the server has taken responsibility for delivering it, or for "
     "reporting a failure to the sender.",
     "RFC 5321 4.1.1.4, 6.1", DONE},
    {250, "EHLO", NULL,
     "EHLO accepted: the first line is the server's name, each further line one ESMTP "
     "extension it offers (SIZE, PIPELINING, STARTTLS, AUTH...).",
     "RFC 5321 4.1.1.1", DONE},
    {250, "EXPN", NULL, "The mailing list is expanded: each line names one member.",
     "RFC 5321 3.5.2, 4.1.1.7", DONE},
    {250, "HELO", NULL,
     "HELO accepted: the server has given its name. The session is plain SMTP, without "
     "extensions.",
     "RFC 5321 4.1.1.1, 3.2", DONE},
    {250, "MAIL", NULL,
     "The sender (reverse-path) is accepted and a mail transaction has begun; RCPT TO comes "
     "next.",
     "RFC 5321 4.1.1.2, 3.3", DONE},
    {250, "NOOP", NULL, "Nothing was done: the server is alive and the connection works.",
     "RFC 5321 4.1.1.9", DONE},
    {250, "RCPT", NULL,
     "The recipient is accepted for this transaction; more RCPT TO, or DATA, may follow.",
     "RFC 5321 4.1.1.3, 3.3", DONE},
    {250, "RSET", NULL,
     "The transaction is reset: the sender, the recipients and any data sent so far are "
     "discarded; the connection and the EHLO greeting stay.",
     "RFC 5321 4.1.1.5", DONE},
    {250, "VRFY", NULL,
     "The address is a mailbox on this server; the text usually gives the full name and the "
     "mailbox.",
     "RFC 5321 3.5.1, 4.1.1.6", DONE},

    {450, "RCPT", "4.2.0",
     "The recipient is deferred for now, often by greylisting: the same message sent again "
     "after some minutes is accepted.",
     "RFC 5321 4.2.2; RFC 3463 3.3", RETRY},
    {450, "RCPT", "4.7.1",
     "The recipient is refused for now by a policy check (greylisting, a sender or client "
     "check that could not finish); the text usually says which. Retrying later may succeed.",
     "RFC 5321 4.2.2; RFC 3463 3.8", RETRY},
    {451, "RCPT", "4.7.1",
     "The recipient is deferred by a policy check, typically greylisting: send the same "
     "message again after some minutes.",
     "RFC 5321 4.2.2; RFC 3463 3.8", RETRY},

    {452, "RCPT", "4.2.2",
     "The recipient's mailbox is full for now; the server may take the message later.",
     "RFC 5321 4.2.2; RFC 3463 3.3", RETRY},
    {452, "RCPT", "4.5.3",
     "Too many recipients for one transaction: the ones accepted so far stay; send the rest "
     "in another transaction.",
     "RFC 5321 4.5.3.1.10; RFC 3463 3.6", RETRY},

    {454, "RCPT", "4.7.1",
     "The recipient is refused for now by policy, usually as relaying denied: the domain is "
     "not one the server accepts mail for, and the client has neither authenticated nor come "
     "from a trusted network (Postfix answers \"454 4.7.1 <address>: Relay access denied\"). "
     "Authenticate first, or deliver to the domain's own MX host.",
     "RFC 3463 3.8 (X.7.1); Postfix defer_unauth_destination", FIX},

    {530, "MAIL", "5.7.0",
     "The server requires authentication before MAIL (a submission service): AUTH first, "
     "usually after STARTTLS.",
     "RFC 4954 6", FIX},

    {550, "DATA-END", "5.7.1",
     "The message is refused by a content or policy filter (spam, malware, the sender "
     "domain's SPF, DKIM or DMARC policy).",
     "RFC 5321 4.2.2; RFC 3463 3.8", GIVEUP},
    {550, "MAIL", "5.7.1",
     "The sender is refused by policy: a blocked sender address or domain, or a client host "
     "that may not send as this sender.",
     "RFC 5321 4.2.2; RFC 3463 3.8", GIVEUP},
    {550, "RCPT", "5.1.1",
     "No such mailbox here: the address does not exist, or no longer does. Check the address; "
     "sending again will not help.",
     "RFC 5321 4.2.2; RFC 3463 3.2", GIVEUP},
    {550, "RCPT", "5.1.10",
     "The recipient's domain accepts no mail at all: it publishes a null MX record.",
     "RFC 7505 4.1; RFC 3463", GIVEUP},
    {550, "RCPT", "5.7.1",
     "The recipient is refused by policy, usually as relaying denied: the domain is not one "
     "the server accepts mail for and the client may not relay (or the sender or client is "
     "blocked for this recipient). Authenticate, or deliver to the domain's own MX host.",
     "RFC 5321 3.6, 4.2.2; RFC 3463 3.8", FIX},

    {552, "RCPT", "5.2.2",
     "The recipient's mailbox is over its quota; the message was not accepted for it.",
     "RFC 5321 4.2.2; RFC 3463 3.3", GIVEUP},

    {554, "DATA-END", "5.7.1",
     "The message is refused by a content or policy filter (spam, malware, the sender "
     "domain's SPF, DKIM or DMARC policy).",
     "RFC 5321 4.2.3; RFC 3463 3.8", GIVEUP},
    {554, "MAIL", "5.7.1",
     "The sender is refused by policy: a blocked sender address or domain, or a client host "
     "that may not send as this sender.",
     "RFC 3463 3.8", GIVEUP},
    {554, "RCPT", "5.7.1",
     "The recipient is refused by policy, usually as relaying denied (Postfix answers \"554 "
     "5.7.1 <address>: Relay access denied\"): the domain is not one the server accepts mail "
     "for and the client may not relay. Authenticate, or deliver to the domain's own MX host.",
     "RFC 3463 3.8 (X.7.1); Postfix reject_unauth_destination", FIX},
};

#define NTABLE (sizeof table / sizeof table[0])

size_t sk_command_meaning_size(void)
{
    return NTABLE;
}

const sk_command_meaning *sk_command_meaning_at(size_t i)
{
    return i < NTABLE ? &table[i] : NULL;
}

/* The row for (code, command) with exactly this enhanced code, else the
 * one for any enhanced code, else NULL. */
static const sk_command_meaning *find_row(int code, const char *command, const sk_enhanced *enh)
{
    char en[24] = "";
    if (enh)
        snprintf(en, sizeof en, "%d.%d.%d", enh->cls, enh->subject, enh->detail);
    const sk_command_meaning *any = NULL;
    for (size_t i = 0; i < NTABLE; i++) {
        const sk_command_meaning *m = &table[i];
        if (m->code != code || strcasecmp(m->command, command) != 0)
            continue;
        if (!m->enhanced)
            any = m;
        else if (enh && !strcmp(m->enhanced, en))
            return m;
    }
    return any;
}

static sk_advice class_advice(int code)
{
    switch (code / 100) {
    case 2:
        return SK_ADVICE_DONE;
    case 3:
        return SK_ADVICE_CONTINUE;
    case 4:
        return SK_ADVICE_RETRY;
    default:
        return SK_ADVICE_GIVE_UP;
    }
}

/* Does the row name `command` (or ANY, for a command a client sends)? */
static int row_allows(const sk_code_entry *e, const char *command)
{
    const char *p = e->commands;
    size_t wl = strlen(command);
    int any_ok = strcasecmp(command, "CONNECT") != 0 && strcasecmp(command, "DATA-END") != 0;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if ((n == wl && n && !strncasecmp(p, command, n)) ||
            (any_ok && n == 3 && !strncmp(p, "ANY", 3)))
            return 1;
        p += n;
    }
    return 0;
}

/* The registry row that applies to a reply to `command`: the extension's
 * own row (STARTTLS, AUTH, ETRN...), else a row (base first) that lists
 * the command. NULL when none does. */
static const sk_code_entry *applying_row(const sk_code_entry *const *rows, size_t n,
                                         const char *command)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i]->context && !strcasecmp(rows[i]->context, command))
            return rows[i];
    for (size_t i = 0; i < n; i++)
        if (!rows[i]->context && row_allows(rows[i], command))
            return rows[i];
    for (size_t i = 0; i < n; i++)
        if (row_allows(rows[i], command))
            return rows[i];
    return NULL;
}

/* With no command: the base row, else the row whose usual enhanced code
 * is the reply's, else the first. */
static const sk_code_entry *row_without_command(const sk_code_entry *const *rows, size_t n,
                                                const sk_enhanced *enh)
{
    for (size_t i = 0; i < n; i++)
        if (!rows[i]->context)
            return rows[i];
    if (enh) {
        char en[24];
        snprintf(en, sizeof en, "%d.%d.%d", enh->cls, enh->subject, enh->detail);
        for (size_t i = 0; i < n; i++)
            if (rows[i]->enhanced && !strcmp(rows[i]->enhanced, en))
                return rows[i];
    }
    return n ? rows[0] : NULL;
}

void sk_reply_meaning_select(int code, const char *command, const sk_enhanced *enh,
                             sk_reply_meaning *out)
{
    memset(out, 0, sizeof *out);
    out->advice = class_advice(code);
    out->listed = 1;
    if (command && !*command)
        command = NULL;
    const sk_code_entry *rows[16];
    size_t n = sk_registry_find(code, rows, 16);
    if (n > 16)
        n = 16;
    /* An enhanced code of another class is not one (RFC 2034 3). */
    if (enh && enh->cls != code / 100)
        enh = NULL;

    if (!command) {
        const sk_code_entry *e = row_without_command(rows, n, enh);
        if (e) {
            out->entry = e;
            out->meaning = e->meaning;
            out->rfc = e->rfc;
            out->advice = e->advice;
            out->source = SK_MEANING_GENERAL;
        }
        return;
    }

    out->listed = sk_registry_allows(code, command);
    const sk_code_entry *applies = applying_row(rows, n, command);
    const sk_code_entry *base = NULL;
    for (size_t i = 0; i < n; i++)
        if (!rows[i]->context)
            base = rows[i];
    const sk_command_meaning *cm = find_row(code, command, enh);
    const sk_enhanced_entry *ee = NULL;
    if (enh) {
        ee = sk_enhanced_lookup(enh->subject, enh->detail);
        if (!ee)
            ee = sk_enhanced_subject(enh->subject);
    }

    if (cm) {
        out->meaning = cm->meaning;
        out->rfc = cm->rfc;
        out->advice = cm->advice;
        out->source = cm->enhanced ? SK_MEANING_COMMAND_ENHANCED : SK_MEANING_COMMAND;
        out->entry = applies ? applies : base;
    } else if (applies) {
        out->entry = applies;
        out->meaning = applies->meaning;
        out->rfc = applies->rfc;
        out->advice = applies->advice;
        out->source = applies->context ? SK_MEANING_COMMAND : SK_MEANING_GENERAL;
    } else if (ee) {
        /* The code means nothing registered for this command; the enhanced
         * code says what happened. */
        out->meaning = ee->meaning;
        out->rfc = ee->rfc;
        out->source = SK_MEANING_ENHANCED;
        out->entry = base;
    } else if (base) {
        out->entry = base;
        out->meaning = base->meaning;
        out->rfc = base->rfc;
        out->advice = base->advice;
        out->source = SK_MEANING_GENERAL;
    }
    /* Meanings this code has for other commands, which do not apply. */
    for (size_t i = 0; i < n && out->nelsewhere < SK_MEANING_MAX_ELSEWHERE; i++)
        if (rows[i] != out->entry && rows[i]->context && !row_allows(rows[i], command))
            out->elsewhere[out->nelsewhere++] = rows[i];
}

const char *sk_meaning_source_name(sk_meaning_source s)
{
    switch (s) {
    case SK_MEANING_NONE:
        return "none";
    case SK_MEANING_GENERAL:
        return "general";
    case SK_MEANING_COMMAND:
        return "command";
    case SK_MEANING_COMMAND_ENHANCED:
        return "command+enhanced";
    case SK_MEANING_ENHANCED:
        return "enhanced";
    }
    return "?";
}
