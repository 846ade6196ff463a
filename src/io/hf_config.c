/* hf_config.c — Hugging Face config.json parser and checks (see hf_config.h). */
#include "io/hf_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "io/mapping.h"

#define MAX_CONFIG_BYTES (16u << 20) /* real ones are a few KB */

/* Where messages go: "<what>: <message>". */
typedef struct cfg_ctx {
    const char *what;
    rs_error *err;
} cfg_ctx;

static rs_status cfg_fail(const cfg_ctx *cx, rs_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rs_status cfg_fail(const cfg_ctx *cx, rs_status code, const char *fmt, ...) {
    char msg[RS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rs_error_set(cx->err, code, "%.200s: %s", cx->what, msg);
}

/* The member `key` of obj, or NULL when absent or null (null means "not set"). */
static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* Reads an integer in [lo, hi]; `def` when absent unless required.
 * `name` is the key as shown in messages (may be nested: "rope_scaling.factor"). */
static rs_status get_int(const cfg_ctx *cx, const cJSON *obj, const char *key, const char *name,
                         bool required, int64_t lo, int64_t hi, int64_t def, int64_t *out) {
    const cJSON *v = member(obj, key);
    if (!v) {
        if (required) return cfg_fail(cx, RS_ERR_FORMAT, "required key '%s' is missing", name);
        *out = def;
        return RS_OK;
    }
    if (!cJSON_IsNumber(v))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is a %s, expected an integer", name,
                        rs_json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' = %g is not an integer", name, d);
    if (d < (double)lo || d > (double)hi)
        return cfg_fail(cx, RS_ERR_RANGE, "'%s' = %.17g is out of range [%lld, %lld]", name, d,
                        (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return RS_OK;
}

/* Reads a finite number in (lo, hi] (lo exclusive: every float we read must be > lo). */
static rs_status get_num(const cfg_ctx *cx, const cJSON *obj, const char *key, const char *name,
                         bool required, double lo, double hi, double def, double *out) {
    const cJSON *v = member(obj, key);
    if (!v) {
        if (required) return cfg_fail(cx, RS_ERR_FORMAT, "required key '%s' is missing", name);
        *out = def;
        return RS_OK;
    }
    if (!cJSON_IsNumber(v))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is a %s, expected a number", name,
                        rs_json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || !(d > lo) || d > hi)
        return cfg_fail(cx, RS_ERR_RANGE, "'%s' = %g is out of range (%g, %g]", name, d, lo, hi);
    *out = d;
    return RS_OK;
}

static rs_status get_bool(const cfg_ctx *cx, const cJSON *obj, const char *key, bool def,
                          bool *out) {
    const cJSON *v = member(obj, key);
    if (!v) {
        *out = def;
        return RS_OK;
    }
    if (!cJSON_IsBool(v))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is a %s, expected true or false", key,
                        rs_json_type_name(v));
    *out = cJSON_IsTrue(v);
    return RS_OK;
}

/* Copies an optional string into buf (left "" when absent). */
static rs_status get_str(const cfg_ctx *cx, const cJSON *v, const char *name, char *buf,
                         size_t cap) {
    buf[0] = '\0';
    if (!v) return RS_OK;
    if (!cJSON_IsString(v))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is a %s, expected a string", name,
                        rs_json_type_name(v));
    size_t n = strlen(v->valuestring);
    if (n >= cap)
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is %zu bytes long, more than %zu", name, n,
                        cap - 1);
    memcpy(buf, v->valuestring, n + 1);
    return RS_OK;
}

/* ---- pieces ------------------------------------------------------------------------ */

static rs_status parse_names(const cfg_ctx *cx, const cJSON *root, rs_hf_config *c) {
    const cJSON *arch = member(root, "architectures");
    if (arch) {
        if (!cJSON_IsArray(arch) || !arch->child)
            return cfg_fail(cx, RS_ERR_FORMAT, "'architectures' is %s, expected a non-empty array",
                            cJSON_IsArray(arch) ? "empty" : rs_json_type_name(arch));
        rs_status s =
            get_str(cx, arch->child, "architectures[0]", c->architecture, sizeof c->architecture);
        if (s) return s;
    }
    rs_status s =
        get_str(cx, member(root, "model_type"), "model_type", c->model_type, sizeof c->model_type);
    if (s) return s;
    if (!c->architecture[0] && !c->model_type[0])
        return cfg_fail(cx, RS_ERR_FORMAT, "neither 'architectures' nor 'model_type' is given");
    return RS_OK;
}

static rs_status parse_sizes(const cfg_ctx *cx, const cJSON *r, rs_hf_config *c) {
    rs_status s;
    if ((s = get_int(cx, r, "hidden_size", "hidden_size", true, 1, 1 << 20, 0, &c->hidden_size)) ||
        (s = get_int(cx, r, "intermediate_size", "intermediate_size", true, 1, 1 << 22, 0,
                     &c->intermediate_size)) ||
        (s = get_int(cx, r, "num_hidden_layers", "num_hidden_layers", true, 1, 4096, 0,
                     &c->num_hidden_layers)) ||
        (s = get_int(cx, r, "num_attention_heads", "num_attention_heads", true, 1, 4096, 0,
                     &c->num_attention_heads)) ||
        (s = get_int(cx, r, "num_key_value_heads", "num_key_value_heads", false, 1, 4096,
                     c->num_attention_heads, &c->num_key_value_heads)) ||
        (s = get_int(cx, r, "head_dim", "head_dim", false, 1, 4096, 0, &c->head_dim)) ||
        (s = get_int(cx, r, "vocab_size", "vocab_size", true, 1, 1 << 24, 0, &c->vocab_size)) ||
        (s = get_int(cx, r, "max_position_embeddings", "max_position_embeddings", true, 1, 1 << 30,
                     0, &c->max_position_embeddings)))
        return s;
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return cfg_fail(cx, RS_ERR_FORMAT,
                        "'num_key_value_heads' = %lld does not divide 'num_attention_heads' = %lld",
                        (long long)c->num_key_value_heads, (long long)c->num_attention_heads);
    c->head_dim_given = c->head_dim != 0;
    if (!c->head_dim_given) {
        if (c->hidden_size % c->num_attention_heads != 0)
            return cfg_fail(cx, RS_ERR_FORMAT,
                            "'hidden_size' = %lld is not divisible by 'num_attention_heads' = %lld "
                            "and 'head_dim' is not given",
                            (long long)c->hidden_size, (long long)c->num_attention_heads);
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if (c->head_dim % 2 != 0)
        return cfg_fail(cx, RS_ERR_FORMAT, "'head_dim' = %lld%s is odd; RoPE needs an even one",
                        (long long)c->head_dim,
                        c->head_dim_given ? "" : " (hidden_size / num_attention_heads)");
    return RS_OK;
}

typedef struct scaling_name {
    const char *name;
    rs_rope_scaling_type type;
} scaling_name;

static const scaling_name scaling_names[] = {
    {"default", RS_ROPE_SCALING_NONE},    {"linear", RS_ROPE_SCALING_LINEAR},
    {"dynamic", RS_ROPE_SCALING_DYNAMIC}, {"llama3", RS_ROPE_SCALING_LLAMA3},
    {"yarn", RS_ROPE_SCALING_YARN},
};

/* `key` is "rope_scaling" or "rope_parameters" (for messages). */
static rs_status parse_scaling(const cfg_ctx *cx, const cJSON *o, const char *key,
                               rs_rope_scaling *rs) {
    memset(rs, 0, sizeof *rs);
    if (!o) return RS_OK;
    if (!cJSON_IsObject(o))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is a %s, expected an object or null", key,
                        rs_json_type_name(o));
    const cJSON *t = member(o, "rope_type"); /* transformers prefers rope_type over type */
    const char *tkey = "rope_type";
    if (!t) t = member(o, "type"), tkey = "type";
    if (!t) return cfg_fail(cx, RS_ERR_FORMAT, "'%s' has neither 'rope_type' nor 'type'", key);
    if (!cJSON_IsString(t))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s.%s' is a %s, expected a string", key, tkey,
                        rs_json_type_name(t));
    size_t i = 0, n = sizeof scaling_names / sizeof scaling_names[0];
    while (i < n && strcmp(scaling_names[i].name, t->valuestring) != 0) i++;
    if (i == n)
        return cfg_fail(
            cx, RS_ERR_UNSUPPORTED,
            "'%s.%s' = '%.40s' is not supported (default, linear, dynamic, llama3, yarn)", key,
            tkey, t->valuestring);
    rs->type = scaling_names[i].type;
    if (rs->type == RS_ROPE_SCALING_NONE) return RS_OK;

    char name[64];
#define NAME(field) (snprintf(name, sizeof name, "%s.%s", key, field), name)
    bool llama3 = rs->type == RS_ROPE_SCALING_LLAMA3, yarn = rs->type == RS_ROPE_SCALING_YARN;
    rs_status s;
    if ((s = get_num(cx, o, "factor", NAME("factor"), true, 0, 1e6, 0, &rs->factor)) ||
        (s = get_int(cx, o, "original_max_position_embeddings",
                     NAME("original_max_position_embeddings"), llama3, 1, 1 << 30, 0,
                     &rs->original_max_position)))
        return s;
    if (llama3) {
        if ((s = get_num(cx, o, "low_freq_factor", NAME("low_freq_factor"), true, 0, 1e6, 0,
                         &rs->low_freq_factor)) ||
            (s = get_num(cx, o, "high_freq_factor", NAME("high_freq_factor"), true, 0, 1e6, 0,
                         &rs->high_freq_factor)))
            return s;
        if (!(rs->high_freq_factor > rs->low_freq_factor))
            return cfg_fail(cx, RS_ERR_RANGE,
                            "'%s.high_freq_factor' = %g must exceed low_freq_factor = %g", key,
                            rs->high_freq_factor, rs->low_freq_factor);
    }
    if (yarn &&
        ((s = get_num(cx, o, "beta_fast", NAME("beta_fast"), false, 0, 1e6, 0, &rs->beta_fast)) ||
         (s = get_num(cx, o, "beta_slow", NAME("beta_slow"), false, 0, 1e6, 0, &rs->beta_slow)) ||
         (s = get_num(cx, o, "attention_factor", NAME("attention_factor"), false, 0, 1e6, 0,
                      &rs->attention_factor))))
        return s;
#undef NAME
    return RS_OK;
}

static rs_status parse_rope(const cfg_ctx *cx, const cJSON *r, rs_hf_config *c) {
    const cJSON *params = member(r, "rope_parameters"); /* transformers >= 5 layout */
    if (params && !cJSON_IsObject(params))
        return cfg_fail(cx, RS_ERR_FORMAT, "'rope_parameters' is a %s, expected an object",
                        rs_json_type_name(params));
    const cJSON *theta_obj = member(r, "rope_theta") || !params ? r : params;
    rs_status s = get_num(cx, theta_obj, "rope_theta",
                          theta_obj == r ? "rope_theta" : "rope_parameters.rope_theta", false, 0,
                          1e12, 10000.0, &c->rope_theta);
    if (s) return s;
    if (member(r, "rope_scaling") || !params)
        return parse_scaling(cx, member(r, "rope_scaling"), "rope_scaling", &c->rope_scaling);
    return parse_scaling(cx, params, "rope_parameters", &c->rope_scaling);
}

static rs_status parse_dtype(const cfg_ctx *cx, const cJSON *r, rs_hf_config *c) {
    static const struct {
        const char *name;
        rs_dtype type;
    } names[] = {{"float32", RS_DTYPE_F32},
                 {"float16", RS_DTYPE_F16},
                 {"bfloat16", RS_DTYPE_BF16},
                 {"float64", RS_DTYPE_F64}};
    const char *key = "torch_dtype";
    const cJSON *v = member(r, key);
    if (!v) key = "dtype", v = member(r, key);
    c->torch_dtype = RS_DTYPE_COUNT;
    if (!v) return RS_OK;
    if (!cJSON_IsString(v))
        return cfg_fail(cx, RS_ERR_FORMAT, "'%s' is a %s, expected a string", key,
                        rs_json_type_name(v));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i].name, v->valuestring) == 0) {
            c->torch_dtype = names[i].type;
            return RS_OK;
        }
    }
    return cfg_fail(cx, RS_ERR_UNSUPPORTED,
                    "'%s' = '%.40s' is not supported (float32, float16, bfloat16, float64)", key,
                    v->valuestring);
}

static rs_status parse_tokens(const cfg_ctx *cx, const cJSON *r, rs_hf_config *c) {
    int64_t max_id = c->vocab_size - 1;
    rs_status s =
        get_int(cx, r, "bos_token_id", "bos_token_id", false, 0, max_id, -1, &c->bos_token_id);
    if (s) return s;
    const cJSON *eos = member(r, "eos_token_id");
    c->n_eos = 0;
    if (!eos) return RS_OK;
    if (!cJSON_IsArray(eos)) {
        c->n_eos = 1;
        return get_int(cx, r, "eos_token_id", "eos_token_id", true, 0, max_id, 0,
                       &c->eos_token_ids[0]);
    }
    size_t n = rs_json_count(eos);
    if (n == 0 || n > RS_HF_MAX_EOS)
        return cfg_fail(cx, RS_ERR_FORMAT, "'eos_token_id' lists %zu ids, expected 1 to %d", n,
                        RS_HF_MAX_EOS);
    char name[32];
    size_t i = 0;
    for (const cJSON *e = eos->child; e; e = e->next, i++) {
        uint64_t u;
        const char *why = rs_json_get_uint(e, (uint64_t)max_id, &u);
        snprintf(name, sizeof name, "eos_token_id[%zu]", i);
        if (why)
            return cfg_fail(cx, cJSON_IsNumber(e) ? RS_ERR_RANGE : RS_ERR_FORMAT,
                            "'%s' %s (vocab_size %lld)", name, why, (long long)c->vocab_size);
        c->eos_token_ids[i] = (int64_t)u;
    }
    c->n_eos = n;
    return RS_OK;
}

static rs_status parse_root(const cfg_ctx *cx, const cJSON *r, rs_hf_config *c) {
    if (!cJSON_IsObject(r))
        return cfg_fail(cx, RS_ERR_FORMAT, "top level is a %s, expected an object",
                        rs_json_type_name(r));
    const char *dup;
    if (rs_json_find_duplicate_key(r, &dup)) return cfg_fail(cx, RS_ERR_NOMEM, "out of memory");
    if (dup) return cfg_fail(cx, RS_ERR_FORMAT, "key '%.100s' appears twice", dup);
    rs_status s;
    if ((s = parse_names(cx, r, c)) || (s = parse_sizes(cx, r, c))) return s;
    if ((s = get_num(cx, r, "rms_norm_eps", "rms_norm_eps", false, 0, 0.5, 1e-6, &c->rms_norm_eps)))
        return s;
    if ((s = parse_rope(cx, r, c)) || (s = parse_dtype(cx, r, c)) || (s = parse_tokens(cx, r, c)))
        return s;
    if ((s = get_bool(cx, r, "tie_word_embeddings", false, &c->tie_word_embeddings)) ||
        (s = get_bool(cx, r, "attention_bias", false, &c->attention_bias)) ||
        (s = get_bool(cx, r, "mlp_bias", false, &c->mlp_bias)) ||
        (s = get_bool(cx, r, "use_sliding_window", false, &c->use_sliding_window)))
        return s;
    return get_int(cx, r, "sliding_window", "sliding_window", false, 0, 1 << 30, 0,
                   &c->sliding_window);
}

rs_status rs_hf_config_parse(rs_hf_config *c, const char *json, size_t len, const char *what,
                             rs_error *err) {
    memset(c, 0, sizeof *c);
    cfg_ctx cx = {what ? what : "config.json", err};
    cJSON *root;
    rs_status s = rs_json_parse(&root, json, len, cx.what, err);
    if (s) return s;
    s = parse_root(&cx, root, c);
    cJSON_Delete(root);
    if (s) rs_error_one_line(err);
    return s;
}

rs_status rs_hf_config_load(rs_hf_config *c, const char *path, rs_error *err) {
    memset(c, 0, sizeof *c);
    rs_mapping map;
    rs_status s = rs_mapping_open(&map, path, err);
    if (s) return s;
    if (map.size > MAX_CONFIG_BYTES)
        s = rs_error_set(err, RS_ERR_FORMAT, "%s: %zu bytes, more than the %u-byte limit", path,
                         map.size, MAX_CONFIG_BYTES);
    else
        s = rs_hf_config_parse(c, (const char *)map.data, map.size, path, err);
    rs_mapping_close(&map);
    return s;
}
