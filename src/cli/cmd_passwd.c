/*
 * cmd_passwd.c - `smtpkit passwd` (placeholder until implemented).
 */
#include <stdio.h>

#include "cli/commands.h"

int sk_cmd_passwd(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "smtpkit passwd: not implemented yet\n");
    return 2;
}
