/* weft — the cell language: entry points and lowering.
 *
 * weft_cell_parse() runs lex -> parse -> check once; the resulting weft_cell
 * keeps the checked AST and its step() walks it, emitting one builder call
 * per operation.  A bias that a layer drops (WEFT_NONE) is lowered as a
 * known zero: "x @ W^T + b" becomes just the matmul, and nothing is
 * computed for it, so a cell without biases costs the same as if it had
 * been written without them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_lang.h"
#include "text.h"

static void cell_free(weft_cell *wc);
static int cell_params(const weft_cell *wc, int64_t I, int64_t H, weft_cell_param *out);
static weft_status cell_step(const weft_cell *wc, weft_graph *g, weft_node x,
                             const weft_node *params, const weft_node *state,
                             weft_node *next_state, weft_node *output);

static const weft_cell_ops cell_lang_ops = {cell_params, cell_step, cell_free};

const cl_cell *cl_of(const weft_cell *c) {
    return c && c->ops == &cell_lang_ops ? c->impl : NULL;
}

const char *weft_cell_warnings(const weft_cell *c) {
    const cl_cell *l = cl_of(c);
    return l && l->warnings ? l->warnings : "";
}

const char *weft_cell_doc(const weft_cell *c) {
    const cl_cell *l = cl_of(c);
    return l && l->doc ? l->doc : "";
}

static void cl_cell_destroy(cl_cell *c) {
    if (!c) return;
    cl_arena_free(c->arena);
    free(c->warnings);
    free(c->text);
    free(c->label);
    free(c);
}

static void cell_free(weft_cell *wc) {
    if (!wc) return;
    cl_cell_destroy(wc->impl);
    free(wc);
}

/* ------------------------------------------------------------ params */

static int cell_params(const weft_cell *wc, int64_t I, int64_t H, weft_cell_param *out) {
    const cl_cell *c = wc->impl;
    if (I <= 0 || H <= 0) {
        weft_error(WEFT_ERR_ARG, "cell %s: input size %lld and hidden size %lld must be > 0",
                   wc->name, (long long)I, (long long)H);
        return -1;
    }
    for (int i = 0; i < c->nparams; i++) {
        const cl_param *p = &c->params[i];
        weft_cell_param *o = &out[i];
        memset(o, 0, sizeof *o);
        snprintf(o->name, sizeof o->name, "%s", p->cname);
        o->init = p->init;
        o->value = p->value;
        o->is_bias = p->is_bias;
        o->shape.ndim = p->shape.rank;
        int64_t numel = 1;
        for (int d = 0; d < p->shape.rank; d++) {
            int ok = 1;
            int64_t v = cl_dim_eval(p->shape.d[d], 0, I, H, &ok);
            if (!ok || v <= 0 || __builtin_mul_overflow(numel, v, &numel) ||
                numel > ((int64_t)1 << 48)) {
                char s[96];
                weft_error(WEFT_ERR_NOMEM,
                           "cell %s: parameter '%s': size %s overflows at I = %lld, H = %lld",
                           wc->name, p->cname, cl_dim_str(p->shape.d[d], s, sizeof s),
                           (long long)I, (long long)H);
                return -1;
            }
            o->shape.dim[d] = v;
        }
    }
    return c->nparams;
}

/* -------------------------------------------------------------- step */

typedef struct val {
    weft_node n;
    int zero;                   /* a known zero (an absent bias, or made from one) */
} val;

typedef struct lower {
    const cl_cell *c;
    weft_graph *g;
    weft_node x;
    const weft_node *params, *state;
    int64_t B, I, H;
    weft_dtype dt;
    val *locals;
    int bad;                    /* a size overflowed while resolving a shape */
} lower;

static const val ZERO = {WEFT_NONE, 1};
static val node(weft_node n) { return (val){n, 0}; }

static weft_shape resolve(lower *lw, const cl_shape *s) {
    weft_shape r = {0};
    r.ndim = s->rank;
    for (int i = 0; i < s->rank; i++) {
        int ok = 1;
        r.dim[i] = cl_dim_eval(s->d[i], lw->B, lw->I, lw->H, &ok);
        if (!ok) lw->bad = 1;
    }
    return r;
}

static weft_node real(lower *lw, val v, const cl_shape *s) {
    return v.zero ? weft_fill(lw->g, resolve(lw, s), lw->dt, 0.0) : v.n;
}

/* The surviving operand of "a + 0" must still have the sum's shape. */
static val fit(lower *lw, weft_node n, const cl_shape *s) {
    weft_shape want = resolve(lw, s);
    if (weft_shape_eq(weft_node_shape(lw->g, n), want)) return node(n);
    return node(weft_broadcast(lw->g, n, want));
}

static val lower_expr(lower *lw, const cl_expr *e);

static val lower_call(lower *lw, const cl_expr *e) {
    weft_graph *g = lw->g;
    const cl_builtin *b = &cl_builtins[e->op];
    const cl_expr *a = e->args[0];
    static const int last[1] = {-1};
    switch (b->kind) {
    case FN_UNARY: {
        val v = lower_expr(lw, a);
        if (v.zero && b->zero_to_zero) return ZERO;
        return node(b->unary(g, real(lw, v, &a->shape)));
    }
    case FN_BINARY: {
        val u = lower_expr(lw, a), v = lower_expr(lw, e->args[1]);
        return node(b->binary(g, real(lw, u, &a->shape), real(lw, v, &e->args[1]->shape)));
    }
    case FN_POW: {
        val v = lower_expr(lw, a);
        double p = e->args[1]->num;
        if (v.zero && p > 0) return ZERO;
        return node(weft_pow(g, real(lw, v, &a->shape), p));
    }
    case FN_REDUCE: {
        val v = lower_expr(lw, a);
        if (v.zero) return ZERO;
        return node(b->reduce(g, v.n, last, 1, 1));
    }
    case FN_VAR:
    case FN_LAYERNORM: {
        val v = lower_expr(lw, a);
        if (v.zero && b->kind == FN_VAR) return ZERO;
        weft_node t = real(lw, v, &a->shape);
        weft_node d = weft_sub(g, t, weft_mean(g, t, last, 1, 1));
        weft_node var = weft_mean(g, weft_square(g, d), last, 1, 1);
        if (b->kind == FN_VAR) return node(var);
        double eps = e->nargs == 2 ? e->args[1]->num : 1e-5;
        return node(weft_div(g, d, weft_sqrt(g, weft_add(g, var, weft_scalar_like(g, t, eps)))));
    }
    case FN_CHUNK:
        return lower_expr(lw, a); /* one part: the value itself */
    case FN_CONCAT: {
        weft_node xs[CL_MAX_ARGS];
        for (int i = 0; i < e->nargs; i++)
            xs[i] = real(lw, lower_expr(lw, e->args[i]), &e->args[i]->shape);
        return node(weft_concat(g, xs, e->nargs, -1));
    }
    }
    return ZERO;
}

static val lower_expr(lower *lw, const cl_expr *e) {
    weft_graph *g = lw->g;
    if (e->is_const) return node(weft_scalar_like(g, lw->x, e->num));
    switch (e->kind) {
    case CE_NUM:
        return node(weft_scalar_like(g, lw->x, e->num));
    case CE_NAME:
        switch (e->sym) {
        case CS_INPUT: return node(lw->x);
        case CS_STATE: return node(lw->state[e->index]);
        case CS_PARAM:
            return lw->params[e->index] == WEFT_NONE ? ZERO : node(lw->params[e->index]);
        case CS_LOCAL: return lw->locals[e->index];
        default: return ZERO;
        }
    case CE_CALL:
        return lower_call(lw, e);
    case CE_NEG: {
        val v = lower_expr(lw, e->args[0]);
        return v.zero ? ZERO : node(weft_neg(g, v.n));
    }
    case CE_TRANS: {
        val v = lower_expr(lw, e->args[0]);
        static const int perm[2] = {1, 0};
        return v.zero ? ZERO : node(weft_transpose(g, v.n, perm));
    }
    case CE_SLICE: {
        val v = lower_expr(lw, e->args[0]);
        if (v.zero) return ZERO;
        weft_node n = v.n;
        for (int i = 0; i < e->nranges; i++) {
            const cl_range *r = &e->ranges[i];
            if (r->whole) continue;
            int ok = 1;
            int64_t lo = cl_dim_eval(r->lo_dim, lw->B, lw->I, lw->H, &ok);
            int64_t hi = cl_dim_eval(r->hi_dim, lw->B, lw->I, lw->H, &ok);
            if (!ok) lw->bad = 1;
            n = weft_slice(g, n, i, lo, hi);
        }
        return node(n);
    }
    case CE_BIN: {
        const cl_expr *a = e->args[0], *b = e->args[1];
        if (e->op == '@') {
            /* a @ W^T is one matmul with a transposed operand: BLIS reads
             * W with swapped strides, no copy. */
            int ta = a->kind == CE_TRANS, tb = b->kind == CE_TRANS;
            val u = lower_expr(lw, ta ? a->args[0] : a), v = lower_expr(lw, tb ? b->args[0] : b);
            if (u.zero || v.zero) return ZERO;
            return node(weft_matmul(g, u.n, v.n, ta, tb));
        }
        val u = lower_expr(lw, a), v = lower_expr(lw, b);
        switch (e->op) {
        case '+':
            if (u.zero && v.zero) return ZERO;
            if (u.zero || v.zero) return fit(lw, u.zero ? v.n : u.n, &e->shape);
            return node(weft_add(g, u.n, v.n));
        case '-':
            if (v.zero) return u.zero ? ZERO : fit(lw, u.n, &e->shape);
            if (u.zero) return fit(lw, weft_neg(g, v.n), &e->shape);
            return node(weft_sub(g, u.n, v.n));
        case '*':
            if (u.zero || v.zero) return ZERO;
            return node(weft_mul(g, u.n, v.n));
        default: /* '/' */
            if (u.zero) return ZERO;
            return node(weft_div(g, u.n, real(lw, v, &b->shape)));
        }
    }
    }
    return ZERO;
}

/* Name an op node after the cell's variable, for pictures and debugging;
 * a node that already has a name (a param, another variable) keeps it. */
static void name_node(lower *lw, val v, cl_span name, int prime) {
    if (v.zero || v.n == WEFT_NONE || weft_node_kind_of(lw->g, v.n) != WEFT_NODE_OP) return;
    const char *old = weft_node_name(lw->g, v.n);
    if (old && *old) return;
    char s[WEFT_NAME_MAX];
    cl_span_str(lw->c, name, s, sizeof s - 1);
    if (prime) strcat(s, "'");
    weft_node_set_name(lw->g, v.n, s);
}

static weft_status check_inputs(const weft_cell *wc, lower *lw) {
    const cl_cell *c = lw->c;
    weft_graph *g = lw->g;
    char s1[64], s2[64];
    weft_shape xs = weft_node_shape(g, lw->x);
    if (xs.ndim != 2)
        return weft_error(WEFT_ERR_SHAPE, "cell %s: the input must be [B, I], got %s", wc->name,
                          weft_shape_str(xs, s1, sizeof s1));
    lw->B = xs.dim[0];
    lw->I = xs.dim[1];
    lw->dt = weft_node_dtype(g, lw->x);
    for (int i = 0; i < c->nstates; i++) {
        if (lw->state[i] == WEFT_NONE)
            return weft_error(WEFT_ERR_ARG, "cell %s: state %s is missing", wc->name,
                              wc->state_names[i]);
        weft_shape s = weft_node_shape(g, lw->state[i]);
        if (i == 0 && s.ndim == 2) lw->H = s.dim[1];
        if (s.ndim != 2 || s.dim[0] != lw->B || s.dim[1] != lw->H)
            return weft_error(WEFT_ERR_SHAPE,
                              "cell %s: state %s must be [%lld, %lld] (batch, hidden), got %s",
                              wc->name, wc->state_names[i], (long long)lw->B, (long long)lw->H,
                              weft_shape_str(s, s1, sizeof s1));
    }
    weft_cell_param ps[WEFT_CELL_MAX_PARAMS];
    if (cell_params(wc, lw->I, lw->H, ps) < 0) return WEFT_ERR_ARG;
    for (int i = 0; i < c->nparams; i++) {
        if (lw->params[i] == WEFT_NONE) {
            if (ps[i].is_bias) continue;
            return weft_error(WEFT_ERR_ARG, "cell %s: parameter %s is missing (only a bias may be)",
                              wc->name, ps[i].name);
        }
        weft_shape s = weft_node_shape(g, lw->params[i]);
        if (!weft_shape_eq(s, ps[i].shape))
            return weft_error(WEFT_ERR_SHAPE, "cell %s: parameter %s must be %s, got %s", wc->name,
                              ps[i].name, weft_shape_str(ps[i].shape, s1, sizeof s1),
                              weft_shape_str(s, s2, sizeof s2));
    }
    return WEFT_OK;
}

static weft_status cell_step(const weft_cell *wc, weft_graph *g, weft_node x,
                             const weft_node *params, const weft_node *state,
                             weft_node *next_state, weft_node *output) {
    const cl_cell *c = wc->impl;
    lower lw = {.c = c, .g = g, .x = x, .params = params, .state = state};
    weft_status st = weft_graph_status(g);
    if (st != WEFT_OK) return st;
    if (x == WEFT_NONE) return weft_error(WEFT_ERR_ARG, "cell %s: no input", wc->name);
    if ((st = check_inputs(wc, &lw)) != WEFT_OK) return st;
    lw.locals = calloc((size_t)c->nlocals + 1, sizeof *lw.locals);
    if (!lw.locals) return weft_error(WEFT_ERR_NOMEM, "cell %s: out of memory", wc->name);

    static const cl_shape BH = {2, {{{0, 0, 0, 1}}, {{0, 0, 1, 0}}}};
    weft_node out = WEFT_NONE;
    for (int i = 0; i < c->nstmts; i++) {
        const cl_stmt *s = &c->stmts[i];
        if (s->kind == ST_OUTPUT) {
            out = real(&lw, lower_expr(&lw, s->rhs), &BH);
            continue;
        }
        const cl_expr *r = s->rhs;
        if (r->nparts) {
            const cl_expr *a = r->args[0];
            val v = lower_expr(&lw, a);
            weft_node parts[CL_MAX_CHUNK];
            if (!v.zero && weft_split(g, v.n, r->chunk_axis, r->nparts, parts) != WEFT_OK)
                v.n = WEFT_NONE;
            for (int k = 0; k < s->ntargets; k++)
                lw.locals[s->targets[k].local] = v.zero ? ZERO : node(v.n == WEFT_NONE ? WEFT_NONE : parts[k]);
        } else {
            lw.locals[s->targets[0].local] = lower_expr(&lw, r);
        }
        for (int k = 0; k < s->ntargets; k++)
            name_node(&lw, lw.locals[s->targets[k].local], s->targets[k].name, s->targets[k].prime);
    }
    for (int i = 0; i < c->nstates; i++)
        next_state[i] = real(&lw, lw.locals[c->next_local[i]], &BH);
    *output = c->output_stmt >= 0 ? out : next_state[0];
    free(lw.locals);
    if (lw.bad)
        return weft_error(WEFT_ERR_NOMEM, "cell %s: a size overflows at B = %lld, I = %lld, H = %lld",
                          wc->name, (long long)lw.B, (long long)lw.I, (long long)lw.H);
    st = weft_graph_status(g);
    if (st != WEFT_OK)
        return weft_error(st, "cell %s: %s", wc->name, weft_graph_error(g));
    return WEFT_OK;
}

/* -------------------------------------------------------- entry points */

/* Lex, parse and check c->text into wc; 0 with the error recorded.  The
 * one setjmp of a parse lives here, with nothing modified after it. */
static int compile(cl_cell *c, weft_cell *wc) {
    cl_ctx x = {.cell = c};
    if (setjmp(x.jb)) {
        if (x.msg) {
            /* Drop the trailing newline: callers print the detail with one. */
            size_t k = strlen(x.msg);
            if (k && x.msg[k - 1] == '\n') x.msg[k - 1] = 0;
            weft_error(x.status, "%s", x.msg);
        } else {
            weft_error(x.status, "%s: out of memory", c->label);
        }
        return 0;
    }
    cl_lex(&x);
    cl_parse(&x);
    cl_check(&x);
    if (!c->doc) c->doc = "";
    wc->ops = &cell_lang_ops;
    cl_span_str(c, c->name, wc->name, sizeof wc->name);
    wc->num_states = c->nstates;
    for (int i = 0; i < c->nstates; i++)
        cl_span_str(c, c->states[i].name, wc->state_names[i], sizeof wc->state_names[i]);
    wc->gates = c->gates;
    wc->impl = c;
    return 1;
}

weft_cell *weft_cell_parse(const char *text, size_t n, const char *label) {
    if (!label) label = "<cell>";
    if (!text && n) {
        weft_error(WEFT_ERR_ARG, "%s: no text", label);
        return NULL;
    }
    if (n > CL_MAX_FILE) {
        weft_error(WEFT_ERR_PARSE, "%s:1:1: file is too large (%zu bytes; the limit is %u)", label,
                   n, CL_MAX_FILE);
        return NULL;
    }
    cl_cell *c = calloc(1, sizeof *c);
    weft_cell *wc = calloc(1, sizeof *wc);
    if (c) {
        c->arena = cl_arena_new();
        c->text = malloc(n + 1);
        c->label = strdup(label);
    }
    if (!c || !wc || !c->arena || !c->text || !c->label) {
        cl_cell_destroy(c);
        free(wc);
        weft_error(WEFT_ERR_NOMEM, "%s: out of memory", label);
        return NULL;
    }
    if (n) memcpy(c->text, text, n);
    c->text[n] = 0;
    c->n = n;
    if (!compile(c, wc)) {
        cl_cell_destroy(c);
        free(wc);
        return NULL;
    }
    return wc;
}

weft_cell *weft_cell_load(const char *path) {
    if (!path) {
        weft_error(WEFT_ERR_ARG, "cell file: no path given");
        return NULL;
    }
    weft_text t = {0};
    const int rc = weft_text_read(&t, path, CL_MAX_FILE); /* past it: enough to know it is too large */
    if (rc == -1) {
        weft_error(WEFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (t.failed) {
        free(t.s);
        weft_error(WEFT_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (rc) {
        free(t.s);
        weft_error(WEFT_ERR_IO, "%s: read error", path);
        return NULL;
    }
    weft_cell *c = weft_cell_parse(t.s ? t.s : "", t.n, path);
    free(t.s);
    return c;
}
