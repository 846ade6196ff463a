/* info_format.h — summarising and printing a model file for `rusty info`. */
#ifndef RUSTY_CLI_INFO_FORMAT_H
#define RUSTY_CLI_INFO_FORMAT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dtype/dtype.h"
#include "io/model_file.h"

typedef struct info_type_stat {
    uint64_t count, bytes, elements;
} info_type_stat;

typedef struct info_summary {
    const char *path;
    char arch[64];
    char name[128];
    uint64_t n_params;     /* elements over all tensors */
    uint64_t tensor_bytes; /* bytes over all tensors */
    info_type_stat types[RS_DTYPE_COUNT];
    char tok_model[32]; /* tokenizer.ggml.model, "" if none */
    char tok_pre[32];
    int64_t n_vocab; /* tokenizer.ggml.tokens length, -1 if none */
} info_summary;

void info_summarize(const rs_model_file *mf, const char *path, info_summary *s);
void info_print_summary(FILE *f, const rs_model_file *mf, const info_summary *s);
void info_print_meta(FILE *f, const rs_meta *meta);
void info_print_tensors(FILE *f, const rs_model_file *mf);
/* The whole description as JSON (caller deletes); NULL on OOM. */
cJSON *info_to_json(const rs_model_file *mf, const info_summary *s, bool tensors, bool meta);

#endif
