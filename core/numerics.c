/* Finding the first non-finite value of a run (see include/weft/numerics.h).
 *
 * Uses only the public executor API: the reference executor keeps every
 * node's value until the next run.  A compiled one reuses buffers and runs
 * another graph, so it is refused: replay the run on a reference executor
 * (as the trainer does). */
#include "weft/numerics.h"

#include "weft/compile.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int weft_all_finite(const void *data, weft_dtype t, int64_t n) {
    if (t == WEFT_F32) {
        const float *p = data;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(p[i])) return 0;
    } else if (t == WEFT_F64) {
        const double *p = data;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(p[i])) return 0;
    }
    return 1;
}

/* Index of the first non-finite element of t (any strides), or -1. */
static int64_t first_bad(const weft_tensor *t, double *value) {
    if (t->dtype != WEFT_F32 && t->dtype != WEFT_F64) return -1;
    int64_t n = weft_shape_numel(t->shape);
    if (weft_tensor_is_contiguous(t) && weft_all_finite(t->data, t->dtype, n)) return -1;
    for (int64_t i = 0; i < n; i++) {
        double v = weft_tensor_get(t, i);
        if (!isfinite(v)) {
            *value = v;
            return i;
        }
    }
    return -1;
}

static const char *kind_name(const weft_graph *g, weft_node n) {
    switch (weft_node_kind_of(g, n)) {
    case WEFT_NODE_PARAM: return "parameter";
    case WEFT_NODE_INPUT: return "input";
    case WEFT_NODE_CONST: return "constant";
    case WEFT_NODE_OP: break;
    }
    return weft_node_op_name(g, n);
}

/* "node 57: sigmoid 'i' [2, 5] (layer 0, direction 1, time step 3)" */
static void describe(const weft_graph *g, weft_node n, char *buf, size_t cap) {
    char sh[96];
    const char *name = weft_node_name(g, n);
    weft_shape_str(weft_node_shape(g, n), sh, sizeof sh);
    int k = snprintf(buf, cap, "node %d: %s%s%s%s %s", (int)n, kind_name(g, n),
                     name ? " '" : "", name ? name : "", name ? "'" : "", sh);
    weft_site s = weft_node_site(g, n);
    if (k >= 0 && (size_t)k < cap && (s.layer >= 0 || s.step >= 0))
        snprintf(buf + k, cap - (size_t)k, " (layer %d, direction %d, time step %d)", s.layer,
                 s.dir, (int)s.step);
}

weft_status weft_exec_check_finite(weft_exec *e, const weft_graph *g, weft_nonfinite *where) {
    weft_nonfinite tmp;
    if (!where) where = &tmp;
    *where = (weft_nonfinite){WEFT_NONE, -1, 0};
    if (!e || !g) return weft_error(WEFT_ERR_ARG, "check_finite: NULL argument");
    if (weft_exec_graph(e) != g)
        return weft_error(WEFT_ERR_ARG, "check_finite: needs a reference executor of this graph "
                          "(weft_exec_new): a compiled one reuses its buffers");
    int n = weft_graph_node_count(g);
    for (weft_node i = 0; i < n; i++) {
        weft_tensor t;
        if (!weft_exec_uses(e, i) || weft_exec_value(e, i, &t) || !t.data) continue;
        double v = 0;
        int64_t at = first_bad(&t, &v);
        if (at < 0) continue;
        *where = (weft_nonfinite){i, at, v};

        char what[320], fwd[360] = "", ins[600] = "";
        describe(g, i, what, sizeof what);
        weft_node of = weft_node_grad_of(g, i);
        if (of != WEFT_NONE) {
            char d[300];
            describe(g, of, d, sizeof d);
            snprintf(fwd, sizeof fwd, "; in the backward pass, for %s", d);
        }
        weft_node in[8];
        int n_in = weft_node_inputs(g, i, in, 8);
        size_t used = 0;
        for (int k = 0; k < n_in && k < 8 && used < sizeof ins; k++) {
            const char *nm = weft_node_name(g, in[k]);
            int w = snprintf(ins + used, sizeof ins - used, "%s%d %s%s%s%s", k ? ", " : "; inputs: ",
                             (int)in[k], kind_name(g, in[k]), nm ? " '" : "", nm ? nm : "",
                             nm ? "'" : "");
            if (w < 0) break;
            used += (size_t)w;
        }
        return weft_error(WEFT_ERR_NUMERIC, "first non-finite value at %s, element %" PRId64
                          " = %s%s%s", what, at, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", fwd,
                          ins);
    }
    return WEFT_OK;
}
