/* Every pass keeps the numbers: the compiled graph gives the same outputs
 * and gradients as the reference graph (f64 <= 1e-12 relative, f32 <= 1e-5)
 * for every built-in cell, multi-layer, bidirectional, masked; and for
 * random graphs.  And the passes do what they claim (matmul counts). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "weft/compile.h"
#include "weft/rnn.h"

#define S(...) WEFT_SHAPE(__VA_ARGS__)

typedef struct {
    weft_graph *g;
    weft_node outs[64];
    int n_outs;
    weft_node feeds[4];
    void *data[4];
    size_t bytes[4];
    int n_feeds;
} model;

static void model_free(model *m) {
    for (int k = 0; k < m->n_feeds; k++) free(m->data[k]);
    weft_graph_free(m->g);
}

static void feed_random(model *m, weft_node in, uint64_t seed) {
    weft_shape s = weft_node_shape(m->g, in);
    int64_t n = weft_shape_numel(s);
    weft_dtype t = weft_node_dtype(m->g, in);
    double *d = malloc((size_t)n * sizeof *d);
    tu_fill(d, n, seed, 0.1, 1, 1);
    void *buf = d;
    if (t == WEFT_F32) {
        float *f = malloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < n; i++) f[i] = (float)d[i];
        free(d);
        buf = f;
    }
    m->feeds[m->n_feeds] = in;
    m->data[m->n_feeds] = buf;
    m->bytes[m->n_feeds++] = (size_t)n * weft_dtype_size(t);
}

/* An RNN model: loss = weighted sum of output and states; outputs are the
 * loss, the output, and the gradient of every parameter and of x. */
static model rnn_model(const char *cell_name, int L, int bi, int masked, int batch_first, weft_dtype t) {
    model m = {0};
    const int64_t T = 5, B = 3, I = 4, H = 6;
    m.g = weft_graph_new();
    weft_cell *cell = weft_cell_get(cell_name);
    cr_assert(cell, "%s", weft_last_error());
    weft_rnn_config cfg = weft_rnn_config_default(I, H);
    cfg.num_layers = L;
    cfg.bidirectional = bi;
    cfg.dtype = t;
    cfg.batch_first = batch_first;
    weft_rnn *r;
    cr_assert_eq(weft_rnn_new(m.g, cell, &cfg, &r), WEFT_OK, "%s", weft_last_error());
    weft_rng rng = weft_rng_make(5);
    weft_rnn_init(m.g, r, &rng);
    weft_node x = weft_input(m.g, "x", t, batch_first ? S(B, T, I) : S(T, B, I));
    weft_rnn_inputs in = {.x = x, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_node lengths = WEFT_NONE;
    if (masked) {
        lengths = weft_input(m.g, "lengths", WEFT_I32, S(B));
        in.mask = weft_mask_from_lengths(m.g, lengths, T, batch_first, t);
    }
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(m.g, r, &in, &res), WEFT_OK, "%s", weft_last_error());
    weft_node loss = tu_weighted_sum(m.g, res.output, 3);
    for (int s = 0; s < cell->num_states; s++)
        loss = weft_add(m.g, loss, tu_weighted_sum(m.g, res.state_n[s], 10 + s));
    weft_node wrt[64];
    int np = weft_graph_params(m.g, wrt, 63);
    wrt[np++] = x;
    weft_node grads[64];
    cr_assert_eq(weft_grad(m.g, loss, wrt, np, grads), WEFT_OK, "%s", weft_last_error());
    m.outs[m.n_outs++] = loss;
    m.outs[m.n_outs++] = res.output;
    for (int k = 0; k < np; k++) m.outs[m.n_outs++] = grads[k];
    feed_random(&m, x, 77);
    if (masked) {
        int32_t len[3] = {3, 5, 1};
        m.feeds[m.n_feeds] = lengths;
        m.data[m.n_feeds] = malloc(sizeof len);
        memcpy(m.data[m.n_feeds], len, sizeof len);
        m.bytes[m.n_feeds++] = sizeof len;
    }
    weft_rnn_free(r);
    weft_cell_free(cell);
    return m;
}

/* m compiled with options o (NULL: the defaults): the executor, whose
 * compiled graph the structure tests count nodes in. */
static weft_exec *compiled(const model *m, const weft_compile_options *o) {
    weft_exec *p = weft_exec_compile(m->g, m->outs, m->n_outs, o);
    cr_assert(p, "%s", weft_last_error());
    return p;
}

/* Feed e the model's inputs. */
static void feed(const model *m, weft_exec *e) {
    for (int k = 0; k < m->n_feeds; k++)
        cr_assert_eq(weft_exec_feed(e, m->feeds[k], m->data[k], m->bytes[k]), WEFT_OK, "%s", weft_last_error());
}

/* Run the model on the reference executor and as a program; compare. */
static weft_compile_report compare(model *m, const weft_compile_options *opt, double tol) {
    weft_exec *e = weft_exec_new(m->g, m->outs, m->n_outs);
    cr_assert(e, "%s", weft_last_error());
    weft_exec *p = compiled(m, opt);
    cr_assert_eq(weft_graph_verify(weft_exec_graph(p)), WEFT_OK, "%s", weft_last_error());
    feed(m, e);
    feed(m, p);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_run(p), WEFT_OK, "%s", weft_last_error());
    for (int k = 0; k < m->n_outs; k++) {
        weft_tensor a, b;
        weft_exec_value(e, m->outs[k], &a);
        cr_assert_eq(weft_exec_value(p, m->outs[k], &b), WEFT_OK, "%s", weft_last_error());
        int64_t n = weft_shape_numel(a.shape);
        double scale = 0, err = 0;
        for (int64_t i = 0; i < n; i++) {
            double va = weft_tensor_get(&a, i), vb = weft_tensor_get(&b, i);
            scale = fmax(scale, fabs(va));
            err = fmax(err, fabs(va - vb));
            cr_assert(!isnan(vb) || isnan(va));
        }
        cr_assert_leq(err, tol * fmax(scale, 1e-30), "output %d (%s): max abs diff %g, scale %g", k,
                      weft_node_op_name(m->g, m->outs[k]), err, scale);
    }
    weft_compile_report rep = *weft_exec_report(p);
    weft_exec_free(p);
    weft_exec_free(e);
    return rep;
}

static const char *const cells[] = {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"};

Test(compile, every_cell_layers_directions_masks_f64) {
    for (int c = 0; c < 5; c++)
        for (int cfg = 0; cfg < 6; cfg++) {
            int L = 1 + (cfg & 1), bi = (cfg >> 1) & 1, masked = cfg >= 4, bf = cfg == 5;
            model m = rnn_model(cells[c], L, bi || cfg == 5, masked, bf, WEFT_F64);
            compare(&m, NULL, 1e-12);
            model_free(&m);
        }
}

Test(compile, inter_op_workers_match_the_reference) {
    weft_set_threads(2);
    weft_compile_options o = {.inter_op = 1, .verify = 1};
    for (int c = 0; c < 5; c++)
        for (int cfg = 0; cfg < 3; cfg++) {
            model m = rnn_model(cells[c], 1 + (cfg == 2), 1, cfg >= 1, 0, WEFT_F64);
            for (int rep = 0; rep < 3; rep++) compare(&m, &o, 1e-12); /* races would show as flaky differences */
            model_free(&m);
        }
    weft_set_threads(0);
}

/* Row bands (core/rows.c): each thread runs its rows of the batch through
 * every step.  Races would show as differences, flaky or not. */
Test(compile, row_bands_match_the_reference) {
    weft_set_threads(2);
    weft_compile_options o = {.row_bands = 1, .verify = 1};
    for (int c = 0; c < 5; c++)
        for (int cfg = 0; cfg < 4; cfg++) {
            model m = rnn_model(cells[c], 1 + (cfg & 1), cfg >= 2, cfg == 3, 0, WEFT_F64);
            for (int rep = 0; rep < 3; rep++) {
                weft_compile_report r = compare(&m, &o, 1e-12);
                cr_assert(r.bands >= 1 && r.bands_used, "%s cfg %d: %d bands", cells[c], cfg, r.bands);
            }
            model_free(&m);
        }
    weft_set_threads(0);
}

/* A band's threads meet before a kernel that reads whole what the band
 * wrote: here both products' right operands.  Without those barriers a
 * thread would multiply by rows the other has not written yet.  (The plan
 * may add one: a buffer read whole that a later kernel reuses.) */
Test(compile, row_bands_meet_where_a_value_is_read_whole) {
    weft_set_threads(2);
    model m = {0};
    m.g = weft_graph_new();
    weft_node x = weft_input(m.g, "x", WEFT_F64, S(8, 8)), a = weft_input(m.g, "a", WEFT_F64, S(8, 8));
    weft_node y = weft_tanh(m.g, x);
    weft_node w = weft_sigmoid(m.g, weft_matmul(m.g, a, y, 0, 0));
    weft_node z = weft_matmul(m.g, a, w, 0, 0);
    m.outs[m.n_outs++] = weft_add(m.g, weft_mul(m.g, z, y), x);
    feed_random(&m, x, 3);
    feed_random(&m, a, 4);
    weft_compile_options o = {.row_bands = 1};
    for (int rep = 0; rep < 5; rep++) {
        weft_compile_report r = compare(&m, &o, 1e-12);
        cr_assert_eq(r.bands, 1);
        cr_assert_geq(r.band_barriers, 2);
    }
    model_free(&m);
    weft_set_threads(0);
}

/* Profiling times the kernels as the executor runs them: in a band, each
 * kernel's time for thread 0's rows; with the bands forbidden, no node is
 * in one and every kernel is timed alone. */
Test(compile, profile_times_the_kernels_where_they_run) {
    weft_set_threads(2);
    model m = rnn_model("lstm", 1, 0, 0, 0, WEFT_F32);
    for (int bands = 1; bands >= -1; bands -= 2) {
        weft_compile_options o = {.row_bands = bands};
        weft_exec *p = compiled(&m, &o);
        feed(&m, p);
        cr_assert_eq(weft_exec_run(p), WEFT_OK, "%s", weft_last_error());
        const weft_graph *g = weft_exec_graph(p);
        int n = weft_graph_node_count(g), in_band = 0, timed_in_band = 0, timed = 0;
        double *ms = calloc((size_t)n, sizeof *ms);
        weft_exec_set_profile(p, ms);
        cr_assert_eq(weft_exec_run(p), WEFT_OK, "%s", weft_last_error());
        weft_exec_set_profile(p, NULL);
        for (int i = 0; i < n; i++) {
            in_band += weft_exec_in_band(p, i);
            timed_in_band += weft_exec_in_band(p, i) && ms[i] > 0;
            timed += ms[i] > 0;
        }
        if (bands == 1) {
            cr_assert_gt(in_band, 10, "nodes in bands: %d", in_band);
            cr_assert_gt(timed_in_band, 10, "kernels timed in bands: %d", timed_in_band);
        } else {
            cr_assert_eq(in_band, 0, "nodes in bands with the bands forbidden: %d", in_band);
        }
        cr_assert_gt(timed, timed_in_band, "kernels outside the bands timed: %d of %d", timed, timed_in_band);
        free(ms);
        weft_exec_free(p);
    }
    model_free(&m);
    weft_set_threads(0);
}

/* Auto mode times its first runs in each way it can run (the workers, the
 * row bands, kernel by kernel) and keeps the fastest: every run, before
 * and after the choice, gives the same bits. */
Test(compile, auto_inter_op_choice_keeps_the_bits) {
    weft_set_threads(2);
    model m = rnn_model("lstm", 2, 1, 0, 0, WEFT_F32);
    weft_compile_options o = {.inter_op = 0};
    weft_exec *p = compiled(&m, &o);
    cr_assert_gt(weft_exec_report(p)->workers, 1, "a bidirectional model starts with the workers");
    feed(&m, p);
    float *first[64] = {0};
    for (int run = 0; run < 9; run++) {
        cr_assert_eq(weft_exec_run(p), WEFT_OK, "%s", weft_last_error());
        for (int k = 0; k < m.n_outs; k++) {
            weft_tensor t;
            weft_exec_value(p, m.outs[k], &t);
            int64_t n = weft_shape_numel(t.shape);
            if (!run) {
                first[k] = malloc((size_t)n * sizeof *first[k]);
                weft_exec_read(p, m.outs[k], first[k], (size_t)n * sizeof *first[k]);
                continue;
            }
            float *now = malloc((size_t)n * sizeof *now);
            weft_exec_read(p, m.outs[k], now, (size_t)n * sizeof *now);
            cr_assert(!memcmp(now, first[k], (size_t)n * sizeof *now), "run %d, output %d differs", run, k);
            free(now);
        }
    }
    for (int k = 0; k < m.n_outs; k++) free(first[k]);
    weft_exec_free(p);
    model_free(&m);
    weft_set_threads(0);
}

Test(compile, f32_within_1e5) {
    for (int c = 0; c < 5; c++) {
        model m = rnn_model(cells[c], 2, 1, 1, 0, WEFT_F32);
        compare(&m, NULL, 1e-5);
        model_free(&m);
    }
}

Test(compile, each_pass_alone_and_each_disabled) {
    const char *const *names = weft_pass_names();
    int np = 0;
    while (names[np]) np++;
    model m = rnn_model("lstm", 2, 1, 1, 0, WEFT_F64);
    for (int k = 0; k < np; k++) {
        weft_compile_options off = {.disable = &names[k], .n_disable = 1, .verify = 1};
        compare(&m, &off, 1e-12);
        const char *others[WEFT_MAX_PASSES];
        int no = 0;
        for (int j = 0; j < np; j++)
            if (strcmp(names[j], names[k])) others[no++] = names[j];
        weft_compile_options only = {.disable = others, .n_disable = no, .verify = 1};
        compare(&m, &only, 1e-12);
    }
    model_free(&m);
}

Test(compile, passes_batch_the_gemms) {
    /* LSTM, 1 layer, T = 5: forward has 2T matmuls (x and h projections);
     * backward adds 2 per projection per step (input and weight gradient). */
    model m = rnn_model("lstm", 1, 0, 0, 0, WEFT_F64);
    weft_compile_report r = compare(&m, NULL, 1e-12);
    int before = r.pass[0].matmuls_before, after = r.pass[r.n_passes - 1].matmuls_after;
    /* h0 is zeros, so step 0's dh is not needed: 29.  After: x W_ih 5 -> 1,
     * dx 5 -> 1, dW_ih and dW_hh 5 + 5 -> 1 (batch-wgrad, then merge-wgrad:
     * dG^T [x | h]); h W_hh (5) and dh (4) stay. */
    cr_assert_eq(before, 29, "matmuls before: %d", before);
    cr_assert_eq(after, 3 + 5 + 4, "matmuls after: %d", after);
    /* The bias gradients: each step's sum over the batch (kept dims, then
     * reshaped to [4H]) is one column sum of the stacked gate gradients
     * (batch-wgrad), shared by bias_ih and bias_hh, which merge-wgrad makes
     * a column of the weight-gradient product: dG^T [x | h | 1], [4H, I+H+1].
     * No column sum of dG is left; the loss's sums are the others. */
    weft_exec *p = compiled(&m, NULL);
    const weft_graph *g = weft_exec_graph(p);
    int bias_sums = tu_count_op_shaped(g, "sum", S(24)), wgrad_with_bias = tu_count_op_shaped(g, "matmul", S(24, 4 + 6 + 1));
    cr_assert_eq(bias_sums, 0, "bias-gradient sums left: %d", bias_sums);
    cr_assert_eq(wgrad_with_bias, 1, "dG^T [x | h | 1] products: %d", wgrad_with_bias);
    weft_exec_free(p);
    model_free(&m);
}

/* The step outputs h_1..h_T (the output stack) and h_0..h_{T-1} (stacked
 * by batch-wgrad for dW_hh) are row windows of one stack h_0..h_T, which
 * the plan has the steps write in place: no second stack is copied. */
Test(compile, the_step_outputs_are_stacked_once) {
    for (int gru = 0; gru < 2; gru++) {
        model m = rnn_model(gru ? "gru" : "lstm", 1, 0, 0, 0, WEFT_F64);
        compare(&m, NULL, 1e-12);
        weft_exec *p = compiled(&m, NULL);
        const weft_graph *g = weft_exec_graph(p);
        int stacks = 0, rows = 0;
        for (int i = 0; i < weft_graph_node_count(g); i++) {
            const char *op = weft_node_op_name(g, i);
            weft_shape s = weft_node_shape(g, i);
            if (op && !strcmp(op, "concat") && s.ndim == 2 && s.dim[1] == 6) stacks++, rows = (int)s.dim[0];
        }
        cr_assert_eq(stacks, 1, "%s: stacks of [B, H] step values: %d", gru ? "gru" : "lstm", stacks);
        cr_assert_eq(rows, 6 * 3, "%s: the stack has %d rows, not (T + 1) B", gru ? "gru" : "lstm", rows);
        weft_exec_free(p);
        model_free(&m);
    }
}

/* What fusion made of a one-layer model with batch 3 and H 6, counted
 * in its compiled graph. */
typedef struct {
    int multi;            /* forward kernels with several outputs */
    int concat_groups;    /* kernels that are a concat (a backward step's gate gradients) */
    int twins;            /* kernels that are two concats sharing values (a GRU's) */
    int sigmoid_kernels;  /* forward kernels computing a sigmoid */
    int bwd_step_kernels; /* backward kernels of a step's [B, H] values (dh, dc) or its gates' */
    int stacks;           /* stacks of whole backward kernels */
    int lone_sigmoid, lone_tanh;
    int concats_bwd;      /* per-step gate-gradient concats left as copies */
} fusion_counts;

static fusion_counts count_fusion(const weft_graph *g) {
    fusion_counts c = {0};
    for (int i = 0; i < weft_graph_node_count(g); i++) {
        const char *op = weft_node_op_name(g, i), *note = weft_node_note(g, i);
        if (!op) continue;
        const int fused = !strcmp(op, "fused"), bwd = weft_node_is_backward(g, i);
        if (fused && note && strstr(note, "outputs side by side: the concat")) c.concat_groups++;
        else if (fused && note && strstr(note, "outputs (fuse)")) c.multi++;
        c.twins += fused && note && strstr(note, "two concats sharing values");
        c.sigmoid_kernels += fused && note && strstr(note, "sigmoid") && !bwd;
        weft_shape sh = weft_node_shape(g, i);
        c.bwd_step_kernels += bwd && sh.ndim == 2 && sh.dim[0] == 3 && sh.dim[1] % 6 == 0 && strcmp(op, "slice") &&
                              strcmp(op, "reshape") && strcmp(op, "matmul_packed") && strcmp(op, "matmul");
        c.stacks += !strcmp(op, "concat") && note && strstr(note, "the stacked kernels");
        c.lone_sigmoid += !strcmp(op, "sigmoid");
        c.lone_tanh += !strcmp(op, "tanh");
        c.concats_bwd += !strcmp(op, "concat") && bwd && sh.dim[0] == 3;
    }
    return c;
}

/* What fusion makes of an LSTM step, counted in the compiled graph: each
 * forward step's gate sums, nonlinearities and state update are one fused
 * kernel with several outputs (the state and the activations the backward
 * reads), and each backward step's gate gradients are one fused kernel that
 * is the concat the GEMMs read, with dh and dc computed in it too.  The
 * output gate joins its step's kernel
 * too (a sibling: h = o * tanh(c) reads both), so no sigmoid or tanh runs
 * in a kernel of its own; h itself, written straight into the output
 * stack, is the one product left outside. */
/* What fusion makes of one layer of `cell` at T = 5, f64. */
static fusion_counts fusion_of(const char *cell) {
    model m = rnn_model(cell, 1, 0, 0, 0, WEFT_F64);
    weft_exec *p = compiled(&m, NULL);
    const fusion_counts c = count_fusion(weft_exec_graph(p));
    weft_exec_free(p);
    model_free(&m);
    return c;
}

/* Each of the 5 backward steps one kernel, no per-step gate-gradient
 * concat left, and the weight-gradient GEMMs' stack of whole kernels. */
static void assert_one_kernel_per_backward_step(const fusion_counts *c) {
    cr_assert_eq(c->concats_bwd, 0, "per-step gate-gradient concats left: %d", c->concats_bwd);
    cr_assert_eq(c->bwd_step_kernels, 5, "backward step kernels: %d, not one per step", c->bwd_step_kernels);
    cr_assert_eq(c->stacks, 1, "stacks of whole backward kernels: %d", c->stacks);
}

Test(compile, fusion_makes_one_kernel_per_step_and_direction) {
    const fusion_counts c = fusion_of("lstm");
    /* T = 5 steps: one multi-output kernel each (the last step's c is not
     * read again, so it has fewer outputs, but still several) */
    cr_assert_eq(c.multi, 5, "multi-output gate kernels: %d", c.multi);
    /* backward steps 1..4 (h0 is zeros: step 0's dh is not needed, but its
     * gate gradients are) */
    cr_assert_eq(c.concat_groups, 5, "gate-gradient kernels: %d", c.concat_groups);
    /* dh = dh' + dy and dc join the gate gradients' kernel: one kernel per
     * backward step, writing dc after the gate gradients' columns; the
     * weight-gradient GEMM's stack is then of whole kernels (planned in
     * place), its gate-gradient columns a view */
    assert_one_kernel_per_backward_step(&c);
    cr_assert_eq(c.sigmoid_kernels, 5, "forward kernels computing gates: %d, not one per step", c.sigmoid_kernels);
    cr_assert_eq(c.lone_sigmoid, 0, "sigmoids on their own: %d", c.lone_sigmoid);
    cr_assert_eq(c.lone_tanh, 0, "tanh on their own: %d", c.lone_tanh);
}

/* A GRU's backward step has two concats of gate gradients: [dr, dz, dn]
 * for the input weights and [dr, dz, dn r] for the recurrent ones (r
 * multiplies h W_hn inside the n gate).  They share values, so they become
 * one kernel writing both side by side (dr and dz twice), with dh and its
 * share for the step before: one kernel per backward step, no per-step
 * concat, and one stack of whole kernels that both weight gradients read
 * columns of. */
Test(compile, gru_backward_step_is_one_kernel) {
    const fusion_counts c = fusion_of("gru");
    cr_assert_eq(c.twins, 5, "kernels writing both gate-gradient concats: %d", c.twins);
    assert_one_kernel_per_backward_step(&c);
}

Test(compile, unknown_pass_is_an_error) {
    model m = rnn_model("rnn_tanh", 1, 0, 0, 0, WEFT_F64);
    const char *bad[] = {"no-such-pass"};
    weft_compile_options o = {.disable = bad, .n_disable = 1};
    cr_assert_null(weft_exec_compile(m.g, m.outs, m.n_outs, &o));
    cr_assert(strstr(weft_last_error(), "no-such-pass") && strstr(weft_last_error(), "batch-gemm"), "%s",
              weft_last_error());
    model_free(&m);
}

/* Products against packed weights (pass "pack"): edges in every direction
 * (13 rows: not a multiple of MR; 270 columns: not of NR; k = 300: two KC
 * blocks), B read as is and transposed, A transposed, outputs written
 * straight into a concat's columns; f64 and f32 against BLIS on the
 * reference executor. */
Test(compile, packed_products_match_blis) {
    for (int f = 0; f < 2; f++) {
        weft_dtype t = f ? WEFT_F32 : WEFT_F64;
        model m = {0};
        m.g = weft_graph_new();
        weft_node w = tu_param(m.g, "w", t, S(270, 300), 1, 0.1, 1, 1);  /* used as w^T */
        weft_node v = tu_param(m.g, "v", t, S(300, 270), 2, 0.1, 1, 1);  /* used as is */
        weft_node x = weft_input(m.g, "x", t, S(3, 13, 300)), xt = weft_input(m.g, "xt", t, S(300, 13));
        weft_node parts[4];
        for (int s = 0; s < 3; s++) {
            weft_node xs = weft_reshape(m.g, weft_slice(m.g, x, 0, s, s + 1), S(13, 300));
            weft_node y = weft_add(m.g, weft_matmul(m.g, xs, w, 0, 1), weft_matmul(m.g, xs, v, 0, 0));
            parts[s] = weft_tanh(m.g, y);
        }
        parts[3] = weft_matmul(m.g, xt, v, 1, 0);
        weft_node both = weft_concat(m.g, (weft_node[]){weft_matmul(m.g, xt, w, 1, 1), parts[3]}, 2, 1);
        for (int s = 0; s < 4; s++) m.outs[m.n_outs++] = parts[s];
        m.outs[m.n_outs++] = both;
        feed_random(&m, x, 5);
        feed_random(&m, xt, 6);
        weft_exec *p = compiled(&m, NULL);
        const weft_graph *g = weft_exec_graph(p);
        int packs = tu_count_op(g, "pack_b"), packed = tu_count_op(g, "matmul_packed");
        weft_exec_free(p);
        /* w^T and v, each packed once; merge-gates joins x_s w^T and x_s v */
        cr_assert_geq(packs, 1, "pack_b nodes: %d", packs);
        cr_assert_geq(packed, 4, "matmul_packed nodes: %d", packed);
        weft_compile_options o = {.verify = 1};
        compare(&m, &o, f ? 1e-5 : 1e-12);
        const char *off[] = {"pack"};
        weft_compile_options o2 = {.verify = 1, .disable = off, .n_disable = 1};
        compare(&m, &o2, f ? 1e-5 : 1e-12);
        model_free(&m);
    }
}

/* The packed product at the micro-kernel's edges: rows around MR (1, 5, 6,
 * 7, 64), columns around NR past the pass's 256 (and narrow ones from 128
 * with depths of two KC blocks or more), depths around KC (1, 255, 256,
 * 257, 600; 512, 513, 600, 1024, 1100), every flag pair; f64 and f32
 * against BLIS; and 1 thread against 2, bitwise. */
Test(compile, packed_products_at_the_edges) {
    /* wide products share B's panels; narrow ones (8-15 panels: NR is 16 in
     * f32, 8 in f64) share the row blocks (row-block kernel) or, two KC
     * blocks deep or more, cut their depth in two halves (BLIS's).  Rows: BLIS's MR-row tiles and their remainders; with AVX-512,
     * the row-block kernel's blocks (15 = 7 + 8, 50 = 12 + 13 + 12 + 13,
     * 200 = 15 blocks of 13-14). */
    static const int64_t Ms[] = {1, 5, 6, 7, 15, 50, 64, 200},
                         Ks[] = {1, 255, 256, 257, 600, 512, 513, 600, 1024, 1100, 384};
    static const int64_t Ns[2][6] = {{256, 257, 271, 64, 67, 100}, {256, 257, 271, 128, 131, 200}};
    int cases = 0;
    for (int f = 0; f < 2; f++)
    for (int mi = 0; mi < 8; mi++)
        for (int ni = 0; ni < 6; ni++)
            for (int ki = ni < 3 ? 0 : 5; ki < (ni < 3 ? 5 : 11); ki++) {
                weft_dtype dt = f ? WEFT_F32 : WEFT_F64;
                size_t es = f ? sizeof(float) : sizeof(double);
                int64_t M = Ms[mi], N = Ns[f][ni], K = Ks[ki];
                int ta = (mi + ki) % 2, tb = (ni + ki + mi / 2) % 2;
                model m = {0};
                m.g = weft_graph_new();
                weft_node w = tu_param(m.g, "w", dt, tb ? S(N, K) : S(K, N), (uint64_t)(1 + cases), 0.1, 1, 1);
                weft_node x = weft_input(m.g, "x", dt, ta ? S(2, K, M) : S(2, M, K));
                for (int s = 0; s < 2; s++) {
                    weft_node xs = weft_reshape(m.g, weft_slice(m.g, x, 0, s, s + 1), ta ? S(K, M) : S(M, K));
                    m.outs[m.n_outs++] = weft_matmul(m.g, xs, w, ta, tb);
                }
                feed_random(&m, x, (uint64_t)(7 + cases));
                weft_compile_options o = {.verify = 1};
                weft_compile_report rep = compare(&m, &o, f ? 1e-5 : 1e-12);
                const weft_pass_stat *pk = tu_pass_stat(&rep, "pack");
                /* a narrow product less than two KC blocks deep is packed
                 * only for the row-block kernel (its threads share rows) */
                if (K < 512 && ni >= 3 && !__builtin_cpu_supports("avx512f")) goto next;
                cr_assert(pk && pk->changes == 2, "%s M=%lld N=%lld K=%lld ta=%d tb=%d: not packed", f ? "f32" : "f64",
                             (long long)M, (long long)N, (long long)K, ta, tb);
                /* the same bits on 1 and 2 threads (kernels sharing the
                 * threads: the inter-op workers would give each one) */
                weft_compile_options serial = {.inter_op = -1};
                weft_exec *e = compiled(&m, &serial);
                cr_assert_eq(weft_exec_feed(e, m.feeds[0], m.data[0], m.bytes[0]), WEFT_OK);
                size_t bytes = (size_t)(M * N) * es;
                char *got[2] = {malloc(2 * bytes), malloc(2 * bytes)};
                for (int t = 0; t < 2; t++) {
                    weft_set_threads(t + 1);
                    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
                    for (int o = 0; o < 2; o++)
                        cr_assert_eq(weft_exec_read(e, m.outs[o], got[t] + o * bytes, bytes), WEFT_OK);
                }
                weft_set_threads(0);
                cr_assert(!memcmp(got[0], got[1], 2 * bytes), "%s M=%lld N=%lld K=%lld ta=%d tb=%d: 2 threads differ",
                          f ? "f32" : "f64", (long long)M, (long long)N, (long long)K, ta, tb);
                free(got[0]);
                free(got[1]);
                weft_exec_free(e);
            next:
                model_free(&m);
                cases++;
            }
}

/* m's first output, an f32 [n] result, compiled for kernels sharing the
 * threads (no inter-op workers) and run on `threads` threads: a buffer
 * the caller frees.  With count_op, *count gets how many nodes of the
 * optimized graph run that op. */
static float *run_f32_on(model *m, int threads, int64_t n, const char *count_op, int *count) {
    weft_set_threads(threads);
    weft_compile_options serial = {.inter_op = -1, .verify = 1};
    weft_exec *e = compiled(m, &serial);
    if (count_op) {
        const weft_graph *g = weft_exec_graph(e);
        *count = 0;
        for (int i = 0; i < weft_graph_node_count(g); i++)
            *count += weft_node_op_name(g, i) && !strcmp(weft_node_op_name(g, i), count_op);
    }
    feed(m, e);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    float *got = malloc((size_t)n * sizeof(float));
    cr_assert_eq(weft_exec_read(e, m->outs[0], got, (size_t)n * sizeof(float)), WEFT_OK);
    weft_exec_free(e);
    weft_set_threads(0);
    return got;
}

/* Large f32 products (weft's own driver with AVX-512, "Large f32 products"
 * in ops/matmul.c; BLIS's elsewhere) against sums made in f64 here: every
 * flag pair, operands read through slices of wider tensors (row strides;
 * transposed A and B), the output written into a concat's columns; row
 * counts around the 12-row block (5, 37, 64, 131, 600), columns around the
 * 32-column panel and its narrow last panel (7, 33, 61, 200, 257, 1000),
 * depths around the 512-deep block of a transposed A and the near-equal
 * blocks of up to 1024 of the others (257, 300, 500, 513, 1000; 1100: two
 * of 550; 2100: three of 700).  And the same bits on 1 and 2 threads. */
Test(compile, large_f32_products_match_f64_sums) {
    static const int64_t shapes[][3] = {{131, 257, 300}, {100, 200, 1000}, {37, 61, 1100},
                                        {1000, 7, 300},  {5, 1000, 500},   {600, 33, 257},
                                        {64, 300, 513},  {40, 50, 2100}};
    const int64_t pad = 5;
    for (int c = 0; c < 8; c++)
        for (int fl = 0; fl < 4; fl++) {
            const int64_t M = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
            const int ta = fl & 1, tb = fl >> 1;
            model m = {0};
            m.g = weft_graph_new();
            /* op(A) = the first M (ta: columns) of a [M + pad, K + pad] or
             * [K + pad, M + pad] input; op(B) and op(B2) two column (tb:
             * row) ranges of one [K, 2N + pad] or [2N + pad, K + pad] input */
            weft_node a = weft_input(m.g, "a", WEFT_F32, ta ? S(K + pad, M + pad) : S(M + pad, K + pad));
            weft_node b = weft_input(m.g, "b", WEFT_F32, tb ? S(2 * N + pad, K + pad) : S(K + pad, 2 * N + pad));
            weft_node as = weft_slice(m.g, weft_slice(m.g, a, 0, 0, ta ? K : M), 1, 0, ta ? M : K);
            weft_node y[2];
            for (int h = 0; h < 2; h++) {
                weft_node bs = weft_slice(m.g, weft_slice(m.g, b, !tb, h * N, (h + 1) * N), tb, 0, K);
                y[h] = weft_matmul(m.g, as, bs, ta, tb);
            }
            m.outs[m.n_outs++] = weft_concat(m.g, y, 2, 1);
            feed_random(&m, a, (uint64_t)(40 + c * 4 + fl));
            feed_random(&m, b, (uint64_t)(80 + c * 4 + fl));
            const float *A = m.data[0], *B = m.data[1];
            const int64_t lda = ta ? M + pad : K + pad, ldb = tb ? K + pad : 2 * N + pad;
            float *got[2];
            for (int t = 0; t < 2; t++) got[t] = run_f32_on(&m, t + 1, M * 2 * N, NULL, NULL);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < 2 * N; j++) {
                    double sum = 0, mag = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double x = ta ? A[k * lda + i] : A[i * lda + k];
                        double w = tb ? B[j * ldb + k] : B[k * ldb + j];
                        sum += x * w;
                        mag += fabs(x * w);
                    }
                    double d = fabs((double)got[0][i * 2 * N + j] - sum);
                    if (d > 1e-5 * mag + 1e-30)
                        cr_assert_fail("[%lld x %lld] x [%lld x %lld] ta=%d tb=%d: C[%lld][%lld] = %.9g, f64 sum %.9g",
                                 (long long)M, (long long)K, (long long)K, (long long)N, ta, tb, (long long)i,
                                 (long long)j, got[0][i * 2 * N + j], sum);
                }
            cr_assert(!memcmp(got[0], got[1], (size_t)(M * 2 * N) * sizeof(float)),
                      "[%lld x %lld] x [%lld x %lld] ta=%d tb=%d: 2 threads differ from 1", (long long)M, (long long)K,
                      (long long)K, (long long)N, ta, tb);
            free(got[0]);
            free(got[1]);
            model_free(&m);
        }
}

/* A step's product reads its A in place, a row broadcast down the batch
 * too (an h0 given as [1, H]: row stride 0), which a first version took
 * for a packed block (wrong values, reads past the row).  f32 and f64
 * against the reference. */
Test(compile, packed_products_of_a_broadcast_row) {
    for (int f = 0; f < 2; f++) {
        weft_dtype dt = f ? WEFT_F32 : WEFT_F64;
        model m = {0};
        m.g = weft_graph_new();
        weft_node w = tu_param(m.g, "w", dt, S(256, 256), 3, 0.1, 1, 1);
        weft_node h0 = weft_input(m.g, "h0", dt, S(1, 256));
        weft_node h = weft_broadcast(m.g, h0, S(32, 256));
        for (int t = 0; t < 4; t++) h = weft_tanh(m.g, weft_matmul(m.g, h, w, 0, 0));
        m.outs[m.n_outs++] = h;
        feed_random(&m, h0, 11);
        weft_compile_options o = {.verify = 1};
        weft_compile_report rep = compare(&m, &o, f ? 1e-5 : 1e-12);
        const weft_pass_stat *pk = tu_pass_stat(&rep, "pack");
        cr_assert(pk && pk->changes > 0, "%s: the products were not packed", f ? "f32" : "f64");
        model_free(&m);
    }
}

/* A product of one depth block too large to wait in the cache (8 MB of
 * output and more: the input projection x W_ih) streams its stores
 * (ops/matmul.c, STREAM_MIN): its output against f64 sums at every 61st
 * element, rows and columns ending mid-block and mid-panel, and 1 against
 * 2 threads bitwise. */
Test(compile, streamed_products_match_f64_sums) {
    const int64_t M = 2101, N = 1003, K = 300;
    for (int tb = 0; tb < 2; tb++) {
        model m = {0};
        m.g = weft_graph_new();
        weft_node a = weft_input(m.g, "a", WEFT_F32, S(M, K));
        weft_node b = weft_input(m.g, "b", WEFT_F32, tb ? S(N, K) : S(K, N));
        m.outs[m.n_outs++] = weft_matmul(m.g, a, b, 0, tb);
        feed_random(&m, a, (uint64_t)(500 + tb));
        feed_random(&m, b, (uint64_t)(600 + tb));
        const float *A = m.data[0], *B = m.data[1];
        float *got[2];
        for (int t = 0; t < 2; t++) got[t] = run_f32_on(&m, t + 1, M * N, NULL, NULL);
        for (int64_t x = 0; x < M * N; x += 61) {
            const int64_t i = x / N, j = x % N;
            double sum = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                const double p = (double)A[i * K + k] * (double)(tb ? B[j * K + k] : B[k * N + j]);
                sum += p;
                mag += fabs(p);
            }
            if (fabs((double)got[0][x] - sum) > 1e-5 * mag + 1e-30)
                cr_assert_fail("tb=%d: C[%lld][%lld] = %.9g, f64 sum %.9g", tb, (long long)i, (long long)j, got[0][x], sum);
        }
        cr_assert(!memcmp(got[0], got[1], (size_t)(M * N) * sizeof(float)), "tb=%d: 2 threads differ from 1", tb);
        free(got[0]);
        free(got[1]);
        model_free(&m);
    }
}

/* A large f32 product whose right operand is a concat of columns (a
 * weight gradient's [x | h | 1]) reads the parts where they are
 * (matmul_cat, pass concat-operand, with AVX-512): parts 45 columns of a
 * wider input, 100 contiguous, a ones column and 20 transposed (unit row
 * stride), so panels of 32 columns straddle them, at two depths around the
 * KC block, A as is and transposed: against f64 sums, and 1 against 2
 * threads bitwise. */
Test(compile, products_of_concat_operands_match_f64_sums) {
    static const int64_t shapes[][2] = {{300, 700}, {130, 513}}; /* M, K */
    const int64_t w[4] = {45, 100, 1, 20}, N = 166;
    for (int c = 0; c < 2; c++)
        for (int v = 0; v < 3; v++) {
            /* v 2: A a row broadcast down M rows (stride 0), which the
             * kernel copies to unit strides first, as matmul does */
            const int ta = v == 1, bc = v == 2;
            const int64_t M = shapes[c][0], K = shapes[c][1];
            model m = {0};
            m.g = weft_graph_new();
            weft_node a = weft_input(m.g, "a", WEFT_F32, bc ? S(1, K) : ta ? S(K, M) : S(M, K));
            weft_node b0 = weft_input(m.g, "b0", WEFT_F32, S(K, 50)), b1 = weft_input(m.g, "b1", WEFT_F32, S(K, 100));
            weft_node b3 = weft_input(m.g, "b3", WEFT_F32, S(20, K));
            const int perm[2] = {1, 0};
            weft_node parts[4] = {weft_slice(m.g, b0, 1, 5, 50), b1, weft_ones(m.g, S(K, 1), WEFT_F32),
                                  weft_transpose(m.g, b3, perm)};
            m.outs[m.n_outs++] = weft_matmul(m.g, bc ? weft_broadcast(m.g, a, S(M, K)) : a, weft_concat(m.g, parts, 4, 1), ta, 0);
            feed_random(&m, a, (uint64_t)(7 + c * 2 + ta));
            feed_random(&m, b0, (uint64_t)(17 + c * 2 + ta));
            feed_random(&m, b1, (uint64_t)(27 + c * 2 + ta));
            feed_random(&m, b3, (uint64_t)(37 + c * 2 + ta));
            const float *A = m.data[0], *B0 = m.data[1], *B1 = m.data[2], *B3 = m.data[3];
            float *got[2];
            for (int t = 0; t < 2; t++) {
                int cats;
                got[t] = run_f32_on(&m, t + 1, M * N, "matmul_cat", &cats);
                if (__builtin_cpu_supports("avx512f")) cr_assert_eq(cats, 1, "matmul_cat nodes: %d", cats);
            }
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double sum = 0, mag = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double x = bc ? A[k] : ta ? A[k * M + i] : A[i * K + k], y;
                        if (j < w[0]) y = B0[k * 50 + 5 + j];
                        else if (j < w[0] + w[1]) y = B1[k * 100 + j - w[0]];
                        else if (j == w[0] + w[1]) y = 1;
                        else y = B3[(j - w[0] - w[1] - w[2]) * K + k];
                        sum += x * y;
                        mag += fabs(x * y);
                    }
                    double d = fabs((double)got[0][i * N + j] - sum);
                    if (d > 1e-5 * mag + 1e-30)
                        cr_assert_fail("[%lld x %lld] ta=%d: C[%lld][%lld] = %.9g, f64 sum %.9g", (long long)M,
                                       (long long)K, ta, (long long)i, (long long)j, got[0][i * N + j], sum);
                }
            cr_assert(!memcmp(got[0], got[1], (size_t)(M * N) * sizeof(float)), "[%lld x %lld] ta=%d: 2 threads differ from 1",
                      (long long)M, (long long)K, ta);
            free(got[0]);
            free(got[1]);
            model_free(&m);
        }
}

/* Plain BLIS products bitwise the same on 1 and 2 threads, at shapes where
 * BLIS's small-matrix path gave other bits with 2 threads (weft turns that
 * path off): [M x K] x [257 x K]^T and [M x K] x [7 x K]^T. */
Test(compile, blis_products_same_bits_on_one_and_two_threads) {
    static const int64_t shapes[][3] = {{128, 257, 100}, {257, 257, 60}, {512, 257, 128}, {512, 7, 1024}, {1000, 7, 300}};
    for (int c = 0; c < 5; c++) {
        int64_t M = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
        weft_graph *g = weft_graph_new();
        weft_node w = tu_param(g, "w", WEFT_F32, S(N, K), (uint64_t)(3 + c), 0.5, 1, 1);
        weft_node a = tu_param(g, "a", WEFT_F32, S(M, K), (uint64_t)(9 + c), 0.5, 1, 1);
        weft_node y = weft_matmul(g, a, w, 0, 1);
        float *got[2];
        for (int t = 0; t < 2; t++) {
            weft_set_threads(t + 1);
            weft_exec *e = weft_exec_compile(g, &y, 1, NULL);
            cr_assert(e, "%s", weft_last_error());
            cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
            got[t] = malloc((size_t)(M * N) * sizeof(float));
            cr_assert_eq(weft_exec_read(e, y, got[t], (size_t)(M * N) * sizeof(float)), WEFT_OK);
            weft_exec_free(e);
        }
        weft_set_threads(0);
        cr_assert(!memcmp(got[0], got[1], (size_t)(M * N) * sizeof(float)),
                  "[%lld x %lld] x [%lld x %lld]^T: 2 threads differ from 1", (long long)M, (long long)K, (long long)N,
                  (long long)K);
        free(got[0]);
        free(got[1]);
        weft_graph_free(g);
    }
}

/* merge-wgrad: the weight gradients a^T g1 and a^T g2 of y1 = a b1 and
 * y2 = a b2 share a^T and become one a^T [g1 | g2].  When b2 is made from y1,
 * g1 needs a^T g2 itself: merging would be a cycle, and the pass leaves the
 * two products as they are.  Both give the reference's numbers. */
Test(compile, merge_wgrad_joins_shared_products_but_not_a_cycle) {
    for (int cyclic = 0; cyclic < 2; cyclic++) {
        model m = {0};
        m.g = weft_graph_new();
        weft_node a = tu_param(m.g, "a", WEFT_F64, S(5, 4), 1, 0.3, 1, 1);
        weft_node b1 = tu_param(m.g, "b1", WEFT_F64, S(4, 3), 2, 0.3, 1, 1);
        weft_node c = tu_param(m.g, "c", WEFT_F64, S(5, 2), 3, 0.3, 1, 1);
        weft_node y1 = weft_matmul(m.g, a, b1, 0, 0);
        weft_node b2 = cyclic ? weft_matmul(m.g, weft_slice(m.g, weft_tanh(m.g, y1), 1, 0, 1), c, 1, 0) /* [1, 2] */
                              : tu_param(m.g, "b2", WEFT_F64, S(4, 2), 4, 0.3, 1, 1);
        if (cyclic) b2 = weft_concat(m.g, (weft_node[]){b2, b2, b2, b2}, 4, 0); /* [4, 2] */
        weft_node y2 = weft_matmul(m.g, a, b2, 0, 0);
        weft_node loss = weft_add(m.g, tu_weighted_sum(m.g, y1, 5), tu_weighted_sum(m.g, y2, 6));
        weft_node wrt[3] = {b1, cyclic ? c : b2, a}, grads[3];
        cr_assert_eq(weft_grad(m.g, loss, wrt, 3, grads), WEFT_OK, "%s", weft_last_error());
        m.outs[m.n_outs++] = loss;
        for (int k = 0; k < 3; k++) m.outs[m.n_outs++] = grads[k];
        weft_compile_options o = {.verify = 1};
        weft_compile_report r = compare(&m, &o, 1e-12);
        const weft_pass_stat *mw = tu_pass_stat(&r, "merge-wgrad");
        cr_assert(mw);
        cr_assert_eq(mw->changes, cyclic ? 0 : 2, "cyclic %d: merge-wgrad made %d changes", cyclic, mw->changes);
        model_free(&m);
    }
}

/* Sibling regions read by one node become one kernel (u's region joins
 * b's), unless a value of the earlier one is read before the later one
 * would run: here v = u W feeds b, so a joined kernel would have to run
 * both before and after v. */
Test(compile, fuse_joins_sibling_regions_unless_one_is_read_between) {
    for (int between = 0; between < 2; between++) {
        model m = {0};
        m.g = weft_graph_new();
        weft_node x0 = tu_param(m.g, "x0", WEFT_F64, S(5, 5), 1, 0.3, 1, 1);
        weft_node w = tu_param(m.g, "w", WEFT_F64, S(5, 5), 2, 0.3, 1, 1);
        weft_node u = weft_sigmoid(m.g, weft_add(m.g, x0, weft_scalar_like(m.g, x0, 1)));
        weft_node v = weft_matmul(m.g, between ? u : x0, w, 0, 0);
        weft_node b = weft_tanh(m.g, weft_add(m.g, weft_mul(m.g, v, weft_scalar_like(m.g, v, 2)), x0));
        m.outs[m.n_outs++] = weft_matmul(m.g, u, b, 0, 0);
        weft_compile_options o = {.verify = 1};
        compare(&m, &o, 1e-12);
        weft_exec *p = compiled(&m, &o);
        const weft_graph *g = weft_exec_graph(p);
        int kernels = tu_count_op(g, "fused");
        cr_assert_eq(kernels, between ? 2 : 1, "u read %s b: %d fused kernels", between ? "before" : "after", kernels);
        weft_exec_free(p);
        model_free(&m);
    }
}

/* Random graphs: chains of random ops over a few parameters. */
Test(compile, random_graphs) {
    for (int seed = 1; seed <= 40; seed++) {
        model m = {0};
        m.g = weft_graph_new();
        weft_node pool[64]; /* every node here is [4, 3] */
        int np = 0;
        pool[np++] = tu_param(m.g, "a", WEFT_F64, S(4, 3), seed, 0.2, 1, 1);
        pool[np++] = tu_param(m.g, "b", WEFT_F64, S(4, 3), seed + 100, 0.2, 1, 1);
        weft_node w = tu_param(m.g, "w", WEFT_F64, S(3, 3), seed + 200, 0.2, 1, 1);
        uint64_t st = (uint64_t)seed * 2654435761u;
        for (int k = 0; k < 30; k++) {
            st = st * 6364136223846793005ull + 1;
            int op = (int)(st >> 33) % 9;
            weft_node x = pool[(st >> 40) % (uint64_t)np], y = pool[(st >> 20) % (uint64_t)np], z = WEFT_NONE;
            switch (op) {
            case 0: z = weft_add(m.g, x, y); break;
            case 1: z = weft_mul(m.g, x, weft_scalar_like(m.g, x, 1)); break;
            case 2: z = weft_tanh(m.g, x); break;
            case 3: z = weft_matmul(m.g, x, w, 0, 0); break;
            case 4: z = weft_sub(m.g, x, weft_scalar_like(m.g, x, 0)); break;
            case 5: z = weft_sigmoid(m.g, weft_add(m.g, x, y)); break;
            case 6: z = weft_concat(m.g, (weft_node[]){weft_slice(m.g, x, 0, 0, 2), weft_slice(m.g, x, 0, 2, 4)}, 2, 0); break;
            case 7: z = weft_mul(m.g, x, y); break;
            case 8: z = weft_add(m.g, weft_matmul(m.g, x, w, 0, 1), weft_matmul(m.g, y, w, 0, 1)); break;
            }
            if (z != WEFT_NONE && weft_shape_eq(weft_node_shape(m.g, z), S(4, 3))) pool[np < 63 ? np++ : 2 + k % 60] = z;
        }
        cr_assert_eq(weft_graph_status(m.g), WEFT_OK, "%s", weft_graph_error(m.g));
        weft_node loss = tu_weighted_sum(m.g, pool[np - 1], 9);
        weft_node wrt[3] = {pool[0], pool[1], w}, grads[3];
        cr_assert_eq(weft_grad(m.g, loss, wrt, 3, grads), WEFT_OK);
        m.outs[m.n_outs++] = loss;
        for (int k = 0; k < 3; k++) m.outs[m.n_outs++] = grads[k];
        weft_compile_options o = {.verify = 1};
        compare(&m, &o, 1e-12);
        model_free(&m);
    }
}

/* Bitwise the same results for 1 and 2 threads, and run after run: every
 * thread owns the output elements it writes. */
Test(compile, deterministic_across_threads_and_runs) {
    weft_graph *g = weft_graph_new();
    weft_cell *cell = weft_cell_get("lstm");
    weft_rnn_config cfg = weft_rnn_config_default(64, 256); /* [B, 4H] = 64 x 1024: parallel kernels */
    cfg.bidirectional = 1;
    weft_rnn *r;
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_OK);
    weft_rng rng = weft_rng_make(3);
    weft_rnn_init(g, r, &rng);
    weft_node x = weft_input(g, "x", WEFT_F32, S(4, 64, 64));
    weft_rnn_inputs in = {.x = x, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, r, &in, &res), WEFT_OK);
    weft_node loss = tu_weighted_sum(g, res.output, 4);
    weft_node wrt[16], grads[16];
    int np = weft_graph_params(g, wrt, 16);
    cr_assert_eq(weft_grad(g, loss, wrt, np, grads), WEFT_OK);
    float *xd = malloc(4 * 64 * 64 * sizeof *xd);
    for (int i = 0; i < 4 * 64 * 64; i++) xd[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    size_t total = 0;
    for (int k = 0; k < np; k++) total += (size_t)weft_shape_numel(weft_node_shape(g, grads[k]));
    float *ref = malloc(total * sizeof *ref), *got = malloc(total * sizeof *got);
    for (int trial = 0; trial < 5; trial++) {
        /* 1 thread; 2 threads splitting kernels; 2 inter-op workers; 2
         * threads with row bands; 1 thread again */
        weft_set_threads(trial >= 1 && trial <= 3 ? 2 : 1);
        weft_compile_options o = {.inter_op = trial == 2 ? 1 : -1, .row_bands = trial == 3 ? 1 : -1};
        weft_exec *e = weft_exec_compile(g, grads, np, &o);
        cr_assert(e, "%s", weft_last_error());
        if (trial == 2) cr_assert_eq(weft_exec_report(e)->workers, 2);
        if (trial == 3) cr_assert(weft_exec_report(e)->bands_used);
        cr_assert_eq(weft_exec_feed(e, x, xd, 4 * 64 * 64 * sizeof *xd), WEFT_OK);
        cr_assert_eq(weft_exec_run(e), WEFT_OK);
        float *dst = trial ? got : ref;
        size_t at = 0;
        for (int k = 0; k < np; k++) {
            size_t n = (size_t)weft_shape_numel(weft_node_shape(g, grads[k]));
            cr_assert_eq(weft_exec_read(e, grads[k], dst + at, n * sizeof *dst), WEFT_OK);
            at += n;
        }
        if (trial) cr_assert(!memcmp(ref, got, total * sizeof *ref), "trial %d differs from the 1-thread run", trial);
        weft_exec_free(e);
    }
    weft_set_threads(0);
    free(xd); free(ref); free(got);
    weft_rnn_free(r);
    weft_cell_free(cell);
    weft_graph_free(g);
}
