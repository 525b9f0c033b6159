/* Gate merging: matmuls that share their left operand and flags, against
 * different weights that all exist before the first of them, become one
 * matmul against the weights stacked (once, hoisted: CSE then shares the
 * stack across steps) and column slices of it.  A cell written gate by gate
 * (x @ W_f^T, x @ W_h^T, ...) gets the one wide GEMM a hand-fused LSTM has. */
#include <string.h>

#include "pass.h"

/* Group key: the shared left operand, the flags, and the site (layer,
 * direction, step).  The site keeps a layer's input projection (batched over
 * time later) apart from the previous layer's recurrent product that reads
 * the same h_t. */
typedef struct { weft_node a, m; int ta, tb; uint64_t site; } key;

static int cmp(const void *x, const void *y) {
    const key *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->site != q->site) return p->site < q->site ? -1 : 1;
    if (p->ta != q->ta) return p->ta - q->ta;
    if (p->tb != q->tb) return p->tb - q->tb;
    return p->m < q->m ? -1 : p->m > q->m;
}

static int is_weight(const weft_graph *g, weft_node n) {
    while (g->nodes[n].kind == WEFT_NODE_OP && (weft_ops[g->nodes[n].op].flags & WEFT_OPF_VIEW))
        n = weft_in_of(g, n, 0);
    return g->nodes[n].kind == WEFT_NODE_PARAM || g->nodes[n].kind == WEFT_NODE_CONST;
}

weft_status weft_pass_merge_gates(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n, nk = 0;
    key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    weft_node *lead_of = malloc((size_t)(n ? n : 1) * sizeof *lead_of);
    weft_node *next = malloc((size_t)(n ? n : 1) * sizeof *next); /* members of a group, in order */
    if (!keys || !lead_of || !next) {
        free(keys); free(lead_of); free(next);
        return weft_error(WEFT_ERR_NOMEM, "merge-gates: out of memory");
    }
    for (int i = 0; i < n; i++) {
        lead_of[i] = WEFT_NONE;
        const weft_node_rec *r = &s->nodes[i];
        /* Forward matmuls against parameters (views of them included): in
         * the backward, batching over time is worth more, and batch-wgrad
         * merges the per-gate gradient sums. */
        if (rw->live[i] && r->kind == WEFT_NODE_OP && r->op == WEFT_OP_matmul && !r->backward &&
            is_weight(s, weft_in_of(s, i, 1)))
            keys[nk++] = (key){weft_in_of(s, i, 0), i, (int)r->attr.i[0], (int)r->attr.i[1],
                               ((uint64_t)(uint16_t)r->site.layer << 48) | ((uint64_t)(uint16_t)r->site.dir << 32) |
                                   (uint32_t)r->site.step};
    }
    qsort(keys, (size_t)nk, sizeof *keys, cmp);
    int groups = 0;
    for (int a = 0; a < nk;) {
        int b = a;
        while (b < nk && keys[b].a == keys[a].a && keys[b].site == keys[a].site && keys[b].ta == keys[a].ta &&
               keys[b].tb == keys[a].tb)
            b++;
        weft_node lead = keys[a].m;
        int count = 0;
        for (int k = a; k < b; k++) count += weft_in_of(s, keys[k].m, 1) < lead;
        if (count >= 2) {
            groups++;
            weft_node prev = WEFT_NONE;
            for (int k = a; k < b; k++) /* keys are sorted by node within a group */
                if (weft_in_of(s, keys[k].m, 1) < lead) {
                    lead_of[keys[k].m] = lead;
                    next[keys[k].m] = WEFT_NONE;
                    if (prev != WEFT_NONE) next[prev] = keys[k].m;
                    prev = keys[k].m;
                }
        }
        a = b;
    }
    if (!groups) { /* e.g. a cell written with one wide matmul already */
        free(keys); free(lead_of); free(next);
        rw->unchanged = 1;
        return WEFT_OK;
    }
    for (int i = 0; i < n; i++) {
        if (rw->map[i] != WEFT_NONE) continue;
        if (lead_of[i] != i) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        const weft_node_rec *r = &s->nodes[i];
        int ta = (int)r->attr.i[0], tb = (int)r->attr.i[1], m = 0;
        for (weft_node k = i; k != WEFT_NONE; k = next[k]) m++;
        weft_node *W = malloc((size_t)m * sizeof *W), *mem = malloc((size_t)m * sizeof *mem);
        if (!W || !mem) {
            free(W); free(mem); free(keys); free(lead_of); free(next);
            return weft_error(WEFT_ERR_NOMEM, "merge-gates: out of memory");
        }
        m = 0;
        for (weft_node k = i; k != WEFT_NONE; k = next[k]) {
            mem[m] = k;
            W[m++] = rw->map[weft_in_of(s, k, 1)];
        }
        /* Output columns come from B's rows when tb, else from its columns. */
        weft_attr ca = {.i = {tb ? 0 : 1}};
        weft_node packed = weft_rw_op(rw, i, WEFT_OP_concat, W, m, &ca);
        weft_node in[2] = {rw->map[weft_in_of(s, i, 0)], packed};
        weft_attr ma = {.i = {ta, tb}};
        weft_node big = weft_rw_op(rw, i, WEFT_OP_matmul, in, 2, &ma);
        weft_rw_note(rw, big, "%d gate matmuls -> 1 (merge-gates)", m);
        weft_rw_map_slices(rw, big, mem, m, 1);
        free(W);
        free(mem);
    }
    free(keys);
    free(lead_of);
    free(next);
    return WEFT_OK;
}
