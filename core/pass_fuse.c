/* Elementwise fusion: a connected region of elementwise ops of one shape
 * becomes one `fused` node (ops/fused.c) evaluated chunk by chunk.  Regions
 * grow from a root towards its producers.  A value also read outside the
 * region (an activation the backward needs, a cell state the next step
 * reads) joins it as an extra output when every outside reader comes after
 * the root (so no path leaves the region and comes back): the gate
 * nonlinearities and the state update of a step become one kernel that
 * writes the state and the activations side by side, [n_out, shape...], and
 * the readers get views of their rows.  Sibling regions that one node
 * reads (the output gate and tanh(c), read by h) then join into one
 * kernel.  A root written straight into a concat (the memory plan places
 * it) keeps one output.  A concat of regions only it reads is one kernel
 * whose outputs are the concat, and regions feeding it join it (a backward
 * step: see the loops below); a second concat sharing its values (a GRU's)
 * joins it too, the shared values written twice.  Nothing is computed
 * twice. */
#include <string.h>

#include "pass.h"

static int fusible(const weft_graph *g, weft_node n) {
    const weft_node_rec *r = &g->nodes[n];
    return r->kind == WEFT_NODE_OP && (weft_ops[r->op].flags & WEFT_OPF_ELEMENTWISE) && r->op != WEFT_OP_cast &&
           (r->dtype == WEFT_F32 || r->dtype == WEFT_F64);
}

/* Add x to a set of at most WEFT_FUSED_MAX_INPUTS + 2 nodes (one past the
 * limit is enough to know it is exceeded); the new count. */
static int add_input(weft_node *set, int n, weft_node x) {
    for (int q = 0; q < n; q++)
        if (set[q] == x) return n;
    if (n < WEFT_FUSED_MAX_INPUTS + 2) set[n++] = x;
    return n;
}

static int reads_into_concat(const weft_graph *s, const int *coff, const weft_node *cons, weft_node r) {
    for (int q = coff[r]; q < coff[r + 1]; q++)
        if (s->nodes[cons[q]].kind == WEFT_NODE_OP && s->nodes[cons[q]].op == WEFT_OP_concat) return 1;
    return 0;
}

/* Sibling regions: regions a < b of one shape whose roots one node reads
 * (an LSTM step's output gate and tanh of its cell state, both read by
 * h = o tanh(c)) become one region rooted at b, one kernel with the
 * outputs of both, when it still fits and every outside reader of a's
 * values comes after b, where the kernel runs.  That also rules out a
 * cycle: b's values are read outside only after b too (how regions grow),
 * so a path leaving the region reaches only nodes after b, never a member. */
static void merge_siblings(const weft_rw *rw, weft_node *root_of, weft_node *next, const int *coff, const weft_node *cons,
                           weft_node a, weft_node b) {
    const weft_graph *s = rw->src;
    if (a == b || !weft_shape_eq(s->nodes[a].shape, s->nodes[b].shape) || s->nodes[a].dtype != s->nodes[b].dtype ||
        s->nodes[b].shape.ndim < 1 || reads_into_concat(s, coff, cons, a) || reads_into_concat(s, coff, cons, b))
        return;
    if (a > b) { weft_node t = a; a = b; b = t; }
    weft_node ins[WEFT_FUSED_MAX_INPUTS + 2];
    int size = 0, n_ins = 0, outs = 0;
    for (int pass = 0; pass < 2; pass++)
        for (weft_node m = pass ? b : a; m != WEFT_NONE; m = next[m]) {
            size++;
            for (int k = 0; k < s->nodes[m].n_in; k++) {
                weft_node y = weft_in_of(s, m, k);
                if (root_of[y] == a || root_of[y] == b) continue;
                n_ins = add_input(ins, n_ins, y);
            }
            int within = 0, late = 1;
            for (int q = coff[m]; q < coff[m + 1]; q++) {
                weft_node c = cons[q];
                if (root_of[c] == a || root_of[c] == b) within++;
                else late &= c > b;
            }
            if (m == b || rw->uses[m] > within) outs++;
            if (!pass && !late) return; /* a's value read before the kernel would run */
        }
    if (size > WEFT_FUSED_MAX_INSTR || n_ins > WEFT_FUSED_MAX_INPUTS || outs > WEFT_FUSED_MAX_OUT) return;
    weft_node tail = b;
    while (next[tail] != WEFT_NONE) tail = next[tail];
    next[tail] = a;
    for (weft_node m = a; m != WEFT_NONE; m = next[m]) root_of[m] = b;
}

/* The region a node belongs to, for the concat groups below: its root, or
 * the node itself when it is in none. */
static weft_node region_of(const weft_node *root_of, weft_node m) { return root_of[m] != WEFT_NONE ? root_of[m] : m; }

/* The member after m of x's region (x a root), or after x alone when x is
 * in none: for (m = x; m != WEFT_NONE; m = member_after(root_of, next, x, m)). */
static weft_node member_after(const weft_node *root_of, const weft_node *next, weft_node x, weft_node m) {
    return root_of[x] == x ? next[m] : WEFT_NONE;
}

/* Is m read by anything outside concat group c and candidate region y? */
static int read_outside(const weft_node *root_of, const weft_node *group, const int *coff, const weft_node *cons,
                        weft_node m, weft_node c, weft_node y) {
    for (int q = coff[m]; q < coff[m + 1]; q++) {
        weft_node rq = region_of(root_of, cons[q]);
        if (group[rq] != c && rq != y) return 1;
    }
    return 0;
}

/* Concat group c's output columns into cols[] (room for
 * WEFT_FUSED_MAX_OUT): c's inputs, then its twin's (a value both read is
 * written twice); how many, or WEFT_FUSED_MAX_OUT + 1 when they do not fit. */
static int group_cols(const weft_graph *s, const weft_node *twin, weft_node c, weft_node *cols) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        weft_node x = pass ? twin[c] : c;
        if (x == WEFT_NONE) break;
        for (int k = 0; k < s->nodes[x].n_in; k++) {
            if (n == WEFT_FUSED_MAX_OUT) return WEFT_FUSED_MAX_OUT + 1;
            cols[n++] = weft_in_of(s, x, k);
        }
    }
    return n;
}

/* The roots of concat group c's regions into roots[] (room for
 * WEFT_FUSED_MAX_INSTR + 1): its columns' first, each once (each a region,
 * or a node in none; *nx of them), then those it absorbed (chained from
 * chain[c]); how many. */
static int group_roots(const weft_graph *s, const weft_node *twin, const weft_node *chain, weft_node c, weft_node *roots,
                       int *nx) {
    weft_node cols[WEFT_FUSED_MAX_OUT];
    int n = 0, nc = group_cols(s, twin, c, cols);
    for (int k = 0; k < nc && k < WEFT_FUSED_MAX_OUT; k++) {
        int dup = 0;
        for (int q = 0; q < n && !dup; q++) dup = roots[q] == cols[k];
        if (!dup) roots[n++] = cols[k];
    }
    *nx = n;
    for (weft_node x = chain[c]; x != WEFT_NONE && n < WEFT_FUSED_MAX_INSTR; x = chain[x]) roots[n++] = x;
    return n;
}

/* Concat group c's regions and candidate y (or none): their members,
 * distinct outside inputs, and values read outside. */
static void group_stats(const weft_rw *rw, const weft_node *root_of, const weft_node *next, const weft_node *group,
                        const weft_node *twin, const weft_node *chain, const int *coff, const weft_node *cons, weft_node c,
                        weft_node y, int *size, int *n_ins, int *n_extra) {
    const weft_graph *s = rw->src;
    weft_node ins[WEFT_FUSED_MAX_INPUTS + 2], roots[WEFT_FUSED_MAX_INSTR + 1];
    int nr, n_roots = group_roots(s, twin, chain, c, roots, &nr);
    if (y != WEFT_NONE) roots[n_roots++] = y;
    *size = *n_ins = *n_extra = 0;
    for (int k = 0; k < n_roots; k++)
        for (weft_node x = roots[k], m = x; m != WEFT_NONE; m = member_after(root_of, next, x, m)) {
            (*size)++;
            for (int j = 0; j < s->nodes[m].n_in; j++) {
                weft_node z = weft_in_of(s, m, j), rz = region_of(root_of, z);
                if (group[rz] != c && rz != y) *n_ins = add_input(ins, *n_ins, z);
            }
            /* the concats' own inputs are read by the group alone */
            *n_extra += k >= nr && read_outside(root_of, group, coff, cons, m, c, y);
        }
}

static int last_axis_concat(const weft_rw *rw, weft_node c) {
    const weft_node_rec *rc = &rw->src->nodes[c];
    return rw->live[c] && rc->kind == WEFT_NODE_OP && rc->op == WEFT_OP_concat && rc->n_in >= 2 &&
           rc->attr.i[0] == rc->shape.ndim - 1;
}

/* A concat along the last axis, of parts of c's shape and dtype, in no
 * group yet, that reads one of c's inputs: a twin for c's group (checked
 * there), or WEFT_NONE. */
static weft_node twin_of(const weft_rw *rw, const int *coff, const weft_node *cons, const weft_node *group, weft_node c) {
    const weft_graph *s = rw->src;
    const weft_shape part = s->nodes[weft_in_of(s, c, 0)].shape;
    for (int k = 0; k < s->nodes[c].n_in; k++) {
        weft_node x = weft_in_of(s, c, k);
        for (int q = coff[x]; q < coff[x + 1]; q++) {
            weft_node d = cons[q];
            if (d != c && group[d] == WEFT_NONE && last_axis_concat(rw, d) && s->nodes[d].dtype == s->nodes[c].dtype &&
                weft_shape_eq(s->nodes[weft_in_of(s, d, 0)].shape, part))
                return d;
        }
    }
    return WEFT_NONE;
}

/* Emit one fused node for members[0..nm) (any order; sorted here).  With
 * outs == NULL the outputs are the root and every member read outside the
 * region, and each gets its map[] (a view of its columns when there are
 * several); else the outputs are outs[0..n_outs) in that order and the
 * node is returned for the caller to map.  Falls back to copying the
 * members one by one when the program does not fit. */
static weft_node emit(weft_rw *rw, const weft_node *root_of, const int *coff, const weft_node *cons, weft_node *members,
                      int nm, const weft_node *outs, int n_outs, weft_node like, weft_shape S) {
    const weft_graph *s = rw->src;
    weft_node region = root_of[like] == like ? like : WEFT_NONE; /* the region's root, when one region */
    for (int a = 1; a < nm; a++) /* index order = dependency order */
        for (int b = a; b > 0 && members[b - 1] > members[b]; b--) {
            weft_node t = members[b]; members[b] = members[b - 1]; members[b - 1] = t;
        }
    weft_fused_prog prog;
    memset(&prog, 0, sizeof prog);
    weft_node ins[WEFT_FUSED_MAX_INPUTS];
    int ok = 1, nin = 0;
    for (int q = 0; q < nm && ok; q++) {
        const weft_node_rec *r = &s->nodes[members[q]];
        weft_fused_instr *fi = &prog.ins[q];
        fi->op = (int16_t)r->op;
        fi->p = r->attr.f;
        for (int k = 0; k < r->n_in; k++) {
            weft_node x = weft_in_of(s, members[q], k);
            int slot = 0, found = 0; /* a member's value: slot -1 - j */
            for (int j = 0; j < q && !found; j++)
                if (members[j] == x) slot = -1 - j, found = 1;
            if (!found) { /* an input */
                weft_node mx = rw->map[x];
                for (int j = 0; j < nin && !found; j++)
                    if (ins[j] == mx) slot = j, found = 1;
                if (!found) {
                    if (nin == WEFT_FUSED_MAX_INPUTS) { ok = 0; break; }
                    ins[nin] = mx;
                    slot = nin++;
                }
            }
            fi->arg[k] = (int16_t)slot;
        }
        if (!outs) {
            /* an output: the root, or a member read outside the region (or
             * asked for: outputs count as a use) */
            int within = 0;
            for (int c = coff[members[q]]; c < coff[members[q] + 1]; c++) within += root_of[cons[c]] == region;
            if (members[q] == region || rw->uses[members[q]] > within) {
                if (prog.n_out < WEFT_FUSED_MAX_OUT) prog.out_ins[prog.n_out++] = (int16_t)q;
                else ok = 0;
            }
        }
        size_t L = strlen(prog.label);
        if (L + 12 < sizeof prog.label) snprintf(prog.label + L, sizeof prog.label - L, "%s%s", q ? " " : "", weft_ops[r->op].name);
    }
    for (int k = 0; k < n_outs; k++) {
        int q = 0;
        while (q < nm && members[q] != outs[k]) q++;
        prog.out_ins[prog.n_out++] = (int16_t)q;
    }
    prog.n_instr = nm;
    if (prog.n_out == 1) prog.n_out = 0; /* the root, the last instruction */
    int id = ok ? weft_graph_add_prog(rw->dst, &prog) : -1;
    if (id < 0) { /* fall back: copy the members one by one */
        for (int q = 0; q < nm; q++) rw->map[members[q]] = weft_rw_copy(rw, members[q]);
        if (!outs) return WEFT_NONE;
        return weft_rw_copy(rw, like); /* the concat of the copies */
    }
    weft_attr a = {.i = {id}, .shape = S, .dtype = s->nodes[members[0]].dtype};
    weft_node f = weft_rw_op(rw, like, WEFT_OP_fused, ins, nin, &a);
    rw->changes += nm - (outs ? 0 : 1);
    if (outs) {
        weft_rw_note(rw, f, "%d ops, %d outputs side by side: the concat (fuse): %s", nm, prog.n_out, prog.label);
        return f;
    }
    if (prog.n_out < 2) {
        rw->map[region] = f;
        weft_rw_note(rw, f, "%d ops (fuse): %s", nm, prog.label);
        return f;
    }
    /* each output's readers get a view of its columns */
    int ax = S.ndim - 1;
    int64_t D = S.dim[ax];
    for (int k = 0; k < prog.n_out; k++) {
        weft_node mk = members[prog.out_ins[k]];
        weft_node v = weft_slice(rw->dst, f, ax, k * D, (k + 1) * D);
        weft_rw_stamp(rw, v, mk);
        rw->map[mk] = v;
    }
    weft_rw_note(rw, f, "%d ops, %d outputs (fuse): %s", nm, prog.n_out, prog.label);
    return f;
}

/* A concat along axis 0 of the same columns [a, b) of bases of one shape
 * (the gate gradients, the first columns of each backward step's kernel,
 * stacked for the weight-gradient GEMM) is those columns of the stack of
 * the bases: the plan can then write each kernel straight into the stack,
 * where the concat would have copied the columns.  Stacks made before
 * (stacks[0..*n_stacks)) are used again: a GRU's two gate-gradient
 * concats are other columns of the same kernels.  WEFT_NONE otherwise. */
static weft_node stack_of_columns(weft_rw *rw, weft_node c, weft_node *stacks, int *n_stacks) {
    const weft_node_rec *r = &rw->src->nodes[c];
    weft_graph *d = rw->dst;
    if (r->kind != WEFT_NODE_OP || r->op != WEFT_OP_concat || r->attr.i[0] != 0 || r->shape.ndim < 2 || r->n_in < 2)
        return WEFT_NONE;
    int ax = r->shape.ndim - 1;
    weft_node *bases = malloc((size_t)r->n_in * sizeof *bases);
    if (!bases) return WEFT_NONE;
    int64_t a = 0, b = 0;
    int ok = 1;
    for (int k = 0; k < r->n_in && ok; k++) {
        weft_node v = weft_rw_in(rw, c, k);
        const weft_node_rec *rv = &d->nodes[v];
        ok = rv->kind == WEFT_NODE_OP && rv->op == WEFT_OP_slice && rv->attr.i[0] == ax;
        if (!ok) break;
        bases[k] = weft_in_of(d, v, 0);
        if (!k) a = rv->attr.i[1], b = rv->attr.i[2];
        ok = rv->attr.i[1] == a && rv->attr.i[2] == b &&
             weft_shape_eq(d->nodes[bases[k]].shape, d->nodes[bases[0]].shape);
    }
    weft_node out = WEFT_NONE;
    if (ok) {
        weft_node all = WEFT_NONE;
        for (int q = 0; q < *n_stacks && all == WEFT_NONE; q++) {
            int same = d->nodes[stacks[q]].n_in == r->n_in;
            for (int k = 0; k < r->n_in && same; k++) same = weft_in_of(d, stacks[q], k) == bases[k];
            if (same) all = stacks[q];
        }
        if (all == WEFT_NONE) {
            weft_attr ca = {.i = {0}};
            all = stacks[(*n_stacks)++] = weft_rw_op(rw, c, WEFT_OP_concat, bases, r->n_in, &ca);
            weft_rw_note(rw, all, "the stacked kernels, whole: the concats of their columns are views (fuse)");
        }
        out = weft_slice(d, all, ax, a, b);
        weft_rw_stamp(rw, out, c);
    }
    free(bases);
    return out;
}

weft_status weft_pass_fuse(weft_rw *rw) {
    const weft_graph *s = rw->src;
    int n = s->n;
    weft_status st = WEFT_OK;
    weft_node *root_of = malloc((size_t)(n ? n : 1) * sizeof *root_of); /* region root, or NONE */
    int *inside = calloc((size_t)(n ? n : 1), sizeof *inside);          /* users seen inside the region */
    weft_node *stack = malloc((size_t)(n ? n : 1) * sizeof *stack), *members = malloc((size_t)(n ? n : 1) * sizeof *members);
    weft_node *next = malloc((size_t)(n ? n : 1) * sizeof *next); /* region member lists, root first */
    weft_node *group = malloc((size_t)(n ? n : 1) * sizeof *group); /* concat a region root is emitted with */
    weft_node *chain = malloc((size_t)(n ? n : 1) * sizeof *chain); /* regions a concat group absorbed, from chain[c] */
    weft_node *twin = malloc((size_t)(n ? n : 1) * sizeof *twin);   /* a concat group's second concat */
    weft_node *stacks = malloc((size_t)(n ? n : 1) * sizeof *stacks); /* stacks of kernels made, for stack_of_columns */
    int n_stacks = 0;
    weft_node *last_of = malloc((size_t)(n ? n : 1) * sizeof *last_of); /* a concat group's last member */
    int *pad = malloc((size_t)(n ? n : 1) * sizeof *pad); /* outputs written again, for a uniform stack */
    int *coff = calloc((size_t)n + 2, sizeof *coff);                  /* live readers of each node, CSR */
    weft_node *cons = NULL;
    if (!root_of || !inside || !stack || !members || !next || !group || !chain || !twin || !stacks || !last_of || !pad || !coff) goto oom;
    for (int i = 0; i < n; i++)
        if (rw->live[i])
            for (int k = 0; k < s->nodes[i].n_in; k++) coff[weft_in_of(s, i, k) + 2]++;
    for (int i = 0; i < n; i++) coff[i + 2] += coff[i + 1];
    if (!(cons = malloc((size_t)coff[n + 1] * sizeof *cons + 1))) goto oom;
    for (int i = 0; i < n; i++)
        if (rw->live[i])
            for (int k = 0; k < s->nodes[i].n_in; k++) cons[coff[weft_in_of(s, i, k) + 1]++] = i;
    for (int i = 0; i < n; i++) root_of[i] = group[i] = chain[i] = twin[i] = WEFT_NONE;
    /* Grow regions from the last node backwards. */
    for (int r = n - 1; r >= 0; r--) {
        if (!rw->live[r] || root_of[r] != WEFT_NONE || !fusible(s, r)) continue;
        root_of[r] = r;
        next[r] = WEFT_NONE;
        weft_node tail = r;
        int sp = 0, size = 1, nt = 0, outs = 1;
        int escapes = s->nodes[r].shape.ndim >= 1 && !reads_into_concat(s, coff, cons, r);
        /* the region's distinct outside inputs so far, kept exact: a member
         * joins only if the kernel can still take them all */
        weft_node ins[WEFT_FUSED_MAX_INPUTS + 3];
        int n_ins = 0;
        for (int k = 0; k < s->nodes[r].n_in; k++) n_ins = add_input(ins, n_ins, weft_in_of(s, r, k));
        stack[sp++] = r;
        while (sp) {
            weft_node m = stack[--sp];
            for (int k = 0; k < s->nodes[m].n_in; k++) {
                weft_node p = weft_in_of(s, m, k);
                if (root_of[p] == r) continue;
                if (inside[p]++ == 0) members[nt++] = p; /* to reset: counts are per region */
                int ok = fusible(s, p) && root_of[p] == WEFT_NONE && weft_shape_eq(s->nodes[p].shape, s->nodes[r].shape) &&
                         s->nodes[p].dtype == s->nodes[r].dtype && size < WEFT_FUSED_MAX_INSTR;
                weft_node ins2[WEFT_FUSED_MAX_INPUTS + 3];
                int n2 = 0;
                if (ok) { /* the inputs with p inside: p's own inputs instead of p */
                    for (int q = 0; q < n_ins; q++)
                        if (ins[q] != p) ins2[n2++] = ins[q];
                    for (int q = 0; q < s->nodes[p].n_in; q++) {
                        weft_node y = weft_in_of(s, p, q);
                        if (root_of[y] != r) n2 = add_input(ins2, n2, y);
                    }
                    ok = n2 <= WEFT_FUSED_MAX_INPUTS;
                }
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
                    memcpy(ins, ins2, (size_t)n2 * sizeof *ins);
                    n_ins = n2;
                }
            }
        }
        for (int k = 0; k < nt; k++) inside[members[k]] = 0;
        if (size == 1) root_of[r] = WEFT_NONE; /* nothing to fuse */
    }
    for (int x = 0; x < n; x++) /* sibling regions, read together by x */
        if (rw->live[x])
            for (int k = 0; k < s->nodes[x].n_in; k++)
                for (int j = k + 1; j < s->nodes[x].n_in; j++) {
                    weft_node a = weft_in_of(s, x, k), b = weft_in_of(s, x, j);
                    if (root_of[a] == a && root_of[b] == b)
                        merge_siblings(rw, root_of, next, coff, cons, a, b);
                }
    /* A concat along the last axis of regions that only it reads (the
     * gradients of a step's gates, stacked for one GEMM) becomes one region
     * whose outputs, side by side, are the concat itself: one kernel reads
     * the shared inputs once, and the concat disappears.  Its twin, a second
     * such concat of some of the same values (a GRU step's gate gradients
     * for the input and for the recurrent weights: [dr, dz, dn] and
     * [dr, dz, dn r]), joins it: its columns follow, each value written
     * twice, and both concats are views of the one kernel. */
    for (int c = 0; c < n; c++) {
        if (!last_axis_concat(rw, c) || group[c] != WEFT_NONE) continue;
        twin[c] = twin_of(rw, coff, cons, group, c);
        weft_node cols[WEFT_FUSED_MAX_OUT], x0 = weft_in_of(s, c, 0);
        int nc = group_cols(s, twin, c, cols), ok = nc <= WEFT_FUSED_MAX_OUT;
        for (int k = 0; k < nc && ok; k++) {
            weft_node x = cols[k];
            if (group[x] == c) continue; /* a value both concats read */
            ok = (root_of[x] == x || (root_of[x] == WEFT_NONE && fusible(s, x))) && group[x] == WEFT_NONE &&
                 rw->uses[x] == coff[x + 1] - coff[x] && weft_shape_eq(s->nodes[x].shape, s->nodes[x0].shape) &&
                 s->nodes[x].dtype == s->nodes[x0].dtype;
            if (ok) group[x] = c;
        }
        if (ok) {
            group[c] = c;
            if (twin[c] != WEFT_NONE) group[twin[c]] = c;
        }
        /* each value read only by the concats and by the group's regions */
        for (int k = 0; k < nc && ok; k++)
            for (int q = coff[cols[k]]; q < coff[cols[k] + 1] && ok; q++) ok = group[region_of(root_of, cons[q])] == c;
        int size = 0, n_ins = 0, n_extra;
        if (ok) group_stats(rw, root_of, next, group, twin, chain, coff, cons, c, WEFT_NONE, &size, &n_ins, &n_extra);
        if (ok && size <= WEFT_FUSED_MAX_INSTR && n_ins <= WEFT_FUSED_MAX_INPUTS) continue;
        for (int k = 0; k < nc && k < WEFT_FUSED_MAX_OUT; k++) /* undo */
            if (group[cols[k]] == c) group[cols[k]] = WEFT_NONE;
        if (twin[c] != WEFT_NONE && group[twin[c]] == c) group[twin[c]] = WEFT_NONE;
        group[c] = twin[c] = WEFT_NONE;
    }
    /* A region feeding a concat group joins it when its values are read
     * only by the group or after the group's last member, where the kernel
     * runs (the backward step's dh = dh' + dy and its dc, read by the gate
     * gradients and by the step before): its values read later become
     * outputs after the concat's columns, and the backward step is one
     * kernel.  No cycle: every path out of the group starts after it. */
    for (int c = 0; c < n; c++) { /* each group's kernel runs at its last member */
        if (group[c] != c) continue;
        weft_node roots[WEFT_FUSED_MAX_INSTR + 1];
        int nx, n_roots = group_roots(s, twin, chain, c, roots, &nx);
        last_of[c] = 0;
        for (int k = 0; k < n_roots; k++)
            for (weft_node x = roots[k], m = x; m != WEFT_NONE; m = member_after(root_of, next, x, m))
                if (m > last_of[c]) last_of[c] = m;
        inside[last_of[c]] = c + 1;
    }
    for (int c = 0; c < n; c++) {
        if (group[c] != c) continue;
        weft_shape part = s->nodes[weft_in_of(s, c, 0)].shape;
        const weft_node last = last_of[c];
        weft_node cols[WEFT_FUSED_MAX_OUT];
        const int nr = group_cols(s, twin, c, cols);
        for (int grew = 1; grew;) {
            grew = 0;
            weft_node roots[WEFT_FUSED_MAX_INSTR + 1];
            int nx, n_roots = group_roots(s, twin, chain, c, roots, &nx);
            for (int r = 0; r < n_roots && !grew; r++)
                for (weft_node x = roots[r], m = x; m != WEFT_NONE && !grew; m = member_after(root_of, next, x, m))
                    for (int j = 0; j < s->nodes[m].n_in && !grew; j++) {
                        weft_node y = region_of(root_of, weft_in_of(s, m, j));
                        if (group[y] != WEFT_NONE || !(root_of[y] == y || (root_of[y] == WEFT_NONE && fusible(s, y))) ||
                            !weft_shape_eq(s->nodes[y].shape, part) || s->nodes[y].dtype != s->nodes[c].dtype)
                            continue;
                        int ok = 1;
                        for (weft_node u = y; u != WEFT_NONE && ok; u = member_after(root_of, next, y, u))
                            for (int q = coff[u]; q < coff[u + 1] && ok; q++) {
                                weft_node rq = region_of(root_of, cons[q]);
                                /* where the reader runs: its group's or region's kernel, or itself */
                                weft_node at = group[rq] != WEFT_NONE ? last_of[group[rq]] : rq;
                                ok = group[rq] == c || rq == y || at > last;
                            }
                        int size, n_ins, n_extra;
                        if (ok) group_stats(rw, root_of, next, group, twin, chain, coff, cons, c, y, &size, &n_ins, &n_extra);
                        if (!ok || size > WEFT_FUSED_MAX_INSTR || n_ins > WEFT_FUSED_MAX_INPUTS ||
                            nr + n_extra > WEFT_FUSED_MAX_OUT)
                            continue;
                        if (root_of[y] == WEFT_NONE) root_of[y] = y, next[y] = WEFT_NONE; /* a region of one */
                        group[y] = c;
                        chain[y] = chain[c];
                        chain[c] = y;
                        grew = 1;
                    }
        }
    }
    /* The groups a concat stacks (each backward step's gate gradients)
     * must be kernels of one width for stack_of_columns: one with fewer
     * values read later (the last step's dc is read by nothing) writes
     * absorbed values nobody reads, as many as it takes (when it has them). */
    for (int c = 0; c < n; c++) pad[c] = 0;
    for (int c = 0; c < n; c++) {
        const weft_node_rec *rc = &s->nodes[c];
        if (!rw->live[c] || rc->kind != WEFT_NODE_OP || rc->op != WEFT_OP_concat || rc->attr.i[0] != 0) continue;
        int widest = 0, ok = 1, size, n_ins;
        weft_node cols[WEFT_FUSED_MAX_OUT];
        const int nc0 = group[weft_in_of(s, c, 0)] == weft_in_of(s, c, 0) ? group_cols(s, twin, weft_in_of(s, c, 0), cols) : -1;
        for (int k = 0; k < rc->n_in && ok; k++) { /* pad[x]: x's values read later, for now */
            weft_node x = weft_in_of(s, c, k);
            ok = group[x] == x && group_cols(s, twin, x, cols) == nc0;
            if (ok) group_stats(rw, root_of, next, group, twin, chain, coff, cons, x, WEFT_NONE, &size, &n_ins, &pad[x]);
            if (ok && pad[x] > widest) widest = pad[x];
        }
        for (int k = 0; k < rc->n_in; k++) {
            weft_node x = weft_in_of(s, c, k);
            if (group[x] == x) pad[x] = ok && nc0 + widest <= WEFT_FUSED_MAX_OUT ? widest - pad[x] : 0;
        }
    }
    for (int at = 0; at < n; at++) {
        int i = at;
        if (group[at] == at) continue; /* emitted at its last member */
        if (inside[at]) i = inside[at] - 1; /* a concat group's last member: the group's turn */
        if (group[i] == i) { /* a concat of regions: their members, its inputs as outputs */
            weft_node outs[WEFT_FUSED_MAX_OUT], roots[WEFT_FUSED_MAX_INSTR + 1];
            const int nc = group_cols(s, twin, i, outs);
            int nm = 0, no = nc, nx, n_roots = group_roots(s, twin, chain, i, roots, &nx);
            for (int r = 0; r < n_roots; r++) /* the concats' inputs are its outputs; absorbed values read later too */
                for (weft_node x = roots[r], m = x; m != WEFT_NONE; m = member_after(root_of, next, x, m)) {
                    members[nm++] = m;
                    if (r >= nx && read_outside(root_of, group, coff, cons, m, i, WEFT_NONE)) outs[no++] = m;
                }
            /* as wide as its stack's other kernels: absorbed values read by
             * nothing after, written anyway (an instruction has one output) */
            const int width = no + pad[i];
            for (int r = nx; r < n_roots && no < width; r++)
                for (weft_node m = roots[r]; m != WEFT_NONE && no < width; m = next[m]) {
                    int dup = 0;
                    for (int k = nc; k < no && !dup; k++) dup = outs[k] == m;
                    if (!dup) outs[no++] = m;
                }
            weft_shape S = s->nodes[outs[0]].shape;
            weft_node f = emit(rw, root_of, coff, cons, members, nm, outs, no, i, S);
            rw->map[i] = f;
            const int fused = rw->dst->nodes[f].kind == WEFT_NODE_OP && rw->dst->nodes[f].op == WEFT_OP_fused;
            if (!fused && twin[i] != WEFT_NONE) rw->map[twin[i]] = weft_rw_copy(rw, twin[i]); /* the members were copied */
            if (fused && no > s->nodes[i].n_in) {
                /* the concat is the first columns, its twin's the next; each later value its own */
                int ax = S.ndim - 1;
                int64_t D = S.dim[ax], n_in = s->nodes[i].n_in;
                rw->map[i] = weft_slice(rw->dst, f, ax, 0, n_in * D);
                weft_rw_stamp(rw, rw->map[i], i);
                if (twin[i] != WEFT_NONE) {
                    rw->map[twin[i]] = weft_slice(rw->dst, f, ax, n_in * D, nc * D);
                    weft_rw_stamp(rw, rw->map[twin[i]], twin[i]);
                    weft_rw_note(rw, f, "%d ops, %d outputs side by side: two concats sharing values (fuse): %s", nm, no,
                                 rw->dst->progs[rw->dst->nodes[f].attr.i[0]].label);
                }
                for (int k = nc; k < no; k++) {
                    rw->map[outs[k]] = weft_slice(rw->dst, f, ax, k * D, (k + 1) * D);
                    weft_rw_stamp(rw, rw->map[outs[k]], outs[k]);
                }
            }
            continue;
        }
        if (group[i] != WEFT_NONE) continue; /* emitted with its concat */
        if (root_of[i] == WEFT_NONE) {
            weft_node v = stack_of_columns(rw, i, stacks, &n_stacks);
            rw->map[i] = v != WEFT_NONE ? v : weft_rw_copy(rw, i);
            continue;
        }
        if (root_of[i] != i) continue; /* emitted with its root */
        int nm = 0;
        for (weft_node k = i; k != WEFT_NONE; k = next[k]) members[nm++] = k;
        emit(rw, root_of, coff, cons, members, nm, NULL, 0, i, s->nodes[i].shape);
    }
    goto done;
oom:
    st = weft_error(WEFT_ERR_NOMEM, "fuse: out of memory");
done:
    free(root_of); free(inside); free(stack); free(members); free(next); free(group); free(chain); free(twin); free(stacks); free(last_of); free(pad); free(coff); free(cons);
    return st;
}
