/* forward.c — the Llama-family forward pass, written once for every backend.
 *
 * Per layer:  xn = norm(x);  q,k,v = xn Wq,Wk,Wv (+b);  rope(q,k), store k,v;
 *             att = softmax(q k^T / sqrt(d)) v;  x += att Wo;
 *             xn = norm(x);  x += (silu(xn Wg) * (xn Wu)) Wd
 * When only the last token's logits are wanted, the model's last layer runs
 * its products after attention on that row alone.
 * Each residual add is issued together with the norm that follows it
 * (matmul_residual), so a norm is a separate op only at the first layer a
 * backend runs or when the stream moves between backends. */
#include <limits.h>
#include <string.h>

#include "model/session_impl.h"

/* The norm applied to the residual stream right after global layer l, when it
 * runs on place p too: the next layer's attention norm, or the output norm. */
static const rs_weight *norm_after(const rs_session *s, const rs_place *p, int l) {
    if (l + 1 < p->first_layer + p->n_layers) return &s->lw[l + 1].attn_norm;
    if (l + 1 == s->m->hp.n_layer && p == s->out_place) return &s->output_norm;
    return NULL;
}

/* Tells p's backend that global layer l's products come next (if p runs it);
 * a pruned layer runs only its q, k, v products on all n tokens. */
static void prepare_layer(const rs_session *s, const rs_place *p, int l, int n, bool pruned) {
    if (!p->be->ops->prepare || l >= p->first_layer + p->n_layers) return;
    const rs_layer_weights *L = &s->lw[l];
    const rs_weight *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    p->be->ops->prepare(p->be, w, pruned ? 3 : 7, n);
}

/* Whether global layer l runs on n_out of its n rows after its attention: the
 * model's last layer, when fewer rows than n leave it. Its attention still
 * stores every token's keys and values; the rows after it feed only the head.
 * Row offsets must keep the backends' 16-byte row alignment. */
static bool layer_pruned(const rs_hparams *hp, int l, int n, int n_out) {
    return l == hp->n_layer - 1 && n_out < n && hp->n_embd % 4 == 0 &&
           (hp->n_head * hp->head_dim) % 4 == 0;
}

/* Runs layers of place p on n tokens, of which the last n_out must come out of
 * the model's last layer. *normed says a.xn already holds the normed residual
 * stream for the next layer (or the head) at the rows that came out. */
static void run_layers(rs_session *s, rs_place *p, int n, int n_out, bool *normed) {
    const rs_hparams *hp = &s->m->hp;
    rs_backend *be = p->be;
    const rs_backend_ops *ops = be->ops;
    rs_acts *a = &p->a;
    const rs_layer_weights *lw = s->lw;
    prepare_layer(s, p, p->first_layer, n, layer_pruned(hp, p->first_layer, n, n_out));
    for (int i = 0; i < p->n_layers; i++) {
        const int l = p->first_layer + i;
        const rs_layer_weights *L = &lw[l];
        prepare_layer(s, p, l + 1, n, layer_pruned(hp, l + 1, n, n_out));
        if (!*normed) ops->rmsnorm(be, a->x, &L->attn_norm, hp->rms_eps, n, a->xn);
        bool bias = L->has_bias;
        rs_matmul qkv[3] = {
            {&L->wq, bias ? &L->bq : NULL, a->q},
            {&L->wk, bias ? &L->bk : NULL, a->k},
            {&L->wv, bias ? &L->bv : NULL, a->v},
        };
        ops->matmul_rope_store(be, qkv, a->xn, n, a->pos, &p->rope, &s->attn, p->kv, i);
        ops->attention(be, a->q, p->kv, i, a->pos, n, &s->attn, a->att);
        const int rows = layer_pruned(hp, l, n, n_out) ? n_out : n, skip = n - rows;
        const rs_weight *next = norm_after(s, p, l);
        *normed = rows > 0 && next != NULL;
        if (rows == 0) continue; /* no logits wanted: the cache is all this layer leaves */
        const float *att = a->att + (size_t)skip * hp->n_head * hp->head_dim;
        float *x = a->x + (size_t)skip * hp->n_embd, *xn = a->xn + (size_t)skip * hp->n_embd;
        ops->matmul_residual(be, &L->wo, att, rows, x, &L->ffn_norm, hp->rms_eps, xn);
        ops->matmul_swiglu(be, &L->gate, &L->up, xn, rows, a->g, a->u);
        ops->matmul_residual(be, &L->down, a->g, rows, x, next, hp->rms_eps, xn);
    }
}

/* Moves the residual stream from place `from` to place `to`. */
static rs_status move_stream(const rs_place *from, const rs_place *to, size_t bytes,
                             rs_error *err) {
    if (to->be->is_host) return from->be->ops->download(from->be, to->a.x, from->a.x, bytes, err);
    if (from->be->is_host) return to->be->ops->upload(to->be, to->a.x, from->a.x, bytes, err);
    return rs_error_set(err, RS_ERR_UNSUPPORTED, "device-to-device transfers are not supported");
}

/* Final norm and output head on the output place; logits stay in backend memory. */
static void run_head(rs_session *s, int n, int rows, bool normed) {
    const rs_hparams *hp = &s->m->hp;
    rs_place *p = s->out_place;
    const rs_backend_ops *ops = p->be->ops;
    if (!normed) ops->rmsnorm(p->be, p->a.x, &s->output_norm, hp->rms_eps, n, p->a.xn);
    const float *in = p->a.xn + (size_t)(n - rows) * hp->n_embd;
    rs_matmul head = {&s->output, NULL, p->a.logits};
    ops->matmul(p->be, &head, 1, in, rows);
}

/* The band of context lengths a decode step at ctx positions belongs to:
 * powers of two from 32, the last one cut at the cache's size. */
static int decode_band(int ctx, int n_ctx) {
    int band = 32;
    while (band < ctx && band < n_ctx) band *= 2;
    return band < n_ctx ? band : n_ctx;
}

/* How a captured decode step meets the host. */
typedef enum step_io {
    STEP_PLAIN,      /* inputs and logits are moved by the caller, outside the graph */
    STEP_COPIES,     /* the graph uploads position and id and downloads the logits itself */
    STEP_GREEDY,     /* the graph reads the id and position the previous step left on the
                         device and picks the next token there (rs_session_greedy_step) */
    STEP_SAMPLE,     /* the same, the token drawn by the device's sample rule */
    STEP_GREEDY_PEN, /* STEP_GREEDY after the rule's penalties (a greedy chain with them) */
    STEP_SAMPLE_PEN, /* STEP_SAMPLE after the rule's penalties */
} step_io;

/* The graph key of a step kind at a band: plain steps the band, chained ones apart from
 * them and from one another (rs_forward_chain_on_device keeps bands below 2^29). */
static int step_key(step_io io, int band) {
    switch (io) {
    case STEP_GREEDY:
        return -band;
    case STEP_SAMPLE:
        return INT_MIN + band;
    case STEP_GREEDY_PEN:
        return INT_MIN + (1 << 29) + band;
    case STEP_SAMPLE_PEN:
        return INT_MIN + (1 << 30) + band;
    default:
        return band;
    }
}

/* The GPU-only decode step (with the embedding lookup when the GPU holds the
 * table), captured as a graph once per band of context lengths (and per kind
 * of step_io) and replayed afterwards. The band bounds the attention's context
 * (rs_attn.ctx_max), so a backend may capture kernels for short contexts into
 * the first bands. With STEP_COPIES the graph moves the position (and the
 * token id, for the embedding) from the session's page-locked buffers and the
 * logits into them: one launch is the whole step, and the GPU waits for no
 * copy issued from the host between steps. */
static rs_status run_captured_decode(rs_session *s, rs_place *p, step_io io, rs_error *err) {
    rs_backend *be = p->be;
    const rs_backend_ops *ops = be->ops;
    const int band = decode_band(s->n_past + 1, s->n_ctx);
    const int key = step_key(io, band);
    if (ops->graph_launch(be, key)) return RS_OK;
    rs_status st = ops->graph_begin(be, key, err);
    if (st) return st;
    const bool embed = p->tok_embd.backend != NULL;
    if (io == STEP_COPIES &&
        ((st = ops->upload(be, p->a.pos, s->pos_host, sizeof *s->pos_host, err)) ||
         (embed && (st = ops->upload(be, p->a.ids, s->ids_host, sizeof *s->ids_host, err))))) {
        ops->graph_end(be, key, NULL); /* closes the capture; the upload's error is the news */
        return st;
    }
    if (embed) ops->embed(be, &p->tok_embd, p->a.ids, 1, p->a.x);
    bool normed = false;
    s->attn.ctx_max = band;
    run_layers(s, p, 1, 1, &normed);
    s->attn.ctx_max = 0;
    run_head(s, 1, 1, normed);
    const int n_vocab = s->m->hp.n_vocab;
    if (io == STEP_GREEDY_PEN || io == STEP_SAMPLE_PEN)
        ops->penalize(be, p->a.logits, n_vocab, p->a.rule);
    if (io == STEP_GREEDY)
        ops->greedy_pick(be, p->a.logits, n_vocab, NULL, p->a.ids, p->a.pos, s->greedy_host, NULL,
                         RS_GREEDY_RING);
    else if (io == STEP_GREEDY_PEN)
        ops->greedy_pick(be, p->a.logits, n_vocab, p->a.rule, p->a.ids, p->a.pos, s->greedy_host,
                         s->chain_rng_host, RS_GREEDY_RING);
    else if (io == STEP_SAMPLE || io == STEP_SAMPLE_PEN)
        ops->sample_pick(be, p->a.logits, n_vocab, p->a.rule, p->a.ids, p->a.pos, s->greedy_host,
                         s->chain_rng_host, RS_GREEDY_RING);
    const size_t logit_bytes = (size_t)n_vocab * sizeof(float);
    if (io == STEP_COPIES &&
        (st = ops->download(be, s->logits_host, p->a.logits, logit_bytes, err))) {
        ops->graph_end(be, key, NULL);
        return st;
    }
    if ((st = ops->graph_end(be, key, err))) return st;
    if (!ops->graph_launch(be, key))
        return rs_error_set(err, RS_ERR_DEVICE, "captured decode graph failed to launch");
    return RS_OK;
}

/* Decode steps run as captured graphs: the GPU holds every layer. */
static bool captures_decode(const rs_session *s) {
    const rs_place *gpu = s->n_place > 1 ? &s->place[RS_PLACE_GPU] : NULL;
    return gpu && gpu->n_layers == s->m->hp.n_layer && gpu->be->ops->graph_begin;
}

/* The step kind of a chain kind. */
static step_io chain_step(rs_chain_kind k) {
    return k == RS_CHAIN_SAMPLE       ? STEP_SAMPLE
           : k == RS_CHAIN_GREEDY_PEN ? STEP_GREEDY_PEN
           : k == RS_CHAIN_SAMPLE_PEN ? STEP_SAMPLE_PEN
                                      : STEP_GREEDY;
}

bool rs_forward_chain_on_device(const rs_session *s, rs_chain_kind k) {
    if (!captures_decode(s) || s->n_ctx >= (1 << 29)) return false; /* step_key's bands */
    const rs_place *gpu = &s->place[RS_PLACE_GPU];
    const rs_backend_ops *ops = gpu->be->ops;
    const step_io io = chain_step(k);
    const bool greedy = io == STEP_GREEDY || io == STEP_GREEDY_PEN,
               pen = io == STEP_GREEDY_PEN || io == STEP_SAMPLE_PEN;
    /* the token never leaves the device (it embeds it), and the device writes its
     * pick into the session's page-locked buffer */
    return gpu->tok_embd.backend && s->host_owner == gpu->be && s->out_place == gpu &&
           (greedy ? ops->greedy_pick != NULL : ops->sample_pick != NULL) &&
           (!pen || ops->penalize != NULL) && ops->fence_mark && ops->fence_wait;
}

rs_status rs_forward_chained(rs_session *s, rs_chain_kind k, rs_error *err) {
    return run_captured_decode(s, &s->place[RS_PLACE_GPU], chain_step(k), err);
}

rs_status rs_forward(rs_session *s, const int32_t *ids, int n, int n_out, rs_error *err) {
    const rs_hparams *hp = &s->m->hp;
    rs_place *cpu = &s->place[RS_PLACE_CPU];
    rs_status st;
    int32_t *pos = s->pos_host;
    for (int i = 0; i < n; i++) pos[i] = s->n_past + i;

    /* The place running layer 0 embeds the tokens when it holds the table (a
     * device then receives ids, not activations); otherwise the CPU does it
     * from the mapping. */
    rs_place *first = NULL;
    for (int k = 0; k < s->n_place && !first; k++)
        if (s->place[k].n_layers > 0) first = &s->place[k];
    const bool dev_embed = first && first->tok_embd.backend;
    rs_place *gpu = s->n_place > 1 ? &s->place[RS_PLACE_GPU] : NULL;
    const bool capture = n == 1 && n_out == 1 && captures_decode(s);
    /* the graph itself moves the step's inputs and logits when they live in
     * page-locked memory of its backend */
    const bool copies = capture && s->host_owner == gpu->be;
    for (int k = 0; k < s->n_place && !copies; k++) {
        rs_place *p = &s->place[k];
        if (p->n_layers == 0) continue;
        if ((st = p->be->ops->upload(p->be, p->a.pos, pos, (size_t)n * sizeof *pos, err)))
            return st;
    }
    if (dev_embed) {
        memcpy(s->ids_host, ids, (size_t)n * sizeof *ids); /* the caller's ids may be pageable */
        if (!copies && (st = first->be->ops->upload(first->be, first->a.ids, s->ids_host,
                                                    (size_t)n * sizeof *ids, err)))
            return st;
    }
    if (!dev_embed) cpu->be->ops->embed(cpu->be, &s->m->tok_embd, ids, n, cpu->a.x);

    rs_place *cur = cpu;
    bool normed = false;
    size_t stream_bytes = (size_t)n * hp->n_embd * sizeof(float);
    if (capture) {
        if ((!dev_embed && (st = move_stream(cpu, gpu, stream_bytes, err))) ||
            (st = run_captured_decode(s, gpu, copies ? STEP_COPIES : STEP_PLAIN, err)))
            return st;
    } else {
        if (dev_embed) {
            first->be->ops->embed(first->be, &first->tok_embd, first->a.ids, n, first->a.x);
            cur = first;
        }
        for (int k = 0; k < s->n_place; k++) {
            rs_place *p = &s->place[k];
            if (p->n_layers == 0) continue;
            if (p != cur) {
                normed = false; /* xn stays behind on the old place */
                if ((st = move_stream(cur, p, stream_bytes, err))) return st;
                cur = p;
            }
            run_layers(s, p, n, n_out, &normed);
        }
        if (n_out > 0 && cur != s->out_place) {
            normed = false;
            if ((st = move_stream(cur, s->out_place, stream_bytes, err))) return st;
        }
        if (n_out > 0) run_head(s, n, n_out, normed);
    }

    rs_backend *ob = s->out_place->be;
    size_t logit_bytes = (size_t)n_out * hp->n_vocab * sizeof(float);
    if (n_out > 0 && !copies &&
        (st = ob->ops->download(ob, s->logits_host, s->out_place->a.logits, logit_bytes, err)))
        return st;
    for (int k = 0; k < s->n_place; k++)
        if ((st = s->place[k].be->ops->sync(s->place[k].be, err))) return st;
    s->n_logits = n_out;
    return RS_OK;
}
