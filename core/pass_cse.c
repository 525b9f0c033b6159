/* Common-subexpression elimination: one node per (op, inputs, attributes).
 * Sources included: two fills of one value are one node; two dropout masks
 * of one seed and shape draw the same numbers anyway. */
#include <string.h>

#include "pass.h"

static int attr_eq(const weft_attr *a, const weft_attr *b) {
    if (memcmp(a->i, b->i, sizeof a->i) || memcmp(&a->f, &b->f, sizeof a->f) || a->seed != b->seed ||
        a->dtype != b->dtype || a->shape.ndim != b->shape.ndim)
        return 0;
    for (int d = 0; d < a->shape.ndim; d++)
        if (a->shape.dim[d] != b->shape.dim[d]) return 0;
    return 1;
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

static uint64_t key(const weft_graph *dst, int op, const weft_node *in, int n, const weft_attr *a) {
    uint64_t h = mix(0xcbf29ce484222325ull, (uint64_t)op);
    for (int k = 0; k < n; k++) h = mix(h, (uint64_t)in[k]);
    for (int k = 0; k < WEFT_MAX_DIMS; k++) h = mix(h, (uint64_t)a->i[k]);
    uint64_t f;
    memcpy(&f, &a->f, sizeof f);
    h = mix(mix(mix(h, f), a->seed), (uint64_t)a->dtype);
    for (int d = 0; d < a->shape.ndim; d++) h = mix(h, (uint64_t)a->shape.dim[d]);
    return h;
}

weft_status weft_pass_cse(weft_rw *rw) {
    const weft_graph *src = rw->src;
    size_t cap = 16;
    while (cap < (size_t)src->n * 2) cap *= 2;
    weft_node *table = malloc(cap * sizeof *table);
    if (!table) return weft_error(WEFT_ERR_NOMEM, "cse: out of memory");
    for (size_t i = 0; i < cap; i++) table[i] = WEFT_NONE;
    for (int i = 0; i < src->n; i++) {
        const weft_node_rec *r = &src->nodes[i];
        if (r->kind != WEFT_NODE_OP) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        int n = r->n_in;
        weft_node small[8], *in = n <= 8 ? small : malloc((size_t)n * sizeof *in); /* stacks of T steps are wide */
        if (!in) {
            free(table);
            return weft_error(WEFT_ERR_NOMEM, "cse: out of memory");
        }
        for (int k = 0; k < n; k++) in[k] = weft_rw_in(rw, i, k);
        size_t h = (size_t)key(rw->dst, r->op, in, n, &r->attr) & (cap - 1);
        weft_node found = WEFT_NONE;
        for (; table[h] != WEFT_NONE; h = (h + 1) & (cap - 1)) {
            const weft_node_rec *c = &rw->dst->nodes[table[h]];
            if (c->op != r->op || c->n_in != n || !attr_eq(&c->attr, &r->attr)) continue;
            if (n && memcmp(rw->dst->edges + c->in_off, in, (size_t)n * sizeof *in)) continue;
            found = table[h];
            break;
        }
        if (found != WEFT_NONE && rw->dst->nodes[found].backward == r->backward) {
            rw->map[i] = found;
            rw->changes++;
        } else {
            rw->map[i] = weft_rw_copy(rw, i);
            if (found == WEFT_NONE && rw->map[i] != WEFT_NONE) table[h] = rw->map[i];
        }
        if (in != small) free(in);
    }
    free(table);
    return WEFT_OK;
}
