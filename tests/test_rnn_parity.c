/* Every recurrent fixture in tests/fixtures/rnn (PyTorch's results) against
 * weft: forward outputs, final states and every gradient.  Tolerances of
 * issue 3: f64 max abs diff <= 1e-9, f32 <= 1e-4 of the tensor's scale. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/fixture.h"
#include "weft/rnn.h"

#define RNN_DIR WEFT_SOURCE_DIR "/tests/fixtures/rnn"


static void open_case(const char *name, weft_st_file **w, weft_st_file **x, char *wpath,
                      char *xpath) {
    snprintf(wpath, 4096, "%s/%s.weights.safetensors", RNN_DIR, name);
    snprintf(xpath, 4096, "%s/%s.io.safetensors", RNN_DIR, name);
    cr_assert_eq(weft_st_read(wpath, w), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_read(xpath, x), WEFT_OK, "%s", weft_last_error());
}

/* Runs one case through weft_rnn_run_files with the built-in cell, or with
 * cells/<cell>.cell when from_file; returns the number of expected tensors
 * that differ or are missing. */
static int check_case(const char *name, int from_file, int *compared) {
    char wpath[4096], xpath[4096], opath[4096];
    weft_st_file *w, *x, *got;
    open_case(name, &w, &x, wpath, xpath);
    weft_rnn_config cfg = fx_rnn_config(x);
    char cell_path[4096];
    snprintf(cell_path, sizeof cell_path, "%s/cells/%s.cell", WEFT_SOURCE_DIR, fx_meta(x, "cell"));
    weft_cell *cell = weft_cell_get(from_file ? cell_path : fx_meta(x, "cell"));
    cr_assert(cell, "%s: %s", name, weft_last_error());

    weft_st_writer *out = weft_st_writer_new();
    cr_assert(out);
    weft_status s = weft_rnn_run_files(cell, &cfg, w, wpath, x, xpath, out);
    cr_assert_eq(s, WEFT_OK, "%s: %s", name, weft_last_error());
    snprintf(opath, sizeof opath, "%s/rnn_parity_%d.safetensors", WEFT_BINARY_DIR, (int)getpid());
    cr_assert_eq(weft_st_writer_save(out, opath), WEFT_OK, "%s", weft_last_error());
    weft_st_writer_free(out);
    cr_assert_eq(weft_st_read(opath, &got), WEFT_OK, "%s", weft_last_error());
    unlink(opath);

    int bad = 0, is_f64 = cfg.dtype == WEFT_F64;
    for (int i = 0; i < weft_st_count(x); i++) {
        const char *tn = weft_st_at(x, i)->name;
        int expected = !strcmp(tn, "output") || !strcmp(tn, "h_n") || !strcmp(tn, "c_n") ||
                       !strncmp(tn, "grad.", 5);
        if (!expected) continue;
        weft_shape ws, gs;
        double *want = fx_read(x, tn, &ws);
        double *have = fx_read(got, tn, &gs);
        char what[256];
        snprintf(what, sizeof what, "%s: %s", name, tn);
        if (!have || !weft_shape_eq(ws, gs)) {
            fprintf(stderr, "%s: missing or misshapen in weft's output\n", what);
            bad++;
        } else if (!fx_close(what, have, want, weft_shape_numel(ws), is_f64)) {
            bad++;
        }
        (*compared)++;
        free(want);
        free(have);
    }
    /* and weft wrote no tensor the fixture lacks (a misnamed gradient) */
    for (int i = 0; i < weft_st_count(got); i++)
        if (!weft_st_find(x, weft_st_at(got, i)->name)) {
            fprintf(stderr, "%s: weft wrote unexpected '%s'\n", name, weft_st_at(got, i)->name);
            bad++;
        }
    weft_st_free(got);
    weft_st_free(w);
    weft_st_free(x);
    weft_cell_free(cell);
    return bad;
}

static void check_all(int from_file) {
    char **cases = fx_cases(RNN_DIR);
    cr_assert(cases, "cannot read " RNN_DIR "/cases.txt");
    int n = 0, failed = 0, compared = 0;
    for (char **c = cases; *c; c++, n++) {
        int bad = check_case(*c, from_file, &compared);
        if (bad) {
            fprintf(stderr, "FAIL %s%s (%d tensors)\n", *c, from_file ? " (.cell file)" : "",
                    bad);
            failed++;
        }
    }
    fx_free_cases(cases);
    cr_assert_geq(n, 100, "only %d fixtures", n);
    cr_assert_geq(compared, 8 * n, "only %d tensors compared in %d cases", compared, n);
    cr_assert_eq(failed, 0, "%d of %d fixtures differ from PyTorch", failed, n);
}

Test(rnn_parity, every_pytorch_fixture, .timeout = 600) { check_all(0); }

/* The same fixtures through the shipped cells/<cell>.cell files: a cell
 * written in the cell language is held to the same numbers. */
Test(rnn_parity, every_pytorch_fixture_from_cell_files, .timeout = 600) { check_all(1); }

/* Weights whose shape does not match the model: the error names the file,
 * the tensor and the expected shape. */
Test(rnn_parity, wrong_weights_are_named) {
    char wpath[4096], xpath[4096];
    weft_st_file *w, *x;
    open_case("lstm_L1_uni_f64", &w, &x, wpath, xpath);
    weft_rnn_config cfg = fx_rnn_config(x);
    cfg.hidden_size += 1; /* the file's weights are now the wrong shape */
    weft_cell *cell = weft_cell_get("lstm");
    weft_st_writer *out = weft_st_writer_new();
    weft_status s = weft_rnn_run_files(cell, &cfg, w, wpath, x, xpath, out);
    cr_assert_neq(s, WEFT_OK);
    const char *msg = weft_last_error();
    cr_assert(strstr(msg, "weight_ih_l0"), "message does not name the tensor: %s", msg);
    cr_assert(strstr(msg, "lstm_L1_uni_f64.weights"), "message does not name the file: %s", msg);

    /* the wrong cell: GRU weights are [3H, I], an LSTM wants [4H, I] */
    weft_cell_free(cell);
    cfg = fx_rnn_config(x);
    cell = weft_cell_get("gru");
    s = weft_rnn_run_files(cell, &cfg, w, wpath, x, xpath, out);
    cr_assert_neq(s, WEFT_OK);
    cr_assert(strstr(weft_last_error(), "[15, 3]"), "%s", weft_last_error());

    /* a dtype mismatch between the run and the inputs */
    weft_cell_free(cell);
    cfg = fx_rnn_config(x);
    cfg.dtype = WEFT_F32;
    cell = weft_cell_get("lstm");
    s = weft_rnn_run_files(cell, &cfg, w, wpath, x, xpath, out);
    cr_assert_eq(s, WEFT_ERR_DTYPE, "%s", weft_last_error());
    cr_assert(strstr(weft_last_error(), "'input'"), "%s", weft_last_error());

    weft_st_writer_free(out);
    weft_cell_free(cell);
    weft_st_free(w);
    weft_st_free(x);
}

Test(rnn_parity, unknown_cell_lists_the_builtins) {
    cr_assert_null(weft_cell_get("lstmm"));
    cr_assert(strstr(weft_last_error(), "gru_reset_before"), "%s", weft_last_error());
}
