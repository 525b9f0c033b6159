/* Test support: see fixture.h. */
#include "fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double *fx_read(const weft_st_file *f, const char *name, weft_shape *shape) {
    const weft_st_tensor *t = weft_st_find(f, name);
    if (!t || t->ndim > WEFT_MAX_DIMS) return NULL;
    weft_shape s = weft_shape_make(t->ndim, t->shape);
    int64_t n = weft_shape_numel(s);
    double *d = malloc(sizeof *d * (size_t)(n ? n : 1));
    if (!d) return NULL;
    if (weft_st_get(f, name, WEFT_F64, s, d)) {
        free(d);
        return NULL;
    }
    if (shape) *shape = s;
    return d;
}

double fx_max_abs_diff(const double *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN wins */
    }
    return m;
}

double fx_scale(const double *ref, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    return m;
}

int fx_close(const char *what, const double *got, const double *want, int64_t n, int is_f64) {
    double diff = fx_max_abs_diff(got, want, n);
    double scale = fx_scale(want, n);
    /* an all-zero f32 tensor: measure against a scale of 1e-3 */
    double tol = is_f64 ? 1e-9 : 1e-4 * (scale > 0 ? scale : 1e-3);
    if (diff <= tol) return 1;
    fprintf(stderr, "%s: max abs diff %.3g > tolerance %.3g (scale %.3g)\n", what, diff, tol,
            scale);
    return 0;
}

char **fx_cases(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    size_t n = 0, cap = 16;
    char **v = malloc(sizeof *v * cap);
    char line[512];
    while (v && fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        if (n + 1 >= cap) {
            char **nv = realloc(v, sizeof *v * (cap *= 2));
            if (!nv) break;
            v = nv;
        }
        v[n++] = strdup(line);
    }
    fclose(fp);
    if (v) v[n] = NULL;
    return v;
}

void fx_free_cases(char **cases) {
    for (char **c = cases; c && *c; c++) free(*c);
    free(cases);
}

const char *fx_meta(const weft_st_file *f, const char *key) {
    const char *v = weft_st_metadata(f, key);
    cr_assert(v, "fixture metadata '%s' missing", key);
    return v;
}

weft_rnn_config fx_rnn_config(const weft_st_file *f) {
    weft_rnn_config c = weft_rnn_config_default(atoll(fx_meta(f, "input_size")),
                                                atoll(fx_meta(f, "hidden_size")));
    c.num_layers = atoi(fx_meta(f, "num_layers"));
    c.bidirectional = !strcmp(fx_meta(f, "bidirectional"), "true");
    c.bias = !strcmp(fx_meta(f, "bias"), "true");
    c.dtype = strcmp(fx_meta(f, "dtype"), "f64") ? WEFT_F32 : WEFT_F64;
    return c;
}
