/* weft — the cell language: private interface between its lexer, parser,
 * checker, lowering and printer (frontends/cell_lang*.c).
 *
 * The pipeline: bytes -> tokens (cell_lang_lex.c) -> AST (cell_lang_parse.c)
 * -> names resolved and shapes inferred symbolically (cell_lang_check.c) ->
 * weft_cell whose step() emits builder calls (cell_lang.c).  Every stage
 * reports problems through cl_fail(), which formats "file:line:col: message",
 * the source line, a caret and a hint, and unwinds to the entry point with
 * longjmp; all memory of a parse lives in one arena, so nothing leaks. */
#ifndef WEFT_CELL_LANG_H
#define WEFT_CELL_LANG_H

#include <setjmp.h>
#include <stdint.h>

#include "weft/cell.h"

/* Limits that keep any input, however hostile, cheap to reject. */
#define CL_MAX_FILE (1u << 20)  /* bytes of source */
#define CL_MAX_IDENT 40         /* layers append "_l12_reverse" to param names */
#define CL_MAX_DEPTH 64         /* nesting of expressions (recursion bound) */
#define CL_MAX_CHUNK 64         /* parts of one chunk() */
#define CL_MAX_ARGS 64          /* arguments of one call */
#define CL_MAX_COEF ((int64_t)1 << 40) /* |coefficient| of a size */
#define CL_MAX_STMTS 4096       /* statements, and names assigned */
#define CL_MAX_WARNINGS 20      /* kept; the rest are counted */

typedef struct cl_span {
    uint32_t off, len;          /* bytes into the source */
} cl_span;

/* A size, linear in the symbols: c[CL_K] + c[CL_I]*I + c[CL_H]*H + c[CL_B]*B.
 * Shapes are inferred with these exactly, so a mismatch is found at load
 * time for every I, H and B, and printed as the user wrote it ("4*H"). */
enum { CL_K, CL_I, CL_H, CL_B, CL_NSYM };
typedef struct cl_dim {
    int64_t c[CL_NSYM];
} cl_dim;
typedef struct cl_shape {
    int rank;
    cl_dim d[WEFT_MAX_DIMS];
} cl_shape;

/* ------------------------------------------------------------ tokens */

typedef enum cl_tok_kind { TK_EOF, TK_NL, TK_IDENT, TK_NUM, TK_STR, TK_PUNCT } cl_tok_kind;

typedef struct cl_tok {
    cl_tok_kind kind;
    int ch;                     /* TK_PUNCT: the character */
    int prime;                  /* TK_IDENT: written h' */
    uint32_t name_len;          /* TK_IDENT: length without the prime */
    double num;                 /* TK_NUM */
    cl_span span;
} cl_tok;

/* -------------------------------------------------------------- AST */

typedef enum cl_ekind {
    CE_NUM,    /* 1.5 */
    CE_NAME,   /* x, h, h', W, f */
    CE_CALL,   /* sigmoid(a); op = index into cl_builtins */
    CE_BIN,    /* a + b; op = '+', '-', '*', '/', '@' */
    CE_NEG,    /* -a */
    CE_TRANS,  /* a^T */
    CE_SLICE   /* a[lo:hi, :] */
} cl_ekind;

/* What a name refers to (set by the checker). */
typedef enum cl_sym { CS_NONE, CS_INPUT, CS_STATE, CS_PARAM, CS_LOCAL } cl_sym;

typedef struct cl_expr cl_expr;

typedef struct cl_range {
    cl_expr *lo, *hi;           /* NULL: from the start / to the end */
    int whole;                  /* written ':' */
    cl_span span;
    cl_dim lo_dim, hi_dim;      /* set by the checker */
} cl_range;

struct cl_expr {
    cl_ekind kind;
    int op;
    cl_span span;               /* the whole expression */
    cl_span at;                 /* the token an error points at */
    double num;                 /* CE_NUM, or a folded constant */
    int prime;                  /* CE_NAME */
    int nargs;
    cl_expr **args;             /* operands or call arguments */
    int nranges;
    cl_range *ranges;           /* CE_SLICE */
    int depth;                  /* height of this subtree */
    /* set by the checker */
    cl_sym sym;
    int index;                  /* which input/state/param/local */
    int is_const;               /* a number known at load time, in num */
    int nparts;                 /* chunk(): how many parts; shape is one part */
    int chunk_axis;             /* chunk(): normalised axis */
    cl_shape shape;
};

typedef struct cl_target {
    cl_span name;               /* without the prime */
    int prime;
    int local;                  /* set by the checker */
} cl_target;

typedef enum cl_stmt_kind { ST_ASSIGN, ST_OUTPUT } cl_stmt_kind;

typedef struct cl_stmt {
    cl_stmt_kind kind;
    cl_span span;
    int ntargets;
    cl_target *targets;
    cl_expr *rhs;
} cl_stmt;

typedef struct cl_param {
    cl_span name;
    char cname[WEFT_NAME_MAX];
    int is_bias;
    int ndim;
    cl_expr *dims[WEFT_MAX_DIMS];
    int has_init;
    weft_init_kind init;
    double value;               /* WEFT_INIT_CONST */
    cl_span init_span;
    cl_shape shape;             /* set by the checker */
    int used;
} cl_param;

typedef struct cl_local {
    cl_span name;
    int state;                  /* >= 0: this is state's next value (h') */
    cl_shape shape;
    int is_const;
    double value;
    int used;
} cl_local;

/* The per-step input or a state: name[size]. */
typedef struct cl_var {
    cl_span name;
    cl_expr *size;
    int used;
} cl_var;

typedef struct cl_arena cl_arena;

typedef struct cl_cell {
    cl_arena *arena;
    char *label;
    char *text;                 /* the source, owned (spans point into it) */
    size_t n;
    cl_span name;
    const char *doc;            /* "" if none */
    cl_var input;
    cl_var states[WEFT_CELL_MAX_STATES];
    int nstates;
    cl_param *params;
    int nparams, cap_params;
    cl_stmt *stmts;
    int nstmts, cap_stmts;
    cl_local *locals;
    int nlocals, cap_locals;
    int next_local[WEFT_CELL_MAX_STATES]; /* local holding h', set by the checker */
    int output_stmt;            /* -1: the output is the first state's next value */
    int gates;
    char *warnings;             /* "" or lines "file:line:col: warning: ..." */
    size_t wlen, wcap;
} cl_cell;

/* ---------------------------------------------------- builtin functions */

typedef enum cl_fn_kind {
    FN_UNARY,      /* elementwise, one argument */
    FN_BINARY,     /* elementwise, two arguments, broadcasting */
    FN_POW,        /* pow(x, p), p a number */
    FN_REDUCE,     /* over the last axis, kept as size 1 */
    FN_VAR,        /* variance over the last axis */
    FN_LAYERNORM,  /* (x - mean) / sqrt(var + eps) over the last axis */
    FN_CHUNK,      /* chunk(x, n[, axis]) -> n values */
    FN_CONCAT      /* concat(a, b, ...) along the last axis */
} cl_fn_kind;

typedef struct cl_builtin {
    const char *name;
    cl_fn_kind kind;
    int min_args, max_args;
    weft_node (*unary)(weft_graph *, weft_node);
    weft_node (*binary)(weft_graph *, weft_node, weft_node);
    weft_node (*reduce)(weft_graph *, weft_node, const int *, int, int);
    int zero_to_zero;           /* f(0) == 0, so an absent bias stays absent */
    const char *doc;            /* one line, for docs and hints */
} cl_builtin;

extern const cl_builtin cl_builtins[];
extern const int cl_nbuiltins;
int cl_builtin_find(const char *name, size_t len);

/* ------------------------------------------------------------ context */

typedef struct cl_ctx {
    cl_cell *cell;
    jmp_buf jb;
    weft_status status;         /* of the failure that unwound */
    char *msg;                  /* formatted failure (arena) */
    cl_tok *toks;
    int ntoks, cap_toks, pos;
    int depth;                  /* parser recursion */
    int nwarnings;
} cl_ctx;

/* Arena: every allocation of one parse, freed at once. */
cl_arena *cl_arena_new(void);
void cl_arena_free(cl_arena *a);
/* Zeroed memory; unwinds with WEFT_ERR_NOMEM on failure. */
void *cl_alloc(cl_ctx *x, size_t n);
/* Grow an arena array of `*cap` elements of `size` bytes to hold `need`. */
void *cl_grow(cl_ctx *x, void *p, int *cap, int need, size_t size);

/* Report an error at `at` (with an optional hint, may be NULL) and unwind. */
_Noreturn void cl_fail(cl_ctx *x, cl_span at, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record a warning at `at` in cell->warnings. */
void cl_warn(cl_ctx *x, cl_span at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1-based line and column (in characters) of a span's start; "line:col". */
void cl_line_col(const cl_cell *c, cl_span at, int *line, int *col);
char *cl_where(const cl_cell *c, cl_span at, char *buf, size_t n);

/* Spans and names. */
cl_span cl_span_join(cl_span a, cl_span b);
int cl_span_is(const cl_cell *c, cl_span s, const char *word);
int cl_span_eq(const cl_cell *c, cl_span a, cl_span b);
/* Copy a span's text into buf, NUL-terminated, cut at n-1 bytes. */
char *cl_span_str(const cl_cell *c, cl_span s, char *buf, size_t n);
/* The source text of an expression for messages: one line, shortened. */
char *cl_snippet(const cl_cell *c, cl_span s, char *buf, size_t n);
/* The closest of `n` candidates to `name` by edit distance, or NULL. */
const char *cl_closest(const char *name, const char *const *cands, int n);

/* Dims and shapes as text: "4*H + 1", "[B, 4*H]". */
char *cl_dim_str(cl_dim d, char *buf, size_t n);
char *cl_shape_str(const cl_shape *s, char *buf, size_t n);
int cl_dim_eq(cl_dim a, cl_dim b);
/* Value of a dim at the given sizes; 0 with *ok = 0 on overflow. */
int64_t cl_dim_eval(cl_dim d, int64_t B, int64_t I, int64_t H, int *ok);

/* The stages. */
void cl_lex(cl_ctx *x);
void cl_parse(cl_ctx *x);
void cl_check(cl_ctx *x);

/* The canonical text of a parsed cell (round-trips through the parser);
 * malloc'd, NULL on failure. */
char *cl_print(const cl_cell *c);

/* The cl_cell behind a weft_cell made by this frontend, or NULL. */
const cl_cell *cl_of(const weft_cell *c);

#endif
