/*
 * conn_ops.c - the callbacks the protocol core calls on a connection
 * (sk_session_ops): recipient verdicts from the policy tables, and the
 * message store, handed every destination of every recipient (Maildirs,
 * or the LMTP server when `lmtp` is set; the outbound queue). The durable step (fsyncs, links)
 * never runs on the event loop: store_commit hands the message to the commit queue, whose callback
 * (sk_conn_commit_done in conn.c) lets the session send the reply to the end of data (RFC
 * 5321 4.1.1.4: 250 only once the message is safe).
 *
 * AUTH (RFC 4954): credentials are checked against the password file
 * behind the failure budgets (auth_service.c). The hash (tens of
 * milliseconds) runs on a worker thread of the work queue: auth_check
 * answers SK_AUTH_PENDING, and the job's completion, back on the loop
 * thread, charges the budgets and hands the verdict to the session
 * (sk_conn_auth_done). With dovecot_auth, Dovecot's auth server answers
 * instead (dovecot_auth.c, on the loop), through the same budgets and
 * verdicts, and EHLO lists the mechanisms it offers. A failure only marks
 * the connection, and conn.c holds the reply back and closes after too
 * many.
 *
 * None of these callbacks frees or closes anything: they run inside
 * sk_session_feed() and only record what conn.c acts on afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/auth_service.h"
#include "server/dovecot_auth.h"
#include "server/conn.h"
#include "server/log.h"
#include "server/milter.h"
#include "server/work_queue.h"
#include "smtpkit/sasl.h"

#include <openssl/crypto.h>

static sk_rcpt_verdict op_rcpt_check(void *ctx, const sk_session_info *info, const char *addr,
                                     void **dest, const char **forward_to)
{
    sk_conn *c = ctx;
    /* RFC 5321 3.6 / 7.1: relaying only for trusted networks and
     * authenticated clients. */
    int may_relay = (info->peer && info->peer->trusted) || info->auth_user != NULL;
    sk_delivery *d = NULL;
    sk_rcpt_verdict v = sk_policy_rcpt(c->srv->policy, addr, may_relay, &d);
    *dest = d;
    if (v == SK_RCPT_FORWARD && d)
        *forward_to = d->forward_to;
    return v;
}

static void op_dest_free(void *ctx, void *dest)
{
    (void)ctx;
    sk_delivery_free(dest);
}

void sk_conn_log_store_error(sk_conn *c, sk_store_result r, const sk_store_error *e)
{
    char path[600], detail[SK_STORE_ERROR_DETAIL_CAP];
    /* detail (an LMTP server's reply, ...) is a quoted value: printable
     * ASCII, no quote or backslash */
    size_t k = 0;
    for (; e && k + 1 < sizeof detail && e->detail[k]; k++) {
        unsigned char ch = (unsigned char)e->detail[k];
        detail[k] = ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    detail[k] = '\0';
    sk_log(LOG_WARNING,
           "event=store-error conn=%llu peer=%s id=%s result=%s step=%s path=%s errno=%d "
           "error=\"%s\"%s%s%s",
           c->id, c->addr, c->msg_id[0] ? c->msg_id : "-",
           r == SK_STORE_NOSPACE    ? "nospace"
           : r == SK_STORE_DEFERRED ? "deferred"
           : r == SK_STORE_REFUSED  ? "refused"
                                    : "ioerr",
           e && e->step ? e->step : "unknown",
           e && e->path[0] ? sk_text_token(e->path, path, sizeof path) : "-", e ? e->errnum : 0,
           e && e->errnum ? strerror(e->errnum) : "-", detail[0] ? " detail=\"" : "", detail,
           detail[0] ? "\"" : "");
}

static sk_store_result op_store_begin(void *ctx, sk_transaction *tx)
{
    sk_conn *c = ctx;
    if (c->msg) { /* never two messages at once; drop a stale one */
        sk_store_abort(c->msg);
        c->msg = NULL;
    }
    c->msg_id[0] = '\0';
    c->store_err_logged = 0;
    sk_store_result res = SK_STORE_IOERR;
    c->msg = sk_store_begin(c->srv->store, tx->id, &res);
    if (!c->msg) {
        sk_store_error e = {.step = "begin", .errnum = errno};
        snprintf(e.path, sizeof e.path, "%s", sk_store_spool_dir(c->srv->store));
        res = res == SK_STORE_OK ? SK_STORE_IOERR : res;
        sk_conn_log_store_error(c, res, &e);
        return res;
    }
    snprintf(c->msg_id, sizeof c->msg_id, "%s", tx->id);
    return SK_STORE_OK;
}

static sk_store_result op_store_append(void *ctx, const char *p, size_t n)
{
    sk_conn *c = ctx;
    if (!c->msg)
        return SK_STORE_IOERR;
    sk_store_result r = sk_store_append(c->msg, p, n);
    if (r != SK_STORE_OK && !c->store_err_logged) {
        c->store_err_logged = 1; /* the error is sticky: once per message */
        sk_conn_log_store_error(c, r, sk_store_msg_error(c->msg));
    }
    return r;
}

/* Hand the message to the store with every destination of every recipient:
 * Maildirs for local mailboxes, the outbound queue for addresses in other
 * domains (relayed recipients, remote alias targets). The store removes
 * duplicates and commits to all of them or none. */
static void op_store_commit(void *ctx, sk_transaction *tx)
{
    sk_conn *c = ctx;
    clock_gettime(CLOCK_MONOTONIC, &c->commit_started); /* for the latency histogram */
    size_t total = 0;
    for (size_t i = 0; i < tx->nrcpts; i++) {
        const sk_delivery *d = tx->rcpts[i].dest;
        if (d)
            total += d->nmaildirs + d->nremote;
    }
    sk_store_dest *dests = total ? calloc(total, sizeof *dests) : NULL;
    size_t n = 0;
    c->queued_id[0] = '\0';
    for (size_t i = 0; dests && i < tx->nrcpts; i++) {
        const sk_delivery *d = tx->rcpts[i].dest;
        if (!d)
            continue;
        /* a local mailbox: its Maildir, or its address for the LMTP server */
        for (size_t k = 0; k < d->nmaildirs; k++)
            dests[n++] =
                c->srv->cfg->lmtp
                    ? (sk_store_dest){.kind = SK_DEST_LMTP, .target = d->mailboxes[k], .rcpt = i}
                    : (sk_store_dest){.kind = SK_DEST_MAILDIR, .target = d->maildirs[k], .rcpt = i};
        for (size_t k = 0; k < d->nremote; k++)
            dests[n++] = (sk_store_dest){.kind = SK_DEST_QUEUE, .target = d->remote[k], .rcpt = i};
        if (d->nremote)
            snprintf(c->queued_id, sizeof c->queued_id, "%s", tx->id);
    }
    sk_store_envelope env = {
        .sender = tx->mail_from ? tx->mail_from : "",
        .body = tx->body_8bit ? SK_STORE_BODY_8BITMIME : SK_STORE_BODY_7BIT,
        .smtputf8 = tx->smtputf8,
        .arrival = (long long)time(NULL),
        .nrcpts = tx->nrcpts,
    };
    if (!c->msg || !dests ||
        sk_commit_queue_submit(c->srv->queue, c->msg, &env, dests, n, sk_conn_commit_done, c) !=
            0) {
        /* Not queued: the message is still ours. conn_process answers 451. */
        sk_store_error e = {.step = "submit"};
        /* what went wrong, as one token in the path field */
        snprintf(e.path, sizeof e.path, "%s",
                 !c->msg  ? "no-message"
                 : !total ? "no-destination"
                 : !dests ? "out-of-memory"
                          : "commit-queue-refused");
        sk_conn_log_store_error(c, SK_STORE_IOERR, &e);
        if (c->msg)
            sk_store_abort(c->msg);
        c->msg = NULL;
        c->commit_failed_now = 1;
        free(dests);
        return;
    }
    free(dests); /* the queue copied them */
    c->msg = NULL;
    c->commit_pending = 1;
}

static void op_store_abort(void *ctx)
{
    sk_conn *c = ctx;
    if (c->msg) {
        sk_store_abort(c->msg);
        c->msg = NULL;
    }
}

/* A failed or refused attempt: conn.c holds the reply back, maybe closes. */
static void auth_apply(sk_conn *c, const sk_auth_verdict *v, const char *user)
{
    if (v->result == 1)
        return;
    c->auth_hold = 1;
    c->auth_delay_ms = v->delay_ms;
    c->auth_close = v->close;
    /* the user name, never the password */
    char u[300];
    sk_log(LOG_NOTICE, "event=auth-failed conn=%llu peer=%s user=%s why=%s conn_failures=%u", c->id,
           c->addr, sk_text_token(user ? user : "", u, sizeof u), v->why, c->auth.failures);
}

/* One password check in flight. The worker sees only this job's own
 * copies, never the connection. */
typedef struct auth_job {
    sk_conn *c;
    char *user;     /* for the log line */
    char *hash;     /* copied from the password file on the loop thread */
    int known;      /* the user exists */
    char *password; /* wiped as soon as it is hashed */
    size_t password_len;
    int ok; /* the worker's result: 1, 0, -1 */
} auth_job;

static void auth_job_free(auth_job *j)
{
    if (!j)
        return;
    if (j->password) {
        OPENSSL_cleanse(j->password, j->password_len);
        free(j->password);
    }
    free(j->hash);
    free(j->user);
    free(j);
}

/* Worker thread. */
static void auth_job_work(void *arg)
{
    auth_job *j = arg;
    j->ok = sk_passwd_check_hash(j->hash, j->known, j->password);
    OPENSSL_cleanse(j->password, j->password_len);
}

/* Loop thread: the budgets are charged even when the client has gone (a
 * guess counts whether or not its answer was heard). */
static void auth_job_done(void *arg)
{
    auth_job *j = arg;
    sk_conn *c = j->c;
    int ok = j->ok;
    sk_auth_verdict v = {.result = -1, .why = "internal"};
    if (c->srv->auth) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        v = sk_auth_service_finish(c->srv->auth, c->addr, &c->auth, ok, now.tv_sec);
    }
    auth_apply(c, &v, j->user);
    auth_job_free(j);
    sk_conn_auth_done(c, v.result);
}

/* Dovecot's verdict, on the loop thread: charged like the password file's
 * (a temporary failure, -1, is 454 and never an accept). */
static void dovecot_auth_done(void *arg, int result, const char *canonical)
{
    sk_conn *c = arg;
    (void)canonical;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sk_auth_verdict v = {.result = -1, .why = "internal"};
    if (c->srv->auth)
        v = sk_auth_service_finish(c->srv->auth, c->addr, &c->auth, result, now.tv_sec);
    if (result < 0 && v.result < 0)
        v.why = "dovecot-unavailable";
    auth_apply(c, &v, c->dovecot_user);
    free(c->dovecot_user);
    c->dovecot_user = NULL;
    sk_conn_auth_done(c, v.result);
}

/* The local end of the client's socket, for Dovecot's lip/lport. */
static void local_address(const sk_conn *c, char *ip, size_t iplen, unsigned *port)
{
    ip[0] = '\0';
    *port = 0;
    struct bufferevent *b = c->tls_under ? c->tls_under : c->bev;
    evutil_socket_t fd = b ? bufferevent_getfd(b) : -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin6_port);
    }
}

static int dovecot_check(sk_conn *c, const char *user, const char *password, time_t now)
{
    sk_auth_verdict v;
    if (sk_auth_service_blocked(c->srv->auth, c->addr, &c->auth, now, &v)) {
        auth_apply(c, &v, user);
        return v.result;
    }
    char lip[INET6_ADDRSTRLEN];
    unsigned lport;
    local_address(c, lip, sizeof lip, &lport);
    sk_dovecot_conn_info info = {
        .secured = c->tls_state == 2,
        .rip = c->addr,
        .rport = c->port,
        .lip = lip[0] ? lip : NULL,
        .lport = lport,
    };
    c->dovecot_user = strdup(user);
    if (!c->dovecot_user ||
        sk_dovecot_auth_check(c->srv->dovecot, user, password, &info, dovecot_auth_done, c) != 0) {
        free(c->dovecot_user);
        c->dovecot_user = NULL;
        v = sk_auth_service_finish(c->srv->auth, c->addr, &c->auth, -1, now);
        auth_apply(c, &v, user);
        return v.result;
    }
    c->auth_pending = 1;
    return SK_AUTH_PENDING;
}

static unsigned op_auth_mechanisms(void *ctx)
{
    sk_conn *c = ctx;
    if (!c->srv->dovecot)
        return (1u << SK_SASL_PLAIN) | (1u << SK_SASL_LOGIN);
    unsigned m = sk_dovecot_auth_mechs(c->srv->dovecot), out = 0;
    if (m & SK_DOVECOT_MECH_PLAIN)
        out |= 1u << SK_SASL_PLAIN;
    if (m & SK_DOVECOT_MECH_LOGIN)
        out |= 1u << SK_SASL_LOGIN;
    return out;
}

static int op_auth_check(void *ctx, const char *user, const char *password)
{
    sk_conn *c = ctx;
    if (!c->srv->auth)
        return -1;
    if (c->auth_close) {
        /* Condemned already (attempts pipelined behind the last allowed
         * failure): no more password checks on this connection. */
        c->auth_hold = 1;
        return -1;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (c->srv->dovecot)
        return dovecot_check(c, user, password, now.tv_sec);
    sk_auth_verdict v;
    char *hash = NULL;
    int known = 0;
    if (sk_auth_service_begin(c->srv->auth, c->addr, &c->auth, user, now.tv_sec, &v, &hash,
                              &known)) {
        auth_apply(c, &v, user);
        return v.result;
    }
    auth_job *j = calloc(1, sizeof *j);
    if (j) {
        j->c = c;
        j->hash = hash;
        j->known = known;
        j->password_len = strlen(password);
        j->password = strdup(password);
        j->user = strdup(user);
        hash = NULL;
    }
    if (!j || !j->password || !j->user ||
        sk_work_queue_submit(c->srv->work, auth_job_work, auth_job_done, j)) {
        /* Not queued: a temporary failure, charged like one. */
        free(hash);
        auth_job_free(j);
        v = sk_auth_service_finish(c->srv->auth, c->addr, &c->auth, -1, now.tv_sec);
        auth_apply(c, &v, user);
        return v.result;
    }
    c->auth_pending = 1;
    return SK_AUTH_PENDING;
}

/* sender_must_match_login (RFC 6409 6.1): an authenticated user sends
 * only as itself; unauthenticated sessions (MX traffic) are not affected. */
static int op_mail_check(void *ctx, const sk_session_info *info, const char *reverse_path)
{
    sk_conn *c = ctx;
    const sk_config *cfg = c->srv->cfg;
    if (!cfg->sender_must_match_login || !info->auth_user)
        return 1;
    int ok = sk_auth_sender_allowed(info->auth_user, reverse_path, cfg->domains, cfg->ndomains);
    if (!ok)
        sk_log(LOG_NOTICE, "event=sender-mismatch conn=%llu peer=%s", c->id, c->addr);
    return ok;
}

static int op_tls_available(void *ctx)
{
    sk_conn *c = ctx;
    return c->srv->tls != NULL;
}

/* The session's lines start "event=NAME"; every line of the server reads
 * "event=NAME conn=N peer=ADDR ...", so the connection goes in after it. */
static void op_log(void *ctx, const char *line)
{
    sk_conn *c = ctx;
    const char *sp = strchr(line, ' ');
    int head = sp ? (int)(sp - line) : (int)strlen(line);
    sk_log(LOG_INFO, "%.*s conn=%llu peer=%s%s", head, line, c->id, c->addr, sp ? sp : "");
    sk_metrics_log_line(&c->srv->metrics, line);
}

/* Every reply: RCPT's are counted by code for the metrics. */
static void op_replied(void *ctx, const char *verb, int code)
{
    sk_conn *c = ctx;
    if (verb && !strcmp(verb, "RCPT"))
        sk_metrics_recipient(&c->srv->metrics, code);
}

/* The listener's milters (milter.c) on HELO/EHLO, MAIL, RCPT and the end
 * of the message; their verdict comes back through sk_conn_policy_done. */
static int op_policy_check(void *ctx, int step, const sk_session_info *info, const char *arg)
{
    sk_conn *c = ctx;
    if (!c->milters || !sk_milters_step(c->milters, step, info, arg))
        return 0;
    c->policy_pending = 1;
    return SK_POLICY_PENDING;
}

const sk_session_ops sk_conn_ops = {
    .rcpt_check = op_rcpt_check,
    .dest_free = op_dest_free,
    .auth_check = op_auth_check,
    .store_begin = op_store_begin,
    .store_append = op_store_append,
    .store_commit = op_store_commit,
    .store_abort = op_store_abort,
    .log = op_log,
    .tls_available = op_tls_available,
    .mail_check = op_mail_check,
    .auth_mechanisms = op_auth_mechanisms,
    .replied = op_replied,
    .policy_check = op_policy_check,
};
