/* Elementwise fusion: a connected region of elementwise ops of one shape
 * becomes one `fused` node (ops/fused.c) evaluated chunk by chunk.  Regions
 * grow from a root towards its producers.  A value also read outside the
 * region (an activation the backward needs, a cell state the next step
 * reads) joins it as an extra output when every outside reader comes after
 * the root (so no path leaves the region and comes back): the gate
 * nonlinearities and the state update of a step become one kernel that
 * writes the state and the activations side by side, [n_out, shape...], and
 * the readers get views of their rows.  A root written straight into a
 * concat (the memory plan places it) keeps one output.  Nothing is computed
 * twice. */
#include <string.h>

#include "pass.h"

static int fusible(const weft_graph *g, weft_node n) {
    const weft_node_rec *r = &g->nodes[n];
    return r->kind == WEFT_NODE_OP && (weft_ops[r->op].flags & WEFT_OPF_ELEMENTWISE) && r->op != WEFT_OP_cast &&
           (r->dtype == WEFT_F32 || r->dtype == WEFT_F64);
}

static int reads_into_concat(const weft_graph *s, const int *coff, const weft_node *cons, weft_node r) {
    for (int q = coff[r]; q < coff[r + 1]; q++)
        if (s->nodes[cons[q]].kind == WEFT_NODE_OP && s->nodes[cons[q]].op == WEFT_OP_concat) return 1;
    return 0;
}

weft_status weft_pass_fuse(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n;
    weft_node *root_of = malloc((size_t)(n ? n : 1) * sizeof *root_of); /* region root, or NONE */
    int *inside = calloc((size_t)(n ? n : 1), sizeof *inside);          /* users seen inside the region */
    weft_node *stack = malloc((size_t)(n ? n : 1) * sizeof *stack), *members = malloc((size_t)(n ? n : 1) * sizeof *members);
    weft_node *next = malloc((size_t)(n ? n : 1) * sizeof *next); /* region member lists, root first */
    int *coff = calloc((size_t)n + 2, sizeof *coff);                  /* live readers of each node, CSR */
    weft_node *cons = NULL;
    if (!root_of || !inside || !stack || !members || !next || !coff) goto oom;
    for (int i = 0; i < n; i++)
        if (rw->live[i])
            for (int k = 0; k < s->nodes[i].n_in; k++) coff[weft_in_of(s, i, k) + 2]++;
    for (int i = 0; i < n; i++) coff[i + 2] += coff[i + 1];
    if (!(cons = malloc((size_t)coff[n + 1] * sizeof *cons + 1))) goto oom;
    for (int i = 0; i < n; i++)
        if (rw->live[i])
            for (int k = 0; k < s->nodes[i].n_in; k++) cons[coff[weft_in_of(s, i, k) + 1]++] = i;
    for (int i = 0; i < n; i++) root_of[i] = WEFT_NONE;
    /* Grow regions from the last node backwards. */
    for (int r = n - 1; r >= 0; r--) {
        if (!rw->live[r] || root_of[r] != WEFT_NONE || !fusible(s, r)) continue;
        root_of[r] = r;
        next[r] = WEFT_NONE;
        weft_node tail = r;
        int sp = 0, size = 1, inputs = 0, nt = 0, outs = 1;
        int escapes = s->nodes[r].shape.ndim < WEFT_MAX_DIMS && !reads_into_concat(s, coff, cons, r);
        stack[sp++] = r;
        while (sp) {
            weft_node m = stack[--sp];
            for (int k = 0; k < s->nodes[m].n_in; k++) {
                weft_node p = weft_in_of(s, m, k);
                if (root_of[p] == r) continue;
                if (inside[p]++ == 0) members[nt++] = p; /* to reset: counts are per region */
                int ok = fusible(s, p) && root_of[p] == WEFT_NONE && weft_shape_eq(s->nodes[p].shape, s->nodes[r].shape) &&
                         s->nodes[p].dtype == s->nodes[r].dtype && size < WEFT_FUSED_MAX_INSTR &&
                         inputs < WEFT_FUSED_MAX_INPUTS - 3;
                int escaping = ok && inside[p] < rw->uses[p];
                if (escaping) { /* read outside too: only by nodes after the root */
                    ok = escapes && outs < WEFT_FUSED_MAX_OUT;
                    for (int q = coff[p]; q < coff[p + 1] && ok; q++)
                        ok = root_of[cons[q]] == r || cons[q] > r;
                }
                if (ok) {
                    root_of[p] = r;
                    next[tail] = p;
                    next[p] = WEFT_NONE;
                    tail = p;
                    size++;
                    outs += escaping;
                    stack[sp++] = p;
                } else {
                    inputs++;
                }
            }
        }
        for (int k = 0; k < nt; k++) inside[members[k]] = 0;
        if (size == 1) root_of[r] = WEFT_NONE; /* nothing to fuse */
    }
    for (int i = 0; i < n; i++) {
        if (root_of[i] == WEFT_NONE) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        if (root_of[i] != i) continue; /* emitted with its root */
        /* Members in index order (topological); operands outside are inputs. */
        int nm = 0, nin = 0;
        for (weft_node k = i; k != WEFT_NONE; k = next[k]) members[nm++] = k;
        for (int a = 1; a < nm; a++) /* index order = dependency order */
            for (int b = a; b > 0 && members[b - 1] > members[b]; b--) {
                weft_node t = members[b]; members[b] = members[b - 1]; members[b - 1] = t;
            }
        weft_fused_prog prog;
        memset(&prog, 0, sizeof prog);
        weft_node ins[WEFT_FUSED_MAX_INPUTS];
        int ok = 1;
        for (int q = 0; q < nm && ok; q++) {
            const weft_node_rec *r = &s->nodes[members[q]];
            weft_fused_instr *fi = &prog.ins[q];
            fi->op = (int16_t)r->op;
            fi->p = r->attr.f;
            for (int k = 0; k < r->n_in; k++) {
                weft_node x = weft_in_of(s, members[q], k);
                int slot = -1;
                if (root_of[x] == i) {
                    for (int j = 0; j < q; j++)
                        if (members[j] == x) slot = -1 - j;
                } else {
                    weft_node mx = rw->map[x];
                    for (int j = 0; j < nin; j++)
                        if (ins[j] == mx) slot = j;
                    if (slot == -1) {
                        if (nin == WEFT_FUSED_MAX_INPUTS) { ok = 0; break; }
                        ins[nin] = mx;
                        slot = nin++;
                    }
                }
                fi->arg[k] = (int16_t)slot;
            }
            /* an output: the root, or a member read outside the region (or
             * asked for: outputs count as a use) */
            int within = 0;
            for (int c = coff[members[q]]; c < coff[members[q] + 1]; c++) within += root_of[cons[c]] == i;
            int out = members[q] == i || rw->uses[members[q]] > within;
            if (out && prog.n_out < WEFT_FUSED_MAX_OUT) prog.out_ins[prog.n_out++] = (int16_t)q;
            else if (out) ok = 0;
            size_t L = strlen(prog.label);
            if (L + 12 < sizeof prog.label) snprintf(prog.label + L, sizeof prog.label - L, "%s%s", q ? " " : "", weft_ops[r->op].name);
        }
        prog.n_instr = nm;
        if (prog.n_out == 1) prog.n_out = 0; /* the root, the last instruction */
        int id = ok ? weft_graph_add_prog(rw->dst, &prog) : -1;
        if (id < 0) { /* fall back: copy the members one by one */
            for (int q = 0; q < nm; q++) rw->map[members[q]] = weft_rw_copy(rw, members[q]);
            continue;
        }
        weft_attr a = {.i = {id}, .shape = s->nodes[i].shape, .dtype = s->nodes[i].dtype};
        weft_node f = weft_rw_op(rw, i, WEFT_OP_fused, ins, nin, &a);
        if (prog.n_out < 2) {
            rw->map[i] = f;
            weft_rw_note(rw, f, "%d ops (fuse): %s", nm, prog.label);
        } else {
            /* each output's readers get a view of its row */
            for (int k = 0; k < prog.n_out; k++) {
                weft_node mk = members[prog.out_ins[k]];
                weft_node v = weft_reshape(rw->dst, weft_slice(rw->dst, f, 0, k, k + 1), s->nodes[mk].shape);
                weft_rw_stamp(rw, v, mk);
                rw->map[mk] = v;
            }
            weft_rw_note(rw, f, "%d ops, %d outputs (fuse): %s", nm, prog.n_out, prog.label);
        }
        rw->changes += nm - 1;
    }
    free(root_of); free(inside); free(stack); free(members); free(next); free(coff); free(cons);
    return WEFT_OK;
oom:
    free(root_of); free(inside); free(stack); free(members); free(next); free(coff); free(cons);
    return weft_error(WEFT_ERR_NOMEM, "fuse: out of memory");
}
