/*
 * queue_kind.c - the outbound queue as a destination kind of the store
 * (RFC 5321 6.1: after its 250 the server keeps the message until it is
 * delivered or the failure is reported; queue/queue_dir.h has the layout).
 *
 * stage, after the spool file's fsync:
 *   1. msg/<id>: a hard link to the spool file (or, across filesystems, a
 *      copy written in tmp/, fsynced, renamed into msg/);
 *   2. env/<id>: the envelope record (sender, ENVID, RET, body type,
 *      SMTPUTF8, and each distinct recipient address with ORCPT, NOTIFY,
 *      state pending), written in tmp/, fsynced, renamed into env/;
 *   3. msg/ and env/ are named for the shared directory fsyncs.
 * finish on failure removes env/<id>, then msg/<id>, and fsyncs both, so
 * a message whose sender heard no 250 is never delivered later.
 */
#include "smtpkit/store.h"
#include "queue/envelope.h"
#include "queue/queue_dir.h"
#include "store/store_internal.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What stage made, for finish. */
struct queue_state {
    int msg_made;
    int env_made;
};

/* msg/<id>, as a copy when the spool is on another filesystem. */
static int copy_message(sk_store_msg *m, sk_queue_dir *q)
{
    char tname[64];
    snprintf(tname, sizeof tname, "%s.msg", m->id);
    int tmpfd = sk_queue_dir_tmp_fd(q);
    int out = openat(tmpfd, tname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        return -1;
    int rc = sk_store_msg_copy_to(m, out);
    int e = errno;
    close(out);
    if (rc == 0 && renameat2(tmpfd, tname, sk_queue_dir_msg_fd(q), m->id, RENAME_NOREPLACE) < 0) {
        e = errno;
        rc = -1;
    }
    if (rc < 0)
        unlinkat(tmpfd, tname, 0);
    errno = e;
    return rc;
}

static void queue_finish(sk_store_msg *m, void *state, int keep)
{
    struct queue_state *qs = state;
    if (!qs)
        return;
    sk_queue_dir *q = m->st->queue;
    if (!keep && q) {
        if (qs->env_made) {
            unlinkat(sk_queue_dir_env_fd(q), m->id, 0);
            (void)fsync(sk_queue_dir_env_fd(q));
        }
        if (qs->msg_made) {
            unlinkat(sk_queue_dir_msg_fd(q), m->id, 0);
            (void)fsync(sk_queue_dir_msg_fd(q));
        }
    }
    free(qs);
}

static sk_store_result queue_stage(sk_store_msg *m, const sk_store_envelope *env,
                                   const sk_store_dest *dests, size_t n, void **state)
{
    sk_queue_dir *q = m->st->queue;
    if (!q || !env) /* no queue configured, or nothing to write in it */
        return sk_store_msg_note(m, q ? "arguments" : "queue-msg", NULL, NULL, 0);
    struct queue_state *qs = calloc(1, sizeof *qs);
    if (!qs)
        return sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
    dev_t dev;
    ino_t ino;

    sk_envelope e;
    sk_envelope_init(&e);
    snprintf(e.id, sizeof e.id, "%s", m->id);
    e.arrival = env->arrival > 0 ? env->arrival : (long long)m->begun;
    e.size = m->wire; /* the RFC 822 size (SIZE=), not the LF file's */
    e.body = env->body == SK_STORE_BODY_8BITMIME     ? SK_BODY_8BITMIME
             : env->body == SK_STORE_BODY_BINARYMIME ? SK_BODY_BINARYMIME
                                                     : SK_BODY_7BIT;
    e.smtputf8 = env->smtputf8 != 0;
    int bad = sk_envelope_set(&e.sender, env->sender) < 0 ||
              sk_envelope_set(&e.envid, env->envid) < 0 || sk_envelope_set(&e.ret, env->ret) < 0;
    /* one entry per distinct address, in the order the client gave them */
    for (size_t i = 0; i < n && !bad; i++) {
        size_t k = 0;
        while (k < e.nrcpts && strcmp(e.rcpts[k].addr, dests[i].target) != 0)
            k++;
        if (k < e.nrcpts)
            continue;
        bad = sk_envelope_add_rcpt(&e, dests[i].target, dests[i].orcpt, dests[i].notify,
                                   e.arrival) < 0;
        if (!bad)
            e.rcpts[e.nrcpts - 1].state = SK_ENV_PENDING;
    }
    sk_store_result r = SK_STORE_OK;
    if (bad) {
        r = sk_store_msg_note(m, "queue-envelope", sk_queue_dir_env_dir(q, &dev, &ino), m->id,
                              ENOMEM);
        goto fail;
    }
    /* 1. the message file */
    if (linkat(m->st->tmp_fd, m->name, sk_queue_dir_msg_fd(q), m->id, 0) == 0 ||
        (errno == EXDEV && copy_message(m, q) == 0)) {
        qs->msg_made = 1;
    } else {
        r = sk_store_msg_note(m, "queue-msg", sk_queue_dir_msg_dir(q, &dev, &ino), m->id, errno);
        goto fail;
    }
    /* 2. the envelope: the directory fsync is the batch's (step 3) */
    if (sk_envelope_save(sk_queue_dir_env_fd(q), m->id, sk_queue_dir_tmp_fd(q), &e, 0) < 0) {
        int err = errno;
        r = sk_store_msg_note(m, "queue-envelope", sk_queue_dir_env_dir(q, &dev, &ino), m->id, err);
        if (err == EINVAL)
            r = SK_STORE_IOERR;
        goto fail;
    }
    qs->env_made = 1;
    /* 3. */
    const char *dir = sk_queue_dir_msg_dir(q, &dev, &ino);
    if (sk_store_msg_add_dir(m, dir, dev, ino) < 0) {
        r = sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
        goto fail;
    }
    dir = sk_queue_dir_env_dir(q, &dev, &ino);
    if (sk_store_msg_add_dir(m, dir, dev, ino) < 0) {
        r = sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
        goto fail;
    }
    sk_envelope_clear(&e);
    *state = qs;
    return SK_STORE_OK;
fail:
    sk_envelope_clear(&e);
    queue_finish(m, qs, 0);
    return r;
}

const sk_store_kind sk_store_kind_queue = {
    .name = "queue",
    .stage = queue_stage,
    .finish = queue_finish,
};
