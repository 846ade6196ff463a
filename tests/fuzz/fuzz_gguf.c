/* fuzz_gguf.c — libFuzzer target for the GGUF reader.
 *
 * Parses the input as a GGUF image; on success walks every metadata value
 * (nested arrays and string tables included), every tensor info and the first
 * and last byte of every tensor's data, and checks the invariants the reader
 * promises (data inside the image, names unique, sizes consistent), so a bad
 * pointer or length surfaces as an ASan report or an abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/gguf_testlib.h"
#include "io/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_invariants(const rs_gguf *g, const uint8_t *data, size_t size) {
    if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) != 0) abort();
    if (g->data_offset % g->alignment != 0) abort();
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const rs_tensor_info *t = &g->tensors[i];
        if (t->n_dims > RS_MAX_DIMS || !rs_dtype_get((int)t->type)) abort();
        if (t->offset % g->alignment != 0) abort();
        if (t->nbytes > size || (const uint8_t *)t->data < data ||
            (const uint8_t *)t->data + t->nbytes > data + size)
            abort();
        if (i > 0 && t->offset < g->tensors[i - 1].offset + g->tensors[i - 1].nbytes) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_gguf g;
    rs_error err = {0};
    if (rs_gguf_open_memory(&g, data, size, &err) == RS_OK) {
        check_invariants(&g, data, size);
        volatile uint64_t sink = gguf_walk(&g);
        (void)sink;
    } else if (err.msg[0] == '\0' || strchr(err.msg, '\n')) {
        abort(); /* every failure carries one line of explanation */
    }
    rs_gguf_close(&g);
    return 0;
}
