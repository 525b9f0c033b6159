/* A growing string printed into, as with printf, or read into from a
 * file: the cell printer (frontends/cell_lang_print.c), the cell loader
 * (frontends/cell_lang.c) and the kernel generator (ops/fused_codegen.c).
 * Out of memory sets `failed`, and later prints do nothing; the caller
 * checks it once and frees s. */
#ifndef WEFT_CORE_TEXT_H
#define WEFT_CORE_TEXT_H

#include <stddef.h>

typedef struct weft_text {
    char *s;
    size_t n, cap;
    int failed;
} weft_text;

void weft_text_put(weft_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append file path's bytes (s stays 0-terminated), stopping once more
 * than max have come (the caller sees t->n grow past them: too large).
 * 0; -1 when it cannot be opened (errno says why); -2 on a read error;
 * out of memory sets `failed`. */
int weft_text_read(weft_text *t, const char *path, size_t max);

#endif
