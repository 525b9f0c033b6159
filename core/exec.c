/* The executor: runs the nodes in index order.  As the reference (from
 * weft_exec_new) every computed node has its own buffer — obviously right,
 * the oracle everything else is checked against.  A compiled executor
 * (weft_exec_compile) runs the optimized graph with the memory plan of
 * core/plan.c: buffers reused once their readers have run. */
#include <math.h>
#include <omp.h>
#include <time.h>
#include <string.h>

#include "graph_internal.h"
#include "op.h"
#include "plan.h"
#include "rows.h"
#include "weft/compile.h"

struct weft_exec {
    weft_graph *g;
    int n;                 /* nodes considered: 0 .. n-1 */
    uint8_t *needed, *fed;
    weft_tensor *val;
    weft_plan plan;
    void **blocks;         /* [plan.n_blocks] */
    uint64_t counter;
    /* A compiled executor runs its own graph `g` (owned) but is addressed
     * with the node ids of the graph it was compiled from: map[] translates. */
    const weft_graph *orig;
    weft_node *map;
    int n_map;
    weft_compile_report report;
    /* How the threads run the schedule (compiled executors): kernel by
     * kernel, the row bands of core/rows.c, or the inter-op workers.  With
     * more than one candidate the first runs try each in turn and the
     * fastest stays (the bits are the same in every mode). */
    int modes[3], n_modes, mode;
    int tune_left;         /* runs still to time; 0: decided */
    double best[3];        /* per candidate */
    weft_rows rows;
    /* Inter-op parallelism: dependencies in CSR form. */
    int workers;
    int *dep_off, *deps;
    uint8_t *done;
    double *profile;       /* ms per node of e->g, added on every run; NULL = off */
    /* The outputs in the caller's ids (the source graph's for a compiled
     * executor), and for weft_exec_set_on_ready: per own node, CSR, the
     * distinct caller ids it answers for (folding can merge outputs). */
    weft_node *outs;
    int n_outs;
    void (*on_ready)(void *ctx, weft_node n);
    void *on_ready_ctx;
    int *ready_off, *ready_ids;
};

void weft_exec_free(weft_exec *e) {
    if (!e) return;
    if (e->map) {
        free(e->map);
        weft_graph_free(e->g);
    }
    weft_rows_free(&e->rows);
    free(e->dep_off);
    free(e->deps);
    free(e->done);
    for (int b = 0; b < e->plan.n_blocks && e->blocks; b++) free(e->blocks[b]);
    free(e->blocks);
    weft_plan_free(&e->plan);
    free(e->val);
    free(e->needed);
    free(e->fed);
    free(e->outs);
    free(e->ready_off);
    free(e->ready_ids);
    free(e);
}

static weft_exec *create(weft_graph *g, const weft_node *outputs, int n, int reuse) {
    if (g->status) {
        weft_error(g->status, "exec: the graph has a build error: %s", g->error);
        return NULL;
    }
    int N = 0;
    for (int k = 0; k < n; k++) {
        if (outputs[k] < 0 || outputs[k] >= g->n) {
            weft_error(WEFT_ERR_ARG, "exec: output %d (%d) is not a node", k, (int)outputs[k]);
            return NULL;
        }
        if (outputs[k] + 1 > N) N = outputs[k] + 1;
    }
    weft_exec *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->g = g;
    e->n = N;
    if (!(e->outs = malloc((size_t)(n ? n : 1) * sizeof *e->outs))) goto oom;
    memcpy(e->outs, outputs, (size_t)n * sizeof *outputs);
    e->n_outs = n;
    e->needed = calloc((size_t)N + 1, 1);
    e->fed = calloc((size_t)N + 1, 1);
    e->val = calloc((size_t)N + 1, sizeof *e->val);
    if (!e->needed || !e->fed || !e->val) goto oom;
    for (int k = 0; k < n; k++) e->needed[outputs[k]] = 1;
    for (int i = N - 1; i >= 0; i--) {
        const weft_node_rec *r = &g->nodes[i];
        if (!e->needed[i]) continue;
        for (int j = 0; j < r->n_in; j++) e->needed[g->edges[r->in_off + j]] = 1;
    }
    if (weft_plan_make(g, e->needed, N, outputs, n, reuse, &e->plan)) {
        weft_exec_free(e);
        return NULL;
    }
    e->report.planned_peak_bytes = e->plan.peak_bytes;
    e->report.unplanned_bytes = e->plan.unplanned_bytes;
    e->report.live_bytes = e->plan.live_bytes;
    if (!(e->blocks = calloc((size_t)e->plan.n_blocks + 1, sizeof *e->blocks))) goto oom;
    /* Not zeroed: the plan reuses every block for many nodes and runs, so no
     * kernel may count on finding zeros (the suite passes with blocks filled
     * with 0xff), and zeroing 100+ MB here was most of a compile's time. */
    for (int b = 0; b < e->plan.n_blocks; b++) {
        /* 64 bytes of slack: BLIS 0.9's small-matrix kernels can read one
         * element past the end of A (flame/blis#821); zeros, so a stray
         * read is never a NaN.  On a cache line: malloc's 16 bytes put
         * every 64-byte vector of a large block across two lines. */
        const size_t bytes = (e->plan.block_bytes[b] + 64 + 63) & ~(size_t)63;
        if (!(e->blocks[b] = aligned_alloc(64, bytes))) goto oom;
        memset((char *)e->blocks[b] + e->plan.block_bytes[b], 0, 64);
    }
    /* Leaves point at graph storage; inputs and computed nodes at their block. */
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (!e->needed[i]) continue;
        weft_tensor *t = &e->val[i];
        t->dtype = r->dtype;
        t->shape = r->shape;
        weft_tensor_contiguous_strides(&r->shape, t->stride);
        if (r->kind == WEFT_NODE_PARAM || r->kind == WEFT_NODE_CONST) t->data = r->data;
        else if (e->plan.block_of[i] >= 0) t->data = e->blocks[e->plan.block_of[i]];
    }
    /* Producers placed into a concat's output: a slice of it (outer first). */
    for (int i = N - 1; i >= 0; i--) {
        int c = e->plan.placed_in[i];
        if (c < 0) continue;
        weft_attr a = {.i = {g->nodes[c].attr.i[0], e->plan.place_at[i],
                             e->plan.place_at[i] + g->nodes[i].shape.dim[g->nodes[c].attr.i[0]]}};
        weft_ops[WEFT_OP_slice].view(&e->val[i], &e->val[c], &a);
    }
    /* Views once now (each run takes them again): the row bands look at them. */
    for (int i = 0; i < N; i++)
        if (e->needed[i] && e->plan.is_view[i] &&
            !weft_ops[g->nodes[i].op].view(&e->val[i], &e->val[weft_in_of(g, i, 0)], &g->nodes[i].attr)) {
            weft_exec_free(e);
            weft_error(WEFT_ERR_GRAPH, "exec: a planned view is not a view");
            return NULL;
        }
    return e;
oom:
    weft_exec_free(e);
    weft_error(WEFT_ERR_NOMEM, "exec: out of memory");
    return NULL;
}

weft_exec *weft_exec_new(weft_graph *g, const weft_node *outputs, int n) { return create(g, outputs, n, 0); }

/* Rough cost of a node, for deciding whether inter-op parallelism pays. */
static double node_cost(const weft_graph *g, int i) {
    const weft_node_rec *r = &g->nodes[i];
    if (r->kind != WEFT_NODE_OP || (weft_ops[r->op].flags & WEFT_OPF_VIEW)) return 0;
    double n = (double)weft_shape_numel(r->shape);
    if (weft_op_is_product(r->op)) {
        weft_shape a = g->nodes[weft_in_of(g, i, 0)].shape;
        n *= (double)a.dim[r->attr.i[0] ? 0 : 1] / 4; /* flops go faster than memory */
    }
    return n + 2000; /* plus a fixed cost per kernel call */
}

/* Auto mode sets the workers up from this estimated parallelism, then
 * (after one untimed run that pays the buffers' first page faults) times
 * WEFT_TUNE_RUNS runs with them and as many without (and with the row
 * bands, if any), alternating, and keeps the fastest.  The estimate alone
 * chose wrong: a 2-layer LSTM
 * (1.7) and a 2-layer bidirectional one (3.7) ran 15-35% slower with the
 * workers, since the layer above waits for the time-batched GEMM of the
 * whole layer below, which then runs on one thread; one bidirectional layer
 * (3.0) ran 25% faster. */
#define WEFT_INTER_OP_MIN_PARALLELISM 1.3
#define WEFT_TUNE_RUNS 2

enum { MODE_KERNELS, MODE_BANDS, MODE_WORKERS }; /* the order of the report's tuned_ms */

/* Dependencies for the inter-op workers: each node's inputs, and for a node
 * writing storage the plan reuses, every reader of the storage's previous
 * value.  Workers are used when the graph's work-weighted parallelism
 * (total cost over critical-path cost) says two chains can run side by side
 * (both directions of a bidirectional layer, for instance). */
static weft_status setup_workers(weft_exec *e, int threads, int mode) {
    const weft_graph *g = e->g;
    int N = e->n;
    double *finish = calloc((size_t)N + 1, sizeof *finish), total = 0, critical = 0;
    int *rcount = calloc((size_t)N + 1, sizeof *rcount), *roff = calloc((size_t)N + 2, sizeof *roff), *rlist = NULL;
    int64_t ndeps = 0;
    if (!finish || !rcount || !roff) goto oom;
    for (int i = 0; i < N; i++) {
        if (!e->needed[i]) continue;
        double start = 0;
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int x = weft_in_of(g, i, k);
            if (finish[x] > start) start = finish[x];
            rcount[e->plan.owner[x]]++;
        }
        double c = node_cost(g, i);
        finish[i] = start + c;
        total += c;
        if (finish[i] > critical) critical = finish[i];
    }
    e->report.parallelism = critical > 0 ? total / critical : 1;
    if (mode < 0 || threads < 2 || (mode == 0 && e->report.parallelism < WEFT_INTER_OP_MIN_PARALLELISM)) {
        free(finish); free(rcount); free(roff);
        return WEFT_OK;
    }
    /* readers of each owner's storage, CSR */
    for (int o = 0; o < N; o++) roff[o + 1] = roff[o] + rcount[o];
    rlist = malloc((size_t)roff[N] * sizeof *rlist + 1);
    if (!rlist) goto oom;
    memset(rcount, 0, (size_t)N * sizeof *rcount);
    for (int i = 0; i < N; i++)
        if (e->needed[i])
            for (int k = 0; k < g->nodes[i].n_in; k++) {
                int o = e->plan.owner[weft_in_of(g, i, k)];
                rlist[roff[o] + rcount[o]++] = i;
            }
    e->dep_off = malloc((size_t)(N + 1) * sizeof *e->dep_off);
    if (!e->dep_off) goto oom;
    for (int pass = 0; pass < 2; pass++) { /* count, then fill */
        ndeps = 0;
        for (int i = 0; i < N; i++) {
            if (pass) e->dep_off[i] = (int)ndeps;
            if (!e->needed[i]) continue;
            for (int k = 0; k < g->nodes[i].n_in; k++) {
                if (pass) e->deps[ndeps] = weft_in_of(g, i, k);
                ndeps++;
            }
            int w = e->plan.war_from[e->plan.owner[i]];
            if (w >= 0 && !e->plan.is_view[i] && g->nodes[i].kind == WEFT_NODE_OP)
                for (int q = roff[w]; q < roff[w + 1]; q++) {
                    if (rlist[q] == i) continue;
                    if (pass) e->deps[ndeps] = rlist[q];
                    ndeps++;
                }
        }
        if (pass) e->dep_off[N] = (int)ndeps;
        else if (!(e->deps = malloc((size_t)ndeps * sizeof *e->deps + 1))) goto oom;
    }
    if (!(e->done = calloc((size_t)N + 1, 1))) goto oom;
    e->workers = threads;
    free(finish); free(rcount); free(roff); free(rlist);
    return WEFT_OK;
oom:
    free(finish); free(rcount); free(roff); free(rlist);
    return weft_error(WEFT_ERR_NOMEM, "exec: out of memory");
}

/* The candidate modes: the row bands when the threads are two or more and
 * core/rows.c finds any, the workers when setup_workers set them up; a
 * mode asked for (inter_op or row_bands 1) is the only one. */
static weft_status setup_modes(weft_exec *e, const weft_compile_report *rep) {
    const int inter_op = rep ? rep->inter_op : 0, bands = rep ? rep->row_bands : 0;
    if (bands >= 0 && weft_get_threads() >= 2) {
        weft_status s = weft_rows_find(e->g, e->needed, e->n, e->val, &e->plan, e->blocks, &e->rows);
        if (s) return s;
    }
    const int can_band = e->rows.n > 0, can_work = e->workers > 1;
    e->n_modes = 0;
    if (inter_op == 1 && can_work) e->modes[e->n_modes++] = MODE_WORKERS;
    else if (bands == 1 && can_band) e->modes[e->n_modes++] = MODE_BANDS;
    else {
        if (can_work) e->modes[e->n_modes++] = MODE_WORKERS; /* first: the choice before any timing */
        if (can_band) e->modes[e->n_modes++] = MODE_BANDS;
        e->modes[e->n_modes++] = MODE_KERNELS;
    }
    e->mode = e->modes[0];
    if (e->n_modes > 1) {
        e->tune_left = WEFT_TUNE_RUNS * e->n_modes + 1; /* the first run, untimed, touches the buffers */
        for (int k = 0; k < 3; k++) e->best[k] = INFINITY;
    }
    return WEFT_OK;
}

static weft_status node_ok(const weft_exec *e, weft_node n, const char *what) {
    if (n < 0 || n >= e->n || !e->needed[n])
        return weft_error(WEFT_ERR_ARG, "%s: node %d is not computed by this executor", what, (int)n);
    return WEFT_OK;
}

/* The executor's own node for a caller's node id. */
static weft_node own(const weft_exec *e, weft_node n) {
    if (!e->map) return n;
    return n >= 0 && n < e->n_map ? e->map[n] : WEFT_NONE;
}

int weft_exec_uses(const weft_exec *e, weft_node n) {
    n = own(e, n);
    return n >= 0 && n < e->n && e->needed[n];
}

weft_exec *weft_exec_adopt(weft_graph *compiled, const weft_node *outputs, int n, const weft_graph *orig,
                           weft_node *map, int n_map, const weft_compile_report *report) {
    weft_node *outs = malloc((size_t)(n ? n : 1) * sizeof *outs);
    if (!outs) return NULL;
    for (int k = 0; k < n; k++) outs[k] = outputs[k] >= 0 && outputs[k] < n_map ? map[outputs[k]] : WEFT_NONE;
    weft_compile_report keep = *report;
    weft_exec *e = create(compiled, outs, n, 1);
    free(outs);
    if (!e) return NULL;
    e->orig = orig;
    e->map = map;
    e->n_map = n_map;
    memcpy(e->outs, outputs, (size_t)n * sizeof *outputs); /* the caller's ids */
    if (setup_workers(e, weft_get_threads(), report ? report->inter_op : 0) || setup_modes(e, report)) {
        weft_exec_free(e);
        return NULL;
    }
    keep.workers = e->workers;
    keep.bands = e->rows.n;
    for (int b = 0; b < e->rows.n; b++) keep.band_barriers += e->rows.barriers[b];
    keep.bands_used = e->mode == MODE_BANDS;
    keep.parallelism = e->report.parallelism;
    keep.planned_peak_bytes = e->report.planned_peak_bytes;
    keep.unplanned_bytes = e->report.unplanned_bytes;
    keep.live_bytes = e->report.live_bytes;
    e->report = keep;
    return e;
}

const weft_graph *weft_exec_graph(const weft_exec *e) { return e->g; }
const weft_compile_report *weft_exec_report(const weft_exec *e) { return &e->report; }

weft_status weft_exec_feed(weft_exec *e, weft_node input, const void *data, size_t bytes) {
    char d[160];
    if (e->map) {
        /* An input the compiled outputs do not need: check and ignore. */
        if (input < 0 || input >= e->n_map || e->orig->nodes[input].kind != WEFT_NODE_INPUT)
            return weft_error(WEFT_ERR_ARG, "feed: node %d is not an input", (int)input);
        const weft_node_rec *r = &e->orig->nodes[input];
        size_t want = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
        if (bytes != want)
            return weft_error(WEFT_ERR_SHAPE, "feed: %s takes %zu bytes, given %zu",
                              weft_node_desc(e->orig, input, d, sizeof d), want, bytes);
        if (!weft_exec_uses(e, input)) return WEFT_OK;
        input = own(e, input);
    }
    weft_status s = node_ok(e, input, "feed");
    if (s) return s;
    const weft_node_rec *r = &e->g->nodes[input];
    if (r->kind != WEFT_NODE_INPUT)
        return weft_error(WEFT_ERR_ARG, "feed: %s is not an input", weft_node_desc(e->g, input, d, sizeof d));
    size_t want = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
    if (bytes != want)
        return weft_error(WEFT_ERR_SHAPE, "feed: %s takes %zu bytes, given %zu",
                          weft_node_desc(e->g, input, d, sizeof d), want, bytes);
    memcpy(e->val[input].data, data, bytes);
    e->fed[input] = 1;
    return WEFT_OK;
}

/* One node: a view's tensor, or its kernel into its planned storage. */
static weft_status run_node(weft_exec *e, int i, const weft_kctx *ctx) {
    char d[160];
    weft_graph *g = e->g;
    const weft_node_rec *r = &g->nodes[i];
    if (r->kind == WEFT_NODE_INPUT && !e->fed[i])
        return weft_error(WEFT_ERR_ARG, "run: %s was not fed", weft_node_desc(g, i, d, sizeof d));
    if (r->kind != WEFT_NODE_OP) return WEFT_OK;
    const weft_op_def *def = &weft_ops[r->op];
    weft_tensor ins_small[8], *ins = r->n_in <= 8 ? ins_small : malloc((size_t)r->n_in * sizeof *ins);
    if (!ins) return weft_error(WEFT_ERR_NOMEM, "run: out of memory");
    for (int j = 0; j < r->n_in; j++) ins[j] = e->val[g->edges[r->in_off + j]];
    weft_status s = WEFT_OK;
    if (e->plan.is_view[i]) {
        if (!def->view(&e->val[i], ins, &r->attr)) s = weft_error(WEFT_ERR_GRAPH, "a planned view is not a view");
    } else if (e->profile) {
        double t0 = weft_now_ms();
        s = def->kernel(&e->val[i], ins, r->n_in, &r->attr, ctx);
        e->profile[i] += weft_now_ms() - t0;
    } else {
        s = def->kernel(&e->val[i], ins, r->n_in, &r->attr, ctx);
    }
    if (ins != ins_small) free(ins);
    if (s != WEFT_OK)
        return weft_error(s, "run: node %d (%s): %s", i, weft_node_desc(g, i, d, sizeof d), weft_last_error());
    return WEFT_OK;
}

/* Inter-op parallel run: workers claim nodes in schedule order and start
 * each once its inputs are computed and the readers of the storage it
 * overwrites are done (the plan's write-after-read edges).  Kernels run
 * single-threaded here, so results are those of a 1-thread run. */
static weft_status run_workers(weft_exec *e, const weft_kctx *base) {
    int next = 0, failed_at = e->n;
    weft_status failed = WEFT_OK;
    char msg[1024] = "";
    memset(e->done, 0, (size_t)e->n);
    #pragma omp parallel num_threads(e->workers)
    {
        weft_kctx ctx = *base;
        ctx.threads = 1;
        for (;;) {
            int i = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
            if (i >= e->n) break;
            if (e->needed[i]) {
                for (int k = e->dep_off[i]; k < e->dep_off[i + 1]; k++)
                    while (!__atomic_load_n(&e->done[e->deps[k]], __ATOMIC_ACQUIRE)) __builtin_ia32_pause();
                weft_status s = __atomic_load_n(&failed, __ATOMIC_RELAXED) ? WEFT_OK : run_node(e, i, &ctx);
                if (s) {
                    #pragma omp critical(weft_exec_error)
                    if (i < failed_at) { /* report the first failing node, as the sequential run does */
                        failed_at = i;
                        failed = s;
                        snprintf(msg, sizeof msg, "%s", weft_last_error());
                    }
                }
            }
            __atomic_store_n(&e->done[i], 1, __ATOMIC_RELEASE);
        }
    }
    return failed ? weft_error(failed, "%s", msg) : WEFT_OK;
}

weft_status weft_exec_set_on_ready(weft_exec *e, void (*fn)(void *ctx, weft_node n), void *ctx) {
    free(e->ready_off);
    free(e->ready_ids);
    e->ready_off = e->ready_ids = NULL;
    e->on_ready = NULL;
    e->on_ready_ctx = NULL;
    if (!fn) return WEFT_OK;
    e->ready_off = calloc((size_t)e->n + 2, sizeof *e->ready_off);
    e->ready_ids = malloc((size_t)(e->n_outs ? e->n_outs : 1) * sizeof *e->ready_ids);
    if (!e->ready_off || !e->ready_ids) {
        free(e->ready_off);
        free(e->ready_ids);
        e->ready_off = e->ready_ids = NULL;
        return weft_error(WEFT_ERR_NOMEM, "exec: out of memory");
    }
    /* distinct caller ids with a node here, counted then placed by own node */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < e->n_outs; k++) {
            int dup = 0;
            for (int j = 0; j < k && !dup; j++) dup = e->outs[j] == e->outs[k];
            weft_node o = own(e, e->outs[k]);
            if (dup || o < 0 || o >= e->n) continue;
            if (pass) e->ready_ids[e->ready_off[o + 1]++] = e->outs[k];
            else e->ready_off[o + 2]++;
        }
        if (!pass)
            for (int i = 0; i < e->n; i++) e->ready_off[i + 2] += e->ready_off[i + 1];
    }
    e->on_ready = fn;
    e->on_ready_ctx = ctx;
    return WEFT_OK;
}

/* Band b of the row bands: its views (and inputs' checks) first, then one
 * parallel region in which thread t runs its rows of every kernel, in
 * order, on one thread each, meeting the others at the band's barriers.
 * A thread whose kernel fails runs no more kernels but still meets the
 * others; the first failing node (in schedule order) is reported. */
static weft_status run_band(weft_exec *e, int b, const weft_kctx *base) {
    const weft_graph *g = e->g;
    const int i0 = e->rows.start[b], i1 = e->rows.end[b];
    const int64_t M = e->rows.rows[b];
    for (int i = i0; i < i1; i++)
        if (e->needed[i] && (e->plan.is_view[i] || g->nodes[i].kind != WEFT_NODE_OP)) {
            weft_status s = run_node(e, i, base);
            if (s) return s;
        }
    int nt = weft_get_threads(), failed_at = i1;
    if (nt > M) nt = (int)M;
    weft_status failed = WEFT_OK;
    char msg[1024] = "";
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), nth = omp_get_num_threads();
        const int64_t r0 = M * t / nth, r1 = M * (t + 1) / nth;
        weft_kctx ctx = *base;
        ctx.threads = 1;
        int ok = 1;
        for (int i = i0; i < i1; i++) {
            const weft_node_rec *r = &g->nodes[i];
            if (!e->needed[i] || e->plan.is_view[i] || r->kind != WEFT_NODE_OP) continue;
            if (e->rows.barrier[i]) {
                #pragma omp barrier
            }
            if (!ok || r0 == r1) continue;
            weft_tensor ins[WEFT_OP_ROWS_MAX_INPUTS], out = weft_rows_of(&e->val[i], r0, r1);
            for (int k = 0; k < r->n_in; k++) {
                const weft_tensor *x = &e->val[g->edges[r->in_off + k]];
                ins[k] = e->rows.whole[i] >> k & 1 ? *x : weft_rows_of(x, r0, r1);
            }
            const double t0 = e->profile && t == 0 ? weft_now_ms() : 0;
            weft_status s = weft_ops[r->op].kernel(&out, ins, r->n_in, &r->attr, &ctx);
            if (e->profile && t == 0) e->profile[i] += weft_now_ms() - t0; /* thread 0's rows */
            if (s) {
                ok = 0;
                #pragma omp critical(weft_exec_error)
                if (i < failed_at) {
                    char d[160];
                    failed_at = i;
                    failed = s;
                    snprintf(msg, sizeof msg, "run: node %d (%s): %s", i, weft_node_desc(g, i, d, sizeof d),
                             weft_last_error());
                }
            }
        }
    }
    return failed ? weft_error(failed, "%s", msg) : WEFT_OK;
}

/* Kernel by kernel in schedule order, or band by band where there are
 * bands; the ready callback after each node (after a band, for its nodes). */
static weft_status run_in_order(weft_exec *e, const weft_kctx *ctx, int bands) {
    for (int i = 0; i < e->n;) {
        int b = bands ? e->rows.band_at[i] : -1, next = b >= 0 ? e->rows.end[b] : i + 1;
        if (b >= 0) {
            weft_status s = run_band(e, b, ctx);
            if (s) return s;
        } else if (e->needed[i]) {
            weft_status s = run_node(e, i, ctx);
            if (s) return s;
        }
        if (e->on_ready)
            for (int j = i; j < next; j++)
                for (int q = e->ready_off[j]; q < e->ready_off[j + 1]; q++)
                    e->on_ready(e->on_ready_ctx, e->ready_ids[q]);
        i = next;
    }
    return WEFT_OK;
}

weft_status weft_exec_run(weft_exec *e) {
    weft_kctx ctx = {.counter = e->counter, .g = e->g};
    const int tuning = e->tune_left > 0 && !e->on_ready && !e->profile;
    const int warm = tuning && e->tune_left == WEFT_TUNE_RUNS * e->n_modes + 1; /* page faults: not timed */
    int mode = tuning && !warm ? e->modes[e->tune_left % e->n_modes] : e->mode;
    /* Profiled, the workers' kernels would be timed while others run beside
     * them: kernel by kernel instead.  A band times thread 0's rows. */
    if (mode == MODE_WORKERS && (e->profile || e->on_ready)) mode = MODE_KERNELS;
    const double t0 = tuning ? weft_now_ms() : 0;
    weft_status s = mode == MODE_WORKERS ? run_workers(e, &ctx) : run_in_order(e, &ctx, mode == MODE_BANDS);
    if (s) return s;
    if (tuning) {
        const double t = weft_now_ms() - t0;
        if (!warm && t < e->best[mode]) e->best[mode] = t;
        if (--e->tune_left == 0) {
            for (int k = 0; k < e->n_modes; k++)
                if (e->best[e->modes[k]] < e->best[e->mode]) e->mode = e->modes[k];
            for (int k = 0; k < e->n_modes; k++) e->report.tuned_ms[e->modes[k]] = e->best[e->modes[k]];
            if (e->mode != MODE_WORKERS) e->report.workers = 0; /* the kernels share the threads from now on */
            e->report.bands_used = e->mode == MODE_BANDS;
        }
    }
    e->counter++;
    return WEFT_OK;
}

weft_status weft_exec_value(weft_exec *e, weft_node n, weft_tensor *out) {
    n = own(e, n);
    weft_status s = node_ok(e, n, "value");
    if (s) return s;
    *out = e->val[n];
    return WEFT_OK;
}

weft_status weft_exec_read(weft_exec *e, weft_node n, void *dst, size_t bytes) {
    n = own(e, n);
    weft_status s = node_ok(e, n, "read");
    if (s) return s;
    const weft_tensor *t = &e->val[n];
    size_t want = (size_t)weft_shape_numel(t->shape) * weft_dtype_size(t->dtype);
    if (bytes != want) return weft_error(WEFT_ERR_SHAPE, "read: node %d has %zu bytes, %zu asked", (int)n, want, bytes);
    if (!t->data) return weft_error(WEFT_ERR_ARG, "read: node %d has not been computed", (int)n);
    weft_tensor_copy_to(t, dst);
    return WEFT_OK;
}

void weft_exec_set_profile(weft_exec *e, double *ms_per_node) { e->profile = ms_per_node; }
/* The bands lie in schedule order: the last one starting at or before n
 * holds n if any does (a binary search; the profile asks for every node). */
int weft_exec_in_band(const weft_exec *e, weft_node n) {
    if (e->mode != MODE_BANDS) return 0;
    int lo = 0, hi = e->rows.n; /* bands [0, lo) start at or before n, bands [hi, rows.n) after it */
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (e->rows.start[mid] <= n) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && n < e->rows.end[lo - 1];
}

uint64_t weft_exec_counter(const weft_exec *e) { return e->counter; }
void weft_exec_set_counter(weft_exec *e, uint64_t c) { e->counter = c; }
