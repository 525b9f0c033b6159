/* weft — the cell language: printing a parsed cell back as canonical text.
 *
 * Parameters first (one per line, shapes as the checker resolved them),
 * then the statements in order, with only the parentheses precedence
 * needs.  Printing, parsing the result and printing again gives the same
 * text, and both parses emit the same graph (tests/test_cell_lang.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_lang.h"

typedef struct out {
    char *b;
    size_t n, cap;
    int failed;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    if (o->failed) return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
        va_end(ap2);
        o->failed = 1;
        return;
    }
    if (o->n + (size_t)k + 1 > o->cap) {
        size_t nc = o->cap ? o->cap : 1024;
        while (nc < o->n + (size_t)k + 1) nc *= 2;
        char *nb = realloc(o->b, nc);
        if (!nb) {
            va_end(ap2);
            o->failed = 1;
            return;
        }
        o->b = nb;
        o->cap = nc;
    }
    vsnprintf(o->b + o->n, o->cap - o->n, fmt, ap2);
    va_end(ap2);
    o->n += (size_t)k;
}

static void span(out *o, const cl_cell *c, cl_span s) { put(o, "%.*s", (int)s.len, c->text + s.off); }

/* Binding strength: + - (1) < * / @ (2) < unary minus (3) < postfix (4) < atoms (5). */
static int prec(const cl_expr *e) {
    switch (e->kind) {
    case CE_BIN: return e->op == '+' || e->op == '-' ? 1 : 2;
    case CE_NEG: return 3;
    case CE_TRANS:
    case CE_SLICE: return 4;
    default: return 5;
    }
}

static void expr(out *o, const cl_cell *c, const cl_expr *e, int min);

static void range(out *o, const cl_cell *c, const cl_range *r) {
    if (r->lo) expr(o, c, r->lo, 0);
    put(o, ":");
    if (r->hi) expr(o, c, r->hi, 0);
}

static void expr(out *o, const cl_cell *c, const cl_expr *e, int min) {
    int p = prec(e);
    if (p < min) put(o, "(");
    switch (e->kind) {
    case CE_NUM: put(o, "%.17g", e->num); break;
    case CE_NAME:
        span(o, c, e->at);
        if (e->prime) put(o, "'");
        break;
    case CE_CALL:
        span(o, c, e->at);
        put(o, "(");
        for (int i = 0; i < e->nargs; i++) {
            if (i) put(o, ", ");
            expr(o, c, e->args[i], 0);
        }
        put(o, ")");
        break;
    case CE_BIN:
        expr(o, c, e->args[0], p);
        put(o, " %c ", e->op);
        expr(o, c, e->args[1], p + 1); /* left-associative */
        break;
    case CE_NEG:
        put(o, "-");
        expr(o, c, e->args[0], 3);
        break;
    case CE_TRANS:
        expr(o, c, e->args[0], 4);
        put(o, "^T");
        break;
    case CE_SLICE:
        expr(o, c, e->args[0], 4);
        put(o, "[");
        for (int i = 0; i < e->nranges; i++) {
            if (i) put(o, ", ");
            range(o, c, &e->ranges[i]);
        }
        put(o, "]");
        break;
    }
    if (p < min) put(o, ")");
}

static void var(out *o, const cl_cell *c, const cl_var *v, const char *size) {
    span(o, c, v->name);
    put(o, "[%s]", size);
}

char *cl_print(const cl_cell *c) {
    out o = {0};
    put(&o, "cell ");
    span(&o, c, c->name);
    put(&o, "(");
    var(&o, c, &c->input, "I");
    put(&o, "; ");
    for (int i = 0; i < c->nstates; i++) {
        if (i) put(&o, ", ");
        var(&o, c, &c->states[i], "H");
    }
    put(&o, ") {\n");
    if (c->doc && *c->doc) {
        put(&o, "  \"");
        for (const char *s = c->doc; *s; s++) {
            if (*s == '"' || *s == '\\') put(&o, "\\%c", *s);
            else if (*s == '\n') put(&o, "\\n");
            else if (*s == '\t') put(&o, "\\t");
            else put(&o, "%c", *s);
        }
        put(&o, "\"\n");
    }
    for (int i = 0; i < c->nparams; i++) {
        const cl_param *p = &c->params[i];
        put(&o, "  %s %s[", p->is_bias ? "bias" : "param", p->cname);
        for (int d = 0; d < p->shape.rank; d++) {
            char s[96];
            put(&o, "%s%s", d ? ", " : "", cl_dim_str(p->shape.d[d], s, sizeof s));
        }
        put(&o, "]");
        if (p->has_init) {
            if (p->init == WEFT_INIT_UNIFORM_INV_SQRT_H) put(&o, " = uniform");
            else put(&o, " = %.17g", p->value);
        }
        put(&o, "\n");
    }
    for (int i = 0; i < c->nstmts; i++) {
        const cl_stmt *s = &c->stmts[i];
        put(&o, "  ");
        if (s->kind == ST_OUTPUT) {
            put(&o, "output ");
        } else {
            for (int k = 0; k < s->ntargets; k++) {
                if (k) put(&o, ", ");
                span(&o, c, s->targets[k].name);
                if (s->targets[k].prime) put(&o, "'");
            }
            put(&o, " = ");
        }
        expr(&o, c, s->rhs, 0);
        put(&o, "\n");
    }
    put(&o, "}\n");
    if (o.failed) {
        free(o.b);
        return NULL;
    }
    return o.b;
}
