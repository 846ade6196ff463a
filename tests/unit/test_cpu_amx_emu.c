/* test_cpu_amx_emu.c — the AMX kernels' logic (dot_x16_amx.c) on any AVX-512
 * machine, with the tile instructions emulated in C.
 *
 * test_cpu_matmul checks the AMX level on AMX hardware; this test checks the
 * same source everywhere else: the file is compiled here with _tile_loadconfig,
 * _tile_loadd, _tile_stored, _tile_zero, _tile_dpbsud and _tile_release
 * replaced by a software model of their documented semantics (palette 1,
 * rows x colsb tiles, TDPBSUD = signed A bytes times unsigned B bytes summed
 * in groups of 4 into int32). The emulated kernels must match the AVX-512
 * kernels bit for bit (same integer sums, same f32 operations in the same
 * order) for every tile shape: full 16-token tiles, narrower ones (which the
 * AMX entry hands to the AVX-512 kernel), partial groups, 1..odd block counts
 * (the software pipeline's edges), and write exactly the nr x nc outputs. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EMU_OK 1
#endif

#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/packed.h"
#include "core/cpu.h"
#include "dtype/fp16.h"

#ifdef EMU_OK
/* only the kernel source is compiled for AVX-512 (the test itself must run,
 * and skip, anywhere) */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi2")
#include <immintrin.h>

/* ---- the tile model -------------------------------------------------------- */
typedef struct {
    int rows, colsb;
    uint8_t d[16][64];
} emu_tile;

static emu_tile g_tiles[8];
static int g_configured, g_emu_fail;

static void emu_config(const void *cfg) {
    const uint8_t *c = cfg;
    if (c[0] != 1) g_emu_fail++;
    for (int i = 0; i < 8; i++) {
        uint16_t colsb;
        memcpy(&colsb, c + 16 + 2 * i, 2);
        g_tiles[i].colsb = colsb;
        g_tiles[i].rows = c[48 + i];
        if (colsb > 64 || c[48 + i] > 16) g_emu_fail++;
    }
    g_configured = 1;
}

static void emu_load(int t, const void *base, long stride) {
    if (!g_configured) g_emu_fail++;
    for (int r = 0; r < g_tiles[t].rows; r++)
        memcpy(g_tiles[t].d[r], (const uint8_t *)base + r * stride, (size_t)g_tiles[t].colsb);
}

static void emu_store(int t, void *base, long stride) {
    if (!g_configured) g_emu_fail++;
    for (int r = 0; r < g_tiles[t].rows; r++)
        memcpy((uint8_t *)base + r * stride, g_tiles[t].d[r], (size_t)g_tiles[t].colsb);
}

static void emu_zero(int t) {
    memset(g_tiles[t].d, 0, sizeof g_tiles[t].d);
}

static void emu_dpbsud(int c, int a, int b) {
    emu_tile *C = &g_tiles[c], *A = &g_tiles[a], *B = &g_tiles[b];
    if (C->rows != A->rows || C->colsb != B->colsb || A->colsb != 4 * B->rows) g_emu_fail++;
    for (int m = 0; m < C->rows; m++)
        for (int n = 0; n < C->colsb / 4; n++) {
            int32_t acc;
            memcpy(&acc, &C->d[m][4 * n], 4);
            for (int k = 0; k < A->colsb / 4; k++)
                for (int i = 0; i < 4; i++)
                    acc += (int8_t)A->d[m][4 * k + i] * (int32_t)B->d[k][4 * n + i];
            memcpy(&C->d[m][4 * n], &acc, 4);
        }
}

#undef _tile_loadconfig
#undef _tile_release
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbsud
#define _tile_loadconfig(c)           emu_config(c)
#define _tile_release()               (g_configured = 0)
#define _tile_loadd(t, base, stride)  emu_load(t, base, (long)(stride))
#define _tile_stored(t, base, stride) emu_store(t, base, (long)(stride))
#define _tile_zero(t)                 emu_zero(t)
#define _tile_dpbsud(c, a, b)         emu_dpbsud(c, a, b)

/* the kernels under test, under names of their own */
#define rs_cpu_kernel_q8_0_x16_amx   emu_kernel_q8_0_x16_amx
#define rs_cpu_kernel_q4_0_x16_amx   emu_kernel_q4_0_x16_amx
#define rs_cpu_kernel_iq4_nl_x16_amx emu_kernel_iq4_nl_x16_amx
#define rs_cpu_kernel_q4_K_x16_amx   emu_kernel_q4_K_x16_amx
#include "../../src/backend/cpu/dot_x16_amx.c"
#pragma GCC pop_options

/* ---- the test -------------------------------------------------------------- */

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

enum { YS = 17 }; /* output row stride: one poisoned column past 16 rows */

static int g_fail;

/* The packed types, and each one's emulated AMX, AVX-512 and scalar kernels. */
enum { N_TYPES = 4 };
static const rs_dtype types[N_TYPES] = {RS_DTYPE_Q8_0, RS_DTYPE_Q4_0, RS_DTYPE_IQ4_NL,
                                        RS_DTYPE_Q4_K};
static const rs_cpu_kernel *const k_amx[N_TYPES] = {
    &emu_kernel_q8_0_x16_amx, &emu_kernel_q4_0_x16_amx, &emu_kernel_iq4_nl_x16_amx,
    &emu_kernel_q4_K_x16_amx};
static const rs_cpu_kernel *const k_vnni[N_TYPES] = {
    &rs_cpu_kernel_q8_0_x16_avx512, &rs_cpu_kernel_q4_0_x16_avx512,
    &rs_cpu_kernel_iq4_nl_x16_avx512, &rs_cpu_kernel_q4_K_x16_avx512};
static const rs_cpu_kernel *const k_ref[N_TYPES] = {
    &rs_cpu_kernel_q8_0_x16_ref, &rs_cpu_kernel_q4_0_x16_ref, &rs_cpu_kernel_iq4_nl_x16_ref,
    &rs_cpu_kernel_q4_K_x16_ref};

static void check_shape(int ti, int nb, int nr, const uint8_t *p, const uint8_t *x, size_t xs) {
    const rs_cpu_kernel *amx = k_amx[ti], *vnni = k_vnni[ti], *ref = k_ref[ti];
    int64_t n = 32 * (int64_t)nb;
    size_t gs = rs_cpu_pack_group_bytes(types[ti], n);
    static const int ncs[5] = {1, 2, 9, 15, 16};
    for (int ci = 0; ci < 5; ci++) {
        int nc = ncs[ci];
        float ya[16 * YS], yv[16 * YS], yr[16 * YS];
        for (int i = 0; i < 16 * YS; i++) ya[i] = yv[i] = yr[i] = NAN;
        amx->tile(n, p, gs, nr, x, xs, nc, ya, YS);
        for (int c = 0; c < nc; c += vnni->nc)
            vnni->tile(n, p, gs, nr, x + (size_t)c * xs, xs, nc - c < vnni->nc ? nc - c : vnni->nc,
                       yv + (size_t)c * YS, YS);
        ref->tile(n, p, gs, nr, x, xs, nc, yr, YS);
        for (int i = 0; i < 16 * YS; i++) {
            int c = i / YS, r = i % YS;
            bool valid = c < nc && r < nr;
            bool ok = valid ? memcmp(&ya[i], &yv[i], sizeof(float)) == 0 &&
                                  fabsf(ya[i] - yr[i]) <= 1e-4f * (1 + fabsf(yr[i]))
                            : isnan(ya[i]);
            if (!ok && g_fail++ < 10)
                print_error("%s nb %d nr %d nc %d: y[%d][%d] AMX %.9g, AVX-512 %.9g, scalar %.9g\n",
                            rs_dtype_name(types[ti]), nb, nr, nc, c, r, ya[i], yv[i], yr[i]);
        }
    }
}

static void test_amx_emulated(void **state) {
    (void)state;
    if (rs_cpu_simd_level() < RS_SIMD_AVX512) {
        printf("note: no AVX-512 on this CPU, the emulated AMX kernels are not tested\n");
        return;
    }
    static const int nbs[8] = {1, 2, 3, 4, 5, 8, 33, 128};
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int bi = 0; bi < 8; bi++) {
            /* Q4_K: blocks of 256 (8 of 32), so 8, 16, 24, 32, 40, 64, 264, 1024 */
            const bool k4 = types[ti] == RS_DTYPE_Q4_K;
            int nb = k4 ? 8 * nbs[bi] : nbs[bi];
            int64_t n = 32 * (int64_t)nb;
            size_t bb = rs_dtype_get(types[ti])->type_size,
                   row = (size_t)(n / rs_dtype_get(types[ti])->block_size) * bb;
            uint8_t *g = malloc(row * 16);
            assert_non_null(g);
            for (size_t i = 0; i < row * 16; i++) g[i] = (uint8_t)rnd();
            /* scales (Q4_K: d and dmin, positive as its quantizer writes them) */
            for (int64_t blk = 0; blk < 16 * (int64_t)(row / bb); blk++)
                for (int k = 0; k < (k4 ? 2 : 1); k++) {
                    float d = ldexpf(1.0f + (float)(rnd() % 100) / 100.0f, -6);
                    uint16_t h = rs_f32_to_fp16(rnd() & 1 && !k4 ? -d : d);
                    memcpy(g + blk * (int64_t)bb + 2 * k, &h, 2);
                }
            size_t pbytes = rs_cpu_pack_size(types[ti], 16, n);
            uint8_t *p = aligned_alloc(64, pbytes);
            size_t xs = (size_t)nb * sizeof(rs_block_q8_0p) + 64;
            uint8_t *x = aligned_alloc(64, xs * 16);
            float *f = malloc(sizeof(float) * (size_t)n);
            assert_true(p && x && f);
            rs_cpu_pack_groups(types[ti], g, 16, n, p, 0, 1);
            for (int t = 0; t < 16; t++) {
                for (int64_t i = 0; i < n; i++)
                    f[i] =
                        (float)((int)(rnd() % 2001) - 1000) / 500.0f * (i % 37 == 3 ? 9.0f : 1.0f);
                rs_cpu_quant_q8_0p_ref(f, x + (size_t)t * xs, n);
            }
            for (int nr = 1; nr <= 16; nr += 5) check_shape(ti, nb, nr, p, x, xs);
            free(g);
            free(p);
            free(x);
            free(f);
        }
    assert_int_equal(g_emu_fail, 0);
    assert_int_equal(g_fail, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amx_emulated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else
int main(void) {
    printf("SKIP: the AMX emulation test needs GCC on x86-64\n");
    return 77;
}
#endif
