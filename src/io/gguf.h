/* gguf.h — GGUF reader (versions 1, 2, 3) and writer (version 3).
 *
 * The reader treats the file as hostile: every count, length, dimension,
 * type id, offset and alignment is validated before use, and a failure gives
 * one rs_error line naming what is wrong and where (key or tensor name, byte
 * offset). Tensor data is never copied: rs_tensor_info.data points into the
 * read-only mapping. */
#ifndef RUSTY_GGUF_H
#define RUSTY_GGUF_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "io/mapping.h"
#include "io/meta.h"
#include "io/tensor_info.h"

#define RS_GGUF_MAGIC             "GGUF"
#define RS_GGUF_DEFAULT_ALIGNMENT 32
/* Deepest nesting of arrays of arrays the reader accepts (a top-level array is depth 1). */
#define RS_GGUF_MAX_ARRAY_DEPTH 8

typedef struct rs_gguf {
    uint32_t version;
    rs_meta meta;            /* every key/value, in file order */
    rs_tensor_info *tensors; /* n_tensors entries, in file order (allocated in meta.arena) */
    uint64_t n_tensors;
    uint64_t alignment;   /* general.alignment or 32 */
    uint64_t data_offset; /* absolute file offset of the data section */
    rs_mapping map;
    /* private: open-addressing hash of tensor names (slot = index + 1, 0 = empty),
     * in meta.arena; used by rs_gguf_find_tensor */
    uint64_t *name_slots;
    uint64_t name_mask;
} rs_gguf;

/* Opens and validates a GGUF file. On failure *g is left closed (safe to close again).
 * Accepted as ggml's gguf.cpp accepts: general.alignment a u32 power of two;
 * dims >= 0 with an element count that fits int64; ne[0] a multiple of the
 * type's block size; tensors packed in file order, each at the previous one's
 * end padded to the alignment (so no overlaps and no holes); every tensor's
 * data inside the file. Stricter than ggml: keys and tensor names must be
 * non-empty and NUL-free, bools 0 or 1, arrays nested at most
 * RS_GGUF_MAX_ARRAY_DEPTH deep. A file without tensors may end before the
 * aligned data offset (llama.cpp's vocab-only files do). */
rs_status rs_gguf_open(rs_gguf *g, const char *path, rs_error *err);
/* Parses a GGUF image in caller-owned memory (must outlive *g). */
rs_status rs_gguf_open_memory(rs_gguf *g, const void *data, size_t size, rs_error *err);
void rs_gguf_close(rs_gguf *g);

/* Tensor by name; NULL if absent. */
const rs_tensor_info *rs_gguf_find_tensor(const rs_gguf *g, const char *name);

/* Streaming writer: header and tensor infos first, then each tensor's bytes in
 * order. Offsets are assigned from the infos' nbytes (their `offset` and `data`
 * fields are ignored) with `general.alignment` from meta, or 32. Always writes
 * version 3, into "<path>.tmp" until close. Everything is validated at open
 * (RS_ERR_ARG names the bad key or tensor): key values must fit their type,
 * tensor names must be unique and shorter than 64 bytes (ggml's limit), and each
 * nbytes must match its type and shape. */
typedef struct rs_gguf_writer rs_gguf_writer;

rs_status rs_gguf_writer_open(rs_gguf_writer **w, const char *path, const rs_meta *meta,
                              const rs_tensor_info *tensors, uint64_t n_tensors, rs_error *err);
/* Writes tensor i's bytes (i must be the next tensor; nbytes must equal its info). */
rs_status rs_gguf_writer_put(rs_gguf_writer *w, uint64_t i, const void *data, uint64_t nbytes,
                             rs_error *err);
/* Finishes the file: flushes, syncs and renames "<path>.tmp" to path; frees w.
 * Fails if a tensor was not written; on any failure the partial file is removed
 * and w is freed as well. */
rs_status rs_gguf_writer_close(rs_gguf_writer *w, rs_error *err);
/* Frees w without finishing (after an error); removes the partial file. */
void rs_gguf_writer_abort(rs_gguf_writer *w);

/* Convenience: writes a whole file, tensor bytes taken from tensors[i].data. */
rs_status rs_gguf_write(const char *path, const rs_meta *meta, const rs_tensor_info *tensors,
                        uint64_t n_tensors, rs_error *err);

#endif
