/* matmul: op(A) @ op(B) for 2-D operands, on BLIS or (large f32 products, AVX-512) weft's own driver, strided operands direct. */
#include <blis.h>
#include <omp.h>
#include <string.h>

#include "op.h"

#define WEFT_GEMM_PAR_MIN 2e6 /* multiply-adds below which a GEMM runs on one thread */

/* Who owns the cores: the executor runs one kernel at a time; a GEMM gets
 * BLIS's threads (or OpenMP's, on weft's own driver for large f32
 * products), an elementwise kernel OpenMP's, never nested.  Both are set
 * here.  Each output element's sum is made in the same order for any
 * thread count (BLIS's conventional path does not split the k loop, and its
 * small-matrix path is off, see below; weft's driver splits rows;
 * matmul_packed's two depth halves are fixed by the shape), so results are
 * bitwise the same for any count. */
void weft_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    bli_thread_set_num_threads(n);
}

int weft_get_threads(void) { return omp_get_max_threads(); }

/* Whether an [m x k] x [k x n] product runs on one thread: inside an
 * inter-op worker, or below WEFT_GEMM_PAR_MIN multiply-adds. */
static int gemm_single(const weft_kctx *ctx, int64_t m, int64_t n, int64_t k) {
    return (ctx && ctx->threads == 1) || (double)m * (double)n * (double)k < WEFT_GEMM_PAR_MIN;
}

static int have_avx512(void);
/* Columns [at, at + n) of op(B), element (k, j) at p[k*bk + (j - at)*bj]:
 * op(B) is one of these, or (matmul_cat) several side by side. */
typedef struct {
    const float *p;
    int64_t bk, bj, n;
} wide_seg;
static int wide_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t ai, int64_t ak, const wide_seg *B,
                         int nseg, float *C, int64_t ldc, int nt);
/* Whether an f32 product runs on weft's own driver (below, "Large f32
 * products") rather than BLIS's: with AVX-512, from WEFT_GEMM_PAR_MIN
 * multiply-adds. */
static int wide_gemm_pays(int64_t m, int64_t n, int64_t k) {
    return have_avx512() && (double)m * (double)n * (double)k >= WEFT_GEMM_PAR_MIN;
}
/* Whether op(A) [m x k] (element (i, k) at A[i*ai + k*ak], strides as
 * operand() leaves them) times a [k x n] operand, into an output with
 * column stride csc, runs on that driver: f32, unit output columns, A with
 * a unit stride, and large enough. */
static int wide_runs(weft_dtype dt, int64_t m, int64_t n, int64_t k, int64_t ai, int64_t ak, int64_t csc) {
    return dt == WEFT_F32 && csc == 1 && (ai == 1 || ak == 1) && wide_gemm_pays(m, n, k);
}

weft_status weft_matmul_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                              weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[160];
    const weft_node_rec *A = weft_rec(g, in[0]), *B = weft_rec(g, in[1]);
    weft_status s;
    if ((s = weft_dtype_check_float(g, in[0])) || (s = weft_dtype_check_float(g, in[1]))) return s;
    if (A->dtype != B->dtype)
        return weft_error(WEFT_ERR_DTYPE, "dtypes differ: %s and %s", weft_node_desc(g, in[0], a, sizeof a),
                          weft_node_desc(g, in[1], b, sizeof b));
    if (A->shape.ndim != 2 || B->shape.ndim != 2)
        return weft_error(WEFT_ERR_SHAPE, "operands must be 2-D: %s and %s (reshape first)",
                          weft_node_desc(g, in[0], a, sizeof a), weft_node_desc(g, in[1], b, sizeof b));
    int ta = attr->i[0] != 0, tb = attr->i[1] != 0;
    int64_t m = A->shape.dim[ta], ka = A->shape.dim[!ta], kb = B->shape.dim[tb], nn = B->shape.dim[!tb];
    if (ka != kb)
        return weft_error(WEFT_ERR_SHAPE, "inner dimensions differ: %s%s (k=%lld) and %s%s (k=%lld)",
                          weft_node_desc(g, in[0], a, sizeof a), ta ? "^T" : "", (long long)ka,
                          weft_node_desc(g, in[1], b, sizeof b), tb ? "^T" : "", (long long)kb);
    *shape = WEFT_SHAPE(m, nn);
    *dtype = A->dtype;
    return WEFT_OK;
}

/* BLIS takes any row/column strides, but not 0 (broadcast) and not
 * ambiguous strides on unit dimensions: normalise, or copy when needed. */
static const void *operand(const weft_tensor *t, inc_t *rs, inc_t *cs, void **tmp) {
    int64_t r = t->shape.dim[0], c = t->shape.dim[1], s0 = t->stride[0], s1 = t->stride[1];
    *tmp = NULL;
    if ((r > 1 && s0 == 0) || (c > 1 && s1 == 0) || s0 < 0 || s1 < 0) {
        size_t es = weft_dtype_size(t->dtype);
        *tmp = malloc((size_t)(r * c) * es);
        if (!*tmp) return NULL;
        weft_tensor_copy_to(t, *tmp);
        s0 = c;
        s1 = 1;
    }
    if (c == 1) s1 = 1;
    if (r == 1) s0 = c * s1;
    if (r == 1 && c == 1) s0 = s1 = 1;
    *rs = s0;
    *cs = s1;
    return *tmp ? *tmp : t->data;
}

weft_status weft_matmul_kernel(weft_tensor *out, const weft_tensor *in, int n,
                               const weft_attr *attr, const weft_kctx *ctx) {
    inc_t rsa, csa, rsb, csb;
    void *ta_buf, *tb_buf;
    const void *A = operand(&in[0], &rsa, &csa, &ta_buf);
    const void *B = operand(&in[1], &rsb, &csb, &tb_buf);
    if (!A || !B) {
        free(ta_buf);
        free(tb_buf);
        return weft_error(WEFT_ERR_NOMEM, "matmul: out of memory for an operand copy");
    }
    int ta = attr->i[0] != 0, tb = attr->i[1] != 0;
    dim_t m = out->shape.dim[0], nn = out->shape.dim[1], k = in[0].shape.dim[ta ? 0 : 1];
    trans_t TA = ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, TB = tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE;
    /* The output may be a row-strided slice of a larger buffer (a concat's). */
    inc_t rsc = out->stride[0], csc = out->stride[1];
    if (nn == 1) csc = 1;
    if (m == 1) rsc = nn * csc; /* unambiguous strides on unit dimensions, as BLIS wants */
    /* Inside an inter-op worker the GEMM gets one thread; so does a small
     * GEMM (a recurrent step's), whose share of work does not pay for
     * waking and joining a second thread — on a shared machine that wait
     * can cost more than the product itself. */
    const int single = gemm_single(ctx, m, nn, k);
    /* element (i, k) of op(A) at A[i*ai + k*ak], (k, j) of op(B) at B[k*bk + j*bj] */
    const int64_t ai = ta ? csa : rsa, ak = ta ? rsa : csa, bk = tb ? csb : rsb, bj = tb ? rsb : csb;
    int oom = 0;
    if (wide_runs(out->dtype, m, nn, k, ai, ak, csc)) {
        const wide_seg b = {B, bk, bj, nn};
        oom = wide_gemm_f32(m, nn, k, A, ai, ak, &b, 1, out->data, rsc, single ? 1 : omp_get_max_threads()) != 0;
    } else {
        rntm_t rntm = BLIS_RNTM_INITIALIZER;
        bli_rntm_set_num_threads(single ? 1 : bli_thread_get_num_threads(), &rntm);
        /* BLIS's small-matrix ("sup") path splits its work differently with 2
         * threads than with 1 and then sums in another order: 84 of 1680 shapes
         * gave other bits (1-1000 rows, 7-1024 columns, depth 3-1024, all flag
         * pairs).  Its conventional path keeps each output element's sum order
         * for any thread count, so weft always takes it. */
        bli_rntm_set_l3_sup(FALSE, &rntm);
        if (out->dtype == WEFT_F32) {
            float one = 1, zero = 0;
            bli_sgemm_ex(TA, TB, m, nn, k, &one, (float *)A, rsa, csa, (float *)B, rsb, csb, &zero,
                         out->data, rsc, csc, NULL, &rntm);
        } else {
            double one = 1, zero = 0;
            bli_dgemm_ex(TA, TB, m, nn, k, &one, (double *)A, rsa, csa, (double *)B, rsb, csb, &zero,
                         out->data, rsc, csc, NULL, &rntm);
        }
    }
    free(ta_buf);
    free(tb_buf);
    return oom ? weft_error(WEFT_ERR_NOMEM, "matmul: out of memory for packing B") : WEFT_OK;
}

/* C = op(A) op(B):  dA = gy op(B)^T (or its transpose),  dB = op(A)^T gy. */
weft_status weft_matmul_vjp(weft_graph *g, weft_node y, weft_node gy, weft_node *gin) {
    const weft_node_rec *r = weft_rec(g, y);
    weft_node A = weft_rec_inputs(g, r)[0], B = weft_rec_inputs(g, r)[1];
    int ta = r->attr.i[0] != 0, tb = r->attr.i[1] != 0;
    gin[0] = ta ? weft_matmul(g, B, gy, tb, 1) : weft_matmul(g, gy, B, 0, !tb);
    gin[1] = tb ? weft_matmul(g, gy, A, 1, ta) : weft_matmul(g, A, gy, !ta, 0);
    return WEFT_OK;
}

weft_node weft_matmul(weft_graph *g, weft_node a, weft_node b, int trans_a, int trans_b) {
    weft_attr at = {.i = {trans_a != 0, trans_b != 0}};
    weft_node in[2] = {a, b};
    return weft_graph_add_op(g, WEFT_OP_matmul, in, 2, &at);
}

/* ---- Products whose right operand is a concat of columns ----
 *
 * A weight gradient with its bias is dG^T [x | h | 1]: the concat copies x,
 * every step's h and a ones column into one [T*B, I + H + 1] buffer (row
 * 3: 13 MB, 1.7 ms per step), only for the product to pack it into panels.
 * matmul_cat(A, P_1, ..., P_n) is op(A) [P_1 | ... | P_n], the parts read
 * where they are when packing B (wide_pack_b's segments).  The pass
 * `concat-operand` makes it where that path runs (weft_matmul_cat_pays);
 * anywhere else the kernel copies the parts side by side and runs matmul. */
int weft_matmul_cat_pays(weft_dtype dt, int64_t m, int64_t n, int64_t k) {
    return dt == WEFT_F32 && wide_gemm_pays(m, n, k);
}

weft_status weft_matmul_cat_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                  weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[160];
    const weft_node_rec *A = weft_rec(g, in[0]);
    weft_status s;
    if ((s = weft_dtype_check_float(g, in[0]))) return s;
    if (n < 2 || n - 1 > WEFT_MATMUL_CAT_MAX_PARTS)
        return weft_error(WEFT_ERR_GRAPH, "matmul_cat: %d parts, not 1 to %d", n - 1, WEFT_MATMUL_CAT_MAX_PARTS);
    if (A->shape.ndim != 2)
        return weft_error(WEFT_ERR_SHAPE, "matmul_cat: %s must be 2-D", weft_node_desc(g, in[0], a, sizeof a));
    int ta = attr->i[0] != 0;
    int64_t m = A->shape.dim[ta], k = A->shape.dim[!ta], cols = 0;
    for (int q = 1; q < n; q++) {
        const weft_node_rec *P = weft_rec(g, in[q]);
        if (P->dtype != A->dtype || P->shape.ndim != 2 || P->shape.dim[0] != k)
            return weft_error(WEFT_ERR_SHAPE, "matmul_cat: part %s does not fit %s%s (k=%lld)",
                              weft_node_desc(g, in[q], b, sizeof b), weft_node_desc(g, in[0], a, sizeof a),
                              ta ? "^T" : "", (long long)k);
        cols += P->shape.dim[1];
    }
    *shape = WEFT_SHAPE(m, cols);
    *dtype = A->dtype;
    return WEFT_OK;
}

weft_status weft_matmul_cat_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                                   const weft_kctx *ctx) {
    const int ta = attr->i[0] != 0;
    const int64_t m = out->shape.dim[0], N = out->shape.dim[1], K = in[0].shape.dim[ta ? 0 : 1];
    inc_t rsa, csa;
    void *ta_buf;
    const float *A = operand(&in[0], &rsa, &csa, &ta_buf);
    if (!A) return weft_error(WEFT_ERR_NOMEM, "matmul_cat: out of memory for an operand copy");
    const int64_t ai = ta ? csa : rsa, ak = ta ? rsa : csa;
    if (wide_runs(out->dtype, m, N, K, ai, ak, N == 1 ? 1 : out->stride[1])) {
        wide_seg seg[WEFT_MATMUL_CAT_MAX_PARTS];
        int ns = 0;
        for (int q = 1; q < n; q++) /* none empty; N > 0, so one at least */
            if (in[q].shape.dim[1] > 0) seg[ns++] = (wide_seg){in[q].data, in[q].stride[0], in[q].stride[1], in[q].shape.dim[1]};
        int oom = wide_gemm_f32(m, N, K, A, ai, ak, seg, ns, out->data, out->stride[0],
                                gemm_single(ctx, m, N, K) ? 1 : omp_get_max_threads());
        free(ta_buf);
        return oom ? weft_error(WEFT_ERR_NOMEM, "matmul_cat: out of memory for packing B") : WEFT_OK;
    }
    free(ta_buf);
    /* elsewhere: the parts side by side in a buffer (the concat's own
     * kernel), then matmul */
    weft_tensor two[2] = {in[0], {.dtype = out->dtype, .shape = WEFT_SHAPE(K, N), .stride = {N, 1}}};
    if (!(two[1].data = malloc((size_t)(K * N) * weft_dtype_size(out->dtype) + 1)))
        return weft_error(WEFT_ERR_NOMEM, "matmul_cat: out of memory for its right operand");
    const weft_attr ca = {.i = {1}}, ma = {.i = {ta, 0}};
    weft_status st = weft_concat_kernel(&two[1], in + 1, n - 1, &ca, ctx);
    if (!st) st = weft_matmul_kernel(out, two, 2, &ma, ctx);
    free(two[1].data);
    return st;
}

/* ---- Products against a pre-packed right operand ----
 *
 * BLIS packs B into NR-wide panels on every call.  A recurrent step's
 * product [B, H] x [H, G*H] reads the same weights at each of T steps: on
 * row 3's shapes [64x256]x[256x1024], 300 calls with other memory traffic
 * between them, BLIS ran at 79-155 GFLOP/s, the same micro-kernel on
 * weights packed once at 150-192 (docs/performance.md).  So (as oneDNN keeps its
 * weights in a packed format) the compiler packs such a B once per run
 * (pack_b) and the per-step products (matmul_packed) run a micro-kernel on
 * the panels: BLIS's own, or with AVX-512 the row-block kernel below.
 *
 * Layout of a packed B [K, N]: K in blocks of KC rows; in each block, the
 * ceil(N/NR) panels one after another, each kc x NR, row by row, zero past
 * column N.  The buffer starts at the first 64-byte boundary of the node's
 * storage (the micro-kernel loads panels with aligned loads).
 *
 * Threads split the panels (the N axis): each thread writes whole output
 * columns, and every output element is the same sequence of micro-kernel
 * calls over the same KC blocks for any thread count — bitwise the same
 * results with 1 or 2 threads.  Each thread keeps its share of the panels
 * across steps (in its own L2 when it fits).  A (the small operand: one
 * step's batch of rows) is read where it is by the row-block kernel when
 * its rows are contiguous (a step's h or dG: packing copied them every
 * step, and the backward's products took 0.80-0.93x the time without it,
 * the forward's 0.93-0.98x; bench/ab.py --kernels, 4 rounds, rows 1-5),
 * else packed by all the threads together first.
 * Narrow products share row blocks or their depth's two halves instead
 * (GEMM_PACKED); both are fixed by the shape. */

typedef struct {
    dim_t mr, nr, kc;
    void_fp ukr;
    cntx_t *cx;
} gemm_geom;

static gemm_geom geom_of(weft_dtype dt) {
    num_t d = dt == WEFT_F32 ? BLIS_FLOAT : BLIS_DOUBLE;
    cntx_t *cx = bli_gks_query_cntx();
    gemm_geom g = {bli_cntx_get_blksz_def_dt(d, BLIS_MR, cx), bli_cntx_get_blksz_def_dt(d, BLIS_NR, cx),
                   bli_cntx_get_blksz_def_dt(d, BLIS_KC, cx), bli_cntx_get_l3_nat_ukr_dt(d, BLIS_GEMM_UKR, cx), cx};
    return g;
}

#define PACK_ALIGN 64
/* Whether matmul_packed runs its own row-block kernel (AVX-512, below). */
static int rows_kernel_ok(const gemm_geom *g, size_t es);
/* Products with fewer panels than this share row blocks or their depth's
 * two halves among the threads instead of panels (see GEMM_PACKED). */
#define WEFT_PACK_SPLIT_K_PANELS 16

/* NR-column panels of an operand with n columns. */
static int64_t panels_of(const gemm_geom *g, int64_t n) { return (n + g->nr - 1) / g->nr; }

/* Elements of a packed [K, N] operand, with the alignment slack and one
 * panel row more: the micro-kernel loads the next row of B after its last
 * (a guard page showed it reading 64 bytes past every panel). */
static int64_t packed_numel(const gemm_geom *g, int64_t k, int64_t n, size_t es) {
    return k * panels_of(g, n) * g->nr + (int64_t)(PACK_ALIGN / es) + g->nr;
}

/* The panel layout here uses the register block sizes (MR, NR) as panel
 * widths; BLIS lays panels out by its "max" sizes (PACKMR, PACKNR), equal
 * on this machine's configuration.  Where they differ, no packing. */
static int packed_gemm_ok(weft_dtype dt) {
    num_t d = dt == WEFT_F32 ? BLIS_FLOAT : dt == WEFT_F64 ? BLIS_DOUBLE : BLIS_INT;
    if (d == BLIS_INT) return 0;
    cntx_t *cx = bli_gks_query_cntx();
    return bli_cntx_get_blksz_def_dt(d, BLIS_MR, cx) == bli_cntx_get_blksz_max_dt(d, BLIS_MR, cx) &&
           bli_cntx_get_blksz_def_dt(d, BLIS_NR, cx) == bli_cntx_get_blksz_max_dt(d, BLIS_NR, cx);
}

/* Products with more rows than this stay with BLIS: a time-batched GEMM
 * amortises its own packing, and BLIS splits its rows among the threads. */
#define WEFT_PACK_MAX_ROWS 512

int weft_packed_gemm_pays(weft_dtype dt, int64_t m, int64_t n, int64_t k) {
    if (m < 1 || m > WEFT_PACK_MAX_ROWS || n < 1 || k < 1 || !packed_gemm_ok(dt)) return 0;
    gemm_geom g = geom_of(dt);
    /* Wide products (WEFT_PACK_SPLIT_K_PANELS panels or more: 256 columns
     * in f32) share panels among the threads.  Narrower ones (from half
     * that) share row blocks on the row-block kernel, at any depth (row 2's
     * backward [128 x 384] x [384 x 128]: the step 2% faster, 7 rounds).
     * On BLIS's kernel they pay when their depth cuts into two halves of
     * whole KC blocks: row 1's backward [50 x 512] x [512 x 128] made the
     * step 3% faster on 2 threads and 2.5% on 1 (bench/ab.py, 6 and 4
     * rounds); row 2's (halves of 256 and 128) timed the same on 2 threads
     * and 4-6% slower on 1. */
    int64_t panels = panels_of(&g, n);
    int rows_split = rows_kernel_ok(&g, weft_dtype_size(dt)); /* narrow ones share row blocks, any depth */
    return panels >= WEFT_PACK_SPLIT_K_PANELS ||
           (panels >= WEFT_PACK_SPLIT_K_PANELS / 2 && (rows_split || k >= 2 * g.kc));
}

static void *packed_base(void *p) { return (void *)(((uintptr_t)p + PACK_ALIGN - 1) & ~(uintptr_t)(PACK_ALIGN - 1)); }

weft_status weft_pack_b_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                              weft_shape *shape, weft_dtype *dtype) {
    char b[160];
    const weft_node_rec *B = weft_rec(g, in[0]);
    weft_status s = weft_dtype_check_float(g, in[0]);
    if (s) return s;
    if (B->shape.ndim != 2)
        return weft_error(WEFT_ERR_SHAPE, "pack_b: operand must be 2-D: %s", weft_node_desc(g, in[0], b, sizeof b));
    int tb = attr->i[0] != 0;
    gemm_geom gm = geom_of(B->dtype);
    *shape = WEFT_SHAPE(packed_numel(&gm, B->shape.dim[tb], B->shape.dim[!tb], weft_dtype_size(B->dtype)));
    *dtype = B->dtype;
    return WEFT_OK;
}

/* One panel: kc rows of w elements (element r of row k at
 * src[k*s_k + r*s_r]) into rows of W, zero past w — a panel of A (W = MR)
 * or of B (W = NR). */
#define PACK_PANEL(T, q, src, s_k, s_r, kc, w, W)                              \
    for (int64_t k_ = 0; k_ < (kc); k_++) {                                    \
        const T *p_ = (src) + k_ * (s_k);                                      \
        T *d_ = (q) + k_ * (W);                                                \
        for (int64_t r_ = 0; r_ < (w); r_++) d_[r_] = p_[r_ * (s_r)];          \
        for (int64_t r_ = (w); r_ < (W); r_++) d_[r_] = 0;                     \
    }

/* Pack op(B) (element (k, j) at B[k*sk + j*sj]); the panels are shared
 * among the threads.  With unit column stride (B's rows contiguous, as
 * the backward's W [G*H, H] is) a thread walks its panels row by row: a
 * panel at a time walked down a column of rows whose pitch is near a
 * power of two (row 5's 1025 floats) used half of each line it fetched
 * and lost the other half (the next panel's) to set conflicts: row 5's
 * backward pack took 2.0-2.3 ms, now 0.7 (the transposed forward's
 * 0.5-0.7; `weft bench --profile`; blocks of 8 rows timed 0.4-1.0).  A
 * whole panel row is one memcpy (the generic loop ran scalar): row 5's
 * 638 -> 472 us, row 3's 164 -> 133 (bench/ab.py --kernels, 4 rounds).
 * Otherwise panel by panel, each run of kc rows read across its lines. */
#define PACK_B(T)                                                              \
    do {                                                                       \
        const T *B = in[0].data;                                               \
        T *P = packed_base(out->data);                                         \
        WEFT_TEAM(weft_kernel_threads(ctx, np, K * N),                         \
        const int64_t j0 = np * team_t / team_n, j1 = np * (team_t + 1) / team_n; \
        for (int64_t p0 = 0; p0 < K; p0 += gm.kc) {                            \
            const int64_t kc = K - p0 < gm.kc ? K - p0 : gm.kc;                \
            T *q = P + p0 * np * gm.nr;                                        \
            if (sj == 1)                                                       \
                for (int64_t k = 0; k < kc; k++)                               \
                    for (int64_t j = j0; j < j1; j++) {                        \
                        const int64_t nr = N - j * gm.nr < gm.nr ? N - j * gm.nr : gm.nr; \
                        T *dq_ = q + j * kc * gm.nr + k * gm.nr;               \
                        const T *sb_ = B + (p0 + k) * sk + j * gm.nr;          \
                        if (nr == gm.nr) memcpy(dq_, sb_, (size_t)gm.nr * sizeof(T)); \
                        else PACK_PANEL(T, dq_, sb_, 0, 1, 1, nr, gm.nr);      \
                    }                                                          \
            else                                                               \
                for (int64_t j = j0; j < j1; j++) {                            \
                    const int64_t nr = N - j * gm.nr < gm.nr ? N - j * gm.nr : gm.nr; \
                    PACK_PANEL(T, q + j * kc * gm.nr, B + p0 * sk + j * gm.nr * sj, sk, sj, kc, nr, gm.nr); \
                }                                                              \
        });                                                                    \
    } while (0)

weft_status weft_pack_b_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                               const weft_kctx *ctx) {
    (void)n;
    int tb = attr->i[0] != 0;
    gemm_geom gm = geom_of(out->dtype);
    const int64_t K = in[0].shape.dim[tb], N = in[0].shape.dim[!tb], np = panels_of(&gm, N);
    const int64_t sk = in[0].stride[tb], sj = in[0].stride[!tb];
    if (out->dtype == WEFT_F32) PACK_B(float);
    else PACK_B(double);
    return WEFT_OK;
}

weft_status weft_matmul_packed_infer(const weft_graph *g, const weft_node *in, int n, weft_attr *attr,
                                     weft_shape *shape, weft_dtype *dtype) {
    char a[160], b[160];
    const weft_node_rec *A = weft_rec(g, in[0]), *P = weft_rec(g, in[1]);
    weft_status s;
    if ((s = weft_dtype_check_float(g, in[0]))) return s;
    if (A->dtype != P->dtype)
        return weft_error(WEFT_ERR_DTYPE, "dtypes differ: %s and %s", weft_node_desc(g, in[0], a, sizeof a),
                          weft_node_desc(g, in[1], b, sizeof b));
    int ta = attr->i[0] != 0;
    int64_t m = A->shape.ndim == 2 ? A->shape.dim[ta] : -1, k = A->shape.ndim == 2 ? A->shape.dim[!ta] : -1;
    /* P must be a pack_b of a [k, N] operand (N = attr i[2]) */
    int ok = m >= 0 && P->kind == WEFT_NODE_OP && P->op == WEFT_OP_pack_b;
    if (ok) {
        const weft_node_rec *B = weft_rec(g, weft_in_of(g, in[1], 0));
        int tb = P->attr.i[0] != 0;
        ok = B->shape.dim[tb] == k && B->shape.dim[!tb] == attr->i[2];
    }
    if (!ok)
        return weft_error(WEFT_ERR_SHAPE, "matmul_packed: %s%s does not fit the packed [%lld, %lld] operand %s",
                          weft_node_desc(g, in[0], a, sizeof a), ta ? "^T" : "", (long long)k,
                          (long long)attr->i[2], weft_node_desc(g, in[1], b, sizeof b));
    *shape = WEFT_SHAPE(m, attr->i[2]);
    *dtype = A->dtype;
    return WEFT_OK;
}

/* ---- Row blocks of any height (AVX-512) ----
 *
 * BLIS's micro-kernel computes MR = 6 rows: a step's batch of 50 rows is 8
 * tiles and a 2-row remainder that costs a whole tile (computed into a
 * scratch tile and copied), 16 rows are 2 tiles and a 4-row one.  With
 * AVX-512 (32 vector registers), one register holds a row of an NR-wide
 * panel (16 f32, 8 f64), so a block of any R <= WEFT_ROWS_MAX rows is R
 * accumulators: the rows are cut into near-equal blocks (50 = 12 + 13 +
 * 12 + 13, 16 = 8 + 8, 64 = 12 + 4 x 13) and none is wasted.  Each output
 * element is still one sum over k in order, then added to C (beta 1) or
 * stored (beta 0), the same for any thread count.  Used when the CPU has
 * AVX-512F and the panels are one register wide; BLIS's kernel otherwise. */
#define WEFT_ROWS_MAX 14
#define ROWS_PACKED (-1) /* A's row stride argument for a packed block (below) */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ROWS_TARGET __attribute__((target("avx512f")))
/* The rows of one block: R rows of A (element (r, k) at a[k*ak + r*ar]:
 * packed as kc x R, or rows of A read in place), B as kc x NV registers
 * (a panel NV vectors wide, its rows bs elements apart), C rows at
 * c + r*rs with unit column stride, or through a scratch tile when the
 * column stride is not 1; beta1 0 stores
 * C, 1 adds to it, 2 stores whole aligned vectors non-temporally (the
 * others as 0).  R*NV accumulators: R <= WEFT_ROWS_MAX with one vector,
 * R <= WIDE_MR with two. */
#define WEFT_ROWS_NV 2
#define L_OF(b) (64 / (int64_t)sizeof(*(b))) /* a packed panel's row: one vector */
/* ar: A's row stride when its rows are read in place (unit depth stride;
 * 0, a row broadcast down the block, is a stride like any other), or
 * ROWS_PACKED for a packed block (kc x R) */
#define ROWS_CALL(NAME, R) NAME##_r(R, 1, nr, kc, a, ar >= 0 ? ar : 1, ar >= 0 ? 1 : (R), b, L_OF(b), beta1, c, rs, cs)
#define ROWS_CASE(NAME, R) case R: ROWS_CALL(NAME, R); break;
#define ROWS_BLOCK(NAME, T, V, SET1, ZERO, LOADU, FMADD, MASK_T, MLOAD, MSTORE, ADD, STOREU, STREAM) \
    static inline __attribute__((always_inline)) ROWS_TARGET void NAME##_r(const int R, const int NV, int64_t nr, \
                                                                         int64_t kc, const T *a, int64_t ar, \
                                                                         int64_t ak, const T *b, int64_t bs, int beta1, T *c, \
                                                                         int64_t rs, int64_t cs) { \
        enum { L = 64 / sizeof(T) }; /* lanes */                              \
        V acc[WEFT_ROWS_MAX][WEFT_ROWS_NV];                                    \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++)                   \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[r][v] = ZERO(); \
        for (int64_t k = 0; k < kc; k++) {                                     \
            V bv[WEFT_ROWS_NV];                                                \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) bv[v] = LOADU(b + k * bs + v * L); \
            _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) {             \
                const V x = SET1(a[k * ak + r * ar]);                          \
                _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[r][v] = FMADD(x, bv[v], acc[r][v]); \
            }                                                                  \
        }                                                                      \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                 \
            const int64_t w = nr - v * L; /* columns of this vector */         \
            if (w <= 0) break;                                                 \
            const MASK_T m = (MASK_T)(w >= L ? (1u << L) - 1 : (1u << w) - 1); \
            if (cs == 1) {                                                     \
                _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) {         \
                    T *cr = c + r * rs + v * L;                                \
                    if (beta1 == 2 && w >= L && !((uintptr_t)cr & 63)) STREAM(cr, acc[r][v]); \
                    else MSTORE(cr, m, beta1 == 1 ? ADD(MLOAD(m, cr), acc[r][v]) : acc[r][v]); \
                }                                                              \
            } else {                                                           \
                T tile[L];                                                     \
                for (int r = 0; r < R; r++) {                                  \
                    STOREU(tile, acc[r][v]);                                   \
                    T *cr = c + r * rs + v * L * cs;                           \
                    for (int64_t j = 0; j < (w < L ? w : L); j++) cr[j * cs] = beta1 == 1 ? cr[j * cs] + tile[j] : tile[j]; \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    static ROWS_TARGET void NAME(int R, int64_t nr, int64_t kc, const T *a, int64_t ar, const T *b, int beta1, T *c, \
                                 int64_t rs, int64_t cs) {                     \
        /* one specialisation per height: the accumulators stay in registers */ \
        switch (R) {                                                           \
            ROWS_CASE(NAME, 1) ROWS_CASE(NAME, 2) ROWS_CASE(NAME, 3) ROWS_CASE(NAME, 4) ROWS_CASE(NAME, 5) \
            ROWS_CASE(NAME, 6) ROWS_CASE(NAME, 7) ROWS_CASE(NAME, 8) ROWS_CASE(NAME, 9) ROWS_CASE(NAME, 10) \
            ROWS_CASE(NAME, 11) ROWS_CASE(NAME, 12) ROWS_CASE(NAME, 13)        \
        default: ROWS_CALL(NAME, WEFT_ROWS_MAX); break;                       \
        }                                                                      \
    }
ROWS_BLOCK(rows_f32, float, __m512, _mm512_set1_ps, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, __mmask16,
           _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, _mm512_add_ps, _mm512_storeu_ps, _mm512_stream_ps)
ROWS_BLOCK(rows_f64, double, __m512d, _mm512_set1_pd, _mm512_setzero_pd, _mm512_loadu_pd, _mm512_fmadd_pd, __mmask8,
           _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, _mm512_add_pd, _mm512_storeu_pd, _mm512_stream_pd)
static int have_avx512(void) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = __builtin_cpu_supports("avx512f") != 0;
    return avx512;
}
static int rows_kernel_ok(const gemm_geom *g, size_t es) { return have_avx512() && (size_t)g->nr * es == 64; }

/* ---- Large f32 products on the row-block kernel (AVX-512) ----
 *
 * BLIS's conventional path ran weft's time-batched products (row 3's dx
 * [6400 x 1024] x [1024 x 256], its weight gradient with the bias's ones
 * column [1024 x 6400] x [6400 x 513]) at 140-170 GFLOP/s on 2 threads,
 * oneDNN's sgemm at 160-200 (bench/onednn_gemm.c).  This driver runs
 * them on the row-block kernel two vectors wide (WIDE_MR x 32: 24
 * accumulators), per depth block (WIDE_KC, or up to twice that: below):
 *   - the threads pack that block of B into 32-column panels together,
 *     except, in a product with a transposed A (a weight gradient
 *     dG^T [x | h | 1]), the panels that lie whole in one part with
 *     contiguous rows (a full 32 columns, or a narrow last one): those the
 *     kernel reads where they are, B's row stride apart.  A weight
 *     gradient's B is the layer's inputs, T*B rows that come from memory
 *     once, and packing them was a second pass over them and a barrier
 *     per block: with every panel read in place there is no barrier at all
 *     (in-situ, `bench/ab.py --kernels`, 3 rounds: the weight gradients of
 *     rows 1, 3, 4 and 5 0.97, 0.92, 0.89 and 0.98x the time).  The
 *     products against a weight (x W^T, dG W: a few hundred KB of B read
 *     again by each of thousands of row blocks) stay packed: read in place
 *     down B's rows, row 5's dx took 1.08x the time;
 *   - each thread takes its share of A's WIDE_MR-row blocks, and for each
 *     one runs every panel: the block of A (24 KB) stays in L1 while the
 *     panels stream from L2.  A is read in place when its rows are
 *     contiguous (x, dG); else, when its columns are (a transposed A
 *     such as dG^T), packed WIDE_GROUP blocks at a time: WIDE_GROUP *
 *     WIDE_MR contiguous values per k, whole lines.  (An A with neither
 *     stride 1 goes to BLIS);
 *   - a last panel 16 columns wide or less (the ones column's 513th) runs
 *     down the rows instead (wide_narrow): one FMA per k, not a block's 24;
 *   - a large product of one depth block streams its output (STREAM_MIN).
 * On the bench's six products it runs at 1.02-1.30x BLIS's speed and
 * 0.83-1.05x oneDNN's (the weight gradients are the slowest; the packing
 * is a tenth of its time).  WIDE_KC 512 against 256: the dx products
 * about 5% faster, the rest the same within the noise.
 * Each output element is one sum over k in order, depth block by block
 * (the blocks a property of the shape)
 * (a 1-column last panel: four chains over k, k mod 4, added at the end of
 * the block), whichever thread owns its rows: the same bits for any thread
 * count.  The four chains: row 1's weight gradient [512 x 4000] x
 * [4000 x 257] 159-164 -> 174-175 GFLOP/s on 2 threads, the step 0.95x
 * (fifteenth session): one chain waited an FMA's latency per k. */
#define WIDE_MR 12
#define WIDE_NR 32
#define WIDE_KC 512
#define WIDE_GROUP 4 /* row blocks of A packed together */
/* Bytes of output from which a one-block product streams its stores:
 * x W_ih of rows 3 and 4 (26 and 20 MB) 0.98x best, 0.94x median with
 * non-temporal stores (bench/ab.py --kernels, 5 rounds); row 5's 6.5 MB
 * stays in L3 for the steps that read it. */
#define STREAM_MIN (8.0 * 1024 * 1024)

/* C[R rows, w <= 16 columns] (+)= packed A block (kc x R) x the first w
 * columns of a B panel whose rows are bs apart (a packed panel: WIDE_NR). */
static ROWS_TARGET void wide_narrow(int R, int64_t w, int64_t kc, const float *a, const float *b, int64_t bs,
                                    int beta1, float *c, int64_t rs) {
    const __mmask16 m = (__mmask16)((1u << R) - 1);
    if (w == 1) { /* the ones column: four chains over k, not one FMA's latency per k */
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        int64_t k = 0;
        for (; k + 4 <= kc; k += 4)
            _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++)
                acc[u] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + (k + u) * R), _mm512_set1_ps(b[(k + u) * bs]), acc[u]);
        for (; k < kc; k++) acc[0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k * R), _mm512_set1_ps(b[k * bs]), acc[0]);
        float t[16];
        _mm512_storeu_ps(t, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
        for (int r = 0; r < R; r++) c[r * rs] = beta1 ? c[r * rs] + t[r] : t[r];
        return;
    }
    __m512 acc[16];
    for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m512 x = _mm512_maskz_loadu_ps(m, a + k * R);
        for (int64_t j = 0; j < w; j++) acc[j] = _mm512_fmadd_ps(x, _mm512_set1_ps(b[k * bs + j]), acc[j]);
    }
    float t[16][16];
    for (int64_t j = 0; j < w; j++) _mm512_storeu_ps(t[j], acc[j]);
    for (int r = 0; r < R; r++)
        for (int64_t j = 0; j < w; j++) c[r * rs + j] = beta1 ? c[r * rs + j] + t[j][r] : t[j][r];
}

#define WIDE_CASE(R)                                                                                          \
    case R:                                                                                                   \
        if (packed) rows_f32_r(R, 2, nr, kc, a, 1, R, b, bs, beta1, c, rs, 1);                                \
        else rows_f32_r(R, 2, nr, kc, a, ar, 1, b, bs, beta1, c, rs, 1);                                      \
        break;
/* One WIDE_MR x 32 block (R rows, nr columns): A packed (kc x R) or its
 * rows in place (row stride ar, unit depth stride); B's panel rows bs
 * apart (packed: WIDE_NR). */
static ROWS_TARGET void wide_block(int R, int packed, int64_t nr, int64_t kc, const float *a, int64_t ar,
                                   const float *b, int64_t bs, int beta1, float *c, int64_t rs) {
    switch (R) {
        WIDE_CASE(1) WIDE_CASE(2) WIDE_CASE(3) WIDE_CASE(4) WIDE_CASE(5) WIDE_CASE(6)
        WIDE_CASE(7) WIDE_CASE(8) WIDE_CASE(9) WIDE_CASE(10) WIDE_CASE(11) WIDE_CASE(12)
    }
}

/* A 32-column panel of op(B): the segment g holding its first column,
 * which starts at column `at`, found once per product; and, when the
 * kernel reads the panel where it is, its first row at depth 0 and its row
 * stride (p NULL: the panel is packed). */
typedef struct {
    const float *p;
    int64_t bk, at;
    int g;
} wide_panel;

/* Depth p0..p0+kc of op(B) (nseg segments side by side) into kc x 32
 * panels, zero past column N; panels j0..j1 but those read in place
 * (pn[j].p set).  A panel within one segment
 * whose rows have unit stride is copied two vectors at a time; others as
 * pack_b packs them, and one across segments a value at a time. */
static ROWS_TARGET void wide_pack_b(float *q, const wide_seg *sg, int nseg, int64_t p0, int64_t kc, int64_t N,
                                    int64_t j0, int64_t j1, const wide_panel *pn) {
    for (int64_t j = j0; j < j1; j++) {
        if (pn[j].p) continue;
        float *d = q + j * kc * WIDE_NR;
        const int64_t c0 = j * WIDE_NR, w = N - c0 < WIDE_NR ? N - c0 : WIDE_NR;
        int g = pn[j].g;
        int64_t at = pn[j].at; /* segment g holds columns [at, at + n) */
        if (c0 + w <= at + sg[g].n) { /* the panel in one segment */
            const int64_t bk = sg[g].bk, bj = sg[g].bj;
            const float *src = sg[g].p + p0 * bk + (c0 - at) * bj;
            if (bj == 1) {
                const __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1),
                                m1 = (__mmask16)(w >= 32 ? 0xffff : w <= 16 ? 0 : (1u << (w - 16)) - 1);
                for (int64_t k = 0; k < kc; k++) {
                    _mm512_store_ps(d + k * WIDE_NR, _mm512_maskz_loadu_ps(m0, src + k * bk));
                    _mm512_store_ps(d + k * WIDE_NR + 16, _mm512_maskz_loadu_ps(m1, src + k * bk + 16));
                }
            } else {
                PACK_PANEL(float, d, src, bk, bj, kc, w, WIDE_NR);
            }
            continue;
        }
        memset(d, 0, (size_t)(kc * WIDE_NR) * sizeof(float));
        for (int64_t l = 0; l < w && g < nseg; at += sg[g++].n) { /* lanes [l, l1) from segment g */
            const int64_t l1 = at + sg[g].n - c0 < w ? at + sg[g].n - c0 : w, bk = sg[g].bk, bj = sg[g].bj;
            const float *src = sg[g].p + p0 * bk + (c0 + l - at) * bj;
            for (int64_t k = 0; k < kc; k++)
                for (int64_t x = l; x < l1; x++) d[k * WIDE_NR + x] = src[k * bk + (x - l) * bj];
            l = l1;
        }
    }
}

/* Row blocks ib0..ib1 of a transposed A (element (i, k) at A[i + k*ak]),
 * depth p0..p0+kc, block after block into kc x R panels (R = WIDE_MR,
 * fewer in A's last), read a k at a time across all the blocks, so each
 * line of A is fetched once for WIDE_GROUP blocks. */
static ROWS_TARGET void wide_pack_a(float *q, const float *A, int64_t M, int64_t ak, int64_t ib0, int64_t ib1,
                                    int64_t p0, int64_t kc) {
    for (int64_t k = 0; k < kc; k++) {
        const float *s = A + ib0 * WIDE_MR + (p0 + k) * ak;
        _mm_prefetch((const char *)(s + 16 * ak), _MM_HINT_T0);
        _mm_prefetch((const char *)(s + 16 * ak + (ib1 - ib0) * WIDE_MR - 1), _MM_HINT_T0);
        for (int64_t ib = ib0; ib < ib1; ib++) {
            const int64_t i = ib * WIDE_MR;
            const int R = (int)(M - i < WIDE_MR ? M - i : WIDE_MR);
            const __mmask16 m = (__mmask16)((1u << R) - 1);
            _mm512_mask_storeu_ps(q + (ib - ib0) * WIDE_MR * kc + k * R, m, _mm512_maskz_loadu_ps(m, A + i + (p0 + k) * ak));
        }
    }
}

/* C[M, N] (row stride ldc, unit column stride) = op(A) op(B) on nt
 * threads, A with a unit stride (ak 1: read in place; else ai 1: packed),
 * op(B) the nseg segments B side by side, of N columns in all (none
 * empty); 0 when done, -1 when out of memory for the packed panels. */
static int wide_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t ai, int64_t ak, const wide_seg *B,
                         int nseg, float *C, int64_t ldc, int nt) {
    const int64_t np = (N + WIDE_NR - 1) / WIDE_NR, nblk = (M + WIDE_MR - 1) / WIDE_MR;
    const int packed = ak != 1;
    /* Depth blocks: WIDE_KC deep with a packed A (a weight gradient: its
     * output, a few hundred KB, stays in L2 from one block to the next,
     * while the packed A grows with the depth); otherwise near-equal blocks
     * of at most 2 WIDE_KC, since every block after the first reads and
     * writes the whole output again (dx, [T*B, I]: row 5's, 2048 deep, and
     * row 4's, 768, took 0.95-0.97x the time, bench/ab.py --kernels). */
    int64_t kb = K < WIDE_KC ? K : WIDE_KC;
    if (!packed) {
        const int64_t nkb = (K + 2 * WIDE_KC - 1) / (2 * WIDE_KC);
        kb = (K + nkb - 1) / nkb;
    }
    if (nt > nblk) nt = (int)nblk;
    wide_panel *pn = calloc((size_t)np, sizeof *pn);
    if (!pn) return -1;
    int shared = 0; /* panels packed, shared among the threads */
    for (int64_t j = 0, at = 0; j < np; j++) {
        const int64_t c0 = j * WIDE_NR, w = N - c0 < WIDE_NR ? N - c0 : WIDE_NR;
        int g = j ? pn[j - 1].g : 0;
        while (g + 1 < nseg && at + B[g].n <= c0) at += B[g++].n;
        pn[j] = (wide_panel){NULL, 0, at, g};
        if (packed && c0 + w <= at + B[g].n && B[g].bj == 1 && (w == WIDE_NR || w <= 16))
            pn[j].p = B[g].p + (c0 - at), pn[j].bk = B[g].bk;
        else shared = 1;
    }
    /* A product written once, in one depth block, and too large to wait in
     * the cache for its readers (the input projection x W_ih: 26 MB on row
     * 3, read a step at a time) is streamed to memory: a plain store first
     * reads each line it writes. */
    const int stream = K <= kb && (double)M * (double)N * sizeof(float) >= STREAM_MIN;
    const size_t b_floats = shared ? (size_t)(kb * np * WIDE_NR) : 0,
                 a_floats = packed ? (size_t)(kb * WIDE_MR * WIDE_GROUP) : 0;
    float *buf = aligned_alloc(64, (b_floats + a_floats * (size_t)nt) * sizeof(float));
    if (!buf) {
        free(pn);
        return -1;
    }
    WEFT_TEAM(nt, {
        float *ab = buf + b_floats + a_floats * (size_t)team_t;
        const int64_t ib0 = nblk * team_t / team_n, ib1 = nblk * (team_t + 1) / team_n;
        for (int64_t p0 = 0; p0 < K; p0 += kb) {
            const int64_t kc = K - p0 < kb ? K - p0 : kb;
            if (shared) {
                wide_pack_b(buf, B, nseg, p0, kc, N, np * team_t / team_n, np * (team_t + 1) / team_n, pn);
                WEFT_TEAM_BARRIER();
            }
            for (int64_t ib = ib0; ib < ib1; ib++) {
                const int64_t i = ib * WIDE_MR;
                const int R = (int)(M - i < WIDE_MR ? M - i : WIDE_MR);
                const int64_t g = (ib - ib0) % WIDE_GROUP; /* this block's place in its packed group */
                const float *a = A + i * ai + p0 * ak;
                if (packed && g == 0)
                    wide_pack_a(ab, A, M, ak, ib, ib + WIDE_GROUP < ib1 ? ib + WIDE_GROUP : ib1, p0, kc);
                if (packed) a = ab + g * WIDE_MR * kc;
                for (int64_t j = 0; j < np; j++) {
                    const int64_t nr = N - j * WIDE_NR < WIDE_NR ? N - j * WIDE_NR : WIDE_NR;
                    float *c = C + i * ldc + j * WIDE_NR;
                    const wide_panel *pj = &pn[j];
                    const float *b = pj->p ? pj->p + p0 * pj->bk : buf + j * kc * WIDE_NR;
                    const int64_t bs = pj->p ? pj->bk : WIDE_NR;
                    if (packed && nr <= 16) wide_narrow(R, nr, kc, a, b, bs, p0 > 0, c, ldc);
                    else wide_block(R, packed, nr, kc, a, ai, b, bs, p0 > 0 ? 1 : stream ? 2 : 0, c, ldc);
                }
            }
            if (shared) WEFT_TEAM_BARRIER(); /* the panels are repacked for the next block */
        }
        if (stream) _mm_sfence(); /* the streamed lines reach memory before the product is read */
    });
    free(buf), free(pn);
    return 0;
}

#else
static int rows_kernel_ok(const gemm_geom *g, size_t es) { (void)g; (void)es; return 0; }
#define rows_f32(...) ((void)0)
#define rows_f64(...) ((void)0)
static int have_avx512(void) { return 0; }
static int wide_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t ai, int64_t ak, const wide_seg *B,
                         int nseg, float *C, int64_t ldc, int nt) {
    (void)M, (void)N, (void)K, (void)A, (void)ai, (void)ak, (void)B, (void)nseg, (void)C, (void)ldc, (void)nt;
    return -1; /* never called: have_avx512() is 0 */
}
#endif

/* Row block ib: its first row *i and its height *h.  BLIS's kernel: MR
 * rows (fewer in the last); the row-block kernel: nblk near-equal ones. */
static inline void row_block(int own, int64_t M, int64_t nblk, int64_t mr, int64_t ib, int64_t *i, int64_t *h) {
    *i = own ? M * ib / nblk : ib * mr;
    *h = own ? M * (ib + 1) / nblk - *i : (M - *i < mr ? M - *i : mr);
}

/* The macro-kernel.  First the threads pack all of A together (row
 * blocks, per KC block; A is the small operand, at most a few hundred
 * rows), then each runs its share of the work.  Blocks are MR rows for
 * BLIS's micro-kernel (the last one padded with zeros), or nblk near-equal
 * blocks for the row-block kernel above (block b: rows [M b / nblk,
 * M (b+1) / nblk), packed exactly).
 *
 * Wide products split B's panels among the threads.  A narrow one (fewer
 * than WEFT_PACK_SPLIT_K_PANELS panels: a step's [B, 4H] x [4H, H]
 * backward product with small H) has too few panels to share: on the
 * row-block kernel the threads share its row blocks instead; on BLIS's
 * (two or more KC blocks deep) its KC blocks are cut in two halves: C = (the first half's
 * sum) + (the second half's, made in a scratch buffer).  The halves are a
 * property of the shape, not of the thread count — one thread computes
 * both and adds them the same way — so the bits do not depend on it. */
#define GEMM_PACKED(T, UKR_T, ROWS)                                            \
    do {                                                                       \
        const T *A = in[0].data, *P = packed_base(in[1].data);                 \
        const UKR_T ukr = (UKR_T)gm.ukr;                                       \
        const int64_t mpad = own ? M : nblk * gm.mr; /* packed rows */       \
        const int64_t nkb = (K + gm.kc - 1) / gm.kc;                           \
        /* the first half: the whole blocks nearest half the depth, at least \
         * one and leaving at least one (512 -> 256 + 256, 600 -> 256 + 344) */ \
        int64_t kb_half = split_k ? (K + gm.kc) / (2 * gm.kc) : nkb;           \
        if (split_k && kb_half < 1) kb_half = 1;                               \
        if (split_k && kb_half > nkb - 1) kb_half = nkb - 1;                   \
        const size_t a_bytes = in_place ? PACK_ALIGN : ((size_t)(mpad * K) * sizeof(T) + PACK_ALIGN - 1) & ~(size_t)(PACK_ALIGN - 1); \
        const size_t s_bytes = split_k ? ((size_t)(M * N) * sizeof(T) + PACK_ALIGN - 1) & ~(size_t)(PACK_ALIGN - 1) : 0; \
        T *ap = aligned_alloc(PACK_ALIGN, a_bytes + s_bytes);                  \
        if (!ap) return weft_error(WEFT_ERR_NOMEM, "matmul_packed: out of memory for packing A"); \
        T *scratch = (T *)((char *)ap + a_bytes);                              \
        WEFT_TEAM(nt, {                                                        \
            const int t = team_t, nth = team_n;                                \
            if (!in_place) {                                                   \
                for (int64_t p0 = 0; p0 < K; p0 += gm.kc) {                    \
                    const int64_t kc = K - p0 < gm.kc ? K - p0 : gm.kc;        \
                    for (int64_t ib = nblk * t / nth; ib < nblk * (t + 1) / nth; ib++) { \
                        int64_t i, mr;                                         \
                        row_block(own, M, nblk, gm.mr, ib, &i, &mr);           \
                        PACK_PANEL(T, ap + p0 * mpad + i * kc, A + i * si + p0 * sk, sk, si, kc, mr, own ? mr : gm.mr); \
                    }                                                          \
                }                                                              \
                WEFT_TEAM_BARRIER();                                           \
            }                                                                  \
            T one = 1;                                                         \
            auxinfo_t aux;                                                     \
            memset(&aux, 0, sizeof aux);                                       \
            /* work items: (half, panel range); with split_k the threads take \
             * the halves in turn, and the panels of a half among themselves */ \
            const int halves = split_k ? 2 : 1;                                \
            for (int h = 0; h < halves; h++) {                                 \
                int first = split_k && nth > 1 ? h * (nth / 2) : 0;            \
                int count = split_k && nth > 1 ? (h ? nth - nth / 2 : nth / 2) : nth; \
                if (t < first || t >= first + count) continue;                 \
                const int me = t - first;                                      \
                T *Cb = h ? scratch : (T *)out->data;                          \
                const inc_t rs = h ? N : rsc, cs = h ? 1 : csc;                \
                for (int64_t kb = h ? kb_half : 0; kb < (h ? nkb : kb_half); kb++) { \
                    const int64_t p0 = kb * gm.kc, kc = K - p0 < gm.kc ? K - p0 : gm.kc; \
                    const T *pa = ap + p0 * mpad, *pb = P + p0 * np * gm.nr;   \
                    T beta = kb == (h ? kb_half : 0) ? 0 : 1;                  \
                    const int64_t j0 = split_rows ? 0 : np * me / count, j1 = split_rows ? np : np * (me + 1) / count; \
                    const int64_t b0 = split_rows ? nblk * me / count : 0, b1 = split_rows ? nblk * (me + 1) / count : nblk; \
                    for (int64_t j = j0; j < j1; j++) {                        \
                        const int64_t nr = N - j * gm.nr < gm.nr ? N - j * gm.nr : gm.nr; \
                        T *b = (T *)pb + j * kc * gm.nr;                       \
                        for (int64_t ib = b0; ib < b1; ib++) {                 \
                            int64_t i, mr;                                     \
                            row_block(own, M, nblk, gm.mr, ib, &i, &mr);       \
                            if (own) {                                         \
                                if (in_place) ROWS((int)mr, nr, kc, A + i * si + p0, si, b, beta != 0, Cb + i * rs + j * gm.nr * cs, rs, cs); \
                                else ROWS((int)mr, nr, kc, pa + i * kc, ROWS_PACKED, b, beta != 0, Cb + i * rs + j * gm.nr * cs, rs, cs); \
                                continue;                                      \
                            }                                                  \
                            bli_auxinfo_set_next_a((T *)pa + (i + gm.mr < M ? i + gm.mr : 0) * kc, &aux); \
                            bli_auxinfo_set_next_b(i + gm.mr < M ? b : b + kc * gm.nr, &aux); \
                            ukr(mr, nr, kc, &one, (T *)pa + i * kc, b, &beta, Cb + i * rs + j * gm.nr * cs, \
                                rs, cs, &aux, gm.cx);                          \
                        }                                                      \
                    }                                                          \
                }                                                              \
            }                                                                  \
            if (split_k) { /* C = first half + second half, rows shared */    \
                WEFT_TEAM_BARRIER();                                           \
                T *C = out->data;                                              \
                for (int64_t i = M * t / nth; i < M * (t + 1) / nth; i++)      \
                    for (int64_t j = 0; j < N; j++) C[i * rsc + j * csc] += scratch[i * N + j]; \
            }                                                                  \
        });                                                                    \
        free(ap);                                                              \
    } while (0)

weft_status weft_matmul_packed_kernel(weft_tensor *out, const weft_tensor *in, int n, const weft_attr *attr,
                                      const weft_kctx *ctx) {
    (void)n;
    int ta = attr->i[0] != 0;
    gemm_geom gm = geom_of(out->dtype);
    const int64_t M = out->shape.dim[0], N = out->shape.dim[1], K = in[0].shape.dim[!ta];
    const int64_t np = panels_of(&gm, N);
    const int64_t si = in[0].stride[ta], sk = in[0].stride[!ta];
    const inc_t rsc = out->stride[0], csc = out->stride[1];
    const int own = rows_kernel_ok(&gm, weft_dtype_size(out->dtype));
    const int64_t nblk = own ? (M + WEFT_ROWS_MAX - 1) / WEFT_ROWS_MAX : (M + gm.mr - 1) / gm.mr;
    /* A with contiguous rows (a step's h or dG) read where it is: packing
     * it copied a step's rows every step for nothing (the row-block kernel
     * broadcasts A's values from any layout, a row broadcast down the
     * batch, stride 0, too) */
    const int in_place = own && sk == 1;
    /* too few panels to share: the threads share the row blocks (row-block
     * kernel) or the depth's two halves (BLIS's) */
    const int narrow = np < WEFT_PACK_SPLIT_K_PANELS;
    const int split_rows = own && narrow, split_k = !own && narrow && K > gm.kc;
    int nt = gemm_single(ctx, M, N, K) ? 1 : omp_get_max_threads();
    if (!split_k && nt > (split_rows ? nblk : np)) nt = (int)(split_rows ? nblk : np);
    if (out->dtype == WEFT_F32) GEMM_PACKED(float, sgemm_ukr_ft, rows_f32);
    else GEMM_PACKED(double, dgemm_ukr_ft, rows_f64);
    return WEFT_OK;
}
