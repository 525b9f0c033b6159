/* oneDNN's fused RNN primitive timed on the same training step as `weft
 * bench`: forward (training) and backward with input and weight gradients,
 * f32, no optimizer update, h0 = c0 = 0, the gradient of the output
 * sequence only (PyTorch's `out.backward(go)`).  The speed target
 * is this primitive; bench/compare_pytorch.py runs it beside weft when it
 * is built (Debian: libdnnl-dev, oneDNN 2.6; CMake builds it as
 * build/bench_onednn when it finds the library).
 *
 *     OMP_NUM_THREADS=2 build/bench_onednn --cell lstm --seq-len 80 --batch 50 \
 *         --input-size 128 --hidden-size 128 [--bidirectional] [--iters 10] [--json]
 *
 * GRU is oneDNN's linear-before-reset GRU, the one with PyTorch's
 * semantics.  The weights are in the layouts the primitives choose
 * (`format_tag any`); when the backward's layout differs from the
 * forward's, the step includes the reorder, since a training step changes
 * the weights and a real user pays it every step.  Threads: oneDNN runs on
 * OpenMP (libgomp) and takes OMP_NUM_THREADS. */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                                                        \
    do {                                                                                                   \
        dnnl_status_t s_ = (call);                                                                         \
        if (s_ != dnnl_success) {                                                                          \
            fprintf(stderr, "bench_onednn: %s failed (status %d) at line %d\n", #call, (int)s_, __LINE__); \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The arguments a primitive takes, each with its memory (NULL when absent). */
enum { MAX_ARGS = 32 };
typedef struct {
    int n;
    dnnl_exec_arg_t a[MAX_ARGS];
} args_t;

static dnnl_memory_t find(const args_t *as, int arg) {
    for (int i = 0; i < as->n; i++)
        if (as->a[i].arg == arg) return as->a[i].memory;
    return NULL;
}

/* Memory for every argument in `ids` that the primitive `pd` takes: the
 * memory of `share` when it has the argument in the same layout, else new
 * memory filled with small values. */
static void bind(args_t *as, const_dnnl_primitive_desc_t pd, const int *ids, int nids, const args_t *share,
                 dnnl_engine_t eng, unsigned *seed) {
    for (int i = 0; i < nids; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, ids[i]);
        if (!md || md->ndims == 0) continue;
        dnnl_memory_t m = share ? find(share, ids[i]) : NULL;
        if (m) {
            const dnnl_memory_desc_t *have;
            CHECK(dnnl_memory_get_memory_desc(m, &have));
            if (!dnnl_memory_desc_equal(have, md)) m = NULL;
        }
        if (!m) {
            CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
            void *p;
            CHECK(dnnl_memory_get_data_handle(m, &p));
            size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
            float *f = p;
            for (size_t j = 0; j < n; j++) {
                *seed = *seed * 1664525u + 1013904223u;
                f[j] = ((float)(*seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
            }
        }
        if (as->n == MAX_ARGS) {
            fprintf(stderr, "bench_onednn: too many arguments\n");
            exit(1);
        }
        as->a[as->n].arg = ids[i];
        as->a[as->n].memory = m;
        as->n++;
    }
}

static void usage(void) {
    fprintf(stderr, "usage: bench_onednn --cell lstm|gru --seq-len T --batch B --input-size I --hidden-size H\n"
                    "                    [--bidirectional] [--iters K] [--json]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *cell = "lstm";
    long T = 0, B = 0, I = 0, H = 0;
    int iters = 10, bidir = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--bidirectional")) bidir = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (i + 1 < argc && !strcmp(a, "--cell")) cell = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--seq-len")) T = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(a, "--batch")) B = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(a, "--input-size")) I = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(a, "--hidden-size")) H = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(a, "--iters")) iters = atoi(argv[++i]);
        else usage();
    }
    int lstm = !strcmp(cell, "lstm");
    if ((!lstm && strcmp(cell, "gru")) || T <= 0 || B <= 0 || I <= 0 || H <= 0 || iters <= 0) usage();
    long D = bidir ? 2 : 1, G = lstm ? 4 : 3, GB = 4; /* the LSTM: 4 gates; the lbr GRU: 3 gates, 4 bias rows */
    dnnl_rnn_direction_t dir = bidir ? dnnl_bidirectional_concat : dnnl_unidirectional_left2right;

    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));

    dnnl_memory_desc_t src, wl, wi, bias, dst, dsrc, dwl, dwi, dbias, ddst;
    dnnl_dims_t d_src = {T, B, I}, d_dst = {T, B, D * H}, d_wl = {1, D, I, G, H}, d_wi = {1, D, H, G, H},
                d_b = {1, D, GB, H};
    CHECK(dnnl_memory_desc_init_by_tag(&src, 3, d_src, dnnl_f32, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag(&dst, 3, d_dst, dnnl_f32, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag(&wl, 5, d_wl, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wi, 5, d_wi, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&bias, 4, d_b, dnnl_f32, dnnl_ldgo));
    dsrc = src, ddst = dst, dwl = wl, dwi = wi, dbias = bias;

    dnnl_rnn_desc_t fd, bd;
    if (lstm) {
        CHECK(dnnl_lstm_forward_desc_init(&fd, dnnl_forward_training, dir, &src, NULL, NULL, &wl, &wi, &bias, &dst,
                                          NULL, NULL, 0));
        CHECK(dnnl_lstm_backward_desc_init(&bd, dnnl_backward, dir, &src, NULL, NULL, &wl, &wi, &bias, &dst, NULL,
                                           NULL, &dsrc, NULL, NULL, &dwl, &dwi, &dbias, &ddst, NULL, NULL, 0));
    } else {
        CHECK(dnnl_lbr_gru_forward_desc_init(&fd, dnnl_forward_training, dir, &src, NULL, &wl, &wi, &bias, &dst,
                                             NULL, 0));
        CHECK(dnnl_lbr_gru_backward_desc_init(&bd, dnnl_backward, dir, &src, NULL, &wl, &wi, &bias, &dst, NULL,
                                              &dsrc, NULL, &dwl, &dwi, &dbias, &ddst, NULL, 0));
    }
    dnnl_primitive_desc_t fpd, bpd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    dnnl_primitive_t fwd, bwd;
    CHECK(dnnl_primitive_create(&fwd, fpd));
    CHECK(dnnl_primitive_create(&bwd, bpd));

    static const int fwd_ids[] = {DNNL_ARG_SRC_LAYER, DNNL_ARG_WEIGHTS_LAYER, DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_BIAS,
                                  DNNL_ARG_DST_LAYER, DNNL_ARG_WORKSPACE, DNNL_ARG_SCRATCHPAD};
    static const int bwd_ids[] = {DNNL_ARG_SRC_LAYER,           DNNL_ARG_WEIGHTS_LAYER,      DNNL_ARG_WEIGHTS_ITER,
                                  DNNL_ARG_BIAS,                DNNL_ARG_DST_LAYER,          DNNL_ARG_WORKSPACE,
                                  DNNL_ARG_DIFF_SRC_LAYER,      DNNL_ARG_DIFF_WEIGHTS_LAYER, DNNL_ARG_DIFF_WEIGHTS_ITER,
                                  DNNL_ARG_DIFF_BIAS,           DNNL_ARG_DIFF_DST_LAYER,     DNNL_ARG_SCRATCHPAD};
    unsigned seed = 12345;
    args_t fa = {0}, ba = {0};
    bind(&fa, fpd, fwd_ids, (int)(sizeof fwd_ids / sizeof *fwd_ids), NULL, eng, &seed);
    bind(&ba, bpd, bwd_ids, (int)(sizeof bwd_ids / sizeof *bwd_ids), &fa, eng, &seed);
    if (find(&ba, DNNL_ARG_WORKSPACE) != find(&fa, DNNL_ARG_WORKSPACE)) {
        fprintf(stderr, "bench_onednn: the backward's workspace layout differs from the forward's\n");
        return 1;
    }
    /* Weights whose backward layout differs: a reorder per step. */
    dnnl_primitive_t reorder[2] = {NULL, NULL};
    dnnl_memory_t rsrc[2], rdst[2];
    int nre = 0;
    static const int wids[2] = {DNNL_ARG_WEIGHTS_LAYER, DNNL_ARG_WEIGHTS_ITER};
    for (int k = 0; k < 2; k++) {
        dnnl_memory_t a = find(&fa, wids[k]), b = find(&ba, wids[k]);
        if (a == b) continue;
        const dnnl_memory_desc_t *ma, *mb;
        CHECK(dnnl_memory_get_memory_desc(a, &ma));
        CHECK(dnnl_memory_get_memory_desc(b, &mb));
        dnnl_primitive_desc_t rpd;
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, ma, eng, mb, eng, NULL));
        CHECK(dnnl_primitive_create(&reorder[nre], rpd));
        CHECK(dnnl_primitive_desc_destroy(rpd));
        rsrc[nre] = a, rdst[nre] = b, nre++;
    }

    int warm = 3, n = warm + iters;
    double *ms = malloc(sizeof(double) * (size_t)n);
    for (int it = 0; it < n; it++) {
        double t0 = now_ms();
        CHECK(dnnl_primitive_execute(fwd, stream, fa.n, fa.a));
        for (int k = 0; k < nre; k++) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, rsrc[k]}, {DNNL_ARG_TO, rdst[k]}};
            CHECK(dnnl_primitive_execute(reorder[k], stream, 2, ra));
        }
        CHECK(dnnl_primitive_execute(bwd, stream, ba.n, ba.a));
        CHECK(dnnl_stream_wait(stream));
        ms[it] = now_ms() - t0;
    }
    qsort(ms + warm, (size_t)iters, sizeof(double), cmp_double);
    double med = iters % 2 ? ms[warm + iters / 2] : 0.5 * (ms[warm + iters / 2 - 1] + ms[warm + iters / 2]);
    double gflops = 6.0 * (double)T * (double)B * (double)(I + H) * (double)G * (double)H * (double)D / med / 1e6;
    const dnnl_version_t *v = dnnl_version();
    if (json)
        printf("{\"ms_per_step\": %.4f, \"best_ms\": %.4f, \"gflops\": %.3f, \"reorders\": %d, "
               "\"version\": \"%d.%d.%d\"}\n",
               med, ms[warm], gflops, nre, v->major, v->minor, v->patch);
    else
        printf("oneDNN %d.%d.%d %s T=%ld B=%ld I=%ld H=%ld%s: %.3f ms/step (best %.3f), %.1f GFLOP/s, "
               "%d weight reorder(s) per step\n",
               v->major, v->minor, v->patch, cell, T, B, I, H, bidir ? " bidirectional" : "", med, ms[warm], gflops,
               nre);
    return 0;
}
