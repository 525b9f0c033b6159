/* matmul: op(A) @ op(B) for 2-D operands, on BLIS, strided operands direct. */
#include <blis.h>
#include <omp.h>
#include <string.h>

#include "op.h"

#define WEFT_GEMM_PAR_MIN 2e6 /* multiply-adds below which a GEMM runs on one thread */

/* Who owns the cores: the executor runs one kernel at a time; a GEMM gets
 * BLIS's threads, an elementwise kernel OpenMP's, never nested.  Both are
 * set here.  Each thread owns the output elements it writes (BLIS does not
 * split the k loop), so results are bitwise the same for any count. */
void weft_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    bli_thread_set_num_threads(n);
}

int weft_get_threads(void) { return omp_get_max_threads(); }

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
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    rntm_t *rt = NULL;
    if ((ctx && ctx->threads == 1) || (double)m * (double)nn * (double)k < WEFT_GEMM_PAR_MIN) {
        bli_rntm_set_num_threads(1, &rntm);
        rt = &rntm;
    }
    if (out->dtype == WEFT_F32) {
        float one = 1, zero = 0;
        bli_sgemm_ex(TA, TB, m, nn, k, &one, (float *)A, rsa, csa, (float *)B, rsb, csb, &zero,
                     out->data, rsc, csc, NULL, rt);
    } else {
        double one = 1, zero = 0;
        bli_dgemm_ex(TA, TB, m, nn, k, &one, (double *)A, rsa, csa, (double *)B, rsb, csb, &zero,
                     out->data, rsc, csc, NULL, rt);
    }
    free(ta_buf);
    free(tb_buf);
    return WEFT_OK;
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
