/* fuzz_hf_config.c — libFuzzer target for the config.json parser.
 *
 * Parses the input as config.json text; on success checks the ranges the parser
 * promises (positive sizes, heads divisible by kv heads, even head_dim, token
 * ids inside the vocabulary) and turns the config into GGUF-named metadata. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf_config.h"
#include "io/hf_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const rs_hf_config *c) {
    if (c->hidden_size < 1 || c->intermediate_size < 1 || c->num_hidden_layers < 1 ||
        c->num_attention_heads < 1 || c->num_key_value_heads < 1 || c->vocab_size < 1 ||
        c->max_position_embeddings < 1 || c->head_dim < 2 || c->head_dim % 2 != 0 ||
        c->num_attention_heads % c->num_key_value_heads != 0)
        abort();
    if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 0) || c->n_eos > RS_HF_MAX_EOS) abort();
    if (c->bos_token_id >= c->vocab_size) abort();
    for (size_t i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= c->vocab_size) abort();
    if (!c->architecture[0] && !c->model_type[0]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_hf_config c;
    rs_error err;
    if (rs_hf_config_parse(&c, (const char *)data, size, NULL, &err) != RS_OK) {
        if (err.msg[0] == '\0' || strchr(err.msg, '\n')) abort();
        return 0;
    }
    check(&c);
    rs_meta m;
    rs_meta_init(&m);
    rs_status s = rs_hf_config_to_meta(&c, "fuzz", &m, &err);
    if (s != RS_OK && s != RS_ERR_UNSUPPORTED) abort();
    rs_meta_free(&m);
    return 0;
}
