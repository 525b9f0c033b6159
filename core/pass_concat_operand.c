/* A product's right operand that is a concat of columns, read by nothing
 * else (a weight gradient with its bias: dG^T [x | h | 1], the concat
 * copying x, every step's h and a ones column into one buffer), becomes
 * matmul_cat(A, parts...): the GEMM packs B's panels straight from the
 * parts and the copy is gone.  Only where that path runs (large f32
 * products with AVX-512, weft_matmul_cat_pays); ops/matmul.c has the
 * kernel and the measurements. */
#include "pass.h"

/* The concat node i's product reads as op(B), when it can be read in parts. */
static weft_node concat_operand(const weft_rw *rw, weft_node i) {
    const weft_graph *s = rw->src;
    const weft_node_rec *r = &s->nodes[i];
    if (!rw->live[i] || r->kind != WEFT_NODE_OP || r->op != WEFT_OP_matmul || r->attr.i[1]) return WEFT_NONE;
    weft_node b = weft_in_of(s, i, 1);
    const weft_node_rec *c = &s->nodes[b];
    if (c->kind != WEFT_NODE_OP || c->op != WEFT_OP_concat || c->shape.ndim != 2 || c->attr.i[0] != 1 ||
        c->n_in > WEFT_MATMUL_CAT_MAX_PARTS || rw->uses[b] != 1 || weft_in_of(s, i, 0) == b)
        return WEFT_NONE;
    const weft_node_rec *a = &s->nodes[weft_in_of(s, i, 0)];
    return weft_matmul_cat_pays(r->dtype, r->shape.dim[0], r->shape.dim[1], a->shape.dim[r->attr.i[0] ? 0 : 1]) ? b
                                                                                                                 : WEFT_NONE;
}

weft_status weft_pass_concat_operand(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int any = 0;
    for (int i = 0; i < s->n && !any; i++) any = concat_operand(rw, i) != WEFT_NONE;
    for (int i = 0; any && i < s->n; i++) {
        if (rw->map[i] != WEFT_NONE) continue;
        weft_node b = concat_operand(rw, i);
        if (b == WEFT_NONE) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        const weft_node_rec *c = &s->nodes[b];
        weft_node in[WEFT_MATMUL_CAT_MAX_PARTS + 1];
        in[0] = weft_rw_in(rw, i, 0);
        for (int k = 0; k < c->n_in; k++) in[k + 1] = weft_rw_in(rw, b, k);
        weft_attr ma = {.i = {s->nodes[i].attr.i[0]}};
        rw->map[i] = weft_rw_op(rw, i, WEFT_OP_matmul_cat, in, c->n_in + 1, &ma);
        weft_rw_note(rw, rw->map[i], "the concat of %d parts read where they are (concat-operand)", c->n_in);
        rw->changes++;
    }
    rw->unchanged = !any;
    return WEFT_OK;
}
