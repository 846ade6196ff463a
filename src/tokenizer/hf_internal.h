/* hf_internal.h — shared by the Hugging Face readers (hf_json.c, hf_pipeline.c). */
#ifndef RUSTY_HF_INTERNAL_H
#define RUSTY_HF_INTERNAL_H

#include <cjson/cJSON.h>

#include "tokenizer/tok_internal.h"

typedef struct hf_strlist {
    char **v;
    size_t n, cap;
} hf_strlist;

void hf_strlist_free(hf_strlist *l);
rs_status hf_strlist_to_meta(const hf_strlist *l, rs_meta *m, const char *key);

/* What a tokenizer.json's pipeline amounts to. */
typedef struct hf_pipeline {
    hf_strlist norm, pre; /* tokenizer.rusty.normalizer / .pre_tokenizer */
    bool byte_level;      /* ByteLevel pre-tokenizer or decoder */
    bool bl_regex;        /* ByteLevel with its own GPT-2 regex */
    bool metaspace;
    bool space_prefix;    /* "▁" is put in front of the text */
    bool collapse_spaces; /* Replace " {2,}" → " " (Unigram models) */
    char *first_regex;    /* first Split regex, to name the pre-tokenizer */
    bool bert, lowercase, strip_accents;
    char *charsmap_b64; /* Precompiled normalizer */
    bool post_seen, post_bos, post_eos, post_is_sep;
    int64_t post_bos_id, post_eos_id;
} hf_pipeline;

rs_status hf_pipeline_parse(const cJSON *root, hf_pipeline *p, rs_error *err);
void hf_pipeline_free(hf_pipeline *p);
const char *hf_pre_name(const hf_pipeline *p);

const char *hf_json_str(const cJSON *o, const char *key);
bool hf_json_bool(const cJSON *o, const char *key, bool dflt);

#endif
