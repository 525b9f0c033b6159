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
    /* key[i]: 2 b + tb for a small product i reading b as op(B) with flag
     * tb, else -1; uses[key]: how many such products; packed[key]: the
     * pack_b node made for them (WEFT_NONE until the first one). */
    int *key = malloc((size_t)(n + 1) * sizeof *key), *uses = calloc((size_t)(2 * n + 1), sizeof *uses);
    weft_node *packed = malloc((size_t)(2 * n + 1) * sizeof *packed);
    if (!key || !uses || !packed) {
        free(key); free(uses); free(packed);
        return weft_error(WEFT_ERR_NOMEM, "pack: out of memory");
    }
    for (int i = 0; i < n; i++) {
        key[i] = small_product(s, rw->live, i) ? 2 * weft_in_of(s, i, 1) + (s->nodes[i].attr.i[1] != 0) : -1;
        if (key[i] >= 0) any |= ++uses[key[i]] >= WEFT_PACK_MIN_USES;
    }
    for (int j = 0; j < 2 * n; j++) packed[j] = WEFT_NONE;
    for (int i = 0; any && i < n; i++) {
        if (rw->map[i] != WEFT_NONE) continue;
        if (key[i] < 0 || uses[key[i]] < WEFT_PACK_MIN_USES) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        const weft_node_rec *r = &s->nodes[i];
        int tb = key[i] & 1;
        if (packed[key[i]] == WEFT_NONE) { /* the first reader: pack here (the schedule moves it) */
            weft_attr pa = {.i = {tb}};
            weft_node b = rw->map[key[i] >> 1];
            packed[key[i]] = weft_rw_op(rw, i, WEFT_OP_pack_b, &b, 1, &pa);
            weft_rw_note(rw, packed[key[i]], "weights packed once for the step products (pack)");
        }
        weft_node in[2] = {weft_rw_in(rw, i, 0), packed[key[i]]};
        weft_attr ma = {.i = {r->attr.i[0], tb, r->shape.dim[1]}};
        rw->map[i] = weft_rw_op(rw, i, WEFT_OP_matmul_packed, in, 2, &ma);
        rw->changes++;
    }
    rw->unchanged = !any;
    free(key); free(uses); free(packed);
    return WEFT_OK;
}
