/* sampler.c — the token sampler chain (see sampler.h for the order and the formulas).
 *
 * Candidate selection never sorts the whole vocabulary: top-k keeps a bounded min-heap
 * of k ids (O(V log k) worst case, ~O(V) on real logits where most ids lose against the
 * heap root); top-p without top-k selects the best 256, 1024, 4096, ... ids until the
 * nucleus mass is reached; min-p alone is one unsorted pass. Ordering is total (logit
 * descending, then id ascending), so results never depend on scan or heap order. */
#include "sampler/sampler.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

enum { TOP_P_FIRST_M = 256 }; /* first guess at the nucleus size when top-k is off */

/* ---- RNG: splitmix64 seeding, xoshiro256** stream (Blackman & Vigna) ---------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t st[4]) {
    const uint64_t out = rotl64(st[1] * 5, 7) * 9;
    const uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return out;
}

/* Uniform in [0, 1): the top 53 bits, so every value is an exact double. */
static double rng_uniform(rs_sampler *s) {
    return (double)(xoshiro_next(s->rng) >> 11) * 0x1p-53;
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
    if (p->repeat_last_n > 0) s->hist = malloc((size_t)p->repeat_last_n * sizeof *s->hist);
    if (!s->logit || !s->cand || !s->prob || !s->count || (p->repeat_last_n > 0 && !s->hist)) {
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

/* NaN can never win and +inf would make the softmax NaN (inf - inf). */
static float clean_logit(float x) {
    if (isnan(x)) return -INFINITY;
    return x > FLT_MAX ? FLT_MAX : x;
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

/* The total candidate order: a ranks below b. */
static inline bool worse(const float *w, int32_t a, int32_t b) {
    return w[a] < w[b] || (w[a] == w[b] && a > b);
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

/* out[0..m) = the m best ids of the whole vocabulary, best first (1 <= m <= n_vocab). */
static void select_top(const float *w, int32_t n_vocab, int32_t m, int32_t *out) {
    for (int32_t i = 0; i < m; i++) out[i] = i;
    for (int32_t i = m / 2 - 1; i >= 0; i--) sift_down(w, out, m, i);
    for (int32_t i = m; i < n_vocab; i++) {
        if (!worse(w, out[0], i)) continue;
        out[0] = i;
        sift_down(w, out, m, 0);
    }
    sort_best_first(w, out, m);
}

/* Shortest best-first prefix of the candidates whose temperature-1 mass reaches top_p.
 * With *sorted false the candidates are the whole vocabulary in id order. */
static int32_t apply_top_p(rs_sampler *s, int32_t n, bool *sorted) {
    const float *w = s->logit;
    const double p = s->params.top_p;
    double max = -INFINITY, z = 0.0;
    for (int32_t i = 0; i < n; i++) max = fmax(max, w[s->cand[i]]);
    if (max == -INFINITY) return n; /* all equal: no prefix is special */
    for (int32_t i = 0; i < n; i++) z += exp((double)w[s->cand[i]] - max);
    int32_t m = *sorted ? n : (n < TOP_P_FIRST_M ? n : TOP_P_FIRST_M);
    for (;;) {
        if (!*sorted || m < n) select_top(w, s->n_vocab, m, s->cand);
        double cum = 0.0;
        for (int32_t i = 0; i < m; i++) {
            cum += exp((double)w[s->cand[i]] - max) / z;
            if (cum >= p) {
                *sorted = true;
                return i + 1;
            }
        }
        if (m == n) { /* rounding kept the mass just below p: keep everything */
            *sorted = true;
            return n;
        }
        m = m > n / 4 ? n : m * 4;
    }
}

/* Keeps tokens with logit >= max + log(min_p), i.e. p >= min_p * p_max. */
static int32_t apply_min_p(rs_sampler *s, int32_t n, bool sorted) {
    const float *w = s->logit;
    double max = w[s->cand[0]];
    if (!sorted)
        for (int32_t i = 1; i < n; i++) max = fmax(max, w[s->cand[i]]);
    if (max == -INFINITY) return n;
    const double cut = log((double)s->params.min_p);
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t id = s->cand[i];
        if ((double)w[id] - max >= cut)
            s->cand[kept++] = id;
        else if (sorted)
            break;
    }
    return kept;
}

/* prob[i] = softmax(logit / temp) over the candidates, in float64. */
static void final_softmax(rs_sampler *s, int32_t n) {
    const float *w = s->logit;
    const double temp = s->params.temp;
    double max = -INFINITY, z = 0.0;
    for (int32_t i = 0; i < n; i++) max = fmax(max, w[s->cand[i]]);
    for (int32_t i = 0; i < n; i++) {
        /* all -inf: uniform rather than NaN */
        double e = max == -INFINITY ? 1.0 : exp(((double)w[s->cand[i]] - max) / temp);
        s->prob[i] = e;
        z += e;
    }
    for (int32_t i = 0; i < n; i++) s->prob[i] /= z;
}

/* Runs stages 1-6 on logits into cand/prob/n_cand. */
static void run_chain(rs_sampler *s, const float *logits, bool want_sorted) {
    const rs_sampler_params *p = &s->params;
    const int32_t nv = s->n_vocab;
    float *w = s->logit;
    for (int32_t i = 0; i < nv; i++) w[i] = clean_logit(logits[i]);
    apply_penalties(s);

    if (p->temp <= 0.0f) { /* greedy: first maximum = lowest id on ties */
        int32_t best = 0;
        for (int32_t i = 1; i < nv; i++)
            if (w[i] > w[best]) best = i;
        s->cand[0] = best;
        s->prob[0] = 1.0;
        s->n_cand = 1;
        return;
    }

    int32_t n = nv;
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < nv) {
        n = p->top_k;
        select_top(w, nv, n, s->cand);
        sorted = true;
    } else {
        for (int32_t i = 0; i < nv; i++) s->cand[i] = i;
    }
    if (p->top_p < 1.0f) n = apply_top_p(s, n, &sorted);
    if (p->min_p > 0.0f) n = apply_min_p(s, n, sorted);
    if (want_sorted && !sorted) sort_best_first(w, s->cand, n);
    final_softmax(s, n);
    s->n_cand = n;
}

int32_t rs_sampler_sample(rs_sampler *s, const float *logits) {
    run_chain(s, logits, false);
    if (s->n_cand == 1) return s->cand[0]; /* greedy or a single survivor: no draw */
    const double u = rng_uniform(s);
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
    run_chain(s, logits, true);
    if (ids) *ids = s->cand;
    if (probs) *probs = s->prob;
    return s->n_cand;
}
