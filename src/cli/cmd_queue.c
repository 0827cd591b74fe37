/*
 * cmd_queue.c - `smtpkit queue -c FILE COMMAND`: look at and act on the
 * outbound queue under `relay_queue` (smtpkit-queue(1); RFC 5321 6.1: a
 * queued message is delivered or reported, and the operator may decide
 * which). The records on disk are the truth: list and show read them;
 * hold, release and delete change them under the queue lock and then tell
 * a running server to re-read them; flush and bounce need the server's
 * delivery agent and go through its control socket (queue/control_line.h).
 * Design: docs/ARCHITECTURE.md, "Operating the queue".
 *
 * Started as root, it becomes the configured `user` before it touches the
 * queue, so it never leaves a root-owned file there.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/queue_cli.h"
#include "queue/control_line.h"
#include "queue/control_socket.h"
#include "server/runas.h"
#include "smtpkit/config.h"

#define DEFAULT_CONFIG "/etc/smtpkit/smtpkit.conf"

static void usage(FILE *f)
{
    fprintf(f, "usage: smtpkit queue [-c FILE] COMMAND [ARG]\n"
               "\n"
               "Looks at and acts on the outbound queue (relay_queue in FILE), also while\n"
               "the server runs.\n"
               "\n"
               "  list [--json]        every message: id, age, size, sender, and each\n"
               "                       recipient with its state and last reply\n"
               "  show ID [--json]     one message's envelope in full and its headers\n"
               "  flush [ID|DOMAIN]    try now: one message, the messages with a recipient\n"
               "                       at DOMAIN (it has a dot), or all (needs the server)\n"
               "  hold ID              stop delivering ID until released\n"
               "  release ID           deliver ID again, now\n"
               "  delete ID            remove ID from the queue, telling no one\n"
               "  bounce ID            give up on ID: its sender gets a bounce (needs the\n"
               "                       server)\n"
               "\n"
               "  -c, --config FILE    configuration file (default " DEFAULT_CONFIG ")\n"
               "      --json           machine-readable output (list, show)\n"
               "  -h, --help           this text\n"
               "\n"
               "Exit status: 0 done, 1 error (or the server refused), 2 usage or malformed\n"
               "id, 3 no such message, 4 the server is not running (flush, bounce).\n"
               "See smtpkit-queue(1).\n");
}

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Say why on stderr; returns status. */
static int fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("smtpkit queue: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* Send a request line to the server; prints what happened. An exit
 * status; *running set to 0 when no server listens. */
static int ask_server(const char *root, const sk_control_cmd *c, int *running)
{
    char line[SK_CONTROL_LINE_MAX + 1], reply[SK_CONTROL_LINE_MAX + 64];
    *running = 1;
    if (sk_control_format(c, line, sizeof line) < 0)
        return fail(SK_QUEUE_EXIT_USAGE, "%s: not a valid argument", c->arg);
    int r = sk_control_request(root, line, reply, sizeof reply, SK_CONTROL_TIMEOUT_MS);
    if (r == -1) {
        *running = 0;
        return SK_QUEUE_EXIT_NO_SERVER;
    }
    if (r == -2)
        return fail(SK_QUEUE_EXIT_ERROR, "%s", reply);
    if (r == 0)
        return fail(SK_QUEUE_EXIT_ERROR, "the server refused: %s", reply);
    printf("%s\n", reply);
    return SK_QUEUE_EXIT_OK;
}

/* After hold/release/delete changed the files: let a running server's
 * agent re-read the record. The change is made either way. */
static void kick(const char *root, const char *id)
{
    sk_control_cmd c = {.verb = SK_CONTROL_KICK};
    snprintf(c.arg, sizeof c.arg, "%s", id);
    char line[SK_CONTROL_LINE_MAX + 1], reply[SK_CONTROL_LINE_MAX + 64];
    if (sk_control_format(&c, line, sizeof line) < 0)
        return;
    int r = sk_control_request(root, line, reply, sizeof reply, SK_CONTROL_TIMEOUT_MS);
    if (r == -1)
        printf("(the server is not running: it reads the record when it starts)\n");
    else if (r != 1)
        fprintf(stderr,
                "smtpkit queue: warning: the record is changed, but the server was not told: "
                "%s\n",
                reply);
}

static int check_id(const char *cmd, const char *id)
{
    if (!id)
        return fail(SK_QUEUE_EXIT_USAGE, "%s needs a queue id", cmd);
    if (!sk_queue_id_valid(id))
        return fail(SK_QUEUE_EXIT_USAGE,
                    "'%s' is not a queue id (1-31 letters and digits, as in `list`)", id);
    return SK_QUEUE_EXIT_OK;
}

/* Whether env/<id> exists: the message is queued. */
static int queued(sk_queue_dir *q, const char *id)
{
    struct stat sb;
    return fstatat(sk_queue_dir_env_fd(q), id, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

static int do_flush(sk_queue_dir *q, const char *root, const char *target)
{
    const char *id = NULL, *domain = NULL;
    if (target && strchr(target, '.')) {
        if (!sk_control_domain_valid(target))
            return fail(SK_QUEUE_EXIT_USAGE, "'%s' is not a domain", target);
        domain = target;
    } else if (target) {
        int rc = check_id("flush", target);
        if (rc)
            return rc;
        if (!queued(q, target))
            return fail(SK_QUEUE_EXIT_NO_MESSAGE, "%s: no such message in the queue", target);
        id = target;
    }
    int p = sk_control_probe(root);
    if (p == 0)
        return fail(SK_QUEUE_EXIT_NO_SERVER,
                    "flush needs the running server (its delivery agent), and none answers on "
                    "%s/" SK_CONTROL_SOCKET_NAME,
                    root);
    /* Due now in the records first, so the agent finds them due whatever
     * it had scheduled. */
    char msg[512];
    unsigned changed = 0;
    int rc = sk_queue_make_due(q, id, domain, time(NULL), &changed, msg, sizeof msg);
    if (rc != SK_QUEUE_EXIT_OK)
        return fail(rc, "%s", msg);
    sk_control_cmd c = {.verb = SK_CONTROL_FLUSH};
    snprintf(c.arg, sizeof c.arg, "%s", target ? target : "");
    int running;
    rc = ask_server(root, &c, &running);
    if (!running)
        return fail(SK_QUEUE_EXIT_NO_SERVER, "the server stopped: flush needs it running");
    return rc;
}

static int do_bounce(sk_queue_dir *q, const char *root, const char *id)
{
    if (!queued(q, id))
        return fail(SK_QUEUE_EXIT_NO_MESSAGE, "%s: no such message in the queue", id);
    sk_control_cmd c = {.verb = SK_CONTROL_BOUNCE};
    snprintf(c.arg, sizeof c.arg, "%s", id);
    int running;
    int rc = ask_server(root, &c, &running);
    if (!running)
        return fail(SK_QUEUE_EXIT_NO_SERVER,
                    "bounce needs the running server (its delivery agent writes the bounce), "
                    "and none answers on %s/" SK_CONTROL_SOCKET_NAME,
                    root);
    return rc;
}

/* Open the existing queue (never create one: a typo in the file must not
 * make an empty queue somewhere). */
static sk_queue_dir *open_queue(const char *root, int *status)
{
    struct stat sb;
    char env[4096];
    snprintf(env, sizeof env, "%s/env", root);
    int e = 0;
    if (stat(root, &sb) != 0 || stat(env, &sb) != 0)
        e = errno;
    else if (!S_ISDIR(sb.st_mode))
        e = ENOTDIR;
    if (e == ENOENT) {
        *status = fail(SK_QUEUE_EXIT_ERROR,
                       "no queue at %s: it does not exist (the server creates it at start)", root);
        return NULL;
    }
    if (e) {
        *status = fail(SK_QUEUE_EXIT_ERROR, "no queue at %s: %s", root, strerror(e));
        return NULL;
    }
    char err[512];
    sk_queue_dir *q = sk_queue_dir_open(root, err, sizeof err);
    if (!q)
        *status = fail(SK_QUEUE_EXIT_ERROR, "%s", err);
    return q;
}

int sk_cmd_queue(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *conf = DEFAULT_CONFIG;
    int json = 0, ch;
    while ((ch = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return SK_QUEUE_EXIT_OK;
        default:
            usage(stderr);
            return SK_QUEUE_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return SK_QUEUE_EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    static const char *const cmds[] = {"list",    "show",   "flush", "hold",
                                       "release", "delete", "bounce"};
    int known = 0;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(cmd, cmds[i]);
    if (!known) {
        fprintf(stderr, "smtpkit queue: unknown command '%s'\n", cmd);
        usage(stderr);
        return SK_QUEUE_EXIT_USAGE;
    }
    int takes_arg = strcmp(cmd, "list") != 0;
    if (optind + (takes_arg ? 2 : 1) < argc)
        return fail(SK_QUEUE_EXIT_USAGE, "%s: too many arguments", cmd);
    if (json && strcmp(cmd, "list") && strcmp(cmd, "show"))
        return fail(SK_QUEUE_EXIT_USAGE, "--json is for list and show, not %s", cmd);
    if (takes_arg && strcmp(cmd, "flush")) {
        int rc = check_id(cmd, arg);
        if (rc)
            return rc;
    }

    char err[1024];
    sk_config *cfg = sk_config_load(conf, err, sizeof err);
    if (!cfg)
        return fail(SK_QUEUE_EXIT_ERROR, "%s", err);
    int status = SK_QUEUE_EXIT_ERROR;
    sk_queue_dir *q = NULL;
    if (!cfg->relay_queue) {
        fail(SK_QUEUE_EXIT_ERROR, "%s sets no relay_queue: there is no outbound queue", cfg->path);
        goto out;
    }
    /* As the server's user from here on (a no-op unless root). */
    sk_runas ra;
    if (sk_runas_resolve(cfg->user, &ra, err, sizeof err) != 0 ||
        sk_runas_drop(&ra, err, sizeof err) != 0) {
        fail(SK_QUEUE_EXIT_ERROR, "%s: %s", cfg->path, err);
        goto out;
    }
    const char *root = cfg->relay_queue;
    if (!(q = open_queue(root, &status)))
        goto out;
    time_t now = time(NULL);
    char msg[1024];
    if (!strcmp(cmd, "list")) {
        status = sk_queue_list(q, json, now, stdout);
    } else if (!strcmp(cmd, "show")) {
        status = sk_queue_show(q, arg, json, now, stdout);
    } else if (!strcmp(cmd, "flush")) {
        status = do_flush(q, root, arg);
    } else if (!strcmp(cmd, "bounce")) {
        status = do_bounce(q, root, arg);
    } else {
        if (!strcmp(cmd, "hold"))
            status = sk_queue_hold(q, arg, msg, sizeof msg);
        else if (!strcmp(cmd, "release"))
            status = sk_queue_release(q, arg, now, msg, sizeof msg);
        else
            status = sk_queue_delete(q, arg, msg, sizeof msg);
        if (status == SK_QUEUE_EXIT_OK) {
            printf("%s\n", msg);
            kick(root, arg);
        } else {
            fail(status, "%s", msg);
        }
    }
out:
    if (fflush(stdout) != 0 && status == SK_QUEUE_EXIT_OK)
        status = SK_QUEUE_EXIT_ERROR;
    sk_queue_dir_close(q);
    sk_config_free(cfg);
    return status;
}
