/* weft train under mpirun: data-parallel training (docs/distributed.md).
 *
 * Each task keeps building its global batches exactly as one process does
 * (the same generator, the same order); dist_step / dist_eval feed this
 * rank only its rows of each one, and the gradients are averaged across
 * ranks by the library (include/weft/dist.h).  Without mpirun (or MPI),
 * dist_begin does nothing and dist_step is weft_trainer_step_head. */
#ifndef WEFT_TOOLS_DIST_CLI_H
#define WEFT_TOOLS_DIST_CLI_H

#include "train_common.h"

/* After parsing: under mpirun, initializes MPI, checks that every rank got
 * the same options, and leaves the output (progress, JSON, checkpoints,
 * CSV) to rank 0.  0, or an exit code (the message printed). */
int dist_begin(train_opts *o);
/* With the run's exit code, at the end: a failed rank ends every rank
 * (instead of leaving them waiting); rank 0 reports the communication
 * share of a step; MPI is finalized.  Returns rc. */
int dist_end(int rc);

/* The rows [lo, hi) of a global batch of B rows that this rank feeds:
 * hi - lo is the batch its model is built with. */
int dist_local_rows(int B);

/* A training step / evaluation on this rank's rows of a global batch of B
 * rows: every feed is batch-first with B rows.  weights: the index in f of
 * an F32 [B] feed of per-row weights (the task's loss is sum(w*l)/sum(w)),
 * or -1 when the loss is a plain mean over the rows.  *r is the result over
 * the whole global batch (the same on every rank). */
weft_status dist_step(weft_trainer *t, int head, const weft_feed *f, int n, int B, int weights,
                      weft_train_result *r);
weft_status dist_eval(weft_trainer *t, int head, const weft_feed *f, int n, int B, int weights,
                      weft_train_result *r);

#endif
