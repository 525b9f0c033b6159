/* Composite ops: built from the primitives with the builder API, so they add
 * no kernels and get their gradients from the primitives' VJP rules. */
#include "op.h"

weft_node weft_scalar_like(weft_graph *g, weft_node x, double v) {
    if (x == WEFT_NONE) return WEFT_NONE;
    weft_dtype t = weft_node_dtype(g, x);
    return weft_fill(g, WEFT_SCALAR_SHAPE, t == WEFT_I32 ? WEFT_F32 : t, v);
}

/* A scalar broadcast: one element stored, a stride-0 view for the rest. */
weft_node weft_zeros(weft_graph *g, weft_shape s, weft_dtype t) {
    return weft_broadcast(g, weft_fill(g, WEFT_SCALAR_SHAPE, t, 0), s);
}
weft_node weft_ones(weft_graph *g, weft_shape s, weft_dtype t) {
    return weft_broadcast(g, weft_fill(g, WEFT_SCALAR_SHAPE, t, 1), s);
}

weft_node weft_square(weft_graph *g, weft_node x) { return weft_mul(g, x, x); }

/* Stable: subtract the (constant) row maximum before exponentiating. */
static weft_node shifted(weft_graph *g, weft_node x, int axis) {
    weft_node m = weft_stop_gradient(g, weft_reduce_max(g, x, &axis, 1, 1));
    return weft_sub(g, x, m);
}

weft_node weft_softmax(weft_graph *g, weft_node x, int axis) {
    weft_node e = weft_exp(g, shifted(g, x, axis));
    return weft_div(g, e, weft_sum(g, e, &axis, 1, 1));
}

weft_node weft_log_softmax(weft_graph *g, weft_node x, int axis) {
    weft_node z = shifted(g, x, axis);
    return weft_sub(g, z, weft_log(g, weft_sum(g, weft_exp(g, z), &axis, 1, 1)));
}

weft_node weft_cross_entropy(weft_graph *g, weft_node logits, weft_node labels) {
    if (logits == WEFT_NONE || labels == WEFT_NONE) return WEFT_NONE;
    weft_shape s = weft_node_shape(g, logits), ls = weft_node_shape(g, labels);
    if (s.ndim != 2 || ls.ndim != 1 || ls.dim[0] != s.dim[0]) {
        char a[96], b[96];
        return weft_graph_fail(g, WEFT_ERR_SHAPE, "cross_entropy: logits %s must be [B, C] and labels %s [B]",
                               weft_shape_str(s, a, sizeof a), weft_shape_str(ls, b, sizeof b));
    }
    weft_node oh = weft_one_hot(g, labels, s.dim[1], weft_node_dtype(g, logits));
    weft_node picked = weft_sum(g, weft_mul(g, oh, weft_log_softmax(g, logits, 1)), NULL, 0, 0);
    return weft_mul(g, picked, weft_scalar_like(g, logits, -1.0 / (double)s.dim[0]));
}

weft_node weft_dropout(weft_graph *g, weft_node x, double p, uint64_t seed) {
    if (x == WEFT_NONE || p == 0) return x;
    return weft_mul(g, x, weft_dropout_mask(g, weft_node_shape(g, x), weft_node_dtype(g, x), p, seed));
}
