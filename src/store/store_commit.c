/*
 * store_commit.c - the commit of one message to typed destinations (see
 * store.h, store_internal.h): the durability RFC 5321 6.1 asks of a server
 * before its 250 reply to the end of data, atomic across destinations.
 *
 * 1. flush and fsync the spool file: its data and inode are durable before
 *    any destination names it;
 * 2. each kind with destinations stages its copy (Maildir links, the queue's
 *    message file and envelope record); a failure undoes the kinds staged;
 * 3. every directory the kinds named is fsynced (shared by a batch in the
 *    commit queue);
 * 4. each kind keeps its copy, or removes it if anything failed; the spool
 *    name goes; only now may the server say 250.
 */
#include "smtpkit/store.h"
#include "store/store_internal.h"
#include "util/fsutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The kinds, in the order they stage: the local copies first. */
static const sk_store_kind *const kinds[SK_DEST_KINDS] = {
    [SK_DEST_MAILDIR] = &sk_store_kind_maildir,
    [SK_DEST_QUEUE] = &sk_store_kind_queue,
    [SK_DEST_LMTP] = &sk_store_kind_lmtp, /* last: what it hands over stays handed over */
};

int sk_store_msg_add_dir(sk_store_msg *m, const char *path, dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < m->ndirs; i++)
        if (m->dirs[i].dev == dev && m->dirs[i].ino == ino)
            return 0;
    if (m->ndirs == m->capdirs) {
        size_t ncap = m->capdirs ? m->capdirs * 2 : 4;
        sk_store_dir *v = realloc(m->dirs, ncap * sizeof *v);
        if (!v)
            return -1;
        m->dirs = v;
        m->capdirs = ncap;
    }
    char *p = strdup(path);
    if (!p)
        return -1;
    m->dirs[m->ndirs++] = (sk_store_dir){.path = p, .dev = dev, .ino = ino};
    return 0;
}

size_t sk_store_msg_ndirs(const sk_store_msg *m)
{
    return m && m->err == SK_STORE_OK ? m->ndirs : 0;
}

const char *sk_store_msg_dir(const sk_store_msg *m, size_t i, dev_t *dev, ino_t *ino)
{
    if (!m || i >= sk_store_msg_ndirs(m))
        return NULL;
    if (dev)
        *dev = m->dirs[i].dev;
    if (ino)
        *ino = m->dirs[i].ino;
    return m->dirs[i].path;
}

sk_store_result sk_store_fsync_dir(const char *path, int *errnum)
{
    if (errnum)
        *errnum = 0;
    if (!path)
        return SK_STORE_IOERR;
    if (sk_fs_fsync_dir(path) == 0)
        return SK_STORE_OK;
    if (errnum)
        *errnum = errno;
    return sk_store_result_of(errno);
}

/* Undo every kind staged so far. */
static void unstage(sk_store_msg *m)
{
    for (int k = 0; k < SK_DEST_KINDS; k++) {
        if (m->kstate[k]) {
            kinds[k]->finish(m, m->kstate[k], 0);
            m->kstate[k] = NULL;
        }
    }
}

sk_store_result sk_store_commit_stage(sk_store_msg *m, const sk_store_envelope *env,
                                      const sk_store_dest *dests, size_t ndests)
{
    if (!m)
        return SK_STORE_IOERR;
    if (m->err != SK_STORE_OK)
        return m->err;
    if (!dests || ndests == 0 || m->staged) {
        m->err = sk_store_msg_note(m, "arguments", NULL, NULL, 0);
        return m->err;
    }
    m->staged = 1;
    for (size_t i = 0; i < ndests; i++) {
        if ((unsigned)dests[i].kind >= SK_DEST_KINDS || !dests[i].target ||
            (env && dests[i].rcpt >= env->nrcpts)) {
            m->err = sk_store_msg_note(m, "arguments", NULL, NULL, 0);
            return m->err;
        }
    }
    if (sk_store_msg_flush(m) != SK_STORE_OK)
        return m->err;
    if (fsync(m->fd) < 0) {
        m->err = sk_store_msg_note(m, "spool-fsync", m->st->tmp_root, m->name, errno);
        return m->err;
    }
    /* Each kind gets its own destinations, in the order given. */
    sk_store_dest *mine = malloc(ndests * sizeof *mine);
    if (!mine) {
        m->err = sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
        return m->err;
    }
    for (int k = 0; k < SK_DEST_KINDS && m->err == SK_STORE_OK; k++) {
        size_t n = 0;
        for (size_t i = 0; i < ndests; i++)
            if ((int)dests[i].kind == k)
                mine[n++] = dests[i];
        if (n == 0)
            continue;
        void *state = NULL;
        sk_store_result r = kinds[k]->stage(m, env, mine, n, &state);
        if (r != SK_STORE_OK) {
            /* every kind names its failed step; a kind that did not is
             * still reported, by its name */
            sk_store_msg_note(m, kinds[k]->name, NULL, NULL, 0);
            m->err = r;
            unstage(m);
        } else {
            m->kstate[k] = state;
        }
    }
    free(mine);
    return m->err;
}

sk_store_result sk_store_commit_finish(sk_store_msg *m, sk_store_result dirs, size_t nrcpts,
                                       sk_store_outcome *out)
{
    if (out)
        *out = (sk_store_outcome){.result = SK_STORE_IOERR};
    if (!m)
        return SK_STORE_IOERR;
    sk_store_result r = m->err != SK_STORE_OK ? m->err : dirs;
    if (!m->staged && r == SK_STORE_OK)
        r = SK_STORE_IOERR;
    if (r != SK_STORE_OK) /* the directory fsyncs' callers note their own */
        sk_store_msg_note(m, m->staged ? "dir-fsync" : "arguments", NULL, NULL, 0);
    if (out && r != SK_STORE_OK)
        out->error = m->why;
    if (r != SK_STORE_OK) {
        unstage(m);
    } else {
        for (int k = 0; k < SK_DEST_KINDS; k++) {
            if (m->kstate[k])
                kinds[k]->finish(m, m->kstate[k], 1);
            m->kstate[k] = NULL;
        }
    }
    /* The copies are durable (or gone): the spool name has done its job. If
     * this unlink is lost in a crash, the next open removes the name. */
    unlinkat(m->st->tmp_fd, m->name, 0);
    if (out) {
        out->result = r;
        out->code = 0;
        out->enhanced[0] = out->text[0] = '\0';
        if (r == m->reply.result && (r == SK_STORE_DEFERRED || r == SK_STORE_REFUSED)) {
            out->code = m->reply.code;
            memcpy(out->enhanced, m->reply.enhanced, sizeof out->enhanced);
            memcpy(out->text, m->reply.text, sizeof out->text);
        }
        if (nrcpts && (out->rcpts = calloc(nrcpts, sizeof *out->rcpts)) != NULL) {
            out->nrcpts = nrcpts;
            /* a recipient an answering destination (LMTP) spoke for has its
             * reply; the others share the message's result */
            for (size_t i = 0; i < nrcpts; i++)
                out->rcpts[i] = (i < m->nrcpt_out && m->rcpt_set[i])
                                    ? m->rcpt_out[i]
                                    : (sk_store_rcpt_outcome){.result = r};
        }
    }
    sk_store_msg_free(m);
    return r;
}

sk_store_result sk_store_commit(sk_store_msg *m, const sk_store_envelope *env,
                                const sk_store_dest *dests, size_t ndests, sk_store_outcome *out)
{
    if (!m) {
        if (out)
            *out = (sk_store_outcome){.result = SK_STORE_IOERR};
        return SK_STORE_IOERR;
    }
    sk_store_result dirs = SK_STORE_OK;
    if (sk_store_commit_stage(m, env, dests, ndests) == SK_STORE_OK) {
        for (size_t i = 0; i < sk_store_msg_ndirs(m) && dirs == SK_STORE_OK; i++) {
            int e;
            dirs = sk_store_fsync_dir(m->dirs[i].path, &e);
            if (dirs != SK_STORE_OK)
                sk_store_msg_note(m, "dir-fsync", m->dirs[i].path, NULL, e);
        }
    }
    return sk_store_commit_finish(m, dirs, env ? env->nrcpts : 0, out);
}

sk_store_result sk_store_commit_maildirs(sk_store_msg *m, const char *const *dirs, size_t ndirs)
{
    if (!m)
        return SK_STORE_IOERR;
    sk_store_dest one[8];
    sk_store_dest *d = ndirs <= 8 ? one : calloc(ndirs, sizeof *d);
    if (!d || !dirs || ndirs == 0) {
        if (d && d != one)
            free(d);
        m->err = SK_STORE_IOERR;
        return sk_store_commit_finish(m, SK_STORE_IOERR, 0, NULL);
    }
    for (size_t i = 0; i < ndirs; i++)
        d[i] = (sk_store_dest){.kind = SK_DEST_MAILDIR, .target = dirs[i] ? dirs[i] : ""};
    sk_store_result r = sk_store_commit(m, NULL, d, ndirs, NULL);
    if (d != one)
        free(d);
    return r;
}

void sk_store_outcome_free(sk_store_outcome *o)
{
    if (!o)
        return;
    free(o->rcpts);
    o->rcpts = NULL;
    o->nrcpts = 0;
}
