/* weft — optimizers, gradient clipping, learning-rate schedules.
 *
 * Formulas follow PyTorch 1.13's single-tensor (CPU) implementations term by
 * term, so a few steps on the same gradients give the same parameters.  The
 * arithmetic is in double whatever the parameter dtype: an f32 parameter is
 * read, updated in double and rounded once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "weft/optim.h"

#define MAX_SLOTS 3

/* The state slots of each kind, in a fixed order (checkpoint names). */
static const struct {
    const char *name;
    int nslots;
    const char *slots[MAX_SLOTS];
} kinds[WEFT_OPTIM_KIND_COUNT] = {
    [WEFT_OPTIM_SGD] = {"sgd", 1, {"momentum_buffer"}},
    [WEFT_OPTIM_ADAM] = {"adam", 2, {"exp_avg", "exp_avg_sq"}},
    [WEFT_OPTIM_ADAMW] = {"adamw", 2, {"exp_avg", "exp_avg_sq"}},
    [WEFT_OPTIM_RMSPROP] = {"rmsprop", 3, {"square_avg", "momentum_buffer", "grad_avg"}},
};

typedef struct optim_param {
    char *name;
    weft_dtype dtype;
    void *data;
    int64_t n;
    double *slot[MAX_SLOTS];
} optim_param;

struct weft_optim {
    weft_optim_config cfg;
    int64_t steps;
    int count, cap;
    optim_param *p;
};

weft_optim_config weft_optim_defaults(weft_optim_kind kind) {
    weft_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.alpha = 0.99;
    switch (kind) {
    case WEFT_OPTIM_SGD: c.lr = 0.01; break;
    case WEFT_OPTIM_ADAM: c.lr = 1e-3; break;
    case WEFT_OPTIM_ADAMW: c.lr = 1e-3; c.weight_decay = 1e-2; break;
    case WEFT_OPTIM_RMSPROP: c.lr = 1e-2; break;
    default: break;
    }
    return c;
}

const char *weft_optim_kind_name(weft_optim_kind kind) {
    return kind >= 0 && kind < WEFT_OPTIM_KIND_COUNT ? kinds[kind].name : "?";
}

int weft_optim_kind_parse(const char *name) {
    for (int k = 0; k < WEFT_OPTIM_KIND_COUNT; k++)
        if (name && !strcmp(name, kinds[k].name)) return k;
    return -1;
}

weft_status weft_optim_new(const weft_optim_config *cfg, weft_optim **out) {
    *out = NULL;
    if (!cfg || cfg->kind < 0 || cfg->kind >= WEFT_OPTIM_KIND_COUNT)
        return weft_error(WEFT_ERR_ARG, "optimizer: unknown kind");
    const char *kn = kinds[cfg->kind].name;
    if (!(cfg->lr >= 0) || !(cfg->weight_decay >= 0) || !(cfg->momentum >= 0) ||
        !(cfg->eps >= 0))
        return weft_error(WEFT_ERR_ARG, "optimizer %s: lr, weight_decay, momentum and eps "
                          "must be >= 0", kn);
    if (cfg->kind == WEFT_OPTIM_SGD && cfg->nesterov &&
        (cfg->momentum <= 0 || cfg->dampening != 0))
        return weft_error(WEFT_ERR_ARG, "optimizer sgd: nesterov needs momentum > 0 and "
                          "dampening 0");
    if ((cfg->kind == WEFT_OPTIM_ADAM || cfg->kind == WEFT_OPTIM_ADAMW) &&
        !(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1))
        return weft_error(WEFT_ERR_ARG, "optimizer %s: betas must be in [0, 1)", kn);
    if (cfg->kind == WEFT_OPTIM_RMSPROP && !(cfg->alpha >= 0))
        return weft_error(WEFT_ERR_ARG, "optimizer rmsprop: alpha must be >= 0");
    weft_optim *o = calloc(1, sizeof *o);
    if (!o) return weft_error(WEFT_ERR_NOMEM, "optimizer: out of memory");
    o->cfg = *cfg;
    *out = o;
    return WEFT_OK;
}

void weft_optim_free(weft_optim *o) {
    if (!o) return;
    for (int i = 0; i < o->count; i++) {
        free(o->p[i].name);
        for (int s = 0; s < MAX_SLOTS; s++) free(o->p[i].slot[s]);
    }
    free(o->p);
    free(o);
}

const weft_optim_config *weft_optim_config_of(const weft_optim *o) { return &o->cfg; }

weft_status weft_optim_add(weft_optim *o, const char *name, weft_dtype t, void *data,
                           int64_t n) {
    if (t != WEFT_F32 && t != WEFT_F64)
        return weft_error(WEFT_ERR_DTYPE, "optimizer: parameter '%s' must be f32 or f64",
                          name ? name : "?");
    if (!data || n < 0)
        return weft_error(WEFT_ERR_ARG, "optimizer: parameter '%s' has no data",
                          name ? name : "?");
    if (o->count == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        optim_param *p = realloc(o->p, sizeof *p * (size_t)cap);
        if (!p) return weft_error(WEFT_ERR_NOMEM, "optimizer: out of memory");
        o->p = p;
        o->cap = cap;
    }
    optim_param *p = &o->p[o->count];
    memset(p, 0, sizeof *p);
    p->name = strdup(name ? name : "");
    p->dtype = t;
    p->data = data;
    p->n = n;
    int ok = p->name != NULL;
    for (int s = 0; ok && s < kinds[o->cfg.kind].nslots; s++)
        ok = (p->slot[s] = calloc((size_t)(n ? n : 1), sizeof(double))) != NULL;
    if (!ok) {
        free(p->name);
        for (int s = 0; s < MAX_SLOTS; s++) free(p->slot[s]);
        return weft_error(WEFT_ERR_NOMEM, "optimizer: out of memory");
    }
    o->count++;
    return WEFT_OK;
}

int weft_optim_count(const weft_optim *o) { return o->count; }

static double load(const void *a, weft_dtype t, int64_t i) {
    return t == WEFT_F64 ? ((const double *)a)[i] : (double)((const float *)a)[i];
}

static void put(void *a, weft_dtype t, int64_t i, double v) {
    if (t == WEFT_F64)
        ((double *)a)[i] = v;
    else
        ((float *)a)[i] = (float)v;
}

/* What an update needs that depends only on the step (Adam's bias
 * corrections): computed once per step, not once per element. */
typedef struct step_consts {
    double bc1, sqrt_bc2;
} step_consts;

/* The update of one element: p and g in, new p out; st = its slots. */
static double update(const weft_optim_config *c, int64_t step, const step_consts *sc, double p, double g,
                     double *st0, double *st1, double *st2) {
    switch (c->kind) {
    case WEFT_OPTIM_SGD: {
        if (c->weight_decay != 0) g = g + c->weight_decay * p;
        if (c->momentum != 0) {
            double *b = st0;
            *b = step == 1 ? g : c->momentum * *b + (1 - c->dampening) * g;
            g = c->nesterov ? g + c->momentum * *b : *b;
        }
        return p - c->lr * g;
    }
    case WEFT_OPTIM_ADAM:
    case WEFT_OPTIM_ADAMW: {
        if (c->kind == WEFT_OPTIM_ADAMW)
            p = p * (1 - c->lr * c->weight_decay);
        else if (c->weight_decay != 0)
            g = g + c->weight_decay * p;
        double *m = st0, *v = st1;
        *m = c->beta1 * *m + (1 - c->beta1) * g;
        *v = c->beta2 * *v + (1 - c->beta2) * g * g;
        double denom = sqrt(*v) / sc->sqrt_bc2 + c->eps;
        return p - (c->lr / sc->bc1) * (*m / denom);
    }
    case WEFT_OPTIM_RMSPROP: {
        if (c->weight_decay != 0) g = g + c->weight_decay * p;
        double *s = st0, *b = st1, *a = st2;
        *s = c->alpha * *s + (1 - c->alpha) * g * g;
        double avg;
        if (c->centered) {
            *a = c->alpha * *a + (1 - c->alpha) * g;
            avg = sqrt(*s - *a * *a) + c->eps;
        } else {
            avg = sqrt(*s) + c->eps;
        }
        if (c->momentum > 0) {
            *b = c->momentum * *b + g / avg;
            return p - c->lr * *b;
        }
        return p - c->lr * (g / avg);
    }
    default:
        return p;
    }
}

weft_status weft_optim_step(weft_optim *o, void *const *grads) {
    if (!grads) return weft_error(WEFT_ERR_ARG, "optimizer: no gradients");
    for (int i = 0; i < o->count; i++)
        if (!grads[i])
            return weft_error(WEFT_ERR_ARG, "optimizer: no gradient for '%s'", o->p[i].name);
    int64_t step = ++o->steps;
    const step_consts sc = {1 - pow(o->cfg.beta1, (double)step), sqrt(1 - pow(o->cfg.beta2, (double)step))};
    for (int i = 0; i < o->count; i++) {
        optim_param *p = &o->p[i];
        /* Elements are independent: the threads share them, each owning
         * what it writes, so the result does not depend on their number. */
        #pragma omp parallel for schedule(static) if (p->n >= 65536)
        for (int64_t k = 0; k < p->n; k++) {
            double dummy = 0; /* slots a kind does not use */
            double *s0 = p->slot[0] ? &p->slot[0][k] : &dummy;
            double *s1 = p->slot[1] ? &p->slot[1][k] : &dummy;
            double *s2 = p->slot[2] ? &p->slot[2][k] : &dummy;
            double v = update(&o->cfg, step, &sc, load(p->data, p->dtype, k),
                              load(grads[i], p->dtype, k), s0, s1, s2);
            put(p->data, p->dtype, k, v);
        }
    }
    return WEFT_OK;
}

double weft_optim_lr(const weft_optim *o) { return o->cfg.lr; }
void weft_optim_set_lr(weft_optim *o, double lr) { o->cfg.lr = lr; }
int64_t weft_optim_steps(const weft_optim *o) { return o->steps; }
void weft_optim_set_steps(weft_optim *o, int64_t steps) { o->steps = steps; }
int weft_optim_slots(const weft_optim *o) { return kinds[o->cfg.kind].nslots; }

void weft_optim_slot(weft_optim *o, int param, int slot, const char **name, double **data,
                     int64_t *n) {
    *name = kinds[o->cfg.kind].slots[slot];
    *data = o->p[param].slot[slot];
    *n = o->p[param].n;
}

const char *weft_optim_param_name(const weft_optim *o, int param) { return o->p[param].name; }

weft_status weft_clip_grad_norm(const weft_optim *o, void *const *grads, double max_norm,
                                double *total_norm) {
    /* PyTorch: the norm of the per-tensor norms */
    double sq = 0;
    for (int i = 0; i < o->count; i++) {
        double t = 0;
        for (int64_t k = 0; k < o->p[i].n; k++) {
            double v = load(grads[i], o->p[i].dtype, k);
            t += v * v;
        }
        sq += t;
    }
    double total = sqrt(sq);
    if (total_norm) *total_norm = total;
    if (!isfinite(total))
        return weft_error(WEFT_ERR_NUMERIC, "clip_grad_norm: the gradient norm is %g", total);
    double coef = max_norm / (total + 1e-6);
    if (coef > 1) coef = 1; /* PyTorch multiplies by the clamped coefficient always */
    for (int i = 0; i < o->count; i++)
        for (int64_t k = 0; k < o->p[i].n; k++)
            put(grads[i], o->p[i].dtype, k, load(grads[i], o->p[i].dtype, k) * coef);
    return WEFT_OK;
}

/* ------------------------------------------------------------ schedules */

static weft_sched sched_make(weft_sched_kind kind, double lr) {
    weft_sched s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.base_lr = s.lr = lr;
    return s;
}

weft_sched weft_sched_constant(double lr) { return sched_make(WEFT_SCHED_CONSTANT, lr); }

weft_sched weft_sched_step_lr(double lr, int64_t step_size, double gamma) {
    weft_sched s = sched_make(WEFT_SCHED_STEP, lr);
    s.step_size = step_size > 0 ? step_size : 1;
    s.gamma = gamma;
    return s;
}

weft_sched weft_sched_cosine(double lr, int64_t t_max, double eta_min) {
    weft_sched s = sched_make(WEFT_SCHED_COSINE, lr);
    s.t_max = t_max > 0 ? t_max : 1;
    s.eta_min = eta_min;
    return s;
}

/* Python's % (the result takes the divisor's sign). */
static int64_t pymod(int64_t a, int64_t b) {
    int64_t r = a % b;
    return r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
}

double weft_sched_advance(weft_sched *s) {
    int64_t e = ++s->last_epoch;
    switch (s->kind) {
    case WEFT_SCHED_STEP:
        if (e != 0 && e % s->step_size == 0) s->lr = s->lr * s->gamma;
        break;
    case WEFT_SCHED_COSINE: {
        /* CosineAnnealingLR.get_lr, the chainable form */
        double T = (double)s->t_max;
        if (pymod(e - 1 - s->t_max, 2 * s->t_max) == 0)
            s->lr = s->lr + (s->base_lr - s->eta_min) * (1 - cos(M_PI / T)) / 2;
        else
            s->lr = (1 + cos(M_PI * (double)e / T)) / (1 + cos(M_PI * (double)(e - 1) / T)) *
                        (s->lr - s->eta_min) +
                    s->eta_min;
        break;
    }
    default:
        break;
    }
    return s->lr;
}
