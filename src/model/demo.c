/* demo.c — the built-in demo model: a tiny Llama with random weights and a
 * made-up word vocabulary, built entirely in memory.
 *
 * It lets `rusty run` with no model show the whole pipeline (tokenizer,
 * forward pass, sampler, streaming decoder) on any machine. The vocabulary is
 * SentencePiece-style: specials, 256 byte-fallback tokens, single characters
 * and every "▁"-prefix of a list of words, so prompts tokenize into words.
 * The output head gives byte and special tokens zero logits while words get
 * random ones, so sampled text reads as (random) words. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

static const char *const demo_words[] = {
    "once",   "upon",   "a",      "time",  "there",  "lived", "little", "big",    "happy", "cat",
    "dog",    "bird",   "fish",   "sun",   "moon",   "star",  "tree",   "house",  "river", "forest",
    "garden", "castle", "dragon", "king",  "queen",  "girl",  "boy",    "friend", "mom",   "dad",
    "ball",   "toy",    "book",   "song",  "boat",   "rain",  "snow",   "wind",   "sky",   "flower",
    "apple",  "bread",  "the",    "and",   "then",   "with",  "in",     "on",     "under", "over",
    "very",   "so",     "was",    "is",    "she",    "he",    "they",   "we",     "it",    "of",
    "to",     "for",    "one",    "day",   "night",  "play",  "sing",   "run",    "jump",  "dance",
    "smile",  "laugh",  "walk",   "look",  "find",   "give",  "take",   "make",   "go",    "come",
    "saw",    "said",   "liked",  "loved", "wanted", "blue",  "green",  "red",    "warm",  "cold",
    "fast",   "slow",   "old",    "new",   "good",   "kind",  "brave",
};
static const char demo_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?'";

enum { N_SPECIAL = 3, N_BYTES = 256, MAX_PIECE = 32 };

typedef struct vocab_builder {
    char (*pieces)[MAX_PIECE];
    float *scores;
    int32_t *types;
    int n, cap;
} vocab_builder;

static void add_piece(vocab_builder *v, const char *s, float score, int32_t type) {
    for (int i = N_SPECIAL + N_BYTES; i < v->n; i++)
        if (strcmp(v->pieces[i], s) == 0) return;
    if (v->n == v->cap) return;
    snprintf(v->pieces[v->n], MAX_PIECE, "%s", s);
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->n++;
}

/* Fills meta with a tokenizer.ggml.* vocabulary; returns the vocabulary size or -1. */
static int build_vocab(rs_meta *meta) {
    int cap = N_SPECIAL + N_BYTES + (int)sizeof demo_chars + 1 +
              16 * (int)(sizeof demo_words / sizeof *demo_words);
    vocab_builder v = {calloc((size_t)cap, MAX_PIECE), calloc((size_t)cap, sizeof(float)),
                       calloc((size_t)cap, sizeof(int32_t)), 0, cap};
    int n = -1;
    rs_str *strs = calloc((size_t)cap, sizeof *strs);
    if (!v.pieces || !v.scores || !v.types || !strs) goto done;
    add_piece(&v, "<unk>", 0, 2);
    add_piece(&v, "<s>", 0, 3);
    add_piece(&v, "</s>", 0, 3);
    for (int b = 0; b < N_BYTES; b++) {
        snprintf(v.pieces[v.n], MAX_PIECE, "<0x%02X>", b);
        v.types[v.n++] = 6;
    }
    add_piece(&v, "\xe2\x96\x81", 0, 1); /* "▁" */
    for (const char *c = demo_chars; *c; c++) add_piece(&v, (char[]){*c, 0}, 0, 1);
    for (size_t w = 0; w < sizeof demo_words / sizeof *demo_words; w++) {
        char piece[MAX_PIECE] = "\xe2\x96\x81";
        size_t len = strlen(demo_words[w]);
        for (size_t k = 1; k <= len && 3 + k < MAX_PIECE; k++) {
            memcpy(piece + 3, demo_words[w], k);
            piece[3 + k] = '\0';
            add_piece(&v, piece, (float)k, 1); /* longer prefixes merge later, all merge */
        }
    }
    for (int i = 0; i < v.n; i++) strs[i] = (rs_str){v.pieces[i], strlen(v.pieces[i])};
    bool ok = rs_meta_set_str(meta, "tokenizer.ggml.model", "llama", 5) == RS_OK &&
              rs_meta_set_str_arr(meta, "tokenizer.ggml.tokens", strs, (uint64_t)v.n) == RS_OK &&
              rs_meta_set_arr(meta, "tokenizer.ggml.scores", RS_V_F32, v.scores, (uint64_t)v.n) ==
                  RS_OK &&
              rs_meta_set_arr(meta, "tokenizer.ggml.token_type", RS_V_I32, v.types,
                              (uint64_t)v.n) == RS_OK &&
              rs_meta_set_uint(meta, "tokenizer.ggml.unknown_token_id", RS_V_U32, 0) == RS_OK &&
              rs_meta_set_uint(meta, "tokenizer.ggml.bos_token_id", RS_V_U32, 1) == RS_OK &&
              rs_meta_set_uint(meta, "tokenizer.ggml.eos_token_id", RS_V_U32, 2) == RS_OK &&
              rs_meta_set_bool(meta, "tokenizer.ggml.add_bos_token", true) == RS_OK;
    n = ok ? v.n : -1;
done:
    free(v.pieces);
    free(v.scores);
    free(v.types);
    free(strs);
    return n;
}

/* A whole word of the list ("▁cat") or a punctuation mark. */
static bool is_word(const rs_tokenizer *tok, int32_t id) {
    size_t len;
    const char *t = rs_tokenizer_token_text(tok, id, &len);
    if (id < N_SPECIAL + N_BYTES || !t) return false;
    if (len == 1) return strchr(".,!?", t[0]) != NULL;
    if (len < 4 || memcmp(t, "\xe2\x96\x81", 3) != 0) return false;
    for (size_t w = 0; w < sizeof demo_words / sizeof *demo_words; w++)
        if (strlen(demo_words[w]) == len - 3 && memcmp(demo_words[w], t + 3, len - 3) == 0)
            return true;
    return false;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* An F32 weight of n_out rows x n_in, uniform in [-scale, scale] (or all `fill`). */
static bool make_weight(rs_model *m, rs_weight *w, const char *name, int64_t n_in, int64_t n_out,
                        float scale, float fill, uint64_t *rng) {
    size_t n = (size_t)(n_in * n_out);
    float *d = rs_arena_alloc(&m->arena, n * sizeof *d, 64);
    if (!d) return false;
    for (size_t i = 0; i < n; i++)
        d[i] = scale ? scale * (float)((double)(splitmix64(rng) >> 11) / 4503599627370496.0 - 1.0)
                     : fill;
    *w = (rs_weight){.name = name,
                     .type = RS_DTYPE_F32,
                     .n_in = n_in,
                     .n_out = n_out,
                     .nbytes = n * sizeof *d,
                     .host = d};
    m->n_params += n;
    m->weight_bytes += n * sizeof *d;
    return true;
}

static bool make_weights(rs_model *m, uint64_t seed) {
    rs_hparams *hp = &m->hp;
    uint64_t rng = seed;
    int64_t D = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
            KV = (int64_t)hp->n_head_kv * hp->head_dim;
    float sd = sqrtf(3.0f / (float)D), sf = sqrtf(3.0f / (float)hp->n_ff),
          sq = sqrtf(3.0f / (float)Q);
    if (!make_weight(m, &m->tok_embd, "token_embd.weight", D, hp->n_vocab, 1.0f, 0, &rng) ||
        !make_weight(m, &m->output_norm, "output_norm.weight", D, 1, 0, 1.0f, &rng) ||
        !make_weight(m, &m->output, "output.weight", D, hp->n_vocab, 2.0f * sd, 0, &rng))
        return false;
    /* only whole words and punctuation get logits, so the text is made of words */
    float *head = (float *)m->output.host;
    for (int id = 0; id < hp->n_vocab; id++)
        if (!is_word(m->tok, id)) memset(head + (size_t)id * D, 0, (size_t)D * sizeof(float));
    m->layers = rs_arena_calloc(&m->arena, (size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return false;
    for (int l = 0; l < hp->n_layer; l++) {
        rs_layer_weights *L = &m->layers[l];
        if (!make_weight(m, &L->attn_norm, "attn_norm", D, 1, 0, 1.0f, &rng) ||
            !make_weight(m, &L->wq, "attn_q", D, Q, sd, 0, &rng) ||
            !make_weight(m, &L->wk, "attn_k", D, KV, sd, 0, &rng) ||
            !make_weight(m, &L->wv, "attn_v", D, KV, sd, 0, &rng) ||
            !make_weight(m, &L->wo, "attn_output", Q, D, sq, 0, &rng) ||
            !make_weight(m, &L->ffn_norm, "ffn_norm", D, 1, 0, 1.0f, &rng) ||
            !make_weight(m, &L->gate, "ffn_gate", D, hp->n_ff, sd, 0, &rng) ||
            !make_weight(m, &L->up, "ffn_up", D, hp->n_ff, sd, 0, &rng) ||
            !make_weight(m, &L->down, "ffn_down", hp->n_ff, D, sf, 0, &rng))
            return false;
    }
    return true;
}

rs_status rs_model_create_demo(rs_model **out, uint64_t seed, rs_error *err) {
    *out = NULL;
    rs_model *m = calloc(1, sizeof *m);
    if (!m) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    m->is_demo = true;
    snprintf(m->name, sizeof m->name, "rusty-demo (random weights)");
    snprintf(m->type_desc, sizeof m->type_desc, "F32");
    m->hp = (rs_hparams){.arch = RS_ARCH_LLAMA,
                         .arch_name = "llama",
                         .n_embd = 256,
                         .n_ff = 768,
                         .n_layer = 4,
                         .n_head = 8,
                         .n_head_kv = 4,
                         .head_dim = 32,
                         .n_ctx_train = 2048,
                         .rms_eps = 1e-5f,
                         .n_rot = 32,
                         .rope_base = 10000.0};
    rs_meta meta;
    rs_meta_init(&meta);
    int n_vocab = build_vocab(&meta);
    rs_status st = RS_ERR_NOMEM;
    if (n_vocab < 0) {
        rs_error_set(err, st, "out of memory building the demo vocabulary");
        goto fail;
    }
    m->hp.n_vocab = n_vocab;
    if ((st = rs_tokenizer_load_meta(&m->tok, &meta, err))) goto fail;
    if (!make_weights(
            m, seed)) { /* after the tokenizer: the output head asks it which ids are words */
        st = rs_error_set(err, RS_ERR_NOMEM, "out of memory making the demo weights");
        goto fail;
    }
    rs_meta_free(&meta);
    *out = m;
    return RS_OK;
fail:
    rs_meta_free(&meta);
    rs_model_free(m);
    return st;
}
