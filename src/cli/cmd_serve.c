/*
 * cmd_serve.c - `smtpkit serve` (placeholder until implemented).
 */
#include <stdio.h>

#include "cli/commands.h"

int sk_cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "smtpkit serve: not implemented yet\n");
    return 2;
}
