/* Algebraic simplification: x*1, x+0, x-0, x/1, neg(neg x), identity views
 * (reshape/broadcast to the same shape, full slices, casts to the same
 * dtype, stop_gradient after autodiff), reshape chains, transpose chains,
 * a sum keeping dims then reshaped to drop them (a plain sum),
 * concats of consecutive slices of one tensor (which is that tensor), two
 * row stacks of the same parts shifted (one stack, two windows), and
 * slices pushed through elementwise ops that only slices read:
 * slice(a + b) = slice(a) + slice(b).  The last turns the gate
 * pre-activations of a step (x W_ih^T + b_ih + h W_hh^T + b_hh, read as
 * four gate slices) into per-gate sums that fusion puts in the gates'
 * kernel, instead of a kernel of their own writing a buffer read once. */
#include <string.h>

#include "pass.h"

static const weft_node_rec *R(const weft_graph *g, weft_node n) { return &g->nodes[n]; }

static int is_fill_value(const weft_graph *g, weft_node n, double v) {
    double f;
    return weft_is_fill(g, n, &f) && f == v;
}

/* Source of a "window" along an axis: slice(base, axis, s, e) possibly
 * under a reshape that only merges or drops the sliced axis.  Reports the
 * base, the axis, and the range in base rows. */
typedef struct { weft_node base; int axis; int64_t start, end; } window;

static int as_window(const weft_graph *g, weft_node n, window *w) {
    const weft_node_rec *r = R(g, n);
    if (r->kind != WEFT_NODE_OP || r->op != WEFT_OP_slice) return 0;
    w->base = weft_in_of(g, n, 0);
    w->axis = (int)r->attr.i[0];
    w->start = r->attr.i[1];
    w->end = r->attr.i[2];
    return 1;
}

/* concat(slice(b, ax, 0, k1), slice(b, ax, k1, k2), ...) along ax over the
 * whole of b's axis -> b; a consecutive part -> one slice. */
static weft_node concat_of_slices(weft_rw *rw, weft_node i, const weft_node *in, int n, int axis) {
    const weft_graph *d = rw->dst;
    window w0, w;
    if (!as_window(d, in[0], &w0) || w0.axis != axis) return WEFT_NONE;
    int64_t at = w0.end;
    for (int k = 1; k < n; k++) {
        if (!as_window(d, in[k], &w) || w.base != w0.base || w.axis != axis || w.start != at) return WEFT_NONE;
        at = w.end;
    }
    if (w0.start == 0 && at == R(d, w0.base)->shape.dim[axis]) return w0.base;
    weft_attr a = {.i = {axis, w0.start, at}};
    return weft_rw_op(rw, i, WEFT_OP_slice, &w0.base, 1, &a);
}

/* Rows of a 2-D node n as a window of a base tensor: n = slice(b2, 0, s, e)
 * of a 2-D b2, or n = reshape(slice(b, 0, s, e), [rows, K]) of an N-D b whose
 * last axis is K.  unit = rows per index of b's first axis. */
typedef struct { weft_node base; int64_t unit, start, end; } rows_window;

static int as_rows(const weft_graph *d, weft_node n, rows_window *w) {
    const weft_node_rec *r = R(d, n);
    if (r->kind != WEFT_NODE_OP || r->shape.ndim != 2) return 0;
    weft_node s = n;
    if (r->op == WEFT_OP_reshape) s = weft_in_of(d, n, 0);
    const weft_node_rec *rs = R(d, s);
    if (rs->kind != WEFT_NODE_OP || rs->op != WEFT_OP_slice || rs->attr.i[0] != 0) return 0;
    weft_node b = weft_in_of(d, s, 0);
    weft_shape bs = R(d, b)->shape;
    if (bs.ndim < 2 || bs.dim[bs.ndim - 1] != r->shape.dim[1]) return 0;
    int64_t unit = 1;
    for (int k = 1; k < bs.ndim - 1; k++) unit *= bs.dim[k];
    if ((rs->attr.i[2] - rs->attr.i[1]) * unit != r->shape.dim[0]) return 0;
    *w = (rows_window){b, unit, rs->attr.i[1], rs->attr.i[2]};
    return 1;
}

weft_node weft_rw_concat_rows(weft_rw *rw, weft_node like, const weft_node *parts, int n) {
    weft_graph *d = rw->dst;
    rows_window w0, w;
    int windows = as_rows(d, parts[0], &w0);
    int64_t at = windows ? w0.end : 0;
    for (int k = 1; windows && k < n; k++) {
        windows = as_rows(d, parts[k], &w) && w.base == w0.base && w.start == at;
        at = w.end;
    }
    if (!windows) {
        weft_attr a = {.i = {0}};
        return n == 1 ? parts[0] : weft_rw_op(rw, like, WEFT_OP_concat, parts, n, &a);
    }
    weft_shape bs = R(d, w0.base)->shape;
    int64_t K = bs.dim[bs.ndim - 1];
    weft_attr ra = {.shape = WEFT_SHAPE(bs.dim[0] * w0.unit, K)};
    weft_node flat = bs.ndim == 2 ? w0.base : weft_rw_op(rw, like, WEFT_OP_reshape, &w0.base, 1, &ra);
    if (w0.start == 0 && at == bs.dim[0]) return flat;
    weft_attr sa = {.i = {0, w0.start * w0.unit, at * w0.unit}};
    return weft_rw_op(rw, like, WEFT_OP_slice, &flat, 1, &sa);
}

/* Two row stacks of the same [R, K] parts, shifted: src concat i stacks
 * a_0..a_{n-1} and a later concat j stacks b_0..b_{m-1} with b_k = a_{k-d}
 * wherever both are defined (the step outputs h_1..h_T, and h_0..h_{T-1}
 * stacked by batch-wgrad for dW_hh).  Both become row windows of one
 * concat of their union, so the memory plan writes each part once, where
 * the second stack would have copied all of them.  Emitted at i when j's
 * parts all come before i; j's window waits in later[j].  Overlaps shorter
 * than two parts are left alone. */
static weft_node shared_stack(weft_rw *rw, weft_node i, const weft_node *in, int n, weft_node *later) {
    const weft_graph *src = rw->src;
    weft_graph *d = rw->dst;
    const weft_node_rec *ri = R(src, i);
    if (ri->attr.i[0] != 0 || ri->shape.ndim != 2 || n < 2) return WEFT_NONE;
    for (int k = 1; k < n; k++)
        if (!weft_shape_eq(R(d, in[k])->shape, R(d, in[0])->shape)) return WEFT_NONE;
    const int64_t rows = R(d, in[0])->shape.dim[0];
    for (weft_node j = i + 1; j < src->n; j++) {
        const weft_node_rec *rj = R(src, j);
        if (!rw->live[j] || rj->kind != WEFT_NODE_OP || rj->op != WEFT_OP_concat || rj->attr.i[0] != 0 ||
            later[j] != WEFT_NONE || rj->dtype != ri->dtype || rj->shape.ndim != 2 || rj->shape.dim[1] != ri->shape.dim[1])
            continue;
        int m = rj->n_in, ok = 1;
        for (int k = 0; k < m && ok; k++) {
            weft_node x = weft_in_of(src, j, k);
            ok = x < i && weft_shape_eq(R(d, rw->map[x])->shape, R(d, in[0])->shape);
        }
        if (!ok) continue;
        /* the shift d: where a_0 sits in j, or minus where b_0 sits in i */
        int shift = 0, found = 0;
        for (int q = 0; q < m && !found; q++) found = rw->map[weft_in_of(src, j, q)] == in[0], shift = q;
        for (int q = 1; q < n && !found; q++) found = in[q] == rw->map[weft_in_of(src, j, 0)], shift = -q;
        if (!found) continue;
        int lo = shift < 0 ? shift : 0, hi = shift + n > m ? shift + n : m, overlap = 0;
        for (int k = 0; k < m && ok; k++) /* b_k against a_{k - shift} */
            if (k - shift >= 0 && k - shift < n) {
                ok = rw->map[weft_in_of(src, j, k)] == in[k - shift];
                overlap++;
            }
        if (!ok || overlap < 2) continue;
        weft_node *parts = malloc((size_t)(hi - lo) * sizeof *parts);
        if (!parts) return WEFT_NONE;
        for (int k = lo; k < hi; k++) /* union position k: a_{k - shift} or b_k */
            parts[k - lo] = k - shift >= 0 && k - shift < n ? in[k - shift] : rw->map[weft_in_of(src, j, k)];
        weft_attr ca = {.i = {0}};
        weft_node all = weft_rw_op(rw, i, WEFT_OP_concat, parts, hi - lo, &ca);
        free(parts);
        weft_attr sj = {.i = {0, (0 - lo) * rows, (m - lo) * rows}};
        later[j] = weft_rw_op(rw, j, WEFT_OP_slice, &all, 1, &sj);
        weft_rw_note(rw, later[j], "rows of one stack shared with an earlier concat (simplify)");
        weft_attr si = {.i = {0, (shift - lo) * rows, (shift + n - lo) * rows}};
        return weft_rw_op(rw, i, WEFT_OP_slice, &all, 1, &si);
    }
    return WEFT_NONE;
}

/* concat along axis 0 of reshape(x_k, [1, rest...]) with every x_k of
 * shape [rest...] -> reshape(concat(x_k along axis 0), [n, rest...])  when
 * rest[0] rows stack (e.g. the step outputs h_t [B, H] stacked into
 * [T, B, H]): the producers can then be planned straight into one buffer. */
static weft_node concat_of_unit_reshapes(weft_rw *rw, weft_node i, const weft_node *in, int n) {
    const weft_graph *d = rw->dst;
    weft_node *xs = malloc((size_t)n * sizeof *xs);
    if (!xs) return WEFT_NONE;
    weft_shape first = {0, {0}};
    int ok = n > 1;
    for (int k = 0; ok && k < n; k++) {
        const weft_node_rec *r = R(d, in[k]);
        ok = r->kind == WEFT_NODE_OP && r->op == WEFT_OP_reshape && r->shape.ndim >= 2 && r->shape.dim[0] == 1;
        if (!ok) break;
        xs[k] = weft_in_of(d, in[k], 0);
        weft_shape xsh = R(d, xs[k])->shape;
        ok = xsh.ndim == r->shape.ndim - 1;
        for (int q = 0; ok && q < xsh.ndim; q++) ok = xsh.dim[q] == r->shape.dim[q + 1];
        if (k == 0) first = xsh;
        ok = ok && weft_shape_eq(xsh, first);
    }
    weft_node out = WEFT_NONE;
    if (ok) {
        weft_attr ca = {.i = {0}};
        weft_node cat = weft_rw_op(rw, i, WEFT_OP_concat, xs, n, &ca);
        weft_attr ra = {.shape = R(rw->src, i)->shape};
        out = weft_rw_op(rw, i, WEFT_OP_reshape, &cat, 1, &ra);
    }
    free(xs);
    return out;
}

/* Is n = sum(x, axes, keepdims) and `to` its shape without the kept unit
 * axes?  (A gradient reduced to a bias's shape is written that way: sum
 * keeping dims, then reshape.)  The plain sum is what batch-wgrad stacks. */
static int squeezes_sum(const weft_graph *d, weft_node n, weft_shape to) {
    const weft_node_rec *r = R(d, n);
    if (r->kind != WEFT_NODE_OP || r->op != WEFT_OP_sum || !r->attr.i[1]) return 0;
    weft_shape x = R(d, weft_in_of(d, n, 0))->shape, s = {0, {0}};
    for (int k = 0; k < x.ndim; k++)
        if (!(r->attr.i[0] >> k & 1)) s.dim[s.ndim++] = x.dim[k];
    return weft_shape_eq(s, to);
}

static int pushable(const weft_graph *g, weft_node e) {
    const weft_node_rec *r = R(g, e);
    return r->kind == WEFT_NODE_OP && (weft_ops[r->op].flags & WEFT_OPF_ELEMENTWISE) && r->op != WEFT_OP_cast;
}

/* slice(e, ax, s0, s1) of src node e, as e's op applied to slices of its
 * inputs (an input broadcast along the axis is taken whole).  An input
 * read by e alone is pushed through in turn, a few levels deep. */
static weft_node push_slice(weft_rw *rw, weft_node e, int ax, int64_t s0, int64_t s1, weft_node like, int depth) {
    const weft_graph *src = rw->src;
    const weft_node_rec *r = R(src, e);
    if (depth > 0 && (depth > 6 || !pushable(src, e) || rw->uses[e] != 1)) {
        weft_attr a = {.i = {ax, s0, s1}};
        weft_node m = rw->map[e];
        return weft_rw_op(rw, like, WEFT_OP_slice, &m, 1, &a);
    }
    weft_node ins[3];
    for (int k = 0; k < r->n_in && k < 3; k++) {
        weft_node x = weft_in_of(src, e, k);
        weft_shape xs = R(src, x)->shape;
        int xa = ax - (r->shape.ndim - xs.ndim);
        ins[k] = xa < 0 || xs.dim[xa] == 1 ? rw->map[x] : push_slice(rw, x, xa, s0, s1, like, depth + 1);
    }
    weft_attr a = r->attr;
    return weft_rw_op(rw, like, r->op, ins, r->n_in, &a);
}

weft_status weft_pass_simplify(weft_rw *rw) {
    const weft_graph *src = rw->src;
    weft_graph *d = rw->dst;
    /* slice_uses: readers that are slices; unfused: read by something other
     * than an elementwise op of its own shape (a slice so read gains
     * nothing from being pushed: its pieces would run as kernels of their
     * own, one per slice, where one kernel ran before) */
    int *slice_uses = calloc((size_t)src->n + 1, sizeof *slice_uses);
    uint8_t *unfused = calloc((size_t)src->n + 1, 1);
    weft_node *later = malloc(((size_t)src->n + 1) * sizeof *later); /* shared_stack's windows */
    if (!slice_uses || !unfused || !later) {
        free(slice_uses);
        free(unfused);
        free(later);
        return weft_error(WEFT_ERR_NOMEM, "simplify: out of memory");
    }
    for (int i = 0; i < src->n; i++) later[i] = WEFT_NONE;
    for (int i = 0; i < src->n; i++) {
        const weft_node_rec *r = &src->nodes[i];
        if (!rw->live[i] || r->kind != WEFT_NODE_OP) continue;
        if (r->op == WEFT_OP_slice) slice_uses[weft_in_of(src, i, 0)]++;
        for (int k = 0; k < r->n_in; k++) {
            weft_node x = weft_in_of(src, i, k);
            if (!pushable(src, i) || !weft_shape_eq(r->shape, src->nodes[x].shape)) unfused[x] = 1;
        }
    }
    for (int i = 0; i < src->n; i++) {
        const weft_node_rec *r = &src->nodes[i];
        if (r->kind != WEFT_NODE_OP) {
            rw->map[i] = weft_rw_copy(rw, i);
            continue;
        }
        weft_node a = r->n_in > 0 ? weft_rw_in(rw, i, 0) : WEFT_NONE;
        weft_node b = r->n_in > 1 ? weft_rw_in(rw, i, 1) : WEFT_NONE;
        weft_node out = WEFT_NONE;
        int same_a = a != WEFT_NONE && weft_shape_eq(R(d, a)->shape, r->shape) && R(d, a)->dtype == r->dtype;
        int same_b = b != WEFT_NONE && weft_shape_eq(R(d, b)->shape, r->shape) && R(d, b)->dtype == r->dtype;
        switch (r->op) {
        case WEFT_OP_mul:
            if (same_a && is_fill_value(d, b, 1)) out = a;
            else if (same_b && is_fill_value(d, a, 1)) out = b;
            break;
        case WEFT_OP_add:
            if (same_a && is_fill_value(d, b, 0)) out = a;
            else if (same_b && is_fill_value(d, a, 0)) out = b;
            break;
        case WEFT_OP_sub:
            if (same_a && is_fill_value(d, b, 0)) out = a;
            break;
        case WEFT_OP_div:
            if (same_a && is_fill_value(d, b, 1)) out = a;
            break;
        case WEFT_OP_neg:
            if (R(d, a)->kind == WEFT_NODE_OP && R(d, a)->op == WEFT_OP_neg) out = weft_in_of(d, a, 0);
            break;
        case WEFT_OP_stop_gradient: /* only autodiff cares, and it has run */
        case WEFT_OP_broadcast:
        case WEFT_OP_cast:
            if (same_a) out = a;
            break;
        case WEFT_OP_reshape:
            if (same_a) out = a;
            else if (squeezes_sum(d, a, r->shape)) {
                weft_node x = weft_in_of(d, a, 0);
                weft_attr sa = R(d, a)->attr;
                sa.i[1] = 0;
                out = weft_rw_op(rw, i, WEFT_OP_sum, &x, 1, &sa);
            } else if (R(d, a)->kind == WEFT_NODE_OP && R(d, a)->op == WEFT_OP_reshape) {
                weft_node base = weft_in_of(d, a, 0);
                weft_attr at = r->attr;
                out = weft_shape_eq(R(d, base)->shape, r->shape) ? base
                                                                 : weft_rw_op(rw, i, WEFT_OP_reshape, &base, 1, &at);
            }
            break;
        case WEFT_OP_slice: {
            weft_node e = weft_in_of(src, i, 0);
            if (same_a) out = a;
            else if (pushable(src, e) && R(src, e)->n_in <= 3 && slice_uses[e] == rw->uses[e] && !unfused[i])
                out = push_slice(rw, e, (int)r->attr.i[0], r->attr.i[1], r->attr.i[2], i, 0);
            break;
        }
        case WEFT_OP_transpose: {
            int ident = 1;
            for (int k = 0; k < r->shape.ndim; k++) ident &= r->attr.i[k] == k;
            if (ident) out = a;
            else if (R(d, a)->kind == WEFT_NODE_OP && R(d, a)->op == WEFT_OP_transpose) {
                weft_attr at;
                memset(&at, 0, sizeof at);
                const weft_node_rec *ra = R(d, a);
                int id2 = 1;
                for (int k = 0; k < r->shape.ndim; k++) {
                    at.i[k] = ra->attr.i[r->attr.i[k]];
                    id2 &= at.i[k] == k;
                }
                weft_node base = weft_in_of(d, a, 0);
                out = id2 ? base : weft_rw_op(rw, i, WEFT_OP_transpose, &base, 1, &at);
            }
            break;
        }
        case WEFT_OP_concat: {
            weft_node *in = malloc((size_t)r->n_in * sizeof *in);
            if (!in) {
                free(slice_uses);
                free(unfused);
                free(later);
                return weft_error(WEFT_ERR_NOMEM, "simplify: out of memory");
            }
            for (int k = 0; k < r->n_in; k++) in[k] = weft_rw_in(rw, i, k);
            out = later[i] != WEFT_NONE ? later[i] : concat_of_slices(rw, i, in, r->n_in, (int)r->attr.i[0]);
            if (out == WEFT_NONE) out = shared_stack(rw, i, in, r->n_in, later);
            if (out == WEFT_NONE && (int)r->attr.i[0] == 0 && r->shape.ndim == 2)
                out = weft_rw_concat_rows(rw, i, in, r->n_in);
            if (out == WEFT_NONE && (int)r->attr.i[0] == 0) out = concat_of_unit_reshapes(rw, i, in, r->n_in);
            free(in);
            break;
        }
        default:
            break;
        }
        if (out != WEFT_NONE) {
            rw->map[i] = out;
            rw->changes++;
        } else {
            rw->map[i] = weft_rw_copy(rw, i);
        }
    }
    free(slice_uses);
    free(unfused);
    free(later);
    return WEFT_OK;
}
