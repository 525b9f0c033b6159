/* weft — the cell language: the parser (tokens -> AST).
 *
 *   file    := 'cell' NAME '(' var ';' var {',' var} ')' '{' body '}'
 *   var     := NAME '[' size ']'
 *   body    := [STRING] { stmt (NEWLINE | ';') }
 *   stmt    := ('param' | 'bias') decl {',' decl}
 *            | 'output' expr
 *            | target {',' target} '=' expr        target := NAME | NAME'
 *   decl    := NAME '[' size {',' size} ']' ['=' (number | 'uniform')]
 *   expr    := term {('+' | '-') term}
 *   term    := unary {('*' | '/' | '@') unary}       left to right, as Python
 *   unary   := '-' unary | postfix
 *   postfix := primary {'^' 'T' | '[' range {',' range} ']'}
 *   primary := NUMBER | NAME | NAME' | NAME '(' [expr {',' expr}] ')' | '(' expr ')'
 *   range   := ':' | [size] ':' [size]
 *
 * Sizes are expressions too; the checker restricts them to I, H, integers,
 * + - * and parentheses.  Recursion is bounded by CL_MAX_DEPTH, and so is
 * the height of every tree (a long a+a+...+a chain is deep, too), so the
 * later recursive walks are bounded. */
#include <stdio.h>
#include <string.h>

#include "cell_lang.h"

/* param, bias and output are keywords only where a statement starts and
 * not followed by '=' or ',' (so a PyTorch-style parameter may be called
 * "bias"). */

static cl_tok *peek(cl_ctx *x) { return &x->toks[x->pos]; }
static cl_tok *next(cl_ctx *x) {
    cl_tok *t = &x->toks[x->pos];
    if (t->kind != TK_EOF) x->pos++;
    return t;
}
static int is_punct(const cl_tok *t, int ch) { return t->kind == TK_PUNCT && t->ch == ch; }
static int accept(cl_ctx *x, int ch) {
    if (!is_punct(peek(x), ch)) return 0;
    x->pos++;
    return 1;
}
static int is_word(cl_ctx *x, const cl_tok *t, const char *w) {
    return t->kind == TK_IDENT && !t->prime && cl_span_is(x->cell, t->span, w);
}

static const char *describe(cl_ctx *x, const cl_tok *t, char *buf, size_t n) {
    switch (t->kind) {
    case TK_EOF: return "the end of the file";
    case TK_NL: return "the end of the line";
    case TK_STR: return "a string";
    case TK_NUM: {
        char s[48];
        snprintf(buf, n, "number %s", cl_span_str(x->cell, t->span, s, sizeof s));
        return buf;
    }
    case TK_IDENT: {
        char s[48];
        snprintf(buf, n, "'%s'", cl_span_str(x->cell, t->span, s, sizeof s));
        return buf;
    }
    case TK_PUNCT: snprintf(buf, n, "'%c'", t->ch); return buf;
    }
    return "?";
}

static _Noreturn void expected(cl_ctx *x, const char *what, const char *hint) {
    char b[64];
    cl_tok *t = peek(x);
    cl_fail(x, t->span, hint, "expected %s, found %s", what, describe(x, t, b, sizeof b));
}

static void expect(cl_ctx *x, int ch, const char *hint) {
    if (accept(x, ch)) return;
    char what[8];
    snprintf(what, sizeof what, "'%c'", ch);
    expected(x, what, hint);
}

/* A closing bracket, with the opening one named in the hint. */
static void expect_close(cl_ctx *x, int ch, cl_span open) {
    if (accept(x, ch)) return;
    char hint[96], at[32];
    snprintf(hint, sizeof hint, "to match the '%c' at %s", x->cell->text[open.off],
             cl_where(x->cell, open, at, sizeof at));
    char what[8];
    snprintf(what, sizeof what, "'%c'", ch);
    expected(x, what, hint);
}

static cl_span name_span(const cl_tok *t) { return (cl_span){t->span.off, t->name_len}; }

/* A name being declared: an identifier without a prime. */
static cl_tok *decl_name(cl_ctx *x, const char *what) {
    cl_tok *t = peek(x);
    if (t->kind != TK_IDENT) {
        char w[64];
        snprintf(w, sizeof w, "%s name", what);
        expected(x, w, NULL);
    }
    if (t->prime)
        cl_fail(x, t->span, "a prime marks a state's next value, as in h' = ...",
                "a %s name takes no prime", what);
    return next(x);
}

static void enter(cl_ctx *x, cl_span at) {
    if (++x->depth > CL_MAX_DEPTH)
        cl_fail(x, at, "split it into named steps", "expression is nested too deeply (more than %d levels)",
                CL_MAX_DEPTH);
}

static cl_expr *mk(cl_ctx *x, cl_ekind k, cl_span span, cl_span at, int nargs) {
    cl_expr *e = cl_alloc(x, sizeof *e);
    e->kind = k;
    e->span = span;
    e->at = at;
    e->nargs = nargs;
    if (nargs) e->args = cl_alloc(x, (size_t)nargs * sizeof *e->args);
    return e;
}

/* Height bookkeeping shared by every node with children. */
static void finish(cl_ctx *x, cl_expr *e) {
    int d = 0;
    for (int i = 0; i < e->nargs; i++)
        if (e->args[i]->depth > d) d = e->args[i]->depth;
    for (int i = 0; i < e->nranges; i++) {
        if (e->ranges[i].lo && e->ranges[i].lo->depth > d) d = e->ranges[i].lo->depth;
        if (e->ranges[i].hi && e->ranges[i].hi->depth > d) d = e->ranges[i].hi->depth;
    }
    e->depth = d + 1;
    if (e->depth > CL_MAX_DEPTH)
        cl_fail(x, e->at, "split it into named steps",
                "expression is nested too deeply (more than %d levels)", CL_MAX_DEPTH);
}

static cl_expr *expr(cl_ctx *x);

static cl_expr *primary(cl_ctx *x) {
    cl_tok *t = peek(x);
    if (t->kind == TK_NUM) {
        next(x);
        cl_expr *e = mk(x, CE_NUM, t->span, t->span, 0);
        e->num = t->num;
        e->depth = 1;
        return e;
    }
    if (t->kind == TK_IDENT) {
        next(x);
        if (is_punct(peek(x), '(')) {
            if (t->prime) cl_fail(x, t->span, NULL, "a function name takes no prime");
            cl_span open = next(x)->span;
            cl_expr *args[CL_MAX_ARGS];
            int n = 0;
            if (!is_punct(peek(x), ')')) {
                do {
                    if (n == CL_MAX_ARGS)
                        cl_fail(x, peek(x)->span, NULL, "too many arguments (the limit is %d)",
                                CL_MAX_ARGS);
                    args[n++] = expr(x);
                } while (accept(x, ','));
            }
            cl_span close = peek(x)->span;
            expect_close(x, ')', open);
            cl_expr *e = mk(x, CE_CALL, cl_span_join(t->span, close), name_span(t), n);
            if (n) memcpy(e->args, args, (size_t)n * sizeof *args);
            e->op = -1; /* resolved by the checker */
            finish(x, e);
            return e;
        }
        cl_expr *e = mk(x, CE_NAME, t->span, name_span(t), 0);
        e->prime = t->prime;
        e->depth = 1;
        return e;
    }
    if (is_punct(t, '(')) {
        cl_span open = next(x)->span;
        cl_expr *e = expr(x);
        cl_span close = peek(x)->span;
        expect_close(x, ')', open);
        e->span = cl_span_join(open, close);
        return e;
    }
    if (is_punct(t, '^'))
        cl_fail(x, t->span, "write x^T after a value", "'^' needs a value before it");
    expected(x, "a value (a number, a name, a call or '(')", NULL);
}

/* A slice range; an index without ':' would drop an axis, which no cell
 * needs, so it is refused rather than half-supported. */
static cl_range range(cl_ctx *x) {
    cl_range r = {0};
    cl_span start = peek(x)->span;
    if (!is_punct(peek(x), ':')) r.lo = expr(x);
    if (!accept(x, ':'))
        cl_fail(x, cl_span_join(start, x->toks[x->pos - 1].span),
                "take a range such as 0:H (one index per axis, ':' for a whole axis)",
                "an index must be a range lo:hi");
    if (!is_punct(peek(x), ',') && !is_punct(peek(x), ']')) r.hi = expr(x);
    r.whole = !r.lo && !r.hi;
    r.span = cl_span_join(start, x->toks[x->pos - 1].span);
    return r;
}

static cl_expr *postfix(cl_ctx *x) {
    cl_expr *e = primary(x);
    for (;;) {
        cl_tok *t = peek(x);
        if (is_punct(t, '^')) {
            next(x);
            cl_tok *T = peek(x);
            if (!is_word(x, T, "T"))
                cl_fail(x, T->span, "for powers write pow(x, p) or square(x)",
                        "expected 'T' after '^' (transpose)");
            next(x);
            cl_expr *p = mk(x, CE_TRANS, cl_span_join(e->span, T->span), t->span, 1);
            p->args[0] = e;
            finish(x, p);
            e = p;
        } else if (is_punct(t, '[')) {
            cl_span open = next(x)->span;
            cl_range rs[WEFT_MAX_DIMS];
            int n = 0;
            do {
                if (n == WEFT_MAX_DIMS)
                    cl_fail(x, peek(x)->span, NULL, "too many indices (values have at most %d axes)",
                            WEFT_MAX_DIMS);
                rs[n++] = range(x);
            } while (accept(x, ','));
            cl_span close = peek(x)->span;
            expect_close(x, ']', open);
            cl_expr *s = mk(x, CE_SLICE, cl_span_join(e->span, close), open, 1);
            s->args[0] = e;
            s->nranges = n;
            s->ranges = cl_alloc(x, (size_t)n * sizeof *rs);
            memcpy(s->ranges, rs, (size_t)n * sizeof *rs);
            finish(x, s);
            e = s;
        } else {
            return e;
        }
    }
}

static cl_expr *unary(cl_ctx *x) {
    cl_tok *t = peek(x);
    enter(x, t->span);
    cl_expr *e;
    if (is_punct(t, '-')) {
        next(x);
        cl_expr *a = unary(x);
        e = mk(x, CE_NEG, cl_span_join(t->span, a->span), t->span, 1);
        e->args[0] = a;
        finish(x, e);
    } else if (is_punct(t, '+')) {
        cl_fail(x, t->span, "drop the '+'", "unary '+' is not supported");
    } else {
        e = postfix(x);
    }
    x->depth--;
    return e;
}

static cl_expr *binary(cl_ctx *x, cl_expr *(*sub)(cl_ctx *), const char *ops) {
    cl_expr *e = sub(x);
    for (;;) {
        cl_tok *t = peek(x);
        if (t->kind != TK_PUNCT || !strchr(ops, t->ch)) return e;
        next(x);
        cl_expr *b = sub(x);
        cl_expr *p = mk(x, CE_BIN, cl_span_join(e->span, b->span), t->span, 2);
        p->op = t->ch;
        p->args[0] = e;
        p->args[1] = b;
        finish(x, p);
        e = p;
    }
}

static cl_expr *term(cl_ctx *x) { return binary(x, unary, "*/@"); }

static cl_expr *expr(cl_ctx *x) {
    enter(x, peek(x)->span);
    cl_expr *e = binary(x, term, "+-");
    x->depth--;
    return e;
}

/* name[size] for the input and states. */
static cl_var var(cl_ctx *x, const char *what) {
    cl_var v = {0};
    cl_tok *t = decl_name(x, what);
    v.name = t->span;
    cl_span open = peek(x)->span;
    char hint[96];
    snprintf(hint, sizeof hint, "give its size, as in %s[%s]", what[0] == 'i' ? "x" : "h",
             what[0] == 'i' ? "I" : "H");
    expect(x, '[', hint);
    v.size = expr(x);
    expect_close(x, ']', open);
    return v;
}

static void end_stmt(cl_ctx *x) {
    cl_tok *t = peek(x);
    if (t->kind == TK_NL || is_punct(t, ';')) {
        next(x);
        return;
    }
    if (is_punct(t, '}')) return;
    expected(x, "the end of the statement", NULL);
}

static void param_decl(cl_ctx *x, int is_bias) {
    cl_cell *c = x->cell;
    do {
        cl_tok *t = decl_name(x, is_bias ? "bias" : "parameter");
        c->params = cl_grow(x, c->params, &c->cap_params, c->nparams + 1, sizeof *c->params);
        cl_param *p = &c->params[c->nparams++];
        memset(p, 0, sizeof *p);
        p->name = t->span;
        cl_span_str(c, t->span, p->cname, sizeof p->cname);
        p->is_bias = is_bias;
        p->init = WEFT_INIT_UNIFORM_INV_SQRT_H;
        cl_span open = peek(x)->span;
        expect(x, '[', "give its shape, as in W[4*H, I]");
        do {
            if (p->ndim == WEFT_MAX_DIMS)
                cl_fail(x, peek(x)->span, NULL, "too many dimensions (the limit is %d)",
                        WEFT_MAX_DIMS);
            p->dims[p->ndim++] = expr(x);
        } while (accept(x, ','));
        expect_close(x, ']', open);
        if (accept(x, '=')) {
            cl_tok *v = peek(x);
            p->has_init = 1;
            if (is_word(x, v, "uniform")) {
                next(x);
                p->init_span = v->span;
            } else {
                int neg = accept(x, '-');
                v = peek(x);
                if (v->kind != TK_NUM)
                    expected(x, "an initial value (a number, or 'uniform')",
                             "'= 0' zeros, '= 1' ones, '= 0.5' a constant, '= uniform' U(-1/sqrt(H), 1/sqrt(H))");
                next(x);
                p->value = neg ? -v->num : v->num;
                p->init = p->value == 0 ? WEFT_INIT_ZEROS
                        : p->value == 1 ? WEFT_INIT_ONES : WEFT_INIT_CONST;
                p->init_span = v->span;
            }
        }
    } while (accept(x, ','));
}

static int is_keyword(cl_ctx *x, const cl_tok *t, const char *w) {
    const cl_tok *n = t + 1; /* tokens end with TK_EOF, so t + 1 exists */
    return is_word(x, t, w) && !is_punct(n, '=') && !is_punct(n, ',');
}

static void statement(cl_ctx *x) {
    cl_cell *c = x->cell;
    cl_tok *t = peek(x);
    if (is_keyword(x, t, "param") || is_keyword(x, t, "bias")) {
        next(x);
        param_decl(x, is_word(x, t, "bias"));
        return;
    }
    if (c->nstmts == CL_MAX_STMTS)
        cl_fail(x, t->span, NULL, "too many statements (the limit is %d)", CL_MAX_STMTS);
    c->stmts = cl_grow(x, c->stmts, &c->cap_stmts, c->nstmts + 1, sizeof *c->stmts);
    cl_stmt *s = &c->stmts[c->nstmts];
    memset(s, 0, sizeof *s);
    if (is_keyword(x, t, "output")) {
        next(x);
        s->kind = ST_OUTPUT;
        s->rhs = expr(x);
        s->span = cl_span_join(t->span, s->rhs->span);
        c->nstmts++;
        return;
    }
    if (t->kind != TK_IDENT)
        expected(x, "a statement",
                 "a statement is 'param ...', 'bias ...', 'name = expression' or 'output expression'");
    cl_target tg[CL_MAX_CHUNK];
    int n = 0;
    for (;;) {
        cl_tok *nt = peek(x);
        if (nt->kind != TK_IDENT) expected(x, "a name to assign", NULL);
        if (n == CL_MAX_CHUNK)
            cl_fail(x, nt->span, NULL, "too many names (the limit is %d)", CL_MAX_CHUNK);
        next(x);
        tg[n++] = (cl_target){.name = name_span(nt), .prime = nt->prime};
        if (!accept(x, ',')) break;
    }
    if (!is_punct(peek(x), '=')) {
        if (n == 1 && (is_punct(peek(x), '(') || peek(x)->kind == TK_IDENT))
            expected(x, "'='", "a statement is 'param ...', 'bias ...', 'name = expression' or "
                               "'output expression'");
        expected(x, "'='", NULL);
    }
    next(x);
    s->kind = ST_ASSIGN;
    s->ntargets = n;
    s->targets = cl_alloc(x, (size_t)n * sizeof *tg);
    memcpy(s->targets, tg, (size_t)n * sizeof *tg);
    s->rhs = expr(x);
    s->span = cl_span_join(t->span, s->rhs->span);
    c->nstmts++;
}

/* "..." with its escapes undone, into the arena. */
static char *unquote(cl_ctx *x, cl_span s) {
    const char *t = x->cell->text + s.off + 1;
    size_t n = s.len - 2, k = 0;
    char *out = cl_alloc(x, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\\' && i + 1 < n) {
            char e = t[++i];
            out[k++] = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else {
            out[k++] = t[i];
        }
    }
    out[k] = 0;
    return out;
}

void cl_parse(cl_ctx *x) {
    cl_cell *c = x->cell;
    while (peek(x)->kind == TK_NL) next(x);
    cl_tok *t = peek(x);
    if (!is_word(x, t, "cell"))
        expected(x, "'cell'", "a cell file starts with: cell NAME(x[I]; h[H]) { ... }");
    next(x);
    c->name = decl_name(x, "cell")->span;
    cl_span open = peek(x)->span;
    expect(x, '(', "the header is: cell NAME(x[I]; h[H]) or cell NAME(x[I]; h[H], c[H])");
    c->input = var(x, "input");
    if (is_punct(peek(x), ','))
        cl_fail(x, peek(x)->span, "a cell has one input: cell NAME(x[I]; h[H], c[H])",
                "expected ';' between the input and the states");
    expect(x, ';', "the header is: cell NAME(x[I]; h[H]) or cell NAME(x[I]; h[H], c[H])");
    do {
        if (c->nstates == WEFT_CELL_MAX_STATES)
            cl_fail(x, peek(x)->span, NULL, "too many states (the limit is %d)",
                    WEFT_CELL_MAX_STATES);
        c->states[c->nstates++] = var(x, "state");
    } while (accept(x, ','));
    expect_close(x, ')', open);
    cl_span body = peek(x)->span;
    expect(x, '{', NULL);
    while (peek(x)->kind == TK_NL || is_punct(peek(x), ';')) next(x);
    if (peek(x)->kind == TK_STR) {
        c->doc = unquote(x, next(x)->span);
        end_stmt(x);
    }
    for (;;) {
        while (peek(x)->kind == TK_NL || is_punct(peek(x), ';')) next(x);
        t = peek(x);
        if (is_punct(t, '}')) break;
        if (t->kind == TK_EOF) {
            char hint[96], at[32];
            snprintf(hint, sizeof hint, "the body opened at %s needs a closing '}'",
                     cl_where(c, body, at, sizeof at));
            cl_fail(x, t->span, hint, "unexpected end of the file");
        }
        if (t->kind == TK_STR)
            cl_fail(x, t->span, "the doc string comes first in the body", "unexpected string");
        statement(x);
        end_stmt(x);
    }
    next(x);
    while (peek(x)->kind == TK_NL) next(x);
    if (peek(x)->kind != TK_EOF)
        cl_fail(x, peek(x)->span, "a file holds one cell", "unexpected text after the cell's '}'");
}
