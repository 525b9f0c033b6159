/* Reductions over axes: sum and max; composites mean and reduce_to.
 * attr.i[0]: bit mask of reduced axes; attr.i[1]: keepdims. */
#include <math.h>
#include <string.h>

#include "op.h"

static weft_shape reduced_shape(weft_shape s, int64_t mask, int keep) {
    weft_shape r = {0, {0}};
    for (int i = 0; i < s.ndim; i++) {
        if (mask >> i & 1) {
            if (keep) r.dim[r.ndim++] = 1;
        } else {
            r.dim[r.ndim++] = s.dim[i];
        }
    }
    return r;
}

static weft_status reduce_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                weft_shape *shape, weft_dtype *dtype) {
    const weft_node_rec *x = weft_rec(g, in[0]);
    weft_status s = weft_dtype_check_float(g, in[0]);
    if (s) return s;
    if (attr->i[0] & ~(((int64_t)1 << x->shape.ndim) - 1))
        return weft_error(WEFT_ERR_ARG, "axis out of range for %d dimensions", x->shape.ndim);
    *shape = reduced_shape(x->shape, attr->i[0], (int)attr->i[1]);
    *dtype = x->dtype;
    return WEFT_OK;
}

weft_status weft_sum_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                           weft_shape *shape, weft_dtype *dtype) {
    return reduce_infer(g, in, n, attr, shape, dtype);
}
weft_status weft_reduce_max_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                  weft_shape *shape, weft_dtype *dtype) {
    return reduce_infer(g, in, n, attr, shape, dtype);
}

/* Visit every input element; the output element it reduces into is found
 * through the output's strides with the reduced axes' strides set to 0. */
#define REDUCE_LOOP(T, INIT, ACC)                                              \
    do {                                                                       \
        T *o = out->data;                                                      \
        const T *x = in[0].data;                                               \
        for (int64_t i = 0; i < weft_shape_numel(out->shape); i++) o[i] = (INIT); \
        weft_shape ks = reduced_shape(in[0].shape, attr->i[0], 1);             \
        int64_t kst[WEFT_MAX_DIMS];                                            \
        weft_tensor_contiguous_strides(&ks, kst);                              \
        weft_tensor ov = {out->data, out->dtype, in[0].shape, {0}};            \
        for (int d = 0; d < in[0].shape.ndim; d++)                             \
            ov.stride[d] = (attr->i[0] >> d & 1) ? 0 : kst[d];                 \
        weft_iter4 ix = weft_iter4_of(&in[0], &in[0].shape);                   \
        weft_iter4 io = weft_iter4_of(&ov, &in[0].shape);                      \
        for (int64_t i0 = 0; i0 < ix.n[0]; i0++)                               \
            for (int64_t i1 = 0; i1 < ix.n[1]; i1++)                           \
                for (int64_t i2 = 0; i2 < ix.n[2]; i2++) {                     \
                    const T *px = x + i0 * ix.s[0] + i1 * ix.s[1] + i2 * ix.s[2]; \
                    T *po = o + i0 * io.s[0] + i1 * io.s[1] + i2 * io.s[2];    \
                    for (int64_t d = 0; d < ix.n[3]; d++) {                    \
                        T v = px[d * ix.s[3]], *acc = &po[d * io.s[3]];        \
                        ACC;                                                   \
                    }                                                          \
                }                                                              \
    } while (0)

/* Input whose rows (rs elements apart) are contiguous, reduced over its
 * leading axes (bias gradients: a column sum of stacked rows, which may be
 * the first columns of a wider stack) or its trailing axes (row sums, and a
 * sum of everything): unit-stride loops that vectorize.  Column sums add in
 * the general loop's order, large ones with the columns shared among the
 * threads (each column's order unchanged); row sums in lanes (below). */
#define REDUCE_FAST(T)                                                         \
    do {                                                                       \
        const T *x = in[0].data;                                               \
        T *o = out->data;                                                      \
        if (lead) {                                                            \
            /* columns in groups of 32 or more, from 65536 elements */      \
            WEFT_TEAM(weft_kernel_threads_min(ctx, cols / 32, rows * cols, 65536), { \
                const int t = team_t, nth = team_n;                            \
                const int64_t j0 = cols * t / nth / 16 * 16, j1 = t == nth - 1 ? cols : cols * (t + 1) / nth / 16 * 16; \
                for (int64_t j = j0; j < j1; j++) o[j] = 0;                    \
                for (int64_t r = 0; r < rows; r++) {                           \
                    const T *xr = x + r * rs;                                  \
                    _Pragma("omp simd")                                        \
                    for (int64_t j = j0; j < j1; j++) o[j] += xr[j];           \
                }                                                              \
            });                                                                \
        } else {                                                               \
            for (int64_t r = 0; r < rows; r++) o[r] = sum_lanes_##T(x + r * rs, cols); \
        }                                                                      \
    } while (0)

/* A row sum in LANES independent partial sums (element j goes to lane
 * j % LANES), added pairwise at the end: it vectorizes, it is more accurate
 * than one running sum, and its order depends only on the length, so it is
 * the same for every run and thread count. */
#define LANES 16
#define SUM_LANES(T)                                                           \
    static inline T sum_lanes_##T(const T *x, int64_t n) {                     \
        T acc[LANES] = {0};                                                    \
        int64_t j = 0;                                                         \
        for (; j + LANES <= n; j += LANES)                                     \
            _Pragma("omp simd")                                                \
            for (int l = 0; l < LANES; l++) acc[l] += x[j + l];                \
        for (int l = 0; j < n; j++, l++) acc[l] += x[j];                       \
        for (int w = LANES / 2; w > 0; w /= 2)                                 \
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];                  \
        return acc[0];                                                         \
    }
SUM_LANES(float)
SUM_LANES(double)

WEFT_KERNEL_CLONES weft_status weft_sum_kernel(weft_tensor *out, const weft_tensor *in, int n,
                                               const weft_attr *attr, const weft_kctx *ctx) {
    int nd = in[0].shape.ndim, k = 0;
    int64_t mask = attr->i[0], full = ((int64_t)1 << nd) - 1;
    while (k < nd && (mask >> k & 1)) k++;
    int lead = mask == ((int64_t)1 << k) - 1 && k > 0;               /* axes 0..k-1 */
    int trail = !lead && (mask & full) && ((mask + (mask & -mask)) & full) == 0; /* axes j..nd-1 */
    /* rows rs apart: contiguous, or a 2-D one whose rows are (columns of a
     * wider tensor) */
    int contiguous = weft_tensor_is_contiguous(&in[0]);
    int rows_2d = nd == 2 && in[0].stride[1] == 1 && in[0].shape.dim[1] > 1;
    int first = lead ? k : (mask & full) ? __builtin_ctzll((unsigned long long)mask) : 0;
    if ((lead || trail) && (contiguous || (rows_2d && first == 1))) {
        int64_t rows = 1, cols = 1;
        for (int d = 0; d < nd; d++) {
            if (d < first) rows *= in[0].shape.dim[d];
            else cols *= in[0].shape.dim[d];
        }
        int64_t rs = contiguous ? cols : in[0].stride[0];
        if (lead && cols == 1) { /* everything: one row */
            lead = 0;
            cols = rows;
            rows = 1;
        }
        if (out->dtype == WEFT_F32) REDUCE_FAST(float);
        else REDUCE_FAST(double);
        return WEFT_OK;
    }
    if (out->dtype == WEFT_F32) REDUCE_LOOP(float, 0, *acc += v);
    else REDUCE_LOOP(double, 0, *acc += v);
    return WEFT_OK;
}

weft_status weft_reduce_max_kernel(weft_tensor *out, const weft_tensor *in, int n,
                                   const weft_attr *attr, const weft_kctx *ctx) {
    if (out->dtype == WEFT_F32) REDUCE_LOOP(float, -INFINITY, if (v > *acc || v != v) *acc = v);
    else REDUCE_LOOP(double, -INFINITY, if (v > *acc || v != v) *acc = v);
    return WEFT_OK;
}

/* The gradient broadcast back over the reduced axes. */
static weft_node expand_back(weft_graph *g, weft_node y, weft_node gy) {
    const weft_node_rec *r = weft_rec(g, y);
    weft_shape xs = weft_rec(g, weft_rec_inputs(g, r)[0])->shape;
    weft_node k = weft_reshape(g, gy, reduced_shape(xs, r->attr.i[0], 1));
    return weft_broadcast(g, k, xs);
}

weft_status weft_sum_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = expand_back(g, y, gy);
    return WEFT_OK;
}

weft_status weft_reduce_max_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* Ties share the gradient evenly (PyTorch's amax).  Copy what we need
     * from the record first: building nodes may move the arena. */
    const weft_node_rec *r = weft_rec(g, y);
    weft_node x = weft_rec_inputs(g, r)[0];
    weft_attr a = r->attr;
    weft_node hit = weft_sub(g, weft_scalar_like(g, x, 1), weft_greater(g, expand_back(g, y, y), x));
    weft_node cnt = weft_graph_add_op(g, WEFT_OP_sum, &hit, 1, &a);
    gin[0] = weft_mul(g, expand_back(g, y, gy), weft_div(g, hit, expand_back(g, y, cnt)));
    return WEFT_OK;
}

/* ---- builders */

static int axes_mask(weft_graph *g, weft_node x, const int *axes, int n, int64_t *mask) {
    if (x == WEFT_NONE) return 0;
    int nd = weft_node_shape(g, x).ndim;
    *mask = 0;
    if (n == 0) {
        *mask = ((int64_t)1 << nd) - 1;
        return 1;
    }
    for (int i = 0; i < n; i++) {
        int a = weft_axis(axes[i], nd);
        if (a < 0) {
            weft_graph_fail(g, WEFT_ERR_ARG, "reduce: axis %d out of range for %d dimensions", axes[i], nd);
            return 0;
        }
        *mask |= (int64_t)1 << a;
    }
    return 1;
}

static weft_node reduce(weft_graph *g, int op, weft_node x, const int *axes, int n, int keepdims) {
    weft_attr a;
    memset(&a, 0, sizeof a);
    if (!axes_mask(g, x, axes, n, &a.i[0])) return WEFT_NONE;
    a.i[1] = keepdims != 0;
    return weft_graph_add_op(g, op, &x, 1, &a);
}

weft_node weft_sum(weft_graph *g, weft_node x, const int *axes, int n, int keepdims) {
    return reduce(g, WEFT_OP_sum, x, axes, n, keepdims);
}
weft_node weft_reduce_max(weft_graph *g, weft_node x, const int *axes, int n, int keepdims) {
    return reduce(g, WEFT_OP_reduce_max, x, axes, n, keepdims);
}

weft_node weft_mean(weft_graph *g, weft_node x, const int *axes, int n, int keepdims) {
    int64_t mask;
    if (!axes_mask(g, x, axes, n, &mask)) return WEFT_NONE;
    weft_shape s = weft_node_shape(g, x);
    int64_t count = 1;
    for (int i = 0; i < s.ndim; i++)
        if (mask >> i & 1) count *= s.dim[i];
    return weft_mul(g, weft_sum(g, x, axes, n, keepdims), weft_scalar_like(g, x, 1.0 / (double)count));
}

weft_node weft_reduce_to(weft_graph *g, weft_node x, weft_shape s) {
    if (x == WEFT_NONE) return WEFT_NONE;
    weft_shape xs = weft_node_shape(g, x);
    if (weft_shape_eq(xs, s)) return x;
    int axes[WEFT_MAX_DIMS], n = 0, off = xs.ndim - s.ndim;
    if (off < 0) {
        char a[96], b[96];
        return weft_graph_fail(g, WEFT_ERR_SHAPE, "reduce_to: cannot reduce %s to %s",
                               weft_shape_str(xs, a, sizeof a), weft_shape_str(s, b, sizeof b));
    }
    for (int i = 0; i < xs.ndim; i++)
        if (i < off || (s.dim[i - off] == 1 && xs.dim[i] != 1)) axes[n++] = i;
    weft_node r = n ? weft_sum(g, x, axes, n, 1) : x;
    return weft_reshape(g, r, s);
}
