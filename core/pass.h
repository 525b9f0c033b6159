/* The compiler's internal interface: a pass rebuilds a graph into a new one.
 * The rewriter copies nodes from `src` into `dst` on demand, keeping map[]
 * from source ids to destination ids; a pass decides, node by node, to copy
 * it (weft_rw_copy) or to emit something else for it (and set map[]). */
#ifndef WEFT_CORE_PASS_H
#define WEFT_CORE_PASS_H

#include "graph_internal.h"
#include "op.h"
#include "weft/compile.h"

typedef struct weft_rw {
    const weft_graph *src;
    weft_graph *dst;
    weft_node *map;          /* src -> dst, WEFT_NONE = not (yet) emitted */
    uint8_t *live;           /* src nodes the outputs need */
    int *uses;               /* number of live users of each src node */
    int changes;             /* rewrites made, for the report */
    int src_owned_consts_copy; /* src is an intermediate graph: copy its own constants */
    int unchanged;           /* set by a pass that found nothing to do (dst left
                              * empty): src stands as it is, no rebuild */
    weft_node *scratch;      /* the rewriter's input list (owned by the driver) */
    int scratch_cap;
} weft_rw;

/* Copy src node n into dst with its inputs mapped (they must be emitted). */
weft_node weft_rw_copy(weft_rw *rw, weft_node n);
/* Emit an op into dst carrying src node n's name, site and backward marks. */
weft_node weft_rw_op(weft_rw *rw, weft_node like, int op, const weft_node *in, int n_in, const weft_attr *attr);
/* Input k of src node n, mapped into dst. */
weft_node weft_rw_in(const weft_rw *rw, weft_node n, int k);
/* Stamp node `made` in dst with the provenance of src node n. */
void weft_rw_stamp(weft_rw *rw, weft_node made, weft_node n);

/* A merged node stands for src nodes mem[0..m) laid side by side along
 * axis: map each to its slice of `big` (and count the rewrites). */
void weft_rw_map_slices(weft_rw *rw, weft_node big, const weft_node *mem, int m, int axis);
/* Record on dst node n what the pass did there (printf-style). */
void weft_rw_note(weft_rw *rw, weft_node n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A pass: reads rw->src, fills rw->dst and rw->map for every live node, or
 * sets rw->unchanged and emits nothing (a cheap scan first makes a pass with
 * nothing to do nearly free: rebuilding is most of a pass's cost). */
typedef weft_status (*weft_pass_fn)(weft_rw *rw);

weft_status weft_pass_dce(weft_rw *rw);
weft_status weft_pass_cse(weft_rw *rw);
weft_status weft_pass_fold(weft_rw *rw);
weft_status weft_pass_simplify(weft_rw *rw);
weft_status weft_pass_batch_gemm(weft_rw *rw);
weft_status weft_pass_batch_wgrad(weft_rw *rw);
weft_status weft_pass_merge_gates(weft_rw *rw);
weft_status weft_pass_merge_wgrad(weft_rw *rw);
weft_status weft_pass_fuse(weft_rw *rw);
weft_status weft_pass_concat_operand(weft_rw *rw);
weft_status weft_pass_pack(weft_rw *rw);
weft_status weft_pass_schedule(weft_rw *rw);

/* Graph helpers for passes. */
/* The rows of parts[0..n) stacked (a [sum rows, K] node): a view of their
 * common base when they are consecutive row windows of it, else a concat. */
weft_node weft_rw_concat_rows(weft_rw *rw, weft_node like, const weft_node *parts, int n);
int weft_count_op(const weft_graph *g, int op);
/* Is src node n a fill (a scalar constant by value)?  Writes the value. */
int weft_is_fill(const weft_graph *g, weft_node n, double *value);

#endif
