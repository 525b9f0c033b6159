#include "testutil.h"

#include <stdlib.h>
#include <string.h>

void tu_fill(double *p, int64_t n, uint64_t seed, double lo, double hi, int signed_) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) * 0x1.0p-53;
        double v = lo + (hi - lo) * u;
        if (signed_ && (s >> 7 & 1)) v = -v;
        p[i] = v;
    }
}

static void *filled(weft_dtype t, weft_shape s, uint64_t seed, double lo, double hi, int signed_) {
    int64_t n = weft_shape_numel(s);
    double *d = malloc((size_t)n * sizeof *d);
    tu_fill(d, n, seed, lo, hi, signed_);
    if (t == WEFT_F32) {
        float *f = malloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < n; i++) f[i] = (float)d[i];
        free(d);
        return f;
    }
    return d;
}

weft_node tu_param(weft_graph *g, const char *name, weft_dtype t, weft_shape s, uint64_t seed,
                   double lo, double hi, int signed_) {
    weft_node p = weft_param(g, name, t, s);
    if (p == WEFT_NONE) return p;
    void *d = filled(t, s, seed, lo, hi, signed_);
    weft_param_set(g, p, d, (size_t)weft_shape_numel(s) * weft_dtype_size(t));
    free(d);
    return p;
}

weft_node tu_const(weft_graph *g, weft_dtype t, weft_shape s, uint64_t seed, double lo, double hi) {
    void *d = filled(t, s, seed, lo, hi, 1);
    weft_node c = weft_const(g, NULL, t, s, d);
    free(d);
    return c;
}

weft_node tu_weighted_sum(weft_graph *g, weft_node y, uint64_t seed) {
    if (y == WEFT_NONE) return y;
    weft_node r = tu_const(g, weft_node_dtype(g, y), weft_node_shape(g, y), seed, 0.5, 1.5);
    return weft_sum(g, weft_mul(g, y, r), NULL, 0, 0);
}

const weft_pass_stat *tu_pass_stat(const weft_compile_report *r, const char *name) {
    for (int k = 0; k < r->n_passes; k++)
        if (!strcmp(r->pass[k].name, name)) return &r->pass[k];
    return NULL;
}

int tu_count_op_shaped(const weft_graph *g, const char *name, weft_shape s) {
    int c = 0;
    for (int i = 0; i < weft_graph_node_count(g); i++) {
        const char *op = weft_node_op_name(g, i);
        c += op && !strcmp(op, name) && (s.ndim < 0 || weft_shape_eq(weft_node_shape(g, i), s));
    }
    return c;
}

int tu_count_op(const weft_graph *g, const char *name) { return tu_count_op_shaped(g, name, (weft_shape){.ndim = -1}); }
