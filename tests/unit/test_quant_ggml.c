/* test_quant_ggml.c — our quantizers and dequantizers against ggml's, bit for bit.
 *
 * tests/data/ggml_quant.txt was written by ggml itself (tests/ref/ggml_quant_ref.c,
 * run by tests/ref/make_llamacpp_ref.py against Debian's libggml): eleven rows of 256
 * floats (uniform, bell-shaped, zero, constant, outliers, one-signed, tiny, huge,
 * scales that differ by sub-block), and for each type the blocks ggml_quantize_chunk
 * makes of them (no importance matrix, as llama-quantize without one) and a hash of
 * what ggml's to_float makes of those blocks. Files from llama.cpp are read with our
 * dequantizers, and files we write are read by llama.cpp: both must agree exactly. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype/dtype.h"

#define N 256

typedef struct ref_input {
    char name[32];
    float x[N];
} ref_input;

/* Checks one "<TYPE> <case> <blocks> <hash>" line; counts what differs. */
static void check_line(char *line, const ref_input *in, int *n_checked, int *n_quant_diff,
                       int *n_deq_diff) {
    char *type = strtok(line, " "), *name = strtok(NULL, " "), *hex = strtok(NULL, " "),
         *hash = strtok(NULL, " \n");
    assert_true(type && name && hex && hash);
    assert_string_equal(name, in->name);
    rs_dtype t;
    assert_true(rs_dtype_from_name(type, &t));
    const rs_dtype_traits *tr = rs_dtype_get(t);
    assert_non_null(tr->to_f32);
    assert_non_null(tr->from_f32);
    unsigned char want[4 * N] = {0}, got[4 * N] = {0};
    size_t bytes;
    assert_true(rs_dtype_row_size(t, N, &bytes));
    assert_int_equal(strlen(hex), 2 * bytes);
    assert_int_equal(tu_parse_hex(hex, want, sizeof want), bytes);

    tr->from_f32(in->x, got, N);
    if (memcmp(got, want, bytes) != 0) {
        size_t b = 0;
        while (b < bytes && got[b] == want[b]) b++;
        printf("  %-7s %-10s quantized bytes differ from ggml's at byte %zu (block %zu)\n", type,
               name, b, b / tr->type_size);
        (*n_quant_diff)++;
    }
    float y[N];
    tr->to_f32(want, y, N);
    char ours[17];
    snprintf(ours, sizeof ours, "%016llx", (unsigned long long)tu_fnv1a64(y, sizeof y));
    if (strcmp(ours, hash) != 0) {
        printf("  %-7s %-10s dequantized floats differ from ggml's\n", type, name);
        (*n_deq_diff)++;
    }
    (*n_checked)++;
}

static void test_against_ggml(void **st) {
    (void)st;
    size_t size;
    char *text = tu_read_file(tu_tests("data/ggml_quant.txt"), &size);
    assert_non_null(text);
    ref_input in = {0};
    int n_checked = 0, n_quant_diff = 0, n_deq_diff = 0, n_inputs = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        if (strncmp(line, "input ", 6) == 0) {
            int used = 0;
            assert_int_equal(sscanf(line + 6, "%31s%n", in.name, &used), 1);
            const char *p = line + 6 + used;
            for (int i = 0; i < N; i++) {
                unsigned bits;
                int adv = 0;
                assert_int_equal(sscanf(p, "%8x%n", &bits, &adv), 1);
                memcpy(&in.x[i], &bits, 4);
                p += adv;
            }
            n_inputs++;
            continue;
        }
        check_line(line, &in, &n_checked, &n_quant_diff, &n_deq_diff);
    }
    free(text);
    printf("  %d rows x types checked over %d inputs: %d quantized differently, %d dequantized "
           "differently\n",
           n_checked, n_inputs, n_quant_diff, n_deq_diff);
    assert_int_equal(n_checked, 11 * 12);
    assert_int_equal(n_deq_diff, 0);
    assert_int_equal(n_quant_diff, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_ggml)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
