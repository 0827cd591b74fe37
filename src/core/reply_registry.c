/*
 * reply_registry.c - the one table of basic SMTP reply codes, keyed by
 * (context, code), with meaning, status, defining RFC, the commands that may
 * return each code and what a sender should do.
 *
 * Sources: RFC 5321 4.2.2/4.2.3 (codes), 4.3.2 (command-reply sequences),
 * 3.5.3 (252 for VRFY/EXPN), 4.5.3.1.10 (452 for too many recipients);
 * RFC 1985 (ETRN), RFC 2645 (ATRN), RFC 3030 (BDAT), RFC 3207 (STARTTLS),
 * RFC 4954 (AUTH), RFC 7504 (521, 556), RFC 1845 (355), RFC 2034/3463
 * (the enhanced code that goes with each reply).
 *
 * Every code in the widely copied reply-code tables (the project's seed
 * documents) is here. Where such a table disagrees with the RFCs, the RFC
 * meaning is used and status_note records what the table claims.
 */
#include "smtpkit/registry.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define STD SK_CODE_STANDARD
#define OBS SK_CODE_OBSOLETE
#define NONSTD SK_CODE_NONSTANDARD

#define DONE SK_ADVICE_DONE
#define CONT SK_ADVICE_CONTINUE
#define RETRY SK_ADVICE_RETRY
#define FIX SK_ADVICE_FIX
#define GIVEUP SK_ADVICE_GIVE_UP

/* Order: by code, then the base row (context NULL), then contexts A-Z. */
static const sk_code_entry table[] = {
    {200, NULL, NULL, "OK",
     "Success, as some early implementations answered NOOP and RSET instead of 250. Treat it "
     "as 250.",
     NONSTD,
     "Common reply-code tables call it a \"nonstandard success response, see rfc876\". Neither RFC "
     "821 nor RFC 5321 defines "
     "200; RFC 876 (1983) surveyed implementations that sent it.",
     "RFC 876 (survey; not defined by RFC 821 or RFC 5321)", "RSET NOOP", DONE},

    {211, NULL, "2.0.0", "System status, or system help reply",
     "Status of the server, or a short help overview, in reply to HELP.", STD, NULL,
     "RFC 5321 4.2.2, 4.3.2", "HELP", DONE},

    {214, NULL, "2.0.0", "Help message",
     "Help text for a human: how to use the server or what a non-standard command does.", STD, NULL,
     "RFC 5321 4.2.2, 4.3.2", "HELP", DONE},

    {220, NULL, NULL, "Service ready",
     "The greeting: the server is ready and waits for EHLO or HELO. The greeting carries no "
     "enhanced status code (RFC 2034).",
     STD, NULL, "RFC 5321 4.2.2, 4.3.2", "CONNECT", DONE},
    {220, "STARTTLS", "2.0.0", "Ready to start TLS",
     "STARTTLS accepted: the client starts the TLS handshake at once, then sends EHLO again; "
     "everything said before is forgotten.",
     STD, NULL, "RFC 3207 4", "STARTTLS", DONE},

    {221, NULL, "2.0.0", "Service closing transmission channel",
     "Goodbye: the server closes the connection, normally in reply to QUIT.", STD, NULL,
     "RFC 5321 4.2.2, 4.3.2", "QUIT", DONE},

    {235, "AUTH", "2.7.0", "Authentication successful",
     "AUTH succeeded: the session is authenticated from now on.", STD, NULL, "RFC 4954 6", "AUTH",
     DONE},

    {250, NULL, "2.0.0", "Requested mail action okay, completed",
     "The command succeeded: after MAIL the sender is accepted, after RCPT the recipient; "
     "after the final dot of DATA (or BDAT LAST) the server has taken responsibility for "
     "the message.",
     STD, NULL, "RFC 5321 4.2.2, 4.3.2",
     "HELO EHLO MAIL RCPT DATA-END RSET VRFY EXPN NOOP SEND SOML SAML TURN", DONE},
    {250, "ATRN", "2.0.0", "OK, now reversing the connection",
     "ATRN accepted: client and server swap roles on this connection and the server delivers "
     "the mail queued for the client's domains.",
     STD, NULL, "RFC 2645", "ATRN", DONE},
    {250, "BDAT", "2.0.0", "Message chunk received",
     "The BDAT chunk was received; after BDAT ... LAST the whole message was accepted.", STD, NULL,
     "RFC 3030 2", "BDAT", DONE},
    {250, "ETRN", "2.0.0", "OK, queuing for node <x> started",
     "ETRN accepted: the server starts delivering the mail queued for the named node.", STD, NULL,
     "RFC 1985", "ETRN", DONE},

    {251, NULL, "2.1.5", "User not local; will forward to <forward-path>",
     "The recipient is not local, but the server accepts the message and will forward it.", STD,
     NULL, "RFC 5321 3.4, 4.2.2, 4.3.2", "RCPT VRFY", DONE},
    {251, "ETRN", "2.0.0", "OK, no messages waiting for node <x>",
     "ETRN accepted, but nothing is queued for the named node.", STD, NULL, "RFC 1985", "ETRN",
     DONE},

    {252, NULL, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery",
     "The server will not confirm or deny the address (usually on purpose, against address "
     "harvesting) but will take mail for it. This is the normal answer to VRFY and EXPN.",
     STD, NULL, "RFC 5321 3.5.3, 4.2.2, 4.3.2", "VRFY EXPN", DONE},
    {252, "ETRN", "2.0.0", "OK, pending messages for node <x> started",
     "ETRN accepted: delivery of the messages pending for the named node has started.", STD, NULL,
     "RFC 1985", "ETRN", DONE},

    {253, "ETRN", "2.0.0", "OK, <n> pending messages for node <x> started",
     "ETRN accepted: delivery of the given number of pending messages has started.", STD, NULL,
     "RFC 1985", "ETRN", DONE},

    {334, "AUTH", NULL, "",
     "A SASL challenge during AUTH, base64-encoded (may be empty). The client answers with "
     "one base64 line, or '*' to cancel.",
     STD, NULL, "RFC 4954 4", "AUTH", CONT},

    {354, NULL, NULL, "Start mail input; end with <CRLF>.<CRLF>",
     "DATA accepted: send the message, then a line holding only a dot. The final reply comes "
     "after the dot.",
     STD, NULL, "RFC 5321 4.2.2, 4.3.2", "DATA", CONT},

    {355, NULL, NULL, "<octet-offset> is the transaction offset",
     "Checkpoint/restart: in place of 354, the server says it already holds this "
     "transaction's message up to the given offset; the client sends the data from there.",
     OBS,
     "From the experimental checkpoint/restart extension (RFC 1845), which saw no wide "
     "use.",
     "RFC 1845", "DATA", CONT},

    {421, NULL, "4.3.2", "Service not available, closing transmission channel",
     "The server cannot serve now (shutting down, overloaded, too many connections, timeout) "
     "and closes the connection. It may answer any command, or replace the greeting.",
     STD, NULL, "RFC 5321 3.8, 4.2.2, 4.3.2", "CONNECT DATA-END ANY", RETRY},

    {432, "AUTH", "4.7.12", "A password transition is needed",
     "The user must move to the chosen AUTH mechanism, usually by authenticating once with "
     "PLAIN over TLS; then this mechanism works.",
     STD, NULL, "RFC 4954 6", "AUTH", FIX},

    {450, NULL, "4.2.0", "Requested mail action not taken: mailbox unavailable",
     "The mailbox is temporarily unavailable: busy, or blocked for now for policy reasons "
     "(greylisting usually answers 450).",
     STD, NULL, "RFC 5321 4.2.2, 4.3.2", "RCPT DATA-END", RETRY},
    {450, "ATRN", "4.0.0", "ATRN request refused",
     "The server refuses ATRN for now; try again later.", STD, NULL, "RFC 2645", "ATRN", RETRY},

    {451, NULL, "4.3.0", "Requested action aborted: local error in processing",
     "The server hit an internal problem (disk, database, lookup); not the client's fault.", STD,
     NULL, "RFC 5321 4.2.2, 4.3.2", "MAIL RCPT DATA DATA-END BDAT SEND SOML SAML", RETRY},
    {451, "ATRN", "4.3.0", "Unable to process ATRN request now",
     "The server cannot process ATRN at the moment.", STD, NULL, "RFC 2645", "ATRN", RETRY},

    {452, NULL, "4.3.1", "Requested action not taken: insufficient system storage",
     "The server is short of storage. It is also the reply when a transaction reaches its "
     "recipient limit (then with 4.5.3): send the rest in another transaction.",
     STD, NULL, "RFC 5321 4.2.2, 4.3.2, 4.5.3.1.10", "MAIL RCPT DATA-END BDAT SEND SOML SAML",
     RETRY},

    {453, "ATRN", "4.0.0", "You have no mail", "ATRN: nothing is queued for the client's domains.",
     STD, NULL, "RFC 2645", "ATRN", RETRY},

    {454, "AUTH", "4.7.0", "Temporary authentication failure",
     "AUTH could not be completed because of a temporary server problem (e.g. the password "
     "database is unreachable).",
     STD,
     "Common reply-code tables also list \"Encryption required for requested authentication "
     "mechanism\" under "
     "454; RFC 4954 gives that meaning to 538 (5.7.11).",
     "RFC 4954 6", "AUTH", RETRY},
    {454, "STARTTLS", "4.7.0", "TLS not available due to temporary reason",
     "STARTTLS cannot be done now (e.g. no certificate loaded); the session goes on without "
     "TLS.",
     STD, NULL, "RFC 3207 4", "STARTTLS", RETRY},

    {455, NULL, "4.3.3", "Server unable to accommodate parameters",
     "The server cannot handle the MAIL or RCPT parameters now, though they may work later.", STD,
     NULL, "RFC 5321 4.2.3, 4.3.2", "MAIL RCPT", RETRY},

    {458, "ETRN", "4.3.0", "Unable to queue messages for node <x>",
     "ETRN: the server cannot start the queue for the named node now.", STD, NULL, "RFC 1985",
     "ETRN", RETRY},

    {459, "ETRN", "4.7.0", "Node <x> not allowed: <reason>",
     "ETRN: the server will not run the queue for this node; the text says why. Repeating "
     "will not help unless the node or the server's policy changes.",
     STD, NULL, "RFC 1985", "ETRN", FIX},

    {500, NULL, "5.5.2", "Syntax error, command unrecognized",
     "The server did not recognise the command, or the command line was too long.", STD, NULL,
     "RFC 5321 4.2.2, 4.2.4, 4.3.2", "ANY", FIX},
    {500, "AUTH", "5.5.6", "Authentication exchange line is too long",
     "An AUTH response line was longer than the server accepts for this mechanism.", STD, NULL,
     "RFC 4954 4, 6", "AUTH", FIX},

    {501, NULL, "5.5.4", "Syntax error in parameters or arguments",
     "The command is known but its arguments are malformed (e.g. a bad address in MAIL "
     "FROM).",
     STD,
     "Common reply-code tables give \"Syntax error, no parameters allowed\", which is the STARTTLS "
     "meaning "
     "(RFC 3207).",
     "RFC 5321 4.2.2, 4.3.2", "ANY", FIX},
    {501, "AUTH", "5.5.2", "Cannot decode response",
     "AUTH failed: the client cancelled the exchange with '*', or sent a response that is not "
     "valid base64.",
     STD, NULL, "RFC 4954 4", "AUTH", FIX},
    {501, "STARTTLS", "5.5.4", "Syntax error (no parameters allowed)",
     "STARTTLS takes no parameters.", STD, NULL, "RFC 3207 4", "STARTTLS", FIX},

    {502, NULL, "5.5.1", "Command not implemented",
     "The server knows the command but does not implement it (or has it disabled, like EXPN "
     "often is). Do not send it again to this server.",
     STD,
     "A common reply-code table lists \"550 Not implemented\" for EHLO; RFC 5321 4.3.2 says an old "
     "server that "
     "lacks EHLO answers 502.",
     "RFC 5321 4.2.2, 4.2.4, 4.3.2",
     "HELO EHLO VRFY EXPN HELP SEND SOML SAML TURN ETRN ATRN AUTH STARTTLS BDAT", FIX},

    {503, NULL, "5.5.1", "Bad sequence of commands",
     "The command came in the wrong order (e.g. RCPT before MAIL, DATA without recipients). "
     "NOOP, HELP, EXPN, VRFY and RSET never get it (RFC 5321 4.1.4).",
     STD,
     "RFC 3207 names no code for STARTTLS out of sequence (before EHLO, inside a transaction, "
     "or with TLS already active); 503 is the RFC 5321 reply for a bad sequence.",
     "RFC 5321 4.2.2, 4.3.2", "MAIL RCPT DATA BDAT TURN STARTTLS", FIX},
    {503, "AUTH", "5.5.1", "Bad sequence of commands",
     "AUTH is not allowed now: the session is already authenticated, or a mail transaction "
     "is in progress.",
     STD, NULL, "RFC 4954 4", "AUTH", FIX},

    {504, NULL, "5.5.4", "Command parameter not implemented",
     "The command is known but this parameter is not implemented.", STD, NULL,
     "RFC 5321 4.2.2, 4.3.2", "HELO EHLO VRFY EXPN HELP RSET", FIX},
    {504, "AUTH", "5.5.4", "Unrecognized authentication type",
     "The requested SASL mechanism is not supported.", STD, NULL, "RFC 4954 4", "AUTH", FIX},

    {505, NULL, "5.7.0", "Authentication required",
     "A folk code for \"authenticate first\". Standard servers send 530 5.7.0.", NONSTD,
     "Common reply-code tables list \"505 Authentication required\". RFC 5321 does not define 505; "
     "RFC 4954 uses 530.",
     "none (folk usage; RFC 4954 6 defines 530 for this)", "MAIL RCPT", FIX},

    {521, NULL, "5.3.2", "Host does not accept mail",
     "This host never accepts mail; it may answer the connection or any command with 521.", STD,
     "Common reply-code tables cite RFC 1846 (experimental, 1995); RFC 7504 now defines 521 on the "
     "standards "
     "track.",
     "RFC 7504 3", "CONNECT ANY", GIVEUP},

    {530, "AUTH", "5.7.0", "Authentication required",
     "The server requires AUTH before this command (submission service).", STD,
     "Common reply-code tables also list \"Encryption required for requested authentication "
     "mechanism\" (538 "
     "in RFC 4954) and \"Access denied (a Sendmailism)\" under 530.",
     "RFC 4954 6", "ANY", FIX},
    {530, "STARTTLS", "5.7.0", "Must issue a STARTTLS command first",
     "The server requires TLS: every command other than NOOP, EHLO, STARTTLS and QUIT is "
     "refused until STARTTLS.",
     STD, NULL, "RFC 3207 4", "ANY", FIX},

    {534, "AUTH", "5.7.9", "Authentication mechanism is too weak",
     "The chosen AUTH mechanism is weaker than the server allows for this user; use a "
     "stronger one.",
     STD, NULL, "RFC 4954 6", "AUTH", FIX},

    {535, "AUTH", "5.7.8", "Authentication credentials invalid",
     "AUTH failed: wrong user name or password.", STD, NULL, "RFC 4954 6", "AUTH", FIX},

    {538, "AUTH", "5.7.11", "Encryption required for requested authentication mechanism",
     "This AUTH mechanism may only be used over an encrypted connection: STARTTLS first.", STD,
     NULL, "RFC 4954 6", "AUTH", FIX},

    {550, NULL, "5.1.1", "Requested action not taken: mailbox unavailable",
     "Refused for good: the mailbox does not exist, access is denied, or a policy rejects "
     "the command (relaying denied; content refused after the data).",
     STD,
     "A common reply-code table lists \"550 Not implemented\" for EHLO: 550 to EHLO is a refusal; "
     "\"not "
     "implemented\" is 502.",
     "RFC 5321 4.2.2, 4.3.2; RFC 3030 2", "HELO EHLO MAIL RCPT DATA-END BDAT VRFY EXPN", GIVEUP},

    {551, NULL, "5.1.6", "User not local; please try <forward-path>",
     "The recipient is not here; the text may name the address to use instead.", STD, NULL,
     "RFC 5321 3.4, 4.2.2, 4.3.2", "RCPT VRFY", FIX},

    {552, NULL, "5.3.4", "Requested mail action aborted: exceeded storage allocation",
     "The message is too big for the server or the mailbox is over its quota (then 5.2.2).", STD,
     "RFC 5321 4.5.3.1.10: a 552 for too many recipients is a historical error that clients "
     "treat as 452.",
     "RFC 5321 4.2.2, 4.3.2", "MAIL RCPT DATA-END BDAT SEND SOML SAML", GIVEUP},

    {553, NULL, "5.1.3", "Requested action not taken: mailbox name not allowed",
     "The address is not acceptable: bad syntax, or a sender the server will not accept.", STD,
     NULL, "RFC 5321 4.2.2, 4.3.2", "MAIL RCPT VRFY", FIX},

    {554, NULL, "5.0.0", "Transaction failed",
     "The transaction failed for good (e.g. no valid recipients, message refused; with 5.4.6 "
     "after the data, a mail loop: too many Received header fields, RFC 5321 6.3). As the "
     "first reply on a connection it means \"no SMTP service here\".",
     STD, NULL, "RFC 5321 4.2.2, 4.2.3, 4.3.2, 6.3", "CONNECT DATA DATA-END BDAT", GIVEUP},

    {555, NULL, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented",
     "A parameter on MAIL FROM or RCPT TO (e.g. SIZE=, BODY=) is unknown or not supported "
     "here.",
     STD, NULL, "RFC 5321 4.2.3, 4.3.2", "MAIL RCPT", FIX},

    {556, NULL, "5.1.10", "Domain does not accept mail",
     "The recipient's domain accepts no mail at all (e.g. it publishes a null MX, RFC 7505).", STD,
     NULL, "RFC 7504 4", "RCPT", GIVEUP},

    {571, NULL, "5.7.1", "Delivery not authorized, message refused",
     "A vendor code for a policy refusal: relaying denied without authentication, or the "
     "sender is blocklisted.",
     NONSTD,
     "Outside RFC 5321's grammar (second digit 7 > 5). Used by Microsoft Exchange/IIS SMTP "
     "and various spam filters; the standard reply is 550 5.7.1. Common tables: \"571 No external "
     "routing allowed, remote sending only allowed with authentication\".",
     "none (vendor code)", "RCPT DATA-END", GIVEUP},

    {572, NULL, NULL, "Bounces are blocked due to system abuse by spammers",
     "A vendor code refusing bounces (null sender) because of abuse.", NONSTD,
     "Outside RFC 5321's grammar (second digit 7 > 5); seen from some filtering vendors, "
     "with no published specification. The standard reply is 550 5.7.1. Common tables: \"572 "
     "Bounces are blocked due to system abuse by spammers\".",
     "none (vendor code)", "MAIL RCPT", GIVEUP},
};

#define NTABLE (sizeof table / sizeof table[0])

size_t sk_registry_size(void)
{
    return NTABLE;
}

const sk_code_entry *sk_registry_entry(size_t i)
{
    return i < NTABLE ? &table[i] : NULL;
}

size_t sk_registry_find(int code, const sk_code_entry **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < NTABLE; i++) {
        if (table[i].code != code)
            continue;
        if (out && n < max)
            out[n] = &table[i];
        n++;
    }
    return n;
}

/* 1 if the space-separated list `list` names `word` (case-insensitive). */
static int list_has(const char *list, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == wl && wl && !strncasecmp(p, word, wl))
            return 1;
        p = e;
    }
    return 0;
}

/* ANY stands for any command the client sends; the greeting (CONNECT) and
 * the reply after the final dot (DATA-END) are phases, listed by name. */
static int entry_allows(const sk_code_entry *e, const char *command)
{
    if (list_has(e->commands, command))
        return 1;
    return list_has(e->commands, "ANY") && strcasecmp(command, "CONNECT") != 0 &&
           strcasecmp(command, "DATA-END") != 0;
}

const sk_code_entry *sk_registry_lookup(int code, const char *context)
{
    const sk_code_entry *base = NULL, *first = NULL, *allowing = NULL;
    for (size_t i = 0; i < NTABLE; i++) {
        const sk_code_entry *e = &table[i];
        if (e->code != code)
            continue;
        if (!first)
            first = e;
        if (!e->context)
            base = e;
        else if (context && !strcasecmp(e->context, context))
            return e;
        if (context && !allowing && entry_allows(e, context))
            allowing = e;
    }
    if (base)
        return base;
    return allowing ? allowing : first;
}

int sk_registry_allows(int code, const char *command)
{
    if (!command)
        return 0;
    for (size_t i = 0; i < NTABLE; i++)
        if (table[i].code == code && entry_allows(&table[i], command))
            return 1;
    return 0;
}

const char *sk_advice_name(sk_advice a)
{
    switch (a) {
    case SK_ADVICE_DONE:
        return "done";
    case SK_ADVICE_CONTINUE:
        return "continue";
    case SK_ADVICE_RETRY:
        return "retry later";
    case SK_ADVICE_FIX:
        return "fix the request";
    case SK_ADVICE_GIVE_UP:
        return "give up";
    }
    return "?";
}

const char *sk_advice_meaning(sk_advice a)
{
    switch (a) {
    case SK_ADVICE_DONE:
        return "Nothing more to do for this step.";
    case SK_ADVICE_CONTINUE:
        return "Send the next part the server asked for.";
    case SK_ADVICE_RETRY:
        return "The condition is temporary: keep the message and try again later, unchanged.";
    case SK_ADVICE_FIX:
        return "Do not repeat the request as it is; a corrected one (other command, "
               "parameters, credentials or TLS) may succeed.";
    case SK_ADVICE_GIVE_UP:
        return "The failure is permanent: do not retry; report it to the sender.";
    }
    return "?";
}

const char *sk_code_status_name(sk_code_status s)
{
    switch (s) {
    case SK_CODE_STANDARD:
        return "standard";
    case SK_CODE_OBSOLETE:
        return "obsolete";
    case SK_CODE_NONSTANDARD:
        return "non-standard";
    }
    return "?";
}
