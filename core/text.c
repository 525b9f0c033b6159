#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Room for `more` bytes and a terminating 0 past t->n; 0, or -1 (failed). */
static int reserve(weft_text *t, size_t more) {
    if (t->failed) return -1;
    if (t->n + more + 1 <= t->cap) return 0;
    size_t nc = t->cap ? t->cap : 1024;
    while (nc < t->n + more + 1) nc *= 2;
    char *nb = realloc(t->s, nc);
    if (!nb) {
        t->failed = 1;
        return -1;
    }
    t->s = nb;
    t->cap = nc;
    return 0;
}

void weft_text_put(weft_text *t, const char *fmt, ...) {
    if (t->failed) return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) t->failed = 1;
    if (k >= 0 && !reserve(t, (size_t)k)) {
        vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap2);
        t->n += (size_t)k;
    }
    va_end(ap2);
}

int weft_text_read(weft_text *t, const char *path, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t n0 = t->n;
    while (!reserve(t, 4096)) {
        size_t k = fread(t->s + t->n, 1, t->cap - t->n - 1, f);
        t->n += k;
        t->s[t->n] = 0;
        if (k == 0 || t->n - n0 > max) break;
    }
    const int err = ferror(f);
    fclose(f);
    return err ? -2 : 0;
}
