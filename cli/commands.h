/* commands.h — the subcommands of the rusty CLI. Each takes argv starting at
 * the subcommand name and returns the process exit code. */
#ifndef RUSTY_CLI_COMMANDS_H
#define RUSTY_CLI_COMMANDS_H

typedef int (*cli_command_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    cli_command_fn run;
    const char *summary;
} cli_command;

/* The table, terminated by a {NULL} entry (defined in main.c). */
extern const cli_command cli_commands[];

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);

#endif
