/* The training loop: a seed-sized Embedding + LSTM + Dense classifier learns
 * a small synthetic task; checkpoints round-trip and resume exactly; the
 * carried state of stateful training; sampling for generation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/train.h"

enum { V = 8, E = 8, H = 16, C = 4, B = 16, T = 6, N = 256 };

/* The task: tokens 1..7, right-padded with 0 to T; the label is the first
 * token (1..4) minus 1, so the model must carry it through the sequence,
 * and with padding the answer is the state at each sequence's last valid
 * step (Keras-style masking from the embedding's padding index). */
typedef struct dataset {
    int32_t tokens[N][T];
    int32_t labels[N];
} dataset;

static void make_data(dataset *d, uint64_t seed) {
    weft_rng r = weft_rng_make(seed);
    for (int i = 0; i < N; i++) {
        int len = 3 + (int)weft_rng_below(&r, T - 2);
        d->labels[i] = (int32_t)weft_rng_below(&r, C);
        for (int t = 0; t < T; t++)
            d->tokens[i][t] = t == 0 ? d->labels[i] + 1
                              : t < len ? 1 + (int32_t)weft_rng_below(&r, V - 1)
                                        : 0;
    }
}

typedef struct model {
    weft_graph *g;
    weft_cell *cell;
    weft_rnn *rnn;
    weft_node tokens, labels, train, h0, c0, loss, acc, h_n, c_n;
} model;

/* stateful: h0/c0 are inputs and h_n/c_n are carried between batches;
 * seed: the initial parameters (the dropout streams are part of the model's
 * definition, fixed here) */
static void build(model *m, int layers, double dropout, int stateful, uint64_t seed) {
    memset(m, 0, sizeof *m);
    weft_rng rng = weft_rng_make(seed);
    weft_graph *g = m->g = weft_graph_new();
    m->tokens = weft_input(g, "tokens", WEFT_I32, WEFT_SHAPE(B, T));
    m->labels = weft_input(g, "labels", WEFT_I32, WEFT_SHAPE(B));
    m->train = weft_input(g, "train", WEFT_F32, WEFT_SCALAR_SHAPE);
    weft_embedding emb;
    cr_assert_eq(weft_embedding_new(g, "embedding", V, E, 0, WEFT_F32, &rng, &emb), WEFT_OK,
                 "%s", weft_last_error());
    weft_node x = weft_embedding_apply(g, &emb, m->tokens); /* [B, T, E] */

    m->cell = weft_cell_get("lstm");
    cr_assert(m->cell);
    weft_rnn_config cfg = weft_rnn_config_default(E, H);
    cfg.num_layers = layers;
    cfg.dropout = dropout;
    cfg.dropout_seed = 2024;
    cfg.batch_first = 1;
    cfg.prefix = "lstm.";
    cr_assert_eq(weft_rnn_new(g, m->cell, &cfg, &m->rnn), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_rnn_init(g, m->rnn, &rng), WEFT_OK);
    weft_node state0[2] = {WEFT_NONE, WEFT_NONE};
    m->h0 = m->c0 = WEFT_NONE;
    if (stateful) {
        state0[0] = m->h0 = weft_input(g, "h0", WEFT_F32, WEFT_SHAPE(layers, B, H));
        state0[1] = m->c0 = weft_input(g, "c0", WEFT_F32, WEFT_SHAPE(layers, B, H));
    }
    weft_rnn_inputs in = {x, state0, weft_mask_from_padding(g, m->tokens, 0, WEFT_F32),
                          m->train};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, m->rnn, &in, &res), WEFT_OK, "%s", weft_last_error());
    m->h_n = res.state_n[0];
    m->c_n = res.state_n[1];

    weft_linear out;
    cr_assert_eq(weft_linear_new(g, "out", H, C, 1, WEFT_F32, &rng, &out), WEFT_OK);
    weft_node logits = weft_linear_apply(g, &out, res.last); /* many-to-one */
    m->loss = weft_loss_cross_entropy(g, logits, m->labels);
    m->acc = weft_accuracy(g, logits, m->labels);
    cr_assert_eq(weft_graph_status(g), WEFT_OK, "%s", weft_graph_error(g));
}

static void drop(model *m) {
    weft_rnn_free(m->rnn);
    weft_cell_free(m->cell);
    weft_graph_free(m->g);
}

static weft_trainer *trainer_for(model *m, weft_optim_kind kind, double lr, double clip) {
    weft_node carry_in[2] = {m->h0, m->c0}, carry_out[2] = {m->h_n, m->c_n};
    weft_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.loss = m->loss;
    tc.metrics = &m->acc;
    tc.num_metrics = 1;
    tc.train_flag = m->train;
    if (m->h0 != WEFT_NONE) {
        tc.carry_in = carry_in;
        tc.carry_out = carry_out;
        tc.num_carry = 2;
    }
    tc.optim = weft_optim_defaults(kind);
    tc.optim.lr = lr;
    tc.clip_norm = clip;
    tc.sched = weft_sched_step_lr(lr, 3, 0.7);
    tc.seed = 1234;
    weft_trainer *t;
    cr_assert_eq(weft_trainer_new(m->g, &tc, &t), WEFT_OK, "%s", weft_last_error());
    return t;
}

/* A batch drawn with the trainer's generator (so checkpoints restore it). */
static void batch_feeds(weft_trainer *t, const model *m, const dataset *d,
                        int32_t tok[B][T], int32_t lab[B], weft_feed f[2]) {
    for (int b = 0; b < B; b++) {
        int i = (int)weft_rng_below(weft_trainer_rng(t), N);
        memcpy(tok[b], d->tokens[i], sizeof tok[b]);
        lab[b] = d->labels[i];
    }
    f[0] = (weft_feed){m->tokens, tok, sizeof(int32_t) * B * T};
    f[1] = (weft_feed){m->labels, lab, sizeof(int32_t) * B};
}

static double train_steps(weft_trainer *t, const model *m, const dataset *d, int steps) {
    int32_t tok[B][T], lab[B];
    weft_feed f[2];
    weft_train_result r = {0};
    for (int s = 0; s < steps; s++) {
        batch_feeds(t, m, d, tok, lab, f);
        cr_assert_eq(weft_trainer_step(t, f, 2, &r), WEFT_OK, "%s", weft_last_error());
        if (weft_trainer_steps(t) % 4 == 0) weft_trainer_end_epoch(t);
    }
    return r.loss;
}

/* Mean loss and accuracy over the whole dataset, evaluation mode. */
static void evaluate(weft_trainer *t, const model *m, const dataset *d, double *loss,
                     double *acc) {
    *loss = *acc = 0;
    for (int i = 0; i < N; i += B) {
        weft_feed f[2] = {{m->tokens, d->tokens[i], sizeof(int32_t) * B * T},
                          {m->labels, &d->labels[i], sizeof(int32_t) * B}};
        weft_train_result r;
        cr_assert_eq(weft_trainer_eval(t, f, 2, &r), WEFT_OK, "%s", weft_last_error());
        *loss += r.loss * B / N;
        *acc += r.metrics[0] * B / N;
    }
}

static void params_snapshot(weft_graph *g, float *out, size_t cap, size_t *n) {
    weft_node ps[64];
    int np = weft_graph_params(g, ps, 64);
    *n = 0;
    for (int i = 0; i < np; i++) {
        size_t k = (size_t)weft_shape_numel(weft_node_shape(g, ps[i]));
        cr_assert_leq(*n + k, cap);
        memcpy(out + *n, weft_param_data(g, ps[i]), k * sizeof(float));
        *n += k;
    }
}

Test(train, classifier_learns, .timeout = 300) {
    static dataset d;
    make_data(&d, 7);
    model m;
    build(&m, 1, 0.0, 0, 42);
    weft_trainer *t = trainer_for(&m, WEFT_OPTIM_ADAM, 0.02, 1.0);
    double loss0, acc0, loss1, acc1;
    evaluate(t, &m, &d, &loss0, &acc0);
    train_steps(t, &m, &d, 240);
    evaluate(t, &m, &d, &loss1, &acc1);
    fprintf(stderr, "classifier: loss %.4f -> %.4f (chance %.4f), accuracy %.3f -> %.3f\n",
            loss0, loss1, log((double)C), acc0, acc1);
    cr_assert_gt(loss0, 0.8 * log((double)C), "untrained loss %g is not near chance", loss0);
    cr_assert_lt(loss1, 0.25 * log((double)C), "loss %g did not fall far below chance %g", loss1,
                 log((double)C));
    cr_assert_gt(acc1, 0.9, "accuracy %g", acc1);
    weft_trainer_free(t);
    drop(&m);
}

/* Resuming from a checkpoint gives bit-for-bit the parameters of an
 * uninterrupted run: optimizer state, schedule, batch order (the trainer's
 * generator), dropout masks (the executor's counter) and carried state. */
static void check_resume(weft_optim_kind kind, int stateful) {
    static dataset d;
    make_data(&d, 11);
    static float a[20000], b[20000];
    size_t na, nb;
    char path[4096];
    snprintf(path, sizeof path, "%s/train_ckpt_%d_%d_%d.safetensors", WEFT_BINARY_DIR,
             (int)getpid(), (int)kind, stateful);

    model m;
    build(&m, 2, 0.3, stateful, 5);
    weft_trainer *t = trainer_for(&m, kind, 0.01, 0.5);
    train_steps(t, &m, &d, 14);
    params_snapshot(m.g, a, 20000, &na);
    weft_rng rng_a = *weft_trainer_rng(t);
    double lr_a = weft_trainer_lr(t);
    weft_trainer_free(t);
    drop(&m);

    build(&m, 2, 0.3, stateful, 5);
    t = trainer_for(&m, kind, 0.01, 0.5);
    train_steps(t, &m, &d, 6);
    cr_assert_eq(weft_trainer_save(t, path), WEFT_OK, "%s", weft_last_error());
    weft_trainer_free(t);
    drop(&m);

    build(&m, 2, 0.3, stateful, 99); /* different init: all of it must come from the file */
    t = trainer_for(&m, kind, 0.01, 0.5);
    cr_assert_eq(weft_trainer_load(t, path), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_trainer_steps(t), 6);
    cr_assert_eq(weft_trainer_epoch(t), 1);
    train_steps(t, &m, &d, 8);
    params_snapshot(m.g, b, 20000, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(weft_trainer_rng(t)->counter, rng_a.counter);
    cr_assert_eq(weft_trainer_lr(t), lr_a);
    size_t differ = 0;
    for (size_t i = 0; i < na; i++) differ += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    cr_assert_eq(differ, 0, "%zu of %zu parameters differ after resume", differ, na);
    weft_trainer_free(t);
    drop(&m);
    unlink(path);
}

Test(train, resume_is_exact_adam) { check_resume(WEFT_OPTIM_ADAM, 0); }
Test(train, resume_is_exact_sgd_stateful) { check_resume(WEFT_OPTIM_SGD, 1); }

/* Without the checkpoint's dropout counter the run would differ: the
 * resume test above can fail. */
Test(train, dropout_depends_on_the_counter) {
    static dataset d;
    make_data(&d, 3);
    model m;
    build(&m, 2, 0.5, 0, 5);
    weft_trainer *t = trainer_for(&m, WEFT_OPTIM_SGD, 0.1, 0);
    int32_t tok[B][T], lab[B];
    weft_feed f[2];
    batch_feeds(t, &m, &d, tok, lab, f);
    weft_train_result r1, r2, e1, e2;
    cr_assert_eq(weft_trainer_eval(t, f, 2, &e1), WEFT_OK);
    cr_assert_eq(weft_trainer_eval(t, f, 2, &e2), WEFT_OK);
    cr_assert_eq(e1.loss, e2.loss, "evaluation must be deterministic (no dropout)");
    weft_optim_set_lr(weft_trainer_optim(t), 0); /* steps change nothing but the counter */
    cr_assert_eq(weft_trainer_step(t, f, 2, &r1), WEFT_OK);
    cr_assert_eq(weft_trainer_step(t, f, 2, &r2), WEFT_OK);
    cr_assert_neq(r1.loss, r2.loss, "dropout masks did not change between runs");
    cr_assert_neq(r1.loss, e1.loss, "dropout had no effect in training");
    weft_trainer_free(t);
    drop(&m);
}

Test(train, load_rejects_other_files) {
    model m;
    build(&m, 1, 0.0, 0, 1);
    weft_trainer *t = trainer_for(&m, WEFT_OPTIM_ADAM, 0.01, 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/train_ckpt_bad_%d.safetensors", WEFT_BINARY_DIR,
             (int)getpid());
    cr_assert_eq(weft_trainer_save(t, path), WEFT_OK, "%s", weft_last_error());
    weft_trainer_free(t);
    t = trainer_for(&m, WEFT_OPTIM_SGD, 0.01, 0);
    cr_assert_eq(weft_trainer_load(t, path), WEFT_ERR_FORMAT);
    cr_assert(strstr(weft_last_error(), "adam"), "%s", weft_last_error());
    weft_trainer_free(t);
    drop(&m);
    /* a model with another hidden size: the tensor and shape are named */
    build(&m, 2, 0.0, 0, 1);
    t = trainer_for(&m, WEFT_OPTIM_ADAM, 0.01, 0);
    cr_assert_neq(weft_trainer_load(t, path), WEFT_OK);
    cr_assert(strstr(weft_last_error(), "_l1"), "%s", weft_last_error());
    weft_trainer_free(t);
    drop(&m);
    unlink(path);
}

Test(train, sampling_follows_temperature) {
    weft_rng r = weft_rng_make(9);
    double logits[2] = {0, log(3.0)};
    weft_tensor row = {logits, WEFT_F64, {1, {2}}, {1}};
    int n = 20000, ones = 0, ones_cold = 0;
    for (int i = 0; i < n; i++) {
        ones += (int)weft_sample_logits(&row, 1.0, &r);
        ones_cold += (int)weft_sample_logits(&row, 0.5, &r); /* p ∝ 1 : 9 */
    }
    cr_assert(fabs((double)ones / n - 0.75) < 0.02, "p(1) = %g at T=1", (double)ones / n);
    cr_assert(fabs((double)ones_cold / n - 0.9) < 0.02, "p(1) = %g at T=0.5",
              (double)ones_cold / n);
    cr_assert_eq(weft_sample_logits(&row, 0, &r), 1, "temperature 0 is argmax");
}

/* One-to-many: a one-step graph whose state is fed back, generating tokens
 * one at a time; the same seed generates the same sequence. */
Test(train, generation_is_reproducible) {
    weft_graph *g = weft_graph_new();
    weft_rng init = weft_rng_make(4);
    weft_node tok = weft_input(g, "token", WEFT_I32, WEFT_SHAPE(1, 1)); /* [T=1, B=1] */
    weft_node h0 = weft_input(g, "h0", WEFT_F64, WEFT_SHAPE(1, 1, H));
    weft_embedding emb;
    cr_assert_eq(weft_embedding_new(g, "emb", V, E, -1, WEFT_F64, &init, &emb), WEFT_OK);
    weft_cell *cell = weft_cell_get("gru");
    weft_rnn_config cfg = weft_rnn_config_default(E, H);
    cfg.dtype = WEFT_F64;
    weft_rnn *rnn;
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &rnn), WEFT_OK);
    cr_assert_eq(weft_rnn_init(g, rnn, &init), WEFT_OK);
    weft_node st[1] = {h0};
    weft_rnn_inputs in = {weft_embedding_apply(g, &emb, tok), st, WEFT_NONE, WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, rnn, &in, &res), WEFT_OK, "%s", weft_last_error());
    weft_linear head;
    cr_assert_eq(weft_linear_new(g, "head", H, V, 1, WEFT_F64, &init, &head), WEFT_OK);
    weft_node logits = weft_linear_apply(g, &head, res.last); /* [1, V] */
    weft_node outs[2] = {logits, res.state_n[0]};
    weft_exec *e = weft_exec_new(g, outs, 2);
    cr_assert(e, "%s", weft_last_error());

    int64_t seq[2][12];
    for (int run = 0; run < 2; run++) {
        weft_rng r = weft_rng_make(77);
        double h[H] = {0};
        int32_t cur = 1;
        for (int k = 0; k < 12; k++) {
            cr_assert_eq(weft_exec_feed(e, tok, &cur, sizeof cur), WEFT_OK);
            cr_assert_eq(weft_exec_feed(e, h0, h, sizeof h), WEFT_OK);
            cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
            weft_tensor lt;
            cr_assert_eq(weft_exec_value(e, logits, &lt), WEFT_OK);
            seq[run][k] = weft_sample_logits(&lt, 0.8, &r);
            cr_assert(seq[run][k] >= 0 && seq[run][k] < V);
            cur = (int32_t)seq[run][k];
            cr_assert_eq(weft_exec_read(e, res.state_n[0], h, sizeof h), WEFT_OK);
        }
    }
    cr_assert_arr_eq(seq[0], seq[1], sizeof seq[0]);
    weft_exec_free(e);
    weft_rnn_free(rnn);
    weft_cell_free(cell);
    weft_graph_free(g);
}
