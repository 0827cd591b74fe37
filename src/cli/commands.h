/*
 * commands.h - the subcommands of the `smtpkit` program.
 * Each takes the arguments after its name (argv[0] is the subcommand name)
 * and returns the process exit status.
 */
#ifndef SMTPKIT_CLI_COMMANDS_H
#define SMTPKIT_CLI_COMMANDS_H

int sk_cmd_serve(int argc, char **argv);
int sk_cmd_explain(int argc, char **argv);
int sk_cmd_probe(int argc, char **argv);
int sk_cmd_send(int argc, char **argv);
int sk_cmd_bench(int argc, char **argv);
int sk_cmd_passwd(int argc, char **argv);
int sk_cmd_audit(int argc, char **argv);
int sk_cmd_web(int argc, char **argv);
int sk_cmd_queue(int argc, char **argv);

#endif
