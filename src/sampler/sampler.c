/* sampler.c — the token sampler chain (see sampler.h for the order and the formulas).
 *
 * Candidate selection never sorts the whole vocabulary: top-k keeps a bounded min-heap
 * of k ids (O(V log k) worst case, ~O(V) on real logits where most ids lose against the
 * heap root at the first compare); top-p without top-k builds a histogram of probability
 * mass over logit buckets and sorts only the bucket where the nucleus ends; min-p is one
 * unsorted pass. The order is total (logit descending, then id ascending), so results
 * never depend on scan or heap order. Without sorting filters the candidates stay in id
 * order; rs_sampler_probs sorts them at the end. */
#include "sampler/sampler.h"
#include "sampler/mass_tree.h"
#include "sampler/nucleus.h"
#include "sampler/xoshiro.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* The top-p histogram spans this many nats below the max logit; lower ones share the
 * last bucket (their mass only matters for top_p within ~1e-10 of 1). */
#define TOP_P_RANGE 32.0

/* ---- RNG: splitmix64 seeding, xoshiro256** stream (Blackman & Vigna) ---------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t random_seed(void) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        mix ^= (uint64_t)getpid() << 32;
        seed = splitmix64(&mix);
    }
    return seed == RS_SAMPLER_SEED_RANDOM ? seed - 1 : seed; /* keep it replayable */
}

void rs_sampler_set_seed(rs_sampler *s, uint64_t seed) {
    s->seed = seed == RS_SAMPLER_SEED_RANDOM ? random_seed() : seed;
    uint64_t x = s->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* ---- params ------------------------------------------------------------------------ */

rs_sampler_params rs_sampler_params_default(void) {
    return (rs_sampler_params){
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = RS_SAMPLER_SEED_RANDOM,
    };
}

rs_status rs_sampler_params_check(const rs_sampler_params *p, rs_error *err) {
    const char *bad = NULL;
    if (!isfinite(p->temp))
        bad = "temp must be finite";
    else if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        bad = "top_p must be in (0, 1]";
    else if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        bad = "min_p must be in [0, 1]";
    else if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0.0f))
        bad = "repeat_penalty must be finite and > 0";
    else if (!isfinite(p->frequency_penalty))
        bad = "frequency_penalty must be finite";
    else if (!isfinite(p->presence_penalty))
        bad = "presence_penalty must be finite";
    else if (p->repeat_last_n < 0 || p->repeat_last_n > RS_SAMPLER_LAST_N_MAX)
        return rs_error_set(err, RS_ERR_ARG, "sampler: repeat_last_n %d must be in [0, %d]",
                            (int)p->repeat_last_n, (int)RS_SAMPLER_LAST_N_MAX);
    if (bad) return rs_error_set(err, RS_ERR_ARG, "sampler: %s", bad);
    return RS_OK;
}

/* Nodes of the mass tree's levels above n leaves. */
static size_t tree_nodes(int64_t n) {
    size_t total = 0;
    do {
        n = (n + RS_TREE_FAN - 1) / RS_TREE_FAN;
        total += (size_t)n;
    } while (n > 1);
    return total;
}

rs_status rs_sampler_init(rs_sampler *s, const rs_sampler_params *p, int32_t n_vocab,
                          rs_error *err) {
    memset(s, 0, sizeof *s);
    if (n_vocab <= 0 || n_vocab > RS_SAMPLER_VOCAB_MAX)
        return rs_error_set(err, RS_ERR_ARG, "sampler: n_vocab %d must be in [1, %d]", (int)n_vocab,
                            (int)RS_SAMPLER_VOCAB_MAX);
    rs_status st = rs_sampler_params_check(p, err);
    if (st != RS_OK) return st;
    s->params = *p;
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    s->logit = malloc(n * sizeof *s->logit);
    s->cand = malloc(n * sizeof *s->cand);
    s->prob = malloc(n * sizeof *s->prob);
    s->count = calloc(n, sizeof *s->count);
    s->bucket_mass = malloc(RS_SAMPLER_BUCKETS * sizeof *s->bucket_mass);
    s->bucket_n = malloc(RS_SAMPLER_BUCKETS * sizeof *s->bucket_n);
    s->tree = malloc(tree_nodes(n_vocab) * sizeof *s->tree);
    if (p->repeat_last_n > 0) s->hist = malloc((size_t)p->repeat_last_n * sizeof *s->hist);
    if (!s->logit || !s->cand || !s->prob || !s->count || !s->bucket_mass || !s->bucket_n ||
        !s->tree || (p->repeat_last_n > 0 && !s->hist)) {
        rs_sampler_free(s);
        return rs_error_set(err, RS_ERR_NOMEM, "sampler: out of memory for n_vocab %d",
                            (int)n_vocab);
    }
    rs_sampler_set_seed(s, p->seed);
    return RS_OK;
}

void rs_sampler_free(rs_sampler *s) {
    free(s->logit);
    free(s->cand);
    free(s->prob);
    free(s->count);
    free(s->hist);
    free(s->bucket_mass);
    free(s->bucket_n);
    free(s->tree);
    memset(s, 0, sizeof *s);
}

/* ---- history ----------------------------------------------------------------------- */

rs_status rs_sampler_accept(rs_sampler *s, int32_t token, rs_error *err) {
    if (token < 0 || token >= s->n_vocab)
        return rs_error_set(err, RS_ERR_RANGE, "sampler: token %d not in [0, %d)", (int)token,
                            (int)s->n_vocab);
    const int32_t cap = s->params.repeat_last_n;
    if (cap == 0) return RS_OK;
    if (s->hist_len == cap)
        s->count[s->hist[s->hist_next]]--; /* the oldest leaves */
    else
        s->hist_len++;
    s->hist[s->hist_next] = token;
    s->count[token]++;
    s->hist_next = s->hist_next + 1 == cap ? 0 : s->hist_next + 1;
    return RS_OK;
}

void rs_sampler_reset(rs_sampler *s) {
    for (int32_t i = 0; i < s->hist_len; i++) s->count[s->hist[i]] = 0;
    s->hist_len = s->hist_next = 0;
    rs_sampler_set_seed(s, s->seed);
}

/* ---- chain stages ------------------------------------------------------------------ */

/* NaN can never win and +inf would make the softmax NaN (inf - inf). Branch-free so the
 * copy loop vectorises. */
static float clean_logit(float x) {
    x = x == x ? x : -INFINITY;
    return x < FLT_MAX ? x : FLT_MAX;
}

static void apply_penalties(rs_sampler *s) {
    const rs_sampler_params *p = &s->params;
    if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)
        return;
    /* Each distinct token once: its count is negated while visited, then restored. */
    for (int32_t i = 0; i < s->hist_len; i++) {
        const int32_t t = s->hist[i], c = s->count[t];
        if (c <= 0) continue;
        float x = s->logit[t];
        x = x <= 0.0f ? x * p->repeat_penalty : x / p->repeat_penalty;
        x -= (float)c * p->frequency_penalty + p->presence_penalty;
        s->logit[t] = clean_logit(x);
        s->count[t] = -c;
    }
    for (int32_t i = 0; i < s->hist_len; i++)
        if (s->count[s->hist[i]] < 0) s->count[s->hist[i]] = -s->count[s->hist[i]];
}

/* The largest value; eight running maxima keep the compare chain short. */
static float max_of(const float *w, int32_t n) {
    float m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                  -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) m[j] = w[i + j] > m[j] ? w[i + j] : m[j];
    for (; i < n; i++) m[0] = w[i] > m[0] ? w[i] : m[0];
    for (int j = 1; j < 8; j++) m[0] = m[j] > m[0] ? m[j] : m[0];
    return m[0];
}

int32_t rs_logits_argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    float top = n > 0 ? clean_logit(logits[0]) : 0.0f;
    for (int32_t i = 1; i < n; i++) {
        const float x = clean_logit(logits[i]);
        if (x > top) top = x, best = i;
    }
    return best;
}

bool rs_sampler_params_greedy(const rs_sampler_params *p) {
    return p->temp <= 0.0f && p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f &&
           p->presence_penalty == 0.0f;
}

bool rs_sampler_params_penalized(const rs_sampler_params *p) {
    return p->repeat_last_n > 0 && (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                                    p->presence_penalty != 0.0f);
}

/* The total candidate order: a ranks below b. */
static inline bool worse(const float *w, int32_t a, int32_t b) {
    return w[a] < w[b] || (a > b && w[a] == w[b]);
}

/* Min-heap on `worse` (the worst id at h[0]). */
static void sift_down(const float *w, int32_t *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, m = i;
        if (l < n && worse(w, h[l], h[m])) m = l;
        if (l + 1 < n && worse(w, h[l + 1], h[m])) m = l + 1;
        if (m == i) return;
        int32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Sorts h[0..n) best first by popping the heap's worst to the back. */
static void sort_best_first(const float *w, int32_t *h, int32_t n) {
    for (int32_t i = n / 2 - 1; i >= 0; i--) sift_down(w, h, n, i);
    for (int32_t end = n - 1; end > 0; end--) {
        int32_t t = h[0];
        h[0] = h[end];
        h[end] = t;
        sift_down(w, h, end, 0);
    }
}

/* out[0..k) = the k best ids of the whole vocabulary, best first (1 <= k <= n_vocab). */
static void select_top_k(const float *w, int32_t n_vocab, int32_t k, int32_t *out) {
    for (int32_t i = 0; i < k; i++) out[i] = i;
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(w, out, k, i);
    float worst = w[out[0]];
    /* ids come in ascending order, so a tie with the root never displaces it (lower id
     * wins): one compare rejects most ids */
    for (int32_t i = k; i < n_vocab; i++) {
        if (w[i] <= worst) continue;
        out[0] = i;
        sift_down(w, out, k, 0);
        worst = w[out[0]];
    }
    sort_best_first(w, out, k);
}

/* top-p over candidates already sorted best first: the shortest prefix whose
 * temperature-1 mass reaches top_p. */
static int32_t top_p_sorted(rs_sampler *s, int32_t n, double vmax) {
    const float *w = s->logit;
    double z = 0.0, cum = 0.0;
    for (int32_t i = 0; i < n; i++) z += exp((double)w[s->cand[i]] - vmax);
    for (int32_t i = 0; i < n; i++) {
        cum += exp((double)w[s->cand[i]] - vmax) / z;
        if (cum >= s->params.top_p) return i + 1;
    }
    return n; /* rounding kept the mass just below top_p: keep everything */
}

static int bucket_of(float x, double vmax) {
    const double d = (vmax - (double)x) * (RS_SAMPLER_BUCKETS / TOP_P_RANGE);
    return d < RS_SAMPLER_BUCKETS - 1 ? (int)d : RS_SAMPLER_BUCKETS - 1; /* -inf lands last */
}

/* top-p over the whole vocabulary without sorting it: a histogram of the integer masses
 * (nucleus.h) over logit buckets (monotone in the logit) finds the bucket where the
 * nucleus ends, and only that bucket is sorted. The kept ids land in cand[0..n) best
 * bucket first, not sorted; the last one kept, the cut, goes to cut_logit / cut_id. */
static int32_t top_p_all(rs_sampler *s, double vmax) {
    const float *w = s->logit;
    const int32_t nv = s->n_vocab;
    double *m = s->prob; /* prob[] is free until the final softmax; masses < 2^53 are exact */
    uint64_t *mass = s->bucket_mass, total = 0;
    int32_t *cnt = s->bucket_n;
    memset(mass, 0, RS_SAMPLER_BUCKETS * sizeof *mass);
    memset(cnt, 0, RS_SAMPLER_BUCKETS * sizeof *cnt);
    for (int32_t i = 0; i < nv; i++) {
        const int b = bucket_of(w[i], vmax);
        const uint64_t mi = rs_nucleus_mass((double)w[i] - vmax);
        m[i] = (double)mi;
        total += mi;
        mass[b] += mi;
        cnt[b]++;
    }
    const uint64_t target = rs_nucleus_target(total, s->params.top_p);
    uint64_t cum = 0;
    int32_t above = 0; /* ids in the buckets before the boundary one */
    int edge = 0;
    for (; edge < RS_SAMPLER_BUCKETS - 1; edge++) {
        if (cum + mass[edge] >= target) break;
        cum += mass[edge];
        above += cnt[edge];
    }
    int32_t n_hi = 0, n_edge = above;
    for (int32_t i = 0; i < nv; i++) {
        const int b = bucket_of(w[i], vmax);
        if (b < edge)
            s->cand[n_hi++] = i;
        else if (b == edge)
            s->cand[n_edge++] = i;
    }
    sort_best_first(w, s->cand + above, n_edge - above);
    int32_t n = n_edge; /* the target is within the total: the loop below returns */
    for (int32_t i = above; i < n_edge; i++) {
        cum += (uint64_t)m[s->cand[i]];
        if (cum >= target) {
            n = i + 1;
            break;
        }
    }
    s->cut_logit = w[s->cand[n - 1]], s->cut_id = s->cand[n - 1];
    return n;
}

/* min-p: keeps tokens with logit >= max + log(min_p), i.e. p >= min_p * p_max. With
 * all == true the candidates are the whole vocabulary (cand not yet filled). */
static int32_t apply_min_p(rs_sampler *s, int32_t n, bool all, bool sorted, double vmax) {
    const float *w = s->logit;
    const double cut = log((double)s->params.min_p);
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t id = all ? i : s->cand[i];
        if ((double)w[id] - vmax >= cut)
            s->cand[kept++] = id;
        else if (sorted)
            break;
    }
    return kept;
}

/* prob[i] = softmax(logit / temp) over the candidates, in float64. */
static void final_softmax(rs_sampler *s, int32_t n, double vmax) {
    const float *w = s->logit;
    const double temp = s->params.temp;
    double z = 0.0;
    for (int32_t i = 0; i < n; i++) {
        const double e = exp(((double)w[s->cand[i]] - vmax) / temp);
        s->prob[i] = e;
        z += e;
    }
    for (int32_t i = 0; i < n; i++) s->prob[i] /= z;
}

/* The draw when top-k is off: the vocabulary in id order, where the ids top-p leaves out
 * (ranked below the cut) and min-p drops get no mass. The final softmax's masses by id go
 * into prob, summed and walked in mass_tree.h's order, which the GPU can take in parallel. */
static int32_t draw_by_id(rs_sampler *s, double u, double vmax) {
    const float *w = s->logit, cw = s->cut_logit;
    const int32_t cid = s->cut_id;
    const double temp = s->params.temp;
    const double cut = s->params.min_p > 0.0f ? log((double)s->params.min_p) : -INFINITY;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        const double d = (double)w[i] - vmax;
        const bool in = w[i] > cw || (i <= cid && w[i] == cw); /* ranked at or above the cut */
        s->prob[i] = d < cut || !in ? 0.0 : exp(d / temp);
    }
    const double *level[RS_TREE_LEVELS] = {s->prob};
    int64_t len[RS_TREE_LEVELS] = {s->n_vocab};
    const int top = rs_tree_build(level, len, s->tree);
    double base;
    return (int32_t)rs_tree_walk(level, len, top, u * level[top][0], &base);
}

/* Runs stages 1-6 on logits into cand/prob/n_cand and returns the largest logit. With
 * by_id (rs_sampler_sample's draw) and the candidates the vocabulary in id order, stage 6
 * is left to draw_by_id and *by_id is set. */
static float run_chain(rs_sampler *s, const float *logits, bool want_sorted, bool *by_id) {
    const rs_sampler_params *p = &s->params;
    const int32_t nv = s->n_vocab;
    float *w = s->logit;
    for (int32_t i = 0; i < nv; i++) w[i] = clean_logit(logits[i]);
    apply_penalties(s);
    const float vmax = max_of(w, nv); /* every filter keeps the top token */

    int32_t n = nv;
    if (p->temp <= 0.0f || vmax == -INFINITY) {
        /* greedy (first maximum = lowest id), or all -inf: uniform rather than NaN */
        n = p->temp <= 0.0f ? 1 : nv;
        const int32_t best = rs_logits_argmax(w, nv);
        for (int32_t i = 0; i < n; i++) s->cand[i] = n == 1 ? best : i;
        for (int32_t i = 0; i < n; i++) s->prob[i] = 1.0 / n;
        s->n_cand = n;
        return vmax;
    }
    bool all = true, sorted = false; /* all: the candidates are 0..nv-1, cand unfilled */
    s->cut_logit = -INFINITY, s->cut_id = nv - 1; /* top-p keeps every id */
    if (p->top_k > 0 && p->top_k < nv) {
        n = p->top_k;
        select_top_k(w, nv, n, s->cand);
        all = false, sorted = true;
    }
    if (p->top_p < 1.0f) {
        n = all ? top_p_all(s, vmax) : top_p_sorted(s, n, vmax);
        all = false;
    }
    const bool in_id_order = !sorted; /* top-k off: top-p and min-p only zero masses */
    if (p->min_p > 0.0f) {
        n = apply_min_p(s, n, all, sorted, vmax);
        all = false;
    }
    if (all)
        for (int32_t i = 0; i < nv; i++) s->cand[i] = i;
    s->n_cand = n;
    if (by_id && in_id_order) {
        *by_id = true;
        return vmax;
    }
    if (want_sorted && !sorted) sort_best_first(w, s->cand, n);
    final_softmax(s, n, vmax);
    return vmax;
}

int32_t rs_sampler_sample(rs_sampler *s, const float *logits) {
    bool by_id = false;
    const float vmax = run_chain(s, logits, false, &by_id);
    if (s->n_cand == 1) return s->cand[0]; /* greedy or a single survivor: no draw */
    const double u = rs_xoshiro_uniform(s->rng);
    if (by_id) return draw_by_id(s, u, vmax);
    double cum = 0.0;
    for (int32_t i = 0; i < s->n_cand; i++) {
        cum += s->prob[i];
        if (u < cum) return s->cand[i];
    }
    /* rounding left the total just below u: take the last candidate that has mass */
    for (int32_t i = s->n_cand - 1; i > 0; i--)
        if (s->prob[i] > 0.0) return s->cand[i];
    return s->cand[0];
}

int32_t rs_sampler_probs(rs_sampler *s, const float *logits, const int32_t **ids,
                         const double **probs) {
    run_chain(s, logits, true, NULL);
    if (ids) *ids = s->cand;
    if (probs) *probs = s->prob;
    return s->n_cand;
}
