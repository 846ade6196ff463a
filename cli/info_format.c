/* info_format.c — `rusty info` output: human summary, metadata dump, tensor list, JSON. */
#include "info_format.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { ARRAY_PREVIEW = 8, STRING_PREVIEW = 96 };

/* Hyper-parameters shown when present: key suffix after "<arch>." and a label. */
static const struct {
    const char *suffix, *label;
} hparam_keys[] = {
    {"context_length", "context"},
    {"embedding_length", "embedding"},
    {"feed_forward_length", "feed-forward"},
    {"block_count", "layers"},
    {"attention.head_count", "heads"},
    {"attention.head_count_kv", "KV heads"},
    {"attention.key_length", "head size"},
    {"attention.layer_norm_rms_epsilon", "rms eps"},
    {"rope.dimension_count", "rope dims"},
    {"rope.freq_base", "rope base"},
    {"rope.scaling.type", "rope scaling"},
    {"rope.scaling.factor", "rope factor"},
    {"vocab_size", "vocab size"},
    {"expert_count", "experts"},
};

static const struct {
    const char *key, *label;
} special_keys[] = {
    {"tokenizer.ggml.bos_token_id", "BOS"},       {"tokenizer.ggml.eos_token_id", "EOS"},
    {"tokenizer.ggml.eot_token_id", "EOT"},       {"tokenizer.ggml.eom_token_id", "EOM"},
    {"tokenizer.ggml.unknown_token_id", "UNK"},   {"tokenizer.ggml.padding_token_id", "PAD"},
    {"tokenizer.ggml.seperator_token_id", "SEP"}, {"tokenizer.ggml.mask_token_id", "MASK"},
};

static const char *vocab_kind(const char *model) {
    if (strcmp(model, "llama") == 0) return "SentencePiece BPE";
    if (strcmp(model, "gpt2") == 0) return "byte-level BPE";
    if (strcmp(model, "bert") == 0) return "WordPiece";
    if (strcmp(model, "t5") == 0) return "Unigram";
    if (strcmp(model, "rwkv") == 0) return "RWKV";
    return "unknown";
}

static void copy_str(char *dst, size_t cap, rs_str s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

void info_summarize(const rs_model_file *mf, const char *path, info_summary *s) {
    memset(s, 0, sizeof *s);
    s->path = path;
    rs_str str;
    if (rs_meta_get_str(mf->meta, "general.architecture", &str, NULL) == RS_OK)
        copy_str(s->arch, sizeof s->arch, str);
    if (rs_meta_get_str(mf->meta, "general.name", &str, NULL) == RS_OK)
        copy_str(s->name, sizeof s->name, str);
    if (rs_meta_get_str(mf->meta, "tokenizer.ggml.model", &str, NULL) == RS_OK)
        copy_str(s->tok_model, sizeof s->tok_model, str);
    if (rs_meta_get_str(mf->meta, "tokenizer.ggml.pre", &str, NULL) == RS_OK)
        copy_str(s->tok_pre, sizeof s->tok_pre, str);
    rs_array tokens;
    s->n_vocab = rs_meta_get_arr(mf->meta, "tokenizer.ggml.tokens", &tokens, NULL) == RS_OK
                     ? (int64_t)tokens.n
                     : -1;
    for (uint64_t i = 0; i < mf->n_tensors; i++) {
        const rs_tensor_info *t = &mf->tensors[i];
        uint64_t n = (uint64_t)rs_tensor_nelements(t);
        s->n_params += n;
        s->tensor_bytes += t->nbytes;
        if ((unsigned)t->type < RS_DTYPE_COUNT) {
            s->types[t->type].count++;
            s->types[t->type].bytes += t->nbytes;
            s->types[t->type].elements += n;
        }
    }
}

static const char *fmt_count(char *buf, size_t cap, uint64_t n) {
    static const char *const units[] = {"", "K", "M", "B", "T"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000.0 && u < 4) v /= 1000.0, u++;
    snprintf(buf, cap, u ? "%.2f%s" : "%.0f%s", v, units[u]);
    return buf;
}

static const char *fmt_bytes(char *buf, size_t cap, uint64_t n) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) v /= 1024.0, u++;
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", v, units[u]);
    return buf;
}

/* Prints a string with control bytes escaped, cut at `limit` bytes. */
static void print_escaped(FILE *f, rs_str s, size_t limit) {
    size_t n = s.len < limit ? (size_t)s.len : limit;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    if (n < s.len) fprintf(f, "... (%" PRIu64 " bytes)", s.len);
}

static void print_scalar(FILE *f, const rs_value *v) {
    switch (v->type) {
    case RS_V_U8:
    case RS_V_U16:
    case RS_V_U32:
    case RS_V_U64:
        fprintf(f, "%" PRIu64, v->u);
        break;
    case RS_V_I8:
    case RS_V_I16:
    case RS_V_I32:
    case RS_V_I64:
        fprintf(f, "%" PRId64, v->i);
        break;
    case RS_V_F32:
    case RS_V_F64:
        fprintf(f, "%.9g", v->f);
        break;
    case RS_V_BOOL:
        fputs(v->b ? "true" : "false", f);
        break;
    case RS_V_STR:
        fputc('"', f);
        print_escaped(f, v->str, STRING_PREVIEW);
        fputc('"', f);
        break;
    default:
        fputs("?", f);
    }
}

/* Element i of an array as a standalone value (nested arrays by reference). */
static rs_value array_elem(const rs_array *a, uint64_t i) {
    rs_value v;
    memset(&v, 0, sizeof v);
    v.type = a->type;
    switch (a->type) {
    case RS_V_STR:
        v.str = rs_array_get_str(a, i);
        break;
    case RS_V_ARR:
        v = ((const rs_value *)a->data)[i];
        break;
    case RS_V_F32:
    case RS_V_F64:
        v.f = rs_array_get_f64(a, i);
        break;
    case RS_V_I8:
    case RS_V_I16:
    case RS_V_I32:
    case RS_V_I64:
        v.i = rs_array_get_i64(a, i);
        break;
    case RS_V_BOOL:
        v.b = rs_array_get_u64(a, i) != 0;
        break;
    default:
        v.u = rs_array_get_u64(a, i);
    }
    return v;
}

static void print_value(FILE *f, const rs_value *v) {
    if (v->type != RS_V_ARR) {
        print_scalar(f, v);
        return;
    }
    const rs_array *a = &v->arr;
    fprintf(f, "[%s x %" PRIu64 "] ", rs_vtype_name(a->type), a->n);
    for (uint64_t i = 0; i < a->n && i < ARRAY_PREVIEW; i++) {
        rs_value e = array_elem(a, i);
        if (i) fputs(", ", f);
        if (e.type == RS_V_ARR)
            fprintf(f, "[%s x %" PRIu64 "]", rs_vtype_name(e.arr.type), e.arr.n);
        else
            print_scalar(f, &e);
    }
    if (a->n > ARRAY_PREVIEW) fputs(", ...", f);
}

static void print_special(FILE *f, const rs_meta *meta) {
    rs_array tokens = {0};
    bool have_tokens = rs_meta_get_arr(meta, "tokenizer.ggml.tokens", &tokens, NULL) == RS_OK &&
                       tokens.type == RS_V_STR;
    bool any = false;
    for (size_t k = 0; k < sizeof special_keys / sizeof *special_keys; k++) {
        uint64_t id;
        if (rs_meta_get_u64(meta, special_keys[k].key, &id, NULL) != RS_OK) continue;
        if (!any) fprintf(f, "%-14s", "special:");
        fprintf(f, "%s%s %" PRIu64, any ? ", " : "", special_keys[k].label, id);
        if (have_tokens && id < tokens.n) {
            fputs(" '", f);
            print_escaped(f, rs_array_get_str(&tokens, id), 32);
            fputc('\'', f);
        } else if (id == UINT32_MAX) {
            fputs(" (none)", f);
        }
        any = true;
    }
    if (any) fputc('\n', f);
}

void info_print_summary(FILE *f, const rs_model_file *mf, const info_summary *s) {
    char b1[32], b2[32];
    fprintf(f, "%-14s%s (%s, ", "file:", s->path, fmt_bytes(b1, sizeof b1, mf->file_bytes));
    if (mf->format == RS_FORMAT_GGUF)
        fprintf(f, "GGUF v%u)\n", mf->gguf_version);
    else
        fprintf(f, "Hugging Face safetensors)\n");
    if (s->arch[0]) fprintf(f, "%-14s%s\n", "architecture:", s->arch);
    if (s->name[0]) fprintf(f, "%-14s%s\n", "name:", s->name);
    fprintf(f, "%-14s%s\n", "parameters:", fmt_count(b1, sizeof b1, s->n_params));
    for (size_t k = 0; s->arch[0] && k < sizeof hparam_keys / sizeof *hparam_keys; k++) {
        char key[160];
        snprintf(key, sizeof key, "%s.%s", s->arch, hparam_keys[k].suffix);
        const rs_value *v = rs_meta_find(mf->meta, key);
        if (!v) continue;
        char label[40];
        snprintf(label, sizeof label, "%s:", hparam_keys[k].label);
        fprintf(f, "%-14s", label);
        print_value(f, v);
        fputc('\n', f);
    }
    bool neox = false;
    if (rs_meta_get_bool(mf->meta, "rusty.rope_neox", &neox, NULL) == RS_OK && neox)
        fprintf(f, "%-14s%s\n", "rope layout:", "rotate-half (HF q/k layout)");
    if (s->tok_model[0]) {
        fprintf(f, "%-14s%s (%s)", "vocabulary:", s->tok_model, vocab_kind(s->tok_model));
        if (s->tok_pre[0]) fprintf(f, ", pre-tokenizer %s", s->tok_pre);
        if (s->n_vocab >= 0) fprintf(f, ", %" PRId64 " tokens", s->n_vocab);
        fputc('\n', f);
    }
    print_special(f, mf->meta);
    fprintf(f, "%-14s%" PRIu64 " (%s)\n", "tensors:", mf->n_tensors,
            fmt_bytes(b1, sizeof b1, s->tensor_bytes));
    for (int t = 0; t < RS_DTYPE_COUNT; t++) {
        const info_type_stat *ts = &s->types[t];
        if (!ts->count) continue;
        double bpw = ts->elements ? 8.0 * (double)ts->bytes / (double)ts->elements : 0;
        fprintf(f, "  %-10s %6" PRIu64 " tensors  %12s  %10s params  %.2f bits/weight\n",
                rs_dtype_name(t), ts->count, fmt_bytes(b1, sizeof b1, ts->bytes),
                fmt_count(b2, sizeof b2, ts->elements), bpw);
    }
}

void info_print_meta(FILE *f, const rs_meta *meta) {
    fprintf(f, "\nmetadata (%zu keys):\n", meta->n);
    for (size_t i = 0; i < meta->n; i++) {
        const rs_value *v = &meta->kv[i].value;
        fprintf(f, "  %-45s %-4s ", meta->kv[i].key, rs_vtype_name(v->type));
        print_value(f, v);
        fputc('\n', f);
    }
}

void info_print_tensors(FILE *f, const rs_model_file *mf) {
    fprintf(f, "\ntensors (%" PRIu64 "):\n", mf->n_tensors);
    fprintf(f, "  %-40s %-8s %-28s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    for (uint64_t i = 0; i < mf->n_tensors; i++) {
        const rs_tensor_info *t = &mf->tensors[i];
        char shape[96];
        size_t off = (size_t)snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims && off < sizeof shape; d++)
            off += (size_t)snprintf(shape + off, sizeof shape - off, "%s%" PRId64, d ? ", " : "",
                                    t->ne[d]);
        if (off < sizeof shape) snprintf(shape + off, sizeof shape - off, "]");
        fprintf(f, "  %-40s %-8s %-28s %12" PRIu64 " %12" PRIu64 "\n", t->name,
                rs_dtype_name(t->type), shape, t->offset, t->nbytes);
    }
}

/* ---- JSON ------------------------------------------------------------------- */

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
static cJSON *json_str(rs_str s) {
    size_t cap = (size_t)s.len * 3 + 1, o = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s.ptr;
    utf8proc_ssize_t left = (utf8proc_ssize_t)s.len;
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0 || cp == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3); /* U+FFFD for bad bytes and NUL */
            o += 3;
            n = 1;
        } else {
            memcpy(buf + o, p, (size_t)n);
            o += (size_t)n;
        }
        p += n;
        left -= n;
    }
    buf[o] = '\0';
    cJSON *j = cJSON_CreateString(buf);
    free(buf);
    return j;
}

static cJSON *json_value(const rs_value *v, bool abbreviate);

static cJSON *json_scalar(const rs_value *v) {
    switch (v->type) {
    case RS_V_U8:
    case RS_V_U16:
    case RS_V_U32:
    case RS_V_U64:
        return cJSON_CreateNumber((double)v->u);
    case RS_V_I8:
    case RS_V_I16:
    case RS_V_I32:
    case RS_V_I64:
        return cJSON_CreateNumber((double)v->i);
    case RS_V_F32:
    case RS_V_F64:
        return isfinite(v->f) ? cJSON_CreateNumber(v->f) : cJSON_CreateNull();
    case RS_V_BOOL:
        return cJSON_CreateBool(v->b);
    case RS_V_STR:
        return json_str(v->str);
    default:
        return cJSON_CreateNull();
    }
}

/* Arrays longer than the preview become {"type", "n", "head": [...]} when abbreviating. */
static cJSON *json_value(const rs_value *v, bool abbreviate) {
    if (v->type != RS_V_ARR) return json_scalar(v);
    const rs_array *a = &v->arr;
    uint64_t shown = abbreviate && a->n > ARRAY_PREVIEW ? ARRAY_PREVIEW : a->n;
    cJSON *arr = cJSON_CreateArray();
    for (uint64_t i = 0; arr && i < shown; i++) {
        rs_value e = array_elem(a, i);
        cJSON_AddItemToArray(arr, json_value(&e, abbreviate));
    }
    if (shown == a->n) return arr;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", rs_vtype_name(a->type));
    cJSON_AddNumberToObject(o, "n", (double)a->n);
    cJSON_AddItemToObject(o, "head", arr);
    return o;
}

static cJSON *json_tokenizer(const rs_meta *meta, const info_summary *s) {
    cJSON *tok = cJSON_CreateObject();
    cJSON_AddStringToObject(tok, "model", s->tok_model);
    if (s->tok_pre[0]) cJSON_AddStringToObject(tok, "pre", s->tok_pre);
    cJSON_AddNumberToObject(tok, "n_vocab", (double)s->n_vocab);
    rs_array tokens = {0};
    bool have = rs_meta_get_arr(meta, "tokenizer.ggml.tokens", &tokens, NULL) == RS_OK &&
                tokens.type == RS_V_STR;
    cJSON *special = cJSON_AddObjectToObject(tok, "special");
    for (size_t k = 0; k < sizeof special_keys / sizeof *special_keys; k++) {
        uint64_t id;
        if (rs_meta_get_u64(meta, special_keys[k].key, &id, NULL) != RS_OK) continue;
        cJSON *e = cJSON_AddObjectToObject(special, special_keys[k].label);
        cJSON_AddNumberToObject(e, "id", (double)id);
        if (have && id < tokens.n)
            cJSON_AddItemToObject(e, "text", json_str(rs_array_get_str(&tokens, id)));
    }
    return tok;
}

static cJSON *json_tensors(const rs_model_file *mf) {
    cJSON *list = cJSON_CreateArray();
    for (uint64_t i = 0; i < mf->n_tensors; i++) {
        const rs_tensor_info *t = &mf->tensors[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", rs_dtype_name(t->type));
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (uint32_t d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddNumberToObject(o, "offset", (double)t->offset);
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

cJSON *info_to_json(const rs_model_file *mf, const info_summary *s, bool tensors, bool meta) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "path", s->path);
    cJSON_AddStringToObject(root, "format", mf->format == RS_FORMAT_GGUF ? "gguf" : "hf");
    if (mf->format == RS_FORMAT_GGUF)
        cJSON_AddNumberToObject(root, "gguf_version", mf->gguf_version);
    cJSON_AddNumberToObject(root, "file_bytes", (double)mf->file_bytes);
    cJSON_AddStringToObject(root, "architecture", s->arch);
    if (s->name[0]) cJSON_AddStringToObject(root, "name", s->name);
    cJSON_AddNumberToObject(root, "n_params", (double)s->n_params);
    cJSON_AddNumberToObject(root, "n_tensors", (double)mf->n_tensors);
    cJSON_AddNumberToObject(root, "tensor_bytes", (double)s->tensor_bytes);
    cJSON *hp = cJSON_AddObjectToObject(root, "hparams");
    for (size_t k = 0; s->arch[0] && k < sizeof hparam_keys / sizeof *hparam_keys; k++) {
        char key[160];
        snprintf(key, sizeof key, "%s.%s", s->arch, hparam_keys[k].suffix);
        const rs_value *v = rs_meta_find(mf->meta, key);
        if (v) cJSON_AddItemToObject(hp, hparam_keys[k].suffix, json_value(v, true));
    }
    if (s->tok_model[0]) cJSON_AddItemToObject(root, "tokenizer", json_tokenizer(mf->meta, s));
    cJSON *types = cJSON_AddObjectToObject(root, "types");
    for (int t = 0; t < RS_DTYPE_COUNT; t++) {
        if (!s->types[t].count) continue;
        cJSON *o = cJSON_AddObjectToObject(types, rs_dtype_name(t));
        cJSON_AddNumberToObject(o, "tensors", (double)s->types[t].count);
        cJSON_AddNumberToObject(o, "bytes", (double)s->types[t].bytes);
        cJSON_AddNumberToObject(o, "params", (double)s->types[t].elements);
    }
    if (tensors) cJSON_AddItemToObject(root, "tensors", json_tensors(mf));
    if (meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "meta");
        for (size_t i = 0; i < mf->meta->n; i++)
            cJSON_AddItemToObject(m, mf->meta->kv[i].key, json_value(&mf->meta->kv[i].value, true));
    }
    return root;
}
