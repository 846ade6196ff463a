/* cmd_bench.c — `rusty bench`: prompt-processing and generation speed, in
 * llama-bench's table format, plus the roofline: generation's achieved GB/s
 * (weights + KV cache read per token) and its fraction of the memory bandwidth
 * measured on this machine by the same tool.
 *
 * ppN: N random tokens evaluated from an empty cache as one prompt.
 * tgN: N tokens decoded one at a time (no sampling), after --depth D tokens of
 * context. With --greedy, also "tgN greedy": N tokens decoded as greedy generation
 * runs them, each step picking the next token itself (rs_session_greedy_step), the next
 * step queued before the host reads the pick where the session allows it. With
 * --sampled, also "tgN sampled host" (each token drawn by rs_sampler_sample from the
 * step's downloaded logits, as generation did before steps could chain) and "tgN sampled"
 * (the same draws made by the chained steps themselves), with rusty run's default
 * sampler (or the one --temp, --top-k, --top-p, --min-p, --repeat-penalty make of it)
 * from a fixed seed.
 * Each test runs once untimed, then -r times; t/s is mean +/- sd. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

static const char bench_usage[] =
    "usage: rusty bench [-m MODEL] [-p 512] [-n 128] [-r 3] [--depth 0] [options]\n"
    "\n"
    "Measures prompt processing (ppN) and generation (tgN) speed and prints a markdown\n"
    "table with llama-bench's columns, plus generation's achieved GB/s and its share of\n"
    "the memory bandwidth measured now. Without -m, benchmarks the built-in demo model.\n"
    "\n"
    "  -p, --n-prompt LIST   prompt sizes, comma-separated (0 to skip)\n"
    "  -n, --n-gen LIST      generation lengths, comma-separated (0 to skip)\n"
    "  -r, --repetitions N   timed runs per test (default 3)\n"
    "  -d, --depth LIST      context tokens already in the cache before each test\n"
    "      --greedy          also time each tgN as greedy generation runs it (rusty run\n"
    "                        --temp 0): tokens picked where the logits are, and on a GPU\n"
    "                        the next step queued before the host reads the last pick\n"
    "      --sampled         also time each tgN with rusty run's default sampler (temp\n"
    "                        0.8, top-k 40, top-p 0.95, min-p 0.05): drawn on the host\n"
    "                        from each step's logits, and drawn by the chained steps\n"
    "      --temp F, --top-k N, --top-p F, --min-p F, --repeat-penalty F, -s N, ...\n"
    "                        the sampled rows' sampler, as in rusty run (seed 42 unless\n"
    "                        given; --top-k 0 --top-p 1 draws over the whole vocabulary)\n"
    "\n";

enum { MAX_LIST = 16 };

typedef struct bench_opts {
    int pp[MAX_LIST], n_pp;
    int tg[MAX_LIST], n_tg;
    int depth[MAX_LIST], n_depth;
    int reps;
    bool greedy, sampled;
    rs_sampler_params sampler; /* the sampled rows' */
    const char *type_k;        /* the KV cache type when not the default F16 (a type_k column) */
} bench_opts;

/* How a tgN test picks its tokens. */
typedef enum tg_mode {
    TG_PLAIN,        /* none: random ids, one host-synchronous step each (llama-bench's tg) */
    TG_GREEDY,       /* greedy chained steps */
    TG_SAMPLED_HOST, /* the default sampler on the host, from each step's logits */
    TG_SAMPLED,      /* the default sampler, drawn by chained steps */
    TG_MODES
} tg_mode;

static const char *const tg_suffix[TG_MODES] = {"", " greedy", " sampled host", " sampled"};

static bool parse_list(cli_args *a, int *out, int *n) {
    const char *s;
    if (!cli_take_str(a, &s)) return false;
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > (1 << 20) || *n == MAX_LIST || (*end && *end != ',')) {
            cli_usage_error(a->cmd, "'%s' is not a list of sizes like 64,512", s);
            return false;
        }
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return *n > 0;
}

/* Random token ids (avoid 0..2, often special) from a fixed seed. */
static void fill_tokens(int32_t *ids, int n, int n_vocab, uint64_t *seed) {
    for (int i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = n_vocab > 8 ? 3 + (int32_t)((*seed >> 33) % (uint64_t)(n_vocab - 3)) : 0;
    }
}

/* n_gen chain steps from ids[0] (greedy, or drawn by sm), `ahead` queued before each pick
 * is read. */
static rs_status chain_steps(rs_session *s, rs_sampler *sm, const int32_t *ids, int n_gen,
                             rs_error *err) {
    rs_status st = rs_session_chain_sampler(s, sm, err);
    const int ahead = rs_session_greedy_ahead(s);
    int queued = 0;
    int32_t id;
    for (int i = 0; i < n_gen && !st; i++) {
        st = rs_session_greedy_step(s, i == 0 ? ids[0] : RS_GREEDY_PREV, err);
        if (!st && ++queued > ahead && !(st = rs_session_greedy_pick(s, &id, err))) queued--;
    }
    for (; queued > 0 && !st; queued--) st = rs_session_greedy_pick(s, &id, err);
    rs_error end_err = {0};
    rs_status end = rs_session_greedy_end(s, &end_err);
    if (!st && end) st = end, *err = end_err;
    return st;
}

/* One timed run of a test; returns tokens/s or -1 on error. */
static double run_once(rs_session *s, const rs_model *m, int n_prompt, int n_gen, int depth,
                       tg_mode mode, const rs_sampler_params *sp, int32_t *ids) {
    rs_error err = {0};
    uint64_t seed = 1234;
    rs_sampler sm = {0};
    if (mode >= TG_SAMPLED_HOST && rs_sampler_init(&sm, sp, m->hp.n_vocab, &err)) goto fail;
    rs_session_truncate(s, 0);
    if (depth) {
        fill_tokens(ids, depth, m->hp.n_vocab, &seed);
        if (rs_session_eval(s, ids, depth, RS_LOGITS_LAST, &err)) goto fail;
    }
    int n = n_prompt ? n_prompt : n_gen;
    fill_tokens(ids, n, m->hp.n_vocab, &seed);
    double t0 = rs_time_ms();
    if (n_prompt) {
        if (rs_session_eval(s, ids, n_prompt, RS_LOGITS_LAST, &err)) goto fail;
    } else if (mode == TG_GREEDY || mode == TG_SAMPLED) {
        if (chain_steps(s, mode == TG_SAMPLED ? &sm : NULL, ids, n_gen, &err)) goto fail;
    } else {
        int32_t id = n_gen > 0 ? ids[0] : 0; /* ids[0 .. n_gen) are filled */
        for (int i = 0; i < n_gen; i++) {
            if (rs_session_eval(s, mode == TG_PLAIN ? ids + i : &id, 1, RS_LOGITS_LAST, &err))
                goto fail;
            if (mode != TG_SAMPLED_HOST) continue;
            id = rs_sampler_sample(&sm, rs_session_logits(s, 0));
            if (rs_sampler_accept(&sm, id, &err)) goto fail; /* the penalties' window */
        }
    }
    const double tps = n * 1e3 / (rs_time_ms() - t0);
    rs_sampler_free(&sm);
    return tps;
fail:
    fprintf(stderr, "rusty bench: %s\n", err.msg);
    rs_sampler_free(&sm);
    return -1;
}

/* Bytes one decode step at context length ctx reads: all layer and head weights plus the KV cache.
 */
static double decode_bytes(const rs_model *m, const rs_session_info *info, double ctx) {
    double bytes = (double)m->output.nbytes;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const rs_layer_weights *L = &m->layers[l];
        bytes += (double)(L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes +
                          L->gate.nbytes + L->up.nbytes + L->down.nbytes);
    }
    return bytes + ctx * (double)info->kv_bytes_per_pos;
}

typedef struct row_ctx {
    const rs_model *m;
    rs_session_info info;
    double bw_gbps;
    const char *model_col;
    const char *type_k;               /* or NULL: no type_k column */
    const rs_sampler_params *sampler; /* the sampled rows' */
} row_ctx;

static void print_row(const row_ctx *r, const char *test, const double *tps, int reps, int n_gen,
                      int depth) {
    double mean = 0, sd = 0;
    for (int i = 0; i < reps; i++) mean += tps[i] / reps;
    for (int i = 0; i < reps && reps > 1; i++) sd += (tps[i] - mean) * (tps[i] - mean) / (reps - 1);
    sd = sqrt(sd);
    double gib = (double)r->m->weight_bytes / (1 << 30), b = (double)r->m->n_params;
    printf("| %s | %.2f %s | %.2f %s | %s | %d |", r->model_col, gib >= 1 ? gib : gib * 1024,
           gib >= 1 ? "GiB" : "MiB", b >= 1e9 ? b / 1e9 : b / 1e6, b >= 1e9 ? "B" : "M",
           r->info.backend, r->info.n_threads);
    if (r->type_k) printf(" %s |", r->type_k);
    printf(" %s | %.2f ± %.2f |", test, mean, sd);
    if (n_gen) {
        double gbps = mean * decode_bytes(r->m, &r->info, depth + n_gen / 2.0) / 1e9;
        printf(" %.1f | %.1f%% |\n", gbps, r->bw_gbps > 0 ? 100.0 * gbps / r->bw_gbps : 0.0);
    } else {
        printf(" - | - |\n");
    }
    fflush(stdout);
}

static int run_test(const row_ctx *r, rs_session *s, int n_prompt, int n_gen, int depth, int reps,
                    tg_mode mode) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(depth + n_prompt + n_gen + 1));
    double tps[64];
    int rc = 1;
    const rs_sampler_params *sp = r->sampler;
    if (!ids || run_once(s, r->m, n_prompt, n_gen, depth, mode, sp, ids) < 0)
        goto done; /* warm-up */
    for (int i = 0; i < reps; i++)
        if ((tps[i] = run_once(s, r->m, n_prompt, n_gen, depth, mode, sp, ids)) < 0) goto done;
    char test[64];
    int len = snprintf(test, sizeof test, depth ? "%s%d @ d%d" : "%s%d", n_prompt ? "pp" : "tg",
                       n_prompt ? n_prompt : n_gen, depth);
    snprintf(test + len, sizeof test - (size_t)len, "%s", tg_suffix[mode]);
    print_row(r, test, tps, reps, n_gen, depth);
    rc = 0;
done:
    free(ids);
    return rc;
}

static int bench_all(const bench_opts *b, rs_session *s, const rs_model *m) {
    row_ctx r = {m, {0}, 0, NULL, b->type_k, &b->sampler};
    rs_session_get_info(s, &r.info);
    char model_col[96];
    snprintf(model_col, sizeof model_col, "%s %s", m->hp.arch_name, m->type_desc);
    r.model_col = model_col;
    rs_error err = {0};
    if (rs_session_bandwidth(s, &r.bw_gbps, &err) != RS_OK)
        fprintf(stderr, "rusty bench: bandwidth not measured: %s\n", err.msg);
    else
        fprintf(stderr, "rusty: measured %s memory bandwidth: %.1f GB/s\n", r.info.backend,
                r.bw_gbps);
    /* as llama-bench: a type_k column only when the cache is not F16 */
    printf("| model | size | params | backend | threads |%s test | t/s | GB/s | BW %% |\n",
           b->type_k ? " type_k |" : "");
    printf("| --- | ---: | ---: | --- | ---: |%s --- | ---: | ---: | ---: |\n",
           b->type_k ? " --- |" : "");
    for (int d = 0; d < b->n_depth; d++) {
        for (int i = 0; i < b->n_pp; i++)
            if (b->pp[i] && run_test(&r, s, b->pp[i], 0, b->depth[d], b->reps, TG_PLAIN)) return 1;
        for (int i = 0; i < b->n_tg; i++)
            for (int mode = TG_PLAIN; mode < TG_MODES; mode++) {
                bool on = mode == TG_PLAIN || (mode == TG_GREEDY && b->greedy) ||
                          (mode >= TG_SAMPLED_HOST && b->sampled);
                if (on && mode == TG_SAMPLED && !rs_session_chain_supports(s, &b->sampler)) {
                    if (d == 0 && i == 0)
                        fprintf(stderr, "rusty bench: no \"sampled\" rows: these steps cannot "
                                        "chain this rule (rs_session_chain_supports)\n");
                    on = false;
                }
                if (on && b->tg[i] && run_test(&r, s, 0, b->tg[i], b->depth[d], b->reps, mode))
                    return 1;
            }
    }
    return 0;
}

static int parse(int argc, char **argv, cli_model_opts *mo, bench_opts *b) {
    cli_args a = {"bench", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        const char *arg = argv[a.i];
        int r = cli_parse_model_opt(&a, mo);
        int64_t v;
        if (r == 0 && cli_is(arg, "-p", "--n-prompt")) r = parse_list(&a, b->pp, &b->n_pp) ? 1 : -1;
        if (r == 0 && cli_is(arg, "-n", "--n-gen")) r = parse_list(&a, b->tg, &b->n_tg) ? 1 : -1;
        if (r == 0 && cli_is(arg, "-d", "--depth"))
            r = parse_list(&a, b->depth, &b->n_depth) ? 1 : -1;
        if (r == 0 && cli_is(arg, NULL, "--greedy")) r = 1, b->greedy = true;
        if (r == 0 && cli_is(arg, NULL, "--sampled")) r = 1, b->sampled = true;
        if (r == 0) r = cli_parse_sampler_opt(&a, &b->sampler);
        if (r == 0 && cli_is(arg, "-r", "--repetitions")) {
            r = cli_take_int(&a, 1, 64, &v) ? 1 : -1;
            b->reps = (int)v;
        }
        if (r < 0) return 1;
        if (r == 0) return cli_usage_error("bench", "unknown option '%s'", arg);
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", bench_usage, cli_model_help);
        return 0;
    }
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    bench_opts b = {{512}, 1, {128}, 1, {0}, 1, 3, false, false, rs_sampler_params_default(), NULL};
    b.sampler.seed = 42; /* the sampled rows draw the same tokens each run */
    if (parse(argc, argv, &mo, &b)) return 1;
    if (mo.session.kv_type != RS_KV_F16) b.type_k = cli_kv_type_name(mo.session.kv_type);
    int need = 0;
    for (int d = 0; d < b.n_depth; d++)
        for (int i = 0; i < b.n_pp || i < b.n_tg; i++) {
            int n = b.depth[d] + (i < b.n_pp ? b.pp[i] : 0);
            int g = b.depth[d] + (i < b.n_tg ? b.tg[i] : 0);
            need = n > need ? n : need;
            need = g > need ? g : need;
        }
    if (!mo.session.n_ctx) mo.session.n_ctx = need;
    if (mo.session.n_ctx < need)
        return cli_usage_error("bench", "-c %d is smaller than the %d tokens the tests need",
                               mo.session.n_ctx, need);
    rs_model *m = NULL;
    rs_session *s = NULL;
    if (cli_load("bench", &mo, false, &m, &s)) return 1;
    int rc = bench_all(&b, s, m);
    rs_session_free(s);
    rs_model_free(m);
    return rc;
}
