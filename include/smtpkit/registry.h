/*
 * registry.h - the one table of SMTP reply codes and enhanced status codes.
 *
 * Basic codes are keyed by (context, code): 250 after ETRN (RFC 1985) means
 * something else than 250 after MAIL. Server, probe and explain all read this
 * table. Sources: RFC 5321 4.2 / 4.3.2, RFC 1985 (ETRN), RFC 2645 (ATRN),
 * RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 3030 (BDAT), RFC 3463 and the
 * IANA "SMTP Enhanced Status Codes" registry.
 */
#ifndef SMTPKIT_REGISTRY_H
#define SMTPKIT_REGISTRY_H

#include <stddef.h>

#include "smtpkit/reply.h"

typedef enum sk_code_status {
    SK_CODE_STANDARD,    /* defined by a current RFC */
    SK_CODE_OBSOLETE,    /* defined once, no longer in use (e.g. 355 of RFC 1845) */
    SK_CODE_NONSTANDARD, /* vendor or folk code, outside the RFC grammar */
} sk_code_status;

typedef enum sk_advice {
    SK_ADVICE_DONE,     /* success: nothing to do */
    SK_ADVICE_CONTINUE, /* intermediate: send the next part (354, 334) */
    SK_ADVICE_RETRY,    /* transient: retry later unchanged */
    SK_ADVICE_FIX,      /* permanent, but a corrected request may succeed */
    SK_ADVICE_GIVE_UP,  /* permanent: do not retry this message/recipient */
} sk_advice;

typedef struct sk_code_entry {
    int code;             /* e.g. 550 */
    const char *context;  /* NULL for the base SMTP meaning; else the extension
                             or command whose meaning this is: "ETRN", "ATRN",
                             "STARTTLS", "AUTH", "BDAT" */
    const char *enhanced; /* the usual enhanced code with it ("5.1.1"), or NULL */
    const char *text;     /* default reply text the server sends */
    const char *meaning;  /* plain words */
    sk_code_status status;
    const char *status_note; /* whose vendor code; what the seeds claimed where
                                the RFCs differ; NULL if nothing to add */
    const char *rfc;         /* defining RFC and section, e.g. "RFC 5321 4.2.2" */
    const char *commands;    /* space-separated commands/phases that may return
                                it: CONNECT HELO EHLO MAIL RCPT DATA DATA-END BDAT
                                RSET VRFY EXPN HELP NOOP QUIT SEND SOML SAML TURN
                                ETRN ATRN AUTH STARTTLS ANY */
    sk_advice advice;
} sk_code_entry;

/* Number of entries and indexed access (stable order: by code, then context,
 * the base row (context NULL) first). */
size_t sk_registry_size(void);
const sk_code_entry *sk_registry_entry(size_t i);

/* The entry for (code, context). `context` is matched (case-insensitively)
 * against the rows' contexts; NULL or unknown falls back to the base meaning.
 * A code that only has extension meanings (454, 530, 235...) falls back to the
 * first row whose `commands` allow `context`, else to its first row.
 * NULL if the code is not registered at all. */
const sk_code_entry *sk_registry_lookup(int code, const char *context);

/* Every row for `code`, in table order: stores up to `max` pointers in out
 * (out may be NULL when max is 0) and returns how many rows exist. */
size_t sk_registry_find(int code, const sk_code_entry **out, size_t max);

/* 1 if `code` is a reply RFC 5321 / the ESMTP RFCs allow for `command`
 * (as named in sk_code_entry.commands), else 0. */
int sk_registry_allows(int code, const char *command);

/* What one digit of a basic code means (RFC 5321 4.2.1): position 0, 1 or 2.
 * NULL if the digit is not valid in that position (RFC 5321 4.2 grammar:
 * first 2-5, second 0-5, third 0-9). */
const char *sk_digit_meaning(int position, int digit);
/* A short name for the same ("transient negative completion", "syntax"). */
const char *sk_digit_name(int position, int digit);

/* 1 if `code` fits RFC 5321's reply-code grammar (4.2): first digit 2-5,
 * second 0-5, third 0-9. Vendor codes such as 571 do not. */
int sk_code_is_valid(int code);

/* Enhanced status codes (RFC 3463 + IANA registry). */
typedef struct sk_enhanced_entry {
    int subject, detail; /* X.subject.detail; detail -1 for a subject row */
    const char *name;    /* short name: "Bad destination mailbox address" */
    const char *meaning; /* plain words */
    const char *rfc;
} sk_enhanced_entry;

/* Class meaning for 2, 4, 5; NULL otherwise (RFC 3463 2). */
const char *sk_enhanced_class_meaning(int cls);
/* Its short name: "Success", "Persistent transient failure", "Permanent failure". */
const char *sk_enhanced_class_name(int cls);
/* The subject row (detail -1) or the X.subject.detail row; NULL if unregistered. */
const sk_enhanced_entry *sk_enhanced_subject(int subject);
const sk_enhanced_entry *sk_enhanced_lookup(int subject, int detail);
size_t sk_enhanced_size(void);
const sk_enhanced_entry *sk_enhanced_entry_at(size_t i);

/* ---- what one reply means as the answer to one command -------------------
 * (src/core/reply_meaning.c) A 250 to EHLO is not a 250 to RSET, and
 * 454 4.7.1 after RCPT is a relay refusal, not an AUTH failure: the command
 * and the enhanced code pick the meaning. */

/* A meaning that depends on the command (and possibly the enhanced code). */
typedef struct sk_command_meaning {
    int code;
    const char *command;  /* in sk_code_entry.commands' vocabulary: "EHLO", "RCPT", "DATA-END" */
    const char *enhanced; /* "4.7.1": only with this enhanced code; NULL: any */
    const char *meaning;
    const char *rfc;
    sk_advice advice;
} sk_command_meaning;

size_t sk_command_meaning_size(void);
const sk_command_meaning *sk_command_meaning_at(size_t i);

typedef enum sk_meaning_source {
    SK_MEANING_NONE,             /* nothing registered applies: only the digits speak */
    SK_MEANING_GENERAL,          /* the code's general meaning (no command-specific one) */
    SK_MEANING_COMMAND,          /* the meaning of this code as a reply to this command */
    SK_MEANING_COMMAND_ENHANCED, /* ... with this enhanced code (RCPT 454 4.7.1) */
    SK_MEANING_ENHANCED,         /* the code has none for the command: the enhanced code's */
} sk_meaning_source;

#define SK_MEANING_MAX_ELSEWHERE 4

typedef struct sk_reply_meaning {
    const char *meaning; /* plain words; NULL with SK_MEANING_NONE */
    const char *rfc;     /* where the meaning comes from */
    sk_meaning_source source;
    sk_advice advice;           /* from the meaning, else from the first digit */
    const sk_code_entry *entry; /* the registry row that applies (status, usual text), or NULL */
    /* 1 if RFC 5321 4.3.2 (or the extension's RFC) lists the code as a reply
     * to the command (always 1 without a command). A server answering with
     * another code is common and not an error, but worth saying. */
    int listed;
    /* Rows of this code for other commands (454 for AUTH and STARTTLS after
     * RCPT): meanings that do not apply here. */
    const sk_code_entry *elsewhere[SK_MEANING_MAX_ELSEWHERE];
    size_t nelsewhere;
} sk_reply_meaning;

/* Pick the meaning of reply `code` to `command` (NULL or "": unknown) with
 * enhanced code `enh` (NULL: none). In order: a meaning for (code, command,
 * enhanced code); for (code, command); the registry row the command returns
 * the code under (its extension row, else the base row); when the code has
 * no such row, the enhanced code's meaning; else the base row; else none. */
void sk_reply_meaning_select(int code, const char *command, const sk_enhanced *enh,
                             sk_reply_meaning *out);
/* "none", "general", "command", "command+enhanced", "enhanced". */
const char *sk_meaning_source_name(sk_meaning_source s);

/* "done", "continue", "retry later", "fix the request", "give up". */
const char *sk_advice_name(sk_advice a);
/* One sentence saying what a sender should do. */
const char *sk_advice_meaning(sk_advice a);
/* "standard", "obsolete", "non-standard". */
const char *sk_code_status_name(sk_code_status s);

#endif
