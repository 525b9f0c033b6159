/* weft — the parity run behind `weft run` and the PyTorch fixture tests:
 * tensors in from safetensors files, model built and differentiated, tensors
 * out into a writer.  Tensor names follow tests/fixtures/README.md. */
#include <stdlib.h>
#include <string.h>

#include "weft/rnn.h"

#define MAX_IO 64

typedef struct run {
    weft_graph *g;
    const weft_st_file *x;
    const char *x_label;
    weft_dtype dtype;
    int nfeed;
    struct { weft_node node; void *data; size_t bytes; } feed[MAX_IO];
    int nout;
    struct { weft_node node; char name[2 * WEFT_NAME_MAX + 8]; } out[MAX_IO];
} run;

static int is_float_st(weft_st_dtype t) {
    return t == WEFT_ST_F16 || t == WEFT_ST_BF16 || t == WEFT_ST_F32 || t == WEFT_ST_F64;
}

/* An input node fed from X's tensor `name` with `shape`; *node = WEFT_NONE
 * when X lacks it and it is optional. */
static weft_status take(run *r, const char *name, weft_dtype t, weft_shape shape,
                        int required, weft_node *node) {
    *node = WEFT_NONE;
    const weft_st_tensor *st = weft_st_find(r->x, name);
    if (!st)
        return required ? weft_error(WEFT_ERR_NOT_FOUND, "%s: missing tensor '%s'", r->x_label,
                                     name)
                        : WEFT_OK;
    if (t != WEFT_I32) {
        weft_st_dtype want = t == WEFT_F64 ? WEFT_ST_F64 : WEFT_ST_F32;
        if (st->dtype != want)
            return weft_error(WEFT_ERR_DTYPE, "%s: tensor '%s' is %s but the run is %s",
                              r->x_label, name, weft_st_dtype_name(st->dtype),
                              weft_dtype_name(t));
    } else if (is_float_st(st->dtype)) {
        return weft_error(WEFT_ERR_DTYPE, "%s: tensor '%s' must be integer, not %s",
                          r->x_label, name, weft_st_dtype_name(st->dtype));
    }
    if (r->nfeed == MAX_IO) return weft_error(WEFT_ERR_ARG, "%s: too many tensors", r->x_label);
    size_t bytes = (size_t)weft_shape_numel(shape) * weft_dtype_size(t);
    void *buf = malloc(bytes ? bytes : 1);
    if (!buf) return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", r->x_label);
    weft_status s = weft_st_get(r->x, name, t, shape, buf); /* names file, tensor, shapes */
    if (s) {
        free(buf);
        return s;
    }
    r->feed[r->nfeed].data = buf;
    r->feed[r->nfeed].bytes = bytes;
    r->feed[r->nfeed].node = *node = weft_input(r->g, name, t, shape);
    r->nfeed++;
    return WEFT_OK;
}

static void emit(run *r, weft_node n, const char *fmt, const char *a, const char *b) {
    if (r->nout == MAX_IO) return;
    r->out[r->nout].node = n;
    snprintf(r->out[r->nout].name, sizeof r->out[r->nout].name, fmt, a, b);
    r->nout++;
}

static weft_status check_lengths(const run *r, const int32_t *len, int64_t B, int64_t T) {
    for (int64_t b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > T)
            return weft_error(WEFT_ERR_ARG, "%s: tensor 'lengths': lengths[%lld] = %d is "
                              "outside 1..%lld", r->x_label, (long long)b, (int)len[b],
                              (long long)T);
    return WEFT_OK;
}

weft_status weft_rnn_run_files(const weft_cell *cell, const weft_rnn_config *cfg_in,
                               const weft_st_file *w, const char *w_label,
                               const weft_st_file *x, const char *x_label,
                               weft_st_writer *out) {
    run r;
    memset(&r, 0, sizeof r);
    r.x = x;
    r.x_label = x_label;
    weft_rnn_config cfg = *cfg_in;
    cfg.batch_first = 0;
    cfg.dropout = 0;
    r.dtype = cfg.dtype;
    r.g = weft_graph_new();
    if (!r.g) return weft_error(WEFT_ERR_NOMEM, "run: out of memory");
    weft_graph *g = r.g;
    weft_rnn *model = NULL;
    weft_exec *e = NULL;
    weft_node *wrt = NULL, *grads = NULL;
    const int S = cell->num_states;
    char b1[64];

    weft_status s = WEFT_OK;
    const weft_st_tensor *xt = weft_st_find(x, "input");
    if (!xt) {
        s = weft_error(WEFT_ERR_NOT_FOUND, "%s: missing tensor 'input'", x_label);
        goto done;
    }
    if (xt->ndim != 3 || xt->shape[2] != cfg.input_size) {
        weft_shape got = weft_shape_make(xt->ndim <= WEFT_MAX_DIMS ? xt->ndim : 0, xt->shape);
        s = weft_error(WEFT_ERR_SHAPE, "%s: tensor 'input' has shape %s, expected [T, B, %lld]",
                       x_label, weft_shape_str(got, b1, sizeof b1), (long long)cfg.input_size);
        goto done;
    }
    const int64_t T = xt->shape[0], B = xt->shape[1], H = cfg.hidden_size;
    const int64_t LD = (int64_t)cfg.num_layers * (cfg.bidirectional ? 2 : 1);
    weft_shape state_shape = WEFT_SHAPE(LD, B, H);

    if ((s = weft_rnn_new(g, cell, &cfg, &model))) goto done;
    if ((s = weft_params_load(g, w, w_label, 1))) goto done;

    weft_node xin, state0[WEFT_CELL_MAX_STATES], lengths;
    if ((s = take(&r, "input", cfg.dtype, WEFT_SHAPE(T, B, cfg.input_size), 1, &xin))) goto done;
    for (int k = 0; k < S; k++) {
        char name[WEFT_NAME_MAX + 4];
        snprintf(name, sizeof name, "%s0", cell->state_names[k]);
        if ((s = take(&r, name, cfg.dtype, state_shape, 0, &state0[k]))) goto done;
    }
    if ((s = take(&r, "lengths", WEFT_I32, WEFT_SHAPE(B), 0, &lengths))) goto done;
    if (lengths != WEFT_NONE && (s = check_lengths(&r, r.feed[r.nfeed - 1].data, B, T)))
        goto done;

    weft_rnn_inputs in = {xin, state0, weft_mask_from_lengths(g, lengths, T, 0, cfg.dtype),
                          WEFT_NONE};
    weft_rnn_result res;
    if ((s = weft_rnn_apply(g, model, &in, &res))) goto done;
    emit(&r, res.output, "output%s%s", "", "");
    for (int k = 0; k < S; k++) emit(&r, res.state_n[k], "%s_n%s", cell->state_names[k], "");

    weft_node gout;
    weft_shape out_shape = weft_node_shape(g, res.output);
    if ((s = take(&r, "grad_output", cfg.dtype, out_shape, 0, &gout))) goto done;
    if (gout != WEFT_NONE) {
        weft_node loss = weft_sum(g, weft_mul(g, res.output, gout), NULL, 0, 0);
        for (int k = 0; k < S; k++) {
            char name[WEFT_NAME_MAX + 16];
            weft_node gs;
            snprintf(name, sizeof name, "grad_%s_n", cell->state_names[k]);
            if ((s = take(&r, name, cfg.dtype, state_shape, 0, &gs))) goto done;
            if (gs != WEFT_NONE)
                loss = weft_add(g, loss, weft_sum(g, weft_mul(g, res.state_n[k], gs), NULL, 0, 0));
        }
        int np = weft_graph_params(g, NULL, 0);
        wrt = malloc(sizeof *wrt * (size_t)(np + 1 + S));
        grads = malloc(sizeof *grads * (size_t)(np + 1 + S));
        if (!wrt || !grads) {
            s = weft_error(WEFT_ERR_NOMEM, "run: out of memory");
            goto done;
        }
        int n = 0;
        wrt[n++] = xin;
        for (int k = 0; k < S; k++)
            if (state0[k] != WEFT_NONE) wrt[n++] = state0[k];
        n += weft_graph_params(g, wrt + n, np);
        if ((s = weft_graph_status(g)) ||
            (s = weft_grad(g, loss, wrt, n, grads))) {
            s = weft_error(s, "run: building the gradient: %s", weft_last_error());
            goto done;
        }
        for (int i = 0; i < n; i++)
            emit(&r, grads[i], "grad.%s%s", weft_node_name(g, wrt[i]), "");
    }
    if ((s = weft_graph_status(g))) {
        s = weft_error(s, "run: %s", weft_graph_error(g));
        goto done;
    }
    if (r.nout == MAX_IO) {
        s = weft_error(WEFT_ERR_ARG, "run: too many outputs");
        goto done;
    }

    weft_node outs[MAX_IO];
    for (int i = 0; i < r.nout; i++) outs[i] = r.out[i].node;
    e = weft_exec_new(g, outs, r.nout);
    if (!e) {
        s = weft_error(WEFT_ERR_GRAPH, "run: cannot plan the graph: %s", weft_last_error());
        goto done;
    }
    for (int i = 0; i < r.nfeed && !s; i++)
        s = weft_exec_feed(e, r.feed[i].node, r.feed[i].data, r.feed[i].bytes);
    if (s || (s = weft_exec_run(e))) goto done;
    for (int i = 0; i < r.nout && !s; i++) {
        weft_tensor t;
        if (!(s = weft_exec_value(e, r.out[i].node, &t)))
            s = weft_st_writer_add_tensor(out, r.out[i].name, &t);
    }

done:
    weft_exec_free(e);
    for (int i = 0; i < r.nfeed; i++) free(r.feed[i].data);
    free(wrt);
    free(grads);
    weft_rnn_free(model);
    weft_graph_free(g);
    return s;
}
