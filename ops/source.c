/* Ops without inputs: fill (constants by value) and dropout_mask. */
#include "op.h"

static weft_status source_infer(weft_attr *attr, weft_shape *shape, weft_dtype *dtype) {
    char b[96];
    for (int i = 0; i < attr->shape.ndim; i++)
        if (attr->shape.dim[i] <= 0 || attr->shape.ndim > WEFT_MAX_DIMS)
            return weft_error(WEFT_ERR_SHAPE, "invalid shape %s", weft_shape_str(attr->shape, b, sizeof b));
    if (attr->dtype != WEFT_F32 && attr->dtype != WEFT_F64)
        return weft_error(WEFT_ERR_DTYPE, "dtype must be f32 or f64");
    *shape = attr->shape;
    *dtype = attr->dtype;
    return WEFT_OK;
}

/* ---- fill: attr.shape, attr.dtype, value attr.f */
weft_status weft_fill_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                            weft_shape *shape, weft_dtype *dtype) {
    return source_infer(attr, shape, dtype);
}
weft_status weft_fill_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                             const weft_kctx *ctx) {
    int64_t N = weft_shape_numel(out->shape);
    for (int64_t i = 0; i < N; i++) {
        if (out->dtype == WEFT_F32) ((float *)out->data)[i] = (float)attr->f;
        else ((double *)out->data)[i] = attr->f;
    }
    return WEFT_OK;
}
weft_node weft_fill(weft_graph *g, weft_shape s, weft_dtype t, double value) {
    weft_attr a = {.shape = s, .dtype = t, .f = value};
    return weft_graph_add_op(g, WEFT_OP_fill, NULL, 0, &a);
}

/* ---- dropout_mask: attr.f = p, attr.seed
 * Counter-based: element i of run c is a pure function of (seed, c, i), so a
 * run can be replayed exactly from the counter alone (checkpoints), and
 * threads can draw any element independently. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
double weft_counter_uniform(uint64_t seed, uint64_t counter, uint64_t i) {
    uint64_t h = mix64(mix64(mix64(seed) ^ counter) + 0x9e3779b97f4a7c15ull * (i + 1));
    return (double)(h >> 11) * 0x1.0p-53;
}
weft_status weft_dropout_mask_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                    weft_shape *shape, weft_dtype *dtype) {
    if (!(attr->f >= 0 && attr->f < 1)) return weft_error(WEFT_ERR_ARG, "p = %g must be in [0, 1)", attr->f);
    return source_infer(attr, shape, dtype);
}
weft_status weft_dropout_mask_kernel(weft_tensor *out, const weft_tensor *in, int n,
                                     const weft_attr *attr, const weft_kctx *ctx) {
    int64_t N = weft_shape_numel(out->shape);
    double p = attr->f, keep = 1.0 / (1.0 - p);
    for (int64_t i = 0; i < N; i++) {
        double v = weft_counter_uniform(attr->seed, ctx->counter, (uint64_t)i) < p ? 0 : keep;
        if (out->dtype == WEFT_F32) ((float *)out->data)[i] = (float)v;
        else ((double *)out->data)[i] = v;
    }
    return WEFT_OK;
}
weft_node weft_dropout_mask(weft_graph *g, weft_shape s, weft_dtype t, double p, uint64_t seed) {
    weft_attr a = {.shape = s, .dtype = t, .f = p, .seed = seed};
    return weft_graph_add_op(g, WEFT_OP_dropout_mask, NULL, 0, &a);
}
