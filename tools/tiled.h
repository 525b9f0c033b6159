/* Tiled layout for large unrolled drawings (libgvc, in-process).
 *
 * Graphviz's dot lays out a whole T = 100 training graph in minutes, if at
 * all (its cluster ranking gives up on it).  But an unrolled graph is T
 * copies of one step: so each step cluster (and the parameters, and the
 * nodes outside steps) is laid out by dot on its own, the tiles are placed
 * on a grid — one row per time step, one column per layer, direction and
 * forward/backward — and the edges between tiles are drawn straight. */
#ifndef WEFT_TOOLS_TILED_H
#define WEFT_TOOLS_TILED_H
#include "weft/weft.h"

/* dot_text as written by weft_viz_write_dot (top-down); format as for
 * weft_render_dot. */
weft_status weft_render_tiled(const char *dot_text, const char *format, const char *path);

#endif
