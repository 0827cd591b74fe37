/*
 * cmd_probe.c - `smtpkit probe` (placeholder until implemented).
 */
#include <stdio.h>

#include "cli/commands.h"

int sk_cmd_probe(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "smtpkit probe: not implemented yet\n");
    return 2;
}
