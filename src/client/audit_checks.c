/*
 * audit_checks.c - the checks of `smtpkit audit`, as data: name, RFC
 * section, severity, the rule in the RFC's words, the dialogue and the
 * replies allowed. The codes a step admits are the registry's codes for
 * the command (src/core/reply_registry.c), narrowed where the RFC names one;
 * the unit test checks every narrowing against the registry.
 *
 * Nothing here delivers mail unless the check needs --deliver-to: every
 * other transaction ends before DATA is accepted (the runner drops the
 * connection at once if a server answers 354 where no data is meant).
 *
 * RFC 5321 (2.3.8, 3.1-3.3, 3.6.2, 4.1.1.x, 4.1.4, 4.2, 4.3.2, 4.5.1,
 * 4.5.3.1), RFC 2034 4, RFC 1870, RFC 2920, RFC 3207 4, RFC 4954 4,
 * RFC 6152, RFC 6531, RFC 3461.
 */
#include <stddef.h>
#include <string.h>

#include "smtpkit/audit.h"

#define CMD(t, a)                                                                                  \
    {                                                                                              \
        SK_AOP_CMD, t, NULL, a, 0, NULL, 0                                                         \
    }
#define CMDC(t, c, a)                                                                              \
    {                                                                                              \
        SK_AOP_CMD, t, c, a, 0, NULL, 0                                                            \
    }
#define SETUP(t, a)                                                                                \
    {                                                                                              \
        SK_AOP_SETUP, t, NULL, a, 0, NULL, 0                                                       \
    }
#define SEND(t)                                                                                    \
    {                                                                                              \
        SK_AOP_SEND, t, NULL, NULL, 0, NULL, 0                                                     \
    }
#define DATA(t)                                                                                    \
    {                                                                                              \
        SK_AOP_DATA, t, NULL, NULL, 0, NULL, 0                                                     \
    }
#define REPLY(c, a)                                                                                \
    {                                                                                              \
        SK_AOP_REPLY, NULL, c, a, 0, NULL, 0                                                       \
    }
#define COUNT(n)                                                                                   \
    {                                                                                              \
        SK_AOP_COUNT, NULL, NULL, NULL, n, NULL, 0                                                 \
    }
#define TLS                                                                                        \
    {                                                                                              \
        SK_AOP_TLS, NULL, NULL, NULL, 0, NULL, 0                                                   \
    }
#define EHLO_WITHOUT(k)                                                                            \
    {                                                                                              \
        SK_AOP_EHLO, "EHLO {helo}", "EHLO", "250", 0, k, 0                                         \
    }
#define CLOSED                                                                                     \
    {                                                                                              \
        SK_AOP_CLOSED, NULL, NULL, NULL, 0, NULL, 0                                                \
    }

#define MUST SK_AUDIT_MUST
#define SHOULD SK_AUDIT_SHOULD
#define BEST SK_AUDIT_BEST

#define N_EHLO SK_AUDIT_NEED_EHLO
#define N_TLS SK_AUDIT_NEED_TLS
#define N_PLAIN SK_AUDIT_NEED_PLAIN
#define N_MAIL SK_AUDIT_NEED_MAIL
#define N_RCPT SK_AUDIT_NEED_RCPT
#define N_AUTH SK_AUDIT_NEED_AUTH
#define N_DELIVER SK_AUDIT_NEED_DELIVER
#define N_NOGREET SK_AUDIT_NO_GREETING

/* A smuggling variant: a false end of data, a command behind it, the real
 * end. One reply (to the real end) is right; more mean the false end ended
 * the data and the NOOP ran as a command (RFC 5321 4.1.1.4, 2.3.8). */
#define SMUGGLE(nm, seq, shown)                                                                    \
    {                                                                                              \
        nm, "Only <CRLF>.<CRLF> ends the data, not " shown, "RFC 5321 4.1.1.4, 2.3.8", MUST,       \
            N_EHLO | N_MAIL | N_DELIVER, NULL,                                                     \
            "The end of mail data is <CRLF>.<CRLF>; conforming implementations MUST NOT "          \
            "recognize "                                                                           \
            "any other character sequence as a line terminator (SMTP smuggling).",                 \
            SK_AUDIT_G_NONE,                                                                       \
        {                                                                                          \
            SETUP("RCPT TO:<{deliver}>", "2xx"), CMD("DATA", "354"),                               \
                DATA("Subject: smtpkit audit " nm "\r\n\r\nsmuggling test" seq "NOOP\r\n.\r\n"),   \
                SEND("QUIT\r\n"), COUNT(2)                                                         \
        }                                                                                          \
    }

static const sk_audit_check checks[] = {
    /* ---- greeting and session ---------------------------------------- */
    {"greeting",
     "The greeting is 220 (or 554: no service here)",
     "RFC 5321 3.1, 4.3.2",
     MUST,
     N_NOGREET,
     NULL,
     "The server opens with 220, or with 554 when it offers no SMTP service; replies to the "
     "connection are 220, 554 (and 421 when closing).",
     SK_AUDIT_G_NONE,
     {REPLY("CONNECT", "220 554 421")}},
    {"ehlo",
     "EHLO is answered with 250 and well-formed extension lines",
     "RFC 5321 4.1.1.1",
     MUST,
     0,
     NULL,
     "Every EHLO line after the first is ehlo-keyword *(SP ehlo-param); the reply is 250.",
     SK_AUDIT_G_NONE,
     {{SK_AOP_EHLO, "EHLO {helo}", "EHLO", "250", 0, NULL, 0}}},
    {"helo",
     "HELO is answered with a one-line 250, not the EHLO list",
     "RFC 5321 3.2, 4.1.1.1",
     MUST,
     0,
     NULL,
     "Servers MUST support HELO; they MUST NOT return the extended EHLO-style response to a HELO "
     "command.",
     SK_AUDIT_G_NONE,
     {{SK_AOP_CMD, "HELO {helo}", "HELO", "250", 0, NULL, 1}}},
    {"ehlo-no-domain",
     "EHLO without a domain is a syntax error (501)",
     "RFC 5321 4.1.1.1, 4.3.2",
     SHOULD,
     0,
     NULL,
     "EHLO takes a domain or address literal; a missing argument is a syntax error in "
     "parameters (501).",
     SK_AUDIT_G_NONE,
     {CMD("EHLO", "501")}},
    {"helo-no-domain",
     "HELO without a domain is a syntax error (501)",
     "RFC 5321 4.1.1.1, 4.3.2",
     SHOULD,
     0,
     NULL,
     "HELO takes a domain; a missing argument is a syntax error in parameters (501).",
     SK_AUDIT_G_NONE,
     {CMD("HELO", "501")}},
    {"noop",
     "NOOP is answered with 250",
     "RFC 5321 4.1.1.9",
     MUST,
     N_EHLO,
     NULL,
     "NOOP specifies no action other than that the receiver send a 250 OK reply.",
     SK_AUDIT_G_NONE,
     {CMD("NOOP", "250")}},
    {"noop-parameter",
     "NOOP with a parameter is answered with 250",
     "RFC 5321 4.1.1.9",
     SHOULD,
     N_EHLO,
     NULL,
     "If a parameter string is specified with NOOP, servers SHOULD ignore it.",
     SK_AUDIT_G_NONE,
     {CMD("NOOP smtpkit-audit", "250")}},
    {"rset",
     "RSET is answered with 250 and ends the transaction",
     "RFC 5321 4.1.1.5, 3.3",
     MUST,
     N_EHLO | N_MAIL,
     NULL,
     "RSET discards any stored sender, recipients and mail data, and the receiver MUST send a "
     "250 OK reply; a RCPT after it has no MAIL, so it MUST get 503.",
     SK_AUDIT_G_NONE,
     {CMD("RSET", "250"), CMD("RCPT TO:<{rcpt}>", "503")}},
    {"before-ehlo",
     "NOOP, RSET, HELP, VRFY and EXPN work before EHLO (no 503)",
     "RFC 5321 4.1.4",
     SHOULD,
     0,
     NULL,
     "NOOP, HELP, EXPN, VRFY and RSET can be used at any time; servers SHOULD process them "
     "normally (not return 503) even if no EHLO has been received.",
     SK_AUDIT_G_NONE,
     {CMD("NOOP", "-503"), CMD("RSET", "-503"), CMD("HELP", "-503"), CMD("VRFY postmaster", "-503"),
      CMD("EXPN postmaster", "-503")}},
    {"quit",
     "QUIT is answered with 221 and the server closes",
     "RFC 5321 4.1.1.10",
     MUST,
     N_EHLO,
     NULL,
     "The receiver MUST send a 221 OK reply to QUIT, and then close the transmission channel.",
     SK_AUDIT_G_NONE,
     {CMD("QUIT", "221"), CLOSED}},
    {"help",
     "HELP is answered with 211, 214 or 502",
     "RFC 5321 4.1.1.8, 4.2.4, 4.3.2",
     SHOULD,
     N_EHLO,
     NULL,
     "SMTP servers SHOULD support HELP without arguments (211 or 214); a server that "
     "recognizes a command it does not implement answers 502 (4.2.4).",
     SK_AUDIT_G_NONE,
     {CMD("HELP", "211 214 502")}},
    {"vrfy",
     "VRFY is answered as RFC 5321 lists (252 when the server will not say)",
     "RFC 5321 3.5.3, 4.3.2",
     SHOULD,
     N_EHLO,
     NULL,
     "VRFY gets 250/251 when verified, 252 when the server will not verify, 550/551/553 when "
     "refused, or 502 when disabled.",
     SK_AUDIT_G_NONE,
     {CMD("VRFY postmaster", "250 251 252 502 550 551 553")}},
    {"expn",
     "EXPN is answered as RFC 5321 lists",
     "RFC 5321 3.5.2, 3.5.3, 4.3.2",
     SHOULD,
     N_EHLO,
     NULL,
     "Server implementations SHOULD support both VRFY and EXPN; EXPN gets 250 with the list, "
     "252, 550 when refused, or 502 when disabled.",
     SK_AUDIT_G_NONE,
     {CMD("EXPN postmaster", "250 252 502 550")}},
    {"unknown-command",
     "An unknown command gets 500",
     "RFC 5321 4.2.4",
     SHOULD,
     N_EHLO,
     NULL,
     "502 is for a command recognized but not implemented; if the command is not recognized, "
     "code 500 SHOULD be returned.",
     SK_AUDIT_G_NONE,
     {CMD("XSMTPKITAUDIT", "500")}},
    {"obsolete-commands",
     "SEND, SOML, SAML and TURN get the replies RFC 5321 lists (TURN never 250)",
     "RFC 5321 4.3.2, F.1, F.6",
     SHOULD,
     N_EHLO,
     NULL,
     "SEND, SOML and SAML are obsolete (502 where not implemented); TURN SHOULD NOT be used "
     "unless the server can authenticate the client.",
     SK_AUDIT_G_NONE,
     {CMD("SEND FROM:<{from}>", NULL), CMD("RSET", "250"), CMD("SOML FROM:<{from}>", NULL),
      CMD("RSET", "250"), CMD("SAML FROM:<{from}>", NULL), CMD("RSET", "250"),
      CMD("TURN", "500 502 503")}},

    /* ---- order of commands --------------------------------------------- */
    {"mail-before-ehlo",
     "MAIL before EHLO/HELO is refused with 503",
     "RFC 5321 4.1.4",
     BEST,
     0,
     NULL,
     "A session that will contain mail transactions MUST first be initialized by EHLO; a "
     "server that enforces it answers 503.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}>", "503")}},
    {"rcpt-before-mail",
     "RCPT without MAIL is refused with 503",
     "RFC 5321 3.3",
     MUST,
     N_EHLO,
     NULL,
     "If a RCPT command appears without a previous MAIL command, the server MUST return a 503 "
     "\"Bad sequence of commands\" response.",
     SK_AUDIT_G_NONE,
     {CMD("RCPT TO:<{rcpt}>", "503")}},
    {"data-before-mail",
     "DATA without MAIL is refused with 503 or 554",
     "RFC 5321 3.3, 4.1.4",
     MUST,
     N_EHLO,
     NULL,
     "Mail transaction commands MUST be used in order; DATA with no MAIL or RCPT gets 503 "
     "(bad sequence) or 554 (no valid recipients), never 354.",
     SK_AUDIT_G_NONE,
     {CMD("DATA", "503 554")}},
    {"data-without-rcpt",
     "DATA without an accepted RCPT is refused with 503 or 554",
     "RFC 5321 3.3",
     MUST,
     N_EHLO | N_MAIL,
     NULL,
     "If there was no RCPT, or all were rejected, the server returns 503 or 554 to DATA; the "
     "client then MUST NOT send data.",
     SK_AUDIT_G_NONE,
     {CMD("DATA", "503 554")}},
    {"nested-mail",
     "A second MAIL inside a transaction is refused with 503",
     "RFC 5321 4.1.4, 3.3",
     SHOULD,
     N_EHLO | N_MAIL,
     NULL,
     "MAIL MUST NOT be sent if a mail transaction is already open; a command that cannot be "
     "processed in this state gets 503 and the state stays the same.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}>", "503")}},

    /* ---- syntax -------------------------------------------------------- */
    {"mail-syntax",
     "A malformed MAIL FROM address is refused with 501 or 553",
     "RFC 5321 4.1.2, 4.1.4, 4.3.2",
     SHOULD,
     N_EHLO,
     NULL,
     "An unacceptable argument to a transaction-beginning command gets 501 (553 for a mailbox "
     "name not allowed) and the state stays the same.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<audit@@example.com>", "501 553")}},
    {"rcpt-syntax",
     "A malformed RCPT TO address is refused with 501 or 553",
     "RFC 5321 4.1.2, 4.3.2",
     SHOULD,
     N_EHLO | N_MAIL,
     NULL,
     "A syntactically invalid forward-path gets 501 or 553.",
     SK_AUDIT_G_NONE,
     {CMD("RCPT TO:<audit@@example.com>", "501 553")}},
    {"mail-unknown-parameter",
     "An unknown MAIL parameter is refused with 555",
     "RFC 5321 4.1.1.11, 4.3.2",
     SHOULD,
     N_EHLO,
     NULL,
     "If the server does not recognize or cannot implement a parameter of MAIL FROM or RCPT "
     "TO, it returns 555.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> XSMTPKITAUDIT=1", "555")}},
    {"rcpt-unknown-parameter",
     "An unknown RCPT parameter is refused with 555",
     "RFC 5321 4.1.1.11, 4.3.2",
     SHOULD,
     N_EHLO | N_MAIL,
     NULL,
     "If the server does not recognize or cannot implement a parameter of MAIL FROM or RCPT "
     "TO, it returns 555.",
     SK_AUDIT_G_NONE,
     {CMD("RCPT TO:<{rcpt}> XSMTPKITAUDIT=1", "555")}},
    {"line-too-long",
     "A command line over 512 octets gets one reply, not one per fragment",
     "RFC 5321 4.5.3.1.4, 4.2.4, 4.2",
     MUST,
     N_EHLO,
     NULL,
     "A command line is at most 512 octets with CRLF; a longer one gets 500 (\"command line too "
     "long\") or is handled whole - either way exactly one reply.",
     SK_AUDIT_G_NONE,
     {SEND("NOOP {long}\r\nNOOP\r\nQUIT\r\n"), COUNT(3)}},
    {"bare-lf-command",
     "A bare LF does not end a command line",
     "RFC 5321 2.3.8",
     MUST,
     N_EHLO,
     NULL,
     "Lines end with <CRLF>; conforming implementations MUST NOT recognize any other character "
     "or character sequence as a line terminator.",
     SK_AUDIT_G_NONE,
     {SEND("NOOP\nNOOP\r\nQUIT\r\n"), COUNT(2)}},
    {"bare-cr-command",
     "A bare CR does not end a command line",
     "RFC 5321 2.3.8",
     MUST,
     N_EHLO,
     NULL,
     "Lines end with <CRLF>; conforming implementations MUST NOT recognize any other character "
     "or character sequence as a line terminator.",
     SK_AUDIT_G_NONE,
     {SEND("NOOP\rNOOP\r\nQUIT\r\n"), COUNT(2)}},
    {"postmaster",
     "RCPT TO:<Postmaster> (no domain) is accepted",
     "RFC 5321 4.5.1",
     MUST,
     N_EHLO | N_MAIL,
     NULL,
     "RCPT commands for postmaster at the server's domains, and the special case "
     "\"RCPT TO:<Postmaster>\" with no domain, MUST be supported.",
     SK_AUDIT_G_NONE,
     {CMD("RCPT TO:<Postmaster>", "2xx")}},
    {"open-relay",
     "Mail to a foreign domain is refused (not an open relay)",
     "RFC 5321 3.6.2; RFC 2505 2",
     SHOULD,
     N_EHLO | N_MAIL,
     NULL,
     "A server that is not the destination relays only for clients it knows; unauthorized "
     "relaying must be refused (RFC 2505: MUST be able to restrict it).",
     SK_AUDIT_G_NONE,
     {CMD("RCPT TO:<{relay}>", "* 4xx 5xx")}},
    {"relay-refusal-code",
     "A relay refused for policy gets 550",
     "RFC 5321 3.6.2",
     SHOULD,
     N_EHLO | N_MAIL,
     NULL,
     "If a server declines to relay mail to a particular address for policy reasons, a 550 "
     "response SHOULD be returned.",
     SK_AUDIT_G_NONE,
     {CMD("RCPT TO:<{relay}>", "550")}},

    /* ---- ESMTP extensions ---------------------------------------------- */
    {"pipelining",
     "PIPELINING: a batch of commands gets one reply each, in order",
     "RFC 2920 3.1",
     MUST,
     N_EHLO,
     "PIPELINING",
     "A server offering PIPELINING answers every command of a batch, in the order sent, and "
     "does not discard commands it has read.",
     SK_AUDIT_G_NONE,
     {SEND("RSET\r\nMAIL FROM:<{from}>\r\nRCPT TO:<{rcpt}>\r\nRSET\r\nNOOP\r\n"),
      REPLY("RSET", "250"), REPLY("MAIL", "250"), REPLY("RCPT", NULL), REPLY("RSET", "250"),
      REPLY("NOOP", "250")}},
    {"size-declared",
     "SIZE: MAIL with SIZE above the declared limit is refused with 552",
     "RFC 1870 6",
     SHOULD,
     N_EHLO,
     "SIZE",
     "A message size declared larger than the server's fixed maximum is refused with 552 "
     "(message size exceeds fixed maximum).",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> SIZE={size+1}", "552")}},
    {"size-syntax",
     "SIZE: a non-numeric SIZE value is refused with 501 or 555",
     "RFC 1870 4, 6; RFC 5321 4.1.1.11",
     SHOULD,
     N_EHLO,
     "SIZE",
     "size-value is 1*20DIGIT; anything else is a syntax error in parameters.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> SIZE=audit", "501 555")}},
    {"8bitmime",
     "8BITMIME: MAIL with BODY=8BITMIME is accepted",
     "RFC 6152 3",
     MUST,
     N_EHLO,
     "8BITMIME",
     "A server that offers 8BITMIME accepts the BODY=8BITMIME parameter on MAIL.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> BODY=8BITMIME", "250")}},
    {"body-unknown",
     "8BITMIME: an unknown BODY value is refused with 501 or 555",
     "RFC 6152 3; RFC 5321 4.1.1.11",
     SHOULD,
     N_EHLO,
     "8BITMIME",
     "BODY takes 7BIT or 8BITMIME (BINARYMIME with its extension); other values are refused.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> BODY=SMTPKITAUDIT", "501 555")}},
    {"smtputf8",
     "SMTPUTF8: MAIL with the SMTPUTF8 parameter is accepted",
     "RFC 6531 3.4",
     MUST,
     N_EHLO,
     "SMTPUTF8",
     "A server that offers SMTPUTF8 accepts the SMTPUTF8 parameter on MAIL.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> SMTPUTF8", "250")}},
    {"dsn",
     "DSN: MAIL with RET and ENVID is accepted",
     "RFC 3461 4.3, 4.4",
     MUST,
     N_EHLO,
     "DSN",
     "A server that offers DSN accepts the RET and ENVID parameters on MAIL.",
     SK_AUDIT_G_NONE,
     {CMD("MAIL FROM:<{from}> RET=HDRS ENVID=smtpkit-audit", "250")}},
    {"chunking-order",
     "CHUNKING: BDAT without MAIL gets 503 and its chunk is not read as commands",
     "RFC 3030 2, 4; RFC 5321 3.3",
     SHOULD,
     N_EHLO,
     "CHUNKING",
     "BDAT carries its chunk size, so the octets that follow belong to it whatever the reply; "
     "out of sequence it gets 503 (bad sequence) and the chunk is read and discarded.",
     SK_AUDIT_G_NONE,
     {SEND("BDAT 10 LAST\r\n"),
      {SK_AOP_DATA, "NOOP\r\nXX\r\n", "-", NULL, 0, NULL, 0},
      SEND("NOOP\r\n"),
      REPLY("BDAT", "503"),
      REPLY("NOOP", "250")}},
    {"starttls-parameter",
     "STARTTLS: a parameter is refused with 501",
     "RFC 3207 4",
     SHOULD,
     N_EHLO | N_PLAIN,
     "STARTTLS",
     "STARTTLS takes no parameters: 501 Syntax error (no parameters allowed).",
     SK_AUDIT_G_NONE,
     {CMD("STARTTLS smtpkit-audit", "501")}},
    {"starttls-ehlo-after",
     "STARTTLS: EHLO after TLS no longer offers STARTTLS",
     "RFC 3207 4.2",
     MUST,
     N_EHLO | N_PLAIN,
     "STARTTLS",
     "A server MUST NOT return the STARTTLS extension in response to an EHLO command received "
     "after a TLS handshake has completed.",
     SK_AUDIT_G_NONE,
     {CMD("STARTTLS", "220"), TLS, EHLO_WITHOUT("STARTTLS")}},
    {"starttls-reset",
     "STARTTLS: the transaction before TLS is forgotten",
     "RFC 3207 4.2; RFC 5321 3.3",
     MUST,
     N_EHLO | N_PLAIN | N_MAIL,
     "STARTTLS",
     "Upon completion of the TLS handshake the SMTP protocol is reset to the initial state; a "
     "RCPT without a new MAIL then MUST get 503. (A 503 to STARTTLS inside a transaction is "
     "also right.)",
     SK_AUDIT_G_NONE,
     {CMD("STARTTLS", "220 503"), TLS, CMD("EHLO {helo}", "250"), CMD("RCPT TO:<{rcpt}>", "503")}},
    {"starttls-injection",
     "STARTTLS: commands sent in the clear with STARTTLS are not run under TLS",
     "RFC 3207 4.2 (CVE-2011-0411)",
     MUST,
     N_EHLO | N_PLAIN,
     "STARTTLS",
     "The server MUST discard any knowledge obtained from the client before TLS; plaintext "
     "pipelined behind STARTTLS must be thrown away, not answered inside the TLS session.",
     SK_AUDIT_G_NONE,
     {SEND("STARTTLS\r\nNOOP\r\n"), REPLY("STARTTLS", "220"), TLS, SEND("EHLO {helo}\r\nQUIT\r\n"),
      COUNT(2)}},
    {"auth-plain-before-tls",
     "AUTH: no plaintext password mechanism before TLS",
     "RFC 4954 4",
     SHOULD,
     N_EHLO | N_PLAIN,
     "AUTH",
     "Server sites SHOULD NOT use any configuration which permits a plaintext password "
     "mechanism (PLAIN, LOGIN) without protection against password snooping (TLS).",
     SK_AUDIT_G_NONE,
     {EHLO_WITHOUT("AUTH PLAIN"), EHLO_WITHOUT("AUTH LOGIN")}},
    {"auth-before-tls",
     "AUTH PLAIN in the clear is refused (538 when TLS would allow it)",
     "RFC 4954 4, 6",
     SHOULD,
     N_EHLO | N_PLAIN,
     NULL,
     "A server does not permit a plaintext password mechanism without TLS; 538 says the "
     "mechanism may only be used over an encrypted connection (530, 502, 503 or 504 where "
     "AUTH is not available at all).",
     SK_AUDIT_G_NONE,
     {CMDC("AUTH PLAIN AHNtdHBraXQtYXVkaXQAeA==", "AUTH", "538 530 502 503 504")}},
    {"auth-bad-base64",
     "AUTH: a response that is not base64 is refused with 501",
     "RFC 4954 4",
     MUST,
     N_EHLO | N_TLS,
     "AUTH PLAIN",
     "If the server cannot BASE64 decode any client response, it MUST reject the AUTH command "
     "with a 501 reply (and an enhanced status code of 5.5.2).",
     SK_AUDIT_G_NONE,
     {SETUP("AUTH PLAIN", "334"), CMDC("%%%%", "AUTH", "501")}},
    {"auth-cancel",
     "AUTH: \"*\" cancels the exchange with 501",
     "RFC 4954 4",
     MUST,
     N_EHLO | N_TLS,
     "AUTH PLAIN",
     "If the client answers a challenge with \"*\", the server MUST reject the AUTH command by "
     "sending a 501 reply.",
     SK_AUDIT_G_NONE,
     {SETUP("AUTH PLAIN", "334"), CMDC("*", "AUTH", "501")}},
    {"auth-in-transaction",
     "AUTH inside a mail transaction is refused with 503",
     "RFC 4954 4",
     MUST,
     N_EHLO | N_TLS | N_MAIL,
     "AUTH",
     "The AUTH command is not permitted during a mail transaction; an AUTH command issued "
     "during a mail transaction MUST be rejected with a 503 reply.",
     SK_AUDIT_G_NONE,
     {CMD("AUTH PLAIN", "503")}},
    {"auth-unknown-mechanism",
     "AUTH with an unknown mechanism is refused with 504",
     "RFC 4954 4",
     SHOULD,
     N_EHLO | N_TLS,
     "AUTH",
     "If the requested authentication mechanism is not supported, the server rejects the AUTH "
     "command with a 504 reply.",
     SK_AUDIT_G_NONE,
     {CMD("AUTH X-SMTPKIT-AUDIT", "504")}},
    {"auth-twice",
     "AUTH after a successful AUTH is refused with 503",
     "RFC 4954 4",
     MUST,
     N_EHLO | N_TLS | N_AUTH,
     "AUTH",
     "After a successful AUTH command completes, a server MUST reject any further AUTH "
     "commands with a 503 reply.",
     SK_AUDIT_G_NONE,
     {CMD("AUTH PLAIN", "503")}},

    /* ---- checks that deliver (--deliver-to only) ----------------------- */
    {"data-end",
     "A message ending in <CRLF>.<CRLF> is accepted, dot-stuffing undone",
     "RFC 5321 4.1.1.4, 4.5.2",
     MUST,
     N_EHLO | N_MAIL | N_DELIVER,
     NULL,
     "DATA gets 354; the data ends with <CRLF>.<CRLF> and gets one reply; a line starting with "
     "a dot was sent with the dot doubled (transparency).",
     SK_AUDIT_G_NONE,
     {SETUP("RCPT TO:<{deliver}>", "2xx"), CMD("DATA", "354"),
      DATA("Subject: smtpkit audit data-end\r\n\r\n..a line that starts with a dot\r\n...\r\n"
           ".\r\n"),
      REPLY("DATA-END", "250")}},
    SMUGGLE("smuggling-lf-dot-crlf", "\n.\r\n", "<LF>.<CRLF>"),
    SMUGGLE("smuggling-crlf-dot-lf", "\r\n.\n", "<CRLF>.<LF>"),
    SMUGGLE("smuggling-lf-dot-lf", "\n.\n", "<LF>.<LF>"),
    SMUGGLE("smuggling-cr-dot-cr", "\r.\r", "<CR>.<CR>"),
    {"size-enforced",
     "SIZE: data beyond the declared limit is refused with 552",
     "RFC 1870 6",
     SHOULD,
     N_EHLO | N_MAIL | N_DELIVER,
     "SIZE",
     "A message larger than the fixed maximum the server declared is refused with 552 after "
     "the data, even when MAIL declared no size.",
     SK_AUDIT_G_NONE,
     {SETUP("RCPT TO:<{deliver}>", "2xx"),
      CMD("DATA", "354"),
      {SK_AOP_BIGDATA, NULL, "DATA-END", NULL, 64, NULL, 0},
      REPLY("DATA-END", "552 554")}},

    /* ---- judged over every reply of the run ---------------------------- */
    {"reply-grammar",
     "Every reply is well formed: CRLF, one code, digits in range",
     "RFC 5321 4.2, 4.2.1, 2.3.8",
     MUST,
     SK_AUDIT_GLOBAL,
     NULL,
     "Reply-line = *( Reply-code \"-\" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF, "
     "the same code on every line, first digit 2-5, second 0-5.",
     SK_AUDIT_G_GRAMMAR,
     {{0}}},
    {"reply-line-length",
     "No reply line is longer than 512 octets",
     "RFC 5321 4.5.3.1.5",
     MUST,
     SK_AUDIT_GLOBAL,
     NULL,
     "The maximum total length of a reply line including the reply code and the <CRLF> is 512 "
     "octets.",
     SK_AUDIT_G_LINELEN,
     {{0}}},
    {"enhanced-codes",
     "ENHANCEDSTATUSCODES: every reply carries an enhanced code of its class",
     "RFC 2034 4, 3",
     MUST,
     SK_AUDIT_GLOBAL,
     "ENHANCEDSTATUSCODES",
     "A server that offers ENHANCEDSTATUSCODES prefixes the text of every 2xx, 4xx and 5xx "
     "reply, except the greeting and replies to HELO/EHLO, with a status code whose class "
     "matches the reply's first digit, regardless of whether EHLO was used.",
     SK_AUDIT_G_ENHANCED,
     {{0}}},
    {"reply-codes-listed",
     "Every reply is a code RFC 5321 or the extension lists for its command",
     "RFC 5321 4.3.2",
     SHOULD,
     SK_AUDIT_GLOBAL,
     NULL,
     "Each command has a defined set of replies (the command-reply sequences of 4.3.2 and the "
     "extension RFCs); other codes leave clients guessing.",
     SK_AUDIT_G_KNOWN,
     {{0}}},
};

#define NCHECKS (sizeof checks / sizeof checks[0])

size_t sk_audit_ncheck(void)
{
    return NCHECKS;
}

const sk_audit_check *sk_audit_check_at(size_t i)
{
    return i < NCHECKS ? &checks[i] : NULL;
}

const sk_audit_check *sk_audit_check_find(const char *name)
{
    for (size_t i = 0; i < NCHECKS; i++)
        if (!strcmp(checks[i].name, name))
            return &checks[i];
    return NULL;
}

const char *sk_audit_severity_name(sk_audit_severity s)
{
    switch (s) {
    case SK_AUDIT_MUST:
        return "MUST";
    case SK_AUDIT_SHOULD:
        return "SHOULD";
    case SK_AUDIT_BEST:
        return "best practice";
    }
    return "?";
}

const char *sk_audit_outcome_name(sk_audit_outcome o)
{
    switch (o) {
    case SK_AUDIT_PASS:
        return "PASS";
    case SK_AUDIT_FAIL:
        return "FAIL";
    case SK_AUDIT_SKIP:
        return "SKIP";
    }
    return "?";
}
