/* weft — the cell language: the checker.
 *
 * Resolves every name, and infers every value's shape symbolically: a dim
 * is linear in B (batch), I and H (cl_dim), so "x @ W^T" with W [4*H, I] is
 * [B, 4*H] for every size and a mismatch is reported at load time with both
 * shapes as the user would write them.  Numbers fold to constants here, so
 * pow()'s exponent and chunk()'s count are known. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_lang.h"

static weft_node neg1(weft_graph *g, weft_node a) { return weft_neg(g, a); }
static weft_node stopgrad(weft_graph *g, weft_node a) { return weft_stop_gradient(g, a); }
/* min(a, b) = -max(-a, -b): no kernel of its own. */
static weft_node minimum(weft_graph *g, weft_node a, weft_node b) {
    return weft_neg(g, weft_maximum(g, weft_neg(g, a), weft_neg(g, b)));
}

const cl_builtin cl_builtins[] = {
    {"sigmoid", FN_UNARY, 1, 1, weft_sigmoid, NULL, NULL, 0, "1 / (1 + exp(-x))"},
    {"tanh", FN_UNARY, 1, 1, weft_tanh, NULL, NULL, 1, "hyperbolic tangent"},
    {"relu", FN_UNARY, 1, 1, weft_relu, NULL, NULL, 1, "max(x, 0)"},
    {"exp", FN_UNARY, 1, 1, weft_exp, NULL, NULL, 0, "e^x"},
    {"log", FN_UNARY, 1, 1, weft_log, NULL, NULL, 0, "natural logarithm"},
    {"sqrt", FN_UNARY, 1, 1, weft_sqrt, NULL, NULL, 1, "square root"},
    {"abs", FN_UNARY, 1, 1, weft_abs, NULL, NULL, 1, "|x|"},
    {"square", FN_UNARY, 1, 1, weft_square, NULL, NULL, 1, "x * x"},
    {"neg", FN_UNARY, 1, 1, neg1, NULL, NULL, 1, "-x"},
    {"stop_gradient", FN_UNARY, 1, 1, stopgrad, NULL, NULL, 1, "x, with no gradient flowing back"},
    {"pow", FN_POW, 2, 2, NULL, NULL, NULL, 0, "pow(x, p): x^p for a number p"},
    {"maximum", FN_BINARY, 2, 2, NULL, weft_maximum, NULL, 0, "elementwise max(a, b)"},
    {"minimum", FN_BINARY, 2, 2, NULL, minimum, NULL, 0, "elementwise min(a, b)"},
    {"mean", FN_REDUCE, 1, 1, NULL, NULL, weft_mean, 1, "mean over the last axis (kept as size 1)"},
    {"sum", FN_REDUCE, 1, 1, NULL, NULL, weft_sum, 1, "sum over the last axis (kept as size 1)"},
    {"var", FN_VAR, 1, 1, NULL, NULL, NULL, 1, "variance over the last axis (kept as size 1)"},
    {"layernorm", FN_LAYERNORM, 1, 2, NULL, NULL, NULL, 0,
     "layernorm(x[, eps]): (x - mean(x)) / sqrt(var(x) + eps), last axis, eps 1e-5"},
    {"chunk", FN_CHUNK, 2, 3, NULL, NULL, NULL, 1, "chunk(x, n[, axis]): n equal parts (last axis)"},
    {"split", FN_CHUNK, 2, 3, NULL, NULL, NULL, 1, "the same as chunk"},
    {"concat", FN_CONCAT, 2, CL_MAX_ARGS, NULL, NULL, NULL, 0, "concat(a, b, ...) along the last axis"},
};
const int cl_nbuiltins = (int)(sizeof cl_builtins / sizeof cl_builtins[0]);

int cl_builtin_find(const char *name, size_t len) {
    for (int i = 0; i < cl_nbuiltins; i++)
        if (strlen(cl_builtins[i].name) == len && !memcmp(cl_builtins[i].name, name, len))
            return i;
    return -1;
}

/* ------------------------------------------------------------- sizes */

static int dim_is_const(cl_dim d) { return !d.c[CL_I] && !d.c[CL_H] && !d.c[CL_B]; }
static cl_dim dim_k(int64_t k) { return (cl_dim){{k, 0, 0, 0}}; }

static _Noreturn void overflow(cl_ctx *x, const cl_expr *e) {
    cl_fail(x, e->span, NULL, "size overflows (coefficients are limited to 2^40)");
}

static int64_t coef(cl_ctx *x, const cl_expr *e, int64_t v) {
    if (v > CL_MAX_COEF || v < -CL_MAX_COEF) overflow(x, e);
    return v;
}

/* A size expression: integers, I, H, + - *, unary minus. */
static cl_dim size_of(cl_ctx *x, cl_expr *e) {
    cl_cell *c = x->cell;
    cl_dim r = {{0}};
    switch (e->kind) {
    case CE_NUM:
        if (e->num != floor(e->num))
            cl_fail(x, e->span, NULL, "a size must be a whole number");
        if (fabs(e->num) > (double)CL_MAX_COEF) overflow(x, e);
        return dim_k((int64_t)e->num);
    case CE_NAME:
        if (!e->prime && cl_span_is(c, e->at, "I")) { r.c[CL_I] = 1; return r; }
        if (!e->prime && cl_span_is(c, e->at, "H")) { r.c[CL_H] = 1; return r; }
        {
            char n[64];
            cl_span_str(c, e->span, n, sizeof n);
            const char *cands[] = {"I", "H"};
            const char *best = cl_closest(n, cands, 2);
            char hint[160];
            if (best) snprintf(hint, sizeof hint, "did you mean '%s'? sizes use I (input size), "
                                                  "H (hidden size) and integers", best);
            else snprintf(hint, sizeof hint, "sizes use I (input size), H (hidden size) and integers");
            cl_fail(x, e->span, hint, "unknown size '%s'", n);
        }
    case CE_NEG: {
        cl_dim a = size_of(x, e->args[0]);
        for (int k = 0; k < CL_NSYM; k++) r.c[k] = -a.c[k];
        return r;
    }
    case CE_BIN: {
        cl_dim a = size_of(x, e->args[0]), b = size_of(x, e->args[1]);
        if (e->op == '+' || e->op == '-') {
            for (int k = 0; k < CL_NSYM; k++)
                r.c[k] = coef(x, e, e->op == '+' ? a.c[k] + b.c[k] : a.c[k] - b.c[k]);
            return r;
        }
        if (e->op == '*') {
            if (!dim_is_const(a) && !dim_is_const(b))
                cl_fail(x, e->span, "sizes are linear in I and H, such as 4*H or I + H",
                        "a size cannot multiply two sizes");
            int64_t k0 = dim_is_const(a) ? a.c[CL_K] : b.c[CL_K];
            cl_dim o = dim_is_const(a) ? b : a;
            for (int k = 0; k < CL_NSYM; k++) {
                int64_t p;
                if (__builtin_mul_overflow(o.c[k], k0, &p)) overflow(x, e);
                r.c[k] = coef(x, e, p);
            }
            return r;
        }
        cl_fail(x, e->at, "write the size as a multiple, such as 2*H instead of 4*H/2",
                "a size cannot use '%c'", e->op);
    }
    default:
        cl_fail(x, e->span, NULL,
                "a size may only use I, H, integers, '+', '-', '*' and parentheses");
    }
}

/* Positive for every I, H >= 1: non-negative coefficients and a positive
 * value at I = H = 1. */
static void check_positive(cl_ctx *x, const cl_expr *e, cl_dim d, const char *what) {
    char s[96];
    cl_dim_str(d, s, sizeof s);
    if (dim_is_const(d) && d.c[CL_K] == 0)
        cl_fail(x, e->span, NULL, "%s is zero", what);
    if (d.c[CL_I] < 0 || d.c[CL_H] < 0 || d.c[CL_K] + d.c[CL_I] + d.c[CL_H] < 1)
        cl_fail(x, e->span, "a size must be positive for every I, H >= 1",
                "%s %s can be zero or negative", what, s);
}

/* ------------------------------------------------------------- names */

static int local_find(const cl_cell *c, cl_span name, int prime) {
    for (int i = c->nlocals - 1; i >= 0; i--) {
        const cl_local *l = &c->locals[i];
        if ((l->state >= 0) == prime && cl_span_eq(c, l->name, name)) return i;
    }
    return -1;
}
static int param_find(const cl_cell *c, cl_span name) {
    for (int i = 0; i < c->nparams; i++)
        if (cl_span_eq(c, c->params[i].name, name)) return i;
    return -1;
}
static int state_find(const cl_cell *c, cl_span name) {
    for (int i = 0; i < c->nstates; i++)
        if (cl_span_eq(c, c->states[i].name, name)) return i;
    return -1;
}

/* Where else this name is declared, if anywhere: a hint for redefinitions. */
static int declared_as(const cl_cell *c, cl_span name, char *hint, size_t n) {
    char at[32];
    char s[64];
    cl_span_str(c, name, s, sizeof s);
    if (cl_span_eq(c, c->input.name, name)) {
        snprintf(hint, n, "'%s' is the cell's input", s);
        return 1;
    }
    if (state_find(c, name) >= 0) {
        snprintf(hint, n, "'%s' is a state; to set its next value write %s' = ...", s, s);
        return 1;
    }
    int p = param_find(c, name);
    if (p >= 0) {
        snprintf(hint, n, "'%s' is a parameter declared at %s", s,
                 cl_where(c, c->params[p].name, at, sizeof at));
        return 1;
    }
    int l = local_find(c, name, 0);
    if (l >= 0) {
        snprintf(hint, n, "'%s' was assigned at %s; every name is assigned once", s,
                 cl_where(c, c->locals[l].name, at, sizeof at));
        return 1;
    }
    return 0;
}

static void check_new_name(cl_ctx *x, cl_span name) {
    cl_cell *c = x->cell;
    char s[64], hint[192];
    cl_span_str(c, name, s, sizeof s);
    if (cl_span_is(c, name, "I") || cl_span_is(c, name, "H") || cl_span_is(c, name, "B"))
        cl_fail(x, name, "I, H and B stand for the input, hidden and batch sizes",
                "'%s' is reserved", s);
    if (declared_as(c, name, hint, sizeof hint))
        cl_fail(x, name, hint, "redefinition of '%s'", s);
}

/* Every name visible at this point, for "did you mean". */
static int visible_names(const cl_cell *c, int primes, const char **out, int cap, char (*store)[48]) {
    int n = 0;
#define ADD(span, pr)                                                          \
    do {                                                                       \
        if (n < cap) {                                                         \
            cl_span_str(c, span, store[n], 46);                                \
            if (pr) strcat(store[n], "'");                                     \
            out[n] = store[n];                                                 \
            n++;                                                               \
        }                                                                      \
    } while (0)
    ADD(c->input.name, 0);
    for (int i = 0; i < c->nstates; i++) ADD(c->states[i].name, 0);
    for (int i = 0; i < c->nparams; i++) ADD(c->params[i].name, 0);
    for (int i = 0; i < c->nlocals; i++)
        if ((c->locals[i].state >= 0) == primes || !primes) ADD(c->locals[i].name, c->locals[i].state >= 0);
#undef ADD
    return n;
}

/* Is `name` assigned by a statement after `stmt`?  Returns that target. */
static const cl_target *assigned_later(const cl_cell *c, int stmt, cl_span name, int prime) {
    for (int i = stmt + 1; i < c->nstmts; i++)
        for (int k = 0; k < c->stmts[i].ntargets; k++) {
            const cl_target *t = &c->stmts[i].targets[k];
            if (t->prime == prime && cl_span_eq(c, t->name, name)) return t;
        }
    return NULL;
}

static void resolve(cl_ctx *x, cl_expr *e, int stmt) {
    cl_cell *c = x->cell;
    char s[64], hint[256], at[32];
    cl_span_str(c, e->at, s, sizeof s);
    if (e->prime) {
        int st = state_find(c, e->at);
        if (st < 0) {
            if (declared_as(c, e->at, hint, sizeof hint) || local_find(c, e->at, 0) >= 0)
                cl_fail(x, e->span, "only a state has a next value (h')", "'%s' is not a state", s);
            cl_fail(x, e->span, NULL, "unknown name '%s''", s);
        }
        int l = local_find(c, e->at, 1);
        if (l < 0) {
            const cl_target *t = assigned_later(c, stmt, e->at, 1);
            if (t) snprintf(hint, sizeof hint, "%s' is assigned at %s", s, cl_where(c, t->name, at, sizeof at));
            else snprintf(hint, sizeof hint, "assign it first: %s' = ...", s);
            cl_fail(x, e->span, hint, "%s' is used before it is assigned", s);
        }
        e->sym = CS_LOCAL;
        e->index = l;
        c->locals[l].used = 1;
    } else {
        int i;
        if ((i = local_find(c, e->at, 0)) >= 0) {
            e->sym = CS_LOCAL, e->index = i;
            c->locals[i].used = 1;
        } else if ((i = param_find(c, e->at)) >= 0) {
            e->sym = CS_PARAM, e->index = i;
            c->params[i].used = 1;
        } else if ((i = state_find(c, e->at)) >= 0) {
            e->sym = CS_STATE, e->index = i;
            c->states[i].used = 1;
        } else if (cl_span_eq(c, c->input.name, e->at)) {
            e->sym = CS_INPUT, e->index = 0;
            c->input.used = 1;
        } else {
            const cl_target *t = assigned_later(c, stmt, e->at, 0);
            if (t) {
                snprintf(hint, sizeof hint, "'%s' is assigned at %s", s, cl_where(c, t->name, at, sizeof at));
                cl_fail(x, e->span, hint, "'%s' is used before it is assigned", s);
            }
            if (cl_builtin_find(s, strlen(s)) >= 0) {
                snprintf(hint, sizeof hint, "call it: %s(...)", s);
                cl_fail(x, e->span, hint, "'%s' is a function", s);
            }
            if (!strcmp(s, "I") || !strcmp(s, "H"))
                cl_fail(x, e->span, "the sizes I and H are used in shapes and slices, inside [...]",
                        "'%s' is a size, not a value", s);
            const char *names[CL_MAX_DEPTH * 4];
            static _Thread_local char store[CL_MAX_DEPTH * 4][48];
            int n = visible_names(c, 0, names, CL_MAX_DEPTH * 4, store);
            const char *best = cl_closest(s, names, n);
            if (best) snprintf(hint, sizeof hint, "did you mean '%s'?", best);
            cl_fail(x, e->span, best ? hint : NULL, "unknown name '%s'", s);
        }
    }
}

/* ---------------------------------------------------------- shapes */

static char *sh(const cl_shape *s, char *buf) { return cl_shape_str(s, buf, 160); }

static cl_shape scalar(void) { return (cl_shape){0}; }

static int dim_is_one(cl_dim d) { return dim_is_const(d) && d.c[CL_K] == 1; }

/* numpy broadcasting; NULL-free: fails with both shapes and the operands. */
static cl_shape broadcast(cl_ctx *x, const cl_expr *e, const cl_expr *a, const cl_expr *b,
                          const char *opname) {
    cl_shape r = {0};
    const cl_shape *sa = &a->shape, *sb = &b->shape;
    r.rank = sa->rank > sb->rank ? sa->rank : sb->rank;
    for (int i = 0; i < r.rank; i++) {
        int ia = sa->rank - r.rank + i, ib = sb->rank - r.rank + i;
        cl_dim da = ia >= 0 ? sa->d[ia] : dim_k(1), db = ib >= 0 ? sb->d[ib] : dim_k(1);
        if (cl_dim_eq(da, db) || dim_is_one(db)) r.d[i] = da;
        else if (dim_is_one(da)) r.d[i] = db;
        else {
            char s1[160], s2[160], t1[80], t2[80], hint[600];
            sh(sa, s1), sh(sb, s2);
            cl_snippet(x->cell, a->span, t1, sizeof t1);
            cl_snippet(x->cell, b->span, t2, sizeof t2);
            int n = snprintf(hint, sizeof hint, "'%s' is %s and '%s' is %s", t1, s1, t2, s2);
            /* A common slip: a stacked [B, 4*H] gate block used as one gate. */
            for (int k = 2; k <= CL_MAX_CHUNK && n > 0 && (size_t)n < sizeof hint; k++) {
                int big_a = 1, big_b = 1;
                for (int s = 0; s < CL_NSYM; s++) {
                    big_a &= da.c[s] == k * db.c[s];
                    big_b &= db.c[s] == k * da.c[s];
                }
                if (big_a || big_b) {
                    snprintf(hint + n, sizeof hint - (size_t)n,
                             "; chunk(%s, %d) splits it into %d parts",
                             big_a ? t1 : t2, k, k);
                    break;
                }
            }
            cl_fail(x, e->at, hint, "shapes %s and %s do not match in '%s'", s1, s2, opname);
        }
    }
    return r;
}

static void need_tensor(cl_ctx *x, const cl_expr *e, const char *what) {
    if (e->nparts)
        cl_fail(x, e->span, "assign its parts: a, b = chunk(x, 2)",
                "%s gives several values and cannot be used as one", what);
}

static void check_expr(cl_ctx *x, cl_expr *e, int stmt, int allow_parts);

static void fold(cl_ctx *x, cl_expr *e, double v) {
    if (!isfinite(v))
        cl_fail(x, e->span, NULL, "this constant is not finite (division by zero or overflow)");
    e->is_const = 1;
    e->num = v;
    e->shape = scalar();
}

static int64_t const_int(cl_ctx *x, const cl_expr *e, const char *what, int64_t lo, int64_t hi) {
    if (!e->is_const || e->num != floor(e->num) || e->num < (double)lo || e->num > (double)hi)
        cl_fail(x, e->span, NULL, "%s must be a whole number from %lld to %lld", what,
                (long long)lo, (long long)hi);
    return (int64_t)e->num;
}

static void check_call(cl_ctx *x, cl_expr *e, int stmt, int allow_parts) {
    cl_cell *c = x->cell;
    char name[64], hint[256];
    cl_span_str(c, e->at, name, sizeof name);
    int f = cl_builtin_find(name, strlen(name));
    if (f < 0) {
        if (declared_as(c, e->at, hint, sizeof hint))
            cl_fail(x, e->at, "to multiply, write '*'", "'%s' is not a function", name);
        const char *names[64];
        for (int i = 0; i < cl_nbuiltins; i++) names[i] = cl_builtins[i].name;
        const char *best = cl_closest(name, names, cl_nbuiltins);
        if (best) snprintf(hint, sizeof hint, "did you mean '%s'?", best);
        else if (!strcmp(name, "transpose")) snprintf(hint, sizeof hint, "write x^T");
        else if (!strcmp(name, "matmul")) snprintf(hint, sizeof hint, "write a @ b");
        cl_fail(x, e->at, best || !strcmp(name, "transpose") || !strcmp(name, "matmul") ? hint : NULL,
                "unknown function '%s'", name);
    }
    const cl_builtin *b = &cl_builtins[f];
    e->op = f;
    if (e->nargs < b->min_args || e->nargs > b->max_args) {
        if (b->min_args == b->max_args)
            cl_fail(x, e->span, b->doc, "%s takes %d argument%s, got %d", name, b->min_args,
                    b->min_args == 1 ? "" : "s", e->nargs);
        cl_fail(x, e->span, b->doc, "%s takes %d to %d arguments, got %d", name, b->min_args,
                b->max_args, e->nargs);
    }
    for (int i = 0; i < e->nargs; i++) {
        check_expr(x, e->args[i], stmt, 0);
        need_tensor(x, e->args[i], "chunk()");
    }
    cl_expr *a = e->args[0];
    switch (b->kind) {
    case FN_UNARY:
        e->shape = a->shape;
        return;
    case FN_BINARY:
        e->shape = broadcast(x, e, a, e->args[1], name);
        return;
    case FN_POW:
        if (!e->args[1]->is_const)
            cl_fail(x, e->args[1]->span, "for a power of a value, write exp(p * log(x))",
                    "the exponent of pow() must be a number");
        e->shape = a->shape;
        return;
    case FN_REDUCE:
    case FN_VAR:
    case FN_LAYERNORM:
        if (a->shape.rank == 0)
            cl_fail(x, a->span, NULL, "%s() needs a value with at least one axis", name);
        if (b->kind == FN_LAYERNORM && e->nargs == 2 && !e->args[1]->is_const)
            cl_fail(x, e->args[1]->span, NULL, "the eps of layernorm() must be a number");
        e->shape = a->shape;
        if (b->kind != FN_LAYERNORM) e->shape.d[e->shape.rank - 1] = dim_k(1);
        return;
    case FN_CHUNK: {
        int64_t n = const_int(x, e->args[1], "the number of parts", 1, CL_MAX_CHUNK);
        int rank = a->shape.rank;
        if (rank == 0) cl_fail(x, a->span, NULL, "chunk() needs a value with at least one axis");
        int64_t axis = e->nargs == 3 ? const_int(x, e->args[2], "the axis", -rank, rank - 1) : -1;
        if (axis < 0) axis += rank;
        cl_dim d = a->shape.d[axis];
        cl_dim part;
        for (int k = 0; k < CL_NSYM; k++) {
            if (d.c[k] % n) {
                char s[96], t[80];
                cl_fail(x, e->span, "the size of that axis must be a multiple of the number of parts",
                        "cannot chunk '%s' (axis of size %s) into %lld equal parts",
                        cl_snippet(c, a->span, t, sizeof t), cl_dim_str(d, s, sizeof s), (long long)n);
            }
            part.c[k] = d.c[k] / n;
        }
        e->shape = a->shape;
        e->shape.d[axis] = part;
        e->chunk_axis = (int)axis;
        if (n > 1 && !allow_parts)
            cl_fail(x, e->span, "assign its parts: a, b = chunk(x, 2)",
                    "%s() gives %lld values and cannot be used as one", name, (long long)n);
        e->nparts = n > 1 ? (int)n : 0;
        return;
    }
    case FN_CONCAT: {
        cl_shape r = a->shape;
        if (r.rank == 0) cl_fail(x, a->span, NULL, "concat() needs values with at least one axis");
        for (int i = 1; i < e->nargs; i++) {
            const cl_shape *s = &e->args[i]->shape;
            int ok = s->rank == r.rank;
            for (int k = 0; ok && k < r.rank - 1; k++) ok = cl_dim_eq(s->d[k], r.d[k]);
            if (!ok) {
                char s1[160], s2[160];
                cl_fail(x, e->args[i]->span, "concat joins along the last axis; the other axes must agree",
                        "concat: shape %s does not fit with %s", sh(s, s2), sh(&a->shape, s1));
            }
            for (int k = 0; k < CL_NSYM; k++)
                r.d[r.rank - 1].c[k] = coef(x, e, r.d[r.rank - 1].c[k] + s->d[r.rank - 1].c[k]);
        }
        e->shape = r;
        return;
    }
    }
}

static void check_matmul(cl_ctx *x, cl_expr *e) {
    cl_expr *a = e->args[0], *b = e->args[1];
    char s1[160], s2[160], t1[80], t2[80], hint[400];
    for (int i = 0; i < 2; i++) {
        cl_expr *o = e->args[i];
        if (o->shape.rank != 2) {
            snprintf(hint, sizeof hint, "'%s' is %s; use '*' for elementwise products",
                     cl_snippet(x->cell, o->span, t1, sizeof t1), sh(&o->shape, s1));
            cl_fail(x, e->at, hint, "'@' needs two matrices (2 axes each)");
        }
    }
    if (!cl_dim_eq(a->shape.d[1], b->shape.d[0])) {
        cl_snippet(x->cell, a->span, t1, sizeof t1);
        cl_snippet(x->cell, b->span, t2, sizeof t2);
        if (cl_dim_eq(a->shape.d[1], b->shape.d[1]) && b->kind != CE_TRANS)
            snprintf(hint, sizeof hint, "did you mean '%s @ %s^T'? weights are stored [out, in], as in PyTorch",
                     t1, t2);
        else
            snprintf(hint, sizeof hint, "'%s' is %s and '%s' is %s", t1, sh(&a->shape, s1), t2,
                     sh(&b->shape, s2));
        cl_fail(x, e->at, hint, "matrix product of %s and %s: the inner sizes differ",
                sh(&a->shape, s1), sh(&b->shape, s2));
    }
    e->shape.rank = 2;
    e->shape.d[0] = a->shape.d[0];
    e->shape.d[1] = b->shape.d[1];
}

static void check_slice(cl_ctx *x, cl_expr *e) {
    cl_expr *a = e->args[0];
    char s[96], t[96];
    if (e->nranges != a->shape.rank) {
        char s1[160];
        cl_fail(x, e->at, "give one range per axis; ':' takes a whole axis",
                "%d ranges for a value of shape %s", e->nranges, sh(&a->shape, s1));
    }
    e->shape = a->shape;
    for (int i = 0; i < e->nranges; i++) {
        cl_range *r = &e->ranges[i];
        if (r->whole) continue;
        cl_dim d = a->shape.d[i];
        if (d.c[CL_B])
            cl_fail(x, r->span, "take the batch axis whole, with ':'", "cannot slice the batch axis");
        cl_dim lo = r->lo ? size_of(x, r->lo) : dim_k(0);
        cl_dim hi = r->hi ? size_of(x, r->hi) : d;
        cl_dim len, rest;
        for (int k = 0; k < CL_NSYM; k++) {
            len.c[k] = coef(x, e, hi.c[k] - lo.c[k]);
            rest.c[k] = coef(x, e, d.c[k] - hi.c[k]);
        }
        /* 0 <= lo < hi <= d for every I, H >= 1. */
        int ok = lo.c[CL_I] >= 0 && lo.c[CL_H] >= 0 && lo.c[CL_K] >= 0 &&
                 len.c[CL_I] >= 0 && len.c[CL_H] >= 0 && len.c[CL_K] + len.c[CL_I] + len.c[CL_H] >= 1 &&
                 rest.c[CL_I] >= 0 && rest.c[CL_H] >= 0 && rest.c[CL_K] >= 0;
        if (!ok)
            cl_fail(x, r->span, "ranges are lo:hi with 0 <= lo < hi <= size, for every I and H",
                    "range %s:%s does not fit an axis of size %s", cl_dim_str(lo, s, sizeof s),
                    cl_dim_str(hi, t, sizeof t), cl_dim_str(d, (char[96]){0}, 96));
        e->shape.d[i] = len;
        r->lo_dim = lo;
        r->hi_dim = hi;
    }
}

static void check_expr(cl_ctx *x, cl_expr *e, int stmt, int allow_parts) {
    cl_cell *c = x->cell;
    switch (e->kind) {
    case CE_NUM:
        fold(x, e, e->num);
        return;
    case CE_NAME:
        resolve(x, e, stmt);
        switch (e->sym) {
        case CS_INPUT:
            e->shape = (cl_shape){2, {{{0, 0, 0, 1}}, {{0, 1, 0, 0}}}};
            return;
        case CS_STATE:
            e->shape = (cl_shape){2, {{{0, 0, 0, 1}}, {{0, 0, 1, 0}}}};
            return;
        case CS_PARAM:
            e->shape = c->params[e->index].shape;
            return;
        case CS_LOCAL: {
            const cl_local *l = &c->locals[e->index];
            e->shape = l->shape;
            if (l->is_const) e->is_const = 1, e->num = l->value;
            return;
        }
        default:
            return;
        }
    case CE_CALL:
        check_call(x, e, stmt, allow_parts);
        return;
    case CE_NEG:
        check_expr(x, e->args[0], stmt, 0);
        need_tensor(x, e->args[0], "chunk()");
        e->shape = e->args[0]->shape;
        if (e->args[0]->is_const) fold(x, e, -e->args[0]->num);
        return;
    case CE_TRANS: {
        cl_expr *a = e->args[0];
        check_expr(x, a, stmt, 0);
        need_tensor(x, a, "chunk()");
        if (a->shape.rank != 2) {
            char s1[160], t1[80];
            cl_fail(x, e->at, NULL, "^T transposes a matrix, but '%s' is %s",
                    cl_snippet(c, a->span, t1, sizeof t1), sh(&a->shape, s1));
        }
        e->shape.rank = 2;
        e->shape.d[0] = a->shape.d[1];
        e->shape.d[1] = a->shape.d[0];
        return;
    }
    case CE_SLICE:
        check_expr(x, e->args[0], stmt, 0);
        need_tensor(x, e->args[0], "chunk()");
        check_slice(x, e);
        return;
    case CE_BIN: {
        cl_expr *a = e->args[0], *b = e->args[1];
        check_expr(x, a, stmt, 0);
        check_expr(x, b, stmt, 0);
        need_tensor(x, a, "chunk()");
        need_tensor(x, b, "chunk()");
        if (e->op == '@') {
            check_matmul(x, e);
            return;
        }
        if (a->is_const && b->is_const) {
            double u = a->num, v = b->num;
            fold(x, e, e->op == '+' ? u + v : e->op == '-' ? u - v : e->op == '*' ? u * v : u / v);
            return;
        }
        char opname[2] = {(char)e->op, 0};
        e->shape = broadcast(x, e, a, b, opname);
        return;
    }
    }
}

/* -------------------------------------------------------- statements */

static const cl_shape BH = {2, {{{0, 0, 0, 1}}, {{0, 0, 1, 0}}}};

static void need_bh(cl_ctx *x, const cl_expr *e, const char *what, const char *hint) {
    if (e->shape.rank == 2 && cl_dim_eq(e->shape.d[0], BH.d[0]) && cl_dim_eq(e->shape.d[1], BH.d[1]))
        return;
    char s1[160], t1[80];
    cl_fail(x, e->span, hint, "%s must be [B, H], but '%s' is %s", what,
            cl_snippet(x->cell, e->span, t1, sizeof t1), sh(&e->shape, s1));
}

static void check_assign(cl_ctx *x, int si) {
    cl_cell *c = x->cell;
    cl_stmt *s = &c->stmts[si];
    check_expr(x, s->rhs, si, s->ntargets > 1);
    int parts = s->rhs->nparts ? s->rhs->nparts : 1;
    if (parts != s->ntargets) {
        if (s->ntargets > 1 && !s->rhs->nparts)
            cl_fail(x, s->span, "only chunk() gives several values", "%d names but one value",
                    s->ntargets);
        cl_fail(x, s->rhs->span, "assign one name per part",
                "chunk() gives %d values but %d name%s assigned", parts, s->ntargets,
                s->ntargets == 1 ? " is" : "s are");
    }
    for (int k = 0; k < s->ntargets; k++) {
        cl_target *t = &s->targets[k];
        char n[64], hint[192], at[32];
        cl_span_str(c, t->name, n, sizeof n);
        int st = -1;
        if (t->prime) {
            st = state_find(c, t->name);
            if (st < 0)
                cl_fail(x, t->name, "only a state has a next value (h')",
                        "'%s' is not a state", n);
            int l = local_find(c, t->name, 1);
            if (l >= 0) {
                snprintf(hint, sizeof hint, "%s' was assigned at %s; every name is assigned once", n,
                         cl_where(c, c->locals[l].name, at, sizeof at));
                cl_fail(x, t->name, hint, "redefinition of %s'", n);
            }
            char what[96];
            snprintf(what, sizeof what, "the next value of state '%s'", n);
            need_bh(x, s->rhs, what, NULL);
        } else {
            check_new_name(x, t->name);
            for (int j = 0; j < k; j++)
                if (!s->targets[j].prime && cl_span_eq(c, s->targets[j].name, t->name))
                    cl_fail(x, t->name, NULL, "'%s' is assigned twice in one statement", n);
        }
        if (c->nlocals == CL_MAX_STMTS)
            cl_fail(x, t->name, NULL, "too many names (the limit is %d)", CL_MAX_STMTS);
        c->locals = cl_grow(x, c->locals, &c->cap_locals, c->nlocals + 1, sizeof *c->locals);
        cl_local *l = &c->locals[c->nlocals];
        memset(l, 0, sizeof *l);
        l->name = t->name;
        l->state = st;
        l->shape = s->rhs->shape;
        l->is_const = s->rhs->is_const;
        l->value = s->rhs->num;
        t->local = c->nlocals;
        if (st >= 0) c->next_local[st] = c->nlocals;
        c->nlocals++;
    }
}

static void check_params(cl_ctx *x) {
    cl_cell *c = x->cell;
    if (c->nparams > WEFT_CELL_MAX_PARAMS)
        cl_fail(x, c->params[WEFT_CELL_MAX_PARAMS].name, NULL,
                "too many parameters (the limit is %d)", WEFT_CELL_MAX_PARAMS);
    for (int i = 0; i < c->nparams; i++) {
        cl_param *p = &c->params[i];
        char n[64], hint[192], at[32];
        cl_span_str(c, p->name, n, sizeof n);
        for (int j = 0; j < i; j++)
            if (cl_span_eq(c, c->params[j].name, p->name)) {
                snprintf(hint, sizeof hint, "'%s' is declared at %s", n,
                         cl_where(c, c->params[j].name, at, sizeof at));
                cl_fail(x, p->name, hint, "redefinition of '%s'", n);
            }
        if (cl_span_eq(c, c->input.name, p->name) || state_find(c, p->name) >= 0) {
            declared_as(c, p->name, hint, sizeof hint);
            cl_fail(x, p->name, hint, "redefinition of '%s'", n);
        }
        if (cl_span_is(c, p->name, "I") || cl_span_is(c, p->name, "H") || cl_span_is(c, p->name, "B"))
            cl_fail(x, p->name, "I, H and B stand for the input, hidden and batch sizes",
                    "'%s' is reserved", n);
        p->shape.rank = p->ndim;
        for (int d = 0; d < p->ndim; d++) {
            p->shape.d[d] = size_of(x, p->dims[d]);
            check_positive(x, p->dims[d], p->shape.d[d], "size");
        }
        if (p->init == WEFT_INIT_CONST && !isfinite(p->value))
            cl_fail(x, p->init_span, NULL, "initial value is not finite");
    }
}

static void check_header(cl_ctx *x) {
    cl_cell *c = x->cell;
    cl_dim d = size_of(x, c->input.size);
    if (!cl_dim_eq(d, (cl_dim){{0, 1, 0, 0}}))
        cl_fail(x, c->input.size->span, "write the input as x[I]; I is set when a layer is built",
                "the input's size must be I");
    for (int i = 0; i < c->nstates; i++) {
        d = size_of(x, c->states[i].size);
        if (!cl_dim_eq(d, (cl_dim){{0, 0, 1, 0}}))
            cl_fail(x, c->states[i].size->span,
                    "every state is [B, H]: layers stack and carry states of the hidden size",
                    "a state's size must be H");
        if (cl_span_eq(c, c->states[i].name, c->input.name)) {
            char n[64];
            cl_fail(x, c->states[i].name, NULL, "redefinition of '%s' (it is the input)",
                    cl_span_str(c, c->input.name, n, sizeof n));
        }
        for (int j = 0; j < i; j++)
            if (cl_span_eq(c, c->states[j].name, c->states[i].name)) {
                char n[64];
                cl_fail(x, c->states[i].name, NULL, "redefinition of state '%s'",
                        cl_span_str(c, c->states[i].name, n, sizeof n));
            }
    }
    cl_span all[1 + WEFT_CELL_MAX_STATES];
    all[0] = c->input.name;
    for (int i = 0; i < c->nstates; i++) all[i + 1] = c->states[i].name;
    for (int i = 0; i <= c->nstates; i++)
        if (cl_span_is(c, all[i], "I") || cl_span_is(c, all[i], "H") || cl_span_is(c, all[i], "B"))
            cl_fail(x, all[i], "I, H and B stand for the input, hidden and batch sizes",
                    "'%s' is reserved", cl_span_str(c, all[i], (char[8]){0}, 8));
}

void cl_check(cl_ctx *x) {
    cl_cell *c = x->cell;
    check_header(x);
    check_params(x);
    for (int i = 0; i < c->nstates; i++) c->next_local[i] = -1;
    c->output_stmt = -1;
    for (int i = 0; i < c->nstmts; i++) {
        cl_stmt *s = &c->stmts[i];
        if (s->kind == ST_OUTPUT) {
            if (c->output_stmt >= 0) {
                char at[32], hint[64];
                snprintf(hint, sizeof hint, "the output is declared at %s",
                         cl_where(c, c->stmts[c->output_stmt].span, at, sizeof at));
                cl_fail(x, s->span, hint, "a cell has one output");
            }
            check_expr(x, s->rhs, i, 0);
            need_bh(x, s->rhs, "the output", "layers stack cells by their output");
            c->output_stmt = i;
        } else {
            check_assign(x, i);
        }
    }
    for (int i = 0; i < c->nstates; i++)
        if (c->next_local[i] < 0) {
            char n[64], hint[96];
            cl_span_str(c, c->states[i].name, n, sizeof n);
            snprintf(hint, sizeof hint, "add a line: %s' = ...", n);
            cl_fail(x, c->states[i].name, hint, "state '%s' is never updated", n);
        }
    /* Unused things are warnings: the cell still works. */
    char n[64];
    if (!c->input.used)
        cl_warn(x, c->input.name, "input '%s' is never used", cl_span_str(c, c->input.name, n, sizeof n));
    for (int i = 0; i < c->nparams; i++)
        if (!c->params[i].used)
            cl_warn(x, c->params[i].name, "parameter '%s' is never used", c->params[i].cname);
    for (int i = 0; i < c->nlocals; i++)
        if (!c->locals[i].used && c->locals[i].state < 0)
            cl_warn(x, c->locals[i].name, "'%s' is assigned but never used",
                    cl_span_str(c, c->locals[i].name, n, sizeof n));
    if (x->nwarnings > CL_MAX_WARNINGS) {
        char more[96];
        snprintf(more, sizeof more, "... and %d more warnings\n", x->nwarnings - CL_MAX_WARNINGS);
        size_t k = strlen(more);
        char *w = realloc(c->warnings, c->wlen + k + 1);
        if (w) {
            memcpy(w + c->wlen, more, k + 1);
            c->warnings = w;
            c->wlen += k;
            c->wcap = c->wlen + 1;
        }
    }
    /* G in [G*H, I]: informational, the largest stacked [k*H, ...] block. */
    c->gates = 1;
    for (int i = 0; i < c->nparams; i++) {
        cl_dim d = c->params[i].shape.d[0];
        if (c->params[i].shape.rank == 2 && d.c[CL_H] > c->gates && !d.c[CL_I] && !d.c[CL_K] &&
            d.c[CL_H] <= CL_MAX_CHUNK)
            c->gates = (int)d.c[CL_H];
    }
}
