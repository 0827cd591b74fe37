/*
 * command.h - SMTP command line parser (RFC 5321 4.1.1, 4.1.2, 3.3;
 * RFC 1869 / 5321 4.1.2 esmtp-param).
 *
 * Splits a command line (without its CRLF) into a verb, matched
 * case-insensitively, and its argument, and parses the
 * "FROM:<path> params" / "TO:<path> params" arguments of MAIL and RCPT.
 *
 * Tolerances, decided on purpose and kept narrow:
 *  - RFC 5321 3.3 allows no space around the colon of "MAIL FROM:". A space
 *    BEFORE the colon ("MAIL FROM :<a>") is refused. Spaces AFTER the colon
 *    ("MAIL FROM: <a>") are accepted, as many deployed clients send them and
 *    nothing is ambiguous about it.
 *  - The angle brackets are required: "MAIL FROM:a@b" is refused.
 *  - Several spaces between parameters and trailing spaces are accepted.
 *  - The verb must be followed by exactly one of: end of line, SP. Leading
 *    and trailing spaces of the argument are dropped.
 */
#ifndef SMTPKIT_COMMAND_H
#define SMTPKIT_COMMAND_H

#include <stddef.h>

#include "smtpkit/address.h"

typedef enum sk_verb {
    SK_VERB_UNKNOWN = 0,
    SK_VERB_HELO,
    SK_VERB_EHLO,
    SK_VERB_MAIL,
    SK_VERB_RCPT,
    SK_VERB_DATA,
    SK_VERB_BDAT,
    SK_VERB_RSET,
    SK_VERB_VRFY,
    SK_VERB_EXPN,
    SK_VERB_HELP,
    SK_VERB_NOOP,
    SK_VERB_QUIT,
    SK_VERB_STARTTLS,
    SK_VERB_AUTH,
    SK_VERB_SEND, /* obsolete (RFC 821), removed by RFC 5321 */
    SK_VERB_SOML,
    SK_VERB_SAML,
    SK_VERB_TURN,
    SK_VERB_ETRN, /* RFC 1985, not enabled */
    SK_VERB_ATRN, /* RFC 2645, not enabled */
    SK_VERB_COUNT
} sk_verb;

/* Upper-case name of a verb ("MAIL"); "UNKNOWN" for SK_VERB_UNKNOWN. */
const char *sk_verb_name(sk_verb v);
/* The verb spelled by p[0..n), any case; SK_VERB_UNKNOWN if none. */
sk_verb sk_verb_lookup(const char *p, size_t n);

typedef struct sk_command {
    sk_verb verb;
    const char *verb_text; /* the verb as sent (points into the line) */
    size_t verb_len;
    const char *arg; /* the argument, without surrounding spaces; may be empty */
    size_t arg_len;
} sk_command;

/* Split a command line (no CRLF). Returns 0, or -1 if the line is empty or
 * the verb is not followed by SP or the end (then cmd->verb is UNKNOWN). */
int sk_command_split(const char *line, size_t len, sk_command *cmd);

/* One esmtp-param: keyword ["=" value] (RFC 5321 4.1.2). Pointers into the
 * parsed line. */
typedef struct sk_esmtp_param {
    const char *key;
    size_t key_len;
    const char *value; /* NULL when there was no "=" */
    size_t value_len;
} sk_esmtp_param;

#define SK_MAX_ESMTP_PARAMS 16

typedef enum sk_path_cmd_status {
    SK_PATHCMD_OK = 0,
    SK_PATHCMD_E_SYNTAX,     /* missing "FROM:"/"TO:", junk: 501 5.5.4 */
    SK_PATHCMD_E_ADDRESS,    /* bad address: 501 5.1.7 (MAIL) / 5.1.3 (RCPT) */
    SK_PATHCMD_E_NEEDS_UTF8, /* non-ASCII without SMTPUTF8: 553 5.6.7 */
    SK_PATHCMD_E_PARAM,      /* malformed or too many parameters: 501 5.5.4 */
} sk_path_cmd_status;

typedef struct sk_path_command {
    sk_address path;
    size_t nparams;
    sk_esmtp_param params[SK_MAX_ESMTP_PARAMS];
} sk_path_command;

/*
 * Parse the argument of MAIL ("FROM:<path> params", prefix "FROM:") or of
 * RCPT (prefix "TO:"). addr_flags are the SK_ADDR_* flags for the path.
 * On error *err is a static message naming the problem.
 */
sk_path_cmd_status sk_command_parse_path(const char *arg, size_t len, const char *prefix,
                                         unsigned addr_flags, sk_path_command *out,
                                         const char **err);

/* Case-insensitive keyword match: 1 if param's keyword is `name`. */
int sk_esmtp_param_is(const sk_esmtp_param *p, const char *name);

/* 1 if s[0..n) is valid xtext (RFC 3461 4: chars 33-126 except '+' and
 * '=', or "+" two upper-case hex digits). Used for AUTH=. */
int sk_xtext_valid(const char *s, size_t n);

#endif
