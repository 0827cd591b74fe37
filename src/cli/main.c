/*
 * main.c - `smtpkit`: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"serve", sk_cmd_serve, "run the ESMTP server"},
    {"explain", sk_cmd_explain, "explain a reply code, enhanced code or pasted reply"},
    {"probe", sk_cmd_probe, "check a server or domain and explain its replies"},
    {"send", sk_cmd_send, "send a test message"},
    {"audit", sk_cmd_audit, "check a server's replies against the RFCs (conformance report)"},
    {"web", sk_cmd_web, "the online SMTP checker as a local web page"},
    {"bench", sk_cmd_bench, "load-test a server: concurrent sessions, msgs/s, latency"},
    {"passwd", sk_cmd_passwd, "make a password hash for the AUTH password file"},
    {"queue", sk_cmd_queue, "list, show, flush, hold, release, delete, bounce queued mail"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: smtpkit COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`smtpkit COMMAND --help` describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("smtpkit %s\n", SMTPKIT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "smtpkit: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
