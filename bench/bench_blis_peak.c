/* BLIS's sgemm speed on this machine, the yardstick for weft bench's
 * GFLOP/s: a large square product (the peak) and the GEMMs of a recurrent
 * training step as weft calls them, on 1 and 2 threads, best of 10.
 *
 *     build/bench_blis_peak
 */
#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* C[m, n] = op(A) op(B), row-major operands (A is [k, m] when ta, B is
 * [n, k] when tb), the best GFLOP/s of 10 calls. */
static double gflops(dim_t m, dim_t n, dim_t k, int ta, int tb) {
    float *A = malloc(sizeof(float) * (size_t)(m * k) + 64), *B = malloc(sizeof(float) * (size_t)(k * n) + 64),
          *C = malloc(sizeof(float) * (size_t)(m * n) + 64);
    for (dim_t i = 0; i < m * k; i++) A[i] = (float)(i % 7) * 0.1f;
    for (dim_t i = 0; i < k * n; i++) B[i] = (float)(i % 5) * 0.1f;
    float one = 1, zero = 0;
    double best = 1e30;
    int reps = 2e8 / (2.0 * m * n * k) + 1;
    for (int r = 0; r < 10; r++) {
        double t = now();
        for (int q = 0; q < reps; q++)
            bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &one,
                      A, ta ? m : k, 1, B, tb ? k : n, 1, &zero, C, n, 1);
        t = (now() - t) / reps;
        if (t < best) best = t;
    }
    free(A);
    free(B);
    free(C);
    return 2.0 * (double)m * (double)n * (double)k / best / 1e9;
}

int main(void) {
    static const struct { const char *what; dim_t m, n, k; int ta, tb; } g[] = {
        {"square 2048 (the peak)", 2048, 2048, 2048, 0, 0},
        {"row 3: h W_hh^T per step", 64, 1024, 256, 0, 1},
        {"row 3: dG W_hh per step", 64, 256, 1024, 0, 0},
        {"row 3: dG^T x, all steps", 1024, 256, 6400, 1, 0},
        {"row 3: [dG^T x | dG^T h]", 1024, 512, 6400, 1, 0},
        {"row 3: [x|h]^T dG", 512, 1024, 6400, 1, 0},
        {"row 3: x W_ih^T, all steps", 6400, 1024, 256, 0, 1},
        {"row 5: h W_hh^T per step", 16, 2048, 512, 0, 1},
        {"row 5: dG W_hh per step", 16, 512, 2048, 0, 0},
        {"row 1: h W_hh^T per step", 50, 512, 128, 0, 1},
        {"row 1: dG^T x, all steps", 512, 128, 4000, 1, 0},
        {"row 1: dG^T [x|h]", 512, 256, 4000, 1, 0},
        {"row 1: [x|h]^T dG", 256, 512, 4000, 1, 0},
        {"row 3: dG^T [x|h]", 1024, 512, 6400, 1, 0},
    };
    printf("%-28s %14s %8s %8s\n", "GEMM", "m x n x k", "1 thr", "2 thr");
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        bli_thread_set_num_threads(1);
        double a = gflops(g[i].m, g[i].n, g[i].k, g[i].ta, g[i].tb);
        bli_thread_set_num_threads(2);
        double b = gflops(g[i].m, g[i].n, g[i].k, g[i].ta, g[i].tb);
        char dims[32];
        snprintf(dims, sizeof dims, "%ldx%ldx%ld", (long)g[i].m, (long)g[i].n, (long)g[i].k);
        printf("%-28s %14s %8.1f %8.1f  GFLOP/s\n", g[i].what, dims, a, b);
    }
    return 0;
}
