/* hf_json.c — a Hugging Face tokenizer folder → GGUF-style tokenizer metadata.
 *
 * tokenizer.json gives the model (BPE with merges in "a b" or ["a","b"] form,
 * WordPiece, or Unigram), the added tokens (special → control, others →
 * user-defined) and the pipeline (hf_pipeline.c); tokenizer_config.json adds
 * add_bos/add_eos, the special token strings and the chat template. A folder
 * with only a SentencePiece tokenizer.model goes through spm_proto.c.
 *
 * The mapping follows llama.cpp's convert_hf_to_gguf: byte-level BPE becomes
 * model "gpt2", other BPE "llama" (here with its merges and exact pipeline
 * kept, so our loader reproduces Hugging Face's BPE), WordPiece "bert" with
 * its "phantom space" vocabulary ("##x" → "x", "x" → "▁x"), Unigram "t5".
 * rs_tokenizer_load_hf is this conversion followed by rs_tokenizer_load_meta. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/mapping.h"
#include "tokenizer/hf_internal.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };
enum { HF_BPE, HF_WPM, HF_UGM };

typedef struct hf_vocab {
    int kind;
    char **tok; /* per id, malloc'd; NULL for an id no entry names */
    float *score;
    int32_t *type;
    size_t n;
    hf_strlist merges;
    int64_t unk;
    bool byte_fallback, fuse_unk, ignore_merges;
    hf_strlist lstrip, rstrip; /* ids as decimal strings */
    rs_arena arena;            /* the text → id map below */
    rs_str *keys;
    rs_strmap map;
} hf_vocab;

static void vocab_free(hf_vocab *v) {
    for (size_t i = 0; i < v->n; i++) free(v->tok[i]);
    free(v->tok);
    free(v->score);
    free(v->type);
    hf_strlist_free(&v->merges);
    hf_strlist_free(&v->lstrip);
    hf_strlist_free(&v->rstrip);
    rs_arena_free(&v->arena);
}

static bool path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static rs_status read_json(const char *path, cJSON **out, rs_error *err) {
    rs_mapping map;
    *out = NULL;
    rs_status st = rs_mapping_open(&map, path, err);
    if (st) return st;
    *out = cJSON_ParseWithLength(map.data ? (const char *)map.data : "", map.size);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && map.data && at >= (const char *)map.data &&
                             at <= (const char *)map.data + map.size
                         ? (size_t)(at - (const char *)map.data)
                         : 0;
        rs_mapping_close(&map);
        return rs_error_set(err, RS_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    rs_mapping_close(&map);
    return RS_OK;
}

static bool json_id(const cJSON *v, int64_t *id) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 2147483647.0) || d != (double)(int64_t)d) return false;
    *id = (int64_t)d;
    return true;
}

/* ---- vocabulary -------------------------------------------------------------------- */

static rs_status vocab_alloc(hf_vocab *v, size_t n, rs_error *err) {
    v->tok = rs_malloc_array(n, sizeof *v->tok);
    v->score = rs_malloc_array(n, sizeof *v->score);
    v->type = rs_malloc_array(n, sizeof *v->type);
    if (!v->tok || !v->score || !v->type)
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer.json: out of memory");
    for (size_t i = 0; i < n; i++) v->tok[i] = NULL, v->score[i] = 0, v->type[i] = TT_NORMAL;
    v->n = n;
    return RS_OK;
}

/* The id range: model entries plus added tokens, with a bound on holes so a
 * hostile id cannot make us allocate gigabytes. */
static rs_status vocab_size(const cJSON *entries, bool is_map, const cJSON *added, size_t *n,
                            rs_error *err) {
    int64_t max_id = -1, id;
    size_t count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries) {
        count++;
        if (!is_map) continue;
        if (!json_id(e, &id))
            return rs_error_set(err, RS_ERR_FORMAT,
                                "tokenizer.json: vocab entry '%.40s' has a bad id",
                                e->string ? e->string : "?");
        if (id > max_id) max_id = id;
    }
    if (!is_map) max_id = (int64_t)count - 1;
    cJSON_ArrayForEach(e, added) {
        count++;
        if (json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) && id > max_id) max_id = id;
    }
    if (max_id < 0) return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: empty vocabulary");
    if ((uint64_t)max_id >= count + 65536)
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: id %lld but only %zu entries",
                            (long long)max_id, count);
    *n = (size_t)max_id + 1;
    return RS_OK;
}

static rs_status set_tok(hf_vocab *v, int64_t id, const char *s, rs_error *err) {
    if (id < 0 || (size_t)id >= v->n)
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: id %lld out of range",
                            (long long)id);
    if (v->tok[id] && strcmp(v->tok[id], s) != 0 && v->type[id] == TT_NORMAL)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "tokenizer.json: id %lld is both '%.40s' and '%.40s'", (long long)id,
                            v->tok[id], s);
    free(v->tok[id]);
    v->tok[id] = strdup(s);
    return v->tok[id] ? RS_OK : rs_error_set(err, RS_ERR_NOMEM, "tokenizer.json: out of memory");
}

static rs_status parse_merges(const cJSON *merges, hf_vocab *v, rs_error *err) {
    const cJSON *m;
    size_t i = 0;
    cJSON_ArrayForEach(m, merges) {
        char buf[4096];
        if (cJSON_IsString(m)) {
            snprintf(buf, sizeof buf, "%s", m->valuestring);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            const char *a = cJSON_GetArrayItem(m, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(m, 1)->valuestring;
            /* GGUF keeps "a b"; a left side with an inner space cannot be split back */
            if (!a[0] || strchr(a + 1, ' '))
                return rs_error_set(err, RS_ERR_UNSUPPORTED,
                                    "tokenizer.json: merge %zu has a space inside its left side",
                                    i);
            snprintf(buf, sizeof buf, "%s %s", a, b);
        } else {
            return rs_error_set(err, RS_ERR_FORMAT,
                                "tokenizer.json: merge %zu is neither \"a b\" nor [a, b]", i);
        }
        rs_status st = RS_OK;
        if (strlen(buf) >= sizeof buf - 1)
            return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: merge %zu is too long", i);
        if (v->merges.n == v->merges.cap) {
            size_t cap = v->merges.cap ? v->merges.cap * 2 : 1024;
            char **g = rs_realloc_array(v->merges.v, cap, sizeof *g);
            if (!g) return RS_ERR_NOMEM;
            v->merges.v = g, v->merges.cap = cap;
        }
        v->merges.v[v->merges.n] = strdup(buf);
        if (!v->merges.v[v->merges.n])
            st = RS_ERR_NOMEM;
        else
            v->merges.n++;
        if (st) return st;
        i++;
    }
    return RS_OK;
}

/* WordPiece "phantom space" form, as convert_hf_to_gguf writes it. */
static char *phantom(const char *t) {
    size_t n = strlen(t);
    char *r = malloc(n + RS_SPACE_MARK_LEN + 1);
    if (!r) return NULL;
    if (n >= 2 && t[0] == '[' && t[n - 1] == ']')
        memcpy(r, t, n + 1);
    else if (n > 2 && t[0] == '#' && t[1] == '#')
        memcpy(r, t + 2, n - 1);
    else {
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): the next copy brings t's NUL
        memcpy(r, RS_SPACE_MARK, RS_SPACE_MARK_LEN);
        memcpy(r + RS_SPACE_MARK_LEN, t, n + 1);
    }
    return r;
}

static rs_status push_id(hf_strlist *l, int64_t id) {
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)id);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **g = rs_realloc_array(l->v, cap, sizeof *g);
        if (!g) return RS_ERR_NOMEM;
        l->v = g, l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(num))) return RS_ERR_NOMEM;
    l->n++;
    return RS_OK;
}

static bool is_byte_token(const char *s) {
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
           strchr("0123456789ABCDEF", s[3]) && strchr("0123456789ABCDEF", s[4]) && s[3] && s[4];
}

static rs_status parse_model(const cJSON *root, hf_vocab *v, rs_error *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const char *type = hf_json_str(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!type && cJSON_GetObjectItemCaseSensitive(model, "merges")) type = "BPE";
    if (!type) return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.json: model has no type");
    if (!strcmp(type, "BPE"))
        v->kind = HF_BPE;
    else if (!strcmp(type, "WordPiece"))
        v->kind = HF_WPM;
    else if (!strcmp(type, "Unigram"))
        v->kind = HF_UGM;
    else
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "tokenizer.json: model type '%s' is not supported", type);
    bool is_map = v->kind != HF_UGM;
    if (is_map ? !cJSON_IsObject(vocab) : !cJSON_IsArray(vocab))
        return rs_error_set(err, RS_ERR_FORMAT,
                            "tokenizer.json: model.vocab is missing or of the wrong type");
    size_t n = 0;
    rs_status st = vocab_size(vocab, is_map, added, &n, err);
    if (!st) st = vocab_alloc(v, n, err);
    if (st) return st;

    const cJSON *e;
    int64_t i = 0;
    cJSON_ArrayForEach(e, vocab) {
        if (is_map) {
            json_id(e, &i);
            st = set_tok(v, i, e->string, err);
        } else {
            const cJSON *p = cJSON_GetArrayItem(e, 0), *s = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsString(p) || !cJSON_IsNumber(s))
                return rs_error_set(err, RS_ERR_FORMAT,
                                    "tokenizer.json: Unigram entry %lld is not [piece, score]",
                                    (long long)i);
            st = set_tok(v, i, p->valuestring, err);
            v->score[i] = (float)s->valuedouble;
            i++;
        }
        if (st) return st;
    }
    v->unk = -1;
    v->byte_fallback = hf_json_bool(model, "byte_fallback", false);
    v->fuse_unk = hf_json_bool(model, "fuse_unk", false);
    v->ignore_merges = hf_json_bool(model, "ignore_merges", false);
    if (v->kind == HF_UGM) {
        int64_t u;
        if (json_id(cJSON_GetObjectItemCaseSensitive(model, "unk_id"), &u) && (size_t)u < v->n)
            v->unk = u;
    } else {
        const char *u = hf_json_str(model, "unk_token");
        for (size_t k = 0; u && k < v->n && v->unk < 0; k++)
            if (v->tok[k] && !strcmp(v->tok[k], u)) v->unk = (int64_t)k;
    }
    if (v->kind == HF_BPE) {
        const char *pre = hf_json_str(model, "continuing_subword_prefix");
        const char *suf = hf_json_str(model, "end_of_word_suffix");
        if ((pre && *pre) || (suf && *suf))
            return rs_error_set(
                err, RS_ERR_UNSUPPORTED,
                "tokenizer.json: BPE with a subword prefix/suffix is not supported");
        st = parse_merges(cJSON_GetObjectItemCaseSensitive(model, "merges"), v, err);
        if (st) return st;
    }

    /* types: byte tokens, unknown, then added tokens */
    for (size_t k = 0; k < v->n; k++) {
        if (!v->tok[k]) continue;
        if (v->kind != HF_WPM && (v->byte_fallback || v->kind == HF_UGM) &&
            is_byte_token(v->tok[k]))
            v->type[k] = TT_BYTE;
    }
    if (v->unk >= 0) v->type[v->unk] = TT_UNKNOWN;
    cJSON_ArrayForEach(e, added) {
        int64_t id;
        const char *content = hf_json_str(e, "content");
        if (!json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !content)
            return rs_error_set(err, RS_ERR_FORMAT,
                                "tokenizer.json: an added token lacks id or content");
        if ((st = set_tok(v, id, content, err))) return st;
        bool special = hf_json_bool(e, "special", false);
        if (v->type[id] != TT_UNKNOWN) v->type[id] = special ? TT_CONTROL : TT_USER;
        if (hf_json_bool(e, "lstrip", false) && push_id(&v->lstrip, id)) return RS_ERR_NOMEM;
        if (hf_json_bool(e, "rstrip", false) && push_id(&v->rstrip, id)) return RS_ERR_NOMEM;
    }
    /* ids nothing names: placeholders that never match */
    for (size_t k = 0; k < v->n; k++) {
        if (v->tok[k]) continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%zu]", k);
        if (!(v->tok[k] = strdup(name))) return RS_ERR_NOMEM;
        v->type[k] = TT_UNUSED;
    }
    if (v->kind == HF_WPM) {
        for (size_t k = 0; k < v->n; k++) {
            if (v->type[k] != TT_NORMAL) continue;
            char *p = phantom(v->tok[k]);
            if (!p) return RS_ERR_NOMEM;
            free(v->tok[k]);
            v->tok[k] = p;
        }
    }
    return RS_OK;
}

/* ---- tokenizer_config.json ---------------------------------------------------------- */

typedef struct hf_config {
    int add_bos, add_eos; /* -1: not given */
    char *bos, *eos, *unk, *pad;
    char *chat_template;
} hf_config;

static void config_free(hf_config *c) {
    free(c->bos);
    free(c->eos);
    free(c->unk);
    free(c->pad);
    free(c->chat_template);
}

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static char *token_string(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : hf_json_str(v, "content");
    return s ? strdup(s) : NULL;
}

static char *read_text_file(const char *path) {
    rs_mapping map;
    if (rs_mapping_open(&map, path, NULL)) return NULL;
    char *s = malloc(map.size + 1);
    if (s) {
        if (map.size) memcpy(s, map.data, map.size);
        s[map.size] = '\0';
    }
    rs_mapping_close(&map);
    return s;
}

static rs_status parse_config(const char *dir, hf_config *c, rs_error *err) {
    char path[4096];
    c->add_bos = c->add_eos = -1;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (path_exists(path)) {
        cJSON *cfg;
        rs_status st = read_json(path, &cfg, err);
        if (st) return st;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (cJSON_IsBool(b)) c->add_bos = cJSON_IsTrue(b);
        if (cJSON_IsBool(e)) c->add_eos = cJSON_IsTrue(e);
        c->bos = token_string(cfg, "bos_token");
        c->eos = token_string(cfg, "eos_token");
        c->unk = token_string(cfg, "unk_token");
        c->pad = token_string(cfg, "pad_token");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) {
            c->chat_template = strdup(ct->valuestring);
        } else if (cJSON_IsArray(ct)) { /* [{name, template}]: the "default" one, else the first */
            const cJSON *it, *pick = cJSON_GetArrayItem(ct, 0);
            cJSON_ArrayForEach(it, ct) {
                const char *name = hf_json_str(it, "name");
                if (name && !strcmp(name, "default")) pick = it;
            }
            const char *tpl = hf_json_str(pick, "template");
            if (tpl) c->chat_template = strdup(tpl);
        }
        cJSON_Delete(cfg);
    }
    if (!c->chat_template) {
        snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
        if (path_exists(path)) c->chat_template = read_text_file(path);
    }
    return RS_OK;
}

/* ---- metadata --------------------------------------------------------------------------- */

static rs_status build_map(hf_vocab *v, rs_error *err) {
    v->keys = rs_arena_calloc(&v->arena, v->n, sizeof *v->keys);
    if (!v->keys) return RS_ERR_NOMEM;
    for (size_t k = 0; k < v->n; k++) v->keys[k] = (rs_str){v->tok[k], strlen(v->tok[k])};
    int32_t a = -1, b = -1;
    rs_status st = rs_strmap_build(&v->map, v->keys, v->n, &v->arena, &a, &b);
    if (st == RS_ERR_FORMAT)
        return rs_error_set(err, st, "tokenizer.json: '%.40s' has two ids, %d and %d", v->tok[a], a,
                            b);
    return st;
}

static int64_t find_tok(const hf_vocab *v, const char *s) {
    return s ? rs_strmap_get(&v->map, s, strlen(s)) : -1;
}

static rs_status put_id(rs_meta *m, const char *key, int64_t id) {
    if (id < 0) return RS_OK;
    return rs_meta_set_uint(m, key, RS_V_U32, (uint64_t)id);
}

static rs_status put_id_list(rs_meta *m, const char *key, const hf_strlist *l) {
    if (!l->n) return RS_OK;
    int32_t *ids = rs_malloc_array(l->n, sizeof *ids);
    if (!ids) return RS_ERR_NOMEM;
    for (size_t i = 0; i < l->n; i++) ids[i] = (int32_t)strtol(l->v[i], NULL, 10);
    rs_status st = rs_meta_set_arr(m, key, RS_V_I32, ids, l->n);
    free(ids);
    return st;
}

/* Scores for a BPE vocabulary written as "llama": earlier merges score higher,
 * so llama.cpp's score-driven merging approximates the merge order. Our loader
 * uses the merges themselves. */
static void scores_from_merges(hf_vocab *v) {
    for (size_t k = 0; k < v->n; k++) v->score[k] = -1e9f;
    for (size_t i = v->merges.n; i-- > 0;) {
        const char *m = v->merges.v[i], *sp = strchr(m + (m[0] ? 1 : 0), ' ');
        if (!sp) continue;
        char buf[4096];
        size_t ln = (size_t)(sp - m);
        snprintf(buf, sizeof buf, "%.*s%s", (int)ln, m, sp + 1);
        int64_t id = find_tok(v, buf);
        if (id >= 0) v->score[id] = -(float)i;
    }
}

static rs_status write_tokens(const hf_vocab *v, rs_meta *m) {
    rs_str *s = rs_malloc_array(v->n, sizeof *s);
    if (!s) return RS_ERR_NOMEM;
    for (size_t k = 0; k < v->n; k++) s[k] = (rs_str){v->tok[k], strlen(v->tok[k])};
    rs_status st = rs_meta_set_str_arr(m, "tokenizer.ggml.tokens", s, v->n);
    free(s);
    if (!st) st = rs_meta_set_arr(m, "tokenizer.ggml.token_type", RS_V_I32, v->type, v->n);
    return st;
}

static rs_status write_meta(hf_vocab *v, const hf_pipeline *p, const hf_config *c, rs_meta *m) {
    const char *model = v->kind == HF_WPM   ? "bert"
                        : v->kind == HF_UGM ? "t5"
                        : p->byte_level     ? "gpt2"
                                            : "llama";
    const char *pre = v->kind == HF_WPM        ? "bert-bge"
                      : !strcmp(model, "gpt2") ? hf_pre_name(p)
                                               : "default";
    rs_status st = rs_meta_set_str(m, "tokenizer.ggml.model", model, strlen(model));
    if (!st) st = rs_meta_set_str(m, "tokenizer.ggml.pre", pre, strlen(pre));
    if (!strcmp(model, "llama")) scores_from_merges(v);
    if (!st) st = write_tokens(v, m);
    if (!st && (v->kind == HF_UGM || !strcmp(model, "llama")))
        st = rs_meta_set_arr(m, "tokenizer.ggml.scores", RS_V_F32, v->score, v->n);
    if (!st && v->kind == HF_BPE) st = hf_strlist_to_meta(&v->merges, m, "tokenizer.ggml.merges");

    /* special ids: the config's strings first, then the post-processor */
    int64_t bos = find_tok(v, c->bos), eos = find_tok(v, c->eos);
    int64_t unk = c->unk ? find_tok(v, c->unk) : v->unk, pad = find_tok(v, c->pad);
    if (unk < 0) unk = v->unk;
    bool add_bos = p->post_bos, add_eos = p->post_eos;
    if (bos < 0) bos = p->post_bos_id;
    if (eos < 0 && !p->post_is_sep) eos = p->post_eos_id;
    if (c->add_bos >= 0) add_bos = c->add_bos;
    if (c->add_eos >= 0) add_eos = c->add_eos;
    if (v->kind == HF_WPM) { /* [CLS] A [SEP] */
        if (p->post_bos_id >= 0) bos = p->post_bos_id;
        if (!st) st = put_id(m, "tokenizer.ggml.seperator_token_id", p->post_eos_id);
        if (!st) st = rs_meta_set_bool(m, "tokenizer.ggml.add_sep_token", p->post_eos);
        add_eos = false;
        if (!st) st = rs_meta_set_bool(m, "tokenizer.ggml.normalizer.lowercase", p->lowercase);
        if (!st)
            st = rs_meta_set_bool(m, "tokenizer.ggml.normalizer.strip_accents", p->strip_accents);
    }
    if (add_bos && bos < 0) add_bos = false;
    if (add_eos && eos < 0) add_eos = false;
    if (!st) st = put_id(m, "tokenizer.ggml.bos_token_id", bos);
    if (!st) st = put_id(m, "tokenizer.ggml.eos_token_id", eos);
    if (!st) st = put_id(m, "tokenizer.ggml.unknown_token_id", unk);
    if (!st) st = put_id(m, "tokenizer.ggml.padding_token_id", pad);
    if (!st) st = rs_meta_set_bool(m, "tokenizer.ggml.add_bos_token", add_bos);
    if (!st) st = rs_meta_set_bool(m, "tokenizer.ggml.add_eos_token", add_eos);
    if (!st && v->kind != HF_WPM)
        st = rs_meta_set_bool(m, "tokenizer.ggml.add_space_prefix", p->space_prefix);
    if (!st && c->chat_template)
        st = rs_meta_set_str(m, "tokenizer.chat_template", c->chat_template,
                             strlen(c->chat_template));

    /* what GGUF cannot say */
    if (!st && v->kind == HF_BPE) {
        st = hf_strlist_to_meta(&p->norm, m, "tokenizer.rusty.normalizer");
        if (!st) st = hf_strlist_to_meta(&p->pre, m, "tokenizer.rusty.pre_tokenizer");
        if (!st) st = rs_meta_set_bool(m, "tokenizer.rusty.byte_fallback", v->byte_fallback);
        if (!st) st = rs_meta_set_bool(m, "tokenizer.rusty.fuse_unk", v->fuse_unk);
        if (!st) st = rs_meta_set_bool(m, "tokenizer.rusty.ignore_merges", v->ignore_merges);
    }
    if (!st) st = put_id_list(m, "tokenizer.rusty.lstrip_ids", &v->lstrip);
    if (!st) st = put_id_list(m, "tokenizer.rusty.rstrip_ids", &v->rstrip);
    return st;
}

/* Unigram normaliser: the base64 precompiled charsmap and the space rules. */
static rs_status write_unigram(const hf_pipeline *p, rs_meta *m, rs_error *err) {
    rs_status st =
        rs_meta_set_bool(m, "tokenizer.ggml.remove_extra_whitespaces", p->collapse_spaces);
    if (st || !p->charsmap_b64) return st;
    const char *s = p->charsmap_b64;
    size_t n = strlen(s);
    uint8_t *out = malloc(n / 4 * 3 + 3);
    if (!out) return RS_ERR_NOMEM;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '+'              ? 62
                : ch == '/'              ? 63
                                         : -1;
        if (ch == '=') break;
        if (v < 0) {
            free(out);
            return rs_error_set(err, RS_ERR_FORMAT,
                                "tokenizer.json: precompiled_charsmap is not base64");
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    st = rs_meta_set_arr(m, "tokenizer.ggml.precompiled_charsmap", RS_V_U8, out, o);
    free(out);
    return st;
}

static rs_status json_to_meta(const char *dir, const char *path, rs_meta *out, rs_error *err) {
    cJSON *root;
    rs_status st = read_json(path, &root, err);
    if (st) return st;
    hf_vocab v = {0};
    hf_pipeline p = {0};
    hf_config c = {0};
    st = parse_model(root, &v, err);
    if (!st) st = build_map(&v, err);
    if (!st) st = hf_pipeline_parse(root, &p, err);
    if (!st) st = parse_config(dir, &c, err);
    if (!st && v.kind == HF_BPE && p.bert)
        st = rs_error_set(err, RS_ERR_UNSUPPORTED,
                          "tokenizer.json: BertNormalizer with a BPE model");
    if (!st) st = write_meta(&v, &p, &c, out);
    if (!st && v.kind == HF_UGM) st = write_unigram(&p, out, err);
    if (st == RS_ERR_NOMEM) rs_error_set(err, st, "tokenizer.json: out of memory");
    if (st) rs_error_prefix(err, "%s", path);
    vocab_free(&v);
    hf_pipeline_free(&p);
    config_free(&c);
    cJSON_Delete(root);
    return st;
}

rs_status rs_tokenizer_hf_to_meta(const char *dir, rs_meta *out, rs_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (path_exists(path)) return json_to_meta(dir, path, out, err);
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    if (!path_exists(path))
        return rs_error_set(err, RS_ERR_NOT_FOUND, "%s: no tokenizer.json or tokenizer.model", dir);
    rs_status st = rs_tokenizer_spm_model_to_meta(path, out, err);
    if (st) return st;
    hf_config c = {0};
    st = parse_config(dir, &c, err);
    if (!st && c.add_bos >= 0)
        st = rs_meta_set_bool(out, "tokenizer.ggml.add_bos_token", c.add_bos);
    if (!st && c.add_eos >= 0)
        st = rs_meta_set_bool(out, "tokenizer.ggml.add_eos_token", c.add_eos);
    if (!st && c.chat_template)
        st = rs_meta_set_str(out, "tokenizer.chat_template", c.chat_template,
                             strlen(c.chat_template));
    config_free(&c);
    return st == RS_ERR_NOMEM ? rs_error_set(err, st, "%s: out of memory", dir) : st;
}

rs_status rs_tokenizer_load_hf(rs_tokenizer **out, const char *dir, rs_error *err) {
    *out = NULL;
    rs_meta m;
    rs_meta_init(&m);
    rs_status st = rs_tokenizer_hf_to_meta(dir, &m, err);
    if (!st) st = rs_tokenizer_load_meta(out, &m, err);
    rs_meta_free(&m);
    return st;
}
