/* Constant folding: an op whose inputs are all constants (fills and const
 * leaves) and whose result is small is evaluated now, by the reference
 * kernels, and replaced by a constant. */
#include <string.h>

#include "pass.h"

#define FOLD_MAX_ELEMENTS 4096

/* Is node n's value known now?  One pass in index order: an op is constant
 * when all its inputs are (a dropout mask differs per run). */
static void constness(const weft_graph *g, uint8_t *c) {
    for (int n = 0; n < g->n; n++) {
        const weft_node_rec *r = &g->nodes[n];
        if (r->kind == WEFT_NODE_CONST) c[n] = 1;
        else if (r->kind != WEFT_NODE_OP || r->op == WEFT_OP_dropout_mask) c[n] = 0;
        else if (r->op == WEFT_OP_fill) c[n] = 1;
        else {
            c[n] = r->n_in > 0;
            for (int k = 0; k < r->n_in && c[n]; k++) c[n] = c[g->edges[r->in_off + k]];
        }
    }
}

static int foldable(const weft_graph *g, const uint8_t *live, const uint8_t *known, int i) {
    const weft_node_rec *r = &g->nodes[i];
    return r->kind == WEFT_NODE_OP && r->op != WEFT_OP_fill && !(weft_ops[r->op].flags & WEFT_OPF_VIEW) &&
           live[i] && known[i] && weft_shape_numel(r->shape) <= FOLD_MAX_ELEMENTS;
}

weft_status weft_pass_fold(weft_rw *rw) {
    const weft_graph *src = rw->src;
    uint8_t *known = malloc((size_t)(src->n ? src->n : 1));
    if (!known) return weft_error(WEFT_ERR_NOMEM, "fold: out of memory");
    constness(src, known);
    int any = 0;
    for (int i = 0; i < src->n && !any; i++) any = foldable(src, rw->live, known, i);
    if (!any) {
        free(known);
        rw->unchanged = 1;
        return WEFT_OK;
    }
    for (int i = 0; i < src->n; i++) {
        const weft_node_rec *r = &src->nodes[i];
        rw->map[i] = weft_rw_copy(rw, i);
        if (!foldable(src, rw->live, known, i)) continue;
        /* Evaluate the copy in the destination graph with the reference executor. */
        weft_node m = rw->map[i];
        weft_exec *e = weft_exec_new(rw->dst, &m, 1);
        if (!e) {
            free(known);
            return WEFT_ERR_NOMEM;
        }
        weft_status s = weft_exec_run(e);
        if (s) {
            weft_exec_free(e);
            continue; /* leave it to run time, where the error is reported in context */
        }
        size_t bytes = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf) {
            weft_exec_free(e);
            free(known);
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
    free(known);
    return WEFT_OK;
}
