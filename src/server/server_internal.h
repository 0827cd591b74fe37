/*
 * server_internal.h - the server's shared state, seen by server.c (loop,
 * listeners, signals), conn.c (one client connection) and conn_ops.c (the
 * session's callbacks: recipient policy and storage).
 */
#ifndef SMTPKIT_SERVER_INTERNAL_H
#define SMTPKIT_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/listener.h>

#include "server/metrics.h"
#include "server/peer_count.h"
#include "server/runas.h"
#include "smtpkit/config.h"
#include "smtpkit/policy.h"
#include "smtpkit/server.h"
#include "smtpkit/store.h"

typedef struct sk_conn sk_conn;
typedef struct sk_tls_server sk_tls_server;
typedef struct sk_auth_service sk_auth_service;
typedef struct sk_work_queue sk_work_queue;
typedef struct sk_dovecot_auth sk_dovecot_auth;
typedef struct sk_queue_control sk_queue_control;

typedef struct sk_listener {
    struct sk_server *srv;
    const sk_listener_config *cfg;
    struct evconnlistener *lev;
    struct event *retry; /* re-enables accepting after EMFILE/ENFILE */
    char label[80];      /* "127.0.0.1:25" / "[::1]:25" */
} sk_listener;

struct sk_server {
    sk_config *cfg;
    sk_policy *policy; /* swapped by a reload; lookups never keep pointers */
    sk_runas runas;
    struct event_base *base;
    sk_listener *listeners;
    size_t nlisteners;
    sk_store *store;
    sk_commit_queue *queue;
    struct event *queue_ev;
    sk_work_queue *work; /* password checks (AUTH) off the loop */
    struct event *work_ev;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *sig_usr1; /* reopen the log file */
    struct event *grace_timer;
    sk_peer_count *per_ip;
    sk_conn *conns; /* doubly linked list of open connections */
    unsigned nconns;
    unsigned long long next_conn_id;
    unsigned long long messages; /* accepted since start */
    int shutting_down;
    int grace_over;
    sk_tls_server *tls;         /* NULL without tls_certificate; swapped by a reload */
    sk_auth_service *auth;      /* NULL without passwd_file or dovecot_auth; reloaded by SIGHUP */
    sk_dovecot_auth *dovecot;   /* dovecot_auth: Dovecot checks the passwords, auth the budgets */
    struct sk_cidr *proxy_nets; /* proxies allowed to send a PROXY header */
    size_t nproxy_nets;
    int pid_written;             /* cfg->pid_file is ours to remove at exit */
    sk_metrics metrics;          /* counters for the metrics endpoint */
    struct evhttp *metrics_http; /* NULL unless `metrics` is set */
    struct sk_agent *agent;      /* the delivery agent: NULL without relay_queue */
    sk_queue_control *control;   /* <relay_queue>/control, NULL without relay_queue */
};

/* conn.c */
void sk_conn_accept(sk_listener *l, int fd, const struct sockaddr *sa, int socklen);
/* The server is stopping: send 421 when the session is between messages. */
void sk_conn_shutdown(sk_conn *c);
/* The shutdown grace time is over: close whatever is not committing. */
void sk_conn_grace_expired(sk_conn *c);
sk_conn *sk_conn_next(const sk_conn *c);
/* Close and free now (server teardown; no commit or auth check may be
 * pending). */
void sk_conn_abort(sk_conn *c);
/* server.c: a connection has been freed. */
void sk_server_conn_gone(struct sk_server *srv);

/* proxy_accept.c: (re)build srv->proxy_nets from cfg->proxy_networks
 * (already validated by the loader). 0, or -1 out of memory (the old list
 * is kept). */
int sk_proxy_networks_set(struct sk_server *srv, const sk_config *cfg);
void sk_proxy_networks_free(struct sk_server *srv);

/* metrics_http.c: the `metrics` endpoint, bound before the privilege drop
 * (0, or -1 with err); freed at the end. */
int sk_metrics_http_start(struct sk_server *srv, char *err, size_t errlen);
void sk_metrics_http_free(struct sk_server *srv);

/* server_security.c: TLS context and AUTH backend. init runs before the
 * privilege drop (0 or -1 with err); so does sk_server_security_check_files
 * (server/server_security.h). */
int sk_server_security_init(struct sk_server *srv, char *err, size_t errlen);
void sk_server_security_reload(struct sk_server *srv, const sk_config *nc);
/* After the privilege drop, with the loop made: connect to Dovecot's auth
 * socket (dovecot_auth), as the unprivileged user. 0 or -1 with err. */
int sk_server_security_start(struct sk_server *srv, char *err, size_t errlen);
/* Before the connections are closed at teardown: answer the password
 * checks still waiting on Dovecot. */
void sk_server_security_stop(struct sk_server *srv);
void sk_server_security_free(struct sk_server *srv);

#endif
