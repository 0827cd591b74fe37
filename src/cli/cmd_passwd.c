/*
 * cmd_passwd.c - `smtpkit passwd`: make a password hash (yescrypt,
 * SHA-512-crypt or Argon2id) for the AUTH password file, as a whole
 * Dovecot passwd-file line (server/passwd.h) that serves as Dovecot's
 * passdb and userdb too. The password is read twice from the terminal
 * without echo, or once from standard input with --stdin; it is never put
 * on the command line, where other users could see it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/commands.h"
#include "server/passwd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: smtpkit passwd [--scheme yescrypt|sha512-crypt|argon2id] [--cost N] "
            "[--stdin]\n"
            "                      [--uid UID] [--gid GID] [--home DIR] [--extra K=V]... "
            "[USER]\n"
            "\n"
            "Reads a password (twice, without echo, from the terminal; or one line from\n"
            "standard input with --stdin) and prints its hash. With USER, a whole Dovecot\n"
            "passwd-file line, USER:{SCHEME}HASH:UID:GID::HOME::EXTRA, ready to append to\n"
            "the file smtpkit (passwd_file) and Dovecot (passdb and userdb) both read;\n"
            "else just HASH.\n"
            "\n"
            "  --scheme S  yescrypt (default), sha512-crypt or argon2id\n"
            "  --cost N    yescrypt cost 1-11 (default 5), SHA-512-crypt rounds\n"
            "              1000-999999999 (default %lu), or Argon2id passes 1-100 (default 3)\n"
            "  --stdin     read the password from standard input\n"
            "  --uid UID   --gid GID   --home DIR   userdb fields for Dovecot (virtual users)\n"
            "  --extra K=V an extra field such as userdb_quota_rule=*:storage=1G (repeatable)\n",
            SK_PASSWD_SHA512_ROUNDS_DEFAULT);
}

/* Terminal state, restored on exit and on the signals that end us. */
static int tty_fd = -1;
static struct termios tty_saved;
static volatile sig_atomic_t tty_changed;

static void restore_tty(void)
{
    if (tty_changed) {
        tcsetattr(tty_fd, TCSANOW, &tty_saved);
        tty_changed = 0;
    }
}

/* Echo off for both prompts, before the first one is shown: a password
 * typed (or pasted) the moment the prompt appears is never echoed. Input
 * typed earlier than that is discarded (TCSAFLUSH), as getpass(3) does. */
static int tty_noecho(void)
{
    if (tcgetattr(tty_fd, &tty_saved) != 0)
        return -1;
    struct termios t = tty_saved;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_lflag |= ICANON;
    tty_changed = 1;
    if (tcsetattr(tty_fd, TCSAFLUSH, &t) != 0) {
        tty_changed = 0;
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    restore_tty();
    if (tty_fd >= 0) {
        ssize_t w = write(tty_fd, "\n", 1);
        (void)w;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Read one line (without its newline) of at most max bytes from fd, one
 * byte at a time so nothing after the newline is consumed. Returns the
 * length, -1 on EOF before any byte / read error, -2 when too long. */
static ssize_t read_line(int fd, char *buf, size_t max)
{
    size_t n = 0;
    int too_long = 0, any = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        any = 1;
        if (c == '\n')
            break;
        if (n < max)
            buf[n++] = c;
        else
            too_long = 1;
    }
    if (!any)
        return -1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return too_long ? -2 : (ssize_t)n;
}

/* Show the prompt and read one line (echo is already off). 0, -1 or -2
 * (too long). */
static int prompt_password(const char *prompt, char *buf, size_t max)
{
    if (write(tty_fd, prompt, strlen(prompt)) < 0)
        return -1;
    ssize_t n = read_line(tty_fd, buf, max);
    ssize_t w = write(tty_fd, "\n", 1);
    (void)w;
    return n < 0 ? (int)n : 0;
}

static int valid_user(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > SK_PASSWD_USER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c == 0x7f || c == ':')
            return 0;
    }
    return 1;
}

static int all_digits(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* A field of a passwd-file line: no control characters; no ':' before the
 * last field (the separator); no space in an extra field (spaces separate
 * them there, and ':' may appear, as in userdb_quota_rule=*:storage=1G). */
static int valid_field(const char *s, int extra_field)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || (!extra_field && c == ':') || (extra_field && c == ' '))
            return 0;
    }
    return 1;
}

int sk_cmd_passwd(int argc, char **argv)
{
    static const struct option opts[] = {
        {"scheme", required_argument, NULL, 's'},
        {"cost", required_argument, NULL, 'c'},
        {"stdin", no_argument, NULL, 'i'},
        {"uid", required_argument, NULL, 'U'},
        {"gid", required_argument, NULL, 'G'},
        {"home", required_argument, NULL, 'H'},
        {"extra", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sk_passwd_scheme scheme = SK_PASSWD_YESCRYPT;
    unsigned long cost = 0;
    int from_stdin = 0;
    const char *uid = "", *gid = "", *home = "";
    char extra[1024] = "";
    size_t extra_len = 0;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "s:c:ih", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            if (sk_passwd_scheme_parse(optarg, &scheme) < 0) {
                fprintf(stderr,
                        "smtpkit passwd: unknown scheme '%s' (yescrypt, sha512-crypt, argon2id)\n",
                        optarg);
                return 2;
            }
            break;
        case 'c': {
            char *end;
            errno = 0;
            cost = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "smtpkit passwd: --cost needs a number, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'i':
            from_stdin = 1;
            break;
        case 'U':
        case 'G':
            if (!all_digits(optarg)) {
                fprintf(stderr, "smtpkit passwd: --%s needs a number, not '%s'\n",
                        o == 'U' ? "uid" : "gid", optarg);
                return 2;
            }
            *(o == 'U' ? &uid : &gid) = optarg;
            break;
        case 'H':
            if (optarg[0] != '/' || !valid_field(optarg, 0)) {
                fprintf(stderr, "smtpkit passwd: --home must be an absolute path without ':' or "
                                "control characters\n");
                return 2;
            }
            home = optarg;
            break;
        case 'E': {
            const char *eq = strchr(optarg, '=');
            size_t l = strlen(optarg);
            if (!eq || eq == optarg || !valid_field(optarg, 1) ||
                extra_len + l + 2 > sizeof extra) {
                fprintf(stderr, "smtpkit passwd: --extra needs KEY=VALUE without spaces or control "
                                "characters\n");
                return 2;
            }
            if (extra_len)
                extra[extra_len++] = ' ';
            memcpy(extra + extra_len, optarg, l + 1);
            extra_len += l;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return 2;
    }
    const char *user = optind < argc ? argv[optind] : NULL;
    if (user && !valid_user(user)) {
        fprintf(stderr,
                "smtpkit passwd: user name must be 1-%d bytes without spaces, ':' or control "
                "characters\n",
                SK_PASSWD_USER_MAX);
        return 2;
    }

    char pw1[SK_PASSWD_PASSWORD_MAX + 1], pw2[SK_PASSWD_PASSWORD_MAX + 1];
    int rc = 1;
    if (from_stdin) {
        ssize_t n = read_line(STDIN_FILENO, pw1, SK_PASSWD_PASSWORD_MAX);
        if (n == -1) {
            fprintf(stderr, "smtpkit passwd: no password on standard input\n");
            goto out;
        }
        if (n == -2) {
            fprintf(stderr, "smtpkit passwd: password longer than %d bytes\n",
                    SK_PASSWD_PASSWORD_MAX);
            goto out;
        }
    } else {
        tty_fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (tty_fd < 0) {
            fprintf(stderr,
                    "smtpkit passwd: no terminal to read the password from (%s); use "
                    "--stdin\n",
                    strerror(errno));
            goto out;
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            sigaction(sigs[i], &sa, NULL);
        if (tty_noecho() != 0) {
            fprintf(stderr, "smtpkit passwd: cannot turn off echo on the terminal: %s\n",
                    strerror(errno));
            goto out;
        }
        int r1 = prompt_password("Password: ", pw1, SK_PASSWD_PASSWORD_MAX);
        int r2 = r1 == 0 ? prompt_password("Retype password: ", pw2, SK_PASSWD_PASSWORD_MAX) : r1;
        if (r1 == -2 || r2 == -2) {
            fprintf(stderr, "smtpkit passwd: password longer than %d bytes\n",
                    SK_PASSWD_PASSWORD_MAX);
            goto out;
        }
        if (r1 < 0 || r2 < 0) {
            fprintf(stderr, "smtpkit passwd: cannot read the password from the terminal\n");
            goto out;
        }
        if (strcmp(pw1, pw2) != 0) {
            fprintf(stderr, "smtpkit passwd: the passwords do not match\n");
            goto out;
        }
    }
    if (strlen(pw1) == 0) {
        fprintf(stderr, "smtpkit passwd: empty password refused\n");
        goto out;
    }
    char hash[512], err[256];
    if (sk_passwd_hash(scheme, cost, pw1, hash, sizeof hash, err, sizeof err) < 0) {
        fprintf(stderr, "smtpkit passwd: %s\n", err);
        goto out;
    }
    if (user)
        /* user:password:uid:gid:gecos:home:shell:extra_fields */
        printf("%s:%s%s:%s:%s::%s::%s\n", user, sk_passwd_scheme_prefix(scheme), hash, uid, gid,
               home, extra);
    else
        /* An Argon2 string is recognised only by its prefix (crypt(3) does
         * not know it), so it keeps it; crypt(3) strings stand alone. */
        printf("%s%s\n", scheme == SK_PASSWD_ARGON2ID ? sk_passwd_scheme_prefix(scheme) : "", hash);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    explicit_bzero(pw1, sizeof pw1);
    explicit_bzero(pw2, sizeof pw2);
    restore_tty();
    if (tty_fd >= 0)
        close(tty_fd);
    tty_fd = -1;
    return rc;
}
