/*
 * cmd_probe.c - `smtpkit probe HOST[:PORT] | DOMAIN`: the "online SMTP
 * response" check. Connects, shows the greeting explained from the reply
 * registry; with --advanced the whole dialogue (EHLO capabilities, STARTTLS
 * and the certificate, an optional MAIL/RCPT test that never sends DATA).
 * LMTP servers (RFC 2033) get LHLO instead of EHLO: with --lmtp, on port
 * 24, or at a Unix socket (unix:/path).
 * A domain is resolved to its MX hosts first (RFC 5321 5.1, RFC 7505).
 * Output for people, or JSON (--json); the exit status says what happened.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/known_hint.h"
#include "cli/probe.h"
#include "smtpkit/client.h"
#include "smtpkit/mx.h"
#include "smtpkit/registry.h"

static const char *usage_text =
    "usage: smtpkit probe [OPTIONS] HOST[:PORT] | DOMAIN | unix:/PATH\n"
    "\n"
    "Connects to an SMTP server and explains what it answers. A DOMAIN (no\n"
    "port, not an IP address) is looked up in DNS and its MX hosts are probed\n"
    "in order of preference (the first that answers, or all with --all).\n"
    "An LMTP server (RFC 2033: Dovecot's delivery service) is spoken to with\n"
    "LHLO instead of EHLO: with --lmtp, on port 24, or at unix:/PATH (a socket).\n"
    "\n"
    "  -a, --advanced       show the whole dialogue: EHLO capabilities, STARTTLS\n"
    "                       and the certificate, the MAIL/RCPT test\n"
    "  -p, --port N         port (default 25; 465 with --tls)\n"
    "      --tls            implicit TLS from the first byte (port 465)\n"
    "      --no-starttls    do not upgrade with STARTTLS in --advanced mode\n"
    "      --verify         stop at a certificate that cannot be verified (exit 4)\n"
    "  -k, --insecure       the inverse of --verify: report such a certificate but\n"
    "                       leave the exit status alone\n"
    "      --cafile FILE    trust the CA certificates in FILE too\n"
    "  -t, --timeout SECS   limit for each step (default 10)\n"
    "      --helo NAME      name to send in EHLO/HELO (default: this host's name)\n"
    "      --lmtp           speak LMTP: LHLO instead of EHLO (default port 24)\n"
    "      --from ADDR      MAIL FROM for a MAIL/RCPT test (never sends DATA)\n"
    "      --rcpt ADDR      RCPT TO for the test (repeatable; implies --advanced)\n"
    "      --mx             treat the target as a domain even if it looks like a host\n"
    "      --all            probe every MX host, not only the first that answers\n"
    "      --dns-server IP[:PORT]  ask this DNS server (e.g. 127.0.0.1:5353)\n"
    "      --json           machine-readable output\n"
    "  -h, --help           this text\n"
    "\n"
    "A certificate that cannot be verified (self-signed, unknown CA, expired, name\n"
    "mismatch) is reported as a finding and the dialogue goes on, as mail on port\n"
    "25 does (opportunistic TLS).\n"
    "\n"
    "Exit status: 0 the server answered and accepted; 1 it refused (4xx/5xx\n"
    "greeting, or a refused MAIL/RCPT); 2 usage error; 3 could not connect\n"
    "(refused, unreachable, timeout, connection closed); 4 TLS failure\n"
    "(handshake, STARTTLS refused, a bad certificate with --verify); 5 DNS failure\n"
    "(no such domain, server failure, timeout, null MX: the domain accepts no\n"
    "mail); 6 protocol error (the peer does not speak SMTP); 7 the dialogue went\n"
    "well but the certificate cannot be verified (not with --insecure).\n";

/* ---- human output ------------------------------------------------------- */

static void live_entry(const sk_transcript_entry *e, void *arg)
{
    (void)arg;
    const char *tag = e->dir == SK_DIR_CLIENT ? "C:" : e->dir == SK_DIR_SERVER ? "S:" : " *";
    printf("%9.1f ms  %s %s\n", e->ms, tag, e->line);
    fflush(stdout);
}

/* What to say when no meaning applies to this reply. */
static const char *no_meaning(const sk_reply_explanation *ex)
{
    return ex->picked.nelsewhere ? "no registered meaning as a reply to this command"
                                 : "not a registered reply code";
}

/* The notes under an explanation: a code outside RFC 5321 4.3.2's list for
 * the command, and what the code means after other commands. */
static void print_notes(const sk_reply *r, const char *cmd, const sk_reply_explanation *ex,
                        const char *indent, const char *label)
{
    if (ex->unexpected)
        printf("%s%s RFC 5321 4.3.2 (or the extension's RFC) does not list %d as a reply to "
               "%s: the server uses its own choice of code (common, not an error)\n",
               indent, label, r->code, cmd);
    /* What the code means after other commands, when nothing applies here. */
    int show_elsewhere =
        ex->picked.source == SK_MEANING_NONE || ex->picked.source == SK_MEANING_ENHANCED;
    for (size_t i = 0; show_elsewhere && i < ex->picked.nelsewhere; i++) {
        const sk_code_entry *e = ex->picked.elsewhere[i];
        printf("%s%s after %s, %d means \"%s\" (not here)\n", indent, label, e->context, e->code,
               e->text);
    }
}

static void print_explanation(const sk_reply *r, const char *cmd, const char *indent)
{
    sk_reply_explanation ex;
    sk_reply_explain(r, cmd, &ex);
    printf("%s%d: %s\n", indent, r->code, ex.meaning ? ex.meaning : no_meaning(&ex));
    if (ex.class_text)
        printf("%s  class:  %dxx %s: %s\n", indent, r->code / 100,
               ex.class_name ? ex.class_name : "", ex.class_text);
    else
        printf("%s  class:  %dxx is outside RFC 5321's reply-code grammar\n", indent,
               r->code / 100);
    if (r->has_enhanced)
        printf("%s  enhanced code %d.%d.%d: %s\n", indent, r->enhanced.cls, r->enhanced.subject,
               r->enhanced.detail, ex.enhanced_name ? ex.enhanced_name : "not registered");
    printf("%s  advice: %s\n", indent, ex.advice ? ex.advice : "?");
    if (ex.status && strcmp(ex.status, "standard"))
        printf("%s  status: %s%s%s\n", indent, ex.status, ex.status_note ? " - " : "",
               ex.status_note ? ex.status_note : "");
    char label[32];
    snprintf(label, sizeof label, "%s  note:  ", indent);
    print_notes(r, cmd, &ex, "", label);
    if (ex.rfc)
        printf("%s  see:    %s\n", indent, ex.rfc);
    char known_indent[32]; /* known replies (known_hint.c) */
    snprintf(known_indent, sizeof known_indent, "%s  ", indent);
    sk_known_hint(stdout, known_indent, cmd, r);
}

/* One line under a reply in the --advanced dialogue. */
static void print_brief_explanation(const sk_reply *r, const char *cmd)
{
    sk_reply_explanation ex;
    sk_reply_explain(r, cmd, &ex);
    printf("%16s=> %d %s%s%s [%s; %s]\n", "", r->code, ex.meaning ? "" : "(",
           ex.meaning ? ex.meaning : no_meaning(&ex), ex.meaning ? "" : ")",
           ex.class_name ? ex.class_name : "code outside RFC 5321's grammar",
           ex.advice ? ex.advice : "?");
    if (r->has_enhanced)
        printf("%16s   %d.%d.%d: %s\n", "", r->enhanced.cls, r->enhanced.subject,
               r->enhanced.detail, ex.enhanced_name ? ex.enhanced_name : "not registered");
    if (ex.status && strcmp(ex.status, "standard"))
        printf("%16s   status: %s%s%s\n", "", ex.status, ex.status_note ? " - " : "",
               ex.status_note ? ex.status_note : "");
    print_notes(r, cmd, &ex, "                   ", "note:");
    sk_known_hint(stdout, "                   ", cmd, r); /* known replies (known_hint.c) */
}

static void print_caps(const sk_caps *caps)
{
    printf("%16s   capabilities:\n", "");
    if (!caps->ncaps)
        printf("%16s     (none announced)\n", "");
    for (size_t i = 0; i < caps->ncaps; i++) {
        char expl[300], kp[300];
        sk_cap_explain(&caps->caps[i], expl, sizeof expl);
        snprintf(kp, sizeof kp, "%s%s%s", caps->caps[i].keyword, caps->caps[i].params[0] ? " " : "",
                 caps->caps[i].params);
        printf("%16s     %-26s %s\n", "", kp, expl);
    }
}

/* ---- the dialogue ------------------------------------------------------- */

typedef struct hook_arg {
    const probe_opts *o;
    host_result *h;
} hook_arg;

/* Every reply the client reads: kept for --json, explained at once in
 * --advanced mode (so each explanation follows its reply). */
static void on_reply(const sk_reply *r, const char *cmd, void *arg)
{
    hook_arg *a = arg;
    if (!strcmp(cmd, "LHLO"))
        cmd = "EHLO"; /* LMTP's EHLO (RFC 2033 4.1): the same replies */
    host_result *h = a->h;
    if (a->o->advanced && !a->o->json)
        print_brief_explanation(r, cmd);
    if (h->nrep >= PROBE_MAX_REPLIES)
        return;
    reply_rec *rr = &h->rep[h->nrep];
    memset(rr, 0, sizeof *rr);
    snprintf(rr->cmd, sizeof rr->cmd, "%s", cmd);
    rr->r.code = r->code;
    rr->r.has_enhanced = r->has_enhanced;
    rr->r.enhanced = r->enhanced;
    for (size_t i = 0; i < r->nlines && i < SK_REPLY_MAX_LINES; i++) {
        rr->r.lines[i] = strdup(r->lines[i] ? r->lines[i] : "");
        if (!rr->r.lines[i])
            break;
        rr->r.nlines++;
    }
    h->nrep++;
}

static void free_rec(reply_rec *rr)
{
    for (size_t i = 0; i < rr->r.nlines; i++)
        free(rr->r.lines[i]);
    rr->r.nlines = 0;
}

static int fail_from_client(const probe_opts *o, host_result *h)
{
    h->exit = sk_client_exit_status(sk_client_error(h->c));
    snprintf(h->error, sizeof h->error, "%s", sk_client_errmsg(h->c));
    if (o->verify && h->exit == SK_EXIT_TLS && probe_cert_problem(h)) {
        /* With --verify a certificate problem is the only TLS error once
         * the handshake is done: say why in the finding's words. */
        char why[400];
        probe_cert_summary(h, why, sizeof why);
        snprintf(h->error, sizeof h->error, "%s; --verify stops here", why);
    }
    return -1;
}

/* Run the dialogue on a connected client. Fills h->exit / h->error. */
static void dialogue(const probe_opts *o, host_result *h)
{
    sk_client *c = h->c;
    sk_reply r;
    if (o->tls && sk_client_tls_handshake(c) < 0) {
        fail_from_client(o, h);
        return;
    }
    if (sk_client_greeting(c, &r) < 0) {
        fail_from_client(o, h);
        return;
    }
    h->greeted = 1;
    int code = r.code;
    char one[400];
    sk_reply_oneline(&r, one, sizeof one);
    sk_reply_free(&r);
    if (code != 220) {
        if (code >= 400 && code < 600) {
            h->exit = SK_EXIT_REFUSED;
            snprintf(h->error, sizeof h->error, "%s refuses service: %s", sk_client_peer(c), one);
        } else {
            h->exit = SK_EXIT_PROTOCOL;
            snprintf(h->error, sizeof h->error,
                     "%s greeted with %d, not 220 (RFC 5321 4.3.2 allows only 220 or 554)",
                     sk_client_peer(c), code);
        }
        sk_client_quit(c);
        h->quit_sent = 1;
        return;
    }
    if (!o->advanced) {
        sk_client_quit(c);
        h->quit_sent = 1;
        h->exit = SK_EXIT_OK;
        return;
    }
    for (int round = 0; round < 2; round++) {
        if ((o->lmtp ? sk_client_lhlo(c, o->helo, &r) : sk_client_ehlo(c, o->helo, &r)) < 0) {
            fail_from_client(o, h);
            return;
        }
        const sk_caps *caps = sk_client_caps(c);
        code = r.code;
        sk_reply_oneline(&r, one, sizeof one);
        sk_reply_free(&r);
        if (code != 250) {
            h->exit = SK_EXIT_REFUSED;
            snprintf(h->error, sizeof h->error, "%s refused our %s: %s", sk_client_peer(c),
                     o->lmtp       ? "LHLO"
                     : caps->esmtp ? "EHLO"
                                   : "HELO",
                     one);
            sk_client_quit(c);
            h->quit_sent = 1;
            return;
        }
        h->esmtp = caps->esmtp;
        if (!o->json) {
            if (caps->esmtp || o->lmtp)
                print_caps(caps);
            else
                printf("%16s   the server does not speak ESMTP (no EHLO): no extensions\n", "");
        }
        if (round == 1 || o->tls || sk_client_is_tls(c))
            break;
        if (!caps->starttls) {
            snprintf(h->note, sizeof h->note,
                     "the server does not offer STARTTLS: mail to it "
                     "travels unencrypted");
            if (!o->json)
                printf("%16s   note: %s\n", "", h->note);
            break;
        }
        if (o->no_starttls)
            break;
        int rc = sk_client_starttls(c, &r);
        sk_reply_free(&r);
        if (rc < 0) {
            fail_from_client(o, h);
            sk_client_close(c);
            return;
        }
    }
    if (o->nrcpts || o->from) {
        const char *from = o->from ? o->from : "";
        sk_txn *t = &h->txn;
        memset(t, 0, sizeof *t);
        t->mail_from = from;
        t->rcpts = o->rcpts;
        t->nrcpts = o->nrcpts;
        t->results = h->rres;
        t->no_data = 1;
        h->did_txn = 1;
        if (sk_client_transaction(c, t) < 0) {
            fail_from_client(o, h);
            sk_client_close(c);
            return;
        }
        if (!o->json) {
            printf("%16s   MAIL FROM:<%s> -> %s\n", "", from, t->mail_text);
            for (size_t i = 0; i < t->nrcpts; i++)
                printf("%16s   RCPT TO:<%s> -> %s\n", "", t->rcpts[i],
                       t->results[i].code ? t->results[i].text : "(not sent: MAIL refused)");
        }
        int refused = t->mail_code < 200 || t->mail_code >= 300;
        for (size_t i = 0; i < t->nrcpts; i++)
            if (t->results[i].code < 200 || t->results[i].code >= 300)
                refused = 1;
        if (refused) {
            h->exit = SK_EXIT_REFUSED;
            if (t->mail_code < 200 || t->mail_code >= 300)
                snprintf(h->error, sizeof h->error, "%s refused MAIL FROM:<%s>: %s",
                         sk_client_peer(c), from, t->mail_text);
            else
                snprintf(h->error, sizeof h->error, "%s refused %zu of %zu recipients",
                         sk_client_peer(c), t->nrcpts - t->accepted, t->nrcpts);
        }
    }
    sk_client_quit(c);
    h->quit_sent = 1;
    if (!h->error[0])
        h->exit = SK_EXIT_OK;
}

/* Try each address of one host until one connects; run the dialogue. */
static void probe_host(const probe_opts *o, host_result *h, const sk_addr *addrs, size_t n)
{
    sk_client_opts co = {0};
    co.timeout_ms = o->timeout_ms;
    co.insecure = !o->verify; /* the certificate is judged by probe_cert.c */
    co.cafile = o->cafile;
    hook_arg *ha = malloc(sizeof *ha);
    if (!ha) {
        h->exit = SK_EXIT_REFUSED;
        snprintf(h->error, sizeof h->error, "out of memory");
        return;
    }
    ha->o = o;
    ha->h = h;
    h->hook = ha;
    co.on_reply = on_reply;
    co.on_reply_arg = ha;
    h->c = sk_client_new(&co);
    if (!h->c) {
        h->exit = SK_EXIT_REFUSED;
        snprintf(h->error, sizeof h->error, "out of memory");
        return;
    }
    if (o->advanced && !o->json) {
        sk_transcript *tr = sk_client_transcript(h->c);
        tr->on_entry = live_entry;
    }
    for (size_t i = 0; i < n; i++) {
        sk_client_clear_error(h->c);
        snprintf(h->addr, sizeof h->addr, "%s", addrs[i].text);
        if (sk_client_connect_addr(h->c, (const struct sockaddr *)&addrs[i].ss, addrs[i].len,
                                   h->name) == 0) {
            h->connected = 1;
            break;
        }
    }
    if (!h->connected) {
        fail_from_client(o, h);
        return;
    }
    dialogue(o, h);
}

/* ---- main --------------------------------------------------------------- */

static int parse_timeout(const char *s, int *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 3600)
        return -1;
    *ms = (int)(v * 1000.0);
    if (*ms < 1)
        *ms = 1;
    return 0;
}

static void default_helo(char *out, size_t n)
{
    if (gethostname(out, n) != 0 || !out[0])
        snprintf(out, n, "localhost");
    out[n - 1] = '\0';
}

int sk_cmd_probe(int argc, char **argv)
{
    enum {
        O_TLS = 256,
        O_NOSTARTTLS,
        O_HELO,
        O_FROM,
        O_RCPT,
        O_MX,
        O_ALL,
        O_DNS,
        O_JSON,
        O_CA,
        O_VERIFY,
        O_LMTP
    };
    static const struct option lo[] = {
        {"advanced", no_argument, 0, 'a'},
        {"port", required_argument, 0, 'p'},
        {"tls", no_argument, 0, O_TLS},
        {"no-starttls", no_argument, 0, O_NOSTARTTLS},
        {"insecure", no_argument, 0, 'k'},
        {"timeout", required_argument, 0, 't'},
        {"helo", required_argument, 0, O_HELO},
        {"lmtp", no_argument, 0, O_LMTP},
        {"from", required_argument, 0, O_FROM},
        {"rcpt", required_argument, 0, O_RCPT},
        {"mx", no_argument, 0, O_MX},
        {"all", no_argument, 0, O_ALL},
        {"dns-server", required_argument, 0, O_DNS},
        {"json", no_argument, 0, O_JSON},
        {"cafile", required_argument, 0, O_CA},
        {"verify", no_argument, 0, O_VERIFY},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    probe_opts o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = 10000;
    o.port = -1;
    char helo[256];
    default_helo(helo, sizeof helo);
    o.helo = helo;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":ap:kt:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'a':
            o.advanced = 1;
            break;
        case 'p': {
            char h[8], tmp[16];
            int port;
            snprintf(tmp, sizeof tmp, "x:%s", optarg);
            if (strlen(optarg) > 5 || sk_target_parse(tmp, h, sizeof h, &port) < 0 || port < 0) {
                fprintf(stderr, "smtpkit probe: bad port '%s' (1-65535)\n", optarg);
                return SK_EXIT_USAGE;
            }
            o.port = port;
            break;
        }
        case O_TLS:
            o.tls = 1;
            break;
        case O_NOSTARTTLS:
            o.no_starttls = 1;
            break;
        case 'k': /* the inverse of --verify; the last one given wins */
            o.insecure = 1;
            o.verify = 0;
            break;
        case O_VERIFY:
            o.verify = 1;
            o.insecure = 0;
            break;
        case 't':
            if (parse_timeout(optarg, &o.timeout_ms) < 0) {
                fprintf(stderr, "smtpkit probe: bad timeout '%s' (seconds, > 0)\n", optarg);
                return SK_EXIT_USAGE;
            }
            break;
        case O_HELO:
            o.helo = optarg;
            break;
        case O_LMTP:
            o.lmtp = 1;
            break;
        case O_FROM:
            o.from = optarg;
            o.advanced = 1;
            break;
        case O_RCPT:
            if (o.nrcpts >= PROBE_MAX_RCPTS) {
                fprintf(stderr, "smtpkit probe: at most %d --rcpt\n", PROBE_MAX_RCPTS);
                return SK_EXIT_USAGE;
            }
            o.rcpts[o.nrcpts++] = optarg;
            o.advanced = 1;
            break;
        case O_MX:
            o.force_mx = 1;
            break;
        case O_ALL:
            o.all = 1;
            break;
        case O_DNS:
            o.dns_server = optarg;
            break;
        case O_JSON:
            o.json = 1;
            break;
        case O_CA:
            o.cafile = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SK_EXIT_OK;
        case ':':
            fprintf(stderr, "smtpkit probe: option '%s' needs a value\n", argv[optind - 1]);
            return SK_EXIT_USAGE;
        default:
            fprintf(stderr, "smtpkit probe: unknown option '%s'\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return SK_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "smtpkit probe: give exactly one HOST[:PORT] or DOMAIN\n");
        fputs(usage_text, stderr);
        return SK_EXIT_USAGE;
    }
    for (const char *p = o.helo; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            fprintf(stderr, "smtpkit probe: bad --helo name\n");
            return SK_EXIT_USAGE;
        }
    const char *target = argv[optind];
    char host[256];
    int tport;
    /* unix:/path: an LMTP server's socket (Dovecot's /run/dovecot/lmtp) */
    sk_addr unix_addr;
    int is_unix = !strncmp(target, "unix:", 5);
    if (is_unix) {
        struct sockaddr_un *su = (struct sockaddr_un *)&unix_addr.ss;
        memset(&unix_addr, 0, sizeof unix_addr);
        const char *path = target + 5;
        if (path[0] != '/' || strlen(path) >= sizeof su->sun_path || strlen(path) >= sizeof host ||
            o.tls) {
            fprintf(stderr,
                    "smtpkit probe: bad target '%s' (unix: needs an absolute socket path; "
                    "no --tls)\n",
                    target);
            return SK_EXIT_USAGE;
        }
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, path, strlen(path) + 1);
        unix_addr.len = (socklen_t)sizeof *su;
        snprintf(unix_addr.text, sizeof unix_addr.text, "unix");
        snprintf(host, sizeof host, "%s", path);
        o.lmtp = 1;
        tport = 0;
    } else if (sk_target_parse(target, host, sizeof host, &tport) < 0) {
        fprintf(stderr, "smtpkit probe: bad target '%s' (expected HOST[:PORT] or DOMAIN)\n",
                target);
        return SK_EXIT_USAGE;
    }
    int port = tport > 0 ? tport : o.port > 0 ? o.port : o.tls ? 465 : o.lmtp ? 24 : 25;
    if (port == 24)
        o.lmtp = 1; /* the LMTP port (RFC 2033 5) */
    int mx_mode = !is_unix && (o.force_mx || (tport < 0 && !sk_is_ip_literal(host)));
    if (o.force_mx && sk_is_ip_literal(host)) {
        fprintf(stderr, "smtpkit probe: --mx needs a domain, not an IP address\n");
        return SK_EXIT_USAGE;
    }

    sk_buf jbuf;
    sk_buf_init(&jbuf, 0);
    sk_json j;
    sk_json_init(&j, &jbuf);
    if (o.json) {
        sk_json_begin_object(&j);
        sk_json_kv_string(&j, "target", target);
        sk_json_kv_string(&j, "mode", mx_mode ? "mx" : "host");
        sk_json_kv_bool(&j, "advanced", o.advanced);
        sk_json_kv_bool(&j, "lmtp", o.lmtp);
    }

    int exit_status = SK_EXIT_OK;
    char summary[1400] = "";
    char errbuf[300];
    sk_resolver *res = NULL;
    sk_mx_list mx;
    memset(&mx, 0, sizeof mx);
    int dns_ok = 1;
    if (mx_mode || o.dns_server) {
        res = sk_resolver_new(o.dns_server, o.timeout_ms < 5000 ? o.timeout_ms : 5000, errbuf,
                              sizeof errbuf);
        if (!res) {
            fprintf(stderr, "smtpkit probe: %s\n", errbuf);
            sk_buf_free(&jbuf);
            return SK_EXIT_USAGE;
        }
    }
    if (mx_mode) {
        sk_dns_status st = sk_mx_resolve(res, host, 0, &mx);
        if (st != SK_DNS_OK && st != SK_DNS_NULLMX && !o.force_mx && !o.dns_server) {
            /* No MX answer, but maybe a name the system knows (/etc/hosts,
             * "localhost"): probe it as a host rather than give up. */
            sk_addr a[SK_ADDRS_MAX];
            size_t n = 0;
            if (sk_system_resolve(host, port, a, SK_ADDRS_MAX, &n) == SK_DNS_OK && n) {
                memset(&mx, 0, sizeof mx);
                snprintf(mx.hosts[0].name, sizeof mx.hosts[0].name, "%s", host);
                mx.hosts[0].preference = -1;
                mx.n = 1;
                mx.implicit = 1;
                st = SK_DNS_OK;
            }
        }
        if (o.json) {
            sk_json_key(&j, "mx");
            sk_json_begin_object(&j);
            sk_json_kv_string(&j, "domain", host);
            sk_json_kv_string(&j, "status", st == SK_DNS_OK ? "ok" : sk_dns_status_text(st));
            sk_json_kv_bool(&j, "null_mx", st == SK_DNS_NULLMX);
            sk_json_kv_bool(&j, "implicit", mx.implicit);
            sk_json_key(&j, "hosts");
            sk_json_begin_array(&j);
            for (size_t i = 0; i < mx.n; i++) {
                sk_json_begin_object(&j);
                sk_json_kv_int(&j, "preference", mx.hosts[i].preference);
                sk_json_kv_string(&j, "host", mx.hosts[i].name);
                sk_json_end_object(&j);
            }
            sk_json_end_array(&j);
            sk_json_end_object(&j);
        }
        if (st != SK_DNS_OK) {
            dns_ok = 0;
            exit_status = SK_EXIT_DNS;
            if (st == SK_DNS_NULLMX)
                snprintf(summary, sizeof summary,
                         "%s accepts no mail: it publishes a null MX record (RFC 7505)", host);
            else
                snprintf(summary, sizeof summary, "DNS lookup of MX records for %s failed: %s",
                         host, sk_dns_status_text(st));
        } else if (!o.json) {
            if (mx.implicit)
                printf("%s has no MX record: its own address is the mail host (RFC 5321 5.1)\n",
                       host);
            else {
                printf("MX records for %s:\n", host);
                for (size_t i = 0; i < mx.n; i++)
                    printf("  %5d  %s\n", mx.hosts[i].preference, mx.hosts[i].name);
            }
        }
    } else {
        mx.n = 1;
        snprintf(mx.hosts[0].name, sizeof mx.hosts[0].name, "%s", host);
        mx.hosts[0].preference = -2;
    }

    if (o.json) {
        sk_json_key(&j, "probes");
        sk_json_begin_array(&j);
    }
    host_result *hr = calloc(mx.n ? mx.n : 1, sizeof *hr);
    if (!hr) {
        fprintf(stderr, "smtpkit probe: out of memory\n");
        return SK_EXIT_REFUSED;
    }
    int answered = 0, any_fail = 0, first_fail = SK_EXIT_OK;
    size_t last = 0;
    for (size_t i = 0; dns_ok && i < mx.n; i++) {
        host_result *h = &hr[i];
        last = i;
        snprintf(h->name, sizeof h->name, "%s", mx.hosts[i].name);
        h->port = port;
        h->preference = mx.hosts[i].preference;
        sk_addr addrs[SK_ADDRS_MAX];
        size_t na = 0;
        sk_dns_status st;
        if (is_unix) {
            addrs[0] = unix_addr;
            na = 1;
            st = SK_DNS_OK;
        } else if (res)
            st = sk_host_resolve(res, h->name, port, addrs, SK_ADDRS_MAX, &na);
        else
            st = sk_system_resolve(h->name, port, addrs, SK_ADDRS_MAX, &na);
        if (st != SK_DNS_OK && res && !o.dns_server && mx.implicit)
            st = sk_system_resolve(h->name, port, addrs, SK_ADDRS_MAX, &na);
        if (!o.json) {
            if (is_unix)
                printf("Probing the socket %s (LMTP)\n", h->name);
            else
                printf("%sProbing %s port %d%s%s\n", i || mx_mode ? "\n" : "", h->name, port,
                       o.tls ? " (implicit TLS)" : "", o.lmtp ? " (LMTP)" : "");
        }
        if (st != SK_DNS_OK || na == 0) {
            h->exit = SK_EXIT_DNS;
            snprintf(h->error, sizeof h->error, "could not resolve %s: %s", h->name,
                     sk_dns_status_text(st));
        } else {
            probe_host(&o, h, addrs, na);
        }
        if (!o.json) {
            if (!o.advanced && h->greeted) {
                printf("Connected to %s in %.2f ms; greeting after %.2f ms:\n\n",
                       sk_client_peer(h->c), sk_client_connect_ms(h->c),
                       sk_client_greeting_ms(h->c));
                for (size_t k = 0; k < h->rep[0].r.nlines; k++) {
                    sk_reply *g = &h->rep[0].r;
                    if (g->has_enhanced)
                        printf("  %d%c%d.%d.%d %s\n", g->code, k + 1 < g->nlines ? '-' : ' ',
                               g->enhanced.cls, g->enhanced.subject, g->enhanced.detail,
                               g->lines[k]);
                    else
                        printf("  %d%c%s\n", g->code, k + 1 < g->nlines ? '-' : ' ', g->lines[k]);
                }
                printf("\n");
                print_explanation(&h->rep[0].r, "CONNECT", "");
            }
            probe_cert_print(&o, h);
            if (h->exit == SK_EXIT_OK)
                printf("%s: %s answers as an %s server%s%s.\n", "OK",
                       h->addr[0] ? sk_client_peer(h->c) : h->name, o.lmtp ? "LMTP" : "SMTP",
                       h->did_txn ? " and accepted the test addresses" : "",
                       probe_cert_problem(h) ? " (over TLS with a certificate that cannot be "
                                               "verified)"
                                             : "");
            else
                printf("FAILED: %s\n", h->error);
        }
        if (o.json)
            probe_json_host(&j, &o, h);
        int hx = probe_host_exit(&o, h);
        if (hx != SK_EXIT_OK) {
            if (!any_fail)
                first_fail = hx;
            any_fail = 1;
        }
        if (h->greeted)
            answered = 1;
        if (!o.all && (h->greeted || h->exit == SK_EXIT_OK))
            break;
    }
    if (dns_ok) {
        const host_result *h = &hr[last];
        if (o.all)
            exit_status = any_fail ? first_fail : SK_EXIT_OK;
        else
            exit_status = probe_host_exit(&o, h); /* the host that answered, or the last tried */
        if (exit_status != SK_EXIT_OK) {
            const host_result *f = &hr[last];
            if (o.all)
                for (size_t i = 0; i <= last; i++)
                    if (probe_host_exit(&o, &hr[i]) != SK_EXIT_OK) {
                        f = &hr[i];
                        break;
                    }
            if (f->exit == SK_EXIT_OK)
                probe_cert_summary(f, summary, sizeof summary);
            else
                snprintf(summary, sizeof summary, "%s", f->error);
            if (mx_mode && !answered && mx.n > 1)
                snprintf(summary, sizeof summary, "no MX host of %s answered; last: %s", host,
                         h->error);
        }
    }
    if (o.json) {
        sk_json_end_array(&j);
        sk_json_kv_int(&j, "exit", exit_status);
        sk_json_kv_string(&j, "error", summary[0] ? summary : NULL);
        sk_json_end_object(&j);
        if (!j.failed)
            printf("%s\n", jbuf.data);
    }
    if (exit_status != SK_EXIT_OK)
        fprintf(stderr, "smtpkit probe: %s\n", summary[0] ? summary : "failed");
    for (size_t i = 0; i < (mx.n ? mx.n : 1); i++) {
        for (size_t k = 0; k < hr[i].nrep; k++)
            free_rec(&hr[i].rep[k]);
        sk_client_free(hr[i].c);
        free(hr[i].hook);
    }
    free(hr);
    sk_buf_free(&jbuf);
    sk_resolver_free(res);
    return exit_status;
}
