/* ct_report.h — pass/fail counters and the relative-error report every CUDA
 * test program prints its cases with.
 *
 * Header-only with static state: each test program is one translation unit
 * and includes it once (directly, or through cuda_testlib.h). */
#ifndef RUSTY_TESTS_CUDA_CT_REPORT_H
#define RUSTY_TESTS_CUDA_CT_REPORT_H
#include <math.h>
#include <stddef.h>
#include <stdio.h>

static int n_pass, n_fail;

/* ||y - ref|| / ||ref|| (absolute when ref is 0); infinite if y has a NaN or inf. */
static double rel_err(const float *y, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) return INFINITY;
        double d = (double)y[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void report(const char *name, double err, double tol) {
    int ok = err <= tol;
    printf("%s %-74s err %.2e (tol %.1e)\n", ok ? "ok  " : "FAIL", name, err, tol);
    ok ? n_pass++ : n_fail++;
}

#endif
