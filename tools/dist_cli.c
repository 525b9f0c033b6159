/* weft train under mpirun (see dist_cli.h and docs/distributed.md). */
#include "dist_cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/dist.h"

enum { MAX_FEEDS = 16 };

static struct {
    int active;                 /* more than one rank */
    int quiet;                  /* rank 0's --quiet: no communication report */
    int rank, size;
    weft_dist_avg *avg;
    weft_trainer *hooked;       /* the trainer the averager is installed on */
    float *ones;                /* weights for a shard with none (see shard_run) */
    int ones_cap;
    double step_seconds;        /* in dist_step (compute + communication) */
    int64_t steps;
    int fault_hang, fault_rank; /* WEFT_DIST_FAULT: a test's dying or hanging rank */
    int64_t fault_step;
} D;

/* WEFT_DIST_FAULT=die:RANK:STEP or hang:RANK:STEP: rank RANK kills itself
 * (SIGKILL) or stops forever before training step STEP (1-based), so the
 * tests can check that the others report it instead of waiting forever. */
static void read_fault(void) {
    const char *e = getenv("WEFT_DIST_FAULT");
    char kind[8];
    long long step;
    D.fault_rank = -1;
    if (e && sscanf(e, "%7[a-z]:%d:%lld", kind, &D.fault_rank, &step) == 3) {
        D.fault_hang = !strcmp(kind, "hang");
        D.fault_step = step;
    } else if (e && *e) {
        fprintf(stderr, "weft train: WEFT_DIST_FAULT='%s' ignored (die:RANK:STEP or "
                "hang:RANK:STEP)\n", e);
    }
}

static void inject_fault(void) {
    if (D.rank != D.fault_rank || D.steps + 1 != D.fault_step) return;
    fprintf(stderr, "weft train: rank %d: WEFT_DIST_FAULT: %s before step %lld\n", D.rank,
            D.fault_hang ? "hanging" : "dying", (long long)D.fault_step);
    fflush(stderr);
    if (!D.fault_hang) raise(SIGKILL);
    for (;;) pause();
}

int dist_begin(train_opts *o) {
    memset(&D, 0, sizeof D);
    D.size = 1;
    if (!weft_dist_launched()) return 0;
    if (!weft_dist_compiled()) {
        fprintf(stderr, "weft train: started by mpirun/srun, but this weft was built without "
                "MPI: every process would train alone (install libopenmpi-dev and rebuild, or "
                "set WEFT_DIST=0 to run anyway)\n");
        return 2;
    }
    if (weft_dist_init()) return train_fail("MPI");
    D.rank = weft_dist_rank();
    D.size = weft_dist_size();
    if (D.size == 1) return 0;
    /* the options every rank must share: all but where files go and what
     * is printed (file names may differ between nodes) */
    char cfg[1024];
    int len = snprintf(cfg, sizeof cfg,
                       "task=%s cell=%s hidden=%lld layers=%d bidi=%d epochs=%d spe=%lld "
                       "max_steps=%lld batch=%d optim=%d lr=%.17g clip=%.17g seed=%llu "
                       "seqlen=%d eval=%lld max_tokens=%d max_len=%d embed=%d mask=%d "
                       "buckets=%d limit=%lld resume=%d",
                       o->task ? o->task : "", o->cell ? o->cell : "", (long long)o->hidden,
                       o->layers, o->bidirectional, o->epochs, (long long)o->steps_per_epoch,
                       (long long)o->max_steps, o->batch, o->optimizer, o->lr, o->clip,
                       (unsigned long long)o->seed, o->seqlen, (long long)o->eval_windows,
                       o->max_tokens, o->max_len, o->embed, o->masking, o->buckets,
                       (long long)o->limit, o->resume != NULL);
    if (weft_dist_check_same(cfg, (size_t)len,
                             "the training options (weft train's arguments but file names)")) {
        /* every rank got the same verdict: no abort needed */
        if (D.rank == 0) fprintf(stderr, "weft train: %s\n", weft_last_error());
        weft_dist_finalize();
        return 2;
    }
    if (o->task && !strcmp(o->task, "binary-addition")) {
        /* one pair a step, time-major feeds: nothing to split */
        if (D.rank == 0)
            fprintf(stderr, "weft train: binary-addition trains on one pair a step and is not "
                    "distributed: run it without mpirun\n");
        weft_dist_finalize();
        return 2;
    }
    /* WEFT_DIST_BUCKET_KIB: the gradient bucket size (default 4 MiB); smaller
     * buckets start during the backward pass sooner.  Must agree: ranks
     * cutting buckets differently would sum unrelated numbers. */
    const char *bk = getenv("WEFT_DIST_BUCKET_KIB");
    uint64_t bucket = bk && *bk ? (uint64_t)strtoull(bk, NULL, 10) << 10 : 0;
    if (weft_dist_check_same(&bucket, sizeof bucket, "WEFT_DIST_BUCKET_KIB") ||
        weft_dist_avg_new((size_t)bucket, 0, &D.avg))
        return dist_end(train_fail("MPI"));
    D.active = 1;
    D.quiet = o->quiet;
    /* WEFT_DIST_PROFILE=1: the report separates waiting for the slowest
     * rank from the reduction (one more latency per step) */
    const char *prof = getenv("WEFT_DIST_PROFILE");
    weft_dist_avg_set_profile(D.avg, prof && *prof && strcmp(prof, "0"));
    read_fault();
    if (D.rank != 0) {
        o->quiet = 1;
        o->json = 0;
        o->checkpoint = NULL;
        o->csv = NULL;
    } else if (!o->quiet) {
        printf("distributed: %d ranks (%s); each feeds its rows of every global batch, "
               "gradients averaged; rank 0 writes the output\n", D.size, weft_dist_library());
    }
    return 0;
}

int dist_end(int rc) {
    if (!D.active) return rc;
    if (rc) {
        /* the others would wait for this rank's gradients until their
         * timeout: end them now */
        weft_dist_abort(rc, "training failed (the error is above)");
    } else {
        weft_dist_stats st;
        weft_dist_avg_stats(D.avg, &st);
        /* means over the ranks: [step, averaging, waiting, slowest rank, steps,
         * bytes, of which started during the backward pass, seconds reductions
         * were in flight during it] */
        double v[8] = {D.step_seconds, st.seconds, st.wait_seconds, st.sync_seconds,
                       (double)D.steps, st.bytes, st.early_bytes, st.overlap_seconds};
        if (weft_dist_sum(v, 8)) {
            weft_dist_abort(1, weft_last_error());
        } else if (D.rank == 0 && v[4] > 0 && !D.quiet) {
            double ms[4];
            for (int i = 0; i < 4; i++) ms[i] = 1e3 * v[i] / v[4];
            fprintf(stderr, "distributed: %d ranks, %lld steps: %.3f ms per step, of which "
                    "%.3f ms (%.1f%%) averaging gradients (%.3f ms waiting for reductions",
                    D.size, (long long)D.steps, ms[0], ms[1], ms[0] > 0 ? 100 * ms[1] / ms[0] : 0,
                    ms[2]);
            if (ms[3] > 0) fprintf(stderr, ", %.3f ms for the slowest rank", ms[3]);
            fprintf(stderr, "); %lld buckets, %.0f KiB per step, %.0f%% of it sent during "
                    "the backward pass (reductions in flight %.3f ms of it)\n",
                    (long long)st.buckets, st.calls ? st.bytes / 1024 / (double)st.calls : 0,
                    v[5] > 0 ? 100 * v[6] / v[5] : 0, 1e3 * v[7] / v[4]);
        }
    }
    weft_dist_avg_free(D.avg);
    free(D.ones);
    D.active = 0;
    weft_dist_finalize();
    return rc;
}

int dist_local_rows(int B) {
    if (!D.active) return B;
    int64_t lo = (int64_t)D.rank * B / D.size, hi = (int64_t)(D.rank + 1) * B / D.size;
    return (int)(hi - lo);
}

/* This rank's rows of every feed, then the step (or evaluation), then the
 * results combined over the ranks weighted like the gradients. */
static weft_status shard_run(weft_trainer *t, int head, const weft_feed *f, int n, int B,
                             int weights, weft_train_result *r, int train) {
    weft_train_result tmp;
    if (!r) r = &tmp;
    if (!D.active)
        return train ? weft_trainer_step_head(t, head, f, n, r)
                     : weft_trainer_eval_head(t, head, f, n, r);
    if (n > MAX_FEEDS || B < D.size)
        return weft_error(WEFT_ERR_ARG, "distributed: %d feeds (at most %d), a global batch of "
                          "%d rows for %d ranks (at least one row each)", n, MAX_FEEDS, B, D.size);
    weft_status s;
    if (train && D.hooked != t) {
        if ((s = weft_trainer_set_grad_hook(t, weft_dist_avg_hook, D.avg)) ||
            (s = weft_trainer_set_grad_ready_hook(t, weft_dist_avg_ready, D.avg)))
            return s;
        D.hooked = t;
    }
    int64_t lo = (int64_t)D.rank * B / D.size, rows = dist_local_rows(B);
    weft_feed mine[MAX_FEEDS];
    for (int i = 0; i < n; i++) {
        if (f[i].bytes % (size_t)B)
            return weft_error(WEFT_ERR_SHAPE, "distributed: feed %d (%zu bytes) is not %d rows",
                              i, f[i].bytes, B);
        size_t row = f[i].bytes / (size_t)B;
        mine[i] = (weft_feed){f[i].node, (const char *)f[i].data + (size_t)lo * row,
                              (size_t)rows * row};
    }
    double w = (double)rows;
    if (weights >= 0) {
        const float *wr = mine[weights].data;
        w = 0;
        for (int64_t i = 0; i < rows; i++) w += wr[i];
        if (w == 0) {
            /* only filler rows here (the end of a short batch): compute on
             * them with weight 1 so the loss is finite, and count for 0 */
            if (rows > D.ones_cap) {
                float *p = realloc(D.ones, sizeof *p * (size_t)rows);
                if (!p) return weft_error(WEFT_ERR_NOMEM, "out of memory");
                D.ones = p;
                D.ones_cap = (int)rows;
            }
            for (int64_t i = 0; i < rows; i++) D.ones[i] = 1;
            mine[weights].data = D.ones;
        }
    }
    double t0 = train_now();
    if (train) {
        inject_fault();
        weft_dist_avg_set_weight(D.avg, w);
        s = weft_trainer_step_head(t, head, mine, n, r);
    } else {
        s = weft_trainer_eval_head(t, head, mine, n, r);
    }
    if (s) return s;
    double v[WEFT_TRAIN_MAX_METRICS + 2];
    v[0] = w * r->loss;
    for (int i = 0; i < WEFT_TRAIN_MAX_METRICS; i++) v[1 + i] = w * r->metrics[i];
    v[WEFT_TRAIN_MAX_METRICS + 1] = w;
    if (w == 0) memset(v, 0, sizeof v); /* 0 * a filler row's loss, whatever it is */
    if ((s = weft_dist_sum(v, WEFT_TRAIN_MAX_METRICS + 2))) return s;
    double W = v[WEFT_TRAIN_MAX_METRICS + 1];
    r->loss = v[0] / W;
    for (int i = 0; i < WEFT_TRAIN_MAX_METRICS; i++) r->metrics[i] = v[1 + i] / W;
    if (train) {
        D.step_seconds += train_now() - t0;
        D.steps++;
    }
    return WEFT_OK;
}

weft_status dist_step(weft_trainer *t, int head, const weft_feed *f, int n, int B, int weights,
                      weft_train_result *r) {
    return shard_run(t, head, f, n, B, weights, r, 1);
}

weft_status dist_eval(weft_trainer *t, int head, const weft_feed *f, int n, int B, int weights,
                      weft_train_result *r) {
    return shard_run(t, head, f, n, B, weights, r, 0);
}
