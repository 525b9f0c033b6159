/* Packed weights: a matrix that is the right operand (same flag) of several
 * small products — a recurrent weight, read once per step, forward and (as
 * its transpose) backward — is packed once per run into the GEMM
 * micro-kernel's panel layout (pack_b), and those products read the panels
 * (matmul_packed) instead of having BLIS pack the same weights every step.
 * ops/matmul.c has the layout and the measurements. */
#include "pass.h"

/* Packing costs a copy of B: worth it from two readers. */
#define WEFT_PACK_MIN_USES 2

static int small_product(const weft_graph *g, const uint8_t *live, weft_node i) {
    const weft_node_rec *r = &g->nodes[i];
    if (!live[i] || r->kind != WEFT_NODE_OP || r->op != WEFT_OP_matmul) return 0;
    const weft_node_rec *a = &g->nodes[weft_in_of(g, i, 0)];
    return weft_packed_gemm_pays(r->dtype, r->shape.dim[0], r->shape.dim[1], a->shape.dim[r->attr.i[0] ? 0 : 1]);
}

weft_status weft_pass_pack(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n, any = 0;
    /* readers[2 * b + tb]: small products reading b as op(B) with flag tb;
     * later, the pack_b node made for it. */
    weft_node *readers = calloc((size_t)(2 * n + 1), sizeof *readers);
    if (!readers) return weft_error(WEFT_ERR_NOMEM, "pack: out of memory");
    for (int i = 0; i < n; i++)
        if (small_product(s, rw->live, i))
            any |= ++readers[2 * weft_in_of(s, i, 1) + (s->nodes[i].attr.i[1] != 0)] >= WEFT_PACK_MIN_USES;
    if (!any) {
        free(readers);
        rw->unchanged = 1;
        return WEFT_OK;
    }
    for (int j = 0; j < 2 * n; j++) readers[j] = readers[j] >= WEFT_PACK_MIN_USES ? -1 : 0; /* -1: to pack */
    for (int i = 0; i < n; i++) {
        if (rw->map[i] != WEFT_NONE) continue;
        const weft_node_rec *r = &s->nodes[i];
        weft_node b = small_product(s, rw->live, i) ? weft_in_of(s, i, 1) : WEFT_NONE;
        int tb = b != WEFT_NONE && r->attr.i[1] != 0;
        if (b == WEFT_NONE || readers[2 * b + tb] == 0) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        weft_node *p = &readers[2 * b + tb];
        if (*p < 0) { /* the first reader: pack here (the schedule moves it) */
            weft_attr pa = {.i = {tb}};
            weft_node in = rw->map[b];
            *p = weft_rw_op(rw, i, WEFT_OP_pack_b, &in, 1, &pa) + 1;
            weft_rw_note(rw, *p - 1, "weights packed once for the step products (pack)");
        }
        weft_node in[2] = {weft_rw_in(rw, i, 0), *p - 1};
        weft_attr ma = {.i = {r->attr.i[0], tb, r->shape.dim[1]}};
        rw->map[i] = weft_rw_op(rw, i, WEFT_OP_matmul_packed, in, 2, &ma);
        rw->changes++;
    }
    free(readers);
    return WEFT_OK;
}
