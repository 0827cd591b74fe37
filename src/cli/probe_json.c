/*
 * probe_json.c - `smtpkit probe --json`: one object per host probed, with
 * the same content as the output for people: address, timings, every reply
 * with the meaning picked for its command and enhanced code, capabilities,
 * TLS details, the certificate finding, the MAIL/RCPT test, the transcript
 * and the exit status.
 */
#include <stdio.h>
#include <string.h>

#include "cli/known_hint.h"
#include "cli/probe.h"
#include "smtpkit/registry.h"

static void json_reply(sk_json *j, const reply_rec *rr)
{
    sk_reply_explanation ex;
    sk_reply_explain(&rr->r, rr->cmd, &ex);
    char one[1024];
    sk_reply_oneline(&rr->r, one, sizeof one);
    sk_json_begin_object(j);
    sk_json_kv_string(j, "command", rr->cmd);
    sk_json_kv_int(j, "code", rr->r.code);
    if (rr->r.has_enhanced) {
        char en[32];
        snprintf(en, sizeof en, "%d.%d.%d", rr->r.enhanced.cls, rr->r.enhanced.subject,
                 rr->r.enhanced.detail);
        sk_json_kv_string(j, "enhanced", en);
    } else {
        sk_json_kv_string(j, "enhanced", NULL);
    }
    sk_json_key(j, "lines");
    sk_json_begin_array(j);
    for (size_t i = 0; i < rr->r.nlines; i++)
        sk_json_string(j, rr->r.lines[i]);
    sk_json_end_array(j);
    sk_json_kv_string(j, "text", one);
    sk_json_kv_string(j, "meaning", ex.meaning);
    sk_json_kv_string(j, "class", ex.class_name);
    sk_json_kv_string(j, "class_meaning", ex.class_text);
    sk_json_kv_string(j, "advice", ex.advice);
    sk_json_kv_string(j, "enhanced_meaning", ex.enhanced_name);
    sk_json_kv_string(j, "status", ex.status);
    sk_json_kv_string(j, "rfc", ex.rfc);
    sk_json_kv_string(j, "meaning_source", ex.source);
    sk_json_kv_bool(j, "unexpected_for_command", ex.unexpected);
    sk_known_hint_json(j, rr->cmd, &rr->r); /* known replies (known_hint.c) */
    sk_json_key(j, "meanings_elsewhere");
    sk_json_begin_array(j);
    for (size_t i = 0; i < ex.picked.nelsewhere; i++) {
        const sk_code_entry *e = ex.picked.elsewhere[i];
        sk_json_begin_object(j);
        sk_json_kv_string(j, "command", e->context);
        sk_json_kv_string(j, "meaning", e->meaning);
        sk_json_end_object(j);
    }
    sk_json_end_array(j);
    sk_json_end_object(j);
}

void probe_json_host(sk_json *j, const probe_opts *o, const host_result *h)
{
    sk_json_begin_object(j);
    sk_json_kv_string(j, "host", h->name);
    sk_json_kv_string(j, "address", h->addr[0] ? h->addr : NULL);
    sk_json_kv_int(j, "port", h->port);
    if (h->preference >= 0)
        sk_json_kv_int(j, "mx_preference", h->preference);
    sk_json_kv_string(j, "tls_mode",
                      o->tls                                  ? "implicit"
                      : (h->c && sk_client_tls(h->c)->active) ? "starttls"
                                                              : "none");
    sk_json_kv_bool(j, "connected", h->connected);
    sk_json_key(j, "connect_ms");
    if (h->connected)
        sk_json_double(j, sk_client_connect_ms(h->c), 2);
    else
        sk_json_null(j);
    sk_json_key(j, "greeting_ms");
    if (h->greeted)
        sk_json_double(j, sk_client_greeting_ms(h->c), 2);
    else
        sk_json_null(j);
    sk_json_key(j, "greeting");
    if (h->nrep && !strcmp(h->rep[0].cmd, "CONNECT"))
        json_reply(j, &h->rep[0]);
    else
        sk_json_null(j);
    sk_json_key(j, "replies");
    sk_json_begin_array(j);
    for (size_t i = 0; i < h->nrep; i++)
        json_reply(j, &h->rep[i]);
    sk_json_end_array(j);
    if (o->advanced && h->c) {
        const sk_caps *caps = sk_client_caps(h->c);
        sk_json_kv_bool(j, "esmtp", h->esmtp);
        sk_json_key(j, "capabilities");
        sk_json_begin_array(j);
        for (size_t i = 0; i < caps->ncaps; i++) {
            char expl[300];
            sk_cap_explain(&caps->caps[i], expl, sizeof expl);
            sk_json_begin_object(j);
            sk_json_kv_string(j, "keyword", caps->caps[i].keyword);
            sk_json_kv_string(j, "params", caps->caps[i].params);
            sk_json_kv_string(j, "explanation", expl);
            sk_json_end_object(j);
        }
        sk_json_end_array(j);
        sk_json_key(j, "size_limit");
        if (caps->has_size && caps->size)
            sk_json_int(j, (long long)caps->size);
        else
            sk_json_null(j);
        sk_json_key(j, "auth_mechanisms");
        sk_json_begin_array(j);
        const char *m = caps->auth_list;
        while (*m) {
            size_t l = strcspn(m, " ");
            sk_json_stringn(j, m, l);
            m += l;
            while (*m == ' ')
                m++;
        }
        sk_json_end_array(j);
    }
    const sk_tls_info *t = h->c ? sk_client_tls(h->c) : NULL;
    sk_json_key(j, "tls");
    if (t && t->active) {
        sk_json_begin_object(j);
        sk_json_kv_string(j, "version", t->version);
        sk_json_kv_string(j, "cipher", t->cipher);
        sk_json_kv_int(j, "bits", t->bits);
        sk_json_kv_string(j, "subject", t->subject);
        sk_json_kv_string(j, "issuer", t->issuer);
        sk_json_kv_string(j, "not_before", t->not_before);
        sk_json_kv_string(j, "not_after", t->not_after);
        sk_json_kv_string(j, "names", t->names);
        sk_json_kv_bool(j, "name_match", t->name_match);
        sk_json_kv_bool(j, "verified", t->verified);
        sk_json_kv_string(j, "verify_error", t->verify_error[0] ? t->verify_error : NULL);
        sk_json_end_object(j);
    } else {
        sk_json_null(j);
    }
    probe_cert_json(j, o, h);
    sk_json_key(j, "test");
    if (h->did_txn) {
        sk_json_begin_object(j);
        sk_json_kv_string(j, "mail_from", h->txn.mail_from);
        sk_json_kv_int(j, "mail_code", h->txn.mail_code);
        sk_json_kv_string(j, "mail_reply", h->txn.mail_text);
        sk_json_key(j, "rcpt");
        sk_json_begin_array(j);
        for (size_t i = 0; i < h->txn.nrcpts; i++) {
            sk_json_begin_object(j);
            sk_json_kv_string(j, "address", h->txn.rcpts[i]);
            sk_json_kv_int(j, "code", h->rres[i].code);
            sk_json_kv_string(j, "reply", h->rres[i].code ? h->rres[i].text : NULL);
            sk_json_end_object(j);
        }
        sk_json_end_array(j);
        sk_json_end_object(j);
    } else {
        sk_json_null(j);
    }
    sk_json_key(j, "transcript");
    sk_json_begin_array(j);
    if (h->c) {
        const sk_transcript *tr = sk_client_transcript(h->c);
        for (size_t i = 0; i < tr->n; i++) {
            char d[2] = {(char)tr->v[i].dir, 0};
            sk_json_begin_object(j);
            sk_json_key(j, "t_ms");
            sk_json_double(j, tr->v[i].ms, 2);
            sk_json_kv_string(j, "dir", d);
            sk_json_kv_string(j, "line", tr->v[i].line);
            sk_json_end_object(j);
        }
    }
    sk_json_end_array(j);
    sk_json_kv_string(j, "note", h->note[0] ? h->note : NULL);
    sk_json_kv_bool(j, "quit_sent", h->quit_sent);
    sk_json_kv_int(j, "exit", probe_host_exit(o, h));
    sk_json_kv_string(j, "error", h->error[0] ? h->error : NULL);
    sk_json_end_object(j);
}
