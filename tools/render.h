/* Rendering dot text through Graphviz's library (libgvc), in-process. */
#ifndef WEFT_TOOLS_RENDER_H
#define WEFT_TOOLS_RENDER_H
#include "weft/weft.h"

/* format: "svg", "png", "pdf" (anything Graphviz's renderers accept). */
weft_status weft_render_dot(const char *dot_text, const char *format, const char *path);
/* The format implied by a file name's extension; "dot" when none matches. */
const char *weft_render_format_of(const char *path);
/* Write g as dot, or rendered when path ends in .svg/.png/.pdf. */
weft_status weft_write_graph_file(const weft_graph *g, const weft_dot_options *opt, const char *path);

#endif
