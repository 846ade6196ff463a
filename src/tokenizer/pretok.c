/* pretok.c — pre-tokenizers: cutting a text fragment into words before BPE.
 *
 * GGUF names the pre-tokenizer (tokenizer.ggml.pre); each name stands for a
 * list of regular expressions applied in turn, every one splitting the pieces
 * left by the previous one into matches and the gaps between them, all kept
 * (llama.cpp's unicode_regex_split; Hugging Face's Split with "Isolated"). The
 * expressions are the ones the models' tokenizer.json files use, run by PCRE2
 * with Unicode properties (UTF + UCP) and JIT. Two adjustments keep PCRE2 in
 * line with the reference engines: \s and \S mean exactly the Unicode
 * White_Space set, and $ only matches at the very end.
 *
 * Hugging Face pipelines converted by hf_json.c are described by the
 * tokenizer.rusty.pre_tokenizer / .normalizer keys, read here as well. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* ---- the expressions ----------------------------------------------------------- */

#define RE_GPT2         "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CASED_WORDS                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"                                                               \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
#define RE_PORO " ?[^(\\s|.,!?…。，、।۔،)]+"

/* DeepSeek LLM's letter class, from its tokenizer.json */
static const char re_deepseek_letters[] =
    "\\s?["
    "\\x{41}-\\x{5a}\\x{61}-\\x{7a}\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}"
    "\\x{1bc}-\\x{1bf}\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}"
    "\\x{37b}-\\x{37d}\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}"
    "\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}"
    "\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}"
    "\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}"
    "\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}"
    "\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}"
    "\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}"
    "\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}"
    "\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}"
    "\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}"
    "\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}"
    "\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}"
    "\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}"
    "\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}"
    "\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}"
    "\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}"
    "]+";

typedef struct pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    const char *re[6];
    bool ignore_merges;
} pre_def;

static const pre_def pre_defs[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", {RE_LLAMA3}, true},
    {"dbrx|smaug-bpe|chatglm-bpe|glm4", {RE_LLAMA3}, false},
    {"deepseek-llm",
     {"[\r\n]", re_deepseek_letters, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$",
      "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"},
     false},
    {"deepseek-coder",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"},
     false},
    {"deepseek-v3",
     {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./"
      ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
      " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", RE_GPT2}, false},
    {"gpt-2|gpt2|phi-2|mpt|olmo|jais|gpt-neox|jina-es|jina-de|jina-v1-en|jina-v2-es|jina-v2-de|"
     "jina-v2-code|roberta-bpe|gigachat|mellum|exaone4|modern-bert|a.x-4.0|trillion|"
     "granite-docling",
     {RE_GPT2},
     false},
    {"qwen2|deepseek-r1-qwen|megrez|stablelm2|kormo", {RE_QWEN2}, false},
    {"poro-chat|bloom|gpt3-finnish", {RE_PORO}, false},
    {"viking", {RE_PORO, "\\p{N}"}, false},
    {"tekken",
     {RE_CASED_WORDS "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     true},
    {"gpt-4o|llama4",
     {RE_CASED_WORDS "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"bailingmoe|bailingmoe2|llada-moe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false},
    {"seed-coder",
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|"
                      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
};

/* ---- compiling ----------------------------------------------------------------------- */

/* The Unicode White_Space set, as a class body. */
#define WS_BODY                                                                                    \
    "\\t-\\r\\x20\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"   \
    "\\x{3000}"

static bool translate(const char *re, size_t n, rs_bytes *out) {
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char d = re[++i];
            const char *rep = NULL;
            if (d == 's') rep = in_class ? WS_BODY : "[" WS_BODY "]";
            if (d == 'S') {
                if (in_class) return false; /* not expressible; unused by known patterns */
                rep = "[^" WS_BODY "]";
            }
            if (rep) {
                if (rs_bytes_append(out, rep, strlen(rep))) return false;
            } else {
                char two[2] = {c, d};
                if (rs_bytes_append(out, two, 2)) return false;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            if (rs_bytes_append(out, "[", 1)) return false;
            if (i + 1 < n && re[i + 1] == '^') {
                if (rs_bytes_append(out, "^", 1)) return false;
                i++;
            }
            if (i + 1 < n && re[i + 1] == ']') { /* a leading ] is literal */
                if (rs_bytes_append(out, "]", 1)) return false;
                i++;
            }
            continue;
        }
        if (in_class && c == ']') in_class = false;
        if (rs_bytes_append(out, &c, 1)) return false;
    }
    return true;
}

rs_status rs_pretok_compile(const char *pattern, size_t len, pcre2_code **out, rs_error *err) {
    *out = NULL;
    rs_bytes tr = {0};
    if (!translate(pattern, len, &tr)) {
        rs_bytes_free(&tr);
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "tokenizer: cannot translate the pre-tokenizer regex '%.*s'",
                            (int)(len > 80 ? 80 : len), pattern);
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)tr.data, tr.len,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
    rs_bytes_free(&tr);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer: bad regex '%.*s': %s",
                            (int)(len > 80 ? 80 : len), pattern, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    *out = re;
    return RS_OK;
}

static rs_pre_op *add_op(rs_tokenizer *t) {
    /* a handful of steps at most: grow in the arena */
    rs_pre_op *p = rs_arena_calloc(&t->arena, t->n_pre + 1, sizeof *p);
    if (!p) return NULL;
    if (t->n_pre) memcpy(p, t->pre, t->n_pre * sizeof *p);
    t->pre = p;
    return &t->pre[t->n_pre++];
}

rs_status rs_pretok_add_split(rs_tokenizer *t, const char *regex, size_t len, rs_split_behavior b,
                              bool invert, rs_error *err) {
    pcre2_code *re;
    rs_status st = rs_pretok_compile(regex, len, &re, err);
    if (st) return st;
    rs_pre_op *op = add_op(t);
    if (!op) {
        pcre2_code_free(re);
        return RS_ERR_NOMEM;
    }
    *op = (rs_pre_op){.kind = RS_PRE_SPLIT, .behavior = b, .invert = invert, .re = re};
    return RS_OK;
}

static bool name_in(const char *names, const char *s, size_t n) {
    for (const char *p = names;;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && memcmp(p, s, n) == 0) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

rs_status rs_pretok_from_name(rs_tokenizer *t, const char *pre, size_t len, rs_error *err) {
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++) {
        if (!name_in(pre_defs[i].names, pre, len)) continue;
        for (size_t k = 0; k < 6 && pre_defs[i].re[k]; k++) {
            const char *r = pre_defs[i].re[k];
            rs_status st = rs_pretok_add_split(t, r, strlen(r), RS_SPLIT_ISOLATED, false, err);
            if (st) return st;
        }
        if (pre_defs[i].ignore_merges) t->ignore_merges = true;
        return RS_OK;
    }
    return rs_error_set(err, RS_ERR_UNSUPPORTED,
                        "tokenizer.ggml.pre = '%.*s' is not a known pre-tokenizer",
                        (int)(len > 64 ? 64 : len), pre);
}

void rs_pipeline_free(rs_tokenizer *t) {
    for (size_t i = 0; i < t->n_pre; i++)
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
    for (size_t i = 0; i < t->n_norm; i++)
        if (t->norm[i].re) pcre2_code_free(t->norm[i].re);
    t->n_pre = t->n_norm = 0;
}

/* ---- tokenizer.rusty.* pipeline keys --------------------------------------------------- */

/* A flat string array: op name, then that op's arguments. */
typedef struct argv_reader {
    const rs_array *a;
    uint64_t i;
    const char *key;
} argv_reader;

static bool next_arg(argv_reader *r, rs_str *s) {
    if (r->i >= r->a->n) return false;
    *s = rs_array_get_str(r->a, r->i++);
    return true;
}

static bool arg_is(rs_str s, const char *lit) {
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static rs_status bad_arg(argv_reader *r, rs_str op, rs_error *err) {
    return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': bad or missing argument of '%.*s'",
                        r->key, (int)(op.len > 40 ? 40 : op.len), op.ptr);
}

static bool parse_behavior(rs_str s, rs_split_behavior *b) {
    static const char *const names[] = {"isolated", "removed", "merged_with_previous",
                                        "merged_with_next", "contiguous"};
    for (int i = 0; i < 5; i++)
        if (arg_is(s, names[i])) return *b = (rs_split_behavior)i, true;
    return false;
}

static char *arena_str(rs_tokenizer *t, rs_str s) {
    return rs_arena_strndup(&t->arena, s.ptr, (size_t)s.len);
}

static rs_status parse_norm(rs_tokenizer *t, argv_reader *r, rs_error *err) {
    rs_str op, a1, a2;
    t->norm = rs_arena_calloc(&t->arena, r->a->n + 1, sizeof *t->norm);
    if (!t->norm) return RS_ERR_NOMEM;
    while (next_arg(r, &op)) {
        rs_norm_op n = {0};
        if (arg_is(op, "nfc"))
            n.kind = RS_NORM_NFC;
        else if (arg_is(op, "nfd"))
            n.kind = RS_NORM_NFD;
        else if (arg_is(op, "nfkc"))
            n.kind = RS_NORM_NFKC;
        else if (arg_is(op, "nfkd"))
            n.kind = RS_NORM_NFKD;
        else if (arg_is(op, "lowercase"))
            n.kind = RS_NORM_LOWERCASE;
        else if (arg_is(op, "strip_accents"))
            n.kind = RS_NORM_STRIP_ACCENTS;
        else if (arg_is(op, "strip")) {
            if (!next_arg(r, &a1) || !next_arg(r, &a2)) return bad_arg(r, op, err);
            n.kind = RS_NORM_STRIP, n.left = arg_is(a1, "1"), n.right = arg_is(a2, "1");
        } else if (arg_is(op, "prepend")) {
            if (!next_arg(r, &a1)) return bad_arg(r, op, err);
            n.kind = RS_NORM_PREPEND, n.s1 = (rs_str){arena_str(t, a1), a1.len};
        } else if (arg_is(op, "replace") || arg_is(op, "replace_regex")) {
            if (!next_arg(r, &a1) || !next_arg(r, &a2)) return bad_arg(r, op, err);
            n.kind = arg_is(op, "replace") ? RS_NORM_REPLACE : RS_NORM_REPLACE_RE;
            n.s1 = (rs_str){arena_str(t, a1), a1.len};
            n.s2 = (rs_str){arena_str(t, a2), a2.len};
            if (n.kind == RS_NORM_REPLACE && a1.len == 0) return bad_arg(r, op, err);
            if (n.kind == RS_NORM_REPLACE_RE) {
                rs_status st = rs_pretok_compile(a1.ptr, (size_t)a1.len, &n.re, err);
                if (st) return st;
            }
        } else {
            return rs_error_set(err, RS_ERR_UNSUPPORTED, "metadata key '%s': unknown step '%.*s'",
                                r->key, (int)(op.len > 40 ? 40 : op.len), op.ptr);
        }
        if ((n.s1.len && !n.s1.ptr) || (n.s2.len && !n.s2.ptr)) return RS_ERR_NOMEM;
        t->norm[t->n_norm++] = n;
    }
    return RS_OK;
}

static rs_status parse_pre(rs_tokenizer *t, argv_reader *r, rs_error *err) {
    rs_str op, a1, a2, a3;
    while (next_arg(r, &op)) {
        rs_status st = RS_OK;
        if (arg_is(op, "split")) {
            rs_split_behavior b;
            if (!next_arg(r, &a1) || !next_arg(r, &a2) || !next_arg(r, &a3) ||
                !parse_behavior(a2, &b))
                return bad_arg(r, op, err);
            st = rs_pretok_add_split(t, a1.ptr, (size_t)a1.len, b, arg_is(a3, "1"), err);
        } else if (arg_is(op, "byte_level")) {
            if (!next_arg(r, &a1) || !next_arg(r, &a2)) return bad_arg(r, op, err);
            t->byte_level = true;
            t->bl_add_prefix = arg_is(a1, "1");
            if (arg_is(a2, "1"))
                st =
                    rs_pretok_add_split(t, RE_GPT2, strlen(RE_GPT2), RS_SPLIT_ISOLATED, false, err);
        } else {
            rs_pre_op p = {0};
            if (arg_is(op, "metaspace")) {
                if (!next_arg(r, &a1) || !next_arg(r, &a2) || !next_arg(r, &a3) || a1.len == 0)
                    return bad_arg(r, op, err);
                if (t->n_pre) /* it rewrites the text: only as the first step */
                    return rs_error_set(err, RS_ERR_UNSUPPORTED,
                                        "metadata key '%s': metaspace must come first", r->key);
                p.kind = RS_PRE_METASPACE;
                p.s1 = (rs_str){arena_str(t, a1), a1.len};
                if (!p.s1.ptr) return RS_ERR_NOMEM;
                p.scheme = arg_is(a2, "first")   ? RS_PREPEND_FIRST
                           : arg_is(a2, "never") ? RS_PREPEND_NEVER
                                                 : RS_PREPEND_ALWAYS;
                p.flag = arg_is(a3, "1");
            } else if (arg_is(op, "whitespace_split")) {
                p.kind = RS_PRE_WS_SPLIT;
            } else if (arg_is(op, "whitespace")) {
                /* HF Whitespace: keep \w+ and [^\w\s]+ runs, drop the rest */
                static const char ws_re[] = "\\w+|[^\\w\\s]+";
                st = rs_pretok_add_split(t, ws_re, strlen(ws_re), RS_SPLIT_REMOVED, true, err);
                if (st) return st;
                continue;
            } else if (arg_is(op, "bert")) {
                p.kind = RS_PRE_BERT;
            } else if (arg_is(op, "punctuation")) {
                if (!next_arg(r, &a1) || !parse_behavior(a1, &p.behavior))
                    return bad_arg(r, op, err);
                p.kind = RS_PRE_PUNCT;
            } else if (arg_is(op, "digits")) {
                if (!next_arg(r, &a1)) return bad_arg(r, op, err);
                p.kind = RS_PRE_DIGITS;
                p.flag = arg_is(a1, "1");
            } else {
                return rs_error_set(err, RS_ERR_UNSUPPORTED,
                                    "metadata key '%s': unknown step '%.*s'", r->key,
                                    (int)(op.len > 40 ? 40 : op.len), op.ptr);
            }
            rs_pre_op *slot = add_op(t);
            if (!slot) return RS_ERR_NOMEM;
            *slot = p;
        }
        if (st) return st;
    }
    return RS_OK;
}

rs_status rs_pipeline_from_meta(rs_tokenizer *t, const rs_meta *m, bool *have_norm, bool *have_pre,
                                rs_error *err);

rs_status rs_pipeline_from_meta(rs_tokenizer *t, const rs_meta *m, bool *have_norm, bool *have_pre,
                                rs_error *err) {
    static const char *const keys[2] = {"tokenizer.rusty.normalizer",
                                        "tokenizer.rusty.pre_tokenizer"};
    *have_norm = *have_pre = false;
    for (int k = 0; k < 2; k++) {
        const rs_value *v = rs_meta_find(m, keys[k]);
        if (!v) continue;
        if (v->type != RS_V_ARR || v->arr.type != RS_V_STR)
            return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': expected an array of str",
                                keys[k]);
        argv_reader r = {&v->arr, 0, keys[k]};
        rs_status st = k == 0 ? parse_norm(t, &r, err) : parse_pre(t, &r, err);
        if (st) return st;
        if (k == 0)
            *have_norm = true;
        else
            *have_pre = true;
    }
    return RS_OK;
}
