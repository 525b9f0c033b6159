/* Numerics: where a NaN/Inf comes from (weft_exec_check_finite and the
 * trainer's message), losses and gates that stay finite at extreme inputs
 * and long sequences, and determinism (same seed, same bits; 1 or 2
 * threads). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tinymodel.h"
#include "weft/compile.h"
#include "weft/numerics.h"
#include "weft/train.h"

#define assert_msg_has(s) cr_assert(strstr(weft_last_error(), s), "message lacks \"%s\": %s", s, weft_last_error())

/* ------------------------------------------------ finding the first NaN */

Test(numerics, all_finite_helper) {
    float f[3] = {1, 2, 3};
    double d[2] = {0, -1e308};
    cr_assert(weft_all_finite(f, WEFT_F32, 3));
    cr_assert(weft_all_finite(d, WEFT_F64, 2));
    f[2] = INFINITY;
    d[0] = NAN;
    cr_assert_not(weft_all_finite(f, WEFT_F32, 3));
    cr_assert_not(weft_all_finite(d, WEFT_F64, 2));
    int32_t i[2] = {1, 2};
    cr_assert(weft_all_finite(i, WEFT_I32, 2));
}

/* y = sqrt(x) * W; loss = sum(y).  Returns the executor over loss and the
 * gradients of W and x. */
static weft_exec *sqrt_model(weft_graph *g, weft_node *x, weft_node *W, weft_node grads[2]) {
    *x = weft_input(g, "x", WEFT_F64, WEFT_SHAPE(4));
    *W = weft_param(g, "W", WEFT_F64, WEFT_SHAPE(4));
    weft_node r = weft_sqrt(g, *x);
    weft_node_set_name(g, r, "root");
    weft_node loss = weft_sum(g, weft_mul(g, r, *W), NULL, 0, 0);
    weft_node wrt[2] = {*W, *x};
    cr_assert_eq(weft_grad(g, loss, wrt, 2, grads), WEFT_OK, "%s", weft_last_error());
    weft_node outs[3] = {loss, grads[0], grads[1]};
    weft_exec *e = weft_exec_new(g, outs, 3);
    cr_assert(e, "%s", weft_last_error());
    return e;
}

static void run_with(weft_exec *e, weft_graph *g, weft_node x, weft_node W, const double xv[4],
                     const double wv[4]) {
    cr_assert_eq(weft_param_set(g, W, wv, 4 * sizeof(double)), WEFT_OK);
    cr_assert_eq(weft_exec_feed(e, x, xv, 4 * sizeof(double)), WEFT_OK);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
}

Test(numerics, first_nonfinite_node_is_named) {
    weft_graph *g = weft_graph_new();
    weft_node x, W, grads[2];
    weft_exec *e = sqrt_model(g, &x, &W, grads);
    weft_nonfinite where;

    /* all finite */
    run_with(e, g, x, W, (double[4]){1, 4, 9, 16}, (double[4]){1, 1, 1, 1});
    cr_assert_eq(weft_exec_check_finite(e, g, &where), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(where.node, WEFT_NONE);

    /* the op that makes the NaN: sqrt of -1 at element 2; its input is finite */
    run_with(e, g, x, W, (double[4]){1, 4, -1, 16}, (double[4]){1, 1, 1, 1});
    cr_assert_eq(weft_exec_check_finite(e, g, &where), WEFT_ERR_NUMERIC);
    cr_assert_str_eq(weft_node_op_name(g, where.node), "sqrt");
    cr_assert_eq(where.index, 2);
    cr_assert(isnan(where.value));
    assert_msg_has("sqrt 'root' [4]");
    assert_msg_has("element 2 = NaN");
    assert_msg_has("inputs: 0 input 'x'");

    /* a leaf that already holds it: the parameter is named, not the sum */
    run_with(e, g, x, W, (double[4]){1, 4, 9, 16}, (double[4]){1, INFINITY, 1, 1});
    cr_assert_eq(weft_exec_check_finite(e, g, NULL), WEFT_ERR_NUMERIC);
    assert_msg_has("parameter 'W' [4], element 1 = +Inf");

    /* finite forward, infinite backward: d sqrt(x)/dx at 0 */
    run_with(e, g, x, W, (double[4]){1, 0, 9, 16}, (double[4]){1, 1, 1, 1});
    cr_assert_eq(weft_exec_check_finite(e, g, &where), WEFT_ERR_NUMERIC);
    cr_assert(weft_node_is_backward(g, where.node));
    cr_assert_eq(where.index, 1);
    assert_msg_has("in the backward pass, for node");
    assert_msg_has("sqrt 'root'");

    cr_assert_eq(weft_exec_check_finite(NULL, g, NULL), WEFT_ERR_ARG);
    weft_exec *c = weft_exec_compile(g, &grads[0], 1, NULL);
    cr_assert(c, "%s", weft_last_error());
    cr_assert_eq(weft_exec_check_finite(c, g, NULL), WEFT_ERR_ARG);
    assert_msg_has("needs a reference executor");
    weft_exec_free(c);
    weft_exec_free(e);
    weft_graph_free(g);
}

/* A cell whose state goes through log: a negative input at time step 2
 * makes the first NaN there.  The trainer names the step, the loss, and
 * the node (op, layer, time step), and leaves the parameters untouched. */
Test(numerics, trainer_names_where_nan_started) {
    const char *src = "cell logcell(x[I]; h[H]) {\n"
                      "  param W[H, I]\n"
                      "  z = x @ W^T + h + 1\n"
                      "  h' = log(z)\n"
                      "}\n";
    weft_cell *cell = weft_cell_parse(src, strlen(src), "logcell.cell");
    cr_assert(cell, "%s", weft_last_error());
    enum { T = 4, B = 2, I = 3, H = 2 };
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(T, B, I));
    weft_rnn *rnn;
    weft_rnn_config rc = weft_rnn_config_default(I, H);
    cr_assert_eq(weft_rnn_new(g, cell, &rc, &rnn), WEFT_OK, "%s", weft_last_error());
    weft_node Wn = weft_rnn_param(rnn, 0, 0, 0);
    float w[H * I];
    for (int i = 0; i < H * I; i++) w[i] = 0.1f;
    cr_assert_eq(weft_param_set(g, Wn, w, sizeof w), WEFT_OK);
    weft_rnn_inputs in = {x, NULL, WEFT_NONE, WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, rnn, &in, &res), WEFT_OK, "%s", weft_last_error());
    weft_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.loss = weft_sum(g, res.output, NULL, 0, 0);
    tc.train_flag = WEFT_NONE;
    tc.optim = weft_optim_defaults(WEFT_OPTIM_SGD);
    weft_trainer *t;
    cr_assert_eq(weft_trainer_new(g, &tc, &t), WEFT_OK, "%s", weft_last_error());

    float xv[T][B][I];
    for (int s = 0; s < T; s++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < I; i++) xv[s][b][i] = s == 2 && b == 1 ? -100.0f : 0.5f;
    weft_feed f = {x, xv, sizeof xv};
    weft_train_result r;
    cr_assert_eq(weft_trainer_step(t, &f, 1, &r), WEFT_ERR_NUMERIC);
    assert_msg_has("trainer: step 0: the loss is NaN; first non-finite value at node");
    assert_msg_has(": log 'h'' [2, 2] (layer 0, direction 0, time step 2), element 2 = NaN");
    assert_msg_has("layer 0, direction 0, time step 2)");
    float after[H * I];
    memcpy(after, weft_param_data(g, Wn), sizeof after);
    cr_assert_arr_eq(after, w, sizeof w, "a failed step changed the parameters");
    cr_assert_eq(weft_trainer_steps(t), 0);

    /* finite inputs: the same trainer steps normally */
    for (int s = 0; s < T; s++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < I; i++) xv[s][b][i] = 0.5f;
    cr_assert_eq(weft_trainer_step(t, &f, 1, &r), WEFT_OK, "%s", weft_last_error());
    weft_trainer_free(t);
    weft_rnn_free(rnn);
    weft_cell_free(cell);
    weft_graph_free(g);
}

/* --------------------------------------------- finite at extreme inputs */

/* Runs loss and its gradient wrt the logits [B, C] (f32) for labels; all
 * must be finite; returns the loss. */
static double ce_at(const float *logits, const int32_t *labels, int B, int C, float *grad) {
    weft_graph *g = weft_graph_new();
    weft_node z = weft_param(g, "z", WEFT_F32, WEFT_SHAPE(B, C));
    weft_node y = weft_input(g, "y", WEFT_I32, WEFT_SHAPE(B));
    cr_assert_eq(weft_param_set(g, z, logits, sizeof(float) * (size_t)(B * C)), WEFT_OK);
    weft_node loss = weft_cross_entropy(g, z, y);
    weft_node sm = weft_softmax(g, z, 1), lsm = weft_log_softmax(g, z, 1), dz;
    cr_assert_eq(weft_grad(g, loss, &z, 1, &dz), WEFT_OK, "%s", weft_last_error());
    weft_node outs[4] = {loss, dz, sm, lsm};
    weft_exec *e = weft_exec_new(g, outs, 4);
    cr_assert(e);
    cr_assert_eq(weft_exec_feed(e, y, labels, sizeof(int32_t) * (size_t)B), WEFT_OK);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_check_finite(e, g, NULL), WEFT_OK, "%s", weft_last_error());
    float l;
    cr_assert_eq(weft_exec_read(e, loss, &l, sizeof l), WEFT_OK);
    cr_assert_eq(weft_exec_read(e, dz, grad, sizeof(float) * (size_t)(B * C)), WEFT_OK);
    weft_exec_free(e);
    weft_graph_free(g);
    return l;
}

Test(numerics, softmax_and_cross_entropy_large_logits) {
    /* row 0: the label has the huge logit (loss 0); row 1: it is 2e4 below
     * the largest (loss 2e4: log-sum-exp must subtract the max first) */
    enum { B = 2, C = 3 };
    float z[B * C] = {1e4f, -1e4f, 0, 1e4f, -1e4f, 0};
    int32_t y[B] = {0, 1};
    float grad[B * C];
    double loss = ce_at(z, y, B, C, grad);
    cr_assert(fabs(loss - 1e4) < 1.0, "loss %g, want 1e4", loss); /* mean of 0 and 2e4 */
    /* d/dz = (softmax - onehot) / B */
    cr_assert(fabs(grad[0]) < 1e-6 && fabs(grad[3] - 0.5f) < 1e-6 && fabs(grad[4] + 0.5f) < 1e-6,
              "grad %g %g %g", grad[0], grad[3], grad[4]);
    /* far below f32's exp overflow the other way: everything tiny */
    float small[B * C] = {-3e4f, -3e4f, -3e4f, 0, 0, 0};
    loss = ce_at(small, y, B, C, grad);
    cr_assert(fabs(loss - log(3.0)) < 1e-5, "loss %g, want log 3", loss);
}

/* An LSTM over T = 1000 steps with saturated gates (weights 50x the usual
 * scale): the forward and the backward through all 1000 steps stay
 * finite (sigmoid and tanh at +-1e2..1e3 and their derivatives). */
Test(numerics, long_sequence_saturated_gates, .timeout = 240) {
    enum { T = 1000, B = 2, I = 4, H = 8 };
    weft_graph *g = weft_graph_new();
    weft_cell *cell = weft_cell_get("lstm");
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(T, B, I));
    weft_rnn *rnn;
    weft_rnn_config rc = weft_rnn_config_default(I, H);
    cr_assert_eq(weft_rnn_new(g, cell, &rc, &rnn), WEFT_OK);
    weft_rng rng = weft_rng_make(3);
    cr_assert_eq(weft_rnn_init(g, rnn, &rng), WEFT_OK);
    weft_node ps[8];
    int np = weft_graph_params(g, ps, 8);
    for (int p = 0; p < np; p++) {
        float *d = weft_param_data(g, ps[p]);
        for (int64_t i = 0; i < weft_shape_numel(weft_node_shape(g, ps[p])); i++) d[i] *= 50.0f;
    }
    weft_rnn_inputs in = {x, NULL, WEFT_NONE, WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, rnn, &in, &res), WEFT_OK, "%s", weft_last_error());
    weft_node loss = weft_sum(g, weft_mul(g, res.output, res.output), NULL, 0, 0);
    weft_node grads[9];
    grads[np] = WEFT_NONE;
    weft_node wrt[9];
    memcpy(wrt, ps, sizeof(weft_node) * (size_t)np);
    wrt[np] = x;
    cr_assert_eq(weft_grad(g, loss, wrt, np + 1, grads), WEFT_OK, "%s", weft_last_error());
    weft_node outs[10] = {loss};
    memcpy(outs + 1, grads, sizeof(weft_node) * (size_t)(np + 1));
    weft_exec *e = weft_exec_new(g, outs, np + 2);
    cr_assert(e, "%s", weft_last_error());
    float *xv = malloc(sizeof(float) * T * B * I);
    for (int i = 0; i < T * B * I; i++) xv[i] = (float)(3 * weft_rng_normal(&rng));
    cr_assert_eq(weft_exec_feed(e, x, xv, sizeof(float) * T * B * I), WEFT_OK);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_check_finite(e, g, NULL), WEFT_OK, "%s", weft_last_error());
    float l;
    cr_assert_eq(weft_exec_read(e, loss, &l, sizeof l), WEFT_OK);
    cr_assert(l > 0 && l <= (float)(T * B * H), "loss %g: |h| <= 1", l);
    free(xv);
    weft_exec_free(e);
    weft_rnn_free(rnn);
    weft_cell_free(cell);
    weft_graph_free(g);
}

/* ------------------------------------------------------------ determinism */

/* Big enough that elementwise kernels split across threads (rows * width
 * over the executor's threshold) and BLIS gets real GEMMs; two layers with
 * dropout so the dropout generator is in play. */
static const tm_config det_cfg = {"lstm", 5, 64, 16, 128, 4, 2, 0.3, 11, WEFT_OPTIM_ADAM};
enum { DET_STEPS = 4 };

static float *train_params(int threads, size_t *n, double *loss) {
    weft_set_threads(threads);
    tm_model m;
    cr_assert_eq(tm_build(&m, &det_cfg), WEFT_OK, "%s", weft_last_error());
    weft_train_result r;
    for (int s = 0; s < DET_STEPS; s++) cr_assert_eq(tm_step(&m, &r), WEFT_OK, "%s", weft_last_error());
    *n = tm_param_count(&m);
    float *p = malloc(sizeof *p * *n);
    tm_params(&m, p);
    *loss = r.loss;
    tm_free(&m);
    return p;
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what) {
    size_t differ = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a)) {
            differ++;
            if (first == n) first = i;
        }
    cr_assert_eq(differ, 0, "%s: %zu of %zu parameters differ (first at %zu: %a vs %a)", what,
                 differ, n, first, first < n ? a[first] : 0.0, first < n ? b[first] : 0.0);
}

Test(numerics, same_seed_same_bits_any_thread_count, .timeout = 240) {
    size_t n1, n2, n3;
    double l1, l2, l3;
    float *one = train_params(1, &n1, &l1);
    float *two = train_params(2, &n2, &l2);
    float *again = train_params(2, &n3, &l3);
    cr_assert(n1 == n2 && n2 == n3);
    cr_assert(isfinite(l1));
    assert_same_bits(two, again, n1, "two runs, 2 threads");
    assert_same_bits(one, two, n1, "1 thread vs 2 threads");
    cr_assert_eq(memcmp(&l1, &l2, sizeof l1), 0, "loss %a vs %a", l1, l2);
    /* the comparison means something: training moved the parameters */
    tm_model m;
    cr_assert_eq(tm_build(&m, &det_cfg), WEFT_OK);
    float *init = malloc(sizeof *init * n1);
    tm_params(&m, init);
    tm_free(&m);
    size_t same = 0;
    for (size_t i = 0; i < n1; i++) same += !memcmp(&init[i], &one[i], sizeof *init);
    cr_assert_lt(same, n1 / 2, "training left %zu of %zu parameters at their initial value", same, n1);
    free(one);
    free(two);
    free(again);
    free(init);
}
