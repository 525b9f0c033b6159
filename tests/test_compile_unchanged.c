/* The compiler's cheap paths keep the numbers: a pass with nothing to do
 * says "unchanged" and the graph stands; a pass with work to do still does
 * it; executor buffers are not zeroed, so repeated compiles and runs of one
 * graph must still agree exactly. */
#include <criterion/criterion.h>
#include <string.h>

#include "testutil.h"
#include "weft/compile.h"

#define S(...) WEFT_SHAPE(__VA_ARGS__)

/* The value of out, [4, 6] f64, from the reference executor and compiled;
 * returns the compile report. */
static weft_compile_report run_both(weft_graph *g, weft_node x, weft_node out, double *ref, double *got) {
    double xd[4 * 3];
    tu_fill(xd, 12, 7, 0.1, 1, 1);
    weft_exec *e = weft_exec_new(g, &out, 1);
    cr_assert(e, "%s", weft_last_error());
    cr_assert_eq(weft_exec_feed(e, x, xd, sizeof xd), WEFT_OK);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_read(e, out, ref, 24 * sizeof *ref), WEFT_OK);
    weft_exec_free(e);
    weft_compile_options o = {.verify = 1};
    weft_exec *c = weft_exec_compile(g, &out, 1, &o);
    cr_assert(c, "%s", weft_last_error());
    cr_assert_eq(weft_exec_feed(c, x, xd, sizeof xd), WEFT_OK);
    cr_assert_eq(weft_exec_run(c), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_read(c, out, got, 24 * sizeof *got), WEFT_OK);
    weft_compile_report r = *weft_exec_report(c);
    weft_exec_free(c);
    return r;
}

static const weft_pass_stat *stat_of(const weft_compile_report *r, const char *name) {
    const weft_pass_stat *p = tu_pass_stat(r, name);
    cr_assert(p, "no pass %s", name);
    return p;
}

static void assert_close(const double *a, const double *b, int n) {
    for (int i = 0; i < n; i++) cr_assert_float_eq(a[i], b[i], 1e-12 * (1 + (a[i] < 0 ? -a[i] : a[i])), "element %d", i);
}

Test(compile_unchanged, nothing_to_fold_or_merge_is_unchanged) {
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, S(4, 3));
    weft_node w = tu_param(g, "w", WEFT_F64, S(3, 6), 1, 0.1, 1, 1);
    weft_node out = weft_tanh(g, weft_matmul(g, x, w, 0, 0));
    double ref[24], got[24];
    weft_compile_report r = run_both(g, x, out, ref, got);
    assert_close(ref, got, 24);
    const weft_pass_stat *f = stat_of(&r, "fold"), *m = stat_of(&r, "merge-gates");
    cr_assert(f->ran && m->ran);
    cr_assert_eq(f->changes, 0);
    cr_assert_eq(m->changes, 0);
    cr_assert_eq(f->nodes_after, f->nodes_before);
    weft_graph_free(g);
}

Test(compile_unchanged, fold_and_merge_gates_still_rewrite) {
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, S(4, 3));
    weft_node c1 = tu_const(g, WEFT_F64, S(4, 6), 2, 0.1, 1), c2 = tu_const(g, WEFT_F64, S(4, 6), 3, 0.1, 1);
    weft_node w1 = tu_param(g, "w1", WEFT_F64, S(3, 6), 4, 0.1, 1, 1);
    weft_node w2 = tu_param(g, "w2", WEFT_F64, S(3, 6), 5, 0.1, 1, 1);
    /* x w1 and x w2 share x: one matmul after merge-gates; c1 * c2 folds. */
    weft_node gates = weft_mul(g, weft_tanh(g, weft_matmul(g, x, w1, 0, 0)), weft_matmul(g, x, w2, 0, 0));
    weft_node out = weft_add(g, gates, weft_mul(g, c1, c2));
    double ref[24], got[24];
    weft_compile_report r = run_both(g, x, out, ref, got);
    assert_close(ref, got, 24);
    cr_assert_geq(stat_of(&r, "fold")->changes, 1);
    cr_assert_eq(stat_of(&r, "merge-gates")->changes, 2);
    cr_assert_eq(stat_of(&r, "merge-gates")->matmuls_before, 2);
    weft_graph_free(g);
}

Test(compile_unchanged, recompiling_gives_identical_numbers) {
    /* Blocks come back from malloc with whatever the last executor left. */
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, S(4, 3));
    weft_node w = tu_param(g, "w", WEFT_F64, S(3, 6), 1, 0.1, 1, 1);
    weft_node out = weft_sum(g, weft_mul(g, weft_tanh(g, weft_matmul(g, x, w, 0, 0)), weft_matmul(g, x, w, 0, 0)),
                             (const int[]){0}, 1, 1);
    out = weft_add(g, weft_matmul(g, x, w, 0, 0), out); /* [4, 6] */
    double first[24], ref[24], got[24];
    run_both(g, x, out, ref, first);
    assert_close(ref, first, 24);
    for (int k = 0; k < 3; k++) {
        run_both(g, x, out, ref, got);
        cr_assert_eq(memcmp(first, got, sizeof got), 0, "compile %d differs", k);
    }
    weft_graph_free(g);
}

Test(compile_unchanged, a_product_with_ones_seen_through_reshape_goes) {
    /* The seed of a gradient reaches a product as broadcast(reshape(fill 1))
     * (the backward of sum(y * g) multiplies g by it): x * 1 is x. */
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, S(4, 3));
    weft_node w = tu_param(g, "w", WEFT_F64, S(3, 6), 1, 0.1, 1, 1);
    weft_node one = weft_broadcast(g, weft_reshape(g, weft_fill(g, WEFT_SCALAR_SHAPE, WEFT_F64, 1.0), S(1, 1)), S(4, 6));
    weft_node out = weft_mul(g, weft_tanh(g, weft_matmul(g, x, w, 0, 0)), one);
    double ref[24], got[24];
    weft_compile_report r = run_both(g, x, out, ref, got);
    assert_close(ref, got, 24);
    cr_assert_geq(stat_of(&r, "simplify")->changes, 1);
    weft_exec *c = weft_exec_compile(g, &out, 1, NULL);
    cr_assert(c, "%s", weft_last_error());
    cr_assert_eq(tu_count_op(weft_exec_graph(c), "mul"), 0, "a mul is left");
    weft_exec_free(c);
    weft_graph_free(g);
}
