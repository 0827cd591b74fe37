/*
 * cmd_explain.c - `smtpkit explain` (placeholder until implemented).
 */
#include <stdio.h>

#include "cli/commands.h"

int sk_cmd_explain(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "smtpkit explain: not implemented yet\n");
    return 2;
}
