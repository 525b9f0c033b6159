/* Time-batched GEMM.  Two shapes of the same idea, "T small matmuls against
 * one weight become one large one":
 *  (a) matmuls that share their right operand B (same flags) and whose left
 *      operands all exist before the first of them — the input projections
 *      of every step — become one matmul of the stacked left operands (a
 *      view when they are row windows of one tensor) and row slices of it;
 *  (b) a concat along rows of such matmuls (or of reshapes of them) — the
 *      input gradients of every step gathered by autodiff — becomes one
 *      matmul of the stacked left operands, reshaped. */
#include <string.h>

#include "pass.h"

typedef struct { weft_node b, m; int tb; } mm_key;

static int cmp_key(const void *x, const void *y) {
    const mm_key *a = x, *b = y;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    if (a->tb != b->tb) return a->tb - b->tb;
    return a->m < b->m ? -1 : a->m > b->m;
}

static int is_mm(const weft_graph *g, weft_node n) {
    return g->nodes[n].kind == WEFT_NODE_OP && g->nodes[n].op == WEFT_OP_matmul;
}

/* (b): concat of [reshaped] matmul(A_k, B, 0, tb) along axis 0. */
static weft_node batch_concat(weft_rw *rw, weft_node c) {
    const weft_graph *s = rw->src;
    const weft_node_rec *r = &s->nodes[c];
    if (r->attr.i[0] != 0 || r->n_in < 2) return WEFT_NONE;
    weft_node B = WEFT_NONE;
    int tb = -1;
    weft_node *A = malloc((size_t)r->n_in * sizeof *A);
    if (!A) return WEFT_NONE;
    int ok = 1;
    for (int k = 0; ok && k < r->n_in; k++) {
        weft_node p = weft_in_of(s, c, k), m = p;
        if (!is_mm(s, m) && s->nodes[p].kind == WEFT_NODE_OP && s->nodes[p].op == WEFT_OP_reshape) {
            m = weft_in_of(s, p, 0);
            ok = rw->uses[p] == 1;
        }
        ok = ok && is_mm(s, m) && rw->uses[m] == 1 && s->nodes[m].attr.i[0] == 0;
        if (!ok) break;
        weft_node bk = weft_in_of(s, m, 1);
        int tbk = (int)s->nodes[m].attr.i[1];
        if (k == 0) { B = bk; tb = tbk; }
        ok = bk == B && tbk == tb;
        /* Row-major stacking must equal the concat: the piece's trailing
         * dims are the concat's, so rows of the matmul map to axis-0 rows. */
        ok = ok && s->nodes[p].shape.ndim == r->shape.ndim;
        for (int d = 1; ok && d < r->shape.ndim; d++) ok = s->nodes[p].shape.dim[d] == r->shape.dim[d];
        A[k] = rw->map[weft_in_of(s, m, 0)];
    }
    weft_node out = WEFT_NONE;
    if (ok) {
        weft_node all = weft_rw_concat_rows(rw, c, A, r->n_in);
        weft_node in[2] = {all, rw->map[B]};
        weft_attr ma = {.i = {0, tb}};
        weft_node mm = weft_rw_op(rw, c, WEFT_OP_matmul, in, 2, &ma);
        weft_rw_note(rw, mm, "%d matmuls -> 1 (batch-gemm)", r->n_in);
        weft_attr ra = {.shape = r->shape};
        out = weft_rw_op(rw, c, WEFT_OP_reshape, &mm, 1, &ra);
    }
    free(A);
    return out;
}

weft_status weft_pass_batch_gemm(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n, nk = 0;
    mm_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    weft_node *first_of = malloc((size_t)(n ? n : 1) * sizeof *first_of); /* member -> group leader */
    if (!keys || !first_of) {
        free(keys); free(first_of);
        return weft_error(WEFT_ERR_NOMEM, "batch-gemm: out of memory");
    }
    for (int i = 0; i < n; i++) {
        first_of[i] = WEFT_NONE;
        if (rw->live[i] && is_mm(s, i) && s->nodes[i].attr.i[0] == 0)
            keys[nk++] = (mm_key){weft_in_of(s, i, 1), i, (int)s->nodes[i].attr.i[1]};
    }
    qsort(keys, (size_t)nk, sizeof *keys, cmp_key);
    /* (a) groups: same B and flags; members are those whose A precedes the
     * group's first matmul. */
    for (int a = 0; a < nk;) {
        int b = a;
        while (b < nk && keys[b].b == keys[a].b && keys[b].tb == keys[a].tb) b++;
        weft_node lead = keys[a].m;
        int count = 0;
        for (int k = a; k < b; k++) count += weft_in_of(s, keys[k].m, 0) < lead;
        if (count >= 2 && keys[a].b < lead)
            for (int k = a; k < b; k++)
                if (weft_in_of(s, keys[k].m, 0) < lead) first_of[keys[k].m] = lead;
        a = b;
    }
    for (int i = 0; i < n; i++) {
        const weft_node_rec *r = &s->nodes[i];
        if (rw->map[i] != WEFT_NONE) continue; /* a member placed with its group */
        if (first_of[i] == i) {
            /* Emit the whole group here, at its first member. */
            int m = 0;
            for (int k = i; k < n; k++) m += first_of[k] == i;
            weft_node *parts = malloc((size_t)m * sizeof *parts), *mem = malloc((size_t)m * sizeof *mem);
            if (!parts || !mem) {
                free(parts); free(mem); free(keys); free(first_of);
                return weft_error(WEFT_ERR_NOMEM, "batch-gemm: out of memory");
            }
            m = 0;
            for (int k = i; k < n; k++)
                if (first_of[k] == i) {
                    mem[m] = k;
                    parts[m++] = rw->map[weft_in_of(s, k, 0)];
                }
            weft_node all = weft_rw_concat_rows(rw, i, parts, m);
            weft_node in[2] = {all, rw->map[weft_in_of(s, i, 1)]};
            weft_attr ma = {.i = {0, r->attr.i[1]}};
            weft_node big = weft_rw_op(rw, i, WEFT_OP_matmul, in, 2, &ma);
            weft_rw_note(rw, big, "%d matmuls -> 1 (batch-gemm)", m);
            weft_rw_map_slices(rw, big, mem, m, 0);
            free(parts);
            free(mem);
            continue;
        }
        if (r->kind == WEFT_NODE_OP && r->op == WEFT_OP_concat && rw->live[i]) {
            weft_node out = batch_concat(rw, i);
            if (out != WEFT_NONE) {
                rw->map[i] = out;
                rw->changes += r->n_in;
                continue;
            }
        }
        rw->map[i] = weft_rw_copy(rw, i);
    }
    free(keys);
    free(first_of);
    return WEFT_OK;
}
