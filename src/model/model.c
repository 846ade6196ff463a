/* model.c — binding a model file's tensors to a Llama-family model (see model.h). */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/quantize.h"
#include "dtype/fp16.h"
#include "tokenizer/tokenizer.h"

/* Formats a shape as "[a, b]" for messages. */
static const char *shape_str(char *buf, size_t cap, const int64_t *ne, uint32_t n_dims) {
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < n_dims && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
    return buf;
}

/* Copies a vector tensor to F32 in the arena (norms and biases are tiny). */
static rs_status vector_to_f32(rs_model *m, rs_weight *w, rs_error *err) {
    if (w->type == RS_DTYPE_F32) return RS_OK;
    const rs_dtype_traits *tr = rs_dtype_get(w->type);
    float *f = rs_arena_alloc(&m->arena, (size_t)w->n_in * sizeof *f, 64);
    if (!f) return rs_error_set(err, RS_ERR_NOMEM, "out of memory converting '%s'", w->name);
    tr->to_f32(w->host, f, w->n_in);
    w->host = f;
    w->type = RS_DTYPE_F32;
    w->nbytes = (size_t)w->n_in * sizeof *f;
    return RS_OK;
}

/* Binds tensor `name` with expected GGUF shape {n_in, n_out} (n_out 0: a vector). */
static rs_status bind(rs_model *m, rs_weight *w, const char *name, int64_t n_in, int64_t n_out,
                      bool required, rs_error *err) {
    memset(w, 0, sizeof *w);
    const rs_tensor_info *t = rs_model_file_find(&m->file, name);
    if (!t) {
        if (!required) return RS_OK;
        return rs_error_set(err, RS_ERR_FORMAT, "missing tensor '%s'", name);
    }
    int64_t want[2] = {n_in, n_out};
    uint32_t want_dims = n_out ? 2 : 1;
    bool ok = t->n_dims == want_dims && t->ne[0] == n_in && (!n_out || t->ne[1] == n_out);
    if (!ok) {
        char a[96], b[96];
        return rs_error_set(err, RS_ERR_FORMAT, "tensor '%s': expected shape %s, found %s", name,
                            shape_str(a, sizeof a, want, want_dims),
                            shape_str(b, sizeof b, t->ne, t->n_dims));
    }
    const rs_dtype_traits *tr = rs_dtype_get(t->type);
    if (!tr || !tr->to_f32)
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "tensor '%s': type %s is not supported", name,
                            rs_dtype_name(t->type));
    w->name = t->name;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out ? n_out : 1;
    w->nbytes = t->nbytes;
    w->host = t->data;
    m->n_params += (uint64_t)rs_tensor_nelements(t);
    m->weight_bytes += t->nbytes;
    return n_out ? RS_OK : vector_to_f32(m, w, err);
}

static rs_status bind_layer(rs_model *m, int l, rs_error *err) {
    const rs_hparams *hp = &m->hp;
    rs_layer_weights *L = &m->layers[l];
    int64_t D = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
            KV = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[64];
    rs_status st;
#define BIND(field, suffix, n_in, n_out, req)                                                      \
    do {                                                                                           \
        snprintf(n, sizeof n, "blk.%d." suffix, l);                                                \
        if ((st = bind(m, &L->field, n, n_in, n_out, req, err))) return st;                        \
    } while (0)
    BIND(attn_norm, "attn_norm.weight", D, 0, true);
    BIND(wq, "attn_q.weight", D, Q, true);
    BIND(wk, "attn_k.weight", D, KV, true);
    BIND(wv, "attn_v.weight", D, KV, true);
    BIND(wo, "attn_output.weight", Q, D, true);
    bool need_bias = hp->arch == RS_ARCH_QWEN2;
    BIND(bq, "attn_q.bias", Q, 0, need_bias);
    BIND(bk, "attn_k.bias", KV, 0, need_bias);
    BIND(bv, "attn_v.bias", KV, 0, need_bias);
    BIND(ffn_norm, "ffn_norm.weight", D, 0, true);
    BIND(gate, "ffn_gate.weight", D, hp->n_ff, true);
    BIND(up, "ffn_up.weight", D, hp->n_ff, true);
    BIND(down, "ffn_down.weight", hp->n_ff, D, true);
#undef BIND
    L->has_bias = L->bq.host || L->bk.host || L->bv.host;
    if (L->has_bias && !(L->bq.host && L->bk.host && L->bv.host))
        return rs_error_set(err, RS_ERR_FORMAT,
                            "layer %d: q/k/v biases must be all present or all absent", l);
    return RS_OK;
}

/* Names the model after general.name, else the file's base name. */
static void set_name(rs_model *m, const char *path) {
    rs_str s;
    if (rs_meta_get_str(m->file.meta, "general.name", &s, NULL) == RS_OK && s.len) {
        snprintf(m->name, sizeof m->name, "%.*s", (int)(s.len < 100 ? s.len : 100), s.ptr);
        return;
    }
    const char *base = strrchr(path, '/');
    snprintf(m->name, sizeof m->name, "%s", base && base[1] ? base + 1 : path);
}

/* For display: the file's quantization preset where it names one we know
 * ("Q4_K_M": general.file_type), else the weight type holding the most bytes. */
static void set_type_desc(rs_model *m) {
    uint32_t ftype;
    if (rs_meta_get_u32(m->file.meta, "general.file_type", &ftype, NULL) == RS_OK) {
        const char *name = rs_ftype_name((rs_ftype)ftype);
        if (strcmp(name, "?") != 0) {
            snprintf(m->type_desc, sizeof m->type_desc, "%s", name);
            return;
        }
    }
    uint64_t bytes[RS_DTYPE_COUNT] = {0};
    for (int l = 0; l < m->hp.n_layer; l++) {
        const rs_layer_weights *L = &m->layers[l];
        const rs_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        // NOLINTNEXTLINE(bugprone-sizeof-expression): count of an array of pointers
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
            bytes[mats[i]->type] += mats[i]->nbytes;
    }
    int best = 0;
    for (int t = 0; t < RS_DTYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    snprintf(m->type_desc, sizeof m->type_desc, "%s", rs_dtype_name(best));
}

static rs_status bind_all(rs_model *m, rs_error *err) {
    rs_hparams *hp = &m->hp;
    const rs_tensor_info *emb = rs_model_file_find(&m->file, "token_embd.weight");
    if (!emb) return rs_error_set(err, RS_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[1] < 1 || emb->ne[1] > INT32_MAX)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "tensor 'token_embd.weight': expected 2 dimensions");
    hp->n_vocab = (int)emb->ne[1];
    rs_status st;
    if ((st = bind(m, &m->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true, err)) ||
        (st = bind(m, &m->output_norm, "output_norm.weight", hp->n_embd, 0, true, err)) ||
        (st = bind(m, &m->output, "output.weight", hp->n_embd, hp->n_vocab, false, err)))
        return st;
    m->tied_output = m->output.host == NULL;
    if (m->tied_output) m->output = m->tok_embd;

    m->layers = rs_arena_calloc(&m->arena, (size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    for (int l = 0; l < hp->n_layer; l++)
        if ((st = bind_layer(m, l, err))) return st;

    rs_weight freqs;
    if ((st = bind(m, &freqs, "rope_freqs.weight", hp->n_rot / 2, 0, false, err))) return st;
    m->rope_freq_factors = (float *)freqs.host;
    set_type_desc(m);
    return RS_OK;
}

rs_status rs_model_load(rs_model **out, const char *path, rs_error *err) {
    *out = NULL;
    rs_model *m = calloc(1, sizeof *m);
    if (!m) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    rs_status st = rs_model_file_open(&m->file, path, err);
    if (st) {
        free(m);
        return st;
    }
    m->has_file = true;
    set_name(m, path);
    /* a file without a vocabulary still computes logits (tests, benchmarks); m->tok stays NULL */
    bool has_vocab = rs_meta_find(m->file.meta, "tokenizer.ggml.model") != NULL;
    if ((st = rs_hparams_from_meta(&m->hp, m->file.meta, err)) || (st = bind_all(m, err)) ||
        (has_vocab && (st = rs_tokenizer_load_meta(&m->tok, m->file.meta, err)))) {
        rs_error_prefix(err, "%s", path);
        rs_model_free(m);
        return st;
    }
    *out = m;
    return RS_OK;
}

void rs_model_free(rs_model *m) {
    if (!m) return;
    rs_tokenizer_free(m->tok);
    if (m->has_file) rs_model_file_close(&m->file);
    rs_arena_free(&m->arena);
    free(m);
}
