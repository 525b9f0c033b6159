/* Scheduling: order the nodes by level, ties in their old order.  A node's
 * level is as late as its readers allow (the longest path to the end,
 * counted back from the deepest node), so a value is made just before it is
 * needed and the memory plan can reuse its buffer sooner: the per-step
 * input projections of a GRU, made all at once at the start, held 20 MB.
 * Nodes nobody reads (the gradients asked for) are made as early as their
 * inputs allow instead, so each is ready early (MPI starts averaging it).
 * The forward and reverse directions of a bidirectional layer, written one
 * after the other by the unroller, come out step by step side by side, so
 * the inter-op workers (core/exec.c), which take nodes in order, find two
 * independent chains next to each other. */
#include <string.h>

#include "pass.h"

typedef struct { int64_t depth; weft_node node; } item;

static int by_depth(const void *a, const void *b) {
    const item *x = a, *y = b;
    if (x->depth != y->depth) return x->depth < y->depth ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node;
}

weft_status weft_pass_schedule(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n;
    int64_t *depth = calloc((size_t)(n ? n : 1), sizeof *depth);
    item *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!depth || !order) {
        free(depth); free(order);
        return weft_error(WEFT_ERR_NOMEM, "schedule: out of memory");
    }
    int64_t *height = calloc((size_t)(n ? n : 1), sizeof *height), deepest = 0;
    if (!height) {
        free(depth); free(order);
        return weft_error(WEFT_ERR_NOMEM, "schedule: out of memory");
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < s->nodes[i].n_in; k++) {
            int64_t d = depth[weft_in_of(s, i, k)] + 1;
            if (d > depth[i]) depth[i] = d;
        }
        if (depth[i] > deepest) deepest = depth[i];
    }
    for (int i = n - 1; i >= 0; i--)
        for (int k = 0; k < s->nodes[i].n_in; k++) {
            weft_node x = weft_in_of(s, i, k);
            if (height[i] + 1 > height[x]) height[x] = height[i] + 1;
        }
    /* level: as late as possible, or for an unread node as early as its
     * inputs' levels allow (still after every one of them) */
    for (int i = 0; i < n; i++) {
        if (height[i] > 0 || s->nodes[i].kind != WEFT_NODE_OP) { /* read by another node (outputs count as uses, not readers) */
            order[i] = (item){deepest - height[i], i};
            continue;
        }
        int64_t lv = depth[i];
        for (int k = 0; k < s->nodes[i].n_in; k++) {
            int64_t d = order[weft_in_of(s, i, k)].depth + 1;
            if (d > lv) lv = d;
        }
        order[i] = (item){lv, i};
    }
    qsort(order, (size_t)n, sizeof *order, by_depth);
    for (int k = 0; k < n; k++) {
        rw->map[order[k].node] = weft_rw_copy(rw, order[k].node);
        rw->changes += order[k].node != k;
    }
    free(depth);
    free(height);
    free(order);
    return WEFT_OK;
}
