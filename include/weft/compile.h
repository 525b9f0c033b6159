/* weft — the graph compiler and the program that runs its result.
 *
 * weft_exec_compile copies the part of a graph that the outputs need, runs
 * the passes (a named, ordered list; each can be disabled) on the copy, and
 * makes an executor for the result.  Feeding and reading use the ORIGINAL
 * graph's node ids, so it drops in where weft_exec_new was used.
 * Parameters are shared with the original graph (updates are seen). */
#ifndef WEFT_COMPILE_H
#define WEFT_COMPILE_H

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_compile_options {
    const char *const *disable;  /* pass names not to run */
    int n_disable;
    int no_passes;               /* run none: the reference graph, copied */
    const char *dump_dir;        /* write NN-<pass>.dot after every pass */
    int verify;                  /* run weft_graph_verify after every pass */
    int threads;                 /* executor threads; 0 = all cores */
    int inter_op;                /* run independent nodes side by side on the threads (each
                                  * kernel single-threaded): 0 auto, 1 on, -1 off */
    int row_bands;               /* run each recurrence as row bands, each thread its own rows
                                  * of the batch through every step: 0 auto, 1 on, -1 off */
    int codegen;                 /* compile the fused f32 kernels to machine code with the system's
                                  * C compiler (cached on disk): 0 on unless WEFT_CODEGEN=0, -1 off */
} weft_compile_options;

typedef struct weft_pass_stat {
    const char *name;
    int ran;                     /* 0 when disabled */
    int nodes_before, nodes_after;
    int matmuls_before, matmuls_after;
    int changes;                 /* rewrites the pass made */
    double ms;
} weft_pass_stat;

#define WEFT_MAX_PASSES 16
typedef struct weft_compile_report {
    int n_passes;
    weft_pass_stat pass[WEFT_MAX_PASSES];
    double compile_ms;
    int64_t planned_peak_bytes;  /* the memory plan's buffers, all allocated at once */
    int64_t live_bytes;          /* the most bytes live at once: the least any plan needs */
    int64_t unplanned_bytes;     /* every buffer separately (the reference) */
    int inter_op;                /* what was asked: 0 auto, 1 on, -1 off */
    double parallelism;          /* total work over critical-path work (estimated) */
    int workers;                 /* inter-op workers used (0: kernels use the threads) */
    int row_bands;               /* what was asked: 0 auto, 1 on, -1 off */
    int bands;                   /* row bands found: stretches of row-wise kernels */
    int band_barriers;           /* where the threads meet inside them (all bands) */
    int bands_used;              /* 1: each band runs in one parallel region, rows per thread */
    double tuned_ms[3];          /* auto mode: the best timed run kernel by kernel, with the row
                                  * bands, with the workers (0: not a candidate, or not yet) */
    int codegen_progs;           /* fused f32 programs */
    int codegen_kernels;         /* distinct ones compiled to machine code (0: interpreted) */
    int codegen_cached;          /* 1: the library came from the disk cache */
    double codegen_ms;           /* writing, compiling and loading them (part of compile_ms) */
    char codegen_note[200];      /* the library's path, or why the interpreter runs */
} weft_compile_report;

/* The pass names in order, NULL-terminated. */
const char *const *weft_pass_names(void);

/* Compile the part of g that `outputs` need and make an executor for the
 * result.  It is used exactly like one from weft_exec_new — feed, run, read
 * and value take g's node ids — and gives the same numbers (f64: to
 * rounding of the reordered sums, <= 1e-12 relative).  NULL on error. */
weft_exec *weft_exec_compile(weft_graph *g, const weft_node *outputs, int n,
                             const weft_compile_options *opt);
/* The optimized graph (for drawing) and what the passes did; for an
 * executor from weft_exec_new, the graph itself and an empty report. */
const weft_graph *weft_exec_graph(const weft_exec *e);
const weft_compile_report *weft_exec_report(const weft_exec *e);
/* Print the report as a table. */
void weft_compile_report_print(const weft_compile_report *r, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
