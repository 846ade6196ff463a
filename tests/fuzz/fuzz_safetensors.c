/* fuzz_safetensors.c — libFuzzer target for the safetensors reader.
 *
 * Parses the input as a safetensors image; on success checks the invariants the
 * reader promises (every tensor's bytes inside the data buffer, sizes equal to
 * shape x element size, stored tensors tiling the buffer, names unique and
 * findable, aliases sharing a stored tensor's data) and touches the first and
 * last byte of every tensor, so a bad pointer or length surfaces as an ASan
 * report or an abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const rs_safetensors *st, const uint8_t *data, size_t size) {
    const uint8_t *buf = data + st->data_offset, *end = data + size;
    if (st->data_offset + st->data_size != size || st->n_stored > st->n_tensors) abort();
    uint64_t covered = 0;
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        const rs_tensor_info *t = &st->tensors[i];
        size_t es = rs_safetensors_dtype_size(t->type);
        if (es == 0 || t->n_dims > RS_MAX_DIMS) abort();
        uint64_t n = 1;
        for (int d = 0; d < RS_MAX_DIMS; d++) {
            if (t->ne[d] < 0 || ((uint32_t)d >= t->n_dims && t->ne[d] != 1)) abort();
            n *= (uint64_t)t->ne[d];
        }
        if (n * es != t->nbytes) abort();
        const uint8_t *p = t->data;
        if (p < buf || p + t->nbytes > end || p != buf + t->offset) abort();
        if (t->nbytes) sink ^= p[0] ^ p[t->nbytes - 1];
        if (rs_safetensors_find(st, t->name) != t) abort();
        if (i < st->n_stored) {
            covered += t->nbytes;
        } else {
            const rs_value *v = rs_meta_find(&st->meta, t->name);
            if (!v || v->type != RS_V_STR) abort();
            const rs_tensor_info *target = rs_safetensors_find(st, v->str.ptr);
            if (!target || target->data != t->data || target->nbytes != t->nbytes) abort();
        }
    }
    if (covered != st->data_size) abort(); /* tiling: no holes, no overlap */
    for (size_t i = 0; i < st->meta.n; i++)
        if (st->meta.kv[i].value.type != RS_V_STR) abort();
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_safetensors st;
    rs_error err;
    if (rs_safetensors_open_memory(&st, data, size, &err) == RS_OK) {
        check(&st, data, size);
    } else if (err.msg[0] == '\0' || strchr(err.msg, '\n')) {
        abort(); /* every failure is one non-empty line */
    }
    rs_safetensors_close(&st);
    return 0;
}
