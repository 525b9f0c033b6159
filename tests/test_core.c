/* The graph IR, autodiff on small models, the verifier, errors, dot export. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "graph_internal.h"
#include "testutil.h"

#define S(...) WEFT_SHAPE(__VA_ARGS__)

static void expect_gradcheck(weft_graph *g, weft_node loss, const weft_node *wrt, int n, const weft_node *feeds,
                             const void *const *data, int nf) {
    weft_gradcheck_result r;
    cr_assert_eq(weft_gradcheck(g, loss, wrt, n, feeds, data, nf, 1e-6, 1e-5, 1e-3, &r), WEFT_OK, "%s",
                 weft_last_error());
    cr_assert_gt(r.checked, 0);
    cr_assert_eq(r.failures, 0, "%d of %d differ; worst %s", r.failures, r.checked, r.worst);
    cr_assert_eq(weft_graph_verify(g), WEFT_OK, "%s", weft_last_error());
}

Test(models, mlp_matches_finite_differences) {
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, S(4, 3));
    weft_node y = weft_input(g, "labels", WEFT_I32, S(4));
    weft_node W1 = tu_param(g, "W1", WEFT_F64, S(5, 3), 1, 0.1, 0.8, 1);
    weft_node b1 = tu_param(g, "b1", WEFT_F64, S(5), 2, 0.1, 0.5, 1);
    weft_node W2 = tu_param(g, "W2", WEFT_F64, S(3, 5), 3, 0.1, 0.8, 1);
    weft_node b2 = tu_param(g, "b2", WEFT_F64, S(3), 4, 0.1, 0.5, 1);
    weft_node h = weft_tanh(g, weft_add(g, weft_matmul(g, x, W1, 0, 1), b1));  /* [4, 5] */
    weft_node logits = weft_add(g, weft_matmul(g, h, W2, 0, 1), b2);           /* [4, 3] */
    weft_node loss = weft_cross_entropy(g, logits, y);
    cr_assert_eq(weft_graph_status(g), WEFT_OK, "%s", weft_graph_error(g));
    double xd[12];
    int32_t yd[4] = {0, 2, 1, 2};
    tu_fill(xd, 12, 9, 0.1, 1, 1);
    weft_node wrt[] = {W1, b1, W2, b2, x};
    weft_node feeds[] = {x, y};
    const void *data[] = {xd, yd};
    expect_gradcheck(g, loss, wrt, 5, feeds, data, 2);
    weft_graph_free(g);
}

/* h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), 3 steps by hand. */
static weft_node build_rnn3(weft_graph *g, weft_node *wrt, weft_node *xin, weft_node *h0in) {
    const int B = 2, I = 3, H = 4, T = 3;
    weft_node x = weft_input(g, "x", WEFT_F64, S(T, B, I));
    weft_node h = weft_input(g, "h0", WEFT_F64, S(B, H));
    weft_node Wih = tu_param(g, "weight_ih", WEFT_F64, S(H, I), 11, 0.1, 0.7, 1);
    weft_node Whh = tu_param(g, "weight_hh", WEFT_F64, S(H, H), 12, 0.1, 0.7, 1);
    weft_node bih = tu_param(g, "bias_ih", WEFT_F64, S(H), 13, 0.1, 0.5, 1);
    weft_node bhh = tu_param(g, "bias_hh", WEFT_F64, S(H), 14, 0.1, 0.5, 1);
    *xin = x;
    *h0in = h;
    weft_node h_first = h;
    for (int t = 0; t < T; t++) {
        weft_graph_set_site(g, 0, 0, t);
        weft_node xt = weft_reshape(g, weft_slice(g, x, 0, t, t + 1), S(B, I));
        weft_node pre = weft_add(g, weft_add(g, weft_matmul(g, xt, Wih, 0, 1), bih),
                                 weft_add(g, weft_matmul(g, h, Whh, 0, 1), bhh));
        h = weft_tanh(g, pre);
        weft_node_set_name(g, h, "h");
    }
    weft_graph_set_site(g, -1, -1, -1);
    wrt[0] = Wih;
    wrt[1] = Whh;
    wrt[2] = bih;
    wrt[3] = bhh;
    wrt[4] = x;
    wrt[5] = h_first;
    return tu_weighted_sum(g, h, 21);
}

Test(models, rnn_3_steps_matches_finite_differences) {
    weft_graph *g = weft_graph_new();
    weft_node wrt[6], x, h0;
    weft_node loss = build_rnn3(g, wrt, &x, &h0);
    double xd[18], hd[8];
    tu_fill(xd, 18, 31, 0.1, 1, 1);
    tu_fill(hd, 8, 32, 0.1, 0.9, 1);
    weft_node feeds[] = {x, h0};
    const void *data[] = {xd, hd};
    expect_gradcheck(g, loss, wrt, 6, feeds, data, 2);
    /* The backward nodes carry the step of the forward node they differentiate. */
    int backward_at_step2 = 0;
    for (int i = 0; i < weft_graph_node_count(g); i++)
        if (weft_node_is_backward(g, i) && weft_node_site(g, i).step == 2) backward_at_step2++;
    cr_assert_gt(backward_at_step2, 5);
    weft_graph_free(g);
}

Test(models, rnn_dot_has_forward_and_backward) {
    weft_graph *g = weft_graph_new();
    weft_node wrt[6], x, h0, grads[6];
    weft_node loss = build_rnn3(g, wrt, &x, &h0);
    weft_node_set_name(g, loss, "loss \"quoted\" \\ back\nslash");
    cr_assert_eq(weft_grad(g, loss, wrt, 4, grads), WEFT_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    weft_dot_options o = {.show_grad_links = 1, .title = "rnn"};
    cr_assert_eq(weft_graph_write_dot(g, f, &o), WEFT_OK);
    fclose(f);
    cr_assert(strstr(buf, "digraph weft"));
    cr_assert(strstr(buf, "weight_ih"));
    cr_assert(strstr(buf, "style=dashed"), "backward edges are dashed");
    cr_assert(strstr(buf, "loss \\\"quoted\\\" \\\\ back\\nslash"), "names are escaped");
    free(buf);
    weft_graph_free(g);
}

Test(errors, shape_mismatch_names_both_shapes) {
    weft_graph *g = weft_graph_new();
    weft_node a = weft_input(g, "a", WEFT_F32, S(3, 4));
    weft_node b = weft_input(g, "b", WEFT_F32, S(5));
    weft_node c = weft_add(g, a, b);
    cr_assert_eq(c, WEFT_NONE);
    cr_assert_eq(weft_graph_status(g), WEFT_ERR_SHAPE);
    const char *m = weft_graph_error(g);
    cr_assert(strstr(m, "add") && strstr(m, "[3, 4]") && strstr(m, "[5]") && strstr(m, "'a'"), "%s", m);
    /* Sticky: later builders propagate, the first error stays. */
    cr_assert_eq(weft_tanh(g, c), WEFT_NONE);
    weft_node d = weft_matmul(g, a, a, 0, 0);
    cr_assert_eq(d, WEFT_NONE);
    cr_assert(strstr(weft_graph_error(g), "add"), "first error kept: %s", weft_graph_error(g));
    cr_assert(strstr(weft_last_error(), "inner dimensions"), "%s", weft_last_error());
    weft_graph_free(g);
}

Test(errors, dtype_mismatch) {
    weft_graph *g = weft_graph_new();
    weft_node a = weft_input(g, "a", WEFT_F32, S(3));
    weft_node b = weft_input(g, "b", WEFT_F64, S(3));
    cr_assert_eq(weft_mul(g, a, b), WEFT_NONE);
    cr_assert_eq(weft_graph_status(g), WEFT_ERR_DTYPE);
    cr_assert(strstr(weft_graph_error(g), "f32") && strstr(weft_graph_error(g), "f64"), "%s", weft_graph_error(g));
    weft_graph_free(g);
    g = weft_graph_new();
    weft_node i = weft_input(g, "i", WEFT_I32, S(3));
    cr_assert_eq(weft_exp(g, i), WEFT_NONE);
    cr_assert(strstr(weft_graph_error(g), "must be f32 or f64"), "%s", weft_graph_error(g));
    weft_graph_free(g);
}

Test(errors, loss_not_scalar_and_integer_wrt) {
    weft_graph *g = weft_graph_new();
    weft_node x = tu_param(g, "x", WEFT_F64, S(3), 1, 0.1, 1, 1);
    weft_node idx = weft_input(g, "idx", WEFT_I32, S(2));
    weft_node y = weft_exp(g, x), gx;
    cr_assert_eq(weft_grad(g, y, &x, 1, &gx), WEFT_ERR_SHAPE);
    cr_assert(strstr(weft_last_error(), "scalar") && strstr(weft_last_error(), "[3]"), "%s", weft_last_error());
    weft_node l = weft_sum(g, y, NULL, 0, 0);
    cr_assert_eq(weft_grad(g, l, &idx, 1, &gx), WEFT_ERR_DTYPE);
    cr_assert(strstr(weft_last_error(), "idx"), "%s", weft_last_error());
    weft_graph_free(g);
}

Test(errors, bad_index_at_run_time) {
    weft_graph *g = weft_graph_new();
    weft_node t = tu_param(g, "emb", WEFT_F32, S(5, 2), 1, 0.1, 1, 1);
    weft_node idx = weft_input(g, "tokens", WEFT_I32, S(3));
    weft_node y = weft_gather(g, t, idx);
    weft_exec *e = weft_exec_new(g, &y, 1);
    cr_assert_eq(weft_exec_run(e), WEFT_ERR_ARG, "unfed input is an error");
    cr_assert(strstr(weft_last_error(), "tokens"), "%s", weft_last_error());
    int32_t bad[3] = {1, 7, 2};
    cr_assert_eq(weft_exec_feed(e, idx, bad, 8), WEFT_ERR_SHAPE);
    cr_assert_eq(weft_exec_feed(e, idx, bad, sizeof bad), WEFT_OK);
    cr_assert_eq(weft_exec_run(e), WEFT_ERR_ARG);
    cr_assert(strstr(weft_last_error(), "index 7 at position 1"), "%s", weft_last_error());
    weft_exec_free(e);
    weft_graph_free(g);
}

Test(verifier, rejects_hand_broken_graphs) {
    weft_graph *g = weft_graph_new();
    weft_node a = tu_param(g, "a", WEFT_F64, S(2, 3), 1, 0.1, 1, 1);
    weft_node b = weft_exp(g, a);
    weft_node c = weft_add(g, b, a);
    cr_assert_eq(weft_graph_verify(g), WEFT_OK);
    /* A use of a later node (a cycle in index order). */
    g->edges[g->nodes[b].in_off] = c;
    cr_assert_eq(weft_graph_verify(g), WEFT_ERR_GRAPH);
    cr_assert(strstr(weft_last_error(), "does not precede"), "%s", weft_last_error());
    g->edges[g->nodes[b].in_off] = a;
    /* A recorded shape that its inputs do not give. */
    g->nodes[c].shape = S(3, 2);
    cr_assert_eq(weft_graph_verify(g), WEFT_ERR_GRAPH);
    cr_assert(strstr(weft_last_error(), "[3, 2]") && strstr(weft_last_error(), "[2, 3]"), "%s", weft_last_error());
    g->nodes[c].shape = S(2, 3);
    /* An undefined input. */
    g->edges[g->nodes[c].in_off + 1] = 99;
    cr_assert_eq(weft_graph_verify(g), WEFT_ERR_GRAPH);
    weft_graph_free(g);
}

Test(graph, params_by_name_and_duplicates) {
    weft_graph *g = weft_graph_new();
    weft_node p = weft_param(g, "w", WEFT_F32, S(2));
    cr_assert_eq(weft_graph_find(g, "w"), p);
    cr_assert_eq(weft_param(g, "w", WEFT_F32, S(2)), WEFT_NONE);
    cr_assert(strstr(weft_graph_error(g), "already used"));
    weft_graph_free(g);
    g = weft_graph_new();
    cr_assert_eq(weft_input(g, "x", WEFT_F32, S(0, 3)), WEFT_NONE);
    cr_assert(strstr(weft_graph_error(g), "invalid shape"), "%s", weft_graph_error(g));
    weft_graph_free(g);
}
