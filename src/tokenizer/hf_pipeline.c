/* hf_pipeline.c — a tokenizer.json's normalizer, pre_tokenizer and
 * post_processor, translated to metadata.
 *
 * The steps are written to tokenizer.rusty.normalizer / .pre_tokenizer as flat
 * string arrays (step name, then its arguments; see pretok.c), which
 * rs_tokenizer_load_meta runs exactly. The GGUF keys llama.cpp understands are
 * derived as well: tokenizer.ggml.pre from the split regex, add_space_prefix
 * from a "▁" prefix rule, add_bos/add_eos and the special ids from the
 * post-processor template. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tokenizer/hf_internal.h"

/* ---- string lists --------------------------------------------------------------- */

static rs_status sl_push(hf_strlist *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **g = rs_realloc_array(l->v, cap, sizeof *g);
        if (!g) return RS_ERR_NOMEM;
        l->v = g, l->cap = cap;
    }
    l->v[l->n] = strdup(s ? s : "");
    if (!l->v[l->n]) return RS_ERR_NOMEM;
    l->n++;
    return RS_OK;
}

void hf_strlist_free(hf_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

rs_status hf_strlist_to_meta(const hf_strlist *l, rs_meta *m, const char *key) {
    rs_str *s = rs_malloc_array(l->n ? l->n : 1, sizeof *s);
    if (!s) return RS_ERR_NOMEM;
    for (size_t i = 0; i < l->n; i++) s[i] = (rs_str){l->v[i], strlen(l->v[i])};
    rs_status st = rs_meta_set_str_arr(m, key, s, l->n);
    free(s);
    return st;
}

/* ---- JSON helpers ------------------------------------------------------------------ */

const char *hf_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool hf_json_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *type_of(const cJSON *o) {
    return hf_json_str(o, "type");
}

static bool type_is(const cJSON *o, const char *t) {
    const char *s = type_of(o);
    return s && strcmp(s, t) == 0;
}

/* A Split/Replace pattern: {"Regex": r} or {"String": s} (made a regex). */
static rs_status pattern_regex(const cJSON *pat, char **out, bool *is_regex, rs_error *err) {
    const char *r = hf_json_str(pat, "Regex"), *s = hf_json_str(pat, "String");
    *out = NULL;
    if (r) {
        *is_regex = true;
        *out = strdup(r);
    } else if (s) {
        *is_regex = false;
        *out = strdup(s);
    } else {
        return rs_error_set(err, RS_ERR_FORMAT,
                            "tokenizer.json: a pattern has neither String nor Regex");
    }
    return *out ? RS_OK : RS_ERR_NOMEM;
}

static char *quote_regex(const char *s) {
    size_t n = strlen(s);
    char *q = malloc(2 * n + 1), *p = q;
    if (!q) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\^$.|?*+()[]{}-/#", s[i])) *p++ = '\\';
        *p++ = s[i];
    }
    *p = '\0';
    return q;
}

static const char *behavior_name(const char *b) {
    if (!b || !strcmp(b, "Isolated")) return "isolated";
    if (!strcmp(b, "Removed")) return "removed";
    if (!strcmp(b, "MergedWithPrevious")) return "merged_with_previous";
    if (!strcmp(b, "MergedWithNext")) return "merged_with_next";
    if (!strcmp(b, "Contiguous")) return "contiguous";
    return NULL;
}

/* ---- normalizer -------------------------------------------------------------------- */

static rs_status norm_step(const cJSON *n, hf_pipeline *p, rs_error *err) {
    if (!n || cJSON_IsNull(n)) return RS_OK;
    const char *t = type_of(n);
    hf_strlist *l = &p->norm;
    if (!t) return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: normalizer without a type");
    if (!strcmp(t, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            rs_status st = norm_step(it, p, err);
            if (st) return st;
        }
        return RS_OK;
    }
    if (!strcmp(t, "NFC")) return sl_push(l, "nfc");
    if (!strcmp(t, "NFD")) return sl_push(l, "nfd");
    if (!strcmp(t, "NFKC")) return sl_push(l, "nfkc");
    if (!strcmp(t, "NFKD")) return sl_push(l, "nfkd");
    if (!strcmp(t, "Lowercase")) return sl_push(l, "lowercase");
    if (!strcmp(t, "StripAccents")) return sl_push(l, "strip_accents");
    if (!strcmp(t, "Strip")) {
        rs_status st = sl_push(l, "strip");
        if (!st) st = sl_push(l, hf_json_bool(n, "strip_left", true) ? "1" : "0");
        if (!st) st = sl_push(l, hf_json_bool(n, "strip_right", true) ? "1" : "0");
        return st;
    }
    if (!strcmp(t, "Prepend")) {
        const char *s = hf_json_str(n, "prepend");
        if (!s)
            return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: Prepend without 'prepend'");
        if (!strcmp(s, RS_SPACE_MARK)) p->space_prefix = true;
        rs_status st = sl_push(l, "prepend");
        return st ? st : sl_push(l, s);
    }
    if (!strcmp(t, "Replace")) {
        char *pat;
        bool is_re;
        const char *content = hf_json_str(n, "content");
        rs_status st =
            pattern_regex(cJSON_GetObjectItemCaseSensitive(n, "pattern"), &pat, &is_re, err);
        if (st) return st;
        if (!content)
            st = rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: Replace without 'content'");
        if (!st && is_re && !strcmp(pat, " {2,}") && !strcmp(content, " "))
            p->collapse_spaces = true;
        if (!st) st = sl_push(l, is_re ? "replace_regex" : "replace");
        if (!st) st = sl_push(l, pat);
        if (!st) st = sl_push(l, content);
        free(pat);
        return st;
    }
    if (!strcmp(t, "BertNormalizer")) {
        p->bert = true;
        p->lowercase = hf_json_bool(n, "lowercase", true);
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(n, "strip_accents");
        p->strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : p->lowercase;
        return RS_OK;
    }
    if (!strcmp(t, "Precompiled")) {
        const char *b64 = hf_json_str(n, "precompiled_charsmap");
        free(p->charsmap_b64);
        p->charsmap_b64 = b64 ? strdup(b64) : NULL;
        return b64 && !p->charsmap_b64 ? RS_ERR_NOMEM : RS_OK;
    }
    return rs_error_set(err, RS_ERR_UNSUPPORTED, "tokenizer.json: normalizer '%s' is not supported",
                        t);
}

/* ---- pre-tokenizer ------------------------------------------------------------------ */

static rs_status pre_split(const cJSON *n, hf_pipeline *p, rs_error *err) {
    char *pat;
    bool is_re;
    rs_status st = pattern_regex(cJSON_GetObjectItemCaseSensitive(n, "pattern"), &pat, &is_re, err);
    if (st) return st;
    if (!is_re) {
        char *q = quote_regex(pat);
        free(pat);
        if (!q) return RS_ERR_NOMEM;
        pat = q;
    }
    const char *b = behavior_name(hf_json_str(n, "behavior"));
    if (!b) st = rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: unknown split behavior");
    if (!st) st = sl_push(&p->pre, "split");
    if (!st) st = sl_push(&p->pre, pat);
    if (!st) st = sl_push(&p->pre, b);
    if (!st) st = sl_push(&p->pre, hf_json_bool(n, "invert", false) ? "1" : "0");
    if (!st && !p->first_regex && is_re) {
        p->first_regex = strdup(pat);
        if (!p->first_regex) st = RS_ERR_NOMEM;
    }
    free(pat);
    return st;
}

static rs_status pre_step(const cJSON *n, hf_pipeline *p, rs_error *err) {
    if (!n || cJSON_IsNull(n)) return RS_OK;
    const char *t = type_of(n);
    hf_strlist *l = &p->pre;
    rs_status st = RS_OK;
    if (!t) return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: pre_tokenizer without a type");
    if (!strcmp(t, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "pretokenizers")) {
            if ((st = pre_step(it, p, err))) return st;
        }
        return RS_OK;
    }
    if (!strcmp(t, "Split")) return pre_split(n, p, err);
    if (!strcmp(t, "ByteLevel")) {
        bool ur = hf_json_bool(n, "use_regex", true);
        p->byte_level = true;
        p->bl_regex |= ur;
        st = sl_push(l, "byte_level");
        if (!st) st = sl_push(l, hf_json_bool(n, "add_prefix_space", false) ? "1" : "0");
        if (!st) st = sl_push(l, ur ? "1" : "0");
        return st;
    }
    if (!strcmp(t, "Metaspace")) {
        const char *repl = hf_json_str(n, "replacement");
        const char *scheme = hf_json_str(n, "prepend_scheme");
        if (!scheme) scheme = hf_json_bool(n, "add_prefix_space", true) ? "always" : "never";
        if (!repl) repl = RS_SPACE_MARK;
        p->metaspace = true;
        p->space_prefix = strcmp(scheme, "never") != 0;
        st = sl_push(l, "metaspace");
        if (!st) st = sl_push(l, repl);
        if (!st) st = sl_push(l, scheme);
        if (!st) st = sl_push(l, hf_json_bool(n, "split", true) ? "1" : "0");
        return st;
    }
    if (!strcmp(t, "Whitespace")) return sl_push(l, "whitespace");
    if (!strcmp(t, "WhitespaceSplit")) return sl_push(l, "whitespace_split");
    if (!strcmp(t, "BertPreTokenizer")) return sl_push(l, "bert");
    if (!strcmp(t, "Punctuation")) {
        const char *b = behavior_name(hf_json_str(n, "behavior"));
        if (!b) return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: unknown split behavior");
        st = sl_push(l, "punctuation");
        return st ? st : sl_push(l, b);
    }
    if (!strcmp(t, "Digits")) {
        st = sl_push(l, "digits");
        return st ? st : sl_push(l, hf_json_bool(n, "individual_digits", false) ? "1" : "0");
    }
    return rs_error_set(err, RS_ERR_UNSUPPORTED,
                        "tokenizer.json: pre_tokenizer '%s' is not supported", t);
}

/* ---- post-processor ------------------------------------------------------------------ */

/* The id of a special token named in a template's "special_tokens" map. */
static int64_t template_id(const cJSON *proc, const char *name) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(proc, "special_tokens");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(e, "ids");
    const cJSON *first = cJSON_GetArrayItem(ids, 0);
    return cJSON_IsNumber(first) ? (int64_t)first->valuedouble : -1;
}

static void post_step(const cJSON *n, hf_pipeline *p) {
    if (!n || cJSON_IsNull(n)) return;
    if (type_is(n, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "processors")) post_step(it, p);
        return;
    }
    if (type_is(n, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(n, "single");
        int k = cJSON_GetArraySize(single);
        const cJSON *first = cJSON_GetArrayItem(single, 0),
                    *last = cJSON_GetArrayItem(single, k - 1);
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
        const cJSON *ls = cJSON_GetObjectItemCaseSensitive(last, "SpecialToken");
        p->post_seen = true;
        if (fs) {
            p->post_bos = true;
            p->post_bos_id = template_id(n, hf_json_str(fs, "id"));
        }
        if (ls && k > 1) {
            p->post_eos = true;
            p->post_eos_id = template_id(n, hf_json_str(ls, "id"));
        }
        return;
    }
    if (type_is(n, "BertProcessing") || type_is(n, "RobertaProcessing")) {
        const cJSON *cls = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(n, "cls"), 1);
        const cJSON *sep = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(n, "sep"), 1);
        p->post_seen = true;
        p->post_bos = cJSON_IsNumber(cls);
        p->post_bos_id = p->post_bos ? (int64_t)cls->valuedouble : -1;
        p->post_eos = cJSON_IsNumber(sep);
        p->post_eos_id = p->post_eos ? (int64_t)sep->valuedouble : -1;
        p->post_is_sep = type_is(n, "BertProcessing");
    }
}

rs_status hf_pipeline_parse(const cJSON *root, hf_pipeline *p, rs_error *err) {
    p->post_bos_id = p->post_eos_id = -1;
    rs_status st = norm_step(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), p, err);
    if (!st) st = pre_step(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), p, err);
    if (!st) post_step(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), p);
    /* a ByteLevel decoder without a ByteLevel pre-tokenizer still means bytes */
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (type_is(dec, "ByteLevel")) p->byte_level = true;
    return st == RS_ERR_NOMEM ? rs_error_set(err, st, "tokenizer.json: out of memory") : st;
}

void hf_pipeline_free(hf_pipeline *p) {
    hf_strlist_free(&p->norm);
    hf_strlist_free(&p->pre);
    free(p->first_regex);
    free(p->charsmap_b64);
    memset(p, 0, sizeof *p);
}

/* The llama.cpp pre-tokenizer name of a known split regex. */
const char *hf_pre_name(const hf_pipeline *p) {
    static const struct {
        const char *name, *re;
    } known[] = {
        {"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
        {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    };
    if (p->first_regex) {
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(p->first_regex, known[i].re)) return known[i].name;
        return "default";
    }
    return p->bl_regex ? "gpt-2" : "default";
}
