/*
 * audit_run.c - the runner of `smtpkit audit`: plays each check's dialogue
 * (src/client/audit_checks.c) on its own connection through the blocking
 * client and judges every reply against the codes the registry allows.
 *
 * Bounded: every wait has the per-step timeout, the whole run has a time
 * limit (each connection's timeout shrinks to what is left), and new
 * connections are spaced to at most `rate` per second. Nothing is delivered
 * unless --deliver-to is given: no other check sends DATA expecting 354,
 * and if a server answers 354 anyway the connection is dropped without the
 * end-of-data line, so the server must discard the transaction (RFC 5321
 * 4.1.1.4: only <CRLF>.<CRLF> completes the data).
 *
 * Besides each check's own verdict, every reply read in the run is recorded
 * for the global checks: reply grammar (RFC 5321 4.2), line length
 * (4.5.3.1.5), enhanced codes (RFC 2034 4) and codes listed for the command
 * (4.3.2).
 */
#include "client/client_int.h"

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smtpkit/audit.h"
#include "smtpkit/registry.h"

#define SEEN_MAX 4096
#define GRAMMAR_MAX 64
#define SHOWN_MAX 12 /* offending replies shown per global check */
#define TRANSCRIPT_MAX 400
#define LONG_ARG 1000

typedef struct seen_reply {
    size_t result; /* index of the check's result */
    char cmd[12];  /* the command it answers */
    int code;
    int has_enhanced;
    int other_class; /* the text starts with an enhanced code of this other class */
    int longest;     /* longest line in octets, CRLF included */
    int counted;     /* read by a COUNT step: the command it answers is a guess */
    char text[300];
    char sent[200]; /* the last line sent before it */
} seen_reply;

typedef struct grammar_error {
    size_t result;
    char msg[400];
    char sent[200];
} grammar_error;

typedef struct run_ctx {
    const sk_audit_opts *o;
    sk_audit_report *rep;
    double deadline, next_connect;
    size_t cur;
    sk_client *c;
    seen_reply *seen;
    size_t nseen;
    grammar_error gram[GRAMMAR_MAX];
    size_t ngram;
    int enhanced_offered;
    int in_data;  /* a 354 was read and the data not ended */
    int counting; /* inside a COUNT step */
    char last_sent[200];
} run_ctx;

/* ---- recording replies ------------------------------------------------ */

static void on_reply(const sk_reply *r, const char *cmd, void *arg)
{
    run_ctx *x = arg;
    if (r->code == 354)
        x->in_data = 1;
    if (!strcmp(cmd, "EHLO") && r->code == 250)
        for (size_t i = 1; i < r->nlines; i++)
            if (!strncasecmp(r->lines[i], "ENHANCEDSTATUSCODES", 19) &&
                (r->lines[i][19] == '\0' || r->lines[i][19] == ' '))
                x->enhanced_offered = 1;
    if (x->nseen >= SEEN_MAX)
        return;
    seen_reply *s = &x->seen[x->nseen++];
    memset(s, 0, sizeof *s);
    s->result = x->cur;
    snprintf(s->cmd, sizeof s->cmd, "%s", cmd);
    s->code = r->code;
    s->has_enhanced = r->has_enhanced;
    s->counted = x->counting;
    if (!r->has_enhanced && r->nlines) {
        const char *t = r->lines[0];
        size_t w = strcspn(t, " ");
        sk_enhanced en;
        if (sk_enhanced_parse(t, w, &en) == 0)
            s->other_class = en.cls;
    }
    char en[16] = "";
    if (r->has_enhanced)
        snprintf(en, sizeof en, "%d.%d.%d ", r->enhanced.cls, r->enhanced.subject,
                 r->enhanced.detail);
    for (size_t i = 0; i < r->nlines; i++) {
        size_t l = 4 + strlen(en) + strlen(r->lines[i]) + 2;
        if ((int)l > s->longest)
            s->longest = (int)l;
    }
    sk_reply_oneline(r, s->text, sizeof s->text);
    snprintf(s->sent, sizeof s->sent, "%s", x->last_sent);
}

/* ---- helpers ------------------------------------------------------------ */

static double remaining(const run_ctx *x)
{
    return x->deadline - sk_monotonic();
}

static void set_reason(sk_audit_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(sk_audit_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
}

/* Fill the placeholders of `in`. -1 with *why set when one cannot be. */
static int expand(run_ctx *x, const char *in, char *out, size_t outlen, const char **why)
{
    size_t used = 0;
    const sk_audit_opts *o = x->o;
    for (const char *p = in; *p;) {
        const char *val = NULL;
        char num[32];
        size_t skip = 0;
        static char longarg[LONG_ARG + 1];
        if (*p == '{') {
            const char *e = strchr(p, '}');
            size_t n = e ? (size_t)(e - p) + 1 : 0;
            if (n == 6 && !strncmp(p, "{helo}", 6))
                val = o->helo;
            else if (n == 6 && !strncmp(p, "{from}", 6))
                val = o->from;
            else if (n == 6 && !strncmp(p, "{rcpt}", 6))
                val = o->rcpt;
            else if (n == 7 && !strncmp(p, "{relay}", 7))
                val = o->relay;
            else if (n == 9 && !strncmp(p, "{deliver}", 9)) {
                val = o->deliver_to;
                if (!val) {
                    *why = "only with --deliver-to";
                    return -1;
                }
            } else if (n == 8 && !strncmp(p, "{size+1}", 8)) {
                const sk_caps *caps = sk_client_caps(x->c);
                if (!caps->has_size || caps->size == 0) {
                    *why = "the server declares no fixed SIZE limit";
                    return -1;
                }
                snprintf(num, sizeof num, "%llu", caps->size + 1);
                val = num;
            } else if (n == 6 && !strncmp(p, "{long}", 6)) {
                memset(longarg, 'x', LONG_ARG);
                longarg[LONG_ARG] = '\0';
                val = longarg;
            }
            skip = n;
        }
        if (val) {
            size_t l = strlen(val);
            if (used + l + 1 > outlen)
                return -1;
            memcpy(out + used, val, l);
            used += l;
            p += skip;
        } else {
            if (used + 2 > outlen)
                return -1;
            out[used++] = *p++;
        }
    }
    out[used] = '\0';
    return 0;
}

/* The verb of a command line, upper-cased, for the reply's context. */
static void verb_of(const char *line, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        char ch = line[i];
        if (ch == ' ' || ch == '\r' || ch == '\n' || ch == ':')
            break;
        out[k++] = (char)toupper((unsigned char)ch);
    }
    out[k] = '\0';
    if (!strcmp(out, "."))
        snprintf(out, outlen, "DATA-END");
}

/* Record bytes sent in the transcript, one entry per CRLF-ended segment,
 * bare CR and LF shown as <CR> and <LF>. Queue the replies expected: one
 * per segment (`label` NULL: the verb of each), or just `label` once. */
static void record_sent(run_ctx *x, const char *p, size_t n, const char *label, int data)
{
    sk_transcript *tr = sk_client_transcript(x->c);
    char shown[1200];
    size_t i = 0;
    int first = 1;
    while (i < n) {
        size_t s = i, k = 0;
        while (i < n && !(p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')) {
            const char *esc = p[i] == '\r' ? "<CR>" : p[i] == '\n' ? "<LF>" : NULL;
            if (esc) {
                size_t el = strlen(esc);
                if (k + el < sizeof shown - 4) {
                    memcpy(shown + k, esc, el);
                    k += el;
                }
            } else if (k < sizeof shown - 4) {
                shown[k++] = p[i];
            }
            i++;
        }
        size_t seg = i - s;
        if (i < n)
            i += 2;
        if (k > 200 && data) {
            int w = snprintf(shown + 200, sizeof shown - 200, "... (%zu octets)", seg);
            k = 200 + (w > 0 ? (size_t)w : 0);
        }
        if (k >= sizeof shown)
            k = sizeof shown - 1;
        sk_transcript_add(tr, SK_DIR_CLIENT, shown, k);
        if (!data) {
            char v[12];
            verb_of(p + s, seg, v, sizeof v);
            sk_client_expect(x->c, label ? label : v);
            /* a batch shows whole: "NOOP<LF>NOOP / QUIT" */
            size_t used = first ? 0 : strlen(x->last_sent);
            if (used + 4 < sizeof x->last_sent)
                snprintf(x->last_sent + used, sizeof x->last_sent - used, "%s%.*s",
                         first ? "" : " / ", (int)(k < 190 ? k : 190), shown);
            first = 0;
        }
    }
    if (data && label)
        sk_client_expect(x->c, label);
}

static int send_bytes(run_ctx *x, const char *p, size_t n, const char *label, int data)
{
    record_sent(x, p, n, label, data);
    return sk_client_send_raw(x->c, p, n, 0);
}

static int send_line(run_ctx *x, const char *line, const char *label)
{
    char buf[2100];
    int w = snprintf(buf, sizeof buf, "%s\r\n", line);
    if (w < 0 || (size_t)w >= sizeof buf)
        return -1;
    sk_transcript_add(sk_client_transcript(x->c), SK_DIR_CLIENT, line, strlen(line));
    char v[12];
    verb_of(line, strlen(line), v, sizeof v);
    sk_client_expect(x->c, label ? label : v);
    snprintf(x->last_sent, sizeof x->last_sent, "%.190s", line);
    return sk_client_send_raw(x->c, buf, (size_t)w, 0);
}

/* Read one reply; on a malformed one record the grammar error. */
static int read_reply(run_ctx *x, sk_reply *r)
{
    if (sk_client_read_reply(x->c, r) == 0)
        return 0;
    if (sk_client_error(x->c) == SK_CLIENT_ERR_PROTOCOL && x->ngram < GRAMMAR_MAX) {
        grammar_error *g = &x->gram[x->ngram++];
        g->result = x->cur;
        snprintf(g->msg, sizeof g->msg, "%s", sk_client_errmsg(x->c));
        snprintf(g->sent, sizeof g->sent, "%s", x->last_sent);
    }
    return -1;
}

static const char *step_label(const sk_audit_step *st, const char *line, char *v, size_t vn)
{
    if (st->cmd)
        return st->cmd;
    verb_of(line, strlen(line), v, vn);
    return v;
}

/* Does the current EHLO capability list offer `what` ("KEYWORD" or
 * "KEYWORD PARAM")? */
static int offers(const sk_caps *caps, const char *what)
{
    char kw[32];
    size_t kl = strcspn(what, " ");
    snprintf(kw, sizeof kw, "%.*s", (int)kl, what);
    const char *param = what[kl] ? what + kl + 1 : NULL;
    for (size_t i = 0; i < caps->ncaps; i++) {
        if (strcasecmp(caps->caps[i].keyword, kw))
            continue;
        if (!param)
            return 1;
        const char *s = caps->caps[i].params;
        size_t pl = strlen(param);
        while (*s) {
            size_t n = strcspn(s, " =");
            if (n == pl && !strncasecmp(s, param, pl))
                return 1;
            s += n;
            while (*s == ' ' || *s == '=')
                s++;
        }
    }
    return 0;
}

/* Judge a reply against a step. 0 fine, -1 failed (reason set), -2 the
 * server wants AUTH (or TLS) first: the check cannot be judged here. */
static int judge(run_ctx *x, const sk_audit_step *st, const char *label, const sk_reply *r,
                 sk_audit_result *res)
{
    char one[400];
    sk_reply_oneline(r, one, sizeof one);
    if (r->code == 530 && !sk_audit_allows(st->allow, label, r->code)) {
        set_reason(res, "%s: the server requires authentication or TLS first (\"%s\")",
                   x->last_sent, one);
        return -2;
    }
    if (!sk_audit_allows(st->allow, label, r->code)) {
        sk_audit_allowed_text(st->allow, label, res->allowed, sizeof res->allowed);
        set_reason(res, "%s: the server answered \"%s\"; allowed: %s", x->last_sent, one,
                   res->allowed[0] ? res->allowed : "(none)");
        return -1;
    }
    if (st->lines_max && r->nlines > (size_t)st->lines_max) {
        snprintf(res->allowed, sizeof res->allowed, "a reply of at most %d line%s", st->lines_max,
                 st->lines_max == 1 ? "" : "s");
        set_reason(res, "%s: the server answered with %zu lines (\"%s\")", x->last_sent, r->nlines,
                   one);
        return -1;
    }
    return 0;
}

/* ---- one check ---------------------------------------------------------- */

typedef enum { GO_ON, STOP_PASS, STOP_FAIL, STOP_SKIP } flow;

static flow client_trouble(run_ctx *x, sk_audit_result *res, const char *what)
{
    set_reason(res, "%s: %s", what, sk_client_errmsg(x->c));
    return STOP_FAIL;
}

/* Greeting, EHLO, TLS, login, MAIL as the check needs. */
static flow prelude(run_ctx *x, const sk_audit_check *ck, sk_audit_result *res)
{
    const sk_audit_opts *o = x->o;
    sk_reply r;
    if (o->tls == SK_AUDIT_TLS_IMPLICIT && sk_client_tls_handshake(x->c) < 0) {
        set_reason(res, "TLS handshake failed: %s", sk_client_errmsg(x->c));
        return STOP_SKIP;
    }
    if (ck->needs & SK_AUDIT_NO_GREETING)
        return GO_ON;
    if (read_reply(x, &r) < 0) {
        set_reason(res, "no greeting: %s", sk_client_errmsg(x->c));
        return STOP_SKIP;
    }
    int code = r.code;
    sk_reply_free(&r);
    if (code != 220) {
        set_reason(res, "the greeting was %d, not 220", code);
        return STOP_SKIP;
    }
    int want_tls = (ck->needs & SK_AUDIT_NEED_TLS) || o->tls == SK_AUDIT_TLS_STARTTLS;
    if (ck->needs & SK_AUDIT_NEED_PLAIN)
        want_tls = 0;
    int want_ehlo = (ck->needs & (SK_AUDIT_NEED_EHLO | SK_AUDIT_NEED_MAIL | SK_AUDIT_NEED_AUTH)) ||
                    want_tls || ck->cap;
    if (!want_ehlo)
        return GO_ON;
    for (int round = 0; round < 2; round++) {
        char line[300];
        snprintf(line, sizeof line, "EHLO %s", o->helo);
        if (send_line(x, line, "EHLO") < 0 || read_reply(x, &r) < 0) {
            set_reason(res, "EHLO failed: %s", sk_client_errmsg(x->c));
            return STOP_SKIP;
        }
        code = r.code;
        if (code == 250)
            sk_caps_parse_reply(&x->c->caps, &r);
        sk_reply_free(&r);
        if (code != 250) {
            set_reason(res, "EHLO was answered with %d", code);
            return STOP_SKIP;
        }
        if (round == 1 || !want_tls || sk_client_is_tls(x->c))
            break;
        if (!x->c->caps.starttls) {
            set_reason(res, "needs TLS, and the server does not offer STARTTLS");
            return STOP_SKIP;
        }
        if (send_line(x, "STARTTLS", "STARTTLS") < 0 || read_reply(x, &r) < 0) {
            set_reason(res, "STARTTLS failed: %s", sk_client_errmsg(x->c));
            return STOP_SKIP;
        }
        code = r.code;
        sk_reply_free(&r);
        if (code != 220) {
            set_reason(res, "STARTTLS was answered with %d", code);
            return STOP_SKIP;
        }
        sk_buf_clear(&x->c->rbuf);
        if (sk_client_tls_start(x->c) < 0) {
            set_reason(res, "TLS handshake failed: %s", sk_client_errmsg(x->c));
            return STOP_SKIP;
        }
        sk_caps_clear(&x->c->caps);
    }
    if (ck->cap && !offers(&x->c->caps, ck->cap)) {
        set_reason(res, "the server does not offer %s%s", ck->cap,
                   sk_client_is_tls(x->c) ? " (after TLS)" : "");
        return STOP_SKIP;
    }
    if (ck->needs & SK_AUDIT_NEED_AUTH) {
        if (!o->auth_user) {
            set_reason(res, "only with --auth");
            return STOP_SKIP;
        }
        if (sk_client_auth(x->c, o->auth_user, o->auth_pass ? o->auth_pass : "", &r) < 0) {
            set_reason(res, "logging in failed: %s", sk_client_errmsg(x->c));
            sk_reply_free(&r);
            return STOP_SKIP;
        }
        sk_reply_free(&r);
    }
    if (ck->needs & SK_AUDIT_NEED_MAIL) {
        char line[600];
        snprintf(line, sizeof line, "MAIL FROM:<%s>", o->from);
        if (send_line(x, line, "MAIL") < 0 || read_reply(x, &r) < 0)
            return client_trouble(x, res, "MAIL FROM");
        code = r.code;
        sk_reply_free(&r);
        if (code != 250) {
            set_reason(res, "the server refused MAIL FROM:<%s> with %d", o->from, code);
            return STOP_SKIP;
        }
    }
    if (ck->needs & SK_AUDIT_NEED_RCPT) {
        char line[600];
        snprintf(line, sizeof line, "RCPT TO:<%s>", o->rcpt);
        if (send_line(x, line, "RCPT") < 0 || read_reply(x, &r) < 0)
            return client_trouble(x, res, "RCPT TO");
        code = r.code;
        sk_reply_free(&r);
        if (code / 100 != 2) {
            set_reason(res, "the server refused RCPT TO:<%s> with %d", o->rcpt, code);
            return STOP_SKIP;
        }
    }
    return GO_ON;
}

/* Read replies until QUIT's 221, the server closes, or it is silent. */
static flow step_count(run_ctx *x, const sk_audit_step *st, sk_audit_result *res)
{
    int n = 0, last = 0;
    x->counting = 1;
    for (int i = 0; i < st->count + 4; i++) {
        sk_reply r;
        if (read_reply(x, &r) < 0)
            break;
        n++;
        last = r.code;
        sk_reply_free(&r);
        if (last == 221)
            break;
    }
    x->counting = 0;
    if (last == 221)
        sk_client_close(x->c); /* the session is over: no second QUIT */
    if (sk_client_error(x->c) == SK_CLIENT_ERR_PROTOCOL) {
        set_reason(res, "reply %d could not be read (judged by reply-grammar): %s", n + 1,
                   sk_client_errmsg(x->c));
        return STOP_SKIP;
    }
    if (n == st->count)
        return GO_ON;
    if (n < st->count && n > 0 && (last == 421 || last == 521))
        return GO_ON; /* the server closed the session with a reply: allowed */
    snprintf(res->allowed, sizeof res->allowed, "exactly %d repl%s", st->count,
             st->count == 1 ? "y" : "ies");
    if (n > st->count)
        set_reason(res,
                   "%d replies where %d were due: the server split a line (or the data) "
                   "where only <CRLF> (or <CRLF>.<CRLF>) may end it",
                   n, st->count);
    else
        set_reason(res, "%d replies where %d were due%s%s", n, st->count,
                   sk_client_errmsg(x->c)[0] ? ": " : "", sk_client_errmsg(x->c));
    return STOP_FAIL;
}

static flow step_bigdata(run_ctx *x, const sk_audit_step *st, sk_audit_result *res)
{
    const sk_caps *caps = sk_client_caps(x->c);
    if (!caps->has_size || caps->size == 0) {
        set_reason(res, "the server declares no fixed SIZE limit");
        return STOP_SKIP;
    }
    unsigned long long total = caps->size + (unsigned long long)st->count * 1024ULL;
    if (total > x->o->max_stream) {
        set_reason(res, "SIZE %llu plus %d KiB is more than --max-stream (%llu octets)", caps->size,
                   st->count, x->o->max_stream);
        return STOP_SKIP;
    }
    static const char head[] = "Subject: smtpkit audit size-enforced\r\n\r\n";
    char line[1000];
    memset(line, 'x', 998);
    line[998] = '\r';
    line[999] = '\n';
    sk_transcript *tr = sk_client_transcript(x->c);
    sk_transcript_addf(tr, SK_DIR_INFO, "sending %llu octets of message data (SIZE is %llu)", total,
                       caps->size);
    int failed = sk_client_send_raw(x->c, head, sizeof head - 1, 0) < 0;
    unsigned long long sent = sizeof head - 1;
    while (!failed && sent < total) {
        if (remaining(x) < 1.0)
            break;
        failed = sk_client_send_raw(x->c, line, sizeof line, 0) < 0;
        sent += sizeof line;
    }
    if (!failed)
        failed = sk_client_send_raw(x->c, ".\r\n", 3, 0) < 0;
    sk_transcript_addf(tr, SK_DIR_CLIENT, "(%llu octets of data)", sent);
    sk_transcript_add(tr, SK_DIR_CLIENT, ".", 1);
    sk_client_expect(x->c, "DATA-END");
    snprintf(x->last_sent, sizeof x->last_sent, "(%llu octets of data) .", sent);
    x->in_data = 0;
    if (failed) {
        sk_transcript_addf(tr, SK_DIR_INFO, "sending stopped: %s", sk_client_errmsg(x->c));
        sk_client_clear_error(x->c);
    }
    (void)res;
    return GO_ON;
}

static flow run_step(run_ctx *x, const sk_audit_step *st, sk_audit_result *res, int *last_code)
{
    char text[2100];
    const char *why = NULL;
    char v[12];
    sk_reply r;
    if (st->text && expand(x, st->text, text, sizeof text, &why) < 0) {
        set_reason(res, "%s", why ? why : "step too long");
        return STOP_SKIP;
    }
    switch (st->op) {
    case SK_AOP_END:
        return STOP_PASS;
    case SK_AOP_CMD:
    case SK_AOP_SETUP:
    case SK_AOP_EHLO: {
        const char *label = step_label(st, text, v, sizeof v);
        if (send_line(x, text, label) < 0 || read_reply(x, &r) < 0)
            return client_trouble(x, res, x->last_sent);
        *last_code = r.code;
        flow f = GO_ON;
        int j = judge(x, st, label, &r, res);
        if (j < 0) {
            f = st->op == SK_AOP_SETUP || j == -2 ? STOP_SKIP : STOP_FAIL;
            if (f == STOP_SKIP)
                res->allowed[0] = '\0';
        } else if (st->op == SK_AOP_EHLO && r.code == 250) {
            sk_caps_parse_reply(&x->c->caps, &r);
            for (size_t i = 1; i < r.nlines && f == GO_ON; i++) {
                sk_caps scratch;
                sk_caps_clear(&scratch);
                if (sk_caps_parse_line(&scratch, r.lines[i], strlen(r.lines[i])) < 0) {
                    snprintf(res->allowed, sizeof res->allowed,
                             "ehlo-keyword *(SP ehlo-param) on every line after the first");
                    set_reason(res, "EHLO reply line %zu \"%.200s\" is not a valid ehlo-line",
                               i + 1, r.lines[i]);
                    f = STOP_FAIL;
                }
            }
            if (f == GO_ON && st->absent && offers(&x->c->caps, st->absent)) {
                snprintf(res->allowed, sizeof res->allowed, "an EHLO reply without %s", st->absent);
                set_reason(res, "the EHLO reply offers %s%s", st->absent,
                           sk_client_is_tls(x->c) ? " after TLS" : " on a plaintext connection");
                f = STOP_FAIL;
            }
        }
        sk_reply_free(&r);
        return f;
    }
    case SK_AOP_SEND:
        if (send_bytes(x, text, strlen(text), NULL, 0) < 0)
            return client_trouble(x, res, "sending");
        return GO_ON;
    case SK_AOP_DATA: {
        const char *label = !st->cmd ? "DATA-END" : strcmp(st->cmd, "-") ? st->cmd : NULL;
        if (label)
            x->in_data = 0;
        if (send_bytes(x, text, strlen(text), label, 1) < 0)
            return client_trouble(x, res, "sending the data");
        return GO_ON;
    }
    case SK_AOP_REPLY: {
        if (read_reply(x, &r) < 0)
            return client_trouble(x, res, st->cmd);
        *last_code = r.code;
        int j = judge(x, st, st->cmd, &r, res);
        flow f = j == -2 ? STOP_SKIP : j < 0 ? STOP_FAIL : GO_ON;
        sk_reply_free(&r);
        return f;
    }
    case SK_AOP_COUNT:
        return step_count(x, st, res);
    case SK_AOP_TLS:
        if (*last_code != 220)
            return STOP_PASS; /* STARTTLS refused where the check allows it */
        if (x->c->rbuf.len) {
            sk_transcript_addf(sk_client_transcript(x->c), SK_DIR_INFO,
                               "discarding %zu octets sent in the clear after 220", x->c->rbuf.len);
            sk_buf_clear(&x->c->rbuf);
        }
        x->c->pend_n = 0;
        if (sk_client_tls_start(x->c) < 0) {
            set_reason(res, "TLS handshake failed: %s", sk_client_errmsg(x->c));
            return STOP_SKIP;
        }
        sk_caps_clear(&x->c->caps);
        return GO_ON;
    case SK_AOP_CLOSED: {
        int to = x->c->o.timeout_ms;
        if (x->c->o.timeout_ms > 5000)
            x->c->o.timeout_ms = 5000;
        int rc = read_reply(x, &r);
        x->c->o.timeout_ms = to;
        if (rc == 0) {
            char one[300];
            sk_reply_oneline(&r, one, sizeof one);
            sk_reply_free(&r);
            snprintf(res->allowed, sizeof res->allowed, "the connection closed after 221");
            set_reason(res, "after 221 the server sent \"%s\"", one);
            return STOP_FAIL;
        }
        if (sk_client_error(x->c) == SK_CLIENT_ERR_TIMEOUT) {
            snprintf(res->allowed, sizeof res->allowed, "the connection closed after 221");
            set_reason(res, "the server kept the connection open after 221");
            return STOP_FAIL;
        }
        sk_client_close(x->c);
        return GO_ON;
    }
    case SK_AOP_BIGDATA:
        return step_bigdata(x, st, res);
    }
    return STOP_FAIL;
}

static void copy_transcript(run_ctx *x, sk_audit_result *res)
{
    const sk_transcript *tr = sk_client_transcript(x->c);
    res->dialogue = calloc(tr->n ? tr->n : 1, sizeof *res->dialogue);
    if (!res->dialogue)
        return;
    for (size_t i = 0; i < tr->n; i++) {
        res->dialogue[res->ndialogue].dir = (char)tr->v[i].dir;
        res->dialogue[res->ndialogue].text = strdup(tr->v[i].line);
        if (res->dialogue[res->ndialogue].text)
            res->ndialogue++;
    }
}

/* Space connections to at most `rate` per second, within the deadline. */
static void pace(run_ctx *x)
{
    double now = sk_monotonic();
    if (x->next_connect > now) {
        double wait = x->next_connect - now;
        if (wait > remaining(x))
            wait = remaining(x);
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        now = sk_monotonic();
    }
    x->next_connect = now + 1.0 / x->o->rate;
}

static sk_client *new_client(run_ctx *x)
{
    sk_client_opts co;
    memset(&co, 0, sizeof co);
    double left = remaining(x) * 1000.0;
    co.timeout_ms = x->o->timeout_ms;
    if (left < co.timeout_ms)
        co.timeout_ms = left > 1 ? (int)left : 1;
    co.insecure = 1; /* certificate problems are not protocol problems: shown, not fatal */
    co.cafile = x->o->cafile;
    co.tls_name = x->o->tls_name;
    co.transcript_max = TRANSCRIPT_MAX;
    co.on_reply = on_reply;
    co.on_reply_arg = x;
    return sk_client_new(&co);
}

static void run_check(run_ctx *x, const sk_audit_check *ck, sk_audit_result *res)
{
    const sk_audit_opts *o = x->o;
    res->check = ck;
    res->outcome = SK_AUDIT_SKIP;
    if ((ck->needs & SK_AUDIT_NEED_DELIVER) && !o->deliver_to) {
        set_reason(res, "delivers a message: only with --deliver-to");
        return;
    }
    if ((ck->needs & SK_AUDIT_NEED_AUTH) && !o->auth_user) {
        set_reason(res, "needs a login: only with --auth");
        return;
    }
    if ((ck->needs & SK_AUDIT_NEED_PLAIN) && o->tls != SK_AUDIT_TLS_NONE) {
        set_reason(res, "only on a plaintext connection (not with --tls or --starttls)");
        return;
    }
    pace(x);
    if (remaining(x) < 0.5) {
        x->rep->time_limit_hit = 1;
        set_reason(res, "the run's time limit was reached");
        return;
    }
    x->c = new_client(x);
    if (!x->c) {
        set_reason(res, "out of memory");
        return;
    }
    x->in_data = 0;
    x->last_sent[0] = '\0';
    flow f;
    if (sk_client_connect(x->c, o->host, o->port) < 0) {
        set_reason(res, "could not connect: %s", sk_client_errmsg(x->c));
        f = STOP_SKIP;
    } else {
        f = prelude(x, ck, res);
    }
    int last_code = 0;
    for (size_t i = 0; f == GO_ON && i < SK_AUDIT_STEPS_MAX; i++) {
        if (x->in_data && ck->steps[i].op != SK_AOP_DATA && ck->steps[i].op != SK_AOP_BIGDATA) {
            /* 354 where no data is meant: the check has failed already
             * (354 is not among its replies); stop before anything else. */
            break;
        }
        f = run_step(x, &ck->steps[i], res, &last_code);
    }
    if (f == GO_ON || f == STOP_PASS) {
        res->outcome = SK_AUDIT_PASS;
        res->reason[0] = '\0';
        res->allowed[0] = '\0';
    } else {
        res->outcome = f == STOP_SKIP ? SK_AUDIT_SKIP : SK_AUDIT_FAIL;
    }
    if (x->in_data) {
        /* Never end data we did not mean to send: drop the connection, so
         * the server discards the transaction. */
        sk_transcript_addf(sk_client_transcript(x->c), SK_DIR_INFO,
                           "closing without ending the data: nothing is delivered");
        sk_client_close(x->c);
    } else {
        snprintf(x->last_sent, sizeof x->last_sent, "QUIT");
        sk_client_quit(x->c);
    }
    copy_transcript(x, res);
    sk_client_free(x->c);
    x->c = NULL;
}

/* ---- global checks ------------------------------------------------------ */

static int shown_add(sk_audit_result *res, size_t *cap, char dir, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int shown_add(sk_audit_result *res, size_t *cap, char dir, const char *fmt, ...)
{
    if (res->ndialogue == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        sk_audit_line *nv = realloc(res->dialogue, nc * sizeof *nv);
        if (!nv)
            return -1;
        res->dialogue = nv;
        *cap = nc;
    }
    char buf[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    res->dialogue[res->ndialogue].dir = dir;
    res->dialogue[res->ndialogue].text = strdup(buf);
    if (!res->dialogue[res->ndialogue].text)
        return -1;
    res->ndialogue++;
    return 0;
}

static const char *result_name(const run_ctx *x, size_t i)
{
    if (i >= x->rep->nresults || !x->rep->results[i].check)
        return "(the first connection, for the capabilities)";
    return x->rep->results[i].check->name;
}

static void show_seen(run_ctx *x, sk_audit_result *res, size_t *cap, const seen_reply *s,
                      const char *why)
{
    shown_add(res, cap, '*', "in check %s: %s", result_name(x, s->result), why);
    if (s->sent[0])
        shown_add(res, cap, 'C', "%s", s->sent);
    shown_add(res, cap, 'S', "%s", s->text);
}

static void run_global(run_ctx *x, const sk_audit_check *ck, sk_audit_result *res)
{
    size_t cap = 0, bad = 0;
    char why[300];
    res->check = ck;
    res->outcome = SK_AUDIT_PASS;
    if (ck->global == SK_AUDIT_G_ENHANCED && !x->enhanced_offered) {
        res->outcome = SK_AUDIT_SKIP;
        set_reason(res, "the server does not offer ENHANCEDSTATUSCODES");
        return;
    }
    if (ck->global == SK_AUDIT_G_GRAMMAR) {
        for (size_t i = 0; i < x->ngram; i++) {
            if (bad++ < SHOWN_MAX) {
                shown_add(res, &cap, '*', "in check %s: %s", result_name(x, x->gram[i].result),
                          x->gram[i].msg);
                if (x->gram[i].sent[0])
                    shown_add(res, &cap, 'C', "%s", x->gram[i].sent);
            }
        }
    }
    for (size_t i = 0; i < x->nseen; i++) {
        const seen_reply *s = &x->seen[i];
        int cls = s->code / 100;
        why[0] = '\0';
        switch (ck->global) {
        case SK_AUDIT_G_GRAMMAR:
            if (!sk_code_is_valid(s->code))
                snprintf(why, sizeof why,
                         "code %d is outside the reply-code grammar (first digit 2-5, second "
                         "0-5)",
                         s->code);
            break;
        case SK_AUDIT_G_LINELEN:
            if (s->longest > 512)
                snprintf(why, sizeof why, "a reply line of %d octets", s->longest);
            break;
        case SK_AUDIT_G_ENHANCED:
            if ((cls == 2 || cls == 4 || cls == 5) && !s->has_enhanced &&
                strcmp(s->cmd, "CONNECT") && strcmp(s->cmd, "EHLO") && strcmp(s->cmd, "HELO")) {
                if (s->other_class)
                    snprintf(why, sizeof why,
                             "reply to %s has enhanced class %d, not %d like its code", s->cmd,
                             s->other_class, cls);
                else
                    snprintf(why, sizeof why, "reply to %s has no enhanced status code", s->cmd);
            }
            break;
        case SK_AUDIT_G_KNOWN:
            if (!s->counted && !sk_registry_allows(s->code, s->cmd)) {
                char allowed[200];
                sk_audit_allowed_text(NULL, s->cmd, allowed, sizeof allowed);
                snprintf(why, sizeof why, "%d is not a reply to %s (listed: %.200s)", s->code,
                         s->cmd, allowed[0] ? allowed : "none");
            }
            break;
        case SK_AUDIT_G_NONE:
            break;
        }
        if (why[0] && bad++ < SHOWN_MAX)
            show_seen(x, res, &cap, s, why);
    }
    if (bad) {
        res->outcome = SK_AUDIT_FAIL;
        set_reason(res, "%zu repl%s broke the rule%s", bad, bad == 1 ? "y" : "ies",
                   bad > SHOWN_MAX ? " (the first ones are shown)" : "");
        if (ck->global == SK_AUDIT_G_ENHANCED)
            snprintf(res->allowed, sizeof res->allowed,
                     "an enhanced code of the reply's class on every 2xx/4xx/5xx reply but the "
                     "greeting and HELO/EHLO");
        else if (ck->global == SK_AUDIT_G_LINELEN)
            snprintf(res->allowed, sizeof res->allowed, "reply lines of at most 512 octets");
        else if (ck->global == SK_AUDIT_G_KNOWN)
            snprintf(res->allowed, sizeof res->allowed,
                     "the codes the reply registry lists for each command");
        else
            snprintf(res->allowed, sizeof res->allowed,
                     "ddd[-| ]text<CRLF> lines, one code per reply, first digit 2-5, second 0-5");
    }
}

/* ---- the baseline connection and the run ------------------------------ */

static int selected(const char *only, const char *name)
{
    if (!only)
        return 1;
    size_t nl = strlen(name);
    const char *p = only;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == nl && !strncmp(p, name, nl))
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int check_only(const char *only, char *err, size_t errlen)
{
    if (!only)
        return 0;
    const char *p = only;
    while (*p) {
        size_t n = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), p);
        if (!sk_audit_check_find(name)) {
            snprintf(err, errlen, "unknown check '%s' in --only", name);
            return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* One connection before the checks: can we talk to the server at all, and
 * what does it offer? Fills greeting, caps, could_not_run. */
static void baseline(run_ctx *x)
{
    sk_audit_report *rep = x->rep;
    const sk_audit_opts *o = x->o;
    x->cur = (size_t)-1;
    pace(x);
    x->c = new_client(x);
    if (!x->c) {
        rep->could_not_run = 3;
        snprintf(rep->error, sizeof rep->error, "out of memory");
        return;
    }
    sk_reply r;
    if (sk_client_connect(x->c, o->host, o->port) < 0) {
        rep->could_not_run = 3;
        snprintf(rep->error, sizeof rep->error, "%s", sk_client_errmsg(x->c));
        goto done;
    }
    snprintf(rep->peer, sizeof rep->peer, "%s", sk_client_peer(x->c));
    if (o->tls == SK_AUDIT_TLS_IMPLICIT && sk_client_tls_handshake(x->c) < 0) {
        rep->could_not_run = 4;
        snprintf(rep->error, sizeof rep->error, "%s", sk_client_errmsg(x->c));
        goto done;
    }
    if (read_reply(x, &r) < 0) {
        rep->could_not_run = 3;
        snprintf(rep->error, sizeof rep->error, "%s", sk_client_errmsg(x->c));
        goto done;
    }
    sk_reply_oneline(&r, rep->greeting, sizeof rep->greeting);
    int code = r.code;
    sk_reply_free(&r);
    if (code != 220) {
        rep->could_not_run = 3;
        snprintf(rep->error, sizeof rep->error, "the server does not offer service: %.500s",
                 rep->greeting);
        goto done;
    }
    for (int round = 0; round < 2; round++) {
        char line[300];
        snprintf(line, sizeof line, "EHLO %s", o->helo);
        if (send_line(x, line, "EHLO") < 0 || read_reply(x, &r) < 0)
            break;
        if (r.code == 250) {
            sk_caps_parse_reply(&x->c->caps, &r);
            size_t used = strlen(rep->caps);
            for (size_t i = 0; i < x->c->caps.ncaps && used + 1 < sizeof rep->caps; i++) {
                const sk_cap *cp = &x->c->caps.caps[i];
                int w = snprintf(rep->caps + used, sizeof rep->caps - used, "%s%s%s%s%s",
                                 used ? "\n" : "", round ? "(TLS) " : "", cp->keyword,
                                 cp->params[0] ? " " : "", cp->params);
                if (w < 0)
                    break;
                used += (size_t)w;
                if (used >= sizeof rep->caps)
                    used = sizeof rep->caps - 1;
            }
        }
        sk_reply_free(&r);
        if (round == 1 || o->tls != SK_AUDIT_TLS_STARTTLS)
            break;
        if (!x->c->caps.starttls) {
            rep->could_not_run = 4;
            snprintf(rep->error, sizeof rep->error,
                     "--starttls: the server does not offer STARTTLS");
            goto done;
        }
        if (sk_client_starttls(x->c, &r) < 0) {
            sk_reply_free(&r);
            rep->could_not_run = 4;
            snprintf(rep->error, sizeof rep->error, "%s", sk_client_errmsg(x->c));
            goto done;
        }
        sk_reply_free(&r);
    }
    snprintf(x->last_sent, sizeof x->last_sent, "QUIT");
    sk_client_quit(x->c);
done:
    sk_client_free(x->c);
    x->c = NULL;
}

static void count(sk_audit_report *rep)
{
    for (int s = 0; s < SK_AUDIT_NSEVERITY; s++)
        rep->pass[s] = rep->fail[s] = rep->skip[s] = 0;
    for (size_t i = 0; i < rep->nresults; i++) {
        const sk_audit_result *r = &rep->results[i];
        int s = (int)r->check->severity;
        if (r->outcome == SK_AUDIT_PASS)
            rep->pass[s]++;
        else if (r->outcome == SK_AUDIT_FAIL)
            rep->fail[s]++;
        else
            rep->skip[s]++;
    }
}

int sk_audit_run(const sk_audit_opts *o, sk_audit_report *rep)
{
    memset(rep, 0, sizeof *rep);
    snprintf(rep->target, sizeof rep->target, "%s:%s", o->host, o->port);
    rep->tls_mode = o->tls == SK_AUDIT_TLS_IMPLICIT   ? "implicit"
                    : o->tls == SK_AUDIT_TLS_STARTTLS ? "starttls"
                                                      : "none";
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(rep->started, sizeof rep->started, "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (check_only(o->only, rep->error, sizeof rep->error) < 0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < sk_audit_ncheck(); i++)
        n += selected(o->only, sk_audit_check_at(i)->name);
    rep->results = calloc(n ? n : 1, sizeof *rep->results);
    run_ctx *x = calloc(1, sizeof *x);
    seen_reply *seen = calloc(SEEN_MAX, sizeof *seen);
    if (!rep->results || !x || !seen) {
        free(x);
        free(seen);
        snprintf(rep->error, sizeof rep->error, "out of memory");
        return -1;
    }
    x->o = o;
    x->rep = rep;
    x->seen = seen;
    double t0 = sk_monotonic();
    x->deadline = t0 + o->max_seconds;
    /* A server that resets the connection must not kill the run (TLS
     * writes go through OpenSSL, which cannot pass MSG_NOSIGNAL). */
    struct sigaction ign, old_pipe;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe);
    baseline(x);
    for (size_t i = 0; i < sk_audit_ncheck(); i++) {
        const sk_audit_check *ck = sk_audit_check_at(i);
        if (!selected(o->only, ck->name))
            continue;
        sk_audit_result *res = &rep->results[rep->nresults];
        x->cur = rep->nresults++;
        res->check = ck;
        if (rep->could_not_run) {
            res->outcome = SK_AUDIT_SKIP;
            set_reason(res, "could not run: %s", rep->error);
        } else if (ck->needs & SK_AUDIT_GLOBAL) {
            continue; /* judged at the end, over every reply */
        } else {
            run_check(x, ck, res);
            if (ck->needs & SK_AUDIT_NEED_DELIVER && res->outcome != SK_AUDIT_SKIP)
                rep->delivered++;
        }
        if (o->on_result)
            o->on_result(res, o->on_result_arg);
    }
    for (size_t i = 0; !rep->could_not_run && i < rep->nresults; i++) {
        sk_audit_result *res = &rep->results[i];
        if (res->check->needs & SK_AUDIT_GLOBAL) {
            run_global(x, res->check, res);
            if (o->on_result)
                o->on_result(res, o->on_result_arg);
        }
    }
    sigaction(SIGPIPE, &old_pipe, NULL);
    rep->seconds = sk_monotonic() - t0;
    count(rep);
    free(seen);
    free(x);
    return 0;
}

void sk_audit_report_free(sk_audit_report *rep)
{
    for (size_t i = 0; i < rep->nresults; i++) {
        for (size_t k = 0; k < rep->results[i].ndialogue; k++)
            free(rep->results[i].dialogue[k].text);
        free(rep->results[i].dialogue);
    }
    free(rep->results);
    rep->results = NULL;
    rep->nresults = 0;
}

int sk_audit_exit_status(const sk_audit_report *rep)
{
    if (rep->could_not_run)
        return rep->could_not_run;
    if (rep->fail[SK_AUDIT_MUST])
        return 2;
    if (rep->fail[SK_AUDIT_SHOULD])
        return 1;
    return 0;
}

int sk_audit_score(const sk_audit_report *rep, sk_audit_severity s)
{
    int run = rep->pass[s] + rep->fail[s];
    if (!run)
        return -1;
    return (rep->pass[s] * 100) / run;
}
