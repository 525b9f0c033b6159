/* weft_exec_set_on_ready: during every run, once per distinct output, with
 * the caller's node id (the source graph's for a compiled executor), after
 * the output is computed (its value, read inside the callback, is the one
 * the run ends with), in the same order on every run; also with inter-op
 * workers asked for (they are not used while a callback is set). */
#include <criterion/criterion.h>
#include <string.h>

#include "testutil.h"
#include "weft/compile.h"
#include "weft/rnn.h"

#define S(...) WEFT_SHAPE(__VA_ARGS__)
#define MAXO 64

typedef struct {
    weft_exec *e;
    weft_node seen[4 * MAXO];
    double first[4 * MAXO];     /* first element of the value read in the callback */
    int n;
} probe;

static double first_elem(weft_exec *e, weft_node n) {
    weft_tensor t;
    cr_assert_eq(weft_exec_value(e, n, &t), WEFT_OK, "%s", weft_last_error());
    return t.dtype == WEFT_F32 ? (double)*(const float *)t.data : *(const double *)t.data;
}

static void on_ready(void *ctx, weft_node n) {
    probe *p = ctx;
    cr_assert_lt(p->n, 4 * MAXO);
    p->first[p->n] = first_elem(p->e, n);
    p->seen[p->n++] = n;
}

/* A 2-layer bidirectional LSTM (two chains the workers could run side by
 * side); outputs: loss (twice: reported once), the output, every gradient. */
static weft_graph *model(weft_node *outs, int *n_outs, weft_node *x) {
    weft_graph *g = weft_graph_new();
    weft_cell *cell = weft_cell_get("lstm");
    cr_assert(cell, "%s", weft_last_error());
    weft_rnn_config cfg = weft_rnn_config_default(4, 6);
    cfg.num_layers = 2;
    cfg.bidirectional = 1;
    weft_rnn *r;
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_OK, "%s", weft_last_error());
    weft_rng rng = weft_rng_make(5);
    weft_rnn_init(g, r, &rng);
    *x = weft_input(g, "x", WEFT_F32, S(5, 3, 4));
    weft_rnn_inputs in = {.x = *x, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, r, &in, &res), WEFT_OK, "%s", weft_last_error());
    weft_node loss = tu_weighted_sum(g, res.output, 3);
    weft_node wrt[MAXO], grads[MAXO];
    int np = weft_graph_params(g, wrt, MAXO - 4);
    cr_assert_eq(weft_grad(g, loss, wrt, np, grads), WEFT_OK, "%s", weft_last_error());
    int k = 0;
    outs[k++] = loss;
    outs[k++] = res.output;
    for (int i = 0; i < np; i++) outs[k++] = grads[i];
    outs[k++] = loss;
    *n_outs = k;
    weft_rnn_free(r);
    weft_cell_free(cell);
    return g;
}

static void check(int compiled) {
    weft_node outs[MAXO], x;
    int n_outs;
    weft_graph *g = model(outs, &n_outs, &x);
    weft_set_threads(2);
    weft_compile_options opt = {.inter_op = 1};
    weft_exec *e = compiled ? weft_exec_compile(g, outs, n_outs, &opt) : weft_exec_new(g, outs, n_outs);
    cr_assert(e, "%s", weft_last_error());
    if (compiled) /* so that the fixed order without workers is what is tested */
        cr_assert_geq(weft_exec_report(e)->workers, 2);
    float xs[5 * 3 * 4];
    for (int i = 0; i < 60; i++) xs[i] = (float)(i % 7) * 0.1f - 0.3f;
    cr_assert_eq(weft_exec_feed(e, x, xs, sizeof xs), WEFT_OK, "%s", weft_last_error());
    probe p = {.e = e};
    cr_assert_eq(weft_exec_set_on_ready(e, on_ready, &p), WEFT_OK, "%s", weft_last_error());
    weft_node order[MAXO];
    for (int run = 0; run < 2; run++) {
        p.n = 0;
        cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
        cr_assert_eq(p.n, n_outs - 1, "run %d: %d calls for %d distinct outputs", run, p.n,
                     n_outs - 1);
        for (int k = 0; k < n_outs - 1; k++) {
            int hits = 0;
            for (int q = 0; q < p.n; q++) hits += p.seen[q] == outs[k];
            cr_assert_eq(hits, 1, "run %d: output %d (node %d) reported %d times", run, k,
                         (int)outs[k], hits);
        }
        for (int q = 0; q < p.n; q++) {
            cr_assert_eq(p.first[q], first_elem(e, p.seen[q]), "node %d changed after it was "
                         "reported ready", (int)p.seen[q]);
            if (run) cr_assert_eq(p.seen[q], order[q], "the order changed between runs");
            else order[q] = p.seen[q];
        }
    }
    /* removed: no more calls */
    cr_assert_eq(weft_exec_set_on_ready(e, NULL, NULL), WEFT_OK);
    p.n = 0;
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(p.n, 0);
    weft_exec_free(e);
    weft_graph_free(g);
    weft_set_threads(0);
}

Test(exec_ready, reference) { check(0); }
Test(exec_ready, compiled) { check(1); }
