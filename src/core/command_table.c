/*
 * command_table.c - the SMTP command table and its gating.
 *
 * RFC 5321 4.1.4: NOOP, HELP, EXPN, VRFY, RSET and QUIT are valid before
 * HELO/EHLO, so they carry no NEEDS_HELO flag. RFC 5321 4.2.4 / 3.3: 500
 * for an unrecognised command, 502 for one recognised but not implemented
 * (the obsolete SEND/SOML/SAML/TURN, and ETRN/ATRN, not offered). RFC 2920
 * 3.1 lists the commands that end a pipelined group.
 *
 * The gates run in a fixed order, so a command that is wrong in several
 * ways always gets the same reply: availability (502), HELO (503), EHLO
 * (503), transaction (503), argument presence (501), then the handler's own
 * checks.
 */
#include "core/command_table.h"

#include <stddef.h>

static const sk_cmd_entry table[] = {
    {SK_VERB_HELO, SK_CMD_NEEDS_ARG | SK_CMD_ENDS_GROUP, NULL, sk_cmd_helo, "HELO hostname"},
    {SK_VERB_EHLO, SK_CMD_NEEDS_ARG | SK_CMD_ENDS_GROUP, NULL, sk_cmd_ehlo, "EHLO hostname"},
    {SK_VERB_MAIL, SK_CMD_NEEDS_HELO | SK_CMD_NEEDS_ARG, NULL, sk_cmd_mail,
     "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [AUTH=xtext]"},
    {SK_VERB_RCPT, SK_CMD_NEEDS_HELO | SK_CMD_NEEDS_ARG, NULL, sk_cmd_rcpt, "RCPT TO:<address>"},
    {SK_VERB_DATA, SK_CMD_NEEDS_HELO | SK_CMD_NO_ARGS | SK_CMD_ENDS_GROUP, NULL, sk_cmd_data,
     "DATA"},
    {SK_VERB_BDAT, SK_CMD_SELF_GATED, NULL, sk_cmd_bdat, "BDAT size [LAST]"},
    {SK_VERB_RSET, SK_CMD_NO_ARGS, NULL, sk_cmd_rset, "RSET"},
    {SK_VERB_VRFY, SK_CMD_NEEDS_ARG | SK_CMD_ENDS_GROUP, NULL, sk_cmd_vrfy, "VRFY address"},
    {SK_VERB_EXPN, SK_CMD_NEEDS_ARG | SK_CMD_ENDS_GROUP, sk_cmd_expn_available, sk_cmd_expn,
     "EXPN list"},
    {SK_VERB_HELP, 0, NULL, sk_cmd_help, "HELP [command]"},
    {SK_VERB_NOOP, SK_CMD_ENDS_GROUP, NULL, sk_cmd_noop, "NOOP"},
    {SK_VERB_QUIT, SK_CMD_NO_ARGS | SK_CMD_ENDS_GROUP, NULL, sk_cmd_quit, "QUIT"},
    {SK_VERB_STARTTLS, SK_CMD_NEEDS_HELO | SK_CMD_NOT_IN_TX | SK_CMD_NO_ARGS | SK_CMD_ENDS_GROUP,
     sk_cmd_starttls_available, sk_cmd_starttls, "STARTTLS"},
    {SK_VERB_AUTH,
     SK_CMD_NEEDS_HELO | SK_CMD_NEEDS_EHLO | SK_CMD_NOT_IN_TX | SK_CMD_NEEDS_ARG |
         SK_CMD_ENDS_GROUP,
     sk_cmd_auth_available, sk_cmd_auth, "AUTH mechanism [initial-response]"},
    {SK_VERB_SEND, SK_CMD_OBSOLETE, NULL, NULL, "SEND (obsolete)"},
    {SK_VERB_SOML, SK_CMD_OBSOLETE, NULL, NULL, "SOML (obsolete)"},
    {SK_VERB_SAML, SK_CMD_OBSOLETE, NULL, NULL, "SAML (obsolete)"},
    {SK_VERB_TURN, SK_CMD_OBSOLETE | SK_CMD_ENDS_GROUP, NULL, NULL, "TURN (obsolete)"},
    {SK_VERB_ETRN, SK_CMD_NOT_ENABLED, NULL, NULL, "ETRN (not supported)"},
    {SK_VERB_ATRN, SK_CMD_NOT_ENABLED, NULL, NULL, "ATRN (not supported)"},
};

const sk_cmd_entry *sk_cmd_lookup(sk_verb v)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].verb == v)
            return &table[i];
    return NULL;
}

void sk_cmd_dispatch(sk_session *s, const char *line, size_t len)
{
    sk_command cmd;
    s->cmd_addr_set = 0;
    if (sk_command_split(line, len, &cmd) < 0) {
        s->verb = "EMPTY";
        sk_sess_reject(s, 500, "5.5.2", "Syntax error, empty command");
        return;
    }
    const sk_cmd_entry *e = sk_cmd_lookup(cmd.verb);
    if (!e) {
        s->verb = "UNKNOWN";
        sk_sess_reject(s, 500, "5.5.2", "Syntax error, command unrecognized");
        return;
    }
    s->verb = sk_verb_name(cmd.verb);
    if (e->flags & SK_CMD_OBSOLETE) {
        sk_sess_reject(s, 502, "5.5.1", "Error: %s is obsolete and not implemented", s->verb);
        return;
    }
    if (e->flags & SK_CMD_NOT_ENABLED) {
        sk_sess_reject(s, 502, "5.5.1", "Error: %s is not supported here", s->verb);
        return;
    }
    if (e->available && !e->available(s)) {
        sk_sess_reject(s, 502, "5.5.1", "Error: %s is not implemented here", s->verb);
        return;
    }
    if (!(e->flags & SK_CMD_SELF_GATED)) {
        if ((e->flags & SK_CMD_NEEDS_HELO) && !s->helo) {
            sk_sess_reject(s, 503, "5.5.1", "Error: send HELO/EHLO first");
            return;
        }
        if ((e->flags & SK_CMD_NEEDS_EHLO) && !s->esmtp) {
            sk_sess_reject(s, 503, "5.5.1", "Error: send EHLO first");
            return;
        }
        if ((e->flags & SK_CMD_NOT_IN_TX) && s->in_tx) {
            sk_sess_reject(s, 503, "5.5.1", "Error: not allowed during a mail transaction");
            return;
        }
        if ((e->flags & SK_CMD_NO_ARGS) && cmd.arg_len) {
            sk_sess_reject(s, 501, "5.5.4", "Syntax: %s (no parameters allowed)", e->usage);
            return;
        }
        if ((e->flags & SK_CMD_NEEDS_ARG) && !cmd.arg_len) {
            sk_sess_reject(s, 501, "5.5.4", "Syntax: %s", e->usage);
            return;
        }
    }
    if ((e->flags & SK_CMD_ENDS_GROUP) && s->feed_left && cmd.verb != SK_VERB_QUIT)
        /* RFC 2920 3.1: the client did not wait for this reply. Tolerated
         * (the replies stay in order); logged for the operator. */
        sk_sess_log(s, "event=pipelining_violation cmd=%s", s->verb);
    e->handler(s, &cmd);
}
