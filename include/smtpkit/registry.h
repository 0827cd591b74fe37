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

/* "done", "continue", "retry later", "fix the request", "give up". */
const char *sk_advice_name(sk_advice a);
/* One sentence saying what a sender should do. */
const char *sk_advice_meaning(sk_advice a);
/* "standard", "obsolete", "non-standard". */
const char *sk_code_status_name(sk_code_status s);

#endif
