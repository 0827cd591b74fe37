/*
 * client.h - the SMTP client: connection with per-step timeouts, reply
 * reading, EHLO capabilities, STARTTLS / implicit TLS, AUTH, the mail
 * transaction (with PIPELINING and CHUNKING), and a transcript of every
 * exchange. RFC 5321 (SMTP), RFC 1869/5321 4.1.1.1 (EHLO), RFC 3207
 * (STARTTLS), RFC 8314 (implicit TLS), RFC 4954 (AUTH), RFC 4616 (PLAIN),
 * RFC 2920 (PIPELINING), RFC 3030 (CHUNKING/BDAT), RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8).
 *
 * The client is blocking from the caller's point of view, but every step
 * (connect, each read, each write, the TLS handshake) waits with poll(2) for
 * at most the configured timeout, so no peer can make it hang.
 */
#ifndef SMTPKIT_CLIENT_H
#define SMTPKIT_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>

#include "smtpkit/buf.h"
#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

/* ---- transcript --------------------------------------------------------- */

typedef enum sk_dir {
    SK_DIR_CLIENT = 'C', /* a line we sent */
    SK_DIR_SERVER = 'S', /* a line the server sent */
    SK_DIR_INFO = '*',   /* a note of ours: connecting, TLS established, ... */
} sk_dir;

typedef struct sk_transcript_entry {
    sk_dir dir;
    double ms;  /* milliseconds since the transcript started */
    char *line; /* without CRLF; AUTH data is already "<redacted>" */
} sk_transcript_entry;

typedef struct sk_transcript {
    sk_transcript_entry *v;
    size_t n, cap;
    size_t max;     /* entries kept at most (later ones dropped) */
    size_t dropped; /* entries not kept because of max */
    double t0;      /* monotonic start, seconds */
    void (*on_entry)(const sk_transcript_entry *e, void *arg); /* live echo */
    void *on_entry_arg;
} sk_transcript;

void sk_transcript_init(sk_transcript *t, size_t max);
void sk_transcript_free(sk_transcript *t);
/* Record one line (len bytes, no CRLF). Control bytes are shown as '?'. */
void sk_transcript_add(sk_transcript *t, sk_dir dir, const char *line, size_t len);
void sk_transcript_addf(sk_transcript *t, sk_dir dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Milliseconds since the transcript started. */
double sk_transcript_now(const sk_transcript *t);
/* Monotonic clock in seconds. */
double sk_monotonic(void);

/* ---- EHLO capabilities (RFC 5321 4.1.1.1 and the extension RFCs) -------- */

#define SK_CAPS_MAX 64

typedef struct sk_cap {
    char keyword[32]; /* upper-cased ehlo-keyword */
    char params[256]; /* the rest of the line, as sent */
} sk_cap;

/* AUTH mechanisms we know by name (RFC 4954, SASL registry). */
#define SK_AUTH_PLAIN 0x01
#define SK_AUTH_LOGIN 0x02
#define SK_AUTH_CRAM_MD5 0x04
#define SK_AUTH_XOAUTH2 0x08
#define SK_AUTH_OAUTHBEARER 0x10
#define SK_AUTH_SCRAM 0x20 /* any SCRAM-* */
#define SK_AUTH_OTHER 0x40

typedef struct sk_caps {
    int esmtp;               /* the server answered EHLO (not only HELO) */
    int has_size;            /* SIZE was offered */
    unsigned long long size; /* SIZE limit in octets; 0 = no fixed limit */
    unsigned auth;           /* SK_AUTH_* bits */
    char auth_list[256];     /* the mechanisms as offered, space-separated */
    int pipelining, starttls, eightbitmime, smtputf8, chunking, binarymime;
    int enhancedstatuscodes, dsn, requiretls, deliverby, etrn, atrn, vrfy, help;
    size_t ncaps;
    sk_cap caps[SK_CAPS_MAX]; /* every line after the first, in order */
} sk_caps;

void sk_caps_clear(sk_caps *c);
/* Parse one EHLO keyword line (reply text after "250-" / "250 ").
 * Returns 0, or -1 if the line is not a valid ehlo-line (RFC 5321 4.1.1.1)
 * (it is still recorded, so the user sees what the server sent). */
int sk_caps_parse_line(sk_caps *c, const char *line, size_t len);
/* Parse a whole EHLO reply: line 0 is the greeting, the rest keywords. */
void sk_caps_parse_reply(sk_caps *c, const sk_reply *r);
/* A plain-words explanation of one capability into out (NUL-terminated);
 * e.g. "SIZE 10485760" -> "largest message accepted: 10 MiB (10485760 bytes)". */
void sk_cap_explain(const sk_cap *cap, char *out, size_t outlen);
/* Format a byte count in readable binary units: "10 MiB", "1.5 KiB", "512 bytes". */
void sk_format_size(unsigned long long n, char *out, size_t outlen);

/* ---- TLS details -------------------------------------------------------- */

/* Why a certificate cannot be trusted (several may hold at once). */
#define SK_CERT_NO_CERT 0x01       /* the server sent none */
#define SK_CERT_SELF_SIGNED 0x02   /* signed by itself, no CA behind it */
#define SK_CERT_UNKNOWN_CA 0x04    /* the chain ends at a CA not in the trust store */
#define SK_CERT_EXPIRED 0x08       /* past its notAfter (or a CA's in the chain) */
#define SK_CERT_NOT_YET_VALID 0x10 /* before its notBefore */
#define SK_CERT_NAME_MISMATCH 0x20 /* not valid for the name connected to (RFC 6125) */
#define SK_CERT_OTHER 0x40         /* another verification error (see errors[]) */
#define SK_TLS_MAX_ERRORS 8

typedef struct sk_tls_info {
    int active;       /* TLS is established */
    char version[32]; /* "TLSv1.3" */
    char cipher[96];  /* "TLS_AES_256_GCM_SHA384" */
    int bits;
    char subject[512]; /* one-line RFC 2253 form */
    char issuer[512];
    char not_before[64]; /* "2025-01-01 00:00:00 UTC" */
    char not_after[64];
    char names[512];         /* subjectAltName DNS/IP names, comma-separated */
    int name_match;          /* certificate is valid for the name we connected to */
    int verified;            /* chain verification succeeded */
    char verify_error[1024]; /* every reason it cannot be trusted, "; "-separated; "" if none */
    unsigned problems;       /* SK_CERT_* bits; 0 when verified and matching */
    size_t nerrors;          /* OpenSSL's verification errors, each with its chain depth */
    struct {
        int code; /* X509_V_ERR_* */
        int depth;
    } errors[SK_TLS_MAX_ERRORS];
} sk_tls_info;

/* Name of an X509_V_ERR_* code ("X509_V_ERR_CERT_HAS_EXPIRED"), NULL if not
 * one the client knows by name; the SK_CERT_* problem it is. */
const char *sk_x509_error_name(int code);
unsigned sk_x509_error_problem(int code);
/* "self-signed", "unknown-ca", "expired", "not-yet-valid", "name-mismatch",
 * "no-certificate", "other" for one SK_CERT_* bit; NULL otherwise. */
const char *sk_cert_problem_name(unsigned bit);

/* ---- client ------------------------------------------------------------- */

typedef enum sk_client_err {
    SK_CLIENT_OK = 0,
    SK_CLIENT_ERR_USAGE,    /* bad arguments */
    SK_CLIENT_ERR_DNS,      /* name not resolved */
    SK_CLIENT_ERR_CONNECT,  /* refused, unreachable, connect timeout */
    SK_CLIENT_ERR_TIMEOUT,  /* connected, but the server did not answer in time */
    SK_CLIENT_ERR_CLOSED,   /* the server closed the connection / reset it */
    SK_CLIENT_ERR_TLS,      /* handshake or certificate failure, STARTTLS missing */
    SK_CLIENT_ERR_PROTOCOL, /* the peer does not speak SMTP correctly */
    SK_CLIENT_ERR_REFUSED,  /* the server answered 4xx/5xx where we needed 2xx/3xx */
    SK_CLIENT_ERR_NOMEM,
} sk_client_err;

typedef struct sk_client_opts {
    int timeout_ms;        /* per step; <= 0 means 10000 */
    int insecure;          /* report but do not fail on a bad certificate */
    const char *cafile;    /* extra CA bundle (PEM); NULL: system store only */
    const char *tls_name;  /* name to verify and send in SNI; NULL: the host */
    size_t transcript_max; /* 0: 10000 entries */
    /* Called with every reply read, and the command it answers ("CONNECT"
     * for the greeting, "DATA-END" for the reply after the data). */
    void (*on_reply)(const sk_reply *r, const char *command, void *arg);
    void *on_reply_arg;
} sk_client_opts;

typedef struct sk_client sk_client;

sk_client *sk_client_new(const sk_client_opts *o);
void sk_client_free(sk_client *c);

/* Connect to host:port (host name or IP literal), trying each address that
 * getaddrinfo returns in turn. 0, or -1 with the error set. */
int sk_client_connect(sk_client *c, const char *host, const char *port);
/* Connect to one resolved address; `name` is the host name it belongs to
 * (used for TLS verification and messages). */
int sk_client_connect_addr(sk_client *c, const struct sockaddr *sa, socklen_t salen,
                           const char *name);

/* Read one reply (may be multi-line). 0 with *r filled (sk_reply_free it),
 * or -1 with the error set (timeout, closed, malformed, too long). */
int sk_client_read_reply(sk_client *c, sk_reply *r);
/* Send one command line (CRLF added). `shown` replaces it in the transcript
 * when not NULL (used for AUTH data). */
int sk_client_send_line(sk_client *c, const char *line, const char *shown);
/* Send raw bytes (already CRLF-terminated lines), recording each line. */
int sk_client_send_raw(sk_client *c, const char *p, size_t n, int record);
/* send_line + read_reply. */
int sk_client_command(sk_client *c, const char *line, sk_reply *r);

/* Read the greeting. Returns 0 with *r filled (any code), -1 on error. */
int sk_client_greeting(sk_client *c, sk_reply *r);
/* EHLO name; on 500/502 (and only then) fall back to HELO. Returns 0 with *r
 * the final reply (caps parsed when it was a 250 to EHLO), -1 on I/O error. */
int sk_client_ehlo(sk_client *c, const char *name, sk_reply *r);
/* LHLO name (LMTP, RFC 2033 4.1): as EHLO, without a HELO fallback. */
int sk_client_lhlo(sk_client *c, const char *name, sk_reply *r);
/* STARTTLS (RFC 3207): 0 when TLS is established (caps are cleared: send
 * EHLO again), -1 with the error set (reply not 220, handshake failed,
 * certificate refused). *r holds the STARTTLS reply when one was read. */
int sk_client_starttls(sk_client *c, sk_reply *r);
/* Implicit TLS (RFC 8314): handshake right after connect. */
int sk_client_tls_handshake(sk_client *c);
/* AUTH with PLAIN or LOGIN (whichever the server offers, PLAIN first).
 * 0 on 235, -1 otherwise; *r holds the last reply read. The transcript shows
 * the data lines as "<redacted>". */
int sk_client_auth(sk_client *c, const char *user, const char *pass, sk_reply *r);
/* QUIT and read the 221 (errors ignored), then close. */
void sk_client_quit(sk_client *c);
void sk_client_close(sk_client *c);

/* ---- the mail transaction ----------------------------------------------- */

typedef struct sk_rcpt_result {
    const char *addr;
    int code;       /* reply code, 0 if no reply was read */
    char text[512]; /* the reply as one line ("550 5.1.1 No such user") */
} sk_rcpt_result;

typedef struct sk_txn {
    const char *mail_from;   /* reverse-path without <>; "" for the null path */
    const char *mail_params; /* extra MAIL parameters ("BODY=8BITMIME SIZE=123"), or NULL */
    const char *const *rcpts;
    size_t nrcpts;
    const char *msg; /* message with CRLF line ends (not dot-stuffed) */
    size_t msglen;
    int use_bdat; /* BDAT instead of DATA (server must offer CHUNKING) */
    int no_data;  /* stop after RCPT (probe): RSET instead of DATA */
    /* results */
    int mail_code;
    char mail_text[512];
    sk_rcpt_result *results; /* nrcpts entries, caller-provided */
    int data_code;           /* 354 / BDAT reply, 0 if not sent */
    int final_code;          /* reply after the message, 0 if not reached */
    char final_text[512];
    size_t accepted; /* recipients accepted (2xx) */
} sk_txn;

/* Run MAIL, RCPT..., DATA/BDAT (pipelined when the server offered
 * PIPELINING). Returns 0 when the exchange completed (whatever the codes:
 * look at the results), -1 on an I/O or protocol error. */
int sk_client_transaction(sk_client *c, sk_txn *t);

/* ---- state -------------------------------------------------------------- */

sk_client_err sk_client_error(const sk_client *c);
const char *sk_client_errmsg(const sk_client *c);
/* Set the error (first error wins unless `force`). */
void sk_client_set_error(sk_client *c, sk_client_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sk_client_clear_error(sk_client *c);
sk_transcript *sk_client_transcript(sk_client *c);
const sk_caps *sk_client_caps(const sk_client *c);
const sk_tls_info *sk_client_tls(const sk_client *c);
int sk_client_is_tls(const sk_client *c);
/* "127.0.0.1:25" / "[::1]:25" of the current connection; "" if none. */
const char *sk_client_peer(const sk_client *c);
/* Milliseconds from the start of connect to connected / to the greeting. */
double sk_client_connect_ms(const sk_client *c);
double sk_client_greeting_ms(const sk_client *c);

/* A reply as one line of text "250-a / 250 b" joined with " / " into out. */
void sk_reply_oneline(const sk_reply *r, char *out, size_t outlen);

/* ---- message preparation (RFC 5321 4.5.2, 2.3.8) ------------------------ */

/* Normalise line ends: bare LF and bare CR become CRLF; the result ends
 * with CRLF unless empty. Appends to out; -1 if out's max is reached. */
int sk_crlf_normalise(const char *p, size_t n, sk_buf *out);
/* Dot-stuff CRLF text for DATA (a '.' at the start of a line is doubled)
 * and append the end-of-data marker ".\r\n" (a CRLF is added first when
 * the text does not end with one). -1 if out's max is reached. */
int sk_dot_stuff(const char *p, size_t n, sk_buf *out);

/* ---- MIME primitives (RFC 2045, 2046, 2047, 2231) ----------------------- */

/* Base64 body encoding: lines of 76 characters, each ending in CRLF. */
int sk_mime_base64(const void *p, size_t n, sk_buf *out);
/* Quoted-printable (RFC 2045 6.7): CRLF in the input stays a hard line
 * break; lines are at most 76 characters with "=" soft breaks; trailing
 * space/tab before a line break is encoded. The input should have CRLF line
 * ends (a bare CR or LF is encoded as =0D / =0A). */
int sk_mime_qp(const char *p, size_t n, sk_buf *out);
/* Append a header field "Name: value\r\n". A value of printable ASCII is
 * folded at spaces to keep lines within 78 characters where it can; any
 * other value is written as RFC 2047 "B" encoded-words of UTF-8, each at
 * most 75 characters and holding whole characters, on folded lines.
 * Returns -1 if the value holds CR or LF (header injection) or on overflow. */
int sk_mime_header(sk_buf *out, const char *name, const char *value);
/* One RFC 2047 phrase (a display name) as encoded-words when it needs it,
 * else as a quoted-string when it holds specials, else as it is. */
int sk_mime_phrase(sk_buf *out, const char *s);
/* A fresh multipart boundary (ASCII, at most 40 chars, starting "=_" which
 * base64 and quoted-printable output can never contain). */
void sk_mime_boundary(char *out, size_t outlen);
/* Content type for a file name by its extension; "application/octet-stream"
 * when unknown. */
const char *sk_mime_type_for(const char *filename);

/* ---- message building (RFC 5322, RFC 2045-2049) ------------------------- */

typedef struct sk_attachment {
    const char *name; /* file name shown to the recipient (no directories) */
    const char *type; /* content type, NULL: guessed from the name */
    const char *data;
    size_t len;
} sk_attachment;

typedef struct sk_message_spec {
    const char *from; /* "addr" or "Display Name <addr>" */
    const char *const *to;
    size_t nto;
    const char *const *cc;
    size_t ncc;
    const char *subject; /* NULL: no Subject header */
    const char *body;    /* any line ends; NULL = empty */
    size_t bodylen;
    const sk_attachment *att;
    size_t natt;
    const char *const *headers; /* extra "Name: value" fields */
    size_t nheaders;
    int allow_8bit;         /* the server offered 8BITMIME */
    long long date;         /* seconds since the epoch for Date:; 0 = now */
    const char *message_id; /* "<id@domain>"; NULL = generated */
} sk_message_spec;

typedef struct sk_message_info {
    int body_8bit; /* the message must be sent with BODY=8BITMIME */
    int utf8_addr; /* an address is not ASCII: SMTPUTF8 is needed */
} sk_message_info;

/* Build the message with CRLF line ends (not dot-stuffed) into out.
 * -1 with a plain-words reason in err on bad input. */
int sk_message_build(const sk_message_spec *m, sk_buf *out, sk_message_info *info, char *err,
                     size_t errlen);
/* The addr-spec of "Name <addr>" / "<addr>" / "addr" into out. -1 if there
 * is none, it is too long, or it holds spaces, controls or a second '<'. */
int sk_address_extract(const char *s, char *out, size_t outlen);

/* ---- for the command-line tools ----------------------------------------- */

/* Split "host", "host:port", "[v6]:port" or a bare IPv6 literal. *port is
 * -1 when none was given. -1 on bad syntax (empty host, port not 1-65535). */
/* Is `s` an IPv4 or IPv6 literal? */
int sk_is_ip_literal(const char *s);

int sk_target_parse(const char *s, char *host, size_t hostlen, int *port);

/* Exit statuses shared by `smtpkit probe` and `smtpkit send`. */
#define SK_EXIT_OK 0
#define SK_EXIT_REFUSED 1 /* the server refused (4xx/5xx greeting, MAIL, RCPT, data) */
#define SK_EXIT_USAGE 2
#define SK_EXIT_CONNECT 3 /* could not connect, or the connection was lost / timed out */
#define SK_EXIT_TLS 4
#define SK_EXIT_DNS 5       /* incl. null MX */
#define SK_EXIT_PROTOCOL 6  /* the peer does not speak SMTP */
#define SK_EXIT_TEMPFAIL 75 /* `send`: a 4xx, try again later (EX_TEMPFAIL) */
int sk_client_exit_status(sk_client_err e);

/* What a reply means, from the registry. Every pointer is a static string
 * or NULL. */
typedef struct sk_reply_explanation {
    const char *meaning; /* registry meaning, or NULL if not registered */
    const char *rfc;
    const char *status; /* "standard", "obsolete", "non-standard" */
    const char *status_note;
    const char *class_text;    /* what the first digit says */
    const char *class_name;    /* its short name: "positive completion" */
    const char *advice;        /* "done", "retry later", ... */
    const char *enhanced_name; /* "Bad destination mailbox address" */
    const char *enhanced_meaning;
    int unexpected;          /* the RFCs do not list this code as a reply to the command */
    const char *source;      /* how the meaning was picked (sk_meaning_source_name) */
    sk_reply_meaning picked; /* the whole choice, with the meanings that do not apply */
} sk_reply_explanation;

/* `context` is the command the reply answers: "CONNECT", "EHLO", "HELO",
 * "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "DATA-END", "BDAT", "RSET",
 * "QUIT". The meaning depends on it and on the reply's enhanced code
 * (sk_reply_meaning_select). */
void sk_reply_explain(const sk_reply *r, const char *context, sk_reply_explanation *ex);

#endif
