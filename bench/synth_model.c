/* synth_model.c — writes a Llama-shaped GGUF with random weights, for benchmarks.
 *
 * usage: synth_model SHAPE[:neox] TYPE OUT.gguf [threads] [--repeat-layers]
 *   SHAPE: llama2-7b | llama2-7b-2l (two of its layers) | llama-3b | llama3-8b | llama3-70b |
 *          llama3-70b-2l (two of its layers) | tinyllama-1b | small (a 60M model for quick
 *          checks);
 *          ":neox" marks the file rotate-half (rusty.rope_neox), as a model converted
 *          from Hugging Face rows without un-permuting would be
 *   TYPE:  a `rusty quantize` preset (F16, Q8_0, Q4_0, Q4_K, Q4_K_M, ...): each
 *          matrix gets the type that preset's quantizer would write it in
 * Weights are uniform in [-sqrt(3/n_in), sqrt(3/n_in)] (unit-variance outputs),
 * generated as f32 and quantized with Rusty's reference quantizers — the same
 * bytes `rusty quantize` would write from an F16 file of those values, give or
 * take the F16 rounding: the output head is Q6_K for 4/5-bit types and the
 * _M mixes put attn_v and ffn_down of half the layers in Q6_K, as llama.cpp's
 * quantizer does (rs_quantize_target_type). The vocabulary is synthetic (byte tokens
 * plus "tokN" pieces) so the model loads like any SentencePiece model.
 *
 * --repeat-layers: each matrix of layer l > 0 repeats the bytes of the first layer's matrix
 * of the same role and type, so only one layer is quantized (a 70B file in K-quants, whose
 * reference quantizers are ~6x slower than Q4_0's, in the time one GPU call allows). The file
 * is as large, and every layer (hundreds of MB) is still streamed from memory: a decode
 * benchmark reads the same bytes either way; the tokens it picks are not meaningful. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/threadpool.h"
#include "core/cpu.h"
#include "convert/quantize.h"
#include "io/gguf.h"

typedef struct shape {
    const char *name;
    int n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
} shape;

static const shape shapes[] = {
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096},
    {"llama2-7b-2l", 4096, 11008, 2, 32, 32, 32000, 4096}, /* two of its layers, for checks */
    {"llama-3b", 3072, 8192, 28, 24, 8, 32000, 4096},      /* Llama-3.2-3B's layers, 32k vocab */
    {"llama3-8b", 4096, 14336, 32, 32, 8, 128256, 8192},   /* Llama-3-8B: grouped-query heads */
    {"llama3-70b", 8192, 28672, 80, 64, 8, 128256, 8192}, /* Llama-3-70B: 8 query heads a kv head */
    {"llama3-70b-2l", 8192, 28672, 2, 64, 8, 128256, 8192}, /* two of its layers, for checks */
    {"tinyllama-1b", 2048, 5632, 22, 32, 4, 32000, 2048},
    {"small", 512, 1536, 8, 8, 4, 32000, 2048},
};

typedef struct gen_job {
    rs_dtype type;
    int64_t n_in, n_rows;
    uint64_t seed;
    unsigned char *out;
    size_t row_bytes;
    float *rows; /* [nth][n_in] */
} gen_job;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void gen_rows(void *p, int ith, int nth) {
    gen_job *j = p;
    float *row = j->rows + (size_t)ith * j->n_in;
    float a = sqrtf(3.0f / (float)j->n_in);
    const rs_dtype_traits *tr = rs_dtype_get(j->type);
    for (int64_t r = j->n_rows * ith / nth; r < j->n_rows * (ith + 1) / nth; r++) {
        uint64_t s = mix64(j->seed ^ (uint64_t)r * 0x9e3779b97f4a7c15ull);
        for (int64_t i = 0; i < j->n_in; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            row[i] = a * ((float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
        }
        tr->from_f32(row, j->out + (size_t)r * j->row_bytes, j->n_in);
    }
}

static bool add_vocab(rs_meta *m, int n_vocab) {
    rs_str *toks = calloc((size_t)n_vocab, sizeof *toks);
    char *text = calloc((size_t)n_vocab, 24);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    bool ok = toks && text && scores && types;
    for (int i = 0; ok && i < n_vocab; i++) {
        char *t = text + (size_t)i * 24;
        if (i < 3)
            snprintf(t, 24, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(t, 24, "<0x%02X>", i - 3);
        else
            snprintf(t, 24, "\xe2\x96\x81tok%d", i);
        toks[i] = (rs_str){t, strlen(t)};
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
        scores[i] = -(float)i;
    }
    ok = ok && !rs_meta_set_str(m, "tokenizer.ggml.model", "llama", 5) &&
         !rs_meta_set_str_arr(m, "tokenizer.ggml.tokens", toks, (uint64_t)n_vocab) &&
         !rs_meta_set_arr(m, "tokenizer.ggml.scores", RS_V_F32, scores, (uint64_t)n_vocab) &&
         !rs_meta_set_arr(m, "tokenizer.ggml.token_type", RS_V_I32, types, (uint64_t)n_vocab) &&
         !rs_meta_set_uint(m, "tokenizer.ggml.bos_token_id", RS_V_U32, 1) &&
         !rs_meta_set_uint(m, "tokenizer.ggml.eos_token_id", RS_V_U32, 2) &&
         !rs_meta_set_uint(m, "tokenizer.ggml.unknown_token_id", RS_V_U32, 0);
    free(toks);
    free(text);
    free(scores);
    free(types);
    return ok;
}

static bool add_hparams(rs_meta *m, const shape *s) {
    return !rs_meta_set_str(m, "general.architecture", "llama", 5) &&
           !rs_meta_set_str(m, "general.name", s->name, strlen(s->name)) &&
           !rs_meta_set_uint(m, "llama.context_length", RS_V_U32, (uint64_t)s->n_ctx) &&
           !rs_meta_set_uint(m, "llama.embedding_length", RS_V_U32, (uint64_t)s->n_embd) &&
           !rs_meta_set_uint(m, "llama.feed_forward_length", RS_V_U32, (uint64_t)s->n_ff) &&
           !rs_meta_set_uint(m, "llama.block_count", RS_V_U32, (uint64_t)s->n_layer) &&
           !rs_meta_set_uint(m, "llama.attention.head_count", RS_V_U32, (uint64_t)s->n_head) &&
           !rs_meta_set_uint(m, "llama.attention.head_count_kv", RS_V_U32,
                             (uint64_t)s->n_head_kv) &&
           !rs_meta_set_uint(m, "llama.rope.dimension_count", RS_V_U32,
                             (uint64_t)(s->n_embd / s->n_head)) &&
           !rs_meta_set_float(m, "llama.rope.freq_base", RS_V_F32, 10000.0) &&
           !rs_meta_set_float(m, "llama.attention.layer_norm_rms_epsilon", RS_V_F32, 1e-5);
}

/* A tensor as an F32 source would describe it; main gives it the preset's type and size. */
static void add_tensor(rs_tensor_info *t, int *n, const char *name, int64_t n_in, int64_t n_out) {
    t[*n] = (rs_tensor_info){.name = strdup(name),
                             .type = RS_DTYPE_F32,
                             .n_dims = n_out ? 2 : 1,
                             .ne = {n_in, n_out ? n_out : 1, 1, 1}};
    (*n)++;
}

int main(int argc, char **argv) {
    bool repeat = argc > 4 && !strcmp(argv[argc - 1], "--repeat-layers");
    if (repeat) argc--;
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: synth_model "
                        "llama2-7b|llama2-7b-2l|llama-3b|llama3-8b|llama3-70b|llama3-70b-2l|"
                        "tinyllama-1b|small[:neox] "
                        "TYPE OUT.gguf [threads] [--repeat-layers]\n");
        return 1;
    }
    const shape *s = NULL;
    const char *colon = strchr(argv[1], ':');
    const size_t name_len = colon ? (size_t)(colon - argv[1]) : strlen(argv[1]);
    const bool neox = colon && strcmp(colon, ":neox") == 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (strlen(shapes[i].name) == name_len && !strncmp(shapes[i].name, argv[1], name_len) &&
            (!colon || neox))
            s = &shapes[i];
    rs_quantize_params qp = {0};
    if (!s || !rs_ftype_from_name(argv[2], &qp.ftype)) {
        fprintf(stderr, "synth_model: unknown shape or type\n");
        return 1;
    }
    int D = s->n_embd, KV = s->n_head_kv * (D / s->n_head), n = 0;
    rs_tensor_info *t = calloc(3 + 9 * (size_t)s->n_layer, sizeof *t);
    if (!t) {
        fprintf(stderr, "synth_model: out of memory\n");
        return 1;
    }
    add_tensor(t, &n, "token_embd.weight", D, s->n_vocab);
    add_tensor(t, &n, "output_norm.weight", D, 0);
    add_tensor(t, &n, "output.weight", D, s->n_vocab);
    for (int l = 0; l < s->n_layer; l++) {
        char name[64];
#define T(suffix, a, b)                                                                            \
    (snprintf(name, sizeof name, "blk.%d." suffix, l), add_tensor(t, &n, name, a, b))
        T("attn_norm.weight", D, 0);
        T("attn_q.weight", D, D);
        T("attn_k.weight", D, KV);
        T("attn_v.weight", D, KV);
        T("attn_output.weight", D, D);
        T("ffn_norm.weight", D, 0);
        T("ffn_gate.weight", D, s->n_ff);
        T("ffn_up.weight", D, s->n_ff);
        T("ffn_down.weight", s->n_ff, D);
#undef T
    }
    bool can = true;
    for (int i = 0; i < n; i++) {
        const rs_dtype ty =
            rs_quantize_target_type(&t[i], &qp, s->n_layer, s->n_head / s->n_head_kv);
        can = can && rs_dtype_get(ty)->from_f32;
        size_t row;
        rs_dtype_row_size(ty, t[i].ne[0], &row);
        t[i].type = ty;
        t[i].nbytes = row * (uint64_t)t[i].ne[1];
    }
    rs_meta meta;
    rs_meta_init(&meta);
    rs_error err = {0};
    rs_gguf_writer *w = NULL;
    rs_threadpool *tp = NULL;
    rs_cpu_info cpu;
    rs_cpu_detect(&cpu);
    int nth = argc > 4 ? atoi(argv[4]) : cpu.n_physical;
    int rc = 1;
    /* --repeat-layers: the first bytes of each (role, type); the _M mixes give a role two types */
    enum { MAX_KEPT = 18 };
    typedef struct kept_bytes {
        int role;
        rs_dtype type;
        unsigned char *data;
    } kept_bytes;
    kept_bytes kept[MAX_KEPT];
    int n_kept = 0;
    if (!can) {
        fprintf(stderr, "synth_model: %s has no reference quantizer\n", argv[2]);
        goto done;
    }
    if (!add_hparams(&meta, s) || !add_vocab(&meta, s->n_vocab) ||
        rs_meta_set_uint(&meta, "general.file_type", RS_V_U32, (uint64_t)qp.ftype) ||
        (neox && rs_meta_set_bool(&meta, "rusty.rope_neox", true)) ||
        rs_threadpool_create(&tp, nth, &err) ||
        rs_gguf_writer_open(&w, argv[3], &meta, t, (uint64_t)n, &err)) {
        fprintf(stderr, "synth_model: %s\n", err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        /* tensors 0-2 are the embedding, output norm and head; then 9 a layer, in one order */
        const int role = i >= 3 ? (i - 3) % 9 : -1;
        const unsigned char *same = NULL;
        for (int k = 0; repeat && k < n_kept; k++)
            if (kept[k].role == role && kept[k].type == t[i].type) same = kept[k].data;
        if (same) {
            if (rs_gguf_writer_put(w, (uint64_t)i, same, t[i].nbytes, &err) == RS_OK) continue;
            fprintf(stderr, "synth_model: %s\n", err.msg);
            goto done;
        }
        gen_job j = {t[i].type,
                     t[i].ne[0],
                     t[i].ne[1],
                     1000u + (uint64_t)i,
                     malloc(t[i].nbytes),
                     0,
                     malloc((size_t)nth * (size_t)t[i].ne[0] * sizeof(float))};
        rs_dtype_row_size(j.type, j.n_in, &j.row_bytes);
        bool ok = j.out && j.rows;
        if (!ok) {
            fprintf(stderr, "synth_model: out of memory\n");
        } else {
            if (t[i].n_dims == 1)
                for (int64_t k = 0; k < j.n_in; k++) ((float *)j.out)[k] = 1.0f;
            else
                rs_threadpool_run(tp, gen_rows, &j);
            ok = rs_gguf_writer_put(w, (uint64_t)i, j.out, t[i].nbytes, &err) == RS_OK;
            if (!ok) fprintf(stderr, "synth_model: %s\n", err.msg);
        }
        if (ok && repeat && role >= 0 && n_kept < MAX_KEPT) {
            kept[n_kept++] = (kept_bytes){role, t[i].type, j.out};
            j.out = NULL;
        }
        free(j.out);
        free(j.rows);
        if (!ok) goto done;
    }
    rs_status st = rs_gguf_writer_close(w, &err); /* frees w, also on failure */
    w = NULL;
    if (st) {
        fprintf(stderr, "synth_model: %s\n", err.msg);
        goto done;
    }
    fprintf(stderr, "synth_model: wrote %s (%s, %s)\n", argv[3], s->name, argv[2]);
    rc = 0;
done:
    if (w) rs_gguf_writer_abort(w);
    for (int k = 0; k < n_kept; k++) free(kept[k].data);
    for (int i = 0; i < n; i++) free((char *)t[i].name);
    free(t);
    rs_meta_free(&meta);
    rs_threadpool_free(tp);
    return rc;
}
