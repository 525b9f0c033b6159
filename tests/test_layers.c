/* Layers and model options beyond the parity fixtures: batch-first input,
 * masks from lengths and from a padding index, Embedding's padding row,
 * the losses against their formulas, initialisation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/fixture.h"
#include "weft/rnn.h"

#define RNN_DIR WEFT_SOURCE_DIR "/tests/fixtures/rnn"

/* Value of node n, computed with `feeds` (node, data) pairs, into dst. */
static void eval(weft_graph *g, weft_node n, double *dst, int nfeed, const weft_node *nodes,
                 const void *const *data) {
    weft_exec *e = weft_exec_new(g, &n, 1);
    cr_assert(e, "%s", weft_last_error());
    for (int i = 0; i < nfeed; i++) {
        size_t bytes = (size_t)weft_shape_numel(weft_node_shape(g, nodes[i])) *
                       weft_dtype_size(weft_node_dtype(g, nodes[i]));
        cr_assert_eq(weft_exec_feed(e, nodes[i], data[i], bytes), WEFT_OK, "%s",
                     weft_last_error());
    }
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    weft_tensor t;
    cr_assert_eq(weft_exec_value(e, n, &t), WEFT_OK);
    for (int64_t i = 0; i < weft_shape_numel(t.shape); i++) dst[i] = weft_tensor_get(&t, i);
    weft_exec_free(e);
}

/* The batch-first model on the transposed input, with the mask built from
 * the lengths, gives PyTorch's (time-major) results transposed. */
Test(layers, batch_first_with_lengths_matches_pytorch) {
    const char *name = "lstm_L2_bi_len_f64";
    char wpath[4096], xpath[4096];
    snprintf(wpath, sizeof wpath, "%s/%s.weights.safetensors", RNN_DIR, name);
    snprintf(xpath, sizeof xpath, "%s/%s.io.safetensors", RNN_DIR, name);
    weft_st_file *w, *x;
    cr_assert_eq(weft_st_read(wpath, &w), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_read(xpath, &x), WEFT_OK, "%s", weft_last_error());
    weft_shape xs, os, hs;
    double *in = fx_read(x, "input", &xs), *want = fx_read(x, "output", &os);
    double *h0 = fx_read(x, "h0", &hs), *c0 = fx_read(x, "c0", NULL);
    double *want_h = fx_read(x, "h_n", NULL);
    cr_assert(in && want && h0 && c0 && want_h);
    int64_t T = xs.dim[0], B = xs.dim[1], I = xs.dim[2], DH = os.dim[2];
    double *in_bf = malloc(sizeof(double) * (size_t)(T * B * I));
    int32_t len[16];
    cr_assert_leq(B, 16);
    cr_assert_eq(weft_st_get(x, "lengths", WEFT_I32, WEFT_SHAPE(B), len), WEFT_OK);
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++)
            memcpy(&in_bf[(b * T + t) * I], &in[(t * B + b) * I], sizeof(double) * (size_t)I);

    weft_graph *g = weft_graph_new();
    weft_cell *cell = weft_cell_get("lstm");
    weft_rnn_config cfg = weft_rnn_config_default(I, 5);
    cfg.num_layers = 2;
    cfg.bidirectional = 1;
    cfg.batch_first = 1;
    cfg.dtype = WEFT_F64;
    weft_rnn *r;
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_params_load(g, w, wpath, 1), WEFT_OK, "%s", weft_last_error());
    weft_node xin = weft_input(g, "x", WEFT_F64, WEFT_SHAPE(B, T, I));
    weft_node hin = weft_input(g, "h0", WEFT_F64, hs);
    weft_node cin = weft_input(g, "c0", WEFT_F64, hs);
    weft_node lin = weft_input(g, "lengths", WEFT_I32, WEFT_SHAPE(B));
    weft_node st[2] = {hin, cin};
    weft_rnn_inputs ri = {xin, st, weft_mask_from_lengths(g, lin, T, 1, WEFT_F64), WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, r, &ri, &res), WEFT_OK, "%s", weft_last_error());
    weft_shape got_shape = weft_node_shape(g, res.output);
    cr_assert(weft_shape_eq(got_shape, WEFT_SHAPE(B, T, DH)));

    weft_node feeds[4] = {xin, hin, cin, lin};
    const void *data[4] = {in_bf, h0, c0, len};
    double *out = malloc(sizeof(double) * (size_t)(T * B * DH));
    double *want_bf = malloc(sizeof(double) * (size_t)(T * B * DH));
    double hn[256];
    eval(g, res.output, out, 4, feeds, data);
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++)
            memcpy(&want_bf[(b * T + t) * DH], &want[(t * B + b) * DH],
                   sizeof(double) * (size_t)DH);
    cr_assert(fx_close("batch-first output", out, want_bf, T * B * DH, 1));
    eval(g, res.state_n[0], hn, 4, feeds, data);
    cr_assert(fx_close("batch-first h_n", hn, want_h, weft_shape_numel(hs), 1));

    /* Keras-style: tokens right-padded with 0 give the same mask */
    weft_node tok = weft_input(g, "tokens", WEFT_I32, WEFT_SHAPE(B, T));
    int32_t tokens[64];
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) tokens[b * T + t] = t < len[b] ? 1 + (int32_t)t : 0;
    double m1[64], m2[64];
    weft_node mt = weft_mask_from_padding(g, tok, 0, WEFT_F64);
    weft_node ml = weft_mask_from_lengths(g, lin, T, 1, WEFT_F64);
    eval(g, mt, m1, 1, &tok, (const void *const[]){tokens});
    eval(g, ml, m2, 1, &lin, (const void *const[]){len});
    cr_assert_arr_eq(m1, m2, sizeof(double) * (size_t)(B * T));
    double ones = 0;
    for (int i = 0; i < B * T; i++) ones += m1[i];
    cr_assert_lt(ones, (double)(B * T), "the fixture has no padding");

    free(in_bf);
    free(out);
    free(want_bf);
    free(in);
    free(want);
    free(h0);
    free(c0);
    free(want_h);
    weft_rnn_free(r);
    weft_cell_free(cell);
    weft_graph_free(g);
    weft_st_free(w);
    weft_st_free(x);
}

Test(layers, losses_match_their_formulas) {
    weft_graph *g = weft_graph_new();
    double xv[6] = {-2.0, -0.5, 0.0, 0.3, 1.5, 4.0}, yv[6] = {0, 1, 1, 0, 1, 0};
    weft_node x = weft_input(g, "x", WEFT_F64, WEFT_SHAPE(2, 3));
    weft_node y = weft_input(g, "y", WEFT_F64, WEFT_SHAPE(2, 3));
    weft_node feeds[2] = {x, y};
    const void *data[2] = {xv, yv};
    double got, want = 0, want_mse = 0, grad[6];

    weft_node bce = weft_loss_bce_with_logits(g, x, y);
    for (int i = 0; i < 6; i++) {
        double p = 1 / (1 + exp(-xv[i]));
        want += -(yv[i] * log(p) + (1 - yv[i]) * log(1 - p)) / 6;
        want_mse += (xv[i] - yv[i]) * (xv[i] - yv[i]) / 6;
    }
    eval(g, bce, &got, 2, feeds, data);
    cr_assert(fabs(got - want) < 1e-14, "bce %.17g want %.17g", got, want);
    weft_node gx;
    cr_assert_eq(weft_grad(g, bce, &x, 1, &gx), WEFT_OK, "%s", weft_last_error());
    eval(g, gx, grad, 2, feeds, data);
    for (int i = 0; i < 6; i++) {
        double p = 1 / (1 + exp(-xv[i]));
        cr_assert(fabs(grad[i] - (p - yv[i]) / 6) < 1e-14, "bce grad %d", i);
    }
    eval(g, weft_loss_mse(g, x, y), &got, 2, feeds, data);
    cr_assert(fabs(got - want_mse) < 1e-14, "mse %.17g want %.17g", got, want_mse);

    /* many-to-many cross-entropy: [T=2, B=1, C=3] logits, [2, 1] labels */
    weft_node lg = weft_reshape(g, x, WEFT_SHAPE(2, 1, 3));
    int32_t lab[2] = {2, 0};
    weft_node lb = weft_input(g, "labels", WEFT_I32, WEFT_SHAPE(2, 1));
    weft_node f3[2] = {x, lb};
    const void *d3[2] = {xv, lab};
    double ce_want = 0;
    for (int t = 0; t < 2; t++) {
        double m = 0;
        for (int c = 0; c < 3; c++) m += exp(xv[t * 3 + c]);
        ce_want += (log(m) - xv[t * 3 + lab[t]]) / 2;
    }
    eval(g, weft_loss_cross_entropy(g, lg, lb), &got, 2, f3, d3);
    cr_assert(fabs(got - ce_want) < 1e-14, "ce %.17g want %.17g", got, ce_want);
    /* row 0: argmax is class 2 (0.0) = label; row 1: argmax 4.0 is class 2 != 0 */
    eval(g, weft_accuracy(g, lg, lb), &got, 2, f3, d3);
    cr_assert_eq(got, 0.5);
    weft_graph_free(g);
}

Test(layers, embedding_padding_row_stays_zero) {
    weft_graph *g = weft_graph_new();
    weft_rng rng = weft_rng_make(3);
    weft_embedding e;
    cr_assert_eq(weft_embedding_new(g, "emb", 5, 4, 2, WEFT_F64, &rng, &e), WEFT_OK);
    const double *w = weft_param_data(g, e.weight);
    for (int j = 0; j < 4; j++) cr_assert_eq(w[2 * 4 + j], 0.0);
    cr_assert_neq(w[0], 0.0);
    weft_node idx = weft_input(g, "idx", WEFT_I32, WEFT_SHAPE(3));
    weft_node rows = weft_embedding_apply(g, &e, idx); /* [3, 4] */
    weft_node loss = weft_sum(g, weft_mul(g, rows, rows), NULL, 0, 0);
    weft_node gw;
    cr_assert_eq(weft_grad(g, loss, &e.weight, 1, &gw), WEFT_OK, "%s", weft_last_error());
    int32_t iv[3] = {2, 1, 2};
    double grad[20];
    eval(g, gw, grad, 1, &idx, (const void *const[]){iv});
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(grad[2 * 4 + j], 0.0, "padding row has a gradient");
        cr_assert(fabs(grad[1 * 4 + j] - 2 * w[1 * 4 + j]) < 1e-15);
    }
    weft_graph_free(g);
}

Test(layers, init_is_seeded_and_bounded) {
    double first[2][80];
    for (int run = 0; run < 2; run++) {
        weft_graph *g = weft_graph_new();
        weft_cell *cell = weft_cell_get("gru");
        weft_rnn_config cfg = weft_rnn_config_default(3, 4);
        cfg.dtype = WEFT_F64;
        weft_rnn *r;
        cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_OK);
        weft_rng rng = weft_rng_make(17);
        cr_assert_eq(weft_rnn_init(g, r, &rng), WEFT_OK);
        weft_node p = weft_graph_find(g, "weight_hh_l0");
        cr_assert_neq(p, WEFT_NONE, "PyTorch's name");
        cr_assert(weft_shape_eq(weft_node_shape(g, p), WEFT_SHAPE(12, 4)));
        const double *d = weft_param_data(g, p);
        double mx = 0, sum = 0;
        for (int i = 0; i < 48; i++) {
            first[run][i] = d[i];
            mx = fmax(mx, fabs(d[i]));
            sum += d[i];
        }
        cr_assert_leq(mx, 0.5, "U(-1/sqrt(H), 1/sqrt(H)) with H = 4");
        cr_assert_gt(mx, 0.3, "values spread over the range");
        cr_assert_lt(fabs(sum / 48), 0.15);
        weft_rnn_free(r);
        weft_cell_free(cell);
        weft_graph_free(g);
    }
    cr_assert_arr_eq(first[0], first[1], sizeof(double) * 48);
}

Test(layers, bad_configs_are_errors) {
    weft_graph *g = weft_graph_new();
    weft_cell *cell = weft_cell_get("rnn_tanh");
    weft_rnn_config cfg = weft_rnn_config_default(3, 4);
    weft_rnn *r = NULL;
    cfg.num_layers = 0;
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_ERR_ARG);
    cr_assert_null(r);
    cfg = weft_rnn_config_default(3, 4);
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_OK);
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(5, 2, 7)); /* I = 7, not 3 */
    weft_rnn_inputs in = {x, NULL, WEFT_NONE, WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, r, &in, &res), WEFT_ERR_SHAPE);
    cr_assert(strstr(weft_last_error(), "[5, 2, 7]"), "%s", weft_last_error());
    weft_rnn_free(r);
    weft_cell_free(cell);
    weft_graph_free(g);
}
