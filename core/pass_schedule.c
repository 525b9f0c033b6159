/* Scheduling: order the nodes by their depth in the graph (the longest path
 * from a leaf), ties in their old order.  The forward and reverse directions
 * of a bidirectional layer, written one after the other by the unroller,
 * come out step by step side by side, so the inter-op workers (core/exec.c),
 * which take nodes in order, find two independent chains next to each other. */
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
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < s->nodes[i].n_in; k++) {
            int64_t d = depth[weft_in_of(s, i, k)] + 1;
            if (d > depth[i]) depth[i] = d;
        }
    }
    for (int i = 0; i < n; i++) order[i] = (item){depth[i], i};
    qsort(order, (size_t)n, sizeof *order, by_depth);
    for (int k = 0; k < n; k++) {
        rw->map[order[k].node] = weft_rw_copy(rw, order[k].node);
        rw->changes += order[k].node != k;
    }
    free(depth);
    free(order);
    return WEFT_OK;
}
