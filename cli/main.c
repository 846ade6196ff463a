/* main.c — `rusty <subcommand> [options]`: dispatch, --help and --version. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "backend/cuda/cuda_backend.h"
#include "core/cpu.h"

const cli_command cli_commands[] = {
    {"run", cmd_run, "complete a prompt (no model: the built-in random-weight demo)"},
    {"chat", cmd_chat, "interactive chat with the model's chat template"},
    {"bench", cmd_bench, "prompt and generation speed, llama-bench style, with roofline"},
    {"perplexity", cmd_perplexity, "perplexity of a text file, as llama-perplexity computes it"},
    {"quantize", cmd_quantize, "write a model as GGUF in another type (also converts HF folders)"},
    {"info", cmd_info, "describe a model file: architecture, shapes, vocabulary, tensors"},
    {"tokenize", cmd_tokenize, "text to token ids with a model's vocabulary"},
    {"detokenize", cmd_detokenize, "token ids back to text"},
    {NULL, NULL, NULL},
};

static void print_help(FILE *f) {
    fprintf(f, "rusty %s — run, convert and train LLMs (GGUF, safetensors) on CPU and CUDA\n\n",
            RUSTY_VERSION);
    fprintf(f, "usage: rusty <command> [options]\n       rusty <command> --help\n\ncommands:\n");
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fprintf(f, "\noptions:\n  -h, --help     this help\n  --version      version, backends and CPU "
               "features\n");
}

static void print_version(void) {
    rs_cpu_info cpu;
    rs_cpu_detect(&cpu);
    printf("rusty %s\n", RUSTY_VERSION);
    printf("backends: cpu%s\n", rs_cuda_compiled() ? ", cuda (librusty_cuda.so)" : "");
    printf("cpu: %s (%d logical, %d physical cores)\n", rs_simd_level_name(rs_cpu_simd_level()),
           cpu.n_logical, cpu.n_physical);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (cli_is(cmd, "-h", "--help")) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        print_version();
        return 0;
    }
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, cmd) == 0) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "rusty: unknown command '%s'\nTry 'rusty --help'.\n", cmd);
    return 1;
}
