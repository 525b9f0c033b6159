/* The compiler driver: copy what the outputs need, run the named passes in
 * order (each can be disabled, the graph dumped and verified after each),
 * then plan and run the result.  Halide's lowering log is the model: one
 * list, one line per pass in the report. */
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pass.h"

/* Debug builds verify the graph after every pass; release builds when asked. */
#ifdef NDEBUG
#define VERIFY_ALWAYS 0
#else
#define VERIFY_ALWAYS 1
#endif

static const struct {
    const char *name;
    weft_pass_fn fn;
} passes[] = {
    {"fold", weft_pass_fold},
    {"simplify", weft_pass_simplify},
    {"merge-gates", weft_pass_merge_gates},
    {"cse", weft_pass_cse},
    {"batch-gemm", weft_pass_batch_gemm},
    {"batch-wgrad", weft_pass_batch_wgrad},
    {"simplify", weft_pass_simplify},
    {"cse", weft_pass_cse},
    {"merge-wgrad", weft_pass_merge_wgrad},
    {"fuse", weft_pass_fuse},
    {"concat-operand", weft_pass_concat_operand},
    {"pack", weft_pass_pack},
    {"dce", weft_pass_dce},
    {"schedule", weft_pass_schedule},
};
#define N_PASSES ((int)(sizeof passes / sizeof passes[0]))
_Static_assert(N_PASSES <= WEFT_MAX_PASSES, "raise WEFT_MAX_PASSES");

const char *const *weft_pass_names(void) {
    static const char *names[N_PASSES + 1];
    for (int i = 0; i < N_PASSES; i++) names[i] = passes[i].name;
    return names;
}

/* ---------------------------------------------------------------- rewriter */

void weft_rw_stamp(weft_rw *rw, weft_node made, weft_node n) {
    if (made == WEFT_NONE || made < 0) return;
    const weft_node_rec *s = &rw->src->nodes[n];
    weft_node_rec *d = &rw->dst->nodes[made];
    if (made < rw->dst->n && d->kind == WEFT_NODE_OP) {
        d->site = s->site;
        d->backward = s->backward;
        d->grad_of = s->grad_of != WEFT_NONE && s->grad_of < n ? rw->map[s->grad_of] : WEFT_NONE;
        if (!d->name && s->name) d->name = strdup(s->name);
        if (!d->note && s->note) d->note = strdup(s->note);
    }
}

void weft_rw_map_slices(weft_rw *rw, weft_node big, const weft_node *mem, int m, int axis) {
    int64_t at = 0;
    for (int k = 0; k < m; k++) {
        int64_t len = rw->src->nodes[mem[k]].shape.dim[axis];
        weft_attr sa = {.i = {axis, at, at + len}};
        rw->map[mem[k]] = weft_rw_op(rw, mem[k], WEFT_OP_slice, &big, 1, &sa);
        at += len;
    }
    rw->changes += m;
}

void weft_rw_note(weft_rw *rw, weft_node n, const char *fmt, ...) {
    if (n < 0 || n >= rw->dst->n) return;
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(rw->dst->nodes[n].note);
    rw->dst->nodes[n].note = strdup(buf);
}

weft_node weft_rw_in(const weft_rw *rw, weft_node n, int k) {
    const weft_node_rec *r = &rw->src->nodes[n];
    return rw->map[rw->src->edges[r->in_off + k]];
}

weft_node weft_rw_op(weft_rw *rw, weft_node like, int op, const weft_node *in, int n_in, const weft_attr *attr) {
    int before = rw->dst->n;
    weft_node m = weft_graph_add_op(rw->dst, op, in, n_in, attr);
    if (m >= before) weft_rw_stamp(rw, m, like); /* only nodes made now */
    return m;
}

weft_node weft_rw_copy(weft_rw *rw, weft_node n) {
    const weft_node_rec *r = &rw->src->nodes[n];
    if (r->kind != WEFT_NODE_OP) {
        /* The user's parameters stay shared; a constant a pass made is owned
         * by a graph about to be freed, so it is copied. */
        if (r->kind == WEFT_NODE_CONST && !r->borrowed && rw->src_owned_consts_copy)
            return weft_const(rw->dst, r->name, r->dtype, r->shape, r->data);
        return weft_graph_add_borrowed_leaf(rw->dst, r->kind, r->name, r->dtype, r->shape, r->data);
    }
    if (r->n_in > rw->scratch_cap) { /* stacks of T steps are wide: one buffer for all */
        weft_node *p = realloc(rw->scratch, (size_t)r->n_in * sizeof *p);
        if (!p) return weft_graph_fail(rw->dst, WEFT_ERR_NOMEM, "compile: out of memory");
        rw->scratch = p;
        rw->scratch_cap = r->n_in;
    }
    weft_node *in = rw->scratch;
    /* Inputs with the shapes the original's had give the same node: copy the
     * record instead of inferring it again.  Anything else (an input a pass
     * replaced by a different shape, or failed to emit) goes through the
     * checked builder, which reports it. */
    int same = 1;
    for (int k = 0; k < r->n_in; k++) {
        weft_node from = rw->src->edges[r->in_off + k];
        in[k] = rw->map[from];
        if (in[k] < 0 || in[k] >= rw->dst->n) { same = 0; continue; }
        const weft_node_rec *a = &rw->src->nodes[from], *b = &rw->dst->nodes[in[k]];
        same &= a->dtype == b->dtype && weft_shape_eq(a->shape, b->shape);
    }
    weft_node_rec c = *r;
    if (r->op == WEFT_OP_fused) { /* the program moves with the node */
        int id = weft_graph_add_prog(rw->dst, &rw->src->progs[c.attr.i[0]]);
        if (id < 0) return weft_graph_fail(rw->dst, WEFT_ERR_NOMEM, "compile: out of memory");
        c.attr.i[0] = id;
    }
    if (!same) return weft_rw_op(rw, n, r->op, in, r->n_in, &c.attr);
    weft_node m = weft_graph_add_rec(rw->dst, &c, in);
    weft_rw_stamp(rw, m, n);
    return m;
}

int weft_count_op(const weft_graph *g, int op) {
    int c = 0;
    for (int i = 0; i < g->n; i++) c += g->nodes[i].kind == WEFT_NODE_OP && g->nodes[i].op == op;
    return c;
}

/* Matrix products, packed or not, for the report. */
static int count_products(const weft_graph *g) {
    int c = 0;
    for (int i = 0; i < g->n; i++) c += g->nodes[i].kind == WEFT_NODE_OP && weft_op_is_product(g->nodes[i].op);
    return c;
}

int weft_is_fill(const weft_graph *g, weft_node n, double *value) {
    if (n < 0 || n >= g->n) return 0;
    const weft_node_rec *r = &g->nodes[n];
    if (r->kind != WEFT_NODE_OP) return 0;
    if (r->op == WEFT_OP_broadcast || r->op == WEFT_OP_reshape) return weft_is_fill(g, g->edges[r->in_off], value);
    if (r->op != WEFT_OP_fill) return 0;
    *value = r->attr.f;
    return 1;
}

/* live[] and uses[] of src for the outputs; returns src's matrix products
 * for the report (counted here, where every record is read anyway: a scan
 * of its own cost 2% of compile time at 4 layers, T = 1000). */
static int liveness(weft_rw *rw, const weft_node *outs, int n_out) {
    const weft_graph *g = rw->src;
    int products = 0;
    memset(rw->live, 0, (size_t)g->n);
    memset(rw->uses, 0, (size_t)g->n * sizeof *rw->uses);
    for (int k = 0; k < n_out; k++) rw->live[outs[k]] = 1;
    for (int i = g->n - 1; i >= 0; i--) {
        const weft_node_rec *r = &g->nodes[i];
        products += r->kind == WEFT_NODE_OP && weft_op_is_product(r->op);
        if (!rw->live[i]) continue;
        for (int j = 0; j < r->n_in; j++) {
            rw->live[g->edges[r->in_off + j]] = 1;
            rw->uses[g->edges[r->in_off + j]]++;
        }
    }
    for (int k = 0; k < n_out; k++) rw->uses[outs[k]]++; /* outputs count as a use */
    return products;
}

/* ----------------------------------------------------------------- driver */

/* Provided by core/exec.c: an executor for a compiled graph, addressed with
 * the original graph's ids through map (both adopted). */
weft_exec *weft_exec_adopt(weft_graph *compiled, const weft_node *outputs, int n, const weft_graph *orig,
                           weft_node *map, int n_map, const weft_compile_report *report);

static int disabled(const weft_compile_options *o, const char *name) {
    if (!o) return 0;
    if (o->no_passes) return 1;
    for (int i = 0; i < o->n_disable; i++)
        if (o->disable[i] && !strcmp(o->disable[i], name)) return 1;
    return 0;
}

static weft_status dump(const weft_graph *g, const char *dir, int k, const char *name) {
    char path[4096];
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/%02d-%s.dot", dir, k, name);
    FILE *f = fopen(path, "w");
    if (!f) return weft_error(WEFT_ERR_IO, "compile: cannot write %s", path);
    weft_dot_options o = {.title = name};
    weft_status s = weft_graph_write_dot(g, f, &o);
    fclose(f);
    return s;
}

weft_exec *weft_exec_compile(weft_graph *g, const weft_node *outputs, int n, const weft_compile_options *opt) {
    double t0 = weft_now_ms();
    if (g->status) {
        weft_error(g->status, "compile: the graph has a build error: %s", g->error);
        return NULL;
    }
    for (int k = 0; k < n; k++)
        if (outputs[k] < 0 || outputs[k] >= g->n) {
            weft_error(WEFT_ERR_ARG, "compile: output %d is not a node", k);
            return NULL;
        }
    for (int i = 0; opt && i < opt->n_disable; i++) {
        /* "codegen" is no graph pass: it turns off the generated kernels */
        int known = opt->disable[i] && !strcmp(opt->disable[i], "codegen");
        char list[256] = "";
        for (int p = 0; p < N_PASSES; p++) {
            known |= opt->disable[i] && !strcmp(opt->disable[i], passes[p].name);
            if (!strstr(list, passes[p].name))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", p ? ", " : "", passes[p].name);
        }
        if (!known) {
            weft_error(WEFT_ERR_ARG, "compile: no pass named '%s' (passes: %s; and codegen)",
                       opt->disable[i] ? opt->disable[i] : "(null)", list);
            return NULL;
        }
    }
    struct {
        weft_node *map;
        weft_compile_report report;
    } prog = {0}, *p = &prog;
    p->map = malloc((size_t)(g->n ? g->n : 1) * sizeof *p->map);
    weft_node *outs = malloc((size_t)(n ? n : 1) * sizeof *outs);
    weft_exec *e = NULL;
    if (!p->map || !outs) goto fail;

    /* Stage 0: a copy of the live part of the graph. */
    weft_rw rw = {.src = g}; /* stage 0 borrows everything from the user's graph */
    weft_graph *cur = NULL, *spare = NULL;
    int cap = 0; /* of rw.map (after stage 0), rw.live and rw.uses */
    rw.live = malloc((size_t)g->n);
    rw.uses = malloc((size_t)g->n * sizeof *rw.uses);
    rw.map = p->map;
    rw.dst = weft_graph_new();
    if (!rw.live || !rw.uses || !rw.dst || weft_graph_reserve(rw.dst, g->n, g->n_edges)) goto fail_rw;
    liveness(&rw, outputs, n);
    for (int i = 0; i < g->n; i++) p->map[i] = rw.live[i] || g->nodes[i].kind != WEFT_NODE_OP ? weft_rw_copy(&rw, i) : WEFT_NONE;
    cur = rw.dst;
    rw.dst = NULL;
    rw.map = NULL;
    cap = g->n;
    if (cur->status) {
        weft_error(cur->status, "compile: %s", cur->error);
        goto fail_rw;
    }
    for (int k = 0; k < n; k++) outs[k] = p->map[outputs[k]];
    if (opt && opt->dump_dir && dump(cur, opt->dump_dir, 0, "input")) goto fail_rw;

    /* The passes.  Each rebuilds the graph into the arrays of the one before
     * last (a pass copies every node: fresh arrays cost page faults on every
     * node record, every pass). */
    p->report.n_passes = N_PASSES;
    rw.src_owned_consts_copy = 1;
    int matmuls = -1; /* products of cur, once known (a pass's liveness counts them) */
    for (int k = 0; k < N_PASSES; k++) {
        weft_pass_stat *st = &p->report.pass[k];
        st->name = passes[k].name;
        st->nodes_before = cur->n;
        if (disabled(opt, passes[k].name)) {
            if (matmuls < 0) matmuls = count_products(cur);
            st->matmuls_before = matmuls;
            st->nodes_after = st->nodes_before;
            continue;
        }
        double ts = weft_now_ms();
        weft_status s = WEFT_ERR_NOMEM;
        if (cur->n > cap || !rw.map) {
            int c = cur->n > cap ? cur->n + cur->n / 4 : cap;
            weft_node *m = realloc(rw.map, (size_t)(c ? c : 1) * sizeof *m);
            uint8_t *l = m ? realloc(rw.live, (size_t)(c ? c : 1)) : NULL;
            int *u = l ? realloc(rw.uses, (size_t)(c ? c : 1) * sizeof *u) : NULL;
            if (m) rw.map = m;
            if (l) rw.live = l;
            if (u) rw.uses = u;
            if (!u) {
                s = weft_error(WEFT_ERR_NOMEM, "out of memory");
                goto fail_pass;
            }
            cap = c;
        }
        rw.src = cur;
        rw.changes = 0;
        rw.dst = spare ? spare : weft_graph_new();
        spare = NULL;
        /* Passes add a few nodes at most: room for a quarter more. */
        if (!rw.dst || weft_graph_reserve(rw.dst, cur->n + cur->n / 4 + 16, cur->n_edges + cur->n_edges / 4 + 16)) {
            if (!rw.dst) weft_error(WEFT_ERR_NOMEM, "out of memory");
            goto fail_pass;
        }
        for (int i = 0; i < cur->n; i++) rw.map[i] = WEFT_NONE;
        st->matmuls_before = matmuls = liveness(&rw, outs, n);
        rw.unchanged = 0;
        s = passes[k].fn(&rw);
        if (!s && rw.dst->status) s = weft_error(rw.dst->status, "%s", rw.dst->error);
        if (!s && rw.unchanged && (rw.dst->n || rw.changes))
            s = weft_error(WEFT_ERR_GRAPH, "the pass said 'unchanged' but emitted nodes");
        for (int q = 0; !s && !rw.unchanged && q < n; q++)
            if (rw.map[outs[q]] == WEFT_NONE) {
                char d[160];
                s = weft_error(WEFT_ERR_GRAPH, "an output was dropped: %s", weft_node_desc(cur, outs[q], d, sizeof d));
            }
        if (!s && !rw.unchanged && ((opt && opt->verify) || VERIFY_ALWAYS)) s = weft_graph_verify(rw.dst);
    fail_pass:
        if (s) {
            weft_error(s, "compile: pass '%s': %s", passes[k].name, weft_last_error());
            goto fail_rw;
        }
        st->ran = 1;
        st->changes = rw.changes;
        if (rw.unchanged) { /* cur stands; the empty destination is the spare */
            spare = rw.dst;
            rw.dst = NULL;
            st->nodes_after = st->nodes_before;
            st->ms = weft_now_ms() - ts;
            continue;
        }
        for (int i = 0; i < g->n; i++)
            if (p->map[i] != WEFT_NONE) p->map[i] = rw.map[p->map[i]];
        for (int q = 0; q < n; q++) outs[q] = rw.map[outs[q]];
        weft_graph_clear(cur);
        spare = cur;
        cur = rw.dst;
        rw.dst = NULL;
        st->nodes_after = cur->n;
        matmuls = -1; /* counted by the next pass's liveness */
        st->ms = weft_now_ms() - ts;
        if (opt && opt->dump_dir && dump(cur, opt->dump_dir, k + 1, passes[k].name)) goto fail_rw;
    }
    /* A pass's products after it are the next one's before it; the last
     * pass's are counted here unless it left cur as it was. */
    for (int k = 0; k + 1 < N_PASSES; k++) p->report.pass[k].matmuls_after = p->report.pass[k + 1].matmuls_before;
    p->report.pass[N_PASSES - 1].matmuls_after = matmuls >= 0 ? matmuls : count_products(cur);
    free(rw.map);
    free(rw.live);
    free(rw.uses);
    free(rw.scratch);
    weft_graph_free(spare);
    if (opt && opt->threads) weft_set_threads(opt->threads);
    p->report.inter_op = opt ? opt->inter_op : 0;
    p->report.row_bands = opt ? opt->row_bands : 0;
    weft_fused_codegen(cur, opt && (opt->codegen < 0 || disabled(opt, "codegen")) ? -1 : 0, &p->report);
    p->report.compile_ms = weft_now_ms() - t0;
    e = weft_exec_adopt(cur, outputs, n, g, p->map, g->n, &p->report);
    if (!e) {
        weft_graph_free(cur);
        goto fail;
    }
    ((weft_compile_report *)weft_exec_report(e))->compile_ms = weft_now_ms() - t0; /* with the executor's setup */
    free(outs);
    return e;
fail_rw:
    if (rw.map != p->map) free(rw.map);
    free(rw.live);
    free(rw.uses);
    free(rw.scratch);
    weft_graph_free(rw.dst);
    weft_graph_free(spare);
    weft_graph_free(cur);
fail:
    free(outs);
    free(p->map);
    return NULL;
}

void weft_compile_report_print(const weft_compile_report *r, FILE *f) {
    fprintf(f, "%-12s %8s %8s %9s %9s %8s %8s\n", "pass", "nodes", "->", "matmuls", "->", "changes", "ms");
    for (int k = 0; k < r->n_passes; k++) {
        const weft_pass_stat *s = &r->pass[k];
        if (!s->ran) {
            fprintf(f, "%-12s (disabled)\n", s->name);
            continue;
        }
        if (!s->changes) /* Halide's log: say so rather than repeat the numbers */
            fprintf(f, "%-12s %8d %8s %9d %9s %8s %8.2f\n", s->name, s->nodes_before, "", s->matmuls_before, "",
                    "(unchanged)", s->ms);
        else
            fprintf(f, "%-12s %8d %8d %9d %9d %8d %8.2f\n", s->name, s->nodes_before, s->nodes_after,
                    s->matmuls_before, s->matmuls_after, s->changes, s->ms);
    }
    if (r->codegen_kernels)
        fprintf(f, "codegen: %d fused programs as %d compiled kernels, %.2f ms (%s %s)\n", r->codegen_progs,
                r->codegen_kernels, r->codegen_ms, r->codegen_cached ? "cached:" : "compiled:", r->codegen_note);
    else if (r->codegen_progs)
        fprintf(f, "codegen: %d fused programs interpreted: %s\n", r->codegen_progs, r->codegen_note);
    fprintf(f, "compile %.2f ms; memory plan: %.1f MB at peak (%.1f MB live at most; %.1f MB with one buffer per node)\n",
            r->compile_ms, r->planned_peak_bytes / 1e6, r->live_bytes / 1e6, r->unplanned_bytes / 1e6);
    if (r->workers > 1)
        fprintf(f, "parallelism %.2f: independent nodes run side by side, one thread each\n", r->parallelism);
    else if (r->bands_used)
        fprintf(f, "parallelism %.2f: %d row bands run each thread's rows through the steps, other kernels "
                   "share the threads\n", r->parallelism, r->bands);
    else
        fprintf(f, "parallelism %.2f: kernels share the threads\n", r->parallelism);
    static const char *const mode[3] = {"kernel by kernel", "row bands", "inter-op workers"};
    if (r->tuned_ms[0] > 0) {
        fprintf(f, "chosen from timed runs:");
        for (int k = 0; k < 3; k++)
            if (r->tuned_ms[k] > 0) fprintf(f, "%s %s %.2f ms", k ? "," : "", mode[k], r->tuned_ms[k]);
        fprintf(f, "\n");
    }
}
