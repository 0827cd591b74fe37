/*
 * dovecot_auth_proto.h - Dovecot's authentication client protocol, version
 * 1.2 (the one Postfix's `smtpd_sasl_type = dovecot` speaks over Dovecot's
 * auth-client socket), without I/O: bytes from the auth server in, parsed
 * records out; and the client's lines formatted with Dovecot's tab
 * escaping. Used for SMTP AUTH (RFC 4954) PLAIN (RFC 4616) and LOGIN.
 *
 * Server to client: VERSION, MECH, SPID, CUID, COOKIE, DONE (handshake),
 * then OK / CONT / FAIL per request id. Client to server: VERSION, CPID,
 * then AUTH (id, mechanism, service=smtp and the connection's parameters,
 * resp=) and CONT (id, base64). Lines end with LF; fields are separated by
 * TAB; in values \001 escapes itself ("\0011"), TAB ("\001t"), CR ("\001r")
 * and LF ("\001n").
 */
#ifndef SMTPKIT_SERVER_DOVECOT_AUTH_PROTO_H
#define SMTPKIT_SERVER_DOVECOT_AUTH_PROTO_H

#include <stddef.h>

#define SK_DAUTH_LINE_MAX 16384 /* Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH */
#define SK_DAUTH_MAX_ARGS 32    /* fields after the command; more is an error */
#define SK_DAUTH_MAJOR 1        /* protocol major version we speak */

typedef enum sk_dauth_type {
    SK_DAUTH_VERSION, /* major, minor */
    SK_DAUTH_MECH,    /* mech, mech_flags */
    SK_DAUTH_SPID,
    SK_DAUTH_CUID,
    SK_DAUTH_COOKIE,
    SK_DAUTH_DONE,  /* end of the handshake */
    SK_DAUTH_OK,    /* id; user */
    SK_DAUTH_CONT,  /* id; data (base64 challenge) */
    SK_DAUTH_FAIL,  /* id; temp, user, reason */
    SK_DAUTH_OTHER, /* a command this client does not know: ignored */
} sk_dauth_type;

/* MECH flags. */
#define SK_DAUTH_MECH_PLAINTEXT 0x01 /* sends the password in clear */
#define SK_DAUTH_MECH_PRIVATE 0x02   /* not to be advertised */
#define SK_DAUTH_MECH_ANONYMOUS 0x04

/* One record; the strings point into the parser and live until the next
 * call. */
typedef struct sk_dauth_record {
    sk_dauth_type type;
    const char *command; /* as received */
    unsigned long major, minor;
    const char *mech;
    unsigned mech_flags;
    unsigned long id;
    const char *data;                    /* CONT */
    const char *user;                    /* OK/FAIL user=, or NULL */
    const char *reason;                  /* FAIL reason=, or NULL */
    int temp;                            /* FAIL temp (or code=temp_fail): try again later */
    const char *args[SK_DAUTH_MAX_ARGS]; /* the fields after the command, unescaped */
    size_t nargs;
} sk_dauth_record;

typedef struct sk_dauth_parser {
    char line[SK_DAUTH_LINE_MAX + 1];
    size_t len;
    int failed;
} sk_dauth_parser;

void sk_dauth_parser_init(sk_dauth_parser *p);

/*
 * Consume input from *data (*n bytes), at most up to and including one LF.
 * Returns 1 with *rec filled (a whole line), 0 when the input is used up
 * without completing a line (feed more later), or -1 on a protocol error
 * (*why set: a line over SK_DAUTH_LINE_MAX, a NUL byte, a malformed
 * record); after -1 the parser stays failed (drop the connection).
 * *data and *n advance past what was consumed.
 */
int sk_dauth_parse(sk_dauth_parser *p, const char **data, size_t *n, sk_dauth_record *rec,
                   const char **why);

/* The client's handshake, "VERSION\t1\t2\nCPID\t<pid>\n". Returns its
 * length, or 0 if it does not fit. */
size_t sk_dauth_format_handshake(char *out, size_t outlen, unsigned long pid);

typedef struct sk_dauth_auth {
    unsigned long id;
    const char *mech;      /* "PLAIN" or "LOGIN" */
    const char *service;   /* "smtp" */
    int secured;           /* the client connection is under TLS */
    const char *lip, *rip; /* local and remote address, or NULL */
    unsigned lport, rport; /* 0: not sent */
    const char *resp;      /* base64 initial response, or NULL */
} sk_dauth_auth;

/* "AUTH\t<id>\t<mech>\tservice=smtp\tnologin[\tsecured]\tlip=..\trip=..
 * \tlport=..\trport=..[\tresp=..]\n" with every value escaped. Returns the
 * length, or 0 if it does not fit or a required field is missing. */
size_t sk_dauth_format_auth(char *out, size_t outlen, const sk_dauth_auth *a);

/* "CONT\t<id>\t<base64>\n". Returns the length, or 0. */
size_t sk_dauth_format_cont(char *out, size_t outlen, unsigned long id, const char *b64);

#endif
