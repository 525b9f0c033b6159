/* Every primitive op (and the composites) gradient-checked in f64 against
 * central differences, on broadcast cases and views; second order for the
 * elementwise ops and matmul. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "op.h"
#include "testutil.h"

#define F64 WEFT_F64
#define S(...) WEFT_SHAPE(__VA_ARGS__)

/* Build the op under test from parameters p[0..np). */
typedef weft_node (*build_fn)(weft_graph *g, const weft_node *p);

typedef struct {
    const char *name;
    build_fn build;
    int np;
    weft_shape shape[3];
    double lo, hi;   /* magnitudes of the random inputs */
    int signed_;
    double eps;
} op_case;

static void check(const op_case *c, int order) {
    weft_graph *g = weft_graph_new();
    weft_node p[3];
    char nm[8];
    for (int k = 0; k < c->np; k++) {
        snprintf(nm, sizeof nm, "p%d", k);
        p[k] = tu_param(g, nm, F64, c->shape[k], 100 + k, c->lo, c->hi, c->signed_);
    }
    weft_node y = c->build(g, p);
    weft_node loss = tu_weighted_sum(g, y, 7);
    if (order == 2) {
        /* The second-order check: differentiate sum_k <grad_k, R_k>. */
        weft_node gr[3], terms = WEFT_NONE;
        cr_assert_eq(weft_grad(g, loss, p, c->np, gr), WEFT_OK, "%s: %s", c->name, weft_last_error());
        for (int k = 0; k < c->np; k++) {
            weft_node t = tu_weighted_sum(g, gr[k], 30 + k);
            terms = terms == WEFT_NONE ? t : weft_add(g, terms, t);
        }
        loss = terms;
    }
    cr_assert_eq(weft_graph_status(g), WEFT_OK, "%s: %s", c->name, weft_graph_error(g));
    weft_gradcheck_result r;
    weft_status s = weft_gradcheck(g, loss, p, c->np, NULL, NULL, 0, c->eps ? c->eps : 1e-6, 1e-5, 1e-3, &r);
    cr_assert_eq(s, WEFT_OK, "%s: %s", c->name, weft_last_error());
    cr_assert_eq(weft_graph_verify(g), WEFT_OK, "%s: %s", c->name, weft_last_error());
    cr_assert_gt(r.checked, 0);
    cr_assert_eq(r.failures, 0, "%s (order %d): %d of %d elements differ; worst %s", c->name, order, r.failures,
                 r.checked, r.worst);
    weft_graph_free(g);
}

/* ---- builders for each case */
#define B1(fn, expr) static weft_node fn(weft_graph *g, const weft_node *p) { return (expr); }
B1(b_add, weft_add(g, p[0], p[1]))
B1(b_sub, weft_sub(g, p[0], p[1]))
B1(b_mul, weft_mul(g, p[0], p[1]))
B1(b_div, weft_div(g, p[0], p[1]))
B1(b_max, weft_maximum(g, p[0], p[1]))
B1(b_neg, weft_neg(g, p[0]))
B1(b_exp, weft_exp(g, p[0]))
B1(b_log, weft_log(g, p[0]))
B1(b_tanh, weft_tanh(g, p[0]))
B1(b_sigmoid, weft_sigmoid(g, p[0]))
B1(b_relu, weft_relu(g, p[0]))
B1(b_sqrt, weft_sqrt(g, p[0]))
B1(b_abs, weft_abs(g, p[0]))
B1(b_pow, weft_pow(g, p[0], 2.5))
B1(b_pow3, weft_pow(g, p[0], 3))
B1(b_square, weft_square(g, p[0]))
B1(b_add_view, weft_add(g, weft_transpose(g, p[0], (int[]){1, 0}), weft_slice(g, p[1], 0, 1, 3)))
B1(b_mm, weft_matmul(g, p[0], p[1], 0, 0))
B1(b_mm_tn, weft_matmul(g, p[0], p[1], 1, 0))
B1(b_mm_nt, weft_matmul(g, p[0], p[1], 0, 1))
B1(b_mm_tt, weft_matmul(g, p[0], p[1], 1, 1))
B1(b_mm_view, weft_matmul(g, weft_slice(g, p[0], 1, 1, 4), weft_transpose(g, p[1], (int[]){1, 0}), 0, 0))
B1(b_sum0, weft_sum(g, p[0], (int[]){0}, 1, 0))
B1(b_sum1k, weft_sum(g, p[0], (int[]){-1}, 1, 1))
B1(b_sumall, weft_sum(g, p[0], NULL, 0, 0))
B1(b_sum02, weft_sum(g, p[0], (int[]){0, 2}, 2, 0))
B1(b_mean, weft_mean(g, p[0], (int[]){1}, 1, 0))
B1(b_rmax, weft_reduce_max(g, p[0], (int[]){1}, 1, 0))
B1(b_bcast, weft_broadcast(g, p[0], S(2, 3, 4)))
B1(b_reshape, weft_reshape(g, p[0], S(4, 3)))
B1(b_reshape_t, weft_reshape(g, weft_transpose(g, p[0], (int[]){1, 0}), S(2, 6)))
B1(b_transpose3, weft_transpose(g, p[0], (int[]){2, 0, 1}))
B1(b_slice, weft_slice(g, p[0], 1, 1, 3))
B1(b_concat, weft_concat(g, (weft_node[]){p[0], p[1], p[0]}, 3, 1))
B1(b_softmax, weft_softmax(g, p[0], 1))
B1(b_logsoftmax, weft_log_softmax(g, p[0], -1))
B1(b_dropout, weft_dropout(g, p[0], 0.4, 99))
B1(b_cast, weft_cast(g, weft_mul(g, weft_cast(g, p[0], WEFT_F32), weft_cast(g, p[0], WEFT_F32)), F64))

static weft_node b_split(weft_graph *g, const weft_node *p) {
    weft_node part[3];
    weft_split(g, p[0], 1, 3, part);
    return weft_add(g, weft_mul(g, part[0], part[2]), part[1]);
}
static weft_node b_select(weft_graph *g, const weft_node *p) {
    double m[12] = {1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0};
    weft_node c = weft_const(g, "mask", F64, S(3, 4), m);
    return weft_select(g, c, p[0], p[1]);
}
static weft_node b_gather(weft_graph *g, const weft_node *p) {
    int32_t idx[6] = {2, 0, 4, 2, 1, 2};
    weft_node i = weft_const(g, "idx", WEFT_I32, S(2, 3), idx);
    return weft_gather(g, p[0], i);
}
static weft_node b_scatter(weft_graph *g, const weft_node *p) {
    int32_t idx[4] = {1, 3, 1, 0};
    weft_node i = weft_const(g, "idx", WEFT_I32, S(4), idx);
    return weft_scatter_add(g, p[0], i, 5);
}
static weft_node b_xent(weft_graph *g, const weft_node *p) {
    int32_t lab[4] = {2, 0, 1, 2};
    weft_node l = weft_const(g, "labels", WEFT_I32, S(4), lab);
    return weft_cross_entropy(g, p[0], l);
}

static const op_case cases[] = {
    {"add", b_add, 2, {S(3, 4), S(3, 4)}, 0.2, 1, 1, 0},
    {"add broadcast row", b_add, 2, {S(3, 4), S(4)}, 0.2, 1, 1, 0},
    {"add broadcast both", b_add, 2, {S(2, 1, 4), S(3, 1)}, 0.2, 1, 1, 0},
    {"sub broadcast", b_sub, 2, {S(3, 1), S(3, 4)}, 0.2, 1, 1, 0},
    {"mul broadcast", b_mul, 2, {S(2, 3, 4), S(3, 4)}, 0.2, 1, 1, 0},
    {"div broadcast", b_div, 2, {S(3, 4), S(1, 4)}, 0.5, 2, 1, 0},
    {"maximum", b_max, 2, {S(3, 4), S(3, 4)}, 0.2, 1, 1, 0},
    {"maximum broadcast", b_max, 2, {S(3, 4), S(4)}, 0.2, 1, 1, 0},
    {"neg", b_neg, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"exp", b_exp, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"log", b_log, 1, {S(3, 4)}, 0.5, 2, 0, 0},
    {"tanh", b_tanh, 1, {S(2, 3, 4)}, 0.2, 1.5, 1, 0},
    {"sigmoid", b_sigmoid, 1, {S(3, 4)}, 0.2, 3, 1, 0},
    {"relu", b_relu, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"sqrt", b_sqrt, 1, {S(3, 4)}, 0.5, 2, 0, 0},
    {"abs", b_abs, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"pow 2.5", b_pow, 1, {S(3, 4)}, 0.5, 2, 0, 0},
    {"pow 3", b_pow3, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"square", b_square, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"select", b_select, 2, {S(3, 4), S(4)}, 0.2, 1, 1, 0},
    {"add of views", b_add_view, 2, {S(4, 2), S(3, 4)}, 0.2, 1, 1, 0},
    {"matmul", b_mm, 2, {S(3, 4), S(4, 5)}, 0.2, 1, 1, 0},
    {"matmul A^T", b_mm_tn, 2, {S(4, 3), S(4, 5)}, 0.2, 1, 1, 0},
    {"matmul B^T", b_mm_nt, 2, {S(3, 4), S(5, 4)}, 0.2, 1, 1, 0},
    {"matmul A^T B^T", b_mm_tt, 2, {S(4, 3), S(5, 4)}, 0.2, 1, 1, 0},
    {"matmul of views", b_mm_view, 2, {S(2, 5), S(4, 3)}, 0.2, 1, 1, 0},
    {"sum axis 0", b_sum0, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"sum last keepdims", b_sum1k, 1, {S(2, 3, 4)}, 0.2, 1, 1, 0},
    {"sum all", b_sumall, 1, {S(2, 3, 4)}, 0.2, 1, 1, 0},
    {"sum axes 0,2", b_sum02, 1, {S(2, 3, 4)}, 0.2, 1, 1, 0},
    {"mean", b_mean, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"reduce_max", b_rmax, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"broadcast", b_bcast, 1, {S(3, 1)}, 0.2, 1, 1, 0},
    {"reshape", b_reshape, 1, {S(2, 6)}, 0.2, 1, 1, 0},
    {"reshape of transpose", b_reshape_t, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"transpose 3-D", b_transpose3, 1, {S(2, 3, 4)}, 0.2, 1, 1, 0},
    {"slice", b_slice, 1, {S(3, 4)}, 0.2, 1, 1, 0},
    {"concat", b_concat, 2, {S(3, 2), S(3, 3)}, 0.2, 1, 1, 0},
    {"split", b_split, 1, {S(2, 6)}, 0.2, 1, 1, 0},
    {"softmax", b_softmax, 1, {S(3, 5)}, 0.2, 2, 1, 0},
    {"log_softmax", b_logsoftmax, 1, {S(3, 5)}, 0.2, 2, 1, 0},
    {"gather", b_gather, 1, {S(5, 3)}, 0.2, 1, 1, 0},
    {"scatter_add", b_scatter, 1, {S(4, 3)}, 0.2, 1, 1, 0},
    {"cross_entropy", b_xent, 1, {S(4, 3)}, 0.2, 2, 1, 0},
    {"dropout", b_dropout, 1, {S(4, 6)}, 0.2, 1, 1, 0},
    {"cast f64->f32->f64", b_cast, 1, {S(3, 4)}, 0.2, 1, 1, 1e-2},
};

Test(ops, table_is_complete) {
    cr_assert_eq(weft_ops_check(), WEFT_OK, "%s", weft_last_error());
}

Test(ops, gradcheck_first_order) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check(&cases[i], 1);
}

Test(ops, gradcheck_second_order) {
    static const char *const second[] = {"add broadcast row", "sub broadcast", "mul broadcast", "div broadcast",
                                         "neg", "exp", "log", "tanh", "sigmoid", "sqrt", "pow 2.5", "pow 3",
                                         "square", "matmul", "matmul A^T", "matmul B^T", "matmul A^T B^T",
                                         "matmul of views", "softmax", "log_softmax", "gather", "cross_entropy",
                                         "select", "reduce_max", "concat", "slice"};
    for (size_t k = 0; k < sizeof second / sizeof second[0]; k++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!strcmp(cases[i].name, second[k])) check(&cases[i], 2);
}

Test(ops, forward_values) {
    /* A few exact values, so a wrong kernel can't hide behind a matching VJP. */
    weft_graph *g = weft_graph_new();
    double a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30};
    weft_node A = weft_const(g, "a", F64, S(2, 3), a), Bv = weft_const(g, "b", F64, S(3), b);
    weft_node y1 = weft_add(g, A, Bv);                                   /* broadcast */
    weft_node y2 = weft_matmul(g, A, A, 0, 1);                           /* A A^T [2,2] */
    weft_node y3 = weft_sum(g, A, (int[]){0}, 1, 0);                     /* [5,7,9] */
    weft_node y4 = weft_softmax(g, weft_const(g, "z", F64, S(1, 2), (double[]){0, 1000}), 1);
    weft_node y5 = weft_transpose(g, A, (int[]){1, 0});
    weft_node outs[] = {y1, y2, y3, y4, y5};
    weft_exec *e = weft_exec_new(g, outs, 5);
    cr_assert(e);
    cr_assert_eq(weft_exec_run(e), WEFT_OK);
    double r1[6], r2[4], r3[3], r4[2], r5[6];
    weft_exec_read(e, y1, r1, sizeof r1);
    weft_exec_read(e, y2, r2, sizeof r2);
    weft_exec_read(e, y3, r3, sizeof r3);
    weft_exec_read(e, y4, r4, sizeof r4);
    weft_exec_read(e, y5, r5, sizeof r5);
    cr_assert_eq(r1[4], 25);
    cr_assert_eq(r2[0], 14);
    cr_assert_eq(r2[1], 32);
    cr_assert_eq(r2[3], 77);
    cr_assert_eq(r3[2], 9);
    cr_assert_float_eq(r4[1], 1.0, 1e-12); /* no overflow: the max is subtracted */
    cr_assert_eq(r5[1], 4);
    cr_assert_eq(r5[4], 3);
    weft_exec_free(e);
    weft_graph_free(g);
}

/* Sums of a column window (a view in a compiled graph, rows 80 apart):
 * over the rows (column sums, shared among threads when large), over the
 * columns, and over both, against plain loops. */
Test(ops, sums_of_a_column_window) {
    enum { R = 2000, C = 80, A0 = 3, A1 = 77 };
    static double x[R * C], col[A1 - A0], row[R];
    double all = 0;
    for (int i = 0; i < R * C; i++) x[i] = (double)((i * 7919) % 1000) / 8;
    for (int i = 0; i < R; i++)
        for (int j = A0; j < A1; j++) col[j - A0] += x[i * C + j], row[i] += x[i * C + j], all += x[i * C + j];
    weft_graph *g = weft_graph_new();
    weft_node w = weft_slice(g, weft_const(g, "x", F64, S(R, C), x), 1, A0, A1);
    weft_node outs[] = {weft_sum(g, w, (int[]){0}, 1, 0), weft_sum(g, w, (int[]){1}, 1, 0), weft_sum(g, w, NULL, 0, 0)};
    weft_exec *e = weft_exec_compile(g, outs, 3, NULL);
    cr_assert(e, "%s", weft_last_error());
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    static double rc[A1 - A0], rr[R];
    double ra;
    weft_exec_read(e, outs[0], rc, sizeof rc);
    weft_exec_read(e, outs[1], rr, sizeof rr);
    weft_exec_read(e, outs[2], &ra, sizeof ra);
    for (int j = 0; j < A1 - A0; j++) cr_assert_eq(rc[j], col[j], "column %d: %g, not %g", j, rc[j], col[j]);
    for (int i = 0; i < R; i++) cr_assert_float_eq(rr[i], row[i], 1e-9, "row %d: %g, not %g", i, rr[i], row[i]);
    cr_assert_float_eq(ra, all, 1e-9 * all);
    weft_exec_free(e);
    weft_graph_free(g);
}

Test(ops, f32_matches_f64) {
    /* Every kernel runs in f32 too. */
    for (int t = 0; t < 2; t++) {
        weft_graph *g = weft_graph_new();
        weft_dtype dt = t ? WEFT_F32 : F64;
        weft_node x = tu_param(g, "x", dt, S(3, 4), 5, 0.5, 1.5, 0);
        weft_node w = tu_param(g, "w", dt, S(4, 2), 6, 0.2, 1, 1);
        weft_node y = weft_log_softmax(g, weft_matmul(g, weft_sigmoid(g, weft_sqrt(g, x)), w, 0, 0), 1);
        weft_node l = weft_sum(g, y, NULL, 0, 0);
        weft_exec *e = weft_exec_new(g, &l, 1);
        cr_assert_eq(weft_exec_run(e), WEFT_OK);
        weft_tensor v;
        weft_exec_value(e, l, &v);
        static double ref;
        if (!t) ref = weft_tensor_get(&v, 0);
        else cr_assert_float_eq(weft_tensor_get(&v, 0), ref, 1e-5 * (1 + fabs(ref)));
        weft_exec_free(e);
        weft_graph_free(g);
    }
}

Test(ops, dropout_mask_is_seeded_and_changes_per_run) {
    weft_graph *g = weft_graph_new();
    weft_node m = weft_dropout_mask(g, S(1000), F64, 0.25, 42);
    weft_exec *e = weft_exec_new(g, &m, 1);
    double a[1000], b[1000], c[1000];
    weft_exec_run(e);
    weft_exec_read(e, m, a, sizeof a);
    weft_exec_run(e);
    weft_exec_read(e, m, b, sizeof b);
    weft_exec_set_counter(e, 0);
    weft_exec_run(e);
    weft_exec_read(e, m, c, sizeof c);
    int zeros = 0, differ = 0;
    for (int i = 0; i < 1000; i++) {
        zeros += a[i] == 0;
        differ += a[i] != b[i];
        cr_assert(a[i] == 0 || fabs(a[i] - 1 / 0.75) < 1e-12);
        cr_assert_eq(a[i], c[i]);
    }
    cr_assert(zeros > 200 && zeros < 300, "zeros = %d", zeros);
    cr_assert_gt(differ, 100);
    weft_exec_free(e);
    weft_graph_free(g);
}

Test(ops, stop_gradient_blocks) {
    weft_graph *g = weft_graph_new();
    weft_node x = tu_param(g, "x", F64, S(3), 1, 0.5, 1, 0);
    weft_node l = weft_sum(g, weft_mul(g, x, weft_stop_gradient(g, x)), NULL, 0, 0);
    weft_node gx;
    cr_assert_eq(weft_grad(g, l, &x, 1, &gx), WEFT_OK);
    weft_exec *e = weft_exec_new(g, &gx, 1);
    weft_exec_run(e);
    double v[3];
    weft_exec_read(e, gx, v, sizeof v);
    const double *xd = weft_param_data(g, x);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(v[i], xd[i], 1e-15); /* x, not 2x */
    weft_exec_free(e);
    weft_graph_free(g);
}
