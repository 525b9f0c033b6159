/* Merging products that share their left operand: matmuls with the same
 * left operand and flags, against different right operands, become one
 * matmul against the right operands stacked, and slices of it.
 *
 * merge-gates: forward products against weights that all exist before the
 * first of them (the stack is made once, hoisted: CSE then shares it across
 * steps).  A cell written gate by gate (x @ W_f^T, x @ W_h^T, ...) gets the
 * one wide GEMM a hand-fused LSTM has.
 *
 * merge-wgrad: the weight gradients batch-wgrad made, dW_ih = dG^T X and
 * dW_hh = dG^T H (the same stacked gate gradients dG), become one
 * dG^T [X | H]: BLIS packs dG^T once instead of twice, and the wider
 * product runs faster (bench/bench_blis_peak, one thread: 512x128x4000
 * 76 GFLOP/s, 512x256x4000 95; 1024x256x6400 95, 1024x512x6400 102).
 * The bias gradient, the column sum of the same dG, joins them as one more
 * column: sum(dG, 0) = dG^T 1, so dG^T [X | H | 1] gives all three and the
 * separate pass over dG (megabytes, read from memory once more) is gone. */
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

/* Emit every not yet emitted node that src node x needs, inputs first, so a
 * merged product can stand where its first member stood.  Fails (leaving
 * what it emitted, which is harmless) when the cone reaches a node of a
 * group still to be merged: copying it plainly would split that group, and
 * a member of x's own group there would make the merge a cycle. */
static int emit_cone(weft_rw *rw, weft_node x, const weft_node *lead_of, weft_node *stack) {
    const weft_graph *s = rw->src;
    int top = 0;
    stack[top++] = x;
    while (top) {
        weft_node n = stack[top - 1];
        if (rw->map[n] != WEFT_NONE) { top--; continue; }
        if (lead_of[n] != WEFT_NONE) return 0;
        weft_node need = WEFT_NONE;
        for (int k = 0; k < s->nodes[n].n_in && need == WEFT_NONE; k++)
            if (rw->map[weft_in_of(s, n, k)] == WEFT_NONE) need = weft_in_of(s, n, k);
        if (need != WEFT_NONE) { stack[top++] = need; continue; }
        rw->map[n] = weft_rw_copy(rw, n);
        top--;
    }
    return 1;
}

/* Does product m join the group led by `lead`?  The merged product stands
 * where the lead stood, so merge-gates takes the products whose weights
 * exist there already; merge-wgrad takes them all and emits what is missing
 * when it gets there (emit_cone). */
static int joins(const weft_graph *s, int wgrad, weft_node m, weft_node lead) {
    return wgrad || weft_in_of(s, m, 1) < lead;
}

static int is_weight(const weft_graph *g, weft_node n) {
    while (g->nodes[n].kind == WEFT_NODE_OP && (weft_ops[g->nodes[n].op].flags & WEFT_OPF_VIEW))
        n = weft_in_of(g, n, 0);
    return g->nodes[n].kind == WEFT_NODE_PARAM || g->nodes[n].kind == WEFT_NODE_CONST;
}

/* merge-wgrad: a backward column sum of a 2-D tensor (axis 0 only, not
 * kept), which joins the products of that tensor transposed as a column. */
static int is_column_sum(const weft_graph *g, weft_node i) {
    const weft_node_rec *r = &g->nodes[i];
    return r->kind == WEFT_NODE_OP && r->op == WEFT_OP_sum && r->backward && r->attr.i[0] == 1 &&
           !r->attr.i[1] && r->shape.ndim == 1 && g->nodes[weft_in_of(g, i, 0)].shape.ndim == 2;
}

static weft_status merge(weft_rw *rw, int wgrad) {
    const weft_graph *s = rw->src;
    int n = s->n, nk = 0;
    key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    weft_node *lead_of = malloc((size_t)(n ? n : 1) * sizeof *lead_of);
    weft_node *next = malloc((size_t)(n ? n : 1) * sizeof *next); /* members of a group, in order */
    weft_node *stack = malloc((size_t)(n ? n : 1) * sizeof *stack);
    weft_node *W = malloc((size_t)(n ? n : 1) * sizeof *W), *mem = malloc((size_t)(n ? n : 1) * sizeof *mem);
    weft_status st = WEFT_OK;
    if (!keys || !lead_of || !next || !stack || !W || !mem) {
        st = weft_error(WEFT_ERR_NOMEM, "%s: out of memory", wgrad ? "merge-wgrad" : "merge-gates");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        lead_of[i] = WEFT_NONE;
        const weft_node_rec *r = &s->nodes[i];
        if (wgrad && rw->live[i] && is_column_sum(s, i)) { /* sum(A, 0): as A^T 1 */
            keys[nk++] = (key){weft_in_of(s, i, 0), i, 1, 0, 0};
            continue;
        }
        if (!rw->live[i] || r->kind != WEFT_NODE_OP || r->op != WEFT_OP_matmul) continue;
        /* merge-gates: forward matmuls against parameters (views of them
         * included): in the backward, batching over time is worth more, and
         * batch-wgrad merges the per-gate gradient sums.  merge-wgrad: the
         * backward's A^T B products of 2-D operands (what batch-wgrad makes);
         * they all run after the last step, so where they stand is free. */
        int ok = wgrad ? r->backward && r->attr.i[0] && !r->attr.i[1] && r->shape.ndim == 2 &&
                             s->nodes[weft_in_of(s, i, 1)].shape.ndim == 2
                       : !r->backward && is_weight(s, weft_in_of(s, i, 1));
        if (ok)
            keys[nk++] = (key){weft_in_of(s, i, 0), i, (int)r->attr.i[0], (int)r->attr.i[1],
                               wgrad ? 0
                                     : ((uint64_t)(uint16_t)r->site.layer << 48) |
                                           ((uint64_t)(uint16_t)r->site.dir << 32) | (uint32_t)r->site.step};
    }
    qsort(keys, (size_t)nk, sizeof *keys, cmp);
    int groups = 0;
    for (int a = 0; a < nk;) {
        int b = a;
        while (b < nk && keys[b].a == keys[a].a && keys[b].site == keys[a].site && keys[b].ta == keys[a].ta &&
               keys[b].tb == keys[a].tb)
            b++;
        weft_node lead = keys[a].m;
        int count = 0, products = 0;
        for (int k = a; k < b; k++) {
            count += joins(s, wgrad, keys[k].m, lead);
            products += s->nodes[keys[k].m].op == WEFT_OP_matmul;
        }
        if (count >= 2 && products) {
            groups++;
            weft_node prev = WEFT_NONE;
            for (int k = a; k < b; k++) /* keys are sorted by node within a group */
                if (joins(s, wgrad, keys[k].m, lead)) {
                    lead_of[keys[k].m] = lead;
                    next[keys[k].m] = WEFT_NONE;
                    if (prev != WEFT_NONE) next[prev] = keys[k].m;
                    prev = keys[k].m;
                }
        }
        a = b;
    }
    if (!groups) { /* e.g. a cell written with one wide matmul already */
        rw->unchanged = 1;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (rw->map[i] != WEFT_NONE) continue;
        if (lead_of[i] != i) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        const weft_node_rec *r = &s->nodes[i];
        /* (the lead may be a column sum: merge-wgrad's products are A^T B) */
        int ta = wgrad ? 1 : (int)r->attr.i[0], tb = wgrad ? 0 : (int)r->attr.i[1], m = 0, ready = 1;
        for (weft_node k = i; k != WEFT_NONE; k = next[k]) {
            m++;
            if (s->nodes[k].op == WEFT_OP_matmul) ready = ready && emit_cone(rw, weft_in_of(s, k, 1), lead_of, stack);
        }
        if (!ready) { /* the members are copied as they come */
            rw->map[i] = weft_rw_copy(rw, i);
            for (weft_node k = next[i]; k != WEFT_NONE; k = next[k]) lead_of[k] = WEFT_NONE;
            continue;
        }
        m = 0;
        weft_node sum_of = WEFT_NONE; /* a column sum in the group (CSE leaves one per tensor) */
        const weft_node_rec *ra = &s->nodes[weft_in_of(s, i, 0)];
        for (weft_node k = i; k != WEFT_NONE; k = next[k]) {
            if (s->nodes[k].op != WEFT_OP_matmul) {
                sum_of = k;
                continue;
            }
            mem[m] = k;
            W[m++] = rw->map[weft_in_of(s, k, 1)];
        }
        const int ones = sum_of != WEFT_NONE;
        if (ones) { /* a column of ones, after the products' columns */
            weft_attr fa = {.shape = {2, {ra->shape.dim[0], 1}}, .dtype = ra->dtype, .f = 1};
            W[m] = weft_rw_op(rw, sum_of, WEFT_OP_fill, NULL, 0, &fa);
        }
        /* Output columns come from B's rows when tb, else from its columns. */
        weft_attr ca = {.i = {tb ? 0 : 1}};
        weft_node packed = weft_rw_op(rw, i, WEFT_OP_concat, W, m + ones, &ca);
        weft_node in[2] = {rw->map[weft_in_of(s, i, 0)], packed};
        weft_attr ma = {.i = {ta, tb}};
        weft_node big = weft_rw_op(rw, i, WEFT_OP_matmul, in, 2, &ma);
        if (ones)
            weft_rw_note(rw, big, "%d weight-gradient matmuls and a bias gradient -> 1 (merge-wgrad)", m);
        else
            weft_rw_note(rw, big, wgrad ? "%d weight-gradient matmuls -> 1 (merge-wgrad)" : "%d gate matmuls -> 1 (merge-gates)",
                         m);
        weft_rw_map_slices(rw, big, mem, m, 1);
        const int64_t at = big == WEFT_NONE ? 0 : rw->dst->nodes[big].shape.dim[1] - 1; /* the ones' column */
        for (weft_node k = i; ones && k != WEFT_NONE; k = next[k]) { /* the column sums read it */
            if (s->nodes[k].op == WEFT_OP_matmul) continue;
            weft_attr last = {.i = {1, at, at + 1}}, flat = {.shape = s->nodes[k].shape};
            weft_node col = weft_rw_op(rw, k, WEFT_OP_slice, &big, 1, &last);
            rw->map[k] = weft_rw_op(rw, k, WEFT_OP_reshape, &col, 1, &flat); /* [C, 1] -> [C] */
            rw->changes++;
        }
    }
done:
    free(keys); free(lead_of); free(next); free(stack); free(W); free(mem);
    return st;
}

weft_status weft_pass_merge_gates(weft_rw *rw) { return merge(rw, 0); }
weft_status weft_pass_merge_wgrad(weft_rw *rw) { return merge(rw, 1); }
