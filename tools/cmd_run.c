/* weft run: the parity command.  Runs a recurrent model on tensors from a
 * safetensors file and writes its outputs and gradients, to compare a cell
 * with PyTorch (tests/fixtures/README.md has the tensor names). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "weft/rnn.h"

static void run_usage(FILE *f) {
    fprintf(f,
            "usage: weft run --cell {rnn_tanh|rnn_relu|lstm|gru|gru_reset_before|FILE.cell}\n"
            "                --input-size I --hidden-size H [--num-layers L] [--bidirectional]\n"
            "                [--no-bias] [--dtype f32|f64] [--allow-nonfinite]\n"
            "                --weights W.safetensors --inputs X.safetensors --out OUT.safetensors\n"
            "\n"
            "W: parameters named as PyTorch's state_dict (weight_ih_l0, ..., _reverse).\n"
            "X: input [T, B, I]; optional h0, c0 [L*D, B, H], lengths [B], and grad_output\n"
            "   [T, B, D*H], grad_h_n, grad_c_n to get the gradients of\n"
            "   sum(output*grad_output) + sum(h_n*grad_h_n) + sum(c_n*grad_c_n).\n"
            "OUT: output, h_n, c_n, and grad.input, grad.h0, grad.c0, grad.<param>.\n");
}

/* A positive integer option value, or -1. */
static long long positive(const char *opt, const char *v) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*v == 0 || *end != 0 || x < 1) {
        fprintf(stderr, "weft run: %s needs a positive integer, not '%s'\n", opt, v);
        return -1;
    }
    return x;
}

/* A NaN or Inf in a weights or inputs file: an error naming the tensor and
 * element (PyTorch would silently propagate it; --allow-nonfinite does). */
static weft_status check_finite_file(const weft_st_file *f, const char *path) {
    for (int i = 0; i < weft_st_count(f); i++) {
        const weft_st_tensor *t = weft_st_at(f, i);
        if (t->dtype != WEFT_ST_F32 && t->dtype != WEFT_ST_F64) continue;
        size_t es = weft_st_dtype_size(t->dtype);
        for (size_t k = 0; k < t->nbytes / es; k++) {
            double v;
            if (t->dtype == WEFT_ST_F32) {
                float fv;
                memcpy(&fv, (const char *)t->data + k * es, sizeof fv);
                v = fv;
            } else {
                memcpy(&v, (const char *)t->data + k * es, sizeof v);
            }
            if (!isfinite(v))
                return weft_error(WEFT_ERR_NUMERIC, "%s: tensor '%s' element %zu is %s (pass --allow-nonfinite to run anyway)",
                                  path, t->name, k, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        }
    }
    return WEFT_OK;
}

int weft_cmd_run(int argc, char **argv) {
    const char *cell_name = NULL, *wpath = NULL, *xpath = NULL, *opath = NULL;
    int allow_nonfinite = 0;
    weft_rnn_config cfg = weft_rnn_config_default(0, 0);
    cfg.input_size = cfg.hidden_size = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            run_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--bidirectional")) {
            cfg.bidirectional = 1;
            continue;
        }
        if (!strcmp(a, "--no-bias")) {
            cfg.bias = 0;
            continue;
        }
        if (!strcmp(a, "--allow-nonfinite")) {
            allow_nonfinite = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "weft run: unknown option or missing value: '%s'\n", a);
            run_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long n = 0;
        if (!strcmp(a, "--cell"))
            cell_name = v;
        else if (!strcmp(a, "--weights"))
            wpath = v;
        else if (!strcmp(a, "--inputs"))
            xpath = v;
        else if (!strcmp(a, "--out"))
            opath = v;
        else if (!strcmp(a, "--input-size") || !strcmp(a, "--hidden-size") ||
                 !strcmp(a, "--num-layers")) {
            if ((n = positive(a, v)) < 0) return 2;
            if (a[2] == 'i') cfg.input_size = n;
            else if (a[2] == 'h') cfg.hidden_size = n;
            else cfg.num_layers = (int)n;
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "f32")) cfg.dtype = WEFT_F32;
            else if (!strcmp(v, "f64")) cfg.dtype = WEFT_F64;
            else {
                fprintf(stderr, "weft run: --dtype is f32 or f64, not '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "weft run: unknown option '%s'\n", a);
            run_usage(stderr);
            return 2;
        }
    }
    if (!cell_name || !wpath || !xpath || !opath || cfg.input_size < 1 || cfg.hidden_size < 1) {
        fprintf(stderr, "weft run: --cell, --input-size, --hidden-size, --weights, --inputs "
                        "and --out are required\n");
        run_usage(stderr);
        return 2;
    }

    weft_cell *cell = weft_cell_get(cell_name);
    weft_st_file *w = NULL, *x = NULL;
    weft_st_writer *out = NULL;
    weft_status s = cell ? WEFT_OK : WEFT_ERR_NOT_FOUND;
    if (!s) s = weft_st_read(wpath, &w);
    if (!s) s = weft_st_read(xpath, &x);
    if (!s && !allow_nonfinite) s = check_finite_file(w, wpath);
    if (!s && !allow_nonfinite) s = check_finite_file(x, xpath);
    if (!s && !(out = weft_st_writer_new())) s = weft_error(WEFT_ERR_NOMEM, "out of memory");
    if (!s) s = weft_rnn_run_files(cell, &cfg, w, wpath, x, xpath, out);
    if (!s) s = weft_st_writer_meta(out, "producer", "weft " WEFT_VERSION_STRING);
    /* the writer replaces OUT atomically: on any error above it is untouched */
    if (!s) s = weft_st_writer_save(out, opath);
    if (s) fprintf(stderr, "weft run: %s\n", weft_last_error());
    weft_st_writer_free(out);
    weft_st_free(w);
    weft_st_free(x);
    weft_cell_free(cell);
    return s ? 1 : 0;
}
