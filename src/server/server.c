/*
 * server.c - the server's life: start-up order (tables, directories,
 * sockets, privilege drop, store, commit queue), the libevent loop with its
 * listeners, and the signals.
 *
 * With relay_queue set, the last start-up step opens the queue control
 * socket <relay_queue>/control (queue_control.c, `smtpkit queue`).
 *
 * Start-up as root: bind every listener, create and hand the mail
 * directories to the configured user, then drop to that user; only then
 * does the loop accept a connection or read a byte (least privilege).
 *
 * The delivery agent (delivery/agent.h) starts on the same loop once the
 * store and the work queue are up, when there is a relay_queue; SIGTERM
 * stops it first (connections out are closed: nothing was written for an
 * unfinished attempt, so those messages are tried again after the restart).
 *
 * SIGTERM / SIGINT: stop accepting; idle sessions get 421 4.3.2 (RFC 5321
 * 3.8: a server shutting down may close with 421); sessions in the middle
 * of a message finish it first, for at most limits.shutdown_grace seconds;
 * commits in flight always complete; then exit 0.
 * SIGUSR1: reopen the log file (log = "/path") after logrotate moved it.
 * SIGHUP: re-read the file and swap in the new recipient tables (domains,
 * mailboxes, aliases, catch-all, postmaster, trusted networks) without
 * touching a session; a bad file keeps the old tables and logs why. The
 * TLS certificate and the password file are re-read too (new connections
 * get them; a broken one keeps the previous, see server_security.c).
 */
#include "server/server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "delivery/agent.h"
#include "queue/control_socket.h"
#include "server/conn.h"
#include "server/log.h"
#include "server/pathutil.h"
#include "server/pid_file.h"
#include "server/queue_control.h"
#include "server/server_security.h"
#include "server/service_notify.h"
#include "server/work_queue.h"

/* Threads for password checks: hashing is CPU-bound, and a couple of
 * threads keep a burst of AUTH from queueing long. */
#define SK_SERVER_WORK_THREADS 2

static void listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                               int socklen, void *arg)
{
    (void)lev;
    sk_conn_accept(arg, fd, sa, socklen);
}

static void listener_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_listener *l = arg;
    if (l->lev && !l->srv->shutting_down)
        evconnlistener_enable(l->lev);
}

/* accept() failed: out of descriptors, typically. Pause this listener for a
 * second instead of spinning on a readable socket we cannot accept from. */
static void listener_error_cb(struct evconnlistener *lev, void *arg)
{
    sk_listener *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    sk_log(LOG_WARNING, "event=accept-error listener=%s error=\"%s\" pause_s=1", l->label,
           evutil_socket_error_to_string(e));
    evconnlistener_disable(lev);
    struct timeval one = {.tv_sec = 1};
    if (l->retry)
        evtimer_add(l->retry, &one);
}

/* Bind one listener (disabled until the loop starts). Returns 1 bound,
 * 0 skipped with a warning (IPv6 absent), -1 fatal. */
static int listener_bind(sk_server *srv, sk_listener *l, const sk_listener_config *lc, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    int v6 = strchr(lc->address, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)lc->port);
        inet_pton(AF_INET6, lc->address, &s6->sin6_addr);
        len = sizeof *s6;
        snprintf(l->label, sizeof l->label, "[%s]:%u", lc->address, lc->port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)lc->port);
        inet_pton(AF_INET, lc->address, &s4->sin_addr);
        len = sizeof *s4;
        snprintf(l->label, sizeof l->label, "%s:%u", lc->address, lc->port);
    }
    l->srv = srv;
    l->cfg = lc;
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
                     LEV_OPT_DISABLED | (v6 ? LEV_OPT_BIND_IPV6ONLY : 0);
    errno = 0;
    l->lev = evconnlistener_new_bind(srv->base, listener_accept_cb, l, flags, 511,
                                     (struct sockaddr *)&ss, (int)len);
    if (!l->lev) {
        int e = errno;
        if (v6 && (e == EADDRNOTAVAIL || e == EAFNOSUPPORT)) {
            sk_log(LOG_WARNING, "event=listen-skipped listener=%s error=\"%s\" (no IPv6 here?)",
                   l->label, strerror(e));
            return 0;
        }
        snprintf(err, errlen, "%s:%d: cannot listen on %s: %s", srv->cfg->path, lc->line, l->label,
                 strerror(e ? e : EINVAL));
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, listener_error_cb);
    l->retry = evtimer_new(srv->base, listener_retry_cb, l);
    return 1;
}

static void stop_listening(sk_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        sk_listener *l = &srv->listeners[i];
        if (l->lev) {
            evconnlistener_free(l->lev);
            l->lev = NULL;
        }
        if (l->retry) {
            event_free(l->retry);
            l->retry = NULL;
        }
    }
}

void sk_server_conn_gone(sk_server *srv)
{
    if (srv->shutting_down && srv->nconns == 0)
        event_base_loopexit(srv->base, NULL);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_server *srv = arg;
    srv->grace_over = 1;
    sk_log(LOG_INFO, "event=shutdown-grace-over conns=%u", srv->nconns);
    sk_conn *c = srv->conns;
    while (c) {
        sk_conn *next = sk_conn_next(c); /* c may be freed */
        sk_conn_grace_expired(c);
        c = next;
    }
    sk_server_conn_gone(srv);
}

static void begin_shutdown(sk_server *srv, const char *signame)
{
    if (srv->shutting_down) {
        sk_log(LOG_INFO, "event=shutdown-again signal=%s conns=%u", signame, srv->nconns);
        if (!srv->grace_over)
            grace_cb(-1, 0, srv);
        return;
    }
    srv->shutting_down = 1;
    sk_log(LOG_INFO, "event=shutdown signal=%s conns=%u grace_s=%u", signame, srv->nconns,
           srv->cfg->shutdown_grace);
    stop_listening(srv);
    sk_agent_stop(srv->agent);
    sk_conn *c = srv->conns;
    while (c) {
        sk_conn *next = sk_conn_next(c);
        sk_conn_shutdown(c);
        c = next;
    }
    if (srv->nconns == 0) {
        event_base_loopexit(srv->base, NULL);
        return;
    }
    struct timeval tv = {.tv_sec = srv->cfg->shutdown_grace};
    srv->grace_timer = evtimer_new(srv->base, grace_cb, srv);
    if (srv->grace_timer)
        evtimer_add(srv->grace_timer, &tv);
    else
        grace_cb(-1, 0, srv);
}

/* Create every Maildir the tables name (as the running user: after a reload
 * the server is no longer root). Failures are logged, not fatal: the store
 * creates missing directories itself and reports errors per message. */
static void create_maildirs(sk_server *srv, const sk_policy *p, int fatal, char *err, size_t errlen,
                            int *failed)
{
    if (srv->cfg->lmtp)
        return; /* the LMTP server stores local mail: the maildir values are unused */
    for (size_t i = 0; i < sk_policy_nmaildirs(p); i++) {
        char why[512];
        const char *dir = sk_policy_maildir(p, i);
        if (sk_runas_prepare_dir(&srv->runas, srv->cfg->mail_root, dir, 1, why, sizeof why) != 0) {
            if (fatal) {
                snprintf(err, errlen, "%s", why);
                *failed = 1;
                return;
            }
            sk_log(LOG_WARNING, "event=maildir-error dir=%s error=\"%s\"", dir, why);
        }
    }
}

static void reload(sk_server *srv)
{
    char err[1024];
    sk_config *nc = sk_config_load(srv->cfg->path, err, sizeof err);
    sk_policy *np = nc ? sk_policy_new(nc, err, sizeof err) : NULL;
    if (!np) {
        sk_log(LOG_ERR, "event=reload-failed error=\"%s\" keeping=previous-tables", err);
        sk_config_free(nc);
        return;
    }
    int dummy = 0;
    create_maildirs(srv, np, 0, err, sizeof err, &dummy);
    sk_server_security_reload(srv, nc);
    sk_proxy_networks_set(srv, nc);
    sk_policy_free(srv->policy);
    srv->policy = np;
    const sk_config *oc = srv->cfg;
    int restart =
        nc->nlisteners != oc->nlisteners || strcmp(nc->mail_root, oc->mail_root) ||
        nc->max_message_size != oc->max_message_size || nc->max_recipients != oc->max_recipients ||
        nc->command_timeout != oc->command_timeout || nc->max_connections != oc->max_connections ||
        nc->max_connections_per_ip != oc->max_connections_per_ip || !nc->lmtp != !oc->lmtp ||
        (nc->lmtp && strcmp(nc->lmtp, oc->lmtp)) || nc->lmtp_connections != oc->lmtp_connections;
    sk_log(LOG_INFO, "event=reload domains=%zu mailboxes=%zu aliases=%zu%s", sk_policy_ndomains(np),
           sk_policy_nmailboxes(np), sk_policy_naliases(np),
           restart ? " note=\"listener, path and limit changes take effect at restart\"" : "");
    sk_config_free(nc);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    sk_server *srv = arg;
    if (sig == SIGHUP) {
        if (!srv->shutting_down) {
            /* sd_notify(3): RELOADING=1 with the clock reading, then READY=1 */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            sk_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
                      (unsigned long long)now.tv_sec * 1000000ULL +
                          (unsigned long long)now.tv_nsec / 1000ULL);
            reload(srv);
            sk_notify("READY=1\nSTATUS=Reloaded; serving");
        }
        return;
    }
    if (sig == SIGUSR1) {
        /* logrotate has moved the file: continue in a new one by its name */
        char why[512];
        int r = sk_log_reopen(why, sizeof why);
        if (r > 0)
            sk_log(LOG_INFO, "event=log-reopened file=%s", srv->cfg->log_file);
        else if (r < 0)
            sk_log(LOG_ERR, "event=log-reopen-failed error=\"%s\" keeping=previous-file", why);
        return;
    }
    sk_notify("STOPPING=1\nSTATUS=Stopping: finishing open sessions");
    begin_shutdown(srv, sig == SIGTERM ? "TERM" : "INT");
}

static void work_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_server *srv = arg;
    sk_work_queue_drain(srv->work);
}

static void queue_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_server *srv = arg;
    sk_commit_queue_drain(srv->queue);
}

sk_server *sk_server_new(sk_config *cfg, char *err, size_t errlen)
{
    sk_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        sk_config_free(cfg);
        return NULL;
    }
    srv->cfg = cfg;
    sk_log_open(cfg->log_target, cfg->syslog_facility);
    if (cfg->log_target == SK_LOG_FILE && sk_log_open_file(cfg->log_file, err, errlen) != 0)
        goto fail;
    /* A peer that resets while we write must not kill the server. */
    signal(SIGPIPE, SIG_IGN);

    if (!(srv->policy = sk_policy_new(cfg, err, errlen)))
        goto fail;
    if (sk_proxy_networks_set(srv, cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (sk_runas_resolve(cfg->user, &srv->runas, err, errlen) != 0)
        goto fail;
    if (srv->runas.note[0])
        sk_log(LOG_WARNING, "event=user-ignored note=\"%s\"", srv->runas.note);
    /* Keys and passwords are read while still privileged; a SIGHUP reads
     * them again as the user, so refuse now what the user cannot read. */
    if (sk_server_security_init(srv, err, errlen) != 0)
        goto fail;
    char why[512];
    if (sk_server_security_check_files(cfg, &srv->runas, 1, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", cfg->path, why);
        goto fail;
    }

    /* Directories, handed to the user while we are still root. */
    if (sk_runas_prepare_dir(&srv->runas, cfg->mail_root, cfg->mail_root, 0, err, errlen) != 0 ||
        sk_runas_prepare_dir(&srv->runas, cfg->mail_root, cfg->spool_dir, 0, err, errlen) != 0 ||
        (cfg->relay_queue &&
         sk_runas_prepare_dir(&srv->runas, cfg->mail_root, cfg->relay_queue, 0, err, errlen) != 0))
        goto fail;
    int failed = 0;
    create_maildirs(srv, srv->policy, 1, err, errlen, &failed);
    if (failed)
        goto fail;

    srv->per_ip = sk_peer_count_new();
    srv->base = event_base_new();
    if (!srv->per_ip || !srv->base) {
        snprintf(err, errlen, "cannot create the event loop");
        goto fail;
    }
    srv->listeners = calloc(cfg->nlisteners, sizeof *srv->listeners);
    if (!srv->listeners) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    size_t bound = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        int r =
            listener_bind(srv, &srv->listeners[srv->nlisteners], &cfg->listeners[i], err, errlen);
        if (r < 0)
            goto fail;
        if (r > 0) {
            srv->nlisteners++;
            bound++;
        }
    }
    if (!bound) {
        snprintf(err, errlen, "%s: no listener could be opened", cfg->path);
        goto fail;
    }
    if (sk_metrics_http_start(srv, err, errlen) != 0)
        goto fail;

    /* Still privileged: the pid file (it may live in a root-owned /run
     * directory) and the service manager's socket (connected now, usable
     * after the drop). Both after the bind: an instance that cannot bind
     * must not touch a running one's pid file. */
    if (cfg->pid_file) {
        if (sk_pid_file_write(cfg->pid_file, err, errlen) != 0)
            goto fail;
        srv->pid_written = 1;
    }
    char nerr[512];
    if (sk_notify_open(nerr, sizeof nerr) != 0)
        sk_log(LOG_WARNING, "event=notify-unavailable error=\"%s\"", nerr);

    /* Least privilege from here on. */
    if (sk_runas_drop(&srv->runas, err, errlen) != 0)
        goto fail;
    if (access(cfg->path, R_OK) != 0)
        sk_log(LOG_WARNING,
               "event=config-unreadable file=%s user=%s note=\"SIGHUP reload will "
               "fail until the file is readable\"",
               cfg->path, srv->runas.name);

    /* A server already answering on this queue's control socket would
     * deliver the same messages: refuse before touching the queue. */
    if (cfg->relay_queue && sk_control_probe(cfg->relay_queue) == 1) {
        snprintf(err, errlen, "%s/%s answers: another server runs on this queue", cfg->relay_queue,
                 SK_CONTROL_SOCKET_NAME);
        goto fail;
    }
    /* The spool, and the outbound queue under relay_queue (msg/ env/ tmp/,
     * created now as the user). */
    srv->store = sk_store_open(cfg->spool_dir, cfg->relay_queue, why, sizeof why);
    if (!srv->store) {
        snprintf(err, errlen, "cannot open the store in %s: %s", cfg->spool_dir, why);
        goto fail;
    }
    /* Local mail to an LMTP server: handed over on the commit threads,
     * which then wait on it, so at least one thread per connection. */
    unsigned threads = cfg->commit_threads;
    if (cfg->lmtp) {
        if (sk_store_set_lmtp(srv->store, cfg->lmtp, cfg->lmtp_connections, cfg->server_name, why,
                              sizeof why) != 0) {
            snprintf(err, errlen, "%s", why);
            goto fail;
        }
        if (threads < cfg->lmtp_connections)
            threads = cfg->lmtp_connections;
        sk_log(LOG_INFO, "event=lmtp target=%s connections=%u", cfg->lmtp, cfg->lmtp_connections);
    }
    /* Files abandoned in tmp/ by a crash (Maildir: older than 36 hours). */
    for (size_t i = 0; !cfg->lmtp && i < sk_policy_nmaildirs(srv->policy); i++) {
        int n = sk_store_maildir_clean_tmp(sk_policy_maildir(srv->policy, i));
        if (n > 0)
            sk_log(LOG_INFO, "event=tmp-cleaned maildir=%s files=%d",
                   sk_policy_maildir(srv->policy, i), n);
    }
    srv->queue = sk_commit_queue_new((int)threads);
    if (!srv->queue) {
        snprintf(err, errlen, "cannot start the commit threads");
        goto fail;
    }
    srv->queue_ev =
        event_new(srv->base, sk_commit_queue_fd(srv->queue), EV_READ | EV_PERSIST, queue_cb, srv);
    /* Password hashes take tens of milliseconds each: never on the loop. */
    srv->work = sk_work_queue_new(SK_SERVER_WORK_THREADS);
    if (!srv->work) {
        snprintf(err, errlen, "cannot start the worker threads");
        goto fail;
    }
    srv->work_ev =
        event_new(srv->base, sk_work_queue_fd(srv->work), EV_READ | EV_PERSIST, work_cb, srv);
    srv->sig_term = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, signal_cb, srv);
    srv->sig_hup = evsignal_new(srv->base, SIGHUP, signal_cb, srv);
    srv->sig_usr1 = evsignal_new(srv->base, SIGUSR1, signal_cb, srv);
    if (!srv->sig_usr1 || evsignal_add(srv->sig_usr1, NULL)) {
        snprintf(err, errlen, "cannot register events");
        goto fail;
    }
    if (!srv->queue_ev || !srv->work_ev || !srv->sig_term || !srv->sig_int || !srv->sig_hup ||
        event_add(srv->queue_ev, NULL) || event_add(srv->work_ev, NULL) ||
        evsignal_add(srv->sig_term, NULL) || evsignal_add(srv->sig_int, NULL) ||
        evsignal_add(srv->sig_hup, NULL)) {
        snprintf(err, errlen, "cannot register events");
        goto fail;
    }
    if (sk_server_security_start(srv, err, errlen) != 0)
        goto fail;
    if (cfg->relay_queue && cfg->delivery.enabled) {
        srv->agent = sk_agent_new(srv->base, cfg, &srv->policy, srv->store, srv->work, err, errlen);
        if (!srv->agent)
            goto fail;
    }
    /* The queue control socket (`smtpkit queue`), last: it hands requests
     * to the delivery agent, made before it (NULL: delivery.enabled is
     * false, and none runs). */
    if (cfg->relay_queue && !(srv->control = sk_queue_control_start(srv->base, cfg->relay_queue,
                                                                    srv->agent, err, errlen)))
        goto fail;
    return srv;
fail:
    sk_server_free(srv);
    return NULL;
}

int sk_server_run(sk_server *srv)
{
    char labels[512];
    size_t off = 0;
    labels[0] = '\0';
    for (size_t i = 0; i < srv->nlisteners; i++) {
        evconnlistener_enable(srv->listeners[i].lev);
        int n = snprintf(labels + off, sizeof labels - off, "%s%s", i ? "," : "",
                         srv->listeners[i].label);
        if (n > 0 && (size_t)n < sizeof labels - off)
            off += (size_t)n;
    }
    sk_log(LOG_INFO,
           "event=start version=%s name=%s listeners=%s user=%s domains=%zu mailboxes=%zu "
           "aliases=%zu mail_root=%s",
           SMTPKIT_VERSION, srv->cfg->server_name, labels, srv->runas.name,
           sk_policy_ndomains(srv->policy), sk_policy_nmailboxes(srv->policy),
           sk_policy_naliases(srv->policy), srv->cfg->mail_root);
    if (srv->agent)
        sk_agent_start(srv->agent);
    /* Listeners bound and enabled, the loop about to run: ready. */
    sk_notify("READY=1\nSTATUS=Serving on %s\nMAINPID=%ld", labels, (long)getpid());
    int rc = event_base_dispatch(srv->base) < 0 ? 1 : 0;
    /* Every connection has ended (each waited for its own commit and
     * password check). The agent's record updates on the workers finish
     * here, then the agent goes. */
    sk_agent_stop(srv->agent);
    sk_work_queue_free(srv->work);
    srv->work = NULL;
    sk_queue_control_free(srv->control); /* it refers to the agent */
    srv->control = NULL;
    sk_agent_free(srv->agent);
    srv->agent = NULL;
    sk_commit_queue_stats st;
    sk_commit_queue_stats_get(srv->queue, &st);
    sk_commit_queue_free(srv->queue);
    srv->queue = NULL;
    unsigned long long lmtp_opened = 0;
    unsigned lmtp_peak = 0;
    int lmtp = sk_store_lmtp_stats(srv->store, &lmtp_opened, &lmtp_peak) == 0;
    char extra[96] = "";
    if (lmtp)
        snprintf(extra, sizeof extra, " lmtp_connections=%llu lmtp_peak=%u", lmtp_opened,
                 lmtp_peak);
    sk_log(LOG_INFO, "event=stop messages=%llu commits=%llu commit_batches=%llu dir_fsyncs=%llu%s",
           srv->messages, st.commits, st.batches, st.dir_fsyncs, extra);
    return rc;
}

void sk_server_free(sk_server *srv)
{
    if (!srv)
        return;
    stop_listening(srv);
    sk_metrics_http_free(srv); /* before the event base it lives on */
    /* Only if the loop failed are connections still open: first let the
     * queue finish (its callbacks still refer to them), then close them. */
    if (srv->queue)
        sk_commit_queue_free(srv->queue);
    srv->queue = NULL;
    sk_agent_stop(srv->agent);
    sk_work_queue_free(srv->work);
    srv->work = NULL;
    sk_server_security_stop(srv); /* answers Dovecot checks still waiting */
    while (srv->conns)
        sk_conn_abort(srv->conns);
    sk_queue_control_free(srv->control);
    srv->control = NULL;
    sk_agent_free(srv->agent);
    srv->agent = NULL;
    if (srv->queue_ev)
        event_free(srv->queue_ev);
    if (srv->work_ev)
        event_free(srv->work_ev);
    if (srv->sig_term)
        event_free(srv->sig_term);
    if (srv->sig_int)
        event_free(srv->sig_int);
    if (srv->sig_hup)
        event_free(srv->sig_hup);
    if (srv->sig_usr1)
        event_free(srv->sig_usr1);
    if (srv->grace_timer)
        event_free(srv->grace_timer);
    if (srv->store)
        sk_store_close(srv->store);
    free(srv->listeners);
    if (srv->base)
        event_base_free(srv->base);
    sk_peer_count_free(srv->per_ip);
    sk_server_security_free(srv);
    sk_proxy_networks_free(srv);
    if (srv->pid_written)
        sk_pid_file_remove(srv->cfg->pid_file);
    sk_notify_close();
    sk_policy_free(srv->policy);
    sk_config_free(srv->cfg);
    free(srv);
}
