/* safetensors.h — safetensors reader and writer, and sharded sets (index.json).
 *
 * File layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * (writers pad it with spaces to a multiple of 8), then the data buffer.
 *   {"__metadata__": {str: str, ...},
 *    "<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
 * Offsets are relative to the data buffer; shapes list the outermost dimension first.
 *
 * The reader treats the file as hostile and enforces what the reference
 * implementation (huggingface/safetensors) enforces, plus a few stricter rules:
 *   - N <= 100,000,000 and 8 + N <= file size; the header is UTF-8 JSON starting
 *     with '{' followed only by JSON whitespace;
 *   - every tensor entry has exactly the fields dtype (string), shape (array of
 *     integers) and data_offsets (two integers); integers are non-negative,
 *     written as plain decimal integers (no fraction, exponent or leading zero),
 *     and below 2^53;
 *   - end - begin == product(shape) * element size, computed without overflow;
 *   - sorted by offset, the tensors tile the data buffer exactly: the first starts
 *     at 0, each starts where the previous ended (no holes, no overlap), and the
 *     last ends at the end of the file;
 *   - no duplicate tensor names, metadata keys or fields (stricter: the reference
 *     silently keeps the last duplicate); no NUL byte anywhere in the header
 *     (neither raw nor as \u0000), no raw control bytes inside strings;
 *   - __metadata__ is null or an object of string values.
 * Each failure is one line: "<file>: tensor '<name>': <what is wrong>".
 *
 * Types: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL map onto rs_dtype; the other
 * safetensors types (U16 U32 U64 F8_E4M3 F8_E5M2 F8_E8M0 F4 F6_* C64) are
 * rejected with RS_ERR_UNSUPPORTED naming the tensor and type.
 *
 * Shapes are stored in GGUF order (ne[0] innermost), i.e. reversed; at most 4
 * dimensions (more is RS_ERR_UNSUPPORTED). A 0-dim tensor (shape []) is a scalar:
 * n_dims = 0, ne = {1, 1, 1, 1}, one element. A dimension may be 0 (no elements,
 * nbytes = 0).
 *
 * Tensor data is never copied: rs_tensor_info.data points into the mapping. It is
 * aligned to the element size only when the writer padded the header (all
 * conforming writers do); readers of the data must not assume more.
 *
 * Aliases: torch's safetensors save_model drops tensors that share storage and
 * records {"<dropped name>": "<kept name>"} in __metadata__. A metadata entry whose
 * key is not a stored tensor and whose value names a stored tensor is exposed as an
 * extra tensor: the key as its name, everything else (data pointer included) equal
 * to the stored tensor's. Aliases follow the stored tensors in the tensor list.
 * An entry mapping a weight-like name to a weight-like name (both ending in
 * ".weight" or ".bias") whose target is not stored is rejected: it is an alias
 * that lost its tensor, and ignoring it would silently drop a weight. */
#ifndef RUSTY_SAFETENSORS_H
#define RUSTY_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/mapping.h"
#include "io/meta.h"
#include "io/tensor_info.h"

#define RS_SAFETENSORS_MAX_HEADER 100000000ull

typedef struct rs_safetensors {
    rs_meta meta;            /* __metadata__: RS_V_STR values, in header order */
    rs_tensor_info *tensors; /* n_stored stored tensors in header order, then aliases */
    uint64_t n_tensors;      /* stored + aliases */
    uint64_t n_stored;
    uint64_t header_len;            /* N, the JSON length */
    uint64_t data_offset;           /* 8 + N: file offset of the data buffer */
    uint64_t data_size;             /* bytes of the data buffer */
    const rs_tensor_info **by_name; /* n_tensors entries sorted by name, for lookup */
    rs_mapping map;
} rs_safetensors;

/* Opens and validates a file. On failure *st is left closed (safe to close again). */
rs_status rs_safetensors_open(rs_safetensors *st, const char *path, rs_error *err);
/* Parses an image in caller-owned memory (must outlive *st). */
rs_status rs_safetensors_open_memory(rs_safetensors *st, const void *data, size_t size,
                                     rs_error *err);
void rs_safetensors_close(rs_safetensors *st);

/* Tensor (stored or alias) by name; NULL if absent. */
const rs_tensor_info *rs_safetensors_find(const rs_safetensors *st, const char *name);
/* True when tensors[i] is an alias of another tensor (i >= n_stored). */
static inline bool rs_safetensors_is_alias(const rs_safetensors *st, uint64_t i) {
    return i >= st->n_stored && i < st->n_tensors;
}

/* safetensors spelling of a type ("F32", "BF16", "BOOL"), NULL if it has none. */
const char *rs_safetensors_dtype_name(rs_dtype t);
/* Bytes per element of a type safetensors can hold, 0 otherwise. */
size_t rs_safetensors_dtype_size(rs_dtype t);

/* Writes a conforming file: header JSON (metadata first when it has entries, then
 * the tensors in the given order with consecutive offsets), padded with spaces to
 * a multiple of 8 like the reference writer, then each tensor's bytes from
 * tensors[i].data (tensors[i].offset is ignored). Metadata values must be
 * strings. The file is written to a temporary name in the same folder and renamed
 * over `path` once complete. `metadata` may be NULL. */
rs_status rs_safetensors_write(const char *path, const rs_meta *metadata,
                               const rs_tensor_info *tensors, uint64_t n, rs_error *err);

/* ---- sharded models -------------------------------------------------------
 * A set is one safetensors file, or the shards named by a
 * model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard}}),
 * shown as one tensor list. Every weight_map entry must exist in the shard it
 * names; a tensor stored in two shards, a weight_map key given twice, and a shard
 * name that is empty or holds '/' or ".." are errors. The list holds every tensor
 * of every shard (shards in order of first mention in weight_map, each shard's
 * tensors in its own order), aliases included unless a stored tensor of that name
 * exists in another shard. */
typedef struct rs_safetensors_set {
    rs_safetensors *shards;
    char **shard_names; /* file names relative to the index's folder */
    size_t n_shards;
    rs_meta meta;            /* index "metadata" (strings, numbers, bools), or the single file's */
    rs_tensor_info *tensors; /* copies of the shards' infos (names and data shared) */
    uint32_t *shard_of;      /* shard index of each tensor */
    uint64_t n_tensors;
    const rs_tensor_info **by_name;
    uint64_t file_bytes; /* total size of all shard files */
} rs_safetensors_set;

/* path: a .safetensors file, a .index.json file, or a folder holding
 * model.safetensors.index.json (preferred) or model.safetensors.
 * On failure *set is left closed (safe to close again). */
rs_status rs_safetensors_set_open(rs_safetensors_set *set, const char *path, rs_error *err);
void rs_safetensors_set_close(rs_safetensors_set *set);
const rs_tensor_info *rs_safetensors_set_find(const rs_safetensors_set *set, const char *name);

/* Shared by the reader and the set: sorts `by` (n pointers to infos) by name and
 * reports the first repeated name in *dup (NULL if none). */
void rs_tensor_sort_by_name(const rs_tensor_info **by, uint64_t n, const char **dup);
const rs_tensor_info *rs_tensor_bsearch(const rs_tensor_info *const *by, uint64_t n,
                                        const char *name);

#endif
