/* Elementwise primitives: unary, binary (broadcasting), select and cast.
 * Each op is one line in UNARY_OPS / BINARY_OPS below (its f32 and f64 kernel
 * come from the one expression, via <tgmath.h>), plus its shape rule, its
 * VJP rule and its builder further down. */
#include <math.h>

#include "fastmath.h"
#include "op.h"
#include <tgmath.h> /* after fastmath.h, whose f64 helpers call libm by name */

#include "elementwise_ops.h"

/* Walk the output (contiguous) and up to three broadcast/strided inputs.
 * The rows of the output (all but the last axis) are shared among the
 * OpenMP threads when there is enough work: each thread writes its own rows,
 * so results do not depend on the thread count.  Unit-stride rows take a
 * loop the compiler vectorizes. */
#define EW_LOOP(T, EXPR)                                                       \
    do {                                                                       \
        T *const O = out->data;                                                \
        const T *A = in[0].data, *B = n > 1 ? in[1].data : A, *C = n > 2 ? in[2].data : A; \
        weft_iter4 ia = weft_iter4_of(&in[0], &out->shape);                    \
        weft_iter4 ib = n > 1 ? weft_iter4_of(&in[1], &out->shape) : ia;       \
        weft_iter4 ic = n > 2 ? weft_iter4_of(&in[2], &out->shape) : ia;       \
        weft_iter4 io = weft_iter4_of(out, &out->shape); /* rows may be strided */ \
        const int64_t D = ia.n[3], sa = ia.s[3], sb = ib.s[3], sc = ic.s[3];   \
        const int64_t rows = ia.n[0] * ia.n[1] * ia.n[2];                      \
        WEFT_TEAM(weft_kernel_threads(ctx, rows, rows * D),                    \
        for (int64_t row = rows * team_t / team_n; row < rows * (team_t + 1) / team_n; row++) { \
            const weft_row3 ri = weft_row_index(&ia, row);                     \
            const T *pa = A + weft_row_offset(&ia, ri), *pb = B + weft_row_offset(&ib, ri); \
            const T *pc = C + weft_row_offset(&ic, ri);                        \
            T *o = O + weft_row_offset(&io, ri);                               \
            if (sa == 1 && sb == 1 && sc == 1) {                               \
                _Pragma("omp simd")                                            \
                for (int64_t d = 0; d < D; d++) {                              \
                    T a = pa[d], b = pb[d], c = pc[d];                         \
                    (void)b; (void)c;                                          \
                    o[d] = (EXPR);                                             \
                }                                                              \
            } else if (sa == 1 && sb == 0 && sc <= 1) {                        \
                const T b = pb[0];                                             \
                (void)b;                                                       \
                _Pragma("omp simd")                                            \
                for (int64_t d = 0; d < D; d++) {                              \
                    T a = pa[d], c = pc[d * sc];                               \
                    (void)c;                                                   \
                    o[d] = (EXPR);                                             \
                }                                                              \
            } else {                                                           \
                for (int64_t d = 0; d < D; d++) {                              \
                    T a = pa[d * sa], b = pb[d * sb], c = pc[d * sc];          \
                    (void)b; (void)c;                                          \
                    o[d] = (EXPR);                                             \
                }                                                              \
            }                                                                  \
        });                                                                    \
    } while (0)

#define EW_KERNEL(id, EXPR)                                                    \
    WEFT_KERNEL_CLONES weft_status weft_##id##_kernel(weft_tensor *out, const weft_tensor *in, int n, \
                                   const weft_attr *attr, const weft_kctx *ctx) { \
        const double p = attr->f;                                              \
        (void)p;                                                               \
        if (out->dtype == WEFT_F32) {                                          \
            typedef float T;                                                   \
            EW_LOOP(T, EXPR);                                                  \
        } else {                                                               \
            typedef double T;                                                  \
            EW_LOOP(T, EXPR);                                                  \
        }                                                                      \
        return WEFT_OK;                                                        \
    }
UNARY_OPS(EW_KERNEL)
BINARY_OPS(EW_KERNEL)
EW_KERNEL(pow, POW_EXPR)
EW_KERNEL(select, SELECT_EXPR)
#undef EW_KERNEL

/* cast converts between any two dtypes; it does not fit the one-dtype loop. */
weft_status weft_cast_kernel(weft_tensor *out, const weft_tensor *in, int n,
                             const weft_attr *attr, const weft_kctx *ctx) {
    int64_t N = weft_shape_numel(out->shape);
    weft_tensor src = in[0];
    for (int64_t i = 0; i < N; i++) {
        double v = weft_tensor_get(&src, i);
        switch (out->dtype) {
        case WEFT_F32: ((float *)out->data)[i] = (float)v; break;
        case WEFT_F64: ((double *)out->data)[i] = v; break;
        case WEFT_I32: ((int32_t *)out->data)[i] = (int32_t)v; break;
        }
    }
    return WEFT_OK;
}

/* ------------------------------------------------------------ shape rules */
#define UNARY_INFER(id, EXPR)                                                  \
    weft_status weft_##id##_infer(const weft_graph *g, const weft_node *in, int n, \
                                  weft_attr *attr, weft_shape *shape, weft_dtype *dtype) { \
        return weft_infer_same_float(g, in, n, attr, shape, dtype);            \
    }
#define BINARY_INFER(id, EXPR)                                                 \
    weft_status weft_##id##_infer(const weft_graph *g, const weft_node *in, int n, \
                                  weft_attr *attr, weft_shape *shape, weft_dtype *dtype) { \
        return weft_infer_broadcast(g, in, n, attr, shape, dtype);             \
    }
UNARY_OPS(UNARY_INFER)
UNARY_INFER(pow, _)
BINARY_OPS(BINARY_INFER)
BINARY_INFER(select, _)
#undef UNARY_INFER
#undef BINARY_INFER

weft_status weft_cast_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                            weft_shape *shape, weft_dtype *dtype) {
    if ((unsigned)attr->dtype > WEFT_I32) return weft_error(WEFT_ERR_DTYPE, "unknown target dtype");
    *shape = weft_rec(g, in[0])->shape;
    *dtype = attr->dtype;
    return WEFT_OK;
}

/* -------------------------------------------------------------- VJP rules
 * in[]: the op's inputs; y: its output; gy: the gradient of y.  Gradients
 * of broadcast operands are summed back to the operand's shape. */
#define IN(k) weft_in_of(g, y, k)
#define SHAPE(k) weft_shape_of(g, IN(k))
#define C(v) weft_scalar_like(g, y, (v))

weft_status weft_add_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Read shapes before building: a builder may move the node arena. */
    const weft_shape s0 = SHAPE(0), s1 = SHAPE(1);
    gin[0] = weft_reduce_to(g, gy, s0);
    gin[1] = weft_reduce_to(g, gy, s1);
    return WEFT_OK;
}
weft_status weft_sub_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Read shapes before building: a builder may move the node arena. */
    const weft_shape s0 = SHAPE(0), s1 = SHAPE(1);
    gin[0] = weft_reduce_to(g, gy, s0);
    gin[1] = weft_reduce_to(g, weft_neg(g, gy), s1);
    return WEFT_OK;
}
weft_status weft_mul_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Read shapes before building: a builder may move the node arena. */
    const weft_shape s0 = SHAPE(0), s1 = SHAPE(1);
    gin[0] = weft_reduce_to(g, weft_mul(g, gy, IN(1)), s0);
    gin[1] = weft_reduce_to(g, weft_mul(g, gy, IN(0)), s1);
    return WEFT_OK;
}
weft_status weft_div_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Read shapes before building: a builder may move the node arena. */
    const weft_shape s0 = SHAPE(0), s1 = SHAPE(1);
    /* d(a/b)/db = -a/b^2 = -y/b */
    gin[0] = weft_reduce_to(g, weft_div(g, gy, IN(1)), s0);
    gin[1] = weft_reduce_to(g, weft_neg(g, weft_div(g, weft_mul(g, gy, y), IN(1))), s1);
    return WEFT_OK;
}
weft_status weft_maximum_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Read shapes before building: a builder may move the node arena. */
    const weft_shape s0 = SHAPE(0), s1 = SHAPE(1);
    /* Ties split the gradient evenly, as PyTorch does. */
    weft_node gt = weft_greater(g, IN(0), IN(1)), lt = weft_greater(g, IN(1), IN(0));
    weft_node tie = weft_sub(g, weft_sub(g, C(1), gt), lt);
    weft_node wa = weft_add(g, gt, weft_mul(g, C(0.5), tie));
    gin[0] = weft_reduce_to(g, weft_mul(g, gy, wa), s0);
    gin[1] = weft_reduce_to(g, weft_mul(g, gy, weft_sub(g, C(1), wa)), s1);
    return WEFT_OK;
}
weft_status weft_neg_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_neg(g, gy);
    return WEFT_OK;
}
weft_status weft_exp_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_mul(g, gy, y);
    return WEFT_OK;
}
weft_status weft_log_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_div(g, gy, IN(0));
    return WEFT_OK;
}
weft_status weft_tanh_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_mul(g, gy, weft_sub(g, C(1), weft_mul(g, y, y)));
    return WEFT_OK;
}
weft_status weft_sigmoid_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_mul(g, gy, weft_mul(g, y, weft_sub(g, C(1), y)));
    return WEFT_OK;
}
weft_status weft_relu_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_mul(g, gy, weft_greater(g, IN(0), C(0)));
    return WEFT_OK;
}
weft_status weft_sqrt_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_div(g, gy, weft_mul(g, C(2), y));
    return WEFT_OK;
}
weft_status weft_abs_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    weft_node sign = weft_sub(g, weft_greater(g, IN(0), C(0)), weft_greater(g, C(0), IN(0)));
    gin[0] = weft_mul(g, gy, sign);
    return WEFT_OK;
}
weft_status weft_pow_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    double p = weft_rec(g, y)->attr.f;
    if (p == 0) return WEFT_OK;
    weft_node d = p == 1 ? C(1) : weft_mul(g, C(p), weft_pow(g, IN(0), p - 1));
    gin[0] = weft_mul(g, gy, d);
    return WEFT_OK;
}
weft_status weft_select_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Read shapes before building: a builder may move the node arena. */
    const weft_shape s1 = SHAPE(1), s2 = SHAPE(2);
    weft_node z = C(0);
    gin[1] = weft_reduce_to(g, weft_select(g, IN(0), gy, z), s1);
    gin[2] = weft_reduce_to(g, weft_select(g, IN(0), z, gy), s2);
    return WEFT_OK;
}
weft_status weft_cast_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    weft_dtype t = weft_rec(g, IN(0))->dtype;
    if (t != WEFT_I32) gin[0] = weft_cast(g, gy, t);
    return WEFT_OK;
}
#undef IN
#undef SHAPE
#undef C

/* --------------------------------------------------------------- builders */
#define UNARY_BUILDER(id, EXPR)                                                \
    weft_node weft_##id(weft_graph *g, weft_node x) {                          \
        return weft_graph_add_op(g, WEFT_OP_##id, &x, 1, NULL);                \
    }
#define BINARY_BUILDER(id, EXPR)                                               \
    weft_node weft_##id(weft_graph *g, weft_node a, weft_node b) {             \
        weft_node in[2] = {a, b};                                              \
        return weft_graph_add_op(g, WEFT_OP_##id, in, 2, NULL);                \
    }
UNARY_OPS(UNARY_BUILDER)
BINARY_OPS(BINARY_BUILDER)
#undef UNARY_BUILDER
#undef BINARY_BUILDER

weft_node weft_pow(weft_graph *g, weft_node x, double p) {
    weft_attr a = {.f = p};
    return weft_graph_add_op(g, WEFT_OP_pow, &x, 1, &a);
}

weft_node weft_select(weft_graph *g, weft_node cond, weft_node a, weft_node b) {
    weft_node in[3] = {cond, a, b};
    return weft_graph_add_op(g, WEFT_OP_select, in, 3, NULL);
}

weft_node weft_cast(weft_graph *g, weft_node x, weft_dtype t) {
    weft_attr a = {.dtype = t};
    return weft_graph_add_op(g, WEFT_OP_cast, &x, 1, &a);
}
