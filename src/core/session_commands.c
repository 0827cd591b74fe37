/*
 * session_commands.c - the handlers of the SMTP command table.
 *
 * RFC 5321 4.1.1.1-4.1.1.10 (HELO/EHLO, MAIL, RCPT, DATA, RSET, VRFY, EXPN,
 * HELP, NOOP, QUIT), 3.2 (HELO gets a plain one-line 250), 4.5.1
 * (postmaster), 4.5.3.1.10 (452 for too many recipients); RFC 1870 (SIZE,
 * 552 5.3.4), RFC 6152 (8BITMIME), RFC 6531 3.4-3.5 (SMTPUTF8, 553 5.6.7),
 * RFC 2034 / 3463 (enhanced codes), RFC 3207 (STARTTLS), RFC 4954 4-6
 * (AUTH, AUTH= parameter), RFC 3030 (BDAT).
 *
 * Handlers run after the table's gates (command_table.c) and answer every
 * command with exactly one reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/command_table.h"

/* ---- HELO / EHLO -------------------------------------------------------- */

/* RFC 5321 4.1.1.1 wants a domain or address literal; RFC 5321 4.1.4 says
 * not to refuse a session over a name that does not match, and real clients
 * send names such as "my_pc". We take one word of visible ASCII. */
static int helo_arg_ok(const sk_command *cmd)
{
    for (size_t i = 0; i < cmd->arg_len; i++) {
        unsigned char c = (unsigned char)cmd->arg[i];
        if (c < 33 || c > 126)
            return 0;
    }
    return cmd->arg_len > 0 && cmd->arg_len <= 255;
}

static int set_helo(sk_session *s, const sk_command *cmd, int esmtp)
{
    if (!helo_arg_ok(cmd)) {
        sk_sess_reject(s, 501, "5.5.4", "Syntax: %s hostname (one word, at most 255 octets)",
                       esmtp ? "EHLO" : "HELO");
        return -1;
    }
    char *name = strndup(cmd->arg, cmd->arg_len);
    if (!name) {
        sk_sess_reply(s, 451, "4.3.0", "Error: out of memory");
        return -1;
    }
    sk_sess_tx_reset(s, "helo"); /* RFC 5321 4.1.4: HELO/EHLO resets the transaction */
    free(s->helo);
    s->helo = name;
    s->esmtp = esmtp;
    sk_sess_sync_info(s);
    char clean[128];
    sk_sess_log(s, "event=helo verb=%s helo=%s", esmtp ? "EHLO" : "HELO",
                sk_text_token(name, clean, sizeof clean));
    return 0;
}

void sk_cmd_helo(sk_session *s, const sk_command *cmd)
{
    if (set_helo(s, cmd, 0) == 0)
        sk_sess_policy_gate(s, SK_POLICY_HELO, s->helo, 250, NULL, s->cfg->hostname);
}

static unsigned auth_mechanisms(const sk_session *s);

void sk_cmd_ehlo(sk_session *s, const sk_command *cmd)
{
    if (set_helo(s, cmd, 1) < 0)
        return;
    char text[512];
    sk_buf b;
    sk_buf_init(&b, sizeof text);
    sk_buf_printf(&b,
                  "%s\nPIPELINING\nSIZE %zu\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\n"
                  "CHUNKING\nHELP",
                  s->cfg->hostname, s->cfg->max_message_size);
    if (sk_cmd_starttls_available(s) && !s->tls)
        sk_buf_append_str(&b, "\nSTARTTLS");
    unsigned mechs = auth_mechanisms(s);
    if (sk_cmd_auth_available(s) && (s->tls || !s->cfg->auth_requires_tls) && mechs) {
        sk_buf_append_str(&b, "\nAUTH");
        if (mechs & (1u << SK_SASL_PLAIN))
            sk_buf_append_str(&b, " PLAIN");
        if (mechs & (1u << SK_SASL_LOGIN))
            sk_buf_append_str(&b, " LOGIN");
    }
    sk_sess_policy_gate(s, SK_POLICY_HELO, s->helo, 250, NULL, b.data ? b.data : "");
    sk_buf_free(&b);
}

/* ---- MAIL --------------------------------------------------------------- */

/* SIZE=1*20DIGIT (RFC 1870 3). Returns 0 and *v, 1 when it overflows (so it
 * is certainly too big), or -1 when it is not a number. */
static int parse_size(const char *p, size_t n, unsigned long long *v)
{
    if (n == 0 || n > 20)
        return n > 20 ? 1 : -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (x > (~0ULL - d) / 10)
            return 1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static const char *addr_text(const sk_address *a)
{
    return a->null_path ? "" : a->mailbox;
}

void sk_cmd_mail(sk_session *s, const sk_command *cmd)
{
    if (s->cfg->mail_requires_auth && !s->auth_user) {
        sk_sess_reject(s, 530, "5.7.0", "Authentication required");
        return;
    }
    if (s->in_tx) {
        sk_sess_reject(s, 503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    sk_path_command pc;
    const char *err = NULL;
    /* UTF-8 is allowed by the parser here and checked against the SMTPUTF8
     * parameter below, which follows the address on the line. */
    sk_path_cmd_status st = sk_command_parse_path(
        cmd->arg, cmd->arg_len, "FROM:", SK_ADDR_ALLOW_NULL | SK_ADDR_UTF8, &pc, &err);
    switch (st) {
    case SK_PATHCMD_OK:
        sk_sess_set_cmd_addr(s, addr_text(&pc.path));
        break;
    case SK_PATHCMD_E_SYNTAX:
        sk_sess_reject(s, 501, "5.5.4", "Syntax: MAIL FROM:<address> (%s)", err);
        return;
    case SK_PATHCMD_E_ADDRESS:
        sk_sess_reject(s, 501, "5.1.7", "Bad sender address syntax: %s", err);
        return;
    case SK_PATHCMD_E_NEEDS_UTF8:
        sk_sess_reject(s, 553, "5.6.7", "Non-ASCII sender address not permitted without SMTPUTF8");
        return;
    case SK_PATHCMD_E_PARAM:
        sk_sess_reject(s, 501, "5.5.4", "Syntax error in parameters: %s", err);
        return;
    }
    unsigned long long size = 0;
    int body_8bit = 0, smtputf8 = 0, seen_size = 0, seen_body = 0, seen_auth = 0;
    for (size_t i = 0; i < pc.nparams; i++) {
        const sk_esmtp_param *p = &pc.params[i];
        if (sk_esmtp_param_is(p, "SIZE")) {
            int r = p->value ? parse_size(p->value, p->value_len, &size) : -1;
            if (seen_size++ || r < 0) {
                sk_sess_reject(s, 501, "5.5.4", "Syntax: SIZE=<octets> (once)");
                return;
            }
            if (r > 0 || size > s->cfg->max_message_size) {
                sk_sess_reject(s, 552, "5.3.4",
                               "Message size exceeds fixed maximum message size (%zu octets)",
                               s->cfg->max_message_size);
                return;
            }
        } else if (sk_esmtp_param_is(p, "BODY")) {
            if (seen_body++ || !p->value) {
                sk_sess_reject(s, 501, "5.5.4", "Syntax: BODY=7BIT|8BITMIME (once)");
                return;
            }
            if (p->value_len == 4 && strncasecmp(p->value, "7BIT", 4) == 0) {
                body_8bit = 0;
            } else if (p->value_len == 8 && strncasecmp(p->value, "8BITMIME", 8) == 0) {
                body_8bit = 1;
            } else if (p->value_len == 10 && strncasecmp(p->value, "BINARYMIME", 10) == 0) {
                sk_sess_reject(s, 555, "5.5.4", "BODY=BINARYMIME is not supported");
                return;
            } else {
                sk_sess_reject(s, 501, "5.5.4", "Unknown BODY type (use 7BIT or 8BITMIME)");
                return;
            }
        } else if (sk_esmtp_param_is(p, "SMTPUTF8")) {
            if (smtputf8++ || p->value) {
                sk_sess_reject(s, 501, "5.5.4", "Syntax: SMTPUTF8 takes no value");
                return;
            }
        } else if (sk_esmtp_param_is(p, "AUTH")) {
            /* RFC 4954 5: AUTH=<> or xtext; recorded in the log only */
            if (seen_auth++ || !p->value ||
                !((p->value_len == 2 && memcmp(p->value, "<>", 2) == 0) ||
                  sk_xtext_valid(p->value, p->value_len))) {
                sk_sess_reject(s, 501, "5.5.4", "Syntax: AUTH=<> or AUTH=xtext");
                return;
            }
        } else {
            /* RFC 5321 4.1.1.11: a parameter not offered: 555 (this covers
             * the DSN parameters RET and ENVID, which are not offered) */
            sk_sess_reject(s, 555, "5.5.4", "Unsupported MAIL parameter %.*s",
                           (int)(p->key_len > 32 ? 32 : p->key_len), p->key);
            return;
        }
    }
    if (pc.path.utf8 && !smtputf8) {
        sk_sess_reject(s, 553, "5.6.7", "Non-ASCII sender address not permitted without SMTPUTF8");
        return;
    }
    /* RFC 6409 6.1: the shell may hold the sender to the login */
    if (s->ops->mail_check && !s->ops->mail_check(s->ctx, &s->info, addr_text(&pc.path))) {
        sk_sess_reject(s, 553, "5.7.1",
                       "Sender address rejected: not owned by the authenticated user");
        return;
    }
    char *from = strdup(addr_text(&pc.path));
    if (!from) {
        sk_sess_reply(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    sk_sess_tx_reset(s, NULL); /* no transaction here (in_tx is 0) */
    s->tx.mail_from = from;
    s->tx.size = size;
    s->tx.body_8bit = body_8bit;
    s->tx.smtputf8 = smtputf8;
    s->in_tx = 1; /* logged once, when the transaction ends (log_tx) */
    sk_sess_policy_gate(s, SK_POLICY_MAIL, s->tx.mail_from, 250, "2.1.0", "Ok");
}

/* ---- RCPT --------------------------------------------------------------- */

void sk_cmd_rcpt(sk_session *s, const sk_command *cmd)
{
    if (!s->in_tx) {
        sk_sess_reject(s, 503, "5.5.1", "Error: need MAIL before RCPT");
        return;
    }
    sk_path_command pc;
    const char *err = NULL;
    unsigned flags = SK_ADDR_POSTMASTER | (s->tx.smtputf8 ? SK_ADDR_UTF8 : 0);
    sk_path_cmd_status st = sk_command_parse_path(cmd->arg, cmd->arg_len, "TO:", flags, &pc, &err);
    switch (st) {
    case SK_PATHCMD_OK:
        sk_sess_set_cmd_addr(s, pc.path.mailbox);
        break;
    case SK_PATHCMD_E_SYNTAX:
        sk_sess_reject(s, 501, "5.5.4", "Syntax: RCPT TO:<address> (%s)", err);
        return;
    case SK_PATHCMD_E_ADDRESS:
        sk_sess_reject(s, 501, "5.1.3", "Bad recipient address syntax: %s", err);
        return;
    case SK_PATHCMD_E_NEEDS_UTF8:
        sk_sess_reject(s, 553, "5.6.7",
                       "Non-ASCII recipient address not permitted without SMTPUTF8");
        return;
    case SK_PATHCMD_E_PARAM:
        sk_sess_reject(s, 501, "5.5.4", "Syntax error in parameters: %s", err);
        return;
    }
    if (pc.nparams) {
        /* no RCPT parameter is offered (DSN's NOTIFY/ORCPT included) */
        sk_sess_reject(s, 555, "5.5.4", "Unsupported RCPT parameter %.*s",
                       (int)(pc.params[0].key_len > 32 ? 32 : pc.params[0].key_len),
                       pc.params[0].key);
        return;
    }
    const char *addr = pc.path.mailbox;
    char shown[300];
    sk_sess_printable(addr, shown, sizeof shown);
    if (s->tx.nrcpts >= s->cfg->max_recipients) {
        /* RFC 5321 4.5.3.1.10: 452, so the client sends the rest later */
        sk_sess_refuse_temp(s, 452, "4.5.3", "Error: too many recipients");
        return;
    }
    void *dest = NULL;
    const char *fwd = NULL;
    sk_rcpt_verdict v = SK_RCPT_ACCEPT;
    if (s->ops->rcpt_check)
        v = s->ops->rcpt_check(s->ctx, &s->info, addr, &dest, &fwd);
    switch (v) {
    case SK_RCPT_ACCEPT:
    case SK_RCPT_FORWARD: {
        sk_rcpt *grown = realloc(s->tx.rcpts, (s->tx.nrcpts + 1) * sizeof *grown);
        char *copy = strdup(addr);
        if (!grown || !copy) {
            free(copy);
            if (grown)
                s->tx.rcpts = grown;
            if (dest && s->ops->dest_free)
                s->ops->dest_free(s->ctx, dest);
            sk_sess_reply(s, 451, "4.3.0", "Error: out of memory");
            return;
        }
        s->tx.rcpts = grown;
        s->tx.rcpts[s->tx.nrcpts].addr = copy;
        s->tx.rcpts[s->tx.nrcpts].dest = dest;
        s->tx.nrcpts++;
        /* accepted recipients are logged with the transaction (log_tx) */
        if (v == SK_RCPT_FORWARD && fwd) {
            char cfwd[300], text[360];
            snprintf(text, sizeof text, "User not local; will forward to <%s>",
                     sk_sess_printable(fwd, cfwd, sizeof cfwd));
            sk_sess_policy_gate(s, SK_POLICY_RCPT, copy, 251, "2.1.5", text);
        } else {
            sk_sess_policy_gate(s, SK_POLICY_RCPT, copy, 250, "2.1.5", "Ok");
        }
        return;
    }
    default:
        break;
    }
    if (dest && s->ops->dest_free)
        s->ops->dest_free(s->ctx, dest);
    s->refused_rcpts++;
    switch (v) {
    case SK_RCPT_UNKNOWN:
        sk_sess_reject(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown", shown);
        break;
    case SK_RCPT_RELAY_DENIED:
        sk_sess_reject(s, 550, "5.7.1", "<%s>: Relay access denied", shown);
        break;
    case SK_RCPT_DISABLED:
        sk_sess_reject(s, 550, "5.2.1", "<%s>: Mailbox disabled", shown);
        break;
    default: /* SK_RCPT_TEMPFAIL and anything unknown */
        sk_sess_refuse_temp(s, 451, "4.3.0", "<%s>: Temporary lookup failure, try again later",
                            shown);
        break;
    }
}

/* ---- DATA / BDAT -------------------------------------------------------- */

/* The state checks DATA and BDAT share. Fills r and returns -1 when the
 * command must be refused. */
static int message_gate(sk_session *s, int is_bdat, sk_pending_reply *r)
{
    const char *verb = is_bdat ? "BDAT" : "DATA";
    r->code = 0;
    if (!s->helo) {
        r->code = 503, r->enhanced = "5.5.1";
        snprintf(r->text, sizeof r->text, "Error: send HELO/EHLO first");
    } else if (!s->in_tx) {
        r->code = 503, r->enhanced = "5.5.1";
        snprintf(r->text, sizeof r->text, "Error: need MAIL before %s", verb);
    } else if (!is_bdat && s->tx_bdat) {
        r->code = 503, r->enhanced = "5.5.1";
        snprintf(r->text, sizeof r->text, "Error: DATA not allowed in a BDAT transaction");
    } else if (s->tx.nrcpts == 0 && s->refused_rcpts) {
        /* RFC 5321 3.3: 554 "no valid recipients" */
        r->code = 554, r->enhanced = "5.5.1";
        snprintf(r->text, sizeof r->text, "Error: no valid recipients");
    } else if (s->tx.nrcpts == 0) {
        r->code = 503, r->enhanced = "5.5.1";
        snprintf(r->text, sizeof r->text, "Error: need RCPT before %s", verb);
    }
    return r->code ? -1 : 0;
}

/* The store could not open a message. BDAT may answer 452; DATA, before
 * its 354, only 451 (RFC 5321 4.3.2 lists 452 only after the data), so a
 * full disk there is "451 4.3.1". */
static void store_failure_reply(sk_pending_reply *r, sk_store_result res, int is_bdat)
{
    if (res == SK_STORE_NOSPACE) {
        r->code = is_bdat ? 452 : 451, r->enhanced = "4.3.1";
        snprintf(r->text, sizeof r->text, "Error: insufficient system storage");
    } else {
        r->code = 451, r->enhanced = "4.3.0";
        snprintf(r->text, sizeof r->text, "Error: local error in processing");
    }
}

void sk_cmd_data(sk_session *s, const sk_command *cmd)
{
    (void)cmd;
    sk_pending_reply r;
    if (message_gate(s, 0, &r) < 0) {
        sk_sess_reject(s, r.code, r.enhanced, "%s", r.text);
        return;
    }
    sk_store_result res = sk_sess_data_open(s);
    if (res != SK_STORE_OK) {
        store_failure_reply(&r, res, 0);
        sk_sess_refuse_temp(s, r.code, r.enhanced, "%s", r.text);
        return;
    }
    sk_data_framer_init(&s->framer, SK_FRAMER_DOTS, sk_sess_data_sink, s);
    s->mode = SK_MODE_DATA;
    s->wants |= SK_IN_DATA;
    sk_sess_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

/* chunk-size = 1*DIGIT (any length); a size beyond 64 bits saturates:
 * it is too big either way, and its chunk must still be consumed, never
 * read as commands (RFC 3030 2). */
static int parse_chunk_size(const char *p, size_t n, unsigned long long *v)
{
    if (n == 0)
        return -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        x = x > (~0ULL - d) / 10 ? ~0ULL : x * 10 + d;
    }
    *v = x;
    return 0;
}

/* chunk-size = 1*DIGIT; end-marker = "LAST" (RFC 3030 2). */
static int parse_bdat(const sk_command *cmd, unsigned long long *size, int *last)
{
    const char *p = cmd->arg;
    size_t n = cmd->arg_len, i = 0;
    while (i < n && p[i] != ' ')
        i++;
    if (parse_chunk_size(p, i, size) != 0)
        return -1;
    while (i < n && p[i] == ' ')
        i++;
    *last = 0;
    if (i == n)
        return 0;
    if (n - i == 4 && strncasecmp(p + i, "LAST", 4) == 0) {
        *last = 1;
        return 0;
    }
    return -1;
}

void sk_cmd_bdat(sk_session *s, const sk_command *cmd)
{
    unsigned long long size = 0;
    int last = 0;
    if (parse_bdat(cmd, &size, &last) < 0) {
        /* without a size the chunk cannot be skipped: the bytes that follow
         * will be read as commands */
        sk_sess_reject(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
        return;
    }
    s->bdat_size = size;
    s->bdat_left = size;
    s->bdat_last = last;
    s->bdat_reply.code = 0;
    sk_pending_reply r;
    if (message_gate(s, 1, &r) < 0) {
        /* RFC 3030 2: the chunk is read and discarded, then refused */
        s->bdat_reply = r;
    } else if (!s->tx_bdat) {
        sk_store_result res = sk_sess_data_open(s);
        if (res != SK_STORE_OK) {
            store_failure_reply(&s->bdat_reply, res, 1);
        } else {
            s->tx_bdat = 1;
            sk_data_framer_init(&s->framer, SK_FRAMER_RAW, sk_sess_data_sink, s);
        }
    }
    if (!s->bdat_reply.code && !s->data_error &&
        (size > s->cfg->max_message_size || s->data_size > s->cfg->max_message_size - size))
        s->data_error = SK_DATA_TOO_BIG; /* known now; the chunk is still read */
    s->mode = SK_MODE_BDAT;
    s->wants |= SK_IN_DATA;
    if (size == 0)
        sk_sess_bdat_chunk_end(s);
}

/* ---- RSET, VRFY, EXPN, HELP, NOOP, QUIT --------------------------------- */

void sk_cmd_rset(sk_session *s, const sk_command *cmd)
{
    (void)cmd;
    sk_sess_tx_reset(s, "rset");
    sk_sess_reply(s, 250, "2.0.0", "Ok");
}

void sk_cmd_vrfy(sk_session *s, const sk_command *cmd)
{
    if (s->cfg->vrfy_discloses && s->ops->rcpt_check) {
        sk_address a;
        const char *err;
        const char *p = cmd->arg;
        size_t n = cmd->arg_len;
        if (n >= 2 && p[0] == '<' && p[n - 1] == '>')
            p++, n -= 2;
        if (sk_mailbox_parse(p, n, 0, &a, &err) == SK_ADDR_OK) {
            void *dest = NULL;
            const char *fwd = NULL;
            sk_rcpt_verdict v = s->ops->rcpt_check(s->ctx, &s->info, a.mailbox, &dest, &fwd);
            if (dest && s->ops->dest_free)
                s->ops->dest_free(s->ctx, dest);
            if (v == SK_RCPT_ACCEPT) {
                sk_sess_reply(s, 250, "2.1.5", "<%s>", a.mailbox);
                return;
            }
            if (v == SK_RCPT_UNKNOWN) {
                sk_sess_reject(s, 550, "5.1.1", "<%s>: User unknown", a.mailbox);
                return;
            }
        }
    }
    /* RFC 5321 3.5.3: 252 is the normal answer of a server that does not
     * disclose its users */
    sk_sess_reply(s, 252, "2.5.0",
                  "Cannot VRFY user, but will accept message and attempt delivery");
}

int sk_cmd_expn_available(const sk_session *s)
{
    return s->cfg->expn_enabled;
}

void sk_cmd_expn(sk_session *s, const sk_command *cmd)
{
    (void)cmd;
    /* smtpkit has no mailing lists to expand (RFC 5321 3.5.3: 252) */
    sk_sess_reply(s, 252, "2.5.0", "Cannot EXPN, but will accept message and attempt delivery");
}

void sk_cmd_help(sk_session *s, const sk_command *cmd)
{
    if (cmd->arg_len) {
        size_t n = 0;
        while (n < cmd->arg_len && cmd->arg[n] != ' ')
            n++;
        const sk_cmd_entry *e = sk_cmd_lookup(sk_verb_lookup(cmd->arg, n));
        if (!e) {
            sk_sess_reply(s, 504, "5.5.4", "HELP topic unknown; try HELP");
            return;
        }
        sk_sess_reply(s, 214, "2.0.0", "Syntax: %s", e->usage);
        return;
    }
    sk_sess_reply(s, 214, "2.0.0",
                  "smtpkit commands:\n"
                  "  HELO EHLO MAIL RCPT DATA BDAT RSET\n"
                  "  VRFY EXPN HELP NOOP QUIT STARTTLS AUTH\n"
                  "HELP <command> shows its syntax. See RFC 5321.\n"
                  "End of HELP info");
}

void sk_cmd_noop(sk_session *s, const sk_command *cmd)
{
    (void)cmd; /* RFC 5321 4.1.1.9: an argument is allowed and ignored */
    sk_sess_reply(s, 250, "2.0.0", "Ok");
}

void sk_cmd_quit(sk_session *s, const sk_command *cmd)
{
    (void)cmd;
    sk_sess_tx_reset(s, "quit");
    sk_sess_reply(s, 221, "2.0.0", "%s closing connection", s->cfg->hostname);
    s->close_reason = "quit";
    s->wants |= SK_WANT_CLOSE;
    s->mode = SK_MODE_DEAD;
}

/* ---- STARTTLS ----------------------------------------------------------- */

int sk_cmd_starttls_available(const sk_session *s)
{
    /* under TLS the command is known but refused with 503 */
    return s->cfg->starttls_offered || s->tls;
}

void sk_cmd_starttls(sk_session *s, const sk_command *cmd)
{
    (void)cmd;
    if (s->tls) {
        sk_sess_reject(s, 503, "5.5.1", "Error: TLS already active");
        return;
    }
    if (s->ops->tls_available && !s->ops->tls_available(s->ctx)) {
        sk_sess_log(s, "event=starttls result=454");
        sk_sess_reply(s, 454, "4.7.0", "TLS not available due to temporary reason");
        return;
    }
    sk_sess_reply(s, 220, "2.0.0", "Ready to start TLS");
    sk_sess_log(s, "event=starttls result=220");
    /* CVE-2011-0411: the feed stops right after this line; whatever the
     * client pipelined behind it is discarded by the shell */
    s->wants |= SK_WANT_TLS;
}

/* ---- AUTH --------------------------------------------------------------- */

/* The mechanisms the shell's backend offers now (PLAIN and LOGIN unless it
 * says otherwise). */
static unsigned auth_mechanisms(const sk_session *s)
{
    unsigned all = (1u << SK_SASL_PLAIN) | (1u << SK_SASL_LOGIN);
    return s->ops->auth_mechanisms ? s->ops->auth_mechanisms(s->ctx) & all : all;
}

int sk_cmd_auth_available(const sk_session *s)
{
    return s->cfg->auth_offered && s->ops->auth_check;
}

void sk_cmd_auth(sk_session *s, const sk_command *cmd)
{
    if (s->auth_user) { /* RFC 4954 4 */
        sk_sess_reject(s, 503, "5.5.1", "Error: already authenticated");
        return;
    }
    const char *p = cmd->arg;
    size_t n = cmd->arg_len, m = 0;
    while (m < n && p[m] != ' ')
        m++;
    const char *init = NULL;
    size_t init_len = 0;
    if (m < n) {
        size_t j = m;
        while (j < n && p[j] == ' ')
            j++;
        init = p + j;
        init_len = n - j;
        if (memchr(init, ' ', init_len)) {
            sk_sess_reject(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
            return;
        }
    }
    sk_sasl_mech mech = sk_sasl_mech_lookup(p, m);
    if (mech == SK_SASL_NONE || !(auth_mechanisms(s) & (1u << mech))) {
        sk_sess_reject(s, 504, "5.5.4", "Unrecognized authentication type (use PLAIN or LOGIN)");
        return;
    }
    if (s->cfg->auth_requires_tls && !s->tls) {
        /* RFC 4954 6: PLAIN and LOGIN send the password in clear */
        sk_sess_reject(s, 538, "5.7.11",
                       "Encryption required for requested authentication "
                       "mechanism");
        return;
    }
    const char *challenge = NULL;
    sk_sasl_status st = sk_sasl_start(&s->sasl, mech, init, init_len, &challenge);
    sk_sess_auth_result(s, st, challenge);
}
