/* weft — the cell language: printing a parsed cell back as canonical text.
 *
 * Parameters first (one per line, shapes as the checker resolved them),
 * then the statements in order, with only the parentheses precedence
 * needs.  Printing, parsing the result and printing again gives the same
 * text, and both parses emit the same graph (tests/test_cell_lang.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_lang.h"
#include "text.h"

static void span(weft_text *o, const cl_cell *c, cl_span s) { weft_text_put(o, "%.*s", (int)s.len, c->text + s.off); }

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

static void expr(weft_text *o, const cl_cell *c, const cl_expr *e, int min);

static void range(weft_text *o, const cl_cell *c, const cl_range *r) {
    if (r->lo) expr(o, c, r->lo, 0);
    weft_text_put(o, ":");
    if (r->hi) expr(o, c, r->hi, 0);
}

static void expr(weft_text *o, const cl_cell *c, const cl_expr *e, int min) {
    int p = prec(e);
    if (p < min) weft_text_put(o, "(");
    switch (e->kind) {
    case CE_NUM: weft_text_put(o, "%.17g", e->num); break;
    case CE_NAME:
        span(o, c, e->at);
        if (e->prime) weft_text_put(o, "'");
        break;
    case CE_CALL:
        span(o, c, e->at);
        weft_text_put(o, "(");
        for (int i = 0; i < e->nargs; i++) {
            if (i) weft_text_put(o, ", ");
            expr(o, c, e->args[i], 0);
        }
        weft_text_put(o, ")");
        break;
    case CE_BIN:
        expr(o, c, e->args[0], p);
        weft_text_put(o, " %c ", e->op);
        expr(o, c, e->args[1], p + 1); /* left-associative */
        break;
    case CE_NEG:
        weft_text_put(o, "-");
        expr(o, c, e->args[0], 3);
        break;
    case CE_TRANS:
        expr(o, c, e->args[0], 4);
        weft_text_put(o, "^T");
        break;
    case CE_SLICE:
        expr(o, c, e->args[0], 4);
        weft_text_put(o, "[");
        for (int i = 0; i < e->nranges; i++) {
            if (i) weft_text_put(o, ", ");
            range(o, c, &e->ranges[i]);
        }
        weft_text_put(o, "]");
        break;
    }
    if (p < min) weft_text_put(o, ")");
}

static void var(weft_text *o, const cl_cell *c, const cl_var *v, const char *size) {
    span(o, c, v->name);
    weft_text_put(o, "[%s]", size);
}

char *cl_print(const cl_cell *c) {
    weft_text o = {0};
    weft_text_put(&o, "cell ");
    span(&o, c, c->name);
    weft_text_put(&o, "(");
    var(&o, c, &c->input, "I");
    weft_text_put(&o, "; ");
    for (int i = 0; i < c->nstates; i++) {
        if (i) weft_text_put(&o, ", ");
        var(&o, c, &c->states[i], "H");
    }
    weft_text_put(&o, ") {\n");
    if (c->doc && *c->doc) {
        weft_text_put(&o, "  \"");
        for (const char *s = c->doc; *s; s++) {
            if (*s == '"' || *s == '\\') weft_text_put(&o, "\\%c", *s);
            else if (*s == '\n') weft_text_put(&o, "\\n");
            else if (*s == '\t') weft_text_put(&o, "\\t");
            else weft_text_put(&o, "%c", *s);
        }
        weft_text_put(&o, "\"\n");
    }
    for (int i = 0; i < c->nparams; i++) {
        const cl_param *p = &c->params[i];
        weft_text_put(&o, "  %s %s[", p->is_bias ? "bias" : "param", p->cname);
        for (int d = 0; d < p->shape.rank; d++) {
            char s[96];
            weft_text_put(&o, "%s%s", d ? ", " : "", cl_dim_str(p->shape.d[d], s, sizeof s));
        }
        weft_text_put(&o, "]");
        if (p->has_init) {
            if (p->init == WEFT_INIT_UNIFORM_INV_SQRT_H) weft_text_put(&o, " = uniform");
            else weft_text_put(&o, " = %.17g", p->value);
        }
        weft_text_put(&o, "\n");
    }
    for (int i = 0; i < c->nstmts; i++) {
        const cl_stmt *s = &c->stmts[i];
        weft_text_put(&o, "  ");
        if (s->kind == ST_OUTPUT) {
            weft_text_put(&o, "output ");
        } else {
            for (int k = 0; k < s->ntargets; k++) {
                if (k) weft_text_put(&o, ", ");
                span(&o, c, s->targets[k].name);
                if (s->targets[k].prime) weft_text_put(&o, "'");
            }
            weft_text_put(&o, " = ");
        }
        expr(&o, c, s->rhs, 0);
        weft_text_put(&o, "\n");
    }
    weft_text_put(&o, "}\n");
    if (o.failed) {
        free(o.s);
        return NULL;
    }
    return o.s;
}
