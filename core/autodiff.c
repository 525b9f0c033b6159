/* Reverse-mode autodiff as a graph transformation: walk the forward graph
 * in reverse topological (= reverse index) order and let each op's VJP rule
 * emit primitives.  The result is an ordinary graph: the same executor runs
 * it, the same dot export draws it, and weft_grad can differentiate it again. */
#include <string.h>

#include "graph_internal.h"
#include "op.h"

static int is_float(weft_dtype t) { return t == WEFT_F32 || t == WEFT_F64; }

weft_status weft_grad(weft_graph *g, weft_node loss, const weft_node *wrt, int n, weft_node *grads) {
    char d[160];
    if (g->status) return weft_error(g->status, "grad: the graph has a build error: %s", g->error);
    if (loss < 0 || loss >= g->n) return weft_error(WEFT_ERR_ARG, "grad: loss %d is not a node", (int)loss);
    const weft_node_rec *L = &g->nodes[loss];
    if (!is_float(L->dtype) || weft_shape_numel(L->shape) != 1)
        return weft_error(WEFT_ERR_SHAPE, "grad: the loss must be a floating scalar, got %s",
                          weft_node_desc(g, loss, d, sizeof d));
    for (int k = 0; k < n; k++) {
        if (wrt[k] < 0 || wrt[k] >= g->n)
            return weft_error(WEFT_ERR_ARG, "grad: wrt[%d] = %d is not a node", k, (int)wrt[k]);
        if (!is_float(g->nodes[wrt[k]].dtype))
            return weft_error(WEFT_ERR_DTYPE, "grad: cannot differentiate with respect to %s (integer)",
                              weft_node_desc(g, wrt[k], d, sizeof d));
    }
    int N = loss + 1; /* nodes after the loss cannot affect it */
    uint8_t *needs = calloc((size_t)N, 1), *reach = calloc((size_t)N, 1);
    weft_node *acc = malloc((size_t)N * sizeof *acc);
    if (!needs || !reach || !acc) {
        free(needs); free(reach); free(acc);
        return weft_error(WEFT_ERR_NOMEM, "grad: out of memory");
    }
    /* needs[i]: i depends on some wrt (through differentiable edges). */
    for (int k = 0; k < n; k++)
        if (wrt[k] < N) needs[wrt[k]] = 1;
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (r->kind != WEFT_NODE_OP || (weft_ops[r->op].flags & WEFT_OPF_NONDIFF)) continue;
        for (int j = 0; j < r->n_in; j++) needs[i] |= needs[g->edges[r->in_off + j]];
    }
    /* reach[i]: the loss depends on i. */
    reach[loss] = 1;
    for (int i = N - 1; i >= 0; i--) {
        const weft_node_rec *r = &g->nodes[i];
        if (!reach[i] || r->kind != WEFT_NODE_OP) continue;
        for (int j = 0; j < r->n_in; j++) reach[g->edges[r->in_off + j]] = 1;
    }
    for (int i = 0; i < N; i++) acc[i] = WEFT_NONE;

    g->in_backward = 1;
    g->backward_of = loss;
    weft_site saved_site = g->site;
    g->site = g->nodes[loss].site;
    acc[loss] = weft_ones(g, L->shape, L->dtype);
    weft_status st = WEFT_OK;
    for (int i = N - 1; i >= 0 && st == WEFT_OK; i--) {
        if (acc[i] == WEFT_NONE || !needs[i] || !reach[i] || g->nodes[i].kind != WEFT_NODE_OP) continue;
        const weft_op_def *def = &weft_ops[g->nodes[i].op];
        if (def->flags & WEFT_OPF_NONDIFF) continue;
        int nin = g->nodes[i].n_in;
        weft_node gin_small[8], *gin = nin <= 8 ? gin_small : malloc((size_t)nin * sizeof *gin);
        if (!gin) { st = weft_error(WEFT_ERR_NOMEM, "grad: out of memory"); break; }
        for (int j = 0; j < nin; j++) gin[j] = WEFT_NONE;
        g->backward_of = i;
        g->site = g->nodes[i].site;
        st = def->vjp(g, i, acc[i], gin);
        for (int j = 0; j < nin && st == WEFT_OK; j++) {
            weft_node x = g->edges[g->nodes[i].in_off + j];
            if (gin[j] == WEFT_NONE || !needs[x]) continue;
            acc[x] = acc[x] == WEFT_NONE ? gin[j] : weft_add(g, acc[x], gin[j]);
        }
        if (gin != gin_small) free(gin);
        if (st == WEFT_OK && g->status) st = g->status;
    }
    for (int k = 0; k < n && st == WEFT_OK; k++) {
        weft_node w = wrt[k];
        grads[k] = w < N && acc[w] != WEFT_NONE ? acc[w]
                                                : weft_zeros(g, g->nodes[w].shape, g->nodes[w].dtype);
    }
    g->in_backward = 0;
    g->backward_of = WEFT_NONE;
    g->site = saved_site;
    free(needs); free(reach); free(acc);
    if (st == WEFT_OK && g->status) st = g->status;
    if (st != WEFT_OK) return weft_error(st, "grad: %s", g->error ? g->error : weft_last_error());
    return WEFT_OK;
}
