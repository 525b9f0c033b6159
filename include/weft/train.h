/* weft — a training loop: a model and its loss are built once into a graph;
 * then every step feeds a batch, runs forward + backward, clips, and updates
 * the parameters with an optimizer; evaluation runs the forward only with the
 * dropout switched off.  Checkpoints hold everything needed to continue
 * exactly as an uninterrupted run would: parameters, optimizer state,
 * step/epoch, the schedule, the dropout counter, the trainer's generator and
 * any carried recurrent state, in one safetensors file written atomically. */
#ifndef WEFT_TRAIN_H
#define WEFT_TRAIN_H

#include "optim.h"
#include "rnn.h"
#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_TRAIN_MAX_METRICS 8

/* Data for one input node: contiguous row-major, of the node's dtype. */
typedef struct weft_feed {
    weft_node node;
    const void *data;
    size_t bytes;
} weft_feed;

typedef struct weft_train_config {
    weft_node loss;                 /* scalar (one element) */
    const weft_node *metrics;       /* scalars reported with the loss, e.g. accuracy */
    int num_metrics;                /* <= WEFT_TRAIN_MAX_METRICS */
    /* Scalar input fed 1 by step and 0 by eval (see weft_rnn_inputs.train,
     * weft_train_dropout); WEFT_NONE if the model has no dropout. */
    weft_node train_flag;
    /* Stateful training / truncated BPTT: after each step the value of
     * carry_out[i] is fed to the input carry_in[i] at the next step (zeros
     * at first).  Fed as data, the state carries no gradient across the
     * batch boundary: that is the truncation. */
    const weft_node *carry_in, *carry_out;
    int num_carry;
    weft_optim_config optim;
    double clip_norm;               /* > 0: clip the gradients' global norm */
    /* A schedule stepped by weft_trainer_end_epoch; its lr replaces the
     * optimizer's.  Kind WEFT_SCHED_CONSTANT (zeroed struct) = none. */
    weft_sched sched;
    uint64_t seed;                  /* the trainer's generator (batch order etc.) */
} weft_train_config;

/* loss, metrics[num_metrics], and the gradient norm before clipping. */
typedef struct weft_train_result {
    double loss;
    double metrics[WEFT_TRAIN_MAX_METRICS];
    double grad_norm;
} weft_train_result;

typedef struct weft_trainer weft_trainer;

/* Appends the backward of cfg->loss with respect to every parameter of g to
 * g and plans it.  g must outlive the trainer. */
weft_status weft_trainer_new(weft_graph *g, const weft_train_config *cfg,
                             weft_trainer **out);
void weft_trainer_free(weft_trainer *t);

/* One training step on a batch.  A non-finite loss or gradient leaves the
 * parameters untouched and returns WEFT_ERR_NUMERIC. */
weft_status weft_trainer_step(weft_trainer *t, const weft_feed *feeds, int n,
                              weft_train_result *r);
/* Forward only, dropout off, parameters and carried state untouched (carry
 * inputs not in feeds get zeros). */
weft_status weft_trainer_eval(weft_trainer *t, const weft_feed *feeds, int n,
                              weft_train_result *r);
/* More heads: another scalar loss over the same parameters, trained by the
 * same optimizer, e.g. the model applied to inputs of another length in the
 * same graph (length bucketing: shapes are static, so each bucket length is
 * its own application of the model).  Head 0 is cfg->loss with cfg->metrics;
 * weft_trainer_step and weft_trainer_eval use it.  *index receives the new
 * head's number.  Not with carried state (WEFT_ERR_UNSUPPORTED). */
weft_status weft_trainer_add_head(weft_trainer *t, weft_node loss, const weft_node *metrics,
                                  int num_metrics, int *index);
int weft_trainer_num_heads(const weft_trainer *t);
/* weft_trainer_step / weft_trainer_eval on head `index` (its loss and
 * metrics fill *r). */
weft_status weft_trainer_step_head(weft_trainer *t, int index, const weft_feed *feeds, int n,
                                   weft_train_result *r);
weft_status weft_trainer_eval_head(weft_trainer *t, int index, const weft_feed *feeds, int n,
                                   weft_train_result *r);
/* Ends an epoch: epoch + 1, and the schedule (if any) sets the next lr. */
void weft_trainer_end_epoch(weft_trainer *t);
/* Zero the carried states (a new, unrelated sequence begins). */
void weft_trainer_reset_carry(weft_trainer *t);

int64_t weft_trainer_steps(const weft_trainer *t);
int64_t weft_trainer_epoch(const weft_trainer *t);
double weft_trainer_lr(const weft_trainer *t);
/* The trainer's generator: draw batch orders from it so that checkpoints
 * restore them. */
weft_rng *weft_trainer_rng(weft_trainer *t);
weft_optim *weft_trainer_optim(weft_trainer *t);

/* A gradient hook: called by every training step after the gradients are
 * read and checked finite, before clipping and the optimizer step; it may
 * rewrite grads[i] in place (e.g. average them across processes:
 * include/weft/dist.h).  An error fails the step with the parameters
 * untouched.  Arrays are in parameter order and stay valid while the
 * trainer lives; params[i] are the current values (read only). */
typedef struct weft_grad_set {
    int n;
    void *const *grads;
    const void *const *params;
    const weft_dtype *dtypes;
    const size_t *bytes;        /* of grads[i] and params[i] */
    int64_t step;               /* steps completed before this one */
} weft_grad_set;
typedef weft_status (*weft_grad_hook)(void *ctx, const weft_grad_set *gs);
/* fn = NULL removes the hook. */
weft_status weft_trainer_set_grad_hook(weft_trainer *t, weft_grad_hook fn, void *ctx);
/* A readiness hook: called during the training run as soon as gradient i
 * has been computed and copied into gs->grads[i] (before the whole step's
 * gradients are checked finite), once per parameter per step, in the order
 * the executor computes them, which is the same on every step and on every
 * process running the same graph (weft_exec_set_on_ready); gs->step is
 * set.  The grad hook is still called after the run.  Used to start
 * communicating the first gradients while the rest of the backward pass
 * runs (weft_dist_avg_ready).  An error fails the step (the grad hook is
 * then not called).  fn = NULL removes it. */
typedef weft_status (*weft_grad_ready_hook)(void *ctx, const weft_grad_set *gs, int i);
weft_status weft_trainer_set_grad_ready_hook(weft_trainer *t, weft_grad_ready_hook fn,
                                             void *ctx);

/* Extra checkpoint metadata (copied; setting a key again replaces it): what
 * a tool needs to rebuild the model from the checkpoint alone, e.g. the
 * cell's name or a vocabulary.  Read it back with weft_st_metadata.  The
 * trainer's own keys (format, version, step, ...) are refused. */
weft_status weft_trainer_set_meta(weft_trainer *t, const char *key, const char *value);

/* Save / restore everything; load requires a trainer built the same way
 * (same parameter names and shapes, same optimizer kind).  After a failed
 * load the trainer is partly restored: discard it or load again. */
weft_status weft_trainer_save(weft_trainer *t, const char *path);
weft_status weft_trainer_load(weft_trainer *t, const char *path);

#ifdef __cplusplus
}
#endif
#endif
