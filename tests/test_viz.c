/* The readable drawing (core/viz.c): the dot it writes parses with
 * Graphviz's own parser (libcgraph), and its clusters and nodes match the
 * graph drawn. */
#include <criterion/criterion.h>
#include <graphviz/cgraph.h>
#include <stdlib.h>
#include <string.h>

#include "weft/rnn.h"
#include "weft/viz.h"

/* A hand-unrolled tanh RNN: L layers, D directions, T steps, every step's
 * nodes tagged with its site.  The per-step slices of x are taken before
 * the loop, without a site, as real frontends do. */
typedef struct toy {
    weft_graph *g;
    weft_node x, loss, params[16];
    int np;
} toy;

static toy toy_rnn(int T, int L, int D, int with_grad) {
    enum { B = 2, I = 3, H = 4 };
    toy m = {.g = weft_graph_new()};
    weft_graph *g = m.g;
    m.x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(T, B, I));
    weft_node *xs = calloc((size_t)T, sizeof *xs), *ys = calloc((size_t)T * D, sizeof *ys);
    for (int t = 0; t < T; t++) xs[t] = weft_reshape(g, weft_slice(g, m.x, 0, t, t + 1), WEFT_SHAPE(B, I));
    weft_node h0 = weft_zeros(g, WEFT_SHAPE(B, H), WEFT_F32);
    for (int l = 0; l < L; l++) {
        int64_t in = l ? (int64_t)D * H : I;
        for (int d = 0; d < D; d++) {
            char n1[32], n2[32];
            snprintf(n1, sizeof n1, "w_ih_l%d%s", l, d ? "_reverse" : "");
            snprintf(n2, sizeof n2, "w_hh_l%d%s", l, d ? "_reverse" : "");
            weft_node wih = m.params[m.np++] = weft_param(g, n1, WEFT_F32, WEFT_SHAPE(H, in));
            weft_node whh = m.params[m.np++] = weft_param(g, n2, WEFT_F32, WEFT_SHAPE(H, H));
            weft_node h = h0;
            for (int k = 0; k < T; k++) {
                int t = d ? T - 1 - k : k;
                weft_graph_set_site(g, l, d, t);
                h = weft_tanh(g, weft_add(g, weft_matmul(g, xs[t], wih, 0, 1), weft_matmul(g, h, whh, 0, 1)));
                weft_node_set_name(g, h, "h");
                ys[d * T + t] = h;
            }
        }
        weft_graph_set_site(g, l, -1, -1);
        for (int t = 0; t < T; t++) {
            weft_node pair[2] = {ys[t], D == 2 ? ys[T + t] : WEFT_NONE};
            xs[t] = D == 2 ? weft_concat(g, pair, 2, 1) : ys[t];
        }
    }
    weft_graph_set_site(g, -1, -1, -1);
    m.loss = weft_sum(g, weft_square(g, xs[T - 1]), NULL, 0, 0);
    weft_node_set_name(g, m.loss, "loss");
    free(xs);
    free(ys);
    cr_assert_eq(weft_graph_status(g), WEFT_OK, "%s", weft_graph_error(g));
    if (with_grad) {
        weft_node grads[16];
        cr_assert_eq(weft_grad(g, m.loss, m.params, m.np, grads), WEFT_OK, "%s", weft_last_error());
    }
    return m;
}

/* Writes g as the options ask and parses it back with libcgraph. */
static Agraph_t *draw(const weft_graph *g, const weft_viz_options *o, weft_viz_stats *st, char **text_out) {
    char *text = NULL;
    weft_status s = weft_viz_dot_string(g, o, &text, st);
    cr_assert_eq(s, WEFT_OK, "%s", weft_last_error());
    Agraph_t *a = agmemread(text);
    cr_assert_not_null(a, "libcgraph could not parse the dot text:\n%s", text);
    if (text_out) *text_out = text;
    else free(text);
    return a;
}

/* Clusters (at any depth) whose name starts with prefix and, if suffix is
 * given, ends with it. */
static int count_clusters(Agraph_t *a, const char *prefix, const char *suffix, int nosuffix) {
    int n = 0;
    for (Agraph_t *s = agfstsubg(a); s; s = agnxtsubg(s)) {
        const char *name = agnameof(s);
        size_t ln = strlen(name), ls = suffix ? strlen(suffix) : 0;
        int ends = suffix && ln >= ls && !strcmp(name + ln - ls, suffix);
        if (!strncmp(name, prefix, strlen(prefix)) && (suffix ? (nosuffix ? !ends : ends) : 1)) n++;
        n += count_clusters(s, prefix, suffix, nosuffix);
    }
    return n;
}

static Agraph_t *find_cluster(Agraph_t *a, const char *name) {
    for (Agraph_t *s = agfstsubg(a); s; s = agnxtsubg(s)) {
        if (!strcmp(agnameof(s), name)) return s;
        Agraph_t *r = find_cluster(s, name);
        if (r) return r;
    }
    return NULL;
}

static Agnode_t *node_of(Agraph_t *a, int id) {
    char name[32];
    snprintf(name, sizeof name, "n%d", id);
    return agnode(a, name, 0);
}

static int count_nodes_prefix(Agraph_t *a, char c) {
    int n = 0;
    for (Agnode_t *v = agfstnode(a); v; v = agnxtnode(a, v)) n += agnameof(v)[0] == c;
    return n;
}

Test(viz, unrolled_one_cluster_per_step_and_params_once) {
    enum { T = 7 };
    toy m = toy_rnn(T, 1, 1, 0);
    weft_viz_stats st;
    Agraph_t *a = draw(m.g, &(weft_viz_options){0}, &st, NULL);
    cr_assert_eq(count_clusters(a, "cluster_l0_d0_t", "_bwd", 1), T);
    cr_assert_eq(st.step_clusters, T);
    cr_assert_eq(st.backward_clusters, 0);
    cr_assert_eq(agnnodes(a), weft_graph_node_count(m.g), "every node drawn once");
    cr_assert_eq(st.nodes, weft_graph_node_count(m.g));
    Agraph_t *pc = find_cluster(a, "cluster_params");
    cr_assert_not_null(pc);
    cr_assert_eq(agnnodes(pc), m.np, "each parameter once, in its own cluster");
    for (int k = 0; k < m.np; k++) cr_assert_not_null(agsubnode(pc, node_of(a, m.params[k]), 0));
    /* fan-out: the recurrent weight feeds every step */
    cr_assert_eq(agdegree(a, node_of(a, m.params[1]), 0, 1), T);
    /* the slices of x taken before the loop are drawn in their step */
    char name[64];
    snprintf(name, sizeof name, "cluster_l0_d0_t%d", T - 1);
    Agraph_t *last = find_cluster(a, name);
    cr_assert_not_null(last);
    int slices = 0;
    for (Agnode_t *v = agfstnode(last); v; v = agnxtnode(last, v)) slices += strstr(agget(v, "label"), "slice") != NULL;
    cr_assert_eq(slices, 1);
    /* the state edges are the bold time spine: T - 1 of them */
    int spine = 0;
    for (Agnode_t *v = agfstnode(a); v; v = agnxtnode(a, v))
        for (Agedge_t *e = agfstout(a, v); e; e = agnxtout(a, e)) {
            char *pw = agget(e, "penwidth");
            spine += pw && *pw;
        }
    cr_assert_eq(spine, T - 1);
    agclose(a);
    weft_graph_free(m.g);
}

Test(viz, backward_nodes_get_their_own_step_clusters_and_dashed_edges) {
    enum { T = 4 };
    toy m = toy_rnn(T, 1, 1, 1);
    weft_viz_stats st;
    char *text;
    Agraph_t *a = draw(m.g, &(weft_viz_options){.show_grad_links = 1}, &st, &text);
    cr_assert_eq(count_clusters(a, "cluster_l0_d0_t", "_bwd", 1), T);
    cr_assert_eq(count_clusters(a, "cluster_l0_d0_t", "_bwd", 0), T);
    cr_assert_eq(st.backward_clusters, T);
    cr_assert_eq(agnnodes(a), weft_graph_node_count(m.g));
    int dashed_nodes = 0, dotted_links = 0, backward = 0;
    for (int i = 0; i < weft_graph_node_count(m.g); i++) {
        if (!weft_node_is_backward(m.g, i)) continue;
        backward++;
        dashed_nodes += strstr(agget(node_of(a, i), "style"), "dashed") != NULL;
    }
    cr_assert_gt(backward, 0);
    cr_assert_eq(dashed_nodes, backward);
    for (Agnode_t *v = agfstnode(a); v; v = agnxtnode(a, v))
        for (Agedge_t *e = agfstout(a, v); e; e = agnxtout(a, e)) dotted_links += !strcmp(agget(e, "style"), "dotted");
    cr_assert_gt(dotted_links, 0, "grad links asked for");
    agclose(a);
    free(text);
    /* and none without asking */
    a = draw(m.g, &(weft_viz_options){0}, &st, NULL);
    for (Agnode_t *v = agfstnode(a); v; v = agnxtnode(a, v))
        for (Agedge_t *e = agfstout(a, v); e; e = agnxtout(a, e)) cr_assert_str_neq(agget(e, "style"), "dotted");
    agclose(a);
    weft_graph_free(m.g);
}

Test(viz, names_with_quotes_backslashes_and_newlines_survive) {
    weft_graph *g = weft_graph_new();
    const char *nasty = "a \"q\" \\ b\nc {x} <y> ;";
    weft_node x = weft_input(g, nasty, WEFT_F32, WEFT_SHAPE(2));
    weft_node y = weft_tanh(g, x);
    weft_node_set_name(g, y, "\"\\\"");
    weft_viz_stats st;
    Agraph_t *a = draw(g, &(weft_viz_options){.title = "title \"with\" \\ and\nnewline"}, &st, NULL);
    cr_assert_eq(agnnodes(a), 2);
    /* cgraph undoes \" and keeps the other escapes for the label renderer */
    cr_assert_not_null(strstr(agget(node_of(a, x), "label"), "a \"q\" \\\\ b\\nc {x} <y> ;"),
                       "label: %s", agget(node_of(a, x), "label"));
    cr_assert_not_null(strstr(agget(node_of(a, y), "label"), "\"\\\\\""), "label: %s", agget(node_of(a, y), "label"));
    cr_assert_str_eq(agget(a, "label"), "title \"with\" \\\\ and\\nnewline");
    agclose(a);
    weft_graph_free(g);
}

Test(viz, collapse_keeps_first_k_and_last_steps_and_counts_the_rest) {
    enum { T = 20, K = 3 };
    toy m = toy_rnn(T, 1, 1, 1);
    weft_viz_stats st;
    char *text;
    Agraph_t *a = draw(m.g, &(weft_viz_options){.collapse = K}, &st, &text);
    cr_assert_eq(count_clusters(a, "cluster_l0_d0_t", "_bwd", 1), K + 1);
    cr_assert_eq(count_clusters(a, "cluster_l0_d0_t", "_bwd", 0), K + 1);
    cr_assert_not_null(find_cluster(a, "cluster_l0_d0_t19"), "the last step is kept");
    cr_assert_null(find_cluster(a, "cluster_l0_d0_t3"));
    cr_assert_eq(st.elisions, 2, "one for the forward steps, one for the backward");
    cr_assert_eq(count_nodes_prefix(a, 'e'), 2);
    cr_assert_eq(agnnodes(a), st.nodes + st.elisions);
    cr_assert_eq(st.nodes + st.hidden, weft_graph_node_count(m.g));
    cr_assert_not_null(strstr(text, "16 steps hidden"), "T - K - 1 = 16 steps hidden");
    /* the elision node sits on the time spine: fed by step K-1, feeding the last */
    Agnode_t *e = agnode(a, "e0", 0);
    cr_assert_not_null(e);
    cr_assert_gt(agdegree(a, e, 1, 0), 0);
    cr_assert_gt(agdegree(a, e, 0, 1), 0);
    agclose(a);
    free(text);
    /* a sequence no longer than K + 1 has nothing to hide */
    a = draw(m.g, &(weft_viz_options){.collapse = T - 1}, &st, NULL);
    cr_assert_eq(st.elisions, 0);
    cr_assert_eq(st.step_clusters, T);
    agclose(a);
    weft_graph_free(m.g);
}

Test(viz, rolled_draws_the_cell_once_with_state_edges_back_into_it) {
    enum { T = 5 };
    toy m = toy_rnn(T, 1, 1, 1);
    weft_viz_stats st;
    Agraph_t *a = draw(m.g, &(weft_viz_options){.rolled = 1}, &st, NULL);
    cr_assert_eq(st.step_clusters, 1);
    cr_assert_eq(st.backward_clusters, 1);
    cr_assert_lt(agnnodes(a), weft_graph_node_count(m.g) / 2);
    int back = 0;
    for (Agnode_t *v = agfstnode(a); v; v = agnxtnode(a, v))
        for (Agedge_t *e = agfstout(a, v); e; e = agnxtout(a, e)) {
            char *c = agget(e, "constraint");
            if (c && !strcmp(c, "false") && strcmp(agget(e, "style"), "dotted")) {
                back++;
                cr_assert(!strcmp(agget(e, "label"), "t-1") || !strcmp(agget(e, "label"), "t+1"));
            }
        }
    cr_assert_geq(back, 2, "h(t-1) -> matmul forward and its gradient backward");
    agclose(a);
    weft_graph_free(m.g);
}

Test(viz, layers_and_directions_nest_their_steps) {
    enum { T = 3, L = 2, D = 2 };
    toy m = toy_rnn(T, L, D, 0);
    weft_viz_stats st;
    Agraph_t *a = draw(m.g, &(weft_viz_options){0}, &st, NULL);
    cr_assert_eq(st.step_clusters, T * L * D);
    cr_assert_eq(count_clusters(a, "cluster_l", "_bwd", 1), L + L * D + T * L * D);
    Agraph_t *l1 = find_cluster(a, "cluster_l1");
    cr_assert_not_null(l1);
    Agraph_t *rev = find_cluster(l1, "cluster_l1_d1");
    cr_assert_not_null(rev, "directions are inside their layer");
    cr_assert_not_null(find_cluster(rev, "cluster_l1_d1_t2"), "steps are inside their direction");
    cr_assert_str_eq(agget(rev, "label"), "reverse");
    cr_assert_eq(agnnodes(find_cluster(a, "cluster_params")), L * D * 2);
    agclose(a);
    weft_graph_free(m.g);
}

Test(viz, profile_overlay_colours_by_time_and_labels_ms) {
    toy m = toy_rnn(3, 1, 1, 0);
    int N = weft_graph_node_count(m.g);
    double *ms = calloc((size_t)N, sizeof *ms);
    for (int i = 0; i < N; i++) ms[i] = weft_node_kind_of(m.g, i) == WEFT_NODE_OP ? 0.01 : -1;
    weft_node hot = N - 1;
    ms[hot] = 1.0;
    weft_viz_stats st;
    Agraph_t *a = draw(m.g, &(weft_viz_options){.node_ms = ms}, &st, NULL);
    cr_assert_str_eq(agget(node_of(a, hot), "fillcolor"), "#ff4600", "the slowest node is the reddest");
    cr_assert_not_null(strstr(agget(node_of(a, hot), "label"), "1 ms ("));
    cr_assert_str_neq(agget(node_of(a, 0), "fillcolor"), "#ff4600");
    agclose(a);
    /* collapsed, the elision node carries the hidden steps' time */
    toy big = toy_rnn(10, 1, 1, 0);
    N = weft_graph_node_count(big.g);
    ms = realloc(ms, (size_t)N * sizeof *ms);
    for (int i = 0; i < N; i++) ms[i] = 0.5;
    char *text;
    a = draw(big.g, &(weft_viz_options){.node_ms = ms, .collapse = 2}, &st, &text);
    cr_assert_not_null(strstr(agget(agnode(a, "e0", 0), "label"), " ms ("));
    agclose(a);
    free(text);
    free(ms);
    weft_graph_free(m.g);
    weft_graph_free(big.g);
}

Test(viz, fused_groups_and_notes_from_a_compiler) {
    toy m = toy_rnn(2, 1, 1, 0);
    int N = weft_graph_node_count(m.g);
    int *group = malloc((size_t)N * sizeof *group);
    const char **note = calloc((size_t)N, sizeof *note);
    int in_group = 0;
    for (int i = 0; i < N; i++) {
        const char *op = weft_node_op_name(m.g, i);
        group[i] = weft_node_site(m.g, i).step == 1 && (!strcmp(op, "add") || !strcmp(op, "tanh")) ? 0 : -1;
        in_group += group[i] == 0;
        if (!strcmp(op, "matmul")) note[i] = "2 matmuls -> 1";
    }
    const char *labels[] = {"fused by \"elementwise\""};
    weft_viz_stats st;
    Agraph_t *a = draw(m.g, &(weft_viz_options){.group = group, .group_label = labels, .n_groups = 1,
                                                 .node_note = note},
                       &st, NULL);
    Agraph_t *c = find_cluster(a, "cluster_g0");
    cr_assert_not_null(c);
    cr_assert_eq(agnnodes(c), in_group);
    cr_assert_not_null(find_cluster(find_cluster(a, "cluster_l0_d0_t1"), "cluster_g0"), "inside its step");
    cr_assert_str_eq(agget(c, "label"), "fused by \"elementwise\"");
    int noted = 0;
    for (Agnode_t *v = agfstnode(a); v; v = agnxtnode(a, v)) noted += strstr(agget(v, "label"), "2 matmuls -> 1") != NULL;
    cr_assert_eq(noted, 4);
    agclose(a);
    free(group);
    free(note);
    weft_graph_free(m.g);
}

Test(viz, a_graph_without_sites_is_drawn_flat) {
    weft_graph *g = weft_graph_new();
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(2, 2));
    weft_node w = weft_param(g, "w", WEFT_F32, WEFT_SHAPE(2, 2));
    weft_node y = weft_matmul(g, x, w, 0, 0);
    (void)y;
    weft_viz_stats st;
    Agraph_t *a = draw(g, &(weft_viz_options){.collapse = 2, .rolled = 0}, &st, NULL);
    cr_assert_eq(st.step_clusters, 0);
    cr_assert_eq(agnnodes(a), 3);
    agclose(a);
    a = draw(g, &(weft_viz_options){.rolled = 1}, &st, NULL);
    cr_assert_eq(agnnodes(a), 3);
    agclose(a);
    weft_graph_free(g);
}

Test(viz, hide_scalars_leaves_out_scalar_constants_only) {
    toy m = toy_rnn(3, 1, 1, 1);
    weft_viz_stats all, some;
    Agraph_t *a = draw(m.g, &(weft_viz_options){0}, &all, NULL);
    agclose(a);
    a = draw(m.g, &(weft_viz_options){.hide_scalars = 1}, &some, NULL);
    int scalars = 0;
    for (int i = 0; i < weft_graph_node_count(m.g); i++) {
        weft_node in[1];
        int leafish = weft_node_kind_of(m.g, i) == WEFT_NODE_CONST ||
                      (weft_node_kind_of(m.g, i) == WEFT_NODE_OP && weft_node_inputs(m.g, i, in, 1) == 0);
        if (leafish && weft_shape_numel(weft_node_shape(m.g, i)) == 1) {
            scalars++;
            cr_assert_null(node_of(a, i));
        }
    }
    cr_assert_gt(scalars, 0);
    cr_assert_eq(some.nodes, all.nodes - scalars);
    agclose(a);
    weft_graph_free(m.g);
}

Test(viz, bad_arguments_are_errors) {
    toy m = toy_rnn(2, 1, 1, 0);
    char *text = (char *)1;
    cr_assert_eq(weft_viz_dot_string(m.g, &(weft_viz_options){.collapse = -1}, &text, NULL), WEFT_ERR_ARG);
    cr_assert_null(text);
    cr_assert_eq(weft_viz_write_dot(NULL, stdout, NULL, NULL), WEFT_ERR_ARG);
    /* a graph with a build error is not drawn */
    weft_node bad = weft_matmul(m.g, m.x, m.x, 0, 0);
    cr_assert_eq(bad, WEFT_NONE);
    cr_assert_neq(weft_viz_dot_string(m.g, NULL, &text, NULL), WEFT_OK);
    weft_graph_free(m.g);
}

/* The recurrent model builder's graphs: an LSTM's rolled training graph
 * folds every step onto one, forward and backward. */
Test(viz, lstm_from_the_model_builder) {
    enum { T = 4 };
    weft_cell *cell = weft_cell_get("lstm");
    cr_assert_not_null(cell, "%s", weft_last_error());
    weft_graph *g = weft_graph_new();
    weft_rnn_config cfg = weft_rnn_config_default(3, 5);
    weft_rnn *r;
    cr_assert_eq(weft_rnn_new(g, cell, &cfg, &r), WEFT_OK, "%s", weft_last_error());
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(T, 2, 3));
    weft_rnn_result res;
    cr_assert_eq(weft_rnn_apply(g, r, &(weft_rnn_inputs){.x = x, .mask = WEFT_NONE, .train = WEFT_NONE}, &res), WEFT_OK,
                 "%s", weft_last_error());
    weft_node loss = weft_sum(g, res.output, NULL, 0, 0);
    weft_node params[8], grads[8];
    int np = weft_graph_params(g, params, 8);
    cr_assert_eq(weft_grad(g, loss, params, np, grads), WEFT_OK, "%s", weft_last_error());
    weft_viz_stats st;
    Agraph_t *a = draw(g, &(weft_viz_options){0}, &st, NULL);
    cr_assert_eq(st.step_clusters, T);
    cr_assert_eq(st.backward_clusters, T);
    cr_assert_eq(agnnodes(find_cluster(a, "cluster_params")), np);
    agclose(a);
    a = draw(g, &(weft_viz_options){.rolled = 1}, &st, NULL);
    cr_assert_eq(st.step_clusters, 1);
    cr_assert_eq(st.backward_clusters, 1);
    /* every forward node of the middle step stands for T steps */
    char name[32];
    snprintf(name, sizeof name, "cluster_l0_d0_t%d", T / 2);
    cr_assert_not_null(find_cluster(a, name));
    agclose(a);
    weft_rnn_free(r);
    weft_graph_free(g);
    weft_cell_free(cell);
}
