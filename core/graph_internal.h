/* Internal representation of a weft graph, shared by core/ and ops/. */
#ifndef WEFT_GRAPH_INTERNAL_H
#define WEFT_GRAPH_INTERNAL_H

#include <assert.h>
#include <stdlib.h>
#include <time.h>

#include "weft/weft.h"

/* Invariant violations are bugs, not bad input: abort with file:line. */
#define WEFT_ASSERT(c)                                                        \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "weft: internal error at %s:%d: %s\n", __FILE__,   \
                    __LINE__, #c);                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Op attributes: a small plain struct every op interprets its own way. */
typedef struct weft_attr {
    int64_t i[WEFT_MAX_DIMS]; /* axes mask, perm, slice (axis,start,end), flags;
                               * a perm is the longest (every node record
                               * carries this, and compiling copies them) */
    double f;                     /* pow exponent, fill value, dropout p */
    uint64_t seed;                /* dropout */
    weft_shape shape;             /* broadcast/reshape/fill target */
    weft_dtype dtype;             /* cast / one_hot / fill target */
} weft_attr;

/* Fields ordered so there is no padding: the compiler copies every record
 * once per pass. */
typedef struct weft_node_rec {
    weft_node_kind kind;
    int op;                  /* index into the op table (kind == OP) */
    weft_dtype dtype;
    int n_in;
    int32_t in_off;          /* inputs are g->edges[in_off .. in_off + n_in) */
    weft_node grad_of;       /* forward node this backward node belongs to */
    weft_shape shape;
    weft_attr attr;
    char *name;
    void *data;              /* parameter / constant storage, contiguous */
    char *note;              /* what the compiler did here, e.g. "80 matmuls -> 1 (batch-gemm)" */
    weft_site site;
    uint8_t backward;
    uint8_t borrowed;        /* data belongs to another graph (compiled copies) */
} weft_node_rec;

/* A fused elementwise region (made by the compiler's fuse pass): a straight
 * list of elementwise ops.  Operand k >= 0 is the fused node's input k;
 * operand -1-j is the result of instruction j.  The last result is the
 * node's value. */
#define WEFT_FUSED_MAX_INSTR 48
#define WEFT_FUSED_MAX_INPUTS 24
typedef struct weft_fused_instr {
    int16_t op;          /* an ELEMENTWISE op id */
    int16_t arg[3];
    double p;            /* pow's exponent */
} weft_fused_instr;
#define WEFT_FUSED_MAX_OUT 8
/* A program compiled to machine code (ops/fused_codegen.c): runs elements
 * [0, len) with operand k at src[k] and output k at out[k]. */
typedef void (*weft_fused_fn)(int len, const float *const *src, float *const *out);
typedef struct weft_fused_prog {
    int n_instr;
    weft_fused_instr ins[WEFT_FUSED_MAX_INSTR];
    /* Outputs: with n_out <= 1 the last instruction's value is the node's
     * (shape attr.shape); with n_out >= 2 the outputs lie side by side along
     * the last axis (the node is attr.shape with its last dimension D times
     * n_out) and out_ins[k] is the instruction whose value is columns
     * [k D, (k+1) D). */
    int n_out;
    int16_t out_ins[WEFT_FUSED_MAX_OUT];
    char label[96];      /* what it replaced, for drawing: "sigmoid*mul+add" */
    weft_fused_fn fn;    /* f32: the compiled program, or NULL (the interpreter runs it) */
} weft_fused_prog;

struct weft_graph {
    weft_fused_prog *progs; /* fused programs, referenced by attr.i[0] */
    int n_progs, cap_progs;
    weft_node_rec *nodes;
    int n, cap;
    int32_t *edges;
    int n_edges, cap_edges;
    weft_status status;      /* sticky first error */
    char *error;
    weft_site site;          /* stamped on new nodes */
    /* While autodiff runs, new nodes are marked backward and grad_of = this. */
    int in_backward;
    weft_node backward_of;
};

static inline const weft_node_rec *weft_rec(const weft_graph *g, weft_node n) {
    WEFT_ASSERT(n >= 0 && n < g->n);
    return &g->nodes[n];
}
static inline const weft_node *weft_rec_inputs(const weft_graph *g, const weft_node_rec *r) {
    return g->edges + r->in_off;
}

/* By-value accessors: safe inside builder-call argument lists, where a
 * pointer into the arena could be read after another argument's builder
 * moved it. */
static inline weft_node weft_in_of(const weft_graph *g, weft_node n, int k) {
    return g->edges[g->nodes[n].in_off + k];
}
static inline weft_shape weft_shape_of(const weft_graph *g, weft_node n) { return g->nodes[n].shape; }

/* Empty g for reuse: free what its nodes own, keep the node and edge arrays
 * (the compiler rebuilds the graph once per pass into recycled arrays). */
void weft_graph_clear(weft_graph *g);
/* Make room for this many nodes and edges in all (not more). */
weft_status weft_graph_reserve(weft_graph *g, int nodes, int edges);
/* Append a copy of op record rec (kind, op, dtype, shape, attr; not its
 * name, note or data) with inputs in[0 .. rec->n_in), trusting its shape:
 * for copies whose inputs have the shapes the original's had. */
weft_node weft_graph_add_rec(weft_graph *g, const weft_node_rec *rec, const weft_node *in);
/* Add an op node after checking its inputs and inferring its shape; on
 * failure records a sticky error and returns WEFT_NONE. */
weft_node weft_graph_add_op(weft_graph *g, int op, const weft_node *in, int n_in,
                            const weft_attr *attr);
/* A leaf whose data stays owned by another graph (a compiled copy shares
 * the parameters of the graph it was compiled from). */
weft_node weft_graph_add_borrowed_leaf(weft_graph *g, weft_node_kind kind, const char *name,
                                       weft_dtype t, weft_shape s, void *data);
/* Store a fused program; returns its index or -1 (out of memory). */
int weft_graph_add_prog(weft_graph *g, const weft_fused_prog *p);

/* Record a builder error (sticky: only the first is kept in the graph). */
weft_node weft_graph_fail(weft_graph *g, weft_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "mul(h [4, 8] f32)": a node's short description for error messages. */
char *weft_node_desc(const weft_graph *g, weft_node n, char *buf, size_t cap);

/* Tensor helpers (core/tensor.c). */
void weft_tensor_contiguous_strides(const weft_shape *s, int64_t *stride);
/* Copy any strided tensor into contiguous dst of the same dtype. */
void weft_tensor_copy_to(const weft_tensor *t, void *dst);
/* Broadcast shapes numpy-style; 0 on mismatch. */
int weft_shape_broadcast(weft_shape a, weft_shape b, weft_shape *out);
/* Normalise an axis against ndim; -1 when out of range. */
int weft_axis(int axis, int ndim);

/* Monotonic clock in milliseconds (compile times, profiles, timeouts). */
static inline double weft_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#endif
