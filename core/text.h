/* A growing string printed into, as with printf: the cell printer
 * (frontends/cell_lang_print.c) and the kernel generator
 * (ops/fused_codegen.c).  Out of memory sets `failed`, and later prints do
 * nothing; the caller checks it once and frees s. */
#ifndef WEFT_CORE_TEXT_H
#define WEFT_CORE_TEXT_H

#include <stddef.h>

typedef struct weft_text {
    char *s;
    size_t n, cap;
    int failed;
} weft_text;

void weft_text_put(weft_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
