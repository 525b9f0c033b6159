/* weft — drawing an unrolled recurrent graph so that a person can read it.
 *
 * The basic export (weft_graph_write_dot in weft.h) draws every node flat.
 * This viewer groups them by where they sit in the unrolled model (the site
 * set by weft_graph_set_site): one cluster per time step, nested per layer
 * and direction; the parameters drawn once in their own cluster with their
 * fan-out to every step; the edges that carry state from one step to the
 * next drawn bold as the time spine.  On top of that: the rolled view (the
 * cell once, its state edges drawn back into it), collapsing of long
 * sequences, gradient links, and a profile overlay from per-node times.
 *
 * Nodes built without a site (the per-step slices of the input taken before
 * the loop, say) are placed where all their users are: a node read only by
 * step t is drawn in step t.  A backward node without a site goes where the
 * forward node it differentiates goes. */
#ifndef WEFT_VIZ_H
#define WEFT_VIZ_H

#include <stdio.h>

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_viz_options {
    /* Draw each (layer, direction)'s cell once, with its recurrent edges
     * drawn back into it, instead of one cluster per step. */
    int rolled;
    /* K > 0: of each (layer, direction) draw steps 0 .. K-1 and the last
     * one; the steps between become one node saying how many it hides.
     * Ignored by the rolled view. */
    int collapse;
    /* A dotted edge from each backward node to the forward node it
     * differentiates. */
    int show_grad_links;
    /* Leave out scalar constants (the 1 in 1 - s, a loss's seed): they
     * crowd the backward pass and say little. */
    int hide_scalars;
    /* Time reads left to right (rankdir=LR) instead of top down. */
    int left_to_right;
    const char *title;          /* graph label; NULL = none */

    /* Profile overlay: node_ms[i] is the time node i took (ms, any number
     * of runs summed; < 0 = not run); NULL = no overlay.  Nodes are filled
     * by their share of the time and labelled with ms, share and bytes. */
    const double *node_ms;

    /* Annotations for compiled graphs, all optional (NULL).  group[i] >= 0
     * puts node i in fused kernel group[i] (drawn as one cluster labelled
     * group_label[group[i]]); node_note[i] is an extra label line (e.g.
     * "100 matmuls -> 1", "view"). */
    const int *group;
    const char *const *group_label;
    int n_groups;
    const char *const *node_note;
    /* Label view ops (slices, transposes, broadcasts, reshapes of contiguous
     * data) "view": they cost no copy.  Set for compiled graphs. */
    int mark_views;
} weft_viz_options;

/* What a drawing contains (for tests and for the CLI's summary line). */
typedef struct weft_viz_stats {
    int nodes;          /* graph nodes drawn (elision nodes not counted) */
    int hidden;         /* graph nodes hidden by collapse or folded by rolled */
    int elisions;       /* elision nodes */
    int step_clusters;  /* one per (layer, direction, step) drawn */
    int backward_clusters; /* the same for the steps' backward nodes */
    int edges;          /* edges drawn, after merging */
} weft_viz_stats;

/* Writes the dot text of g as the options ask; stats may be NULL. */
weft_status weft_viz_write_dot(const weft_graph *g, FILE *f, const weft_viz_options *opt,
                               weft_viz_stats *stats);

/* The same, into a malloc'ed NUL-terminated string (free it). */
weft_status weft_viz_dot_string(const weft_graph *g, const weft_viz_options *opt, char **out,
                                weft_viz_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
