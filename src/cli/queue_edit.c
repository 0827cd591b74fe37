/*
 * queue_edit.c - `smtpkit queue hold|release|delete` and the file side of
 * `flush`: each change is a read-modify-write of an envelope record
 * (queue/envelope.h) under sk_queue_dir_lock(), the lock the delivery
 * agent takes for its own updates, so neither overwrites the other
 * (docs/ARCHITECTURE.md, "Operating the queue"). RFC 5321 6.1: nothing
 * here loses a message silently; delete is the operator's explicit choice.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/queue_cli.h"

int sk_queue_rcpt_at(const char *addr, const char *domain)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    return at && domain && strcasecmp(at + 1, domain) == 0;
}

/* Load id under the lock (the caller holds it). An exit status. */
static int load(sk_queue_dir *q, const char *id, sk_envelope *e, char *msg, size_t msglen)
{
    char why[256] = "";
    if (sk_queue_dir_load(q, id, e, why, sizeof why) == 0)
        return SK_QUEUE_EXIT_OK;
    if (errno == ENOENT) {
        snprintf(msg, msglen, "%s: no such message in the queue", id);
        return SK_QUEUE_EXIT_NO_MESSAGE;
    }
    snprintf(msg, msglen, "%s: cannot read its record: %s", id, why[0] ? why : strerror(errno));
    return SK_QUEUE_EXIT_ERROR;
}

static int save(sk_queue_dir *q, const sk_envelope *e, char *msg, size_t msglen)
{
    if (sk_queue_dir_update(q, e) == 0)
        return SK_QUEUE_EXIT_OK;
    if (errno == ENOENT) {
        snprintf(msg, msglen, "%s: left the queue meanwhile", e->id);
        return SK_QUEUE_EXIT_NO_MESSAGE;
    }
    snprintf(msg, msglen, "%s: cannot update its record: %s", e->id, strerror(errno));
    return SK_QUEUE_EXIT_ERROR;
}

int sk_queue_hold(sk_queue_dir *q, const char *id, char *msg, size_t msglen)
{
    sk_envelope e;
    sk_queue_dir_lock(q);
    int rc = load(q, id, &e, msg, msglen);
    if (rc == SK_QUEUE_EXIT_OK) {
        size_t changed = 0, held = 0;
        for (size_t i = 0; i < e.nrcpts; i++) {
            sk_envelope_rcpt *r = &e.rcpts[i];
            if (r->state == SK_ENV_PENDING || r->state == SK_ENV_DEFERRED) {
                r->state = SK_ENV_HELD; /* attempts, next attempt, last reply kept */
                changed++;
            }
            held += r->state == SK_ENV_HELD;
        }
        if (changed)
            rc = save(q, &e, msg, msglen);
        if (rc == SK_QUEUE_EXIT_OK) {
            if (changed)
                snprintf(msg, msglen, "%s: held (%zu recipient%s)", id, changed,
                         changed == 1 ? "" : "s");
            else if (held)
                snprintf(msg, msglen, "%s: already held", id);
            else
                snprintf(msg, msglen, "%s: nothing to hold (every recipient is sent or bounced)",
                         id);
        }
    }
    sk_queue_dir_unlock(q);
    sk_envelope_clear(&e);
    return rc;
}

int sk_queue_release(sk_queue_dir *q, const char *id, time_t now, char *msg, size_t msglen)
{
    sk_envelope e;
    sk_queue_dir_lock(q);
    int rc = load(q, id, &e, msg, msglen);
    if (rc == SK_QUEUE_EXIT_OK) {
        size_t changed = 0;
        for (size_t i = 0; i < e.nrcpts; i++) {
            sk_envelope_rcpt *r = &e.rcpts[i];
            if (r->state != SK_ENV_HELD)
                continue;
            /* Never tried: pending again; tried before: deferred, due now. */
            r->state = r->attempts ? SK_ENV_DEFERRED : SK_ENV_PENDING;
            r->next_attempt = (long long)now;
            changed++;
        }
        if (changed)
            rc = save(q, &e, msg, msglen);
        if (rc == SK_QUEUE_EXIT_OK) {
            if (changed)
                snprintf(msg, msglen, "%s: released (%zu recipient%s)", id, changed,
                         changed == 1 ? "" : "s");
            else
                snprintf(msg, msglen, "%s: not held", id);
        }
    }
    sk_queue_dir_unlock(q);
    sk_envelope_clear(&e);
    return rc;
}

int sk_queue_delete(sk_queue_dir *q, const char *id, char *msg, size_t msglen)
{
    sk_queue_dir_lock(q);
    int r = sk_queue_dir_remove(q, id);
    int e = errno;
    sk_queue_dir_unlock(q);
    if (r == 0) {
        snprintf(msg, msglen, "%s: deleted", id);
        return SK_QUEUE_EXIT_OK;
    }
    if (e == ENOENT) {
        snprintf(msg, msglen, "%s: no such message in the queue", id);
        return SK_QUEUE_EXIT_NO_MESSAGE;
    }
    snprintf(msg, msglen, "%s: cannot delete: %s", id, strerror(e));
    return SK_QUEUE_EXIT_ERROR;
}

/* Make the deferred recipients of one record due (at `domain` only, when
 * given). Under the lock; *changed incremented when the record was saved. */
static int due_one(sk_queue_dir *q, const char *id, const char *domain, time_t now,
                   unsigned *changed, char *msg, size_t msglen)
{
    sk_envelope e;
    sk_queue_dir_lock(q);
    int rc = load(q, id, &e, msg, msglen);
    if (rc == SK_QUEUE_EXIT_OK) {
        size_t n = 0;
        for (size_t i = 0; i < e.nrcpts; i++) {
            sk_envelope_rcpt *r = &e.rcpts[i];
            if (r->state == SK_ENV_DEFERRED && r->next_attempt > (long long)now &&
                (!domain || sk_queue_rcpt_at(r->addr, domain))) {
                r->next_attempt = (long long)now;
                n++;
            }
        }
        if (n && (rc = save(q, &e, msg, msglen)) == SK_QUEUE_EXIT_OK)
            (*changed)++;
    }
    sk_queue_dir_unlock(q);
    sk_envelope_clear(&e);
    return rc;
}

typedef struct due_scan {
    sk_queue_dir *q;
    const char *domain;
    time_t now;
    unsigned *changed;
    int rc;
    char *msg;
    size_t msglen;
} due_scan;

static int due_cb(void *arg, const char *id, const sk_envelope *env, const char *err)
{
    (void)err;
    due_scan *s = arg;
    if (!env)
        return 0; /* broken records are for `list` to show */
    int match = !s->domain;
    for (size_t i = 0; !match && i < env->nrcpts; i++)
        match = env->rcpts[i].state == SK_ENV_DEFERRED &&
                sk_queue_rcpt_at(env->rcpts[i].addr, s->domain);
    if (!match)
        return 0;
    char why[512];
    int rc = due_one(s->q, id, s->domain, s->now, s->changed, why, sizeof why);
    if (rc == SK_QUEUE_EXIT_ERROR && s->rc == SK_QUEUE_EXIT_OK) {
        s->rc = rc; /* report the first failure, go on with the others */
        snprintf(s->msg, s->msglen, "%s", why);
    }
    return 0;
}

int sk_queue_make_due(sk_queue_dir *q, const char *id, const char *domain, time_t now,
                      unsigned *changed, char *msg, size_t msglen)
{
    *changed = 0;
    msg[0] = '\0';
    if (id)
        return due_one(q, id, NULL, now, changed, msg, msglen);
    due_scan s = {q, domain, now, changed, SK_QUEUE_EXIT_OK, msg, msglen};
    if (sk_queue_dir_scan(q, due_cb, &s) < 0) {
        snprintf(msg, msglen, "cannot read the queue: %s", strerror(errno));
        return SK_QUEUE_EXIT_ERROR;
    }
    return s.rc;
}
