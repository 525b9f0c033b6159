/* weft — the built-in recurrent cells, written from primitives.
 *
 * All of the cell math of the built-ins lives in this file, so that moving
 * them to .cell files in cells/ later touches nothing else.  Parameter names and
 * layouts are PyTorch's nn.RNN / nn.LSTM / nn.GRU:
 *   weight_ih [G*H, I], weight_hh [G*H, H], bias_ih [G*H], bias_hh [G*H]
 * with the G gate blocks stacked along the rows in PyTorch's order
 * (LSTM i, f, g, o; GRU r, z, n).  x is [B, I], so x W^T is
 * weft_matmul(g, x, W, 0, 1). */
#include <stdlib.h>
#include <string.h>

#include "cells_builtin.h"

typedef enum builtin_kind {
    CELL_RNN_TANH,
    CELL_RNN_RELU,
    CELL_LSTM,
    CELL_GRU,           /* n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) */
    CELL_GRU_RESET_BEFORE /* n = tanh(W_in x + b_in + (r * h) W_hn^T + b_hn) */
} builtin_kind;

static const struct builtin {
    const char *name;
    builtin_kind kind;
    int gates;
    int states;
} builtins[] = {
    {"rnn_tanh", CELL_RNN_TANH, 1, 1},
    {"rnn_relu", CELL_RNN_RELU, 1, 1},
    {"lstm", CELL_LSTM, 4, 2},
    {"gru", CELL_GRU, 3, 1},
    {"gru_reset_before", CELL_GRU_RESET_BEFORE, 3, 1},
};
#define NBUILTIN ((int)(sizeof builtins / sizeof builtins[0]))

enum { P_WIH, P_WHH, P_BIH, P_BHH, NPARAM };

static int builtin_params(const weft_cell *c, int64_t I, int64_t H,
                          weft_cell_param *out) {
    static const char *const names[NPARAM] = {"weight_ih", "weight_hh", "bias_ih",
                                              "bias_hh"};
    if (I <= 0 || H <= 0) {
        weft_error(WEFT_ERR_ARG, "cell %s: input size %lld and hidden size %lld must be > 0",
                   c->name, (long long)I, (long long)H);
        return -1;
    }
    int64_t GH = (int64_t)c->gates * H;
    for (int i = 0; i < NPARAM; i++) {
        memset(&out[i], 0, sizeof out[i]);
        snprintf(out[i].name, sizeof out[i].name, "%s", names[i]);
        out[i].init = WEFT_INIT_UNIFORM_INV_SQRT_H; /* PyTorch: every tensor */
        out[i].is_bias = i >= P_BIH;
    }
    out[P_WIH].shape = WEFT_SHAPE(GH, I);
    out[P_WHH].shape = WEFT_SHAPE(GH, H);
    out[P_BIH].shape = WEFT_SHAPE(GH);
    out[P_BHH].shape = WEFT_SHAPE(GH);
    return NPARAM;
}

/* x W^T + b; b may be WEFT_NONE (a layer built without biases). */
static weft_node affine(weft_graph *g, weft_node x, weft_node w, weft_node b) {
    weft_node y = weft_matmul(g, x, w, 0, 1);
    return b == WEFT_NONE ? y : weft_add(g, y, b);
}

/* Rows [lo*H, hi*H) of a stacked weight or bias (gate blocks lo..hi-1). */
static weft_node gate_rows(weft_graph *g, weft_node p, int64_t H, int lo, int hi) {
    if (p == WEFT_NONE) return WEFT_NONE;
    return weft_slice(g, p, 0, lo * H, hi * H);
}

static weft_status builtin_step(const weft_cell *c, weft_graph *g, weft_node x,
                                const weft_node *p, const weft_node *state,
                                weft_node *next, weft_node *output) {
    const struct builtin *b = c->impl;
    weft_node h = state[0];
    int64_t H = weft_node_shape(g, h).dim[1];
    weft_node gi = affine(g, x, p[P_WIH], p[P_BIH]); /* [B, G*H] */

    switch (b->kind) {
    case CELL_RNN_TANH:
    case CELL_RNN_RELU: {
        weft_node pre = weft_add(g, gi, affine(g, h, p[P_WHH], p[P_BHH]));
        next[0] = b->kind == CELL_RNN_TANH ? weft_tanh(g, pre) : weft_relu(g, pre);
        break;
    }
    case CELL_LSTM: {
        weft_node gates = weft_add(g, gi, affine(g, h, p[P_WHH], p[P_BHH])); /* [B, 4H] */
        weft_node q[4];
        weft_status s = weft_split(g, gates, 1, 4, q);
        if (s) return s;
        weft_node i = weft_sigmoid(g, q[0]), f = weft_sigmoid(g, q[1]);
        weft_node gg = weft_tanh(g, q[2]), o = weft_sigmoid(g, q[3]);
        weft_node cn = weft_add(g, weft_mul(g, f, state[1]), weft_mul(g, i, gg));
        next[1] = cn;
        next[0] = weft_mul(g, o, weft_tanh(g, cn));
        break;
    }
    case CELL_GRU:
    case CELL_GRU_RESET_BEFORE: {
        weft_node xi[3], hr, hz, n;
        weft_status s = weft_split(g, gi, 1, 3, xi);
        if (s) return s;
        if (b->kind == CELL_GRU) {
            weft_node gh = affine(g, h, p[P_WHH], p[P_BHH]); /* [B, 3H] */
            weft_node hh[3];
            if ((s = weft_split(g, gh, 1, 3, hh))) return s;
            hr = hh[0];
            hz = hh[1];
            n = hh[2]; /* W_hn h + b_hn, reset applied below */
        } else {
            weft_node ghrz = affine(g, h, gate_rows(g, p[P_WHH], H, 0, 2),
                                    gate_rows(g, p[P_BHH], H, 0, 2)); /* [B, 2H] */
            weft_node hh[2];
            if ((s = weft_split(g, ghrz, 1, 2, hh))) return s;
            hr = hh[0];
            hz = hh[1];
            n = WEFT_NONE;
        }
        weft_node r = weft_sigmoid(g, weft_add(g, xi[0], hr));
        weft_node z = weft_sigmoid(g, weft_add(g, xi[1], hz));
        if (b->kind == CELL_GRU)
            n = weft_mul(g, r, n);
        else
            n = affine(g, weft_mul(g, r, h), gate_rows(g, p[P_WHH], H, 2, 3),
                       gate_rows(g, p[P_BHH], H, 2, 3));
        n = weft_tanh(g, weft_add(g, xi[2], n));
        /* (1 - z) * n + z * h, written with one multiply */
        next[0] = weft_add(g, n, weft_mul(g, z, weft_sub(g, h, n)));
        break;
    }
    }
    *output = next[0];
    weft_status s = weft_graph_status(g);
    return s ? weft_error(s, "cell %s: %s", c->name, weft_graph_error(g)) : WEFT_OK;
}

static void builtin_free(weft_cell *c) { free(c); }

static const weft_cell_ops builtin_ops = {builtin_params, builtin_step, builtin_free};

weft_cell *weft_cell_builtin(const char *name) {
    for (int i = 0; i < NBUILTIN; i++) {
        if (strcmp(name, builtins[i].name)) continue;
        weft_cell *c = calloc(1, sizeof *c);
        if (!c) {
            weft_error(WEFT_ERR_NOMEM, "cell %s: out of memory", name);
            return NULL;
        }
        c->ops = &builtin_ops;
        snprintf(c->name, sizeof c->name, "%s", name);
        c->num_states = builtins[i].states;
        snprintf(c->state_names[0], WEFT_NAME_MAX, "h");
        if (c->num_states > 1) snprintf(c->state_names[1], WEFT_NAME_MAX, "c");
        c->gates = builtins[i].gates;
        c->impl = (void *)&builtins[i];
        return c;
    }
    return NULL;
}

const char *const *weft_cell_builtin_names(void) {
    static const char *names[NBUILTIN + 1];
    for (int i = 0; i < NBUILTIN; i++) names[i] = builtins[i].name;
    names[NBUILTIN] = NULL;
    return names;
}
