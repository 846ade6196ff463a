/* quantize.c — convert a model's weights to another type and write a GGUF (see quantize.h). */
#include "convert/quantize.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "backend/cpu/threadpool.h"
#include "core/cpu.h"
#include "io/gguf.h"
#include "io/model_file.h"
#include "model/hparams.h"

/* The mixes (llama.cpp's names and per-tensor rules, for dense Llama models):
 * more bits where quantization error costs the most: attn_v, attn_output and
 * ffn_down */
typedef enum { MIX_NONE, MIX_Q2_K, MIX_Q3_K_M, MIX_Q3_K_L, MIX_K_M, MIX_IQ4 } mix_rule;

static const struct {
    const char *name;
    rs_dtype base;
    rs_ftype ftype;
    mix_rule mix;
} presets[] = {
    /* the first preset of an ftype names it */
    {"F32", RS_DTYPE_F32, RS_FTYPE_F32, MIX_NONE},
    {"F16", RS_DTYPE_F16, RS_FTYPE_F16, MIX_NONE},
    {"BF16", RS_DTYPE_BF16, RS_FTYPE_BF16, MIX_NONE},
    {"Q8_0", RS_DTYPE_Q8_0, RS_FTYPE_Q8_0, MIX_NONE},
    {"Q4_0", RS_DTYPE_Q4_0, RS_FTYPE_Q4_0, MIX_NONE},
    {"Q4_1", RS_DTYPE_Q4_1, RS_FTYPE_Q4_1, MIX_NONE},
    {"Q5_0", RS_DTYPE_Q5_0, RS_FTYPE_Q5_0, MIX_NONE},
    {"Q5_1", RS_DTYPE_Q5_1, RS_FTYPE_Q5_1, MIX_NONE},
    {"Q2_K", RS_DTYPE_Q2_K, RS_FTYPE_Q2_K, MIX_Q2_K},
    {"Q3_K", RS_DTYPE_Q3_K, RS_FTYPE_Q3_K_S, MIX_NONE},
    {"Q3_K_S", RS_DTYPE_Q3_K, RS_FTYPE_Q3_K_S, MIX_NONE},
    {"Q3_K_M", RS_DTYPE_Q3_K, RS_FTYPE_Q3_K_M, MIX_Q3_K_M},
    {"Q3_K_L", RS_DTYPE_Q3_K, RS_FTYPE_Q3_K_L, MIX_Q3_K_L},
    {"Q4_K", RS_DTYPE_Q4_K, RS_FTYPE_Q4_K_S, MIX_NONE},
    {"Q4_K_S", RS_DTYPE_Q4_K, RS_FTYPE_Q4_K_S, MIX_NONE},
    {"Q4_K_M", RS_DTYPE_Q4_K, RS_FTYPE_Q4_K_M, MIX_K_M},
    {"Q5_K", RS_DTYPE_Q5_K, RS_FTYPE_Q5_K_S, MIX_NONE},
    {"Q5_K_S", RS_DTYPE_Q5_K, RS_FTYPE_Q5_K_S, MIX_NONE},
    {"Q5_K_M", RS_DTYPE_Q5_K, RS_FTYPE_Q5_K_M, MIX_K_M},
    {"Q6_K", RS_DTYPE_Q6_K, RS_FTYPE_Q6_K, MIX_NONE},
    {"IQ4_NL", RS_DTYPE_IQ4_NL, RS_FTYPE_IQ4_NL, MIX_IQ4},
    {"IQ4_XS", RS_DTYPE_IQ4_XS, RS_FTYPE_IQ4_XS, MIX_IQ4},
};
enum { N_PRESETS = sizeof presets / sizeof *presets };

static int preset_of(rs_ftype t) {
    for (int i = 0; i < N_PRESETS; i++)
        if (presets[i].ftype == t) return i;
    return -1;
}

bool rs_ftype_from_name(const char *name, rs_ftype *out) {
    for (int i = 0; i < N_PRESETS; i++)
        if (strcasecmp(presets[i].name, name) == 0) {
            *out = presets[i].ftype;
            return true;
        }
    return false;
}

const char *rs_ftype_name(rs_ftype t) {
    int i = preset_of(t);
    return i < 0 ? "?" : presets[i].name;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between. */
static bool more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

/* A type whose block does not divide the row falls back as llama.cpp's does. */
static rs_dtype fit_row(rs_dtype t, int64_t n_in) {
    const rs_dtype_traits *tr = rs_dtype_get(t);
    if (n_in % tr->block_size == 0) return t;
    switch (t) {
    case RS_DTYPE_Q2_K:
    case RS_DTYPE_Q3_K:
    case RS_DTYPE_IQ4_XS:
        t = RS_DTYPE_IQ4_NL;
        break;
    case RS_DTYPE_Q4_K:
        t = RS_DTYPE_Q5_0;
        break;
    case RS_DTYPE_Q5_K:
        t = RS_DTYPE_Q5_1;
        break;
    case RS_DTYPE_Q6_K:
        t = RS_DTYPE_Q8_0;
        break;
    default:
        return RS_DTYPE_F16;
    }
    return n_in % rs_dtype_get(t)->block_size == 0 ? t : RS_DTYPE_F16;
}

/* The mix's type for layer `layer`'s tensor `name`, or `want` where it has none. */
static rs_dtype mixed_type(mix_rule mix, rs_dtype want, const char *name, int layer, int n_layer,
                           int n_gqa) {
    const bool v = ends_with(name, "attn_v.weight"), down = ends_with(name, "ffn_down.weight"),
               wo = ends_with(name, "attn_output.weight");
    switch (mix) {
    case MIX_Q2_K: /* grouped-query v is small: 4 bits cost little */
        if (v) return n_gqa >= 4 ? RS_DTYPE_Q4_K : RS_DTYPE_Q3_K;
        return down || wo ? RS_DTYPE_Q3_K : want;
    case MIX_Q3_K_M:
        if (v) return layer < 2 ? RS_DTYPE_Q5_K : RS_DTYPE_Q4_K;
        if (down) return layer < n_layer / 16 ? RS_DTYPE_Q5_K : RS_DTYPE_Q4_K;
        return wo ? RS_DTYPE_Q4_K : want;
    case MIX_Q3_K_L:
        return v || down || wo ? RS_DTYPE_Q5_K : want;
    case MIX_K_M:
        return (v || down) && more_bits(layer, n_layer) ? RS_DTYPE_Q6_K : want;
    case MIX_IQ4: /* llama.cpp's rules without an importance matrix */
        if (v) return n_gqa >= 4 ? RS_DTYPE_Q5_K : want;
        return down && layer < n_layer / 8 ? RS_DTYPE_Q5_K : want;
    case MIX_NONE:
        break;
    }
    return want;
}

rs_dtype rs_quantize_target_type(const rs_tensor_info *t, const rs_quantize_params *p, int n_layer,
                                 int n_gqa) {
    const int pi = preset_of(p->ftype);
    if (pi < 0 || t->n_dims != 2 || !ends_with(t->name, ".weight")) return t->type;
    rs_dtype want = presets[pi].base;
    bool quantized = rs_dtype_get(want)->is_quantized;
    if (!p->pure && quantized && strcmp(t->name, "output.weight") == 0 && want != RS_DTYPE_Q8_0)
        want = RS_DTYPE_Q6_K;
    int layer = -1;
    if (!p->pure && sscanf(t->name, "blk.%d.", &layer) == 1)
        want = mixed_type(presets[pi].mix, want, t->name, layer, n_layer, n_gqa);
    return fit_row(want, t->ne[0]);
}

typedef struct convert_job {
    const rs_tensor_info *src;
    rs_dtype to;
    unsigned char *out;
    size_t src_row, dst_row;
    int64_t n_rows;
    int n_head; /* > 0: permute rows HF rotate-half -> GGUF adjacent pairs */
    int head_dim;
    float *rows; /* [nth][n_in] */
} convert_job;

/* Source row feeding output row r (identity unless un-permuting HF q/k). */
static int64_t source_row(const convert_job *j, int64_t r) {
    if (j->n_head <= 0) return r;
    int64_t hd = j->head_dim, h = r / hd, k = r % hd, i = k / 2, jj = k % 2;
    return h * hd + jj * (hd / 2) + i;
}

static void convert_rows(void *p, int ith, int nth) {
    convert_job *j = p;
    int64_t n_in = j->src->ne[0];
    float *row = j->rows + (size_t)ith * n_in;
    const rs_dtype_traits *from = rs_dtype_get(j->src->type), *to = rs_dtype_get(j->to);
    for (int64_t r = j->n_rows * ith / nth; r < j->n_rows * (ith + 1) / nth; r++) {
        const unsigned char *in =
            (const unsigned char *)j->src->data + (size_t)source_row(j, r) * j->src_row;
        if (j->src->type == j->to && j->n_head <= 0) {
            memcpy(j->out + (size_t)r * j->dst_row, in, j->dst_row);
            continue;
        }
        from->to_f32(in, row, n_in);
        to->from_f32(row, j->out + (size_t)r * j->dst_row, n_in);
    }
}

/* Output metadata: the source's, minus Rusty's HF-layout marker, with the file type. */
static rs_status build_meta(const rs_model_file *mf, const rs_quantize_params *p, rs_meta *out) {
    rs_meta_init(out);
    for (size_t i = 0; i < mf->meta->n; i++) {
        if (strcmp(mf->meta->kv[i].key, "rusty.rope_neox") == 0) continue;
        if (rs_meta_set_value(out, mf->meta->kv[i].key, &mf->meta->kv[i].value))
            return RS_ERR_NOMEM;
    }
    if (rs_meta_set_uint(out, "general.file_type", RS_V_U32, (uint64_t)p->ftype) ||
        rs_meta_set_uint(out, "general.quantization_version", RS_V_U32, 2))
        return RS_ERR_NOMEM;
    return RS_OK;
}

static rs_status write_tensors(rs_gguf_writer *w, const rs_model_file *mf, rs_tensor_info *outs,
                               const rs_hparams *hp, bool unpermute, rs_threadpool *tp,
                               const rs_quantize_params *p, rs_error *err) {
    int nth = rs_threadpool_size(tp);
    rs_status st = RS_OK;
    for (uint64_t i = 0; i < mf->n_tensors && !st; i++) {
        const rs_tensor_info *t = &mf->tensors[i];
        convert_job j = {t, outs[i].type, NULL, 0, 0, 1, 0, 0, NULL};
        j.n_rows = rs_tensor_nelements(t) / (t->n_dims ? t->ne[0] : 1);
        rs_dtype_row_size(t->type, t->ne[0], &j.src_row);
        rs_dtype_row_size(j.to, t->ne[0], &j.dst_row);
        if (unpermute && ends_with(t->name, "attn_q.weight")) j.n_head = hp->n_head;
        if (unpermute && ends_with(t->name, "attn_k.weight")) j.n_head = hp->n_head_kv;
        j.head_dim = hp->head_dim;
        j.out = malloc(outs[i].nbytes ? outs[i].nbytes : 1);
        j.rows = rs_malloc_array((size_t)nth * (size_t)t->ne[0], sizeof(float));
        if (!j.out || !j.rows) {
            st = rs_error_set(err, RS_ERR_NOMEM, "out of memory converting '%s'", t->name);
        } else {
            if (t->n_dims == 0)
                memcpy(j.out, t->data, t->nbytes);
            else
                rs_threadpool_run(tp, convert_rows, &j);
            st = rs_gguf_writer_put(w, i, j.out, outs[i].nbytes, err);
        }
        free(j.out);
        free(j.rows);
        if (!st && p->progress)
            p->progress(p->user, t->name, t->type, j.to, (int)i + 1, (int)mf->n_tensors);
    }
    return st;
}

rs_status rs_quantize_model(const char *in_path, const char *out_path, const rs_quantize_params *p,
                            rs_error *err) {
    if (preset_of(p->ftype) < 0)
        return rs_error_set(err, RS_ERR_ARG, "unknown file type %d", p->ftype);
    rs_model_file mf;
    rs_status st = rs_model_file_open(&mf, in_path, err);
    if (st) return st;
    rs_hparams hp;
    rs_meta meta;
    rs_threadpool *tp = NULL;
    rs_tensor_info *outs = calloc(mf.n_tensors ? mf.n_tensors : 1, sizeof *outs);
    rs_gguf_writer *w = NULL;
    rs_meta_init(&meta);
    if (!outs) {
        st = rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = rs_hparams_from_meta(&hp, mf.meta, err))) goto done;
    bool unpermute = hp.arch == RS_ARCH_LLAMA && hp.rope_neox;
    for (uint64_t i = 0; i < mf.n_tensors; i++) {
        const rs_tensor_info *t = &mf.tensors[i];
        outs[i] = *t;
        outs[i].data = NULL;
        outs[i].type = rs_quantize_target_type(t, p, hp.n_layer,
                                               hp.n_head_kv > 0 ? hp.n_head / hp.n_head_kv : 1);
        size_t row;
        if (!rs_dtype_get(t->type)->to_f32 && outs[i].type != t->type) {
            st = rs_error_set(err, RS_ERR_UNSUPPORTED, "tensor '%s': cannot read type %s", t->name,
                              rs_dtype_name(t->type));
            goto done;
        }
        rs_dtype_row_size(outs[i].type, t->n_dims ? t->ne[0] : 1, &row);
        outs[i].nbytes =
            (uint64_t)row * (uint64_t)(rs_tensor_nelements(t) / (t->n_dims ? t->ne[0] : 1));
    }
    rs_cpu_info cpu;
    rs_cpu_detect(&cpu);
    if ((st = build_meta(&mf, p, &meta))) {
        rs_error_set(err, st, "out of memory");
        goto done;
    }
    if ((st = rs_threadpool_create(&tp, p->n_threads > 0 ? p->n_threads : cpu.n_physical, err)) ||
        (st = rs_gguf_writer_open(&w, out_path, &meta, outs, mf.n_tensors, err)))
        goto done;
    if ((st = write_tensors(w, &mf, outs, &hp, unpermute, tp, p, err))) {
        rs_gguf_writer_abort(w);
        w = NULL;
        goto done;
    }
    st = rs_gguf_writer_close(w, err);
    w = NULL;
done:
    if (w) rs_gguf_writer_abort(w);
    rs_threadpool_free(tp);
    rs_meta_free(&meta);
    free(outs);
    rs_model_file_close(&mf);
    return st;
}
