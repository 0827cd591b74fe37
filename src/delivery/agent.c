/*
 * agent.c - the delivery agent (agent.h, docs/DELIVERY.md): the schedule of
 * the outbound queue and the life of one delivery round of a message.
 *
 * Schedule: every queued message has a due time (the earliest next attempt
 * of a recipient still to deliver). A one-second tick, and a nudge when a
 * message is queued or flushed, start a round for every due message, as
 * far as the connection caps allow (max_connections in all,
 * connections_per_destination per domain) and no destination's back-off
 * forbids. A message that finds its destination's slots all taken waits on
 * that destination's list, skipped by the tick, and the end of an attempt
 * there makes the first waiting ones due at once.
 *
 * A round: the record is read (no lock needed: it is only ever replaced by
 * a rename; its stamp is kept), the due recipients are grouped by domain,
 * at most recipients_per_transaction each, and one attempt (attempt.c) per
 * group runs at once. When every attempt is done, a job on the work queue
 * takes the queue lock, reads the record again if its stamp changed,
 * applies the results (rcpt_result.c), commits a DSN (RFC 3464, dsn.c) for
 * the recipients that bounced through the store (into the sender's
 * Maildir, or the queue), and only then saves the record (or removes the
 * message when every recipient is final): a crash in between can repeat a
 * bounce or a delivery, never lose one (RFC 5321 6.1). Nothing is written
 * while an attempt runs, so a message whose round was cut short by a crash
 * or a shutdown is simply tried again.
 */
#include "delivery/agent.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "delivery/attempt.h"
#include "delivery/rcpt_result.h"
#include "queue/queue_dir.h"
#include "server/log.h"
#include "server/work_queue.h"
#include "smtpkit/config.h"
#include "smtpkit/dsn.h"
#include "smtpkit/policy.h"
#include "smtpkit/store.h"

#define AGENT_TICK_S 1
#define AGENT_LOCAL_ADDRS 64
#define DSN_FULL_MAX (1u << 20) /* RET=FULL sends back at most 1 MiB */

typedef struct agent_msg agent_msg;
typedef struct agent_round agent_round;

struct agent_msg {
    char id[32];
    long long due; /* next attempt (Unix seconds) */
    int force;     /* flush: every recipient still to deliver, now */
    agent_round *round;
    agent_msg *next;
    /* waiting for a connection slot of this destination (its wait list) */
    struct agent_dest *parked;
    agent_msg *wnext;
};

typedef struct agent_dest {
    char domain[256];
    unsigned active; /* connections (attempts) now */
    sk_dest_backoff backoff;
    /* messages that found every slot taken, first come first served: the
     * end of an attempt here starts the first of them at once */
    agent_msg *whead, *wtail;
    struct agent_dest *next;
} agent_dest;

typedef enum { ROUND_DELIVER, ROUND_BOUNCE_ALL } round_kind;

struct agent_round {
    sk_agent *ag;
    agent_msg *m; /* NULL once the message left the schedule */
    round_kind kind;
    char id[32];
    long long started;
    sk_envelope env;      /* as read at the start */
    sk_queue_stamp stamp; /* of that version of the record */
    char *data;           /* the message file */
    size_t len;
    sk_attempt **attempts;
    size_t nattempts, running;
    sk_dlv_rcpt_result *res; /* every attempt's results */
    size_t nres, capres;
    /* bounce destinations of the sender (from the tables, on the loop) */
    sk_store_dest *dsn_dests;
    size_t ndsn_dests;
    char **dsn_targets;
    /* the worker's answer */
    long long next_due; /* -1: the message left the queue */
    size_t nbounced;
    char dsn_id[32];
    size_t ndelayed;   /* recipients in a delay warning sent now */
    char delay_id[32]; /* its id */
    char err[256];
    int failed; /* the record could not be read or written */
};

struct sk_agent {
    struct event_base *base;
    const sk_config *cfg;
    sk_policy *const *policy;
    sk_store *store;
    sk_queue_dir *q;
    sk_work_queue *work;
    sk_mx_async *resolver;
    SSL_CTX *tls;
    sk_addr *listeners;
    size_t nlisteners;
    sk_addr local[AGENT_LOCAL_ADDRS];
    size_t nlocal;
    sk_attempt_env aenv;
    sk_conn_cache *cache; /* idle connections for the next message */
    struct event *tick, *nudge;
    agent_msg *msgs;
    agent_dest *dests;
    unsigned active; /* attempts running */
    int stopping;
};

static uint32_t rnd32(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint32_t)time(NULL) * 2654435761u;
    return r;
}

/* ---- the schedule ------------------------------------------------------- */

static agent_msg *msg_find(sk_agent *ag, const char *id)
{
    for (agent_msg *m = ag->msgs; m; m = m->next)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

static agent_msg *msg_add(sk_agent *ag, const char *id, long long due)
{
    agent_msg *m = msg_find(ag, id);
    if (m) {
        if (due < m->due)
            m->due = due;
        return m;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->id, sizeof m->id, "%s", id);
    m->due = due;
    /* appended: arrival order */
    agent_msg **pp = &ag->msgs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    return m;
}

/* Park m on d: the schedule skips it (no reading of its record) until a
 * slot of d is free. */
static void msg_park(agent_dest *d, agent_msg *m)
{
    if (m->parked)
        return;
    m->parked = d;
    m->wnext = NULL;
    if (d->wtail)
        d->wtail->wnext = m;
    else
        d->whead = m;
    d->wtail = m;
}

static void msg_unpark(agent_msg *m)
{
    agent_dest *d = m->parked;
    if (!d)
        return;
    agent_msg *prev = NULL;
    for (agent_msg *x = d->whead; x; prev = x, x = x->wnext) {
        if (x != m)
            continue;
        if (prev)
            prev->wnext = m->wnext;
        else
            d->whead = m->wnext;
        if (d->wtail == m)
            d->wtail = prev;
        break;
    }
    m->parked = NULL;
    m->wnext = NULL;
}

/* Bring back as many parked messages of d as d has free slots: they are
 * due now, ahead of the tick. */
static void dest_release(agent_dest *d, unsigned perdest)
{
    unsigned free_slots = d->active < perdest ? perdest - d->active : 0;
    while (free_slots-- && d->whead) {
        agent_msg *m = d->whead;
        msg_unpark(m);
        m->due = 0;
    }
}

static void msg_remove(sk_agent *ag, agent_msg *m)
{
    msg_unpark(m);
    for (agent_msg **pp = &ag->msgs; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    if (m->round)
        m->round->m = NULL;
    free(m);
}

static agent_dest *dest_get(sk_agent *ag, const char *domain)
{
    for (agent_dest *d = ag->dests; d; d = d->next)
        if (strcasecmp(d->domain, domain) == 0)
            return d;
    agent_dest *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    snprintf(d->domain, sizeof d->domain, "%s", domain);
    d->next = ag->dests;
    ag->dests = d;
    return d;
}

static void nudge(sk_agent *ag)
{
    if (!ag->stopping)
        event_active(ag->nudge, EV_TIMEOUT, 0);
}

/* ---- a round ------------------------------------------------------------ */

static void round_free(agent_round *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nattempts; i++)
        sk_attempt_free(r->attempts[i]);
    free(r->attempts);
    for (size_t i = 0; i < r->ndsn_dests; i++)
        free(r->dsn_targets[i]);
    free(r->dsn_targets);
    free(r->dsn_dests);
    free(r->res);
    free(r->data);
    sk_envelope_clear(&r->env);
    free(r);
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || sb.st_size < 0) {
        fclose(f);
        return -1;
    }
    size_t n = (size_t)sb.st_size;
    char *p = malloc(n + 1);
    if (!p || fread(p, 1, n, f) != n) {
        free(p);
        fclose(f);
        return -1;
    }
    fclose(f);
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
}

/* The store writes one copy for the Maildirs and the queue, and a Maildir
 * copy starts with the Return-Path of final delivery (RFC 5321 4.4). A
 * relay must not send it on: skip that first field (with its folded
 * lines). Returns the offset where the message to send starts. */
static size_t skip_return_path(const char *p, size_t n)
{
    static const char rp[] = "Return-Path:";
    if (n < sizeof rp - 1 || strncasecmp(p, rp, sizeof rp - 1) != 0)
        return 0;
    size_t i = 0;
    for (;;) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (!nl)
            return 0;
        i = (size_t)(nl - p) + 1;
        if (i >= n || (p[i] != ' ' && p[i] != '\t'))
            return i;
    }
}

/* Where a bounce to the sender goes: when local, the sender's Maildir(s),
 * or with `lmtp` set the LMTP server (for the mailbox's address), as any
 * local message; the queue otherwise (the tables decide, as for any
 * recipient). */
static void dsn_destinations(sk_agent *ag, agent_round *r)
{
    const char *sender = r->env.sender;
    if (!sender || !*sender)
        return; /* never a bounce to <> */
    sk_delivery *d = NULL;
    sk_rcpt_verdict v = sk_policy_rcpt(*ag->policy, sender, 1, &d);
    if ((v != SK_RCPT_ACCEPT && v != SK_RCPT_FORWARD) || !d) {
        sk_delivery_free(d);
        return;
    }
    size_t n = d->nmaildirs + d->nremote;
    r->dsn_dests = calloc(n ? n : 1, sizeof *r->dsn_dests);
    r->dsn_targets = calloc(n ? n : 1, sizeof *r->dsn_targets);
    if (r->dsn_dests && r->dsn_targets) {
        for (size_t i = 0; i < n; i++) {
            int local = i < d->nmaildirs;
            sk_dest_kind kind = SK_DEST_QUEUE;
            const char *t = NULL;
            if (!local) {
                t = d->remote[i - d->nmaildirs];
            } else if (ag->cfg->lmtp) {
                kind = SK_DEST_LMTP;
                t = d->mailboxes[i];
            } else {
                kind = SK_DEST_MAILDIR;
                t = d->maildirs[i];
            }
            char *copy = strdup(t);
            if (!copy)
                break;
            r->dsn_targets[r->ndsn_dests] = copy;
            r->dsn_dests[r->ndsn_dests++] =
                (sk_store_dest){.kind = kind, .target = copy, .rcpt = 0};
        }
    }
    sk_delivery_free(d);
}

/* Remote-MTA: the host name of "name[ip]:port". */
static void host_name(const char *host, char *out, size_t n)
{
    size_t k = strcspn(host, "[");
    if (k >= n)
        k = n - 1;
    memcpy(out, host, k);
    out[k] = '\0';
}

/* RFC 3461 4.1: whether a recipient's NOTIFY asks for this kind of report
 * (none given: failures and delays are reported, as RFC 3461 5.2 allows). */
static int notify_wants(const char *notify, const char *kind)
{
    if (!notify || !*notify)
        return 1;
    size_t k = strlen(kind);
    for (const char *p = notify; *p;) {
        size_t n = strcspn(p, ",");
        if (n == k && strncasecmp(p, kind, k) == 0)
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Build and commit one DSN for exactly these recipients (see commit_dsn). */
static int commit_dsn_to(agent_round *r, const sk_envelope *e, const size_t *idx, size_t n,
                         sk_dsn_action action, char out_id[32])
{
    sk_agent *ag = r->ag;
    if (n == 0)
        return 0;
    if (!r->ndsn_dests) {
        snprintf(r->err, sizeof r->err, "no destination for a bounce to the sender");
        return 0; /* nowhere to send it: logged, the recipients bounce anyway */
    }
    sk_dsn_rcpt *dr = calloc(n, sizeof *dr);
    char(*replies)[700] = calloc(n, sizeof *replies);
    char(*mtas)[256] = calloc(n, sizeof *mtas);
    if (!dr || !replies || !mtas) {
        free(dr);
        free(replies);
        free(mtas);
        return -1;
    }
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        const sk_envelope_rcpt *er = &e->rcpts[idx[i]];
        host_name(er->last.host, mtas[i], sizeof mtas[i]);
        if (er->last.code)
            snprintf(replies[i], sizeof replies[i], "%d %s %s", er->last.code, er->last.enhanced,
                     er->last.text);
        const char *st = er->last.enhanced[0] == '4' || er->last.enhanced[0] == '5'
                             ? er->last.enhanced
                             : "5.0.0";
        dr[i] = (sk_dsn_rcpt){
            .final_recipient = er->addr,
            .original_recipient = er->orcpt[0] ? er->orcpt : NULL,
            .action = action,
            .status = action == SK_DSN_DELAYED && st[0] != '4' ? "4.0.0" : st,
            .remote_mta = mtas[i][0] ? mtas[i] : NULL,
            .reply = er->last.code ? replies[i] : NULL,
            .diagnostic = er->last.code ? NULL : er->last.text,
            .last_attempt = now,
            .will_retry_until = action == SK_DSN_DELAYED
                                    ? (time_t)(e->arrival + ag->cfg->delivery.retry.lifetime)
                                    : 0,
        };
    }
    char unique[64];
    snprintf(unique, sizeof unique, "%s.%08x", e->id, rnd32());
    sk_dsn_input in = {
        .reporting_mta = ag->cfg->server_name,
        .sender = e->sender,
        .envid = e->envid[0] ? e->envid : NULL,
        .arrival = (time_t)e->arrival,
        .now = now,
        .unique = unique,
        .rcpts = dr,
        .nrcpts = n,
        .message = r->data,
        .message_len = r->len,
        .ret = strcasecmp(e->ret, "FULL") == 0 ? SK_DSN_RET_FULL : SK_DSN_RET_HDRS,
        .full_max = DSN_FULL_MAX,
    };
    sk_buf out;
    sk_buf_init(&out, 0);
    int eight = 0;
    int rc = sk_dsn_build(&in, &out, &eight);
    free(dr);
    free(replies);
    free(mtas);
    if (rc == SK_DSN_NULL_SENDER) {
        sk_buf_free(&out);
        return 0;
    }
    if (rc != SK_DSN_OK) {
        snprintf(r->err, sizeof r->err, "cannot build the bounce (%d)", rc);
        sk_buf_free(&out);
        return rc == SK_DSN_NOMEM ? -1 : 0;
    }
    sk_store_result res = SK_STORE_IOERR;
    char id[32];
    sk_store_msg *sm = sk_store_begin(ag->store, id, &res);
    if (!sm) {
        sk_buf_free(&out);
        snprintf(r->err, sizeof r->err, "cannot store the bounce");
        return -1;
    }
    res = sk_store_append(sm, out.data, out.len);
    sk_buf_free(&out);
    if (res != SK_STORE_OK) {
        sk_store_abort(sm);
        snprintf(r->err, sizeof r->err, "cannot store the bounce");
        return -1;
    }
    sk_store_envelope se = {
        .sender = "",
        .body = eight ? SK_STORE_BODY_8BITMIME : SK_STORE_BODY_7BIT,
        .arrival = (long long)now,
        .nrcpts = 1,
    };
    if (sk_store_commit(sm, &se, r->dsn_dests, r->ndsn_dests, NULL) != SK_STORE_OK) {
        snprintf(r->err, sizeof r->err, "cannot store the bounce");
        return -1;
    }
    snprintf(out_id, 32, "%s", id);
    return 0;
}

/* Worker thread: build the DSN (action: failed or delayed) for the
 * recipients of e in idx that asked for it (NOTIFY) and commit it through
 * the store; its id goes to out_id (or "" when none was sent). 0
 * (committed, or nothing to send), -1 failed. */
static int commit_dsn(agent_round *r, const sk_envelope *e, const size_t *idx_in, size_t n_in,
                      sk_dsn_action action, char out_id[32])
{
    out_id[0] = '\0';
    if (!e->sender[0] || n_in == 0)
        return 0;
    size_t *idx = calloc(n_in, sizeof *idx);
    if (!idx)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < n_in; i++)
        if (notify_wants(e->rcpts[idx_in[i]].notify,
                         action == SK_DSN_DELAYED ? "DELAY" : "FAILURE"))
            idx[n++] = idx_in[i];
    int rc = commit_dsn_to(r, e, idx, n, action, out_id);
    free(idx);
    return rc;
}

/* Worker thread: apply the round to the record on disk, bounce, save. */
static void round_work(void *arg)
{
    agent_round *r = arg;
    sk_agent *ag = r->ag;
    sk_envelope e;
    char err[256];
    long long now = (long long)time(NULL);
    sk_queue_dir_lock(ag->q);
    sk_queue_stamp st;
    if (r->kind == ROUND_DELIVER && sk_queue_dir_stamp(ag->q, r->id, &st) == 0 &&
        sk_queue_stamp_same(&r->stamp, &st)) {
        /* the record is the one read at the start (a record is only ever
         * replaced by a rename): no need to read it again */
        e = r->env;
        sk_envelope_init(&r->env);
    } else if (sk_queue_dir_load(ag->q, r->id, &e, err, sizeof err) < 0) {
        sk_queue_dir_unlock(ag->q);
        if (errno == ENOENT) {
            r->next_due = -1; /* deleted meanwhile */
        } else {
            r->failed = 1;
            r->next_due = now + 60;
            snprintf(r->err, sizeof r->err, "%s", err);
        }
        return;
    }
    size_t *bounced = calloc(e.nrcpts ? e.nrcpts : 1, sizeof *bounced);
    size_t nb = 0;
    if (bounced && r->kind == ROUND_BOUNCE_ALL) {
        for (size_t i = 0; i < e.nrcpts; i++) {
            sk_envelope_rcpt *er = &e.rcpts[i];
            if (er->state == SK_ENV_SENT || er->state == SK_ENV_BOUNCED)
                continue;
            er->state = SK_ENV_BOUNCED;
            er->last.code = 0;
            (void)sk_envelope_set(&er->last.enhanced, "5.0.0");
            (void)sk_envelope_set(&er->last.host, "");
            (void)sk_envelope_set(&er->last.text, "removed from the queue by the administrator");
            bounced[nb++] = i;
        }
    } else if (bounced) {
        nb = sk_dlv_apply(&e, r->res, r->nres, &ag->cfg->delivery.retry, now, rnd32(), bounced);
    }
    if (!bounced || commit_dsn(r, &e, bounced, nb, SK_DSN_FAILED, r->dsn_id) < 0) {
        /* No bounce could be stored: those recipients wait and bounce
         * again at their next attempt, instead of bouncing unreported. */
        for (size_t i = 0; bounced && i < nb; i++) {
            e.rcpts[bounced[i]].state = SK_ENV_DEFERRED;
            e.rcpts[bounced[i]].next_attempt = now + ag->cfg->delivery.retry.min;
        }
        nb = 0;
    }
    r->nbounced = nb;
    /* RFC 3464 "delayed": once per message, when it has waited delay_warning
     * and recipients are still deferred (sk_retry_warning_due). */
    const sk_retry_policy *rp = &ag->cfg->delivery.retry;
    if (bounced && r->kind == ROUND_DELIVER && e.sender[0] &&
        sk_retry_warning_due(rp, (time_t)e.arrival, (time_t)now, e.warned)) {
        size_t nd = 0;
        for (size_t i = 0; i < e.nrcpts; i++)
            if (e.rcpts[i].state == SK_ENV_DEFERRED)
                bounced[nd++] = i;
        if (nd && commit_dsn(r, &e, bounced, nd, SK_DSN_DELAYED, r->delay_id) == 0)
            e.warned = 1;
        r->ndelayed = r->delay_id[0] ? nd : 0;
    }
    free(bounced);
    int rc;
    if (sk_dlv_all_final(&e)) {
        /* no directory fsync: a removal a crash undoes is a redelivery */
        rc = sk_queue_dir_retire(ag->q, r->id);
        r->next_due = -1;
    } else {
        rc = sk_queue_dir_update(ag->q, &e);
        r->next_due = sk_dlv_next_due(&e);
    }
    if (rc < 0) {
        r->failed = 1;
        snprintf(r->err, sizeof r->err, "cannot update the record: %s", strerror(errno));
        r->next_due = now + 60;
    }
    sk_queue_dir_unlock(ag->q);
    sk_envelope_clear(&e);
}

/* Loop thread: the record is written; schedule what is left. */
static void round_done(void *arg)
{
    agent_round *r = arg;
    sk_agent *ag = r->ag;
    agent_msg *m = r->m;
    if (r->failed || r->err[0]) {
        char why[300];
        sk_log(LOG_WARNING, "event=queue-error id=%s error=\"%s\"", r->id,
               sk_text_quoted(r->err, why, sizeof why));
    }
    if (r->nbounced && r->dsn_id[0])
        sk_log(LOG_INFO, "event=bounce id=%s recipients=%zu dsn_id=%s", r->id, r->nbounced,
               r->dsn_id);
    if (r->ndelayed)
        sk_log(LOG_INFO, "event=delay-warning id=%s recipients=%zu dsn_id=%s", r->id, r->ndelayed,
               r->delay_id);
    if (!ag->stopping) {
        for (size_t i = 0; i < r->ndsn_dests; i++)
            if (r->dsn_dests[i].kind == SK_DEST_QUEUE) {
                if (r->dsn_id[0])
                    sk_agent_queued(ag, r->dsn_id);
                if (r->delay_id[0])
                    sk_agent_queued(ag, r->delay_id);
                break;
            }
    }
    if (m) {
        m->round = NULL;
        m->force = 0;
        if (r->next_due < 0) {
            sk_log(LOG_INFO, "event=removed id=%s", r->id);
            msg_remove(ag, m);
        } else {
            m->due = r->next_due;
        }
    }
    round_free(r);
}

static void round_finish(agent_round *r)
{
    sk_agent *ag = r->ag;
    for (size_t i = 0; i < r->nattempts; i++)
        sk_attempt_free(r->attempts[i]);
    r->nattempts = 0;
    if (ag->stopping) {
        if (r->m)
            r->m->round = NULL;
        round_free(r);
        return;
    }
    if (sk_work_queue_submit(ag->work, round_work, round_done, r) < 0) {
        /* not queued: nothing written, the message is simply due again */
        if (r->m) {
            r->m->round = NULL;
            r->m->due = (long long)time(NULL) + 60;
        }
        round_free(r);
    }
}

static const char *state_word(sk_dlv_state s)
{
    switch (s) {
    case SK_DLV_SENT:
        return "sent";
    case SK_DLV_BOUNCE:
        return "bounced";
    default:
        return "deferred";
    }
}

static void log_result(const agent_round *r, const sk_dlv_rcpt_result *x, int tls)
{
    char to[600], relay[400], reply[700], full[700];
    if (x->code && x->reply_enh[0]) /* the reply as it came */
        snprintf(full, sizeof full, "%d %s %s", x->code, x->reply_enh, x->text);
    else if (x->code)
        snprintf(full, sizeof full, "%d %s", x->code, x->text);
    else
        snprintf(full, sizeof full, "%s", x->text);
    long long delay = (long long)time(NULL) - r->env.arrival;
    sk_log(LOG_INFO,
           "event=delivery id=%s to=<%s> relay=%s delay=%lld tls=%s status=%s dsn=%s "
           "reply=\"%s\"",
           r->id, sk_text_token(x->addr, to, sizeof to),
           x->host[0] ? sk_text_token(x->host, relay, sizeof relay) : "none", delay < 0 ? 0 : delay,
           tls ? "yes" : "no", state_word(x->state), x->enhanced,
           sk_text_quoted(full, reply, sizeof reply));
}

static void attempt_done(void *arg, sk_attempt *a)
{
    agent_round *r = arg;
    sk_agent *ag = r->ag;
    size_t n;
    sk_dlv_rcpt_result *res = sk_attempt_results(a, &n);
    int sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (res[i].state == SK_DLV_OPEN)
            res[i].state = SK_DLV_DEFER;
        if (res[i].state == SK_DLV_SENT)
            sent = 1;
        log_result(r, &res[i], sk_attempt_tls(a));
        if (r->nres < r->capres)
            r->res[r->nres++] = res[i];
    }
    agent_dest *d = dest_get(ag, sk_attempt_domain(a));
    if (d) {
        if (d->active)
            d->active--;
        if (sk_attempt_all_mx_failed(a) && !sent && res[0].state == SK_DLV_DEFER)
            sk_dest_backoff_failed(&d->backoff, &ag->cfg->delivery.retry, time(NULL), rnd32());
        else
            sk_dest_backoff_succeeded(&d->backoff);
    }
    if (ag->active)
        ag->active--;
    /* the attempt is freed with the round; mark it done */
    for (size_t i = 0; i < r->nattempts; i++) {
        if (r->attempts[i] == a) {
            r->attempts[i] = r->attempts[--r->nattempts];
            sk_attempt_free(a);
            break;
        }
    }
    if (--r->running == 0)
        round_finish(r);
    nudge(ag); /* a connection slot is free */
}

/* Start a round for m. 1 started, 0 nothing to do now. */
static int round_start(sk_agent *ag, agent_msg *m, long long now)
{
    agent_round *r = calloc(1, sizeof *r);
    if (!r)
        return 0;
    r->ag = ag;
    r->m = m;
    r->kind = ROUND_DELIVER;
    r->started = now;
    snprintf(r->id, sizeof r->id, "%s", m->id);
    char err[256];
    /* No queue lock to read: a record is only ever replaced whole (a
     * rename). The stamp is taken first, so a record replaced meanwhile
     * never matches it and is read again under the lock in round_work. */
    int rc = sk_queue_dir_stamp(ag->q, m->id, &r->stamp);
    if (rc == 0)
        rc = sk_queue_dir_load(ag->q, m->id, &r->env, err, sizeof err);
    int e = errno;
    if (rc < 0 && e != ENOENT && r->stamp.ino == 0)
        snprintf(err, sizeof err, "%s", strerror(e));
    if (rc < 0) {
        if (e == ENOENT) {
            msg_remove(ag, m);
        } else {
            char why[300];
            sk_log(LOG_WARNING, "event=queue-error id=%s error=\"%s\"", m->id,
                   sk_text_token(err, why, sizeof why));
            m->due = now + 3600;
        }
        free(r);
        return 0;
    }
    long long due = sk_dlv_next_due(&r->env);
    if (due < 0 || (due > now && !m->force)) {
        if (due < 0)
            msg_remove(ag, m); /* held or final: kick() brings it back */
        else
            m->due = due;
        round_free(r);
        return 0;
    }
    size_t nr = r->env.nrcpts;
    unsigned char *taken = calloc(nr, 1);
    size_t *idx = calloc(nr, sizeof *idx);
    r->res = calloc(nr, sizeof *r->res);
    r->capres = nr;
    r->attempts = calloc(nr, sizeof *r->attempts);
    sk_dlv_rcpt_result *grp = calloc(nr, sizeof *grp);
    if (!taken || !idx || !r->res || !r->attempts || !grp) {
        free(taken);
        free(idx);
        free(grp);
        round_free(r);
        return 0;
    }
    sk_attempt_msg am = {0};
    const sk_delivery_config *dc = &ag->cfg->delivery;
    size_t per = dc->recipients_per_transaction ? dc->recipients_per_transaction : 50;
    unsigned maxc = dc->max_connections ? dc->max_connections : 100;
    unsigned perdest = dc->connections_per_destination ? dc->connections_per_destination : 20;
    long long waiting = -1;    /* earliest back-off end among skipped domains */
    agent_dest *capped = NULL; /* a destination with every slot taken */
    int full = 0;              /* max_connections reached */
    int unreadable = 0;
    for (;;) {
        size_t n = sk_dlv_next_group(&r->env, now, m->force, taken, per, idx);
        if (!n)
            break;
        for (size_t i = 0; i < n; i++)
            taken[idx[i]] = 1;
        const char *domain = sk_dlv_domain(r->env.rcpts[idx[0]].addr);
        agent_dest *d = dest_get(ag, domain);
        if (!d)
            continue;
        /* a message waiting behind a backed-off destination still gets its
         * delay warning and still expires: then it is tried anyway */
        const sk_retry_policy *rp = &dc->retry;
        int overdue = now - r->env.arrival >= (long long)rp->lifetime ||
                      sk_retry_warning_due(rp, (time_t)r->env.arrival, (time_t)now, r->env.warned);
        if (!m->force && !overdue && sk_dest_backoff_blocked(&d->backoff, (time_t)now)) {
            if (waiting < 0 || d->backoff.until < waiting)
                waiting = d->backoff.until;
            continue;
        }
        if (ag->active >= maxc) {
            full = 1;
            break;
        }
        if (d->active >= perdest) {
            if (!capped)
                capped = d;
            continue;
        }
        if (!r->data) { /* read only when an attempt is about to start */
            char path[4096];
            if (sk_queue_dir_msg_path(ag->q, m->id, path, sizeof path) < 0 ||
                read_file(path, &r->data, &r->len) < 0) {
                unreadable = 1;
                break;
            }
            dsn_destinations(ag, r);
            size_t skip = skip_return_path(r->data, r->len);
            /* the record's size counts CRLF line ends, the file may have LF ones */
            unsigned long long whole = r->env.size > r->len ? r->env.size : r->len;
            am = (sk_attempt_msg){
                .sender = r->env.sender,
                .data = r->data + skip,
                .len = r->len - skip,
                .size = whole - skip,
                .body_8bit = r->env.body != SK_BODY_7BIT,
                .smtputf8 = r->env.smtputf8,
            };
        }
        for (size_t i = 0; i < n; i++) {
            memset(&grp[i], 0, sizeof grp[i]);
            grp[i].index = idx[i];
            snprintf(grp[i].addr, sizeof grp[i].addr, "%s", r->env.rcpts[idx[i]].addr);
        }
        sk_attempt *a = sk_attempt_start(&ag->aenv, domain, &am, grp, n, attempt_done, r);
        if (!a)
            continue;
        r->attempts[r->nattempts++] = a;
        r->running++;
        d->active++;
        ag->active++;
    }
    free(taken);
    free(idx);
    free(grp);
    if (unreadable && !r->running) {
        sk_log(LOG_WARNING, "event=queue-error id=%s error=\"cannot read the message file\"",
               m->id);
        m->due = now + 3600;
        round_free(r);
        return 0;
    }
    if (!r->running) {
        if (full) {
            m->due = now; /* still due: the next free slot anywhere starts it */
        } else if (capped) {
            /* started by the end of an attempt to that destination, and
             * skipped by the schedule until then */
            m->due = now;
            msg_park(capped, m);
        } else {
            m->due = waiting >= 0 ? waiting : now + 1;
        }
        round_free(r);
        return 0;
    }
    m->round = r;
    m->force = 0;
    return 1;
}

static void schedule_run(sk_agent *ag)
{
    if (ag->stopping)
        return;
    long long now = (long long)time(NULL);
    unsigned maxc = ag->cfg->delivery.max_connections ? ag->cfg->delivery.max_connections : 100;
    unsigned perdest = ag->cfg->delivery.connections_per_destination
                           ? ag->cfg->delivery.connections_per_destination
                           : 20;
    /* a destination with a free slot starts its waiting messages first */
    for (agent_dest *d = ag->dests; d; d = d->next)
        if (d->whead && d->active < perdest)
            dest_release(d, perdest);
    agent_msg *m = ag->msgs;
    while (m && ag->active < maxc) {
        agent_msg *next = m->next; /* m may leave the list */
        if (!m->round && !m->parked && (m->force || m->due <= now))
            round_start(ag, m, now);
        m = next;
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    schedule_run(arg);
}

/* ---- life --------------------------------------------------------------- */

static int listener_addr(const sk_listener_config *lc, sk_addr *out)
{
    memset(out, 0, sizeof *out);
    if (strchr(lc->address, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)lc->port);
        if (inet_pton(AF_INET6, lc->address, &s6->sin6_addr) != 1)
            return -1;
        out->len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)lc->port);
        if (inet_pton(AF_INET, lc->address, &s4->sin_addr) != 1)
            return -1;
        out->len = sizeof *s4;
    }
    snprintf(out->text, sizeof out->text, "%s", lc->address);
    return 0;
}

sk_agent *sk_agent_new(struct event_base *base, const struct sk_config *cfg,
                       struct sk_policy *const *policy, struct sk_store *store,
                       struct sk_work_queue *work, char *err, size_t errlen)
{
    sk_agent *ag = calloc(1, sizeof *ag);
    if (!ag) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ag->base = base;
    ag->cfg = cfg;
    ag->policy = policy;
    ag->store = store;
    ag->work = work;
    ag->q = sk_store_queue_dir(store);
    if (!ag->q) {
        snprintf(err, errlen, "the store has no outbound queue");
        goto fail;
    }
    const sk_delivery_config *dc = &cfg->delivery;
    ag->resolver = sk_mx_async_new(base, dc->dns_servers, 0, err, errlen);
    if (!ag->resolver)
        goto fail;
    ag->tls = SSL_CTX_new(TLS_client_method());
    if (!ag->tls) {
        snprintf(err, errlen, "cannot create the TLS client context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ag->tls, TLS1_2_VERSION);
    if (dc->tls_policy == SK_TLS_VERIFY)
        SSL_CTX_set_default_verify_paths(ag->tls);
    else
        SSL_CTX_set_verify(ag->tls, SSL_VERIFY_NONE, NULL); /* opportunistic: encrypt anyway */
    ag->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof *ag->listeners);
    if (!ag->listeners) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (listener_addr(&cfg->listeners[i], &ag->listeners[ag->nlisteners]) == 0)
            ag->nlisteners++;
    ag->nlocal = sk_local_addrs(ag->local, AGENT_LOCAL_ADDRS);
    ag->aenv = (sk_attempt_env){
        .base = base,
        .resolver = ag->resolver,
        .tls = ag->tls,
        .cfg = dc,
        .helo = cfg->server_name,
        .listeners = ag->listeners,
        .nlisteners = ag->nlisteners,
        .local = ag->local,
        .nlocal = ag->nlocal,
    };
    /* idle connections kept 2 s, as Postfix's smtp_connection_cache_time_limit */
    ag->cache = sk_conn_cache_new(base, 2, dc->connections_per_destination);
    if (!ag->cache) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ag->aenv.cache = ag->cache;
    ag->tick = event_new(base, -1, EV_PERSIST, tick_cb, ag);
    ag->nudge = event_new(base, -1, 0, tick_cb, ag);
    if (!ag->tick || !ag->nudge) {
        snprintf(err, errlen, "cannot create the agent's events");
        goto fail;
    }
    return ag;
fail:
    sk_agent_free(ag);
    return NULL;
}

typedef struct scan_state {
    sk_agent *ag;
    size_t queued;
} scan_state;

static int scan_cb(void *arg, const char *id, const sk_envelope *env, const char *err)
{
    scan_state *st = arg;
    if (!env) {
        char why[300];
        sk_log(LOG_WARNING, "event=queue-broken id=%s error=\"%s\"", id,
               sk_text_quoted(err ? err : "", why, sizeof why));
        return 0;
    }
    long long due = sk_dlv_next_due(env);
    if (due >= 0 && msg_add(st->ag, id, due))
        st->queued++;
    return 0;
}

size_t sk_agent_start(sk_agent *ag)
{
    scan_state st = {.ag = ag};
    (void)sk_queue_dir_scan(ag->q, scan_cb, &st);
    struct timeval tv = {.tv_sec = AGENT_TICK_S};
    event_add(ag->tick, &tv);
    sk_log(LOG_INFO, "event=queue-scan queued=%zu", st.queued);
    nudge(ag);
    return st.queued;
}

void sk_agent_queued(sk_agent *ag, const char *id)
{
    if (!ag || ag->stopping || !sk_queue_id_valid(id))
        return;
    if (msg_add(ag, id, 0))
        nudge(ag);
}

void sk_agent_stop(sk_agent *ag)
{
    if (!ag || ag->stopping)
        return;
    ag->stopping = 1;
    if (ag->tick)
        event_del(ag->tick);
    if (ag->nudge)
        event_del(ag->nudge);
    size_t cut = 0;
    for (agent_msg *m = ag->msgs; m; m = m->next) {
        agent_round *r = m->round;
        if (!r || r->running == 0)
            continue; /* none, or on a worker: it finishes there */
        for (size_t i = 0; i < r->nattempts; i++)
            sk_attempt_free(r->attempts[i]);
        r->nattempts = 0;
        cut++;
        m->round = NULL;
        round_free(r);
    }
    ag->active = 0;
    sk_conn_cache_free(ag->cache);
    ag->cache = NULL;
    ag->aenv.cache = NULL;
    sk_log(LOG_INFO, "event=delivery-stop interrupted=%zu", cut);
}

void sk_agent_free(sk_agent *ag)
{
    if (!ag)
        return;
    sk_agent_stop(ag);
    while (ag->msgs)
        msg_remove(ag, ag->msgs);
    while (ag->dests) {
        agent_dest *d = ag->dests;
        ag->dests = d->next;
        free(d);
    }
    if (ag->tick)
        event_free(ag->tick);
    if (ag->nudge)
        event_free(ag->nudge);
    sk_conn_cache_free(ag->cache);
    sk_mx_async_free(ag->resolver);
    if (ag->tls)
        SSL_CTX_free(ag->tls);
    free(ag->listeners);
    free(ag);
}

/* ---- the control interface (agent.h) ------------------------------------ */

static int has_domain(sk_agent *ag, const char *id, const char *domain)
{
    sk_envelope e;
    char err[256];
    sk_queue_dir_lock(ag->q);
    int rc = sk_queue_dir_load(ag->q, id, &e, err, sizeof err);
    sk_queue_dir_unlock(ag->q);
    if (rc < 0)
        return 0;
    int found = 0;
    for (size_t i = 0; i < e.nrcpts && !found; i++)
        found = strcasecmp(sk_dlv_domain(e.rcpts[i].addr), domain) == 0;
    sk_envelope_clear(&e);
    return found;
}

int sk_agent_flush(sk_agent *ag, const char *target, char *msg, size_t msglen)
{
    if (!ag || ag->stopping) {
        snprintf(msg, msglen, "the delivery agent is stopping");
        return -1;
    }
    /* a queue id when a message of that id is queued, else a domain */
    int is_id = 0;
    if (target && sk_queue_id_valid(target)) {
        char m2[128];
        if (sk_agent_kick(ag, target, m2, sizeof m2) == 0 && msg_find(ag, target))
            is_id = 1;
    }
    size_t n = 0;
    for (agent_msg *m = ag->msgs; m; m = m->next) {
        if (target && (is_id ? strcmp(m->id, target) != 0 : !has_domain(ag, m->id, target)))
            continue;
        m->force = 1;
        m->due = 0;
        n++;
    }
    for (agent_dest *d = ag->dests; !is_id && d; d = d->next)
        if (!target || strcasecmp(d->domain, target) == 0)
            sk_dest_backoff_succeeded(&d->backoff);
    nudge(ag);
    snprintf(msg, msglen, "%zu message%s to try now", n, n == 1 ? "" : "s");
    return 0;
}

int sk_agent_kick(sk_agent *ag, const char *id, char *msg, size_t msglen)
{
    if (!ag || !id || !sk_queue_id_valid(id)) {
        snprintf(msg, msglen, "not a queue id");
        return -1;
    }
    sk_envelope e;
    char err[256];
    sk_queue_dir_lock(ag->q);
    int rc = sk_queue_dir_load(ag->q, id, &e, err, sizeof err);
    int en = errno;
    sk_queue_dir_unlock(ag->q);
    agent_msg *m = msg_find(ag, id);
    if (rc < 0) {
        if (en == ENOENT) {
            if (m && !m->round)
                msg_remove(ag, m);
            snprintf(msg, msglen, "%s: not in the queue", id);
            return 0;
        }
        snprintf(msg, msglen, "%s: %s", id, err);
        return -1;
    }
    long long due = sk_dlv_next_due(&e);
    sk_envelope_clear(&e);
    if (due < 0) {
        if (m && !m->round)
            msg_remove(ag, m);
        snprintf(msg, msglen, "%s: nothing to deliver (held or done)", id);
        return 0;
    }
    if (!m && !(m = msg_add(ag, id, due))) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    m->due = due;
    nudge(ag);
    snprintf(msg, msglen, "%s: scheduled", id);
    return 0;
}

int sk_agent_bounce(sk_agent *ag, const char *id, char *msg, size_t msglen)
{
    if (!ag || ag->stopping || !id || !sk_queue_id_valid(id)) {
        snprintf(msg, msglen,
                 ag && ag->stopping ? "the delivery agent is stopping" : "not a queue id");
        return -1;
    }
    agent_msg *m = msg_find(ag, id);
    if (m && m->round) {
        snprintf(msg, msglen, "%s: being delivered now; try again in a moment", id);
        return -1;
    }
    agent_round *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    r->ag = ag;
    r->kind = ROUND_BOUNCE_ALL;
    snprintf(r->id, sizeof r->id, "%s", id);
    char err[256];
    sk_queue_dir_lock(ag->q);
    int rc = sk_queue_dir_load(ag->q, id, &r->env, err, sizeof err);
    sk_queue_dir_unlock(ag->q);
    char path[4096];
    if (rc < 0 || sk_queue_dir_msg_path(ag->q, id, path, sizeof path) < 0 ||
        read_file(path, &r->data, &r->len) < 0) {
        snprintf(msg, msglen, "%s: %s", id, rc < 0 ? err : "cannot read the message");
        round_free(r);
        return -1;
    }
    dsn_destinations(ag, r);
    if (!m)
        m = msg_add(ag, id, LLONG_MAX);
    r->m = m;
    if (m)
        m->round = r;
    if (sk_work_queue_submit(ag->work, round_work, round_done, r) < 0) {
        if (m)
            m->round = NULL;
        round_free(r);
        snprintf(msg, msglen, "cannot start the bounce");
        return -1;
    }
    snprintf(msg, msglen, "%s: bouncing", id);
    return 0;
}

/* ---- the metrics endpoint's view of the queue ---------------------------- */

static int stats_cb(void *arg, const char *id, const sk_envelope *env, const char *err)
{
    sk_agent_queue_stats *st = arg;
    (void)id;
    (void)err;
    if (!env) {
        st->unreadable++;
        return 0;
    }
    unsigned long long n[SK_AGENT_STATES] = {0};
    for (size_t i = 0; i < env->nrcpts; i++) {
        switch (env->rcpts[i].state) {
        case SK_ENV_PENDING:
            n[SK_AGENT_PENDING]++;
            break;
        case SK_ENV_DEFERRED:
            n[SK_AGENT_DEFERRED]++;
            break;
        case SK_ENV_HELD:
            n[SK_AGENT_HELD]++;
            break;
        default: /* sent or bounced: done */
            break;
        }
    }
    int state = n[SK_AGENT_PENDING]    ? SK_AGENT_PENDING
                : n[SK_AGENT_DEFERRED] ? SK_AGENT_DEFERRED
                : n[SK_AGENT_HELD]     ? SK_AGENT_HELD
                                       : -1;
    if (state < 0)
        return 0; /* every recipient final: about to leave the queue */
    for (int s = 0; s < SK_AGENT_STATES; s++)
        st->state[s].recipients += n[s];
    st->state[state].messages++;
    long long *oldest = &st->state[state].oldest_arrival;
    if (st->state[state].messages == 1 || env->arrival < *oldest)
        *oldest = env->arrival;
    return 0;
}

int sk_agent_stats(sk_agent *ag, sk_agent_queue_stats *out)
{
    memset(out, 0, sizeof *out);
    unsigned long long totals[4];
    sk_attempt_totals(totals);
    out->sent = totals[SK_DLV_SENT];
    out->deferred = totals[SK_DLV_DEFER];
    out->bounced = totals[SK_DLV_BOUNCE];
    if (!ag || !ag->q)
        return -1;
    return sk_queue_dir_scan(ag->q, stats_cb, out) < 0 ? -1 : 0;
}
