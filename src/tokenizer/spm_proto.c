/* spm_proto.c — SentencePiece tokenizer.model (a protobuf ModelProto) → the
 * tokenizer.ggml.* keys a GGUF conversion carries.
 *
 * Only the wire format is needed, parsed by hand with every length checked:
 *   ModelProto      1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec
 *   SentencePiece   1: piece (string), 2: score (float), 3: type (enum, default NORMAL)
 *   TrainerSpec     3: model_type (1 UNIGRAM, 2 BPE), 24: treat_whitespace_as_suffix,
 *                   35: byte_fallback, 40/41/42/43: unk/bos/eos/pad id
 *   NormalizerSpec  2: precompiled_charsmap, 3: add_dummy_prefix,
 *                   4: remove_extra_whitespaces, 5: escape_whitespaces
 * Piece types are numbered as GGUF token types (NORMAL 1 ... BYTE 6). */
#include <stdlib.h>
#include <string.h>

#include "io/mapping.h"
#include "tokenizer/tok_internal.h"

typedef struct pb {
    const uint8_t *p, *end;
} pb;

typedef struct pb_field {
    uint32_t num;
    uint32_t wire;
    uint64_t v;       /* varint / fixed value */
    const uint8_t *s; /* length-delimited payload */
    size_t n;
} pb_field;

static bool pb_varint(pb *b, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return false;
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Reads the next field; returns 0 at the end, 1 on a field, -1 on malformed input. */
static int pb_next(pb *b, pb_field *f) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (!pb_varint(b, &key) || key >> 32) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->s = NULL, f->n = 0, f->v = 0;
    switch (f->wire) {
    case 0:
        return pb_varint(b, &f->v) ? 1 : -1;
    case 1:
        if (b->end - b->p < 8) return -1;
        memcpy(&f->v, b->p, 8);
        b->p += 8;
        return 1;
    case 5: {
        if (b->end - b->p < 4) return -1;
        uint32_t x;
        memcpy(&x, b->p, 4);
        f->v = x;
        b->p += 4;
        return 1;
    }
    case 2: {
        uint64_t len;
        if (!pb_varint(b, &len) || len > (uint64_t)(b->end - b->p)) return -1;
        f->s = b->p;
        f->n = (size_t)len;
        b->p += len;
        return 1;
    }
    default:
        return -1; /* groups are not used by sentencepiece */
    }
}

typedef struct spm_model {
    rs_str *pieces;
    float *scores;
    int32_t *types;
    size_t n, cap;
    int64_t model_type;
    int64_t unk_id, bos_id, eos_id, pad_id;
    bool byte_fallback, ws_suffix;
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    const uint8_t *charsmap;
    size_t charsmap_n;
} spm_model;

static rs_status bad(rs_error *err, const char *what) {
    return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.model: malformed protobuf (%s)", what);
}

static rs_status parse_piece(spm_model *m, const uint8_t *s, size_t n, rs_error *err) {
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        rs_str *p = rs_realloc_array(m->pieces, cap, sizeof *p);
        if (p) m->pieces = p;
        float *sc = rs_realloc_array(m->scores, cap, sizeof *sc);
        if (sc) m->scores = sc;
        int32_t *ty = rs_realloc_array(m->types, cap, sizeof *ty);
        if (ty) m->types = ty;
        if (!p || !sc || !ty) return RS_ERR_NOMEM;
        m->cap = cap;
    }
    rs_str piece = {"", 0};
    float score = 0.0f;
    int64_t type = 1;
    pb b = {s, s + n};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        if (f.num == 1 && f.wire == 2)
            piece = (rs_str){(const char *)f.s, f.n};
        else if (f.num == 2 && f.wire == 5) {
            uint32_t x = (uint32_t)f.v;
            memcpy(&score, &x, 4);
        } else if (f.num == 3 && f.wire == 0)
            type = (int64_t)f.v;
    }
    if (r < 0) return bad(err, "piece");
    if (type < 1 || type > 6)
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.model: piece %zu has type %lld", m->n,
                            (long long)type);
    m->pieces[m->n] = piece;
    m->scores[m->n] = score;
    m->types[m->n] = (int32_t)type;
    m->n++;
    return RS_OK;
}

static rs_status parse_trainer(spm_model *m, const uint8_t *s, size_t n, rs_error *err) {
    pb b = {s, s + n};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        if (f.wire != 0) continue;
        int64_t v = (int64_t)f.v; /* int32 fields are sign-extended varints */
        switch (f.num) {
        case 3:
            m->model_type = v;
            break;
        case 24:
            m->ws_suffix = v != 0;
            break;
        case 35:
            m->byte_fallback = v != 0;
            break;
        case 40:
            m->unk_id = v;
            break;
        case 41:
            m->bos_id = v;
            break;
        case 42:
            m->eos_id = v;
            break;
        case 43:
            m->pad_id = v;
            break;
        default:
            break;
        }
    }
    return r < 0 ? bad(err, "trainer_spec") : RS_OK;
}

static rs_status parse_normalizer(spm_model *m, const uint8_t *s, size_t n, rs_error *err) {
    pb b = {s, s + n};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        if (f.num == 2 && f.wire == 2)
            m->charsmap = f.s, m->charsmap_n = f.n;
        else if (f.wire == 0 && f.num == 3)
            m->add_dummy_prefix = f.v != 0;
        else if (f.wire == 0 && f.num == 4)
            m->remove_extra_ws = f.v != 0;
        else if (f.wire == 0 && f.num == 5)
            m->escape_ws = f.v != 0;
    }
    return r < 0 ? bad(err, "normalizer_spec") : RS_OK;
}

static rs_status set_id(rs_meta *out, const char *key, int64_t id, size_t n) {
    if (id < 0 || (uint64_t)id >= n) return RS_OK; /* -1: not used */
    return rs_meta_set_uint(out, key, RS_V_U32, (uint64_t)id);
}

static rs_status to_meta(const spm_model *m, rs_meta *out, rs_error *err) {
    if (m->n == 0) return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.model has no pieces");
    const char *model;
    if (m->model_type == 2)
        model = "llama";
    else if (m->model_type == 1)
        model = "t5";
    else
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "tokenizer.model: model_type %lld (only UNIGRAM and BPE are supported)",
                            (long long)m->model_type);
    rs_status st = rs_meta_set_str(out, "tokenizer.ggml.model", model, strlen(model));
    if (!st) st = rs_meta_set_str(out, "tokenizer.ggml.pre", "default", 7);
    if (!st) st = rs_meta_set_str_arr(out, "tokenizer.ggml.tokens", m->pieces, m->n);
    if (!st) st = rs_meta_set_arr(out, "tokenizer.ggml.scores", RS_V_F32, m->scores, m->n);
    if (!st) st = rs_meta_set_arr(out, "tokenizer.ggml.token_type", RS_V_I32, m->types, m->n);
    if (!st) st = set_id(out, "tokenizer.ggml.bos_token_id", m->bos_id, m->n);
    if (!st) st = set_id(out, "tokenizer.ggml.eos_token_id", m->eos_id, m->n);
    if (!st) st = set_id(out, "tokenizer.ggml.unknown_token_id", m->unk_id, m->n);
    if (!st) st = set_id(out, "tokenizer.ggml.padding_token_id", m->pad_id, m->n);
    if (!st) st = rs_meta_set_bool(out, "tokenizer.ggml.add_space_prefix", m->add_dummy_prefix);
    if (!st && m->model_type == 1) {
        st = rs_meta_set_bool(out, "tokenizer.ggml.remove_extra_whitespaces", m->remove_extra_ws);
        if (!st && m->charsmap_n)
            st = rs_meta_set_arr(out, "tokenizer.ggml.precompiled_charsmap", RS_V_U8, m->charsmap,
                                 m->charsmap_n);
        if (!st && !m->escape_ws)
            st = rs_meta_set_bool(out, "tokenizer.rusty.escape_whitespaces", false);
        if (!st && m->ws_suffix)
            st = rs_meta_set_bool(out, "tokenizer.rusty.treat_whitespace_as_suffix", true);
    }
    if (st) return rs_error_set(err, st, "tokenizer.model: out of memory");
    return RS_OK;
}

rs_status rs_tokenizer_spm_proto_to_meta(const void *data, size_t size, rs_meta *out,
                                         rs_error *err) {
    spm_model m = {.unk_id = 0,
                   .bos_id = 1,
                   .eos_id = 2,
                   .pad_id = -1,
                   .model_type = 1,
                   .add_dummy_prefix = true,
                   .remove_extra_ws = true,
                   .escape_ws = true};
    pb b = {data, (const uint8_t *)data + size};
    pb_field f;
    int r = 0;
    rs_status st = RS_OK;
    while (!st && (r = pb_next(&b, &f)) > 0) {
        if (f.wire != 2) continue;
        if (f.num == 1)
            st = parse_piece(&m, f.s, f.n, err);
        else if (f.num == 2)
            st = parse_trainer(&m, f.s, f.n, err);
        else if (f.num == 3)
            st = parse_normalizer(&m, f.s, f.n, err);
    }
    if (!st && r < 0) st = bad(err, "model");
    if (st == RS_ERR_NOMEM) rs_error_set(err, st, "tokenizer.model: out of memory");
    if (!st) st = to_meta(&m, out, err);
    free(m.pieces);
    free(m.scores);
    free(m.types);
    return st;
}

rs_status rs_tokenizer_spm_model_to_meta(const char *path, rs_meta *out, rs_error *err) {
    rs_mapping map;
    rs_status st = rs_mapping_open(&map, path, err);
    if (st) return st;
    st = rs_tokenizer_spm_proto_to_meta(map.data ? (const void *)map.data : "", map.size, out, err);
    rs_mapping_close(&map);
    if (st) rs_error_prefix(err, "%s", path);
    return st;
}
