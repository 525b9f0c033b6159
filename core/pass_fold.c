/* Constant folding: an op whose inputs are all constants (fills and const
 * leaves) and whose result is small is evaluated now, by the reference
 * kernels, and replaced by a constant. */
#include <string.h>

#include "pass.h"

#define FOLD_MAX_ELEMENTS 4096

static int is_constant(const weft_graph *g, weft_node n) {
    const weft_node_rec *r = &g->nodes[n];
    if (r->kind == WEFT_NODE_CONST) return 1;
    if (r->kind != WEFT_NODE_OP) return 0;
    if (r->op == WEFT_OP_fill) return 1;
    if (r->op == WEFT_OP_dropout_mask) return 0; /* differs per run */
    for (int k = 0; k < r->n_in; k++)
        if (!is_constant(g, g->edges[r->in_off + k])) return 0;
    return r->n_in > 0;
}

weft_status weft_pass_fold(weft_rw *rw) {
    const weft_graph *src = rw->src;
    for (int i = 0; i < src->n; i++) {
        const weft_node_rec *r = &src->nodes[i];
        rw->map[i] = weft_rw_copy(rw, i);
        if (r->kind != WEFT_NODE_OP || r->op == WEFT_OP_fill || (weft_ops[r->op].flags & WEFT_OPF_VIEW) ||
            !rw->live[i] || weft_shape_numel(r->shape) > FOLD_MAX_ELEMENTS || !is_constant(src, i))
            continue;
        /* Evaluate the copy in the destination graph with the reference executor. */
        weft_node m = rw->map[i];
        weft_exec *e = weft_exec_new(rw->dst, &m, 1);
        if (!e) return weft_last_error()[0] ? WEFT_ERR_NOMEM : WEFT_ERR_NOMEM;
        weft_status s = weft_exec_run(e);
        if (s) {
            weft_exec_free(e);
            continue; /* leave it to run time, where the error is reported in context */
        }
        size_t bytes = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf) {
            weft_exec_free(e);
            return weft_error(WEFT_ERR_NOMEM, "fold: out of memory");
        }
        weft_exec_read(e, m, buf, bytes);
        weft_exec_free(e);
        weft_node c;
        if (weft_shape_numel(r->shape) == 1 && r->shape.ndim == 0 && r->dtype != WEFT_I32) {
            double v = r->dtype == WEFT_F32 ? *(float *)buf : *(double *)buf;
            weft_attr a = {.shape = r->shape, .dtype = r->dtype, .f = v};
            c = weft_rw_op(rw, i, WEFT_OP_fill, NULL, 0, &a);
        } else {
            c = weft_const(rw->dst, r->name, r->dtype, r->shape, buf);
        }
        free(buf);
        rw->map[i] = c;
        rw->changes++;
    }
    return WEFT_OK;
}
