/* weft — the training loop and its checkpoints (see include/weft/train.h).
 *
 * Each head (a loss over the shared parameters: head 0 is the config's,
 * more come from weft_trainer_add_head, e.g. one per bucket length) has one
 * executor for training steps (loss, metrics, gradients, carried states)
 * and a second, made on first use, for evaluation (loss and metrics only,
 * so no backward work).  All read the parameters the graph owns, so an
 * update is seen by all, and one optimizer updates them.  The training
 * executors' run counters key the dropout masks; they are saved, so a
 * resumed run draws the same masks. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "weft/compile.h"
#include "weft/numerics.h"
#include "weft/safetensors.h"
#include "weft/train.h"

#define CKPT_FORMAT "weft-checkpoint"
#define CKPT_VERSION "1"

typedef struct carry {
    weft_node in, out;
    void *data;
    size_t bytes;
} carry;

typedef struct head {
    weft_node loss;
    weft_node metrics[WEFT_TRAIN_MAX_METRICS];
    int num_metrics;
    weft_node *grads;           /* of every parameter */
    weft_exec *train, *eval;
    int ready_on;               /* train reports gradients as they are computed */
} head;

struct weft_trainer {
    weft_graph *g;
    weft_train_config cfg;      /* metrics, carry_in/out not kept: see heads, carry */
    int np;
    weft_node *params;
    void **gbuf;                /* one gradient buffer per parameter */
    carry *carry;
    weft_optim *optim;
    head *heads;
    int nheads;
    weft_rng rng;
    int64_t steps, epoch;
    char **meta;                /* key, value, key, value, ... (weft_trainer_set_meta) */
    int nmeta;
    /* weft_trainer_set_grad_hook: called between reading and clipping the
     * gradients (arrays of gs built once, when the hook is set) */
    weft_grad_hook hook;
    void *hook_ctx;
    weft_grad_set gs;
    /* weft_trainer_set_grad_ready_hook: called from inside the training
     * run, for the head being stepped; the first error is kept and fails
     * the step */
    weft_grad_ready_hook ready;
    void *ready_ctx;
    head *ready_head;
    weft_status ready_err;
};

static size_t node_bytes(const weft_graph *g, weft_node n) {
    return (size_t)weft_shape_numel(weft_node_shape(g, n)) * weft_dtype_size(weft_node_dtype(g, n));
}

void weft_trainer_free(weft_trainer *t) {
    if (!t) return;
    for (int h = 0; h < t->nheads; h++) {
        weft_exec_free(t->heads[h].train);
        weft_exec_free(t->heads[h].eval);
        free(t->heads[h].grads);
    }
    free(t->heads);
    for (int i = 0; t->gbuf && i < t->np; i++) free(t->gbuf[i]);
    for (int i = 0; t->carry && i < t->cfg.num_carry; i++) free(t->carry[i].data);
    free(t->gbuf);
    free(t->carry);
    free(t->params);
    weft_optim_free(t->optim);
    for (int i = 0; i < 2 * t->nmeta; i++) free(t->meta[i]);
    free(t->meta);
    free((void *)t->gs.params);
    free((void *)t->gs.dtypes);
    free((void *)t->gs.bytes);
    free(t);
}

/* Differentiates `loss` with respect to every parameter and plans its
 * training executor: loss, metrics, gradients, and carried states. */
static weft_status add_head(weft_trainer *t, weft_node loss, const weft_node *metrics,
                            int num_metrics, const weft_node *carry_out, int *index) {
    weft_graph *g = t->g;
    if (loss == WEFT_NONE || weft_shape_numel(weft_node_shape(g, loss)) != 1)
        return weft_error(WEFT_ERR_SHAPE, "trainer: the loss must be a scalar");
    if (num_metrics < 0 || num_metrics > WEFT_TRAIN_MAX_METRICS)
        return weft_error(WEFT_ERR_ARG, "trainer: %d metrics (at most %d)", num_metrics,
                          WEFT_TRAIN_MAX_METRICS);
    head *hs = realloc(t->heads, sizeof *hs * (size_t)(t->nheads + 1));
    if (!hs) return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    t->heads = hs;
    head *h = &hs[t->nheads];
    memset(h, 0, sizeof *h);
    h->loss = loss;
    h->num_metrics = num_metrics;
    for (int i = 0; i < num_metrics; i++) h->metrics[i] = metrics[i];
    if (!(h->grads = calloc((size_t)t->np + 1, sizeof *h->grads)))
        return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    t->nheads++; /* owned from here: freed with the trainer */
    weft_status s = weft_grad(g, loss, t->params, t->np, h->grads);
    if (s) return s;
    int nc = carry_out ? t->cfg.num_carry : 0;
    int nout = 1 + num_metrics + t->np + nc, k = 0;
    weft_node *outs = malloc(sizeof *outs * (size_t)nout);
    if (!outs) return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    outs[k++] = loss;
    for (int i = 0; i < num_metrics; i++) outs[k++] = metrics[i];
    for (int i = 0; i < t->np; i++) outs[k++] = h->grads[i];
    for (int i = 0; i < nc; i++) outs[k++] = carry_out[i];
    if (!(h->train = weft_exec_compile(g, outs, nout, NULL)))
        s = weft_error(WEFT_ERR_GRAPH, "trainer: cannot plan the graph: %s", weft_last_error());
    free(outs);
    if (!s) *index = t->nheads - 1;
    return s;
}

weft_status weft_trainer_add_head(weft_trainer *t, weft_node loss, const weft_node *metrics,
                                  int num_metrics, int *index) {
    if (t->cfg.num_carry > 0)
        return weft_error(WEFT_ERR_UNSUPPORTED, "trainer: more heads with carried state");
    if (weft_graph_status(t->g))
        return weft_error(weft_graph_status(t->g), "trainer: the model failed to build: %s",
                          weft_graph_error(t->g));
    return add_head(t, loss, metrics, num_metrics, NULL, index);
}

int weft_trainer_num_heads(const weft_trainer *t) { return t->nheads; }

weft_status weft_trainer_new(weft_graph *g, const weft_train_config *cfg, weft_trainer **out) {
    *out = NULL;
    if (!g || !cfg || cfg->loss == WEFT_NONE)
        return weft_error(WEFT_ERR_ARG, "trainer: no graph or loss");
    if (cfg->num_metrics < 0 || cfg->num_metrics > WEFT_TRAIN_MAX_METRICS || cfg->num_carry < 0)
        return weft_error(WEFT_ERR_ARG, "trainer: %d metrics (at most %d), %d carried states",
                          cfg->num_metrics, WEFT_TRAIN_MAX_METRICS, cfg->num_carry);
    weft_status s = weft_graph_status(g);
    if (s) return weft_error(s, "trainer: the model failed to build: %s", weft_graph_error(g));
    if (weft_shape_numel(weft_node_shape(g, cfg->loss)) != 1)
        return weft_error(WEFT_ERR_SHAPE, "trainer: the loss must be a scalar");
    for (int i = 0; i < cfg->num_carry; i++)
        if (!weft_shape_eq(weft_node_shape(g, cfg->carry_in[i]),
                           weft_node_shape(g, cfg->carry_out[i])) ||
            weft_node_dtype(g, cfg->carry_in[i]) != weft_node_dtype(g, cfg->carry_out[i]) ||
            weft_node_kind_of(g, cfg->carry_in[i]) != WEFT_NODE_INPUT)
            return weft_error(WEFT_ERR_SHAPE, "trainer: carried state %d: the input and "
                              "output differ in shape or dtype, or the input is no input", i);

    weft_trainer *t = calloc(1, sizeof *t);
    if (!t) return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    t->g = g;
    t->cfg = *cfg;
    t->cfg.metrics = NULL; /* the caller's arrays are not kept */
    t->cfg.carry_in = t->cfg.carry_out = NULL;
    t->rng = weft_rng_make(cfg->seed);
    t->np = weft_graph_params(g, NULL, 0);
    int np = t->np;
    t->params = calloc((size_t)np + 1, sizeof *t->params);
    t->gbuf = calloc((size_t)np + 1, sizeof *t->gbuf);
    t->carry = calloc((size_t)cfg->num_carry + 1, sizeof *t->carry);
    if (!t->params || !t->gbuf || !t->carry) {
        weft_trainer_free(t);
        return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    }
    weft_graph_params(g, t->params, np);
    if ((s = weft_optim_new(&cfg->optim, &t->optim))) {
        weft_trainer_free(t);
        return s;
    }
    if (cfg->sched.kind != WEFT_SCHED_CONSTANT) weft_optim_set_lr(t->optim, cfg->sched.lr);
    for (int i = 0; i < np && !s; i++) {
        weft_node p = t->params[i];
        if (!(t->gbuf[i] = malloc(node_bytes(g, p) + 1)))
            s = weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
        else
            s = weft_optim_add(t->optim, weft_node_name(g, p), weft_node_dtype(g, p),
                               weft_param_data(g, p), weft_shape_numel(weft_node_shape(g, p)));
    }
    for (int i = 0; i < cfg->num_carry && !s; i++) {
        carry *c = &t->carry[i];
        c->in = cfg->carry_in[i];
        c->out = cfg->carry_out[i];
        c->bytes = node_bytes(g, c->in);
        if (!(c->data = calloc(1, c->bytes + 1)))
            s = weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    }
    int id;
    if (!s) s = add_head(t, cfg->loss, cfg->metrics, cfg->num_metrics, cfg->carry_out, &id);
    if (s) {
        weft_trainer_free(t);
        return s;
    }
    *out = t;
    return WEFT_OK;
}

static weft_status feed_flag(weft_exec *e, const weft_graph *g, weft_node flag, double v) {
    if (flag == WEFT_NONE) return WEFT_OK;
    double d = v;
    float f = (float)v;
    int32_t i = (int32_t)v;
    weft_dtype t = weft_node_dtype(g, flag);
    const void *p = t == WEFT_F64 ? (const void *)&d : t == WEFT_F32 ? (const void *)&f : &i;
    /* a model without dropout does not read the flag */
    if (!weft_exec_uses(e, flag)) return WEFT_OK;
    return weft_exec_feed(e, flag, p, weft_dtype_size(t));
}

/* skip_unused: leave out inputs the executor does not read (the NaN replay
 * computes only the loss and gradients, not the metrics). */
static weft_status feed_all(weft_exec *e, const weft_feed *feeds, int n, int skip_unused) {
    for (int i = 0; i < n; i++) {
        if (skip_unused && !weft_exec_uses(e, feeds[i].node)) continue;
        weft_status s = weft_exec_feed(e, feeds[i].node, feeds[i].data, feeds[i].bytes);
        if (s) return s;
    }
    return WEFT_OK;
}

/* Everything a run of the model reads besides the batch's own feeds: the
 * train flag, and the carried states (the previous batch's, or zeros for
 * evaluation).  One place for the step, evaluation and the NaN replay. */
static weft_status feed_run(const weft_trainer *t, weft_exec *e, double train, int zero_carry,
                            const weft_feed *feeds, int n) {
    /* zero_carry: 1 zeros (evaluation), 0 the carried states (a step),
     * -1 the carried states and only the inputs e reads (the NaN replay) */
    weft_status s = feed_flag(e, t->g, t->cfg.train_flag, train);
    for (int i = 0; i < t->cfg.num_carry && !s; i++) {
        if (!weft_exec_uses(e, t->carry[i].in)) continue;
        void *z = zero_carry > 0 ? calloc(1, t->carry[i].bytes + 1) : NULL;
        if (zero_carry > 0 && !z) return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
        s = weft_exec_feed(e, t->carry[i].in, z ? z : t->carry[i].data, t->carry[i].bytes);
        free(z);
    }
    return s ? s : feed_all(e, feeds, n, zero_carry < 0);
}

static weft_status read_scalar(weft_exec *e, weft_node n, double *v) {
    weft_tensor t;
    weft_status s = weft_exec_value(e, n, &t);
    if (!s) *v = weft_tensor_get(&t, 0);
    return s;
}

static weft_status read_results(const head *h, weft_exec *e, weft_train_result *r) {
    weft_train_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    weft_status s = read_scalar(e, h->loss, &r->loss);
    for (int i = 0; i < h->num_metrics && !s; i++)
        s = read_scalar(e, h->metrics[i], &r->metrics[i]);
    return s;
}

static weft_status check_head(const weft_trainer *t, int index) {
    if (index < 0 || index >= t->nheads)
        return weft_error(WEFT_ERR_ARG, "trainer: no head %d (it has %d)", index, t->nheads);
    return WEFT_OK;
}

/* A non-finite loss or gradient: the message also names the node where
 * the first NaN/Inf appeared (core/numerics.c), not just "loss is nan".
 * The compiled step reorders work (batched GEMMs, fused regions), so the
 * step is replayed on the reference executor, in the model's own order,
 * with the same inputs and dropout draws, to find where it started. */
static weft_status numeric_error(weft_trainer *t, const head *h, const weft_feed *feeds, int n,
                                 const char *what) {
    char first[1024] = "every value the step computed is finite";
    weft_node *outs = malloc(sizeof *outs * (size_t)(1 + t->np));
    weft_exec *ref = NULL;
    if (outs) {
        outs[0] = h->loss;
        for (int i = 0; i < t->np; i++) outs[1 + i] = h->grads[i];
        ref = weft_exec_new(t->g, outs, 1 + t->np);
        free(outs);
    }
    if (ref) {
        weft_exec_set_counter(ref, weft_exec_counter(h->train) - 1); /* the run that failed */
        weft_status s = feed_run(t, ref, 1.0, -1, feeds, n);
        if (!s) s = weft_exec_run(ref);
        if (!s && weft_exec_check_finite(ref, t->g, NULL)) snprintf(first, sizeof first, "%s", weft_last_error());
        weft_exec_free(ref);
    }
    return weft_error(WEFT_ERR_NUMERIC, "trainer: step %" PRId64 ": %s; %s", t->steps, what, first);
}

weft_status weft_trainer_step(weft_trainer *t, const weft_feed *feeds, int n,
                              weft_train_result *r) {
    return weft_trainer_step_head(t, 0, feeds, n, r);
}

static void grad_ready(void *ctx, weft_node n);

weft_status weft_trainer_step_head(weft_trainer *t, int index, const weft_feed *feeds, int n,
                                   weft_train_result *r) {
    weft_graph *g = t->g;
    weft_status s = check_head(t, index);
    if (s) return s;
    head *h = &t->heads[index];
    weft_exec *e = h->train;
    s = feed_run(t, e, 1.0, 0, feeds, n);
    if (!s && t->ready && !h->ready_on && !(s = weft_exec_set_on_ready(e, grad_ready, t)))
        h->ready_on = 1;
    if (!s) {
        t->gs.step = t->steps;
        t->ready_head = h;
        t->ready_err = WEFT_OK;
        s = weft_exec_run(e);
        if (!s) s = t->ready_err;
    }
    weft_train_result tmp;
    if (!r) r = &tmp;
    if (!s) s = read_results(h, e, r);
    /* with a readiness hook grad_ready has read them already */
    for (int i = 0; i < t->np && !s && !h->ready_on; i++)
        s = weft_exec_read(e, h->grads[i], t->gbuf[i], node_bytes(g, t->params[i]));
    if (s) return s;

    char what[3 * WEFT_NAME_MAX];
    if (!isfinite(r->loss)) {
        snprintf(what, sizeof what, "the loss is %s", isnan(r->loss) ? "NaN" : "infinite");
        return numeric_error(t, h, feeds, n, what);
    }
    for (int i = 0; i < t->np; i++)
        if (!weft_all_finite(t->gbuf[i], weft_node_dtype(g, t->params[i]),
                             weft_shape_numel(weft_node_shape(g, t->params[i])))) {
            snprintf(what, sizeof what, "the gradient of '%s' is not finite",
                     weft_node_name(g, t->params[i]));
            return numeric_error(t, h, feeds, n, what);
        }
    if (t->hook) {
        if ((s = t->hook(t->hook_ctx, &t->gs))) return s;
    }
    double norm = 0;
    if (t->cfg.clip_norm > 0) {
        if ((s = weft_clip_grad_norm(t->optim, t->gbuf, t->cfg.clip_norm, &norm))) return s;
    }
    r->grad_norm = norm;
    if ((s = weft_optim_step(t->optim, t->gbuf))) return s;
    /* the state after this batch starts the next one */
    for (int i = 0; i < t->cfg.num_carry && !s; i++)
        s = weft_exec_read(e, t->carry[i].out, t->carry[i].data, t->carry[i].bytes);
    t->steps++;
    return s;
}

weft_status weft_trainer_eval(weft_trainer *t, const weft_feed *feeds, int n,
                              weft_train_result *r) {
    return weft_trainer_eval_head(t, 0, feeds, n, r);
}

weft_status weft_trainer_eval_head(weft_trainer *t, int index, const weft_feed *feeds, int n,
                                   weft_train_result *r) {
    weft_graph *g = t->g;
    weft_status s = check_head(t, index);
    if (s) return s;
    head *h = &t->heads[index];
    if (!h->eval) {
        weft_node outs[1 + WEFT_TRAIN_MAX_METRICS];
        outs[0] = h->loss;
        for (int i = 0; i < h->num_metrics; i++) outs[1 + i] = h->metrics[i];
        if (!(h->eval = weft_exec_compile(g, outs, 1 + h->num_metrics, NULL)))
            return weft_error(WEFT_ERR_GRAPH, "trainer: cannot plan evaluation: %s",
                              weft_last_error());
    }
    weft_exec *e = h->eval;
    s = feed_run(t, e, 0.0, 1, feeds, n);
    if (!s) s = weft_exec_run(e);
    if (!s) s = read_results(h, e, r);
    return s;
}

void weft_trainer_end_epoch(weft_trainer *t) {
    t->epoch++;
    if (t->cfg.sched.kind != WEFT_SCHED_CONSTANT)
        weft_optim_set_lr(t->optim, weft_sched_advance(&t->cfg.sched));
}

void weft_trainer_reset_carry(weft_trainer *t) {
    for (int i = 0; i < t->cfg.num_carry; i++) memset(t->carry[i].data, 0, t->carry[i].bytes);
}

int64_t weft_trainer_steps(const weft_trainer *t) { return t->steps; }
int64_t weft_trainer_epoch(const weft_trainer *t) { return t->epoch; }
double weft_trainer_lr(const weft_trainer *t) { return weft_optim_lr(t->optim); }
weft_rng *weft_trainer_rng(weft_trainer *t) { return &t->rng; }
weft_optim *weft_trainer_optim(weft_trainer *t) { return t->optim; }

/* The arrays of t->gs, built once, when a hook is first set. */
static weft_status make_grad_set(weft_trainer *t) {
    if (t->gs.params) return WEFT_OK;
    const void **p = calloc((size_t)t->np + 1, sizeof *p);
    weft_dtype *d = calloc((size_t)t->np + 1, sizeof *d);
    size_t *b = calloc((size_t)t->np + 1, sizeof *b);
    if (!p || !d || !b) {
        free(p), free(d), free(b);
        return weft_error(WEFT_ERR_NOMEM, "trainer: out of memory");
    }
    for (int i = 0; i < t->np; i++) {
        p[i] = weft_param_data(t->g, t->params[i]);
        d[i] = weft_node_dtype(t->g, t->params[i]);
        b[i] = node_bytes(t->g, t->params[i]);
    }
    t->gs = (weft_grad_set){t->np, t->gbuf, p, d, b, 0};
    return WEFT_OK;
}

weft_status weft_trainer_set_grad_hook(weft_trainer *t, weft_grad_hook fn, void *ctx) {
    weft_status s = fn ? make_grad_set(t) : WEFT_OK;
    if (s) return s;
    t->hook = fn;
    t->hook_ctx = ctx;
    return WEFT_OK;
}

/* The training executor's on_ready callback: output n was computed; if it
 * is a gradient (of one or more parameters: folding can merge equal ones),
 * copy it out and pass it on. */
static void grad_ready(void *ctx, weft_node n) {
    weft_trainer *t = ctx;
    head *h = t->ready_head;
    for (int i = 0; i < t->np && !t->ready_err; i++) {
        if (h->grads[i] != n) continue;
        t->ready_err = weft_exec_read(h->train, n, t->gbuf[i], node_bytes(t->g, t->params[i]));
        if (!t->ready_err) t->ready_err = t->ready(t->ready_ctx, &t->gs, i);
    }
}

weft_status weft_trainer_set_grad_ready_hook(weft_trainer *t, weft_grad_ready_hook fn, void *ctx) {
    weft_status s = fn ? make_grad_set(t) : WEFT_OK;
    if (s) return s;
    if (!fn)
        for (int h = 0; h < t->nheads; h++)
            if (t->heads[h].ready_on) {
                weft_exec_set_on_ready(t->heads[h].train, NULL, NULL);
                t->heads[h].ready_on = 0;
            }
    t->ready = fn;
    t->ready_ctx = ctx;
    return WEFT_OK;
}

/* The metadata keys the checkpoint itself writes. */
static const char *const own_keys[] = {
    "format", "version", "optimizer", "step", "epoch", "optim_steps", "lr", "exec_counter",
    "rng_seed", "rng_counter", "sched_last_epoch", "sched_lr", NULL};

weft_status weft_trainer_set_meta(weft_trainer *t, const char *key, const char *value) {
    if (!key || !*key || !value)
        return weft_error(WEFT_ERR_ARG, "checkpoint metadata: no key or value");
    for (const char *const *k = own_keys; *k; k++)
        if (!strcmp(*k, key))
            return weft_error(WEFT_ERR_ARG, "checkpoint metadata: '%s' is the trainer's own key",
                              key);
    char *v = strdup(value);
    if (!v) return weft_error(WEFT_ERR_NOMEM, "checkpoint metadata: out of memory");
    for (int i = 0; i < t->nmeta; i++)
        if (!strcmp(t->meta[2 * i], key)) {
            free(t->meta[2 * i + 1]);
            t->meta[2 * i + 1] = v;
            return WEFT_OK;
        }
    char *k = strdup(key);
    char **m = realloc(t->meta, sizeof *m * (size_t)(2 * t->nmeta + 2));
    if (!k || !m) {
        free(k);
        free(v);
        if (m) t->meta = m;
        return weft_error(WEFT_ERR_NOMEM, "checkpoint metadata: out of memory");
    }
    t->meta = m;
    m[2 * t->nmeta] = k;
    m[2 * t->nmeta + 1] = v;
    t->nmeta++;
    return WEFT_OK;
}

/* ------------------------------------------------------------ checkpoints
 * Tensors: every parameter under its name, "optim.<param>.<slot>" (F64),
 * "carry.<i>".  Metadata: the counters, as decimal strings (%.17g for
 * doubles, which round-trips exactly). */

static weft_st_dtype st_dtype(weft_dtype t) {
    return t == WEFT_F64 ? WEFT_ST_F64 : t == WEFT_F32 ? WEFT_ST_F32 : WEFT_ST_I32;
}

static weft_status meta_u64(weft_st_writer *w, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return weft_st_writer_meta(w, key, buf);
}

static weft_status meta_f64(weft_st_writer *w, const char *key, double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return weft_st_writer_meta(w, key, buf);
}

/* Every optimizer state slot under its checkpoint name "optim.<param>.<slot>",
 * for saving and loading alike. */
typedef weft_status (*slot_fn)(void *ctx, const char *name, double *data, int64_t n);
static weft_status each_optim_slot(const weft_trainer *t, slot_fn fn, void *ctx) {
    char name[3 * WEFT_NAME_MAX];
    weft_status s = WEFT_OK;
    for (int i = 0; i < weft_optim_count(t->optim) && !s; i++)
        for (int k = 0; k < weft_optim_slots(t->optim) && !s; k++) {
            const char *slot;
            double *data;
            int64_t n;
            weft_optim_slot(t->optim, i, k, &slot, &data, &n);
            snprintf(name, sizeof name, "optim.%s.%s", weft_optim_param_name(t->optim, i), slot);
            s = fn(ctx, name, data, n);
        }
    return s;
}

static weft_status save_slot(void *w, const char *name, double *data, int64_t n) {
    return weft_st_writer_add(w, name, WEFT_ST_F64, 1, &n, data, (size_t)n * sizeof(double));
}

struct load_ctx {
    const weft_st_file *f;
};
static weft_status load_slot(void *ctx, const char *name, double *data, int64_t n) {
    return weft_st_get(((struct load_ctx *)ctx)->f, name, WEFT_F64, WEFT_SHAPE(n), data);
}

weft_status weft_trainer_save(weft_trainer *t, const char *path) {
    weft_st_writer *w = weft_st_writer_new();
    if (!w) return weft_error(WEFT_ERR_NOMEM, "checkpoint: out of memory");
    weft_status s = weft_params_save(t->g, w);
    char name[3 * WEFT_NAME_MAX];
    if (!s) s = each_optim_slot(t, save_slot, w);
    for (int i = 0; i < t->cfg.num_carry && !s; i++) {
        weft_shape sh = weft_node_shape(t->g, t->carry[i].in);
        snprintf(name, sizeof name, "carry.%d", i);
        s = weft_st_writer_add(w, name, st_dtype(weft_node_dtype(t->g, t->carry[i].in)), sh.ndim,
                               sh.dim, t->carry[i].data, t->carry[i].bytes);
    }
    if (!s) s = weft_st_writer_meta(w, "format", CKPT_FORMAT);
    if (!s) s = weft_st_writer_meta(w, "version", CKPT_VERSION);
    if (!s) s = weft_st_writer_meta(w, "optimizer", weft_optim_kind_name(t->cfg.optim.kind));
    if (!s) s = meta_u64(w, "step", (uint64_t)t->steps);
    if (!s) s = meta_u64(w, "epoch", (uint64_t)t->epoch);
    if (!s) s = meta_u64(w, "optim_steps", (uint64_t)weft_optim_steps(t->optim));
    if (!s) s = meta_f64(w, "lr", weft_optim_lr(t->optim));
    if (!s) s = meta_u64(w, "exec_counter", weft_exec_counter(t->heads[0].train));
    for (int h = 1; h < t->nheads && !s; h++) {
        snprintf(name, sizeof name, "exec_counter.%d", h);
        s = meta_u64(w, name, weft_exec_counter(t->heads[h].train));
    }
    if (!s) s = meta_u64(w, "rng_seed", t->rng.seed);
    if (!s) s = meta_u64(w, "rng_counter", t->rng.counter);
    if (!s) s = meta_u64(w, "sched_last_epoch", (uint64_t)t->cfg.sched.last_epoch);
    if (!s) s = meta_f64(w, "sched_lr", t->cfg.sched.lr);
    for (int i = 0; i < t->nmeta && !s; i++)
        s = weft_st_writer_meta(w, t->meta[2 * i], t->meta[2 * i + 1]);
    if (!s) s = weft_st_writer_save(w, path);
    weft_st_writer_free(w);
    return s;
}

/* Metadata key as a number; an error naming the file and key if absent. */
static weft_status get_meta(const weft_st_file *f, const char *path, const char *key,
                            int is_double, uint64_t *u, double *d) {
    const char *v = weft_st_metadata(f, key);
    char *end = NULL;
    if (v) {
        if (is_double)
            *d = strtod(v, &end);
        else
            *u = strtoull(v, &end, 10);
    }
    if (!v || !*v || *end)
        return weft_error(WEFT_ERR_FORMAT, "%s: checkpoint metadata '%s' is missing or not a "
                          "number", path, key);
    return WEFT_OK;
}

weft_status weft_trainer_load(weft_trainer *t, const char *path) {
    weft_st_file *f;
    weft_status s = weft_st_read(path, &f);
    if (s) return s;
    const char *fmt = weft_st_metadata(f, "format"), *kind = weft_st_metadata(f, "optimizer");
    if (!fmt || strcmp(fmt, CKPT_FORMAT)) {
        s = weft_error(WEFT_ERR_FORMAT, "%s: not a weft checkpoint", path);
    } else if (!kind || strcmp(kind, weft_optim_kind_name(t->cfg.optim.kind))) {
        s = weft_error(WEFT_ERR_FORMAT, "%s: checkpoint of optimizer '%s', the trainer uses '%s'",
                       path, kind ? kind : "?", weft_optim_kind_name(t->cfg.optim.kind));
    }
    uint64_t step = 0, epoch = 0, osteps = 0, counter = 0, seed = 0, rc = 0, last = 0;
    double lr = 0, slr = 0;
    if (!s) s = get_meta(f, path, "step", 0, &step, NULL);
    if (!s) s = get_meta(f, path, "epoch", 0, &epoch, NULL);
    if (!s) s = get_meta(f, path, "optim_steps", 0, &osteps, NULL);
    if (!s) s = get_meta(f, path, "exec_counter", 0, &counter, NULL);
    if (!s) s = get_meta(f, path, "rng_seed", 0, &seed, NULL);
    if (!s) s = get_meta(f, path, "rng_counter", 0, &rc, NULL);
    if (!s) s = get_meta(f, path, "sched_last_epoch", 0, &last, NULL);
    if (!s) s = get_meta(f, path, "lr", 1, NULL, &lr);
    if (!s) s = get_meta(f, path, "sched_lr", 1, NULL, &slr);
    uint64_t *counters = calloc((size_t)t->nheads, sizeof *counters);
    if (!s && !counters) s = weft_error(WEFT_ERR_NOMEM, "checkpoint: out of memory");
    for (int h = 1; h < t->nheads && !s; h++) {
        char key[32];
        snprintf(key, sizeof key, "exec_counter.%d", h);
        s = get_meta(f, path, key, 0, &counters[h], NULL);
    }
    /* on an error below the trainer is partly restored: load it again or
     * discard it */
    char name[3 * WEFT_NAME_MAX];
    struct load_ctx lc = {f};
    if (!s) s = each_optim_slot(t, load_slot, &lc);
    for (int i = 0; i < t->cfg.num_carry && !s; i++) {
        snprintf(name, sizeof name, "carry.%d", i);
        s = weft_st_get(f, name, weft_node_dtype(t->g, t->carry[i].in),
                        weft_node_shape(t->g, t->carry[i].in), t->carry[i].data);
    }
    if (!s) s = weft_params_load(t->g, f, path, 0);
    if (!s) {
        t->steps = (int64_t)step;
        t->epoch = (int64_t)epoch;
        weft_optim_set_steps(t->optim, (int64_t)osteps);
        weft_optim_set_lr(t->optim, lr);
        weft_exec_set_counter(t->heads[0].train, counter);
        for (int h = 1; h < t->nheads; h++) weft_exec_set_counter(t->heads[h].train, counters[h]);
        t->rng.seed = seed;
        t->rng.counter = rc;
        t->cfg.sched.last_epoch = (int64_t)last;
        t->cfg.sched.lr = slr;
    }
    free(counters);
    weft_st_free(f);
    return s;
}
