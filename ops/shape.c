/* Shape ops.  broadcast, reshape (of contiguous data), transpose, slice and
 * stop_gradient are strided views of their input; concat copies. */
#include <string.h>

#include "op.h"

/* Copy a strided view src into a strided view dst of the same shape, rows
 * (runs along the last axis) split among the threads when it is large: a
 * concat of all steps' states is megabytes (one thread under the inter-op
 * workers and in a band: ctx->threads). */
static void copy_strided(const weft_tensor *dst, const weft_tensor *src, const weft_kctx *ctx) {
    const int64_t es = (int64_t)weft_dtype_size(src->dtype);
    const weft_iter4 is = weft_iter4_of(src, &dst->shape), id = weft_iter4_of(dst, &dst->shape);
    const int64_t rows = is.n[0] * is.n[1] * is.n[2], len = is.n[3];
    /* a copy pays for a second thread from 16 times an elementwise kernel's work;
     * without a context (a kernel called directly), one thread */
    const int nt = ctx ? weft_kernel_threads_min(ctx, rows, rows * len, 16 * WEFT_PAR_MIN_ELEMENTS) : 1;
    WEFT_TEAM(nt, for (int64_t row = rows * team_t / team_n; row < rows * (team_t + 1) / team_n; row++) {
        const weft_row3 ri = weft_row_index(&is, row);
        const char *ps = (const char *)src->data + weft_row_offset(&is, ri) * es;
        char *pd = (char *)dst->data + weft_row_offset(&id, ri) * es;
        if (is.s[3] == 1 && id.s[3] == 1)
            memcpy(pd, ps, (size_t)(len * es));
        else
            for (int64_t d = 0; d < len; d++) memcpy(pd + d * id.s[3] * es, ps + d * is.s[3] * es, (size_t)es);
    });
}

/* A view op's kernel: make the view, then copy it out contiguously. */
#define VIEW_KERNEL(id)                                                        \
    weft_status weft_##id##_kernel(weft_tensor *out, const weft_tensor *in, int n, \
                                   const weft_attr *attr, const weft_kctx *ctx) { \
        weft_tensor v;                                                         \
        if (weft_##id##_view(&v, in, attr)) {                                  \
            weft_tensor_copy_to(&v, out->data);                                \
        } else {                                                               \
            weft_tensor_copy_to(&in[0], out->data); /* reshape of strided data */ \
        }                                                                      \
        return WEFT_OK;                                                        \
    }

/* ---------------------------------------------------------------- broadcast */
weft_status weft_broadcast_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                 weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[96];
    const weft_node_rec *x = weft_rec(g, in[0]);
    weft_shape t = attr->shape;
    int off = t.ndim - x->shape.ndim, ok = off >= 0 && t.ndim <= WEFT_MAX_DIMS;
    for (int i = 0; ok && i < x->shape.ndim; i++)
        ok = x->shape.dim[i] == 1 || x->shape.dim[i] == t.dim[i + off];
    for (int i = 0; ok && i < t.ndim; i++) ok = t.dim[i] > 0;
    if (!ok)
        return weft_error(WEFT_ERR_SHAPE, "%s cannot be broadcast to %s",
                          weft_node_desc(g, in[0], a, sizeof a), weft_shape_str(t, b, sizeof b));
    *shape = t;
    *dtype = x->dtype;
    return WEFT_OK;
}
int weft_broadcast_view(weft_tensor *out, const weft_tensor *in, const weft_attr *attr) {
    int off = attr->shape.ndim - in->shape.ndim;
    *out = (weft_tensor){in->data, in->dtype, attr->shape, {0}};
    for (int i = 0; i < in->shape.ndim; i++)
        out->stride[i + off] = in->shape.dim[i] == 1 ? 0 : in->stride[i];
    return 1;
}
VIEW_KERNEL(broadcast)
weft_status weft_broadcast_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_reduce_to(g, gy, weft_rec(g, weft_rec_inputs(g, weft_rec(g, y))[0])->shape);
    return WEFT_OK;
}
weft_node weft_broadcast(weft_graph *g, weft_node x, weft_shape s) {
    if (x != WEFT_NONE && x >= 0 && x < g->n && weft_shape_eq(weft_node_shape(g, x), s)) return x;
    weft_attr a = {.shape = s};
    return weft_graph_add_op(g, WEFT_OP_broadcast, &x, 1, &a);
}

/* ------------------------------------------------------------------ reshape */
weft_status weft_reshape_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                               weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[96];
    const weft_node_rec *x = weft_rec(g, in[0]);
    int ok = attr->shape.ndim >= 0 && attr->shape.ndim <= WEFT_MAX_DIMS;
    for (int i = 0; ok && i < attr->shape.ndim; i++) ok = attr->shape.dim[i] > 0;
    if (!ok || weft_shape_numel(attr->shape) != weft_shape_numel(x->shape))
        return weft_error(WEFT_ERR_SHAPE, "%s cannot be reshaped to %s (element counts differ)",
                          weft_node_desc(g, in[0], a, sizeof a), weft_shape_str(attr->shape, b, sizeof b));
    *shape = attr->shape;
    *dtype = x->dtype;
    return WEFT_OK;
}
int weft_reshape_view(weft_tensor *out, const weft_tensor *in, const weft_attr *attr) {
    if (!weft_tensor_is_contiguous(in)) return 0;
    *out = (weft_tensor){in->data, in->dtype, attr->shape, {0}};
    weft_tensor_contiguous_strides(&out->shape, out->stride);
    return 1;
}
VIEW_KERNEL(reshape)
weft_status weft_reshape_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_reshape(g, gy, weft_rec(g, weft_rec_inputs(g, weft_rec(g, y))[0])->shape);
    return WEFT_OK;
}
weft_node weft_reshape(weft_graph *g, weft_node x, weft_shape s) {
    if (x != WEFT_NONE && x >= 0 && x < g->n && weft_shape_eq(weft_node_shape(g, x), s)) return x;
    weft_attr a = {.shape = s};
    return weft_graph_add_op(g, WEFT_OP_reshape, &x, 1, &a);
}

/* ---------------------------------------------------------------- transpose */
weft_status weft_transpose_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                 weft_shape *shape, weft_dtype *dtype) {
    const weft_node_rec *x = weft_rec(g, in[0]);
    int seen = 0, nd = x->shape.ndim;
    weft_shape s = {nd, {0}};
    for (int i = 0; i < nd; i++) {
        int64_t p = attr->i[i];
        if (p < 0 || p >= nd || (seen >> p & 1))
            return weft_error(WEFT_ERR_ARG, "perm is not a permutation of %d axes", nd);
        seen |= 1 << p;
        s.dim[i] = x->shape.dim[p];
    }
    *shape = s;
    *dtype = x->dtype;
    return WEFT_OK;
}
int weft_transpose_view(weft_tensor *out, const weft_tensor *in, const weft_attr *attr) {
    *out = *in;
    for (int i = 0; i < in->shape.ndim; i++) {
        out->shape.dim[i] = in->shape.dim[attr->i[i]];
        out->stride[i] = in->stride[attr->i[i]];
    }
    return 1;
}
VIEW_KERNEL(transpose)
weft_status weft_transpose_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    const weft_node_rec *r = weft_rec(g, y);
    int inv[WEFT_MAX_DIMS];
    for (int i = 0; i < r->shape.ndim; i++) inv[r->attr.i[i]] = i;
    gin[0] = weft_transpose(g, gy, inv);
    return WEFT_OK;
}
weft_node weft_transpose(weft_graph *g, weft_node x, const int *perm) {
    if (x == WEFT_NONE) return WEFT_NONE;
    if (x < 0 || x >= g->n) return weft_graph_add_op(g, WEFT_OP_transpose, &x, 1, NULL);
    weft_attr a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < weft_node_shape(g, x).ndim; i++) a.i[i] = perm[i];
    return weft_graph_add_op(g, WEFT_OP_transpose, &x, 1, &a);
}

/* -------------------------------------------------------------------- slice
 * attr.i = {axis, start, end} */
weft_status weft_slice_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                             weft_shape *shape, weft_dtype *dtype) {
    char a[160];
    const weft_node_rec *x = weft_rec(g, in[0]);
    int ax = weft_axis((int)attr->i[0], x->shape.ndim);
    if (ax < 0)
        return weft_error(WEFT_ERR_ARG, "axis %lld out of range for %s", (long long)attr->i[0],
                          weft_node_desc(g, in[0], a, sizeof a));
    attr->i[0] = ax;
    if (attr->i[1] < 0 || attr->i[2] <= attr->i[1] || attr->i[2] > x->shape.dim[ax])
        return weft_error(WEFT_ERR_SHAPE, "range %lld:%lld is empty or outside axis %d of %s",
                          (long long)attr->i[1], (long long)attr->i[2], ax,
                          weft_node_desc(g, in[0], a, sizeof a));
    *shape = x->shape;
    shape->dim[ax] = attr->i[2] - attr->i[1];
    *dtype = x->dtype;
    return WEFT_OK;
}
int weft_slice_view(weft_tensor *out, const weft_tensor *in, const weft_attr *attr) {
    int ax = (int)attr->i[0];
    *out = *in;
    out->data = (char *)in->data + attr->i[1] * in->stride[ax] * (int64_t)weft_dtype_size(in->dtype);
    out->shape.dim[ax] = attr->i[2] - attr->i[1];
    return 1;
}
VIEW_KERNEL(slice)
weft_status weft_slice_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    /* The gradient placed back between zeros: concat(0, gy, 0). */
    const weft_node_rec *r = weft_rec(g, y);
    weft_node x = weft_rec_inputs(g, r)[0];
    int ax = (int)r->attr.i[0];
    int64_t start = r->attr.i[1], end = r->attr.i[2];
    weft_shape xs = weft_rec(g, x)->shape;
    weft_dtype t = weft_rec(g, x)->dtype;
    weft_node parts[3];
    int np = 0;
    if (start > 0) {
        weft_shape s = xs;
        s.dim[ax] = start;
        parts[np++] = weft_zeros(g, s, t);
    }
    parts[np++] = gy;
    if (end < xs.dim[ax]) {
        weft_shape s = xs;
        s.dim[ax] = xs.dim[ax] - end;
        parts[np++] = weft_zeros(g, s, t);
    }
    gin[0] = np == 1 ? gy : weft_concat(g, parts, np, ax);
    return WEFT_OK;
}
weft_node weft_slice(weft_graph *g, weft_node x, int axis, int64_t start, int64_t end) {
    weft_attr a = {.i = {axis, start, end}};
    return weft_graph_add_op(g, WEFT_OP_slice, &x, 1, &a);
}

/* ------------------------------------------------------------ stop_gradient */
weft_status weft_stop_gradient_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                     weft_shape *shape, weft_dtype *dtype) {
    *shape = weft_rec(g, in[0])->shape;
    *dtype = weft_rec(g, in[0])->dtype;
    return WEFT_OK;
}
int weft_stop_gradient_view(weft_tensor *out, const weft_tensor *in, const weft_attr *attr) {
    *out = *in;
    return 1;
}
VIEW_KERNEL(stop_gradient)
weft_node weft_stop_gradient(weft_graph *g, weft_node x) {
    return weft_graph_add_op(g, WEFT_OP_stop_gradient, &x, 1, NULL);
}

/* ------------------------------------------------------------------- concat
 * attr.i[0] = axis */
weft_status weft_concat_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                              weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[160];
    const weft_node_rec *x0 = weft_rec(g, in[0]);
    int ax = weft_axis((int)attr->i[0], x0->shape.ndim);
    if (ax < 0)
        return weft_error(WEFT_ERR_ARG, "axis %lld out of range for %s", (long long)attr->i[0],
                          weft_node_desc(g, in[0], a, sizeof a));
    attr->i[0] = ax;
    weft_shape s = x0->shape;
    s.dim[ax] = 0;
    for (int k = 0; k < n; k++) {
        const weft_node_rec *x = weft_rec(g, in[k]);
        int ok = x->dtype == x0->dtype && x->shape.ndim == s.ndim;
        for (int i = 0; ok && i < s.ndim; i++) ok = i == ax || x->shape.dim[i] == s.dim[i];
        if (!ok)
            return weft_error(x->dtype != x0->dtype ? WEFT_ERR_DTYPE : WEFT_ERR_SHAPE,
                              "input %d %s does not match input 0 %s outside axis %d", k,
                              weft_node_desc(g, in[k], b, sizeof b), weft_node_desc(g, in[0], a, sizeof a), ax);
        s.dim[ax] += x->shape.dim[ax];
    }
    *shape = s;
    *dtype = x0->dtype;
    return WEFT_OK;
}
weft_status weft_concat_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                               const weft_kctx *ctx) {
    int ax = (int)attr->i[0];
    weft_tensor o = *out; /* possibly itself a slice of an outer concat */
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        weft_attr sa = {.i = {ax, at, at + in[k].shape.dim[ax]}};
        weft_tensor dst;
        weft_slice_view(&dst, &o, &sa);
        /* The planner may have had the producer write here already. */
        if (dst.data != in[k].data || memcmp(dst.stride, in[k].stride, sizeof dst.stride))
            copy_strided(&dst, &in[k], ctx);
        at += in[k].shape.dim[ax];
    }
    return WEFT_OK;
}
weft_status weft_concat_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    const weft_node_rec *r = weft_rec(g, y);
    int n = r->n_in, ax = (int)r->attr.i[0];
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = weft_rec(g, weft_rec_inputs(g, weft_rec(g, y))[k])->shape.dim[ax];
        gin[k] = weft_slice(g, gy, ax, at, at + len);
        at += len;
    }
    return WEFT_OK;
}
weft_node weft_concat(weft_graph *g, const weft_node *xs, int n, int axis) {
    if (n == 1) return xs[0];
    weft_attr a = {.i = {axis}};
    return weft_graph_add_op(g, WEFT_OP_concat, xs, n, &a);
}

weft_status weft_split(weft_graph *g, weft_node x, int axis, int n, weft_node *out) {
    if (x == WEFT_NONE) {
        for (int i = 0; i < n; i++) out[i] = WEFT_NONE;
        return g->status;
    }
    weft_shape s = weft_node_shape(g, x);
    int ax = weft_axis(axis, s.ndim);
    if (ax < 0 || n <= 0 || s.dim[ax] % n) {
        char b[96];
        for (int i = 0; i < n; i++) out[i] = WEFT_NONE;
        weft_graph_fail(g, WEFT_ERR_SHAPE, "split: axis %d of %s does not split into %d equal parts", axis,
                        weft_shape_str(s, b, sizeof b), n);
        return g->status;
    }
    int64_t len = s.dim[ax] / n;
    for (int i = 0; i < n; i++) out[i] = weft_slice(g, x, ax, i * len, (i + 1) * len);
    return g->status;
}
