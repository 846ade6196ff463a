/* test_tokenizer_unit.c — the algorithms on small vocabularies built in
 * memory, with expected ids worked out by hand: SentencePiece score merges and
 * byte fallback, BPE rank merges, special-token parsing, WordPiece, Unigram,
 * decoding and streaming, chat templates, and clear errors for malformed
 * vocabularies. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer/tokenizer.h"

#define MARK "\xE2\x96\x81" /* ▁ */

typedef struct vb {
    rs_meta m;
    rs_str tok[600];
    float score[600];
    int32_t type[600];
    char names[256][8];
    size_t n;
} vb;

static int32_t add(vb *v, const char *s, float score, int32_t type) {
    v->tok[v->n] = (rs_str){s, strlen(s)};
    v->score[v->n] = score;
    v->type[v->n] = type;
    return (int32_t)v->n++;
}

static void add_bytes(vb *v) {
    for (int b = 0; b < 256; b++) {
        snprintf(v->names[b], sizeof v->names[b], "<0x%02X>", b);
        add(v, v->names[b], 0.0f, 6);
    }
}

static void finish(vb *v, const char *model) {
    rs_meta_init(&v->m);
    assert_int_equal(rs_meta_set_str(&v->m, "tokenizer.ggml.model", model, strlen(model)), RS_OK);
    assert_int_equal(rs_meta_set_str_arr(&v->m, "tokenizer.ggml.tokens", v->tok, v->n), RS_OK);
    assert_int_equal(rs_meta_set_arr(&v->m, "tokenizer.ggml.scores", RS_V_F32, v->score, v->n),
                     RS_OK);
    assert_int_equal(rs_meta_set_arr(&v->m, "tokenizer.ggml.token_type", RS_V_I32, v->type, v->n),
                     RS_OK);
}

static rs_tokenizer *load(vb *v) {
    rs_tokenizer *t;
    rs_error err = {0};
    if (rs_tokenizer_load_meta(&t, &v->m, &err)) fail_msg("load: %s", err.msg);
    return t;
}

static void expect(const rs_tokenizer *t, const char *text, bool add_special, bool parse_special,
                   const int32_t *want, size_t nw) {
    rs_tokens got = {0};
    rs_error err = {0};
    assert_int_equal(
        rs_tokenizer_encode(t, text, strlen(text), add_special, parse_special, &got, &err), RS_OK);
    if (got.n != nw || (nw && memcmp(got.ids, want, nw * sizeof *want) != 0)) {
        printf("'%s': got", text);
        for (size_t i = 0; i < got.n; i++) printf(" %d", got.ids[i]);
        printf(", want");
        for (size_t i = 0; i < nw; i++) printf(" %d", want[i]);
        printf("\n");
        fail();
    }
    rs_tokens_free(&got);
}
#define EXPECT(t, text, as, ps, ...)                                                               \
    do {                                                                                           \
        const int32_t w_[] = {__VA_ARGS__};                                                        \
        expect(t, text, as, ps, w_, sizeof w_ / sizeof w_[0]);                                     \
    } while (0)

static void expect_decode(const rs_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                          const char *want) {
    rs_bytes out = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_decode(t, ids, n, flags, &out, &err), RS_OK);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    rs_bytes_free(&out);
}

/* ---- SentencePiece ----------------------------------------------------------------- */

/* ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0xNN>, then the pieces below */
static void spm_vocab(vb *v) {
    v->n = 0;
    add(v, "<unk>", 0, 2);
    add(v, "<s>", 0, 3);
    add(v, "</s>", 0, 3);
    add_bytes(v);
    add(v, MARK, -1, 1);          /* 259 */
    add(v, "a", -1, 1);           /* 260 */
    add(v, "b", -1, 1);           /* 261 */
    add(v, "c", -1, 1);           /* 262 */
    add(v, MARK "a", -3, 1);      /* 263 */
    add(v, "ab", -2, 1);          /* 264 */
    add(v, "bc", -0.5f, 1);       /* 265 */
    add(v, MARK "ab", -0.1f, 1);  /* 266 */
    add(v, "<|im_start|>", 0, 3); /* 267 control */
    add(v, "<U>", 0, 4);          /* 268 user-defined */
    add(v, "<a>", 0, 3);          /* 269 */
    add(v, "<a><b>", 0, 3);       /* 270 */
    finish(v, "llama");
}

static rs_tokenizer *small_spm(vb *v) {
    spm_vocab(v);
    return load(v);
}

static void test_spm_merges(void **s) {
    (void)s;
    vb v;
    rs_tokenizer *t = small_spm(&v);
    /* "▁abc": pairs ▁a(-3) ab(-2) bc(-0.5); bc first → ▁ a bc; then ▁a(-3) → ▁a bc */
    EXPECT(t, "abc", false, false, 263, 265);
    /* "▁ab": ▁a(-3) ab(-2): ab first → ▁ ab → ▁ab(-0.1) */
    EXPECT(t, "ab", false, false, 266);
    /* add_special puts BOS first (default for SPM) */
    EXPECT(t, "ab", true, false, 1, 266);
    /* 'x' is no piece: byte fallback <0x78> = 3 + 0x78; "é" = C3 A9 */
    EXPECT(t, "x", false, false, 259, 3 + 0x78);
    EXPECT(t, "\xC3\xA9", false, false, 259, 3 + 0xC3, 3 + 0xA9);
    /* a space is "▁"; leading space gives "▁▁" */
    EXPECT(t, " a", false, false, 259, 263);
    rs_tokens e = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_encode(t, "", 0, false, false, &e, &err), RS_OK);
    assert_int_equal(e.n, 0);
    assert_int_equal(rs_tokenizer_encode(t, "", 0, true, false, &e, &err), RS_OK);
    assert_int_equal(e.n, 1); /* just BOS */
    rs_tokens_free(&e);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

static void test_special(void **s) {
    (void)s;
    vb v;
    rs_tokenizer *t = small_spm(&v);
    /* plain text by default: "<|im_start|>" is spelled with bytes/pieces */
    rs_tokens got = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_encode(t, "<|im_start|>", 12, false, false, &got, &err), RS_OK);
    assert_true(got.n > 1);
    for (size_t i = 0; i < got.n; i++) assert_int_not_equal(got.ids[i], 267);
    rs_tokens_free(&got);
    /* parsed: the id; text after a special token gets the "▁" prefix again */
    EXPECT(t, "<|im_start|>ab", false, true, 267, 266);
    /* user-defined pieces are matched even without parsing */
    EXPECT(t, "ab<U>ab", false, false, 266, 268, 266);
    /* longest special text wins */
    EXPECT(t, "<a><b>", false, true, 270);
    EXPECT(t, "<a>", false, true, 269);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);

    /* rstrip (HF added-token flag) swallows the spaces after the token */
    spm_vocab(&v);
    int32_t rs_ids[1] = {267};
    assert_int_equal(rs_meta_set_arr(&v.m, "tokenizer.rusty.rstrip_ids", RS_V_I32, rs_ids, 1),
                     RS_OK);
    t = load(&v);
    EXPECT(t, "<|im_start|>   ab", false, true, 267, 266);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

static void test_decode_and_stream(void **s) {
    (void)s;
    vb v;
    rs_tokenizer *t = small_spm(&v);
    const int32_t ids[] = {1, 263, 265, 259, 3 + 0xC3, 3 + 0xA9, 2};
    expect_decode(t, ids, 7, 0, " abc \xC3\xA9");
    expect_decode(t, ids, 7, RS_DECODE_STRIP_SPACE, "abc \xC3\xA9");
    expect_decode(t, ids, 7, RS_DECODE_SPECIAL, "<s> abc \xC3\xA9</s>");
    char buf[16];
    assert_int_equal(rs_tokenizer_piece(t, 263, 0, buf, sizeof buf), 2);
    assert_memory_equal(buf, " a", 2);
    assert_int_equal(rs_tokenizer_piece(t, 1, 0, buf, sizeof buf), 0);
    assert_int_equal(rs_tokenizer_piece(t, 1, RS_DECODE_SPECIAL, buf, sizeof buf), 3);
    /* stream: "é" arrives in two byte tokens and is held until complete */
    rs_stream_decoder d;
    rs_bytes out = {0};
    rs_error err = {0};
    rs_stream_decoder_init(&d, t, RS_DECODE_STRIP_SPACE);
    assert_int_equal(rs_stream_decoder_push(&d, 263, &out, &err), RS_OK);
    assert_string_equal(out.data, "a");
    assert_int_equal(rs_stream_decoder_push(&d, 3 + 0xC3, &out, &err), RS_OK);
    assert_string_equal(out.data, "a");
    assert_int_equal(rs_stream_decoder_push(&d, 3 + 0xA9, &out, &err), RS_OK);
    assert_string_equal(out.data, "a\xC3\xA9");
    /* an incomplete sequence at the end comes out on flush */
    assert_int_equal(rs_stream_decoder_push(&d, 3 + 0xE2, &out, &err), RS_OK);
    assert_int_equal(out.len, 3);
    assert_int_equal(rs_stream_decoder_flush(&d, &out, &err), RS_OK);
    assert_int_equal(out.len, 4);
    /* a stray continuation byte cannot complete anything: passed through */
    assert_int_equal(rs_stream_decoder_push(&d, 3 + 0x80, &out, &err), RS_OK);
    assert_int_equal(out.len, 5);
    assert_int_equal(rs_stream_decoder_push(&d, 99999, &out, &err), RS_ERR_RANGE);
    rs_bytes_free(&out);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

/* ---- byte-level BPE ------------------------------------------------------------------ */

static char bl_chars[256][4];

static rs_tokenizer *small_bpe(vb *v, const char *const *merges, size_t nm) {
    v->n = 0;
    for (int b = 0; b < 256; b++) { /* ids 0..255: the byte characters, in byte order */
        uint32_t cp =
            (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE) ? (uint32_t)b : 0;
        if (!cp) { /* 256 + rank among the non-printable bytes */
            int r = 0;
            for (int c = 0; c < b; c++)
                r += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE));
            cp = 256u + (uint32_t)r;
        }
        char *o = bl_chars[b];
        if (cp < 0x80)
            o[0] = (char)cp, o[1] = 0;
        else
            o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), o[2] = 0;
        add(v, o, 0, 1);
    }
    add(v, "\xC4\xA0t", 0, 1);     /* 256 "Ġt" */
    add(v, "he", 0, 1);            /* 257 */
    add(v, "\xC4\xA0the", 0, 1);   /* 258 */
    add(v, "<|endoftext|>", 0, 3); /* 259 */
    finish(v, "gpt2");
    rs_str ms[8];
    for (size_t i = 0; i < nm; i++) ms[i] = (rs_str){merges[i], strlen(merges[i])};
    if (nm) assert_int_equal(rs_meta_set_str_arr(&v->m, "tokenizer.ggml.merges", ms, nm), RS_OK);
    assert_int_equal(rs_meta_set_str(&v->m, "tokenizer.ggml.pre", "gpt-2", 5), RS_OK);
    return nm ? load(v) : NULL;
}

static void test_bpe(void **s) {
    (void)s;
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he"};
    vb v;
    rs_tokenizer *t = small_bpe(&v, merges, 3);
    /* " the" → Ġ t h e → Ġt(0) → he(1) → Ġthe(2) */
    EXPECT(t, " the", false, false, 258);
    /* "the": t h e → he → t he (no merge "t he") */
    EXPECT(t, "the", false, false, 't', 257);
    /* the regex splits "the the": "the", " the" */
    EXPECT(t, "the the", false, false, 't', 257, 258);
    /* bytes that are no printable character map to U+0100...: "\n" is byte 10 */
    EXPECT(t, "\n", false, false, 10);
    /* any bytes, invalid UTF-8 included, round-trip */
    const char raw[] = "a\xFF\xC3(\x80 z";
    rs_tokens ids = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_encode(t, raw, sizeof raw - 1, false, false, &ids, &err), RS_OK);
    expect_decode(t, ids.ids, ids.n, 0, raw);
    rs_tokens_free(&ids);
    EXPECT(t, "<|endoftext|>", false, true, 259);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

/* ---- malformed vocabularies ----------------------------------------------------------- */

static void expect_error(vb *v, rs_status code, const char *needle) {
    rs_tokenizer *t = NULL;
    rs_error err = {0};
    rs_status st = rs_tokenizer_load_meta(&t, &v->m, &err);
    if (st != code || !strstr(err.msg, needle))
        fail_msg("expected error %d containing '%s', got %d '%s'", code, needle, st, err.msg);
    assert_null(t);
    rs_meta_free(&v->m);
}

static void test_malformed(void **s) {
    (void)s;
    vb v;
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he"};
    static const char *const unknown_merge[] = {"q z"};
    static const char *const bad_result[] = {"t h"};

    small_bpe(&v, merges, 0); /* no merges at all */
    expect_error(&v, RS_ERR_FORMAT, "merges");

    /* "q z": both bytes exist but "qz" does not */
    small_bpe(&v, unknown_merge, 0);
    rs_str m1 = {unknown_merge[0], 3};
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.merges", &m1, 1);
    expect_error(&v, RS_ERR_FORMAT, "'qz' is not in the vocabulary");
    small_bpe(&v, bad_result, 0);
    rs_str m2 = {"tx h", 4};
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.merges", &m2, 1);
    expect_error(&v, RS_ERR_FORMAT, "'tx' is not in the vocabulary");

    /* invalid UTF-8 in a byte-level piece */
    small_bpe(&v, merges, 0);
    v.tok[257] = (rs_str){"h\xFF", 2};
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.tokens", v.tok, v.n);
    rs_str ms[3] = {{merges[0], strlen(merges[0])}, {merges[1], 3}, {merges[2], strlen(merges[2])}};
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.merges", ms, 1);
    expect_error(&v, RS_ERR_FORMAT, "not valid UTF-8");

    spm_vocab(&v);
    rs_meta_free(&v.m);
    v.type[260] = 9; /* bad token type */
    finish(&v, "llama");
    expect_error(&v, RS_ERR_FORMAT, "token_type");

    spm_vocab(&v);
    rs_meta_set_uint(&v.m, "tokenizer.ggml.bos_token_id", RS_V_U32, 5000); /* ≥ n_vocab */
    expect_error(&v, RS_ERR_FORMAT, "bos_token_id");

    spm_vocab(&v);
    rs_meta_set_arr(&v.m, "tokenizer.ggml.scores", RS_V_F32, v.score, v.n - 1);
    expect_error(&v, RS_ERR_FORMAT, "scores");

    spm_vocab(&v);
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.tokens", v.tok, 0);
    expect_error(&v, RS_ERR_FORMAT, "empty");

    spm_vocab(&v);
    v.tok[261] = v.tok[260]; /* duplicate "a" */
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.tokens", v.tok, v.n);
    expect_error(&v, RS_ERR_FORMAT, "duplicate");

    spm_vocab(&v);
    v.tok[3] = (rs_str){"<0xZZ>", 6}; /* byte type, not a byte */
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.tokens", v.tok, v.n);
    expect_error(&v, RS_ERR_FORMAT, "<0xNN>");

    spm_vocab(&v);
    rs_meta_set_str(&v.m, "tokenizer.ggml.model", "rwkv9", 5);
    expect_error(&v, RS_ERR_UNSUPPORTED, "rwkv9");

    small_bpe(&v, merges, 0);
    rs_meta_set_str_arr(&v.m, "tokenizer.ggml.merges", ms, 3);
    rs_meta_set_str(&v.m, "tokenizer.ggml.pre", "nonesuch", 8);
    expect_error(&v, RS_ERR_UNSUPPORTED, "nonesuch");

    rs_meta_init(&v.m); /* nothing at all */
    expect_error(&v, RS_ERR_FORMAT, "tokenizer.ggml.model");

    /* a hostile tokenizer.model */
    rs_meta m;
    rs_error err = {0};
    rs_meta_init(&m);
    const unsigned char trunc[] = {0x0A, 0x80, 0x01, 0x0A};
    assert_int_equal(rs_tokenizer_spm_proto_to_meta(trunc, sizeof trunc, &m, &err), RS_ERR_FORMAT);
    const unsigned char empty[] = {0};
    assert_int_equal(rs_tokenizer_spm_proto_to_meta(empty, 0, &m, &err), RS_ERR_FORMAT);
    rs_meta_free(&m);
}

/* ---- WordPiece ------------------------------------------------------------------------- */

static void test_wordpiece(void **s) {
    (void)s;
    vb v = {.n = 0};
    add(&v, "[PAD]", 0, 3);      /* 0 */
    add(&v, "[UNK]", 0, 3);      /* 1 */
    add(&v, "[CLS]", 0, 3);      /* 2 */
    add(&v, "[SEP]", 0, 3);      /* 3 */
    add(&v, MARK "hello", 0, 1); /* 4 */
    add(&v, MARK "un", 0, 1);    /* 5 */
    add(&v, "aff", 0, 1);        /* 6  ("##aff") */
    add(&v, "able", 0, 1);       /* 7  ("##able") */
    add(&v, MARK "!", 0, 1);     /* 8 */
    add(&v, MARK "cafe", 0, 1);  /* 9 */
    finish(&v, "bert");
    rs_meta_set_uint(&v.m, "tokenizer.ggml.unknown_token_id", RS_V_U32, 1);
    rs_meta_set_uint(&v.m, "tokenizer.ggml.cls_token_id", RS_V_U32, 2);
    rs_meta_set_uint(&v.m, "tokenizer.ggml.seperator_token_id", RS_V_U32, 3);
    rs_tokenizer *t = load(&v);
    /* lower-cased, accents stripped, punctuation split, unknown word → [UNK] */
    EXPECT(t, "Hello unaffable! Café xyz", false, false, 4, 5, 6, 7, 8, 9, 1);
    EXPECT(t, "hello", true, false, 2, 4, 3);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

/* ---- Unigram ----------------------------------------------------------------------------- */

static void test_unigram(void **s) {
    (void)s;
    vb v = {.n = 0};
    add(&v, "<pad>", 0, 3);       /* 0 */
    add(&v, "</s>", 0, 3);        /* 1 */
    add(&v, "<unk>", 0, 2);       /* 2 */
    add(&v, MARK, -2.0f, 1);      /* 3 */
    add(&v, MARK "ab", -3.0f, 1); /* 4 */
    add(&v, MARK "a", -1.0f, 1);  /* 5 */
    add(&v, "b", -1.5f, 1);       /* 6 */
    add(&v, "bc", -1.0f, 1);      /* 7 */
    add(&v, "c", -4.0f, 1);       /* 8 */
    finish(&v, "t5");
    rs_tokenizer *t = load(&v);
    /* "▁abc": paths ▁a+bc = -2.0, ▁ab+c = -7.0, ▁a+b+c = -6.5 → ▁a bc */
    EXPECT(t, "abc", false, false, 5, 7);
    /* EOS is added by default for T5; z is unknown (unk score = -4 - 10) */
    /* "▁ab": ▁a+b = -2.5 beats ▁ab = -3 */
    EXPECT(t, "ab", true, false, 5, 6, 1);
    EXPECT(t, "azz", false, false, 5, 2);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

/* ---- chat templates ----------------------------------------------------------------------- */

static void check_chat(rs_chat_template k, bool gen, const char *want) {
    const rs_chat_msg msgs[] = {
        {"system", "Be brief."}, {"user", "Hi"}, {"assistant", " Hello "}, {"user", "Bye"}};
    rs_bytes out = {0};
    rs_error err = {0};
    assert_int_equal(rs_chat_format(k, msgs, 4, gen, &out, &err), RS_OK);
    if (strcmp(out.data, want) != 0)
        fail_msg("%s:\n[%s]\nwant\n[%s]", rs_chat_template_name(k), out.data, want);
    rs_bytes_free(&out);
}

static void test_chat(void **s) {
    (void)s;
    check_chat(RS_CHAT_CHATML, true,
               "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
               "<|im_start|>assistant\n Hello <|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
               "<|im_start|>assistant\n");
    check_chat(RS_CHAT_LLAMA3, true,
               "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n");
    check_chat(RS_CHAT_LLAMA2, true,
               "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s>[INST] Bye [/INST]");
    check_chat(RS_CHAT_MISTRAL, true, "[INST] Be brief.\n\nHi[/INST] Hello</s>[INST] Bye[/INST]");
    check_chat(RS_CHAT_ZEPHYR, true,
               "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n Hello </s>\n"
               "<|user|>\nBye</s>\n<|assistant|>\n");
    check_chat(RS_CHAT_PHI3, false,
               "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n Hello <|end|>\n"
               "<|user|>\nBye<|end|>\n");
    check_chat(RS_CHAT_GEMMA, true,
               "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello"
               "<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
    check_chat(RS_CHAT_UNKNOWN, true,
               "system: Be brief.\nuser: Hi\nassistant:  Hello \nuser: Bye\nassistant:");

    static const struct {
        const char *tpl;
        rs_chat_template k;
    } det[] = {
        {"{% for m in messages %}<|im_start|>{{ m.role }}", RS_CHAT_CHATML},
        {"<|start_header_id|>' + role + '<|end_header_id|>", RS_CHAT_LLAMA3},
        {"[INST] <<SYS>>\\n' + system", RS_CHAT_LLAMA2},
        {"bos_token + '[INST] ' + content + ' [/INST]'", RS_CHAT_MISTRAL},
        {"<|user|>\\n{{ content }}</s>{% if add_generation_prompt %}<|assistant|>", RS_CHAT_ZEPHYR},
        {"<|user|>' + content + '<|end|>\\n<|assistant|>", RS_CHAT_PHI3},
        {"<start_of_turn>user\\n", RS_CHAT_GEMMA},
        {"{{ messages }}", RS_CHAT_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof det / sizeof det[0]; i++)
        assert_int_equal(rs_chat_detect(det[i].tpl, strlen(det[i].tpl)), det[i].k);

    /* through a tokenizer: unrecognised template → plain format, flagged */
    vb v;
    spm_vocab(&v);
    const char *tpl = "{{ weird }}";
    rs_meta_set_str(&v.m, "tokenizer.chat_template", tpl, strlen(tpl));
    rs_tokenizer *t = load(&v);
    const rs_chat_msg one = {"user", "x"};
    rs_bytes out = {0};
    bool fb = false;
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_chat_format(t, &one, 1, true, &out, &fb, &err), RS_OK);
    assert_true(fb);
    assert_string_equal(out.data, "user: x\nassistant:");
    rs_bytes_free(&out);
    rs_tokenizer_free(t);
    rs_meta_free(&v.m);
}

/* ---- Hugging Face tokenizer.json -------------------------------------------------------- */

static void json_escape(rs_bytes *b, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') rs_bytes_append(b, "\\", 1);
        rs_bytes_append(b, s, 1);
    }
}

static void write_text(const char *path, const char *s) {
    assert_int_equal(tu_write_file(path, s, strlen(s)), 0);
}

static void test_hf_json(void **s) {
    (void)s;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_tmp("hfjson"));
    mkdir(dir, 0755);
    char path[600];
    /* byte-level BPE, Llama-3 style: Split regex + ByteLevel, merges as pairs */
    vb v;
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he"};
    small_bpe(&v, merges, 0); /* only for its byte-character table */
    rs_meta_free(&v.m);
    rs_bytes j = {0};
    const char *head = "{\"model\":{\"type\":\"BPE\",\"vocab\":{";
    rs_bytes_append(&j, head, strlen(head));
    for (int i = 0; i < 259; i++) {
        char num[32];
        rs_bytes_append(&j, i ? ",\"" : "\"", i ? 2 : 1);
        json_escape(&j, i < 256    ? bl_chars[i]
                        : i == 256 ? "\xC4\xA0t"
                        : i == 257 ? "he"
                                   : "\xC4\xA0the");
        snprintf(num, sizeof num, "\":%d", i);
        rs_bytes_append(&j, num, strlen(num));
    }
    const char *rest =
        "},\"merges\":[[\"\xC4\xA0\",\"t\"],[\"h\",\"e\"],[\"\xC4\xA0t\",\"he\"]]},"
        "\"added_tokens\":[{\"id\":259,\"content\":\"<|begin_of_text|>\",\"special\":true},"
        "{\"id\":260,\"content\":\"<|user|>\",\"special\":false}],"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
        "\"pattern\":"
        "{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}"
        "{1,3}| "
        "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
        "false,"
        "\"use_regex\":false}]},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
        "\"<|begin_of_text|>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<|begin_of_"
        "text|>\":"
        "{\"ids\":[259]}}},\"decoder\":{\"type\":\"ByteLevel\"}}";
    rs_bytes_append(&j, rest, strlen(rest));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(path, j.data);
    rs_bytes_free(&j);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_text(
        path,
        "{\"chat_template\": \"{{ '<|start_header_id|>' + m.role + '<|end_header_id|>' }}\"}");

    rs_meta m;
    rs_error err = {0};
    rs_meta_init(&m);
    if (rs_tokenizer_hf_to_meta(dir, &m, &err)) fail_msg("%s", err.msg);
    rs_str str;
    assert_int_equal(rs_meta_get_str(&m, "tokenizer.ggml.model", &str, &err), RS_OK);
    assert_int_equal(str.len, 4);
    assert_memory_equal(str.ptr, "gpt2", 4);
    assert_int_equal(rs_meta_get_str(&m, "tokenizer.ggml.pre", &str, &err), RS_OK);
    assert_int_equal(str.len, 9);
    assert_memory_equal(str.ptr, "llama-bpe", 9);
    rs_meta_free(&m);
    rs_tokenizer *t;
    if (rs_tokenizer_load_hf(&t, dir, &err)) fail_msg("%s", err.msg);
    EXPECT(t, " the", true, false, 259, 258);                       /* BOS from the template */
    EXPECT(t, "the<|user|> the", false, false, 't', 257, 260, 258); /* non-special added: matched */
    EXPECT(t, "<|begin_of_text|>", false, true, 259);
    rs_bytes out = {0};
    bool fb = true;
    const rs_chat_msg one = {"user", " x "};
    assert_int_equal(rs_tokenizer_chat_format(t, &one, 1, false, &out, &fb, &err), RS_OK);
    assert_false(fb);
    assert_string_equal(out.data, "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
    rs_bytes_free(&out);
    rs_tokenizer_free(t);

    /* WordPiece with BERT normaliser and [CLS] A [SEP] */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(
        path,
        "{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0,"
        "\"[CLS]\":1,\"[SEP]\":2,\"hello\":3,\"un\":4,\"##aff\":5,\"##able\":6}},"
        "\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":true},"
        "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
        "{\"id\":\"[CLS]\"}},{\"Sequence\":{\"id\":\"A\"}},{\"SpecialToken\":{\"id\":\"[SEP]\"}}],"
        "\"special_tokens\":{\"[CLS]\":{\"ids\":[1]},\"[SEP]\":{\"ids\":[2]}}},"
        "\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"special\":true},{\"id\":1,"
        "\"content\":\"[CLS]\",\"special\":true},{\"id\":2,\"content\":\"[SEP]\",\"special\":true}]"
        "}");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    remove(path);
    if (rs_tokenizer_load_hf(&t, dir, &err)) fail_msg("%s", err.msg);
    EXPECT(t, "Hello UNaffable zz", true, false, 1, 3, 4, 5, 6, 0, 2);
    rs_tokenizer_free(t);

    /* malformed JSON: a clear error with the file name */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"");
    assert_int_equal(rs_tokenizer_load_hf(&t, dir, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    remove(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_merges),        cmocka_unit_test(test_special),
        cmocka_unit_test(test_decode_and_stream), cmocka_unit_test(test_bpe),
        cmocka_unit_test(test_malformed),         cmocka_unit_test(test_wordpiece),
        cmocka_unit_test(test_unigram),           cmocka_unit_test(test_chat),
        cmocka_unit_test(test_hf_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
