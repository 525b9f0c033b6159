/* The trainer's gradient hook (what data-parallel training plugs into) and
 * the distributed layer as a single process: the hook sees every gradient
 * once per step, before clipping and the optimizer; what it writes is what
 * the optimizer applies; its error fails the step with the parameters
 * untouched; the gradient averager with one rank changes nothing.  The
 * multi-rank behaviour is tested under mpirun by tests/cli_mpi.sh. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tinymodel.h"
#include "weft/dist.h"

static const tm_config cfg = {"gru", 4, 8, 3, 6, 3, 1, 0.0, 7, WEFT_OPTIM_SGD};

typedef struct probe {
    int calls;
    int64_t steps[8];
    float scale;
    int fail;
    size_t bytes;       /* sum of gs->bytes */
} probe;

static weft_status probe_hook(void *ctx, const weft_grad_set *gs) {
    probe *p = ctx;
    if (p->calls < 8) p->steps[p->calls] = gs->step;
    p->calls++;
    p->bytes = 0;
    for (int i = 0; i < gs->n; i++) {
        cr_assert(gs->grads[i] && gs->params[i]);
        cr_assert_eq(gs->dtypes[i], WEFT_F32);
        p->bytes += gs->bytes[i];
        float *g = gs->grads[i];
        for (size_t k = 0; k < gs->bytes[i] / sizeof *g; k++) g[k] *= p->scale;
    }
    return p->fail ? weft_error(WEFT_ERR_IO, "probe: told to fail") : WEFT_OK;
}

static float *params_of(const tm_model *m) {
    float *p = malloc(sizeof *p * tm_param_count(m));
    cr_assert(p);
    tm_params(m, p);
    return p;
}

Test(grad_hook, sees_every_gradient_once_per_step) {
    tm_model m;
    cr_assert_eq(tm_build(&m, &cfg), WEFT_OK, "%s", weft_last_error());
    probe p = {.scale = 1};
    cr_assert_eq(weft_trainer_set_grad_hook(m.trainer, probe_hook, &p), WEFT_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(tm_step(&m, NULL), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(p.calls, 3);
    for (int i = 0; i < 3; i++) cr_assert_eq(p.steps[i], i);
    cr_assert_eq(p.bytes, tm_param_count(&m) * sizeof(float));
    /* removed: no more calls */
    cr_assert_eq(weft_trainer_set_grad_hook(m.trainer, NULL, NULL), WEFT_OK);
    cr_assert_eq(tm_step(&m, NULL), WEFT_OK);
    cr_assert_eq(p.calls, 3);
    tm_free(&m);
}

/* A hook that writes 1e-3 into every gradient: SGD (lr 0.01, no momentum)
 * moves every parameter by exactly lr * 1e-3, and the reported norm (what
 * clipping saw) is that of the written gradients, below the clip of 1 */
static weft_status constant_hook(void *ctx, const weft_grad_set *gs) {
    (void)ctx;
    for (int i = 0; i < gs->n; i++) {
        float *g = gs->grads[i];
        for (size_t k = 0; k < gs->bytes[i] / sizeof *g; k++) g[k] = 1e-3f;
    }
    return WEFT_OK;
}

Test(grad_hook, the_optimizer_applies_what_the_hook_wrote) {
    tm_model m;
    cr_assert_eq(tm_build(&m, &cfg), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_trainer_set_grad_hook(m.trainer, constant_hook, NULL), WEFT_OK);
    size_t n = tm_param_count(&m);
    float *before = params_of(&m);
    weft_train_result r;
    cr_assert_eq(tm_step(&m, &r), WEFT_OK, "%s", weft_last_error());
    float *after = params_of(&m);
    double lr = weft_optim_lr(weft_trainer_optim(m.trainer));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(after[i], (float)(before[i] - lr * (double)1e-3f), "parameter %zu", i);
    cr_assert_float_eq(r.grad_norm, sqrt((double)n) * 1e-3, 1e-9);
    free(before), free(after);
    tm_free(&m);
}

Test(grad_hook, an_error_fails_the_step_and_leaves_the_parameters) {
    tm_model m;
    cr_assert_eq(tm_build(&m, &cfg), WEFT_OK, "%s", weft_last_error());
    probe p = {.scale = 1, .fail = 1};
    cr_assert_eq(weft_trainer_set_grad_hook(m.trainer, probe_hook, &p), WEFT_OK);
    float *before = params_of(&m);
    cr_assert_eq(tm_step(&m, NULL), WEFT_ERR_IO);
    cr_assert(strstr(weft_last_error(), "probe: told to fail"), "%s", weft_last_error());
    float *after = params_of(&m);
    cr_assert_eq(memcmp(before, after, sizeof *before * tm_param_count(&m)), 0);
    cr_assert_eq(weft_trainer_steps(m.trainer), 0);
    free(before), free(after);
    tm_free(&m);
}

/* The readiness hook: during the run, once per parameter per step, with
 * the gradient already in gs->grads[i] and final (the grad hook after the
 * run sees the same bytes), and the steps' parameters the same, bit for
 * bit, as without it. */
typedef struct ready_probe {
    int64_t step;
    int calls, hook_calls;
    int seen[64];
    double sum[64];     /* of gs->grads[i] when reported */
} ready_probe;

static double sum_of(const weft_grad_set *gs, int i) {
    const float *g = gs->grads[i];
    double s = 0;
    for (size_t k = 0; k < gs->bytes[i] / sizeof *g; k++) s += g[k] * (double)(k + 1);
    return s;
}

static weft_status ready_probe_ready(void *ctx, const weft_grad_set *gs, int i) {
    ready_probe *p = ctx;
    cr_assert(i >= 0 && i < gs->n && gs->n <= 64);
    if (p->calls == 0 || gs->step != p->step) memset(p->seen, 0, sizeof p->seen);
    p->step = gs->step;
    p->calls++;
    p->seen[i]++;
    p->sum[i] = sum_of(gs, i);
    return WEFT_OK;
}

static weft_status ready_probe_hook(void *ctx, const weft_grad_set *gs) {
    ready_probe *p = ctx;
    p->hook_calls++;
    cr_assert_eq(p->step, gs->step);
    for (int i = 0; i < gs->n; i++) {
        cr_assert_eq(p->seen[i], 1, "step %d: gradient %d reported %d times", (int)gs->step, i,
                     p->seen[i]);
        cr_assert_eq(p->sum[i], sum_of(gs, i), "gradient %d changed after it was reported", i);
    }
    return WEFT_OK;
}

Test(grad_hook, readiness_reports_every_gradient_once_during_the_run) {
    tm_model a, b;
    cr_assert_eq(tm_build(&a, &cfg), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(tm_build(&b, &cfg), WEFT_OK, "%s", weft_last_error());
    ready_probe p = {0};
    cr_assert_eq(weft_trainer_set_grad_hook(a.trainer, ready_probe_hook, &p), WEFT_OK);
    cr_assert_eq(weft_trainer_set_grad_ready_hook(a.trainer, ready_probe_ready, &p), WEFT_OK);
    int np = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tm_step(&a, NULL), WEFT_OK, "%s", weft_last_error());
        cr_assert_eq(tm_step(&b, NULL), WEFT_OK, "%s", weft_last_error());
        if (!i) np = p.calls;
    }
    cr_assert_gt(np, 1);
    cr_assert_eq(p.calls, 3 * np);
    cr_assert_eq(p.hook_calls, 3);
    float *pa = params_of(&a), *pb = params_of(&b);
    cr_assert_eq(memcmp(pa, pb, sizeof *pa * tm_param_count(&a)), 0);
    free(pa), free(pb);
    /* removed: no more calls */
    cr_assert_eq(weft_trainer_set_grad_ready_hook(a.trainer, NULL, NULL), WEFT_OK);
    cr_assert_eq(weft_trainer_set_grad_hook(a.trainer, NULL, NULL), WEFT_OK);
    cr_assert_eq(tm_step(&a, NULL), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(p.calls, 3 * np);
    tm_free(&a), tm_free(&b);
}

/* Not started by mpirun: one rank, and the averager is the identity (the
 * same parameters, bit for bit, as no hook at all, with Adam) */
Test(dist, one_rank_changes_nothing) {
    cr_assert_eq(weft_dist_rank(), 0);
    cr_assert_eq(weft_dist_size(), 1);
    cr_assert_eq(!strcmp(weft_dist_library(), "MPI not compiled in"), !weft_dist_compiled());
    double v[2] = {1.5, -2};
    cr_assert_eq(weft_dist_sum(v, 2), WEFT_OK);
    cr_assert(v[0] == 1.5 && v[1] == -2);
    cr_assert_eq(weft_dist_check_same("abc", 3, "a test string"), WEFT_OK);

    tm_config c = cfg;
    c.optim = WEFT_OPTIM_ADAM;
    tm_model a, b;
    cr_assert_eq(tm_build(&a, &c), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(tm_build(&b, &c), WEFT_OK, "%s", weft_last_error());
    weft_dist_avg *avg;
    cr_assert_eq(weft_dist_avg_new(64, 1, &avg), WEFT_OK);
    weft_dist_avg_set_weight(avg, 3); /* one rank: w g / w = g, not even computed */
    cr_assert_eq(weft_trainer_set_grad_hook(a.trainer, weft_dist_avg_hook, avg), WEFT_OK);
    cr_assert_eq(weft_trainer_set_grad_ready_hook(a.trainer, weft_dist_avg_ready, avg), WEFT_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tm_step(&a, NULL), WEFT_OK);
        cr_assert_eq(tm_step(&b, NULL), WEFT_OK);
    }
    float *pa = params_of(&a), *pb = params_of(&b);
    cr_assert_eq(memcmp(pa, pb, sizeof *pa * tm_param_count(&a)), 0);
    weft_dist_stats st;
    weft_dist_avg_stats(avg, &st);
    cr_assert_eq(st.calls, 3);
    cr_assert_eq(st.buckets, 0);
    free(pa), free(pb);
    weft_dist_avg_free(avg);
    tm_free(&a), tm_free(&b);
}

Test(dist, init_without_mpi_says_so) {
    if (weft_dist_compiled()) return; /* MPI_Init in a test process: cli_mpi.sh covers it */
    cr_assert_eq(weft_dist_init(), WEFT_ERR_UNSUPPORTED);
    cr_assert(strstr(weft_last_error(), "MPI not compiled in"), "%s", weft_last_error());
}
