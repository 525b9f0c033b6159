/* Status codes, their messages, and the per-thread detail of the last error. */
#include <stdarg.h>
#include <stdio.h>

#include "weft/weft.h"

static const char *const messages[WEFT_STATUS_COUNT] = {
    [WEFT_OK] = "ok",
    [WEFT_ERR_SHAPE] = "shape mismatch",
    [WEFT_ERR_DTYPE] = "dtype mismatch",
    [WEFT_ERR_ARG] = "invalid argument",
    [WEFT_ERR_NOMEM] = "out of memory or size overflow",
    [WEFT_ERR_IO] = "input/output error",
    [WEFT_ERR_FORMAT] = "malformed file",
    [WEFT_ERR_PARSE] = "cell file does not parse",
    [WEFT_ERR_GRAPH] = "graph invariant broken",
    [WEFT_ERR_NOT_FOUND] = "not found",
    [WEFT_ERR_NUMERIC] = "non-finite value",
    [WEFT_ERR_UNSUPPORTED] = "not supported",
};

static _Thread_local char detail[4096];

const char *weft_status_str(weft_status s) {
    if ((unsigned)s >= WEFT_STATUS_COUNT) return "unknown status";
    return messages[s];
}

const char *weft_last_error(void) { return detail; }

void weft_error_clear(void) { detail[0] = 0; }

weft_status weft_error(weft_status s, const char *fmt, ...) {
    /* fmt may reference the current detail (to add context): format into a
     * scratch buffer first. */
    char tmp[sizeof detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(detail, sizeof detail, "%s", tmp);
    return s;
}
