/* dot_iq4xs_ref.c — scalar reference dot product of IQ4_XS (256-element
 * super-blocks: IQ4_NL's code book, one 6-bit scale per 32) against Q8_K
 * activations.
 *
 * Per super-block: each sub-block's integer dot of the code-book values with
 * the activation bytes, times its scale ls - 32, summed in int32 (exact: at
 * most 32 * 127 * 127 * 256 < 2^31), then one f32 scaling by d * d_x. ggml's
 * scalar vec_dot_iq4_xs_q8_K scales each sub-block in f32 instead; its SIMD
 * paths, and ours, keep the super-block in integers, so every level here
 * shares one rounding model. Q8_K's bsums are not needed: there is no min. */
#include "backend/cpu/dot_ref.h"
#include "backend/cpu/kernels.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

static float dot_iq4_xs(int64_t n, const void *w, const void *x) {
    static const int8_t values[16] = RS_IQ4NL_VALUES;
    const block_iq4_xs *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        for (int sb = 0; sb < QK_K / 32; sb++) {
            /* bytes 16 sb.. hold element j (low nibble) and 16 + j (high) */
            const uint8_t *qs = a[i].qs + 16 * sb;
            const int8_t *q8 = b[i].qs + 32 * sb;
            int32_t t = 0;
            for (int j = 0; j < 16; j++)
                t += values[qs[j] & 0x0f] * q8[j] + values[qs[j] >> 4] * q8[j + 16];
            sumi += (rs_iq4_xs_scale(&a[i], sb) - 32) * t;
        }
        s += b[i].d * rs_fp16_to_f32(a[i].d) * (float)sumi;
    }
    return s;
}

RS_CPU_REF_TILE(iq4_xs, dot_iq4_xs);
