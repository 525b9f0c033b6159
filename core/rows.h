/* Row bands (core/rows.c): stretches of the schedule that the threads run
 * on their own rows of the batch, one parallel region for the stretch. */
#ifndef WEFT_CORE_ROWS_H
#define WEFT_CORE_ROWS_H

#include "graph_internal.h"
#include "plan.h"

typedef struct weft_rows {
    int n;               /* bands */
    int *start, *end;    /* [n]: nodes [start, end) of the schedule */
    int64_t *rows;       /* [n]: the rows the threads share */
    int *barriers;       /* [n]: barriers inside */
    int *band_at;        /* [N]: the band starting at node i, or -1 */
    uint8_t *barrier;    /* [N]: the threads meet before node i runs */
    uint32_t *whole;     /* [N]: node i's inputs read whole (weft_op_rows), the others cut to the band */
} weft_rows;

/* Find the bands of a planned graph.  val[] are the nodes' tensors as the
 * executor will run them (views taken), blocks[] the plan's buffers. */
weft_status weft_rows_find(const weft_graph *g, const uint8_t *needed, int N, const weft_tensor *val,
                           const weft_plan *plan, void *const *blocks, weft_rows *out);
void weft_rows_free(weft_rows *r);

/* Rows [r0, r1) of a 2-D tensor. */
static inline weft_tensor weft_rows_of(const weft_tensor *t, int64_t r0, int64_t r1) {
    weft_tensor b = *t;
    b.data = (char *)t->data + r0 * t->stride[0] * (int64_t)weft_dtype_size(t->dtype);
    b.shape.dim[0] = r1 - r0;
    return b;
}

#endif
