/* Vectorizable f32 exp, sigmoid and tanh for the elementwise kernels (libm's
 * scalar expf/tanhf calls keep loops from vectorizing and were a fifth of an
 * LSTM training step).  Range reduction e^x = 2^n e^r, |r| <= ln2/2, and a
 * degree-6 minimax-style polynomial: a few ulp, far inside the f32 parity
 * tolerance.  NaN in, NaN out; saturation as the functions saturate.  f64
 * keeps libm: it is the gradient-checking and parity-to-1e-9 path.
 *
 * Every fused multiply-add is written out (WEFT_FMA) and the files that
 * include this one are compiled with -ffp-contract=off, the generated
 * kernels too (ops/fused_codegen.c): the C compiler then forms no FMA of
 * its own, so the interpreter, the single-op kernels and the compiled
 * kernels round the same way and give the same bits.  (On an x86-64 CPU
 * without FMA, the default clone calls libm's exact fmaf: slow, same bits.) */
#ifndef WEFT_OPS_FASTMATH_H
#define WEFT_OPS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define WEFT_FMA(a, b, c) __builtin_fmaf(a, b, c)

static inline float weft_exp_f32(float x) {
    /* Clamped by a min and a max, one instruction each (vminps / vmaxps):
     * a NaN comes out of the min as 88 (the comparison is false), so the
     * polynomial sees a number, and the last line returns the NaN. */
    const float xm = x < 88.0f ? x : 88.0f;
    const float xc = xm > -87.0f ? xm : -87.0f;
    /* Round to nearest by adding and removing 1.5 * 2^23: branch-free on
     * plain SSE2, where floorf is a library call that stops vectorization. */
    const float n = WEFT_FMA(xc, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
    const float r = WEFT_FMA(n, 2.12194440e-4f, WEFT_FMA(-n, 0.693359375f, xc)); /* ln2 split in two */
    float p = 1.9875691500e-4f;
    p = WEFT_FMA(p, r, 1.3981999507e-3f);
    p = WEFT_FMA(p, r, 8.3334519073e-3f);
    p = WEFT_FMA(p, r, 4.1665795894e-2f);
    p = WEFT_FMA(p, r, 1.6666665459e-1f);
    p = WEFT_FMA(p, r, 5.0000001201e-1f);
    p = WEFT_FMA(p * r, r, r) + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float y = p * scale;
    return x != x ? x : y;
}

static inline float weft_sigmoid_f32(float x) {
    /* 1/(1+e^-x) is exact enough on both sides once e^-x saturates. */
    return 1.0f / (1.0f + weft_exp_f32(-x));
}

static inline float weft_tanh_f32(float x) {
    const float ax = fabsf(x);
    /* Small |x|: odd polynomial (no cancellation); else 1 - 2/(e^{2|x|}+1). */
    const float z = x * x;
    float ps = -5.70498872745e-3f;
    ps = WEFT_FMA(ps, z, 2.06390887954e-2f);
    ps = WEFT_FMA(ps, z, -5.37397155531e-2f);
    ps = WEFT_FMA(ps, z, 1.33314422036e-1f);
    ps = WEFT_FMA(ps, z, -3.33332819422e-1f);
    const float small = WEFT_FMA(x * z, ps, x);
    const float big = 1.0f - 2.0f / (weft_exp_f32(2.0f * ax) + 1.0f);
    const float r = ax < 0.625f ? small : copysignf(big, x); /* big > 0: the same as x < 0 ? -big : big */
    return x != x ? x : r;
}

static inline double weft_sigmoid_f64(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

#define WEFT_SIGMOID(a) _Generic((a), float: weft_sigmoid_f32, double: weft_sigmoid_f64)(a)
#define WEFT_TANH(a) _Generic((a), float: weft_tanh_f32, double: tanh)(a)

#endif
