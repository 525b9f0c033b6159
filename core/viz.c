/* The readable drawing of an unrolled graph (see include/weft/viz.h).
 *
 * Every view is the same three steps: give each node an effective site
 * (its own, or one inferred from its users), map each node to the node that
 * draws it (itself; the elision node of its (layer, direction) when
 * collapsed; its counterpart in the representative step when rolled; or
 * none), then emit the drawn nodes nested in their clusters and the edges
 * between drawn nodes, merged.  Views differ only in the mapping. */
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "op.h"
#include "weft/viz.h"

static const weft_site NO_SITE = {-1, -1, -1};

/* The innermost site containing both a and b: the step if they share it,
 * else their (layer, direction), else their layer, else none. */
static weft_site site_common(weft_site a, weft_site b) {
    if (a.layer < 0 || a.layer != b.layer) return NO_SITE;
    if (a.dir < 0 || a.dir != b.dir) return (weft_site){a.layer, -1, -1};
    if (a.step < 0 || a.step != b.step) return (weft_site){a.layer, a.dir, -1};
    return a;
}

/* ------------------------------------------------------------ edge set */

typedef struct edge_set {
    uint64_t *keys; /* 0 = empty; stored as key + 1 */
    size_t cap, n;
} edge_set;

static int edge_set_add(edge_set *s, uint64_t key) {
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *k = calloc(cap, sizeof *k);
        if (!k) return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->keys[i]) continue;
            size_t h = (size_t)((s->keys[i] * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
            while (k[h]) h = (h + 1) & (cap - 1);
            k[h] = s->keys[i];
        }
        free(s->keys);
        s->keys = k;
        s->cap = cap;
    }
    uint64_t v = key + 1;
    size_t h = (size_t)((v * 0x9e3779b97f4a7c15ull) >> 17) & (s->cap - 1);
    while (s->keys[h]) {
        if (s->keys[h] == v) return 0;
        h = (h + 1) & (s->cap - 1);
    }
    s->keys[h] = v;
    s->n++;
    return 1;
}

/* --------------------------------------------------------------- state */

typedef struct viz {
    const weft_graph *g;
    weft_viz_options o;
    int N;
    weft_site *eff;     /* effective site per node */
    int L, D;           /* layers and directions seen */
    int *T;             /* steps per (layer, direction): T[l*D + d] */
    int *drawn;         /* node -> drawn id: a node index, or N + 2*(l*D+d) + backward for an
                         * elision node; -1 = not drawn */
    int *folded;        /* drawn id -> how many graph nodes it stands for */
    double *ms;         /* drawn id -> summed time (profile) */
    double *bytes;      /* drawn id -> summed output bytes */
    double ms_total, ms_max;
    int *order;         /* drawn ids in emission order */
    int n_order;
    weft_viz_stats st;
} viz;

static int ld_of(const viz *v, weft_site s) { return s.layer * v->D + s.dir; }
static int is_elision(const viz *v, int id) { return id >= v->N; }

/* Sites for nodes built without one: forward nodes go where all their
 * forward users are (computed users-first, i.e. in reverse order);
 * backward nodes go where the node they differentiate went. */
static weft_status infer_sites(viz *v) {
    const weft_graph *g = v->g;
    int N = v->N;
    int *start = calloc((size_t)N + 1, sizeof *start), *users = NULL;
    if (!start) return weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (r->backward) continue;
        for (int j = 0; j < r->n_in; j++) start[g->edges[r->in_off + j] + 1]++;
    }
    for (int i = 0; i < N; i++) start[i + 1] += start[i];
    users = malloc((size_t)(start[N] ? start[N] : 1) * sizeof *users);
    int *fill = malloc((size_t)(N ? N : 1) * sizeof *fill);
    if (!users || !fill) {
        free(start); free(users); free(fill);
        return weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
    }
    memcpy(fill, start, (size_t)N * sizeof *fill);
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (r->backward) continue;
        for (int j = 0; j < r->n_in; j++) users[fill[g->edges[r->in_off + j]]++] = i;
    }
    for (int i = N - 1; i >= 0; i--) {
        const weft_node_rec *r = &g->nodes[i];
        v->eff[i] = r->site;
        if (r->site.layer >= 0 || r->backward) continue;
        if (r->kind != WEFT_NODE_OP && r->kind != WEFT_NODE_CONST) continue;
        if (start[i] == start[i + 1]) continue;
        weft_site s = v->eff[users[start[i]]];
        for (int k = start[i] + 1; k < start[i + 1] && s.layer >= 0; k++)
            s = site_common(s, v->eff[users[k]]);
        v->eff[i] = s;
    }
    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (r->backward && r->site.layer < 0 && r->grad_of >= 0 && r->grad_of < i)
            v->eff[i] = v->eff[r->grad_of];
    }
    free(start); free(users); free(fill);

    /* A fused kernel is drawn as one cluster: its members share a site. */
    if (v->o.group && v->o.n_groups > 0) {
        weft_site *gs = malloc((size_t)v->o.n_groups * sizeof *gs);
        uint8_t *seen = calloc((size_t)v->o.n_groups, 1);
        if (!gs || !seen) {
            free(gs); free(seen);
            return weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
        }
        for (int i = 0; i < N; i++) {
            int k = v->o.group[i];
            if (k < 0 || k >= v->o.n_groups) continue;
            gs[k] = seen[k] ? site_common(gs[k], v->eff[i]) : v->eff[i];
            seen[k] = 1;
        }
        for (int i = 0; i < N; i++) {
            int k = v->o.group[i];
            if (k >= 0 && k < v->o.n_groups) v->eff[i] = gs[k];
        }
        free(gs); free(seen);
    }
    return WEFT_OK;
}

/* Node -> drawn id for the collapsed view: steps K .. T-2 of each
 * (layer, direction) go to its elision node. */
static void map_collapsed(viz *v) {
    int K = v->o.collapse;
    for (int i = 0; i < v->N; i++) {
        weft_site s = v->eff[i];
        v->drawn[i] = i;
        if (K <= 0 || s.step < 0 || s.dir < 0) continue;
        int T = v->T[ld_of(v, s)];
        if (s.step >= K && s.step < T - 1) v->drawn[i] = v->N + 2 * ld_of(v, s) + v->g->nodes[i].backward;
    }
    if (K <= 0) return;
    /* Nodes outside the steps that only serve hidden steps (the per-step
     * reshapes gathered into the output, the slices of its gradient) are
     * hidden with them: else a T = 1000 sequence leaves 1000 of them. */
    const weft_graph *g = v->g;
    for (int i = 0; i < v->N; i++) { /* all inputs in one elision */
        const weft_node_rec *r = &g->nodes[i];
        if (r->kind != WEFT_NODE_OP || v->eff[i].step >= 0 || r->n_in == 0) continue;
        int e = v->drawn[g->edges[r->in_off]];
        for (int j = 1; j < r->n_in && e >= v->N; j++)
            if (v->drawn[g->edges[r->in_off + j]] != e) e = -1;
        if (e >= v->N) v->drawn[i] = e;
    }
    size_t nu = v->N > 0 ? (size_t)v->N : 1;
    int *users = malloc(nu * sizeof *users); /* -2 none, -1 mixed */
    if (!users) return; /* only a less compact picture */
    for (int i = 0; i < v->N; i++) users[i] = -2;
    for (int i = v->N - 1; i >= 0; i--) { /* all users in one elision */
        const weft_node_rec *r = &g->nodes[i];
        if (r->kind == WEFT_NODE_OP && v->eff[i].step < 0 && users[i] >= v->N) v->drawn[i] = users[i];
        for (int j = 0; j < r->n_in; j++) {
            int x = g->edges[r->in_off + j];
            users[x] = users[x] == -2 || users[x] == v->drawn[i] ? v->drawn[i] : -1;
        }
    }
    free(users);
}

static int same_op(const weft_graph *g, int i, int j) {
    if (j < 0) return 0;
    const weft_node_rec *a = &g->nodes[i], *b = &g->nodes[j];
    return a->kind == b->kind && (a->kind != WEFT_NODE_OP || a->op == b->op);
}

/* Node -> drawn id for the rolled view: the k-th forward (or backward) node
 * of step t stands in for the k-th of every other step, when the op agrees
 * (the cell emits the same nodes in the same order at every step).  The
 * representative is a middle step: the first and last lack some of the
 * state edges. */
static weft_status map_rolled(viz *v) {
    const weft_graph *g = v->g;
    int nld = v->L * v->D, *off = calloc((size_t)nld + 1, sizeof *off);
    if (!off) return weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
    for (int k = 0; k < nld; k++) off[k + 1] = off[k] + v->T[k];
    int nkeys = 2 * off[nld];
    int *cnt = calloc((size_t)nkeys + 1, sizeof *cnt), *ord = malloc((size_t)(v->N ? v->N : 1) * sizeof *ord);
    int *list = malloc((size_t)(v->N ? v->N : 1) * sizeof *list);
    if (!cnt || !ord || !list) {
        free(off); free(cnt); free(ord); free(list);
        return weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
    }
#define KEY(s, bwd) (2 * (off[ld_of(v, s)] + (s).step) + (bwd))
    for (int i = 0; i < v->N; i++) {
        weft_site s = v->eff[i];
        if (s.step < 0 || s.dir < 0) continue;
        ord[i] = cnt[KEY(s, g->nodes[i].backward) + 1]++;
    }
    for (int k = 0; k < nkeys; k++) cnt[k + 1] += cnt[k]; /* now start offsets */
    for (int i = 0; i < v->N; i++) {
        weft_site s = v->eff[i];
        if (s.step < 0 || s.dir < 0) continue;
        list[cnt[KEY(s, g->nodes[i].backward)] + ord[i]] = i;
    }
    for (int i = 0; i < v->N; i++) {
        weft_site s = v->eff[i];
        v->drawn[i] = i;
        if (s.step < 0 || s.dir < 0) continue;
        int b = g->nodes[i].backward;
        weft_site rep = s;
        rep.step = v->T[ld_of(v, s)] / 2;
        if (rep.step == s.step) continue;
        /* counted from the start of the step, or else from its end (the
         * first step has the initial state's nodes in front) */
        int k = KEY(rep, b), own = KEY(s, b);
        int n_rep = cnt[k + 1] - cnt[k], n_own = cnt[own + 1] - cnt[own];
        int from_end = n_rep - (n_own - ord[i]);
        int j1 = ord[i] < n_rep ? list[cnt[k] + ord[i]] : -1;
        int j2 = from_end >= 0 && from_end < n_rep ? list[cnt[k] + from_end] : -1;
        v->drawn[i] = same_op(g, i, j1) ? j1 : same_op(g, i, j2) ? j2 : -1;
    }
#undef KEY
    free(off); free(cnt); free(ord); free(list);
    return WEFT_OK;
}

/* ------------------------------------------------------------ emission */

/* Cluster path of a drawn id: params, layer, direction, step, fused group. */
typedef struct cpath {
    int n;
    int lvl[4];       /* 0 params, 1 layer, 2 direction, 3 step, 4 group */
    int a[4], b[4], c[4];
} cpath;

static cpath path_of(const viz *v, int id) {
    cpath p = {0};
    if (!is_elision(v, id) && v->g->nodes[id].kind == WEFT_NODE_PARAM) {
        p.lvl[p.n] = 0;
        p.a[p.n] = p.b[p.n] = p.c[p.n] = 0;
        p.n++;
        return p;
    }
    weft_site s;
    if (is_elision(v, id)) {
        int ld = (id - v->N) / 2;
        s = (weft_site){(int16_t)(ld / v->D), (int16_t)(ld % v->D), -1};
    } else {
        s = v->eff[id];
    }
    int nest_layer = v->L > 1 || v->D > 1, nest_dir = v->D > 1;
    if (s.layer >= 0 && nest_layer) {
        p.lvl[p.n] = 1; p.a[p.n] = s.layer; p.b[p.n] = p.c[p.n] = 0; p.n++;
    }
    if (s.layer >= 0 && s.dir >= 0 && nest_dir) {
        p.lvl[p.n] = 2; p.a[p.n] = s.layer; p.b[p.n] = s.dir; p.c[p.n] = 0; p.n++;
    }
    if (s.layer >= 0 && s.dir >= 0 && s.step >= 0) {
        /* a step's backward nodes get a cluster of their own: the forward
         * steps then read down in time, the backward ones back up */
        p.lvl[p.n] = 3; p.a[p.n] = s.layer; p.b[p.n] = s.dir;
        p.c[p.n] = 2 * s.step + (is_elision(v, id) ? 0 : v->g->nodes[id].backward);
        p.n++;
    }
    if (!is_elision(v, id) && v->o.group && v->o.group[id] >= 0 && v->o.group[id] < v->o.n_groups) {
        p.lvl[p.n] = 4; p.a[p.n] = v->o.group[id]; p.b[p.n] = p.c[p.n] = 0; p.n++;
    }
    return p;
}

static int path_entry_eq(const cpath *x, const cpath *y, int k) {
    return x->lvl[k] == y->lvl[k] && x->a[k] == y->a[k] && x->b[k] == y->b[k] && x->c[k] == y->c[k];
}

typedef struct sort_item {
    cpath p;
    int id;
} sort_item;

static int cmp_item(const void *pa, const void *pb) {
    const sort_item *x = pa, *y = pb;
    const cpath *p = &x->p, *q = &y->p;
    /* params first, then the global nodes, then the layers in order */
    int gx = p->n && p->lvl[0] == 0 ? 0 : 1, gy = q->n && q->lvl[0] == 0 ? 0 : 1;
    if (gx != gy) return gx - gy;
    for (int k = 0; k < p->n && k < q->n; k++) {
        if (path_entry_eq(p, q, k)) continue;
        if (p->lvl[k] != q->lvl[k]) return p->lvl[k] - q->lvl[k];
        if (p->a[k] != q->a[k]) return p->a[k] - q->a[k];
        if (p->b[k] != q->b[k]) return p->b[k] - q->b[k];
        return p->c[k] - q->c[k];
    }
    if (p->n != q->n) return p->n - q->n; /* a cluster's own nodes before its sub-clusters */
    return x->id - y->id;
}

static void open_cluster(const viz *v, FILE *f, const cpath *p, int k, int depth) {
    char lab[512];
    fprintf(f, "%*ssubgraph ", 2 * depth, "");
    switch (p->lvl[k]) {
    case 0:
        fprintf(f, "cluster_params {\n%*slabel=\"parameters\"; style=\"rounded,filled\"; "
                   "fillcolor=\"#eaf1fb\"; color=\"#9db4d8\";\n", 2 * depth + 2, "");
        break;
    case 1:
        fprintf(f, "cluster_l%d {\n%*slabel=\"layer %d\"; style=\"rounded,dashed\"; color=\"#808080\"; "
                   "fillcolor=none;\n", p->a[k], 2 * depth + 2, "", p->a[k]);
        break;
    case 2:
        fprintf(f, "cluster_l%d_d%d {\n%*slabel=\"%s\"; style=\"rounded\"; color=\"#a0a0a0\";\n", p->a[k],
                p->b[k], 2 * depth + 2, "", p->b[k] ? "reverse" : "forward");
        break;
    case 3: {
        int t = p->c[k] / 2, bwd = p->c[k] % 2;
        if (v->o.rolled)
            snprintf(lab, sizeof lab, "%s (drawn at t=%d, stands for %d steps)", bwd ? "cell backward" : "cell",
                     t, v->T[p->a[k] * v->D + p->b[k]]);
        else
            snprintf(lab, sizeof lab, "t=%d%s", t, bwd ? " backward" : "");
        fprintf(f, "cluster_l%d_d%d_t%d%s {\n%*slabel=\"%s\"; style=\"rounded,filled\"; "
                   "fillcolor=\"%s\"; color=\"%s\";\n", p->a[k], p->b[k], t, bwd ? "_bwd" : "", 2 * depth + 2,
                "", lab, bwd ? "#fff7ef" : "#f6f7fa", bwd ? "#e0b890" : "#b0b8c8");
        break;
    }
    default:
        weft_dot_escape(v->o.group_label && v->o.group_label[p->a[k]] ? v->o.group_label[p->a[k]] : "fused",
                        lab, sizeof lab);
        fprintf(f, "cluster_g%d {\n%*slabel=\"%s\"; style=\"rounded,filled\"; fillcolor=\"#fff3cd\"; "
                   "color=\"#d4a017\";\n", p->a[k], 2 * depth + 2, "", lab);
        break;
    }
}

static void format_bytes(double b, char *buf, size_t n) {
    if (b >= 1 << 20) snprintf(buf, n, "%.1f MB", b / (1 << 20));
    else if (b >= 1 << 10) snprintf(buf, n, "%.1f KB", b / (1 << 10));
    else snprintf(buf, n, "%.0f B", b);
}

/* Heat colour for a share in [0, 1] of the largest node's time. */
static void heat(double t, char *buf, size_t n) {
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    int g = (int)(255 - 185 * t), b = (int)(255 - 255 * (t < 0.5 ? 2 * t : 1));
    snprintf(buf, n, "#ff%02x%02x", g, b);
}

static void emit_node(const viz *v, FILE *f, int id, int depth) {
    char name[512], sh[96], note[512], prof[160], fill[16], by[32];
    int ind = 2 * depth;
    prof[0] = 0;
    if (v->o.node_ms && v->ms_total > 0) {
        format_bytes(v->bytes[id], by, sizeof by);
        snprintf(prof, sizeof prof, "\\n%.3g ms (%.1f%%), %s", v->ms[id], 100 * v->ms[id] / v->ms_total, by);
        heat(v->ms_max > 0 ? v->ms[id] / v->ms_max : 0, fill, sizeof fill);
    }
    if (is_elision(v, id)) {
        int ld = (id - v->N) / 2, bwd = (id - v->N) % 2, T = v->T[ld], K = v->o.collapse;
        fprintf(f, "%*se%d [shape=box, style=\"rounded,dashed%s\", color=\"%s\", fontsize=11, "
                   "label=\"... %d %ssteps hidden ...\\n(t=%d to t=%d, %d nodes)%s\"%s%s%s];\n",
                ind, "", id - v->N, *prof ? ",filled" : "", bwd ? "#c05000" : "#606060", T - 1 - K,
                bwd ? "backward " : "", K, T - 2, v->folded[id], prof,
                *prof ? ", fillcolor=\"" : "", *prof ? fill : "", *prof ? "\"" : "");
        return;
    }
    const weft_node_rec *r = &v->g->nodes[id];
    weft_dot_escape(r->name ? r->name : "", name, sizeof name);
    /* an unnamed backward node says whose gradient it helps compute */
    if (!*name && r->backward && r->grad_of >= 0 && v->g->nodes[r->grad_of].name) {
        char esc[500];
        weft_dot_escape(v->g->nodes[r->grad_of].name, esc, sizeof esc);
        snprintf(name, sizeof name, "\u2202%s", esc);
    }
    weft_shape_str(r->shape, sh, sizeof sh);
    note[0] = 0;
    /* the caller's note, else what the compiler recorded (which pass made
     * the node, and what it replaced) */
    const char *nt = v->o.node_note && v->o.node_note[id] ? v->o.node_note[id] : r->note;
    if (!nt && v->o.mark_views && r->kind == WEFT_NODE_OP && (weft_ops[r->op].flags & WEFT_OPF_VIEW)) nt = "view";
    if (nt) {
        char esc[480];
        snprintf(note, sizeof note, "\\n%s", weft_dot_escape(nt, esc, sizeof esc));
    }
    const char *shape = "ellipse", *style = "filled", *fc = "#ffffff", *col = "#404040";
    switch (r->kind) {
    case WEFT_NODE_PARAM: shape = "box"; style = "rounded,filled"; fc = "#cfe2ff"; col = "#4a6fa5"; break;
    case WEFT_NODE_INPUT: shape = "box"; fc = "#d1f0d1"; col = "#3c7a3c"; break;
    case WEFT_NODE_CONST: shape = "box"; fc = "#e8e8e8"; col = "#808080"; break;
    default:
        if (r->backward) { style = "filled,dashed"; fc = "#ffe0c0"; col = "#c05000"; }
    }
    if (*prof) fc = fill;
    /* [name\n]op shape[ dtype][\nnote][\nprofile]; a named leaf shows no op */
    char lab[1500];
    int leaf_named = r->kind != WEFT_NODE_OP && *name;
    snprintf(lab, sizeof lab, "%s%s%s%s%s%s%s%s%s", name, *name ? "\\n" : "",
             leaf_named ? "" : weft_node_op_name(v->g, id), leaf_named ? "" : " ", sh,
             r->dtype == WEFT_F32 ? "" : " ", r->dtype == WEFT_F32 ? "" : weft_dtype_name(r->dtype), note, prof);
    fprintf(f, "%*sn%d [shape=%s, style=\"%s\", fillcolor=\"%s\", color=\"%s\", label=\"%s\"];\n", ind, "", id,
            shape, style, fc, col, lab);
}

static weft_status emit(viz *v, FILE *f) {
    const weft_graph *g = v->g;
    char title[1024];
    fprintf(f, "digraph weft {\n  graph [rankdir=%s, fontname=\"Helvetica\", fontsize=12, nodesep=0.2, "
               "ranksep=0.3, labelloc=t, labeljust=l",
            v->o.left_to_right ? "LR" : "TB");
    if (v->o.title) fprintf(f, ", label=\"%s\"", weft_dot_escape(v->o.title, title, sizeof title));
    fprintf(f, "];\n  node [fontname=\"Helvetica\", fontsize=9, height=0.25, margin=\"0.05,0.02\"];\n"
               "  edge [color=\"#505050\", arrowsize=0.5];\n");

    /* nodes, nested in their clusters */
    cpath open = {0};
    for (int k = 0; k < v->n_order; k++) {
        int id = v->order[k];
        cpath p = path_of(v, id);
        int common = 0;
        while (common < open.n && common < p.n && path_entry_eq(&open, &p, common)) common++;
        for (int d = open.n; d > common; d--) fprintf(f, "%*s}\n", 2 * d, "");
        for (int d = common; d < p.n; d++) {
            open_cluster(v, f, &p, d, d + 1);
            if (p.lvl[d] == 3 && p.c[d] % 2 == 0) v->st.step_clusters++;
            else if (p.lvl[d] == 3) v->st.backward_clusters++;
        }
        open = p;
        emit_node(v, f, id, p.n + 1);
    }
    for (int d = open.n; d > 0; d--) fprintf(f, "%*s}\n", 2 * d, "");

    /* edges between drawn nodes, merged */
    edge_set seen = {0};
    weft_status s = WEFT_OK;
    for (int i = 0; i < v->N && s == WEFT_OK; i++) {
        const weft_node_rec *r = &g->nodes[i];
        int b = v->drawn[i];
        if (b < 0) continue;
        /* rolled: the edges of the representative step, and those coming
         * into it from the other steps (the recurrent ones), but not the
         * other steps' own, which only repeat them */
        if (v->o.rolled && v->eff[i].step >= 0 && b != i) continue;
        for (int j = 0; j < r->n_in; j++) {
            int u = g->edges[r->in_off + j], a = v->drawn[u];
            if (a < 0 || a == b) continue;
            int added = edge_set_add(&seen, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
            if (added < 0) { s = weft_error(WEFT_ERR_NOMEM, "viz: out of memory"); break; }
            if (!added) continue;
            v->st.edges++;
            weft_site su = v->eff[u], sv = v->eff[i];
            int spine = su.step >= 0 && sv.step >= 0 && su.layer == sv.layer && su.dir == sv.dir &&
                        su.step != sv.step;
            const char *bw = r->backward ? ", style=dashed, color=\"#c05000\"" : "";
            fprintf(f, "  %s%d -> %s%d", is_elision(v, a) ? "e" : "n", is_elision(v, a) ? a - v->N : a,
                    is_elision(v, b) ? "e" : "n", is_elision(v, b) ? b - v->N : b);
            if (spine && v->o.rolled)
                fprintf(f, " [penwidth=2.2, constraint=false, label=\"%s\", fontsize=8, fontcolor=\"%s\"%s%s]",
                        sv.step > su.step ? "t-1" : "t+1", r->backward ? "#c05000" : "#1f5fbf",
                        r->backward ? bw : "", r->backward ? "" : ", color=\"#1f5fbf\"");
            else if (spine)
                fprintf(f, " [penwidth=2.2, weight=8%s%s]", bw, r->backward ? "" : ", color=\"#1f5fbf\"");
            else if (g->nodes[u].kind == WEFT_NODE_PARAM)
                fprintf(f, " [color=\"#8aa4cc\"%s]", r->backward ? ", style=dashed" : "");
            else if (*bw)
                fprintf(f, " [%s]", bw + 2);
            fprintf(f, ";\n");
        }
        if (v->o.show_grad_links && r->backward && r->grad_of >= 0 && r->grad_of < v->N) {
            int a = v->drawn[r->grad_of];
            if (a < 0 || a == b) continue;
            int added = edge_set_add(&seen, (uint64_t)1 << 63 | (uint64_t)(uint32_t)b << 32 | (uint32_t)a);
            if (added < 0) { s = weft_error(WEFT_ERR_NOMEM, "viz: out of memory"); break; }
            if (added)
                fprintf(f, "  %s%d -> %s%d [style=dotted, color=\"#a0a0a0\", arrowhead=none, constraint=false];\n",
                        is_elision(v, b) ? "e" : "n", is_elision(v, b) ? b - v->N : b,
                        is_elision(v, a) ? "e" : "n", is_elision(v, a) ? a - v->N : a);
        }
    }
    free(seen.keys);
    fprintf(f, "}\n");
    if (s == WEFT_OK && ferror(f)) s = weft_error(WEFT_ERR_IO, "viz: write failed");
    return s;
}

weft_status weft_viz_write_dot(const weft_graph *g, FILE *f, const weft_viz_options *opt,
                               weft_viz_stats *stats) {
    if (!g || !f) return weft_error(WEFT_ERR_ARG, "viz: no graph or no file");
    if (g->status) return weft_error(g->status, "viz: the graph has a build error: %s", g->error);
    viz v = {.g = g, .N = g->n};
    if (opt) v.o = *opt;
    if (v.o.rolled) v.o.collapse = 0;
    if (v.o.collapse < 0) return weft_error(WEFT_ERR_ARG, "viz: collapse must be >= 0, got %d", v.o.collapse);
    if (v.o.group && v.o.n_groups < 0) return weft_error(WEFT_ERR_ARG, "viz: n_groups < 0");
    int N = v.N;
    weft_status s = WEFT_OK;
    v.eff = malloc((size_t)(N ? N : 1) * sizeof *v.eff);
    v.drawn = malloc((size_t)(N ? N : 1) * sizeof *v.drawn);
    if (!v.eff || !v.drawn) { s = weft_error(WEFT_ERR_NOMEM, "viz: out of memory"); goto done; }
    if ((s = infer_sites(&v))) goto done;

    v.L = v.D = 1;
    for (int i = 0; i < N; i++) {
        if (v.eff[i].layer + 1 > v.L) v.L = v.eff[i].layer + 1;
        if (v.eff[i].dir + 1 > v.D) v.D = v.eff[i].dir + 1;
    }
    int nld = v.L * v.D, nid = N + 2 * nld;
    v.T = calloc((size_t)nld, sizeof *v.T);
    v.folded = calloc((size_t)nid, sizeof *v.folded);
    v.ms = calloc((size_t)nid, sizeof *v.ms);
    v.bytes = calloc((size_t)nid, sizeof *v.bytes);
    v.order = malloc((size_t)nid * sizeof *v.order);
    if (!v.T || !v.folded || !v.ms || !v.bytes || !v.order) { s = weft_error(WEFT_ERR_NOMEM, "viz: out of memory"); goto done; }
    for (int i = 0; i < N; i++)
        if (v.eff[i].step >= 0 && v.eff[i].dir >= 0 && v.eff[i].step + 1 > v.T[ld_of(&v, v.eff[i])])
            v.T[ld_of(&v, v.eff[i])] = v.eff[i].step + 1;

    if (v.o.rolled) {
        if ((s = map_rolled(&v))) goto done;
    } else {
        map_collapsed(&v);
    }

    for (int i = 0; i < N; i++) {
        const weft_node_rec *r = &g->nodes[i];
        if (v.o.hide_scalars && r->n_in == 0 && r->kind != WEFT_NODE_PARAM && r->kind != WEFT_NODE_INPUT &&
            weft_shape_numel(r->shape) == 1)
            v.drawn[i] = -1;
    }
    for (int i = 0; i < N; i++) {
        int id = v.drawn[i];
        if (id < 0) continue;
        v.folded[id]++;
        v.bytes[id] += (double)weft_shape_numel(g->nodes[i].shape) * (double)weft_dtype_size(g->nodes[i].dtype);
        if (v.o.node_ms && v.o.node_ms[i] > 0) {
            v.ms[id] += v.o.node_ms[i];
            v.ms_total += v.o.node_ms[i];
        }
    }
    for (int id = 0; id < nid; id++) {
        if (v.ms[id] > v.ms_max) v.ms_max = v.ms[id];
        int shown = id < N ? v.drawn[id] == id : v.folded[id] > 0;
        if (!shown) continue;
        v.order[v.n_order++] = id;
        if (id < N) v.st.nodes++;
        else v.st.elisions++;
    }
    v.st.hidden = N - v.st.nodes;
    sort_item *items = malloc((size_t)(v.n_order ? v.n_order : 1) * sizeof *items);
    if (!items) { s = weft_error(WEFT_ERR_NOMEM, "viz: out of memory"); goto done; }
    for (int k = 0; k < v.n_order; k++) items[k] = (sort_item){path_of(&v, v.order[k]), v.order[k]};
    qsort(items, (size_t)v.n_order, sizeof *items, cmp_item);
    for (int k = 0; k < v.n_order; k++) v.order[k] = items[k].id;
    free(items);
    s = emit(&v, f);
    if (stats) *stats = v.st;
done:
    free(v.eff); free(v.drawn); free(v.T); free(v.folded); free(v.ms); free(v.bytes); free(v.order);
    return s;
}

weft_status weft_viz_dot_string(const weft_graph *g, const weft_viz_options *opt, char **out,
                                weft_viz_stats *stats) {
    if (!out) return weft_error(WEFT_ERR_ARG, "viz: no output pointer");
    *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(out, &len);
    if (!m) return weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
    weft_status s = weft_viz_write_dot(g, m, opt, stats);
    if (fclose(m) != 0 && s == WEFT_OK) s = weft_error(WEFT_ERR_NOMEM, "viz: out of memory");
    if (s != WEFT_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}
