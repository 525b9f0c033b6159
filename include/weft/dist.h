/* weft — data-parallel training over MPI.
 *
 * Every rank holds a full replica of the model and runs the same trainer on
 * its shard of each global batch; after the backward pass the parameter
 * gradients are averaged across ranks (MPI_Iallreduce on buckets of a flat
 * buffer, each started as soon as the backward pass has filled it), so
 * every rank applies the same optimizer step and the replicas stay
 * identical.  Install the averager on a trainer with
 * weft_trainer_set_grad_hook(t, weft_dist_avg_hook, avg) and
 * weft_trainer_set_grad_ready_hook(t, weft_dist_avg_ready, avg).
 *
 * MPI is optional at build time: without it (weft_dist_compiled() == 0)
 * these functions exist, act as a single rank (rank 0 of 1), and the
 * averager leaves gradients unchanged.
 *
 * Failures: every collective here is non-blocking and waited on with a
 * deadline (weft_dist_set_timeout), so a rank that died or hangs turns into
 * an error on the others instead of a hang.  A collective that timed out
 * cannot be cancelled: after such an error the only safe thing to do is
 * weft_dist_abort, which ends every rank.  Functions here are collective
 * (all ranks call them, in the same order) unless marked local. */
#ifndef WEFT_DIST_H
#define WEFT_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "train.h"
#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Local.  1 when weft was built with MPI. */
int weft_dist_compiled(void);
/* Local.  The MPI library's name and version ("Open MPI v4.1.4, ..."), or
 * "MPI not compiled in". */
const char *weft_dist_library(void);
/* Local.  1 when this process looks launched by mpirun/srun (Open MPI,
 * PMI or PMIx environment variables are set, or WEFT_DIST=1). */
int weft_dist_launched(void);

/* Initializes MPI (once, MPI_THREAD_FUNNELED) and records this process's
 * rank and the number of ranks.  Without MPI: WEFT_ERR_UNSUPPORTED with
 * "MPI not compiled in". */
weft_status weft_dist_init(void);
/* Finalizes MPI if weft_dist_init initialized it.  Collective. */
void weft_dist_finalize(void);
/* Local.  Rank 0 of 1 before weft_dist_init or without MPI. */
int weft_dist_rank(void);
int weft_dist_size(void);

/* Local.  Seconds a collective may wait for the other ranks before it fails
 * (default 120, or $WEFT_DIST_TIMEOUT). */
void weft_dist_set_timeout(double seconds);
double weft_dist_timeout(void);

/* Local.  Prints "weft: rank R of N: <message>; aborting every rank" to
 * stderr and ends every rank with exit code `code` (MPI_Abort).  Without
 * MPI, or with a single rank, it returns without doing anything. */
void weft_dist_abort(int code, const char *message);

/* Every rank passes its own bytes; WEFT_ERR_ARG naming `what` and the
 * ranks whose bytes differ from rank 0's when they are not all the same
 * (compared by a 64-bit hash).  Used at start for the configuration. */
weft_status weft_dist_check_same(const void *data, size_t bytes, const char *what);

/* v[0..n) = the sum over ranks of every rank's v (small arrays: results,
 * counters). */
weft_status weft_dist_sum(double *v, int n);

/* ------------------------------------------------------ gradient averager */

typedef struct weft_dist_avg weft_dist_avg;

typedef struct weft_dist_stats {
    int64_t calls;            /* averaging calls (training steps) */
    int64_t buckets;          /* MPI_Iallreduce calls on gradient buckets */
    double bytes;             /* gradient bytes this rank sent into reductions */
    double seconds;           /* wall time inside the averager (pack, reduce, unpack) */
    double wait_seconds;      /* of which waiting for the reductions to complete */
    double sync_seconds;      /* of which waiting for the slowest rank to arrive
                               * (measured only with weft_dist_avg_set_profile) */
    double early_bytes;       /* of bytes, those whose reduction started during the
                               * backward pass (weft_dist_avg_ready) */
    double overlap_seconds;   /* time from each step's first bucket starting to the
                               * end of the backward pass: reductions in flight
                               * while the gradients were still being computed */
} weft_dist_stats;

/* bucket_bytes: the gradients are copied into flat buffers (one per dtype)
 * cut into buckets of about this size, each reduced by its own
 * MPI_Iallreduce (0 = 4 MiB).  check_every: every that many calls (and on
 * the first) the ranks also compare a hash of their parameters, so
 * replicas that drifted apart, or ranks that started from different
 * parameters (another checkpoint, other data), are reported instead of
 * training on silently (0 = 100). */
weft_status weft_dist_avg_new(size_t bucket_bytes, int64_t check_every, weft_dist_avg **out);
void weft_dist_avg_free(weft_dist_avg *a);
/* Local.  This rank's weight in the next average (default 1): the result is
 * sum_r w_r g_r / sum_r w_r.  With per-rank mean losses, w_r = the number
 * of examples in rank r's shard gives the gradient of the mean over the
 * global batch; w_r = 0 leaves a rank's gradient out. */
void weft_dist_avg_set_weight(weft_dist_avg *a, double w);
/* The trainer hook (weft_trainer_set_grad_hook with ctx = the averager):
 * replaces every gradient by its weighted average over the ranks. */
weft_status weft_dist_avg_hook(void *avg, const weft_grad_set *gs);
/* The trainer's readiness hook (weft_trainer_set_grad_ready_hook, same
 * ctx), set together with the one above: packs each gradient into its
 * bucket as soon as the backward pass has computed it and starts a
 * bucket's MPI_Iallreduce once it is full, so that communication overlaps
 * the rest of the backward pass; weft_dist_avg_hook then starts the last
 * buckets, waits and unpacks.  The ranks must compute the gradients in the
 * same order (the same compiled graph: the executor fixes its order while
 * a readiness callback is set).  Without it the hook packs and starts
 * every bucket after the backward pass.  Results are the same either way.
 * After a step failed between the two, the averager refuses to go on. */
weft_status weft_dist_avg_ready(void *avg, const weft_grad_set *gs, int i);
void weft_dist_avg_stats(const weft_dist_avg *a, weft_dist_stats *s);
/* Local.  on = 1: each call first waits until every rank has arrived, so
 * that stats separate the time spent waiting for a slower rank (load
 * imbalance, a noisy machine) from the reduction itself.  Costs one extra
 * latency per step: for measurements. */
void weft_dist_avg_set_profile(weft_dist_avg *a, int on);

#ifdef __cplusplus
}
#endif
#endif
