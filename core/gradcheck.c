/* Gradient checking by central differences: the test of every VJP rule. */
#include <math.h>
#include <string.h>

#include "graph_internal.h"

static double get(const void *p, weft_dtype t, int64_t i) {
    return t == WEFT_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}
static void set(void *p, weft_dtype t, int64_t i, double v) {
    if (t == WEFT_F32) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
}

static weft_status run_loss(weft_exec *e, weft_node loss, const weft_node *feed_nodes,
                            void *const *bufs, const size_t *sizes, int n_feeds, double *out) {
    weft_status s;
    weft_tensor t;
    for (int k = 0; k < n_feeds; k++)
        if ((s = weft_exec_feed(e, feed_nodes[k], bufs[k], sizes[k]))) return s;
    weft_exec_set_counter(e, 0); /* every run draws the same dropout masks */
    if ((s = weft_exec_run(e)) || (s = weft_exec_value(e, loss, &t))) return s;
    *out = weft_tensor_get(&t, 0);
    return WEFT_OK;
}

weft_status weft_gradcheck(weft_graph *g, weft_node loss, const weft_node *wrt, int n,
                           const weft_node *feed_nodes, const void *const *feeds, int n_feeds,
                           double eps, double atol, double rtol, weft_gradcheck_result *res) {
    memset(res, 0, sizeof *res);
    weft_node *grads = calloc((size_t)n + 1, sizeof *grads), *outs = calloc((size_t)n + 1, sizeof *outs);
    void **bufs = calloc((size_t)n_feeds + 1, sizeof *bufs);
    size_t *sizes = calloc((size_t)n_feeds + 1, sizeof *sizes);
    weft_exec *e = NULL;
    double *ana = NULL;
    weft_status s = WEFT_OK;
    if (!grads || !outs || !bufs || !sizes) { s = weft_error(WEFT_ERR_NOMEM, "gradcheck: out of memory"); goto done; }
    for (int k = 0; k < n_feeds; k++) {
        weft_shape sh = weft_node_shape(g, feed_nodes[k]);
        sizes[k] = (size_t)weft_shape_numel(sh) * weft_dtype_size(weft_node_dtype(g, feed_nodes[k]));
        if (!(bufs[k] = malloc(sizes[k]))) { s = weft_error(WEFT_ERR_NOMEM, "gradcheck: out of memory"); goto done; }
        memcpy(bufs[k], feeds[k], sizes[k]);
    }
    if ((s = weft_grad(g, loss, wrt, n, grads))) goto done;
    outs[0] = loss;
    memcpy(outs + 1, grads, (size_t)n * sizeof *grads);
    if (!(e = weft_exec_new(g, outs, n + 1))) { s = WEFT_ERR_ARG; goto done; }
    double base;
    if ((s = run_loss(e, loss, feed_nodes, bufs, sizes, n_feeds, &base))) goto done;
    for (int k = 0; k < n; k++) {
        weft_node w = wrt[k];
        weft_dtype t = weft_node_dtype(g, w);
        int64_t N = weft_shape_numel(weft_node_shape(g, w));
        /* Analytic gradient from the run that just happened (re-run: the
         * loop below perturbs and re-runs). */
        if ((s = run_loss(e, loss, feed_nodes, bufs, sizes, n_feeds, &base))) goto done;
        free(ana);
        if (!(ana = malloc((size_t)N * sizeof *ana))) { s = weft_error(WEFT_ERR_NOMEM, "gradcheck: out of memory"); goto done; }
        weft_tensor gt;
        if ((s = weft_exec_value(e, grads[k], &gt))) goto done;
        for (int64_t i = 0; i < N; i++) ana[i] = weft_tensor_get(&gt, i);
        /* Where the perturbed value lives: parameter storage or a feed copy. */
        void *data = NULL;
        if (weft_node_kind_of(g, w) == WEFT_NODE_PARAM || weft_node_kind_of(g, w) == WEFT_NODE_CONST) {
            data = weft_param_data(g, w);
        } else {
            for (int f = 0; f < n_feeds; f++)
                if (feed_nodes[f] == w) data = bufs[f];
        }
        if (!data) { s = weft_error(WEFT_ERR_ARG, "gradcheck: wrt[%d] is neither a parameter nor a fed input", k); goto done; }
        for (int64_t i = 0; i < N; i++) {
            double x0 = get(data, t, i), lp, lm;
            set(data, t, i, x0 + eps);
            s = run_loss(e, loss, feed_nodes, bufs, sizes, n_feeds, &lp);
            set(data, t, i, x0 - eps);
            if (!s) s = run_loss(e, loss, feed_nodes, bufs, sizes, n_feeds, &lm);
            set(data, t, i, x0);
            if (s) goto done;
            double num = (lp - lm) / (2 * eps), err = fabs(num - ana[i]);
            double rel = err / (fabs(num) > 1e-12 ? fabs(num) : 1e-12);
            res->checked++;
            if (!(err <= atol + rtol * fabs(num))) res->failures++;
            if (err > res->max_abs_err || isnan(err)) {
                const char *nm = weft_node_name(g, w);
                snprintf(res->worst, sizeof res->worst, "%s[%lld]: analytic %.10g, numeric %.10g",
                         nm ? nm : "wrt", (long long)i, ana[i], num);
                res->max_abs_err = isnan(err) ? INFINITY : err;
            }
            if (rel > res->max_rel_err) res->max_rel_err = rel;
        }
    }
done:
    weft_exec_free(e);
    for (int k = 0; k < n_feeds && bufs; k++) free(bufs[k]);
    free(bufs); free(sizes); free(grads); free(outs); free(ana);
    return s;
}
