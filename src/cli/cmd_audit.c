/*
 * cmd_audit.c - `smtpkit audit HOST[:PORT]`: runs the conformance checks of
 * src/client/audit_checks.c against a server and reports every place where
 * its replies differ from what the RFCs require (RFC 5321 and the ESMTP
 * extension RFCs), as text, JSON (--json) or a self-contained HTML page
 * (--html FILE). The exit status is the worst failure: 0 clean, 1 SHOULD
 * failures only, 2 a MUST failure, 3 could not connect or no service,
 * 4 TLS could not be established, 5 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "smtpkit/audit.h"
#include "smtpkit/client.h"

#define AUDIT_EXIT_USAGE 5

static const char *usage_text =
    "usage: smtpkit audit [OPTIONS] HOST[:PORT]\n"
    "\n"
    "Checks an SMTP server against the RFC reply tables: every command of RFC 5321\n"
    "4.3.2, the order and syntax rules, the reply grammar, enhanced status codes,\n"
    "the extensions it offers (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN,\n"
    "STARTTLS, AUTH), bare CR/LF in command lines, and whether it relays. Each\n"
    "check runs on its own connection. Nothing is delivered unless --deliver-to\n"
    "is given.\n"
    "\n"
    "  -p, --port N          port (default 25; 465 with --tls)\n"
    "      --tls             implicit TLS from the first byte (port 465)\n"
    "      --starttls        upgrade every connection with STARTTLS first\n"
    "  -t, --timeout SECS    limit for each wait (default 10)\n"
    "      --max-time SECS   limit for the whole run (default 300)\n"
    "      --rate N          at most N new connections per second (default 2)\n"
    "      --helo NAME       name sent with EHLO/HELO (default: this host's name)\n"
    "      --from ADDR       MAIL FROM address (default: the null path <>)\n"
    "      --rcpt ADDR       a recipient the server accepts (default: postmaster)\n"
    "      --relay-to ADDR   a foreign recipient for the relay test\n"
    "                        (default: relay-test@example.net; never followed by DATA)\n"
    "      --deliver-to ADDR also run the checks that deliver test messages to ADDR\n"
    "                        (end of data, SMTP smuggling variants, SIZE while streaming)\n"
    "      --auth USER       also run the checks that need a login; the password\n"
    "                        comes from $SMTPKIT_PASSWORD\n"
    "      --cafile FILE     CA certificates for the TLS checks' report\n"
    "      --max-stream N    largest message streamed for the SIZE test (default 33554432)\n"
    "      --only LIST       run only these checks (comma-separated names)\n"
    "      --list            list the checks and exit\n"
    "      --json            machine-readable report\n"
    "      --html FILE       also write a self-contained HTML report to FILE\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 no MUST or SHOULD failure; 1 SHOULD failures only; 2 a MUST\n"
    "failure; 3 could not connect, no greeting or no service (554); 4 TLS could\n"
    "not be established; 5 usage error.\n";

static int parse_seconds(const char *s, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > max)
        return -1;
    *out = v;
    return 0;
}

static void list_checks(void)
{
    for (size_t i = 0; i < sk_audit_ncheck(); i++) {
        const sk_audit_check *c = sk_audit_check_at(i);
        printf("%-24s %-14s %-28s %s%s\n", c->name, sk_audit_severity_name(c->severity), c->rfc,
               c->title,
               c->needs & SK_AUDIT_NEED_DELIVER ? " [--deliver-to]"
               : c->needs & SK_AUDIT_NEED_AUTH  ? " [--auth]"
                                                : "");
    }
}

static int write_file(const char *path, const sk_buf *b)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t w = fwrite(b->data, 1, b->len, f);
    int rc = fclose(f);
    return w == b->len && rc == 0 ? 0 : -1;
}

int sk_cmd_audit(int argc, char **argv)
{
    enum {
        O_TLS = 256,
        O_STARTTLS,
        O_MAXTIME,
        O_RATE,
        O_HELO,
        O_FROM,
        O_RCPT,
        O_RELAY,
        O_DELIVER,
        O_AUTH,
        O_CA,
        O_STREAM,
        O_ONLY,
        O_LIST,
        O_JSON,
        O_HTML,
    };
    static const struct option lo[] = {
        {"port", required_argument, 0, 'p'},
        {"tls", no_argument, 0, O_TLS},
        {"starttls", no_argument, 0, O_STARTTLS},
        {"timeout", required_argument, 0, 't'},
        {"max-time", required_argument, 0, O_MAXTIME},
        {"rate", required_argument, 0, O_RATE},
        {"helo", required_argument, 0, O_HELO},
        {"from", required_argument, 0, O_FROM},
        {"rcpt", required_argument, 0, O_RCPT},
        {"relay-to", required_argument, 0, O_RELAY},
        {"deliver-to", required_argument, 0, O_DELIVER},
        {"auth", required_argument, 0, O_AUTH},
        {"cafile", required_argument, 0, O_CA},
        {"max-stream", required_argument, 0, O_STREAM},
        {"only", required_argument, 0, O_ONLY},
        {"list", no_argument, 0, O_LIST},
        {"json", no_argument, 0, O_JSON},
        {"html", required_argument, 0, O_HTML},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    sk_audit_opts o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = 10000;
    o.max_seconds = 300;
    o.rate = 2;
    o.from = "";
    o.rcpt = "postmaster";
    o.relay = "relay-test@example.net";
    o.max_stream = 32ULL * 1024 * 1024;
    char helo[256];
    if (gethostname(helo, sizeof helo) != 0 || !helo[0])
        snprintf(helo, sizeof helo, "localhost");
    helo[sizeof helo - 1] = '\0';
    o.helo = helo;
    int port = -1, json = 0;
    const char *html = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":p:t:h", lo, NULL)) != -1) {
        double v;
        switch (ch) {
        case 'p': {
            char h[8], tmp[16];
            if (strlen(optarg) > 5)
                goto bad_port;
            snprintf(tmp, sizeof tmp, "x:%s", optarg);
            if (sk_target_parse(tmp, h, sizeof h, &port) < 0 || port < 0)
                goto bad_port;
            break;
        bad_port:
            fprintf(stderr, "smtpkit audit: bad port '%s' (1-65535)\n", optarg);
            return AUDIT_EXIT_USAGE;
        }
        case O_TLS:
            o.tls = SK_AUDIT_TLS_IMPLICIT;
            break;
        case O_STARTTLS:
            o.tls = SK_AUDIT_TLS_STARTTLS;
            break;
        case 't':
            if (parse_seconds(optarg, 3600, &v) < 0) {
                fprintf(stderr, "smtpkit audit: bad timeout '%s' (seconds, > 0)\n", optarg);
                return AUDIT_EXIT_USAGE;
            }
            o.timeout_ms = (int)(v * 1000.0) > 0 ? (int)(v * 1000.0) : 1;
            break;
        case O_MAXTIME:
            if (parse_seconds(optarg, 86400, &o.max_seconds) < 0) {
                fprintf(stderr, "smtpkit audit: bad --max-time '%s' (seconds, > 0)\n", optarg);
                return AUDIT_EXIT_USAGE;
            }
            break;
        case O_RATE:
            if (parse_seconds(optarg, 1000, &o.rate) < 0) {
                fprintf(stderr, "smtpkit audit: bad --rate '%s' (connections per second, 0-1000)\n",
                        optarg);
                return AUDIT_EXIT_USAGE;
            }
            break;
        case O_HELO:
            o.helo = optarg;
            break;
        case O_FROM:
            o.from = optarg;
            break;
        case O_RCPT:
            o.rcpt = optarg;
            break;
        case O_RELAY:
            o.relay = optarg;
            break;
        case O_DELIVER:
            o.deliver_to = optarg;
            break;
        case O_AUTH:
            o.auth_user = optarg;
            break;
        case O_CA:
            o.cafile = optarg;
            break;
        case O_STREAM: {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "smtpkit audit: bad --max-stream '%s' (octets)\n", optarg);
                return AUDIT_EXIT_USAGE;
            }
            o.max_stream = n;
            break;
        }
        case O_ONLY:
            o.only = optarg;
            break;
        case O_LIST:
            list_checks();
            return 0;
        case O_JSON:
            json = 1;
            break;
        case O_HTML:
            html = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            fprintf(stderr, "smtpkit audit: option '%s' needs a value\n", argv[optind - 1]);
            return AUDIT_EXIT_USAGE;
        default:
            fprintf(stderr, "smtpkit audit: unknown option '%s'\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return AUDIT_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "smtpkit audit: give exactly one HOST[:PORT]\n");
        fputs(usage_text, stderr);
        return AUDIT_EXIT_USAGE;
    }
    const char *fields[] = {o.helo, o.from, o.rcpt, o.relay, o.deliver_to, o.auth_user};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (const char *p = fields[i]; p && *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
                fprintf(stderr,
                        "smtpkit audit: spaces, controls and <> are not allowed in "
                        "names and addresses ('%s')\n",
                        fields[i]);
                return AUDIT_EXIT_USAGE;
            }
    if (o.auth_user) {
        o.auth_pass = getenv("SMTPKIT_PASSWORD");
        if (!o.auth_pass) {
            fprintf(stderr, "smtpkit audit: --auth needs the password in $SMTPKIT_PASSWORD\n");
            return AUDIT_EXIT_USAGE;
        }
    }
    char host[256];
    int tport;
    if (sk_target_parse(argv[optind], host, sizeof host, &tport) < 0) {
        fprintf(stderr, "smtpkit audit: bad target '%s' (expected HOST[:PORT])\n", argv[optind]);
        return AUDIT_EXIT_USAGE;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d",
             tport > 0                        ? tport
             : port > 0                       ? port
             : o.tls == SK_AUDIT_TLS_IMPLICIT ? 465
                                              : 25);
    o.host = host;
    o.port = portstr;

    sk_audit_report rep;
    if (sk_audit_run(&o, &rep) < 0) {
        fprintf(stderr, "smtpkit audit: %s\n", rep.error);
        sk_audit_report_free(&rep);
        return AUDIT_EXIT_USAGE;
    }
    int status = sk_audit_exit_status(&rep);
    sk_buf out;
    sk_buf_init(&out, 0);
    int rc = json ? sk_audit_write_json(&rep, &out) : sk_audit_write_text(&rep, &out);
    if (rc == 0)
        fwrite(out.data, 1, out.len, stdout);
    if (html) {
        sk_buf_clear(&out);
        if (sk_audit_write_html(&rep, 0, &out) < 0 || write_file(html, &out) < 0) {
            fprintf(stderr, "smtpkit audit: cannot write %s: %s\n", html, strerror(errno));
            if (status < 3)
                status = AUDIT_EXIT_USAGE;
        }
    }
    if (rep.could_not_run)
        fprintf(stderr, "smtpkit audit: could not run: %s\n", rep.error);
    sk_buf_free(&out);
    sk_audit_report_free(&rep);
    return status;
}
