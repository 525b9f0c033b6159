/* weft — recurrent models, layers, losses and the seeded generator.
 *
 * Unrolling is plain graph building: one cell step per time step, the same
 * parameter nodes in every step (so autodiff sums their gradients over time
 * by fan-out), each step's nodes tagged with weft_graph_set_site so passes
 * and drawings know where they sit.  Variable lengths use a [T, B] mask in
 * the graph: a skipped step keeps the previous state (select) and outputs
 * zero (mul), which gives PyTorch's pack/pad results without sorting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "weft/rnn.h"

/* ------------------------------------------------------------ generator */

#define GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

weft_rng weft_rng_make(uint64_t seed) { return (weft_rng){seed, 0}; }

/* splitmix64: value n is a pure function of (seed, n). */
uint64_t weft_rng_u64(weft_rng *r) { return mix64(r->seed + (++r->counter) * GOLDEN); }

double weft_rng_uniform(weft_rng *r) {
    return (double)(weft_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double weft_rng_normal(weft_rng *r) {
    double u1 = 1.0 - weft_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = weft_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int64_t weft_rng_below(weft_rng *r, int64_t n) {
    if (n <= 0) return 0;
    return (int64_t)(((unsigned __int128)weft_rng_u64(r) * (uint64_t)n) >> 64);
}

/* ----------------------------------------------------------- utilities */

static void contiguous_view(weft_tensor *t, void *data, weft_dtype dt, weft_shape s) {
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dt;
    t->shape = s;
    int64_t st = 1;
    for (int i = s.ndim - 1; i >= 0; i--) {
        t->stride[i] = st;
        st *= s.dim[i];
    }
}

static void store(void *data, weft_dtype t, int64_t i, double v) {
    if (t == WEFT_F64)
        ((double *)data)[i] = v;
    else if (t == WEFT_F32)
        ((float *)data)[i] = (float)v;
    else
        ((int32_t *)data)[i] = (int32_t)v;
}

weft_status weft_init_param(weft_graph *g, weft_node p, weft_init_kind kind,
                            double value, double bound, weft_rng *rng) {
    void *data = weft_param_data(g, p);
    if (!data) return weft_error(WEFT_ERR_ARG, "init: node %d has no storage", (int)p);
    weft_dtype t = weft_node_dtype(g, p);
    int64_t n = weft_shape_numel(weft_node_shape(g, p));
    for (int64_t i = 0; i < n; i++) {
        double v = kind == WEFT_INIT_UNIFORM_INV_SQRT_H
                       ? (2.0 * weft_rng_uniform(rng) - 1.0) * bound
                   : kind == WEFT_INIT_ONES  ? 1.0
                   : kind == WEFT_INIT_CONST ? value
                                             : 0.0;
        store(data, t, i, v);
    }
    return WEFT_OK;
}

static weft_status graph_failed(weft_graph *g, const char *what) {
    weft_status s = weft_graph_status(g);
    return s ? weft_error(s, "%s: %s", what, weft_graph_error(g)) : WEFT_OK;
}

/* Concatenation that tolerates a single part. */
static weft_node cat(weft_graph *g, const weft_node *xs, int n, int axis) {
    return n == 1 ? xs[0] : weft_concat(g, xs, n, axis);
}

/* ---------------------------------------------------- recurrent model */

weft_rnn_config weft_rnn_config_default(int64_t input_size, int64_t hidden_size) {
    weft_rnn_config c;
    memset(&c, 0, sizeof c);
    c.input_size = input_size;
    c.hidden_size = hidden_size;
    c.num_layers = 1;
    c.bias = 1;
    c.dtype = WEFT_F32;
    return c;
}

weft_status weft_rnn_new(weft_graph *g, const weft_cell *cell, const weft_rnn_config *cfg,
                         weft_rnn **out) {
    *out = NULL;
    if (!cell || !cfg) return weft_error(WEFT_ERR_ARG, "rnn: no cell or config");
    if (cfg->num_layers < 1 || cfg->input_size < 1 || cfg->hidden_size < 1 ||
        (cfg->bidirectional != 0 && cfg->bidirectional != 1) || cfg->dropout < 0 ||
        cfg->dropout >= 1)
        return weft_error(WEFT_ERR_ARG,
                          "rnn %s: bad config (layers %d, input %lld, hidden %lld, "
                          "bidirectional %d, dropout %g)",
                          cell->name, cfg->num_layers, (long long)cfg->input_size,
                          (long long)cfg->hidden_size, cfg->bidirectional, cfg->dropout);
    if (cfg->dtype != WEFT_F32 && cfg->dtype != WEFT_F64)
        return weft_error(WEFT_ERR_DTYPE, "rnn %s: dtype must be f32 or f64", cell->name);
    if (cell->num_states < 1 || cell->num_states > WEFT_CELL_MAX_STATES)
        return weft_error(WEFT_ERR_ARG, "rnn: cell %s has %d states", cell->name,
                          cell->num_states);

    weft_rnn *r = calloc(1, sizeof *r);
    if (!r) return weft_error(WEFT_ERR_NOMEM, "rnn: out of memory");
    r->cell = cell;
    r->cfg = *cfg;
    snprintf(r->prefix, sizeof r->prefix, "%s", cfg->prefix ? cfg->prefix : "");
    r->cfg.prefix = r->prefix;
    r->dirs = cfg->bidirectional ? 2 : 1;
    int64_t H = cfg->hidden_size;
    int n0 = cell->ops->params(cell, cfg->input_size, H, r->spec[0]);
    int n1 = cell->ops->params(cell, r->dirs * H, H, r->spec[1]);
    if (n0 < 0 || n1 < 0 || n0 != n1 || n0 > WEFT_CELL_MAX_PARAMS) {
        free(r);
        return n0 < 0 || n1 < 0 ? WEFT_ERR_ARG
                                : weft_error(WEFT_ERR_ARG, "rnn: cell %s gives %d parameters",
                                             cell->name, n0);
    }
    r->nparams = n0;
    size_t count = (size_t)cfg->num_layers * r->dirs * r->nparams;
    r->params = malloc((count ? count : 1) * sizeof *r->params);
    if (!r->params) {
        free(r);
        return weft_error(WEFT_ERR_NOMEM, "rnn: out of memory");
    }
    /* PyTorch's state_dict order: per layer, forward then reverse. */
    for (int l = 0; l < cfg->num_layers; l++)
        for (int d = 0; d < r->dirs; d++)
            for (int i = 0; i < r->nparams; i++) {
                const weft_cell_param *sp = &r->spec[l > 0][i];
                weft_node *slot = &r->params[((size_t)l * r->dirs + d) * r->nparams + i];
                if (sp->is_bias && !cfg->bias) {
                    *slot = WEFT_NONE;
                    continue;
                }
                char name[3 * WEFT_NAME_MAX];
                snprintf(name, sizeof name, "%s%s_l%d%s", r->prefix, sp->name, l,
                         d ? "_reverse" : "");
                *slot = weft_param(g, name, cfg->dtype, sp->shape);
            }
    weft_status s = graph_failed(g, "rnn parameters");
    if (s) {
        weft_rnn_free(r);
        return s;
    }
    *out = r;
    return WEFT_OK;
}

void weft_rnn_free(weft_rnn *r) {
    if (!r) return;
    free(r->params);
    free(r);
}

weft_node weft_rnn_param(const weft_rnn *r, int layer, int dir, int i) {
    if (layer < 0 || layer >= r->cfg.num_layers || dir < 0 || dir >= r->dirs || i < 0 ||
        i >= r->nparams)
        return WEFT_NONE;
    return r->params[((size_t)layer * r->dirs + dir) * r->nparams + i];
}

weft_status weft_rnn_init(weft_graph *g, const weft_rnn *r, weft_rng *rng) {
    double bound = 1.0 / sqrt((double)r->cfg.hidden_size);
    for (int l = 0; l < r->cfg.num_layers; l++)
        for (int d = 0; d < r->dirs; d++)
            for (int i = 0; i < r->nparams; i++) {
                weft_node p = weft_rnn_param(r, l, d, i);
                if (p == WEFT_NONE) continue;
                const weft_cell_param *sp = &r->spec[l > 0][i];
                weft_status s = weft_init_param(g, p, sp->init, sp->value, bound, rng);
                if (s) return s;
            }
    return WEFT_OK;
}

/* Dropout streams differ per (layer, step) and per model seed. */
static uint64_t dropout_seed(uint64_t seed, int layer, int64_t t) {
    return mix64(seed ^ mix64(((uint64_t)layer << 40) ^ (uint64_t)t));
}

weft_status weft_rnn_apply(weft_graph *g, const weft_rnn *r, const weft_rnn_inputs *in,
                           weft_rnn_result *out) {
    const weft_rnn_config *cfg = &r->cfg;
    const weft_cell *cell = r->cell;
    memset(out, 0, sizeof *out);
    out->output = out->last = WEFT_NONE;
    for (int s = 0; s < WEFT_CELL_MAX_STATES; s++) out->state_n[s] = WEFT_NONE;

    weft_status st = graph_failed(g, "rnn input");
    if (st) return st;
    weft_shape xs_shape = weft_node_shape(g, in->x);
    char b1[64], b2[64];
    if (xs_shape.ndim != 3 || xs_shape.dim[2] != cfg->input_size)
        return weft_error(WEFT_ERR_SHAPE, "rnn %s: input is %s, expected [%s, %lld]", cell->name,
                          weft_shape_str(xs_shape, b1, sizeof b1),
                          cfg->batch_first ? "B, T" : "T, B", (long long)cfg->input_size);
    if (weft_node_dtype(g, in->x) != cfg->dtype)
        return weft_error(WEFT_ERR_DTYPE, "rnn %s: input is %s, the model %s", cell->name,
                          weft_dtype_name(weft_node_dtype(g, in->x)),
                          weft_dtype_name(cfg->dtype));
    const int taxis = cfg->batch_first ? 1 : 0;
    const int64_t T = xs_shape.dim[taxis], B = xs_shape.dim[1 - taxis];
    const int64_t H = cfg->hidden_size;
    const int L = cfg->num_layers, D = r->dirs, S = cell->num_states;

    if (in->mask != WEFT_NONE) {
        weft_shape ms = weft_node_shape(g, in->mask);
        weft_shape want = cfg->batch_first ? WEFT_SHAPE(B, T) : WEFT_SHAPE(T, B);
        if (!weft_shape_eq(ms, want))
            return weft_error(WEFT_ERR_SHAPE, "rnn %s: mask is %s, expected %s", cell->name,
                              weft_shape_str(ms, b1, sizeof b1),
                              weft_shape_str(want, b2, sizeof b2));
    }
    weft_shape state_shape = WEFT_SHAPE((int64_t)L * D, B, H);
    for (int s = 0; in->state0 && s < S; s++) {
        if (in->state0[s] == WEFT_NONE) continue;
        weft_shape ss = weft_node_shape(g, in->state0[s]);
        if (!weft_shape_eq(ss, state_shape))
            return weft_error(WEFT_ERR_SHAPE, "rnn %s: initial state %s is %s, expected %s",
                              cell->name, cell->state_names[s],
                              weft_shape_str(ss, b1, sizeof b1),
                              weft_shape_str(state_shape, b2, sizeof b2));
    }

    /* xs[t]: the current layer's input at step t, [B, in]; masks[t]: [B, 1] */
    weft_node *xs = calloc((size_t)T, sizeof *xs);
    weft_node *masks = calloc((size_t)T, sizeof *masks);
    weft_node *outs = calloc((size_t)T * D, sizeof *outs); /* outs[d*T + t] */
    weft_node *final = calloc((size_t)L * D * S, sizeof *final);
    weft_node *parts = calloc((size_t)(T > L * D ? T : L * D), sizeof *parts);
    if (!xs || !masks || !outs || !final || !parts) {
        st = weft_error(WEFT_ERR_NOMEM, "rnn: out of memory");
        goto done;
    }
    weft_node mask = in->mask;
    if (mask != WEFT_NONE && weft_node_dtype(g, mask) != cfg->dtype)
        mask = weft_cast(g, mask, cfg->dtype);
    for (int64_t t = 0; t < T; t++) {
        xs[t] = weft_reshape(g, weft_slice(g, in->x, taxis, t, t + 1),
                             WEFT_SHAPE(B, cfg->input_size));
        masks[t] = mask == WEFT_NONE ? WEFT_NONE
                                     : weft_reshape(g, weft_slice(g, mask, taxis, t, t + 1),
                                                    WEFT_SHAPE(B, 1));
    }
    weft_node zeros = weft_zeros(g, WEFT_SHAPE(B, H), cfg->dtype);

    for (int l = 0; l < L; l++) {
        for (int d = 0; d < D; d++) {
            const weft_node *p = &r->params[((size_t)l * D + d) * r->nparams];
            weft_node state[WEFT_CELL_MAX_STATES], next[WEFT_CELL_MAX_STATES];
            int64_t row = (int64_t)l * D + d;
            for (int s = 0; s < S; s++)
                state[s] = in->state0 && in->state0[s] != WEFT_NONE
                               ? weft_reshape(g, weft_slice(g, in->state0[s], 0, row, row + 1),
                                              WEFT_SHAPE(B, H))
                               : zeros;
            for (int64_t k = 0; k < T; k++) {
                int64_t t = d ? T - 1 - k : k;
                weft_graph_set_site(g, l, d, (int)t);
                weft_node o = WEFT_NONE;
                st = cell->ops->step(cell, g, xs[t], p, state, next, &o);
                if (st) goto done;
                if (masks[t] != WEFT_NONE) {
                    for (int s = 0; s < S; s++)
                        next[s] = weft_select(g, masks[t], next[s], state[s]);
                    o = weft_mul(g, o, masks[t]);
                }
                outs[(size_t)d * T + t] = o;
                memcpy(state, next, sizeof(weft_node) * S);
            }
            for (int s = 0; s < S; s++) final[((size_t)l * D + d) * S + s] = state[s];
        }
        weft_graph_set_site(g, l, -1, -1);
        for (int64_t t = 0; t < T; t++) {
            weft_node pair[2] = {outs[t], D == 2 ? outs[T + t] : WEFT_NONE};
            weft_node y = cat(g, pair, D, 1); /* [B, D*H] */
            if (l < L - 1)
                y = weft_train_dropout(g, y, cfg->dropout,
                                       dropout_seed(cfg->dropout_seed, l, t), in->train);
            xs[t] = y;
        }
    }
    weft_graph_set_site(g, -1, -1, -1);

    int64_t DH = weft_node_shape(g, xs[0]).dim[1];
    for (int64_t t = 0; t < T; t++)
        parts[t] = weft_reshape(g, xs[t], cfg->batch_first ? WEFT_SHAPE(B, 1, DH)
                                                           : WEFT_SHAPE(1, B, DH));
    out->output = cat(g, parts, (int)T, taxis);
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < L * D; i++)
            parts[i] = weft_reshape(g, final[(size_t)i * S + s], WEFT_SHAPE(1, B, H));
        out->state_n[s] = cat(g, parts, L * D, 0);
    }
    weft_node top[2] = {final[(size_t)(L - 1) * D * S],
                        D == 2 ? final[((size_t)(L - 1) * D + 1) * S] : WEFT_NONE};
    out->last = cat(g, top, D, 1);
    st = graph_failed(g, "rnn");

done:
    weft_graph_set_site(g, -1, -1, -1);
    free(xs);
    free(masks);
    free(outs);
    free(final);
    free(parts);
    return st;
}

/* A constant [n] of 0, 1, ..., n-1 of dtype t, shaped `s` (numel n). */
static weft_node iota(weft_graph *g, int64_t n, weft_shape s, weft_dtype t) {
    size_t es = weft_dtype_size(t);
    void *buf = malloc((size_t)n * es + 1);
    if (!buf) return WEFT_NONE;
    for (int64_t i = 0; i < n; i++) store(buf, t, i, (double)i);
    weft_node c = weft_const(g, NULL, t, s, buf);
    free(buf);
    return c;
}

weft_node weft_mask_from_lengths(weft_graph *g, weft_node lengths, int64_t T,
                                 int batch_first, weft_dtype t) {
    if (lengths == WEFT_NONE) return WEFT_NONE;
    int64_t B = weft_shape_numel(weft_node_shape(g, lengths));
    weft_node len = weft_cast(g, lengths, t);
    /* step t is valid for sequence b when lengths[b] > t */
    if (batch_first)
        return weft_greater(g, weft_reshape(g, len, WEFT_SHAPE(B, 1)),
                            iota(g, T, WEFT_SHAPE(1, T), t)); /* [B, T] */
    return weft_greater(g, weft_reshape(g, len, WEFT_SHAPE(1, B)),
                        iota(g, T, WEFT_SHAPE(T, 1), t)); /* [T, B] */
}

weft_node weft_mask_from_padding(weft_graph *g, weft_node tokens, int64_t padding_idx,
                                 weft_dtype t) {
    weft_node tf = weft_cast(g, tokens, t);
    /* integers: |token - pad| > 0.5 exactly when token != pad */
    weft_node d = weft_abs(g, weft_sub(g, tf, weft_scalar_like(g, tf, (double)padding_idx)));
    return weft_greater(g, d, weft_scalar_like(g, tf, 0.5));
}

/* --------------------------------------------------------------- layers */

weft_status weft_embedding_new(weft_graph *g, const char *name, int64_t num, int64_t dim,
                               int64_t padding_idx, weft_dtype t, weft_rng *rng,
                               weft_embedding *out) {
    if (num < 1 || dim < 1 || padding_idx < -1 || padding_idx >= num)
        return weft_error(WEFT_ERR_ARG, "embedding %s: bad sizes (%lld x %lld, padding %lld)",
                          name, (long long)num, (long long)dim, (long long)padding_idx);
    out->num = num;
    out->dim = dim;
    out->padding_idx = padding_idx;
    out->weight = weft_param(g, name, t, WEFT_SHAPE(num, dim));
    weft_status s = graph_failed(g, "embedding");
    if (s) return s;
    void *data = weft_param_data(g, out->weight);
    for (int64_t i = 0; i < num * dim; i++)
        store(data, t, i, i / dim == padding_idx ? 0.0 : weft_rng_normal(rng));
    return WEFT_OK;
}

weft_node weft_embedding_apply(weft_graph *g, const weft_embedding *e, weft_node idx) {
    weft_node rows = weft_gather(g, e->weight, idx); /* [..., D] */
    if (e->padding_idx < 0) return rows;
    weft_shape s = weft_node_shape(g, idx);
    if (s.ndim >= WEFT_MAX_DIMS) {
        weft_error(WEFT_ERR_SHAPE, "embedding: indices have too many dims");
        return WEFT_NONE;
    }
    /* masking the looked-up rows also zeroes the padding row's gradient */
    weft_node m = weft_mask_from_padding(g, idx, e->padding_idx, weft_node_dtype(g, e->weight));
    s.dim[s.ndim++] = 1;
    return weft_mul(g, rows, weft_reshape(g, m, s));
}

weft_status weft_linear_new(weft_graph *g, const char *name, int64_t in, int64_t out,
                            int bias, weft_dtype t, weft_rng *rng, weft_linear *l) {
    if (in < 1 || out < 1)
        return weft_error(WEFT_ERR_ARG, "linear %s: bad sizes %lld -> %lld", name,
                          (long long)in, (long long)out);
    char buf[2 * WEFT_NAME_MAX];
    l->in = in;
    l->out = out;
    snprintf(buf, sizeof buf, "%s.weight", name);
    l->weight = weft_param(g, buf, t, WEFT_SHAPE(out, in));
    l->bias = WEFT_NONE;
    if (bias) {
        snprintf(buf, sizeof buf, "%s.bias", name);
        l->bias = weft_param(g, buf, t, WEFT_SHAPE(out));
    }
    weft_status s = graph_failed(g, "linear");
    if (s) return s;
    /* kaiming_uniform(a=sqrt(5)) on [out, in] reduces to U(±1/sqrt(in)) */
    double bound = 1.0 / sqrt((double)in);
    s = weft_init_param(g, l->weight, WEFT_INIT_UNIFORM_INV_SQRT_H, 0, bound, rng);
    if (!s && bias) s = weft_init_param(g, l->bias, WEFT_INIT_UNIFORM_INV_SQRT_H, 0, bound, rng);
    return s;
}

weft_node weft_linear_apply(weft_graph *g, const weft_linear *l, weft_node x) {
    weft_shape s = weft_node_shape(g, x);
    if (x == WEFT_NONE || s.ndim < 1) return weft_matmul(g, x, l->weight, 0, 1);
    int64_t rows = weft_shape_numel(s) / (s.dim[s.ndim - 1] ? s.dim[s.ndim - 1] : 1);
    weft_node x2 = s.ndim == 2 ? x : weft_reshape(g, x, WEFT_SHAPE(rows, s.dim[s.ndim - 1]));
    weft_node y = weft_matmul(g, x2, l->weight, 0, 1); /* [rows, out] */
    if (l->bias != WEFT_NONE) y = weft_add(g, y, l->bias);
    if (s.ndim == 2) return y;
    s.dim[s.ndim - 1] = l->out;
    return weft_reshape(g, y, s);
}

weft_node weft_train_dropout(weft_graph *g, weft_node x, double p, uint64_t seed,
                             weft_node train) {
    if (p <= 0 || train == WEFT_NONE) return x;
    weft_node m = weft_dropout_mask(g, weft_node_shape(g, x), weft_node_dtype(g, x), p, seed);
    /* evaluation: multiply by 1 instead of the mask */
    m = weft_select(g, train, m, weft_scalar_like(g, x, 1.0));
    return weft_mul(g, x, m);
}

/* [..., C] logits and [...] labels as [N, C] and [N] (many-to-many). */
static void flatten_classes(weft_graph *g, weft_node *logits, weft_node *labels) {
    weft_shape s = weft_node_shape(g, *logits);
    if (*logits == WEFT_NONE || s.ndim <= 2) return;
    int64_t C = s.dim[s.ndim - 1], N = weft_shape_numel(s) / (C ? C : 1);
    *logits = weft_reshape(g, *logits, WEFT_SHAPE(N, C));
    *labels = weft_reshape(g, *labels, WEFT_SHAPE(N));
}

weft_node weft_loss_cross_entropy(weft_graph *g, weft_node logits, weft_node labels) {
    flatten_classes(g, &logits, &labels);
    return weft_cross_entropy(g, logits, labels);
}

/* softplus(z) = log(1 + exp(z)) as r + log(exp(z - r) + exp(-r)), r = relu(z):
 * no exponent is positive, and the gradient is exactly sigmoid(z) even at
 * z = 0 (the usual max(z,0) + log(1 + exp(-|z|)) form gives 0 there). */
static weft_node softplus(weft_graph *g, weft_node z) {
    weft_node r = weft_relu(g, z);
    weft_node e = weft_add(g, weft_exp(g, weft_sub(g, z, r)), weft_exp(g, weft_neg(g, r)));
    return weft_add(g, r, weft_log(g, e));
}

/* -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] = softplus(x) - x y */
weft_node weft_loss_bce_with_logits(weft_graph *g, weft_node x, weft_node y) {
    weft_node l = weft_sub(g, softplus(g, x), weft_mul(g, x, y));
    return weft_mean(g, l, NULL, 0, 0);
}

weft_node weft_loss_mse(weft_graph *g, weft_node pred, weft_node target) {
    return weft_mean(g, weft_square(g, weft_sub(g, pred, target)), NULL, 0, 0);
}

weft_node weft_accuracy(weft_graph *g, weft_node logits, weft_node labels) {
    flatten_classes(g, &logits, &labels);
    weft_shape s = weft_node_shape(g, logits);
    if (logits == WEFT_NONE || s.ndim != 2) {
        if (logits != WEFT_NONE) weft_error(WEFT_ERR_SHAPE, "accuracy: logits must be [N, C]");
        return WEFT_NONE;
    }
    weft_node lg = weft_stop_gradient(g, logits);
    int ax = 1;
    weft_node oh = weft_one_hot(g, labels, s.dim[1], weft_node_dtype(g, logits));
    /* the label's logit, exactly (the other terms are 0 * x = 0) */
    weft_node picked = weft_sum(g, weft_mul(g, oh, lg), &ax, 1, 0); /* [N] */
    weft_node best = weft_reduce_max(g, lg, &ax, 1, 0);             /* [N] */
    weft_node wrong = weft_greater(g, best, picked);
    return weft_sub(g, weft_scalar_like(g, lg, 1.0), weft_mean(g, wrong, NULL, 0, 0));
}

/* ------------------------------------------------------------- weights */

weft_status weft_params_load(weft_graph *g, const weft_st_file *f, const char *label,
                             int strict) {
    int n = weft_graph_params(g, NULL, 0);
    weft_node *ps = malloc(sizeof *ps * (size_t)(n > 0 ? n : 1));
    if (!ps) return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", label);
    weft_graph_params(g, ps, n);
    weft_status s = WEFT_OK;
    char b1[64];
    for (int i = 0; i < n && !s; i++) {
        const char *name = weft_node_name(g, ps[i]);
        weft_shape shape = weft_node_shape(g, ps[i]);
        if (!weft_st_find(f, name)) {
            s = weft_error(WEFT_ERR_NOT_FOUND, "%s: missing tensor '%s' (expected shape %s)",
                           label, name, weft_shape_str(shape, b1, sizeof b1));
            break;
        }
        s = weft_st_get(f, name, weft_node_dtype(g, ps[i]), shape, weft_param_data(g, ps[i]));
    }
    for (int i = 0; strict && !s && i < weft_st_count(f); i++) {
        const char *name = weft_st_at(f, i)->name;
        weft_node p = weft_graph_find(g, name);
        if (p == WEFT_NONE || weft_node_kind_of(g, p) != WEFT_NODE_PARAM)
            s = weft_error(WEFT_ERR_NOT_FOUND, "%s: tensor '%s' is not a parameter of the model",
                           label, name);
    }
    free(ps);
    return s;
}

weft_status weft_params_save(weft_graph *g, weft_st_writer *w) {
    int n = weft_graph_params(g, NULL, 0);
    weft_node *ps = malloc(sizeof *ps * (size_t)(n > 0 ? n : 1));
    if (!ps) return weft_error(WEFT_ERR_NOMEM, "params: out of memory");
    weft_graph_params(g, ps, n);
    weft_status s = WEFT_OK;
    for (int i = 0; i < n && !s; i++) {
        weft_tensor t;
        contiguous_view(&t, weft_param_data(g, ps[i]), weft_node_dtype(g, ps[i]),
                        weft_node_shape(g, ps[i]));
        s = weft_st_writer_add_tensor(w, weft_node_name(g, ps[i]), &t);
    }
    free(ps);
    return s;
}

/* ----------------------------------------------------------- generation */

int64_t weft_sample_logits(const weft_tensor *row, double temperature, weft_rng *rng) {
    int64_t n = row->shape.ndim ? row->shape.dim[row->shape.ndim - 1] : 1;
    int64_t best = 0;
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = weft_tensor_get(row, i);
        if (v > mx) mx = v, best = i;
    }
    if (temperature <= 0) return best;
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += exp((weft_tensor_get(row, i) - mx) / temperature);
    double u = weft_rng_uniform(rng) * total;
    for (int64_t i = 0; i < n; i++) {
        u -= exp((weft_tensor_get(row, i) - mx) / temperature);
        if (u < 0) return i;
    }
    return n - 1;
}
