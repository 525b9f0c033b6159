/* Reverse-mode autodiff as a graph transformation: walk the forward graph
 * in reverse topological (= reverse index) order and let each op's VJP rule
 * emit primitives.  The result is an ordinary graph: the same executor runs
 * it, the same dot export draws it, and weft_grad can differentiate it again. */
#include <string.h>

#include "graph_internal.h"
#include "op.h"

static int is_float(weft_dtype t) { return t == WEFT_F32 || t == WEFT_F64; }

/* The gradient of x from the gradients acc[] of its slices (listed from
 * piece_head[x]): the pieces in order along the axis, zeros in the gaps. */
static weft_node tile_gradient(weft_graph *g, weft_node x, int axis, const weft_node *piece_head,
                               const weft_node *piece_next, const weft_node *acc) {
    int n = 0;
    for (weft_node c = piece_head[x]; c != WEFT_NONE; c = piece_next[c]) n++;
    weft_node *ps = malloc((size_t)n * sizeof *ps), *parts = malloc((size_t)(2 * n + 1) * sizeof *parts);
    if (!ps || !parts) {
        free(ps); free(parts);
        return weft_graph_fail(g, WEFT_ERR_NOMEM, "grad: out of memory");
    }
    n = 0;
    for (weft_node c = piece_head[x]; c != WEFT_NONE; c = piece_next[c]) ps[n++] = c;
    for (int a = 1; a < n; a++) /* insertion sort by start */
        for (int b = a; b > 0 && g->nodes[ps[b - 1]].attr.i[1] > g->nodes[ps[b]].attr.i[1]; b--) {
            weft_node t = ps[b]; ps[b] = ps[b - 1]; ps[b - 1] = t;
        }
    weft_shape xs = g->nodes[x].shape;
    weft_dtype dt = g->nodes[x].dtype;
    int np = 0;
    int64_t at = 0;
    weft_node sum = WEFT_NONE;
    for (int k = 0; k < n; k++) {
        int64_t start = g->nodes[ps[k]].attr.i[1], end = g->nodes[ps[k]].attr.i[2];
        if (start < at) { /* overlapping slices: fall back to padding this one */
            weft_node gin = WEFT_NONE;
            weft_ops[WEFT_OP_slice].vjp(g, ps[k], acc[ps[k]], &gin);
            sum = sum == WEFT_NONE ? gin : weft_add(g, sum, gin);
            continue;
        }
        if (start > at) {
            weft_shape s = xs;
            s.dim[axis] = start - at;
            parts[np++] = weft_zeros(g, s, dt);
        }
        parts[np++] = acc[ps[k]];
        at = end;
    }
    if (at < xs.dim[axis]) {
        weft_shape s = xs;
        s.dim[axis] = xs.dim[axis] - at;
        parts[np++] = weft_zeros(g, s, dt);
    }
    weft_node cat = weft_concat(g, parts, np, axis);
    free(ps);
    free(parts);
    return sum == WEFT_NONE ? cat : weft_add(g, cat, sum);
}

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
    /* A node read only through slices along one axis (an unrolled sequence
     * read step by step) gets its gradient as one concat of the slices'
     * gradients, instead of a sum of T zero-padded copies: O(T), not O(T^2). */
    int *tile_axis = malloc((size_t)N * sizeof *tile_axis);
    weft_node *piece_next = malloc((size_t)N * sizeof *piece_next), *piece_head = malloc((size_t)N * sizeof *piece_head);
    if (!tile_axis || !piece_next || !piece_head) {
        free(needs); free(reach); free(acc); free(tile_axis); free(piece_next); free(piece_head);
        return weft_error(WEFT_ERR_NOMEM, "grad: out of memory");
    }
    for (int i = 0; i < N; i++) {
        tile_axis[i] = -1; /* -1: unknown yet, -2: not tiled */
        piece_head[i] = piece_next[i] = WEFT_NONE;
    }
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (r->kind != WEFT_NODE_OP || !needs[i] || !reach[i]) continue;
        if (weft_ops[r->op].flags & WEFT_OPF_NONDIFF) continue;
        for (int j = 0; j < r->n_in; j++) {
            weft_node x = g->edges[r->in_off + j];
            int ax = r->op == WEFT_OP_slice ? (int)r->attr.i[0] : -2;
            tile_axis[x] = tile_axis[x] == -1 || tile_axis[x] == ax ? ax : -2;
        }
    }

    g->in_backward = 1;
    g->backward_of = loss;
    weft_site saved_site = g->site;
    g->site = g->nodes[loss].site;
    acc[loss] = weft_ones(g, L->shape, L->dtype);
    weft_status st = WEFT_OK;
    for (int i = N - 1; i >= 0 && st == WEFT_OK; i--) {
        if (piece_head[i] != WEFT_NONE) {
            g->backward_of = i;
            g->site = g->nodes[i].site;
            weft_node cat = tile_gradient(g, i, tile_axis[i], piece_head, piece_next, acc);
            acc[i] = acc[i] == WEFT_NONE ? cat : weft_add(g, acc[i], cat);
        }
        if (acc[i] == WEFT_NONE || !needs[i] || !reach[i] || g->nodes[i].kind != WEFT_NODE_OP) continue;
        const weft_op_def *def = &weft_ops[g->nodes[i].op];
        if (def->flags & WEFT_OPF_NONDIFF) continue;
        if (g->nodes[i].op == WEFT_OP_slice) {
            weft_node x = g->edges[g->nodes[i].in_off];
            if (tile_axis[x] >= 0 && needs[x]) { /* deferred: assembled when x is reached */
                piece_next[i] = piece_head[x];
                piece_head[x] = i;
                continue;
            }
        }
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
    free(needs); free(reach); free(acc); free(tile_axis); free(piece_next); free(piece_head);
    if (st == WEFT_OK && g->status) st = g->status;
    if (st != WEFT_OK) return weft_error(st, "grad: %s", g->error ? g->error : weft_last_error());
    return WEFT_OK;
}
