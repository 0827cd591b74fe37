/*
 * command_table.h - the SMTP command table: one row per verb with the
 * flags that gate it and its handler (the shape of Postfix's
 * smtpd_cmd_table[]). RFC 5321 4.1.4 (order of commands), 4.3.2 (reply
 * codes per command), RFC 2920 3.1 (commands that end a pipelined group),
 * RFC 3207, RFC 4954, RFC 3030.
 */
#ifndef SMTPKIT_CORE_COMMAND_TABLE_H
#define SMTPKIT_CORE_COMMAND_TABLE_H

#include "core/session_impl.h"

#define SK_CMD_NEEDS_HELO 0x01  /* 503 5.5.1 before HELO/EHLO */
#define SK_CMD_NEEDS_EHLO 0x02  /* an ESMTP extension: 503 5.5.1 after a plain HELO too */
#define SK_CMD_NOT_IN_TX 0x04   /* 503 5.5.1 inside a mail transaction */
#define SK_CMD_NO_ARGS 0x08     /* 501 5.5.4 when an argument is given */
#define SK_CMD_NEEDS_ARG 0x10   /* 501 5.5.4 without an argument */
#define SK_CMD_ENDS_GROUP 0x20  /* RFC 2920 3.1: must be the last of a pipelined group */
#define SK_CMD_OBSOLETE 0x40    /* RFC 821 only: 502 5.5.1 */
#define SK_CMD_NOT_ENABLED 0x80 /* defined elsewhere, not offered here: 502 5.5.1 */
#define SK_CMD_SELF_GATED                                                                          \
    0x100 /* the handler checks state itself (BDAT must first                                      \
             consume its chunk, whatever it answers) */

typedef struct sk_cmd_entry {
    sk_verb verb;
    unsigned flags;
    /* NULL, or 0 when the command is not available on this listener: 502 */
    int (*available)(const sk_session *s);
    void (*handler)(sk_session *s, const sk_command *cmd);
    const char *usage; /* for 501 texts and HELP */
} sk_cmd_entry;

/* The row for a verb, NULL for SK_VERB_UNKNOWN. */
const sk_cmd_entry *sk_cmd_lookup(sk_verb v);

/* Handle one complete command line (CRLF removed, known to hold no NUL,
 * CR or LF): the gating of the table, then the handler. */
void sk_cmd_dispatch(sk_session *s, const char *line, size_t len);

/* Handlers (session_commands.c). */
void sk_cmd_helo(sk_session *s, const sk_command *cmd);
void sk_cmd_ehlo(sk_session *s, const sk_command *cmd);
void sk_cmd_mail(sk_session *s, const sk_command *cmd);
void sk_cmd_rcpt(sk_session *s, const sk_command *cmd);
void sk_cmd_data(sk_session *s, const sk_command *cmd);
void sk_cmd_bdat(sk_session *s, const sk_command *cmd);
void sk_cmd_rset(sk_session *s, const sk_command *cmd);
void sk_cmd_vrfy(sk_session *s, const sk_command *cmd);
void sk_cmd_expn(sk_session *s, const sk_command *cmd);
void sk_cmd_help(sk_session *s, const sk_command *cmd);
void sk_cmd_noop(sk_session *s, const sk_command *cmd);
void sk_cmd_quit(sk_session *s, const sk_command *cmd);
void sk_cmd_starttls(sk_session *s, const sk_command *cmd);
void sk_cmd_auth(sk_session *s, const sk_command *cmd);

/* Availability tests (session_commands.c). */
int sk_cmd_starttls_available(const sk_session *s);
int sk_cmd_auth_available(const sk_session *s);
int sk_cmd_expn_available(const sk_session *s);

#endif
