/* weft — recurrent models and layers built into a graph.
 *
 * A weft_rnn is a (multi-layer, optionally bidirectional) recurrent model
 * made of any weft_cell, with parameters named like PyTorch's state_dict
 * (weight_ih_l0, weight_hh_l0_reverse, ...; a custom cell's <param>_l{k}
 * [_reverse]).  weft_rnn_apply unrolls it over T steps with shared weights.
 * Next to it: Embedding, Linear, the losses and accuracy, the masks for
 * variable lengths, sampling for generation, and the seeded generator used
 * for initialisation.  Everything is built from the primitives of weft.h. */
#ifndef WEFT_RNN_H
#define WEFT_RNN_H

#include "cell.h"
#include "safetensors.h"
#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ generator
 * A counter-based generator (splitmix64 of seed + counter): its whole state
 * is two integers, so checkpoints store it exactly and streams are cheap. */
typedef struct weft_rng {
    uint64_t seed;
    uint64_t counter;
} weft_rng;

weft_rng weft_rng_make(uint64_t seed);
uint64_t weft_rng_u64(weft_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double weft_rng_uniform(weft_rng *r);
/* Standard normal (Box-Muller; two draws per value). */
double weft_rng_normal(weft_rng *r);
/* Uniform integer in [0, n). */
int64_t weft_rng_below(weft_rng *r, int64_t n);

/* Fill a parameter (or constant) of g following an init rule: U(-b, b)
 * with b = `bound` for WEFT_INIT_UNIFORM_INV_SQRT_H, zeros, ones, const. */
weft_status weft_init_param(weft_graph *g, weft_node p, weft_init_kind kind,
                            double value, double bound, weft_rng *rng);

/* ---------------------------------------------------- recurrent model */

typedef struct weft_rnn_config {
    int64_t input_size, hidden_size;
    int num_layers;        /* >= 1 */
    int bidirectional;     /* 0 or 1 */
    int bias;              /* 0 drops every parameter the cell marks is_bias */
    int batch_first;       /* x [B, T, I] instead of [T, B, I] */
    double dropout;        /* on the outputs of every layer but the last */
    uint64_t dropout_seed;
    weft_dtype dtype;
    const char *prefix;    /* prepended to parameter names; NULL = none */
} weft_rnn_config;

/* num_layers 1, unidirectional, with biases, time-major, no dropout, F32. */
weft_rnn_config weft_rnn_config_default(int64_t input_size, int64_t hidden_size);

typedef struct weft_rnn {
    const weft_cell *cell;   /* borrowed: must outlive the model */
    weft_rnn_config cfg;     /* prefix copied below */
    char prefix[WEFT_NAME_MAX];
    int dirs;                /* 1 or 2 */
    int nparams;             /* cell parameters per (layer, direction) */
    weft_cell_param spec[2][WEFT_CELL_MAX_PARAMS]; /* [layer 0 / layers > 0] */
    /* params[(layer * dirs + dir) * nparams + i]; WEFT_NONE = dropped bias */
    weft_node *params;
} weft_rnn;

/* Creates the parameters in g (uninitialised: see weft_rnn_init).  Free the
 * result with weft_rnn_free; the nodes belong to g. */
weft_status weft_rnn_new(weft_graph *g, const weft_cell *cell,
                         const weft_rnn_config *cfg, weft_rnn **out);
void weft_rnn_free(weft_rnn *r);
/* PyTorch's initialisation: every tensor U(-1/sqrt(H), 1/sqrt(H)), in
 * creation order, from rng (or the cell's own init rule). */
weft_status weft_rnn_init(weft_graph *g, const weft_rnn *r, weft_rng *rng);
/* The parameter node of cell parameter `i` at (layer, dir). */
weft_node weft_rnn_param(const weft_rnn *r, int layer, int dir, int i);

typedef struct weft_rnn_inputs {
    weft_node x;       /* [T, B, I], or [B, T, I] when batch_first */
    /* Initial states, one per cell state, each [L*D, B, H] in PyTorch's
     * order (l0, l0_reverse, l1, ...); NULL or WEFT_NONE entries = zeros. */
    const weft_node *state0;
    /* [T, B] (or [B, T] when batch_first), 1 = valid step, 0 = skip; any
     * float dtype or WEFT_NONE.  A skipped step keeps the state and outputs
     * zeros; the reverse direction starts at each sequence's last valid
     * step.  Build it with weft_mask_from_lengths or weft_mask_from_padding. */
    weft_node mask;
    /* Scalar (any shape broadcasting to the layer output) input, 1 = train:
     * dropout between layers is applied only where it is non-zero.
     * WEFT_NONE = no dropout at all (evaluation graphs, parity checks). */
    weft_node train;
} weft_rnn_inputs;

typedef struct weft_rnn_result {
    weft_node output;                          /* [T, B, D*H] ([B, T, D*H]) */
    weft_node state_n[WEFT_CELL_MAX_STATES];   /* [L*D, B, H]: h_n, c_n, ... */
    /* Many-to-one: the top layer's final h (forward and reverse
     * concatenated), [B, D*H]; with a mask, the state at the last valid step. */
    weft_node last;
} weft_rnn_result;

weft_status weft_rnn_apply(weft_graph *g, const weft_rnn *r, const weft_rnn_inputs *in,
                           weft_rnn_result *out);

/* lengths: integer [B] (any order, 1..T). Returns a [T, B] mask of dtype t
 * ([B, T] when batch_first), built in the graph. */
weft_node weft_mask_from_lengths(weft_graph *g, weft_node lengths, int64_t T,
                                 int batch_first, weft_dtype t);
/* Keras-style: 1 where tokens != padding_idx, same shape as tokens. */
weft_node weft_mask_from_padding(weft_graph *g, weft_node tokens, int64_t padding_idx,
                                 weft_dtype t);

/* --------------------------------------------------------------- layers */

typedef struct weft_embedding {
    weft_node weight;       /* [num, dim] */
    int64_t num, dim;
    int64_t padding_idx;    /* -1 = none */
} weft_embedding;

/* PyTorch's nn.Embedding: weight N(0, 1), the padding row zero; its
 * gradient is zero too (the looked-up rows are masked in the graph). */
weft_status weft_embedding_new(weft_graph *g, const char *name, int64_t num, int64_t dim,
                               int64_t padding_idx, weft_dtype t, weft_rng *rng,
                               weft_embedding *out);
/* idx integer [...] -> [..., dim]. */
weft_node weft_embedding_apply(weft_graph *g, const weft_embedding *e, weft_node idx);

typedef struct weft_linear {
    weft_node weight;       /* [out, in] */
    weft_node bias;         /* [out] or WEFT_NONE */
    int64_t in, out;
} weft_linear;

/* PyTorch's nn.Linear: weight and bias U(-1/sqrt(in), 1/sqrt(in)).  Params
 * are named <name>.weight and <name>.bias. */
weft_status weft_linear_new(weft_graph *g, const char *name, int64_t in, int64_t out,
                            int bias, weft_dtype t, weft_rng *rng, weft_linear *l);
/* x [..., in] -> [..., out] (leading dims folded into one matmul). */
weft_node weft_linear_apply(weft_graph *g, const weft_linear *l, weft_node x);

/* Inverted dropout active where `train` is non-zero; x itself when p == 0
 * or train == WEFT_NONE. */
weft_node weft_train_dropout(weft_graph *g, weft_node x, double p, uint64_t seed,
                             weft_node train);

/* Losses (scalar means over all elements / the batch). */
/* Mean softmax cross-entropy; logits [..., C], labels integer [...] (e.g.
 * [T, B, C] and [T, B] for many-to-many). */
weft_node weft_loss_cross_entropy(weft_graph *g, weft_node logits, weft_node labels);
/* mean(softplus(x) - x*y) (stable; gradient sigmoid(x) - y), x and y the
 * same shape. */
weft_node weft_loss_bce_with_logits(weft_graph *g, weft_node logits, weft_node targets);
weft_node weft_loss_mse(weft_graph *g, weft_node pred, weft_node target);
/* Fraction of rows whose label has the largest logit (ties count as
 * correct); not differentiable. logits [..., C], labels integer [...]. */
weft_node weft_accuracy(weft_graph *g, weft_node logits, weft_node labels);

/* ------------------------------------------------------------- weights */

/* Copy every parameter of g from f by name (converting F32/F64), checking
 * shapes.  strict: a tensor in f that is no parameter of g is an error.
 * Errors name the file, the tensor and the expected shape. */
weft_status weft_params_load(weft_graph *g, const weft_st_file *f, const char *label,
                             int strict);
/* Add every parameter of g to w under its name. */
weft_status weft_params_save(weft_graph *g, weft_st_writer *w);

/* ----------------------------------------------------------- generation */

/* One-to-many: pick a class from logits[n] (stride apart) with
 * softmax(logits / temperature); temperature <= 0 means argmax. */
int64_t weft_sample_logits(const weft_tensor *logits_row, double temperature, weft_rng *rng);

/* ---------------------------------------------------------- parity run
 * What `weft run` does, as a library call: build the model of `cell` and
 * cfg (time-major), load its parameters from W (names exactly PyTorch's,
 * every one required, no extras), run it on X's `input` [T, B, I] with the
 * optional `h0`/`c0` (a cell's state s is read from "<state name>0"),
 * `lengths` [B], and when X has `grad_output`, differentiate
 *   sum(output * grad_output) + sum(<state>_n * grad_<state>_n) + ...
 * Adds `output`, `h_n`, `c_n`, and then `grad.input`, `grad.h0`, `grad.c0`,
 * `grad.<param>` to `out`.  Float tensors of X must have cfg->dtype.
 * Errors name the file (w_label / x_label) and the tensor. */
weft_status weft_rnn_run_files(const weft_cell *cell, const weft_rnn_config *cfg,
                               const weft_st_file *w, const char *w_label,
                               const weft_st_file *x, const char *x_label,
                               weft_st_writer *out);

#ifdef __cplusplus
}
#endif
#endif
