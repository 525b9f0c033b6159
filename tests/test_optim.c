/* Optimizers, gradient clipping and learning-rate schedules against the
 * PyTorch fixtures in tests/fixtures/optim (see its README). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/fixture.h"
#include "weft/optim.h"

#define OPTIM_DIR WEFT_SOURCE_DIR "/tests/fixtures/optim"


static double meta_num(const weft_st_file *f, const char *key) {
    return strtod(fx_meta(f, key), NULL);
}

static int meta_bool(const weft_st_file *f, const char *key) {
    return !strcmp(fx_meta(f, key), "true");
}

static void to_dtype(const double *src, void *dst, weft_dtype t, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (t == WEFT_F64)
            ((double *)dst)[i] = src[i];
        else
            ((float *)dst)[i] = (float)src[i];
    }
}

static void from_dtype(const void *src, double *dst, weft_dtype t, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = t == WEFT_F64 ? ((const double *)src)[i] : ((const float *)src)[i];
}

static weft_optim_config config_from(const weft_st_file *f) {
    int kind = weft_optim_kind_parse(fx_meta(f, "optimizer"));
    cr_assert(kind >= 0, "unknown optimizer %s", fx_meta(f, "optimizer"));
    weft_optim_config c = weft_optim_defaults((weft_optim_kind)kind);
    c.lr = meta_num(f, "lr");
    c.weight_decay = meta_num(f, "weight_decay");
    if (kind == WEFT_OPTIM_SGD) {
        c.momentum = meta_num(f, "momentum");
        c.dampening = meta_num(f, "dampening");
        c.nesterov = meta_bool(f, "nesterov");
    } else if (kind == WEFT_OPTIM_RMSPROP) {
        c.alpha = meta_num(f, "alpha");
        c.eps = meta_num(f, "eps");
        c.momentum = meta_num(f, "momentum");
        c.centered = meta_bool(f, "centered");
    } else {
        cr_assert(sscanf(fx_meta(f, "betas"), "%lf,%lf", &c.beta1, &c.beta2) == 2);
        c.eps = meta_num(f, "eps");
        cr_assert(!meta_bool(f, "amsgrad"), "amsgrad is not implemented");
    }
    return c;
}

static int check_optimizer(const char *name, const weft_st_file *f) {
    weft_optim_config c = config_from(f);
    weft_dtype t = strcmp(fx_meta(f, "dtype"), "f32") ? WEFT_F64 : WEFT_F32;
    int steps = (int)meta_num(f, "steps");
    weft_shape s;
    double *p0 = fx_read(f, "param0", &s);
    cr_assert(p0);
    int64_t n = weft_shape_numel(s);
    double param[64], grad[64], got[64];
    cr_assert(n <= 64);
    to_dtype(p0, param, t, n);
    weft_optim *o;
    cr_assert_eq(weft_optim_new(&c, &o), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_optim_add(o, "p", t, param, n), WEFT_OK);
    int ok = 1;
    for (int k = 0; k < steps; k++) {
        char key[32], what[128];
        snprintf(key, sizeof key, "grad.%d", k);
        double *gk = fx_read(f, key, NULL);
        cr_assert(gk, "%s: %s missing", name, key);
        to_dtype(gk, grad, t, n);
        void *grads[1] = {grad};
        cr_assert_eq(weft_optim_step(o, grads), WEFT_OK);
        snprintf(key, sizeof key, "param.%d", k + 1);
        double *want = fx_read(f, key, NULL);
        cr_assert(want, "%s: %s missing", name, key);
        from_dtype(param, got, t, n);
        snprintf(what, sizeof what, "%s %s", name, key);
        /* f64: the update formulas are PyTorch's term by term */
        ok &= t == WEFT_F64 ? (fx_max_abs_diff(got, want, n) <= 1e-14 ||
                               fx_close(what, got, want, n, 1))
                            : fx_close(what, got, want, n, 0);
        free(gk);
        free(want);
    }
    cr_assert_eq(weft_optim_steps(o), steps);
    weft_optim_free(o);
    free(p0);
    return ok;
}

static int check_clip(const char *name, const weft_st_file *f) {
    int count = (int)meta_num(f, "count");
    double max_norm = meta_num(f, "max_norm");
    weft_optim_config c = weft_optim_defaults(WEFT_OPTIM_SGD);
    weft_optim *o;
    cr_assert_eq(weft_optim_new(&c, &o), WEFT_OK);
    double *in[8], *want[8];
    int64_t n[8];
    cr_assert(count <= 8);
    for (int i = 0; i < count; i++) {
        char key[32];
        weft_shape s;
        snprintf(key, sizeof key, "grad_in.%d", i);
        in[i] = fx_read(f, key, &s);
        snprintf(key, sizeof key, "grad_out.%d", i);
        want[i] = fx_read(f, key, NULL);
        cr_assert(in[i] && want[i]);
        n[i] = weft_shape_numel(s);
        /* the parameter data is not touched by clipping: register the grads */
        cr_assert_eq(weft_optim_add(o, key, WEFT_F64, in[i], n[i]), WEFT_OK);
    }
    double total = -1;
    cr_assert_eq(weft_clip_grad_norm(o, (void *const *)in, max_norm, &total), WEFT_OK);
    double *tn = fx_read(f, "total_norm", NULL);
    cr_assert(tn);
    int ok = fabs(total - tn[0]) <= 1e-12 * tn[0];
    if (!ok) fprintf(stderr, "%s: total norm %.17g, want %.17g\n", name, total, tn[0]);
    for (int i = 0; i < count; i++) {
        ok &= fx_close(name, in[i], want[i], n[i], 1);
        free(in[i]);
        free(want[i]);
    }
    free(tn);
    weft_optim_free(o);
    return ok;
}

static int check_schedule(const char *name, const weft_st_file *f) {
    double lr = meta_num(f, "lr");
    int epochs = (int)meta_num(f, "epochs");
    weft_sched s = !strcmp(fx_meta(f, "schedule"), "step")
                       ? weft_sched_step_lr(lr, (int64_t)meta_num(f, "step_size"),
                                            meta_num(f, "gamma"))
                       : weft_sched_cosine(lr, (int64_t)meta_num(f, "T_max"),
                                           meta_num(f, "eta_min"));
    double *want = fx_read(f, "lr", NULL);
    cr_assert(want);
    int ok = 1;
    for (int e = 0; e < epochs; e++) {
        if (fabs(s.lr - want[e]) > 1e-12) {
            fprintf(stderr, "%s: epoch %d lr %.17g, want %.17g\n", name, e, s.lr, want[e]);
            ok = 0;
        }
        weft_sched_advance(&s);
    }
    free(want);
    return ok;
}

Test(optim, pytorch_fixtures) {
    char **cases = fx_cases(OPTIM_DIR);
    cr_assert(cases, "cannot read " OPTIM_DIR "/cases.txt");
    int n = 0, failed = 0, kinds[3] = {0, 0, 0};
    for (char **c = cases; *c; c++, n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.safetensors", OPTIM_DIR, *c);
        weft_st_file *f;
        cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s", weft_last_error());
        const char *kind = fx_meta(f, "kind");
        int ok;
        if (!strcmp(kind, "optimizer"))
            ok = check_optimizer(*c, f), kinds[0]++;
        else if (!strcmp(kind, "clip_grad_norm"))
            ok = check_clip(*c, f), kinds[1]++;
        else
            ok = check_schedule(*c, f), kinds[2]++;
        if (!ok) {
            fprintf(stderr, "FAIL %s\n", *c);
            failed++;
        }
        weft_st_free(f);
    }
    fx_free_cases(cases);
    cr_expect(kinds[0] >= 4 && kinds[1] >= 1 && kinds[2] >= 2,
              "fixtures missing: %d optimizer, %d clip, %d schedule cases", kinds[0],
              kinds[1], kinds[2]);
    cr_assert_eq(failed, 0, "%d of %d optimizer fixtures differ from PyTorch", failed, n);
}

Test(optim, step_lr_is_exact) {
    /* StepLR multiplies in place: 0.1 * 0.5 * 0.5 rather than 0.1 * 0.25 */
    weft_sched s = weft_sched_step_lr(0.1, 2, 0.5);
    double want[] = {0.1, 0.1, 0.05, 0.05, 0.025};
    for (int e = 0; e < 5; e++, weft_sched_advance(&s)) cr_assert_eq(s.lr, want[e]);
}

Test(optim, rejects_bad_config) {
    weft_optim *o = NULL;
    weft_optim_config c = weft_optim_defaults(WEFT_OPTIM_SGD);
    c.nesterov = 1; /* without momentum */
    cr_assert_eq(weft_optim_new(&c, &o), WEFT_ERR_ARG);
    cr_assert_null(o);
    cr_assert(strstr(weft_last_error(), "nesterov"));
    c = weft_optim_defaults(WEFT_OPTIM_ADAM);
    c.lr = -1;
    cr_assert_eq(weft_optim_new(&c, &o), WEFT_ERR_ARG);
    c = weft_optim_defaults(WEFT_OPTIM_ADAM);
    cr_assert_eq(weft_optim_new(&c, &o), WEFT_OK);
    double x = 0;
    cr_assert_eq(weft_optim_add(o, "i", WEFT_I32, &x, 1), WEFT_ERR_DTYPE);
    weft_optim_free(o);
}

Test(optim, clip_reports_nonfinite) {
    weft_optim_config c = weft_optim_defaults(WEFT_OPTIM_SGD);
    weft_optim *o;
    cr_assert_eq(weft_optim_new(&c, &o), WEFT_OK);
    double p[2] = {0, 0}, g[2] = {NAN, 1};
    cr_assert_eq(weft_optim_add(o, "p", WEFT_F64, p, 2), WEFT_OK);
    void *grads[1] = {g};
    double total;
    cr_assert_eq(weft_clip_grad_norm(o, grads, 1.0, &total), WEFT_ERR_NUMERIC);
    weft_optim_free(o);
}
