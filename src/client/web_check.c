/*
 * web_check.c - the check `smtpkit web` runs for its form: the seed's
 * "online SMTP response" test. A domain is resolved to its MX hosts
 * (RFC 5321 5.1), the first host that answers is shown: the greeting, or
 * with "Advanced Output" the whole dialogue (EHLO and every capability
 * explained, STARTTLS (RFC 3207) and the certificate, EHLO again, QUIT),
 * every reply explained from the registry. The result is an HTML fragment;
 * everything the server sent is escaped. Blocking, every wait bounded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/web_check.h"
#include "smtpkit/audit.h"
#include "smtpkit/client.h"
#include "smtpkit/mx.h"

#define MAX_REPLIES 64

typedef struct kept_reply {
    char cmd[12];
    sk_reply r; /* deep copy */
} kept_reply;

typedef struct check_state {
    kept_reply rep[MAX_REPLIES];
    size_t n;
} check_state;

static void on_reply(const sk_reply *r, const char *cmd, void *arg)
{
    check_state *st = arg;
    if (st->n >= MAX_REPLIES)
        return;
    kept_reply *k = &st->rep[st->n];
    memset(k, 0, sizeof *k);
    snprintf(k->cmd, sizeof k->cmd, "%s", cmd);
    k->r.code = r->code;
    k->r.has_enhanced = r->has_enhanced;
    k->r.enhanced = r->enhanced;
    for (size_t i = 0; i < r->nlines; i++) {
        k->r.lines[i] = strdup(r->lines[i] ? r->lines[i] : "");
        if (!k->r.lines[i])
            break;
        k->r.nlines++;
    }
    st->n++;
}

static void esc(sk_buf *o, const char *s)
{
    sk_html_escape(o, s ? s : "");
}

static void explain_reply(sk_buf *o, const kept_reply *k)
{
    sk_reply_explanation ex;
    sk_reply_explain(&k->r, k->cmd, &ex);
    sk_buf_printf(o, "<div class=\"explain\" data-code=\"%d\"><b>%d</b> ", k->r.code, k->r.code);
    esc(o, ex.meaning ? ex.meaning : "not a registered reply code");
    sk_buf_append_str(o, " <span class=\"meta\">(");
    if (ex.class_name) {
        sk_buf_printf(o, "%dxx ", k->r.code / 100);
        esc(o, ex.class_name);
    } else
        sk_buf_append_str(o, "outside RFC 5321's reply-code grammar");
    sk_buf_append_str(o, "; ");
    esc(o, ex.advice ? ex.advice : "?");
    if (ex.rfc) {
        sk_buf_append_str(o, "; ");
        esc(o, ex.rfc);
    }
    sk_buf_append_str(o, ")</span>");
    if (k->r.has_enhanced) {
        sk_buf_printf(o, "<br>enhanced code %d.%d.%d: ", k->r.enhanced.cls, k->r.enhanced.subject,
                      k->r.enhanced.detail);
        esc(o, ex.enhanced_name ? ex.enhanced_name : "not registered");
    }
    if (ex.status && strcmp(ex.status, "standard")) {
        sk_buf_append_str(o, "<br>status: ");
        esc(o, ex.status);
        if (ex.status_note) {
            sk_buf_append_str(o, " - ");
            esc(o, ex.status_note);
        }
    }
    if (ex.unexpected) {
        sk_buf_printf(o, "<br><span class=\"warn\">the RFCs do not list %d as a reply to ",
                      k->r.code);
        esc(o, k->cmd);
        sk_buf_append_str(o, "</span>");
    }
    sk_buf_append_str(o, "</div>\n");
}

/* Is a transcript line from the server the last line of its reply? */
static int ends_reply(const char *line)
{
    size_t n = strlen(line);
    return n == 3 || (n > 3 && line[3] == ' ');
}

static void render_caps(sk_buf *o, const sk_caps *caps, int tls)
{
    sk_buf_printf(o, "<h3>Capabilities%s</h3>\n<table class=\"caps\"%s>\n",
                  tls ? " after STARTTLS" : "", tls ? " id=\"caps-tls\"" : " id=\"caps\"");
    if (!caps->ncaps)
        sk_buf_append_str(o, "<tr><td colspan=\"2\">none announced</td></tr>\n");
    for (size_t i = 0; i < caps->ncaps; i++) {
        char expl[300];
        sk_cap_explain(&caps->caps[i], expl, sizeof expl);
        sk_buf_append_str(o, "<tr><td class=\"kw\">");
        esc(o, caps->caps[i].keyword);
        if (caps->caps[i].params[0]) {
            sk_buf_append_str(o, " ");
            esc(o, caps->caps[i].params);
        }
        sk_buf_append_str(o, "</td><td class=\"capexplain\">");
        esc(o, expl);
        sk_buf_append_str(o, "</td></tr>\n");
    }
    sk_buf_append_str(o, "</table>\n");
}

static void render_tls(sk_buf *o, const sk_tls_info *t)
{
    if (!t->active)
        return;
    sk_buf_append_str(o, "<h3>TLS</h3>\n<table id=\"tls\">");
    const char *k[] = {"version",    "cipher",      "subject", "issuer",
                       "valid from", "valid until", "names"};
    const char *v[] = {t->version,    t->cipher,    t->subject, t->issuer,
                       t->not_before, t->not_after, t->names};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        sk_buf_printf(o, "<tr><th>%s</th><td>", k[i]);
        esc(o, v[i]);
        sk_buf_append_str(o, "</td></tr>");
    }
    sk_buf_append_str(o, "<tr><th>certificate</th><td>");
    if (t->verified && t->name_match)
        sk_buf_append_str(o, "verified, valid for the name");
    else {
        esc(o, t->verified ? "verified" : "NOT verified");
        if (t->verify_error[0]) {
            sk_buf_append_str(o, ": ");
            esc(o, t->verify_error);
        }
        if (!t->name_match)
            sk_buf_append_str(o, "; not valid for the name connected to");
    }
    sk_buf_append_str(o, "</td></tr></table>\n");
}

/* The dialogue, each complete reply followed by its explanation. */
static void render_dialogue(sk_buf *o, sk_client *c, const check_state *st)
{
    const sk_transcript *tr = sk_client_transcript(c);
    size_t ri = 0;
    sk_buf_append_str(o, "<h3>Dialogue</h3>\n<div id=\"dialogue\">\n");
    for (size_t i = 0; i < tr->n; i++) {
        const sk_transcript_entry *e = &tr->v[i];
        const char *cls = e->dir == SK_DIR_CLIENT ? "C" : e->dir == SK_DIR_SERVER ? "S" : "I";
        sk_buf_printf(o, "<div class=\"line %s\"><span class=\"t\">%8.1f ms</span> %s ", cls, e->ms,
                      e->dir == SK_DIR_CLIENT   ? "C:"
                      : e->dir == SK_DIR_SERVER ? "S:"
                                                : " *");
        esc(o, e->line);
        sk_buf_append_str(o, "</div>\n");
        if (e->dir == SK_DIR_SERVER && ends_reply(e->line) && ri < st->n)
            explain_reply(o, &st->rep[ri++]);
    }
    sk_buf_append_str(o, "</div>\n");
}

/* The addresses to try: one host, or the MX hosts of a domain. */
static int resolve(const char *host, int port, int explicit_port, int timeout_ms, sk_buf *o,
                   sk_addr *addrs, size_t max, size_t *n, char *name, size_t namelen)
{
    *n = 0;
    snprintf(name, namelen, "%s", host);
    if (!explicit_port && !sk_is_ip_literal(host)) {
        char err[200];
        sk_resolver *res =
            sk_resolver_new(NULL, timeout_ms < 5000 ? timeout_ms : 5000, err, sizeof err);
        sk_mx_list mx;
        memset(&mx, 0, sizeof mx);
        sk_dns_status st = res ? sk_mx_resolve(res, host, 0, &mx) : SK_DNS_ERROR;
        if (st == SK_DNS_NULLMX) {
            sk_buf_append_str(o, "<p class=\"error\">");
            esc(o, host);
            sk_buf_append_str(o, " accepts no mail: it publishes a null MX record (RFC 7505).</p>");
            sk_resolver_free(res);
            return -1;
        }
        if (st == SK_DNS_OK && mx.n && !mx.implicit) {
            sk_buf_append_str(o, "<h3>MX records</h3>\n<table id=\"mx\">");
            for (size_t i = 0; i < mx.n; i++) {
                sk_buf_printf(o, "<tr><td>%d</td><td>", mx.hosts[i].preference);
                esc(o, mx.hosts[i].name);
                sk_buf_append_str(o, "</td></tr>");
            }
            sk_buf_append_str(o, "</table>\n");
            for (size_t i = 0; i < mx.n && !*n; i++) {
                if (sk_host_resolve(res, mx.hosts[i].name, port, addrs, max, n) == SK_DNS_OK && *n)
                    snprintf(name, namelen, "%s", mx.hosts[i].name);
                else
                    *n = 0;
            }
        }
        sk_resolver_free(res);
        if (*n)
            return 0;
    }
    sk_dns_status st = sk_system_resolve(host, port, addrs, max, n);
    if (st != SK_DNS_OK || !*n) {
        sk_buf_append_str(o, "<p class=\"error\">Could not resolve ");
        esc(o, host);
        sk_buf_append_str(o, ": ");
        esc(o, sk_dns_status_text(st));
        sk_buf_append_str(o, "</p>\n");
        return -1;
    }
    return 0;
}

int sk_web_check_html(const sk_web_check_opts *o, sk_buf *out)
{
    char host[256], name[256];
    int port;
    sk_buf_append_str(out, "<div id=\"result\">\n");
    if (sk_target_parse(o->target, host, sizeof host, &port) < 0) {
        sk_buf_append_str(out, "<p class=\"error\">Not a host, host:port or domain: ");
        esc(out, o->target);
        sk_buf_append_str(out, "</p>\n</div>\n");
        return 1;
    }
    int explicit_port = port > 0;
    if (!explicit_port)
        port = 25;
    sk_addr addrs[SK_ADDRS_MAX];
    size_t na = 0;
    if (resolve(host, port, explicit_port, o->timeout_ms, out, addrs, SK_ADDRS_MAX, &na, name,
                sizeof name) < 0) {
        sk_buf_append_str(out, "</div>\n");
        return 1;
    }
    check_state *st = calloc(1, sizeof *st);
    if (!st)
        return 1;
    sk_client_opts co;
    memset(&co, 0, sizeof co);
    co.timeout_ms = o->timeout_ms;
    co.insecure = 1; /* shown, not fatal: the point is to see the server */
    co.on_reply = on_reply;
    co.on_reply_arg = st;
    co.transcript_max = 500;
    sk_client *c = sk_client_new(&co);
    int rc = 1;
    if (!c)
        goto done;
    int connected = 0;
    for (size_t i = 0; i < na && !connected; i++) {
        sk_client_clear_error(c);
        connected = sk_client_connect_addr(c, (const struct sockaddr *)&addrs[i].ss, addrs[i].len,
                                           name) == 0;
    }
    sk_buf_append_str(out, "<h2>");
    esc(out, name);
    sk_buf_printf(out, " port %d</h2>\n", port);
    sk_reply r;
    if (!connected || sk_client_greeting(c, &r) < 0) {
        sk_buf_append_str(out, "<p class=\"error\" id=\"error\">");
        esc(out, sk_client_errmsg(c));
        sk_buf_append_str(out, "</p>\n");
        if (o->advanced)
            render_dialogue(out, c, st);
        goto done;
    }
    int code = r.code;
    sk_reply_free(&r);
    sk_buf_printf(out, "<p>Connected to ");
    esc(out, sk_client_peer(c));
    sk_buf_printf(out, " in %.2f ms; greeting after %.2f ms.</p>\n", sk_client_connect_ms(c),
                  sk_client_greeting_ms(c));
    if (!o->advanced) {
        sk_buf_append_str(out, "<pre id=\"greeting\">");
        const sk_reply *g = &st->rep[0].r;
        for (size_t k = 0; k < g->nlines; k++) {
            sk_buf_printf(out, "%d%c", g->code, k + 1 < g->nlines ? '-' : ' ');
            if (g->has_enhanced)
                sk_buf_printf(out, "%d.%d.%d ", g->enhanced.cls, g->enhanced.subject,
                              g->enhanced.detail);
            esc(out, g->lines[k]);
            sk_buf_append_str(out, "\n");
        }
        sk_buf_append_str(out, "</pre>\n");
        explain_reply(out, &st->rep[0]);
        sk_client_quit(c);
        rc = code == 220 ? 0 : 1;
        goto done;
    }
    if (code == 220) {
        for (int round = 0; round < 2; round++) {
            if (sk_client_ehlo(c, o->helo, &r) < 0)
                break;
            int ok = r.code == 250;
            sk_reply_free(&r);
            if (!ok)
                break;
            const sk_caps *caps = sk_client_caps(c);
            if (caps->esmtp)
                render_caps(out, caps, round == 1);
            if (round == 1 || !caps->starttls)
                break;
            if (sk_client_starttls(c, &r) < 0) {
                sk_reply_free(&r);
                break;
            }
            sk_reply_free(&r);
            render_tls(out, sk_client_tls(c));
        }
        sk_client_quit(c);
        rc = 0;
    }
    render_dialogue(out, c, st);
    if (sk_client_error(c) != SK_CLIENT_OK) {
        sk_buf_append_str(out, "<p class=\"error\" id=\"error\">");
        esc(out, sk_client_errmsg(c));
        sk_buf_append_str(out, "</p>\n");
    }
done:
    sk_buf_append_str(out, "</div>\n");
    for (size_t i = 0; i < st->n; i++)
        for (size_t k = 0; k < st->rep[i].r.nlines; k++)
            free(st->rep[i].r.lines[k]);
    free(st);
    sk_client_free(c);
    return rc;
}
