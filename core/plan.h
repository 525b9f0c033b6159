/* Memory planning (core/plan.c): which nodes are views, and which buffer
 * each computed node writes, reusing a buffer once every reader of its
 * previous value has run. */
#ifndef WEFT_CORE_PLAN_H
#define WEFT_CORE_PLAN_H

#include "graph_internal.h"

typedef struct weft_plan {
    int n_blocks;
    size_t *block_bytes;   /* [n_blocks] */
    int *block_of;         /* [N]: the block node i writes, -1 for views and leaves */
    uint8_t *is_view;      /* [N]: aliases its first input */
    int *placed_in;        /* [N]: the concat whose output this node writes into, or -1 */
    int64_t *place_at;     /* [N]: its offset along that concat's axis */
    int *owner;            /* [N]: the node whose storage node i's value lives in */
    int *war_from;         /* [N]: for an owner, the owner that had its block before, or -1 */
    int64_t peak_bytes;    /* sum of the blocks */
    int64_t unplanned_bytes; /* one buffer per node, as without a plan */
    int64_t live_bytes;    /* the most bytes live at once: the least any plan needs */
} weft_plan;

/* needed[0..N): the nodes to run; outs: what must survive the run.  With
 * reuse == 0 every node gets its own block (the reference executor). */
weft_status weft_plan_make(const weft_graph *g, const uint8_t *needed, int N, const weft_node *outs, int n_out,
                           int reuse, weft_plan *p);
void weft_plan_free(weft_plan *p);

#endif
