/* The op table, generated from ops.def. */
#include "op.h"

#define WEFT_OP(id, nm, ar, fl)                                                \
    [WEFT_OP_##id] = {.name = nm, .arity = ar, .flags = fl,                   \
                      .infer = weft_##id##_infer, .kernel = weft_##id##_kernel, \
                      .view = weft_##id##_view, .vjp = weft_##id##_vjp},
const weft_op_def weft_ops[WEFT_OP_COUNT] = {
#include "ops.def"
};
#undef WEFT_OP

_Static_assert(sizeof weft_ops / sizeof weft_ops[0] == WEFT_OP_COUNT,
               "ops.def and the op table disagree");

weft_status weft_ops_check(void) {
    for (int i = 0; i < WEFT_OP_COUNT; i++) {
        const weft_op_def *d = &weft_ops[i];
        if (!d->name || !d->infer || !d->kernel)
            return weft_error(WEFT_ERR_GRAPH, "op %d is missing its shape rule or kernel", i);
        if (!(d->flags & WEFT_OPF_NONDIFF) && !d->vjp)
            return weft_error(WEFT_ERR_GRAPH, "op '%s' is differentiable but has no VJP rule", d->name);
        if ((d->flags & WEFT_OPF_VIEW) && !d->view)
            return weft_error(WEFT_ERR_GRAPH, "op '%s' is a view op without a view rule", d->name);
    }
    return WEFT_OK;
}

int64_t weft_op_rows(const weft_graph *g, int i, uint32_t *whole) {
    const weft_node_rec *r = &g->nodes[i];
    *whole = 0;
    if (r->kind != WEFT_NODE_OP || !(weft_ops[r->op].flags & WEFT_OPF_ROWS) || r->shape.ndim != 2 ||
        r->n_in > WEFT_OP_ROWS_MAX_INPUTS)
        return 0;
    if (weft_op_is_product(r->op) && r->attr.i[0]) return 0; /* A^T: output row r is a column of A */
    if (r->op == WEFT_OP_concat && r->attr.i[0] != 1) return 0; /* side by side only */
    if (r->op == WEFT_OP_fused && (r->attr.shape.ndim != 2 || r->attr.shape.dim[0] != r->shape.dim[0])) return 0;
    const int64_t M = r->shape.dim[0];
    for (int k = 0; k < r->n_in; k++) {
        const weft_node_rec *x = &g->nodes[g->edges[r->in_off + k]];
        int sliced = x->shape.ndim == 2 && x->shape.dim[0] == M && !(weft_op_is_product(r->op) && k == 1);
        if (!sliced) {
            /* read whole: a product's right operand, or broadcast along the rows */
            if (!weft_op_is_product(r->op) && x->shape.ndim == 2 && x->shape.dim[0] != 1) return 0;
            *whole |= 1u << k;
        }
    }
    return M;
}
