/*
 * lmtp_kind.c - LMTP (RFC 2033) as a destination kind of the store: local
 * mailboxes handed to an LMTP server (Dovecot) during the commit, before
 * the sender hears the reply to its end of data.
 *
 * stage, after the spool file's fsync and after every other kind staged
 * (a copy an LMTP server took cannot be taken back, so it goes last): one
 * LMTP transaction over a pooled connection (lmtp_pool.c) for the distinct
 * mailbox addresses; each envelope recipient gets the replies of its
 * mailboxes (store_result.h). Every mailbox accepted: SK_STORE_OK. Any
 * temporary failure, or a server down, unreachable, timing out or answering
 * nonsense: SK_STORE_DEFERRED with the server's 4xx (or 451 4.3.0), and the
 * commit removes the other kinds' copies (all or nothing), so the sender
 * retries and nothing is lost. Only permanent failures: SK_STORE_REFUSED
 * with the server's 5xx. Mailboxes that accepted while another failed have
 * the message: a retry after a 4xx may deliver it to them twice (at least
 * once, never lost); see docs/STORE.md.
 */
#include "smtpkit/store.h"
#include "store/lmtp_pool.h"
#include "store/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int sk_store_lmtp_target_ok(const char *target, char *err, size_t errlen)
{
    char host[256], port[108];
    int is_unix;
    return sk_lmtp_target_parse(target, host, sizeof host, port, sizeof port, &is_unix, err,
                                errlen);
}

int sk_store_set_lmtp(sk_store *st, const char *target, unsigned max_conns, const char *lhlo,
                      char *err, size_t errlen)
{
    if (!st)
        return -1;
    sk_lmtp_pool *p = sk_lmtp_pool_new(target, max_conns, lhlo, err, errlen);
    if (!p)
        return -1;
    sk_lmtp_pool_free(st->lmtp);
    st->lmtp = p;
    return 0;
}

int sk_store_lmtp_stats(sk_store *st, unsigned long long *opened, unsigned *peak)
{
    if (!st || !st->lmtp)
        return -1;
    sk_lmtp_pool_stats(st->lmtp, opened, peak);
    return 0;
}

/* The reply a recipient outcome (or the message's) carries: the server's
 * when it is of the verdict's class, with an enhanced code of that class
 * (else X.0.0), else the store's own default (code 0). */
static void set_reply(int *code, char *enh, size_t enhcap, char *text, size_t textcap,
                      const sk_lmtp_rcpt *r, int cls)
{
    *code = 0;
    enh[0] = text[0] = '\0';
    if (!r || r->code / 100 != cls || (r->code / 10) % 10 > 5)
        return;
    *code = r->code;
    if (r->enhanced[0] == '0' + cls)
        snprintf(enh, enhcap, "%s", r->enhanced);
    else
        snprintf(enh, enhcap, "%d.0.0", cls);
    /* one line; the reply formatter masks control bytes */
    size_t k = 0;
    for (const char *s = r->text; *s && k + 1 < textcap; s++)
        text[k++] = (*s == '\r' || *s == '\n') ? ' ' : *s;
    text[k] = '\0';
}

static int worse(sk_cc_verdict a, sk_cc_verdict b)
{
    /* for one envelope recipient with several mailboxes: a temporary
     * failure wins (a retry may help), then a permanent one */
    static const int rank[] = {[SK_CC_OK] = 0, [SK_CC_PERM] = 1, [SK_CC_TEMP] = 2};
    return rank[a] > rank[b];
}

static sk_store_result lmtp_stage(sk_store_msg *m, const sk_store_envelope *env,
                                  const sk_store_dest *dests, size_t n, void **state)
{
    (void)state;
    sk_store *st = m->st;
    if (!st->lmtp) {
        sk_store_msg_note(m, "lmtp", NULL, NULL, 0);
        snprintf(m->why.detail, sizeof m->why.detail, "no LMTP server configured");
        return SK_STORE_IOERR;
    }
    /* the distinct mailbox addresses, in the order given; map[i] is dests[i]'s */
    sk_lmtp_rcpt *r = calloc(n, sizeof *r);
    size_t *map = calloc(n, sizeof *map);
    if (!r || !map) {
        free(r);
        free(map);
        return sk_store_msg_note(m, "memory", NULL, NULL, ENOMEM);
    }
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nr && strcmp(r[k].addr, dests[i].target) != 0)
            k++;
        if (k == nr)
            r[nr++].addr = dests[i].target;
        map[i] = k;
    }
    /* The spool file starts with our Return-Path line (RFC 5321 4.4): the
     * LMTP server is the final delivery and writes its own from MAIL FROM,
     * so the message goes without ours. */
    unsigned long long skip = 0;
    char head[1024];
    ssize_t got = pread(m->fd, head, sizeof head, 0);
    if (got > 12 && !strncasecmp(head, "Return-Path:", 12)) {
        const char *nl = memchr(head, '\n', (size_t)got);
        if (nl)
            skip = (unsigned long long)(nl - head) + 1;
    }
    sk_lmtp_msg lm = {
        .sender = env && env->sender ? env->sender : "",
        .fd = m->fd,
        .off = skip,
        .size = m->size,
        .wire = m->wire - (skip ? skip + 1 : 0), /* that line had a CRLF */
        .body_8bit = env && env->body != SK_STORE_BODY_7BIT,
        .smtputf8 = env && env->smtputf8,
    };
    char why[SK_STORE_ERROR_DETAIL_CAP];
    int errnum = 0;
    (void)sk_lmtp_deliver(st->lmtp, &lm, r, nr, why, sizeof why, &errnum);

    /* the message: OK only if every mailbox took it */
    const sk_lmtp_rcpt *first_temp = NULL, *first_perm = NULL;
    for (size_t k = 0; k < nr; k++) {
        if (r[k].verdict == SK_CC_TEMP && !first_temp)
            first_temp = &r[k];
        if (r[k].verdict == SK_CC_PERM && !first_perm)
            first_perm = &r[k];
    }
    sk_store_result res = first_temp   ? SK_STORE_DEFERRED
                          : first_perm ? SK_STORE_REFUSED
                                       : SK_STORE_OK;
    sk_store_rcpt_outcome *o = &m->reply;
    if (res != SK_STORE_OK) {
        const sk_lmtp_rcpt *w = first_temp ? first_temp : first_perm;
        set_reply(&o->code, o->enhanced, sizeof o->enhanced, o->text, sizeof o->text, w,
                  first_temp ? 4 : 5);
        o->result = res;
        /* the log's store-error line (step lmtp): the reply that decided,
         * or what went wrong when there is none */
        if (!m->why.step) {
            sk_store_msg_note(m, "lmtp", sk_lmtp_pool_target(st->lmtp), NULL, w->code ? 0 : errnum);
            if (w->code)
                snprintf(m->why.detail, sizeof m->why.detail, "<%s> %d%s%s %s", w->addr, w->code,
                         w->enhanced[0] ? " " : "", w->enhanced, w->text);
            else
                snprintf(m->why.detail, sizeof m->why.detail, "%s",
                         why[0] ? why : "no valid reply");
        }
    }
    /* each envelope recipient: the worst of its mailboxes */
    if (env && env->nrcpts && !m->rcpt_out) {
        m->rcpt_out = calloc(env->nrcpts, sizeof *m->rcpt_out);
        m->rcpt_set = calloc(env->nrcpts, 1);
        if (!m->rcpt_out || !m->rcpt_set) {
            free(m->rcpt_out);
            free(m->rcpt_set);
            m->rcpt_out = NULL;
            m->rcpt_set = NULL;
        }
    }
    if (m->rcpt_out) {
        m->nrcpt_out = env->nrcpts;
        sk_cc_verdict *v = calloc(env->nrcpts, sizeof *v);
        for (size_t i = 0; v && i < n; i++) {
            size_t e = dests[i].rcpt;
            const sk_lmtp_rcpt *x = &r[map[i]];
            sk_store_rcpt_outcome *ro = &m->rcpt_out[e];
            if (m->rcpt_set[e] && !worse(x->verdict, v[e]))
                continue;
            v[e] = x->verdict;
            m->rcpt_set[e] = 1;
            ro->result = x->verdict == SK_CC_OK     ? SK_STORE_OK
                         : x->verdict == SK_CC_TEMP ? SK_STORE_DEFERRED
                                                    : SK_STORE_REFUSED;
            int cls = x->verdict == SK_CC_OK ? 2 : x->verdict == SK_CC_TEMP ? 4 : 5;
            set_reply(&ro->code, ro->enhanced, sizeof ro->enhanced, ro->text, sizeof ro->text, x,
                      cls);
        }
        free(v);
    }
    free(r);
    free(map);
    return res;
}

/* Nothing to keep or take back: the LMTP server has the message or not. */
static void lmtp_finish(sk_store_msg *m, void *state, int keep)
{
    (void)m;
    (void)state;
    (void)keep;
}

const sk_store_kind sk_store_kind_lmtp = {
    .name = "lmtp",
    .stage = lmtp_stage,
    .finish = lmtp_finish,
};
