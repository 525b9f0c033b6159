/* Test support: reading the PyTorch golden fixtures (tests/fixtures) and
 * comparing results with the tolerances of issue 3. */
#ifndef WEFT_TEST_FIXTURE_H
#define WEFT_TEST_FIXTURE_H

#include "weft/rnn.h"
#include "weft/safetensors.h"
#include "weft/weft.h"

/* Tensor `name` of f converted to double (malloc'd), its shape in *shape;
 * NULL if f has no such tensor. */
double *fx_read(const weft_st_file *f, const char *name, weft_shape *shape);

/* max |a - b| and max |ref|. */
double fx_max_abs_diff(const double *a, const double *b, int64_t n);
double fx_scale(const double *ref, int64_t n);

/* The tolerance of issue 3: f64 max abs difference <= 1e-9; f32 <= 1e-4
 * relative to the expected tensor's scale (max |want|).  Returns 1 when
 * close, else 0 after printing what differs. */
int fx_close(const char *what, const double *got, const double *want, int64_t n, int is_f64);

/* A __metadata__ value of a fixture; fails the current test if absent. */
const char *fx_meta(const weft_st_file *f, const char *key);

/* The RNN configuration a fixture's metadata describes (input_size,
 * hidden_size, num_layers, bidirectional, bias, dtype). */
weft_rnn_config fx_rnn_config(const weft_st_file *f);

/* The case names listed in <dir>/cases.txt (NULL-terminated, malloc'd; free
 * with fx_free_cases).  NULL if the file cannot be read. */
char **fx_cases(const char *dir);
void fx_free_cases(char **cases);

#endif
