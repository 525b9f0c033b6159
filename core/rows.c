/* Row bands: a recurrence run as one parallel region per stretch.
 *
 * A recurrent step's kernels — the product h W, the gate kernel, h = o
 * tanh(c), and in the backward the gate gradients and dG W^T — each compute
 * row r of their output from row r of their inputs: the batch's sequences
 * stay apart until the weight gradients sum over them.  Run kernel by
 * kernel, each is a parallel region of its own (a fork and a join) that
 * splits its own work: some 800 regions in a training step of an LSTM over
 * 80 steps, each ending with the threads waiting for the slowest.  A band
 * runs such a stretch of the schedule in one region instead: thread t takes
 * rows [M t / n, M (t+1) / n) of every kernel in it, in schedule order, and
 * meets the other threads only where the memory says it must.
 *
 * Where they must meet.  In a buffer, fix a pitch p: byte b lies on line
 * b / p.  A 2-D tensor with M rows, row stride p (bytes) and unit column
 * stride, whose first element is on line k M (at a column offset under p),
 * puts its row r on line k M + r.  So every line of pitch p belongs to row
 * (line mod M), hence to one thread, whichever such tensor touches it: a
 * step's rows of a stacked buffer, a column slice of a gate kernel's
 * output, the output itself.  Two accesses to overlapping bytes need a
 * barrier between them when one of them writes and they do not share a
 * pitch, or when one reads the tensor whole (a product's right operand, a
 * broadcast row).  The walk keeps, per buffer, the byte ranges touched
 * since the last barrier, one per pitch and kind of access, and puts a
 * barrier before a node whose accesses conflict with them.
 *
 * Each output element is computed by the same kernel code from the same
 * values whichever thread computes it (a product's sums run over k in
 * order for any number of rows; elementwise kernels have no order), so the
 * bits do not depend on the thread count. */
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "rows.h"

/* A band needs this many kernels to be worth its region. */
#define WEFT_ROWS_MIN_KERNELS 4
/* Distinct (pitch, read or write) ranges kept per buffer between barriers. */
#define MAX_RANGES 8

typedef struct range {
    int64_t lo, hi;      /* bytes of the buffer */
    int64_t pitch;       /* 0: the whole tensor */
    int write;
} range;

typedef struct buf_state {
    int epoch;           /* ranges are current when it is the walk's */
    int n;
    range r[MAX_RANGES];
} buf_state;

typedef struct span {
    const char *lo, *hi;
    int b;
} span;

typedef struct access {
    int b;               /* buffer */
    range r;
} access;

static int by_lo(const void *x, const void *y) {
    const span *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* The span holding p, or -1 (graph storage: parameters, constants). */
static int span_of(const span *s, int n, const char *p) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p < s[mid].lo) hi = mid - 1;
        else if (p >= s[mid].hi) lo = mid + 1;
        else return mid;
    }
    return -1;
}

/* What touching t does: its bytes in its buffer, and its pitch when cut
 * into rows (rows != 0) maps row r to lines of row r.  0: no buffer (or
 * empty); 1: *a filled. */
static int describe(const span *s, int n, const weft_tensor *t, int64_t M, int rows, int write, access *a) {
    const int64_t es = (int64_t)weft_dtype_size(t->dtype);
    int64_t lo = 0, hi = es;
    for (int d = 0; d < t->shape.ndim; d++) {
        if (t->shape.dim[d] == 0) return 0;
        int64_t ext = (t->shape.dim[d] - 1) * t->stride[d] * es;
        if (ext < 0) lo += ext;
        else hi += ext;
    }
    const int k = span_of(s, n, t->data);
    if (k < 0) return 0;
    const int64_t off = (const char *)t->data - s[k].lo;
    a->b = s[k].b;
    a->r = (range){off + lo, off + hi, 0, write};
    if (rows && t->shape.ndim == 2 && t->shape.dim[0] == M && t->stride[0] > 0 &&
        (t->stride[1] == 1 || t->shape.dim[1] == 1)) {
        const int64_t p = t->stride[0] * es;
        if (off % p + t->shape.dim[1] * es <= p && (off / p) % M == 0) a->r.pitch = p;
    }
    return 1;
}

static int conflict(const range *x, const range *y) {
    return x->lo < y->hi && y->lo < x->hi && (x->write || y->write) && !(x->pitch && x->pitch == y->pitch);
}

static int conflicts(const buf_state *st, int epoch, const access *a) {
    const buf_state *s = &st[a->b];
    if (s->epoch != epoch) return 0;
    for (int k = 0; k < s->n; k++)
        if (conflict(&a->r, &s->r[k])) return 1;
    return 0;
}

/* Add a's range to its buffer's; 0 when the buffer has no room left. */
static int record(buf_state *st, int epoch, const access *a) {
    buf_state *s = &st[a->b];
    if (s->epoch != epoch) {
        s->epoch = epoch;
        s->n = 0;
    }
    for (int k = 0; k < s->n; k++)
        if (s->r[k].pitch == a->r.pitch && s->r[k].write == a->r.write) {
            if (a->r.lo < s->r[k].lo) s->r[k].lo = a->r.lo;
            if (a->r.hi > s->r[k].hi) s->r[k].hi = a->r.hi;
            return 1;
        }
    if (s->n == MAX_RANGES) return 0;
    s->r[s->n++] = a->r;
    return 1;
}

void weft_rows_free(weft_rows *r) {
    free(r->start);
    free(r->end);
    free(r->rows);
    free(r->barriers);
    free(r->band_at);
    free(r->barrier);
    free(r->whole);
    memset(r, 0, sizeof *r);
}

/* A node's accesses (its inputs read, its output written) when its kernel
 * can run in bands of M rows; else 0. */
static int node_accesses(const weft_graph *g, int i, const weft_tensor *val, const span *s, int ns, int64_t *M,
                         uint32_t *whole_out, access *acc) {
    uint32_t whole;
    const weft_node_rec *r = &g->nodes[i];
    const int64_t m = weft_op_rows(g, i, &whole);
    *whole_out = whole;
    if (m < 2) return 0;
    int na = 0;
    for (int k = 0; k < r->n_in; k++)
        na += describe(s, ns, &val[weft_in_of(g, i, k)], m, !(whole >> k & 1), 0, &acc[na]);
    access w;
    if (!describe(s, ns, &val[i], m, 1, 1, &w) || !w.r.pitch) return 0; /* writes go by rows */
    for (int k = 0; k < na; k++)
        if (w.b == acc[k].b && conflict(&w.r, &acc[k].r)) return 0; /* in place, another layout */
    acc[na++] = w;
    *M = m;
    return na;
}

weft_status weft_rows_find(const weft_graph *g, const uint8_t *needed, int N, const weft_tensor *val,
                           const weft_plan *plan, void *const *blocks, weft_rows *out) {
    memset(out, 0, sizeof *out);
    const int nb = plan->n_blocks;
    span *s = malloc((size_t)(nb ? nb : 1) * sizeof *s);
    buf_state *st = calloc((size_t)(nb ? nb : 1), sizeof *st);
    out->band_at = malloc((size_t)(N ? N : 1) * sizeof *out->band_at);
    out->barrier = calloc((size_t)(N ? N : 1), 1);
    out->whole = calloc((size_t)(N ? N : 1), sizeof *out->whole);
    /* at most one band per WEFT_ROWS_MIN_KERNELS nodes */
    const size_t cap = (size_t)N / WEFT_ROWS_MIN_KERNELS + 1;
    out->start = malloc(cap * sizeof *out->start);
    out->end = malloc(cap * sizeof *out->end);
    out->barriers = malloc(cap * sizeof *out->barriers);
    out->rows = malloc(cap * sizeof *out->rows);
    if (!s || !st || !out->band_at || !out->barrier || !out->whole || !out->start || !out->end || !out->barriers ||
        !out->rows)
        goto oom;
    for (int b = 0; b < nb; b++) s[b] = (span){blocks[b], (const char *)blocks[b] + plan->block_bytes[b], b};
    qsort(s, (size_t)nb, sizeof *s, by_lo);
    for (int i = 0; i < N; i++) out->band_at[i] = -1;
    int open = 0, start = 0, last = 0, kernels = 0, barriers = 0, epoch = 0;
    int64_t M = 0;
    for (int i = 0; i <= N; i++) {
        access acc[WEFT_OP_ROWS_MAX_INPUTS + 1]; /* its inputs and its output */
        int64_t m = 0;
        int na = 0;
        if (i < N) {
            const weft_node_rec *r = &g->nodes[i];
            if (!needed[i] || r->kind != WEFT_NODE_OP || plan->is_view[i]) continue; /* runs before the band's region */
            na = node_accesses(g, i, val, s, nb, &m, &out->whole[i], acc);
        }
        if (open && (!na || m != M)) { /* the band ends at its last kernel */
            open = 0;
            if (kernels >= WEFT_ROWS_MIN_KERNELS) {
                out->start[out->n] = start;
                out->end[out->n] = last + 1;
                out->rows[out->n] = M;
                out->barriers[out->n] = barriers;
                out->band_at[start] = out->n++;
            } else {
                memset(out->barrier + start, 0, (size_t)(last + 1 - start));
            }
        }
        if (!na) continue;
        if (!open) {
            open = 1;
            start = i;
            M = m;
            kernels = barriers = 0;
            epoch++;
        }
        int meet = 0;
        for (int k = 0; k < na && !meet; k++) meet = conflicts(st, epoch, &acc[k]);
        for (int k = 0; k < na && !meet; k++) meet = !record(st, epoch, &acc[k]);
        if (meet) { /* after the barrier only this node's accesses are pending */
            epoch++;
            out->barrier[i] = 1;
            barriers++;
            for (int k = 0; k < na; k++) record(st, epoch, &acc[k]);
        }
        last = i;
        kernels++;
    }
    free(s);
    free(st);
    return WEFT_OK;
oom:
    free(s);
    free(st);
    weft_rows_free(out);
    return weft_error(WEFT_ERR_NOMEM, "row bands: out of memory");
}
