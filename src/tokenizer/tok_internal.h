/* tok_internal.h — the tokenizer object and the helpers its files share.
 *
 * Not a public header: only the files in src/tokenizer include it. */
#ifndef RUSTY_TOK_INTERNAL_H
#define RUSTY_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/arena.h"
#include "tokenizer/tokenizer.h"

/* "▁" U+2581, SentencePiece's space marker. */
#define RS_SPACE_MARK     "\xE2\x96\x81"
#define RS_SPACE_MARK_LEN 3

/* ---- hashing and maps (tok_util.c) ----------------------------------------- */

uint64_t rs_tok_hash(const void *p, size_t n);

/* Byte string → int32 over an external key table (keys[id]); open addressing. */
typedef struct rs_strmap {
    uint32_t *hash; /* per slot: low 32 bits of the hash */
    int32_t *id;    /* per slot: key index, -1 when empty */
    size_t mask;
    const rs_str *keys;
} rs_strmap;

/* Builds the map over keys[0..n) (empty keys are skipped). A duplicate key
 * stops the build: dup_first and dup_second get the two indices (RS_ERR_FORMAT).
 * Allocates from the arena. */
rs_status rs_strmap_build(rs_strmap *m, const rs_str *keys, size_t n, rs_arena *a,
                          int32_t *dup_first, int32_t *dup_second);
int32_t rs_strmap_get(const rs_strmap *m, const char *s, size_t n);

/* (left unit, right unit) → (merged id, priority); fixed capacity. */
typedef struct rs_pair_slot {
    uint64_t key; /* UINT64_MAX when empty */
    int32_t id;
    float prio; /* higher merges first */
} rs_pair_slot;

typedef struct rs_pairmap {
    rs_pair_slot *slots;
    size_t mask;
    size_t n;
} rs_pairmap;

bool rs_pairmap_init(rs_pairmap *m, size_t capacity, rs_arena *a);
/* Inserts; an existing pair keeps whichever entry has the higher priority. */
void rs_pairmap_put(rs_pairmap *m, int32_t l, int32_t r, int32_t id, float prio);
const rs_pair_slot *rs_pairmap_get(const rs_pairmap *m, int32_t l, int32_t r);

/* Byte trie (special tokens, Unigram pieces). Nodes are malloc'd. */
typedef struct rs_trie_node {
    int32_t child;   /* first child, -1 */
    int32_t sibling; /* next sibling, -1 */
    int32_t value;   /* token id or -1 */
    uint8_t byte;
} rs_trie_node;

typedef struct rs_trie {
    rs_trie_node *nodes; /* nodes[0] is the root */
    size_t n, cap;
    int32_t root[256]; /* direct children of the root, -1 */
} rs_trie;

bool rs_trie_init(rs_trie *t);
void rs_trie_free(rs_trie *t);
bool rs_trie_insert(rs_trie *t, const char *s, size_t n, int32_t value);
/* Child of node (or of the root when node < 0) for byte b; -1 if none. */
int32_t rs_trie_step(const rs_trie *t, int32_t node, uint8_t b);

/* ---- UTF-8 ----------------------------------------------------------------- */

/* Length of a UTF-8 sequence from its lead byte alone (1 for continuation
 * bytes), the way llama.cpp's unicode_len_utf8 splits symbols. */
static inline size_t rs_utf8_lead_len(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}
/* Strictly decodes one code point at s[0..n); returns its length and sets *cp,
 * or returns 0 when the bytes there are not a valid sequence. */
size_t rs_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Encodes cp, returns its length (1..4); buf needs 4 bytes. */
size_t rs_utf8_encode(uint32_t cp, char *buf);
bool rs_utf8_valid(const char *s, size_t n);

/* GPT-2 byte ⇄ printable character table. */
uint32_t rs_bytelevel_cp(uint8_t b);
/* -1 for code points that are not byte characters. */
int rs_bytelevel_byte(uint32_t cp);

/* ---- pipeline steps --------------------------------------------------------- */

typedef enum rs_norm_kind {
    RS_NORM_NFC,
    RS_NORM_NFD,
    RS_NORM_NFKC,
    RS_NORM_NFKD,
    RS_NORM_LOWERCASE,
    RS_NORM_STRIP_ACCENTS,
    RS_NORM_STRIP,      /* a: left, b: right */
    RS_NORM_PREPEND,    /* s1 prepended to a non-empty fragment */
    RS_NORM_REPLACE,    /* s1 → s2 (literal) */
    RS_NORM_REPLACE_RE, /* re → s2 */
} rs_norm_kind;

typedef struct rs_norm_op {
    rs_norm_kind kind;
    rs_str s1, s2;
    bool left, right;
    pcre2_code *re;
} rs_norm_op;

typedef enum rs_pre_kind {
    RS_PRE_SPLIT,      /* regex split with an HF behaviour */
    RS_PRE_METASPACE,  /* replace ' ' by s1, prepend per scheme, split before s1 */
    RS_PRE_WS_SPLIT,   /* HF WhitespaceSplit: runs of non-space */
    RS_PRE_WHITESPACE, /* HF Whitespace: \w+|[^\w\s]+ */
    RS_PRE_BERT,       /* whitespace removed, punctuation isolated */
    RS_PRE_PUNCT,      /* punctuation with a behaviour */
    RS_PRE_DIGITS,     /* digits, individually or as runs */
} rs_pre_kind;

typedef enum rs_split_behavior {
    RS_SPLIT_ISOLATED,
    RS_SPLIT_REMOVED,
    RS_SPLIT_MERGED_PREV,
    RS_SPLIT_MERGED_NEXT,
    RS_SPLIT_CONTIGUOUS,
} rs_split_behavior;

enum { RS_PREPEND_ALWAYS = 0, RS_PREPEND_FIRST = 1, RS_PREPEND_NEVER = 2 };

typedef struct rs_pre_op {
    rs_pre_kind kind;
    rs_split_behavior behavior;
    bool invert;
    bool flag;      /* METASPACE: split; DIGITS: individual */
    int scheme;     /* METASPACE prepend scheme */
    rs_str s1;      /* METASPACE replacement */
    pcre2_code *re; /* SPLIT (compiled with JIT when available) */
} rs_pre_op;

/* ---- the object --------------------------------------------------------------- */

struct rs_tokenizer {
    rs_arena arena;
    rs_vocab_type type;
    int32_t n_vocab;
    rs_str *text; /* token texts (copies) */
    float *score;
    uint16_t *attr;
    rs_strmap map; /* text → id */
    size_t max_token_len;

    int32_t bos, eos, eot, eom, unk, sep, pad, nl;
    bool add_bos, add_eos, add_sep;
    bool add_space_prefix; /* informs RS_DECODE_STRIP_SPACE users */
    int32_t *eog;
    size_t n_eog;

    /* special-token partition: control/user-defined/unknown ids, longest first */
    int32_t *special;
    size_t n_special;
    uint32_t *special_rank; /* per id: position in `special`, UINT32_MAX if none */
    rs_trie special_trie;

    /* normaliser and pre-tokeniser (SPM/BPE) */
    rs_norm_op *norm;
    size_t n_norm;
    rs_pre_op *pre;
    size_t n_pre;
    bool byte_level;    /* BPE over GPT-2 byte characters */
    bool bl_add_prefix; /* HF ByteLevel add_prefix_space */

    /* merge model (SPM and BPE) */
    bool ranked;      /* merges list (BPE semantics) rather than scores */
    rs_pairmap pairs; /* (unit, unit) → merged token */
    rs_str *units;    /* SPM: characters inside tokens that are no token (ids n_vocab + i) */
    size_t n_units;
    rs_strmap unit_map;
    int32_t byte_char[256];  /* byte-level: byte → token of its character */
    int32_t ascii_unit[128]; /* unit of each one-byte character (see merge.c) */
    int32_t byte_tok[256];   /* <0xNN> → id, -1 */
    bool byte_fallback, fuse_unk, ignore_merges;
    bool chunk_at_mark; /* whole-text merging may be cut before "▁" (see spm.c) */

    /* WordPiece / BERT normaliser */
    bool lowercase, strip_accents;

    /* Unigram */
    rs_trie piece_trie;
    const uint32_t *xcda;
    size_t xcda_n;
    const char *charsmap_repl;
    size_t charsmap_repl_n;
    float ugm_unk_score;
    bool remove_extra_ws, escape_ws, ws_suffix;

    /* decoding: each token's piece (special text included), offsets into blob */
    uint32_t *piece_off; /* n_vocab + 1 */
    char *piece_blob;

    char *chat_template;
};

/* ---- per-call scratch (encode.c) --------------------------------------------- */

typedef struct rs_sym {
    int32_t unit; /* token id, SPM pseudo unit (>= n_vocab), or -1 */
    uint32_t off; /* byte span in the word */
    uint32_t len;
    int32_t prev, next;
} rs_sym;

typedef struct rs_bigram {
    float prio;
    int32_t left, right;
    uint32_t len; /* left.len + right.len when queued: detects stale entries */
    int32_t unit; /* the merged token */
} rs_bigram;

/* Word → ids cache for one encode call. */
typedef struct rs_cache_slot {
    uint64_t hash;
    uint32_t key_off, key_len; /* into keys */
    uint32_t ids_off, ids_n;   /* into ids; ids_n == UINT32_MAX: empty slot */
} rs_cache_slot;

typedef struct rs_word_cache {
    rs_cache_slot *slots;
    size_t mask, used;
    rs_bytes keys;
    rs_tokens ids;
} rs_word_cache;

typedef struct rs_enc {
    const rs_tokenizer *t;
    rs_tokens *out;
    rs_sym *syms;
    size_t syms_cap;
    rs_bigram *heap;
    size_t heap_cap;
    rs_word_cache cache;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    rs_error *err;
} rs_enc;

rs_status rs_enc_reserve_syms(rs_enc *e, size_t n);

/* ---- module entry points ------------------------------------------------------- */

/* vocab.c */
rs_status rs_tok_emit(rs_enc *e, int32_t id);
int32_t rs_tok_byte_token(const rs_tokenizer *t, uint8_t b); /* <0xNN> or the byte itself */

/* merge.c: whether whole-text merging may be cut before "▁" (see merge.c) */
void rs_merge_check_chunking(rs_tokenizer *t); /* also fills ascii_unit */
void rs_enc_free(rs_enc *e);

/* spm.c / bpe.c: load-time setup and per-fragment encoding */
rs_status rs_spm_build(rs_tokenizer *t, rs_error *err);
rs_status rs_bpe_build(rs_tokenizer *t, const rs_array *merges, rs_error *err);
rs_status rs_merge_encode_word(rs_enc *e, const char *s, size_t n);
rs_status rs_merge_encode_text(rs_enc *e, const char *s, size_t n);

/* wordpiece.c, unigram.c */
rs_status rs_wpm_encode(rs_enc *e, const char *s, size_t n);
rs_status rs_ugm_build(rs_tokenizer *t, const rs_meta *meta, rs_error *err);
rs_status rs_ugm_encode(rs_enc *e, const char *s, size_t n);

/* special.c */
rs_status rs_special_build(rs_tokenizer *t, rs_error *err);
typedef struct rs_frag {
    size_t off, len;
    int32_t id; /* >= 0: a token; -1: raw text [off, off+len) */
} rs_frag;
/* Splits text into raw fragments and special tokens (malloc'd array in *frags). */
rs_status rs_special_partition(const rs_tokenizer *t, const char *text, size_t len,
                               bool parse_special, rs_frag **frags, size_t *n_frags, rs_error *err);

/* pretok.c / normalize.c */
rs_status rs_pretok_compile(const char *pattern, size_t len, pcre2_code **out, rs_error *err);
rs_status rs_pretok_from_name(rs_tokenizer *t, const char *pre, size_t len, rs_error *err);
rs_status rs_pretok_add_split(rs_tokenizer *t, const char *regex, size_t len, rs_split_behavior b,
                              bool invert, rs_error *err);
/* Calls fn for every pre-token of s[0..n) (first fragment: is_first). */
typedef rs_status (*rs_word_fn)(rs_enc *e, const char *s, size_t n);
rs_status rs_pretok_run(rs_enc *e, const char *s, size_t n, bool is_first, rs_word_fn fn);
rs_status rs_normalize(const rs_tokenizer *t, const char *s, size_t n, rs_bytes *out,
                       rs_error *err);
void rs_pipeline_free(rs_tokenizer *t);

/* decode.c */
rs_status rs_pieces_build(rs_tokenizer *t, rs_error *err);

/* unicode classes used by WordPiece and pre-tokenisers (utf8proc) */
bool rs_uc_is_whitespace(uint32_t cp);
bool rs_uc_is_punct(uint32_t cp);   /* Unicode P* */
bool rs_uc_is_control(uint32_t cp); /* C* except \t \n \r */
bool rs_uc_is_cjk(uint32_t cp);
bool rs_uc_is_mark(uint32_t cp);  /* M* (combining marks) */
bool rs_uc_is_digit(uint32_t cp); /* N* */
bool rs_uc_is_alnum(uint32_t cp); /* \w: L*, N*, M*, Pc */

#endif
