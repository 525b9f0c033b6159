/* weft — finding where a NaN or an infinity comes from.
 *
 * "loss is nan" says nothing about where it started.  After a run, the
 * values every node took are still in the executor: the first node, in
 * execution order, whose value is not finite is the one that produced it
 * (all its inputs were finite), or a leaf that already held it (a corrupt
 * parameter, a bad input).  The trainer calls this when a step's loss or
 * gradient is not finite (replaying the step on a reference executor);
 * call it after weft_exec_run to check every run (a CLI's
 * --check-numerics). */
#ifndef WEFT_NUMERICS_H
#define WEFT_NUMERICS_H

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the first non-finite value of a run is. */
typedef struct weft_nonfinite {
    weft_node node;       /* WEFT_NONE when every value is finite */
    int64_t index;        /* first bad element, row-major */
    double value;         /* NaN, +Inf or -Inf */
} weft_nonfinite;

/* Scans the values of e's last run in execution order.  e must come from
 * weft_exec_new(g, ...) (a compiled executor reuses buffers: WEFT_ERR_ARG)
 * and have run.  Returns WEFT_OK when every floating-point value is
 * finite; otherwise WEFT_ERR_NUMERIC, with weft_last_error() naming the
 * node: its op (or param/input/const), its name (a cell file's variable
 * name when the model came from one), shape, layer, direction and time
 * step, whether it belongs to the backward pass and of which forward node,
 * the element and its value, and its inputs.  `where` may be NULL. */
weft_status weft_exec_check_finite(weft_exec *e, const weft_graph *g, weft_nonfinite *where);

/* 1 when the n values of dtype t at data are all finite (integers are). */
int weft_all_finite(const void *data, weft_dtype t, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
