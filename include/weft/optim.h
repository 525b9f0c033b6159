/* weft — optimizers, gradient clipping and learning-rate schedules with
 * PyTorch 1.13's exact update formulas and defaults.
 *
 * They work on plain arrays: the parameters (e.g. weft_param_data) are
 * registered once; each step takes one gradient array per parameter in the
 * parameter's dtype (f32 or f64).  Optimizer state is kept in double. */
#ifndef WEFT_OPTIM_H
#define WEFT_OPTIM_H

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_optim_kind {
    WEFT_OPTIM_SGD,
    WEFT_OPTIM_ADAM,
    WEFT_OPTIM_ADAMW,
    WEFT_OPTIM_RMSPROP,
    WEFT_OPTIM_KIND_COUNT
} weft_optim_kind;

typedef struct weft_optim_config {
    weft_optim_kind kind;
    double lr;
    double weight_decay;  /* L2 added to the gradient; AdamW: decoupled */
    double momentum;      /* SGD, RMSprop */
    double dampening;     /* SGD */
    int nesterov;         /* SGD (needs momentum > 0 and dampening 0) */
    double beta1, beta2;  /* Adam, AdamW */
    double eps;           /* Adam, AdamW, RMSprop */
    double alpha;         /* RMSprop smoothing */
    int centered;         /* RMSprop */
} weft_optim_config;

/* PyTorch's defaults for the kind (SGD has no default lr in PyTorch; 0.01). */
weft_optim_config weft_optim_defaults(weft_optim_kind kind);
/* "sgd", "adam", "adamw", "rmsprop"; parse returns -1 for an unknown name. */
const char *weft_optim_kind_name(weft_optim_kind kind);
int weft_optim_kind_parse(const char *name);

typedef struct weft_optim weft_optim;

weft_status weft_optim_new(const weft_optim_config *cfg, weft_optim **out);
void weft_optim_free(weft_optim *o);
const weft_optim_config *weft_optim_config_of(const weft_optim *o);

/* Register a parameter of n elements (dtype f32 or f64) updated in place.
 * `name` (copied) keys its state in checkpoints. */
weft_status weft_optim_add(weft_optim *o, const char *name, weft_dtype t, void *data,
                           int64_t n);
int weft_optim_count(const weft_optim *o);

/* One update of every parameter; grads[i] matches parameter i. */
weft_status weft_optim_step(weft_optim *o, void *const *grads);

double weft_optim_lr(const weft_optim *o);
void weft_optim_set_lr(weft_optim *o, double lr);
/* Steps taken so far (PyTorch's per-parameter `step`, shared here). */
int64_t weft_optim_steps(const weft_optim *o);
void weft_optim_set_steps(weft_optim *o, int64_t steps);

/* State for checkpoints: the slots of the kind ("momentum_buffer",
 * "exp_avg", "exp_avg_sq", "square_avg", "grad_avg"), each a double array
 * of the parameter's size.  Returns the slot count; *name and *data of slot
 * s of parameter i. */
int weft_optim_slots(const weft_optim *o);
void weft_optim_slot(weft_optim *o, int param, int slot, const char **name, double **data,
                     int64_t *n);
const char *weft_optim_param_name(const weft_optim *o, int param);

/* torch.nn.utils.clip_grad_norm_ (norm 2) over gradient arrays shaped like
 * o's parameters: total = ||(||g_i||)_i||, coef = min(1, max/(total+1e-6)),
 * g *= coef.  Returns the total norm before clipping in *total_norm. */
weft_status weft_clip_grad_norm(const weft_optim *o, void *const *grads, double max_norm,
                                double *total_norm);

/* Learning-rate schedules, stepped once per epoch like PyTorch's schedulers
 * (the same recursive formulas, so the values agree to the last bit). */
typedef enum weft_sched_kind {
    WEFT_SCHED_CONSTANT,
    WEFT_SCHED_STEP,      /* StepLR(step_size, gamma) */
    WEFT_SCHED_COSINE     /* CosineAnnealingLR(T_max, eta_min) */
} weft_sched_kind;

typedef struct weft_sched {
    weft_sched_kind kind;
    double base_lr;
    double lr;            /* in force now */
    int64_t last_epoch;   /* epochs stepped so far */
    int64_t step_size;    /* STEP */
    double gamma;         /* STEP */
    int64_t t_max;        /* COSINE */
    double eta_min;       /* COSINE */
} weft_sched;

weft_sched weft_sched_constant(double lr);
weft_sched weft_sched_step_lr(double lr, int64_t step_size, double gamma);
weft_sched weft_sched_cosine(double lr, int64_t t_max, double eta_min);
/* scheduler.step(): advances one epoch and returns the new rate. */
double weft_sched_advance(weft_sched *s);

#ifdef __cplusplus
}
#endif
#endif
