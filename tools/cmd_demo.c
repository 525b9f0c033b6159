/* weft demo: the core engine end to end.  A 3-step Elman RNN written with
 * the builder API, its loss, its gradients by graph-to-graph autodiff (checked
 * against finite differences), and its forward + backward graph drawn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "render.h"

static void fill(double *p, int n, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = ((seed >> 8) % 2000) / 1000.0 - 1.0;
    }
}

int weft_cmd_demo(int argc, char **argv) {
    const char *out = "rnn3.svg";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--help")) {
            printf("usage: weft demo [-o FILE.svg|.png|.pdf|.dot]\n"
                   "Builds a 3-step tanh RNN, prints its loss and gradients (checked against\n"
                   "finite differences) and draws its forward + backward graph.\n");
            return 0;
        } else {
            fprintf(stderr, "weft demo: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    enum { T = 3, B = 2, I = 3, H = 4 };
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, WEFT_SHAPE(T, B, I));
    weft_node target = weft_input(g, "target", WEFT_F64, WEFT_SHAPE(B, H));
    const char *names[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    weft_shape shapes[] = {WEFT_SHAPE(H, I), WEFT_SHAPE(H, H), WEFT_SHAPE(H), WEFT_SHAPE(H)};
    weft_node p[4];
    for (int k = 0; k < 4; k++) {
        p[k] = weft_param(g, names[k], WEFT_F64, shapes[k]);
        double v[16];
        fill(v, (int)weft_shape_numel(shapes[k]), 7u + (unsigned)k);
        for (int i = 0; i < 16; i++) v[i] *= 0.5; /* U(-1/sqrt(H), 1/sqrt(H)) */
        weft_param_set(g, p[k], v, (size_t)weft_shape_numel(shapes[k]) * sizeof(double));
    }
    weft_node h = weft_zeros(g, WEFT_SHAPE(B, H), WEFT_F64);
    for (int t = 0; t < T; t++) {
        weft_graph_set_site(g, 0, 0, t);
        weft_node xt = weft_reshape(g, weft_slice(g, x, 0, t, t + 1), WEFT_SHAPE(B, I));
        weft_node pre = weft_add(g, weft_add(g, weft_matmul(g, xt, p[0], 0, 1), p[2]),
                                 weft_add(g, weft_matmul(g, h, p[1], 0, 1), p[3]));
        h = weft_tanh(g, pre);
        weft_node_set_name(g, h, "h");
    }
    weft_graph_set_site(g, -1, -1, -1);
    weft_node loss = weft_mean(g, weft_square(g, weft_sub(g, h, target)), NULL, 0, 0);
    weft_node_set_name(g, loss, "loss");
    if (weft_graph_status(g)) {
        fprintf(stderr, "weft demo: %s\n", weft_graph_error(g));
        weft_graph_free(g);
        return 1;
    }
    double xd[T * B * I], td[B * H];
    fill(xd, T * B * I, 1);
    fill(td, B * H, 2);
    int nodes_fwd = weft_graph_node_count(g);
    weft_node grads[4];
    if (weft_grad(g, loss, p, 4, grads)) {
        fprintf(stderr, "weft demo: %s\n", weft_last_error());
        weft_graph_free(g);
        return 1;
    }
    int nodes_all = weft_graph_node_count(g);
    weft_node outs[5] = {loss, grads[0], grads[1], grads[2], grads[3]};
    weft_exec *e = weft_exec_new(g, outs, 5);
    int rc = 0;
    if (!e || weft_exec_feed(e, x, xd, sizeof xd) || weft_exec_feed(e, target, td, sizeof td) || weft_exec_run(e)) {
        fprintf(stderr, "weft demo: %s\n", weft_last_error());
        rc = 1;
    } else {
        weft_tensor v;
        weft_exec_value(e, loss, &v);
        printf("3-step tanh RNN (B=%d, I=%d, H=%d): %d forward nodes, %d backward nodes\n", B, I, H, nodes_fwd,
               nodes_all - nodes_fwd);
        printf("loss = %.10f\n", weft_tensor_get(&v, 0));
        for (int k = 0; k < 4; k++) {
            weft_exec_value(e, grads[k], &v);
            printf("grad %-9s =", names[k]);
            for (int64_t i = 0; i < weft_shape_numel(v.shape); i++) printf(" %+.5f", weft_tensor_get(&v, i));
            printf("\n");
        }
        weft_dot_options o = {.show_grad_links = 0, .title = "3-step tanh RNN: forward (solid) and backward (dashed)"};
        if (weft_write_graph_file(g, &o, out)) {
            fprintf(stderr, "weft demo: %s\n", weft_last_error());
            rc = 1;
        } else {
            printf("graph written to %s\n", out);
        }
        weft_node feeds[] = {x, target};
        const void *data[] = {xd, td};
        weft_gradcheck_result r;
        if (weft_gradcheck(g, loss, p, 4, feeds, data, 2, 1e-6, 1e-5, 1e-3, &r)) {
            fprintf(stderr, "weft demo: %s\n", weft_last_error());
            weft_exec_free(e);
            weft_graph_free(g);
            return 1;
        }
        printf("gradient check vs finite differences: %d elements, max abs err %.2e -> %s\n", r.checked,
               r.max_abs_err, r.failures ? "FAIL" : "ok");
        if (r.failures) rc = 1;
    }
    weft_exec_free(e);
    weft_graph_free(g);
    return rc;
}
