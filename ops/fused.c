/* A fused elementwise region: a short instruction list run over chunks of
 * each output row, so intermediate values stay in L1 (the numexpr idea) and
 * one pass over memory replaces one per op.  The arithmetic comes from the
 * same expression table as the single-op kernels. */
#include <math.h>
#include <string.h>

#include "fastmath.h"
#include "op.h"
#include <tgmath.h>

#include "elementwise_ops.h"

/* Elements of a row per pass of the instruction list.  256 against 128:
 * rows 1, 3, 4 of the table 1-2% faster (best of 5 alternating
 * rounds, bench/ab.py; 64 had been slower).  Scratch: WEFT_FUSED_MAX_INSTR
 * rows of CHUNK on the kernel's stack, 96 KB in f64. */
#define CHUNK 256

weft_status weft_fused_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                             weft_shape *shape, weft_dtype *dtype) {
    if (attr->i[0] < 0 || attr->i[0] >= g->n_progs) return weft_error(WEFT_ERR_GRAPH, "no fused program %lld", (long long)attr->i[0]);
    const weft_fused_prog *p = &g->progs[attr->i[0]];
    for (int k = 0; k < n; k++) {
        weft_shape s;
        if (weft_rec(g, in[k])->dtype != attr->dtype || !weft_shape_broadcast(weft_rec(g, in[k])->shape, attr->shape, &s) ||
            !weft_shape_eq(s, attr->shape))
            return weft_error(WEFT_ERR_SHAPE, "fused input %d does not broadcast to the region's shape", k);
    }
    if (n > WEFT_FUSED_MAX_INPUTS || p->n_instr < 1 || p->n_instr > WEFT_FUSED_MAX_INSTR)
        return weft_error(WEFT_ERR_GRAPH, "fused region too large");
    for (int j = 0; j < p->n_instr; j++)
        for (int a = 0; a < 3; a++) {
            int v = p->ins[j].arg[a];
            if (v >= n || (v < 0 && -1 - v >= j))
                return weft_error(WEFT_ERR_GRAPH, "fused instruction %d reads an undefined operand", j);
        }
    if (p->n_out > WEFT_FUSED_MAX_OUT || (p->n_out >= 2 && attr->shape.ndim < 1))
        return weft_error(WEFT_ERR_GRAPH, "fused region has too many outputs");
    for (int k = 0; k < p->n_out; k++)
        if (p->out_ins[k] < 0 || p->out_ins[k] >= p->n_instr)
            return weft_error(WEFT_ERR_GRAPH, "fused output %d names no instruction", k);
    *shape = attr->shape;
    if (p->n_out >= 2) shape->dim[shape->ndim - 1] *= p->n_out; /* side by side */
    *dtype = attr->dtype;
    return WEFT_OK;
}

/* Operands and results never overlap (distinct scratch rows, or the
 * output), so the loops vectorize without alias checks. */
#define UNARY_CASE(id, EXPR)                                                   \
    case WEFT_OP_##id:                                                         \
        _Pragma("omp simd")                                                    \
        for (int j = 0; j < len; j++) { T a = A[j]; o[j] = (EXPR); }           \
        break;
#define BINARY_CASE(id, EXPR)                                                  \
    case WEFT_OP_##id:                                                         \
        _Pragma("omp simd")                                                    \
        for (int j = 0; j < len; j++) { T a = A[j], b = B[j]; o[j] = (EXPR); } \
        break;

/* Run the program over one chunk of `len` elements; operand k of the node
 * is at src[k] (already gathered to unit stride), instruction q's value
 * goes to res[q] (a scratch row, or an output's row). */
#define RUN_CHUNK()                                                           \
    do {                                                                       \
        for (int q = 0; q < prog->n_instr; q++) {                              \
            const weft_fused_instr *ins = &prog->ins[q];                       \
            const T *A = ins->arg[0] >= 0 ? src[ins->arg[0]] : res[-1 - ins->arg[0]]; \
            const T *B = ins->arg[1] >= 0 ? src[ins->arg[1]] : res[-1 - ins->arg[1]]; \
            const T *Cc = ins->arg[2] >= 0 ? src[ins->arg[2]] : res[-1 - ins->arg[2]]; \
            T *o = res[q];                                                     \
            const double p = ins->p;                                           \
            (void)p; (void)B; (void)Cc;                                        \
            switch (ins->op) {                                                 \
                UNARY_OPS(UNARY_CASE)                                          \
                BINARY_OPS(BINARY_CASE)                                        \
            case WEFT_OP_pow:                                                  \
                _Pragma("omp simd")                                            \
                for (int j = 0; j < len; j++) { T a = A[j]; o[j] = POW_EXPR; } \
                break;                                                         \
            case WEFT_OP_select:                                               \
                _Pragma("omp simd")                                            \
                for (int j = 0; j < len; j++) { T a = A[j], b = B[j], c = Cc[j]; (void)b; (void)c; o[j] = SELECT_EXPR; } \
                break;                                                         \
            default:                                                           \
                break;                                                         \
            }                                                                  \
        }                                                                      \
    } while (0)

/* Rows of the region's shape S, split among the threads; each row in
 * chunks.  Output k is columns [k D, (k+1) D) of the node's rows (a value
 * may be two outputs: a GRU step writes its gate gradients twice; rows may
 * be strided: the node may be placed in a concat). */
#define FUSED_LOOP()                                                          \
    do {                                                                       \
        weft_iter4 it[WEFT_FUSED_MAX_INPUTS];                                  \
        for (int k = 0; k < n; k++) it[k] = weft_iter4_of(&in[k], &S);         \
        const weft_iter4 io = weft_iter4_of(out, &out->shape);                 \
        const int64_t D = S.ndim ? S.dim[S.ndim - 1] : 1;                      \
        const int64_t rows = weft_shape_numel(S) / D;                          \
        WEFT_TEAM(weft_kernel_threads(ctx, rows, rows * D),                    \
        for (int64_t row = rows * team_t / team_n; row < rows * (team_t + 1) / team_n; row++) { \
            T tmp[WEFT_FUSED_MAX_INSTR * CHUNK], gath[WEFT_FUSED_MAX_INPUTS][CHUNK]; \
            const T *base[WEFT_FUSED_MAX_INPUTS];                              \
            const weft_row3 ri = weft_row_index(&io, row); /* S's leading dims */ \
            const int64_t orow = weft_row_offset(&io, ri);                     \
            for (int k = 0; k < n; k++) base[k] = (const T *)in[k].data + weft_row_offset(&it[k], ri); \
            for (int64_t j0 = 0; j0 < D; j0 += CHUNK) {                        \
                const int len = (int)(D - j0 < CHUNK ? D - j0 : CHUNK);        \
                const T *src[WEFT_FUSED_MAX_INPUTS];                           \
                T *res[WEFT_FUSED_MAX_INSTR];                                  \
                int ng = 0;                                                    \
                for (int k = 0; k < n; k++) {                                  \
                    int64_t st = it[k].s[3];                                   \
                    if (st == 1) { src[k] = base[k] + j0; continue; }          \
                    T *gbuf = gath[ng++];                                      \
                    if (st == 0) { /* a scalar or a column: a vector fill */   \
                        const T v = base[k][0];                                \
                        _Pragma("omp simd")                                    \
                        for (int j = 0; j < len; j++) gbuf[j] = v;             \
                    } else {                                                   \
                        for (int j = 0; j < len; j++) gbuf[j] = base[k][(j0 + j) * st]; \
                    }                                                          \
                    src[k] = gbuf;                                             \
                }                                                              \
                if (fn) { /* compiled: every value in registers */            \
                    T *o[WEFT_FUSED_MAX_OUT];                                  \
                    for (int k = 0; k < n_out; k++) o[k] = (T *)out->data + orow + k * D + j0; \
                    fn(len, (const float *const *)(const void *)src, (float *const *)(void *)o); \
                    continue;                                                  \
                }                                                              \
                for (int q = 0; q < prog->n_instr; q++) res[q] = tmp + q * CHUNK; \
                for (int k = n_out - 1; k >= 0; k--) /* a value written twice: its first place */ \
                    res[out_ins[k]] = (T *)out->data + orow + k * D + j0;      \
                RUN_CHUNK();                                                   \
                for (int k = 0; k < n_out; k++) /* and its others */           \
                    if (res[out_ins[k]] != (T *)out->data + orow + k * D + j0) \
                        memcpy((T *)out->data + orow + k * D + j0, res[out_ins[k]], (size_t)len * sizeof(T)); \
            }                                                                  \
        });                                                                    \
    } while (0)

WEFT_KERNEL_CLONES weft_status weft_fused_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                              const weft_kctx *ctx) {
    const weft_fused_prog *prog = &ctx->g->progs[attr->i[0]];
    weft_shape S = attr->shape;
    if (S.ndim == 2) S.dim[0] = out->shape.dim[0]; /* a band of the rows (core/rows.c) */
    int n_out = prog->n_out >= 2 ? prog->n_out : 1;
    int16_t last = (int16_t)(prog->n_instr - 1);
    const int16_t *out_ins = prog->n_out >= 2 ? prog->out_ins : &last;
    const weft_fused_fn fn = out->dtype == WEFT_F32 ? prog->fn : NULL;
    if (out->dtype == WEFT_F32) {
        typedef float T;
        FUSED_LOOP();
    } else {
        typedef double T;
        FUSED_LOOP();
    }
    return WEFT_OK;
}
