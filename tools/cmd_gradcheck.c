/* weft gradcheck: check a cell's gradients (every parameter, the input and
 * the initial state) against central differences in f64, through a small
 * unrolled model: what torch.autograd.gradcheck does for a module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "weft/rnn.h"

static void usage(FILE *f) {
    fprintf(f, "usage: weft gradcheck --cell CELL [--input-size I] [--hidden-size H] [--seq-len T]\n"
               "                      [--batch B] [--layers L] [--bidirectional] [--seed S]\n"
               "Checks every gradient of a small f64 model of CELL (a built-in name or a .cell\n"
               "file) against central differences (atol 1e-5, rtol 1e-3).  Exit 0 when they agree.\n");
}

int weft_cmd_gradcheck(int argc, char **argv) {
    const char *cell_name = NULL;
    int64_t I = 3, H = 4, T = 3, B = 2;
    int L = 1, bi = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--cell") && more) cell_name = argv[++i];
        else if (!strcmp(a, "--input-size") && more) I = atoll(argv[++i]);
        else if (!strcmp(a, "--hidden-size") && more) H = atoll(argv[++i]);
        else if (!strcmp(a, "--seq-len") && more) T = atoll(argv[++i]);
        else if (!strcmp(a, "--batch") && more) B = atoll(argv[++i]);
        else if (!strcmp(a, "--layers") && more) L = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && more) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--bidirectional")) bi = 1;
        else {
            fprintf(stderr, "weft gradcheck: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!cell_name || I <= 0 || H <= 0 || T <= 0 || B <= 0 || L <= 0 || I * H > 4096) {
        fprintf(stderr, "weft gradcheck: --cell is required; sizes must be positive and small (I*H <= 4096)\n");
        return 2;
    }
    weft_cell *cell = weft_cell_get(cell_name);
    if (!cell) {
        fprintf(stderr, "weft gradcheck: %s\n", weft_last_error());
        return 1;
    }
    weft_graph *g = weft_graph_new();
    weft_rnn_config cfg = weft_rnn_config_default(I, H);
    cfg.num_layers = L;
    cfg.bidirectional = bi;
    cfg.dtype = WEFT_F64;
    weft_rnn *r = NULL;
    weft_rng rng = weft_rng_make(seed);
    int rc = 1;
    double *xd = NULL, *hd = NULL, *wd = NULL;
    if (weft_rnn_new(g, cell, &cfg, &r) || weft_rnn_init(g, r, &rng)) goto done;
    int D = bi ? 2 : 1;
    weft_node x = weft_input(g, "input", WEFT_F64, WEFT_SHAPE(T, B, I));
    weft_node h0 = weft_input(g, "h0", WEFT_F64, WEFT_SHAPE(L * D, B, H));
    weft_node w = weft_input(g, "weights", WEFT_F64, WEFT_SHAPE(T, B, D * H));
    weft_node state0[WEFT_CELL_MAX_STATES] = {h0, WEFT_NONE, WEFT_NONE, WEFT_NONE};
    weft_rnn_inputs in = {.x = x, .state0 = state0, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_rnn_result res;
    if (weft_rnn_apply(g, r, &in, &res)) goto done;
    /* loss = sum(output * weights) + sum(h_n): every output element weighted differently */
    weft_node loss = weft_add(g, weft_sum(g, weft_mul(g, res.output, w), NULL, 0, 0),
                              weft_sum(g, res.state_n[0], NULL, 0, 0));
    weft_node wrt[64];
    int np = weft_graph_params(g, wrt, 62);
    wrt[np++] = x;
    wrt[np++] = h0;
    size_t nx = (size_t)(T * B * I), nh = (size_t)(L * D * B * H), nw = (size_t)(T * B * D * H);
    xd = malloc(nx * sizeof *xd);
    hd = malloc(nh * sizeof *hd);
    wd = malloc(nw * sizeof *wd);
    if (!xd || !hd || !wd) goto done;
    for (size_t i = 0; i < nx; i++) xd[i] = weft_rng_uniform(&rng) * 2 - 1;
    for (size_t i = 0; i < nh; i++) hd[i] = weft_rng_uniform(&rng) - 0.5;
    for (size_t i = 0; i < nw; i++) wd[i] = weft_rng_uniform(&rng) + 0.5;
    weft_node feeds[] = {x, h0, w};
    const void *data[] = {xd, hd, wd};
    weft_gradcheck_result res_gc;
    if (weft_gradcheck(g, loss, wrt, np, feeds, data, 3, 1e-6, 1e-5, 1e-3, &res_gc)) goto done;
    printf("gradcheck %s (I=%lld H=%lld T=%lld B=%lld L=%d%s, f64): %d elements of %d tensors, "
           "max abs err %.3g, max rel err %.3g\n",
           cell->name, (long long)I, (long long)H, (long long)T, (long long)B, L, bi ? " bidirectional" : "",
           res_gc.checked, np, res_gc.max_abs_err, res_gc.max_rel_err);
    if (res_gc.failures) {
        printf("FAIL: %d elements outside atol 1e-5 + rtol 1e-3; worst %s\n", res_gc.failures, res_gc.worst);
    } else {
        printf("ok\n");
        rc = 0;
    }
    if (0) {
    done:
        fprintf(stderr, "weft gradcheck: %s\n", weft_last_error());
    }
    free(xd);
    free(hd);
    free(wd);
    weft_rnn_free(r);
    weft_graph_free(g);
    weft_cell_free(cell);
    return rc;
}
