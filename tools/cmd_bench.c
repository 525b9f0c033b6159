/* weft bench: time full training steps (forward + backward including the
 * weight gradients; no optimizer update) of a recurrent model, compiled. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "weft/compile.h"
#include "weft/rnn.h"

static double clock_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
/* CPU time of the whole process: on a shared machine, steadier than wall
 * time for comparing two configurations (it does not count waiting). */
static double cpu_ms(void) { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ profile */

typedef struct {
    char key[96];
    double ms, flops;
    int count;
} prof_row;

static int cmp_prof(const void *a, const void *b) {
    double x = ((const prof_row *)a)->ms, y = ((const prof_row *)b)->ms;
    return x > y ? -1 : x < y;
}

/* Time per kernel over `iters` runs, summed by op and output shape (matmuls
 * by m x k x n), largest first. */
static int print_profile(weft_exec *p, int iters) {
    const weft_graph *g = weft_exec_graph(p);
    int n = weft_graph_node_count(g);
    double *ms = calloc((size_t)n, sizeof *ms);
    prof_row *rows = calloc((size_t)n, sizeof *rows);
    int nr = 0, rc = 1;
    if (!ms || !rows) goto done;
    weft_exec_set_profile(p, ms);
    for (int k = 0; k < iters; k++)
        if (weft_exec_run(p)) goto done;
    weft_exec_set_profile(p, NULL);
    double total = 0;
    for (int i = 0; i < n; i++) {
        if (ms[i] <= 0) continue;
        char key[96];
        weft_shape s = weft_node_shape(g, i);
        double fl = 0;
        const char *op = weft_node_op_name(g, i);
        char tags[16]; /* where it runs: the backward, a row band */
        snprintf(tags, sizeof tags, "%s%s", weft_node_is_backward(g, i) ? " (bwd)" : "",
                 weft_exec_in_band(p, i) ? " band" : "");
        if (!strcmp(op, "matmul") || !strcmp(op, "matmul_packed") || !strcmp(op, "matmul_cat")) {
            weft_node in[2];
            weft_node_inputs(g, i, in, 2);
            weft_shape a = weft_node_shape(g, in[0]);
            int64_t kk = a.dim[0] * a.dim[1] / s.dim[0]; /* A is [m, k] or [k, m] */
            fl = 2.0 * (double)s.dim[0] * (double)s.dim[1] * (double)kk;
            snprintf(key, sizeof key, "%s %lldx%lldx%lld%s", op, (long long)s.dim[0], (long long)kk,
                     (long long)s.dim[1], tags);
        } else {
            char dims[64] = "";
            for (int d = 0, len = 0; d < s.ndim && len < (int)sizeof dims - 24; d++)
                len += snprintf(dims + len, sizeof dims - (size_t)len, d ? ",%lld" : "%lld", (long long)s.dim[d]);
            snprintf(key, sizeof key, "%.24s [%s]%s", op, dims, tags);
        }
        int r = 0;
        while (r < nr && strcmp(rows[r].key, key)) r++;
        if (r == nr) snprintf(rows[nr++].key, sizeof rows[0].key, "%s", key);
        rows[r].ms += ms[i] / iters;
        rows[r].flops += fl;
        rows[r].count++;
        total += ms[i] / iters;
    }
    qsort(rows, (size_t)nr, sizeof *rows, cmp_prof);
    printf("profile: %.3f ms per step in kernels (%s)\n", total,
           weft_exec_report(p)->bands_used
               ? "\"band\": in a row band, the time of thread 0's rows; the others each timed alone"
               : "each timed alone");
    printf("  %8s %6s %6s %8s  %s\n", "ms/step", "share", "calls", "GFLOP/s", "op [shape]");
    for (int r = 0; r < nr && r < 25; r++) {
        char gf[16] = "";
        if (rows[r].flops > 0) snprintf(gf, sizeof gf, "%.1f", rows[r].flops / (rows[r].ms * 1e6));
        printf("  %8.3f %5.1f%% %6d %8s  %s\n", rows[r].ms, 100 * rows[r].ms / total, rows[r].count, gf, rows[r].key);
    }
    rc = 0;
done:
    free(ms);
    free(rows);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: weft bench --cell CELL --seq-len T --batch B --input-size I --hidden-size H\n"
               "                  [--layers L] [--bidirectional] [--threads N] [--iters K]\n"
               "                  [--no-pass=NAME ...] [--no-passes] [--inter-op 1|0|-1] [--row-bands 1|0|-1]\n"
               "                  [--dtype f32|f64] [--json]\n"
               "                  [--profile]\n"
               "Times training steps (forward + backward with weight gradients) and reports the\n"
               "median ms per step, GFLOP/s (6*T*B*(I+H)*G*H per layer and direction), compile ms.\n"
               "--profile then runs the steps again timing each kernel, and prints where a step's\n"
               "time goes, by op and shape: in row bands, thread 0's rows of each kernel (\"band\");\n"
               "the others one at a time (inter-op workers off while profiling).\n");
}

int weft_cmd_bench(int argc, char **argv) {
    const char *cell_name = "lstm";
    int64_t T = 80, B = 50, I = 128, H = 128;
    int L = 1, bi = 0, iters = 10, json = 0, threads = 0, no_passes = 0, inter_op = 0, bands = 0, prof = 0;
    weft_dtype dt = WEFT_F32;
    const char *disable[WEFT_MAX_PASSES];
    int n_disable = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--cell") && v) cell_name = argv[++i];
        else if (!strcmp(a, "--seq-len") && v) T = atoll(argv[++i]);
        else if (!strcmp(a, "--batch") && v) B = atoll(argv[++i]);
        else if (!strcmp(a, "--input-size") && v) I = atoll(argv[++i]);
        else if (!strcmp(a, "--hidden-size") && v) H = atoll(argv[++i]);
        else if (!strcmp(a, "--layers") && v) L = atoi(argv[++i]);
        else if (!strcmp(a, "--iters") && v) iters = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--bidirectional")) bi = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--profile")) prof = 1;
        else if (!strcmp(a, "--no-passes")) no_passes = 1;
        else if (!strcmp(a, "--inter-op") && v) inter_op = atoi(argv[++i]);
        else if (!strcmp(a, "--row-bands") && v) bands = atoi(argv[++i]);
        else if (!strncmp(a, "--no-pass=", 10) && n_disable < WEFT_MAX_PASSES) disable[n_disable++] = a + 10;
        else if (!strcmp(a, "--dtype") && v) {
            const char *d = argv[++i];
            if (!strcmp(d, "f64")) dt = WEFT_F64;
            else if (strcmp(d, "f32")) { fprintf(stderr, "weft bench: --dtype is f32 or f64\n"); return 2; }
        } else {
            fprintf(stderr, "weft bench: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (T <= 0 || B <= 0 || I <= 0 || H <= 0 || L <= 0 || iters <= 0) {
        fprintf(stderr, "weft bench: sizes and --iters must be positive\n");
        return 2;
    }
    weft_set_threads(threads);
    weft_cell *cell = weft_cell_get(cell_name);
    if (!cell) { fprintf(stderr, "weft bench: %s\n", weft_last_error()); return 1; }
    weft_graph *g = weft_graph_new();
    weft_rnn_config cfg = weft_rnn_config_default(I, H);
    cfg.num_layers = L;
    cfg.bidirectional = bi;
    cfg.dtype = dt;
    weft_rnn *r = NULL;
    weft_exec *p = NULL;
    int rc = 1;
    weft_rng rng = weft_rng_make(1);
    if (weft_rnn_new(g, cell, &cfg, &r) || weft_rnn_init(g, r, &rng)) goto fail;
    weft_node x = weft_input(g, "input", dt, WEFT_SHAPE(T, B, I));
    weft_node go = weft_input(g, "grad_output", dt, WEFT_SHAPE(T, B, (bi ? 2 : 1) * H));
    weft_rnn_inputs in = {.x = x, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_rnn_result res;
    if (weft_rnn_apply(g, r, &in, &res)) goto fail;
    /* sum(output * grad_output): its gradient w.r.t. output is grad_output,
     * as in PyTorch's output.backward(grad_output).  A step yields the output
     * and the gradients, as PyTorch's does, not the sum itself. */
    weft_node loss = weft_sum(g, weft_mul(g, res.output, go), NULL, 0, 0);
    weft_node wrt[256], grads[257];
    int np = weft_graph_params(g, wrt, 255);
    wrt[np++] = x;
    if (weft_grad(g, loss, wrt, np, grads)) goto fail;
    grads[np] = res.output;
    weft_compile_options opt = {.disable = disable, .n_disable = n_disable, .no_passes = no_passes,
                                .threads = threads, .inter_op = inter_op, .row_bands = bands};
    p = weft_exec_compile(g, grads, np + 1, &opt);
    if (!p) goto fail;
    size_t nx = (size_t)(T * B * I), ng = (size_t)(T * B * (bi ? 2 : 1) * H), es = weft_dtype_size(dt);
    void *xd = malloc(nx * es), *gd = malloc(ng * es);
    for (size_t i = 0; i < nx; i++) {
        double v = weft_rng_uniform(&rng) * 2 - 1;
        if (dt == WEFT_F32) ((float *)xd)[i] = (float)v; else ((double *)xd)[i] = v;
    }
    for (size_t i = 0; i < ng; i++) {
        double v = weft_rng_uniform(&rng) * 2 - 1;
        if (dt == WEFT_F32) ((float *)gd)[i] = (float)v; else ((double *)gd)[i] = v;
    }
    if (weft_exec_feed(p, x, xd, nx * es) || weft_exec_feed(p, go, gd, ng * es)) goto fail_data;
    double *ms = malloc((size_t)iters * sizeof *ms), *cpu = malloc((size_t)iters * sizeof *cpu);
    for (int k = 0; k < 7; k++) /* warm-up (in auto mode, also the runs that choose how to run) */
        if (weft_exec_run(p)) goto fail_ms;
    for (int k = 0; k < iters; k++) {
        double t0 = now_ms(), c0 = cpu_ms();
        if (weft_exec_run(p)) goto fail_ms;
        ms[k] = now_ms() - t0;
        cpu[k] = cpu_ms() - c0;
    }
    qsort(ms, (size_t)iters, sizeof *ms, cmp_double);
    qsort(cpu, (size_t)iters, sizeof *cpu, cmp_double);
    double med = ms[iters / 2], med_cpu = cpu[iters / 2];
    /* G from the cell's input weights ([G*H, I] in total), so a cell
     * written gate by gate counts all its gates.  When I == H the recurrent
     * weights have the same shape: they count as many rows again. */
    int G = cell->gates > 0 ? cell->gates : 1;
    {
        weft_cell_param spec[WEFT_CELL_MAX_PARAMS];
        int np_cell = cell->ops->params(cell, I, H, spec);
        int64_t rows = 0;
        for (int k = 0; k < np_cell; k++)
            if (spec[k].shape.ndim == 2 && spec[k].shape.dim[1] == I) rows += spec[k].shape.dim[0];
        int64_t per_gate = I == H ? 2 * H : H;
        if (rows > 0 && rows % per_gate == 0) G = (int)(rows / per_gate);
    }
    double flops = 0;
    for (int l = 0; l < L; l++) {
        int64_t in_l = l == 0 ? I : (bi ? 2 : 1) * H;
        flops += (bi ? 2 : 1) * 6.0 * (double)T * (double)B * (double)(in_l + H) * G * (double)H;
    }
    const weft_compile_report *rep = weft_exec_report(p);
    if (json) {
        printf("{\"cell\": \"%s\", \"seq_len\": %lld, \"batch\": %lld, \"input_size\": %lld, \"hidden_size\": %lld, "
               "\"layers\": %d, \"bidirectional\": %s, \"ms_per_step\": %.4f, \"cpu_ms_per_step\": %.4f, \"gflops\": %.3f, \"compile_ms\": %.3f, "
               "\"peak_bytes\": %lld, \"live_bytes\": %lld, \"nodes\": %d, \"workers\": %d, \"bands_used\": %d, "
               "\"tuned_ms\": {\"kernels\": %.4f, \"bands\": %.4f, \"workers\": %.4f}}\n",
               cell_name, (long long)T, (long long)B, (long long)I, (long long)H, L, bi ? "true" : "false", med, med_cpu,
               flops / med / 1e6, rep->compile_ms, (long long)rep->planned_peak_bytes, (long long)rep->live_bytes,
               weft_graph_node_count(weft_exec_graph(p)), rep->workers, rep->bands_used, rep->tuned_ms[0],
               rep->tuned_ms[1], rep->tuned_ms[2]);
    } else {
        weft_compile_report_print(rep, stdout);
        printf("%s T=%lld B=%lld I=%lld H=%lld L=%d%s: %.3f ms/step (median of %d; %.3f ms CPU), %.2f GFLOP/s\n",
               cell_name, (long long)T, (long long)B, (long long)I, (long long)H, L, bi ? " bidirectional" : "", med,
               iters, med_cpu, flops / med / 1e6);
    }
    rc = prof ? print_profile(p, iters) : 0;
fail_ms:
    free(ms);
    free(cpu);
fail_data:
    free(xd);
    free(gd);
fail:
    if (rc) fprintf(stderr, "weft bench: %s\n", weft_last_error());
    weft_exec_free(p);
    weft_rnn_free(r);
    weft_graph_free(g);
    weft_cell_free(cell);
    return rc;
}
