/*
 * conn_ops.c - the callbacks the protocol core calls on a connection
 * (sk_session_ops): recipient verdicts from the policy tables, and the
 * message store. The durable step (fsync, link into every new/) never runs
 * on the event loop: store_commit hands the message to the commit queue,
 * whose callback (sk_conn_commit_done in conn.c) lets the session send the
 * reply to the end of data (RFC 5321 4.1.1.4: 250 only once the message is
 * safe).
 *
 * AUTH (RFC 4954): credentials are checked against the password file
 * behind the failure budgets (auth_service.c); a failure only marks the
 * connection, and conn.c holds the reply back and closes after too many.
 *
 * None of these callbacks frees or closes anything: they run inside
 * sk_session_feed() and only record what conn.c acts on afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth_service.h"
#include "server/conn.h"
#include "server/log.h"

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

static sk_store_result op_store_begin(void *ctx, sk_transaction *tx)
{
    sk_conn *c = ctx;
    if (c->msg) { /* never two messages at once; drop a stale one */
        sk_store_abort(c->msg);
        c->msg = NULL;
    }
    sk_store_result res = SK_STORE_IOERR;
    c->msg = sk_store_begin(c->srv->store, tx->id, &res);
    c->msg_size = 0;
    if (!c->msg) {
        sk_log(LOG_WARNING, "event=store-begin-failed conn=%llu result=%s", c->id,
               res == SK_STORE_NOSPACE ? "nospace" : "ioerr");
        return res == SK_STORE_OK ? SK_STORE_IOERR : res;
    }
    return SK_STORE_OK;
}

static sk_store_result op_store_append(void *ctx, const char *p, size_t n)
{
    sk_conn *c = ctx;
    if (!c->msg)
        return SK_STORE_IOERR;
    c->msg_size += n;
    return sk_store_append(c->msg, p, n);
}

/* "id=... from=<...> stored_size=N nrcpts=N rcpts=<a>,<b>" for the message
 * log (stored_size includes the trace headers the session prepended). */
static void summarise(sk_conn *c, const sk_transaction *tx)
{
    int n = snprintf(c->tx_summary, sizeof c->tx_summary,
                     "id=%s from=<%s> stored_size=%llu nrcpts=%zu rcpts=", tx->id,
                     tx->mail_from ? tx->mail_from : "", c->msg_size, tx->nrcpts);
    size_t len = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < tx->nrcpts && len < sizeof c->tx_summary; i++) {
        n = snprintf(c->tx_summary + len, sizeof c->tx_summary - len, "%s<%s>", i ? "," : "",
                     tx->rcpts[i].addr);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (len >= sizeof c->tx_summary) /* mark truncation */
        memcpy(c->tx_summary + sizeof c->tx_summary - 4, "...", 4);
}

static void op_store_commit(void *ctx, sk_transaction *tx)
{
    sk_conn *c = ctx;
    summarise(c, tx);
    c->tx_queued = 0;
    /* Every distinct Maildir of every recipient: one copy per mailbox even
     * when several recipients (or aliases) lead to it. */
    size_t total = 0;
    for (size_t i = 0; i < tx->nrcpts; i++) {
        const sk_delivery *d = tx->rcpts[i].dest;
        if (d)
            total += d->nmaildirs;
    }
    const char **dirs = total ? calloc(total, sizeof *dirs) : NULL;
    size_t n = 0;
    for (size_t i = 0; dirs && i < tx->nrcpts; i++) {
        const sk_delivery *d = tx->rcpts[i].dest;
        if (!d)
            continue;
        c->tx_queued |= d->queued;
        for (size_t k = 0; k < d->nmaildirs; k++) {
            size_t j = 0;
            while (j < n && strcmp(dirs[j], d->maildirs[k]) != 0)
                j++;
            if (j == n)
                dirs[n++] = d->maildirs[k];
        }
    }
    if (!c->msg || !dirs ||
        sk_commit_queue_submit(c->srv->queue, c->msg, dirs, n, sk_conn_commit_done, c) != 0) {
        /* Not queued: the message is still ours. conn_process answers 451. */
        if (c->msg)
            sk_store_abort(c->msg);
        c->msg = NULL;
        c->commit_failed_now = 1;
        free(dirs);
        return;
    }
    free(dirs); /* the queue copied the paths */
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
    sk_auth_verdict v =
        sk_auth_service_check(c->srv->auth, c->addr, &c->auth, user, password, now.tv_sec);
    if (v.result != 1) {
        c->auth_hold = 1;
        c->auth_delay_ms = v.delay_ms;
        c->auth_close = v.close;
        /* the user name is logged by the session; never the password */
        sk_log(LOG_NOTICE, "event=auth-failed conn=%llu peer=%s why=%s conn_failures=%u", c->id,
               c->addr, v.why, c->auth.failures);
    }
    return v.result;
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

static void op_log(void *ctx, const char *line)
{
    sk_conn *c = ctx;
    sk_log(LOG_INFO, "conn=%llu %s", c->id, line);
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
};
