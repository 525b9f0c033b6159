/* The primitive op table.  Every primitive is one row of ops.def: its name,
 * arity, flags, shape rule, kernel (f32 and f64 in one function, dispatched
 * on dtype) and VJP rule, all defined side by side in one ops/<family>.c. */
#ifndef WEFT_OPS_OP_H
#define WEFT_OPS_OP_H

#include <omp.h>

#include "graph_internal.h"

enum {
    WEFT_OPF_ELEMENTWISE = 1u << 0, /* output element i depends on input element i (after broadcast) */
    WEFT_OPF_VIEW = 1u << 1,        /* may alias its first input (strided view) */
    WEFT_OPF_NONDIFF = 1u << 2,     /* zero gradient for every input */
    WEFT_OPF_STRIDED_OUT = 1u << 3, /* the kernel writes an output whose rows are strided
                                     * (innermost stride 1): the planner may place it
                                     * straight into a slice of a concat */
    WEFT_OPF_ROWS = 1u << 4,        /* row r of the 2-D output needs only row r of the inputs
                                     * with as many rows (others are read whole): the
                                     * kernel may be run on a band of rows (core/rows.c) */
};

/* Runtime context handed to kernels. */
typedef struct weft_kctx {
    uint64_t counter;               /* the executor's run counter (dropout) */
    const weft_graph *g;            /* the graph being run (fused programs) */
    int threads;                    /* 1: run single-threaded (inter-op workers); 0: all */
} weft_kctx;

typedef struct weft_op_def {
    const char *name;
    int arity;                      /* -1: variadic (>= 1) */
    unsigned flags;
    /* Shape and dtype of the result; may normalise attr.  On mismatch
     * returns an error via weft_error() naming both shapes. */
    weft_status (*infer)(const weft_graph *g, const weft_node *in, int n,
                         weft_attr *attr, weft_shape *shape, weft_dtype *dtype);
    /* out is contiguous and allocated; inputs may be strided views. */
    weft_status (*kernel)(weft_tensor *out, const weft_tensor *in, int n,
                          const weft_attr *attr, const weft_kctx *ctx);
    /* VIEW ops: make out alias in[0] with new strides; return 0 when the
     * view is impossible (then the kernel copies).  NULL: never a view. */
    int (*view)(weft_tensor *out, const weft_tensor *in, const weft_attr *attr);
    /* Gradient of each input given the gradient `gy` of node y: writes gin[k]
     * (WEFT_NONE = no contribution).  Emits primitives with the builder API.
     * NULL only for WEFT_OPF_NONDIFF ops. */
    weft_status (*vjp)(weft_graph *g, weft_node y, weft_node gy, weft_node *gin);
} weft_op_def;

#define WEFT_OP(id, name, arity, flags) WEFT_OP_##id,
enum weft_op_id {
#include "ops.def"
    WEFT_OP_COUNT
};
#undef WEFT_OP

extern const weft_op_def weft_ops[WEFT_OP_COUNT];
/* Compile g's f32 fused programs to machine code with the system's C
 * compiler (ops/fused_codegen.c), setting each program's fn; enable < 0 or
 * WEFT_CODEGEN=0: leave them to the interpreter.  What happened goes to
 * r's codegen fields; a failure is not an error (the interpreter runs). */
struct weft_compile_report;
void weft_fused_codegen(weft_graph *g, int enable, struct weft_compile_report *r);
/* WEFT_OK when every row is complete; else names the first bad row. */
weft_status weft_ops_check(void);

/* Each ops/<family>.c defines, for each of its rows, weft_<id>_infer,
 * weft_<id>_kernel, weft_<id>_view (VIEW ops), weft_<id>_vjp (unless
 * NONDIFF).  Declarations follow from the table; view and vjp are weak so a
 * row without them links to NULL, and weft_ops_check() refuses a
 * differentiable op without a VJP or a VIEW op without a view rule. */
#define WEFT_OP(id, name, arity, flags)                                       \
    weft_status weft_##id##_infer(const weft_graph *, const weft_node *, int,   \
                                  weft_attr *, weft_shape *, weft_dtype *);    \
    weft_status weft_##id##_kernel(weft_tensor *, const weft_tensor *, int,    \
                                   const weft_attr *, const weft_kctx *);      \
    __attribute__((weak)) int weft_##id##_view(weft_tensor *, const weft_tensor *, \
                                               const weft_attr *);             \
    __attribute__((weak)) weft_status weft_##id##_vjp(weft_graph *, weft_node,  \
                                                      weft_node, weft_node *);
#include "ops.def"
#undef WEFT_OP

/* Elementwise and fused kernels share their output rows among the threads
 * from this many elements up.  Measured with bench/ab.py on a quiet machine
 * (5 alternating rounds, 2 threads): 4096 against 32768 made rows 1, 2, 3
 * and 5 of the table 13-15%, 16-19%, 7% and 4% faster (a recurrent
 * step's [64, 256] gate kernels ran on one core while the other waited);
 * 1024 times the same as 4096.  On a loaded machine any parallel region
 * waits at its barrier for a descheduled thread: use one thread there. */
#define WEFT_PAR_MIN_ELEMENTS 4096

/* Run the statements as a team of nt threads, each knowing its place as
 * team_t of team_n: in a parallel region when nt > 1, else inline on the
 * calling thread.  An OpenMP region with one thread (`if` false, or
 * num_threads(1)) still costs about a microsecond to enter and leave
 * inside another region, and a row band (core/rows.c) calls its kernels,
 * each on one thread, hundreds of times a step.  A barrier among the team
 * is WEFT_TEAM_BARRIER(): inline, it must not meet the band's threads. */
#define WEFT_TEAM(nt, ...)                                                     \
    do {                                                                       \
        const int team_nt = (nt);                                              \
        if (team_nt > 1) {                                                     \
            _Pragma("omp parallel num_threads(team_nt)")                       \
            {                                                                  \
                const int team_t = omp_get_thread_num(), team_n = omp_get_num_threads(); \
                (void)team_t; (void)team_n;                                    \
                __VA_ARGS__                                                    \
            }                                                                  \
        } else {                                                               \
            const int team_t = 0, team_n = 1;                                  \
            (void)team_t; (void)team_n;                                        \
            __VA_ARGS__                                                        \
        }                                                                      \
    } while (0)
#define WEFT_TEAM_BARRIER()                                                    \
    do {                                                                       \
        if (team_n > 1) { _Pragma("omp barrier") }                             \
    } while (0)
/* Threads for a kernel that shares `parts` (rows, panels, column groups)
 * among them: all of them when there are two parts or more and at least
 * min_elements of work, else one; one inside an inter-op worker or a band
 * (ctx->threads). */
static inline int weft_kernel_threads_min(const weft_kctx *ctx, int64_t parts, int64_t elements, int64_t min_elements) {
    return parts > 1 && elements >= min_elements && !(ctx && ctx->threads == 1) ? omp_get_max_threads() : 1;
}
/* The same at the elementwise kernels' threshold. */
static inline int weft_kernel_threads(const weft_kctx *ctx, int64_t rows, int64_t elements) {
    return weft_kernel_threads_min(ctx, rows, elements, WEFT_PAR_MIN_ELEMENTS);
}

/* Hot kernels are compiled three times, for AVX-512, for AVX2+FMA and for
 * the baseline, and the loader picks per machine (GCC function
 * multiversioning): the widest vectors the CPU has, and a binary that still
 * runs everywhere.  On this EPYC the AVX-512 clone's sigmoid and tanh take
 * 0.36 and 0.66 ns/element against 0.78 and 1.24 for AVX2 (one thread). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(WEFT_NO_CLONES)
#define WEFT_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WEFT_KERNEL_CLONES
#endif

/* A matrix product, packed or not (for cost estimates and reports). */
static inline int weft_op_is_product(int op) {
    return op == WEFT_OP_matmul || op == WEFT_OP_matmul_packed || op == WEFT_OP_matmul_cat;
}

/* Inputs of a node run in bands at most: one bit each in weft_op_rows's
 * *whole (core/rows.c and the executor size their arrays by it). */
#define WEFT_OP_ROWS_MAX_INPUTS 32

/* Rows the kernel of node i may be run on in bands (WEFT_OPF_ROWS; a
 * product only when its left operand is not transposed, a concat only
 * side by side): the output's row
 * count, or 0.  *whole gets a bit per input read whole (a broadcast row, a
 * product's right operand); the others are cut to the band. */
int64_t weft_op_rows(const weft_graph *g, int i, uint32_t *whole);

/* Whether an [m x k] x [k x n] product of this dtype runs faster as
 * matmul_packed (ops/matmul.c): the pass `pack` asks before rewriting. */
int weft_packed_gemm_pays(weft_dtype dt, int64_t m, int64_t n, int64_t k);
/* Whether an [m x k] x [k x n] product whose right operand is a concat of
 * columns reads the parts where they are (matmul_cat, ops/matmul.c) rather
 * than copying them: the pass `concat-operand` asks before rewriting.  At
 * most WEFT_MATMUL_CAT_MAX_PARTS parts. */
int weft_matmul_cat_pays(weft_dtype dt, int64_t m, int64_t n, int64_t k);
#define WEFT_MATMUL_CAT_MAX_PARTS 8

/* Shape rules shared by op families (ops/shape_rules.c). */
weft_status weft_infer_same_float(const weft_graph *g, const weft_node *in, int n,
                                  weft_attr *attr, weft_shape *shape, weft_dtype *dtype);
weft_status weft_infer_broadcast(const weft_graph *g, const weft_node *in, int n,
                                 weft_attr *attr, weft_shape *shape, weft_dtype *dtype);
weft_status weft_dtype_check_float(const weft_graph *g, weft_node n);

/* 4-D normalised strided view (leading dims padded with size 1) for kernels. */
typedef struct weft_iter4 {
    int64_t n[4];
    int64_t s[4];
} weft_iter4;
/* View t with shape broadcast to `to` (stride 0 on broadcast dims). */
weft_iter4 weft_iter4_of(const weft_tensor *t, const weft_shape *to);
/* Kernels walk rows: runs along the last axis, numbered over the leading
 * three.  Row `row`'s index (i[0], i[1], i[2]) is the same for every
 * operand iterated over one shape, so it is divided out once per row. */
typedef struct weft_row3 {
    int64_t i[3];
} weft_row3;
static inline weft_row3 weft_row_index(const weft_iter4 *it, int64_t row) {
    return (weft_row3){{row / it->n[2] / it->n[1], row / it->n[2] % it->n[1], row % it->n[2]}};
}
/* Offset, in elements, of that row's first element in it. */
static inline int64_t weft_row_offset(const weft_iter4 *it, weft_row3 r) {
    return r.i[0] * it->s[0] + r.i[1] * it->s[1] + r.i[2] * it->s[2];
}

#endif
