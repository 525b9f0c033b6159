/* Batched weight gradients: a sum of matmuls with the same flags,
 *   sum_k op(A_k) op(B_k)  =  [op(A_1) .. op(A_n)] [op(B_1); ..; op(B_n)],
 * becomes one matmul of operands stacked along the contracted axis.  With
 * A_k = dG_t^T and B_k = x_t this is dW = sum_t dG_t^T x_t as one GEMM
 * (the x_t are row windows of the input, so their stack is a view); the same
 * rule merges dh = sum_k dG_k W_k over the gates of a custom cell.  Likewise
 * a sum of row sums, sum_t colsum(dG_t) (the bias gradients), becomes one
 * column sum of the stacked rows. */
#include <string.h>

#include "pass.h"

static int is_op(const weft_graph *g, weft_node n, int op) {
    return g->nodes[n].kind == WEFT_NODE_OP && g->nodes[n].op == op;
}

/* An add whose operands both have its shape (no broadcasting). */
static int plain_add(const weft_graph *g, weft_node n) {
    if (!is_op(g, n, WEFT_OP_add)) return 0;
    weft_shape s = g->nodes[n].shape;
    return weft_shape_eq(weft_shape_of(g, weft_in_of(g, n, 0)), s) &&
           weft_shape_eq(weft_shape_of(g, weft_in_of(g, n, 1)), s);
}

static void leaves(const weft_graph *g, const uint8_t *internal, weft_node n, weft_node *out, int *k) {
    for (int j = 0; j < 2; j++) {
        weft_node c = weft_in_of(g, n, j);
        if (internal[c]) leaves(g, internal, c, out, k);
        else out[(*k)++] = c;
    }
}

/* sum(x, axis 0) of a 2-D x, keepdims off: [R, C] -> [C]. */
static int is_row_sum(const weft_graph *g, weft_node n) {
    return is_op(g, n, WEFT_OP_sum) && g->nodes[n].attr.i[0] == 1 && g->nodes[n].attr.i[1] == 0 &&
           weft_shape_of(g, weft_in_of(g, n, 0)).ndim == 2;
}

/* A leaf in time order: the step it belongs to, then graph order. */
typedef struct { int32_t step; weft_node n; } timed;

static int by_time(const void *pa, const void *pb) {
    const timed *a = pa, *b = pb;
    if (a->step != b->step) return a->step < b->step ? -1 : 1;
    return (a->n > b->n) - (a->n < b->n);
}

static weft_node stack(weft_rw *rw, weft_node like, const weft_node *parts, int n, int axis) {
    if (axis == 0) return weft_rw_concat_rows(rw, like, parts, n);
    weft_attr a = {.i = {axis}};
    return weft_rw_op(rw, like, WEFT_OP_concat, parts, n, &a);
}

weft_status weft_pass_batch_wgrad(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n;
    uint8_t *internal = calloc((size_t)(n ? n : 1), 1);
    weft_node *lv = malloc((size_t)(n ? n : 1) * sizeof *lv), *A = malloc((size_t)(n ? n : 1) * sizeof *A),
              *B = malloc((size_t)(n ? n : 1) * sizeof *B);
    timed *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!internal || !lv || !A || !B || !order) {
        free(internal); free(lv); free(A); free(B); free(order);
        return weft_error(WEFT_ERR_NOMEM, "batch-wgrad: out of memory");
    }
    for (int i = 0; i < n; i++)
        if (rw->live[i] && plain_add(s, i))
            for (int j = 0; j < 2; j++) {
                weft_node c = weft_in_of(s, i, j);
                if (plain_add(s, c) && rw->uses[c] == 1) internal[c] = 1;
            }
    for (int i = 0; i < n; i++) {
        if (!rw->live[i] || internal[i] || !plain_add(s, i)) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        int nl = 0;
        leaves(s, internal, i, lv, &nl);
        /* Stack in time order (the step each term belongs to, then graph
         * order): windows of the input then stack into a view of it, and the
         * stacks of different weights' sums list the steps the same way, so
         * CSE shares them. */
        for (int k = 0; k < nl; k++) order[k] = (timed){s->nodes[lv[k]].site.step, lv[k]};
        qsort(order, (size_t)nl, sizeof *order, by_time); /* a sum over T steps has T leaves */
        for (int k = 0; k < nl; k++) lv[k] = order[k].n;
        weft_node total = WEFT_NONE;
        int merged = 0;
        /* Group the single-use matmul leaves by flags; 4 flag combinations. */
        for (int f = 0; f < 4; f++) {
            int ta = f >> 1, tb = f & 1, m = 0;
            for (int k = 0; k < nl; k++)
                if (lv[k] != WEFT_NONE && is_op(s, lv[k], WEFT_OP_matmul) && rw->uses[lv[k]] == 1 &&
                    s->nodes[lv[k]].attr.i[0] == ta && s->nodes[lv[k]].attr.i[1] == tb)
                    m++;
            if (m < 2) continue;
            m = 0;
            for (int k = 0; k < nl; k++)
                if (lv[k] != WEFT_NONE && is_op(s, lv[k], WEFT_OP_matmul) && rw->uses[lv[k]] == 1 &&
                    s->nodes[lv[k]].attr.i[0] == ta && s->nodes[lv[k]].attr.i[1] == tb) {
                    A[m] = rw->map[weft_in_of(s, lv[k], 0)];
                    B[m++] = rw->map[weft_in_of(s, lv[k], 1)];
                    lv[k] = WEFT_NONE;
                }
            weft_node in[2] = {stack(rw, i, A, m, ta ? 0 : 1), stack(rw, i, B, m, tb ? 1 : 0)};
            weft_attr ma = {.i = {ta, tb}};
            weft_node mm = weft_rw_op(rw, i, WEFT_OP_matmul, in, 2, &ma);
            weft_rw_note(rw, mm, "%d matmuls -> 1 (batch-wgrad)", m);
            total = total == WEFT_NONE ? mm : weft_rw_op(rw, i, WEFT_OP_add, (weft_node[]){total, mm}, 2, NULL);
            merged += m;
        }
        /* Row sums (sum over axis 0, no keepdims) of 2-D leaves. */
        {
            int m = 0;
            for (int k = 0; k < nl; k++)
                if (lv[k] != WEFT_NONE && is_row_sum(s, lv[k]) && rw->uses[lv[k]] == 1) m++;
            if (m >= 2) {
                m = 0;
                for (int k = 0; k < nl; k++)
                    if (lv[k] != WEFT_NONE && is_row_sum(s, lv[k]) && rw->uses[lv[k]] == 1) {
                        A[m++] = rw->map[weft_in_of(s, lv[k], 0)];
                        lv[k] = WEFT_NONE;
                    }
                weft_node stacked = weft_rw_concat_rows(rw, i, A, m);
                weft_attr sa = {.i = {1, 0}};
                weft_node sm = weft_rw_op(rw, i, WEFT_OP_sum, &stacked, 1, &sa);
                weft_rw_note(rw, sm, "%d sums -> 1 (batch-wgrad)", m);
                total = total == WEFT_NONE ? sm : weft_rw_op(rw, i, WEFT_OP_add, (weft_node[]){total, sm}, 2, NULL);
                merged += m;
            }
        }
        if (!merged) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        for (int k = 0; k < nl; k++)
            if (lv[k] != WEFT_NONE) {
                weft_node x = rw->map[lv[k]];
                total = weft_rw_op(rw, i, WEFT_OP_add, (weft_node[]){total, x}, 2, NULL);
            }
        rw->map[i] = total;
        rw->changes += merged;
    }
    free(internal); free(lv); free(A); free(B); free(order);
    return WEFT_OK;
}
