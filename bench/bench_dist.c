/* The cost of averaging gradients across ranks, alone: weft_dist_avg_hook
 * on buffers the size of a model's gradients, best of many repetitions
 * (the minimum is the least disturbed by a shared machine).  Run it under
 * mpirun; as one process it only reports that there is nothing to do.
 *   mpirun -np 2 build/bench_dist [FLOATS...]   (default: charlm's 108402
 *   and topic's 900900 parameters); BUCKET_KB=n sets the bucket size */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "weft/dist.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (weft_dist_init() || weft_dist_size() < 2) {
        printf("bench_dist: run under mpirun with 2 or more ranks (%s)\n", weft_dist_library());
        weft_dist_finalize();
        return 0;
    }
    long sizes[8] = {108402, 900900};
    int ns = 2;
    if (argc > 1) {
        ns = 0;
        for (int i = 1; i < argc && ns < 8; i++) sizes[ns++] = atol(argv[i]);
    }
    for (int k = 0; k < ns; k++) {
        size_t bytes = (size_t)sizes[k] * sizeof(float);
        float *g = calloc((size_t)sizes[k], sizeof *g), *p = calloc((size_t)sizes[k], sizeof *p);
        void *grads[1] = {g};
        const void *params[1] = {p};
        weft_dtype dt[1] = {WEFT_F32};
        weft_dist_avg *a;
        const char *bk = getenv("BUCKET_KB");
        size_t bucket = bk ? (size_t)atol(bk) * 1024 : 0;
        if (!g || !p || weft_dist_avg_new(bucket, 1000000, &a)) return 1;
        weft_dist_avg_set_profile(a, 1); /* all ranks arrive first: time the reduction only */
        double best = 1e9;
        for (int r = 0; r < 50; r++) {
            weft_grad_set gs = {1, grads, params, dt, &bytes, r};
            weft_dist_stats before, after;
            weft_dist_avg_stats(a, &before);
            double t0 = now();
            if (weft_dist_avg_hook(a, &gs)) {
                weft_dist_abort(1, weft_last_error());
                return 1;
            }
            weft_dist_avg_stats(a, &after);
            double t = now() - t0 - (after.sync_seconds - before.sync_seconds);
            if (t < best) best = t;
        }
        if (weft_dist_rank() == 0)
            printf("bench_dist: %d ranks, %ld floats (%.0f KiB): averaging takes %.3f ms at "
                   "best (%.2f GB/s of gradient)\n", weft_dist_size(), sizes[k],
                   (double)bytes / 1024, 1e3 * best, (double)bytes / best / 1e9);
        weft_dist_avg_free(a);
        free(g), free(p);
    }
    weft_dist_finalize();
    return 0;
}
