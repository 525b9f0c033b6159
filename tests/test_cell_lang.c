/* The cell language: error messages for a corpus of malformed files, the
 * shipped cells' parameters, print -> parse round trips, f64 gradient
 * checks of every shipped cell, PyTorch parity of the .cell versions of the
 * built-in cells, and robustness against mutated input. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell_lang.h"
#include "support/fixture.h"
#include "support/testutil.h"
#include "weft/cell.h"
#include "weft/rnn.h"
#include "weft/train.h"

#define CELLS_DIR WEFT_SOURCE_DIR "/cells"
#define BAD_DIR WEFT_SOURCE_DIR "/tests/cells/bad"
#define RNN_DIR WEFT_SOURCE_DIR "/tests/fixtures/rnn"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap + 1);
    size_t k;
    while ((k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) b = realloc(b, (cap *= 2) + 1);
    }
    fclose(f);
    b[len] = 0;
    if (n) *n = len;
    return b;
}

/* Sorted names of the *.cell files in dir (NULL-terminated). */
static char **cell_files(const char *dir, int *count) {
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    char **v = calloc(256, sizeof *v);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 255) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".cell")) v[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) /* insertion sort: a stable order in the log */
        for (int j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *count = n;
    return v;
}

static void free_files(char **v) {
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

/* The value of a "# key: value" line in the file's leading comments. */
static int directive(const char *text, const char *key, char *out, size_t n) {
    char pat[32];
    snprintf(pat, sizeof pat, "# %s: ", key);
    for (const char *p = text; p && *p == '#'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, pat, strlen(pat))) continue;
        const char *v = p + strlen(pat), *e = strchr(v, '\n');
        size_t k = e ? (size_t)(e - v) : strlen(v);
        if (k >= n) k = n - 1;
        memcpy(out, v, k);
        out[k] = 0;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------ malformed files */

Test(cell_lang, bad_cells_give_their_expected_messages) {
    int n;
    char **files = cell_files(BAD_DIR, &n);
    cr_assert_geq(n, 40, "only %d malformed cells", n);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[4096], expect[512], hint[512], want[4700];
        snprintf(path, sizeof path, "%s/%s", BAD_DIR, files[i]);
        char *text = slurp(path, NULL);
        int is_warning = 0;
        if (!directive(text, "expect", expect, sizeof expect)) {
            cr_assert(directive(text, "warning", expect, sizeof expect),
                      "%s has no '# expect:' or '# warning:' line", files[i]);
            is_warning = 1;
        }
        int has_hint = directive(text, "hint", hint, sizeof hint);
        free(text);
        weft_error_clear();
        weft_cell *c = weft_cell_load(path);
        if (is_warning) {
            /* "L:C: message" -> "path:L:C: warning: message" */
            const char *sep = strstr(expect, ": ");
            cr_assert(sep, "%s: malformed '# warning:' line", files[i]);
            snprintf(want, sizeof want, "%s:%.*s: warning: %s", path, (int)(sep - expect), expect,
                     sep + 2);
            if (!c) {
                fprintf(stderr, "%s: expected to load with a warning, got: %s\n", files[i],
                        weft_last_error());
                failed++;
                continue;
            }
            if (strncmp(weft_cell_warnings(c), want, strlen(want))) {
                fprintf(stderr, "%s: warning\n  want: %s\n  got:  %s\n", files[i], want,
                        weft_cell_warnings(c));
                failed++;
            }
            weft_cell_free(c);
            continue;
        }
        if (c) {
            fprintf(stderr, "%s: loaded, but should fail with: %s\n", files[i], expect);
            weft_cell_free(c);
            failed++;
            continue;
        }
        const char *msg = weft_last_error();
        snprintf(want, sizeof want, "%s:%s\n", path, expect);
        if (strncmp(msg, want, strlen(want))) {
            fprintf(stderr, "%s:\n  want: %s  got:  %.*s\n", files[i], want,
                    (int)(strchr(msg, '\n') ? strchr(msg, '\n') - msg : (long)strlen(msg)), msg);
            failed++;
            continue;
        }
        /* Then the source line with a gutter, and a caret line. */
        const char *l2 = strchr(msg, '\n') + 1, *l3 = strchr(l2, '\n');
        if (!strstr(l2, " | ") || !l3 || !strchr(l3, '^')) {
            fprintf(stderr, "%s: no source line and caret in:\n%s\n", files[i], msg);
            failed++;
        }
        if (has_hint) {
            char h[600];
            snprintf(h, sizeof h, "\nhint: %s", hint);
            if (!strstr(msg, h)) {
                fprintf(stderr, "%s: hint\n  want: %s\n  got:\n%s\n", files[i], hint, msg);
                failed++;
            }
        }
    }
    free_files(files);
    cr_assert_eq(failed, 0, "%d malformed cells gave the wrong message", failed);
}

/* The caret sits under the reported column, counting UTF-8 characters. */
Test(cell_lang, caret_under_column) {
    const char *src = "# é\ncell t(x[I]; h[H]) {\n  é = h\n  h' = h\n}\n";
    cr_assert_null(weft_cell_parse(src, strlen(src), "u.cell"));
    const char *m = weft_last_error();
    cr_assert(!strncmp(m, "u.cell:3:3: unexpected character U+00E9\n", 40), "%s", m);
    cr_assert(strstr(m, "  3 |   é = h\n    |   ^\n"), "%s", m);
}

/* Windows line ends and a byte order mark are fine; the source line shown
 * in an error has no stray '\r'. */
Test(cell_lang, crlf_and_bom) {
    const char *ok = "\xef\xbb\xbf" "cell t(x[I]; h[H]) {\r\n  h' = tanh(h) + 0 * sum(x)\r\n}\r\n";
    weft_cell *c = weft_cell_parse(ok, strlen(ok), "crlf.cell");
    cr_assert(c, "%s", weft_last_error());
    weft_cell_free(c);
    cr_assert_null(weft_cell_parse("\xef\xbb\xbf" "cell 1", 9, "bom.cell"));
    cr_assert(!strncmp(weft_last_error(), "bom.cell:1:6: expected cell name", 32), "%s",
              weft_last_error());
    const char *bad = "cell t(x[I]; h[H]) {\r\n  h' = tanh(hh)\r\n}\r\n";
    cr_assert_null(weft_cell_parse(bad, strlen(bad), "crlf.cell"));
    cr_assert(strstr(weft_last_error(), "crlf.cell:2:13: unknown name 'hh'\n  2 |   h' = tanh(hh)\n"),
              "%s", weft_last_error());
}

Test(cell_lang, limits_and_bad_arguments) {
    cr_assert_null(weft_cell_parse(NULL, 5, "x"));
    cr_assert_null(weft_cell_load(WEFT_BINARY_DIR "/no/such/file.cell"));
    cr_assert(strstr(weft_last_error(), "cannot open"), "%s", weft_last_error());
    size_t big = CL_MAX_FILE + 1;
    char *b = malloc(big);
    memset(b, ' ', big);
    cr_assert_null(weft_cell_parse(b, big, "big.cell"));
    cr_assert(strstr(weft_last_error(), "too large"), "%s", weft_last_error());
    free(b);
    cr_assert_null(weft_cell_parse("", 0, "empty.cell"));
    cr_assert(strstr(weft_last_error(), "empty.cell:1:1: expected 'cell'"), "%s", weft_last_error());
    /* Sizes that overflow only at the requested I, H. */
    const char *src = "cell t(x[I]; h[H]) {\n param W[1099511627776*H, I]\n h' = h + 0 * sum(x @ W[0:H, :]^T)\n}\n";
    weft_cell *c = weft_cell_parse(src, strlen(src), "o.cell");
    cr_assert(c, "%s", weft_last_error());
    weft_cell_param ps[WEFT_CELL_MAX_PARAMS];
    cr_assert_eq(c->ops->params(c, 3, 5, ps), 1);
    cr_assert_eq(c->ops->params(c, 3, (int64_t)1 << 40, ps), -1);
    cr_assert(strstr(weft_last_error(), "overflows"), "%s", weft_last_error());
    cr_assert_eq(c->ops->params(c, 0, 5, ps), -1);
    weft_cell_free(c);
}

/* Inputs near the size limit stay cheap: no quadratic paths in the lexer,
 * the checker or the diagnostics (one long line; many statements; many
 * unused names, whose warnings are capped). */
static void big_input(const char *head, const char *unit, const char *tail, const char *want) {
    size_t cap = CL_MAX_FILE, n = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *b = malloc(cap);
    memcpy(b, head, n);
    while (n + ul + tl < cap) memcpy(b + n, unit, ul), n += ul;
    memcpy(b + n, tail, tl);
    n += tl;
    weft_cell *c = weft_cell_parse(b, n, "big.cell");
    if (c) {
        cr_assert(strstr(weft_cell_warnings(c), want), "%.300s", weft_cell_warnings(c));
        weft_cell_free(c);
    } else {
        cr_assert(strstr(weft_last_error(), want), "%s", weft_last_error());
    }
    free(b);
}

Test(cell_lang, big_inputs_are_fast, .timeout = 10) {
    big_input("cell t(x[I]; h[H]) {\n  h' = h", " ", "$\n}\n", "unexpected character '$'");
    big_input("cell t(x[I]; h[H]) {\n", "  h' = h\n", "}\n", "too many statements");
    big_input("cell t(x[I]; h[H]) {\n", "  a = h; ", "}\n", "too many statements");
    big_input("cell t(x[I]; h[H]) {\n  h' = ", "(", "", "nested too deeply");
    big_input("# ", "\xc3\xa9", "\n", "expected 'cell'");
    /* 4000 unused names: loads, with 20 warnings and a count of the rest */
    char *b = malloc(64 * 4096), *p = b;
    p += sprintf(p, "cell t(x[I]; h[H]) {\n");
    for (int i = 0; i < 4000; i++) p += sprintf(p, "  v%d = h\n", i);
    p += sprintf(p, "  h' = h * 0 + 0 * x @ x^T @ h\n}\n");
    weft_cell *c = weft_cell_parse(b, (size_t)(p - b), "many.cell");
    cr_assert(c, "%s", weft_last_error());
    cr_assert(strstr(weft_cell_warnings(c), "... and 3980 more warnings"), "%.2000s",
              weft_cell_warnings(c));
    weft_cell_free(c);
    free(b);
}

/* -------------------------------------------------------- shipped cells */

static void describe(const weft_cell_param *p, char *buf, size_t n) {
    char s[64];
    static const char *const init[] = {"", " zeros", " ones", " const"};
    weft_shape_str(p->shape, s, sizeof s);
    snprintf(buf, n, "%.63s %.63s%s%s", p->name, s, p->is_bias ? " bias" : "", init[p->init]);
}

static const struct {
    const char *cell;
    int states, gates;
    const char *params; /* at I = 3, H = 5 */
} shipped[] = {
    {"cifg_lstm", 2, 3, "weight_ih [15, 3]; weight_hh [15, 5]; bias_ih [15] bias; bias_hh [15] bias"},
    {"gru", 1, 3, "weight_ih [15, 3]; weight_hh [15, 5]; bias_ih [15] bias; bias_hh [15] bias"},
    {"gru_reset_before", 1, 3,
     "weight_ih [15, 3]; weight_hh [15, 5]; bias_ih [15] bias; bias_hh [15] bias"},
    {"indrnn", 1, 1, "weight_ih [5, 3]; weight_hh [5]; bias_ih [5] bias zeros"},
    {"janet", 1, 2, "weight_ih [10, 3]; weight_hh [10, 5]; bias_ih [10] bias; bias_hh [10] bias"},
    {"layernorm_lstm", 2, 4,
     "weight_ih [20, 3]; weight_hh [20, 5]; bias [20] bias zeros; gamma_ih [20] ones; "
     "gamma_hh [20] ones; gamma_c [5] ones; beta_c [5] zeros"},
    {"lstm", 2, 4, "weight_ih [20, 3]; weight_hh [20, 5]; bias_ih [20] bias; bias_hh [20] bias"},
    {"mgu", 1, 1,
     "W_f [5, 3]; U_f [5, 5]; W_h [5, 3]; U_h [5, 5]; b_f [5] bias zeros; b_h [5] bias zeros"},
    {"mlstm", 2, 4,
     "weight_mx [5, 3]; weight_mh [5, 5]; weight_ih [20, 3]; weight_hm [20, 5]; "
     "bias_ih [20] bias; bias_hm [20] bias"},
    {"peephole_lstm", 2, 4,
     "weight_ih [20, 3]; weight_hh [20, 5]; bias_ih [20] bias; bias_hh [20] bias; w_ci [5]; "
     "w_cf [5]; w_co [5]"},
    {"rnn_relu", 1, 1, "weight_ih [5, 3]; weight_hh [5, 5]; bias_ih [5] bias; bias_hh [5] bias"},
    {"rnn_sigmoid", 1, 1, "weight_ih [5, 3]; weight_hh [5, 5]; bias_ih [5] bias; bias_hh [5] bias"},
    {"rnn_tanh", 1, 1, "weight_ih [5, 3]; weight_hh [5, 5]; bias_ih [5] bias; bias_hh [5] bias"},
    {"simple_rnn", 1, 1, "weight_ih [5, 3]; weight_hh [5, 5]; bias [5] bias"},
};
#define NSHIPPED ((int)(sizeof shipped / sizeof shipped[0]))

static weft_cell *load_shipped(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.cell", CELLS_DIR, name);
    weft_cell *c = weft_cell_load(path);
    cr_assert(c, "%s", weft_last_error());
    return c;
}

Test(cell_lang, shipped_cells_parse_with_the_right_params) {
    int n;
    char **files = cell_files(CELLS_DIR, &n);
    cr_assert_eq(n, NSHIPPED, "cells/ has %d files, the table %d: add new cells to the table", n,
                 NSHIPPED);
    for (int i = 0; i < n; i++) {
        cr_assert(!strncmp(files[i], shipped[i].cell, strlen(shipped[i].cell)), "%s vs %s",
                  files[i], shipped[i].cell);
        weft_cell *c = load_shipped(shipped[i].cell);
        cr_assert_str_eq(c->name, shipped[i].cell);
        cr_assert_str_eq(weft_cell_warnings(c), "", "%s", weft_cell_warnings(c));
        cr_assert(strlen(weft_cell_doc(c)) > 10, "%s has no doc string", c->name);
        cr_assert_eq(c->num_states, shipped[i].states, "%s", c->name);
        cr_assert_eq(c->gates, shipped[i].gates, "%s", c->name);
        weft_cell_param ps[WEFT_CELL_MAX_PARAMS];
        int np = c->ops->params(c, 3, 5, ps);
        char got[1024] = "";
        for (int k = 0; k < np; k++) {
            char d[512];
            describe(&ps[k], d, sizeof d);
            strcat(got, k ? "; " : "");
            strcat(got, d);
        }
        cr_assert_str_eq(got, shipped[i].params, "%s", c->name);
        weft_cell_free(c);
    }
    free_files(files);
}

/* One step of cell c into g with x [B, I], states [B, H] and params (all
 * present unless drop_bias); the nodes are returned through the pointers. */
typedef struct step_io {
    weft_node x[2], state0[WEFT_CELL_MAX_STATES], params[WEFT_CELL_MAX_PARAMS];
    weft_node out[2], final[WEFT_CELL_MAX_STATES];
    int nparams;
} step_io;

static weft_status unroll(const weft_cell *c, weft_graph *g, int T, int64_t B, int64_t I, int64_t H,
                          int drop_bias, step_io *io) {
    weft_cell_param ps[WEFT_CELL_MAX_PARAMS];
    io->nparams = c->ops->params(c, I, H, ps);
    if (io->nparams < 0) return WEFT_ERR_ARG;
    int64_t total = 0;
    for (int i = 0; i < io->nparams; i++) total += weft_shape_numel(ps[i].shape);
    if (total > 1000000) return WEFT_ERR_ARG; /* a mutated cell's huge sizes */
    for (int i = 0; i < io->nparams; i++)
        io->params[i] = drop_bias && ps[i].is_bias ? WEFT_NONE
                        : tu_param(g, ps[i].name, WEFT_F64, ps[i].shape, 100 + (uint64_t)i, 0.05,
                                   0.6, 1);
    weft_node st[WEFT_CELL_MAX_STATES], nx[WEFT_CELL_MAX_STATES];
    for (int s = 0; s < c->num_states; s++)
        st[s] = io->state0[s] = weft_input(g, c->state_names[s], WEFT_F64, WEFT_SHAPE(B, H));
    for (int t = 0; t < T; t++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", t);
        io->x[t] = weft_input(g, name, WEFT_F64, WEFT_SHAPE(B, I));
        weft_status s = c->ops->step(c, g, io->x[t], io->params, st, nx, &io->out[t]);
        if (s != WEFT_OK) return s;
        memcpy(st, nx, sizeof st);
    }
    memcpy(io->final, st, sizeof st);
    return weft_graph_status(g);
}

/* print -> parse -> print is a fixed point, and both emit the same graph. */
Test(cell_lang, shipped_cells_round_trip) {
    for (int i = 0; i < NSHIPPED; i++) {
        weft_cell *a = load_shipped(shipped[i].cell);
        char *p1 = cl_print(cl_of(a));
        cr_assert(p1);
        weft_cell *b = weft_cell_parse(p1, strlen(p1), "printed");
        cr_assert(b, "%s: the printed form does not parse: %s\n%s", shipped[i].cell,
                  weft_last_error(), p1);
        char *p2 = cl_print(cl_of(b));
        cr_assert_str_eq(p1, p2, "%s", shipped[i].cell);
        cr_assert_str_eq(weft_cell_doc(a), weft_cell_doc(b));
        weft_graph *ga = weft_graph_new(), *gb = weft_graph_new();
        step_io ia, ib;
        cr_assert_eq(unroll(a, ga, 1, 2, 3, 5, 0, &ia), WEFT_OK, "%s", weft_last_error());
        cr_assert_eq(unroll(b, gb, 1, 2, 3, 5, 0, &ib), WEFT_OK, "%s", weft_last_error());
        int n = weft_graph_node_count(ga);
        cr_assert_eq(n, weft_graph_node_count(gb), "%s", shipped[i].cell);
        for (weft_node k = 0; k < n; k++) {
            const char *oa = weft_node_op_name(ga, k), *ob = weft_node_op_name(gb, k);
            cr_assert_str_eq(oa ? oa : "", ob ? ob : "", "%s node %d", shipped[i].cell, k);
            cr_assert(weft_shape_eq(weft_node_shape(ga, k), weft_node_shape(gb, k)));
        }
        weft_graph_free(ga);
        weft_graph_free(gb);
        free(p1);
        free(p2);
        weft_cell_free(a);
        weft_cell_free(b);
    }
}

/* ------------------------------------------------------------ gradients */

/* 2-step unroll, loss = sum of every output and final state times fixed
 * random weights; every parameter, input and initial state checked. */
static void gradcheck_cell(const weft_cell *c, int drop_bias) {
    const int T = 2;
    const int64_t B = 2, I = 3, H = 4;
    weft_graph *g = weft_graph_new();
    step_io io;
    cr_assert_eq(unroll(c, g, T, B, I, H, drop_bias, &io), WEFT_OK, "%s: %s", c->name,
                 weft_last_error());
    weft_node loss = WEFT_NONE;
    for (int t = 0; t < T; t++) {
        weft_node l = tu_weighted_sum(g, io.out[t], 7 + (uint64_t)t);
        loss = loss == WEFT_NONE ? l : weft_add(g, loss, l);
    }
    for (int s = 0; s < c->num_states; s++)
        loss = weft_add(g, loss, tu_weighted_sum(g, io.final[s], 20 + (uint64_t)s));

    weft_node wrt[WEFT_CELL_MAX_PARAMS + 8], feeds[8];
    const void *data[8];
    int nw = 0, nf = 0;
    double xs[2][2 * 3], ss[WEFT_CELL_MAX_STATES][2 * 4];
    for (int i = 0; i < io.nparams; i++)
        if (io.params[i] != WEFT_NONE) wrt[nw++] = io.params[i];
    for (int t = 0; t < T; t++) {
        tu_fill(xs[t], B * I, 40 + (uint64_t)t, 0.1, 1.0, 1);
        feeds[nf] = wrt[nw++] = io.x[t];
        data[nf++] = xs[t];
    }
    for (int s = 0; s < c->num_states; s++) {
        tu_fill(ss[s], B * H, 60 + (uint64_t)s, 0.1, 0.9, 1);
        feeds[nf] = wrt[nw++] = io.state0[s];
        data[nf++] = ss[s];
    }
    weft_gradcheck_result r;
    cr_assert_eq(weft_gradcheck(g, loss, wrt, nw, feeds, data, nf, 1e-6, 1e-5, 1e-3, &r), WEFT_OK,
                 "%s: %s", c->name, weft_last_error());
    cr_assert_gt(r.checked, 20);
    cr_assert_eq(r.failures, 0, "%s%s: %d of %d gradients wrong; worst %s (max abs %g)", c->name,
                 drop_bias ? " (no bias)" : "", r.failures, r.checked, r.worst, r.max_abs_err);
    weft_graph_free(g);
}

Test(cell_lang, shipped_cells_gradcheck_f64, .timeout = 300) {
    for (int i = 0; i < NSHIPPED; i++) {
        weft_cell *c = load_shipped(shipped[i].cell);
        gradcheck_cell(c, 0);
        gradcheck_cell(c, 1);
        weft_cell_free(c);
    }
}

/* Every builtin function in one cell, gradchecked; and layernorm's value
 * against a direct computation. */
static const char kitchen_sink[] =
    "cell sink(x[I]; h[H], c[H]) {\n"
    "  \"every function\"\n"
    "  param W[2*H, I], U[H, H], g[H] = 1.5\n"
    "  bias b[2*H] = 0.25\n"
    "  a, e = split(x @ W^T + b, 2)\n"
    "  p = concat(a[:, 0:H], e)[:, H:2*H]\n"
    "  q = maximum(sigmoid(a), tanh(e)) - minimum(relu(a), abs(e)) / 2\n"
    "  r = exp(-square(a)) + log(1 + sigmoid(e)) + sqrt(1 + pow(a, 2)) + neg(mean(e)) + sum(e)\n"
    "  v = var(p) + stop_gradient(h) * 0 - h @ (U^T)\n"
    "  c' = g * layernorm(q + r, 0.001) + v\n"
    "  h' = tanh(c') * sigmoid(h) + chunk(c, 1)\n"
    "  output -h'\n"
    "}\n";

Test(cell_lang, every_function_gradchecks) {
    weft_cell *c = weft_cell_parse(kitchen_sink, sizeof kitchen_sink - 1, "sink.cell");
    cr_assert(c, "%s", weft_last_error());
    cr_assert_str_eq(weft_cell_warnings(c), "", "%s", weft_cell_warnings(c));
    cr_assert_str_eq(weft_cell_doc(c), "every function");
    gradcheck_cell(c, 0);
    gradcheck_cell(c, 1);
    weft_cell_free(c);
}

/* The printer on every construct: slices, open ranges, unary minus,
 * parentheses that precedence needs, constants, the doc string. */
Test(cell_lang, every_construct_round_trips) {
    static const char src[] =
        "cell r(x[I]; h[H]) {\n  \"say \\\"hi\\\"\\n\"\n"
        "  param W[2*(H + 1) - 2, I], k[H] = -2.5, u[I + H] = uniform\n"
        "  a = -(x @ W[:H, :]^T) * -2 - (h - 1) / (2 * h + 3)\n"
        "  b = concat(x, h)[:, I:] + (x @ (W[H:, 0:I]^T))[:, :H]\n"
        "  h' = a - (a - b) + k * u[I:] + pow(1e-3, 2) * h\n}\n";
    weft_cell *a = weft_cell_parse(src, sizeof src - 1, "r.cell");
    cr_assert(a, "%s", weft_last_error());
    char *p1 = cl_print(cl_of(a));
    weft_cell *b = weft_cell_parse(p1, strlen(p1), "printed");
    cr_assert(b, "%s\n%s", weft_last_error(), p1);
    char *p2 = cl_print(cl_of(b));
    cr_assert_str_eq(p1, p2);
    cr_assert_str_eq(weft_cell_doc(b), "say \"hi\"\n");
    cr_assert(strstr(p1, "a - (a - b)"), "%s", p1);
    cr_assert(strstr(p1, "-(x @ W[:H, :]^T) * -2"), "%s", p1);
    gradcheck_cell(a, 0);
    gradcheck_cell(b, 0);
    free(p1);
    free(p2);
    weft_cell_free(a);
    weft_cell_free(b);
}

Test(cell_lang, layernorm_value) {
    const char *src = "cell ln(x[I]; h[H]) {\n  param W[H, I]\n  h' = layernorm(x @ W^T) + 0 * h\n}\n";
    weft_cell *c = weft_cell_parse(src, strlen(src), "ln.cell");
    cr_assert(c, "%s", weft_last_error());
    weft_graph *g = weft_graph_new();
    step_io io;
    cr_assert_eq(unroll(c, g, 1, 2, 3, 4, 0, &io), WEFT_OK, "%s", weft_last_error());
    weft_exec *e = weft_exec_new(g, &io.out[0], 1);
    cr_assert(e, "%s", weft_last_error());
    double x[6], h[8] = {0}, y[8];
    tu_fill(x, 6, 3, 0.1, 1.0, 1);
    weft_exec_feed(e, io.x[0], x, sizeof x);
    weft_exec_feed(e, io.state0[0], h, sizeof h);
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    weft_exec_read(e, io.out[0], y, sizeof y);
    const double *W = weft_param_data(g, io.params[0]);
    for (int b = 0; b < 2; b++) {
        double z[4], mu = 0, var = 0;
        for (int j = 0; j < 4; j++) {
            z[j] = 0;
            for (int k = 0; k < 3; k++) z[j] += x[b * 3 + k] * W[j * 3 + k];
            mu += z[j] / 4;
        }
        for (int j = 0; j < 4; j++) var += (z[j] - mu) * (z[j] - mu) / 4;
        for (int j = 0; j < 4; j++)
            cr_assert_float_eq(y[b * 4 + j], (z[j] - mu) / sqrt(var + 1e-5), 1e-12);
    }
    weft_exec_free(e);
    weft_graph_free(g);
    weft_cell_free(c);
}

/* A dropped bias costs nothing: the no-bias graph of rnn_tanh is matmuls,
 * an add and a tanh, no zero fills. */
Test(cell_lang, dropped_bias_emits_nothing) {
    weft_cell *c = load_shipped("rnn_tanh");
    weft_graph *g = weft_graph_new();
    step_io io;
    cr_assert_eq(unroll(c, g, 1, 2, 3, 5, 1, &io), WEFT_OK, "%s", weft_last_error());
    int ops = 0;
    for (weft_node k = 0; k < weft_graph_node_count(g); k++)
        if (weft_node_kind_of(g, k) == WEFT_NODE_OP) {
            const char *o = weft_node_op_name(g, k);
            cr_assert(strcmp(o, "fill") && strcmp(o, "broadcast"), "%s", o);
            ops++;
        }
    cr_assert_eq(ops, 4, "matmul, matmul, add, tanh: got %d ops", ops);
    weft_graph_free(g);
    weft_cell_free(c);
}

Test(cell_lang, step_rejects_wrong_inputs) {
    weft_cell *c = load_shipped("lstm");
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F64, WEFT_SHAPE(2, 3));
    weft_node st[2] = {weft_input(g, "h", WEFT_F64, WEFT_SHAPE(2, 5)),
                       weft_input(g, "c", WEFT_F64, WEFT_SHAPE(2, 5))};
    weft_node p[4] = {weft_param(g, "a", WEFT_F64, WEFT_SHAPE(20, 3)),
                      weft_param(g, "b", WEFT_F64, WEFT_SHAPE(20, 4)), WEFT_NONE, WEFT_NONE};
    weft_node nx[2], out;
    cr_assert_eq(c->ops->step(c, g, x, p, st, nx, &out), WEFT_ERR_SHAPE);
    cr_assert(strstr(weft_last_error(), "weight_hh must be [20, 5], got [20, 4]"), "%s",
              weft_last_error());
    p[1] = WEFT_NONE;
    cr_assert_eq(c->ops->step(c, g, x, p, st, nx, &out), WEFT_ERR_ARG);
    cr_assert(strstr(weft_last_error(), "weight_hh is missing"), "%s", weft_last_error());
    weft_graph_free(g);
    weft_cell_free(c);
}

/* Runs a 2-step unroll of c on fixed data; returns outputs and final
 * states concatenated (malloc'd, *n doubles) and the number of op nodes. */
static double *run_fixed(const weft_cell *c, int drop_bias, int64_t *n, int *ops) {
    const int64_t B = 3, I = 4, H = 5;
    weft_graph *g = weft_graph_new();
    step_io io;
    cr_assert_eq(unroll(c, g, 2, B, I, H, drop_bias, &io), WEFT_OK, "%s", weft_last_error());
    weft_node outs[2 + WEFT_CELL_MAX_STATES] = {io.out[0], io.out[1]};
    for (int s = 0; s < c->num_states; s++) outs[2 + s] = io.final[s];
    int nout = 2 + c->num_states;
    weft_exec *e = weft_exec_new(g, outs, nout);
    cr_assert(e, "%s", weft_last_error());
    double buf[4 * 3 * 5];
    for (int t = 0; t < 2; t++) {
        tu_fill(buf, B * I, 70 + (uint64_t)t, 0.1, 1.0, 1);
        weft_exec_feed(e, io.x[t], buf, (size_t)(B * I) * sizeof(double));
    }
    for (int s = 0; s < c->num_states; s++) {
        tu_fill(buf, B * H, 80 + (uint64_t)s, 0.1, 1.0, 1);
        weft_exec_feed(e, io.state0[s], buf, (size_t)(B * H) * sizeof(double));
    }
    cr_assert_eq(weft_exec_run(e), WEFT_OK, "%s", weft_last_error());
    double *r = malloc((size_t)nout * B * H * sizeof *r);
    for (int k = 0; k < nout; k++)
        weft_exec_read(e, outs[k], r + k * B * H, (size_t)(B * H) * sizeof(double));
    *n = nout * B * H;
    *ops = 0;
    for (weft_node k = 0; k < weft_graph_node_count(g); k++)
        *ops += weft_node_kind_of(g, k) == WEFT_NODE_OP;
    weft_exec_free(e);
    weft_graph_free(g);
    return r;
}

/* The .cell versions of the built-in C cells compute bit-for-bit the same
 * numbers with the same number of ops: replacing one by the other changes
 * neither parity nor speed. */
Test(cell_lang, cell_files_equal_the_builtins) {
    static const char *const names[] = {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"};
    for (int i = 0; i < 5; i++) {
        weft_cell *b = weft_cell_get(names[i]);
        cr_assert(b, "%s", weft_last_error());
        if (cl_of(b)) { /* the registry already serves the .cell file */
            weft_cell_free(b);
            continue;
        }
        weft_cell *f = load_shipped(names[i]);
        for (int drop = 0; drop < 2; drop++) {
            int64_t nb, nf;
            int ob, of;
            double *rb = run_fixed(b, drop, &nb, &ob), *rf = run_fixed(f, drop, &nf, &of);
            cr_assert_eq(nb, nf);
            cr_assert(!memcmp(rb, rf, (size_t)nb * sizeof *rb), "%s%s: values differ", names[i],
                      drop ? " (no bias)" : "");
            cr_assert_eq(ob, of, "%s%s: %d ops built-in, %d in the .cell", names[i],
                         drop ? " (no bias)" : "", ob, of);
            free(rb);
            free(rf);
        }
        weft_cell_free(f);
        weft_cell_free(b);
    }
}

/* Trains cell c on a small memory task (the target needs the whole
 * sequence: 0.5 * sum_t x[t, b, 0] - x[T-1, b, 1]) with Adam; returns the
 * first and last training loss. */
static void train_cell(const weft_cell *c, double *first, double *last) {
    enum { T = 6, B = 16, I = 2, H = 8, STEPS = 150 };
    weft_graph *g = weft_graph_new();
    weft_rnn_config cfg = weft_rnn_config_default(I, H);
    weft_rnn *r;
    cr_assert_eq(weft_rnn_new(g, c, &cfg, &r), WEFT_OK, "%s: %s", c->name, weft_last_error());
    weft_rng rng = weft_rng_make(1);
    cr_assert_eq(weft_rnn_init(g, r, &rng), WEFT_OK, "%s", weft_last_error());
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(T, B, I));
    weft_rnn_inputs in = {.x = x, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, r, &in, &res), WEFT_OK, "%s", weft_last_error());
    weft_linear head;
    cr_assert_eq(weft_linear_new(g, "head", H, 1, 1, WEFT_F32, &rng, &head), WEFT_OK);
    weft_node y = weft_input(g, "y", WEFT_F32, WEFT_SHAPE(B, 1));
    weft_node loss = weft_loss_mse(g, weft_linear_apply(g, &head, res.last), y);
    weft_train_config tc = {.loss = loss, .train_flag = WEFT_NONE,
                            .optim = weft_optim_defaults(WEFT_OPTIM_ADAM)};
    tc.optim.lr = 0.02;
    weft_trainer *t;
    cr_assert_eq(weft_trainer_new(g, &tc, &t), WEFT_OK, "%s: %s", c->name, weft_last_error());
    double xd[T * B * I];
    float xf[T * B * I], yf[B];
    tu_fill(xd, T * B * I, 5, 0.0, 1.0, 1);
    for (int i = 0; i < T * B * I; i++) xf[i] = (float)xd[i];
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < T; k++) s += 0.5 * xd[(k * B + b) * I];
        yf[b] = (float)(s - xd[((T - 1) * B + b) * I + 1]);
    }
    weft_feed feeds[2] = {{x, xf, sizeof xf}, {y, yf, sizeof yf}};
    for (int step = 0; step < STEPS; step++) {
        weft_train_result tr;
        cr_assert_eq(weft_trainer_step(t, feeds, 2, &tr), WEFT_OK, "%s: %s", c->name,
                     weft_last_error());
        if (step == 0) *first = tr.loss;
        *last = tr.loss;
    }
    weft_trainer_free(t);
    weft_rnn_free(r);
    weft_graph_free(g);
}

Test(cell_lang, shipped_cells_train, .timeout = 300) {
    for (int i = 0; i < NSHIPPED; i++) {
        weft_cell *c = load_shipped(shipped[i].cell);
        double first, last;
        train_cell(c, &first, &last);
        cr_log_info("%-16s loss %.4f -> %.4f", c->name, first, last);
        cr_assert_lt(last, 0.05 * first, "%s does not learn: loss %g -> %g", c->name, first, last);
        weft_cell_free(c);
    }
}

/* ------------------------------------------------------ PyTorch parity */

/* The .cell versions of the built-in cells, run through the same model
 * code on every f64 PyTorch fixture (and the f32 no-bias ones). */
Test(cell_lang, cell_files_match_pytorch, .timeout = 600) {
    char **cases = fx_cases(RNN_DIR);
    if (!cases) cr_skip_test("no fixtures in " RNN_DIR);
    int run = 0, failed = 0;
    for (char **cs = cases; *cs; cs++) {
        if (!strstr(*cs, "_f64") && !strstr(*cs, "nobias")) continue;
        char wpath[4096], xpath[4096], opath[4096], cpath[4096];
        weft_st_file *w, *x, *got;
        snprintf(wpath, sizeof wpath, "%s/%s.weights.safetensors", RNN_DIR, *cs);
        snprintf(xpath, sizeof xpath, "%s/%s.io.safetensors", RNN_DIR, *cs);
        cr_assert_eq(weft_st_read(wpath, &w), WEFT_OK, "%s", weft_last_error());
        cr_assert_eq(weft_st_read(xpath, &x), WEFT_OK, "%s", weft_last_error());
        const char *cell = weft_st_metadata(x, "cell");
        cr_assert(cell);
        snprintf(cpath, sizeof cpath, "%s/%s.cell", CELLS_DIR, cell);
        weft_cell *c = weft_cell_load(cpath);
        cr_assert(c, "%s", weft_last_error());
        weft_rnn_config cfg = fx_rnn_config(x);
        weft_st_writer *out = weft_st_writer_new();
        cr_assert_eq(weft_rnn_run_files(c, &cfg, w, wpath, x, xpath, out), WEFT_OK, "%s: %s", *cs,
                     weft_last_error());
        snprintf(opath, sizeof opath, "%s/cell_lang_parity_%d.safetensors", WEFT_BINARY_DIR,
                 (int)getpid());
        cr_assert_eq(weft_st_writer_save(out, opath), WEFT_OK, "%s", weft_last_error());
        weft_st_writer_free(out);
        cr_assert_eq(weft_st_read(opath, &got), WEFT_OK, "%s", weft_last_error());
        unlink(opath);
        int bad = 0, compared = 0;
        for (int i = 0; i < weft_st_count(x); i++) {
            const char *tn = weft_st_at(x, i)->name;
            if (strcmp(tn, "output") && strcmp(tn, "h_n") && strcmp(tn, "c_n") && strncmp(tn, "grad.", 5))
                continue;
            weft_shape ws, gs;
            double *want = fx_read(x, tn, &ws), *have = fx_read(got, tn, &gs);
            char what[256];
            snprintf(what, sizeof what, "%s (.cell): %s", *cs, tn);
            if (!have || !weft_shape_eq(ws, gs)) {
                fprintf(stderr, "%s: missing or misshapen\n", what);
                bad++;
            } else if (!fx_close(what, have, want, weft_shape_numel(ws), cfg.dtype == WEFT_F64)) {
                bad++;
            }
            compared++;
            free(want);
            free(have);
        }
        cr_assert_geq(compared, 6, "%s: only %d tensors", *cs, compared);
        failed += bad != 0;
        run++;
        weft_st_free(got);
        weft_st_free(w);
        weft_st_free(x);
        weft_cell_free(c);
    }
    fx_free_cases(cases);
    cr_assert_geq(run, 50, "only %d fixtures run", run);
    cr_assert_eq(failed, 0, "%d of %d fixtures differ from PyTorch", failed, run);
}

/* ------------------------------------------------------- robustness */

/* Mutated shipped cells never crash: each either loads (and then its
 * params and step work) or fails with "label:line:col: ...". */
Test(cell_lang, mutations_never_crash, .timeout = 300) {
    static const char alphabet[] = "()[]{},;=+-*/@^:'\"#\n \tHIxhcT01_9e.\x00\xff\xc3";
    uint64_t s = 12345;
#define RND() (s = s * 6364136223846793005ull + 1442695040888963407ull, (s >> 33))
    int loaded = 0, total = 0;
    for (int i = 0; i < NSHIPPED; i++) {
        char path[4096];
        size_t n;
        snprintf(path, sizeof path, "%s/%s.cell", CELLS_DIR, shipped[i].cell);
        char *orig = slurp(path, &n);
        char *buf = malloc(2 * n + 64);
        for (int it = 0; it < 400; it++, total++) {
            memcpy(buf, orig, n);
            size_t m = n;
            int edits = 1 + (int)(RND() % 4);
            for (int k = 0; k < edits && m > 2; k++) {
                size_t at = RND() % m;
                switch (RND() % 4) {
                case 0: buf[at] = alphabet[RND() % (sizeof alphabet - 1)]; break;
                case 1: { /* delete a range */
                    size_t len = 1 + RND() % 8;
                    if (at + len > m) len = m - at;
                    memmove(buf + at, buf + at + len, m - at - len);
                    m -= len;
                    break;
                }
                case 2: { /* duplicate a range */
                    size_t len = 1 + RND() % 16;
                    if (at + len > m) len = m - at;
                    if (m + len > 2 * n + 32) break;
                    memmove(buf + at + len, buf + at, m - at);
                    m += len;
                    break;
                }
                default: m = at + 1; /* truncate */
                }
            }
            weft_cell *c = weft_cell_parse(buf, m, "m.cell");
            if (!c) {
                const char *e = weft_last_error();
                int line, col;
                cr_assert(sscanf(e, "m.cell:%d:%d: ", &line, &col) == 2, "bad message: %s", e);
                continue;
            }
            loaded++;
            weft_graph *g = weft_graph_new();
            step_io io;
            (void)unroll(c, g, 1, 2, 3, 5, (int)(RND() % 2), &io);
            weft_graph_free(g);
            weft_cell_free(c);
        }
        free(buf);
        free(orig);
    }
    cr_assert_gt(loaded, 0);
    cr_assert_lt(loaded, total);
}
