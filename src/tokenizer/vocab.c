/* vocab.c — builds an rs_tokenizer from GGUF-style metadata: the token table
 * (texts, scores, types) with its text → id hash, special token ids, BOS/EOS
 * policy and end-of-generation set; then hands over to the algorithm's own
 * setup (spm.c, bpe.c, unigram.c) and to the pipeline builders (pretok.c).
 * Also the small query functions of the public API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define KEY(x) "tokenizer.ggml." x

/* GGUF token types (llama.cpp's llama_token_type). */
enum { TT_UNDEFINED, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

static rs_status get_str_opt(const rs_meta *m, const char *key, rs_str *out, bool *found,
                             rs_error *err) {
    *found = false;
    const rs_value *v = rs_meta_find(m, key);
    if (!v) return RS_OK;
    if (v->type != RS_V_STR)
        return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': expected str, found %s", key,
                            rs_vtype_name(v->type));
    *out = v->str;
    *found = true;
    return RS_OK;
}

static rs_status get_bool_opt(const rs_meta *m, const char *key, bool *out, rs_error *err) {
    const rs_value *v = rs_meta_find(m, key);
    if (!v) return RS_OK;
    if (v->type != RS_V_BOOL)
        return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': expected bool, found %s", key,
                            rs_vtype_name(v->type));
    *out = v->b;
    return RS_OK;
}

static bool str_is(rs_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* ---- token table ------------------------------------------------------------ */

static rs_status load_tokens(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    rs_array toks;
    rs_status st = rs_meta_get_arr(m, KEY("tokens"), &toks, err);
    if (st == RS_ERR_NOT_FOUND)
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer: metadata has no '%s'", KEY("tokens"));
    if (st) return st;
    if (toks.type != RS_V_STR)
        return rs_error_set(err, RS_ERR_FORMAT, "'%s': expected an array of str, found %s",
                            KEY("tokens"), rs_vtype_name(toks.type));
    if (toks.n == 0) return rs_error_set(err, RS_ERR_FORMAT, "'%s' is empty", KEY("tokens"));
    if (toks.n > (uint64_t)INT32_MAX - 1)
        return rs_error_set(err, RS_ERR_FORMAT, "'%s': %llu tokens is too many", KEY("tokens"),
                            (unsigned long long)toks.n);
    size_t n = (size_t)toks.n;
    t->n_vocab = (int32_t)n;

    /* one blob for every text */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        rs_str s = rs_array_get_str(&toks, i);
        if (s.len > (1u << 20))
            return rs_error_set(err, RS_ERR_FORMAT, "'%s'[%zu]: token of %llu bytes", KEY("tokens"),
                                i, (unsigned long long)s.len);
        total += (size_t)s.len;
        if (s.len > t->max_token_len) t->max_token_len = (size_t)s.len;
    }
    char *blob = rs_arena_alloc(&t->arena, total + 1, 1);
    t->text = rs_arena_calloc(&t->arena, n, sizeof *t->text);
    t->score = rs_arena_calloc(&t->arena, n, sizeof *t->score);
    t->attr = rs_arena_calloc(&t->arena, n, sizeof *t->attr);
    if (!blob || !t->text || !t->score || !t->attr) return RS_ERR_NOMEM;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        rs_str s = rs_array_get_str(&toks, i);
        if (s.len) memcpy(blob + off, s.ptr, (size_t)s.len);
        t->text[i].ptr = blob + off;
        t->text[i].len = s.len;
        off += (size_t)s.len;
    }

    /* scores: F32 or I32, one per token */
    rs_array sc;
    st = rs_meta_get_arr(m, KEY("scores"), &sc, err);
    if (st == RS_OK) {
        if (sc.type != RS_V_F32 && sc.type != RS_V_F64 && sc.type != RS_V_I32)
            return rs_error_set(err, RS_ERR_FORMAT, "'%s': expected f32 or i32 elements, found %s",
                                KEY("scores"), rs_vtype_name(sc.type));
        if (sc.n != toks.n)
            return rs_error_set(err, RS_ERR_FORMAT,
                                "'%s' has %llu entries but there are %zu tokens", KEY("scores"),
                                (unsigned long long)sc.n, n);
        for (size_t i = 0; i < n; i++) t->score[i] = (float)rs_array_get_f64(&sc, i);
    } else if (st != RS_ERR_NOT_FOUND) {
        return st;
    }

    /* token types */
    rs_array ty;
    st = rs_meta_get_arr(m, KEY("token_type"), &ty, err);
    bool have_types = st == RS_OK;
    if (have_types) {
        if (ty.type == RS_V_STR || ty.type == RS_V_ARR || ty.type == RS_V_F32 ||
            ty.type == RS_V_F64 || ty.type == RS_V_BOOL)
            return rs_error_set(err, RS_ERR_FORMAT, "'%s': expected integer elements, found %s",
                                KEY("token_type"), rs_vtype_name(ty.type));
        if (ty.n != toks.n)
            return rs_error_set(err, RS_ERR_FORMAT,
                                "'%s' has %llu entries but there are %zu tokens", KEY("token_type"),
                                (unsigned long long)ty.n, n);
    } else if (st != RS_ERR_NOT_FOUND) {
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t k = have_types ? rs_array_get_i64(&ty, i) : TT_NORMAL;
        switch (k) {
        case TT_UNDEFINED:
            t->attr[i] = 0;
            break;
        case TT_NORMAL:
            t->attr[i] = RS_TOKEN_NORMAL;
            break;
        case TT_UNKNOWN:
            t->attr[i] = RS_TOKEN_UNKNOWN;
            break;
        case TT_CONTROL:
            t->attr[i] = RS_TOKEN_CONTROL;
            break;
        case TT_USER_DEFINED:
            t->attr[i] = RS_TOKEN_USER_DEFINED;
            break;
        case TT_UNUSED:
            t->attr[i] = RS_TOKEN_UNUSED;
            break;
        case TT_BYTE:
            t->attr[i] = RS_TOKEN_BYTE;
            break;
        default:
            return rs_error_set(err, RS_ERR_FORMAT, "'%s'[%zu] = %lld is not a token type (0..6)",
                                KEY("token_type"), i, (long long)k);
        }
    }

    int32_t d1 = -1, d2 = -1;
    st = rs_strmap_build(&t->map, t->text, n, &t->arena, &d1, &d2);
    if (st == RS_ERR_FORMAT)
        return rs_error_set(err, RS_ERR_FORMAT, "'%s': duplicate token '%.*s' at ids %d and %d",
                            KEY("tokens"), (int)(t->text[d1].len > 64 ? 64 : t->text[d1].len),
                            t->text[d1].ptr, d1, d2);
    return st;
}

/* tokenizer.rusty.lstrip_ids / rstrip_ids: special tokens that swallow the
 * whitespace beside them (Hugging Face added-token flags). */
static rs_status load_strip_flags(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    static const char *const keys[2] = {"tokenizer.rusty.lstrip_ids", "tokenizer.rusty.rstrip_ids"};
    for (int k = 0; k < 2; k++) {
        const rs_value *v = rs_meta_find(m, keys[k]);
        if (!v) continue;
        if (v->type != RS_V_ARR || rs_vtype_size(v->arr.type) == 0 || v->arr.type == RS_V_F32 ||
            v->arr.type == RS_V_F64)
            return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': expected integers",
                                keys[k]);
        for (uint64_t i = 0; i < v->arr.n; i++) {
            int64_t id = rs_array_get_i64(&v->arr, i);
            if (id < 0 || id >= t->n_vocab)
                return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': id %lld out of range",
                                    keys[k], (long long)id);
            t->attr[id] |= k == 0 ? RS_TOKEN_LSTRIP : RS_TOKEN_RSTRIP;
        }
    }
    return RS_OK;
}

/* Byte tokens must look like <0xNN>: decoding relies on it. */
static rs_status check_byte_tokens(rs_tokenizer *t, rs_error *err) {
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & RS_TOKEN_BYTE)) continue;
        rs_str s = t->text[id];
        unsigned v;
        char tail;
        char buf[8] = {0};
        if (s.len == 6) memcpy(buf, s.ptr, 6);
        if (s.len != 6 || sscanf(buf, "<0x%2x%c", &v, &tail) != 2 || tail != '>' || buf[3] == '+' ||
            buf[3] == '-' || buf[3] == ' ')
            return rs_error_set(err, RS_ERR_FORMAT,
                                "token %d '%.*s' has type byte but is not of the form <0xNN>", id,
                                (int)(s.len > 32 ? 32 : s.len), s.ptr);
        if (t->byte_tok[v] < 0) t->byte_tok[v] = id;
    }
    /* byte fallback also finds <0xNN> texts whose type was not set */
    for (int b = 0; b < 256; b++) {
        if (t->byte_tok[b] >= 0) continue;
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = rs_strmap_get(&t->map, name, 6);
    }
    return RS_OK;
}

int32_t rs_tok_byte_token(const rs_tokenizer *t, uint8_t b) {
    if (t->byte_tok[b] >= 0) return t->byte_tok[b];
    char c = (char)b;
    return rs_strmap_get(&t->map, &c, 1);
}

/* ---- special ids ---------------------------------------------------------------- */

/* Reads an id key: absent or negative or 0xFFFFFFFF (u32 -1) means none;
 * anything else must be a valid id. */
static rs_status read_id(const rs_tokenizer *t, const rs_meta *m, const char *key, int32_t *id,
                         rs_error *err) {
    const rs_value *v = rs_meta_find(m, key);
    if (!v) return RS_OK;
    int64_t x;
    if (v->type == RS_V_U8 || v->type == RS_V_U16 || v->type == RS_V_U32 || v->type == RS_V_U64) {
        if (v->u == UINT32_MAX || v->u == UINT64_MAX) {
            *id = RS_TOKEN_NONE;
            return RS_OK;
        }
        x = v->u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v->u;
    } else if (v->type == RS_V_I8 || v->type == RS_V_I16 || v->type == RS_V_I32 ||
               v->type == RS_V_I64) {
        x = v->i;
        if (x < 0) {
            *id = RS_TOKEN_NONE;
            return RS_OK;
        }
    } else {
        return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': expected an integer, found %s",
                            key, rs_vtype_name(v->type));
    }
    if (x >= t->n_vocab)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "metadata key '%s' = %lld is out of range (%d tokens)", key,
                            (long long)x, t->n_vocab);
    *id = (int32_t)x;
    return RS_OK;
}

static int32_t default_if_valid(const rs_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? id : RS_TOKEN_NONE;
}

static rs_status load_special_ids(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    int32_t mask = RS_TOKEN_NONE, cls = RS_TOKEN_NONE;
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = RS_TOKEN_NONE;
    switch (t->type) {
    case RS_VOCAB_SPM:
        t->bos = default_if_valid(t, 1), t->eos = default_if_valid(t, 2);
        t->unk = default_if_valid(t, 0);
        t->add_bos = true;
        break;
    case RS_VOCAB_WPM:
        t->bos = default_if_valid(t, 101), t->unk = default_if_valid(t, 100);
        t->sep = default_if_valid(t, 102), t->pad = default_if_valid(t, 0);
        t->add_bos = true, t->add_sep = true;
        break;
    case RS_VOCAB_UGM:
        t->eos = default_if_valid(t, 1), t->unk = default_if_valid(t, 2);
        t->pad = default_if_valid(t, 0);
        t->add_eos = true;
        break;
    case RS_VOCAB_BPE:
        break;
    }
    struct {
        const char *key;
        int32_t *id;
    } keys[] = {
        {KEY("bos_token_id"), &t->bos},     {KEY("eos_token_id"), &t->eos},
        {KEY("eot_token_id"), &t->eot},     {KEY("eom_token_id"), &t->eom},
        {KEY("unknown_token_id"), &t->unk}, {KEY("seperator_token_id"), &t->sep},
        {KEY("padding_token_id"), &t->pad}, {KEY("mask_token_id"), &mask},
        {KEY("cls_token_id"), &cls},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        rs_status st = read_id(t, m, keys[i].key, keys[i].id, err);
        if (st) return st;
    }
    if (t->type == RS_VOCAB_WPM && cls >= 0 && !rs_meta_find(m, KEY("bos_token_id"))) t->bos = cls;

    rs_status st;
    if ((st = get_bool_opt(m, KEY("add_bos_token"), &t->add_bos, err))) return st;
    if ((st = get_bool_opt(m, KEY("add_eos_token"), &t->add_eos, err))) return st;
    if ((st = get_bool_opt(m, KEY("add_sep_token"), &t->add_sep, err))) return st;
    if (t->add_bos && t->bos < 0)
        return rs_error_set(err, RS_ERR_FORMAT, "%s is true but there is no BOS token",
                            KEY("add_bos_token"));
    if (t->add_eos && t->eos < 0)
        return rs_error_set(err, RS_ERR_FORMAT, "%s is true but there is no EOS token",
                            KEY("add_eos_token"));
    if (t->add_sep && t->sep < 0) t->add_sep = false;
    return RS_OK;
}

/* End-of-generation set: eos/eot/eom plus tokens whose text says "end of turn"
 * (as llama.cpp does, since converters rarely record them). */
static rs_status build_eog(rs_tokenizer *t) {
    static const char *const eot_names[] = {
        "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",         "<|endoftext|>",
        "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<｜end▁of▁sentence｜>", "<end_of_utterance>",
    };
    static const char *const eog_names[] = {
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|eom_id|>",
        "<EOT>",
        "_<EOT>",
        "<|end_of_text|>",
        "<end_of_utterance>",
        "<｜end▁of▁sentence｜>",
    };
    const size_t n_eot = sizeof eot_names / sizeof eot_names[0];
    const size_t n_eog = sizeof eog_names / sizeof eog_names[0];
    if (t->eot < 0) {
        for (size_t i = 0; i < n_eot && t->eot < 0; i++)
            t->eot = rs_strmap_get(&t->map, eot_names[i], strlen(eot_names[i]));
    }
    if (t->eom < 0) t->eom = rs_strmap_get(&t->map, "<|eom_id|>", 10);
    t->eog = rs_arena_calloc(&t->arena, n_eog + 3, sizeof *t->eog);
    if (!t->eog) return RS_ERR_NOMEM;
    int32_t cand[3] = {t->eos, t->eot, t->eom};
    for (size_t i = 0; i < n_eog + 3; i++) {
        int32_t id =
            i < 3 ? cand[i] : rs_strmap_get(&t->map, eog_names[i - 3], strlen(eog_names[i - 3]));
        if (id < 0) continue;
        bool seen = false;
        for (size_t j = 0; j < t->n_eog; j++) seen |= t->eog[j] == id;
        if (!seen) t->eog[t->n_eog++] = id;
        /* the name says control token even if the converter did not */
        if (i >= 3 && !(t->attr[id] & (RS_TOKEN_CONTROL | RS_TOKEN_USER_DEFINED)))
            t->attr[id] = (uint16_t)((t->attr[id] & ~RS_TOKEN_NORMAL) | RS_TOKEN_CONTROL);
    }
    return RS_OK;
}

/* ---- pipeline keys (tokenizer.rusty.*) ---------------------------------------------- */

static rs_status load_chat_template(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    rs_str s;
    bool found;
    rs_status st = get_str_opt(m, "tokenizer.chat_template", &s, &found, err);
    if (st || !found) return st;
    t->chat_template = rs_arena_strndup(&t->arena, s.ptr, (size_t)s.len);
    return t->chat_template ? RS_OK : RS_ERR_NOMEM;
}

/* defined in pretok.c: reads tokenizer.rusty.normalizer / pre_tokenizer */
rs_status rs_pipeline_from_meta(rs_tokenizer *t, const rs_meta *m, bool *have_norm, bool *have_pre,
                                rs_error *err);

static rs_status setup_merge_model(rs_tokenizer *t, const rs_meta *m, rs_str pre, bool have_pre,
                                   rs_error *err) {
    rs_array merges;
    rs_status st = rs_meta_get_arr(m, KEY("merges"), &merges, err);
    bool have_merges = st == RS_OK;
    if (st && st != RS_ERR_NOT_FOUND) return st;
    if (have_merges && merges.type != RS_V_STR)
        return rs_error_set(err, RS_ERR_FORMAT, "'%s': expected an array of str, found %s",
                            KEY("merges"), rs_vtype_name(merges.type));
    t->fuse_unk = true;
    t->byte_fallback = true;
    if ((st = get_bool_opt(m, "tokenizer.rusty.fuse_unk", &t->fuse_unk, err))) return st;
    if ((st = get_bool_opt(m, "tokenizer.rusty.byte_fallback", &t->byte_fallback, err))) return st;
    if ((st = get_bool_opt(m, "tokenizer.rusty.ignore_merges", &t->ignore_merges, err))) return st;

    if (t->type == RS_VOCAB_BPE) {
        if (!have_merges)
            return rs_error_set(err, RS_ERR_FORMAT, "BPE tokenizer without '%s'", KEY("merges"));
        t->byte_level = true;
        if (!have_pre) {
            st = rs_pretok_from_name(t, pre.ptr, (size_t)pre.len, err);
            if (st) return st;
        }
        return rs_bpe_build(t, &merges, err);
    }
    /* SPM: scores, or (our extension) merges with HF BPE semantics */
    if (have_merges) return rs_bpe_build(t, &merges, err);
    return rs_spm_build(t, err);
}

/* ---- the loader -------------------------------------------------------------------------- */

static rs_status load(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    rs_str model, pre = {"default", 7};
    bool found;
    rs_status st = get_str_opt(m, KEY("model"), &model, &found, err);
    if (st) return st;
    if (!found)
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer: metadata has no '%s'", KEY("model"));
    if (str_is(model, "llama"))
        t->type = RS_VOCAB_SPM;
    else if (str_is(model, "gpt2"))
        t->type = RS_VOCAB_BPE;
    else if (str_is(model, "bert"))
        t->type = RS_VOCAB_WPM;
    else if (str_is(model, "t5"))
        t->type = RS_VOCAB_UGM;
    else
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "'%s' = '%.*s' is not a supported tokenizer",
                            KEY("model"), (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if ((st = get_str_opt(m, KEY("pre"), &pre, &found, err))) return st;
    if (!found) pre = (rs_str){"default", 7};

    if ((st = load_tokens(t, m, err))) return st;
    if ((st = load_strip_flags(t, m, err))) return st;
    if ((st = check_byte_tokens(t, err))) return st;
    if ((st = load_special_ids(t, m, err))) return st;

    /* pre-tokenizer defaults that GGUF encodes through the pre name */
    if (t->type == RS_VOCAB_BPE &&
        (str_is(pre, "llama3") || str_is(pre, "llama-v3") || str_is(pre, "llama-bpe")) &&
        !rs_meta_find(m, KEY("add_bos_token")))
        t->add_bos = t->bos >= 0;

    t->add_space_prefix = t->type == RS_VOCAB_SPM || t->type == RS_VOCAB_UGM;
    if ((st = get_bool_opt(m, KEY("add_space_prefix"), &t->add_space_prefix, err))) return st;

    bool have_norm = false, have_pre = false;
    if ((st = rs_pipeline_from_meta(t, m, &have_norm, &have_pre, err))) return st;
    if (t->type == RS_VOCAB_SPM && !have_norm) {
        /* SentencePiece: ' ' → "▁", and "▁" before each text fragment */
        static const char sp[] = " ", mark[] = RS_SPACE_MARK;
        t->norm = rs_arena_calloc(&t->arena, 2, sizeof *t->norm);
        if (!t->norm) return RS_ERR_NOMEM;
        t->norm[t->n_norm++] =
            (rs_norm_op){.kind = RS_NORM_REPLACE, .s1 = {sp, 1}, .s2 = {mark, RS_SPACE_MARK_LEN}};
        if (t->add_space_prefix)
            t->norm[t->n_norm++] =
                (rs_norm_op){.kind = RS_NORM_PREPEND, .s1 = {mark, RS_SPACE_MARK_LEN}};
    }

    switch (t->type) {
    case RS_VOCAB_SPM:
    case RS_VOCAB_BPE:
        st = setup_merge_model(t, m, pre, have_pre, err);
        break;
    case RS_VOCAB_WPM:
        t->lowercase = true;
        if ((st = get_bool_opt(m, KEY("normalizer.lowercase"), &t->lowercase, err))) return st;
        t->strip_accents = t->lowercase;
        st = get_bool_opt(m, KEY("normalizer.strip_accents"), &t->strip_accents, err);
        break;
    case RS_VOCAB_UGM:
        st = rs_ugm_build(t, m, err);
        break;
    }
    if (st) return st;

    if ((st = build_eog(t))) return st;
    if ((st = rs_special_build(t, err))) return st;
    if ((st = rs_pieces_build(t, err))) return st;
    if ((st = load_chat_template(t, m, err))) return st;

    /* the newline token: <0x0A> for byte-fallback vocabularies, else "\n" as text */
    t->nl = t->byte_tok['\n'];
    if (t->nl < 0 && t->byte_level) t->nl = t->byte_char['\n'];
    if (t->nl < 0) t->nl = rs_strmap_get(&t->map, "\n", 1);
    return RS_OK;
}

rs_status rs_tokenizer_load_meta(rs_tokenizer **out, const rs_meta *meta, rs_error *err) {
    *out = NULL;
    rs_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory");
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = t->nl = RS_TOKEN_NONE;
    if (!rs_trie_init(&t->special_trie) || !rs_trie_init(&t->piece_trie)) {
        rs_tokenizer_free(t);
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory");
    }
    if (err) err->code = RS_OK;
    rs_status st = load(t, meta, err);
    if (st) {
        if (st == RS_ERR_NOMEM && (!err || err->code != RS_ERR_NOMEM))
            rs_error_set(err, RS_ERR_NOMEM,
                         "tokenizer: out of memory while loading the vocabulary");
        rs_tokenizer_free(t);
        return st;
    }
    *out = t;
    return RS_OK;
}

void rs_tokenizer_free(rs_tokenizer *t) {
    if (!t) return;
    rs_pipeline_free(t);
    rs_trie_free(&t->special_trie);
    rs_trie_free(&t->piece_trie);
    free(t->piece_blob);
    free(t->piece_off);
    rs_arena_free(&t->arena);
    free(t);
}

/* ---- queries ------------------------------------------------------------------------------ */

rs_vocab_type rs_tokenizer_type(const rs_tokenizer *t) {
    return t->type;
}
int32_t rs_tokenizer_n_vocab(const rs_tokenizer *t) {
    return t->n_vocab;
}
int32_t rs_tokenizer_bos(const rs_tokenizer *t) {
    return t->bos;
}
int32_t rs_tokenizer_eos(const rs_tokenizer *t) {
    return t->eos;
}
int32_t rs_tokenizer_eot(const rs_tokenizer *t) {
    return t->eot;
}
int32_t rs_tokenizer_unk(const rs_tokenizer *t) {
    return t->unk;
}
int32_t rs_tokenizer_sep(const rs_tokenizer *t) {
    return t->sep;
}
int32_t rs_tokenizer_pad(const rs_tokenizer *t) {
    return t->pad;
}
int32_t rs_tokenizer_nl(const rs_tokenizer *t) {
    return t->nl;
}
bool rs_tokenizer_add_bos(const rs_tokenizer *t) {
    return t->add_bos;
}
bool rs_tokenizer_add_eos(const rs_tokenizer *t) {
    return t->add_eos;
}
bool rs_tokenizer_adds_space_prefix(const rs_tokenizer *t) {
    return t->add_space_prefix;
}
const char *rs_tokenizer_chat_template(const rs_tokenizer *t) {
    return t->chat_template;
}

bool rs_tokenizer_is_eog(const rs_tokenizer *t, int32_t id) {
    for (size_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

const char *rs_tokenizer_token_text(const rs_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = (size_t)t->text[id].len;
    return t->text[id].ptr;
}

float rs_tokenizer_token_score(const rs_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->score[id] : 0.0f;
}

unsigned rs_tokenizer_token_attr(const rs_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->attr[id] : 0;
}

int32_t rs_tokenizer_find(const rs_tokenizer *t, const char *text, size_t len) {
    return rs_strmap_get(&t->map, text, len);
}

rs_status rs_tok_emit(rs_enc *e, int32_t id) {
    if (rs_tokens_push(e->out, id))
        return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory for the output ids");
    return RS_OK;
}
