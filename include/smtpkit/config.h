/*
 * config.h - the server configuration: one file in libconfig syntax,
 * described in smtpkit.conf(5). Loading validates everything (types, ranges,
 * unknown settings, RFC 5321 minima such as 100 recipients and 512-octet
 * lines) and reports the first problem as "FILE:LINE: message".
 *
 * Relative paths in the file are resolved against the directory that holds
 * the file, so a configuration works the same from any working directory.
 */
#ifndef SMTPKIT_CONFIG_H
#define SMTPKIT_CONFIG_H

#include <stddef.h>

#include "smtpkit/retry.h"
#include "smtpkit/session.h"

typedef enum sk_log_target {
    SK_LOG_STDERR,  /* one line per event with a UTC timestamp */
    SK_LOG_SYSLOG,  /* syslog(3), facility from the configuration */
    SK_LOG_FILE,    /* lines as for stderr, appended to log_file; SIGUSR1 reopens it */
    SK_LOG_JOURNAL, /* journald with one field per key=value (needs libsystemd) */
} sk_log_target;

/* TLS for outbound delivery: a default and per-destination exceptions. */
typedef enum sk_tls_policy {
    SK_TLS_MAY,     /* STARTTLS whenever offered; an unverifiable certificate
                       still encrypts; plaintext when not offered (default) */
    SK_TLS_ENCRYPT, /* STARTTLS required, certificate not checked */
    SK_TLS_VERIFY,  /* STARTTLS required and the certificate must verify */
} sk_tls_policy;

/* One `delivery.tls_policies` entry: "example.org" matches that domain
 * only, ".example.org" its subdomains (not example.org itself). */
typedef struct sk_tls_policy_rule {
    char *domain; /* lower case, as written (with the leading dot if any) */
    sk_tls_policy policy;
} sk_tls_policy_rule;

/* The `delivery` group: the outbound queue and the delivery agent
 * (docs/DELIVERY.md). Times in seconds. */
typedef struct sk_delivery_config {
    int enabled;                          /* 1 (default); 0: mail is queued, the agent does not
                                             run (the queue waits for `smtpkit queue` or a
                                             later start with delivery on) */
    sk_retry_policy retry;                /* retry_min, retry_max, max_queue_lifetime,
                                             delay_warning (jitter fixed at 10%) */
    unsigned connections_per_destination; /* 20 (Postfix's default) */
    unsigned max_connections;             /* outbound connections in all, 100 */
    unsigned messages_per_connection;     /* then QUIT and a new connection, 100 */
    unsigned recipients_per_transaction;  /* RCPTs per MAIL, 50 */
    sk_tls_policy tls_policy;             /* the default, "may" */
    sk_tls_policy_rule *tls_policies;     /* per-destination exceptions */
    size_t ntls_policies;
    /* RFC 5321 4.5.3.2 client timeouts */
    unsigned timeout_greeting;   /* 220: 300 */
    unsigned timeout_mail;       /* MAIL: 300 */
    unsigned timeout_rcpt;       /* RCPT: 300 */
    unsigned timeout_data;       /* DATA's 354: 120 */
    unsigned timeout_data_block; /* each block of data sent: 180 */
    unsigned timeout_final_dot;  /* the reply to the final dot: 600 */
    char *dns_servers;           /* tests only: "IP[:PORT],..." for c-ares, or NULL
                                    (the system resolver, /etc/resolv.conf) */
    unsigned smtp_port;          /* tests only: the MX port, 25 */
} sk_delivery_config;

/* One milter (Sendmail's mail filter protocol) a listener consults. */
typedef struct sk_milter_config {
    char *socket;         /* "inet:HOST:PORT", "inet:PORT@HOST", "inet6:...", "unix:/path" */
    int default_tempfail; /* unreachable, timed out or garbled: 1 tempfail, 0 accept,
                             -1 the top-level milter_default_action */
    unsigned timeout;     /* seconds per connect and per reply; 0: milter_timeout */
    int line;
} sk_milter_config;

/* One listening socket and the session policy for connections on it. */
typedef struct sk_listener_config {
    char *address; /* numeric: "127.0.0.1", "::1", "0.0.0.0", "::" */
    unsigned port;
    int line;                  /* where it is defined, for messages */
    int proxy_protocol;        /* a PROXY v1/v2 header precedes every connection */
    sk_milter_config *milters; /* consulted in order at each step (milter.c) */
    size_t nmilters;
    sk_session_config session; /* limits copied from the limits group, the
                                  policy fields from the listener; hostname
                                  points at sk_config.server_name */
} sk_listener_config;

/* address -> Maildir directory (absolute). */
typedef struct sk_mailbox_config {
    char *address; /* as written; matching rules live in policy.c */
    char *maildir;
    int line;
} sk_mailbox_config;

/* address -> one or more addresses (local or, with a relay queue, remote). */
typedef struct sk_alias_config {
    char *address;
    char **targets;
    size_t ntargets;
    int line;
} sk_alias_config;

/* Every unknown local part of `domain` goes to `target`. */
typedef struct sk_catchall_config {
    char *domain;
    char *target;
    int line;
} sk_catchall_config;

typedef struct sk_config {
    char *path; /* the file as given */
    char *dir;  /* absolute directory of the file (base of relative paths) */

    char *server_name; /* our name in 220 / EHLO / Received */
    char *user;        /* account to run as when started as root, or NULL */
    char *mail_root;   /* absolute; base of relative maildir paths */
    char *spool_dir;   /* absolute; message files before they are linked,
                          on the same filesystem as the mailboxes */
    char *relay_queue; /* absolute Maildir for mail to other domains, or NULL */
    sk_log_target log_target;
    int syslog_facility; /* LOG_MAIL etc. */
    char *postmaster;    /* address postmaster mail goes to; NULL: first mailbox */
    int local_part_case_sensitive;
    int forward_notify; /* aliases to other domains answer 251 instead of 250 */
    unsigned commit_threads;
    char *lmtp;                /* "unix:/path" or "host:port": local mail goes to this LMTP
                                  server instead of the Maildirs; NULL: Maildirs */
    unsigned lmtp_connections; /* at most this many LMTP connections */

    /* limits */
    size_t max_message_size;
    unsigned max_recipients;
    size_t max_line;
    unsigned max_errors;
    unsigned max_commands;
    unsigned max_received_headers; /* RFC 5321 6.3: more refuse the message */
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned command_timeout; /* seconds, RFC 5321 4.5.3.2.7: at least 300 advised */
    unsigned data_timeout;    /* seconds between data blocks (4.5.3.2.6) */
    unsigned shutdown_grace;  /* seconds a message in progress may take at shutdown */
    size_t input_buffer;      /* unconsumed input kept per connection */
    size_t output_buffer;     /* unsent replies kept per connection */

    /* Deadlines in seconds (0: none), however steadily the client trickles
     * bytes in: one command line from its first octet to its CRLF; one
     * message's data (354 to the final dot, or one BDAT chunk). */
    unsigned command_deadline;
    unsigned message_deadline;

    sk_bare_policy bare_policy;
    int vrfy_discloses;
    int expn_enabled;

    sk_listener_config *listeners;
    size_t nlisteners;

    char **domains;
    size_t ndomains;
    sk_mailbox_config *mailboxes;
    size_t nmailboxes;
    sk_alias_config *aliases;
    size_t naliases;
    sk_catchall_config *catchalls;
    size_t ncatchalls;
    char **trusted_networks;
    size_t ntrusted;
    int trusted_line; /* line of trusted_networks, for messages */

    /* TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS); paths absolute, NULL
     * when not configured (then no listener may use TLS). */
    char *tls_certificate;       /* PEM chain, leaf first */
    char *tls_key;               /* PEM private key */
    int tls_generate_if_missing; /* write a self-signed pair when both are absent */
    int tls_min_version;         /* 12 (TLS 1.2, default) or 13 */
    char *tls_ciphers;           /* TLS 1.2 cipher list, NULL: built-in default */
    char *tls_ciphersuites;      /* TLS 1.3 suites, NULL: OpenSSL's default */

    /* AUTH (RFC 4954) */
    char *passwd_file;            /* absolute; Dovecot passwd-file (any Dovecot scheme) */
    char *dovecot_auth;           /* absolute; Dovecot's auth-client socket (instead of
                                     passwd_file) */
    char *auth_username_format;   /* Dovecot's auth_username_format for passwd_file;
                                     NULL: "%u", the name as given */
    int sender_must_match_login;  /* MAIL FROM must be the user's own address (553 5.7.1) */
    unsigned auth_failures;       /* per client address per window */
    unsigned auth_failure_window; /* seconds */
    unsigned auth_failures_per_connection; /* then 421 4.7.0 and close */
    unsigned auth_failure_delay_ms;        /* a failed AUTH is answered this late */

    /* PROXY protocol (HAProxy's proxy-protocol.txt): the proxies allowed to
     * send a header on a proxy_protocol listener, and how long one may take
     * to arrive (seconds). */
    char **proxy_networks;
    size_t nproxy_networks;
    unsigned proxy_timeout;

    /* milters: what a milter that cannot be reached (or times out, or
     * answers garbage) means: 1 tempfail (default), 0 accept; and how long
     * a connect or one reply may take (seconds, 30). */
    int milter_default_tempfail;
    unsigned milter_timeout;

    char *pid_file; /* absolute, or NULL: no pid file */
    char *log_file; /* absolute, with log_target SK_LOG_FILE */

    /* The Prometheus endpoint: numeric address and port, or NULL (off). */
    char *metrics_address;
    unsigned metrics_port;
    sk_delivery_config delivery;
} sk_config;

/* The TLS policy for mail to `domain`: the most specific tls_policies entry
 * (an exact match, else the longest ".suffix"), else d->tls_policy. */
sk_tls_policy sk_delivery_tls_policy(const sk_delivery_config *d, const char *domain);

/* Load and validate `path`. NULL on error with "FILE:LINE: message" (or
 * "FILE: message") in err. */
sk_config *sk_config_load(const char *path, char *err, size_t errlen);
void sk_config_free(sk_config *cfg);

#endif
