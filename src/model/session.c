/* session.c — session setup: backends, layer placement, weights, KV cache, buffers. */
#include "model/session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/cpu.h"
#include "dtype/dtype.h"
#include "model/session_impl.h"

enum { DEFAULT_BATCH = 512, BUF_ALIGN = 256 };

void rs_session_opts_default(rs_session_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_batch = DEFAULT_BATCH;
    o->device = RS_DEVICE_AUTO;
    o->n_gpu_layers = -1;
    o->kv_type = RS_KV_F16;
}

static uint64_t kv_bytes_per_pos(const rs_hparams *hp, rs_kv_type t) {
    /* one head row: head_dim values, or ceil(head_dim / 32) Q8_0 blocks of 34 bytes (Q4_0: 18) */
    const uint64_t blocks = ((uint64_t)hp->head_dim + 31) / 32;
    uint64_t row = t == RS_KV_F32    ? 4ull * hp->head_dim
                   : t == RS_KV_Q8_0 ? blocks * 34
                   : t == RS_KV_Q4_0 ? blocks * 18
                                     : 2ull * hp->head_dim;
    return 2ull * hp->n_layer * hp->n_head_kv * row;
}

/* The model's context, reduced (in steps of 256) until the KV cache takes at
 * most a quarter of physical memory and 4 GiB. */
static int default_ctx(const rs_hparams *hp, rs_kv_type t) {
    uint64_t per_pos = kv_bytes_per_pos(hp, t);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t budget = (pages > 0 && page > 0) ? (uint64_t)pages * (uint64_t)page / 4 : (1ull << 30);
    if (budget > (4ull << 30)) budget = 4ull << 30;
    uint64_t n = budget / per_pos;
    if (n >= (uint64_t)hp->n_ctx_train) return hp->n_ctx_train;
    n -= n % 256;
    return n < 256 ? 256 : (int)n;
}

/* Carves the place's activation buffers out of one backend allocation. */
static rs_status alloc_acts(rs_session *s, rs_place *p, bool full, bool head, rs_error *err) {
    const rs_hparams *hp = &s->m->hp;
    size_t B = (size_t)s->n_batch, D = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim;
    size_t KV = (size_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    struct {
        void **ptr;
        size_t bytes;
    } table[] = {
        {(void **)&p->a.x, B * D * 4},
        {(void **)&p->a.xn, full ? B * D * 4 : 0},
        {(void **)&p->a.q, full ? B * Q * 4 : 0},
        {(void **)&p->a.k, full ? B * KV * 4 : 0},
        {(void **)&p->a.v, full ? B * KV * 4 : 0},
        {(void **)&p->a.att, full ? B * Q * 4 : 0},
        {(void **)&p->a.tmp, full ? B * D * 4 : 0},
        {(void **)&p->a.g, full ? B * F * 4 : 0},
        {(void **)&p->a.u, full ? B * F * 4 : 0},
        {(void **)&p->a.logits, head ? B * V * 4 : 0},
        {(void **)&p->a.pos, B * 4},
        {(void **)&p->a.ids, B * 4},
        {(void **)&p->a.inv_freq, (size_t)hp->n_rot / 2 * 4},
        {(void **)&p->a.rule, head ? sizeof(rs_sample_rule) : 0},
    };
    size_t n = sizeof table / sizeof *table, total = 0;
    for (size_t i = 0; i < n; i++)
        total += (table[i].bytes + BUF_ALIGN - 1) / BUF_ALIGN * BUF_ALIGN;
    void *base;
    rs_status st = p->be->ops->alloc(p->be, total, &base, err);
    if (st) return st;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *table[i].ptr = table[i].bytes ? (char *)base + off : NULL;
        off += (table[i].bytes + BUF_ALIGN - 1) / BUF_ALIGN * BUF_ALIGN;
    }
    p->a_base = base;
    return RS_OK;
}

static rs_status load_weight(rs_backend *be, rs_weight *w, rs_error *err) {
    if (!w->host) return RS_OK; /* optional weight absent */
    return be->ops->weight_load(be, w, err);
}

/* Rotate-half (NeoX) RoPE pairs dims (j, j + n_rot/2) of a head. A device place runs
 * adjacent pairs (2j, 2j+1) instead, the pairing its fused qkv + rope kernels take:
 * the q and k rows (and biases) of each head go up reordered so that dim 2j holds
 * old dim j and dim 2j+1 old dim j + n_rot/2, and the place's rope says adjacent.
 * q and k are permuted alike, so every score q.k, and the output, is unchanged. */
static bool place_pairs_adjacent(const rs_session *s, const rs_place *p) {
    return s->m->hp.rope_neox && !p->be->is_host;
}

static rs_status load_pairs_adjacent(rs_backend *be, rs_weight *w, const rs_hparams *hp,
                                     rs_error *err) {
    if (!w->host) return RS_OK;
    const bool vec = w->n_out == 1; /* a bias: permute elements, else whole rows */
    const int64_t n = vec ? w->n_in : w->n_out;
    const rs_dtype_traits *tr = rs_dtype_get(w->type);
    size_t unit = 0;
    if (vec ? tr->block_size != 1 : !rs_dtype_row_size(w->type, w->n_in, &unit))
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "tensor '%s': cannot reorder %s rows", w->name,
                            rs_dtype_name(w->type));
    if (vec) unit = tr->type_size;
    if (n % hp->head_dim || (size_t)n * unit > w->nbytes)
        return rs_error_set(err, RS_ERR_FORMAT, "tensor '%s': %lld rows are not whole heads of %d",
                            w->name, (long long)n, hp->head_dim);
    uint8_t *buf = malloc((size_t)n * unit);
    if (!buf) return rs_error_set(err, RS_ERR_NOMEM, "out of memory reordering '%s'", w->name);
    const int half = hp->n_rot / 2;
    for (int64_t h = 0; h < n / hp->head_dim; h++)
        for (int d = 0; d < hp->head_dim; d++) {
            const int src = d >= hp->n_rot ? d : (d & 1) ? half + d / 2 : d / 2;
            memcpy(buf + ((size_t)h * hp->head_dim + d) * unit,
                   (const uint8_t *)w->host + ((size_t)h * hp->head_dim + src) * unit, unit);
        }
    /* the backend copies the bytes during the load (it keeps no host pointer) */
    const void *file_rows = w->host;
    w->host = buf;
    rs_status st = be->ops->weight_load(be, w, err);
    w->host = file_rows;
    free(buf);
    return st;
}

static rs_status load_layer(rs_session *s, rs_place *p, int l, rs_error *err) {
    rs_layer_weights *L = &s->lw[l];
    *L = s->m->layers[l];
    rs_weight *all[] = {&L->attn_norm, &L->wq, &L->wk,       &L->wv,   &L->wo, &L->bq,
                        &L->bk,        &L->bv, &L->ffn_norm, &L->gate, &L->up, &L->down};
    const bool adjacent = place_pairs_adjacent(s, p);
    // NOLINTNEXTLINE(bugprone-sizeof-expression): count of an array of pointers
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        rs_weight *w = all[i];
        const bool qk = w == &L->wq || w == &L->wk || w == &L->bq || w == &L->bk;
        rs_status st = adjacent && qk ? load_pairs_adjacent(p->be, w, &s->m->hp, err)
                                      : load_weight(p->be, w, err);
        if (st) return st;
    }
    return RS_OK;
}

/* Sets up one place: weights of its layers, KV cache, buffers, rope table. */
static rs_status init_place(rs_session *s, rs_place *p, rs_error *err) {
    const rs_hparams *hp = &s->m->hp;
    rs_status st;
    for (int l = p->first_layer; l < p->first_layer + p->n_layers; l++)
        if ((st = load_layer(s, p, l, err))) return st;
    bool head = p == s->out_place;
    if (head) {
        s->output_norm = s->m->output_norm;
        s->output = s->m->output;
        if ((st = load_weight(p->be, &s->output_norm, err)) ||
            (st = load_weight(p->be, &s->output, err)))
            return st;
    }
    if (!p->be->is_host && p->first_layer == 0 && p->n_layers > 0) {
        p->tok_embd = s->m->tok_embd;
        rs_error e2 = {0};
        if (load_weight(p->be, &p->tok_embd, &e2) != RS_OK)
            p->tok_embd = (rs_weight){0}; /* a type it cannot read: the CPU embeds */
    }
    if ((st = alloc_acts(s, p, p->n_layers > 0 || head, head, err))) return st;
    if (p->n_layers > 0) {
        rs_kv_desc d = {p->n_layers, s->n_ctx, hp->n_head_kv, hp->head_dim, s->kv_type};
        if ((st = p->be->ops->kv_create(p->be, &d, &p->kv, err))) return st;
    }
    size_t bytes = (size_t)hp->n_rot / 2 * sizeof(float);
    float *inv_freq = malloc(bytes);
    if (!inv_freq) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    rs_hparams_rope_freqs(hp, s->m->rope_freq_factors, inv_freq);
    p->rope =
        (rs_rope){hp->rope_neox && !place_pairs_adjacent(s, p), hp->n_rot, p->a.inv_freq, 1.0f};
    st = p->be->ops->upload(p->be, p->a.inv_freq, inv_freq, bytes, err);
    free(inv_freq);
    return st;
}

/* Creates the backends and decides which layers each runs. */
static rs_status place_layers(rs_session *s, const rs_session_opts *o, rs_error *err) {
    int L = s->m->hp.n_layer;
    rs_status st = rs_cpu_backend_create(&s->place[RS_PLACE_CPU].be, s->n_threads, err);
    if (st) return st;
    s->n_place = 1;
    int n_gpu = o->n_gpu_layers < 0 || o->n_gpu_layers > L ? L : o->n_gpu_layers;
    if (o->device != RS_DEVICE_CPU && n_gpu > 0) {
        rs_error gerr = {0};
        st = rs_cuda_backend_create(&s->place[RS_PLACE_GPU].be, &gerr);
        /* without a usable GPU "auto" runs on the CPU; a bad setting
         * ($RUSTY_CUDA_TUNE) is an error either way */
        if (st && (o->device == RS_DEVICE_CUDA || st == RS_ERR_ARG)) {
            if (err) *err = gerr;
            return st;
        }
        if (!st) s->n_place = 2;
    }
    if (s->n_place == 1) n_gpu = 0;
    s->n_gpu_layers = n_gpu;
    s->place[RS_PLACE_CPU].first_layer = 0;
    s->place[RS_PLACE_CPU].n_layers = L - n_gpu;
    s->place[RS_PLACE_GPU].first_layer = L - n_gpu;
    s->place[RS_PLACE_GPU].n_layers = n_gpu;
    s->out_place = n_gpu > 0 ? &s->place[RS_PLACE_GPU] : &s->place[RS_PLACE_CPU];
    return RS_OK;
}

/* The host ends of the per-step copies (logits, positions, ids). Page-locked
 * from the GPU's backend when there is one: a copy then goes straight to or
 * from them instead of through the driver's staging buffer (~7 us per 7B
 * decode step on the H100, docs/CUDA_NOTES.md session 5). */
static rs_status alloc_host_buffers(rs_session *s, rs_error *err) {
    const size_t nb = (size_t)s->n_batch, logit_bytes = nb * s->m->hp.n_vocab * sizeof(float);
    /* the 8-byte-aligned chain buffers first, then the floats and the ids */
    const size_t rng_bytes = RS_GREEDY_RING * 4 * sizeof(uint64_t),
                 rule_bytes = RS_GREEDY_RING * sizeof(rs_sample_rule);
    const size_t bytes =
        rng_bytes + rule_bytes + logit_bytes + (2 * nb + 3 * RS_GREEDY_RING) * sizeof(int32_t);
    rs_backend *gpu = s->n_place > 1 ? s->place[RS_PLACE_GPU].be : NULL;
    rs_error ignored = {0};
    if (gpu && gpu->ops->host_alloc &&
        gpu->ops->host_alloc(gpu, bytes, &s->host_base, &ignored) == RS_OK)
        s->host_owner = gpu;
    else if (!(s->host_base = malloc(bytes)))
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory allocating session buffers");
    char *base = s->host_base;
    s->chain_rng_host = (uint64_t *)(void *)base;
    s->rule_host = (rs_sample_rule *)(void *)(base + rng_bytes);
    s->logits_host = (float *)(void *)(base + rng_bytes + rule_bytes);
    s->pos_host = (int32_t *)(void *)(base + rng_bytes + rule_bytes + logit_bytes);
    s->ids_host = s->pos_host + nb;
    s->greedy_host = s->ids_host + nb;
    return RS_OK;
}

rs_status rs_session_create(rs_session **out, const rs_model *m, const rs_session_opts *o,
                            rs_error *err) {
    *out = NULL;
    const rs_hparams *hp = &m->hp;
    rs_session_opts def;
    if (!o) {
        rs_session_opts_default(&def);
        o = &def;
    }
    if (o->n_ctx < 0 || o->n_batch < 0 || o->n_threads < 0)
        return rs_error_set(err, RS_ERR_ARG,
                            "context, batch and thread counts must not be negative");
    rs_session *s = calloc(1, sizeof *s);
    if (!s) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    s->m = m;
    s->kv_type = o->kv_type;
    s->n_ctx = o->n_ctx ? o->n_ctx : default_ctx(hp, o->kv_type);
    s->n_batch = o->n_batch ? o->n_batch : DEFAULT_BATCH;
    if (s->n_batch > s->n_ctx) s->n_batch = s->n_ctx;
    rs_cpu_info cpu;
    rs_cpu_detect(&cpu);
    s->n_threads = o->n_threads ? o->n_threads : cpu.n_physical;
    s->attn =
        (rs_attn){hp->n_head, hp->n_head_kv, hp->head_dim, 1.0f / sqrtf((float)hp->head_dim), 0};
    s->lw = calloc((size_t)hp->n_layer, sizeof *s->lw);
    rs_status st = RS_ERR_NOMEM;
    if (!s->lw) {
        rs_error_set(err, st, "out of memory allocating session buffers");
        goto fail;
    }
    if ((st = place_layers(s, o, err))) goto fail;
    if ((st = alloc_host_buffers(s, err))) goto fail;
    for (int k = 0; k < s->n_place; k++) {
        if ((st = init_place(s, &s->place[k], err))) {
            if (k == RS_PLACE_GPU && st == RS_ERR_UNSUPPORTED && o->device == RS_DEVICE_AUTO) {
                /* the GPU cannot run this model (a weight type without a kernel): the
                 * CPU can, and "auto" means wherever it runs */
                rs_session_opts on_cpu = *o;
                on_cpu.device = RS_DEVICE_CPU;
                rs_session_free(s);
                char why[RS_ERROR_MSG_MAX];
                snprintf(why, sizeof why, "%s", err ? err->msg : "unsupported");
                if ((st = rs_session_create(out, m, &on_cpu, err))) return st;
                snprintf((*out)->note, sizeof(*out)->note,
                         "running on the CPU: the GPU cannot (%s)", why);
                return RS_OK;
            }
            if (k == RS_PLACE_GPU && st == RS_ERR_UNSUPPORTED)
                rs_error_prefix(err, "GPU setup (--device cpu runs this model)");
            else if (k == RS_PLACE_GPU)
                rs_error_prefix(
                    err,
                    "GPU setup (%d layers, context %d; try fewer --gpu-layers or a smaller -c)",
                    s->n_gpu_layers, s->n_ctx);
            goto fail;
        }
    }
    *out = s;
    return RS_OK;
fail:
    rs_session_free(s);
    return st;
}

void rs_session_free(rs_session *s) {
    if (!s) return;
    if (s->host_owner)
        s->host_owner->ops->host_free(s->host_owner, s->host_base); /* before its backend goes */
    else
        free(s->host_base);
    for (int k = s->n_place - 1; k >= 0; k--) {
        rs_place *p = &s->place[k];
        if (!p->be) continue;
        if (p->kv) p->be->ops->kv_destroy(p->be, p->kv);
        if (p->a_base) p->be->ops->release(p->be, p->a_base);
        for (int l = p->first_layer; l < p->first_layer + p->n_layers && s->lw; l++) {
            rs_layer_weights *L = &s->lw[l];
            rs_weight *all[] = {&L->attn_norm, &L->wq, &L->wk,       &L->wv,   &L->wo, &L->bq,
                                &L->bk,        &L->bv, &L->ffn_norm, &L->gate, &L->up, &L->down};
            // NOLINTNEXTLINE(bugprone-sizeof-expression): count of an array of pointers
            for (size_t i = 0; i < sizeof all / sizeof *all; i++)
                if (all[i]->backend) p->be->ops->weight_unload(p->be, all[i]);
        }
        if (p == s->out_place) {
            if (s->output_norm.backend) p->be->ops->weight_unload(p->be, &s->output_norm);
            if (s->output.backend) p->be->ops->weight_unload(p->be, &s->output);
        }
        if (p->tok_embd.backend) p->be->ops->weight_unload(p->be, &p->tok_embd);
        p->be->ops->destroy(p->be);
    }
    free(s->lw);
    free(s);
}

rs_status rs_session_eval(rs_session *s, const int32_t *ids, int n, rs_logits_mode mode,
                          rs_error *err) {
    if (n <= 0) return rs_error_set(err, RS_ERR_ARG, "nothing to evaluate");
    rs_status cs = rs_greedy_settle(s, err);
    if (cs) return cs;
    if (mode == RS_LOGITS_ALL && n > s->n_batch)
        return rs_error_set(err, RS_ERR_ARG,
                            "all-logits evaluation of %d tokens exceeds the batch size %d", n,
                            s->n_batch);
    if (n > s->n_ctx - s->n_past)
        return rs_error_set(err, RS_ERR_RANGE,
                            "context full: %d tokens in a context of %d, %d more requested",
                            s->n_past, s->n_ctx, n);
    int n_vocab = s->m->hp.n_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return rs_error_set(err, RS_ERR_RANGE, "token id %d out of range [0, %d)", ids[i],
                                n_vocab);
    for (int done = 0; done < n;) {
        int chunk = n - done < s->n_batch ? n - done : s->n_batch;
        /* chunks before the last need no logits, only their keys and values */
        int n_out = mode == RS_LOGITS_ALL ? chunk : done + chunk == n ? 1 : 0;
        rs_status st = rs_forward(s, ids + done, chunk, n_out, err);
        if (st) return st;
        s->n_past += chunk;
        done += chunk;
    }
    return RS_OK;
}

const float *rs_session_logits(const rs_session *s, int i) {
    if (i < 0 || i >= s->n_logits) return NULL;
    return s->logits_host + (size_t)i * s->m->hp.n_vocab;
}

int rs_session_n_past(const rs_session *s) {
    return s->n_past;
}
int rs_session_n_ctx(const rs_session *s) {
    return s->n_ctx;
}

void rs_session_truncate(rs_session *s, int n) {
    rs_error err = {0};
    rs_status st = rs_greedy_settle(s, &err);
    if (st && !s->greedy_status) s->greedy_status = st, s->greedy_err = err; /* eval reports it */
    if (n >= 0 && n < s->n_past) s->n_past = n;
}

void rs_session_get_info(const rs_session *s, rs_session_info *info) {
    memset(info, 0, sizeof *info);
    int L = s->m->hp.n_layer;
    info->backend = s->n_gpu_layers == 0 ? "cpu" : s->n_gpu_layers == L ? "cuda" : "cuda+cpu";
    info->n_threads = s->n_threads;
    info->n_gpu_layers = s->n_gpu_layers;
    info->n_ctx = s->n_ctx;
    info->n_batch = s->n_batch;
    info->kv_bytes_per_pos = kv_bytes_per_pos(&s->m->hp, s->kv_type);
    info->kv_bytes = info->kv_bytes_per_pos * (uint64_t)s->n_ctx;
    info->note = s->note[0] ? s->note : NULL;
}

rs_status rs_session_bandwidth(rs_session *s, double *gbps, rs_error *err) {
    rs_backend *be = s->out_place->be;
    if (!be->ops->bandwidth)
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "the %s backend cannot measure bandwidth",
                            be->ops->name);
    return be->ops->bandwidth(be, gbps, err);
}
