/*
 * known_reply.h - what the replies people actually get mean: a table of
 * real-world reply texts from the large mailbox providers, the common MTAs
 * and the DNS block lists (src/core/known_replies.def), each with the
 * provider, a meaning in smtpkit's own words, who has to act, what to do
 * and the public documentation it is based on.
 *
 * The table sits beside the reply registry (registry.h): the registry says
 * what a code means by the RFCs (RFC 5321 4.2, RFC 3463); this table says
 * what a provider means by a particular text. sk_known_reply_match() picks
 * the most specific row for (command, code, enhanced code, text) and says
 * which of them it relied on and how sure it is.
 */
#ifndef SMTPKIT_KNOWN_REPLY_H
#define SMTPKIT_KNOWN_REPLY_H

#include <stddef.h>

#include "smtpkit/reply.h"

/* Who has to do something about a reply. */
typedef enum sk_actor {
    SK_ACTOR_SENDER,          /* the person who sent: fix the address, the message */
    SK_ACTOR_SENDER_ADMIN,    /* the sender's mail administrator: DNS, SPF/DKIM, IP */
    SK_ACTOR_RECIPIENT,       /* the person written to: a full or closed mailbox */
    SK_ACTOR_RECIPIENT_ADMIN, /* the receiving side's administrator: its policy */
    SK_ACTOR_NOBODY,          /* nobody: the sending server retries by itself */
} sk_actor;

/* How a row's text pattern is compared with the reply text. */
typedef enum sk_text_match {
    SK_TEXT_ANY,    /* the row has no text pattern */
    SK_TEXT_SUBSTR, /* case-insensitive substring */
    SK_TEXT_REGEX,  /* POSIX extended regular expression, case-insensitive */
} sk_text_match;

/* The public document a row is based on. */
typedef struct sk_known_source {
    const char *key;
    const char *name;
    const char *url;
} sk_known_source;

/* One row of src/core/known_replies.def. */
typedef struct sk_known_reply {
    const char *id;       /* stable name, "gmail-unauthenticated" */
    const char *provider; /* "Gmail / Google Workspace", "Postfix", ... */
    const char *command;  /* "RCPT", "MAIL", "CONNECT", "EHLO", "DATA-END",
                             "AUTH", "STARTTLS", or NULL for any */
    const char *code;     /* "550", "5xx" (class only), or NULL for any */
    const char *enhanced; /* "5.7.26", "5.7.606-649" (a detail range), or NULL */
    sk_text_match match;
    const char *pattern; /* the text pattern, NULL with SK_TEXT_ANY */
    const char *category;
    sk_actor actor;
    const char *meaning;
    const char *action;
    const char *source; /* key of an sk_known_source */
} sk_known_reply;

/* What a match relied on. */
typedef enum sk_known_basis {
    SK_KNOWN_BY_TEXT,     /* a provider text pattern (with its code constraints) */
    SK_KNOWN_BY_ENHANCED, /* the enhanced code only */
    SK_KNOWN_BY_CODE,     /* the basic code only */
    SK_KNOWN_BY_NOTHING,  /* no code at all */
} sk_known_basis;

typedef struct sk_known_match {
    const sk_known_reply *row;     /* the most specific row, or NULL */
    const sk_known_source *source; /* the row's source, or NULL */
    sk_known_basis basis;
    const char *certainty; /* "high", "medium" or "low" */
    int used_command;      /* the row is specific to the command given */
    int used_code;         /* the row constrains the basic code */
    int used_enhanced;     /* the row constrains the enhanced code */
} sk_known_match;

/*
 * Find the most specific row for a reply. `command` (the command the reply
 * answers, as in sk_reply_explain) may be NULL; `code` 0 means unknown;
 * `enhanced` may be NULL; `text` (the reply text without code and enhanced
 * code, lines joined by spaces) may be NULL. A row matches when every field
 * it sets matches; among matching rows a text pattern outweighs an enhanced
 * code, which outweighs a basic code and then the command; ties go to the
 * row listed first. Always fills *m (row NULL when nothing matched: the
 * basis then says whether the enhanced or only the basic code is left).
 * Returns 1 if a row matched, 0 if not, -1 if out of memory.
 */
int sk_known_reply_match(const char *command, int code, const sk_enhanced *enhanced,
                         const char *text, sk_known_match *m);

/*
 * Split one reply as found in a bounce or a log, "550 5.7.1 text" or
 * "550-5.7.1 a 550-5.7.1 b 550 5.7.1 c" (a multi-line reply flattened onto
 * one line; also sk_reply_oneline's "550 5.7.1 a / 550 5.7.1 b"), into
 * code, enhanced code and text: the repeated code prefixes
 * are removed and white space is collapsed. `text` gets at most textlen-1
 * bytes. Returns 0, or -1 if the line does not start with a 3-digit code
 * (first digit 2-5) followed by a space, '-' or the end.
 */
int sk_reply_line_split(const char *line, int *code, int *has_enhanced, sk_enhanced *enhanced,
                        char *text, size_t textlen);

/* The same as sk_known_reply_match for a line sk_reply_line_split accepts. */
int sk_known_reply_match_line(const char *command, const char *line, sk_known_match *m);

/* Names for output. */
const char *sk_actor_name(sk_actor a);    /* "sender-admin" */
const char *sk_actor_meaning(sk_actor a); /* "the sender's mail administrator" */
const char *sk_known_basis_name(sk_known_basis b);

/* The table, for --list style output and tests. */
size_t sk_known_reply_count(void);
const sk_known_reply *sk_known_reply_at(size_t i);
const sk_known_source *sk_known_source_find(const char *key);
size_t sk_known_source_count(void);
const sk_known_source *sk_known_source_at(size_t i);

/* Check every row: known source, parsable code and enhanced code, the
 * pattern compiles, texts present. Returns 0, or -1 with why[] set. */
int sk_known_reply_check_table(char *why, size_t whylen);

#endif
