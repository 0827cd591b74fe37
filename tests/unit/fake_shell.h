/*
 * fake_shell.h - a stand-in for the server shell in session unit tests:
 * ops that record every call, a configurable store and recipient policy,
 * and a driver that feeds bytes the way the real shell must (commit_done
 * when SK_WANT_COMMIT, tls_started and discard on SK_WANT_TLS, stop on
 * SK_WANT_CLOSE or SK_WANT_AUTH), then splits the output into replies.
 * With auth_async, auth_check answers SK_AUTH_PENDING and keeps the
 * verdict it would have given in auth_verdict for the test to deliver.
 *
 * Included by one test file per binary (static functions).
 */
#ifndef SMTPKIT_TEST_FAKE_SHELL_H
#define SMTPKIT_TEST_FAKE_SHELL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/buf.h"
#include "smtpkit/session.h"

#define FAKE_MAX_REPLIES 512

typedef struct fake_reply {
    int code;
    char enhanced[16]; /* "" when none; checked equal on every line */
    char text[2048];   /* lines after code/enhanced, joined with '\n' */
    int nlines;
} fake_reply;

typedef struct fake {
    sk_session_config cfg;
    sk_session_ops ops;
    sk_peer peer;
    sk_session *s;

    /* output, split into replies */
    sk_buf raw;
    sk_buf wire; /* every byte the session wrote, never consumed */
    fake_reply replies[FAKE_MAX_REPLIES];
    int nreplies, next;

    /* store */
    sk_store_result begin_result, append_result, commit_result;
    size_t append_fail_after; /* fail appends once this many bytes stored (0: never) */
    int begins, aborts, commits, appends, open;
    sk_buf msg;        /* the message being written */
    sk_buf committed;  /* the last committed message */
    sk_buf bodies;     /* every committed message from its "Subject:" on */
    size_t max_append; /* largest single append seen */
    int manual_commit; /* do not call commit_done from the driver */

    /* recipients, auth, tls */
    int rcpt_calls, dest_frees, dests_made;
    char last_rcpt[512];
    int auth_calls;
    char last_user[300];
    int auth_async;    /* auth_check answers SK_AUTH_PENDING */
    int auth_verdict;  /* ... and the verdict it would have given */
    int tls_available; /* for ops.tls_available */
    size_t discarded_after_tls;
    int tls_started;

    sk_buf log;
} fake;

static sk_rcpt_verdict fake_rcpt_check(void *ctx, const sk_session_info *info, const char *addr,
                                       void **dest, const char **fwd)
{
    fake *f = ctx;
    (void)info;
    f->rcpt_calls++;
    snprintf(f->last_rcpt, sizeof f->last_rcpt, "%s", addr);
    if (strncmp(addr, "unknown@", 8) == 0)
        return SK_RCPT_UNKNOWN;
    if (strncmp(addr, "relay@", 6) == 0)
        return SK_RCPT_RELAY_DENIED;
    if (strncmp(addr, "disabled@", 9) == 0)
        return SK_RCPT_DISABLED;
    if (strncmp(addr, "temp@", 5) == 0)
        return SK_RCPT_TEMPFAIL;
    *dest = malloc(8);
    f->dests_made++;
    if (strncmp(addr, "fwd@", 4) == 0) {
        *fwd = "elsewhere@example.net";
        return SK_RCPT_FORWARD;
    }
    return SK_RCPT_ACCEPT;
}

static void fake_dest_free(void *ctx, void *dest)
{
    fake *f = ctx;
    f->dest_frees++;
    free(dest);
}

static int fake_auth_check(void *ctx, const char *user, const char *password)
{
    fake *f = ctx;
    f->auth_calls++;
    snprintf(f->last_user, sizeof f->last_user, "%s", user);
    int v = strcmp(user, "tempfail") == 0
                ? -1
                : strcmp(user, "user") == 0 && strcmp(password, "secret") == 0;
    if (f->auth_async) {
        f->auth_verdict = v;
        return SK_AUTH_PENDING;
    }
    return v;
}

static sk_store_result fake_store_begin(void *ctx, sk_transaction *tx)
{
    fake *f = ctx;
    f->begins++;
    if (f->begin_result != SK_STORE_OK)
        return f->begin_result;
    snprintf(tx->id, sizeof tx->id, "ID%04d", f->begins);
    sk_buf_clear(&f->msg);
    f->open = 1;
    return SK_STORE_OK;
}

static sk_store_result fake_store_append(void *ctx, const char *p, size_t n)
{
    fake *f = ctx;
    f->appends++;
    if (n > f->max_append)
        f->max_append = n;
    if (!f->open)
        return SK_STORE_IOERR; /* append without begin: a session bug */
    if (f->append_result != SK_STORE_OK)
        return f->append_result;
    if (f->append_fail_after && f->msg.len + n > f->append_fail_after)
        return SK_STORE_NOSPACE;
    sk_buf_append(&f->msg, p, n);
    return SK_STORE_OK;
}

static void fake_store_commit(void *ctx, sk_transaction *tx)
{
    fake *f = ctx;
    (void)tx;
    f->commits++;
    f->open = 0;
    sk_buf_clear(&f->committed);
    sk_buf_append(&f->committed, f->msg.data ? f->msg.data : "", f->msg.len);
    const char *subj = f->committed.data ? strstr(f->committed.data, "Subject:") : NULL;
    if (subj)
        sk_buf_append_str(&f->bodies, subj);
}

static void fake_store_abort(void *ctx)
{
    fake *f = ctx;
    f->aborts++;
    f->open = 0;
    sk_buf_clear(&f->msg);
}

static void fake_log(void *ctx, const char *line)
{
    fake *f = ctx;
    sk_buf_append_str(&f->log, line);
    sk_buf_append(&f->log, "\n", 1);
}

static int fake_tls_available(void *ctx)
{
    return ((fake *)ctx)->tls_available;
}

static void fake_defaults(fake *f)
{
    memset(f, 0, sizeof *f);
    f->cfg.hostname = "mx.example.com";
    f->cfg.max_message_size = 10 * 1024 * 1024;
    f->cfg.max_recipients = 100;
    f->cfg.max_line = 512;
    f->cfg.max_errors = 1000;
    f->cfg.max_commands = 100000;
    f->cfg.bare_policy = SK_BARE_REJECT;
    f->cfg.starttls_offered = 1;
    f->cfg.auth_offered = 1;
    f->ops.rcpt_check = fake_rcpt_check;
    f->ops.dest_free = fake_dest_free;
    f->ops.auth_check = fake_auth_check;
    f->ops.store_begin = fake_store_begin;
    f->ops.store_append = fake_store_append;
    f->ops.store_commit = fake_store_commit;
    f->ops.store_abort = fake_store_abort;
    f->ops.log = fake_log;
    f->ops.tls_available = fake_tls_available;
    f->tls_available = 1;
    f->peer.addr = "192.0.2.7";
    f->peer.rdns = "client.example.org";
    sk_buf_init(&f->raw, 0);
    sk_buf_init(&f->wire, 0);
    sk_buf_init(&f->msg, 0);
    sk_buf_init(&f->committed, 0);
    sk_buf_init(&f->bodies, 0);
    sk_buf_init(&f->log, 0);
}

static void fake_start(fake *f)
{
    f->s = sk_session_new(&f->cfg, &f->ops, f, &f->peer);
    if (!f->s)
        abort();
}

static void fake_finish(fake *f)
{
    if (f->s)
        sk_session_free(f->s);
    f->s = NULL;
    sk_buf_free(&f->raw);
    sk_buf_free(&f->wire);
    sk_buf_free(&f->msg);
    sk_buf_free(&f->committed);
    sk_buf_free(&f->bodies);
    sk_buf_free(&f->log);
}

/* Parse complete replies out of f->raw into f->replies. A malformed line
 * is a test failure: report it by a reply with code -1. */
static void fake_collect(fake *f)
{
    sk_buf *out = sk_session_output(f->s);
    if (out->len) {
        sk_buf_append(&f->raw, out->data, out->len);
        sk_buf_append(&f->wire, out->data, out->len);
        sk_buf_consume(out, out->len);
    }
    for (;;) {
        /* find the end of one reply: a line "ddd " */
        size_t pos = 0;
        int done = 0, bad = 0;
        fake_reply r;
        memset(&r, 0, sizeof r);
        while (!done) {
            const char *nl = f->raw.data ? memchr(f->raw.data + pos, '\n', f->raw.len - pos) : NULL;
            if (!nl)
                return; /* incomplete */
            size_t end = (size_t)(nl - f->raw.data);
            const char *line = f->raw.data + pos;
            size_t len = end - pos;
            int ok = len >= 4 && nl > f->raw.data && nl[-1] == '\r' && line[0] >= '1' &&
                     line[0] <= '5' && line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
                     line[2] <= '9' && (line[3] == ' ' || line[3] == '-');
            int code = ok ? (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0') : -1;
            if (r.nlines && code != r.code)
                ok = 0;
            if (!ok)
                bad = 1;
            r.code = code;
            /* text after "ddd-" minus CR */
            const char *t = line + 4;
            size_t tl = len >= 5 ? len - 5 : 0;
            char enh[16] = "";
            if (code >= 200 && code != 334 && code != 354 && tl >= 5 && t[1] == '.') {
                size_t k = 0;
                while (k < tl && k < 15 && t[k] != ' ')
                    k++;
                memcpy(enh, t, k);
                enh[k] = '\0';
                int cls = enh[0] - '0', sane = (cls == 2 || cls == 4 || cls == 5);
                for (size_t q = 1; q < k; q++)
                    if (!(enh[q] == '.' || (enh[q] >= '0' && enh[q] <= '9')))
                        sane = 0;
                if (sane) {
                    t += k;
                    tl -= k;
                    if (tl && *t == ' ')
                        t++, tl--;
                } else {
                    enh[0] = '\0';
                }
            }
            if (r.nlines && strcmp(enh, r.enhanced) != 0)
                bad = 1;
            /* RFC 2034: the enhanced class must match the reply class */
            if (enh[0] && enh[0] - '0' != code / 100)
                bad = 1;
            if (!r.nlines)
                memcpy(r.enhanced, enh, sizeof enh);
            size_t have = strlen(r.text);
            if (r.nlines && have + 1 < sizeof r.text)
                r.text[have++] = '\n';
            if (have + tl >= sizeof r.text)
                tl = sizeof r.text - have - 1;
            memcpy(r.text + have, t, tl);
            r.text[have + tl] = '\0';
            r.nlines++;
            pos = end + 1;
            if (!ok || line[3] == ' ')
                done = 1;
        }
        if (bad)
            r.code = -1;
        if (f->nreplies < FAKE_MAX_REPLIES)
            f->replies[f->nreplies++] = r;
        sk_buf_consume(&f->raw, pos);
    }
}

/* Feed like the shell does. Returns the bytes the session consumed. */
static size_t fake_feed(fake *f, const char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t used = sk_session_feed(f->s, p + done, n - done);
        done += used;
        fake_collect(f);
        unsigned w = sk_session_wants(f->s);
        if (w & SK_WANT_CLOSE)
            break;
        if (w & SK_WANT_TLS) {
            f->discarded_after_tls += n - done;
            done = n; /* CVE-2011-0411: discard the rest */
            f->tls_started++;
            sk_session_tls_started(f->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
            break;
        }
        if (w & SK_WANT_AUTH)
            break; /* the test calls sk_session_auth_done() */
        if (w & SK_WANT_COMMIT) {
            if (f->manual_commit)
                break;
            sk_session_commit_done(f->s, f->commit_result);
            fake_collect(f);
            continue;
        }
        if (used == 0)
            break; /* would loop: a session bug, the test sees missing replies */
    }
    fake_collect(f);
    return done;
}

static size_t fake_send(fake *f, const char *s)
{
    return fake_feed(f, s, strlen(s));
}

static size_t fake_sendf(fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t fake_sendf(fake *f, const char *fmt, ...)
{
    char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return fake_feed(f, buf, n < 0 ? 0 : (size_t)n);
}

static fake_reply *fake_pop(fake *f)
{
    static fake_reply none = {.code = 0};
    if (f->next >= f->nreplies)
        return &none;
    return &f->replies[f->next++];
}

static int fake_pending(const fake *f)
{
    return f->nreplies - f->next;
}

#endif
