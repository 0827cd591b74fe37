/*
 * audit.h - `smtpkit audit`: a conformance check of an SMTP server against
 * the RFC reply tables. Every check is data (sk_audit_check): a name, the
 * RFC section, a severity, the dialogue to run and the replies allowed,
 * which are the codes the reply registry lists for the command (narrowed
 * by the check where the RFC asks for a particular one). The runner plays
 * each dialogue on its own connection through the blocking client (every
 * wait bounded, a whole-run limit, a connection rate) and judges the
 * replies; the reports print the verdicts as text, JSON or HTML.
 *
 * RFC 5321 (SMTP), RFC 2034/3463 (enhanced codes), RFC 1870 (SIZE),
 * RFC 2920 (PIPELINING), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 6152
 * (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN), RFC 3030 (CHUNKING).
 */
#ifndef SMTPKIT_AUDIT_H
#define SMTPKIT_AUDIT_H

#include <stddef.h>

#include "smtpkit/buf.h"

struct sk_audit_result;

typedef enum sk_audit_severity {
    SK_AUDIT_MUST,   /* the RFC says MUST / MUST NOT */
    SK_AUDIT_SHOULD, /* SHOULD / SHOULD NOT, or the RFC's reply for the case */
    SK_AUDIT_BEST,   /* best current practice, not an RFC requirement */
} sk_audit_severity;

#define SK_AUDIT_NSEVERITY 3

typedef enum sk_audit_outcome {
    SK_AUDIT_PASS,
    SK_AUDIT_FAIL,
    SK_AUDIT_SKIP,
} sk_audit_outcome;

/* One step of a check's dialogue. */
typedef enum sk_audit_op {
    SK_AOP_END = 0,
    SK_AOP_CMD,     /* send `text` + CRLF, read one reply, judge it */
    SK_AOP_SEND,    /* send `text` exactly as written (its own CR/LF) */
    SK_AOP_REPLY,   /* read one reply to `cmd`, judge it */
    SK_AOP_COUNT,   /* read replies until the server closes, answers QUIT,
                       or is silent for a moment; exactly `count` expected */
    SK_AOP_TLS,     /* after a 220 to STARTTLS: the TLS handshake */
    SK_AOP_SETUP,   /* like CMD, but a reply outside `allow` makes the check
                       SKIP (the server refused the set-up, not the test) */
    SK_AOP_EHLO,    /* like CMD for EHLO: every keyword line must be a valid
                       ehlo-line, and `absent` must not be offered */
    SK_AOP_DATA,    /* send message data `text` (ends with its own final dot);
                       one reply to "DATA-END" is due, or to `cmd` ("-": none,
                       for a BDAT chunk) */
    SK_AOP_CLOSED,  /* the server closes the connection (after QUIT) */
    SK_AOP_BIGDATA, /* stream `count` KiB more than the advertised SIZE as
                       message data, then the final dot */
} sk_audit_op;

typedef struct sk_audit_step {
    sk_audit_op op;
    /* The line or bytes to send. Placeholders: {helo} {from} {rcpt}
     * {relay} {deliver} {size+1} {long} (a 1000-octet argument). */
    const char *text;
    /* The command the reply answers, as the registry names it ("MAIL",
     * "DATA-END", "AUTH"); NULL: the first word of text. */
    const char *cmd;
    /* Replies allowed, narrowing the registry's list for cmd: codes
     * ("503 554"), classes ("5xx"), exclusions ("-503"); "*" judges only by
     * these, not by the registry's list. NULL: every code the registry lists
     * for cmd. */
    const char *allow;
    int count;          /* SK_AOP_COUNT: replies expected; SK_AOP_BIGDATA: KiB */
    const char *absent; /* SK_AOP_EHLO: a keyword ("STARTTLS") or keyword and
                           parameter ("AUTH PLAIN") the reply must not offer */
    int lines_max;      /* the reply has at most this many lines (0: any) */
} sk_audit_step;

#define SK_AUDIT_STEPS_MAX 12

/* What a check needs before its dialogue (sk_audit_check.needs). */
#define SK_AUDIT_NEED_EHLO 0x001    /* greeting and EHLO first */
#define SK_AUDIT_NEED_TLS 0x002     /* TLS first (STARTTLS, or --tls); SKIP without */
#define SK_AUDIT_NEED_PLAIN 0x004   /* only on a plaintext connection */
#define SK_AUDIT_NEED_MAIL 0x008    /* a MAIL FROM accepted first */
#define SK_AUDIT_NEED_RCPT 0x010    /* and RCPT TO:<{rcpt}> accepted */
#define SK_AUDIT_NEED_AUTH 0x020    /* --auth credentials, logged in first */
#define SK_AUDIT_NEED_DELIVER 0x040 /* only with --deliver-to: sends a message */
#define SK_AUDIT_NEED_CREDS 0x080   /* only with --auth, but not logged in first */
#define SK_AUDIT_GLOBAL 0x100       /* judged over every reply of the run */
#define SK_AUDIT_NO_GREETING 0x200  /* the dialogue reads the greeting itself */

/* Global checks, judged over every reply read in the run. */
typedef enum sk_audit_global {
    SK_AUDIT_G_NONE = 0,
    SK_AUDIT_G_GRAMMAR,  /* RFC 5321 4.2: CRLF, one code per reply, digits */
    SK_AUDIT_G_LINELEN,  /* RFC 5321 4.5.3.1.5: reply lines <= 512 octets */
    SK_AUDIT_G_ENHANCED, /* RFC 2034 4: enhanced codes on every reply */
    SK_AUDIT_G_KNOWN,    /* every reply is one the registry lists for the command */
} sk_audit_global;

typedef struct sk_audit_check {
    const char *name;  /* "rcpt-before-mail" */
    const char *title; /* "RCPT without MAIL is refused with 503" */
    const char *rfc;   /* "RFC 5321 3.3" */
    sk_audit_severity severity;
    unsigned needs;   /* SK_AUDIT_NEED_* */
    const char *cap;  /* EHLO keyword the server must offer, or NULL */
    const char *rule; /* the RFC's requirement in a sentence */
    sk_audit_global global;
    sk_audit_step steps[SK_AUDIT_STEPS_MAX];
} sk_audit_check;

/* The table of checks, in the order they run. */
size_t sk_audit_ncheck(void);
const sk_audit_check *sk_audit_check_at(size_t i);
const sk_audit_check *sk_audit_check_find(const char *name);

/* "MUST", "SHOULD", "best practice"; "PASS", "FAIL", "SKIP". */
const char *sk_audit_severity_name(sk_audit_severity s);
const char *sk_audit_outcome_name(sk_audit_outcome o);

/* ---- replies allowed (from the registry) -------------------------------- */

/* 1 if `code` answers `cmd` as the registry allows and `allow` (codes,
 * "5xx" classes, "-NNN" exclusions; NULL = no narrowing) admits it. */
int sk_audit_allows(const char *allow, const char *cmd, int code);
/* The codes allowed, in words: "503 or 554". "" if none. */
void sk_audit_allowed_text(const char *allow, const char *cmd, char *out, size_t outlen);
/* The explicit codes in `allow` that the registry does not list for `cmd`
 * (a table error); returns how many, the first one in *bad. */
int sk_audit_allow_unlisted(const char *allow, const char *cmd, int *bad);

/* ---- running ------------------------------------------------------------ */

typedef enum sk_audit_tls {
    SK_AUDIT_TLS_NONE,     /* plaintext; STARTTLS only where a check needs it */
    SK_AUDIT_TLS_STARTTLS, /* every check upgrades with STARTTLS first */
    SK_AUDIT_TLS_IMPLICIT, /* TLS from the first byte (port 465) */
} sk_audit_tls;

typedef struct sk_audit_opts {
    const char *host;
    const char *port;
    sk_audit_tls tls;
    int timeout_ms;         /* each wait; default 10000 */
    double max_seconds;     /* the whole run; default 300 */
    double rate;            /* connections per second at most; default 2 */
    const char *helo;       /* EHLO name */
    const char *from;       /* MAIL FROM address ("" = null reverse-path) */
    const char *rcpt;       /* a recipient the server accepts; default "postmaster" */
    const char *relay;      /* a foreign recipient for the relay test */
    const char *deliver_to; /* NULL: nothing is ever delivered */
    const char *auth_user, *auth_pass;
    const char *cafile;
    const char *tls_name;
    const char *only;              /* comma-separated check names, or NULL for all */
    unsigned long long max_stream; /* largest SIZE test streamed (octets) */
    /* Progress: called after each check with its result. */
    void (*on_result)(const struct sk_audit_result *r, void *arg);
    void *on_result_arg;
} sk_audit_opts;

typedef struct sk_audit_line {
    char dir; /* 'C', 'S' or '*' */
    char *text;
} sk_audit_line;

typedef struct sk_audit_result {
    const sk_audit_check *check;
    sk_audit_outcome outcome;
    char reason[600];  /* why it failed or was skipped; "" on PASS */
    char allowed[400]; /* what the RFC allows where a reply was wrong */
    sk_audit_line *dialogue;
    size_t ndialogue;
} sk_audit_result;

typedef struct sk_audit_report {
    char target[300];     /* "host:port" */
    char peer[128];       /* address connected to */
    const char *tls_mode; /* "none", "starttls", "implicit" */
    char greeting[600];
    char started[64];   /* UTC */
    double seconds;     /* how long the run took */
    int could_not_run;  /* 3: no connection or greeting; 4: TLS impossible */
    char error[600];    /* why it could not run */
    int time_limit_hit; /* checks skipped because the run limit was reached */
    char caps[1200];    /* EHLO keywords offered, space-separated lines */
    int delivered;      /* checks that delivered a message (--deliver-to) */
    sk_audit_result *results;
    size_t nresults;
    int pass[SK_AUDIT_NSEVERITY], fail[SK_AUDIT_NSEVERITY], skip[SK_AUDIT_NSEVERITY];
} sk_audit_report;

/* Run the checks. Returns 0 (the report is filled, see could_not_run) or
 * -1 on bad options (out of memory, unknown --only name: message in
 * report->error). */
int sk_audit_run(const sk_audit_opts *o, sk_audit_report *report);
void sk_audit_report_free(sk_audit_report *report);

/* Exit status: 0 clean, 1 SHOULD failures only, 2 a MUST failure,
 * 3 could not connect or no greeting, 4 TLS could not be established. */
int sk_audit_exit_status(const sk_audit_report *report);
/* Score of one severity in percent of the checks run (pass / (pass + fail));
 * -1 when none ran. */
int sk_audit_score(const sk_audit_report *report, sk_audit_severity s);

/* ---- reports ------------------------------------------------------------ */

int sk_audit_write_text(const sk_audit_report *report, sk_buf *out);
int sk_audit_write_json(const sk_audit_report *report, sk_buf *out);
/* A self-contained HTML page (inline style, no script). `body_only`: the
 * report as a fragment for a page that has its own head. */
int sk_audit_write_html(const sk_audit_report *report, int body_only, sk_buf *out);
/* Append s HTML-escaped (& < > " ' and control bytes). */
int sk_html_escape(sk_buf *out, const char *s);

#endif
