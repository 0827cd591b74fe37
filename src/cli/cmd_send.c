/*
 * cmd_send.c - `smtpkit send` (placeholder until implemented).
 */
#include <stdio.h>

#include "cli/commands.h"

int sk_cmd_send(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "smtpkit send: not implemented yet\n");
    return 2;
}
