/* Integer-indexed ops: gather (embedding lookup), its VJP scatter_add, and
 * one_hot.  Out-of-range indices are run-time errors naming the position. */
#include <string.h>

#include "op.h"

static weft_status check_index_dtype(const weft_graph *g, weft_node idx) {
    char a[160];
    if (weft_rec(g, idx)->dtype != WEFT_I32)
        return weft_error(WEFT_ERR_DTYPE, "indices %s must be i32", weft_node_desc(g, idx, a, sizeof a));
    return WEFT_OK;
}

/* Read index k of an integer tensor and check it against [0, limit). */
static weft_status index_at(const char *op, const weft_tensor *idx, int64_t k, int64_t limit, int64_t *out) {
    double v = weft_tensor_get(idx, k);
    if (!(v >= 0 && v < (double)limit))
        return weft_error(WEFT_ERR_ARG, "%s: index %lld at position %lld is outside [0, %lld)", op,
                          (long long)v, (long long)k, (long long)limit);
    *out = (int64_t)v;
    return WEFT_OK;
}

/* ---- gather: table [V, D], idx [...] -> [..., D] */
weft_status weft_gather_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                              weft_shape *shape, weft_dtype *dtype) {
    char a[160];
    const weft_node_rec *t = weft_rec(g, in[0]), *ix = weft_rec(g, in[1]);
    weft_status s;
    if ((s = weft_dtype_check_float(g, in[0])) || (s = check_index_dtype(g, in[1]))) return s;
    if (t->shape.ndim != 2)
        return weft_error(WEFT_ERR_SHAPE, "table %s must be 2-D [rows, dim]", weft_node_desc(g, in[0], a, sizeof a));
    if (ix->shape.ndim + 1 > WEFT_MAX_DIMS)
        return weft_error(WEFT_ERR_SHAPE, "indices %s have too many dimensions", weft_node_desc(g, in[1], a, sizeof a));
    *shape = ix->shape;
    shape->dim[shape->ndim++] = t->shape.dim[1];
    *dtype = t->dtype;
    return WEFT_OK;
}
weft_status weft_gather_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                               const weft_kctx *ctx) {
    int64_t V = in[0].shape.dim[0], D = in[0].shape.dim[1], N = weft_shape_numel(in[1].shape);
    size_t es = weft_dtype_size(out->dtype);
    for (int64_t k = 0; k < N; k++) {
        int64_t row = 0;
        weft_status s = index_at("gather", &in[1], k, V, &row);
        if (s) return s;
        weft_tensor src = in[0];
        src.data = (char *)in[0].data + row * in[0].stride[0] * (int64_t)es;
        src.shape = WEFT_SHAPE(D);
        src.stride[0] = in[0].stride[1];
        weft_tensor_copy_to(&src, (char *)out->data + k * D * (int64_t)es);
    }
    return WEFT_OK;
}
weft_status weft_gather_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    const weft_node_rec *r = weft_rec(g, y);
    weft_node table = weft_rec_inputs(g, r)[0], idx = weft_rec_inputs(g, r)[1];
    gin[0] = weft_scatter_add(g, gy, idx, weft_rec(g, table)->shape.dim[0]);
    return WEFT_OK;
}
weft_node weft_gather(weft_graph *g, weft_node table, weft_node idx) {
    weft_node in[2] = {table, idx};
    return weft_graph_add_op(g, WEFT_OP_gather, in, 2, NULL);
}

/* ---- scatter_add: src [..., D], idx [...] -> [rows, D]; attr.i[0] = rows */
weft_status weft_scatter_add_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                   weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[160];
    const weft_node_rec *src = weft_rec(g, in[0]), *ix = weft_rec(g, in[1]);
    weft_status s;
    if ((s = weft_dtype_check_float(g, in[0])) || (s = check_index_dtype(g, in[1]))) return s;
    int ok = src->shape.ndim == ix->shape.ndim + 1 && attr->i[0] > 0;
    for (int i = 0; ok && i < ix->shape.ndim; i++) ok = src->shape.dim[i] == ix->shape.dim[i];
    if (!ok)
        return weft_error(WEFT_ERR_SHAPE, "source %s does not match indices %s plus one trailing axis",
                          weft_node_desc(g, in[0], a, sizeof a), weft_node_desc(g, in[1], b, sizeof b));
    *shape = WEFT_SHAPE(attr->i[0], src->shape.dim[src->shape.ndim - 1]);
    *dtype = src->dtype;
    return WEFT_OK;
}
weft_status weft_scatter_add_kernel(weft_tensor *out, const weft_tensor *in, int n,
                                    const weft_attr *attr, const weft_kctx *ctx) {
    int64_t V = out->shape.dim[0], D = out->shape.dim[1], N = weft_shape_numel(in[1].shape);
    memset(out->data, 0, (size_t)(V * D) * weft_dtype_size(out->dtype));
    for (int64_t k = 0; k < N; k++) {
        int64_t row = 0;
        weft_status s = index_at("scatter_add", &in[1], k, V, &row);
        if (s) return s;
        for (int64_t d = 0; d < D; d++) {
            double v = weft_tensor_get(&in[0], k * D + d);
            if (out->dtype == WEFT_F32) ((float *)out->data)[row * D + d] += (float)v;
            else ((double *)out->data)[row * D + d] += v;
        }
    }
    return WEFT_OK;
}
weft_status weft_scatter_add_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    gin[0] = weft_gather(g, gy, weft_rec_inputs(g, weft_rec(g, y))[1]);
    return WEFT_OK;
}
weft_node weft_scatter_add(weft_graph *g, weft_node src, weft_node idx, int64_t rows) {
    weft_node in[2] = {src, idx};
    weft_attr a = {.i = {rows}};
    return weft_graph_add_op(g, WEFT_OP_scatter_add, in, 2, &a);
}

/* ---- one_hot: labels [...] -> [..., classes]; attr.i[0] = classes */
weft_status weft_one_hot_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                               weft_shape *shape, weft_dtype *dtype) {
    char a[160];
    const weft_node_rec *l = weft_rec(g, in[0]);
    weft_status s = check_index_dtype(g, in[0]);
    if (s) return s;
    if (attr->i[0] <= 0 || l->shape.ndim + 1 > WEFT_MAX_DIMS || attr->dtype == WEFT_I32)
        return weft_error(WEFT_ERR_ARG, "needs classes > 0, a float dtype, and room for one more axis: %s",
                          weft_node_desc(g, in[0], a, sizeof a));
    *shape = l->shape;
    shape->dim[shape->ndim++] = attr->i[0];
    *dtype = attr->dtype;
    return WEFT_OK;
}
weft_status weft_one_hot_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                                const weft_kctx *ctx) {
    int64_t C = attr->i[0], N = weft_shape_numel(in[0].shape);
    memset(out->data, 0, (size_t)(N * C) * weft_dtype_size(out->dtype));
    for (int64_t k = 0; k < N; k++) {
        int64_t c = 0;
        weft_status s = index_at("one_hot", &in[0], k, C, &c);
        if (s) return s;
        if (out->dtype == WEFT_F32) ((float *)out->data)[k * C + c] = 1;
        else ((double *)out->data)[k * C + c] = 1;
    }
    return WEFT_OK;
}
weft_node weft_one_hot(weft_graph *g, weft_node labels, int64_t classes, weft_dtype t) {
    weft_attr a = {.i = {classes}, .dtype = t};
    return weft_graph_add_op(g, WEFT_OP_one_hot, &labels, 1, &a);
}
