/*
 * conn.h - one client connection: its bufferevent, its protocol session,
 * the message being stored and the counters logged at disconnect. Shared by
 * conn.c (I/O, timers, lifecycle) and conn_ops.c (the session callbacks).
 */
#ifndef SMTPKIT_SERVER_CONN_H
#define SMTPKIT_SERVER_CONN_H

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <time.h>

#include "server/auth_limit.h"
#include "server/server_internal.h"
#include "smtpkit/session.h"
#include "smtpkit/store.h"

struct sk_conn {
    struct sk_server *srv;
    sk_listener *lst;
    sk_conn *prev, *next;
    unsigned long long id;
    struct bufferevent *bev; /* NULL once the socket is closed */
    sk_session *session;
    sk_peer peer;
    char addr[INET6_ADDRSTRLEN];
    char limit_key[INET6_ADDRSTRLEN + 4]; /* the address, or its /64 for IPv6 */
    unsigned port;
    struct timespec started;
    /* PROXY protocol listeners: the proxy's own address ("" otherwise), and
     * the header being read (no session exists until it is complete). */
    char via[INET6_ADDRSTRLEN];
    struct sk_proxy_wait *proxy;
    /* for the metrics: the TLS version in use, when the commit started */
    const char *tls_version;
    struct timespec commit_started;

    /* the message being received, and the one being committed */
    sk_store_msg *msg;
    char queued_id[32];   /* the message being committed has queued copies:
                             the delivery agent hears of it once durable */
    char msg_id[32];      /* its id: the store-error log line, the milters' "i" macro */
    int store_err_logged; /* the message's failed store step is logged */

    /* the listener's milters (milter.c), NULL without; a step in flight */
    struct sk_milters *milters;
    int policy_pending;

    int counted;           /* counted in srv->per_ip */
    int commit_pending;    /* the commit queue holds a callback to us */
    int auth_pending;      /* the work queue holds a password check for us */
    int commit_failed_now; /* the queue refused the message (conn_process answers) */
    int closing;           /* session wants to close: flush, then end */
    int ended;             /* socket closed; freed once no commit is pending */
    int out_blocked;       /* too much unsent output: not reading */
    int peer_eof;          /* the client closed its sending side */
    int in_data_timeouts;  /* the data timeout is armed (SK_IN_DATA) */
    int shutdown_sent;     /* 421 for shutdown queued */
    const char *reason;    /* why the connection ends, for the log */

    /* TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS) */
    int tls_state;                 /* 0 plain, 1 handshake running, 2 established */
    struct bufferevent *tls_under; /* STARTTLS: the socket under the TLS filter */

    /* AUTH (RFC 4954): set by the auth_check callback, acted on by conn.c */
    sk_auth_conn auth;      /* failures on this connection */
    int auth_hold;          /* a failed AUTH's reply is held back ... */
    unsigned auth_delay_ms; /* ... this long */
    int auth_close;         /* then 421 4.7.0 and close: too many failures */
    char *dovecot_user;     /* the user of a check Dovecot is answering (for the log) */
    struct event *auth_timer;

    unsigned long long bytes_in, bytes_out;
    unsigned messages, failed_messages;
    int last_code; /* last reply code sent */

    /* Deadlines (limits.command_deadline / message_deadline) and the
     * lingering close share one timer. */
    struct event *timer;
    int deadline_armed;   /* a command line or message is being timed */
    int deadline_in_data; /* ... and it is message data */
    int lingering;        /* our side is shut; draining input until EOF or the timer */
};

/* conn.c, for proxy_accept.c: set the client's address and port (and the
 * per-address limit key); start the session on a connection whose client
 * is known (greeting, or the implicit-TLS handshake); drop a connection
 * that never got a session, without a disconnect line. */
void sk_conn_set_peer(sk_conn *c, int family, const void *addr, unsigned port);
void sk_conn_begin(sk_conn *c, int fd);
void sk_conn_discard(sk_conn *c);

/* proxy_accept.c: read the PROXY header on fd before anything else (the
 * connection is linked and counted, but has no session yet); cancel it
 * (shutdown, teardown). */
void sk_proxy_accept_start(sk_conn *c, int fd);
void sk_proxy_accept_cancel(sk_conn *c, const char *reason);

/* conn_ops.c */
extern const sk_session_ops sk_conn_ops;
/* One event=store-error line: which store step failed, on what, errno,
 * and in words what errno cannot say (an LMTP server's reply). */
void sk_conn_log_store_error(sk_conn *c, sk_store_result r, const sk_store_error *e);
/* The commit queue finished our message (conn.c resumes the connection). */
void sk_conn_commit_done(void *arg, const sk_store_outcome *out);
/* A password check has ended with the session's verdict (1, 0, -1; the
 * auth_hold fields already set): conn.c resumes, or frees a connection
 * that ended meanwhile. */
void sk_conn_auth_done(sk_conn *c, int result);

#endif
