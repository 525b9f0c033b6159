/* weft — data-parallel training over MPI (see include/weft/dist.h).
 *
 * One code path: the logic (hashing, packing, weighting, deadlines) is
 * written once; only the three MPI primitives it needs (start an
 * allreduce, start an allgather, test requests) change with WEFT_HAVE_MPI.
 * Without MPI there is one rank, every collective returns at once and no
 * primitive is ever reached.
 *
 * Why the waits poll: a blocking MPI_Allreduce never returns when a peer
 * hangs (and Open MPI only notices peers that exit), so every collective
 * is started non-blocking and MPI_Testall'ed until a deadline.  Polling
 * also drives Open MPI's progress engine, which has no thread of its own. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/dist.h"

#ifdef WEFT_HAVE_MPI
#include <mpi.h>
typedef MPI_Request dist_req;
#else
typedef int dist_req;
#endif

static int g_rank = 0, g_size = 1, g_we_initialized = 0;
static double g_timeout = -1; /* < 0: not read from the environment yet */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int weft_dist_compiled(void) {
#ifdef WEFT_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

const char *weft_dist_library(void) {
#ifdef WEFT_HAVE_MPI
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!buf[0] && MPI_Get_library_version(buf, &len) == MPI_SUCCESS) {
        buf[len < (int)sizeof buf ? len : (int)sizeof buf - 1] = 0;
        buf[strcspn(buf, ",\n")] = 0; /* "Open MPI v4.1.4" without build details */
    }
    return buf[0] ? buf : "MPI";
#else
    return "MPI not compiled in";
#endif
}

int weft_dist_launched(void) {
    const char *force = getenv("WEFT_DIST");
    if (force && *force) return strcmp(force, "0") != 0;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", "MPI_LOCALNRANKS", NULL};
    for (const char *const *v = vars; *v; v++)
        if (getenv(*v)) return 1;
    return 0;
}

#ifdef WEFT_HAVE_MPI
static weft_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return weft_error(WEFT_ERR_IO, "MPI: rank %d of %d: %s: %s", g_rank, g_size, what, msg);
}
#endif

weft_status weft_dist_init(void) {
#ifdef WEFT_HAVE_MPI
    int done = 0, rc;
    MPI_Initialized(&done);
    if (!done) {
        int provided;
        /* only the thread that calls weft talks to MPI (OpenMP workers never do) */
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
            return mpi_fail(rc, "MPI_Init_thread");
        g_we_initialized = 1;
    }
    /* errors come back as codes (made into weft errors), not as an abort
     * deep inside MPI with no word of what weft was doing */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return WEFT_OK;
#else
    return weft_error(WEFT_ERR_UNSUPPORTED, "MPI not compiled in (rebuild weft with "
                      "libopenmpi-dev installed)");
#endif
}

void weft_dist_finalize(void) {
#ifdef WEFT_HAVE_MPI
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_we_initialized && !fin) MPI_Finalize();
#endif
    g_we_initialized = 0;
    g_rank = 0;
    g_size = 1;
}

int weft_dist_rank(void) { return g_rank; }
int weft_dist_size(void) { return g_size; }

void weft_dist_set_timeout(double seconds) { g_timeout = seconds > 0 ? seconds : 120; }

double weft_dist_timeout(void) {
    if (g_timeout < 0) {
        const char *e = getenv("WEFT_DIST_TIMEOUT");
        weft_dist_set_timeout(e ? strtod(e, NULL) : 0);
    }
    return g_timeout;
}

void weft_dist_abort(int code, const char *message) {
    (void)code; /* used only with MPI */
    if (g_size <= 1) return;
    fprintf(stderr, "weft: rank %d of %d: %s; aborting every rank\n", g_rank, g_size,
            message ? message : "error");
    fflush(stderr);
#ifdef WEFT_HAVE_MPI
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
}

/* ------------------------------------------------------- MPI primitives */

/* v[0..n) of dtype t (WEFT_F32 or WEFT_F64) summed in place over the ranks */
static weft_status start_sum(void *v, int n, weft_dtype t, dist_req *r) {
#ifdef WEFT_HAVE_MPI
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, n, t == WEFT_F64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD, r);
    return rc == MPI_SUCCESS ? WEFT_OK : mpi_fail(rc, "MPI_Iallreduce");
#else
    (void)v, (void)n, (void)t, (void)r;
    return weft_error(WEFT_ERR_UNSUPPORTED, "MPI not compiled in");
#endif
}

static weft_status start_gather_u64(const uint64_t *mine, uint64_t *all, dist_req *r) {
#ifdef WEFT_HAVE_MPI
    int rc = MPI_Iallgather(mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD, r);
    return rc == MPI_SUCCESS ? WEFT_OK : mpi_fail(rc, "MPI_Iallgather");
#else
    (void)mine, (void)all, (void)r;
    return weft_error(WEFT_ERR_UNSUPPORTED, "MPI not compiled in");
#endif
}

/* Waits for r[0..n) until the deadline.  Large reductions go in many
 * fragments, and each needs a test call here to move on (no progress
 * thread), so for the first 50 ms the loop only yields the core between
 * tests (sleeping even 50 us per test made a 3.5 MB reduction 3x slower);
 * after that a peer is late, not busy, and the loop sleeps 1 ms between
 * tests so that waiting costs no CPU. */
static weft_status wait_all(dist_req *r, int n, const char *what) {
    if (n == 0) return WEFT_OK;
#ifdef WEFT_HAVE_MPI
    double t0 = now(), limit = weft_dist_timeout();
    for (;;) {
        int flag = 0, rc = MPI_Testall(n, r, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        if (flag) return WEFT_OK;
        double el = now() - t0;
        if (el > limit)
            return weft_error(WEFT_ERR_IO, "MPI: rank %d of %d: %s: no answer from the other "
                              "ranks for %.0f s: a rank died or hangs, or the network is down "
                              "(WEFT_DIST_TIMEOUT sets the limit)", g_rank, g_size, what, limit);
        if (el < 0.05)
            sched_yield();
        else
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
#else
    (void)r;
    return weft_error(WEFT_ERR_UNSUPPORTED, "%s: MPI not compiled in", what);
#endif
}

/* One look at r[0..n) without waiting: moves the reductions on (Open MPI
 * has no progress thread, so a reduction started during the backward pass
 * advances only while MPI is called). */
static weft_status test_all(dist_req *r, int n, const char *what) {
#ifdef WEFT_HAVE_MPI
    int flag = 0, rc = n ? MPI_Testall(n, r, &flag, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    return rc == MPI_SUCCESS ? WEFT_OK : mpi_fail(rc, what);
#else
    (void)r, (void)n;
    return weft_error(WEFT_ERR_UNSUPPORTED, "%s: MPI not compiled in", what);
#endif
}

/* ---------------------------------------------------------- collectives */

/* FNV-1a, 64 bits: a mismatch detector, not a cryptographic hash */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define HASH_SEED 0xcbf29ce484222325ull

static weft_status check_hash(uint64_t mine, const char *what) {
    if (g_size == 1) return WEFT_OK;
    uint64_t *all = calloc((size_t)g_size, sizeof *all);
    if (!all) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    dist_req r;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "comparing %s", what);
    weft_status s = start_gather_u64(&mine, all, &r);
    if (!s) s = wait_all(&r, 1, ctx);
    if (!s) {
        char list[128] = "";
        int bad = 0;
        size_t len = 0;
        for (int i = 1; i < g_size; i++)
            if (all[i] != all[0] && ++bad <= 8 && len < sizeof list - 16)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", bad > 1 ? ", " : "", i);
        if (bad)
            s = weft_error(WEFT_ERR_ARG, "ranks disagree on %s: rank%s %s%s differ%s from rank 0",
                           what, bad > 1 ? "s" : "", list, bad > 8 ? ", ..." : "",
                           bad > 1 ? "" : "s");
    }
    free(all);
    return s;
}

weft_status weft_dist_check_same(const void *data, size_t bytes, const char *what) {
    return check_hash(hash_bytes(HASH_SEED, data, bytes), what);
}

weft_status weft_dist_sum(double *v, int n) {
    if (g_size == 1 || n <= 0) return WEFT_OK;
    dist_req r;
    weft_status s = start_sum(v, n, WEFT_F64, &r);
    return s ? s : wait_all(&r, 1, "summing results over the ranks");
}

/* ------------------------------------------------------ gradient averager */

enum { NGROUP = 2 }; /* flat buffers: f32 gradients, f64 gradients */
static const weft_dtype group_dtype[NGROUP] = {WEFT_F32, WEFT_F64};

struct weft_dist_avg {
    size_t bucket_bytes;
    int64_t check_every;
    double weight;
    int profile;
    void *flat[NGROUP];
    size_t cap[NGROUP];       /* elements */
    dist_req *reqs;
    int reqs_cap;
    uint64_t layout;          /* hash of the last gradient layout checked across ranks */
    int layout_checked;
    weft_dist_stats st;
    /* The step being averaged: opened by its first gradient (or by the
     * hook), gradients packed into flat[] in the order they arrive, each
     * bucket started when full; closed by the hook. */
    int open, k;              /* k: requests started, reqs[0] the weights' sum */
    double wsum;
    size_t packed[NGROUP], started[NGROUP];
    size_t *off;              /* per gradient: where it is in flat[its group] */
    unsigned char *in;        /* per gradient: packed this step */
    int n_alloc;
    double t_first;           /* when this step's first bucket started; 0 = none yet */
    char what[96];
};

weft_status weft_dist_avg_new(size_t bucket_bytes, int64_t check_every, weft_dist_avg **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return weft_error(WEFT_ERR_NOMEM, "gradient averager: out of memory");
    (*out)->bucket_bytes = bucket_bytes ? bucket_bytes : (size_t)4 << 20;
    (*out)->check_every = check_every > 0 ? check_every : 100;
    (*out)->weight = 1;
    return WEFT_OK;
}

void weft_dist_avg_free(weft_dist_avg *a) {
    if (!a) return;
    for (int g = 0; g < NGROUP; g++) free(a->flat[g]);
    free(a->reqs);
    free(a->off);
    free(a->in);
    free(a);
}

void weft_dist_avg_set_weight(weft_dist_avg *a, double w) { a->weight = w; }

void weft_dist_avg_stats(const weft_dist_avg *a, weft_dist_stats *s) { *s = a->st; }

void weft_dist_avg_set_profile(weft_dist_avg *a, int on) { a->profile = on; }

static int group_of(weft_dtype t) {
    for (int g = 0; g < NGROUP; g++)
        if (group_dtype[g] == t) return g;
    return -1;
}

/* The layout (count, dtypes, sizes) must agree before any bucket is
 * reduced: otherwise ranks would sum unrelated numbers; and the values
 * are compared on the first call and every check_every calls. */
static weft_status check_ranks(weft_dist_avg *a, const weft_grad_set *gs) {
    uint64_t h = hash_bytes(HASH_SEED, &gs->n, sizeof gs->n);
    h = hash_bytes(h, gs->dtypes, sizeof *gs->dtypes * (size_t)gs->n);
    h = hash_bytes(h, gs->bytes, sizeof *gs->bytes * (size_t)gs->n);
    weft_status s = WEFT_OK;
    if (!a->layout_checked || h != a->layout) {
        s = check_hash(h, "the parameters' number, dtypes and sizes (a different model or "
                          "vocabulary)");
        a->layout = h;
        a->layout_checked = !s;
    }
    if (!s && a->st.calls % a->check_every == 0) {
        uint64_t v = HASH_SEED;
        for (int i = 0; i < gs->n; i++) v = hash_bytes(v, gs->params[i], gs->bytes[i]);
        char what[160];
        snprintf(what, sizeof what, "the parameter values before step %" PRId64 " (different "
                 "checkpoints or data, or replicas that drifted apart)", gs->step + 1);
        s = check_hash(v, what);
    }
    return s;
}

static weft_status reserve(weft_dist_avg *a, const size_t total[NGROUP], int nreq, int n) {
    if (n > a->n_alloc) {
        size_t *o = realloc(a->off, sizeof *o * (size_t)n);
        if (o) a->off = o;
        unsigned char *in = realloc(a->in, (size_t)n);
        if (in) a->in = in;
        if (!o || !in) return weft_error(WEFT_ERR_NOMEM, "gradient averager: out of memory");
        a->n_alloc = n;
    }
    for (int g = 0; g < NGROUP; g++)
        if (total[g] > a->cap[g]) {
            void *p = realloc(a->flat[g], total[g] * weft_dtype_size(group_dtype[g]));
            if (!p) return weft_error(WEFT_ERR_NOMEM, "gradient averager: out of memory");
            a->flat[g] = p;
            a->cap[g] = total[g];
        }
    if (nreq > a->reqs_cap) {
        dist_req *r = realloc(a->reqs, sizeof *r * (size_t)nreq);
        if (!r) return weft_error(WEFT_ERR_NOMEM, "gradient averager: out of memory");
        a->reqs = r;
        a->reqs_cap = nreq;
    }
    return WEFT_OK;
}

/* dst[i] = src[i] * k in dtype t (k = 1: a plain copy) */
static void scaled_copy(void *dst, const void *src, size_t n, weft_dtype t, double k) {
    if (k == 1) {
        memcpy(dst, src, n * weft_dtype_size(t));
    } else if (t == WEFT_F32) {
        float *d = dst, kf = (float)k;
        const float *s = src;
        for (size_t i = 0; i < n; i++) d[i] = s[i] * kf;
    } else {
        double *d = dst;
        const double *s = src;
        for (size_t i = 0; i < n; i++) d[i] = s[i] * k;
    }
}

/* Starts the reductions of the full buckets of flat[g][*started, packed),
 * and of the rest too when `last`. */
static weft_status start_buckets(weft_dist_avg *a, int g, size_t *started, size_t packed,
                                 int last, int *k) {
    size_t es = weft_dtype_size(group_dtype[g]), per = a->bucket_bytes / es;
    while (packed - *started >= per || (last && packed > *started)) {
        size_t cnt = per < packed - *started ? per : packed - *started;
        weft_status s = start_sum((char *)a->flat[g] + *started * es, (int)cnt, group_dtype[g],
                                  &a->reqs[*k]);
        if (s) return s;
        (*k)++;
        if (!a->t_first) a->t_first = now();
        a->st.buckets++;
        a->st.bytes += (double)(cnt * es);
        *started += cnt;
    }
    return WEFT_OK;
}

/* Opens a step: checks the gradients' layout (and every check_every steps
 * the parameters) against the other ranks, starts the weights' sum. */
static weft_status begin(weft_dist_avg *a, const weft_grad_set *gs) {
    if (a->open)
        return weft_error(WEFT_ERR_ARG, "gradient averager: step %" PRId64 " failed after its "
                          "reductions had started, and the ranks may now disagree", gs->step);
    size_t total[NGROUP] = {0, 0};
    for (int i = 0; i < gs->n; i++) {
        int g = group_of(gs->dtypes[i]);
        if (g < 0)
            return weft_error(WEFT_ERR_DTYPE, "gradient averager: parameter %d is %s (f32 or "
                              "f64 only)", i, weft_dtype_name(gs->dtypes[i]));
        total[g] += gs->bytes[i] / weft_dtype_size(gs->dtypes[i]);
    }
    int nreq = 1;
    for (int g = 0; g < NGROUP; g++) {
        size_t per = a->bucket_bytes / weft_dtype_size(group_dtype[g]);
        nreq += (int)((total[g] + per - 1) / per);
    }
    weft_status s = reserve(a, total, nreq, gs->n);
    if (!s) s = check_ranks(a, gs);
    if (s) return s;
    memset(a->in, 0, (size_t)gs->n);
    memset(a->packed, 0, sizeof a->packed);
    memset(a->started, 0, sizeof a->started);
    a->t_first = 0;
    snprintf(a->what, sizeof a->what, "averaging the gradients of step %" PRId64, gs->step + 1);
    /* request 0: the weights' sum; then one per bucket */
    a->wsum = a->weight;
    a->k = 0;
    if ((s = start_sum(&a->wsum, 1, WEFT_F64, &a->reqs[0]))) return s;
    a->k = 1;
    a->open = 1;
    if (a->profile) { /* the weights' sum completes when every rank has arrived */
        double ts = now();
        s = wait_all(a->reqs, a->k, a->what);
        a->st.sync_seconds += now() - ts;
    }
    return s;
}

/* Packs gradient i (times this rank's weight) after those already packed
 * and starts the buckets it fills.  Every rank packs in the same order
 * (the executor's, or parameter order), so bucket j holds the same
 * gradients everywhere. */
static weft_status pack(weft_dist_avg *a, const weft_grad_set *gs, int i) {
    int g = group_of(gs->dtypes[i]);
    size_t es = weft_dtype_size(group_dtype[g]), n = gs->bytes[i] / es;
    scaled_copy((char *)a->flat[g] + a->packed[g] * es, gs->grads[i], n, group_dtype[g],
                a->weight);
    a->off[i] = a->packed[g];
    a->in[i] = 1;
    a->packed[g] += n;
    return start_buckets(a, g, &a->started[g], a->packed[g], 0, &a->k);
}

weft_status weft_dist_avg_ready(void *ctx, const weft_grad_set *gs, int i) {
    weft_dist_avg *a = ctx;
    if (g_size == 1) return WEFT_OK;
    double t0 = now();
    weft_status s = a->open ? WEFT_OK : begin(a, gs);
    if (!s && (i < 0 || i >= gs->n))
        s = weft_error(WEFT_ERR_ARG, "gradient averager: no gradient %d (of %d)", i, gs->n);
    if (!s && a->in[i]) /* a step failed between its readiness calls and the hook */
        s = weft_error(WEFT_ERR_ARG, "gradient averager: gradient %d is ready twice: step %"
                       PRId64 " failed after its reductions had started, and the ranks may "
                       "now disagree", i, gs->step);
    if (!s) {
        double b0 = a->st.bytes;
        s = pack(a, gs, i);
        a->st.early_bytes += a->st.bytes - b0;
    }
    if (!s) s = test_all(a->reqs, a->k, a->what);
    a->st.seconds += now() - t0;
    return s;
}

weft_status weft_dist_avg_hook(void *ctx, const weft_grad_set *gs) {
    weft_dist_avg *a = ctx;
    if (g_size == 1) {
        a->st.calls++;
        return WEFT_OK;
    }
    double t0 = now();
    weft_status s = a->open ? WEFT_OK : begin(a, gs);
    if (s) return s;
    if (a->t_first) a->st.overlap_seconds += t0 - a->t_first;
    /* the gradients no readiness call brought, in parameter order; then
     * the last partial buckets */
    for (int i = 0; i < gs->n && !s; i++)
        if (!a->in[i]) s = pack(a, gs, i);
    for (int g = 0; g < NGROUP && !s; g++)
        s = start_buckets(a, g, &a->started[g], a->packed[g], 1, &a->k);
    /* requests already started must complete even after an error: every
     * rank started the same ones */
    double tw = now();
    weft_status w = wait_all(a->reqs, a->k, a->what);
    a->st.wait_seconds += now() - tw;
    a->open = 0;
    if (s || (s = w)) return s;
    if (!(a->wsum > 0))
        return weft_error(WEFT_ERR_ARG, "gradient averager: step %" PRId64 ": the ranks' "
                          "weights sum to %g", gs->step + 1, a->wsum);
    for (int i = 0; i < gs->n; i++) {
        int g = group_of(gs->dtypes[i]);
        size_t es = weft_dtype_size(group_dtype[g]), n = gs->bytes[i] / es;
        scaled_copy(gs->grads[i], (char *)a->flat[g] + a->off[i] * es, n, group_dtype[g],
                    1 / a->wsum);
    }
    a->st.calls++;
    a->st.seconds += now() - t0;
    return WEFT_OK;
}
