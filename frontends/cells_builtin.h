/* weft — the built-in cells written in C (frontends/cells_builtin.c).
 * Private to the frontends: users reach them through weft_cell_get(). */
#ifndef WEFT_CELLS_BUILTIN_H
#define WEFT_CELLS_BUILTIN_H

#include "weft/cell.h"

/* A new built-in cell by name, or NULL (no error recorded) if there is no
 * built-in of that name. */
weft_cell *weft_cell_builtin(const char *name);
/* The names of the built-ins, NULL-terminated (for messages and listings). */
const char *const *weft_cell_builtin_names(void);

#endif
