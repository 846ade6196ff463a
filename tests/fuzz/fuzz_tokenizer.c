/* fuzz_tokenizer.c — libFuzzer target: arbitrary bytes through the tokenizers.
 *
 * Uses the llama-spm and gpt-2 vocabularies from the shared folder ($RUSTY_SHARED
 * or ../shared) when present, else small built-in ones. Every input is encoded
 * (special parsing on or off by the first byte) and decoded, whole and
 * streamed; byte-level BPE must give back exactly the input bytes. Inputs
 * starting with 'P' are also parsed as a SentencePiece tokenizer.model and, if
 * that succeeds, loaded and used. Any crash, sanitizer report or abort() is a
 * finding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rs_tokenizer *g_spm, *g_bpe; /* loaded once, shared by all runs */

static rs_tokenizer *from_gguf(const char *name) {
    const char *root = getenv("RUSTY_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-%s.gguf",
             root && *root ? root : "../shared", name);
    rs_gguf g;
    rs_tokenizer *t = NULL;
    if (rs_gguf_open(&g, path, NULL)) return NULL;
    if (rs_tokenizer_load_meta(&t, &g.meta, NULL)) t = NULL;
    rs_gguf_close(&g);
    return t;
}

/* A byte-level BPE vocabulary: the 256 byte characters, "Ġt", "he", "Ġthe". */
static rs_tokenizer *builtin_bpe(void) {
    static char chars[256][3];
    rs_str tok[260];
    for (int b = 0, extra = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
        if (cp < 0x80)
            chars[b][0] = (char)cp, tok[b] = (rs_str){chars[b], 1};
        else
            chars[b][0] = (char)(0xC0 | (cp >> 6)), chars[b][1] = (char)(0x80 | (cp & 0x3F)),
            tok[b] = (rs_str){chars[b], 2};
    }
    tok[256] = (rs_str){"\xC4\xA0t", 3};
    tok[257] = (rs_str){"he", 2};
    tok[258] = (rs_str){"\xC4\xA0the", 5};
    tok[259] = (rs_str){"<|endoftext|>", 13};
    int32_t type[260];
    for (int i = 0; i < 260; i++) type[i] = i == 259 ? 3 : 1;
    rs_str merges[3] = {{"\xC4\xA0 t", 4}, {"h e", 3}, {"\xC4\xA0t he", 6}};
    rs_meta m;
    rs_meta_init(&m);
    rs_meta_set_str(&m, "tokenizer.ggml.model", "gpt2", 4);
    rs_meta_set_str(&m, "tokenizer.ggml.pre", "llama-bpe", 9);
    rs_meta_set_str_arr(&m, "tokenizer.ggml.tokens", tok, 260);
    rs_meta_set_arr(&m, "tokenizer.ggml.token_type", RS_V_I32, type, 260);
    rs_meta_set_str_arr(&m, "tokenizer.ggml.merges", merges, 3);
    rs_tokenizer *t = NULL;
    if (rs_tokenizer_load_meta(&t, &m, NULL)) abort();
    rs_meta_free(&m);
    return t;
}

/* A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, a few pieces. */
static rs_tokenizer *builtin_spm(void) {
    static char names[256][8];
    rs_str tok[265];
    float score[265] = {0};
    int32_t type[265];
    tok[0] = (rs_str){"<unk>", 5}, type[0] = 2;
    tok[1] = (rs_str){"<s>", 3}, type[1] = 3;
    tok[2] = (rs_str){"</s>", 4}, type[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        tok[3 + b] = (rs_str){names[b], 6}, type[3 + b] = 6;
    }
    const char *p[6] = {"\xE2\x96\x81",
                        "a",
                        "b",
                        "\xE2\x96\x81"
                        "a",
                        "ab",
                        "\xE2\x96\x81"
                        "ab"};
    for (int i = 0; i < 6; i++)
        tok[259 + i] = (rs_str){p[i], strlen(p[i])}, type[259 + i] = 1, score[259 + i] = (float)-i;
    rs_meta m;
    rs_meta_init(&m);
    rs_meta_set_str(&m, "tokenizer.ggml.model", "llama", 5);
    rs_meta_set_str_arr(&m, "tokenizer.ggml.tokens", tok, 265);
    rs_meta_set_arr(&m, "tokenizer.ggml.scores", RS_V_F32, score, 265);
    rs_meta_set_arr(&m, "tokenizer.ggml.token_type", RS_V_I32, type, 265);
    rs_tokenizer *t = NULL;
    if (rs_tokenizer_load_meta(&t, &m, NULL)) abort();
    rs_meta_free(&m);
    return t;
}

static void exercise(const rs_tokenizer *t, const uint8_t *data, size_t size, bool must_roundtrip) {
    bool parse = size && (data[0] & 1);
    rs_tokens ids = {0};
    if (rs_tokenizer_encode(t, (const char *)data, size, parse, parse, &ids, NULL)) abort();
    rs_bytes whole = {0}, streamed = {0};
    if (rs_tokenizer_decode(t, ids.ids, ids.n, RS_DECODE_SPECIAL, &whole, NULL)) abort();
    rs_stream_decoder d;
    rs_stream_decoder_init(&d, t, RS_DECODE_SPECIAL);
    for (size_t i = 0; i < ids.n; i++)
        if (rs_stream_decoder_push(&d, ids.ids[i], &streamed, NULL)) abort();
    if (rs_stream_decoder_flush(&d, &streamed, NULL)) abort();
    if (streamed.len != whole.len ||
        (whole.len && memcmp(streamed.data, whole.data, whole.len) != 0))
        abort();
    if (must_roundtrip && !parse &&
        (whole.len != size || (size && memcmp(whole.data, data, size) != 0)))
        abort(); /* byte-level BPE loses nothing */
    rs_bytes_free(&whole);
    rs_bytes_free(&streamed);
    rs_tokens_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_spm) {
        g_spm = from_gguf("llama-spm");
        if (!g_spm) g_spm = builtin_spm();
        g_bpe = from_gguf("gpt-2");
        if (!g_bpe) g_bpe = builtin_bpe();
    }
    if (size > 1 << 16) return 0;
    exercise(g_spm, data, size, false);
    exercise(g_bpe, data, size, true);
    if (size && data[0] == 'P') {
        rs_meta m;
        rs_meta_init(&m);
        rs_tokenizer *t = NULL;
        if (!rs_tokenizer_spm_proto_to_meta(data + 1, size - 1, &m, NULL) &&
            !rs_tokenizer_load_meta(&t, &m, NULL)) {
            exercise(t, data, size, false);
            rs_tokenizer_free(t);
        }
        rs_meta_free(&m);
    }
    return 0;
}
