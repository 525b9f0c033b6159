/* weft train --task binary-addition: the classic from-scratch RNN that learns
 * to add two 8-bit numbers one bit at a time, least significant bit first.
 * As in the original: 2 inputs (a bit of each operand), 16 hidden units with
 * the logistic activation and no biases (cells/rnn_sigmoid.cell), 1 sigmoid
 * output, every weight U(-1, 1), loss sum over bits of (y - p)^2 / 2, plain
 * BPTT and SGD with learning rate 0.1 on one random pair a, b < 128 a step.
 * Every epoch (1000 steps) it prints the original's report for the last
 * pair and scores all 128 x 128 pairs: a pair counts when all 8 bits are
 * right.  Training stops once every pair is right. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train_common.h"

enum { BITS = 8, OPERANDS = 128, PAIRS = OPERANDS * OPERANDS };

typedef struct model {
    weft_graph *g;
    weft_cell *cell;
    weft_rnn *rnn;
    weft_linear out;
    weft_node x, y, loss, bit_acc;   /* training batch */
    weft_node all_p, all_loss;       /* every pair: [BITS, PAIRS, 1] */
} model;

/* x [BITS, n, 2] and y [BITS, n, 1] for the pairs (a[i], b[i]). */
static void encode(const int *a, const int *b, int n, float *x, float *y) {
    for (int t = 0; t < BITS; t++)
        for (int i = 0; i < n; i++) {
            int c = a[i] + b[i];
            x[(t * n + i) * 2 + 0] = (float)((a[i] >> t) & 1);
            x[(t * n + i) * 2 + 1] = (float)((b[i] >> t) & 1);
            y[t * n + i] = (float)((c >> t) & 1);
        }
}

/* p = sigmoid(Linear(RNN(x))), and sum over bits of (p - y)^2 / 2, mean
 * over the batch */
static weft_node predict(model *m, weft_node x) {
    weft_rnn_inputs in = {x, NULL, WEFT_NONE, WEFT_NONE};
    weft_rnn_result r;
    if (weft_rnn_apply(m->g, m->rnn, &in, &r)) return WEFT_NONE;
    return weft_sigmoid(m->g, weft_linear_apply(m->g, &m->out, r.output)); /* [T, n, 1] */
}

static weft_node half_sse(weft_graph *g, weft_node p, weft_node y, int n) {
    weft_node e = weft_sum(g, weft_square(g, weft_sub(g, p, y)), NULL, 0, 0);
    return weft_mul(g, e, weft_scalar_like(g, e, 0.5 / n));
}

static int build(model *m, const train_opts *o, int B, weft_rng *rng) {
    memset(m, 0, sizeof *m);
    weft_graph *g = m->g = weft_graph_new();
    if (!g) return train_fail("out of memory");
    if (!(m->cell = train_cell_get(o->cell ? o->cell : "rnn_sigmoid")))
        return train_fail("cell");
    int64_t H = o->hidden > 0 ? o->hidden : 16;
    weft_rnn_config cfg = weft_rnn_config_default(2, H);
    cfg.bias = 0;
    cfg.num_layers = o->layers > 0 ? o->layers : 1;
    cfg.bidirectional = 0; /* a carry flows one way */
    if (weft_rnn_new(g, m->cell, &cfg, &m->rnn) ||
        weft_linear_new(g, "out", H * m->rnn->dirs, 1, 0, WEFT_F32, rng, &m->out))
        return train_fail("model");
    /* the original's init: every weight U(-1, 1) */
    int np = weft_graph_params(g, NULL, 0);
    weft_node ps[64];
    if (np > 64) return train_fail("model");
    weft_graph_params(g, ps, np);
    for (int i = 0; i < np; i++)
        if (weft_init_param(g, ps[i], WEFT_INIT_UNIFORM_INV_SQRT_H, 0, 1.0, rng))
            return train_fail("init");

    m->x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(BITS, B, 2));
    m->y = weft_input(g, "y", WEFT_F32, WEFT_SHAPE(BITS, B, 1));
    weft_node p = predict(m, m->x);
    m->loss = half_sse(g, p, m->y, B);
    /* fraction of bits right */
    weft_node wrong = weft_greater(g, weft_abs(g, weft_sub(g, p, m->y)),
                                   weft_scalar_like(g, p, 0.5));
    m->bit_acc = weft_sub(g, weft_scalar_like(g, p, 1.0), weft_mean(g, wrong, NULL, 0, 0));

    /* the same weights on every pair at once, for scoring */
    static int a[PAIRS], b[PAIRS];
    static float xa[BITS * PAIRS * 2], ya[BITS * PAIRS];
    for (int i = 0; i < PAIRS; i++) a[i] = i / OPERANDS, b[i] = i % OPERANDS;
    encode(a, b, PAIRS, xa, ya);
    weft_node cx = weft_const(g, "all_x", WEFT_F32, WEFT_SHAPE(BITS, PAIRS, 2), xa);
    weft_node cy = weft_const(g, "all_y", WEFT_F32, WEFT_SHAPE(BITS, PAIRS, 1), ya);
    m->all_p = predict(m, cx);
    m->all_loss = half_sse(g, m->all_p, cy, PAIRS);
    return train_model_built(g);
}

static void drop(model *m) {
    weft_rnn_free(m->rnn);
    weft_cell_free(m->cell);
    weft_graph_free(m->g);
}

/* Bit t of prediction row p for pair i. */
static int bit_of(const float *p, int t, int i) { return p[t * PAIRS + i] > 0.5f; }

static void print_bits(const char *label, unsigned v) {
    printf("%s[", label);
    for (int t = BITS - 1; t >= 0; t--) printf("%u%s", (v >> t) & 1, t ? " " : "");
    printf("]\n");
}

/* The original's report for pair (a, b), then the score over all pairs. */
static void report(const float *p, int a, int b, double acc) {
    int i = a * OPERANDS + b;
    unsigned pred = 0;
    double err = 0;
    for (int t = 0; t < BITS; t++) {
        pred |= (unsigned)bit_of(p, t, i) << t;
        err += fabs((double)(((a + b) >> t) & 1) - p[t * PAIRS + i]);
    }
    printf("Error:[%.8f]\n", err);
    print_bits("Pred:", pred);
    print_bits("True:", (unsigned)(a + b));
    printf("%d + %d = %u\n", a, b, pred);
    printf("all %d x %d pairs right: %.2f%%\n------------\n", OPERANDS, OPERANDS, 100 * acc);
}

int task_binary_addition(const train_opts *o, train_summary *sum) {
    int B = o->batch > 0 ? o->batch : 1;
    int epochs = o->epochs > 0 ? o->epochs : 50;
    weft_rng init = weft_rng_make(o->seed);
    model m;
    int rc = build(&m, o, B, &init);
    if (!rc && o->summary) {
        char rs[48], os[48];
        snprintf(rs, sizeof rs, "(%d, %d, %lld)", BITS, B, (long long)m.rnn->cfg.hidden_size);
        snprintf(os, sizeof os, "(%d, %d, 1)", BITS, B);
        train_print_rnn_summary("binary-addition", m.g, m.cell, m.rnn, "", rs, "out.", os);
        drop(&m);
        return 0;
    }
    weft_trainer *t = NULL;
    weft_exec *score = NULL;
    float *x = malloc(sizeof *x * BITS * (size_t)B * 2), *y = malloc(sizeof *y * BITS * (size_t)B);
    int *a = malloc(sizeof *a * (size_t)B), *b = malloc(sizeof *b * (size_t)B);
    static float all_p[BITS * PAIRS];
    if (!rc && (!x || !y || !a || !b)) rc = train_fail("out of memory");
    if (!rc) {
        weft_train_config tc = train_config(o, m.loss, &m.bit_acc, WEFT_OPTIM_SGD, 0.1, 0, epochs, 0x5eedull);
        weft_node outs[2] = {m.all_p, m.all_loss};
        if (weft_trainer_new(m.g, &tc, &t)) rc = train_fail("trainer");
        else if (!(score = weft_exec_new(m.g, outs, 2))) rc = train_fail("scoring");
        else if (o->resume && weft_trainer_load(t, o->resume)) rc = train_fail("resume");
    }
    sum->metric = "accuracy";
    sum->params = rc ? 0 : train_param_count(m.g);
    int64_t per = o->steps_per_epoch > 0 ? o->steps_per_epoch : 1000;
    double acc = 0, all_loss = 0;
    train_stopper stop = {0};
    if (!rc && !o->quiet)
        printf("binary-addition: %s, %lld hidden, batch %d, %s lr %g, %lld parameters\n",
               m.cell->name, (long long)m.rnn->cfg.hidden_size, B,
               weft_optim_kind_name(weft_optim_config_of(weft_trainer_optim(t))->kind),
               weft_trainer_lr(t), (long long)sum->params);
    for (int ep = (int)(rc ? epochs : weft_trainer_epoch(t)); ep < epochs && !rc; ep++) {
        progress pr;
        progress_begin(&pr, o, ep + 1, epochs, per, "bits", "seq");
        pr.quiet = 1; /* the original's report below is the progress */
        for (int64_t s = 0; s < per && !rc; s++) {
            for (int i = 0; i < B; i++) {
                a[i] = (int)weft_rng_below(weft_trainer_rng(t), OPERANDS);
                b[i] = (int)weft_rng_below(weft_trainer_rng(t), OPERANDS);
            }
            encode(a, b, B, x, y);
            weft_feed f[2] = {{m.x, x, sizeof *x * BITS * (size_t)B * 2},
                              {m.y, y, sizeof *y * BITS * (size_t)B}};
            weft_train_result r;
            if (weft_trainer_step(t, f, 2, &r)) {
                rc = train_fail("step");
                break;
            }
            if (train_after_step(t, o, &pr, s + 1, &r, B, &rc)) break;
        }
        weft_trainer_end_epoch(t);
        weft_tensor pv;
        if (!rc && (weft_exec_run(score) || weft_exec_read(score, m.all_p, all_p, sizeof all_p) ||
                    weft_exec_value(score, m.all_loss, &pv)))
            rc = train_fail("scoring");
        if (rc) break;
        all_loss = weft_tensor_get(&pv, 0);
        int right = 0;
        for (int i = 0; i < PAIRS; i++) {
            int ok = 1, c = i / OPERANDS + i % OPERANDS;
            for (int t2 = 0; t2 < BITS && ok; t2++) ok = bit_of(all_p, t2, i) == ((c >> t2) & 1);
            right += ok;
        }
        acc = (double)right / PAIRS;
        train_epoch_row(t, o, ep + 1, &pr, all_loss, "accuracy", acc, sum);
        if (!o->quiet) {
            printf("epoch %d/%d, step %lld: train loss %.4f, bits right %.4f\n", ep + 1, epochs,
                   (long long)weft_trainer_steps(t), sum->train_loss, progress_metric(&pr));
            report(all_p, a[B - 1], b[B - 1], acc);
        }
        if (right == PAIRS) {
            if (!o->quiet) printf("every pair is right after %lld steps\n",
                                  (long long)weft_trainer_steps(t));
            break;
        }
        if (train_epoch_stop(t, o, &stop, ep + 1, all_loss)) break;
    }
    rc = train_finish(t, o, rc, all_loss, acc, sum);
    weft_exec_free(score);
    weft_trainer_free(t);
    free(x), free(y), free(a), free(b);
    drop(&m);
    return rc;
}
