/* The time-batched GEMMs of rows 1, 3 and 5 of the table, as weft
 * calls them (shapes, transposes, strides), on three engines in turn:
 * BLIS (what weft ran before the thirteenth session and runs without
 * AVX-512), oneDNN's own sgemm (what its fused RNN primitive runs), and
 * weft's matmul (its own driver for large f32 products with AVX-512,
 * ops/matmul.c "Large f32 products"), run as a one-node compiled graph on
 * slices of wider inputs, as the executor hands it the operands.  Built as
 * build/bench_onednn_gemm when Debian's libdnnl-dev is found.
 *
 *     build/bench_onednn_gemm [WORD]     (2 threads for all three; WORD:
 *                                         only the products whose name has it)
 *
 * docs/performance.md, "Twelfth session" and "Thirteenth session". */
#include <blis.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/compile.h"
#include "weft/weft.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* weft's matmul of op(A) [m, k] and op(B) [k, n], A held as rows of lda
 * (ta: [k, lda]) and B as rows of ldb (tb: [n, ldb]), compiled and fed. */
static weft_exec *weft_product(long m, long n, long k, int ta, int tb, long lda, long ldb, const float *A,
                               const float *B, weft_node *y) {
    weft_graph *g = weft_graph_new();
    weft_node a = weft_input(g, "a", WEFT_F32, ta ? WEFT_SHAPE(k, lda) : WEFT_SHAPE(m, lda));
    weft_node b = weft_input(g, "b", WEFT_F32, tb ? WEFT_SHAPE(n, ldb) : WEFT_SHAPE(k, ldb));
    *y = weft_matmul(g, weft_slice(g, a, 1, 0, ta ? m : k), weft_slice(g, b, 1, 0, tb ? k : n), ta, tb);
    weft_exec *e = weft_exec_compile(g, y, 1, NULL);
    if (!e || weft_exec_feed(e, a, A, (size_t)((ta ? k : m) * lda) * sizeof(float)) ||
        weft_exec_feed(e, b, B, (size_t)((tb ? n : k) * ldb) * sizeof(float))) {
        fprintf(stderr, "bench_onednn_gemm: weft: %s\n", weft_last_error());
        exit(1);
    }
    weft_graph_free(g);
    return e;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    weft_set_threads(2);
    /* weft's three large products of a step, rows 3, 1 and 5: the input
     * projection x W_ih^T, the input gradient dG W_ih (dG read with the
     * stride of the [T*B, 5H] gradient stack) and the merged weight
     * gradient dG^T [x | h | 1] */
    struct {
        const char *name;
        long m, n, k;
        int ta, tb;
        long lda, ldb;
    } s[] = {{"row 3 x W_ih^T  6400x1024 k256 ", 6400, 1024, 256, 0, 1, 256, 256},
             {"row 3 dx        6400x256 k1024 ", 6400, 256, 1024, 0, 0, 1280, 256},
             {"row 3 wgrad     1024x513 k6400 ", 1024, 513, 6400, 1, 0, 1280, 513},
             {"row 1 x W_ih^T  4000x512 k128  ", 4000, 512, 128, 0, 1, 128, 128},
             {"row 1 dx        4000x128 k512  ", 4000, 128, 512, 0, 0, 640, 128},
             {"row 1 wgrad     512x257 k4000  ", 512, 257, 4000, 1, 0, 640, 257},
             {"row 5 x W_ih^T  800x2048 k512  ", 800, 2048, 512, 0, 1, 512, 512},
             {"row 5 dx        800x512 k2048  ", 800, 512, 2048, 0, 0, 2560, 512},
             {"row 5 wgrad     2048x1025 k800 ", 2048, 1025, 800, 1, 0, 2560, 1025}};
    const long big = 6400L * 1280; /* the largest operand or product in the table, in elements */
    float *A = malloc(4 * big), *B = malloc(4 * big), *C = malloc(4 * big), *C2 = malloc(4 * big);
    if (!A || !B || !C || !C2) {
        fprintf(stderr, "bench_onednn_gemm: out of memory\n");
        return 1;
    }
    for (long i = 0; i < big; i++) A[i] = (float)(i % 7) * 0.1f - 0.3f, B[i] = (float)(i % 5) * 0.1f - 0.2f;
    printf("GFLOP/s, best and median of 11 alternating calls, 2 threads\n");
    printf("%-32s %15s %15s %15s | %s\n", "product", "BLIS", "oneDNN", "weft", "median / BLIS's: oneDNN, weft");
    for (size_t q = 0; q < sizeof s / sizeof *s; q++) {
        if (argc > 1 && !strstr(s[q].name, argv[1])) continue;
        const long m = s[q].m, n = s[q].n, k = s[q].k;
        double tb[11], td[11], tw[11], worst = 0;
        rntm_t rntm = BLIS_RNTM_INITIALIZER;
        bli_rntm_set_num_threads(2, &rntm);
        bli_rntm_set_l3_sup(FALSE, &rntm); /* as weft called it */
        float one = 1, zero = 0;
        weft_node y;
        weft_exec *e = weft_product(m, n, k, s[q].ta, s[q].tb, s[q].lda, s[q].ldb, A, B, &y);
        for (int r = 0; r < 11; r++) {
            double t = now();
            bli_sgemm_ex(s[q].ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s[q].tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n,
                         k, &one, A, s[q].lda, 1, B, s[q].ldb, 1, &zero, C, n, 1, NULL, &rntm);
            tb[r] = now() - t;
            t = now();
            dnnl_sgemm(s[q].ta ? 'T' : 'N', s[q].tb ? 'T' : 'N', m, n, k, 1.0f, A, s[q].lda, B, s[q].ldb, 0.0f, C2, n);
            td[r] = now() - t;
            t = now();
            if (weft_exec_run(e)) {
                fprintf(stderr, "bench_onednn_gemm: weft: %s\n", weft_last_error());
                return 1;
            }
            tw[r] = now() - t;
        }
        if (weft_exec_read(e, y, C2, (size_t)(m * n) * sizeof(float))) {
            fprintf(stderr, "bench_onednn_gemm: weft: %s\n", weft_last_error());
            return 1;
        }
        weft_exec_free(e);
        for (long i = 0; i < m * n; i++) {
            const double d = fabs((double)C[i] - (double)C2[i]) / (1.0 + fabs((double)C[i]));
            if (d > worst) worst = d;
        }
        qsort(tb, 11, sizeof *tb, cmp);
        qsort(td, 11, sizeof *td, cmp);
        qsort(tw, 11, sizeof *tw, cmp);
        const double f = 2.0 * (double)m * (double)n * (double)k / 1e9;
        printf("%-32s %6.1f / %6.1f %6.1f / %6.1f %6.1f / %6.1f | %.3f %.3f  (weft vs BLIS: %.1e)\n", s[q].name,
               f / tb[0], f / tb[5], f / td[0], f / td[5], f / tw[0], f / tw[5], tb[5] / td[5], tb[5] / tw[5], worst);
        if (worst > 1e-5) {
            fprintf(stderr, "bench_onednn_gemm: weft's product differs from BLIS's by %.1e\n", worst);
            return 1;
        }
    }
    return 0;
}
