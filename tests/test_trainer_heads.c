/* The trainer's extra heads (one model applied to inputs of two shapes, as
 * length bucketing does) share parameters and optimizer; checkpoint
 * metadata set by a tool round-trips and cannot overwrite the trainer's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "weft/safetensors.h"
#include "weft/train.h"

typedef struct two_heads {
    weft_graph *g;
    weft_node w, x1, x2, y1, y2, loss1, loss2;
} two_heads;

/* loss_k = mse(x_k @ w, y_k) with x1 [4, 3], x2 [2, 3] and one w [3, 1]. */
static void build(two_heads *m) {
    weft_graph *g = m->g = weft_graph_new();
    m->w = weft_param(g, "w", WEFT_F64, WEFT_SHAPE(3, 1));
    double w0[3] = {0.1, -0.2, 0.3};
    cr_assert_eq(weft_param_set(g, m->w, w0, sizeof w0), WEFT_OK);
    m->x1 = weft_input(g, "x1", WEFT_F64, WEFT_SHAPE(4, 3));
    m->y1 = weft_input(g, "y1", WEFT_F64, WEFT_SHAPE(4, 1));
    m->x2 = weft_input(g, "x2", WEFT_F64, WEFT_SHAPE(2, 3));
    m->y2 = weft_input(g, "y2", WEFT_F64, WEFT_SHAPE(2, 1));
    m->loss1 = weft_loss_mse(g, weft_matmul(g, m->x1, m->w, 0, 0), m->y1);
    m->loss2 = weft_loss_mse(g, weft_matmul(g, m->x2, m->w, 0, 0), m->y2);
    cr_assert_eq(weft_graph_status(g), WEFT_OK, "%s", weft_graph_error(g));
}

static const double X1[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}, Y1[4] = {1, 2, 3, 6};
static const double X2[6] = {1, 2, 0, 0, 1, 2}, Y2[2] = {5, 8};

static weft_trainer *trainer(two_heads *m) {
    weft_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.loss = m->loss1;
    tc.train_flag = WEFT_NONE;
    tc.optim = weft_optim_defaults(WEFT_OPTIM_SGD);
    tc.optim.lr = 0.05;
    weft_trainer *t;
    cr_assert_eq(weft_trainer_new(m->g, &tc, &t), WEFT_OK, "%s", weft_last_error());
    int id = -1;
    cr_assert_eq(weft_trainer_add_head(t, m->loss2, NULL, 0, &id), WEFT_OK, "%s",
                 weft_last_error());
    cr_assert_eq(id, 1);
    cr_assert_eq(weft_trainer_num_heads(t), 2);
    return t;
}

Test(trainer_heads, share_parameters_and_optimizer) {
    two_heads m;
    build(&m);
    weft_trainer *t = trainer(&m);
    weft_feed f1[2] = {{m.x1, X1, sizeof X1}, {m.y1, Y1, sizeof Y1}};
    weft_feed f2[2] = {{m.x2, X2, sizeof X2}, {m.y2, Y2, sizeof Y2}};
    weft_train_result r1a, r2a, r, r1b, r2b;
    cr_assert_eq(weft_trainer_eval_head(t, 0, f1, 2, &r1a), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_trainer_eval_head(t, 1, f2, 2, &r2a), WEFT_OK, "%s", weft_last_error());
    /* w = (1, 2, 3) fits both; alternate heads as bucketed batches do */
    for (int i = 0; i < 200; i++)
        cr_assert_eq(weft_trainer_step_head(t, i % 2, i % 2 ? f2 : f1, 2, &r), WEFT_OK, "%s",
                     weft_last_error());
    cr_assert_eq(weft_trainer_steps(t), 200);
    cr_assert_eq(weft_optim_steps(weft_trainer_optim(t)), 200);
    cr_assert_eq(weft_trainer_eval(t, f1, 2, &r1b), WEFT_OK);
    cr_assert_eq(weft_trainer_eval_head(t, 1, f2, 2, &r2b), WEFT_OK);
    cr_assert_lt(r1b.loss, 1e-3 * r1a.loss, "head 0: %g -> %g", r1a.loss, r1b.loss);
    cr_assert_lt(r2b.loss, 1e-3 * r2a.loss, "head 1: %g -> %g", r2a.loss, r2b.loss);
    const double *w = weft_param_data(m.g, m.w);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(w[i], i + 1.0, 1e-2, "w[%d] = %g", i, w[i]);
    /* a head that does not exist */
    cr_assert_eq(weft_trainer_step_head(t, 2, f1, 2, &r), WEFT_ERR_ARG);
    cr_assert_eq(weft_trainer_eval_head(t, -1, f1, 2, &r), WEFT_ERR_ARG);
    cr_assert(strstr(weft_last_error(), "no head -1"), "%s", weft_last_error());
    weft_trainer_free(t);
    weft_graph_free(m.g);
}

Test(trainer_heads, checkpoint_metadata) {
    two_heads m;
    build(&m);
    weft_trainer *t = trainer(&m);
    cr_assert_eq(weft_trainer_set_meta(t, "step", "7"), WEFT_ERR_ARG);
    cr_assert(strstr(weft_last_error(), "'step'"), "%s", weft_last_error());
    cr_assert_eq(weft_trainer_set_meta(t, "vocab", "old"), WEFT_OK);
    cr_assert_eq(weft_trainer_set_meta(t, "vocab", "10,32,97"), WEFT_OK);
    cr_assert_eq(weft_trainer_set_meta(t, "task", "charlm"), WEFT_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/heads_%d.safetensors", WEFT_BINARY_DIR, (int)getpid());
    cr_assert_eq(weft_trainer_save(t, path), WEFT_OK, "%s", weft_last_error());
    weft_st_file *f;
    cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s", weft_last_error());
    cr_assert_str_eq(weft_st_metadata(f, "vocab"), "10,32,97");
    cr_assert_str_eq(weft_st_metadata(f, "task"), "charlm");
    cr_assert_not_null(weft_st_metadata(f, "exec_counter.1"));
    weft_st_free(f);
    /* both heads' counters come back */
    cr_assert_eq(weft_trainer_load(t, path), WEFT_OK, "%s", weft_last_error());
    unlink(path);
    weft_trainer_free(t);
    weft_graph_free(m.g);
}
