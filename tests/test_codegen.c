/* Fused kernels compiled to machine code (ops/fused_codegen.c) give the
 * interpreter's numbers for every elementwise op, NaN and infinities
 * included, and the compiler falls back to the interpreter when the C
 * compiler or the cached library fails. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "weft/compile.h"

#define S(...) WEFT_SHAPE(__VA_ARGS__)
enum { ROWS = 37, COLS = 300 }; /* two chunks of 256 and a tail; rows split among threads */

typedef struct {
    weft_graph *g;
    weft_node a, b, outs[8];
    int n_outs;
    float *da, *db;
} region;

/* Every elementwise op in two regions: one with several outputs side by
 * side, one with a single output. */
static region make(void) {
    region r = {.g = weft_graph_new()};
    weft_graph *g = r.g;
    r.a = weft_input(g, "a", WEFT_F32, S(ROWS, COLS));
    r.b = weft_input(g, "b", WEFT_F32, S(ROWS, COLS));
    weft_node a = r.a, b = r.b;
    weft_node s = weft_sigmoid(g, weft_add(g, a, b));
    weft_node t = weft_tanh(g, weft_sub(g, a, weft_mul(g, b, weft_scalar_like(g, b, 0.5))));
    weft_node e = weft_exp(g, weft_neg(g, weft_abs(g, a)));
    weft_node l = weft_log(g, weft_add(g, weft_abs(g, b), weft_scalar_like(g, b, 1e-3)));
    weft_node q = weft_sqrt(g, weft_relu(g, a));
    weft_node p = weft_pow(g, weft_abs(g, b), 2.5);
    weft_node m = weft_maximum(g, weft_div(g, a, weft_add(g, b, weft_scalar_like(g, b, 3))), t);
    weft_node c = weft_select(g, weft_greater(g, a, b), s, e);
    r.outs[r.n_outs++] = weft_add(g, weft_mul(g, s, t), weft_sub(g, l, q)); /* read only here: one region */
    r.outs[r.n_outs++] = weft_mul(g, p, m);
    r.outs[r.n_outs++] = c;
    r.outs[r.n_outs++] = s; /* also read above: an extra output */
    r.outs[r.n_outs++] = weft_tanh(g, weft_mul(g, weft_exp(g, a), b)); /* another region */
    cr_assert_eq(weft_graph_status(g), WEFT_OK, "%s", weft_graph_error(g));
    size_t n = (size_t)ROWS * COLS;
    r.da = malloc(n * sizeof *r.da);
    r.db = malloc(n * sizeof *r.db);
    double *d = malloc(n * sizeof *d);
    tu_fill(d, (int64_t)n, 7, 0.01, 6, 1);
    for (size_t i = 0; i < n; i++) r.da[i] = (float)d[i];
    tu_fill(d, (int64_t)n, 8, 0.01, 6, 1);
    for (size_t i = 0; i < n; i++) r.db[i] = (float)d[i];
    free(d);
    /* the edges: NaN, infinities, zeros, saturating values */
    const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 90.0f, -90.0f, 1e-30f, -1e-30f, 0.625f};
    for (int k = 0; k < 10; k++) {
        r.da[k * 31] = special[k];
        r.db[k * 37 + 5] = special[(k + 3) % 10];
        r.da[COLS * 3 + 255 + k] = special[k]; /* across the chunk boundary */
    }
    return r;
}

/* Compile r with options o, run it, copy the outputs into out[k]. */
static weft_compile_report run(region *r, const weft_compile_options *o, float **out) {
    weft_exec *e = weft_exec_compile(r->g, r->outs, r->n_outs, o);
    cr_assert(e, "%s", weft_last_error());
    cr_assert_geq(tu_count_op(weft_exec_graph(e), "fused"), 2, "the regions were not fused");
    size_t bytes = (size_t)ROWS * COLS * sizeof(float);
    cr_assert_eq(weft_exec_feed(e, r->a, r->da, bytes), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_feed(e, r->b, r->db, bytes), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    for (int k = 0; k < r->n_outs; k++) {
        weft_tensor t;
        cr_assert_eq(weft_exec_value(e, r->outs[k], &t), WEFT_OK, "%s", weft_last_error());
        out[k] = malloc(bytes);
        for (int64_t i = 0; i < (int64_t)ROWS * COLS; i++) out[k][i] = (float)weft_tensor_get(&t, i);
    }
    weft_compile_report rep = *weft_exec_report(e);
    weft_exec_free(e);
    return rep;
}

static void region_free(region *r) {
    free(r->da);
    free(r->db);
    weft_graph_free(r->g);
}

/* Outputs x (compiled) and y (interpreted) have the same bits: both round
 * as the source is written (no contraction; ops/fastmath.h).  A NaN's sign
 * and payload are the hardware's choice of operand (a + b against b + a). */
static void agree(float **x, float **y, int n_outs) {
    for (int k = 0; k < n_outs; k++)
        for (int64_t i = 0; i < (int64_t)ROWS * COLS; i++)
            cr_assert((isnan(x[k][i]) && isnan(y[k][i])) || !memcmp(&x[k][i], &y[k][i], sizeof(float)), "output %d element %lld: %.9g compiled, %.9g interpreted",
                      k, (long long)i, x[k][i], y[k][i]);
}

static void free_outs(float **x, int n) {
    for (int k = 0; k < n; k++) free(x[k]);
}

Test(codegen, every_elementwise_op_matches_the_interpreter) {
    const char *env = getenv("WEFT_CODEGEN");
    cr_assert(!env || strcmp(env, "0"), "WEFT_CODEGEN=0 is set: nothing to test");
    region r = make();
    float *x[8], *y[8];
    weft_compile_options on = {.verify = 1}, off = {.verify = 1, .codegen = -1};
    for (int threads = 1; threads <= 2; threads++) {
        on.threads = off.threads = threads;
        weft_compile_report rc = run(&r, &on, x), ri = run(&r, &off, y);
        cr_assert_geq(rc.codegen_kernels, 2, "no compiled kernels: %s", rc.codegen_note);
        cr_assert_eq(ri.codegen_kernels, 0);
        cr_assert(strstr(ri.codegen_note, "off"), "%s", ri.codegen_note);
        agree(x, y, r.n_outs);
        free_outs(x, r.n_outs);
        free_outs(y, r.n_outs);
    }
    region_free(&r);
}

/* A compiler that cannot run: the interpreter runs, with the same bits as
 * when asked for, and the report says why.  A cached library that is not
 * one: compiled again.  A library in the cache: loaded, not compiled. */
Test(codegen, falls_back_to_the_interpreter_and_mends_the_cache) {
    char dir[] = "/tmp/weft-codegen-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    setenv("WEFT_CACHE_DIR", dir, 1);
    region r = make();
    float *x[8], *y[8];
    weft_compile_options on = {0}, off = {.codegen = -1};
    run(&r, &off, y);

    setenv("WEFT_CC", "/nonexistent/cc", 1);
    weft_compile_report rep = run(&r, &on, x);
    unsetenv("WEFT_CC");
    cr_assert_eq(rep.codegen_kernels, 0);
    cr_assert(strstr(rep.codegen_note, "failed"), "%s", rep.codegen_note);
    for (int k = 0; k < r.n_outs; k++)
        cr_assert_eq(memcmp(x[k], y[k], (size_t)ROWS * COLS * sizeof(float)), 0, "output %d differs", k);
    free_outs(x, r.n_outs);

    /* the note names the compiler's log, fused-HASH.log: put a damaged
     * library where the compiled one will go */
    char lib[sizeof rep.codegen_note + 8];
    const char *at = strstr(rep.codegen_note, dir);
    cr_assert(at && strstr(at, ".log"), "%s", rep.codegen_note);
    snprintf(lib, sizeof lib, "%.*s.so", (int)(strstr(at, ".log") - at), at);
    FILE *f = fopen(lib, "w");
    cr_assert(f, "cannot open %s", lib);
    fputs("not a library", f);
    fclose(f);
    rep = run(&r, &on, x);
    cr_assert_gt(rep.codegen_kernels, 0, "%s", rep.codegen_note);
    cr_assert_eq(rep.codegen_cached, 0);
    cr_assert_str_eq(rep.codegen_note, lib);
    agree(x, y, r.n_outs);
    free_outs(x, r.n_outs);

    rep = run(&r, &on, x);
    cr_assert_eq(rep.codegen_cached, 1, "the second compile did not use the cache: %s", rep.codegen_note);
    agree(x, y, r.n_outs);
    free_outs(x, r.n_outs);
    free_outs(y, r.n_outs);
    unlink(lib);
    rmdir(dir);
    unsetenv("WEFT_CACHE_DIR");
    region_free(&r);
}
