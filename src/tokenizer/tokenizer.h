/* tokenizer.h — text ⇄ token ids, exactly as the reference tokenizers do it.
 *
 * Four algorithms behind one object:
 *   SPM  (tokenizer.ggml.model "llama"): SentencePiece BPE driven by piece scores,
 *        byte fallback (<0xNN>), "▁" space marker and the add-space-prefix rule.
 *        With tokenizer.ggml.merges present (our extension, written by
 *        rs_tokenizer_hf_to_meta for Llama-style tokenizer.json files) the merges
 *        drive it instead, with Hugging Face BPE semantics.
 *   BPE  ("gpt2"): byte-level BPE, merge ranks, regex pre-tokenizer chosen by
 *        tokenizer.ggml.pre (PCRE2 with Unicode properties).
 *   WPM  ("bert"): WordPiece with BERT normalisation.
 *   UGM  ("t5"):   Unigram, Viterbi over piece scores.
 *
 * Sources: GGUF metadata (rs_meta, GGUF key names), a Hugging Face folder
 * (tokenizer.json + tokenizer_config.json, or tokenizer.model), or a bare
 * SentencePiece tokenizer.model. All of them go through rs_meta, so one
 * vocabulary loaded any of these ways tokenizes identically.
 *
 * A loaded rs_tokenizer owns copies of everything it needs (the rs_meta and its
 * file may be closed afterwards), is immutable, and may be shared by threads:
 * every encode/decode call keeps its scratch state on its own. */
#ifndef RUSTY_TOKENIZER_H
#define RUSTY_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/meta.h"

typedef struct rs_tokenizer rs_tokenizer;

typedef enum rs_vocab_type {
    RS_VOCAB_SPM = 1,
    RS_VOCAB_BPE = 2,
    RS_VOCAB_WPM = 3,
    RS_VOCAB_UGM = 4,
} rs_vocab_type;

/* Token attributes (bit set), from tokenizer.ggml.token_type and HF added tokens. */
enum {
    RS_TOKEN_NORMAL = 1u << 0,
    RS_TOKEN_UNKNOWN = 1u << 1,
    RS_TOKEN_CONTROL = 1u << 2,
    RS_TOKEN_USER_DEFINED = 1u << 3,
    RS_TOKEN_UNUSED = 1u << 4,
    RS_TOKEN_BYTE = 1u << 5,
    RS_TOKEN_LSTRIP = 1u << 6, /* eat whitespace left of this special token */
    RS_TOKEN_RSTRIP = 1u << 7, /* eat whitespace right of it */
};

/* A growable array of token ids owned by the caller. All-zero is empty. */
typedef struct rs_tokens {
    int32_t *ids;
    size_t n;
    size_t cap;
} rs_tokens;

void rs_tokens_free(rs_tokens *t);
rs_status rs_tokens_push(rs_tokens *t, int32_t id);

/* A growable byte string owned by the caller; NUL-terminated whenever data != NULL.
 * All-zero is empty. */
typedef struct rs_bytes {
    char *data;
    size_t len;
    size_t cap;
} rs_bytes;

void rs_bytes_free(rs_bytes *b);
rs_status rs_bytes_append(rs_bytes *b, const void *p, size_t n);

/* ---- loading ------------------------------------------------------------- */

/* From GGUF-style metadata (tokenizer.ggml.*). */
rs_status rs_tokenizer_load_meta(rs_tokenizer **out, const rs_meta *meta, rs_error *err);
/* From a Hugging Face folder: tokenizer.json (+ tokenizer_config.json), or
 * tokenizer.model when there is no tokenizer.json. */
rs_status rs_tokenizer_load_hf(rs_tokenizer **out, const char *dir, rs_error *err);
void rs_tokenizer_free(rs_tokenizer *t);

/* Writes the tokenizer.ggml.* keys a GGUF conversion of the folder carries
 * (tokens, scores, token_type, merges, special ids, add_bos/eos, pre, chat
 * template), plus tokenizer.rusty.* keys for Hugging Face pipeline details GGUF
 * has no key for (normalizer and pre-tokenizer steps). `out` must be initialised;
 * keys are added to it. */
rs_status rs_tokenizer_hf_to_meta(const char *dir, rs_meta *out, rs_error *err);
/* The same for a bare SentencePiece model file (tokenizer.model). */
rs_status rs_tokenizer_spm_model_to_meta(const char *path, rs_meta *out, rs_error *err);
/* Parses a SentencePiece ModelProto held in memory (used by the above). */
rs_status rs_tokenizer_spm_proto_to_meta(const void *data, size_t size, rs_meta *out,
                                         rs_error *err);

/* ---- queries --------------------------------------------------------------- */

#define RS_TOKEN_NONE (-1)

rs_vocab_type rs_tokenizer_type(const rs_tokenizer *t);
int32_t rs_tokenizer_n_vocab(const rs_tokenizer *t);
int32_t rs_tokenizer_bos(const rs_tokenizer *t); /* RS_TOKEN_NONE when absent */
int32_t rs_tokenizer_eos(const rs_tokenizer *t);
int32_t rs_tokenizer_eot(const rs_tokenizer *t);
int32_t rs_tokenizer_unk(const rs_tokenizer *t);
int32_t rs_tokenizer_sep(const rs_tokenizer *t);
int32_t rs_tokenizer_pad(const rs_tokenizer *t);
int32_t rs_tokenizer_nl(const rs_tokenizer *t); /* the newline token */
bool rs_tokenizer_add_bos(const rs_tokenizer *t);
bool rs_tokenizer_add_eos(const rs_tokenizer *t);
/* True when the vocabulary prefixes a space to the text (SPM "▁" rule):
 * decoders then usually strip one leading space (RS_DECODE_STRIP_SPACE). */
bool rs_tokenizer_adds_space_prefix(const rs_tokenizer *t);
/* End-of-generation: eos, eot, eom and the tokens the vocabulary marks as such. */
bool rs_tokenizer_is_eog(const rs_tokenizer *t, int32_t id);
/* Raw vocabulary entry (NULL for an id out of range). Not NUL-terminated. */
const char *rs_tokenizer_token_text(const rs_tokenizer *t, int32_t id, size_t *len);
float rs_tokenizer_token_score(const rs_tokenizer *t, int32_t id);
unsigned rs_tokenizer_token_attr(const rs_tokenizer *t, int32_t id);
/* Id of a vocabulary entry by exact text, RS_TOKEN_NONE if absent. */
int32_t rs_tokenizer_find(const rs_tokenizer *t, const char *text, size_t len);
/* tokenizer.chat_template, or NULL. */
const char *rs_tokenizer_chat_template(const rs_tokenizer *t);

/* ---- encoding -------------------------------------------------------------- */

/* Appends the ids of text[0..len) to *out. add_special: BOS/EOS (CLS/SEP) as the
 * vocabulary asks. parse_special: control-token text such as "<|im_start|>" or
 * "<s>" becomes its id (longest match first); otherwise it is plain text.
 * User-defined tokens are always matched, as the reference tokenizers do.
 * Any bytes are accepted (invalid UTF-8 included). */
rs_status rs_tokenizer_encode(const rs_tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, rs_tokens *out, rs_error *err);

/* ---- decoding -------------------------------------------------------------- */

enum {
    RS_DECODE_SPECIAL = 1u << 0,     /* render control/unknown tokens' text (else they are empty) */
    RS_DECODE_STRIP_SPACE = 1u << 1, /* drop one leading space of the first piece (SPM) */
};

/* The bytes of one token (byte tokens become their byte, "▁" a space, byte-level
 * characters their bytes). Writes at most cap bytes and returns the full length
 * (so a return > cap means "buffer too small"). 0 for an id out of range. */
size_t rs_tokenizer_piece(const rs_tokenizer *t, int32_t id, unsigned flags, char *buf, size_t cap);

/* Appends the text of ids[0..n) to *out. An id out of range is RS_ERR_RANGE. */
rs_status rs_tokenizer_decode(const rs_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                              rs_bytes *out, rs_error *err);

/* Streaming: push ids one at a time, get text that never ends inside a UTF-8
 * sequence (an incomplete sequence waits for the next token; bytes that can
 * never form a valid sequence are passed through as they are, so the
 * concatenated output always equals rs_tokenizer_decode of the same ids). */
typedef struct rs_stream_decoder {
    const rs_tokenizer *t;
    unsigned flags;
    bool started; /* a piece was produced already (for STRIP_SPACE) */
    unsigned char pending[8];
    size_t n_pending;
} rs_stream_decoder;

void rs_stream_decoder_init(rs_stream_decoder *d, const rs_tokenizer *t, unsigned flags);
rs_status rs_stream_decoder_push(rs_stream_decoder *d, int32_t id, rs_bytes *out, rs_error *err);
/* Emits whatever is still held (an incomplete sequence at the very end). */
rs_status rs_stream_decoder_flush(rs_stream_decoder *d, rs_bytes *out, rs_error *err);

/* ---- chat templates ---------------------------------------------------------- */

typedef enum rs_chat_template {
    RS_CHAT_UNKNOWN = 0,
    RS_CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|> (Qwen, SmolLM, ...) */
    RS_CHAT_LLAMA2,  /* [INST] ... [/INST], <<SYS>> system block */
    RS_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    RS_CHAT_MISTRAL, /* [INST] ...[/INST] without <<SYS>> (v3 spacing) */
    RS_CHAT_ZEPHYR,  /* <|role|>\n...</s> */
    RS_CHAT_PHI3,    /* <|role|>\n...<|end|>\n */
    RS_CHAT_GEMMA,   /* <start_of_turn>role\n...<end_of_turn>\n */
    RS_CHAT_PLAIN,   /* fallback: "role: content\n" lines */
} rs_chat_template;

typedef struct rs_chat_msg {
    const char *role; /* "system", "user", "assistant", ... (NUL-terminated) */
    const char *content;
} rs_chat_msg;

/* Recognises a Jinja template by its distinctive substrings; RS_CHAT_UNKNOWN if none. */
rs_chat_template rs_chat_detect(const char *tmpl, size_t len);
const char *rs_chat_template_name(rs_chat_template k);
/* Formats messages with template `k` (RS_CHAT_UNKNOWN formats as RS_CHAT_PLAIN)
 * and appends the result to *out. add_generation_prompt opens the assistant turn. */
rs_status rs_chat_format(rs_chat_template k, const rs_chat_msg *msgs, size_t n,
                         bool add_generation_prompt, rs_bytes *out, rs_error *err);
/* With the tokenizer's own template. *fell_back (may be NULL) is set when the
 * template is missing or unrecognised and the plain format was used. */
rs_status rs_tokenizer_chat_format(const rs_tokenizer *t, const rs_chat_msg *msgs, size_t n,
                                   bool add_generation_prompt, rs_bytes *out, bool *fell_back,
                                   rs_error *err);

#endif
