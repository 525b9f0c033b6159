/* The graph: an arena of nodes referred to by index, with sticky errors. */
#include <stdarg.h>
#include <string.h>

#include "graph_internal.h"
#include "op.h"

weft_graph *weft_graph_new(void) {
    weft_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->site = (weft_site){-1, -1, -1};
    g->backward_of = WEFT_NONE;
    return g;
}

/* Free what the nodes own and forget them, keeping the arrays. */
static void drop_nodes(weft_graph *g) {
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].note);
        if (!g->nodes[i].borrowed) free(g->nodes[i].data);
    }
    free(g->error);
    g->error = NULL;
    g->n = g->n_edges = g->n_progs = 0;
}

void weft_graph_free(weft_graph *g) {
    if (!g) return;
    drop_nodes(g);
    free(g->nodes);
    free(g->edges);
    free(g->progs);
    free(g);
}

void weft_graph_clear(weft_graph *g) {
    drop_nodes(g);
    g->status = WEFT_OK;
    g->site = (weft_site){-1, -1, -1};
    g->in_backward = 0;
    g->backward_of = WEFT_NONE;
}

weft_status weft_graph_reserve(weft_graph *g, int nodes, int edges) {
    if (nodes > g->cap) {
        weft_node_rec *p = realloc(g->nodes, (size_t)nodes * sizeof *p);
        if (!p) return weft_error(WEFT_ERR_NOMEM, "graph: out of memory for %d nodes", nodes);
        g->nodes = p;
        g->cap = nodes;
    }
    if (edges > g->cap_edges) {
        int32_t *p = realloc(g->edges, (size_t)edges * sizeof *p);
        if (!p) return weft_error(WEFT_ERR_NOMEM, "graph: out of memory for %d edges", edges);
        g->edges = p;
        g->cap_edges = edges;
    }
    return WEFT_OK;
}

weft_status weft_graph_status(const weft_graph *g) { return g->status; }
const char *weft_graph_error(const weft_graph *g) { return g->error ? g->error : ""; }
int weft_graph_node_count(const weft_graph *g) { return g->n; }

weft_node weft_graph_fail(weft_graph *g, weft_status s, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    weft_error(s, "%s", buf);
    if (g->status == WEFT_OK) {
        g->status = s;
        g->error = strdup(buf);
    }
    return WEFT_NONE;
}

static int valid(const weft_graph *g, weft_node n) { return n >= 0 && n < g->n; }

char *weft_node_desc(const weft_graph *g, weft_node n, char *buf, size_t cap) {
    char sh[96];
    if (!valid(g, n)) {
        snprintf(buf, cap, "<invalid node %d>", (int)n);
        return buf;
    }
    const weft_node_rec *r = &g->nodes[n];
    const char *what = r->kind == WEFT_NODE_OP ? weft_ops[r->op].name
                       : r->kind == WEFT_NODE_PARAM ? "param"
                       : r->kind == WEFT_NODE_INPUT ? "input" : "const";
    weft_shape_str(r->shape, sh, sizeof sh);
    if (r->name)
        snprintf(buf, cap, "%s '%s' %s %s", what, r->name, sh, weft_dtype_name(r->dtype));
    else
        snprintf(buf, cap, "%s #%d %s %s", what, (int)n, sh, weft_dtype_name(r->dtype));
    return buf;
}

static weft_node push(weft_graph *g, const weft_node_rec *rec, const weft_node *in, int n_in) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 256;
        weft_node_rec *p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) return weft_graph_fail(g, WEFT_ERR_NOMEM, "graph: out of memory at %d nodes", g->n);
        g->nodes = p;
        g->cap = cap;
    }
    if (g->n_edges + n_in > g->cap_edges) {
        int cap = g->cap_edges ? 2 * g->cap_edges : 512;
        while (cap < g->n_edges + n_in) cap *= 2;
        int32_t *p = realloc(g->edges, (size_t)cap * sizeof *p);
        if (!p) return weft_graph_fail(g, WEFT_ERR_NOMEM, "graph: out of memory");
        g->edges = p;
        g->cap_edges = cap;
    }
    weft_node id = g->n++;
    g->nodes[id] = *rec;
    g->nodes[id].in_off = g->n_edges;
    g->nodes[id].n_in = n_in;
    g->nodes[id].site = g->site;
    g->nodes[id].backward = (uint8_t)g->in_backward;
    g->nodes[id].grad_of = g->in_backward ? g->backward_of : WEFT_NONE;
    for (int i = 0; i < n_in; i++) g->edges[g->n_edges++] = in[i];
    return id;
}

static int shape_ok(weft_graph *g, weft_shape s, const char *what, const char *name) {
    if (s.ndim < 0 || s.ndim > WEFT_MAX_DIMS) {
        weft_graph_fail(g, WEFT_ERR_SHAPE, "%s '%s': %d dimensions (at most %d)", what,
                        name ? name : "?", s.ndim, WEFT_MAX_DIMS);
        return 0;
    }
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (s.dim[i] <= 0 || __builtin_mul_overflow(n, s.dim[i], &n) || n > ((int64_t)1 << 40)) {
            char sh[96];
            weft_graph_fail(g, WEFT_ERR_SHAPE, "%s '%s': invalid shape %s", what,
                            name ? name : "?", weft_shape_str(s, sh, sizeof sh));
            return 0;
        }
    }
    return 1;
}

static weft_node leaf(weft_graph *g, weft_node_kind kind, const char *name, weft_dtype t,
                      weft_shape s, const void *data) {
    static const char *const what[] = {"input", "param", "const", "op"};
    if ((unsigned)t > WEFT_I32)
        return weft_graph_fail(g, WEFT_ERR_DTYPE, "%s '%s': unknown dtype %d", what[kind],
                               name ? name : "?", (int)t);
    if (!shape_ok(g, s, what[kind], name)) return WEFT_NONE;
    if (kind == WEFT_NODE_PARAM) {
        if (!name || !*name) return weft_graph_fail(g, WEFT_ERR_ARG, "param: a parameter needs a name");
        if (t == WEFT_I32)
            return weft_graph_fail(g, WEFT_ERR_DTYPE, "param '%s': parameters must be f32 or f64", name);
        if (weft_graph_find(g, name) != WEFT_NONE)
            return weft_graph_fail(g, WEFT_ERR_ARG, "param '%s': the name is already used", name);
    }
    weft_node_rec r = {0};
    r.kind = kind;
    r.dtype = t;
    r.shape = s;
    if (name && !(r.name = strdup(name))) return weft_graph_fail(g, WEFT_ERR_NOMEM, "out of memory");
    if (kind == WEFT_NODE_PARAM || kind == WEFT_NODE_CONST) {
        size_t bytes = (size_t)weft_shape_numel(s) * weft_dtype_size(t);
        r.data = calloc(1, bytes ? bytes : 1);
        if (!r.data) {
            free(r.name);
            return weft_graph_fail(g, WEFT_ERR_NOMEM, "out of memory for '%s'", name ? name : "?");
        }
        if (data) memcpy(r.data, data, bytes);
    }
    weft_node id = push(g, &r, NULL, 0);
    if (id == WEFT_NONE) {
        free(r.name);
        free(r.data);
    }
    return id;
}

int weft_graph_add_prog(weft_graph *g, const weft_fused_prog *p) {
    if (g->n_progs == g->cap_progs) {
        int cap = g->cap_progs ? 2 * g->cap_progs : 16;
        weft_fused_prog *q = realloc(g->progs, (size_t)cap * sizeof *q);
        if (!q) return -1;
        g->progs = q;
        g->cap_progs = cap;
    }
    g->progs[g->n_progs] = *p;
    return g->n_progs++;
}

weft_node weft_graph_add_borrowed_leaf(weft_graph *g, weft_node_kind kind, const char *name,
                                       weft_dtype t, weft_shape s, void *data) {
    weft_node_rec r = {0};
    r.kind = kind;
    r.dtype = t;
    r.shape = s;
    r.data = data;
    r.borrowed = data != NULL;
    if (name && !(r.name = strdup(name))) return weft_graph_fail(g, WEFT_ERR_NOMEM, "out of memory");
    weft_node id = push(g, &r, NULL, 0);
    if (id == WEFT_NONE) free(r.name);
    return id;
}

weft_node weft_input(weft_graph *g, const char *name, weft_dtype t, weft_shape s) {
    return leaf(g, WEFT_NODE_INPUT, name, t, s, NULL);
}
weft_node weft_param(weft_graph *g, const char *name, weft_dtype t, weft_shape s) {
    return leaf(g, WEFT_NODE_PARAM, name, t, s, NULL);
}
weft_node weft_const(weft_graph *g, const char *name, weft_dtype t, weft_shape s,
                     const void *data) {
    if (!data) return weft_graph_fail(g, WEFT_ERR_ARG, "const '%s': no data", name ? name : "?");
    return leaf(g, WEFT_NODE_CONST, name, t, s, data);
}

weft_node weft_graph_add_rec(weft_graph *g, const weft_node_rec *rec, const weft_node *in) {
    weft_node_rec r = *rec;
    r.name = r.note = NULL; /* the caller stamps provenance */
    r.data = NULL;
    r.borrowed = 0;
    return push(g, &r, in, rec->n_in);
}

weft_node weft_graph_add_op(weft_graph *g, int op, const weft_node *in, int n_in,
                            const weft_attr *attr) {
    const weft_op_def *d = &weft_ops[op];
    for (int i = 0; i < n_in; i++) {
        if (in[i] == WEFT_NONE) return WEFT_NONE; /* an earlier error stands */
        if (!valid(g, in[i]))
            return weft_graph_fail(g, WEFT_ERR_ARG, "%s: input %d is not a node of this graph (%d)",
                                   d->name, i, (int)in[i]);
    }
    if (d->arity >= 0 ? n_in != d->arity : n_in < 1)
        return weft_graph_fail(g, WEFT_ERR_ARG, "%s: takes %d inputs, given %d", d->name,
                               d->arity, n_in);
    weft_node_rec r = {0};
    r.kind = WEFT_NODE_OP;
    r.op = op;
    if (attr) r.attr = *attr;
    weft_status s = d->infer(g, in, n_in, &r.attr, &r.shape, &r.dtype);
    if (s != WEFT_OK) return weft_graph_fail(g, s, "%s: %s", d->name, weft_last_error());
    return push(g, &r, in, n_in);
}

/* ---- queries */

weft_node_kind weft_node_kind_of(const weft_graph *g, weft_node n) { return weft_rec(g, n)->kind; }
weft_shape weft_node_shape(const weft_graph *g, weft_node n) { return weft_rec(g, n)->shape; }
weft_dtype weft_node_dtype(const weft_graph *g, weft_node n) { return weft_rec(g, n)->dtype; }
const char *weft_node_name(const weft_graph *g, weft_node n) { return weft_rec(g, n)->name; }
int weft_node_is_backward(const weft_graph *g, weft_node n) { return weft_rec(g, n)->backward; }
weft_site weft_node_site(const weft_graph *g, weft_node n) { return weft_rec(g, n)->site; }
weft_node weft_node_grad_of(const weft_graph *g, weft_node n) { return weft_rec(g, n)->grad_of; }

const char *weft_node_op_name(const weft_graph *g, weft_node n) {
    const weft_node_rec *r = weft_rec(g, n);
    static const char *const leaf_names[] = {"input", "param", "const"};
    return r->kind == WEFT_NODE_OP ? weft_ops[r->op].name : leaf_names[r->kind];
}

int weft_node_inputs(const weft_graph *g, weft_node n, weft_node *out, int cap) {
    const weft_node_rec *r = weft_rec(g, n);
    for (int i = 0; i < r->n_in && i < cap; i++) out[i] = g->edges[r->in_off + i];
    return r->n_in;
}

void weft_node_set_name(weft_graph *g, weft_node n, const char *name) {
    if (!valid(g, n)) return;
    char *copy = name ? strdup(name) : NULL;
    free(g->nodes[n].name);
    g->nodes[n].name = copy;
}

void weft_graph_set_site(weft_graph *g, int layer, int dir, int step) {
    g->site = (weft_site){(int16_t)layer, (int16_t)dir, step};
}

const char *weft_node_note(const weft_graph *g, weft_node n) { return valid(g, n) ? g->nodes[n].note : NULL; }

weft_node weft_graph_find(const weft_graph *g, const char *name) {
    if (!name) return WEFT_NONE;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].name && !strcmp(g->nodes[i].name, name)) return i;
    return WEFT_NONE;
}

int weft_graph_params(const weft_graph *g, weft_node *out, int cap) {
    int k = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].kind == WEFT_NODE_PARAM) {
            if (k < cap) out[k] = i;
            k++;
        }
    return k;
}

void *weft_param_data(weft_graph *g, weft_node p) {
    if (!valid(g, p)) return NULL;
    weft_node_rec *r = &g->nodes[p];
    return r->kind == WEFT_NODE_PARAM || r->kind == WEFT_NODE_CONST ? r->data : NULL;
}

weft_status weft_param_set(weft_graph *g, weft_node p, const void *data, size_t bytes) {
    if (!valid(g, p) || g->nodes[p].kind != WEFT_NODE_PARAM)
        return weft_error(WEFT_ERR_ARG, "param_set: node %d is not a parameter", (int)p);
    weft_node_rec *r = &g->nodes[p];
    size_t want = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
    if (bytes != want)
        return weft_error(WEFT_ERR_SHAPE, "param '%s': %zu bytes given, %zu expected", r->name,
                          bytes, want);
    memcpy(r->data, data, bytes);
    return WEFT_OK;
}

/* ---- verifier */

weft_status weft_graph_verify(const weft_graph *g) {
    char a[160], b[96], c[96];
    if (g->status != WEFT_OK)
        return weft_error(g->status, "graph has a build error: %s", g->error);
    for (int i = 0; i < g->n; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if ((unsigned)r->kind > WEFT_NODE_OP)
            return weft_error(WEFT_ERR_GRAPH, "verify: node %d has an unknown kind", i);
        if (r->kind != WEFT_NODE_OP) {
            if (r->n_in)
                return weft_error(WEFT_ERR_GRAPH, "verify: leaf %s has inputs", weft_node_desc(g, i, a, sizeof a));
            if (r->kind != WEFT_NODE_INPUT && !r->data)
                return weft_error(WEFT_ERR_GRAPH, "verify: %s has no data", weft_node_desc(g, i, a, sizeof a));
            continue;
        }
        if (r->op < 0 || r->op >= WEFT_OP_COUNT)
            return weft_error(WEFT_ERR_GRAPH, "verify: node %d has unknown op %d", i, r->op);
        const weft_node *in = weft_rec_inputs(g, r);
        for (int k = 0; k < r->n_in; k++) {
            if (in[k] < 0 || in[k] >= g->n)
                return weft_error(WEFT_ERR_GRAPH, "verify: node %d (%s) input %d is undefined (%d)", i,
                                  weft_ops[r->op].name, k, (int)in[k]);
            if (in[k] >= i)
                return weft_error(WEFT_ERR_GRAPH,
                                  "verify: node %d (%s) uses node %d which does not precede it (cycle or bad order)",
                                  i, weft_ops[r->op].name, (int)in[k]);
        }
        weft_attr at = r->attr;
        weft_shape s;
        weft_dtype t;
        if (weft_ops[r->op].infer(g, in, r->n_in, &at, &s, &t) != WEFT_OK)
            return weft_error(WEFT_ERR_GRAPH, "verify: node %d (%s): %s", i, weft_ops[r->op].name,
                              weft_last_error());
        if (!weft_shape_eq(s, r->shape) || t != r->dtype)
            return weft_error(WEFT_ERR_GRAPH, "verify: node %d (%s) records %s %s but its inputs give %s %s", i,
                              weft_ops[r->op].name, weft_shape_str(r->shape, b, sizeof b),
                              weft_dtype_name(r->dtype), weft_shape_str(s, c, sizeof c), weft_dtype_name(t));
    }
    return WEFT_OK;
}
