/* hparams.c — hyper-parameters from GGUF-named metadata (see hparams.h). */
#include "model/hparams.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MAX_DIM = 1 << 20, MAX_LAYERS = 4096, MAX_HEADS = 4096 };

/* Reads <arch>.<suffix> as a positive int <= max; optional keys keep *out when absent. */
static rs_status get_int(const rs_meta *m, const char *arch, const char *suffix, bool required,
                         int max, int *out, rs_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint64_t v;
    rs_status st = rs_meta_get_u64(m, key, &v, err);
    if (st == RS_ERR_NOT_FOUND && !required) return RS_OK;
    if (st) return st;
    if (v == 0 || v > (uint64_t)max)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "metadata key '%s': value %llu out of range [1, %d]", key,
                            (unsigned long long)v, max);
    *out = (int)v;
    return RS_OK;
}

static rs_status get_float(const rs_meta *m, const char *arch, const char *suffix, double *out,
                           rs_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    rs_status st = rs_meta_get_f64(m, key, &v, err);
    if (st == RS_ERR_NOT_FOUND) return RS_OK;
    if (st) return st;
    if (!isfinite(v) || v <= 0)
        return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': value %g must be positive", key,
                            v);
    *out = v;
    return RS_OK;
}

static bool str_is(rs_str s, const char *lit) {
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static rs_status read_rope_scaling(rs_hparams *hp, const rs_meta *m, rs_error *err) {
    const char *a = hp->arch_name;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    rs_str type = {"none", 4};
    rs_status st = rs_meta_get_str(m, key, &type, err);
    if (st && st != RS_ERR_NOT_FOUND) return st;
    double factor = 1.0;
    if ((st = get_float(m, a, "rope.scaling.factor", &factor, err))) return st;
    if (factor == 1.0) /* older files: rope.scale_linear */
        if ((st = get_float(m, a, "rope.scale_linear", &factor, err))) return st;
    hp->rope_factor = factor;
    if (str_is(type, "none") || str_is(type, "linear")) {
        hp->rope_scaling = factor != 1.0 ? RS_ROPE_SCALING_LINEAR : RS_ROPE_SCALING_NONE;
        return RS_OK;
    }
    if (str_is(type, "llama3")) {
        hp->rope_scaling = RS_ROPE_SCALING_LLAMA3;
        hp->rope_low_freq_factor = 1.0;
        hp->rope_high_freq_factor = 4.0;
        hp->rope_orig_ctx = 8192;
        if ((st =
                 get_float(m, a, "rope.scaling.low_freq_factor", &hp->rope_low_freq_factor, err)) ||
            (st = get_float(m, a, "rope.scaling.high_freq_factor", &hp->rope_high_freq_factor,
                            err)) ||
            (st = get_int(m, a, "rope.scaling.original_context_length", false, 1 << 30,
                          &hp->rope_orig_ctx, err)))
            return st;
        if (hp->rope_high_freq_factor <= hp->rope_low_freq_factor)
            return rs_error_set(
                err, RS_ERR_FORMAT,
                "llama3 rope scaling: high_freq_factor must exceed low_freq_factor");
        return RS_OK;
    }
    return rs_error_set(err, RS_ERR_UNSUPPORTED,
                        "metadata key '%s': rope scaling '%.*s' is not supported", key,
                        (int)(type.len > 32 ? 32 : type.len), type.ptr);
}

rs_status rs_hparams_from_meta(rs_hparams *hp, const rs_meta *m, rs_error *err) {
    memset(hp, 0, sizeof *hp);
    rs_str arch;
    rs_status st = rs_meta_get_str(m, "general.architecture", &arch, err);
    if (st) return st;
    if (str_is(arch, "llama"))
        hp->arch = RS_ARCH_LLAMA;
    else if (str_is(arch, "qwen2"))
        hp->arch = RS_ARCH_QWEN2;
    else
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "architecture '%.*s' is not supported (supported: llama, qwen2)",
                            (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)arch.len, arch.ptr);
    const char *a = hp->arch_name;

    hp->n_ctx_train = 2048;
    if ((st = get_int(m, a, "embedding_length", true, MAX_DIM, &hp->n_embd, err)) ||
        (st = get_int(m, a, "feed_forward_length", true, MAX_DIM, &hp->n_ff, err)) ||
        (st = get_int(m, a, "block_count", true, MAX_LAYERS, &hp->n_layer, err)) ||
        (st = get_int(m, a, "attention.head_count", true, MAX_HEADS, &hp->n_head, err)) ||
        (st = get_int(m, a, "context_length", false, 1 << 30, &hp->n_ctx_train, err)))
        return st;
    hp->n_head_kv = hp->n_head;
    if ((st = get_int(m, a, "attention.head_count_kv", false, MAX_HEADS, &hp->n_head_kv, err)))
        return st;
    if (hp->n_head % hp->n_head_kv != 0)
        return rs_error_set(err, RS_ERR_FORMAT, "%s: %d heads is not a multiple of %d kv heads", a,
                            hp->n_head, hp->n_head_kv);
    hp->head_dim = 0;
    if ((st = get_int(m, a, "attention.key_length", false, MAX_DIM, &hp->head_dim, err))) return st;
    if (hp->head_dim == 0) {
        if (hp->n_embd % hp->n_head != 0)
            return rs_error_set(err, RS_ERR_FORMAT,
                                "%s: embedding %d is not a multiple of %d heads", a, hp->n_embd,
                                hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    int v_len = hp->head_dim;
    if ((st = get_int(m, a, "attention.value_length", false, MAX_DIM, &v_len, err))) return st;
    if (v_len != hp->head_dim)
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "%s: value_length %d != key_length %d", a,
                            v_len, hp->head_dim);
    if (hp->head_dim % 2 != 0 || hp->head_dim > RS_MAX_HEAD_DIM)
        return rs_error_set(err, RS_ERR_FORMAT, "%s: head size %d is odd or above %d", a,
                            hp->head_dim, RS_MAX_HEAD_DIM);

    double eps = 1e-5;
    if ((st = get_float(m, a, "attention.layer_norm_rms_epsilon", &eps, err))) return st;
    hp->rms_eps = (float)eps;

    hp->n_rot = hp->head_dim;
    if ((st = get_int(m, a, "rope.dimension_count", false, MAX_DIM, &hp->n_rot, err))) return st;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "%s: rope.dimension_count %d invalid for head size %d", a, hp->n_rot,
                            hp->head_dim);
    hp->rope_base = 10000.0;
    if ((st = get_float(m, a, "rope.freq_base", &hp->rope_base, err))) return st;
    bool neox_layout = false;
    st = rs_meta_get_bool(m, "rusty.rope_neox", &neox_layout, err);
    if (st && st != RS_ERR_NOT_FOUND) return st;
    hp->rope_neox = hp->arch == RS_ARCH_QWEN2 || neox_layout;
    return read_rope_scaling(hp, m, err);
}

void rs_hparams_rope_freqs(const rs_hparams *hp, const float *freq_factors, float *inv_freq) {
    int half = hp->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double f = pow(hp->rope_base, -2.0 * i / hp->n_rot);
        if (hp->rope_scaling == RS_ROPE_SCALING_LINEAR) f /= hp->rope_factor;
        if (hp->rope_scaling == RS_ROPE_SCALING_LLAMA3) {
            /* Llama 3.1: long wavelengths are slowed by factor, short ones kept,
             * the band between blended smoothly. */
            double wavelen = 2.0 * M_PI / f;
            double low_wl = hp->rope_orig_ctx / hp->rope_low_freq_factor;
            double high_wl = hp->rope_orig_ctx / hp->rope_high_freq_factor;
            if (wavelen > low_wl) {
                f /= hp->rope_factor;
            } else if (wavelen >= high_wl) {
                double smooth = (hp->rope_orig_ctx / wavelen - hp->rope_low_freq_factor) /
                                (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
                f = (1.0 - smooth) * f / hp->rope_factor + smooth * f;
            }
        }
        if (freq_factors) f /= freq_factors[i];
        inv_freq[i] = (float)f;
    }
}
