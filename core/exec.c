/* The reference executor: sequential, every computed node its own buffer
 * (views alias their input's).  Obviously right; the oracle every other
 * executor is checked against. */
#include <math.h>
#include <string.h>

#include "graph_internal.h"
#include "op.h"

struct weft_exec {
    weft_graph *g;
    int n;                 /* nodes considered: 0 .. n-1 */
    uint8_t *needed, *fed;
    weft_tensor *val;
    void **owned;          /* buffers owned by the executor */
    uint64_t counter;
};

void weft_exec_free(weft_exec *e) {
    if (!e) return;
    for (int i = 0; i < e->n; i++) free(e->owned[i]);
    free(e->owned);
    free(e->val);
    free(e->needed);
    free(e->fed);
    free(e);
}

weft_exec *weft_exec_new(weft_graph *g, const weft_node *outputs, int n) {
    if (g->status) {
        weft_error(g->status, "exec: the graph has a build error: %s", g->error);
        return NULL;
    }
    int N = 0;
    for (int k = 0; k < n; k++) {
        if (outputs[k] < 0 || outputs[k] >= g->n) {
            weft_error(WEFT_ERR_ARG, "exec: output %d (%d) is not a node", k, (int)outputs[k]);
            return NULL;
        }
        if (outputs[k] + 1 > N) N = outputs[k] + 1;
    }
    weft_exec *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->g = g;
    e->n = N;
    e->needed = calloc((size_t)N + 1, 1);
    e->fed = calloc((size_t)N + 1, 1);
    e->val = calloc((size_t)N + 1, sizeof *e->val);
    e->owned = calloc((size_t)N + 1, sizeof *e->owned);
    if (!e->needed || !e->fed || !e->val || !e->owned) goto oom;
    for (int k = 0; k < n; k++) e->needed[outputs[k]] = 1;
    for (int i = N - 1; i >= 0; i--) {
        const weft_node_rec *r = &g->nodes[i];
        if (!e->needed[i]) continue;
        for (int j = 0; j < r->n_in; j++) e->needed[g->edges[r->in_off + j]] = 1;
    }
    /* Leaves point at graph storage; inputs and non-view ops get buffers. */
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (!e->needed[i]) continue;
        weft_tensor *t = &e->val[i];
        t->dtype = r->dtype;
        t->shape = r->shape;
        weft_tensor_contiguous_strides(&r->shape, t->stride);
        if (r->kind == WEFT_NODE_PARAM || r->kind == WEFT_NODE_CONST) {
            t->data = r->data;
        } else if (r->kind == WEFT_NODE_INPUT || !(weft_ops[r->op].flags & WEFT_OPF_VIEW)) {
            size_t bytes = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
            if (!(e->owned[i] = calloc(1, bytes ? bytes : 1))) goto oom;
            t->data = e->owned[i];
        }
    }
    return e;
oom:
    weft_exec_free(e);
    weft_error(WEFT_ERR_NOMEM, "exec: out of memory");
    return NULL;
}

static weft_status node_ok(const weft_exec *e, weft_node n, const char *what) {
    if (n < 0 || n >= e->n || !e->needed[n])
        return weft_error(WEFT_ERR_ARG, "%s: node %d is not computed by this executor", what, (int)n);
    return WEFT_OK;
}

int weft_exec_uses(const weft_exec *e, weft_node n) { return n >= 0 && n < e->n && e->needed[n]; }

weft_status weft_exec_feed(weft_exec *e, weft_node input, const void *data, size_t bytes) {
    char d[160];
    weft_status s = node_ok(e, input, "feed");
    if (s) return s;
    const weft_node_rec *r = &e->g->nodes[input];
    if (r->kind != WEFT_NODE_INPUT)
        return weft_error(WEFT_ERR_ARG, "feed: %s is not an input", weft_node_desc(e->g, input, d, sizeof d));
    size_t want = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
    if (bytes != want)
        return weft_error(WEFT_ERR_SHAPE, "feed: %s takes %zu bytes, given %zu",
                          weft_node_desc(e->g, input, d, sizeof d), want, bytes);
    memcpy(e->owned[input], data, bytes);
    e->fed[input] = 1;
    return WEFT_OK;
}

weft_status weft_exec_run(weft_exec *e) {
    char d[160];
    weft_graph *g = e->g;
    weft_kctx ctx = {.counter = e->counter, .g = g};
    weft_tensor ins_small[8];
    for (int i = 0; i < e->n; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (!e->needed[i]) continue;
        if (r->kind == WEFT_NODE_INPUT) {
            if (!e->fed[i])
                return weft_error(WEFT_ERR_ARG, "run: %s was not fed", weft_node_desc(g, i, d, sizeof d));
            continue;
        }
        if (r->kind != WEFT_NODE_OP) continue;
        const weft_op_def *def = &weft_ops[r->op];
        weft_tensor *ins = r->n_in <= 8 ? ins_small : malloc((size_t)r->n_in * sizeof *ins);
        if (!ins) return weft_error(WEFT_ERR_NOMEM, "run: out of memory");
        for (int j = 0; j < r->n_in; j++) ins[j] = e->val[g->edges[r->in_off + j]];
        weft_status s = WEFT_OK;
        if (!(def->flags & WEFT_OPF_VIEW) || !def->view(&e->val[i], ins, &r->attr)) {
            if (!e->owned[i]) { /* a view op that must copy this time */
                size_t bytes = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
                if (!(e->owned[i] = malloc(bytes ? bytes : 1))) s = weft_error(WEFT_ERR_NOMEM, "run: out of memory");
            }
            if (s == WEFT_OK) {
                weft_tensor *t = &e->val[i];
                *t = (weft_tensor){e->owned[i], r->dtype, r->shape, {0}};
                weft_tensor_contiguous_strides(&r->shape, t->stride);
                s = def->kernel(t, ins, r->n_in, &r->attr, &ctx);
            }
        }
        if (ins != ins_small) free(ins);
        if (s != WEFT_OK)
            return weft_error(s, "run: node %d (%s): %s", i, weft_node_desc(g, i, d, sizeof d), weft_last_error());
    }
    e->counter++;
    return WEFT_OK;
}

weft_status weft_exec_value(weft_exec *e, weft_node n, weft_tensor *out) {
    weft_status s = node_ok(e, n, "value");
    if (s) return s;
    *out = e->val[n];
    return WEFT_OK;
}

weft_status weft_exec_read(weft_exec *e, weft_node n, void *dst, size_t bytes) {
    weft_status s = node_ok(e, n, "read");
    if (s) return s;
    const weft_tensor *t = &e->val[n];
    size_t want = (size_t)weft_shape_numel(t->shape) * weft_dtype_size(t->dtype);
    if (bytes != want) return weft_error(WEFT_ERR_SHAPE, "read: node %d has %zu bytes, %zu asked", (int)n, want, bytes);
    if (!t->data) return weft_error(WEFT_ERR_ARG, "read: node %d has not been computed", (int)n);
    weft_tensor_copy_to(t, dst);
    return WEFT_OK;
}

uint64_t weft_exec_counter(const weft_exec *e) { return e->counter; }
void weft_exec_set_counter(weft_exec *e, uint64_t c) { e->counter = c; }
