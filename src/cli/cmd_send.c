/*
 * cmd_send.c - `smtpkit send`: build a test message (RFC 5322, MIME) and
 * deliver it to one server, or to the MX hosts of the first recipient's
 * domain (RFC 5321 5.1), with STARTTLS (RFC 3207) or implicit TLS (RFC
 * 8314), AUTH (RFC 4954), PIPELINING (RFC 2920), 8BITMIME (RFC 6152),
 * SMTPUTF8 (RFC 6531) and optionally BDAT (RFC 3030). Reports each
 * recipient's reply; the exit status follows the worst reply class.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/known_hint.h"
#include "cli/commands.h"
#include "smtpkit/client.h"
#include "smtpkit/mx.h"

#define MAX_ADDRS 100
#define MAX_HEADERS 32
#define MAX_ATTACH 16
#define MAX_FILE (50u * 1024 * 1024)   /* one body or attachment file */
#define MAX_TOTAL (100u * 1024 * 1024) /* everything read */

static const char *usage_text =
    "usage: smtpkit send [OPTIONS] --from ADDR --to ADDR [--to ADDR...]\n"
    "\n"
    "Builds a message and sends it. Without --server it goes to the MX hosts\n"
    "of the first --to address's domain. The body comes from --body,\n"
    "--body-file or standard input.\n"
    "\n"
    "  -s, --server HOST[:PORT]  server to use (default port 25; 465 with --tls)\n"
    "  -p, --port N              port (overrides the default)\n"
    "  -f, --from ADDR           sender (\"Name <addr>\" or addr)\n"
    "      --to ADDR             recipient (repeatable)\n"
    "      --cc ADDR             copy recipient, shown in the header (repeatable)\n"
    "      --bcc ADDR            blind copy: envelope only (repeatable)\n"
    "      --subject TEXT        subject (UTF-8 is encoded as RFC 2047)\n"
    "      --body TEXT           the body text\n"
    "      --body-file FILE      the body from a file ('-' for standard input)\n"
    "      --attach FILE         attach a file (repeatable; base64)\n"
    "      --header \"Name: value\" extra header field (repeatable)\n"
    "      --starttls            require STARTTLS before sending\n"
    "      --tls                 implicit TLS from the first byte\n"
    "  -k, --insecure            continue even if the certificate does not verify\n"
    "      --cafile FILE         trust the CA certificates in FILE too\n"
    "      --auth USER           log in (password from $SMTPKIT_PASSWORD or a prompt)\n"
    "      --allow-plaintext-auth  allow AUTH without TLS\n"
    "      --bdat                send the message with BDAT if CHUNKING is offered\n"
    "      --helo NAME           name for EHLO (default: this host's name)\n"
    "  -t, --timeout SECS        limit for each step (default 30)\n"
    "      --dns-server IP[:PORT]  DNS server for the MX lookup\n"
    "  -v, --verbose             show the dialogue\n"
    "  -h, --help                this text\n"
    "\n"
    "Exit status: 0 every recipient and the message accepted; 1 a recipient or\n"
    "the message refused permanently (5xx); 2 usage error; 3 could not connect;\n"
    "4 TLS failure; 5 DNS failure (incl. null MX); 6 protocol error; 75 a\n"
    "temporary failure (4xx): try again later.\n";

typedef struct send_opts {
    const char *server, *from, *subject, *body, *body_file, *auth_user, *helo;
    const char *dns_server, *cafile;
    const char *to[MAX_ADDRS], *cc[MAX_ADDRS], *bcc[MAX_ADDRS];
    size_t nto, ncc, nbcc;
    const char *headers[MAX_HEADERS];
    size_t nheaders;
    const char *attach[MAX_ATTACH];
    size_t nattach;
    int port, starttls, tls, insecure, bdat, verbose, plain_auth;
    int timeout_ms;
} send_opts;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smtpkit send: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return SK_EXIT_USAGE;
}

/* Read a whole file (or stdin for "-") up to max bytes. */
static int read_file(const char *path, size_t max, sk_buf *out, char *err, size_t errlen)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    sk_buf_init(out, max);
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            if (fd)
                close(fd);
            return 0;
        }
        if (sk_buf_append(out, tmp, (size_t)n) < 0) {
            snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
            break;
        }
    }
    if (fd)
        close(fd);
    sk_buf_free(out);
    return -1;
}

/* Password from the environment, else asked on the terminal without echo. */
static char *get_password(const char *user)
{
    const char *env = getenv("SMTPKIT_PASSWORD");
    if (env)
        return strdup(env);
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    struct termios old, quiet;
    int have_tc = tcgetattr(fd, &old) == 0;
    if (have_tc) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    char prompt[300];
    int pl = snprintf(prompt, sizeof prompt, "Password for %s: ", user);
    if (pl > 0 && write(fd, prompt, (size_t)pl) < 0) {
        /* nothing to do: the read below still works */
    }
    char buf[512];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            break;
        if (n + 1 < sizeof buf)
            buf[n++] = ch;
    }
    buf[n] = '\0';
    if (have_tc)
        tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) {
        /* the prompt line stays open; harmless */
    }
    close(fd);
    char *p = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return p;
}

static void live_entry(const sk_transcript_entry *e, void *arg)
{
    (void)arg;
    const char *tag = e->dir == SK_DIR_CLIENT ? "C:" : e->dir == SK_DIR_SERVER ? "S:" : " *";
    fprintf(stdout, "%9.1f ms  %s %s\n", e->ms, tag, e->line);
    fflush(stdout);
}

static int class_exit(int code)
{
    if (code >= 400 && code < 500)
        return SK_EXIT_TEMPFAIL;
    return SK_EXIT_REFUSED;
}

static void explain_refusal(int code, const char *text, const char *cmd)
{
    /* Build a reply to look up: only the code matters for the registry. */
    sk_reply r;
    memset(&r, 0, sizeof r);
    r.code = code;
    sk_reply_explanation ex;
    sk_reply_explain(&r, cmd, &ex);
    printf("    %s\n    -> %s [%s]\n", text, ex.meaning ? ex.meaning : "unregistered reply code",
           ex.advice ? ex.advice : "?");
}

/* The whole session with one connected server. Returns the exit status. */
static int session(const send_opts *o, sk_client *c, const char *password, char *err, size_t errlen,
                   const char *body, size_t bodylen, const sk_attachment *att, size_t natt)
{
    sk_reply r;
    if (o->tls && sk_client_tls_handshake(c) < 0)
        goto client_fail;
    if (sk_client_greeting(c, &r) < 0)
        goto client_fail;
    char one[600];
    sk_reply_oneline(&r, one, sizeof one);
    int code = r.code;
    sk_reply_free(&r);
    if (code != 220) {
        snprintf(err, errlen, "%s refuses service: %s", sk_client_peer(c), one);
        sk_client_quit(c);
        return code >= 400 && code < 600 ? class_exit(code) : SK_EXIT_PROTOCOL;
    }
    for (int round = 0; round < 2; round++) {
        if (sk_client_ehlo(c, o->helo, &r) < 0)
            goto client_fail;
        code = r.code;
        sk_reply_oneline(&r, one, sizeof one);
        sk_reply_free(&r);
        if (code != 250) {
            snprintf(err, errlen, "%s refused EHLO/HELO: %s", sk_client_peer(c), one);
            sk_client_quit(c);
            return class_exit(code);
        }
        if (!o->starttls || sk_client_is_tls(c))
            break;
        if (!sk_client_caps(c)->starttls) {
            snprintf(err, errlen, "%s does not offer STARTTLS (--starttls was asked for)",
                     sk_client_peer(c));
            sk_client_quit(c);
            return SK_EXIT_TLS;
        }
        int rc = sk_client_starttls(c, &r);
        sk_reply_free(&r);
        if (rc < 0)
            goto client_fail;
    }
    const sk_caps *caps = sk_client_caps(c);
    if (o->auth_user) {
        if (!sk_client_is_tls(c) && !o->plain_auth) {
            snprintf(err, errlen,
                     "refusing to send a password over an unencrypted connection "
                     "(use --starttls or --tls, or --allow-plaintext-auth)");
            sk_client_quit(c);
            return SK_EXIT_USAGE;
        }
        if (!caps->auth) {
            snprintf(err, errlen, "%s does not offer AUTH on this connection%s", sk_client_peer(c),
                     sk_client_is_tls(c) ? "" : " (perhaps only after STARTTLS)");
            sk_client_quit(c);
            return SK_EXIT_REFUSED;
        }
        int rc = sk_client_auth(c, o->auth_user, password, &r);
        int acode = r.code;
        sk_reply_free(&r);
        if (rc < 0) {
            snprintf(err, errlen, "%s", sk_client_errmsg(c));
            sk_client_err e = sk_client_error(c);
            sk_client_quit(c);
            if (e == SK_CLIENT_ERR_REFUSED)
                return class_exit(acode);
            return sk_client_exit_status(e);
        }
    }

    /* Build the message now that we know what the server offers. */
    sk_message_spec m;
    memset(&m, 0, sizeof m);
    m.from = o->from;
    m.to = o->to;
    m.nto = o->nto;
    m.cc = o->cc;
    m.ncc = o->ncc;
    m.subject = o->subject;
    m.body = body;
    m.bodylen = bodylen;
    m.att = att;
    m.natt = natt;
    m.headers = o->headers;
    m.nheaders = o->nheaders;
    m.allow_8bit = caps->eightbitmime;
    sk_buf msg;
    sk_buf_init(&msg, 0);
    sk_message_info info;
    char merr[300];
    if (sk_message_build(&m, &msg, &info, merr, sizeof merr) < 0) {
        snprintf(err, errlen, "%s", merr);
        sk_buf_free(&msg);
        sk_client_quit(c);
        return SK_EXIT_USAGE;
    }
    if (info.utf8_addr && !caps->smtputf8) {
        snprintf(err, errlen,
                 "%s does not offer SMTPUTF8, which a non-ASCII address needs (RFC 6531)",
                 sk_client_peer(c));
        sk_buf_free(&msg);
        sk_client_quit(c);
        return SK_EXIT_REFUSED;
    }
    char params[128] = "";
    size_t pl = 0;
    if (caps->has_size)
        pl += (size_t)snprintf(params + pl, sizeof params - pl, "SIZE=%zu", msg.len);
    if (info.body_8bit)
        pl += (size_t)snprintf(params + pl, sizeof params - pl, "%sBODY=8BITMIME", pl ? " " : "");
    if (info.utf8_addr)
        pl += (size_t)snprintf(params + pl, sizeof params - pl, "%sSMTPUTF8", pl ? " " : "");
    if (caps->has_size && caps->size && msg.len > caps->size) {
        char h1[32], h2[32];
        sk_format_size(msg.len, h1, sizeof h1);
        sk_format_size(caps->size, h2, sizeof h2);
        printf("note: the message (%s) is larger than the server's SIZE limit (%s)\n", h1, h2);
    }

    /* Envelope recipients: To, Cc, Bcc, each address once. */
    const char *rcpts[3 * MAX_ADDRS];
    char addrbuf[3 * MAX_ADDRS][256];
    size_t nr = 0;
    const char *const *lists[3] = {o->to, o->cc, o->bcc};
    size_t counts[3] = {o->nto, o->ncc, o->nbcc};
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < counts[l]; i++) {
            if (sk_address_extract(lists[l][i], addrbuf[nr], sizeof addrbuf[nr]) < 0)
                continue; /* already validated while parsing options */
            int dup = 0;
            for (size_t k = 0; k < nr; k++)
                if (!strcmp(rcpts[k], addrbuf[nr]))
                    dup = 1;
            if (!dup) {
                rcpts[nr] = addrbuf[nr];
                nr++;
            }
        }
    char from_addr[256];
    sk_address_extract(o->from, from_addr, sizeof from_addr);

    sk_rcpt_result results[3 * MAX_ADDRS];
    sk_txn t;
    memset(&t, 0, sizeof t);
    t.mail_from = from_addr;
    t.mail_params = params[0] ? params : NULL;
    t.rcpts = rcpts;
    t.nrcpts = nr;
    t.msg = msg.data;
    t.msglen = msg.len;
    t.results = results;
    t.use_bdat = o->bdat && caps->chunking;
    if (o->bdat && !caps->chunking)
        printf("note: %s does not offer CHUNKING; sending with DATA\n", sk_client_peer(c));
    int rc = sk_client_transaction(c, &t);
    sk_buf_free(&msg);
    if (rc < 0)
        goto client_fail;
    sk_client_quit(c);

    /* Report. */
    int permanent = 0, temporary = 0;
    printf("Server %s:\n", sk_client_peer(c));
    printf("  MAIL FROM:<%s>  %s\n", from_addr, t.mail_text);
    if (t.mail_code < 200 || t.mail_code >= 300) {
        explain_refusal(t.mail_code, "the sender was refused", "MAIL");
        sk_known_hint_line(stdout, "    ", "MAIL", t.mail_text); /* known_hint.c */
        snprintf(err, errlen, "the server refused the sender: %s", t.mail_text);
        return class_exit(t.mail_code);
    }
    for (size_t i = 0; i < nr; i++) {
        int rcode = results[i].code;
        printf("  RCPT TO:<%s>  %s\n", rcpts[i], rcode ? results[i].text : "(no reply)");
        if (rcode >= 400)
            sk_known_hint_line(stdout, "    ", "RCPT", results[i].text); /* known_hint.c */
        if (rcode >= 500)
            permanent++;
        else if (rcode >= 400 || rcode == 0)
            temporary++;
    }
    if (t.accepted == 0) {
        snprintf(err, errlen, "no recipient was accepted");
        return permanent ? SK_EXIT_REFUSED : SK_EXIT_TEMPFAIL;
    }
    if (t.final_code >= 200 && t.final_code < 300) {
        printf("Message accepted for %zu of %zu recipient%s: %s\n", t.accepted, nr,
               nr == 1 ? "" : "s", t.final_text);
    } else {
        printf("Message refused: %s\n", t.final_text[0] ? t.final_text : "(no reply)");
        const char *final_cmd = t.use_bdat ? "BDAT" : t.data_code == 354 ? "DATA-END" : "DATA";
        explain_refusal(t.final_code, "the message was refused", final_cmd);
        sk_known_hint_line(stdout, "    ", final_cmd, t.final_text); /* known_hint.c */
        snprintf(err, errlen, "the server refused the message: %s", t.final_text);
        return t.final_code ? class_exit(t.final_code) : SK_EXIT_PROTOCOL;
    }
    if (permanent) {
        snprintf(err, errlen, "%d recipient%s refused", permanent, permanent == 1 ? "" : "s");
        return SK_EXIT_REFUSED;
    }
    if (temporary) {
        snprintf(err, errlen, "%d recipient%s deferred (4xx): try again later", temporary,
                 temporary == 1 ? "" : "s");
        return SK_EXIT_TEMPFAIL;
    }
    return SK_EXIT_OK;

client_fail:
    snprintf(err, errlen, "%s", sk_client_errmsg(c));
    {
        int st = sk_client_exit_status(sk_client_error(c));
        sk_client_quit(c);
        return st;
    }
}

static int add_addr(const char **list, size_t *n, const char *a, const char *what)
{
    char tmp[256];
    if (*n >= MAX_ADDRS)
        return usage_error("too many %s addresses", what);
    if (sk_address_extract(a, tmp, sizeof tmp) < 0 || !tmp[0]) {
        fprintf(stderr, "smtpkit send: bad %s address '%s'\n", what, a);
        return SK_EXIT_USAGE;
    }
    list[(*n)++] = a;
    return 0;
}

int sk_cmd_send(int argc, char **argv)
{
    enum {
        O_TO = 256,
        O_CC,
        O_BCC,
        O_SUBJECT,
        O_BODY,
        O_BODYFILE,
        O_ATTACH,
        O_HEADER,
        O_STARTTLS,
        O_TLS,
        O_AUTH,
        O_PLAINAUTH,
        O_BDAT,
        O_HELO,
        O_DNS,
        O_CA
    };
    static const struct option lo[] = {
        {"server", required_argument, 0, 's'},
        {"port", required_argument, 0, 'p'},
        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, O_TO},
        {"cc", required_argument, 0, O_CC},
        {"bcc", required_argument, 0, O_BCC},
        {"subject", required_argument, 0, O_SUBJECT},
        {"body", required_argument, 0, O_BODY},
        {"body-file", required_argument, 0, O_BODYFILE},
        {"attach", required_argument, 0, O_ATTACH},
        {"header", required_argument, 0, O_HEADER},
        {"starttls", no_argument, 0, O_STARTTLS},
        {"tls", no_argument, 0, O_TLS},
        {"insecure", no_argument, 0, 'k'},
        {"cafile", required_argument, 0, O_CA},
        {"auth", required_argument, 0, O_AUTH},
        {"allow-plaintext-auth", no_argument, 0, O_PLAINAUTH},
        {"bdat", no_argument, 0, O_BDAT},
        {"helo", required_argument, 0, O_HELO},
        {"timeout", required_argument, 0, 't'},
        {"dns-server", required_argument, 0, O_DNS},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    send_opts o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = 30000;
    o.port = -1;
    char helo[256];
    if (gethostname(helo, sizeof helo) != 0 || !helo[0])
        snprintf(helo, sizeof helo, "localhost");
    helo[sizeof helo - 1] = '\0';
    o.helo = helo;
    optind = 1;
    opterr = 0;
    int ch, rc;
    while ((ch = getopt_long(argc, argv, ":s:p:f:kt:vh", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            o.server = optarg;
            break;
        case 'p': {
            char h[8], tmp[16];
            int port;
            snprintf(tmp, sizeof tmp, "x:%s", optarg);
            if (strlen(optarg) > 5 || sk_target_parse(tmp, h, sizeof h, &port) < 0 || port < 0)
                return usage_error("bad port '%s' (1-65535)", optarg);
            o.port = port;
            break;
        }
        case 'f':
            o.from = optarg;
            break;
        case O_TO:
            if ((rc = add_addr(o.to, &o.nto, optarg, "--to")))
                return rc;
            break;
        case O_CC:
            if ((rc = add_addr(o.cc, &o.ncc, optarg, "--cc")))
                return rc;
            break;
        case O_BCC:
            if ((rc = add_addr(o.bcc, &o.nbcc, optarg, "--bcc")))
                return rc;
            break;
        case O_SUBJECT:
            o.subject = optarg;
            break;
        case O_BODY:
            o.body = optarg;
            break;
        case O_BODYFILE:
            o.body_file = optarg;
            break;
        case O_ATTACH:
            if (o.nattach >= MAX_ATTACH)
                return usage_error("at most %d attachments", MAX_ATTACH);
            o.attach[o.nattach++] = optarg;
            break;
        case O_HEADER:
            if (o.nheaders >= MAX_HEADERS)
                return usage_error("at most %d --header options", MAX_HEADERS);
            o.headers[o.nheaders++] = optarg;
            break;
        case O_STARTTLS:
            o.starttls = 1;
            break;
        case O_TLS:
            o.tls = 1;
            break;
        case 'k':
            o.insecure = 1;
            break;
        case O_CA:
            o.cafile = optarg;
            break;
        case O_AUTH:
            o.auth_user = optarg;
            break;
        case O_PLAINAUTH:
            o.plain_auth = 1;
            break;
        case O_BDAT:
            o.bdat = 1;
            break;
        case O_HELO:
            o.helo = optarg;
            break;
        case 't': {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v > 0) || v > 3600)
                return usage_error("bad timeout '%s' (seconds, > 0)", optarg);
            o.timeout_ms = (int)(v * 1000.0) > 0 ? (int)(v * 1000.0) : 1;
            break;
        }
        case O_DNS:
            o.dns_server = optarg;
            break;
        case 'v':
            o.verbose = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SK_EXIT_OK;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            fprintf(stderr, "smtpkit send: unknown option '%s'\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return SK_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    char from_addr[256];
    if (!o.from)
        return usage_error("%s", "--from is required");
    if (sk_address_extract(o.from, from_addr, sizeof from_addr) < 0)
        return usage_error("bad --from address '%s'", o.from);
    if (o.nto + o.ncc + o.nbcc == 0)
        return usage_error("%s", "at least one --to, --cc or --bcc is required");
    if (o.body && o.body_file)
        return usage_error("%s", "give --body or --body-file, not both");
    if (o.tls && o.starttls)
        return usage_error("%s", "--tls and --starttls exclude each other");
    for (const char *p = o.helo; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return usage_error("bad --helo name '%s'", o.helo);

    /* Body and attachments. */
    char err[1024] = "";
    sk_buf body;
    sk_buf_init(&body, MAX_FILE);
    sk_buf files[MAX_ATTACH];
    sk_attachment att[MAX_ATTACH];
    size_t nfiles = 0, total = 0;
    int status = SK_EXIT_USAGE;
    char *password = NULL;
    sk_resolver *res = NULL;
    sk_client *c = NULL;
    if (o.body) {
        sk_buf_append_str(&body, o.body);
    } else {
        const char *src = o.body_file ? o.body_file : "-";
        if (!o.body_file && isatty(0))
            fprintf(stderr, "smtpkit send: reading the body from standard input; end with "
                            "Ctrl-D\n");
        if (read_file(src, MAX_FILE, &body, err, sizeof err) < 0)
            goto out;
    }
    total = body.len;
    for (size_t i = 0; i < o.nattach; i++) {
        if (read_file(o.attach[i], MAX_FILE, &files[i], err, sizeof err) < 0)
            goto out;
        nfiles++;
        total += files[i].len;
        if (total > MAX_TOTAL) {
            snprintf(err, sizeof err, "attachments larger than 100 MiB in total");
            goto out;
        }
        const char *base = strrchr(o.attach[i], '/');
        att[i].name = base ? base + 1 : o.attach[i];
        att[i].type = NULL;
        att[i].data = files[i].data ? files[i].data : "";
        att[i].len = files[i].len;
    }
    if (o.auth_user) {
        password = get_password(o.auth_user);
        if (!password) {
            snprintf(err, sizeof err,
                     "no password: set SMTPKIT_PASSWORD or run on a terminal to be asked");
            goto out;
        }
    }

    /* Where to send. */
    char host[256];
    int port = -1;
    sk_addr addrs[SK_ADDRS_MAX];
    size_t na = 0;
    sk_mx_list mx;
    memset(&mx, 0, sizeof mx);
    if (o.server) {
        if (sk_target_parse(o.server, host, sizeof host, &port) < 0) {
            snprintf(err, sizeof err, "bad --server '%s' (expected HOST[:PORT])", o.server);
            goto out;
        }
        mx.n = 1;
        snprintf(mx.hosts[0].name, sizeof mx.hosts[0].name, "%s", host);
    } else {
        char first[256];
        const char *fr = o.nto ? o.to[0] : o.ncc ? o.cc[0] : o.bcc[0];
        sk_address_extract(fr, first, sizeof first);
        const char *dom = strrchr(first, '@');
        res = sk_resolver_new(o.dns_server, 5000, err, sizeof err);
        if (!res)
            goto out;
        sk_dns_status st = sk_mx_resolve(res, dom + 1, SK_MX_SHUFFLE, &mx);
        if (st != SK_DNS_OK) {
            status = SK_EXIT_DNS;
            if (st == SK_DNS_NULLMX)
                snprintf(err, sizeof err, "%s accepts no mail (null MX, RFC 7505)", dom + 1);
            else
                snprintf(err, sizeof err, "MX lookup for %s failed: %s", dom + 1,
                         sk_dns_status_text(st));
            goto out;
        }
    }
    if (port < 0)
        port = o.port > 0 ? o.port : o.tls ? 465 : 25;

    sk_client_opts co = {0};
    co.timeout_ms = o.timeout_ms;
    co.insecure = o.insecure;
    co.cafile = o.cafile;
    c = sk_client_new(&co);
    if (!c) {
        snprintf(err, sizeof err, "out of memory");
        status = SK_EXIT_REFUSED;
        goto out;
    }
    if (o.verbose)
        sk_client_transcript(c)->on_entry = live_entry;
    status = SK_EXIT_CONNECT;
    for (size_t i = 0; i < mx.n; i++) {
        sk_dns_status st;
        if (res && !o.server)
            st = sk_host_resolve(res, mx.hosts[i].name, port, addrs, SK_ADDRS_MAX, &na);
        else if (o.dns_server) {
            res = res ? res : sk_resolver_new(o.dns_server, 5000, err, sizeof err);
            st = res ? sk_host_resolve(res, mx.hosts[i].name, port, addrs, SK_ADDRS_MAX, &na)
                     : SK_DNS_ERROR;
        } else
            st = sk_system_resolve(mx.hosts[i].name, port, addrs, SK_ADDRS_MAX, &na);
        if (st != SK_DNS_OK) {
            snprintf(err, sizeof err, "could not resolve %s: %s", mx.hosts[i].name,
                     sk_dns_status_text(st));
            status = SK_EXIT_DNS;
            continue;
        }
        for (size_t k = 0; k < na; k++) {
            sk_client_clear_error(c);
            if (sk_client_connect_addr(c, (struct sockaddr *)&addrs[k].ss, addrs[k].len,
                                       mx.hosts[i].name) < 0) {
                snprintf(err, sizeof err, "%s", sk_client_errmsg(c));
                status = SK_EXIT_CONNECT;
                continue;
            }
            status = session(&o, c, password, err, sizeof err, body.data ? body.data : "", body.len,
                             att, nfiles);
            goto out;
        }
    }

out:
    if (status != SK_EXIT_OK && err[0])
        fprintf(stderr, "smtpkit send: %s\n", err);
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    for (size_t i = 0; i < nfiles; i++)
        sk_buf_free(&files[i]);
    sk_buf_free(&body);
    sk_client_free(c);
    sk_resolver_free(res);
    return status;
}
