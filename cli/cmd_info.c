/* cmd_info.c — `rusty info MODEL`: what a model file holds, for people and scripts.
 *
 * Works from the metadata and tensor table alone, so it also describes files
 * Rusty cannot run (vocabulary-only GGUFs, other architectures). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "info_format.h"
#include "io/model_file.h"

static const char *const info_usage =
    "usage: rusty info MODEL [--json] [--tensors] [--meta]\n"
    "\n"
    "Describes a model: a .gguf file or a Hugging Face folder (config.json + *.safetensors).\n"
    "\n"
    "  --json      machine-readable output (one JSON object)\n"
    "  --tensors   list every tensor: name, type, shape, offset\n"
    "  --meta      dump all metadata (long arrays abbreviated)\n"
    "  -h, --help  this help\n";

typedef struct info_opts {
    const char *path;
    bool json, tensors, meta;
} info_opts;

static int parse(int argc, char **argv, info_opts *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is(a, NULL, "--json"))
            o->json = true;
        else if (cli_is(a, NULL, "--tensors"))
            o->tensors = true;
        else if (cli_is(a, NULL, "--meta"))
            o->meta = true;
        else if (cli_is(a, "-m", "--model") && i + 1 < argc && !o->path)
            o->path = argv[++i];
        else if (a[0] == '-' && a[1])
            return cli_usage_error("info", "unknown option '%s'", a);
        else if (!o->path)
            o->path = a;
        else
            return cli_usage_error("info", "more than one model given ('%s' and '%s')", o->path, a);
    }
    if (!o->path) return cli_usage_error("info", "no model given");
    return 0;
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(info_usage, stdout);
        return 0;
    }
    info_opts o;
    if (parse(argc, argv, &o)) return 1;
    rs_model_file mf;
    rs_error err = {0};
    if (rs_model_file_open(&mf, o.path, &err) != RS_OK) {
        fprintf(stderr, "rusty info: %s\n", err.msg);
        return 1;
    }
    info_summary sum;
    info_summarize(&mf, o.path, &sum);
    int rc = 0;
    if (o.json) {
        cJSON *root = info_to_json(&mf, &sum, o.tensors, o.meta);
        char *text = root ? cJSON_PrintUnformatted(root) : NULL;
        if (text) {
            puts(text);
        } else {
            fprintf(stderr, "rusty info: out of memory formatting JSON\n");
            rc = 1;
        }
        free(text);
        cJSON_Delete(root);
    } else {
        info_print_summary(stdout, &mf, &sum);
        if (o.meta) info_print_meta(stdout, mf.meta);
        if (o.tensors) info_print_tensors(stdout, &mf);
    }
    rs_model_file_close(&mf);
    return rc;
}
