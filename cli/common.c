/* common.c — shared option parsing and model set-up for the CLI (see common.h). */
#include "common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

const char cli_model_help[] =
    "model and runtime:\n"
    "  -m, --model PATH         .gguf file or Hugging Face folder\n"
    "  -t, --threads N          CPU threads (default: physical cores)\n"
    "  -c, --ctx-size N         context size (default: the model's, capped so the KV cache fits)\n"
    "  -b, --batch-size N       prompt tokens per forward pass (default 512)\n"
    "  --device cpu|cuda|auto   where to run (default auto: cuda when a GPU is present)\n"
    "  -ngl, --gpu-layers N     layers to run on the GPU (default: all)\n"
    "  -ctk, --cache-type-k T   KV cache type f16 (default), f32, q8_0 or q4_0 (-ctv is the "
    "same setting)\n";

const char cli_gen_help[] =
    "generation:\n"
    "  -p, --prompt TEXT        the prompt\n"
    "  -f, --file FILE          read the prompt from a file\n"
    "  -n, --n-predict N        tokens to generate (-1: until end of text or full context)\n"
    "  --temp T                 temperature, 0 = greedy (default 0.8)\n"
    "  --top-k K                keep the K most likely tokens, 0 = off (default 40)\n"
    "  --top-p P                nucleus sampling, 1 = off (default 0.95)\n"
    "  --min-p P                drop tokens below P x the top probability, 0 = off (default 0.05)\n"
    "  --repeat-penalty R       penalise repeated tokens, 1 = off (default 1)\n"
    "  --repeat-last-n N        tokens the penalties look back over (default 64)\n"
    "  --frequency-penalty F    subtract F x count (default 0)\n"
    "  --presence-penalty F     subtract F once a token appeared (default 0)\n"
    "  --seed S                 random seed (default: random; the seed used is logged)\n"
    "  --stop TEXT              stop when TEXT appears (repeatable)\n"
    "  --ignore-eos             keep generating past end-of-text tokens\n";

void cli_model_opts_init(cli_model_opts *o) {
    memset(o, 0, sizeof *o);
    rs_session_opts_default(&o->session);
}

void cli_gen_opts_init(cli_gen_opts *o, int n_predict) {
    memset(o, 0, sizeof *o);
    o->sampling = rs_sampler_params_default();
    o->gen.n_predict = n_predict;
}

/* -ctk names, indexed by rs_kv_type */
static const char *const kv_type_names[] = {"f32", "f16", "q8_0", "q4_0"};

const char *cli_kv_type_name(rs_kv_type t) {
    return (unsigned)t < sizeof kv_type_names / sizeof *kv_type_names ? kv_type_names[t] : "?";
}

static bool parse_kv_type(cli_args *a, rs_kv_type *out, bool *seen) {
    const char *v;
    if (!cli_take_str(a, &v)) return false;
    int t = 0, n = (int)(sizeof kv_type_names / sizeof *kv_type_names);
    while (t < n && strcmp(v, kv_type_names[t]) != 0) t++;
    if (t == n) {
        cli_usage_error(a->cmd, "cache type must be f16, f32, q8_0 or q4_0, got '%s'", v);
        return false;
    }
    if (*seen && (rs_kv_type)t != *out) {
        cli_usage_error(a->cmd, "-ctk and -ctv must name the same type");
        return false;
    }
    *out = (rs_kv_type)t;
    *seen = true;
    return true;
}

int cli_parse_model_opt(cli_args *a, cli_model_opts *o) {
    const char *arg = a->argv[a->i];
    rs_session_opts *s = &o->session;
    int64_t v;
    static const int64_t big = 1 << 24;
    if (cli_is(arg, "-m", "--model")) return cli_take_str(a, &o->model) ? 1 : -1;
    if (cli_is(arg, "-t", "--threads")) {
        if (!cli_take_int(a, 1, 1024, &v)) return -1;
        s->n_threads = (int)v;
        return 1;
    }
    if (cli_is(arg, "-c", "--ctx-size")) {
        if (!cli_take_int(a, 0, big, &v)) return -1;
        s->n_ctx = (int)v;
        return 1;
    }
    if (cli_is(arg, "-b", "--batch-size")) {
        if (!cli_take_int(a, 1, big, &v)) return -1;
        s->n_batch = (int)v;
        return 1;
    }
    if (cli_is(arg, "-ngl", "--gpu-layers") || cli_is(arg, NULL, "--n-gpu-layers")) {
        if (!cli_take_int(a, -1, 100000, &v)) return -1;
        s->n_gpu_layers = (int)v;
        return 1;
    }
    if (cli_is(arg, NULL, "--device")) {
        const char *d;
        if (!cli_take_str(a, &d)) return -1;
        if (strcmp(d, "cpu") == 0)
            s->device = RS_DEVICE_CPU;
        else if (strcmp(d, "cuda") == 0)
            s->device = RS_DEVICE_CUDA;
        else if (strcmp(d, "auto") == 0)
            s->device = RS_DEVICE_AUTO;
        else
            return cli_usage_error(a->cmd, "--device must be cpu, cuda or auto, got '%s'", d), -1;
        return 1;
    }
    if (cli_is(arg, "-ctk", "--cache-type-k") || cli_is(arg, "-ctv", "--cache-type-v"))
        return parse_kv_type(a, &s->kv_type, &o->kv_type_seen) ? 1 : -1;
    return 0;
}

static int take_float_field(cli_args *a, double lo, double hi, float *out) {
    double d;
    if (!cli_take_float(a, lo, hi, &d)) return -1;
    *out = (float)d;
    return 1;
}

int cli_parse_sampler_opt(cli_args *a, rs_sampler_params *sp) {
    const char *arg = a->argv[a->i];
    int64_t v;
    if (cli_is(arg, NULL, "--temp")) return take_float_field(a, 0, 1e6, &sp->temp);
    if (cli_is(arg, NULL, "--top-p")) return take_float_field(a, 1e-9, 1, &sp->top_p);
    if (cli_is(arg, NULL, "--min-p")) return take_float_field(a, 0, 1, &sp->min_p);
    if (cli_is(arg, NULL, "--repeat-penalty"))
        return take_float_field(a, 1e-6, 1e6, &sp->repeat_penalty);
    if (cli_is(arg, NULL, "--frequency-penalty"))
        return take_float_field(a, -1e6, 1e6, &sp->frequency_penalty);
    if (cli_is(arg, NULL, "--presence-penalty"))
        return take_float_field(a, -1e6, 1e6, &sp->presence_penalty);
    if (cli_is(arg, NULL, "--top-k")) {
        if (!cli_take_int(a, 0, INT32_MAX, &v)) return -1;
        sp->top_k = (int32_t)v;
        return 1;
    }
    if (cli_is(arg, NULL, "--repeat-last-n")) {
        if (!cli_take_int(a, 0, RS_SAMPLER_LAST_N_MAX, &v)) return -1;
        sp->repeat_last_n = (int32_t)v;
        return 1;
    }
    if (cli_is(arg, "-s", "--seed")) {
        if (!cli_take_int(a, -1, INT64_MAX, &v)) return -1;
        sp->seed = v < 0 ? RS_SAMPLER_SEED_RANDOM : (uint64_t)v;
        return 1;
    }
    return 0;
}

int cli_parse_gen_opt(cli_args *a, cli_gen_opts *o) {
    const char *arg = a->argv[a->i];
    int64_t v;
    if (cli_is(arg, "-p", "--prompt")) return cli_take_str(a, &o->prompt) ? 1 : -1;
    if (cli_is(arg, "-f", "--file")) return cli_take_str(a, &o->prompt_file) ? 1 : -1;
    if (cli_is(arg, "-n", "--n-predict")) {
        if (!cli_take_int(a, -1, INT32_MAX, &v)) return -1;
        o->gen.n_predict = (int)v;
        return 1;
    }
    const int r = cli_parse_sampler_opt(a, &o->sampling);
    if (r) return r;
    if (cli_is(arg, NULL, "--stop")) {
        const char *s;
        if (!cli_take_str(a, &s)) return -1;
        if (o->gen.n_stop == RS_GEN_MAX_STOPS)
            return cli_usage_error(a->cmd, "at most %d --stop strings", RS_GEN_MAX_STOPS), -1;
        if (!*s) return cli_usage_error(a->cmd, "--stop needs a non-empty string"), -1;
        o->gen.stop[o->gen.n_stop++] = s;
        return 1;
    }
    if (cli_is(arg, NULL, "--ignore-eos")) {
        o->gen.ignore_eos = true;
        return 1;
    }
    return 0;
}

int cli_load(const char *cmd, const cli_model_opts *o, bool needs_tokenizer, rs_model **m,
             rs_session **s) {
    rs_error err = {0};
    double t0 = rs_time_ms();
    rs_status st = o->model ? rs_model_load(m, o->model, &err) : rs_model_create_demo(m, 42, &err);
    if (st) {
        fprintf(stderr, "rusty %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (rs_session_create(s, *m, &o->session, &err) != RS_OK) {
        fprintf(stderr, "rusty %s: %s\n", cmd, err.msg);
        rs_model_free(*m);
        *m = NULL;
        return 1;
    }
    const rs_model *mm = *m;
    if (!mm->tok && needs_tokenizer) {
        fprintf(stderr,
                "rusty %s: %s has no tokenizer (no tokenizer.ggml.* metadata or tokenizer.json)\n",
                cmd, o->model);
        rs_session_free(*s);
        rs_model_free(*m);
        *s = NULL;
        *m = NULL;
        return 1;
    }
    rs_session_info info;
    rs_session_get_info(*s, &info);
    fprintf(stderr,
            "rusty: %s: %s, %.1fM params, %s, %.2f GiB, %d layers, vocab %d (loaded in %.0f ms)\n",
            mm->name, mm->hp.arch_name, (double)mm->n_params / 1e6, mm->type_desc,
            (double)mm->weight_bytes / (1 << 30), mm->hp.n_layer, mm->hp.n_vocab,
            rs_time_ms() - t0);
    fprintf(
        stderr,
        "rusty: backend %s, %d threads, %d GPU layers, context %d, batch %d, KV cache %.1f MiB\n",
        info.backend, info.n_threads, info.n_gpu_layers, info.n_ctx, info.n_batch,
        (double)info.kv_bytes / (1 << 20));
    if (info.note) fprintf(stderr, "rusty: note: %s\n", info.note);
    return 0;
}

char *cli_read_prompt(const char *cmd, const cli_gen_opts *o, const char *fallback, size_t *len) {
    if (o->prompt && o->prompt_file) {
        cli_usage_error(cmd, "give either -p or -f, not both");
        return NULL;
    }
    if (o->prompt_file) {
        FILE *f = fopen(o->prompt_file, "rb");
        if (!f) {
            fprintf(stderr, "rusty %s: cannot open prompt file '%s'\n", cmd, o->prompt_file);
            return NULL;
        }
        rs_bytes b = {0};
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0)
            if (rs_bytes_append(&b, buf, got) != RS_OK) break;
        bool bad = ferror(f);
        fclose(f);
        if (bad) {
            fprintf(stderr, "rusty %s: error reading '%s'\n", cmd, o->prompt_file);
            rs_bytes_free(&b);
            return NULL;
        }
        *len = b.len;
        return b.data ? b.data : strdup("");
    }
    const char *p = o->prompt ? o->prompt : fallback;
    *len = strlen(p);
    return strdup(p);
}

int cli_tokenize_prompt(const char *cmd, const rs_tokenizer *tok, const char *text, size_t len,
                        rs_tokens *out) {
    rs_error err = {0};
    int32_t bos = rs_tokenizer_bos(tok);
    if (rs_tokenizer_add_bos(tok) && bos != RS_TOKEN_NONE && rs_tokens_push(out, bos) != RS_OK) {
        fprintf(stderr, "rusty %s: out of memory\n", cmd);
        return 1;
    }
    if (rs_tokenizer_encode(tok, text, len, false, true, out, &err) != RS_OK) {
        fprintf(stderr, "rusty %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (out->n == 0) {
        fprintf(stderr,
                "rusty %s: the prompt is empty and the model has no BOS token to start from\n",
                cmd);
        return 1;
    }
    return 0;
}
