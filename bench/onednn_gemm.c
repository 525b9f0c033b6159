/* The time-batched GEMMs of rows 1 and 3 of the table, as weft
 * calls them (shapes, transposes, strides), on three engines in turn:
 * BLIS (what weft runs), oneDNN's own sgemm (what its fused RNN primitive
 * runs), and a prototype driver on an AVX-512 register block, kept here as
 * the starting point for a GEMM faster than BLIS's on these shapes
 * (docs/performance.md, "Twelfth session").  Built as build/bench_onednn_gemm
 * when Debian's libdnnl-dev is found.
 *
 *     build/bench_onednn_gemm [KC [MC]]     (2 threads: BLIS_NUM_THREADS=2 is set here)
 *
 * The prototype: C = op(A) op(B), row-major C with unit column stride.
 * Threads split C's rows (each owns whole row blocks, so the sums are the
 * same for any thread count); per KC block of the depth, B is packed into
 * NR-wide panels by all threads, then each thread runs MR x NR register
 * blocks (MR broadcasts and NV vector loads per k, MR * NV accumulators)
 * over its rows.  A is not packed when one of its strides is 1: the block
 * broadcasts straight from it (packing A by gathering cost 10-25% on the
 * dx products).  Not used by weft yet: it beats BLIS by 0-17% and oneDNN's
 * sgemm beats BLIS by 10-30%. */
#include <blis.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MR 12
#define NV 2
#define NR (NV * 16)
#define TGT __attribute__((target("avx512f")))

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* C[R rows, NR columns] (+)= A-block (element (r, k) at a[k*sk + r*sr]) x
 * a packed B panel (kc rows of NR); columns past ncols are not written. */
static inline __attribute__((always_inline)) TGT void block_t(const int R, long kc, const float *a, long sr, long sk,
                                                            const float *pb, int beta1, float *c, long ldc,
                                                            long ncols) {
    __m512 acc[MR][NV];
    _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
        acc[r][v] = _mm512_setzero_ps();
    for (long k = 0; k < kc; k++) {
        __m512 b[NV];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) b[v] = _mm512_load_ps(pb + k * NR + v * 16);
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(a[k * sk + r * sr]);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
        }
    }
    _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) {
        float *cr = c + r * ldc;
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
            const long w = ncols - v * 16;
            const __mmask16 m = w >= 16 ? 0xffff : (w <= 0 ? 0 : (__mmask16)((1u << w) - 1));
            __m512 x = acc[r][v];
            if (beta1) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cr + v * 16), x);
            _mm512_mask_storeu_ps(cr + v * 16, m, x);
        }
    }
}

/* One specialisation per height and A layout: packed (sr 1, sk R), rows of
 * A direct (sk 1) or columns of A direct (sr 1). */
#define BLOCK_CASE(R)                                                                                      \
    case R:                                                                                                \
        if (packed) block_t(R, kc, a, 1, R, pb, beta1, c, ldc, ncols);                                     \
        else if (sk == 1) block_t(R, kc, a, sr, 1, pb, beta1, c, ldc, ncols);                              \
        else block_t(R, kc, a, 1, sk, pb, beta1, c, ldc, ncols);                                           \
        break;
TGT static void block(int R, int packed, long kc, const float *a, long sr, long sk, const float *pb, int beta1,
                      float *c, long ldc, long ncols) {
    switch (R) {
        BLOCK_CASE(1) BLOCK_CASE(2) BLOCK_CASE(3) BLOCK_CASE(4) BLOCK_CASE(5) BLOCK_CASE(6)
        BLOCK_CASE(7) BLOCK_CASE(8) BLOCK_CASE(9) BLOCK_CASE(10) BLOCK_CASE(11) BLOCK_CASE(12)
    }
}

/* B's rows p0..p0+kc (element (k, j) at B[k*bk + j*bj]) into kc x NR
 * panels, zero past column n; thread t of nt packs its share of panels. */
TGT static void pack_b(float *q, const float *B, long bk, long bj, long p0, long kc, long n, int t, int nt) {
    const long np = (n + NR - 1) / NR;
    for (long jp = np * t / nt; jp < np * (t + 1) / nt; jp++) {
        float *d = q + jp * kc * NR;
        const long w = n - jp * NR < NR ? n - jp * NR : NR;
        const float *s = B + p0 * bk + jp * NR * bj;
        if (bj == 1) {
            for (long k = 0; k < kc; k++)
                for (int v = 0; v < NV; v++) {
                    const long u = w - v * 16;
                    const __mmask16 m = u >= 16 ? 0xffff : (u <= 0 ? 0 : (__mmask16)((1u << u) - 1));
                    _mm512_store_ps(d + k * NR + v * 16, _mm512_maskz_loadu_ps(m, s + k * bk + v * 16));
                }
        } else {
            for (long k = 0; k < kc; k++)
                for (long r = 0; r < NR; r++) d[k * NR + r] = r < w ? s[r * bj + k * bk] : 0.0f;
        }
    }
}

/* A's rows i0..i0+mc, depth p0..p0+kc, into kc x MR panels (the last one
 * shorter): only when neither of A's strides is 1. */
static void pack_a(float *q, const float *A, long ai, long ak, long i0, long mc, long p0, long kc) {
    for (long ir = 0; ir < mc; ir += MR) {
        const long R = mc - ir < MR ? mc - ir : MR;
        for (long r = 0; r < R; r++)
            for (long k = 0; k < kc; k++) q[ir * kc + k * R + r] = A[(i0 + ir + r) * ai + (p0 + k) * ak];
    }
}

static long KC = 256, MC = 192;

/* C[M, N] (row stride ldc) = op(A) op(B); A's element (i, k) at A[i*ai + k*ak], B's (k, j) at B[k*bk + j*bj]. */
static void proto_gemm(long M, long N, long K, const float *A, long ai, long ak, const float *B, long bk, long bj,
                       float *C, long ldc, float *pbuf, float **abuf) {
    const int packed = ai != 1 && ak != 1;
#pragma omp parallel num_threads(2)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const long nblk = (M + MR - 1) / MR;
        const long i0 = nblk * t / nt * MR, i1 = nblk * (t + 1) / nt * MR < M ? nblk * (t + 1) / nt * MR : M;
        for (long pc = 0; pc < K; pc += KC) {
            const long kc = K - pc < KC ? K - pc : KC;
            pack_b(pbuf, B, bk, bj, pc, kc, N, t, nt);
#pragma omp barrier
            for (long ic = i0; ic < i1; ic += MC) {
                const long mc = i1 - ic < MC ? i1 - ic : MC;
                if (packed) pack_a(abuf[t], A, ai, ak, ic, mc, pc, kc);
                for (long jp = 0; jp < (N + NR - 1) / NR; jp++)
                    for (long ir = 0; ir < mc; ir += MR) {
                        const int R = mc - ir < MR ? (int)(mc - ir) : MR;
                        const float *a = packed ? abuf[t] + ir * kc : A + (ic + ir) * ai + pc * ak;
                        block(R, packed, kc, a, ai, ak, pbuf + jp * kc * NR, pc > 0, C + (ic + ir) * ldc + jp * NR, ldc,
                              N - jp * NR);
                    }
            }
#pragma omp barrier
        }
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc > 1) KC = atol(argv[1]);
    if (argc > 2) MC = atol(argv[2]);
    if (KC < 1 || MC < MR) {
        fprintf(stderr, "usage: bench_onednn_gemm [KC >= 1 [MC >= %d]]\n", MR);
        return 2;
    }
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "bench_onednn_gemm: the prototype needs AVX-512F, which this CPU lacks\n");
        return 1;
    }
    bli_thread_set_num_threads(2);
    /* weft's three large products of a step, rows 3 and 1: the input
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
             {"row 1 wgrad     512x257 k4000  ", 512, 257, 4000, 1, 0, 640, 257}};
    const long big = 6400L * 1280; /* the largest operand or product in the table, in elements */
    long nmax = 0;
    for (size_t q = 0; q < sizeof s / sizeof *s; q++) nmax = s[q].n > nmax ? s[q].n : nmax;
    float *A = aligned_alloc(64, 4 * big), *B = aligned_alloc(64, 4 * big), *C = aligned_alloc(64, 4 * big),
          *C2 = aligned_alloc(64, 4 * big), *pbuf = aligned_alloc(64, 4 * (size_t)(KC * (nmax + NR)));
    float *abuf[2] = {aligned_alloc(64, 4 * (size_t)((MC + MR) * KC)), aligned_alloc(64, 4 * (size_t)((MC + MR) * KC))};
    if (!A || !B || !C || !C2 || !pbuf || !abuf[0] || !abuf[1]) {
        fprintf(stderr, "bench_onednn_gemm: out of memory\n");
        return 1;
    }
    for (long i = 0; i < big; i++) A[i] = (float)(i % 7) * 0.1f - 0.3f, B[i] = (float)(i % 5) * 0.1f - 0.2f;
    printf("GFLOP/s, best and median of 11 alternating calls, 2 threads (KC %ld, MC %ld)\n", KC, MC);
    printf("%-32s %15s %15s %15s | %s\n", "product", "BLIS", "oneDNN", "prototype", "median / BLIS's: oneDNN, prototype");
    for (size_t q = 0; q < sizeof s / sizeof *s; q++) {
        const long m = s[q].m, n = s[q].n, k = s[q].k;
        const long ai = s[q].ta ? 1 : s[q].lda, ak = s[q].ta ? s[q].lda : 1;
        const long bk = s[q].tb ? 1 : s[q].ldb, bj = s[q].tb ? s[q].ldb : 1;
        double tb[11], td[11], tp[11], worst = 0;
        rntm_t rntm = BLIS_RNTM_INITIALIZER;
        bli_rntm_set_num_threads(2, &rntm);
        bli_rntm_set_l3_sup(FALSE, &rntm); /* as weft calls it */
        float one = 1, zero = 0;
        for (int r = 0; r < 11; r++) {
            double t = now();
            bli_sgemm_ex(s[q].ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s[q].tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n,
                         k, &one, A, s[q].lda, 1, B, s[q].ldb, 1, &zero, C, n, 1, NULL, &rntm);
            tb[r] = now() - t;
            t = now();
            dnnl_sgemm(s[q].ta ? 'T' : 'N', s[q].tb ? 'T' : 'N', m, n, k, 1.0f, A, s[q].lda, B, s[q].ldb, 0.0f, C2, n);
            td[r] = now() - t;
            t = now();
            proto_gemm(m, n, k, A, ai, ak, B, bk, bj, C2, n, pbuf, abuf);
            tp[r] = now() - t;
        }
        for (long i = 0; i < m * n; i++) {
            const double d = fabs((double)C[i] - (double)C2[i]) / (1.0 + fabs((double)C[i]));
            if (d > worst) worst = d;
        }
        qsort(tb, 11, sizeof *tb, cmp);
        qsort(td, 11, sizeof *td, cmp);
        qsort(tp, 11, sizeof *tp, cmp);
        const double f = 2.0 * (double)m * (double)n * (double)k / 1e9;
        printf("%-32s %6.1f / %6.1f %6.1f / %6.1f %6.1f / %6.1f | %.3f %.3f  (prototype vs BLIS: %.1e)\n", s[q].name,
               f / tb[0], f / tb[5], f / td[0], f / td[5], f / tp[0], f / tp[5], tb[5] / td[5], tb[5] / tp[5], worst);
        if (worst > 1e-5) {
            fprintf(stderr, "bench_onednn_gemm: the prototype's product differs from BLIS's by %.1e\n", worst);
            return 1;
        }
    }
    return 0;
}
