/* Shape and dtype rules shared by several op families. */
#include "op.h"

weft_status weft_dtype_check_float(const weft_graph *g, weft_node n) {
    char d[160];
    weft_dtype t = weft_rec(g, n)->dtype;
    if (t != WEFT_F32 && t != WEFT_F64)
        return weft_error(WEFT_ERR_DTYPE, "%s must be f32 or f64",
                          weft_node_desc(g, n, d, sizeof d));
    return WEFT_OK;
}

/* One floating input: result has its shape and dtype. */
weft_status weft_infer_same_float(const weft_graph *g, const weft_node *in, int n,
                                  weft_attr *attr, weft_shape *shape, weft_dtype *dtype) {
    const weft_node_rec *r = weft_rec(g, in[0]);
    weft_status s = weft_dtype_check_float(g, in[0]);
    if (s) return s;
    *shape = r->shape;
    *dtype = r->dtype;
    return WEFT_OK;
}

/* n floating inputs of one dtype, broadcast numpy-style. */
weft_status weft_infer_broadcast(const weft_graph *g, const weft_node *in, int n,
                                 weft_attr *attr, weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[160];
    weft_shape s = weft_rec(g, in[0])->shape;
    weft_dtype t = weft_rec(g, in[0])->dtype;
    for (int i = 0; i < n; i++) {
        weft_status st = weft_dtype_check_float(g, in[i]);
        if (st) return st;
        if (weft_rec(g, in[i])->dtype != t)
            return weft_error(WEFT_ERR_DTYPE, "dtypes differ: %s and %s (use weft_cast)",
                              weft_node_desc(g, in[0], a, sizeof a), weft_node_desc(g, in[i], b, sizeof b));
        if (!weft_shape_broadcast(s, weft_rec(g, in[i])->shape, &s))
            return weft_error(WEFT_ERR_SHAPE, "shapes do not broadcast: %s and %s",
                              weft_node_desc(g, in[0], a, sizeof a), weft_node_desc(g, in[i], b, sizeof b));
    }
    *shape = s;
    *dtype = t;
    return WEFT_OK;
}
