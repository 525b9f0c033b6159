/* weft — finding a cell by name or path.
 *
 * A name containing '/' or ending in ".cell" is a cell file; anything else
 * is a built-in. */
#include <string.h>

#include "cells_builtin.h"

static int is_path(const char *s) {
    size_t n = strlen(s);
    return strchr(s, '/') != NULL || (n >= 5 && !strcmp(s + n - 5, ".cell"));
}

weft_cell *weft_cell_get(const char *name_or_path) {
    if (!name_or_path || !*name_or_path) {
        weft_error(WEFT_ERR_ARG, "cell: no name given");
        return NULL;
    }
    if (is_path(name_or_path)) return weft_cell_load(name_or_path);
    weft_cell *c = weft_cell_builtin(name_or_path);
    if (c) return c;

    char known[256] = "";
    for (const char *const *n = weft_cell_builtin_names(); *n; n++) {
        size_t len = strlen(known);
        snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "", *n);
    }
    weft_error(WEFT_ERR_NOT_FOUND,
               "cell '%s': no such built-in cell (known: %s; a path to a .cell file "
               "is also accepted)", name_or_path, known);
    return NULL;
}

void weft_cell_free(weft_cell *c) {
    if (c && c->ops && c->ops->free) c->ops->free(c);
}
