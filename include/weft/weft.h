/* weft — a data-flow graph engine with reverse-mode autodiff for recurrent
 * networks.  Public C API.
 *
 * The model: a weft_graph owns an arena of nodes; a node is referred to by
 * its index (weft_node).  Builder functions add nodes and return their
 * index.  Errors are sticky, like cairo's: a builder that fails returns
 * WEFT_NONE, records the first error in the graph, and every later builder
 * given WEFT_NONE returns WEFT_NONE without overwriting it.  So a whole model
 * can be built and checked once with weft_graph_status(). */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_STRING "0.1.0"
#define WEFT_MAX_DIMS 4
#define WEFT_NONE ((weft_node)-1)

/* ---------------------------------------------------------------- errors */

typedef enum weft_status {
    WEFT_OK = 0,
    WEFT_ERR_SHAPE,       /* shapes do not agree */
    WEFT_ERR_DTYPE,       /* dtypes do not agree or are not supported */
    WEFT_ERR_ARG,         /* an argument is out of range or invalid */
    WEFT_ERR_NOMEM,       /* allocation failed or a size overflowed */
    WEFT_ERR_IO,          /* a file could not be read or written */
    WEFT_ERR_FORMAT,      /* a file's contents are malformed */
    WEFT_ERR_PARSE,       /* a cell file does not parse */
    WEFT_ERR_GRAPH,       /* the graph breaks an invariant */
    WEFT_ERR_NOT_FOUND,   /* a name does not exist */
    WEFT_ERR_NUMERIC,     /* NaN or Inf where a finite value is required */
    WEFT_ERR_UNSUPPORTED, /* valid but not implemented */
    WEFT_STATUS_COUNT
} weft_status;

/* A short, fixed description of a status code. */
const char *weft_status_str(weft_status s);
/* The detail of the last error on this thread: what, and where. */
const char *weft_last_error(void);
/* Record an error (used by the library and its frontends); returns s. */
weft_status weft_error(weft_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clear the last-error detail of this thread. */
void weft_error_clear(void);

/* --------------------------------------------------------------- tensors */

typedef enum weft_dtype { WEFT_F32 = 0, WEFT_F64 = 1, WEFT_I32 = 2 } weft_dtype;

size_t weft_dtype_size(weft_dtype t);
const char *weft_dtype_name(weft_dtype t);

typedef struct weft_shape {
    int ndim;                     /* 0 .. WEFT_MAX_DIMS; 0 is a scalar */
    int64_t dim[WEFT_MAX_DIMS];
} weft_shape;

/* A tensor is a view: data pointer, dtype, shape and strides in elements.
 * It does not own its data. */
typedef struct weft_tensor {
    void *data;
    weft_dtype dtype;
    weft_shape shape;
    int64_t stride[WEFT_MAX_DIMS];
} weft_tensor;

weft_shape weft_shape_make(int ndim, const int64_t *dim);
/* WEFT_SHAPE(3, 4): a shape literal (usable in initialisers). */
#define WEFT_SHAPE(...)                                                        \
    ((weft_shape){(int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                  {__VA_ARGS__}})
#define WEFT_SCALAR_SHAPE ((weft_shape){0, {0}})
int64_t weft_shape_numel(weft_shape s);
int weft_shape_eq(weft_shape a, weft_shape b);
/* "[3, 4]" into buf (always NUL-terminated); returns buf. */
char *weft_shape_str(weft_shape s, char *buf, size_t n);
int weft_tensor_is_contiguous(const weft_tensor *t);
/* Element i (in row-major logical order) of a tensor as double. */
double weft_tensor_get(const weft_tensor *t, int64_t i);

/* ----------------------------------------------------------------- graph */

typedef int32_t weft_node;
typedef struct weft_graph weft_graph;

typedef enum weft_node_kind {
    WEFT_NODE_INPUT,      /* data fed per run */
    WEFT_NODE_PARAM,      /* trainable, named, owned by the graph */
    WEFT_NODE_CONST,      /* fixed data owned by the graph */
    WEFT_NODE_OP          /* a primitive op applied to other nodes */
} weft_node_kind;

weft_graph *weft_graph_new(void);
void weft_graph_free(weft_graph *g);
/* The first error recorded while building (sticky), WEFT_OK if none. */
weft_status weft_graph_status(const weft_graph *g);
const char *weft_graph_error(const weft_graph *g);
int weft_graph_node_count(const weft_graph *g);

/* Checks invariants: inputs precede their users (acyclic), every input is
 * defined, every shape and dtype re-derives from the op's shape rule. */
weft_status weft_graph_verify(const weft_graph *g);

/* Leaves. `name` may be NULL for inputs and constants. Names are copied. */
weft_node weft_input(weft_graph *g, const char *name, weft_dtype t, weft_shape s);
weft_node weft_param(weft_graph *g, const char *name, weft_dtype t, weft_shape s);
/* Constant copied from contiguous row-major `data` of dtype t. */
weft_node weft_const(weft_graph *g, const char *name, weft_dtype t, weft_shape s,
                     const void *data);

/* Node queries. */
weft_node_kind weft_node_kind_of(const weft_graph *g, weft_node n);
weft_shape weft_node_shape(const weft_graph *g, weft_node n);
weft_dtype weft_node_dtype(const weft_graph *g, weft_node n);
const char *weft_node_name(const weft_graph *g, weft_node n);
const char *weft_node_op_name(const weft_graph *g, weft_node n);
int weft_node_is_backward(const weft_graph *g, weft_node n);
/* Give any node a name (e.g. the gate's name from a cell file). */
void weft_node_set_name(weft_graph *g, weft_node n, const char *name);
/* Where a node sits in an unrolled model, for drawing and for passes:
 * nodes created after weft_graph_set_site() carry it (-1 = not set).  The
 * gradient nodes made by weft_grad carry the site of the node they
 * differentiate. */
typedef struct weft_site { int16_t layer, dir; int32_t step; } weft_site;
void weft_graph_set_site(weft_graph *g, int layer, int dir, int step);
weft_site weft_node_site(const weft_graph *g, weft_node n);
/* The forward node whose gradient this backward node helps compute, or
 * WEFT_NONE for forward nodes. */
weft_node weft_node_grad_of(const weft_graph *g, weft_node n);
/* What the compiler did at a node of a compiled graph ("80 matmuls -> 1
 * (batch-gemm)", "fused: sigmoid mul add"), or NULL. */
const char *weft_node_note(const weft_graph *g, weft_node n);
/* Inputs of an op node: returns the count, fills up to cap. */
int weft_node_inputs(const weft_graph *g, weft_node n, weft_node *out, int cap);

/* Find a node (param, input or named op) by name; WEFT_NONE if absent. */
weft_node weft_graph_find(const weft_graph *g, const char *name);
/* The parameters in creation order; returns count, fills up to cap. */
int weft_graph_params(const weft_graph *g, weft_node *out, int cap);

/* Parameter and constant storage (contiguous row-major, owned by the graph). */
void *weft_param_data(weft_graph *g, weft_node param);
weft_status weft_param_set(weft_graph *g, weft_node param, const void *data,
                           size_t bytes);

/* ------------------------------------------------------ primitive ops
 * Elementwise binary ops broadcast numpy-style.  Axes may be negative. */

weft_node weft_add(weft_graph *g, weft_node a, weft_node b);
weft_node weft_sub(weft_graph *g, weft_node a, weft_node b);
weft_node weft_mul(weft_graph *g, weft_node a, weft_node b);
weft_node weft_div(weft_graph *g, weft_node a, weft_node b);
weft_node weft_maximum(weft_graph *g, weft_node a, weft_node b);
/* 1 where a > b else 0, in a's dtype; not differentiable (zero gradient). */
weft_node weft_greater(weft_graph *g, weft_node a, weft_node b);
weft_node weft_neg(weft_graph *g, weft_node x);
weft_node weft_exp(weft_graph *g, weft_node x);
weft_node weft_log(weft_graph *g, weft_node x);
weft_node weft_tanh(weft_graph *g, weft_node x);
weft_node weft_sigmoid(weft_graph *g, weft_node x);
weft_node weft_relu(weft_graph *g, weft_node x);
weft_node weft_sqrt(weft_graph *g, weft_node x);
weft_node weft_abs(weft_graph *g, weft_node x);
/* x ** p for a constant exponent p. */
weft_node weft_pow(weft_graph *g, weft_node x, double p);
/* where(cond != 0, a, b); cond, a, b broadcast together. */
weft_node weft_select(weft_graph *g, weft_node cond, weft_node a, weft_node b);

/* op(A) @ op(B) for 2-D A, B; op transposes when the flag is set. */
weft_node weft_matmul(weft_graph *g, weft_node a, weft_node b, int trans_a,
                      int trans_b);

/* Reductions over the axes in `axes` (n of them; n == 0 means all). */
weft_node weft_sum(weft_graph *g, weft_node x, const int *axes, int n, int keepdims);
weft_node weft_reduce_max(weft_graph *g, weft_node x, const int *axes, int n,
                          int keepdims);

/* Shape ops; broadcast, transpose and slice are strided views. */
weft_node weft_broadcast(weft_graph *g, weft_node x, weft_shape s);
weft_node weft_reshape(weft_graph *g, weft_node x, weft_shape s);
weft_node weft_transpose(weft_graph *g, weft_node x, const int *perm);
/* x[..., start:end, ...] along axis. */
weft_node weft_slice(weft_graph *g, weft_node x, int axis, int64_t start, int64_t end);
weft_node weft_concat(weft_graph *g, const weft_node *xs, int n, int axis);

/* table [V, D] rows picked by integer indices idx [...]: result [..., D]. */
weft_node weft_gather(weft_graph *g, weft_node table, weft_node idx);
/* The VJP of gather: rows of src [..., D] added into a zero [V, D]. */
weft_node weft_scatter_add(weft_graph *g, weft_node src, weft_node idx, int64_t rows);
/* One-hot of integer labels [...] into [..., classes] of dtype t. */
weft_node weft_one_hot(weft_graph *g, weft_node labels, int64_t classes, weft_dtype t);

/* Dropout mask of shape s: 0 with probability p, else 1/(1-p).  Drawn from
 * a counter-based generator keyed by (seed, stream, run counter, element),
 * so it is reproducible and differs on every run of the executor. */
weft_node weft_dropout_mask(weft_graph *g, weft_shape s, weft_dtype t, double p,
                            uint64_t seed);
weft_node weft_stop_gradient(weft_graph *g, weft_node x);
weft_node weft_cast(weft_graph *g, weft_node x, weft_dtype t);
weft_node weft_fill(weft_graph *g, weft_shape s, weft_dtype t, double value);

/* ------------------------------------------- composites (built from the
 * primitives above; they add no kernels) */

weft_node weft_zeros(weft_graph *g, weft_shape s, weft_dtype t);
weft_node weft_ones(weft_graph *g, weft_shape s, weft_dtype t);
/* A scalar constant of x's dtype. */
weft_node weft_scalar_like(weft_graph *g, weft_node x, double v);
weft_node weft_square(weft_graph *g, weft_node x);
weft_node weft_mean(weft_graph *g, weft_node x, const int *axes, int n, int keepdims);
weft_node weft_softmax(weft_graph *g, weft_node x, int axis);
weft_node weft_log_softmax(weft_graph *g, weft_node x, int axis);
/* Mean over the batch of -log softmax(logits)[label]; logits [B, C],
 * labels integer [B]. */
weft_node weft_cross_entropy(weft_graph *g, weft_node logits, weft_node labels);
/* x * mask, or x itself when p == 0. */
weft_node weft_dropout(weft_graph *g, weft_node x, double p, uint64_t seed);
/* n equal parts of x along axis (n must divide the size); fills out[n]. */
weft_status weft_split(weft_graph *g, weft_node x, int axis, int n, weft_node *out);
/* Sum x down to shape s (the reverse of broadcasting to x's shape). */
weft_node weft_reduce_to(weft_graph *g, weft_node x, weft_shape s);

/* -------------------------------------------------------------- autodiff */

/* Appends the backward graph of `loss` (a scalar or one-element node) to g
 * and writes the gradient node of each wrt[i] into grads[i]; a node the loss
 * does not depend on gets a zero node.  wrt must be floating point.  The
 * new nodes are ordinary primitives: the result can be differentiated again. */
weft_status weft_grad(weft_graph *g, weft_node loss, const weft_node *wrt, int n,
                      weft_node *grads);

/* ------------------------------------------------------------- executor */

/* Threads for every kernel (BLIS for GEMMs, OpenMP for the rest); 0 = all
 * cores.  Process-wide.  Results do not depend on it. */
void weft_set_threads(int n);
int weft_get_threads(void);

typedef struct weft_exec weft_exec;

/* Reference executor: sequential, every node its own buffer.  Computes the
 * nodes needed for `outputs`.  The graph must outlive the executor, and is
 * not modified. */
weft_exec *weft_exec_new(weft_graph *g, const weft_node *outputs, int n);
void weft_exec_free(weft_exec *e);
/* Whether this executor computes node n (an input it does not need can't
 * be fed). */
int weft_exec_uses(const weft_exec *e, weft_node n);
/* Copy contiguous row-major data into an input node. */
weft_status weft_exec_feed(weft_exec *e, weft_node input, const void *data,
                           size_t bytes);
weft_status weft_exec_run(weft_exec *e);
/* The value of a computed node (a view valid until the next run). */
weft_status weft_exec_value(weft_exec *e, weft_node n, weft_tensor *out);
/* Copy a computed node into contiguous row-major dst. */
weft_status weft_exec_read(weft_exec *e, weft_node n, void *dst, size_t bytes);
/* Adds each node's kernel time (ms) into ms_per_node[node] on every run;
 * the array holds weft_graph_node_count() doubles of the graph the executor
 * runs (weft_exec_graph() for a compiled one), zeroed by the caller.  NULL
 * turns it off.  Kernels run as the executor has chosen to run them: one
 * at a time, or in row bands (then the time of thread 0's rows); the
 * inter-op workers are replaced by kernel-by-kernel runs while profiling. */
#define WEFT_HAVE_EXEC_PROFILE 1
void weft_exec_set_profile(weft_exec *e, double *ms_per_node);
/* Whether node n (of weft_exec_graph()) runs inside a row band. */
int weft_exec_in_band(const weft_exec *e, weft_node n);
/* fn(ctx, n) is called during every weft_exec_run right after output n
 * (one of the `outputs` it was made for, in the caller's ids: the source
 * graph's for a compiled executor) has been computed; its value can be
 * read from inside fn and stays as it is until the run ends.  Once per
 * distinct output per run, in the order the executor computes them, which
 * is the same on every run; on the thread that called weft_exec_run: while
 * fn is set, inter-op workers are not used, so that the order is fixed
 * (what a data-parallel averager needs to start the same reductions in the
 * same order on every process).  Used to start work on the first results
 * while the rest are computed (gradients: include/weft/dist.h).  fn = NULL
 * removes it. */
#define WEFT_HAVE_EXEC_ON_READY 1
weft_status weft_exec_set_on_ready(weft_exec *e, void (*fn)(void *ctx, weft_node n), void *ctx);
/* The run counter (keys the dropout generator); set it to resume exactly. */
uint64_t weft_exec_counter(const weft_exec *e);
void weft_exec_set_counter(weft_exec *e, uint64_t c);

/* ------------------------------------------------------------ gradcheck */

typedef struct weft_gradcheck_result {
    double max_abs_err;   /* over every element of every wrt */
    double max_rel_err;
    int checked;          /* elements compared */
    int failures;         /* elements outside atol + rtol * |numeric| */
    char worst[256];      /* the worst element: node name, index, both values */
} weft_gradcheck_result;

/* Compares weft_grad's gradient of `loss` with respect to each wrt[k]
 * (parameters or inputs) against central differences of step eps, like
 * torch.autograd.gradcheck (atol 1e-5, rtol 1e-3 in f64).  Inputs the loss
 * needs are fed from feeds[k] (contiguous data for feed_nodes[k]).  Appends
 * the backward to g.  Returns WEFT_OK when it ran; res->failures says
 * whether the gradients agree. */
weft_status weft_gradcheck(weft_graph *g, weft_node loss, const weft_node *wrt, int n,
                           const weft_node *feed_nodes, const void *const *feeds, int n_feeds,
                           double eps, double atol, double rtol, weft_gradcheck_result *res);

/* ------------------------------------------------------------ dot export */

typedef struct weft_dot_options {
    int show_grad_links;  /* dashed edge from a gradient node to its forward node */
    const char *title;    /* graph label, may be NULL */
} weft_dot_options;

weft_status weft_graph_write_dot(const weft_graph *g, FILE *f,
                                 const weft_dot_options *opt);

/* Escape s for a double-quoted dot string into buf (always terminated). */
char *weft_dot_escape(const char *s, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
