/* Memory planning: liveness over the schedule (index order) and buffer
 * reuse.  A value's buffer is free again after the last node that reads it
 * (directly or through views of it) has run; outputs and fed inputs are
 * never reused.  Best fit among free blocks no more than twice the size;
 * else the largest free block grown, when none is large enough; else a new
 * block. */
#include <string.h>

#include "op.h"
#include "plan.h"

void weft_plan_free(weft_plan *p) {
    free(p->block_bytes);
    free(p->block_of);
    free(p->owner);
    free(p->war_from);
    free(p->placed_in);
    free(p->place_at);
    free(p->is_view);
    memset(p, 0, sizeof *p);
}

weft_status weft_plan_make(const weft_graph *g, const uint8_t *needed, int N, const weft_node *outs, int n_out,
                           int reuse, weft_plan *p) {
    static char base[64]; /* views are simulated on fake addresses: only strides matter */
    memset(p, 0, sizeof *p);
    p->block_of = malloc((size_t)(N ? N : 1) * sizeof *p->block_of);
    p->placed_in = malloc((size_t)(N ? N : 1) * sizeof *p->placed_in);
    p->place_at = calloc((size_t)(N ? N : 1), sizeof *p->place_at);
    p->is_view = calloc((size_t)(N ? N : 1), 1);
    p->block_bytes = malloc((size_t)(N ? N : 1) * sizeof *p->block_bytes);
    weft_tensor *t = calloc((size_t)(N ? N : 1), sizeof *t);
    int *owner = p->owner = malloc((size_t)(N ? N : 1) * sizeof *owner), *last = malloc((size_t)(N ? N : 1) * sizeof *last);
    p->war_from = malloc((size_t)(N ? N : 1) * sizeof *p->war_from);
    int *holder = malloc((size_t)(N ? N : 1) * sizeof *holder); /* block -> its last owner */
    int *free_list = malloc((size_t)(N ? N : 1) * sizeof *free_list), n_free = 0; /* free blocks by size */
    int *ends_head = malloc((size_t)(N ? N : 1) * sizeof *ends_head), *ends_next = malloc((size_t)(N ? N : 1) * sizeof *ends_next);
    weft_status st = WEFT_OK;
    if (!p->block_of || !p->war_from || !holder || !p->placed_in || !p->place_at || !p->is_view || !p->block_bytes || !t || !owner || !last || !free_list || !ends_head || !ends_next) {
        st = weft_error(WEFT_ERR_NOMEM, "plan: out of memory");
        goto done;
    }
    /* Views, and the owner of every value's storage. */
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        p->block_of[i] = -1;
        p->war_from[i] = -1;
        p->placed_in[i] = -1;
        owner[i] = i;
        last[i] = -1;
        ends_head[i] = -1;
        if (!needed[i]) continue;
        t[i] = (weft_tensor){base, r->dtype, r->shape, {0}};
        weft_tensor_contiguous_strides(&r->shape, t[i].stride);
        if (r->kind == WEFT_NODE_OP && (weft_ops[r->op].flags & WEFT_OPF_VIEW)) {
            weft_tensor v, in0 = t[weft_in_of(g, i, 0)];
            if (weft_ops[r->op].view(&v, &in0, &r->attr)) {
                p->is_view[i] = 1;
                t[i] = v;
                owner[i] = owner[weft_in_of(g, i, 0)];
            }
        }
    }
    /* Producers written straight into their concat's output: a producer
     * whose only reader is a concat, whose kernel can write row-strided
     * output, and which is not an output itself, computes into the slice
     * of the concat's buffer where the concat would have copied it.  Outer
     * concats first, so nested ones chain into one buffer. */
    if (reuse) {
        /* fixed_views: a value read by a view other than a slice (directly
         * or through slices).  Views were planned assuming a contiguous
         * producer; a slice stays a view of any strided one (the executor
         * takes views again from their inputs at each run), a reshape may
         * not.  Readers run after their inputs: one pass backwards. */
        uint8_t *fixed_views = calloc((size_t)(N ? N : 1), 1);
        if (!fixed_views) {
            st = weft_error(WEFT_ERR_NOMEM, "plan: out of memory");
            goto done;
        }
        for (int i = N - 1; i >= 0; i--)
            if (needed[i] && p->is_view[i] && (g->nodes[i].op != WEFT_OP_slice || fixed_views[i]))
                fixed_views[weft_in_of(g, i, 0)] = 1;
        for (int c = N - 1; c >= 0; c--) {
            const weft_node_rec *r = &g->nodes[c];
            if (!needed[c] || r->kind != WEFT_NODE_OP || r->op != WEFT_OP_concat) continue;
            int64_t at = 0;
            for (int k = 0; k < r->n_in; k++) {
                weft_node q = weft_in_of(g, c, k);
                const weft_node_rec *rq = &g->nodes[q];
                /* Other readers may stay: every kernel reads strided inputs. */
                if (rq->kind == WEFT_NODE_OP && (weft_ops[rq->op].flags & WEFT_OPF_STRIDED_OUT) && !p->is_view[q] &&
                    !fixed_views[q] && p->placed_in[q] < 0) {
                    p->placed_in[q] = c;
                    p->place_at[q] = at;
                }
                at += rq->shape.dim[r->attr.i[0]];
            }
        }
        free(fixed_views);
        /* A placed producer's storage is its concat's (outer ones resolved first). */
        for (int i = N - 1; i >= 0; i--)
            if (p->placed_in[i] >= 0) owner[i] = owner[p->placed_in[i]];
        for (int i = 0; i < N; i++)
            if (p->is_view[i]) owner[i] = owner[weft_in_of(g, i, 0)];
    }
    /* Last reader of each owner's storage. */
    for (int i = 0; i < N; i++) {
        if (!needed[i]) continue;
        const weft_node_rec *r = &g->nodes[i];
        for (int k = 0; k < r->n_in; k++) {
            int o = owner[weft_in_of(g, i, k)];
            if (last[o] < i) last[o] = i;
        }
    }
    for (int k = 0; k < n_out; k++) last[owner[outs[k]]] = N; /* survives the run */
    for (int i = 0; i < N; i++)
        if (needed[i] && owner[i] == i && last[i] >= 0 && last[i] < N) {
            ends_next[i] = ends_head[last[i]];
            ends_head[last[i]] = i;
        }
    /* Assign blocks in schedule order. */
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (!needed[i] || p->is_view[i] || r->kind == WEFT_NODE_PARAM || r->kind == WEFT_NODE_CONST) goto release;
        int me = owner[i]; /* a placed producer allocates its concat's buffer, once */
        if (p->block_of[me] >= 0) goto release;
        r = &g->nodes[me];
        size_t bytes = (size_t)weft_shape_numel(r->shape) * weft_dtype_size(r->dtype);
        if (!bytes) bytes = 1;
        p->unplanned_bytes += (int64_t)bytes;
        int best = -1;
        if (reuse && r->kind == WEFT_NODE_OP && n_free) {
            /* best fit: the smallest free block that is large enough */
            int lo = 0, hi = n_free;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (p->block_bytes[free_list[mid]] < bytes) lo = mid + 1;
                else hi = mid;
            }
            if (lo == n_free) {
                /* None is large enough: grow the largest (blocks are
                 * allocated after planning, so growing costs only the
                 * difference). */
                best = free_list[--n_free];
                p->peak_bytes += (int64_t)(bytes - p->block_bytes[best]);
                p->block_bytes[best] = bytes;
            } else if (p->block_bytes[free_list[lo]] <= 2 * bytes) {
                /* A block more than twice the size stays free: a small
                 * value kept long (an activation for the backward) would
                 * hold it, and the next large one need a new block. */
                best = free_list[lo];
                memmove(free_list + lo, free_list + lo + 1, (size_t)(n_free - lo - 1) * sizeof *free_list);
                n_free--;
            }
        }
        if (best < 0) {
            best = p->n_blocks++;
            p->block_bytes[best] = bytes;
            p->peak_bytes += (int64_t)bytes;
        } else {
            p->war_from[me] = holder[best]; /* its readers must finish before me is written */
        }
        holder[best] = me;
        p->block_of[me] = best;
    release:
        /* Values whose last reader is node i: their blocks are free now.
         * Inputs (fed before the run) keep theirs. */
        for (int o = ends_head[i]; o != -1; o = ends_next[o])
            if (p->block_of[o] >= 0 && g->nodes[o].kind == WEFT_NODE_OP) {
                /* into the free list, kept sorted by size */
                int b = p->block_of[o], lo = 0, hi = n_free;
                while (lo < hi) {
                    int mid = (lo + hi) / 2;
                    if (p->block_bytes[free_list[mid]] < p->block_bytes[b]) lo = mid + 1;
                    else hi = mid;
                }
                memmove(free_list + lo + 1, free_list + lo, (size_t)(n_free - lo) * sizeof *free_list);
                free_list[lo] = b;
                n_free++;
            }
    }
    /* The most bytes live at once (what a perfect packing would need):
     * the plan's blocks against this measure its fragmentation. */
    if (reuse) {
        int64_t *delta = calloc((size_t)N + 2, sizeof *delta), live = 0;
        if (!delta) {
            st = weft_error(WEFT_ERR_NOMEM, "plan: out of memory");
            goto done;
        }
        for (int i = 0; i < N; i++)
            if (needed[i] && owner[i] == i && p->block_of[i] >= 0) {
                int64_t bytes = weft_shape_numel(g->nodes[i].shape) * (int64_t)weft_dtype_size(g->nodes[i].dtype);
                delta[i] += bytes;
                delta[(last[i] < i ? i : last[i]) + 1] -= bytes;
            }
        for (int i = 0; i <= N; i++)
            if ((live += delta[i]) > p->live_bytes) p->live_bytes = live;
        free(delta);
    }
done:
    free(t); free(holder); free(last); free(free_list); free(ends_head); free(ends_next);
    if (st) weft_plan_free(p);
    return st;
}
