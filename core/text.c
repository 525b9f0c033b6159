#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void weft_text_put(weft_text *t, const char *fmt, ...) {
    if (t->failed) return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
        va_end(ap2);
        t->failed = 1;
        return;
    }
    if (t->n + (size_t)k + 1 > t->cap) {
        size_t nc = t->cap ? t->cap : 1024;
        while (nc < t->n + (size_t)k + 1) nc *= 2;
        char *nb = realloc(t->s, nc);
        if (!nb) {
            va_end(ap2);
            t->failed = 1;
            return;
        }
        t->s = nb;
        t->cap = nc;
    }
    vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap2);
    va_end(ap2);
    t->n += (size_t)k;
}
